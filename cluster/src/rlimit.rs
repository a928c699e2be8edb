//! RLIMIT_NOFILE, the per-process fd limit at the heart of the fd-cost
//! trade-off: the one place every crate reads or sets it (getrlimit(2),
//! setrlimit(2), prlimit(2)).

use std::io;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// An RLIMIT_NOFILE: the soft limit, which the process may raise up to the
/// hard one, and the hard limit, which only privilege may raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The limit in force: an fd numbered `soft` or above fails with EMFILE.
    pub soft: u64,
    /// The ceiling of `soft` for an unprivileged process.
    pub hard: u64,
}

/// This process's RLIMIT_NOFILE (getrlimit(2)).
pub fn get() -> io::Result<NofileLimit> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(NofileLimit { soft, hard })
}

/// Sets this process's soft RLIMIT_NOFILE to `soft` (setrlimit(2)), and the
/// hard limit too when it is below, which needs privilege. Children started
/// afterwards inherit it unless they set their own ([`set_in_child`]).
pub fn set_soft(soft: u64) -> io::Result<()> {
    let NofileLimit { hard, .. } = get()?;
    Ok(setrlimit(Resource::RLIMIT_NOFILE, soft, hard.max(soft))?)
}

/// Raises this process's soft limit to its hard limit, as a load generator
/// that holds one fd per connection wants; returns the limit in force after,
/// which is the old one when raising failed (EPERM, or EINVAL for a hard limit
/// above `fs.nr_open`).
pub fn raise_soft_to_hard() -> io::Result<NofileLimit> {
    let limit = get()?;
    match set_soft(limit.hard) {
        Ok(()) => Ok(NofileLimit {
            soft: limit.hard,
            ..limit
        }),
        Err(_) => Ok(limit),
    }
}

/// Sets the RLIMIT_NOFILE of the calling process with nothing but
/// setrlimit(2): no allocation and no lock, so it is safe between fork and
/// exec (`pre_exec`), where a master gives its workers back the limit it was
/// started with.
pub fn set_in_child(limit: NofileLimit) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: limit.soft,
        rlim_max: limit.hard,
    };
    // SAFETY: a plain syscall on a pointer to a live rlimit value.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the soft RLIMIT_NOFILE of process `pid`, as `prlimit --nofile` does
/// (prlimit(2)); its hard limit stays, so the soft one can be raised again
/// without privilege. The tests use it to take a worker's free fds away.
pub fn set_soft_of(pid: u32, soft: u64) -> io::Result<()> {
    let prlimit = |new: *const libc::rlimit, old: *mut libc::rlimit| {
        // SAFETY: a plain syscall on pointers to live rlimit values (or null).
        let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, new, old) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    prlimit(std::ptr::null(), &mut limit)?;
    limit.rlim_cur = soft.min(limit.rlim_max);
    prlimit(&limit, std::ptr::null_mut())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// prlimit on this very process is seen by getrlimit, and the soft limit
    /// can be raised back without privilege.
    #[test]
    fn soft_limit_round_trips() {
        let start = get().unwrap();
        let lower = start.soft.min(start.hard).saturating_sub(1).max(64);
        set_soft_of(std::process::id(), lower).unwrap();
        assert_eq!(get().unwrap().soft, lower);
        set_soft(start.soft).unwrap();
        assert_eq!(get().unwrap(), start);
    }
}
