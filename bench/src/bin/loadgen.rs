//! `loadgen`: loads an HTTP/1.1 server and reports what it cost (see the crate
//! docs and bench/README.md). Exit codes: 0 after a run (failed requests are in
//! the report), 2 for bad usage or an unreachable target, 1 for anything else.

use std::process::ExitCode;

use bench::UsageError;
use bench::cli::{Cli, Command};
use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            err.exit()
        }
        Err(err) => {
            eprintln!("loadgen: {}", one_line(&err.render().to_string()));
            return ExitCode::from(2);
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("loadgen: error: {err:#}");
            let usage = err.downcast_ref::<UsageError>().is_some();
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// Runs the load, prints the summary, writes the JSON; or renders a report.
fn run(cli: &Cli) -> anyhow::Result<()> {
    if let Some(Command::Report { dir }) = &cli.command {
        let written = bench::render::render_dir(dir)?;
        for path in written {
            println!("wrote {}", path.display());
        }
        return Ok(());
    }
    let config = cli.config(std::env::args().collect());
    let report = bench::run(&config)?;
    print!("{}", bench::summary::render(&report));
    if let Some(path) = &cli.json {
        bench::write_json(&report, path)?;
    }
    Ok(())
}

/// Clap's message without its usage block, on one line: `error: invalid value
/// '0' for '--duration <DURATION>': must be more than zero`.
fn one_line(message: &str) -> String {
    let message = message.split("\n\nUsage:").next().unwrap_or(message);
    let message = message
        .split("\n\nFor more information")
        .next()
        .unwrap_or(message);
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
