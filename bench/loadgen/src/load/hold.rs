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

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

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

/// The share of `--hold-interval` between two requests of an open
/// connection while it waits for the run to start: half, so that its last
/// such request and its first of the run (at most an interval after the go)
/// are at most 1.5 intervals apart, 7.5 s by default, under a `handoff`
/// worker's idle bound of 10 s.
pub const KEEPER_SHARE: f64 = 0.5;

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
    /// `--hold-interval`.
    pub interval: Duration,
}

/// A connection that opened, and where it goes.
struct Held {
    /// Its target's index.
    target: usize,
    /// Its source address.
    source: Option<IpAddr>,
    /// The open stream, registered with its thread's runtime; `None`: lost
    /// while waiting for the go (it opens again at its first request).
    stream: Option<TcpStream>,
}

/// What a load thread is told once every connection is open: the run's
/// plan, and its first place in the plan's schedule.
pub type Go = (Arc<Plan>, usize);

/// A load thread that has opened its connections and waits for its [`Go`].
pub struct Waiting {
    /// The thread, which returns its recorder.
    pub handle: thread::JoinHandle<anyhow::Result<Recorder>>,
    /// Where its go is sent; dropping it ends the thread without a run.
    pub go: oneshot::Sender<Go>,
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
        let (go_tx, go_rx) = oneshot::channel::<Go>();
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
/// `opened` as thread `index`, keeps them alive until its [`Go`], then runs
/// them as the keep-alive open loop does and returns its recorder.
fn hold_thread(
    opening: Arc<Opening>,
    ids: Vec<usize>,
    counter: Arc<AtomicU64>,
    timeline: Option<Duration>,
    index: usize,
    opened: mpsc::Sender<(usize, Opened)>,
    go: oneshot::Receiver<Go>,
) -> anyhow::Result<Recorder> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build a load thread's runtime")?;
    let local = tokio::task::LocalSet::new();
    let report = |tally| {
        opened
            .send((index, tally))
            .map_err(|_| anyhow!("the opening was abandoned"))
    };
    let (held, (plan, first)) =
        local.block_on(&runtime, open_all(&opening, ids, &counter, report, go))?;
    counter.store(0, Ordering::Relaxed);
    let recorder = Rc::new(RefCell::new(
        Recorder::new(plan.window, true, plan.longest_latency(), counter).with_timeline(timeline),
    ));
    let connections = held.into_iter().enumerate().map(|(k, held)| {
        Connection::held(
            first + k,
            held.target,
            held.source,
            held.stream,
            Arc::clone(&plan),
        )
    });
    local.block_on(&runtime, super::run_each(connections, &recorder))?;
    let empty = Recorder::new(plan.window, true, plan.longest_latency(), Arc::default());
    Ok(recorder.replace(empty))
}

/// Whether the go has come, for the keepers of a thread's open connections.
#[derive(Default)]
struct Stop {
    /// Set once the go has come.
    now: Cell<bool>,
    /// Wakes the keepers waiting between their requests.
    notify: Notify,
}

/// Opens connections `ids`, at most [`OPENING_IN_FLIGHT`] at once, each
/// counted on `counter` when it opened or failed; once every one has been
/// tried, hands the tally to `report`, and keeps the open ones alive (a
/// request every [`KEEPER_SHARE`] of the interval) until `go` comes; returns
/// them with it.
///
/// Why keep them alive: opening tens of thousands takes seconds (and the
/// other threads and processes may take longer), and a server closes a
/// keep-alive connection idle for its bound (a `handoff` worker's
/// `--header-timeout`, 10 s): without a request meanwhile, the connections
/// opened first would be gone before the schedule reached them.
async fn open_all(
    opening: &Arc<Opening>,
    ids: Vec<usize>,
    counter: &Arc<AtomicU64>,
    report: impl FnOnce(Opened) -> anyhow::Result<()>,
    go: oneshot::Receiver<Go>,
) -> anyhow::Result<(Vec<Held>, Go)> {
    let max_us = recorder::histogram_max_us(opening.timeout);
    let tally = Rc::new(RefCell::new((
        recorder::new_histogram(max_us),
        vec![0_u64; Failure::ALL.len()],
    )));
    let total = ids.len();
    let tried = Rc::new((Cell::new(0_usize), Notify::new()));
    let stop = Rc::new(Stop::default());
    let permits = Rc::new(tokio::sync::Semaphore::new(OPENING_IN_FLIGHT));
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let opening = Arc::clone(opening);
            let (tally, tried, stop, permits, counter) = (
                Rc::clone(&tally),
                Rc::clone(&tried),
                Rc::clone(&stop),
                Rc::clone(&permits),
                Arc::clone(counter),
            );
            tokio::task::spawn_local(async move {
                let target = id % opening.endpoints.len();
                let source = connection::source_of(&opening.source_ips, id);
                let endpoint = &opening.endpoints[target];
                let mut buffer = vec![0; connection::READ_BUFFER_BYTES];
                let result = match permits.acquire().await {
                    Ok(_permit) => {
                        let deadline = Instant::now() + opening.timeout;
                        connection::open_held(
                            endpoint,
                            source,
                            &opening.body,
                            deadline,
                            &mut buffer,
                        )
                        .await
                    }
                    Err(_) => Err(Failure::Other),
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let mut stream = match result {
                    Ok((stream, took)) => {
                        tally
                            .borrow_mut()
                            .0
                            .saturating_record(took.as_micros() as u64);
                        Some(stream)
                    }
                    Err(failure) => {
                        tally.borrow_mut().1[failure.index()] += 1;
                        None
                    }
                };
                tried.0.set(tried.0.get() + 1);
                if tried.0.get() == total {
                    tried.1.notify_one();
                }
                stream.as_ref()?;
                let period = opening.interval.mul_f64(KEEPER_SHARE);
                while !stop.now.get() {
                    let _ = tokio::time::timeout(period, stop.notify.notified()).await;
                    if stop.now.get() {
                        break;
                    }
                    let Some(open) = &mut stream else { break };
                    let deadline = Instant::now() + opening.timeout;
                    // A connection lost here opens again at its first
                    // request of the run (counted in `connections_opened`).
                    if connection::keep_alive(open, endpoint, &opening.body, deadline, &mut buffer)
                        .await
                        .is_err()
                    {
                        stream = None;
                    }
                }
                Some(Held {
                    target,
                    source,
                    stream,
                })
            })
        })
        .collect();
    if total > 0 {
        tried.1.notified().await;
    }
    let (connect, failures) = tally.replace((recorder::new_histogram(max_us), Vec::new()));
    report(Opened {
        held: connect.len(),
        failures,
        connect: counts(&connect),
        open_time_us: started.elapsed().as_micros() as u64,
    })?;
    let go = go.await;
    stop.now.set(true);
    stop.notify.notify_waiters();
    let mut held = Vec::new();
    for task in tasks {
        // A task panics only on a bug; its connection is then not held.
        if let Ok(Some(one)) = task.await {
            held.push(one);
        }
    }
    let go = go.map_err(|_| anyhow!("the run was called off after the opening"))?;
    Ok((held, go))
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
