//! Socket activation, `sd_listen_fds(3)`: a service manager (systemd,
//! `systemd-socket-activate`) binds the public port, keeps it, and starts the
//! master with the listening socket(s) as fds 3, 4, …, their count in
//! `LISTEN_FDS` and the pid they are meant for in `LISTEN_PID`.
//!
//! The most common way a port is shared with a server on Linux today, and a
//! way to restart without refusing anyone: the service manager's socket
//! listens while no master runs, and its accept queue keeps the clients.
//! The master takes the sockets instead of binding (checking each as a
//! takeover does), and never shuts them down at its stop: they are the
//! service manager's (`sd_listen_fds(3)`: "the service must not shut them
//! down"); it only closes its copies.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::cli::UsageError;
use crate::{Mode, Pass};

/// The first fd a service manager passes (`SD_LISTEN_FDS_START`).
pub const FIRST_FD: RawFd = 3;

/// The most sockets this takes: `--workers` is at most 1024 (reuseport
/// passes one socket per worker).
const MAX_FDS: usize = 1024;

/// The listening sockets a service manager passed to this process, checked,
/// and their address; `None` when `LISTEN_PID` does not name this process
/// (the variables are for someone else, or absent). The variables are then
/// removed from the environment, so that the workers this master starts do
/// not take them for theirs, and the fds made close-on-exec, so that they do
/// not leak into the workers.
///
/// Must be called before any other thread runs (the environment is changed).
/// Every mistake is a usage error (exit 2): a count the mode cannot use (1,
/// or `--workers` sockets with `SO_REUSEPORT` in `handoff-reuseport`), or an
/// fd that is not a TCP listening socket of that kind, all on one address.
pub fn take(mode: Mode, workers: u16) -> anyhow::Result<Option<(SocketAddr, Vec<OwnedFd>)>> {
    let usage = |what: String| UsageError(format!("socket activation (LISTEN_FDS): {what}"));
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    let count = std::env::var("LISTEN_FDS").ok();
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: no other thread runs yet (see above), so nothing reads the
        // environment while it changes.
        unsafe { std::env::remove_var(name) };
    }
    let (true, Some(count)) = (for_us, count) else {
        return Ok(None);
    };
    let count: usize = count
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=MAX_FDS).contains(n))
        .ok_or_else(|| usage(format!("{count:?} is not a count of 1 to {MAX_FDS}")))?;
    let reuseport = mode == Mode::Handoff(Pass::Reuseport);
    let expected = if reuseport { usize::from(workers) } else { 1 };
    if count != expected {
        return Err(usage(format!(
            "{count} sockets passed, {mode} with --workers {workers} takes {expected}"
        ))
        .into());
    }
    let mut sockets: Vec<OwnedFd> = Vec::with_capacity(count);
    let mut listen = None;
    for fd in (FIRST_FD..).take(count) {
        // Whether the fd is open at all, before anything owns it.
        // SAFETY: F_GETFD only reads the fd's flags; a closed fd is EBADF.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(usage(format!("fd {fd} is not open")).into());
        }
        // SAFETY: the service manager passed this fd to this process (the
        // LISTEN_PID check above); nothing else in it owns or closes it.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let addr = crate::listen::check_listening(&socket, listen, reuseport, &sockets)
            .map_err(|what| usage(format!("fd {fd} is {what}")))?;
        listen = Some(addr);
        nix::fcntl::fcntl(
            &socket,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
        sockets.push(socket);
    }
    let listen = listen.expect("at least one socket");
    tracing::info!(%listen, sockets = count, "socket activation: listening sockets taken from the service manager");
    Ok(Some((listen, sockets)))
}
