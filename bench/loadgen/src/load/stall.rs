//! `--stop PID --stop-after T [--stop-after T]... --stop-for D`: the stalled
//! worker experiment. A thread sends SIGSTOP (kill(2)) to one process at each
//! `T` after the measurement starts and SIGCONT `D` later, so the report shows
//! who waits behind a worker that is alive, holds its sockets, but does not run
//! (a long GC pause, a page-fault storm, a debugger): with a shared accept
//! queue the others take the new connections; with one queue per worker
//! (`SO_REUSEPORT`) its share waits.
//!
//! A process loadgen stopped is never left stopped: the SIGCONT is sent
//!
//! - when the stall's time is up (the normal case);
//! - when the run ends early (an error, a panic: [`Stopper`]'s `Drop` cancels
//!   the thread, whose guard continues the process);
//! - when loadgen gets a signal that ends it (SIGINT, SIGTERM, SIGHUP,
//!   SIGQUIT, SIGUSR1, SIGALRM, ...: every one that can be caught, see
//!   [`FATAL_SIGNALS`]): a handler, installed for the run, sends SIGCONT to
//!   the stopped pid (kill(2) is async-signal-safe) and then loadgen dies of
//!   the signal as it would have.
//!
//! Only SIGKILL of loadgen itself leaves the process stopped; a cluster's
//! master then SIGKILLs and replaces the silent worker after its
//! `--worker-timeout`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use runs::Stall;

/// The pid loadgen has stopped and not yet continued, 0 for none: what the
/// signal handler continues. Written by the stopper thread only.
static STOPPED_PID: AtomicI32 = AtomicI32::new(0);

/// What to stop, when, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// The process to send SIGSTOP and SIGCONT to.
    pub pid: u32,
    /// When each stall begins, after the measurement starts; ascending.
    pub after: Vec<Duration>,
    /// How long each stall lasts.
    pub stop_for: Duration,
}

impl Stop {
    /// Checks the plan against the run's `duration`: at least one stall, each
    /// beginning inside the measurement, in order, not overlapping the last.
    pub fn check(&self, duration: Duration) -> Result<(), String> {
        if self.after.is_empty() {
            return Err("--stop needs at least one --stop-after".to_owned());
        }
        let mut free_from = Duration::ZERO;
        for &after in &self.after {
            if after >= duration {
                return Err(format!(
                    "--stop-after {after:?} must be less than --duration {duration:?}"
                ));
            }
            if after < free_from {
                return Err(format!(
                    "--stop-after {after:?} begins before the stall before it has ended \
                     (give them in order, at least --stop-for {:?} apart)",
                    self.stop_for
                ));
            }
            free_from = after.saturating_add(self.stop_for);
        }
        crate::load::kill::check_exists("--stop", self.pid)
    }
}

/// The thread that stops and continues the process.
pub struct Stopper {
    /// Sending on it (or dropping it) ends the plan early, continuing the process.
    cancel: Option<Sender<()>>,
    /// The thread, which returns the stalls it made.
    thread: Option<JoinHandle<Vec<Stall>>>,
}

impl Stopper {
    /// Installs the signal handler and starts the thread: each stall at
    /// `measure_start + after`; times in the [`Stall`]s count from `origin`,
    /// the run's start.
    pub fn start(stop: Stop, origin: Instant, measure_start: Instant) -> anyhow::Result<Stopper> {
        install_guard().context("install the --stop signal guard")?;
        let (cancel, cancelled) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("loadgen-stop".to_owned())
            .spawn(move || {
                let mut stalls = Vec::with_capacity(stop.after.len());
                for &after in &stop.after {
                    let mut stall = Stall {
                        pid: stop.pid,
                        stopped_at_ms: None,
                        continued_at_ms: None,
                        error: None,
                    };
                    if wait_until(&cancelled, measure_start + after).is_err() {
                        stall.error = Some("the run ended before --stop-after".to_owned());
                        stalls.push(stall);
                        continue;
                    }
                    let stopped = match Stopped::stop(stop.pid) {
                        Ok(stopped) => stopped,
                        // ESRCH: the process is gone; EPERM: not ours to stop.
                        Err(err) => {
                            stall.error = Some(format!("SIGSTOP: {err}"));
                            stalls.push(stall);
                            continue;
                        }
                    };
                    stall.stopped_at_ms = Some(millis(origin.elapsed()));
                    // Cancelled or not, the process is continued now.
                    let _ = wait_until(&cancelled, Instant::now() + stop.stop_for);
                    match stopped.resume() {
                        Ok(()) => stall.continued_at_ms = Some(millis(origin.elapsed())),
                        Err(err) => stall.error = Some(format!("SIGCONT: {err}")),
                    }
                    stalls.push(stall);
                }
                stalls
            })?;
        Ok(Stopper {
            cancel: Some(cancel),
            thread: Some(thread),
        })
    }

    /// Ends the plan (a stall under way is cut short, the process continued)
    /// and returns the stalls, one per `--stop-after`.
    pub fn stop(mut self) -> Vec<Stall> {
        self.finish()
    }

    fn finish(&mut self) -> Vec<Stall> {
        // The thread may have ended already: then nobody listens.
        if let Some(cancel) = self.cancel.take() {
            let _ = cancel.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(stalls)) => stalls,
            // A panic in the thread unwound through its guard, which continued
            // the process.
            Some(Err(_)) | None => Vec::new(),
        }
    }
}

impl Drop for Stopper {
    /// A run that ends early (an error, a panic) still continues the process
    /// before loadgen exits.
    fn drop(&mut self) {
        self.finish();
    }
}

/// Waits until `due`; `Err` if cancelled first (or the canceller is gone).
fn wait_until(cancelled: &mpsc::Receiver<()>, due: Instant) -> Result<(), ()> {
    match cancelled.recv_timeout(due.saturating_duration_since(Instant::now())) {
        Err(RecvTimeoutError::Timeout) => Ok(()),
        Ok(()) | Err(RecvTimeoutError::Disconnected) => Err(()),
    }
}

/// A process loadgen has stopped: dropping it sends SIGCONT, so a panic
/// continues it too.
struct Stopped {
    pid: Pid,
}

impl Stopped {
    /// Sends SIGSTOP to `pid` and remembers it for the signal handler.
    fn stop(pid: u32) -> nix::Result<Stopped> {
        let pid = i32::try_from(pid)
            .ok()
            .filter(|&raw| raw > 0)
            .map(Pid::from_raw)
            .ok_or(nix::errno::Errno::ESRCH)?;
        // Published before the SIGSTOP: a signal between the two continues a
        // process that is not stopped yet, which is harmless.
        STOPPED_PID.store(pid.as_raw(), Ordering::SeqCst);
        match signal::kill(pid, Signal::SIGSTOP) {
            Ok(()) => Ok(Stopped { pid }),
            Err(err) => {
                STOPPED_PID.store(0, Ordering::SeqCst);
                Err(err)
            }
        }
    }

    /// Sends SIGCONT and forgets the pid.
    fn resume(self) -> nix::Result<()> {
        let sent = signal::kill(self.pid, Signal::SIGCONT);
        STOPPED_PID.store(0, Ordering::SeqCst);
        std::mem::forget(self);
        sent
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // Only on unwinding: `resume` forgets `self`. ESRCH (gone) is fine.
        let _ = signal::kill(self.pid, Signal::SIGCONT);
        STOPPED_PID.store(0, Ordering::SeqCst);
    }
}

/// The signals whose default action ends loadgen ("Term" or "Core" in
/// signal(7)) and that a handler can catch: each would otherwise leave the
/// stopped process stopped. That is every one but SIGKILL, and the real-time
/// signals besides ([`guarded_signals`]). Left alone:
///
/// - SIGKILL and SIGSTOP: no handler can catch them;
/// - SIGTSTP, SIGTTIN, SIGTTOU: they stop loadgen, not end it; its stall
///   timer stops with it, and the SIGCONT goes out once loadgen runs again;
/// - SIGCHLD, SIGCONT, SIGURG, SIGWINCH: ignored by default.
///
/// A signal loadgen already ignores is not guarded either ([`install_guard`]):
/// it does not end loadgen, and a handler would make it. So SIGPIPE, which
/// Rust's runtime ignores before `main` (a write to a closed socket is an
/// EPIPE, counted as a reset), stays ignored, as do SIGHUP under `nohup` and
/// SIGINT and SIGQUIT in a shell's background job.
const FATAL_SIGNALS: [libc::c_int; 22] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGUSR1,
    libc::SIGSEGV,
    libc::SIGUSR2,
    libc::SIGPIPE,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGSTKFLT,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGSYS,
];

/// The signals that raise a fault where an instruction failed: on returning
/// from the handler the instruction runs again and faults again, into the
/// action restored meanwhile.
const FAULT_SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// Signal numbers on Linux run from 1 to 64 (`_NSIG` − 1).
const SIGNAL_SLOTS: usize = 65;

/// The action each guarded signal had before the guard, indexed by signal:
/// the default, except SIGSEGV and SIGBUS, which Rust's runtime handles (to
/// report a stack overflow). The first guard installed in the process sets it.
static PREVIOUS_ACTIONS: [OnceLock<libc::sigaction>; SIGNAL_SLOTS] =
    [const { OnceLock::new() }; SIGNAL_SLOTS];

/// Every signal the guard covers: [`FATAL_SIGNALS`], then the real-time
/// signals glibc leaves to programs (SIGRTMIN to SIGRTMAX: their default
/// action is "Term"; glibc keeps the two below SIGRTMIN for its threads).
fn guarded_signals() -> impl Iterator<Item = libc::c_int> {
    FATAL_SIGNALS
        .into_iter()
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
}

/// Installs [`on_fatal_signal`] for every [`guarded_signals`] that loadgen
/// does not ignore, keeping the action each had in [`PREVIOUS_ACTIONS`].
fn install_guard() -> std::io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, no flags, an
    // empty mask); sigaction(2) below only reads `guard` and writes `previous`,
    // both owned here. The handler only calls async-signal-safe functions
    // (kill(2), sigaction(2), raise(3)), reads atomics and statics already set,
    // and no other code of loadgen installs a handler for these signals.
    unsafe {
        let mut guard: libc::sigaction = std::mem::zeroed();
        guard.sa_sigaction = on_fatal_signal as *const () as libc::sighandler_t;
        // SA_SIGINFO: the handler tells a fault from a signal sent. SA_ONSTACK:
        // a stack overflow's SIGSEGV needs the alternate stack that Rust's
        // runtime gives each thread.
        guard.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut guard.sa_mask);
        for signal in guarded_signals() {
            let Some(slot) = PREVIOUS_ACTIONS.get(signal as usize) else {
                continue;
            };
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut previous) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if previous.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            // A second run in one process finds its own guard: the first
            // previous action is the one to keep.
            let _ = slot.set(previous);
            if libc::sigaction(signal, &guard, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Continues the stopped process, if any, then lets `signal` end loadgen as
/// it would have without the guard:
///
/// - a fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE raised by the kernel for an
///   instruction, `si_code` > 0): the action from before the guard is put
///   back and the handler returns, so the instruction faults again into it
///   (Rust's runtime then reports a stack overflow and aborts, or the default
///   action ends loadgen);
/// - any other (sent by kill(2), or SIGABRT from abort(3)): the default
///   action is put back and the signal raised again; it is blocked while the
///   handler runs, so it ends loadgen as the handler returns. A `kill -SEGV`
///   too: Rust's handler would have ignored it once, but signal(7) says it
///   ends the process, and the stopped process has just been continued.
extern "C" fn on_fatal_signal(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    let pid = STOPPED_PID.load(Ordering::SeqCst);
    // SAFETY: kill(2), sigaction(2) and raise(3) are async-signal-safe; `pid`
    // is a process this loadgen stopped (or 0, skipped); `info` is the
    // kernel's siginfo for this delivery (SA_SIGINFO), read only if not null;
    // the previous action was stored before this handler was installed.
    unsafe {
        if pid > 0 {
            libc::kill(pid, libc::SIGCONT);
        }
        let fault = FAULT_SIGNALS.contains(&signal) && !info.is_null() && (*info).si_code > 0;
        let previous = PREVIOUS_ACTIONS
            .get(signal as usize)
            .and_then(OnceLock::get);
        match previous {
            Some(previous) if fault => {
                libc::sigaction(signal, previous, std::ptr::null_mut());
            }
            _ => {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
                libc::raise(signal);
            }
        }
    }
}

/// A duration in milliseconds, with µs precision.
fn millis(duration: Duration) -> f64 {
    (duration.as_micros() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(after_ms: &[u64], for_ms: u64) -> Stop {
        Stop {
            pid: std::process::id(),
            after: after_ms
                .iter()
                .copied()
                .map(Duration::from_millis)
                .collect(),
            stop_for: Duration::from_millis(for_ms),
        }
    }

    /// Stalls begin inside the run, in order, without overlapping.
    #[test]
    fn checks_the_plan() {
        let duration = Duration::from_secs(3);
        assert_eq!(stop(&[500, 1500], 500).check(duration), Ok(()));
        assert_eq!(stop(&[500, 1000], 500).check(duration), Ok(()));
        assert!(stop(&[], 500).check(duration).is_err());
        assert!(stop(&[3000], 500).check(duration).is_err());
        assert!(stop(&[1000, 1200], 500).check(duration).is_err());
        assert!(stop(&[1500, 500], 500).check(duration).is_err());
        let gone = Stop {
            pid: u32::MAX,
            ..stop(&[500], 500)
        };
        assert!(
            gone.check(duration)
                .expect_err("no such pid")
                .contains("--stop")
        );
    }

    /// The signals the guard leaves alone, each for its reason in
    /// [`FATAL_SIGNALS`]'s doc.
    const UNGUARDED_SIGNALS: [libc::c_int; 9] = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGCHLD,
        libc::SIGCONT,
        libc::SIGURG,
        libc::SIGWINCH,
    ];

    /// Regression (issue 19, item 8): the guard covers every signal whose
    /// default action ends loadgen; the ones it leaves alone are those no
    /// handler can catch, that stop rather than end it, or that are ignored
    /// by default. SIGUSR1, SIGUSR2 and SIGALRM used to leave the process
    /// stopped.
    #[test]
    fn the_guard_covers_every_signal_that_ends_loadgen() {
        let guarded: Vec<libc::c_int> = guarded_signals().collect();
        for signal in 1..=libc::SIGRTMAX() {
            // glibc's own, below SIGRTMIN: not for programs.
            if (32..libc::SIGRTMIN()).contains(&signal) {
                continue;
            }
            let covered = guarded.contains(&signal);
            let left = UNGUARDED_SIGNALS.contains(&signal);
            assert!(
                covered != left,
                "signal {signal}: guarded {covered}, left alone {left}"
            );
            assert!((signal as usize) < SIGNAL_SLOTS, "signal {signal}");
        }
        for signal in [
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGALRM,
            libc::SIGRTMIN(),
        ] {
            assert!(guarded.contains(&signal), "{signal}");
        }
        assert!(FAULT_SIGNALS.iter().all(|signal| guarded.contains(signal)));
    }
}
