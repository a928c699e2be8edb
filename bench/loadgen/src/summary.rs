//! The short human summary of a [`Report`], printed on stdout.

use std::fmt::Write;

use runs::format::{bytes, count, micros, rate};
use runs::{Fairness, HistogramSummary, MachineUsage, Report, UseSummary};

/// Renders `report` as a dozen lines of text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let parameters = &report.parameters;
    let requests = &report.requests;
    let load = match parameters.rate_per_s {
        Some(asked) => format!("open loop at {}/s", rate(asked)),
        None => "closed loop".to_owned(),
    };
    let connection = if parameters.new_conn {
        "a new connection per request"
    } else {
        "keep-alive"
    };
    let _ = writeln!(
        out,
        "loadgen {}: {} for {:.1} s after {:.1} s warm-up, {load}, {} connections ({connection}) on {} threads",
        report.loadgen_version,
        parameters.target,
        parameters.duration_s,
        parameters.warmup_s,
        count(parameters.connections as u64),
        parameters.threads,
    );

    // `--hold`: what was held, how long opening took, what failed to open.
    if let Some(hold) = &report.hold {
        let failed: Vec<String> = hold
            .failed_to_open
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(kind, &n)| format!("{kind} {}", count(n)))
            .collect();
        let failed = match failed.is_empty() {
            true => "none failed to open".to_owned(),
            false => format!("failed to open: {}", failed.join(", ")),
        };
        let _ = writeln!(
            out,
            "  hold        {} of {} connections held by {} process(es), opened in {:.2} s, \
             one request every {:.1} s each; {failed}",
            count(hold.held),
            count(hold.connections),
            hold.processes,
            hold.open_time_ms / 1000.0,
            hold.interval_s,
        );
    }
    let achieved = match (requests.asked_per_s, requests.achieved_ratio) {
        (Some(asked), Some(ratio)) => format!(
            "{}/s of {}/s asked ({:.1} %)",
            rate(requests.per_s),
            rate(asked),
            ratio * 100.0
        ),
        _ => format!("{}/s", rate(requests.per_s)),
    };
    // Shown only when there were some: most runs have none.
    let reconnects = match requests.reconnects {
        0 => String::new(),
        n => format!(", {} reconnects", count(n)),
    };
    let _ = writeln!(
        out,
        "  requests    {} ok, {} failed{reconnects}: {achieved}",
        count(requests.ok),
        count(requests.failed)
    );
    // The open model's bound, shown only when it was reached.
    if let Some(in_flight) = requests.in_flight.filter(|in_flight| in_flight.waited > 0) {
        let _ = writeln!(
            out,
            "  in flight   the bound of {} was reached: {} requests waited for a place \
             (latency still from their due time), at most {} in flight; raise --connections",
            count(in_flight.bound as u64),
            count(in_flight.waited),
            count(in_flight.max as u64)
        );
    }
    if let Some(moved) = &report.bytes {
        let _ = writeln!(
            out,
            "  bytes       sent {}/s, received {}/s",
            bytes(moved.sent_bytes_per_s as u64),
            bytes(moved.received_bytes_per_s as u64)
        );
    }

    let latency = &report.latency;
    let request_label = if latency.request_uncorrected.is_some() {
        "latency*   "
    } else {
        "latency    "
    };
    let _ = writeln!(
        out,
        "  {request_label} {}",
        histogram(latency.request.as_ref())
    );
    if let Some(uncorrected) = &latency.request_uncorrected {
        let _ = writeln!(out, "  uncorrected {}", histogram(Some(uncorrected)));
        let _ = writeln!(
            out,
            "              (* from each request's intended start: coordinated omission corrected; uncorrected: from its send)"
        );
    }
    if let Some(connect) = &latency.connect {
        let _ = writeln!(
            out,
            "  connect     {} ({} connections)",
            histogram(Some(connect)),
            count(connect.count)
        );
    }

    let workers = &report.workers;
    if workers.by_pid.is_empty() {
        let _ = writeln!(out, "  workers     no answer named an x-worker-pid");
    } else {
        let shares: Vec<String> = workers
            .by_pid
            .iter()
            .map(|worker| {
                format!(
                    "{} {} ({:.1} %, {} conn)",
                    worker.pid,
                    count(worker.requests),
                    worker.requests_share * 100.0,
                    count(worker.connections)
                )
            })
            .collect();
        let _ = writeln!(out, "  workers     {}", shares.join(", "));
        // Each worker's own latency: a stalled or busy one shows in its tail.
        for worker in &workers.by_pid {
            if let Some(latency) = &worker.latency {
                let _ = writeln!(
                    out,
                    "    pid {:<7} p50 {}  p99 {}  max {}",
                    worker.pid,
                    micros(latency.p50_us as f64),
                    micros(latency.p99_us as f64),
                    micros(latency.max_us as f64),
                );
            }
        }
        if let Some(fairness) = &workers.requests_fairness {
            let _ = writeln!(out, "  fairness    requests: {}", fairness_line(fairness));
        }
        if let Some(fairness) = &workers.connections_fairness {
            let _ = writeln!(
                out,
                "              connections: {}",
                fairness_line(fairness)
            );
        }
    }
    if workers.requests_without_pid > 0 {
        let _ = writeln!(
            out,
            "              {} answers without x-worker-pid",
            count(workers.requests_without_pid)
        );
    }

    // Several targets: how the connections and requests fell on each.
    if report.targets.len() > 1 {
        let ok = report
            .targets
            .iter()
            .map(|target| target.requests)
            .sum::<u64>();
        for target in &report.targets {
            let _ = writeln!(
                out,
                "  target      {} {} ({:.1} %, {} conn)",
                target.url,
                count(target.requests),
                target.requests as f64 * 100.0 / ok.max(1) as f64,
                count(target.connections)
            );
        }
    }

    // `--stop`: when each stall was, as sent.
    for stall in &report.stalls {
        if let (Some(stopped), Some(continued)) = (stall.stopped_at_ms, stall.continued_at_ms) {
            let _ = writeln!(
                out,
                "  stall       pid {} stopped at {:.0} ms for {:.0} ms",
                stall.pid,
                stopped,
                continued - stopped
            );
        }
    }

    if let Some(waits) = &report.stall_waits {
        let _ = writeln!(
            out,
            "              {} requests took ≥ the stall ({:.0} ms), {} ≥ a tenth of it",
            count(waits.at_least_stall),
            waits.stop_for_ms,
            count(waits.at_least_tenth)
        );
    }
    let errors: Vec<String> = report
        .errors
        .by_kind
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, &n)| format!("{kind} {}", count(n)))
        .collect();
    let _ = writeln!(
        out,
        "  errors      {}",
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join(", ")
        }
    );

    for watched in &report.watch {
        for process in &watched.processes {
            let _ = writeln!(
                out,
                "  watch       {} {} ({}): {}",
                process.pid,
                process.name,
                process.role,
                use_line(&process.summary)
            );
        }
        let _ = writeln!(
            out,
            "  watch       {} and children: {}",
            watched.pid,
            use_line(&watched.summary)
        );
        for listener in &watched.listeners {
            let holders: Vec<String> = listener.holders.iter().map(u32::to_string).collect();
            let _ = writeln!(
                out,
                "  queue       {} (held by {}): at most {} of {} queued",
                listener.address,
                holders.join(", "),
                listener.queued_max,
                listener.limit
            );
        }
        if let (Some(overflows), Some(drops)) = (watched.listen_overflows, watched.listen_drops) {
            let _ = writeln!(
                out,
                "  queue       the namespace: {overflows} overflows, {drops} drops at listeners"
            );
        }
        if let Some(err) = &watched.queue_error {
            let _ = writeln!(out, "  queue       not read: {err}");
        }
        if let Some(cgroup) = &watched.memory_cgroup {
            let _ = writeln!(
                out,
                "  kernel      {} (memory cgroup {}): at most {} kernel objects, {} TCP buffers",
                watched.pid,
                cgroup.path,
                bytes(cgroup.kernel_max_bytes),
                bytes(cgroup.socket_buffers_max_bytes)
            );
            if let Some(err) = &cgroup.error {
                let _ = writeln!(out, "  kernel      not read after: {err}");
            }
        }
    }
    if let Some(usage) = &report.loadgen_usage {
        let mut line = format!(
            "  loadgen     CPU {:.0} ms (user {:.0}, system {:.0})",
            usage.cpu_user_ms + usage.cpu_system_ms,
            usage.cpu_user_ms,
            usage.cpu_system_ms
        );
        if let Some(per_thousand) = usage.cpu_ms_per_1000_requests {
            let _ = write!(line, ", {per_thousand:.1} ms per 1,000 requests");
        }
        let _ = writeln!(out, "{line}");
    }
    if let Some(machine) = &report.machine_usage {
        let _ = writeln!(out, "  machine     {}", machine_line(machine));
    }
    if let Some(affinity) = &report.affinity {
        let mut line = format!("  CPUs        loadgen {}", cpu_list(&affinity.loadgen));
        for watched in &affinity.watched {
            let _ = write!(line, ", {} {}", watched.pid, cpu_list(&watched.cpus));
        }
        let _ = writeln!(out, "{line}");
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    // `--slo`: the verdicts last, where a reader of a long summary looks.
    out.push_str(&crate::slo::lines(&report.slo));
    out
}

/// `p50 .. max, mean ± stdev` of a histogram, or `none`.
fn histogram(summary: Option<&HistogramSummary>) -> String {
    let Some(summary) = summary else {
        return "no samples".to_owned();
    };
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  mean {} ± {}",
        micros(summary.p50_us as f64),
        micros(summary.p90_us as f64),
        micros(summary.p99_us as f64),
        micros(summary.p99_9_us as f64),
        micros(summary.p99_99_us as f64),
        micros(summary.max_us as f64),
        micros(summary.mean_us),
        micros(summary.stdev_us),
    )
}

/// The whole machine's CPU over the window, as shares of what it held:
/// `busy 63.0 % of 2 CPUs, steal 0.4 %` (and iowait when there was some).
fn machine_line(machine: &MachineUsage) -> String {
    let capacity = machine.capacity_s();
    let share = |seconds: f64| match capacity > 0.0 {
        true => seconds * 100.0 / capacity,
        false => 0.0,
    };
    let mut line = format!(
        "busy {:.1} % of {} CPUs, steal {:.1} %",
        share(machine.busy_s),
        machine.cores,
        share(machine.steal_s)
    );
    if machine.iowait_s > 0.0 {
        let _ = write!(line, ", iowait {:.1} %", share(machine.iowait_s));
    }
    line
}

/// CPUs as the kernel lists them: `0-3,6`.
fn cpu_list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut at = 0;
    while at < cpus.len() {
        let mut end = at;
        while end + 1 < cpus.len() && cpus[end + 1] == cpus[end] + 1 {
            end += 1;
        }
        parts.push(match end == at {
            true => cpus[at].to_string(),
            false => format!("{}-{}", cpus[at], cpus[end]),
        });
        at = end + 1;
    }
    match parts.is_empty() {
        true => "none".to_owned(),
        false => parts.join(","),
    }
}

fn fairness_line(fairness: &Fairness) -> String {
    let ratio = match fairness.max_min_ratio {
        Some(ratio) => format!("{ratio:.2}"),
        None => "∞".to_owned(),
    };
    format!(
        "max/min {ratio}, coefficient of variation {:.3}, Jain's index {:.3}",
        fairness.coefficient_of_variation, fairness.jain_index
    )
}

fn use_line(summary: &UseSummary) -> String {
    let mut line = format!(
        "fds max {} mean {:.0}, RSS max {}",
        count(summary.fds_max as u64),
        summary.fds_mean,
        bytes(summary.rss_max_bytes)
    );
    let cpu_ms = summary.cpu_user_ms + summary.cpu_system_ms;
    let _ = write!(
        line,
        ", CPU {:.0} ms (user {:.0}, system {:.0})",
        cpu_ms, summary.cpu_user_ms, summary.cpu_system_ms
    );
    if let Some(cores) = summary.cpu_cores {
        let _ = write!(line, " = {cores:.2} cores");
    }
    if let Some(per_thousand) = summary.cpu_ms_per_1000_requests {
        let _ = write!(line, ", {per_thousand:.1} ms per 1,000 requests");
    }
    line
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::load::build::{Inputs, report};
    use crate::load::recorder::{Answer, Moved, Recorder, Sample, Window};
    use crate::load::usage::Readings;
    use runs::{FdLimit, LoadLoop, Machine, Parameters};

    /// The report of an open loop asked for `asked` requests/s over 4 s, in
    /// which `answered` requests succeeded and `reconnects` found their
    /// connection closed while idle.
    fn open_loop_report(asked: f64, answered: u64, reconnects: u64) -> Report {
        labelled_report(asked, answered, reconnects, Default::default())
    }

    /// [`open_loop_report`] with `labels`.
    fn labelled_report(asked: f64, answered: u64, reconnects: u64, labels: runs::Labels) -> Report {
        let start = Instant::now();
        let duration = Duration::from_secs(4);
        let window = Window {
            start,
            end: start + duration,
        };
        let mut recorder = Recorder::new(window, true, duration, Arc::default());
        for _ in 0..answered {
            recorder.record(&Sample {
                scheduled: start,
                sent: start,
                done: start + Duration::from_millis(1),
                outcome: Ok(Answer {
                    status: 200,
                    worker_pid: Some(7),
                }),
                first_on_connection: false,
                target: 0,
                moved: Moved {
                    sent: 1 << 20,
                    received: 1 << 19,
                },
            });
        }
        for _ in 0..reconnects {
            recorder.record_reconnect(start);
        }
        report(Inputs {
            parameters: Parameters {
                target: "http://127.0.0.1:1/".to_owned(),
                targets: vec!["http://127.0.0.1:1/".to_owned()],
                load_loop: LoadLoop::Open,
                connections: 1,
                threads: 1,
                duration_s: duration.as_secs_f64(),
                warmup_s: 0.0,
                rate_per_s: Some(asked),
                new_conn: false,
                timeout_s: 5.0,
                sample_interval_ms: 100.0,
                watch: Vec::new(),
                command_line: Vec::new(),
                mix: Vec::new(),
                seed: None,
                arrivals: None,
                body_bytes: None,
                source_ips: Vec::new(),
            },
            machine: Machine {
                cpu_model: "cpu".to_owned(),
                cores: 1,
                kernel: "6".to_owned(),
                os: "linux".to_owned(),
            },
            fd_limit: FdLimit {
                soft_at_start: 1024,
                soft: 1024,
                hard: 1024,
            },
            started_at: "2026-01-01T00:00:00Z".to_owned(),
            warmup: Duration::ZERO,
            duration,
            run_time: duration,
            recorder: &recorder,
            watched: &[],
            sample_interval: Duration::from_millis(100),
            labels,
            fault: None,
            stalls: Vec::new(),
            stop_for: None,
            readings: Readings::default(),
            window_start_unix_ms: 0.0,
            hold: None,
        })
    }

    /// `--hold`: one line with what was held of what was asked, by how many
    /// processes, the time to open, and the failures to open by kind (only
    /// the kinds that happened).
    #[test]
    fn a_hold_says_what_was_held_and_what_failed_to_open() {
        let mut report = open_loop_report(7600.0, 10, 0);
        let mut failed: std::collections::BTreeMap<String, u64> = crate::load::failure_kinds()
            .map(|kind| (kind.to_owned(), 0))
            .collect();
        failed.insert("port_exhaustion".to_owned(), 12);
        report.hold = Some(runs::Hold {
            connections: 38_000,
            held: 37_988,
            interval_s: 5.0,
            processes: 2,
            open_time_ms: 5990.1,
            connect: None,
            failed_to_open: failed,
        });
        let text = render(&report);
        assert!(
            text.contains(
                "hold        37,988 of 38,000 connections held by 2 process(es), opened in \
                 5.99 s, one request every 5.0 s each; failed to open: port_exhaustion 12"
            ),
            "{text}"
        );
    }

    /// Regression (issue 10, item 8): an open loop below 1 request/s reads as
    /// asked ("0.25/s"), in the summary and in the note of a target that did not
    /// keep up; both used to say "0/s". Reconnects are counted apart.
    #[test]
    fn rates_below_one_per_second_print_as_asked() {
        let kept_up = render(&open_loop_report(0.25, 1, 2));
        assert!(kept_up.contains("open loop at 0.25/s"), "{kept_up}");
        assert!(
            kept_up.contains("1 ok, 0 failed, 2 reconnects: 0.25/s of 0.25/s asked (100.0 %)"),
            "{kept_up}"
        );
        let behind = render(&open_loop_report(0.5, 1, 0));
        assert!(
            behind.contains("1 ok, 0 failed: 0.25/s of 0.5/s asked (50.0 %)"),
            "{behind}"
        );
        assert!(
            behind.contains("did not keep up: 0.25 requests/s answered of 0.5/s asked"),
            "{behind}"
        );
    }

    /// Several targets: one line each with its requests and connections; one
    /// target: none (the first line names it). loadgen's CPU, the machine's
    /// as shares of what it held, and the CPUs allowed in the kernel's list
    /// form.
    #[test]
    fn shows_each_target_and_loadgens_own_cost() {
        use runs::{Affinity, LoadgenUsage, MachineUsage, TargetShare, WatchedAffinity};
        let mut report = open_loop_report(1000.0, 4, 0);
        let one = render(&report);
        assert!(!one.contains("  target "), "{one}");
        report.targets = vec![
            TargetShare {
                url: "http://127.0.0.1:1/".to_owned(),
                connections: 2,
                requests: 3,
            },
            TargetShare {
                url: "http://127.0.0.1:2/".to_owned(),
                connections: 1,
                requests: 1,
            },
        ];
        report.loadgen_usage = Some(LoadgenUsage {
            cpu_user_ms: 30.0,
            cpu_system_ms: 12.0,
            cpu_ms_per_1000_requests: Some(10.5),
        });
        report.affinity = Some(Affinity {
            loadgen: vec![0, 1, 2, 5],
            watched: vec![WatchedAffinity {
                pid: 42,
                cpus: vec![3],
            }],
        });
        report.machine_usage = Some(MachineUsage {
            window_s: 2.0,
            cores: 2,
            busy_s: 2.52,
            idle_s: 1.472,
            iowait_s: 0.0,
            steal_s: 0.008,
        });
        let text = render(&report);
        for line in [
            "  target      http://127.0.0.1:1/ 3 (75.0 %, 2 conn)",
            "  machine     busy 63.0 % of 2 CPUs, steal 0.2 %",
            // 4 requests over 4 s, each 1 MiB out and 512 KiB back.
            "  bytes       sent 1.0 MiB/s, received 512 KiB/s",
            "  target      http://127.0.0.1:2/ 1 (25.0 %, 1 conn)",
            "  loadgen     CPU 42 ms (user 30, system 12), 10.5 ms per 1,000 requests",
            "  CPUs        loadgen 0-2,5, 42 3",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
        assert_eq!(cpu_list(&[]), "none");
        assert_eq!(cpu_list(&[0, 2, 3, 4, 7, 8]), "0,2-4,7-8");
    }

    /// Regression (issue 13): with the label `workers`, a worker that
    /// answered nothing counts as 0 in the fairness figures, so a run where
    /// one pid of 4 answered everything has Jain's index 1/4, not 1.0; its
    /// own latency histogram holds its requests.
    #[test]
    fn fairness_counts_the_workers_that_answered_nothing() {
        let labels = [runs::labels::Label::Workers(4)].into_iter().collect();
        let report = labelled_report(100.0, 40, 0, labels);
        let fairness = report.workers.requests_fairness.expect("fairness");
        assert!((fairness.jain_index - 0.25).abs() < 1e-9, "{fairness:?}");
        assert_eq!(fairness.max_min_ratio, None);
        let alone = open_loop_report(100.0, 40, 0);
        let fairness = alone.workers.requests_fairness.expect("fairness");
        assert_eq!(
            fairness.jain_index, 1.0,
            "without the label only pid 7 is known"
        );
        let worker = &report.workers.by_pid[0];
        assert_eq!(worker.latency.as_ref().map(|l| l.count), Some(40));
        assert!(render(&report).contains("    pid 7"));
    }
}
