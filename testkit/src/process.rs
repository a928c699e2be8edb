//! Processes: start a cluster binary, read its `ready` and `respawn` lines,
//! signal its master and workers, and kill every one of them when the test
//! ends, however it ends.
//!
//! A [`Cluster`] owns a `Process`: the master (our child, so its pid stays its
//! own until we reap it), the reader threads of its stdout and stderr, and every
//! worker it announced, each recorded with its start time so that a reused pid is
//! never taken for it. Dropping the `Process` SIGKILLs them all.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::Value;

use crate::proc;
use crate::{lock, wait_until};

/// How long a binary may take to print its `ready` line: it starts every worker
/// first, and a loaded CI machine runs many tests at once.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long dropping a [`Cluster`] waits for the processes it SIGKILLed to be gone.
const KILL_TIMEOUT: Duration = Duration::from_secs(1);

/// How long to wait, after the master exited, for the last of its stderr.
const STDERR_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// The old master whose sockets this one took over (`--takeover`).
    #[serde(default)]
    pub takeover_from: Option<u32>,
    /// The sockets came from a service manager (`LISTEN_FDS`).
    #[serde(default)]
    pub socket_activated: bool,
}

/// One worker of the `ready` line.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadyWorker {
    /// The worker's pid.
    pub pid: u32,
    /// The worker's own port in `proxy` mode; `None` (JSON `null`) in the
    /// handoff modes and in `proxy --upstream unix`.
    pub port: Option<u16>,
    /// The worker's own Unix socket in `proxy --upstream unix`; absent
    /// otherwise.
    #[serde(default)]
    pub path: Option<std::path::PathBuf>,
}

impl Cluster {
    /// Starts `bin` with `args` (adding `--listen 127.0.0.1:0` unless `args` has a
    /// `--listen`) and waits up to [`READY_TIMEOUT`] for its `ready` line.
    ///
    /// The master's stderr is forwarded to this process's stderr, line by line, so
    /// the test harness shows the logs of a failing test.
    pub fn start(bin: &str, args: &[&str]) -> anyhow::Result<Cluster> {
        Starting::spawn(bin, args)?.ready(READY_TIMEOUT)
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
    /// If the line is not JSON: ARCHITECTURE.md allows nothing else on stdout.
    pub fn next_event(&mut self, timeout: Duration) -> Option<Value> {
        let line = match self.pending.pop_front() {
            Some(line) => line,
            None => self.process.lines.recv_timeout(timeout).ok()?,
        };
        let event = serde_json::from_str(&line)
            .unwrap_or_else(|err| panic!("stdout line is not JSON ({err}): {line}"));
        Some(event)
    }

    /// Sends `signal` (e.g. `Signal::SIGTERM`) to the master, unless it has already
    /// exited and been reaped (its pid could then belong to another process).
    pub fn signal(&mut self, signal: Signal) -> anyhow::Result<()> {
        if let Some(status) = self.process.child.try_wait()? {
            bail!("the master has already exited ({status})");
        }
        // The master is our child and not reaped yet, so its pid is still its own.
        send_signal(self.master_pid(), signal)
    }

    /// Sends `signal` to the worker `pid`, which must be one this cluster announced
    /// (in its `ready` or a `respawn` line) and still be that same process.
    pub fn signal_worker(&self, pid: u32, signal: Signal) -> anyhow::Result<()> {
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

/// A master started without waiting for its `ready` line: for a test that
/// kills it while it starts (a takeover cut short). Dropping it SIGKILLs it;
/// its workers, never announced, die with it (`PR_SET_PDEATHSIG`).
pub struct Starting {
    process: Process,
    /// The binary, for the messages.
    bin: String,
}

impl Starting {
    /// Starts `bin` with `args` (adding `--listen 127.0.0.1:0` unless `args`
    /// has a `--listen`).
    pub fn spawn(bin: &str, args: &[&str]) -> anyhow::Result<Starting> {
        Ok(Starting {
            process: Process::spawn(bin, args)?,
            bin: bin.to_owned(),
        })
    }

    /// Starts `command` as it is (no `--listen` added): a binary of the suite
    /// behind a wrapper such as `systemd-socket-activate`, named `name` in
    /// messages. The wrapper must exec the binary, so that the pid is the
    /// master's.
    pub fn spawn_command(command: Command, name: &str) -> anyhow::Result<Starting> {
        Ok(Starting {
            process: Process::spawn_command(command, name)?,
            bin: name.to_owned(),
        })
    }

    /// Starts `bin` with `args` as a service manager starts a socket-activated
    /// service (`sd_listen_fds(3)`): `sockets` as fds 3, 4, …, `LISTEN_FDS`
    /// their count and `LISTEN_PID` the binary's own pid (set by a shell that
    /// then execs it, as systemd sets it between fork and exec). The test
    /// keeps its copies of `sockets`, as the service manager does.
    pub fn spawn_activated(
        bin: &str,
        args: &[&str],
        sockets: &[OwnedFd],
    ) -> anyhow::Result<Starting> {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("sh");
        command
            .args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", bin])
            .args(args)
            .env("LISTEN_FDS", sockets.len().to_string());
        let raw: Vec<RawFd> = sockets.iter().map(AsRawFd::as_raw_fd).collect();
        // SAFETY: between fork and exec the closure calls only dup2 and
        // fcntl, async-signal-safe, on fds this process owns (`sockets`,
        // which outlive the spawn); it allocates nothing. Each socket is
        // first moved above every target fd, so that placing one at 3 + i
        // never closes another still to be placed.
        unsafe {
            command.pre_exec(move || {
                let high = 1000;
                for (i, fd) in raw.iter().enumerate() {
                    if libc::dup2(*fd, high + i as RawFd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for i in 0..raw.len() {
                    let target = 3 + i as RawFd;
                    // dup2 clears close-on-exec on the new fd.
                    if libc::dup2(high + i as RawFd, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(high + i as RawFd);
                }
                Ok(())
            });
        }
        Ok(Starting {
            process: Process::spawn_command(command, bin)?,
            bin: bin.to_owned(),
        })
    }

    /// Waits up to `timeout` for the `ready` line; then the master is a
    /// [`Cluster`]. An error if it exits first, says something that is not
    /// JSON, or names another master.
    pub fn ready(mut self, timeout: Duration) -> anyhow::Result<Cluster> {
        let bin = &self.bin;
        let process = &mut self.process;
        let deadline = Instant::now() + timeout;
        let mut pending = VecDeque::new();
        let ready = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = match process.lines.recv_timeout(remaining) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    bail!("{bin} printed no ready line within {timeout:?}")
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
            process: self.process,
            ready,
            pending,
        })
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Sends `signal` to the master, unless it has already exited and been
    /// reaped (its pid could then belong to another process).
    pub fn signal(&mut self, signal: Signal) -> anyhow::Result<()> {
        if let Some(status) = self.process.child.try_wait()? {
            bail!("the master has already exited ({status})");
        }
        // Our child, not reaped yet: the pid is still its own.
        send_signal(self.pid(), signal)
    }

    /// Waits up to `timeout` for the master to exit and reaps it; then its
    /// stderr is complete.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = self.process.wait(timeout)?;
        self.process.drain_stderr();
        Some(status)
    }

    /// SIGKILLs the master (our child, not yet reaped) and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        self.process.child.kill()?;
        Ok(self.process.child.wait()?)
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
        Process::spawn_command(command, bin)
    }

    /// Spawns `command` (a binary of the suite, named `bin` in messages) as
    /// [`Process::spawn`] does.
    fn spawn_command(mut command: Command, bin: &str) -> anyhow::Result<Process> {
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
                let _ = send_signal(worker.pid, Signal::SIGKILL);
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
        let start_time = proc::reading(pid).map(|reading| reading.start_ticks);
        SeenProcess { pid, start_time }
    }

    /// Whether the announced process is still running ([`proc::reading`]'s
    /// notion: neither gone nor a zombie) and still the same process (same start
    /// time).
    fn is_running(&self) -> bool {
        match (self.start_time, proc::reading(self.pid)) {
            (Some(start_time), Some(reading)) => reading.start_ticks == start_time,
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

/// How long a SIGSTOPped process may take to be stopped (every thread).
const STOPPED_TIMEOUT: Duration = Duration::from_secs(10);

/// kill(2), through nix: sends `signal` to `pid`. After a SIGSTOP it waits
/// until every thread of `pid` is stopped ([`proc::is_stopped`]): kill(2)
/// returns before, and a thread that runs meanwhile can still accept a
/// connection, which the test then takes for one a stopped process never
/// saw.
fn send_signal(pid: u32, signal: Signal) -> anyhow::Result<()> {
    let raw = Pid::from_raw(i32::try_from(pid).context("pid out of range")?);
    kill(raw, signal).with_context(|| format!("kill({raw}, {signal})"))?;
    if signal == Signal::SIGSTOP {
        ensure!(
            wait_until(STOPPED_TIMEOUT, || proc::is_stopped(pid)),
            "{pid} not stopped {STOPPED_TIMEOUT:?} after SIGSTOP"
        );
    }
    Ok(())
}
