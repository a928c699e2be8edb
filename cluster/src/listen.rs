//! Binding the public port.

use std::io;
use std::net::SocketAddr;
use std::sync::Once;

use std::os::fd::OwnedFd;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// The accept queue length asked of `listen(2)` unless `--backlog` says
/// otherwise. Node.js and nginx ask 511; a new-connection-per-request
/// benchmark fills a queue fast, so we ask more. The kernel caps it at
/// `net.core.somaxconn` (4096 by default since 5.4).
pub const DEFAULT_BACKLOG: u16 = 4096;

/// Where the kernel's cap on every backlog is, in the reader's network
/// namespace.
const SOMAXCONN_PATH: &str = "/proc/sys/net/core/somaxconn";

/// Binding failed; `is_usage()` tells whether the user can fix it by choosing
/// another address (exit code 2) rather than a failure of the machine.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// Why the kernel refused.
    pub source: io::Error,
}

impl BindError {
    /// A port taken, a privileged port, or an address this host does not have.
    pub fn is_usage(&self) -> bool {
        matches!(
            self.source.raw_os_error(),
            Some(libc::EADDRINUSE | libc::EACCES | libc::EADDRNOTAVAIL)
        )
    }
}

/// A listening TCP socket on `addr` (close-on-exec, blocking until the
/// caller says otherwise) whose accept queue holds `backlog` connections
/// (`--backlog`). `SO_REUSEADDR` lets a restarted server bind while old
/// connections sit in TIME_WAIT; `reuseport` adds `SO_REUSEPORT`, so that
/// several sockets of this user can listen on one port and the kernel
/// spreads connections among them.
pub fn bind(
    addr: SocketAddr,
    reuseport: bool,
    backlog: u16,
) -> Result<std::net::TcpListener, BindError> {
    let error = |source| BindError { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(error)?;
    socket.set_reuse_address(true).map_err(error)?;
    if reuseport {
        socket.set_reuse_port(true).map_err(error)?;
    }
    socket.bind(&addr.into()).map_err(error)?;
    socket.listen(i32::from(backlog)).map_err(error)?;
    warn_if_capped(backlog);
    Ok(socket.into())
}

/// Says once per process when the kernel has silently cut `backlog` to
/// `net.core.somaxconn`: `ss -ltn` would show the smaller figure, and a
/// run that asked for more should not pass for one that had it.
fn warn_if_capped(backlog: u16) {
    static CHECKED: Once = Once::new();
    CHECKED.call_once(|| {
        let somaxconn = std::fs::read_to_string(SOMAXCONN_PATH)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        if let Some(somaxconn) = somaxconn.filter(|&cap| u32::from(backlog) > cap) {
            tracing::warn!(
                backlog,
                somaxconn,
                "--backlog is above net.core.somaxconn; the kernel caps every accept queue there"
            );
        }
    });
}

/// Checks that `fd`, which another process handed over (a master's
/// takeover, a service manager's socket activation), is a listening socket
/// of the kind the masters bind: a TCP socket (`SO_TYPE`, `SO_DOMAIN`,
/// `SO_PROTOCOL`) that listens (`SO_ACCEPTCONN`), at `expected` if given
/// (`getsockname`), with `SO_REUSEPORT` exactly when the mode binds with it,
/// and not one of `earlier`. Returns its address; else what it is instead.
/// A peer could send anything: a regular file, a UDP socket, a socket bound
/// elsewhere; without these checks the `ready` line would announce an
/// address the workers cannot serve (issue 19).
pub fn check_listening(
    fd: &OwnedFd,
    expected: Option<SocketAddr>,
    reuseport: bool,
    earlier: &[OwnedFd],
) -> Result<SocketAddr, String> {
    let socket = SockRef::from(fd);
    match socket.r#type() {
        Ok(Type::STREAM) => {}
        Ok(other) => return Err(format!("not a stream socket ({other:?})")),
        Err(err) => return Err(format!("not a socket ({err})")),
    }
    match socket.domain() {
        Ok(Domain::IPV4 | Domain::IPV6) => {}
        Ok(other) => return Err(format!("not an IP socket ({other:?})")),
        Err(err) => return Err(format!("of no known domain ({err})")),
    }
    match socket.protocol() {
        Ok(Some(Protocol::TCP)) => {}
        other => return Err(format!("not TCP ({other:?})")),
    }
    if !socket.is_listener().unwrap_or(false) {
        return Err("not listening".into());
    }
    let bound = socket.local_addr().ok().and_then(|addr| addr.as_socket());
    let Some(bound) = bound else {
        return Err("bound to no IP address".into());
    };
    if let Some(expected) = expected.filter(|expected| *expected != bound) {
        return Err(format!("bound to {bound}, not to the offered {expected}"));
    }
    if socket.reuse_port().unwrap_or(!reuseport) != reuseport {
        return Err(if reuseport {
            "without SO_REUSEPORT".into()
        } else {
            "with SO_REUSEPORT (another process could join its group)".into()
        });
    }
    let inode = |fd: &OwnedFd| {
        nix::sys::stat::fstat(fd)
            .map(|st| (st.st_dev, st.st_ino))
            .ok()
    };
    if earlier.iter().any(|other| inode(other) == inode(fd)) {
        return Err("a socket offered twice".into());
    }
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(reuseport: bool) -> (OwnedFd, SocketAddr) {
        let socket = bind(
            "127.0.0.1:0".parse().expect("an address"),
            reuseport,
            DEFAULT_BACKLOG,
        )
        .expect("bind");
        let addr = socket.local_addr().expect("an address");
        (OwnedFd::from(socket), addr)
    }

    /// Issue 19: what a master offers passes; a UDP socket, a regular file,
    /// a socket that does not listen, one bound elsewhere, one with the
    /// wrong SO_REUSEPORT, and one offered twice are each refused, saying
    /// why.
    #[test]
    fn only_listening_tcp_sockets_at_the_offered_address_pass() {
        let (good, addr) = listener(false);
        assert_eq!(check_listening(&good, Some(addr), false, &[]), Ok(addr));
        assert_eq!(check_listening(&good, None, false, &[]), Ok(addr));
        let (grouped, grouped_addr) = listener(true);
        assert_eq!(
            check_listening(&grouped, Some(grouped_addr), true, &[]),
            Ok(grouped_addr)
        );
        let refused = |fd: &OwnedFd, addr, reuseport, earlier: &[OwnedFd], says: &str| {
            let err = check_listening(fd, Some(addr), reuseport, earlier).expect_err(says);
            assert!(err.contains(says), "{err:?} does not say {says:?}");
        };
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        let udp_addr = udp.local_addr().expect("an address");
        refused(
            &OwnedFd::from(udp),
            udp_addr,
            false,
            &[],
            "not a stream socket",
        );
        let file = OwnedFd::from(std::fs::File::open("/dev/null").expect("/dev/null"));
        refused(&file, addr, false, &[], "not a socket");
        let unix = OwnedFd::from(std::os::unix::net::UnixStream::pair().expect("a pair").0);
        refused(&unix, addr, false, &[], "not an IP socket");
        let client = std::net::TcpStream::connect(addr).expect("connect");
        let client_addr = client.local_addr().expect("an address");
        refused(
            &OwnedFd::from(client),
            client_addr,
            false,
            &[],
            "not listening",
        );
        let (elsewhere, _) = listener(false);
        refused(&elsewhere, addr, false, &[], "not to the offered");
        refused(&grouped, grouped_addr, false, &[], "with SO_REUSEPORT");
        refused(&good, addr, true, &[], "without SO_REUSEPORT");
        let again = good.try_clone().expect("dup");
        refused(
            &again,
            addr,
            false,
            std::slice::from_ref(&good),
            "offered twice",
        );
    }
}
