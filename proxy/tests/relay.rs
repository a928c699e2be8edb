//! End-to-end tests of what only the `proxy` master does: relaying each client
//! connection to a worker, within bounds of time (`--relay-timeout`, a worker
//! silent after its client has gone) and of fds (the relay budget under
//! `--max-fds`). The contract every mode shares is in `cluster.rs`. Once per
//! `--upstream` (`tcp::…`, `unix::…`): the relay is the same whatever socket
//! reaches the worker.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

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

/// Writes one module of tests per `--upstream`; `ARGS` is the flag that
/// chooses it.
macro_rules! upstream_tests {
    ($($name:ident => $upstream:literal;)*) => {$(
        /// The relay's tests with this module's `--upstream`.
        mod $name {
            use super::*;

            /// The flags under test.
            const ARGS: &[&str] = &["--upstream", $upstream];

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
        }
    )*};
}

upstream_tests! {
    tcp => "tcp";
    unix => "unix";
}
