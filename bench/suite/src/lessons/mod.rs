//! The lessons of LESSONS.md (`scripts/lesson.sh N`), each an experiment
//! run end to end on loopback: it starts what it needs, measures, stops
//! everything it started, prints the figure the lesson is about and one
//! verdict line on whether it matches what LESSONS.md says to expect. One
//! module per lesson: its run, its figure and its verdict, whose bounds are
//! named constants beside the figures they judge.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context;
use cluster::cli::UsageError;

use crate::loadgen::Loadgen;
use crate::server::{CommandLog, Launcher, Running, Serve};
use crate::system;

mod lesson_1;
mod lesson_2;
mod lesson_3;
mod lesson_4;
mod lesson_5;
mod lesson_6;
mod lesson_7;
mod lesson_8;
mod lesson_9;
mod sockstat;

/// The lessons there are.
pub const LESSONS: [&str; 9] = ["1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Workers per server in every lesson but 4.
pub const WORKERS: usize = 2;

/// How long a lesson waits for the kernel to show the connections it opened
/// before it reads its view anyway.
const KERNEL_VIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// `scripts/lesson.sh`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Fewer connections and shorter loads, the same verdicts (the test,
    /// bench/suite/tests/lessons.rs, runs every lesson so).
    #[arg(long)]
    pub quick: bool,
    /// For students: the figures only, no verdict line (which would give
    /// the answer away), and exit 0 whatever it would have said.
    #[arg(long)]
    pub no_verdict: bool,
    /// Use the proxy, handoff and loadgen binaries already built in DIR
    /// (the test passes target/debug) instead of building them with
    /// `cargo build --release` into target/release.
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// The lesson: 1 (two fds per connection), 2 (the fd limit), 3
    /// (watching a socket change hands, under strace), 4 (why one worker
    /// takes all the load), 5 (a worker dies), 6 (upgrading without
    /// dropping anyone), 7 (the proxy's second limit: ephemeral ports), 8
    /// (where connections wait: steering by health; needs BPF, root), 9 (a
    /// batch of fds at the fd limit).
    #[arg(value_name = "N")]
    pub lesson: Vec<String>,
}

/// What a lesson concludes: what differs from LESSONS.md (nothing when it
/// matches), and the sentence that says it matches.
pub struct Verdict {
    /// Each way the figures differ from what LESSONS.md expects.
    pub wrong: Vec<String>,
    /// What the lesson shows when nothing differs.
    pub ok: String,
}

/// A lesson under way: where its binaries are, its scratch folder, how its
/// servers and loads start.
pub struct Lab {
    /// `--quick`.
    pub quick: bool,
    /// Scratch: the servers' log, every load's JSON and summary.
    pub tmp: tempfile::TempDir,
    /// How servers start (their stderr in `tmp/log`).
    pub launcher: Launcher,
    /// How loadgen runs.
    pub loadgen: Loadgen,
}

/// Runs the lesson the flags name; its exit code, or an error (a usage
/// error: exit 2, before anything is built).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Lesson 9's receiver: this program run again by lesson 9.
    if crate::lost_fds::is_child() {
        crate::lost_fds::child()?;
        return Ok(ExitCode::SUCCESS);
    }
    let usage = |message: String| -> anyhow::Error { UsageError(message).into() };
    let lesson = match args.lesson.as_slice() {
        [] => {
            return Err(usage(format!(
                "which lesson? scripts/lesson.sh N, N one of {} (see LESSONS.md)",
                LESSONS.join(" ")
            )));
        }
        [one] => one.clone(),
        [one, two, ..] => return Err(usage(format!("one lesson at a time (got {one} and {two})"))),
    };
    if !LESSONS.contains(&lesson.as_str()) {
        return Err(usage(format!(
            "there is no lesson {lesson}: the lessons are {} (see LESSONS.md)",
            LESSONS.join(" ")
        )));
    }
    // What a lesson needs beyond the binaries, checked before any build.
    match lesson.as_str() {
        "3" => lesson_3::check_strace()?,
        "7" => lesson_7::check_netns()?,
        "8" => lesson_8::check_bpf()?,
        _ => {}
    }
    let root = system::workspace();
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => {
            eprintln!("building (cargo build --release)");
            system::build_release(&root, &["proxy", "handoff", "loadgen"])?;
            root.join("target/release")
        }
    };
    let bin_dir = bin_dir
        .canonicalize()
        .map_err(|_| usage(format!("--bin-dir: no folder {}", bin_dir.display())))?;
    for binary in ["proxy", "handoff", "loadgen"] {
        if !bin_dir.join(binary).is_file() {
            return Err(usage(format!(
                "no {}: build it first (cargo build -p {binary})",
                bin_dir.join(binary).display()
            )));
        }
    }
    let tmp = tempfile::tempdir().context("a scratch folder")?;
    let lab = Lab {
        quick: args.quick,
        launcher: Launcher {
            bin_dir: bin_dir.clone(),
            server_cpus: None,
            commands: CommandLog::default(),
            log: Some(tmp.path().join("log")),
            peers_dir: tmp.path().join("peers"),
        },
        loadgen: Loadgen {
            bin: bin_dir.join("loadgen"),
            cpus: None,
            commands: CommandLog::default(),
        },
        tmp,
    };
    let verdict = match lesson.as_str() {
        "1" => lesson_1::run(&lab)?,
        "2" => lesson_2::run(&lab)?,
        "3" => lesson_3::run(&lab)?,
        "4" => lesson_4::run(&lab)?,
        "5" => lesson_5::run(&lab)?,
        "6" => lesson_6::run(&lab)?,
        "7" => lesson_7::run(&lab)?,
        "8" => lesson_8::run(&lab)?,
        _ => lesson_9::run(&lab)?,
    };
    Ok(finish(&verdict, args.no_verdict))
}

/// The verdict line (`verdict: differs — …`, exit 1; `verdict: ok — …`,
/// exit 0) or, with `--no-verdict`, a line saying it is hidden, exit 0.
fn finish(verdict: &Verdict, no_verdict: bool) -> ExitCode {
    if no_verdict {
        println!(
            "(no verdict shown (--no-verdict); answer the questions of LESSONS.md with the figures above)"
        );
        return ExitCode::SUCCESS;
    }
    if verdict.wrong.is_empty() {
        println!("verdict: ok — {}", verdict.ok);
        ExitCode::SUCCESS
    } else {
        println!("verdict: differs — {}", verdict.wrong.join("; "));
        ExitCode::from(1)
    }
}

impl Lab {
    /// A file of the scratch folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Starts `mode` with the lesson's workers (or `workers`) and `extra`
    /// flags on 127.0.0.1 port 0.
    pub fn serve(
        &self,
        mode: cluster::Mode,
        workers: usize,
        extra: &[&str],
    ) -> anyhow::Result<Running> {
        let extra: Vec<String> = extra.iter().map(|flag| (*flag).to_owned()).collect();
        self.launcher
            .start(Serve::Cluster(mode), workers, &extra, &[])
    }

    /// loadgen with `args`, watching `master`, its JSON in `tmp/NAME.json`
    /// and its summary in `tmp/NAME.txt`; the report.
    pub fn load(&self, name: &str, master: u32, args: &[String]) -> anyhow::Result<runs::Report> {
        self.load_running(name, master, args)?.finish()
    }

    /// [`Lab::load`] started, not awaited.
    fn load_running(&self, name: &str, master: u32, args: &[String]) -> anyhow::Result<Load> {
        let json = self.path(&format!("{name}.json"));
        let mut full = vec![
            "--watch".to_owned(),
            master.to_string(),
            "--json".to_owned(),
        ];
        full.push(json.to_string_lossy().into_owned());
        full.extend(args.iter().cloned());
        let output = self.path(&format!("{name}.txt"));
        let running = self.loadgen.spawn(&full, Some(&output))?;
        Ok(Load {
            running,
            json,
            output,
        })
    }

    /// [`Lab::load`], and while it runs, once the kernel has `n`
    /// connections established on `port` (at most 10 s), its view of them:
    /// the listening socket(s) (`ss -ltn`: Recv-Q is how many connections
    /// wait in the accept queue, Send-Q its limit) and the server end of
    /// each connection with the process that holds it (`ss -tnp`:
    /// users:(("name",pid=…,fd=…)); none while it waits in the queue); and
    /// from its start to its end, the kernel's count of TCP sockets
    /// (`/proc/net/sockstat`) when it was highest.
    pub fn load_watching(
        &self,
        name: &str,
        n: usize,
        port: u16,
        master: u32,
        args: &[String],
    ) -> anyhow::Result<(runs::Report, KernelView)> {
        let mut load = self.load_running(name, master, args)?;
        let established = format!("( sport = :{port} )");
        let deadline = Instant::now() + KERNEL_VIEW_TIMEOUT;
        let mut seen: Option<(String, String)> = None;
        let mut peak: Option<sockstat::Tcp> = None;
        loop {
            if let Some(now) = sockstat::read() {
                if peak.is_none_or(|peak| now.inuse > peak.inuse) {
                    peak = Some(now);
                }
            }
            let ended = load.running.has_ended();
            if seen.is_none()
                && (ended
                    || Instant::now() >= deadline
                    || ss(&["-Htn", "state", "established", &established])
                        .lines()
                        .count()
                        >= n)
            {
                seen = Some((
                    ss(&["-Hltn", &established]),
                    ss(&["-Htnp", "state", "established", &established]),
                ));
            }
            if ended {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let (listening, ends) = seen.unwrap_or_default();
        let view = KernelView {
            listening,
            ends,
            tcp_peak: peak,
        };
        Ok((load.finish()?, view))
    }
}

/// A load under way.
struct Load {
    /// loadgen.
    running: crate::loadgen::Running,
    /// Its JSON.
    json: PathBuf,
    /// Its summary and errors.
    output: PathBuf,
}

impl Load {
    /// Waits for its end; its report, or an error with the end of its
    /// output. A run whose `--slo` thresholds did not all hold
    /// ([`runs::SLO_FAILED_EXIT_CODE`]) wrote its whole report: the lesson
    /// reads the verdicts from its `slo`.
    fn finish(mut self) -> anyhow::Result<runs::Report> {
        let status = self.running.wait()?;
        anyhow::ensure!(
            status.success() || status.code() == Some(i32::from(runs::SLO_FAILED_EXIT_CODE)),
            "loadgen failed:\n{}",
            system::tail(&self.output, 3)
        );
        runs::read_json(&self.json)
    }
}

/// The kernel's view of a server's port while it was loaded (`ss`).
pub struct KernelView {
    /// `ss -Hltn`: the listening socket(s).
    pub listening: String,
    /// `ss -Htnp state established`: the server end of each connection.
    pub ends: String,
    /// `/proc/net/sockstat`'s TCP line when its `inuse` was highest during
    /// the load (sampled every 50 ms), as the harness thread's network
    /// namespace sees it.
    pub tcp_peak: Option<sockstat::Tcp>,
}

/// What `ss ARGS` prints (iproute2's socket statistics); empty if it cannot
/// run.
pub fn ss(args: &[&str]) -> String {
    Command::new("ss")
        .args(args)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

/// A share as a whole percentage: `42%`.
pub fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// The open fds of `pid` (`ls /proc/PID/fd | wc -l`).
pub fn fds(pid: u32) -> usize {
    crate::procfs::fds(pid)
}

/// The lines of `path` from line `from` (0-based) on, for a log that
/// several servers appended to.
pub fn lines_from(path: &Path, from: usize) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .skip(from)
        .map(str::to_owned)
        .collect()
}
