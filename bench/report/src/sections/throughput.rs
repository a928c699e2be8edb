//! §1, throughput and latency at saturation: every mode under one load,
//! over its rounds (requests/s with loadgen's share of the CPU beside it,
//! latency percentiles, failures), and what they teach: a ranking only where
//! every round paired says so, each mode against the baseline paired by
//! round, and that a closed loop's latency follows from its throughput
//! (Little's law). Its chart: `rounds.svg` (with §5's CPU per request of the
//! same runs).

use runs::format::{count, count_f64, micros, rate};
use runs::labels::{Load, Mode, Section};
use runs::{KEPT_UP_RATIO, Report};

use super::fairness::per_worker;
use super::sweep::{self, WAITING_RATIO};
use super::{Figures, cost};
use crate::charts::rounds::RoundsChart;
use crate::charts::{Chart, boxed};
use crate::stats::{
    Disturbance, Failures, Paired, PerRound, Spread, by_round, disturbance, disturbed_rounds,
    group, latency_median, loadgen_share, median, mode_load, per_round,
};
use crate::text::{
    Marked, and_list, baseline_name, disturbed_mark, disturbed_note, failures, image, load_name,
    nothing, one_of, opt_micros, paired_ratio, rounds, section_link, spread_micros, spread_rate,
    teach, w, with_load,
};

/// The heading, as links to it are written.
pub const HEADING: &str = "1. Throughput and latency";

/// Section 1: one mode under one load, over its rounds.
#[derive(Debug, Clone)]
pub struct ThroughputRow {
    /// The mode.
    pub mode: Mode,
    /// `keepalive`, `newconn` or `openloop`.
    pub load: Load,
    /// Successful requests per second.
    pub per_s: Spread,
    /// Median over rounds of each round's p50, µs (openloop: corrected).
    pub p50_us: Option<f64>,
    /// Median of p99, µs.
    pub p99_us: Option<f64>,
    /// p99 over rounds, µs, with its min–max.
    pub p99: Option<Spread>,
    /// Median of p99.9, µs.
    pub p99_9_us: Option<f64>,
    /// Open loop: the median over rounds of p99 as sent (not corrected for
    /// coordinated omission), µs.
    pub p99_uncorrected_us: Option<f64>,
    /// Open loop: the rounds whose corrected p99 is at least
    /// [`WAITING_RATIO`] times the uncorrected one (requests waited to be sent).
    pub waiting_rounds: usize,
    /// Requests failed or never answered, all rounds.
    pub failures: Failures,
    /// Open loop: the asked rate over rounds.
    pub asked_per_s: Option<Spread>,
    /// Every round's requests/s, in round order (the strip chart's dots).
    pub every_round: Vec<f64>,
    /// Whether each of `every_round` was disturbed (a different dot).
    pub every_round_disturbed: Vec<bool>,
    /// The disturbed rounds, and what disturbed them.
    pub disturbed: Vec<(Option<u32>, Disturbance)>,
    /// Keep-alive runs of a mode whose workers share one listener: per
    /// round (in round order) how its connections split over the workers,
    /// most first, a worker that got none as 0, and its requests/s. Empty
    /// otherwise.
    pub splits: Vec<Split>,
    /// Requests/s of each labelled round, to pair with another mode's.
    pub per_round: PerRound,
    /// loadgen's share of the machine's CPU over the window, per round: on
    /// shared cores, what the requests/s measure besides the server.
    pub loadgen_share: Option<Spread>,
    /// The connections held (`--connections`), the median over rounds.
    pub connections: f64,
    /// The mean latency, µs, the median over rounds.
    pub mean_us: Option<f64>,
}

/// How one keep-alive run's connections split over the workers, where the
/// kernel decides (a shared listener).
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The run's round.
    pub round: Option<u32>,
    /// Connections per worker, most first.
    pub connections: Vec<u64>,
    /// The run's requests/s.
    pub per_s: f64,
}

impl Split {
    /// `25/25`, `36/14`, `50/0`.
    pub fn text(&self) -> String {
        let counts: Vec<String> = self.connections.iter().map(u64::to_string).collect();
        counts.join("/")
    }

    /// Every worker within one connection of the others.
    pub fn even(&self) -> bool {
        let most = self.connections.iter().max().copied().unwrap_or(0);
        let least = self.connections.iter().min().copied().unwrap_or(0);
        most - least <= 1
    }
}

/// The splits of `runs` (see [`ThroughputRow::splits`]).
fn splits(mode: Mode, load: Load, runs: &[&Report]) -> Vec<Split> {
    if !(mode.shares_listener() && load == Load::KeepAlive) {
        return Vec::new();
    }
    by_round(runs)
        .into_iter()
        .map(|run| {
            let mut connections = per_worker(run, |worker| worker.connections);
            connections.sort_unstable_by(|a, b| b.cmp(a));
            Split {
                round: run.labels.round,
                connections,
                per_s: run.requests.per_s,
            }
        })
        .collect()
}

/// §1's figures.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    /// One row per mode and load, over its rounds.
    pub rows: Vec<ThroughputRow>,
    /// The connections of the runs (`--connections`), each once, fewest first.
    pub connections: Vec<usize>,
}

impl Throughput {
    /// The figures of §1's runs.
    pub fn of(runs: &[&Report]) -> Throughput {
        let mut connections: Vec<usize> =
            runs.iter().map(|run| run.parameters.connections).collect();
        connections.sort();
        connections.dedup();
        Throughput {
            rows: throughput(runs),
            connections,
        }
    }
}

fn throughput(runs: &[&Report]) -> Vec<ThroughputRow> {
    group(runs, mode_load)
        .into_iter()
        .filter_map(|((mode, load), runs)| {
            let p99s = |run: &&Report| {
                let corrected = run.latency.request.as_ref()?.p99_us as f64;
                let uncorrected = run.latency.request_uncorrected.as_ref()?.p99_us as f64;
                Some((corrected, uncorrected))
            };
            Some(ThroughputRow {
                mode,
                load,
                per_s: Spread::of(runs.iter().map(|run| run.requests.per_s))?,
                p50_us: latency_median(&runs, |summary| summary.p50_us),
                p99_us: latency_median(&runs, |summary| summary.p99_us),
                p99: Spread::of(
                    runs.iter()
                        .filter_map(|run| Some(run.latency.request.as_ref()?.p99_us as f64)),
                ),
                p99_9_us: latency_median(&runs, |summary| summary.p99_9_us),
                p99_uncorrected_us: median(runs.iter().filter_map(|run| {
                    Some(run.latency.request_uncorrected.as_ref()?.p99_us as f64)
                })),
                waiting_rounds: runs
                    .iter()
                    .filter_map(p99s)
                    .filter(|(corrected, uncorrected)| {
                        *corrected >= WAITING_RATIO * uncorrected.max(1.0)
                    })
                    .count(),
                failures: Failures::of(&runs),
                asked_per_s: Spread::of(runs.iter().filter_map(|run| run.requests.asked_per_s)),
                every_round: by_round(&runs)
                    .iter()
                    .map(|run| run.requests.per_s)
                    .collect(),
                every_round_disturbed: by_round(&runs)
                    .iter()
                    .map(|run| disturbance(run).is_some())
                    .collect(),
                disturbed: disturbed_rounds(&runs),
                splits: splits(mode, load, &runs),
                per_round: per_round(&runs, |run| Some(run.requests.per_s)),
                loadgen_share: Spread::of(runs.iter().filter_map(|run| loadgen_share(run))),
                connections: median(runs.iter().map(|run| run.parameters.connections as f64))
                    .unwrap_or(0.0),
                mean_us: median(
                    runs.iter()
                        .filter_map(|run| Some(run.latency.request.as_ref()?.mean_us)),
                ),
            })
        })
        .collect()
}

/// The strip chart of every round, if a closed-loop row has rounds.
fn rounds_chart(figures: &Figures) -> Option<RoundsChart<'_>> {
    figures
        .throughput
        .rows
        .iter()
        .any(|row| row.load != Load::OpenLoop && !row.every_round.is_empty())
        .then_some(RoundsChart {
            throughput: &figures.throughput.rows,
            cost: &figures.master_cost.rows,
        })
}

/// §1's charts, in the order its text links them.
pub fn charts(figures: &Figures) -> Vec<Box<dyn Chart + '_>> {
    rounds_chart(figures).into_iter().map(boxed).collect()
}

/// The one sentence of the first screen that says what this machine cannot
/// show, when loadgen shared the servers' cores: a ranking by requests/s,
/// with loadgen's share of the CPU at saturation from §1's rows.
pub fn glance_limit(figures: &Figures) -> Option<String> {
    if figures.setup.shared == 0 {
        return None;
    }
    let shares: Vec<f64> = figures
        .throughput
        .rows
        .iter()
        .filter(|row| row.load != Load::OpenLoop)
        .filter_map(|row| row.loadgen_share.map(|share| share.median))
        .collect();
    let took = match Spread::of(shares) {
        Some(spread) if spread.count > 1 => format!(
            " and took {:.0}–{:.0} % of the machine's CPU at saturation",
            spread.min * 100.0,
            spread.max * 100.0
        ),
        Some(spread) => format!(
            " and took {:.0} % of the machine's CPU at saturation",
            spread.median * 100.0
        ),
        None => String::new(),
    };
    Some(format!(
        "**What this machine cannot show:** a ranking of the modes by requests/s, since \
         loadgen ran on the same cores as the servers{took} ({}).",
        section_link(HEADING)
    ))
}

/// What a row's splits show when the rounds that split evenly were every
/// one faster than those that did not: the two groups' requests/s, so that
/// the median is not read as the mode's cost.
fn split_lesson(row: &ThroughputRow) -> Option<String> {
    let (even, uneven): (Vec<&Split>, Vec<&Split>) =
        row.splits.iter().partition(|split| split.even());
    // Only a split that decides the rate: every even round faster than
    // every uneven one.
    let slowest_even = even
        .iter()
        .map(|split| split.per_s)
        .fold(f64::INFINITY, f64::min);
    let fastest_uneven = uneven.iter().map(|split| split.per_s).fold(0.0, f64::max);
    if even.is_empty() || uneven.is_empty() || slowest_even <= fastest_uneven {
        return None;
    }
    let describe = |splits: &[&Split]| -> String {
        let rates =
            Spread::of(splits.iter().map(|split| split.per_s)).map_or(String::new(), |spread| {
                if spread.count > 1 {
                    format!("{}–{}/s", count_f64(spread.min), count_f64(spread.max))
                } else {
                    format!("{}/s", count_f64(spread.median))
                }
            });
        let texts: Vec<String> = splits.iter().map(|split| split.text()).collect();
        format!("{} ({rates})", and_list(&texts))
    };
    Some(format!(
        "`{}` {}: the kernel split the connections evenly in {} of {} rounds, {}, each faster \
         than every round it split unevenly, {}: its median reports how the connections \
         happened to split, not what the mode costs.",
        row.mode,
        load_name(row.load),
        even.len(),
        row.splits.len(),
        describe(&even),
        describe(&uneven)
    ))
}

/// A share over rounds: `47 %`, or `47 % (45–60 %)`; `–` without one.
fn share_percent(spread: Option<Spread>) -> String {
    match spread {
        None => "–".to_owned(),
        Some(spread) if spread.count > 1 => format!(
            "{:.0} % ({:.0}–{:.0} %)",
            spread.median * 100.0,
            spread.min * 100.0,
            spread.max * 100.0
        ),
        Some(spread) => format!("{:.0} %", spread.median * 100.0),
    }
}

/// The sentence that says where a closed loop's latency comes from: every
/// connection always has a request in flight, so the mean latency is the
/// connections over the requests/s (Little's law); shown on the first
/// closed-loop row, with the range of measured over predicted of all.
fn littles_law(rows: &[ThroughputRow]) -> Option<String> {
    let closed: Vec<(&ThroughputRow, f64, f64)> = rows
        .iter()
        .filter(|row| row.load != Load::OpenLoop && row.connections > 0.0)
        .filter_map(|row| {
            let predicted_us = row.connections / row.per_s.median.max(1e-9) * 1e6;
            Some((row, predicted_us, row.mean_us?))
        })
        .collect();
    let (row, predicted_us, mean_us) = *closed.first()?;
    let ratios = Spread::of(closed.iter().map(|(_, predicted, mean)| mean / predicted))?;
    Some(format!(
        "In a closed loop every connection always has a request in flight, so the latency \
         follows from the throughput (Little's law: mean latency = connections / \
         requests/s): `{}` {}, {} / {}/s = {}, its mean latency {}; over every closed-loop row \
         the measured mean is {:.2}–{:.2}× that. Its p50 and p99 describe a saturated \
         server's queue, not how fast it answers at a given load: {} and {} do.",
        row.mode,
        load_name(row.load),
        count(row.connections.round() as u64),
        count_f64(row.per_s.median),
        micros(predicted_us),
        micros(mean_us),
        ratios.min,
        ratios.max,
        section_link(cost::HEADING),
        section_link(sweep::HEADING)
    ))
}

/// §1: the table, its charts and what they teach.
pub fn markdown(out: &mut String, figures: &Figures) {
    let rows = &figures.throughput.rows;
    w!(out, "## {HEADING}");
    w!(out);
    let open_loop = if rows.iter().any(|row| row.load == Load::OpenLoop) {
        "; and an open loop at one asked rate for all, so that latencies compare at equal load \
         (corrected for coordinated omission: counted from when each request was due)"
            .to_owned()
    } else {
        format!(
            "; each until it is saturated, so its latency is that of a saturated server ({} \
             compares the latencies at equal loads)",
            section_link(sweep::HEADING)
        )
    };
    w!(
        out,
        "Requests per second and latency of every mode at saturation: {} keep-alive \
         connections in a closed loop; a new connection for every request (the case in which \
         the modes differ most){open_loop}. Where loadgen runs on the same cores as the \
         server, requests/s at saturation measure the CPU per request of both: loadgen's \
         share of the machine's CPU stands beside every figure, and these figures rank \
         nothing by themselves ({} compares the costs at equal load).",
        one_of(&figures.throughput.connections),
        section_link(cost::HEADING)
    );
    w!(out);
    rounds(out, figures.rounds.get(&Section::Throughput));
    if rows.is_empty() {
        nothing(out, "throughput");
        return;
    }
    // The split column only where a row has one: the shared-listener modes.
    let with_splits = rows.iter().any(|row| !row.splits.is_empty());
    let (split_head, split_rule) = if with_splits {
        (" connections per worker, each round ¹ |", "---|")
    } else {
        ("", "")
    };
    w!(
        out,
        "| mode | load | requests/s median (min–max) | loadgen's share of the CPU |{split_head} p50 | p99 median (min–max) | p99.9 | failed / unanswered |"
    );
    w!(out, "|---|---|---:|---:|{split_rule}---:|---:|---:|---:|");
    for row in rows {
        let (load, per_s) = match row.asked_per_s {
            Some(asked) => (
                format!("{}, asked {}/s", load_name(row.load), rate(asked.median)),
                format!(
                    "achieved {}, {:.0} % of asked",
                    spread_rate(&row.per_s),
                    100.0 * row.per_s.median / asked.median.max(1e-9)
                ),
            ),
            None => (load_name(row.load).to_owned(), spread_rate(&row.per_s)),
        };
        let split = match (with_splits, row.splits.is_empty()) {
            (false, _) => String::new(),
            (true, true) => " – |".to_owned(),
            (true, false) => {
                let splits: Vec<String> = row
                    .splits
                    .iter()
                    .map(|split| format!("{} ({}/s)", split.text(), count_f64(split.per_s)))
                    .collect();
                format!(" {} |", splits.join(", "))
            }
        };
        w!(
            out,
            "| {}{} | {load} | {per_s} | {} |{split} {} | {} | {} | {} |",
            row.mode,
            disturbed_mark(&row.disturbed),
            share_percent(row.loadgen_share),
            opt_micros(row.p50_us),
            spread_micros(row.p99),
            opt_micros(row.p99_9_us),
            failures(&row.failures),
        );
    }
    w!(out);
    if with_splits {
        w!(
            out,
            "¹ Keep-alive runs of the modes whose workers share one listener \
             (`handoff-listener`, `node-none`): the kernel decides which worker accepts each \
             connection, so a round's requests/s follow the split it chose; each round's \
             split, most first, with its requests/s, in round order."
        );
        w!(out);
    }
    let marked: Vec<Marked<'_>> = rows
        .iter()
        .map(|row| {
            (
                format!("`{}` {}", row.mode, load_name(row.load)),
                row.disturbed.as_slice(),
            )
        })
        .collect();
    disturbed_note(out, &marked);
    for chart in charts(figures) {
        image(out, chart.as_ref());
    }
    let mut lessons = Vec::new();
    if let Some(text) = littles_law(rows) {
        lessons.push(text);
    }
    lessons.extend(rows.iter().filter_map(split_lesson));
    for load in [Load::KeepAlive, Load::NewConn] {
        let rows: Vec<&ThroughputRow> = rows.iter().filter(|row| row.load == load).collect();
        let baseline = rows
            .iter()
            .find(|row| row.mode == Mode::Direct)
            .or_else(|| rows.iter().find(|row| row.mode == Mode::Ceiling));
        if let Some(baseline) = baseline {
            let against: Vec<String> = rows
                .iter()
                .filter(|row| !row.mode.is_baseline())
                .filter_map(|row| {
                    let paired = Paired::of(&row.per_round, &baseline.per_round)?;
                    Some(format!("`{}` {}", row.mode, paired_ratio(&paired)))
                })
                .collect();
            if !against.is_empty() {
                lessons.push(format!(
                    "{}, requests/s against the baseline {} ({}/s, median), as the ratio of \
                     the two runs of each round: {}.",
                    with_load(load),
                    baseline_name(baseline.mode),
                    count_f64(baseline.per_s.median),
                    against.join("; ")
                ));
            }
        }
    }
    let open: Vec<&ThroughputRow> = rows
        .iter()
        .filter(|row| row.load == Load::OpenLoop && row.p99_us.is_some())
        .collect();
    for row in &open {
        if let Some(asked) = row.asked_per_s {
            let achieved = row.per_s.median / asked.median.max(1e-9);
            if achieved < KEPT_UP_RATIO {
                lessons.push(format!(
                    "`{}` achieved only {:.0} % of the asked {}/s.",
                    row.mode,
                    100.0 * achieved,
                    rate(asked.median)
                ));
            }
        }
        if row.waiting_rounds > 0 {
            lessons.push(format!(
                "In the open loop, `{}`'s corrected p99 was {:.0}× or more its p99 as sent in \
                 {} of {} rounds ({} against {}, medians): the load generator's requests were \
                 waiting to be sent — the server fell behind the schedule, and the latency \
                 counted from the send hides it.",
                row.mode,
                WAITING_RATIO,
                row.waiting_rounds,
                row.per_s.count,
                opt_micros(row.p99_us),
                opt_micros(row.p99_uncorrected_us)
            ));
        }
    }
    if let (Some(low), Some(high)) = (
        open.iter()
            .min_by(|a, b| a.p99_us.unwrap_or(0.0).total_cmp(&b.p99_us.unwrap_or(0.0))),
        open.iter()
            .max_by(|a, b| a.p99_us.unwrap_or(0.0).total_cmp(&b.p99_us.unwrap_or(0.0))),
    ) {
        if low.mode != high.mode {
            lessons.push(format!(
                "At the same asked open-loop rate{}, the median p99 ran from {} (`{}`) to {} (`{}`).",
                low.asked_per_s
                    .map_or(String::new(), |asked| format!(" of {}/s", rate(asked.median))),
                opt_micros(low.p99_us),
                low.mode,
                opt_micros(high.p99_us),
                high.mode
            ));
        }
    }
    teach(out, &lessons);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{run, throughput_run};
    use crate::sections::Figures;

    /// Throughput groups by mode and load in the suite's order; requests/s is the
    /// median over rounds with its min–max, latencies the median of each round's.
    #[test]
    fn throughput_groups_by_mode_and_load() {
        let label = |mode, load, round| {
            vec![
                ("section", "throughput"),
                ("mode", mode),
                ("load", load),
                ("round", round),
            ]
        };
        let runs = vec![
            run(&label("handoff-socket", "keepalive", "1"), 900.0, 300),
            run(&label("proxy", "keepalive", "1"), 100.0, 900),
            run(&label("proxy", "keepalive", "2"), 300.0, 700),
            run(&label("proxy", "keepalive", "3"), 200.0, 800),
            run(&label("proxy", "newconn", "1"), 50.0, 2000),
            run(&[("section", "fdbill"), ("mode", "proxy")], 1.0, 1),
        ];
        let figures = Figures::of(&runs);
        let rows: Vec<(Mode, Load)> = figures
            .throughput
            .rows
            .iter()
            .map(|row| (row.mode, row.load))
            .collect();
        assert_eq!(
            rows,
            [
                (Mode::Proxy, Load::KeepAlive),
                (Mode::Proxy, Load::NewConn),
                (Mode::HandoffSocket, Load::KeepAlive)
            ]
        );
        let proxy = &figures.throughput.rows[0];
        assert_eq!(
            (proxy.per_s.median, proxy.per_s.min, proxy.per_s.max),
            (200.0, 100.0, 300.0)
        );
        assert_eq!(proxy.p99_us, Some(800.0));
        assert_eq!(figures.header.runs, 6);
        assert_eq!(figures.header.machines.len(), 1);
        // No chart of latency by percentile: a median per percentile over
        // rounds is a curve no run produced.
        assert_eq!(charts(&figures).len(), 1);
    }

    /// A closed loop's latency follows from its throughput: the sentence
    /// gives connections / requests/s beside the measured mean.
    #[test]
    fn closed_loop_latency_is_littles_law() {
        let mut run = throughput_run("proxy", "keepalive", "1");
        run.parameters.connections = 50;
        run.requests.per_s = 41_996.0;
        run.latency.request.as_mut().expect("a histogram").mean_us = 1_180.0;
        run.loadgen_usage = Some(runs::LoadgenUsage {
            cpu_user_ms: 100.0,
            cpu_system_ms: 840.0,
            cpu_ms_per_1000_requests: None,
        });
        let figures = Figures::of(&[run]);
        assert!(
            (figures.throughput.rows[0]
                .loadgen_share
                .expect("a share")
                .median
                - 0.47)
                .abs()
                < 1e-9
        );
        let text = figures.markdown();
        assert!(
            text.contains(
                "`proxy` keep-alive, 50 / 41,996/s = 1.19 ms, its mean latency 1.18 ms; over \
                 every closed-loop row the measured mean is 0.99–0.99× that."
            ),
            "{text}"
        );
        assert!(text.contains("| 41,996 | 47 % |"), "{text}");
    }

    /// The strip chart's dots: every round's requests/s and tree µs per
    /// request, in round order.
    #[test]
    fn every_round_in_round_order() {
        let runs: Vec<Report> = [("2", 300.0), ("1", 100.0), ("3", 200.0)]
            .into_iter()
            .map(|(round, per_s)| {
                let mut run = throughput_run("proxy", "keepalive", round);
                run.requests.per_s = per_s;
                run.watch[0].processes[0].summary.cpu_ms_per_1000_requests = Some(per_s / 10.0);
                run
            })
            .collect();
        let figures = Figures::of(&runs);
        assert_eq!(
            figures.throughput.rows[0].every_round,
            [100.0, 300.0, 200.0]
        );
        assert_eq!(
            figures.master_cost.rows[0].every_round_tree_us,
            [10.0, 30.0, 20.0]
        );
    }

    /// Open loop: the asked rate is kept apart from the achieved, and the
    /// rounds whose corrected p99 is ≥ 10× the uncorrected are counted.
    #[test]
    fn open_loop_keeps_asked_apart_and_counts_waiting_rounds() {
        let runs: Vec<Report> = [(104_255u64, 4_375u64), (122_000, 4_000), (3_600, 3_000)]
            .into_iter()
            .enumerate()
            .map(|(round, (corrected, uncorrected))| {
                let round = (round + 1).to_string();
                let mut run = throughput_run("node-rr", "openloop", &round);
                run.requests.asked_per_s = Some(27_345.0);
                run.requests.per_s = 27_000.0;
                let summary = run.latency.request.clone().expect("a histogram");
                run.latency.request.as_mut().expect("a histogram").p99_us = corrected;
                let mut as_sent = summary;
                as_sent.p99_us = uncorrected;
                run.latency.request_uncorrected = Some(as_sent);
                run
            })
            .collect();
        let figures = Figures::of(&runs);
        let row = &figures.throughput.rows[0];
        assert_eq!(row.asked_per_s.map(|s| s.median), Some(27_345.0));
        assert_eq!(row.per_s.median, 27_000.0);
        assert_eq!(row.waiting_rounds, 2);
        assert_eq!(row.p99.map(|s| (s.min, s.max)), Some((3_600.0, 122_000.0)));
    }

    /// Against the baseline, each mode's requests/s is the ratio of the two
    /// runs of each round: 10 % below in every round is clearly below,
    /// though the rounds' ranges overlap; no mode is ranked first.
    #[test]
    fn against_the_baseline_paired_by_round() {
        let mut runs = Vec::new();
        for (round, direct, socket, proxy) in [
            ("1", 100.0, 90.0, 40.0),
            ("2", 60.0, 54.0, 70.0),
            ("3", 110.0, 99.0, 30.0),
        ] {
            for (mode, per_s) in [
                ("direct", direct),
                ("handoff-socket", socket),
                ("proxy", proxy),
            ] {
                let mut run = throughput_run(mode, "keepalive", round);
                run.requests.per_s = per_s;
                runs.push(run);
            }
        }
        let text = Figures::of(&runs).markdown();
        assert!(
            text.contains(
                "With keep-alive, requests/s against the baseline `direct` (100/s, median), as \
                 the ratio of the two runs of each round: `proxy` 0.40× (0.27–1.17, 3 rounds, \
                 no clear difference); `handoff-socket` 0.90× (0.90–0.90, 3 rounds, clearly \
                 below 1)."
            ),
            "{text}"
        );
        // Saturated throughput on shared cores ranks nothing (§0 ranks):
        // the paired ratios stand, without a ranking sentence.
        assert!(!text.contains("had the highest median"), "{text}");
    }

    /// A shared-listener mode's keep-alive row lists each round's split of
    /// the connections beside its requests/s, and says when some rounds
    /// split evenly and others not: the median hides a bimodal split.
    #[test]
    fn the_listener_split_is_listed_per_round() {
        let runs: Vec<Report> = [
            ("1", 108_765.0, 25, 25),
            ("2", 85_356.0, 36, 14),
            ("3", 85_965.0, 45, 5),
            ("4", 106_849.0, 25, 25),
            ("5", 83_898.0, 50, 0),
        ]
        .into_iter()
        .map(|(round, per_s, first, second)| {
            let mut run = throughput_run("handoff-listener", "keepalive", round);
            run.labels.workers = Some(2);
            run.requests.per_s = per_s;
            let mut shares = vec![crate::fixtures::worker(1, first * 100, 0.5, 1)];
            shares[0].connections = first;
            if second > 0 {
                let mut other = crate::fixtures::worker(2, second * 100, 0.5, 1);
                other.connections = second;
                shares.push(other);
            }
            run.workers.by_pid = shares;
            run
        })
        .chain([throughput_run("proxy", "keepalive", "1")])
        .collect();
        let figures = Figures::of(&runs);
        let text = figures.markdown();
        assert!(
            text.contains(
                "| 25/25 (108,765/s), 36/14 (85,356/s), 45/5 (85,965/s), 25/25 (106,849/s), \
                 50/0 (83,898/s) |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| proxy | keep-alive | 1.0 | – | – |"),
            "{text}"
        );
        assert!(
            text.contains(
                "`handoff-listener` keep-alive: the kernel split the connections evenly in 2 of \
                 5 rounds, 25/25 and 25/25 (106,849–108,765/s), each faster than every round \
                 it split unevenly, 36/14, 45/5 and 50/0 (83,898–85,965/s)"
            ),
            "{text}"
        );
        // Without a shared-listener mode, no split column.
        let plain = Figures::of(&[throughput_run("proxy", "keepalive", "1")]).markdown();
        assert!(
            !plain.contains("connections per worker, each round"),
            "{plain}"
        );
    }

    /// A disturbed round is marked on its row, named in a footnote with
    /// what took the machine, and drawn hollow in the strip chart; it
    /// stays in the median.
    #[test]
    fn disturbed_rounds_are_marked_not_dropped() {
        let runs: Vec<Report> = [("1", 100.0, 0.0), ("2", 60.0, 0.3), ("3", 110.0, 0.0)]
            .into_iter()
            .map(|(round, per_s, steal_s)| {
                let mut run = throughput_run("proxy", "keepalive", round);
                run.requests.per_s = per_s;
                run.machine_usage = Some(runs::MachineUsage {
                    window_s: 1.0,
                    cores: 2,
                    busy_s: 0.5,
                    idle_s: 1.5 - steal_s,
                    iowait_s: 0.0,
                    steal_s,
                });
                run
            })
            .collect();
        let figures = Figures::of(&runs);
        let row = &figures.throughput.rows[0];
        assert_eq!(row.every_round_disturbed, [false, true, false]);
        assert_eq!(row.per_s.median, 100.0, "kept in the median");
        let text = figures.markdown();
        assert!(text.contains("| proxy † | keep-alive |"), "{text}");
        assert!(
            text.contains(
                "marked, kept in every median and range: `proxy` keep-alive round 2 (steal 15 %)."
            ),
            "{text}"
        );
        let chart = charts(&figures).remove(0).draw().expect("drawn");
        assert!(chart.contains("hollow: a disturbed round"), "{chart}");
    }

    /// §1's table counts the requests never answered as a failure of their
    /// own kind, not as 0 errors.
    #[test]
    fn unanswered_requests_are_shown() {
        let mut run = throughput_run("proxy", "keepalive", "1");
        run.requests.ok = 820;
        run.requests.unanswered_at_end = 180;
        let text = Figures::of(&[run]).markdown();
        assert!(text.contains("| 180 unanswered (18.00 %) |"), "{text}");
        assert!(text.contains("| failed / unanswered |"), "{text}");
    }

    /// The throughput section names the connections the runs had, not a
    /// number fixed in advance.
    #[test]
    fn names_the_connections_of_the_runs() {
        assert_eq!(one_of(&[]), "N");
        assert_eq!(one_of(&[50]), "50");
        assert_eq!(one_of(&[16, 50, 1000]), "16, 50 or 1,000");
        let figures = Figures {
            throughput: Throughput {
                connections: vec![16],
                ..Throughput::default()
            },
            ..Figures::default()
        };
        assert!(
            figures
                .markdown()
                .contains(": 16 keep-alive connections in a closed loop")
        );
    }
}
