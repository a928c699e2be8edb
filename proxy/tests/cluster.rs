//! End-to-end tests of the `proxy` binary: the real master and two workers on a
//! free loopback port (`--workers 2 --listen 127.0.0.1:0`), driven through the
//! shared test bodies of `testkit`, twice: `tcp_copy::…` (`--upstream tcp
//! --relay copy`, the defaults) and `unix_splice::…` (`--upstream unix
//! --relay splice`). Each value of each flag runs the whole contract once,
//! in two runs rather than four: the contract is about the master and its
//! workers (supervision, signals, upgrades, the answer), which neither flag
//! changes; what the flags change, how a relay reaches its worker and moves
//! its bytes, `relay.rs` tests in all four pairs.

use testkit::{Cluster, Signal};

/// The binary under test, built by cargo for this test.
const PROXY: &str = env!("CARGO_BIN_EXE_proxy");

/// Writes one module of tests per pair of `--upstream` and `--relay`:
/// `tcp_copy::keep_alive`, `unix_splice::keep_alive`, ...; `ARGS` are the
/// flags that choose it.
macro_rules! upstream_tests {
    ($($name:ident => $upstream:literal, $relay:literal;)*) => {$(
        /// The tests of `proxy` with this module's `--upstream` and `--relay`.
        mod $name {
            use super::*;

            /// The flags under test.
            const ARGS: &[&str] = &["--upstream", $upstream, "--relay", $relay];

            /// Starts `proxy --workers 2 --listen 127.0.0.1:0` with [`ARGS`] and checks its ready line.
            fn start() -> Cluster {
                testkit::start_two_workers(PROXY, ARGS, "proxy")
            }

            /// 40 one-shot requests get the documented answer from a ready worker, and both workers serve.
            #[test]
            fn answers_from_every_worker() {
                testkit::assert_answers(&start(), 40, true);
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

            /// Issue 25: `?bytes=1048576` arrives whole through the relay, twice on one connection; `?bytes=0` is empty; `work_us` still applies.
            #[test]
            fn bytes_answers_that_many() {
                testkit::assert_bytes_answers_that_many(&start());
            }

            /// Issue 25: a 64 KiB POST body (content-length, then chunked) is relayed whole and counted in `x-received-bytes`.
            #[test]
            fn request_body_is_counted() {
                testkit::assert_request_body_is_counted(&start());
            }

            /// Issue 25: `?bytes=` over 64 MiB is a 400; a body over it a 413 that closes the connection, announced or chunked.
            #[test]
            fn payload_bounds() {
                testkit::assert_payload_bounds(&start());
            }

            /// The master holds two fds per open client connection (the client's and its own to a worker), and releases them on close.
            #[test]
            fn master_holds_two_fds_per_connection() {
                testkit::assert_fd_cost(&start(), 200, 360..=440);
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
                let cluster = testkit::start_two_workers(PROXY, &[ARGS, &["--header-timeout", "1s"]].concat(), "proxy");
                testkit::assert_slow_headers_are_cut(&cluster);
            }

            /// With `--max-fds 64` and 150 clients, the master neither dies nor spins, and recovers.
            #[test]
            fn survives_fd_exhaustion() {
                let cluster = testkit::start_two_workers(PROXY, &[ARGS, &["--max-fds", "64"]].concat(), "proxy");
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
                testkit::assert_taken_port_exits_2(PROXY, ARGS);
            }

            /// `--workers 0` is bad usage: exit code 2.
            #[test]
            fn zero_workers_exits_2() {
                testkit::assert_bad_usage_exits_2(PROXY, &[ARGS, &["--workers", "0"]].concat());
            }

            /// Regression (issue 10): a second SIGTERM during the graceful stop stops at once: exit 143, workers killed.
            #[test]
            fn second_sigterm_stops_at_once() {
                testkit::assert_second_signal_stops_at_once(&mut start(), Signal::SIGTERM, Signal::SIGTERM);
            }

            /// Regression (issue 10): a second SIGINT during the graceful stop stops at once: exit 130.
            #[test]
            fn second_sigint_stops_at_once() {
                testkit::assert_second_signal_stops_at_once(&mut start(), Signal::SIGINT, Signal::SIGINT);
            }

            /// Regression (issues 10, 19): `--header-timeout 300000000000y` (anything over a day) and `--worker-timeout 1ms` (anything under 100 ms) are bad usage: exit 2, one line.
            #[test]
            fn absurd_durations_exit_2() {
                testkit::assert_absurd_durations_exit_2(PROXY, ARGS);
            }

            /// Regression (issue 10): a stopped worker (alive, answering nothing) is killed and replaced within `--worker-timeout` and a second.
            #[test]
            fn replaces_a_stalled_worker() {
                let mut cluster = testkit::start_two_workers(PROXY, &[ARGS, &["--worker-timeout", "1s"]].concat(), "proxy");
                testkit::assert_replaces_a_stalled_worker(&mut cluster, std::time::Duration::from_secs(1));
            }

            /// Regression (issue 10): a worker sending frames it has no reason to send is killed at once and replaced; the master stays small and stops cleanly.
            #[test]
            fn kills_misbehaving_workers() {
                let mut cluster = testkit::start_two_workers(PROXY, &[ARGS, &["--worker-timeout", "60s"]].concat(), "proxy");
                testkit::assert_kills_misbehaving_workers(&mut cluster);
            }

            /// Issue 10 item 3: a client arriving 0.3 s after SIGTERM is refused at once (not reset after a wait); the requests in flight are answered.
            #[test]
            fn sigterm_refuses_new_clients() {
                testkit::assert_sigterm_refuses_new_clients(&mut start());
            }

            /// Issue 10 item 6: a client pipelining busy requests does not freeze the worker; another client is answered between them.
            #[test]
            fn pipelined_work_leaves_turns() {
                let cluster = Cluster::start(PROXY, &[ARGS, &["--workers", "1"]].concat()).expect("start proxy --workers 1");
                testkit::assert_pipelined_work_leaves_turns(&cluster);
            }

            /// Issue 10 item 6: SIGTERM during a pipeline of busy requests: the request being computed is answered, the master exits 0 without SIGKILL.
            #[test]
            fn sigterm_during_pipeline() {
                testkit::assert_sigterm_during_pipeline(&mut start());
            }

            /// Issue 12: three takeovers in a row under load (new connections and keep-alive): no request fails, answers only from the old or new generation, old masters exit 0 and leave nothing.
            #[test]
            fn takeovers_under_load() {
                testkit::assert_takeovers_under_load(PROXY, ARGS, "proxy");
            }

            /// Issue 12: a request in flight (`?work_us=500000`) at the takeover is answered 200.
            #[test]
            fn takeover_answers_in_flight() {
                testkit::assert_takeover_answers_in_flight(PROXY, ARGS, "proxy");
            }

            /// Issue 12: a new master SIGKILLed before its ready: the old one prints handover_failed and serves on, same port, no failed request; issue 19: it removes the dead one's socket beside its path.
            #[test]
            fn failed_takeover_changes_nothing() {
                testkit::assert_failed_takeover_changes_nothing(PROXY, ARGS, "proxy");
            }

            /// Issue 12: the upgrade socket is 0600, and a peer of another uid (nobody) is refused while the master serves on.
            #[test]
            fn upgrade_socket_is_private() {
                testkit::assert_upgrade_socket_is_private(PROXY, ARGS, "proxy");
            }

            /// Issue 12: bad --takeover and --upgrade-socket paths: one line, exit 2, the running master undisturbed; a stale socket is replaced.
            #[test]
            fn bad_upgrade_input_exits_2() {
                testkit::assert_bad_upgrade_input_exits_2(PROXY, ARGS, "proxy");
            }

            /// Issue 12: a `handoff` master cannot take over from a `proxy` one: exit 2, one line, the old master untouched.
            #[test]
            fn takeover_mode_mismatch_exits_2() {
                let handoff = testkit::workspace_bin("handoff").expect("the handoff binary");
                let handoff = handoff.to_str().expect("a UTF-8 path");
                testkit::assert_mode_mismatch_exits_2(PROXY, ARGS, "proxy", handoff, &["--workers", "2"]);
            }

            /// Issue 12 item 2: `--init-delay 500ms` holds the ready line back at least that long.
            #[test]
            fn init_delay_delays_ready() {
                testkit::assert_init_delay_delays_ready(PROXY, ARGS, "proxy");
            }

            /// Issue 26: socket activation: the master serves the service manager's socket, says so, and leaves it listening at its stop.
            #[test]
            fn socket_activation_leaves_the_socket() {
                testkit::assert_socket_activation_serves_and_leaves_the_socket(PROXY, ARGS, "proxy");
            }

            /// Issue 26: `--grace 1s` bounds the whole stop (SIGTERM, and the old master's after a handover) with a request in flight: about a second, not 5.
            #[test]
            fn grace_bounds_the_stop() {
                testkit::assert_grace_bounds_the_stop(PROXY, ARGS, "proxy");
            }

            /// Issue 19: SIGTERM, then SIGINT, to a new master waiting for a stopped old master's offer, then while its workers start: it exits 0 leaving the socket listening and nothing in the folder; the old master serves on with no failed request.
            #[test]
            fn new_master_stopped_before_its_ready() {
                testkit::assert_new_master_stopped_before_its_ready(PROXY, ARGS, "proxy");
            }

            /// Issue 19: the old master stopped while the new one says ready; the new one SIGTERMed, SIGINTed, SIGKILLed, or giving up: the old one, continued, prints handover_failed, serves on, and only its upgrade socket is left in the folder.
            #[test]
            fn new_master_lost_after_its_ready() {
                testkit::assert_new_master_lost_after_its_ready(PROXY, ARGS, "proxy");
            }

            /// Issue 19: a new master silent (SIGSTOP) while its workers start is called off by the old one; continued, it exits 1 with one line.
            #[test]
            fn silent_new_master_is_called_off() {
                testkit::assert_silent_new_master_is_called_off(PROXY, ARGS, "proxy");
            }

            /// Issue 19: the old master SIGKILLed during a takeover: the new one owns the socket, prints ready and serves.
            #[test]
            fn old_master_killed_during_takeover() {
                testkit::assert_old_master_killed_during_takeover(PROXY, ARGS, "proxy");
            }

            /// Issue 19: a worker stalled at the handover: the old master still exits 0 within its grace period (plus 2 s).
            #[test]
            fn stalled_worker_at_handover() {
                testkit::assert_stalled_worker_at_handover(PROXY, ARGS, "proxy");
            }

            /// Issue 12: SIGTERM to the old master during a takeover does not shut the socket down: a client then is answered by the new workers.
            #[test]
            fn sigterm_during_takeover_keeps_the_sockets() {
                testkit::assert_sigterm_during_takeover_keeps_the_sockets(PROXY, ARGS, "proxy");
            }
        }
    )*};
}

upstream_tests! {
    tcp_copy => "tcp", "copy";
    unix_splice => "unix", "splice";
}

/// The flags of the tests that run once for `proxy` (the defaults): what
/// they test is the upgrade socket's, which neither flag changes.
const DEFAULTS: &[&str] = &["--upstream", "tcp", "--relay", "copy"];

/// Issue 19: `--takeover` of a socket served by a process of another uid (offering a listener of its own) is refused: one line naming the uid, exit 2.
#[test]
fn takeover_refuses_another_uid() {
    testkit::assert_takeover_refuses_another_uid(PROXY, DEFAULTS);
}

/// Issue 19: a peer of our uid that offers a UDP socket, a file, a socket that does not listen, one bound elsewhere, or lies about its pid: one line, exit 2.
#[test]
fn takeover_checks_what_it_receives() {
    testkit::assert_takeover_checks_what_it_receives(PROXY, DEFAULTS);
}

/// Issue 19: `--takeover` and `--upgrade-socket` of a master whose backlog is full exit 2 within seconds instead of hanging in connect(2).
#[test]
fn connect_to_a_stalled_master_is_bounded() {
    testkit::assert_connect_to_a_stalled_master_is_bounded(PROXY, DEFAULTS);
}

/// Issue 19: 300 silent peers on the upgrade socket cost a few fds and log lines; a peer silent after its hello is dropped within seconds and does not hold the takeover.
#[test]
fn silent_peers_cost_nothing() {
    testkit::assert_silent_peers_cost_nothing(PROXY, DEFAULTS, "proxy");
}
