//! The master–worker channel: fixed-size frames over a Unix socketpair, with a
//! socket riding along (SCM_RIGHTS) when the frame says so.
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
//! message (MSG_CTRUNC), which must then be closed, so `recv_frame` calls
//! `recvmsg(2)` and walks the control buffer with libc's `CMSG_*` macros.
//!
//! # Rules the code below follows
//!
//! - a socket travels with its own message in one `sendmsg`, with the 16 data
//!   bytes of the header (Linux drops SCM_RIGHTS sent with no data);
//! - send with `MSG_NOSIGNAL` (a dead peer is `EPIPE`, not a fatal SIGPIPE) and
//!   `MSG_DONTWAIT` (a full channel is `WouldBlock`; the caller decides to wait or
//!   to try another worker);
//! - receive with `MSG_CMSG_CLOEXEC`, so no passed fd leaks into a later exec;
//! - every fd that arrives becomes an [`OwnedFd`] at once, so any error path
//!   closes it by drop; the announced fd count is checked against what arrived,
//!   and `MSG_CTRUNC` (fds dropped by the kernel, e.g. at the fd limit) is an error.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Size of every frame on the channel, in bytes.
pub const FRAME_LEN: usize = 16;

/// The most fds one receive makes room for. Every message carries at most one;
/// room for a few more lets a peer that sends too many be caught as a count
/// mismatch (and the extra fds closed) rather than a truncated control message.
pub const MAX_FDS_PER_FRAME: usize = 4;

/// One message of the protocol. Each kind says whether a socket travels with it.
///
/// Wire format (little endian): `kind: u8, fd_count: u8, reserved: [0; 2],
/// arg: u32, seq: u64`. `arg` is the port of [`Message::Ready`]; `seq` numbers
/// connection handoffs so that an acknowledgement names the one it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Master → worker, with one accepted TCP connection to serve
    /// (`handoff --pass socket`). The worker answers [`Message::Ack`] or
    /// [`Message::Reject`] with the same `seq`.
    Connection {
        /// Handoff number, echoed by the acknowledgement.
        seq: u64,
    },
    /// Master → worker, with one listening socket to accept on
    /// (`--pass listener` and `--pass reuseport`).
    Listener,
    /// Master → worker: stop accepting, finish in-flight requests, exit 0.
    Stop,
    /// Worker → master: the worker is serving. `port` is its own port in
    /// `proxy` mode, `None` when it serves sockets handed to it.
    Ready {
        /// The worker's own listening port, if it has one.
        port: Option<u16>,
    },
    /// Worker → master: connection `seq`, and every connection handed to this
    /// worker before it, arrived (acknowledgements are cumulative: a channel
    /// keeps its order); the master may close its copies.
    Ack {
        /// The last handoff being acknowledged.
        seq: u64,
    },
    /// Worker → master: connection `seq` could not be taken (its fd did not
    /// arrive, e.g. the worker is at its fd limit); hand it to another worker.
    Reject {
        /// The handoff being refused.
        seq: u64,
    },
}

impl Message {
    /// How many fds travel with this kind of message.
    pub fn fd_count(&self) -> usize {
        match self {
            Message::Connection { .. } | Message::Listener => 1,
            _ => 0,
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Message::Connection { .. } => 1,
            Message::Listener => 2,
            Message::Stop => 3,
            Message::Ready { .. } => 4,
            Message::Ack { .. } => 5,
            Message::Reject { .. } => 6,
        }
    }

    /// The 16 bytes that carry this message.
    pub fn encode(&self) -> [u8; FRAME_LEN] {
        let (arg, seq) = match *self {
            Message::Ready { port } => (u32::from(port.unwrap_or(0)), 0),
            Message::Connection { seq } | Message::Ack { seq } | Message::Reject { seq } => {
                (0, seq)
            }
            Message::Listener | Message::Stop => (0, 0),
        };
        let mut frame = [0u8; FRAME_LEN];
        frame[0] = self.kind();
        frame[1] = self.fd_count() as u8;
        frame[4..8].copy_from_slice(&arg.to_le_bytes());
        frame[8..16].copy_from_slice(&seq.to_le_bytes());
        frame
    }

    /// Parses one frame; checks its length, its kind, that its announced fd
    /// count is the one its kind carries, and that every byte its kind does
    /// not use is zero.
    pub fn decode(frame: &[u8]) -> Result<Message, ChannelError> {
        let frame: &[u8; FRAME_LEN] = frame
            .try_into()
            .map_err(|_| ChannelError::BadLength(frame.len()))?;
        let arg = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(frame[8..16].try_into().expect("8 bytes"));
        let message = match frame[0] {
            1 => Message::Connection { seq },
            2 => Message::Listener,
            3 => Message::Stop,
            4 => Message::Ready {
                port: match u16::try_from(arg) {
                    Ok(0) => None,
                    Ok(port) => Some(port),
                    Err(_) => return Err(ChannelError::Malformed("port above 65535")),
                },
            },
            5 => Message::Ack { seq },
            6 => Message::Reject { seq },
            kind => return Err(ChannelError::UnknownKind(kind)),
        };
        if usize::from(frame[1]) != message.fd_count() {
            return Err(ChannelError::Malformed("fd count does not match the kind"));
        }
        // One encoding per message: fields its kind does not use must be zero.
        if message.encode() != *frame {
            return Err(ChannelError::Malformed("unused fields are not zero"));
        }
        Ok(message)
    }
}

/// What can go wrong on the channel. Callers branch on it: a worker exits on
/// any error but [`ChannelError::ControlTruncated`] for a connection (which it
/// rejects); the master treats an error as the death of that worker's channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
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
    /// The frame announced `announced` fds and `received` arrived; the ones that
    /// arrived have been closed.
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
    /// `sendmsg(MSG_NOSIGNAL | MSG_DONTWAIT)`. Returns `WouldBlock` (as
    /// [`ChannelError::Io`]) when the channel is full: the caller chooses to
    /// wait ([`Channel::send`]) or to skip this worker.
    pub fn try_send(
        &self,
        message: Message,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<(), ChannelError> {
        let frame = message.encode();
        let raw: Option<[RawFd; 1]> = fd.map(|fd| [fd.as_raw_fd()]);
        let sent = usize::from(raw.is_some());
        if sent != message.fd_count() {
            return Err(ChannelError::FdCountMismatch {
                announced: message.fd_count(),
                received: sent,
            });
        }
        let rights = raw.as_ref().map(|raw| [ControlMessage::ScmRights(raw)]);
        let cmsgs: &[ControlMessage] = rights.as_ref().map_or(&[], |rights| rights);
        let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
        match sendmsg::<()>(
            self.fd.as_raw_fd(),
            &[IoSlice::new(&frame)],
            cmsgs,
            flags,
            None,
        ) {
            Ok(_) => Ok(()),
            // The worker exited: its end is gone.
            Err(nix::Error::EPIPE | nix::Error::ECONNRESET) => Err(ChannelError::Closed),
            Err(e) => Err(ChannelError::Io(e.into())),
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
                Err(ChannelError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready.clear_ready();
                }
                result => return result,
            }
        }
    }

    /// The next frame if one is already queued, without waiting.
    pub fn try_recv(&self) -> Result<Option<(Message, Vec<OwnedFd>)>, ChannelError> {
        match recv_frame(self.fd.get_ref().as_fd()) {
            Err(ChannelError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            result => result.map(Some),
        }
    }

    /// Waits for the next frame and the fds that came with it.
    pub async fn recv(&self) -> Result<(Message, Vec<OwnedFd>), ChannelError> {
        loop {
            let mut ready = self.fd.ready(Interest::READABLE).await?;
            match recv_frame(self.fd.get_ref().as_fd()) {
                Err(ChannelError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready.clear_ready();
                }
                result => return result,
            }
        }
    }
}

/// One `recvmsg(MSG_CMSG_CLOEXEC | MSG_DONTWAIT)`: a frame and its fds, checked.
///
/// This side calls libc, not nix: when the kernel sets MSG_CTRUNC it has
/// still installed the fds that fit in our control buffer, and they must be
/// closed; nix refuses to walk a truncated control buffer (`cmsgs()` returns
/// ENOBUFS), which would leak them. The kernel writes only whole fds and sets
/// `msg_controllen` to what it wrote, so the `CMSG_*` walk below is safe.
fn recv_frame(fd: BorrowedFd<'_>) -> Result<(Message, Vec<OwnedFd>), ChannelError> {
    let mut frame = [0u8; FRAME_LEN + 1];
    // u64 words: the control buffer must be aligned for `cmsghdr`.
    let mut control = [0u64; 8];
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let control_len = unsafe { libc::CMSG_SPACE((MAX_FDS_PER_FRAME * size_of::<RawFd>()) as u32) };
    debug_assert!(control_len as usize <= size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: frame.as_mut_ptr().cast(),
        iov_len: frame.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control_len as _;
    // SAFETY: msg points at `frame` and `control`, which outlive the call,
    // with their true lengths.
    let received = unsafe {
        libc::recvmsg(
            fd.as_raw_fd(),
            &mut msg,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
        )
    };
    if received < 0 {
        let err = io::Error::last_os_error();
        // The peer exited with data unread; same as a clean close for us.
        if err.raw_os_error() == Some(libc::ECONNRESET) {
            return Err(ChannelError::Closed);
        }
        return Err(ChannelError::Io(err));
    }
    // Take ownership of every fd first, so each error below closes them.
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` up to msg_controllen; CMSG_FIRSTHDR
    // and CMSG_NXTHDR stay within it and return null at its end.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: non-null and within `control` (see above).
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_DATA points just past the header, inside `control`.
            let data = unsafe { libc::CMSG_DATA(cmsg) };
            let data_len = header.cmsg_len as usize - (data as usize - cmsg as usize);
            for i in 0..data_len / size_of::<RawFd>() {
                // SAFETY: the kernel just installed these fds in our table for
                // this message (MSG_CMSG_CLOEXEC); nothing else knows them, so
                // we own them. read_unaligned: CMSG_DATA need not be aligned.
                let raw = unsafe { data.cast::<RawFd>().add(i).read_unaligned() };
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    let bytes = received as usize;
    if bytes == 0 && fds.is_empty() {
        return Err(ChannelError::Closed);
    }
    if msg.msg_flags & libc::MSG_TRUNC != 0 || bytes != FRAME_LEN {
        return Err(ChannelError::BadLength(bytes));
    }
    let message = Message::decode(&frame[..FRAME_LEN]);
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
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
    use super::*;

    fn all_messages() -> Vec<Message> {
        vec![
            Message::Connection { seq: 7 },
            Message::Listener,
            Message::Stop,
            Message::Ready { port: Some(8080) },
            Message::Ready { port: None },
            Message::Ack { seq: u64::MAX },
            Message::Reject { seq: 1 },
        ]
    }

    /// Every message survives encode then decode unchanged.
    #[test]
    fn frames_round_trip() {
        for message in all_messages() {
            assert_eq!(Message::decode(&message.encode()).unwrap(), message);
        }
    }

    /// Short, long, unknown and self-contradicting frames are typed errors.
    #[test]
    fn bad_frames_are_rejected() {
        let good = Message::Ack { seq: 3 }.encode();
        assert!(matches!(
            Message::decode(&good[..15]),
            Err(ChannelError::BadLength(15))
        ));
        assert!(matches!(
            Message::decode(&[0; 17]),
            Err(ChannelError::BadLength(17))
        ));
        let mut kind = good;
        kind[0] = 99;
        assert!(matches!(
            Message::decode(&kind),
            Err(ChannelError::UnknownKind(99))
        ));
        let mut count = good;
        count[1] = 1;
        assert!(matches!(
            Message::decode(&count),
            Err(ChannelError::Malformed(_))
        ));
        let mut reserved = good;
        reserved[3] = 1;
        assert!(matches!(
            Message::decode(&reserved),
            Err(ChannelError::Malformed(_))
        ));
    }

    /// A socket sent with its message arrives as a working fd with that message.
    #[tokio::test(flavor = "current_thread")]
    async fn fd_travels_with_its_message() {
        let (a, b) = pair().unwrap();
        let (a, b) = (Channel::new(a).unwrap(), Channel::new(b).unwrap());
        let (mut w, r) = std::os::unix::net::UnixStream::pair().unwrap();
        a.send(Message::Connection { seq: 42 }, Some(r.as_fd()))
            .await
            .unwrap();
        drop(r);
        let (message, fds) = b.recv().await.unwrap();
        assert_eq!(message, Message::Connection { seq: 42 });
        assert_eq!(fds.len(), 1);
        use std::io::{Read, Write};
        w.write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        std::os::unix::net::UnixStream::from(fds.into_iter().next().unwrap())
            .read_exact(&mut got)
            .unwrap();
        assert_eq!(&got, b"hi");
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

    proptest::proptest! {
        /// Any bytes at all decode to a message or a typed error, never a
        /// panic; and what decodes encodes back to the same bytes.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            if let Ok(message) = Message::decode(&bytes) {
                proptest::prop_assert_eq!(&message.encode()[..], &bytes[..]);
            }
        }

        /// Every message survives encode then decode, whatever its fields.
        #[test]
        fn round_trip_any_fields(seq in proptest::num::u64::ANY, port in proptest::num::u16::ANY, kind in 0..6u8) {
            let message = match kind {
                0 => Message::Connection { seq },
                1 => Message::Listener,
                2 => Message::Stop,
                3 => Message::Ready { port: (port != 0).then_some(port) },
                4 => Message::Ack { seq },
                _ => Message::Reject { seq },
            };
            proptest::prop_assert_eq!(Message::decode(&message.encode()).unwrap(), message);
        }
    }

    // The tests that count this process's fds (an unexpected fd closed, a
    // truncated control message) are in tests/fd_accounting.rs, a test binary
    // of their own: other tests here open fds on other threads.

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
