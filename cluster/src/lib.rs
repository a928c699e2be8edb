//! The shared core of the cluster modes: the worker, its supervision and the
//! master–worker channel. The binaries `proxy` and `handoff` only add how the
//! master shares its port with the workers.
//!
//! # Layout
//!
//! - [`Mode`] and [`Pass`]: the four modes, one name each in code, flags
//!   and output; [`Accept`]: how the workers of `handoff-listener` accept.
//! - [`cli`]: what every binary shares on its command line: the duration
//!   syntax, the usage error, the exit codes.
//! - [`rlimit`]: RLIMIT_NOFILE, read and set in one place.
//! - [`master`]: what every master does before and after its mode's work:
//!   flags, fd limit, runtime, signals, exit codes.
//! - [`listen`]: binding the public port (`SO_REUSEADDR`, optional `SO_REUSEPORT`).
//! - [`supervisor`]: spawning workers (re-exec, channel fd, death signal),
//!   reaping and respawning them, stopping them gracefully.
//! - [`channel`]: the framed protocol over a `SOCK_SEQPACKET` socketpair, with
//!   sockets passed by `SCM_RIGHTS`: [`channel::frame`] is the wire format,
//!   [`channel::scm_rights`] the `sendmsg`/`recvmsg` that hand a socket over.
//! - [`worker`]: the worker process: serves what the channel gives it, one
//!   function per mode.
//! - [`service`]: the worker's HTTP/1.1 answer (hyper).
//! - [`accept`]: accepting with a back-off at the fd limit.
//! - [`episode`]: one warning per episode of a failure that repeats.
//! - [`shared_listener`]: how a worker accepts on the listener it shares
//!   with the others, one function per `--accept` strategy.
//! - [`steer`]: `--steer health`, a BPF program that steers an
//!   `SO_REUSEPORT` group's new connections away from workers that do not
//!   answer their pings.
//! - [`announce`]: the JSON `ready` and `respawn` lines on stdout
//!   (`Announcement`s; not to be confused with the supervisor's
//!   [`supervisor::Event`]s, which stay inside the master).
//! - [`procfs`]: fds, RSS and CPU time of a process and its children.
//! - [`activation`]: socket activation (`LISTEN_FDS`, `sd_listen_fds(3)`):
//!   the listening sockets from a service manager.
//! - [`upgrade`]: `--upgrade-socket` and `--takeover`, a new master taking
//!   the listening sockets over SCM_RIGHTS (zero-downtime upgrade).
#![deny(missing_docs)]

use std::time::Duration;

pub mod accept;
pub mod activation;
pub mod announce;
pub mod channel;
pub mod cli;
pub mod episode;
pub mod listen;
pub mod master;
pub mod procfs;
pub mod rlimit;
pub mod service;
pub mod shared_listener;
pub mod steer;
pub mod supervisor;
pub mod upgrade;
pub mod worker;

/// How long a graceful stop lets requests in flight finish before closing
/// what is left, unless `--grace` says otherwise (its default).
pub const GRACE_PERIOD: Duration = Duration::from_secs(5);

/// How the master shares its port: the one name of a mode.
///
/// One vocabulary, so that a name read anywhere leads to the code: the
/// master's flags (`proxy`; `handoff --pass socket`), the `mode` of the `ready`
/// line and of every result (`handoff-socket`), and the worker's hidden
/// `--mode` flag all spell a mode from this enum, whose handoff half is the
/// `--pass` value itself ([`Pass`]). Adding a mode is one variant here, and
/// the compiler then points at every place that must learn it (the worker,
/// the supervisor, the names below).
/// Ordered as [`Mode::ALL`] lists them, the order of every table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// The master relays every connection to a worker's own port (`proxy`).
    Proxy,
    /// The master hands sockets to the workers (`handoff --pass ...`).
    Handoff(Pass),
}

/// What the `handoff` master hands to the workers (its `--pass` flag) over
/// their channels with SCM_RIGHTS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Pass {
    /// Every accepted connection, round robin (mode `handoff-socket`).
    Socket,
    /// The one listening socket, to every worker (mode `handoff-listener`).
    Listener,
    /// One SO_REUSEPORT listener per worker (mode `handoff-reuseport`).
    Reuseport,
}

/// How the workers of `handoff --pass listener` accept on the one listening
/// socket they share (handoff's `--accept` flag, passed on to each worker).
///
/// Who gets a new connection is decided by whom the kernel wakes, so each
/// strategy is a choice of wait queue. (Cloudflare, "Why does one NGINX
/// worker take all the load?": epoll wakes waiters last in, first out, a
/// blocking `accept(2)` first in, first out.)
///
/// `drain` stays the default although it spreads connections unevenly (and
/// `exclusive` more so, one connection at a time): it is
/// what an event-loop server does out of the box (tokio, Node.js's
/// `SCHED_NONE`), which is what the `handoff-listener` mode stands for in the
/// comparison, and it costs least. Measured with 4 workers on 2 shared
/// cores, 5 rounds (README, "Who takes a connection"): one new connection
/// at a time, Jain's index of the connection shares is 0.58–0.90 with
/// `drain` and 1.00 with `blocking`; 40 keep-alive connections opened at
/// once, 0.25–0.56 with `drain`, 0.78–1.00 with `single`, 0.85–0.95 with
/// `blocking`; but the server's CPU per 1,000 new-connection requests is
/// 61–65 ms with `drain`, 65–85 ms with `blocking` and 87–92 ms with
/// `single`. No strategy is the fairest under both loads; the fair ones
/// are one flag away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Accept {
    /// Each worker's event loop watches the listener (`epoll_ctl(EPOLLIN |
    /// EPOLLET)` in tokio); a new connection wakes every waiting worker,
    /// and each woken worker calls `accept4` until EAGAIN. The worker that
    /// wakes first takes the whole queue; the others find it empty.
    Drain,
    /// As `drain`, but after each `accept4` the worker yields: to other
    /// processes (`nanosleep` of 1 ns, which the timer slack makes ~50 µs)
    /// and to its own event loop, before it accepts again (libuv's
    /// `UV_TCP_SINGLE_ACCEPT`). Every waiting worker is still woken.
    Single,
    /// A thread per worker waits in `epoll_wait` on an epoll fd of its own,
    /// where the listener is registered with `EPOLLEXCLUSIVE`: the kernel
    /// wakes one waiting thread per connection (not all), the first in the
    /// order the workers registered, which takes one connection (`accept4`)
    /// and hands it to its worker's runtime.
    Exclusive,
    /// A thread per worker blocked in `accept(2)` (the listener made
    /// blocking): the kernel keeps one FIFO queue of blocked acceptors and
    /// wakes the one that has waited longest, one per connection; it hands
    /// the stream to its worker's runtime.
    Blocking,
}

impl Mode {
    /// Every mode, in the order the results list them.
    pub const ALL: [Mode; 4] = [
        Mode::Proxy,
        Mode::Handoff(Pass::Socket),
        Mode::Handoff(Pass::Listener),
        Mode::Handoff(Pass::Reuseport),
    ];

    /// The mode's name in every output line and flag.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Proxy => "proxy",
            Mode::Handoff(Pass::Socket) => "handoff-socket",
            Mode::Handoff(Pass::Listener) => "handoff-listener",
            Mode::Handoff(Pass::Reuseport) => "handoff-reuseport",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// The worker's `--mode` flag takes the names of [`Mode::name`].
impl clap::ValueEnum for Mode {
    fn value_variants<'a>() -> &'a [Self] {
        &Mode::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of the output lines are the ones the results and scripts
    /// know, and the worker's flag parses each of them back.
    #[test]
    fn mode_names_round_trip() {
        let names: Vec<&str> = Mode::ALL.iter().map(|mode| mode.name()).collect();
        assert_eq!(
            names,
            [
                "proxy",
                "handoff-socket",
                "handoff-listener",
                "handoff-reuseport"
            ]
        );
        for mode in Mode::ALL {
            assert_eq!(
                <Mode as clap::ValueEnum>::from_str(mode.name(), false),
                Ok(mode)
            );
            assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{mode}\""));
        }
    }
}
