//! `handoff`: N workers share one port; the master hands them sockets over
//! Unix socketpairs with SCM_RIGHTS (see the crate docs and README.md).

use std::process::ExitCode;

use clap::Parser;
use cluster::Mode;
use cluster::cli::ClusterArgs;
use cluster::master;
use cluster::worker::{self, Command};
use handoff::steering::{DEFAULT_EJECT_AFTER, parse_eject_after};
use handoff::{Accept, Pass, Steer};

/// Serve one port with N worker processes, handing them sockets over Unix
/// socketpairs (SCM_RIGHTS). Prints one JSON line on stdout when ready; logs on
/// stderr (RUST_LOG).
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// What the master hands to the workers: every accepted connection (round
    /// robin, the default as in Node.js's cluster), the one listening socket
    /// (workers accept competitively, Node.js SCHED_NONE), or one SO_REUSEPORT
    /// listener per worker.
    #[arg(long, value_enum, default_value_t = Pass::Socket)]
    pass: Pass,
    /// With `--pass listener` only: how the workers accept on the shared
    /// socket, i.e. whom the kernel wakes for a new connection. `drain`
    /// (default): each worker's event loop watches the socket (epoll; every
    /// waiting worker is woken) and accepts until EAGAIN. `single`: the same,
    /// but a worker yields after each accept4 (libuv's UV_TCP_SINGLE_ACCEPT).
    /// `exclusive`: the socket in an epoll fd of each worker's own with
    /// EPOLLEXCLUSIVE (one waiting worker is woken per connection).
    /// `blocking`: a thread per worker blocked in accept(2) (the kernel wakes
    /// the one that waited longest: a FIFO queue).
    #[arg(long, value_enum, value_name = "STRATEGY")]
    accept: Option<Accept>,
    /// With `--pass reuseport` only: how the kernel picks the socket (and
    /// so the worker) of a new connection. `hash` (default): by a hash of
    /// its addresses, whatever the worker is doing. `health`: a BPF program
    /// of the master's (SK_REUSEPORT) spreads the same hash over the workers
    /// that answer their pings, leaving out one whose pong is later than
    /// `--eject-after` until it answers or its successor serves. Needs
    /// CAP_BPF and CAP_NET_ADMIN (root): without, exit 2.
    #[arg(long, value_enum, value_name = "HOW")]
    steer: Option<Steer>,
    /// With `--steer health` only: ping every worker at this pace, and
    /// leave one out of the group when its pong is this late (default
    /// 50ms; at least 10ms, and shorter than `--worker-timeout`, which
    /// still kills and replaces a worker that does not answer at all).
    #[arg(long, value_name = "DURATION", value_parser = parse_eject_after)]
    eject_after: Option<std::time::Duration>,
    #[command(subcommand)]
    command: Option<Command>,
}

fn main() -> ExitCode {
    let cli: Cli = match cluster::cli::parse("handoff") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if cli.accept.is_some() && cli.pass != Pass::Listener {
        eprintln!("handoff: error: --accept needs --pass listener (the workers accept only there)");
        return ExitCode::from(2);
    }
    if cli.steer.is_some() && cli.pass != Pass::Reuseport {
        eprintln!(
            "handoff: error: --steer needs --pass reuseport (only there has each worker a socket of its own)"
        );
        return ExitCode::from(2);
    }
    let steer = cli.steer.unwrap_or(Steer::Hash);
    if cli.eject_after.is_some() && steer != Steer::Health {
        eprintln!("handoff: error: --eject-after needs --steer health");
        return ExitCode::from(2);
    }
    let eject_after = cli.eject_after.unwrap_or(DEFAULT_EJECT_AFTER);
    if steer == Steer::Health && eject_after >= cli.cluster.worker_timeout {
        eprintln!(
            "handoff: error: --eject-after {eject_after:?} is not shorter than --worker-timeout {:?}: the worker would be killed before it is left out",
            cli.cluster.worker_timeout
        );
        return ExitCode::from(2);
    }
    let accept = cli.accept.unwrap_or(Accept::Drain);
    master::init_logging();
    match cli.command {
        Some(Command::Worker(args)) => worker::main(args),
        None => master::main(
            Mode::Handoff(cli.pass),
            cli.cluster,
            |setup, upgrade, shutdown| async move {
                handoff::run(
                    setup,
                    upgrade,
                    cli.pass,
                    accept,
                    steer,
                    eject_after,
                    shutdown,
                )
                .await
            },
        ),
    }
}
