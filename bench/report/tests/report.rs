//! The `report` binary: what it refuses.

use std::path::PathBuf;
use std::process::Command;

/// The binary under test.
const REPORT: &str = env!("CARGO_BIN_EXE_report");

/// A temporary results folder with a `runs/` subfolder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("report-test-{}", std::process::id()));
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
    let dir = TempDir::new();
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
