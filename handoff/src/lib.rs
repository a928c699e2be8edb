//! `handoff`: the master shares its port by handing sockets to the workers over
//! their Unix socketpairs (SCM_RIGHTS), in one of three ways (`--pass`):
//!
//! - `socket`: the master accepts every connection and hands it to a worker,
//!   round robin (Node.js cluster's default scheduling);
//! - `listener`: the master hands the one listening socket to every worker,
//!   and the workers accept competitively (Node.js `SCHED_NONE`), in the way
//!   `--accept` says ([`Accept`]: whom the kernel wakes for a connection);
//! - `reuseport`: the master binds one `SO_REUSEPORT` listener per worker
//!   slot on the same port and hands each worker its own; the kernel spreads
//!   connections by a hash of their addresses, or (`--steer health`) a BPF
//!   program of the master's spreads them over the workers that answer
//!   their pings.
//!
//! Either way the master holds no fd per client connection once a worker has it.
//!
//! # Layout
//!
//! - [`run`]: binds, starts the workers, runs the chosen way.
//! - [`dispatch`]: `--pass socket`: the round-robin handoff with
//!   acknowledgements.
//! - [`listeners`]: `--pass listener` and `--pass reuseport`: listening sockets
//!   handed out once per worker.
//! - [`steering`]: `--steer health`: which slots are live, from the
//!   supervisor's events, for the program of [`cluster::steer`].
#![deny(missing_docs)]

use std::future::Future;
use std::time::Duration;

use cluster::cli::Setup;
use cluster::upgrade::Upgrade;

pub mod dispatch;
pub mod listeners;
pub mod steering;

/// What the master hands to the workers: the `--pass` flag, and the second
/// half of the mode's name ([`cluster::Mode::Handoff`]).
pub use cluster::Pass;

/// How the workers of `--pass listener` accept on the shared socket: the
/// `--accept` flag.
pub use cluster::Accept;

/// How the kernel picks a socket of `--pass reuseport`'s group for a new
/// connection: the `--steer` flag.
pub use cluster::steer::Steer;

/// Runs the `handoff` master until `shutdown` resolves, then stops
/// gracefully (see [`cluster::master`]).
/// With `--takeover` the listening sockets are the old master's; with
/// `--upgrade-socket` a successor may take them over (see
/// [`cluster::upgrade`]).
/// `accept` is how the workers accept on the shared listener (`--pass
/// listener` only; ignored otherwise); `steer` and `eject_after`, how
/// the kernel picks a socket of the group and how late a worker's pong
/// takes it out (`--pass reuseport` only; ignored otherwise).
pub async fn run(
    setup: Setup,
    upgrade: Upgrade,
    pass: Pass,
    accept: Accept,
    steer: Steer,
    eject_after: Duration,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    match pass {
        Pass::Socket => dispatch::run(setup, upgrade, shutdown).await,
        Pass::Listener => {
            let accept = Some(accept);
            listeners::run(
                setup,
                upgrade,
                pass,
                accept,
                Steer::Hash,
                eject_after,
                shutdown,
            )
            .await
        }
        Pass::Reuseport => {
            listeners::run(setup, upgrade, pass, None, steer, eject_after, shutdown).await
        }
    }
}
