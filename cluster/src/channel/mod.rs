//! The master–worker channel: fixed-size frames over a Unix socketpair, with a
//! socket riding along (SCM_RIGHTS) when the frame says so.
//!
//! # Layout
//!
//! - this module: [`Channel`] (one end, registered with tokio) and the errors
//!   a caller branches on, [`ChannelError`];
//! - [`frame`]: the wire format, [`Message`] to and from 16 bytes;
//! - [`scm_rights`]: the two syscalls, `sendmsg` and `recvmsg` with fds.
//!
//! # Why SOCK_SEQPACKET
//!
//! Node.js frames JSON with newlines over a stream socket and must then work out
//! which message a passed handle belongs to. A `SOCK_SEQPACKET` socketpair keeps
//! message boundaries, so one `sendmsg` is one frame and the fds it carries arrive
//! with exactly that frame: there is no reassembly and no way for an fd to drift
//! to the wrong message. Each frame is a fixed 16-byte header (see [`Message`])
//! and nothing else, so a short or long datagram is an error, not a partial read.
//!
//! # Why `nix` to send and `libc` to receive
//!
//! `nix::sys::socket::sendmsg` names the syscall and its flags the way
//! `man 2 sendmsg` does and builds the control message safely. The `sendfd`
//! crate is smaller but hides the flags this protocol must check. On the
//! receiving side nix will not hand over the fds of a truncated control
//! message (MSG_CTRUNC), which must then be closed, so
//! [`scm_rights::recv_fds`] calls `recvmsg(2)` and walks the control buffer
//! with libc's `CMSG_*` macros.
//!
//! # Rules the code follows
//!
//! - sockets travel with their own frame in one `sendmsg`, with the 16 data
//!   bytes of the header (Linux drops SCM_RIGHTS sent with no data): one for
//!   `Connection` and `Listener`, up to [`MAX_CONNECTIONS_PER_FRAME`] for a
//!   batch, `Connections`, whose header says how many;
//! - send with `MSG_NOSIGNAL` (a dead peer is `EPIPE`, not a fatal SIGPIPE) and
//!   `MSG_DONTWAIT` (a full channel is [`ChannelError::Full`]; the caller
//!   decides to wait or to try another worker);
//! - receive with `MSG_CMSG_CLOEXEC`, so no passed fd leaks into a later exec;
//! - every fd that arrives becomes an [`OwnedFd`] at once, so any error path
//!   closes it by drop; the announced fd count is checked against what arrived,
//!   and `MSG_CTRUNC` (fds dropped by the kernel, e.g. at the fd limit) is an error.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub mod frame;
pub mod scm_rights;

pub use frame::{FRAME_LEN, MAX_CONNECTIONS_PER_FRAME, Message};
pub use scm_rights::MAX_FDS_PER_FRAME;

/// What can go wrong on the channel. Callers branch on it: the master skips a
/// worker whose channel is [`ChannelError::Full`] and treats any other error
/// as the death of that worker's channel; a worker exits on any error but
/// [`ChannelError::ControlTruncated`] for a connection (which it rejects).
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The peer's receive queue is full (it has not read the frames before
    /// this one): nothing was sent. [`Channel::send`] waits for room;
    /// a caller of [`Channel::try_send`] may try another peer.
    #[error("channel full")]
    Full,
    /// The peer closed its end (it exited, or dropped the channel).
    #[error("channel closed by the peer")]
    Closed,
    /// The socket call failed.
    #[error("channel I/O: {0}")]
    Io(#[from] io::Error),
    /// A datagram that is not exactly one frame long.
    #[error("frame of {0} bytes, expected {FRAME_LEN}")]
    BadLength(usize),
    /// A frame with a kind this version does not know.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// A frame whose fields contradict each other.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The peer's frame announced `announced` fds and `received` arrived; the
    /// ones that arrived have been closed.
    #[error("frame announced {announced} fd(s) but {received} arrived")]
    FdCountMismatch {
        /// fds the header said would come.
        announced: usize,
        /// fds that came.
        received: usize,
    },
    /// The kernel set MSG_CTRUNC: fds were dropped, typically because the
    /// receiver is at its fd limit. `message` is the frame, if it parsed.
    #[error("control message truncated (receiver out of fds?)")]
    ControlTruncated {
        /// The frame that lost its fds, so a handoff can be rejected by `seq`.
        message: Option<Message>,
    },
}

/// One end of the channel: a non-blocking `SOCK_SEQPACKET` Unix socket
/// registered with tokio. All methods take `&self`, so one task may wait to
/// receive while another sends.
#[derive(Debug)]
pub struct Channel {
    fd: AsyncFd<OwnedFd>,
}

/// Creates the two ends of a new channel, both close-on-exec and non-blocking.
/// The supervisor clears close-on-exec on the worker's end in the child only.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .map_err(io::Error::from)
}

impl Channel {
    /// Wraps one end of a [`pair`] (or the inherited fd in a worker). Must run
    /// inside a tokio runtime.
    pub fn new(fd: OwnedFd) -> io::Result<Channel> {
        nix::fcntl::fcntl(
            fd.as_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        // SAFETY: `OwnedFd` keeps the fd open and unchanged for as long as the
        // AsyncFd that owns it lives; nothing else closes it.
        let fd = unsafe { AsyncFd::register(fd) }?;
        Ok(Channel { fd })
    }

    /// Sends `message` and, if it carries one, the socket `fd`, in one
    /// `sendmsg` ([`scm_rights::send_fds`]), without waiting:
    /// [`ChannelError::Full`] when the peer's queue has no room.
    ///
    /// # Panics
    ///
    /// If `fd` is not what `message` carries ([`Message::fd_count`]). That is
    /// a bug of the caller, not an event of the channel: the kind of a message
    /// fixes its fd count, so no input and no peer can cause it, and no caller
    /// could recover from it. As an error it would sit beside the errors of a
    /// misbehaving *peer* ([`ChannelError::FdCountMismatch`]), and a caller
    /// that skips a worker whose send failed (the handoff dispatcher) would
    /// skip every worker in turn and hide the bug. Checked in release builds
    /// too: it costs a comparison, and a wrong frame sent anyway would surface
    /// far from here, as a worker exiting on a count mismatch.
    pub fn try_send(
        &self,
        message: Message,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<(), ChannelError> {
        self.try_send_fds(message, fd.as_slice())
    }

    /// Sends `message` and the sockets it carries, `fds`, in one `sendmsg`,
    /// as [`Channel::try_send`] does: for a batch, [`Message::Connections`],
    /// whose fds are in the order of their `seq`.
    ///
    /// # Panics
    ///
    /// If `fds` are not as many as `message` carries, as [`Channel::try_send`].
    pub fn try_send_fds(
        &self,
        message: Message,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), ChannelError> {
        assert_eq!(
            fds.len(),
            message.fd_count(),
            "{message:?} carries {} fd(s)",
            message.fd_count()
        );
        match scm_rights::send_fds(self.fd.get_ref().as_fd(), &message.encode(), fds) {
            Ok(()) => Ok(()),
            // The peer's receive queue is full; nothing was sent.
            Err(Errno::EAGAIN) => Err(ChannelError::Full),
            // The peer exited: its end is gone.
            Err(Errno::EPIPE | Errno::ECONNRESET) => Err(ChannelError::Closed),
            Err(errno) => Err(ChannelError::Io(errno.into())),
        }
    }

    /// Sends like [`Channel::try_send`], waiting while the channel is full.
    pub async fn send(
        &self,
        message: Message,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<(), ChannelError> {
        loop {
            let mut ready = self.fd.ready(Interest::WRITABLE).await?;
            match self.try_send(message, fd) {
                Err(ChannelError::Full) => ready.clear_ready(),
                result => return result,
            }
        }
    }

    /// The next frame if one is already queued, without waiting.
    pub fn try_recv(&self) -> Result<Option<(Message, Vec<OwnedFd>)>, ChannelError> {
        let mut frame = [0u8; FRAME_LEN + 1];
        let received = loop {
            match scm_rights::recv_fds(self.fd.get_ref().as_fd(), &mut frame) {
                Ok(received) => break received,
                // Nothing queued.
                Err(Errno::EAGAIN) => return Ok(None),
                // The peer closed its end with frames of ours unread. The
                // kernel reports that (once) before the frames the peer sent
                // us, which are still queued: read on, so that none is lost
                // (a worker's last Ack); end of file follows them.
                Err(Errno::ECONNRESET) => continue,
                Err(errno) => return Err(ChannelError::Io(errno.into())),
            }
        };
        check(received, &frame).map(Some)
    }

    /// Waits for the next frame and the fds that came with it.
    pub async fn recv(&self) -> Result<(Message, Vec<OwnedFd>), ChannelError> {
        loop {
            let mut ready = self.fd.ready(Interest::READABLE).await?;
            match self.try_recv()? {
                Some(received) => return Ok(received),
                None => ready.clear_ready(),
            }
        }
    }
}

/// What one receive must be to count as a frame: exactly [`FRAME_LEN`] bytes
/// (`frame` has one byte more, so that a longer datagram shows), all its fds
/// (no MSG_CTRUNC), as many as its header announces. The fds are owned
/// already: every error returned here closes them.
fn check(
    received: scm_rights::Received,
    frame: &[u8; FRAME_LEN + 1],
) -> Result<(Message, Vec<OwnedFd>), ChannelError> {
    let scm_rights::Received {
        len,
        data_truncated,
        control_truncated,
        fds,
    } = received;
    // End of file: the peer closed its end and everything it sent was read.
    if len == 0 && fds.is_empty() {
        return Err(ChannelError::Closed);
    }
    if data_truncated || len != FRAME_LEN {
        return Err(ChannelError::BadLength(len));
    }
    let message = Message::decode(&frame[..FRAME_LEN]);
    if control_truncated {
        return Err(ChannelError::ControlTruncated {
            message: message.ok(),
        });
    }
    let message = message?;
    if fds.len() != message.fd_count() {
        return Err(ChannelError::FdCountMismatch {
            announced: message.fd_count(),
            received: fds.len(),
        });
    }
    Ok((message, fds))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use nix::sys::socket::MsgFlags;

    use super::*;

    // The tests that count this process's fds (an unexpected fd closed, a
    // truncated control message) are in tests/fd_accounting.rs, a test binary
    // of their own: other tests here open fds on other threads.

    /// A socket sent with its message arrives as a working fd with that message.
    #[tokio::test(flavor = "current_thread")]
    async fn fd_travels_with_its_message() {
        let (a, b) = pair().unwrap();
        let (a, b) = (Channel::new(a).unwrap(), Channel::new(b).unwrap());
        let (mut w, r) = UnixStream::pair().unwrap();
        a.send(Message::Connection { seq: 42 }, Some(r.as_fd()))
            .await
            .unwrap();
        drop(r);
        let (message, fds) = b.recv().await.unwrap();
        assert_eq!(message, Message::Connection { seq: 42 });
        assert_eq!(fds.len(), 1);
        w.write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        UnixStream::from(fds.into_iter().next().unwrap())
            .read_exact(&mut got)
            .unwrap();
        assert_eq!(&got, b"hi");
    }

    /// A peer that reads nothing fills the channel: `try_send` says `Full`
    /// (not an I/O error), and the frames sent before are all there.
    #[tokio::test(flavor = "current_thread")]
    async fn full_channel_is_full() {
        let (a, b) = pair().unwrap();
        let (a, b) = (Channel::new(a).unwrap(), Channel::new(b).unwrap());
        let mut sent = 0u64;
        let err = loop {
            match a.try_send(Message::Ack { seq: sent }, None) {
                Ok(()) => sent += 1,
                Err(err) => break err,
            }
            assert!(sent < 1_000_000, "a socketpair's queue is bounded");
        };
        assert!(matches!(err, ChannelError::Full), "{err:?}");
        for seq in 0..sent {
            let (message, _) = b.try_recv().unwrap().expect("queued");
            assert_eq!(message, Message::Ack { seq });
        }
        assert!(b.try_recv().unwrap().is_none());
    }

    /// Sending a message with the wrong number of fds is the caller's bug:
    /// a panic that says so, not an error that looks like the peer's.
    #[tokio::test(flavor = "current_thread")]
    #[should_panic(expected = "carries 1 fd(s)")]
    async fn missing_fd_is_a_bug_of_the_caller() {
        let (a, _b) = pair().unwrap();
        let a = Channel::new(a).unwrap();
        let _ = a.try_send(Message::Listener, None);
    }

    /// A frame cut short (the peer wrote part of one, then closed): a typed
    /// error for the piece, then `Closed`.
    #[tokio::test(flavor = "current_thread")]
    async fn closed_mid_frame() {
        let (a, b) = pair().unwrap();
        let b = Channel::new(b).unwrap();
        let frame = Message::Ack { seq: 5 }.encode();
        nix::sys::socket::send(a.as_raw_fd(), &frame[..7], MsgFlags::empty()).unwrap();
        drop(a);
        assert!(matches!(b.recv().await, Err(ChannelError::BadLength(7))));
        assert!(matches!(b.recv().await, Err(ChannelError::Closed)));
    }

    /// Regression (issue 10, the ack lost at a worker's exit): a peer that
    /// exits with frames of ours unread makes the kernel report ECONNRESET
    /// before the frames it sent us; those frames are still delivered, in
    /// order, and only then `Closed`.
    #[tokio::test(flavor = "current_thread")]
    async fn frames_sent_before_a_reset_are_delivered() {
        let (a, b) = pair().unwrap();
        let (a, b) = (Channel::new(a).unwrap(), Channel::new(b).unwrap());
        b.send(Message::Ack { seq: 1 }, None).await.unwrap();
        b.send(Message::Ack { seq: 2 }, None).await.unwrap();
        // Left unread in b's queue when b closes.
        a.send(Message::Stop { grace_ms: 5000 }, None)
            .await
            .unwrap();
        drop(b);
        assert_eq!(a.recv().await.unwrap().0, Message::Ack { seq: 1 });
        assert_eq!(a.try_recv().unwrap().unwrap().0, Message::Ack { seq: 2 });
        assert!(matches!(a.recv().await, Err(ChannelError::Closed)));
    }

    /// A batch of sockets travels in one frame: each arrives as a working
    /// fd, in the order sent, with the frame that numbers them.
    #[tokio::test(flavor = "current_thread")]
    async fn batch_travels_in_one_frame() {
        let (a, b) = pair().unwrap();
        let (a, b) = (Channel::new(a).unwrap(), Channel::new(b).unwrap());
        let count = MAX_CONNECTIONS_PER_FRAME;
        let (mut writers, readers): (Vec<_>, Vec<_>) =
            (0..count).map(|_| UnixStream::pair().unwrap()).unzip();
        let message = Message::Connections {
            seq: 100,
            count: count as u8,
        };
        let borrowed: Vec<_> = readers.iter().map(|r| r.as_fd()).collect();
        a.try_send_fds(message, &borrowed).unwrap();
        drop(borrowed);
        drop(readers);
        let (received, fds) = b.recv().await.unwrap();
        assert_eq!(received, message);
        assert_eq!(fds.len(), count);
        for (i, (writer, fd)) in writers.iter_mut().zip(fds).enumerate() {
            writer.write_all(&[i as u8]).unwrap();
            let mut got = [0u8; 1];
            UnixStream::from(fd).read_exact(&mut got).unwrap();
            assert_eq!(got[0], i as u8, "fd {i} is not the {i}th socket sent");
        }
    }

    /// A batch sent with fewer fds than its header announces is the
    /// caller's bug, as for a single connection.
    #[tokio::test(flavor = "current_thread")]
    #[should_panic(expected = "carries 3 fd(s)")]
    async fn batch_short_of_fds_is_a_bug_of_the_caller() {
        let (a, _b) = pair().unwrap();
        let a = Channel::new(a).unwrap();
        let (x, _y) = UnixStream::pair().unwrap();
        let message = Message::Connections { seq: 1, count: 3 };
        let _ = a.try_send_fds(message, &[x.as_fd(), x.as_fd()]);
    }

    /// Garbage bytes and a closed peer are typed errors, never a panic.
    #[tokio::test(flavor = "current_thread")]
    async fn garbage_then_close() {
        let (a, b) = pair().unwrap();
        let b = Channel::new(b).unwrap();
        nix::sys::socket::send(a.as_raw_fd(), b"not a frame", MsgFlags::empty()).unwrap();
        assert!(matches!(b.recv().await, Err(ChannelError::BadLength(11))));
        drop(a);
        assert!(matches!(b.recv().await, Err(ChannelError::Closed)));
    }
}
