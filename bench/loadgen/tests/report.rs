//! End-to-end test of the report: a folder of real loadgen runs (short,
//! against real `proxy` clusters, labelled as `scripts/compare.sh` labels
//! them) rendered by the renderer's own binary, `report DIR`, into REPORT.md
//! and SVG charts; and `loadgen report DIR`, which names that binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::Cluster;

use common::{LOADGEN, TempPath, loadgen, proxy_bin, report_bin};

/// The report's mark on a row of a disturbed round (`report`'s
/// `text::DISTURBED_MARK`): since loadgen records the machine's CPU (issue
/// 22), a test run on a busy machine has its rows marked.
const DISTURBED_MARK: &str = " †";

/// Whether `report` has the table row of `mode` beginning with `rest`
/// (`| keep-alive |`), marked disturbed or not.
fn has_row(report: &str, mode: &str, rest: &str) -> bool {
    ["", DISTURBED_MARK]
        .iter()
        .any(|mark| report.contains(&format!("| {mode}{mark} {rest}")))
}

/// A temporary results folder with a `runs/` subfolder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = TempPath::new("-report").0.clone();
        std::fs::create_dir_all(dir.join("runs")).expect("create the folder");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs loadgen with `labels` and `args` for 0.3 s after a warm-up of 100 ms
/// and saves its JSON in `dir/runs/`.
fn measure(dir: &Path, name: &str, labels: &[(&str, &str)], args: &[&str]) {
    measure_after(dir, name, "100ms", labels, args);
}

/// [`measure`] with another warm-up.
fn measure_after(dir: &Path, name: &str, warmup: &str, labels: &[(&str, &str)], args: &[&str]) {
    let mut all: Vec<String> = [
        "--duration",
        "300ms",
        "--warmup",
        warmup,
        "--sample-interval",
        "20ms",
    ]
    .map(str::to_owned)
    .to_vec();
    for (key, value) in labels {
        all.push("--label".to_owned());
        all.push(format!("{key}={value}"));
    }
    all.extend(args.iter().map(|arg| (*arg).to_owned()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let run = loadgen(&refs);
    assert!(
        run.status.success(),
        "{name}: {}\n{}",
        run.stdout,
        run.stderr
    );
    let json = serde_json::to_string(run.report()).expect("JSON");
    std::fs::write(dir.join("runs").join(format!("{name}.json")), json).expect("save the run");
}

/// A folder with runs of every section renders into REPORT.md with every
/// section and its figures, and into SVG charts.
#[test]
fn renders_every_section_from_real_runs() {
    let dir = TempDir::new();
    let cluster = Cluster::start(proxy_bin(), &["--workers", "2"]).expect("start proxy");
    let url = format!("http://{}/", cluster.addr());
    let master = cluster.master_pid().to_string();
    let watch = ["--watch", master.as_str()];
    // `openloop` as runs written before the sweep have it: they still load.
    for round in ["1", "2"] {
        for (load, extra) in [
            ("keepalive", &[][..]),
            ("newconn", &["--new-conn"][..]),
            ("openloop", &["--rate", "500"][..]),
        ] {
            let mut args = vec!["--target", url.as_str(), "--connections", "8"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&watch);
            let labels = [
                ("section", "throughput"),
                ("mode", "proxy"),
                ("load", load),
                ("round", round),
            ];
            measure(
                &dir.0,
                &format!("throughput-proxy-{load}-{round}"),
                &labels,
                &args,
            );
        }
    }
    // The sweep: two offered rates under each load.
    for rate in ["200", "400"] {
        for (load, extra) in [("keepalive", &[][..]), ("newconn", &["--new-conn"][..])] {
            let mut args = vec![
                "--target",
                url.as_str(),
                "--connections",
                "8",
                "--rate",
                rate,
                "--timeout",
                "1s",
            ];
            args.extend_from_slice(extra);
            let labels = [
                ("section", "sweep"),
                ("mode", "proxy"),
                ("load", load),
                ("rate", rate),
            ];
            measure(
                &dir.0,
                &format!("sweep-proxy-{load}-{rate}"),
                &labels,
                &args,
            );
        }
    }
    for connections in ["10", "40"] {
        let labels = [
            ("section", "fdbill"),
            ("mode", "proxy"),
            ("connections", connections),
            ("round", "1"),
        ];
        let args = [
            "--target",
            url.as_str(),
            "--connections",
            connections,
            "--watch",
            master.as_str(),
        ];
        measure(
            &dir.0,
            &format!("fdbill-proxy-{connections}"),
            &labels,
            &args,
        );
    }
    let busy = format!("{url}?work_us=100");
    let labels = [
        ("section", "fairness"),
        ("mode", "proxy"),
        ("load", "keepalive"),
        ("work_us", "100"),
        ("round", "1"),
    ];
    measure(
        &dir.0,
        "fairness-proxy",
        &labels,
        &["--target", busy.as_str(), "--connections", "8"],
    );
    let worker = cluster.worker_pids()[0].to_string();
    let labels = [("section", "faults"), ("mode", "proxy"), ("round", "1")];
    let args = [
        "--target",
        url.as_str(),
        "--connections",
        "4",
        "--new-conn",
        "--kill",
        worker.as_str(),
        "--kill-after",
        "100ms",
    ];
    measure(&dir.0, "faults-proxy", &labels, &args);
    // Section 8: a run with --timeline, to which the `upgrades` block that
    // `suite upgrade` (bench/suite/src/upgrade.rs) adds is added here: one upgrade 100 ms into the
    // window, whose new generation never answered (the rendering, not the
    // upgrade, is under test; tests/upgrade.rs runs the script).
    let labels = [
        ("section", "upgrade"),
        ("mode", "proxy"),
        ("strategy", "takeover"),
        ("load", "newconn"),
    ];
    let args = [
        "--target",
        url.as_str(),
        "--connections",
        "4",
        "--new-conn",
        "--rate",
        "200",
        "--timeline",
    ];
    measure(&dir.0, "upgrade-proxy-takeover", &labels, &args);
    let path = dir.0.join("runs/upgrade-proxy-takeover.json");
    let mut run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the run")).expect("JSON");
    let start = run["timeline"]["start_unix_ms"]
        .as_f64()
        .expect("a timeline");
    run["upgrades"] = serde_json::json!({
        "init_delay_ms": 200.0, "tcp_migrate_req": 0, "netns": false, "kernel": "test",
        "events": [{
            "at_unix_ms": start + 100.0, "old_master": cluster.master_pid(),
            "old_workers": cluster.worker_pids(), "new_master": 1, "new_workers": [],
            "new_start_ms": 0.0, "new_ready_ms": 50.0, "old_exit_ms": 80.0, "old_exit_code": 0
        }]
    });
    std::fs::write(&path, run.to_string()).expect("save the run");
    drop(cluster);

    // The fd limit: a master with 64 fds cannot hold 60 relayed connections.
    let limited =
        Cluster::start(proxy_bin(), &["--workers", "2", "--max-fds", "64"]).expect("start proxy");
    let url = format!("http://{}/", limited.addr());
    for connections in ["5", "60"] {
        let labels = [
            ("section", "fdlimit"),
            ("mode", "proxy"),
            ("connections", connections),
            ("max_fds", "64"),
            ("round", "1"),
        ];
        let args = [
            "--target",
            url.as_str(),
            "--connections",
            connections,
            "--timeout",
            "1s",
        ];
        measure(
            &dir.0,
            &format!("fdlimit-proxy-{connections}"),
            &labels,
            &args,
        );
    }
    drop(limited);

    let rendered = Command::new(report_bin())
        .arg(&dir.0)
        .output()
        .expect("run report");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let report = std::fs::read_to_string(dir.0.join("REPORT.md")).expect("REPORT.md");
    for heading in [
        "## 1. Throughput and latency",
        "## 1b. Latency against offered load",
        "## 2. The bill at scale",
        "## 3. The fd limit",
        "## 4. Fairness",
        "## 5. Master cost",
        "## 6. Faults",
        "## 7. Peers",
        "## 8. Upgrades",
        "README.md",
        "Machine: ",
        "## At a glance",
        "## Limitations",
        "**Loopback only:**",
        "[§2](#2-the-bill-at-scale)",
    ] {
        assert!(report.contains(heading), "no {heading:?} in\n{report}");
    }
    assert!(
        has_row(&report, "proxy", "| takeover | 1 | 0 (0) | none |"),
        "{report}"
    );
    assert!(
        !report.contains("runs in this folder"),
        "a section had no runs:\n{report}"
    );
    // Figures written from the data: the proxy's fds per connection, the fd
    // limit's row, a successor that answered after the kill.
    assert!(has_row(&report, "proxy", "| keep-alive |"), "{report}");
    assert!(report.contains("fds per connection"), "{report}");
    assert!(has_row(&report, "proxy", "| 64 |"), "{report}");
    assert!(report.contains("served from the new worker"), "{report}");
    assert!(report.contains("No peer runs"), "{report}");
    // The cost per request of the master, the workers, the tree and loadgen,
    // per mode and load with its rounds; the whole tree's fd bill; each
    // section's own round count; the capacity under --max-fds.
    assert!(
        report.contains(
            "| mode | load | rounds | master µs/request | workers µs/request | tree µs/request | loadgen µs/request |"
        ),
        "{report}"
    );
    assert!(has_row(&report, "proxy", "| keep-alive | 2 |"), "{report}");
    assert!(
        report.contains("| master fds | workers fds | tree fds |"),
        "{report}"
    );
    assert!(report.contains("its whole tree"), "{report}");
    assert!(
        report.contains("Each figure comes from 2 rounds"),
        "{report}"
    );
    assert!(report.contains("One run per figure, no rounds"), "{report}");
    assert!(has_row(&report, "proxy", "| 64 |"), "{report}");
    assert!(
        report.contains("open loop, asked 500/s | achieved"),
        "{report}"
    );
    // The sweep's rows, from its labels, and its capacity on the first screen.
    assert!(has_row(&report, "proxy", "| 200 | "), "{report}");
    assert!(has_row(&report, "proxy", "| 400 | "), "{report}");
    assert!(report.contains("**Capacity at p99 ≤ 10 ms**"), "{report}");
    for chart in [
        "latency-vs-rate.svg",
        "rounds.svg",
        "fds.svg",
        "fairness.svg",
        "cost-per-request.svg",
        "master-fds-over-time.svg",
        "upgrade-failures.svg",
        "upgrade-timeline.svg",
    ] {
        assert!(report.contains(chart), "REPORT.md does not link {chart}");
        let svg = std::fs::read_to_string(dir.0.join(chart))
            .unwrap_or_else(|err| panic!("{chart}: {err}"));
        assert!(
            svg.trim_start().starts_with("<svg"),
            "{chart} starts with {:?}",
            &svg[..40.min(svg.len())]
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{chart} is cut short");
    }
    if let Ok(keep) = std::env::var("LOADGEN_TEST_KEEP_REPORT") {
        let _ = Command::new("cp").arg("-r").arg(&dir.0).arg(keep).status();
    }
}

/// `loadgen report DIR`, the renderer's command before it had its own
/// binary, exits 2 with one line that names the new command, and renders
/// nothing.
#[test]
fn loadgen_report_names_the_report_binary() {
    let dir = TempDir::new();
    let refused = Command::new(LOADGEN)
        .arg("report")
        .arg(&dir.0)
        .output()
        .expect("run loadgen report");
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("`report {}`", dir.0.display())),
        "{stderr}"
    );
    assert!(!dir.0.join("REPORT.md").exists());
}
