//! The open model of `--new-conn --rate` (issue 22, item 6): every request
//! starts at its due time on a connection of its own, whatever became of the
//! earlier ones, as k6's `constant-arrival-rate` executor starts each
//! iteration on a free VU. Under the keep-alive open loop the schedule is
//! dealt to the connections and each sends its share in series (wrk2), so a
//! request stuck on a stalled worker delays the later ones of its
//! connection, and their wait is charged to whichever worker answers them;
//! here a stalled worker holds only the requests it took, so the wait is
//! charged to it and the per-worker latencies say whose requests waited.
//!
//! # The bound: `--connections` requests in flight
//!
//! `--connections N` bounds the requests in flight, as k6's `maxVUs` bounds
//! its VUs. Without a bound, a stalled server would make loadgen open a
//! connection per due request for as long as the stall lasts (100,000 at
//! 100,000/s for a 1 s stall), each with its fd and read buffer: loadgen would
//! meet its own fd limit and measure its own exhaustion rather than the
//! server. With one, loadgen's fds and memory are known before the run and
//! checked against its limits (`super::limits`), and `--connections` keeps
//! one meaning in every model: the most connections loadgen holds open at
//! once (exactly N in closed loop and keep-alive open loop, at most N here).
//! Where k6 drops an iteration that finds no VU free, a request here waits
//! for a place and is sent late, its latency still counted from when it was
//! due, so that the coordinated-omission correction holds; the requests that
//! waited and the most in flight are counted (`requests.in_flight` in the
//! JSON, a summary line when any waited), and a run that waited tells the
//! reader to raise N.
//!
//! # How a thread runs it
//!
//! Each load thread takes every `threads`-th arrival of the run's schedule
//! and its share of the N places (the connections dealt to it, as in every
//! model), so the threads together hold at most N. A place is a long-lived
//! task with its [`Connection`] and that one's read buffer, allocated once:
//! the hot path allocates nothing per request. One task, the dispatcher,
//! sleeps on a `timerfd` until the next arrival is due, takes a free place
//! (waiting for one if none is free), and hands it the request; the place
//! connects, sends, reads the answer, closes, and is free again. Arrival `i`
//! of the run goes to target `i mod n`, so each `--target` is offered its
//! share of the schedule whatever its workers do, and its `--mix` path is
//! drawn by the dispatcher, in the schedule's order.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::Notify;
use tokio::task::JoinError;
use tokio::time::timeout_at;

use super::connection::{Connection, Plan, Share};
use super::recorder::Recorder;
use super::timer::{PreciseTimer, sleep_until_due};

/// One request handed to a place: when it was due, where it goes.
#[derive(Debug, Clone, Copy)]
struct Job {
    /// When it was due: its latency counts from here.
    due: Instant,
    /// The index of its `--target`.
    target: usize,
    /// The index of its path among the target's request heads (`--mix`).
    path: usize,
}

/// One place of a load thread: where the dispatcher leaves a job and wakes
/// the place's task.
#[derive(Default)]
struct Slot {
    /// The job handed over and not yet taken.
    job: Cell<Option<Job>>,
    /// Wakes the place's task; a wake-up given before the task waits is kept
    /// (one permit), so none is lost.
    wake: Notify,
}

/// The places of one load thread.
struct Places {
    /// One slot per place.
    slots: Box<[Slot]>,
    /// The free places, by index: the last freed is taken first. Its
    /// capacity is the number of places, so it never grows.
    free: RefCell<Vec<usize>>,
    /// Wakes the dispatcher when a place is freed.
    freed: Notify,
    /// Set once the dispatcher is done: a place without a job then ends.
    closed: Cell<bool>,
}

impl Places {
    /// `count` places, all free.
    fn new(count: usize) -> Places {
        Places {
            slots: (0..count).map(|_| Slot::default()).collect(),
            free: RefCell::new((0..count).rev().collect()),
            freed: Notify::new(),
            closed: Cell::new(false),
        }
    }

    /// Takes a free place, waiting for one when none is.
    async fn take(&self) -> usize {
        loop {
            if let Some(place) = self.free.borrow_mut().pop() {
                return place;
            }
            // A stale wake-up only makes the loop look again.
            self.freed.notified().await;
        }
    }

    /// Gives `place`, a free one, its job.
    fn hand(&self, place: usize, job: Job) {
        let slot = &self.slots[place];
        slot.job.set(Some(job));
        slot.wake.notify_one();
    }

    /// No more jobs: every place ends once it has sent the one it holds, if
    /// any (a job just handed over is still sent).
    fn close(&self) {
        self.closed.set(true);
        for slot in &self.slots {
            slot.wake.notify_one();
        }
    }

    /// Frees `place`.
    fn release(&self, place: usize) {
        self.free.borrow_mut().push(place);
        self.freed.notify_one();
    }
}

/// Runs one load thread's part of the open model at `rate`: its `share` of
/// the run's arrivals, sent over one place per connection of `connections`.
/// `in_flight` counts the requests in flight over all threads. Returns when
/// every arrival of its share is sent or cut off and every place is done.
/// Runs inside the thread's `LocalSet`: each place is a local task.
pub async fn run(
    plan: Arc<Plan>,
    rate: f64,
    share: Share,
    connections: Vec<Connection>,
    recorder: Rc<RefCell<Recorder>>,
    in_flight: Arc<AtomicUsize>,
) -> Result<(), JoinError> {
    let places = Rc::new(Places::new(connections.len()));
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(place, connection)| {
            tokio::task::spawn_local(serve(
                place,
                connection,
                Rc::clone(&places),
                Rc::clone(&recorder),
                Arc::clone(&in_flight),
            ))
        })
        .collect();
    dispatch(&plan, rate, share, &places, &recorder, &in_flight).await;
    places.close();
    for task in tasks {
        task.await?;
    }
    Ok(())
}

/// One place: waits for a job, sends it, frees itself; until the places are
/// closed and it holds no job.
async fn serve(
    place: usize,
    mut connection: Connection,
    places: Rc<Places>,
    recorder: Rc<RefCell<Recorder>>,
    in_flight: Arc<AtomicUsize>,
) {
    let slot = &places.slots[place];
    loop {
        match slot.job.take() {
            Some(job) => {
                connection
                    .request_to(job.due, job.target, job.path, &recorder)
                    .await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
                places.release(place);
            }
            None if places.closed.get() => return,
            // A stale wake-up (one given while it was busy) only makes the
            // loop look again.
            None => slot.wake.notified().await,
        }
    }
}

/// The dispatcher: sleeps until each arrival of `share` is due and hands it
/// to a free place; counts what the end of the run cut off.
async fn dispatch(
    plan: &Plan,
    rate: f64,
    share: Share,
    places: &Places,
    recorder: &RefCell<Recorder>,
    in_flight: &AtomicUsize,
) {
    let timer = PreciseTimer::new().ok();
    let mut generator = plan.mix.as_ref().map(|mix| mix.generator(share.first));
    let hard_stop = plan.hard_stop();
    let mut k = 0;
    loop {
        let due = plan.due_of(rate, share, k);
        if due >= plan.window.end {
            return;
        }
        recorder.borrow_mut().record_scheduled(due);
        let index = share.index(k);
        k += 1;
        sleep_until_due(timer.as_ref(), due).await;
        if places.free.borrow().is_empty() {
            recorder.borrow_mut().record_waited(due);
        }
        let place = match Instant::now() < hard_stop {
            true => timeout_at(hard_stop.into(), places.take()).await.ok(),
            false => None,
        };
        let Some(place) = place else {
            // The run's end came before a place was free, or before this
            // request was due at all (a server far behind): this request and
            // every later one of the window go unanswered, the later ones
            // counted at once, never sent (as the keep-alive open loop does).
            let window_first = plan.due_before_of(rate, share, plan.window.start);
            let window_end = plan.due_before_of(rate, share, plan.window.end);
            let mut recorder = recorder.borrow_mut();
            recorder.record_unanswered(u64::from(plan.window.contains(due)));
            recorder.record_unsent(window_end.saturating_sub(k.max(window_first)));
            return;
        };
        let path = match (&plan.mix, &mut generator) {
            (Some(mix), Some(generator)) => mix.draw(generator),
            _ => 0,
        };
        let now_in_flight = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        recorder.borrow_mut().record_in_flight(due, now_in_flight);
        let target = (index % plan.endpoints.len().max(1) as u64) as usize;
        places.hand(place, Job { due, target, path });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    use super::super::connection::Endpoint;
    use super::super::recorder::Window;

    /// The bound (issue 22, item 6): at 100/s over 300 ms, 30 requests are
    /// due for 3 places, and none is answered (a listener that never
    /// accepts: each connect completes in its backlog, each request waits for
    /// its 200 ms timeout). The first 3 take the places; every later one
    /// finds them taken and waits, counted, until a timeout frees one or the
    /// run's end cuts it off. Never more than 3 are in flight, and every
    /// request due is a failure or unanswered.
    #[test]
    fn in_flight_never_exceeds_the_bound_and_waiters_are_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("its address");
        let start = Instant::now();
        let window = Window {
            start,
            end: start + Duration::from_millis(300),
        };
        let plan = Arc::new(Plan {
            endpoints: vec![Endpoint {
                addr,
                requests: vec![
                    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                        .to_vec()
                        .into_boxed_slice(),
                ],
            }],
            new_conn: true,
            rate: Some(100.0),
            connections: 3,
            timeout: Duration::from_millis(200),
            start,
            window,
            mix: None,
            poisson: None,
            body: Box::default(),
            source_ips: Vec::new(),
            hold: false,
        });
        let recorder = Rc::new(RefCell::new(Recorder::new(
            window,
            true,
            plan.longest_latency(),
            Arc::default(),
        )));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let connections = (0..3)
            .map(|id| Connection::new(id, Arc::clone(&plan)))
            .collect();
        let share = Share { first: 0, every: 1 };
        tokio::task::LocalSet::new()
            .block_on(&runtime, async {
                let ran = run(
                    Arc::clone(&plan),
                    100.0,
                    share,
                    connections,
                    Rc::clone(&recorder),
                    Arc::clone(&in_flight),
                );
                // The run ends by itself at its hard stop (500 ms); the
                // deadline only keeps a broken run from hanging the test.
                timeout_at((Instant::now() + Duration::from_secs(30)).into(), ran).await
            })
            .expect("ended within 30 s")
            .expect("no place panicked");
        let recorder = recorder.borrow();
        assert_eq!(recorder.in_flight_max, 3, "the places were all taken");
        assert_eq!(in_flight.load(Ordering::Relaxed), 0, "every request ended");
        assert_eq!(recorder.scheduled, 30);
        assert_eq!(recorder.requests(), 0);
        assert_eq!(
            recorder.failed() + recorder.unanswered_at_end,
            recorder.scheduled
        );
        // Request 4 (due at 30 ms) found the 3 places taken until 200 ms:
        // it waited, and so did every one after it that was not cut off
        // before it was due.
        assert!(
            (1..=27).contains(&recorder.waited_for_place),
            "{} waited",
            recorder.waited_for_place
        );
        drop(listener);
    }
}
