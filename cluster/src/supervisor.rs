//! Starting, watching and replacing the workers.
//!
//! One task per worker slot spawns a worker, reads its channel and waits for
//! its exit; when the worker dies it starts a successor in the same slot. The
//! mode's master loop receives what happens as [`Event`]s from
//! [`Supervisor::next_event`], which also prints the `ready` and `respawn`
//! lines, so the master has seen a worker before any client can learn of it.
//!
//! # Workers die with the master
//!
//! Three layers, because a master killed with SIGKILL runs no cleanup code:
//! `PR_SET_PDEATHSIG` makes the kernel send SIGKILL to the worker when the
//! thread that forked it exits; a `getppid()` check right after closes the race
//! of a master that died before the `prctl`; and a worker exits when its channel
//! reaches end-of-file. The death signal follows the *thread* that forked, so
//! workers are spawned from the main thread only (the master runs a
//! current-thread runtime; `spawn_worker` checks).

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::announce::{self, WorkerInfo};
use crate::channel::{self, Channel, ChannelError, Message};
use crate::master::Setup;
use crate::rlimit::{self, NofileLimit};
use crate::worker::CHANNEL_FD_ENV;
use crate::{GRACE_PERIOD, Mode};

/// The longest a crash-looping slot waits before its next respawn; a worker
/// that ran for at least this long is replaced at once.
const MAX_RESPAWN_DELAY: Duration = Duration::from_secs(1);

/// The first wait after a worker that died young; doubled on each quick death.
const MIN_RESPAWN_DELAY: Duration = Duration::from_millis(50);

/// What happened to a worker, in the order it happened for that slot. These
/// stay inside the master; what it tells the world on stdout is in
/// [`crate::announce`].
#[derive(Debug)]
pub enum Event {
    /// A worker process started in `slot`; it is not serving yet. The master
    /// keeps `channel` to send it sockets (a listener right now, in the
    /// listener modes).
    Spawned {
        /// Which worker slot.
        slot: usize,
        /// The new worker's pid.
        pid: u32,
        /// The master's end of the worker's channel.
        channel: Arc<Channel>,
    },
    /// The worker in `slot` is serving; `port` is its own port (`proxy`).
    Ready {
        /// Which worker slot.
        slot: usize,
        /// The worker's pid.
        pid: u32,
        /// The worker's own port, if it has one.
        port: Option<u16>,
    },
    /// A message from the worker other than `Ready` (acknowledgements).
    Message {
        /// Which worker slot.
        slot: usize,
        /// What the worker said.
        message: Message,
    },
    /// The worker in `slot` exited (a successor is being started unless the
    /// cluster is stopping).
    Exited {
        /// Which worker slot.
        slot: usize,
        /// The pid that exited.
        pid: u32,
    },
}

/// How every worker of this cluster is started.
#[derive(Debug, Clone)]
struct Spec {
    /// This binary, re-executed as each worker. Resolved once, at start: a
    /// path (not `/proc/self/exe`) so that workers show under the binary's
    /// name in `ps` and `/proc/<pid>/comm`.
    exe: PathBuf,
    /// The hidden subcommand and its flags (see `worker::WorkerArgs`).
    args: Vec<String>,
    /// RLIMIT_NOFILE (soft, hard) the master was started with: workers get it
    /// back, so `--max-fds` limits the master only.
    nofile: NofileLimit,
}

/// What the supervisor knows of one slot, for the `ready`/`respawn` lines.
#[derive(Debug, Default, Clone)]
struct Slot {
    /// The worker currently serving this slot, once ready.
    serving: Option<WorkerInfo>,
    /// The last worker of this slot that served and has died, so the
    /// `respawn` line can name it.
    dead: Option<u32>,
}

/// The set of worker slots and the tasks that keep them filled.
pub struct Supervisor {
    mode: Mode,
    listen: SocketAddr,
    slots: Vec<Slot>,
    /// The `ready` line has been printed (every slot served once).
    announced: bool,
    events: mpsc::UnboundedReceiver<Event>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Supervisor {
    /// Starts `--workers` workers for a master of `mode` listening on
    /// `listen`; each worker is told the mode, and serves as it requires.
    /// Must be called from the main thread, on a current-thread runtime.
    pub fn start(setup: &Setup, mode: Mode, listen: SocketAddr) -> std::io::Result<Supervisor> {
        let (tx, events) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let header_timeout = humantime::format_duration(setup.args.header_timeout);
        let args = [
            "worker",
            "--mode",
            mode.name(),
            "--header-timeout",
            &header_timeout.to_string(),
        ];
        let spec = Arc::new(Spec {
            exe: std::env::current_exe()?,
            args: args.map(String::from).to_vec(),
            nofile: setup.worker_nofile,
        });
        let workers = usize::from(setup.args.workers);
        let mut tasks = JoinSet::new();
        for slot in 0..workers {
            tasks.spawn(keep_slot_filled(
                slot,
                spec.clone(),
                tx.clone(),
                stop.clone(),
            ));
        }
        Ok(Supervisor {
            mode,
            listen,
            slots: vec![Slot::default(); workers],
            announced: false,
            events,
            stop,
            tasks,
        })
    }

    /// The next event of any slot, after printing the `ready` line (when the
    /// last slot first becomes ready) or a `respawn` line (when a successor is
    /// ready).
    pub async fn next_event(&mut self) -> Event {
        let event = self
            .events
            .recv()
            .await
            .expect("slot tasks live as long as the supervisor");
        match event {
            Event::Ready { slot, pid, port } => {
                let state = &mut self.slots[slot];
                state.serving = Some(WorkerInfo { pid, port });
                if let Some(old_pid) = state.dead.take().filter(|_| self.announced) {
                    announce::respawn(old_pid, pid, port);
                } else if !self.announced && self.slots.iter().all(|s| s.serving.is_some()) {
                    self.announced = true;
                    let workers = self
                        .slots
                        .iter()
                        .filter_map(|s| s.serving.clone())
                        .collect();
                    announce::ready(self.mode, self.listen, workers);
                }
            }
            Event::Exited { slot, pid } => {
                let state = &mut self.slots[slot];
                if state.serving.take().is_some() {
                    state.dead = Some(pid);
                }
            }
            _ => {}
        }
        event
    }

    /// Stops every worker: `Stop` over its channel (it finishes the requests in
    /// flight), SIGKILL for one still alive after the grace period, and reaps
    /// them all.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Keeps one slot filled until the cluster stops: spawn, serve, reap, respawn.
async fn keep_slot_filled(
    slot: usize,
    spec: Arc<Spec>,
    events: mpsc::UnboundedSender<Event>,
    stop: CancellationToken,
) {
    let mut delay = Duration::ZERO;
    while !stop.is_cancelled() {
        let started = Instant::now();
        match spawn_worker(&spec) {
            Ok((child, channel)) => {
                watch_worker(slot, child, channel, &events, &stop).await;
            }
            Err(err) => tracing::error!(slot, cause = %err, "cannot start a worker"),
        }
        // A worker that died young (or could not start) is probably going to
        // again: wait a little more each time, never more than a second.
        delay = if started.elapsed() >= MAX_RESPAWN_DELAY {
            Duration::ZERO
        } else {
            (delay * 2).clamp(MIN_RESPAWN_DELAY, MAX_RESPAWN_DELAY)
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => {}
        }
    }
}

/// Relays a worker's messages as events until it exits, and stops it when the
/// cluster stops.
async fn watch_worker(
    slot: usize,
    mut child: Child,
    channel: Arc<Channel>,
    events: &mpsc::UnboundedSender<Event>,
    stop: &CancellationToken,
) {
    let pid = child.id().expect("a child not yet waited for has a pid");
    let _ = events.send(Event::Spawned {
        slot,
        pid,
        channel: channel.clone(),
    });
    let mut channel_open = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            received = channel.recv(), if channel_open => match received {
                Ok((Message::Ready { port }, _)) => {
                    let _ = events.send(Event::Ready { slot, pid, port });
                }
                Ok((message, _)) => {
                    let _ = events.send(Event::Message { slot, message });
                }
                // The worker is exiting; its exit status follows.
                Err(ChannelError::Closed) => channel_open = false,
                // A worker that breaks the protocol cannot be trusted with
                // connections: replace it.
                Err(err) => {
                    tracing::error!(worker = pid, cause = %err, "bad message from worker; killing it");
                    channel_open = false;
                    let _ = child.start_kill();
                }
            },
            _ = stop.cancelled() => {
                break stop_worker(pid, &mut child, &channel).await;
            }
        }
    };
    match status {
        Ok(status) if stop.is_cancelled() => {
            tracing::debug!(worker = pid, %status, "worker stopped")
        }
        Ok(status) => tracing::warn!(worker = pid, %status, "worker died; respawning"),
        Err(err) => tracing::error!(worker = pid, cause = %err, "waiting for worker"),
    }
    let _ = events.send(Event::Exited { slot, pid });
}

/// Asks a worker to stop and waits for it; SIGKILL after the grace period.
async fn stop_worker(
    pid: u32,
    child: &mut Child,
    channel: &Channel,
) -> std::io::Result<std::process::ExitStatus> {
    if let Err(err) = channel.try_send(Message::Stop, None) {
        tracing::debug!(worker = pid, cause = %err, "cannot send Stop; sending SIGTERM");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    // The worker has its own grace period; give it a moment beyond that.
    match tokio::time::timeout(GRACE_PERIOD + Duration::from_secs(1), child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            tracing::warn!(worker = pid, "worker did not stop in time; SIGKILL");
            child.kill().await?;
            child.wait().await
        }
    }
}

/// Forks and execs one worker: this same binary, hidden `worker` subcommand,
/// channel fd in [`CHANNEL_FD_ENV`].
fn spawn_worker(spec: &Spec) -> std::io::Result<(Child, Arc<Channel>)> {
    // PR_SET_PDEATHSIG fires when the forking *thread* exits (see module doc).
    if nix::unistd::gettid() != nix::unistd::getpid() {
        return Err(std::io::Error::other(
            "workers must be spawned from the main thread",
        ));
    }
    let (master_end, worker_end): (OwnedFd, OwnedFd) = channel::pair()?;
    let worker_fd = worker_end.as_raw_fd();
    let master_pid = nix::unistd::getpid().as_raw() as libc::pid_t;
    let nofile = spec.nofile;
    let mut command = Command::new(&spec.exe);
    command
        .args(&spec.args)
        .env(CHANNEL_FD_ENV, worker_fd.to_string())
        .stdin(Stdio::null())
        // stdout carries the master's event lines only.
        .stdout(Stdio::null())
        .kill_on_drop(true);
    // SAFETY: the closure runs in the child between fork and exec, and calls
    // only async-signal-safe syscalls (prctl, getppid, fcntl, setrlimit), with
    // no allocation and no lock.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The master died before the prctl: the death signal will never come.
            if libc::getppid() != master_pid {
                return Err(std::io::Error::other("master died while spawning"));
            }
            // The channel fd was created close-on-exec; keep it in this child only.
            if libc::fcntl(worker_fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            rlimit::set_in_child(nofile)
        });
    }
    let child = command.spawn()?;
    // Our copy of the worker's end must go, or we would never see it close.
    drop(worker_end);
    Ok((child, Arc::new(Channel::new(master_end)?)))
}
