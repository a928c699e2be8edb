//! What the harness reads of the kernel's view of its servers: the sockets
//! a process holds (`/proc/PID/fd`: `socket:[INODE]`), which of them listen
//! on a port (`/proc/net/tcp`), its open fds and its CPU time (through
//! `cluster::procfs`).

use std::collections::BTreeSet;

/// The inodes of the sockets process `pid` holds, from the links of
/// `/proc/PID/fd` (`socket:[12345]`); empty once it is gone.
pub fn socket_inodes(pid: u32) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            link.strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(str::to_owned)
        })
        .collect()
}

/// Whether process `pid` holds a socket listening on 127.0.0.1:`port`: its
/// socket inodes against `/proc/net/tcp`'s listening sockets (state `0A`),
/// so that a port someone else took is not mistaken for it.
pub fn listens(pid: u32, port: u16) -> bool {
    let inodes = socket_inodes(pid);
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 9 && fields[1] == local && fields[3] == "0A" && inodes.contains(fields[9])
    })
}

/// The open fds of `pid` (the entries of `/proc/PID/fd`); 0 once it is gone.
pub fn fds(pid: u32) -> usize {
    cluster::procfs::fd_count(pid).unwrap_or(0)
}

/// The CPU time (user and system) `pid` has used, in seconds; 0 once it is
/// gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    cluster::procfs::stat(pid).map_or(0.0, |stat| (stat.cpu_user + stat.cpu_system).as_secs_f64())
}
