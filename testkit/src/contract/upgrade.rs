//! Takeover (issue 12): a new master takes the listening sockets over the
//! old one's `--upgrade-socket`, and not one client notices; a takeover that
//! fails, or a peer that has no business there, changes nothing.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::Value;

use crate::process::Starting;

use super::supervision::assert_served_by;
use super::*;

/// How long a takeover may take, from the new master's start to the old
/// master's exit: the new workers start (a loaded machine is slow), then the
/// old workers finish, within the grace period.
pub const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(20);

/// A private folder for the upgrade sockets of one test, removed at its end.
pub struct UpgradeDir {
    dir: tempfile::TempDir,
}

impl UpgradeDir {
    /// A new folder under the system's temporary folder.
    ///
    /// # Panics
    /// If it cannot be made.
    pub fn new() -> UpgradeDir {
        UpgradeDir {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    /// The path of the upgrade socket `name` in it.
    pub fn socket(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The names of what the folder holds, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("read the temporary folder")
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Waits up to `within` until the folder holds `names` and nothing
    /// else (a new master's `.NAME.takeover-PID` gone), `after` what (for
    /// the message).
    ///
    /// # Panics
    /// If it still holds something else after `within`.
    pub fn assert_holds_only(&self, names: &[&str], within: Duration, after: &str) {
        let mut holds = Vec::new();
        let only = wait_until(within, || {
            holds = self.names();
            holds == names
        });
        assert!(
            only,
            "after {after}, the folder of the upgrade socket holds {holds:?}, not only {names:?}"
        );
    }
}

impl Default for UpgradeDir {
    fn default() -> Self {
        UpgradeDir::new()
    }
}

pub(super) fn text(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Starts `bin` with `args`, `--workers 2` and `--upgrade-socket path`, and
/// checks its ready line (`mode`).
pub fn start_upgradable(bin: &str, args: &[&str], path: &Path, mode: &str) -> Cluster {
    let mut all_args = args.to_vec();
    all_args.extend(["--upgrade-socket", text(path)]);
    start_two_workers(bin, &all_args, mode)
}

/// Starts a successor of `old`: `bin` with `args`, `--workers 2`,
/// `--takeover path` and `--upgrade-socket path`; checks that its ready line
/// names `old` in `takeover_from` and serves `old`'s address.
pub fn take_over(bin: &str, args: &[&str], path: &Path, old: &Cluster, mode: &str) -> Cluster {
    let mut all_args = args.to_vec();
    all_args.extend(["--takeover", text(path), "--upgrade-socket", text(path)]);
    let new = start_two_workers(bin, &all_args, mode);
    assert_eq!(
        new.ready().takeover_from,
        Some(old.master_pid()),
        "takeover_from of {:?}",
        new.ready()
    );
    assert_eq!(
        new.addr(),
        old.addr(),
        "the new master serves another address"
    );
    new
}

/// The old master of a takeover by `to_pid`: its `handover` line names it,
/// it exits 0 within [`TAKEOVER_TIMEOUT`], and no worker of it is left.
pub fn assert_handed_over(old: &mut Cluster, to_pid: u32) {
    let event = next_event_named(old, "handover", TAKEOVER_TIMEOUT)
        .unwrap_or_else(|| panic!("no handover line; stderr:\n{}", old.stderr()));
    assert_eq!(event["to_pid"], to_pid, "{event}");
    let status = old.wait_exit(TAKEOVER_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "the old master still runs {TAKEOVER_TIMEOUT:?} after its handover; stderr:\n{}",
            old.stderr()
        )
    });
    assert_eq!(status.code(), Some(0), "old master: {status}");
    assert!(
        wait_until(Duration::from_secs(1), || old.live_workers().is_empty()),
        "workers {:?} of the old master are still running",
        old.live_workers()
    );
}

/// The next stdout line whose `event` is `name`, skipping others, within
/// `timeout`.
pub(super) fn next_event_named(
    cluster: &mut Cluster,
    name: &str,
    timeout: Duration,
) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let event = cluster.next_event(deadline.saturating_duration_since(Instant::now()))?;
        if event["event"] == name {
            return Some(event);
        }
    }
}

/// Clients running until stopped: some with a new connection per request,
/// some keep-alive. A keep-alive client reconnects after a `Connection:
/// close` answer, and a request on a reused connection that fails is sent
/// once more on a new one (a keep-alive connection the server closes while
/// idle; loadgen's rule, counted apart as a reconnect); anything else that
/// is not a 200 is a failure.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// When each answered request was sent, and the `x-worker-pid` of its
    /// answer.
    answers: Arc<Mutex<Vec<(Instant, u32)>>>,
    failures: Arc<Mutex<Vec<String>>>,
    reconnects: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

/// Bound on each client's requests, so that a client ends whatever happens.
const MAX_REQUESTS_PER_CLIENT: usize = 100_000;

impl Load {
    /// Starts `new_conn` clients of a connection per request and
    /// `keep_alive` keep-alive clients on `addr`.
    pub fn start(addr: SocketAddr, new_conn: usize, keep_alive: usize) -> Load {
        let load = Load {
            stop: Arc::new(AtomicBool::new(false)),
            answers: Arc::new(Mutex::new(Vec::new())),
            failures: Arc::new(Mutex::new(Vec::new())),
            reconnects: Arc::new(AtomicUsize::new(0)),
            threads: Vec::new(),
        };
        let mut threads = Vec::new();
        for client in 0..new_conn + keep_alive {
            let (stop, answers, failures, reconnects) = (
                load.stop.clone(),
                load.answers.clone(),
                load.failures.clone(),
                load.reconnects.clone(),
            );
            let keeps_alive = client >= new_conn;
            threads.push(thread::spawn(move || {
                let record = |sent: Instant, response: anyhow::Result<Response>| match response {
                    Ok(response) if response.status == 200 => {
                        lock(&answers).extend(response.worker_pid().map(|pid| (sent, pid)));
                        Some(response)
                    }
                    Ok(response) => {
                        lock(&failures).push(format!("status {}", response.status));
                        None
                    }
                    Err(err) => {
                        lock(&failures).push(format!("{err:#}"));
                        None
                    }
                };
                let mut conn: Option<KeepAlive> = None;
                for _ in 0..MAX_REQUESTS_PER_CLIENT {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let sent = Instant::now();
                    if !keeps_alive {
                        record(sent, get(addr, "/", true));
                        continue;
                    }
                    let reused = conn.is_some();
                    let mut current = match conn.take() {
                        Some(current) => current,
                        None => match KeepAlive::connect(addr) {
                            Ok(current) => current,
                            Err(err) => {
                                lock(&failures).push(format!("{err:#}"));
                                continue;
                            }
                        },
                    };
                    match current.get("/") {
                        Err(_) if reused => {
                            reconnects.fetch_add(1, Ordering::SeqCst);
                        }
                        answer => {
                            let closes = record(sent, answer).is_some_and(|response| {
                                response
                                    .header("connection")
                                    .is_some_and(|value| value.eq_ignore_ascii_case("close"))
                            });
                            // A failed connection is not reused either.
                            if !closes && lock(&failures).is_empty() {
                                conn = Some(current);
                            }
                        }
                    }
                }
            }));
        }
        Load { threads, ..load }
    }

    /// Answers so far.
    pub fn answered(&self) -> usize {
        lock(&self.answers).len()
    }

    /// The pids that answered the requests sent at `since` or later.
    pub fn answers_sent_since(&self, since: Instant) -> Vec<u32> {
        lock(&self.answers)
            .iter()
            .filter(|(sent, _)| *sent >= since)
            .map(|(_, pid)| *pid)
            .collect()
    }

    /// Waits until 20 more requests have been answered: the port is
    /// served, `after` what (for the message).
    pub(super) fn assert_serves_on(&self, after: &str) {
        let before = self.answered();
        assert!(
            wait_until(HTTP_TIMEOUT, || self.answered() >= before + 20),
            "nothing served after {after}"
        );
    }

    /// Stops the clients; none may have failed `around` what (for the
    /// message).
    pub(super) fn assert_none_failed(self, around: &str) {
        let (failures, answered, reconnects) = self.stop();
        assert!(
            failures.is_empty(),
            "{} of {answered} requests failed around {around} ({reconnects} reconnects): {failures:?}",
            failures.len()
        );
    }

    /// Stops the clients and returns the failures, the answers and the
    /// reconnects.
    pub fn stop(self) -> (Vec<String>, usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            thread.join().expect("a client thread does not panic");
        }
        let failures = lock(&self.failures).clone();
        let answered = lock(&self.answers).len();
        (failures, answered, self.reconnects.load(Ordering::SeqCst))
    }
}

/// Issue 12: under load (4 clients with a new connection per request, 2
/// keep-alive clients), three takeovers in a row: no request fails, every
/// request sent while two generations live is answered by one of them (a
/// request is dated when sent: one sent earlier may be answered by the
/// generation before), each old master prints `handover`, exits 0 and
/// leaves no worker.
pub fn assert_takeovers_under_load(bin: &str, args: &[&str], mode: &str) {
    let dir = UpgradeDir::new();
    let path = dir.socket("upgrade.sock");
    let mut current = start_upgradable(bin, args, &path, mode);
    let load = Load::start(current.addr(), 4, 2);
    assert!(
        wait_until(HTTP_TIMEOUT, || load.answered() >= 50),
        "the load never got going"
    );
    // Requests sent since then can reach only the old and new generation.
    let mut since = Instant::now();
    for round in 1..=3 {
        let mut old = current;
        let new = take_over(bin, args, &path, &old, mode);
        assert_handed_over(&mut old, new.master_pid());
        let new_workers = new.worker_pids();
        assert!(
            wait_until(HTTP_TIMEOUT, || load
                .answers_sent_since(since)
                .iter()
                .any(|pid| new_workers.contains(pid))),
            "takeover {round}: the new workers {new_workers:?} answer nothing"
        );
        let answers = load.answers_sent_since(since);
        let allowed: Vec<u32> = old.worker_pids().into_iter().chain(new_workers).collect();
        let strays: BTreeSet<u32> = answers
            .into_iter()
            .filter(|pid| !allowed.contains(pid))
            .collect();
        assert!(
            strays.is_empty(),
            "takeover {round}: answers from {strays:?}, not of generations {allowed:?}"
        );
        since = Instant::now();
        current = new;
    }
    let (failures, answered, reconnects) = load.stop();
    assert!(
        failures.is_empty(),
        "{} of {answered} requests failed across 3 takeovers ({reconnects} reconnects): {failures:?}",
        failures.len()
    );
    eprintln!("3 takeovers under load: {answered} answers, {reconnects} reconnects, none failed");
}

/// Issue 12: a request in flight on an old worker (`?work_us=500000`) at the
/// takeover is answered 200 by that worker.
pub fn assert_takeover_answers_in_flight(bin: &str, args: &[&str], mode: &str) {
    let dir = UpgradeDir::new();
    let path = dir.socket("upgrade.sock");
    let mut old = start_upgradable(bin, args, &path, mode);
    let workers = old.worker_pids();
    let before = cpu_times(&workers);
    let addr = old.addr();
    let slow = thread::spawn(move || get(addr, "/?work_us=500000", true));
    assert!(
        wait_for_busy_worker(&workers, &before),
        "no worker started computing the slow request"
    );
    let new = take_over(bin, args, &path, &old, mode);
    assert_handed_over(&mut old, new.master_pid());
    let response = slow
        .join()
        .expect("the client thread does not panic")
        .unwrap_or_else(|err| panic!("the request in flight at the takeover was lost: {err:#}"));
    assert_worker_answer(&response, &workers);
}

/// Issue 12: a new master SIGKILLed after it took the sockets and before its
/// `ready` (its workers wait `--init-delay 60s`): the old master prints
/// `handover_failed` naming it and serves on, on the same port, with no
/// failed request (two clients run throughout); a takeover after that works.
/// The folder then holds the upgrade socket alone: the dead master's
/// `.upgrade.sock.takeover-PID` is removed by the old master (issue 19: it
/// was left behind).
/// While the doomed one holds the takeover, a second new master is refused
/// (one line, exit 2).
pub fn assert_failed_takeover_changes_nothing(bin: &str, args: &[&str], mode: &str) {
    let dir = UpgradeDir::new();
    let path = dir.socket("upgrade.sock");
    let mut old = start_upgradable(bin, args, &path, mode);
    let load = Load::start(old.addr(), 2, 0);
    assert!(
        wait_until(HTTP_TIMEOUT, || load.answered() >= 20),
        "the load never got going"
    );
    let mut all_args = args.to_vec();
    all_args.extend(["--workers", "2", "--init-delay", "60s"]);
    all_args.extend(["--takeover", text(&path), "--upgrade-socket", text(&path)]);
    let mut doomed = Starting::spawn(bin, &all_args).expect("start the new master");
    assert!(
        wait_until(TAKEOVER_TIMEOUT, || doomed
            .stderr()
            .contains("took the listening sockets over")),
        "the new master did not take the sockets; stderr:\n{}",
        doomed.stderr()
    );
    // One takeover at a time: a second new master meanwhile is refused.
    let mut second = args.to_vec();
    second.extend(["--workers", "2", "--takeover", text(&path)]);
    assert_one_line_exit_2(bin, &second, "under way");
    let doomed_pid = doomed.pid();
    doomed.kill().expect("SIGKILL the new master");
    let event = next_event_named(&mut old, "handover_failed", TAKEOVER_TIMEOUT)
        .unwrap_or_else(|| panic!("no handover_failed line; stderr:\n{}", old.stderr()));
    assert_eq!(event["pid"], doomed_pid, "{event}");
    // The socket it bound beside the path (`.upgrade.sock.takeover-PID`) it
    // could not remove: the old master does, once it sees it dead.
    dir.assert_holds_only(&["upgrade.sock"], STOP_TIMEOUT, "a SIGKILLed new master");
    load.assert_serves_on("the failed takeover");
    load.assert_none_failed("the failed takeover");
    assert_served_by(&old, &old.worker_pids());
    let new = take_over(bin, args, &path, &old, mode);
    assert_handed_over(&mut old, new.master_pid());
}

/// The uid of `nobody`, for the peer of another user.
const NOBODY: u32 = 65534;

/// Runs `bin` with `args` as user `nobody`; returns its exit status and
/// stderr. Killed (by pid: our child) if it runs over [`EXIT_TIMEOUT`].
fn run_as_nobody(bin: &str, args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(bin)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a child as nobody");
    let mut status = None;
    wait_until(EXIT_TIMEOUT, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{bin} {args:?} as nobody still runs after {EXIT_TIMEOUT:?}");
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status, stderr)
}

/// Issue 12: the upgrade socket is 0600; as root, a child that drops to
/// `nobody` cannot connect, and, once the test has opened the socket to
/// everyone, is refused by the master's uid check (logged), exits 2, and the
/// master serves on. Skipped, with a line saying why, when not root.
pub fn assert_upgrade_socket_is_private(bin: &str, args: &[&str], mode: &str) {
    let dir = UpgradeDir::new();
    let path = dir.socket("upgrade.sock");
    let old = start_upgradable(bin, args, &path, mode);
    let meta = std::fs::metadata(&path).expect("the upgrade socket exists");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "upgrade socket mode"
    );
    // SAFETY: geteuid has no precondition and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped the peer of another uid: not root, cannot drop to nobody");
        return;
    }
    let takeover = ["--workers", "2", "--takeover", text(&path)];
    let (status, stderr) = run_as_nobody(bin, &takeover);
    assert_eq!(status.code(), Some(2), "nobody, 0600: {status}; {stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line:\n{stderr}");
    let open = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .expect("chmod in the test's folder");
    };
    open(&path, 0o666);
    open(path.parent().expect("a socket in a folder"), 0o755);
    let (status, stderr) = run_as_nobody(bin, &takeover);
    assert_eq!(status.code(), Some(2), "nobody, 0666: {status}; {stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line:\n{stderr}");
    assert!(
        wait_until(HTTP_TIMEOUT, || old
            .stderr()
            .contains("refused a peer of another uid")),
        "the master did not log the refusal; stderr:\n{}",
        old.stderr()
    );
    assert_served_by(&old, &old.worker_pids());
}

/// Runs `bin` with `args`: it must exit 2 within [`EXIT_TIMEOUT`] with one
/// stderr line containing `says`.
pub(super) fn assert_one_line_exit_2(bin: &str, args: &[&str], says: &str) {
    let (status, stderr) = run_expect_exit(bin, args, EXIT_TIMEOUT)
        .unwrap_or_else(|err| panic!("{bin} {args:?}: {err:#}"));
    assert_eq!(
        status.code(),
        Some(2),
        "{args:?}: {status}; stderr:\n{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line:\n{stderr}"
    );
    assert!(stderr.contains(says), "{args:?}: no {says:?} in:\n{stderr}");
}

/// Issue 12: a new master of another mode (`other_bin` with `other_args`)
/// exits 2 with one line, and the old master serves on with the same
/// workers, its upgrade socket still there.
pub fn assert_mode_mismatch_exits_2(
    bin: &str,
    args: &[&str],
    mode: &str,
    other_bin: &str,
    other_args: &[&str],
) {
    let dir = UpgradeDir::new();
    let path = dir.socket("upgrade.sock");
    let mut old = start_upgradable(bin, args, &path, mode);
    let mut all_args = other_args.to_vec();
    all_args.extend(["--takeover", text(&path)]);
    assert_one_line_exit_2(other_bin, &all_args, "takeover refused");
    assert!(
        old.wait_exit(Duration::ZERO).is_none(),
        "the old master exited"
    );
    assert_eq!(old.live_workers().len(), 2, "the old workers changed");
    assert!(path.exists(), "the upgrade socket is gone");
    assert_served_by(&old, &old.worker_pids());
}

/// Issue 12: bad input, each one line and exit 2, with a master running
/// undisturbed: `--takeover` of a path where nothing is, of a stale socket,
/// of a file that is not a socket, of a stream socket, of a socket that
/// answers garbage, of one that answers nothing (within its few seconds);
/// `--upgrade-socket` in a folder that does not exist, or at the path the
/// running master serves (not stolen). Then a stale socket file from a dead
/// master is replaced by a new master's, which serves a takeover.
pub fn assert_bad_upgrade_input_exits_2(bin: &str, args: &[&str], mode: &str) {
    use std::os::unix::net::UnixListener;
    let dir = UpgradeDir::new();
    let path = dir.socket("upgrade.sock");
    let mut running = start_upgradable(bin, args, &path, mode);
    let run = |flag: &str, target: &Path, says: &str| {
        let mut all_args = args.to_vec();
        all_args.extend(["--workers", "2", flag, text(target)]);
        assert_one_line_exit_2(bin, &all_args, says);
    };
    run("--takeover", &dir.socket("nothing.sock"), "--takeover");
    let stale = dir.socket("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind a Unix socket"));
    run("--takeover", &stale, "nothing listens");
    let file = dir.socket("file");
    std::fs::write(&file, "not a socket").expect("write a file");
    run("--takeover", &file, "not a socket");
    let stream = dir.socket("stream.sock");
    let _stream = UnixListener::bind(&stream).expect("bind a stream socket");
    run("--takeover", &stream, "not a master's upgrade socket");
    let silent = dir.socket("silent.sock");
    let _silent = seqpacket_listener(&silent);
    run("--takeover", &silent, "not a master's upgrade socket");
    let garbage = dir.socket("garbage.sock");
    let answering = seqpacket_listener(&garbage);
    let impostor = thread::spawn(move || {
        let conn = nix::sys::socket::accept(std::os::fd::AsRawFd::as_raw_fd(&answering))
            .expect("accept the new master");
        // SAFETY: accept just returned this fd; nothing else owns it.
        let conn = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(conn) };
        nix::sys::socket::send(
            std::os::fd::AsRawFd::as_raw_fd(&conn),
            b"HTTP/1.1 200 OK\r\n\r\n",
            nix::sys::socket::MsgFlags::empty(),
        )
        .expect("answer garbage");
        // Held until the new master has read it and hung up.
        let mut byte = [0u8; 64];
        while nix::sys::socket::recv(
            std::os::fd::AsRawFd::as_raw_fd(&conn),
            &mut byte,
            nix::sys::socket::MsgFlags::empty(),
        )
        .is_ok_and(|read| read > 0)
        {}
    });
    run("--takeover", &garbage, "not a master's upgrade socket");
    impostor.join().expect("the impostor thread");
    run(
        "--upgrade-socket",
        &dir.socket("missing/upgrade.sock"),
        "--upgrade-socket",
    );
    run("--upgrade-socket", &path, "a live master serves it");
    // Nothing running was disturbed.
    assert!(path.exists(), "the running master's upgrade socket is gone");
    assert!(
        running.wait_exit(Duration::ZERO).is_none(),
        "the master exited"
    );
    assert_served_by(&running, &running.worker_pids());
    // A dead master's socket file is replaced by the next master's.
    running.signal(Signal::SIGKILL).expect("SIGKILL the master");
    running
        .wait_exit(STOP_TIMEOUT)
        .expect("the master is reaped");
    assert!(path.exists(), "a SIGKILLed master cannot remove its socket");
    let mut replacing = start_upgradable(bin, args, &path, mode);
    let new = take_over(bin, args, &path, &replacing, mode);
    assert_handed_over(&mut replacing, new.master_pid());
}

/// A listening `SOCK_SEQPACKET` Unix socket at `path` that nobody accepts
/// on (the kernel still completes connections, up to its backlog).
fn seqpacket_listener(path: &Path) -> std::os::fd::OwnedFd {
    use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    let fd = nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("a seqpacket socket");
    let addr = UnixAddr::new(path).expect("a Unix address");
    nix::sys::socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).expect("bind");
    nix::sys::socket::listen(&fd, Backlog::new(4).expect("a backlog")).expect("listen");
    fd
}

/// Issue 12 item 2: with `--init-delay 500ms`, the `ready` line comes no
/// sooner than half a second after the start (each worker waits that long
/// before it reports ready), and the workers then serve.
pub fn assert_init_delay_delays_ready(bin: &str, args: &[&str], mode: &str) {
    let delay = Duration::from_millis(500);
    let mut all_args = args.to_vec();
    all_args.extend(["--init-delay", "500ms"]);
    let started = Instant::now();
    let cluster = start_two_workers(bin, &all_args, mode);
    let took = started.elapsed();
    assert!(
        took >= delay,
        "ready after {took:?}, before the {delay:?} of --init-delay"
    );
    assert_served_by(&cluster, &cluster.worker_pids());
}

/// A SIGTERM to the old master while a takeover is under way (the new
/// master holds the sockets, its workers wait `--init-delay 2s`): the old
/// master exits 0 without shutting the sockets down, so a client arriving
/// then waits in the accept queue and the new workers answer it (neither
/// refused nor reset).
pub fn assert_sigterm_during_takeover_keeps_the_sockets(bin: &str, args: &[&str], mode: &str) {
    let dir = UpgradeDir::new();
    let path = dir.socket("upgrade.sock");
    let mut old = start_upgradable(bin, args, &path, mode);
    let old_workers = old.worker_pids();
    let mut all_args = args.to_vec();
    all_args.extend(["--workers", "2", "--init-delay", "2s"]);
    all_args.extend(["--takeover", text(&path), "--upgrade-socket", text(&path)]);
    let new = Starting::spawn(bin, &all_args).expect("start the new master");
    assert!(
        wait_until(TAKEOVER_TIMEOUT, || new
            .stderr()
            .contains("took the listening sockets over")),
        "the new master did not take the sockets; stderr:\n{}",
        new.stderr()
    );
    old.signal(Signal::SIGTERM).expect("SIGTERM the old master");
    let status = old.wait_exit(STOP_TIMEOUT).expect("the old master exits");
    assert_eq!(status.code(), Some(0), "old master: {status}");
    let response = get(old.addr(), "/", true)
        .unwrap_or_else(|err| panic!("a client after the old master's stop: {err:#}"));
    assert_eq!(response.status, 200, "{response:?}");
    let pid = response.worker_pid().expect("an x-worker-pid");
    assert!(
        !old_workers.contains(&pid),
        "answered by an old worker {pid}"
    );
    drop(new);
}
