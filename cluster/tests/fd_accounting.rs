//! The tests that count this process's open fds (`/proc/self/fd`).
//!
//! A count is only meaningful when nothing else in the process opens or closes
//! an fd meanwhile, so these tests live in a test binary of their own (cargo
//! runs test binaries one after another) and each holds [`ALONE`] for its whole
//! body (the test harness runs the tests of one binary on parallel threads).
//! They were flaky in the library's unit tests, where other tests open
//! sockets on other threads (issue 9: `unexpected_fd_is_closed` failed 4 runs
//! in 10).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard};

use cluster::channel::{
    Channel, ChannelError, MAX_CONNECTIONS_PER_FRAME, MAX_FDS_PER_FRAME, Message, pair,
};
use cluster::procfs;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

/// Held by every test of this binary: one counts fds at a time.
static ALONE: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    // A test that failed while holding the lock poisons it; the others still run.
    ALONE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_fds() -> usize {
    procfs::fd_count(std::process::id()).expect("read /proc/self/fd")
}

/// A current-thread runtime, built before the first count: its epoll and
/// eventfd are then part of the baseline.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// Sends `message` with any fds at all, bypassing `try_send` (which panics
/// when the count does not match the message), as a misbehaving peer would.
fn send_with_fds(to: &OwnedFd, message: Message, fds: &[RawFd]) {
    let frame = message.encode();
    sendmsg::<()>(
        to.as_raw_fd(),
        &[std::io::IoSlice::new(&frame)],
        &[ControlMessage::ScmRights(fds)],
        MsgFlags::empty(),
        None,
    )
    .expect("sendmsg with SCM_RIGHTS");
}

/// An fd where the header announced none is an error, and the fd is closed.
#[test]
fn unexpected_fd_is_closed() {
    let _alone = alone();
    let runtime = runtime();
    let (a, b) = pair().unwrap();
    let b = runtime.block_on(async { Channel::new(b) }).unwrap();
    let before = open_fds();
    {
        let (x, _y) = UnixStream::pair().unwrap();
        send_with_fds(&a, Message::Ack { seq: 1 }, &[x.as_raw_fd()]);
    }
    let err = runtime.block_on(b.recv()).unwrap_err();
    assert!(
        matches!(
            err,
            ChannelError::FdCountMismatch {
                announced: 0,
                received: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(open_fds(), before, "the unexpected fd must be closed");
}

/// More fds than the receiver makes room for: MSG_CTRUNC, a typed error
/// naming the frame, and every fd that did arrive closed (nix's `cmsgs()`
/// leaked them: the bug this pins).
#[test]
fn truncated_control_message() {
    let _alone = alone();
    let runtime = runtime();
    let (a, b) = pair().unwrap();
    let b = runtime.block_on(async { Channel::new(b) }).unwrap();
    let before = open_fds();
    {
        let sockets: Vec<_> = (0..MAX_FDS_PER_FRAME + 2)
            .map(|_| UnixStream::pair().unwrap().0)
            .collect();
        let raw: Vec<RawFd> = sockets.iter().map(|s| s.as_raw_fd()).collect();
        send_with_fds(&a, Message::Connection { seq: 9 }, &raw);
    }
    let err = runtime.block_on(b.recv()).unwrap_err();
    assert!(
        matches!(
            err,
            ChannelError::ControlTruncated {
                message: Some(Message::Connection { seq: 9 })
            }
        ),
        "{err:?}"
    );
    assert_eq!(open_fds(), before, "the fds that arrived must be closed");
}

/// A batch whose header announces more connections than fds came: a count
/// mismatch, and the fds that came are closed (the worker exits on it; the
/// master re-hands the whole batch when it sees the exit).
#[test]
fn batch_with_missing_fds_is_closed() {
    let _alone = alone();
    let runtime = runtime();
    let (a, b) = pair().unwrap();
    let b = runtime.block_on(async { Channel::new(b) }).unwrap();
    let before = open_fds();
    {
        let sockets: Vec<_> = (0..3).map(|_| UnixStream::pair().unwrap().0).collect();
        let raw: Vec<RawFd> = sockets.iter().map(|s| s.as_raw_fd()).collect();
        send_with_fds(&a, Message::Connections { seq: 1, count: 4 }, &raw);
    }
    let err = runtime.block_on(b.recv()).unwrap_err();
    assert!(
        matches!(
            err,
            ChannelError::FdCountMismatch {
                announced: 4,
                received: 3
            }
        ),
        "{err:?}"
    );
    assert_eq!(open_fds(), before, "the fds that arrived must be closed");
}

/// A batch whose fds the kernel cut short (MSG_CTRUNC): a typed error that
/// names the whole batch, so that the worker rejects every connection of it,
/// and every fd that did arrive closed.
#[test]
fn truncated_batch_names_the_batch() {
    let _alone = alone();
    let runtime = runtime();
    let (a, b) = pair().unwrap();
    let b = runtime.block_on(async { Channel::new(b) }).unwrap();
    let before = open_fds();
    let batch = Message::Connections {
        seq: 20,
        count: MAX_CONNECTIONS_PER_FRAME as u8,
    };
    {
        let sockets: Vec<_> = (0..MAX_FDS_PER_FRAME + 1)
            .map(|_| UnixStream::pair().unwrap().0)
            .collect();
        let raw: Vec<RawFd> = sockets.iter().map(|s| s.as_raw_fd()).collect();
        send_with_fds(&a, batch, &raw);
    }
    let err = runtime.block_on(b.recv()).unwrap_err();
    assert!(
        matches!(err, ChannelError::ControlTruncated { message: Some(m) } if m == batch),
        "{err:?}"
    );
    assert_eq!(open_fds(), before, "the fds that arrived must be closed");
}

/// procfs counts exactly the fds this process opens and closes.
#[test]
fn fd_count_follows_open_files() {
    let _alone = alone();
    let before = open_fds();
    let files: Vec<File> = (0..50)
        .map(|_| File::open("/proc/self/stat").expect("open"))
        .collect();
    assert_eq!(open_fds(), before + 50, "50 files opened");
    drop(files);
    assert_eq!(open_fds(), before, "50 files closed");
}
