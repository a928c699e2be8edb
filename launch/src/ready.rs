//! The `ready` line, as the masters print it (`cluster::announce`) and the
//! Node.js peer imitates it: `{"event":"ready","mode":..,"listen":..,
//! "master_pid":..,"workers":[{"pid":..,"port":..}, ..]}`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The `ready` line: the master serves, with every worker.
#[derive(Debug, Clone, Deserialize)]
pub struct Ready {
    /// The mode name: `proxy`, `handoff-socket`, `handoff-listener`,
    /// `handoff-reuseport`, or a peer's (`node-rr`).
    pub mode: String,
    /// The address it serves on (the port is resolved when `--listen` asked
    /// for 0).
    pub listen: SocketAddr,
    /// The master's pid: the process started, unless a wrapper that forks
    /// (strace) started it.
    pub master_pid: u32,
    /// The workers serving when the line was printed.
    pub workers: Vec<ReadyWorker>,
    /// The old master whose sockets this one took over (`--takeover`).
    #[serde(default)]
    pub takeover_from: Option<u32>,
    /// The sockets came from a service manager (`LISTEN_FDS`).
    #[serde(default)]
    pub socket_activated: bool,
}

/// One worker of the `ready` line.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadyWorker {
    /// The worker's pid.
    pub pid: u32,
    /// The worker's own port in `proxy` mode; `None` (JSON `null`) in the
    /// handoff modes and in `proxy --upstream unix`.
    pub port: Option<u16>,
    /// The worker's own Unix socket in `proxy --upstream unix`; absent
    /// otherwise.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

impl Ready {
    /// The pids of its workers, in the line's order.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.workers.iter().map(|worker| worker.pid).collect()
    }

    /// The workers' own ports (`proxy` over TCP), in the line's order.
    pub fn worker_ports(&self) -> Vec<u16> {
        self.workers
            .iter()
            .filter_map(|worker| worker.port)
            .collect()
    }

    /// The public port.
    pub fn port(&self) -> u16 {
        self.listen.port()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A master's line and the Node.js peer's (no `takeover_from`, no
    /// `socket_activated`) both read.
    #[test]
    fn reads_a_masters_line_and_the_peers() {
        let master: Ready = serde_json::from_str(
            r#"{"event":"ready","mode":"proxy","listen":"127.0.0.1:4000","master_pid":7,
                "workers":[{"pid":8,"port":4001},{"pid":9,"port":4002}],"takeover_from":3}"#,
        )
        .expect("a master's line");
        assert_eq!(master.worker_pids(), [8, 9]);
        assert_eq!(master.worker_ports(), [4001, 4002]);
        assert_eq!((master.port(), master.takeover_from), (4000, Some(3)));
        let peer: Ready = serde_json::from_str(
            r#"{"event":"ready","mode":"node-rr","listen":"127.0.0.1:4000","master_pid":7,
                "workers":[{"pid":8,"port":null}]}"#,
        )
        .expect("the peer's line");
        assert!(peer.worker_ports().is_empty());
        assert!(!peer.socket_activated);
    }
}
