//! `--relay splice`: moving a relay's bytes socket → pipe → socket inside the
//! kernel with `splice(2)`, never through the master's memory, and the pool
//! of pipes it borrows from.
//!
//! # Why a pool, and why it is small
//!
//! `splice(2)` needs a pipe between the two sockets: one call moves up to a
//! pipe's worth (64 KiB) from the source socket into the pipe (the pages are
//! passed by reference, not copied), a second moves them from the pipe into
//! the destination socket. A pipe per relay direction would make a relay
//! cost 6 fds instead of 2 (the client, the worker, two pipes of two fds
//! each), which would cut the proxy's ceiling at the fd limit to a third,
//! and would cost a `pipe2` and two `close`s per direction per connection.
//!
//! A pipe, though, is needed only while a chunk is in it. The relay splices
//! a chunk in, then splices it out until the pipe is empty, and only then
//! reads again; when the destination has room (the usual case) both calls
//! happen in one turn of the master's single-threaded loop, and the pipe is
//! free again. So the relays borrow pipes from one [`PipePool`] per chunk
//! and give them back empty, as HAProxy does (`tune.maxpipes`). A pipe stays
//! with a relay across turns only while its destination is full (a client
//! reading slowly): a pool of [`MAX_PIPES`] serves as many such relays at
//! once, and a relay that finds the pool empty moves that chunk by copy.
//!
//! The fd bill of `--relay splice` is therefore the copy relay's, 2 fds per
//! client connection, plus at most 2 × [`MAX_PIPES`] for the whole master
//! (fewer under a low fd limit: [`pipes_for`]); the relay budget reserves
//! them (`max_relays`).
//!
//! # Small transfers
//!
//! A chunk moved by splice costs two system calls, as a copy does (`recv`,
//! `send`), and saves the two copies through the master's buffer; but for a
//! small message the copies are cheap and the pipe's bookkeeping is not.
//! The relay therefore reads a direction's first chunk by copy, into its
//! 8 KiB buffer, and splices only after a read that filled the buffer (more
//! is likely waiting); a chunk under that size sends it back to copying
//! (`relay::pump`). HTTP heads, and answers up to 8 KiB, never touch a pipe:
//! at small sizes `--relay splice` is the copy relay.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};

use nix::fcntl::OFlag;

use crate::relay::{HeldFd, RelayFds};

/// The most pipes the pool holds: as many relays at once may have a chunk
/// waiting for a full destination and still splice; the next ones copy.
/// 16 pipes are 32 fds, a fixed cost beside the 2 per connection.
pub const MAX_PIPES: usize = 16;

/// The most bytes one `splice(2)` from a socket asks for: a pipe's default
/// capacity (16 pages). The kernel moves less when less is queued.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// How many pipes the pool may hold when `available_fds` fds are left for
/// relays and pipes: [`MAX_PIPES`], or fewer so that pipes take at most an
/// eighth of them (a low `--max-fds` goes to connections first); none below
/// 16 fds, where every chunk is then copied.
pub fn pipes_for(available_fds: usize) -> usize {
    (available_fds / 16).min(MAX_PIPES)
}

/// One pipe: what `splice(2)` writes into, and reads from.
#[derive(Debug)]
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Both fds counted in [`RelayFds`], so that the budget does not take
    /// them for the master's own (they are reserved apart).
    _held: [HeldFd; 2],
}

/// The pipes the relays borrow, one chunk at a time (see the module doc).
#[derive(Debug)]
pub struct PipePool {
    state: Mutex<PoolState>,
    /// Where each pipe's two fds are counted.
    fds: RelayFds,
}

/// What the pool holds.
#[derive(Debug)]
struct PoolState {
    /// Empty pipes, ready to lend.
    idle: Vec<Pipe>,
    /// Pipes open now: idle or lent.
    open: usize,
    /// The most pipes open at once.
    max: usize,
}

impl PipePool {
    /// A pool of at most `max` pipes, created when first needed; their fds
    /// are counted in `fds`.
    pub fn new(max: usize, fds: RelayFds) -> Arc<PipePool> {
        Arc::new(PipePool {
            state: Mutex::new(PoolState {
                idle: Vec::with_capacity(max),
                open: 0,
                max,
            }),
            fds,
        })
    }

    /// The most pipes this pool opens.
    pub fn max(&self) -> usize {
        self.lock().max
    }

    /// An empty pipe, lent until the [`Lease`] is dropped; `None` when all
    /// are lent, or a new one cannot be opened (EMFILE at the fd limit): the
    /// caller copies instead.
    pub fn take(self: &Arc<PipePool>) -> Option<Lease> {
        let mut state = self.lock();
        let pipe = match state.idle.pop() {
            Some(pipe) => pipe,
            None if state.open < state.max => {
                // O_NONBLOCK: a full or empty pipe is EAGAIN, never a wait
                // in the master's only thread; O_CLOEXEC: no worker the
                // master execs inherits it.
                let (read, write) = match nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK) {
                    Ok(pipe) => pipe,
                    Err(errno) => {
                        tracing::debug!(cause = %errno, "no pipe for splice; copying");
                        return None;
                    }
                };
                state.open += 1;
                Pipe {
                    read,
                    write,
                    _held: [self.fds.hold(), self.fds.hold()],
                }
            }
            None => return None,
        };
        Some(Lease {
            pipe: Some(pipe),
            pending: 0,
            pool: self.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A pipe lent to one relay direction for one chunk. Dropped empty, it goes
/// back to the pool; dropped with bytes in it (the destination failed, or
/// the relay ended mid-chunk), it is closed, and those bytes with it.
#[derive(Debug)]
pub struct Lease {
    pipe: Option<Pipe>,
    /// Bytes spliced in and not yet out.
    pending: usize,
    pool: Arc<PipePool>,
}

impl Lease {
    fn pipe(&self) -> &Pipe {
        self.pipe
            .as_ref()
            .expect("a lease holds its pipe until dropped")
    }

    /// Bytes in the pipe.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// One `splice(2)` of at most [`CHUNK_BYTES`] from the socket `from`
    /// into the (empty) pipe: the bytes moved, 0 at the socket's end of
    /// file. The pipe is empty, so EAGAIN can only mean that the socket has
    /// nothing queued.
    pub fn splice_in(&mut self, from: BorrowedFd<'_>) -> io::Result<usize> {
        debug_assert_eq!(
            self.pending, 0,
            "a chunk is spliced in only into an empty pipe"
        );
        let moved = splice(from, self.pipe().write.as_fd(), CHUNK_BYTES)?;
        self.pending = moved;
        Ok(moved)
    }

    /// One `splice(2)` of what is in the pipe into the socket `to`: the
    /// bytes moved. The pipe is not empty, so EAGAIN can only mean that the
    /// socket's send buffer is full.
    pub fn splice_out(&mut self, to: BorrowedFd<'_>) -> io::Result<usize> {
        let moved = splice(self.pipe().read.as_fd(), to, self.pending)?;
        if moved == 0 {
            // Only a pipe with no writer reads 0, and we hold its writer.
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.pending -= moved;
        Ok(moved)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(pipe) = self.pipe.take() else {
            return;
        };
        let mut state = self.pool.lock();
        if self.pending == 0 {
            state.idle.push(pipe);
        } else {
            // Bytes the destination will never take: close the pipe (and
            // them); a new one is opened when needed.
            state.open -= 1;
            drop(pipe);
        }
    }
}

/// `splice(from, NULL, to, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)`.
///
/// `SPLICE_F_MOVE`: move pages rather than copy them where the kernel can
/// (a hint). `SPLICE_F_NONBLOCK`: never wait on the pipe; the sockets are
/// non-blocking themselves (tokio's), so a call never waits at all and the
/// caller waits for readiness in the event loop. A socket whose peer is
/// gone is EPIPE (Rust binaries ignore SIGPIPE).
fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    // SAFETY: both fds are borrowed, so open for the call; null offsets
    // are what splice(2) requires for a pipe and for a socket.
    let moved = unsafe {
        libc::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    usize::try_from(moved).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pipes take at most an eighth of what is left, and at most `MAX_PIPES`.
    #[test]
    fn pipes_are_bounded_by_what_is_left() {
        assert_eq!(pipes_for(0), 0);
        assert_eq!(pipes_for(15), 0);
        assert_eq!(pipes_for(16), 1);
        assert_eq!(pipes_for(100), 6);
        assert_eq!(pipes_for(20_000), MAX_PIPES);
    }

    /// A pool lends at most `max` pipes, takes an empty one back, closes one
    /// returned with bytes in it, and counts every pipe's two fds.
    #[test]
    fn pool_lends_returns_and_closes() {
        let fds = RelayFds::default();
        let pool = PipePool::new(2, fds.clone());
        let first = pool.take().expect("a first pipe");
        let mut second = pool.take().expect("a second pipe");
        assert!(pool.take().is_none(), "a third is over the bound");
        assert_eq!(fds.count(), 4);
        drop(first);
        assert_eq!(fds.count(), 4, "an empty pipe is kept for the next chunk");
        // Bytes into the second pipe that never come out.
        let (reader, writer) = std::os::unix::net::UnixStream::pair().expect("a socketpair");
        std::io::Write::write_all(&mut &writer, b"stuck").expect("write");
        assert_eq!(second.splice_in(reader.as_fd()).expect("splice in"), 5);
        drop(second);
        assert_eq!(fds.count(), 2, "a pipe with bytes in it is closed");
        assert!(
            pool.take().is_some() && pool.take().is_some(),
            "and replaced"
        );
    }
}
