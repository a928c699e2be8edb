//! The contract every mode keeps, as test bodies: each `assert_*` function is
//! the whole of one test, which each mode's test file calls in a line, so that
//! the modes are held to the very same checks.
//!
//! This is test code, not the product: the functions panic when the binary
//! breaks the contract, as a test does.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use cluster::channel::Message;

use crate::http::{HTTP_TIMEOUT, KeepAlive, RawClient, Response, get, pipelined_gets, send_raw};
use crate::impostor::Impostor;
use crate::lock;
use crate::proc::{cpu_time, exists, fd_count, is_alive, wait_until};
use crate::process::{Cluster, run_expect_exit};

mod activation;
mod limits;
mod payload;
mod serving;
mod shutdown;
mod supervision;
mod upgrade;
mod upgrade_edges;

pub use activation::*;
pub use limits::*;
pub use payload::*;
pub use serving::*;
pub use shutdown::*;
pub use supervision::*;
pub use upgrade::*;
pub use upgrade_edges::*;

/// How long the master may take to replace a dead worker (ARCHITECTURE.md says within a
/// second; the slack is for loaded machines).
pub const RESPAWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the workers may outlive a SIGKILLed master (ARCHITECTURE.md says a second).
pub const ORPHAN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the master may take to stop after SIGTERM, in-flight requests included.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a binary given bad usage or a taken port may take to exit.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `bin` with `--workers 2`, `args` and `--listen 127.0.0.1:0`, and checks
/// its ready line: mode `mode`, two workers, and each worker's address: in
/// `proxy` mode its `port` a number, or with `--upstream unix` a `path`
/// (and `port` null); in the handoff modes neither.
///
/// # Panics
/// If the binary does not start, or its ready line is not as above.
pub fn start_two_workers(bin: &str, args: &[&str], mode: &str) -> Cluster {
    let mut all_args = vec!["--workers", "2"];
    all_args.extend_from_slice(args);
    let cluster = Cluster::start(bin, &all_args)
        .unwrap_or_else(|err| panic!("start {bin} {all_args:?}: {err:#}"));
    let ready = cluster.ready();
    assert_eq!(ready.mode, mode, "mode of the ready line {ready:?}");
    assert_eq!(
        ready.workers.len(),
        2,
        "workers of the ready line {ready:?}"
    );
    let unix = args.windows(2).any(|pair| pair == ["--upstream", "unix"]);
    let (port, path) = match mode {
        "proxy" if unix => (false, true),
        "proxy" => (true, false),
        _ => (false, false),
    };
    assert!(
        ready
            .workers
            .iter()
            .all(|worker| worker.port.is_some() == port && worker.path.is_some() == path),
        "in {mode} mode each worker should have {}: {ready:?}",
        match (port, path) {
            (true, _) => "a port",
            (_, true) => "a path and no port",
            _ => "no port and no path",
        }
    );
    cluster
}

/// Checks that `response` is a worker's answer as ARCHITECTURE.md says (200,
/// `text/plain`, `x-worker-pid`, body `handled by child, pid is <pid>\n`) from one
/// of `workers`, and returns that pid.
///
/// # Panics
/// If any of these does not hold.
pub fn assert_worker_answer(response: &Response, workers: &[u32]) -> u32 {
    assert_eq!(response.status, 200, "status of {response:?}");
    let pid = response
        .worker_pid()
        .unwrap_or_else(|| panic!("no numeric x-worker-pid in {response:?}"));
    assert_eq!(
        response.body,
        format!("handled by child, pid is {pid}\n"),
        "body of {response:?}"
    );
    assert!(
        response
            .header("content-type")
            .is_some_and(|value| value.starts_with("text/plain")),
        "content-type of {response:?}"
    );
    assert!(
        workers.contains(&pid),
        "answered by {pid}, not one of the workers {workers:?}"
    );
    pid
}

/// Starts a client that pipelines `count` requests for `path` on one
/// connection, in one write, and reads their answers; returns the count of
/// answers read so far and the thread, which ends with every answer read
/// (the first error ends the list).
fn start_pipeline(
    cluster: &Cluster,
    path: &str,
    count: usize,
) -> (Arc<Mutex<usize>>, JoinHandle<Vec<anyhow::Result<Response>>>) {
    let mut client = RawClient::connect(cluster.addr()).expect("connect the pipelining client");
    client
        .send(pipelined_gets(path, count).as_bytes())
        .expect("send the pipelined requests");
    let answered = Arc::new(Mutex::new(0));
    let counter = answered.clone();
    let reader = thread::spawn(move || {
        let mut answers = Vec::new();
        for _ in 0..count {
            let answer = client.answer();
            let failed = answer.is_err();
            answers.push(answer);
            *lock(&counter) += 1;
            if failed {
                break;
            }
        }
        answers
    });
    (answered, reader)
}

/// How many polls in a row a worker must be found runnable (state `R`) to
/// count as computing: an idle worker sleeps in epoll_wait (`S`) and wakes
/// for well under a poll interval; a busy loop stays runnable throughout.
const RUNNABLE_POLLS: usize = 2;

/// Waits until one of `workers` is computing a `?work_us=` request: it has
/// used 20 ms more CPU than in `before`, or it has been runnable at
/// [`RUNNABLE_POLLS`] polls in a row. The work is measured in wall-clock
/// time, so on a loaded machine (a load of 14 on 2 cores has been seen) 800 ms
/// of work may get little CPU; but the busy loop never sleeps, so the
/// scheduler shows it runnable, whether or not it gets a core.
fn wait_for_busy_worker(workers: &[u32], before: &[Duration]) -> bool {
    let busy = |pid: &u32| cpu_time(*pid).unwrap_or_default();
    let mut runnable = vec![0usize; workers.len()];
    wait_until(HTTP_TIMEOUT, || {
        workers
            .iter()
            .zip(before)
            .zip(&mut runnable)
            .any(|((pid, before), seen)| {
                let running = cluster::procfs::stat(*pid).is_ok_and(|stat| stat.state == 'R');
                *seen = if running { *seen + 1 } else { 0 };
                *seen >= RUNNABLE_POLLS || busy(pid) >= *before + Duration::from_millis(20)
            })
    })
}

/// The CPU time each of `workers` has used so far.
fn cpu_times(workers: &[u32]) -> Vec<Duration> {
    workers
        .iter()
        .map(|pid| cpu_time(*pid).unwrap_or_default())
        .collect()
}
