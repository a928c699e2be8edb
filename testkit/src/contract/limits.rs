//! The fd bill, the fd limit, and bad usage: what each mode holds per
//! connection, how it behaves out of fds, and how it refuses a bad command line.

use super::*;

/// How long the master's fd count may take to settle: in `handoff-socket` mode the
/// master closes its copy of a socket only when the worker's acknowledgement arrives,
/// which may be just after the worker has answered.
const FD_SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many more fds than before the connections the master may still hold once
/// the clients have closed them (a log file, a timer, a respawn in flight).
const FD_RELEASE_SLACK: usize = 20;

/// Opens `connections` client connections, each with one answered keep-alive
/// request, and checks that the master's open fds grew by an amount in
/// `increase` (e.g. about two per connection in `proxy` mode, none in the handoff
/// modes); then closes them and checks that the master's fds come back to
/// within a few of where they were (no fd leaked per connection).
///
/// # Panics
/// If a request fails, or the master's fd count is out of range.
pub fn assert_fd_cost(cluster: &Cluster, connections: usize, increase: RangeInclusive<usize>) {
    let master = cluster.master_pid();
    let workers = cluster.worker_pids();
    let before = fd_count(master).expect("read the master's fds in /proc");
    let mut clients = Vec::with_capacity(connections);
    for connection in 0..connections {
        let mut client = KeepAlive::connect(cluster.addr())
            .unwrap_or_else(|err| panic!("connection {connection}: {err:#}"));
        let response = client
            .get("/")
            .unwrap_or_else(|err| panic!("request on connection {connection}: {err:#}"));
        assert_worker_answer(&response, &workers);
        clients.push(client);
    }

    let mut grown = 0;
    let settled = wait_until(FD_SETTLE_TIMEOUT, || {
        let after = fd_count(master).expect("read the master's fds in /proc");
        grown = after.saturating_sub(before);
        increase.contains(&grown)
    });
    assert!(
        settled,
        "with {connections} open connections the master's fds grew by {grown} \
         (from {before}), not within {increase:?}"
    );

    drop(clients);
    let limit = before + FD_RELEASE_SLACK;
    let mut after = 0;
    let released = wait_until(FD_SETTLE_TIMEOUT, || {
        after = fd_count(master).expect("read the master's fds in /proc");
        after <= limit
    });
    assert!(
        released,
        "after closing {connections} connections the master still has {after} fds \
         (had {before} before them)"
    );
}

/// The master at its fd limit (started with `--max-fds 64`): 150 clients
/// connect and send a request; the master keeps running without spinning
/// (under 0.1 s of CPU in the second it spends at the limit), still serves a
/// connection it had before, and serves new clients once the 150 are gone.
///
/// # Panics
/// If the master dies, spins, or does not recover.
pub fn assert_survives_fd_exhaustion(cluster: &Cluster) {
    let master = cluster.master_pid();
    let mut before = KeepAlive::connect(cluster.addr()).expect("connect before the flood");
    assert_worker_answer(
        &before.get("/").expect("request before the flood"),
        &cluster.worker_pids(),
    );
    let request = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", cluster.addr());
    let flood: Vec<TcpStream> = (0..150)
        .filter_map(|_| {
            // The kernel completes the handshake into the accept queue even
            // when the master cannot accept; a refused one is fine too.
            let mut stream = TcpStream::connect_timeout(&cluster.addr(), HTTP_TIMEOUT).ok()?;
            stream.write_all(request.as_bytes()).ok()?;
            Some(stream)
        })
        .collect();
    assert!(
        flood.len() > 100,
        "only {} clients could connect",
        flood.len()
    );
    // A measuring window, not a synchronisation: the CPU the master uses while
    // it sits at its limit with clients waiting.
    let cpu_before = cpu_time(master).expect("master alive");
    thread::sleep(Duration::from_secs(1));
    let cpu = cpu_time(master).expect("master alive at the limit") - cpu_before;
    assert!(
        cpu < Duration::from_millis(100),
        "the master spins at its fd limit: {cpu:?} of CPU in 1 s"
    );
    assert_worker_answer(
        &before
            .get("/")
            .expect("a connection from before the flood is still served"),
        &cluster.worker_pids(),
    );
    drop(flood);
    drop(before);
    let recovered = wait_until(HTTP_TIMEOUT, || {
        get(cluster.addr(), "/", true).is_ok_and(|r| r.status == 200)
    });
    assert!(recovered, "no new client served after the flood left");
    assert!(is_alive(master), "the master died");
}

/// How long [`assert_one_accept_warning_at_the_fd_limit`] keeps its clients
/// busy: long enough for thousands of retries under the old code.
pub const FD_LIMIT_LOAD: Duration = Duration::from_secs(3);

/// Regression (issue 10): at its fd limit, `handoff-socket` rebuilt its accept
/// future on every event, so each acknowledgement retried `accept` at once and
/// warned again (15,004 "accept paused" lines in 3 s). With the cluster started
/// with a `--max-fds` that leaves room for a handful of client fds (the issue
/// used 24 with two workers: room for 8), 48 clients send
/// requests for [`FD_LIMIT_LOAD`] (each connection one request of 1 ms of work,
/// so that unacknowledged handoffs pile up past the limit): the master must hit
/// its limit (one warning at least), warn at most a few times (one per episode,
/// and the load is one episode, give or take a stall of the machine), and
/// answer the clients.
///
/// # Panics
/// If the master never reaches its limit, warns more, or answers nobody.
pub fn assert_one_accept_warning_at_the_fd_limit(cluster: &Cluster) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const CLIENTS: usize = 48;
    /// Bound on each client's requests, so the loop ends whatever happens.
    const MAX_REQUESTS_PER_CLIENT: usize = 5_000;
    /// One per episode; a loaded machine that stalls the load for over a
    /// second may split it. The old code warned hundreds of times.
    const MAX_WARNINGS: usize = 5;
    let answered = Arc::new(AtomicUsize::new(0));
    let addr = cluster.addr();
    let until = Instant::now() + FD_LIMIT_LOAD;
    let clients: Vec<JoinHandle<()>> = (0..CLIENTS)
        .map(|_| {
            let answered = answered.clone();
            thread::spawn(move || {
                for _ in 0..MAX_REQUESTS_PER_CLIENT {
                    if Instant::now() >= until {
                        break;
                    }
                    if get(addr, "/?work_us=1000", true).is_ok_and(|r| r.status == 200) {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client thread panicked");
    }
    let warnings = cluster
        .stderr()
        .lines()
        .filter(|line| line.contains("accept paused"))
        .count();
    let answered = answered.load(Ordering::SeqCst);
    assert!(
        warnings >= 1,
        "the master never reached its fd limit ({answered} answers); stderr:\n{}",
        cluster.stderr()
    );
    assert!(
        warnings <= MAX_WARNINGS,
        "{warnings} \"accept paused\" warnings in {FD_LIMIT_LOAD:?} ({answered} answers); at most {MAX_WARNINGS} expected"
    );
    assert!(answered > 0, "no client was answered at the fd limit");
}

/// Binds a port on 127.0.0.1, then starts `bin` with `args`, `--workers 2` and
/// `--listen` on that port: it must exit with code 2 within [`EXIT_TIMEOUT`] and
/// write a stderr line naming the address.
///
/// # Panics
/// If it does not.
pub fn assert_taken_port_exits_2(bin: &str, args: &[&str]) {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    let addr = taken
        .local_addr()
        .expect("a bound socket has an address")
        .to_string();
    let mut all_args = args.to_vec();
    all_args.extend(["--workers", "2", "--listen", &addr]);
    let (status, stderr) = run_expect_exit(bin, &all_args, EXIT_TIMEOUT)
        .unwrap_or_else(|err| panic!("{bin} {all_args:?} on a taken port: {err:#}"));
    assert_eq!(
        status.code(),
        Some(2),
        "exit on the taken port {addr}: {status}; stderr:\n{stderr}"
    );
    assert!(
        stderr.lines().any(|line| line.contains(&addr)),
        "no stderr line names the taken address {addr}; stderr:\n{stderr}"
    );
    drop(taken);
}

/// Runs `bin` with bad usage `args`: it must exit with code 2 within
/// [`EXIT_TIMEOUT`] and say something on stderr.
///
/// # Panics
/// If it does not.
pub fn assert_bad_usage_exits_2(bin: &str, args: &[&str]) {
    let (status, stderr) = run_expect_exit(bin, args, EXIT_TIMEOUT)
        .unwrap_or_else(|err| panic!("{bin} {args:?}: {err:#}"));
    assert_eq!(
        status.code(),
        Some(2),
        "exit on bad usage {args:?}: {status}; stderr:\n{stderr}"
    );
    assert!(
        !stderr.trim().is_empty(),
        "bad usage {args:?} but nothing on stderr"
    );
}

/// Regression (issue 10): a duration over a day is bad usage (exit 2, one
/// line naming the flag), not a panic on the first connection; and (issue
/// 19) so is a `--worker-timeout` under 100 ms, which killed healthy
/// workers, and (issue 26) a `--grace` over ten minutes.
pub fn assert_absurd_durations_exit_2(bin: &str, args: &[&str]) {
    let cases = [
        ("--header-timeout", "300000000000y"),
        ("--header-timeout", "2days"),
        ("--worker-timeout", "1ms"),
        ("--worker-timeout", "1ns"),
        ("--worker-timeout", "99ms"),
        ("--grace", "11m"),
        ("--grace", "10"),
    ];
    for (flag, absurd) in cases {
        let mut all_args = args.to_vec();
        all_args.extend(["--workers", "1", flag, absurd]);
        let (status, stderr) = run_expect_exit(bin, &all_args, EXIT_TIMEOUT)
            .unwrap_or_else(|err| panic!("{bin} {all_args:?}: {err:#}"));
        assert_eq!(
            status.code(),
            Some(2),
            "exit with {all_args:?}: {status}; stderr:\n{stderr}"
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "not one stderr line with {all_args:?}:\n{stderr}"
        );
        assert!(
            stderr.contains(flag),
            "the error does not name the flag:\n{stderr}"
        );
    }
}
