//! A memory cgroup of a server's own (cgroup v1's `memory` controller), so
//! that the kernel memory its connections take is counted apart from the
//! load generator's: on loopback both ends of every connection live in the
//! same kernel, and the machine's figures (`/proc/net/sockstat`,
//! `/proc/meminfo`) mix the two. loadgen's `--watch` finds the cgroup of
//! the watched master and records its counters (a run's
//! `watch[].memory_cgroup`).
//!
//! Socket buffers are counted per cgroup only once some cgroup has set
//! `memory.kmem.tcp.limit_in_bytes` (the kernel's switch for socket
//! accounting in v1), which also charges an accepted socket's own object to
//! the process that accepts it: without it, a connection's `struct
//! tcp_sock`, allocated when the handshake completes in softirq, is charged
//! to no one. [`MemoryCgroup::create`] sets it, to a limit no run reaches.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where the v1 `memory` controller is mounted (Debian, Ubuntu and the
/// reference VM, under cgroup v1 or the hybrid layout).
pub const MEMORY_ROOT: &str = "/sys/fs/cgroup/memory";

/// The TCP buffer limit that switches socket accounting on: 1 TiB, far past
/// any run, so that it never limits.
const TCP_LIMIT_BYTES: u64 = 1 << 40;

/// A memory cgroup made for one server, removed when dropped (after the
/// server stopped: a cgroup with processes in it cannot be removed).
#[derive(Debug)]
pub struct MemoryCgroup {
    /// Its folder.
    dir: PathBuf,
}

impl MemoryCgroup {
    /// Makes `MEMORY_ROOT/NAME` with socket accounting on. An error where
    /// there is no v1 memory controller (a cgroup v2 only machine) or no
    /// right to make one (not root), which names the cause.
    pub fn create(name: &str) -> io::Result<MemoryCgroup> {
        let root = Path::new(MEMORY_ROOT);
        if !root.join("memory.kmem.tcp.limit_in_bytes").is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no cgroup v1 memory controller with TCP accounting at {MEMORY_ROOT}"),
            ));
        }
        let dir = root.join(name);
        fs::create_dir(&dir).map_err(|err| context(err, format!("mkdir {}", dir.display())))?;
        let cgroup = MemoryCgroup { dir };
        cgroup.write(
            "memory.kmem.tcp.limit_in_bytes",
            &TCP_LIMIT_BYTES.to_string(),
        )?;
        Ok(cgroup)
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves each of `pids` into it (`cgroup.procs`: every thread of the
    /// process). What they were charged before stays where it was; what
    /// they are charged from now on, and what the children they start
    /// afterwards are, is the cgroup's.
    pub fn adopt(&self, pids: &[u32]) -> io::Result<()> {
        for pid in pids {
            self.write("cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Writes `value` to the control file `name`.
    fn write(&self, name: &str, value: &str) -> io::Result<()> {
        let path = self.dir.join(name);
        fs::write(&path, value)
            .map_err(|err| context(err, format!("write {value} to {}", path.display())))
    }
}

/// Removes the cgroups `MEMORY_ROOT/PREFIX-PID-...` that a process no longer
/// alive made (a harness killed before it could remove its own: SIGKILL, a
/// crash), so that they do not pile up until the next boot; returns how many
/// it removed. One still holding a process (EBUSY) is left.
pub fn remove_stale(prefix: &str) -> usize {
    let Ok(entries) = fs::read_dir(MEMORY_ROOT) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() && fs::remove_dir(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// `err` with what was being done.
fn context(err: io::Error, doing: String) -> io::Error {
    io::Error::new(err.kind(), format!("{doing}: {err}"))
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // EBUSY while a process is still inside: a server that did not stop
        // leaves its cgroup behind, said on stderr.
        if let Err(err) = fs::remove_dir(&self.dir)
            && err.kind() != io::ErrorKind::NotFound
        {
            eprintln!("could not remove {}: {err}", self.dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cgroup left by a process that is gone is removed; one of a live
    /// process (this one) is kept. Where none can be made (not root, no v1
    /// memory controller), said in one line.
    #[test]
    fn stale_cgroups_of_dead_processes_are_removed() {
        // A pid that is not alive: past the kernel's largest.
        let dead = 1 << 23;
        let prefix = format!("launch-test-{}", std::process::id());
        let stale = Path::new(MEMORY_ROOT).join(format!("{prefix}-{dead}-1"));
        if let Err(err) = fs::create_dir(&stale) {
            eprintln!("skipped: no cgroup here: {err}");
            return;
        }
        let live = MemoryCgroup::create(&format!("{prefix}-{}-2", std::process::id()))
            .expect("a second cgroup where the first could be made");
        assert_eq!(remove_stale(&prefix), 1);
        assert!(!stale.exists());
        assert!(live.dir().is_dir());
    }
}
