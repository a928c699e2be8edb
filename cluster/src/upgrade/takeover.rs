//! The new master's side of a takeover (`--takeover PATH`): connect, check
//! who answers and what it hands over, then, once every new worker serves,
//! the commit.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Instant;

use nix::errno::Errno;
use tokio::sync::oneshot;

use super::wire::{self, Conn, Datagram, Silence};
use super::{ANSWER_TIMEOUT, HEARTBEAT_INTERVAL, PROTOCOL, Shared, Stage, VERSION};
use crate::announce::WorkerInfo;
use crate::cli::UsageError;
use crate::{Mode, Pass};

/// The new master's side, from `hello` to the sockets received and checked.
pub(super) struct Takeover {
    conn: Conn,
    /// The old master, as the kernel names it.
    pub old_pid: u32,
    /// The address of the sockets taken.
    pub listen: SocketAddr,
    /// The sockets, until the mode takes them.
    pub sockets: Option<Vec<OwnedFd>>,
    /// They are a service manager's (the old master's socket activation).
    pub lent: bool,
}

impl Takeover {
    /// Connects to `path`, says hello, receives the sockets and checks them.
    /// Everything that goes wrong is a usage error (exit 2): nothing has
    /// started yet, and the old master, if it is one, serves on.
    pub async fn connect(path: &Path, mode: Mode, workers: u16) -> anyhow::Result<Takeover> {
        let usage = |what: String| UsageError(format!("--takeover {}: {what}", path.display()));
        let meta = std::fs::metadata(path).map_err(|err| usage(err.to_string()))?;
        if !meta.file_type().is_socket() {
            return Err(usage("not a socket".into()).into());
        }
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        let fd = wire::connect(path, deadline).await.map_err(|errno| {
            usage(match errno {
                Errno::ECONNREFUSED => "nothing listens there (a stale socket?)".into(),
                Errno::EPROTOTYPE => "not a master's upgrade socket (wrong socket type)".into(),
                Errno::EAGAIN => format!(
                    "the master there accepts nothing (its backlog stayed full for {ANSWER_TIMEOUT:?}: stalled?)"
                ),
                errno => io::Error::from(errno).to_string(),
            })
        })?;
        let conn = Conn::new(fd)?;
        // SAFETY: geteuid has no precondition and cannot fail.
        let uid = unsafe { libc::geteuid() };
        if conn.peer.uid != uid {
            // Whoever serves that path could hand us sockets it keeps a copy
            // of, or none that listen: only a master of our own user may.
            return Err(usage(format!(
                "served by pid {} of uid {}, not of our uid {uid}; refused",
                conn.peer.pid, conn.peer.uid
            ))
            .into());
        }
        let hello = Datagram::Hello {
            protocol: PROTOCOL.into(),
            version: VERSION,
            mode: mode.name().into(),
            workers,
            pid: std::process::id(),
        };
        let not_a_master = |what: String| usage(format!("not a master's upgrade socket: {what}"));
        conn.send(&hello, None)
            .await
            .map_err(|err| not_a_master(err.to_string()))?;
        // Debug level: a refusal that follows is one line at the default
        // level. The tests wait for this to stop a new master at this step.
        tracing::debug!(
            old_master = conn.peer.pid,
            "said hello; waiting for the offer"
        );
        let (offered_pid, listen, count, lent) = match conn.recv_within(ANSWER_TIMEOUT).await {
            Ok(Some((
                Datagram::Offer {
                    pid,
                    listen,
                    sockets,
                    lent,
                },
                _,
            ))) => (pid, listen, sockets, lent),
            Ok(Some((Datagram::Refused { reason }, _))) => {
                return Err(usage(format!("takeover refused: {reason}")).into());
            }
            Ok(Some((other, _))) => {
                return Err(not_a_master(format!("unexpected {other:?}")).into());
            }
            Ok(None) => {
                return Err(usage(
                    "closed without an answer (a peer of another uid is refused; see the old master's log)"
                        .into(),
                )
                .into());
            }
            Err(silence) => return Err(not_a_master(silence.to_string()).into()),
        };
        if offered_pid != conn.peer.pid {
            return Err(not_a_master(format!(
                "the offer says pid {offered_pid}, the socket's peer is pid {}",
                conn.peer.pid
            ))
            .into());
        }
        let expected = expected_sockets(mode, workers);
        if count != expected {
            return Err(not_a_master(format!(
                "offers {count} sockets, {mode} with --workers {workers} takes {expected}"
            ))
            .into());
        }
        let mut sockets: Vec<OwnedFd> = Vec::with_capacity(count);
        for index in 0..count {
            let socket = match conn.recv_within(ANSWER_TIMEOUT).await {
                Ok(Some((Datagram::Socket { index: i }, mut fds)))
                    if i == index && fds.len() == 1 =>
                {
                    fds.pop().expect("one fd")
                }
                Ok(other) => {
                    let got = other.map(|(datagram, fds)| (datagram, fds.len()));
                    return Err(not_a_master(format!("socket {index}: got {got:?}")).into());
                }
                Err(silence) => {
                    return Err(not_a_master(format!("socket {index}: {silence}")).into());
                }
            };
            let reuseport = mode == Mode::Handoff(Pass::Reuseport);
            crate::listen::check_listening(&socket, Some(listen), reuseport, &sockets)
                .map_err(|what| usage(format!("socket {index} of the offer is {what}; refused")))?;
            sockets.push(socket);
        }
        tracing::info!(old_master = conn.peer.pid, %listen, sockets = count, "took the listening sockets over");
        Ok(Takeover {
            old_pid: conn.peer.pid,
            conn,
            listen,
            sockets: Some(sockets),
            lent,
        })
    }

    /// Waits for every new worker to serve (saying `waiting` to the old
    /// master every [`HEARTBEAT_INTERVAL`], until `deadline`), then commits:
    /// `ready`, the old master's `released`, our `taken`. Returns the
    /// workers for the `ready` line, or why the takeover is given up (the
    /// old master then serves on: nothing here changed its sockets).
    ///
    /// An old master that is gone (end of file, no `aborted`) leaves the
    /// sockets to us alone: the stage becomes [`Stage::Owner`] at once.
    pub async fn complete(
        &self,
        ready: oneshot::Receiver<Vec<WorkerInfo>>,
        deadline: Instant,
        wait: std::time::Duration,
        shared: &Shared,
    ) -> Result<Vec<WorkerInfo>, String> {
        let old = self.old_pid;
        let mut old_gone = false;
        let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(ready);
        let workers = loop {
            tokio::select! {
                workers = &mut ready => match workers {
                    Ok(workers) => break workers,
                    // The supervisor is gone: the master is stopping, and
                    // will not wait for this task.
                    Err(_) => return Err("stopped before every worker served".into()),
                },
                () = tokio::time::sleep_until(deadline.into()) => {
                    return Err(format!(
                        "the workers did not all serve within {}; takeover given up",
                        humantime::format_duration(wait)
                    ));
                }
                _ = heartbeat.tick(), if !old_gone => {
                    // A failure shows as what the old master left queued.
                    let _ = self.conn.send(&Datagram::Waiting, None).await;
                }
                received = self.conn.recv(), if !old_gone => match received {
                    Ok(Some((Datagram::Aborted { reason }, _))) => {
                        return Err(format!("the old master (pid {old}) called the takeover off: {reason}"));
                    }
                    Ok(None) => {
                        tracing::warn!(old_master = old, "the old master is gone; the sockets are ours alone");
                        shared.set_stage(Stage::Owner);
                        old_gone = true;
                    }
                    Ok(Some((other, _))) => return Err(format!("unexpected {other:?} from the old master")),
                    Err(err) => return Err(format!("from the old master: {err:#}")),
                },
            }
        };
        if !old_gone {
            self.commit().await?;
        }
        Ok(workers)
    }

    /// `ready`, `released`, `taken`: the sockets are ours once the old
    /// master reads `taken`, and it reads it only if we sent it before it
    /// called the takeover off. Until we send it, giving up is safe: the old
    /// master's `released` reaches a closed connection, and it serves on.
    async fn commit(&self) -> Result<(), String> {
        let old = self.old_pid;
        tracing::info!(
            old_master = old,
            "every worker serves; telling the old master"
        );
        if self.conn.send(&Datagram::Ready, None).await.is_err() {
            return self.after_refused_send();
        }
        match self.conn.recv_within(ANSWER_TIMEOUT).await {
            Ok(Some((Datagram::Released, _))) => {}
            Ok(Some((Datagram::Aborted { reason }, _))) => {
                return Err(format!(
                    "the old master (pid {old}) called the takeover off: {reason}"
                ));
            }
            Ok(None) => {
                tracing::warn!(
                    old_master = old,
                    "the old master is gone; the sockets are ours alone"
                );
                return Ok(());
            }
            Ok(Some((other, _))) => {
                return Err(format!("unexpected {other:?} from the old master"));
            }
            Err(Silence::TimedOut) => {
                return Err(format!(
                    "the old master (pid {old}) did not answer our ready within {ANSWER_TIMEOUT:?}; takeover given up (it serves on)"
                ));
            }
            Err(Silence::Broken(err)) => return Err(format!("from the old master: {err:#}")),
        }
        if self.conn.send(&Datagram::Taken, None).await.is_err() {
            return self.after_refused_send();
        }
        Ok(())
    }

    /// A send to the old master failed (EPIPE): it called the takeover off
    /// (`aborted` is queued), or it is gone (end of file): then the sockets
    /// are ours alone.
    fn after_refused_send(&self) -> Result<(), String> {
        let old = self.old_pid;
        while let Ok(Some(received)) = self.conn.try_recv() {
            match received {
                Some((Datagram::Aborted { reason }, _)) => {
                    return Err(format!(
                        "the old master (pid {old}) called the takeover off: {reason}"
                    ));
                }
                Some(_) => {}
                None => break,
            }
        }
        tracing::warn!(
            old_master = old,
            "the old master is gone; the sockets are ours alone"
        );
        Ok(())
    }
}

/// How many listening sockets a master of `mode` holds: one per worker slot
/// in `reuseport`, else one.
fn expected_sockets(mode: Mode, workers: u16) -> usize {
    match mode {
        Mode::Handoff(Pass::Reuseport) => usize::from(workers),
        _ => 1,
    }
}
