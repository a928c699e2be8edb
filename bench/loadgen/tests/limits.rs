//! Regression tests of issue 19: what loadgen refuses before any load (a
//! `--rate` its clock cannot space, `--connections` it could never hold, a
//! `--json` path it cannot write), each one line on stderr and exit 2 before
//! any connection, and what bounds a run's time whatever its rate; and of
//! issue 26's flags, refused alike (a bad `--slo`, a `--seed` nothing draws
//! from, a Poisson schedule too long to draw, an `--hgrm` path). Each runs
//! the real binary against a real socket on 127.0.0.1 port 0.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::server::{Behaviour, TestServer};
use common::{LOADGEN, file_names, loadgen, u64_at};

/// A run refused up front must end well within this, even on a loaded
/// machine; one that loads must not be refused before it.
const REFUSAL_LIMIT: Duration = Duration::from_secs(15);

/// A loadgen child, killed (by its pid, while it is still ours: not yet
/// reaped) and reaped on drop, so that a failing test leaves no process.
struct Loadgen(Child);

impl Drop for Loadgen {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How a loadgen run ended.
struct Ended {
    /// Its exit status; `None`: it still ran after the limit and was killed.
    status: Option<ExitStatus>,
    /// Its stderr.
    stderr: String,
    /// From its start to its exit (or to the limit).
    took: Duration,
}

/// Runs loadgen with `args` (`configure` may change the command first) until
/// it exits or `limit` has passed, then kills it.
fn run_until(args: &[&str], limit: Duration, configure: impl FnOnce(&mut Command)) -> Ended {
    let mut command = Command::new(LOADGEN);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    configure(&mut command);
    let started = Instant::now();
    let mut child = Loadgen(command.spawn().expect("start loadgen"));
    let mut stderr = child.0.stderr.take().expect("piped");
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut status = None;
    testkit::proc::wait_until(limit, || {
        status = child.0.try_wait().expect("wait for loadgen");
        status.is_some()
    });
    let took = started.elapsed();
    drop(child);
    Ended {
        status,
        stderr: reader.join().expect("stderr reader"),
        took,
    }
}

/// Asserts that `ended` is a refusal: exit 2 within [`REFUSAL_LIMIT`], one
/// line on stderr beginning `loadgen: error: ` and containing `says`.
fn assert_refused(ended: &Ended, what: &str, says: &str) {
    assert!(
        ended.status.is_some(),
        "{what}: still ran after {:?}; stderr: {}",
        ended.took,
        ended.stderr
    );
    assert_eq!(
        ended.status.and_then(|status| status.code()),
        Some(2),
        "{what}: {:?}, stderr: {}",
        ended.status,
        ended.stderr
    );
    let lines: Vec<&str> = ended
        .stderr
        .lines()
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {:?}", ended.stderr);
    assert!(
        lines[0].starts_with("loadgen: error: ") && lines[0].contains(says),
        "{what}: {}",
        lines[0]
    );
}

/// A loopback listener that accepts nothing by itself, and tells whether a
/// client connected to it (the kernel completes the handshake into its
/// queue).
struct Listener(TcpListener);

impl Listener {
    fn start() -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        Listener(listener)
    }

    fn url(&self) -> String {
        format!("http://{}/", self.0.local_addr().expect("address"))
    }

    /// Whether a connection waits in the queue.
    fn was_connected(&self) -> bool {
        self.0.accept().is_ok()
    }
}

/// Regression (issue 19, item 6): `--rate 1e9`, the highest rate, against a
/// real server: the run ends within its warm-up, duration and timeout plus a
/// generous slack, and its JSON accounts for every request due, answered or
/// not. It used to take 24 s (release build) after a 1 s run: at its hard stop
/// each connection counted the requests it never sent one by one.
#[test]
fn the_highest_rate_ends_on_time_and_counts_every_request_due() {
    let server = TestServer::start(Behaviour::Fast);
    let started = Instant::now();
    let run = loadgen(&[
        "--target",
        &server.url(),
        "--rate",
        "1e9",
        "--connections",
        "10",
        "--duration",
        "1s",
        "--warmup",
        "0",
        "--timeout",
        "1s",
    ]);
    let took = started.elapsed();
    assert!(run.status.success(), "{}\n{}", run.status, run.stderr);
    assert!(
        took < REFUSAL_LIMIT,
        "a 2 s run (1 s and its 1 s timeout) took {took:?}"
    );
    let report = run.report();
    let scheduled = u64_at(report, &["requests", "scheduled"]);
    assert!(
        (999_000_000..=1_001_000_000).contains(&scheduled),
        "{scheduled} requests due in 1 s at 1e9/s"
    );
    let ok = u64_at(report, &["requests", "ok"]);
    let failed = u64_at(report, &["requests", "failed"]);
    let unanswered = u64_at(report, &["requests", "unanswered_at_end"]);
    assert_eq!(
        ok + failed + unanswered,
        scheduled,
        "ok {ok} + failed {failed} + unanswered {unanswered}"
    );
    assert!(ok > 0, "no answer at all: {}", run.stdout);
}

/// Regression (issue 19, item 6): a rate above one request a nanosecond is
/// refused before any connection; `--rate 1e12` used to run for minutes at
/// 100 % CPU.
#[test]
fn a_rate_above_one_request_a_nanosecond_is_refused() {
    let listener = Listener::start();
    let url = listener.url();
    for rate in ["1e12", "1.5e9", "1e300"] {
        let ended = run_until(
            &["--target", &url, "--rate", rate, "--duration", "1s"],
            REFUSAL_LIMIT,
            |_| {},
        );
        assert_refused(&ended, rate, "--rate");
        assert!(ended.stderr.contains("1e9"), "{}", ended.stderr);
        assert!(!listener.was_connected(), "--rate {rate} connected first");
    }
}

/// Issue 26: a `--slo` that does not parse, a `--seed` that nothing draws
/// from, a `--arrivals poisson` schedule beyond what loadgen draws (a
/// billion a second for a minute), an `--hgrm` path in a folder that does
/// not exist, and (issue 25) a `--body-bytes` above the worker's 64 MiB or
/// not whole are each one line and exit 2, before any connection.
#[test]
fn bad_thresholds_seeds_schedules_and_hgrm_paths_are_refused_before_any_connection() {
    let listener = Listener::start();
    let url = listener.url();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let missing = dir.path().join("missing").join("run.hgrm");
    let missing = missing.to_str().expect("a UTF-8 temp path");
    for (args, says) in [
        (&["--slo", "p99<10"][..], "--slo"),
        (&["--slo", "latency<1ms"], "not a metric"),
        (&["--slo", "answered>=95"], "not a share"),
        (&["--seed", "3"], "--seed"),
        (&["--rate", "100", "--seed", "3"], "--seed"),
        (
            &["--rate", "1e9", "--arrivals", "poisson", "--duration", "1m"],
            "--arrivals poisson",
        ),
        (&["--arrivals", "poisson"], "--rate"),
        (&["--hgrm", missing], "--hgrm"),
        // Issue 25: a body beyond the worker's bound of 64 MiB.
        (&["--body-bytes", "67108865"], "64 MiB"),
        (&["--body-bytes", "1e12"], "--body-bytes"),
        (&["--body-bytes", "1.5"], "--body-bytes"),
    ] {
        let args: Vec<&str> = ["--target", url.as_str()]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let ended = run_until(&args, REFUSAL_LIMIT, |_| {});
        assert_refused(&ended, &format!("{args:?}"), says);
        assert!(!listener.was_connected(), "{args:?} connected first");
    }
}

/// Sets, in the child before exec, RLIMIT_NOFILE to `fds` (soft and hard),
/// RLIMIT_AS to 4 GB (so a run that allocates without bound aborts early
/// rather than taking the machine's memory) and RLIMIT_CORE to 0.
fn limited(command: &mut Command, fds: u64) {
    // SAFETY: runs in the forked child before exec; setrlimit(2) is
    // async-signal-safe and reads only local values.
    unsafe {
        command.pre_exec(move || {
            for (resource, limit) in [
                (libc::RLIMIT_NOFILE, fds),
                (libc::RLIMIT_AS, 4_000_000 * 1024),
                (libc::RLIMIT_CORE, 0),
            ] {
                let limit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Regression (issue 19, item 7): `--connections` whose fds alone exceed the
/// fd limit (here 1,000, which loadgen cannot raise) are refused before any
/// connection or allocation, with a line that names the limit and why.
/// `--connections 1000000000` used to build its connections until it ran out
/// of memory (under `ulimit -v 4000000`, as here, it aborted).
#[test]
fn connections_beyond_the_fd_limit_are_refused_before_any_connection() {
    let listener = Listener::start();
    let url = listener.url();
    for (connections, open_loop, fds) in [
        ("1000000000", false, "1000000000 fds"),
        ("1001", false, "1001 fds (1 each)"),
        ("501", true, "1002 fds (2 each in open loop"),
    ] {
        let mut args = vec!["--target", url.as_str(), "--connections", connections];
        if open_loop {
            args.extend(["--rate", "100"]);
        }
        let ended = run_until(&args, REFUSAL_LIMIT, |command| limited(command, 1000));
        assert_refused(&ended, connections, fds);
        assert!(
            ended.stderr.contains("fd limit of 1000")
                && ended.stderr.contains("RLIMIT_NOFILE")
                && ended.stderr.contains("at most"),
            "{}",
            ended.stderr
        );
        assert!(
            !listener.was_connected(),
            "--connections {connections} connected first"
        );
    }
}

/// Regression (issue 19, item 12): a `--json` path in a folder that does not
/// exist is refused before the load (the server sees no request), where it
/// used to be found only when the report was written, the whole run lost. A
/// run that fails after the check leaves an existing report as it was, and
/// one that succeeds replaces it whole, leaving nothing else in its folder.
#[test]
fn a_json_path_that_cannot_be_written_is_refused_before_the_load() {
    let server = TestServer::start(Behaviour::Fast);
    let url = server.url();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let missing = dir.path().join("missing").join("x.json");
    let missing = missing.to_str().expect("a UTF-8 temp path");
    let base = [
        "--target",
        url.as_str(),
        "--duration",
        "3s",
        "--warmup",
        "0",
    ];
    let args: Vec<&str> = base.iter().copied().chain(["--json", missing]).collect();
    let ended = run_until(&args, REFUSAL_LIMIT, |_| {});
    assert_refused(&ended, "a missing folder", "--json");
    assert!(ended.stderr.contains("no folder"), "{}", ended.stderr);
    assert!(
        ended.took < Duration::from_secs(3),
        "it loaded first: {:?}",
        ended.took
    );
    assert!(server.arrivals().is_empty(), "the server was loaded first");

    let existing = dir.path().join("x.json");
    std::fs::write(&existing, "an earlier report").expect("write");
    let existing_arg = existing.to_str().expect("a UTF-8 temp path");
    // A target that refuses connections: the run fails after the check.
    let closed = {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        socket
    };
    let closed_url = format!(
        "http://{}/",
        closed
            .local_addr()
            .expect("address")
            .as_socket()
            .expect("inet")
    );
    let ended = run_until(
        &["--target", &closed_url, "--json", existing_arg],
        REFUSAL_LIMIT,
        |_| {},
    );
    assert_refused(&ended, "an unreachable target", "cannot reach");
    assert_eq!(
        std::fs::read_to_string(&existing).expect("read"),
        "an earlier report"
    );
    let listed = || file_names(dir.path());
    assert_eq!(listed(), ["x.json"]);

    let short = [
        "--target",
        url.as_str(),
        "--duration",
        "200ms",
        "--warmup",
        "0",
        "--connections",
        "2",
        "--json",
        existing_arg,
    ];
    let ended = run_until(&short, REFUSAL_LIMIT, |_| {});
    assert_eq!(
        ended.status.and_then(|status| status.code()),
        Some(0),
        "{}",
        ended.stderr
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&existing).expect("read"))
            .expect("the new report is JSON");
    runs::schema::validate(&runs::schema::schema(), &report)
        .expect("the new report fits the schema");
    assert_eq!(listed(), ["x.json"]);
}
