//! `handoff`: N workers share one port; the master hands them sockets over
//! Unix socketpairs with SCM_RIGHTS (see the crate docs and README.md).

use std::process::ExitCode;

use clap::Parser;
use cluster::Mode;
use cluster::master::{self, ClusterArgs};
use cluster::worker::{self, Command};
use handoff::Pass;

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
    #[command(subcommand)]
    command: Option<Command>,
}

fn main() -> ExitCode {
    let cli: Cli = match cluster::cli::parse("handoff") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    master::init_logging();
    match cli.command {
        Some(Command::Worker(args)) => worker::main(args),
        None => master::main(
            Mode::Handoff(cli.pass),
            cli.cluster,
            |setup, upgrade| async move {
                handoff::run(setup, upgrade, cli.pass, master::shutdown_signal()?).await
            },
        ),
    }
}
