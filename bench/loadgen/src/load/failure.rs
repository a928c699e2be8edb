//! The kinds of failed request, each counted apart and never dropped, and how an
//! I/O error maps to one.

use std::io;

/// Why a request failed. A failed request is counted here and is not a latency
/// sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// `ECONNREFUSED` on connect: nothing listens, or the listen queue is full.
    ConnectRefused,
    /// `ECONNRESET`, `EPIPE` or `ECONNABORTED`: the server reset the connection.
    Reset,
    /// No complete answer within `--timeout` (or `ETIMEDOUT` from the kernel).
    Timeout,
    /// An answer whose status is not 2xx.
    BadStatus,
    /// The connection ended before the answer was complete (or began).
    ShortResponse,
    /// Bytes that are not an HTTP/1.x answer, or more than one answer per request.
    MalformedResponse,
    /// `EMFILE` or `ENFILE`: the load generator itself ran out of file descriptors.
    FdExhaustion,
    /// `EADDRNOTAVAIL` on connect: no local port left (too many in `TIME_WAIT`).
    PortExhaustion,
    /// Any other error, e.g. `EHOSTUNREACH`.
    Other,
}

impl Failure {
    /// Every kind, in the order of the reports.
    pub const ALL: [Failure; 9] = [
        Failure::ConnectRefused,
        Failure::Reset,
        Failure::Timeout,
        Failure::BadStatus,
        Failure::ShortResponse,
        Failure::MalformedResponse,
        Failure::FdExhaustion,
        Failure::PortExhaustion,
        Failure::Other,
    ];

    /// The name in the JSON report and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Failure::ConnectRefused => "connect_refused",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::BadStatus => "bad_status",
            Failure::ShortResponse => "short_response",
            Failure::MalformedResponse => "malformed_response",
            Failure::FdExhaustion => "fd_exhaustion",
            Failure::PortExhaustion => "port_exhaustion",
            Failure::Other => "other",
        }
    }

    /// The index of this kind in [`Failure::ALL`], for counting in an array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Maps an I/O error of connecting, writing or reading to its kind.
    pub fn of(err: &io::Error) -> Failure {
        match err.raw_os_error() {
            Some(libc::ECONNREFUSED) => return Failure::ConnectRefused,
            Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) => return Failure::Reset,
            Some(libc::ETIMEDOUT) => return Failure::Timeout,
            // The process (EMFILE) or the whole system (ENFILE) is at its fd limit:
            // socket(2) fails before any packet is sent.
            Some(libc::EMFILE | libc::ENFILE) => return Failure::FdExhaustion,
            // connect(2) found no free local port for this destination.
            Some(libc::EADDRNOTAVAIL) => return Failure::PortExhaustion,
            _ => {}
        }
        match err.kind() {
            io::ErrorKind::UnexpectedEof => Failure::ShortResponse,
            io::ErrorKind::TimedOut => Failure::Timeout,
            _ => Failure::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every errno the client can meet maps to the kind the reports name.
    #[test]
    fn maps_errnos() {
        let of = |errno| Failure::of(&io::Error::from_raw_os_error(errno));
        assert_eq!(of(libc::ECONNREFUSED), Failure::ConnectRefused);
        assert_eq!(of(libc::ECONNRESET), Failure::Reset);
        assert_eq!(of(libc::EPIPE), Failure::Reset);
        assert_eq!(of(libc::EMFILE), Failure::FdExhaustion);
        assert_eq!(of(libc::ENFILE), Failure::FdExhaustion);
        assert_eq!(of(libc::EADDRNOTAVAIL), Failure::PortExhaustion);
        assert_eq!(of(libc::ETIMEDOUT), Failure::Timeout);
        assert_eq!(of(libc::EHOSTUNREACH), Failure::Other);
        assert_eq!(
            Failure::of(&io::Error::from(io::ErrorKind::UnexpectedEof)),
            Failure::ShortResponse
        );
    }

    /// `ALL` lists every kind at its own index, and the names are distinct.
    #[test]
    fn all_is_indexed() {
        for (index, kind) in Failure::ALL.iter().enumerate() {
            assert_eq!(kind.index(), index);
        }
        let mut names: Vec<_> = Failure::ALL.iter().map(|kind| kind.name()).collect();
        names.dedup();
        assert_eq!(names.len(), Failure::ALL.len());
    }
}
