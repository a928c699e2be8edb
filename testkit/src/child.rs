//! A child process the test started itself (not a cluster: loadgen, or a
//! master run with a changed environment), waited for with a deadline.

use std::process::{Child, ExitStatus};
use std::time::Duration;

use crate::wait_until;

/// Waits up to `timeout` for `child` to exit and reaps it; if it is still
/// running then, SIGKILLs and reaps it, and returns `None`.
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if status.is_none() {
        // Our child, not reaped yet: its pid is still its own.
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}
