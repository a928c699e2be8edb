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
//! Caveat of `reuseport`: any other process of the same user that binds this
//! port with SO_REUSEPORT joins the group and silently gets a share of the
//! connections.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

use cluster::channel::Message;
use cluster::master::Setup;
use cluster::supervisor::{Event, Supervisor};
use cluster::{Mode, listen};

use crate::Pass;

/// Runs the master of `handoff-listener` or `handoff-reuseport`.
pub async fn run(
    setup: Setup,
    pass: Pass,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let workers = usize::from(setup.args.workers);
    let (listen, sockets) = bind(setup.args.listen, pass, workers)?;
    let mut supervisor = Supervisor::start(&setup, Mode::Handoff(pass), listen)?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            event = supervisor.next_event() => {
                // A new worker (first or successor) gets its slot's socket; it
                // reports Ready once it accepts on it.
                if let Event::Spawned { slot, pid, channel } = event {
                    let socket = &sockets[slot % sockets.len()];
                    // A fresh channel is empty, so this cannot block; if the
                    // worker is already gone its exit event follows.
                    if let Err(err) = channel.try_send(Message::Listener, Some(socket.as_fd())) {
                        tracing::warn!(worker = pid, cause = %err, "cannot hand over the listener");
                    }
                }
            }
        }
    }
    supervisor.shutdown().await;
    Ok(())
}

/// The sockets to hand out: one shared listener, or one SO_REUSEPORT listener
/// per slot, all on the same port (the first bind picks it when the address
/// asks for port 0).
fn bind(
    addr: SocketAddr,
    pass: Pass,
    workers: usize,
) -> anyhow::Result<(SocketAddr, Vec<OwnedFd>)> {
    let reuseport = pass == Pass::Reuseport;
    let first = listen::bind(addr, reuseport)?;
    let listen = first.local_addr()?;
    let mut sockets = vec![OwnedFd::from(first)];
    if reuseport {
        for _ in 1..workers {
            sockets.push(OwnedFd::from(listen::bind(listen, true)?));
        }
    }
    Ok((listen, sockets))
}
