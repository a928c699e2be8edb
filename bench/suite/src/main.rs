//! `suite`: parses the flags, catches the signals that must stop every
//! child, runs, and maps the outcome to an exit code: 0, 1 for a failure (a
//! verdict that differs, a run that failed), 2 for bad usage (one line on
//! stderr, before anything is built or run).

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    // Before any child exists: each is stopped by its pid on a signal.
    if let Err(err) = suite::children::install() {
        eprintln!("suite: {err:#}");
        return ExitCode::from(1);
    }
    let cli = match suite::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage(&err),
    };
    let program = cli.command.program();
    match suite::run(cli) {
        Ok(code) => code,
        Err(err) => {
            let usage = err
                .chain()
                .any(|cause| cause.is::<cluster::cli::UsageError>());
            eprintln!("{program}: {err:#}");
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// clap's error as one line named after the script people type (help and
/// version as clap prints them, exit 0).
fn usage(err: &clap::Error) -> ExitCode {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return ExitCode::from(
            if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                2
            } else {
                0
            },
        );
    }
    let subcommand = std::env::args().nth(1).unwrap_or_default();
    let program = suite::program_of(&subcommand);
    let text = err.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let line = match (err.kind(), err.get(clap::error::ContextKind::InvalidArg)) {
        (ErrorKind::UnknownArgument, Some(arg)) => format!("unknown argument {arg} (see --help)"),
        _ => first.to_owned(),
    };
    eprintln!("{program}: {line}");
    ExitCode::from(2)
}
