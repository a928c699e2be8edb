//! `--pass listener` and `--pass reuseport`: the master binds, hands each
//! worker a listening socket once, and is out of the way: the workers accept
//! by themselves.
//!
//! With `listener`, every worker gets the same socket (one accept queue) and
//! they compete for its connections; the kernel wakes one waiter per
//! connection, and a worker that is idle more often (or just woke first) wins
//! more of them. With `reuseport`, each worker slot has its own socket and
//! accept queue on the same port; the kernel picks the queue by a hash of the
//! connection's addresses, which spreads evenly but blindly: a busy worker's
//! queue still gets its share.
//!
//! The master keeps its copy of every socket, for two reasons: a respawned
//! worker gets the same socket again, and a `reuseport` queue survives the
//! death of its worker, keeping its waiting connections for the successor.
//! It never accepts on them.
//!
//! At its stop the master stops every copy of every socket listening at once
//! (`stop_listening`): new clients are refused, and those already in an
//! accept queue are served.
//!
//! With `reuseport --steer health`, a BPF program attached to the group
//! keeps new connections away from the sockets of workers that do not
//! answer their pings ([`crate::steering`]).
//!
//! Caveat of `reuseport`: any other process of the same user that binds this
//! port with SO_REUSEPORT joins the group and silently gets a share of the
//! connections.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use cluster::channel::{Channel, Message};
use cluster::cli::{Setup, UsageError};
use cluster::steer::Steer;
use cluster::supervisor::{Event, Supervisor, WorkerFlags};
use cluster::upgrade::{Step, Upgrade};
use cluster::{Accept, Mode, accept, listen};

use crate::Pass;
use crate::steering::Steering;

/// Runs the master of `handoff-listener` or `handoff-reuseport`.
///
/// A master that does not own the sockets alone at its stop (a successor
/// has taken them over, or is taking them; or this master's own takeover
/// has not committed) leaves them listening (no `stop_listening`: they and
/// their queues are the other master's too); it closes its copies and its
/// workers stop accepting, close theirs and finish what they hold.
///
/// `accept`, for `listener`, is how its workers accept (`--accept`);
/// `steer`, for `reuseport`, how the kernel picks a socket (`--steer`), and
/// `eject_after` how late a worker's pong takes it out of the group
/// (`--eject-after`, with `--steer health`).
pub async fn run(
    setup: Setup,
    mut upgrade: Upgrade,
    pass: Pass,
    accept: Option<Accept>,
    steer: Steer,
    eject_after: Duration,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let workers = usize::from(setup.args.workers);
    let (listen, sockets, took_over) = match upgrade.taken_sockets() {
        Some((listen, sockets)) => (listen, sockets, true),
        None => {
            let (listen, sockets) = bind(setup.args.listen, pass, workers, setup.args.backlog)?;
            (listen, sockets, false)
        }
    };
    // Before any worker starts: where BPF is not permitted, the master
    // exits 2 here, with one line.
    let took_over_group = took_over && pass == Pass::Reuseport;
    let mut steering = match Steering::start(steer, &sockets, took_over_group) {
        Ok(steering) => steering,
        Err(err) if err.is_usage() => return Err(UsageError(err.to_string()).into()),
        Err(err) => return Err(err).context("--steer health"),
    };
    let (mut handover, ready_line) = upgrade.start(listen, &sockets)?;
    let flags = WorkerFlags {
        accept,
        eject_after: (steer == Steer::Health).then_some(eject_after),
        ..WorkerFlags::default()
    };
    let mut supervisor = Supervisor::start(&setup, Mode::Handoff(pass), ready_line, flags)?;
    // Each slot's worker channel, for the connections queued at the stop.
    let mut channels: Vec<Option<Arc<Channel>>> = vec![None; workers];
    tokio::pin!(shutdown);
    let end = loop {
        tokio::select! {
            () = &mut shutdown => break None,
            step = handover.next() => break Some(step),
            event = supervisor.next_event() => match steering.note(event, &sockets) {
                // A new worker (first or successor) gets its slot's socket; it
                // reports Ready once it accepts on it.
                Event::Spawned { slot, pid, channel } => {
                    let socket = &sockets[slot % sockets.len()];
                    // A fresh channel is empty, so this cannot block; if the
                    // worker is already gone its exit event follows.
                    if let Err(err) = channel.try_send(Message::Listener, Some(socket.as_fd())) {
                        tracing::warn!(worker = pid, cause = %err, "cannot hand over the listener");
                    }
                    channels[slot] = Some(channel);
                }
                Event::Exited { slot, .. } => channels[slot] = None,
                Event::Ready { .. }
                | Event::Message { .. }
                | Event::Late { .. }
                | Event::Answered { .. } => {}
            },
        }
    };
    let deadline = Instant::now() + setup.args.grace;
    if handover.close() {
        stop_listening(&sockets, &channels);
    } else {
        steering.stop(&sockets);
    }
    drop(sockets);
    supervisor.shutdown(deadline).await;
    end.map_or(Ok(()), Step::into_result)
}

/// The first step of the stop: every listening socket stops taking
/// connections at once, in every process, so that a new client is refused
/// (ECONNREFUSED) instead of completing a handshake that nobody will accept
/// and being reset when the master exits.
///
/// Closing our copies would not do: a socket listens as long as one copy is
/// open, and the workers keep theirs until their own stop. `shutdown(SHUT_RD)`
/// acts on the socket itself ([`accept::stop_listening`]); but it also resets
/// the connections in the accept queue, clients the kernel has already
/// accepted (behind a busy worker, say). So first the master takes them out
/// of the queue (`accept4` until EAGAIN) and hands each to a worker over its
/// channel (`Connection`, before the `Stop` that follows), which serves it
/// before it stops. Only a client arriving between that last `accept4` and
/// the shutdown, microseconds, is reset.
///
/// With `reuseport`, the sysctl `net.ipv4.tcp_migrate_req = 1` would move a
/// closed socket's queue to another socket of the group; it is off by
/// default, and here every socket of the group stops at once anyway.
fn stop_listening(sockets: &[OwnedFd], channels: &[Option<Arc<Channel>>]) {
    let mut seq = 0;
    let (mut handed, mut lost) = (0, 0);
    for socket in sockets {
        let queued = accept::stop_listening(socket.as_fd());
        for conn in queued {
            seq += 1;
            if hand_over(seq, &conn, channels) {
                handed += 1;
            } else {
                lost += 1;
            }
        }
    }
    if lost > 0 {
        tracing::warn!(
            handed,
            lost,
            "stopped listening; no worker could take some queued connections"
        );
    } else {
        tracing::debug!(
            handed,
            "stopped listening; queued connections handed to workers"
        );
    }
}

/// Sends `conn` to a live worker, round robin from `seq`; false if none can
/// take it (the master's copy is then closed, and the client sees a reset).
fn hand_over(seq: u64, conn: &OwnedFd, channels: &[Option<Arc<Channel>>]) -> bool {
    let slots = channels.len();
    (0..slots).any(|i| {
        let slot = (seq as usize + i) % slots;
        let Some(channel) = &channels[slot] else {
            return false;
        };
        match channel.try_send(Message::Connection { seq }, Some(conn.as_fd())) {
            Ok(()) => true,
            Err(err) => {
                tracing::debug!(slot, cause = %err, "cannot hand a queued connection; next worker");
                false
            }
        }
    })
}

/// The sockets to hand out: one shared listener, or one SO_REUSEPORT listener
/// per slot, all on the same port (the first bind picks it when the address
/// asks for port 0), each with an accept queue of `backlog` (`--backlog`).
fn bind(
    addr: SocketAddr,
    pass: Pass,
    workers: usize,
    backlog: u16,
) -> anyhow::Result<(SocketAddr, Vec<OwnedFd>)> {
    let reuseport = pass == Pass::Reuseport;
    let first = listen::bind(addr, reuseport, backlog)?;
    let listen = first.local_addr()?;
    let mut sockets = vec![OwnedFd::from(first)];
    if reuseport {
        for _ in 1..workers {
            sockets.push(OwnedFd::from(listen::bind(listen, true, backlog)?));
        }
    }
    Ok((listen, sockets))
}
