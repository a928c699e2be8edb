//! Accepting without spinning when the process is out of fds or memory.
//!
//! When `accept4` fails with EMFILE, the pending connection stays in the
//! kernel's queue and the listener stays readable, so tokio reports the same
//! error again at once: a loop that just retries burns a core (tokio#3529).
//! Like hyper's sleep-on-errors and nginx (which disables accept events for a
//! while), we pause, then try again; a connection that closes meanwhile frees
//! the fd the next attempt needs.
//!
//! The pause is a deadline kept in a [`Backoff`], not a sleep inside one
//! accept future: a master that waits for other events in the same
//! `select!` (acknowledgements, workers' exits) drops and rebuilds its accept
//! future on each of them, and a pause that lived in the future would end,
//! and warn again, every time (issue 10: 15,004 "accept paused" lines in 3 s).
//!
//! At a stop, a listener must not just be closed: the connections in its
//! accept queue are clients whose handshake the kernel completed, and they
//! would be reset. [`accept_queued`] takes them, and [`stop_listening`] stops
//! the socket itself from taking more, in every process that holds it.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use socket2::SockRef;

use crate::episode::Episode;

use tokio::io::unix::AsyncFd;
use tokio::net::{TcpListener, TcpStream};

/// How long to stop accepting after running out of a resource. Short enough
/// that service resumes soon after fds free up, long enough that being stuck
/// at the limit costs a few wake-ups per second, not a core.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// True for the errors that mean "out of a resource, retrying now will fail
/// again", as opposed to a failure of the one connection being accepted.
pub fn is_resource_exhaustion(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        // EMFILE: this process's RLIMIT_NOFILE; ENFILE: the system-wide table.
        // ENOBUFS / ENOMEM: the kernel could not allocate the socket.
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// True for the errors of `accept4` that concern only the connection being
/// accepted: the next one may be fine, so the loop goes on at once.
/// ECONNABORTED (the client reset it while it waited in the queue), EINTR,
/// EPERM (a firewall rule), and the network errors that accept(2) says
/// Linux passes on from the new socket and that a caller should "treat like
/// EAGAIN by retrying" (ENETDOWN, EPROTO, ENOPROTOOPT, EHOSTDOWN, ENONET,
/// EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH).
///
/// Every other error is about the listener or the process (EMFILE, or EINVAL:
/// the socket no longer listens because another holder shut it down) and
/// would come straight back: it pauses the loop, so that nothing spins
/// (issue 19: a master livelocked on EINVAL at 26,026 calls a second).
pub fn concerns_one_connection(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EINTR
                | libc::EPERM
                | libc::ENETDOWN
                | libc::EPROTO
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
        )
    )
}

/// The state of one accept loop's back-off: when its pause ends, and the
/// episode of errors it is in. It lives as long as the loop (the master's
/// dispatcher keeps one), so that a rebuilt accept future still waits for
/// the same deadline and does not warn again.
#[derive(Debug, Default)]
pub struct Backoff {
    /// Accepting is paused until then.
    paused_until: Option<Instant>,
    /// The errors that paused it: one warning per episode.
    episode: Episode,
}

impl Backoff {
    /// Records an accept error at `now`: an error that would come straight
    /// back (out of fds or memory, a listener that no longer listens) pauses
    /// accepting for [`ACCEPT_BACKOFF`], with a warning if it starts an
    /// episode; an error that concerns only that connection
    /// ([`concerns_one_connection`]) does not.
    pub fn failed(&mut self, err: &io::Error, now: Instant) {
        if concerns_one_connection(err) {
            tracing::debug!(cause = %err, "accept failed for one connection");
            return;
        }
        let backoff_ms = ACCEPT_BACKOFF.as_millis() as u64;
        if self.episode.starts(now) {
            if err.raw_os_error() == Some(libc::EINVAL) {
                tracing::error!(
                    cause = %err,
                    backoff_ms,
                    "the listening socket does not listen (shut down by another process?); accept paused"
                );
            } else {
                tracing::warn!(cause = %err, backoff_ms, "accept paused");
            }
        } else {
            tracing::debug!(cause = %err, backoff_ms, "accept paused again");
        }
        self.paused_until = Some(now + ACCEPT_BACKOFF);
    }

    /// When the current pause ends; `None` when not paused.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// This process has just closed fds of its own (the handoff master, on an
    /// acknowledgement): the next attempt has the fd it lacked, so the pause
    /// ends now. Still one warning per episode: an error right after counts
    /// in the same one.
    pub fn fds_freed(&mut self) {
        self.paused_until = None;
    }

    /// Waits for the end of the current pause, if any, and ends it.
    pub async fn wait(&mut self) {
        if let Some(until) = self.paused_until {
            tokio::time::sleep_until(until.into()).await;
            self.paused_until = None;
        }
    }
}

/// A listener a worker accepts connections from and serves them itself: a
/// TCP socket, or the Unix socket a `proxy --upstream unix` worker listens on.
pub trait Listener {
    /// The connection accepted.
    type Stream;

    /// One `accept`, waiting for a connection.
    fn accept_one(&self) -> impl std::future::Future<Output = io::Result<Self::Stream>>;
}

impl Listener for TcpListener {
    type Stream = TcpStream;

    /// Sets TCP_NODELAY, as every server here answers small requests.
    async fn accept_one(&self) -> io::Result<TcpStream> {
        let (stream, _) = self.accept().await?;
        // Not fatal: the connection still works, only slower.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(cause = %err, "TCP_NODELAY");
        }
        Ok(stream)
    }
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;

    async fn accept_one(&self) -> io::Result<tokio::net::UnixStream> {
        Ok(self.accept().await?.0)
    }
}

/// Accepts the next connection to serve here, backing off at the fd limit.
pub async fn accept<L: Listener>(listener: &L) -> L::Stream {
    let mut backoff = Backoff::default();
    loop {
        match listener.accept_one().await {
            Ok(stream) => return stream,
            // EINVAL: the socket no longer listens; another holder of it (the
            // master of a listener mode, at its stop) shut it down. Nothing
            // will be accepted again, and retrying would spin: wait for the
            // caller's own stop to drop this future.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!("listener shut down; accepting no more");
                std::future::pending::<()>().await;
            }
            Err(err) => {
                backoff.failed(&err, Instant::now());
                backoff.wait().await;
            }
        }
    }
}

/// Accepts the connections already in `listener`'s accept queue, without
/// waiting: clients whose handshake the kernel has completed, which closing
/// or shutting down the listener would reset. Stops when the queue is empty
/// (EAGAIN), when the socket no longer listens (EINVAL), or at the fd limit
/// (logged: the connections left are reset with the listener).
///
/// Sets O_NONBLOCK on the listener: that flag lives on the open file
/// description, shared by every process holding it, and all of them wait
/// for readiness before they accept, so none minds.
pub fn accept_queued(listener: BorrowedFd<'_>) -> Vec<OwnedFd> {
    if let Err(err) = SockRef::from(&listener).set_nonblocking(true) {
        tracing::warn!(cause = %err, "cannot take the accept queue");
        return Vec::new();
    }
    let mut queued = Vec::new();
    loop {
        match accept_nonblocking(listener) {
            Ok(socket) => queued.push(socket),
            // The client reset it while it waited: the next one may be fine.
            Err(err) if err.raw_os_error() == Some(libc::ECONNABORTED) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => break,
            Err(err) => {
                tracing::warn!(cause = %err, taken = queued.len(), "cannot take the rest of the accept queue");
                break;
            }
        }
    }
    queued
}

/// One `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)` on `listener`: the socket
/// comes out non-blocking, as tokio needs it, so whoever serves it saves the
/// `ioctl(FIONBIO)` per connection that std's `accept` (`SOCK_CLOEXEC` only)
/// would cost. Every accept whose socket reaches
/// `tcp_stream` goes through here.
pub fn accept_nonblocking(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let flags =
        nix::sys::socket::SockFlag::SOCK_NONBLOCK | nix::sys::socket::SockFlag::SOCK_CLOEXEC;
    let fd = nix::sys::socket::accept4(listener.as_raw_fd(), flags).map_err(io::Error::from)?;
    // SAFETY: accept4 returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A connection accepted blocking (by the master, or from the queue at the
/// stop), as a tokio stream; an error means this connection cannot be served.
pub(crate) fn tcp_stream(fd: OwnedFd) -> std::io::Result<TcpStream> {
    // Non-blocking already: every accept that leads here is
    // `accept::accept_nonblocking` (O_NONBLOCK travels with the open file
    // description, so a handed socket keeps it), which saves an ioctl per
    // connection.
    let stream = std::net::TcpStream::from(fd);
    // Not fatal: the connection still works, only slower (as in `accept`).
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(cause = %err, "TCP_NODELAY");
    }
    TcpStream::from_std(stream)
}

/// Stops a listening socket at a master's stop and returns the clients that
/// were waiting in its accept queue, to be served rather than reset.
///
/// First [`accept_queued`], then `shutdown(fd, SHUT_RD)`: the kernel takes the
/// socket itself (so every copy of it, in every process) out of the listening
/// state. New clients are refused (their SYN gets a RST: ECONNREFUSED), a
/// pending `accept` on any copy fails with EINVAL, and whatever is still in
/// the queue is reset, hence the queue is taken first: only a client arriving
/// between the two, microseconds, is lost. Closing an fd would not do: the
/// socket listens as long as one copy is open.
pub fn stop_listening(listener: BorrowedFd<'_>) -> Vec<OwnedFd> {
    let queued = accept_queued(listener);
    if let Err(err) = SockRef::from(&listener).shutdown(std::net::Shutdown::Read) {
        tracing::warn!(cause = %err, "cannot stop listening");
    }
    queued
}

/// Accepts the connections to hand to other processes: waits until one is
/// queued, then takes what the accept queue holds, up to `max` (what the
/// receivers have room for), one `accept4` each, without waiting again. At
/// the fd limit it backs off with the caller's `backoff`: first it waits out
/// a pause already under way, so dropping this future and calling again
/// neither shortens the pause nor warns again. Never returns an empty list.
///
/// Taking several per wake-up is what lets the caller hand them over in
/// batches (one `sendmsg` per receiver); with `max` reached, the listener
/// stays marked readable, so the next call takes the rest without an
/// `epoll_wait`. The sockets are not registered with this process's epoll
/// (the master never reads them), which saves two `epoll_ctl` calls per
/// connection over tokio's `TcpListener::accept` followed by `into_std`.
pub async fn accept_to_pass(
    listener: &AsyncFd<std::net::TcpListener>,
    backoff: &mut Backoff,
    max: usize,
) -> Vec<OwnedFd> {
    let mut accepted = Vec::new();
    loop {
        backoff.wait().await;
        let mut ready = match listener.readable().await {
            Ok(ready) => ready,
            Err(err) => {
                backoff.failed(&err, Instant::now());
                continue;
            }
        };
        let taken = ready.try_io(|listener| {
            while accepted.len() < max.max(1) {
                accepted.push(accept_nonblocking(std::os::fd::AsFd::as_fd(
                    listener.get_ref(),
                ))?);
            }
            Ok(())
        });
        match taken {
            // `max` taken; more may be queued, and the readiness stays.
            Ok(Ok(())) => {}
            // Keep what was taken before the error; a resource error pauses
            // the next call.
            Ok(Err(err)) => backoff.failed(&err, Instant::now()),
            // WouldBlock: the queue is empty (or readiness was stale), and
            // the readiness has been cleared.
            Err(_would_block) => {}
        }
        if !accepted.is_empty() {
            return accepted;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(libc::EMFILE)
    }

    /// The pause is a deadline: ACCEPT_BACKOFF after the error that set it,
    /// and an error about one connection sets none.
    #[test]
    fn exhaustion_pauses_until_a_deadline() {
        let now = Instant::now();
        let mut backoff = Backoff::default();
        backoff.failed(&io::Error::from_raw_os_error(libc::ECONNABORTED), now);
        assert_eq!(backoff.paused_until(), None);
        backoff.failed(&emfile(), now);
        assert_eq!(backoff.paused_until(), Some(now + ACCEPT_BACKOFF));
    }

    /// Issue 19: EINVAL (the socket no longer listens: another holder shut
    /// it down) pauses the loop like EMFILE; only the errors of one
    /// connection go on at once.
    #[test]
    fn a_listener_that_does_not_listen_pauses() {
        let now = Instant::now();
        for errno in [libc::EINVAL, libc::EBADF, libc::ENOTSOCK] {
            let mut backoff = Backoff::default();
            backoff.failed(&io::Error::from_raw_os_error(errno), now);
            assert_eq!(
                backoff.paused_until(),
                Some(now + ACCEPT_BACKOFF),
                "{errno}"
            );
        }
        for errno in [libc::ECONNABORTED, libc::EINTR, libc::EPROTO, libc::EPERM] {
            let mut backoff = Backoff::default();
            backoff.failed(&io::Error::from_raw_os_error(errno), now);
            assert_eq!(backoff.paused_until(), None, "{errno}");
        }
    }

    /// Regression (issue 19): on a listener shut down by another process
    /// (`shutdown(SHUT_RD)`: readable for ever, every `accept4` EINVAL), the
    /// handing master's accept spun without yielding, so that not even its
    /// SIGTERM handler ran. Now it pauses: a timeout around it fires.
    #[test]
    fn accept_to_pass_does_not_spin_on_a_shut_down_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("O_NONBLOCK");
        SockRef::from(&listener)
            .shutdown(std::net::Shutdown::Read)
            .expect("shutdown(SHUT_RD)");
        let (done, finished) = std::sync::mpsc::channel();
        // A thread of its own, so that a spin shows as a missed deadline here
        // rather than a test that never ends.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let timed_out = runtime.block_on(async {
                // SAFETY: the AsyncFd owns the listener, which keeps its fd
                // open and unchanged until the AsyncFd is dropped.
                let listener = unsafe { AsyncFd::register(listener) }.expect("register");
                let mut backoff = Backoff::default();
                let accepting = accept_to_pass(&listener, &mut backoff, 4);
                tokio::time::timeout(Duration::from_millis(300), accepting)
                    .await
                    .is_err()
            });
            let _ = done.send(timed_out);
        });
        let timed_out = finished
            .recv_timeout(Duration::from_secs(30))
            .expect("accept_to_pass spins: its timeout never fired");
        assert!(
            timed_out,
            "accept_to_pass returned a connection from a shut-down listener"
        );
    }

    /// Issue 10: a handed socket on which TCP_NODELAY cannot be set (here a
    /// Unix socket: EOPNOTSUPP) is still served; the failure ended the whole
    /// worker, and every connection it held.
    #[test]
    fn nodelay_failure_does_not_refuse_the_connection() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let _guard = runtime.enter();
        let (socket, _peer) = std::os::unix::net::UnixStream::pair().expect("a socketpair");
        // Non-blocking, as every accept that reaches tcp_stream leaves it.
        socket.set_nonblocking(true).expect("O_NONBLOCK");
        let stream = tcp_stream(OwnedFd::from(socket));
        assert!(stream.is_ok(), "{stream:?}");
    }

    /// One wake-up takes what the queue holds, up to `max`; the rest stays
    /// queued for the next call.
    #[test]
    fn accept_to_pass_takes_at_most_max() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("O_NONBLOCK");
        let addr = listener.local_addr().expect("an address");
        let _clients: Vec<_> = (0..5)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        runtime.block_on(async {
            // SAFETY: the AsyncFd owns the listener, which keeps its fd open
            // and unchanged until the AsyncFd is dropped.
            let listener = unsafe { AsyncFd::register(listener) }.expect("register");
            let mut backoff = Backoff::default();
            let first = accept_to_pass(&listener, &mut backoff, 3).await;
            assert_eq!(first.len(), 3);
            let rest = accept_to_pass(&listener, &mut backoff, 10).await;
            assert_eq!(rest.len(), 2);
        });
    }
}
