//! The sections of REPORT.md, one module each, in the report's order. Each
//! computes its figures from the runs it groups by their typed labels
//! (`of`), writes its Markdown (`markdown`), and returns its charts
//! (`charts`); a chart's one constructor decides whether it exists, so a
//! section's text links exactly the charts that are written. Some also give
//! their headline line to the first screen (`glance`).
//!
//! - [`header`]: the title, the machines, the modes.
//! - [`glance`]: "At a glance": each section's headline, and who holds which
//!   fd in each mode.
//! - [`cost`]: §0, the headline: CPU per request and latency of every mode
//!   at the same offered rates, paired against the baseline.
//! - [`throughput`]: §1, requests/s and latency per mode and load.
//! - [`sweep`]: §1b, latency against offered load (the open-loop sweep).
//! - [`copies`]: §1c, the CPU that moving bytes costs: answers and uploads
//!   of several sizes at equal rates, CPU per MiB, the relays paired.
//! - [`fd_bill`]: §2, the fds of the master, the workers and the tree.
//! - [`fd_limit`]: §3, the connections served under `--max-fds`.
//! - [`fairness`]: §4, who gets the connections, who waits behind a stalled
//!   worker, uneven work.
//! - [`master_cost`]: §5, CPU per request, and the master's fds over a run.
//! - [`faults`]: §6, a worker killed mid-run.
//! - [`peers`]: §7, the other software measured, how each ran and whether
//!   every server answered the same.
//! - [`upgrades`]: §8, masters replaced under load.
//! - [`limitations`]: what the setup cannot show.
//!
//! A run without the labels a section groups by (a mode; for throughput and
//! fairness a load) is left out of that section.

use std::collections::BTreeMap;

use runs::Report;
use runs::labels::{Mode, Section};

use crate::charts::Chart;

pub mod copies;
pub mod cost;
pub mod fairness;
pub mod faults;
pub mod fd_bill;
pub mod fd_limit;
pub mod glance;
pub mod header;
pub mod limitations;
pub mod master_cost;
pub mod peers;
pub mod sweep;
pub mod throughput;
pub mod upgrades;

/// Every section's figures: what REPORT.md and its charts show.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// The machines and the number of runs.
    pub header: header::Header,
    /// §0.
    pub cost: cost::Cost,
    /// §1.
    pub throughput: throughput::Throughput,
    /// §1b.
    pub sweep: sweep::Sweep,
    /// §1c.
    pub copies: copies::Copies,
    /// §2.
    pub fd_bill: fd_bill::FdBill,
    /// §3.
    pub fd_limit: fd_limit::FdLimit,
    /// §4.
    pub fairness: fairness::Fairness,
    /// §5, from §1's runs.
    pub master_cost: master_cost::MasterCost,
    /// §6.
    pub faults: faults::Faults,
    /// §7.
    pub peers: peers::Peers,
    /// §8.
    pub upgrades: upgrades::Upgrades,
    /// How the runs were set up, for "Limitations".
    pub setup: limitations::Setup,
    /// Per section: the fewest and the most runs behind one of its figures
    /// (rounds), over its groups.
    pub rounds: BTreeMap<Section, (usize, usize)>,
}

impl Figures {
    /// Computes every figure from `runs`.
    pub fn of(runs: &[Report]) -> Figures {
        let section = |name: Section| -> Vec<&Report> {
            runs.iter()
                .filter(|run| run.labels.section == Some(name))
                .collect()
        };
        let throughput_runs = section(Section::Throughput);
        let fairness_runs = section(Section::Fairness);
        Figures {
            header: header::Header::of(runs),
            cost: cost::Cost::of(&section(Section::Cost)),
            throughput: throughput::Throughput::of(&throughput_runs),
            sweep: sweep::Sweep::of(&section(Section::Sweep)),
            copies: copies::Copies::of(&section(Section::Copies)),
            fd_bill: fd_bill::FdBill::of(&section(Section::FdBill)),
            fd_limit: fd_limit::FdLimit::of(&section(Section::FdLimit)),
            fairness: fairness::Fairness::of(&fairness_runs),
            master_cost: master_cost::MasterCost::of(&throughput_runs),
            faults: faults::Faults::of(&section(Section::Faults)),
            peers: peers::Peers::of(runs),
            upgrades: upgrades::Upgrades::of(&section(Section::Upgrade)),
            setup: limitations::Setup::of(runs),
            rounds: rounds(runs),
        }
    }

    /// Adds what the results folder holds beside its runs: how each peer
    /// ran (`peers.json`, and which of the configs it names are missing)
    /// and each server's answer (`answers.json`).
    pub fn with_folder(
        mut self,
        ran: Option<runs::folder::PeersFile>,
        missing_configs: Vec<String>,
        answers: Option<runs::folder::AnswersFile>,
    ) -> Figures {
        self.peers.ran = ran;
        self.peers.missing_configs = missing_configs;
        self.peers.answers = answers;
        self
    }

    /// REPORT.md, section by section.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        header::markdown(&mut out, self);
        glance::markdown(&mut out, self);
        cost::markdown(&mut out, self);
        throughput::markdown(&mut out, self);
        sweep::markdown(&mut out, self);
        copies::markdown(&mut out, self);
        fd_bill::markdown(&mut out, self);
        fd_limit::markdown(&mut out, self);
        fairness::markdown(&mut out, self);
        master_cost::markdown(&mut out, self);
        faults::markdown(&mut out, self);
        peers::markdown(&mut out, self);
        upgrades::markdown(&mut out, self);
        limitations::markdown(&mut out, self);
        out
    }

    /// Every chart with data to draw, in the order REPORT.md links them.
    pub fn charts(&self) -> Vec<Box<dyn Chart + '_>> {
        [
            cost::charts(self),
            throughput::charts(self),
            sweep::charts(self),
            copies::charts(self),
            fd_bill::charts(self),
            fairness::charts(self),
            master_cost::charts(self),
            upgrades::charts(self),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Whether any cost, throughput or fd bill figure is of `mode`.
    pub fn has_mode(&self, mode: Mode) -> bool {
        self.cost.steps.iter().any(|step| step.mode == mode)
            || self.throughput.rows.iter().any(|row| row.mode == mode)
            || self.fd_bill.rows.iter().any(|row| row.mode == mode)
    }
}

/// Per section, the fewest and most runs per figure: runs that differ only
/// in their round (or are faults without a kill) are one figure's rounds.
fn rounds(runs: &[Report]) -> BTreeMap<Section, (usize, usize)> {
    let mut groups: BTreeMap<_, usize> = BTreeMap::new();
    for run in runs {
        let Some(section) = run.labels.section else {
            continue;
        };
        let labels = &run.labels;
        let key = (
            section,
            labels.mode,
            labels.load,
            labels.rate,
            labels.connections,
            labels.max_fds,
            labels.work_us,
            labels.workers,
            labels.accept,
            labels.stall_ms,
            labels.strategy,
            // §4's experiments differ in their loadgen flags, not their
            // labels; §1c's in their relay and sizes.
            (
                run.parameters.mix.is_empty(),
                labels.relay,
                labels.answer_bytes,
                labels.body_bytes,
            ),
        );
        *groups.entry(key).or_default() += 1;
    }
    let mut rounds: BTreeMap<Section, (usize, usize)> = BTreeMap::new();
    for (key, n) in groups {
        let entry = rounds.entry(key.0).or_insert((n, n));
        entry.0 = entry.0.min(n);
        entry.1 = entry.1.max(n);
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{cost_run, glance_runs, run, sweep_run, throughput_run};
    use crate::text::anchor;

    /// The text links exactly the charts that are written, whichever
    /// sections have runs: the SVGs REPORT.md links are the files of
    /// `charts()`, each once.
    #[test]
    fn the_text_links_exactly_the_charts_written() {
        let sets = [
            Vec::new(),
            glance_runs(),
            vec![
                throughput_run("proxy", "keepalive", "1"),
                throughput_run("proxy", "newconn", "1"),
                sweep_run("proxy", "keepalive", 1_000, 1_000.0, (300, 290), 0),
            ],
            vec![
                cost_run("proxy", "newconn", 1_000, 1, (50.0, 40.0)),
                cost_run("direct", "newconn", 1_000, 1, (1.0, 40.0)),
            ],
            vec![run(
                &[
                    ("section", "fairness"),
                    ("mode", "proxy"),
                    ("load", "newconn"),
                ],
                1.0,
                1,
            )],
        ];
        for runs in sets {
            let figures = Figures::of(&runs);
            let text = figures.markdown();
            let mut linked: Vec<&str> = text
                .match_indices("](")
                .map(|(at, _)| &text[at + 2..at + 2 + text[at + 2..].find(')').expect("closed")])
                .filter(|target| target.ends_with(".svg"))
                .collect();
            linked.sort_unstable();
            let mut written: Vec<&str> =
                figures.charts().iter().map(|chart| chart.file()).collect();
            written.sort_unstable();
            assert_eq!(linked, written, "{} runs", runs.len());
            assert_eq!(written.is_empty(), runs.is_empty(), "{written:?}");
        }
    }

    /// Every `(#anchor)` the report links to is the anchor of one of its
    /// headings.
    #[test]
    fn links_point_at_headings() {
        assert_eq!(anchor(fd_bill::HEADING), "2-the-bill-at-scale");
        assert_eq!(anchor(throughput::HEADING), "1-throughput-and-latency");
        let mut figures = Figures::of(&glance_runs());
        figures.rounds.insert(Section::Faults, (1, 1));
        let text = figures.markdown();
        let anchors: Vec<String> = text
            .lines()
            .filter_map(|line| line.strip_prefix("## "))
            .map(anchor)
            .collect();
        let mut links = 0;
        for (at, _) in text.match_indices("](#") {
            let rest = &text[at + 3..];
            let target = &rest[..rest.find(')').expect("a closed link")];
            assert!(anchors.iter().any(|a| a == target), "no heading #{target}");
            links += 1;
        }
        assert!(links >= 4, "{links} links");
    }

    /// Each section says its own round count; no section claims rounds it
    /// does not have.
    #[test]
    fn each_section_states_its_rounds() {
        let mut figures = Figures::default();
        figures.rounds.insert(Section::Throughput, (3, 3));
        figures.rounds.insert(Section::FdBill, (1, 1));
        let text = figures.markdown();
        assert!(text.contains("Each figure comes from 3 rounds"));
        assert!(text.contains("One run per figure, no rounds"));
        assert!(!text.contains("medians of 3 rounds"));
    }
}
