//! §6, faults: one worker killed with SIGKILL mid-run under load, per mode:
//! the requests that failed, and how long after the kill the respawned
//! worker answered its first request.

use runs::Report;
use runs::format::count;
use runs::labels::{Mode, Section};

use super::Figures;
use crate::stats::{Failures, Spread, group, kinds, mode};
use crate::text::{nothing, rounds, teach, w};

/// The heading, as links to it are written.
pub const HEADING: &str = "6. Faults";

/// Section 6: a worker killed mid-run.
#[derive(Debug, Clone)]
pub struct FaultRow {
    /// The mode.
    pub mode: Mode,
    /// Rounds with a kill sent.
    pub rounds: usize,
    /// Requests failed or never answered, per round.
    pub failed: Spread,
    /// Failures by kind, all rounds.
    pub kinds: Vec<(String, u64)>,
    /// ms from the kill to the first answer of a pid that had not answered
    /// before it (the respawned worker), over the rounds where one answered.
    pub recovery_ms: Option<Spread>,
}

/// §6's figures.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// One row per mode, over the rounds with a kill sent.
    pub rows: Vec<FaultRow>,
}

impl Faults {
    /// The figures of §6's runs.
    pub fn of(runs: &[&Report]) -> Faults {
        Faults { rows: faults(runs) }
    }
}

/// ms from the kill to the first answer of a pid that first answered after it.
pub fn recovery_ms(report: &Report) -> Option<f64> {
    let killed_at = report.fault.as_ref()?.at_ms?;
    report
        .workers
        .by_pid
        .iter()
        .filter_map(|worker| worker.first_ms)
        .filter(|&first| first > killed_at)
        .map(|first| first - killed_at)
        .min_by(f64::total_cmp)
}

fn faults(runs: &[&Report]) -> Vec<FaultRow> {
    group(runs, mode)
        .into_iter()
        .filter_map(|(mode, runs)| {
            let killed: Vec<&Report> = runs
                .into_iter()
                .filter(|run| run.fault.as_ref().is_some_and(|f| f.at_ms.is_some()))
                .collect();
            let recoveries: Vec<f64> = killed.iter().filter_map(|run| recovery_ms(run)).collect();
            Some(FaultRow {
                rounds: killed.len(),
                failed: Spread::of(killed.iter().map(|run| Failures::of(&[run]).total() as f64))?,
                kinds: kinds(&killed),
                recovery_ms: Spread::of(recoveries),
                mode,
            })
        })
        .collect()
}

/// §6: a row per mode and what it lost.
pub fn markdown(out: &mut String, figures: &Figures) {
    w!(out, "## {HEADING}");
    w!(out);
    w!(
        out,
        "One worker killed with SIGKILL mid-run under load, per mode: the requests that failed, \
         and how long after the kill the respawned worker answered its first request."
    );
    w!(out);
    rounds(out, figures.rounds.get(&Section::Faults));
    if figures.faults.rows.is_empty() {
        nothing(out, "fault");
        return;
    }
    w!(
        out,
        "| mode | rounds | failed or unanswered requests, median (min–max) | failures by kind | kill → successor's first answer |"
    );
    w!(out, "|---|---:|---:|---|---:|");
    let mut lessons = Vec::new();
    for row in &figures.faults.rows {
        let kinds: Vec<String> = row
            .kinds
            .iter()
            .map(|(kind, n)| format!("{kind} {}", count(*n)))
            .collect();
        let recovery = match row.recovery_ms {
            Some(spread) if spread.count > 1 => format!(
                "{:.0} ms ({:.0}–{:.0})",
                spread.median, spread.min, spread.max
            ),
            Some(spread) => format!("{:.0} ms", spread.median),
            None => "no successor answered".to_owned(),
        };
        w!(
            out,
            "| {} | {} | {} | {} | {recovery} |",
            row.mode,
            row.rounds,
            if row.failed.count > 1 {
                format!(
                    "{} ({}–{})",
                    row.failed.median, row.failed.min, row.failed.max
                )
            } else {
                format!("{}", row.failed.median)
            },
            if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds.join(", ")
            },
        );
        lessons.push(format!(
            "`{}` lost {} requests to the kill{}.",
            row.mode,
            row.failed.median,
            row.recovery_ms.map_or(String::new(), |spread| format!(
                " and served from the new worker {:.0} ms later",
                spread.median
            ))
        ));
    }
    w!(out);
    teach(out, &lessons);
}

#[cfg(test)]
mod tests {
    use runs::{Fault, WorkerShare};

    use super::*;
    use crate::fixtures::run;

    /// Faults: the recovery runs from the kill to the first answer of a pid that
    /// had not answered before it.
    #[test]
    fn faults_measure_recovery() {
        let mut killed = run(&[("section", "faults"), ("mode", "proxy")], 1.0, 1);
        killed.fault = Some(Fault {
            pid: 7,
            at_ms: Some(1000.0),
            error: None,
        });
        let share = |pid, first, last| WorkerShare {
            pid,
            requests: 1,
            requests_share: 0.5,
            connections: 0,
            first_ms: Some(first),
            last_ms: Some(last),
            latency: None,
        };
        killed.workers.by_pid = vec![
            share(7, 100.0, 999.0),
            share(8, 100.0, 2000.0),
            share(9, 1250.0, 2000.0),
        ];
        killed.requests.failed = 4;
        assert_eq!(recovery_ms(&killed), Some(250.0));
        let mut no_kill = run(&[("section", "faults"), ("mode", "proxy")], 1.0, 1);
        no_kill.fault = None;
        let figures = Figures::of(&[killed, no_kill]);
        let row = &figures.faults.rows[0];
        assert_eq!(row.rounds, 1);
        assert_eq!(row.failed.median, 4.0);
        assert_eq!(row.recovery_ms.map(|r| r.median), Some(250.0));
    }
}
