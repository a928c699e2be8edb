//! The upgrade driver (`suite upgrade`, REPORT.md §8, lesson 6): a running
//! master replaced by a new one N times in a row, per mode and strategy,
//! timed, and (with `--rate`) under loadgen's open loop, whose JSON gets the
//! `upgrades` block (`runs::Upgrades`: the field names the renderer and
//! lesson 6 read). It records what the masters said of each other (the old
//! one's `handover`, the new one's `takeover_from`) and judges nothing.
//!
//! Strategies (ARCHITECTURE.md, "The upgrade driver"): `takeover` (the new
//! master with `--takeover PATH --upgrade-socket PATH`, counted from its
//! start), `restart` (SIGTERM, wait for the exit, start again on the port,
//! counted from the SIGTERM), `overlap` (`handoff-reuseport` only: a second
//! master binds its own `SO_REUSEPORT` listeners, at its `ready` SIGTERM to
//! the old one) and `overlap-migrate` (the same in a network namespace of
//! its own with `net.ipv4.tcp_migrate_req=1`: [`launch::netns`]).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use cluster::cli::UsageError;
use nix::sys::signal::Signal;
use runs::labels::{Load, Section, Strategy};
use runs::{UpgradeEvent, Upgrades};

use crate::loadgen::Loadgen;
use crate::plan::applies;
use crate::server::{CommandLog, Launcher, Running, Serve};
use crate::sweep::median;

/// How long an old master may take to exit: its graceful stop.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The sysctl that moves a closing `SO_REUSEPORT` listener's queue to the
/// others (Linux ≥ 5.14).
const MIGRATE_REQ: &str = "net/ipv4/tcp_migrate_req";

/// loadgen's open loop beside the upgrades: its connections, warm-up,
/// `--timeout` and `--sample-interval` (the timeline's resolution).
const LOAD_CONNECTIONS: usize = 32;
/// loadgen's warm-up before the lead.
const LOAD_WARMUP: Duration = Duration::from_millis(200);
/// loadgen's `--timeout`.
const LOAD_TIMEOUT: Duration = Duration::from_secs(2);
/// loadgen's `--sample-interval` for the timeline.
const LOAD_SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// `suite upgrade`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The folder of proxy, handoff and loadgen (default: the workspace's
    /// target/release).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Workers per master.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub workers: usize,
    /// Each worker's start-up (`--init-delay`).
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub init_delay: String,
    /// takeover (default), restart, overlap, overlap-migrate; repeatable.
    #[arg(long, value_name = "S")]
    pub strategy: Vec<String>,
    /// Upgrades in a row per cell.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub upgrades: u32,
    /// The time between two upgrades' starts.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub every: String,
    /// The load before the first upgrade.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub lead: String,
    /// loadgen beside it at R requests/s (a new connection each), its JSON
    /// in DIR/upgrade-MODE-STRATEGY.json; needs --out.
    #[arg(long, value_name = "R")]
    pub rate: Option<u64>,
    /// The folder of the runs' JSON.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Pin loadgen to these CPUs (taskset's list).
    #[arg(long, value_name = "LIST")]
    pub loadgen_cpus: Option<String>,
    /// Pin the masters and their workers to these CPUs.
    #[arg(long, value_name = "LIST")]
    pub server_cpus: Option<String>,
    /// Append every command run to FILE.
    #[arg(long, value_name = "FILE")]
    pub commands: Option<PathBuf>,
    /// Append the servers' and loadgen's stderr to FILE.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// The modes (default: all four).
    #[arg(value_name = "MODE")]
    pub modes: Vec<String>,
}

/// What the driver does, checked.
#[derive(Debug, Clone)]
pub struct Options {
    /// The folder of proxy, handoff and loadgen.
    pub bin_dir: PathBuf,
    /// Workers per master.
    pub workers: usize,
    /// Each worker's `--init-delay`.
    pub init_delay: Duration,
    /// The strategies, in order.
    pub strategies: Vec<Strategy>,
    /// Upgrades per cell.
    pub upgrades: u32,
    /// Between two upgrades' starts.
    pub every: Duration,
    /// The load before the first upgrade.
    pub lead: Duration,
    /// loadgen's rate, if under load.
    pub rate: Option<u64>,
    /// Where the runs go, with `rate`.
    pub out: Option<PathBuf>,
    /// loadgen's CPUs.
    pub loadgen_cpus: Option<String>,
    /// The servers' CPUs.
    pub server_cpus: Option<String>,
    /// The log of commands.
    pub commands: CommandLog,
    /// The servers' and loadgen's stderr.
    pub log: Option<PathBuf>,
    /// The modes, in order.
    pub modes: Vec<cluster::Mode>,
}

impl Args {
    /// The options these flags give, or the one-line usage error.
    pub fn options(self) -> anyhow::Result<Options> {
        let usage = |message: String| -> anyhow::Error { UsageError(message).into() };
        let duration = |flag: &str, text: &str| {
            cluster::cli::parse_duration(text).map_err(|err| usage(format!("--{flag}: {err}")))
        };
        let names: Vec<&str> = cluster::Mode::ALL.iter().map(|mode| mode.name()).collect();
        let mut modes = Vec::new();
        for name in &self.modes {
            let mode = cluster::Mode::ALL
                .into_iter()
                .find(|mode| mode.name() == name)
                .ok_or_else(|| usage(format!("{name:?} is not a mode ({})", names.join(", "))))?;
            modes.push(mode);
        }
        if modes.is_empty() {
            modes = cluster::Mode::ALL.to_vec();
        }
        let mut strategies = Vec::new();
        for name in &self.strategy {
            strategies.push(
                name.parse::<Strategy>()
                    .map_err(|err| usage(format!("--strategy: {err}")))?,
            );
        }
        if strategies.is_empty() {
            strategies.push(Strategy::Takeover);
        }
        if self.upgrades < 1 {
            return Err(usage("--upgrades must be at least 1".into()));
        }
        if self.rate.is_some() && (self.rate == Some(0) || self.out.is_none()) {
            return Err(usage("--rate needs a positive rate and --out DIR".into()));
        }
        if let Some(out) = &self.out {
            if !out.is_dir() {
                return Err(usage(format!("--out {}: no such folder", out.display())));
            }
        }
        Ok(Options {
            bin_dir: self
                .bin_dir
                .unwrap_or_else(|| crate::system::workspace().join("target/release")),
            workers: self.workers,
            init_delay: duration("init-delay", &self.init_delay)?,
            strategies,
            upgrades: self.upgrades,
            every: duration("every", &self.every)?,
            lead: duration("lead", &self.lead)?,
            rate: self.rate,
            out: self.out,
            loadgen_cpus: self.loadgen_cpus,
            server_cpus: self.server_cpus,
            commands: CommandLog(self.commands),
            log: self.log,
            modes,
        })
    }
}

impl Options {
    /// The `suite upgrade` command line of these options, for a log.
    pub fn command_line(&self) -> Vec<OsString> {
        let flag = crate::system::flag;
        let mut argv: Vec<OsString> = vec![
            std::env::current_exe().map_or_else(|_| "suite".into(), PathBuf::into_os_string),
            "upgrade".into(),
            "--bin-dir".into(),
            self.bin_dir.clone().into(),
            "--workers".into(),
            self.workers.to_string().into(),
            "--init-delay".into(),
            flag(self.init_delay).into(),
        ];
        for strategy in &self.strategies {
            argv.extend(["--strategy".into(), strategy.name().into()]);
        }
        argv.extend(["--upgrades".into(), self.upgrades.to_string().into()]);
        argv.extend([
            "--lead".into(),
            flag(self.lead).into(),
            "--every".into(),
            flag(self.every).into(),
        ]);
        if let (Some(rate), Some(out)) = (self.rate, &self.out) {
            argv.extend([
                "--rate".into(),
                rate.to_string().into(),
                "--out".into(),
                out.clone().into(),
            ]);
        }
        if let (Some(loadgen), Some(server)) = (&self.loadgen_cpus, &self.server_cpus) {
            argv.extend([
                "--loadgen-cpus".into(),
                loadgen.into(),
                "--server-cpus".into(),
                server.into(),
            ]);
        }
        argv.extend(self.modes.iter().map(|mode| OsString::from(mode.name())));
        argv
    }

    /// How its masters start.
    fn launcher(&self) -> Launcher {
        Launcher {
            bin_dir: self.bin_dir.clone(),
            server_cpus: self.server_cpus.clone(),
            commands: self.commands.clone(),
            log: self.log.clone(),
            peers_dir: std::env::temp_dir(),
        }
    }
}

/// `net.ipv4.tcp_migrate_req` where this thread is (its network namespace);
/// `None` if it cannot be read.
pub fn migrate_req() -> Option<u8> {
    std::fs::read_to_string(format!("/proc/sys/{MIGRATE_REQ}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `suite upgrade`: every cell, one line each on `table`.
pub fn run(options: &Options, table: &mut dyn Write) -> anyhow::Result<()> {
    let load_columns = if options.rate.is_some() {
        " | ok | failed"
    } else {
        ""
    };
    writeln!(
        table,
        "mode | strategy | init-delay | upgrades | start->ready median (max) ms | upgrade start->old exit median (max) ms{load_columns}"
    )?;
    for &mode in &options.modes {
        for &strategy in &options.strategies {
            if !applies(mode, strategy) {
                continue;
            }
            if let Some((events, report)) = cell(options, mode, strategy)? {
                writeln!(
                    table,
                    "{}",
                    describe(options, mode, strategy, &events, report.as_ref())
                )?;
                table.flush()?;
            }
        }
    }
    Ok(())
}

/// The upgrades of one cell, and its run under load; `None` when
/// `overlap-migrate` has no network namespace here (said on stderr).
pub fn cell(
    options: &Options,
    mode: cluster::Mode,
    strategy: Strategy,
) -> anyhow::Result<Option<(Vec<UpgradeEvent>, Option<runs::Report>)>> {
    if strategy != Strategy::OverlapMigrate {
        return cell_here(options, mode, strategy, false).map(Some);
    }
    match launch::netns::in_new_netns(&[(MIGRATE_REQ, "1")], || {
        cell_here(options, mode, strategy, true)
    }) {
        Ok(result) => result.map(Some),
        Err(err) => {
            eprintln!(
                "upgrade: overlap-migrate skipped for {mode}: no network namespace here (it needs root: {err})"
            );
            Ok(None)
        }
    }
}

/// The cell in this thread's network namespace.
fn cell_here(
    options: &Options,
    mode: cluster::Mode,
    strategy: Strategy,
    netns: bool,
) -> anyhow::Result<(Vec<UpgradeEvent>, Option<runs::Report>)> {
    let launcher = options.launcher();
    let folder = tempfile::tempdir().context("a folder for the upgrade socket")?;
    let path = folder.path().join("upgrade.sock");
    let path = path.to_string_lossy().into_owned();
    let mut first = vec!["--listen".to_owned(), "127.0.0.1:0".to_owned()];
    if strategy == Strategy::Takeover {
        first.extend(["--upgrade-socket".to_owned(), path.clone()]);
    }
    // Every master started, stopped by its pid when this cell ends, however
    // it ends (Running's drop).
    let mut masters: Vec<Running> = Vec::new();
    let mut old = start(&launcher, options, mode, &first)?;
    let port = old.port();
    let mut json_path = None;
    let mut load = None;
    if let (Some(rate), Some(out)) = (options.rate, &options.out) {
        let json = out.join(format!("upgrade-{mode}-{strategy}.json"));
        let loadgen = Loadgen {
            bin: options.bin_dir.join("loadgen"),
            cpus: options.loadgen_cpus.clone(),
            commands: options.commands.clone(),
        };
        let duration = options.lead + options.every * options.upgrades;
        let flag = crate::system::flag;
        let args: Vec<String> = vec![
            "--target".into(),
            format!("http://127.0.0.1:{port}/"),
            "--rate".into(),
            rate.to_string(),
            "--new-conn".into(),
            "--connections".into(),
            LOAD_CONNECTIONS.to_string(),
            "--duration".into(),
            format!("{}ms", duration.as_millis()),
            "--warmup".into(),
            flag(LOAD_WARMUP),
            "--timeout".into(),
            flag(LOAD_TIMEOUT),
            "--timeline".into(),
            "--sample-interval".into(),
            flag(LOAD_SAMPLE_INTERVAL),
            "--label".into(),
            format!("section={}", Section::Upgrade),
            "--label".into(),
            format!("mode={mode}"),
            "--label".into(),
            format!("strategy={strategy}"),
            "--label".into(),
            format!("load={}", Load::NewConn),
            "--label".into(),
            format!("workers={}", options.workers),
            "--json".into(),
            json.to_string_lossy().into_owned(),
        ];
        load = Some(loadgen.spawn(&args, options.log.as_deref())?);
        json_path = Some(json);
        // The warm-up, then the lead.
        std::thread::sleep(LOAD_WARMUP + options.lead);
    }
    let mut events = Vec::new();
    for n in 0..options.upgrades {
        let due = Instant::now() + options.every;
        let (new, event) = upgrade(&launcher, options, mode, strategy, &mut old, &path, port)?;
        events.push(event);
        masters.push(std::mem::replace(&mut old, new));
        if load.is_some() && n + 1 < options.upgrades {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    }
    masters.push(old);
    if let Some(load) = &mut load {
        let status = load.wait()?;
        if !status.success() {
            bail!("loadgen failed for {mode} {strategy} ({status})");
        }
    }
    drop(masters);
    let Some(json_path) = json_path else {
        return Ok((events, None));
    };
    let mut report = runs::read_json(&json_path)?;
    report.upgrades = Some(Upgrades {
        init_delay_ms: options.init_delay.as_secs_f64() * 1000.0,
        tcp_migrate_req: migrate_req(),
        netns,
        kernel: crate::system::kernel_release(),
        events: events.clone(),
    });
    let bytes = runs::to_json(&report)?;
    std::fs::write(&json_path, bytes).with_context(|| format!("write {}", json_path.display()))?;
    Ok((events, Some(report)))
}

/// Starts a master of `mode` with the driver's workers and `--init-delay`,
/// and `args`; waits for its `ready` line.
fn start(
    launcher: &Launcher,
    options: &Options,
    mode: cluster::Mode,
    args: &[String],
) -> anyhow::Result<Running> {
    let mut argv = launcher.program(Serve::Cluster(mode))?;
    argv.extend(["--workers".into(), options.workers.to_string().into()]);
    argv.extend([
        "--init-delay".into(),
        crate::system::flag(options.init_delay).into(),
    ]);
    argv.extend(args.iter().map(OsString::from));
    let mut master = launcher.spawn(argv, &[])?;
    master
        .ready()
        .context("a master exited before its ready line")?;
    Ok(master)
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64() * 1000.0)
}

/// Milliseconds rounded to the microsecond, as the JSON keeps them.
fn ms3(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// One upgrade of `old` by `strategy`: the new master and the event.
fn upgrade(
    launcher: &Launcher,
    options: &Options,
    mode: cluster::Mode,
    strategy: Strategy,
    old: &mut Running,
    path: &str,
    port: u16,
) -> anyhow::Result<(Running, UpgradeEvent)> {
    let began = Instant::now();
    let at_unix_ms = unix_ms();
    let listen = ["--listen".to_owned(), format!("127.0.0.1:{port}")];
    let wait_old = |old: &mut Running| {
        old.wait(EXIT_TIMEOUT).with_context(|| {
            format!(
                "the old master {} did not exit within {EXIT_TIMEOUT:?}",
                old.pid()
            )
        })
    };
    let (new, code, new_start, new_ready, old_exit) = if strategy == Strategy::Restart {
        old.signal(Signal::SIGTERM)?;
        let code = wait_old(old)?;
        let old_exit = began.elapsed();
        let new_start = began.elapsed();
        let new = start(launcher, options, mode, &listen)?;
        (new, code, new_start, began.elapsed(), old_exit)
    } else {
        let new_start = began.elapsed();
        let args = if strategy == Strategy::Takeover {
            vec![
                "--takeover".to_owned(),
                path.to_owned(),
                "--upgrade-socket".to_owned(),
                path.to_owned(),
            ]
        } else {
            listen.to_vec()
        };
        let new = start(launcher, options, mode, &args)?;
        let new_ready = began.elapsed();
        if strategy != Strategy::Takeover {
            old.signal(Signal::SIGTERM)?;
        }
        let code = wait_old(old)?;
        (new, code, new_start, new_ready, began.elapsed())
    };
    // After its exit, the old master's stdout is complete (its workers'
    // stdout is /dev/null): the `to_pid` of its `handover` line, if any.
    let old_handover_to = old
        .rest_of_stdout()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "handover")
        .filter_map(|event| {
            event["to_pid"]
                .as_u64()
                .and_then(|pid| u32::try_from(pid).ok())
        })
        .next_back();
    let event = UpgradeEvent {
        at_unix_ms,
        old_master: old.master(),
        old_workers: old.workers(),
        new_master: new.master(),
        new_workers: new.workers(),
        new_start_ms: ms3(new_start),
        new_ready_ms: ms3(new_ready),
        old_exit_ms: ms3(old_exit),
        old_exit_code: code.code(),
        old_handover_to,
        new_takeover_from: new.line().takeover_from,
    };
    Ok((new, event))
}

/// One line of the table: start → ready and upgrade start → old exit,
/// median (max), and with load the answers and the failures by kind.
fn describe(
    options: &Options,
    mode: cluster::Mode,
    strategy: Strategy,
    events: &[UpgradeEvent],
    report: Option<&runs::Report>,
) -> String {
    let ready: Vec<f64> = events
        .iter()
        .map(|e| e.new_ready_ms - e.new_start_ms)
        .collect();
    let exits: Vec<f64> = events.iter().map(|e| e.old_exit_ms).collect();
    let max = |values: &[f64]| values.iter().copied().fold(f64::NAN, f64::max);
    let mut line = format!(
        "{mode} | {strategy} | {} | {} | {:.0} ({:.0}) | {:.0} ({:.0})",
        humantime::format_duration(options.init_delay),
        events.len(),
        median(&ready),
        max(&ready),
        median(&exits),
        max(&exits)
    );
    if let Some(report) = report {
        let failed = crate::loadgen::failures(report, &[]);
        line.push_str(&format!(" | {} | {failed}", report.requests.ok));
    }
    line
}
