//! The load generator's own limits: fds and memory. Each connection is one fd
//! (two in the keep-alive open loop, with its timerfd; in the open model of
//! `--new-conn --rate`, one per request in flight, at most `--connections`,
//! and a timerfd per load thread), so it raises its soft `RLIMIT_NOFILE`
//! to the hard limit before the run, refuses connections that could never all
//! be open ([`check_connections`]), warns when the run will not fit with the
//! fds it needs besides, and the report says what it got, so that running out
//! is explained rather than mysterious. Each connection also keeps a read
//! buffer, so connections that could not fit in memory are refused too.

use runs::{FdLimit, format};

use super::connection::{MEMORY_PER_CONNECTION_BYTES, Model};

/// The fds the load generator needs besides its connections: stdio, the
/// runtimes' epoll and event fds, `/proc` readings, the JSON file.
pub const FDS_BESIDES_CONNECTIONS: u64 = 64;

/// The fds one connection holds: its socket, and in the keep-alive open loop
/// the `timerfd` it sleeps on between requests (`super::timer`). Under
/// `--new-conn` a connection closes its socket before it opens the next one;
/// in the open model (`super::open_model`) a connection is a place for one
/// request in flight, and the timerfds are the load threads'.
pub fn fds_per_connection(model: Model) -> u64 {
    match model {
        Model::OpenDealt => 2,
        Model::Closed | Model::OpenEach | Model::Hold => 1,
    }
}

/// The fds `connections` connections over `threads` load threads hold when
/// all are open: in the open model, one timerfd per thread besides.
pub fn fds_of_connections(connections: usize, model: Model, threads: usize) -> u64 {
    let timers = match model {
        Model::OpenEach => threads as u64,
        Model::Closed | Model::OpenDealt | Model::Hold => 0,
    };
    (connections as u64)
        .saturating_mul(fds_per_connection(model))
        .saturating_add(timers)
}

/// About how many fds a run of `connections` connections needs, all told.
pub fn fds_needed(connections: usize, model: Model, threads: usize) -> u64 {
    fds_of_connections(connections, model, threads).saturating_add(FDS_BESIDES_CONNECTIONS)
}

/// The memory loadgen may still take, and which limit says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRoom {
    /// Bytes.
    pub bytes: u64,
    /// Where the figure comes from, for the error line.
    pub source: &'static str,
}

/// The smaller of the machine's available memory (`MemAvailable` in
/// /proc/meminfo: what can be allocated without swapping) and, under an
/// `RLIMIT_AS` (`ulimit -v`), the address space left under it; `None` when
/// neither can be read.
pub fn memory_room() -> Option<MemoryRoom> {
    let available = meminfo_kib("MemAvailable").map(|kib| MemoryRoom {
        bytes: kib.saturating_mul(1024),
        source: "MemAvailable in /proc/meminfo",
    });
    let address_space = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_AS)
        .ok()
        .map(|(soft, _hard)| soft)
        .filter(|&soft| soft != nix::sys::resource::RLIM_INFINITY)
        .and_then(|soft| {
            let used = status_kib("VmSize")?.saturating_mul(1024);
            Some(MemoryRoom {
                bytes: soft.saturating_sub(used),
                source: "RLIMIT_AS (ulimit -v) less the address space loadgen already uses",
            })
        });
    [available, address_space]
        .into_iter()
        .flatten()
        .min_by_key(|room| room.bytes)
}

/// A `NAME:  N kB` line of /proc/meminfo, in KiB.
fn meminfo_kib(name: &str) -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, name)
}

/// A `NAME:  N kB` line of /proc/self/status, in KiB.
fn status_kib(name: &str) -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/self/status").ok()?, name)
}

/// The value of the `NAME:  N kB` line of `text`, in KiB.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
}

/// Refuses, before any connection is opened or allocated, `connections` that
/// could never all be held: more fds than the fd limit (`fd_limit`, already
/// raised to the hard limit, which only a privileged process can raise), or
/// more memory than `memory` (when known). `Err` is the usage error's line.
///
/// Only what is certain is refused: the connections' own fds alone, not the
/// [`FDS_BESIDES_CONNECTIONS`] spare, which is an estimate and only warned
/// about ([`FdLimit::fits`]). `--connections 1000000000` used to build its
/// connections until it ran out of memory and aborted.
pub fn check_connections(
    connections: usize,
    model: Model,
    threads: usize,
    fd_limit: &FdLimit,
    memory: Option<MemoryRoom>,
) -> Result<(), String> {
    let fds = fds_of_connections(connections, model, threads);
    if fds > fd_limit.soft {
        let each = match model {
            Model::OpenDealt => "2 each in open loop: the socket and its timerfd",
            Model::OpenEach => {
                "1 each request in flight under --new-conn --rate, and a timerfd per load thread"
            }
            Model::Closed | Model::Hold => "1 each",
        };
        return Err(format!(
            "--connections {connections} need {fds} fds ({each}), more than loadgen's fd \
             limit of {} (RLIMIT_NOFILE; its hard limit is {}, which only a privileged \
             process can raise): at most {} connections fit",
            fd_limit.soft,
            fd_limit.hard,
            fd_limit.soft.saturating_sub(FDS_BESIDES_CONNECTIONS) / fds_per_connection(model)
        ));
    }
    let Some(memory) = memory else {
        return Ok(());
    };
    let bytes = (connections as u64).saturating_mul(MEMORY_PER_CONNECTION_BYTES);
    if bytes > memory.bytes {
        return Err(format!(
            "--connections {connections} would take about {} of memory ({} each: the read \
             buffer and the task, of a connection or of a place in flight), more than the {} loadgen may still take ({}): at most \
             {} connections fit",
            format::bytes(bytes),
            format::bytes(MEMORY_PER_CONNECTION_BYTES),
            format::bytes(memory.bytes),
            memory.source,
            memory.bytes / MEMORY_PER_CONNECTION_BYTES
        ));
    }
    Ok(())
}

/// The connections one process can hold under `fd_limit` (1 fd each, as
/// `--hold` holds them), the [`FDS_BESIDES_CONNECTIONS`] spare kept.
pub fn connections_per_process(fd_limit: &FdLimit) -> u64 {
    fd_limit.soft.saturating_sub(FDS_BESIDES_CONNECTIONS).max(1)
}

/// `--hold`: how many processes hold `connections` (`--processes`, or as
/// many as the fd limit requires), or the usage error's line when the given
/// number cannot: the hard limit binds every process alike (only a
/// privileged process can raise it), so what one process cannot hold is
/// spread over several, each with its own limit.
pub fn hold_processes(
    connections: usize,
    processes: Option<usize>,
    fd_limit: &FdLimit,
) -> Result<usize, String> {
    let each = connections_per_process(fd_limit);
    let needed = (connections as u64).div_ceil(each) as usize;
    match processes {
        None => Ok(needed.max(1)),
        Some(given) if given >= needed => Ok(given),
        Some(given) => Err(format!(
            "--connections {connections} need {needed} processes of {each} connections each \
             (an fd each under loadgen's fd limit of {}, hard limit {}, less {} spare), more \
             than --processes {given}: at most {} connections fit",
            fd_limit.soft,
            fd_limit.hard,
            FDS_BESIDES_CONNECTIONS,
            each.saturating_mul(given as u64)
        )),
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (setrlimit(2)).
pub fn raise_fd_limit() -> std::io::Result<FdLimit> {
    let soft_at_start = cluster::rlimit::get()?.soft;
    // When raising fails, the report shows the limit that applied.
    let now = cluster::rlimit::raise_soft_to_hard()?;
    Ok(FdLimit {
        soft_at_start,
        soft: now.soft,
        hard: now.hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 10, extra): a keep-alive open-loop connection
    /// counts its timerfd too; a closed loop (keep-alive or `--new-conn`) one
    /// fd each; the open model (issue 22, item 6) one per request in flight
    /// and a timerfd per load thread.
    #[test]
    fn open_loop_needs_two_fds_per_connection() {
        assert_eq!(
            fds_needed(100, Model::Closed, 2),
            100 + FDS_BESIDES_CONNECTIONS
        );
        assert_eq!(
            fds_needed(100, Model::OpenDealt, 2),
            200 + FDS_BESIDES_CONNECTIONS
        );
        assert_eq!(
            fds_needed(100, Model::OpenEach, 2),
            102 + FDS_BESIDES_CONNECTIONS
        );
        let limit = FdLimit {
            soft_at_start: 250,
            soft: 250,
            hard: 250,
        };
        assert!(limit.fits(fds_needed(100, Model::Closed, 1)));
        assert!(limit.fits(fds_needed(100, Model::OpenEach, 1)));
        assert!(!limit.fits(fds_needed(100, Model::OpenDealt, 1)));
        assert!(!limit.fits(fds_needed(usize::MAX, Model::OpenDealt, 1)));
    }

    /// Regression (issue 19, item 7): connections whose own fds exceed the fd
    /// limit, or whose memory exceeds what is left, are refused with a line
    /// that names the limit; the spare fds besides are only warned about.
    #[test]
    fn refuses_connections_that_cannot_all_be_held() {
        let limit = FdLimit {
            soft_at_start: 1024,
            soft: 20_000,
            hard: 20_000,
        };
        let plenty = Some(MemoryRoom {
            bytes: u64::MAX,
            source: "test",
        });
        assert_eq!(
            check_connections(20_000, Model::Closed, 1, &limit, plenty),
            Ok(())
        );
        assert_eq!(
            check_connections(10_000, Model::OpenDealt, 1, &limit, plenty),
            Ok(())
        );
        assert_eq!(
            check_connections(20_000, Model::Closed, 1, &limit, None),
            Ok(())
        );
        let refused = check_connections(1_000_000_000, Model::Closed, 1, &limit, plenty)
            .expect_err("a billion fds");
        assert!(refused.contains("1000000000 fds"), "{refused}");
        assert!(refused.contains("fd limit of 20000"), "{refused}");
        assert!(refused.contains("at most 19936 connections"), "{refused}");
        let refused =
            check_connections(10_001, Model::OpenDealt, 1, &limit, plenty).expect_err("20002 fds");
        assert!(refused.contains("20002 fds (2 each"), "{refused}");
        assert!(check_connections(usize::MAX, Model::OpenDealt, 1, &limit, plenty).is_err());
        // The open model: 19,998 places and 2 threads' timerfds fit 20,000.
        assert_eq!(
            check_connections(19_998, Model::OpenEach, 2, &limit, plenty),
            Ok(())
        );
        let refused =
            check_connections(19_999, Model::OpenEach, 2, &limit, plenty).expect_err("20001 fds");
        assert!(
            refused.contains("20001 fds (1 each request in flight"),
            "{refused}"
        );

        let little = Some(MemoryRoom {
            bytes: 100 * MEMORY_PER_CONNECTION_BYTES,
            source: "RLIMIT_AS",
        });
        assert_eq!(
            check_connections(100, Model::Closed, 1, &limit, little),
            Ok(())
        );
        let refused = check_connections(101, Model::Closed, 1, &limit, little).expect_err("memory");
        assert!(refused.contains("RLIMIT_AS"), "{refused}");
        assert!(refused.contains("at most 100 connections"), "{refused}");
    }

    /// `--hold` over processes: as many as the fd limit requires by default;
    /// fewer given is refused with the most they hold.
    #[test]
    fn spreads_held_connections_over_processes() {
        let limit = FdLimit {
            soft_at_start: 1024,
            soft: 20_000,
            hard: 20_000,
        };
        assert_eq!(hold_processes(1, None, &limit), Ok(1));
        assert_eq!(hold_processes(19_936, None, &limit), Ok(1));
        assert_eq!(hold_processes(19_937, None, &limit), Ok(2));
        assert_eq!(hold_processes(38_000, None, &limit), Ok(2));
        assert_eq!(hold_processes(38_000, Some(4), &limit), Ok(4));
        let refused = hold_processes(38_000, Some(1), &limit).expect_err("one process");
        assert!(refused.contains("need 2 processes"), "{refused}");
        assert!(refused.contains("at most 19936 connections"), "{refused}");
    }

    /// `NAME: N kB` lines of /proc are read as KiB; this process has some.
    #[test]
    fn reads_kib_fields() {
        let text = "MemTotal:       24000000 kB\nMemAvailable:   23000000 kB\n";
        assert_eq!(kib_field(text, "MemAvailable"), Some(23_000_000));
        assert_eq!(kib_field(text, "Mem"), None);
        assert_eq!(kib_field(text, "SwapTotal"), None);
        assert!(status_kib("VmSize").is_some_and(|kib| kib > 0));
        assert!(memory_room().is_some_and(|room| room.bytes > 0));
    }
}
