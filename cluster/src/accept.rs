//! Accepting without spinning when the process is out of fds or memory.
//!
//! When `accept4` fails with EMFILE, the pending connection stays in the
//! kernel's queue and the listener stays readable, so tokio reports the same
//! error again at once: a loop that just retries burns a core (tokio#3529).
//! Like hyper's sleep-on-errors and nginx (which disables accept events for a
//! while), we pause, then try again; a connection that closes meanwhile frees
//! the fd the next attempt needs.
//!
//! At a stop, a listener must not just be closed: the connections in its
//! accept queue are clients whose handshake the kernel completed, and they
//! would be reset. [`accept_queued`] takes them, and [`stop_listening`] stops
//! the socket itself from taking more, in every process that holds it.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use socket2::SockRef;

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

/// What an accept loop does about one accept error.
#[derive(Default)]
struct Backoff {
    /// Already paused since the last success: warn once per episode, not
    /// once per retry.
    paused: bool,
}

impl Backoff {
    /// Sleeps [`ACCEPT_BACKOFF`] after a resource-exhaustion error; returns at
    /// once after an error that concerns only that connection (ECONNABORTED:
    /// the client reset it while it waited in the queue).
    async fn after(&mut self, err: io::Error) {
        if is_resource_exhaustion(&err) {
            if !self.paused {
                let backoff_ms = ACCEPT_BACKOFF.as_millis() as u64;
                tracing::warn!(cause = %err, backoff_ms, "accept paused");
                self.paused = true;
            }
            tokio::time::sleep(ACCEPT_BACKOFF).await;
        } else {
            tracing::debug!(cause = %err, "accept failed for one connection");
        }
    }
}

/// Accepts the next connection to serve here, backing off at the fd limit.
/// Sets TCP_NODELAY, as every server here answers small requests.
pub async fn accept(listener: &TcpListener) -> TcpStream {
    let mut backoff = Backoff::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // Not fatal: the connection still works, only slower.
                if let Err(err) = stream.set_nodelay(true) {
                    tracing::debug!(cause = %err, "TCP_NODELAY");
                }
                return stream;
            }
            // EINVAL: the socket no longer listens; another holder of it (the
            // master of a listener mode, at its stop) shut it down. Nothing
            // will be accepted again, and retrying would spin: wait for the
            // caller's own stop to drop this future.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!("listener shut down; accepting no more");
                std::future::pending::<()>().await;
            }
            Err(err) => backoff.after(err).await,
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
    let listener = SockRef::from(&listener);
    if let Err(err) = listener.set_nonblocking(true) {
        tracing::warn!(cause = %err, "cannot take the accept queue");
        return Vec::new();
    }
    let mut queued = Vec::new();
    loop {
        match listener.accept() {
            Ok((socket, _)) => queued.push(OwnedFd::from(socket)),
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

/// `shutdown(fd, SHUT_RD)` on a listening socket: the kernel takes the socket
/// itself (so every copy of it, in every process) out of the listening
/// state. New clients are refused (their SYN gets a RST: ECONNREFUSED), a
/// pending `accept` on any copy fails with EINVAL, and the connections still
/// in the accept queue are reset: take them first ([`accept_queued`]).
/// Closing an fd would not do: the socket listens as long as one copy is open.
pub fn stop_listening(listener: BorrowedFd<'_>) -> io::Result<()> {
    SockRef::from(&listener).shutdown(std::net::Shutdown::Read)
}

/// Accepts the next connection to hand to another process, backing off at
/// the fd limit. The socket is not registered with this process's epoll (the
/// master never reads it), which saves two `epoll_ctl` calls per connection
/// over tokio's `TcpListener::accept` followed by `into_std`.
pub async fn accept_to_pass(listener: &AsyncFd<std::net::TcpListener>) -> std::net::TcpStream {
    let mut backoff = Backoff::default();
    loop {
        let mut ready = match listener.readable().await {
            Ok(ready) => ready,
            Err(err) => {
                backoff.after(err).await;
                continue;
            }
        };
        match ready.try_io(|listener| listener.get_ref().accept()) {
            Ok(Ok((stream, _))) => return stream,
            Ok(Err(err)) => backoff.after(err).await,
            // WouldBlock: readiness was stale and has been cleared; wait again.
            Err(_would_block) => {}
        }
    }
}
