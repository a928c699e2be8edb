//! Passing fds between processes: `sendmsg(2)` and `recvmsg(2)` with an
//! `SCM_RIGHTS` control message. The bytes and the fds of one datagram, no
//! more: what they must be is checked by the channel ([`super`]).
//!
//! The kernel does the work. `sendmsg` takes a reference to each open file
//! named in the control message; `recvmsg` installs a new fd for each in the
//! receiver's table (the numbers differ, the open file is the same) and writes
//! the new numbers into the receiver's control buffer.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

use super::frame::MAX_CONNECTIONS_PER_FRAME;

/// The most fds one receive makes room for. A frame carries at most
/// [`MAX_CONNECTIONS_PER_FRAME`]; room for a few more lets a peer that sends
/// too many be caught as a count mismatch (and the extra fds closed) rather
/// than a truncated control message.
pub const MAX_FDS_PER_FRAME: usize = MAX_CONNECTIONS_PER_FRAME + 4;

/// The receive control buffer, in u64 words (aligned for `cmsghdr`): one
/// header and room for [`MAX_FDS_PER_FRAME`] fds, as `CMSG_SPACE` counts it
/// (checked at each receive). 160 bytes on the stack.
const CONTROL_WORDS: usize =
    (size_of::<libc::cmsghdr>() + MAX_FDS_PER_FRAME * size_of::<RawFd>()).div_ceil(8);

/// One `sendmsg(MSG_NOSIGNAL | MSG_DONTWAIT)`: `data` and `fds` as one datagram.
///
/// `MSG_NOSIGNAL`: a peer that has gone is `EPIPE`, not a fatal SIGPIPE.
/// `MSG_DONTWAIT`: a full channel is `EAGAIN`; the caller decides to wait or
/// to try another worker. With no fds, no control message at all.
///
/// # Panics
///
/// With more than [`MAX_CONNECTIONS_PER_FRAME`] fds, which no frame carries.
pub fn send_fds(channel: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> nix::Result<()> {
    assert!(
        fds.len() <= MAX_CONNECTIONS_PER_FRAME,
        "at most {MAX_CONNECTIONS_PER_FRAME} fds per frame"
    );
    // The raw numbers, on the stack: this runs once per handoff.
    let mut raw = [0 as RawFd; MAX_CONNECTIONS_PER_FRAME];
    for (raw, fd) in raw.iter_mut().zip(fds) {
        *raw = fd.as_raw_fd();
    }
    let rights = [ControlMessage::ScmRights(&raw[..fds.len()])];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
    // SOCK_SEQPACKET: the datagram goes whole or not at all, never in part.
    sendmsg::<()>(
        channel.as_raw_fd(),
        &[IoSlice::new(data)],
        cmsgs,
        flags,
        None,
    )?;
    Ok(())
}

/// What one `recvmsg` delivered: data bytes, flags, and the fds that came.
#[derive(Debug)]
pub struct Received {
    /// Bytes of data read into the caller's buffer (0 at end of file).
    pub len: usize,
    /// MSG_TRUNC: the datagram was longer than the buffer; the rest is lost.
    pub data_truncated: bool,
    /// MSG_CTRUNC: the kernel dropped fds, because the control buffer was too
    /// small or this process is at its fd limit.
    pub control_truncated: bool,
    /// Every fd the kernel installed for this datagram, owned: dropping one
    /// closes it.
    pub fds: Vec<OwnedFd>,
}

/// One `recvmsg(MSG_CMSG_CLOEXEC | MSG_DONTWAIT)` into `data`, with room for
/// [`MAX_FDS_PER_FRAME`] fds. `MSG_CMSG_CLOEXEC`: no fd that arrives leaks into
/// a later exec. A queue with nothing in it is `EAGAIN`.
///
/// libc, not nix: when the kernel sets MSG_CTRUNC it has still installed the
/// fds that fit in our control buffer, and they must be closed; nix refuses to
/// walk a truncated control buffer (`cmsgs()` returns ENOBUFS), which would
/// leak them.
pub fn recv_fds(channel: BorrowedFd<'_>, data: &mut [u8]) -> nix::Result<Received> {
    // u64 words: the control buffer must be aligned for `cmsghdr`.
    let mut control = [0u64; CONTROL_WORDS];
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let control_len = unsafe { libc::CMSG_SPACE((MAX_FDS_PER_FRAME * size_of::<RawFd>()) as u32) };
    // Never more than the buffer: the kernel would write past it.
    assert!(control_len as usize <= size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control_len as _;
    let flags = libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT;
    // SAFETY: msg points at `data` and `control`, which outlive the call,
    // with their true lengths.
    let len = Errno::result(unsafe { libc::recvmsg(channel.as_raw_fd(), &mut msg, flags) })?;
    Ok(Received {
        len: len as usize,
        data_truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        control_truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
        // SAFETY: `msg` was just filled by a successful recvmsg, and nothing
        // has read its control buffer yet.
        fds: unsafe { take_fds(&msg) },
    })
}

/// The fds in the SCM_RIGHTS control messages of `msg`, each made an
/// [`OwnedFd`] at once so that any later error closes it.
///
/// The kernel writes only whole fds, also when it truncates, and sets
/// `msg_controllen` to what it wrote, so the `CMSG_*` walk stays in bounds.
///
/// # Safety
///
/// `msg` was filled by a successful `recvmsg`, and no one has taken its fds
/// yet (each would then have two owners).
unsafe fn take_fds(msg: &libc::msghdr) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    // SAFETY: the kernel filled the control buffer up to msg_controllen;
    // CMSG_FIRSTHDR and CMSG_NXTHDR stay within it and return null at its end.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    while !cmsg.is_null() {
        // SAFETY: non-null and within the control buffer (see above).
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_DATA points just past the header, inside the buffer.
            let data = unsafe { libc::CMSG_DATA(cmsg) };
            let data_len = header.cmsg_len as usize - (data as usize - cmsg as usize);
            for i in 0..data_len / size_of::<RawFd>() {
                // SAFETY: in bounds (cmsg_len); read_unaligned: CMSG_DATA need
                // not be aligned for an int.
                let raw = unsafe { data.cast::<RawFd>().add(i).read_unaligned() };
                // SAFETY: the kernel just installed this fd in our table for
                // this datagram; nothing else in this process knows its
                // number, so we own it.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    fds
}
