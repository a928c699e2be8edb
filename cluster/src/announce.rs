//! The announcements on stdout: one JSON object per line, nothing else.
//!
//! Scripts and tests read these to learn the address, the master's pid and the
//! workers' pids (see ARCHITECTURE.md). Logs go to stderr. Each line is tagged by its
//! `"event"` field, the name the scripts know; in the code they are
//! `Announcement`s, apart from the supervisor's internal
//! [`Event`](crate::supervisor::Event)s.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::Mode;

/// A worker as the announcements describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerInfo {
    /// The worker's pid (the `x-worker-pid` of its answers).
    pub pid: u32,
    /// Its own port in `proxy` mode; `null` in the handoff modes and in
    /// `proxy --upstream unix`.
    pub port: Option<u16>,
    /// Its own Unix socket in `proxy --upstream unix`; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// One line on stdout.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Announcement {
    /// Every worker is serving: the first line, once.
    Ready {
        mode: Mode,
        listen: SocketAddr,
        master_pid: u32,
        workers: Vec<WorkerInfo>,
        /// The old master whose sockets this one took over (`--takeover`).
        #[serde(skip_serializing_if = "Option::is_none")]
        takeover_from: Option<u32>,
        /// The sockets came from a service manager (`LISTEN_FDS`).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        socket_activated: bool,
    },
    /// A successor is serving in place of a worker that died.
    Respawn {
        old_pid: u32,
        pid: u32,
        port: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
    },
    /// The old master of a takeover: the new master `to_pid` serves; this
    /// one stops accepting and exits when its workers are done.
    Handover { to_pid: u32 },
    /// The old master of a takeover: the new master `pid` failed before its
    /// `ready`; this one serves on, its sockets untouched.
    HandoverFailed { pid: u32, reason: String },
}

/// Prints the `ready` line: every worker is serving; `takeover_from` is the
/// old master after a takeover; `socket_activated` says the sockets came
/// from a service manager.
pub fn ready(
    mode: Mode,
    listen: SocketAddr,
    workers: Vec<WorkerInfo>,
    takeover_from: Option<u32>,
    socket_activated: bool,
) {
    let master_pid = std::process::id();
    print(&Announcement::Ready {
        mode,
        listen,
        master_pid,
        workers,
        takeover_from,
        socket_activated,
    });
}

/// Prints the `handover` line: the new master `to_pid` has taken over.
pub fn handover(to_pid: u32) {
    print(&Announcement::Handover { to_pid });
}

/// Prints the `handover_failed` line: the takeover by `pid` failed, `reason`.
pub fn handover_failed(pid: u32, reason: &str) {
    print(&Announcement::HandoverFailed {
        pid,
        reason: reason.to_owned(),
    });
}

/// Prints the `respawn` line: `pid` has replaced `old_pid` and is serving.
pub fn respawn(old_pid: u32, pid: u32, port: Option<u16>, path: Option<PathBuf>) {
    print(&Announcement::Respawn {
        old_pid,
        pid,
        port,
        path,
    });
}

fn print(announcement: &Announcement) {
    let mut line = serde_json::to_vec(announcement).expect("announcements serialize to JSON");
    line.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    // A reader that went away must not take the server down with it.
    if let Err(err) = stdout.write_all(&line).and_then(|()| stdout.flush()) {
        tracing::warn!(cause = %err, "cannot write an announcement to stdout");
    }
}
