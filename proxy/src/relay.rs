//! Relaying one client connection to a worker: what a reverse proxy does for
//! every connection, and where its cost comes from (a second socket, and every
//! byte read and written once more by the master, or, with `--relay splice`,
//! moved between the sockets inside the kernel: [`crate::pipes`]).
//!
//! A relay ends when there is nobody left to talk to, and never waits
//! forever on a side that has gone quiet:
//!
//! | what happens | what the relay does |
//! |---|---|
//! | the worker closes (EOF) | FIN to the client, both sockets closed |
//! | the client half-closes (EOF) | FIN to the worker, which may still answer, for as long as it is not silent for [`CLIENT_GONE_TIMEOUT`] |
//! | the client resets, or cannot be written to | both closed: the client is gone |
//! | the worker resets, or cannot be written to | what the master already read from it is written to the client first, then both closed |
//! | no byte either way for `--relay-timeout` | both closed (a stalled worker, an idle keep-alive client) |

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio::time::Instant;

use cluster::GRACE_PERIOD;
use cluster::episode::Episode;

use crate::pipes::PipePool;

/// Once the client has sent its end-of-file, how long the worker may stay
/// silent before the relay is closed. A client that half-closes may still
/// read the answer, so the relay waits for it, but not for ever: a stalled
/// worker would keep the relay's two fds. The worker's silence is bounded as
/// a request in flight is at a graceful stop ([`GRACE_PERIOD`], 5 s), and by
/// `--relay-timeout` if shorter.
pub const CLIENT_GONE_TIMEOUT: Duration = GRACE_PERIOD;

/// The size of each direction's buffer, as tokio's `copy` has.
pub const BUFFER_BYTES: usize = 8 * 1024;

/// How a relay moves bytes from one socket to the other: the `--relay`
/// flag.
#[derive(Debug, Clone)]
pub enum Mover {
    /// `recv` into the relay's buffer, `send` out of it: every byte crosses
    /// the master's memory twice (`--relay copy`).
    Copy,
    /// `splice(2)` socket → pipe → socket, borrowing a pipe of `pool` per
    /// chunk (`--relay splice`, [`crate::pipes`]), once a chunk of at least
    /// `after_bytes` has come; before that, and whenever a chunk is smaller
    /// or the pool has no pipe free, by copy. The proxy splices after
    /// [`BUFFER_BYTES`] (a read that filled the buffer); 0 splices every
    /// chunk, the first included (the `relay` bench's comparison).
    Splice {
        /// Where the pipes come from.
        pool: Arc<PipePool>,
        /// The chunk size from which the next chunk is spliced.
        after_bytes: usize,
    },
}

/// How many fds the relays hold right now (clients accepted, sockets to
/// workers), so the master can tell them apart from its own fds when it
/// measures its budget (see `max_relays`).
#[derive(Debug, Clone, Default)]
pub struct RelayFds(Arc<AtomicUsize>);

impl RelayFds {
    /// The fds held now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts one fd until the returned guard is dropped: create it right
    /// after the fd is opened, drop it with the fd.
    pub fn hold(&self) -> HeldFd {
        self.0.fetch_add(1, Ordering::Relaxed);
        HeldFd(self.0.clone())
    }
}

/// One fd counted in [`RelayFds`] while this lives.
#[derive(Debug)]
pub struct HeldFd(Arc<AtomicUsize>);

impl Drop for HeldFd {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where one worker listens for the master's relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Its own TCP port on 127.0.0.1 (`--upstream tcp`).
    Port(u16),
    /// Its own Unix stream socket (`--upstream unix`); shared, so that each
    /// relay's list of targets costs no copy of the path.
    Path(Arc<Path>),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Port(port) => write!(f, "127.0.0.1:{port}"),
            Target::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The master's connection to a worker, either kind.
enum Upstream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A relay's socket, either kind, as `splice(2)` needs it: its fd, and its
/// readiness from tokio's event loop (tokio's own sockets, so that a copied
/// chunk and a spliced one wait on the same registration).
trait Socket: AsFd {
    /// Ready for `interest` (readable or writable), as tokio last saw it.
    fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>>;
    /// Runs the system call `io` on the socket; its EAGAIN clears the
    /// readiness, so that the next wait is for the event loop's next event.
    fn try_io<R>(&self, interest: Interest, io: impl FnOnce() -> io::Result<R>) -> io::Result<R>;
}

/// The same methods under the same names on tokio's TCP and Unix streams.
macro_rules! impl_socket {
    ($($stream:ty),*) => {$(
        impl Socket for $stream {
            fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>> {
                if interest.is_readable() {
                    self.poll_read_ready(cx)
                } else {
                    self.poll_write_ready(cx)
                }
            }

            fn try_io<R>(&self, interest: Interest, io: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
                <$stream>::try_io(self, interest, io)
            }
        }
    )*};
}

impl_socket!(TcpStream, UnixStream);

/// Connects to the first worker of `targets` that accepts, then moves
/// bytes both ways as `mover` says until the worker is done, within the
/// bounds in the module doc. `_client_fd` counts the client's socket, and is
/// dropped with it.
///
/// Half-close travels: when the client shuts down its sending side, the worker
/// gets a FIN too and may still answer. When the worker closes (after
/// `Connection: close`, or at its graceful stop), the client gets a FIN and
/// both sockets are closed at once: there is nobody left to talk to, and an fd
/// held for a client that lingers is an fd the master lacks at its limit.
pub async fn relay(
    mut client: TcpStream,
    _client_fd: HeldFd,
    targets: Vec<Target>,
    relay_timeout: Duration,
    fds: RelayFds,
    mover: Mover,
) {
    let connected = tokio::time::timeout(relay_timeout, connect(&targets, &fds)).await;
    let Ok(Some((worker, _worker_fd))) = connected else {
        if connected.is_err() {
            tracing::debug!(?relay_timeout, "no worker accepted in time; client closed");
        }
        // Dropping the client closes it: it sees a connection closed without
        // an answer, as with any server that cannot serve.
        return;
    };
    let (from_client, to_client) = client.split();
    match worker {
        Upstream::Tcp(mut worker) => {
            let (from_worker, to_worker) = worker.split();
            copy_both_ways(
                from_client,
                to_client,
                from_worker,
                to_worker,
                relay_timeout,
                &mover,
            )
            .await;
        }
        Upstream::Unix(mut worker) => {
            let (from_worker, to_worker) = worker.split();
            copy_both_ways(
                from_client,
                to_client,
                from_worker,
                to_worker,
                relay_timeout,
                &mover,
            )
            .await;
        }
    }
}

/// The relay proper, whatever the worker's socket and however the bytes
/// move: the two directions, and when to stop waiting for either (the module
/// doc's table).
async fn copy_both_ways<CR, CW, WR, WW, CS, WS>(
    mut from_client: CR,
    mut to_client: CW,
    mut from_worker: WR,
    mut to_worker: WW,
    relay_timeout: Duration,
    mover: &Mover,
) where
    CR: AsyncRead + Unpin + AsRef<CS>,
    CW: AsyncWrite + Unpin + AsRef<CS>,
    WR: AsyncRead + Unpin + AsRef<WS>,
    WW: AsyncWrite + Unpin + AsRef<WS>,
    CS: Socket,
    WS: Socket,
{
    let activity = Activity::new();
    let upstream = async {
        pump(&mut from_client, &mut to_worker, mover, &activity).await?;
        to_worker.shutdown().await.map_err(PumpError::Write)
    };
    let downstream = async {
        pump(&mut from_worker, &mut to_client, mover, &activity).await?;
        to_client.shutdown().await.map_err(PumpError::Write)
    };
    tokio::pin!(upstream, downstream);
    let ended = tokio::select! {
        result = &mut downstream => Ended::Downstream(result),
        result = &mut upstream => Ended::Upstream(result),
        () = activity.silent_for(relay_timeout) => Ended::Idle,
    };
    let ended = match ended {
        // The client half-closed: let the worker finish its answer, unless it
        // stays silent.
        Ended::Upstream(Ok(())) => {
            // The worker's silence counts from the client's end-of-file.
            activity.touch();
            let bound = relay_timeout.min(CLIENT_GONE_TIMEOUT);
            tokio::select! {
                result = &mut downstream => Ended::Downstream(result),
                () = activity.silent_for(bound) => {
                    tracing::debug!(?bound, "worker silent after the client's end-of-file; relay closed");
                    return;
                }
            }
        }
        // The worker cannot take more (it reset, or closed and reset): what
        // it sent before still goes to the client.
        Ended::Upstream(Err(PumpError::Write(err))) => {
            tracing::debug!(cause = %err, "writing to the worker failed; finishing its answer");
            tokio::select! {
                result = &mut downstream => Ended::Downstream(result),
                () = activity.silent_for(relay_timeout) => Ended::Idle,
            }
        }
        other => other,
    };
    match ended {
        // The worker is done (and the client got its FIN).
        Ended::Downstream(Ok(())) | Ended::Upstream(Ok(())) => {}
        Ended::Downstream(Err(err)) | Ended::Upstream(Err(err)) => {
            // A reset by either side ends both; that is the client's business.
            tracing::debug!(cause = %err, "relay ended with an error");
        }
        Ended::Idle => tracing::debug!(?relay_timeout, "relay idle; closed"),
    }
}

/// Why the first phase of a relay ended.
enum Ended {
    /// The worker-to-client direction ended: the worker closed or failed,
    /// or the client could not be written to.
    Downstream(Result<(), PumpError>),
    /// The client-to-worker direction ended.
    Upstream(Result<(), PumpError>),
    /// No byte moved either way for `--relay-timeout`.
    Idle,
}

/// Which side of one direction failed: the relay goes on after a failed
/// write to the worker (its answer may still be on its way), not after a
/// failed read from the client (the client is gone).
#[derive(Debug, thiserror::Error)]
enum PumpError {
    /// Reading from the source failed.
    #[error("read: {0}")]
    Read(io::Error),
    /// Writing to the destination failed.
    #[error("write: {0}")]
    Write(io::Error),
}

/// Moves bytes from `from` to `to` until `from`'s end-of-file, chunk by
/// chunk, each by copy or by splice as `mover` says. Every chunk read is
/// written before the next read (by copy: out of the buffer; by splice: the
/// pipe is emptied), so a read error never drops bytes already read: they
/// are in `to`'s kernel buffer when the error ends this.
async fn pump<R, W, RS, WS>(
    from: &mut R,
    to: &mut W,
    mover: &Mover,
    activity: &Activity,
) -> Result<(), PumpError>
where
    R: AsyncRead + Unpin + AsRef<RS>,
    W: AsyncWrite + Unpin + AsRef<WS>,
    RS: Socket,
    WS: Socket,
{
    let mut buffer = vec![0; BUFFER_BYTES];
    // Whether the next chunk goes by splice: after one of `after_bytes`.
    let mut splicing = matches!(mover, Mover::Splice { after_bytes: 0, .. });
    loop {
        let spliced = match mover {
            Mover::Splice { pool, .. } if splicing => {
                splice_chunk(from.as_ref(), to.as_ref(), pool, activity).await?
            }
            _ => None,
        };
        let moved = match spliced {
            Some(moved) => moved,
            None => {
                let read = from.read(&mut buffer).await.map_err(PumpError::Read)?;
                if read > 0 {
                    activity.touch();
                    to.write_all(&buffer[..read])
                        .await
                        .map_err(PumpError::Write)?;
                    activity.touch();
                }
                read
            }
        };
        if moved == 0 {
            return Ok(());
        }
        if let Mover::Splice { after_bytes, .. } = mover {
            splicing = moved >= *after_bytes;
        }
    }
}

/// One chunk by `splice(2)`: from the socket `from` into a pipe borrowed
/// from `pool`, then out of it into `to` until it is empty. The bytes
/// moved (0 at `from`'s end of file), or `None` when the pool has no pipe
/// free and the caller copies the chunk.
///
/// The pipe is borrowed only once `from` is readable, and given back when
/// the splice finds nothing after all (tokio's readiness outlives the
/// bytes that caused it): a keep-alive relay idle between requests holds
/// none of the pool's few pipes, which would turn every other relay to
/// copying.
async fn splice_chunk<RS: Socket, WS: Socket>(
    from: &RS,
    to: &WS,
    pool: &Arc<PipePool>,
    activity: &Activity,
) -> Result<Option<usize>, PumpError> {
    let (mut lease, moved) = loop {
        std::future::poll_fn(|cx| from.poll_ready(cx, Interest::READABLE))
            .await
            .map_err(PumpError::Read)?;
        let Some(mut lease) = pool.take() else {
            return Ok(None);
        };
        // An EAGAIN clears the readiness and returns the empty pipe (the
        // lease is dropped); the next turn waits for the event loop.
        match from.try_io(Interest::READABLE, || lease.splice_in(from.as_fd())) {
            Ok(moved) => break (lease, moved),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(PumpError::Read(err)),
        }
    };
    if moved == 0 {
        return Ok(Some(0));
    }
    activity.touch();
    while lease.pending() > 0 {
        when_ready(to, Interest::WRITABLE, || lease.splice_out(to.as_fd()))
            .await
            .map_err(PumpError::Write)?;
        activity.touch();
    }
    Ok(Some(moved))
}

/// Runs `io` on `socket` once it is ready for `interest`, and again after
/// each EAGAIN, as tokio's own reads and writes do.
async fn when_ready<S: Socket, T>(
    socket: &S,
    interest: Interest,
    mut io: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    loop {
        std::future::poll_fn(|cx| socket.poll_ready(cx, interest)).await?;
        match socket.try_io(interest, &mut io) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

/// When a byte last moved in either direction of one relay.
struct Activity {
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            last: Mutex::new(Instant::now()),
        }
    }

    /// A byte moved now.
    fn touch(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Resolves once no byte has moved for `limit` (never, if `limit` is too
    /// far to be an instant).
    async fn silent_for(&self, limit: Duration) {
        loop {
            let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(deadline) = last.checked_add(limit) else {
                return std::future::pending().await;
            };
            if Instant::now() >= deadline {
                return;
            }
            // Wakes at most once per `limit`, and looks again: a byte that
            // moved meanwhile pushed the deadline on.
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Failures to reach any worker: one warning per episode (a master out of
/// fds, or of ephemeral ports, fails every client for a while, and a line
/// each would bury the log).
static UNREACHABLE: Mutex<Episode> = Mutex::new(Episode::new());

/// Logs that a client was closed because no worker could be reached,
/// `why`: a warning when it starts an episode, else at debug level.
fn unreachable(why: &str, cause: &io::Error) {
    let mut episode = UNREACHABLE.lock().unwrap_or_else(PoisonError::into_inner);
    if episode.starts(std::time::Instant::now()) {
        tracing::warn!(cause = %cause, "{why}; client closed (one warning per episode)");
    } else {
        tracing::debug!(cause = %cause, closed = episode.count(), "{why}; client closed");
    }
}

/// The first connection a worker accepts, trying `targets` in order, with
/// its socket counted in `fds`. A worker that refuses (it died a moment ago:
/// ECONNREFUSED, or its Unix socket is gone: ENOENT) is skipped; one this
/// master cannot open a socket for (EMFILE: out of fds) or cannot connect
/// to from any local port (EADDRNOTAVAIL: out of ephemeral ports for that
/// worker's address) is skipped too, as the next may still work; when none
/// does, the client is closed, as any server that cannot serve closes it.
async fn connect(targets: &[Target], fds: &RelayFds) -> Option<(Upstream, HeldFd)> {
    let mut last = None;
    for target in targets {
        match connect_one(target, fds).await {
            Ok(connected) => return Some(connected),
            Err(err) => {
                tracing::debug!(%target, cause = %err, "worker unreachable");
                last = Some(err);
            }
        }
    }
    let err = last.unwrap_or_else(|| io::Error::other("no worker serves"));
    let why = if cluster::accept::is_resource_exhaustion(&err) {
        "no fd to reach a worker"
    } else if err.kind() == io::ErrorKind::AddrNotAvailable {
        "no local port left to reach a worker"
    } else {
        "no worker reachable"
    };
    unreachable(why, &err);
    None
}

/// One connection to `target`, with its fd counted in `fds` from the moment
/// it exists.
async fn connect_one(target: &Target, fds: &RelayFds) -> io::Result<(Upstream, HeldFd)> {
    match target {
        Target::Port(port) => {
            let socket = TcpSocket::new_v4()?;
            let held = fds.hold();
            let stream = socket
                .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, *port)))
                .await?;
            // Not fatal: only slower.
            let _ = stream.set_nodelay(true);
            Ok((Upstream::Tcp(stream), held))
        }
        Target::Path(path) => {
            let socket = tokio::net::UnixSocket::new_stream()?;
            let held = fds.hold();
            let stream = socket.connect(path).await?;
            Ok((Upstream::Unix(stream), held))
        }
    }
}
