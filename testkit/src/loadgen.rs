//! `loadgen` run from a test, for the figures a behaviour is judged by
//! (a stalled worker's waits, say): built in the test's profile
//! ([`workspace_bin`]), its JSON written in a private folder and read back.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use crate::{wait_or_kill, workspace_bin};

/// Runs `loadgen` with `args` and `--json FILE` (FILE in a temporary folder
/// of its own, removed after), waits for it at most `timeout`, and returns
/// the JSON it wrote. Its stdout (the human summary) and stderr go to the
/// test's stderr, so that a failing test shows them.
///
/// # Errors
/// If loadgen cannot be built or started, exits non-zero, writes no JSON,
/// or runs longer than `timeout` (it is then SIGKILLed: a loadgen given
/// `--stop PID` continues PID on every way out but this one, so give it a
/// `timeout` well beyond its warm-up, duration and `--timeout`).
pub fn run_loadgen(args: &[&str], timeout: Duration) -> anyhow::Result<Value> {
    let bin = workspace_bin("loadgen")?;
    let dir = tempfile::tempdir().context("a folder for loadgen's JSON")?;
    let json = dir.path().join("run.json");
    let mut child = Command::new(&bin)
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let Some(status) = wait_or_kill(&mut child, timeout) else {
        bail!("loadgen {args:?} ran longer than {timeout:?}");
    };
    ensure!(status.success(), "loadgen {args:?}: {status}");
    let text = std::fs::read_to_string(&json)
        .with_context(|| format!("read loadgen's JSON {}", json.display()))?;
    serde_json::from_str(&text).context("loadgen's JSON")
}
