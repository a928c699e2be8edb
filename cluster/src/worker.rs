//! The worker process: one single-threaded tokio runtime, like one Node.js
//! worker, serving HTTP on whatever the master gives it over the channel.
//!
//! The master re-executes its own binary with the hidden `worker` subcommand,
//! its [`Mode`] and the channel's fd number in [`CHANNEL_FD_ENV`] (Node.js:
//! `NODE_CHANNEL_FD`). Then [`run`] serves the way the mode asks, one
//! function each:
//!
//! - `proxy` (`serve_own_port`): bind `127.0.0.1:0`, report the port
//!   in `Ready`;
//! - `handoff-socket` (`serve_handed_sockets`): report `Ready`, then
//!   serve each connection that arrives, acknowledging it;
//! - `handoff-listener` and `handoff-reuseport`
//!   (`serve_handed_listener`): wait for the listening socket, accept
//!   on it, then report `Ready`. Shared or not is the master's business;
//!   how to accept on it is `--accept`'s (`shared_listener`).
//!
//! With `--init-delay` (the master's flag, passed on) the worker waits that
//! long before it serves and reports `Ready` (after it has the listener, in
//! the listener modes), answering pings meanwhile.
//!
//! The worker exits when the channel ends (the master is gone), on `Stop` or
//! SIGTERM (gracefully), and when the channel carries something it cannot trust.
//! Wherever it waits for the master's orders it answers the master's `Ping`
//! with a `Pong`: a worker whose event loop is stuck answers nothing, and the
//! master replaces it after `--worker-timeout`.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpStream;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::channel::{Channel, ChannelError, Message};
use crate::shared_listener::{Serving, accept_loop};
use crate::{Accept, Mode, Pass, service};

/// The environment variable that tells a worker the number of its channel fd.
pub const CHANNEL_FD_ENV: &str = "CLUSTER_CHANNEL_FD";

/// How long a stopping worker lets the reactor report the connections it was
/// just handed before it signals the graceful stop (see `stop_gracefully`):
/// one epoll_wait is enough; 20 ms is far less than the grace period and
/// costs nothing a user would see at a stop.
const STOP_SETTLE: std::time::Duration = std::time::Duration::from_millis(20);

/// Arguments of the hidden `worker` subcommand, given by the master.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The master's mode, which says what the worker serves.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// The master's `--header-timeout`.
    #[arg(long, value_parser = crate::cli::parse_duration)]
    pub header_timeout: std::time::Duration,
    /// The master's `--init-delay`: wait this long before serving.
    #[arg(long, value_parser = crate::cli::parse_duration, default_value = "0s")]
    pub init_delay: std::time::Duration,
    /// The master's `--grace`: how long a stop by SIGTERM to this worker
    /// alone lets its requests finish (a `Stop` from the master says what
    /// is left of the master's own).
    #[arg(long, value_parser = crate::cli::parse_grace, default_value = "5s")]
    pub grace: std::time::Duration,
    /// The master's `--accept`: how to accept on a shared listener
    /// (`handoff-listener` only; the other modes ignore it).
    #[arg(long, value_enum, default_value_t = Accept::Drain)]
    pub accept: Accept,
    /// `proxy --upstream unix`: listen on a Unix socket in this folder (the
    /// master's own, mode 0700), named by [`upstream_path`], instead of a
    /// TCP port of its own.
    #[arg(long, value_name = "DIR")]
    pub upstream_dir: Option<std::path::PathBuf>,
}

/// Where the worker `pid` of a `proxy --upstream unix` master listens: one
/// name, used by the worker that binds it, the supervisor that announces it
/// and the master that connects to it.
pub fn upstream_path(dir: &std::path::Path, pid: u32) -> std::path::PathBuf {
    dir.join(format!("worker-{pid}.sock"))
}

/// The hidden subcommand by which the master starts its workers; every
/// master binary adds it as `#[command(subcommand)] Option<Command>`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Run as a worker (started by the master, not by hand).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// Entry point of a worker process: builds its runtime and runs [`run`].
pub fn main(args: WorkerArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime needs only an epoll fd and an eventfd");
    let _guard = runtime.enter();
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(pid = std::process::id(), "worker exits: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Takes the channel fd named by [`CHANNEL_FD_ENV`].
fn inherited_channel() -> anyhow::Result<OwnedFd> {
    let value = std::env::var(CHANNEL_FD_ENV)
        .with_context(|| format!("{CHANNEL_FD_ENV} is not set: workers are started by a master"))?;
    let fd: RawFd = value
        .parse()
        .with_context(|| format!("{CHANNEL_FD_ENV}={value:?}"))?;
    // Only an open Unix socket may be taken; anything else is a wrong invocation.
    // SAFETY: borrowed only for this fstat; a closed fd is an EBADF, not UB.
    let is_socket = nix::sys::stat::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
        .unwrap_or(false);
    if !is_socket {
        bail!("{CHANNEL_FD_ENV}={fd} is not an open socket");
    }
    // SAFETY: the master passed this fd to us alone (it cleared close-on-exec on
    // it in our child only); no other code of this process opens or closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Runs the worker until it is told to stop, its master is gone, or its
/// channel fails; a stop lets the requests in flight finish.
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let config = service::Config {
        header_timeout: args.header_timeout,
    };
    let mut worker = Worker::start(config, args.init_delay, args.accept, args.grace)?;
    match args.mode {
        Mode::Proxy => worker.serve_own_port(args.upstream_dir.as_deref()).await?,
        Mode::Handoff(Pass::Socket) => worker.serve_handed_sockets().await?,
        Mode::Handoff(Pass::Listener | Pass::Reuseport) => worker.serve_handed_listener().await?,
    }
    worker.stop_gracefully().await;
    Ok(())
}

/// What the master asks of the worker, as the serving functions take it.
enum Order {
    /// A message and the fds that came with it (one for `Connection` and
    /// `Listener`).
    Take(Message, Vec<OwnedFd>),
    /// Connections whose fds the kernel dropped: our fd table is full. The
    /// master still holds them and gives them to another worker on `Reject`.
    /// A batch is refused whole, whichever of its fds arrived (those are
    /// closed already).
    Refuse {
        /// The first handoff to reject.
        first: u64,
        /// The last handoff to reject (`first` for a single connection).
        last: u64,
    },
    /// `Stop` from the master (with what is left of its grace period), or
    /// SIGTERM (a whole `--grace`).
    Stop {
        /// How long the requests in flight may still take.
        grace: std::time::Duration,
    },
}

impl Order {
    /// The order in what the channel delivered; an error for what ends the
    /// worker (the master gone, a frame it cannot trust).
    fn from_channel(
        received: Result<(Message, Vec<OwnedFd>), ChannelError>,
    ) -> anyhow::Result<Order> {
        match received {
            Ok((Message::Stop { grace_ms }, _)) => Ok(Order::Stop {
                grace: std::time::Duration::from_millis(grace_ms.into()),
            }),
            Ok((message, fds)) => Ok(Order::Take(message, fds)),
            Err(ChannelError::ControlTruncated {
                message: Some(message),
            }) if message.handoffs().is_some() => {
                let (first, last) = message.handoffs().expect("checked by the guard");
                Ok(Order::Refuse { first, last })
            }
            // The master exited (or was killed): nobody supervises us any more.
            Err(ChannelError::Closed) => bail!("master gone (channel closed)"),
            Err(err) => Err(err).context("channel from the master"),
        }
    }
}

/// A worker's state: its channel, and what it serves.
struct Worker {
    /// To and from the master.
    channel: Channel,
    /// SIGTERM stops the worker as `Stop` does.
    sigterm: Signal,
    /// The HTTP settings, from the master's flags.
    config: service::Config,
    /// How to accept on a listener handed over (`--accept`).
    accept: Accept,
    /// Every connection served, so that a stop can wait for them.
    connections: Arc<GracefulShutdown>,
    /// The tasks accepting on a listener (`proxy`, listener modes).
    accept_loops: JoinSet<()>,
    /// Tells the accept loops to take what is queued and end (graceful stop).
    stop_accepting: CancellationToken,
    /// `--init-delay`: how long to wait before serving.
    init_delay: std::time::Duration,
    /// How long the graceful stop lets requests in flight finish: what the
    /// master's `Stop` said, or `--grace` on SIGTERM.
    grace: std::time::Duration,
    /// `--grace`: the grace of a stop by SIGTERM to this worker alone.
    sigterm_grace: std::time::Duration,
}

impl Worker {
    /// Takes the inherited channel and sets up the signals.
    fn start(
        config: service::Config,
        init_delay: std::time::Duration,
        accept: Accept,
        grace: std::time::Duration,
    ) -> anyhow::Result<Worker> {
        // Ctrl-C in a terminal signals the whole foreground process group; the
        // master coordinates the stop, so a worker must not die of SIGINT first.
        // SAFETY: SIG_IGN installs no handler code; nothing else here handles SIGINT.
        unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::SIGINT,
                nix::sys::signal::SigHandler::SigIgn,
            )
        }
        .context("ignore SIGINT")?;
        Ok(Worker {
            sigterm: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            channel: Channel::new(inherited_channel()?).context("channel")?,
            config,
            accept,
            connections: Arc::new(GracefulShutdown::new()),
            accept_loops: JoinSet::new(),
            stop_accepting: CancellationToken::new(),
            init_delay,
            grace,
            sigterm_grace: grace,
        })
    }

    /// `--init-delay`: waits that long before serving, as a real server's
    /// start-up would, answering pings meanwhile. False if told to stop.
    async fn start_up(&mut self) -> anyhow::Result<bool> {
        if self.init_delay.is_zero() {
            return Ok(true);
        }
        // `next_order` answers the pings itself; it returns only an order.
        tokio::select! {
            () = tokio::time::sleep(self.init_delay) => Ok(true),
            order = self.next_order() => match order? {
                Order::Stop { .. } => Ok(false),
                _ => bail!("unexpected message from the master while starting up"),
            },
        }
    }

    /// `proxy`: bind a port of our own (or, with `--upstream unix`, a Unix
    /// socket in the master's folder), report it, serve until told to stop.
    async fn serve_own_port(
        &mut self,
        upstream_dir: Option<&std::path::Path>,
    ) -> anyhow::Result<()> {
        if !self.start_up().await? {
            return Ok(());
        }
        let ready = match upstream_dir {
            Some(dir) => {
                let path = upstream_path(dir, std::process::id());
                let listener = std::os::unix::net::UnixListener::bind(&path)
                    .with_context(|| format!("bind {}", path.display()))?;
                let serving = self.serving();
                let accepting = crate::shared_listener::unix_accept_loop(
                    listener,
                    serving,
                    self.stop_accepting.clone(),
                );
                self.accept_loops.spawn(accepting);
                // The master knows the path from our pid.
                Message::Ready { port: None }
            }
            None => {
                // The backlog of the public port's default, not std's 128:
                // the master's relays connect here, and a burst of new
                // clients beyond 128 would wait a SYN retransmission (1 s)
                // on this hop while the worker is busy.
                let own = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
                let listener = crate::listen::bind(own, false, crate::listen::DEFAULT_BACKLOG)
                    .context("bind own port")?;
                let port = listener.local_addr()?.port();
                self.accept_on(listener, Accept::Drain);
                Message::Ready { port: Some(port) }
            }
        };
        self.channel.send(ready, None).await?;
        self.serve_until_stop().await
    }

    /// `handoff-listener` / `handoff-reuseport`: wait for the listening socket,
    /// accept on it, report `Ready`, serve until told to stop.
    async fn serve_handed_listener(&mut self) -> anyhow::Result<()> {
        match self.next_order().await? {
            Order::Take(Message::Listener, fds) => {
                let listener = tcp_listener(fds)?;
                if !self.start_up().await? {
                    return Ok(());
                }
                self.accept_on(listener, self.accept);
            }
            Order::Stop { .. } => return Ok(()),
            _ => bail!("unexpected message from the master (expected Listener)"),
        }
        self.channel
            .send(Message::Ready { port: None }, None)
            .await?;
        self.serve_until_stop().await
    }

    /// `handoff-socket`: report `Ready`, then serve every connection handed
    /// over until told to stop.
    ///
    /// The orders already queued when one arrives are taken together, and the
    /// connections among them acknowledged with one message: under load
    /// several handoffs arrive per wake-up, and one `Ack` (cumulative: "all up
    /// to seq") saves the master a wake-up and a `recvmsg` for each other.
    async fn serve_handed_sockets(&mut self) -> anyhow::Result<()> {
        if !self.start_up().await? {
            return Ok(());
        }
        self.channel
            .send(Message::Ready { port: None }, None)
            .await?;
        loop {
            let mut order = self.next_order().await?;
            let mut ack = None;
            let stop = loop {
                match order {
                    // One connection, or a batch (its fds in `seq` order; the
                    // channel has checked that as many came as it announces).
                    Order::Take(message, fds) if message.handoffs().is_some() => {
                        let (first, last) = message.handoffs().expect("checked by the guard");
                        for (seq, fd) in (first..=last).zip(fds) {
                            self.serve_handed(seq, fd, service::serve);
                        }
                        ack = Some(last);
                    }
                    Order::Take(other, _) => bail!("unexpected message from the master: {other:?}"),
                    // Sent at once, before any later cumulative Ack; a batch
                    // is rejected whole, one `Reject` per connection.
                    Order::Refuse { first, last } => {
                        tracing::warn!(
                            first,
                            last,
                            "handoff arrived without its fds (fd limit?); rejected"
                        );
                        for seq in first..=last {
                            self.channel.send(Message::Reject { seq }, None).await?;
                        }
                    }
                    Order::Stop { .. } => break true,
                }
                match self.try_next_order().await? {
                    Some(next) => order = next,
                    None => break false,
                }
            };
            if let Some(seq) = ack {
                self.channel.send(Message::Ack { seq }, None).await?;
            }
            if stop {
                return Ok(());
            }
        }
    }

    /// Waits for `Stop` (or SIGTERM) while the accept loops serve. Before
    /// `Stop`, a master of the listener modes may hand over the connections
    /// it took from the accept queues as it stopped listening (handoff's
    /// `listeners::stop_listening`): served, not acknowledged (the master keeps
    /// no copy). Any other message is a master this worker does not understand.
    async fn serve_until_stop(&mut self) -> anyhow::Result<()> {
        loop {
            match self.next_order().await? {
                Order::Stop { .. } => return Ok(()),
                Order::Take(Message::Connection { seq }, fds) => {
                    // Only a frame without exactly one fd is the master's fault.
                    self.serve_handed(seq, one_fd(fds)?, service::serve_at_stop);
                }
                Order::Refuse { first, .. } => {
                    tracing::warn!(
                        seq = first,
                        "a queued connection arrived without its fd (fd limit?); lost"
                    );
                }
                _ => bail!("unexpected message from the master (expected Stop)"),
            }
        }
    }

    /// Serves a connection handed over with `seq`, with `serve`. A socket
    /// that cannot be set up concerns that one client: it is closed and
    /// logged, and the worker goes on.
    fn serve_handed(&self, seq: u64, fd: OwnedFd, serve: fn(TcpStream, Watcher, service::Config)) {
        match crate::accept::tcp_stream(fd) {
            Ok(stream) => serve(stream, self.connections.watcher(), self.config),
            Err(err) => {
                tracing::warn!(seq, cause = %err, "cannot serve a handed connection; closed")
            }
        }
    }

    /// The next order from the master, or [`Order::Stop`] on SIGTERM.
    /// Pings are answered on the way, whatever the worker serves: the
    /// master's liveness check asks only that this loop turns.
    async fn next_order(&mut self) -> anyhow::Result<Order> {
        loop {
            let received = tokio::select! {
                received = self.channel.recv() => received,
                _ = self.sigterm.recv() => return Ok(Order::Stop { grace: self.sigterm_grace }),
            };
            if let Some(order) = self.answer_ping(received).await? {
                return Ok(order);
            }
        }
    }

    /// The next order already queued, if any; pings answered on the way.
    async fn try_next_order(&mut self) -> anyhow::Result<Option<Order>> {
        while let Some(received) = self.channel.try_recv().transpose() {
            if let Some(order) = self.answer_ping(received).await? {
                return Ok(Some(order));
            }
        }
        Ok(None)
    }

    /// Answers a `Ping` with its `Pong`; anything else is an order (a
    /// `Stop` sets the grace period of the stop that follows).
    async fn answer_ping(
        &mut self,
        received: Result<(Message, Vec<OwnedFd>), ChannelError>,
    ) -> anyhow::Result<Option<Order>> {
        if let Ok((Message::Ping { seq }, _)) = received {
            self.channel.send(Message::Pong { seq }, None).await?;
            return Ok(None);
        }
        let order = Order::from_channel(received)?;
        if let Order::Stop { grace } = order {
            self.grace = grace;
        }
        Ok(Some(order))
    }

    /// Serves the connections of `listener` from now on, accepting as
    /// `strategy` says, in a task of its own.
    fn accept_on(&mut self, listener: std::net::TcpListener, strategy: Accept) {
        let serving = self.serving();
        let accepting = accept_loop(strategy, listener, serving, self.stop_accepting.clone());
        self.accept_loops.spawn(accepting);
    }

    /// What an accept loop serves its connections with.
    fn serving(&self) -> Serving {
        Serving {
            connections: self.connections.clone(),
            config: self.config,
        }
    }

    /// Graceful stop: no new connections (those already queued are taken),
    /// then let the requests in flight end, for at most the grace period
    /// (the master's `Stop` says what is left of it).
    async fn stop_gracefully(self) {
        let Worker {
            mut accept_loops,
            connections,
            stop_accepting,
            grace,
            ..
        } = self;
        stop_accepting.cancel();
        while accept_loops.join_next().await.is_some() {}
        let connections =
            Arc::into_inner(connections).expect("accept loops, the other owners, have ended");
        tracing::debug!(open = connections.count(), "worker stopping");
        // A reactor turn for every connection spawned so far, before the
        // graceful signal: hyper closes at once a connection that has not
        // started reading a request, and a connection handed over just before
        // `Stop` (the master hands out its queued clients at its stop) has its
        // request waiting unread in the socket. A new socket is not known to
        // be readable until the reactor has polled it, so a plain yield is not
        // enough (it lost such clients under load); during this sleep the
        // runtime parks in epoll_wait, which reports those sockets at once,
        // and their tasks read the requests before the timer wakes this one.
        // From then on the graceful stop waits for their answers.
        tokio::time::sleep(STOP_SETTLE).await;
        if tokio::time::timeout(grace, connections.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("grace period over; closing the remaining connections");
        }
    }
}

fn one_fd(fds: Vec<OwnedFd>) -> anyhow::Result<OwnedFd> {
    let mut fds = fds.into_iter();
    match (fds.next(), fds.next()) {
        (Some(fd), None) => Ok(fd),
        _ => bail!("expected exactly one fd"),
    }
}

/// The listening socket handed over; whether it blocks is the accept
/// strategy's business (`shared_listener`).
fn tcp_listener(fds: Vec<OwnedFd>) -> anyhow::Result<std::net::TcpListener> {
    Ok(std::net::TcpListener::from(one_fd(fds)?))
}
