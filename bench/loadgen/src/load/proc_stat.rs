//! The whole machine's CPU over the measured window (`machine_usage` in the
//! report): the aggregate `cpu` line of `/proc/stat`, read at the window's
//! edges (with loadgen's own CPU, `usage`), its clock ticks turned into
//! seconds with `sysconf(_SC_CLK_TCK)`.
//!
//! Beside the server's and loadgen's own CPU this says whether they had the
//! machine to themselves: busy time that is neither theirs was another
//! process's, and steal is what the hypervisor gave to another guest.

use std::time::Duration;

use runs::MachineUsage;

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks summed over the
/// CPUs, and how many CPUs it sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuStat {
    /// The `cpuN` lines: the CPUs online when it was read.
    pub cores: usize,
    /// user + nice + system + irq + softirq. proc(5): guest and guest_nice
    /// are already counted in user and nice, so they are not added again.
    pub busy: u64,
    /// idle.
    pub idle: u64,
    /// iowait: idle with I/O outstanding.
    pub iowait: u64,
    /// steal: wanted to run while the hypervisor ran another guest.
    pub steal: u64,
}

impl CpuStat {
    /// Reads `/proc/stat` now.
    pub fn read() -> Result<CpuStat, String> {
        let text = std::fs::read_to_string("/proc/stat")
            .map_err(|err| format!("the machine's CPU: read /proc/stat: {err}"))?;
        CpuStat::parse(&text).map_err(|err| format!("the machine's CPU: /proc/stat: {err}"))
    }

    /// Parses the text of `/proc/stat`: its `cpu` line (`cpu  user nice
    /// system idle iowait irq softirq steal guest guest_nice`; kernels before
    /// 2.6.11 end after irq and softirq or earlier, whose missing fields are
    /// 0) and the count of its `cpuN` lines.
    pub fn parse(text: &str) -> Result<CpuStat, String> {
        let mut aggregate = None;
        let mut cores = 0;
        for line in text.lines() {
            let mut fields = line.split_ascii_whitespace();
            match fields.next() {
                Some("cpu") => aggregate = Some(fields),
                Some(name) if name.strip_prefix("cpu").is_some_and(is_number) => cores += 1,
                _ => {}
            }
        }
        let fields = aggregate.ok_or("no cpu line")?;
        let ticks: Vec<u64> = fields
            .map(|field| field.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|err| format!("the cpu line: {err}"))?;
        if ticks.len() < 4 {
            return Err(format!(
                "the cpu line has {} fields, not 4 or more",
                ticks.len()
            ));
        }
        if cores == 0 {
            return Err("no cpuN line".to_owned());
        }
        let field = |index: usize| ticks.get(index).copied().unwrap_or(0);
        let (user, nice, system, idle, iowait, irq, softirq, steal) = (
            field(0),
            field(1),
            field(2),
            field(3),
            field(4),
            field(5),
            field(6),
            field(7),
        );
        Ok(CpuStat {
            cores,
            busy: user + nice + system + irq + softirq,
            idle,
            iowait,
            steal,
        })
    }
}

/// Whether `text` is a CPU number (`cpu0`, `cpu13`).
fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// The clock ticks per second of `/proc/stat` (`sysconf(_SC_CLK_TCK)`,
/// USER_HZ: 100 on every Linux architecture but a few).
pub fn ticks_per_s() -> Result<u64, String> {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => Ok(ticks.unsigned_abs()),
        Ok(_) => Err("the machine's CPU: sysconf(_SC_CLK_TCK) gave no value".to_owned()),
        Err(err) => Err(format!("the machine's CPU: sysconf(_SC_CLK_TCK): {err}")),
    }
}

/// The machine's CPU between two readings `window` apart. Each figure is the
/// difference of the two (never below 0: proc(5) warns that iowait can go
/// down) in seconds; the CPUs are the later reading's.
pub fn usage(start: &CpuStat, end: &CpuStat, window: Duration, ticks_per_s: u64) -> MachineUsage {
    let seconds = |start: u64, end: u64| end.saturating_sub(start) as f64 / ticks_per_s as f64;
    MachineUsage {
        window_s: window.as_secs_f64(),
        cores: end.cores,
        busy_s: seconds(start.busy, end.busy),
        idle_s: seconds(start.idle, end.idle),
        iowait_s: seconds(start.iowait, end.iowait),
        steal_s: seconds(start.steal, end.steal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of a real `/proc/stat` (a 2-CPU VM, Linux 6.x), and the same
    /// a few seconds later.
    const BEFORE: &str = "cpu  1727542 16769 480187 428484 6667 0 96598 15172 0 0
cpu0 856161 7627 236034 226747 1894 0 49209 7586 0 0
cpu1 871380 9141 244153 201736 4772 0 47388 7585 0 0
intr 25847687 0 0 0 0 1 1 1
ctxt 79409901
btime 1765080000
processes 512345
procs_running 3
procs_blocked 0
softirq 11813440 0 3127795 1 1070346 0 0 1523 3912127 0 3701648
";
    const AFTER: &str = "cpu  1727842 16769 480287 428574 6667 0 96598 15182 0 0
cpu0 856311 7627 236084 226792 1894 0 49209 7591 0 0
cpu1 871530 9141 244203 201781 4772 0 47388 7590 0 0
intr 25847987 0 0 0 0 1 1 1
ctxt 79409999
";

    /// The aggregate line's fields go where proc(5) puts them; `cpuN` lines
    /// are counted, `ctxt` and `intr` are not CPUs.
    #[test]
    fn parses_a_real_proc_stat() {
        let stat = CpuStat::parse(BEFORE).expect("parse");
        assert_eq!(
            stat,
            CpuStat {
                cores: 2,
                busy: 1727542 + 16769 + 480187 + 96598,
                idle: 428484,
                iowait: 6667,
                steal: 15172,
            }
        );
    }

    /// Guest time is inside user (proc(5)), so it is not added again; a
    /// kernel's shorter line reads its missing fields as 0.
    #[test]
    fn counts_guest_once_and_reads_short_lines() {
        let guest =
            CpuStat::parse("cpu  100 0 50 800 0 0 0 0 70 5\ncpu0 1 0 0 0\n").expect("parse");
        assert_eq!(guest.busy, 150);
        let short = CpuStat::parse("cpu 10 2 3 40\ncpu0 10 2 3 40\n").expect("parse");
        assert_eq!(
            (short.busy, short.idle, short.iowait, short.steal),
            (15, 40, 0, 0)
        );
        for bad in [
            "",
            "cpu0 1 2 3 4\n",
            "cpu  1 2 3\ncpu0 1 2 3\n",
            "cpu  1 x 3 4\ncpu0 1\n",
            "cpu  1 2 3 4\n",
        ] {
            assert!(CpuStat::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// The differences in seconds at 100 ticks/s: 2.5 s of a 2-CPU machine
    /// is 5 CPU-seconds, split as the ticks were; a counter going down is 0.
    #[test]
    fn turns_ticks_into_seconds() {
        let before = CpuStat::parse(BEFORE).expect("parse");
        let after = CpuStat::parse(AFTER).expect("parse");
        let usage = usage(&before, &after, Duration::from_millis(2500), 100);
        assert_eq!(usage.cores, 2);
        assert_eq!(usage.window_s, 2.5);
        assert!((usage.busy_s - 4.0).abs() < 1e-9, "{usage:?}");
        assert!((usage.idle_s - 0.9).abs() < 1e-9, "{usage:?}");
        assert_eq!(usage.iowait_s, 0.0);
        assert!((usage.steal_s - 0.1).abs() < 1e-9, "{usage:?}");
        let total = usage.busy_s + usage.idle_s + usage.iowait_s + usage.steal_s;
        assert!((total - usage.capacity_s()).abs() < 1e-9, "{total}");
        let backwards = CpuStat { iowait: 0, ..after };
        assert_eq!(
            super::usage(&before, &backwards, Duration::from_secs(5), 100).iowait_s,
            0.0
        );
    }

    /// This machine's own `/proc/stat` and clock tick.
    #[test]
    fn reads_this_machine() {
        let stat = CpuStat::read().expect("/proc/stat");
        assert!(stat.cores >= 1);
        assert!(stat.busy + stat.idle > 0);
        assert!(ticks_per_s().expect("sysconf") >= 1);
    }
}
