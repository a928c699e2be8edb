//! End-to-end tests of the open model of `--new-conn --rate` (issue 22, item
//! 6): each due request on its own connection, at most `--connections` in
//! flight, against the test server ([`common::server`]) on loopback.

mod common;

use std::time::Duration;

use serde_json::Value;

use common::server::{Behaviour, SERVER_PID, STALLED_PID, TestServer};
use common::{loadgen, u64_at};

/// The latency summary of `pid`'s answers in `report`, or a panic.
fn worker_latency(report: &Value, pid: u32) -> &Value {
    let share = report["workers"]["by_pid"]
        .as_array()
        .expect("workers.by_pid")
        .iter()
        .find(|share| u64_at(share, &["pid"]) == u64::from(pid))
        .unwrap_or_else(|| panic!("pid {pid} answered nothing: {}", report["workers"]));
    &share["latency"]
}

/// Regression (issue 22, item 6): one stalled connection holds only its own
/// request. The server holds its first answer 1 s (as a stopped worker holds
/// the connection it took) and answers every other at once. Each later
/// request is sent when due on a connection of its own, so the well
/// server's answers stay fast and the wait is charged to the stalled one.
/// Under the old `--new-conn --rate`, the schedule was dealt to the 4
/// connections and each sent in series: the stalled connection's requests
/// due during the stall went out after it, and their wait of up to 1 s was
/// charged to the well server's pid.
#[test]
fn a_stalled_connection_delays_no_later_request() {
    let stall = Duration::from_secs(1);
    let server = TestServer::start(Behaviour::StallFirst { stall });
    let run = loadgen(&[
        "--target",
        &server.url(),
        "--new-conn",
        "--rate",
        "100",
        "--connections",
        "4",
        "--threads",
        "1",
        "--duration",
        "1500ms",
        "--warmup",
        "0",
    ]);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    let report = run.report();
    let scheduled = u64_at(report, &["requests", "scheduled"]);
    assert_eq!(
        u64_at(report, &["requests", "ok"]),
        scheduled,
        "{}",
        run.stdout
    );
    let stalled_ms = u64_at(worker_latency(report, STALLED_PID), &["max_us"]) / 1000;
    assert!(
        stalled_ms >= 900,
        "the stalled answer took {stalled_ms} ms:\n{}",
        run.stdout
    );
    // Generous: the well server answers in about a millisecond; waiting
    // behind the stall took up to the stall's whole second.
    let well_ms = u64_at(worker_latency(report, SERVER_PID), &["max_us"]) / 1000;
    assert!(
        well_ms < stall.as_millis() as u64 / 2,
        "a request the well server answered waited {well_ms} ms, behind the stall:\n{}",
        run.stdout
    );
    assert_eq!(u64_at(report, &["requests", "in_flight", "bound"]), 4);
}

/// The bound reached is counted and said (issue 22, item 6): the whole
/// server stops answering for 500 ms while 200 requests/s are due, so its 3
/// places fill at once and later requests wait for one. The JSON counts
/// them and the most in flight (the bound, never more), and the summary
/// says it in its one line. A keep-alive open loop has no such bound: its
/// `in_flight` is null and the line absent.
#[test]
fn reaching_the_bound_is_counted_and_said() {
    let server = TestServer::start(Behaviour::StallOnce {
        after: Duration::from_millis(200),
        stall: Duration::from_millis(500),
    });
    let url = server.url();
    let args = [
        "--target",
        url.as_str(),
        "--rate",
        "200",
        "--connections",
        "3",
        "--duration",
        "1200ms",
        "--warmup",
        "0",
    ];
    let open_model: Vec<&str> = args.iter().copied().chain(["--new-conn"]).collect();
    let run = loadgen(&open_model);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    let report = run.report();
    let in_flight = &report["requests"]["in_flight"];
    assert_eq!(u64_at(in_flight, &["bound"]), 3, "{in_flight}");
    assert_eq!(u64_at(in_flight, &["max"]), 3, "{in_flight}");
    let waited = u64_at(in_flight, &["waited"]);
    assert!(waited > 0, "no request waited for a place: {in_flight}");
    let line = format!("in flight   the bound of 3 was reached: {waited} requests waited");
    assert!(
        run.stdout.contains(&line),
        "no line {line:?}:\n{}",
        run.stdout
    );

    let keep_alive = loadgen(&args);
    assert!(
        keep_alive.status.success(),
        "{}\n{}",
        keep_alive.stdout,
        keep_alive.stderr
    );
    assert_eq!(keep_alive.report()["requests"]["in_flight"], Value::Null);
    assert!(
        !keep_alive.stdout.contains("in flight"),
        "{}",
        keep_alive.stdout
    );
}
