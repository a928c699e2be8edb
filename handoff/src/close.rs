//! Closing many fds with one system call: the acknowledged copies of the
//! `--pass socket` master (issue 14).
//!
//! Each acknowledgement lets the master close its copies of several handed
//! connections (all those up to its `seq`). One `close(2)` each was the
//! master's second most frequent system call (one per connection, ~2 µs each
//! on a VM that pays for the kernel entry); here they go as `IORING_OP_CLOSE`
//! requests in one `io_uring_enter`. Where io_uring is not available (an old
//! kernel, `kernel.io_uring_disabled`, a seccomp filter), plain `close`.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use io_uring::{IoUring, opcode, types};

/// Submission queue entries: more than one acknowledgement ever closes at
/// once (a worker's window); a longer batch is submitted in parts.
const ENTRIES: u32 = 32;

/// Closes fds in batches; see the module documentation.
pub struct Closer {
    /// `None` when io_uring could not be set up: fds are dropped then.
    ring: Option<IoUring>,
}

impl Default for Closer {
    fn default() -> Closer {
        Closer::new()
    }
}

impl Closer {
    /// A closer with its own small ring, or one that closes plainly if the
    /// ring cannot be made.
    pub fn new() -> Closer {
        let ring = match IoUring::new(ENTRIES) {
            Ok(ring) => Some(ring),
            Err(err) => {
                tracing::debug!(cause = %err, "no io_uring; closing fds one by one");
                None
            }
        };
        Closer { ring }
    }

    /// Closes `fds`: with io_uring, in one submission per [`ENTRIES`].
    pub fn close(&mut self, fds: impl IntoIterator<Item = OwnedFd>) {
        let Some(ring) = self.ring.as_mut() else {
            fds.into_iter().for_each(drop);
            return;
        };
        let mut pushed = false;
        for fd in fds {
            let entry = opcode::Close::new(types::Fd(fd.as_raw_fd()))
                .build()
                .user_data(0);
            // SAFETY: a close entry refers to no memory of ours; the fd is
            // ours (an OwnedFd) and nothing uses it after this.
            if unsafe { ring.submission().push(&entry) }.is_err() {
                // Full: submit what is queued, then there is room.
                submit(ring);
                // SAFETY: as above.
                if unsafe { ring.submission().push(&entry) }.is_err() {
                    // Still full (the kernel took nothing): close it here.
                    drop(fd);
                    continue;
                }
            }
            // The ring owns it now: closed by the kernel, not by drop.
            let _ = fd.into_raw_fd();
            pushed = true;
        }
        if pushed {
            submit(ring);
        }
    }
}

/// Submits what is queued and forgets the completions (a close that fails
/// frees the fd all the same).
fn submit(ring: &mut IoUring) {
    if let Err(err) = ring.submit() {
        // The entries stay queued, and go with the next submission.
        tracing::debug!(cause = %err, "io_uring submit failed");
    }
    ring.completion().for_each(drop);
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    use super::*;

    /// Every fd given is closed, more than a submission queue's worth too:
    /// one end of each of many socketpairs, whose other ends then read end
    /// of file.
    #[test]
    fn closes_every_fd() {
        let mut closer = Closer::new();
        assert!(closer.ring.is_some(), "no io_uring here");
        let (readers, writers): (Vec<_>, Vec<_>) = (0..3 * ENTRIES)
            .map(|_| UnixStream::pair().expect("a socketpair"))
            .unzip();
        closer.close(writers.into_iter().map(OwnedFd::from));
        for mut reader in readers {
            let mut byte = [0u8; 1];
            assert_eq!(
                reader.read(&mut byte).expect("read"),
                0,
                "an end is still open"
            );
        }
    }
}
