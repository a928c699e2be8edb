//! Lesson 6, upgrading without dropping anyone: the upgrade driver (REPORT.md
//! §8's) replaces each mode's master once by restart and once by takeover
//! under 1,000 new connections a second; a restart refuses connections
//! while no socket listens on the port, a takeover fails none, its old
//! master exits 0 and the two masters name each other.

use std::time::Duration;

use runs::labels::Strategy;

use super::{Lab, Verdict, WORKERS};
use crate::server::CommandLog;
use crate::upgrade::{self, Options};

/// New connections a second.
const RATE: u64 = 1000;
/// Each worker's start-up, so that a restart's gap shows.
const INIT_DELAY: Duration = Duration::from_millis(200);

/// Runs the lesson.
pub fn run(lab: &Lab) -> anyhow::Result<Verdict> {
    let lead = Duration::from_secs(1);
    let every = if lab.quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(3)
    };
    let flag = crate::system::flag;
    println!(
        "lesson 6: upgrading without dropping anyone: {RATE} new connections a second (open loop), {WORKERS} workers;"
    );
    println!(
        "  {} into the run, the master is replaced by a new one whose workers take {} to start (--init-delay {}):",
        flag(lead),
        flag(INIT_DELAY),
        flag(INIT_DELAY)
    );
    println!(
        "  restart = SIGTERM, wait for its exit, start the new one on the same port; takeover = --takeover over --upgrade-socket"
    );
    println!(
        "  suite upgrade --strategy restart --strategy takeover --upgrades 1 --rate {RATE} --lead {} --every {}",
        flag(lead),
        flag(every)
    );
    let how = [Strategy::Restart, Strategy::Takeover];
    let options = Options {
        bin_dir: lab.launcher.bin_dir.clone(),
        workers: WORKERS,
        init_delay: INIT_DELAY,
        strategies: how.to_vec(),
        upgrades: 1,
        every,
        lead,
        rate: Some(RATE),
        out: Some(lab.tmp.path().to_path_buf()),
        loadgen_cpus: None,
        server_cpus: None,
        commands: CommandLog::default(),
        log: Some(lab.path("log")),
        modes: cluster::Mode::ALL.to_vec(),
    };
    let mut table = std::fs::File::create(lab.path("upgrade.txt"))?;
    upgrade::run(&options, &mut table).map_err(|err| err.context("the upgrade driver failed"))?;
    let mut wrong = Vec::new();
    println!(
        "  {:<18} {:<9} {:>6} {:>7} {:>8}  {:<14} {:<22} longest request",
        "mode", "upgrade", "ok", "failed", "refused", "≈ port closed", "answered by"
    );
    for mode in cluster::Mode::ALL {
        for strategy in how {
            let report = runs::read_json(&lab.path(&format!("upgrade-{mode}-{strategy}.json")))?;
            let events = report
                .upgrades
                .as_ref()
                .map(|u| u.events.clone())
                .unwrap_or_default();
            let [event] = events.as_slice() else {
                wrong.push(format!(
                    "{mode} {strategy}: {} upgrades recorded, expected 1",
                    events.len()
                ));
                continue;
            };
            let failed = report.requests.failed;
            let refused = report
                .errors
                .by_kind
                .get("connect_refused")
                .copied()
                .unwrap_or(0);
            let answered = |pids: &[u32]| -> u64 {
                report
                    .workers
                    .by_pid
                    .iter()
                    .filter(|w| pids.contains(&w.pid))
                    .map(|w| w.requests)
                    .sum()
            };
            let (old, new) = (answered(&event.old_workers), answered(&event.new_workers));
            let longest = report
                .latency
                .request
                .as_ref()
                .map_or(0.0, |l| l.max_us as f64 / 1000.0);
            let closed = if refused > 0 {
                format!("{:.0} ms", refused as f64 / RATE as f64 * 1000.0)
            } else {
                "never".to_owned()
            };
            let others: Vec<String> = report
                .errors
                .by_kind
                .iter()
                .filter(|(kind, count)| **count > 0 && *kind != "connect_refused")
                .map(|(kind, count)| format!("{kind} {count}"))
                .collect();
            println!(
                "  {:<18} {:<9} {:>6} {failed:>7} {refused:>8}  {closed:<14} {:<22} {longest:.0} ms{}",
                mode.name(),
                strategy.name(),
                runs::format::count(report.requests.ok),
                format!("old {old}, new {new}"),
                if others.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", others.join(", "))
                }
            );
            if old == 0 || new == 0 {
                wrong.push(format!(
                    "{mode} {strategy}: answers from the old workers {old}, the new {new}: the upgrade was not inside the run"
                ));
            }
            if strategy == Strategy::Restart && refused == 0 {
                wrong.push(format!("{mode} restart: no connection refused"));
            }
            if strategy == Strategy::Takeover {
                if failed > 0 {
                    let kinds = crate::loadgen::failures(&report, &[]);
                    wrong.push(format!(
                        "{mode} takeover: {failed} requests failed ({kinds})"
                    ));
                }
                if event.old_exit_code != Some(0) {
                    wrong.push(format!(
                        "{mode} takeover: the old master exited {:?}",
                        event.old_exit_code
                    ));
                }
                if event.old_handover_to != Some(event.new_master) {
                    wrong.push(format!(
                        "{mode} takeover: the old master {} printed no handover line to {} (to_pid {:?})",
                        event.old_master, event.new_master, event.old_handover_to
                    ));
                }
                if event.new_takeover_from != Some(event.old_master) {
                    wrong.push(format!(
                        "{mode} takeover: the new master's ready line says takeover_from {:?}, not {}",
                        event.new_takeover_from, event.old_master
                    ));
                }
            }
        }
    }
    Ok(Verdict {
        wrong,
        ok: "every restart refused connections while no socket listened on the port, every takeover failed none: the socket never stopped listening, and the old workers served until the new ones were ready".to_owned(),
    })
}
