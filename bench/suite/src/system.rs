//! What the harness asks of the machine: where it may run (CPU lists as
//! taskset writes them, `Cpus_allowed_list`), which tools are installed, the
//! facts a results folder records (kernel, CPU model, sysctls, fd limits,
//! git revision), and the clock as people read it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::Context;

/// The folder of the workspace this harness was built from: its scripts,
/// its `target/` and the git checkout a run records (an `xtask`'s way).
pub fn workspace() -> PathBuf {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    root.canonicalize().unwrap_or_else(|_| root.to_path_buf())
}

/// The CPUs of a taskset-style list (`0`, `0-3`, `1,3`, `0-1,4`), ascending
/// and without repeats; `None` for anything else (a range going down, an
/// empty item, more than five digits).
pub fn cpu_list(text: &str) -> Option<Vec<usize>> {
    let number = |part: &str| {
        (!part.is_empty() && part.len() <= 5 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<usize>().ok())
            .flatten()
    };
    let mut cpus = BTreeSet::new();
    for item in text.split(',') {
        let (low, high) = match item.split_once('-') {
            Some((low, high)) => (number(low)?, number(high)?),
            None => (number(item)?, number(item)?),
        };
        if low > high {
            return None;
        }
        cpus.extend(low..=high);
    }
    Some(cpus.into_iter().collect())
}

/// `Cpus_allowed_list` of `/proc/PID/status` (`self` for this process): the
/// CPUs it may run on, as taskset lists them; `None` once it is gone.
pub fn cpus_allowed(pid: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|list| list.trim().to_owned())
}

/// The first `name` on PATH that is a file, as `command -v` finds it.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// What `program args` prints on stdout (and stderr, for tools such as
/// `nginx -v` that print their version there), trimmed; `None` if it cannot
/// run.
pub fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Some(text.trim().to_owned())
}

/// `uname -sr`: the kernel's name and release.
pub fn kernel() -> String {
    nix::sys::utsname::uname().map_or_else(
        |_| "unknown".to_owned(),
        |uname| {
            format!(
                "{} {}",
                uname.sysname().to_string_lossy(),
                uname.release().to_string_lossy()
            )
        },
    )
}

/// `uname -r`: the kernel's release alone.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname().map_or_else(
        |_| "unknown".to_owned(),
        |uname| uname.release().to_string_lossy().into_owned(),
    )
}

/// The CPU model, from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `nproc --all`: the CPUs the machine has, usable here or not.
pub fn cpus_configured() -> usize {
    // SAFETY: sysconf takes a constant and returns a number or -1.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    usize::try_from(n).unwrap_or(0)
}

/// The value of the sysctl `key` (`net.core.somaxconn`), its whitespace
/// collapsed; `unknown` when it cannot be read.
pub fn sysctl(key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::read_to_string(path).map_or_else(
        |_| "unknown".to_owned(),
        |value| value.split_whitespace().collect::<Vec<_>>().join(" "),
    )
}

/// The soft and hard RLIMIT_NOFILE of this process (`ulimit -n`, `-Hn`).
pub fn nofile_limits() -> (String, String) {
    use nix::sys::resource::{Resource, getrlimit};
    let text = |n: u64| {
        if n == nix::sys::resource::RLIM_INFINITY {
            "unlimited".to_owned()
        } else {
            n.to_string()
        }
    };
    getrlimit(Resource::RLIMIT_NOFILE).map_or_else(
        |_| ("unknown".to_owned(), "unknown".to_owned()),
        |(soft, hard)| (text(soft), text(hard)),
    )
}

/// The host name up to its first dot (`hostname -s`).
pub fn short_hostname() -> String {
    nix::unistd::gethostname().map_or_else(
        |_| "host".to_owned(),
        |name| {
            let name = name.to_string_lossy();
            name.split('.').next().unwrap_or("host").to_owned()
        },
    )
}

/// The UTC time now as RFC 3339 (`2026-11-28T10:04:05Z`).
pub fn utc_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Seconds as people read them: `42s`, `3m05s`.
pub fn duration_text(seconds: u64) -> String {
    if seconds >= 60 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{seconds}s")
    }
}

/// A duration as the binaries' flags take it (`0`, `500ms`, `2s`), the
/// spelling the commands logged have always had.
pub fn flag(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        "0".to_owned()
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The git revision of the workspace and `git status --porcelain` (empty
/// when clean).
pub fn git_state(root: &Path) -> (String, String) {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| {
                String::from_utf8_lossy(&output.stdout)
                    .trim_end()
                    .to_owned()
            })
    };
    (
        git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_owned()),
        git(&["status", "--porcelain"]).unwrap_or_else(|| "?? (not a git checkout)".to_owned()),
    )
}

/// `cargo build --release --quiet` of these packages' binaries (each package
/// has one binary of its name), in the workspace.
pub fn build_release(root: &Path, packages: &[&str]) -> anyhow::Result<()> {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .args(["build", "--release", "--quiet"])
        .current_dir(root);
    for package in packages {
        command.args(["-p", package]);
    }
    for package in packages {
        command.args(["--bin", package]);
    }
    let status = command.status().context("run cargo build --release")?;
    anyhow::ensure!(status.success(), "cargo build --release failed: {status}");
    Ok(())
}

/// The last `n` lines of the file at `path`, for an error that shows a log.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPU lists read as taskset reads them, and what it refuses is refused.
    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list("0"), Some(vec![0]));
        assert_eq!(cpu_list("0-1,4"), Some(vec![0, 1, 4]));
        assert_eq!(cpu_list("3,1,1"), Some(vec![1, 3]));
        for bad in ["", "x", "1-0", "0,", "-1", "123456"] {
            assert_eq!(cpu_list(bad), None, "{bad:?}");
        }
    }

    /// Durations keep the spelling of the commands logged before.
    #[test]
    fn flags() {
        assert_eq!(flag(Duration::ZERO), "0");
        assert_eq!(flag(Duration::from_millis(1500)), "1500ms");
        assert_eq!(flag(Duration::from_secs(2)), "2s");
        assert_eq!(duration_text(185), "3m05s");
    }
}
