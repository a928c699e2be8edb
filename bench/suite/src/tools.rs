//! The side tools behind README's other figures: `wrk-modes` (requests/s
//! of every mode under wrk, interleaved), `ab-handoff` (two builds of
//! `handoff-socket` side by side, CPU per request) and `vs-wrk` (loadgen
//! against wrk on one target). Each is a few loops over the same server
//! start and loadgen as the comparison.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use cluster::cli::UsageError;
use runs::labels::Mode as Label;

use crate::loadgen::Loadgen;
use crate::procfs::cpu_seconds;
use crate::server::{CommandLog, Launcher, Running, Serve};
use crate::sweep::median;
use crate::system;

/// `wrk-modes`' flags.
#[derive(Debug, Clone, clap::Args)]
pub struct WrkModesArgs {
    /// Rounds, every mode once per round.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub rounds: usize,
    /// Seconds per wrk run.
    #[arg(long, value_name = "S", default_value_t = 5)]
    pub duration: u64,
    /// Workers per cluster.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub workers: usize,
    /// The modes, space-separated: ceiling (one worker's own port, nobody
    /// in between), the four modes, node-rr, node-none.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "ceiling proxy handoff-socket handoff-listener handoff-reuseport"
    )]
    pub modes: String,
    /// The loads, space-separated: keepalive, close (`Connection: close`).
    #[arg(long, value_name = "LIST", default_value = "keepalive close")]
    pub loads: String,
}

/// `ab-handoff`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AbHandoffArgs {
    /// The old build's `handoff` binary.
    #[arg(value_name = "OLD_BIN")]
    pub old: PathBuf,
    /// The new build's `handoff` binary.
    #[arg(value_name = "NEW_BIN")]
    pub new: PathBuf,
    /// Rounds of OLD then NEW, the order swapped every other round.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub rounds: usize,
    /// Each run's duration.
    #[arg(long, value_name = "DURATION", default_value = "3s")]
    pub duration: String,
    /// Keep-alive connections instead of a new connection per request.
    #[arg(long)]
    pub keepalive: bool,
    /// Also count the master's syscalls and context switches (`perf stat
    /// -p MASTER`); loadgen then runs without warm-up.
    #[arg(long)]
    pub perf: bool,
    /// Where the runs' JSON go (DIR/runs; default: a new temporary folder).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `vs-wrk`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct VsWrkArgs {
    /// Rounds, wrk and loadgen once each per round and load.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub rounds: usize,
    /// Seconds per run.
    #[arg(long, value_name = "S", default_value_t = 5)]
    pub duration: u64,
    /// The loads, space-separated: keepalive, close.
    #[arg(long, value_name = "LIST", default_value = "keepalive close")]
    pub loads: String,
}

/// wrk, installed with apt-get when missing and run as root; a usage error
/// otherwise.
fn wrk() -> anyhow::Result<()> {
    if system::which("wrk").is_none()
        && nix::unistd::geteuid().is_root()
        && system::which("apt-get").is_some()
    {
        eprintln!("installing wrk (apt-get install wrk)");
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "wrk"])
            .status();
    }
    if system::which("wrk").is_none() {
        return Err(UsageError("wrk not found: apt-get install wrk".into()).into());
    }
    Ok(())
}

/// One wrk run (`-t2 -c50`) against `url`; its requests/s.
fn run_wrk(url: &str, seconds: u64, close: bool) -> anyhow::Result<f64> {
    let mut command = Command::new("wrk");
    command.args(["-t2", "-c50", &format!("-d{seconds}s")]);
    if close {
        command.args(["-H", "Connection: close"]);
    }
    let output = command.arg(url).output().context("run wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rps| rps.trim().parse().ok())
        .with_context(|| format!("wrk printed no Requests/sec:\n{text}"))
}

/// The header both wrk tools print: when, and on what.
fn machine_line() -> String {
    format!(
        "# {} {} cores, {}, {}",
        system::utc_now(),
        system::cpus_allowed("self")
            .and_then(|l| system::cpu_list(&l))
            .map_or(0, |c| c.len()),
        system::cpu_model(),
        system::kernel_release()
    )
}

/// A list flag, each word checked.
fn words<T>(text: &str, parse: impl Fn(&str) -> Option<T>, what: &str) -> anyhow::Result<Vec<T>> {
    text.split_whitespace()
        .map(|word| parse(word).ok_or_else(|| UsageError(format!("{word:?} is not {what}")).into()))
        .collect()
}

/// A load of the wrk tools: keep-alive, or `Connection: close`.
fn close_load(word: &str) -> Option<bool> {
    match word {
        "keepalive" => Some(false),
        "close" => Some(true),
        _ => None,
    }
}

/// Starts `mode` for the wrk tools: the port to load is the public one, or
/// for `ceiling` the first worker's own port (of a `proxy` cluster).
fn start(launcher: &Launcher, mode: Label, workers: usize) -> anyhow::Result<(Running, u16)> {
    let server = launcher.start(Serve::of(mode), workers, &[], &[])?;
    let port = match mode {
        Label::Ceiling => server.line().worker_ports().first().copied().unwrap_or(0),
        _ => server.port(),
    };
    Ok((server, port))
}

/// A launcher for the tools: release binaries, a scratch log.
fn launcher(tmp: &Path) -> Launcher {
    Launcher {
        bin_dir: system::workspace().join("target/release"),
        server_cpus: None,
        commands: CommandLog::default(),
        log: Some(tmp.join("log")),
        peers_dir: tmp.join("peers"),
    }
}

/// `wrk-modes`: requests/s of every mode under wrk, each round running
/// every mode once, so that the ratios hold on a noisy machine; medians,
/// each mode's ratio to the first, and the master's CPU in cores.
pub fn wrk_modes(args: &WrkModesArgs) -> anyhow::Result<()> {
    let modes = words(
        &args.modes,
        |w| {
            w.parse::<Label>()
                .ok()
                .filter(|m| *m != Label::Direct && *m != Label::Nginx)
        },
        "a mode",
    )?;
    let loads = words(&args.loads, close_load, "a load (keepalive, close)")?;
    wrk()?;
    let root = system::workspace();
    system::build_release(&root, &["proxy", "handoff"])?;
    let tmp = tempfile::tempdir()?;
    let launcher = launcher(tmp.path());
    println!("{}", machine_line());
    println!(
        "# wrk -t2 -c50 -d{}s, {} workers, {} rounds",
        args.duration, args.workers, args.rounds
    );
    let mut rows: Vec<(bool, Label, f64, f64)> = Vec::new();
    for round in 1..=args.rounds {
        for &close in &loads {
            for &mode in &modes {
                let (mut server, port) = start(&launcher, mode, args.workers)?;
                let before = cpu_seconds(server.master());
                let rps = run_wrk(&format!("http://127.0.0.1:{port}/"), args.duration, close)?;
                let cpu = (cpu_seconds(server.master()) - before) / args.duration as f64;
                server.stop()?;
                let load = if close { "close" } else { "keepalive" };
                eprintln!("{round} {load} {mode} {rps} {:.3}", cpu);
                rows.push((close, mode, rps, cpu));
            }
        }
    }
    for &close in &loads {
        let base = modes[0];
        let of = |mode: Label, pick: fn(&(bool, Label, f64, f64)) -> f64| -> Vec<f64> {
            rows.iter()
                .filter(|r| r.0 == close && r.1 == mode)
                .map(pick)
                .collect()
        };
        let ceiling = median(&of(base, |r| r.2));
        println!(
            "\n{}: median requests/s (min-max), ratio to {base}, master CPU (cores)",
            if close { "close" } else { "keepalive" }
        );
        for &mode in &modes {
            let rps = of(mode, |r| r.2);
            let m = median(&rps);
            let (low, high) = min_max(&rps);
            println!(
                "  {:<18} {m:9.0} ({low:.0}-{high:.0})  {:5.2}x  {:.2}",
                mode.name(),
                m / ceiling,
                median(&of(mode, |r| r.3))
            );
        }
    }
    Ok(())
}

/// The smallest and the largest of `values`.
fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), &v| {
            (low.min(v), high.max(v))
        })
}

/// The perf events `ab-handoff --perf` counts in the master.
const PERF_EVENTS: &str = "syscalls:sys_enter_accept4,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_close,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_wait,context-switches";

/// `ab-handoff`: two builds of `handoff --pass socket` side by side in the
/// same run, rounds of OLD then NEW with the order swapped every other
/// round; per build, the median and range of the master's CPU per 1,000
/// requests, the tree's, the master's share and requests/s (and with
/// `--perf`, syscalls per request).
pub fn ab_handoff(args: &AbHandoffArgs) -> anyhow::Result<()> {
    let usage = |message: &str| -> anyhow::Error { UsageError(message.to_owned()).into() };
    let executable = |path: &Path| {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if !executable(&args.old) || !executable(&args.new) {
        return Err(usage("OLD_BIN and NEW_BIN must be executables"));
    }
    if args.old.file_name() != Some("handoff".as_ref())
        || args.new.file_name() != Some("handoff".as_ref())
    {
        return Err(usage(
            "OLD_BIN and NEW_BIN must be `handoff` binaries (e.g. OLD/target/release/handoff)",
        ));
    }
    if args.rounds == 0 {
        return Err(usage("--rounds takes a positive number"));
    }
    cluster::cli::parse_duration(&args.duration)
        .map_err(|err| usage(&format!("--duration: {err}")))?;
    let loadgen_bin = std::env::var_os("LOADGEN").map_or_else(
        || system::workspace().join("target/release/loadgen"),
        PathBuf::from,
    );
    if !executable(&loadgen_bin) {
        return Err(usage(&format!(
            "no loadgen at {} (set LOADGEN)",
            loadgen_bin.display()
        )));
    }
    let scratch = tempfile::tempdir()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let runs_dir = out.join("runs");
    std::fs::create_dir_all(&runs_dir)?;
    let loadgen = Loadgen {
        bin: loadgen_bin,
        cpus: None,
        commands: CommandLog::default(),
    };
    let load = if args.keepalive {
        "keepalive"
    } else {
        "newconn"
    };
    for round in 1..=args.rounds {
        let order = if round % 2 == 1 {
            [("old", &args.old), ("new", &args.new)]
        } else {
            [("new", &args.new), ("old", &args.old)]
        };
        for (name, bin) in order {
            let mut launcher = launcher(scratch.path());
            launcher.bin_dir = bin.parent().map(Path::to_path_buf).unwrap_or_default();
            let mut server = launcher.start(
                Serve::Cluster(cluster::Mode::Handoff(cluster::Pass::Socket)),
                2,
                &[],
                &[],
            )?;
            let master = server.master();
            let counter = if args.perf {
                let child = Command::new("perf")
                    .args(["stat", "-x,", "-o"])
                    .arg(runs_dir.join(format!("{name}-{round}.perf")))
                    .args(["-p", &master.to_string(), "-e", PERF_EVENTS])
                    .spawn()
                    .context("run perf stat")?;
                Some((crate::children::register(child.id()), child))
            } else {
                None
            };
            let mut full = vec![
                "--target".to_owned(),
                format!("http://127.0.0.1:{}/", server.port()),
            ];
            if !args.keepalive {
                full.push("--new-conn".into());
            }
            if args.perf {
                full.extend(["--warmup".into(), "0s".into()]);
            }
            full.extend([
                "--connections".into(),
                "20".into(),
                "--duration".into(),
                args.duration.clone(),
            ]);
            full.extend(["--watch".into(), master.to_string(), "--json".into()]);
            full.push(
                runs_dir
                    .join(format!("{name}-{round}.json"))
                    .to_string_lossy()
                    .into_owned(),
            );
            loadgen.run(&full, &scratch.path().join("loadgen.log"), "")?;
            if let Some((_registered, mut child)) = counter {
                // SIGINT: perf stat writes its counts and exits.
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGINT,
                    );
                }
                let _ = child.wait();
            }
            server.stop()?;
            eprintln!("[round {round}] {name} done");
        }
    }
    println!("load: {load}; runs in {}", runs_dir.display());
    let mut rows: Vec<(String, [Vec<f64>; 2])> = Vec::new();
    for (column, name) in ["old", "new"].iter().enumerate() {
        for round in 1..=args.rounds {
            let path = runs_dir.join(format!("{name}-{round}.json"));
            let report = runs::read_json(&path)?;
            let Some(watched) = report.watch.first() else {
                bail!("{}: nothing watched", path.display())
            };
            let master = watched
                .processes
                .iter()
                .find(|p| p.pid == watched.pid)
                .and_then(|p| p.summary.cpu_ms_per_1000_requests)
                .unwrap_or(f64::NAN);
            let tree = watched.summary.cpu_ms_per_1000_requests.unwrap_or(f64::NAN);
            let mut add = |key: &str, value: f64| {
                if let Some(row) = rows.iter_mut().find(|row| row.0 == key) {
                    row.1[column].push(value);
                } else {
                    let mut values = [Vec::new(), Vec::new()];
                    values[column].push(value);
                    rows.push((key.to_owned(), values));
                }
            };
            add("master ms/1k", master);
            add("tree ms/1k", tree);
            add("master % of tree", 100.0 * master / tree);
            add("requests/s", report.requests.per_s);
            // The counts cover the whole run, which has no warm-up with --perf.
            if let Ok(counts) = std::fs::read_to_string(path.with_extension("perf")) {
                let requests = (report.requests.ok + report.requests.failed) as f64;
                for line in counts.lines() {
                    let fields: Vec<&str> = line.split(',').collect();
                    if let (Some(count), Some(event)) = (
                        fields.first().and_then(|c| c.parse::<f64>().ok()),
                        fields.get(2),
                    ) {
                        add(
                            &format!("{} /req", event.replace("syscalls:sys_enter_", "")),
                            count / requests,
                        );
                    }
                }
            }
        }
    }
    for (key, values) in &rows {
        let cell = |name: &str, v: &[f64]| {
            if v.is_empty() {
                format!("{name}      NaN [NaN–NaN]")
            } else {
                let (low, high) = min_max(v);
                format!("{name} {:8.2} [{low:.2}–{high:.2}]", median(v))
            }
        };
        println!(
            "{key:>17}  {}  {}",
            cell("old", &values[0]),
            cell("new", &values[1])
        );
    }
    if let Some((_, values)) = rows.iter().find(|row| row.0 == "master ms/1k") {
        let (old, new) = (median(&values[0]), median(&values[1]));
        if old > 0.0 {
            println!(
                "master CPU per request, new/old (medians): {:.2}",
                new / old
            );
        }
    }
    Ok(())
}

/// `vs-wrk`: loadgen against wrk on the same target (one worker's own
/// port of `proxy --workers 2`), 50 connections, 2 threads each,
/// interleaved, every run and the medians.
pub fn vs_wrk(args: &VsWrkArgs) -> anyhow::Result<()> {
    let loads = words(&args.loads, close_load, "a load (keepalive, close)")?;
    if system::which("wrk").is_none() {
        return Err(UsageError("wrk not found: apt-get install wrk".into()).into());
    }
    let root = system::workspace();
    system::build_release(&root, &["proxy", "loadgen"])?;
    let tmp = tempfile::tempdir()?;
    let launcher = launcher(tmp.path());
    let loadgen = Loadgen {
        bin: launcher.bin_dir.join("loadgen"),
        cpus: None,
        commands: CommandLog::default(),
    };
    let (mut server, port) = start(&launcher, Label::Ceiling, 2)?;
    let url = format!("http://127.0.0.1:{port}/");
    println!("{}", machine_line());
    println!(
        "# target {url} (one worker's own port); 50 connections, 2 threads, {}s per run, {} rounds",
        args.duration, args.rounds
    );
    let mut rows: Vec<(bool, &str, f64)> = Vec::new();
    let json = tmp.path().join("lg.json");
    for round in 1..=args.rounds {
        for &close in &loads {
            let load = if close { "close" } else { "keepalive" };
            let rps = run_wrk(&url, args.duration, close)?;
            eprintln!("{round} {load} wrk {rps}");
            rows.push((close, "wrk", rps));
            let mut full = vec![
                "--target".to_owned(),
                url.clone(),
                "--connections".into(),
                "50".into(),
            ];
            full.extend([
                "--threads".into(),
                "2".into(),
                "--duration".into(),
                format!("{}s", args.duration),
            ]);
            full.extend(["--warmup".into(), "0".into()]);
            if close {
                full.push("--new-conn".into());
            }
            full.extend(["--json".into(), json.to_string_lossy().into_owned()]);
            loadgen.run(&full, &tmp.path().join("loadgen.log"), "")?;
            let rps = runs::read_json(&json)?.requests.per_s;
            eprintln!("{round} {load} loadgen {rps}");
            rows.push((close, "loadgen", rps));
        }
    }
    server.stop()?;
    for &close in &loads {
        let load = if close { "close" } else { "keepalive" };
        let mut medians = [0.0; 2];
        for (i, tool) in ["wrk", "loadgen"].iter().enumerate() {
            let rps: Vec<f64> = rows
                .iter()
                .filter(|r| r.0 == close && r.1 == *tool)
                .map(|r| r.2)
                .collect();
            medians[i] = median(&rps);
            let runs: Vec<String> = rps.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "{load:9} {tool:8} median {:9.0} requests/s  (runs: {})",
                medians[i],
                runs.join(", ")
            );
        }
        println!("{load:9} loadgen/wrk {:.2}", medians[1] / medians[0]);
    }
    Ok(())
}
