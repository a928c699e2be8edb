//! Accepting without spinning when the process is out of fds or memory.
//!
//! When `accept4` fails with EMFILE, the pending connection stays in the
//! kernel's queue and the listener stays readable, so tokio reports the same
//! error again at once: a loop that just retries burns a core (tokio#3529).
//! Like hyper's sleep-on-errors and nginx (which disables accept events for a
//! while), we pause, then try again; a connection that closes meanwhile frees
//! the fd the next attempt needs.

use std::io;
use std::time::Duration;

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
            Err(err) => backoff.after(err).await,
        }
    }
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
