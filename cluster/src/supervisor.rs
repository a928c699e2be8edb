//! Starting, watching and replacing the workers.
//!
//! One task per worker slot spawns a worker, reads its channel and waits for
//! its exit; when the worker dies it starts a successor in the same slot. The
//! mode's master loop receives what happens as [`Event`]s from
//! [`Supervisor::next_event`], which also prints the `ready` and `respawn`
//! lines, so the master has seen a worker before any client can learn of it.
//!
//! # Alive, and saying only what it should
//!
//! The slot task pings its worker (`Ping`, answered by the worker's event
//! loop with `Pong`) every quarter of `--worker-timeout`, at most every
//! second; a worker not heard from for `--worker-timeout` is stuck (stopped,
//! deadlocked, computing forever) and is killed with SIGKILL, then replaced
//! like any dead worker (unicorn's worker `timeout`).
//!
//! A master that steers new connections by health (`handoff --pass reuseport
//! --steer health`) asks for more ([`WorkerFlags::eject_after`]): the slot
//! task then pings at that pace, and reports a worker whose pong is that
//! late ([`Event::Late`]) and the pong that ends it ([`Event::Answered`]),
//! in order with the slot's other events. Killing stays as it was: after
//! `--worker-timeout` without an answer, counted from the same first
//! unanswered ping.
//!
//! Every frame a worker sends answers something: `Ready` once, a `Pong` per
//! ping, an `Ack` or a `Reject` per connection handed to it. A worker that
//! sends anything else (a kind it has no reason to send, a second `Ready`, a
//! pong or an acknowledgement of nothing) is killed at its first such frame,
//! with one log line, and replaced: so a flood cannot grow the master's
//! memory or take its CPU. The slot task checks what it can; the mode's
//! master checks the `seq` of acknowledgements and calls
//! [`Supervisor::kill_misbehaving`]. The events travel to the master in a
//! bounded queue: a slot task that finds it full waits, and stops reading
//! its worker's channel meanwhile.
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

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::announce::{self, WorkerInfo};
use crate::channel::{self, Channel, ChannelError, Message};
use crate::cli::Setup;
use crate::rlimit::{self, NofileLimit};
use crate::upgrade::ReadyLine;
use crate::worker::CHANNEL_FD_ENV;
use clap::ValueEnum;

use crate::{Accept, Mode, Pass};

/// The longest a crash-looping slot waits before its next respawn; a worker
/// that ran for at least this long is replaced at once.
const MAX_RESPAWN_DELAY: Duration = Duration::from_secs(1);

/// The first wait after a worker that died young; doubled on each quick death.
const MIN_RESPAWN_DELAY: Duration = Duration::from_millis(50);

/// How many events may wait for the master. Enough for every slot's burst
/// (spawned, ready, a few acknowledgements) under load; a bound, so that no
/// worker can make the master queue without limit.
const EVENT_QUEUE_LEN: usize = 256;

/// The longest time between two pings of one worker. A quarter of
/// `--worker-timeout` would be rare for long timeouts; one frame a second
/// costs nothing, and a stuck worker is then caught within about
/// `--worker-timeout`, whatever its length.
const MAX_PING_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest time between two pings of one worker: a quarter of the
/// shortest `--worker-timeout` ([`crate::cli::MIN_WORKER_TIMEOUT`]).
const MIN_PING_INTERVAL: Duration = Duration::from_millis(25);

/// How long after the stop's deadline a worker still running is SIGKILLed:
/// the worker's own grace ends at the deadline (its `Stop` says what is
/// left), and it then needs a moment to close its connections and exit,
/// more on a loaded machine.
pub const KILL_AFTER_DEADLINE: Duration = Duration::from_millis(500);

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
    /// The worker in `slot` is serving; `port` is its own port (`proxy`),
    /// `path` its own Unix socket (`proxy --upstream unix`).
    Ready {
        /// Which worker slot.
        slot: usize,
        /// The worker's pid.
        pid: u32,
        /// The worker's own port, if it has one.
        port: Option<u16>,
        /// The worker's own Unix socket, if it has one.
        path: Option<PathBuf>,
    },
    /// An `Ack` or a `Reject` from a `handoff-socket` worker. The supervisor
    /// has checked that the worker may send that kind; whether the `seq` is
    /// one the worker holds is for the mode's master to check (and to call
    /// [`Supervisor::kill_misbehaving`] if not).
    Message {
        /// Which worker slot.
        slot: usize,
        /// What the worker said.
        message: Message,
    },
    /// The worker in `slot` has left a ping unanswered for longer than
    /// [`WorkerFlags::eject_after`] (sent only when it is set): it may be
    /// stopped or busy; new connections should go elsewhere. Once per spell:
    /// [`Event::Answered`] ends it, unless the worker exits first.
    Late {
        /// Which worker slot.
        slot: usize,
        /// The worker's pid.
        pid: u32,
    },
    /// The worker in `slot`, reported [`Event::Late`], has answered.
    Answered {
        /// Which worker slot.
        slot: usize,
        /// The worker's pid.
        pid: u32,
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

/// What one master asks of its workers besides their mode: the hidden flags
/// of the `worker` subcommand that only some modes use, and how closely
/// the master watches them.
#[derive(Debug, Clone, Default)]
pub struct WorkerFlags {
    /// `--accept`: how the workers of `handoff-listener` accept.
    pub accept: Option<Accept>,
    /// `--upstream-dir`: the folder where the workers of `proxy --upstream
    /// unix` listen ([`crate::worker::upstream_path`]).
    pub upstream_dir: Option<PathBuf>,
    /// `--eject-after` (`handoff --steer health`): ping each worker at this
    /// pace (when it is shorter than the usual one) and report a pong this
    /// late as [`Event::Late`]. `None`: no such events, the usual pace.
    pub eject_after: Option<Duration>,
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
    /// Whether workers are handed connections (`handoff-socket`), and so may
    /// send `Ack` and `Reject`.
    takes_connections: bool,
    /// `proxy --upstream unix`: the folder of the workers' Unix sockets.
    upstream_dir: Option<PathBuf>,
    /// `--worker-timeout`: how long a worker may leave a ping unanswered.
    worker_timeout: Duration,
    /// `--eject-after`: how late a pong makes a worker [`Event::Late`].
    eject_after: Option<Duration>,
}

/// What the supervisor knows of one slot, for the `ready`/`respawn` lines.
#[derive(Debug, Default, Clone)]
struct Slot {
    /// The worker currently serving this slot, once ready.
    serving: Option<WorkerInfo>,
    /// The last worker of this slot that served and has died, so the
    /// `respawn` line can name it.
    dead: Option<u32>,
    /// The worker of this slot as the events tell it: from `Spawned` to
    /// `Exited`.
    worker: Option<u32>,
    /// That worker is being killed for misbehaving: its messages still
    /// queued are dropped, and it is not reported twice.
    condemned: bool,
}

/// The set of worker slots and the tasks that keep them filled.
pub struct Supervisor {
    slots: Vec<Slot>,
    /// The `ready` line has been printed (every slot served once).
    announced: bool,
    /// Where the `ready` line goes (the upgrade task prints it), until sent.
    ready_line: Option<ReadyLine>,
    events: mpsc::Receiver<Event>,
    /// One per slot: a worker the master wants dead, which the slot's task
    /// kills (by pid, so that a request meant for a worker that has just
    /// died never kills its successor).
    kills: Vec<watch::Sender<Option<Kill>>>,
    /// The cluster's stop: `None` while it serves, then the deadline by which
    /// every worker must have finished (one for the whole stop).
    stop: watch::Sender<Option<Instant>>,
    tasks: JoinSet<()>,
}

impl Supervisor {
    /// Starts `--workers` workers for a master of `mode`; each worker is
    /// told the mode (and `flags`: how to accept on a shared listener, where
    /// to listen as a proxy's upstream), and serves as it requires. Must be
    /// called from the main thread, on a current-thread runtime. When every
    /// worker first serves, their list goes to `ready_line`, whose task
    /// prints the `ready` line (see [`crate::upgrade`]).
    pub fn start(
        setup: &Setup,
        mode: Mode,
        ready_line: ReadyLine,
        flags: WorkerFlags,
    ) -> std::io::Result<Supervisor> {
        let (tx, events) = mpsc::channel(EVENT_QUEUE_LEN);
        let (stop, _) = watch::channel(None);
        let header_timeout = humantime::format_duration(setup.args.header_timeout);
        let init_delay = humantime::format_duration(setup.args.init_delay);
        let grace = humantime::format_duration(setup.args.grace);
        let mut args: Vec<String> = [
            "worker",
            "--mode",
            mode.name(),
            "--header-timeout",
            &header_timeout.to_string(),
            "--init-delay",
            &init_delay.to_string(),
            "--grace",
            &grace.to_string(),
        ]
        .map(String::from)
        .to_vec();
        if let Some(accept) = flags.accept.and_then(|accept| accept.to_possible_value()) {
            args.extend(["--accept".to_string(), accept.get_name().to_string()]);
        }
        if let Some(dir) = &flags.upstream_dir {
            args.extend(["--upstream-dir".to_string(), dir.display().to_string()]);
        }
        let spec = Arc::new(Spec {
            exe: std::env::current_exe()?,
            args,
            nofile: setup.worker_nofile,
            takes_connections: mode == Mode::Handoff(Pass::Socket),
            upstream_dir: flags.upstream_dir,
            worker_timeout: setup.args.worker_timeout,
            eject_after: flags.eject_after,
        });
        let workers = usize::from(setup.args.workers);
        let mut tasks = JoinSet::new();
        let mut kills = Vec::with_capacity(workers);
        for slot in 0..workers {
            let (kill, killed) = watch::channel(None);
            kills.push(kill);
            tasks.spawn(keep_slot_filled(
                slot,
                spec.clone(),
                tx.clone(),
                killed,
                stop.subscribe(),
            ));
        }
        Ok(Supervisor {
            slots: vec![Slot::default(); workers],
            announced: false,
            ready_line: Some(ready_line),
            events,
            kills,
            stop,
            tasks,
        })
    }

    /// The next event of any slot, after printing the `ready` line (when the
    /// last slot first becomes ready) or a `respawn` line (when a successor is
    /// ready). The messages of a worker being killed for misbehaving are
    /// dropped. Cancel-safe: it waits only on the queue.
    pub async fn next_event(&mut self) -> Event {
        loop {
            let event = self
                .events
                .recv()
                .await
                .expect("slot tasks live as long as the supervisor");
            if let Event::Message { slot, .. } = event {
                if self.slots[slot].condemned {
                    continue;
                }
            }
            self.note(&event);
            return event;
        }
    }

    /// Kills the worker of `slot` (the one whose events the master is
    /// reading) for sending a frame it had no reason to send, `cause`: logged
    /// once; the rest of what it sent is dropped, and it is replaced like any
    /// dead worker. For the checks only the mode's master can make (an
    /// acknowledgement of a handoff that worker does not have).
    pub fn kill_misbehaving(&mut self, slot: usize, cause: &str) {
        let state = &mut self.slots[slot];
        let Some(pid) = state.worker.filter(|_| !state.condemned) else {
            return;
        };
        state.condemned = true;
        tracing::error!(worker = pid, cause, "worker misbehaves; killing it");
        self.kills[slot].send_replace(Some(Kill {
            pid,
            misbehaved: true,
        }));
    }

    /// Keeps the slots' state and prints the stdout lines for `event`.
    fn note(&mut self, event: &Event) {
        match *event {
            Event::Spawned { slot, pid, .. } => {
                let state = &mut self.slots[slot];
                state.worker = Some(pid);
                state.condemned = false;
            }
            Event::Ready {
                slot,
                pid,
                port,
                ref path,
            } => {
                let state = &mut self.slots[slot];
                state.serving = Some(WorkerInfo {
                    pid,
                    port,
                    path: path.clone(),
                });
                if let Some(old_pid) = state.dead.take().filter(|_| self.announced) {
                    announce::respawn(old_pid, pid, port, path.clone());
                } else if !self.announced && self.slots.iter().all(|s| s.serving.is_some()) {
                    self.announced = true;
                    let workers = self
                        .slots
                        .iter()
                        .filter_map(|s| s.serving.clone())
                        .collect();
                    if let Some(ready_line) = self.ready_line.take() {
                        ready_line.send(workers);
                    }
                }
            }
            Event::Exited { slot, pid } => {
                let state = &mut self.slots[slot];
                if state.serving.take().is_some() {
                    state.dead = Some(pid);
                }
                state.worker = None;
                state.condemned = false;
            }
            Event::Message { .. } | Event::Late { .. } | Event::Answered { .. } => {}
        }
    }

    /// Kills the worker of `slot` now, for `cause` (logged), without
    /// judging it: a master at its stop uses it on a worker that has held
    /// handoffs unacknowledged too long, so that its connections go to
    /// another worker (its exit event says when). Replaced like any dead
    /// worker.
    pub fn kill_stalled(&mut self, slot: usize, cause: &str) {
        let Some(pid) = self.slots[slot].worker else {
            return;
        };
        tracing::warn!(worker = pid, cause, "killing a stalled worker");
        self.kills[slot].send_replace(Some(Kill {
            pid,
            misbehaved: false,
        }));
    }

    /// Stops every worker: `Stop` over its channel with what is left of the
    /// grace period until `deadline` (it finishes the requests in flight by
    /// then), SIGKILL for one still alive [`KILL_AFTER_DEADLINE`] later, and
    /// reaps them all. One deadline for the whole stop, so that a master's
    /// stop takes the grace period however many steps it has (issue 19: a
    /// stalled worker made a handover take 11 s, two grace periods).
    pub async fn shutdown(mut self, deadline: Instant) {
        // Nobody reads the events any more: a slot task waiting for room in
        // the queue must not wait for ever.
        self.events.close();
        self.stop.send_replace(Some(deadline));
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The master's verdict on one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kill {
    /// The worker to kill.
    pid: u32,
    /// It sent what it had no reason to send: what else it sent is not
    /// heard. A stalled worker is not misbehaving: what it sent before its
    /// death (an acknowledgement) still counts.
    misbehaved: bool,
}

/// The cluster's stop as a slot task sees it: its deadline once the master
/// has asked for it.
struct Stopping(watch::Receiver<Option<Instant>>);

impl Stopping {
    /// The deadline, if the stop has begun.
    fn deadline(&self) -> Option<Instant> {
        *self.0.borrow()
    }

    /// Waits for the stop and returns its deadline. Cancel-safe.
    async fn begun(&mut self) -> Instant {
        // Copied out at once: the borrow holds the channel's lock.
        let deadline = self.0.wait_for(Option::is_some).await.map(|d| *d);
        match deadline {
            Ok(deadline) => deadline.expect("waited for Some"),
            // The supervisor is gone without a stop: nothing to wait for.
            Err(_) => std::future::pending().await,
        }
    }
}

/// Keeps one slot filled until the cluster stops: spawn, serve, reap, respawn.
async fn keep_slot_filled(
    slot: usize,
    spec: Arc<Spec>,
    events: mpsc::Sender<Event>,
    mut kills: watch::Receiver<Option<Kill>>,
    stop: watch::Receiver<Option<Instant>>,
) {
    let mut stop = Stopping(stop);
    let mut delay = Duration::ZERO;
    while stop.deadline().is_none() {
        let started = Instant::now();
        match spawn_worker(&spec) {
            Ok((child, channel)) => {
                let watch = Watch::new(slot, &child, &spec);
                watch
                    .run(child, channel, &events, &mut kills, &mut stop)
                    .await;
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
            _ = stop.begun() => {}
        }
    }
}

/// Sends `event` to the master, waiting while the queue is full. After
/// [`Supervisor::shutdown`] nobody reads it, and the event is dropped.
async fn report(events: &mpsc::Sender<Event>, event: Event) {
    let _ = events.send(event).await;
}

/// Sleeps until `at`; forever if there is no `at`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// One worker, watched from its start to its exit: what it may still say,
/// and when it was last heard from.
struct Watch {
    slot: usize,
    pid: u32,
    /// It has not said `Ready` yet (it says it once).
    starting: bool,
    /// It may acknowledge or reject connections (`handoff-socket`).
    takes_connections: bool,
    /// Its own Unix socket, once it serves (`proxy --upstream unix`).
    upstream_path: Option<PathBuf>,
    /// The ping.
    liveness: Liveness,
    /// The master's end is still open (no end of file yet).
    channel_open: bool,
    /// SIGKILL sent (stuck or misbehaving): no more pings, no deadline.
    killed: bool,
    /// Reported [`Event::Late`], and not heard from since.
    late: bool,
    /// It has not misbehaved: what it says still counts.
    trusted: bool,
}

impl Watch {
    fn new(slot: usize, child: &Child, spec: &Spec) -> Watch {
        let pid = child.id().expect("a child not yet waited for has a pid");
        Watch {
            slot,
            pid,
            starting: true,
            upstream_path: spec
                .upstream_dir
                .as_deref()
                .map(|dir| crate::worker::upstream_path(dir, pid)),
            takes_connections: spec.takes_connections,
            liveness: Liveness::new(spec.worker_timeout, spec.eject_after),
            channel_open: true,
            killed: false,
            late: false,
            trusted: true,
        }
    }

    /// Relays the worker's messages as events until it exits, pings it,
    /// kills it if it is stuck or misbehaves, and stops it when the cluster
    /// stops.
    async fn run(
        mut self,
        mut child: Child,
        channel: Arc<Channel>,
        events: &mpsc::Sender<Event>,
        kills: &mut watch::Receiver<Option<Kill>>,
        stop: &mut Stopping,
    ) {
        let (slot, pid) = (self.slot, self.pid);
        let spawned = Event::Spawned {
            slot,
            pid,
            channel: channel.clone(),
        };
        report(events, spawned).await;
        let status = loop {
            // Biased, in this order: a worker flooding its channel must not
            // starve its own exit, its kill or its deadline.
            tokio::select! {
                biased;
                deadline = stop.begun() => {
                    break stop_worker(pid, &mut child, &channel, deadline).await;
                }
                status = child.wait() => {
                    // What it sent before it exited is still queued (the
                    // kernel keeps a closed peer's frames): read it all before
                    // reporting the exit, or an acknowledgement would be lost
                    // and its connection handed to a second worker.
                    if self.channel_open && self.trusted {
                        self.drain(&channel, events).await;
                    }
                    break status;
                }
                Ok(()) = kills.changed() => {
                    // The master's verdict, logged where it was given; a
                    // verdict on this slot's previous worker is not for us.
                    let verdict = *kills.borrow_and_update();
                    if let Some(kill) = verdict.filter(|kill| kill.pid == pid) {
                        self.kill(&mut child, kill.misbehaved);
                    }
                }
                () = sleep_until(self.liveness.deadline()), if !self.killed => {
                    // A master that did not get the CPU for a while (a loaded
                    // machine) finds its deadline and the pong that beat it
                    // ready at once: read what is queued before judging.
                    self.read_queued(&channel, &mut child, events).await;
                    if !self.killed && self.liveness.overdue() {
                        let timeout = self.liveness.timeout;
                        tracing::error!(
                            worker = pid,
                            ?timeout,
                            "worker did not answer a ping within --worker-timeout; killing it"
                        );
                        self.kill(&mut child, false);
                    }
                }
                () = sleep_until(self.liveness.late_at()), if !self.killed && !self.late => {
                    // Read what is queued first, as before a kill.
                    self.read_queued(&channel, &mut child, events).await;
                    if !self.killed && !self.late && self.liveness.is_late() {
                        self.late = true;
                        tracing::debug!(worker = pid, "worker's pong is late; reported");
                        report(events, Event::Late { slot, pid }).await;
                    }
                }
                () = sleep_until(self.liveness.next_ping()), if !self.killed && self.channel_open => {
                    self.liveness.ping(pid, &channel);
                }
                received = channel.recv(), if self.channel_open && self.trusted => {
                    self.on_received(received, &mut child, events).await;
                }
            }
        };
        match status {
            Ok(status) if stop.deadline().is_some() => {
                tracing::debug!(worker = pid, %status, "worker stopped")
            }
            Ok(status) => tracing::warn!(worker = pid, %status, "worker died; respawning"),
            Err(err) => tracing::error!(worker = pid, cause = %err, "waiting for worker"),
        }
        report(events, Event::Exited { slot, pid }).await;
    }

    /// Relays what the worker has already sent (without waiting), as
    /// [`Self::on_received`] does; bounded by the channel's buffer.
    async fn read_queued(
        &mut self,
        channel: &Channel,
        child: &mut Child,
        events: &mpsc::Sender<Event>,
    ) {
        while self.channel_open && self.trusted {
            match channel.try_recv() {
                Ok(Some(frame)) => self.on_received(Ok(frame), child, events).await,
                Ok(None) => break,
                Err(err) => self.on_received(Err(err), child, events).await,
            }
        }
    }

    /// Relays what the worker said, or kills it for saying it.
    async fn on_received(
        &mut self,
        received: Result<(Message, Vec<OwnedFd>), ChannelError>,
        child: &mut Child,
        events: &mpsc::Sender<Event>,
    ) {
        let pid = self.pid;
        match received {
            Ok((message, _fds)) => match self.judge(message) {
                Ok(Some(event)) => report(events, event).await,
                Ok(None) => {}
                Err(cause) => {
                    let frame = tracing::field::debug(message);
                    tracing::error!(worker = pid, frame, cause, "worker misbehaves; killing it");
                    self.kill(child, true);
                }
            },
            // The worker is exiting; its exit status follows.
            Err(ChannelError::Closed) => self.channel_open = false,
            // A worker that breaks the protocol cannot be trusted with
            // connections: replace it.
            Err(err) => {
                tracing::error!(worker = pid, cause = %err, "bad message from worker; killing it");
                self.kill(child, true);
            }
        }
    }

    /// SIGKILL, once; a worker that `misbehaved` is not heard any more.
    fn kill(&mut self, child: &mut Child, misbehaved: bool) {
        self.trusted &= !misbehaved;
        if !self.killed {
            self.killed = true;
            let _ = child.start_kill();
        }
    }

    /// Reads what a worker that has exited left in its channel, up to the
    /// end of file (bounded: it sends no more).
    async fn drain(&mut self, channel: &Channel, events: &mpsc::Sender<Event>) {
        while let Ok(Some((message, _fds))) = channel.try_recv() {
            match self.judge(message) {
                Ok(Some(event)) => report(events, event).await,
                Ok(None) => {}
                Err(cause) => {
                    let (worker, frame) = (self.pid, tracing::field::debug(message));
                    tracing::error!(worker, frame, cause, "worker misbehaved before it exited");
                    return;
                }
            }
        }
    }

    /// Whether the worker had a reason to send `message`, and the event it
    /// makes for the master, if any: `Ready` once, the `Pong` of the ping
    /// outstanding, `Ack` and `Reject` once serving in `handoff-socket` (their
    /// `seq` is the dispatcher's to check). Else the reason to kill it.
    fn judge(&mut self, message: Message) -> Result<Option<Event>, &'static str> {
        let (slot, pid) = (self.slot, self.pid);
        match message {
            Message::Ready { port } if self.starting => {
                self.starting = false;
                let path = self.upstream_path.clone();
                Ok(Some(Event::Ready {
                    slot,
                    pid,
                    port,
                    path,
                }))
            }
            Message::Ready { .. } => Err("a second Ready"),
            Message::Pong { seq } if self.liveness.answered(seq) => {
                let late = std::mem::take(&mut self.late);
                Ok(late.then_some(Event::Answered { slot, pid }))
            }
            Message::Pong { .. } => Err("a pong of no outstanding ping"),
            Message::Ack { .. } | Message::Reject { .. }
                if self.takes_connections && !self.starting =>
            {
                Ok(Some(Event::Message { slot, message }))
            }
            Message::Ack { .. } | Message::Reject { .. } => {
                Err("an answer about connections it was never handed")
            }
            Message::Connection { .. }
            | Message::Connections { .. }
            | Message::Listener
            | Message::Stop { .. }
            | Message::Ping { .. } => Err("a message only the master sends"),
        }
    }
}

/// The master's side of the ping: which ping is unanswered, when to send the
/// next, and since when the worker has been asked without answering.
///
/// The deadline runs from the master's first ping attempt since the last
/// answer (sent, or found the channel full), not from the answer itself: a
/// master that did not get the CPU for longer than `--worker-timeout` (a
/// loaded machine) has not asked, and must not kill a worker it never
/// pinged.
struct Liveness {
    /// `--worker-timeout`.
    timeout: Duration,
    /// `--eject-after`: how long a ping may stay unanswered before the
    /// worker counts as late (not dead); none without `--steer health`.
    late_after: Option<Duration>,
    /// Between two pings: a quarter of the timeout, within
    /// [`MIN_PING_INTERVAL`]..=[`MAX_PING_INTERVAL`], or `late_after` if
    /// that is shorter (a stall must be seen within about twice it).
    interval: Duration,
    /// The `seq` of the last ping sent.
    seq: u64,
    /// The last ping sent and not answered yet; one at a time.
    outstanding: Option<u64>,
    /// The first ping attempt since the worker last answered; none while
    /// nothing is asked.
    asked_at: Option<Instant>,
    /// When to send the next ping.
    next_ping_at: Instant,
}

impl Liveness {
    fn new(timeout: Duration, late_after: Option<Duration>) -> Liveness {
        let now = Instant::now();
        let usual = (timeout / 4).clamp(MIN_PING_INTERVAL, MAX_PING_INTERVAL);
        let interval = late_after.map_or(usual, |late_after| usual.min(late_after));
        Liveness {
            timeout,
            late_after,
            interval,
            seq: 0,
            outstanding: None,
            asked_at: None,
            next_ping_at: now + interval,
        }
    }

    /// When the worker is overdue: `timeout` after the first ping it left
    /// unanswered; never while nothing is asked, or for a timeout beyond what
    /// the clock can count.
    fn deadline(&self) -> Option<Instant> {
        self.asked_at?.checked_add(self.timeout)
    }

    /// Whether the deadline has passed.
    fn overdue(&self) -> bool {
        self.deadline()
            .is_some_and(|deadline| deadline <= Instant::now())
    }

    /// When the worker counts as late: `late_after` after the first ping
    /// it left unanswered; never without `late_after` or while nothing is
    /// asked.
    fn late_at(&self) -> Option<Instant> {
        self.asked_at?.checked_add(self.late_after?)
    }

    /// Whether it is late now.
    fn is_late(&self) -> bool {
        self.late_at().is_some_and(|at| at <= Instant::now())
    }

    /// When to send the next ping; none while one is unanswered.
    fn next_ping(&self) -> Option<Instant> {
        self.outstanding.is_none().then_some(self.next_ping_at)
    }

    /// Sends the next ping, without waiting: a worker whose channel is full
    /// is not reading it, and gets no ping until it has room again.
    fn ping(&mut self, pid: u32, channel: &Channel) {
        let now = Instant::now();
        self.next_ping_at = now + self.interval;
        self.asked_at.get_or_insert(now);
        let seq = self.seq + 1;
        match channel.try_send(Message::Ping { seq }, None) {
            Ok(()) => {
                self.seq = seq;
                self.outstanding = Some(seq);
            }
            Err(ChannelError::Full) => {}
            // The worker is gone or going; its exit follows.
            Err(err) => tracing::debug!(worker = pid, cause = %err, "cannot ping"),
        }
    }

    /// Whether `seq` answers the ping outstanding; if so, the worker is alive
    /// now.
    fn answered(&mut self, seq: u64) -> bool {
        if self.outstanding != Some(seq) {
            return false;
        }
        self.outstanding = None;
        self.asked_at = None;
        true
    }
}

/// Asks a worker to stop by `deadline` and waits for it; SIGKILL
/// [`KILL_AFTER_DEADLINE`] after it.
async fn stop_worker(
    pid: u32,
    child: &mut Child,
    channel: &Channel,
    deadline: Instant,
) -> std::io::Result<std::process::ExitStatus> {
    let grace = deadline.saturating_duration_since(Instant::now());
    let grace_ms = u32::try_from(grace.as_millis()).unwrap_or(u32::MAX);
    if let Err(err) = channel.try_send(Message::Stop { grace_ms }, None) {
        tracing::debug!(worker = pid, cause = %err, "cannot send Stop; sending SIGTERM");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    // The worker's grace ends at the deadline; give it a moment beyond.
    let kill_at = deadline + KILL_AFTER_DEADLINE;
    match tokio::time::timeout_at(kill_at.into(), child.wait()).await {
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
