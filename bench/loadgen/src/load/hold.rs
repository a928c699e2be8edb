//! `--hold`: open N keep-alive connections first, as fast as the server takes
//! them, then hold them all for the run, each sending one request every
//! `--hold-interval`, so that what the server's figures show (fds, memory)
//! is what is held, and how long opening took is a figure of its own.
//!
//! Why not `--rate N/interval --connections N` alone: that keep-alive open
//! loop opens each connection with its first scheduled request, so the
//! connections open spread over the first interval (the time to open is the
//! schedule's, not the server's), and each keeps a timerfd (2 fds a
//! connection). `--hold` keeps that loop's schedule (the same `Connection`,
//! the same dealing of requests, one request every interval each) and
//! changes only the opening and the timer.
//!
//! The opening: each load thread opens its connections with at most
//! [`OPENING_IN_FLIGHT`] under way, each sending its first request and
//! reading the answer ([`super::connection::open_held`]: a connection counts
//! as held once the server answered on it). Failures are counted by kind and
//! not retried. Then each thread tells how many it holds, and waits for the
//! plan of the run, whose schedule starts when every thread (and every child
//! process) has opened.
//!
//! When one process's fd limit does not hold them all, loadgen runs as
//! several processes (`super::children`); each runs this same opening over
//! its share.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use tokio::net::TcpStream;

use super::connection::{self, Connection, Endpoint, Plan};
use super::failure::Failure;
use super::recorder::{self, Recorder};
use super::recording::{Opened, counts};

/// The connects one load thread has under way at once while opening: enough
/// to keep the server's accept loop busy, few enough that a burst does not
/// overflow its listen queue (SYNs dropped there are retried a second later,
/// which would show as a second of "time to open" that is loadgen's doing).
pub const OPENING_IN_FLIGHT: usize = 128;

/// The default `--hold-interval`: a request every 5 s per connection, under
/// the 10 s a `handoff` worker lets a keep-alive connection idle
/// (`--header-timeout`), so that a held connection stays open; 38,000
/// connections then send 7,600 requests/s, a light load beside opening them.
pub const DEFAULT_HOLD_INTERVAL: &str = "5s";

/// What every opening connection of a process shares.
#[derive(Debug)]
pub struct Opening {
    /// The targets (connection `id` goes to `endpoints[id % len]`).
    pub endpoints: Vec<Endpoint>,
    /// `--source-ips` (connection `id` from `source_ips[id % len]`).
    pub source_ips: Vec<IpAddr>,
    /// `--body-bytes`' body.
    pub body: Box<[u8]>,
    /// How long one connection may take to open and answer.
    pub timeout: Duration,
}

/// A connection that opened, and where it goes.
struct Held {
    /// Its target's index.
    target: usize,
    /// Its source address.
    source: Option<IpAddr>,
    /// The open stream, registered with its thread's runtime.
    stream: TcpStream,
}

/// What a load thread is told once every connection is open: the run's
/// plan, and its first place in the plan's schedule.
pub type Go = (Arc<Plan>, usize);

/// A load thread that has opened its connections and waits for its [`Go`].
pub struct Waiting {
    /// The thread, which returns its recorder.
    pub handle: thread::JoinHandle<anyhow::Result<Recorder>>,
    /// Where its go is sent; dropping it ends the thread without a run.
    pub go: mpsc::Sender<Go>,
    /// The connections it holds.
    pub held: usize,
}

/// Every load thread of this process, opened.
pub struct Holding {
    /// The threads, in order.
    pub threads: Vec<Waiting>,
    /// Their openings, merged.
    pub opened: Opened,
}

impl Holding {
    /// The connections this process holds.
    pub fn held(&self) -> usize {
        self.threads.iter().map(|thread| thread.held).sum()
    }

    /// Sends each thread its go: `plan` and its first place in the
    /// schedule (the held connections are numbered over the threads in
    /// order). Returns the threads' handles.
    pub fn go(self, plan: &Arc<Plan>) -> Vec<thread::JoinHandle<anyhow::Result<Recorder>>> {
        let mut first = 0;
        self.threads
            .into_iter()
            .map(|waiting| {
                // A thread that is gone reports why when joined.
                let _ = waiting.go.send((Arc::clone(plan), first));
                first += waiting.held;
                waiting.handle
            })
            .collect()
    }
}

/// Who holds a `--hold` run's connections once they are open.
pub enum Holders {
    /// This process's load threads.
    Threads(Holding),
    /// Child processes (`super::children`), with their openings merged.
    Children(super::children::Children, Opened),
}

/// Opens connections `ids[t]` on load thread `t`, counting them on
/// `counters[t]` (for the progress line), and returns once every thread has
/// opened; each thread then sends `finished` when its run ends.
pub fn open(
    opening: Arc<Opening>,
    ids: Vec<Vec<usize>>,
    counters: &[Arc<AtomicU64>],
    timeline: Option<Duration>,
    finished: &mpsc::Sender<()>,
    mut tick: impl FnMut(),
) -> anyhow::Result<Holding> {
    let started = Instant::now();
    let (opened_tx, opened_rx) = mpsc::channel();
    let mut threads = Vec::with_capacity(ids.len());
    for (index, (ids, counter)) in ids.into_iter().zip(counters).enumerate() {
        let (go_tx, go_rx) = mpsc::channel::<Go>();
        let opening = Arc::clone(&opening);
        let counter = Arc::clone(counter);
        let opened_tx = opened_tx.clone();
        let finished = finished.clone();
        let handle = thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .spawn(move || {
                let result = hold_thread(opening, ids, counter, timeline, index, opened_tx, go_rx);
                // The receiver lives until every thread has reported.
                let _ = finished.send(());
                result
            })
            .context("start a load thread")?;
        threads.push((handle, go_tx));
    }
    drop(opened_tx);
    let mut opened_by_thread = vec![None; threads.len()];
    let mut merged = Opened {
        failures: vec![0; Failure::ALL.len()],
        ..Opened::default()
    };
    let mut waiting = threads.len();
    while waiting > 0 {
        match opened_rx.recv_timeout(super::PROGRESS_TICK) {
            Ok((index, opened)) => {
                merged.merge(&opened);
                opened_by_thread[index] = Some(opened.held as usize);
                waiting -= 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => tick(),
            // A thread ended before it reported: its join says why.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    merged.open_time_us = started.elapsed().as_micros() as u64;
    let mut holding = Vec::with_capacity(threads.len());
    for ((handle, go), held) in threads.into_iter().zip(opened_by_thread) {
        let Some(held) = held else {
            drop(go);
            return Err(match handle.join() {
                Ok(Err(err)) => err.context("a load thread failed while opening"),
                _ => anyhow!("a load thread ended while opening"),
            });
        };
        holding.push(Waiting { handle, go, held });
    }
    Ok(Holding {
        threads: holding,
        opened: merged,
    })
}

/// One load thread of `--hold`: opens its connections, reports them on
/// `opened` as thread `index`, waits for its [`Go`], then runs them as the
/// keep-alive open loop does and returns its recorder.
fn hold_thread(
    opening: Arc<Opening>,
    ids: Vec<usize>,
    counter: Arc<AtomicU64>,
    timeline: Option<Duration>,
    index: usize,
    opened: mpsc::Sender<(usize, Opened)>,
    go: mpsc::Receiver<Go>,
) -> anyhow::Result<Recorder> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build a load thread's runtime")?;
    let local = tokio::task::LocalSet::new();
    let (held, tally) = local.block_on(&runtime, open_all(&opening, ids, &counter));
    let count = held.len();
    opened
        .send((index, tally))
        .map_err(|_| anyhow!("the opening was abandoned"))?;
    // Blocks this thread, outside its runtime (nothing of it runs between
    // the two `block_on`s; the held sockets stay registered).
    let Ok((plan, first)) = go.recv() else {
        return Err(anyhow!("the run was called off after the opening"));
    };
    counter.store(0, Ordering::Relaxed);
    let recorder = Rc::new(RefCell::new(
        Recorder::new(plan.window, true, plan.longest_latency(), counter).with_timeline(timeline),
    ));
    local.block_on(&runtime, async {
        let tasks: Vec<_> = held
            .into_iter()
            .enumerate()
            .map(|(k, held)| {
                let connection = Connection::held(
                    first + k,
                    held.target,
                    held.source,
                    held.stream,
                    Arc::clone(&plan),
                );
                tokio::task::spawn_local(connection.run(Rc::clone(&recorder)))
            })
            .collect();
        for task in tasks {
            task.await.context("a connection task failed")?;
        }
        anyhow::Ok(())
    })?;
    debug_assert!(count <= plan.connections);
    let empty = Recorder::new(plan.window, true, plan.longest_latency(), Arc::default());
    Ok(recorder.replace(empty))
}

/// Opens connections `ids`, at most [`OPENING_IN_FLIGHT`] at once, each
/// counted on `counter` when it opened or failed; returns those held and
/// the tally.
async fn open_all(
    opening: &Arc<Opening>,
    ids: Vec<usize>,
    counter: &Arc<AtomicU64>,
) -> (Vec<Held>, Opened) {
    let max_us = recorder::histogram_max_us(opening.timeout);
    let tally = Rc::new(RefCell::new((
        recorder::new_histogram(max_us),
        vec![0_u64; Failure::ALL.len()],
    )));
    let held = Rc::new(RefCell::new(Vec::with_capacity(ids.len())));
    let permits = Rc::new(tokio::sync::Semaphore::new(OPENING_IN_FLIGHT));
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let opening = Arc::clone(opening);
            let (tally, held, permits, counter) = (
                Rc::clone(&tally),
                Rc::clone(&held),
                Rc::clone(&permits),
                Arc::clone(counter),
            );
            tokio::task::spawn_local(async move {
                let Ok(_permit) = permits.acquire().await else {
                    return;
                };
                let target = id % opening.endpoints.len();
                let source = connection::source_of(&opening.source_ips, id);
                let mut buffer = vec![0; 16 * 1024];
                let deadline = Instant::now() + opening.timeout;
                let result = connection::open_held(
                    &opening.endpoints[target],
                    source,
                    &opening.body,
                    deadline,
                    &mut buffer,
                )
                .await;
                match result {
                    Ok((stream, took)) => {
                        tally
                            .borrow_mut()
                            .0
                            .saturating_record(took.as_micros() as u64);
                        held.borrow_mut().push(Held {
                            target,
                            source,
                            stream,
                        });
                    }
                    Err(failure) => tally.borrow_mut().1[failure.index()] += 1,
                }
                counter.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    for task in tasks {
        // A task panics only on a bug, which the count of held shows.
        let _ = task.await;
    }
    let open_time_us = started.elapsed().as_micros() as u64;
    let held = held.replace(Vec::new());
    let (connect, failures) = tally.replace((recorder::new_histogram(max_us), Vec::new()));
    let opened = Opened {
        held: held.len() as u64,
        failures,
        connect: counts(&connect),
        open_time_us,
    };
    (held, opened)
}

/// The ids of connections that load thread `thread` of `threads` opens in
/// process `process` of `processes` (of `connections` in all): a process
/// takes every `processes`-th id, its threads deal those in turn, so that
/// targets and source addresses (by id) spread over processes and threads
/// alike.
pub fn ids_of(
    connections: usize,
    process: usize,
    processes: usize,
    thread: usize,
    threads: usize,
) -> Vec<usize> {
    (process + processes * thread..connections)
        .step_by((processes * threads).max(1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every id is opened by exactly one thread of one process.
    #[test]
    fn ids_are_dealt_once_over_processes_and_threads() {
        for (connections, processes, threads) in [(10, 1, 1), (3000, 2, 2), (37, 3, 4), (5, 4, 3)] {
            let mut all: Vec<usize> = (0..processes)
                .flat_map(|process| {
                    (0..threads).flat_map(move |thread| {
                        ids_of(connections, process, processes, thread, threads)
                    })
                })
                .collect();
            all.sort_unstable();
            assert_eq!(all, (0..connections).collect::<Vec<_>>());
        }
        assert!(ids_of(3000, 1, 2, 0, 2).iter().all(|id| id % 2 == 1));
    }
}
