//! The test kit: helpers for the end-to-end tests of the cluster binaries. A
//! dev-dependency only (`publish = false`): nothing here is built into `proxy`,
//! `handoff` or `loadgen`.
//!
//! A test starts the real binary with [`Cluster::start`], which waits for its `ready`
//! line and, when dropped, SIGKILLs the master and every worker it has seen, so a
//! failing test leaves no process behind. [`get`] and [`KeepAlive`] are a tiny
//! blocking HTTP/1.1 client; [`fd_count`], [`is_alive`] and [`wait_until`] read
//! `/proc` and poll with a deadline. The `assert_*` functions are the test bodies
//! that every mode shares, so that each mode's test is a few lines.
//!
//! This is test code, not the product: the `assert_*` functions panic when the
//! binary breaks the contract of `DESIGN.md`, as a test does.
//!
//! # Layout
//! - processes: [`Cluster`], [`run_expect_exit`]
//! - HTTP client: [`get`], [`KeepAlive`], [`Response`]
//! - `/proc`: [`fd_count`], [`is_alive`], [`wait_until`]
//! - shared test bodies: [`start_two_workers`] and the `assert_*` functions

use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::Value;

use cluster::procfs;

/// How long a binary may take to print its `ready` line: it starts every worker
/// first, and a loaded CI machine runs many tests at once.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Connect, read and write timeout of the HTTP client: long enough for a loaded
/// machine, short enough that a hung server fails the test instead of hanging it.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often [`wait_until`] looks again: short against the deadlines of the tests,
/// long enough not to busy-spin.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How long the master may take to replace a dead worker (DESIGN.md says within a
/// second; the slack is for loaded machines).
pub const RESPAWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the workers may outlive a SIGKILLed master (DESIGN.md says a second).
pub const ORPHAN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the master may take to stop after SIGTERM, in-flight requests included.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a binary given bad usage or a taken port may take to exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the master's fd count may take to settle: in `handoff-socket` mode the
/// master closes its copy of a socket only when the worker's acknowledgement arrives,
/// which may be just after the worker has answered.
const FD_SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many more fds than before the connections the master may still hold once
/// the clients have closed them (a log file, a timer, a respawn in flight).
const FD_RELEASE_SLACK: usize = 20;

/// How long dropping a [`Cluster`] waits for the processes it SIGKILLed to be gone.
const KILL_TIMEOUT: Duration = Duration::from_secs(1);

/// How long to wait, after the master exited, for the last of its stderr.
const STDERR_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest status or header line the client accepts, so a broken server cannot
/// make it buffer without end.
const MAX_LINE_BYTES: u64 = 8 * 1024;

/// The most headers the client accepts in one answer (the worker sends three or four).
const MAX_HEADERS: usize = 100;

/// The largest body the client accepts (the worker's is one short line).
const MAX_BODY_BYTES: usize = 1024 * 1024;

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// A running cluster binary (master and workers) that is killed when dropped.
pub struct Cluster {
    /// The master and the threads that read its output.
    process: Process,
    /// The `ready` line, parsed.
    ready: Ready,
    /// Stdout lines that came before `ready` (a respawn during start-up), which
    /// [`Cluster::next_event`] hands out first.
    pending: VecDeque<String>,
}

/// The `ready` line: `{"event":"ready","mode":..,"listen":..,"master_pid":..,"workers":[..]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Ready {
    /// The mode name: `proxy`, `handoff-socket`, `handoff-listener` or `handoff-reuseport`.
    pub mode: String,
    /// The address the cluster serves on (the port is resolved when `--listen` asked for 0).
    pub listen: SocketAddr,
    /// The pid of the master, which must be the pid of the process the test started.
    pub master_pid: u32,
    /// The workers serving when the line was printed.
    pub workers: Vec<ReadyWorker>,
}

/// One worker of the `ready` line.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadyWorker {
    /// The worker's pid.
    pub pid: u32,
    /// The worker's own port in `proxy` mode; `None` (JSON `null`) in the handoff modes.
    pub port: Option<u16>,
}

impl Cluster {
    /// Starts `bin` with `args` (adding `--listen 127.0.0.1:0` unless `args` has a
    /// `--listen`) and waits up to [`READY_TIMEOUT`] for its `ready` line.
    ///
    /// The master's stderr is forwarded to this process's stderr, line by line, so
    /// the test harness shows the logs of a failing test.
    pub fn start(bin: &str, args: &[&str]) -> anyhow::Result<Cluster> {
        let mut process = Process::spawn(bin, args)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut pending = VecDeque::new();
        let ready = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = match process.lines.recv_timeout(remaining) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    bail!("{bin} printed no ready line within {READY_TIMEOUT:?}")
                }
                // The master closed its stdout: it has exited, or is about to.
                Err(RecvTimeoutError::Disconnected) => {
                    let status = process.wait(STDERR_DRAIN_TIMEOUT);
                    process.drain_stderr();
                    bail!(
                        "{bin} closed its stdout before its ready line (exit status: {status:?}); stderr:\n{}",
                        process.stderr()
                    )
                }
            };
            let event: Value = serde_json::from_str(&line)
                .with_context(|| format!("{bin} printed a stdout line that is not JSON: {line}"))?;
            if event["event"] == "ready" {
                break serde_json::from_value::<Ready>(event)
                    .with_context(|| format!("{bin} printed a malformed ready line: {line}"))?;
            }
            pending.push_back(line);
        };
        ensure!(
            ready.master_pid == process.child.id(),
            "the ready line names master {} but the process started is {}",
            ready.master_pid,
            process.child.id()
        );
        Ok(Cluster {
            process,
            ready,
            pending,
        })
    }

    /// The address the cluster serves on.
    pub fn addr(&self) -> SocketAddr {
        self.ready.listen
    }

    /// The master's pid.
    pub fn master_pid(&self) -> u32 {
        self.ready.master_pid
    }

    /// The pids of the workers of the `ready` line (respawned workers are not in it).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.ready.workers.iter().map(|worker| worker.pid).collect()
    }

    /// The mode name of the `ready` line, e.g. `handoff-socket`.
    pub fn mode(&self) -> &str {
        &self.ready.mode
    }

    /// The whole `ready` line.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// The next stdout line (a `respawn` event), or `None` if none came within
    /// `timeout` or the master closed its stdout.
    ///
    /// # Panics
    /// If the line is not JSON: DESIGN.md allows nothing else on stdout.
    pub fn next_event(&mut self, timeout: Duration) -> Option<Value> {
        let line = match self.pending.pop_front() {
            Some(line) => line,
            None => self.process.lines.recv_timeout(timeout).ok()?,
        };
        let event = serde_json::from_str(&line)
            .unwrap_or_else(|err| panic!("stdout line is not JSON ({err}): {line}"));
        Some(event)
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the master, unless it has already
    /// exited and been reaped (its pid could then belong to another process).
    pub fn signal(&mut self, signal: libc::c_int) -> anyhow::Result<()> {
        if let Some(status) = self.process.child.try_wait()? {
            bail!("the master has already exited ({status})");
        }
        // The master is our child and not reaped yet, so its pid is still its own.
        send_signal(self.master_pid(), signal)
    }

    /// Sends `signal` to the worker `pid`, which must be one this cluster announced
    /// (in its `ready` or a `respawn` line) and still be that same process.
    pub fn signal_worker(&self, pid: u32, signal: libc::c_int) -> anyhow::Result<()> {
        let seen = lock(&self.process.seen);
        let Some(worker) = seen.iter().find(|worker| worker.pid == pid) else {
            bail!("{pid} is not a worker of this cluster");
        };
        ensure!(worker.is_running(), "worker {pid} is no longer running");
        send_signal(pid, signal)
    }

    /// The workers this cluster has announced (`ready` and `respawn` lines) that
    /// are still running; zombies count as gone, and so does a pid now reused by
    /// another process.
    pub fn live_workers(&self) -> Vec<u32> {
        lock(&self.process.seen)
            .iter()
            .filter(|worker| worker.is_running())
            .map(|worker| worker.pid)
            .collect()
    }

    /// Waits up to `timeout` for the master to exit, and reaps it.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait(timeout)
    }

    /// What the master (and its workers) wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }
}

/// Runs `bin` with `args` (adding `--listen 127.0.0.1:0` unless `args` has a
/// `--listen`) until it exits, for at most `timeout`, and returns its exit status
/// and stderr. If it is still running after `timeout`, it and any worker it
/// announced are killed and an error is returned.
pub fn run_expect_exit(
    bin: &str,
    args: &[&str],
    timeout: Duration,
) -> anyhow::Result<(ExitStatus, String)> {
    let mut process = Process::spawn(bin, args)?;
    let Some(status) = process.wait(timeout) else {
        bail!(
            "{bin} {args:?} was still running after {timeout:?}; stderr:\n{}",
            process.stderr()
        );
    };
    process.drain_stderr();
    Ok((status, process.stderr()))
}

/// A started binary: its process, the workers it announced and its output.
/// Dropping it SIGKILLs what is still running.
struct Process {
    /// The master, our child: its pid stays its own until we reap it.
    child: Child,
    /// Its stdout, line by line, from the reader thread.
    lines: Receiver<String>,
    /// Every worker announced on stdout, for the cleanup on drop.
    seen: Arc<Mutex<Vec<SeenProcess>>>,
    /// Its stderr so far (the workers inherit the same pipe).
    stderr: Arc<Mutex<String>>,
    /// The thread that forwards and collects stderr; it ends when the last writer
    /// (master or worker) has closed the pipe.
    stderr_reader: Option<JoinHandle<()>>,
}

impl Process {
    /// Spawns `bin` with its stdout and stderr piped to two reader threads.
    fn spawn(bin: &str, args: &[&str]) -> anyhow::Result<Process> {
        let mut command = Command::new(bin);
        command.args(args);
        let has_listen = args
            .iter()
            .any(|arg| *arg == "--listen" || arg.starts_with("--listen="));
        if !has_listen {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {bin}"))?;
        let stdout = child.stdout.take().expect("stdout was set to piped");
        let stderr = child.stderr.take().expect("stderr was set to piped");
        let name = Path::new(bin)
            .file_name()
            .map_or_else(|| bin.into(), |name| name.to_string_lossy());
        let log_prefix = format!("[{name} {}]", child.id());

        let (line_sender, lines) = mpsc::channel();
        // Built before the threads, so that the child is killed even if spawning one panics.
        let mut process = Process {
            child,
            lines,
            seen: Arc::new(Mutex::new(Vec::new())),
            stderr: Arc::new(Mutex::new(String::new())),
            stderr_reader: None,
        };
        let seen = Arc::clone(&process.seen);
        thread::spawn(move || {
            for_each_line(stdout, |line| {
                record_workers(&line, &seen);
                line_sender.send(line).is_ok()
            })
        });
        let collected = Arc::clone(&process.stderr);
        process.stderr_reader = Some(thread::spawn(move || {
            for_each_line(stderr, |line| {
                eprintln!("{log_prefix} {line}");
                let mut collected = lock(&collected);
                collected.push_str(&line);
                collected.push('\n');
                true
            })
        }));
        Ok(process)
    }

    /// Polls for the child's exit until `timeout`, reaping it.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Gives the stderr reader a moment to reach the end of the pipe, after the
    /// child exited, so that its last line is collected.
    fn drain_stderr(&self) {
        if let Some(reader) = &self.stderr_reader {
            wait_until(STDERR_DRAIN_TIMEOUT, || reader.is_finished());
        }
    }

    /// A copy of the stderr collected so far.
    fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill is kill(pid, SIGKILL) on a child not yet reaped: it cannot
            // hit another process.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let seen = lock(&self.seen);
        for worker in seen.iter() {
            if worker.is_running() {
                let _ = send_signal(worker.pid, libc::SIGKILL);
            }
        }
        // SIGKILL takes effect asynchronously: wait (briefly) until it has, so the
        // next test starts with these processes gone.
        wait_until(KILL_TIMEOUT, || {
            seen.iter().all(|worker| !worker.is_running())
        });
    }
}

/// A worker pid announced on stdout, with its start time, so that a pid reused by
/// another process after the worker died is never taken for it (nor killed).
struct SeenProcess {
    /// The worker's pid.
    pid: u32,
    /// Field 22 of `/proc/<pid>/stat` when it was announced; `None` if the process
    /// was already gone then.
    start_time: Option<u64>,
}

impl SeenProcess {
    /// Records `pid` with its current start time.
    fn new(pid: u32) -> SeenProcess {
        let start_time = procfs::stat(pid).ok().map(|stat| stat.start_ticks);
        SeenProcess { pid, start_time }
    }

    /// Whether the announced process is still running: same start time, not a zombie.
    fn is_running(&self) -> bool {
        match (self.start_time, procfs::stat(self.pid)) {
            (Some(start_time), Ok(stat)) => stat.start_ticks == start_time && is_running(&stat),
            _ => false,
        }
    }
}

/// Records the worker pids of a `ready` or `respawn` line.
fn record_workers(line: &str, seen: &Mutex<Vec<SeenProcess>>) {
    let Ok(event) = serde_json::from_str::<Value>(line) else {
        return;
    };
    let mut pids: Vec<&Value> = Vec::new();
    if let Some(workers) = event["workers"].as_array() {
        pids.extend(workers.iter().map(|worker| &worker["pid"]));
    }
    if event["event"] == "respawn" {
        pids.push(&event["pid"]);
    }
    let mut seen = lock(seen);
    for pid in pids.into_iter().filter_map(Value::as_u64) {
        if let Ok(pid) = u32::try_from(pid) {
            seen.push(SeenProcess::new(pid));
        }
    }
}

/// Calls `f` with each line of `reader` (lossily decoded, without its newline)
/// until the end of the stream, a read error, or `f` returning `false`.
fn for_each_line(reader: impl Read, mut f: impl FnMut(String) -> bool) {
    let mut reader = BufReader::new(reader);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buffer);
        if !f(line.trim_end_matches(['\n', '\r']).to_owned()) {
            return;
        }
    }
}

/// kill(2): sends `signal` to `pid`.
fn send_signal(pid: u32, signal: libc::c_int) -> anyhow::Result<()> {
    let signal = Signal::try_from(signal).with_context(|| format!("{signal} is not a signal"))?;
    let pid = Pid::from_raw(i32::try_from(pid).context("pid out of range")?);
    kill(pid, signal).with_context(|| format!("kill({pid}, {signal})"))?;
    Ok(())
}

/// Locks `mutex`, ignoring poisoning: the data (pids, text) stays usable after a
/// panic elsewhere, and the cleanup on drop must not panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------

/// An HTTP answer as the client read it.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The headers in order, names lowercased (HTTP header names are case-insensitive).
    pub headers: Vec<(String, String)>,
    /// The body, read up to its `content-length`.
    pub body: String,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The pid in the `x-worker-pid` header, if present and a number.
    pub fn worker_pid(&self) -> Option<u32> {
        self.header("x-worker-pid")?.trim().parse().ok()
    }
}

/// One client connection that sends several requests in turn (HTTP/1.1 keep-alive).
pub struct KeepAlive {
    /// The server's address, for the `Host` header.
    addr: SocketAddr,
    /// The connection, buffered for reading the answers; requests are written to
    /// the stream inside.
    stream: BufReader<TcpStream>,
}

impl KeepAlive {
    /// Connects to `addr`, with [`HTTP_TIMEOUT`] on connecting, reading and writing.
    pub fn connect(addr: SocketAddr) -> anyhow::Result<KeepAlive> {
        let stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
            .with_context(|| format!("connect to {addr}"))?;
        stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
        stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(KeepAlive {
            addr,
            stream: BufReader::new(stream),
        })
    }

    /// Sends `GET path` and reads the answer, keeping the connection open.
    pub fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.request(path, false)
    }

    /// Sends `GET path`, with `Connection: close` if `close`, and reads the answer.
    pub fn request(&mut self, path: &str, close: bool) -> anyhow::Result<Response> {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if close {
            request.push_str("Connection: close\r\n");
        }
        request.push_str("\r\n");
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .with_context(|| format!("send GET {path} to {}", self.addr))?;
        read_response(&mut self.stream).with_context(|| format!("read the answer to GET {path}"))
    }
}

/// Sends one `GET path` to `addr` on a new connection, with `Connection: close` if
/// `close`, and reads the answer.
pub fn get(addr: SocketAddr, path: &str, close: bool) -> anyhow::Result<Response> {
    KeepAlive::connect(addr)?.request(path, close)
}

/// Clients sending one `Connection: close` request each, all at once, each on
/// its own thread, counting the answers as they come: for tests that hold
/// some connections back (a stopped or full worker) and release them later.
pub struct Clients {
    answered: Arc<std::sync::atomic::AtomicUsize>,
    threads: Vec<JoinHandle<anyhow::Result<Response>>>,
}

impl Clients {
    /// Starts `count` clients, each sending `GET /` to `addr`.
    pub fn start(addr: SocketAddr, count: usize) -> Clients {
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads = (0..count)
            .map(|_| {
                let answered = answered.clone();
                thread::spawn(move || {
                    let response = get(addr, "/", true);
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    response
                })
            })
            .collect();
        Clients { answered, threads }
    }

    /// How many have had their answer (or failed) so far.
    pub fn answered(&self) -> usize {
        self.answered.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits for every client and returns their answers, in start order.
    pub fn join(self) -> Vec<anyhow::Result<Response>> {
        self.threads
            .into_iter()
            .map(|t| t.join().expect("a client thread does not panic"))
            .collect()
    }
}

/// Sends `bytes` as they are on a new connection to `addr` and reads one
/// answer, for requests the client above would not write.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> anyhow::Result<Response> {
    let stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut stream = BufReader::new(stream);
    stream.get_mut().write_all(bytes).context("send")?;
    read_response(&mut stream)
}

/// Reads one answer: status line, headers, and a body delimited by
/// `content-length` (or by the end of the connection if there is none).
fn read_response(reader: &mut impl BufRead) -> anyhow::Result<Response> {
    let status_line = read_line(reader)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    ensure!(
        version.starts_with("HTTP/1."),
        "not an HTTP/1 status line: {status_line:?}"
    );
    let status = parts
        .next()
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no status code in {status_line:?}"))?;

    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        ensure!(
            headers.len() < MAX_HEADERS,
            "more than {MAX_HEADERS} headers"
        );
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("malformed header line {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut response = Response {
        status,
        headers,
        body: String::new(),
    };
    ensure!(
        response.header("transfer-encoding").is_none(),
        "this client reads only content-length bodies, and the answer is chunked"
    );

    let body = match response.header("content-length") {
        Some(length) => {
            let length: usize = length
                .parse()
                .with_context(|| format!("bad content-length {length:?}"))?;
            ensure!(
                length <= MAX_BODY_BYTES,
                "body of {length} bytes is too large"
            );
            let mut body = vec![0; length];
            reader.read_exact(&mut body).context("body cut short")?;
            body
        }
        // No length: the body ends when the server closes the connection.
        None => {
            let mut body = Vec::new();
            reader
                .take(MAX_BODY_BYTES as u64)
                .read_to_end(&mut body)
                .context("read the body")?;
            body
        }
    };
    response.body = String::from_utf8(body).context("the body is not UTF-8")?;
    Ok(response)
}

/// Reads one CRLF-terminated line, without its terminator.
fn read_line(reader: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    let read = reader.take(MAX_LINE_BYTES).read_line(&mut line)?;
    ensure!(
        read > 0,
        "the server closed the connection before a full answer"
    );
    ensure!(
        line.ends_with('\n'),
        "line cut short or longer than {MAX_LINE_BYTES} bytes: {line:?}"
    );
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/// The number of open fds of process `pid` (the entries of `/proc/<pid>/fd`).
pub fn fd_count(pid: u32) -> Result<usize, procfs::ProcError> {
    procfs::fd_count(pid)
}

/// Whether `/proc/<pid>` exists at all: a zombie exists until its parent
/// reaps it.
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Leaves process `pid` without a free fd: sets its RLIMIT_NOFILE to its
/// lowest unused fd number, so that every new fd fails with EMFILE until the
/// limit is raised again (with [`set_nofile_limit`]).
pub fn exhaust_fds(pid: u32) -> io::Result<()> {
    let mut used = std::collections::HashSet::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        if let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u64>().ok())
        {
            used.insert(fd);
        }
    }
    let lowest_free = (0..)
        .find(|fd| !used.contains(fd))
        .expect("a free fd number");
    set_nofile_limit(pid, lowest_free)
}

/// Sets the soft RLIMIT_NOFILE of another process ([`rlimit::set_soft_of`]).
pub fn set_nofile_limit(pid: u32, soft: u64) -> io::Result<()> {
    cluster::rlimit::set_soft_of(pid, soft)
}

/// Whether process `pid` exists and is not a zombie (a dead process not yet reaped
/// by its parent, e.g. an orphan whose new parent does not reap).
pub fn is_alive(pid: u32) -> bool {
    procfs::stat(pid).is_ok_and(|stat| is_running(&stat))
}

/// The CPU time (user + system) process `pid` has used so far; `None` if it
/// does not exist.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    procfs::stat(pid)
        .ok()
        .map(|stat| stat.cpu_user + stat.cpu_system)
}

/// Whether a process in this state still runs: neither zombie nor dead.
fn is_running(stat: &procfs::Stat) -> bool {
    !matches!(stat.state, 'Z' | 'X' | 'x')
}

/// Calls `f` every [`POLL_INTERVAL`] until it returns `true` (then returns `true`)
/// or `deadline` has passed (then returns `false`). `f` runs at least once, and once
/// more after the deadline.
pub fn wait_until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

// ---------------------------------------------------------------------------
// Shared test bodies
// ---------------------------------------------------------------------------

/// Starts `bin` with `--workers 2`, `args` and `--listen 127.0.0.1:0`, and checks
/// its ready line: mode `mode`, two workers, and each worker's `port` a number in
/// `proxy` mode and `null` in the handoff modes.
///
/// # Panics
/// If the binary does not start, or its ready line is not as above.
pub fn start_two_workers(bin: &str, args: &[&str], mode: &str) -> Cluster {
    let mut all_args = vec!["--workers", "2"];
    all_args.extend_from_slice(args);
    let cluster = Cluster::start(bin, &all_args)
        .unwrap_or_else(|err| panic!("start {bin} {all_args:?}: {err:#}"));
    let ready = cluster.ready();
    assert_eq!(ready.mode, mode, "mode of the ready line {ready:?}");
    assert_eq!(
        ready.workers.len(),
        2,
        "workers of the ready line {ready:?}"
    );
    let has_ports = mode == "proxy";
    assert!(
        ready
            .workers
            .iter()
            .all(|worker| worker.port.is_some() == has_ports),
        "in {mode} mode each worker's port should be {}: {ready:?}",
        if has_ports { "a number" } else { "null" }
    );
    cluster
}

/// Checks that `response` is a worker's answer as DESIGN.md says (200,
/// `text/plain`, `x-worker-pid`, body `handled by child, pid is <pid>\n`) from one
/// of `workers`, and returns that pid.
///
/// # Panics
/// If any of these does not hold.
pub fn assert_worker_answer(response: &Response, workers: &[u32]) -> u32 {
    assert_eq!(response.status, 200, "status of {response:?}");
    let pid = response
        .worker_pid()
        .unwrap_or_else(|| panic!("no numeric x-worker-pid in {response:?}"));
    assert_eq!(
        response.body,
        format!("handled by child, pid is {pid}\n"),
        "body of {response:?}"
    );
    assert!(
        response
            .header("content-type")
            .is_some_and(|value| value.starts_with("text/plain")),
        "content-type of {response:?}"
    );
    assert!(
        workers.contains(&pid),
        "answered by {pid}, not one of the workers {workers:?}"
    );
    pid
}

/// Sends `requests` one-shot (`Connection: close`) requests: each must get a
/// worker's answer from a worker of the ready line, and, if `every_worker`, every
/// worker must answer at least one.
///
/// # Panics
/// If any request fails or any answer is wrong.
pub fn assert_answers(cluster: &Cluster, requests: usize, every_worker: bool) {
    let workers = cluster.worker_pids();
    let mut answered_by = BTreeSet::new();
    for request in 0..requests {
        let response = get(cluster.addr(), "/", true)
            .unwrap_or_else(|err| panic!("request {request}: {err:#}"));
        answered_by.insert(assert_worker_answer(&response, &workers));
    }
    if every_worker {
        let all: BTreeSet<u32> = workers.iter().copied().collect();
        assert_eq!(
            answered_by, all,
            "{requests} requests reached only some of the workers"
        );
    }
}

/// Sends `requests` requests on one keep-alive connection: each must get a worker's
/// answer, all from the same worker.
///
/// # Panics
/// If any request fails, any answer is wrong, or two workers answer.
pub fn assert_keep_alive(cluster: &Cluster, requests: usize) {
    let workers = cluster.worker_pids();
    let mut connection = KeepAlive::connect(cluster.addr()).expect("connect to the cluster");
    let mut answered_by = BTreeSet::new();
    for request in 0..requests {
        let response = connection
            .get("/")
            .unwrap_or_else(|err| panic!("request {request} on one connection: {err:#}"));
        answered_by.insert(assert_worker_answer(&response, &workers));
    }
    assert_eq!(
        answered_by.len(),
        1,
        "one connection answered by several workers: {answered_by:?}"
    );
}

/// Asks for `?work_us=20000`: the answer must be a worker's and take at least 15 ms
/// (20 ms of work, less a generous margin for clock granularity).
///
/// # Panics
/// If the request fails, the answer is wrong, or it comes too fast.
pub fn assert_work_delays_answer(cluster: &Cluster) {
    let started = Instant::now();
    let response = get(cluster.addr(), "/?work_us=20000", true)
        .unwrap_or_else(|err| panic!("request with work_us: {err:#}"));
    let elapsed = started.elapsed();
    assert_worker_answer(&response, &cluster.worker_pids());
    assert!(
        elapsed >= Duration::from_millis(15),
        "20 ms of work answered in {elapsed:?}"
    );
}

/// Opens `connections` client connections, each with one answered keep-alive
/// request, and checks that the master's open fds grew by an amount in
/// `increase` (e.g. about two per connection in `proxy` mode, none in the handoff
/// modes); then closes them and checks that the master's fds come back to
/// within a few of where they were (no fd leaked per connection).
///
/// # Panics
/// If a request fails, or the master's fd count is out of range.
pub fn assert_fd_cost(cluster: &Cluster, connections: usize, increase: RangeInclusive<usize>) {
    let master = cluster.master_pid();
    let workers = cluster.worker_pids();
    let before = fd_count(master).expect("read the master's fds in /proc");
    let mut clients = Vec::with_capacity(connections);
    for connection in 0..connections {
        let mut client = KeepAlive::connect(cluster.addr())
            .unwrap_or_else(|err| panic!("connection {connection}: {err:#}"));
        let response = client
            .get("/")
            .unwrap_or_else(|err| panic!("request on connection {connection}: {err:#}"));
        assert_worker_answer(&response, &workers);
        clients.push(client);
    }

    let mut grown = 0;
    let settled = wait_until(FD_SETTLE_TIMEOUT, || {
        let after = fd_count(master).expect("read the master's fds in /proc");
        grown = after.saturating_sub(before);
        increase.contains(&grown)
    });
    assert!(
        settled,
        "with {connections} open connections the master's fds grew by {grown} \
         (from {before}), not within {increase:?}"
    );

    drop(clients);
    let limit = before + FD_RELEASE_SLACK;
    let mut after = 0;
    let released = wait_until(FD_SETTLE_TIMEOUT, || {
        after = fd_count(master).expect("read the master's fds in /proc");
        after <= limit
    });
    assert!(
        released,
        "after closing {connections} connections the master still has {after} fds \
         (had {before} before them)"
    );
}

/// SIGKILLs the first worker of the ready line: a `respawn` event must name it as
/// `old_pid` within [`RESPAWN_TIMEOUT`], with a new, running `pid` (and a `port` in
/// `proxy` mode only), and then 20 one-shot requests must all be answered by the
/// surviving or the new worker, never the dead one.
///
/// # Panics
/// If any of these does not hold.
pub fn assert_respawns_killed_worker(cluster: &mut Cluster) {
    let workers = cluster.worker_pids();
    let killed = workers[0];
    cluster
        .signal_worker(killed, libc::SIGKILL)
        .unwrap_or_else(|err| panic!("SIGKILL worker {killed}: {err:#}"));

    let deadline = Instant::now() + RESPAWN_TIMEOUT;
    let respawn = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let event = cluster.next_event(remaining);
        match event {
            Some(event) if event["event"] == "respawn" => break event,
            Some(_) if !remaining.is_zero() => continue,
            _ => panic!(
                "no respawn event within {RESPAWN_TIMEOUT:?} of killing worker {killed}; stderr:\n{}",
                cluster.stderr()
            ),
        }
    };
    assert_eq!(respawn["old_pid"], killed, "old_pid of {respawn}");
    let new_pid = respawn["pid"]
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok())
        .unwrap_or_else(|| panic!("no pid in {respawn}"));
    assert!(
        !workers.contains(&new_pid),
        "the respawned worker reuses a pid: {respawn}"
    );
    assert!(
        cluster.live_workers().contains(&new_pid),
        "the respawned worker {new_pid} is not running"
    );
    // The master reaps its dead worker: no zombie left behind.
    assert!(
        wait_until(Duration::from_secs(1), || !exists(killed)),
        "the killed worker {killed} was not reaped (zombie)"
    );
    let has_port = cluster.mode() == "proxy";
    assert_eq!(
        respawn["port"].is_u64(),
        has_port,
        "port of {respawn} in {} mode",
        cluster.mode()
    );

    let serving: Vec<u32> = workers
        .iter()
        .copied()
        .filter(|pid| *pid != killed)
        .chain([new_pid])
        .collect();
    for request in 0..20 {
        let response = get(cluster.addr(), "/", true)
            .unwrap_or_else(|err| panic!("request {request} after the respawn: {err:#}"));
        assert_worker_answer(&response, &serving);
    }
}

/// SIGKILLs the master: it must exit, and every worker it announced must be gone
/// (exited, or a zombie) within [`ORPHAN_TIMEOUT`].
///
/// # Panics
/// If a worker outlives the master by more than that.
pub fn assert_master_kill_leaves_no_orphans(cluster: &mut Cluster) {
    assert!(
        !cluster.live_workers().is_empty(),
        "no running worker before the test"
    );
    cluster
        .signal(libc::SIGKILL)
        .unwrap_or_else(|err| panic!("SIGKILL the master: {err:#}"));
    let killed_at = Instant::now();
    assert!(
        cluster.wait_exit(ORPHAN_TIMEOUT).is_some(),
        "the master survived SIGKILL"
    );
    let remaining = ORPHAN_TIMEOUT.saturating_sub(killed_at.elapsed());
    assert!(
        wait_until(remaining, || cluster.live_workers().is_empty()),
        "workers {:?} still running {ORPHAN_TIMEOUT:?} after the master was killed",
        cluster.live_workers()
    );
}

/// Sends SIGTERM to the master: it must exit with code 0 within [`STOP_TIMEOUT`],
/// and its workers must be gone by then (allowing one more second for them to be
/// reaped).
///
/// # Panics
/// If the master does not exit, exits otherwise, or leaves a worker running.
pub fn assert_sigterm_stops_cleanly(cluster: &mut Cluster) {
    cluster
        .signal(libc::SIGTERM)
        .unwrap_or_else(|err| panic!("SIGTERM the master: {err:#}"));
    let status = cluster.wait_exit(STOP_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "the master still runs {STOP_TIMEOUT:?} after SIGTERM; stderr:\n{}",
            cluster.stderr()
        )
    });
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM: {status}; stderr:\n{}",
        cluster.stderr()
    );
    assert!(
        wait_until(Duration::from_secs(1), || cluster.live_workers().is_empty()),
        "workers {:?} still running after the master stopped",
        cluster.live_workers()
    );
}

/// Starts a slow request (`?work_us=800000`), waits until a worker is busy
/// computing it (its CPU time rises by 100 ms), then sends SIGTERM to the
/// master: the request must still be answered 200, and the master exit 0.
///
/// # Panics
/// If the request is lost or the master does not stop cleanly.
pub fn assert_sigterm_finishes_in_flight(cluster: &mut Cluster) {
    let workers = cluster.worker_pids();
    let busy = |pid: &u32| cpu_time(*pid).unwrap_or_default();
    let before: Vec<Duration> = workers.iter().map(busy).collect();
    let addr = cluster.addr();
    let slow = thread::spawn(move || get(addr, "/?work_us=800000", true));
    let started = wait_until(HTTP_TIMEOUT, || {
        workers
            .iter()
            .zip(&before)
            .any(|(pid, before)| busy(pid) >= *before + Duration::from_millis(100))
    });
    assert!(started, "no worker started computing the slow request");
    assert_sigterm_stops_cleanly(cluster);
    let response = slow
        .join()
        .expect("the client thread does not panic")
        .unwrap_or_else(|err| panic!("the request in flight at SIGTERM was lost: {err:#}"));
    assert_worker_answer(&response, &cluster.worker_pids());
}

/// Binds a port on 127.0.0.1, then starts `bin` with `args`, `--workers 2` and
/// `--listen` on that port: it must exit with code 2 within [`EXIT_TIMEOUT`] and
/// write a stderr line naming the address.
///
/// # Panics
/// If it does not.
pub fn assert_taken_port_exits_2(bin: &str, args: &[&str]) {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    let addr = taken
        .local_addr()
        .expect("a bound socket has an address")
        .to_string();
    let mut all_args = args.to_vec();
    all_args.extend(["--workers", "2", "--listen", &addr]);
    let (status, stderr) = run_expect_exit(bin, &all_args, EXIT_TIMEOUT)
        .unwrap_or_else(|err| panic!("{bin} {all_args:?} on a taken port: {err:#}"));
    assert_eq!(
        status.code(),
        Some(2),
        "exit on the taken port {addr}: {status}; stderr:\n{stderr}"
    );
    assert!(
        stderr.lines().any(|line| line.contains(&addr)),
        "no stderr line names the taken address {addr}; stderr:\n{stderr}"
    );
    drop(taken);
}

/// Runs `bin` with bad usage `args`: it must exit with code 2 within
/// [`EXIT_TIMEOUT`] and say something on stderr.
///
/// # Panics
/// If it does not.
pub fn assert_bad_usage_exits_2(bin: &str, args: &[&str]) {
    let (status, stderr) = run_expect_exit(bin, args, EXIT_TIMEOUT)
        .unwrap_or_else(|err| panic!("{bin} {args:?}: {err:#}"));
    assert_eq!(
        status.code(),
        Some(2),
        "exit on bad usage {args:?}: {status}; stderr:\n{stderr}"
    );
    assert!(
        !stderr.trim().is_empty(),
        "bad usage {args:?} but nothing on stderr"
    );
}

/// Bad HTTP input: a request that is not HTTP gets 400, a request head over
/// 16 KiB gets 431 (or 400, or the connection reset after it), and the workers
/// survive both: the same pids then answer a good request.
///
/// # Panics
/// If an answer is wrong or a worker dies.
pub fn assert_bad_http_input(cluster: &Cluster) {
    let workers = cluster.worker_pids();
    let garbage = send_raw(cluster.addr(), b"HELLO WORLD\r\n\r\n")
        .unwrap_or_else(|err| panic!("no answer to a request that is not HTTP: {err:#}"));
    assert_eq!(garbage.status, 400, "answer to a request that is not HTTP");

    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    match send_raw(cluster.addr(), &big) {
        Ok(response) => assert!(
            matches!(response.status, 431 | 400),
            "answer to a 20 KiB header: {}",
            response.status
        ),
        // The server closed with part of the request unread, so the kernel
        // reset the connection, possibly before the answer could be read.
        Err(err) => assert!(
            format!("{err:#}").contains("reset") || format!("{err:#}").contains("end of"),
            "a 20 KiB header: {err:#}"
        ),
    }
    let response = get(cluster.addr(), "/", true).expect("a good request after bad ones");
    assert_worker_answer(&response, &workers);
    assert_eq!(cluster.live_workers().len(), workers.len(), "a worker died");
}

/// Slowloris, with the cluster started with `--header-timeout 1s`: a client
/// that never finishes its headers is cut after about a second, and holds up
/// nobody meanwhile.
///
/// # Panics
/// If the slow client is not cut, or another client waits on it.
pub fn assert_slow_headers_are_cut(cluster: &Cluster) {
    let mut slow = TcpStream::connect_timeout(&cluster.addr(), HTTP_TIMEOUT).expect("connect");
    slow.set_read_timeout(Some(HTTP_TIMEOUT)).expect("timeout");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .expect("send part of the head");
    let sent_at = Instant::now();
    // Meanwhile others are served at once, by every worker.
    assert_answers(cluster, 10, false);
    let mut rest = Vec::new();
    let read = slow.read_to_end(&mut rest);
    let waited = sent_at.elapsed();
    assert!(
        read.is_ok()
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
        "the slow client was not cut within {HTTP_TIMEOUT:?}: {read:?}"
    );
    assert!(
        waited >= Duration::from_millis(900),
        "cut after {waited:?}, before the 1 s header timeout"
    );
}

/// The master at its fd limit (started with `--max-fds 64`): 150 clients
/// connect and send a request; the master keeps running without spinning
/// (under 0.1 s of CPU in the second it spends at the limit), still serves a
/// connection it had before, and serves new clients once the 150 are gone.
///
/// # Panics
/// If the master dies, spins, or does not recover.
pub fn assert_survives_fd_exhaustion(cluster: &Cluster) {
    let master = cluster.master_pid();
    let mut before = KeepAlive::connect(cluster.addr()).expect("connect before the flood");
    assert_worker_answer(
        &before.get("/").expect("request before the flood"),
        &cluster.worker_pids(),
    );
    let request = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", cluster.addr());
    let flood: Vec<TcpStream> = (0..150)
        .filter_map(|_| {
            // The kernel completes the handshake into the accept queue even
            // when the master cannot accept; a refused one is fine too.
            let mut stream = TcpStream::connect_timeout(&cluster.addr(), HTTP_TIMEOUT).ok()?;
            stream.write_all(request.as_bytes()).ok()?;
            Some(stream)
        })
        .collect();
    assert!(
        flood.len() > 100,
        "only {} clients could connect",
        flood.len()
    );
    // A measuring window, not a synchronisation: the CPU the master uses while
    // it sits at its limit with clients waiting.
    let cpu_before = cpu_time(master).expect("master alive");
    thread::sleep(Duration::from_secs(1));
    let cpu = cpu_time(master).expect("master alive at the limit") - cpu_before;
    assert!(
        cpu < Duration::from_millis(100),
        "the master spins at its fd limit: {cpu:?} of CPU in 1 s"
    );
    assert_worker_answer(
        &before
            .get("/")
            .expect("a connection from before the flood is still served"),
        &cluster.worker_pids(),
    );
    drop(flood);
    drop(before);
    let recovered = wait_until(HTTP_TIMEOUT, || {
        get(cluster.addr(), "/", true).is_ok_and(|r| r.status == 200)
    });
    assert!(recovered, "no new client served after the flood left");
    assert!(is_alive(master), "the master died");
}

/// Under a load of 8 clients each sending one request per connection, one
/// worker is killed: the master respawns it, the successor serves, and the
/// requests that fail are at most those in flight on the dead worker (one per
/// client). Returns (requests failed, requests answered).
///
/// # Panics
/// If more requests fail, or no successor serves.
pub fn assert_worker_kill_under_load(cluster: &mut Cluster) -> (usize, usize) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const CLIENTS: usize = 8;
    /// Bound on each client's requests, so the loop ends whatever happens.
    const MAX_REQUESTS_PER_CLIENT: usize = 2_000;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let answered_by = Arc::new(Mutex::new(BTreeSet::new()));
    let addr = cluster.addr();
    let clients: Vec<JoinHandle<()>> = (0..CLIENTS)
        .map(|_| {
            let (stop, ok, failed, answered_by) = (
                stop.clone(),
                ok.clone(),
                failed.clone(),
                answered_by.clone(),
            );
            thread::spawn(move || {
                for _ in 0..MAX_REQUESTS_PER_CLIENT {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match get(addr, "/", true) {
                        Ok(response) if response.status == 200 => {
                            ok.fetch_add(1, Ordering::SeqCst);
                            lock(&answered_by).extend(response.worker_pid());
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    let load_running = wait_until(HTTP_TIMEOUT, || ok.load(Ordering::SeqCst) >= 100);
    let killed = cluster.worker_pids()[0];
    if load_running {
        cluster
            .signal_worker(killed, libc::SIGKILL)
            .expect("SIGKILL a worker");
    }
    let deadline = Instant::now() + RESPAWN_TIMEOUT;
    let mut successor = None;
    while successor.is_none() && Instant::now() < deadline {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if let Some(event) = cluster.next_event(remaining) {
            if event["event"] == "respawn" && event["old_pid"] == killed {
                successor = event["pid"].as_u64().map(|pid| pid as u32);
            }
        }
    }
    let served = successor
        .is_some_and(|pid| wait_until(RESPAWN_TIMEOUT, || lock(&answered_by).contains(&pid)));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("a client thread panicked");
    }
    assert!(load_running, "the load never got going");
    assert!(successor.is_some(), "no respawn of {killed} under load");
    assert!(served, "the successor of {killed} served no request");
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(
        failed <= CLIENTS,
        "{failed} requests failed (answered: {ok}); at most {CLIENTS} were in flight on the dead worker"
    );
    (failed, ok)
}
