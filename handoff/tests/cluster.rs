//! End-to-end tests of the `handoff` binary, once per `--pass` value and, for
//! `--pass listener`, once per `--accept` strategy: the real master and two
//! workers on a free loopback port (`--workers 2 --listen 127.0.0.1:0`),
//! driven through the shared test bodies of `testkit`.

use testkit::{Clients, Cluster, Signal};

/// The binary under test, built by cargo for this test.
const HANDOFF: &str = env!("CARGO_BIN_EXE_handoff");

/// Starts `handoff --workers 2 --pass <pass> --listen 127.0.0.1:0` and checks
/// that its ready line names mode `handoff-<pass>`.
fn start(pass: &str) -> Cluster {
    testkit::start_two_workers(HANDOFF, &["--pass", pass], &format!("handoff-{pass}"))
}

/// Starts `handoff --workers 1 --pass <pass> --listen 127.0.0.1:0`: one worker,
/// so that every client reaches the same one.
fn start_one_worker(pass: &str) -> Cluster {
    Cluster::start(HANDOFF, &["--workers", "1", "--pass", pass])
        .unwrap_or_else(|err| panic!("start handoff --pass {pass} --workers 1: {err:#}"))
}

/// Starts `handoff --workers 2 <args> --listen 127.0.0.1:0` and checks that
/// its ready line names `mode`.
fn start_with(args: &[&str], mode: &str) -> Cluster {
    testkit::start_two_workers(HANDOFF, args, mode)
}

/// Writes one module of tests per way of running `handoff`:
/// `socket::keep_alive`, `listener_blocking::keep_alive`, ... `args` are the
/// flags that choose the way (`--pass`, `--accept`), `mode` the mode its
/// ready line names. `every_worker` says whether 40 connections must reach
/// both workers: not with `listener`, where the workers accept competitively
/// and the kernel may favour one.
macro_rules! pass_tests {
    ($($name:ident => args: [$($arg:literal),*], mode: $mode:literal, every_worker: $every_worker:literal;)*) => {$(
        /// The tests of `handoff` run with this module's flags.
        mod $name {
            use super::*;

            /// The flags under test.
            const ARGS: &[&str] = &[$($arg),*];
            /// The mode the ready line names.
            const MODE: &str = $mode;

            /// Starts two workers with [`ARGS`].
            fn start() -> Cluster {
                start_with(ARGS, MODE)
            }

            /// Starts one worker with [`ARGS`].
            fn start_one_worker() -> Cluster {
                let args = [&["--workers", "1"], ARGS].concat();
                Cluster::start(HANDOFF, &args)
                    .unwrap_or_else(|err| panic!("start handoff {args:?}: {err:#}"))
            }

            /// 40 one-shot requests get the documented answer from a ready worker (from both, except with `listener`).
            #[test]
            fn answers_from_the_workers() {
                testkit::assert_answers(&start(), 40, $every_worker);
            }

            /// Five requests on one keep-alive connection are all answered, by the same worker.
            #[test]
            fn keep_alive() {
                testkit::assert_keep_alive(&start(), 5);
            }

            /// `?work_us=20000` makes the worker compute for about 20 ms before it answers.
            #[test]
            fn work_us_delays_the_answer() {
                testkit::assert_work_delays_answer(&start());
            }

            /// The master keeps no fd per client connection: 200 open connections add fewer than 20.
            #[test]
            fn master_holds_no_fd_per_connection() {
                testkit::assert_fd_cost(&start(), 200, 0..=19);
            }

            /// A SIGKILLed worker is respawned and announced, and no later request reaches the dead pid.
            #[test]
            fn respawns_a_killed_worker() {
                testkit::assert_respawns_killed_worker(&mut start());
            }

            /// SIGKILL of the master leaves no orphan: every worker is gone within 3 s.
            #[test]
            fn master_sigkill_leaves_no_orphans() {
                testkit::assert_master_kill_leaves_no_orphans(&mut start());
            }

            /// SIGTERM stops the master with exit code 0, and its workers with it.
            #[test]
            fn sigterm_exits_0() {
                testkit::assert_sigterm_stops_cleanly(&mut start());
            }

            /// A request in flight when SIGTERM arrives is still answered, then the master exits 0.
            #[test]
            fn sigterm_finishes_the_request_in_flight() {
                testkit::assert_sigterm_finishes_in_flight(&mut start());
            }

            /// A request that is not HTTP gets 400, an oversized head 431; the workers survive.
            #[test]
            fn bad_http_input() {
                testkit::assert_bad_http_input(&start());
            }

            /// A client that never finishes its headers is cut after `--header-timeout`.
            #[test]
            fn slow_headers_are_cut() {
                let args = [ARGS, &["--header-timeout", "1s"]].concat();
                let cluster = start_with(&args, MODE);
                testkit::assert_slow_headers_are_cut(&cluster);
            }

            /// With `--max-fds 64` and 150 clients, the master neither dies nor spins, and recovers.
            #[test]
            fn survives_fd_exhaustion() {
                let args = [ARGS, &["--max-fds", "64"]].concat();
                let cluster = start_with(&args, MODE);
                testkit::assert_survives_fd_exhaustion(&cluster);
            }

            /// A worker killed under load is respawned; at most the requests in flight on it fail.
            #[test]
            fn worker_killed_under_load() {
                testkit::assert_worker_kill_under_load(&mut start());
            }

            /// A port that is already taken makes the binary exit 2 with a stderr line naming the address.
            #[test]
            fn taken_port_exits_2() {
                testkit::assert_taken_port_exits_2(HANDOFF, ARGS);
            }

            /// Regression (issue 10): a second SIGTERM during the graceful stop stops at once: exit 143, workers killed.
            #[test]
            fn second_sigterm_stops_at_once() {
                testkit::assert_second_signal_stops_at_once(&mut start(), Signal::SIGTERM, Signal::SIGTERM);
            }

            /// Regression (issues 10, 19): `--header-timeout 300000000000y` (anything over a day) and `--worker-timeout 1ms` (anything under 100 ms) are bad usage, exit 2.
            #[test]
            fn absurd_durations_exit_2() {
                testkit::assert_absurd_durations_exit_2(HANDOFF, ARGS);
            }

            /// Regression (issue 10): a stopped worker (alive, answering nothing) is killed and replaced within `--worker-timeout` and a second.
            #[test]
            fn replaces_a_stalled_worker() {
                let args = [ARGS, &["--worker-timeout", "1s"]].concat();
                let mut cluster = start_with(&args, MODE);
                testkit::assert_replaces_a_stalled_worker(&mut cluster, std::time::Duration::from_secs(1));
            }

            /// Regression (issue 10): a worker sending frames it has no reason to send is killed at once and replaced; the master stays small and stops cleanly.
            #[test]
            fn kills_misbehaving_workers() {
                let args = [ARGS, &["--worker-timeout", "60s"]].concat();
                let mut cluster = start_with(&args, MODE);
                testkit::assert_kills_misbehaving_workers(&mut cluster);
            }

            /// Regression (issue 10): a client arriving 0.3 s after SIGTERM is refused at once (not reset after a wait); the requests in flight are answered.
            #[test]
            fn sigterm_refuses_new_clients() {
                testkit::assert_sigterm_refuses_new_clients(&mut start());
            }

            /// Regression (issue 10): a client pipelining busy requests does not freeze the worker; another client is answered between them.
            #[test]
            fn pipelined_work_leaves_turns() {
                testkit::assert_pipelined_work_leaves_turns(&start_one_worker());
            }

            /// Regression (issue 10): SIGTERM during a pipeline of busy requests: the request being computed is answered, the master exits 0 without SIGKILL.
            #[test]
            fn sigterm_during_pipeline() {
                testkit::assert_sigterm_during_pipeline(&mut start());
            }

            /// Issue 12: three takeovers in a row under load (new connections and keep-alive): no request fails, answers only from the old or new generation, old masters exit 0 and leave nothing.
            #[test]
            fn takeovers_under_load() {
                testkit::assert_takeovers_under_load(HANDOFF, ARGS, MODE);
            }

            /// Issue 12: a request in flight (`?work_us=500000`) at the takeover is answered 200.
            #[test]
            fn takeover_answers_in_flight() {
                testkit::assert_takeover_answers_in_flight(HANDOFF, ARGS, MODE);
            }

            /// Issue 12: a new master SIGKILLed before its ready: the old one prints handover_failed and serves on, same port, no failed request; issue 19: it removes the dead one's socket beside its path.
            #[test]
            fn failed_takeover_changes_nothing() {
                testkit::assert_failed_takeover_changes_nothing(HANDOFF, ARGS, MODE);
            }

            /// Issue 12: the upgrade socket is 0600, and a peer of another uid (nobody) is refused while the master serves on.
            #[test]
            fn upgrade_socket_is_private() {
                testkit::assert_upgrade_socket_is_private(HANDOFF, ARGS, MODE);
            }

            /// Issue 12: SIGTERM to the old master during a takeover does not shut the sockets down: a client then is answered by the new workers.
            #[test]
            fn sigterm_during_takeover_keeps_the_sockets() {
                testkit::assert_sigterm_during_takeover_keeps_the_sockets(HANDOFF, ARGS, MODE);
            }

            /// Issue 12 item 2: `--init-delay 500ms` holds the ready line back at least that long.
            #[test]
            fn init_delay_delays_ready() {
                testkit::assert_init_delay_delays_ready(HANDOFF, ARGS, MODE);
            }

            /// Issue 12: bad --takeover and --upgrade-socket paths: one line, exit 2, the running master undisturbed; a stale socket is replaced.
            #[test]
            fn bad_upgrade_input_exits_2() {
                testkit::assert_bad_upgrade_input_exits_2(HANDOFF, ARGS, MODE);
            }

            /// Issue 26: socket activation: the master serves the service manager's socket, says so, and leaves it listening at its stop.
            #[test]
            fn socket_activation_leaves_the_socket() {
                testkit::assert_socket_activation_serves_and_leaves_the_socket(HANDOFF, ARGS, MODE);
            }

            /// Issue 26: `--grace 1s` bounds the whole stop (SIGTERM, and the old master's after a handover) with a request in flight: about a second, not 5.
            #[test]
            fn grace_bounds_the_stop() {
                testkit::assert_grace_bounds_the_stop(HANDOFF, ARGS, MODE);
            }

            /// Issue 19: SIGTERM, then SIGINT, to a new master waiting for a stopped old master's offer, then while its workers start: it exits 0 leaving the sockets listening and nothing in the folder; the old master serves on with no failed request, and a takeover after works.
            #[test]
            fn new_master_stopped_before_its_ready() {
                testkit::assert_new_master_stopped_before_its_ready(HANDOFF, ARGS, MODE);
            }

            /// Issue 19: the old master stopped (SIGSTOP) while the new one says ready; the new one SIGTERMed, SIGINTed, SIGKILLed, or giving up after 3 s: the old one, continued, prints handover_failed (never handover), serves on, and only its upgrade socket is left in the folder.
            #[test]
            fn new_master_lost_after_its_ready() {
                testkit::assert_new_master_lost_after_its_ready(HANDOFF, ARGS, MODE);
            }

            /// Issue 19: a new master silent (SIGSTOP) while its workers start is called off by the old one within seconds; continued, it exits 1 with one line.
            #[test]
            fn silent_new_master_is_called_off() {
                testkit::assert_silent_new_master_is_called_off(HANDOFF, ARGS, MODE);
            }

            /// Issue 19: the old master SIGKILLed during a takeover: the new one owns the sockets, prints ready (takeover_from the dead one) and serves.
            #[test]
            fn old_master_killed_during_takeover() {
                testkit::assert_old_master_killed_during_takeover(HANDOFF, ARGS, MODE);
            }

            /// Issue 19: a worker stalled at the handover: the old master still exits 0 within its grace period (plus 2 s), and no client of it is lost.
            #[test]
            fn stalled_worker_at_handover() {
                testkit::assert_stalled_worker_at_handover(HANDOFF, ARGS, MODE);
            }
        }
    )*};
}

pass_tests! {
    socket => args: ["--pass", "socket"], mode: "handoff-socket", every_worker: true;
    listener => args: ["--pass", "listener"], mode: "handoff-listener", every_worker: false;
    listener_single => args: ["--pass", "listener", "--accept", "single"], mode: "handoff-listener", every_worker: false;
    listener_exclusive => args: ["--pass", "listener", "--accept", "exclusive"], mode: "handoff-listener", every_worker: false;
    listener_blocking => args: ["--pass", "listener", "--accept", "blocking"], mode: "handoff-listener", every_worker: false;
    reuseport => args: ["--pass", "reuseport"], mode: "handoff-reuseport", every_worker: true;
}

/// Issue 12: a `handoff --pass listener` master cannot take over from a `--pass socket` one (nor the reverse): exit 2, one line, the old master untouched.
#[test]
fn takeover_mode_mismatch_exits_2() {
    let socket = ["--pass", "socket"];
    let listener = ["--pass", "listener", "--workers", "2"];
    testkit::assert_mode_mismatch_exits_2(HANDOFF, &socket, "handoff-socket", HANDOFF, &listener);
    let listener = ["--pass", "listener"];
    let socket = ["--pass", "socket", "--workers", "2"];
    testkit::assert_mode_mismatch_exits_2(HANDOFF, &listener, "handoff-listener", HANDOFF, &socket);
}

/// Issue 26: a service manager passing a UDP socket, a socket that does not listen, or two sockets where the mode takes one: one line, exit 2.
#[test]
fn bad_activation_exits_2() {
    testkit::assert_bad_activation_exits_2(HANDOFF, &["--pass", "socket"]);
}

/// Issue 26: under systemd-socket-activate, the first client (the one that starts the master) is served.
#[test]
fn systemd_socket_activate_serves() {
    testkit::assert_systemd_socket_activate_serves(HANDOFF, &["--pass", "socket"]);
}

/// Issue 19: `--takeover` of a socket served by a process of another uid (offering a listener of its own) is refused: one line naming the uid, exit 2.
#[test]
fn takeover_refuses_another_uid() {
    testkit::assert_takeover_refuses_another_uid(HANDOFF, &["--pass", "listener"]);
}

/// Issue 19: a peer of our uid that offers a UDP socket, a file, a socket that does not listen, one bound elsewhere, or lies about its pid: one line, exit 2.
#[test]
fn takeover_checks_what_it_receives() {
    testkit::assert_takeover_checks_what_it_receives(HANDOFF, &["--pass", "socket"]);
}

/// Issue 19: `--takeover` and `--upgrade-socket` of a master whose backlog is full exit 2 within seconds instead of hanging in connect(2).
#[test]
fn connect_to_a_stalled_master_is_bounded() {
    testkit::assert_connect_to_a_stalled_master_is_bounded(HANDOFF, &["--pass", "socket"]);
}

/// Issue 19: 300 silent peers on the upgrade socket cost a few fds and log lines; a peer silent after its hello is dropped within seconds and does not hold the takeover.
#[test]
fn silent_peers_cost_nothing() {
    testkit::assert_silent_peers_cost_nothing(HANDOFF, &["--pass", "socket"], "handoff-socket");
}

/// Issue 12: `--pass reuseport` with another `--workers` (one socket per slot) cannot take over: exit 2, one line, the old master untouched.
#[test]
fn reuseport_takeover_workers_mismatch_exits_2() {
    let reuseport = ["--pass", "reuseport"];
    let three = ["--pass", "reuseport", "--workers", "3"];
    testkit::assert_mode_mismatch_exits_2(
        HANDOFF,
        &reuseport,
        "handoff-reuseport",
        HANDOFF,
        &three,
    );
}

/// `--pass socket`: connections handed to a worker that dies before acknowledging
/// them (it is stopped with SIGSTOP, then killed) are handed to another worker
/// and answered, not dropped.
#[test]
fn socket_unacknowledged_connections_go_to_another_worker() {
    let cluster = start("socket");
    let stopped = cluster.worker_pids()[0];
    let master_fds = || testkit::fd_count(cluster.master_pid()).unwrap();
    let base = master_fds();
    cluster.signal_worker(stopped, Signal::SIGSTOP).unwrap();
    // Round robin hands some of these to the stopped worker, which cannot
    // acknowledge them, and the rest to the other, which answers them: 3
    // and 3 when they come in one wake-up, 2 to 4 for the stopped one when
    // they come in several (each wake-up splits its own evenly, the larger
    // share first). Settled: every connection answered or held by the
    // master, which keeps its copy of each unacknowledged one.
    let clients = Clients::start(cluster.addr(), 6);
    let settled = || {
        let held = master_fds().saturating_sub(base);
        let answered = clients.answered();
        answered >= 1 && held >= 1 && answered + held == 6
    };
    assert!(
        testkit::wait_until(testkit::HTTP_TIMEOUT, settled),
        "the running worker did not answer its share while the master held the rest: {} answered, {} fds held over {base}",
        clients.answered(),
        master_fds().saturating_sub(base)
    );
    cluster.signal_worker(stopped, Signal::SIGKILL).unwrap();
    for response in clients.join() {
        let response = response.expect("a handed connection was dropped");
        assert_ne!(
            response.worker_pid(),
            Some(stopped),
            "answered by the stopped worker"
        );
    }
}

/// `--pass socket`: a worker with no free fd receives a handoff without its
/// fd (MSG_CTRUNC), rejects it, and the connection is served by the other
/// worker; once the full worker has fds again, it serves again.
#[test]
fn socket_worker_out_of_fds_hands_back() {
    let cluster = start("socket");
    let (full, other) = (cluster.worker_pids()[0], cluster.worker_pids()[1]);
    testkit::exhaust_fds(full).unwrap();
    for _ in 0..20 {
        let response =
            testkit::get(cluster.addr(), "/", true).expect("a rejected handoff was dropped");
        assert_eq!(response.worker_pid(), Some(other));
    }
    assert!(testkit::is_alive(full), "the worker out of fds died");
    testkit::set_nofile_limit(full, 1024).unwrap();
    assert!(
        testkit::wait_until(testkit::HTTP_TIMEOUT, || {
            testkit::get(cluster.addr(), "/", true).is_ok_and(|r| r.worker_pid() == Some(full))
        }),
        "the worker does not serve again once it has fds"
    );
}

/// `--pass listener`: a worker with no free fd fails to accept and backs off
/// (no spinning); the other worker takes every connection from the shared queue.
#[test]
fn listener_worker_out_of_fds_leaves_the_queue_to_the_other() {
    let cluster = start("listener");
    let (full, other) = (cluster.worker_pids()[0], cluster.worker_pids()[1]);
    testkit::exhaust_fds(full).unwrap();
    let cpu_before = testkit::cpu_time(full).unwrap();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let response = testkit::get(cluster.addr(), "/", true).expect("a connection was lost");
        assert_eq!(response.worker_pid(), Some(other));
    }
    let cpu = testkit::cpu_time(full).unwrap() - cpu_before;
    assert!(
        cpu.as_secs_f64() < 0.1 * started.elapsed().as_secs_f64().max(1.0),
        "the worker out of fds spins: {cpu:?} of CPU in {:?}",
        started.elapsed()
    );
    assert!(testkit::is_alive(full), "the worker out of fds died");
}

/// `--pass reuseport`: a worker with no free fd cannot accept from its own
/// queue, so the connections the kernel hashes to it wait there (they are not
/// lost, nor taken by the other worker) and are served once it has fds again.
#[test]
fn reuseport_worker_out_of_fds_delays_its_share() {
    let cluster = start("reuseport");
    let full = cluster.worker_pids()[0];
    testkit::exhaust_fds(full).unwrap();
    let clients = Clients::start(cluster.addr(), 20);
    // The other worker answers its share; the full worker's share waits.
    assert!(testkit::wait_until(testkit::HTTP_TIMEOUT, || clients
        .answered()
        >= 1));
    assert!(
        clients.answered() < 20,
        "no connection was hashed to the full worker"
    );
    testkit::set_nofile_limit(full, 1024).unwrap();
    let pids: Vec<Option<u32>> = clients
        .join()
        .into_iter()
        .map(|r| r.expect("a waiting connection was lost").worker_pid())
        .collect();
    assert!(
        pids.contains(&Some(full)),
        "the full worker's share was served by the other"
    );
}

/// `--pass reuseport`: connections waiting in a worker's own accept queue when
/// it dies are not lost: the master keeps its copy of that listener, so the
/// queue lives on and the respawned worker, handed the same socket, serves them.
#[test]
fn reuseport_queue_survives_its_worker() {
    let mut cluster = start("reuseport");
    let stopped = cluster.worker_pids()[0];
    cluster.signal_worker(stopped, Signal::SIGSTOP).unwrap();
    let clients = Clients::start(cluster.addr(), 20);
    assert!(testkit::wait_until(testkit::HTTP_TIMEOUT, || clients
        .answered()
        >= 1));
    assert!(
        clients.answered() < 20,
        "no connection was hashed to the stopped worker"
    );
    cluster.signal_worker(stopped, Signal::SIGKILL).unwrap();
    let respawn = cluster
        .next_event(testkit::RESPAWN_TIMEOUT)
        .expect("a respawn event");
    let successor = respawn["pid"].as_u64().map(|pid| pid as u32);
    let pids: Vec<Option<u32>> = clients
        .join()
        .into_iter()
        .map(|r| r.expect("a queued connection was lost").worker_pid())
        .collect();
    assert!(
        pids.contains(&successor),
        "the successor served none of the queue it inherited"
    );
}

/// `--workers 0` is bad usage: exit code 2.
#[test]
fn zero_workers_exits_2() {
    testkit::assert_bad_usage_exits_2(HANDOFF, &["--workers", "0"]);
}

/// An unknown `--pass` value is bad usage: exit code 2.
#[test]
fn unknown_pass_exits_2() {
    testkit::assert_bad_usage_exits_2(HANDOFF, &["--pass", "bogus", "--workers", "2"]);
}

/// Regression (issue 10): `--pass socket` at its fd limit (room for 8 client fds) under 48 clients warns "accept paused" once per episode, not once per retry.
#[test]
fn socket_accept_pause_warns_once_at_the_fd_limit() {
    // The master's own fds (16 today, with two workers), measured rather
    // than assumed, so the room left for clients stays 8.
    let base = testkit::fd_count(start("socket").master_pid()).expect("the master's fds");
    let max_fds = (base + 8).to_string();
    let args = ["--pass", "socket", "--max-fds", &max_fds];
    let cluster = testkit::start_two_workers(HANDOFF, &args, "handoff-socket");
    testkit::assert_one_accept_warning_at_the_fd_limit(&cluster);
}

/// Regression (issue 10): a SIGINT after a SIGTERM also stops at once, with exit code 130.
#[test]
fn sigint_after_sigterm_stops_at_once() {
    testkit::assert_second_signal_stops_at_once(
        &mut start("socket"),
        Signal::SIGTERM,
        Signal::SIGINT,
    );
}

/// Regression (issue 10): `--pass socket`: a worker's last `Ack`, sent just before it exits, is read before its exit is handled, so the acknowledged connection is never handed to a second worker.
#[test]
fn socket_ack_before_exit_is_kept() {
    let args = ["--pass", "socket", "--worker-timeout", "60s"];
    let mut cluster = testkit::start_two_workers(HANDOFF, &args, "handoff-socket");
    testkit::assert_ack_before_exit_is_kept(&mut cluster);
}

/// Regression (issue 10): `--pass socket`: with the only worker busy and its window of 8 handoffs full, 4 more clients wait in the master's accept queue at SIGTERM; they are handed out and served, not reset.
#[test]
fn socket_sigterm_serves_the_accept_queue() {
    testkit::assert_sigterm_serves_the_accept_queue(&mut start_one_worker("socket"), 12);
}

/// Issue 10 item 3, `--pass listener`: a client waiting in the accept queue behind the only, busy worker at SIGTERM is still served.
#[test]
fn listener_sigterm_serves_the_accept_queue() {
    testkit::assert_sigterm_serves_the_accept_queue(&mut start_one_worker("listener"), 1);
}

/// Issue 10 item 3, `--pass reuseport`: a client waiting in the accept queue behind the only, busy worker at SIGTERM is still served.
#[test]
fn reuseport_sigterm_serves_the_accept_queue() {
    testkit::assert_sigterm_serves_the_accept_queue(&mut start_one_worker("reuseport"), 1);
}

/// The values of `--accept`, in the order the tests print them.
const STRATEGIES: [&str; 4] = ["drain", "single", "exclusive", "blocking"];

/// Waits for `count` respawn lines and returns the successors' pids.
fn next_respawns(cluster: &mut Cluster, count: usize) -> Vec<u32> {
    let deadline = std::time::Instant::now() + testkit::RESPAWN_TIMEOUT;
    let mut successors = Vec::new();
    while successors.len() < count {
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        match cluster.next_event(remaining) {
            Some(event) if event["event"] == "respawn" => {
                let pid = event["pid"].as_u64().expect("a respawn line names its pid");
                successors.push(u32::try_from(pid).expect("a pid fits in u32"));
            }
            Some(_) if !remaining.is_zero() => {}
            _ => panic!(
                "{} of {count} respawn lines; stderr:\n{}",
                successors.len(),
                cluster.stderr()
            ),
        }
    }
    successors
}

/// Writes one module of tests per `--accept` strategy (`--pass listener`),
/// for what only a shared listener has; the contract itself runs in the
/// `listener_<strategy>` modules above.
macro_rules! strategy_tests {
    ($($name:ident => $strategy:literal;)*) => {$(
        /// The tests of `handoff --pass listener --accept` with this strategy.
        mod $name {
            use super::*;

            /// The flags under test.
            const ARGS: &[&str] = &["--pass", "listener", "--accept", $strategy];

            /// Every worker SIGKILLed: the successors, handed the same listener, accept on it and answer.
            #[test]
            fn successors_accept_on_the_same_listener() {
                let mut cluster = start_with(ARGS, "handoff-listener");
                for pid in cluster.worker_pids() {
                    cluster.signal_worker(pid, Signal::SIGKILL).expect("SIGKILL a worker");
                }
                let successors = next_respawns(&mut cluster, 2);
                for _ in 0..10 {
                    let response = testkit::get(cluster.addr(), "/", true)
                        .expect("the successors answer on the same address");
                    testkit::assert_worker_answer(&response, &successors);
                }
            }

            /// A worker stopped alone (SIGTERM to it, not to the master) exits, is replaced, and no request is lost meanwhile.
            #[test]
            fn worker_sigterm_alone_is_replaced() {
                let mut cluster = start_with(ARGS, "handoff-listener");
                let stopped = cluster.worker_pids()[0];
                cluster.signal_worker(stopped, Signal::SIGTERM).expect("SIGTERM a worker");
                let successor = next_respawns(&mut cluster, 1)[0];
                let mut live = cluster.worker_pids();
                live.retain(|&pid| pid != stopped);
                live.push(successor);
                for _ in 0..20 {
                    let response = testkit::get(cluster.addr(), "/", true).expect("an answer");
                    testkit::assert_worker_answer(&response, &live);
                }
            }

            /// Three clients wait behind the only, busy worker at SIGTERM (in the accept queue, or already taken by the worker's acceptor): all are served.
            #[test]
            fn sigterm_serves_the_accept_queue() {
                let args = [&["--workers", "1"], ARGS].concat();
                let mut cluster = Cluster::start(HANDOFF, &args)
                    .unwrap_or_else(|err| panic!("start handoff {args:?}: {err:#}"));
                testkit::assert_sigterm_serves_the_accept_queue(&mut cluster, 3);
            }
        }
    )*};
}

strategy_tests! {
    accept_drain => "drain";
    accept_single => "single";
    accept_exclusive => "exclusive";
    accept_blocking => "blocking";
}

/// Issue 13: 400 sequential connections (each closed before the next) to 4
/// workers: with `--accept blocking` every worker gets 15–35 % of them, and
/// the kernel's FIFO queue of blocked acceptors turns over: at least 75 % of
/// the runs of 4 consecutive connections reach 4 different workers (a strict
/// rotation gives 100 %, a uniform draw 9.4 %; `drain` and `single` gave
/// 4–50 % here, while they often meet the 15–35 % range too; `exclusive`
/// about 0 %, one worker taking nearly all). The other strategies run the
/// same load and print their spread and turnover, not asserted: whom epoll
/// wakes first depends on the scheduler and the order of registration.
#[test]
fn accept_strategies_spread_sequential_connections() {
    const CONNECTIONS: usize = 400;
    let mut blocking = None;
    for strategy in STRATEGIES {
        let args = ["--workers", "4", "--pass", "listener", "--accept", strategy];
        let cluster = Cluster::start(HANDOFF, &args)
            .unwrap_or_else(|err| panic!("start handoff {args:?}: {err:#}"));
        let workers = cluster.worker_pids();
        let mut counts = std::collections::HashMap::<u32, usize>::new();
        let mut sequence = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let response = testkit::get(cluster.addr(), "/", true).expect("an answer");
            let pid = testkit::assert_worker_answer(&response, &workers);
            *counts.entry(pid).or_default() += 1;
            sequence.push(pid);
        }
        // Turns: runs of 4 consecutive connections that reach 4 different workers.
        let turns = sequence
            .windows(4)
            .filter(|run| (1..4).all(|i| !run[..i].contains(&run[i])))
            .count();
        let turnover = turns as f64 / (CONNECTIONS - 3) as f64;
        let mut shares: Vec<f64> = workers
            .iter()
            .map(|pid| counts.get(pid).copied().unwrap_or(0) as f64 / CONNECTIONS as f64)
            .collect();
        shares.sort_by(f64::total_cmp);
        let percent: Vec<String> = shares
            .iter()
            .map(|s| format!("{:.1}%", s * 100.0))
            .collect();
        eprintln!(
            "--accept {strategy}: shares of {CONNECTIONS} sequential connections, sorted: {percent:?}; \
             runs of 4 that reach 4 workers: {:.1}%",
            turnover * 100.0
        );
        if strategy == "blocking" {
            blocking = Some((shares, turnover));
        }
    }
    let (shares, turnover) = blocking.expect("blocking ran");
    assert!(
        shares.iter().all(|share| (0.15..=0.35).contains(share)),
        "--accept blocking: a worker outside 15-35 %: {shares:?}"
    );
    assert!(
        turnover >= 0.75,
        "--accept blocking: only {:.1}% of the runs of 4 connections reached 4 workers",
        turnover * 100.0
    );
}

/// Issue 13: `--accept` with a mode other than `--pass listener` is bad usage: exit 2, one line on stderr.
#[test]
fn accept_needs_pass_listener() {
    for pass in ["socket", "reuseport"] {
        let args = ["--pass", pass, "--accept", "blocking", "--workers", "1"];
        let (status, stderr) = testkit::run_expect_exit(HANDOFF, &args, testkit::HTTP_TIMEOUT)
            .unwrap_or_else(|err| panic!("handoff {args:?}: {err:#}"));
        assert_eq!(
            status.code(),
            Some(2),
            "handoff {args:?}: {status}; stderr:\n{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "not one line:\n{stderr}");
        assert!(
            stderr.contains("--accept"),
            "the error does not name the flag:\n{stderr}"
        );
    }
    testkit::assert_bad_usage_exits_2(HANDOFF, &["--pass", "listener", "--accept", "bogus"]);
}
