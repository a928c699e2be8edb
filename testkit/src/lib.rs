//! The test kit of the end-to-end tests and benches: start the real binaries and
//! kill them on drop, talk HTTP to them, read `/proc`, and run the test bodies
//! every mode shares. A dev-dependency only (`publish = false`): nothing here is
//! built into `proxy`, `handoff` or `loadgen`.
//!
//! A test starts the real binary with [`Cluster::start`], which waits for its
//! `ready` line and, when dropped, SIGKILLs the master and every worker it has
//! seen, so a failing test leaves no process behind. Each mode's test file is
//! then a list of one-line tests calling the `assert_*` bodies of [`contract`].
//!
//! # Layout
//! - [`process`]: [`Cluster`] (master and workers, killed on drop, on
//!   [`launch::Server`], the start the harness shares),
//!   [`Starting`] (a master not ready yet), [`run_expect_exit`], signals
//!   ([`Signal`], sent with kill(2) through nix)
//! - [`http`]: the blocking HTTP/1.1 client: [`get`], [`KeepAlive`],
//!   [`Clients`], [`send_raw`], [`read_answer`], [`Response`]
//! - [`proc`]: `/proc` readings ([`fd_count`], [`is_alive`], [`cpu_time`]), fd
//!   exhaustion ([`exhaust_fds`], [`set_nofile_limit`]) and [`wait_until`]
//! - [`build`]: [`workspace_bin`], the path of another package's binary,
//!   built in the profile of the running test or bench
//! - [`impostor`]: [`Impostor`], the test speaking to the master on a stopped
//!   worker's channel, taken over with `pidfd_getfd`
//! - [`netns`]: [`in_new_netns`], a test body run in a network namespace of
//!   its own (its own loopback and sysctls)
//! - [`loadgen`]: [`run_loadgen`], a load run whose JSON the test reads
//! - [`child`]: [`wait_or_kill`], a child of the test's own waited for with
//!   a deadline
//! - [`contract`]: the shared test bodies, [`start_two_workers`] and the
//!   `assert_*` functions, with the deadlines they allow
//!
//! Everything is re-exported here, so a test writes `testkit::get`.
#![deny(missing_docs)]

pub mod build;
pub mod child;
pub mod contract;
pub mod http;
pub mod impostor;
pub mod loadgen;
pub mod netns;
pub mod proc;
pub mod process;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use build::workspace_bin;
pub use child::wait_or_kill;
pub use contract::*;
pub use http::{
    Clients, HTTP_TIMEOUT, KeepAlive, RawClient, Response, get, pipelined_gets, read_answer,
    send_raw,
};
pub use impostor::Impostor;
pub use loadgen::run_loadgen;
pub use netns::in_new_netns;
pub use nix::sys::signal::Signal;
pub use proc::{
    POLL_INTERVAL, accept_queue, cpu_time, exhaust_fds, exists, fd_count, has_exited, is_alive,
    is_stopped, set_nofile_limit, wait_until,
};
pub use process::{Cluster, READY_TIMEOUT, Ready, ReadyWorker, Starting, run_expect_exit};

/// Locks `mutex`, ignoring poisoning: the data (pids, text) stays usable after a
/// panic elsewhere, and the cleanup on drop must not panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
