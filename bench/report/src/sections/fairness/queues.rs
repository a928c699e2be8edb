//! §4, where connections wait (issue 24): the accept queue of every
//! listening socket of the cluster, as loadgen's `--watch` sampled it
//! (`sock_diag`) during the stalled-worker runs (`queues.svg`, and the
//! deepest queue per way of sharing the port), and the small-backlog run:
//! `handoff-reuseport --backlog 8` with its first worker stopped, in a
//! network namespace of its own, where the full queue drops SYNs
//! (`ListenOverflows`, `ListenDrops`) and their clients connect on the
//! retransmitted SYN.

use runs::format::micros;
use runs::{ListenerReport, Report};

use super::{Variant, cluster_size};
use crate::charts::queues::QueuesChart;
use crate::sections::Figures;
use crate::stats::Failures;
use crate::text::{failures_count, image, w};

/// Linux's initial retransmission timeout of a SYN (`TCP_TIMEOUT_INIT`,
/// RFC 6298's 1 s), ms: a client whose SYN the full queue dropped connects
/// no sooner than this.
pub const SYN_RETRANSMIT_MS: f64 = 1000.0;

/// Whose accept queue a listening socket is, from the processes that hold
/// it: the watched master alone, the master and every worker (one shared
/// queue), or the master and one worker (that worker's own queue under
/// `SO_REUSEPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Whose {
    /// Only the master holds it: it accepts (`proxy`, `handoff-socket`).
    Master,
    /// One queue that this many workers accept from.
    Shared {
        /// The workers that hold it.
        workers: usize,
    },
    /// The stalled worker's own queue.
    Stalled(u32),
    /// Another worker's own queue.
    Worker(u32),
}

impl Whose {
    /// Whose `listener` is, in a tree whose master is `master` and whose
    /// stalled worker is `stalled`.
    pub fn of(listener: &ListenerReport, master: u32, stalled: Option<u32>) -> Whose {
        let workers: Vec<u32> = listener
            .holders
            .iter()
            .copied()
            .filter(|&pid| pid != master)
            .collect();
        match workers.as_slice() {
            [] => Whose::Master,
            [one] if Some(*one) == stalled => Whose::Stalled(*one),
            [one] => Whose::Worker(*one),
            many => Whose::Shared {
                workers: many.len(),
            },
        }
    }

    /// In words: `the master's queue`, `the stalled worker's own queue`.
    pub fn describe(self) -> String {
        match self {
            Whose::Master => "the master's queue".to_owned(),
            Whose::Shared { workers } => format!("the one queue shared by {workers} workers"),
            Whose::Stalled(pid) => format!("the stalled worker's own queue (pid {pid})"),
            Whose::Worker(pid) => format!("worker {pid}'s own queue"),
        }
    }

    /// The series of the chart this listener is drawn in (its colour,
    /// dash and marker), and the legend's text.
    pub fn series(self) -> (usize, &'static str) {
        match self {
            Whose::Master => (0, "the master's queue"),
            Whose::Shared { .. } => (1, "one queue shared by the workers"),
            Whose::Stalled(_) => (2, "the stalled worker's own queue"),
            Whose::Worker(_) => (3, "another worker's own queue"),
        }
    }
}

/// One listener's samples in one run.
#[derive(Debug, Clone)]
pub struct QueueLine {
    /// Whose queue.
    pub whose: Whose,
    /// The backlog as the kernel capped it.
    pub limit: u32,
    /// The most connections it held at a sample.
    pub queued_max: u32,
    /// (ms from the run's start, connections waiting).
    pub samples: Vec<(f64, f64)>,
}

/// One stalled-worker run's queues: one panel of `queues.svg`.
#[derive(Debug, Clone)]
pub struct QueuePanel {
    /// The way of sharing the port.
    pub variant: Variant,
    /// Workers in the cluster.
    pub workers: usize,
    /// The run's round (the panel draws the first round's run).
    pub round: Option<u32>,
    /// Every listener of the tree, in whose order.
    pub lines: Vec<QueueLine>,
    /// Each stall, (stopped, continued) ms from the run's start.
    pub stalls: Vec<(f64, f64)>,
    /// The last sample's time, ms: where the panel's axis ends.
    pub end_ms: f64,
    /// How often loadgen sampled the queues (`--sample-interval`), ms.
    pub interval_ms: f64,
}

/// The deepest queue of one way of sharing the port over its stall runs.
#[derive(Debug, Clone)]
pub struct Deepest {
    /// The way of sharing the port.
    pub variant: Variant,
    /// Workers in the cluster.
    pub workers: usize,
    /// The most connections one queue held at a sample, over every run.
    pub queued: u32,
    /// Whose queue that was (the first run's, if several tie).
    pub whose: Whose,
    /// Its limit.
    pub limit: u32,
    /// In how many of the runs the deepest queue was of the same kind.
    pub same_kind_runs: usize,
    /// The runs with queue samples.
    pub runs: usize,
    /// The deepest of the other listeners, over every run; `None` with one
    /// listener.
    pub others: Option<u32>,
}

/// The small-backlog run (`backlog` label).
#[derive(Debug, Clone)]
pub struct BacklogRow {
    /// The way of sharing the port.
    pub variant: Variant,
    /// Workers in the cluster.
    pub workers: usize,
    /// `--backlog`.
    pub backlog: u64,
    /// How long the worker was stopped, ms (the first stall's).
    pub stall_ms: Option<f64>,
    /// The namespace's `ListenOverflows` growth over the window.
    pub overflows: Option<u64>,
    /// The namespace's `ListenDrops` growth over the window.
    pub drops: Option<u64>,
    /// Connections opened in the window.
    pub connects: u64,
    /// Connect time p50, p99 and max, µs.
    pub connect_us: Option<(u64, u64, u64)>,
    /// Requests failed or never answered.
    pub failures: Failures,
}

/// The watched master of `run` (the first watch) and its listeners.
fn listeners(run: &Report) -> Option<(u32, &[ListenerReport])> {
    let watch = run.watch.iter().find(|watch| !watch.listeners.is_empty())?;
    Some((watch.pid, &watch.listeners))
}

/// The panel of a stall run, if loadgen sampled its queues.
fn panel(run: &Report) -> Option<QueuePanel> {
    let variant = Variant::of(run)?;
    let (master, listeners) = listeners(run)?;
    let stalled = run.stalls.first().map(|stall| stall.pid);
    let mut lines: Vec<QueueLine> = listeners
        .iter()
        .map(|listener| QueueLine {
            whose: Whose::of(listener, master, stalled),
            limit: listener.limit,
            queued_max: listener.queued_max,
            samples: listener
                .samples
                .iter()
                .map(|point| (point.t_ms, f64::from(point.queued)))
                .collect(),
        })
        .collect();
    lines.sort_by_key(|line| line.whose);
    let end_ms = lines
        .iter()
        .flat_map(|line| line.samples.iter().map(|&(t, _)| t))
        .fold(0.0, f64::max);
    Some(QueuePanel {
        variant,
        workers: cluster_size(run),
        round: run.labels.round,
        lines,
        stalls: run
            .stalls
            .iter()
            .filter_map(|stall| Some((stall.stopped_at_ms?, stall.continued_at_ms?)))
            .collect(),
        end_ms,
        interval_ms: run.parameters.sample_interval_ms,
    })
}

/// The panels of the stall runs: per way of sharing the port, the run of
/// the smallest cluster in the earliest round.
pub fn panels(runs: &[&Report]) -> Vec<QueuePanel> {
    let mut all: Vec<QueuePanel> = runs.iter().filter_map(|run| panel(run)).collect();
    all.sort_by_key(|panel| (panel.variant, panel.workers, panel.round));
    all.dedup_by_key(|panel| panel.variant);
    all
}

/// The deepest queue per way of sharing the port, over every stall run.
pub fn deepest(runs: &[&Report]) -> Vec<Deepest> {
    let mut all: Vec<QueuePanel> = runs.iter().filter_map(|run| panel(run)).collect();
    all.sort_by_key(|panel| (panel.variant, panel.workers, panel.round));
    let mut rows: Vec<Deepest> = Vec::new();
    for group in all.chunk_by(|a, b| (a.variant, a.workers) == (b.variant, b.workers)) {
        let deepest_of = |panel: &QueuePanel| -> Option<QueueLine> {
            panel
                .lines
                .iter()
                .max_by_key(|line| (line.queued_max, std::cmp::Reverse(line.whose)))
                .cloned()
        };
        let per_run: Vec<(QueueLine, Option<u32>)> = group
            .iter()
            .filter_map(|panel| {
                let deepest = deepest_of(panel)?;
                let others = panel
                    .lines
                    .iter()
                    .filter(|line| line.whose != deepest.whose)
                    .map(|line| line.queued_max)
                    .max();
                Some((deepest, others))
            })
            .collect();
        let Some((top, _)) = per_run
            .iter()
            .max_by_key(|(line, _)| (line.queued_max, std::cmp::Reverse(line.whose)))
        else {
            continue;
        };
        let kind = top.whose.series().0;
        rows.push(Deepest {
            variant: group[0].variant,
            workers: group[0].workers,
            queued: top.queued_max,
            whose: top.whose,
            limit: top.limit,
            same_kind_runs: per_run
                .iter()
                .filter(|(line, _)| line.whose.series().0 == kind)
                .count(),
            runs: per_run.len(),
            others: per_run.iter().filter_map(|(_, others)| *others).max(),
        });
    }
    rows
}

/// The small-backlog runs' rows.
pub fn backlog_rows(runs: &[&Report]) -> Vec<BacklogRow> {
    let mut rows: Vec<BacklogRow> = runs
        .iter()
        .filter_map(|run| {
            let variant = Variant::of(run)?;
            let backlog = run.labels.backlog?;
            let counters = |figure: fn(&runs::WatchReport) -> Option<u64>| {
                run.watch.iter().filter_map(figure).max()
            };
            let connect = run.latency.connect.as_ref();
            Some(BacklogRow {
                variant,
                workers: cluster_size(run),
                backlog,
                stall_ms: run
                    .stalls
                    .first()
                    .and_then(|stall| Some(stall.continued_at_ms? - stall.stopped_at_ms?)),
                overflows: counters(|watch| watch.listen_overflows),
                drops: counters(|watch| watch.listen_drops),
                connects: connect.map_or(0, |c| c.count),
                connect_us: connect.map(|c| (c.p50_us, c.p99_us, c.max_us)),
                failures: Failures::of(&[*run]),
            })
        })
        .collect();
    rows.sort_by_key(|row| (row.variant, row.workers, row.backlog));
    rows
}

/// The chart of the queues over time, if any stall run sampled them.
pub fn chart(figures: &Figures) -> Option<QueuesChart<'_>> {
    let panels = &figures.fairness.queues;
    panels
        .iter()
        .any(|panel| panel.lines.iter().any(|line| !line.samples.is_empty()))
        .then_some(QueuesChart { panels })
}

/// §4, where connections wait: the queues during the stalls, then the
/// small-backlog run.
pub fn markdown(out: &mut String, figures: &Figures) {
    let fairness = &figures.fairness;
    if fairness.deepest.is_empty() && fairness.backlogs.is_empty() {
        return;
    }
    w!(out, "### Where connections wait");
    w!(out);
    w!(
        out,
        "A connection the kernel has accepted waits in an accept queue until a process takes \
         it: one queue per worker under `handoff-reuseport`, one queue all workers share under \
         `handoff-listener`, the master's under `handoff-socket` and `proxy`. loadgen's \
         `--watch` read every listening socket of the tree (`sock_diag`) at each sample of the \
         stalled-worker runs above."
    );
    w!(out);
    if !fairness.deepest.is_empty() {
        if let Some(chart) = chart(figures) {
            image(out, &chart);
        }
        w!(
            out,
            "The deepest queue at any sample, per way of sharing the port, over its stall runs:"
        );
        w!(out);
        for row in &fairness.deepest {
            let others = match row.others {
                Some(others) => format!("; every other queue at most {others}"),
                None => String::new(),
            };
            let kind = if row.runs == 1 {
                String::new()
            } else if row.same_kind_runs == row.runs {
                format!(" (the deepest in each of the {} runs)", row.runs)
            } else {
                format!(
                    " (the deepest in {} of the {} runs)",
                    row.same_kind_runs, row.runs
                )
            };
            let waiting = match row.queued {
                0 => "no connection waiting at any sample".to_owned(),
                1 => "at most 1 connection waiting".to_owned(),
                n => format!("at most {n} connections waiting"),
            };
            w!(
                out,
                "- `{}` ({} workers): {waiting} (limit {}), in {}{kind}{others}.",
                row.variant,
                row.workers,
                row.limit,
                row.whose.describe()
            );
        }
        w!(out);
        w!(
            out,
            "A queue is read only at each sample, so a shorter peak between two samples is not \
             seen; a depth of 0 throughout means no connection was waiting at the samples."
        );
        w!(out);
    }
    backlog_markdown(out, &fairness.backlogs);
}

/// The small-backlog run: its table and what it shows.
fn backlog_markdown(out: &mut String, rows: &[BacklogRow]) {
    if rows.is_empty() {
        return;
    }
    w!(
        out,
        "With a small backlog the queue fills. The run below stops the first worker once while \
         new connections keep arriving, in a network namespace of its own, so that the \
         namespace's counters (`ListenOverflows`, `ListenDrops` of `/proc/net/netstat`) are \
         the run's alone."
    );
    w!(out);
    w!(
        out,
        "| way of sharing the port | workers | `--backlog` | stall | overflows | drops | connections | connect p50 | connect p99 | connect max | failed / unanswered |"
    );
    w!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let count = |n: Option<u64>| n.map_or_else(|| "–".to_owned(), |n| n.to_string());
    for row in rows {
        let (p50, p99, max) = match row.connect_us {
            Some((p50, p99, max)) => (micros(p50 as f64), micros(p99 as f64), micros(max as f64)),
            None => ("–".to_owned(), "–".to_owned(), "–".to_owned()),
        };
        w!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {p50} | {p99} | {max} | {} |",
            row.variant,
            row.workers,
            row.backlog,
            row.stall_ms
                .map_or_else(|| "–".to_owned(), |ms| format!("{ms:.0} ms")),
            count(row.overflows),
            count(row.drops),
            row.connects,
            failures_count(&row.failures)
        );
    }
    w!(out);
    for row in rows {
        w!(out, "{}", backlog_sentence(row));
        w!(out);
    }
}

/// What one small-backlog run shows, from its figures alone.
pub fn backlog_sentence(row: &BacklogRow) -> String {
    let name = format!("`{}` with `--backlog {}`", row.variant, row.backlog);
    let Some(overflows) = row.overflows else {
        return format!("{name}: loadgen could not read the namespace's counters.");
    };
    if overflows == 0 {
        return format!(
            "{name}: the namespace counted no overflow: no queue was full when a connection \
             arrived, and no client had to retransmit its SYN for that reason."
        );
    }
    let drops = row
        .drops
        .map_or_else(String::new, |drops| format!(" and {drops} drops"));
    let stall = row
        .stall_ms
        .map_or_else(String::new, |ms| format!(" for {ms:.0} ms"));
    let slow = match row.connect_us {
        Some((_, p99, max)) if max as f64 >= SYN_RETRANSMIT_MS * 1000.0 => format!(
            " The slowest connects took {} (p99 {}), at least the {:.0} s after which a \
             client sends its SYN again when no answer came, as a client whose SYN was \
             dropped connects on the retransmitted one.",
            micros(max as f64),
            micros(p99 as f64),
            SYN_RETRANSMIT_MS / 1000.0
        ),
        Some((_, _, max)) => format!(
            " No connect took the {:.0} s of a retransmitted SYN (the slowest {}).",
            SYN_RETRANSMIT_MS / 1000.0,
            micros(max as f64)
        ),
        None => String::new(),
    };
    format!(
        "{name}: over the window, in which the first worker was stopped{stall}, the \
         namespace counted {overflows} overflows{drops}: connections that found a queue full.{slow}"
    )
}

#[cfg(test)]
mod tests {
    use runs::{ListenerReport, QueuePoint, Stall};

    use super::*;
    use crate::charts::Chart;
    use crate::fixtures::run;

    /// A listener held by `holders` whose queue was `queued` at 0, 100,
    /// 200 ... ms.
    fn listener(holders: &[u32], queued: &[u32]) -> ListenerReport {
        ListenerReport {
            address: "127.0.0.1:8080".to_owned(),
            limit: 8,
            holders: holders.to_vec(),
            queued_max: queued.iter().copied().max().unwrap_or(0),
            samples: queued
                .iter()
                .enumerate()
                .map(|(i, &queued)| QueuePoint {
                    t_ms: i as f64 * 100.0,
                    queued,
                })
                .collect(),
        }
    }

    /// A stall run of `mode` (master 1, workers 10–13, 10 stopped from
    /// 100 to 300 ms) whose master's watch holds `listeners`.
    fn stall_run(mode: &str, round: &str, listeners: Vec<ListenerReport>) -> Report {
        let mut stall = run(
            &[
                ("section", "fairness"),
                ("mode", mode),
                ("load", "newconn"),
                ("workers", "4"),
                ("round", round),
                ("stall_ms", "200"),
            ],
            400.0,
            200_000,
        );
        stall.watch[0].pid = 1;
        stall.watch[0].listeners = listeners;
        stall.stalls = vec![Stall {
            pid: 10,
            stopped_at_ms: Some(100.0),
            continued_at_ms: Some(300.0),
            error: None,
        }];
        stall
    }

    /// Stall runs of three ways of sharing the port.
    fn stall_runs() -> Vec<Report> {
        let reuseport = |round, stalled_depth| {
            stall_run(
                "handoff-reuseport",
                round,
                vec![
                    listener(&[1, 10], &[0, 3, stalled_depth, 0]),
                    listener(&[1, 11], &[0, 1, 0, 0]),
                    listener(&[1, 12], &[0, 0, 2, 0]),
                    listener(&[1, 13], &[0, 0, 0, 0]),
                ],
            )
        };
        vec![
            reuseport("1", 9),
            reuseport("2", 7),
            stall_run("handoff-socket", "1", vec![listener(&[1], &[0, 1, 0, 0])]),
            stall_run(
                "handoff-listener",
                "1",
                vec![listener(&[1, 10, 11, 12, 13], &[0, 0, 2, 0])],
            ),
        ]
    }

    /// Issue 24: each listener is named by its holders (the master's, the
    /// one shared, the stalled worker's own, another worker's own), the
    /// deepest queue per mode is found over every round with whose it
    /// was, and the text says so.
    #[test]
    fn the_deepest_queue_is_named_by_its_holders() {
        let runs = stall_runs();
        let figures = Figures::of(&runs);
        let deepest = &figures.fairness.deepest;
        assert_eq!(deepest.len(), 3, "{deepest:?}");
        let of = |mode: runs::labels::Mode| {
            deepest
                .iter()
                .find(|row| row.variant.mode == mode)
                .expect("a row")
        };
        let reuseport = of(runs::labels::Mode::HandoffReuseport);
        assert_eq!(reuseport.queued, 9);
        assert_eq!(reuseport.whose, Whose::Stalled(10));
        assert_eq!((reuseport.same_kind_runs, reuseport.runs), (2, 2));
        assert_eq!(reuseport.others, Some(2));
        assert_eq!(of(runs::labels::Mode::HandoffSocket).whose, Whose::Master);
        assert_eq!(
            of(runs::labels::Mode::HandoffListener).whose,
            Whose::Shared { workers: 4 }
        );
        // One panel per way of sharing the port: the first round's run.
        assert_eq!(figures.fairness.queues.len(), 3);
        let panel = figures
            .fairness
            .queues
            .iter()
            .find(|panel| panel.variant.mode == runs::labels::Mode::HandoffReuseport)
            .expect("a panel");
        assert_eq!(panel.round, Some(1));
        assert_eq!(panel.stalls, vec![(100.0, 300.0)]);
        assert_eq!(panel.lines[0].whose, Whose::Stalled(10));

        let mut out = String::new();
        markdown(&mut out, &figures);
        assert!(out.contains("### Where connections wait"), "{out}");
        assert!(
            out.contains(
                "- `handoff-reuseport` (4 workers): at most 9 connections waiting (limit 8), in \
                 the stalled worker's own queue (pid 10) (the deepest in each of the 2 runs); \
                 every other queue at most 2."
            ),
            "{out}"
        );
        assert!(out.contains("in the master's queue"), "{out}");
        assert!(
            out.contains("in the one queue shared by 4 workers"),
            "{out}"
        );
        assert!(
            out.contains(&format!("({})", crate::charts::queues::FILE)),
            "{out}"
        );
    }

    /// The chart is built, and linked, only when a stall run sampled its
    /// queues: runs of a loadgen without `--watch` queues give neither.
    #[test]
    fn the_queue_chart_needs_queue_samples() {
        let mut runs = stall_runs();
        for run in &mut runs {
            run.watch[0].listeners.clear();
        }
        let figures = Figures::of(&runs);
        assert!(chart(&figures).is_none());
        assert!(figures.fairness.deepest.is_empty());
        let mut out = String::new();
        markdown(&mut out, &figures);
        assert!(!out.contains(crate::charts::queues::FILE), "{out}");
        assert!(
            !crate::sections::fairness::charts(&figures)
                .iter()
                .any(|chart| chart.file() == crate::charts::queues::FILE)
        );

        let figures = Figures::of(&stall_runs());
        let chart = chart(&figures).expect("a chart");
        let svg = chart.draw().expect("drawn");
        assert!(svg.contains("waiting connections"), "{svg:.200}");
        assert!(svg.contains("reuseport, 4 workers"));
    }

    /// The small-backlog run's row and sentence: overflows and drops from
    /// the namespace's counters, connect p50/p99/max, and the retransmitted
    /// SYN claimed only when the slowest connect took 1 s.
    #[test]
    fn the_small_backlog_run_shows_overflows_and_slow_connects() {
        let backlog_run = |overflows: u64, connect_max_us: u64| {
            let mut report = run(
                &[
                    ("section", "fairness"),
                    ("mode", "handoff-reuseport"),
                    ("load", "newconn"),
                    ("workers", "4"),
                    ("backlog", "8"),
                ],
                400.0,
                1_030_000,
            );
            report.watch[0].listen_overflows = Some(overflows);
            report.watch[0].listen_drops = Some(overflows);
            let mut connect = report.latency.request.clone().expect("a histogram");
            connect.count = 1000;
            connect.p50_us = 82;
            connect.p99_us = connect_max_us.saturating_sub(5_000);
            connect.max_us = connect_max_us;
            report.latency.connect = Some(connect);
            report.stalls = vec![Stall {
                pid: 10,
                stopped_at_ms: Some(400.0),
                continued_at_ms: Some(1200.0),
                error: None,
            }];
            report
        };
        let runs = vec![backlog_run(72, 1_033_000)];
        let figures = Figures::of(&runs);
        // Not a stall run of the table above, though it stopped a worker.
        assert!(figures.fairness.stalls.is_empty());
        let [row] = figures.fairness.backlogs.as_slice() else {
            panic!("one row: {:?}", figures.fairness.backlogs);
        };
        assert_eq!((row.overflows, row.drops), (Some(72), Some(72)));
        assert_eq!(row.connect_us, Some((82, 1_028_000, 1_033_000)));
        assert_eq!(row.stall_ms, Some(800.0));
        let mut out = String::new();
        markdown(&mut out, &figures);
        assert!(
            out.contains(
                "| `handoff-reuseport` | 4 | 8 | 800 ms | 72 | 72 | 1000 | 82 µs | 1.03 s | 1.03 s |"
            ),
            "{out}"
        );
        assert!(out.contains("counted 72 overflows and 72 drops"), "{out}");
        assert!(out.contains("The slowest connects took 1.03 s"), "{out}");

        // No overflow: no claim of one, nor of a retransmission.
        let quiet = backlog_sentence(&backlog_rows(&[&backlog_run(0, 900)])[0]);
        assert!(quiet.contains("no overflow"), "{quiet}");
        assert!(!quiet.contains("slowest"), "{quiet}");
        // Overflows but no slow connect: said as it is.
        let fast = backlog_sentence(&backlog_rows(&[&backlog_run(5, 2_000)])[0]);
        assert!(fast.contains("No connect took the 1 s"), "{fast}");
    }
}
