//! The old master's side of a takeover: one connection to its upgrade
//! socket, from the new master's `hello` to the handover, or to nothing
//! changed.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::wire::{Conn, Datagram, Silence};
use super::{ANSWER_TIMEOUT, PROTOCOL, Shared, Stage, VERSION};
use crate::{Mode, Pass};

/// What an old master offers, and to whom.
pub(super) struct Offerer {
    pub mode: Mode,
    /// `--workers`: in `reuseport`, one socket per worker slot.
    pub workers: u16,
    /// The address of the sockets offered.
    pub listen: SocketAddr,
    /// The sockets came from a service manager to this master (its `ready`
    /// line says so).
    pub socket_activated: bool,
    pub shared: Arc<Shared>,
}

/// Why a connection to the upgrade socket ended.
pub(super) enum Outcome {
    /// The new master serves: the old one stops.
    HandedOver(u32),
    /// Not a takeover (nothing, garbage, a lie), or one refused before the
    /// offer: the sockets were never offered. Logged once per episode.
    Refused(String),
    /// A takeover that failed after the offer: `handover_failed`; the old
    /// master serves on.
    Failed { pid: u32, reason: String },
}

impl Offerer {
    /// One connection, from `hello` to its outcome. `permit` is the peer's
    /// place among those not yet judged, given back once its `hello` is.
    pub async fn serve(&self, conn: Conn, permit: OwnedSemaphorePermit) -> Outcome {
        let hello = conn.recv_within(ANSWER_TIMEOUT).await;
        drop(permit);
        let (pid, mode, workers) = match hello {
            Ok(Some((
                Datagram::Hello {
                    protocol,
                    version,
                    mode,
                    workers,
                    pid,
                },
                _,
            ))) if protocol == PROTOCOL && version == VERSION => (pid, mode, workers),
            Ok(Some((datagram, _))) => {
                return Outcome::Refused(format!("not a takeover: said {datagram:?}"));
            }
            Ok(None) => return Outcome::Refused("not a takeover: closed".into()),
            Err(silence) => return Outcome::Refused(format!("not a takeover: {silence}")),
        };
        if let Some(reason) = self.refusal(&conn, pid, &mode, workers) {
            let _ = conn
                .send(
                    &Datagram::Refused {
                        reason: reason.clone(),
                    },
                    None,
                )
                .await;
            return Outcome::Refused(format!("takeover by {pid} refused: {reason}"));
        }
        let outcome = self.offer(&conn, pid).await;
        let stage = match outcome {
            Outcome::HandedOver(_) => Stage::HandedOver,
            _ => Stage::Owner,
        };
        self.shared.set_stage(stage);
        outcome
    }

    /// Why a `hello` from `pid` is refused, if it is; else this connection
    /// now holds the one takeover at a time (the stage is `Offering`).
    fn refusal(&self, conn: &Conn, pid: u32, mode: &str, workers: u16) -> Option<String> {
        let me = std::process::id();
        if pid != conn.peer.pid {
            // The kernel's word against the peer's: a peer that lies about
            // who it is gets nothing.
            return Some(format!(
                "hello says pid {pid}, the socket's peer is pid {}",
                conn.peer.pid
            ));
        }
        if mode != self.mode.name() {
            return Some(format!(
                "the old master (pid {me}) runs {}, not {mode}",
                self.mode
            ));
        }
        if self.mode == Mode::Handoff(Pass::Reuseport) && workers != self.workers {
            return Some(format!(
                "the old master (pid {me}) has --workers {} (one SO_REUSEPORT socket each), not {workers}",
                self.workers
            ));
        }
        match self.shared.begin_offer() {
            Ok(()) => None,
            Err(Stage::HandedOver) => Some(format!("master {me} has handed over already")),
            Err(_) => Some(format!("another takeover of master {me} is under way")),
        }
    }

    /// Sends the sockets, waits for the new master's `ready` (hearing from
    /// it every second meanwhile), then for its confirmation that it still
    /// lives: only that hands the sockets over.
    async fn offer(&self, conn: &Conn, pid: u32) -> Outcome {
        let failed = |reason: String| Outcome::Failed { pid, reason };
        let sockets = match self.shared.copies() {
            Ok(sockets) => sockets,
            Err(err) => return failed(format!("cannot duplicate the sockets: {err}")),
        };
        tracing::info!(
            new_master = pid,
            sockets = sockets.len(),
            "takeover: offering the listening sockets"
        );
        let offer = Datagram::Offer {
            pid: std::process::id(),
            listen: self.listen,
            sockets: sockets.len(),
            lent: self.shared.lent,
        };
        if let Err(err) = conn.send(&offer, None).await {
            return failed(format!("offer: {err}"));
        }
        for (index, socket) in sockets.iter().enumerate() {
            let datagram = Datagram::Socket { index };
            if let Err(err) = conn.send(&datagram, Some(socket.as_fd())).await {
                return failed(format!("socket {index}: {err}"));
            }
        }
        drop(sockets);
        // Its workers start: it says `waiting` every second until `ready`.
        loop {
            match conn.recv_within(ANSWER_TIMEOUT).await {
                Ok(Some((Datagram::Waiting, _))) => {}
                Ok(Some((Datagram::Ready, _))) => break,
                Ok(Some((other, _))) => {
                    return abort(conn, pid, format!("unexpected {other:?}")).await;
                }
                Ok(None) => return failed("the new master exited before its ready".into()),
                Err(Silence::TimedOut) => {
                    let reason = format!("the new master said nothing for {ANSWER_TIMEOUT:?}");
                    return abort(conn, pid, reason).await;
                }
                Err(Silence::Broken(err)) => return abort(conn, pid, format!("{err:#}")).await,
            }
        }
        // A `ready` read late (this master was stopped, or slow) may come
        // from a master that has died since: the send fails (EPIPE) if its
        // end is closed, and its `taken` below says it lives.
        if let Err(err) = conn.send(&Datagram::Released, None).await {
            return failed(format!("the new master is gone ({err})"));
        }
        match conn.recv_within(ANSWER_TIMEOUT).await {
            Ok(Some((Datagram::Taken, _))) => handed_over(pid),
            Ok(Some((other, _))) => abort(conn, pid, format!("unexpected {other:?}")).await,
            Ok(None) => failed("the new master exited before it took the sockets".into()),
            Err(Silence::TimedOut) => {
                let reason = format!("the new master did not confirm within {ANSWER_TIMEOUT:?}");
                abort(conn, pid, reason).await
            }
            Err(Silence::Broken(err)) => abort(conn, pid, format!("{err:#}")).await,
        }
    }
}

/// The handover: from here the sockets are the new master's.
fn handed_over(pid: u32) -> Outcome {
    crate::announce::handover(pid);
    Outcome::HandedOver(pid)
}

/// Calls the takeover off for `reason`: tells the new master (`aborted`),
/// then shuts the connection down, after which its `taken` can no longer
/// arrive (its send fails, and it reads `aborted`). One sent before the
/// shutdown is still queued: then the new master has taken the sockets,
/// and the handover stands.
async fn abort(conn: &Conn, pid: u32, reason: String) -> Outcome {
    let aborted = Datagram::Aborted {
        reason: reason.clone(),
    };
    // The new master's queue holds at most a datagram or two of ours, so
    // this does not wait; bounded all the same.
    let sent = tokio::time::timeout(ANSWER_TIMEOUT, conn.send(&aborted, None)).await;
    if !matches!(sent, Ok(Ok(()))) {
        tracing::debug!(
            new_master = pid,
            "could not tell the new master the takeover is off"
        );
    }
    conn.shut_down();
    while let Ok(Some(Some((datagram, _)))) = conn.try_recv() {
        if matches!(datagram, Datagram::Taken) {
            tracing::info!(
                new_master = pid,
                "its confirmation came as the takeover was called off"
            );
            return handed_over(pid);
        }
    }
    Outcome::Failed { pid, reason }
}
