//! `--pass socket`: the master accepts each connection and hands it to a
//! worker, round robin, over the worker's channel (Node.js cluster's default
//! `SCHED_RR`).
//!
//! How one connection changes hands:
//!
//! 1. the master `accept4`s it (`accept::accept_to_pass`);
//! 2. `sendmsg` carries a `Connection { seq }` frame and the socket
//!    (SCM_RIGHTS) to the next worker that has room;
//! 3. the worker's `recvmsg` installs a new fd for the same socket, and it
//!    answers `Ack { seq }` (one for all the handoffs it found queued);
//! 4. on the acknowledgement the master closes its copies. Until then it holds
//!    it, so that a worker that dies first does not take the client with it:
//!    the connection goes to another worker instead.
//!
//! Each worker may have at most [`MAX_UNACKED_HANDOFFS`] connections not yet
//! acknowledged; a worker at that window, or whose channel is full, is skipped.
//! When no worker has room the master stops accepting, and new clients wait
//! in the kernel's accept queue, not in the master's memory.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use cluster::channel::{Channel, ChannelError, Message};
use cluster::master::Setup;
use cluster::supervisor::{Event, Supervisor};
use cluster::{GRACE_PERIOD, Mode, Pass, accept, listen};
use tokio::io::unix::AsyncFd;

/// How many handed connections a worker may have not yet acknowledged.
/// Node.js waits for each acknowledgement before the next handoff to that
/// worker (a window of 1), so every connection costs a round trip between
/// the processes before the next can go. A few more let the handoffs to one
/// worker overlap while keeping a busy worker from being buried: its
/// acknowledgements come late, its window fills, and the others get the
/// connections.
pub const MAX_UNACKED_HANDOFFS: usize = 8;

/// One worker slot, as the dispatcher sees it.
#[derive(Default)]
struct Slot {
    /// The worker's channel, from its start to its exit.
    channel: Option<Arc<Channel>>,
    /// The worker has said it serves: it may be given connections.
    ready: bool,
    /// The worker refused a connection because it is out of fds: give it
    /// none until the dispatcher's `resume_at`, or all the workers at their
    /// limit would bounce connections between them as fast as the channel
    /// goes.
    paused: bool,
    /// Connections sent and not yet acknowledged, by `seq`: the master's
    /// copies, closed on acknowledgement, handed elsewhere if the worker dies.
    unacked: BTreeMap<u64, OwnedFd>,
}

impl Slot {
    fn has_room(&self) -> bool {
        self.ready && !self.paused && self.unacked.len() < MAX_UNACKED_HANDOFFS
    }
}

/// Round-robin handoff of connections with per-worker acknowledgement windows.
#[derive(Default)]
struct Dispatcher {
    slots: Vec<Slot>,
    /// The slot to try first for the next connection.
    next: usize,
    /// The `seq` of the last handoff.
    seq: u64,
    /// Connections that must go to a worker before any new one is accepted:
    /// those of a worker that died or refused them, in arrival order.
    waiting: VecDeque<OwnedFd>,
    /// When the paused workers may be tried again.
    resume_at: Option<Instant>,
}

impl Dispatcher {
    fn new(workers: usize) -> Dispatcher {
        Dispatcher {
            slots: (0..workers).map(|_| Slot::default()).collect(),
            ..Dispatcher::default()
        }
    }

    /// True if a new connection can be accepted and handed over at once.
    fn can_accept(&self) -> bool {
        self.waiting.is_empty() && self.slots.iter().any(Slot::has_room)
    }

    /// True when the master holds no client connection any more.
    fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.slots.iter().all(|s| s.unacked.is_empty())
    }

    /// Hands `conn` to the next worker with room, in round-robin order;
    /// returns it if none can take it now.
    fn hand_off(&mut self, conn: OwnedFd) -> Result<(), OwnedFd> {
        let workers = self.slots.len();
        for i in 0..workers {
            let slot = (self.next + i) % workers;
            let state = &mut self.slots[slot];
            let Some(channel) = state.channel.as_ref().filter(|_| state.has_room()) else {
                continue;
            };
            let seq = self.seq + 1;
            match channel.try_send(Message::Connection { seq }, Some(conn.as_fd())) {
                Ok(()) => {
                    state.unacked.insert(seq, conn);
                    self.seq = seq;
                    self.next = (slot + 1) % workers;
                    return Ok(());
                }
                // Channel full (the worker is busy) or the worker is gone (its
                // exit event follows): skip it, never wait on it.
                Err(ChannelError::Full) => {}
                Err(err) => tracing::debug!(slot, cause = %err, "handoff failed; next worker"),
            }
        }
        Err(conn)
    }

    /// The back-off after a refusal is over: every worker may be tried again.
    fn resume(&mut self) {
        self.resume_at = None;
        for slot in &mut self.slots {
            slot.paused = false;
        }
        self.flush();
    }

    /// Hands over waiting connections while workers have room.
    fn flush(&mut self) {
        while let Some(conn) = self.waiting.pop_front() {
            if let Err(conn) = self.hand_off(conn) {
                self.waiting.push_front(conn);
                break;
            }
        }
    }

    /// Has the worker of `slot` killed for saying `cause`, and gives it no
    /// more connections; those it holds go elsewhere when it has exited.
    fn misbehaving(&mut self, slot: usize, supervisor: &mut Supervisor, cause: &str) {
        self.slots[slot].ready = false;
        supervisor.kill_misbehaving(slot, cause);
    }

    fn on_event(&mut self, event: Event, supervisor: &mut Supervisor) {
        match event {
            Event::Spawned { slot, channel, .. } => self.slots[slot].channel = Some(channel),
            Event::Ready { slot, .. } => self.slots[slot].ready = true,
            // A worker answers only for the handoffs it has not answered yet:
            // anything else is a worker that cannot be trusted (and a flood
            // of it must cost the master nothing), so it is killed at once.
            Event::Message {
                slot,
                message: Message::Ack { seq },
            } => {
                let unacked = &mut self.slots[slot].unacked;
                if !unacked.contains_key(&seq) {
                    let cause = format!("acknowledgement of unknown handoff {seq}");
                    self.misbehaving(slot, supervisor, &cause);
                    return;
                }
                // Cumulative: every handoff up to `seq` has arrived. Dropping
                // our copies closes them; the worker has its own. (No `seq + 1`:
                // a worker's `seq` may be u64::MAX, and must not panic us.)
                let mut later = unacked.split_off(&seq);
                later.remove(&seq);
                *unacked = later;
            }
            Event::Message {
                slot,
                message: Message::Reject { seq },
            } => {
                let state = &mut self.slots[slot];
                let Some(conn) = state.unacked.remove(&seq) else {
                    let cause = format!("rejection of unknown handoff {seq}");
                    self.misbehaving(slot, supervisor, &cause);
                    return;
                };
                self.waiting.push_back(conn);
                state.paused = true;
                self.resume_at = Some(Instant::now() + accept::ACCEPT_BACKOFF);
            }
            // The supervisor lets through only acknowledgements and rejections.
            Event::Message { slot, message } => {
                tracing::warn!(slot, ?message, "unexpected message from a worker");
            }
            Event::Exited { slot, pid } => {
                let state = &mut self.slots[slot];
                state.channel = None;
                state.ready = false;
                let orphans = std::mem::take(&mut state.unacked);
                if !orphans.is_empty() {
                    tracing::info!(
                        worker = pid,
                        connections = orphans.len(),
                        "re-handing unacknowledged connections"
                    );
                }
                // Oldest first, and ahead of any connection not yet accepted.
                for conn in orphans.into_values().rev() {
                    self.waiting.push_front(conn);
                }
            }
        }
        self.flush();
    }
}

/// Sleeps until `at`; forever if there is no `at`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Runs the master of `handoff-socket`.
pub async fn run(setup: Setup, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let listener = listen::bind(setup.args.listen, false)?;
    let listen = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    // Registered for readiness only: accepted sockets go to workers untouched.
    // SAFETY: the AsyncFd owns the listener, which keeps its fd open and
    // unchanged until the AsyncFd is dropped.
    let listener =
        unsafe { AsyncFd::register_with_interest(listener, tokio::io::Interest::READABLE) }?;
    let workers = usize::from(setup.args.workers);
    let mut supervisor = Supervisor::start(&setup, Mode::Handoff(Pass::Socket), listen)?;
    let mut dispatcher = Dispatcher::new(workers);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            event = supervisor.next_event() => dispatcher.on_event(event, &mut supervisor),
            () = sleep_until(dispatcher.resume_at) => dispatcher.resume(),
            stream = accept::accept_to_pass(&listener), if dispatcher.can_accept() => {
                if let Err(conn) = dispatcher.hand_off(OwnedFd::from(stream)) {
                    dispatcher.waiting.push_back(conn);
                }
            }
        }
    }
    // Stop accepting; let the handoffs in flight be acknowledged (bounded).
    drop(listener);
    let drained = async {
        while !dispatcher.is_idle() {
            tokio::select! {
                event = supervisor.next_event() => dispatcher.on_event(event, &mut supervisor),
                () = sleep_until(dispatcher.resume_at) => dispatcher.resume(),
            }
        }
    };
    if tokio::time::timeout(GRACE_PERIOD, drained).await.is_err() {
        tracing::warn!("handoffs not acknowledged within the grace period; closing them");
    }
    supervisor.shutdown().await;
    Ok(())
}
