//! Workers that die, stall or misbehave: each is replaced, and what it held
//! is not lost.

use super::*;

/// SIGKILLs the first worker of the ready line: a `respawn` event must name it as
/// `old_pid` within [`RESPAWN_TIMEOUT`], with a new, running `pid` (and a `port` in
/// `proxy` mode only), and then 20 one-shot requests must all be answered by the
/// surviving or the new worker, never the dead one.
///
/// # Panics
/// If any of these does not hold.
pub fn assert_respawns_killed_worker(cluster: &mut Cluster) {
    let workers = cluster.worker_pids();
    let killed = workers[0];
    cluster
        .signal_worker(killed, Signal::SIGKILL)
        .unwrap_or_else(|err| panic!("SIGKILL worker {killed}: {err:#}"));

    let deadline = Instant::now() + RESPAWN_TIMEOUT;
    let respawn = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let event = cluster.next_event(remaining);
        match event {
            Some(event) if event["event"] == "respawn" => break event,
            Some(_) if !remaining.is_zero() => continue,
            _ => panic!(
                "no respawn event within {RESPAWN_TIMEOUT:?} of killing worker {killed}; stderr:\n{}",
                cluster.stderr()
            ),
        }
    };
    assert_eq!(respawn["old_pid"], killed, "old_pid of {respawn}");
    let new_pid = respawn["pid"]
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok())
        .unwrap_or_else(|| panic!("no pid in {respawn}"));
    assert!(
        !workers.contains(&new_pid),
        "the respawned worker reuses a pid: {respawn}"
    );
    assert!(
        cluster.live_workers().contains(&new_pid),
        "the respawned worker {new_pid} is not running"
    );
    // The master reaps its dead worker: no zombie left behind.
    assert!(
        wait_until(Duration::from_secs(1), || !exists(killed)),
        "the killed worker {killed} was not reaped (zombie)"
    );
    // The successor's address, as its ready-line peers had theirs.
    let unix = cluster.ready().workers.iter().any(|w| w.path.is_some());
    let has_port = cluster.mode() == "proxy" && !unix;
    assert_eq!(
        respawn["port"].is_u64(),
        has_port,
        "port of {respawn} in {} mode",
        cluster.mode()
    );
    assert_eq!(respawn["path"].is_string(), unix, "path of {respawn}");

    let serving: Vec<u32> = workers
        .iter()
        .copied()
        .filter(|pid| *pid != killed)
        .chain([new_pid])
        .collect();
    for request in 0..20 {
        let response = get(cluster.addr(), "/", true)
            .unwrap_or_else(|err| panic!("request {request} after the respawn: {err:#}"));
        assert_worker_answer(&response, &serving);
    }
}

/// SIGKILLs the master: it must exit, and every worker it announced must be gone
/// (exited, or a zombie) within [`ORPHAN_TIMEOUT`].
///
/// # Panics
/// If a worker outlives the master by more than that.
pub fn assert_master_kill_leaves_no_orphans(cluster: &mut Cluster) {
    assert!(
        !cluster.live_workers().is_empty(),
        "no running worker before the test"
    );
    cluster
        .signal(Signal::SIGKILL)
        .unwrap_or_else(|err| panic!("SIGKILL the master: {err:#}"));
    let killed_at = Instant::now();
    assert!(
        cluster.wait_exit(ORPHAN_TIMEOUT).is_some(),
        "the master survived SIGKILL"
    );
    let remaining = ORPHAN_TIMEOUT.saturating_sub(killed_at.elapsed());
    assert!(
        wait_until(remaining, || cluster.live_workers().is_empty()),
        "workers {:?} still running {ORPHAN_TIMEOUT:?} after the master was killed",
        cluster.live_workers()
    );
}

/// Under a load of 8 clients each sending one request per connection, one
/// worker is killed: the master respawns it, the successor serves, and the
/// requests that fail are at most those in flight on the dead worker (one per
/// client). Returns (requests failed, requests answered).
///
/// # Panics
/// If more requests fail, or no successor serves.
pub fn assert_worker_kill_under_load(cluster: &mut Cluster) -> (usize, usize) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const CLIENTS: usize = 8;
    /// Bound on each client's requests, so the loop ends whatever happens.
    const MAX_REQUESTS_PER_CLIENT: usize = 2_000;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let answered_by = Arc::new(Mutex::new(BTreeSet::new()));
    let addr = cluster.addr();
    let clients: Vec<JoinHandle<()>> = (0..CLIENTS)
        .map(|_| {
            let (stop, ok, failed, answered_by) = (
                stop.clone(),
                ok.clone(),
                failed.clone(),
                answered_by.clone(),
            );
            thread::spawn(move || {
                for _ in 0..MAX_REQUESTS_PER_CLIENT {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match get(addr, "/", true) {
                        Ok(response) if response.status == 200 => {
                            ok.fetch_add(1, Ordering::SeqCst);
                            lock(&answered_by).extend(response.worker_pid());
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    let load_running = wait_until(HTTP_TIMEOUT, || ok.load(Ordering::SeqCst) >= 100);
    let killed = cluster.worker_pids()[0];
    if load_running {
        cluster
            .signal_worker(killed, Signal::SIGKILL)
            .expect("SIGKILL a worker");
    }
    let deadline = Instant::now() + RESPAWN_TIMEOUT;
    let mut successor = None;
    while successor.is_none() && Instant::now() < deadline {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if let Some(event) = cluster.next_event(remaining) {
            if event["event"] == "respawn" && event["old_pid"] == killed {
                successor = event["pid"].as_u64().map(|pid| pid as u32);
            }
        }
    }
    let served = successor
        .is_some_and(|pid| wait_until(RESPAWN_TIMEOUT, || lock(&answered_by).contains(&pid)));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("a client thread panicked");
    }
    assert!(load_running, "the load never got going");
    assert!(successor.is_some(), "no respawn of {killed} under load");
    assert!(served, "the successor of {killed} served no request");
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(
        failed <= CLIENTS,
        "{failed} requests failed (answered: {ok}); at most {CLIENTS} were in flight on the dead worker"
    );
    (failed, ok)
}

/// Waits up to `timeout` for the `respawn` line whose `old_pid` is `old_pid`,
/// skipping any other line; returns the successor's pid.
pub fn wait_for_respawn(cluster: &mut Cluster, old_pid: u32, timeout: Duration) -> Option<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let event = cluster.next_event(remaining)?;
        if event["event"] == "respawn" && event["old_pid"] == old_pid {
            return event["pid"]
                .as_u64()
                .and_then(|pid| u32::try_from(pid).ok());
        }
    }
}

/// Sends 10 one-shot requests: each must be answered by one of `serving`.
pub(super) fn assert_served_by(cluster: &Cluster, serving: &[u32]) {
    for request in 0..10 {
        let response = get(cluster.addr(), "/", true)
            .unwrap_or_else(|err| panic!("request {request}: {err:#}"));
        assert_worker_answer(&response, serving);
    }
}

/// Regression (issue 10, a stalled worker kept its clients waiting for ever):
/// SIGSTOPs the first worker of a cluster started with `--worker-timeout
/// worker_timeout`. The worker answers no ping: the master must SIGKILL it,
/// reap it and announce its successor, within the timeout plus a second
/// (allowed [`RESPAWN_TIMEOUT`] more on a loaded machine); then the
/// successor and the other worker serve.
///
/// # Panics
/// If the stopped worker is not replaced in time, or the cluster does not
/// serve after.
pub fn assert_replaces_a_stalled_worker(cluster: &mut Cluster, worker_timeout: Duration) {
    let workers = cluster.worker_pids();
    let stalled = workers[0];
    cluster
        .signal_worker(stalled, Signal::SIGSTOP)
        .unwrap_or_else(|err| panic!("SIGSTOP worker {stalled}: {err:#}"));
    let stopped_at = Instant::now();
    let successor = wait_for_respawn(cluster, stalled, worker_timeout + RESPAWN_TIMEOUT)
        .unwrap_or_else(|| {
            panic!(
                "the stopped worker {stalled} was not replaced within {:?}; stderr:\n{}",
                worker_timeout + RESPAWN_TIMEOUT,
                cluster.stderr()
            )
        });
    eprintln!(
        "stopped worker {stalled} replaced by {successor} after {:?} (--worker-timeout {worker_timeout:?})",
        stopped_at.elapsed()
    );
    assert!(
        wait_until(Duration::from_secs(1), || !exists(stalled)),
        "the stopped worker {stalled} was not killed and reaped"
    );
    let serving: Vec<u32> = workers
        .iter()
        .copied()
        .filter(|pid| *pid != stalled)
        .chain([successor])
        .collect();
    assert_served_by(cluster, &serving);
}

/// How many frames the flooding impostor sends at most, and for how long:
/// the flood of issue 10 (`Ack{1}` in a loop) grew the master by 33 MB/s.
const FLOOD_FRAMES: usize = 200_000;

const FLOOD_DURATION: Duration = Duration::from_secs(3);

/// How much the master's RSS may grow while its workers misbehave.
const MISBEHAVIOUR_RSS_SLACK_BYTES: u64 = 16 << 20;

/// Sends `Ack{1}` as the worker, as fast as the master reads, until the
/// master closes the channel (it killed and reaped the worker) or
/// [`FLOOD_FRAMES`] or [`FLOOD_DURATION`] is reached; returns the frames sent.
fn flood_acks(impostor: &Impostor) -> usize {
    let started = Instant::now();
    let mut sent = 0;
    while sent < FLOOD_FRAMES && started.elapsed() < FLOOD_DURATION {
        match impostor.send(Message::Ack { seq: 1 }) {
            Ok(()) => sent += 1,
            // The master's queue is full: it reads slower than we write.
            Err(nix::errno::Errno::EAGAIN) => thread::yield_now(),
            // The master closed its end: the worker is dead and reaped.
            Err(_) => break,
        }
    }
    sent
}

/// Regression (issue 10, a misbehaving worker grew the master without
/// bound): a worker that sends frames it has no reason to send is killed at
/// once and replaced, with one log line, whatever the mode. The test stops a
/// real worker and speaks on its channel itself ([`Impostor`]): a flood of
/// `Ack{1}`, `Ack{u64::MAX}` (once an overflow in the master), a `Reject` of
/// a handoff that never was (once a pause of the worker), a second `Ready`,
/// a `Pong` of no ping. After each, the master must announce the successor
/// of that worker within [`RESPAWN_TIMEOUT`] and serve; at the end its RSS
/// must have grown by less than 16 MiB, and SIGTERM must stop it cleanly.
/// Start the cluster with a long `--worker-timeout`, so that the kills are
/// not the liveness check's.
///
/// # Panics
/// If a misbehaving worker is not replaced, the master grows, stops serving
/// or does not stop cleanly.
pub fn assert_kills_misbehaving_workers(cluster: &mut Cluster) {
    let master = cluster.master_pid();
    let rss = || cluster::procfs::rss_bytes(master).expect("read the master's RSS");
    let rss_before = rss();
    let mut serving = cluster.worker_pids();
    type Misbehaviour = fn(&Impostor) -> usize;
    let misbehaviours: [(&str, Misbehaviour); 5] = [
        ("a flood of Ack{1}", flood_acks),
        ("Ack{u64::MAX}", |impostor| {
            impostor
                .send(Message::Ack { seq: u64::MAX })
                .map_or(0, |()| 1)
        }),
        ("a Reject of an unknown handoff", |impostor| {
            impostor
                .send(Message::Reject { seq: 1 << 40 })
                .map_or(0, |()| 1)
        }),
        ("a second Ready", |impostor| {
            impostor
                .send(Message::Ready { port: None })
                .map_or(0, |()| 1)
        }),
        ("a Pong of no ping", |impostor| {
            impostor
                .send(Message::Pong { seq: u64::MAX })
                .map_or(0, |()| 1)
        }),
    ];
    for (what, misbehave) in misbehaviours {
        let worker = serving[0];
        cluster
            .signal_worker(worker, Signal::SIGSTOP)
            .unwrap_or_else(|err| panic!("SIGSTOP worker {worker}: {err:#}"));
        let impostor = Impostor::take_over(worker)
            .unwrap_or_else(|err| panic!("take over the channel of worker {worker}: {err:#}"));
        let sent = misbehave(&impostor);
        drop(impostor);
        let successor = wait_for_respawn(cluster, worker, RESPAWN_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "worker {worker} sent {what} ({sent} frames) and was not replaced within \
                 {RESPAWN_TIMEOUT:?}; stderr:\n{}",
                cluster.stderr()
            )
        });
        serving[0] = successor;
        let logged = cluster
            .stderr()
            .lines()
            .filter(|line| line.contains("misbehav") && line.contains(&format!("worker={worker}")))
            .count();
        assert_eq!(
            logged,
            1,
            "worker {worker} sent {what}: its misbehaviour should be logged once; stderr:\n{}",
            cluster.stderr()
        );
        assert_served_by(cluster, &serving);
    }
    let grown = rss().saturating_sub(rss_before);
    assert!(
        grown < MISBEHAVIOUR_RSS_SLACK_BYTES,
        "the master grew by {grown} bytes while its workers misbehaved"
    );
    assert_sigterm_stops_cleanly(cluster);
}

/// Regression (issue 10, the ack lost at a worker's exit), `handoff-socket`:
/// a worker acknowledges a connection and exits at once, with frames of the
/// master still unread. The master must read that last `Ack` before it
/// handles the exit: the acknowledged connection was the worker's (it is
/// closed with it, unanswered), never handed to a second worker; the
/// connections it had not acknowledged go to the other worker and are
/// answered. The test plays the worker ([`Impostor`]) and stops the master
/// meanwhile, so that the master finds the `Ack` and the exit in the same
/// wake-up. Start the cluster with a long `--worker-timeout`.
///
/// # Panics
/// If the acknowledged connection is answered, or another one is lost.
pub fn assert_ack_before_exit_is_kept(cluster: &mut Cluster) {
    let master = cluster.master_pid();
    let worker = cluster.worker_pids()[0];
    cluster
        .signal_worker(worker, Signal::SIGSTOP)
        .unwrap_or_else(|err| panic!("SIGSTOP worker {worker}: {err:#}"));
    let impostor = Impostor::take_over(worker)
        .unwrap_or_else(|err| panic!("take over the channel of worker {worker}: {err:#}"));
    // Four clients, each with its request sent: round robin hands two to the
    // stopped worker.
    let clients: Vec<TcpStream> = (0..4)
        .map(|client| {
            let mut stream = TcpStream::connect(cluster.addr())
                .unwrap_or_else(|err| panic!("client {client}: connect: {err}"));
            stream
                .set_read_timeout(Some(HTTP_TIMEOUT))
                .expect("set a read timeout");
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                .unwrap_or_else(|err| panic!("client {client}: send: {err}"));
            stream
        })
        .collect();
    let (message, fds) = impostor
        .recv(HTTP_TIMEOUT)
        .unwrap_or_else(|err| panic!("no handoff to the stopped worker: {err:#}"));
    // One connection, or a batch if the master found several clients queued
    // at once (issue 14): the first is the one acknowledged; the impostor's
    // copies of the others are closed, and the master re-hands them.
    let (Message::Connection { seq } | Message::Connections { seq, .. }) = message else {
        panic!("the master sent {message:?} to a serving worker, not a connection");
    };
    let handed = TcpStream::from(fds.into_iter().next().expect("a connection's fd"));
    let acknowledged = handed.peer_addr().expect("the handed connection's peer");
    // Something of the master's left unread when the worker exits (its next
    // handoff, or a ping): the kernel then reports a reset before the Ack.
    assert!(
        wait_until(HTTP_TIMEOUT, || impostor.queued_bytes().unwrap_or(0) > 0),
        "nothing more from the master in the stopped worker's queue"
    );
    cluster
        .signal(Signal::SIGSTOP)
        .unwrap_or_else(|err| panic!("SIGSTOP the master: {err:#}"));
    let master_stopped = wait_until(HTTP_TIMEOUT, || {
        cluster::procfs::stat(master).is_ok_and(|stat| stat.state == 'T')
    });
    assert!(master_stopped, "the master did not stop");
    impostor
        .send(Message::Ack { seq })
        .unwrap_or_else(|err| panic!("send Ack{{{seq}}} as the worker: {err}"));
    drop(handed);
    drop(impostor);
    cluster
        .signal_worker(worker, Signal::SIGKILL)
        .unwrap_or_else(|err| panic!("SIGKILL worker {worker}: {err:#}"));
    // Dead; a zombie until the master, stopped, reaps it.
    assert!(
        wait_until(HTTP_TIMEOUT, || !is_alive(worker)),
        "worker {worker} survived SIGKILL"
    );
    cluster
        .signal(Signal::SIGCONT)
        .unwrap_or_else(|err| panic!("SIGCONT the master: {err:#}"));
    let others: Vec<u32> = cluster
        .worker_pids()
        .into_iter()
        .filter(|pid| *pid != worker)
        .collect();
    for (client, mut stream) in clients.into_iter().enumerate() {
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        let local = stream.local_addr().expect("a connected client's address");
        if local == acknowledged {
            // Closed with the worker: end of file, or a reset (the request
            // was never read), but not a client left waiting.
            assert!(
                read.as_ref()
                    .map_or_else(|err| err.kind() == io::ErrorKind::ConnectionReset, |_| true),
                "the connection acknowledged by worker {worker} was neither answered nor \
                 closed: {read:?}"
            );
            assert!(
                answer.is_empty(),
                "the connection acknowledged by worker {worker} before it exited was handed to \
                 another worker, which answered: {}",
                String::from_utf8_lossy(&answer)
            );
            continue;
        }
        read.unwrap_or_else(|err| panic!("client {client}: read: {err}"));
        let answer = String::from_utf8_lossy(&answer);
        let pid = others
            .iter()
            .find(|pid| answer.contains(&format!("x-worker-pid: {pid}\r\n")));
        assert!(
            answer.starts_with("HTTP/1.1 200") && pid.is_some(),
            "client {client} not answered by the other worker {others:?}: {answer:?}"
        );
    }
}
