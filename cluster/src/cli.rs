//! What every binary of the suite shares on its command line: one duration
//! syntax, one usage error and one mapping of errors to exit codes; and the
//! flags every master takes ([`ClusterArgs`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::rlimit::NofileLimit;

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

/// The shortest `--worker-timeout`: 100 ms.
///
/// The master pings every quarter of the timeout and a worker answers from
/// its event loop, so the timeout must exceed what a healthy worker can take
/// to answer: a turn of its event loop (up to a 1 ms request, longer while it
/// computes `?work_us`), plus the scheduler's delay for both processes on a
/// loaded machine, which reaches tens of milliseconds. Issue 19 measured
/// `--worker-timeout 1ms` killing 8 to 10 healthy, idle workers every 2 s.
/// unicorn's `timeout` is in seconds; 100 ms is the floor, not a sane value.
pub const MIN_WORKER_TIMEOUT: Duration = Duration::from_millis(100);

/// [`parse_duration`] for `--worker-timeout`: at least
/// [`MIN_WORKER_TIMEOUT`].
pub fn parse_worker_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d < MIN_WORKER_TIMEOUT => Err(format!(
            "{text:?}: less than {}, which healthy workers cannot be relied on to answer within",
            humantime::format_duration(MIN_WORKER_TIMEOUT)
        )),
        d => Ok(d),
    }
}

/// The longest `--grace`: ten minutes, a stop an operator still waits for
/// (long requests, slow clients); beyond, a stop looks like a hang.
pub const MAX_GRACE: Duration = Duration::from_secs(10 * 60);

/// [`parse_duration`] for `--grace`: at most [`MAX_GRACE`] (zero is allowed:
/// close at once what is in flight).
pub fn parse_grace(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d > MAX_GRACE => Err(format!(
            "{text:?}: more than {}, the longest grace a stop takes",
            humantime::format_duration(MAX_GRACE)
        )),
        d => Ok(d),
    }
}

/// The flags every mode takes (ARCHITECTURE.md).
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Address of the public port. Port 0 picks a free port; the `ready` line
    /// on stdout says which. Loopback by default: a benchmark server should not
    /// be reachable from the network unless asked.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The accept queue length asked of listen(2) for every socket of the
    /// public port: how many clients that completed their handshake may
    /// wait for a worker (or the master) to accept them; beyond, the kernel
    /// drops their SYNs and they retry. The kernel silently caps it at
    /// `net.core.somaxconn` (4096 by default; the master warns when it
    /// does). 1 to 65535: 0 would still queue one connection (the kernel
    /// refuses only when more than the backlog wait), and older kernels
    /// kept the length in 16 bits. A master that takes the sockets over
    /// (`--takeover`) keeps the backlog they were given, as it keeps their
    /// address.
    #[arg(long, value_name = "N", default_value_t = crate::listen::DEFAULT_BACKLOG, value_parser = clap::value_parser!(u16).range(1..))]
    pub backlog: u16,

    /// Number of worker processes. One per CPU by default, as Node.js's cluster
    /// examples and nginx's `worker_processes auto` do.
    #[arg(long, default_value_t = default_workers(), value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: u16,

    /// Set the master's RLIMIT_NOFILE (soft limit) to N, for the fd-limit
    /// experiment. Workers keep the limit the master was started with.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(16..))]
    pub max_fds: Option<u64>,

    /// How long a client may take to send a request's headers (slowloris
    /// defence); it also bounds a keep-alive connection's idle time between
    /// requests. nginx's `client_header_timeout` and Node.js's `headersTimeout`
    /// are 60 s; a benchmark's clients send at once, so 10 s is generous and
    /// frees a stalled client's fd sooner. At most a day, like every duration
    /// flag.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub header_timeout: Duration,

    /// How long a worker may leave the master's ping unanswered before it is
    /// killed (SIGKILL) and replaced: a worker that is alive but stuck (a
    /// SIGSTOP, a deadlock, a request computing forever) would otherwise keep
    /// its share of the clients waiting. The master pings each worker every
    /// quarter of this (at most every second), and the worker's event loop
    /// answers. unicorn's worker `timeout` is the same idea (60 s there, for
    /// requests of a web application); 10 s is ten times the longest request
    /// a worker of this suite computes (`?work_us=1000000`). At least 100 ms
    /// (below, healthy workers are killed).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_worker_timeout)]
    pub worker_timeout: Duration,

    /// Serve a Unix socket at PATH (mode 0600, removed at exit) on which a
    /// new master of the same mode, started with `--takeover PATH`, takes
    /// the listening sockets over (SCM_RIGHTS) for a zero-downtime upgrade.
    /// A stale socket left by a dead master is replaced; one a live master
    /// serves is never taken.
    #[arg(long, value_name = "PATH")]
    pub upgrade_socket: Option<PathBuf>,

    /// Take the listening sockets over from the master serving
    /// `--upgrade-socket PATH` (`--listen` is then ignored), start the
    /// workers on them, and when every one serves tell the old master,
    /// which stops accepting and exits once its workers are done. Give the
    /// same `--upgrade-socket PATH` to be taken over in turn.
    #[arg(long, value_name = "PATH")]
    pub takeover: Option<PathBuf>,

    /// How long each worker waits before it reports ready, standing in for
    /// a real server's start-up (configuration, caches, JIT): it makes the
    /// cost of a restart visible. It answers the master's pings meanwhile.
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = parse_duration)]
    pub init_delay: Duration,

    /// How long a stop (SIGTERM or SIGINT, a handover to a successor) lets
    /// the requests in flight finish before what is left is closed: the
    /// whole stop, every worker included, takes at most this (and half a
    /// second). HAProxy's `hard-stop-after`, nginx's
    /// `worker_shutdown_timeout` and Envoy's `--drain-time-s` let the
    /// operator choose too; 5 s is five times the longest request a worker
    /// of this suite computes. At most 10 minutes.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_grace)]
    pub grace: Duration,
}

fn default_workers() -> u16 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(1024) as u16)
}

/// Everything a mode's `run` needs from the common set-up (besides its
/// [`Upgrade`](crate::upgrade::Upgrade)).
#[derive(Debug, Clone)]
pub struct Setup {
    /// The flags as given.
    pub args: ClusterArgs,
    /// The RLIMIT_NOFILE the master was started with, for the workers.
    pub worker_nofile: NofileLimit,
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

    /// Regression (issue 19): `--worker-timeout 1ms` was accepted and killed
    /// healthy workers; below 100 ms is a usage error now.
    #[test]
    fn worker_timeout_has_a_floor() {
        assert_eq!(parse_worker_timeout("100ms"), Ok(MIN_WORKER_TIMEOUT));
        assert_eq!(parse_worker_timeout("10s"), Ok(Duration::from_secs(10)));
        for text in ["99ms", "1ms", "1us", "1ns", "0s"] {
            let err = parse_worker_timeout(text).unwrap_err();
            assert!(err.contains("less than 100ms"), "{text}: {err}");
        }
        assert!(parse_worker_timeout("2d").is_err());
    }

    /// Issue 26: `--grace` takes zero to ten minutes.
    #[test]
    fn grace_is_bounded() {
        assert_eq!(parse_grace("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_grace("10m"), Ok(MAX_GRACE));
        let err = parse_grace("10m 1s").unwrap_err();
        assert!(err.contains("longest grace"), "{err}");
    }

    /// `--backlog` (issue 24): 4096 unless given, 1 to 65535, anything else
    /// a usage error.
    #[test]
    fn backlog_is_bounded() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            cluster: ClusterArgs,
        }
        let backlog = |args: &[&str]| {
            let argv = std::iter::once("master").chain(args.iter().copied());
            <Flags as clap::Parser>::try_parse_from(argv).map(|flags| flags.cluster.backlog)
        };
        assert_eq!(backlog(&[]).unwrap(), 4096);
        assert_eq!(backlog(&["--backlog", "1"]).unwrap(), 1);
        assert_eq!(backlog(&["--backlog", "65535"]).unwrap(), 65535);
        for bad in ["0", "65536", "-1", "many"] {
            assert!(backlog(&["--backlog", bad]).is_err(), "--backlog {bad}");
        }
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
