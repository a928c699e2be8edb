//! The comparison's plan as data: every server the run starts, each with
//! the loads it takes, and every upgrade cell, in the order they run. The
//! sections × modes × loads × rounds are laid out once here, the rounds
//! shuffled by the seed; `--dry-run` prints this list with its estimate and
//! the run iterates the same list, so the count of loads (`[n/total]`) is
//! the list's length and cannot drift from what runs.
//!
//! §0 (cost at equal load) runs at fixed rates ([`COST_RATES_KEEPALIVE`],
//! [`COST_RATES_NEWCONN`]), so its loads are known up front like §1's.
//!
//! Two values are known only while the run goes: the sweep's rates (from
//! §1's runs of the same invocation: [`crate::sweep`]) and the pid of the
//! worker a fault or a stall targets (from the server's `ready` line). The
//! plan names them ([`Rate::Sweep`], [`Load::stop`], [`Load::kill_after`])
//! and the run fills them in.

use std::fmt;
use std::time::Duration;

use runs::labels::{Accept, Load as LoadKind, Mode as Label, Relay, Section, Strategy};

use crate::server::cluster_mode;
use crate::sweep::KneePoint;

/// What shapes a plan: the comparison's flags, and the peers found.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--quick`: every section, fewer and shorter loads.
    pub quick: bool,
    /// `--workers`: workers per cluster (§4 has its own).
    pub workers: usize,
    /// `--repeats`: rounds of §1.
    pub repeats: usize,
    /// `--seed`: the seed of every shuffle.
    pub seed: u64,
    /// The peers measured too (nginx, the Node.js clusters).
    pub peers: Vec<Label>,
}

/// The sizes of the loads, quick or full: one table, so that a figure of
/// one run is always the figure of its section.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// §0: rounds, every mode once per round in a shuffled order, whatever
    /// `--repeats` says (the renderer pairs each mode with `direct` by round).
    pub cost_rounds: usize,
    /// §0: the offered rates with keep-alive, requests/s, lowest first.
    pub cost_rates_keepalive: &'static [u64],
    /// §0: the offered rates with a new connection per request, lowest first.
    pub cost_rates_newconn: &'static [u64],
    /// §0: each step's duration and warm-up.
    pub cost: (Duration, Duration),
    /// §1: each throughput run's duration and warm-up.
    pub round: (Duration, Duration),
    /// §1b: the ladder's most rates per load (see [`crate::sweep`]).
    pub sweep_steps: usize,
    /// §1b: each rate of the ladder over the one below it.
    pub sweep_ratio: f64,
    /// §1b: the rounds of each of the three steps around a mode's knee (the
    /// two of the ladder run once more in each round after the first; the
    /// middle one in every round).
    pub sweep_repeats: u32,
    /// §1b: each step's duration.
    pub sweep_duration: Duration,
    /// §1b: each step's warm-up.
    pub sweep_warmup: Duration,
    /// §1b: each step's `--timeout` (how long a request may take before it
    /// counts as failed, far past any objective the report reads, and the
    /// most a step past capacity drains after its window: 500 ms, 50× the
    /// loosest objective, since about a third of the sweep's steps lie past
    /// a knee).
    pub sweep_timeout: Duration,
    /// §1c: rounds, every server once per round in a shuffled order (the
    /// renderer pairs each with `handoff-socket` by round).
    pub copies_rounds: usize,
    /// §1c: the answers' sizes (`?bytes=N`), bytes, smallest first.
    pub copies_answers: &'static [u64],
    /// §1c: the uploads' sizes (`--body-bytes N`), bytes.
    pub copies_uploads: &'static [u64],
    /// §1c: each load's duration and warm-up.
    pub copies: (Duration, Duration),
    /// §2: the connections held open, one load each, ascending: a mode's
    /// steps end at the first it could not hold (its limit).
    pub held: &'static [usize],
    /// §2: each load's duration and warm-up, after loadgen opened every
    /// connection (`--hold`: the opening is not part of either).
    pub fd_bill: (Duration, Duration),
    /// §3: the connections rising against `--max-fds`.
    pub limit_steps: &'static [usize],
    /// §6: the run's duration and when the worker is killed.
    pub fault: (Duration, Duration),
    /// §4: rounds, workers per cluster, the open loop's rate.
    pub fairness_rounds: usize,
    /// §4: the workers of each cluster.
    pub fairness_workers: &'static [usize],
    /// §4: the open loop's requests/s, below saturation.
    pub fairness_rate: u64,
    /// §4: the open-loop runs' duration and warm-up, the burst's duration.
    pub fairness: (Duration, Duration, Duration),
    /// §4: each stall (ms), when the two stalls start, the stall run's duration.
    pub stall_ms: u64,
    /// §4: when the two stalls start after the warm-up.
    pub stall_at: [Duration; 2],
    /// §4: the stall run's duration.
    pub stall_duration: Duration,
    /// §4, the small-backlog run: its warm-up, its duration, and how long
    /// its one stall lasts (from the window's start). The duration outlasts
    /// the stall by more than a second, so that the SYNs the full queue
    /// dropped are retransmitted (1 s later, the kernel's first SYN
    /// retransmission) and answered inside the window.
    pub backlog_run: (Duration, Duration, Duration),
    /// §8: the upgrade driver's `--upgrades`, `--lead` and `--every`.
    pub upgrade: (u32, Duration, Duration),
    /// §8: what one cell took, start to end, on the reference VM (10
    /// cells: 17 s quick, 117 s with 5 upgrades each, each upgrade 2 s of
    /// it), for the estimate.
    pub upgrade_cell: Duration,
}

/// `--quick`: 1 round, a sweep of 3 rates 4× apart and a knee's middle, §4
/// with 4 workers once, §0 in
/// 2 rounds (the fewest that pair by round) of 500 ms at the full run's
/// rates (at least 1,000 requests per step, for a CPU time /proc counts in
/// 10 ms ticks), in about 20 s; §1c with the smallest and the largest
/// answer, no upload, in 1 round of 400 ms (about 11 s: each mode still
/// pairs with `handoff-socket` within that round, one pair, no verdict).
pub const QUICK: Sizes = Sizes {
    cost_rounds: 2,
    cost_rates_keepalive: &COST_RATES_KEEPALIVE,
    cost_rates_newconn: &COST_RATES_NEWCONN,
    cost: (ms(500), ms(100)),
    round: (ms(500), ms(200)),
    sweep_steps: 3,
    sweep_ratio: 4.0,
    sweep_repeats: 1,
    sweep_duration: ms(300),
    sweep_warmup: ms(100),
    sweep_timeout: ms(500),
    copies_rounds: 1,
    copies_answers: &[64, MIB],
    copies_uploads: &[],
    copies: (ms(400), ms(100)),
    held: &[1_000, 5_000],
    fd_bill: (ms(500), ms(300)),
    limit_steps: &[50, 150, 300],
    fault: (ms(2000), ms(700)),
    fairness_rounds: 1,
    fairness_workers: &[4],
    fairness_rate: 300,
    fairness: (ms(300), ms(100), ms(200)),
    stall_ms: 250,
    stall_at: [ms(100), ms(500)],
    stall_duration: ms(900),
    backlog_run: (ms(100), ms(2100), ms(800)),
    upgrade: (1, ms(200), ms(600)),
    upgrade_cell: ms(1700),
};

/// The full run: §0 at its rate per load in 5 rounds of 5 s (MEASURING.md:
/// at least 5 rounds of at least 5 s for any figure ranked, and §0 ranks);
/// §1 in 5 rounds (by default) of 3 s, since saturated throughput on shared
/// cores ranks nothing (the report says so and ranks §0); a sweep whose
/// ladder doubles, its knees √2 apart in 3 rounds of 1 s (issue 22: at
/// least 3 repeats around each knee); §1c in 3 rounds of 1.3 s (about
/// 3 min with nginx: fewer and shorter than §0's 5 × 5 s, so it compares in
/// pairs and ranks nothing); §4 with 4 and 8 workers twice; §8 with 3
/// upgrades per cell. Together about 28 min with nginx and Node.js on the
/// 2-core VM (the dry run's estimate).
pub const FULL: Sizes = Sizes {
    cost_rounds: 5,
    cost_rates_keepalive: &COST_RATES_KEEPALIVE,
    cost_rates_newconn: &COST_RATES_NEWCONN,
    cost: (ms(5000), ms(500)),
    round: (ms(3000), ms(500)),
    sweep_steps: 6,
    sweep_ratio: 2.0,
    sweep_repeats: 3,
    sweep_duration: ms(1000),
    sweep_warmup: ms(300),
    sweep_timeout: ms(500),
    copies_rounds: 3,
    copies_answers: &[64, 4 * KIB, 64 * KIB, MIB],
    copies_uploads: &[64 * KIB],
    copies: (ms(1300), ms(300)),
    held: &HELD_FULL,
    fd_bill: (ms(1000), ms(500)),
    limit_steps: &[50, 100, 150, 200, 300, 400],
    fault: (ms(4000), ms(1500)),
    fairness_rounds: 2,
    fairness_workers: &[4, 8],
    fairness_rate: 400,
    fairness: (ms(1500), ms(300), ms(1000)),
    stall_ms: 500,
    stall_at: [ms(500), ms(1500)],
    stall_duration: ms(2500),
    backlog_run: (ms(300), ms(2400), ms(800)),
    upgrade: (3, ms(1000), ms(2000)),
    upgrade_cell: ms(7700),
};

/// §2's connections held in the full run (issue 23): from 1,000 to 38,000,
/// which two `handoff` workers hold under this machine's hard fd limit of
/// 20,000 each (19,000 each, 1,000 to spare for the hash's unevenness under
/// `reuseport`); a `proxy` master, at two fds per connection, stops near
/// 10,000 under the same limit, so its 10,000 step shows where.
pub const HELD_FULL: [usize; 5] = [1_000, 5_000, 10_000, 20_000, 38_000];
/// §2's loopback source addresses (`loadgen --source-ips`): eight, so that
/// 38,000 connections to one port take 4,750 local ports of each rather
/// than more than the 28,232 of one address's default
/// `ip_local_port_range` (and the kernel's search for a free port stays
/// short).
pub const HELD_SOURCE_IPS: &str = "127.0.0.2-127.0.0.9";
/// §2's `--timeout`: how long a connection may take to open and be
/// answered before it counts as failed to open; a connection the server
/// cannot accept (out of fds) waits this long in its accept queue.
pub const HELD_TIMEOUT: Duration = ms(2000);
/// Connections loadgen opens a second with `--hold`, for the estimate:
/// 38,000 opened in 5.99 s on the reference VM (issue 23), and the closing
/// after the load about as long, so half that.
pub const HELD_OPENS_PER_S: u64 = 3_000;

/// §4's stall runs: how often loadgen samples the tree and its accept
/// queues (`--sample-interval`). A stalled worker's queue grows and drains
/// within a 250–500 ms stall, and `--steer health` leaves a worker out
/// within about 100 ms; loadgen's default of 100 ms would show that as one
/// or two points. 20 ms shows the growth and the plateau (lesson 8 reads
/// the same), at a cost to loadgen, not to the server (it reads /proc and
/// a `sock_diag` dump).
pub const STALL_SAMPLE_INTERVAL: Duration = ms(20);

/// §0: the offered rates with keep-alive, requests/s. Cost at equal load
/// compares only where every server does the same work, i.e. holds the
/// rate; on the 2-core reference VM, loadgen sharing the cores, §1b held
/// every step up to 32,000/s with keep-alive for every mode and peer (the
/// slowest, `proxy`, nginx and Node.js, fell behind at 64,000/s), so
/// 8,000/s stays at a quarter of that last step held. One rate per load:
/// §0 at 5 s × 5 rounds per step is about 6 min for every mode and peer,
/// and a second rate would take the full run past 25 min; the sweep (§1b)
/// shows how latency changes with the rate.
pub const COST_RATES_KEEPALIVE: [u64; 1] = [8_000];
/// §0: the offered rates with a new connection per request, requests/s. On
/// the same VM §1b held 5,600/s and not 12,000/s for `proxy`, 2,600/s and
/// not 5,600/s for Node.js round robin (the slowest peer), so 2,000/s
/// stays below every knee, `proxy`'s at a third of its last step held.
pub const COST_RATES_NEWCONN: [u64; 1] = [2_000];
/// 1 KiB, for the tables of sizes.
pub const KIB: u64 = 1024;
/// 1 MiB.
pub const MIB: u64 = 1024 * KIB;

/// §1c: the most bytes a second any load of §1c offers (an answer of N
/// bytes moves N and its head): 192 MiB/s. Below it the CPU a 1.3 s window
/// counts in /proc's 10 ms ticks gets thin (`handoff-socket` spent about
/// 23 ms a second at 128 MiB/s, 3 ticks a window); well above it the
/// loads would crowd the 2 shared cores: the data crosses loopback once for
/// the handoff modes and twice through a relay, and on the 2-core VM, 3 s
/// of 1 MiB answers at 192/s cost `proxy --relay copy`'s tree 0.18 of a
/// core and loadgen 0.1, so every server keeps up and the figure is the
/// cost of the bytes, not of a server behind its schedule. Loopback itself
/// carries GiB/s.
pub const COPIES_BYTES_PER_S: u64 = 192 * MIB;

/// §1c's rate for requests that move `bytes` each: §0's keep-alive rate
/// (8,000/s, held by every server), or fewer, so that `bytes` × the rate
/// stays at [`COPIES_BYTES_PER_S`] (64 KiB: 3,072/s; 1 MiB: 192/s). The
/// same for every server at a size, so the costs compare.
pub fn copies_rate(bytes: u64) -> u64 {
    (COPIES_BYTES_PER_S / bytes.max(1)).clamp(1, COST_RATES_KEEPALIVE[0])
}

/// §1c's rounds are shuffled with `--seed` + this (§0 uses + 1, the
/// sweep's Poisson runs + 2, §4 + 4).
pub const COPIES_SEED_OFFSET: u64 = 3;

/// §0's rounds are shuffled with `--seed` + this, so that their order is
/// not §1's (which uses the seed itself) nor §4's (+ 4).
pub const COST_SEED_OFFSET: u64 = 1;
/// §1b's Poisson runs draw their arrivals from `--seed` + this (§0 uses + 1,
/// §4 + 4).
pub const POISSON_SEED_OFFSET: u64 = 2;
/// §3: every master's `--max-fds`.
pub const MAX_FDS: u64 = 256;
/// §0, §1 and §1b: connections per load (keep-alive, and §1's closed
/// loop with a new connection per request).
pub const CONNECTIONS: usize = 50;
/// §0 and §1b with a new connection per request: loadgen's open model
/// sends each request on its own connection, at most this many in flight
/// (its `--connections`, as k6's `maxVUs`). 1,000 holds the sweep's highest
/// rates (about 35,000/s on the reference VM) with 28 ms of answers in
/// flight, past the loosest objective (10 ms), so the bound is reached only
/// past a knee; 50, the keep-alive count, was reached below them on a
/// loaded machine and made requests wait for loadgen, not for the server.
pub const NEWCONN_IN_FLIGHT: usize = 1_000;

/// The `--connections` of an open loop of `kind` (§0, §1b).
fn open_loop_clients(kind: LoadKind) -> usize {
    match kind {
        LoadKind::NewConn => NEWCONN_IN_FLIGHT,
        _ => CONNECTIONS,
    }
}
/// §8: the open loop's requests/s, a rate the slowest mode holds easily.
pub const UPGRADE_RATE: u64 = 500;
/// §8: each worker's `--init-delay`, so that a restart's gap shows.
pub const UPGRADE_INIT_DELAY: Duration = ms(200);
/// §4's small-backlog run: the master's `--backlog`, so small that the
/// stalled worker's own queue under `handoff-reuseport` fills within tens
/// of milliseconds at §4's rate, and the kernel drops the SYNs beyond it.
pub const SMALL_BACKLOG: u32 = 8;

/// §4's mixed load: 95 % plain requests, 5 % that compute 5 ms.
pub const MIX: [&str; 2] = ["/=95", "/?work_us=5000=5"];

/// What a load besides its warm-up and duration costs (loadgen's start, the
/// drain of the requests in flight, the JSON), and a server's start and
/// stop: on the 2-core VM of the reference runs, `--quick --no-peers` took
/// 83 s of loads for 63 s of warm-ups and durations, 72 loads and 26
/// starts (other work on the machine); for the estimate.
pub const LOAD_OVERHEAD: Duration = ms(250);
/// A server's start and stop, for the estimate (see [`LOAD_OVERHEAD`]).
pub const START_OVERHEAD: Duration = ms(300);

/// A duration in ms, for the tables above.
const fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// The plan of one comparison.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What shaped it.
    pub settings: Settings,
    /// The sizes it uses.
    pub sizes: Sizes,
    /// §0: the modes of each round, in their shuffled order.
    pub cost_orders: Vec<Vec<Label>>,
    /// §1: the modes of each round, in their shuffled order.
    pub round_orders: Vec<Vec<Label>>,
    /// §4: the ways of sharing the port of each round, shuffled.
    pub fairness_orders: Vec<Vec<Variant>>,
    /// Everything that runs, in order.
    pub blocks: Vec<Block>,
}

/// One way of sharing the port in §4: a mode, and for `handoff-listener`
/// an `--accept` strategy (written `MODE:STRATEGY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// The mode.
    pub mode: Label,
    /// `handoff --pass listener --accept STRATEGY`.
    pub accept: Option<Accept>,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.accept {
            Some(accept) => write!(f, "{}:{}", self.mode, accept),
            None => write!(f, "{}", self.mode),
        }
    }
}

/// A step of the plan.
#[derive(Debug, Clone)]
pub enum Block {
    /// A server started, its loads run one after the other, then stopped.
    Server(ServerBlock),
    /// A master replaced under load by the upgrade driver.
    Upgrade(Cell),
}

/// A server and its loads.
#[derive(Debug, Clone)]
pub struct ServerBlock {
    /// What serves (`direct` and nginx stand on a `proxy` cluster).
    pub mode: Label,
    /// Its workers.
    pub workers: usize,
    /// Flags for the master (`--max-fds 256`, `--accept single`).
    pub extra: Vec<String>,
    /// The loads, in order.
    pub loads: Vec<Load>,
    /// Which network namespace the server and its loads run in.
    pub netns: Netns,
    /// Whether the server tree runs in a memory cgroup of its own
    /// ([`launch::cgroup`]), so that the kernel memory its sockets take is
    /// counted apart from loadgen's. Where none can be made (no root, no
    /// cgroup v1 memory controller) the block runs anyway, said in one
    /// line, and the report says the kernel's share was not measured.
    pub memory_cgroup: bool,
}

/// Which network namespace a server block runs in ([`launch::netns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Netns {
    /// The harness's own.
    Shared,
    /// One of its own, whose counters (`ListenOverflows`, `ListenDrops`)
    /// are the block's alone; it needs root, and without it the block is
    /// skipped, said in one line.
    Own,
    /// One of its own where one can be made (its own ports and `sockstat`),
    /// else the harness's, said in one line: what the block measures holds
    /// either way.
    OwnIfPossible,
}

/// A server of §1c: a mode or peer, and `proxy` once per `--relay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopiesServer {
    /// The mode or peer.
    pub mode: Label,
    /// `proxy --relay`; `None` for the others.
    pub relay: Option<Relay>,
}

impl CopiesServer {
    /// Its part of a run's name: `proxy-splice`, `handoff-socket`.
    fn tag(self) -> String {
        match self.relay {
            Some(relay) => format!("{}-{relay}", self.mode),
            None => self.mode.to_string(),
        }
    }
}

impl fmt::Display for CopiesServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.relay {
            Some(relay) => write!(f, "{} --relay {relay}", self.mode),
            None => write!(f, "{}", self.mode),
        }
    }
}

/// One cell of §8: a mode replaced by a strategy.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    /// The mode.
    pub mode: cluster::Mode,
    /// How its master is replaced.
    pub strategy: Strategy,
}

impl Cell {
    /// Its name, the file of its run (`runs/upgrade-MODE-STRATEGY.json`).
    pub fn name(&self) -> String {
        format!("upgrade-{}-{}", self.mode, self.strategy)
    }
}

/// The offered rate of an open loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Requests/s.
    Fixed(u64),
    /// Step `step` (from 1) of the sweep's ladder of `load`, known once §1
    /// has run.
    Sweep {
        /// The sweep's load (keep-alive or a new connection per request).
        load: LoadKind,
        /// The step, from 1.
        step: usize,
    },
    /// One of the three rates around the knee of the server's mode under
    /// `load`, known once its ladder has run.
    Knee {
        /// The sweep's load.
        load: LoadKind,
        /// Which of the three.
        point: KneePoint,
    },
}

impl Rate {
    /// Whether the rate is known only while the run goes: a sweep step
    /// (whose `--timeout` may add to the run: a step past capacity drains).
    pub fn is_sweep(self) -> bool {
        matches!(self, Rate::Sweep { .. } | Rate::Knee { .. })
    }
}

/// One loadgen run.
#[derive(Debug, Clone)]
pub struct Load {
    /// Its name: the file `runs/NAME.json`, and the progress line.
    pub name: String,
    /// Its labels (`--label KEY=VALUE`), typed by `runs::labels`; the rate
    /// of a sweep step and `workers` are added when it runs.
    pub labels: Vec<(&'static str, String)>,
    /// `--connections`.
    pub connections: usize,
    /// `--new-conn`.
    pub new_conn: bool,
    /// `--rate`, if an open loop.
    pub rate: Option<Rate>,
    /// `--duration`.
    pub duration: Duration,
    /// `--warmup`.
    pub warmup: Duration,
    /// `--timeout`, if not loadgen's default.
    pub timeout: Option<Duration>,
    /// `--stop FIRST_WORKER --stop-after T... --stop-for D`.
    pub stop: Option<(Vec<Duration>, Duration)>,
    /// `--kill FIRST_WORKER --kill-after T`.
    pub kill_after: Option<Duration>,
    /// `--mix` with `--seed`.
    pub mix_seed: Option<u64>,
    /// `--arrivals poisson` with `--seed`.
    pub poisson_seed: Option<u64>,
    /// `--hold`, `--source-ips`: every connection opened first, then held,
    /// one request every `--hold-interval` each (§2). A block's hold loads
    /// after one that could not hold all its connections are skipped: the
    /// mode reached its limit.
    pub hold: Option<&'static str>,
    /// `--sample-interval`, if not loadgen's 100 ms: the stall runs read
    /// the accept queues every [`STALL_SAMPLE_INTERVAL`].
    pub sample_interval: Option<Duration>,
    /// The answer's size, `?bytes=N` on every target (see [`Load::path`]).
    pub answer_bytes: Option<u64>,
    /// `--body-bytes`: each request a `POST` with a body of this many bytes.
    pub body_bytes: Option<u64>,
}

/// What a load needs from the run to be complete.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    /// The rate of a sweep step (the ladder's or a knee's).
    pub rate: Option<u64>,
    /// The first worker of the server, the target of `--stop` and `--kill`.
    pub first_worker: u32,
}

impl Load {
    /// A load with these basics, the rest off.
    fn new(
        name: String,
        labels: Vec<(&'static str, String)>,
        connections: usize,
        duration: Duration,
        warmup: Duration,
    ) -> Load {
        Load {
            name,
            labels,
            connections,
            new_conn: false,
            rate: None,
            duration,
            warmup,
            timeout: None,
            stop: None,
            kill_after: None,
            mix_seed: None,
            poisson_seed: None,
            hold: None,
            sample_interval: None,
            answer_bytes: None,
            body_bytes: None,
        }
    }

    /// The path and query of every `--target`: `/`, or `/?bytes=N` for an
    /// answer of N bytes.
    pub fn path(&self) -> String {
        match self.answer_bytes {
            Some(bytes) => format!("/?bytes={bytes}"),
            None => "/".to_owned(),
        }
    }

    /// loadgen's flags for this load (after `--target`, `--watch`,
    /// `--label` and `--json`).
    pub fn args(&self, resolved: Resolved) -> Vec<String> {
        use crate::system::flag;
        let mut args = vec!["--connections".to_owned(), self.connections.to_string()];
        if self.new_conn {
            args.push("--new-conn".into());
        }
        if let Some(rate) = self.rate {
            let rate = match rate {
                Rate::Fixed(rate) => rate,
                Rate::Sweep { .. } | Rate::Knee { .. } => resolved.rate.unwrap_or(0),
            };
            args.extend(["--rate".into(), rate.to_string()]);
        }
        args.extend(["--duration".into(), flag(self.duration)]);
        args.extend(["--warmup".into(), flag(self.warmup)]);
        if let Some(timeout) = self.timeout {
            args.extend(["--timeout".into(), flag(timeout)]);
        }
        if let Some((after, stop_for)) = &self.stop {
            args.extend(["--stop".into(), resolved.first_worker.to_string()]);
            for at in after {
                args.extend(["--stop-after".into(), flag(*at)]);
            }
            args.extend(["--stop-for".into(), flag(*stop_for)]);
        }
        if let Some(at) = self.kill_after {
            args.extend(["--kill".into(), resolved.first_worker.to_string()]);
            args.extend(["--kill-after".into(), flag(at)]);
        }
        if let Some(seed) = self.poisson_seed {
            args.extend(["--arrivals".into(), "poisson".into()]);
            args.extend(["--seed".into(), seed.to_string()]);
        }
        if let Some(interval) = self.sample_interval {
            args.extend(["--sample-interval".into(), flag(interval)]);
        }
        if let Some(source_ips) = self.hold {
            args.extend(["--hold".into(), "--source-ips".into(), source_ips.into()]);
        }
        if let Some(bytes) = self.body_bytes {
            args.extend(["--body-bytes".into(), bytes.to_string()]);
        }
        if let Some(seed) = self.mix_seed {
            for mix in MIX {
                args.extend(["--mix".into(), mix.into()]);
            }
            args.extend(["--seed".into(), seed.to_string()]);
        }
        args
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny generator whose
/// sequence for a seed is fixed by its definition, so that a seed recorded
/// in a run's README gives the same order with any later build.
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// The generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// `rounds` shuffles of `items`, one per round, from one generator seeded
/// with `seed`.
pub fn orders<T: Clone>(seed: u64, rounds: usize, items: &[T]) -> Vec<Vec<T>> {
    let mut rng = SplitMix64::new(seed);
    (0..rounds)
        .map(|_| {
            let mut order = items.to_vec();
            rng.shuffle(&mut order);
            order
        })
        .collect()
}

/// The suite's four modes as labels, in `cluster::Mode::ALL`'s order.
pub fn cluster_labels() -> Vec<Label> {
    cluster::Mode::ALL
        .iter()
        .filter_map(|mode| mode.name().parse().ok())
        .collect()
}

/// Whether a strategy applies to a mode: the overlaps need one
/// `SO_REUSEPORT` listener per worker, `handoff-reuseport`'s sockets.
pub fn applies(mode: cluster::Mode, strategy: Strategy) -> bool {
    !matches!(strategy, Strategy::Overlap | Strategy::OverlapMigrate)
        || mode == cluster::Mode::Handoff(cluster::Pass::Reuseport)
}

/// A label pair.
fn label(key: &'static str, value: impl fmt::Display) -> (&'static str, String) {
    (key, value.to_string())
}

impl Plan {
    /// The plan of a comparison with these settings.
    pub fn new(settings: Settings) -> Plan {
        let sizes = if settings.quick { QUICK } else { FULL };
        // `direct` is the baseline: clients straight to every worker's own
        // port, no master in between.
        let mut modes = vec![Label::Direct];
        modes.extend(cluster_labels());
        modes.extend(settings.peers.iter().copied());
        let round_orders = orders(settings.seed, settings.repeats, &modes);
        let cost_orders = orders(
            settings.seed.wrapping_add(COST_SEED_OFFSET),
            sizes.cost_rounds,
            &modes,
        );
        // §4's ways of sharing the port; `proxy` (a round robin like
        // handoff-socket's) only in the full run.
        let mut variants = Vec::new();
        if !settings.quick {
            variants.push(Variant {
                mode: Label::Proxy,
                accept: None,
            });
        }
        variants.push(Variant {
            mode: Label::HandoffSocket,
            accept: None,
        });
        for accept in Accept::ALL {
            variants.push(Variant {
                mode: Label::HandoffListener,
                accept: Some(*accept),
            });
        }
        variants.push(Variant {
            mode: Label::HandoffReuseport,
            accept: None,
        });
        let fairness_orders = orders(
            settings.seed.wrapping_add(4),
            sizes.fairness_rounds,
            &variants,
        );
        let mut plan = Plan {
            settings,
            sizes,
            cost_orders,
            round_orders,
            fairness_orders,
            blocks: Vec::new(),
        };
        plan.cost();
        plan.throughput();
        plan.sweep();
        plan.copies();
        plan.fd_bill();
        plan.fd_limit();
        plan.fairness();
        plan.faults();
        plan.upgrades();
        plan
    }

    /// A server block of `mode` with the run's workers.
    fn server(&mut self, mode: Label, extra: Vec<String>, loads: Vec<Load>) {
        let workers = self.settings.workers;
        self.blocks.push(Block::Server(ServerBlock {
            mode,
            workers,
            extra,
            loads,
            netns: Netns::Shared,
            memory_cgroup: false,
        }));
    }

    /// §0, cost at equal load: every mode and peer once per round, in the
    /// round's shuffled order, a server each time, at every rate of
    /// keep-alive then of a new connection per request, lowest first; an
    /// open loop as §1b's steps (50 connections, `--rate`, the sweep's
    /// `--timeout`), the server tree watched. Fixed rates, so every step
    /// is planned up front.
    fn cost(&mut self) {
        let sizes = self.sizes;
        let (duration, warmup) = sizes.cost;
        for (r, order) in self.cost_orders.clone().iter().enumerate() {
            let round = r + 1;
            for &mode in order {
                let mut loads = Vec::new();
                for (kind, rates) in [
                    (LoadKind::KeepAlive, sizes.cost_rates_keepalive),
                    (LoadKind::NewConn, sizes.cost_rates_newconn),
                ] {
                    for &rate in rates {
                        let mut load = Load::new(
                            format!("cost-{mode}-{kind}-{rate}-r{round}"),
                            vec![
                                label("section", Section::Cost),
                                label("mode", mode),
                                label("load", kind),
                                label("rate", rate),
                                label("round", round),
                            ],
                            open_loop_clients(kind),
                            duration,
                            warmup,
                        );
                        load.timeout = Some(sizes.sweep_timeout);
                        load.rate = Some(Rate::Fixed(rate));
                        load.new_conn = kind == LoadKind::NewConn;
                        loads.push(load);
                    }
                }
                self.server(mode, Vec::new(), loads);
            }
        }
    }

    /// §1, closed loop: every mode once per round, in the round's order,
    /// keep-alive then a new connection per request.
    fn throughput(&mut self) {
        let (duration, warmup) = self.sizes.round;
        for (r, order) in self.round_orders.clone().iter().enumerate() {
            let round = r + 1;
            for &mode in order {
                let loads = [LoadKind::KeepAlive, LoadKind::NewConn]
                    .map(|kind| {
                        let mut load = Load::new(
                            format!("throughput-{mode}-{kind}-r{round}"),
                            vec![
                                label("section", Section::Throughput),
                                label("mode", mode),
                                label("load", kind),
                                label("round", round),
                            ],
                            CONNECTIONS,
                            duration,
                            warmup,
                        );
                        load.new_conn = kind == LoadKind::NewConn;
                        load
                    })
                    .to_vec();
                self.server(mode, Vec::new(), loads);
            }
        }
    }

    /// §1b: an open loop at the same absolute rates for every mode (the
    /// ladder), in round 1's order, a server per mode, its steps from the
    /// lowest rate up, keep-alive then a new connection per request; then,
    /// on the same server, the three rates around its knee in each load,
    /// round after round: the ladder's two again from round 2, the middle
    /// in every round (see [`crate::sweep`]); last, the middle once more
    /// with Poisson arrivals (`--arrivals poisson`), which the report sets
    /// beside the uniform step. Every step is labelled with its round, the
    /// ladder's and the Poisson run with round 1.
    fn sweep(&mut self) {
        let sizes = self.sizes;
        let kinds = [LoadKind::KeepAlive, LoadKind::NewConn];
        for &mode in &self.round_orders.first().cloned().unwrap_or_default() {
            let step_load = |name: String, kind: LoadKind, round: u32, rate: Rate| {
                let mut load = Load::new(
                    name,
                    vec![
                        label("section", Section::Sweep),
                        label("mode", mode),
                        label("load", kind),
                        label("round", round),
                    ],
                    open_loop_clients(kind),
                    sizes.sweep_duration,
                    sizes.sweep_warmup,
                );
                load.timeout = Some(sizes.sweep_timeout);
                load.rate = Some(rate);
                load.new_conn = kind == LoadKind::NewConn;
                load
            };
            let mut loads = Vec::new();
            for kind in kinds {
                for step in 1..=sizes.sweep_steps {
                    loads.push(step_load(
                        format!("sweep-{mode}-{kind}-s{step}"),
                        kind,
                        1,
                        Rate::Sweep { load: kind, step },
                    ));
                }
            }
            for round in 1..=sizes.sweep_repeats {
                for kind in kinds {
                    for point in KneePoint::ALL {
                        if round == 1 && point.on_the_ladder() {
                            continue;
                        }
                        loads.push(step_load(
                            format!("sweep-{mode}-{kind}-knee-{point}-r{round}"),
                            kind,
                            round,
                            Rate::Knee { load: kind, point },
                        ));
                    }
                }
            }
            for kind in kinds {
                let mut poisson = step_load(
                    format!("sweep-{mode}-{kind}-knee-mid-poisson"),
                    kind,
                    1,
                    Rate::Knee {
                        load: kind,
                        point: KneePoint::Middle,
                    },
                );
                poisson.poisson_seed = Some(self.settings.seed + POISSON_SEED_OFFSET);
                loads.push(poisson);
            }
            self.server(mode, Vec::new(), loads);
        }
    }

    /// §1c's servers, each round in its shuffled order (seed +
    /// [`COPIES_SEED_OFFSET`]): the suite's modes, `proxy` once with each
    /// `--relay`, and nginx (the other relay) when it is a peer; Node.js is
    /// left out (§0 measures it; its cost of bytes is not the question).
    pub fn copies_orders(&self) -> Vec<Vec<CopiesServer>> {
        let mut servers = Vec::new();
        for mode in cluster_labels() {
            if mode == Label::Proxy {
                servers.extend(Relay::ALL.iter().map(|&relay| CopiesServer {
                    mode,
                    relay: Some(relay),
                }));
            } else {
                servers.push(CopiesServer { mode, relay: None });
            }
        }
        if self.settings.peers.contains(&Label::Nginx) {
            servers.push(CopiesServer {
                mode: Label::Nginx,
                relay: None,
            });
        }
        orders(
            self.settings.seed.wrapping_add(COPIES_SEED_OFFSET),
            self.sizes.copies_rounds,
            &servers,
        )
    }

    /// §1c, the cost of the bytes: every server of [`Plan::copies_orders`]
    /// once per round, a server each time; on it, keep-alive open loops
    /// (as §0's: 50 connections, `--rate`, the sweep's `--timeout`) asking
    /// answers of each size (`?bytes=N`), smallest first, then uploads
    /// (`--body-bytes N`), each size at [`copies_rate`], the server tree
    /// watched.
    fn copies(&mut self) {
        let sizes = self.sizes;
        let (duration, warmup) = sizes.copies;
        for (r, order) in self.copies_orders().iter().enumerate() {
            let round = r + 1;
            for &server in order {
                let mut loads = Vec::new();
                // (bytes, whether they are the answer's: else the upload's).
                let answers = sizes.copies_answers.iter().map(|&bytes| (bytes, true));
                let uploads = sizes.copies_uploads.iter().map(|&bytes| (bytes, false));
                for (bytes, answer) in answers.chain(uploads) {
                    let rate = copies_rate(bytes);
                    let (way, key) = match answer {
                        true => ("answer", "answer_bytes"),
                        false => ("upload", "body_bytes"),
                    };
                    let mut labels = vec![
                        label("section", Section::Copies),
                        label("mode", server.mode),
                    ];
                    labels.extend(server.relay.map(|relay| label("relay", relay)));
                    labels.extend([
                        label("load", LoadKind::KeepAlive),
                        label(key, bytes),
                        label("rate", rate),
                        label("round", round),
                    ]);
                    let mut load = Load::new(
                        format!("copies-{}-{way}-{bytes}-r{round}", server.tag()),
                        labels,
                        CONNECTIONS,
                        duration,
                        warmup,
                    );
                    load.timeout = Some(sizes.sweep_timeout);
                    load.rate = Some(Rate::Fixed(rate));
                    match answer {
                        true => load.answer_bytes = Some(bytes),
                        false => load.body_bytes = Some(bytes),
                    }
                    loads.push(load);
                }
                let extra = server
                    .relay
                    .map(|relay| vec!["--relay".to_owned(), relay.to_string()])
                    .unwrap_or_default();
                self.server(server.mode, extra, loads);
            }
        }
    }

    /// §1c's sizes, rates and rounds, as README.md and the dry run say them.
    pub fn copies_rule(&self) -> String {
        let sizes = self.sizes;
        let list = |all: &[u64]| {
            all.iter()
                .map(|&bytes| format!("{bytes} B at {}/s", copies_rate(bytes)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (duration, warmup) = sizes.copies;
        let uploads = if sizes.copies_uploads.is_empty() {
            "none".to_owned()
        } else {
            list(sizes.copies_uploads)
        };
        format!(
            "answers of {}; uploads of {uploads}; keep-alive over {CONNECTIONS} connections, the rates the same for every server (at most {} MiB/s); {} rounds (seed + {COPIES_SEED_OFFSET}), each load {} warm-up and {}",
            list(sizes.copies_answers),
            COPIES_BYTES_PER_S / MIB,
            sizes.copies_rounds,
            crate::system::flag(warmup),
            crate::system::flag(duration),
        )
    }

    /// §2, the bill at scale (issue 23): each mode holding 1,000 up to
    /// 38,000 keep-alive connections (`loadgen --hold`: all opened first,
    /// then one request every 5 s each, from [`HELD_SOURCE_IPS`]), its
    /// steps ending at the first it could not hold. Each server in a
    /// network namespace of its own (its own ports, its own `sockstat`) and
    /// a memory cgroup of its own (the kernel memory of its sockets apart
    /// from loadgen's).
    fn fd_bill(&mut self) {
        let (duration, warmup) = self.sizes.fd_bill;
        // The soft limit the servers inherit (the comparison raises its own
        // to the hard limit first), which the report names as their limit.
        let fd_limit = cluster::rlimit::get().map_or(0, |limit| limit.soft);
        for mode in cluster_labels() {
            let loads = self
                .sizes
                .held
                .iter()
                .map(|&n| {
                    let mut load = Load::new(
                        format!("fdbill-{mode}-{n}"),
                        vec![
                            label("section", Section::FdBill),
                            label("mode", mode),
                            label("connections", n),
                            label("max_fds", fd_limit),
                        ],
                        n,
                        duration,
                        warmup,
                    );
                    load.hold = Some(HELD_SOURCE_IPS);
                    load.timeout = Some(HELD_TIMEOUT);
                    load
                })
                .collect();
            let workers = self.settings.workers;
            self.blocks.push(Block::Server(ServerBlock {
                mode,
                workers,
                extra: Vec::new(),
                loads,
                netns: Netns::OwnIfPossible,
                memory_cgroup: true,
            }));
        }
    }

    /// §3: the master started with `--max-fds`, connections rising. No
    /// warm-up: a client left waiting in the accept queue must time out
    /// inside the measured window, where it counts.
    fn fd_limit(&mut self) {
        for mode in cluster_labels() {
            let loads = self
                .sizes
                .limit_steps
                .iter()
                .map(|&n| {
                    let mut load = Load::new(
                        format!("fdlimit-{mode}-{n}"),
                        vec![
                            label("section", Section::FdLimit),
                            label("mode", mode),
                            label("connections", n),
                            label("max_fds", MAX_FDS),
                        ],
                        n,
                        ms(1500),
                        Duration::ZERO,
                    );
                    load.timeout = Some(ms(1000));
                    load
                })
                .collect();
            self.server(mode, vec!["--max-fds".into(), MAX_FDS.to_string()], loads);
        }
    }

    /// §4 (issue 13): who gets the connections, and who waits when a worker
    /// stalls; more workers than cores, so that the accept path, not the CPU
    /// scheduler alone, decides. Per round, every way of sharing the port in
    /// its shuffled order: a new connection per request in an open loop
    /// below saturation and keep-alive connections opened in a burst (with
    /// each count of workers); with the first count, the open loop with the
    /// first worker stopped twice, and with a heavy-tailed mix of work.
    fn fairness(&mut self) {
        let sizes = self.sizes;
        let (duration, warmup, burst) = sizes.fairness;
        let seed = self.settings.seed;
        for (r, order) in self.fairness_orders.clone().iter().enumerate() {
            let round = r + 1;
            for variant in order {
                for &w in sizes.fairness_workers {
                    let tag = format!("{}-w{w}-r{round}", variant.to_string().replace(':', "-"));
                    let labels = |kind: LoadKind| {
                        let mut labels = vec![
                            label("section", Section::Fairness),
                            label("mode", variant.mode),
                        ];
                        labels.extend(variant.accept.map(|accept| label("accept", accept)));
                        labels.push(label("load", kind));
                        labels.push(label("round", round));
                        labels
                    };
                    let mut loads = Vec::new();
                    let mut newconn = Load::new(
                        format!("fairness-newconn-{tag}"),
                        labels(LoadKind::NewConn),
                        4 * w,
                        duration,
                        warmup,
                    );
                    newconn.new_conn = true;
                    newconn.rate = Some(Rate::Fixed(sizes.fairness_rate));
                    loads.push(newconn);
                    loads.push(Load::new(
                        format!("fairness-keepalive-{tag}"),
                        labels(LoadKind::KeepAlive),
                        8 * w,
                        burst,
                        Duration::ZERO,
                    ));
                    if Some(&w) == sizes.fairness_workers.first() {
                        // Enough connections that the requests stuck behind
                        // the stalled worker do not hold up the schedule of
                        // the others (each connection sends one request at a
                        // time): 32 per worker.
                        let mut stall_labels = labels(LoadKind::NewConn);
                        stall_labels.push(label("stall_ms", sizes.stall_ms));
                        let mut stall = Load::new(
                            format!("fairness-stall-{tag}"),
                            stall_labels,
                            32 * w,
                            sizes.stall_duration,
                            warmup,
                        );
                        stall.new_conn = true;
                        stall.rate = Some(Rate::Fixed(sizes.fairness_rate));
                        stall.stop = Some((sizes.stall_at.to_vec(), ms(sizes.stall_ms)));
                        stall.sample_interval = Some(STALL_SAMPLE_INTERVAL);
                        loads.push(stall);
                        let mut mix = Load::new(
                            format!("fairness-mix-{tag}"),
                            labels(LoadKind::NewConn),
                            16 * w,
                            duration,
                            warmup,
                        );
                        mix.new_conn = true;
                        mix.rate = Some(Rate::Fixed(sizes.fairness_rate));
                        mix.mix_seed = Some(seed);
                        loads.push(mix);
                    }
                    let extra = variant
                        .accept
                        .map(|accept| vec!["--accept".to_owned(), accept.to_string()])
                        .unwrap_or_default();
                    self.blocks.push(Block::Server(ServerBlock {
                        mode: variant.mode,
                        workers: w,
                        extra,
                        loads,
                        netns: Netns::Shared,
                        memory_cgroup: false,
                    }));
                }
            }
        }
        self.small_backlog();
    }

    /// §4, where connections wait when the queue is full: `handoff-reuseport`
    /// with `--backlog` [`SMALL_BACKLOG`] and its first worker stopped once
    /// while new connections keep arriving, in a network namespace of its
    /// own, so that its `ListenOverflows`/`ListenDrops` are the run's. The
    /// stalled worker's queue fills, the kernel drops the SYNs hashed to it,
    /// and their clients connect on the retransmitted SYN, about 1 s later.
    fn small_backlog(&mut self) {
        let sizes = self.sizes;
        let (warmup, duration, stop_for) = sizes.backlog_run;
        let workers = sizes.fairness_workers[0];
        let mode = Label::HandoffReuseport;
        let mut load = Load::new(
            format!("fairness-backlog-{mode}-w{workers}"),
            vec![
                label("section", Section::Fairness),
                label("mode", mode),
                label("load", LoadKind::NewConn),
                label("backlog", SMALL_BACKLOG),
            ],
            // Room for every request the stall and the retransmission
            // hold (about 2 s of the stalled worker's share) besides the
            // others.
            64 * workers,
            duration,
            warmup,
        );
        load.new_conn = true;
        load.rate = Some(Rate::Fixed(sizes.fairness_rate));
        // The stall begins 100 ms into the window, once the queues are
        // steady.
        load.stop = Some((vec![ms(100)], stop_for));
        load.sample_interval = Some(STALL_SAMPLE_INTERVAL);
        self.blocks.push(Block::Server(ServerBlock {
            mode,
            workers,
            extra: vec!["--backlog".to_owned(), SMALL_BACKLOG.to_string()],
            loads: vec![load],
            netns: Netns::Own,
            memory_cgroup: false,
        }));
    }

    /// §6: one worker killed mid-run, 8 clients each making a new
    /// connection per request.
    fn faults(&mut self) {
        let (duration, at) = self.sizes.fault;
        for mode in cluster_labels() {
            let mut load = Load::new(
                format!("faults-{mode}"),
                vec![
                    label("section", Section::Faults),
                    label("mode", mode),
                    label("load", LoadKind::NewConn),
                ],
                8,
                duration,
                ms(200),
            );
            load.new_conn = true;
            load.kill_after = Some(at);
            self.server(mode, Vec::new(), vec![load]);
        }
    }

    /// §8: every mode by takeover and by restart, `handoff-reuseport` also
    /// by overlap and overlap-migrate.
    fn upgrades(&mut self) {
        for mode in cluster::Mode::ALL {
            for &strategy in Strategy::ALL {
                if applies(mode, strategy) {
                    self.blocks.push(Block::Upgrade(Cell { mode, strategy }));
                }
            }
        }
    }

    /// Every load and upgrade cell, in order, with the server it runs on:
    /// the list `[n/total]` counts.
    pub fn steps(&self) -> Vec<String> {
        let mut names = Vec::new();
        for block in &self.blocks {
            match block {
                Block::Server(server) => {
                    names.extend(server.loads.iter().map(|load| load.name.clone()))
                }
                Block::Upgrade(cell) => names.push(cell.name()),
            }
        }
        names
    }

    /// The estimate of the run's seconds after the build.
    pub fn estimate(&self) -> Estimate {
        let mut estimate = Estimate::default();
        for block in &self.blocks {
            match block {
                Block::Server(server) => {
                    estimate.starts += 1;
                    for load in &server.loads {
                        estimate.steps += 1;
                        estimate.loads += load.duration + load.warmup;
                        if load.hold.is_some() {
                            estimate.loads +=
                                Duration::from_secs(load.connections as u64 / HELD_OPENS_PER_S);
                        }
                        if load.rate.is_some_and(Rate::is_sweep) {
                            estimate.drain += load.timeout.unwrap_or_default();
                        }
                    }
                }
                Block::Upgrade(_) => {
                    estimate.steps += 1;
                    estimate.loads += self.sizes.upgrade_cell;
                }
            }
        }
        estimate
    }

    /// §0's rates and rounds, as README.md and the dry run say them.
    pub fn cost_rule(&self) -> String {
        let list = |rates: &[u64]| {
            rates
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (duration, warmup) = self.sizes.cost;
        format!(
            "keep-alive at {} requests/s, a new connection per request at {}; {} rounds (seed + {COST_SEED_OFFSET}), each step {} warm-up and {}, keep-alive over {CONNECTIONS} connections, a new connection per request on its own with at most {NEWCONN_IN_FLIGHT} in flight, --timeout {}",
            list(self.sizes.cost_rates_keepalive),
            list(self.sizes.cost_rates_newconn),
            self.sizes.cost_rounds,
            crate::system::flag(warmup),
            crate::system::flag(duration),
            crate::system::flag(self.sizes.sweep_timeout),
        )
    }

    /// The sweep's rule, as README.md and the dry run say it.
    pub fn sweep_rule(&self) -> String {
        let sizes = self.sizes;
        format!(
            "a ladder of rates {ratio}× apart, the same for every mode, from 10 % of the slowest mode's median closed-loop requests/s in §1 up to the first at or above the larger of 150 % of it and 120 % of the fastest mode's (at most {steps} per load, the highest kept), two significant digits, once each; then around each mode's knee (the last rate of its ladder met with p99 ≤ 10 ms, the next one, and their geometric middle, √{ratio} from each) {repeats} rounds of each, and the middle once with Poisson arrivals (--seed + {POISSON_SEED_OFFSET})",
            ratio = sizes.sweep_ratio,
            steps = sizes.sweep_steps,
            repeats = sizes.sweep_repeats,
        )
    }

    /// The upgrade driver's flags of §8 (`--upgrades 1 --lead 200ms --every 600ms`).
    pub fn upgrade_args(&self) -> String {
        let (upgrades, lead, every) = self.sizes.upgrade;
        format!(
            "--upgrades {upgrades} --lead {} --every {}",
            crate::system::flag(lead),
            crate::system::flag(every)
        )
    }
}

/// The plan's time: what `--dry-run` prints, and README.md beside the time
/// the run took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Estimate {
    /// Loads and upgrade cells.
    pub steps: u32,
    /// Server starts.
    pub starts: u32,
    /// The warm-ups and durations of every load, and each upgrade cell.
    pub loads: Duration,
    /// What the sweep's steps behind their schedule may add (their
    /// `--timeout`).
    pub drain: Duration,
}

impl Estimate {
    /// The seconds of the whole plan: loads, and the overhead of each load
    /// and each start.
    pub fn seconds(&self) -> u64 {
        (self.loads + LOAD_OVERHEAD * self.steps + START_OVERHEAD * self.starts).as_secs()
    }
}

/// Whether `label` names one of the suite's own modes.
pub fn is_cluster(label: Label) -> bool {
    cluster_mode(label).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(seed: u64) -> Settings {
        Settings {
            quick: true,
            workers: 2,
            repeats: 5,
            seed,
            peers: Vec::new(),
        }
    }

    /// The value of `load`'s label `key`.
    fn label_value(load: &Load, key: &str) -> Option<String> {
        load.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    /// The server blocks of `plan` whose loads are all named `prefix…`.
    fn servers_of<'a>(plan: &'a Plan, prefix: &str) -> Vec<&'a ServerBlock> {
        plan.blocks
            .iter()
            .filter_map(|block| match block {
                Block::Server(server)
                    if server.loads.iter().all(|l| l.name.starts_with(prefix)) =>
                {
                    Some(server)
                }
                _ => None,
            })
            .collect()
    }

    /// The same seed gives the same order, another seed another one, and
    /// every round holds every mode once.
    #[test]
    fn the_seed_decides_the_order() {
        let (a, b, c) = (
            Plan::new(settings(7)),
            Plan::new(settings(7)),
            Plan::new(settings(8)),
        );
        assert_eq!(a.round_orders, b.round_orders);
        assert_ne!(a.round_orders, c.round_orders);
        for order in &a.round_orders {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(
                sorted,
                [
                    Label::Proxy,
                    Label::HandoffSocket,
                    Label::HandoffListener,
                    Label::HandoffReuseport,
                    Label::Direct
                ]
            );
        }
    }

    /// The quick plan: 5 modes × 2 loads × 2 rounds in §0, 5 × 2 × 5 in
    /// §1, 5 × 2 × 5 in the sweep (3 rates, the knee's middle uniform and
    /// Poisson), ten upgrade cells; no name twice.
    #[test]
    fn the_quick_plan_counts_what_runs() {
        let plan = Plan::new(settings(1));
        let steps = plan.steps();
        assert_eq!(
            steps
                .iter()
                .filter(|s| s.starts_with("throughput-"))
                .count(),
            50
        );
        assert_eq!(steps.iter().filter(|s| s.starts_with("cost-")).count(), 20);
        assert_eq!(
            steps.iter().filter(|s| s.starts_with("copies-")).count(),
            10
        );
        assert_eq!(steps.iter().filter(|s| s.starts_with("sweep-")).count(), 50);
        assert_eq!(
            steps.iter().filter(|s| s.starts_with("upgrade-")).count(),
            10
        );
        let mut unique = steps.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), steps.len());
        assert_eq!(plan.estimate().steps as usize, steps.len());
    }

    /// The full sweep: per mode and load, the ladder's 6 steps once, then
    /// the knee's low and high again in rounds 2 and 3 and its middle in
    /// rounds 1 to 3, so each of the three runs 3 times; every step names
    /// its round.
    #[test]
    fn the_full_sweep_repeats_the_knee() {
        let plan = Plan::new(Settings {
            quick: false,
            ..settings(5)
        });
        let steps = plan.steps();
        let of = |prefix: &str| steps.iter().filter(|s| s.starts_with(prefix)).count();
        assert_eq!(of("sweep-proxy-newconn-s"), 6);
        assert_eq!(of("sweep-proxy-newconn-knee-mid-r"), 3);
        assert_eq!(of("sweep-proxy-newconn-knee-low-"), 2);
        assert_eq!(of("sweep-proxy-newconn-knee-high-"), 2);
        assert_eq!(of("sweep-proxy-newconn-knee-mid-poisson"), 1);
        assert_eq!(of("sweep-"), 5 * 2 * (6 + 7 + 1));
        for block in &plan.blocks {
            if let Block::Server(server) = block {
                for load in &server.loads {
                    if load.name.starts_with("sweep-") {
                        assert!(
                            load.labels.iter().any(|(key, _)| *key == "round"),
                            "{} has no round",
                            load.name
                        );
                    }
                }
            }
        }
    }

    /// §0 as the renderer pairs it: every round holds every mode once (the
    /// peers too), each mode at the same open-loop rates with both loads,
    /// labelled with its section, load, rate and round; the full run has
    /// at least 5 rounds of at least 5 s, and its rounds are not §1's order.
    #[test]
    fn cost_rounds_run_every_mode_at_the_same_rates() {
        for quick in [true, false] {
            let plan = Plan::new(Settings {
                quick,
                peers: vec![Label::NodeRr, Label::NodeNone],
                ..settings(3)
            });
            let sizes = plan.sizes;
            let modes = 7;
            let per_server = sizes.cost_rates_keepalive.len() + sizes.cost_rates_newconn.len();
            let servers = servers_of(&plan, "cost-");
            assert_eq!(servers.len(), sizes.cost_rounds * modes);
            assert_eq!(plan.cost_orders.len(), sizes.cost_rounds);
            for (r, order) in plan.cost_orders.iter().enumerate() {
                let round = &servers[r * modes..(r + 1) * modes];
                let ran: Vec<Label> = round.iter().map(|server| server.mode).collect();
                assert_eq!(&ran, order, "round {}", r + 1);
                for server in round {
                    assert_eq!(server.loads.len(), per_server);
                    for load in &server.loads {
                        let value = |key: &str| label_value(load, key);
                        assert_eq!(value("section").as_deref(), Some("cost"));
                        assert_eq!(value("round"), Some((r + 1).to_string()));
                        let Some(Rate::Fixed(rate)) = load.rate else {
                            panic!("{}: not a fixed rate", load.name);
                        };
                        assert_eq!(value("rate"), Some(rate.to_string()));
                        let rates = if load.new_conn {
                            assert_eq!(value("load").as_deref(), Some("newconn"));
                            sizes.cost_rates_newconn
                        } else {
                            assert_eq!(value("load").as_deref(), Some("keepalive"));
                            sizes.cost_rates_keepalive
                        };
                        assert!(rates.contains(&rate), "{}", load.name);
                    }
                }
            }
            if !quick {
                assert!(sizes.cost_rounds >= 5 && sizes.cost.0 >= ms(5000));
                assert_ne!(plan.cost_orders, plan.round_orders);
            }
        }
    }

    /// §1c as the renderer pairs it: every round holds every server once
    /// (`proxy` with each relay, nginx when it is a peer, Node.js not), each
    /// with the same sizes at the same rates, labelled with its size, rate
    /// and round, `proxy` with its `--relay` as label and flag; the answer
    /// size is in the target's path and the upload's in `--body-bytes`; at
    /// most 192 MiB/s offered; within its budget (~3 min full, ~15 s quick).
    #[test]
    fn copies_rounds_run_every_server_at_the_same_rates() {
        for quick in [true, false] {
            let plan = Plan::new(Settings {
                quick,
                peers: vec![Label::Nginx, Label::NodeRr, Label::NodeNone],
                ..settings(3)
            });
            let sizes = plan.sizes;
            let servers = servers_of(&plan, "copies-");
            let per_round = 6;
            assert_eq!(servers.len(), sizes.copies_rounds * per_round);
            for (r, order) in plan.copies_orders().iter().enumerate() {
                let round = &servers[r * per_round..(r + 1) * per_round];
                let ran: Vec<Label> = round.iter().map(|server| server.mode).collect();
                let planned: Vec<Label> = order.iter().map(|server| server.mode).collect();
                assert_eq!(ran, planned, "round {}", r + 1);
                assert!(!ran.contains(&Label::NodeRr) && ran.contains(&Label::Nginx));
                let relays: Vec<&[String]> = round
                    .iter()
                    .filter(|server| server.mode == Label::Proxy)
                    .map(|server| server.extra.as_slice())
                    .collect();
                assert_eq!(relays.len(), 2);
                assert!(relays.contains(&&["--relay".to_owned(), "splice".to_owned()][..]));
                assert!(relays.contains(&&["--relay".to_owned(), "copy".to_owned()][..]));
                for server in round {
                    assert_eq!(
                        server.loads.len(),
                        sizes.copies_answers.len() + sizes.copies_uploads.len()
                    );
                    for load in &server.loads {
                        let value = |key: &str| label_value(load, key);
                        assert_eq!(value("section").as_deref(), Some("copies"));
                        assert_eq!(value("round"), Some((r + 1).to_string()));
                        assert_eq!(value("relay").is_some(), server.mode == Label::Proxy);
                        let bytes = match (load.answer_bytes, load.body_bytes) {
                            (Some(bytes), None) => {
                                assert_eq!(load.path(), format!("/?bytes={bytes}"));
                                assert_eq!(value("answer_bytes"), Some(bytes.to_string()));
                                bytes
                            }
                            (None, Some(bytes)) => {
                                assert_eq!(load.path(), "/");
                                assert_eq!(value("body_bytes"), Some(bytes.to_string()));
                                let args = load.args(Resolved {
                                    rate: None,
                                    first_worker: 1,
                                });
                                assert!(args.join(" ").contains(&format!("--body-bytes {bytes}")));
                                bytes
                            }
                            other => panic!("{}: {other:?}", load.name),
                        };
                        let Some(Rate::Fixed(rate)) = load.rate else {
                            panic!("{}: not a fixed rate", load.name);
                        };
                        assert_eq!(rate, copies_rate(bytes));
                        assert_eq!(value("rate"), Some(rate.to_string()));
                        assert!(rate * bytes <= COPIES_BYTES_PER_S, "{}", load.name);
                    }
                }
            }
            let mut copies = plan.clone();
            copies.blocks.retain(|block| {
                matches!(block, Block::Server(server) if server.loads[0].name.starts_with("copies-"))
            });
            let budget = if quick { 15 } else { 180 };
            assert!(
                copies.estimate().seconds() <= budget,
                "{} s",
                copies.estimate().seconds()
            );
        }
        assert_eq!(copies_rate(64), COST_RATES_KEEPALIVE[0]);
        assert_eq!(copies_rate(64 * KIB), 3_072);
        assert_eq!(copies_rate(MIB), 192);
    }

    /// A load's flags, with what the run fills in.
    #[test]
    fn a_stall_loads_the_first_worker() {
        let plan = Plan::new(settings(1));
        let stall = plan
            .blocks
            .iter()
            .find_map(|block| match block {
                Block::Server(server) => server
                    .loads
                    .iter()
                    .find(|l| l.name.starts_with("fairness-stall-")),
                Block::Upgrade(_) => None,
            })
            .expect("a stall run");
        let args = stall
            .args(Resolved {
                rate: None,
                first_worker: 42,
            })
            .join(" ");
        assert!(
            args.contains("--stop 42 --stop-after 100ms --stop-after 500ms --stop-for 250ms"),
            "{args}"
        );
        assert!(args.contains("--sample-interval 20ms"), "{args}");
    }

    /// §4's small-backlog run (issue 24): one `handoff-reuseport` server
    /// with `--backlog 8` in a namespace of its own, its first worker
    /// stopped once for longer than the queue takes to fill, and a window
    /// that outlasts the stall by more than the 1 s of a SYN's
    /// retransmission; the only block that needs a namespace of its own, in both plans.
    #[test]
    fn the_small_backlog_run_overflows_in_its_own_namespace() {
        for quick in [true, false] {
            let plan = Plan::new(Settings {
                quick,
                ..settings(1)
            });
            let in_netns: Vec<&ServerBlock> = plan
                .blocks
                .iter()
                .filter_map(|block| match block {
                    Block::Server(server) if server.netns == Netns::Own => Some(server),
                    _ => None,
                })
                .collect();
            assert_eq!(in_netns.len(), 1);
            let block = in_netns[0];
            assert_eq!(block.mode, Label::HandoffReuseport);
            assert_eq!(block.extra, ["--backlog", "8"]);
            let [load] = block.loads.as_slice() else {
                panic!("one load: {:?}", block.loads);
            };
            assert!(load.name.starts_with("fairness-"), "{}", load.name);
            assert!(load.labels.contains(&("backlog", "8".to_owned())));
            assert!(!load.labels.iter().any(|(key, _)| *key == "stall_ms"));
            let (after, stop_for) = load.stop.clone().expect("a stall");
            assert_eq!(after.len(), 1);
            assert!(load.duration >= after[0] + stop_for + Duration::from_secs(1));
            let args = load
                .args(Resolved {
                    rate: None,
                    first_worker: 42,
                })
                .join(" ");
            assert!(args.contains("--new-conn"), "{args}");
            assert!(
                args.contains("--stop 42 --stop-after 100ms --stop-for 800ms"),
                "{args}"
            );
            assert!(args.contains("--sample-interval 20ms"), "{args}");
        }
    }

    /// §2 (issue 23): every mode once, in a namespace and a memory cgroup
    /// of its own, holding ascending counts of connections (38,000 at most
    /// in the full run, 5,000 in the quick one) with `--hold` from eight
    /// source addresses; about 10 s quick and 2 min full in the estimate.
    #[test]
    fn the_bill_at_scale_holds_up_to_38000_connections_apart() {
        for (quick, most, at_most_s) in [(true, 5_000, 30), (false, 38_000, 180)] {
            let plan = Plan::new(Settings {
                quick,
                ..settings(1)
            });
            let blocks: Vec<&ServerBlock> = plan
                .blocks
                .iter()
                .filter_map(|block| match block {
                    Block::Server(server)
                        if server.loads[0]
                            .labels
                            .contains(&label("section", Section::FdBill)) =>
                    {
                        Some(server)
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(blocks.len(), cluster::Mode::ALL.len());
            let mut estimate = Estimate::default();
            for block in &blocks {
                assert_eq!(block.netns, Netns::OwnIfPossible, "{}", block.mode);
                assert!(block.memory_cgroup, "{}", block.mode);
                let counts: Vec<usize> = block.loads.iter().map(|load| load.connections).collect();
                assert!(
                    counts.windows(2).all(|pair| pair[0] < pair[1]),
                    "{counts:?}"
                );
                assert_eq!(counts.last(), Some(&most));
                for load in &block.loads {
                    let args = load
                        .args(Resolved {
                            rate: None,
                            first_worker: 42,
                        })
                        .join(" ");
                    assert!(
                        args.contains("--hold --source-ips 127.0.0.2-127.0.0.9"),
                        "{args}"
                    );
                    assert!(args.contains("--timeout 2s"), "{args}");
                }
                let one = Plan {
                    blocks: vec![Block::Server((*block).clone())],
                    ..plan.clone()
                };
                let part = one.estimate();
                estimate.steps += part.steps;
                estimate.starts += part.starts;
                estimate.loads += part.loads;
            }
            assert!(estimate.seconds() <= at_most_s, "{}", estimate.seconds());
        }
    }
}
