//! A network namespace of the test's own: its own loopback, its own
//! sysctls (`ip_local_port_range`, `somaxconn`), its own counters, nothing
//! shared with the machine or with other tests.
//!
//! A network namespace belongs to a thread (`unshare(CLONE_NEWNET)` moves
//! the calling thread only), and a process inherits its creator thread's:
//! [`in_new_netns`] runs the test's body on a thread of its own that has
//! moved, so the servers it starts and the sockets it opens are all inside,
//! while the rest of the test process stays where it was.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, bail};

/// Runs `body` on a thread of its own in a new network namespace, with its
/// loopback interface up and `sysctls` (paths under `/proc/sys/`, values)
/// written there. `None`, and one line on stderr saying why, where the test
/// may not make a namespace (it needs CAP_SYS_ADMIN: root, or a user
/// namespace of its own): the caller skips its test, and says so.
///
/// # Panics
/// If `body` panics (the panic is passed on), or the namespace is made but
/// cannot be set up.
pub fn in_new_netns<T: Send>(
    sysctls: &[(&str, &str)],
    body: impl FnOnce() -> T + Send,
) -> Option<T> {
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            // SAFETY: unshare takes flags and touches only this thread's
            // namespaces.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                let err = std::io::Error::last_os_error();
                eprintln!("skipped: cannot make a network namespace here (unshare: {err})");
                return None;
            }
            if let Err(err) = set_up(sysctls) {
                panic!("setting up the network namespace: {err:#}");
            }
            Some(body())
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
fn set_up(sysctls: &[(&str, &str)]) -> anyhow::Result<()> {
    // SAFETY: socket takes integers and returns a new fd or -1.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).context("socket");
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
        return Err(std::io::Error::last_os_error()).context("SIOCGIFFLAGS lo");
    }
    // SAFETY: the flags member of the union, which SIOCGIFFLAGS has set.
    unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the name and the flags of `request`.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } != 0 {
        return Err(std::io::Error::last_os_error()).context("SIOCSIFFLAGS lo up");
    }
    for (path, value) in sysctls {
        let file = format!("/proc/sys/{path}");
        std::fs::write(&file, value).with_context(|| format!("write {value:?} to {file}"))?;
        let read = std::fs::read_to_string(&file).with_context(|| format!("read {file}"))?;
        if read.split_whitespace().ne(value.split_whitespace()) {
            bail!("{file} says {read:?} after writing {value:?}");
        }
    }
    Ok(())
}
