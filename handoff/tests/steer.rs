//! End-to-end tests of issue 24: `--backlog`, the accept queue of every
//! listening socket of the public port; and `handoff --pass reuseport
//! --steer health`, the BPF program that keeps new connections away from a
//! worker that does not answer its pings. Real masters, workers, sockets and
//! BPF; loopback only.

use std::process::Command;

use testkit::Cluster;

/// The binary under test, built by cargo for this test.
const HANDOFF: &str = env!("CARGO_BIN_EXE_handoff");

/// The backlog of every socket listening on `port` on this machine (in the
/// caller's network namespace), as `ss -Hltn 'sport = :PORT'` shows it: the
/// Send-Q column of a listening socket is its accept queue's length. `None`,
/// with one line saying why, where `ss` cannot run.
fn listen_backlogs(port: u16) -> Option<Vec<u32>> {
    let filter = format!("sport = :{port}");
    let output = match Command::new("ss").args(["-Hltn", &filter]).output() {
        Ok(output) if output.status.success() => output,
        Ok(output) => panic!("ss -Hltn '{filter}': {}", output.status),
        Err(err) => {
            eprintln!("skipped: cannot run ss (iproute2) to read the backlog: {err}");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let backlogs = text
        .lines()
        .map(|line| {
            // State, Recv-Q, Send-Q, local address, peer address.
            let send_q = line.split_whitespace().nth(2);
            send_q
                .and_then(|column| column.parse().ok())
                .unwrap_or_else(|| panic!("no Send-Q in the ss line {line:?}"))
        })
        .collect();
    Some(backlogs)
}

/// Starts `bin` with `args` and `--workers 2` on a free loopback port.
fn start(bin: &str, args: &[&str]) -> Cluster {
    let args = [args, &["--workers", "2"]].concat();
    Cluster::start(bin, &args).unwrap_or_else(|err| panic!("start {bin} {args:?}: {err:#}"))
}

/// Issue 24: `--backlog 77` is the accept queue of every socket listening on the public port, in every way of serving it (the one socket of `proxy`, `--pass socket` and `--pass listener`, each of `--pass reuseport`'s), as `ss -ltn` shows it; without the flag, 4096 (or `net.core.somaxconn`, if lower).
#[test]
fn backlog_sizes_every_accept_queue() {
    let proxy = testkit::workspace_bin("proxy").expect("build proxy");
    let proxy = proxy.to_str().expect("a UTF-8 path");
    let servers: [(&str, &[&str], usize); 4] = [
        (HANDOFF, &["--pass", "socket"], 1),
        (HANDOFF, &["--pass", "listener"], 1),
        (HANDOFF, &["--pass", "reuseport"], 2),
        (proxy, &[], 1),
    ];
    for (bin, args, sockets) in servers {
        let cluster = start(bin, &[args, &["--backlog", "77"]].concat());
        let Some(backlogs) = listen_backlogs(cluster.addr().port()) else {
            return;
        };
        assert_eq!(backlogs, vec![77; sockets], "{bin} {args:?} --backlog 77");
    }
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("read net.core.somaxconn")
        .trim()
        .parse()
        .expect("a number");
    let cluster = start(HANDOFF, &["--pass", "reuseport"]);
    let backlogs = listen_backlogs(cluster.addr().port()).expect("ss ran a moment ago");
    assert_eq!(
        backlogs,
        vec![somaxconn.min(4096); 2],
        "the default backlog"
    );
}

/// Issue 24: a `--backlog` above `net.core.somaxconn` (64, in a network namespace of the test's own) is cut to it by the kernel, and the master says so in one warning; `--backlog 0` and `65536` are bad usage, exit 2.
#[test]
fn backlog_beyond_somaxconn_is_capped_and_said() {
    testkit::assert_bad_usage_exits_2(HANDOFF, &["--backlog", "0"]);
    testkit::assert_bad_usage_exits_2(HANDOFF, &["--backlog", "65536"]);
    let ran = testkit::in_new_netns(&[("net/core/somaxconn", "64")], || {
        let cluster = start(HANDOFF, &["--pass", "reuseport", "--backlog", "100"]);
        let Some(backlogs) = listen_backlogs(cluster.addr().port()) else {
            return;
        };
        assert_eq!(backlogs, [64, 64], "--backlog 100 under somaxconn 64");
        let warnings = || {
            let stderr = cluster.stderr();
            let lines = stderr.lines();
            lines
                .filter(|line| line.contains("WARN") && line.contains("somaxconn"))
                .count()
        };
        // The warning comes before the ready line, but on stderr, which
        // another thread of the test reads.
        testkit::wait_until(testkit::HTTP_TIMEOUT, || warnings() > 0);
        let stderr = cluster.stderr();
        assert_eq!(warnings(), 1, "one warning for two sockets:\n{stderr}");
    });
    if ran.is_none() {
        eprintln!("skipped: the cap by somaxconn, for lack of a network namespace");
    }
}
