//! A small HTTP/1.1 server for the tests, on 127.0.0.1:0, one thread per
//! connection, whose behaviour the test chooses: answer at once, stall once (the
//! coordinated-omission test), or fail in known ways (the error-kind test). It
//! records when each request arrived, so a test can check the load from the
//! server's side. Stopped and joined on drop.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The pid the server puts in `x-worker-pid`.
pub const SERVER_PID: u32 = 4242;

/// The pid the server puts in `x-worker-pid` of the one answer it stalls
/// under [`Behaviour::StallFirst`]: the stalled "worker".
pub const STALLED_PID: u32 = 4343;

/// How long a connection thread waits for bytes before it looks at the stop flag.
const POLL_TIMEOUT: Duration = Duration::from_millis(50);

/// How the server answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Every request: 200 at once.
    Fast,
    /// 200 at once, except that `after` the first request the whole server stops
    /// answering for `stall` (as a GC pause or a blocked event loop would).
    StallOnce {
        /// When the stall begins, counted from the first request.
        after: Duration,
        /// How long it lasts.
        stall: Duration,
    },
    /// The first request waits `stall` for its answer, which names
    /// [`STALLED_PID`]; every other request is answered at once, naming
    /// [`SERVER_PID`]: one stalled connection (a worker stopped with its
    /// connection), the rest of the server well.
    StallFirst {
        /// How long the first answer waits.
        stall: Duration,
    },
    /// Request n: 200 when n % 4 is 0 or 1, 503 when 2, and when 3 a head that
    /// announces 100 bytes followed by 10 and a close (a short answer).
    Faulty,
}

/// State shared by the server's threads.
struct Shared {
    behaviour: Behaviour,
    stop: AtomicBool,
    requests: AtomicU64,
    arrivals: Mutex<Vec<Instant>>,
    /// The peer address of every connection accepted.
    peers: Mutex<Vec<SocketAddr>>,
    /// For `StallOnce`: the first request's arrival and the end of the stall once begun.
    stall: Mutex<(Option<Instant>, Option<Instant>)>,
}

/// A running test server.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accepter: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl TestServer {
    /// Starts a server with `behaviour` on a free loopback port.
    pub fn start(behaviour: Behaviour) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let shared = Arc::new(Shared {
            behaviour,
            stop: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            arrivals: Mutex::new(Vec::new()),
            peers: Mutex::new(Vec::new()),
            stall: Mutex::new((None, None)),
        });
        let accept_shared = Arc::clone(&shared);
        let accepter = thread::spawn(move || {
            let mut connections = Vec::new();
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(peer) = stream.peer_addr() {
                    accept_shared.peers.lock().expect("not poisoned").push(peer);
                }
                let shared = Arc::clone(&accept_shared);
                connections.push(thread::spawn(move || serve(stream, &shared)));
            }
            connections
        });
        TestServer {
            addr,
            shared,
            accepter: Some(accepter),
        }
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The peer address of every connection accepted, in order.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.shared.peers.lock().expect("not poisoned").clone()
    }

    /// When each request arrived, in order.
    pub fn arrivals(&self) -> Vec<Instant> {
        let mut arrivals = self.shared.arrivals.lock().expect("not poisoned").clone();
        arrivals.sort();
        arrivals
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accepter) = self.accepter.take() {
            if let Ok(connections) = accepter.join() {
                for connection in connections {
                    let _ = connection.join();
                }
            }
        }
    }
}

/// Serves one connection until the client closes it or the server stops.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(POLL_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !shared.stop.load(Ordering::SeqCst) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue;
            }
            Err(_) => return,
        }
        while let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let close = String::from_utf8_lossy(&buffer[..end])
                .to_ascii_lowercase()
                .contains("connection: close");
            buffer.drain(..end + 4);
            if !answer(&mut stream, shared) || close {
                return;
            }
        }
    }
}

/// Answers one request as the behaviour says; `false` if the connection must close.
fn answer(stream: &mut TcpStream, shared: &Shared) -> bool {
    let now = Instant::now();
    shared.arrivals.lock().expect("not poisoned").push(now);
    let index = shared.requests.fetch_add(1, Ordering::SeqCst);
    let ok =
        format!("HTTP/1.1 200 OK\r\nx-worker-pid: {SERVER_PID}\r\ncontent-length: 3\r\n\r\nok\n");
    match shared.behaviour {
        Behaviour::Fast => stream.write_all(ok.as_bytes()).is_ok(),
        Behaviour::StallOnce { after, stall } => {
            let until = {
                let mut state = shared.stall.lock().expect("not poisoned");
                let first = *state.0.get_or_insert(now);
                if state.1.is_none() && now >= first + after {
                    state.1 = Some(now + stall);
                }
                state.1
            };
            if let Some(until) = until {
                if now < until {
                    // The server's behaviour under test, not a synchronisation.
                    thread::sleep(until - now);
                }
            }
            stream.write_all(ok.as_bytes()).is_ok()
        }
        Behaviour::StallFirst { stall } => {
            if index == 0 {
                // The server's behaviour under test, not a synchronisation.
                thread::sleep(stall);
                let stalled = format!(
                    "HTTP/1.1 200 OK\r\nx-worker-pid: {STALLED_PID}\r\ncontent-length: 3\r\n\r\nok\n"
                );
                return stream.write_all(stalled.as_bytes()).is_ok();
            }
            stream.write_all(ok.as_bytes()).is_ok()
        }
        Behaviour::Faulty => match index % 4 {
            0 | 1 => stream.write_all(ok.as_bytes()).is_ok(),
            2 => stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy")
                .is_ok(),
            _ => {
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789");
                false
            }
        },
    }
}
