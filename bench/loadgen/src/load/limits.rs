//! The load generator's own fd limit: each connection is one fd, so it raises its
//! soft `RLIMIT_NOFILE` to the hard limit before the run, and the report says
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
    /// Whether `connections` connections (one fd each) fit under the soft limit.
    pub fn fits(&self, connections: usize) -> bool {
        (connections as u64).saturating_add(FDS_BESIDES_CONNECTIONS) <= self.soft
    }
}
