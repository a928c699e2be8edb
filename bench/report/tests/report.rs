//! The `report` binary: what it refuses, and that the newest reference
//! folder under `results/` still renders.

use std::path::PathBuf;
use std::process::Command;

/// The binary under test.
const REPORT: &str = env!("CARGO_BIN_EXE_report");

/// A temporary results folder with a `runs/` subfolder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    /// `report-test-PID-NAME` in the temporary folder: one per test, as the
    /// tests of one process run side by side.
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("report-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(dir.join("runs")).expect("create the folder");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An empty or missing folder is an error, not an empty report.
#[test]
fn refuses_a_folder_without_runs() {
    let dir = TempDir::new("empty");
    let rendered = Command::new(REPORT).arg(&dir.0).output().expect("run");
    assert_eq!(rendered.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&rendered.stderr).contains("no runs"));
    assert!(!dir.0.join("REPORT.md").exists());
}

/// No folder, or a flag it does not know: one line and exit 2.
#[test]
fn bad_usage_is_one_line_and_exit_2() {
    for args in [&[][..], &["--frobnicate", "x"]] {
        let out = Command::new(REPORT).args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("report: "), "{stderr}");
    }
}

/// The newest reference folder (`results/*/runs`, the latest name: they
/// are named by date) still renders, into a copy: every section's heading,
/// every chart it links written, and the cost at equal load either measured
/// or said not to be (reports written before the cost section); a
/// `peers.json` and an `answers.json` beside the runs are read.
#[test]
fn the_newest_reference_folder_renders() {
    let results = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../results");
    let mut folders: Vec<PathBuf> = std::fs::read_dir(&results)
        .expect("results/ is committed")
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.join("runs").is_dir())
        .collect();
    folders.sort();
    let newest = folders.last().expect("a reference folder");
    let dir = TempDir::new("reference");
    for run in std::fs::read_dir(newest.join("runs")).expect("runs/ reads") {
        let path = run.expect("an entry of runs/").path();
        let name = path.file_name().expect("a file name");
        std::fs::copy(&path, dir.0.join("runs").join(name)).expect("copy a run");
    }
    // What the harness keeps beside the runs, read from the folder.
    std::fs::write(
        dir.0.join("peers.json"),
        r#"{"peers": [{"name": "nginx", "version": "1.24.0", "processes": 1, "workers": 2,
            "settings": ["master_process off"], "config": "peers/nginx.conf"}]}"#,
    )
    .expect("write peers.json");
    std::fs::write(
        dir.0.join("answers.json"),
        r#"{"answers": [{"name": "direct", "status_line": "HTTP/1.1 200 OK",
            "headers": {"content_type": "text/plain", "content_length": 29,
              "connection": null, "x_worker_pid": 999}, "body_len": 29}]}"#,
    )
    .expect("write answers.json");
    let rendered = Command::new(REPORT).arg(&dir.0).output().expect("run");
    assert!(
        rendered.status.success(),
        "{}: {}",
        newest.display(),
        String::from_utf8_lossy(&rendered.stderr)
    );
    let text = std::fs::read_to_string(dir.0.join("REPORT.md")).expect("REPORT.md written");
    for heading in [
        "## At a glance",
        "## 0. Cost at equal load",
        "## 1. Throughput and latency",
        "## 1b. Latency against offered load",
        "## 2. The bill at scale",
        "## 3. The fd limit",
        "## 4. Fairness",
        "## 5. Master cost",
        "## 6. Faults",
        "## 7. Peers",
        "## 8. Upgrades",
        "## Limitations",
    ] {
        assert!(
            text.contains(heading),
            "{}: no {heading:?}",
            newest.display()
        );
    }
    let has_cost_runs = std::fs::read_dir(newest.join("runs"))
        .expect("runs/ reads")
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .any(|run| run.contains("\"section\": \"cost\""));
    assert_eq!(
        text.contains("Cost at equal load was not measured"),
        !has_cost_runs,
        "{}",
        newest.display()
    );
    assert!(
        text.contains("`master_process off`")
            && text.contains("`peers/nginx.conf` (not in the folder)"),
        "peers.json not read"
    );
    assert!(
        text.contains("| `direct` | `HTTP/1.1 200 OK` |"),
        "answers.json not read"
    );
    for (at, _) in text.match_indices("](") {
        let target = &text[at + 2..at + 2 + text[at + 2..].find(')').expect("closed")];
        if target.ends_with(".svg") {
            assert!(dir.0.join(target).is_file(), "{target} linked, not written");
        }
    }
}
