//! §4, fairness: who gets the connections when the workers accept (or are
//! handed) them, per way of sharing the port (`handoff-listener` once per
//! `--accept` strategy), with more workers than cores. Three experiments,
//! told apart by their loadgen flags, one module each:
//!
//! - [`spread`]: the spread of connections and requests over the workers
//!   (`fairness.svg`);
//! - [`stall`]: one worker stopped twice, and who waited (`stall.svg`);
//! - [`queues`]: where the connections waited meanwhile, each listener's
//!   accept queue over time (`queues.svg`), and a small-backlog run whose
//!   queue overflows (label `backlog`);
//! - [`mix`]: uneven work, a heavy-tailed mix of request costs.

use runs::labels::{Accept, Mode, Section};
use runs::{Report, WorkerShare};

use super::Figures;
use crate::charts::{Chart, boxed};
use crate::stats::{Spread, workers_of};
use crate::text::{nothing, rounds, w};

pub mod mix;
pub mod queues;
pub mod spread;
pub mod stall;

pub use mix::MixRow;
pub use spread::FairnessRow;
pub use stall::StallRow;

/// The heading, as links to it are written.
pub const HEADING: &str = "4. Fairness";

/// Section 4: a way of sharing the port: a mode and, for `handoff-listener`,
/// how its workers accept (label `accept`; `None` in runs without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Variant {
    /// The mode.
    pub mode: Mode,
    /// `handoff --pass listener --accept`.
    pub accept: Option<Accept>,
}

impl Variant {
    /// The variant of `run`; `None` without a mode.
    pub fn of(run: &Report) -> Option<Variant> {
        Some(Variant {
            mode: run.labels.mode?,
            accept: run.labels.accept,
        })
    }

    /// A short name for a bar group: `listener single`, `socket`, `proxy`.
    pub fn label(self) -> String {
        let mode = self.mode.name();
        let mode = mode.strip_prefix("handoff-").unwrap_or(mode);
        match self.accept {
            Some(accept) => format!("{mode} {}", accept.name()),
            None => mode.to_owned(),
        }
    }
}

impl std::fmt::Display for Variant {
    /// `handoff-listener --accept single`, or the mode's name alone.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.accept {
            Some(accept) => write!(f, "{} --accept {}", self.mode, accept.name()),
            None => write!(f, "{}", self.mode),
        }
    }
}

/// §4's figures.
#[derive(Debug, Clone, Default)]
pub struct Fairness {
    /// The spread of connections and requests.
    pub spread: Vec<FairnessRow>,
    /// A stalled worker.
    pub stalls: Vec<StallRow>,
    /// Uneven work.
    pub mixes: Vec<MixRow>,
    /// The accept queues of one stall run per way of sharing the port.
    pub queues: Vec<queues::QueuePanel>,
    /// The deepest queue per way of sharing the port, over its stall runs.
    pub deepest: Vec<queues::Deepest>,
    /// The small-backlog runs.
    pub backlogs: Vec<queues::BacklogRow>,
}

impl Fairness {
    /// The figures of §4's runs, each experiment from its own runs.
    pub fn of(runs: &[&Report]) -> Fairness {
        let of = |kind: Experiment| -> Vec<&Report> {
            runs.iter()
                .copied()
                .filter(|run| experiment(run) == kind)
                .collect()
        };
        let stalls = of(Experiment::Stall);
        Fairness {
            spread: spread::rows(&of(Experiment::Spread)),
            stalls: stall::rows(&stalls),
            mixes: mix::rows(&of(Experiment::Mix)),
            queues: queues::panels(&stalls),
            deepest: queues::deepest(&stalls),
            backlogs: queues::backlog_rows(&of(Experiment::Backlog)),
        }
    }
}

/// Which §4 experiment a fairness run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Experiment {
    /// Who gets the connections and requests.
    Spread,
    /// One worker stopped (`--stop`).
    Stall,
    /// Uneven work (`--mix`).
    Mix,
    /// A small `--backlog` and a stall (label `backlog`).
    Backlog,
}

fn experiment(run: &Report) -> Experiment {
    if run.labels.backlog.is_some() {
        Experiment::Backlog
    } else if run.labels.stall_ms.is_some() || !run.stalls.is_empty() {
        Experiment::Stall
    } else if !run.parameters.mix.is_empty() {
        Experiment::Mix
    } else {
        Experiment::Spread
    }
}

/// The workers of `run`'s cluster: the label `workers`, or else the watched
/// master's children; at least the pids that answered.
pub fn cluster_size(run: &Report) -> usize {
    let expected = run
        .labels
        .workers
        .map_or_else(|| workers_of(run).len(), |n| n as usize);
    expected.max(run.workers.by_pid.len())
}

/// `figure` of every worker of `run`, a worker that answered nothing as 0:
/// loadgen only sees the pids that answered, and a worker the kernel never
/// woke is exactly the unfairness this section is about.
pub fn per_worker(run: &Report, figure: impl Fn(&WorkerShare) -> u64) -> Vec<u64> {
    let mut counts: Vec<u64> = run.workers.by_pid.iter().map(figure).collect();
    counts.resize(cluster_size(run), 0);
    counts
}

/// A share over rounds: `12.5 %`, or `12.5 % (10.0 %–15.0 %)`.
pub fn spread_percent(spread: Option<Spread>) -> String {
    match spread {
        None => "–".to_owned(),
        Some(spread) if spread.count > 1 => format!(
            "{:.1} % ({:.1}–{:.1} %)",
            spread.median * 100.0,
            spread.min * 100.0,
            spread.max * 100.0
        ),
        Some(spread) => format!("{:.1} %", spread.median * 100.0),
    }
}

/// A figure over rounds with `decimals`: `0.93`, or `0.93 (0.90–0.95)`.
pub fn spread_plain(spread: Option<Spread>, decimals: usize) -> String {
    match spread {
        None => "–".to_owned(),
        Some(spread) if spread.count > 1 => format!(
            "{:.decimals$} ({:.decimals$}–{:.decimals$})",
            spread.median, spread.min, spread.max
        ),
        Some(spread) => format!("{:.decimals$}", spread.median),
    }
}

/// §4's charts, in the order its text links them.
pub fn charts(figures: &Figures) -> Vec<Box<dyn Chart + '_>> {
    [
        spread::chart(figures).map(boxed),
        stall::chart(figures).map(boxed),
        queues::chart(figures).map(boxed),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// §4: what it measures, then each experiment that has runs.
pub fn markdown(out: &mut String, figures: &Figures) {
    w!(out, "## {HEADING}");
    w!(out);
    w!(
        out,
        "Who gets the connections when the workers accept (or are handed) them, with more \
         workers than cores, so that the accept path and not only the CPU scheduler decides; \
         and who waits when one worker stalls. Each way of sharing the port is measured, \
         `handoff-listener` once per `--accept` strategy (drain: every waiting worker is woken \
         and the first takes the queue; single: the same, one connection per wake-up; \
         exclusive: EPOLLEXCLUSIVE, one waiter woken; blocking: a thread blocked in accept(2), \
         the kernel's FIFO queue). Jain's index counts every worker, one that got nothing as 0: \
         1 is even, 1/n is all on one."
    );
    w!(out);
    rounds(out, figures.rounds.get(&Section::Fairness));
    let fairness = &figures.fairness;
    if fairness.spread.is_empty()
        && fairness.stalls.is_empty()
        && fairness.mixes.is_empty()
        && fairness.backlogs.is_empty()
    {
        nothing(out, "fairness");
        return;
    }
    spread::markdown(out, figures);
    stall::markdown(out, figures);
    queues::markdown(out, figures);
    mix::markdown(out, figures);
}

#[cfg(test)]
mod tests {
    use runs::labels::Section;

    use super::*;
    use crate::fixtures::{run, worker};
    use crate::sections::Figures;

    /// §4: the spread, stall and mix runs of one folder fall into their own
    /// rows, by way of sharing the port (`accept`), cluster size and round.
    #[test]
    fn fairness_sorts_spread_stall_and_mix_runs() {
        let labels = |accept: &'static str, round: &'static str| {
            vec![
                ("section", "fairness"),
                ("mode", "handoff-listener"),
                ("accept", accept),
                ("load", "newconn"),
                ("workers", "4"),
                ("round", round),
            ]
        };
        let mut runs = Vec::new();
        for (round, stalled_p99) in [("1", 400_000), ("2", 450_000)] {
            // Spread: two of four workers answered, 3:1.
            let mut spread = run(&labels("exclusive", round), 1.0, 1);
            spread.workers.by_pid = vec![worker(10, 300, 0.75, 900), worker(11, 100, 0.25, 900)];
            runs.push(spread);
            // Stall: worker 10 stopped; its p99 is the stall's.
            let mut stall = run(
                &[labels("blocking", round), vec![("stall_ms", "500")]].concat(),
                1.0,
                20_000,
            );
            stall.workers.by_pid = vec![
                worker(10, 50, 0.1, stalled_p99),
                worker(11, 150, 0.3, 800),
                worker(12, 150, 0.3, 1_200),
                worker(13, 150, 0.3, 700),
            ];
            stall.stalls = vec![runs::Stall {
                pid: 10,
                stopped_at_ms: Some(800.0),
                continued_at_ms: Some(1300.0),
                error: None,
            }];
            stall.stall_waits = Some(runs::StallWaits {
                stop_for_ms: 500.0,
                at_least_stall: 1,
                at_least_tenth: 40,
            });
            runs.push(stall);
            // Mix: uneven work.
            let mut mix = run(&labels("drain", round), 1.0, 5_000);
            mix.parameters.mix = vec![
                runs::MixEntry {
                    path: "/".to_owned(),
                    weight: 95,
                },
                runs::MixEntry {
                    path: "/?work_us=5000".to_owned(),
                    weight: 5,
                },
            ];
            mix.workers.by_pid = vec![worker(10, 100, 0.5, 3_000), worker(11, 100, 0.5, 6_000)];
            runs.push(mix);
        }
        let figures = Figures::of(&runs);

        assert_eq!(
            figures.fairness.spread.len(),
            1,
            "{:?}",
            figures.fairness.spread
        );
        let spread = &figures.fairness.spread[0];
        assert_eq!(spread.variant.accept, Some(Accept::Exclusive));
        assert_eq!(
            spread.variant.to_string(),
            "handoff-listener --accept exclusive"
        );
        assert_eq!(spread.workers, 4);
        assert_eq!(spread.connection_shares, vec![0.75, 0.25, 0.0, 0.0]);
        // (400)² / (4 · (300² + 100²)) = 0.4: the silent workers count.
        let jain = spread.connections_jain.expect("jain");
        assert!((jain.median - 0.4).abs() < 1e-9 && jain.count == 2);
        assert_eq!(spread.least_share.expect("least").max, 0.0);

        assert_eq!(figures.fairness.stalls.len(), 1);
        let stall = &figures.fairness.stalls[0];
        assert_eq!(stall.variant.accept, Some(Accept::Blocking));
        assert_eq!(stall.stall_ms, 500.0);
        assert_eq!(stall.waited_tenth.expect("waited").median, 40.0);
        let stalled = stall.stalled_p99_us.expect("stalled p99");
        assert_eq!((stalled.min, stalled.max), (400_000.0, 450_000.0));
        assert_eq!(stall.others_p99_us.expect("others").median, 1_200.0);
        assert!((stall.stalled_share.expect("share").median - 0.1).abs() < 1e-9);

        assert_eq!(figures.fairness.mixes.len(), 1);
        let mix = &figures.fairness.mixes[0];
        assert_eq!(mix.mix, "95 % /, 5 % /?work_us=5000");
        assert_eq!(mix.worst_worker_p99_us.expect("worst").median, 6_000.0);
        assert_eq!(mix.best_worker_p99_us.expect("best").median, 3_000.0);
        // Two rounds behind every §4 figure.
        assert_eq!(figures.rounds.get(&Section::Fairness), Some(&(2, 2)));
    }
}
