//! The recorder: turns the raw timings the connections take into histograms and
//! counts. One per load thread (no locking on the hot path); merged at the end.
//!
//! Only requests *scheduled* inside the measurement window count: from the end of
//! the warm-up to the end of `--duration`. A request's scheduled start is when it
//! was sent in closed loop, and when it should have been sent in open loop, so a
//! stalled server cannot hide its stall (coordinated omission).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::failure::Failure;
use super::usage::CpuTimes;

/// The least a histogram holds, in µs (60 s): shorter runs keep this bound, so
/// their histograms are what they always were.
pub const HISTOGRAM_MIN_MAX_US: u64 = 60_000_000;

/// The most a histogram may be asked to hold, in µs: HdrHistogram takes a
/// highest value up to `u64::MAX / 2`; about 146,000 years.
const HISTOGRAM_MAX_MAX_US: u64 = u64::MAX / 2;

/// Slack over the longest latency a run can measure: a timer fires, and a
/// thread gets to record, a little after the instant it was set for.
const HISTOGRAM_SLACK: Duration = Duration::from_secs(1);

/// Significant decimal digits of every histogram: values are exact to 0.1 %.
pub const HISTOGRAM_DIGITS: u8 = 3;

/// The highest value, in µs, of the histograms of a run whose longest possible
/// latency is `longest` (from the run's start to its hard stop: warm-up,
/// `--duration` and `--timeout`), and at least 60 s.
///
/// The bound follows the run rather than refusing a `--timeout` above a fixed
/// cap, because `--timeout` alone does not bound what is measured: an open-loop
/// latency counts from when the request was *due*, and a connection that a
/// stalled server held back sends its later requests late, so a corrected
/// latency can reach the whole run's length however short the timeout. A cap
/// would also forbid a long `--timeout` for a slow endpoint for no good
/// reason: a histogram's cost grows with the logarithm of its range (3
/// significant digits: 1,024 counters of 8 bytes per doubling), so a one-hour
/// run costs about 50 KiB more per histogram than a one-minute one. Samples are
/// still recorded saturating, which within this bound never applies.
pub fn histogram_max_us(longest: Duration) -> u64 {
    micros(longest.saturating_add(HISTOGRAM_SLACK))
        .clamp(HISTOGRAM_MIN_MAX_US, HISTOGRAM_MAX_MAX_US)
}

/// A latency histogram in µs, from 1 µs to `max_us` ([`histogram_max_us`]), 3
/// significant digits.
pub fn new_histogram(max_us: u64) -> Histogram<u64> {
    let max_us = max_us.clamp(HISTOGRAM_MIN_MAX_US, HISTOGRAM_MAX_MAX_US);
    Histogram::new_with_bounds(1, max_us, HISTOGRAM_DIGITS)
        .expect("bounds checked: 1 <= 1 µs, 2 * 1 <= 60 s <= max <= u64::MAX / 2, 3 digits")
}

/// The measurement window: requests scheduled in `[start, end)` are recorded.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// The end of the warm-up.
    pub start: Instant,
    /// The end of `--duration`: no request is scheduled at or after it.
    pub end: Instant,
}

impl Window {
    /// Whether a request scheduled at `at` is measured (not warm-up).
    pub fn contains(&self, at: Instant) -> bool {
        at >= self.start && at < self.end
    }
}

/// The answer to one request, as far as the recorder needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The `x-worker-pid` header, if any.
    pub worker_pid: Option<u32>,
}

/// One request's raw timings and outcome, as a connection took them.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When the request was scheduled: sent (closed loop) or due (open loop).
    pub scheduled: Instant,
    /// When its first byte was written, or its connection began (the uncorrected start).
    pub sent: Instant,
    /// When its answer was complete, or it failed.
    pub done: Instant,
    /// The answer, or why there was none.
    pub outcome: Result<Answer, Failure>,
    /// Whether this is the first answer on its connection inside the window, so
    /// the connection is counted for the answering worker (and target).
    pub first_on_connection: bool,
    /// The index of the `--target` it was sent to.
    pub target: usize,
    /// The bytes it moved, as far as it got.
    pub moved: Moved,
}

/// The bytes one request moved: what loadgen wrote (the request's head and
/// body) and read (the answer's head and body), counted by the connection as
/// it goes, so a failed request counts what it moved before failing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Bytes written.
    pub sent: u64,
    /// Bytes read.
    pub received: u64,
}

/// How many requests and connections one `--target` answered, counted as a
/// worker's are ([`WorkerCount`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetCount {
    /// Successful requests of the window it answered.
    pub requests: u64,
    /// Connections to it whose first answer in the window was successful.
    pub connections: u64,
}

/// How many requests and connections one worker pid answered, and how fast.
#[derive(Debug, Clone)]
pub struct WorkerCount {
    /// The `x-worker-pid`.
    pub pid: u32,
    /// Successful requests it answered.
    pub requests: u64,
    /// Connections whose first answer in the window came from it.
    pub connections: u64,
    /// When its first answer of the window arrived: with `--kill`, when a
    /// respawned worker began to serve.
    pub first: Option<Instant>,
    /// When its last answer of the window arrived: when a killed worker stopped.
    pub last: Option<Instant>,
    /// The latency of the requests it answered, as the pooled `latency` (from
    /// the scheduled start), in µs: a stalled or busy worker shows in its own
    /// tail rather than diluted in everyone's. Its count is `requests`.
    pub latency: Histogram<u64>,
}

/// One `--timeline` interval: what became of the requests scheduled in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slot {
    /// Successful answers per `x-worker-pid` (a short list, as
    /// [`Recorder::workers`]); an answer without a pid counts under pid 0.
    pub ok_by_pid: Vec<(u32, u64)>,
    /// Failed requests by kind, indexed by [`Failure::index`].
    pub failures: [u64; Failure::ALL.len()],
    /// The longest latency of its successful requests, µs (0: none).
    pub max_latency_us: u64,
}

/// `--timeline`: the window cut into equal intervals, each request counted in
/// the interval it was scheduled in, so an upgrade's effect can be placed in
/// time (which generation answered, what failed, how long it took).
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The width of an interval (`--sample-interval`).
    pub interval: Duration,
    /// The intervals from the window's start; grown as requests arrive.
    pub slots: Vec<Slot>,
}

impl Timeline {
    /// The slot of a request scheduled `since` after the window's start.
    fn slot(&mut self, since: Duration) -> &mut Slot {
        let index = usize::try_from(since.as_nanos() / self.interval.as_nanos().max(1))
            .unwrap_or(usize::MAX);
        if self.slots.len() <= index {
            self.slots.resize(index + 1, Slot::default());
        }
        &mut self.slots[index]
    }

    /// Adds `other`'s counts to this one's (same interval).
    fn merge(&mut self, other: &Timeline) {
        if self.slots.len() < other.slots.len() {
            self.slots.resize(other.slots.len(), Slot::default());
        }
        for (mine, theirs) in self.slots.iter_mut().zip(&other.slots) {
            for &(pid, count) in &theirs.ok_by_pid {
                add_pid(&mut mine.ok_by_pid, pid, count);
            }
            for (mine, theirs) in mine.failures.iter_mut().zip(theirs.failures) {
                *mine += theirs;
            }
            mine.max_latency_us = mine.max_latency_us.max(theirs.max_latency_us);
        }
    }
}

/// Adds `count` to `pid`'s entry of `list`.
fn add_pid(list: &mut Vec<(u32, u64)>, pid: u32, count: u64) {
    match list.iter_mut().find(|entry| entry.0 == pid) {
        Some(entry) => entry.1 += count,
        None => list.push((pid, count)),
    }
}

/// Histograms and counts of one load thread, or of the whole run once merged.
pub struct Recorder {
    /// Which requests are measured.
    window: Window,
    /// Whether this is an open-loop run, where the uncorrected latency differs.
    open_loop: bool,
    /// The highest value of every histogram, so that a worker's new histogram
    /// has the bounds of the others (merging needs them equal).
    max_us: u64,
    /// Latency of successful requests from their scheduled start, in µs.
    pub latency: Histogram<u64>,
    /// Open loop only: latency from the actual send, which hides stalls, in µs.
    pub latency_uncorrected: Histogram<u64>,
    /// Time from `connect()` to an established connection, in µs.
    pub connect: Histogram<u64>,
    /// Answers per `x-worker-pid`; a short list searched linearly, as a cluster
    /// has a handful of workers.
    pub workers: Vec<WorkerCount>,
    /// Successful answers that had no numeric `x-worker-pid`.
    pub requests_without_pid: u64,
    /// Answers per `--target`, by its index; targets past the end answered nothing.
    pub targets: Vec<TargetCount>,
    /// Failed requests by kind, indexed by [`Failure::index`].
    pub failures: [u64; Failure::ALL.len()],
    /// Answers by status code, successful or not.
    pub statuses: Vec<(u16, u64)>,
    /// Open loop: requests scheduled in the window (answered or not).
    pub scheduled: u64,
    /// Requests scheduled in the window that the run's end cut off: never sent,
    /// or sent but not answered by the end of the drain.
    pub unanswered_at_end: u64,
    /// Requests of the window that found their keep-alive connection closed by
    /// the server while it was idle, before any byte of an answer, and were sent
    /// again on a new connection (each is also a sample or a failure).
    pub reconnects: u64,
    /// The bytes moved by the requests of the window, answered or failed.
    pub moved: Moved,
    /// The open model (`--new-conn --rate`): requests of the window that
    /// found every place of their load thread taken when due and waited for
    /// one (their latency still counts from when they were due), the ones the
    /// run's end cut off while waiting included.
    pub waited_for_place: u64,
    /// The open model: the most requests in flight over all load threads
    /// when a request of the window took its place.
    pub in_flight_max: usize,
    /// `--timeline`: the per-interval counts; `None` without it.
    pub timeline: Option<Timeline>,
    /// `--hold` over several processes: the CPU time the child processes
    /// spent over their windows (each reads its own, as the parent reads
    /// its own in `loadgen_usage`), summed; zero in a single process.
    pub children_cpu: CpuTimes,
    /// Requests finished so far (answered or failed, warm-up included), published
    /// for the progress bar. Only this thread writes it.
    progress: Arc<AtomicU64>,
    /// The value last published to `progress`.
    finished: u64,
}

impl Recorder {
    /// An empty recorder for `window`, whose histograms hold latencies up to
    /// `longest` (see [`histogram_max_us`]), publishing its progress to
    /// `progress`.
    pub fn new(
        window: Window,
        open_loop: bool,
        longest: Duration,
        progress: Arc<AtomicU64>,
    ) -> Recorder {
        let max_us = histogram_max_us(longest);
        Recorder {
            window,
            open_loop,
            max_us,
            latency: new_histogram(max_us),
            latency_uncorrected: new_histogram(max_us),
            connect: new_histogram(max_us),
            workers: Vec::new(),
            requests_without_pid: 0,
            targets: Vec::new(),
            failures: [0; Failure::ALL.len()],
            statuses: Vec::new(),
            scheduled: 0,
            unanswered_at_end: 0,
            reconnects: 0,
            moved: Moved::default(),
            waited_for_place: 0,
            in_flight_max: 0,
            timeline: None,
            children_cpu: CpuTimes::default(),
            progress,
            finished: 0,
        }
    }

    /// This recorder with a `--timeline` of intervals `interval` wide, if given.
    pub fn with_timeline(mut self, interval: Option<Duration>) -> Recorder {
        self.timeline = interval.map(|interval| Timeline {
            interval,
            slots: Vec::new(),
        });
        self
    }

    /// The measurement window.
    pub fn window(&self) -> Window {
        self.window
    }

    /// Records one request: a latency sample if it succeeded inside the window, a
    /// failure count if it failed there, nothing if it was warm-up.
    pub fn record(&mut self, sample: &Sample) {
        self.finished += 1;
        self.progress.store(self.finished, Ordering::Relaxed);
        if !self.window.contains(sample.scheduled) {
            return;
        }
        self.moved.sent += sample.moved.sent;
        self.moved.received += sample.moved.received;
        self.record_in_timeline(sample);
        let answer = match sample.outcome {
            Ok(answer) => answer,
            Err(failure) => {
                self.failures[failure.index()] += 1;
                return;
            }
        };
        self.count_status(answer.status);
        if !(200..300).contains(&answer.status) {
            self.failures[Failure::BadStatus.index()] += 1;
            return;
        }
        let target = self.target_entry(sample.target);
        target.requests += 1;
        target.connections += u64::from(sample.first_on_connection);
        let latency_us = micros(sample.done - sample.scheduled);
        self.latency.saturating_record(latency_us);
        if self.open_loop {
            self.latency_uncorrected
                .saturating_record(micros(sample.done - sample.sent));
        }
        match answer.worker_pid {
            Some(pid) => {
                let worker = self.worker_entry(pid);
                worker.requests += 1;
                worker.connections += u64::from(sample.first_on_connection);
                worker.first = earliest(worker.first, Some(sample.done));
                worker.last = worker.last.max(Some(sample.done));
                worker.latency.saturating_record(latency_us);
            }
            None => self.requests_without_pid += 1,
        }
    }

    /// Counts a sample of the window in its `--timeline` interval, if any.
    fn record_in_timeline(&mut self, sample: &Sample) {
        let since = sample.scheduled - self.window.start;
        let Some(timeline) = &mut self.timeline else {
            return;
        };
        let slot = timeline.slot(since);
        match sample.outcome {
            Ok(answer) if (200..300).contains(&answer.status) => {
                add_pid(&mut slot.ok_by_pid, answer.worker_pid.unwrap_or(0), 1);
                let latency = micros(sample.done - sample.scheduled);
                slot.max_latency_us = slot.max_latency_us.max(latency);
            }
            Ok(_) => slot.failures[Failure::BadStatus.index()] += 1,
            Err(failure) => slot.failures[failure.index()] += 1,
        }
    }

    /// Records the time a connection took to be established, if the request it was
    /// opened for is inside the window.
    pub fn record_connect(&mut self, scheduled: Instant, took: Duration) {
        if self.window.contains(scheduled) {
            self.connect.saturating_record(micros(took));
        }
    }

    /// Counts one open-loop request scheduled at `at`, if inside the window.
    pub fn record_scheduled(&mut self, at: Instant) {
        if self.window.contains(at) {
            self.scheduled += 1;
        }
    }

    /// Counts one request scheduled at `scheduled` that found its idle
    /// connection closed and is sent again on a new one, if inside the window.
    pub fn record_reconnect(&mut self, scheduled: Instant) {
        if self.window.contains(scheduled) {
            self.reconnects += 1;
        }
    }

    /// The open model: a request scheduled at `scheduled` found every place
    /// of its thread taken and waits for one; counted if inside the window.
    pub fn record_waited(&mut self, scheduled: Instant) {
        if self.window.contains(scheduled) {
            self.waited_for_place += 1;
        }
    }

    /// The open model: a request scheduled at `scheduled` took a place, with
    /// `in_flight` requests in flight over all threads (itself included);
    /// counted if inside the window.
    pub fn record_in_flight(&mut self, scheduled: Instant, in_flight: usize) {
        if self.window.contains(scheduled) {
            self.in_flight_max = self.in_flight_max.max(in_flight);
        }
    }

    /// Counts `count` requests of the window that the end of the run cut off.
    pub fn record_unanswered(&mut self, count: u64) {
        self.unanswered_at_end += count;
    }

    /// Counts `count` open-loop requests of the window that were due but never
    /// sent, because the run's hard stop came first: each is scheduled and
    /// unanswered, so that `scheduled` stays `ok + failed + unanswered_at_end`.
    pub fn record_unsent(&mut self, count: u64) {
        self.scheduled = self.scheduled.saturating_add(count);
        self.unanswered_at_end = self.unanswered_at_end.saturating_add(count);
    }

    /// Successful requests recorded.
    pub fn requests(&self) -> u64 {
        self.latency.len()
    }

    /// Failed requests recorded, all kinds.
    pub fn failed(&self) -> u64 {
        self.failures.iter().sum()
    }

    /// Adds `other`'s figures to this one's.
    pub fn merge(&mut self, other: &Recorder) {
        let same_bounds = "histograms with the same bounds always add";
        self.latency.add(&other.latency).expect(same_bounds);
        self.latency_uncorrected
            .add(&other.latency_uncorrected)
            .expect(same_bounds);
        self.connect.add(&other.connect).expect(same_bounds);
        for worker in &other.workers {
            let mine = self.worker_entry(worker.pid);
            mine.requests += worker.requests;
            mine.connections += worker.connections;
            mine.first = earliest(mine.first, worker.first);
            mine.last = mine.last.max(worker.last);
            mine.latency.add(&worker.latency).expect(same_bounds);
        }
        self.requests_without_pid += other.requests_without_pid;
        for (index, theirs) in other.targets.iter().enumerate() {
            let mine = self.target_entry(index);
            mine.requests += theirs.requests;
            mine.connections += theirs.connections;
        }
        for (mine, theirs) in self.failures.iter_mut().zip(other.failures) {
            *mine += theirs;
        }
        for &(status, count) in &other.statuses {
            self.status_entry(status).1 += count;
        }
        self.scheduled += other.scheduled;
        self.unanswered_at_end += other.unanswered_at_end;
        self.reconnects += other.reconnects;
        self.waited_for_place += other.waited_for_place;
        self.in_flight_max = self.in_flight_max.max(other.in_flight_max);
        self.moved.sent += other.moved.sent;
        self.moved.received += other.moved.received;
        self.children_cpu.user += other.children_cpu.user;
        self.children_cpu.system += other.children_cpu.system;
        match (&mut self.timeline, &other.timeline) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.timeline = Some(theirs.clone()),
            _ => {}
        }
    }

    fn target_entry(&mut self, index: usize) -> &mut TargetCount {
        if self.targets.len() <= index {
            self.targets.resize(index + 1, TargetCount::default());
        }
        &mut self.targets[index]
    }

    fn count_status(&mut self, status: u16) {
        self.status_entry(status).1 += 1;
    }

    fn worker_entry(&mut self, pid: u32) -> &mut WorkerCount {
        let at = match self.workers.iter().position(|worker| worker.pid == pid) {
            Some(at) => at,
            None => {
                self.workers.push(WorkerCount {
                    pid,
                    requests: 0,
                    connections: 0,
                    first: None,
                    last: None,
                    latency: new_histogram(self.max_us),
                });
                self.workers.len() - 1
            }
        };
        &mut self.workers[at]
    }

    fn status_entry(&mut self, status: u16) -> &mut (u16, u64) {
        let at = match self.statuses.iter().position(|entry| entry.0 == status) {
            Some(at) => at,
            None => {
                self.statuses.push((status, 0));
                self.statuses.len() - 1
            }
        };
        &mut self.statuses[at]
    }
}

/// The earlier of two optional instants (`None` is no instant, not the earliest).
fn earliest(one: Option<Instant>, other: Option<Instant>) -> Option<Instant> {
    match (one, other) {
        (Some(one), Some(other)) => Some(one.min(other)),
        (one, other) => one.or(other),
    }
}

/// A duration in whole µs, for the histograms.
fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(start: Instant, open_loop: bool) -> Recorder {
        let window = Window {
            start,
            end: start + Duration::from_secs(10),
        };
        Recorder::new(window, open_loop, Duration::from_secs(15), Arc::default())
    }

    /// (pid, requests, connections) of every worker seen.
    fn counts(recorder: &Recorder) -> Vec<(u32, u64, u64)> {
        recorder
            .workers
            .iter()
            .map(|worker| (worker.pid, worker.requests, worker.connections))
            .collect()
    }

    fn answered(
        scheduled: Instant,
        sent_after_ms: u64,
        took_ms: u64,
        status: u16,
        pid: Option<u32>,
    ) -> Sample {
        let sent = scheduled + Duration::from_millis(sent_after_ms);
        Sample {
            scheduled,
            sent,
            done: sent + Duration::from_millis(took_ms),
            outcome: Ok(Answer {
                status,
                worker_pid: pid,
            }),
            first_on_connection: false,
            target: 0,
            moved: Moved {
                sent: 100,
                received: 50,
            },
        }
    }

    /// Warm-up requests are not recorded; failures and bad statuses are counted
    /// but are not latency samples.
    #[test]
    fn records_only_the_window_and_only_successes() {
        let start = Instant::now() + Duration::from_secs(1);
        let mut recorder = recorder(start, false);
        recorder.record(&answered(
            start - Duration::from_millis(1),
            0,
            5,
            200,
            Some(1),
        ));
        recorder.record(&answered(start, 0, 5, 200, Some(1)));
        recorder.record(&answered(start, 0, 5, 503, Some(1)));
        recorder.record(&Sample {
            outcome: Err(Failure::Reset),
            ..answered(start, 0, 5, 200, None)
        });
        assert_eq!(recorder.requests(), 1);
        assert_eq!(recorder.failed(), 2);
        assert_eq!(recorder.failures[Failure::BadStatus.index()], 1);
        assert_eq!(recorder.failures[Failure::Reset.index()], 1);
        assert_eq!(recorder.statuses, vec![(200, 1), (503, 1)]);
        assert_eq!(counts(&recorder), vec![(1, 1, 0)]);
    }

    /// In open loop the corrected latency counts from the scheduled start and the
    /// uncorrected one from the send.
    #[test]
    fn open_loop_keeps_both_latencies() {
        let start = Instant::now();
        let mut recorder = recorder(start, true);
        recorder.record(&answered(start, 500, 2, 200, Some(1)));
        assert!(recorder.latency.max() >= 500_000);
        assert!(recorder.latency_uncorrected.max() < 10_000);
    }

    /// Each worker's first and last answer are kept across threads.
    #[test]
    fn keeps_each_workers_first_and_last_answer() {
        let start = Instant::now();
        let mut one = recorder(start, false);
        let mut two = recorder(start, false);
        one.record(&answered(start, 0, 5, 200, Some(7)));
        one.record(&answered(start, 0, 9, 200, Some(7)));
        two.record(&answered(start, 0, 2, 200, Some(7)));
        one.merge(&two);
        let seven = &one.workers[0];
        assert_eq!(seven.first, Some(start + Duration::from_millis(2)));
        assert_eq!(seven.last, Some(start + Duration::from_millis(9)));
    }

    /// Regression (issue 10, extra): the histograms hold the longest latency
    /// the run can measure. A run of 10 s with `--timeout 120s` records a
    /// latency of 100 s as 100 s (within the histogram's 0.1 %); it used to be
    /// capped at 60 s without a word. A short run keeps the 60 s bound.
    #[test]
    fn histograms_hold_latencies_up_to_the_runs_hard_stop() {
        let start = Instant::now();
        let window = Window {
            start,
            end: start + Duration::from_secs(10),
        };
        let longest = Duration::from_secs(10 + 120);
        let mut recorder = Recorder::new(window, true, longest, Arc::default());
        recorder.record(&Sample {
            scheduled: start,
            sent: start + Duration::from_secs(90),
            done: start + Duration::from_secs(100),
            outcome: Ok(Answer {
                status: 200,
                worker_pid: None,
            }),
            first_on_connection: false,
            target: 0,
            moved: Moved::default(),
        });
        recorder.record_connect(start, Duration::from_secs(100));
        for histogram in [&recorder.latency, &recorder.connect] {
            let max = histogram.max();
            assert!(
                (99_900_000..=100_100_000).contains(&max),
                "100 s recorded as {max} µs"
            );
        }
        assert!(recorder.latency_uncorrected.max() >= 9_990_000);

        assert_eq!(
            histogram_max_us(Duration::from_secs(15)),
            HISTOGRAM_MIN_MAX_US
        );
        assert_eq!(histogram_max_us(Duration::MAX), HISTOGRAM_MAX_MAX_US);
        // Bounds up to the most HdrHistogram takes are accepted.
        assert!(new_histogram(histogram_max_us(Duration::MAX)).high() >= HISTOGRAM_MAX_MAX_US);
    }

    /// Merging adds every figure, workers by pid.
    #[test]
    fn merges() {
        let start = Instant::now();
        let mut one = recorder(start, false);
        let mut two = recorder(start, false);
        one.record(&Sample {
            first_on_connection: true,
            ..answered(start, 0, 1, 200, Some(7))
        });
        two.record(&answered(start, 0, 1, 200, Some(7)));
        two.record(&Sample {
            target: 2,
            first_on_connection: true,
            ..answered(start, 0, 1, 200, Some(8))
        });
        two.record(&answered(start, 0, 1, 200, None));
        two.record(&Sample {
            target: 1,
            ..answered(start, 0, 1, 503, Some(8))
        });
        two.record_connect(start, Duration::from_micros(80));
        two.record_unanswered(3);
        two.record_reconnect(start);
        two.record_reconnect(start - Duration::from_millis(1));
        // Warm-up: its bytes are not the window's.
        two.record(&answered(start - Duration::from_millis(1), 0, 1, 200, None));
        one.merge(&two);
        assert_eq!(one.requests(), 4);
        assert_eq!(one.requests_without_pid, 1);
        assert_eq!(counts(&one), vec![(7, 2, 1), (8, 1, 1)]);
        // Each worker's latency histogram holds its requests; together they
        // hold the pooled one's, but for the answer without a pid.
        let per_pid: Vec<u64> = one.workers.iter().map(|w| w.latency.len()).collect();
        assert_eq!(per_pid, vec![2, 1]);
        assert_eq!(
            per_pid.iter().sum::<u64>() + one.requests_without_pid,
            one.latency.len()
        );
        // Per target: only successful answers count (target 1's was a 503).
        let target = |requests, connections| TargetCount {
            requests,
            connections,
        };
        assert_eq!(one.targets, vec![target(3, 1), target(0, 0), target(1, 1)]);
        assert_eq!(one.connect.len(), 1);
        // pid 7's answers: at start + 1 ms on both threads, so first = last.
        let seven = &one.workers[0];
        assert_eq!(seven.first, Some(start + Duration::from_millis(1)));
        assert_eq!(seven.first, seven.last);
        assert_eq!(one.unanswered_at_end, 3);
        // The reconnect before the window (warm-up) is not counted.
        assert_eq!(one.reconnects, 1);
        // The bytes of the window's five requests, the 503 too.
        assert_eq!(
            one.moved,
            Moved {
                sent: 500,
                received: 250
            }
        );
    }
}
