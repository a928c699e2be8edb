//! The harness of the suite, in Rust: the comparison that writes a results
//! folder, the lessons of LESSONS.md, the upgrade driver of REPORT.md §8,
//! and the side tools of README's other figures. `scripts/compare.sh` and
//! `scripts/lesson.sh` build this binary and hand it their arguments.
//!
//! The comparison's plan is data ([`plan::Plan`]): the dry run prints it
//! and the run iterates it. A mode has one name, `cluster::Mode`'s (and
//! `runs::labels`' for the baseline and the peers); lesson 3 reads frames
//! with `cluster::channel::Message`; servers start the one way the test kit
//! starts them too ([`launch::Server`]).
//!
//! # Layout
//! - [`plan`]: the plan as data: sections × modes × loads × rounds,
//!   shuffled by the seed, with its estimate.
//! - [`compare`]: the flags, the affinity, the run of the plan and the
//!   results folder's README.md.
//! - [`sweep`]: §1b's rates from §1's runs.
//! - [`server`]: start a mode (or the Node.js peer), read its `ready` line,
//!   stop it by its pid; the command log.
//! - [`peers`]: nginx in front of a cluster's workers; the peers' files;
//!   how each peer ran (`peers.json`).
//! - [`answer`]: each server's answer to one `GET /` before any load
//!   (`answers.json`).
//! - [`loadgen`]: a loadgen run, in the foreground or beside an experiment.
//! - [`upgrade`]: the upgrade driver: takeover, restart, overlap, overlap in
//!   a network namespace; the `upgrades` block of its runs.
//! - [`lessons`]: one module per lesson: its run, figure and verdict.
//! - [`lost_fds`]: lesson 9's experiment, a batch of fds to a receiver at
//!   its fd limit, run in a child process.
//! - [`tools`]: `wrk-modes`, `ab-handoff`, `vs-wrk`.
//! - [`children`]: every child stopped by its pid on a signal to the
//!   harness.
//! - [`procfs`]: the kernel's view of a server (sockets, fds, CPU time).
//! - [`system`]: the machine: CPU lists, tools, facts a run records.
#![deny(missing_docs)]

use std::process::ExitCode;

pub mod answer;
pub mod children;
pub mod compare;
pub mod lessons;
pub mod loadgen;
pub mod lost_fds;
pub mod peers;
pub mod plan;
pub mod procfs;
pub mod server;
pub mod sweep;
pub mod system;
pub mod tools;
pub mod upgrade;

/// `suite`'s command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "suite",
    about = "The harness: the comparison, the lessons, the upgrade driver and the side tools"
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Every way of sharing one port under the same loads, measured by
    /// loadgen, written as a results folder with REPORT.md
    /// (`scripts/compare.sh`).
    Compare(compare::Args),
    /// A lesson of LESSONS.md, its figure and its verdict (`scripts/lesson.sh`).
    Lesson(lessons::Args),
    /// Replace a running master N times in a row, per mode and strategy,
    /// and time it (REPORT.md §8).
    Upgrade(upgrade::Args),
    /// Requests/s of every mode under wrk, interleaved (`scripts/wrk-modes.sh`).
    WrkModes(tools::WrkModesArgs),
    /// Two builds of handoff-socket side by side, CPU per request
    /// (`scripts/ab-handoff.sh`).
    AbHandoff(tools::AbHandoffArgs),
    /// loadgen against wrk on one target (`bench/loadgen/scripts/vs-wrk.sh`).
    VsWrk(tools::VsWrkArgs),
}

impl Cmd {
    /// The name its one-line errors start with: the script people type.
    pub fn program(&self) -> &'static str {
        program_of(match self {
            Cmd::Compare(_) => "compare",
            Cmd::Lesson(_) => "lesson",
            Cmd::Upgrade(_) => "upgrade",
            Cmd::WrkModes(_) => "wrk-modes",
            Cmd::AbHandoff(_) => "ab-handoff",
            Cmd::VsWrk(_) => "vs-wrk",
        })
    }
}

/// The name errors of subcommand `name` start with.
pub fn program_of(name: &str) -> &'static str {
    match name {
        "compare" => "compare.sh",
        "lesson" => "lesson.sh",
        "wrk-modes" => "wrk-modes.sh",
        "ab-handoff" => "ab-handoff.sh",
        "vs-wrk" => "vs-wrk.sh",
        "upgrade" => "suite upgrade",
        _ => "suite",
    }
}

/// Runs a parsed command line; its exit code, or an error (one whose cause
/// is a `cluster::cli::UsageError` is bad usage: exit 2).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Compare(args) => compare::run(args).map(|()| ExitCode::SUCCESS),
        Cmd::Lesson(args) => lessons::run(args),
        Cmd::Upgrade(args) => {
            let options = args.options()?;
            upgrade::run(&options, &mut std::io::stdout()).map(|()| ExitCode::SUCCESS)
        }
        Cmd::WrkModes(args) => tools::wrk_modes(&args).map(|()| ExitCode::SUCCESS),
        Cmd::AbHandoff(args) => tools::ab_handoff(&args).map(|()| ExitCode::SUCCESS),
        Cmd::VsWrk(args) => tools::vs_wrk(&args).map(|()| ExitCode::SUCCESS),
    }
}
