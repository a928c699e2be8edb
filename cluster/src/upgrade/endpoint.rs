//! The upgrade socket a master serves (`--upgrade-socket PATH`): bound 0600,
//! never taking a live master's path, accepting only peers of its own uid,
//! and only a few at a time.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::MAX_PENDING_PEERS;
use super::wire::{self, Conn};
use crate::cli::UsageError;
use crate::episode::Episode;

/// The backlog of the upgrade socket: takeovers are rare.
const UPGRADE_BACKLOG: i32 = 8;

/// The upgrade socket: its path, and which file it created there, so that it
/// removes only its own.
pub(super) struct Endpoint {
    path: PathBuf,
    /// (device, inode) of the socket file bound.
    file: (u64, u64),
    listener: AsyncFd<OwnedFd>,
    /// One permit per peer not yet judged.
    pending: Arc<Semaphore>,
    /// Peers refused at the door (another uid, too many): one warning per
    /// episode.
    refused: Episode,
    /// Whether the file at `path` is still ours to remove when this is
    /// dropped: not after a handover, when the successor moves its own
    /// onto the path (see [`Endpoint::handed_over`]).
    remove_file: bool,
}

impl Endpoint {
    /// Binds PATH with mode 0600. A live master's socket there is never
    /// taken; a stale one (nobody accepts) is replaced; anything that is not
    /// a socket is left alone. Every refusal is a usage error.
    pub fn bind(path: &Path) -> anyhow::Result<Endpoint> {
        let usage =
            |what: String| UsageError(format!("--upgrade-socket {}: {what}", path.display()));
        clear_stale(path).map_err(usage)?;
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
            // SAFETY: the AsyncFd owns the fd and closes it when dropped.
            listener: unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?,
            pending: Arc::new(Semaphore::new(MAX_PENDING_PEERS)),
            refused: Episode::default(),
            remove_file: true,
        };
        socket::listen(
            endpoint.listener.get_ref(),
            socket::Backlog::new(UPGRADE_BACKLOG)?,
        )?;
        Ok(endpoint)
    }

    /// Binds a socket beside PATH (same folder: `.NAME.takeover-PID`), to be
    /// moved onto PATH by [`Endpoint::publish`] once this master owns the
    /// sockets. For a new master whose `--upgrade-socket` is the old
    /// master's path: it cannot bind there while the old one serves it, and
    /// binding only after the handover could fail when nothing can be
    /// undone any more (issue 19: a slow old master left the chain without
    /// a socket). Bound now, every failure is a usage error at start.
    pub fn bind_beside(path: &Path) -> anyhow::Result<Endpoint> {
        let name = path.file_name().ok_or_else(|| {
            UsageError(format!(
                "--upgrade-socket {}: not a file name",
                path.display()
            ))
        })?;
        let beside = path.with_file_name(format!(
            ".{}.takeover-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        Endpoint::bind(&beside)
    }

    /// Moves the socket file onto `path` with `rename(2)`, which replaces
    /// whatever is there (the old master's file) in one step: a peer finds
    /// the old socket or the new one, never nothing.
    pub fn publish(&mut self, path: &Path) -> io::Result<()> {
        std::fs::rename(&self.path, path)?;
        self.path = path.to_owned();
        Ok(())
    }

    /// Closes the socket after a handover, leaving its file: the path is
    /// the successor's now, and it moves its own socket there. Removing ours
    /// could race with that move (our check of the inode, its rename, our
    /// unlink: the successor's file gone, and the next takeover with it).
    pub fn handed_over(mut self) {
        self.remove_file = false;
    }

    /// The path it is bound at now.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next connection from a peer of our own uid, with its place among
    /// the [`MAX_PENDING_PEERS`] (to give back once its `hello` is judged).
    /// Peers of another uid (`SO_PEERCRED`), and peers beyond the limit, are
    /// closed at once, with one warning per episode.
    pub async fn accept(&mut self) -> io::Result<(Conn, OwnedSemaphorePermit)> {
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
            let conn = match Conn::new(fd) {
                Ok(conn) => conn,
                Err(err) => {
                    self.refuse(0, 0, &format!("no peer credentials ({err})"));
                    continue;
                }
            };
            // SAFETY: geteuid has no precondition and cannot fail.
            let uid = unsafe { libc::geteuid() };
            if conn.peer.uid != uid {
                self.refuse(
                    conn.peer.pid,
                    conn.peer.uid,
                    "refused a peer of another uid",
                );
                continue;
            }
            match self.pending.clone().try_acquire_owned() {
                Ok(permit) => return Ok((conn, permit)),
                Err(_) => self.refuse(
                    conn.peer.pid,
                    conn.peer.uid,
                    "refused a peer: too many peers connected and silent at once",
                ),
            }
        }
    }

    /// Logs a peer closed at the door: a warning when it starts an episode,
    /// else at debug level, with the count so far.
    fn refuse(&mut self, peer_pid: u32, peer_uid: u32, what: &str) {
        if self.refused.starts(Instant::now()) {
            tracing::warn!(peer_pid, peer_uid, "upgrade socket: {what}");
        } else {
            let refused = self.refused.count();
            tracing::debug!(peer_pid, peer_uid, refused, "upgrade socket: {what}");
        }
    }
}

impl Drop for Endpoint {
    /// Removes the socket file if it is still the one we bound.
    fn drop(&mut self) {
        if !self.remove_file {
            return;
        }
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.file);
        if ours {
            if let Err(err) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), cause = %err, "cannot remove the upgrade socket");
            }
        }
    }
}

/// Makes room for a socket at `path`: nothing there, or a stale socket
/// (nobody listens: ECONNREFUSED), which is removed. A live master's socket
/// (a connect succeeds, or finds its backlog full), or anything that is not
/// a socket, is refused with the reason.
fn clear_stale(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => Err("exists and is not a socket".into()),
        Ok(_) => match wire::try_connect(path) {
            Ok(_) => Err("a live master serves it (not taken over)".into()),
            Err(Errno::EAGAIN) => {
                Err("a live master serves it, and accepts nothing (stalled?)".into())
            }
            Err(Errno::ECONNREFUSED) => {
                tracing::info!(path = %path.display(), "replacing a stale upgrade socket");
                std::fs::remove_file(path)
                    .map_err(|err| format!("cannot remove the stale socket: {err}"))
            }
            Err(errno) => Err(format!("a socket in use ({errno})")),
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err.to_string()),
    }
}
