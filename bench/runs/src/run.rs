//! The report of one run: the types that `loadgen --json` serialises as they
//! are (the shape is `bench/runs/schema.json`) and the renderer reads back,
//! and the statistics over a set of counts, computed here, once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::labels::Labels;

/// The `format` of the JSON report; bumped when a field changes meaning or goes.
pub const FORMAT: &str = "loadgen-report/1";

/// Below this share of the asked rate (`requests.achieved_ratio`), the target
/// of an open loop did not keep up: loadgen's note says so, and so does the
/// report's sentence under §1.
pub const KEPT_UP_RATIO: f64 = 0.97;

/// The SIGKILL that `--kill` sent during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// The process killed.
    pub pid: u32,
    /// When SIGKILL was sent, ms from the run's start; `null` if it was not
    /// (see `error`).
    pub at_ms: Option<f64>,
    /// Why it was not sent (the process was already gone); `null` if it was.
    pub error: Option<String>,
}

/// One SIGSTOP … SIGCONT that `--stop` made during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    /// The process stopped.
    pub pid: u32,
    /// When SIGSTOP was sent, ms from the run's start; `null` if it was not
    /// (see `error`).
    pub stopped_at_ms: Option<f64>,
    /// When SIGCONT was sent, ms from the run's start; `null` if it was not.
    pub continued_at_ms: Option<f64>,
    /// Why a signal was not sent (the process was gone, the run ended
    /// first); `null` if both were.
    pub error: Option<String>,
}

/// With `--stop`: how many requests waited behind the stalled process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StallWaits {
    /// `--stop-for`, ms.
    pub stop_for_ms: f64,
    /// Successful requests of the window whose latency was at least
    /// `--stop-for`: those that waited a whole stall.
    pub at_least_stall: u64,
    /// Those whose latency was at least a tenth of `--stop-for`: a request
    /// arriving in the middle of a stall waits only its rest, so this counts
    /// every request that waited behind it for long (below saturation no
    /// other request comes near it).
    pub at_least_tenth: u64,
}

impl StallWaits {
    /// `at_least_tenth` counts the latencies of at least `--stop-for` over
    /// this: a tenth of the stall.
    pub const TENTH_DIVISOR: u32 = 10;
}

/// Everything a run measured, with its parameters and machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: String,
    /// The version of loadgen that measured.
    pub loadgen_version: String,
    /// When the run started, UTC, RFC 3339.
    pub started_at: String,
    /// What was asked.
    pub parameters: Parameters,
    /// Where it ran.
    pub machine: Machine,
    /// The load generator's own fd limit.
    pub fd_limit: FdLimit,
    /// When each phase began and ended, from the run's start.
    pub phases: Phases,
    /// Counts and rates.
    pub requests: Requests,
    /// The latency histograms.
    pub latency: Latencies,
    /// The spread of the answers over the worker pids.
    pub workers: Workers,
    /// One entry per `--target`, in order: the connections and requests it
    /// answered. Empty in reports written before `--target` was repeatable.
    #[serde(default)]
    pub targets: Vec<TargetShare>,
    /// Failed requests by kind, and answers by status.
    pub errors: Errors,
    /// One entry per `--watch PID`.
    pub watch: Vec<WatchReport>,
    /// `--label KEY=VALUE`: what the run was, for a report over many runs
    /// (see [`Labels`]). Empty without labels.
    #[serde(default)]
    pub labels: Labels,
    /// `--kill PID --kill-after D`: the worker killed mid-run; `null` without.
    #[serde(default)]
    pub fault: Option<Fault>,
    /// `--stop PID --stop-after T... --stop-for D`: one entry per
    /// `--stop-after`. Empty without `--stop`, and in reports written before it.
    #[serde(default)]
    pub stalls: Vec<Stall>,
    /// With `--stop`: the requests that waited behind the stalls; `null`
    /// without, and in reports written before `--stop`.
    #[serde(default)]
    pub stall_waits: Option<StallWaits>,
    /// loadgen's own CPU time over the window; `null` if it could not be read,
    /// and in reports written before it was measured.
    #[serde(default)]
    pub loadgen_usage: Option<LoadgenUsage>,
    /// The whole machine's CPU over the window (`/proc/stat`): what the
    /// server and loadgen could have had, and what others took; `null` if
    /// it could not be read, and in reports written before it was recorded.
    #[serde(default)]
    pub machine_usage: Option<MachineUsage>,
    /// The bytes the window's requests moved each way; `null` in reports
    /// written before loadgen counted them.
    #[serde(default)]
    pub bytes: Option<BytesMoved>,
    /// Where loadgen and the watched processes could run; `null` if it could
    /// not be read, and in reports written before it was recorded.
    #[serde(default)]
    pub affinity: Option<Affinity>,
    /// `--timeline`: the window interval by interval; `null` without it (and
    /// in reports written before it existed).
    #[serde(default)]
    pub timeline: Option<Timeline>,
    /// `--hold`: how the connections were opened and held; `null` in the
    /// other models, and absent in reports written before it.
    #[serde(default)]
    pub hold: Option<Hold>,
    /// The upgrades `suite upgrade` made during the run, which it adds
    /// to the JSON loadgen wrote; `null` otherwise (loadgen never writes it).
    #[serde(default)]
    pub upgrades: Option<Upgrades>,
    /// `--slo EXPR`: each threshold, in the order given, with what the run
    /// measured and whether it held. Empty without `--slo`, and absent in
    /// reports written before it.
    #[serde(default)]
    pub slo: Vec<SloResult>,
    /// Sentences for a person: what went wrong or deserves a look.
    pub notes: Vec<String>,
}

/// The machine a run was measured on: a figure is only comparable with
/// figures from the same CPU, core count and kernel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU model (`model name` of `/proc/cpuinfo`), or `unknown`.
    pub cpu_model: String,
    /// The machine's online CPUs (`sysconf(_SC_NPROCESSORS_ONLN)`), whatever
    /// loadgen could use: a run pinned to one CPU still ran on a machine of
    /// this many, and where it ran is the JSON's `affinity`.
    pub cores: usize,
    /// The kernel release (`/proc/sys/kernel/osrelease`), or `unknown`.
    pub kernel: String,
    /// The operating system, as Rust names it (`linux`).
    pub os: String,
}

/// The load generator's `RLIMIT_NOFILE` during the run: each connection is
/// an fd (two in open loop), so running out is explained by this rather than
/// mysterious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdLimit {
    /// The soft limit it was started with.
    pub soft_at_start: u64,
    /// The soft limit during the run (the hard limit, unless raising failed).
    pub soft: u64,
    /// The hard limit, which only a privileged process may raise.
    pub hard: u64,
}

impl FdLimit {
    /// Whether `needed` fds fit under the soft limit.
    pub fn fits(&self, needed: u64) -> bool {
        needed <= self.soft
    }
}

/// `--timeline`: the window cut into `--sample-interval`s; each request is
/// counted in the interval it was scheduled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// The width of an interval, ms.
    pub interval_ms: f64,
    /// The window's start (interval 0 begins there), ms since the Unix epoch,
    /// to line the intervals up with another process's clock.
    pub start_unix_ms: f64,
    /// The intervals, in order from the window's start.
    pub intervals: Vec<TimelineInterval>,
}

/// What became of the requests scheduled in one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineInterval {
    /// Successful answers by `x-worker-pid` (0: an answer without one).
    pub ok_by_pid: BTreeMap<u32, u64>,
    /// Failed requests by kind (as `errors`), only the kinds that occurred.
    pub failed: BTreeMap<String, u64>,
    /// The longest latency of its successful requests, µs; `null` without any.
    pub max_latency_us: Option<u64>,
}

/// What `suite upgrade` did during a run: masters replaced under load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upgrades {
    /// Each worker's `--init-delay`, ms.
    pub init_delay_ms: f64,
    /// `net.ipv4.tcp_migrate_req` where the servers ran; `null` if unreadable.
    pub tcp_migrate_req: Option<u8>,
    /// Whether the run had a network namespace of its own (`unshare -n`).
    pub netns: bool,
    /// `uname -r`.
    pub kernel: String,
    /// The upgrades, in order.
    pub events: Vec<UpgradeEvent>,
}

/// One master replaced by another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpgradeEvent {
    /// When it began (the new master started, or for `restart` the SIGTERM
    /// to the old one), ms since the Unix epoch; the times below count from it.
    pub at_unix_ms: f64,
    /// The master replaced.
    pub old_master: u32,
    /// Its workers, from its `ready` line.
    pub old_workers: Vec<u32>,
    /// The new master.
    pub new_master: u32,
    /// Its workers, from its `ready` line.
    pub new_workers: Vec<u32>,
    /// When the new master was started, ms.
    pub new_start_ms: f64,
    /// When it printed `ready`, ms.
    pub new_ready_ms: f64,
    /// When the old master exited, ms.
    pub old_exit_ms: f64,
    /// Its exit code; `null` if a signal ended it.
    pub old_exit_code: Option<i32>,
    /// The `to_pid` of the old master's `handover` line (a takeover: the new
    /// master); `null` if it printed none, and in runs written before it was
    /// recorded.
    #[serde(default)]
    pub old_handover_to: Option<u32>,
    /// The `takeover_from` of the new master's `ready` line (a takeover: the
    /// old master); `null` without one, and in runs written before it was
    /// recorded.
    #[serde(default)]
    pub new_takeover_from: Option<u32>,
}

/// The run's parameters, as used (defaults filled in).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Parameters {
    /// The first `--target` URL (the only one of most runs).
    pub target: String,
    /// Every `--target` URL, in order; connection i went to target i mod n.
    /// Empty in reports written before `--target` was repeatable (read
    /// `target` then).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Closed loop or open loop (`--rate`).
    #[serde(rename = "loop")]
    pub load_loop: LoadLoop,
    /// Concurrent connections.
    pub connections: usize,
    /// Load threads, each with its own event loop.
    pub threads: usize,
    /// The measured time, after the warm-up, in seconds.
    pub duration_s: f64,
    /// The warm-up, not recorded, in seconds.
    pub warmup_s: f64,
    /// Open loop: the asked rate over all connections; `null` in closed loop.
    pub rate_per_s: Option<f64>,
    /// Whether every request had its own TCP connection.
    pub new_conn: bool,
    /// How long one request may take, in seconds.
    pub timeout_s: f64,
    /// The `--watch` sampling interval, in milliseconds.
    pub sample_interval_ms: f64,
    /// The watched pids.
    pub watch: Vec<u32>,
    /// The command line, to run it again.
    pub command_line: Vec<String>,
    /// `--mix PATH=WEIGHT`: the paths drawn per request, with their weights;
    /// empty without `--mix` (every request goes to its target's path), and
    /// in reports written before it.
    #[serde(default)]
    pub mix: Vec<MixEntry>,
    /// `--seed`: the seed of the `--mix` draw and of `--arrivals poisson`;
    /// `null` without either.
    #[serde(default)]
    pub seed: Option<u64>,
    /// `--arrivals`: how the open loop spaced its requests; `null` in closed
    /// loop, and absent in reports written before it (their open loops were
    /// all `uniform`).
    #[serde(default)]
    pub arrivals: Option<Arrivals>,
    /// `--body-bytes`: each request was a `POST` with a body of this many
    /// bytes; `null` for `GET`s, and absent in reports written before it
    /// (their requests were all `GET`s).
    #[serde(default)]
    pub body_bytes: Option<u64>,
    /// `--source-ips`: the loopback addresses the connections were bound to
    /// before connect(2), round robin (connection i from address i mod n);
    /// empty: the kernel chose (127.0.0.1 toward a loopback target). Absent
    /// in reports written before it.
    #[serde(default)]
    pub source_ips: Vec<String>,
}

/// `--hold`: every connection opened first, as fast as the server takes
/// them, then held open for the run, each sending one request every
/// `interval_s`, so that what the server's figures show is what is held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// `--connections`: how many were to be opened.
    pub connections: u64,
    /// How many were open when the schedule began: the rest failed to open
    /// (`failed_to_open`) and are not retried.
    pub held: u64,
    /// `--hold-interval`: each held connection's time between requests.
    pub interval_s: f64,
    /// The processes that held them (`--processes`): one unless one
    /// process's fd limit does not hold them all.
    pub processes: u64,
    /// From the first connect(2) to the last connection open or failed, ms.
    pub open_time_ms: f64,
    /// Each opening connection's connect(2) to established, µs; `null` when
    /// none opened.
    pub connect: Option<HistogramSummary>,
    /// Connections that failed to open, by kind (every kind present, most
    /// 0): `connect_refused`, `reset`, `timeout`, `fd_exhaustion` (EMFILE or
    /// ENFILE on loadgen's side), `port_exhaustion` (EADDRNOTAVAIL: no free
    /// local port), `other`. A server out of fds does not fail a connect:
    /// the kernel completes the handshake into its accept queue; the
    /// connection fails later, as a `reset` or `timeout` of its requests,
    /// or once the queue is full as a `timeout` of the connect.
    pub failed_to_open: BTreeMap<String, u64>,
}

/// How an open loop spaces its requests over time (`parameters.arrivals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Evenly, 1/rate apart: the schedule of wrk2 and of every open loop
    /// before `--arrivals`.
    Uniform,
    /// A Poisson process at the rate: exponential gaps of mean 1/rate, as
    /// independent users arrive, drawn from `--seed`.
    Poisson,
}

impl Arrivals {
    /// The name `--arrivals` and the JSON give it.
    pub fn name(self) -> &'static str {
        match self {
            Arrivals::Uniform => "uniform",
            Arrivals::Poisson => "poisson",
        }
    }
}

/// The exit code of a run whose `--slo` thresholds did not all hold: 99,
/// k6's code for failed thresholds, so a pipeline that knows k6 reads it
/// alike. It is apart from 1 (loadgen failed: no verdict) and 2 (bad usage),
/// and below 126, where the shell's codes for a command not run and for
/// death by a signal (128 + N) begin. Its report is whole: whoever runs
/// loadgen reads the verdicts from `slo`.
pub const SLO_FAILED_EXIT_CODE: u8 = 99;

/// One `--slo` threshold after the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloResult {
    /// The threshold as given, e.g. `p99<=10ms`.
    pub expr: String,
    /// What the run measured, in the unit of the report's own field: µs for
    /// a percentile (as `latency.request`), a count for `errors`, a share
    /// from 0 to 1 for `answered`, requests/s for `rps`; `null` when there
    /// was nothing to measure (a percentile of no sample), which fails.
    pub value: Option<f64>,
    /// Whether the threshold held.
    pub pass: bool,
}

/// One path of `--mix` and its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixEntry {
    /// The path and query sent, e.g. `/?work_us=5000`.
    pub path: String,
    /// Its weight: it is drawn with probability weight / the sum of weights.
    pub weight: u32,
}

/// How the next request is timed (`parameters.loop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadLoop {
    /// Each connection sends its next request when the previous answer is complete.
    Closed,
    /// Requests are sent at `--rate` whatever the answers.
    Open,
}

/// Where request latency counts from (`latency.measured_from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasuredFrom {
    /// The request's send (closed loop).
    Send,
    /// The request's intended start on the open loop's schedule: coordinated
    /// omission corrected, as wrk2 does.
    IntendedStart,
}

/// Phase boundaries, in milliseconds from the run's start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phases {
    /// The end of the warm-up: measurement starts.
    pub measure_start_ms: f64,
    /// The end of `--duration`: no request is scheduled after it.
    pub measure_end_ms: f64,
    /// When the last connection finished (requests in flight at the end drain).
    pub run_end_ms: f64,
}

/// How many requests, how fast.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Requests {
    /// Requests of the window answered with a 2xx status: the latency samples.
    pub ok: u64,
    /// Requests of the window that failed (see `errors`).
    pub failed: u64,
    /// `ok` per second of the window.
    pub per_s: f64,
    /// Open loop: the asked rate; `null` in closed loop.
    pub asked_per_s: Option<f64>,
    /// Open loop: `per_s / asked_per_s`; `null` in closed loop.
    pub achieved_ratio: Option<f64>,
    /// Open loop: requests due in the window; `null` in closed loop.
    pub scheduled: Option<u64>,
    /// Requests of the window still unanswered when the run ended (`timeout`
    /// after the window), sent and cut off or never sent (an open loop the
    /// server fell behind): neither samples nor failures. In open loop,
    /// `ok + failed + unanswered_at_end` is `scheduled`.
    pub unanswered_at_end: u64,
    /// Connections opened in the window (one per request under `--new-conn`).
    pub connections_opened: u64,
    /// Requests of the window that found their keep-alive connection closed by
    /// the server while idle (before any byte of an answer) and were sent again
    /// on a new connection, as wrk and oha do: not failures, but each opened a
    /// connection. 0 in reports written before loadgen counted them.
    #[serde(default)]
    pub reconnects: u64,
    /// The open model of `--new-conn --rate` (each due request on its own
    /// connection): its bound on requests in flight and what reaching it
    /// cost; `null` in the other models, absent in reports written before it.
    #[serde(default)]
    pub in_flight: Option<InFlight>,
}

/// The open model's requests in flight: each due request starts on its own
/// connection, at most `bound` at once; a request due when `bound` are in
/// flight waits for a place, its latency still counted from when it was due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// The most requests in flight at once: `--connections`.
    pub bound: usize,
    /// The most in flight when a request of the window took its place.
    pub max: usize,
    /// Requests of the window that found their load thread's places all taken
    /// when due and waited for one: the bound was reached; 0 when it never was.
    pub waited: u64,
}

/// The latency histograms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latencies {
    /// Where request latency counts from.
    pub measured_from: MeasuredFrom,
    /// Latency of the successful requests; `null` without any.
    pub request: Option<HistogramSummary>,
    /// Open loop: latency from the actual send, which a stall hides in; `null` in
    /// closed loop, where it equals `request`.
    pub request_uncorrected: Option<HistogramSummary>,
    /// Time to establish a connection (from socket(2) until established); `null` if no
    /// connection was opened in the window (keep-alive connections open in the
    /// warm-up).
    pub connect: Option<HistogramSummary>,
}

/// One HdrHistogram, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramSummary {
    /// Samples.
    pub count: u64,
    /// Smallest sample, µs.
    pub min_us: u64,
    /// Largest sample, µs.
    pub max_us: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Standard deviation, µs.
    pub stdev_us: f64,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p99_9_us: u64,
    /// 99.99th percentile, µs.
    pub p99_99_us: u64,
    /// The whole percentile spectrum, for a chart (HdrHistogram's percentile
    /// distribution).
    pub spectrum: Vec<SpectrumPoint>,
}

/// One point of a percentile spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    /// The percentile, 0 to 100.
    pub percentile: f64,
    /// The latency at that percentile, µs.
    pub value_us: u64,
}

/// The answers per worker pid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workers {
    /// One entry per `x-worker-pid` seen, by pid.
    pub by_pid: Vec<WorkerShare>,
    /// Successful answers without a numeric `x-worker-pid`.
    pub requests_without_pid: u64,
    /// How evenly requests spread over the pids seen, and over the workers
    /// that answered nothing when the label `workers` says how many there
    /// are (each counts 0); `null` without any.
    pub requests_fairness: Option<Fairness>,
    /// How evenly connections spread, counted as `requests_fairness`.
    pub connections_fairness: Option<Fairness>,
}

/// What one worker pid answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerShare {
    /// The `x-worker-pid`.
    pub pid: u32,
    /// Successful requests it answered.
    pub requests: u64,
    /// Its share of the successful requests that named a pid, 0 to 1.
    pub requests_share: f64,
    /// Connections whose first answer in the window came from it.
    pub connections: u64,
    /// Its first answer of the window, ms from the run's start.
    pub first_ms: Option<f64>,
    /// Its last answer of the window, ms from the run's start.
    pub last_ms: Option<f64>,
    /// The latency of the requests it answered, measured as `latency.request`;
    /// its `count` is `requests`, and the counts of every pid plus
    /// `requests_without_pid` make `latency.request.count`. `null` in reports
    /// written before loadgen kept one per pid.
    #[serde(default)]
    pub latency: Option<HistogramSummary>,
}

/// How evenly a load spread over workers. Only pids that answered at least once
/// are seen, so a worker that got nothing at all does not show here.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fairness {
    /// Largest count over smallest; `null` if the smallest is 0. 1 is even.
    pub max_min_ratio: Option<f64>,
    /// Standard deviation over mean (population). 0 is even.
    pub coefficient_of_variation: f64,
    /// Jain's index (Σx)² / (n·Σx²): 1 is even, 1/n is all on one.
    pub jain_index: f64,
}

impl Fairness {
    /// The fairness of `counts`; `None` if there are none or all are zero.
    pub fn of(counts: &[u64]) -> Option<Fairness> {
        let n = counts.len() as f64;
        let sum: f64 = counts.iter().map(|&count| count as f64).sum();
        if counts.is_empty() || sum == 0.0 {
            return None;
        }
        let sum_of_squares: f64 = counts.iter().map(|&count| (count as f64).powi(2)).sum();
        let mean = sum / n;
        let variance = sum_of_squares / n - mean * mean;
        let max = counts.iter().copied().max().unwrap_or_default();
        let min = counts.iter().copied().min().unwrap_or_default();
        Some(Fairness {
            max_min_ratio: (min > 0).then(|| max as f64 / min as f64),
            coefficient_of_variation: variance.max(0.0).sqrt() / mean,
            jain_index: sum * sum / (n * sum_of_squares),
        })
    }
}

/// What one `--target` answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetShare {
    /// Its URL, as given.
    pub url: String,
    /// Connections to it whose first answer in the window was successful (as
    /// a worker's `connections`): under `--new-conn`, one per request.
    pub connections: u64,
    /// Successful requests of the window it answered.
    pub requests: u64,
}

/// loadgen's own CPU time over the measured window (getrusage(2) at the
/// window's start and end): what the load generator cost, next to the server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadgenUsage {
    /// User CPU, ms.
    pub cpu_user_ms: f64,
    /// System CPU, ms.
    pub cpu_system_ms: f64,
    /// CPU (user + system) per 1,000 successful requests, ms; `null` without
    /// requests.
    pub cpu_ms_per_1000_requests: Option<f64>,
}

/// The bytes moved by the requests of the window (answered or failed, as far
/// as each got), counted by loadgen as it wrote and read them: what a
/// `--body-bytes` or `?bytes=N` run moves, beside the requests per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BytesMoved {
    /// Bytes loadgen wrote: request heads and bodies.
    pub sent_bytes: u64,
    /// Bytes loadgen read: answer heads and bodies.
    pub received_bytes: u64,
    /// `sent_bytes` per second of the window.
    pub sent_bytes_per_s: f64,
    /// `received_bytes` per second of the window.
    pub received_bytes_per_s: f64,
}

/// The whole machine's CPU over the measured window, from `/proc/stat` read
/// at the window's start and end: each figure is seconds of CPU summed over
/// every core, so `busy_s + idle_s + iowait_s + steal_s` is about
/// `window_s × cores`. Beside the server tree's and loadgen's own CPU it says
/// whether they had the machine to themselves: steal is CPU the hypervisor
/// gave to another guest, and busy time that is neither theirs was another
/// process's (another build, another benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MachineUsage {
    /// Wall time between the two readings, s.
    pub window_s: f64,
    /// The CPUs counted (the `cpuN` lines of `/proc/stat`).
    pub cores: usize,
    /// user + nice + system + irq + softirq, s (guest time is inside user).
    pub busy_s: f64,
    /// idle, s.
    pub idle_s: f64,
    /// iowait, s: idle with I/O outstanding.
    pub iowait_s: f64,
    /// steal, s: the hypervisor ran something else while this guest's CPUs
    /// wanted to run.
    pub steal_s: f64,
}

impl MachineUsage {
    /// The CPU the window held: `window_s × cores`, s.
    pub fn capacity_s(&self) -> f64 {
        self.window_s * self.cores as f64
    }
}

/// The CPUs loadgen and the watched processes were allowed to run on, read
/// when the warm-up ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affinity {
    /// loadgen's own allowed CPUs (sched_getaffinity(2)), ascending.
    pub loadgen: Vec<usize>,
    /// Each `--watch` pid's `Cpus_allowed_list` (`/proc/PID/status`), in
    /// `--watch` order; a pid that could not be read is left out (with a note).
    pub watched: Vec<WatchedAffinity>,
}

/// The allowed CPUs of one `--watch` pid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedAffinity {
    /// The watched pid.
    pub pid: u32,
    /// Its allowed CPUs, ascending.
    pub cpus: Vec<usize>,
}

/// Failed requests and statuses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Errors {
    /// All failed requests of the window (= `requests.failed`).
    pub total: u64,
    /// Failed requests by kind; every kind is present, most are 0.
    pub by_kind: BTreeMap<String, u64>,
    /// Answers of the window by status code (successful or not).
    pub statuses: BTreeMap<String, u64>,
}

/// One `--watch PID`: its tree's time series and summaries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchReport {
    /// The watched pid.
    pub pid: u32,
    /// Milliseconds from the run's start when it was found gone; `null` if it lived.
    pub gone_at_ms: Option<f64>,
    /// Why sampling stopped early, if a reading failed; `null` otherwise.
    pub error: Option<String>,
    /// The tree over the window: sums of the processes' figures.
    pub summary: UseSummary,
    /// Every process seen in the tree, the watched one first.
    pub processes: Vec<ProcessReport>,
    /// Every listening TCP socket the tree held, and its accept queue at
    /// each sample (`sock_diag`); empty in runs written before loadgen read
    /// them.
    #[serde(default)]
    pub listeners: Vec<ListenerReport>,
    /// The network namespace's `TcpExt` counters of connections turned away
    /// at a listener, at each sample (the namespace's, not the tree's: a run
    /// that attributes them runs in a namespace of its own).
    #[serde(default)]
    pub listen_counters: Vec<ListenCounterPoint>,
    /// `ListenOverflows` over the window (the last sample inside it less
    /// the first); `null` without two samples.
    #[serde(default)]
    pub listen_overflows: Option<u64>,
    /// `ListenDrops` over the window, the overflows among them; `null`
    /// without two samples.
    #[serde(default)]
    pub listen_drops: Option<u64>,
    /// Why the queues could not be read, after which only they stopped;
    /// `null` otherwise.
    #[serde(default)]
    pub queue_error: Option<String>,
    /// What the kernel charged to the tree's memory cgroup, when the
    /// watched process has one of its own (cgroup v1 `memory`); `null`
    /// otherwise, and in runs written before loadgen read it.
    #[serde(default)]
    pub memory_cgroup: Option<MemoryCgroupReport>,
}

/// The memory cgroup of a watched tree: the kernel memory its sockets take,
/// which no process's RSS shows, counted apart from the load generator's
/// (on loopback both ends of a connection live in the same kernel).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryCgroupReport {
    /// Its folder under the controller's mount point.
    pub path: String,
    /// Most kernel objects charged at a sample inside the window, bytes
    /// (`memory.kmem.usage_in_bytes`: sockets, inodes, files, epoll items).
    pub kernel_max_bytes: u64,
    /// Most TCP socket buffers charged at a sample inside the window, bytes
    /// (`memory.kmem.tcp.usage_in_bytes`).
    pub socket_buffers_max_bytes: u64,
    /// Most memory charged at a sample inside the window, bytes
    /// (`memory.usage_in_bytes`: user pages and kernel objects).
    pub charged_max_bytes: u64,
    /// Its counters at each sample.
    pub samples: Vec<MemoryPoint>,
    /// Why reading it stopped early; `null` otherwise.
    pub error: Option<String>,
}

/// A memory cgroup's counters at one sample, bytes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MemoryPoint {
    /// Milliseconds from the run's start.
    pub t_ms: f64,
    /// Kernel objects charged.
    pub kernel_bytes: u64,
    /// TCP socket buffers charged.
    pub socket_buffer_bytes: u64,
    /// Everything charged but the TCP buffers.
    pub charged_bytes: u64,
}

/// One listening socket of a watched tree: where connections wait until a
/// process of the tree accepts them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenerReport {
    /// The address it listens on, `IP:PORT`.
    pub address: String,
    /// The accept queue's limit: the `listen(2)` backlog, capped by
    /// `net.core.somaxconn`.
    pub limit: u32,
    /// The processes of the tree that held it (one socket shared by the
    /// master and every worker is one listener).
    pub holders: Vec<u32>,
    /// The most connections queued at a sample inside the window.
    pub queued_max: u32,
    /// Connections queued, at each sample.
    pub samples: Vec<QueuePoint>,
}

/// An accept queue's length at one sample.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct QueuePoint {
    /// Milliseconds from the run's start.
    pub t_ms: f64,
    /// Connections completed and not yet accepted.
    pub queued: u32,
}

/// The namespace's listen counters at one sample (`/proc/PID/net/netstat`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ListenCounterPoint {
    /// Milliseconds from the run's start.
    pub t_ms: f64,
    /// `TcpExt: ListenOverflows` since boot (or the namespace's creation).
    pub overflows: u64,
    /// `TcpExt: ListenDrops`, likewise.
    pub drops: u64,
}

/// One process of a watched tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessReport {
    /// Its pid.
    pub pid: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// Its command name.
    pub name: String,
    /// The watched process or one of its children.
    pub role: Role,
    /// Its figures over the window.
    pub summary: UseSummary,
    /// Its time series.
    pub samples: Vec<SamplePoint>,
}

/// Whether a process of a watched tree is the one `--watch` named or one of
/// its children (`role` in the JSON: `watched` or `child`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The process named by `--watch`.
    Watched,
    /// A child of it (a worker), found at some sample.
    Child,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Watched => "watched",
            Role::Child => "child",
        })
    }
}

/// One sample of one process.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SamplePoint {
    /// Milliseconds from the run's start.
    pub t_ms: f64,
    /// Open fds.
    pub fds: usize,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// User CPU time since the process started, ms.
    pub cpu_user_ms: f64,
    /// System CPU time since the process started, ms.
    pub cpu_system_ms: f64,
}

/// A process's (or a tree's) use of fds, memory and CPU over the window, from
/// the samples inside it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UseSummary {
    /// Samples inside the window (for a tree: sample times).
    pub samples: usize,
    /// Most fds open at a sample (for a tree: the largest sum at one sample).
    pub fds_max: usize,
    /// Mean fds open over the samples.
    pub fds_mean: f64,
    /// Largest RSS at a sample, bytes.
    pub rss_max_bytes: u64,
    /// Mean RSS over the samples, bytes.
    pub rss_mean_bytes: f64,
    /// User CPU used between the first and the last sample of the window, ms.
    pub cpu_user_ms: f64,
    /// System CPU used between the first and the last sample of the window, ms.
    pub cpu_system_ms: f64,
    /// CPU (user + system) in cores: CPU time over wall time between those samples.
    pub cpu_cores: Option<f64>,
    /// CPU (user + system) per 1,000 successful requests, ms; `null` without
    /// requests or with fewer than two samples.
    pub cpu_ms_per_1000_requests: Option<f64>,
}

impl Report {
    /// The master: the watched root of the first `--watch` tree.
    pub fn master(&self) -> Option<&ProcessReport> {
        let tree = self.watch.first()?;
        tree.processes
            .iter()
            .find(|process| process.role == Role::Watched)
            .or(tree.processes.first())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fairness: even counts are perfectly fair, all on one is the worst.
    #[test]
    fn fairness_figures() {
        let even = Fairness::of(&[100, 100, 100, 100]).expect("counts");
        assert_eq!(even.max_min_ratio, Some(1.0));
        assert!(even.coefficient_of_variation.abs() < 1e-12);
        assert!((even.jain_index - 1.0).abs() < 1e-12);

        let skewed = Fairness::of(&[300, 100]).expect("counts");
        assert_eq!(skewed.max_min_ratio, Some(3.0));
        assert!((skewed.coefficient_of_variation - 0.5).abs() < 1e-12);
        // (400)² / (2 · (90000 + 10000)) = 0.8
        assert!((skewed.jain_index - 0.8).abs() < 1e-12);

        let one_idle = Fairness::of(&[100, 0]).expect("counts");
        assert_eq!(one_idle.max_min_ratio, None);
        assert!((one_idle.jain_index - 0.5).abs() < 1e-12);

        assert_eq!(Fairness::of(&[]), None);
        assert_eq!(Fairness::of(&[0, 0]), None);
    }
}
