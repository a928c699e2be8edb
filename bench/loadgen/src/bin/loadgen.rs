//! `loadgen`: loads an HTTP/1.1 server and reports what it cost (see the crate
//! docs and bench/loadgen/README.md). Exit codes: 0 after a run (failed requests are in
//! the report), 99 after a run that failed a `--slo` threshold
//! ([`loadgen::slo::SLO_FAILED_EXIT_CODE`]), 2 for bad usage or an unreachable
//! target, 1 for anything else.

use std::process::ExitCode;

use anyhow::Context;
use cluster::cli::UsageError;
use loadgen::cli::{Cli, Command};
use loadgen::hgrm::HgrmFiles;
use loadgen::output_file::OutputFile;
use loadgen::slo;

fn main() -> ExitCode {
    let cli: Cli = match cluster::cli::parse("loadgen") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(&cli) {
        Ok(code) => code,
        Err(err) => cluster::cli::fail("loadgen", &err, false),
    }
}

/// Runs the load, judges its `--slo` thresholds, prints the summary, writes
/// the JSON and the `--hgrm` files; the exit code says whether every
/// threshold held.
fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::Report { dir }) = &cli.command {
        return Err(UsageError(format!(
            "the report has its own binary now: run `report {}` (cargo build --release -p report)",
            dir.display()
        ))
        .into());
    }
    // Before the load: a path that cannot be written is bad usage, not a run
    // lost at its end.
    let json = cli
        .json
        .as_deref()
        .map(|path| OutputFile::create("--json", path))
        .transpose()?;
    let hgrm = cli
        .hgrm
        .as_deref()
        .map(|path| HgrmFiles::create(path, cli.json.as_deref()))
        .transpose()?;
    let config = cli.config(std::env::args().collect());
    let mut measured = loadgen::run(&config)?;
    // A child of a `--hold` run has handed its recording to its parent,
    // which reports the run.
    if cli.child.is_some() {
        return Ok(ExitCode::SUCCESS);
    }
    measured.report.slo = slo::judge(&cli.slo, &measured);
    let report = &measured.report;
    print!("{}", loadgen::summary::render(report));
    if let Some(json) = json {
        json.write(&runs::to_json(report).context("serialise the report")?)?;
    }
    if let Some(hgrm) = hgrm {
        hgrm.write(&measured)?;
    }
    if slo::all_pass(&report.slo) {
        return Ok(ExitCode::SUCCESS);
    }
    let failed: Vec<&str> = report
        .slo
        .iter()
        .filter(|result| !result.pass)
        .map(|result| result.expr.as_str())
        .collect();
    eprintln!(
        "loadgen: {} of {} --slo thresholds failed: {}",
        failed.len(),
        report.slo.len(),
        failed.join(", ")
    );
    Ok(ExitCode::from(slo::SLO_FAILED_EXIT_CODE))
}
