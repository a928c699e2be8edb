//! The floor of the `handoff-socket` master: its own work per connection, in
//! isolation, for batches of 1, 4 and 16 connections handed to a worker in
//! one frame.
//!
//! What the master does for a batch of `n` connections (`handoff/src/dispatch.rs`):
//!
//! 1. `accept4` each of the `n` loopback connections waiting in the accept
//!    queue (`accept::accept_to_pass` does one per connection);
//! 2. one `sendmsg` of a `Connection` (n = 1) or `Connections { seq, count }`
//!    frame with the `n` sockets in an SCM_RIGHTS control message;
//! 3. one `recvmsg` of the worker's cumulative `Ack` of the last;
//! 4. `close` its `n` copies.
//!
//! Only those steps are timed (`iter_custom`): the clients' `connect`s that
//! fill the accept queue before, the worker's `recvmsg` and `Ack` in between,
//! and the closing of the clients and of the worker's copies after, are the
//! work of other processes and stay outside the clock. What is left is the
//! syscalls and the bookkeeping; the wake-ups (`epoll_wait`) and tokio's own
//! work are not in it, so the measured master (`loadgen --watch`) costs more.
//! The throughput criterion prints is connections per second: its inverse is
//! the master's floor per connection.

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use cluster::channel::{self, Channel, Message};
use criterion::{Criterion, PlottingBackend, Throughput, criterion_group, criterion_main};

/// The batch sizes: one connection per wake-up (no batching), and the
/// shares a busy master hands one worker.
const BATCHES: [usize; 3] = [1, 4, 16];

/// One batch through the master's steps; returns the time of the master's
/// own steps only.
fn one_batch(
    listener: &TcpListener,
    master: &Channel,
    worker: &Channel,
    seq: &mut u64,
    n: usize,
) -> Duration {
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    // Untimed: the clients. Each connect returns when the handshake is done,
    // so the connection waits in the accept queue.
    let clients: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect(addr).expect("connect over loopback"))
        .collect();

    let start = Instant::now();
    let accepted: Vec<OwnedFd> = (0..n)
        .map(|_| OwnedFd::from(listener.accept().expect("a queued connection").0))
        .collect();
    let first = *seq + 1;
    *seq += n as u64;
    let message = match n {
        1 => Message::Connection { seq: first },
        _ => Message::Connections {
            seq: first,
            count: u8::try_from(n).expect("a batch of at most 16"),
        },
    };
    let fds: Vec<BorrowedFd<'_>> = accepted.iter().map(|c| c.as_fd()).collect();
    master
        .try_send_fds(message, &fds)
        .expect("the channel is empty after each batch, so it has room");
    drop(fds);
    let handed = start.elapsed();

    // Untimed: the worker's side.
    let (received, worker_fds) = worker
        .try_recv()
        .expect("a well-formed frame from our own sender")
        .expect("sendmsg on a Unix socketpair queues the frame before it returns");
    debug_assert_eq!(received, message);
    debug_assert_eq!(worker_fds.len(), n);
    worker
        .try_send(Message::Ack { seq: *seq }, None)
        .expect("the master's end is empty, so it has room");

    let start = Instant::now();
    let ack = master
        .try_recv()
        .expect("a well-formed acknowledgement")
        .expect("the acknowledgement is queued before sendmsg returns");
    black_box(ack);
    drop(accepted);
    let acknowledged = start.elapsed();

    // Untimed: the clients reset their connections (SO_LINGER 0: no
    // TIME_WAIT, so a long run does not use up the ephemeral ports), then
    // the worker's copies, the last ones, are closed.
    for client in clients {
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER on a TCP socket");
    }
    drop(worker_fds);
    handed + acknowledged
}

fn handoff_floor(c: &mut Criterion) {
    // Channel::new registers its fd with tokio; the runtime is never driven,
    // since try_send / try_recv do not wait.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a current-thread runtime builds");
    let _entered = runtime.enter();
    let (master_end, worker_end) = channel::pair().expect("socketpair(AF_UNIX, SOCK_SEQPACKET)");
    let master = Channel::new(master_end).expect("register the master's end");
    let worker = Channel::new(worker_end).expect("register the worker's end");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");

    let mut group = c.benchmark_group("handoff_floor");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut seq = 0;
    for n in BATCHES {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("batch of {n}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| one_batch(&listener, &master, &worker, &mut seq, n))
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Charts for the HTML report drawn in Rust: no gnuplot to install, and
    // the same charts on every machine.
    config = Criterion::default().plotting_backend(PlottingBackend::Plotters);
    targets = handoff_floor
}
criterion_main!(benches);
