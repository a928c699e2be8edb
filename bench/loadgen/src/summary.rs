//! The short human summary of a [`Report`], printed on stdout.

use std::fmt::Write;

use crate::report::{Fairness, HistogramSummary, Report, UseSummary};

/// Renders `report` as a dozen lines of text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let parameters = &report.parameters;
    let requests = &report.requests;
    let load = match parameters.rate_per_s {
        Some(rate) => format!("open loop at {}/s", count_f64(rate)),
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

    let rate = match (requests.asked_per_s, requests.achieved_ratio) {
        (Some(asked), Some(ratio)) => format!(
            "{}/s of {}/s asked ({:.1} %)",
            count_f64(requests.per_s),
            count_f64(asked),
            ratio * 100.0
        ),
        _ => format!("{}/s", count_f64(requests.per_s)),
    };
    let _ = writeln!(
        out,
        "  requests    {} ok, {} failed: {rate}",
        count(requests.ok),
        count(requests.failed)
    );

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
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
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

/// A latency in µs with a readable unit: `412 µs`, `1.21 ms`, `2.50 s`.
pub(crate) fn micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

/// A size in bytes in KiB, MiB or GiB.
pub(crate) fn bytes(bytes: u64) -> String {
    let bytes = bytes as f64;
    if bytes < 1024.0 * 1024.0 {
        format!("{:.0} KiB", bytes / 1024.0)
    } else if bytes < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", bytes / (1024.0 * 1024.0 * 1024.0))
    }
}

/// A count with thousands separators: `512,345`.
pub(crate) fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (at, digit) in digits.chars().enumerate() {
        if at > 0 && (digits.len() - at) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A rate: whole with separators from 100 up, one decimal below.
pub(crate) fn count_f64(value: f64) -> String {
    if value >= 100.0 {
        count(value.round() as u64)
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers read as a person expects.
    #[test]
    fn formats_numbers() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(512_345), "512,345");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count_f64(0.5), "0.5");
        assert_eq!(count_f64(2000.4), "2,000");
        assert_eq!(micros(412.0), "412 µs");
        assert_eq!(micros(1210.0), "1.21 ms");
        assert_eq!(micros(2_500_000.0), "2.50 s");
        assert_eq!(bytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
    }
}
