//! Processes as `/proc` shows them (through [`cluster::procfs`]), their fd
//! limit (through [`cluster::rlimit`]), and [`wait_until`], the one way the
//! tests wait for something to happen.

use std::fs;
use std::io;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use cluster::procfs;

/// How often [`wait_until`] looks again: short against the deadlines of the tests,
/// long enough not to busy-spin.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

pub use cluster::procfs::fd_count;

/// Whether `/proc/<pid>` exists at all: a zombie exists until its parent
/// reaps it.
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Leaves process `pid` without a free fd: sets its RLIMIT_NOFILE to its
/// lowest unused fd number, so that every new fd fails with EMFILE until the
/// limit is raised again (with [`set_nofile_limit`]).
pub fn exhaust_fds(pid: u32) -> io::Result<()> {
    let mut used = std::collections::HashSet::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        if let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u64>().ok())
        {
            used.insert(fd);
        }
    }
    let lowest_free = (0..)
        .find(|fd| !used.contains(fd))
        .expect("a free fd number");
    set_nofile_limit(pid, lowest_free)
}

/// Sets the soft RLIMIT_NOFILE of another process ([`cluster::rlimit::set_soft_of`]).
pub fn set_nofile_limit(pid: u32, soft: u64) -> io::Result<()> {
    cluster::rlimit::set_soft_of(pid, soft)
}

/// Whether process `pid` is running, in the one sense of
/// [`cluster::procfs::read`]: it exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    reading(pid).is_some()
}

/// The children of process `pid` (every thread's, from
/// `/proc/<pid>/task/*/children`); empty if it does not exist.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut children: Vec<u32> = tasks
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            let pids: Vec<u32> = text
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            pids
        })
        .collect();
    children.sort_unstable();
    children
}

/// The reading of process `pid` if it is running, in the one sense of
/// [`cluster::procfs::read`]: a process that does not exist, or is a zombie (a
/// dead process not yet reaped by its parent, e.g. an orphan whose new parent
/// does not reap), cannot be read.
pub(crate) fn reading(pid: u32) -> Option<procfs::Reading> {
    procfs::read(pid).ok()
}

/// Whether every thread of process `pid` is stopped (state `T` in
/// `/proc/<pid>/task/*/stat`). A SIGSTOP takes effect when each thread next
/// runs, not when kill(2) returns: a thread woken at that moment for a
/// connection can accept it first, and then stop holding it. The kit's
/// signal functions wait for this after each SIGSTOP.
pub fn is_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            return false;
        };
        // The state follows the command name, which is in parentheses and
        // may itself contain ") ".
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if state != Some('T') {
            return false;
        }
        any = true;
    }
    any
}

/// Whether every thread of process `pid` has exited, so that its fds are
/// closed: `/proc/<pid>/task` is gone or lists zombies only. [`is_alive`]
/// reads the thread-group leader, which shows `Z` as soon as it has exited
/// itself, while its other threads may still run: a worker thread blocked
/// in accept(2) can then still take a client from a shared queue and drop
/// it as it dies (a reset). The leader stays a zombie until its parent
/// reaps it, which an orphan's new parent may never do.
pub fn has_exited(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).map_or(true, |stat| {
            let state = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            matches!(state, Some('Z' | 'X'))
        })
    })
}

/// How many connections wait in the accept queues of the sockets that
/// listen on TCP `port` (state `0A`, LISTEN, in `/proc/net/tcp` and
/// `/proc/net/tcp6`; for a listening socket the `rx_queue` column is its
/// accept queue's length), summed over them (`SO_REUSEPORT` has several);
/// `None` if no socket listens there.
pub fn accept_queue(port: u16) -> Option<usize> {
    let mut listening = false;
    let mut queued = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(queues)) =
                (fields.get(1), fields.get(3), fields.get(4))
            else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if *state != "0A" || local_port != Some(port) {
                continue;
            }
            listening = true;
            let rx = queues
                .split(':')
                .nth(1)
                .and_then(|hex| usize::from_str_radix(hex, 16).ok());
            queued += rx.unwrap_or(0);
        }
    }
    listening.then_some(queued)
}

/// The CPU time (user + system) process `pid` has used so far; `None` if it
/// does not exist.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    procfs::stat(pid)
        .ok()
        .map(|stat| stat.cpu_user + stat.cpu_system)
}

/// Calls `f` every [`POLL_INTERVAL`] until it returns `true` (then returns `true`)
/// or `deadline` has passed (then returns `false`). `f` runs at least once, and once
/// more after the deadline.
pub fn wait_until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(POLL_INTERVAL);
    }
}
