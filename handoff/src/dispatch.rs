//! `--pass socket`: the master accepts each connection and hands it to a
//! worker, round robin, over the worker's channel (Node.js cluster's default
//! `SCHED_RR`).
//!
//! How connections change hands:
//!
//! 1. the master `accept4`s what the accept queue holds when it wakes, up to
//!    what the workers have room for (`accept::accept_to_pass`; at the fd
//!    limit it pauses, with a deadline the dispatcher keeps across loop
//!    passes);
//! 2. it shares them out round robin among the workers with room, and one
//!    `sendmsg` carries each worker's share: a `Connection { seq }` frame and
//!    its socket, or a `Connections { seq, count }` frame and `count`
//!    sockets (SCM_RIGHTS), numbered `seq..seq + count`;
//! 3. the worker's `recvmsg` installs a new fd for each socket, and it
//!    answers `Ack { seq }` of the last (one for all the handoffs it found
//!    queued);
//! 4. on the acknowledgement the master closes its copies. Until then it holds
//!    them, so that a worker that dies first does not take the clients with
//!    it: the connections go to another worker instead.
//!
//! Batching shares the `sendmsg`, the worker's wake-up and its
//! acknowledgement among the clients one wake-up finds queued; what stays per
//! connection is the `accept4` and the `close` (the floor: the
//! `handoff_floor` bench), and, while the master idles between arrivals, a
//! wake-up of its own per connection (README, "Figures").
//!
//! Each worker may have at most [`MAX_UNACKED_HANDOFFS`] connections not yet
//! acknowledged; a worker at that window, or whose channel is full, is skipped.
//! When no worker has room the master stops accepting, and new clients wait
//! in the kernel's accept queue, not in the master's memory.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::channel::{Channel, ChannelError, MAX_CONNECTIONS_PER_FRAME, Message};
use cluster::cli::Setup;
use cluster::supervisor::{Event, Supervisor, WorkerFlags};
use cluster::upgrade::{Step, Upgrade};
use cluster::{Mode, Pass, accept};
use tokio::io::unix::AsyncFd;

/// How many handed connections a worker may have not yet acknowledged.
/// Node.js waits for each acknowledgement before the next handoff to that
/// worker (a window of 1), so every connection costs a round trip between
/// the processes before the next can go. A few more let the handoffs to one
/// worker overlap while keeping a busy worker from being buried: its
/// acknowledgements come late, its window fills, and the others get the
/// connections.
pub const MAX_UNACKED_HANDOFFS: usize = 8;

/// At a stop, how long into the grace period (`grace`) a worker may leave
/// handoffs unacknowledged before it is taken for stalled (stopped, stuck)
/// and killed, so that the connections it never read go to another worker,
/// which has the rest of the grace period to serve them. A worker
/// acknowledges from its event loop within microseconds, and turns it
/// between requests, even while computing `?work_us` (at most a second
/// each): half the default grace period is far beyond any healthy delay,
/// and `--worker-timeout` (10 s by default) beyond the grace period itself.
/// Issue 19: a stalled worker's handoffs waited out the grace period, and
/// their clients were reset.
fn stalled_at_stop(grace: Duration) -> Duration {
    grace / 2
}

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
    /// goes. Also paused after a handoff to it failed for a reason that no
    /// event will report (ETOOMANYREFS, ENOBUFS).
    paused: bool,
    /// Connections sent and not yet acknowledged, by `seq`: the master's
    /// copies, closed on acknowledgement, handed elsewhere if the worker dies.
    unacked: BTreeMap<u64, OwnedFd>,
}

impl Slot {
    /// How many more connections this worker may be handed now.
    fn room(&self) -> usize {
        if self.ready && !self.paused && self.channel.is_some() {
            MAX_UNACKED_HANDOFFS.saturating_sub(self.unacked.len())
        } else {
            0
        }
    }

    fn has_room(&self) -> bool {
        self.room() > 0
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
    /// The accept back-off at the fd limit. Kept here, not in the accept
    /// future, because the run loop drops and rebuilds that future on every
    /// event (each acknowledgement): a pause kept there would end, and warn
    /// again, on each of them.
    accept_backoff: accept::Backoff,
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

    /// How many connections the workers can be handed now: how many to
    /// accept at most.
    fn room(&self) -> usize {
        self.slots.iter().map(Slot::room).sum()
    }

    /// Hands the connections of `waiting` to the workers with room, oldest
    /// first: round robin from `next`, each worker its even share of what is
    /// left (within its room) in one `sendmsg`. A worker that cannot take its
    /// share now is skipped, and the rest share it; what nobody can take
    /// stays waiting.
    fn flush(&mut self) {
        let workers = self.slots.len();
        // A pass over the workers; another if some worker took its share and
        // connections still wait (a skipped worker left them).
        loop {
            let mut progress = false;
            let mut takers = self.slots.iter().filter(|s| s.has_room()).count();
            let first = self.next;
            for i in 0..workers {
                if self.waiting.is_empty() {
                    return;
                }
                let slot = (first + i) % workers;
                let room = self.slots[slot].room();
                if room == 0 {
                    continue;
                }
                let share = self
                    .waiting
                    .len()
                    .div_ceil(takers)
                    .min(room)
                    .min(MAX_CONNECTIONS_PER_FRAME);
                takers -= 1;
                if self.send_batch(slot, share) {
                    // The next pass, or wake-up, starts after the first
                    // worker served in this one: the larger shares of an
                    // uneven split go round too.
                    if !progress {
                        self.next = (slot + 1) % workers;
                    }
                    progress = true;
                }
            }
            if !progress || self.waiting.is_empty() {
                return;
            }
        }
    }

    /// Sends the first `count` waiting connections to the worker of `slot`
    /// in one `sendmsg`; they are then its, unacknowledged. False if it
    /// could not take them (they stay waiting).
    fn send_batch(&mut self, slot: usize, count: usize) -> bool {
        let state = &mut self.slots[slot];
        let Some(channel) = state.channel.as_ref() else {
            return false;
        };
        let seq = self.seq + 1;
        let message = match count {
            1 => Message::Connection { seq },
            _ => Message::Connections {
                seq,
                count: u8::try_from(count).expect("at most MAX_CONNECTIONS_PER_FRAME"),
            },
        };
        let fds: Vec<BorrowedFd<'_>> = self.waiting.range(..count).map(|c| c.as_fd()).collect();
        match channel.try_send_fds(message, &fds) {
            Ok(()) => {
                for (seq, conn) in (seq..).zip(self.waiting.drain(..count)) {
                    state.unacked.insert(seq, conn);
                }
                self.seq += count as u64;
                true
            }
            // Channel full (the worker is busy) or the worker is gone (its
            // exit event follows): skip it, never wait on it.
            Err(ChannelError::Full) => false,
            Err(ChannelError::Closed) => {
                tracing::debug!(slot, "handoff failed: worker gone; next worker");
                false
            }
            // Anything else (ETOOMANYREFS: too many fds in flight to workers
            // that have not received them yet; ENOBUFS, ENOMEM: kernel
            // memory) is followed by no event that would bring the
            // connections back here: pause this worker as after a `Reject`,
            // so that `resume` tries it again after a back-off, and try the
            // next one now.
            Err(err) => {
                tracing::warn!(slot, cause = %err, "handoff failed; pausing this worker");
                state.paused = true;
                self.resume_at = Some(Instant::now() + accept::ACCEPT_BACKOFF);
                false
            }
        }
    }

    /// The back-off after a refusal is over: every worker may be tried again.
    fn resume(&mut self) {
        self.resume_at = None;
        for slot in &mut self.slots {
            slot.paused = false;
        }
        self.flush();
    }

    /// The client connections the master holds: waiting, or handed over and
    /// not yet acknowledged.
    fn held(&self) -> usize {
        self.waiting.len() + self.slots.iter().map(|s| s.unacked.len()).sum::<usize>()
    }

    /// Has the worker of `slot` killed for saying `cause`, and gives it no
    /// more connections; those it holds go elsewhere when it has exited.
    fn misbehaving(&mut self, slot: usize, supervisor: &mut Supervisor, cause: &str) {
        self.slots[slot].ready = false;
        supervisor.kill_misbehaving(slot, cause);
    }

    fn on_event(&mut self, event: Event, supervisor: &mut Supervisor) {
        // Counted only while accepting is paused, to see below whether this
        // event closed some of our fds.
        let held_before = self.accept_backoff.paused_until().map(|_| self.held());
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
            Event::Exited { slot, pid } => self.exited(slot, pid),
            // Only with `--steer health`, which `--pass socket` refuses.
            Event::Late { .. } | Event::Answered { .. } => {}
        }
        // Acknowledged copies were closed: the next accept has the fds it
        // lacked, so end the pause now rather than at its deadline. Without
        // this, the master at its limit would accept in bursts of the few
        // fds it has, once per ACCEPT_BACKOFF, whereas an acknowledgement
        // that frees an fd is one retry at most: no spinning either way.
        if held_before.is_some_and(|before| self.held() < before) {
            self.accept_backoff.fds_freed();
        }
        self.flush();
    }
}

impl Dispatcher {
    /// At a stop: kills every worker that still holds unacknowledged
    /// handoffs (see [`stalled_at_stop`]); on its exit they go to the
    /// others.
    fn kill_stalled(&mut self, supervisor: &mut Supervisor, after: Duration) {
        for (slot, state) in self.slots.iter_mut().enumerate() {
            if state.unacked.is_empty() || state.channel.is_none() {
                continue;
            }
            state.ready = false;
            let cause = format!(
                "{} handoffs unacknowledged {after:?} into the stop",
                state.unacked.len(),
            );
            supervisor.kill_stalled(slot, &cause);
        }
    }

    /// The worker of `slot` has exited: the connections it never
    /// acknowledged (whole batches or parts of them) go to other workers.
    fn exited(&mut self, slot: usize, pid: u32) {
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

/// Sleeps until `at`; forever if there is no `at`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Runs the master of `handoff-socket`.
///
/// A master that does not own the listener alone at its stop (a successor
/// has taken it over, or is taking it; or this master's own takeover has not
/// committed) stops accepting and closes its copy without shutting the
/// socket down (the other master accepts on it, and its queue is the other
/// master's), then lets the handoffs in flight be acknowledged and its
/// workers finish; the whole stop within one grace period.
pub async fn run(
    setup: Setup,
    mut upgrade: Upgrade,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let listener = upgrade.single_listener(setup.args.listen)?;
    let listen = listener.local_addr()?;
    let (mut handover, ready_line) = upgrade.start(listen, &[listener.try_clone()?.into()])?;
    // Registered for readiness only: accepted sockets go to workers untouched.
    // SAFETY: the AsyncFd owns the listener, which keeps its fd open and
    // unchanged until the AsyncFd is dropped.
    let listener =
        unsafe { AsyncFd::register_with_interest(listener, tokio::io::Interest::READABLE) }?;
    let workers = usize::from(setup.args.workers);
    let flags = WorkerFlags::default();
    let mut supervisor = Supervisor::start(&setup, Mode::Handoff(Pass::Socket), ready_line, flags)?;
    let mut dispatcher = Dispatcher::new(workers);
    tokio::pin!(shutdown);
    let end = loop {
        // Accept no more than the workers can be handed at once.
        let room = dispatcher.room();
        tokio::select! {
            () = &mut shutdown => break None,
            step = handover.next() => break Some(step),
            event = supervisor.next_event() => dispatcher.on_event(event, &mut supervisor),
            () = sleep_until(dispatcher.resume_at) => dispatcher.resume(),
            accepted = accept::accept_to_pass(&listener, &mut dispatcher.accept_backoff, room),
                if dispatcher.can_accept() => {
                dispatcher.waiting.extend(accepted);
                dispatcher.flush();
            }
        }
    };
    // Stop accepting. The clients already in the kernel's accept queue (there
    // when every worker's window was full) completed their handshake: take
    // them, so that closing the listener does not reset them, then stop the
    // socket from taking more (`shutdown(SHUT_RD)`: refused from now on) and
    // hand them out with the rest (issue 10, as the listener modes do).
    // Only if the socket is ours alone: else its queue is the other
    // master's, and a shutdown would stop it listening there too.
    let stopped_at = Instant::now();
    let grace = setup.args.grace;
    let deadline = stopped_at + grace;
    let queued = if handover.close() {
        accept::stop_listening(listener.get_ref().as_fd())
    } else {
        Vec::new()
    };
    drop(listener);
    if !queued.is_empty() {
        tracing::debug!(
            queued = queued.len(),
            "stopped listening; handing out the queued clients"
        );
    }
    dispatcher.waiting.extend(queued);
    dispatcher.flush();
    // Let the handoffs in flight be acknowledged; a worker that has not
    // acknowledged its own by `stalled_at_stop` is killed, and they go to
    // the others.
    let stalled_at = stopped_at + stalled_at_stop(grace);
    let drained = async {
        let mut stalled_killed = false;
        while !dispatcher.is_idle() {
            tokio::select! {
                event = supervisor.next_event() => dispatcher.on_event(event, &mut supervisor),
                () = sleep_until(dispatcher.resume_at) => dispatcher.resume(),
                () = sleep_until(Some(stalled_at)), if !stalled_killed => {
                    stalled_killed = true;
                    dispatcher.kill_stalled(&mut supervisor, stalled_at_stop(grace));
                }
            }
        }
    };
    if tokio::time::timeout_at(deadline.into(), drained)
        .await
        .is_err()
    {
        tracing::warn!("handoffs not acknowledged within the grace period; closing them");
    }
    supervisor.shutdown(deadline).await;
    end.map_or(Ok(()), Step::into_result)
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;

    use cluster::channel;

    use super::*;

    /// A channel whose `sendmsg` fails with an error other than EAGAIN or
    /// EPIPE: an unconnected socket (ENOTCONN), standing in for ETOOMANYREFS
    /// and ENOBUFS, which a test cannot cause at will (root is exempt from
    /// the in-flight fd limit).
    fn failing_channel() -> Arc<Channel> {
        let socket = UnixDatagram::unbound().expect("a Unix socket");
        Arc::new(Channel::new(OwnedFd::from(socket)).expect("register the socket"))
    }

    /// A working channel, and the worker's end, kept open so sends succeed.
    fn working_channel() -> (Arc<Channel>, OwnedFd) {
        let (master, worker) = channel::pair().expect("a socketpair");
        (Arc::new(Channel::new(master).expect("register")), worker)
    }

    /// A connection to hand over: any fd travels with SCM_RIGHTS.
    fn connection() -> OwnedFd {
        OwnedFd::from(UnixDatagram::unbound().expect("a Unix socket"))
    }

    fn ready_slot(channel: Arc<Channel>) -> Slot {
        Slot {
            channel: Some(channel),
            ready: true,
            ..Slot::default()
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    /// Regression (issue 10): a send error other than EAGAIN or EPIPE left
    /// the connection waiting, accept disabled, and nothing scheduled to try
    /// again. Now the failing worker is paused, a retry is scheduled, and the
    /// connection goes to the other worker at once.
    #[test]
    fn send_error_hands_to_the_next_worker_and_schedules_a_retry() {
        let runtime = runtime();
        let _context = runtime.enter();
        let (good, _worker_end) = working_channel();
        let mut dispatcher = Dispatcher::new(2);
        dispatcher.slots[0] = ready_slot(failing_channel());
        dispatcher.slots[1] = ready_slot(good);
        dispatcher.waiting.push_back(connection());
        dispatcher.flush();
        assert!(dispatcher.waiting.is_empty(), "the connection still waits");
        assert_eq!(dispatcher.slots[1].unacked.len(), 1);
        assert!(
            dispatcher.slots[0].paused,
            "the failing worker is not paused"
        );
        assert!(dispatcher.resume_at.is_some(), "no retry scheduled");
        assert!(dispatcher.can_accept(), "accept stays possible");
    }

    /// Regression (issue 10): with every worker failing so, the connection
    /// waits, but a retry is scheduled; when it comes and the send works
    /// again, the connection is handed over and accepting resumes.
    #[test]
    fn send_error_on_every_worker_retries_after_a_backoff() {
        let runtime = runtime();
        let _context = runtime.enter();
        let mut dispatcher = Dispatcher::new(1);
        dispatcher.slots[0] = ready_slot(failing_channel());
        dispatcher.waiting.push_back(connection());
        dispatcher.flush();
        assert_eq!(dispatcher.waiting.len(), 1);
        assert!(!dispatcher.can_accept());
        let retry_at = dispatcher.resume_at.expect("a retry is scheduled");
        assert!(retry_at <= Instant::now() + accept::ACCEPT_BACKOFF);
        // The cause passes (in-flight fds received, memory freed).
        let (good, _worker_end) = working_channel();
        dispatcher.slots[0].channel = Some(good);
        dispatcher.resume();
        assert!(dispatcher.waiting.is_empty(), "the connection still waits");
        assert_eq!(dispatcher.slots[0].unacked.len(), 1);
        assert!(dispatcher.can_accept(), "accept did not resume");
    }

    /// The frames a worker end has received, in order, with their fd counts.
    fn frames(worker_end: OwnedFd) -> Vec<(Message, usize)> {
        let channel = Channel::new(worker_end).expect("register the worker's end");
        let mut frames = Vec::new();
        while let Some((message, fds)) = channel.try_recv().expect("well-formed frames") {
            frames.push((message, fds.len()));
        }
        frames
    }

    /// Several connections accepted at once go out in one frame per worker,
    /// round robin, each worker its even share, numbered in order; one
    /// connection alone is a plain `Connection`.
    #[test]
    fn one_frame_per_worker_per_wake_up() {
        let runtime = runtime();
        let _context = runtime.enter();
        let (a, a_end) = working_channel();
        let (b, b_end) = working_channel();
        let mut dispatcher = Dispatcher::new(2);
        dispatcher.slots[0] = ready_slot(a);
        dispatcher.slots[1] = ready_slot(b);
        dispatcher.waiting.extend((0..5).map(|_| connection()));
        dispatcher.flush();
        assert!(dispatcher.waiting.is_empty());
        dispatcher.waiting.push_back(connection());
        dispatcher.flush();
        // The next wake-up starts with the other worker.
        assert_eq!(
            frames(a_end),
            [(Message::Connections { seq: 1, count: 3 }, 3)]
        );
        assert_eq!(
            frames(b_end),
            [
                (Message::Connections { seq: 4, count: 2 }, 2),
                (Message::Connection { seq: 6 }, 1)
            ]
        );
        let held: Vec<Vec<u64>> = dispatcher
            .slots
            .iter()
            .map(|s| s.unacked.keys().copied().collect())
            .collect();
        assert_eq!(held, [vec![1, 2, 3], vec![4, 5, 6]]);
    }

    /// A batch never overfills a worker's window: what no worker has room
    /// for waits, and accepting stops until an acknowledgement.
    #[test]
    fn batches_keep_the_window() {
        let runtime = runtime();
        let _context = runtime.enter();
        let (a, _a_end) = working_channel();
        let (b, _b_end) = working_channel();
        let mut dispatcher = Dispatcher::new(2);
        dispatcher.slots[0] = ready_slot(a);
        dispatcher.slots[1] = ready_slot(b);
        assert_eq!(dispatcher.room(), 2 * MAX_UNACKED_HANDOFFS);
        dispatcher
            .waiting
            .extend((0..2 * MAX_UNACKED_HANDOFFS + 3).map(|_| connection()));
        dispatcher.flush();
        for slot in &dispatcher.slots {
            assert_eq!(slot.unacked.len(), MAX_UNACKED_HANDOFFS);
        }
        assert_eq!(dispatcher.waiting.len(), 3);
        assert_eq!(dispatcher.room(), 0);
        assert!(!dispatcher.can_accept());
    }

    /// A worker whose channel is full is skipped: the others share its part
    /// of the batch at once.
    #[test]
    fn full_worker_leaves_its_share_to_the_others() {
        let runtime = runtime();
        let _context = runtime.enter();
        let (full, _full_end) = working_channel();
        while full.try_send(Message::Stop { grace_ms: 0 }, None).is_ok() {}
        let (good, good_end) = working_channel();
        let mut dispatcher = Dispatcher::new(2);
        dispatcher.slots[0] = ready_slot(full);
        dispatcher.slots[1] = ready_slot(good);
        dispatcher.waiting.extend((0..4).map(|_| connection()));
        dispatcher.flush();
        assert!(dispatcher.waiting.is_empty());
        assert!(dispatcher.slots[0].unacked.is_empty());
        // Its own share and what the full worker left, in one frame.
        assert_eq!(
            frames(good_end),
            [(Message::Connections { seq: 1, count: 4 }, 4)]
        );
    }

    /// A dead worker's unacknowledged batch goes to another worker, oldest
    /// first and ahead of newer connections; the part it acknowledged does
    /// not.
    #[test]
    fn dead_workers_batch_is_handed_again() {
        let runtime = runtime();
        let _context = runtime.enter();
        let (a, _a_end) = working_channel();
        let (b, b_end) = working_channel();
        let mut dispatcher = Dispatcher::new(2);
        dispatcher.slots[0] = ready_slot(a);
        dispatcher.waiting.extend((0..4).map(|_| connection()));
        dispatcher.flush();
        assert_eq!(dispatcher.slots[0].unacked.len(), 4);
        // The worker acknowledged the first of its batch, then died.
        dispatcher.slots[0].unacked.remove(&1);
        dispatcher.waiting.push_back(connection());
        dispatcher.exited(0, 1234);
        assert_eq!(dispatcher.waiting.len(), 4);
        dispatcher.slots[1] = ready_slot(b);
        dispatcher.flush();
        assert!(dispatcher.waiting.is_empty());
        assert_eq!(
            frames(b_end),
            [(Message::Connections { seq: 5, count: 4 }, 4)]
        );
        assert_eq!(dispatcher.held(), 4);
    }
}
