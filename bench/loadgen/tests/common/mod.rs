//! Helpers of the loadgen end-to-end tests: run the real `loadgen` binary with a
//! deadline and read its JSON report (checked against `bench/runs/schema.json` every
//! time), find the real `proxy`, `handoff` and `report` binaries, and a small test server
//! ([`server`]).

#![allow(dead_code)] // each test binary uses a part

pub mod server;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The binary under test, built by cargo for this test.
pub const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

/// How long one loadgen run may take in a test: the runs are 1 to 3 s, plus the
/// drain and a loaded machine's slowness.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// How often to look whether the child has exited.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A finished loadgen run.
pub struct Run {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout (the summary).
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// The `--json` report, if it wrote one (already checked against the schema).
    pub report: Option<Value>,
}

impl Run {
    /// The report, or a panic that shows what loadgen said.
    pub fn report(&self) -> &Value {
        self.report.as_ref().unwrap_or_else(|| {
            panic!(
                "no JSON report ({}); stdout:\n{}\nstderr:\n{}",
                self.status, self.stdout, self.stderr
            )
        })
    }
}

/// A file path in the temp directory, unique to this process and call, removed on drop.
pub struct TempPath(pub PathBuf);

impl TempPath {
    /// A new unique path ending in `suffix`; the file is not created.
    pub fn new(suffix: &str) -> TempPath {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let name = format!(
            "loadgen-test-{}-{}-{nanos}{suffix}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        TempPath(std::env::temp_dir().join(name))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `loadgen ARGS --json TEMPFILE` to its end (killing it after
/// [`RUN_TIMEOUT`]) and reads the report, which must match the schema.
pub fn loadgen(args: &[&str]) -> Run {
    loadgen_with(args, |_| {})
}

/// [`loadgen`] under an `RLIMIT_NOFILE` of `fds` (soft and hard), which it
/// cannot raise.
pub fn loadgen_with_fd_limit(args: &[&str], fds: u64) -> Run {
    use std::os::unix::process::CommandExt;
    loadgen_with(args, |command| {
        let limit = libc::rlimit {
            rlim_cur: fds,
            rlim_max: fds,
        };
        // SAFETY: runs in the forked child before exec; setrlimit(2) is
        // async-signal-safe and only reads `limit`, a copy owned by the closure.
        unsafe {
            command.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            });
        }
    })
}

/// [`loadgen`] with the command changed by `configure` before it starts.
pub fn loadgen_with(args: &[&str], configure: impl FnOnce(&mut Command)) -> Run {
    let json = TempPath::new(".json");
    let mut command = Command::new(LOADGEN);
    configure(&mut command);
    let mut child = command
        .args(args)
        .arg("--json")
        .arg(&json.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for loadgen") {
            break status;
        }
        if Instant::now() >= deadline {
            // Our own child, not yet reaped: the pid is still its own.
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen {args:?} still ran after {RUN_TIMEOUT:?}");
        }
        thread::sleep(POLL_INTERVAL);
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    let report = std::fs::read_to_string(&json.0).ok().map(|text| {
        let report: Value = serde_json::from_str(&text).expect("the report is JSON");
        if let Err(err) = runs::schema::validate(&runs::schema::schema(), &report) {
            panic!("the report does not match bench/runs/schema.json: {err}\n{text}");
        }
        report
    });
    Run {
        status,
        stdout,
        stderr,
        report,
    }
}

/// The `proxy` binary of this workspace, next to `loadgen` in the same target
/// directory and profile. It is not a `CARGO_BIN_EXE_` of this package, so it is
/// built once per test binary by [`testkit::workspace_bin`] (a no-op when it is
/// up to date, and never stale).
pub fn proxy_bin() -> &'static str {
    static PROXY: OnceLock<String> = OnceLock::new();
    built("proxy", &PROXY)
}

/// The `handoff` binary, found as [`proxy_bin`] finds `proxy`.
pub fn handoff_bin() -> &'static str {
    static HANDOFF: OnceLock<String> = OnceLock::new();
    built("handoff", &HANDOFF)
}

/// The `report` binary, the renderer, found as [`proxy_bin`] finds `proxy`:
/// loadgen does not link it.
pub fn report_bin() -> &'static str {
    static REPORT: OnceLock<String> = OnceLock::new();
    built("report", &REPORT)
}

/// The path of `package`'s binary, built the first time it is asked for.
fn built(package: &str, path: &'static OnceLock<String>) -> &'static str {
    path.get_or_init(|| {
        let bin = testkit::workspace_bin(package).unwrap_or_else(|err| panic!("{err:#}"));
        bin.to_string_lossy().into_owned()
    })
}

/// The names of the files in `dir`, sorted: what a run left there.
pub fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list the folder")
        .map(|entry| {
            entry
                .expect("an entry of the folder")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// `report[a][b]...` as a u64, or a panic naming the path.
pub fn u64_at(report: &Value, path: &[&str]) -> u64 {
    at(report, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count in {report}"))
}

/// `report[a][b]...` as an f64, or a panic naming the path.
pub fn f64_at(report: &Value, path: &[&str]) -> f64 {
    at(report, path)
        .as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {report}"))
}

fn at<'a>(report: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(report, |value, key| &value[*key])
}
