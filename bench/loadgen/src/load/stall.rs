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
//! - when loadgen is interrupted by SIGINT, SIGTERM or SIGHUP: a handler,
//!   installed for the run, sends SIGCONT to the stopped pid (kill(2) is
//!   async-signal-safe) and then dies of the signal as it would have.
//!
//! Only SIGKILL of loadgen itself leaves the process stopped; a cluster's
//! master then SIGKILLs and replaces the silent worker after its
//! `--worker-timeout`.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::Pid;

use crate::report::Stall;

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
        install_handler()?;
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

/// The signals that end loadgen early and must not leave a process stopped.
const ENDING_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// Installs [`on_ending_signal`] for [`ENDING_SIGNALS`].
fn install_handler() -> nix::Result<()> {
    let action = signal::SigAction::new(
        SigHandler::Handler(on_ending_signal),
        // SA_RESETHAND: the handler runs once, then the default action is back
        // for the re-raise below.
        signal::SaFlags::SA_RESETHAND,
        signal::SigSet::empty(),
    );
    for sig in ENDING_SIGNALS {
        // SAFETY: the handler only calls async-signal-safe functions (kill(2),
        // raise(3)) and reads an atomic; it replaces the default action, and
        // no other code of loadgen installs a handler for these signals.
        unsafe { signal::sigaction(sig, &action) }?;
    }
    Ok(())
}

/// Continues the stopped process, if any, then dies of `signal` as loadgen
/// would have without the handler (SA_RESETHAND restored the default action).
extern "C" fn on_ending_signal(signal: libc::c_int) {
    let pid = STOPPED_PID.load(Ordering::SeqCst);
    // SAFETY: kill(2) and raise(3) are async-signal-safe; `pid` is a process
    // this loadgen stopped (or 0, skipped).
    unsafe {
        if pid > 0 {
            libc::kill(pid, libc::SIGCONT);
        }
        libc::raise(signal);
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
}
