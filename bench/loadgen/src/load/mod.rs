//! Generating load and measuring it: [`run`] raises the fd limit, checks that
//! the target answers a connect, starts the `--watch` sampler, then one thread
//! per `--threads`, each a single-threaded tokio runtime driving its share of
//! the connections (as wrk runs one event loop per thread). Connections take
//! raw timings; each thread's recorder fills its histograms; the recorders are
//! merged into a [`Report`] (`build`).
//!
//! - [`cli`]: the flags (clap) and the [`Config`] they give; `units`: humane
//!   values (`5k`).
//! - `target`: the URL and the request bytes, built once.
//! - `connection`: one client connection: closed or open loop, keep-alive or
//!   `--new-conn`, timeouts; the hot path; the three load models (`Model`).
//! - `open_model`: `--new-conn --rate`: each due request on its own
//!   connection, at most `--connections` in flight (as k6's arrival-rate
//!   executors).
//! - [`response`]: parsing an answer just enough (status, length or chunked, pid).
//! - `timer`: the open loop's precise sleep (a `timerfd`).
//! - `failure`: the kinds of failed request.
//! - `recorder`: the per-thread histograms and counts.
//! - `build`: the [`Report`] of the run, from the merged recorder and the
//!   `--watch` series: the one way from the load to the run model.
//! - `watch`: `--watch`: the /proc sampler thread and its time series.
//! - `memcg`: the watched tree's memory cgroup: the kernel memory charged
//!   to it (sockets, files, buffers), which no RSS shows.
//! - `usage`: loadgen's own CPU time over the window, and where it and the
//!   watched processes may run (their affinity).
//! - `proc_stat`: the whole machine's CPU over the window, from `/proc/stat`.
//! - `kill`: `--kill`: SIGKILL to a worker mid-run, the fault experiment.
//! - `stall`: `--stop`: SIGSTOP then SIGCONT to a worker mid-run, the stalled
//!   worker experiment, with the guards that never leave it stopped.
//! - `mix`: `--mix`: each request's path drawn from weighted paths, seeded.
//! - `arrivals`: `--arrivals`: the open loop's requests evenly spaced, or a
//!   Poisson process drawn from `--seed` before the run.
//! - `machine`, `limits`: the machine's description; the fd limit.
//! - `progress`: the progress bar on stderr.
//! - `hold`: `--hold`: every connection opened first, then held, one
//!   request every `--hold-interval` each.
//! - `children`, `recording`: `--hold` over several processes when one
//!   process's fd limit does not suffice: the child processes, and the
//!   recordings they hand their parent to merge.
//! - `source`: `--source-ips`: connections bound to several loopback
//!   addresses; the local port budget.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow};
use cluster::cli::UsageError;

pub(crate) mod arrivals;
pub(crate) mod build;
pub(crate) mod children;
pub mod cli;
pub(crate) mod connection;
pub(crate) mod failure;
pub(crate) mod hold;
pub(crate) mod kill;
pub(crate) mod limits;
pub(crate) mod machine;
pub(crate) mod memcg;
pub(crate) mod mix;
pub(crate) mod open_model;
pub(crate) mod proc_stat;
pub(crate) mod progress;
pub(crate) mod queues;
pub(crate) mod recorder;
pub(crate) mod recording;
pub mod response;
pub(crate) mod source;
pub(crate) mod stall;
pub(crate) mod target;
pub(crate) mod timer;
pub(crate) mod units;
pub(crate) mod usage;
pub(crate) mod watch;

use hdrhistogram::Histogram;
use runs::{Arrivals, Labels, LoadLoop, MixEntry, Parameters, Report};

use connection::{Connection, Endpoint, Model, Plan, Share};
use recorder::{Recorder, Window};
use target::Target;
use watch::Watcher;

/// How long the check before the run waits for a connect: a target that does not
/// accept within this is unreachable for the purpose of a benchmark.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Room over the run's spans for the time between their check and the run's
/// start (the probe, starting the threads).
const SPAN_SLACK: Duration = Duration::from_secs(3600);

/// How often the progress bar is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

/// Everything a run needs, defaults filled in ([`cli::Cli::config`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// The URLs to load, in `--target` order; connection i goes to target i
    /// mod n.
    pub(crate) targets: Vec<Target>,
    /// Concurrent connections; under `--new-conn --rate` (the open model),
    /// the most requests in flight (see `open_model`).
    pub(crate) connections: usize,
    /// Load threads (at most `connections`).
    pub(crate) threads: usize,
    /// The measured time, after the warm-up.
    pub(crate) duration: Duration,
    /// The unrecorded load before it.
    pub(crate) warmup: Duration,
    /// Open loop: requests per second overall; `None` for closed loop.
    pub(crate) rate: Option<f64>,
    /// A new TCP connection for every request.
    pub(crate) new_conn: bool,
    /// How long one request may take, connect included.
    pub(crate) timeout: Duration,
    /// Pids to sample with their children.
    pub(crate) watch: Vec<u32>,
    /// How often to sample them, and the width of a `--timeline` interval.
    pub(crate) sample_interval: Duration,
    /// `--timeline`: per-interval counts in the report.
    pub(crate) timeline: bool,
    /// The command line, recorded in the report.
    pub(crate) command_line: Vec<String>,
    /// `--label KEY=VALUE`s, copied into the report.
    pub(crate) labels: Labels,
    /// `--kill PID --kill-after D`: a process to kill mid-run.
    pub(crate) kill: Option<kill::Kill>,
    /// `--stop PID --stop-after T... --stop-for D`: a process to stall mid-run.
    pub(crate) stop: Option<stall::Stop>,
    /// `--mix PATH=WEIGHT`s: each request's path drawn from them; empty: the
    /// target's path.
    pub(crate) mix: Vec<MixEntry>,
    /// `--seed` as given: the seed of the `--mix` draw and of `--arrivals
    /// poisson` (without it, [`mix::DEFAULT_SEED`]).
    pub(crate) seed: Option<u64>,
    /// `--arrivals`: how the open loop spaces its requests.
    pub(crate) arrivals: Arrivals,
    /// `--body-bytes`: each request a `POST` with a body of this many bytes;
    /// `None`: a `GET`.
    pub(crate) body_bytes: Option<u64>,
    /// `--hold`: each held connection's time between requests (`None`: the
    /// other models).
    pub(crate) hold: Option<Duration>,
    /// `--processes`: how many processes hold the `--hold` connections;
    /// `None`: as many as the fd limit requires.
    pub(crate) processes: Option<usize>,
    /// `--source-ips`: the addresses connections bind to, round robin.
    pub(crate) source_ips: Vec<std::net::IpAddr>,
    /// Hidden `--child K/P`: this process holds a share of a `--hold` run
    /// for its parent (`children`).
    pub(crate) child: Option<children::ChildOf>,
}

impl Config {
    /// The seed of the draws: `--seed`, or [`mix::DEFAULT_SEED`], so that a
    /// run is reproducible by default.
    fn seed(&self) -> u64 {
        self.seed.unwrap_or(mix::DEFAULT_SEED)
    }

    /// Whether anything is drawn from the seed: `--mix`, or `--arrivals
    /// poisson` in open loop.
    fn seeded(&self) -> bool {
        !self.mix.is_empty() || self.poisson()
    }

    /// Whether the open loop's arrivals are a Poisson process.
    fn poisson(&self) -> bool {
        self.rate.is_some() && self.arrivals == Arrivals::Poisson
    }
}

/// A finished run: its report, and the two latency histograms whose
/// summaries it holds, for what needs them whole (`--hgrm` writes their
/// percentile distributions; `--slo` reads any percentile of them).
pub struct Measured {
    /// The report of the run.
    pub report: Report,
    /// The latency of the successful requests of the window, µs, as
    /// `latency.request`: from each request's intended start in open loop
    /// (coordinated omission corrected), from its send in closed loop.
    pub latency: Histogram<u64>,
    /// The same requests' latency from their send, µs: in closed loop, the
    /// same histogram as `latency` (there is no schedule to correct against).
    pub latency_uncorrected: Histogram<u64>,
}

/// Runs the load that `config` describes and returns its report with its
/// histograms. Blocks for the warm-up, the duration, and the drain of the
/// requests in flight at the end (at most `config.timeout`).
pub fn run(config: &Config) -> anyhow::Result<Measured> {
    check_spans(config)?;
    if config.seed.is_some() && !config.seeded() {
        return Err(UsageError(
            "--seed seeds the draws of --mix and of --arrivals poisson (with --rate): give one"
                .to_owned(),
        )
        .into());
    }
    let fd_limit = limits::raise_fd_limit().context("raise RLIMIT_NOFILE")?;
    let open_loop = config.rate.is_some() || config.hold.is_some();
    let model = match config.hold {
        Some(_) => Model::Hold,
        None => Model::of(config.rate, config.new_conn),
    };
    let threads = config.threads.clamp(1, config.connections.max(1));
    let memory_room = limits::memory_room();
    // `--hold` beyond one process's fd limit: this process starts children
    // that hold the connections, and holds none itself.
    let processes = match (config.hold, config.child) {
        (Some(_), None) => limits::hold_processes(config.connections, config.processes, &fd_limit)
            .map_err(UsageError)?,
        _ => 1,
    };
    // The most connections one process holds, and the memory it may take
    // while the others take theirs.
    let share = match config.child {
        Some(child) => hold::ids_of(config.connections, child.index, child.count, 0, 1).len(),
        None => config.connections.div_ceil(processes),
    };
    let memory_share = memory_room.map(|room| limits::MemoryRoom {
        bytes: room.bytes / processes as u64,
        ..room
    });
    limits::check_connections(share, model, threads, &fd_limit, memory_share)
        .map_err(UsageError)?;
    if let Some(rate) = config.rate.filter(|_| config.poisson()) {
        arrivals::check_poisson(
            rate,
            config.warmup + config.duration,
            (config.connections as u64).saturating_mul(connection::MEMORY_PER_CONNECTION_BYTES),
            memory_room,
        )
        .map_err(UsageError)?;
    }
    let fds_needed = limits::fds_needed(share, model, threads);
    if !fd_limit.fits(fds_needed) {
        eprintln!(
            "loadgen: warning: {share} connections need about {fds_needed} fds, but the fd limit \
             is {} (hard limit {}): expect fd exhaustion errors",
            fd_limit.soft, fd_limit.hard
        );
    }
    if config.targets.is_empty() {
        return Err(UsageError("no --target given".to_owned()).into());
    }
    let mut endpoints = Vec::with_capacity(config.targets.len());
    for target in &config.targets {
        let addr = target.resolve().map_err(UsageError)?;
        probe(target, addr)?;
        let paths: Vec<&str> = match config.mix.is_empty() {
            true => vec![target.path.as_str()],
            false => config.mix.iter().map(|entry| entry.path.as_str()).collect(),
        };
        endpoints.push(Endpoint {
            addr,
            requests: paths
                .into_iter()
                .map(|path| {
                    target
                        .request_bytes(path, config.new_conn, config.body_bytes)
                        .into_boxed_slice()
                })
                .collect(),
        });
    }
    if let Some(kill) = config.kill {
        kill::check_exists("--kill", kill.pid).map_err(UsageError)?;
        if kill.after >= config.duration {
            return Err(UsageError(format!(
                "--kill-after {:?} must be less than --duration {:?}",
                kill.after, config.duration
            ))
            .into());
        }
    }

    if let Some(stop) = &config.stop {
        stop.check(config.duration).map_err(UsageError)?;
    }
    // Connections the local ports could never give (a child's parent has
    // checked them all).
    if let (None, Some(ports)) = (config.child, source::ephemeral_ports()) {
        let destinations: std::collections::HashSet<SocketAddr> =
            endpoints.iter().map(|endpoint| endpoint.addr).collect();
        source::check_ports(
            config.connections,
            config.source_ips.len(),
            destinations.len(),
            ports,
        )
        .map_err(UsageError)?;
    }

    // `--hold`: every connection opened before the run's clock starts.
    let timeline = config.timeline.then_some(config.sample_interval);
    let counters: Vec<Arc<AtomicU64>> = (0..threads).map(|_| Arc::default()).collect();
    let (finished, finishing) = mpsc::channel();
    let holders = match config.hold {
        None => None,
        Some(_) => Some(hold_connections(
            config, processes, &endpoints, &counters, timeline, &finished,
        )?),
    };

    // Drawn before the run's clock starts: the longest schedule takes over a
    // second.
    let poisson = config.rate.filter(|_| config.poisson()).map(|rate| {
        arrivals::PoissonSchedule::draw(rate, config.warmup + config.duration, config.seed())
    });
    let machine = machine::current();
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let start = Instant::now();
    let start_unix = SystemTime::now();
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
    // Dropped on every way out of this function, which continues a stalled
    // process (see `stall`).
    let stopper = match &config.stop {
        Some(stop) => Some(
            stall::Stopper::start(stop.clone(), start, window.start)
                .context("start the --stop thread")?,
        ),
        None => None,
    };
    // `--hold`: the keep-alive open loop's schedule over the connections
    // this process holds, one request every interval each.
    let held_here = match &holders {
        Some(hold::Holders::Threads(holding)) => holding.held(),
        _ => 0,
    };
    let rate = match config.hold {
        Some(interval) => Some(held_here.max(1) as f64 / interval.as_secs_f64()),
        None => config.rate,
    };
    let plan = Arc::new(Plan {
        endpoints,
        new_conn: config.new_conn,
        rate,
        connections: match config.hold {
            Some(_) => held_here,
            None => config.connections,
        },
        timeout: config.timeout,
        start,
        window,
        mix: (!config.mix.is_empty()).then(|| mix::Mix::new(&config.mix, config.seed())),
        poisson,
        body: body(config.body_bytes),
        source_ips: config.source_ips.clone(),
        hold: config.hold.is_some(),
    });

    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(threads);
    let mut opened = None;
    match holders {
        Some(hold::Holders::Threads(holding)) => {
            opened = Some(holding.opened.clone());
            handles = holding.go(&plan);
        }
        Some(hold::Holders::Children(children, merged)) => {
            opened = Some(merged);
            let longest = plan.longest_latency();
            let empty = move || {
                Recorder::new(window, true, longest, Arc::default()).with_timeline(timeline)
            };
            handles = children.go(empty, &finished)?;
        }
        None => {}
    }
    // Without `--hold`, the load threads start here; with it, they were
    // started to open and have just been told to go.
    let spawn_threads = if config.hold.is_none() { threads } else { 0 };
    for (index, counter) in counters.iter().enumerate().take(spawn_threads) {
        let ids: Vec<usize> = (index..config.connections).step_by(threads).collect();
        // The open model's arrivals of this thread: every `threads`-th.
        let share = Share {
            first: index,
            every: threads,
        };
        let plan = Arc::clone(&plan);
        let counter = Arc::clone(counter);
        let in_flight = Arc::clone(&in_flight);
        let finished = finished.clone();
        let handle = thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .spawn(move || {
                let result = load_thread(plan, ids, share, counter, timeline, in_flight);
                // The receiver lives until every thread has reported.
                let _ = finished.send(());
                result
            })
            .context("start a load thread")?;
        handles.push(handle);
    }
    drop(finished);

    let mut progress = (std::io::stderr().is_terminal() && config.child.is_none())
        .then(|| progress::Progress::new(counters, start, config.warmup + config.duration));
    // loadgen's own CPU time and placement, read by this thread at the
    // window's edges, as close to them as its wake-ups allow.
    let mut readings = usage::WindowReadings::new(window.start, window.end, &config.watch);
    let mut running = handles.len();
    let mut handles: Vec<Option<_>> = handles.into_iter().map(Some).collect();
    let mut merged: Option<Recorder> = None;
    while running > 0 {
        readings.poll(Instant::now());
        match finishing.recv_timeout(readings.wait(Instant::now(), PROGRESS_TICK)) {
            Ok(()) => running -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every sender is gone: every thread has ended, one way or another.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // A thread (or a child process) that failed ends the run now, not
        // when the others end theirs: its error is the run's.
        for handle in &mut handles {
            if handle.as_ref().is_some_and(thread::JoinHandle::is_finished) {
                let handle = handle.take().expect("checked: still to join");
                merge_into(&mut merged, handle)?;
            }
        }
        if let Some(progress) = &mut progress {
            progress.tick();
        }
    }
    if let Some(progress) = progress {
        progress.finish();
    }
    for handle in handles.into_iter().flatten() {
        merge_into(&mut merged, handle)?;
    }
    let readings = readings.finish();
    let recorder = merged.context("no load thread ran")?;
    if config.child.is_some() {
        children::report_recording(&recorder, readings.cpu.map(|(cpu, _)| cpu))?;
    }
    let run_time = start.elapsed();
    let watched = watcher.map(Watcher::stop).unwrap_or_default();
    let fault = killer.map(kill::Killer::stop);
    let stalls = stopper.map(stall::Stopper::stop).unwrap_or_default();

    let report = build::report(build::Inputs {
        parameters: Parameters {
            target: config.targets[0].url.clone(),
            targets: config
                .targets
                .iter()
                .map(|target| target.url.clone())
                .collect(),
            load_loop: if open_loop {
                LoadLoop::Open
            } else {
                LoadLoop::Closed
            },
            connections: config.connections,
            threads,
            duration_s: config.duration.as_secs_f64(),
            warmup_s: config.warmup.as_secs_f64(),
            rate_per_s: match (config.hold, &opened) {
                (Some(interval), Some(opened)) => Some(opened.held as f64 / interval.as_secs_f64()),
                _ => config.rate,
            },
            new_conn: config.new_conn,
            timeout_s: config.timeout.as_secs_f64(),
            sample_interval_ms: config.sample_interval.as_secs_f64() * 1000.0,
            watch: config.watch.clone(),
            command_line: config.command_line.clone(),
            mix: config.mix.clone(),
            seed: config.seeded().then(|| config.seed()),
            arrivals: open_loop.then_some(config.arrivals),
            body_bytes: config.body_bytes,
            source_ips: config.source_ips.iter().map(|ip| ip.to_string()).collect(),
        },
        hold: config
            .hold
            .zip(opened)
            .map(|(interval, opened)| build::HoldInputs {
                connections: config.connections,
                interval,
                processes,
                opened,
            }),
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
        stalls,
        stop_for: config.stop.as_ref().map(|stop| stop.stop_for),
        readings,
        window_start_unix_ms: unix_ms(start_unix + config.warmup),
    });
    // The report is built: the histograms move out of the recorder whole.
    let latency_uncorrected = match open_loop {
        true => recorder.latency_uncorrected,
        false => recorder.latency.clone(),
    };
    Ok(Measured {
        report,
        latency: recorder.latency,
        latency_uncorrected,
    })
}

/// Joins a load thread (or a child's reader) and adds its recorder to
/// `merged`; its error, or its panic, is the run's.
fn merge_into(
    merged: &mut Option<Recorder>,
    handle: thread::JoinHandle<anyhow::Result<Recorder>>,
) -> anyhow::Result<()> {
    let recorder = handle
        .join()
        .map_err(|_| anyhow!("a load thread panicked"))??;
    match merged {
        Some(merged) => merged.merge(&recorder),
        None => *merged = Some(recorder),
    }
    Ok(())
}

/// `--hold`: opens every connection, over the load threads of this process
/// (counted on `counters` for the progress line) or over `processes`
/// children; a child then reports its opening to its parent and waits for
/// its go.
fn hold_connections(
    config: &Config,
    processes: usize,
    endpoints: &[Endpoint],
    counters: &[Arc<AtomicU64>],
    timeline: Option<Duration>,
    finished: &mpsc::Sender<()>,
) -> anyhow::Result<hold::Holders> {
    if processes > 1 {
        let mut children = children::Children::start(&children::args(config), processes)?;
        let opened = children.opened()?;
        return Ok(hold::Holders::Children(children, opened));
    }
    let threads = counters.len();
    let (process, of) = config
        .child
        .map_or((0, 1), |child| (child.index, child.count));
    let ids: Vec<Vec<usize>> = (0..threads)
        .map(|thread| hold::ids_of(config.connections, process, of, thread, threads))
        .collect();
    let total = ids.iter().map(Vec::len).sum();
    let opening = Arc::new(hold::Opening {
        endpoints: endpoints.to_vec(),
        source_ips: config.source_ips.clone(),
        body: body(config.body_bytes),
        timeout: config.timeout,
        interval: config.hold.unwrap_or_default(),
    });
    let progress = (std::io::stderr().is_terminal() && config.child.is_none())
        .then(|| progress::Progress::opening(counters.to_vec(), total));
    let holding = hold::open(opening, ids, counters, timeline, finished, || {
        if let Some(progress) = &progress {
            progress.tick_opening();
        }
    })?;
    if let Some(progress) = progress {
        progress.finish();
    }
    if config.child.is_some() {
        children::report_opened(&holding.opened)?;
    }
    Ok(hold::Holders::Threads(holding))
}

/// The names of the kinds of failure, in the reports' order (for tests
/// that build a report by hand).
#[cfg(test)]
pub(crate) fn failure_kinds() -> impl Iterator<Item = &'static str> {
    failure::Failure::ALL.iter().map(|kind| kind.name())
}

/// The body of every request under `--body-bytes`, built once: `x`s, as
/// the worker's `?bytes=` answers are made of (bounded by the flag's parser
/// to 64 MiB); empty without it.
fn body(body_bytes: Option<u64>) -> Box<[u8]> {
    let length = body_bytes.map_or(0, |bytes| {
        usize::try_from(bytes).expect("--body-bytes is at most 64 MiB")
    });
    vec![b'x'; length].into_boxed_slice()
}

/// `at` in ms since the Unix epoch (0 for a clock set before it).
fn unix_ms(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64() * 1000.0)
}

/// One load thread: a single-threaded runtime driving connections `ids`, each a
/// task (in the open model, the places of `open_model`, sending the arrivals
/// of `share`, with `in_flight` the requests in flight over all threads);
/// returns the thread's recorder once every connection has finished.
fn load_thread(
    plan: Arc<Plan>,
    ids: Vec<usize>,
    share: Share,
    counter: Arc<AtomicU64>,
    timeline: Option<Duration>,
    in_flight: Arc<AtomicUsize>,
) -> anyhow::Result<Recorder> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build a load thread's runtime")?;
    let open_loop = plan.rate.is_some();
    if open_loop {
        timer::set_thread_timer_slack();
    }
    let longest = plan.longest_latency();
    let recorder = Rc::new(RefCell::new(
        Recorder::new(plan.window, open_loop, longest, counter).with_timeline(timeline),
    ));
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        if let (Model::OpenEach, Some(rate)) = (plan.model(), plan.rate) {
            let connections = ids
                .into_iter()
                .map(|id| Connection::new(id, Arc::clone(&plan)))
                .collect();
            let recorder = Rc::clone(&recorder);
            return open_model::run(
                Arc::clone(&plan),
                rate,
                share,
                connections,
                recorder,
                in_flight,
            )
            .await
            .context("a place of the open model failed");
        }
        let connections = ids
            .into_iter()
            .map(|id| Connection::new(id, Arc::clone(&plan)));
        run_each(connections, &recorder).await
    })?;
    // Every connection task has ended; take the recorder out of the shared cell.
    let empty = Recorder::new(plan.window, open_loop, longest, Arc::default());
    Ok(recorder.replace(empty))
}

/// Runs each connection as a task of this thread's `LocalSet`, recording
/// into `recorder`, until every one has ended: the closed and keep-alive
/// open loops, and `--hold`'s held connections.
async fn run_each(
    connections: impl IntoIterator<Item = Connection>,
    recorder: &Rc<RefCell<Recorder>>,
) -> anyhow::Result<()> {
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|connection| tokio::task::spawn_local(connection.run(Rc::clone(recorder))))
        .collect();
    for task in tasks {
        task.await.context("a connection task failed")?;
    }
    Ok(())
}

/// The run's phases are `Instant`s: the window's end, the end of the drain, and
/// a request sent during the drain has its own deadline a timeout later. A
/// warm-up, duration and timeout the clock cannot reach (`--timeout
/// 300000000000y`) would overflow one in a load thread, so they are bad usage.
fn check_spans(config: &Config) -> Result<(), UsageError> {
    let reachable = config
        .warmup
        .checked_add(config.duration)
        .and_then(|span| span.checked_add(config.timeout))
        .and_then(|span| span.checked_add(config.timeout))
        .and_then(|span| span.checked_add(SPAN_SLACK))
        .and_then(|span| Instant::now().checked_add(span));
    match reachable {
        Some(_) => Ok(()),
        None => Err(UsageError(format!(
            "--warmup {:?} + --duration {:?} + --timeout {:?} is too long for the clock",
            config.warmup, config.duration, config.timeout
        ))),
    }
}

/// Checks that `addr` accepts a connection before loading it, so that a wrong
/// port is one clear error rather than a run of connect errors.
fn probe(target: &Target, addr: SocketAddr) -> Result<(), UsageError> {
    TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
        .map(drop)
        .map_err(|err| UsageError(format!("cannot reach {} ({addr}): {err}", target.url)))
}
