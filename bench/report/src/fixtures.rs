//! Synthetic runs for the unit tests: a skeleton report with every part,
//! labelled and with its figures overwritten, and the small run sets the
//! sections' tests share.

use runs::labels::Label;
use runs::{ProcessReport, Report, Role, SpectrumPoint, WorkerShare};

/// A small synthetic report read from JSON-like figures, labelled.
pub fn run(labels: &[(&str, &str)], per_s: f64, p99_us: u64) -> Report {
    let mut report: Report = serde_json::from_str(SKELETON).expect("the skeleton is a report");
    report.labels = labels
        .iter()
        .map(|(key, value)| Label::parse(key, value).expect("a label of the contract"))
        .collect();
    report.requests.per_s = per_s;
    let summary = report.latency.request.as_mut().expect("a histogram");
    summary.p99_us = p99_us;
    summary.max_us = p99_us * 2;
    summary.spectrum = vec![
        SpectrumPoint {
            percentile: 50.0,
            value_us: 100,
        },
        SpectrumPoint {
            percentile: 90.0,
            value_us: 200,
        },
        SpectrumPoint {
            percentile: 99.0,
            value_us: p99_us,
        },
        SpectrumPoint {
            percentile: 100.0,
            value_us: p99_us * 2,
        },
    ];
    report
}

/// A report with every part, figures to be overwritten.
const SKELETON: &str = r#"{
  "format": "loadgen-report/1", "loadgen_version": "0", "started_at": "2026-01-01T00:00:00Z",
  "parameters": {"target": "http://127.0.0.1:1/", "loop": "closed", "connections": 10,
    "threads": 1, "duration_s": 1, "warmup_s": 0, "rate_per_s": null, "new_conn": false,
    "timeout_s": 5, "sample_interval_ms": 100, "watch": [1], "command_line": []},
  "machine": {"cpu_model": "cpu", "cores": 2, "kernel": "6", "os": "linux"},
  "fd_limit": {"soft_at_start": 1024, "soft": 1024, "hard": 1024},
  "phases": {"measure_start_ms": 0, "measure_end_ms": 1000, "run_end_ms": 1000},
  "requests": {"ok": 1000, "failed": 0, "per_s": 1000, "asked_per_s": null,
    "achieved_ratio": null, "scheduled": null, "unanswered_at_end": 0, "connections_opened": 0},
  "latency": {"measured_from": "send", "request": {"count": 1000, "min_us": 1, "max_us": 10,
    "mean_us": 5, "stdev_us": 1, "p50_us": 100, "p90_us": 200, "p99_us": 300, "p99_9_us": 400,
    "p99_99_us": 500, "spectrum": [{"percentile": 100, "value_us": 10}]},
    "request_uncorrected": null, "connect": null},
  "workers": {"by_pid": [], "requests_without_pid": 0, "requests_fairness": null,
    "connections_fairness": null},
  "errors": {"total": 0, "by_kind": {}, "statuses": {}},
  "watch": [{"pid": 1, "gone_at_ms": null, "error": null,
    "summary": {"samples": 2, "fds_max": 10, "fds_mean": 10, "rss_max_bytes": 1000,
      "rss_mean_bytes": 1000, "cpu_user_ms": 1, "cpu_system_ms": 1, "cpu_cores": 0.1,
      "cpu_ms_per_1000_requests": 3.0},
    "processes": [{"pid": 1, "ppid": 0, "name": "proxy", "role": "watched",
      "summary": {"samples": 2, "fds_max": 10, "fds_mean": 10, "rss_max_bytes": 1000,
        "rss_mean_bytes": 1000, "cpu_user_ms": 1, "cpu_system_ms": 1, "cpu_cores": 0.1,
        "cpu_ms_per_1000_requests": 2.0},
      "samples": [{"t_ms": 0, "fds": 10, "rss_bytes": 1000, "cpu_user_ms": 0, "cpu_system_ms": 0}]}]}],
  "labels": {}, "fault": null, "notes": []
}"#;

/// Sets the most fds the master of `run` held.
pub fn set_master_fds(run: &mut Report, fds: usize) {
    run.watch[0].processes[0].summary.fds_max = fds;
}

/// A watched process: `pid`, child of `ppid` (0: the watched root), with
/// `us` µs of CPU per request, `fds` fds and `rss` bytes at most.
pub fn process(pid: u32, ppid: u32, us: f64, fds: usize, rss: u64) -> ProcessReport {
    let mut process = SKELETON_RUN.with(|run| run.watch[0].processes[0].clone());
    process.pid = pid;
    process.ppid = ppid;
    process.role = if ppid == 0 {
        Role::Watched
    } else {
        Role::Child
    };
    process.summary.cpu_ms_per_1000_requests = Some(us);
    process.summary.fds_max = fds;
    process.summary.rss_max_bytes = rss;
    process
}

thread_local! {
    static SKELETON_RUN: Report = run(&[], 1.0, 1);
}

/// Sets watch entry `index` to the tree of `processes` (the first its
/// root), its summary the sums.
pub fn watch_tree(run: &mut Report, index: usize, processes: Vec<ProcessReport>) {
    let mut tree = run.watch[0].clone();
    tree.pid = processes[0].pid;
    tree.summary.fds_max = processes.iter().map(|p| p.summary.fds_max).sum();
    tree.summary.rss_max_bytes = processes.iter().map(|p| p.summary.rss_max_bytes).sum();
    tree.summary.cpu_ms_per_1000_requests = Some(
        processes
            .iter()
            .filter_map(|p| p.summary.cpu_ms_per_1000_requests)
            .sum(),
    );
    tree.processes = processes;
    if index < run.watch.len() {
        run.watch[index] = tree;
    } else {
        run.watch.push(tree);
    }
}

pub fn throughput_run(mode: &str, load: &str, round: &str) -> Report {
    run(
        &[
            ("section", "throughput"),
            ("mode", mode),
            ("load", load),
            ("round", round),
        ],
        1.0,
        1,
    )
}

/// A worker's share with a latency histogram whose p99 is `p99_us`.
pub fn worker(pid: u32, requests: u64, share: f64, p99_us: u64) -> WorkerShare {
    let mut latency = run(&[], 1.0, p99_us)
        .latency
        .request
        .expect("the skeleton has a histogram");
    latency.count = requests;
    WorkerShare {
        pid,
        requests,
        requests_share: share,
        connections: requests,
        first_ms: None,
        last_ms: None,
        latency: Some(latency),
    }
}

/// A sweep run of `mode` under `load` at `rate`/s offered: `achieved`/s,
/// p99 `p99_us` corrected and `sent_us` as sent, `failed` requests.
pub fn sweep_run(
    mode: &str,
    load: &str,
    rate: u64,
    achieved: f64,
    (p99_us, sent_us): (u64, u64),
    failed: u64,
) -> Report {
    let rate_label = rate.to_string();
    let mut run = run(
        &[
            ("section", "sweep"),
            ("mode", mode),
            ("load", load),
            ("rate", &rate_label),
        ],
        achieved,
        p99_us,
    );
    run.parameters.rate_per_s = Some(rate as f64);
    run.requests.asked_per_s = Some(rate as f64);
    run.requests.failed = failed;
    let mut as_sent = run.latency.request.clone().expect("a histogram");
    as_sent.p99_us = sent_us;
    run.latency.request_uncorrected = Some(as_sent);
    run
}

/// A cost run (§0) of `mode` under `load` at `rate`/s in `round`, held:
/// every request answered, on time; its master spends `master_us` and its
/// two workers `workers_us` CPU per request between them (the baseline's
/// master is not in the path, so its tree is the workers), loadgen 5 µs.
pub fn cost_run(
    mode: &str,
    load: &str,
    rate: u64,
    round: u32,
    (master_us, workers_us): (f64, f64),
) -> Report {
    let (rate_label, round_label) = (rate.to_string(), round.to_string());
    let mut run = run(
        &[
            ("section", "cost"),
            ("mode", mode),
            ("load", load),
            ("rate", &rate_label),
            ("round", &round_label),
            ("workers", "2"),
        ],
        rate as f64,
        400,
    );
    run.parameters.load_loop = runs::LoadLoop::Open;
    run.parameters.rate_per_s = Some(rate as f64);
    run.requests.asked_per_s = Some(rate as f64);
    run.requests.achieved_ratio = Some(1.0);
    run.requests.ok = rate * 3;
    run.requests.scheduled = Some(rate * 3);
    run.latency.measured_from = runs::MeasuredFrom::IntendedStart;
    let summary = run.latency.request.as_mut().expect("a histogram");
    summary.count = rate * 3;
    run.latency.request_uncorrected = run.latency.request.clone();
    watch_tree(
        &mut run,
        0,
        vec![
            process(10, 0, master_us, 10, 1000),
            process(11, 10, workers_us / 2.0, 10, 1000),
            process(12, 10, workers_us / 2.0, 10, 1000),
        ],
    );
    run.loadgen_usage = Some(runs::LoadgenUsage {
        cpu_user_ms: 1.0,
        cpu_system_ms: 4.0,
        cpu_ms_per_1000_requests: Some(5.0),
    });
    run
}

/// A run labelled `labels` whose master holds `master_fds` and its tree
/// `tree_fds`.
pub fn fds(labels: &[(&str, &str)], master_fds: usize, tree_fds: usize) -> Report {
    let mut report = run(labels, 1.0, 1);
    report.watch[0].processes[0].summary.fds_max = master_fds;
    report.watch[0].summary.fds_max = tree_fds;
    report
}

/// A newconn throughput run of `mode`: its master spends `master_us` and
/// one worker `worker_us` CPU per request.
pub fn newconn(mode: &str, master_us: f64, worker_us: f64) -> Report {
    let mut report = run(
        &[
            ("section", "throughput"),
            ("mode", mode),
            ("load", "newconn"),
        ],
        1.0,
        1,
    );
    let tree = &mut report.watch[0];
    tree.processes[0].summary.cpu_ms_per_1000_requests = Some(master_us);
    let mut worker = tree.processes[0].clone();
    worker.pid = 2;
    worker.ppid = 1;
    worker.role = Role::Child;
    worker.summary.cpu_ms_per_1000_requests = Some(worker_us);
    tree.processes.push(worker);
    report
}

/// A small run set with every section the first screen reads: proxy 2
/// fds per connection in the master and 3 in the tree, the handoff modes
/// 0 and 1; proxy serving 112 connections under 256 fds, a handoff
/// master 400 without reaching its limit; CPU per request with a new
/// connection per request.
pub fn glance_runs() -> Vec<Report> {
    let mut runs = Vec::new();
    for n in [100usize, 1000] {
        let label = n.to_string();
        for (mode, master, tree) in [
            ("proxy", 12 + 2 * n, 20 + 3 * n),
            ("handoff-socket", 9, 15 + n),
            ("handoff-listener", 9, 15 + n),
        ] {
            runs.push(fds(
                &[
                    ("section", "fdbill"),
                    ("mode", mode),
                    ("connections", &label),
                ],
                master,
                tree,
            ));
        }
    }
    for (mode, n, failed) in [
        ("proxy", 50u64, 0u64),
        ("proxy", 150, 38),
        ("proxy", 200, 88),
        ("handoff-listener", 50, 0),
        ("handoff-listener", 400, 0),
    ] {
        let label = n.to_string();
        let mut report = run(
            &[
                ("section", "fdlimit"),
                ("mode", mode),
                ("connections", &label),
                ("max_fds", "256"),
            ],
            1.0,
            1,
        );
        report.requests.failed = failed;
        runs.push(report);
    }
    runs.push(newconn("proxy", 40.0, 50.0));
    runs.push(newconn("handoff-socket", 1.0, 30.0));
    runs.push(newconn("direct", 5.0, 20.0));
    runs
}

/// The lines of the "At a glance" block that start with `- `.
pub fn glance_lines(text: &str) -> Vec<String> {
    let start = text.find("## At a glance").expect("an At a glance block");
    let end = text
        .find(&format!("## {}", crate::sections::throughput::HEADING))
        .expect("section 1");
    assert!(start < end, "the glance comes before section 1");
    text[start..end]
        .lines()
        .filter(|line| line.starts_with("- "))
        .map(str::to_owned)
        .collect()
}
