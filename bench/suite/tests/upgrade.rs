//! `suite upgrade`, the driver of REPORT.md's section 8, run on the debug
//! binaries: what it records is what the report reads.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One upgrade under load takes a few seconds; debug binaries on a busy
/// machine take longer.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The folder of this test's harness, with `loadgen` and `proxy` built next
/// to it.
fn bin_dir() -> &'static Path {
    let suite = Path::new(env!("CARGO_BIN_EXE_suite"));
    for package in ["loadgen", "proxy"] {
        let built = testkit::workspace_bin(package).unwrap_or_else(|err| panic!("{err:#}"));
        assert_eq!(built.parent(), suite.parent(), "{}", built.display());
    }
    suite.parent().expect("a binary has a folder")
}

/// A `restart` with `--init-delay 200ms` under an open loop of new
/// connections refuses clients between the old master's exit and the new
/// one's bind, and the script records them (`connect_refused`) beside the
/// upgrade it made (issue 12's last bullet; the figure is the report's).
#[test]
fn restart_under_load_records_refused_connections() {
    let out = tempfile::tempdir().expect("a temporary folder");
    let workspace = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut child = Command::new(env!("CARGO_BIN_EXE_suite"))
        .arg("upgrade")
        .arg("--bin-dir")
        .arg(bin_dir())
        .args([
            "--init-delay",
            "200ms",
            "--strategy",
            "restart",
            "--rate",
            "500",
        ])
        .args(["--upgrades", "1", "--lead", "300ms", "--every", "700ms"])
        .arg("--out")
        .arg(out.path())
        .arg("proxy")
        .current_dir(workspace)
        .stdout(Stdio::null())
        // Its own process group, so that a run past the deadline is stopped
        // with every master it started.
        .process_group(0)
        .spawn()
        .expect("start suite upgrade");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for suite upgrade") {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
            panic!("suite upgrade ran past {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "suite upgrade failed: {status}");
    let path = out.path().join("upgrade-proxy-restart.json");
    let text = std::fs::read_to_string(&path).expect("the run's JSON");
    // It still matches the schema and reads as a loadgen report, with its
    // upgrades and timeline.
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    runs::schema::validate(&runs::schema::schema(), &value).expect("the committed schema");
    let report: runs::Report = serde_json::from_str(&text).expect("a loadgen report");
    let upgrades = report.upgrades.as_ref().expect("the upgrades block");
    assert_eq!(upgrades.events.len(), 1, "{upgrades:?}");
    let event = &upgrades.events[0];
    assert_ne!(event.old_master, event.new_master);
    assert_eq!(event.old_exit_code, Some(0), "{event:?}");
    // A restart is no takeover: neither master names the other.
    assert_eq!(
        (event.old_handover_to, event.new_takeover_from),
        (None, None),
        "{event:?}"
    );
    assert!(report.timeline.is_some(), "no timeline");
    let refused = report.errors.by_kind.get("connect_refused").copied();
    assert!(
        refused.is_some_and(|n| n > 0),
        "no refused connection recorded: {:?}",
        report.errors.by_kind
    );
}
