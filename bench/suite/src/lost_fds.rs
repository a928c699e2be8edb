//! What a receiver at its fd limit gets of a batch of fds sent in one
//! `sendmsg`: the experiment of lesson 9 and of `tests/lost_fds.rs`, the
//! figure behind "why the channel does not use the `sendfd` crate"
//! (README, Dependencies).
//!
//! Two batches of [`BATCH_FDS`] sockets, one for each receiver, are sent
//! to a process whose RLIMIT_NOFILE leaves room for [`ROOM_FDS`]. The
//! kernel installs what fits, closes the rest and says so only in
//! `msg_flags` (MSG_CTRUNC).
//!
//! - `sendfd`'s `recv_with_fd` returns the fds that came and no flag, so
//!   its caller takes the message for whole. Its sender has closed its
//!   copies (nothing tells it to keep them: the receiver reports no
//!   error), so the sockets the kernel closed are gone, and their peers
//!   read end of file.
//! - The channel's receive (`Channel::try_recv` over
//!   `scm_rights::recv_fds`) refuses the batch as
//!   `ChannelError::ControlTruncated`, naming its connections, and closes
//!   the fds that did come; its sender keeps its copy of every socket until
//!   it is acknowledged, as the `handoff-socket` master does, so none is
//!   lost: the worker rejects each connection, and the master gives them to
//!   another worker.
//!
//! RLIMIT_NOFILE is per process, and a count of free fds means something
//! only while nothing else opens fds: the experiment runs in a child of its
//! own ([`run_in_child`]), a program that calls [`child`] when
//! [`CHILD_ENV`] is set ([`is_child`]) and prints one line.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use cluster::channel::{Channel, ChannelError, Message, pair, scm_rights};
use sendfd::RecvWithFd;
use serde::{Deserialize, Serialize};

/// The fds of a batch: what `handoff --pass socket` may send a worker in
/// one `sendmsg` after a busy wake-up.
pub const BATCH_FDS: usize = 16;

/// The free fd numbers the receiver has when the batch arrives.
pub const ROOM_FDS: usize = 4;

/// Set in the child's environment: run the experiment, print its outcome.
pub const CHILD_ENV: &str = "SUITE_LOST_FDS_CHILD";

/// How long the child may take: it sends and receives two messages.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the parent looks whether the child has ended.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The start of the child's line, before its outcome as JSON (a test
/// harness may print `test NAME ... ` before it).
const REPORT_PREFIX: &str = "lost-fds: ";

/// What each receiver made of its batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The fds of each batch ([`BATCH_FDS`]).
    pub sent: usize,
    /// The free fd numbers the receiver had ([`ROOM_FDS`]).
    pub room: usize,
    /// The fds `sendfd`'s `recv_with_fd` returned.
    pub sendfd_received: usize,
    /// The error it returned, if any.
    pub sendfd_error: Option<String>,
    /// Of `sendfd`'s batch, the sockets that are gone: their peers read end
    /// of file while the receiver still holds every fd it got.
    pub sendfd_lost: usize,
    /// The free fd numbers after the channel's receive: [`ROOM_FDS`] when
    /// it closed every fd that came with the batch it refused.
    pub channel_room_after: usize,
    /// The fds the channel's receive returned to its caller (none with an
    /// error: it closes them).
    pub channel_returned: usize,
    /// What the channel's receive returned: the error's name, or the
    /// message it took for whole.
    pub channel_result: String,
    /// The connections (first and last `seq`) the channel's error names,
    /// for the worker to reject.
    pub channel_refused: Option<(u64, u64)>,
    /// Of the channel's batch, the sockets that are gone.
    pub channel_lost: usize,
}

/// Whether this process is the experiment's child ([`CHILD_ENV`] set).
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// The child's body: runs the experiment and prints its one line.
pub fn child() -> anyhow::Result<()> {
    let outcome = experiment()?;
    let json = serde_json::to_string(&outcome).context("the outcome as JSON")?;
    println!("{REPORT_PREFIX}{json}");
    Ok(())
}

/// Runs `command` (a program that calls [`child`] when [`CHILD_ENV`] is
/// set) with [`CHILD_ENV`] set, at most [`CHILD_TIMEOUT`], and reads its
/// outcome.
pub fn run_in_child(mut command: Command) -> anyhow::Result<Outcome> {
    let mut child = command
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start the receiver's process")?;
    let _registered = crate::children::register(child.id());
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().context("wait for the receiver")? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the receiver's process did not end within {CHILD_TIMEOUT:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout)
        .context("the receiver's output")?;
    anyhow::ensure!(
        status.success(),
        "the receiver's process failed ({status}):\n{stdout}"
    );
    let json = stdout
        .lines()
        .find_map(|line| Some(line.split_once(REPORT_PREFIX)?.1))
        .with_context(|| format!("no {REPORT_PREFIX:?} line in {stdout:?}"))?;
    serde_json::from_str(json).with_context(|| format!("the receiver's outcome: {json}"))
}

/// Sends both batches, lowers this process's fd limit to leave
/// [`ROOM_FDS`], receives each batch, and looks which sockets are gone.
fn experiment() -> anyhow::Result<Outcome> {
    // Everything that opens an fd, opened first: the runtime the channel
    // registers with (epoll, eventfd), both socketpairs, the sockets to
    // send and their peers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("a runtime")?;
    let _entered = runtime.enter();
    let (naive_send, naive_recv) = pair().context("a socketpair for sendfd")?;
    let (ours_send, ours_recv) = pair().context("a socketpair for the channel")?;
    let ours_recv = Channel::new(ours_recv).context("register the channel")?;
    let socket_pairs = || -> io::Result<Vec<(UnixStream, UnixStream)>> {
        (0..BATCH_FDS).map(|_| UnixStream::pair()).collect()
    };
    let (naive_sent, naive_peers): (Vec<_>, Vec<_>) =
        socket_pairs().context("sockets")?.into_iter().unzip();
    let (ours_sent, ours_peers): (Vec<_>, Vec<_>) =
        socket_pairs().context("sockets")?.into_iter().unzip();
    let frame = Message::Connections {
        seq: 1,
        count: BATCH_FDS as u8,
    }
    .encode();
    let send = |channel: &OwnedFd, sockets: &[UnixStream]| {
        let fds: Vec<_> = sockets.iter().map(AsFd::as_fd).collect();
        scm_rights::send_fds(channel.as_fd(), &frame, &fds)
    };
    // Both sent before the limit is lowered: sending takes no new fd.
    send(&naive_send, &naive_sent).context("send sendfd's batch")?;
    send(&ours_send, &ours_sent).context("send the channel's batch")?;
    // sendfd's sender keeps nothing; the channel's keeps `ours_sent`.
    drop(naive_sent);
    // sendfd reads any Unix socket with recvmsg; a UnixDatagram, since the
    // channel's SOCK_SEQPACKET keeps message boundaries as datagrams do.
    let naive_recv = UnixDatagram::from(naive_recv);
    naive_recv
        .set_nonblocking(false)
        .context("a blocking receive: the batch is queued")?;

    leave_room(std::process::id(), ROOM_FDS).context("lower RLIMIT_NOFILE")?;

    let mut data = [0u8; 16];
    let mut raw = [-1 as RawFd; BATCH_FDS];
    let (sendfd_received, sendfd_error) = match naive_recv.recv_with_fd(&mut data, &mut raw) {
        Ok((_, received)) => (received, None),
        Err(err) => (0, Some(err.to_string())),
    };
    // SAFETY: recv_with_fd reports `sendfd_received` fds the kernel just
    // installed in this process for us; nothing else owns them.
    let held: Vec<OwnedFd> = raw[..sendfd_received]
        .iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) })
        .collect();
    let sendfd_lost = at_end_of_file(&naive_peers)?;
    // Closed here, so that the channel's receive has the same room.
    drop(held);

    let received = ours_recv.try_recv();
    let channel_returned = match &received {
        Ok(Some((_, fds))) => fds.len(),
        _ => 0,
    };
    let (channel_result, channel_refused) = match &received {
        Err(ChannelError::ControlTruncated { message }) => (
            "ControlTruncated".to_owned(),
            message.and_then(|message| message.handoffs()),
        ),
        Ok(Some((message, _))) => (format!("{message:?}"), None),
        Ok(None) => ("nothing queued".to_owned(), None),
        Err(err) => (format!("{err:?}"), None),
    };
    drop(received);
    let channel_room_after = free_below_limit()?;
    let channel_lost = at_end_of_file(&ours_peers)?;
    drop((naive_send, ours_send, ours_sent));
    Ok(Outcome {
        sent: BATCH_FDS,
        room: ROOM_FDS,
        sendfd_received,
        sendfd_error,
        sendfd_lost,
        channel_room_after,
        channel_returned,
        channel_result,
        channel_refused,
        channel_lost,
    })
}

/// How many of `peers` read end of file (their sockets' other ends are
/// closed); the others have nothing to read yet. The kernel closes the
/// sockets it did not install before `recvmsg` returns.
fn at_end_of_file(peers: &[UnixStream]) -> anyhow::Result<usize> {
    let mut closed = 0;
    for mut peer in peers {
        peer.set_nonblocking(true)?;
        match peer.read(&mut [0u8; 1]) {
            Ok(0) => closed += 1,
            Ok(_) => anyhow::bail!("a peer read data nobody sent"),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err).context("read a peer"),
        }
    }
    Ok(closed)
}

/// Lowers the soft RLIMIT_NOFILE of process `pid` so that exactly `room`
/// fd numbers below it are free: the kernel installs a received (or
/// accepted) fd at the lowest free number, and only below the limit. Its
/// hard limit stays, so the soft one can be raised again.
pub fn leave_room(pid: u32, room: usize) -> io::Result<()> {
    let open = open_fds(pid)?;
    // The limit is the (room + 1)th free number: `room` below it.
    let mut limit: RawFd = 0;
    let mut free = 0;
    while free < room || open.contains(&limit) {
        if !open.contains(&limit) {
            free += 1;
        }
        limit += 1;
    }
    cluster::rlimit::set_soft_of(pid, limit as u64)
}

/// The free fd numbers below this process's soft limit.
fn free_below_limit() -> io::Result<usize> {
    let limit = cluster::rlimit::get()?.soft as RawFd;
    let open = open_fds(std::process::id())?;
    Ok((0..limit).filter(|fd| !open.contains(fd)).count())
}

/// The numbers of the open fds of process `pid` (`/proc/PID/fd`); of this
/// process, those still open once the listing is closed (its own fd is
/// among those listed).
fn open_fds(pid: u32) -> io::Result<BTreeSet<RawFd>> {
    let listed: Vec<RawFd> = std::fs::read_dir(format!("/proc/{pid}/fd"))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    if pid != std::process::id() {
        return Ok(listed.into_iter().collect());
    }
    Ok(listed
        .into_iter()
        // SAFETY: F_GETFD only reads the flags of the number, open or not.
        .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } != -1)
        .collect())
}
