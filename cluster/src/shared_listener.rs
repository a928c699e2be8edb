//! How a worker accepts on a listening socket: one function per
//! `handoff --pass listener --accept STRATEGY` ([`Accept`]).
//!
//! With a shared listener, which worker gets a connection is decided by
//! whom the kernel wakes when it arrives, so each strategy is a choice of
//! wait queue. The four, with the queue each waits in, whom the kernel
//! wakes per connection and what a woken worker takes, are one table: the
//! contract's (ARCHITECTURE.md, "Flags", `--accept`).
//!
//! The waiting must be done by a thread that sleeps on the wait queue
//! itself: an `EPOLLEXCLUSIVE` epoll fd watched by the event loop (nested in
//! tokio's epoll) wakes every worker, as `drain` does (`exclusive` says
//! why, with the figures).
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
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper_util::server::graceful::GracefulShutdown;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use socket2::SockRef;
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

/// How many accepted connections the acceptor thread of `exclusive` or
/// `blocking` may have handed to its runtime and not yet seen taken. One: a
/// worker whose event loop is busy stops accepting after one more (its
/// thread, blocked in the hand-over, is in no wait queue of the listener),
/// and the other workers' threads take the queue.
const HANDOVER_QUEUE: usize = 1;

/// The `exclusive` thread's epoll data for the listener: a connection is
/// queued (or the listener was shut down).
const EXCLUSIVE_LISTENER: u64 = 0;

/// The `exclusive` thread's epoll data for its eventfd: the worker stops.
const EXCLUSIVE_STOP: u64 = 1;

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
    fn serve<S: service::Connection>(&self, stream: S) {
        service::serve(stream, self.connections.watcher(), self.config);
    }

    /// Serves a connection accepted blocking (a std stream), `at_stop` or not.
    fn serve_std(&self, stream: std::net::TcpStream, at_stop: bool) {
        match accept::tcp_stream(OwnedFd::from(stream)) {
            Ok(stream) if at_stop => {
                service::serve_at_stop(stream, self.connections.watcher(), self.config)
            }
            Ok(stream) => self.serve(stream),
            Err(err) => tracing::warn!(cause = %err, "cannot serve an accepted connection; closed"),
        }
    }

    /// Serves what is left in the accept queue of `listener` at a stop.
    fn serve_queued(&self, listener: BorrowedFd<'_>) {
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

/// A `proxy --upstream unix` worker's own Unix socket, which only its master
/// connects to: accepted as `drain` accepts, in the worker's event loop,
/// until `stop`; then what is still queued is served (the master's relays
/// that reached it).
pub(crate) async fn unix_accept_loop(
    listener: std::os::unix::net::UnixListener,
    serving: Serving,
    stop: CancellationToken,
) {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(listener))
    {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(cause = %err, "cannot accept on the upstream socket");
            return stop.cancelled().await;
        }
    };
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            stream = accept::accept(&listener) => serving.serve(stream),
        }
    }
    for fd in accept::accept_queued(listener.as_fd()) {
        match tokio::net::UnixStream::from_std(std::os::unix::net::UnixStream::from(fd)) {
            Ok(stream) => {
                service::serve_at_stop(stream, serving.connections.watcher(), serving.config)
            }
            Err(err) => tracing::warn!(cause = %err, "cannot serve a queued relay; closed"),
        }
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

/// `exclusive`: a thread of the worker waits in `epoll_wait` on an epoll fd
/// of its own, which holds the shared listener with `EPOLLIN |
/// EPOLLEXCLUSIVE` and an eventfd, the worker's stop. For each connection the
/// kernel wakes one waiting thread, which takes one connection
/// ([`accept_exclusive`]) and hands it to this runtime.
///
/// Why a thread, and not that epoll fd watched by the event loop (how this
/// strategy first worked, issue 20): a new connection makes the listener
/// walk its wait queue, one entry per epoll fd holding it, and call each
/// entry's `ep_poll_callback` (`fs/eventpoll.c`); `__wake_up_common` stops
/// the walk at the first exclusive entry whose callback returns 1. For an
/// `EPOLLEXCLUSIVE` entry that callback returns 1 only when a task sleeps in
/// `epoll_wait` on that very epoll fd (`waitqueue_active(&ep->wq)`). An
/// epoll fd nested in tokio's has no such task: its one waiter is tokio's
/// epoll, on its `poll_wait` queue, which the callback wakes too. So every
/// callback returned 0, the walk went to the end, and every worker's event
/// loop was woken, as with `drain`. Measured (release build, 4 workers,
/// `loadgen --new-conn --connections 1 --duration 2s`, `strace -f -c -e
/// trace=accept4,epoll_wait` on the workers, 3 interleaved runs each, 2
/// shared cores, so an order of magnitude): nested, 2.55–3.25 `accept4`
/// failing with EAGAIN per connection and 6.11–7.51 `epoll_wait`, against
/// `drain`'s 2.78–3.10 and 2.80–3.11; with the thread, at most 0.004 EAGAIN
/// (13 in 3,758 connections) and 2.10–2.76 `epoll_wait` per connection, of
/// which the thread's own are one per connection.
///
/// Balance is another matter: the walk wakes the *first* waiting entry, and
/// the entries are in the order the workers registered, so with one
/// connection at a time the idle worker registered first takes nearly all of
/// them (99.4–100 % in 5 rounds; README, "Who takes a connection"). The
/// hand-over costs too: the server's CPU per request was 1.09–1.43 times
/// `drain`'s in the same rounds.
///
/// The thread waits on the eventfd too, in the same epoll fd, so that the
/// worker's stop wakes this thread at once and no other (no polling
/// timeout as `blocking` needs: `accept(2)` waits on the listener alone).
/// The master's stop shuts the listener down; `epoll_wait` then reports it
/// (EPOLLIN | EPOLLHUP) and `accept4` fails with EINVAL, which ends the
/// thread.
async fn exclusive(
    listener: std::net::TcpListener,
    serving: &Serving,
    stop: &CancellationToken,
) -> io::Result<()> {
    // The thread accepts only when epoll says a connection is queued, and
    // another worker may take it first: accept4 must then fail, not block.
    listener.set_nonblocking(true)?;
    let listener = Arc::new(listener);
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let exclusive = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
    epoll.add(&*listener, EpollEvent::new(exclusive, EXCLUSIVE_LISTENER))?;
    let stopping = Arc::new(EventFd::from_flags(
        EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK,
    )?);
    epoll.add(
        &*stopping,
        EpollEvent::new(EpollFlags::EPOLLIN, EXCLUSIVE_STOP),
    )?;
    let thread_listener = listener.clone();
    let thread_stopping = stopping.clone();
    let accept = move |handover| {
        accept_exclusive(&thread_listener, &epoll, &thread_stopping, &handover);
    };
    let stop_thread = move || {
        // Adds 1 to a counter that only this call writes: cannot overflow.
        if let Err(err) = stopping.write(1) {
            tracing::error!(cause = %err, "cannot wake the acceptor thread");
        }
    };
    serve_from_thread(serving, stop, accept, stop_thread).await?;
    // A worker stopped alone takes what is still queued; after the master's
    // stop nothing is (EINVAL).
    serving.serve_queued(listener.as_fd());
    Ok(())
}

/// The `exclusive` strategy's thread: `epoll_wait` on the worker's own epoll
/// fd, then one `accept4`, handed over; until the worker stops (the eventfd
/// `stopping`) or the listener is shut down.
///
/// One `accept4` per wake-up, not until EAGAIN: the listener is registered
/// level-triggered, so while connections are queued the next `epoll_wait`
/// returns at once and none waits for a later arrival; and the `accept4`
/// that would find the queue empty, one per wake-up, is not made. Between
/// two connections the thread is back in `epoll_wait`, i.e. in the kernel's
/// choice for the next one, and a thread whose runtime has not taken the
/// last stream is not ([`HANDOVER_QUEUE`]): a burst is shared by the
/// workers whose threads wait, instead of drained by the first woken.
fn accept_exclusive(
    listener: &std::net::TcpListener,
    epoll: &Epoll,
    stopping: &EventFd,
    handover: &mpsc::Sender<std::net::TcpStream>,
) {
    let mut backoff = Backoff::default();
    // Room for both fds, so that the stop is seen when the listener is ready too.
    let mut events = [EpollEvent::empty(); 2];
    loop {
        let ready = match epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(ready) => &events[..ready],
            // A signal to the worker (its SIGTERM) landed on this thread.
            Err(nix::errno::Errno::EINTR) => continue,
            // EBADF, EFAULT, EINVAL: not with our own fd and buffer.
            Err(err) => {
                tracing::error!(cause = %err, "epoll_wait failed; this worker accepts no more");
                return;
            }
        };
        if ready.iter().any(|event| event.data() == EXCLUSIVE_STOP) {
            return;
        }
        // A connection is queued, or the listener was shut down (EPOLLHUP).
        match accept::accept_nonblocking(listener.as_fd()) {
            Ok(stream) => {
                // Waits while the runtime has not taken the last one; an
                // error means the runtime is gone (the worker is exiting).
                if handover.blocking_send(stream.into()).is_err() {
                    return;
                }
            }
            // Another worker took it first: an arrival while this thread
            // was away from epoll_wait (handing over) marked its epoll fd
            // ready and woke another worker's thread, and both looked.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            // The client reset it while it waited; or a signal.
            Err(err) if matches!(err.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {}
            // The master shut the listener down: nothing more will come, and
            // epoll would report it again at once.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => return,
            Err(err) => {
                backoff.failed(&err, Instant::now());
                if let Some(until) = backoff.paused_until() {
                    // Not in epoll_wait: the listener still holds the
                    // connection and would be reported at once. Only the
                    // stop ends the pause early.
                    let pause = until.saturating_duration_since(Instant::now());
                    if wait_readable(stopping.as_fd(), pause) {
                        return;
                    }
                    backoff.fds_freed();
                }
            }
        }
    }
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
    let stopping = Arc::new(AtomicBool::new(false));
    let thread_stopping = stopping.clone();
    let accept = move |handover| accept_blocking(&listener, &handover, &thread_stopping);
    let stop_thread = move || stopping.store(true, Ordering::Release);
    serve_from_thread(serving, stop, accept, stop_thread).await
}

/// What `exclusive` and `blocking` share: their waiting is done by a thread
/// of the worker's own (`accept`, named "acceptor"), which hands each
/// accepted stream to this runtime over a channel with room for
/// [`HANDOVER_QUEUE`]. Serves what arrives until the worker's stop, then
/// tells the thread (`stop_thread`) and serves, as at a stop, what it handed
/// over until it has ended (dropped its end of the channel). A thread that
/// ends by itself (the listener was shut down) ends the serving too.
async fn serve_from_thread(
    serving: &Serving,
    stop: &CancellationToken,
    accept: impl FnOnce(mpsc::Sender<std::net::TcpStream>) + Send + 'static,
    stop_thread: impl FnOnce(),
) -> io::Result<()> {
    let (handover, mut accepted) = mpsc::channel(HANDOVER_QUEUE);
    std::thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || accept(handover))?;
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
    stop_thread();
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
                    wait_readable(listener.as_fd(), BLOCKING_STOP_POLL);
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

/// Waits until `fd` is readable (a listener: a connection is queued, or it
/// was shut down, HUP), at most `timeout`; whether it is.
fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    // EINTR or another error: the caller's loop looks again.
    nix::poll::poll(&mut fds, timeout).is_ok_and(|ready| ready > 0)
}
