//! Where connections wait: the accept queue of every listening TCP socket a
//! watched tree holds, and the namespace's counters of connections the
//! kernel turned away because a queue was full (`--watch`, issue 24).
//!
//! A listening socket's accept queue holds the connections the kernel has
//! completed and no process has accepted yet. Its length and its limit (the
//! `listen(2)` backlog, capped by `net.core.somaxconn`) come from
//! `sock_diag(7)`: one `SOCK_DIAG_BY_FAMILY` dump asks the kernel for the
//! namespace's sockets in state LISTEN only, and for those the answer's
//! `idiag_rqueue` is the queue's length (`sk_ack_backlog`) and
//! `idiag_wqueue` its limit (`sk_max_ack_backlog`). `/proc/net/tcp` shows
//! the same two figures, but lists every socket of the namespace: with tens
//! of thousands of connections open, each sample would read megabytes.
//!
//! Which listeners are the tree's is read from its processes' fds
//! (`/proc/PID/fd`, `socket:[INODE]`), once at the first sample and again
//! whenever the tree's set of processes changes (a worker respawned, a new
//! master): listeners are opened at start, and reading every fd of a master
//! that holds thousands of connections at every sample would cost loadgen
//! what the queue figures are meant to show. One socket held by several
//! processes (the shared listener, held by the master and every worker) is
//! one queue, with every holder named.
//!
//! A full queue drops the connection's final ACK (or its SYN, with
//! syncookies off) and counts `ListenOverflows` and `ListenDrops` in the
//! namespace's `TcpExt` counters (`/proc/PID/net/netstat`, read in the
//! watched process's namespace); the client retransmits after 1 s. These
//! counters belong to the whole namespace: a run that must attribute them
//! runs in a namespace of its own.
//!
//! Everything here is read by loadgen; the server does no work for it.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One listening socket as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// Its inode, as `/proc/PID/fd` links name it (`socket:[INODE]`).
    pub inode: u64,
    /// The address it listens on.
    pub address: SocketAddr,
    /// Connections completed and not yet accepted.
    pub queued: u32,
    /// The queue's limit: the backlog given to `listen(2)`, capped by
    /// `net.core.somaxconn`.
    pub limit: u32,
}

/// The namespace's counters of connections turned away at a listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenCounters {
    /// `TcpExt: ListenOverflows`: times a connection found its accept
    /// queue full.
    pub overflows: u64,
    /// `TcpExt: ListenDrops`: connections dropped at a listener, the
    /// overflows among them.
    pub drops: u64,
}

/// The inodes of the sockets `pid` holds open, from `/proc/PID/fd`. A
/// process gone meanwhile holds none.
pub fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Every TCP socket in state LISTEN of loadgen's network namespace, IPv4
/// and IPv6, by inode.
pub fn listeners() -> io::Result<BTreeMap<u64, Listener>> {
    let socket = diag_socket()?;
    let mut found = BTreeMap::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        dump_listeners(&socket, family as u8, &mut found)?;
    }
    Ok(found)
}

/// `ListenOverflows` and `ListenDrops` of the namespace `pid` runs in, from
/// `/proc/PID/net/netstat`.
pub fn listen_counters(pid: u32) -> io::Result<ListenCounters> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/netstat"))?;
    parse_netstat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no TcpExt ListenOverflows/ListenDrops in /proc/PID/net/netstat",
        )
    })
}

/// The two counters from the text of a `netstat` file: a `TcpExt:` line of
/// names, then one of values in the same order.
fn parse_netstat(text: &str) -> Option<ListenCounters> {
    let mut lines = text.lines().filter(|line| line.starts_with("TcpExt:"));
    let names = lines.next()?.split_whitespace().skip(1);
    let values = lines.next()?.split_whitespace().skip(1);
    let mut counters = ListenCounters::default();
    let (mut overflows, mut drops) = (false, false);
    for (name, value) in names.zip(values) {
        match name {
            "ListenOverflows" => (counters.overflows, overflows) = (value.parse().ok()?, true),
            "ListenDrops" => (counters.drops, drops) = (value.parse().ok()?, true),
            _ => {}
        }
    }
    (overflows && drops).then_some(counters)
}

/// `SOCK_DIAG_BY_FAMILY` (`linux/sock_diag.h`).
const SOCK_DIAG_BY_FAMILY: u16 = 20;

/// `TCP_LISTEN` (`include/net/tcp_states.h`): the state asked for, as a bit
/// of `idiag_states`.
const TCP_LISTEN: u32 = 10;

/// `struct inet_diag_sockid` (`linux/inet_diag.h`): ports and addresses in
/// network byte order.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct InetDiagSockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    interface: u32,
    cookie: [u32; 2],
}

/// `struct inet_diag_req_v2`: what a dump asks for.
#[repr(C)]
#[derive(Clone, Copy)]
struct InetDiagReqV2 {
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: InetDiagSockId,
}

/// `struct inet_diag_msg`: one socket of the answer.
#[repr(C)]
#[derive(Clone, Copy)]
struct InetDiagMsg {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: InetDiagSockId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
}

/// A request: the netlink header, then the body.
#[repr(C)]
struct Request {
    header: libc::nlmsghdr,
    body: InetDiagReqV2,
}

/// A `NETLINK_SOCK_DIAG` socket, closed on drop.
fn diag_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned from here on.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One dump of the TCP listeners of `family`, added to `found`.
fn dump_listeners(
    socket: &OwnedFd,
    family: u8,
    found: &mut BTreeMap<u64, Listener>,
) -> io::Result<()> {
    let request = Request {
        header: libc::nlmsghdr {
            nlmsg_len: size_of::<Request>() as u32,
            nlmsg_type: SOCK_DIAG_BY_FAMILY,
            nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        body: InetDiagReqV2 {
            family,
            protocol: libc::IPPROTO_TCP as u8,
            ext: 0,
            pad: 0,
            states: 1 << TCP_LISTEN,
            id: InetDiagSockId::default(),
        },
    };
    // SAFETY: the buffer is the request, `size_of::<Request>()` bytes long;
    // a netlink socket with no address sends to the kernel.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            (&raw const request).cast(),
            size_of::<Request>(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    // u64s, so that every header and message in it is aligned.
    let mut buffer = vec![0u64; 4096];
    loop {
        // SAFETY: recv writes at most the buffer's length in bytes.
        let received = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len() * size_of::<u64>(),
                0,
            )
        };
        let received = usize::try_from(received).map_err(|_| io::Error::last_os_error())?;
        // SAFETY: the u64 buffer viewed as the bytes the kernel wrote.
        let bytes = unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast::<u8>(), received) };
        if parse_answer(bytes, found)? {
            return Ok(());
        }
    }
}

/// The netlink messages of one datagram of the answer, each socket added
/// to `found`; whether the dump is done (`NLMSG_DONE`).
fn parse_answer(mut bytes: &[u8], found: &mut BTreeMap<u64, Listener>) -> io::Result<bool> {
    let header_len = size_of::<libc::nlmsghdr>();
    while bytes.len() >= header_len {
        // SAFETY: at least a header's bytes remain; read unaligned.
        let header: libc::nlmsghdr =
            unsafe { bytes.as_ptr().cast::<libc::nlmsghdr>().read_unaligned() };
        let len = header.nlmsg_len as usize;
        if len < header_len || len > bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "sock_diag: a message longer than the datagram",
            ));
        }
        match i32::from(header.nlmsg_type) {
            libc::NLMSG_DONE => return Ok(true),
            libc::NLMSG_ERROR => {
                // An nlmsgerr: a negative errno, then the request.
                let errno = bytes.get(header_len..header_len + 4).map_or(0, |raw| {
                    i32::from_ne_bytes(raw.try_into().expect("4 bytes"))
                });
                return Err(io::Error::from_raw_os_error(-errno));
            }
            _ if header.nlmsg_type == SOCK_DIAG_BY_FAMILY
                && len >= header_len + size_of::<InetDiagMsg>() =>
            {
                // SAFETY: the message's body holds an inet_diag_msg.
                let msg: InetDiagMsg = unsafe {
                    bytes[header_len..]
                        .as_ptr()
                        .cast::<InetDiagMsg>()
                        .read_unaligned()
                };
                if let Some(listener) = listener_of(&msg) {
                    found.insert(listener.inode, listener);
                }
            }
            _ => {}
        }
        // Messages are aligned to 4 bytes (NLMSG_ALIGN).
        let next = (len + 3) & !3;
        bytes = bytes.get(next..).unwrap_or_default();
    }
    Ok(false)
}

/// A listener from one `inet_diag_msg`; `None` for a family not IPv4/IPv6.
fn listener_of(msg: &InetDiagMsg) -> Option<Listener> {
    let ip = match i32::from(msg.family) {
        libc::AF_INET => IpAddr::V4(Ipv4Addr::new(
            msg.id.src[0],
            msg.id.src[1],
            msg.id.src[2],
            msg.id.src[3],
        )),
        libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(msg.id.src)),
        _ => return None,
    };
    Some(Listener {
        inode: u64::from(msg.inode),
        address: SocketAddr::new(ip, u16::from_be_bytes(msg.id.sport)),
        queued: msg.rqueue,
        limit: msg.wqueue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// A listener of this process with a backlog of 7 and three connections
    /// never accepted: the dump finds it by the inode its fd names, with 3
    /// queued and a limit of 7 (somaxconn is far above 7).
    #[test]
    fn a_listener_shows_its_queue_and_its_limit() {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a TCP socket");
        socket
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .expect("bind");
        socket.listen(7).expect("listen");
        let listener = TcpListener::from(socket);
        let address = listener.local_addr().expect("its address");
        let mine = socket_inodes(std::process::id());
        let clients: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(address).expect("connect"))
            .collect();
        let found = listeners().expect("the sock_diag dump");
        let ours: Vec<&Listener> = found
            .values()
            .filter(|listener| listener.address == address && mine.contains(&listener.inode))
            .collect();
        assert_eq!(ours.len(), 1, "one listener at {address} among {found:?}");
        // The handshake completes in the kernel before connect returns.
        assert_eq!((ours[0].queued, ours[0].limit), (3, 7));
        drop(clients);
    }

    /// The counters are read by name from the TcpExt lines, wherever they
    /// stand among the others.
    #[test]
    fn netstat_counters_are_read_by_name() {
        let text = "TcpExt: SyncookiesSent ListenOverflows TW ListenDrops\n\
                    TcpExt: 0 12 5 14\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(
            parse_netstat(text),
            Some(ListenCounters {
                overflows: 12,
                drops: 14
            })
        );
        assert_eq!(parse_netstat("IpExt: A\nIpExt: 1\n"), None);
        let real = listen_counters(std::process::id()).expect("this namespace's counters");
        assert!(
            real.drops >= real.overflows,
            "{real:?}: drops count the overflows"
        );
    }
}
