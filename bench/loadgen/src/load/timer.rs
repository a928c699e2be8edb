//! A precise sleep for the open loop, on a `timerfd`.
//!
//! Open-loop latency counts from each request's intended start, so the load
//! generator's own lateness in sending counts against the server. tokio's timer
//! counts whole milliseconds (and so does `epoll_wait`'s timeout): a request due
//! in 0.2 ms would go out up to a millisecond late, adding about half a
//! millisecond to every corrected latency on a server that answers in 0.1 ms.
//! A `timerfd` armed with the exact wait becomes readable within microseconds of
//! it, and tokio watches it like a socket. Each open-loop connection has one, so
//! an open-loop run holds two fds per connection.
//!
//! [`set_thread_timer_slack`] also asks the kernel not to defer this thread's
//! timer expiries (by default it may, by 50 µs, to batch wake-ups).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Waits shorter than this are not worth a timer: the request goes out at once.
const MIN_SLEEP: Duration = Duration::from_micros(10);

/// A one-shot timer that wakes at a precise instant.
pub struct PreciseTimer {
    /// The `timerfd`, registered with the thread's tokio reactor.
    fd: AsyncFd<OwnedFd>,
}

impl PreciseTimer {
    /// Creates the `timerfd` (CLOCK_MONOTONIC, the clock of [`Instant`]).
    pub fn new() -> io::Result<PreciseTimer> {
        // SAFETY: timerfd_create takes no pointers; a negative result is an error.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: timerfd_create just returned this fd, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the AsyncFd owns the OwnedFd, which keeps the timerfd open and
        // unchanged until the AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(PreciseTimer { fd })
    }

    /// Sleeps until `due` (at once if it has passed).
    pub async fn sleep_until(&self, due: Instant) -> io::Result<()> {
        let wait = due.saturating_duration_since(Instant::now());
        if wait < MIN_SLEEP {
            return Ok(());
        }
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // Re-arming also resets the expiry count of an earlier wait.
        // SAFETY: `spec` is a valid itimerspec for the call's duration; the old
        // value is not asked for (null).
        let armed =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if armed < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut ready = self.fd.readable().await?;
            let read = ready.try_io(|fd| {
                let mut expiries = [0u8; 8];
                // SAFETY: reads at most 8 bytes into the 8-byte buffer; a timerfd
                // read returns the u64 expiry count, or EAGAIN before expiry.
                let read = unsafe {
                    libc::read(fd.as_raw_fd(), expiries.as_mut_ptr().cast(), expiries.len())
                };
                if read < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match read {
                Ok(result) => return result,
                // EAGAIN: a readiness left over from an earlier wait; this one
                // has not expired yet.
                Err(_would_block) => continue,
            }
        }
    }
}

/// Sleeps until `due` (at once if it has passed): on `timer` when there is
/// one and it works, else on tokio's millisecond timer, less precise (no
/// timerfd left: fd exhaustion shows in the errors anyway). The open loops'
/// one way of waiting for a request's due time.
pub async fn sleep_until_due(timer: Option<&PreciseTimer>, due: Instant) {
    if Instant::now() >= due {
        return;
    }
    if let Some(timer) = timer {
        if timer.sleep_until(due).await.is_ok() {
            return;
        }
    }
    tokio::time::sleep_until(due.into()).await;
}

/// Sets the calling thread's timer slack to 1 ns (prctl(2) `PR_SET_TIMERSLACK`),
/// so that its timers fire when asked rather than up to 50 µs later. A failure
/// only costs precision, so it is ignored.
pub fn set_thread_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timer wakes after the instant asked, and well within a millisecond of
    /// it most times (the median of 20 sleeps of 300 µs; generous for a loaded
    /// machine).
    #[test]
    fn wakes_on_time() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        set_thread_timer_slack();
        let mut late = runtime.block_on(async {
            let timer = PreciseTimer::new().expect("timerfd");
            let mut late = Vec::new();
            for _ in 0..20 {
                let due = Instant::now() + Duration::from_micros(300);
                timer.sleep_until(due).await.expect("sleep");
                let now = Instant::now();
                assert!(now >= due);
                late.push(now - due);
            }
            late
        });
        late.sort();
        assert!(
            late[10] < Duration::from_micros(900),
            "median lateness {:?}",
            late[10]
        );
    }
}
