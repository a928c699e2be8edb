//! Lesson 8, where connections wait: 4 workers behind one shared listening
//! socket (`handoff --pass listener`) or each behind its own
//! (`--pass reuseport`), steered by the kernel's hash (`--steer hash`) or by
//! the master's view of the workers' health (`--steer health`, a BPF
//! program), and the first worker stopped (SIGSTOP) for 500 ms under an
//! open loop of new connections. loadgen samples every listener's accept
//! queue (`--watch`, `sock_diag`): with the hash the stopped worker's queue
//! grows for the whole stall and its connections wait it out, far above the
//! shared socket's p99; with health it stops growing once the master leaves
//! the worker out, and what it caught before that still waits.

use std::time::Duration;

use cluster::cli::UsageError;
use cluster::{Mode, Pass};
use runs::{ListenerReport, Report};

use super::{Lab, Verdict, lines_from};
use crate::system::flag;

/// Workers per server: more than the cores, as in lesson 4.
const WORKERS: usize = 4;
/// New connections a second, one request each (the open model).
const RATE: u64 = 400;
/// The most requests in flight (`--connections`): room for the stalled
/// worker's share and every other worker's.
const IN_FLIGHT: u64 = 128;
/// When the first worker is stopped, after the warm-up.
const STOP_AFTER: Duration = Duration::from_millis(500);
/// How long it stays stopped.
const STALL: Duration = Duration::from_millis(500);
/// How often loadgen samples the queues (`--sample-interval`).
const SAMPLE: Duration = Duration::from_millis(20);
/// One column of the queue strip, ms.
const COLUMN_MS: f64 = 50.0;
/// By when, after the stop, `--steer health` has left the worker out: a
/// ping interval and `--eject-after` (50 ms each), and as much again for a
/// loaded machine's scheduler.
const EJECTED_BY: Duration = Duration::from_millis(200);
/// The fewest connections the hash's stopped worker's queue must reach
/// (about 50 arrive there in 500 ms: a quarter of 400 a second).
const HASH_QUEUE_AT_LEAST: u32 = 10;
/// The least the hash's stopped queue must grow after [`EJECTED_BY`]
/// (about 30 arrive there in the stall's last 300 ms).
const HASH_GROWTH_AT_LEAST: u32 = 10;
/// The most health's stopped queue may grow after [`EJECTED_BY`]: none
/// arrive once the worker is left out; a few for a late sample.
const HEALTH_GROWTH_AT_MOST: u32 = 3;
/// How many times the shared socket's p99 the hash's must be at least.
const P99_FAR_ABOVE: f64 = 5.0;
/// The master's log line when `--steer health` leaves a worker out.
const LEFT_OUT: &str = "worker late: new connections go elsewhere";
/// The strip's levels, from a connection or two to the deepest queue.
const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A server of the lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// One listening socket that every worker accepts from.
    Shared,
    /// A socket per worker, the kernel's hash picks one.
    Hash,
    /// A socket per worker, the master's program skips a late worker's.
    Health,
}

impl Server {
    /// Every server, in the lesson's order.
    const ALL: [Server; 3] = [Server::Shared, Server::Hash, Server::Health];

    /// Its name in the figures.
    fn name(self) -> &'static str {
        match self {
            Server::Shared => "handoff-listener",
            Server::Hash => "reuseport --steer hash",
            Server::Health => "reuseport --steer health",
        }
    }

    /// Its file name in the scratch folder.
    fn tag(self) -> &'static str {
        match self {
            Server::Shared => "shared",
            Server::Hash => "hash",
            Server::Health => "health",
        }
    }

    /// Its mode and flags.
    fn serve(self) -> (Mode, &'static [&'static str]) {
        match self {
            Server::Shared => (Mode::Handoff(Pass::Listener), &[]),
            Server::Hash => (Mode::Handoff(Pass::Reuseport), &["--steer", "hash"]),
            Server::Health => (Mode::Handoff(Pass::Reuseport), &["--steer", "health"]),
        }
    }
}

/// Whether `--steer health` can run here (it loads a BPF program: CAP_BPF
/// and CAP_NET_ADMIN, root); if not, a usage error of one line (exit 2)
/// before anything is built.
pub fn check_bpf() -> anyhow::Result<()> {
    match cluster::steer::Program::load(1) {
        Ok(_) => Ok(()),
        Err(err) if err.is_usage() => Err(UsageError(format!("lesson 8 needs BPF: {err}")).into()),
        Err(err) => Err(anyhow::Error::new(err).context("lesson 8: load a steering program")),
    }
}

/// One server's run.
struct Row {
    /// Which.
    server: Server,
    /// Its workers, in ready-line order; the first is stopped.
    workers: Vec<u32>,
    /// loadgen's report.
    report: Report,
    /// The master's lines saying it left the stopped worker out.
    left_out: usize,
}

impl Row {
    /// The stopped worker.
    fn stopped(&self) -> u32 {
        self.workers[0]
    }

    /// Every listener of the tree, the stopped worker's (or the shared one)
    /// first, then in ready-line order.
    fn listeners(&self) -> Vec<&ListenerReport> {
        let mut listeners: Vec<&ListenerReport> = self
            .report
            .watch
            .first()
            .map(|tree| tree.listeners.iter().collect())
            .unwrap_or_default();
        listeners.sort_by_key(|listener| self.whose(listener).0);
        listeners
    }

    /// A listener's owner: its place (0 for the stopped worker's or the
    /// shared one) and its name in the figures.
    fn whose(&self, listener: &ListenerReport) -> (usize, String) {
        let held: Vec<usize> = (0..self.workers.len())
            .filter(|i| listener.holders.contains(&self.workers[*i]))
            .collect();
        match held.as_slice() {
            [only] if *only == 0 => (0, "worker 1, stopped".to_owned()),
            [only] => (*only, format!("worker {}", only + 1)),
            [] => (usize::MAX, "the master's".to_owned()),
            _ => (0, format!("shared by all {}", held.len())),
        }
    }

    /// The stall as loadgen saw it: stopped and continued, ms from the
    /// run's start.
    fn stall(&self) -> Option<(f64, f64)> {
        let stall = self.report.stalls.first()?;
        Some((stall.stopped_at_ms?, stall.continued_at_ms?))
    }

    /// The stopped worker's queue in the stall: its peak, how long after
    /// the stop it was first reached, and how much it grew after
    /// [`EJECTED_BY`].
    fn stalled_queue(&self) -> Option<StalledQueue> {
        let (stopped, continued) = self.stall()?;
        let listener = *self.listeners().first()?;
        let ejected = stopped + EJECTED_BY.as_secs_f64() * 1000.0;
        let during = |from: f64, to: f64| {
            listener
                .samples
                .iter()
                .filter(move |s| s.t_ms >= from && s.t_ms <= to)
        };
        let peak = during(stopped, continued).map(|s| s.queued).max()?;
        let reached_ms = during(stopped, continued).find(|s| s.queued == peak)?.t_ms - stopped;
        let before = during(stopped, ejected)
            .map(|s| s.queued)
            .max()
            .unwrap_or(0);
        let after = during(ejected, continued)
            .map(|s| s.queued)
            .max()
            .unwrap_or(0);
        Some(StalledQueue {
            peak,
            reached_ms,
            growth_after_eject: after.saturating_sub(before),
        })
    }

    /// p99 of the requests, ms.
    fn p99_ms(&self) -> f64 {
        self.report
            .latency
            .request
            .as_ref()
            .map_or(0.0, |l| l.p99_us as f64 / 1000.0)
    }
}

/// The stopped worker's queue during the stall.
struct StalledQueue {
    /// The most connections in it at a sample.
    peak: u32,
    /// When it first held `peak`, ms after the stop.
    reached_ms: f64,
    /// How much more it held after [`EJECTED_BY`] than before.
    growth_after_eject: u32,
}

/// Runs the lesson.
pub fn run(lab: &Lab) -> anyhow::Result<Verdict> {
    let duration = if lab.quick {
        Duration::from_millis(1500)
    } else {
        Duration::from_millis(2500)
    };
    println!(
        "lesson 8: where connections wait: {WORKERS} workers, the first stopped (SIGSTOP) {} after the warm-up for {},",
        flag(STOP_AFTER),
        flag(STALL)
    );
    println!(
        "  under {RATE} new connections a second (the open model: each request its own connection at its due time);"
    );
    println!(
        "  one shared listening socket (handoff --pass listener), or one per worker (--pass reuseport) steered by"
    );
    println!(
        "  the kernel's hash (--steer hash) or by the master's pings (--steer health: a worker late by 50 ms is left out)"
    );
    println!(
        "  loadgen --new-conn --rate {RATE} --connections {IN_FLIGHT} --duration {} --stop <worker 1> --stop-after {} --stop-for {} \\",
        flag(duration),
        flag(STOP_AFTER),
        flag(STALL)
    );
    println!(
        "          --watch <master> --sample-interval {}   (every accept queue of the tree, each sample)",
        flag(SAMPLE)
    );
    let mut rows = Vec::new();
    let mut own_namespace = true;
    for server in Server::ALL {
        let row = if own_namespace {
            match launch::netns::in_new_netns(&[], || measure(lab, server, duration)) {
                Ok(row) => row?,
                Err(err) => {
                    println!(
                        "  ({err}: the overflows below are the whole machine's, shared with anything else running)"
                    );
                    own_namespace = false;
                    measure(lab, server, duration)?
                }
            }
        } else {
            measure(lab, server, duration)?
        };
        rows.push(row);
    }
    println!();
    println!(
        "  {:<26} {:>5} {:>6} {:>9} {:>9}  {:>14}  {:<30} {:>9}",
        "server",
        "ok",
        "failed",
        "p50",
        "p99",
        "waited ≥ 50 ms",
        "deepest accept queue (whose)",
        "overflows"
    );
    for row in &rows {
        let report = &row.report;
        let (p50, p99) = report.latency.request.as_ref().map_or((0.0, 0.0), |l| {
            (l.p50_us as f64 / 1000.0, l.p99_us as f64 / 1000.0)
        });
        let waited = report.stall_waits.map_or(0, |w| w.at_least_tenth);
        let deepest = row
            .listeners()
            .into_iter()
            .max_by_key(|listener| listener.queued_max)
            .map_or_else(
                || "none read".to_owned(),
                |listener| format!("{} ({})", listener.queued_max, row.whose(listener).1),
            );
        let overflows = report
            .watch
            .first()
            .and_then(|tree| tree.listen_overflows)
            .map_or_else(|| "–".to_owned(), |n| n.to_string());
        println!(
            "  {:<26} {:>5} {:>6} {p50:>6.1} ms {p99:>6.1} ms  {waited:>14}  {deepest:<30} {overflows:>9}",
            row.server.name(),
            report.requests.ok,
            report.requests.failed,
        );
    }
    println!();
    for row in rows.iter().filter(|row| row.server != Server::Shared) {
        if let Some(queue) = row.stalled_queue() {
            println!(
                "  {:<26} the stopped worker's queue: {} at most, first reached {:.0} ms into the stall; {:+} after {}{}",
                row.server.name(),
                queue.peak,
                queue.reached_ms,
                queue.growth_after_eject,
                flag(EJECTED_BY),
                if row.server == Server::Health {
                    format!("; the master left it out {} time(s)", row.left_out)
                } else {
                    String::new()
                }
            );
        }
    }
    strip(&rows);
    Ok(judge(&rows))
}

/// Starts `server`, runs the stall against it, stops it.
fn measure(lab: &Lab, server: Server, duration: Duration) -> anyhow::Result<Row> {
    let log = lab.path("log");
    let logged = lines_from(&log, 0).len();
    let (mode, extra) = server.serve();
    let mut running = lab.serve(mode, WORKERS, extra)?;
    let workers = running.workers();
    let args: Vec<String> = [
        "--target",
        &format!("http://127.0.0.1:{}/", running.port()),
        "--new-conn",
        "--rate",
        &RATE.to_string(),
        "--connections",
        &IN_FLIGHT.to_string(),
        "--duration",
        &flag(duration),
        "--warmup",
        "200ms",
        "--timeout",
        "5s",
        "--stop",
        &running.first_worker().to_string(),
        "--stop-after",
        &flag(STOP_AFTER),
        "--stop-for",
        &flag(STALL),
        "--sample-interval",
        &flag(SAMPLE),
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    let report = lab.load(server.tag(), running.master(), &args)?;
    running.stop()?;
    let stopped = format!("worker={}", workers[0]);
    let left_out = lines_from(&log, logged)
        .iter()
        .filter(|line| line.contains(LEFT_OUT) && line.contains(&stopped))
        .count();
    Ok(Row {
        server,
        workers,
        report,
        left_out,
    })
}

/// The queue strip: each listener's depth over the window, a column per
/// [`COLUMN_MS`], on one scale for every server.
fn strip(rows: &[Row]) {
    let deepest = rows
        .iter()
        .flat_map(|row| row.listeners())
        .map(|listener| listener.queued_max)
        .max()
        .unwrap_or(0)
        .max(1);
    println!();
    println!(
        "  accept queue depth per listener, a column per {COLUMN_MS:.0} ms of the window (the deepest sample in it):"
    );
    println!(
        "  · empty, {} up to {deepest} connections; # the worker stopped",
        LEVELS.iter().collect::<String>()
    );
    for row in rows {
        let phases = &row.report.phases;
        let columns =
            ((phases.measure_end_ms - phases.measure_start_ms) / COLUMN_MS).ceil() as usize;
        let column_of = |t_ms: f64| ((t_ms - phases.measure_start_ms) / COLUMN_MS).floor();
        println!("  {}", row.server.name());
        if let Some((stopped, continued)) = row.stall() {
            let marks: String = (0..columns)
                .map(|c| {
                    let c = c as f64;
                    if c >= column_of(stopped) && c <= column_of(continued) {
                        '#'
                    } else {
                        ' '
                    }
                })
                .collect();
            println!("    {:<24} {}", "stopped", marks.trim_end());
        }
        for listener in row.listeners() {
            let mut depth: Vec<Option<u32>> = vec![None; columns];
            for sample in &listener.samples {
                let c = column_of(sample.t_ms);
                if c >= 0.0 && (c as usize) < columns {
                    let cell = &mut depth[c as usize];
                    *cell = Some(cell.unwrap_or(0).max(sample.queued));
                }
            }
            let cells: String = depth
                .iter()
                .map(|cell| match cell {
                    None => ' ',
                    Some(0) => '·',
                    Some(n) => {
                        let level = (*n as usize * LEVELS.len()).div_ceil(deepest as usize);
                        LEVELS[level.clamp(1, LEVELS.len()) - 1]
                    }
                })
                .collect();
            println!("    {:<24} {cells}", row.whose(listener).1);
        }
    }
    println!();
}

/// The verdict: the hash's stopped queue grows and its p99 is far above the
/// shared socket's; health's stops growing once the worker is left out.
fn judge(rows: &[Row]) -> Verdict {
    let mut wrong = Vec::new();
    let row = |server: Server| rows.iter().find(|row| row.server == server);
    for row in rows {
        let name = row.server.name();
        if row.report.stalls.first().is_none_or(|s| s.error.is_some()) || row.stall().is_none() {
            wrong.push(format!(
                "{name}: the worker was not stopped ({:?})",
                row.report.stalls
            ));
        }
        if row.report.requests.failed > 0 {
            let kinds = crate::loadgen::failures(&row.report, &[]);
            wrong.push(format!(
                "{name}: {} requests failed ({kinds})",
                row.report.requests.failed
            ));
        }
        if row.listeners().is_empty() {
            let why = row.report.watch.first().and_then(|t| t.queue_error.clone());
            wrong.push(format!("{name}: no accept queue was read ({why:?})"));
        }
        let strays: Vec<u32> = row
            .report
            .workers
            .by_pid
            .iter()
            .map(|w| w.pid)
            .filter(|pid| !row.workers.contains(pid))
            .collect();
        if !strays.is_empty() {
            wrong.push(format!(
                "{name}: answers from pids {strays:?}, not its workers"
            ));
        }
    }
    let (Some(shared), Some(hash), Some(health)) =
        (row(Server::Shared), row(Server::Hash), row(Server::Health))
    else {
        wrong.push("a server did not run".to_owned());
        return Verdict {
            wrong,
            ok: String::new(),
        };
    };
    let hash_queue = hash.stalled_queue();
    let health_queue = health.stalled_queue();
    let (hash_peak, hash_growth) = hash_queue
        .as_ref()
        .map_or((0, 0), |q| (q.peak, q.growth_after_eject));
    if hash_peak < HASH_QUEUE_AT_LEAST || hash_growth < HASH_GROWTH_AT_LEAST {
        wrong.push(format!(
            "with the hash the stopped worker's queue held at most {hash_peak} and grew {hash_growth} after {}: expected at least {HASH_QUEUE_AT_LEAST} and {HASH_GROWTH_AT_LEAST}",
            flag(EJECTED_BY)
        ));
    }
    if hash.p99_ms() < P99_FAR_ABOVE * shared.p99_ms() {
        wrong.push(format!(
            "the hash's p99 {:.1} ms is less than {P99_FAR_ABOVE} times the shared socket's {:.1} ms",
            hash.p99_ms(),
            shared.p99_ms()
        ));
    }
    match &health_queue {
        Some(q) if q.growth_after_eject <= HEALTH_GROWTH_AT_MOST => {}
        Some(q) => wrong.push(format!(
            "with health the stopped worker's queue grew {} after {} (at most {HEALTH_GROWTH_AT_MOST} expected): the worker was not left out",
            q.growth_after_eject,
            flag(EJECTED_BY)
        )),
        None => wrong.push("with health no queue sample fell in the stall".to_owned()),
    }
    if health.left_out == 0 {
        wrong.push(format!(
            "the health master never said it left worker {} out ({LEFT_OUT:?} in its log)",
            health.stopped()
        ));
    }
    let health_peak = health_queue.map_or(0, |q| q.peak);
    Verdict {
        wrong,
        ok: format!(
            "with the hash the stopped worker's queue grew for the whole stall (to {hash_peak}) and its p99 was {:.0} times the shared socket's; with health it stopped growing once the master left the worker out, holding the {health_peak} it had caught, which still waited for the worker",
            hash.p99_ms() / shared.p99_ms().max(0.001)
        ),
    }
}
