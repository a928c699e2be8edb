//! `proxy`: N workers share one port through a master that relays every
//! connection (see the crate docs and README.md).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cluster::Mode;
use cluster::cli::ClusterArgs;
use cluster::master;
use cluster::worker::{self, Command};
use proxy::{Relay, Upstream};

/// Serve one port with N worker processes behind a relaying master (reverse
/// proxy). Prints one JSON line on stdout when ready; logs on stderr (RUST_LOG).
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Close a relay after this long without a byte either way: a client
    /// idle on its keep-alive connection, or one waiting on a stalled worker.
    /// 60 s, as nginx's `proxy_read_timeout`: far above any answer a worker
    /// computes (at most 1 s), and a relay's two fds are not held for ever.
    /// A relay whose client has sent its end-of-file waits at most 5 s of
    /// the worker's silence, or this if shorter.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = cluster::cli::parse_positive_duration)]
    relay_timeout: Duration,
    /// How the master reaches each worker: its own TCP port on 127.0.0.1
    /// (`tcp`, the default: one local ephemeral port per relay, as nginx's
    /// `proxy_pass http://127.0.0.1:PORT`) or its own Unix stream socket in
    /// a private folder (`unix`: no ephemeral port, no handshake, as
    /// `proxy_pass http://unix:/path`). The fd bill is the same: 2 per client.
    #[arg(long, value_enum, default_value_t = Upstream::Tcp)]
    upstream: Upstream,
    /// How the master moves a relay's bytes: `copy` (the default) reads
    /// them into its memory and writes them out (two copies per byte);
    /// `splice` moves them socket → pipe → socket with splice(2), inside the
    /// kernel, once a read has filled the 8 KiB buffer (smaller messages are
    /// copied: cheaper there). The pipes come from a pool of at most 16,
    /// lent per chunk, so splice costs the same 2 fds per client and at most
    /// 32 more for the master (fewer under a low fd limit).
    #[arg(long, value_enum, default_value_t = Relay::Copy)]
    relay: Relay,
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
        None => master::main(
            Mode::Proxy,
            cli.cluster,
            |setup, upgrade, shutdown| async move {
                proxy::run(
                    setup,
                    upgrade,
                    cli.relay_timeout,
                    cli.upstream,
                    cli.relay,
                    shutdown,
                )
                .await
            },
        ),
    }
}
