//! Start a mode of the suite (or a peer) on loopback, read its `ready` line,
//! stop it by its pid: [`launch::Server`], the one way the test kit does it
//! too, with what a run adds: the binaries' folder, the CPUs the server tree
//! is pinned to (`taskset -c`, which execs, so the pid stays the master's),
//! a wrapper such as `strace -f`, the log of every command, the log of every
//! server's stderr, and the registration that stops it on a signal.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::Context;
use launch::{Ready, Server, Stderr};
use nix::sys::signal::Signal;
use runs::labels::Mode as Label;

use crate::children::{self, Registration, STOP_GRACE};

/// How long a server may take to print its `ready` line: it starts every
/// worker first (each `--init-delay`), on a machine the loads keep busy.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The Node.js cluster, the peer that imitates the masters' lines; written
/// into the run's folder and run from there, so that the folder keeps the
/// exact script that ran.
pub const NODE_CLUSTER_JS: &str = include_str!("../peers/node-cluster.js");

/// The suite's mode of a label (`handoff-socket`), as `cluster::Mode` names
/// it; `None` for the baseline and the peers.
pub fn cluster_mode(label: Label) -> Option<cluster::Mode> {
    cluster::Mode::ALL
        .into_iter()
        .find(|mode| mode.name() == label.name())
}

/// What to start for a mode of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    /// A master of the suite.
    Cluster(cluster::Mode),
    /// The Node.js cluster with `--sched rr` or `--sched none`.
    Node(&'static str),
}

impl Serve {
    /// What serves `label`: the baseline `direct` and nginx stand on a
    /// `proxy` cluster (its workers' own ports), the Node.js peers on the
    /// script.
    pub fn of(label: Label) -> Serve {
        match label {
            Label::NodeRr => Serve::Node("rr"),
            Label::NodeNone => Serve::Node("none"),
            label => Serve::Cluster(cluster_mode(label).unwrap_or(cluster::Mode::Proxy)),
        }
    }
}

/// Appends every command the harness runs to a file (`commands.log`,
/// `--commands FILE`): a record of what ran, with its pids and ports.
#[derive(Debug, Clone, Default)]
pub struct CommandLog(pub Option<PathBuf>);

impl CommandLog {
    /// Appends `argv`, its words joined by spaces.
    pub fn record<S: AsRef<std::ffi::OsStr>>(&self, argv: &[S]) {
        let Some(path) = &self.0 else { return };
        let line: Vec<String> = argv
            .iter()
            .map(|word| word.as_ref().to_string_lossy().into_owned())
            .collect();
        if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(file, "{}", line.join(" "));
        }
    }
}

/// Where and how the servers of a run start.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The folder of `proxy` and `handoff`.
    pub bin_dir: PathBuf,
    /// The taskset list the server tree is pinned to, if any.
    pub server_cpus: Option<String>,
    /// The log of commands.
    pub commands: CommandLog,
    /// The file every server's stderr is appended to; `None`: discarded.
    pub log: Option<PathBuf>,
    /// A folder for the peers' files (the Node.js script is written there
    /// at its first start).
    pub peers_dir: PathBuf,
}

/// A started server: stopped gracefully (SIGTERM, then SIGKILL after
/// [`STOP_GRACE`]) when dropped, on every way out.
pub struct Running {
    /// The process started and its output.
    server: Server,
    /// It is stopped on a signal to the harness.
    _registered: Registration,
    /// A wrapped master (`strace -f`), registered once its `ready` line
    /// names it.
    master_registered: Option<Registration>,
}

impl Launcher {
    /// The program of `serve` and the flags that make it that mode
    /// (`handoff --pass socket`).
    pub fn program(&self, serve: Serve) -> anyhow::Result<Vec<OsString>> {
        Ok(match serve {
            Serve::Cluster(cluster::Mode::Proxy) => vec![self.bin_dir.join("proxy").into()],
            Serve::Cluster(mode) => {
                let pass = mode.name().strip_prefix("handoff-").unwrap_or(mode.name());
                vec![
                    self.bin_dir.join("handoff").into(),
                    "--pass".into(),
                    pass.into(),
                ]
            }
            Serve::Node(sched) => {
                std::fs::create_dir_all(&self.peers_dir)
                    .with_context(|| format!("create {}", self.peers_dir.display()))?;
                let script = self.peers_dir.join(crate::peers::NODE_FILE);
                std::fs::write(&script, NODE_CLUSTER_JS)
                    .with_context(|| format!("write {}", script.display()))?;
                vec!["node".into(), script.into(), "--sched".into(), sched.into()]
            }
        })
    }

    /// The command of `serve` with `--listen 127.0.0.1:0 --workers N` and
    /// `extra`.
    pub fn command(
        &self,
        serve: Serve,
        workers: usize,
        extra: &[String],
    ) -> anyhow::Result<Vec<OsString>> {
        let mut argv = self.program(serve)?;
        argv.extend(["--listen", "127.0.0.1:0", "--workers"].map(OsString::from));
        argv.push(workers.to_string().into());
        argv.extend(extra.iter().map(OsString::from));
        Ok(argv)
    }

    /// Starts `serve` and waits for its `ready` line. `wrap` goes before the
    /// command (`strace -f -o FILE`): the master is then the `ready` line's.
    pub fn start(
        &self,
        serve: Serve,
        workers: usize,
        extra: &[String],
        wrap: &[String],
    ) -> anyhow::Result<Running> {
        let argv = self.command(serve, workers, extra)?;
        let mut running = self.spawn(argv, wrap)?;
        running.ready()?;
        Ok(running)
    }

    /// Starts `argv` (pinned and wrapped as asked), without waiting for its
    /// `ready` line.
    pub fn spawn(&self, argv: Vec<OsString>, wrap: &[String]) -> anyhow::Result<Running> {
        anyhow::ensure!(!argv.is_empty(), "no command to start");
        let name = argv[0].to_string_lossy().into_owned();
        let mut full: Vec<OsString> = wrap.iter().map(OsString::from).collect();
        if let Some(cpus) = &self.server_cpus {
            full.extend(["taskset".into(), "-c".into(), cpus.into()]);
        }
        full.extend(argv);
        self.commands.record(&full);
        let mut command = Command::new(&full[0]);
        command.args(&full[1..]);
        let stderr = match &self.log {
            Some(path) => Stderr::File(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("open {}", path.display()))?,
            ),
            None => Stderr::Null,
        };
        let server = Server::spawn(command, &name, stderr, !wrap.is_empty())
            .with_context(|| format!("cannot start {name}"))?;
        let registered = children::register(server.pid());
        Ok(Running {
            server,
            _registered: registered,
            master_registered: None,
        })
    }
}

impl Running {
    /// Waits up to [`READY_TIMEOUT`] for the `ready` line.
    pub fn ready(&mut self) -> anyhow::Result<&Ready> {
        let wrapped_master = {
            let pid = self.server.pid();
            let ready = self.server.ready(READY_TIMEOUT)?;
            (ready.master_pid != pid).then_some(ready.master_pid)
        };
        if let (Some(master), None) = (wrapped_master, &self.master_registered) {
            self.master_registered = Some(children::register(master));
        }
        Ok(self.server.ready_line().expect("read just above"))
    }

    /// The `ready` line.
    ///
    /// # Panics
    /// Before [`Running::ready`] has read it.
    pub fn line(&self) -> &Ready {
        self.server
            .ready_line()
            .expect("Running::ready reads the line first")
    }

    /// The master's pid (the `ready` line's).
    pub fn master(&self) -> u32 {
        self.server.master_pid()
    }

    /// The pid of the process started (the master, or its wrapper).
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// The public port.
    pub fn port(&self) -> u16 {
        self.line().port()
    }

    /// The workers' pids of the `ready` line.
    pub fn workers(&self) -> Vec<u32> {
        self.line().worker_pids()
    }

    /// The first worker of the `ready` line.
    pub fn first_worker(&self) -> u32 {
        self.workers().first().copied().unwrap_or(0)
    }

    /// SIGTERM to the master (a graceful stop), then [`STOP_GRACE`] for the
    /// process started to exit, then SIGKILL.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        Ok(self.server.stop(STOP_GRACE)?)
    }

    /// Sends `signal` to the master.
    pub fn signal(&mut self, signal: Signal) -> anyhow::Result<()> {
        Ok(self.server.signal(signal)?)
    }

    /// Waits up to `timeout` for the process started to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.server.wait(timeout)
    }

    /// The stdout lines after the `ready` line, to the end of stdout.
    pub fn rest_of_stdout(&mut self) -> Vec<String> {
        self.server.rest_of_stdout()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.server.stop(STOP_GRACE);
    }
}

/// Opens `path` for appending, creating it.
pub fn append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}
