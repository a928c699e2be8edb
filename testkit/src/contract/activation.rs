//! Socket activation (issue 26): a service manager binds the port, keeps
//! it, and passes it as fd 3 (`LISTEN_FDS`, `LISTEN_PID`); the master serves
//! it, says so, never shuts it down, and refuses what is not a socket it can
//! serve. The test plays the service manager: it holds the sockets.

use std::os::fd::OwnedFd;
use std::process::Command;

use super::supervision::assert_served_by;
use super::upgrade::{UpgradeDir, assert_handed_over, take_over, text};
use super::*;
use crate::process::Starting;

/// The listening sockets a service manager would pass for `mode`: one, or
/// in `handoff-reuseport` one per worker (2) with `SO_REUSEPORT`, on one
/// free loopback port.
fn service_manager_sockets(mode: &str) -> (std::net::SocketAddr, Vec<OwnedFd>) {
    let reuseport = mode == "handoff-reuseport";
    let first = cluster::listen::bind(
        "127.0.0.1:0".parse().expect("an address"),
        reuseport,
        cluster::listen::DEFAULT_BACKLOG,
    )
    .expect("bind");
    let addr = first.local_addr().expect("an address");
    let mut sockets = vec![OwnedFd::from(first)];
    if reuseport {
        sockets.push(OwnedFd::from(
            cluster::listen::bind(addr, true, cluster::listen::DEFAULT_BACKLOG).expect("bind"),
        ));
    }
    (addr, sockets)
}

/// Issue 26: a master started with its listening socket(s) from a service
/// manager serves them (its `ready` line says `"socket_activated":true` and
/// names their address), and at SIGTERM exits 0 without shutting them down:
/// the service manager's copy still listens, and a client connecting then
/// waits in its accept queue for the next master (not refused). The same
/// after a takeover: the new master's stop leaves them listening too.
pub fn assert_socket_activation_serves_and_leaves_the_socket(bin: &str, args: &[&str], mode: &str) {
    let (addr, sockets) = service_manager_sockets(mode);
    let all_args = [&["--workers", "2"], args].concat();
    let mut cluster = Starting::spawn_activated(bin, &all_args, &sockets)
        .and_then(|starting| starting.ready(crate::process::READY_TIMEOUT))
        .unwrap_or_else(|err| panic!("a socket-activated {bin} {all_args:?}: {err:#}"));
    assert!(cluster.ready().socket_activated, "{:?}", cluster.ready());
    assert_eq!(cluster.addr(), addr, "the ready line names another address");
    assert_served_by(&cluster, &cluster.worker_pids());
    cluster.signal(Signal::SIGTERM).expect("SIGTERM");
    let status = cluster.wait_exit(STOP_TIMEOUT).expect("the master exits");
    assert_eq!(status.code(), Some(0), "{status}");
    assert_still_listening(addr, "the master's stop");

    // Taken over, the sockets stay the service manager's: the new master's
    // stop leaves them listening too.
    let (addr, sockets) = service_manager_sockets(mode);
    let dir = UpgradeDir::new();
    let path = dir.socket("upgrade.sock");
    let upgradable = [&all_args[..], &["--upgrade-socket", text(&path)]].concat();
    let mut old = Starting::spawn_activated(bin, &upgradable, &sockets)
        .and_then(|starting| starting.ready(crate::process::READY_TIMEOUT))
        .unwrap_or_else(|err| panic!("a socket-activated {bin} {upgradable:?}: {err:#}"));
    let mut new = take_over(bin, args, &path, &old, mode);
    assert_handed_over(&mut old, new.master_pid());
    new.signal(Signal::SIGTERM).expect("SIGTERM the new master");
    let status = new.wait_exit(STOP_TIMEOUT).expect("the new master exits");
    assert_eq!(status.code(), Some(0), "{status}");
    assert_still_listening(addr, "the stop of the master that took it over");
}

/// A client of `addr` is not refused `after` what: the service manager's
/// socket still listens, and the client waits in its accept queue.
fn assert_still_listening(addr: std::net::SocketAddr, after: &str) {
    let waiting = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .unwrap_or_else(|err| panic!("after {after}, {addr} refuses: {err}"));
    assert!(
        wait_until(HTTP_TIMEOUT, || crate::proc::accept_queue(addr.port())
            == Some(1)),
        "after {after}, the client is not in the service manager's accept queue: {:?}",
        crate::proc::accept_queue(addr.port())
    );
    drop(waiting);
}

/// Issue 26: what a service manager passes that the mode cannot serve is
/// one line and exit 2: a UDP socket, a socket that does not listen, two
/// sockets where the mode takes one.
pub fn assert_bad_activation_exits_2(bin: &str, args: &[&str]) {
    let udp = OwnedFd::from(std::net::UdpSocket::bind("127.0.0.1:0").expect("UDP"));
    let unbound = OwnedFd::from(
        std::net::TcpStream::connect(
            std::net::TcpListener::bind("127.0.0.1:0")
                .expect("a listener")
                .local_addr()
                .expect("an address"),
        )
        .expect("connect"),
    );
    let (_, one) = service_manager_sockets("handoff-socket");
    let (_, other) = service_manager_sockets("handoff-socket");
    let two = vec![
        one.into_iter().next().expect("a socket"),
        other.into_iter().next().expect("a socket"),
    ];
    let all_args = [&["--workers", "2"], args].concat();
    for (sockets, says) in [
        (vec![udp], "fd 3 is not a stream socket"),
        (vec![unbound], "fd 3 is not listening"),
        (two, "2 sockets passed"),
    ] {
        let mut starting = Starting::spawn_activated(bin, &all_args, &sockets)
            .unwrap_or_else(|err| panic!("start {bin}: {err:#}"));
        let status = starting
            .wait_exit(EXIT_TIMEOUT)
            .unwrap_or_else(|| panic!("{says}: still running; stderr:\n{}", starting.stderr()));
        let stderr = starting.stderr();
        assert_eq!(
            status.code(),
            Some(2),
            "{says}: {status}; stderr:\n{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{says}: not one line:\n{stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
}

/// Issue 26: under `systemd-socket-activate` itself (the service manager of
/// systemd's own tests, which binds the port and execs the master on the
/// first connection), the first client is served, by a master whose ready
/// line says `"socket_activated":true`. Skipped, with a line saying so,
/// where it is not installed.
pub fn assert_systemd_socket_activate_serves(bin: &str, args: &[&str]) {
    if Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-socket-activate is not installed (apt-get install systemd)");
        return;
    }
    // A free port, chosen by the kernel and let go: systemd-socket-activate
    // binds it again at once (another process taking it meanwhile is the
    // only way this can fail, and it says so).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut command = Command::new("systemd-socket-activate");
    command
        .args(["--listen", &address, bin, "--workers", "2"])
        .args(args);
    let starting = Starting::spawn_command(command, bin).expect("start systemd-socket-activate");
    // It listens first, and execs the master on the first connection:
    // this client's, which waits in the accept queue meanwhile.
    assert!(
        wait_until(HTTP_TIMEOUT, || crate::proc::accept_queue(port).is_some()),
        "systemd-socket-activate does not listen on {address}"
    );
    let addr: std::net::SocketAddr = address.parse().expect("an address");
    let first = std::thread::spawn(move || get(addr, "/", true));
    let cluster = starting
        .ready(crate::process::READY_TIMEOUT)
        .unwrap_or_else(|err| panic!("systemd-socket-activate {bin}: {err:#}"));
    assert!(cluster.ready().socket_activated, "{:?}", cluster.ready());
    let response = first
        .join()
        .expect("the client thread")
        .unwrap_or_else(|err| panic!("the first client: {err:#}"));
    assert_worker_answer(&response, &cluster.worker_pids());
}
