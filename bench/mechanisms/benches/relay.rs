//! The price of moving every byte through the master: 64 B to 1 MiB sent to
//! a "worker" through the `proxy` master's own relay (`proxy::relay::relay`),
//! against the same bytes sent to the worker directly. Throughput is reported
//! in bytes. Three relays:
//!
//! - `copy` (`--relay copy`): read into an 8 KiB buffer, write it out;
//! - `splice` (`--relay splice`): the same until a read fills the buffer,
//!   then `splice(2)` through a pipe of the pool, chunk by chunk;
//! - `splice every chunk`: splice from the first byte, which the proxy does
//!   not do: it shows what splicing small messages would cost, the reason
//!   for the proxy's threshold.
//!
//! The three parties are threads of this process, over loopback TCP:
//!
//! - the client (the bench thread): writes one message, an 8-byte
//!   little-endian length then that many bytes, and waits for a 1-byte answer;
//! - the master (a thread with a current-thread tokio runtime, as in `proxy`):
//!   accepts the client with `cluster::accept::accept` and relays it to the
//!   worker's port with `proxy::relay::relay`;
//! - the worker (a plain thread): reads the whole message, answers one byte.
//!
//! The connections are opened once per path and kept, so each iteration is the
//! bytes alone, not a connect; the cost of a new connection through each mode
//! is the `connect` bench (`cluster_modes.rs`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, PlottingBackend, Throughput, criterion_group, criterion_main,
};

/// The payload sizes, with the label of each in the report.
const SIZES: [(usize, &str); 5] = [
    (64, "64 B"),
    (1024, "1 KiB"),
    (4 * 1024, "4 KiB"),
    (64 * 1024, "64 KiB"),
    (1024 * 1024, "1 MiB"),
];

/// The relays compared, by the name each has in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    /// `--relay copy`.
    Copy,
    /// `--relay splice`: copy, then splice after a full buffer.
    Splice,
    /// Splice from the first byte.
    SpliceEveryChunk,
}

impl Relay {
    const ALL: [Relay; 3] = [Relay::Copy, Relay::Splice, Relay::SpliceEveryChunk];

    fn name(self) -> &'static str {
        match self {
            Relay::Copy => "proxy relay (copy)",
            Relay::Splice => "proxy relay (splice)",
            Relay::SpliceEveryChunk => "proxy relay (splice every chunk)",
        }
    }

    /// How the relay moves bytes; its pipes counted in `fds`.
    fn mover(self, fds: &proxy::relay::RelayFds) -> proxy::relay::Mover {
        let pool = || proxy::pipes::PipePool::new(proxy::pipes::MAX_PIPES, fds.clone());
        match self {
            Relay::Copy => proxy::relay::Mover::Copy,
            Relay::Splice => proxy::relay::Mover::Splice {
                pool: pool(),
                after_bytes: proxy::relay::BUFFER_BYTES,
            },
            Relay::SpliceEveryChunk => proxy::relay::Mover::Splice {
                pool: pool(),
                after_bytes: 0,
            },
        }
    }
}

/// The worker's read buffer: large enough that reading costs few syscalls, so
/// that the difference between the two paths is the master's work.
const SINK_BUFFER_BYTES: usize = 64 * 1024;

/// The length prefix of each message.
const HEADER_BYTES: usize = 8;

/// A client connection to the worker, direct or through the relay, and the
/// threads serving it.
struct Path {
    /// The client's end; dropping it ends the relay and the worker in turn.
    client: TcpStream,
    /// The worker thread and, for the relayed path, the master's thread.
    threads: Vec<JoinHandle<()>>,
}

impl Path {
    /// A client connected straight to a worker.
    fn direct() -> Path {
        let worker = bind_loopback();
        let client = connect(local_addr(&worker));
        Path {
            client,
            threads: vec![serve_one(worker)],
        }
    }

    /// A client connected to a master that relays it to a worker with `relay`.
    fn relayed(relay: Relay) -> Path {
        let worker = bind_loopback();
        let worker_port = local_addr(&worker).port();
        let master = bind_loopback();
        let client = connect(local_addr(&master));
        let relay = thread::Builder::new()
            .name("master".into())
            .spawn(move || relay_one(master, worker_port, relay))
            .expect("spawn the master's thread");
        // The relay's connection to the worker waits in the worker's accept
        // queue until `serve_one` takes it.
        Path {
            client,
            threads: vec![relay, serve_one(worker)],
        }
    }

    /// Sends one message (length prefix included) and waits for the answer.
    fn send(&mut self, message: &[u8]) {
        self.client
            .write_all(message)
            .expect("the worker reads every message");
        let mut answer = [0u8; 1];
        self.client
            .read_exact(&mut answer)
            .expect("the worker answers every message");
    }

    /// Closes the client and waits for the threads serving it to end.
    fn close(self) {
        drop(self.client);
        for thread in self.threads {
            thread.join().expect("a serving thread does not panic");
        }
    }
}

/// Binds a listener on a free loopback port.
fn bind_loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port")
}

/// The address `listener` is bound to.
fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("a bound socket has an address")
}

/// Connects to `addr`, with TCP_NODELAY as the cluster's sockets have.
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect over loopback");
    stream
        .set_nodelay(true)
        .expect("TCP_NODELAY on a connected socket");
    stream
}

/// The master: accepts one client on `listener` and relays it to the worker
/// on `worker_port` with `relay` until the client leaves, as the `proxy`
/// master does for every connection.
fn relay_one(listener: TcpListener, worker_port: u16, relay: Relay) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(async move {
        listener
            .set_nonblocking(true)
            .expect("O_NONBLOCK on a listener");
        let listener =
            tokio::net::TcpListener::from_std(listener).expect("register the listener with tokio");
        let client = cluster::accept::accept(&listener).await;
        // The master's default `--relay-timeout`; the fds counted for nobody.
        let fds = proxy::relay::RelayFds::default();
        let client_fd = fds.hold();
        let relay_timeout = std::time::Duration::from_secs(60);
        let target = proxy::relay::Target::Port(worker_port);
        let mover = relay.mover(&fds);
        proxy::relay::relay(client, client_fd, vec![target], relay_timeout, fds, mover).await;
    });
}

/// The worker: accepts one connection on `listener` in a new thread and
/// answers each message with one byte, until the connection ends.
fn serve_one(listener: TcpListener) -> JoinHandle<()> {
    thread::Builder::new()
        .name("worker".into())
        .spawn(move || {
            let (stream, _) = listener.accept().expect("accept the client or the relay");
            if let Err(err) = sink(stream) {
                panic!("worker: {err}");
            }
        })
        .expect("spawn the worker's thread")
}

/// Reads messages (8-byte little-endian length, then the bytes) and answers
/// each with one byte; returns at the end of the stream.
fn sink(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = vec![0u8; SINK_BUFFER_BYTES];
    loop {
        let mut header = [0u8; HEADER_BYTES];
        match stream.read_exact(&mut header) {
            // The client closed between messages: done.
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            result => result?,
        }
        let mut left = u64::from_le_bytes(header);
        while left > 0 {
            let want = usize::try_from(left).map_or(buffer.len(), |left| left.min(buffer.len()));
            let read = stream.read(&mut buffer[..want])?;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= read as u64;
        }
        stream.write_all(&[1])?;
    }
}

/// A message of `size` payload bytes behind its length prefix.
fn message(size: usize) -> Vec<u8> {
    let mut message = Vec::with_capacity(HEADER_BYTES + size);
    message.extend_from_slice(&(size as u64).to_le_bytes());
    message.resize(HEADER_BYTES + size, 0xa5);
    message
}

fn relay(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    // Opened lazily: criterion calls a routine only if the filter selects it.
    let mut direct: Option<Path> = None;
    let mut relayed: [Option<Path>; 3] = [None, None, None];
    for (size, label) in SIZES {
        let message = message(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("direct", label), &message, |b, message| {
            let path = direct.get_or_insert_with(Path::direct);
            b.iter(|| path.send(message));
        });
        for (relay, path) in Relay::ALL.into_iter().zip(&mut relayed) {
            group.bench_with_input(
                BenchmarkId::new(relay.name(), label),
                &message,
                |b, message| {
                    let path = path.get_or_insert_with(|| Path::relayed(relay));
                    b.iter(|| path.send(message));
                },
            );
        }
    }
    group.finish();
    for path in std::iter::once(direct).chain(relayed).flatten() {
        path.close();
    }
}

criterion_group! {
    name = benches;
    // Charts for the HTML report drawn in Rust: no gnuplot to install, and
    // the same charts on every machine.
    config = Criterion::default().plotting_backend(PlottingBackend::Plotters);
    targets = relay
}
criterion_main!(benches);
