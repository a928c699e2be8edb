//! Lesson 4, balance against latency: 4 workers take connections from one
//! shared listening socket (`handoff --pass listener --accept STRATEGY`) or
//! each from its own (`--pass reuseport`). With a worker stopped, a shared
//! queue is taken by the others while reuseport's stopped worker keeps its
//! share; one connection at a time, `--accept blocking` turns the workers
//! in rotation (the FIFO of accept(2)'s wait queue).

use std::collections::BTreeSet;

use runs::labels::Accept;

use super::{Lab, Verdict, percent, ss};
use crate::procfs::socket_inodes;

/// Workers per server: more than the cores, so that the accept path decides.
const WORKERS: usize = 4;
/// Keep-alive connections opened at once.
const BURST: usize = 40;
/// The open loop's new connections a second in the stall.
const RATE: u64 = 200;
/// How long the first worker is stopped, ms.
const STALL_MS: u64 = 500;
/// `--accept blocking`'s bound on each worker's share one at a time, as
/// handoff/tests/cluster.rs (issue 13) asserts it.
const BLOCKING_SHARE: (f64, f64) = (0.15, 0.35);
/// The fewest of reuseport's requests that must wait ≥ a tenth of the stall.
const REUSEPORT_WAITED_AT_LEAST: u64 = 10;

/// A server of the lesson: an accept strategy, or reuseport (`None`).
type Server = Option<Accept>;

/// Its name in the figure.
fn name(server: Server) -> String {
    match server {
        Some(accept) => format!("--accept {accept}"),
        None => "handoff-reuseport".to_owned(),
    }
}

/// Runs the lesson.
pub fn run(lab: &Lab) -> anyhow::Result<Verdict> {
    let (burst_for, seq_for) = if lab.quick {
        ("1s", "1500ms")
    } else {
        ("2s", "3s")
    };
    println!(
        "lesson 4: balance against latency: {WORKERS} workers take connections from one shared listening socket"
    );
    println!(
        "  (handoff --pass listener --accept STRATEGY) or each from its own (--pass reuseport); three loads each:"
    );
    println!(
        "  a burst: {BURST} keep-alive connections opened at once (loadgen --connections {BURST} --duration {burst_for})"
    );
    println!(
        "  a stall: the first worker stopped (SIGSTOP) for {STALL_MS} ms under {RATE} new connections a second"
    );
    println!(
        "    (loadgen --new-conn --rate {RATE} --stop <worker> --stop-after 500ms --stop-for {STALL_MS}ms)"
    );
    println!(
        "  one at a time: each connection closed before the next opens (loadgen --connections 1 --new-conn --duration {seq_for})"
    );
    let servers: Vec<Server> = Accept::ALL
        .iter()
        .copied()
        .map(Some)
        .chain([None])
        .collect();
    let mut runs = Vec::new();
    for &server in &servers {
        let mut running = match server {
            Some(accept) => lab.serve(
                cluster::Mode::Handoff(cluster::Pass::Listener),
                WORKERS,
                &["--accept", accept.name()],
            )?,
            None => lab.serve(
                cluster::Mode::Handoff(cluster::Pass::Reuseport),
                WORKERS,
                &[],
            )?,
        };
        let (master, port, pids) = (running.master(), running.port(), running.workers());
        // The kernel's view: how many sockets listen on the port (ss), and
        // which socket each process's fd names (/proc/PID/fd: socket:[inode]).
        let listening = ss(&["-Hltn", &format!("sport = :{port}")]).lines().count();
        let inodes: Vec<BTreeSet<String>> = std::iter::once(master)
            .chain(pids.iter().copied())
            .map(socket_inodes)
            .collect();
        let target = format!("http://127.0.0.1:{port}/");
        let tag = server.map_or("reuseport", Accept::name);
        let load = |what: &str, args: &[&str]| {
            let mut full = vec!["--target".to_owned(), target.clone()];
            full.extend(args.iter().map(|arg| (*arg).to_owned()));
            lab.load(&format!("{tag}-{what}"), master, &full)
        };
        let burst = load(
            "burst",
            &[
                "--connections",
                &BURST.to_string(),
                "--duration",
                burst_for,
                "--warmup",
                "0s",
            ],
        )?;
        let stall = load(
            "stall",
            &[
                "--new-conn",
                "--rate",
                &RATE.to_string(),
                "--connections",
                "32",
                "--duration",
                "2s",
                "--warmup",
                "200ms",
                "--timeout",
                "5s",
                "--stop",
                &running.first_worker().to_string(),
                "--stop-after",
                "500ms",
                "--stop-for",
                &format!("{STALL_MS}ms"),
            ],
        )?;
        let seq = load(
            "seq",
            &[
                "--connections",
                "1",
                "--new-conn",
                "--duration",
                seq_for,
                "--warmup",
                "300ms",
            ],
        )?;
        running.stop()?;
        runs.push((server, pids, listening, inodes, burst, stall, seq));
    }
    let mut wrong = Vec::new();
    println!();
    println!(
        "  the kernel's view: listening sockets on the port (ss -ltn), and the sockets of master and workers (/proc/PID/fd)"
    );
    for (server, _, listening, inodes, ..) in &runs {
        let shared: Vec<String> = inodes
            .iter()
            .skip(1)
            .fold(inodes.first().cloned().unwrap_or_default(), |all, next| {
                &all & next
            })
            .iter()
            .map(|inode| format!("socket:[{inode}]"))
            .collect();
        println!(
            "  {:<26} {listening} listening socket(s); one socket in every process's fd table: {}",
            name(*server),
            if shared.is_empty() {
                "none".to_owned()
            } else {
                shared.join(", ")
            }
        );
    }
    println!();
    println!("  a burst: connections per worker (ready-line order)   largest share   Jain's index");
    for (server, pids, _, _, burst, ..) in &runs {
        let counts = per_worker(*server, pids, "burst", burst, &mut wrong);
        let (total, largest, jain) = shares(&counts);
        let cells: Vec<String> = counts.iter().map(|c| format!("{c:>4}")).collect();
        println!(
            "  {:<26} {}  of {total:<6} {:>6}          {jain:.2}",
            name(*server),
            cells.join(" "),
            percent(largest)
        );
    }
    println!();
    println!(
        "  a stall of {STALL_MS} ms: requests    p50       p99       longest   waited ≥ {:.0} ms",
        STALL_MS as f64 / 10.0
    );
    let mut waited: Vec<(Server, u64)> = Vec::new();
    for (server, pids, _, _, _, stall, _) in &runs {
        per_worker(*server, pids, "stall", stall, &mut wrong);
        let at_least = stall.stall_waits.as_ref().map_or(0, |w| w.at_least_tenth);
        waited.push((*server, at_least));
        if stall.stalls.first().is_none_or(|s| s.error.is_some()) {
            wrong.push(format!(
                "{}: the worker was not stopped ({:?})",
                name(*server),
                stall.stalls
            ));
        }
        let (p50, p99, max) = stall
            .latency
            .request
            .as_ref()
            .map_or((0, 0, 0), |l| (l.p50_us, l.p99_us, l.max_us));
        println!(
            "  {:<26} {:>7}  {:>6.1} ms {:>6.1} ms {:>6.0} ms   {at_least}",
            name(*server),
            stall.requests.ok,
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0,
            max as f64 / 1000.0
        );
    }
    println!();
    println!(
        "  one at a time: connections per worker (ready-line order)   largest share   Jain's index"
    );
    let (low, high) = BLOCKING_SHARE;
    for (server, pids, .., seq) in &runs {
        let counts = per_worker(*server, pids, "seq", seq, &mut wrong);
        let (total, largest, jain) = shares(&counts);
        let cells: Vec<String> = counts.iter().map(|c| format!("{c:>6}")).collect();
        println!(
            "  {:<26} {}  of {total:<7} {:>6}          {jain:.2}",
            name(*server),
            cells.join(" "),
            percent(largest)
        );
        let within = |c: &u64| (low..=high).contains(&(*c as f64 / total as f64));
        if *server == Some(Accept::Blocking) && (total == 0 || !counts.iter().all(within)) {
            wrong.push(format!(
                "--accept blocking gave {counts:?} one at a time, expected each {}..{}",
                percent(low),
                percent(high)
            ));
        }
    }
    // The stall: reuseport's stopped worker keeps its share of new
    // connections (its own queue, chosen by a hash); a shared queue is
    // taken by the others.
    let reuseport = waited
        .iter()
        .find(|(s, _)| s.is_none())
        .map_or(0, |(_, w)| *w);
    let shared_most = waited
        .iter()
        .filter(|(s, _)| s.is_some())
        .map(|(_, w)| *w)
        .max()
        .unwrap_or(0);
    if reuseport < REUSEPORT_WAITED_AT_LEAST || reuseport <= 2 * shared_most {
        wrong.push(format!(
            "in the stall {reuseport} requests waited ≥ {:.0} ms with reuseport, at most {shared_most} with a shared queue: expected at least {REUSEPORT_WAITED_AT_LEAST}, and more than twice as many",
            STALL_MS as f64 / 10.0
        ));
    }
    Ok(Verdict {
        wrong,
        ok: format!(
            "in the stall, the stopped worker's own queue held {reuseport} of reuseport's requests (at most {shared_most} waited with a shared queue, which the other workers took); one at a time, --accept blocking turned the {WORKERS} workers in rotation (each {}..{})",
            percent(low),
            percent(high)
        ),
    })
}

/// The connections each worker of `pids` took in `report`; what is wrong
/// with the run (answers from strangers, failures) is added to `wrong`.
fn per_worker(
    server: Server,
    pids: &[u32],
    load: &str,
    report: &runs::Report,
    wrong: &mut Vec<String>,
) -> Vec<u64> {
    let strays: BTreeSet<u32> = report
        .workers
        .by_pid
        .iter()
        .map(|w| w.pid)
        .filter(|pid| !pids.contains(pid))
        .collect();
    if !strays.is_empty() {
        wrong.push(format!(
            "{} {load}: answers from pids {strays:?} that are not its workers",
            name(server)
        ));
    }
    if report.requests.failed > 0 {
        wrong.push(format!(
            "{} {load}: {} requests failed",
            name(server),
            report.requests.failed
        ));
    }
    pids.iter()
        .map(|pid| {
            report
                .workers
                .by_pid
                .iter()
                .find(|w| w.pid == *pid)
                .map_or(0, |w| w.connections)
        })
        .collect()
}

/// The total, the largest share and Jain's fairness index (1 when even,
/// 1/n when one worker takes all) of per-worker counts.
fn shares(counts: &[u64]) -> (u64, f64, f64) {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return (0, 0.0, 0.0);
    }
    let squares: f64 = counts.iter().map(|&c| (c as f64) * (c as f64)).sum();
    let largest = counts.iter().copied().max().unwrap_or(0) as f64 / total as f64;
    (
        total,
        largest,
        (total as f64).powi(2) / (counts.len() as f64 * squares),
    )
}
