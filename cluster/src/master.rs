//! What every master does around its mode: the common flags, the fd limit,
//! the single-threaded runtime, the stop signals and the exit code.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::Mode;
use crate::cli::{self, UsageError};
use crate::listen::BindError;
use crate::procfs;
use crate::rlimit::{self, NofileLimit};
use crate::upgrade::Upgrade;

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
    /// frees a stalled client's fd sooner. At most a day, like every duration
    /// flag.
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

    /// Serve a Unix socket at PATH (mode 0600, removed at exit) on which a
    /// new master of the same mode, started with `--takeover PATH`, takes
    /// the listening sockets over (SCM_RIGHTS) for a zero-downtime upgrade.
    /// A stale socket left by a dead master is replaced; one a live master
    /// serves is never taken.
    #[arg(long, value_name = "PATH")]
    pub upgrade_socket: Option<PathBuf>,

    /// Take the listening sockets over from the master serving
    /// `--upgrade-socket PATH` (`--listen` is then ignored), start the
    /// workers on them, and when every one serves tell the old master,
    /// which stops accepting and exits once its workers are done. Give the
    /// same `--upgrade-socket PATH` to be taken over in turn.
    #[arg(long, value_name = "PATH")]
    pub takeover: Option<PathBuf>,

    /// How long each worker waits before it reports ready, standing in for
    /// a real server's start-up (configuration, caches, JIT): it makes the
    /// cost of a restart visible. It answers the master's pings meanwhile.
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = cli::parse_duration)]
    pub init_delay: Duration,
}

fn default_workers() -> u16 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(1024) as u16)
}

/// Everything a mode's `run` needs from the common set-up (besides its
/// [`Upgrade`]).
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
///
/// Before `run`, [`Upgrade::prepare`] binds `--upgrade-socket` and, with
/// `--takeover`, takes the old master's sockets: `run` gets the result.
pub fn main<F, Fut>(mode: Mode, args: ClusterArgs, run: F) -> ExitCode
where
    F: FnOnce(Setup, Upgrade) -> Fut,
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
        runtime.block_on(async {
            let upgrade = Upgrade::prepare(&args, mode).await?;
            let setup = Setup {
                args,
                worker_nofile,
            };
            run(setup, upgrade).await
        })
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

/// Resolves on the first SIGINT or SIGTERM, which asks for a graceful stop.
/// The handlers are installed when this is called, not when the future is
/// first polled, so a signal that arrives just after start-up is not lost.
///
/// A second SIGINT or SIGTERM during the graceful stop (which may take the
/// grace period and more) stops at once, as nginx's fast shutdown and
/// Node.js's second Ctrl-C do: every worker is SIGKILLed and the master exits
/// with 128 + the signal's number, 130 after SIGINT and 143 after SIGTERM,
/// what a shell reports for a process that signal killed (see
/// `stop_at_once`).
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        let first = next_stop_signal(&mut interrupt, &mut terminate).await;
        tracing::info!("{first}: stopping; a second SIGINT or SIGTERM stops at once");
        // A task of its own: the mode's graceful stop runs after this future
        // has resolved, and the second signal must cut it short.
        tokio::spawn(async move {
            let second = next_stop_signal(&mut interrupt, &mut terminate).await;
            stop_at_once(second)
        });
    })
}

/// The next SIGINT or SIGTERM, whichever comes first.
async fn next_stop_signal(
    interrupt: &mut tokio::signal::unix::Signal,
    terminate: &mut tokio::signal::unix::Signal,
) -> nix::sys::signal::Signal {
    use nix::sys::signal::Signal;
    tokio::select! {
        _ = interrupt.recv() => Signal::SIGINT,
        _ = terminate.recv() => Signal::SIGTERM,
    }
}

/// The fast stop, on a second stop signal: SIGKILL every child (the workers,
/// ready or still starting), then exit at once with 128 + the signal's number,
/// leaving the requests in flight unanswered.
///
/// The children are read from `/proc` (`procfs::children`), which lists
/// every worker whatever its slot's state. They are our children, not yet
/// reaped, so their pids are still theirs: this runs on the master's only
/// runtime thread, where the supervisor reaps, and nothing reaps meanwhile.
/// A worker this missed would still get its SIGKILL from the kernel as the
/// master exits (`PR_SET_PDEATHSIG`, see [`crate::supervisor`]).
fn stop_at_once(signal: nix::sys::signal::Signal) -> ! {
    let workers = kill_workers();
    tracing::warn!(workers, "second {signal}: workers killed, exiting at once");
    std::process::exit(128 + signal as i32)
}

/// SIGKILLs every child of the master (see [`stop_at_once`]) and returns
/// how many there were.
pub(crate) fn kill_workers() -> usize {
    use nix::sys::signal::{Signal, kill};
    let workers = procfs::children(std::process::id()).unwrap_or_else(|err| {
        tracing::warn!(cause = %err, "cannot list the workers; the death signal will kill them");
        Vec::new()
    });
    for &pid in &workers {
        let Ok(pid) = i32::try_from(pid) else {
            continue;
        };
        if let Err(err) = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL) {
            tracing::debug!(worker = pid, cause = %err, "SIGKILL");
        }
    }
    workers.len()
}
