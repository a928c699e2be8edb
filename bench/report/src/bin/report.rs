//! `report DIR`: renders the loadgen runs in DIR/runs/*.json into
//! DIR/REPORT.md and SVG charts in DIR (see the crate docs). Exit codes: 0
//! when written, 2 for bad usage, 1 for anything else (no runs, a run that
//! does not read).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

/// Render the JSON reports of loadgen runs in DIR/runs/*.json (each with its
/// `--label`s: section, mode, load, round, ...) into DIR/REPORT.md and SVG
/// charts in DIR. Every figure is computed from the runs.
#[derive(Debug, Parser)]
#[command(name = "report", version)]
struct Cli {
    /// The results folder (as `scripts/compare.sh` writes it).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

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
            // One line, as every binary of the suite says a usage error.
            let message = err.render().to_string();
            let message = message.split("\n\nUsage:").next().unwrap_or(&message);
            eprintln!(
                "report: {}",
                message.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            return ExitCode::from(2);
        }
    };
    match report::render_dir(&cli.dir) {
        Ok(written) => {
            for path in written {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("report: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
