//! Start a binary of the suite (a master, or a peer that speaks the same
//! lines), read its `ready` line and stop it by its pid: the one way, shared
//! by the harness (`bench/suite`, every comparison and lesson) and the test
//! kit (`testkit`, every end-to-end test). Before this crate it existed three
//! times (a shell function, a Python class and the test kit's own), each
//! with its own idea of a deadline and of which pid to stop.
//!
//! The contract it reads is ARCHITECTURE.md's "Output": one JSON object per
//! line on stdout, the first `ready` naming the master and its workers;
//! `respawn`, `handover` and the others after it.
//!
//! # Layout
//! - [`ready`]: [`Ready`] and [`ReadyWorker`], the `ready` line as types.
//! - [`server`]: [`Server`], a started binary: its stdout line by line,
//!   [`Server::ready`] with a deadline, the workers it announced (each with
//!   its start time, so that a reused pid is never signalled), signals by
//!   pid, [`Server::stop`] (SIGTERM, then SIGKILL after a grace), and SIGKILL
//!   of everything still running when it is dropped.
//! - [`netns`]: [`netns::in_new_netns`], a body run in a network namespace
//!   of its own (its own loopback and sysctls), where its servers start.
//! - [`cgroup`]: [`cgroup::MemoryCgroup`], a memory cgroup of a server's
//!   own, so that the kernel memory its sockets take is counted apart.
#![deny(missing_docs)]

pub mod cgroup;
pub mod netns;
pub mod ready;
pub mod server;

pub use ready::{Ready, ReadyWorker};
pub use server::{ReadyError, Server, Stderr, with_listen};
