//! The upgrade socket a master serves (`--upgrade-socket PATH`): bound 0600,
//! never taking a live master's path, accepting only peers of its own uid,
//! and only a few at a time; and the socket a new master binds beside the
//! path (`.NAME.takeover-PID`), removed by whoever sees that master dead
//! when it could not remove it itself (SIGKILL).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    ///
    /// First it removes what dead masters left there ([`sweep_dead_takeovers`]):
    /// a new master SIGKILLed during a takeover cannot remove its own.
    pub fn bind_beside(path: &Path) -> anyhow::Result<Endpoint> {
        let beside = beside(path, std::process::id()).ok_or_else(|| {
            UsageError(format!(
                "--upgrade-socket {}: not a file name",
                path.display()
            ))
        })?;
        sweep_dead_takeovers(path);
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

/// The path a new master of pid `pid` binds beside `path` ([`Endpoint::bind_beside`]):
/// `.NAME.takeover-PID` in the same folder; `None` if `path` has no file name.
fn beside(path: &Path, pid: u32) -> Option<PathBuf> {
    let name = path.file_name()?;
    Some(path.with_file_name(format!(".{}.takeover-{pid}", name.to_string_lossy())))
}

/// The pid of a file named `file` if it is exactly `.NAME.takeover-PID` for
/// `name` (`PID` in decimal digits, no sign, no leading zero: the name
/// [`beside`] makes); `None` for every other name.
fn takeover_pid(file: &OsStr, name: &OsStr) -> Option<u32> {
    let file = file.to_str()?;
    let rest = file
        .strip_prefix('.')?
        .strip_prefix(name.to_str()?)?
        .strip_prefix(".takeover-")?;
    let canonical = !rest.is_empty()
        && !rest.starts_with('0')
        && rest.bytes().all(|byte| byte.is_ascii_digit());
    canonical.then(|| rest.parse().ok()).flatten()
}

/// Whether process `pid` has exited: `/proc` has no such process, or a
/// zombie (dead, not yet reaped by its parent). A process we cannot read
/// for another reason counts as alive.
fn is_dead(pid: u32) -> bool {
    match crate::procfs::stat(pid) {
        Ok(stat) => matches!(stat.state, 'Z' | 'X'),
        Err(crate::procfs::ProcError::Gone { .. }) => true,
        Err(_) => false,
    }
}

/// Removes `file`, the `.NAME.takeover-PID` of a new master that is dead
/// (`pid`), if it is a socket nobody listens on (connect(2): ECONNREFUSED).
/// Anything else (another kind of file, a socket that answers, a pid
/// alive, perhaps reused) is left alone. Returns whether it removed it.
fn remove_if_dead(file: &Path, pid: u32) -> bool {
    if pid == std::process::id() || !is_dead(pid) {
        return false;
    }
    let socket = std::fs::symlink_metadata(file).is_ok_and(|meta| meta.file_type().is_socket());
    if !socket || wire::try_connect(file).err() != Some(Errno::ECONNREFUSED) {
        return false;
    }
    match std::fs::remove_file(file) {
        Ok(()) => {
            tracing::info!(path = %file.display(), new_master = pid, "removed the upgrade socket a dead new master left");
            true
        }
        Err(err) => {
            tracing::warn!(path = %file.display(), cause = %err, "cannot remove the upgrade socket a dead new master left");
            false
        }
    }
}

/// Removes every `.NAME.takeover-PID` beside `path` (NAME its file name)
/// whose master is dead and whose socket nobody listens on
/// ([`remove_if_dead`]): what new masters SIGKILLed during a takeover
/// left, when the old master could not see them die. Only that exact
/// pattern of name is looked at; a folder we cannot read is left alone.
pub(super) fn sweep_dead_takeovers(path: &Path) {
    let Some(name) = path.file_name() else {
        return;
    };
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        if let Some(pid) = takeover_pid(&entry.file_name(), name) {
            remove_if_dead(&entry.path(), pid);
        }
    }
}

/// After a takeover by `pid` failed: if that new master dies within
/// `within` (a pidfd, `pidfd_open(2)`, is readable once it has exited),
/// removes its `.NAME.takeover-PID` beside `path` ([`remove_if_dead`]). A
/// master stopped or giving up removes its own as it exits; one SIGKILLed
/// cannot, and the old master is the one that knows its pid. One still
/// alive after `within` (stopped, or its pid reused) is left to remove its
/// own, or to the sweep of the next new master at `path`.
pub(super) async fn remove_when_dead(path: PathBuf, pid: u32, within: Duration) {
    let Some(file) = beside(&path, pid) else {
        return;
    };
    if !std::fs::symlink_metadata(&file).is_ok_and(|meta| meta.file_type().is_socket()) {
        return;
    }
    let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: pidfd_open takes a pid and flags, and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
    if raw >= 0 {
        // SAFETY: pidfd_open just returned this fd; nothing else owns it.
        let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
        // SAFETY: the AsyncFd owns the pidfd and closes it when dropped.
        let exited = match unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) } {
            Ok(pidfd) => matches!(
                tokio::time::timeout(within, pidfd.readable()).await,
                Ok(Ok(_))
            ),
            Err(_) => false,
        };
        if !exited {
            return;
        }
    }
    // ESRCH (or a kernel before 5.3: ENOSYS): `remove_if_dead` reads `/proc`.
    remove_if_dead(&file, pid);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid that is dead: a child of ours that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("reap true");
        pid
    }

    /// A stale socket at `path`: bound, listened on, closed.
    fn stale_socket(path: &Path) {
        drop(std::os::unix::net::UnixListener::bind(path).expect("bind"));
    }

    /// Only the exact name `.NAME.takeover-PID` gives a pid.
    #[test]
    fn takeover_pid_reads_only_its_pattern() {
        let name = OsStr::new("upgrade.sock");
        let pid = |file: &str| takeover_pid(OsStr::new(file), name);
        assert_eq!(pid(".upgrade.sock.takeover-123"), Some(123));
        for other in [
            "upgrade.sock",
            ".upgrade.sock.takeover-",
            ".upgrade.sock.takeover-0123",
            ".upgrade.sock.takeover-+12",
            ".upgrade.sock.takeover-12x",
            ".upgrade.sock.takeover-99999999999",
            "upgrade.sock.takeover-12",
            ".other.sock.takeover-12",
            ".upgrade.sock.takeover-12.bak",
        ] {
            assert_eq!(pid(other), None, "{other}");
        }
        assert_eq!(
            beside(Path::new("/run/x/up.sock"), 7).as_deref(),
            Some(Path::new("/run/x/.up.sock.takeover-7"))
        );
    }

    /// The sweep removes a stale socket of a dead pid with that name, and
    /// nothing else: not a regular file of that name, not a socket of a
    /// live pid, not a socket someone listens on, not another name.
    #[test]
    fn sweep_removes_only_dead_masters_stale_sockets() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("upgrade.sock");
        let dead = dead_pid();
        let at = |pid: u32| beside(&path, pid).expect("a file name");
        stale_socket(&at(dead));
        let file_pid = dead_pid();
        std::fs::write(at(file_pid), "not a socket").expect("a file");
        let live = std::process::id();
        stale_socket(&at(live));
        let listening_pid = dead_pid();
        let _listening = std::os::unix::net::UnixListener::bind(at(listening_pid)).expect("bind");
        let other = dir.path().join(format!(".other.sock.takeover-{dead}"));
        stale_socket(&other);
        sweep_dead_takeovers(&path);
        assert!(!at(dead).exists(), "the dead master's stale socket is left");
        for kept in [at(file_pid), at(live), at(listening_pid), other] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
    }
}
