//! `proxy`: the master accepts every client connection on the public port and
//! relays it, byte for byte, to a worker's own port (round robin). The classic
//! reverse proxy: simple, and every worker needs no help from the kernel, but the
//! master holds two fds per client connection and copies every byte twice.
//!
//! # Layout
//!
//! - [`run`]: the master's loop: accept, pick a worker, start a relay.
//! - [`relay`]: copying both ways between client and worker, half-close included.
#![deny(missing_docs)]

use std::future::Future;

use anyhow::Context;
use cluster::master::Setup;
use cluster::supervisor::{Event, Supervisor};
use cluster::{GRACE_PERIOD, Mode, accept, listen};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

pub mod relay;

/// fds kept free for what the master opens besides relays: a respawned
/// worker's channel pair and the pipe of its spawn.
const SPARE_FDS: usize = 16;

/// How many relays fit under this process's RLIMIT_NOFILE, each holding two
/// fds (client and worker), besides the fds open now and a few to spare.
///
/// Like HAProxy, which derives its `maxconn` from `ulimit -n`, the master
/// stops accepting at this count: the clients beyond it wait in the kernel's
/// accept queue, instead of being accepted and then closed for want of a
/// second fd. This is the proxy's ceiling: half the fd limit.
pub fn max_relays(workers: usize) -> anyhow::Result<usize> {
    let soft = cluster::rlimit::get()?.soft;
    let open = cluster::procfs::fd_count(std::process::id())?;
    let reserved = open + workers + SPARE_FDS;
    Ok((usize::try_from(soft)
        .unwrap_or(usize::MAX)
        .saturating_sub(reserved)
        / 2)
    .max(1))
}

/// Runs the `proxy` master until `shutdown` resolves, then stops accepting,
/// stops the workers (they finish the requests in flight) and waits, at most
/// [`GRACE_PERIOD`], for the relays to end.
pub async fn run(setup: Setup, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let listener = listen::bind(setup.args.listen, false)?;
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let listen = listener.local_addr()?;
    let workers = usize::from(setup.args.workers);
    let max_relays = max_relays(workers)?;
    tracing::debug!(max_relays, "relay limit from RLIMIT_NOFILE");
    // One permit per relay that the fd limit allows.
    let fd_budget = Arc::new(Semaphore::new(max_relays));
    let mut supervisor = Supervisor::start(&setup, Mode::Proxy, listen)?;
    // The own port of the worker serving each slot; None while it (re)starts.
    let mut ports: Vec<Option<u16>> = vec![None; workers];
    // Round robin: the slot to try first for the next connection.
    let mut next = 0;
    let relays = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            event = supervisor.next_event() => match event {
                Event::Ready { slot, port, .. } => {
                    ports[slot] = Some(port.context("a proxy worker reports its own port")?);
                }
                Event::Exited { slot, .. } => ports[slot] = None,
                _ => {}
            },
            // While no worker serves, or every fd is spoken for, leave clients
            // in the kernel's accept queue.
            (permit, client) = async {
                let permit = fd_budget.clone().acquire_owned().await.expect("never closed");
                (permit, accept::accept(&listener).await)
            }, if ports.iter().any(Option::is_some) => {
                // This slot's worker first, then the others in order, in case
                // it died a moment ago.
                let targets: Vec<u16> = (0..workers)
                    .filter_map(|i| ports[(next + i) % workers])
                    .collect();
                next = (next + 1) % workers;
                relays.spawn(async move {
                    relay::relay(client, targets).await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    supervisor.shutdown().await;
    relays.close();
    if tokio::time::timeout(GRACE_PERIOD, relays.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = relays.len(),
            "relays still open after the grace period; closing them"
        );
    }
    Ok(())
}
