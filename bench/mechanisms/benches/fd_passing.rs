//! The price of SCM_RIGHTS: one handoff over the project's own channel
//! (`cluster::channel`), acknowledgement included, against the same round trip
//! with a 16-byte frame that carries no fd.
//!
//! One round trip is what `handoff --pass socket` does per connection when a
//! wake-up accepts one (`handoff_floor.rs` measures batches, with the accept
//! and the close):
//!
//! 1. master: `sendmsg(MSG_NOSIGNAL | MSG_DONTWAIT)` of a `Connection { seq }`
//!    frame with the accepted socket in an SCM_RIGHTS control message;
//! 2. worker: `recvmsg(MSG_CMSG_CLOEXEC)`: the kernel installs a new fd for the
//!    socket in the receiver's table, and the channel checks the fd count;
//! 3. worker: `sendmsg` of `Ack { seq }` (no fd);
//! 4. master: `recvmsg` of the acknowledgement.
//!
//! Both ends live in this one thread and use the non-blocking `try_send` /
//! `try_recv`: on a Unix socketpair `sendmsg` queues the frame on the peer
//! before it returns, so nothing waits. What is measured is the syscalls and
//! the fd bookkeeping alone; the wake-ups of two processes are in the
//! `connect` bench (`cluster_modes.rs`), where they belong to the whole path.
//!
//! With an fd, one `close` per round trip, as in the real path: there the
//! master closes its copy on the acknowledgement and the worker keeps its own;
//! here the master keeps the socket for the next round and the worker's copy
//! is closed (dropped) instead.

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use cluster::channel::{self, Channel, Message};
use criterion::{Criterion, PlottingBackend, criterion_group, criterion_main};

/// Sends `message` (with `fd` if it carries one) from `master` to `worker`,
/// receives it, answers `Ack` with the same `seq`, and receives the answer.
fn round_trip(master: &Channel, worker: &Channel, message: Message, fd: Option<BorrowedFd<'_>>) {
    master
        .try_send(message, fd)
        .expect("the channel is empty after each round trip, so it has room");
    let (received, fds) = worker
        .try_recv()
        .expect("a well-formed frame from our own sender")
        .expect("sendmsg on a Unix socketpair queues the frame before it returns");
    debug_assert_eq!(received, message);
    debug_assert_eq!(fds.len(), message.fd_count());
    // The worker's copy of the socket is closed here (see the module doc).
    drop(black_box(fds));
    let seq = match received {
        Message::Connection { seq } | Message::Ack { seq } => seq,
        other => panic!("this bench sends only Connection and Ack, not {other:?}"),
    };
    worker
        .try_send(Message::Ack { seq }, None)
        .expect("the master's end is empty, so it has room");
    let ack = master
        .try_recv()
        .expect("a well-formed acknowledgement")
        .expect("the acknowledgement is queued before sendmsg returns");
    black_box(ack);
}

fn fd_passing(c: &mut Criterion) {
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

    // What `handoff --pass socket` hands over: an accepted loopback TCP socket.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let _client = TcpStream::connect(addr).expect("connect over loopback");
    let (accepted, _) = listener.accept().expect("accept the loopback connection");

    let mut group = c.benchmark_group("fd_passing");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut seq = 0;
    group.bench_function("with fd (SCM_RIGHTS) + ack", |b| {
        b.iter(|| {
            seq += 1;
            let message = Message::Connection { seq };
            round_trip(&master, &worker, message, Some(accepted.as_fd()));
        })
    });
    // Every frame is 16 bytes; `Ack` is a kind without an fd that carries a
    // `seq` too, so the two frames differ only in their kind byte and in the
    // SCM_RIGHTS control message.
    group.bench_function("without fd + ack", |b| {
        b.iter(|| {
            seq += 1;
            round_trip(&master, &worker, Message::Ack { seq }, None);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Charts for the HTML report drawn in Rust: no gnuplot to install, and
    // the same charts on every machine.
    config = Criterion::default().plotting_backend(PlottingBackend::Plotters);
    targets = fd_passing
}
criterion_main!(benches);
