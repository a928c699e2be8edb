//! Zero-downtime upgrade: a new master takes the listening sockets of a
//! running one over SCM_RIGHTS, the same `sendmsg` that feeds the workers.
//!
//! # The two sides
//!
//! - `--upgrade-socket PATH`: the master listens on a `SOCK_SEQPACKET` Unix
//!   socket at PATH (mode 0600, removed at exit; a stale file left by a dead
//!   master is replaced, a path a live master serves is never taken). A peer
//!   whose uid (`SO_PEERCRED`) is not the master's own is refused, and only
//!   [`MAX_PENDING_PEERS`] peers may be connected and silent at once. A new
//!   master whose `--upgrade-socket` is the path of `--takeover` binds
//!   beside it (`.NAME.takeover-PID`) until the handover; if it dies
//!   SIGKILLed, the old master (it knows the pid from the `hello`) or the
//!   next new master removes that socket once the pid is dead.
//! - `--takeover PATH`: the new master connects there (the old master's
//!   uid checked, the same way), receives the listening socket(s) (one per
//!   worker slot in `reuseport`, so every accept queue survives) and checks
//!   each (a TCP socket listening at the address offered), starts its own
//!   workers on them, and once every worker serves commits with the old
//!   master, which stops accepting, closes its copies of the sockets and
//!   lets its workers finish what they hold. The sockets never stop
//!   listening, so no client is refused or reset.
//!
//! # The protocol (version 2)
//!
//! One JSON object per datagram (a `SOCK_SEQPACKET` keeps boundaries, as on
//! the channel), tagged by `kind`; a socket travels with its own `socket`
//! datagram in one `sendmsg`:
//!
//! 1. new → old: `hello` (`protocol`, `version`, `mode`, `workers`, `pid`,
//!    which must be the pid the kernel gives for the peer);
//! 2. old → new: `refused` (`reason`: another mode, another `--workers` in
//!    `reuseport`, a takeover already under way), or `offer` (`pid`,
//!    `listen`, `sockets`: how many follow) and that many `socket`
//!    (`index`), each with its fd;
//! 3. new → old: `waiting` every [`HEARTBEAT_INTERVAL`] while its workers
//!    start, then `ready` when every one serves;
//! 4. old → new: `released`: it agrees to step back;
//! 5. new → old: `taken`: it still lives. The handover happens when the old
//!    master reads this: it prints `handover` and stops.
//!
//! Every wait is bounded by [`ANSWER_TIMEOUT`]: a new master that says
//! nothing for that long (stopped, stuck, or a peer that only said hello)
//! gets `aborted` and the old master serves on (`handover_failed`); a
//! new master whose old one does not answer gives up.
//!
//! # Who owns the sockets (`Stage`)
//!
//! Until the commit both masters hold the sockets, and neither owns them
//! alone: a new master stopped or failing before it sent `taken` closes its
//! copies and leaves the sockets listening, as it found them (its
//! `shutdown(SHUT_RD)` would stop them listening for the old master too:
//! issue 19 found every later client refused after a SIGTERM to a new
//! master before its `ready`). An old master stopped during a takeover does
//! the same, for the new one. The commit has one point, the old master
//! reading `taken`, and both sides agree on which side of it they are:
//!
//! - a `ready` read late (the old master was stopped or slow) may come
//!   from a new master that has died since: `released` then fails (EPIPE)
//!   or `taken` never comes, and nothing is handed over;
//! - the old master calls a takeover off by sending `aborted` and then
//!   `shutdown(SHUT_RDWR)` on its end: a `taken` sent before is still
//!   queued (and read: the handover stands), one sent after fails with
//!   EPIPE (and the new master reads `aborted`: it gives up). The kernel
//!   takes the shutdown and the queueing under one lock.
//! - end of file without `aborted` means the old master is gone (it
//!   exited or was killed): the new master then owns the sockets alone.
//!
//! HAProxy (`-x`, `expose-fd listeners`), pingora (`transfer_fd`) and
//! ecdysis do the same: a Unix socket, SCM_RIGHTS, the old process serving
//! until the new one is ready. README.md ("Upgrades") compares them.
//!
//! # Layout
//!
//! - `wire.rs`: the datagrams; one end of a connection, every wait bounded.
//! - `endpoint.rs`: the upgrade socket a master serves.
//! - `offer.rs`: the old master's side of one connection.
//! - `takeover.rs`: the new master's side: connect, check, commit.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::Mode;
use crate::announce::{self, WorkerInfo};
use crate::cli::ClusterArgs;
use crate::episode::Episode;

mod endpoint;
mod offer;
mod takeover;
mod wire;

use endpoint::Endpoint;
use offer::{Offerer, Outcome};
use takeover::Takeover;

/// The `protocol` of a `hello`: a peer that sends anything else is not a
/// master of this suite.
pub const PROTOCOL: &str = "cluster-upgrade";

/// The protocol's version; a `hello` of another version is refused.
/// Version 2 added `waiting`, `taken` and `aborted`.
pub const VERSION: u32 = 2;

/// How long either side waits for the other's next datagram: an answer
/// during the exchange, and the new master's `waiting` while its workers
/// start. Generous for two processes on one machine; short enough that a
/// takeover that went wrong is known within seconds.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a new master tells the old one it still lives while its
/// workers start: well within [`ANSWER_TIMEOUT`], so that a loaded machine
/// does not make a live new master look silent.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// How long a new master waits for its workers to serve (beyond
/// `--init-delay`) before it gives the takeover up: it exits 1, and the old
/// master, which still serves, prints `handover_failed` (ecdysis's child
/// timeout). Far beyond a worker's start (milliseconds), so that only a
/// worker that cannot start at all (it crashes, is respawned, crashes)
/// hits it.
pub const TAKEOVER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many peers may be connected and not yet judged (their `hello` not
/// read) at once. A takeover needs one; a peer that connects and says
/// nothing holds its place for [`ANSWER_TIMEOUT`] at most. Beyond
/// this, a new peer is closed at once, so that a flood costs the master a
/// few fds, not one per peer (issue 19: 300 silent peers took a master
/// from 16 to 294 fds).
pub const MAX_PENDING_PEERS: usize = 4;

/// Who owns the listening sockets, as a master's stop must know it: only a
/// master that owns them alone may shut them down (`shutdown(SHUT_RD)`
/// acts on the socket, in every process that holds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// A new master before its commit: it holds copies of the old master's
    /// sockets and owns nothing.
    Taking,
    /// The sockets are this master's alone.
    Owner,
    /// An old master offering its sockets: the new master holds them too.
    Offering,
    /// An old master after the handover: the sockets are the new master's.
    HandedOver,
}

/// What the upgrade task and the master share.
struct Shared {
    stage: Mutex<Stage>,
    /// The sockets are lent by a service manager (socket activation), to
    /// this master or to one it took them over from: whoever owns them among
    /// the masters, none may shut them down.
    lent: bool,
    /// Copies of the listening sockets, to offer; closed at the stop.
    sockets: Mutex<Option<Vec<OwnedFd>>>,
}

impl Shared {
    fn stage(&self) -> Stage {
        *self.stage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_stage(&self, stage: Stage) {
        *self.stage.lock().unwrap_or_else(PoisonError::into_inner) = stage;
    }

    /// Takes the one takeover at a time: `Owner` becomes `Offering`; else
    /// the stage that prevents it.
    fn begin_offer(&self) -> Result<(), Stage> {
        let mut stage = self.stage.lock().unwrap_or_else(PoisonError::into_inner);
        match *stage {
            Stage::Owner => {
                *stage = Stage::Offering;
                Ok(())
            }
            other => Err(other),
        }
    }

    /// Duplicates of the sockets, for one offer.
    fn copies(&self) -> io::Result<Vec<OwnedFd>> {
        let sockets = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        sockets
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(OwnedFd::try_clone)
            .collect()
    }

    /// Closes our copies of the sockets.
    fn drop_sockets(&self) {
        let copies = self
            .sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(copies);
    }
}

/// A master's upgrade state from its start: the upgrade socket it will
/// serve, and the sockets it took over, if it did.
pub struct Upgrade {
    mode: Mode,
    workers: u16,
    /// `--upgrade-socket`, bound at start.
    endpoint: Option<Endpoint>,
    /// Where the endpoint goes once the sockets are ours: `--upgrade-socket`
    /// when it is the path of `--takeover` (bound beside it meanwhile).
    publish_at: Option<PathBuf>,
    takeover: Option<Takeover>,
    /// The sockets a service manager passed (socket activation), and their
    /// address, until the mode takes them.
    activated: Option<(SocketAddr, Vec<OwnedFd>)>,
    /// Whether the sockets came from a service manager to this master (the
    /// `ready` line says so).
    socket_activated: bool,
    /// The sockets are a service manager's, lent to this master or to the
    /// one it took them over from.
    lent: bool,
    /// `--init-delay`, which the new workers may take on top of
    /// [`TAKEOVER_READY_TIMEOUT`].
    init_delay: Duration,
    /// `--backlog`, for the listening socket this master binds itself.
    backlog: u16,
}

impl Upgrade {
    /// Binds `--upgrade-socket` and, with `--takeover`, takes the old
    /// master's sockets; `activated` are the sockets a service manager
    /// passed ([`crate::activation::take`]), if any. Before anything else
    /// starts: every failure is one line and exit 2.
    pub async fn prepare(
        args: &ClusterArgs,
        mode: Mode,
        activated: Option<(SocketAddr, Vec<OwnedFd>)>,
    ) -> anyhow::Result<Upgrade> {
        if activated.is_some() && args.takeover.is_some() {
            return Err(crate::cli::UsageError(
                "--takeover with socket activation (LISTEN_FDS): the sockets come from one or the other"
                    .into(),
            )
            .into());
        }
        let publish_at = match (&args.upgrade_socket, &args.takeover) {
            (Some(path), Some(old)) if same_path(path, old) => Some(path.clone()),
            _ => None,
        };
        let endpoint = match &args.upgrade_socket {
            Some(path) if publish_at.is_some() => Some(Endpoint::bind_beside(path)?),
            Some(path) => Some(Endpoint::bind(path)?),
            None => None,
        };
        let takeover = match &args.takeover {
            Some(path) => Some(Takeover::connect(path, mode, args.workers).await?),
            None => None,
        };
        let socket_activated = activated.is_some();
        let lent = socket_activated || takeover.as_ref().is_some_and(|t| t.lent);
        Ok(Upgrade {
            mode,
            workers: args.workers,
            endpoint,
            publish_at,
            takeover,
            activated,
            socket_activated,
            lent,
            init_delay: args.init_delay,
            backlog: args.backlog,
        })
    }

    /// The listening sockets taken over, or passed by a service manager, and
    /// their address; `None` otherwise (the mode binds its own).
    pub fn taken_sockets(&mut self) -> Option<(SocketAddr, Vec<OwnedFd>)> {
        if let Some(activated) = self.activated.take() {
            return Some(activated);
        }
        let takeover = self.takeover.as_mut()?;
        Some((takeover.listen, takeover.sockets.take()?))
    }

    /// The one listening socket of `proxy` and `handoff-socket`, whose master
    /// accepts: the one taken over, or else bound at `listen`; non-blocking.
    pub fn single_listener(&mut self, listen: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
        let socket = match self.taken_sockets() {
            Some((_, mut sockets)) => sockets.pop().context("one listening socket taken over")?,
            None => OwnedFd::from(crate::listen::bind(listen, false, self.backlog)?),
        };
        let listener = std::net::TcpListener::from(socket);
        listener.set_nonblocking(true)?;
        Ok(listener)
    }

    /// Starts the upgrade task, which prints the `ready` line (after the
    /// commit, on a takeover) and then serves the upgrade socket, offering
    /// `sockets` (duplicated here) to a successor. Returns the handle the
    /// master watches, and the sender the supervisor uses once every worker
    /// serves.
    pub fn start(
        self,
        listen: SocketAddr,
        sockets: &[OwnedFd],
    ) -> io::Result<(Handover, ReadyLine)> {
        let copies = if self.endpoint.is_some() {
            sockets
                .iter()
                .map(OwnedFd::try_clone)
                .collect::<io::Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let stage = if self.takeover.is_some() {
            Stage::Taking
        } else {
            Stage::Owner
        };
        let shared = Arc::new(Shared {
            stage: Mutex::new(stage),
            lent: self.lent,
            sockets: Mutex::new(Some(copies)),
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let (step_tx, step_rx) = oneshot::channel();
        let offerer = Offerer {
            mode: self.mode,
            workers: self.workers,
            listen,
            socket_activated: self.socket_activated,
            shared: shared.clone(),
        };
        let wait = TAKEOVER_READY_TIMEOUT + self.init_delay;
        let task = tokio::spawn(run(
            offerer,
            self.endpoint,
            self.publish_at,
            self.takeover,
            wait,
            ready_rx,
            step_tx,
        ));
        Ok((
            Handover {
                step: Some(step_rx),
                task,
                shared,
            },
            ReadyLine(ready_tx),
        ))
    }
}

/// Whether two paths name the same file (or are the same text).
fn same_path(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => a == b,
    }
}

/// Given to the supervisor: it sends the workers of the `ready` line here
/// when every worker first serves, and the upgrade task prints it.
#[derive(Debug)]
pub struct ReadyLine(oneshot::Sender<Vec<WorkerInfo>>);

impl ReadyLine {
    /// Every worker serves: the `ready` line may go out.
    pub fn send(self, workers: Vec<WorkerInfo>) {
        let _ = self.0.send(workers);
    }
}

/// What the upgrade asks of the master: to stop, in one of two ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A new master (`to_pid`) has taken the sockets over: stop without
    /// touching them, exit 0.
    HandedOver {
        /// The new master.
        to_pid: u32,
    },
    /// This master's takeover failed (`reason`) before it owned anything:
    /// stop without touching the sockets (the old master serves on), then
    /// exit 1 with `reason`.
    GaveUp {
        /// Why, as the one line on stderr.
        reason: String,
    },
}

impl Step {
    /// What the master's `run` returns after a stop this step asked for:
    /// `Ok` after a handover, the reason as an error after a takeover given
    /// up (one line, exit 1).
    pub fn into_result(self) -> anyhow::Result<()> {
        match self {
            Step::HandedOver { to_pid } => {
                tracing::info!(new_master = to_pid, "handed over; stopped");
                Ok(())
            }
            Step::GaveUp { reason } => Err(anyhow::anyhow!(reason)),
        }
    }
}

/// The master's handle on the upgrade task.
pub struct Handover {
    step: Option<oneshot::Receiver<Step>>,
    task: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Handover {
    /// Resolves when the master must stop because of the upgrade (see
    /// [`Step`]); never otherwise. Cancel-safe.
    pub async fn next(&mut self) -> Step {
        if let Some(step) = &mut self.step {
            match step.await {
                Ok(step) => return step,
                Err(_) => self.step = None,
            }
        }
        std::future::pending().await
    }

    /// Stops the upgrade task (and any takeover it serves) and closes its
    /// copies of the sockets now: a master stopping must leave no copy
    /// listening. Returns true if this master owns the sockets alone, so
    /// that its stop may shut them down; false before a takeover's commit
    /// (the old master serves on), during one (the new master has them),
    /// after a handover, and when a service manager lent them (socket
    /// activation: they stay its, listening).
    pub fn close(self) -> bool {
        self.task.abort();
        self.shared.drop_sockets();
        self.shared.stage() == Stage::Owner && !self.shared.lent
    }
}

/// The upgrade task: on a takeover, the commit; then the `ready` line; then
/// the upgrade socket, offering the sockets to a successor until one takes
/// them.
async fn run(
    offerer: Offerer,
    mut endpoint: Option<Endpoint>,
    publish_at: Option<PathBuf>,
    takeover: Option<Takeover>,
    wait: Duration,
    ready: oneshot::Receiver<Vec<WorkerInfo>>,
    step: oneshot::Sender<Step>,
) {
    let shared = offerer.shared.clone();
    let (workers, takeover_from) = match takeover {
        Some(takeover) => {
            let deadline = Instant::now() + wait;
            match takeover.complete(ready, deadline, wait, &shared).await {
                Ok(workers) => (workers, Some(takeover.old_pid)),
                Err(reason) => {
                    let _ = step.send(Step::GaveUp { reason });
                    return;
                }
            }
        }
        None => match ready.await {
            Ok(workers) => (workers, None),
            Err(_) => return,
        },
    };
    shared.set_stage(Stage::Owner);
    if let (Some(endpoint), Some(path)) = (&mut endpoint, &publish_at) {
        if let Err(err) = endpoint.publish(path) {
            // The sockets are ours and serve; only a later takeover is off.
            tracing::error!(
                from = %endpoint.path().display(),
                to = %path.display(),
                cause = %err,
                "cannot move the upgrade socket into place; no successor can take over at that path"
            );
        }
    }
    announce::ready(
        offerer.mode,
        offerer.listen,
        workers,
        takeover_from,
        offerer.socket_activated,
    );
    let Some(endpoint) = endpoint else {
        return;
    };
    if let Some(to_pid) = serve(endpoint, Arc::new(offerer)).await {
        let _ = step.send(Step::HandedOver { to_pid });
    }
}

/// Serves the upgrade socket until a successor has taken the sockets over;
/// returns it. Connections are served side by side (one may take over, the
/// others are refused); refusals and failures are logged once per episode
/// of them.
async fn serve(mut endpoint: Endpoint, offerer: Arc<Offerer>) -> Option<u32> {
    let mut offers = JoinSet::new();
    let mut refusals = Episode::default();
    let mut accept_errors = Episode::default();
    loop {
        tokio::select! {
            accepted = endpoint.accept() => match accepted {
                Ok((conn, permit)) => {
                    let offerer = offerer.clone();
                    offers.spawn(async move { offerer.serve(conn, permit).await });
                }
                Err(err) => {
                    if accept_errors.starts(Instant::now()) {
                        tracing::warn!(cause = %err, "upgrade socket: accept failed");
                    }
                    tokio::time::sleep(crate::accept::ACCEPT_BACKOFF).await;
                }
            },
            Some(joined) = offers.join_next() => match joined {
                Ok(Outcome::HandedOver(pid)) => {
                    endpoint.handed_over();
                    return Some(pid);
                }
                Ok(Outcome::Refused(reason)) => {
                    if refusals.starts(Instant::now()) {
                        tracing::warn!(reason, "upgrade socket: no takeover");
                    } else {
                        tracing::debug!(reason, refused = refusals.count(), "upgrade socket: no takeover");
                    }
                }
                Ok(Outcome::Failed { pid, reason }) => {
                    tracing::warn!(new_master = pid, reason, "takeover failed; serving on");
                    announce::handover_failed(pid, &reason);
                    // A new master SIGKILLed cannot remove the socket it
                    // bound beside our path; we know its pid.
                    let path = endpoint.path().to_owned();
                    tokio::spawn(endpoint::remove_when_dead(path, pid, ANSWER_TIMEOUT));
                }
                Err(err) => tracing::error!(cause = %err, "upgrade connection task"),
            },
        }
    }
}
