//! `proxy`: N workers share one port through a master that relays every
//! connection (see the crate docs and README.md).

use std::process::ExitCode;

use clap::Parser;
use cluster::Mode;
use cluster::master::{self, ClusterArgs};
use cluster::worker::{self, Command};

/// Serve one port with N worker processes behind a relaying master (reverse
/// proxy). Prints one JSON line on stdout when ready; logs on stderr (RUST_LOG).
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

fn main() -> ExitCode {
    let cli: Cli = match cluster::cli::parse("proxy") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    master::init_logging();
    match cli.command {
        Some(Command::Worker(args)) => worker::main(args),
        None => master::main(Mode::Proxy, cli.cluster, |setup| async {
            proxy::run(setup, master::shutdown_signal()?).await
        }),
    }
}
