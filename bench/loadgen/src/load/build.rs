//! [`report`]: the [`Report`] of a run, every figure computed from the merged
//! [`Recorder`] and the `--watch` series, and the notes a person should read.
//! This is the one way from the load to the run model: `runs` knows nothing
//! of the recorder.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use runs::format::rate;
use runs::{
    Affinity, BytesMoved, Errors, FORMAT, Fairness, Fault, FdLimit, HistogramSummary, Hold,
    InFlight, KEPT_UP_RATIO, Labels, Latencies, ListenCounterPoint, ListenerReport, LoadgenUsage,
    Machine, MeasuredFrom, MemoryCgroupReport, MemoryPoint, Parameters, Phases, ProcessReport,
    QueuePoint, Report, Requests, SamplePoint, SpectrumPoint, Stall, StallWaits, TargetShare,
    Timeline, TimelineInterval, UseSummary, WatchReport, WatchedAffinity, WorkerShare, Workers,
};

use super::connection::Model;
use super::failure::Failure;
use super::memcg::MemcgReading;
use super::queues::ListenCounters;
use super::recorder::{Recorder, WorkerCount};
use super::recording::Opened;
use super::usage::Readings;
use super::watch::{ProcessSeries, WatchedTree};

/// How densely the percentile spectrum is drawn: points per halving of the
/// distance to 100 % (HdrHistogram's `ticks_per_half_distance`; 5 gives about
/// a hundred points for a million samples).
const SPECTRUM_TICKS_PER_HALF_DISTANCE: u32 = 5;

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
    pub labels: Labels,
    /// The `--kill` sent, if any.
    pub fault: Option<Fault>,
    /// The `--stop` stalls made during the run.
    pub stalls: Vec<Stall>,
    /// `--stop-for`, if `--stop` was given.
    pub stop_for: Option<Duration>,
    /// loadgen's CPU time over the window and the placement.
    pub readings: Readings,
    /// The window's start, ms since the Unix epoch (for `timeline`).
    pub window_start_unix_ms: f64,
    /// `--hold`: how the connections were opened; `None` in the other
    /// models.
    pub hold: Option<HoldInputs>,
}

/// `--hold`: what the report's `hold` block is built from.
pub struct HoldInputs {
    /// `--connections`.
    pub connections: usize,
    /// `--hold-interval`.
    pub interval: Duration,
    /// The processes that held them.
    pub processes: usize,
    /// Their openings, merged.
    pub opened: Opened,
}

/// The report's `hold` block.
fn hold_report(hold: HoldInputs, max_us: u64) -> Hold {
    let mut connect = super::recorder::new_histogram(max_us);
    super::recording::add_counts(&mut connect, &hold.opened.connect);
    Hold {
        connections: hold.connections as u64,
        held: hold.opened.held,
        interval_s: hold.interval.as_secs_f64(),
        processes: hold.processes as u64,
        open_time_ms: hold.opened.open_time_us as f64 / 1000.0,
        connect: summary(&connect),
        failed_to_open: Failure::ALL
            .iter()
            .map(|kind| {
                let count = hold.opened.failures.get(kind.index()).copied();
                (kind.name().to_owned(), count.unwrap_or(0))
            })
            .collect(),
    }
}

/// Computes every figure of the report.
pub fn report(inputs: Inputs<'_>) -> Report {
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
        reconnects: recorder.reconnects,
        in_flight: (Model::of(asked, inputs.parameters.new_conn) == Model::OpenEach).then_some(
            InFlight {
                bound: inputs.parameters.connections,
                max: recorder.in_flight_max,
                waited: recorder.waited_for_place,
            },
        ),
    };
    let latency = Latencies {
        measured_from: if open_loop {
            MeasuredFrom::IntendedStart
        } else {
            MeasuredFrom::Send
        },
        request: summary(&recorder.latency),
        request_uncorrected: if open_loop {
            summary(&recorder.latency_uncorrected)
        } else {
            None
        },
        connect: summary(&recorder.connect),
    };

    let mut by_pid: Vec<_> = recorder.workers.clone();
    by_pid.sort_by_key(|worker| worker.pid);
    let named: u64 = by_pid.iter().map(|worker| worker.requests).sum();
    // Fairness over every worker of the cluster when the run says how
    // many it has (label `workers`): a worker that answered nothing counts
    // as 0, so a run where one pid answered everything is not "even" (1.0).
    let workers_known = inputs.labels.workers.map_or(0, |n| n as usize);
    let padded = |count: fn(&WorkerCount) -> u64| {
        let mut counts: Vec<u64> = by_pid.iter().map(count).collect();
        counts.resize(counts.len().max(workers_known), 0);
        counts
    };
    let request_counts = padded(|worker| worker.requests);
    let connection_counts = padded(|worker| worker.connections);
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
                latency: summary(&worker.latency),
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

    let targets = inputs
        .parameters
        .targets
        .iter()
        .enumerate()
        .map(|(index, url)| {
            let counts = recorder.targets.get(index).copied().unwrap_or_default();
            TargetShare {
                url: url.clone(),
                connections: counts.connections,
                requests: counts.requests,
            }
        })
        .collect();
    let readings = inputs.readings;
    // With `--processes`, the children's CPU over their windows too: one
    // run, one loadgen's cost.
    let loadgen_usage = readings.cpu.map(|(cpu, span)| {
        let cpu_user_ms = millis(cpu.user + recorder.children_cpu.user);
        let cpu_system_ms = millis(cpu.system + recorder.children_cpu.system);
        LoadgenUsage {
            cpu_user_ms,
            cpu_system_ms,
            cpu_ms_per_1000_requests: per_thousand(
                cpu_user_ms + cpu_system_ms,
                Some(span),
                ok,
                inputs.duration,
            ),
        }
    });
    let affinity = readings.placement.map(|placement| Affinity {
        loadgen: placement.loadgen,
        watched: placement
            .watched
            .into_iter()
            .map(|watched| WatchedAffinity {
                pid: watched.pid,
                cpus: watched.cpus,
            })
            .collect(),
    });

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
        targets,
        errors,
        watch,
        labels: inputs.labels,
        fault: inputs.fault,
        stalls: inputs.stalls,
        stall_waits: inputs.stop_for.map(|stop_for| StallWaits {
            stop_for_ms: millis(stop_for),
            at_least_stall: at_least(&recorder.latency, stop_for),
            at_least_tenth: at_least(&recorder.latency, stop_for / 10),
        }),
        loadgen_usage,
        machine_usage: readings.machine,
        bytes: Some(BytesMoved {
            sent_bytes: recorder.moved.sent,
            received_bytes: recorder.moved.received,
            sent_bytes_per_s: recorder.moved.sent as f64 / inputs.duration.as_secs_f64(),
            received_bytes_per_s: recorder.moved.received as f64 / inputs.duration.as_secs_f64(),
        }),
        affinity,
        timeline: recorder
            .timeline
            .as_ref()
            .map(|timeline| timeline_report(timeline, inputs.window_start_unix_ms)),
        hold: inputs
            .hold
            .map(|hold| hold_report(hold, recorder.latency.high())),
        upgrades: None,
        // Judged by the caller, which holds the thresholds (`crate::slo`).
        slo: Vec::new(),
        notes: Vec::new(),
    };
    report.notes = notes(&report);
    report.notes.extend(readings.errors);
    report
}

/// Summarises `histogram` (µs); `None` if it is empty.
fn summary(histogram: &Histogram<u64>) -> Option<HistogramSummary> {
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

/// `--timeline` as the JSON has it: failures by kind name, only the kinds
/// that occurred; pids in order.
fn timeline_report(timeline: &super::recorder::Timeline, start_unix_ms: f64) -> Timeline {
    Timeline {
        interval_ms: millis(timeline.interval),
        start_unix_ms,
        intervals: timeline
            .slots
            .iter()
            .map(|slot| TimelineInterval {
                ok_by_pid: slot.ok_by_pid.iter().copied().collect(),
                failed: Failure::ALL
                    .iter()
                    .zip(slot.failures)
                    .filter(|(_, count)| *count > 0)
                    .map(|(kind, count)| (kind.name().to_owned(), count))
                    .collect(),
                max_latency_us: (slot.max_latency_us > 0).then_some(slot.max_latency_us),
            })
            .collect(),
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
                "the target did not keep up: {} requests/s answered of {}/s asked ({:.1} %)",
                rate(requests.per_s),
                rate(asked),
                ratio * 100.0
            ));
        }
    }
    if requests.unanswered_at_end > 0 {
        notes.push(format!(
            "{} requests of the window were still unanswered {:.1} s after it and were \
             cut off, sent or not yet sent (the run's end came before their turn): \
             neither samples nor failures",
            requests.unanswered_at_end, report.parameters.timeout_s
        ));
    }
    if requests.reconnects > 0 {
        notes.push(format!(
            "{} requests found their keep-alive connection closed by the server while idle \
             and were sent again on a new connection (reconnects, not failures): the \
             server's idle timeout is shorter than the time between a connection's requests",
            requests.reconnects
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
    for stall in &report.stalls {
        if let Some(err) = &stall.error {
            notes.push(format!("--stop {}: {err}", stall.pid));
        }
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
            role: series.role,
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
    let listeners = tree
        .listeners
        .values()
        .map(|series| ListenerReport {
            address: series.address.to_string(),
            limit: series.limit,
            holders: series.holders.clone(),
            queued_max: series
                .queued
                .iter()
                .filter(|(at, _)| inside(*at))
                .map(|(_, queued)| *queued)
                .max()
                .unwrap_or(0),
            samples: series
                .queued
                .iter()
                .map(|&(at, queued)| QueuePoint {
                    t_ms: millis(at),
                    queued,
                })
                .collect(),
        })
        .collect();
    // The counters over the window: the last sample inside it less the first.
    let counted: Vec<_> = tree.counters.iter().filter(|(at, _)| inside(*at)).collect();
    let over_window = |of: fn(&ListenCounters) -> u64| match counted.as_slice() {
        [(_, first), .., (_, last)] => Some(of(last).saturating_sub(of(first))),
        _ => None,
    };
    WatchReport {
        pid: tree.pid,
        gone_at_ms: tree.gone_at.map(millis),
        error: tree.error.clone(),
        summary,
        processes,
        listeners,
        listen_counters: tree
            .counters
            .iter()
            .map(|(at, counters)| ListenCounterPoint {
                t_ms: millis(*at),
                overflows: counters.overflows,
                drops: counters.drops,
            })
            .collect(),
        listen_overflows: over_window(|counters| counters.overflows),
        listen_drops: over_window(|counters| counters.drops),
        queue_error: tree.queue_error.clone(),
        memory_cgroup: memory_cgroup(tree, &inside),
    }
}

/// The tree's memory cgroup over the samples for which `inside` holds, if
/// it has one of its own.
fn memory_cgroup(
    tree: &WatchedTree,
    inside: &dyn Fn(Duration) -> bool,
) -> Option<MemoryCgroupReport> {
    let dir = tree.memcg.as_ref()?;
    let window: Vec<_> = tree
        .memory
        .iter()
        .filter(|(at, _)| inside(*at))
        .map(|(_, reading)| reading)
        .collect();
    let most = |of: fn(&MemcgReading) -> u64| window.iter().map(|r| of(r)).max().unwrap_or(0);
    Some(MemoryCgroupReport {
        path: dir.to_string_lossy().into_owned(),
        kernel_max_bytes: most(|r| r.kernel_bytes),
        socket_buffers_max_bytes: most(|r| r.socket_buffer_bytes),
        charged_max_bytes: most(|r| r.charged_bytes),
        samples: tree
            .memory
            .iter()
            .map(|(at, reading)| MemoryPoint {
                t_ms: millis(*at),
                kernel_bytes: reading.kernel_bytes,
                socket_buffer_bytes: reading.socket_buffer_bytes,
                charged_bytes: reading.charged_bytes,
            })
            .collect(),
        error: tree.memcg_error.clone(),
    })
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

/// How many samples of `histogram` (µs) are at least `threshold`.
fn at_least(histogram: &Histogram<u64>, threshold: Duration) -> u64 {
    let threshold_us = u64::try_from(threshold.as_micros()).unwrap_or(u64::MAX);
    histogram
        .iter_recorded()
        .filter(|value| value.value_iterated_to() >= threshold_us)
        .map(|value| value.count_at_value())
        .sum()
}

/// A duration in milliseconds, with µs precision.
fn millis(duration: Duration) -> f64 {
    (duration.as_micros() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::recorder::{HISTOGRAM_MIN_MAX_US, new_histogram};
    use crate::load::watch::ProcessSample;
    use runs::Role;

    /// The summary's percentiles, mean and spectrum come from the histogram.
    #[test]
    fn histogram_summary() {
        assert_eq!(summary(&new_histogram(HISTOGRAM_MIN_MAX_US)), None);
        let mut histogram = new_histogram(HISTOGRAM_MIN_MAX_US);
        for value in 1..=1000 {
            histogram.record(value).expect("in range");
        }
        let summary = summary(&histogram).expect("samples");
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
