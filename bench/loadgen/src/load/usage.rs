//! loadgen's own cost and placement: its CPU time over the measured window
//! (`loadgen_usage`: getrusage(2) at the window's start and end), the whole
//! machine's at the same instants (`machine_usage`: `/proc/stat`, read by
//! `proc_stat`), and the CPUs
//! it and each `--watch` pid may run on (`affinity`: sched_getaffinity(2), and
//! `Cpus_allowed_list` of `/proc/PID/status`), read once, when the warm-up ends.
//!
//! The load generator shares the machine with the server unless they are
//! pinned apart, so what it spends per request is part of every figure: a
//! reader needs it next to the server's cost, and needs to know whether the two
//! could run on the same CPUs.

use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeVal;
use nix::unistd::Pid;
use runs::MachineUsage;

use super::proc_stat::{self, CpuStat};

/// User and system CPU time of this process (all its threads, ended ones too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// User-mode CPU time.
    pub user: Duration,
    /// Kernel-mode CPU time.
    pub system: Duration,
}

impl CpuTimes {
    /// This process's CPU time so far, to the µs (getrusage(2); /proc/self/stat
    /// counts in clock ticks of 10 ms, too coarse for a 2 s window).
    pub fn of_self() -> Result<CpuTimes, String> {
        let usage = getrusage(UsageWho::RUSAGE_SELF).map_err(|err| format!("getrusage: {err}"))?;
        Ok(CpuTimes {
            user: duration_of(usage.user_time()),
            system: duration_of(usage.system_time()),
        })
    }
}

/// A `timeval` as a duration (a negative one, which getrusage never gives, as 0).
fn duration_of(time: TimeVal) -> Duration {
    let micros = i128::from(time.tv_sec()) * 1_000_000 + i128::from(time.tv_usec());
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

/// The CPUs one `--watch` pid may run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedCpus {
    /// The watched pid.
    pub pid: u32,
    /// Its `Cpus_allowed_list`, expanded, ascending.
    pub cpus: Vec<usize>,
}

/// Where loadgen and the watched processes may run, read when the warm-up ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// loadgen's own allowed CPUs (sched_getaffinity(2)), ascending.
    pub loadgen: Vec<usize>,
    /// Each `--watch` pid whose `/proc/PID/status` could be read, in order.
    pub watched: Vec<WatchedCpus>,
}

/// What was read at the window's edges.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    /// loadgen's CPU time over the window, and the time between the two
    /// readings; `None` if getrusage(2) failed.
    pub cpu: Option<(CpuTimes, Duration)>,
    /// The whole machine's CPU over the same span (`/proc/stat`); `None` if
    /// it could not be read.
    pub machine: Option<MachineUsage>,
    /// The placement; `None` if sched_getaffinity(2) failed.
    pub placement: Option<Placement>,
    /// Readings that failed, as notes for the report.
    pub errors: Vec<String>,
}

/// Takes the readings at the measured window's start and end, when the run's
/// main thread asks ([`WindowReadings::poll`]).
#[derive(Debug)]
pub struct WindowReadings {
    /// When the window starts and ends.
    start: Instant,
    end: Instant,
    /// The `--watch` pids.
    watch: Vec<u32>,
    /// What was read at the start.
    at_start: Option<Edge>,
    /// The readings, complete once the end has been read.
    readings: Readings,
    /// Whether the end has been read.
    done: bool,
}

impl WindowReadings {
    /// Readings for the window `[start, end)` of a run watching `watch`.
    pub fn new(start: Instant, end: Instant, watch: &[u32]) -> WindowReadings {
        WindowReadings {
            start,
            end,
            watch: watch.to_vec(),
            at_start: None,
            readings: Readings::default(),
            done: false,
        }
    }

    /// How long the main thread may wait before the next reading is due: at
    /// most `most`, and zero once it is due.
    pub fn wait(&self, now: Instant, most: Duration) -> Duration {
        let next = match (&self.at_start, self.done) {
            (None, _) => self.start,
            (Some(_), false) => self.end,
            (Some(_), true) => return most,
        };
        next.saturating_duration_since(now).min(most)
    }

    /// Takes the readings that are due at `now`.
    pub fn poll(&mut self, now: Instant) {
        if self.at_start.is_none() && now >= self.start {
            self.read_start();
        }
        if self.at_start.is_some() && !self.done && now >= self.end {
            self.read_end();
        }
    }

    /// The readings; one not taken yet (the load ended early) is taken now.
    pub fn finish(mut self) -> Readings {
        if self.at_start.is_none() {
            self.read_start();
        }
        if !self.done {
            self.read_end();
        }
        self.readings
    }

    fn read_start(&mut self) {
        self.at_start = Some(Edge::read());
        self.readings.placement = match allowed_cpus_of_self() {
            Ok(loadgen) => {
                let mut watched = Vec::with_capacity(self.watch.len());
                for &pid in &self.watch {
                    match cpus_allowed_list(pid) {
                        Ok(cpus) => watched.push(WatchedCpus { pid, cpus }),
                        Err(err) => self.readings.errors.push(err),
                    }
                }
                Some(Placement { loadgen, watched })
            }
            Err(err) => {
                self.readings.errors.push(err);
                None
            }
        };
    }

    fn read_end(&mut self) {
        self.done = true;
        let Some(start) = &self.at_start else {
            return;
        };
        let end = Edge::read();
        let span = end.at.saturating_duration_since(start.at);
        self.readings.cpu = match (&start.cpu, &end.cpu) {
            (Ok(start), Ok(end)) => Some((
                CpuTimes {
                    user: end.user.saturating_sub(start.user),
                    system: end.system.saturating_sub(start.system),
                },
                span,
            )),
            (Err(err), _) | (_, Err(err)) => {
                self.readings.errors.push(err.clone());
                None
            }
        };
        let ticks_per_s = proc_stat::ticks_per_s();
        self.readings.machine = match (&start.stat, &end.stat, &ticks_per_s) {
            (Ok(start), Ok(end), Ok(ticks_per_s)) => {
                Some(proc_stat::usage(start, end, span, *ticks_per_s))
            }
            (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
                self.readings.errors.push(err.clone());
                None
            }
        };
    }
}

/// What is read at one edge of the window, at one instant: loadgen's own CPU
/// time and the machine's, so that the two cover the same span.
#[derive(Debug)]
struct Edge {
    /// When it was read.
    at: Instant,
    /// loadgen's CPU time (getrusage(2)).
    cpu: Result<CpuTimes, String>,
    /// The machine's (`/proc/stat`).
    stat: Result<CpuStat, String>,
}

impl Edge {
    fn read() -> Edge {
        Edge {
            at: Instant::now(),
            cpu: CpuTimes::of_self(),
            stat: CpuStat::read(),
        }
    }
}

/// The CPUs this process may run on (sched_getaffinity(2)), ascending.
pub fn allowed_cpus_of_self() -> Result<Vec<usize>, String> {
    let set = nix::sched::sched_getaffinity(Pid::from_raw(0))
        .map_err(|err| format!("sched_getaffinity: {err}"))?;
    Ok((0..nix::sched::CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect())
}

/// The `Cpus_allowed_list` of `/proc/PID/status`, expanded.
pub fn cpus_allowed_list(pid: u32) -> Result<Vec<usize>, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)
        .map_err(|err| format!("the allowed CPUs of --watch {pid}: read {path}: {err}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .and_then(parse_cpu_list)
        .ok_or_else(|| {
            format!("the allowed CPUs of --watch {pid}: {path} has no Cpus_allowed_list")
        })
}

/// Parses a kernel CPU list (`0-3,8,10-11`) into its CPUs, ascending.
pub fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let cpu = |text: &str| text.trim().parse::<usize>().ok();
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (cpu(first)?, cpu(last)?),
            None => (cpu(part)?, cpu(part)?),
        };
        if first > last {
            return None;
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's list format: ranges and single CPUs, comma-separated.
    #[test]
    fn parses_cpu_lists() {
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("\t0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0-2,5,7-8"), Some(vec![0, 1, 2, 5, 7, 8]));
        for bad in ["", "a", "3-1", "1,,2", "-1"] {
            assert_eq!(parse_cpu_list(bad), None, "{bad:?}");
        }
    }

    /// This process's own placement, both ways: sched_getaffinity and /proc.
    #[test]
    fn reads_this_process_placement() {
        let mine = allowed_cpus_of_self().expect("sched_getaffinity");
        assert!(!mine.is_empty());
        let listed = cpus_allowed_list(std::process::id()).expect("/proc/self/status");
        // The test's threads share the process's mask unless a test changed
        // its own thread's; /proc/PID/status is the main thread's.
        assert!(!listed.is_empty());
        assert!(cpus_allowed_list(u32::MAX).is_err());
    }

    /// The readings are due at the window's edges, and the CPU time between
    /// them is this process's (which burns some CPU in between).
    #[test]
    fn reads_at_the_windows_edges() {
        let now = Instant::now();
        let (start, end) = (now + Duration::from_secs(1), now + Duration::from_secs(2));
        let mut readings = WindowReadings::new(start, end, &[std::process::id()]);
        let tick = Duration::from_millis(200);
        assert_eq!(readings.wait(now, tick), tick);
        assert_eq!(
            readings.wait(start - Duration::from_millis(50), tick),
            Duration::from_millis(50)
        );
        readings.poll(now);
        assert!(readings.at_start.is_none());
        readings.poll(start);
        assert!(readings.at_start.is_some() && !readings.done);
        assert_eq!(readings.wait(start, tick), tick);
        assert_eq!(readings.wait(end, tick), Duration::ZERO);
        // Burn 20 ms of CPU (with a deadline, on a busy machine).
        let total = |times: CpuTimes| times.user + times.system;
        let before = total(CpuTimes::of_self().expect("getrusage"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut spin = 0u64;
        while total(CpuTimes::of_self().expect("getrusage")) < before + Duration::from_millis(20)
            && Instant::now() < deadline
        {
            for _ in 0..10_000 {
                spin = std::hint::black_box(spin.wrapping_add(1));
            }
        }
        readings.poll(end);
        assert!(readings.done);
        let result = readings.finish();
        let (cpu, span) = result.cpu.expect("getrusage");
        assert!(total(cpu) >= Duration::from_millis(20), "{cpu:?}");
        assert!(span > Duration::ZERO, "{span:?}");
        // The machine's CPU over the same span: the CPU this process burnt
        // is inside its busy time (ticks of 10 ms: loosely).
        let machine = result.machine.expect("/proc/stat");
        assert_eq!(machine.window_s, span.as_secs_f64());
        assert!(machine.cores >= 1 && machine.busy_s > 0.0, "{machine:?}");
        let placement = result.placement.expect("sched_getaffinity");
        assert_eq!(placement.watched.len(), 1);
        assert_eq!(placement.watched[0].pid, std::process::id());
        assert!(result.errors.is_empty(), "{:?}", result.errors);
    }
}
