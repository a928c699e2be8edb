//! Running `loadgen`: its command (pinned with `taskset -c` when asked, and
//! logged), in the foreground or beside an experiment, and stopped by its
//! pid on every way out.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::Context;

use crate::children::{self, Registration};
use crate::server::{CommandLog, append};

/// How loadgen runs in this harness.
#[derive(Debug, Clone)]
pub struct Loadgen {
    /// The binary.
    pub bin: PathBuf,
    /// The taskset list it is pinned to, if any.
    pub cpus: Option<String>,
    /// The log of commands.
    pub commands: CommandLog,
}

/// A loadgen running beside an experiment: SIGTERM and reaped when dropped
/// before its end (loadgen continues any worker it stopped on its way out).
pub struct Running {
    /// Our child.
    child: Child,
    /// It is stopped on a signal to the harness.
    _registered: Registration,
}

impl Loadgen {
    /// The command line of a run with `args`.
    pub fn command(&self, args: &[String]) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(cpus) = &self.cpus {
            argv.extend(["taskset".into(), "-c".into(), cpus.into()]);
        }
        argv.push(self.bin.clone().into());
        argv.extend(args.iter().map(OsString::from));
        argv
    }

    /// Starts a run with `args`, its stdout and stderr appended to
    /// `output` (or discarded).
    pub fn spawn(&self, args: &[String], output: Option<&Path>) -> anyhow::Result<Running> {
        let argv = self.command(args);
        self.commands.record(&argv);
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]).stdin(Stdio::null());
        match output {
            Some(path) => {
                let file = append(path)?;
                command.stdout(file.try_clone()?).stderr(file);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = command.spawn().context("cannot start loadgen")?;
        let registered = children::register(child.id());
        Ok(Running {
            child,
            _registered: registered,
        })
    }

    /// Runs `args` to its end; an error naming `what` with the last lines
    /// of `output` if it fails.
    pub fn run(&self, args: &[String], output: &Path, what: &str) -> anyhow::Result<()> {
        let status = self.spawn(args, Some(output))?.wait()?;
        anyhow::ensure!(
            status.success(),
            "loadgen failed{what}:\n{}",
            crate::system::tail(output, 3)
        );
        Ok(())
    }
}

/// A run's failures by kind, as `reset 2, timeout 1` (`none` without any),
/// the kinds `but` names left out.
pub fn failures(report: &runs::Report, but: &[&str]) -> String {
    let kinds: Vec<String> = report
        .errors
        .by_kind
        .iter()
        .filter(|(kind, count)| **count > 0 && !but.contains(&kind.as_str()))
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
    if kinds.is_empty() {
        "none".to_owned()
    } else {
        kinds.join(", ")
    }
}

impl Running {
    /// Waits for its end.
    pub fn wait(&mut self) -> anyhow::Result<ExitStatus> {
        self.child.wait().context("wait for loadgen")
    }

    /// Whether it has ended (reaped then).
    pub fn has_ended(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        children::stop_child(&mut self.child);
    }
}
