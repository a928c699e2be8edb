//! The test as an impostor worker: it takes over the channel of a real
//! worker it has stopped (SIGSTOP), and speaks to the master as that worker
//! would, or as no worker should.
//!
//! No misbehaving worker is built into the binaries: the test duplicates the
//! worker's end of its channel into itself with `pidfd_open(2)` and
//! `pidfd_getfd(2)` (Linux 5.6 or later; the caller needs ptrace rights over
//! the worker, as root has). The worker's fd number is in its environment,
//! `CLUSTER_CHANNEL_FD` in `/proc/<pid>/environ`. The duplicate is the same
//! open socket: the master cannot tell the impostor from the worker, and
//! while the worker is stopped the impostor alone reads what the master sends.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use anyhow::{Context, bail};
use cluster::channel::{FRAME_LEN, Message, scm_rights};
use cluster::worker::CHANNEL_FD_ENV;
use nix::errno::Errno;

use crate::proc::wait_until;

/// A worker's channel, duplicated into the test. Dropping it closes the
/// duplicate; the socket lives on while the worker holds it.
pub struct Impostor {
    /// Our fd for the worker's end of the channel.
    channel: OwnedFd,
}

impl Impostor {
    /// Takes over the channel of worker `pid`, which the caller has stopped
    /// (else the worker and the test would both read the master's frames).
    pub fn take_over(pid: u32) -> anyhow::Result<Impostor> {
        let environ = std::fs::read(format!("/proc/{pid}/environ"))
            .with_context(|| format!("read the environment of worker {pid}"))?;
        let prefix = format!("{CHANNEL_FD_ENV}=");
        let Some(value) = environ
            .split(|byte| *byte == 0)
            .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
        else {
            bail!("worker {pid} has no {CHANNEL_FD_ENV} in its environment");
        };
        let target: RawFd = std::str::from_utf8(value)?
            .parse()
            .with_context(|| format!("{CHANNEL_FD_ENV} of worker {pid}"))?;
        let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
        // SAFETY: pidfd_open takes a pid and flags, and returns a new fd or -1.
        let pidfd = Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })
            .context("pidfd_open")?;
        // SAFETY: pidfd_open just made this fd, in our table, for us alone.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
        let pidfd_raw = pidfd.as_raw_fd();
        // SAFETY: pidfd_getfd takes a pidfd, the target's fd number and flags,
        // and returns a new fd (close-on-exec) for the same open file, or -1.
        let fd =
            Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd_raw, target, 0) })
                .with_context(|| format!("pidfd_getfd of fd {target} of worker {pid}"))?;
        // SAFETY: pidfd_getfd just installed this fd in our table for us
        // alone; the worker keeps its own fd for the same socket.
        let channel = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(Impostor { channel })
    }

    /// Sends `message` to the master as the worker, without waiting:
    /// `EAGAIN` when the master's queue is full, `EPIPE` once the master has
    /// closed its end (it has reaped the worker).
    pub fn send(&self, message: Message) -> Result<(), Errno> {
        scm_rights::send_fds(self.channel.as_fd(), &message.encode(), &[])
    }

    /// How many bytes of frames from the master wait in the worker's queue
    /// (`FIONREAD`; on a `SOCK_SEQPACKET` socket, all the queued frames).
    pub fn queued_bytes(&self) -> anyhow::Result<usize> {
        let mut queued: libc::c_int = 0;
        let fd = self.channel.as_raw_fd();
        // SAFETY: FIONREAD writes one int through the pointer, to `queued`.
        Errno::result(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) })
            .context("ioctl(FIONREAD)")?;
        Ok(usize::try_from(queued)?)
    }

    /// The next frame the master sent the worker that is not a `Ping`, with
    /// the fds that came with it; waits up to `timeout`.
    pub fn recv(&self, timeout: Duration) -> anyhow::Result<(Message, Vec<OwnedFd>)> {
        let mut received = None;
        let mut failed = None;
        wait_until(timeout, || {
            let mut frame = [0u8; FRAME_LEN];
            match scm_rights::recv_fds(self.channel.as_fd(), &mut frame) {
                Ok(got) => match Message::decode(&frame[..got.len]) {
                    Ok(Message::Ping { .. }) => false,
                    Ok(message) => {
                        received = Some((message, got.fds));
                        true
                    }
                    Err(err) => {
                        failed = Some(anyhow::Error::from(err));
                        true
                    }
                },
                Err(Errno::EAGAIN) => false,
                Err(errno) => {
                    failed = Some(anyhow::Error::from(errno).context("recvmsg"));
                    true
                }
            }
        });
        if let Some(err) = failed {
            return Err(err);
        }
        received.with_context(|| format!("no frame from the master within {timeout:?}"))
    }
}
