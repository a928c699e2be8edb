//! The memory cgroup of a watched process: what the kernel charged to the
//! tree, which `/proc/PID/status` does not show. A socket's own memory (the
//! `struct tcp_sock`, its inode, its `struct file`, the epoll item that
//! watches it) and its buffers live in the kernel, not in any process's RSS;
//! on loopback both ends of a connection live in the same kernel, so a
//! machine-wide figure (`/proc/net/sockstat`, `/proc/meminfo`) mixes the
//! server's share with the load generator's. A cgroup counts only what its
//! own processes were charged: the harness puts the server tree in a cgroup
//! of its own and leaves loadgen out.
//!
//! cgroup v1's `memory` controller, whose counters are (`memory.txt` of the
//! kernel's cgroup-v1 documentation):
//! - `memory.kmem.usage_in_bytes`: kernel objects charged to the cgroup;
//! - `memory.kmem.tcp.usage_in_bytes`: TCP socket buffers, counted only
//!   while `memory.kmem.tcp.limit_in_bytes` has been set (the harness sets
//!   it, which also charges an accepted socket's own object to its acceptor);
//! - `memory.usage_in_bytes`: everything charged, user pages and kernel
//!   objects (not the TCP buffers, which have their own counter).
//!
//! A process in the root cgroup (every process on a machine without one
//! made for it) has no reading: the root's counters are the machine's.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One reading of a memory cgroup's counters, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemcgReading {
    /// Kernel objects charged (`memory.kmem.usage_in_bytes`).
    pub kernel_bytes: u64,
    /// TCP socket buffers charged (`memory.kmem.tcp.usage_in_bytes`).
    pub socket_buffer_bytes: u64,
    /// Everything charged but the TCP buffers (`memory.usage_in_bytes`).
    pub charged_bytes: u64,
}

/// The folder of `pid`'s memory cgroup (v1), if it has one of its own: not
/// the root one (the machine's) and not loadgen's (whose counters would mix
/// both ends of every connection). Its path from `/proc/PID/cgroup`, under
/// the controller's mount point from `/proc/self/mountinfo`.
pub fn of_pid(pid: u32) -> io::Result<Option<PathBuf>> {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let Some(path) = memory_path(&cgroups) else {
        return Ok(None);
    };
    let own = fs::read_to_string("/proc/self/cgroup")?;
    if path == "/" || memory_path(&own) == Some(path) {
        return Ok(None);
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(memory_mount(&mounts).map(|mount| mount.join(path.trim_start_matches('/'))))
}

/// The path of the v1 `memory` controller's line (`7:memory:/a/b`).
fn memory_path(cgroups: &str) -> Option<&str> {
    cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers
            .split(',')
            .any(|controller| controller == "memory")
            .then_some(path)
    })
}

/// Where the v1 `memory` controller is mounted: the mount point of a
/// `cgroup` file system whose super options name `memory` (mountinfo's
/// fields: `ID PARENT MAJ:MIN ROOT POINT OPTIONS ... - TYPE SOURCE SUPER`).
fn memory_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let mut after = after.split_whitespace();
        let (kind, _source, options) = (after.next()?, after.next()?, after.next()?);
        let point = before.split_whitespace().nth(4)?;
        (kind == "cgroup" && options.split(',').any(|option| option == "memory"))
            .then(|| PathBuf::from(point))
    })
}

/// Reads the counters of the cgroup at `dir`.
pub fn read(dir: &Path) -> io::Result<MemcgReading> {
    let counter = |name: &str| -> io::Result<u64> {
        let text = fs::read_to_string(dir.join(name))?;
        text.trim().parse().map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}: {:?} is not a count ({err})", text.trim()),
            )
        })
    };
    Ok(MemcgReading {
        kernel_bytes: counter("memory.kmem.usage_in_bytes")?,
        socket_buffer_bytes: counter("memory.kmem.tcp.usage_in_bytes")?,
        charged_bytes: counter("memory.usage_in_bytes")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory controller's line and mount are found among others; the
    /// root cgroup and a v2-only machine have none.
    #[test]
    fn finds_the_memory_controller() {
        let cgroups = "9:name=systemd:/\n7:cpu,cpuacct:/x\n4:memory:/portshare-12-1\n0::/\n";
        assert_eq!(memory_path(cgroups), Some("/portshare-12-1"));
        assert_eq!(memory_path("0::/user.slice\n"), None);
        let mountinfo = "\
25 20 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
29 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 25 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            memory_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            memory_mount("33 25 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
            None
        );
    }

    /// This process shares its own cgroup, whatever it is: no reading.
    #[test]
    fn loadgens_own_cgroup_has_no_reading() {
        assert_eq!(of_pid(std::process::id()).expect("readable"), None);
    }
}
