//! `--pass reuseport --steer health`: the master's side of the steering
//! program ([`cluster::steer`]): which slots are live, from the supervisor's
//! events, and when the program goes on the group.
//!
//! # How health reaches the program
//!
//! The supervisor's slot task pings its worker every `--eject-after` and
//! reports, in order with the slot's other events, a pong late by more
//! than that ([`Event::Late`]) and the pong that ends it
//! ([`Event::Answered`]). Each slot is then in one `Health`:
//!
//! | event | the slot becomes |
//! |---|---|
//! | `Ready` (a first worker, or a successor serves) | live |
//! | `Late` (no pong for `--eject-after`) | late: out of the list |
//! | `Answered` (the late worker's pong) | live again |
//! | `Exited` (dead; its queue waits for the successor) | down: out of the list |
//!
//! and every change rewrites the program's list of live slots, within the
//! master's turn of its event loop: a worker stopped for 500 ms is out of
//! the list about `--eject-after` after its first unanswered ping, at most
//! about twice `--eject-after` after it stopped. The sockets never change:
//! the master keeps every one, and a successor gets its slot's socket again.
//!
//! # When the program goes on, and comes off
//!
//! The program is attached when every slot has first served, just before
//! the `ready` line, and again with each change of the list (so that a
//! master whose group was given another master's program, by a takeover
//! that then failed, puts its own back at the next change). On a takeover
//! the old master's program steers until then; attaching ours replaces it
//! (the kernel drops the group's reference to the old program, which the
//! old master still holds and frees at its exit). The sockets stay in the
//! old master's `REUSEPORT_SOCKARRAY` until it lets go of them at its
//! handover ([`Steering::stop`]): our map, which the kernel refuses them
//! until then (EBUSY), takes them at the first change of the list after
//! that. Meanwhile our program selects nothing and the kernel's hash
//! spreads the connections over every socket, as the program would with
//! every slot live; a new worker that goes late in the milliseconds
//! between our `ready` and the handover is not left out until its next
//! change.
//!
//! A master that stops without owning the sockets alone (handed over, or
//! a takeover that did not commit) detaches the group's program before
//! it empties its map: whoever steers next attaches its own after that.
//! A `--steer hash` master that took the sockets over detaches whatever
//! program the old master left, when its workers all serve.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use cluster::steer::{self, FillError, Program, Steer, SteerError};
use cluster::supervisor::Event;

/// `--eject-after`'s default: the pace of the pings, and how late a pong
/// may be. A worker's pong takes microseconds on an idle machine and up to
/// tens of milliseconds on a loaded one (the scheduler's delay, for two
/// processes); 50 ms keeps the stalled worker's share waiting well below
/// the half-second stalls of the report's experiment, and costs the master
/// 20 pings a second per worker.
pub const DEFAULT_EJECT_AFTER: Duration = Duration::from_millis(50);

/// The shortest `--eject-after`: below, the master pings every worker more
/// than a hundred times a second, and the scheduler's delays on a loaded
/// machine make healthy workers late, which only shrinks the group.
pub const MIN_EJECT_AFTER: Duration = Duration::from_millis(10);

/// [`cluster::cli::parse_duration`] for `--eject-after`: at least
/// [`MIN_EJECT_AFTER`].
pub fn parse_eject_after(text: &str) -> Result<Duration, String> {
    match cluster::cli::parse_duration(text)? {
        d if d < MIN_EJECT_AFTER => Err(format!(
            "{text:?}: less than {MIN_EJECT_AFTER:?}, the pings' fastest pace"
        )),
        d => Ok(d),
    }
}

/// A slot as the steering sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// No worker of this slot has served yet.
    Starting,
    /// Its worker serves and answers its pings: in the list.
    Live,
    /// Its worker left a ping unanswered for `--eject-after`.
    Late,
    /// Its worker died; the successor does not serve yet.
    Down,
}

/// What a `--pass reuseport` master does for `--steer`.
#[derive(Debug)]
pub struct Steering {
    /// The program, with `--steer health`; none with `hash`.
    program: Option<Program>,
    /// This master took the sockets over and has not yet set the group's
    /// program: another master's may be on it.
    took_over: bool,
    /// Each slot's health.
    slots: Vec<Health>,
    /// The live slots as the program last got them.
    published: Option<Vec<u32>>,
    /// The sockets are in our map (false while the old master's map has
    /// them).
    filled: bool,
}

impl Steering {
    /// Loads the program for `sockets` (one per slot, `--pass reuseport`),
    /// with `--steer health`, and puts the sockets in its map, unless
    /// another master's map still has them (`took_over`: they are put in
    /// later). Nothing is attached yet. With `hash` on sockets of our own
    /// (or `--pass listener`'s one socket) it does nothing, now or later.
    pub fn start(
        steer: Steer,
        sockets: &[OwnedFd],
        took_over: bool,
    ) -> Result<Steering, SteerError> {
        let program = match steer {
            Steer::Hash => None,
            Steer::Health => Some(Program::load(sockets.len())?),
        };
        let mut steering = Steering {
            program,
            took_over,
            slots: vec![Health::Starting; sockets.len()],
            published: None,
            filled: false,
        };
        if let Some(program) = &steering.program {
            match program.fill(sockets) {
                Ok(()) => steering.filled = true,
                Err(FillError::InAnotherMap) if took_over => {
                    tracing::debug!("the old master's map still holds the sockets");
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(steering)
    }

    /// Notes what `event` says of its slot and, once every slot has served,
    /// gives the program the live slots when they change; hands `event`
    /// back, for the master's own use.
    pub fn note(&mut self, event: Event, sockets: &[OwnedFd]) -> Event {
        self.update(&event, sockets);
        event
    }

    /// [`Steering::note`]'s work.
    fn update(&mut self, event: &Event, sockets: &[OwnedFd]) {
        if self.program.is_none() && !self.took_over {
            // `--steer hash` on a group of our own: nothing to do.
            return;
        }
        let (slot, health, said) = match *event {
            Event::Ready { slot, .. } => (slot, Health::Live, None),
            Event::Late { slot, pid } if self.slots[slot] == Health::Live => (
                slot,
                Health::Late,
                Some((pid, "worker late: new connections go elsewhere")),
            ),
            Event::Answered { slot, pid } if self.slots[slot] == Health::Late => (
                slot,
                Health::Live,
                Some((pid, "worker answers again: back in the group")),
            ),
            Event::Exited { slot, .. } if self.slots[slot] != Health::Starting => {
                (slot, Health::Down, None)
            }
            _ => return,
        };
        self.slots[slot] = health;
        if !self.slots.contains(&Health::Starting) {
            if self.program.is_some() {
                self.publish(sockets);
            } else if std::mem::take(&mut self.took_over) {
                if let Err(err) = steer::detach(sockets[0].as_fd()) {
                    tracing::warn!(cause = %err, "cannot detach the old master's steering program");
                }
            }
        }
        // Said once the kernel has the new list, so that a reader of the log
        // (a test, an operator) who acts on the line finds it in force.
        if let Some((pid, what)) = said {
            tracing::info!(worker = pid, slot, "{what}");
        }
    }

    /// Gives the program the live slots if they changed (and the sockets,
    /// if they are not in its map yet), and attaches it.
    fn publish(&mut self, sockets: &[OwnedFd]) {
        let newly_filled = !self.filled && self.fill(sockets);
        let Some(program) = &self.program else {
            return;
        };
        let live: Vec<u32> = (0u32..)
            .zip(&self.slots)
            .filter(|(_, health)| **health == Health::Live)
            .map(|(slot, _)| slot)
            .collect();
        if self.published.as_ref() == Some(&live) && !newly_filled {
            return;
        }
        if let Err(err) = program.set_live(&live) {
            tracing::error!(cause = %err, "cannot write the live slots; steering as before");
            return;
        }
        tracing::debug!(?live, "live slots");
        self.published = Some(live);
        if let Err(err) = program.attach(sockets[0].as_fd()) {
            tracing::error!(cause = %err, "cannot attach the steering program");
        }
    }

    /// Puts the sockets in our map; false while another master's map holds
    /// them (tried again at the next change).
    fn fill(&mut self, sockets: &[OwnedFd]) -> bool {
        let Some(program) = &self.program else {
            return false;
        };
        match program.fill(sockets) {
            Ok(()) => {
                tracing::debug!("the listening sockets are in our map");
                self.filled = true;
            }
            Err(FillError::InAnotherMap) => {
                tracing::debug!("the old master's map still holds the sockets");
            }
            Err(err) => {
                tracing::error!(cause = %err, "cannot put the listening sockets in the map; the kernel's hash steers");
            }
        }
        self.filled
    }

    /// At the stop of a master that does not own the sockets alone (it
    /// handed them over, or its takeover did not commit): detaches the
    /// group's program (whoever steers next attaches its own after this),
    /// then empties our map, so that the next master's map may take the
    /// sockets. A master that owns them shuts them down instead, which
    /// takes them out of every map.
    pub fn stop(&self, sockets: &[OwnedFd]) {
        let Some(program) = &self.program else {
            return;
        };
        if let Some(socket) = sockets.first() {
            if let Err(err) = steer::detach(socket.as_fd()) {
                tracing::warn!(cause = %err, "cannot detach the steering program");
            }
        }
        if let Err(err) = program.release() {
            tracing::warn!(cause = %err, "cannot take the sockets out of the map");
        }
    }
}
