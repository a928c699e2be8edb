//! `scripts/compare.sh --quick`, the suite's main job in its short form, run to
//! its end, so that the script and the report cannot rot: every section of
//! REPORT.md is written, with its charts and the record of how it was made.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The quick run takes about 90 s after the build on 2 cores; the build of
/// the release binaries may come first.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// The quick comparison writes REPORT.md with all seven sections, the SVG
/// charts, README.md with the machine and the commands, and one JSON per run.
#[test]
fn quick_comparison_writes_every_section() {
    let workspace = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let out = std::env::temp_dir().join(format!("compare-test-{}", std::process::id()));
    let mut child = Command::new("bash")
        .arg(workspace.join("scripts/compare.sh"))
        .args(["--quick", "--no-peers", "--workers", "2", "--out"])
        .arg(&out)
        .current_dir(workspace)
        // Its own process group, so that a run past the deadline can be
        // stopped with every cluster it started.
        .process_group(0)
        .spawn()
        .expect("start scripts/compare.sh");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > RUN_TIMEOUT {
            // The process group this test created: compare.sh and every
            // cluster it started.
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = std::fs::read_to_string(out.join("REPORT.md"));
    let readme = std::fs::read_to_string(out.join("README.md"));
    let runs = std::fs::read_dir(out.join("runs")).map_or(0, |runs| runs.count());
    let charts: Vec<bool> = [
        "latency.svg",
        "fds.svg",
        "fairness.svg",
        "master-fds-over-time.svg",
    ]
    .iter()
    .map(|chart| out.join(chart).is_file())
    .collect();
    let _ = std::fs::remove_dir_all(&out);

    let status = status.expect("compare.sh --quick ran past its deadline");
    assert!(status.success(), "compare.sh --quick failed: {status}");
    let report = report.expect("REPORT.md written");
    for section in [
        "## 1. Throughput and latency",
        "## 2. The fd bill",
        "## 3. The fd limit",
        "## 4. Fairness",
        "## 5. Master cost",
        "## 6. Faults",
        "## 7. Peers",
    ] {
        assert!(report.contains(section), "REPORT.md lacks {section:?}");
    }
    assert!(
        report.contains("held 2.0 fds per connection"),
        "the proxy's fd bill is not 2 per connection:\n{report}"
    );
    let readme = readme.expect("README.md written");
    for fact in ["git revision", "rustc", "CPU", "kernel", "ulimit -n"] {
        assert!(readme.contains(fact), "README.md lacks {fact}");
    }
    assert!(
        charts.iter().all(|&written| written),
        "charts written: {charts:?}"
    );
    assert!(runs > 40, "only {runs} runs recorded");
}
