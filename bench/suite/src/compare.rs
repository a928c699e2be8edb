//! The comparison (`scripts/compare.sh`): every way of sharing one port
//! under the same loads, measured by loadgen, written as a results folder
//! people learn from (ARCHITECTURE.md, "The comparison"). The flags are
//! checked before anything is built or run; then the [`Plan`] runs, block
//! by block, the very list `--dry-run` prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use cluster::cli::UsageError;
use runs::folder::{ANSWERS_FILE, Answer, AnswersFile, PEERS_FILE, PeerRun, PeersFile};
use runs::labels::{Load as LoadKind, Mode as Label};

use crate::answer::{self, ANSWER_TIMEOUT};
use crate::loadgen::Loadgen;
use crate::peers::{self, Nginx};
use crate::plan::{self, Block, Netns, Plan, Rate, Resolved, ServerBlock, Settings};
use crate::server::{CommandLog, Launcher, Running, Serve};
use crate::sweep::{self, Rates};
use crate::system::{self, duration_text};
use crate::upgrade;

/// The name of §2's memory cgroups, `portshare-PID-STEP`: the harness's pid,
/// so that one a killed run left behind is known as stale
/// ([`launch::cgroup::remove_stale`]).
const CGROUP_PREFIX: &str = "portshare";

/// `scripts/compare.sh`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Fewer, shorter runs (every section still present, 1 round, a sweep
    /// of 3 rates and a knee's middle, §0 at one rate per load in 2 rounds), ~3 min after the
    /// build on 2 cores.
    #[arg(long)]
    pub quick: bool,
    /// Where to write (default `results/<date>-<host>/`): REPORT.md, SVG
    /// charts, runs/*.json, README.md (the machine, the affinity, the seed:
    /// how to reproduce), commands.log, answers.json (each server's answer
    /// to one request), peers.json (how each peer ran) and peers/ (the
    /// peers' exact configurations).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Workers per cluster.
    #[arg(long, value_name = "N", default_value = "2")]
    pub workers: String,
    /// Rounds of the throughput matrix (§1), every mode once per round, in
    /// an order shuffled per round (default 5 of 5 s; 1 with --quick); §0
    /// and §4 have their own.
    #[arg(long, value_name = "K")]
    pub repeats: Option<String>,
    /// The seed of that shuffle (default: the clock); the same seed gives
    /// the same order; recorded in README.md.
    #[arg(long, value_name = "N")]
    pub seed: Option<String>,
    /// Pin loadgen to these CPUs (taskset's lists: `0`, `0-1`, `2,3`);
    /// with --server-cpus, both or neither. Default: with 4 CPUs or more,
    /// loadgen on the lower half and the server on the upper half; with
    /// fewer, shared (no pinning, and README.md says so first).
    #[arg(long, value_name = "LIST")]
    pub loadgen_cpus: Option<String>,
    /// Pin the server tree (master, workers, peers) to these CPUs.
    #[arg(long, value_name = "LIST")]
    pub server_cpus: Option<String>,
    /// Measure nginx (stream proxy) and Node.js cluster too; on by default
    /// when they are installed, skipped with a line saying how otherwise.
    #[arg(long, overrides_with = "no_peers")]
    pub peers: bool,
    /// Measure no peer.
    #[arg(long, overrides_with = "peers")]
    pub no_peers: bool,
    /// Print the plan (affinity, seed, every load in order as [n/total],
    /// the sweep's rate rule, an estimate of the total seconds from the
    /// planned durations) and exit, building and starting nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Where loadgen and the server tree run.
#[derive(Debug, Clone)]
struct Affinity {
    /// The CPUs this process may use.
    machine: Vec<usize>,
    /// Loadgen's taskset list, if pinned.
    loadgen: Option<String>,
    /// The server tree's taskset list, if pinned.
    server: Option<String>,
    /// The sentence README.md opens with: `CPUs pinned: …` or `CPUs shared: …`.
    text: String,
}

/// A positive integer flag, or the usage error `message`.
fn positive(text: &str, message: &str) -> anyhow::Result<usize> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 && !text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(n)
        }
        _ => Err(UsageError(message.to_owned()).into()),
    }
}

/// Checks the CPU lists against this machine; what cannot be honoured is a
/// usage error, before anything is built or run.
fn affinity(args: &Args) -> anyhow::Result<Affinity> {
    let usage = |message: String| -> anyhow::Error { UsageError(message).into() };
    let machine = system::cpus_allowed("self")
        .and_then(|list| system::cpu_list(&list))
        .unwrap_or_default();
    let ours = machine.iter().map(usize::to_string).collect::<Vec<_>>();
    let (loadgen, server, origin) = match (&args.loadgen_cpus, &args.server_cpus) {
        (None, None) if machine.len() >= 4 => {
            let half = machine.len() / 2;
            (
                Some(ours[..half].join(",")),
                Some(ours[half..].join(",")),
                format!(
                    "the default with {} CPUs: the lower half for loadgen, the upper half for the server",
                    machine.len()
                ),
            )
        }
        (None, None) => (None, None, String::new()),
        (Some(loadgen), Some(server)) => {
            let mut sets = Vec::new();
            for (flag, list) in [("loadgen", loadgen), ("server", server)] {
                let cpus = system::cpu_list(list).ok_or_else(|| {
                    usage(format!(
                        "--{flag}-cpus {list} is not a CPU list like 0, 0-1 or 2,3"
                    ))
                })?;
                if let Some(cpu) = cpus.iter().find(|cpu| !machine.contains(cpu)) {
                    return Err(usage(format!(
                        "--{flag}-cpus {list}: this machine has no CPU {cpu} for us (ours: {})",
                        ours.join(" ")
                    )));
                }
                sets.push(cpus);
            }
            if let Some(cpu) = sets[0].iter().find(|cpu| sets[1].contains(cpu)) {
                return Err(usage(format!(
                    "--loadgen-cpus {loadgen} and --server-cpus {server} overlap (CPU {cpu})"
                )));
            }
            (
                Some(loadgen.clone()),
                Some(server.clone()),
                format!("given: `--loadgen-cpus {loadgen} --server-cpus {server}`"),
            )
        }
        _ => {
            return Err(usage(
                "--loadgen-cpus and --server-cpus go together: give both or neither".to_owned(),
            ));
        }
    };
    let text = match (&loadgen, &server) {
        (Some(loadgen), Some(server)) => {
            if system::which("taskset").is_none() {
                return Err(usage(
                    "pinning needs taskset (util-linux), which is not installed".to_owned(),
                ));
            }
            format!(
                "CPUs pinned: loadgen on CPUs {loadgen}, the server tree on CPUs {server} ({origin})"
            )
        }
        _ => format!(
            "CPUs shared: loadgen and the server ran on the same {} CPUs ({}; no pinning by default with fewer than 4), so every figure at saturation includes loadgen's own CPU",
            machine.len(),
            ours.join(",")
        ),
    };
    Ok(Affinity {
        machine,
        loadgen,
        server,
        text,
    })
}

/// The peers to measure: `--peers` insists (a missing one is a usage
/// error), `--no-peers` refuses, by default those installed, each missing
/// one said on stderr.
fn peers(args: &Args) -> anyhow::Result<(Vec<Label>, bool, bool)> {
    if args.no_peers {
        return Ok((Vec::new(), false, false));
    }
    let (nginx, node) = peers::installed();
    if args.peers && !(nginx && node) {
        return Err(UsageError(
            "--peers asked, but nginx with its stream module or node is missing\n  install: apt-get install nginx libnginx-mod-stream; Node.js 20".to_owned(),
        )
        .into());
    }
    if !nginx {
        eprintln!("peers: nginx skipped (apt-get install nginx libnginx-mod-stream)");
    }
    if !node {
        eprintln!("peers: Node.js skipped (install Node.js 20)");
    }
    let mut modes = Vec::new();
    if nginx {
        modes.push(Label::Nginx);
    }
    if node {
        modes.extend([Label::NodeRr, Label::NodeNone]);
    }
    Ok((modes, nginx, node))
}

/// Runs the comparison; exit 0, or an error (a usage error: exit 2).
pub fn run(args: Args) -> anyhow::Result<()> {
    let workers = positive(&args.workers, "--workers must be a positive integer")?;
    let repeats = match &args.repeats {
        Some(text) => positive(text, "--repeats must be a positive integer")?,
        None if args.quick => 1,
        None => 5,
    };
    let seed = match &args.seed {
        Some(text)
            if (1..=18).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            text.parse()
                .map_err(|_| UsageError("--seed must be a non-negative integer".into()))?
        }
        Some(_) => return Err(UsageError("--seed must be a non-negative integer".into()).into()),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
    };
    let affinity = affinity(&args)?;
    let (peer_modes, have_nginx, have_node) = peers(&args)?;
    // §2 holds tens of thousands of connections, and the servers inherit
    // this process's fd limit: the soft one raised to the hard one, as far
    // as it goes (the plan labels §2's runs with it).
    cluster::rlimit::raise_soft_to_hard().context("RLIMIT_NOFILE")?;
    // The memory cgroups of an earlier run killed before it removed them.
    launch::cgroup::remove_stale(CGROUP_PREFIX);
    let plan = Plan::new(Settings {
        quick: args.quick,
        workers,
        repeats,
        seed,
        peers: peer_modes,
    });
    if args.dry_run {
        print_plan(&plan, &affinity);
        return Ok(());
    }
    let root = system::workspace();
    // The sources the binaries are built from: before the build, and before
    // this run writes anything.
    let (_, git_status) = system::git_state(&root);
    eprintln!("building (cargo build --release)");
    system::build_release(&root, &["proxy", "handoff", "loadgen", "report"])?;
    let date = system::utc_now();
    let out = args.out.clone().unwrap_or_else(|| {
        root.join("results")
            .join(format!("{}-{}", &date[..10], system::short_hostname()))
    });
    std::fs::create_dir_all(out.join("runs"))
        .with_context(|| format!("create {}", out.join("runs").display()))?;
    for entry in std::fs::read_dir(out.join("runs"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            std::fs::remove_file(&path)?;
        }
    }
    // What an earlier run into this folder left: each is written afresh.
    for stale in ["commands.sh", ANSWERS_FILE, PEERS_FILE] {
        let _ = std::fs::remove_file(out.join(stale));
    }
    let commands_path = out.join("commands.log");
    std::fs::write(
        &commands_path,
        "# A log of every command the comparison ran, in order, with this run's pids and ports: a record, not a script to rerun\n",
    )?;
    let tmp = tempfile::tempdir().context("a scratch folder")?;
    let bin = root.join("target/release");
    let commands = CommandLog(Some(commands_path));
    let mut run = Run {
        plan: &plan,
        out: out.clone(),
        tmp: tmp.path().to_path_buf(),
        launcher: Launcher {
            bin_dir: bin.clone(),
            server_cpus: affinity.server.clone(),
            commands: commands.clone(),
            log: Some(tmp.path().join("log")),
            peers_dir: peers::folder(&out),
        },
        loadgen: Loadgen {
            bin: bin.join("loadgen"),
            cpus: affinity.loadgen.clone(),
            commands: commands.clone(),
        },
        rates: BTreeMap::new(),
        affinity_counts: BTreeMap::new(),
        step: 0,
        total: plan.steps().len(),
        started: Instant::now(),
        upgrades_said: false,
        answers: Vec::new(),
        peers_ran: Vec::new(),
    };
    for block in &plan.blocks {
        match block {
            Block::Server(server) => run.server(server)?,
            Block::Upgrade(cell) => run.upgrade(cell)?,
        }
    }
    let spent = run.started.elapsed().as_secs();
    let readme = readme(
        &run,
        &args,
        &affinity,
        &git_status,
        (have_nginx, have_node),
        spent,
        &date,
    );
    std::fs::write(out.join("README.md"), readme)?;
    commands.record(&[bin.join("report").as_os_str(), out.as_os_str()]);
    let status = std::process::Command::new(bin.join("report"))
        .arg(&out)
        .status()
        .context("run report")?;
    anyhow::ensure!(
        status.success(),
        "report {} failed: {status}",
        out.display()
    );
    eprintln!("report: {}", out.join("REPORT.md").display());
    Ok(())
}

/// `--dry-run`: the affinity, the seed, every step as `[n/total] NAME`, §0's
/// rates, the sweep's rule and the estimate.
fn print_plan(plan: &Plan, affinity: &Affinity) {
    println!("affinity: {}", affinity.text);
    println!("seed: {}", plan.settings.seed);
    let steps = plan.steps();
    for (n, name) in steps.iter().enumerate() {
        println!("[{}/{}] {name}", n + 1, steps.len());
    }
    println!("cost (§0): {}", plan.cost_rule());
    println!("sweep (§1b): {}", plan.sweep_rule());
    println!("copies (§1c): {}", plan.copies_rule());
    let estimate = plan.estimate();
    let seconds = estimate.seconds();
    println!(
        "estimate: {seconds} s ({}) of loads after the build: {} loads, their warm-ups and durations {} s, {} ms more each, {} server starts at {} ms; the sweep's steps behind their schedule may add up to {} s more (their --timeout)",
        duration_text(seconds),
        estimate.steps,
        estimate.loads.as_secs(),
        plan::LOAD_OVERHEAD.as_millis(),
        estimate.starts,
        plan::START_OVERHEAD.as_millis(),
        estimate.drain.as_secs(),
    );
}

/// A comparison under way.
struct Run<'a> {
    /// What it runs.
    plan: &'a Plan,
    /// The results folder.
    out: PathBuf,
    /// Scratch: the servers' log, loadgen's output, nginx's files.
    tmp: PathBuf,
    /// How servers start.
    launcher: Launcher,
    /// How loadgen runs.
    loadgen: Loadgen,
    /// The sweep's rates per load, once §1 has run.
    rates: BTreeMap<LoadKind, Rates>,
    /// How many server processes were allowed which CPUs, read after each
    /// start.
    affinity_counts: BTreeMap<String, usize>,
    /// The step under way, from 1.
    step: usize,
    /// The steps of the plan.
    total: usize,
    /// When the loads began.
    started: Instant,
    /// Whether §8's settings were said on stderr (at its first cell).
    upgrades_said: bool,
    /// Each server's answer to one `GET /` at its first start
    /// (`answers.json`), in the labels' order.
    answers: Vec<Answer>,
    /// How each peer ran, read at its first start (`peers.json`).
    peers_ran: Vec<PeerRun>,
}

/// A server of a block, with where loadgen aims.
struct Started {
    /// nginx in front, for the peer (stopped first).
    nginx: Option<Nginx>,
    /// The master (of the cluster behind nginx, for the peer).
    server: Running,
    /// The ports loadgen loads: the public port, or for `direct` every
    /// worker's own port.
    targets: Vec<u16>,
    /// The pids loadgen watches, the one it counts as the master first.
    watches: Vec<u32>,
}

impl Run<'_> {
    /// The progress line of the next step on stderr: `[n/total] NAME (time
    /// spent, ~time left at the pace so far)`.
    fn progress(&mut self, name: &str) {
        self.step += 1;
        let spent = self.started.elapsed().as_secs();
        let left = if self.step == 1 {
            "?".to_owned()
        } else {
            duration_text(spent * (self.total - self.step + 1) as u64 / (self.step - 1) as u64)
        };
        eprintln!(
            "[{}/{}] {name} ({}, ~{left} left)",
            self.step,
            self.total,
            duration_text(spent)
        );
    }

    /// Starts `block`'s server, as its mode wants it.
    fn start(&mut self, block: &ServerBlock) -> anyhow::Result<Started> {
        let server =
            self.launcher
                .start(Serve::of(block.mode), block.workers, &block.extra, &[])?;
        let ready = server.line().clone();
        let mut started = Started {
            nginx: None,
            targets: vec![ready.port()],
            watches: vec![ready.master_pid],
            server,
        };
        match block.mode {
            Label::Direct => started.targets = ready.worker_ports(),
            Label::Nginx => {
                let nginx = Nginx::start(
                    &ready.worker_ports(),
                    &self.tmp.join("nginx"),
                    &peers::folder(&self.out).join("nginx.conf"),
                    self.launcher.server_cpus.as_deref(),
                    &self.launcher.commands,
                    &self.tmp.join("log"),
                )?;
                started.targets = vec![nginx.port];
                started.watches.insert(0, nginx.pid());
                started.nginx = Some(nginx);
            }
            _ => {}
        }
        let mut pids: Vec<u32> = started.nginx.iter().map(Nginx::pid).collect();
        pids.push(ready.master_pid);
        pids.extend(ready.worker_pids());
        for pid in pids {
            let cpus = system::cpus_allowed(&pid.to_string()).unwrap_or_else(|| "gone".to_owned());
            *self.affinity_counts.entry(cpus).or_default() += 1;
        }
        if !self.answers.iter().any(|answer| answer.name == block.mode) {
            self.first_start(block.mode, &started)?;
        }
        Ok(started)
    }

    /// At a server's first start, before any load: its answer to one
    /// `GET /` where loadgen aims (for `direct`, the first worker's own
    /// port), and for a peer how it ran; both files written again, so that
    /// a run cut short keeps what it learnt.
    fn first_start(&mut self, mode: Label, started: &Started) -> anyhow::Result<()> {
        let port = *started.targets.first().context("a server without a port")?;
        self.answers.push(answer::ask(mode, port, ANSWER_TIMEOUT)?);
        // In the report's order (the baseline, the modes, the peers), not
        // the shuffled order of their first starts.
        self.answers.sort_by_key(|answer| answer.name);
        write_json(
            &self.out.join(ANSWERS_FILE),
            &AnswersFile {
                answers: self.answers.clone(),
            },
        )?;
        if mode.is_peer() {
            let ready = started.server.line();
            let (pid, conf) = match &started.nginx {
                Some(nginx) => (nginx.pid(), Some(nginx.conf.as_str())),
                None => (ready.master_pid, None),
            };
            self.peers_ran
                .push(peers::ran(mode, pid, &ready.worker_pids(), conf)?);
            write_json(
                &self.out.join(PEERS_FILE),
                &PeersFile {
                    peers: self.peers_ran.clone(),
                },
            )?;
        }
        Ok(())
    }

    /// A server block, in a network namespace of its own if it asks for
    /// one (without root: its loads skipped, said in one line each).
    fn server(&mut self, block: &ServerBlock) -> anyhow::Result<()> {
        if block.netns == Netns::Shared {
            return self.server_here(block);
        }
        match launch::netns::in_new_netns(&[], || self.server_here(block)) {
            Ok(result) => result,
            Err(err) if block.netns == Netns::OwnIfPossible => {
                eprintln!(
                    "{}: no network namespace here (it needs root: {err}); in this one",
                    block.mode
                );
                self.server_here(block)
            }
            Err(err) => {
                for load in &block.loads {
                    self.progress(&format!(
                        "{} (skipped: no network namespace here, it needs root: {err})",
                        load.name
                    ));
                }
                Ok(())
            }
        }
    }

    /// A server block in this thread's network namespace: start, every
    /// load, stop.
    fn server_here(&mut self, block: &ServerBlock) -> anyhow::Result<()> {
        let mut started = self.start(block)?;
        // Dropped after the server stopped, below (a cgroup with a process
        // in it cannot be removed).
        let _cgroup = if block.memory_cgroup {
            self.memory_cgroup(&started)
        } else {
            None
        };
        // A hold load that could not hold all its connections: the mode's
        // limit, past which the block's larger hold loads are skipped.
        let mut short: Option<String> = None;
        for load in &block.loads {
            if let (Some(_), Some(why)) = (load.hold, &short) {
                self.progress(&format!("{} (skipped: {why})", load.name));
                continue;
            }
            let mut resolved = Resolved {
                rate: None,
                first_worker: started.server.first_worker(),
            };
            let mut labels = load.labels.clone();
            let rate = match load.rate {
                Some(Rate::Sweep { load: kind, step }) => {
                    let rates = self.rates(kind)?;
                    let Some(&rate) = rates.rates.get(step - 1) else {
                        self.progress(&format!(
                            "{} (skipped: the rule gave {} rates)",
                            load.name,
                            rates.rates.len()
                        ));
                        continue;
                    };
                    Some(rate)
                }
                Some(Rate::Knee { load: kind, point }) => {
                    let ladder = self.rates(kind)?.rates;
                    let runs = self.out.join("runs");
                    let Some(knee) = sweep::knee(&runs, block.mode, kind, &ladder)? else {
                        self.progress(&format!(
                            "{} (skipped: a ladder of {} rate(s) has no knee)",
                            load.name,
                            ladder.len()
                        ));
                        continue;
                    };
                    Some(knee.rate(point))
                }
                _ => None,
            };
            if let Some(rate) = rate {
                resolved.rate = Some(rate);
                labels.push(("rate", rate.to_string()));
            }
            self.progress(&load.name);
            let mut args = Vec::new();
            for port in &started.targets {
                args.extend([
                    "--target".to_owned(),
                    format!("http://127.0.0.1:{port}{}", load.path()),
                ]);
            }
            for pid in &started.watches {
                args.extend(["--watch".to_owned(), pid.to_string()]);
            }
            for (key, value) in &labels {
                args.extend(["--label".to_owned(), format!("{key}={value}")]);
            }
            args.extend(["--label".to_owned(), format!("workers={}", block.workers)]);
            args.extend([
                "--json".to_owned(),
                self.out
                    .join("runs")
                    .join(format!("{}.json", load.name))
                    .to_string_lossy()
                    .into_owned(),
            ]);
            args.extend(load.args(resolved));
            self.loadgen.run(
                &args,
                &self.tmp.join("loadgen.log"),
                &format!(" for {}", load.name),
            )?;
            if load.hold.is_some() {
                let run: runs::Report =
                    runs::read_json(&self.out.join("runs").join(format!("{}.json", load.name)))?;
                let held = run.hold.as_ref().map_or(0, |hold| hold.held);
                if held < load.connections as u64 {
                    short = Some(format!(
                        "{} held {held} of {} connections",
                        load.name, load.connections
                    ));
                }
            }
        }
        if let Some(nginx) = &mut started.nginx {
            nginx.stop();
        }
        started.server.stop()?;
        Ok(())
    }

    /// A memory cgroup of the server's own, its master and workers moved
    /// in (nginx, a peer, stays out); `None`, said in one line, where none
    /// can be made.
    fn memory_cgroup(&mut self, started: &Started) -> Option<launch::cgroup::MemoryCgroup> {
        let ready = started.server.line();
        let name = format!("{CGROUP_PREFIX}-{}-{}", std::process::id(), self.step);
        let made = launch::cgroup::MemoryCgroup::create(&name).and_then(|cgroup| {
            let mut pids = vec![ready.master_pid];
            pids.extend(ready.worker_pids());
            cgroup.adopt(&pids)?;
            Ok(cgroup)
        });
        match made {
            Ok(cgroup) => Some(cgroup),
            Err(err) => {
                eprintln!(
                    "no memory cgroup for {} (its kernel memory is not measured): {err}",
                    ready.master_pid
                );
                None
            }
        }
    }

    /// The sweep's rates of `kind`, from §1's runs, computed at the first
    /// sweep step and said on stderr.
    fn rates(&mut self, kind: LoadKind) -> anyhow::Result<Rates> {
        if !self.rates.contains_key(&kind) {
            for kind in [LoadKind::KeepAlive, LoadKind::NewConn] {
                let rates = sweep::rates(
                    &self.out.join("runs"),
                    kind,
                    self.plan.sizes.sweep_steps,
                    self.plan.sizes.sweep_ratio,
                )?;
                eprintln!(
                    "sweep, {kind}: {} requests/s (slowest {} {:.0}/s, fastest {} {:.0}/s)",
                    rates
                        .rates
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                    rates.slowest.0,
                    rates.slowest.1,
                    rates.fastest.0,
                    rates.fastest.1
                );
                self.rates.insert(kind, rates);
            }
        }
        Ok(self.rates[&kind].clone())
    }

    /// §8: one cell of the upgrade driver, its run in `runs/`.
    fn upgrade(&mut self, cell: &plan::Cell) -> anyhow::Result<()> {
        let (upgrades, lead, every) = self.plan.sizes.upgrade;
        if !self.upgrades_said {
            self.upgrades_said = true;
            eprintln!(
                "upgrades: open loop at {} requests/s, --init-delay {}, {}",
                plan::UPGRADE_RATE,
                system::flag(plan::UPGRADE_INIT_DELAY),
                self.plan.upgrade_args()
            );
        }
        self.progress(&cell.name());
        let options = upgrade::Options {
            bin_dir: self.launcher.bin_dir.clone(),
            workers: self.plan.settings.workers,
            init_delay: plan::UPGRADE_INIT_DELAY,
            strategies: vec![cell.strategy],
            upgrades,
            every,
            lead,
            rate: Some(plan::UPGRADE_RATE),
            out: Some(self.out.join("runs")),
            loadgen_cpus: self.loadgen.cpus.clone(),
            server_cpus: self.launcher.server_cpus.clone(),
            commands: self.launcher.commands.clone(),
            log: Some(self.tmp.join("log")),
            modes: vec![cell.mode],
        };
        self.launcher.commands.record(&options.command_line());
        upgrade::cell(&options, cell.mode, cell.strategy).with_context(|| {
            format!(
                "the upgrade driver failed for {} {}",
                cell.mode, cell.strategy
            )
        })?;
        Ok(())
    }
}

/// Writes `value`, a file of the run model (`runs::folder`), to `path` as
/// the JSON its reader reads.
fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)
        .with_context(|| format!("{} as JSON", path.display()))?;
    std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))
}

/// README.md of the results folder: what reproduces the run.
fn readme(
    run: &Run<'_>,
    args: &Args,
    affinity: &Affinity,
    git_status: &str,
    (have_nginx, have_node): (bool, bool),
    spent: u64,
    date: &str,
) -> String {
    let plan = run.plan;
    let settings = &plan.settings;
    let root = system::workspace();
    let (git_revision, _) = system::git_state(&root);
    let mut text = String::new();
    let (head, rest) = affinity
        .text
        .split_once(':')
        .unwrap_or((&affinity.text, ""));
    let pinned = match (&affinity.loadgen, &affinity.server) {
        (Some(loadgen), Some(server)) => {
            format!(" --loadgen-cpus {loadgen} --server-cpus {server}")
        }
        _ => String::new(),
    };
    let _ = writeln!(text, "# How this report was made\n");
    // The first lines: whether loadgen shared the server's CPUs.
    let _ = writeln!(text, "**{head}**:{rest}.\n");
    let _ = writeln!(
        text,
        "Run: `scripts/compare.sh{} --workers {} --repeats {} --seed {}{pinned}`, {} {} UTC, {} of loads (the plan's estimate: {}, `--dry-run` prints it).\n",
        if args.quick { " --quick" } else { "" },
        settings.workers,
        settings.repeats,
        settings.seed,
        &date[..10],
        &date[11..16],
        duration_text(spent),
        duration_text(plan.estimate().seconds()),
    );
    if git_status.is_empty() {
        let _ = writeln!(
            text,
            "- git revision: {git_revision}, clean (nothing uncommitted)"
        );
    } else {
        let _ = writeln!(
            text,
            "- git revision: {git_revision}, with uncommitted changes (`git status --porcelain` before the build):\n"
        );
        let _ = writeln!(text, "  ```");
        for line in git_status.lines() {
            let _ = writeln!(text, "  {line}");
        }
        let _ = writeln!(text, "  ```\n");
    }
    let rustc = system::output_of("rustc", &["-V"]).unwrap_or_else(|| "unknown".to_owned());
    let _ = writeln!(text, "- rustc: {rustc}");
    let _ = writeln!(
        text,
        "- CPU: {}, {} cores, {} usable here",
        system::cpu_model(),
        system::cpus_configured(),
        affinity.machine.len()
    );
    let _ = writeln!(text, "- kernel: {}", system::kernel());
    let (soft, hard) = system::nofile_limits();
    let _ = writeln!(text, "- ulimit -n: {soft} (soft), {hard} (hard)");
    let sysctls: Vec<String> = [
        "net.core.somaxconn",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.tcp_tw_reuse",
        "net.ipv4.ip_local_port_range",
        "fs.file-max",
    ]
    .iter()
    .map(|key| format!("`{key} = {}`", system::sysctl(key)))
    .collect();
    let _ = writeln!(text, "- sysctls: {}", sysctls.join(", "));
    let placed: Vec<String> = run
        .affinity_counts
        .iter()
        .map(|(cpus, n)| format!("{n} on CPUs {cpus}"))
        .collect();
    let _ = writeln!(
        text,
        "- affinity: loadgen {}; the server processes, Cpus_allowed_list read from /proc/PID/status after each start: {}",
        affinity.loadgen.as_ref().map_or_else(
            || "not pinned".to_owned(),
            |cpus| format!("pinned to CPUs {cpus}")
        ),
        placed.join("; ")
    );
    let _ = writeln!(
        text,
        "- round order (seed {}; SplitMix64 seeded with it, one Fisher–Yates shuffle per round):",
        settings.seed
    );
    for (r, order) in plan.round_orders.iter().enumerate() {
        let names: Vec<String> = order.iter().map(ToString::to_string).collect();
        let _ = writeln!(text, "  round {}: {}", r + 1, names.join(" "));
    }
    let _ = writeln!(
        text,
        "- cost at equal load (§0): {}; round order:",
        plan.cost_rule()
    );
    for (r, order) in plan.cost_orders.iter().enumerate() {
        let names: Vec<String> = order.iter().map(ToString::to_string).collect();
        let _ = writeln!(text, "  round {}: {}", r + 1, names.join(" "));
    }
    let _ = writeln!(
        text,
        "- the cost of the bytes (§1c): {}; round order:",
        plan.copies_rule()
    );
    for (r, order) in plan.copies_orders().iter().enumerate() {
        let names: Vec<String> = order.iter().map(|server| format!("`{server}`")).collect();
        let _ = writeln!(text, "  round {}: {}", r + 1, names.join(" "));
    }
    let _ = writeln!(
        text,
        "- §4 order (seed {} + 4, the same way; `MODE:STRATEGY` is `handoff --pass listener --accept STRATEGY`):",
        settings.seed
    );
    for (r, order) in plan.fairness_orders.iter().enumerate() {
        let names: Vec<String> = order.iter().map(ToString::to_string).collect();
        let _ = writeln!(text, "  round {}: {}", r + 1, names.join(" "));
    }
    let nginx = if have_nginx {
        format!("nginx {}", peers::version(Label::Nginx))
    } else {
        "nginx not measured".to_owned()
    };
    let node = if have_node {
        format!(", Node.js {}", peers::version(Label::NodeRr))
    } else {
        ", Node.js not measured".to_owned()
    };
    let _ = writeln!(text, "- peers: {nginx}{node}");
    let sizes = plan.sizes;
    let _ = writeln!(
        text,
        "- sweep (§1b): {}; keep-alive over {} connections, a new connection per request on its own with at most {} in flight, --timeout {}, each run {} warm-up and {}, the modes in round 1's order; the ladder:",
        plan.sweep_rule(),
        plan::CONNECTIONS,
        plan::NEWCONN_IN_FLIGHT,
        system::flag(sizes.sweep_timeout),
        system::flag(sizes.sweep_warmup),
        system::flag(sizes.sweep_duration)
    );
    for (kind, rates) in &run.rates {
        let list: Vec<String> = rates.rates.iter().map(u64::to_string).collect();
        let _ = writeln!(
            text,
            "  {kind}: {} requests/s (slowest `{}` {:.0}/s, fastest `{}` {:.0}/s)",
            list.join(", "),
            rates.slowest.0,
            rates.slowest.1,
            rates.fastest.0,
            rates.fastest.1
        );
    }
    let runs = run.out.join("runs");
    for mode in plan.round_orders.first().into_iter().flatten() {
        let knees: Vec<String> = run
            .rates
            .iter()
            .filter_map(|(kind, rates)| {
                let knee = sweep::knee(&runs, *mode, *kind, &rates.rates).ok()??;
                Some(format!(
                    "{kind} {}, {}, {}",
                    knee.low, knee.middle, knee.high
                ))
            })
            .collect();
        if !knees.is_empty() {
            let _ = writeln!(text, "  knee of `{mode}`: {} requests/s", knees.join("; "));
        }
    }
    let _ = writeln!(
        text,
        "- upgrades (§8): `suite upgrade` at {} requests/s, `--init-delay {}`, {}; net.ipv4.tcp_migrate_req = {} on the host",
        plan::UPGRADE_RATE,
        system::flag(plan::UPGRADE_INIT_DELAY),
        plan.upgrade_args(),
        upgrade::migrate_req().map_or_else(|| "unknown".to_owned(), |v| v.to_string())
    );
    if peers::folder(&run.out).is_dir() {
        let _ = writeln!(
            text,
            "- peers' configurations: [peers/](peers/), the exact files that ran; how each peer ran (version, processes, workers, settings): [{PEERS_FILE}]({PEERS_FILE})"
        );
    }
    let _ = writeln!(
        text,
        "- each server's answer to one `GET /` at its first start, before any load: [{ANSWERS_FILE}]({ANSWERS_FILE})"
    );
    let shown = run
        .out
        .strip_prefix(&root)
        .unwrap_or(&run.out)
        .display()
        .to_string();
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "[commands.log](commands.log) is a log of every command as it ran, in order,"
    );
    let _ = writeln!(
        text,
        "with this run's pids and ports; to run it again, use the command above. Every"
    );
    let _ = writeln!(
        text,
        "loadgen report is in [runs/](runs/). Render again with `target/release/report {shown}`."
    );
    text
}
