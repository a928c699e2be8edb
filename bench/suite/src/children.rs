//! Every process the harness starts (a master, nginx, loadgen, strace) is
//! stopped by its pid on every way out: a [`Registration`] guard per child,
//! and [`install`]'s thread that, on SIGINT, SIGTERM or SIGHUP to the
//! harness, stops every registered child (SIGTERM, then SIGKILL after
//! [`STOP_GRACE`]) and exits 128 + the signal, as the scripts' `trap` did.
//!
//! How the signal is caught: a handler (`sigaction(2)`) writes the
//! signal's number to a pipe, the one thing a handler may safely do
//! (`write(2)` is async-signal-safe), and a thread reading the pipe does
//! the rest. A handler, unlike a blocked signal mask, is not inherited
//! across `execve(2)`: the servers keep their own signals. A pid is
//! registered with its start time (field 22 of `/proc/PID/stat`), so that a
//! pid reused after its process was reaped is never signalled.

use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::unistd::Pid;

/// How long a child may take to stop after its SIGTERM before SIGKILL: a
/// master's stop takes at most its grace period (5 s by default) and half a
/// second.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How often a wait for a child's exit looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The children to stop, with their start times.
static CHILDREN: Mutex<Vec<(u32, Option<u64>)>> = Mutex::new(Vec::new());

/// The write end of the pipe the handler writes a caught signal to; -1
/// before [`install`].
static PIPE: AtomicI32 = AtomicI32::new(-1);

/// The handler: the signal's number down the pipe, nothing else.
extern "C" fn caught(signal: libc::c_int) {
    let byte = signal as u8;
    // SAFETY: write(2) is async-signal-safe; PIPE is an fd this process
    // owns for its whole life (never closed), and `byte` outlives the call.
    unsafe { libc::write(PIPE.load(Ordering::Relaxed), (&raw const byte).cast(), 1) };
}

/// Catches SIGINT, SIGTERM and SIGHUP and starts the thread that, on one of
/// them, stops every registered child and exits 128 + the signal.
pub fn install() -> anyhow::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two new fds into `fds`, which has room for them.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    // SAFETY: pipe2 just made this fd; the reader thread owns it alone.
    let mut reader = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    PIPE.store(fds[1], Ordering::Relaxed);
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            if reader.read_exact(&mut byte).is_err() {
                return;
            }
            stop_all();
            std::process::exit(128 + i32::from(byte[0]));
        })
        .context("start the signal thread")?;
    let action = SigAction::new(
        SigHandler::Handler(caught),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only writes to a pipe (async-signal-safe).
        unsafe { sigaction(signal, &action) }.with_context(|| format!("catch {signal}"))?;
    }
    Ok(())
}

/// A registered child: stopped by [`install`]'s thread on a signal;
/// unregistered when dropped (once the caller has stopped and reaped it).
#[must_use = "a child is unregistered when its registration is dropped"]
pub struct Registration {
    /// The pid registered.
    pid: u32,
}

/// Registers `pid`, a process the harness started (or a master a wrapper
/// started for it), to be stopped on a signal.
pub fn register(pid: u32) -> Registration {
    let start = cluster::procfs::read(pid).ok().map(|r| r.start_ticks);
    lock().push((pid, start));
    Registration { pid }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock().retain(|(pid, _)| *pid != self.pid);
    }
}

/// Stops `child`, our child not yet reaped (so its pid is its own): SIGTERM,
/// [`STOP_GRACE`] for it to exit, then SIGKILL; reaped either way.
pub fn stop_child(child: &mut std::process::Child) {
    if let Ok(None) = child.try_wait() {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(POLL_INTERVAL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// SIGTERM to every registered child still running as itself, then
/// [`STOP_GRACE`] for them to go, then SIGKILL to what is left.
fn stop_all() {
    let children = lock().clone();
    let running = |&(pid, start): &(u32, Option<u64>)| {
        start.is_some() && cluster::procfs::read(pid).ok().map(|r| r.start_ticks) == start
    };
    let signal = |signal: Signal| {
        for &(pid, start) in &children {
            if running(&(pid, start)) {
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = kill(Pid::from_raw(pid), signal);
                }
            }
        }
    };
    signal(Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while children.iter().any(running) && Instant::now() < deadline {
        thread::sleep(POLL_INTERVAL);
    }
    signal(Signal::SIGKILL);
}

/// The registry, usable after a panic elsewhere.
fn lock() -> MutexGuard<'static, Vec<(u32, Option<u64>)>> {
    CHILDREN.lock().unwrap_or_else(PoisonError::into_inner)
}
