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

/// The flags of a steered group.
const HEALTH: &[&str] = &["--pass", "reuseport", "--steer", "health"];

/// The flags of a steered group whose healthy workers are never left out
/// on a loaded machine: a test that stops one worker and expects every
/// request to go to the other fails if the other's pong is also late (the
/// group then falls back to the kernel's hash, by design). 500 ms late is
/// ten times the default; a stopped worker is still left out within a
/// second.
const PATIENT: &[&str] = &[
    "--pass",
    "reuseport",
    "--steer",
    "health",
    "--eject-after",
    "500ms",
];

/// The mode a `--pass reuseport` master names in its ready line.
const REUSEPORT: &str = "handoff-reuseport";

/// Whether this test may load the steering program (CAP_BPF and
/// CAP_NET_ADMIN: root); if not, one line saying why, and the caller skips.
fn bpf_permitted() -> bool {
    match cluster::steer::Program::load(1) {
        Ok(_) => true,
        Err(err) if err.is_usage() => {
            eprintln!("skipped: {err}");
            false
        }
        Err(err) => panic!("{err}"),
    }
}

/// Whether the master's stderr has said that `pid` is left out of the group.
fn left_out(cluster: &Cluster, pid: u32) -> bool {
    let worker = format!("worker={pid}");
    let stderr = cluster.stderr();
    let mut lines = stderr.lines();
    lines.any(|line| line.contains("worker late") && line.contains(&worker))
}

/// Sends `count` one-shot requests, one after the other, each of which must
/// be answered within [`testkit::HTTP_TIMEOUT`]; returns who answered them.
fn answered_by(cluster: &Cluster, count: usize) -> Vec<u32> {
    (0..count)
        .map(|request| {
            let response = testkit::get(cluster.addr(), "/", true)
                .unwrap_or_else(|err| panic!("request {request}: {err:#}"));
            response.worker_pid().expect("an x-worker-pid")
        })
        .collect()
}

/// Stops (SIGSTOP) the worker `stopped` of a steered two-worker cluster:
/// the master must say it is left out, and every request after must be
/// answered by `other`, at once (under the hash, half of them would wait
/// in the stopped worker's queue); then continues it.
fn assert_stopped_worker_is_left_out(cluster: &Cluster, stopped: u32, other: u32) {
    cluster
        .signal_worker(stopped, testkit::Signal::SIGSTOP)
        .expect("SIGSTOP a worker");
    assert!(
        testkit::wait_until(testkit::HTTP_TIMEOUT, || left_out(cluster, stopped)),
        "the stopped worker {stopped} was not left out; stderr:\n{}",
        cluster.stderr()
    );
    let pids = answered_by(cluster, 20);
    assert!(
        pids.iter().all(|&pid| pid == other),
        "answered by {pids:?}, not only {other}"
    );
    cluster
        .signal_worker(stopped, testkit::Signal::SIGCONT)
        .expect("SIGCONT the worker");
}

/// Issue 24: with `--steer health`, a killed worker's successor is steered to once it serves, and stopped in turn is left out of the group at once: every request then goes to the other worker without waiting (the hash would queue half of them behind the stopped one).
#[test]
fn successor_is_steered_to_and_left_out() {
    if !bpf_permitted() {
        return;
    }
    let mut cluster = testkit::start_two_workers(HANDOFF, PATIENT, REUSEPORT);
    let (first, other) = (cluster.worker_pids()[0], cluster.worker_pids()[1]);
    cluster
        .signal_worker(first, testkit::Signal::SIGKILL)
        .expect("SIGKILL a worker");
    let successor = testkit::wait_for_respawn(&mut cluster, first, testkit::RESPAWN_TIMEOUT)
        .unwrap_or_else(|| panic!("no respawn; stderr:\n{}", cluster.stderr()));
    let pids = answered_by(&cluster, 40);
    assert!(
        pids.contains(&successor),
        "the successor got none of 40: {pids:?}"
    );
    assert_stopped_worker_is_left_out(&cluster, successor, other);
}

/// Issue 24: a takeover keeps the steering: the new master attaches its own program (replacing the old master's on the group) and takes the sockets into its map once the old master lets go at its handover; a new worker stopped after the handover is left out, and every request goes to the other.
#[test]
fn takeover_keeps_steering() {
    if !bpf_permitted() {
        return;
    }
    let dir = testkit::UpgradeDir::new();
    let path = dir.socket("upgrade.sock");
    let mut old = testkit::start_upgradable(HANDOFF, PATIENT, &path, REUSEPORT);
    let new = testkit::take_over(HANDOFF, PATIENT, &path, &old, REUSEPORT);
    testkit::assert_handed_over(&mut old, new.master_pid());
    let (stopped, other) = (new.worker_pids()[0], new.worker_pids()[1]);
    assert_stopped_worker_is_left_out(&new, stopped, other);
}

/// Issue 24: three takeovers in a row under load with `--steer health` on both sides fail no request (the contract's test).
#[test]
fn takeovers_under_load_with_steering() {
    if bpf_permitted() {
        testkit::assert_takeovers_under_load(HANDOFF, HEALTH, REUSEPORT);
    }
}

/// Issue 24: a new master lost after its ready (it had attached its program) leaves the old one serving, no request failed (the contract's test, with `--steer health`).
#[test]
fn new_master_lost_after_its_ready_with_steering() {
    if bpf_permitted() {
        testkit::assert_new_master_lost_after_its_ready(HANDOFF, HEALTH, REUSEPORT);
    }
}

/// Issue 24: SIGTERM with the program attached: a client arriving after it is refused, the requests in flight are answered (the contract's test, with `--steer health`).
#[test]
fn sigterm_refuses_new_clients_with_steering() {
    if bpf_permitted() {
        testkit::assert_sigterm_refuses_new_clients(&mut testkit::start_two_workers(
            HANDOFF, HEALTH, REUSEPORT,
        ));
    }
}

/// Issue 24: SIGTERM with the program attached: a client in the accept queue behind the only, busy worker is served, not reset (the contract's test, with `--steer health`).
#[test]
fn sigterm_serves_the_accept_queue_with_steering() {
    if bpf_permitted() {
        let args = [HEALTH, &["--workers", "1"]].concat();
        let mut cluster = Cluster::start(HANDOFF, &args).expect("start one steered worker");
        testkit::assert_sigterm_serves_the_accept_queue(&mut cluster, 1);
    }
}

/// The connections waiting in the accept queues of the sockets listening
/// on `port` (`ss -ltn`'s Recv-Q), summed.
fn queued(port: u16) -> u32 {
    let filter = format!("sport = :{port}");
    let output = Command::new("ss")
        .args(["-Hltn", &filter])
        .output()
        .expect("run ss");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u32>().ok())
        .sum()
}

/// Issue 24: both workers stopped (so both left out: the kernel's hash spreads the clients over both queues), 6 clients queued, SIGTERM, then the workers continued: the master takes both queues before it shuts the sockets down, and every client is answered, none reset.
#[test]
fn sigterm_serves_every_queue_with_steering() {
    // Port 0: nothing listens there, but it tells whether ss runs.
    if !bpf_permitted() || listen_backlogs(0).is_none() {
        return;
    }
    let mut cluster = testkit::start_two_workers(HANDOFF, HEALTH, REUSEPORT);
    let workers = cluster.worker_pids();
    for &pid in &workers {
        cluster
            .signal_worker(pid, testkit::Signal::SIGSTOP)
            .expect("SIGSTOP a worker");
    }
    let clients = testkit::Clients::start(cluster.addr(), 6);
    assert!(
        testkit::wait_until(testkit::HTTP_TIMEOUT, || queued(cluster.addr().port()) == 6),
        "{} of 6 clients queued",
        queued(cluster.addr().port())
    );
    cluster
        .signal(testkit::Signal::SIGTERM)
        .expect("SIGTERM the master");
    assert!(
        testkit::wait_until(testkit::STOP_TIMEOUT, || cluster
            .stderr()
            .contains("SIGTERM: stopping")),
        "the master did not log its stop"
    );
    for &pid in &workers {
        cluster
            .signal_worker(pid, testkit::Signal::SIGCONT)
            .expect("SIGCONT a worker");
    }
    for (client, answer) in clients.join().into_iter().enumerate() {
        let answer = answer.unwrap_or_else(|err| panic!("queued client {client}: {err:#}"));
        testkit::assert_worker_answer(&answer, &workers);
    }
    let status = cluster
        .wait_exit(testkit::STOP_TIMEOUT)
        .expect("the master exits");
    assert_eq!(status.code(), Some(0), "{status}");
}

/// Issue 24: `--steer health` pings every 50 ms, but `--worker-timeout 1s` still kills a stopped worker only once a ping has gone unanswered that long: it is left out within a fraction of a second, and replaced no sooner than 1 s (less one ping interval) after its stop.
#[test]
fn worker_timeout_is_unchanged_by_steering() {
    if !bpf_permitted() {
        return;
    }
    let timeout = std::time::Duration::from_secs(1);
    let args = [HEALTH, &["--worker-timeout", "1s"]].concat();
    let mut cluster = testkit::start_two_workers(HANDOFF, &args, REUSEPORT);
    let stalled = cluster.worker_pids()[0];
    cluster
        .signal_worker(stalled, testkit::Signal::SIGSTOP)
        .expect("SIGSTOP a worker");
    let stopped_at = std::time::Instant::now();
    assert!(
        testkit::wait_until(timeout, || left_out(&cluster, stalled)),
        "not left out within the second; stderr:\n{}",
        cluster.stderr()
    );
    let left_out_after = stopped_at.elapsed();
    let successor =
        testkit::wait_for_respawn(&mut cluster, stalled, timeout + testkit::RESPAWN_TIMEOUT);
    let replaced_after = stopped_at.elapsed();
    eprintln!("left out after {left_out_after:?}, replaced after {replaced_after:?}");
    assert!(
        successor.is_some(),
        "not replaced; stderr:\n{}",
        cluster.stderr()
    );
    // The ping unanswered may have been sent just before the stop.
    let earliest = timeout - handoff::steering::DEFAULT_EJECT_AFTER;
    assert!(
        replaced_after >= earliest,
        "replaced {replaced_after:?} after its stop"
    );
}

/// Runs `handoff` with `args` (and `--listen 127.0.0.1:0`): it must exit 2
/// with one line on stderr that contains `says`.
fn assert_exits_2_saying(args: &[&str], says: &str) {
    let args = [args, &["--workers", "1"]].concat();
    let (status, stderr) = testkit::run_expect_exit(HANDOFF, &args, testkit::EXIT_TIMEOUT)
        .unwrap_or_else(|err| panic!("handoff {args:?}: {err:#}"));
    assert_eq!(
        status.code(),
        Some(2),
        "handoff {args:?}: {status}; stderr:\n{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "handoff {args:?}, not one line:\n{stderr}"
    );
    assert!(
        stderr.contains(says),
        "handoff {args:?} does not say {says:?}:\n{stderr}"
    );
}

/// Issue 24: `--steer` with `--pass socket` or `listener` (where the workers share one socket, or none), `--eject-after` without `--steer health`, under 10 ms or not under `--worker-timeout`: one line, exit 2.
#[test]
fn steer_usage_errors_exit_2() {
    for pass in ["socket", "listener"] {
        for steer in ["health", "hash"] {
            let args = ["--pass", pass, "--steer", steer];
            assert_exits_2_saying(&args, "--steer needs --pass reuseport");
        }
    }
    let args = ["--pass", "reuseport", "--eject-after", "50ms"];
    assert_exits_2_saying(&args, "--eject-after needs --steer health");
    assert_exits_2_saying(
        &[HEALTH, &["--eject-after", "5ms"]].concat(),
        "--eject-after",
    );
    let args = [HEALTH, &["--eject-after", "1s", "--worker-timeout", "1s"]].concat();
    assert_exits_2_saying(&args, "--worker-timeout");
    assert_exits_2_saying(&[HEALTH, &["--steer", "fast"]].concat(), "--steer");
}

/// The capabilities `--steer health` needs, as `linux/capability.h`
/// numbers them: CAP_NET_ADMIN, CAP_SYS_ADMIN (which older kernels ask
/// instead of the next), CAP_BPF.
const BPF_CAPABILITIES: [libc::c_ulong; 3] = [12, 21, 39];

/// Issue 24: where BPF is not permitted (here: a child whose bounding set lacks CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN, so that exec gives root none of them), `--steer health` is one line saying so, exit 2, before any worker starts: never a silent fall back to the hash.
#[test]
fn steer_without_bpf_privilege_exits_2() {
    let mut command = Command::new(HANDOFF);
    command
        .args(HEALTH)
        .args(["--workers", "1", "--listen", "127.0.0.1:0"]);
    if cluster::steer::Program::load(1).is_ok() {
        // SAFETY: between fork and exec, in the child; prctl takes integers
        // and touches only the child's own capability bounding set.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                for capability in BPF_CAPABILITIES {
                    if libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    } else {
        eprintln!("this test runs without BPF already: no capability to drop");
    }
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start handoff without the BPF capabilities");
    // Its workers, if any, die with it (PR_SET_PDEATHSIG).
    let Some(status) = testkit::wait_or_kill(&mut child, testkit::EXIT_TIMEOUT) else {
        panic!("handoff --steer health without BPF still runs");
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut stderr)
        .expect("read its stderr");
    assert_eq!(status.code(), Some(2), "{status}; stderr:\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line:\n{stderr}");
    assert!(stderr.contains("not permitted"), "{stderr}");
}
