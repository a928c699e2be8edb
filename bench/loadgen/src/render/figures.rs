//! The measurement side of `loadgen report`: groups the runs of a results folder
//! by their typed [`Labels`](runs::Labels) (section, mode, load,
//! connections, work_us, round) and computes the figures each section of
//! REPORT.md shows — medians over rounds, min–max, slopes, fd limits, recovery
//! times — with no formatting. The [`super::markdown`] and [`super::charts`]
//! modules only display these. A run without the labels a section groups by
//! (a mode; for throughput and fairness a load) is left out of that section.

use std::collections::BTreeMap;

use runs::labels::{Accept, Load, Mode, Section, Strategy};
use runs::{Fairness, HistogramSummary, Machine, ProcessReport, Report, Role, WorkerShare};

/// The percentile spectrum is drawn from the median up to this many nines
/// (99.999 %) at most, and no further than the samples resolve.
const MAX_NINES: f64 = 5.0;

/// Steps of the spectrum's grid, in nines.
const NINES_STEP: f64 = 0.05;

/// A figure over rounds: median, smallest, largest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (of an even count: the mean of the middle two).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// How many values.
    pub count: usize,
}

impl Spread {
    /// The spread of `values`; `None` if there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: values[0],
            max: values[n - 1],
            count: n,
        })
    }
}

/// How two figures over rounds compare: only ranges that do not overlap rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Every round of the first is above every round of the second.
    Above,
    /// Every round of the first is below every round of the second.
    Below,
    /// The ranges overlap: no clear difference.
    Overlap,
    /// One of them has a single round: an order of magnitude, not a ranking.
    OneRound,
}

impl Order {
    /// Compares `a` with `b` by their min–max over rounds.
    pub fn of(a: &Spread, b: &Spread) -> Order {
        if a.count < 2 || b.count < 2 {
            Order::OneRound
        } else if a.min > b.max {
            Order::Above
        } else if a.max < b.min {
            Order::Below
        } else {
            Order::Overlap
        }
    }
}

/// The median of `values`, `None` without any.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    Spread::of(values).map(|spread| spread.median)
}

/// Section 1: one mode under one load, over its rounds.
#[derive(Debug, Clone)]
pub struct ThroughputRow {
    /// The mode.
    pub mode: Mode,
    /// `keepalive`, `newconn` or `openloop`.
    pub load: Load,
    /// Successful requests per second.
    pub per_s: Spread,
    /// Median over rounds of each round's p50, µs (openloop: corrected).
    pub p50_us: Option<f64>,
    /// Median of p99, µs.
    pub p99_us: Option<f64>,
    /// p99 over rounds, µs, with its min–max.
    pub p99: Option<Spread>,
    /// Median of p99.9, µs.
    pub p99_9_us: Option<f64>,
    /// Open loop: the median over rounds of p99 as sent (not corrected for
    /// coordinated omission), µs.
    pub p99_uncorrected_us: Option<f64>,
    /// Open loop: the rounds whose corrected p99 is at least
    /// [`WAITING_RATIO`] times the uncorrected one (requests waited to be sent).
    pub waiting_rounds: usize,
    /// Failed requests, all rounds.
    pub failed: u64,
    /// Requests (successful and failed), all rounds.
    pub requests: u64,
    /// Open loop: the asked rate over rounds.
    pub asked_per_s: Option<Spread>,
    /// Every round's requests/s, in round order (the strip chart's dots).
    pub every_round: Vec<f64>,
}

/// Corrected over uncorrected p99 from which the load generator's requests
/// are said to have waited to be sent: the server fell behind the schedule.
pub const WAITING_RATIO: f64 = 10.0;

/// A sweep step counts as held when at least this share of the requests due
/// in it were answered (and none failed, and most were sent on time: see
/// [`SweepStep::held`]): below it the server did not keep up.
pub const HELD_SHARE: f64 = 0.95;

/// The latency objectives of the sweep's headline, p99 in µs: 1 ms and 10 ms.
pub const SLOS_US: [f64; 2] = [1_000.0, 10_000.0];

/// 1b: one step of the open-loop sweep (one offered rate) of one mode and
/// load; latencies are the median over the step's runs (normally one).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepStep {
    /// The offered rate, requests/s (the `rate` label, else `--rate`).
    pub offered_per_s: f64,
    /// The requests due in the window that were answered, late ones
    /// included (loadgen waits up to `--timeout` after the window), per
    /// second of the window: not a throughput once the server falls behind.
    pub achieved_per_s: f64,
    /// p50, corrected for coordinated omission (from each request's
    /// intended start), µs.
    pub p50_us: Option<f64>,
    /// p99, corrected, µs.
    pub p99_us: Option<f64>,
    /// p99.9, corrected, µs.
    pub p99_9_us: Option<f64>,
    /// p50 as sent (uncorrected), µs.
    pub p50_sent_us: Option<f64>,
    /// p99 as sent, µs.
    pub p99_sent_us: Option<f64>,
    /// p99.9 as sent, µs.
    pub p99_9_sent_us: Option<f64>,
    /// Failed requests, all the step's runs.
    pub failed: u64,
    /// Requests of the window (successful and failed), all runs.
    pub requests: u64,
    /// Runs behind the step.
    pub runs: usize,
}

impl SweepStep {
    /// Held: no error, at least [`HELD_SHARE`] of the offered rate answered,
    /// and the server kept up with the schedule: the corrected p50 below
    /// [`WAITING_RATIO`] times the p50 as sent. The last condition matters
    /// because a late answer still counts as answered: a server at half the
    /// offered rate answers every request of a short step, a second late.
    pub fn held(&self) -> bool {
        let on_time = match (self.p50_us, self.p50_sent_us) {
            (Some(corrected), Some(sent)) => corrected < WAITING_RATIO * sent.max(1.0),
            _ => true,
        };
        self.failed == 0 && self.achieved_per_s >= HELD_SHARE * self.offered_per_s && on_time
    }

    /// Held with a (corrected) p99 of at most `slo_us`.
    pub fn meets(&self, slo_us: f64) -> bool {
        self.held() && self.p99_us.is_some_and(|p99| p99 <= slo_us)
    }

    /// The corrected p99 is at least [`WAITING_RATIO`] times the p99 as
    /// sent: the load generator's requests waited to be sent, the server
    /// having fallen behind the schedule.
    pub fn waiting(&self) -> bool {
        match (self.p99_us, self.p99_sent_us) {
            (Some(corrected), Some(sent)) => corrected >= WAITING_RATIO * sent.max(1.0),
            _ => false,
        }
    }
}

/// 1b: the sweep of one mode under one load, its steps by offered rate.
#[derive(Debug, Clone)]
pub struct SweepLine {
    /// The mode.
    pub mode: Mode,
    /// `keepalive` or `newconn`.
    pub load: Load,
    /// The steps, lowest offered rate first.
    pub steps: Vec<SweepStep>,
}

/// The capacity of a sweep at a latency objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SloCapacity {
    /// The lightest step already missed it.
    None,
    /// The highest offered rate up to which every step met it, and the next
    /// step did not.
    Held(f64),
    /// Every step met it, the highest too: the capacity is at least that.
    NotReached(f64),
}

impl SweepLine {
    /// The highest offered rate up to which every step was held with p99 ≤
    /// `slo_us` (see [`SweepStep::meets`]): a step that misses ends the
    /// count, even if a higher one met it by chance.
    pub fn capacity(&self, slo_us: f64) -> SloCapacity {
        let met = self
            .steps
            .iter()
            .take_while(|step| step.meets(slo_us))
            .count();
        match (met, self.steps.get(met.wrapping_sub(1))) {
            (0, _) | (_, None) => SloCapacity::None,
            (n, Some(step)) if n == self.steps.len() => SloCapacity::NotReached(step.offered_per_s),
            (_, Some(step)) => SloCapacity::Held(step.offered_per_s),
        }
    }

    /// The steps whose requests waited to be sent (see
    /// [`SweepStep::waiting`]).
    pub fn waiting(&self) -> impl Iterator<Item = &SweepStep> {
        self.steps.iter().filter(|step| step.waiting())
    }
}

/// One line of the latency chart: a mode's percentile spectrum, the median over
/// rounds at each point.
#[derive(Debug, Clone)]
pub struct SpectrumLine {
    /// The mode.
    pub mode: Mode,
    /// (nines, latency µs): nines = -log10(1 - percentile/100), so 1 is p90, 2 p99.
    pub points: Vec<(f64, f64)>,
}

/// Section 2: master fds and RSS with N held connections.
#[derive(Debug, Clone)]
pub struct FdBillRow {
    /// The mode.
    pub mode: Mode,
    /// Held keep-alive connections.
    pub connections: u64,
    /// Most fds the master held (median over rounds).
    pub master_fds: Option<f64>,
    /// Largest master RSS, bytes (median over rounds).
    pub master_rss_bytes: Option<f64>,
    /// The workers' fds: the sum of each child of the master's most (median
    /// over rounds).
    pub workers_fds: Option<f64>,
    /// The workers' RSS, summed likewise, bytes.
    pub workers_rss_bytes: Option<f64>,
    /// The whole tree's fds: every watched process, the most at one sample.
    pub tree_fds: Option<f64>,
    /// The whole tree's RSS, bytes.
    pub tree_rss_bytes: Option<f64>,
    /// Failed requests, all rounds.
    pub failed: u64,
}

/// Section 2: how many fds a mode's master holds per connection.
#[derive(Debug, Clone)]
pub struct FdSlope {
    /// The mode.
    pub mode: Mode,
    /// Least-squares slope of master fds against connections.
    pub fds_per_connection: f64,
    /// Master fds extrapolated to no connection (the base: listeners, channels, ...).
    pub base_fds: f64,
    /// The same of the whole tree's fds (master and workers), if measured.
    pub tree: Option<(f64, f64)>,
}

/// Connections that fit under an fd limit with `base` fds and `per_connection`
/// fds each: `None` if a connection costs nothing.
pub fn connections_at_limit(limit: f64, base: f64, per_connection: f64) -> Option<f64> {
    (per_connection > 0.05).then(|| ((limit - base) / per_connection).max(0.0).floor())
}

/// Section 3: one mode under `--max-fds`.
#[derive(Debug, Clone)]
pub struct FdLimitRow {
    /// The mode.
    pub mode: Mode,
    /// The master's `--max-fds` (`max_fds` label), if given.
    pub max_fds: Option<u64>,
    /// Every N tried, fewest first.
    pub tried: Vec<Tried>,
    /// The most connections served without an error (`None` if every N failed).
    pub most_without_errors: Option<u64>,
    /// The fewest connections with errors (`None` if none failed).
    pub first_with_errors: Option<u64>,
    /// From the steps with errors: how many connections were served at once.
    pub capacity: Option<Capacity>,
}

/// What the steps with errors show of a master's capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Connections served at once: N − failed, the median over the steps with
    /// errors (each connection beyond it failed once).
    pub connections: u64,
    /// Whether N − failed was the same (±1) at every step with errors.
    pub steady: bool,
    /// Whether every failure was a timeout: the clients beyond waited
    /// unanswered until their timeout.
    pub timeouts_only: bool,
    /// Relaying modes (2 fds per connection) with `max_fds`: the fds the
    /// master held besides its relays (its most − 2 × capacity) and the fds it
    /// kept free (limit − its most), so capacity = (limit − open − spare) / 2.
    pub open_and_spare: Option<(u64, u64)>,
}

/// Section 3: one number of connections tried under the limit.
#[derive(Debug, Clone)]
pub struct Tried {
    /// Connections held.
    pub connections: u64,
    /// Failed requests, all rounds.
    pub failed: u64,
    /// The kinds of failure, most first.
    pub kinds: Vec<(String, u64)>,
    /// Median p99, µs.
    pub p99_us: Option<f64>,
    /// The master's most fds (median over rounds).
    pub master_fds: Option<f64>,
}

/// Section 4: a way of sharing the port: a mode and, for `handoff-listener`,
/// how its workers accept (label `accept`; `None` in runs without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Variant {
    /// The mode.
    pub mode: Mode,
    /// `handoff --pass listener --accept`.
    pub accept: Option<Accept>,
}

impl Variant {
    /// The variant of `run`; `None` without a mode.
    fn of(run: &Report) -> Option<Variant> {
        Some(Variant {
            mode: run.labels.mode?,
            accept: run.labels.accept,
        })
    }
}

impl std::fmt::Display for Variant {
    /// `handoff-listener --accept single`, or the mode's name alone.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.accept {
            Some(accept) => write!(f, "{} --accept {}", self.mode, accept.name()),
            None => write!(f, "{}", self.mode),
        }
    }
}

/// Section 4, the spread: one variant, cluster size and load, over its rounds.
#[derive(Debug, Clone)]
pub struct FairnessRow {
    /// The way of sharing the port.
    pub variant: Variant,
    /// Workers in the cluster (label `workers`, or the master's children).
    pub workers: usize,
    /// The load: `newconn` (a connection per request) or `keepalive`.
    pub load: Load,
    /// Each worker's share of the connections, largest first, the median
    /// over rounds at each rank, 0 to 1; a worker that got none is a 0.
    pub connection_shares: Vec<f64>,
    /// The same for the requests.
    pub request_shares: Vec<f64>,
    /// The smallest worker's share of the connections, per round.
    pub least_share: Option<Spread>,
    /// The largest worker's share of the connections, per round.
    pub most_share: Option<Spread>,
    /// Jain's index of the connections per worker (every worker, silent
    /// ones as 0), per round.
    pub connections_jain: Option<Spread>,
    /// Jain's index of the requests per worker, per round.
    pub requests_jain: Option<Spread>,
    /// Failed requests, all rounds.
    pub failed: u64,
}

/// Section 4, the stalled worker: one variant (loadgen `--stop`), over its rounds.
#[derive(Debug, Clone)]
pub struct StallRow {
    /// The way of sharing the port.
    pub variant: Variant,
    /// Workers in the cluster.
    pub workers: usize,
    /// How long each stall lasted (`--stop-for`), ms.
    pub stall_ms: f64,
    /// Requests whose latency was at least the stall, per round.
    pub waited_stall: Option<Spread>,
    /// Requests whose latency was at least a tenth of the stall, per round.
    pub waited_tenth: Option<Spread>,
    /// p99 of all requests, µs, per round.
    pub p99_us: Option<Spread>,
    /// The slowest request, µs, per round.
    pub max_us: Option<Spread>,
    /// The stalled worker's own p99, µs, per round.
    pub stalled_p99_us: Option<Spread>,
    /// The worst p99 of the other workers, µs, per round.
    pub others_p99_us: Option<Spread>,
    /// The stalled worker's share of the requests, per round.
    pub stalled_share: Option<Spread>,
    /// Failed requests, all rounds.
    pub failed: u64,
}

/// Section 4, uneven work (`--mix`): one variant, over its rounds.
#[derive(Debug, Clone)]
pub struct MixRow {
    /// The way of sharing the port.
    pub variant: Variant,
    /// Workers in the cluster.
    pub workers: usize,
    /// The mix, as `--mix` gave it: `95 % /, 5 % /?work_us=5000`.
    pub mix: String,
    /// p99 of all requests, µs, per round.
    pub p99_us: Option<Spread>,
    /// The best worker's p99, µs, per round.
    pub best_worker_p99_us: Option<Spread>,
    /// The worst worker's p99, µs, per round.
    pub worst_worker_p99_us: Option<Spread>,
    /// Failed requests, all rounds.
    pub failed: u64,
}

/// One run's CPU per successful request, µs (= ms per 1,000 requests).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RunCost {
    /// The master: the first `--watch`'s process; `None` for the baseline,
    /// whose master is not in the path.
    pub master_us: Option<f64>,
    /// Every other watched process (all watch entries), summed.
    pub workers_us: Option<f64>,
    /// The whole tree: the master (if in the path) and the workers.
    pub tree_us: Option<f64>,
    /// loadgen itself (`loadgen_usage`), `None` in runs without it.
    pub loadgen_us: Option<f64>,
}

/// The CPU per request of one run (see [`RunCost`]). A process watched twice
/// counts once.
pub fn run_cost(run: &Report) -> RunCost {
    let in_path = run.labels.mode.is_none_or(Mode::master_in_path);
    let master = run.master();
    let per_request = |process: &ProcessReport| process.summary.cpu_ms_per_1000_requests;
    let mut others: BTreeMap<u32, Option<f64>> = BTreeMap::new();
    for process in run.watch.iter().flat_map(|tree| tree.processes.iter()) {
        if Some(process.pid) != master.map(|master| master.pid) {
            others.insert(process.pid, per_request(process));
        }
    }
    let workers_us = others
        .values()
        .copied()
        .flatten()
        .fold(None, |sum: Option<f64>, value| {
            Some(sum.unwrap_or(0.0) + value)
        });
    let master_us = if in_path {
        master.and_then(per_request)
    } else {
        None
    };
    let tree_us = if in_path {
        master_us.map(|master| master + workers_us.unwrap_or(0.0))
    } else {
        workers_us
    };
    RunCost {
        master_us,
        workers_us,
        tree_us,
        loadgen_us: run
            .loadgen_usage
            .and_then(|usage| usage.cpu_ms_per_1000_requests),
    }
}

/// Section 5: CPU per request of one mode under one load, over its rounds.
#[derive(Debug, Clone)]
pub struct CostRow {
    /// The mode.
    pub mode: Mode,
    /// The load.
    pub load: Load,
    /// Rounds (runs) in the row.
    pub rounds: usize,
    /// The master's µs per request; `None` for the baseline (no master in the
    /// path) or without a watched master.
    pub master_us: Option<Spread>,
    /// The workers', summed.
    pub workers_us: Option<Spread>,
    /// The whole tree's.
    pub tree_us: Option<Spread>,
    /// loadgen's own; `None` for runs written before loadgen measured it.
    pub loadgen_us: Option<Spread>,
    /// nginx watched alone (runs written before the workers behind it were
    /// watched too): its tree is not the whole tree.
    pub nginx_alone: bool,
    /// Every round's whole-tree µs per request, in round order (the strip
    /// chart's dots).
    pub every_round_tree_us: Vec<f64>,
}

/// Section 5's chart: the master's fds over one newconn run.
#[derive(Debug, Clone)]
pub struct FdSeries {
    /// The mode.
    pub mode: Mode,
    /// (seconds from the run's start, fds).
    pub points: Vec<(f64, f64)>,
    /// The measurement window, seconds from the run's start.
    pub window_s: (f64, f64),
}

impl FdSeries {
    /// The fewest and the most fds at a sample inside the window.
    pub fn window_range(&self) -> Option<(f64, f64)> {
        let inside = self
            .points
            .iter()
            .filter(|(t, _)| *t >= self.window_s.0 && *t <= self.window_s.1)
            .map(|p| p.1);
        let least = inside
            .clone()
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))))?;
        let most = inside.fold(least, f64::max);
        Some((least, most))
    }
}

/// Section 6: a worker killed mid-run.
#[derive(Debug, Clone)]
pub struct FaultRow {
    /// The mode.
    pub mode: Mode,
    /// Rounds with a kill sent.
    pub rounds: usize,
    /// Failed requests per round.
    pub failed: Spread,
    /// Failures by kind, all rounds.
    pub kinds: Vec<(String, u64)>,
    /// ms from the kill to the first answer of a pid that had not answered
    /// before it (the respawned worker), over the rounds where one answered.
    pub recovery_ms: Option<Spread>,
}

/// Every figure of the report.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// The machines the runs were measured on (normally one).
    pub machines: Vec<Machine>,
    /// How many runs were read.
    pub runs: usize,
    /// The connections of the throughput runs (`--connections`), each once,
    /// fewest first.
    pub throughput_connections: Vec<usize>,
    /// Section 1.
    pub throughput: Vec<ThroughputRow>,
    /// Section 1's chart: the load it shows, and a line per mode.
    pub spectra: Option<(Load, Vec<SpectrumLine>)>,
    /// Section 1b: the open-loop sweep, per mode and load.
    pub sweep: Vec<SweepLine>,
    /// The connections of the sweep's runs, each once, fewest first.
    pub sweep_connections: Vec<usize>,
    /// Section 2.
    pub fd_bill: Vec<FdBillRow>,
    /// Section 2, per mode.
    pub fd_slopes: Vec<FdSlope>,
    /// Section 3.
    pub fd_limit: Vec<FdLimitRow>,
    /// Section 4: the spread of connections and requests.
    pub fairness: Vec<FairnessRow>,
    /// Section 4: a stalled worker.
    pub stalls: Vec<StallRow>,
    /// Section 4: uneven work.
    pub mixes: Vec<MixRow>,
    /// Section 5: CPU per request, per mode and load.
    pub cost: Vec<CostRow>,
    /// Section 5's chart.
    pub master_fds: Vec<FdSeries>,
    /// Section 6.
    pub faults: Vec<FaultRow>,
    /// The peer modes that have runs.
    pub peers: Vec<Mode>,
    /// Per section: the fewest and the most runs behind one of its figures
    /// (rounds), over its groups.
    pub rounds: BTreeMap<Section, (usize, usize)>,
    /// How the runs were set up: CPUs, targets, workers (for "Limitations").
    pub setup: Setup,
    /// Section 8: one row per mode and strategy.
    pub upgrades: Vec<UpgradeRow>,
    /// Section 8's chart of requests/s over time: one run per strategy of
    /// one mode, around its first upgrade.
    pub upgrade_timelines: Vec<UpgradeTimeline>,
}

/// How the runs were set up, as far as they recorded it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Setup {
    /// Runs whose `affinity` shows loadgen allowed on a CPU some watched
    /// process was allowed on too.
    pub shared: usize,
    /// Runs whose `affinity` shows loadgen's CPUs apart from every watched
    /// process's.
    pub pinned: usize,
    /// Runs without `affinity` (or without a watched process in it).
    pub unrecorded: usize,
    /// loadgen's CPU lists over the runs that recorded them, each once.
    pub loadgen_cpus: Vec<Vec<usize>>,
    /// The watched processes' CPUs (their union per run), each list once.
    pub server_cpus: Vec<Vec<usize>>,
    /// The host of every target of every run, each once, sorted.
    pub hosts: Vec<String>,
    /// The `workers` labels, each once, fewest first.
    pub workers: Vec<u64>,
}

impl Setup {
    /// Reads the setup of `runs`.
    pub fn of(runs: &[Report]) -> Setup {
        let mut setup = Setup::default();
        for run in runs {
            match &run.affinity {
                Some(affinity) if !affinity.watched.is_empty() => {
                    let mut server: Vec<usize> = affinity
                        .watched
                        .iter()
                        .flat_map(|watched| watched.cpus.iter().copied())
                        .collect();
                    server.sort_unstable();
                    server.dedup();
                    if server.iter().any(|cpu| affinity.loadgen.contains(cpu)) {
                        setup.shared += 1;
                    } else {
                        setup.pinned += 1;
                    }
                    if !setup.loadgen_cpus.contains(&affinity.loadgen) {
                        setup.loadgen_cpus.push(affinity.loadgen.clone());
                    }
                    if !setup.server_cpus.contains(&server) {
                        setup.server_cpus.push(server);
                    }
                }
                _ => setup.unrecorded += 1,
            }
            let targets = if run.parameters.targets.is_empty() {
                std::slice::from_ref(&run.parameters.target)
            } else {
                run.parameters.targets.as_slice()
            };
            for target in targets {
                let host = host_of(target).to_owned();
                if !setup.hosts.contains(&host) {
                    setup.hosts.push(host);
                }
            }
            if let Some(workers) = run.labels.workers {
                if !setup.workers.contains(&workers) {
                    setup.workers.push(workers);
                }
            }
        }
        setup.hosts.sort();
        setup.workers.sort_unstable();
        setup
    }

    /// Whether every target was on this machine's loopback.
    pub fn loopback_only(&self) -> bool {
        !self.hosts.is_empty() && self.hosts.iter().all(|host| is_loopback(host))
    }
}

/// The host of a target URL: `127.0.0.1` of `http://127.0.0.1:80/x`, `::1`
/// of `http://[::1]:80/`.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if let Some(bracketed) = authority.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or(bracketed);
    }
    authority
        .split_once(':')
        .map_or(authority, |(host, _)| host)
}

/// Whether `host` names this machine's loopback: 127.0.0.0/8, `::1`,
/// `localhost`.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Figures {
    /// Computes every figure from `runs`.
    pub fn of(runs: &[Report]) -> Figures {
        let mut machines: Vec<Machine> = Vec::new();
        for run in runs {
            let machine = &run.machine;
            let known = machines.iter().any(|seen| {
                seen.cpu_model == machine.cpu_model
                    && seen.cores == machine.cores
                    && seen.kernel == machine.kernel
            });
            if !known {
                machines.push(machine.clone());
            }
        }
        let mut peers: Vec<Mode> = runs
            .iter()
            .filter_map(|run| run.labels.mode)
            .filter(|mode| mode.is_peer())
            .collect();
        peers.sort();
        peers.dedup();
        let section = |name: Section| -> Vec<&Report> {
            runs.iter()
                .filter(|run| run.labels.section == Some(name))
                .collect()
        };
        let throughput_runs = section(Section::Throughput);
        let mut throughput_connections: Vec<usize> = throughput_runs
            .iter()
            .map(|run| run.parameters.connections)
            .collect();
        throughput_connections.sort();
        throughput_connections.dedup();
        let sweep_runs = section(Section::Sweep);
        let mut sweep_connections: Vec<usize> = sweep_runs
            .iter()
            .map(|run| run.parameters.connections)
            .collect();
        sweep_connections.sort();
        sweep_connections.dedup();
        Figures {
            machines,
            runs: runs.len(),
            throughput_connections,
            throughput: throughput(&throughput_runs),
            spectra: spectra(&throughput_runs),
            sweep: sweep(&sweep_runs),
            sweep_connections,
            fd_bill: fd_bill(&section(Section::FdBill)),
            fd_slopes: fd_slopes(&fd_bill(&section(Section::FdBill))),
            fd_limit: fd_limit(&section(Section::FdLimit)),
            fairness: fairness(&section(Section::Fairness)),
            stalls: stalls(&section(Section::Fairness)),
            mixes: mixes(&section(Section::Fairness)),
            cost: cost(&throughput_runs),
            master_fds: master_fds(&throughput_runs),
            faults: faults(&section(Section::Faults)),
            upgrades: upgrades(&section(Section::Upgrade)),
            upgrade_timelines: upgrade_timelines(&section(Section::Upgrade)),
            peers,
            rounds: rounds(runs),
            setup: Setup::of(runs),
        }
    }
}

/// Per section, the fewest and most runs per figure: runs that differ only
/// in their round (or are faults without a kill) are one figure's rounds.
fn rounds(runs: &[Report]) -> BTreeMap<Section, (usize, usize)> {
    let mut groups: BTreeMap<_, usize> = BTreeMap::new();
    for run in runs {
        let Some(section) = run.labels.section else {
            continue;
        };
        let labels = &run.labels;
        let key = (
            section,
            labels.mode,
            labels.load,
            labels.rate,
            labels.connections,
            labels.max_fds,
            labels.work_us,
            labels.workers,
            labels.accept,
            labels.stall_ms,
            labels.strategy,
            // §4's experiments differ in their loadgen flags, not their labels.
            run.parameters.mix.is_empty(),
        );
        *groups.entry(key).or_default() += 1;
    }
    let mut rounds: BTreeMap<Section, (usize, usize)> = BTreeMap::new();
    for (key, n) in groups {
        let entry = rounds.entry(key.0).or_insert((n, n));
        entry.0 = entry.0.min(n);
        entry.1 = entry.1.max(n);
    }
    rounds
}

/// Groups `runs` by `key`, the groups sorted by key; a run without a key
/// (`None`) is left out.
fn group<'a, K: Ord>(
    runs: &[&'a Report],
    key: impl Fn(&Report) -> Option<K>,
) -> BTreeMap<K, Vec<&'a Report>> {
    let mut groups: BTreeMap<K, Vec<&Report>> = BTreeMap::new();
    for &run in runs {
        if let Some(key) = key(run) {
            groups.entry(key).or_default().push(run);
        }
    }
    groups
}

/// The mode of a run.
fn mode(run: &Report) -> Option<Mode> {
    run.labels.mode
}

/// The mode and load of a run.
fn mode_load(run: &Report) -> Option<(Mode, Load)> {
    Some((run.labels.mode?, run.labels.load?))
}

/// The connections of a fd bill or fd limit step: its label, or as loaded.
fn connections(run: &Report) -> u64 {
    run.labels
        .connections
        .unwrap_or(run.parameters.connections as u64)
}

/// The median over `runs` of a latency figure of `latency.request`.
fn latency_median(runs: &[&Report], figure: impl Fn(&HistogramSummary) -> u64) -> Option<f64> {
    median(runs.iter().filter_map(|run| {
        run.latency
            .request
            .as_ref()
            .map(|summary| figure(summary) as f64)
    }))
}

fn failed(runs: &[&Report]) -> u64 {
    runs.iter().map(|run| run.requests.failed).sum()
}

fn throughput(runs: &[&Report]) -> Vec<ThroughputRow> {
    group(runs, mode_load)
        .into_iter()
        .filter_map(|((mode, load), runs)| {
            let p99s = |run: &&Report| {
                let corrected = run.latency.request.as_ref()?.p99_us as f64;
                let uncorrected = run.latency.request_uncorrected.as_ref()?.p99_us as f64;
                Some((corrected, uncorrected))
            };
            Some(ThroughputRow {
                mode,
                load,
                per_s: Spread::of(runs.iter().map(|run| run.requests.per_s))?,
                p50_us: latency_median(&runs, |summary| summary.p50_us),
                p99_us: latency_median(&runs, |summary| summary.p99_us),
                p99: Spread::of(
                    runs.iter()
                        .filter_map(|run| Some(run.latency.request.as_ref()?.p99_us as f64)),
                ),
                p99_9_us: latency_median(&runs, |summary| summary.p99_9_us),
                p99_uncorrected_us: median(runs.iter().filter_map(|run| {
                    Some(run.latency.request_uncorrected.as_ref()?.p99_us as f64)
                })),
                waiting_rounds: runs
                    .iter()
                    .filter_map(p99s)
                    .filter(|(corrected, uncorrected)| {
                        *corrected >= WAITING_RATIO * uncorrected.max(1.0)
                    })
                    .count(),
                failed: failed(&runs),
                requests: runs
                    .iter()
                    .map(|run| run.requests.ok + run.requests.failed)
                    .sum(),
                asked_per_s: Spread::of(runs.iter().filter_map(|run| run.requests.asked_per_s)),
                every_round: by_round(&runs)
                    .iter()
                    .map(|run| run.requests.per_s)
                    .collect(),
            })
        })
        .collect()
}

/// `runs` in round order (a run without a round last, in its file order).
fn by_round<'a>(runs: &[&'a Report]) -> Vec<&'a Report> {
    let mut sorted = runs.to_vec();
    sorted.sort_by_key(|run| run.labels.round.unwrap_or(u32::MAX));
    sorted
}

/// The offered rate of a sweep run: its `rate` label, else its `--rate`.
fn offered(run: &Report) -> Option<u64> {
    run.labels
        .rate
        .or_else(|| Some(run.parameters.rate_per_s?.round() as u64))
}

fn sweep(runs: &[&Report]) -> Vec<SweepLine> {
    group(runs, mode_load)
        .into_iter()
        .map(|((mode, load), runs)| {
            let steps = group(&runs, offered)
                .into_iter()
                .map(|(offered_per_s, runs)| {
                    let corrected =
                        |figure: fn(&HistogramSummary) -> u64| latency_median(&runs, figure);
                    let sent = |figure: fn(&HistogramSummary) -> u64| {
                        median(runs.iter().filter_map(|run| {
                            Some(figure(run.latency.request_uncorrected.as_ref()?) as f64)
                        }))
                    };
                    SweepStep {
                        offered_per_s: offered_per_s as f64,
                        achieved_per_s: median(runs.iter().map(|run| run.requests.per_s))
                            .unwrap_or(0.0),
                        p50_us: corrected(|s| s.p50_us),
                        p99_us: corrected(|s| s.p99_us),
                        p99_9_us: corrected(|s| s.p99_9_us),
                        p50_sent_us: sent(|s| s.p50_us),
                        p99_sent_us: sent(|s| s.p99_us),
                        p99_9_sent_us: sent(|s| s.p99_9_us),
                        failed: failed(&runs),
                        requests: runs
                            .iter()
                            .map(|run| run.requests.ok + run.requests.failed)
                            .sum(),
                        runs: runs.len(),
                    }
                })
                .collect();
            SweepLine { mode, load, steps }
        })
        .collect()
}

/// `percentile` (0 to 100) as nines: 90 → 1, 99 → 2, 99.9 → 3.
pub fn nines(percentile: f64) -> f64 {
    -(1.0 - percentile / 100.0).max(1e-12).log10()
}

/// The latency at `percentile` of a spectrum: the first point at or past it.
fn value_at(summary: &HistogramSummary, percentile: f64) -> f64 {
    summary
        .spectrum
        .iter()
        .find(|point| point.percentile + 1e-6 >= percentile)
        .map_or(summary.max_us, |point| point.value_us) as f64
}

/// Section 1's chart: the spectrum of each mode under the open-loop load (equal
/// load for all), or keep-alive if there is none.
fn spectra(runs: &[&Report]) -> Option<(Load, Vec<SpectrumLine>)> {
    let load = [Load::OpenLoop, Load::KeepAlive, Load::NewConn]
        .into_iter()
        .find(|&load| runs.iter().any(|run| run.labels.load == Some(load)))?;
    let chosen: Vec<&Report> = runs
        .iter()
        .copied()
        .filter(|run| run.labels.load == Some(load))
        .collect();
    let lines = group(&chosen, mode)
        .into_iter()
        .filter_map(|(mode, runs)| {
            let summaries: Vec<&HistogramSummary> = runs
                .iter()
                .filter_map(|run| run.latency.request.as_ref())
                .collect();
            let fewest = summaries.iter().map(|summary| summary.count).min()?;
            // Beyond log10(samples) nines every round's spectrum is its maximum.
            let top = (fewest as f64).log10().clamp(nines(50.0), MAX_NINES);
            // p50, then every step from the next multiple of it, so that p90, p99
            // ... fall on the grid.
            let grid = std::iter::once(nines(50.0)).chain(
                (((nines(50.0) / NINES_STEP).floor() as u32 + 1)..)
                    .map(|step| f64::from(step) * NINES_STEP)
                    .take_while(|&at| at <= top + 1e-9),
            );
            let mut points = Vec::new();
            for at in grid {
                let percentile = 100.0 * (1.0 - 10f64.powf(-at));
                let value = median(
                    summaries
                        .iter()
                        .map(|summary| value_at(summary, percentile)),
                )?;
                points.push((at, value.max(1.0)));
            }
            Some(SpectrumLine { mode, points })
        })
        .collect();
    Some((load, lines))
}

/// The master's children (its workers) in the first `--watch` tree.
fn workers_of(run: &Report) -> Vec<&ProcessReport> {
    let Some(master) = run.master() else {
        return Vec::new();
    };
    run.watch
        .first()
        .map(|tree| {
            tree.processes
                .iter()
                .filter(|process| process.role == Role::Child && process.ppid == master.pid)
                .collect()
        })
        .unwrap_or_default()
}

/// The sum of `figure` over the master's workers; `None` without any.
fn workers_sum(run: &Report, figure: impl Fn(&ProcessReport) -> f64) -> Option<f64> {
    let workers = workers_of(run);
    (!workers.is_empty()).then(|| workers.into_iter().map(figure).sum())
}

/// The sum over every watch entry of a tree figure; `None` without any.
fn tree_sum(run: &Report, figure: impl Fn(&runs::UseSummary) -> f64) -> Option<f64> {
    (!run.watch.is_empty()).then(|| run.watch.iter().map(|tree| figure(&tree.summary)).sum())
}

fn fd_bill(runs: &[&Report]) -> Vec<FdBillRow> {
    group(runs, |run| Some((mode(run)?, connections(run))))
        .into_iter()
        .map(|((mode, connections), runs)| FdBillRow {
            mode,
            connections,
            master_fds: median(
                runs.iter()
                    .filter_map(|run| Some(run.master()?.summary.fds_max as f64)),
            ),
            master_rss_bytes: median(
                runs.iter()
                    .filter_map(|run| Some(run.master()?.summary.rss_max_bytes as f64)),
            ),
            workers_fds: median(
                runs.iter()
                    .filter_map(|run| workers_sum(run, |p| p.summary.fds_max as f64)),
            ),
            workers_rss_bytes: median(
                runs.iter()
                    .filter_map(|run| workers_sum(run, |p| p.summary.rss_max_bytes as f64)),
            ),
            tree_fds: median(
                runs.iter()
                    .filter_map(|run| tree_sum(run, |summary| summary.fds_max as f64)),
            ),
            tree_rss_bytes: median(
                runs.iter()
                    .filter_map(|run| tree_sum(run, |summary| summary.rss_max_bytes as f64)),
            ),
            failed: failed(&runs),
        })
        .collect()
}

/// Least squares of y on x: (slope, intercept); `None` with fewer than two
/// distinct x.
pub fn least_squares(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| (sxy / sxx, mean_y - sxy / sxx * mean_x))
}

fn fd_slopes(rows: &[FdBillRow]) -> Vec<FdSlope> {
    // Per mode: (connections, master fds) and (connections, tree fds).
    type Points = Vec<(f64, f64)>;
    let mut by_mode: BTreeMap<Mode, (Points, Points)> = BTreeMap::new();
    for row in rows {
        let entry = by_mode.entry(row.mode).or_default();
        if let Some(fds) = row.master_fds {
            entry.0.push((row.connections as f64, fds));
        }
        if let Some(fds) = row.tree_fds {
            entry.1.push((row.connections as f64, fds));
        }
    }
    by_mode
        .into_iter()
        .filter_map(|(mode, (master, tree))| {
            let (slope, base) = least_squares(&master)?;
            Some(FdSlope {
                mode,
                fds_per_connection: slope,
                base_fds: base,
                tree: least_squares(&tree),
            })
        })
        .collect()
}

/// Failures by kind, summed over `runs`, the non-zero ones, most first.
fn kinds(runs: &[&Report]) -> Vec<(String, u64)> {
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for run in runs {
        for (kind, count) in &run.errors.by_kind {
            *sums.entry(kind.clone()).or_default() += count;
        }
    }
    let mut kinds: Vec<(String, u64)> = sums.into_iter().filter(|(_, n)| *n > 0).collect();
    kinds.sort_by_key(|kind| std::cmp::Reverse(kind.1));
    kinds
}

fn fd_limit(runs: &[&Report]) -> Vec<FdLimitRow> {
    group(runs, mode)
        .into_iter()
        .map(|(mode, runs)| {
            let by_n = group(&runs, |run| Some(connections(run)));
            let tried: Vec<Tried> = by_n
                .iter()
                .map(|(&connections, runs)| Tried {
                    connections,
                    failed: failed(runs),
                    kinds: kinds(runs),
                    p99_us: latency_median(runs, |summary| summary.p99_us),
                    master_fds: median(
                        runs.iter()
                            .filter_map(|run| Some(run.master()?.summary.fds_max as f64)),
                    ),
                })
                .collect();
            let max_fds = runs.iter().find_map(|run| run.labels.max_fds);
            FdLimitRow {
                capacity: capacity(mode, max_fds, &tried),
                max_fds,
                most_without_errors: tried
                    .iter()
                    .filter(|tried| tried.failed == 0)
                    .map(|tried| tried.connections)
                    .max(),
                first_with_errors: tried
                    .iter()
                    .filter(|tried| tried.failed > 0)
                    .map(|tried| tried.connections)
                    .min(),
                mode,
                tried,
            }
        })
        .collect()
}

/// What the steps with errors say of the capacity (see [`Capacity`]).
pub fn capacity(mode: Mode, max_fds: Option<u64>, tried: &[Tried]) -> Option<Capacity> {
    let failing: Vec<&Tried> = tried.iter().filter(|tried| tried.failed > 0).collect();
    let served: Vec<f64> = failing
        .iter()
        .map(|tried| tried.connections.saturating_sub(tried.failed) as f64)
        .collect();
    let spread = Spread::of(served)?;
    let connections = spread.median.round() as u64;
    let relays = mode.relays();
    let open_and_spare = match (relays, max_fds) {
        (true, Some(limit)) => {
            let most = median(failing.iter().filter_map(|tried| tried.master_fds))?.round() as u64;
            (most >= 2 * connections && limit >= most)
                .then(|| (most - 2 * connections, limit - most))
        }
        _ => None,
    };
    Some(Capacity {
        connections,
        steady: spread.max - spread.min <= 1.0,
        timeouts_only: failing
            .iter()
            .all(|tried| tried.kinds.iter().all(|(kind, _)| kind == "timeout")),
        open_and_spare,
    })
}

/// Which §4 experiment a fairness run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Experiment {
    /// Who gets the connections and requests.
    Spread,
    /// One worker stopped (`--stop`).
    Stall,
    /// Uneven work (`--mix`).
    Mix,
}

fn experiment(run: &Report) -> Experiment {
    if run.labels.stall_ms.is_some() || !run.stalls.is_empty() {
        Experiment::Stall
    } else if !run.parameters.mix.is_empty() {
        Experiment::Mix
    } else {
        Experiment::Spread
    }
}

/// The workers of `run`'s cluster: the label `workers`, or else the watched
/// master's children; at least the pids that answered.
fn cluster_size(run: &Report) -> usize {
    let expected = run
        .labels
        .workers
        .map_or_else(|| workers_of(run).len(), |n| n as usize);
    expected.max(run.workers.by_pid.len())
}

/// `figure` of every worker of `run`, a worker that answered nothing as 0:
/// loadgen only sees the pids that answered, and a worker the kernel never
/// woke is exactly the unfairness this section is about.
fn per_worker(run: &Report, figure: impl Fn(&WorkerShare) -> u64) -> Vec<u64> {
    let mut counts: Vec<u64> = run.workers.by_pid.iter().map(figure).collect();
    counts.resize(cluster_size(run), 0);
    counts
}

/// Shares of `counts`, largest first.
fn ranked_shares(counts: &[u64]) -> Vec<f64> {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    let mut shares: Vec<f64> = counts.iter().map(|&count| count as f64 / total).collect();
    shares.sort_by(|a, b| b.total_cmp(a));
    shares
}

/// The median over rounds at each rank of `ranked` (each largest first).
fn median_by_rank(ranked: &[Vec<f64>]) -> Vec<f64> {
    let ranks = ranked.iter().map(Vec::len).max().unwrap_or(0);
    (0..ranks)
        .map(|rank| {
            median(
                ranked
                    .iter()
                    .map(|shares| shares.get(rank).copied().unwrap_or(0.0)),
            )
            .unwrap_or(0.0)
        })
        .collect()
}

/// The spread over `runs` of a figure of their pooled latency, µs.
fn latency_spread(runs: &[&Report], figure: impl Fn(&HistogramSummary) -> u64) -> Option<Spread> {
    Spread::of(
        runs.iter()
            .filter_map(|run| run.latency.request.as_ref().map(|s| figure(s) as f64)),
    )
}

fn fairness(runs: &[&Report]) -> Vec<FairnessRow> {
    let spread_runs: Vec<&Report> = runs
        .iter()
        .copied()
        .filter(|run| experiment(run) == Experiment::Spread)
        .collect();
    let key = |run: &Report| Some((cluster_size(run), run.labels.load?, Variant::of(run)?));
    group(&spread_runs, key)
        .into_iter()
        .map(|((workers, load, variant), runs)| {
            let connections: Vec<Vec<u64>> = runs
                .iter()
                .map(|run| per_worker(run, |w| w.connections))
                .collect();
            let requests: Vec<Vec<u64>> = runs
                .iter()
                .map(|run| per_worker(run, |w| w.requests))
                .collect();
            let connection_ranks: Vec<Vec<f64>> =
                connections.iter().map(|c| ranked_shares(c)).collect();
            let jain = |counts: &[Vec<u64>]| {
                Spread::of(
                    counts
                        .iter()
                        .filter_map(|counts| Fairness::of(counts).map(|f| f.jain_index)),
                )
            };
            FairnessRow {
                variant,
                workers,
                load,
                connection_shares: median_by_rank(&connection_ranks),
                request_shares: median_by_rank(
                    &requests
                        .iter()
                        .map(|r| ranked_shares(r))
                        .collect::<Vec<_>>(),
                ),
                least_share: Spread::of(
                    connection_ranks
                        .iter()
                        .filter_map(|shares| shares.last().copied()),
                ),
                most_share: Spread::of(
                    connection_ranks
                        .iter()
                        .filter_map(|shares| shares.first().copied()),
                ),
                connections_jain: jain(&connections),
                requests_jain: jain(&requests),
                failed: failed(&runs),
            }
        })
        .collect()
}

fn stalls(runs: &[&Report]) -> Vec<StallRow> {
    let stall_runs: Vec<&Report> = runs
        .iter()
        .copied()
        .filter(|run| experiment(run) == Experiment::Stall)
        .collect();
    let key = |run: &Report| Some((cluster_size(run), Variant::of(run)?));
    group(&stall_runs, key)
        .into_iter()
        .map(|((workers, variant), runs)| {
            let waits = |figure: fn(&runs::StallWaits) -> u64| {
                Spread::of(
                    runs.iter()
                        .filter_map(|run| run.stall_waits.as_ref().map(|w| figure(w) as f64)),
                )
            };
            // The stalled worker's p99 and the worst of the others', per round.
            let mut stalled_p99 = Vec::new();
            let mut others_p99 = Vec::new();
            let mut stalled_share = Vec::new();
            for run in &runs {
                let Some(stopped) = run.stalls.first().map(|stall| stall.pid) else {
                    continue;
                };
                let p99 = |worker: &WorkerShare| worker.latency.as_ref().map(|l| l.p99_us as f64);
                let stalled = run.workers.by_pid.iter().find(|w| w.pid == stopped);
                if let Some(p99) = stalled.and_then(p99) {
                    stalled_p99.push(p99);
                }
                stalled_share.push(stalled.map_or(0.0, |w| w.requests_share));
                if let Some(worst) = run
                    .workers
                    .by_pid
                    .iter()
                    .filter(|w| w.pid != stopped)
                    .filter_map(p99)
                    .max_by(f64::total_cmp)
                {
                    others_p99.push(worst);
                }
            }
            StallRow {
                variant,
                workers,
                stall_ms: median(
                    runs.iter()
                        .filter_map(|run| run.stall_waits.as_ref().map(|w| w.stop_for_ms)),
                )
                .or_else(|| {
                    median(
                        runs.iter()
                            .filter_map(|run| run.labels.stall_ms.map(|ms| ms as f64)),
                    )
                })
                .unwrap_or(0.0),
                waited_stall: waits(|w| w.at_least_stall),
                waited_tenth: waits(|w| w.at_least_tenth),
                p99_us: latency_spread(&runs, |s| s.p99_us),
                max_us: latency_spread(&runs, |s| s.max_us),
                stalled_p99_us: Spread::of(stalled_p99),
                others_p99_us: Spread::of(others_p99),
                stalled_share: Spread::of(stalled_share),
                failed: failed(&runs),
            }
        })
        .collect()
}

fn mixes(runs: &[&Report]) -> Vec<MixRow> {
    let mix_runs: Vec<&Report> = runs
        .iter()
        .copied()
        .filter(|run| experiment(run) == Experiment::Mix)
        .collect();
    let key = |run: &Report| Some((cluster_size(run), Variant::of(run)?));
    group(&mix_runs, key)
        .into_iter()
        .map(|((workers, variant), runs)| {
            let worker_p99 = |run: &&Report| -> Vec<f64> {
                run.workers
                    .by_pid
                    .iter()
                    .filter_map(|w| w.latency.as_ref().map(|l| l.p99_us as f64))
                    .collect()
            };
            let mix = runs
                .first()
                .map(|run| {
                    let total: u32 = run.parameters.mix.iter().map(|e| e.weight).sum();
                    run.parameters
                        .mix
                        .iter()
                        .map(|e| {
                            format!(
                                "{:.0} % {}",
                                100.0 * f64::from(e.weight) / f64::from(total.max(1)),
                                e.path
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            MixRow {
                variant,
                workers,
                mix,
                p99_us: latency_spread(&runs, |s| s.p99_us),
                best_worker_p99_us: Spread::of(
                    runs.iter()
                        .filter_map(|run| worker_p99(run).into_iter().min_by(f64::total_cmp)),
                ),
                worst_worker_p99_us: Spread::of(
                    runs.iter()
                        .filter_map(|run| worker_p99(run).into_iter().max_by(f64::total_cmp)),
                ),
                failed: failed(&runs),
            }
        })
        .collect()
}

fn cost(runs: &[&Report]) -> Vec<CostRow> {
    group(runs, mode_load)
        .into_iter()
        .map(|((mode, load), runs)| {
            let costs: Vec<RunCost> = by_round(&runs).iter().map(|run| run_cost(run)).collect();
            CostRow {
                mode,
                load,
                rounds: runs.len(),
                master_us: Spread::of(costs.iter().filter_map(|cost| cost.master_us)),
                workers_us: Spread::of(costs.iter().filter_map(|cost| cost.workers_us)),
                tree_us: Spread::of(costs.iter().filter_map(|cost| cost.tree_us)),
                loadgen_us: Spread::of(costs.iter().filter_map(|cost| cost.loadgen_us)),
                nginx_alone: mode == Mode::Nginx && runs.iter().any(|run| run.watch.len() < 2),
                every_round_tree_us: costs.iter().filter_map(|cost| cost.tree_us).collect(),
            }
        })
        .filter(|row| row.tree_us.is_some() || row.loadgen_us.is_some())
        .collect()
}

fn master_fds(runs: &[&Report]) -> Vec<FdSeries> {
    let newconn: Vec<&Report> = runs
        .iter()
        .copied()
        .filter(|run| run.labels.load == Some(Load::NewConn))
        // The baseline's watched master is not in the path: its fds say nothing.
        .filter(|run| run.labels.mode.is_some_and(Mode::master_in_path))
        .collect();
    group(&newconn, mode)
        .into_iter()
        .filter_map(|(mode, mut runs)| {
            // Round 1 if there is one: the same round for every mode.
            runs.sort_by_key(|run| run.labels.round.unwrap_or(u32::MAX));
            let run = runs.into_iter().find(|run| run.master().is_some())?;
            let master = run.master()?;
            let phases = &run.phases;
            Some(FdSeries {
                mode,
                points: master
                    .samples
                    .iter()
                    .map(|sample| (sample.t_ms / 1000.0, sample.fds as f64))
                    .collect(),
                window_s: (
                    phases.measure_start_ms / 1000.0,
                    phases.measure_end_ms / 1000.0,
                ),
            })
        })
        .collect()
}

/// ms from the kill to the first answer of a pid that first answered after it.
pub fn recovery_ms(report: &Report) -> Option<f64> {
    let killed_at = report.fault.as_ref()?.at_ms?;
    report
        .workers
        .by_pid
        .iter()
        .filter_map(|worker| worker.first_ms)
        .filter(|&first| first > killed_at)
        .map(|first| first - killed_at)
        .min_by(f64::total_cmp)
}

fn faults(runs: &[&Report]) -> Vec<FaultRow> {
    group(runs, mode)
        .into_iter()
        .filter_map(|(mode, runs)| {
            let killed: Vec<&Report> = runs
                .into_iter()
                .filter(|run| run.fault.as_ref().is_some_and(|f| f.at_ms.is_some()))
                .collect();
            let recoveries: Vec<f64> = killed.iter().filter_map(|run| recovery_ms(run)).collect();
            Some(FaultRow {
                rounds: killed.len(),
                failed: Spread::of(killed.iter().map(|run| run.requests.failed as f64))?,
                kinds: kinds(&killed),
                recovery_ms: Spread::of(recoveries),
                mode,
            })
        })
        .collect()
}

/// Section 8: "around an upgrade" begins this long before it began, ms.
pub const AROUND_BEFORE_MS: f64 = 100.0;
/// ... and ends this long after the later of the new master's `ready` and
/// the old master's exit, ms (the queue a start-up left behind drains).
pub const AROUND_AFTER_MS: f64 = 500.0;
/// Section 8's timeline chart: from this long before the first upgrade, s.
const TIMELINE_BEFORE_S: f64 = 0.5;
/// ... to this long after it began, s.
const TIMELINE_AFTER_S: f64 = 1.5;

/// Section 8: one mode upgraded by one strategy, over every run and upgrade.
#[derive(Debug, Clone)]
pub struct UpgradeRow {
    /// The mode.
    pub mode: Mode,
    /// How the master was replaced.
    pub strategy: Strategy,
    /// Upgrades made, all runs.
    pub upgrades: usize,
    /// The open-loop rate, requests/s (of the first run).
    pub rate_per_s: Option<f64>,
    /// Failed requests, all runs.
    pub failed: u64,
    /// Failures by kind, all runs, the kinds that occurred.
    pub kinds: Vec<(String, u64)>,
    /// Failed requests around each upgrade (see [`AROUND_BEFORE_MS`]).
    pub failed_per_upgrade: Option<Spread>,
    /// The longest latency around each upgrade, ms.
    pub longest_ms: Option<Spread>,
    /// The longest latency away from every upgrade, ms: what the load costs
    /// without one.
    pub away_ms: Option<f64>,
    /// From the new master's start to its `ready`, ms.
    pub ready_ms: Option<Spread>,
    /// From the upgrade's start to the old master's exit, ms.
    pub old_exit_ms: Option<Spread>,
    /// Old masters whose exit was not 0 (a signal, or a failure).
    pub old_exit_not_zero: usize,
    /// Workers' `--init-delay`, ms (of the first run).
    pub init_delay_ms: f64,
    /// `net.ipv4.tcp_migrate_req` where it ran (of the first run).
    pub tcp_migrate_req: Option<u8>,
    /// Whether it ran in a network namespace of its own.
    pub netns: bool,
    /// The kernel (of the first run).
    pub kernel: String,
}

/// One run's requests/s over time around its first upgrade, by generation.
#[derive(Debug, Clone)]
pub struct UpgradeTimeline {
    /// The mode.
    pub mode: Mode,
    /// How the master was replaced.
    pub strategy: Strategy,
    /// Answers/s of the old master's workers: (s from the upgrade's start,
    /// requests/s), one point per interval.
    pub old: Vec<(f64, f64)>,
    /// Answers/s of the new master's workers.
    pub new: Vec<(f64, f64)>,
    /// Failed requests/s.
    pub failed: Vec<(f64, f64)>,
    /// When it printed `ready`.
    pub new_ready_s: f64,
    /// When the old master exited.
    pub old_exit_s: f64,
}

/// The timeline intervals (index, slot) whose span overlaps `[from, to)`,
/// Unix ms.
fn intervals_within(
    timeline: &runs::Timeline,
    from: f64,
    to: f64,
) -> impl Iterator<Item = (usize, &runs::TimelineInterval)> {
    let width = timeline.interval_ms.max(f64::MIN_POSITIVE);
    timeline
        .intervals
        .iter()
        .enumerate()
        .filter(move |(index, _)| {
            let start = timeline.start_unix_ms + *index as f64 * width;
            start < to && start + width > from
        })
}

/// The span of `event` that counts as around it, Unix ms, ended at `next`
/// (the next upgrade's start) at the latest.
fn around(event: &runs::UpgradeEvent, next: Option<f64>) -> (f64, f64) {
    let settled = event.new_ready_ms.max(event.old_exit_ms) + AROUND_AFTER_MS;
    let to = event.at_unix_ms + settled;
    (
        event.at_unix_ms - AROUND_BEFORE_MS,
        next.map_or(to, |next| to.min(next - AROUND_BEFORE_MS)),
    )
}

/// Section 8's rows: per mode and strategy, the runs with an `upgrades`
/// block and a `timeline`.
fn upgrades(runs: &[&Report]) -> Vec<UpgradeRow> {
    let groups = group(runs, |run| {
        run.upgrades.as_ref()?;
        run.timeline.as_ref()?;
        Some((run.labels.mode?, run.labels.strategy?))
    });
    groups
        .into_iter()
        .filter_map(|((mode, strategy), runs)| {
            let first = runs[0].upgrades.as_ref()?;
            let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
            let (mut failed_around, mut longest, mut ready, mut exits) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut away: Option<u64> = None;
            let mut not_zero = 0;
            for run in &runs {
                let (Some(upgrades), Some(timeline)) = (&run.upgrades, &run.timeline) else {
                    continue;
                };
                for (kind, count) in &run.errors.by_kind {
                    if *count > 0 {
                        *kinds.entry(kind.clone()).or_default() += count;
                    }
                }
                let mut inside = vec![false; timeline.intervals.len()];
                for (index, event) in upgrades.events.iter().enumerate() {
                    let next = upgrades.events.get(index + 1).map(|next| next.at_unix_ms);
                    let (from, to) = around(event, next);
                    let mut failed = 0;
                    let mut most: Option<u64> = None;
                    for (at, slot) in intervals_within(timeline, from, to) {
                        inside[at] = true;
                        failed += slot.failed.values().sum::<u64>();
                        most = most.max(slot.max_latency_us);
                    }
                    failed_around.push(failed as f64);
                    if let Some(most) = most {
                        longest.push(most as f64 / 1000.0);
                    }
                    ready.push(event.new_ready_ms - event.new_start_ms);
                    exits.push(event.old_exit_ms);
                    not_zero += usize::from(event.old_exit_code != Some(0));
                }
                for (slot, inside) in timeline.intervals.iter().zip(inside) {
                    if !inside {
                        away = away.max(slot.max_latency_us);
                    }
                }
            }
            Some(UpgradeRow {
                mode,
                strategy,
                upgrades: ready.len(),
                rate_per_s: runs[0].parameters.rate_per_s,
                failed: runs.iter().map(|run| run.requests.failed).sum(),
                kinds: kinds.into_iter().collect(),
                failed_per_upgrade: Spread::of(failed_around),
                longest_ms: Spread::of(longest),
                away_ms: away.map(|us| us as f64 / 1000.0),
                ready_ms: Spread::of(ready),
                old_exit_ms: Spread::of(exits),
                old_exit_not_zero: not_zero,
                init_delay_ms: first.init_delay_ms,
                tcp_migrate_req: first.tcp_migrate_req,
                netns: first.netns,
                kernel: first.kernel.clone(),
            })
        })
        .collect()
}

/// Section 8's chart: for `handoff-reuseport` (every strategy applies to
/// it), else the first mode upgraded, the first run of each strategy
/// around its first upgrade.
fn upgrade_timelines(runs: &[&Report]) -> Vec<UpgradeTimeline> {
    let usable: Vec<&Report> = runs
        .iter()
        .copied()
        .filter(|run| {
            run.timeline.is_some()
                && run.upgrades.as_ref().is_some_and(|u| !u.events.is_empty())
                && run.labels.strategy.is_some()
        })
        .collect();
    let reuseport = Mode::HandoffReuseport;
    let Some(mode) = usable
        .iter()
        .filter_map(|run| run.labels.mode)
        .find(|mode| *mode == reuseport)
        .or_else(|| usable.iter().filter_map(|run| run.labels.mode).min())
    else {
        return Vec::new();
    };
    let by_strategy = group(&usable, |run| {
        (run.labels.mode == Some(mode)).then_some(run.labels.strategy)?
    });
    by_strategy
        .into_iter()
        .filter_map(|(strategy, runs)| {
            let run = runs[0];
            let (timeline, upgrades) = (run.timeline.as_ref()?, run.upgrades.as_ref()?);
            let event = upgrades.events.first()?;
            let per_s = 1000.0 / timeline.interval_ms.max(f64::MIN_POSITIVE);
            let (mut old, mut new, mut failed) = (Vec::new(), Vec::new(), Vec::new());
            let from = event.at_unix_ms - TIMELINE_BEFORE_S * 1000.0;
            let next = upgrades
                .events
                .get(1)
                .map_or(f64::INFINITY, |next| next.at_unix_ms - AROUND_BEFORE_MS);
            let to = (event.at_unix_ms + TIMELINE_AFTER_S * 1000.0).min(next);
            for (index, slot) in intervals_within(timeline, from, to) {
                let middle = timeline.start_unix_ms + (index as f64 + 0.5) * timeline.interval_ms;
                let t = (middle - event.at_unix_ms) / 1000.0;
                let of = |pids: &[u32]| -> f64 {
                    slot.ok_by_pid
                        .iter()
                        .filter(|(pid, _)| pids.contains(pid))
                        .map(|(_, count)| *count as f64)
                        .sum::<f64>()
                        * per_s
                };
                old.push((t, of(&event.old_workers)));
                new.push((t, of(&event.new_workers)));
                failed.push((t, slot.failed.values().sum::<u64>() as f64 * per_s));
            }
            Some(UpgradeTimeline {
                mode,
                strategy,
                old,
                new,
                failed,
                new_ready_s: event.new_ready_ms / 1000.0,
                old_exit_s: event.old_exit_ms / 1000.0,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use runs::labels::Label;
    use runs::{Fairness, Fault, SpectrumPoint, WorkerShare};

    /// A small synthetic report read from JSON-like figures, labelled.
    pub(crate) fn run(labels: &[(&str, &str)], per_s: f64, p99_us: u64) -> Report {
        let mut report: Report = serde_json::from_str(SKELETON).expect("the skeleton is a report");
        report.labels = labels
            .iter()
            .map(|(key, value)| Label::parse(key, value).expect("a label of the contract"))
            .collect();
        report.requests.per_s = per_s;
        let summary = report.latency.request.as_mut().expect("a histogram");
        summary.p99_us = p99_us;
        summary.spectrum = vec![
            SpectrumPoint {
                percentile: 50.0,
                value_us: 100,
            },
            SpectrumPoint {
                percentile: 90.0,
                value_us: 200,
            },
            SpectrumPoint {
                percentile: 99.0,
                value_us: p99_us,
            },
            SpectrumPoint {
                percentile: 100.0,
                value_us: p99_us * 2,
            },
        ];
        report
    }

    /// A report with every part, figures to be overwritten.
    const SKELETON: &str = r#"{
      "format": "loadgen-report/1", "loadgen_version": "0", "started_at": "2026-01-01T00:00:00Z",
      "parameters": {"target": "http://127.0.0.1:1/", "loop": "closed", "connections": 10,
        "threads": 1, "duration_s": 1, "warmup_s": 0, "rate_per_s": null, "new_conn": false,
        "timeout_s": 5, "sample_interval_ms": 100, "watch": [1], "command_line": []},
      "machine": {"cpu_model": "cpu", "cores": 2, "kernel": "6", "os": "linux"},
      "fd_limit": {"soft_at_start": 1024, "soft": 1024, "hard": 1024},
      "phases": {"measure_start_ms": 0, "measure_end_ms": 1000, "run_end_ms": 1000},
      "requests": {"ok": 1000, "failed": 0, "per_s": 1000, "asked_per_s": null,
        "achieved_ratio": null, "scheduled": null, "unanswered_at_end": 0, "connections_opened": 0},
      "latency": {"measured_from": "send", "request": {"count": 1000, "min_us": 1, "max_us": 10,
        "mean_us": 5, "stdev_us": 1, "p50_us": 100, "p90_us": 200, "p99_us": 300, "p99_9_us": 400,
        "p99_99_us": 500, "spectrum": [{"percentile": 100, "value_us": 10}]},
        "request_uncorrected": null, "connect": null},
      "workers": {"by_pid": [], "requests_without_pid": 0, "requests_fairness": null,
        "connections_fairness": null},
      "errors": {"total": 0, "by_kind": {}, "statuses": {}},
      "watch": [{"pid": 1, "gone_at_ms": null, "error": null,
        "summary": {"samples": 2, "fds_max": 10, "fds_mean": 10, "rss_max_bytes": 1000,
          "rss_mean_bytes": 1000, "cpu_user_ms": 1, "cpu_system_ms": 1, "cpu_cores": 0.1,
          "cpu_ms_per_1000_requests": 3.0},
        "processes": [{"pid": 1, "ppid": 0, "name": "proxy", "role": "watched",
          "summary": {"samples": 2, "fds_max": 10, "fds_mean": 10, "rss_max_bytes": 1000,
            "rss_mean_bytes": 1000, "cpu_user_ms": 1, "cpu_system_ms": 1, "cpu_cores": 0.1,
            "cpu_ms_per_1000_requests": 2.0},
          "samples": [{"t_ms": 0, "fds": 10, "rss_bytes": 1000, "cpu_user_ms": 0, "cpu_system_ms": 0}]}]}],
      "labels": {}, "fault": null, "notes": []
    }"#;

    fn set_master_fds(run: &mut Report, fds: usize) {
        run.watch[0].processes[0].summary.fds_max = fds;
    }

    /// The host of a target URL, and whether it is loopback.
    #[test]
    fn hosts_of_targets() {
        assert_eq!(host_of("http://127.0.0.1:8080/?work_us=0"), "127.0.0.1");
        assert_eq!(host_of("http://[::1]:8080/"), "::1");
        assert_eq!(host_of("http://localhost/"), "localhost");
        assert_eq!(host_of("http://10.0.0.5"), "10.0.0.5");
        assert!(is_loopback("127.0.0.2") && is_loopback("::1") && is_loopback("localhost"));
        assert!(!is_loopback("10.0.0.5") && !is_loopback("example.com"));
    }

    /// Medians of odd and even counts, min and max; nothing from nothing.
    #[test]
    fn spreads() {
        let spread = Spread::of([3.0, 1.0, 2.0]).expect("values");
        assert_eq!(
            (spread.median, spread.min, spread.max, spread.count),
            (2.0, 1.0, 3.0, 3)
        );
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(Spread::of([]), None);
    }

    /// Throughput groups by mode and load in the suite's order; requests/s is the
    /// median over rounds with its min–max, latencies the median of each round's.
    #[test]
    fn throughput_groups_by_mode_and_load() {
        let label = |mode, load, round| {
            vec![
                ("section", "throughput"),
                ("mode", mode),
                ("load", load),
                ("round", round),
            ]
        };
        let runs = vec![
            run(&label("handoff-socket", "keepalive", "1"), 900.0, 300),
            run(&label("proxy", "keepalive", "1"), 100.0, 900),
            run(&label("proxy", "keepalive", "2"), 300.0, 700),
            run(&label("proxy", "keepalive", "3"), 200.0, 800),
            run(&label("proxy", "newconn", "1"), 50.0, 2000),
            run(&[("section", "fdbill"), ("mode", "proxy")], 1.0, 1),
        ];
        let figures = Figures::of(&runs);
        let rows: Vec<(Mode, Load)> = figures
            .throughput
            .iter()
            .map(|row| (row.mode, row.load))
            .collect();
        assert_eq!(
            rows,
            [
                (Mode::Proxy, Load::KeepAlive),
                (Mode::Proxy, Load::NewConn),
                (Mode::HandoffSocket, Load::KeepAlive)
            ]
        );
        let proxy = &figures.throughput[0];
        assert_eq!(
            (proxy.per_s.median, proxy.per_s.min, proxy.per_s.max),
            (200.0, 100.0, 300.0)
        );
        assert_eq!(proxy.p99_us, Some(800.0));
        assert_eq!(figures.runs, 6);
        assert_eq!(figures.machines.len(), 1);
        // No openloop: the chart falls back to keep-alive, one line per mode.
        let (load, lines) = figures.spectra.expect("a chart");
        assert_eq!(load, Load::KeepAlive);
        assert_eq!(lines.len(), 2);
        let proxy_line = &lines[0];
        assert_eq!(proxy_line.mode, Mode::Proxy);
        // At p50 every round says 100 µs; at p99 (2 nines) the median round's 800.
        let at = |nines_wanted: f64| {
            proxy_line
                .points
                .iter()
                .find(|(x, _)| (x - nines_wanted).abs() < 0.026)
                .expect("a point")
                .1
        };
        assert_eq!(at(nines(50.0)), 100.0);
        assert_eq!(at(2.0), 800.0);
        // 1000 samples resolve 3 nines, no more.
        assert!(proxy_line.points.last().expect("points").0 <= 3.0 + 1e-9);
    }

    /// The fd bill's slope: 2 fds per connection for the proxy, 0 for a handoff.
    #[test]
    fn fd_bill_slopes() {
        let mut runs = Vec::new();
        for n in [100u64, 500, 1000] {
            for (mode, fds) in [("proxy", 12 + 2 * n as usize), ("handoff-socket", 9)] {
                let n_label = n.to_string();
                let mut run = run(
                    &[
                        ("section", "fdbill"),
                        ("mode", mode),
                        ("connections", &n_label),
                    ],
                    1.0,
                    1,
                );
                set_master_fds(&mut run, fds);
                runs.push(run);
            }
        }
        let figures = Figures::of(&runs);
        assert_eq!(figures.fd_bill.len(), 6);
        assert_eq!(figures.fd_bill[0].mode, Mode::Proxy);
        assert_eq!(figures.fd_bill[0].master_fds, Some(212.0));
        let slopes: Vec<(Mode, f64, f64)> = figures
            .fd_slopes
            .iter()
            .map(|s| (s.mode, s.fds_per_connection, s.base_fds))
            .collect();
        assert_eq!(slopes.len(), 2);
        assert!((slopes[0].1 - 2.0).abs() < 1e-9 && (slopes[0].2 - 12.0).abs() < 1e-6);
        assert!(slopes[1].1.abs() < 1e-9 && (slopes[1].2 - 9.0).abs() < 1e-6);
    }

    /// The fd limit: the most N without errors and the first N with errors.
    #[test]
    fn fd_limit_finds_the_edge() {
        let runs: Vec<Report> = [(50u64, 0u64), (100, 0), (150, 30), (200, 80)]
            .into_iter()
            .map(|(n, failed)| {
                let n_label = n.to_string();
                let mut run = run(
                    &[
                        ("section", "fdlimit"),
                        ("mode", "proxy"),
                        ("connections", &n_label),
                        ("max_fds", "256"),
                    ],
                    1.0,
                    1,
                );
                run.requests.failed = failed;
                run.errors.by_kind.insert("timeout".to_owned(), failed);
                run
            })
            .collect();
        let figures = Figures::of(&runs);
        let row = &figures.fd_limit[0];
        assert_eq!(row.max_fds, Some(256));
        assert_eq!(row.most_without_errors, Some(100));
        assert_eq!(row.first_with_errors, Some(150));
        assert_eq!(row.tried[2].kinds, vec![("timeout".to_owned(), 30)]);
    }

    /// Fairness: shares by rank, medians over rounds whatever the pids were.
    #[test]
    fn fairness_ranks_shares() {
        let runs: Vec<Report> = [(10u32, 0.7), (20, 0.6), (30, 0.8)]
            .into_iter()
            .map(|(pid, top)| {
                let mut run = run(
                    &[
                        ("section", "fairness"),
                        ("mode", "handoff-listener"),
                        ("load", "keepalive"),
                        ("work_us", "100"),
                    ],
                    1.0,
                    1,
                );
                let share = |pid, requests_share: f64| WorkerShare {
                    pid,
                    requests: (requests_share * 100.0).round() as u64,
                    requests_share,
                    connections: 0,
                    first_ms: None,
                    last_ms: None,
                    latency: None,
                };
                run.workers.by_pid = vec![share(pid, 1.0 - top), share(pid + 1, top)];
                run.workers.requests_fairness =
                    Fairness::of(&[((1.0 - top) * 100.0) as u64, (top * 100.0) as u64]);
                run
            })
            .collect();
        let figures = Figures::of(&runs);
        let row = &figures.fairness[0];
        assert_eq!(
            (row.variant.mode, row.load, row.workers),
            (Mode::HandoffListener, Load::KeepAlive, 2)
        );
        let shares = &row.request_shares;
        assert_eq!(shares.len(), 2);
        assert!((shares[0] - 0.7).abs() < 1e-9 && (shares[1] - 0.3).abs() < 1e-9);
        let jain = row.requests_jain.expect("jain");
        assert!(jain.max < 1.0 && jain.count == 3);
    }

    /// Fairness: a worker that answered nothing (label `workers`) counts as
    /// zero: Jain's index 1/n, not 1.0 (issue 13), and a share of 0.
    #[test]
    fn fairness_counts_a_silent_worker() {
        let mut run = run(
            &[
                ("section", "fairness"),
                ("mode", "handoff-listener"),
                ("load", "keepalive"),
                ("workers", "2"),
            ],
            1.0,
            1,
        );
        run.workers.by_pid = vec![WorkerShare {
            pid: 7,
            requests: 500,
            requests_share: 1.0,
            connections: 50,
            first_ms: None,
            last_ms: None,
            latency: None,
        }];
        let figures = Figures::of(&[run]);
        let row = &figures.fairness[0];
        assert_eq!(row.request_shares, vec![1.0, 0.0]);
        assert_eq!(row.connection_shares, vec![1.0, 0.0]);
        assert!((row.requests_jain.expect("jain").median - 0.5).abs() < 1e-9);
        assert!((row.connections_jain.expect("jain").median - 0.5).abs() < 1e-9);
        assert_eq!(row.least_share.expect("least").median, 0.0);
    }

    /// Faults: the recovery runs from the kill to the first answer of a pid that
    /// had not answered before it.
    #[test]
    fn faults_measure_recovery() {
        let mut killed = run(&[("section", "faults"), ("mode", "proxy")], 1.0, 1);
        killed.fault = Some(Fault {
            pid: 7,
            at_ms: Some(1000.0),
            error: None,
        });
        let share = |pid, first, last| WorkerShare {
            pid,
            requests: 1,
            requests_share: 0.5,
            connections: 0,
            first_ms: Some(first),
            last_ms: Some(last),
            latency: None,
        };
        killed.workers.by_pid = vec![
            share(7, 100.0, 999.0),
            share(8, 100.0, 2000.0),
            share(9, 1250.0, 2000.0),
        ];
        killed.requests.failed = 4;
        assert_eq!(recovery_ms(&killed), Some(250.0));
        let mut no_kill = run(&[("section", "faults"), ("mode", "proxy")], 1.0, 1);
        no_kill.fault = None;
        let figures = Figures::of(&[killed, no_kill]);
        let row = &figures.faults[0];
        assert_eq!(row.rounds, 1);
        assert_eq!(row.failed.median, 4.0);
        assert_eq!(row.recovery_ms.map(|r| r.median), Some(250.0));
    }

    /// A watched process: `pid`, child of `ppid` (0: the watched root), with
    /// `us` µs of CPU per request, `fds` fds and `rss` bytes at most.
    fn process(pid: u32, ppid: u32, us: f64, fds: usize, rss: u64) -> ProcessReport {
        let mut process = SKELETON_RUN.with(|run| run.watch[0].processes[0].clone());
        process.pid = pid;
        process.ppid = ppid;
        process.role = if ppid == 0 {
            Role::Watched
        } else {
            Role::Child
        };
        process.summary.cpu_ms_per_1000_requests = Some(us);
        process.summary.fds_max = fds;
        process.summary.rss_max_bytes = rss;
        process
    }

    thread_local! {
        static SKELETON_RUN: Report = run(&[], 1.0, 1);
    }

    /// Sets watch entry `index` to the tree of `processes` (the first its
    /// root), its summary the sums.
    fn watch_tree(run: &mut Report, index: usize, processes: Vec<ProcessReport>) {
        let mut tree = run.watch[0].clone();
        tree.pid = processes[0].pid;
        tree.summary.fds_max = processes.iter().map(|p| p.summary.fds_max).sum();
        tree.summary.rss_max_bytes = processes.iter().map(|p| p.summary.rss_max_bytes).sum();
        tree.summary.cpu_ms_per_1000_requests = Some(
            processes
                .iter()
                .filter_map(|p| p.summary.cpu_ms_per_1000_requests)
                .sum(),
        );
        tree.processes = processes;
        if index < run.watch.len() {
            run.watch[index] = tree;
        } else {
            run.watch.push(tree);
        }
    }

    fn throughput_run(mode: &str, load: &str, round: &str) -> Report {
        run(
            &[
                ("section", "throughput"),
                ("mode", mode),
                ("load", load),
                ("round", round),
            ],
            1.0,
            1,
        )
    }

    /// Cost per request: the master is the first watch's root, the workers
    /// every other watched process of every entry, the tree both; for
    /// `direct` the master is not in the path and the tree is the workers;
    /// loadgen's own from `loadgen_usage`, absent in old runs.
    #[test]
    fn cost_per_request_of_master_workers_tree_and_loadgen() {
        let mut proxy = throughput_run("proxy", "keepalive", "1");
        watch_tree(
            &mut proxy,
            0,
            vec![
                process(10, 0, 10.0, 1, 1),
                process(11, 10, 4.0, 1, 1),
                process(12, 10, 3.0, 1, 1),
            ],
        );
        proxy.loadgen_usage = Some(runs::LoadgenUsage {
            cpu_user_ms: 1.0,
            cpu_system_ms: 1.0,
            cpu_ms_per_1000_requests: Some(6.5),
        });
        assert_eq!(
            run_cost(&proxy),
            RunCost {
                master_us: Some(10.0),
                workers_us: Some(7.0),
                tree_us: Some(17.0),
                loadgen_us: Some(6.5),
            }
        );
        let mut direct = throughput_run("direct", "keepalive", "1");
        watch_tree(
            &mut direct,
            0,
            vec![
                process(20, 0, 0.5, 1, 1),
                process(21, 20, 4.0, 1, 1),
                process(22, 20, 4.0, 1, 1),
            ],
        );
        assert_eq!(
            run_cost(&direct),
            RunCost {
                master_us: None,
                workers_us: Some(8.0),
                tree_us: Some(8.0),
                loadgen_us: None,
            }
        );
        // nginx: --watch nginx --watch <proxy master>: the whole tree is both.
        let mut nginx = throughput_run("nginx", "keepalive", "1");
        watch_tree(
            &mut nginx,
            0,
            vec![process(30, 0, 1.0, 1, 1), process(31, 30, 9.0, 1, 1)],
        );
        watch_tree(
            &mut nginx,
            1,
            vec![
                process(40, 0, 0.0, 1, 1),
                process(41, 40, 3.0, 1, 1),
                process(42, 40, 3.0, 1, 1),
            ],
        );
        let cost = run_cost(&nginx);
        assert_eq!((cost.master_us, cost.tree_us), (Some(1.0), Some(16.0)));
        // Over rounds: the median and min–max per mode and load.
        let mut proxy2 = proxy.clone();
        proxy2.labels.round = Some(2);
        proxy2.watch[0].processes[0]
            .summary
            .cpu_ms_per_1000_requests = Some(14.0);
        let mut proxy3 = proxy.clone();
        proxy3.labels.round = Some(3);
        proxy3.watch[0].processes[0]
            .summary
            .cpu_ms_per_1000_requests = Some(12.0);
        let figures = Figures::of(&[proxy, proxy2, proxy3, direct, nginx]);
        let rows: Vec<(Mode, Option<f64>, Option<f64>)> = figures
            .cost
            .iter()
            .map(|row| {
                (
                    row.mode,
                    row.master_us.map(|s| s.median),
                    row.tree_us.map(|s| s.median),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (Mode::Proxy, Some(12.0), Some(19.0)),
                (Mode::Direct, None, Some(8.0)),
                (Mode::Nginx, Some(1.0), Some(16.0)),
            ]
        );
        let proxy_row = &figures.cost[0];
        assert_eq!(proxy_row.rounds, 3);
        let tree = proxy_row.tree_us.expect("a tree");
        assert_eq!((tree.min, tree.max), (17.0, 21.0));
        assert!(!figures.cost[2].nginx_alone);
        assert_eq!(figures.rounds.get(&Section::Throughput), Some(&(1, 3)));
        assert_eq!(figures.master_fds.len(), 0, "keep-alive only");
        // With a new connection per request, the baseline has no master fds
        // to draw: its watched master is not in the path.
        let newconn = Figures::of(&[
            throughput_run("direct", "newconn", "1"),
            throughput_run("proxy", "newconn", "1"),
        ]);
        let drawn: Vec<Mode> = newconn.master_fds.iter().map(|s| s.mode).collect();
        assert_eq!(drawn, [Mode::Proxy]);
    }

    /// nginx watched alone (old runs) is flagged: its row is not a whole tree.
    #[test]
    fn nginx_watched_alone_is_flagged() {
        let nginx = throughput_run("nginx", "newconn", "1");
        let figures = Figures::of(&[nginx]);
        assert!(figures.cost[0].nginx_alone);
        assert_eq!(figures.master_fds.len(), 1);
        assert_eq!(figures.peers, vec![Mode::Nginx]);
    }

    /// The fd bill of the whole tree: the proxy's master holds 2 fds per
    /// connection and each worker 1 (the tree 3); a handoff master none and
    /// its workers 1 each connection they serve (the tree 1).
    #[test]
    fn fd_bill_of_the_whole_tree() {
        let mut runs = Vec::new();
        for n in [100usize, 1000, 2000] {
            for (mode, master, per_worker) in [
                ("proxy", 16 + 2 * n, 10 + n / 2),
                ("handoff-listener", 12, 10 + n / 2),
            ] {
                let n_label = n.to_string();
                let mut run = run(
                    &[
                        ("section", "fdbill"),
                        ("mode", mode),
                        ("connections", &n_label),
                    ],
                    1.0,
                    1,
                );
                watch_tree(
                    &mut run,
                    0,
                    vec![
                        process(1, 0, 0.0, master, 4 << 20),
                        process(2, 1, 0.0, per_worker, 3 << 20),
                        process(3, 1, 0.0, per_worker, 3 << 20),
                    ],
                );
                runs.push(run);
            }
        }
        let figures = Figures::of(&runs);
        let proxy_2000 = figures
            .fd_bill
            .iter()
            .find(|row| row.mode == Mode::Proxy && row.connections == 2000)
            .expect("a row");
        assert_eq!(proxy_2000.master_fds, Some(4016.0));
        assert_eq!(proxy_2000.workers_fds, Some(2020.0));
        assert_eq!(proxy_2000.tree_fds, Some(6036.0));
        assert_eq!(proxy_2000.workers_rss_bytes, Some(f64::from(6u32 << 20)));
        let slope = |mode: Mode| {
            let slope = figures
                .fd_slopes
                .iter()
                .find(|slope| slope.mode == mode)
                .expect("a slope");
            (slope.fds_per_connection, slope.tree.expect("a tree").0)
        };
        let (master, tree) = slope(Mode::Proxy);
        assert!((master - 2.0).abs() < 1e-9 && (tree - 3.0).abs() < 1e-9);
        let (master, tree) = slope(Mode::HandoffListener);
        assert!(master.abs() < 1e-9 && (tree - 1.0).abs() < 1e-9);
        // Under the usual soft limit of 1,024 fds, a master with 16 and 2 per
        // connection serves 504 connections; one with none, any number.
        assert_eq!(connections_at_limit(1024.0, 16.0, 2.0), Some(504.0));
        assert_eq!(connections_at_limit(1024.0, 12.0, 0.0), None);
    }

    /// Two modes rank only when their ranges over rounds do not overlap; a
    /// single round does not rank.
    #[test]
    fn ranking_needs_ranges_that_do_not_overlap() {
        let spread = |values: &[f64]| Spread::of(values.iter().copied()).expect("values");
        let listener = spread(&[126_000.0, 191_000.0, 215_000.0]);
        let socket = spread(&[114_000.0, 131_000.0, 146_000.0]);
        let proxy = spread(&[64_000.0, 71_000.0, 72_000.0]);
        assert_eq!(Order::of(&listener, &socket), Order::Overlap);
        assert_eq!(Order::of(&listener, &proxy), Order::Above);
        assert_eq!(Order::of(&proxy, &socket), Order::Below);
        assert_eq!(Order::of(&spread(&[1.0]), &proxy), Order::OneRound);
    }

    /// The proxy's capacity under --max-fds from its steps with errors: N −
    /// failed served at once, and (limit − open − spare) / 2 from its fds.
    #[test]
    fn fd_limit_capacity_from_the_failing_steps() {
        let runs: Vec<Report> = [(100u64, 0u64, 216usize), (150, 38, 240), (200, 88, 240)]
            .into_iter()
            .map(|(n, failed, fds)| {
                let n_label = n.to_string();
                let mut run = run(
                    &[
                        ("section", "fdlimit"),
                        ("mode", "proxy"),
                        ("connections", &n_label),
                        ("max_fds", "256"),
                    ],
                    1.0,
                    1,
                );
                run.requests.failed = failed;
                run.errors.by_kind.insert("timeout".to_owned(), failed);
                set_master_fds(&mut run, fds);
                run
            })
            .collect();
        let figures = Figures::of(&runs);
        let capacity = figures.fd_limit[0].capacity.expect("a capacity");
        assert_eq!(
            capacity,
            Capacity {
                connections: 112,
                steady: true,
                timeouts_only: true,
                open_and_spare: Some((16, 16)),
            }
        );
        assert_eq!(figures.rounds.get(&Section::FdLimit), Some(&(1, 1)));
    }

    /// Jain's index counts the master's children that answered nothing even
    /// without the `workers` label: one pid answering of two is not 1.0.
    #[test]
    fn fairness_counts_silent_children_without_the_label() {
        let mut run = run(
            &[
                ("section", "fairness"),
                ("mode", "handoff-reuseport"),
                ("load", "newconn"),
            ],
            1.0,
            1,
        );
        watch_tree(
            &mut run,
            0,
            vec![
                process(1, 0, 0.0, 1, 1),
                process(2, 1, 0.0, 1, 1),
                process(3, 1, 0.0, 1, 1),
            ],
        );
        run.workers.by_pid = vec![WorkerShare {
            pid: 2,
            requests: 500,
            requests_share: 1.0,
            connections: 50,
            first_ms: None,
            last_ms: None,
            latency: None,
        }];
        let figures = Figures::of(&[run]);
        let jain = figures.fairness[0].requests_jain.expect("jain");
        assert!((jain.median - 0.5).abs() < 1e-9);
    }

    /// A sweep run of `mode` under `load` at `rate`/s offered: `achieved`/s,
    /// p99 `p99_us` corrected and `sent_us` as sent, `failed` requests.
    pub(crate) fn sweep_run(
        mode: &str,
        load: &str,
        rate: u64,
        achieved: f64,
        (p99_us, sent_us): (u64, u64),
        failed: u64,
    ) -> Report {
        let rate_label = rate.to_string();
        let mut run = run(
            &[
                ("section", "sweep"),
                ("mode", mode),
                ("load", load),
                ("rate", &rate_label),
            ],
            achieved,
            p99_us,
        );
        run.parameters.rate_per_s = Some(rate as f64);
        run.requests.asked_per_s = Some(rate as f64);
        run.requests.failed = failed;
        let mut as_sent = run.latency.request.clone().expect("a histogram");
        as_sent.p99_us = sent_us;
        run.latency.request_uncorrected = Some(as_sent);
        run
    }

    /// The sweep: steps by offered rate; a step is held with ≥ 95 % of the
    /// offered rate achieved and no error; the capacity at an SLO is the
    /// highest rate up to which every step was held within it, "not
    /// reached" when the top step was, none when the lightest missed.
    #[test]
    fn sweep_capacity_at_an_slo() {
        let runs = vec![
            // proxy: 1 ms up to 2,000/s, 10 ms up to 4,000/s, then behind.
            sweep_run("proxy", "keepalive", 4_000, 3_990.0, (4_000, 900), 0),
            sweep_run("proxy", "keepalive", 1_000, 1_000.0, (300, 290), 0),
            sweep_run("proxy", "keepalive", 2_000, 2_000.0, (900, 850), 0),
            sweep_run("proxy", "keepalive", 8_000, 6_000.0, (90_000, 2_000), 0),
            // A step at p99 ≤ 1 ms but 94 % achieved is not held.
            sweep_run("handoff-socket", "keepalive", 1_000, 1_000.0, (200, 200), 0),
            sweep_run("handoff-socket", "keepalive", 2_000, 1_880.0, (500, 500), 0),
            sweep_run("handoff-socket", "keepalive", 4_000, 4_000.0, (500, 500), 0),
            // Errors fail a step whatever its latency; then a lucky step
            // above does not count.
            sweep_run("direct", "keepalive", 1_000, 1_000.0, (200, 200), 1),
            sweep_run("direct", "keepalive", 2_000, 2_000.0, (200, 200), 0),
            // Every step within 10 ms: not reached.
            sweep_run("proxy", "newconn", 500, 500.0, (2_000, 2_000), 0),
            sweep_run("proxy", "newconn", 1_000, 999.0, (3_000, 2_900), 0),
        ];
        // Every request answered, but late: p50 500 ms against 1 ms as sent
        // (the server fell behind the schedule): not held, whatever p99.
        let mut late = sweep_run(
            "handoff-listener",
            "keepalive",
            1_000,
            1_000.0,
            (900, 900),
            0,
        );
        if let Some(corrected) = late.latency.request.as_mut() {
            corrected.p50_us = 500_000;
        }
        if let Some(sent) = late.latency.request_uncorrected.as_mut() {
            sent.p50_us = 1_000;
        }
        let mut runs = runs;
        runs.push(late);
        let figures = Figures::of(&runs);
        let line = |mode: Mode, load: Load| {
            figures
                .sweep
                .iter()
                .find(|line| line.mode == mode && line.load == load)
                .expect("a sweep line")
        };
        let listener = line(Mode::HandoffListener, Load::KeepAlive);
        assert!(
            !listener.steps[0].held(),
            "answered late: behind the schedule"
        );
        assert_eq!(listener.capacity(10_000.0), SloCapacity::None);
        let proxy = line(Mode::Proxy, Load::KeepAlive);
        let offered: Vec<f64> = proxy.steps.iter().map(|s| s.offered_per_s).collect();
        assert_eq!(
            offered,
            [1_000.0, 2_000.0, 4_000.0, 8_000.0],
            "sorted by rate"
        );
        assert_eq!(proxy.steps[3].achieved_per_s, 6_000.0);
        assert!(!proxy.steps[3].held());
        assert_eq!(proxy.capacity(1_000.0), SloCapacity::Held(2_000.0));
        assert_eq!(proxy.capacity(10_000.0), SloCapacity::Held(4_000.0));
        let socket = line(Mode::HandoffSocket, Load::KeepAlive);
        assert!(!socket.steps[1].held(), "94 % of the offered rate");
        assert_eq!(socket.capacity(1_000.0), SloCapacity::Held(1_000.0));
        let direct = line(Mode::Direct, Load::KeepAlive);
        assert_eq!(direct.capacity(10_000.0), SloCapacity::None);
        let newconn = line(Mode::Proxy, Load::NewConn);
        assert_eq!(newconn.capacity(10_000.0), SloCapacity::NotReached(1_000.0));
        assert_eq!(newconn.capacity(1_000.0), SloCapacity::None);
        assert_eq!(figures.rounds.get(&Section::Sweep), Some(&(1, 1)));
        assert!(figures.throughput.is_empty(), "sweep runs are not §1's");
    }

    /// The 10× rule: a step whose corrected p99 is at least 10 times its p99
    /// as sent had requests waiting to be sent; 9× does not count.
    #[test]
    fn sweep_waiting_steps_by_the_ten_times_rule() {
        let runs = vec![
            sweep_run("node-rr", "keepalive", 1_000, 1_000.0, (900, 100), 0),
            sweep_run("node-rr", "keepalive", 2_000, 1_990.0, (1_000, 100), 0),
            sweep_run("node-rr", "keepalive", 4_000, 3_000.0, (104_000, 3_000), 0),
        ];
        let figures = Figures::of(&runs);
        let line = &figures.sweep[0];
        let waiting: Vec<f64> = line.waiting().map(|step| step.offered_per_s).collect();
        assert_eq!(waiting, [2_000.0, 4_000.0]);
        assert_eq!(line.steps[2].p99_sent_us, Some(3_000.0));
        // Without the uncorrected histogram (a closed loop), no claim.
        let mut closed = line.steps[2].clone();
        closed.p99_sent_us = None;
        assert!(!closed.waiting());
    }

    /// The strip chart's dots: every round's requests/s and tree µs per
    /// request, in round order.
    #[test]
    fn every_round_in_round_order() {
        let runs: Vec<Report> = [("2", 300.0), ("1", 100.0), ("3", 200.0)]
            .into_iter()
            .map(|(round, per_s)| {
                let mut run = throughput_run("proxy", "keepalive", round);
                run.requests.per_s = per_s;
                run.watch[0].processes[0].summary.cpu_ms_per_1000_requests = Some(per_s / 10.0);
                run
            })
            .collect();
        let figures = Figures::of(&runs);
        assert_eq!(figures.throughput[0].every_round, [100.0, 300.0, 200.0]);
        assert_eq!(figures.cost[0].every_round_tree_us, [10.0, 30.0, 20.0]);
    }

    /// Open loop: the asked rate is kept apart from the achieved, and the
    /// rounds whose corrected p99 is ≥ 10× the uncorrected are counted.
    #[test]
    fn open_loop_keeps_asked_apart_and_counts_waiting_rounds() {
        let runs: Vec<Report> = [(104_255u64, 4_375u64), (122_000, 4_000), (3_600, 3_000)]
            .into_iter()
            .enumerate()
            .map(|(round, (corrected, uncorrected))| {
                let round = (round + 1).to_string();
                let mut run = throughput_run("node-rr", "openloop", &round);
                run.requests.asked_per_s = Some(27_345.0);
                run.requests.per_s = 27_000.0;
                let summary = run.latency.request.clone().expect("a histogram");
                run.latency.request.as_mut().expect("a histogram").p99_us = corrected;
                let mut as_sent = summary;
                as_sent.p99_us = uncorrected;
                run.latency.request_uncorrected = Some(as_sent);
                run
            })
            .collect();
        let figures = Figures::of(&runs);
        let row = &figures.throughput[0];
        assert_eq!(row.asked_per_s.map(|s| s.median), Some(27_345.0));
        assert_eq!(row.per_s.median, 27_000.0);
        assert_eq!(row.waiting_rounds, 2);
        assert_eq!(row.p99.map(|s| (s.min, s.max)), Some((3_600.0, 122_000.0)));
    }

    /// A worker's share with a latency histogram whose p99 is `p99_us`.
    fn worker(pid: u32, requests: u64, share: f64, p99_us: u64) -> WorkerShare {
        let mut latency = run(&[], 1.0, p99_us)
            .latency
            .request
            .expect("the skeleton has a histogram");
        latency.count = requests;
        WorkerShare {
            pid,
            requests,
            requests_share: share,
            connections: requests,
            first_ms: None,
            last_ms: None,
            latency: Some(latency),
        }
    }

    /// §4: the spread, stall and mix runs of one folder fall into their own
    /// rows, by way of sharing the port (`accept`), cluster size and round.
    #[test]
    fn fairness_sorts_spread_stall_and_mix_runs() {
        let labels = |accept: &'static str, round: &'static str| {
            vec![
                ("section", "fairness"),
                ("mode", "handoff-listener"),
                ("accept", accept),
                ("load", "newconn"),
                ("workers", "4"),
                ("round", round),
            ]
        };
        let mut runs = Vec::new();
        for (round, stalled_p99) in [("1", 400_000), ("2", 450_000)] {
            // Spread: two of four workers answered, 3:1.
            let mut spread = run(&labels("exclusive", round), 1.0, 1);
            spread.workers.by_pid = vec![worker(10, 300, 0.75, 900), worker(11, 100, 0.25, 900)];
            runs.push(spread);
            // Stall: worker 10 stopped; its p99 is the stall's.
            let mut stall = run(
                &[labels("blocking", round), vec![("stall_ms", "500")]].concat(),
                1.0,
                20_000,
            );
            stall.workers.by_pid = vec![
                worker(10, 50, 0.1, stalled_p99),
                worker(11, 150, 0.3, 800),
                worker(12, 150, 0.3, 1_200),
                worker(13, 150, 0.3, 700),
            ];
            stall.stalls = vec![runs::Stall {
                pid: 10,
                stopped_at_ms: Some(800.0),
                continued_at_ms: Some(1300.0),
                error: None,
            }];
            stall.stall_waits = Some(runs::StallWaits {
                stop_for_ms: 500.0,
                at_least_stall: 1,
                at_least_tenth: 40,
            });
            runs.push(stall);
            // Mix: uneven work.
            let mut mix = run(&labels("drain", round), 1.0, 5_000);
            mix.parameters.mix = vec![
                runs::MixEntry {
                    path: "/".to_owned(),
                    weight: 95,
                },
                runs::MixEntry {
                    path: "/?work_us=5000".to_owned(),
                    weight: 5,
                },
            ];
            mix.workers.by_pid = vec![worker(10, 100, 0.5, 3_000), worker(11, 100, 0.5, 6_000)];
            runs.push(mix);
        }
        let figures = Figures::of(&runs);

        assert_eq!(figures.fairness.len(), 1, "{:?}", figures.fairness);
        let spread = &figures.fairness[0];
        assert_eq!(spread.variant.accept, Some(Accept::Exclusive));
        assert_eq!(
            spread.variant.to_string(),
            "handoff-listener --accept exclusive"
        );
        assert_eq!(spread.workers, 4);
        assert_eq!(spread.connection_shares, vec![0.75, 0.25, 0.0, 0.0]);
        // (400)² / (4 · (300² + 100²)) = 0.4: the silent workers count.
        let jain = spread.connections_jain.expect("jain");
        assert!((jain.median - 0.4).abs() < 1e-9 && jain.count == 2);
        assert_eq!(spread.least_share.expect("least").max, 0.0);

        assert_eq!(figures.stalls.len(), 1);
        let stall = &figures.stalls[0];
        assert_eq!(stall.variant.accept, Some(Accept::Blocking));
        assert_eq!(stall.stall_ms, 500.0);
        assert_eq!(stall.waited_tenth.expect("waited").median, 40.0);
        let stalled = stall.stalled_p99_us.expect("stalled p99");
        assert_eq!((stalled.min, stalled.max), (400_000.0, 450_000.0));
        assert_eq!(stall.others_p99_us.expect("others").median, 1_200.0);
        assert!((stall.stalled_share.expect("share").median - 0.1).abs() < 1e-9);

        assert_eq!(figures.mixes.len(), 1);
        let mix = &figures.mixes[0];
        assert_eq!(mix.mix, "95 % /, 5 % /?work_us=5000");
        assert_eq!(mix.worst_worker_p99_us.expect("worst").median, 6_000.0);
        assert_eq!(mix.best_worker_p99_us.expect("best").median, 3_000.0);
        // Two rounds behind every §4 figure.
        assert_eq!(figures.rounds.get(&Section::Fairness), Some(&(2, 2)));
    }

    /// Section 8: failures and latency are counted around the upgrade they
    /// fall near (from 100 ms before it to 500 ms after the later of ready
    /// and exit), the rest is "away"; the timeline chart splits answers by
    /// generation.
    #[test]
    fn upgrade_figures_attribute_intervals_to_their_upgrade() {
        use runs::{Timeline, TimelineInterval, UpgradeEvent, Upgrades};
        let mut report = run(
            &[
                ("section", "upgrade"),
                ("mode", "handoff-reuseport"),
                ("strategy", "restart"),
            ],
            500.0,
            1000,
        );
        report.requests.failed = 7;
        report.errors.by_kind = [("connect_refused".to_owned(), 7)].into();
        let interval = |old: u64, new: u64, failed: u64, max_ms: u64| TimelineInterval {
            ok_by_pid: [(10, old), (20, new)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect(),
            failed: if failed > 0 {
                [("connect_refused".to_owned(), failed)].into()
            } else {
                Default::default()
            },
            max_latency_us: Some(max_ms * 1000),
        };
        // 100 ms intervals from t = 0; the upgrade begins at 1,000 ms, its new
        // master is ready at +300 ms: "around" is 900 ms to 1,800 ms.
        let mut intervals = vec![interval(50, 0, 0, 3); 30];
        intervals[10] = interval(10, 20, 5, 250);
        intervals[12] = interval(0, 50, 0, 40);
        intervals[25] = interval(0, 50, 2, 90);
        report.timeline = Some(Timeline {
            interval_ms: 100.0,
            start_unix_ms: 0.0,
            intervals,
        });
        report.upgrades = Some(Upgrades {
            init_delay_ms: 200.0,
            tcp_migrate_req: Some(0),
            netns: false,
            kernel: "6".to_owned(),
            events: vec![UpgradeEvent {
                at_unix_ms: 1000.0,
                old_master: 1,
                old_workers: vec![10],
                new_master: 2,
                new_workers: vec![20],
                new_start_ms: 30.0,
                new_ready_ms: 300.0,
                old_exit_ms: 30.0,
                old_exit_code: Some(0),
                old_handover_to: None,
                new_takeover_from: None,
            }],
        });
        let figures = Figures::of(&[report]);
        let row = &figures.upgrades[0];
        assert_eq!((row.upgrades, row.failed), (1, 7));
        assert_eq!(row.kinds, vec![("connect_refused".to_owned(), 7)]);
        assert_eq!(row.failed_per_upgrade.map(|s| s.median), Some(5.0));
        assert_eq!(row.longest_ms.map(|s| s.max), Some(250.0));
        assert_eq!(row.away_ms, Some(90.0));
        assert_eq!(row.ready_ms.map(|s| s.median), Some(270.0));
        assert_eq!(row.old_exit_ms.map(|s| s.median), Some(30.0));
        let line = &figures.upgrade_timelines[0];
        // From 500 ms before the upgrade to 1.5 s after it: 20 intervals.
        assert_eq!(line.old.len(), 20);
        let at = |points: &[(f64, f64)], t: f64| {
            points.iter().find(|p| (p.0 - t).abs() < 1e-9).map(|p| p.1)
        };
        // The interval at 1,000–1,100 ms: 10 old and 20 new answers, 5
        // failures, in 100 ms: 100, 200 and 50 per second.
        assert_eq!(at(&line.old, 0.05), Some(100.0));
        assert_eq!(at(&line.new, 0.05), Some(200.0));
        assert_eq!(at(&line.failed, 0.05), Some(50.0));
    }
}
