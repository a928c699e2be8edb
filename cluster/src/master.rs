//! What every master does around its mode: the common flags, the fd limit,
//! the single-threaded runtime, the stop signals and the exit code.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

use crate::Mode;
use crate::cli::{self, ClusterArgs, Setup, UsageError};
use crate::listen::BindError;
use crate::procfs;
use crate::rlimit;
use crate::upgrade::Upgrade;

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
/// `--takeover`, takes the old master's sockets: `run` gets the result, and
/// the [`Shutdown`] to stop on. The stop signals are caught from before the
/// takeover: a SIGTERM while the sockets arrive must not kill a master that
/// holds them, and one before anything has started ends the master at once
/// (exit 0: nothing to undo).
pub fn main<F, Fut>(mode: Mode, args: ClusterArgs, run: F) -> ExitCode
where
    F: FnOnce(Setup, Upgrade, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let result = (|| {
        // Before any thread: it changes the environment.
        let activated = crate::activation::take(mode, args.workers)?;
        let worker_nofile = rlimit::get()?;
        if let Some(max_fds) = args.max_fds {
            rlimit::set_soft(max_fds)
                .map_err(|err| UsageError(format!("--max-fds {max_fds}: {err}")))?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let mut shutdown: Shutdown = Box::pin(shutdown_signal()?);
            let upgrade = tokio::select! {
                upgrade = Upgrade::prepare(&args, mode, activated) => upgrade?,
                () = &mut shutdown => return Ok(()),
            };
            let setup = Setup {
                args,
                worker_nofile,
            };
            run(setup, upgrade, shutdown).await
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

/// The first SIGINT or SIGTERM, which asks a master for a graceful stop
/// (`shutdown_signal`: a second one stops at once).
pub type Shutdown = Pin<Box<dyn Future<Output = ()>>>;

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
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
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
