//! What every master does around its mode: the common flags, the fd limit,
//! the single-threaded runtime, the stop signals and the exit code.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::Mode;
use crate::cli::{self, UsageError};
use crate::listen::BindError;
use crate::rlimit::{self, NofileLimit};

/// The flags every mode takes (ARCHITECTURE.md).
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Address of the public port. Port 0 picks a free port; the `ready` line
    /// on stdout says which. Loopback by default: a benchmark server should not
    /// be reachable from the network unless asked.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Number of worker processes. One per CPU by default, as Node.js's cluster
    /// examples and nginx's `worker_processes auto` do.
    #[arg(long, default_value_t = default_workers(), value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: u16,

    /// Set the master's RLIMIT_NOFILE (soft limit) to N, for the fd-limit
    /// experiment. Workers keep the limit the master was started with.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(16..))]
    pub max_fds: Option<u64>,

    /// How long a client may take to send a request's headers (slowloris
    /// defence); it also bounds a keep-alive connection's idle time between
    /// requests. nginx's `client_header_timeout` and Node.js's `headersTimeout`
    /// are 60 s; a benchmark's clients send at once, so 10 s is generous and
    /// frees a stalled client's fd sooner.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = cli::parse_positive_duration)]
    pub header_timeout: Duration,

    /// How long a worker may leave the master's ping unanswered before it is
    /// killed (SIGKILL) and replaced: a worker that is alive but stuck (a
    /// SIGSTOP, a deadlock, a request computing forever) would otherwise keep
    /// its share of the clients waiting. The master pings each worker every
    /// quarter of this (at most every second), and the worker's event loop
    /// answers. unicorn's worker `timeout` is the same idea (60 s there, for
    /// requests of a web application); 10 s is ten times the longest request
    /// a worker of this suite computes (`?work_us=1000000`).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = cli::parse_positive_duration)]
    pub worker_timeout: Duration,
}

fn default_workers() -> u16 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(1024) as u16)
}

/// Everything a mode's `run` needs from the common set-up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The flags as given.
    pub args: ClusterArgs,
    /// The RLIMIT_NOFILE the master was started with, for the workers.
    pub worker_nofile: NofileLimit,
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Runs a master: applies `--max-fds`, builds a current-thread runtime (like
/// Node.js's master, nginx with one worker or HAProxy with one thread, so that
/// comparisons are fair; and the workers' death signal needs the spawning
/// thread to be the main thread), runs `run` on it and maps its result to an
/// exit code: 0, 2 for bad usage or an address that cannot be bound, 1 else.
/// The error is printed as one line on stderr.
pub fn main<F, Fut>(mode: Mode, args: ClusterArgs, run: F) -> ExitCode
where
    F: FnOnce(Setup) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let result = (|| {
        let worker_nofile = rlimit::get()?;
        if let Some(max_fds) = args.max_fds {
            rlimit::set_soft(max_fds)
                .map_err(|err| UsageError(format!("--max-fds {max_fds}: {err}")))?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(run(Setup {
            args,
            worker_nofile,
        }))
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let taken_port = err
                .downcast_ref::<BindError>()
                .is_some_and(BindError::is_usage);
            cli::fail(&mode.to_string(), &err, taken_port)
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed when
/// this is called, not when the future is first polled, so a signal that
/// arrives just after start-up is not lost.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
        }
    })
}
