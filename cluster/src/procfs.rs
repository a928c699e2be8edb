//! Readings of a process tree from `/proc`: open fds, RSS, CPU time, children.
//! Used by the load generator's `--watch` and by the tests.
//!
//! Each figure is one file of `/proc/<pid>/`, read afresh at every call:
//!
//! | figure | file | unit there |
//! |---|---|---|
//! | open fds | the entries of the directory `fd/` | one entry per fd |
//! | RSS | field 2 of `statm` | pages |
//! | user and system CPU time | fields 14 and 15 of `stat` | clock ticks (`sysconf(_SC_CLK_TCK)`) |
//! | name, state, parent, start time | fields 2, 3, 4 and 22 of `stat` | |
//! | children | `task/<tid>/children` of every thread | pids |
//!
//! Children are listed per thread (the thread that forked them), so [`children`]
//! reads every thread's list; it needs a kernel with `CONFIG_PROC_CHILDREN`, which
//! every mainstream distribution enables. Because they are found at each call, a
//! worker the master respawned shows up at the next reading.
//!
//! A process may exit between two reads, even between two files of one reading:
//! that is [`ProcError::Gone`], which [`read_tree`] skips for children. Reading
//! another user's `fd/` needs privileges (`EACCES`): [`ProcError::Io`].

use std::fs;
use std::io;
use std::time::Duration;

/// One reading of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// The process id.
    pub pid: u32,
    /// The parent's pid (field 4 of `stat`), to tell a watched master from its workers.
    pub ppid: u32,
    /// The command name (field 2 of `stat`, at most 15 bytes), to label a process.
    pub name: String,
    /// The start time in clock ticks after boot (field 22 of `stat`): with the pid
    /// it names one process, since a pid is reused once its process is gone.
    pub start_ticks: u64,
    /// The number of open file descriptors, sockets included.
    pub fds: usize,
    /// The resident set size in bytes.
    pub rss_bytes: u64,
    /// CPU time spent in user mode since the process started.
    pub cpu_user: Duration,
    /// CPU time spent in the kernel on the process's behalf since it started.
    pub cpu_system: Duration,
}

impl Reading {
    /// User plus system CPU time.
    pub fn cpu_total(&self) -> Duration {
        self.cpu_user + self.cpu_system
    }
}

/// A process and its children, read at one moment (as near as `/proc` allows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// The process asked for.
    pub root: Reading,
    /// Its children that were alive while they were read, by pid.
    pub children: Vec<Reading>,
}

/// The fields of `/proc/<pid>/stat` that a [`Reading`] uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Field 2: the command name, without its parentheses.
    pub name: String,
    /// Field 3: `R` running, `S` sleeping, `D` in uninterruptible wait, `Z` zombie, ...
    pub state: char,
    /// Field 4: the parent's pid.
    pub ppid: u32,
    /// Field 14: user-mode CPU time.
    pub cpu_user: Duration,
    /// Field 15: kernel-mode CPU time.
    pub cpu_system: Duration,
    /// Field 22: start time in clock ticks after boot.
    pub start_ticks: u64,
}

/// Why a reading failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The process does not exist (any more), or is a zombie whose fds and memory
    /// are already released.
    #[error("process {pid} is gone")]
    Gone {
        /// The pid asked for.
        pid: u32,
    },
    /// A file of `/proc/<pid>/` could not be read, e.g. `EACCES` on another user's
    /// `fd/` directory.
    #[error("read /proc/{pid}/{file}: {source}")]
    Io {
        /// The pid asked for.
        pid: u32,
        /// The file under `/proc/<pid>/`.
        file: &'static str,
        /// The error of the read.
        source: io::Error,
    },
    /// A file of `/proc/<pid>/` did not have the expected fields.
    #[error("/proc/{pid}/{file} is malformed")]
    Malformed {
        /// The pid asked for.
        pid: u32,
        /// The file under `/proc/<pid>/`.
        file: &'static str,
    },
}

/// Reads `pid`'s stat, fd count and RSS.
pub fn read(pid: u32) -> Result<Reading, ProcError> {
    let stat = stat(pid)?;
    // A zombie has released its fds and memory, and its `fd/` is empty: it is
    // gone for every purpose of these readings.
    if stat.state == 'Z' || stat.state == 'X' {
        return Err(ProcError::Gone { pid });
    }
    Ok(Reading {
        pid,
        ppid: stat.ppid,
        name: stat.name,
        start_ticks: stat.start_ticks,
        fds: fd_count(pid)?,
        rss_bytes: rss_bytes(pid)?,
        cpu_user: stat.cpu_user,
        cpu_system: stat.cpu_system,
    })
}

/// Reads `pid` and each of its children, found afresh. A child that exits while it
/// is being read is left out; the root's being gone is an error.
pub fn read_tree(pid: u32) -> Result<Tree, ProcError> {
    let root = read(pid)?;
    let mut children = Vec::new();
    for child in self::children(pid)? {
        match read(child) {
            Ok(reading) => children.push(reading),
            // It exited between the listing and the reading.
            Err(ProcError::Gone { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(Tree { root, children })
}

/// The pids of `pid`'s children, sorted: the union of `/proc/<pid>/task/*/children`.
pub fn children(pid: u32) -> Result<Vec<u32>, ProcError> {
    let tasks =
        fs::read_dir(format!("/proc/{pid}/task")).map_err(|err| io_error(pid, "task", err))?;
    let mut pids = Vec::new();
    for task in tasks {
        let task = task.map_err(|err| io_error(pid, "task", err))?;
        let list = match fs::read_to_string(task.path().join("children")) {
            Ok(list) => list,
            // ENOENT: that thread exited after the directory was listed; its
            // children were re-parented to another thread or to init.
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(io_error(pid, "task/*/children", err)),
        };
        for child in list.split_whitespace() {
            let child = child.parse().map_err(|_| ProcError::Malformed {
                pid,
                file: "task/*/children",
            })?;
            pids.push(child);
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// The number of open fds of `pid`: the entries of `/proc/<pid>/fd`.
pub fn fd_count(pid: u32) -> Result<usize, ProcError> {
    let entries =
        fs::read_dir(format!("/proc/{pid}/fd")).map_err(|err| io_error(pid, "fd", err))?;
    let mut count = 0;
    for entry in entries {
        entry.map_err(|err| io_error(pid, "fd", err))?;
        count += 1;
    }
    Ok(count)
}

/// The resident set size of `pid` in bytes: field 2 of `/proc/<pid>/statm` (pages)
/// times the page size.
pub fn rss_bytes(pid: u32) -> Result<u64, ProcError> {
    let statm = fs::read_to_string(format!("/proc/{pid}/statm"))
        .map_err(|err| io_error(pid, "statm", err))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .ok_or(ProcError::Malformed { pid, file: "statm" })?;
    Ok(pages * page_size())
}

/// Reads the fields of `/proc/<pid>/stat` that a [`Reading`] uses.
pub fn stat(pid: u32) -> Result<Stat, ProcError> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|err| io_error(pid, "stat", err))?;
    parse_stat(&text).ok_or(ProcError::Malformed { pid, file: "stat" })
}

/// Parses the text of a `stat` file.
fn parse_stat(text: &str) -> Option<Stat> {
    // Field 2 is the command name in parentheses, which may itself contain spaces
    // and ')': it ends at the last ')', and the other fields follow.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    let mut fields = text.get(close + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    // After field 4 (ppid), the 10th next field is field 14 (utime).
    let utime: u64 = fields.nth(9)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // After field 15 (stime), the 7th next field is field 22 (starttime).
    let start_ticks = fields.nth(6)?.parse().ok()?;
    Some(Stat {
        name,
        state,
        ppid,
        cpu_user: ticks_to_duration(utime),
        cpu_system: ticks_to_duration(stime),
        start_ticks,
    })
}

/// Maps a failed read to [`ProcError`]: a missing `/proc/<pid>` means the process is gone.
fn io_error(pid: u32, file: &'static str, source: io::Error) -> ProcError {
    match source.raw_os_error() {
        // ENOENT: /proc/<pid> no longer exists. ESRCH: the process exited while
        // its directory was being read.
        Some(libc::ENOENT) | Some(libc::ESRCH) => ProcError::Gone { pid },
        _ => ProcError::Io { pid, file, source },
    }
}

/// Converts clock ticks (`stat`'s unit for CPU time) to a duration.
fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).unwrap_or(100).max(1);
    Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second)
}

/// The size of a memory page in bytes (`statm`'s unit).
fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    /// A pid that cannot exist: one above the kernel's largest.
    fn impossible_pid() -> u32 {
        let max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
            .expect("read pid_max")
            .trim()
            .parse()
            .expect("pid_max is a number");
        max + 1
    }

    /// The name, parent and CPU fields come from the right places, even when the
    /// command name holds spaces and parentheses.
    #[test]
    fn parses_stat_with_an_awkward_name() {
        let text = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 1 0 98765 1000 200 18446744073709551615";
        let stat = parse_stat(text).expect("parse");
        assert_eq!(stat.name, "a (b) c");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 7);
        assert_eq!(stat.cpu_user, ticks_to_duration(250));
        assert_eq!(stat.cpu_system, ticks_to_duration(130));
        assert_eq!(stat.start_ticks, 98765);
        assert!(parse_stat("42 (cut").is_none());
    }

    /// Reading this test process gives its own pid and parent, some fds, some RSS.
    #[test]
    fn reads_this_process() {
        let me = read(std::process::id()).expect("read self");
        assert_eq!(me.pid, std::process::id());
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(me.fds >= 3, "{me:?}");
        assert!(me.rss_bytes > 0, "{me:?}");
        assert!(!me.name.is_empty());
    }

    /// CPU time rises when the process computes.
    #[test]
    fn cpu_time_rises_with_work() {
        let pid = std::process::id();
        let before = read(pid).expect("read").cpu_total();
        let started = Instant::now();
        let mut x: u64 = 1;
        // At most 2 s of work, until the reading shows 100 ms more.
        while started.elapsed() < Duration::from_secs(2) {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
            std::hint::black_box(x);
            if read(pid).expect("read").cpu_total() >= before + Duration::from_millis(100) {
                return;
            }
        }
        panic!("2 s of computing did not show 100 ms of CPU time");
    }

    /// A child appears among the children while it runs, with its parent's pid,
    /// and is gone once it has exited and been reaped.
    #[test]
    fn finds_children_afresh() {
        let me = std::process::id();
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let tree = read_tree(me).expect("read tree");
        let found = tree.children.iter().find(|reading| reading.pid == pid);
        let _ = child.kill();
        let _ = child.wait();
        let found = found.expect("the child is listed");
        assert_eq!(found.ppid, me);
        assert!(
            children(me)
                .expect("children")
                .iter()
                .all(|&other| other != pid)
        );
        assert!(matches!(read(pid), Err(ProcError::Gone { .. })));
    }

    /// A pid that does not exist is `Gone`, not an I/O error.
    #[test]
    fn missing_process_is_gone() {
        let pid = impossible_pid();
        assert!(matches!(read(pid), Err(ProcError::Gone { .. })));
        assert!(matches!(read_tree(pid), Err(ProcError::Gone { .. })));
        assert!(matches!(children(pid), Err(ProcError::Gone { .. })));
    }
}
