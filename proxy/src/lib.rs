//! `proxy`: the master accepts every client connection on the public port and
//! relays it, byte for byte, to a worker's own port (round robin). The classic
//! reverse proxy: simple, and every worker needs no help from the kernel, but the
//! master holds two fds per client connection and copies every byte twice
//! (`--relay copy`), or has the kernel move them through a pipe
//! (`--relay splice`).
//!
//! # Layout
//!
//! - [`run`]: the master's loop: accept, pick a worker, start a relay.
//! - [`relay`]: moving bytes both ways between client and worker, half-close
//!   included, and when to stop waiting for either.
//! - [`pipes`]: `splice(2)` and the pool of pipes it borrows, with the fd
//!   bill of `--relay splice`.
//! - [`max_relays`]: the fd budget, re-measured as workers come and go.
#![deny(missing_docs)]

use std::future::Future;

use cluster::cli::{Setup, UsageError};
use cluster::supervisor::{Event, Supervisor, WorkerFlags};
use cluster::upgrade::{Step, Upgrade};
use cluster::{Mode, accept};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use relay::{Mover, RelayFds, Target};

pub mod pipes;
pub mod relay;

/// How the relays move bytes: the `--relay` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Relay {
    /// Read into the master's buffer, write out of it: two copies of every
    /// byte, through user space (nginx, HAProxy without splice).
    Copy,
    /// `splice(2)` socket → pipe → socket: the bytes stay in the kernel
    /// (HAProxy's `option splice-auto`). Small messages still go by copy,
    /// and the master holds a small pool of pipes: see [`pipes`].
    Splice,
}

/// How the master reaches its workers: the `--upstream` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Upstream {
    /// Each worker's own TCP port on 127.0.0.1, as nginx's `proxy_pass
    /// http://127.0.0.1:PORT`: a TCP handshake, and a local ephemeral port
    /// taken from `ip_local_port_range` (per worker address), per relay.
    Tcp,
    /// Each worker's own Unix stream socket, in a folder of the master's
    /// (mode 0700), as nginx's `proxy_pass http://unix:/path`: no
    /// handshake, no ephemeral port; the same relay and the same two fds
    /// per connection.
    Unix,
}

/// The longest path of a Unix socket (`sun_path`, with its final NUL).
const MAX_UNIX_PATH: usize = 107;

/// fds kept free besides the relays and what the master holds when it
/// measures: a respawning worker's channel pair, the pipe of its spawn, the
/// /dev/null of its stdio and tokio's pidfd for it, or a signal's pipe.
const SPARE_FDS: usize = 16;

/// The fds one relay holds: the client's socket and the master's socket to
/// a worker, whatever `--relay` (splice's pipes are the pool's, not a
/// relay's: [`pipes`]).
pub const FDS_PER_RELAY: usize = 2;

/// How many relays fit under a soft RLIMIT_NOFILE of `soft_limit` when the
/// master holds `own_fds` fds besides its relays and its pipes, `pipe_fds`
/// are reserved for the pool of pipes (`--relay splice`; 0 with copy), each
/// relay holds [`FDS_PER_RELAY`] fds, and `SPARE_FDS` are kept free. At
/// least one.
///
/// Like HAProxy, which derives its `maxconn` from `ulimit -n`, the master
/// stops accepting at this count: the clients beyond it wait in the kernel's
/// accept queue, instead of being accepted and then closed for want of a
/// second fd. This is the proxy's ceiling: half the fd limit.
pub fn max_relays(soft_limit: u64, own_fds: usize, pipe_fds: usize) -> usize {
    let soft_limit = usize::try_from(soft_limit).unwrap_or(usize::MAX);
    (soft_limit.saturating_sub(own_fds + pipe_fds + SPARE_FDS) / FDS_PER_RELAY).max(1)
}

/// The fds left for relays and pipes under `soft_limit` when the master
/// holds `own_fds`: what sizes the pool of pipes.
fn available_fds(soft_limit: u64, own_fds: usize) -> usize {
    usize::try_from(soft_limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(own_fds + SPARE_FDS)
}

/// The relays the fd limit allows, as a semaphore of one permit per relay,
/// re-measured whenever the master's own fds may have changed: a worker
/// spawned (its channel, and the pidfd tokio holds to reap it), ready, or
/// gone. The master's own fds are counted in /proc/self/fd, less the fds the
/// relays hold: not assumed, since a runtime may hold more per child than
/// the code that spawns it can see.
struct FdBudget {
    /// RLIMIT_NOFILE's soft limit, read at start (`--max-fds` or inherited).
    soft_limit: u64,
    /// One permit per relay allowed; a relay holds its permit until it ends.
    permits: Arc<Semaphore>,
    /// The permits issued in total: free, held by relays, or owed back to a
    /// shrink that waits for relays to end.
    max_relays: usize,
    /// The fds the relays hold, so they are not counted as the master's own.
    relay_fds: RelayFds,
    /// The fds reserved for the pool of pipes: two per pipe it may open.
    pipe_fds: usize,
}

impl FdBudget {
    /// Reads the fd limit and measures the budget for the first time; with
    /// `--relay splice`, sizes the pool of pipes from what is left
    /// ([`pipes::pipes_for`]) and reserves its fds, for good.
    fn new(relay_fds: RelayFds, relay: Relay) -> anyhow::Result<(FdBudget, Mover)> {
        let soft_limit = cluster::rlimit::get()?.soft;
        let mover = match relay {
            Relay::Copy => Mover::Copy,
            Relay::Splice => {
                let own_fds = cluster::procfs::fd_count(std::process::id())?;
                let pipes = pipes::pipes_for(available_fds(soft_limit, own_fds));
                tracing::debug!(pipes, "pool of pipes for splice");
                Mover::Splice {
                    pool: pipes::PipePool::new(pipes, relay_fds.clone()),
                    after_bytes: relay::BUFFER_BYTES,
                }
            }
        };
        let pipe_fds = match &mover {
            Mover::Copy => 0,
            Mover::Splice { pool, .. } => 2 * pool.max(),
        };
        let mut budget = FdBudget {
            soft_limit,
            permits: Arc::new(Semaphore::new(0)),
            max_relays: 0,
            relay_fds,
            pipe_fds,
        };
        budget.measure()?;
        Ok((budget, mover))
    }

    /// Counts the master's own fds now and sets the number of relays to
    /// what the rest of the limit allows. Must run on the master's thread,
    /// where relays open and close their fds, so that the count of
    /// /proc/self/fd and the relays' count are of one moment.
    fn measure(&mut self) -> anyhow::Result<()> {
        let open = cluster::procfs::fd_count(std::process::id())?;
        let own_fds = open.saturating_sub(self.relay_fds.count());
        let max = max_relays(self.soft_limit, own_fds, self.pipe_fds);
        if max == self.max_relays {
            return Ok(());
        }
        if max > self.max_relays {
            self.permits.add_permits(max - self.max_relays);
        } else {
            let excess = self.max_relays - max;
            let owed = excess - self.permits.forget_permits(excess);
            if owed > 0 {
                // The rest are held by relays: take them back as they end.
                // The semaphore is fair, so no new relay starts before.
                let permits = self.permits.clone();
                let owed = u32::try_from(owed).unwrap_or(u32::MAX);
                tokio::spawn(async move {
                    if let Ok(permit) = permits.acquire_many_owned(owed).await {
                        permit.forget();
                    }
                });
            }
        }
        tracing::debug!(max_relays = max, own_fds, "relay budget from RLIMIT_NOFILE");
        self.max_relays = max;
        Ok(())
    }
}

/// Runs the `proxy` master until `shutdown` resolves, then stops accepting,
/// stops the workers (they finish the requests in flight) and waits for the
/// relays to end, all within one grace period (`--grace`). A relay with no byte
/// moving either way for `relay_timeout` (`--relay-timeout`) is closed; the
/// relays move bytes as `relay` (`--relay`) says.
///
/// With `--takeover` the listener is the old master's; with
/// `--upgrade-socket` a successor may take it over, and then this master
/// stops accepting, closes its copy (the socket listens on, in the new
/// master) and lets the relays and workers finish.
pub async fn run(
    setup: Setup,
    mut upgrade: Upgrade,
    relay_timeout: Duration,
    upstream: Upstream,
    relay: Relay,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // The workers' Unix sockets live in a folder only this user can enter,
    // removed with everything in it when the master exits (a SIGKILLed
    // master leaves it in the temporary folder).
    let upstream_dir = match upstream {
        Upstream::Tcp => None,
        Upstream::Unix => Some(upstream_dir()?),
    };
    let listener = upgrade.single_listener(setup.args.listen)?;
    let listen = listener.local_addr()?;
    let (mut handover, ready_line) = upgrade.start(listen, &[listener.try_clone()?.into()])?;
    let listener = TcpListener::from_std(listener)?;
    let workers = usize::from(setup.args.workers);
    let relay_fds = RelayFds::default();
    let (mut fd_budget, mover) = FdBudget::new(relay_fds.clone(), relay)?;
    let flags = WorkerFlags {
        upstream_dir: upstream_dir.as_ref().map(|dir| dir.path().to_owned()),
        ..WorkerFlags::default()
    };
    let mut supervisor = Supervisor::start(&setup, Mode::Proxy, ready_line, flags)?;
    // Where the worker serving each slot listens; None while it (re)starts.
    let mut targets: Vec<Option<Target>> = vec![None; workers];
    // Round robin: the slot to try first for the next connection.
    let mut next = 0;
    let relays = TaskTracker::new();
    tokio::pin!(shutdown);
    let end = loop {
        tokio::select! {
            () = &mut shutdown => break None,
            step = handover.next() => break Some(step),
            event = supervisor.next_event() => {
                match event {
                    Event::Ready { slot, port, path, .. } => {
                        targets[slot] = match (port, path) {
                            (_, Some(path)) => Some(Target::Path(path.into())),
                            (Some(port), None) => Some(Target::Port(port)),
                            (None, None) => anyhow::bail!("a proxy worker reported no address"),
                        };
                    }
                    Event::Exited { slot, .. } => {
                        // A dead worker's socket file: nobody listens there.
                        if let Some(Target::Path(path)) = targets[slot].take() {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                    _ => {}
                }
                // A worker spawned, ready or gone changes the fds the master
                // holds (its channel, tokio's pidfd).
                if let Err(err) = fd_budget.measure() {
                    tracing::warn!(cause = %err, "cannot count the master's fds; relay budget unchanged");
                }
            }
            // While no worker serves, or every fd is spoken for, leave clients
            // in the kernel's accept queue.
            (permit, client) = async {
                let permit = fd_budget.permits.clone().acquire_owned().await.expect("never closed");
                (permit, accept::accept(&listener).await)
            }, if targets.iter().any(Option::is_some) => {
                // This slot's worker first, then the others in order, in case
                // it died a moment ago.
                let targets: Vec<Target> = (0..workers)
                    .filter_map(|i| targets[(next + i) % workers].clone())
                    .collect();
                next = (next + 1) % workers;
                // Counted now, in the same turn as the accept.
                let client_fd = relay_fds.hold();
                let fds = relay_fds.clone();
                let mover = mover.clone();
                relays.spawn(async move {
                    relay::relay(client, client_fd, targets, relay_timeout, fds, mover).await;
                    drop(permit);
                });
            }
        }
    };
    let deadline = Instant::now() + setup.args.grace;
    // Closing our copy is all a stop does to the listener, whether another
    // master holds it too or not (a client in its queue is reset).
    let _owns = handover.close();
    drop(listener);
    supervisor.shutdown(deadline).await;
    relays.close();
    if tokio::time::timeout_at(deadline.into(), relays.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = relays.len(),
            "relays still open after the grace period; closing them"
        );
    }
    end.map_or(Ok(()), Step::into_result)
}

/// A new folder for the workers' Unix sockets, mode 0700, in the
/// temporary folder (`TMPDIR`, else /tmp). A path too long for a Unix socket
/// is a usage error, before any worker starts.
fn upstream_dir() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("proxy-upstream-")
        .tempdir()
        .map_err(|err| {
            UsageError(format!(
                "--upstream unix: cannot make a folder for the workers' sockets: {err}"
            ))
        })?;
    let longest = cluster::worker::upstream_path(dir.path(), u32::MAX);
    if longest.as_os_str().len() > MAX_UNIX_PATH {
        return Err(UsageError(format!(
            "--upstream unix: {} is too long a path for a Unix socket (at most {MAX_UNIX_PATH} bytes); set TMPDIR to a shorter folder",
            longest.display()
        ))
        .into());
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two fds per relay, after the master's own, the pipes' and the spare;
    /// never zero.
    #[test]
    fn max_relays_halves_what_is_left() {
        // 40 workers at two fds each, and 16 more: 96 of the master's own.
        assert_eq!(max_relays(200, 96, 0), (200 - 96 - SPARE_FDS) / 2);
        assert_eq!(max_relays(200, 199, 0), 1);
        assert_eq!(
            max_relays(u64::MAX, 10, 0),
            (usize::MAX - 10 - SPARE_FDS) / 2
        );
    }

    /// `--relay splice` under `--max-fds 256` with 17 fds of its own (the
    /// reference run's): 13 pipes, whose 26 fds come off the relays, 98
    /// relays instead of copy's 111.
    #[test]
    fn pipes_come_off_the_relays() {
        let pipes = pipes::pipes_for(available_fds(256, 17));
        assert_eq!(pipes, 13);
        assert_eq!(max_relays(256, 17, 0), 111);
        assert_eq!(max_relays(256, 17, 2 * pipes), 98);
    }
}
