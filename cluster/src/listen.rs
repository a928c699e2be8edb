//! Binding the public port.

use std::io;
use std::net::SocketAddr;
use std::sync::Once;

use socket2::{Domain, Socket, Type};

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
