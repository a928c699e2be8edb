//! A started binary of the suite: its stdout read line by line on a thread of
//! its own, its `ready` line awaited with a deadline, the workers it
//! announced recorded with their start times, and every one of them stopped
//! by its pid.
//!
//! Which pid is whose: the process started is our child, so its pid stays
//! its own until we reap it, and signalling it is safe. A worker (or a
//! master under a wrapper that forks, such as `strace -f`) is not our
//! child: its pid is recorded with its start time (field 22 of
//! `/proc/PID/stat`) when its line is read, and it is signalled only while
//! that pid still has that start time.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::ready::Ready;

/// How often a wait looks again: short against every deadline here, long
/// enough not to spin.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How long dropping a [`Server`] waits for what it SIGKILLed to be gone, so
/// that the next test or load starts without it.
const KILL_TIMEOUT: Duration = Duration::from_secs(1);

/// How long to wait, after the process exited, for the last of its stderr
/// (its workers may hold the pipe a moment longer).
const STDERR_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a server's stderr goes.
pub enum Stderr {
    /// Read by a thread that keeps it (for [`Server::stderr`]) and, when
    /// `forward` is set, copies each line to this process's stderr prefixed
    /// with `[name pid]`: a failing test shows the server's log.
    Collect {
        /// Whether to copy each line to this process's stderr.
        forward: bool,
    },
    /// Appended to a log file (the harness's log of every server).
    File(File),
    /// Discarded.
    Null,
}

/// Why no `ready` line came. The harness says it in one line; the tests
/// print the server's stderr with it.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    /// Nothing came before the deadline.
    #[error("{name} printed no ready line within {timeout:?}")]
    Timeout {
        /// The server, as named at its start.
        name: String,
        /// The deadline it missed.
        timeout: Duration,
    },
    /// It closed its stdout (exited) first.
    #[error(
        "{name} closed its stdout before its ready line (exit status: {status:?}); stderr:\n{stderr}"
    )]
    Exited {
        /// The server, as named at its start.
        name: String,
        /// Its exit status, if it was reaped in time.
        status: Option<ExitStatus>,
        /// What it wrote to stderr, when it was collected.
        stderr: String,
    },
    /// A stdout line that is not JSON, or a `ready` line without its fields:
    /// ARCHITECTURE.md allows neither.
    #[error("{name} printed a line that is not a ready line as ARCHITECTURE.md says: {line}")]
    Malformed {
        /// The server, as named at its start.
        name: String,
        /// The line.
        line: String,
    },
    /// The `ready` line names a master that is not the process started
    /// (without a wrapper, they are one process).
    #[error("the ready line of {name} names master {named} but the process started is {started}")]
    OtherMaster {
        /// The server, as named at its start.
        name: String,
        /// The `master_pid` of the line.
        named: u32,
        /// The pid of the process started.
        started: u32,
    },
}

/// `args` with `--listen 127.0.0.1:0` added unless they have a `--listen`:
/// every server of the suite listens on loopback, on a port the kernel picks
/// (its `ready` line says which).
pub fn with_listen<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut args = args.to_vec();
    if !args
        .iter()
        .any(|arg| *arg == "--listen" || arg.starts_with("--listen="))
    {
        args.extend(["--listen", "127.0.0.1:0"]);
    }
    args
}

/// A started binary. Dropping it SIGKILLs the process started and every
/// worker it announced that still runs.
pub struct Server {
    /// The process started: the master, or the wrapper around it.
    child: Child,
    /// Its name in messages (the binary's file name).
    name: String,
    /// Whether a wrapper that forks started the master: then the `ready`
    /// line's `master_pid` is another process than [`Server::pid`].
    wrapped: bool,
    /// Its stdout, line by line, from the reader thread.
    lines: Receiver<String>,
    /// Lines read before the `ready` line (a respawn during the start), and
    /// handed out first by [`Server::next_line`].
    pending: VecDeque<String>,
    /// The `ready` line, once read.
    ready: Option<Ready>,
    /// Every process announced on stdout (the workers of `ready` and
    /// `respawn` lines, and a wrapped master), for the signals and the
    /// cleanup.
    announced: Arc<Mutex<Vec<Announced>>>,
    /// Its stderr so far, under [`Stderr::Collect`].
    stderr: Arc<Mutex<String>>,
    /// The thread that collects stderr; it ends when the last writer (the
    /// master or a worker) has closed the pipe.
    stderr_reader: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts `command` (a binary of the suite, or a wrapper that execs one),
    /// named `name` in messages, stdin from /dev/null and stdout read line
    /// by line. `wrapped`: a wrapper that forks (strace) stands between us
    /// and the master, so the `ready` line names another pid.
    pub fn spawn(
        mut command: Command,
        name: &str,
        stderr: Stderr,
        wrapped: bool,
    ) -> io::Result<Server> {
        let collect = match stderr {
            Stderr::Collect { forward } => {
                command.stderr(Stdio::piped());
                Some(forward)
            }
            Stderr::File(file) => {
                command.stderr(file);
                None
            }
            Stderr::Null => {
                command.stderr(Stdio::null());
                None
            }
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout was set to piped");
        let err_pipe = child.stderr.take();
        let (sender, lines) = mpsc::channel();
        // Built before the threads, so that the child is killed even if
        // spawning one fails.
        let mut server = Server {
            name: std::path::Path::new(name)
                .file_name()
                .map_or_else(|| name.to_owned(), |n| n.to_string_lossy().into_owned()),
            child,
            wrapped,
            lines,
            pending: VecDeque::new(),
            ready: None,
            announced: Arc::new(Mutex::new(Vec::new())),
            stderr: Arc::new(Mutex::new(String::new())),
            stderr_reader: None,
        };
        let announced = Arc::clone(&server.announced);
        thread::Builder::new()
            .name("launch-stdout".into())
            .spawn(move || {
                for_each_line(stdout, |line| {
                    record_announced(&line, wrapped, &announced);
                    sender.send(line).is_ok()
                })
            })?;
        if let (Some(forward), Some(pipe)) = (collect, err_pipe) {
            let collected = Arc::clone(&server.stderr);
            let prefix = format!("[{} {}]", server.name, server.child.id());
            server.stderr_reader = Some(
                thread::Builder::new()
                    .name("launch-stderr".into())
                    .spawn(move || {
                        for_each_line(pipe, |line| {
                            if forward {
                                eprintln!("{prefix} {line}");
                            }
                            let mut collected = lock(&collected);
                            collected.push_str(&line);
                            collected.push('\n');
                            true
                        })
                    })?,
            );
        }
        Ok(server)
    }

    /// Waits up to `timeout` for the `ready` line and returns it; the lines
    /// before it stay for [`Server::next_line`]. An error if the server
    /// exits first, prints something that is not JSON, or (unwrapped) names
    /// another master.
    pub fn ready(&mut self, timeout: Duration) -> Result<&Ready, ReadyError> {
        let ready = match self.ready.take() {
            Some(ready) => ready,
            None => self.await_ready(timeout)?,
        };
        Ok(self.ready.insert(ready))
    }

    /// Reads stdout until the `ready` line, for at most `timeout`.
    fn await_ready(&mut self, timeout: Duration) -> Result<Ready, ReadyError> {
        let deadline = Instant::now() + timeout;
        let ready = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(remaining) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(ReadyError::Timeout {
                        name: self.name.clone(),
                        timeout,
                    });
                }
                // It closed its stdout: it has exited, or is about to.
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait(STDERR_DRAIN_TIMEOUT);
                    self.drain_stderr();
                    return Err(ReadyError::Exited {
                        name: self.name.clone(),
                        status,
                        stderr: self.stderr(),
                    });
                }
            };
            let malformed = || ReadyError::Malformed {
                name: self.name.clone(),
                line: line.clone(),
            };
            let event: Value = serde_json::from_str(&line).map_err(|_| malformed())?;
            if event["event"] == "ready" {
                break serde_json::from_value::<Ready>(event).map_err(|_| malformed())?;
            }
            self.pending.push_back(line);
        };
        if !self.wrapped && ready.master_pid != self.child.id() {
            return Err(ReadyError::OtherMaster {
                name: self.name.clone(),
                named: ready.master_pid,
                started: self.child.id(),
            });
        }
        Ok(ready)
    }

    /// The `ready` line, once [`Server::ready`] has read it.
    pub fn ready_line(&self) -> Option<&Ready> {
        self.ready.as_ref()
    }

    /// The next stdout line (after the `ready` line: `respawn`, `handover`,
    /// ...), or `None` if none came within `timeout` or stdout is closed.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.pending.pop_front() {
            Some(line) => Some(line),
            None => self.lines.recv_timeout(timeout).ok(),
        }
    }

    /// Every stdout line not yet handed out, up to the end of stdout: for a
    /// process that has exited (its workers' stdout is /dev/null, so the
    /// pipe ends with the master).
    pub fn rest_of_stdout(&mut self) -> Vec<String> {
        let mut lines: Vec<String> = self.pending.drain(..).collect();
        lines.extend(self.lines.iter());
        lines
    }

    /// The pid of the process started (our child).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The master's pid: the `ready` line's once read, else the process
    /// started.
    pub fn master_pid(&self) -> u32 {
        self.ready
            .as_ref()
            .map_or(self.child.id(), |ready| ready.master_pid)
    }

    /// Its name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `signal` to the master: our child while it is not reaped (so
    /// the pid is still its own), or the wrapped master while its pid has
    /// the start time it had when its `ready` line was read. An error if it
    /// has exited.
    pub fn signal(&mut self, signal: Signal) -> io::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            return Err(io::Error::other(format!(
                "{} has already exited ({status})",
                self.name
            )));
        }
        let pid = self.master_pid();
        if pid != self.child.id() && !self.is_running(pid) {
            return Err(io::Error::other(format!(
                "master {pid} is no longer running"
            )));
        }
        send(pid, signal)
    }

    /// Sends `signal` to `pid`, which must be a process this server
    /// announced and still be that same process.
    pub fn signal_worker(&self, pid: u32, signal: Signal) -> io::Result<()> {
        let announced = lock(&self.announced);
        let Some(worker) = announced.iter().find(|worker| worker.pid == pid) else {
            return Err(io::Error::other(format!(
                "{pid} is not a worker of this server"
            )));
        };
        if !worker.is_running() {
            return Err(io::Error::other(format!(
                "worker {pid} is no longer running"
            )));
        }
        send(pid, signal)
    }

    /// The processes this server announced (`ready` and `respawn` lines)
    /// that still run; a zombie counts as gone, and so does a pid now
    /// another process's.
    pub fn live_workers(&self) -> Vec<u32> {
        lock(&self.announced)
            .iter()
            .filter(|worker| worker.is_running())
            .map(|worker| worker.pid)
            .collect()
    }

    /// Whether `pid`, announced by this server, still runs as itself.
    fn is_running(&self, pid: u32) -> bool {
        lock(&self.announced)
            .iter()
            .any(|announced| announced.pid == pid && announced.is_running())
    }

    /// Reaps the process started if it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits up to `timeout` for the process started to exit, and reaps it.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The graceful stop: SIGTERM to the master, then `grace` for the
    /// process started to exit (a master's stop takes at most its `--grace`
    /// and half a second), then SIGKILL. Returns its exit status.
    pub fn stop(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        // It may exit between the check and the signal: then there is
        // nothing to stop, and the wait below reaps it.
        let _ = self.signal(Signal::SIGTERM);
        match self.wait(grace) {
            Some(status) => Ok(status),
            None => self.kill(),
        }
    }

    /// SIGKILLs the process started (our child, not yet reaped) and reaps it.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }

    /// Gives the stderr reader a moment to reach the end of the pipe, after
    /// the process exited, so that its last line is collected.
    pub fn drain_stderr(&self) {
        if let Some(reader) = &self.stderr_reader {
            let deadline = Instant::now() + STDERR_DRAIN_TIMEOUT;
            while !reader.is_finished() && Instant::now() < deadline {
                thread::sleep(POLL_INTERVAL);
            }
        }
    }

    /// What it wrote to stderr so far, under [`Stderr::Collect`]; empty
    /// otherwise.
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill is kill(pid, SIGKILL) on a child not yet reaped: it
            // cannot hit another process.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let announced = lock(&self.announced);
        for process in announced.iter() {
            if process.is_running() {
                let _ = send(process.pid, Signal::SIGKILL);
            }
        }
        // SIGKILL takes effect asynchronously: wait (briefly) until it has.
        let deadline = Instant::now() + KILL_TIMEOUT;
        while announced.iter().any(Announced::is_running) && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
        }
    }
}

/// A pid announced on stdout, with its start time, so that a pid reused by
/// another process after this one died is never taken for it (nor killed).
struct Announced {
    /// The pid.
    pid: u32,
    /// Its start time in clock ticks after boot when it was announced;
    /// `None` if it was already gone then.
    start_ticks: Option<u64>,
}

impl Announced {
    /// Records `pid` with its current start time.
    fn new(pid: u32) -> Announced {
        let start_ticks = cluster::procfs::read(pid)
            .ok()
            .map(|reading| reading.start_ticks);
        Announced { pid, start_ticks }
    }

    /// Whether the announced process still runs (neither gone nor a zombie,
    /// `cluster::procfs::read`'s notion) and is still the same process.
    fn is_running(&self) -> bool {
        match (self.start_ticks, cluster::procfs::read(self.pid)) {
            (Some(start_ticks), Ok(reading)) => reading.start_ticks == start_ticks,
            _ => false,
        }
    }
}

/// Records the pids a stdout line announces: the workers of a `ready` line
/// (and its master when `wrapped`), the new worker of a `respawn` line.
fn record_announced(line: &str, wrapped: bool, announced: &Mutex<Vec<Announced>>) {
    let Ok(event) = serde_json::from_str::<Value>(line) else {
        return;
    };
    let mut pids: Vec<&Value> = Vec::new();
    if let Some(workers) = event["workers"].as_array() {
        pids.extend(workers.iter().map(|worker| &worker["pid"]));
    }
    if event["event"] == "ready" && wrapped {
        pids.push(&event["master_pid"]);
    }
    if event["event"] == "respawn" {
        pids.push(&event["pid"]);
    }
    let mut announced = lock(announced);
    for pid in pids.into_iter().filter_map(Value::as_u64) {
        if let Ok(pid) = u32::try_from(pid) {
            announced.push(Announced::new(pid));
        }
    }
}

/// Calls `f` with each line of `reader` (lossily decoded, without its
/// newline) until the end of the stream, a read error, or `f` returning
/// `false`.
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

/// kill(2): `signal` to `pid`.
fn send(pid: u32, signal: Signal) -> io::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    kill(Pid::from_raw(raw), signal).map_err(io::Error::from)
}

/// Locks `mutex`, ignoring poisoning: the pids and text stay usable after a
/// panic elsewhere, and the cleanup on drop must not panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
