//! `--hold` over several processes: every process's hard `RLIMIT_NOFILE`
//! bounds the connections it can hold (20,000 on this suite's machine, and
//! only a privileged process can raise it), so tens of thousands need
//! several. loadgen re-executes itself as P children (`--processes`,
//! hidden `--child K/P`), each opening and holding its share (every P-th
//! connection), and merges their recordings into the one report a single
//! process would write (`super::recording`).
//!
//! The protocol, one line each way, over each child's stdin and stdout:
//!
//! 1. the child opens its share and prints [`Opened`] as a JSON line;
//! 2. once every child has, the parent writes `go` to each: the children's
//!    schedules start together, each on its own clock;
//! 3. the child runs, prints its [`Recording`] as a JSON line and exits 0.
//!
//! A child that ends before its line (an error, a signal) is a clear error
//! of the whole run, naming it and how it ended. No child outlives the
//! parent: each is spawned with `PR_SET_PDEATHSIG` (SIGKILL when the parent's
//! spawning thread dies, as `cluster::supervisor` does for its workers), and
//! a child whose stdin reaches its end before `go` exits; on an error the
//! parent kills (by pid, not yet reaped) and reaps every child it started.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;

use anyhow::{Context, anyhow, bail};

use super::Config;
use super::recorder::Recorder;
use super::recording::{Opened, Recording};
use super::usage::CpuTimes;

/// The line the parent writes to start every child's schedule.
pub const GO: &str = "go";

/// Which share of the connections a child process holds: `index` of `count`
/// (`--child K/P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildOf {
    /// This child's index, from 0.
    pub index: usize,
    /// How many children share the connections.
    pub count: usize,
}

impl ChildOf {
    /// Parses `K/P`, `K < P`.
    pub fn parse(text: &str) -> Result<ChildOf, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not K/P"))?;
        let index: usize = index.parse().map_err(|_| format!("{text:?} is not K/P"))?;
        let count: usize = count.parse().map_err(|_| format!("{text:?} is not K/P"))?;
        if index >= count {
            return Err(format!("{text:?}: K must be less than P"));
        }
        Ok(ChildOf { index, count })
    }
}

/// The command line of every child of a `--hold` run of `config` (each
/// then gets its `--child K/P`): what shapes the load and its recording.
/// What only the parent does is left out: `--watch`, `--kill`, `--stop`,
/// `--json`, `--hgrm`, `--slo`, `--label` (the parent's report has them).
pub fn args(config: &Config) -> Vec<String> {
    let duration = |duration| humantime::format_duration(duration).to_string();
    let mut args = Vec::new();
    for target in &config.targets {
        args.extend(["--target".to_owned(), target.url.clone()]);
    }
    args.extend([
        "--hold".to_owned(),
        "--hold-interval".to_owned(),
        duration(config.hold.unwrap_or_default()),
        "--connections".to_owned(),
        config.connections.to_string(),
        "--threads".to_owned(),
        config.threads.to_string(),
        "--duration".to_owned(),
        duration(config.duration),
        "--warmup".to_owned(),
        duration(config.warmup),
        "--timeout".to_owned(),
        duration(config.timeout),
        "--sample-interval".to_owned(),
        duration(config.sample_interval),
    ]);
    if config.timeline {
        args.push("--timeline".to_owned());
    }
    if let Some(bytes) = config.body_bytes {
        args.extend(["--body-bytes".to_owned(), bytes.to_string()]);
    }
    if !config.source_ips.is_empty() {
        let ips: Vec<String> = config.source_ips.iter().map(|ip| ip.to_string()).collect();
        args.extend(["--source-ips".to_owned(), ips.join(",")]);
    }
    args
}

/// One child loadgen.
struct Running {
    /// Its index.
    index: usize,
    /// The process; killed and reaped on drop unless it was reaped.
    child: Child,
    /// Its stdin, for `go`.
    stdin: Option<ChildStdin>,
    /// Its stdout, line by line.
    stdout: BufReader<ChildStdout>,
}

/// The child processes of a run, killed and reaped on drop, so that an error
/// leaves none behind.
pub struct Children {
    /// Every child, in index order.
    running: Vec<Running>,
}

impl Drop for Children {
    fn drop(&mut self) {
        for running in &mut self.running {
            // Only a child not yet reaped: its pid is still ours.
            if matches!(running.child.try_wait(), Ok(None)) {
                let _ = running.child.kill();
            }
            let _ = running.child.wait();
        }
    }
}

impl Children {
    /// Starts `count` children of this binary, each with `args` and its
    /// `--child K/P`. Called from the main thread (the death signal follows
    /// the thread that forked).
    pub fn start(args: &[String], count: usize) -> anyhow::Result<Children> {
        let exe = std::env::current_exe().context("find loadgen's own binary")?;
        let parent = nix::unistd::getpid().as_raw();
        let mut running = Vec::with_capacity(count);
        for index in 0..count {
            let mut command = Command::new(&exe);
            command
                .args(args)
                .arg("--child")
                .arg(format!("{index}/{count}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            // SAFETY: the closure runs in the child between fork and exec and
            // calls only async-signal-safe syscalls (prctl, getppid), with no
            // allocation and no lock.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The parent died before the prctl: no death signal will come.
                    if libc::getppid() != parent {
                        return Err(std::io::Error::other("parent died while spawning"));
                    }
                    Ok(())
                });
            }
            let mut child = command
                .spawn()
                .with_context(|| format!("start child {index} of {count}"))?;
            let stdin = child.stdin.take();
            let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
            running.push(Running {
                index,
                child,
                stdin,
                stdout,
            });
        }
        Ok(Children { running })
    }

    /// Waits for every child's opening; returns them merged (the time to
    /// open: the longest child's).
    pub fn opened(&mut self) -> anyhow::Result<Opened> {
        let count = self.running.len();
        let mut merged: Option<Opened> = None;
        for running in &mut self.running {
            let opened: Opened = read_line(running, count)?;
            match &mut merged {
                Some(merged) => merged.merge(&opened),
                None => merged = Some(opened),
            }
        }
        merged.ok_or_else(|| anyhow!("no child process"))
    }

    /// Starts every child's schedule; returns one thread per child that
    /// reads its recording into a recorder made by `empty`, and sends
    /// `finished` when it has.
    pub fn go(
        mut self,
        empty: impl Fn() -> Recorder + Send + Clone + 'static,
        finished: &std::sync::mpsc::Sender<()>,
    ) -> anyhow::Result<Vec<thread::JoinHandle<anyhow::Result<Recorder>>>> {
        let count = self.running.len();
        for running in &mut self.running {
            let mut stdin = running.stdin.take().expect("go is sent once");
            // A child that died since its opening (EPIPE here) is reported by
            // its reader below, as the death it is.
            let _ = writeln!(stdin, "{GO}");
        }
        let mut handles = Vec::with_capacity(count);
        for mut running in std::mem::take(&mut self.running) {
            let empty = empty.clone();
            let finished = finished.clone();
            let handle = thread::Builder::new()
                .name(format!("loadgen-child-{}", running.index))
                .spawn(move || {
                    let result = read_line::<Recording>(&mut running, count).and_then(|recording| {
                        let status = running.child.wait().context("wait for a child")?;
                        if !status.success() {
                            bail!(
                                "child {} of {count} (pid {}) ended {status} after its recording",
                                running.index,
                                running.child.id()
                            );
                        }
                        Ok(recording.into_recorder(empty()))
                    });
                    let _ = finished.send(());
                    // Dropped here: killed if still running (an error), and
                    // reaped either way.
                    drop(Children {
                        running: vec![running],
                    });
                    result
                })
                .context("start a thread for a child")?;
            handles.push(handle);
        }
        Ok(handles)
    }
}

/// Reads `running`'s next JSON line; a child that ended first is an error
/// naming it and how it ended.
fn read_line<T: serde::de::DeserializeOwned>(
    running: &mut Running,
    count: usize,
) -> anyhow::Result<T> {
    let mut line = String::new();
    let read = running.stdout.read_line(&mut line);
    let name = format!(
        "child {} of {count} (pid {})",
        running.index,
        running.child.id()
    );
    match read {
        Ok(0) | Err(_) => {
            let status = running
                .child
                .wait()
                .map(|status| status.to_string())
                .unwrap_or_else(|err| format!("unknown ({err})"));
            bail!("{name} died before its report: {status}")
        }
        Ok(_) => serde_json::from_str(&line).with_context(|| format!("read {name}'s line")),
    }
}

/// The child's side: prints `opened` as its line, then waits for the
/// parent's `go` on stdin (end of file: the parent is gone, so is the run).
pub fn report_opened(opened: &Opened) -> anyhow::Result<()> {
    print_line(opened)?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("wait for the parent's go")?;
    if line.trim() != GO {
        bail!("the parent ended before the run began");
    }
    Ok(())
}

/// The child's side: prints the run's recording, with its own CPU time
/// over the window, as its last line.
pub fn report_recording(recorder: &Recorder, cpu: Option<CpuTimes>) -> anyhow::Result<()> {
    print_line(&Recording::of(recorder, cpu))
}

/// Prints `value` as one JSON line on stdout, flushed.
fn print_line(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let line = serde_json::to_string(value).context("serialise for the parent")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").context("write to the parent")?;
    stdout.flush().context("write to the parent")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `K/P` with K < P.
    #[test]
    fn parses_child_of() {
        assert_eq!(ChildOf::parse("1/4"), Ok(ChildOf { index: 1, count: 4 }));
        assert!(ChildOf::parse("4/4").is_err());
        assert!(ChildOf::parse("x").is_err());
    }
}
