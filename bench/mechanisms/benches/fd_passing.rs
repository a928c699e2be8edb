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
//!
//! A second group, `fd_passing_vs_sendfd`, sends one message of 1 or 16 fds
//! one way and receives it, over the same kind of socketpair, with the
//! channel's own `scm_rights::send_fds` / `recv_fds` and with the `sendfd`
//! crate's `SendWithFd` / `RecvWithFd`; each received fd is closed. The
//! syscalls are the same (`sendmsg`, `recvmsg`, `close` per fd): what differs
//! is what each does around them (the channel's flags and its control buffer
//! on the stack; sendfd's buffer allocated per call) and, at the fd limit,
//! what the receiver learns (lesson 9, `suite::lost_fds`).
//! On the 2-vCPU reference machine (five runs, each ratio within one run):
//! `sendfd` ÷ channel per message 1.00 (0.78–1.10) with 1 fd, 0.92
//! (0.89–1.03) with 16; README's Dependencies section has the times.

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use cluster::channel::{self, Channel, Message, scm_rights};
use criterion::{BenchmarkId, Criterion, PlottingBackend, criterion_group, criterion_main};
use sendfd::{RecvWithFd, SendWithFd};

/// The fds per message of the comparison with `sendfd`: one handoff, and a
/// batch as a busy `handoff-socket` master sends.
const FDS_PER_MESSAGE: [usize; 2] = [1, 16];

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

/// One message of `fds` one way and back out of the receiver, with
/// the channel's `send_fds` / `recv_fds` and with `sendfd`, over one
/// `SOCK_SEQPACKET` socketpair each (sendfd reads it as a `UnixDatagram`:
/// it only calls `sendmsg` and `recvmsg` on the fd).
fn versus_sendfd(c: &mut Criterion) {
    let mut group = c.benchmark_group("fd_passing_vs_sendfd");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    // What travels: loopback sockets, as the master hands over.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let clients: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(addr).expect("connect over loopback"))
        .collect();
    let accepted: Vec<TcpStream> = clients
        .iter()
        .map(|_| listener.accept().expect("accept over loopback").0)
        .collect();
    for count in FDS_PER_MESSAGE {
        let fds: Vec<BorrowedFd<'_>> = accepted[..count].iter().map(AsFd::as_fd).collect();
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let frame = if count == 1 {
            Message::Connection { seq: 1 }
        } else {
            Message::Connections {
                seq: 1,
                count: count as u8,
            }
        }
        .encode();

        let (send_end, recv_end) = channel::pair().expect("socketpair(AF_UNIX, SOCK_SEQPACKET)");
        let label = if count == 1 { "1 fd" } else { "16 fds" };
        group.bench_function(BenchmarkId::new("channel send_fds/recv_fds", label), |b| {
            let mut data = [0u8; channel::FRAME_LEN + 1];
            b.iter(|| {
                scm_rights::send_fds(send_end.as_fd(), &frame, &fds)
                    .expect("an empty socketpair has room");
                let received = scm_rights::recv_fds(recv_end.as_fd(), &mut data)
                    .expect("the message is queued");
                debug_assert_eq!(received.fds.len(), count);
                // Closes every fd that came.
                drop(black_box(received));
            })
        });

        let (send_end, recv_end) = channel::pair().expect("socketpair(AF_UNIX, SOCK_SEQPACKET)");
        let (send_end, recv_end) = (UnixDatagram::from(send_end), UnixDatagram::from(recv_end));
        group.bench_function(BenchmarkId::new("sendfd", label), |b| {
            let mut data = [0u8; channel::FRAME_LEN + 1];
            let mut received = [0 as RawFd; 16];
            b.iter(|| {
                send_end
                    .send_with_fd(&frame, &raw)
                    .expect("an empty socketpair has room");
                let (_, fd_count) = recv_end
                    .recv_with_fd(&mut data, &mut received[..count])
                    .expect("the message is queued");
                debug_assert_eq!(fd_count, count);
                for fd in &received[..fd_count] {
                    // SAFETY: the kernel just installed this fd for this
                    // receive, and sendfd hands it over as a raw number
                    // that nothing else owns: closed here.
                    drop(black_box(unsafe { OwnedFd::from_raw_fd(*fd) }));
                }
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
    targets = fd_passing, versus_sendfd
}
criterion_main!(benches);
