//! The load generator's own fd limit: each connection is one fd (two in open
//! loop, with its timerfd), so it raises its soft `RLIMIT_NOFILE` to the hard
//! limit before the run, warns when the run will not fit, and the report says
//! what it got, so that running out is explained rather than mysterious.

use serde::{Deserialize, Serialize};

/// The load generator's `RLIMIT_NOFILE` during the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdLimit {
    /// The soft limit it was started with.
    pub soft_at_start: u64,
    /// The soft limit during the run (the hard limit, unless raising failed).
    pub soft: u64,
    /// The hard limit, which only a privileged process may raise.
    pub hard: u64,
}

/// The fds the load generator needs besides its connections: stdio, the
/// runtimes' epoll and event fds, `/proc` readings, the JSON file.
pub const FDS_BESIDES_CONNECTIONS: u64 = 64;

/// The fds one connection holds: its socket, and in open loop the `timerfd` it
/// sleeps on between requests (`super::timer`). Under `--new-conn` a
/// connection closes its socket before it opens the next one.
pub fn fds_per_connection(open_loop: bool) -> u64 {
    if open_loop { 2 } else { 1 }
}

/// About how many fds a run of `connections` connections needs, all told.
pub fn fds_needed(connections: usize, open_loop: bool) -> u64 {
    (connections as u64)
        .saturating_mul(fds_per_connection(open_loop))
        .saturating_add(FDS_BESIDES_CONNECTIONS)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (setrlimit(2)).
pub fn raise_fd_limit() -> std::io::Result<FdLimit> {
    let soft_at_start = cluster::rlimit::get()?.soft;
    // When raising fails, the report shows the limit that applied.
    let now = cluster::rlimit::raise_soft_to_hard()?;
    Ok(FdLimit {
        soft_at_start,
        soft: now.soft,
        hard: now.hard,
    })
}

impl FdLimit {
    /// Whether `needed` fds (`fds_needed`) fit under the soft limit.
    pub fn fits(&self, needed: u64) -> bool {
        needed <= self.soft
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 10, extra): an open-loop connection counts its
    /// timerfd too; a closed loop (keep-alive or `--new-conn`) one fd each.
    #[test]
    fn open_loop_needs_two_fds_per_connection() {
        assert_eq!(fds_needed(100, false), 100 + FDS_BESIDES_CONNECTIONS);
        assert_eq!(fds_needed(100, true), 200 + FDS_BESIDES_CONNECTIONS);
        let limit = FdLimit {
            soft_at_start: 250,
            soft: 250,
            hard: 250,
        };
        assert!(limit.fits(fds_needed(100, false)));
        assert!(!limit.fits(fds_needed(100, true)));
        assert!(!limit.fits(fds_needed(usize::MAX, true)));
    }
}
