//! `--source-ips`: the local addresses connections are bound to before
//! connect(2), round robin, for when one address's ephemeral ports do not
//! suffice, and the port budget they give.
//!
//! A TCP connection is named by its four-tuple; toward one destination, one
//! source address has as many connections as `ip_local_port_range` has ports
//! (28,232 by default). nginx users meet the limit as "Cannot assign
//! requested address" (EADDRNOTAVAIL) and answer it with `proxy_bind` over
//! several addresses; loadgen does the same with `--source-ips`. Loopback
//! only: every address of 127.0.0.0/8 is the machine's own without any
//! setup, and a benchmark of the suite never leaves the machine.
//!
//! Each socket is bound with `IP_BIND_ADDRESS_NO_PORT` before its
//! `bind(2)`: the port is then chosen at connect(2), per four-tuple, as
//! without a bind. A plain `bind(addr, 0)` would pick the port without
//! knowing the destination, so that each port served one connection per
//! source address whatever the targets.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::Socket;

/// The most addresses one `--source-ips` may name: a range of the whole of
/// 127.0.0.0/8 is 16 million, more than any run could use, and a list that
/// long is a mistake.
pub const MAX_SOURCE_IPS: usize = 65_536;

/// The addresses of `--source-ips`, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIps(pub Vec<IpAddr>);

impl SourceIps {
    /// Parses `--source-ips` ([`parse`]).
    pub fn parse(text: &str) -> Result<SourceIps, String> {
        parse(text).map(SourceIps)
    }
}

/// Parses `--source-ips`: a range `127.0.0.2-127.0.0.9` (both ends
/// included) or a comma-separated list `127.0.0.2,127.0.0.3`, loopback
/// addresses only (127.0.0.0/8, ::1).
pub fn parse(text: &str) -> Result<Vec<IpAddr>, String> {
    let addresses = match text.split_once('-') {
        Some((first, last)) => {
            let first: Ipv4Addr = first
                .trim()
                .parse()
                .map_err(|_| format!("{first:?} is not an IPv4 address"))?;
            let last: Ipv4Addr = last
                .trim()
                .parse()
                .map_err(|_| format!("{last:?} is not an IPv4 address"))?;
            let (low, high) = (u32::from(first), u32::from(last));
            if low > high {
                return Err(format!("the range {text:?} ends before it begins"));
            }
            if (high - low) as usize >= MAX_SOURCE_IPS {
                return Err(format!(
                    "the range {text:?} has more than {MAX_SOURCE_IPS} addresses"
                ));
            }
            (low..=high)
                .map(|ip| IpAddr::V4(Ipv4Addr::from(ip)))
                .collect()
        }
        None => text
            .split(',')
            .map(|one| {
                one.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| format!("{one:?} is not an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if addresses.len() > MAX_SOURCE_IPS {
        return Err(format!("more than {MAX_SOURCE_IPS} addresses"));
    }
    if let Some(outside) = addresses.iter().find(|ip| !ip.is_loopback()) {
        return Err(format!(
            "{outside} is not a loopback address: loadgen binds only to 127.0.0.0/8 or ::1"
        ));
    }
    Ok(addresses)
}

/// Binds `socket` to `source` (port chosen at connect(2), see the module
/// doc), before it connects.
pub fn bind(socket: &Socket, source: IpAddr) -> io::Result<()> {
    if source.is_ipv4() {
        let on: libc::c_int = 1;
        // SAFETY: the fd is `socket`'s, open for this call; the option value
        // is a c_int that lives across it, its size passed with it.
        let result = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(socket),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    socket.bind(&SocketAddr::new(source, 0).into())
}

/// The ephemeral ports of `/proc/sys/net/ipv4/ip_local_port_range` (of
/// this network namespace): how many connections one source address can
/// open toward one destination. `None` when it cannot be read.
pub fn ephemeral_ports() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    ports_in_range(&text)
}

/// The ports of a range as `ip_local_port_range` prints it (`32768\t60999`).
fn ports_in_range(text: &str) -> Option<u64> {
    let mut ends = text.split_whitespace().map(str::parse::<u64>);
    let (low, high) = (ends.next()?.ok()?, ends.next()?.ok()?);
    (high >= low).then(|| high - low + 1)
}

/// Refuses `connections` the local ports cannot give: more than `sources`
/// (the `--source-ips`, or the kernel's one address) × `destinations` (the
/// distinct target addresses) × `ports` (the ephemeral range). `Err` is the
/// usage error's line.
pub fn check_ports(
    connections: usize,
    sources: usize,
    destinations: usize,
    ports: u64,
) -> Result<(), String> {
    let room = (sources.max(1) as u64)
        .saturating_mul(destinations.max(1) as u64)
        .saturating_mul(ports);
    if connections as u64 > room {
        return Err(format!(
            "--connections {connections} need more local ports than {sources} source \
             address(es) × {destinations} target(s) × {ports} ephemeral ports \
             (net.ipv4.ip_local_port_range) = {room}: add --source-ips (e.g. \
             127.0.0.2-127.0.0.9) or widen the range",
            sources = sources.max(1),
            destinations = destinations.max(1),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A range, a list, one address; anything off loopback, a reversed or
    /// huge range, or a word, is refused.
    #[test]
    fn parses_loopback_ranges_and_lists() {
        let range = parse("127.0.0.2-127.0.0.9").expect("a range");
        assert_eq!(range.len(), 8);
        assert_eq!(range[0], IpAddr::from([127, 0, 0, 2]));
        assert_eq!(range[7], IpAddr::from([127, 0, 0, 9]));
        let list = parse("127.0.0.2,127.1.2.3,::1").expect("a list");
        assert_eq!(list.len(), 3);
        assert_eq!(parse("127.0.0.5").expect("one").len(), 1);
        assert!(
            parse("10.0.0.1")
                .expect_err("off loopback")
                .contains("loopback")
        );
        assert!(parse("127.0.0.9-127.0.0.2").is_err());
        assert!(parse("127.0.0.1-127.255.255.255").is_err());
        assert!(parse("localhost").is_err());
        assert!(parse("127.0.0.1,192.168.1.1").is_err());
    }

    /// The port budget: sources × destinations × ports.
    #[test]
    fn counts_the_port_budget() {
        assert_eq!(ports_in_range("32768\t60999\n"), Some(28_232));
        assert_eq!(ports_in_range("1000 1000"), Some(1));
        assert_eq!(ports_in_range("2 1"), None);
        assert_eq!(check_ports(28_232, 1, 1, 28_232), Ok(()));
        let refused = check_ports(28_233, 1, 1, 28_232).expect_err("one too many");
        assert!(refused.contains("--source-ips"), "{refused}");
        assert_eq!(check_ports(40_000, 2, 1, 28_232), Ok(()));
        assert!(check_ports(40_000, 0, 0, 28_232).is_err());
    }
}
