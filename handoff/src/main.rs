//! `handoff`: N workers share one port; the master hands them sockets over
//! Unix socketpairs with SCM_RIGHTS (see the crate docs and README.md).

use std::process::ExitCode;

use clap::Parser;
use cluster::Mode;
use cluster::cli::ClusterArgs;
use cluster::master;
use cluster::worker::{self, Command};
use handoff::{Accept, Pass};

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
    let accept = cli.accept.unwrap_or(Accept::Drain);
    master::init_logging();
    match cli.command {
        Some(Command::Worker(args)) => worker::main(args),
        None => master::main(
            Mode::Handoff(cli.pass),
            cli.cluster,
            |setup, upgrade, shutdown| async move {
                handoff::run(setup, upgrade, cli.pass, accept, shutdown).await
            },
        ),
    }
}
