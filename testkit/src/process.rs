//! Processes: start a cluster binary, read its `ready` and `respawn` lines,
//! signal its master and workers, and kill every one of them when the test
//! ends, however it ends.
//!
//! The starting, the reading of the lines and the stopping by pid are
//! [`launch::Server`]'s, the one way the harness (`bench/suite`) does them
//! too: the master is our child (its pid stays its own until we reap it),
//! and every worker it announced is recorded with its start time, so that a
//! reused pid is never taken for it. Dropping a [`Cluster`] or a
//! [`Starting`] SIGKILLs them all. This module adds what a test wants on
//! top: `--listen 127.0.0.1:0` by default, the master's stderr forwarded to
//! the test's and kept, errors that show it, and signals that wait until a
//! SIGSTOP has taken effect.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use launch::{Server, Stderr};
use nix::sys::signal::Signal;
use serde_json::Value;

pub use launch::{Ready, ReadyWorker};

use crate::{proc, wait_until};

/// How long a binary may take to print its `ready` line: it starts every worker
/// first, and a loaded CI machine runs many tests at once.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running cluster binary (master and workers) that is killed when dropped.
pub struct Cluster {
    /// The master, its output and the workers it announced.
    server: Server,
    /// The `ready` line, parsed.
    ready: Ready,
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
    pub fn addr(&self) -> std::net::SocketAddr {
        self.ready.listen
    }

    /// The master's pid.
    pub fn master_pid(&self) -> u32 {
        self.ready.master_pid
    }

    /// The pids of the workers of the `ready` line (respawned workers are not in it).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.ready.worker_pids()
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
        let line = self.server.next_line(timeout)?;
        let event = serde_json::from_str(&line)
            .unwrap_or_else(|err| panic!("stdout line is not JSON ({err}): {line}"));
        Some(event)
    }

    /// Sends `signal` (e.g. `Signal::SIGTERM`) to the master, unless it has already
    /// exited and been reaped (its pid could then belong to another process).
    pub fn signal(&mut self, signal: Signal) -> anyhow::Result<()> {
        let pid = self.master_pid();
        self.server.signal(signal)?;
        wait_if_stopped(pid, signal)
    }

    /// Sends `signal` to the worker `pid`, which must be one this cluster announced
    /// (in its `ready` or a `respawn` line) and still be that same process.
    pub fn signal_worker(&self, pid: u32, signal: Signal) -> anyhow::Result<()> {
        self.server.signal_worker(pid, signal)?;
        wait_if_stopped(pid, signal)
    }

    /// The workers this cluster has announced (`ready` and `respawn` lines) that
    /// are still running; zombies count as gone, and so does a pid now reused by
    /// another process.
    pub fn live_workers(&self) -> Vec<u32> {
        self.server.live_workers()
    }

    /// Waits up to `timeout` for the master to exit, and reaps it.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.server.wait(timeout)
    }

    /// What the master (and its workers) wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.server.stderr()
    }
}

/// A master started without waiting for its `ready` line: for a test that
/// kills it while it starts (a takeover cut short). Dropping it SIGKILLs it;
/// its workers, never announced, die with it (`PR_SET_PDEATHSIG`).
pub struct Starting {
    /// The master, its output and the workers it announced.
    server: Server,
}

impl Starting {
    /// Starts `bin` with `args` (adding `--listen 127.0.0.1:0` unless `args`
    /// has a `--listen`).
    pub fn spawn(bin: &str, args: &[&str]) -> anyhow::Result<Starting> {
        let mut command = Command::new(bin);
        command.args(launch::with_listen(args));
        Starting::spawn_command(command, bin)
    }

    /// Starts `command` as it is (no `--listen` added): a binary of the suite
    /// behind a wrapper such as `systemd-socket-activate`, named `name` in
    /// messages. The wrapper must exec the binary, so that the pid is the
    /// master's.
    pub fn spawn_command(command: Command, name: &str) -> anyhow::Result<Starting> {
        let server = Server::spawn(command, name, Stderr::Collect { forward: true }, false)
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Starting { server })
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
        Starting::spawn_command(command, bin)
    }

    /// Waits up to `timeout` for the `ready` line; then the master is a
    /// [`Cluster`]. An error if it exits first, says something that is not
    /// JSON, or names another master.
    pub fn ready(mut self, timeout: Duration) -> anyhow::Result<Cluster> {
        let ready = self.server.ready(timeout)?.clone();
        Ok(Cluster {
            server: self.server,
            ready,
        })
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.server.stderr()
    }

    /// Sends `signal` to the master, unless it has already exited and been
    /// reaped (its pid could then belong to another process).
    pub fn signal(&mut self, signal: Signal) -> anyhow::Result<()> {
        self.server.signal(signal)?;
        wait_if_stopped(self.pid(), signal)
    }

    /// Waits up to `timeout` for the master to exit and reaps it; then its
    /// stderr is complete.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = self.server.wait(timeout)?;
        self.server.drain_stderr();
        Some(status)
    }

    /// SIGKILLs the master (our child, not yet reaped) and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        Ok(self.server.kill()?)
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
    let mut starting = Starting::spawn(bin, args)?;
    let Some(status) = starting.wait_exit(timeout) else {
        bail!(
            "{bin} {args:?} was still running after {timeout:?}; stderr:\n{}",
            starting.stderr()
        );
    };
    Ok((status, starting.stderr()))
}

/// How long a SIGSTOPped process may take to be stopped (every thread).
const STOPPED_TIMEOUT: Duration = Duration::from_secs(10);

/// After a SIGSTOP to `pid`, waits until every thread of it is stopped
/// ([`proc::is_stopped`]): kill(2) returns before, and a thread that runs
/// meanwhile can still accept a connection, which the test then takes for
/// one a stopped process never saw.
fn wait_if_stopped(pid: u32, signal: Signal) -> anyhow::Result<()> {
    if signal == Signal::SIGSTOP {
        ensure!(
            wait_until(STOPPED_TIMEOUT, || proc::is_stopped(pid)),
            "{pid} not stopped {STOPPED_TIMEOUT:?} after SIGSTOP"
        );
    }
    Ok(())
}
