//! The machine a run was measured on ([`Machine`] in the report), read from
//! `/proc` and `sysconf`.

use std::fs;

use runs::Machine;

/// Reads the figures of this machine.
pub fn current() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            // `model name` on x86; some ARM kernels only have `Hardware`.
            matches!(key.trim(), "model name" | "Hardware").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| release.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    Machine {
        cpu_model,
        cores: online_cpus(),
        kernel,
        os: std::env::consts::OS.to_owned(),
    }
}

/// The online CPUs of the machine; what this process may use when the
/// count cannot be read.
fn online_cpus() -> usize {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN) {
        Ok(Some(n)) if n >= 1 => usize::try_from(n).unwrap_or(1),
        _ => std::thread::available_parallelism().map_or(1, |cores| cores.get()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On Linux every figure is there.
    #[test]
    fn reads_this_machine() {
        let machine = current();
        assert!(machine.cores >= 1);
        // Never fewer than the CPUs this process may run on.
        let allowed = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        assert!(machine.cores >= allowed);
        assert_ne!(machine.kernel, "unknown");
        assert_eq!(machine.os, "linux");
    }
}
