//! What a receiver that ignores MSG_CTRUNC loses at its fd limit: the figure
//! behind "why the channel does not use the `sendfd` crate" (README,
//! Dependencies).
//!
//! A batch of [`BATCH_FDS`] fds is sent in one `sendmsg` to a receiver whose
//! RLIMIT_NOFILE leaves room for [`ROOM_FDS`]. The kernel installs what fits,
//! drops (closes) the rest and says so only in `msg_flags` (MSG_CTRUNC).
//! `sendfd`'s `recv_with_fd` returns the fds that came and no flag, so its
//! caller takes the message for whole; the channel's receive
//! (`Channel::try_recv` over `scm_rights::recv_fds`) rejects the batch as
//! `ChannelError::ControlTruncated`, naming it, so that the worker rejects
//! every connection of it and the master gives them to another worker.
//!
//! RLIMIT_NOFILE is per process, and counting a process's free fds is only
//! meaningful when no other test opens fds meanwhile: the body runs in a
//! child, this test binary run again with [`CHILD_ENV`] set and only this
//! test selected. The child prints one line; the parent checks it.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::channel::{Channel, ChannelError, Message, pair, scm_rights};
use sendfd::RecvWithFd;

/// The fds of the batch: what `handoff --pass socket` may send a worker in
/// one `sendmsg` after a busy wake-up.
const BATCH_FDS: usize = 16;

/// The free fds the receiver has when the batch arrives.
const ROOM_FDS: usize = 4;

/// Set in the child's environment: run the body, print the figures.
const CHILD_ENV: &str = "LOST_FDS_CHILD";

/// The line the child prints, before its figures.
const REPORT_PREFIX: &str = "lost-fds:";

/// How long the child may take: it sends two messages.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// This test's name, as the harness selects it (`--exact`).
const TEST_NAME: &str = "a_naive_receiver_loses_fds_silently_ours_refuses_the_batch";

/// At RLIMIT_NOFILE's edge, a batch of 16 fds with room for 4: `sendfd`
/// reports 4 fds and no error (12 lost without a word); the channel's
/// receive refuses the batch as truncated, naming it.
#[test]
fn a_naive_receiver_loses_fds_silently_ours_refuses_the_batch() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run this test binary again");
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not end within {CHILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout)
        .expect("the child's output");
    assert!(status.success(), "the child failed: {status}\n{stdout}");
    let report = stdout
        .lines()
        // The harness prints `test NAME ... ` before the child's line.
        .find_map(|line| Some(line.split_once(REPORT_PREFIX)?.1))
        .unwrap_or_else(|| panic!("no {REPORT_PREFIX} line in {stdout:?}"));
    let expected = format!(
        " sent {BATCH_FDS}, sendfd received {ROOM_FDS} without error (lost {}), recv_fds: ControlTruncated for the batch",
        BATCH_FDS - ROOM_FDS
    );
    assert_eq!(report, expected);
}

/// The child's body: sends both batches, lowers its own fd limit to leave
/// [`ROOM_FDS`], receives each batch, and prints what came.
fn child() {
    // Everything that opens an fd, opened first: the runtime (epoll,
    // eventfd), both socketpairs, the fds to send.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let (naive_send, naive_recv) = pair().expect("a socketpair for sendfd");
    let (ours_send, ours_recv) = pair().expect("a socketpair for the channel");
    let ours_recv = Channel::new(ours_recv).expect("register the channel");
    let sockets: Vec<(UnixStream, UnixStream)> = (0..BATCH_FDS / 2)
        .map(|_| UnixStream::pair().expect("a Unix socket pair"))
        .collect();
    let batch: Vec<_> = sockets
        .iter()
        .flat_map(|(a, b)| [a.as_fd(), b.as_fd()])
        .collect();
    let frame = Message::Connections {
        seq: 1,
        count: BATCH_FDS as u8,
    }
    .encode();
    // Both sent before the limit is lowered: sending takes no new fd.
    scm_rights::send_fds(naive_send.as_fd(), &frame, &batch).expect("send the first batch");
    scm_rights::send_fds(ours_send.as_fd(), &frame, &batch).expect("send the second batch");
    // sendfd reads any Unix socket with recvmsg; a UnixDatagram, since the
    // channel's SOCK_SEQPACKET keeps message boundaries as datagrams do.
    let naive_recv = UnixDatagram::from(naive_recv);
    naive_recv
        .set_nonblocking(false)
        .expect("a blocking receive: the batch is queued");

    leave_room(ROOM_FDS);

    let mut data = [0u8; 16];
    let mut fds = [-1 as RawFd; BATCH_FDS];
    let (len, received) = naive_recv
        .recv_with_fd(&mut data, &mut fds)
        .expect("sendfd's receive reports no error");
    assert_eq!(len, frame.len(), "the whole frame");
    // SAFETY: recv_with_fd reports `received` fds the kernel just installed
    // in this process for us; nothing else owns them. Closed here, so that
    // the next receive has the same room.
    drop(
        fds[..received]
            .iter()
            .map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) })
            .collect::<Vec<_>>(),
    );
    let ours = match ours_recv.try_recv() {
        Err(ChannelError::ControlTruncated {
            message: Some(Message::Connections { seq: 1, count }),
        }) if usize::from(count) == BATCH_FDS => "ControlTruncated for the batch".to_owned(),
        other => format!("{other:?}"),
    };
    println!(
        "{REPORT_PREFIX} sent {BATCH_FDS}, sendfd received {received} without error (lost {}), recv_fds: {ours}",
        BATCH_FDS - received
    );
    drop((naive_send, ours_send, sockets));
}

/// Lowers this process's soft RLIMIT_NOFILE so that exactly `room` fd
/// numbers below it are free: the kernel installs a received fd at the
/// lowest free number, and only below the limit.
fn leave_room(room: usize) {
    let open: BTreeSet<RawFd> = open_fds();
    let mut limit: RawFd = 0;
    let mut free = 0;
    while free < room {
        if !open.contains(&limit) {
            free += 1;
        }
        limit += 1;
    }
    cluster::rlimit::set_soft(limit as u64).expect("lower RLIMIT_NOFILE");
}

/// The numbers of this process's open fds: those /proc/self/fd lists that
/// are still open once the listing is closed (its own fd is among them).
fn open_fds() -> BTreeSet<RawFd> {
    let listed: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    listed
        .into_iter()
        // SAFETY: F_GETFD only reads the flags of the number, open or not.
        .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } != -1)
        .collect()
}
