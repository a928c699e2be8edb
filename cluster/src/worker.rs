//! The worker process: one single-threaded tokio runtime, like one Node.js
//! worker, serving HTTP on whatever the master gives it over the channel.
//!
//! The master re-executes its own binary with the hidden `worker` subcommand and
//! the channel's fd number in [`CHANNEL_FD_ENV`] (Node.js: `NODE_CHANNEL_FD`).
//! Then, by [`Serve`]:
//!
//! - `own-port` (`proxy`): bind `127.0.0.1:0`, report the port in `Ready`;
//! - `sockets` (`handoff --pass socket`): report `Ready`, then serve each
//!   connection that arrives, acknowledging it at once;
//! - `listener` (`--pass listener` / `reuseport`): wait for the listening socket,
//!   accept on it, then report `Ready`.
//!
//! The worker exits when the channel ends (the master is gone), on `Stop` or
//! SIGTERM (gracefully), and when the channel carries something it cannot trust.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;

use crate::channel::{Channel, ChannelError, Message};
use crate::{GRACE_PERIOD, accept, service};

/// The environment variable that tells a worker the number of its channel fd.
pub const CHANNEL_FD_ENV: &str = "CLUSTER_CHANNEL_FD";

/// What a worker serves; chosen by the master's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Serve {
    /// Bind a port of its own on 127.0.0.1 and report it (`proxy`).
    OwnPort,
    /// Serve the connections handed over the channel (`handoff --pass socket`).
    Sockets,
    /// Accept on the listening socket handed over the channel
    /// (`handoff --pass listener` and `--pass reuseport`).
    Listener,
}

/// Arguments of the hidden `worker` subcommand, given by the master.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// What to serve.
    #[arg(long, value_enum)]
    pub serve: Serve,
    /// The master's `--header-timeout`.
    #[arg(long, value_parser = crate::cli::parse_duration)]
    pub header_timeout: std::time::Duration,
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
/// channel fails.
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let WorkerArgs {
        serve,
        header_timeout,
    } = args;
    let config = service::Config { header_timeout };
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
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let channel = Channel::new(inherited_channel()?).context("channel")?;
    let connections = Arc::new(GracefulShutdown::new());
    let mut accept_loops = JoinSet::new();
    let mut ready = false;

    if serve == Serve::OwnPort {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("bind own port")?;
        let port = listener.local_addr()?.port();
        accept_loops.spawn(accept_loop(listener, connections.clone(), config));
        channel
            .send(Message::Ready { port: Some(port) }, None)
            .await?;
        ready = true;
    } else if serve == Serve::Sockets {
        channel.send(Message::Ready { port: None }, None).await?;
        ready = true;
    }

    loop {
        let first = tokio::select! {
            received = channel.recv() => received,
            _ = sigterm.recv() => break,
        };
        // Handle this message and every other one already queued, then
        // acknowledge the connections among them with one message: under load
        // several handoffs arrive per wake-up, and one `Ack` (cumulative: "all
        // up to seq") saves the master a wake-up and a `recvmsg` for each other.
        let mut received = Some(first);
        let mut ack = None;
        let mut stop = false;
        while let Some(message) = received.take() {
            match message {
                Ok((Message::Connection { seq }, fds)) => {
                    service::serve(tcp_stream(fds)?, connections.watcher(), config);
                    ack = Some(seq);
                }
                Ok((Message::Listener, fds)) => {
                    let listener = tcp_listener(fds)?;
                    accept_loops.spawn(accept_loop(listener, connections.clone(), config));
                    if !ready {
                        channel.send(Message::Ready { port: None }, None).await?;
                        ready = true;
                    }
                }
                Ok((Message::Stop, _)) => stop = true,
                Ok((other, _)) => bail!("unexpected message from the master: {other:?}"),
                // Our fd table is full: the connection's fd was dropped by the
                // kernel; the master still holds it and gives it to another
                // worker. Sent at once, before any later cumulative Ack.
                Err(ChannelError::ControlTruncated {
                    message: Some(Message::Connection { seq }),
                }) => {
                    tracing::warn!(seq, "handoff arrived without its fd (fd limit?); rejected");
                    channel.send(Message::Reject { seq }, None).await?;
                }
                // The master exited (or was killed): nobody supervises us any more.
                Err(ChannelError::Closed) => bail!("master gone (channel closed)"),
                Err(err) => return Err(err).context("channel from the master"),
            }
            if !stop {
                received = channel.try_recv().transpose();
            }
        }
        if let Some(seq) = ack {
            channel.send(Message::Ack { seq }, None).await?;
        }
        if stop {
            break;
        }
    }

    // Graceful stop: no new connections, then let the requests in flight end.
    accept_loops.shutdown().await;
    let connections =
        Arc::into_inner(connections).expect("accept loops, the other owners, have ended");
    tracing::debug!(open = connections.count(), "worker stopping");
    if tokio::time::timeout(GRACE_PERIOD, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing the remaining connections");
    }
    Ok(())
}

/// Accepts on `listener` until the task is aborted (graceful stop).
async fn accept_loop(
    listener: TcpListener,
    connections: Arc<GracefulShutdown>,
    config: service::Config,
) {
    loop {
        let stream = accept::accept(&listener).await;
        service::serve(stream, connections.watcher(), config);
    }
}

fn one_fd(fds: Vec<OwnedFd>) -> anyhow::Result<OwnedFd> {
    let mut fds = fds.into_iter();
    match (fds.next(), fds.next()) {
        (Some(fd), None) => Ok(fd),
        _ => bail!("expected exactly one fd"),
    }
}

/// The connection handed over, as a tokio stream.
fn tcp_stream(fds: Vec<OwnedFd>) -> anyhow::Result<TcpStream> {
    let stream = std::net::TcpStream::from(one_fd(fds)?);
    // The master accepted it blocking and left the options to us.
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    Ok(TcpStream::from_std(stream)?)
}

/// The listening socket handed over, as a tokio listener.
fn tcp_listener(fds: Vec<OwnedFd>) -> anyhow::Result<TcpListener> {
    let listener = std::net::TcpListener::from(one_fd(fds)?);
    // O_NONBLOCK lives on the open file description, shared with the master
    // and the other workers; none of them makes a blocking accept on it.
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener)?)
}
