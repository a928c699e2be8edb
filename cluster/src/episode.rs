//! One warning per episode of the same failure, however often it repeats.
//!
//! A failure that comes back at once (an accept at the fd limit, a flood of
//! peers on the upgrade socket) would write a line each time and bury the
//! log: issue 10 counted 15,004 "accept paused" lines in 3 s, issue 19 292
//! warnings for 300 silent peers. An [`Episode`] says which occurrence starts
//! a new episode (log it as a warning, with what it is) and counts the rest
//! (log them at debug level); a quiet spell ends the episode.

use std::time::{Duration, Instant};

/// Occurrences closer together than this are one episode. At the fd limit
/// errors come every 50 ms (the accept back-off), so a second without one
/// means the limit was left.
pub const EPISODE_GAP: Duration = Duration::from_secs(1);

/// The state of one kind of failure: when it last happened, and how many
/// times in the current episode.
#[derive(Debug, Default, Clone)]
pub struct Episode {
    /// The last occurrence.
    last: Option<Instant>,
    /// Occurrences in the current episode, the first included.
    count: u64,
}

impl Episode {
    /// No occurrence yet (usable in a `static`).
    pub const fn new() -> Episode {
        Episode {
            last: None,
            count: 0,
        }
    }

    /// Records one occurrence at `now`; true if it starts an episode (none
    /// came in the [`EPISODE_GAP`] before it): the caller warns once.
    pub fn starts(&mut self, now: Instant) -> bool {
        let starts = self.starts_at(now);
        self.count = if starts { 1 } else { self.count + 1 };
        self.last = Some(now);
        starts
    }

    /// Whether an occurrence at `now` would start an episode, without
    /// recording it.
    pub fn starts_at(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|last| now.saturating_duration_since(last) >= EPISODE_GAP)
    }

    /// How many occurrences the current episode has had.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Occurrences less than EPISODE_GAP apart are one episode, whatever
    /// its length; a longer quiet starts a new one.
    #[test]
    fn one_start_per_episode() {
        let start = Instant::now();
        let mut episode = Episode::default();
        let step = Duration::from_millis(50);
        let starts = (0..60)
            .filter(|&i| episode.starts(start + step * i))
            .count();
        assert_eq!(starts, 1);
        assert_eq!(episode.count(), 60);
        let last = start + step * 59;
        assert!(!episode.starts_at(last + EPISODE_GAP / 2));
        assert!(episode.starts(last + EPISODE_GAP));
        assert_eq!(episode.count(), 1);
    }
}
