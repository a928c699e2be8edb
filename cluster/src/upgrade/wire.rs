//! The upgrade protocol on the wire: its datagrams, and one end of a
//! connection ([`Conn`]) that sends and receives them with their fds, each
//! wait bounded.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr, sockopt};
use serde::{Deserialize, Serialize};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::channel::scm_rights;

/// The longest datagram read; a longer one is garbage.
const MAX_DATAGRAM: usize = 4096;

/// How often a connect to a master whose backlog is full is tried again
/// until its deadline.
const CONNECT_RETRY: Duration = Duration::from_millis(50);

/// One datagram of the upgrade protocol (the module doc of
/// [`super`] gives the order).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum Datagram {
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
    /// Old → new: `sockets` datagrams follow, each with one listening
    /// socket; `lent`: they are a service manager's (socket activation), and
    /// no master may shut them down.
    Offer {
        pid: u32,
        listen: SocketAddr,
        sockets: usize,
        #[serde(default)]
        lent: bool,
    },
    /// Old → new: socket `index` (with its fd).
    Socket { index: usize },
    /// New → old, every [`super::HEARTBEAT_INTERVAL`] while its workers
    /// start: still here.
    Waiting,
    /// New → old: every new worker serves.
    Ready,
    /// Old → new: the old master agrees to step back, once the new one
    /// confirms that it still lives.
    Released,
    /// New → old: the confirmation. From the moment the old master reads it,
    /// the sockets are the new master's.
    Taken,
    /// Old → new: the takeover is off (the new master was silent too long);
    /// the old master serves on.
    Aborted { reason: String },
}

/// Who is at the other end, as the kernel says (`SO_PEERCRED`): what a peer
/// says of itself is checked against this.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer {
    /// The peer's pid when it connected (or listened).
    pub pid: u32,
    /// Its effective uid then.
    pub uid: u32,
}

/// What a wait for the next datagram can end with, besides a datagram.
#[derive(Debug)]
pub(super) enum Silence {
    /// Nothing within the deadline.
    TimedOut,
    /// Something that is not a datagram of ours, or an error of the socket.
    Broken(anyhow::Error),
}

impl std::fmt::Display for Silence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Silence::TimedOut => write!(f, "no answer within {:?}", super::ANSWER_TIMEOUT),
            Silence::Broken(err) => write!(f, "{err:#}"),
        }
    }
}

/// A datagram received with its fds; `None` is the end of the connection
/// (the peer closed it, or exited).
pub(super) type Received = Option<(Datagram, Vec<OwnedFd>)>;

/// One end of an upgrade connection, registered with tokio.
pub(super) struct Conn {
    fd: AsyncFd<OwnedFd>,
    /// The other end.
    pub peer: Peer,
}

impl Conn {
    /// Takes a connected socket (made non-blocking here) and reads who is at
    /// the other end.
    pub fn new(fd: OwnedFd) -> io::Result<Conn> {
        let cred = socket::getsockopt(&fd, sockopt::PeerCredentials)?;
        let peer = Peer {
            pid: u32::try_from(cred.pid()).unwrap_or(0),
            uid: cred.uid(),
        };
        nix::fcntl::fcntl(
            fd.as_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        // SAFETY: `OwnedFd` keeps the fd open and unchanged for as long as
        // the AsyncFd that owns it lives; nothing else closes it.
        let fd = unsafe { AsyncFd::register(fd) }?;
        Ok(Conn { fd, peer })
    }

    /// Sends `datagram`, with `fd` if any, in one `sendmsg`. A peer that
    /// has closed its end, or shut its receiving side down, is EPIPE: the
    /// datagram did not reach it.
    pub async fn send(&self, datagram: &Datagram, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
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
    pub async fn recv(&self) -> anyhow::Result<Received> {
        loop {
            let mut ready = self.fd.ready(Interest::READABLE).await?;
            match self.try_recv()? {
                Some(received) => return Ok(received),
                None => ready.clear_ready(),
            }
        }
    }

    /// [`Conn::recv`] within `timeout`. At the deadline, what is queued is
    /// read before the peer is judged silent: a process that did not run for
    /// a while (stopped, or a loaded machine) finds its timer and the
    /// peer's datagram due at once, and must not take the peer for silent.
    pub async fn recv_within(&self, timeout: Duration) -> Result<Received, Silence> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Ok(Ok(received)) => Ok(received),
            Ok(Err(err)) => Err(Silence::Broken(err)),
            Err(_) => match self.try_recv() {
                Ok(Some(received)) => Ok(received),
                Ok(None) => Err(Silence::TimedOut),
                Err(err) => Err(Silence::Broken(err)),
            },
        }
    }

    /// The next datagram if one is queued, without waiting: `Ok(None)` when
    /// none is, `Ok(Some(None))` at end of file.
    pub fn try_recv(&self) -> anyhow::Result<Option<Received>> {
        let mut data = [0u8; MAX_DATAGRAM + 1];
        let received = loop {
            match scm_rights::recv_fds(self.fd.get_ref().as_fd(), &mut data) {
                Ok(received) => break received,
                Err(Errno::EAGAIN) => return Ok(None),
                // The peer closed its end with datagrams of ours unread. The
                // kernel says so once, before what the peer sent us, which
                // is still queued (an `aborted`, say): read on; the end of
                // file follows it.
                Err(Errno::ECONNRESET) => continue,
                Err(errno) => return Err(io::Error::from(errno).into()),
            }
        };
        if received.len == 0 && received.fds.is_empty() {
            return Ok(Some(None));
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
        Ok(Some(Some((datagram, received.fds))))
    }

    /// Shuts both directions of the connection down (`shutdown(SHUT_RDWR)`):
    /// from then on the peer's sends fail with EPIPE, while what it sent
    /// before is still queued here for [`Conn::try_recv`]. The kernel takes
    /// both under the same lock, so a datagram is either queued before the
    /// shutdown or refused: the point at which the old master decides.
    pub fn shut_down(&self) {
        if let Err(errno) = socket::shutdown(self.fd.get_ref().as_raw_fd(), socket::Shutdown::Both)
        {
            tracing::debug!(cause = %errno, "shutdown of an upgrade connection");
        }
    }
}

/// A new `SOCK_SEQPACKET` Unix socket, close-on-exec and non-blocking.
fn seqpacket() -> Result<OwnedFd, Errno> {
    socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
}

/// One non-blocking `connect` to the Unix socket at `path`. A listener whose
/// backlog is full (a master that does not accept: stalled, or flooded) is
/// EAGAIN at once; a blocking connect would wait for room for ever (issue
/// 19: the tenth try hung).
pub(super) fn try_connect(path: &Path) -> Result<OwnedFd, Errno> {
    let fd = seqpacket()?;
    let addr = UnixAddr::new(path)?;
    socket::connect(fd.as_raw_fd(), &addr)?;
    Ok(fd)
}

/// [`try_connect`], again every [`CONNECT_RETRY`] while the backlog is full,
/// until `deadline`; then EAGAIN.
pub(super) async fn connect(path: &Path, deadline: Instant) -> Result<OwnedFd, Errno> {
    loop {
        match try_connect(path) {
            Err(Errno::EAGAIN) if Instant::now() + CONNECT_RETRY < deadline => {
                tokio::time::sleep(CONNECT_RETRY).await;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two connected ends, as the old and the new master hold them.
    fn pair() -> (Conn, Conn) {
        let (a, b) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("a socketpair");
        (
            Conn::new(a).expect("register"),
            Conn::new(b).expect("register"),
        )
    }

    fn kind(received: Option<Received>) -> Option<Option<String>> {
        received.map(|received| received.map(|(datagram, _)| format!("{datagram:?}")))
    }

    /// The commit's one point (module doc of `upgrade`): a `taken` queued
    /// before the old master's shutdown is still read after it; one sent
    /// after is refused (EPIPE), and the new master then reads `aborted`.
    #[tokio::test(flavor = "current_thread")]
    async fn the_shutdown_decides_which_taken_counts() {
        let (old, new) = pair();
        new.send(&Datagram::Taken, None).await.expect("taken");
        old.send(
            &Datagram::Aborted {
                reason: "late".into(),
            },
            None,
        )
        .await
        .expect("aborted");
        old.shut_down();
        assert_eq!(
            kind(old.try_recv().expect("queued")),
            Some(Some("Taken".into()))
        );
        let (old, new) = pair();
        old.send(
            &Datagram::Aborted {
                reason: "late".into(),
            },
            None,
        )
        .await
        .expect("aborted");
        old.shut_down();
        let refused = new.send(&Datagram::Taken, None).await.expect_err("EPIPE");
        assert_eq!(refused.raw_os_error(), Some(libc::EPIPE), "{refused}");
        assert_eq!(
            old.try_recv().expect("nothing queued").map(|r| r.is_none()),
            Some(true)
        );
        assert_eq!(
            kind(new.try_recv().expect("queued")),
            Some(Some("Aborted { reason: \"late\" }".into()))
        );
    }

    /// A `released` sent to a new master that has died fails (EPIPE): a
    /// late `ready` does not hand anything over.
    #[tokio::test(flavor = "current_thread")]
    async fn released_to_a_dead_master_fails() {
        let (old, new) = pair();
        new.send(&Datagram::Ready, None).await.expect("ready");
        drop(new);
        assert_eq!(
            kind(old.try_recv().expect("queued")),
            Some(Some("Ready".into()))
        );
        let refused = old
            .send(&Datagram::Released, None)
            .await
            .expect_err("EPIPE");
        assert_eq!(refused.raw_os_error(), Some(libc::EPIPE), "{refused}");
    }

    /// A peer that closes with datagrams of ours unread makes the kernel
    /// report ECONNRESET before what it sent us: its `aborted` is still
    /// read, then the end of file (an old master gone is not one that
    /// called the takeover off).
    #[tokio::test(flavor = "current_thread")]
    async fn a_reset_does_not_hide_what_was_sent() {
        let (old, new) = pair();
        new.send(&Datagram::Waiting, None).await.expect("waiting");
        old.send(
            &Datagram::Aborted {
                reason: "gone".into(),
            },
            None,
        )
        .await
        .expect("aborted");
        drop(old);
        let first = new.recv().await.expect("a datagram");
        assert!(
            matches!(first, Some((Datagram::Aborted { .. }, _))),
            "{first:?}"
        );
        assert!(new.recv().await.expect("end of file").is_none());
    }
}
