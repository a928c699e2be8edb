//! The suite's instrument: `loadgen`, a load generator that measures what each
//! way of sharing a port costs (latency, errors, the spread over worker pids, and
//! the server's fds, memory and CPU), and the criterion benches (`benches/`).
//!
//! A run: [`run`] raises the fd limit, checks that the target answers a connect,
//! starts the `--watch` sampler, then one thread per `--threads`, each a
//! single-threaded tokio runtime driving its share of the connections (as wrk
//! runs one event loop per thread). Connections take raw timings; each thread's
//! recorder fills its histograms; the recorders are merged into a [`Report`],
//! which is rendered as text ([`summary`]) or JSON (`schema.json`).
//!
//! # Layout
//!
//! - [`cli`]: the flags (clap) and the [`Config`] they give.
//! - [`units`]: humane values: `10s`, `500ms`, `5k`.
//! - [`target`]: the URL and the request bytes, built once.
//! - [`connection`]: one client connection: closed or open loop, keep-alive or
//!   `--new-conn`, timeouts; the hot path.
//! - [`response`]: parsing an answer just enough (status, length or chunked, pid).
//! - [`timer`]: the open loop's precise sleep (a `timerfd`).
//! - [`failure`]: the kinds of failed request.
//! - [`recorder`]: the per-thread histograms and counts.
//! - [`watch`]: `--watch`: the /proc sampler thread and its time series.
//! - [`kill`]: `--kill`: SIGKILL to a worker mid-run, the fault experiment.
//! - [`report`]: every figure, computed once; the JSON shape.
//! - [`summary`]: the report as a short text.
//! - [`machine`], [`limits`]: the machine's description; the fd limit.
//! - `loadgen report DIR`: [`render`] reads a folder of labelled runs,
//!   [`figures`] groups them and computes every figure (medians over rounds,
//!   slopes, limits), [`markdown`] and [`charts`] display them (REPORT.md, SVG).
//! - [`progress`]: the progress bar on stderr.
#![deny(missing_docs)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};

pub mod charts;
pub mod cli;
pub mod connection;
pub mod failure;
pub mod figures;
pub mod kill;
pub mod limits;
pub mod machine;
pub mod markdown;
pub mod progress;
pub mod recorder;
pub mod render;
pub mod report;
pub mod response;
pub mod summary;
pub mod target;
pub mod timer;
pub mod units;
pub mod watch;

use connection::{Connection, Plan};
use recorder::{Recorder, Window};
pub use report::Report;
use target::Target;
use watch::Watcher;

/// How long the check before the run waits for a connect: a target that does not
/// accept within this is unreachable for the purpose of a benchmark.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the progress bar is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

/// Everything a run needs, defaults filled in ([`cli::Cli::config`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// The URL to load.
    pub target: Target,
    /// Concurrent connections.
    pub connections: usize,
    /// Load threads (at most `connections`).
    pub threads: usize,
    /// The measured time, after the warm-up.
    pub duration: Duration,
    /// The unrecorded load before it.
    pub warmup: Duration,
    /// Open loop: requests per second overall; `None` for closed loop.
    pub rate: Option<f64>,
    /// A new TCP connection for every request.
    pub new_conn: bool,
    /// How long one request may take, connect included.
    pub timeout: Duration,
    /// Pids to sample with their children.
    pub watch: Vec<u32>,
    /// How often to sample them.
    pub sample_interval: Duration,
    /// The command line, recorded in the report.
    pub command_line: Vec<String>,
    /// `--label KEY=VALUE`s, copied into the report.
    pub labels: BTreeMap<String, String>,
    /// `--kill PID --kill-after D`: a process to kill mid-run.
    pub kill: Option<kill::Kill>,
}

/// A mistake the user can fix by changing the command line: a bad value, an
/// unreachable target, a pid that does not exist. `loadgen` exits 2 on it.
pub use cluster::cli::UsageError;

/// Runs the load that `config` describes and returns its report. Blocks for the
/// warm-up, the duration, and the drain of the requests in flight at the end (at
/// most `config.timeout`).
pub fn run(config: &Config) -> anyhow::Result<Report> {
    let fd_limit = limits::raise_fd_limit().context("raise RLIMIT_NOFILE")?;
    if !fd_limit.fits(config.connections) {
        eprintln!(
            "loadgen: warning: {} connections need about {} fds, but the fd limit is {} \
             (hard limit {}): expect fd exhaustion errors",
            config.connections,
            config.connections as u64 + limits::FDS_BESIDES_CONNECTIONS,
            fd_limit.soft,
            fd_limit.hard
        );
    }
    let addr = config.target.resolve().map_err(UsageError)?;
    probe(&config.target, addr)?;
    if let Some(kill) = config.kill {
        kill::check_exists(kill.pid).map_err(UsageError)?;
        if kill.after >= config.duration {
            return Err(UsageError(format!(
                "--kill-after {:?} must be less than --duration {:?}",
                kill.after, config.duration
            ))
            .into());
        }
    }

    let machine = machine::Machine::current();
    let started_at = rfc3339(SystemTime::now());
    let start = Instant::now();
    let watcher = match config.watch.is_empty() {
        true => None,
        false => {
            Some(Watcher::start(&config.watch, config.sample_interval, start).map_err(UsageError)?)
        }
    };
    let window = Window {
        start: start + config.warmup,
        end: start + config.warmup + config.duration,
    };
    let killer = match config.kill {
        Some(kill) => Some(
            kill::Killer::start(kill, start, window.start).context("start the --kill thread")?,
        ),
        None => None,
    };
    let plan = Arc::new(Plan {
        addr,
        request: config
            .target
            .request_bytes(config.new_conn)
            .into_boxed_slice(),
        new_conn: config.new_conn,
        rate: config.rate,
        connections: config.connections,
        timeout: config.timeout,
        start,
        window,
    });

    let threads = config.threads.clamp(1, config.connections.max(1));
    let counters: Vec<Arc<AtomicU64>> = (0..threads).map(|_| Arc::default()).collect();
    let (finished, finishing) = mpsc::channel();
    let mut handles = Vec::with_capacity(threads);
    for (index, counter) in counters.iter().enumerate() {
        let ids: Vec<usize> = (index..config.connections).step_by(threads).collect();
        let plan = Arc::clone(&plan);
        let counter = Arc::clone(counter);
        let finished = finished.clone();
        let handle = thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .spawn(move || {
                let result = load_thread(plan, ids, counter);
                // The receiver lives until every thread has reported.
                let _ = finished.send(());
                result
            })
            .context("start a load thread")?;
        handles.push(handle);
    }
    drop(finished);

    let mut progress = std::io::stderr()
        .is_terminal()
        .then(|| progress::Progress::new(counters, start, config.warmup + config.duration));
    let mut running = threads;
    while running > 0 {
        match finishing.recv_timeout(PROGRESS_TICK) {
            Ok(()) => running -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every sender is gone: every thread has ended, one way or another.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if let Some(progress) = &mut progress {
            progress.tick();
        }
    }
    if let Some(progress) = progress {
        progress.finish();
    }

    let mut merged: Option<Recorder> = None;
    for handle in handles {
        let recorder = handle
            .join()
            .map_err(|_| anyhow!("a load thread panicked"))??;
        match &mut merged {
            Some(merged) => merged.merge(&recorder),
            None => merged = Some(recorder),
        }
    }
    let recorder = merged.context("no load thread ran")?;
    let run_time = start.elapsed();
    let watched = watcher.map(Watcher::stop).unwrap_or_default();
    let fault = killer.map(kill::Killer::stop);

    Ok(Report::build(report::Inputs {
        parameters: report::Parameters {
            target: config.target.url.clone(),
            load_loop: if config.rate.is_some() {
                "open"
            } else {
                "closed"
            }
            .to_owned(),
            connections: config.connections,
            threads,
            duration_s: config.duration.as_secs_f64(),
            warmup_s: config.warmup.as_secs_f64(),
            rate_per_s: config.rate,
            new_conn: config.new_conn,
            timeout_s: config.timeout.as_secs_f64(),
            sample_interval_ms: config.sample_interval.as_secs_f64() * 1000.0,
            watch: config.watch.clone(),
            command_line: config.command_line.clone(),
        },
        machine,
        fd_limit,
        started_at,
        warmup: config.warmup,
        duration: config.duration,
        run_time,
        recorder: &recorder,
        watched: &watched,
        sample_interval: config.sample_interval,
        labels: config.labels.clone(),
        fault,
    }))
}

/// Writes `report` as JSON to `path`.
pub fn write_json(report: &Report, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(report).context("serialise the report")?;
    std::fs::write(path, json).with_context(|| format!("write {}", path.display()))
}

/// One load thread: a single-threaded runtime driving connections `ids`, each a
/// task; returns the thread's recorder once every connection has finished.
fn load_thread(
    plan: Arc<Plan>,
    ids: Vec<usize>,
    counter: Arc<AtomicU64>,
) -> anyhow::Result<Recorder> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build a load thread's runtime")?;
    let open_loop = plan.rate.is_some();
    if open_loop {
        timer::set_thread_timer_slack();
    }
    let recorder = Rc::new(RefCell::new(Recorder::new(plan.window, open_loop, counter)));
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let tasks: Vec<_> = ids
            .into_iter()
            .map(|id| {
                let connection = Connection::new(id, Arc::clone(&plan));
                tokio::task::spawn_local(connection.run(Rc::clone(&recorder)))
            })
            .collect();
        for task in tasks {
            task.await.context("a connection task failed")?;
        }
        anyhow::Ok(())
    })?;
    // Every connection task has ended; take the recorder out of the shared cell.
    let empty = Recorder::new(plan.window, open_loop, Arc::default());
    Ok(recorder.replace(empty))
}

/// Checks that `addr` accepts a connection before loading it, so that a wrong
/// port is one clear error rather than a run of connect errors.
fn probe(target: &Target, addr: SocketAddr) -> Result<(), UsageError> {
    TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
        .map(drop)
        .map_err(|err| UsageError(format!("cannot reach {} ({addr}): {err}", target.url)))
}

/// `time` as RFC 3339 in UTC, to the second: `2026-11-27T22:05:00Z`.
fn rfc3339(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dates around leap years and the epoch come out right.
    #[test]
    fn formats_rfc3339() {
        let at = |seconds| rfc3339(UNIX_EPOCH + Duration::from_secs(seconds));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(at(1_735_689_600), "2025-01-01T00:00:00Z");
    }
}
