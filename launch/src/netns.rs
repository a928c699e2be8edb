//! A network namespace of one's own: its own loopback, its own sysctls
//! (`tcp_migrate_req`, `ip_local_port_range`, `somaxconn`), its own
//! counters, nothing shared with the machine. The upgrade driver runs
//! `overlap-migrate` in one (with `net.ipv4.tcp_migrate_req=1`), the tests
//! that change a sysctl run in one.
//!
//! A network namespace belongs to a thread (`unshare(CLONE_NEWNET)` moves
//! the calling thread only), and a process inherits its creator thread's:
//! [`in_new_netns`] runs its body on a thread of its own that has moved, so
//! the servers it starts and the sockets it opens are all inside, while the
//! rest of the process stays where it was.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Why no namespace could be made or set up.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `unshare(CLONE_NEWNET)` failed: it needs CAP_SYS_ADMIN (root, or a
    /// user namespace of one's own). The caller skips what needed it, and
    /// says so.
    #[error("cannot make a network namespace here (unshare: {0})")]
    Unshare(io::Error),
    /// The namespace was made, but its loopback or a sysctl could not be
    /// set.
    #[error("setting up the network namespace: {what}: {source}")]
    SetUp {
        /// What failed.
        what: String,
        /// Why.
        source: io::Error,
    },
}

/// Runs `body` on a thread of its own in a new network namespace, with its
/// loopback interface up and `sysctls` (paths under `/proc/sys/`, values)
/// written there; its result, or why there was no namespace.
///
/// # Panics
/// If `body` panics (the panic is passed on).
pub fn in_new_netns<T: Send>(
    sysctls: &[(&str, &str)],
    body: impl FnOnce() -> T + Send,
) -> Result<T, NetnsError> {
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            // SAFETY: unshare takes flags and touches only this thread's
            // namespaces.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(NetnsError::Unshare(io::Error::last_os_error()));
            }
            set_up(sysctls)?;
            Ok(body())
        });
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Brings `lo` up (`SIOCSIFFLAGS`, as `ip link set lo up` does) and writes
/// the sysctls, from the thread in the namespace: `/proc/sys/net` is the
/// namespace of whoever opens it.
fn set_up(sysctls: &[(&str, &str)]) -> Result<(), NetnsError> {
    let failed = |what: &str| {
        let what = what.to_owned();
        move |source| NetnsError::SetUp { what, source }
    };
    // SAFETY: socket takes integers and returns a new fd or -1.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(failed("socket")(io::Error::last_os_error()));
    }
    // SAFETY: socket just returned this fd; nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: an all-zero ifreq is valid (a name of NULs, flags 0).
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *to = *from as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of `request`.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } != 0 {
        return Err(failed("SIOCGIFFLAGS lo")(io::Error::last_os_error()));
    }
    // SAFETY: the flags member of the union, which SIOCGIFFLAGS has set.
    unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the name and the flags of `request`.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } != 0 {
        return Err(failed("SIOCSIFFLAGS lo up")(io::Error::last_os_error()));
    }
    for (path, value) in sysctls {
        let file = format!("/proc/sys/{path}");
        std::fs::write(&file, value).map_err(failed(&format!("write {value:?} to {file}")))?;
        let read = std::fs::read_to_string(&file).map_err(failed(&format!("read {file}")))?;
        if read.split_whitespace().ne(value.split_whitespace()) {
            return Err(failed(&file)(io::Error::other(format!(
                "it says {read:?} after writing {value:?}"
            ))));
        }
    }
    Ok(())
}
