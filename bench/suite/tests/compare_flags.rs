//! `scripts/compare.sh`'s flags checked before anything is built or run: CPU
//! lists that cannot be honoured are refused with one line and exit code 2,
//! and `--dry-run` shows the plan (the affinity, the seeded order of the
//! rounds, every load counted up front) without building or starting a server.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Checking flags or printing the plan takes well under a second; a build of
/// the release binaries would take minutes, so this deadline also proves that
/// none was started.
const DEADLINE: Duration = Duration::from_secs(20);

fn workspace() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).to_path_buf()
}

/// Runs compare.sh with `args` and `--out` a folder that must stay unwritten;
/// returns its output and whether that folder was created.
fn compare(args: &[&str]) -> (Output, bool) {
    let out = std::env::temp_dir().join(format!(
        "compare-flags-{}-{}",
        std::process::id(),
        args.join("_").replace(['/', ' '], "_")
    ));
    let mut child = Command::new("bash")
        .arg(workspace().join("scripts/compare.sh"))
        .arg("--out")
        .arg(&out)
        .args(args)
        .current_dir(workspace())
        // The harness this test was built with, not a release build of it.
        .env("SUITE_BIN", env!("CARGO_BIN_EXE_suite"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a run past the deadline is stopped
        // with everything it started.
        .process_group(0)
        .spawn()
        .expect("start scripts/compare.sh");
    let started = Instant::now();
    while child.try_wait().expect("poll compare.sh").is_none() {
        if started.elapsed() > DEADLINE {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
            panic!("compare.sh {args:?} ran past {DEADLINE:?}: it went on to build or run");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child
        .wait_with_output()
        .expect("collect compare.sh's output");
    let written = out.exists();
    let _ = std::fs::remove_dir_all(&out);
    (output, written)
}

/// A CPU list the machine cannot honour (a CPU it does not have, overlapping
/// lists, only one of the two flags, not a list) is one line on stderr naming
/// the problem and exit code 2, before anything is built, run or written.
#[test]
fn impossible_cpu_lists_exit_2_with_one_line_before_anything_runs() {
    for (args, says) in [
        (&["--loadgen-cpus", "0"][..], "give both or neither"),
        (&["--server-cpus", "0"][..], "give both or neither"),
        (
            &["--loadgen-cpus", "0", "--server-cpus", "4095"][..],
            "has no CPU 4095",
        ),
        (
            &["--loadgen-cpus", "0-4095", "--server-cpus", "0"][..],
            "has no CPU",
        ),
        (
            &["--loadgen-cpus", "0", "--server-cpus", "0"][..],
            "overlap",
        ),
        (
            &["--loadgen-cpus", "x", "--server-cpus", "0"][..],
            "is not a CPU list",
        ),
        (
            &["--loadgen-cpus", "1-0", "--server-cpus", "0"][..],
            "is not a CPU list",
        ),
        (
            &["--loadgen-cpus", "0,", "--server-cpus", "1"][..],
            "is not a CPU list",
        ),
    ] {
        let (output, written) = compare(&[&["--quick", "--no-peers"][..], args].concat());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: not one line: {stderr}"
        );
        assert!(
            stderr.starts_with("compare.sh: ") && stderr.contains(says),
            "{args:?} should say {says:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?} printed a plan");
        assert!(!written, "{args:?} wrote its --out folder");
    }
}

/// `--dry-run` lists every load as `[n/total] name` with the total counted up
/// front, says how it pins, and orders the throughput rounds by the seed: the
/// same seed gives the same order, another seed another one.
#[test]
fn dry_run_plans_every_load_in_a_seeded_order() {
    let dry_run = |seed: &str| {
        let (output, written) = compare(&[
            "--dry-run",
            "--quick",
            "--no-peers",
            "--repeats",
            "5",
            "--seed",
            seed,
        ]);
        assert!(output.status.success(), "--dry-run failed: {output:?}");
        assert!(!written, "--dry-run wrote its --out folder");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("building"), "--dry-run built: {stderr}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let seven = dry_run("7");
    assert!(seven.contains("seed: 7"), "{seven}");
    assert!(seven.contains("affinity: CPUs "), "{seven}");
    let loads: Vec<&str> = seven.lines().filter(|l| l.starts_with('[')).collect();
    let total = loads.len();
    for (n, line) in loads.iter().enumerate() {
        assert!(
            line.starts_with(&format!("[{}/{total}] ", n + 1)),
            "load {} of {total} is {line:?}",
            n + 1
        );
    }
    // §0's 5 modes × 2 loads × 2 rounds, §1's 5 modes × 2 loads × 5
    // rounds, the sweep's 5 modes × 2 loads × (3 rates and the knee's
    // middle), and the other
    // sections once.
    assert!(total > 100, "only {total} loads planned");
    // §0 (issue 22): every mode at one rate per load in each of 2 rounds,
    // each round holding every mode once; the quick run writes these very
    // runs (tests/compare.rs counts them).
    let cost: Vec<&str> = loads
        .iter()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|name| name.starts_with("cost-"))
        .collect();
    assert_eq!(cost.len(), 20, "§0's steps:\n{seven}");
    for mode in [
        "direct",
        "proxy",
        "handoff-socket",
        "handoff-listener",
        "handoff-reuseport",
    ] {
        for load in ["keepalive", "newconn"] {
            for round in ["r1", "r2"] {
                let steps = cost
                    .iter()
                    .filter(|name| {
                        name.starts_with(&format!("cost-{mode}-{load}-"))
                            && name.ends_with(&format!("-{round}"))
                    })
                    .count();
                assert_eq!(steps, 1, "§0 {mode} {load} {round}: {steps} steps\n{seven}");
            }
        }
    }
    assert!(
        seven.contains("cost (§0): keep-alive at 8000 requests/s, a new connection per request at 2000; 2 rounds"),
        "{seven}"
    );
    for mode in ["direct", "proxy", "handoff-socket"] {
        for load in ["keepalive", "newconn"] {
            let steps = loads
                .iter()
                .filter(|l| l.contains(&format!(" sweep-{mode}-{load}-s")))
                .count();
            assert_eq!(steps, 3, "{mode} {load}: {steps} sweep steps\n{seven}");
            let knee = loads
                .iter()
                .filter(|l| l.contains(&format!(" sweep-{mode}-{load}-knee-mid-r1")))
                .count();
            assert_eq!(knee, 1, "{mode} {load}: {knee} knee steps\n{seven}");
        }
    }
    // The estimate, from the planned durations: at least their sum (20 runs
    // of 500 ms + 100 ms in §0, 5 × 10 of 500 ms + 200 ms in §1, 30 of
    // 300 ms + 100 ms in the sweep).
    let estimate: u64 = seven
        .lines()
        .find_map(|line| line.strip_prefix("estimate: "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or_else(|| panic!("no `estimate: N s` line:\n{seven}"));
    assert!(
        (59..600).contains(&estimate),
        "estimate {estimate} s:\n{seven}"
    );
    assert!(
        seven.contains("sweep (§1b): a ladder of rates 4× apart"),
        "{seven}"
    );
    let order = |plan: &str| -> Vec<String> {
        plan.lines()
            .filter(|l| l.contains("-keepalive-r"))
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|name| name.starts_with("throughput-"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(order(&seven).len(), 25, "{seven}");
    assert!(order(&seven).iter().any(|name| name.contains("-direct-")));
    assert_eq!(
        order(&seven),
        order(&dry_run("7")),
        "same seed, other order"
    );
    assert_ne!(
        order(&seven),
        order(&dry_run("8")),
        "seeds 7 and 8 gave one order"
    );

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus >= 2 {
        let (output, _) = compare(&[
            "--dry-run",
            "--quick",
            "--no-peers",
            "--loadgen-cpus",
            "0",
            "--server-cpus",
            "1",
        ]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{output:?}");
        assert!(
            stdout.contains("CPUs pinned: loadgen on CPUs 0, the server tree on CPUs 1"),
            "{stdout}"
        );
    }
}
