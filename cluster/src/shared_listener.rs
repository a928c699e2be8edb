//! How a worker accepts on a listening socket: one function per
//! `handoff --pass listener --accept STRATEGY` ([`Accept`]).
//!
//! With a shared listener, which worker gets a connection is decided by
//! whom the kernel wakes when it arrives, so each strategy is a choice of
//! wait queue:
//!
//! | strategy | the worker waits in | woken per connection | takes per wake-up |
//! |---|---|---|---|
//! | `drain` | its event loop's `epoll_wait` (tokio) | every waiting worker | `accept4` until EAGAIN |
//! | `single` | the same | every waiting worker | one `accept4`, then a 1 ns `nanosleep` and a turn of its event loop before the next (libuv's `UV_TCP_SINGLE_ACCEPT`) |
//! | `exclusive` | its event loop, watching an epoll fd of its own that holds the listener with `EPOLLEXCLUSIVE` | one | `accept4` until EAGAIN |
//! | `blocking` | a thread blocked in `accept(2)` | one: the thread that has waited longest (FIFO) | one |
//!
//! `drain` is also how a worker accepts on a port of its own (`proxy`).
//!
//! At the worker's stop each strategy stops accepting and serves what it has
//! accepted; the master of the listener modes has already taken the accept
//! queue itself and shut the socket down (`accept::stop_listening`). A
//! worker stopped alone (SIGTERM to it) takes the queue too
//! (`accept::accept_queued`), except with `blocking`, whose queue the other
//! workers' blocked threads take anyway.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper_util::server::graceful::GracefulShutdown;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use socket2::SockRef;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::accept::{self, Backoff};
use crate::{Accept, service};

/// How often the `blocking` strategy's thread, blocked in `accept(2)`,
/// looks up to see whether its worker is stopping (`SO_RCVTIMEO` on the
/// listener makes `accept` return EAGAIN after this long). Nothing else can
/// wake it without waking every worker: a signal races with the call, and
/// `shutdown` would stop the listener for all. A worker stopped alone
/// (SIGTERM to it) exits at most this much later; the master's stop shuts
/// the listener down, which wakes the thread at once (EINVAL).
const BLOCKING_STOP_POLL: Duration = Duration::from_millis(100);

/// How many accepted connections the `blocking` thread may have handed to
/// its runtime and not yet seen taken. One: a worker whose event loop is busy
/// stops accepting after one more, and the other threads take the queue.
const BLOCKING_HANDOVER_QUEUE: usize = 1;

/// What an accept loop does with a connection: serve it with the worker's
/// settings, counted by its graceful stop.
#[derive(Clone)]
pub(crate) struct Serving {
    /// Every connection served, so that a stop can wait for them.
    pub(crate) connections: Arc<GracefulShutdown>,
    /// The HTTP settings, from the master's flags.
    pub(crate) config: service::Config,
}

impl Serving {
    /// Serves a connection accepted while serving.
    fn serve(&self, stream: tokio::net::TcpStream) {
        service::serve(stream, self.connections.watcher(), self.config);
    }

    /// Serves a connection accepted blocking (a std stream), `at_stop` or not.
    fn serve_std(&self, stream: std::net::TcpStream, at_stop: bool) {
        match crate::worker::tcp_stream(OwnedFd::from(stream)) {
            Ok(stream) if at_stop => {
                service::serve_at_stop(stream, self.connections.watcher(), self.config)
            }
            Ok(stream) => self.serve(stream),
            Err(err) => tracing::warn!(cause = %err, "cannot serve an accepted connection; closed"),
        }
    }

    /// Serves what is left in the accept queue of `listener` at a stop.
    fn serve_queued(&self, listener: std::os::fd::BorrowedFd<'_>) {
        for fd in accept::accept_queued(listener) {
            self.serve_std(std::net::TcpStream::from(fd), true);
        }
    }
}

/// Accepts on `listener` the way `strategy` says and serves each connection,
/// until `stop`; then serves what it has accepted (and, but with `blocking`,
/// what is still queued).
pub(crate) async fn accept_loop(
    strategy: Accept,
    listener: std::net::TcpListener,
    serving: Serving,
    stop: CancellationToken,
) {
    let result = match strategy {
        Accept::Drain => event_loop(listener, false, &serving, &stop).await,
        Accept::Single => event_loop(listener, true, &serving, &stop).await,
        Accept::Exclusive => exclusive(listener, &serving, &stop).await,
        Accept::Blocking => blocking(listener, &serving, &stop).await,
    };
    if let Err(err) = result {
        // Only the set-up can fail (an epoll fd, a thread, a socket option):
        // this worker cannot accept, and the others take its share.
        tracing::error!(?strategy, cause = %err, "cannot accept on the listener");
        stop.cancelled().await;
    }
}

/// `drain` and `single`: the listener in the worker's event loop (tokio's
/// epoll, edge-triggered). `accept::accept` takes one connection per call and
/// tokio clears the readiness only at EAGAIN, so a woken worker accepts until
/// the queue is empty; with `single` it first gives the other processes a
/// chance (libuv's 1 ns `nanosleep`, which the timer slack, 50 µs by
/// default, makes a real pause) and its own event loop a turn.
async fn event_loop(
    listener: std::net::TcpListener,
    single: bool,
    serving: &Serving,
    stop: &CancellationToken,
) -> io::Result<()> {
    // O_NONBLOCK lives on the open file description, shared with the master
    // and the other workers; none of them makes a blocking accept on it.
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            stream = accept::accept(&listener) => {
                serving.serve(stream);
                if single {
                    // As libuv does: a sleep of 1 ns is a yield of the CPU.
                    std::thread::sleep(Duration::from_nanos(1));
                    tokio::task::yield_now().await;
                }
            }
        }
    }
    serving.serve_queued(listener.as_fd());
    Ok(())
}

/// An epoll fd of the worker's own, holding the listener with
/// `EPOLLEXCLUSIVE`; tokio watches it like any fd (epoll nests).
struct ExclusiveEpoll(Epoll);

impl AsRawFd for ExclusiveEpoll {
    fn as_raw_fd(&self) -> RawFd {
        self.0.0.as_raw_fd()
    }
}

/// `exclusive`: every worker registers the shared listener in an epoll fd of
/// its own with `EPOLLEXCLUSIVE`, and its event loop watches that epoll fd.
/// The kernel then wakes one of the waiting epoll fds per connection, not
/// all. Nested that way it still does: a check on Linux 6.18 (4 processes,
/// each an inner epoll with the listener `EPOLLEXCLUSIVE` inside an outer
/// one, 200 sequential connections) counted 200 wake-ups in all, one per
/// connection, spread 2/39/64/95; with each process blocked in `epoll_wait`
/// on the inner epoll directly, the first one registered took all 200.
///
/// A woken worker accepts until EAGAIN: tokio watches the epoll fd
/// edge-triggered, and a connection left in the queue would wait for the next
/// arrival to wake anyone.
async fn exclusive(
    listener: std::net::TcpListener,
    serving: &Serving,
    stop: &CancellationToken,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let interest = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
    epoll.add(&listener, EpollEvent::new(interest, 0))?;
    let epoll = ExclusiveEpoll(epoll);
    // SAFETY: the AsyncFd owns the Epoll, which owns its fd and closes it
    // only when dropped, with the AsyncFd; `as_raw_fd` always returns it.
    let epoll = unsafe { AsyncFd::register_with_interest(epoll, tokio::io::Interest::READABLE) }?;
    let mut backoff = Backoff::default();
    let mut events = [EpollEvent::empty()];
    'serving: loop {
        let mut ready = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            ready = async {
                backoff.wait().await;
                epoll.readable().await
            } => ready?,
        };
        // Take the inner epoll's report (level-triggered: while connections
        // wait it reports the listener again, and its fd stays readable).
        epoll.get_ref().0.wait(&mut events, 0u8)?;
        loop {
            match accept::accept_nonblocking(listener.as_fd()) {
                Ok(stream) => serving.serve_std(stream.into(), false),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    ready.clear_ready();
                    break;
                }
                // The client reset it while it waited: the next one may be fine.
                Err(err) if err.raw_os_error() == Some(libc::ECONNABORTED) => {}
                // EINVAL: the master shut the listener down at its stop; it
                // stays readable (HUP), so wait for our own stop.
                Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                    stop.cancelled().await;
                    break 'serving;
                }
                Err(err) => {
                    backoff.failed(&err, Instant::now());
                    break;
                }
            }
            // A flood must not starve the connections already accepted.
            tokio::task::consume_budget().await;
        }
    }
    serving.serve_queued(listener.as_fd());
    Ok(())
}

/// `blocking`: a thread per worker blocked in `accept(2)`. The kernel keeps
/// the threads blocked on one listener in one FIFO wait queue and wakes the
/// one at its head for each connection; after handing the stream over, the
/// thread blocks again at the tail, so the workers take turns.
///
/// The listener is made blocking, on the open file description that the
/// master and every worker share: all workers of the cluster use the same
/// strategy, and the master accepts only at its stop, with
/// `accept::accept_queued`, which makes the description non-blocking again
/// first (threads already blocked stay blocked; the master's own calls do
/// not block), then shuts the socket down, which wakes every blocked thread
/// with EINVAL.
///
/// The thread hands each stream to this runtime over a channel with room for
/// one; at the worker's stop it sees the flag within [`BLOCKING_STOP_POLL`]
/// and ends, and everything it accepted until then is served: the loop here
/// reads the channel until the thread has dropped its end.
async fn blocking(
    listener: std::net::TcpListener,
    serving: &Serving,
    stop: &CancellationToken,
) -> io::Result<()> {
    listener.set_nonblocking(false)?;
    SockRef::from(&listener).set_read_timeout(Some(BLOCKING_STOP_POLL))?;
    let (handover, mut accepted) = mpsc::channel(BLOCKING_HANDOVER_QUEUE);
    let stopping = Arc::new(AtomicBool::new(false));
    let thread_stopping = stopping.clone();
    std::thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || accept_blocking(&listener, &handover, &thread_stopping))?;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            stream = accepted.recv() => match stream {
                Some(stream) => serving.serve_std(stream, false),
                // The thread ended: the listener was shut down.
                None => break,
            },
        }
    }
    stopping.store(true, Ordering::Release);
    while let Some(stream) = accepted.recv().await {
        serving.serve_std(stream, true);
    }
    Ok(())
}

/// The `blocking` strategy's thread: `accept(2)` and hand over, until the
/// worker stops or the listener is shut down.
fn accept_blocking(
    listener: &std::net::TcpListener,
    handover: &mpsc::Sender<std::net::TcpStream>,
    stopping: &AtomicBool,
) {
    let mut backoff = Backoff::default();
    while !stopping.load(Ordering::Acquire) {
        // Blocks while the description is blocking: SOCK_NONBLOCK is the
        // new socket's flag, not the listener's.
        match accept::accept_nonblocking(listener.as_fd()) {
            Ok(stream) => {
                // Waits while the runtime has not taken the last one; an
                // error means the runtime is gone (the worker is exiting).
                if handover.blocking_send(stream.into()).is_err() {
                    return;
                }
            }
            // SO_RCVTIMEO elapsed (look at the flag), or the master made the
            // description non-blocking at its stop: then wait for the
            // listener instead of spinning until it shuts the socket down.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if is_nonblocking(listener) {
                    wait_readable(listener, BLOCKING_STOP_POLL);
                }
            }
            // The client reset it while it waited; or a signal.
            Err(err) if matches!(err.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {}
            // The master shut the listener down: nothing more will come.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => return,
            Err(err) => {
                backoff.failed(&err, Instant::now());
                if let Some(until) = backoff.paused_until() {
                    // This thread does nothing else: a plain sleep is the pause.
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    backoff.fds_freed();
                }
            }
        }
    }
}

/// Whether O_NONBLOCK is set on the listener's open file description.
fn is_nonblocking(listener: &std::net::TcpListener) -> bool {
    nix::fcntl::fcntl(listener, nix::fcntl::FcntlArg::F_GETFL).is_ok_and(|flags| {
        nix::fcntl::OFlag::from_bits_truncate(flags).contains(nix::fcntl::OFlag::O_NONBLOCK)
    })
}

/// Waits until `listener` has a connection or is shut down (HUP), at most
/// `timeout`.
fn wait_readable(listener: &std::net::TcpListener, timeout: Duration) {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    // EINTR or another error: the caller's loop tries accept again.
    let _ = nix::poll::poll(&mut fds, timeout);
}
