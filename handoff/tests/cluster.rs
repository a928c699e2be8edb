//! End-to-end tests of the `handoff` binary, once per `--pass` value: the real
//! master and two workers on a free loopback port (`--workers 2 --listen
//! 127.0.0.1:0`), driven through the shared test bodies of `cluster::testing`.

use cluster::testing::{self, Cluster};

/// The binary under test, built by cargo for this test.
const HANDOFF: &str = env!("CARGO_BIN_EXE_handoff");

/// Starts `handoff --workers 2 --pass <pass> --listen 127.0.0.1:0` and checks
/// that its ready line names mode `handoff-<pass>`.
fn start(pass: &str) -> Cluster {
    testing::start_two_workers(HANDOFF, &["--pass", pass], &format!("handoff-{pass}"))
}

/// Writes one module of tests per `--pass` value: `socket::keep_alive`, ...
/// `every_worker` says whether 40 connections must reach both workers: not with
/// `listener`, where the workers accept competitively and the kernel may favour one.
macro_rules! pass_tests {
    ($($pass:ident => every_worker: $every_worker:literal;)*) => {$(
        /// The tests of `handoff --pass` with this module's name.
        mod $pass {
            use super::*;

            /// The `--pass` value under test.
            const PASS: &str = stringify!($pass);

            /// 40 one-shot requests get the documented answer from a ready worker (from both, except with `listener`).
            #[test]
            fn answers_from_the_workers() {
                testing::assert_answers(&start(PASS), 40, $every_worker);
            }

            /// Five requests on one keep-alive connection are all answered, by the same worker.
            #[test]
            fn keep_alive() {
                testing::assert_keep_alive(&start(PASS), 5);
            }

            /// `?work_us=20000` makes the worker compute for about 20 ms before it answers.
            #[test]
            fn work_us_delays_the_answer() {
                testing::assert_work_delays_answer(&start(PASS));
            }

            /// The master keeps no fd per client connection: 200 open connections add fewer than 20.
            #[test]
            fn master_holds_no_fd_per_connection() {
                testing::assert_fd_cost(&start(PASS), 200, 0..=19);
            }

            /// A SIGKILLed worker is respawned and announced, and no later request reaches the dead pid.
            #[test]
            fn respawns_a_killed_worker() {
                testing::assert_respawns_killed_worker(&mut start(PASS));
            }

            /// SIGKILL of the master leaves no orphan: every worker is gone within 3 s.
            #[test]
            fn master_sigkill_leaves_no_orphans() {
                testing::assert_master_kill_leaves_no_orphans(&mut start(PASS));
            }

            /// SIGTERM stops the master with exit code 0, and its workers with it.
            #[test]
            fn sigterm_exits_0() {
                testing::assert_sigterm_stops_cleanly(&mut start(PASS));
            }

            /// A request in flight when SIGTERM arrives is still answered, then the master exits 0.
            #[test]
            fn sigterm_finishes_the_request_in_flight() {
                testing::assert_sigterm_finishes_in_flight(&mut start(PASS));
            }

            /// A port that is already taken makes the binary exit 2 with a stderr line naming the address.
            #[test]
            fn taken_port_exits_2() {
                testing::assert_taken_port_exits_2(HANDOFF, &["--pass", PASS]);
            }
        }
    )*};
}

pass_tests! {
    socket => every_worker: true;
    listener => every_worker: false;
    reuseport => every_worker: true;
}

/// `--pass socket`: connections handed to a worker that dies before acknowledging
/// them (it is stopped with SIGSTOP, then killed) are handed to another worker
/// and answered, not dropped.
#[test]
fn socket_unacknowledged_connections_go_to_another_worker() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let cluster = start("socket");
    let stopped = cluster.worker_pids()[0];
    let master_fds = || testing::fd_count(cluster.master_pid()).unwrap();
    let base = master_fds();
    cluster.signal_worker(stopped, libc::SIGSTOP).unwrap();
    // Round robin hands three of these to the stopped worker, which cannot
    // acknowledge them, and three to the other, which answers them.
    let addr = cluster.addr();
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                let response = testing::get(addr, "/", true);
                answered.fetch_add(1, Ordering::SeqCst);
                response
            })
        })
        .collect();
    assert!(
        testing::wait_until(testing::HTTP_TIMEOUT, || answered.load(Ordering::SeqCst)
            == 3),
        "the running worker did not answer its three connections"
    );
    // The master still holds its copy of each unacknowledged connection.
    assert!(
        master_fds() >= base + 3,
        "{} fds, {base} before",
        master_fds()
    );
    cluster.signal_worker(stopped, libc::SIGKILL).unwrap();
    for client in clients {
        let response = client
            .join()
            .unwrap()
            .expect("a handed connection was dropped");
        assert_ne!(
            response.worker_pid(),
            Some(stopped),
            "answered by the stopped worker"
        );
    }
}

/// `--workers 0` is bad usage: exit code 2.
#[test]
fn zero_workers_exits_2() {
    testing::assert_bad_usage_exits_2(HANDOFF, &["--workers", "0"]);
}

/// An unknown `--pass` value is bad usage: exit code 2.
#[test]
fn unknown_pass_exits_2() {
    testing::assert_bad_usage_exits_2(HANDOFF, &["--pass", "bogus", "--workers", "2"]);
}
