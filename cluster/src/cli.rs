//! What every binary of the suite shares on its command line: one duration
//! syntax, one usage error and one mapping of errors to exit codes.

use std::process::ExitCode;
use std::time::Duration;

/// A mistake the user can fix by changing the command line: exit code 2,
/// like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Parses a duration flag (`10s`, `500ms`, `1m 30s`, `250us`) with
/// `humantime`, the syntax of systemd's time spans. A bare number is refused
/// ("time unit needed"): `--duration 10` could mean seconds (wrk) or
/// milliseconds (ab's `-s`), and every flag of the suite reads the same way.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|err| format!("{text:?}: {err}"))
}

/// [`parse_duration`] for a flag where zero makes no sense (`--duration`,
/// `--header-timeout`).
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!("{text:?}: must be more than zero")),
        d => Ok(d),
    }
}

/// Parses the command line with clap. `--help` and `--version` print and
/// exit 0 as usual; a usage mistake prints clap's message as one line on
/// stderr (without the usage block, which `--help` gives) and returns exit
/// code 2, so that scripts see the same one-line errors from every binary.
pub fn parse<T: clap::Parser>(program: &str) -> Result<T, ExitCode> {
    use clap::error::ErrorKind;
    match T::try_parse() {
        Ok(parsed) => Ok(parsed),
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            err.exit()
        }
        Err(err) => {
            eprintln!("{program}: {}", one_line(&err.render().to_string()));
            Err(ExitCode::from(2))
        }
    }
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

/// Prints `err` as one line on stderr, prefixed with the program's name, and
/// returns the exit code: 2 when `is_usage` says the user can fix it on the
/// command line, 1 else.
pub fn fail(program: &str, err: &anyhow::Error, is_usage: bool) -> ExitCode {
    eprintln!("{program}: error: {err:#}");
    ExitCode::from(if is_usage || is_usage_error(err) {
        2
    } else {
        1
    })
}

/// Whether `err` is, or wraps, a [`UsageError`].
pub fn is_usage_error(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<UsageError>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every duration flag takes the same syntax and rejects the same way.
    #[test]
    fn durations_are_humantime() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        let bare = parse_duration("10").unwrap_err();
        assert!(bare.contains("time unit needed"), "{bare}");
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_duration("ten seconds").is_err());
    }
}
