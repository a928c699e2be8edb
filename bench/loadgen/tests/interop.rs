//! End-to-end tests of what users of the tools beside loadgen expect (issue
//! 26): HdrHistogram's percentile distribution (`--hgrm`, as wrk2
//! `--latency` and vegeta's `hdrplot`), thresholds that set the exit code
//! (`--slo`, as k6's), and Poisson arrivals (`--arrivals poisson`). The real
//! binary against a real `handoff` cluster or the small test server, on
//! 127.0.0.1 port 0; each load lasts 1 to 2 s.

mod common;

use std::path::Path;

use serde_json::Value;
use testkit::Cluster;

use common::server::{Behaviour, TestServer};
use common::{f64_at, file_names, handoff_bin, loadgen, u64_at};

/// Starts `handoff --workers 2 --listen 127.0.0.1:0`, killed when dropped.
fn handoff_cluster() -> Cluster {
    Cluster::start(handoff_bin(), &["--workers", "2"])
        .unwrap_or_else(|err| panic!("start the handoff cluster: {err:#}"))
}

/// One row of a percentile distribution: `Value Percentile TotalCount`.
#[derive(Debug, Clone, Copy)]
struct Row {
    /// The value, µs (the file's ms × 1000, rounded: it prints µs exactly).
    value_us: u64,
    /// The percentile, 0 to 1.
    percentile: f64,
    /// Samples at or below the value.
    total_count: u64,
}

/// A `.hgrm` file read back: its rows, and its footer's total count and max.
#[derive(Debug)]
struct Distribution {
    rows: Vec<Row>,
    total_count: u64,
    max_us: u64,
}

/// Parses the percentile distribution at `path`, checking on the way that
/// HdrHistogram's plotter reads it: it plots every line not starting with
/// `#` that splits into 4 fields and whose first and fourth parse as
/// numbers (value against 1/(1-percentile)), which must be most rows, in
/// increasing order of both.
fn read_hgrm(path: &Path) -> Distribution {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"],
        "{text}"
    );
    let ms_to_us =
        |field: &str| (field.parse::<f64>().expect("a value in ms") * 1000.0).round() as u64;
    let mut rows = Vec::new();
    let mut plotted: Vec<(f64, f64)> = Vec::new();
    let mut total_count = None;
    let mut max_us = None;
    for line in &lines[1..] {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let Some(footer) = line.strip_prefix("#[") {
            // `#[Max     =   12.345, Total count    =   3000]`
            let pairs: Vec<(&str, &str)> = footer
                .trim_end_matches(']')
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(key, value)| (key.trim(), value.trim()))
                .collect();
            for (key, value) in pairs {
                match key {
                    "Total count" => total_count = value.parse().ok(),
                    "Max" => max_us = Some(ms_to_us(value)),
                    _ => {}
                }
            }
            continue;
        }
        if fields.is_empty() {
            continue;
        }
        assert!(
            fields.len() == 4 || fields.len() == 3,
            "a row of 3 or 4 fields: {line:?}"
        );
        rows.push(Row {
            value_us: ms_to_us(fields[0]),
            percentile: fields[1].parse().expect("a percentile"),
            total_count: fields[2].parse().expect("a count"),
        });
        if fields.len() == 4 {
            if let (Ok(y), Ok(x)) = (fields[0].parse::<f64>(), fields[3].parse::<f64>()) {
                plotted.push((x, y));
            }
        }
    }
    assert!(
        plotted.len() + 1 == rows.len() && plotted.len() >= 10,
        "the plotter would draw {} of {} rows",
        plotted.len(),
        rows.len()
    );
    assert!(
        plotted
            .windows(2)
            .all(|pair| pair[0].0 < pair[1].0 && pair[0].1 <= pair[1].1),
        "points out of order: {plotted:?}"
    );
    Distribution {
        rows,
        total_count: total_count.expect("a Total count in the footer"),
        max_us: max_us.expect("a Max in the footer"),
    }
}

/// Asserts that the distribution at `path` is `summary` (a histogram of the
/// JSON): the same count (footer and last row) and max, p50 on the row at
/// 50 % exactly, and p99, which falls between two rows (98.906 % and
/// 99.063 %), between their values.
fn assert_agrees(path: &Path, summary: &Value) {
    let what = path.display();
    let distribution = read_hgrm(path);
    let count = u64_at(summary, &["count"]);
    assert_eq!(distribution.total_count, count, "{what}: total count");
    let last = distribution.rows.last().expect("rows");
    assert_eq!((last.percentile, last.total_count), (1.0, count), "{what}");
    assert_eq!(
        distribution.max_us,
        u64_at(summary, &["max_us"]),
        "{what}: max"
    );
    for (quantile, key) in [(0.5, "p50_us"), (0.99, "p99_us")] {
        let json_us = u64_at(summary, &[key]);
        let below = distribution
            .rows
            .iter()
            .rev()
            .find(|row| row.percentile <= quantile)
            .expect("a row at or below");
        let above = distribution
            .rows
            .iter()
            .find(|row| row.percentile >= quantile)
            .expect("a row at or above");
        assert!(
            below.value_us <= json_us && json_us <= above.value_us,
            "{what}: {key} {json_us} µs is not between the rows {below:?} and {above:?}"
        );
        if quantile == 0.5 {
            assert_eq!(below.value_us, json_us, "{what}: the 50 % row is p50");
        }
    }
}

/// `--hgrm`: an open loop writes PATH, the corrected latency, and beside it
/// `.uncorrected` before the extension, each agreeing with its histogram in
/// the JSON (`latency.request`, `latency.request_uncorrected`) on count,
/// max, p50 and p99, each readable by HdrHistogram's plotter, and nothing
/// else is left in the folder. A closed loop writes both too, the same
/// histogram (latency from the send).
#[test]
fn hgrm_files_agree_with_the_json() {
    let cluster = handoff_cluster();
    let url = format!("http://{}/", cluster.addr());
    let dir = tempfile::tempdir().expect("a temporary folder");
    let hgrm = dir.path().join("run.hgrm");
    let uncorrected = dir.path().join("run.uncorrected.hgrm");
    let hgrm_arg = hgrm.to_str().expect("a UTF-8 temp path");
    let run = loadgen(&[
        "--target",
        &url,
        "--rate",
        "2000",
        "--connections",
        "4",
        "--duration",
        "1500ms",
        "--warmup",
        "200ms",
        "--hgrm",
        hgrm_arg,
    ]);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    let latency = &run.report()["latency"];
    assert!(
        u64_at(&latency["request"], &["count"]) > 1000,
        "{}",
        run.stdout
    );
    assert_agrees(&hgrm, &latency["request"]);
    assert_agrees(&uncorrected, &latency["request_uncorrected"]);
    assert_eq!(file_names(dir.path()), ["run.hgrm", "run.uncorrected.hgrm"]);

    let run = loadgen(&[
        "--target",
        &url,
        "--connections",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--hgrm",
        hgrm_arg,
    ]);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    assert_agrees(&hgrm, &run.report()["latency"]["request"]);
    assert_eq!(
        std::fs::read_to_string(&hgrm).expect("read"),
        std::fs::read_to_string(&uncorrected).expect("read"),
        "closed loop: the two files hold the same histogram"
    );
}

/// `--slo`: against a real handoff cluster, `p99<=1us` cannot hold (a
/// loopback answer takes tens of µs at least): loadgen exits 99, its summary
/// says FAIL for that threshold with the p99 it measured and pass for the
/// others, stderr names the failed one, and the JSON's `slo` holds each
/// verdict with its value (the p99 of `latency.request`). The same run with
/// thresholds that hold exits 0.
#[test]
fn a_failed_threshold_exits_99_and_names_it() {
    let cluster = handoff_cluster();
    let url = format!("http://{}/", cluster.addr());
    let load = [
        "--target",
        url.as_str(),
        "--connections",
        "4",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ];
    let args: Vec<&str> = load
        .iter()
        .copied()
        .chain([
            "--slo",
            "p99<=1us",
            "--slo",
            "errors=0",
            "--slo",
            "answered>=0.9",
        ])
        .collect();
    let run = loadgen(&args);
    assert_eq!(
        run.status.code(),
        Some(99),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout
            .contains("  slo         FAIL p99<=1us: measured "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("  slo         pass errors=0: measured 0"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("  slo         pass answered>=0.9: measured 100.00 %"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("1 of 3 --slo thresholds failed: p99<=1us"),
        "{}",
        run.stderr
    );
    let report = run.report();
    let slo = report["slo"].as_array().expect("slo is an array");
    let verdicts: Vec<(&str, bool)> = slo
        .iter()
        .map(|result| {
            (
                result["expr"].as_str().expect("expr"),
                result["pass"].as_bool().expect("pass"),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("p99<=1us", false),
            ("errors=0", true),
            ("answered>=0.9", true)
        ]
    );
    assert_eq!(
        f64_at(&slo[0], &["value"]),
        u64_at(report, &["latency", "request", "p99_us"]) as f64
    );
    assert_eq!(f64_at(&slo[2], &["value"]), 1.0);

    let args: Vec<&str> = load
        .iter()
        .copied()
        .chain(["--slo", "p99<=1h", "--slo", "rps>=1"])
        .collect();
    let run = loadgen(&args);
    assert_eq!(run.status.code(), Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("  slo         pass p99<=1h"),
        "{}",
        run.stdout
    );
}

/// `--arrivals poisson`: recorded in the JSON with its seed; the requests
/// due in 2 s at 1,000/s are about 2,000 (a Poisson count: 2,000 ± 45, so
/// ±10 % is generous), and the gaps between the arrivals the server sees
/// are spread as exponential ones: their median is about ln 2 = 0.69 of the
/// mean gap, 1/R, where an even schedule's median is the mean gap itself.
/// (The median, not the coefficient of variation: one 0.5 s hiccup of a
/// loaded machine made that 11.)
#[test]
fn poisson_arrivals_are_recorded_and_vary() {
    let server = TestServer::start(Behaviour::Fast);
    let run = loadgen(&[
        "--target",
        &server.url(),
        "--rate",
        "1000",
        "--arrivals",
        "poisson",
        "--seed",
        "7",
        "--connections",
        "5",
        "--duration",
        "2s",
        "--warmup",
        "0",
    ]);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    let report = run.report();
    assert_eq!(report["parameters"]["arrivals"], "poisson");
    assert_eq!(u64_at(report, &["parameters", "seed"]), 7);
    let scheduled = u64_at(report, &["requests", "scheduled"]);
    assert!(
        (1800..=2200).contains(&scheduled),
        "{scheduled} due in 2 s at 1000/s"
    );

    let mut arrivals = server.arrivals();
    arrivals.sort_unstable();
    assert!(arrivals.len() >= 1700, "the server saw {}", arrivals.len());
    let mut gaps_ms: Vec<f64> = arrivals
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).as_secs_f64() * 1000.0)
        .collect();
    gaps_ms.sort_by(f64::total_cmp);
    let median_ms = gaps_ms[gaps_ms.len() / 2];
    assert!(
        (0.45..=0.85).contains(&median_ms),
        "the server's median gap is {median_ms:.3} ms, not about 0.69 ms (ln 2 of 1 ms)"
    );
}

/// `--body-bytes` and `?bytes=N` (issue 25) against a real `handoff`
/// cluster: 64 KiB POSTs are all answered 2xx (the worker read each body:
/// it answers 413 beyond its bound and an error to a short one), and the
/// JSON counts at least 64 KiB sent per answered request; a `?bytes=65536`
/// target's answers count at least 64 KiB received each. The summary has
/// its `bytes` line, and the JSON records the flag.
#[test]
fn bodies_and_large_answers_are_counted_both_ways() {
    let cluster = handoff_cluster();
    let base = format!("http://{}/", cluster.addr());
    let large = format!("http://{}/?bytes=65536", cluster.addr());
    for (url, body_bytes) in [(&base, Some("65536")), (&large, None)] {
        let mut args = vec![
            "--target",
            url.as_str(),
            "--connections",
            "4",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
        ];
        if let Some(body_bytes) = body_bytes {
            args.extend(["--body-bytes", body_bytes]);
        }
        let run = loadgen(&args);
        assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
        let report = run.report();
        let ok = u64_at(report, &["requests", "ok"]);
        assert!(ok > 0, "{}", run.stdout);
        assert_eq!(u64_at(report, &["requests", "failed"]), 0, "{}", run.stdout);
        let statuses = report["errors"]["statuses"].as_object().expect("statuses");
        assert!(
            statuses.keys().all(|status| status.starts_with('2')),
            "{statuses:?}"
        );
        let (sent, received) = (
            u64_at(report, &["bytes", "sent_bytes"]),
            u64_at(report, &["bytes", "received_bytes"]),
        );
        let duration_s = f64_at(report, &["parameters", "duration_s"]);
        let per_s = f64_at(report, &["bytes", "sent_bytes_per_s"]);
        assert!((per_s - sent as f64 / duration_s).abs() <= 1.0, "{per_s}");
        // Each request and answer has a head of some bytes, at least.
        assert!(sent > ok && received > ok, "{sent} {received}");
        match body_bytes {
            Some(_) => {
                assert!(sent >= ok * 65536, "{sent} bytes sent for {ok} answers");
                assert_eq!(report["parameters"]["body_bytes"], 65536);
            }
            None => {
                assert!(received >= ok * 65536, "{received} bytes received for {ok}");
                assert!(report["parameters"]["body_bytes"].is_null());
            }
        }
        assert!(
            run.stdout.contains("  bytes       sent "),
            "no bytes line in\n{}",
            run.stdout
        );
    }
}
