//! Zero-downtime upgrade: a new master takes the listening sockets of a
//! running one over SCM_RIGHTS, the same `sendmsg` that feeds the workers.
//!
//! # The two sides
//!
//! - `--upgrade-socket PATH`: the master listens on a `SOCK_SEQPACKET` Unix
//!   socket at PATH (mode 0600, removed at exit; a stale file left by a dead
//!   master is replaced, a path a live master serves is never taken). A peer
//!   whose uid (`SO_PEERCRED`) is not the master's own is refused and logged.
//! - `--takeover PATH`: the new master connects there, receives the listening
//!   socket(s) (one per worker slot in `reuseport`, so every accept queue
//!   survives), starts its own workers on them, and once every worker serves
//!   tells the old master, which stops accepting, closes its copies of the
//!   sockets and lets its workers finish what they hold. The sockets never
//!   stop listening, so no client is refused or reset.
//!
//! # The protocol
//!
//! One JSON object per datagram (a `SOCK_SEQPACKET` keeps boundaries, as on
//! the channel), tagged by `kind`; a socket travels with its own `socket`
//! datagram in one `sendmsg`:
//!
//! 1. new → old: `hello` (`protocol`, `version`, `mode`, `workers`, `pid`);
//! 2. old → new: `refused` (`reason`: another mode, another `--workers` in
//!    `reuseport`, a takeover already under way), or `offer` (`pid`,
//!    `listen`, `sockets`: how many follow) and that many `socket`
//!    (`index`), each with its fd;
//! 3. new → old, when every new worker serves: `ready`;
//! 4. old → new: `released`, once the old master has removed its upgrade
//!    socket (the new one may then bind the same path) and before it stops.
//!
//! If the connection ends before `ready` (the new master exited or was
//! killed, or gave up after [`TAKEOVER_READY_TIMEOUT`]), the old master
//! prints `handover_failed` and goes on as before: it never touched its
//! sockets. One takeover at a time; a new master that
//! hears nothing that parses within [`ANSWER_TIMEOUT`] is not talking to a
//! master (exit 2).
//!
//! HAProxy (`-x`, `expose-fd listeners`), pingora (`transfer_fd`) and
//! ecdysis do the same: a Unix socket, SCM_RIGHTS, the old process serving
//! until the new one is ready. README.md ("Upgrades") compares them.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr, sockopt};
use serde::{Deserialize, Serialize};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};

use crate::announce::{self, WorkerInfo};
use crate::channel::scm_rights;
use crate::cli::UsageError;
use crate::master::ClusterArgs;
use crate::{Mode, Pass};

/// The `protocol` of a `hello`: a peer that sends anything else is not a
/// master of this suite.
pub const PROTOCOL: &str = "cluster-upgrade";

/// The protocol's version; a `hello` of another version is refused.
pub const VERSION: u32 = 1;

/// How long either side waits for the other's next datagram during the
/// exchange (not for the new workers: they take what they take).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a new master waits for its workers to serve (beyond
/// `--init-delay`) before it gives the takeover up: it exits 1, and the old
/// master, which still serves, prints `handover_failed` (ecdysis's child
/// timeout). Far beyond a worker's start (milliseconds), so that only a
/// worker that cannot start at all (it crashes, is respawned, crashes)
/// hits it.
pub const TAKEOVER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest datagram read; a longer one is garbage.
const MAX_DATAGRAM: usize = 4096;

/// The backlog of the upgrade socket: takeovers are rare.
const UPGRADE_BACKLOG: i32 = 8;

/// One datagram of the upgrade protocol.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Datagram {
    /// New → old: who is asking.
    Hello {
        protocol: String,
        version: u32,
        mode: String,
        workers: u16,
        pid: u32,
    },
    /// Old → new: no takeover, and why.
    Refused { reason: String },
    /// Old → new: `sockets` datagrams follow, each with one listening socket.
    Offer {
        pid: u32,
        listen: SocketAddr,
        sockets: usize,
    },
    /// Old → new: socket `index` (with its fd).
    Socket { index: usize },
    /// New → old: every new worker serves.
    Ready,
    /// Old → new: the old master has stepped back.
    Released,
}

/// One end of an upgrade connection, registered with tokio.
struct Conn {
    fd: AsyncFd<OwnedFd>,
}

impl Conn {
    fn new(fd: OwnedFd) -> io::Result<Conn> {
        nix::fcntl::fcntl(
            fd.as_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        // SAFETY: `OwnedFd` keeps the fd open and unchanged for as long as
        // the AsyncFd that owns it lives; nothing else closes it.
        let fd = unsafe { AsyncFd::register(fd) }?;
        Ok(Conn { fd })
    }

    /// Sends `datagram`, with `fd` if any, in one `sendmsg`.
    async fn send(&self, datagram: &Datagram, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
        let data = serde_json::to_vec(datagram)?;
        loop {
            let mut ready = self.fd.ready(Interest::WRITABLE).await?;
            match scm_rights::send_fds(self.fd.get_ref().as_fd(), &data, fd.as_slice()) {
                Ok(()) => return Ok(()),
                Err(Errno::EAGAIN) => ready.clear_ready(),
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// The next datagram and its fds; `None` at end of file. Anything that
    /// is not one of ours is an error (its fds closed).
    async fn recv(&self) -> anyhow::Result<Option<(Datagram, Vec<OwnedFd>)>> {
        let mut data = [0u8; MAX_DATAGRAM + 1];
        let received = loop {
            let mut ready = self.fd.ready(Interest::READABLE).await?;
            match scm_rights::recv_fds(self.fd.get_ref().as_fd(), &mut data) {
                Ok(received) => break received,
                Err(Errno::EAGAIN) => ready.clear_ready(),
                Err(Errno::ECONNRESET) => return Ok(None),
                Err(errno) => return Err(io::Error::from(errno).into()),
            }
        };
        if received.len == 0 && received.fds.is_empty() {
            return Ok(None);
        }
        anyhow::ensure!(
            !received.data_truncated && received.len <= MAX_DATAGRAM,
            "a datagram of more than {MAX_DATAGRAM} bytes"
        );
        anyhow::ensure!(!received.control_truncated, "fds dropped (MSG_CTRUNC)");
        let text = &data[..received.len];
        let datagram = serde_json::from_slice(text).with_context(|| {
            format!(
                "not a datagram of the upgrade protocol: {:?}",
                String::from_utf8_lossy(&text[..text.len().min(80)])
            )
        })?;
        Ok(Some((datagram, received.fds)))
    }

    /// [`Conn::recv`] within [`ANSWER_TIMEOUT`].
    async fn answer(&self) -> anyhow::Result<Option<(Datagram, Vec<OwnedFd>)>> {
        tokio::time::timeout(ANSWER_TIMEOUT, self.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {ANSWER_TIMEOUT:?}"))?
    }
}

/// The upgrade socket a master serves: its path, and which file it created
/// there, so that it removes only its own.
struct Endpoint {
    path: PathBuf,
    /// (device, inode) of the socket file bound.
    file: (u64, u64),
    listener: AsyncFd<OwnedFd>,
}

impl Endpoint {
    /// Binds PATH with mode 0600. A live master's socket there is never
    /// taken; a stale one (nobody accepts) is replaced; anything that is not
    /// a socket is left alone. Every refusal is a usage error.
    fn bind(path: &Path) -> anyhow::Result<Endpoint> {
        let usage =
            |what: String| UsageError(format!("--upgrade-socket {}: {what}", path.display()));
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(usage("exists and is not a socket".into()).into());
            }
            Ok(_) => match connect(path) {
                Ok(_) => {
                    return Err(usage("a live master serves it (not taken over)".into()).into());
                }
                Err(Errno::ECONNREFUSED) => {
                    tracing::info!(path = %path.display(), "replacing a stale upgrade socket");
                    std::fs::remove_file(path)
                        .map_err(|err| usage(format!("cannot remove the stale socket: {err}")))?;
                }
                Err(errno) => return Err(usage(format!("a socket in use ({errno})")).into()),
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(usage(err.to_string()).into()),
        }
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        let addr = UnixAddr::new(path).map_err(|err| usage(err.to_string()))?;
        // 0600 from the start: no moment where another user could connect.
        // The umask is the process's, and no other thread creates files now.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = socket::bind(fd.as_raw_fd(), &addr);
        nix::sys::stat::umask(old);
        bound.map_err(|errno| usage(io::Error::from(errno).to_string()))?;
        let meta = std::fs::symlink_metadata(path)?;
        let endpoint = Endpoint {
            path: path.to_owned(),
            file: (meta.dev(), meta.ino()),
            // SAFETY: as in `Conn::new`: the AsyncFd owns the fd.
            listener: unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?,
        };
        socket::listen(
            endpoint.listener.get_ref(),
            socket::Backlog::new(UPGRADE_BACKLOG)?,
        )?;
        Ok(endpoint)
    }

    /// The next connection, from a peer of our own uid; others are refused
    /// (closed) and logged.
    async fn accept(&self) -> io::Result<OwnedFd> {
        loop {
            let mut ready = self.listener.readable().await?;
            let fd = match socket::accept4(
                self.listener.get_ref().as_raw_fd(),
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            ) {
                // SAFETY: accept4 just returned this fd; nothing else owns it.
                Ok(raw) => unsafe { OwnedFd::from_raw_fd(raw) },
                Err(Errno::EAGAIN) => {
                    ready.clear_ready();
                    continue;
                }
                Err(Errno::ECONNABORTED | Errno::EINTR) => continue,
                Err(errno) => return Err(errno.into()),
            };
            let ours = socket::getsockopt(&fd, sockopt::PeerCredentials)
                .map(|cred| (cred.uid(), cred.pid()));
            // SAFETY: geteuid has no precondition and cannot fail.
            let uid = unsafe { libc::geteuid() };
            match ours {
                Ok((peer_uid, _)) if peer_uid == uid => return Ok(fd),
                Ok((peer_uid, peer_pid)) => tracing::warn!(
                    peer_uid,
                    peer_pid,
                    "upgrade socket: refused a peer of another uid"
                ),
                Err(errno) => {
                    tracing::warn!(cause = %errno, "upgrade socket: no peer credentials; refused")
                }
            }
        }
    }
}

impl Drop for Endpoint {
    /// Removes the socket file if it is still the one we bound.
    fn drop(&mut self) {
        remove_if_ours(&self.path, self.file);
    }
}

fn remove_if_ours(path: &Path, file: (u64, u64)) {
    let ours = std::fs::symlink_metadata(path).is_ok_and(|meta| (meta.dev(), meta.ino()) == file);
    if ours {
        if let Err(err) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), cause = %err, "cannot remove the upgrade socket");
        }
    }
}

/// A blocking `connect` to the Unix socket at `path` (a local connect does
/// not wait), then non-blocking.
fn connect(path: &Path) -> Result<OwnedFd, Errno> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    socket::connect(fd.as_raw_fd(), &addr)?;
    Ok(fd)
}

/// Whether two paths name the same file (or are the same text).
fn same_path(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => a == b,
    }
}

/// The new master's side, from `hello` to the sockets received.
struct Takeover {
    conn: Conn,
    old_pid: u32,
    listen: SocketAddr,
    sockets: Option<Vec<OwnedFd>>,
}

impl Takeover {
    /// Connects to `path`, says hello and receives the sockets. Everything
    /// that goes wrong is a usage error (exit 2): nothing has started yet.
    async fn connect(path: &Path, mode: Mode, workers: u16) -> anyhow::Result<Takeover> {
        let usage = |what: String| UsageError(format!("--takeover {}: {what}", path.display()));
        let meta = std::fs::metadata(path).map_err(|err| usage(err.to_string()))?;
        if !meta.file_type().is_socket() {
            return Err(usage("not a socket".into()).into());
        }
        let fd = connect(path).map_err(|errno| {
            usage(match errno {
                Errno::ECONNREFUSED => "nothing listens there (a stale socket?)".into(),
                Errno::EPROTOTYPE => "not a master's upgrade socket (wrong socket type)".into(),
                errno => io::Error::from(errno).to_string(),
            })
        })?;
        let conn = Conn::new(fd)?;
        let hello = Datagram::Hello {
            protocol: PROTOCOL.into(),
            version: VERSION,
            mode: mode.name().into(),
            workers,
            pid: std::process::id(),
        };
        let not_a_master =
            |err: anyhow::Error| usage(format!("not a master's upgrade socket: {err:#}"));
        conn.send(&hello, None)
            .await
            .map_err(|err| not_a_master(err.into()))?;
        let (old_pid, listen, count) = match conn.answer().await.map_err(not_a_master)? {
            Some((
                Datagram::Offer {
                    pid,
                    listen,
                    sockets,
                },
                _,
            )) => (pid, listen, sockets),
            Some((Datagram::Refused { reason }, _)) => {
                return Err(usage(format!("takeover refused: {reason}")).into());
            }
            Some((other, _)) => {
                return Err(not_a_master(anyhow::anyhow!("unexpected {other:?}")).into());
            }
            None => {
                return Err(usage(
                    "closed without an answer (a peer of another uid is refused; see the old master's log)"
                        .into(),
                )
                .into());
            }
        };
        let expected = expected_sockets(mode, workers);
        if count != expected {
            return Err(not_a_master(anyhow::anyhow!(
                "offers {count} sockets, {mode} with --workers {workers} takes {expected}"
            ))
            .into());
        }
        let mut sockets = Vec::with_capacity(count);
        for index in 0..count {
            match conn.answer().await.map_err(not_a_master)? {
                Some((Datagram::Socket { index: i }, mut fds)) if i == index && fds.len() == 1 => {
                    sockets.extend(fds.pop());
                }
                other => {
                    return Err(not_a_master(anyhow::anyhow!(
                        "socket {index}: got {:?}",
                        other.map(|(d, fds)| (d, fds.len()))
                    ))
                    .into());
                }
            }
        }
        tracing::info!(old_master = old_pid, %listen, sockets = count, "took the listening sockets over");
        Ok(Takeover {
            conn,
            old_pid,
            listen,
            sockets: Some(sockets),
        })
    }
}

/// How many listening sockets a master of `mode` holds: one per worker slot
/// in `reuseport`, else one.
fn expected_sockets(mode: Mode, workers: u16) -> usize {
    match mode {
        Mode::Handoff(Pass::Reuseport) => usize::from(workers),
        _ => 1,
    }
}

/// A master's upgrade state from its start: the upgrade socket it will
/// serve, and the sockets it took over, if it did.
pub struct Upgrade {
    mode: Mode,
    workers: u16,
    /// `--upgrade-socket`, bound at start.
    endpoint: Option<Endpoint>,
    /// `--upgrade-socket` at the path of `--takeover`: bound once the old
    /// master has released it.
    deferred: Option<PathBuf>,
    takeover: Option<Takeover>,
    /// How long the new workers may take to serve, on a takeover.
    ready_deadline: Duration,
}

impl Upgrade {
    /// Binds `--upgrade-socket` and, with `--takeover`, takes the old
    /// master's sockets. Before anything else starts: every failure is one
    /// line and exit 2.
    pub async fn prepare(args: &ClusterArgs, mode: Mode) -> anyhow::Result<Upgrade> {
        let deferred = match (&args.upgrade_socket, &args.takeover) {
            (Some(path), Some(old)) if same_path(path, old) => Some(path.clone()),
            _ => None,
        };
        let endpoint = match &args.upgrade_socket {
            Some(path) if deferred.is_none() => Some(Endpoint::bind(path)?),
            _ => None,
        };
        let takeover = match &args.takeover {
            Some(path) => Some(Takeover::connect(path, mode, args.workers).await?),
            None => None,
        };
        Ok(Upgrade {
            mode,
            workers: args.workers,
            endpoint,
            deferred,
            takeover,
            ready_deadline: TAKEOVER_READY_TIMEOUT + args.init_delay,
        })
    }

    /// The listening sockets taken over, and their address; `None` without
    /// `--takeover` (the mode binds its own).
    pub fn taken_sockets(&mut self) -> Option<(SocketAddr, Vec<OwnedFd>)> {
        let takeover = self.takeover.as_mut()?;
        Some((takeover.listen, takeover.sockets.take()?))
    }

    /// The one listening socket of `proxy` and `handoff-socket`, whose master
    /// accepts: the one taken over, or else bound at `listen`; non-blocking.
    pub fn single_listener(&mut self, listen: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
        let socket = match self.taken_sockets() {
            Some((_, mut sockets)) => sockets.pop().context("one listening socket taken over")?,
            None => OwnedFd::from(crate::listen::bind(listen, false)?),
        };
        let listener = std::net::TcpListener::from(socket);
        listener.set_nonblocking(true)?;
        Ok(listener)
    }

    /// Starts the upgrade task, which prints the `ready` line (after telling
    /// the old master, on a takeover) and then serves the upgrade socket,
    /// offering `sockets` (duplicated here) to a successor. Returns the
    /// handle the master watches, and the sender the supervisor uses once
    /// every worker serves.
    pub fn start(
        self,
        listen: SocketAddr,
        sockets: &[OwnedFd],
    ) -> io::Result<(Handover, ReadyLine)> {
        let copies = if self.endpoint.is_some() || self.deferred.is_some() {
            sockets
                .iter()
                .map(OwnedFd::try_clone)
                .collect::<io::Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let shared = Arc::new(Shared {
            sockets: Mutex::new(Some(copies)),
            busy: AtomicBool::new(false),
            released: AtomicBool::new(false),
            endpoint: Mutex::new(None),
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let (handed_tx, handed_rx) = oneshot::channel();
        let task = Task {
            ready_deadline: self.ready_deadline,
            mode: self.mode,
            workers: self.workers,
            listen,
            shared: shared.clone(),
        };
        let handle = tokio::spawn(task.run(
            self.endpoint,
            self.deferred,
            self.takeover,
            ready_rx,
            handed_tx,
        ));
        Ok((
            Handover {
                handed: Some(handed_rx),
                task: handle,
                shared,
            },
            ReadyLine(ready_tx),
        ))
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

/// What the upgrade task and the master share.
struct Shared {
    /// Copies of the listening sockets, to offer; taken at the handover or
    /// the stop.
    sockets: Mutex<Option<Vec<OwnedFd>>>,
    /// A takeover is under way.
    busy: AtomicBool,
    /// Handed over: refuse anything else.
    released: AtomicBool,
    /// The upgrade socket's path and file, once bound, to remove at the
    /// handover or the stop.
    endpoint: Mutex<Option<(PathBuf, (u64, u64))>>,
}

impl Shared {
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

    /// Removes the upgrade socket's file, if it is still ours.
    fn remove_endpoint(&self) {
        let endpoint = self
            .endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((path, file)) = endpoint {
            remove_if_ours(&path, file);
        }
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

/// The master's handle on the upgrade task.
pub struct Handover {
    handed: Option<oneshot::Receiver<u32>>,
    task: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Handover {
    /// Resolves with the new master's pid once it has taken over and the
    /// old master must stop (without touching the sockets); never, without
    /// a takeover. Cancel-safe.
    pub async fn requested(&mut self) -> u32 {
        if let Some(handed) = &mut self.handed {
            match handed.await {
                Ok(pid) => return pid,
                Err(_) => self.handed = None,
            }
        }
        std::future::pending().await
    }

    /// Stops the upgrade task and closes its copies of the sockets now (a
    /// master stopping on a signal must leave no copy listening). Returns
    /// true if a new master holds the sockets too (a takeover under way or
    /// done): the caller must then not shut them down, only close its copies.
    pub fn close(self) -> bool {
        self.task.abort();
        self.shared.drop_sockets();
        self.shared.remove_endpoint();
        self.shared.busy.load(Ordering::SeqCst)
    }
}

/// Why a connection to the upgrade socket ended.
enum Outcome {
    /// The new master serves: the old one stops.
    HandedOver(u32),
    /// Not a takeover (garbage, refused): logged, nothing to tell.
    Refused,
    /// A takeover that failed after the offer: `handover_failed`.
    Failed { pid: u32, reason: String },
}

/// The upgrade task.
struct Task {
    ready_deadline: Duration,
    mode: Mode,
    workers: u16,
    listen: SocketAddr,
    shared: Arc<Shared>,
}

impl Task {
    async fn run(
        self,
        mut endpoint: Option<Endpoint>,
        deferred: Option<PathBuf>,
        takeover: Option<Takeover>,
        ready: oneshot::Receiver<Vec<WorkerInfo>>,
        handed: oneshot::Sender<u32>,
    ) {
        let workers = if takeover.is_some() {
            match tokio::time::timeout(self.ready_deadline, ready).await {
                Ok(Ok(workers)) => workers,
                Ok(Err(_)) => return,
                Err(_) => self.give_up(),
            }
        } else {
            let Ok(workers) = ready.await else {
                return;
            };
            workers
        };
        let mut takeover_from = None;
        if let Some(takeover) = takeover {
            takeover_from = Some(takeover.old_pid);
            release_old(&takeover).await;
            if let Some(path) = &deferred {
                match Endpoint::bind(path) {
                    Ok(bound) => endpoint = Some(bound),
                    Err(err) => tracing::error!("{err:#}; no upgrade socket"),
                }
            }
        }
        announce::ready(self.mode, self.listen, workers, takeover_from);
        let Some(endpoint) = endpoint else {
            return;
        };
        *self
            .shared
            .endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((endpoint.path.clone(), endpoint.file));
        let this = Arc::new(self);
        let (outcomes, mut outcome) = mpsc::channel(8);
        loop {
            tokio::select! {
                conn = endpoint.accept() => match conn.and_then(Conn::new) {
                    Ok(conn) => {
                        let (this, outcomes) = (this.clone(), outcomes.clone());
                        tokio::spawn(async move {
                            let _ = outcomes.send(this.serve(conn).await).await;
                        });
                    }
                    Err(err) => {
                        tracing::warn!(cause = %err, "upgrade socket: accept failed");
                        tokio::time::sleep(crate::accept::ACCEPT_BACKOFF).await;
                    }
                },
                Some(result) = outcome.recv() => match result {
                    Outcome::HandedOver(pid) => {
                        let _ = handed.send(pid);
                        return;
                    }
                    Outcome::Refused => {}
                    Outcome::Failed { pid, reason } => {
                        tracing::warn!(new_master = pid, reason, "takeover failed; serving on");
                        announce::handover_failed(pid, &reason);
                    }
                },
            }
        }
    }

    /// The new workers did not all serve within the deadline: the takeover
    /// is given up, and with it this master (the old one serves on).
    fn give_up(&self) -> ! {
        eprintln!(
            "{}: error: the workers did not all serve within {}; takeover given up",
            self.mode,
            humantime::format_duration(self.ready_deadline)
        );
        crate::master::kill_workers();
        std::process::exit(1)
    }

    /// One connection to the upgrade socket, from `hello` to its outcome.
    async fn serve(&self, conn: Conn) -> Outcome {
        let (pid, mode, workers) = match conn.answer().await {
            Ok(Some((
                Datagram::Hello {
                    protocol,
                    version,
                    mode,
                    workers,
                    pid,
                },
                _,
            ))) if protocol == PROTOCOL && version == VERSION => (pid, mode, workers),
            other => {
                let what = match other {
                    Ok(Some((datagram, _))) => format!("{datagram:?}"),
                    Ok(None) => "nothing".into(),
                    Err(err) => format!("{err:#}"),
                };
                tracing::warn!(said = what, "upgrade socket: not a takeover; closed");
                return Outcome::Refused;
            }
        };
        let refusal = if mode != self.mode.name() {
            Some(format!(
                "the old master (pid {}) runs {}, not {mode}",
                std::process::id(),
                self.mode
            ))
        } else if self.mode == Mode::Handoff(Pass::Reuseport) && workers != self.workers {
            Some(format!(
                "the old master (pid {}) has --workers {} (one SO_REUSEPORT socket each), not {workers}",
                std::process::id(),
                self.workers
            ))
        } else if self.shared.released.load(Ordering::SeqCst)
            || self.shared.busy.swap(true, Ordering::SeqCst)
        {
            Some(format!(
                "another takeover of master {} is under way",
                std::process::id()
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            tracing::warn!(new_master = pid, reason, "takeover refused");
            let _ = conn.send(&Datagram::Refused { reason }, None).await;
            return Outcome::Refused;
        }
        let outcome = self.offer(&conn, pid).await;
        if !matches!(outcome, Outcome::HandedOver(_)) {
            self.shared.busy.store(false, Ordering::SeqCst);
        }
        outcome
    }

    /// Sends the sockets and waits, as long as the new master lives, for its
    /// `ready`.
    async fn offer(&self, conn: &Conn, pid: u32) -> Outcome {
        let failed = |reason: String| Outcome::Failed { pid, reason };
        let sockets = match self.shared.copies() {
            Ok(sockets) => sockets,
            Err(err) => return failed(format!("cannot duplicate the sockets: {err}")),
        };
        tracing::info!(
            new_master = pid,
            sockets = sockets.len(),
            "takeover: offering the listening sockets"
        );
        let offer = Datagram::Offer {
            pid: std::process::id(),
            listen: self.listen,
            sockets: sockets.len(),
        };
        if let Err(err) = conn.send(&offer, None).await {
            return failed(format!("offer: {err}"));
        }
        for (index, socket) in sockets.iter().enumerate() {
            if let Err(err) = conn
                .send(&Datagram::Socket { index }, Some(socket.as_fd()))
                .await
            {
                return failed(format!("socket {index}: {err}"));
            }
        }
        drop(sockets);
        match conn.recv().await {
            Ok(Some((Datagram::Ready, _))) => {}
            Ok(Some((other, _))) => return failed(format!("unexpected {other:?}")),
            Ok(None) => return failed("the new master exited before its ready".into()),
            Err(err) => return failed(format!("{err:#}")),
        }
        // From here on the new master serves: step back, and free the path
        // for it before saying so.
        self.shared.released.store(true, Ordering::SeqCst);
        announce::handover(pid);
        self.shared.remove_endpoint();
        if let Err(err) = conn.send(&Datagram::Released, None).await {
            tracing::debug!(new_master = pid, cause = %err, "cannot send released");
        }
        Outcome::HandedOver(pid)
    }
}

/// Tells the old master that every new worker serves, and waits (briefly)
/// for it to step back; an old master that died meanwhile is fine too.
async fn release_old(takeover: &Takeover) {
    if let Err(err) = takeover.conn.send(&Datagram::Ready, None).await {
        tracing::warn!(old_master = takeover.old_pid, cause = %err, "cannot tell the old master");
        return;
    }
    match takeover.conn.answer().await {
        Ok(Some((Datagram::Released, _))) | Ok(None) => {}
        Ok(Some((other, _))) => {
            tracing::warn!(old_master = takeover.old_pid, ?other, "unexpected answer")
        }
        Err(err) => tracing::warn!(old_master = takeover.old_pid, cause = %err, "no release"),
    }
}
