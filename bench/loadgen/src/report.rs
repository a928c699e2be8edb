//! The report of a run: every figure, built from the merged [`Recorder`] and the
//! `--watch` series, and nothing else. It is serialised as it is for `--json`
//! (the shape is `bench/schema.json`) and rendered as text by [`crate::summary`];
//! the statistics (histogram summaries, fairness, per-process use) are computed
//! here, once.
//!
//! Times in the JSON carry their unit in their name: `_us`, `_ms`, `_s`.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::limits::FdLimit;
use crate::machine::Machine;
use crate::recorder::Recorder;
use crate::watch::{ProcessSeries, Role, WatchedTree};

/// The `format` of the JSON report; bumped when a field changes meaning or goes.
pub const FORMAT: &str = "loadgen-report/1";

/// How densely the percentile spectrum is drawn: points per halving of the
/// distance to 100 % (HdrHistogram's `ticks_per_half_distance`; 5 gives about
/// a hundred points for a million samples).
const SPECTRUM_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Below this share of the asked rate the summary says the target could not keep up.
const KEPT_UP_RATIO: f64 = 0.97;

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
    /// Failed requests by kind, and answers by status.
    pub errors: Errors,
    /// One entry per `--watch PID`.
    pub watch: Vec<WatchReport>,
    /// `--label KEY=VALUE`: what the run was, for a report over many runs
    /// (`section`, `mode`, `load`, `round`, ...). Empty without labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `--kill PID --kill-after D`: the worker killed mid-run; `null` without.
    #[serde(default)]
    pub fault: Option<Fault>,
    /// Sentences for a person: what went wrong or deserves a look.
    pub notes: Vec<String>,
}

/// The run's parameters, as used (defaults filled in).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Parameters {
    /// The target URL.
    pub target: String,
    /// `closed` (the next request when an answer arrives) or `open` (`--rate`).
    #[serde(rename = "loop")]
    pub load_loop: String,
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
    /// after the window): neither samples nor failures.
    pub unanswered_at_end: u64,
    /// Connections opened in the window (one per request under `--new-conn`).
    pub connections_opened: u64,
}

/// The latency histograms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latencies {
    /// Where request latency counts from: `send` (closed loop) or
    /// `intended_start` (open loop, coordinated omission corrected).
    pub measured_from: String,
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

impl HistogramSummary {
    /// Summarises `histogram`; `None` if it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<HistogramSummary> {
        if histogram.is_empty() {
            return None;
        }
        let spectrum = histogram
            .iter_quantiles(SPECTRUM_TICKS_PER_HALF_DISTANCE)
            .map(|step| SpectrumPoint {
                percentile: step.quantile_iterated_to() * 100.0,
                value_us: histogram.highest_equivalent(step.value_iterated_to()),
            })
            .collect();
        Some(HistogramSummary {
            count: histogram.len(),
            min_us: histogram.min(),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
            stdev_us: histogram.stdev(),
            p50_us: histogram.value_at_quantile(0.5),
            p90_us: histogram.value_at_quantile(0.9),
            p99_us: histogram.value_at_quantile(0.99),
            p99_9_us: histogram.value_at_quantile(0.999),
            p99_99_us: histogram.value_at_quantile(0.9999),
            spectrum,
        })
    }
}

/// The answers per worker pid.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workers {
    /// One entry per `x-worker-pid` seen, by pid.
    pub by_pid: Vec<WorkerShare>,
    /// Successful answers without a numeric `x-worker-pid`.
    pub requests_without_pid: u64,
    /// How evenly requests spread over the pids seen; `null` without any.
    pub requests_fairness: Option<Fairness>,
    /// How evenly connections spread over the pids seen; `null` without any.
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
    /// `watched` or `child`.
    pub role: String,
    /// Its figures over the window.
    pub summary: UseSummary,
    /// Its time series.
    pub samples: Vec<SamplePoint>,
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

/// The pieces a report is built from.
pub struct Inputs<'a> {
    /// The run's parameters.
    pub parameters: Parameters,
    /// The machine.
    pub machine: Machine,
    /// The load generator's fd limit.
    pub fd_limit: FdLimit,
    /// When the run started, RFC 3339.
    pub started_at: String,
    /// The warm-up.
    pub warmup: Duration,
    /// The measured time.
    pub duration: Duration,
    /// From the run's start to the last connection's end.
    pub run_time: Duration,
    /// Every thread's recorder, merged.
    pub recorder: &'a Recorder,
    /// The `--watch` series.
    pub watched: &'a [WatchedTree],
    /// The `--watch` sampling interval.
    pub sample_interval: Duration,
    /// The `--label`s.
    pub labels: BTreeMap<String, String>,
    /// The `--kill` sent, if any.
    pub fault: Option<Fault>,
}

impl Report {
    /// Computes every figure of the report.
    pub fn build(inputs: Inputs<'_>) -> Report {
        let recorder = inputs.recorder;
        let open_loop = inputs.parameters.rate_per_s.is_some();
        let ok = recorder.requests();
        let per_s = ok as f64 / inputs.duration.as_secs_f64();
        let asked = inputs.parameters.rate_per_s;
        let requests = Requests {
            ok,
            failed: recorder.failed(),
            per_s,
            asked_per_s: asked,
            achieved_ratio: asked.map(|asked| per_s / asked),
            scheduled: open_loop.then_some(recorder.scheduled),
            unanswered_at_end: recorder.unanswered_at_end,
            connections_opened: recorder.connect.len(),
        };
        let latency = Latencies {
            measured_from: if open_loop { "intended_start" } else { "send" }.to_owned(),
            request: HistogramSummary::of(&recorder.latency),
            request_uncorrected: if open_loop {
                HistogramSummary::of(&recorder.latency_uncorrected)
            } else {
                None
            },
            connect: HistogramSummary::of(&recorder.connect),
        };

        let mut by_pid: Vec<_> = recorder.workers.clone();
        by_pid.sort_by_key(|worker| worker.pid);
        let named: u64 = by_pid.iter().map(|worker| worker.requests).sum();
        let request_counts: Vec<u64> = by_pid.iter().map(|worker| worker.requests).collect();
        let connection_counts: Vec<u64> = by_pid.iter().map(|worker| worker.connections).collect();
        // The run's start: the window opens after the warm-up.
        let origin = recorder.window().start.checked_sub(inputs.warmup);
        let since_start =
            |at: Option<std::time::Instant>| Some(millis(at?.saturating_duration_since(origin?)));
        let workers = Workers {
            by_pid: by_pid
                .iter()
                .map(|worker| WorkerShare {
                    pid: worker.pid,
                    requests: worker.requests,
                    requests_share: worker.requests as f64 / named.max(1) as f64,
                    connections: worker.connections,
                    first_ms: since_start(worker.first),
                    last_ms: since_start(worker.last),
                })
                .collect(),
            requests_without_pid: recorder.requests_without_pid,
            requests_fairness: Fairness::of(&request_counts),
            connections_fairness: Fairness::of(&connection_counts),
        };

        let errors = Errors {
            total: recorder.failed(),
            by_kind: Failure::ALL
                .iter()
                .map(|kind| (kind.name().to_owned(), recorder.failures[kind.index()]))
                .collect(),
            statuses: recorder
                .statuses
                .iter()
                .map(|&(status, count)| (status.to_string(), count))
                .collect(),
        };

        let window = (inputs.warmup, inputs.warmup + inputs.duration);
        let slack = inputs.sample_interval / 2;
        let watch = inputs
            .watched
            .iter()
            .map(|tree| watch_report(tree, window, slack, ok, inputs.duration))
            .collect();

        let mut report = Report {
            format: FORMAT.to_owned(),
            loadgen_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: inputs.started_at,
            parameters: inputs.parameters,
            machine: inputs.machine,
            fd_limit: inputs.fd_limit,
            phases: Phases {
                measure_start_ms: millis(window.0),
                measure_end_ms: millis(window.1),
                run_end_ms: millis(inputs.run_time),
            },
            requests,
            latency,
            workers,
            errors,
            watch,
            labels: inputs.labels,
            fault: inputs.fault,
            notes: Vec::new(),
        };
        report.notes = notes(&report);
        report
    }
}

/// The sentences a person should read: failures, a target that could not keep
/// up, fd or port exhaustion, a watched process that went away.
fn notes(report: &Report) -> Vec<String> {
    let mut notes = Vec::new();
    let requests = &report.requests;
    let by_kind = |kind: Failure| report.errors.by_kind.get(kind.name()).copied().unwrap_or(0);
    if requests.ok == 0 {
        notes.push("no request succeeded: there is no latency to report".to_owned());
    }
    if requests.failed > 0 {
        notes.push(format!(
            "{} of {} requests failed (see errors); failed requests are not latency samples",
            requests.failed,
            requests.ok + requests.failed
        ));
    }
    if let (Some(asked), Some(ratio)) = (requests.asked_per_s, requests.achieved_ratio) {
        if ratio < KEPT_UP_RATIO {
            notes.push(format!(
                "the target did not keep up: {:.0} requests/s answered of {asked:.0}/s asked ({:.1} %)",
                requests.per_s,
                ratio * 100.0
            ));
        }
    }
    if requests.unanswered_at_end > 0 {
        notes.push(format!(
            "{} requests of the window were still unanswered {:.1} s after it and were \
             cut off: neither samples nor failures",
            requests.unanswered_at_end, report.parameters.timeout_s
        ));
    }
    let fd_exhaustion = by_kind(Failure::FdExhaustion);
    if fd_exhaustion > 0 {
        notes.push(format!(
            "loadgen ran out of file descriptors {fd_exhaustion} times (its limit: {} of hard \
             limit {}): use fewer --connections or raise the hard limit (ulimit -Hn, as root)",
            report.fd_limit.soft, report.fd_limit.hard
        ));
    }
    let port_exhaustion = by_kind(Failure::PortExhaustion);
    if port_exhaustion > 0 {
        notes.push(format!(
            "no local port was free for {port_exhaustion} connects (too many connections in \
             TIME_WAIT): see net.ipv4.ip_local_port_range and net.ipv4.tcp_tw_reuse"
        ));
    }
    if let Some(Fault {
        pid,
        error: Some(err),
        ..
    }) = &report.fault
    {
        notes.push(format!("--kill {pid} was not sent: {err}"));
    }
    for watched in &report.watch {
        if let Some(at) = watched.gone_at_ms {
            notes.push(format!(
                "watched process {} was gone at {:.0} ms",
                watched.pid, at
            ));
        }
        if let Some(err) = &watched.error {
            notes.push(format!("watching {} stopped: {err}", watched.pid));
        }
    }
    notes
}

/// The report of one watched tree over `window` (from, to; from the run's start),
/// taking samples up to `slack` outside it (sampling is never exactly on time).
fn watch_report(
    tree: &WatchedTree,
    window: (Duration, Duration),
    slack: Duration,
    requests: u64,
    duration: Duration,
) -> WatchReport {
    let inside = |at: Duration| at + slack >= window.0 && at <= window.1 + slack;
    let processes: Vec<ProcessReport> = tree
        .processes
        .iter()
        .map(|series| ProcessReport {
            pid: series.pid,
            ppid: series.ppid,
            name: series.name.clone(),
            role: match series.role {
                Role::Watched => "watched",
                Role::Child => "child",
            }
            .to_owned(),
            summary: process_summary(series, &inside, requests, duration),
            samples: series
                .samples
                .iter()
                .map(|sample| SamplePoint {
                    t_ms: millis(sample.at),
                    fds: sample.fds,
                    rss_bytes: sample.rss_bytes,
                    cpu_user_ms: millis(sample.cpu_user),
                    cpu_system_ms: millis(sample.cpu_system),
                })
                .collect(),
        })
        .collect();

    // The tree at each sample time: the sum over the processes sampled then.
    let mut per_time: BTreeMap<Duration, (usize, u64)> = BTreeMap::new();
    for series in &tree.processes {
        for sample in series.samples.iter().filter(|sample| inside(sample.at)) {
            let entry = per_time.entry(sample.at).or_default();
            entry.0 += sample.fds;
            entry.1 += sample.rss_bytes;
        }
    }
    let points = per_time.len().max(1) as f64;
    let cpu_user_ms: f64 = processes
        .iter()
        .map(|process| process.summary.cpu_user_ms)
        .sum();
    let cpu_system_ms: f64 = processes
        .iter()
        .map(|process| process.summary.cpu_system_ms)
        .sum();
    let cpu_ms = cpu_user_ms + cpu_system_ms;
    // The watched process's sampled span is the tree's time base.
    let span = span_of(tree.processes.first(), &inside);
    let summary = UseSummary {
        samples: per_time.len(),
        fds_max: per_time.values().map(|point| point.0).max().unwrap_or(0),
        fds_mean: per_time.values().map(|point| point.0 as f64).sum::<f64>() / points,
        rss_max_bytes: per_time.values().map(|point| point.1).max().unwrap_or(0),
        rss_mean_bytes: per_time.values().map(|point| point.1 as f64).sum::<f64>() / points,
        cpu_user_ms,
        cpu_system_ms,
        cpu_cores: span.map(|span| cpu_ms / millis(span)),
        cpu_ms_per_1000_requests: per_thousand(cpu_ms, span, requests, duration),
    };
    WatchReport {
        pid: tree.pid,
        gone_at_ms: tree.gone_at.map(millis),
        error: tree.error.clone(),
        summary,
        processes,
    }
}

/// One process's use over the samples for which `inside` holds.
fn process_summary(
    series: &ProcessSeries,
    inside: &dyn Fn(Duration) -> bool,
    requests: u64,
    duration: Duration,
) -> UseSummary {
    let samples: Vec<_> = series
        .samples
        .iter()
        .filter(|sample| inside(sample.at))
        .collect();
    let count = samples.len().max(1) as f64;
    let (cpu_user_ms, cpu_system_ms) = match (samples.first(), samples.last()) {
        (Some(first), Some(last)) => (
            millis(last.cpu_user.saturating_sub(first.cpu_user)),
            millis(last.cpu_system.saturating_sub(first.cpu_system)),
        ),
        _ => (0.0, 0.0),
    };
    let span = span_of(Some(series), inside);
    UseSummary {
        samples: samples.len(),
        fds_max: samples.iter().map(|sample| sample.fds).max().unwrap_or(0),
        fds_mean: samples.iter().map(|sample| sample.fds as f64).sum::<f64>() / count,
        rss_max_bytes: samples
            .iter()
            .map(|sample| sample.rss_bytes)
            .max()
            .unwrap_or(0),
        rss_mean_bytes: samples
            .iter()
            .map(|sample| sample.rss_bytes as f64)
            .sum::<f64>()
            / count,
        cpu_user_ms,
        cpu_system_ms,
        cpu_cores: span.map(|span| (cpu_user_ms + cpu_system_ms) / millis(span)),
        cpu_ms_per_1000_requests: per_thousand(
            cpu_user_ms + cpu_system_ms,
            span,
            requests,
            duration,
        ),
    }
}

/// The time between the first and the last sample of `series` inside the window;
/// `None` without two such samples.
fn span_of(series: Option<&ProcessSeries>, inside: &dyn Fn(Duration) -> bool) -> Option<Duration> {
    let mut times = series?
        .samples
        .iter()
        .map(|sample| sample.at)
        .filter(|&at| inside(at));
    let first = times.next()?;
    let last = times.last()?;
    (last > first).then(|| last - first)
}

/// CPU ms per 1,000 requests: `cpu_ms` was used over `span`, during which about
/// `requests * span / duration` requests were answered.
fn per_thousand(
    cpu_ms: f64,
    span: Option<Duration>,
    requests: u64,
    duration: Duration,
) -> Option<f64> {
    let span = span?;
    let requests_in_span = requests as f64 * span.as_secs_f64() / duration.as_secs_f64();
    (requests_in_span > 0.0).then(|| cpu_ms * 1000.0 / requests_in_span)
}

/// A duration in milliseconds, with µs precision.
fn millis(duration: Duration) -> f64 {
    (duration.as_micros() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::new_histogram;
    use crate::watch::ProcessSample;

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

    /// The summary's percentiles, mean and spectrum come from the histogram.
    #[test]
    fn histogram_summary() {
        assert_eq!(HistogramSummary::of(&new_histogram()), None);
        let mut histogram = new_histogram();
        for value in 1..=1000 {
            histogram.record(value).expect("in range");
        }
        let summary = HistogramSummary::of(&histogram).expect("samples");
        assert_eq!(summary.count, 1000);
        assert_eq!((summary.min_us, summary.max_us), (1, 1000));
        assert_eq!(summary.p50_us, 500);
        assert_eq!(summary.p99_us, 990);
        assert!((summary.mean_us - 500.5).abs() < 0.5);
        let last = summary.spectrum.last().expect("points");
        assert_eq!((last.percentile, last.value_us), (100.0, 1000));
        assert!(
            summary
                .spectrum
                .windows(2)
                .all(|pair| pair[0].percentile <= pair[1].percentile
                    && pair[0].value_us <= pair[1].value_us)
        );
    }

    /// Per-process use counts only the window's samples; CPU per 1,000 requests
    /// scales the requests to the sampled span.
    #[test]
    fn process_use_over_the_window() {
        let sample = |ms: u64, fds: usize, cpu_ms: u64| ProcessSample {
            at: Duration::from_millis(ms),
            fds,
            rss_bytes: 1000,
            cpu_user: Duration::from_millis(cpu_ms),
            cpu_system: Duration::ZERO,
        };
        let series = ProcessSeries {
            pid: 1,
            ppid: 0,
            name: "master".to_owned(),
            role: Role::Watched,
            start_ticks: 0,
            // Warm-up at 0 ms, window 1000..3000 ms, drain at 3500 ms.
            samples: vec![
                sample(0, 5, 0),
                sample(1000, 10, 100),
                sample(2000, 30, 300),
                sample(3000, 20, 500),
                sample(3500, 5, 900),
            ],
        };
        let window = (Duration::from_secs(1), Duration::from_secs(3));
        let inside = |at: Duration| at >= window.0 && at <= window.1;
        // 2000 requests over the 2 s window.
        let summary = process_summary(&series, &inside, 2000, Duration::from_secs(2));
        assert_eq!(summary.samples, 3);
        assert_eq!(summary.fds_max, 30);
        assert!((summary.fds_mean - 20.0).abs() < 1e-9);
        assert!((summary.cpu_user_ms - 400.0).abs() < 1e-9);
        assert_eq!(summary.cpu_cores, Some(0.2));
        // 400 ms of CPU for 2000 requests: 200 ms per 1,000.
        assert_eq!(summary.cpu_ms_per_1000_requests, Some(200.0));
    }
}
