//! `--kill PID --kill-after D`: the fault experiment. A thread sends SIGKILL
//! (kill(2)) to one process once, `D` after the measurement starts, so the
//! report shows what a worker's death costs under load: failed requests, and
//! (from `workers.by_pid[].first_ms`) when its successor first answered.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use runs::Fault;

/// What to kill, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kill {
    /// The process to send SIGKILL to.
    pub pid: u32,
    /// How long after the measurement starts (after the warm-up).
    pub after: Duration,
}

/// Checks that `pid` (given with `flag`) exists now (kill(2) with signal 0),
/// so that a stale pid is a usage error before the run rather than a fault
/// that never happened.
pub fn check_exists(flag: &str, pid: u32) -> Result<(), String> {
    let target = pid_of(pid).ok_or_else(|| format!("{flag} {pid}: not a pid"))?;
    // Signal 0 sends nothing; kill(2) only checks the pid.
    match signal::kill(target, None) {
        Ok(()) => Ok(()),
        // EPERM: it exists but is another user's; the real kill will say so.
        Err(Errno::EPERM) => Ok(()),
        // ESRCH: no such process.
        Err(_) => Err(format!("{flag} {pid}: no such process")),
    }
}

/// `pid` as kill(2) takes it; `None` for 0 and anything beyond `pid_t`, which
/// would name a process group or every process rather than one process.
fn pid_of(pid: u32) -> Option<Pid> {
    i32::try_from(pid)
        .ok()
        .filter(|&raw| raw > 0)
        .map(Pid::from_raw)
}

/// The thread that waits for the moment and kills.
pub struct Killer {
    /// Dropping or sending on it cancels a kill not yet sent.
    cancel: Sender<()>,
    /// The thread, which returns what it did.
    thread: JoinHandle<Fault>,
}

impl Killer {
    /// Starts the thread: SIGKILL to `kill.pid` at `measure_start + kill.after`;
    /// times in the [`Fault`] count from `origin`, the run's start.
    pub fn start(kill: Kill, origin: Instant, measure_start: Instant) -> std::io::Result<Killer> {
        let (cancel, cancelled) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("loadgen-kill".to_owned())
            .spawn(move || {
                let due = measure_start + kill.after;
                let wait = due.saturating_duration_since(Instant::now());
                let mut fault = Fault {
                    pid: kill.pid,
                    at_ms: None,
                    error: None,
                };
                match cancelled.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                        fault.error = Some("the run ended before --kill-after".to_owned());
                        return fault;
                    }
                }
                let at = origin.elapsed();
                // The pid was checked at start; if it has been reused since,
                // that is the caller's pid to answer for, as with kill(1).
                let sent = pid_of(kill.pid)
                    .ok_or(Errno::ESRCH)
                    .and_then(|target| signal::kill(target, Signal::SIGKILL));
                match sent {
                    Ok(()) => fault.at_ms = Some(at.as_micros() as f64 / 1000.0),
                    // ESRCH: it died on its own first; EPERM: not ours to kill.
                    Err(err) => fault.error = Some(format!("kill: {err}")),
                }
                fault
            })?;
        Ok(Killer { cancel, thread })
    }

    /// Cancels the kill if it has not been sent, and returns what happened.
    pub fn stop(self) -> Fault {
        // The thread may already have ended (after the kill): then nobody listens.
        let _ = self.cancel.send(());
        self.thread
            .join()
            .expect("the --kill thread does not panic: it only waits and calls kill(2)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process exists; a pid beyond pid_max does not.
    #[test]
    fn checks_that_the_pid_exists() {
        assert_eq!(check_exists("--kill", std::process::id()), Ok(()));
        assert!(check_exists("--kill", u32::MAX).is_err());
        assert!(check_exists("--kill", 0).is_err());
        assert!(check_exists("--kill", 4_194_305).is_err());
    }

    /// A kill not yet due when the run ends is cancelled and says so.
    #[test]
    fn cancels_a_kill_not_yet_due() {
        let now = Instant::now();
        let kill = Kill {
            pid: std::process::id(),
            after: Duration::from_secs(3600),
        };
        let fault = Killer::start(kill, now, now).expect("start").stop();
        assert_eq!(fault.at_ms, None);
        assert!(fault.error.is_some());
    }
}
