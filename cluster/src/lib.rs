//! The shared core of the cluster modes: the worker, its supervision and the
//! master–worker channel. The binaries `proxy` and `handoff` only add how the
//! master shares its port with the workers.
//!
//! # Layout
//!
//! - [`cli`]: what every binary shares on its command line: the duration
//!   syntax, the usage error, the exit codes.
//! - [`rlimit`]: RLIMIT_NOFILE, read and set in one place.
//! - [`master`]: what every master does before and after its mode's work:
//!   flags, fd limit, runtime, signals, exit codes.
//! - [`listen`]: binding the public port (`SO_REUSEADDR`, optional `SO_REUSEPORT`).
//! - [`supervisor`]: spawning workers (re-exec, channel fd, death signal),
//!   reaping and respawning them, stopping them gracefully.
//! - [`channel`]: the framed protocol over a `SOCK_SEQPACKET` socketpair, with
//!   sockets passed by `SCM_RIGHTS`.
//! - [`worker`]: the worker process: serves what the channel gives it.
//! - [`service`]: the worker's HTTP/1.1 answer (hyper).
//! - [`accept`]: accepting with a back-off at the fd limit.
//! - [`events`]: the JSON `ready` and `respawn` lines on stdout.
//! - [`procfs`]: fds, RSS and CPU time of a process and its children.
#![deny(missing_docs)]

use std::time::Duration;

pub mod accept;
pub mod channel;
pub mod cli;
pub mod events;
pub mod listen;
pub mod master;
pub mod procfs;
pub mod rlimit;
pub mod service;
pub mod supervisor;
pub mod worker;

/// How long a graceful stop lets requests in flight finish before closing
/// what is left. DESIGN.md: "at most a few seconds".
pub const GRACE_PERIOD: Duration = Duration::from_secs(5);

/// The four ways of sharing one port, named as in every output line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The master relays every connection to a worker's own port.
    Proxy,
    /// The master hands each accepted connection to a worker (SCM_RIGHTS).
    HandoffSocket,
    /// The master hands the listening socket to every worker once.
    HandoffListener,
    /// The master hands each worker its own SO_REUSEPORT listener.
    HandoffReuseport,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Proxy => "proxy",
            Mode::HandoffSocket => "handoff-socket",
            Mode::HandoffListener => "handoff-listener",
            Mode::HandoffReuseport => "handoff-reuseport",
        })
    }
}
