//! End-to-end tests of what only the `proxy` master does: relaying each client
//! connection to a worker, within bounds of time (`--relay-timeout`, a worker
//! silent after its client has gone) and of fds (the relay budget under
//! `--max-fds`), and of bytes (answers and request bodies arrive whole). The
//! contract every mode shares is in `cluster.rs`. Once per pair of
//! `--upstream` and `--relay` (`tcp_copy::…`, `tcp_splice::…`,
//! `unix_copy::…`, `unix_splice::…`): every bound must hold whatever socket
//! reaches the worker and however the bytes move, and `splice(2)` takes
//! other paths in the kernel for a TCP and a Unix socket.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use proxy::pipes::MAX_PIPES;
use testkit::{Cluster, HTTP_TIMEOUT, KeepAlive, Signal, fd_count, read_answer, wait_until};

/// The binary under test, built by cargo for this test.
const PROXY: &str = env!("CARGO_BIN_EXE_proxy");

/// How long the tests allow the master to release a closed relay's fds: far
/// more than the bound it keeps (5 s at most), far less than the default
/// `--relay-timeout` (60 s), so a pass proves the bound and not the timeout.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts `proxy --workers 2` with `args` on a free loopback port.
///
/// With `--worker-timeout 1h`: the liveness check would replace a stalled
/// worker after 10 s, and these tests are about the relay's own bounds, which
/// must hold without it.
fn start_with(args: &[&str]) -> Cluster {
    let args: Vec<&str> = ["--worker-timeout", "1h"]
        .iter()
        .chain(args)
        .copied()
        .collect();
    testkit::start_two_workers(PROXY, &args, "proxy")
}

/// The master's open fds, from /proc.
fn master_fds(cluster: &Cluster) -> usize {
    fd_count(cluster.master_pid()).expect("read the master's fds in /proc")
}

/// Waits up to [`RELEASE_TIMEOUT`] for the master's fds to be back at `base`.
fn assert_fds_return_to(cluster: &Cluster, base: usize, after: &str) {
    let mut fds = 0;
    let released = wait_until(RELEASE_TIMEOUT, || {
        fds = master_fds(cluster);
        fds <= base
    });
    assert!(
        released,
        "{after}, the master still holds {fds} fds after {RELEASE_TIMEOUT:?} (base {base})"
    );
}

/// Sends `GET / ` with `Connection: close` on a new connection.
fn send_request(cluster: &Cluster) -> TcpStream {
    let mut client =
        TcpStream::connect_timeout(&cluster.addr(), HTTP_TIMEOUT).expect("connect to the proxy");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        cluster.addr()
    );
    client
        .write_all(request.as_bytes())
        .expect("send the request");
    client
}

/// Clients of [`slow_readers`]: more than the pool has pipes, so that some
/// relays find it empty and copy.
const SLOW_CLIENTS: usize = MAX_PIPES + 8;

/// The answer each of them asks for: more than the kernel buffers between
/// the master and a client that does not read (a send buffer grows to 4 MiB,
/// `net.ipv4.tcp_wmem`), so that every relay stays open, and holds its chunk
/// (with `--relay splice`, its pipe), until its client reads.
const SLOW_ANSWER_BYTES: usize = 6 * 1024 * 1024;

/// A client's receive buffer in [`slow_readers`]: small and fixed (no
/// autotuning), so that the master's writes to it fill up.
const SLOW_RCVBUF_BYTES: usize = 4 * 1024;

/// Reads one `Connection: close` answer to its end: its status and how
/// many body bytes came, without keeping them.
fn count_answer(client: TcpStream) -> std::io::Result<(u16, usize)> {
    use std::io::BufRead;
    client.set_read_timeout(Some(HTTP_TIMEOUT))?;
    let mut reader = std::io::BufReader::new(client);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let mut body = 0;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok((status, body));
        }
        // Every byte's value is checked by `bytes_answers_that_many`; here
        // a look at each read's first, so that a debug build counts fast.
        assert_eq!(chunk[0], b'x', "a ?bytes= body is made of x");
        let len = chunk.len();
        body += len;
        reader.consume(len);
    }
}

/// [`SLOW_CLIENTS`] clients with small receive buffers ask for
/// [`SLOW_ANSWER_BYTES`] each and read nothing until every relay is open
/// and, with `splice`, until the master holds every pipe its pool allows;
/// then each reads its answer. Every answer must arrive whole, and the
/// master must hold no more than its base, 2 fds per relay and 2 per pipe of
/// the pool; once the clients are gone, no more than its base and the
/// pool's idle pipes.
fn slow_readers(cluster: &Cluster, splice: bool) {
    let base = master_fds(cluster);
    let relays = base + 2 * SLOW_CLIENTS;
    let bound = relays + 2 * MAX_PIPES;
    let request =
        format!("GET /?bytes={SLOW_ANSWER_BYTES} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let clients: Vec<TcpStream> = (0..SLOW_CLIENTS)
        .map(|_| {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("a TCP socket");
            socket
                .set_recv_buffer_size(SLOW_RCVBUF_BYTES)
                .expect("SO_RCVBUF");
            socket
                .connect(&cluster.addr().into())
                .expect("connect to the proxy");
            let mut client = TcpStream::from(socket);
            client
                .write_all(request.as_bytes())
                .expect("send the request");
            client
        })
        .collect();
    let mut peak = 0;
    let mut sample = || {
        let fds = master_fds(cluster);
        peak = peak.max(fds);
        fds
    };
    // Every relay open; with splice, every pipe of the pool lent, the
    // relays beyond it copying.
    let full = if splice { bound } else { relays };
    let mut held = 0;
    let filled = wait_until(HTTP_TIMEOUT, || {
        held = sample();
        held >= full
    });
    assert!(
        filled,
        "{SLOW_CLIENTS} relays{} open: the master holds {held} fds, not {full} (base {base})",
        if splice { " and every pipe" } else { "" }
    );
    let readers: Vec<_> = clients
        .into_iter()
        .map(|client| thread::spawn(move || count_answer(client)))
        .collect();
    while !readers.iter().all(|reader| reader.is_finished()) {
        sample();
        thread::sleep(testkit::POLL_INTERVAL);
    }
    for reader in readers {
        let (status, body) = reader
            .join()
            .expect("a reader does not panic")
            .expect("a slow reader's whole answer");
        assert_eq!(status, 200);
        assert_eq!(body, SLOW_ANSWER_BYTES, "a whole answer");
    }
    assert!(
        peak <= bound,
        "the master held {peak} fds with {SLOW_CLIENTS} relays: over its base {base}, 2 per relay and 2 per pipe ({bound})"
    );
    assert_fds_return_to(cluster, base + 2 * MAX_PIPES, "with the slow readers gone");
}

/// Keep-alive clients of [`idle_relays_hold_no_pipe`]: more than the pool
/// has pipes, so that relays which kept theirs while idle would take them
/// all.
const IDLE_CLIENTS: usize = MAX_PIPES + 4;

/// The pipes the master holds open, as fds (two per pipe), from /proc.
fn master_pipe_fds(cluster: &Cluster) -> usize {
    let folder = format!("/proc/{}/fd", cluster.master_pid());
    std::fs::read_dir(&folder)
        .unwrap_or_else(|err| panic!("read {folder}: {err}"))
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("pipe:"))
        .count()
}

/// [`IDLE_CLIENTS`] keep-alive clients each take a 1 MiB answer (spliced
/// under `--relay splice`) and stay connected, idle. An idle relay holds
/// no pipe: the master's pipes, counted once the answers are in, are at
/// most two more than before (the pool's idle ones), not one per client up
/// to the pool's bound, which would leave every later relay copying.
fn idle_relays_hold_no_pipe(cluster: &Cluster) {
    let before = master_pipe_fds(cluster);
    let clients: Vec<KeepAlive> = (0..IDLE_CLIENTS)
        .map(|client| {
            let mut connection = KeepAlive::connect(cluster.addr()).expect("connect");
            let response = connection
                .get("/?bytes=1048576")
                .unwrap_or_else(|err| panic!("client {client}: a 1 MiB answer: {err:#}"));
            assert_eq!(response.status, 200);
            assert_eq!(
                response.body.len(),
                1_048_576,
                "client {client}: a whole answer"
            );
            connection
        })
        .collect();
    let mut pipes = 0;
    let returned = wait_until(HTTP_TIMEOUT, || {
        pipes = master_pipe_fds(cluster).saturating_sub(before) / 2;
        pipes <= 2
    });
    assert!(
        returned,
        "{IDLE_CLIENTS} idle keep-alive relays: the master holds {pipes} pipes more than before"
    );
    drop(clients);
}

/// Writes one module of tests per pair of `--upstream` and `--relay`;
/// `ARGS` are the flags that choose it.
macro_rules! upstream_tests {
    ($($name:ident => $upstream:literal, $relay:literal;)*) => {$(
        /// The relay's tests with this module's `--upstream` and `--relay`.
        mod $name {
            use super::*;

            /// The flags under test.
            const ARGS: &[&str] = &["--upstream", $upstream, "--relay", $relay];

            /// [`start_with`] [`ARGS`] and `args`.
            fn start(args: &[&str]) -> Cluster {
                start_with(&[ARGS, args].concat())
            }

            /// Regression (issue 10, item 1): a relay to a stalled worker (SIGSTOPped:
            /// alive, never answering) was kept open forever after its client had given
            /// up, two master fds each. Now a relay whose client has gone is closed once
            /// the worker has been silent for a bounded time, long before the default
            /// `--relay-timeout` of 60 s: the master's fds return to their base.
            #[test]
            fn relays_to_a_stalled_worker_close_once_their_clients_leave() {
                let cluster = start(&[]);
                let base = master_fds(&cluster);
                let stalled = cluster.worker_pids()[0];
                cluster
                    .signal_worker(stalled, Signal::SIGSTOP)
                    .expect("SIGSTOP a worker");
                // Round robin sends every other request to the stalled worker; each
                // client waits a second for its answer, then gives up and closes.
                let mut timed_out = 0;
                for _ in 0..12 {
                    let mut client = send_request(&cluster);
                    client
                        .set_read_timeout(Some(Duration::from_secs(1)))
                        .expect("set a read timeout");
                    let mut byte = [0; 1];
                    match client.read(&mut byte) {
                        Ok(read) => assert_eq!(read, 1, "closed without an answer"),
                        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                            timed_out += 1;
                        }
                        Err(err) => panic!("a client failed: {err}"),
                    }
                    if timed_out == 3 {
                        break;
                    }
                }
                assert_eq!(
                    timed_out, 3,
                    "requests to the stalled worker should time out"
                );
                assert_fds_return_to(&cluster, base, "with its clients gone");
            }

            /// Half-close travels: a client that sends its request and then its
            /// end-of-file (`shutdown(SHUT_WR)`) still reads the answer of a worker that
            /// computes for 300 ms, well within the bound on a silent worker.
            #[test]
            fn half_closed_client_still_gets_its_answer() {
                let cluster = start(&[]);
                let mut client =
                    TcpStream::connect_timeout(&cluster.addr(), HTTP_TIMEOUT).expect("connect to the proxy");
                let request = format!(
                    "GET /?work_us=300000 HTTP/1.1\r\nHost: {}\r\n\r\n",
                    cluster.addr()
                );
                client
                    .write_all(request.as_bytes())
                    .expect("send the request");
                client
                    .shutdown(std::net::Shutdown::Write)
                    .expect("half-close");
                let response = read_answer(client).expect("the answer after a half-close");
                assert_eq!(response.status, 200);
            }

            /// `--relay-timeout 1s`: a keep-alive connection left idle after its answer
            /// is closed by the master after about a second (the worker's own idle bound,
            /// `--header-timeout 60s`, is far off), and its fds are released.
            #[test]
            fn idle_relay_is_closed_after_relay_timeout() {
                let cluster = start(&["--relay-timeout", "1s", "--header-timeout", "60s"]);
                let base = master_fds(&cluster);
                let mut client = KeepAlive::connect(cluster.addr()).expect("connect");
                let response = client.get("/").expect("an answer");
                assert_eq!(response.status, 200);
                let idle_since = Instant::now();
                client
                    .read_to_close()
                    .expect("the master closes an idle relay");
                let idle = idle_since.elapsed();
                assert!(
                    (Duration::from_millis(500)..Duration::from_secs(9)).contains(&idle),
                    "the idle relay was closed after {idle:?}, not about 1 s"
                );
                assert_fds_return_to(&cluster, base, "with the idle relay closed");
            }

            /// `--relay-timeout 1s`: a client still waiting on a stalled worker
            /// (SIGSTOPped) is closed after about a second instead of waiting forever.
            #[test]
            fn client_of_a_stalled_worker_is_closed_after_relay_timeout() {
                let cluster = start(&["--relay-timeout", "1s"]);
                let stalled = cluster.worker_pids()[0];
                cluster
                    .signal_worker(stalled, Signal::SIGSTOP)
                    .expect("SIGSTOP a worker");
                // Round robin: one of two requests in a row reaches the stalled worker.
                for _ in 0..2 {
                    let started = Instant::now();
                    match read_answer(send_request(&cluster)) {
                        Ok(response) => assert_eq!(response.status, 200),
                        Err(err) => {
                            let waited = started.elapsed();
                            assert!(
                                format!("{err:#}").contains("closed the connection"),
                                "the client of the stalled worker: {err:#}"
                            );
                            assert!(
                                (Duration::from_millis(500)..Duration::from_secs(9)).contains(&waited),
                                "closed after {waited:?}, not about 1 s"
                            );
                            return;
                        }
                    }
                }
                panic!("neither of two requests reached the stalled worker");
            }

            /// Regression (issue 10, item 2): the fd budget reserved one master fd per
            /// worker, but the master holds two (its end of the channel, and tokio's
            /// pidfd), so with 40 workers and `--max-fds 200` it accepted clients it had
            /// no fd left to relay, and closed them unanswered. Now it counts the fds it
            /// really holds: 100 clients opened at once, each keeping its relay
            /// (keep-alive) until answered, are all answered, those beyond the budget
            /// once earlier ones have left the kernel's accept queue.
            #[test]
            fn fd_budget_counts_the_fds_the_master_holds() {
                let cluster =
                    Cluster::start(PROXY, &[ARGS, &["--workers", "40", "--max-fds", "200"]].concat()).expect("start 40 workers");
                let request = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", cluster.addr());
                let clients: Vec<TcpStream> = (0..100)
                    .map(|_| {
                        let mut client = TcpStream::connect_timeout(&cluster.addr(), HTTP_TIMEOUT)
                            .expect("connect to the proxy");
                        client
                            .write_all(request.as_bytes())
                            .expect("send the request");
                        client
                    })
                    .collect();
                // Each client closes once answered, freeing its relay for the next.
                let readers: Vec<_> = clients
                    .into_iter()
                    .map(|client| thread::spawn(move || read_answer(client)))
                    .collect();
                let failures: Vec<String> = readers
                    .into_iter()
                    .map(|reader| reader.join().expect("a reader does not panic"))
                    .filter_map(|answer| match answer {
                        Ok(response) if response.status == 200 => None,
                        Ok(response) => Some(format!("status {}", response.status)),
                        Err(err) => Some(format!("{err:#}")),
                    })
                    .collect();
                assert!(
                    failures.is_empty(),
                    "{} of 100 clients not answered: {failures:?}",
                    failures.len()
                );
            }

            /// Regression (issue 10, extra): when a worker's side of a relay ended in an
            /// error, the relay could end at once and drop an answer the master had
            /// already received. A worker answers an oversized head with 431 and closes
            /// with the rest unread, so its kernel resets the connection while the
            /// client is still sending: writing to the worker fails, and the answer must
            /// still reach the client. Twenty such clients each read their answer.
            #[test]
            fn an_answer_before_a_worker_reset_reaches_the_client() {
                let cluster = start(&[]);
                for attempt in 0..20 {
                    let client = TcpStream::connect_timeout(&cluster.addr(), HTTP_TIMEOUT).expect("connect");
                    let mut writer = client.try_clone().expect("clone the client socket");
                    writer
                        .set_write_timeout(Some(HTTP_TIMEOUT))
                        .expect("set a write timeout");
                    // 1 MiB of one header, far over the worker's 16 KiB: the worker
                    // answers before it has read it all. The writer stops at the first
                    // error (the reset).
                    let sender = thread::spawn(move || {
                        let _ = writer.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
                        let chunk = [b'a'; 16 * 1024];
                        for _ in 0..64 {
                            if writer.write_all(&chunk).is_err() {
                                break;
                            }
                        }
                    });
                    let answer = read_answer(client);
                    sender.join().expect("the sender does not panic");
                    match answer {
                        Ok(response) => assert!(
                            matches!(response.status, 431 | 400),
                            "attempt {attempt}: status {}",
                            response.status
                        ),
                        Err(err) => panic!("attempt {attempt}: the answer was lost: {err:#}"),
                    }
                }
            }

            /// Issue 25: `?bytes=1048576` arrives whole, twice on one connection; `?bytes=0` is empty; `work_us` still applies.
            #[test]
            fn bytes_answers_that_many() {
                testkit::assert_bytes_answers_that_many(&start(&[]));
            }

            /// Issue 25: a 64 KiB POST body (content-length, then chunked) is relayed whole and counted in `x-received-bytes`.
            #[test]
            fn request_body_is_counted() {
                testkit::assert_request_body_is_counted(&start(&[]));
            }

            /// Issue 25: 24 clients that read late get every byte of 6 MiB answers; with splice, 16 relays hold the pool's 16 pipes and the other 8 copy; the master never holds more than 2 fds per relay and 2 per pipe.
            #[test]
            fn slow_readers_get_every_byte_within_the_fd_bill() {
                slow_readers(&start(&[]), $relay == "splice");
            }

            /// Issue 25: 20 keep-alive relays idle after a 1 MiB answer hold no pipe: the pool stays free for relays with bytes to move.
            #[test]
            fn idle_keep_alive_relays_hold_no_pipe() {
                idle_relays_hold_no_pipe(&start(&[]));
            }
        }
    )*};
}

upstream_tests! {
    tcp_copy => "tcp", "copy";
    tcp_splice => "tcp", "splice";
    unix_copy => "unix", "copy";
    unix_splice => "unix", "splice";
}
