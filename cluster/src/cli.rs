//! What every binary of the suite shares on its command line: one duration
//! syntax, one usage error and one mapping of errors to exit codes.

use std::process::ExitCode;
use std::time::Duration;

/// A mistake the user can fix by changing the command line: exit code 2,
/// like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The longest duration any flag takes: one day.
///
/// Every duration flag ends up added to an `Instant` or armed as a timer
/// (hyper's header timeout, tokio's sleeps, loadgen's run and timeouts), and
/// `Instant + Duration` panics on overflow: `--header-timeout 300000000000y`
/// used to start, then panic the worker on every connection. A day is far
/// beyond any timeout or run this suite means (nginx's and Node.js's longest
/// defaults are minutes; a soak run lasts hours) and far below any overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses a duration flag (`10s`, `500ms`, `1m 30s`, `250us`) with
/// `humantime`, the syntax of systemd's time spans. A bare number is refused
/// ("time unit needed"): `--duration 10` could mean seconds (wrk) or
/// milliseconds (ab's `-s`), and every flag of the suite reads the same way.
/// So is anything over [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d > MAX_DURATION => Err(format!(
            "{text:?}: more than {}, the longest any duration flag takes",
            humantime::format_duration(MAX_DURATION)
        )),
        Ok(d) => Ok(d),
        Err(err) => Err(format!("{text:?}: {err}")),
    }
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

    /// Regression (issue 10): an absurd duration is a usage error, not a
    /// panic on the first connection; a day is the bound, inclusive.
    #[test]
    fn durations_are_bounded() {
        assert_eq!(parse_duration("1day"), Ok(MAX_DURATION));
        assert_eq!(parse_positive_duration("24h"), Ok(MAX_DURATION));
        for text in ["1day 1s", "300000000000y", "2d"] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains("longest"), "{text}: {err}");
            assert!(parse_positive_duration(text).is_err(), "{text}");
        }
        // Beyond what humantime itself can hold: still an error, not a panic.
        assert!(parse_duration("999999999999999999999y").is_err());
    }
}
