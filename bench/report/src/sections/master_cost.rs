//! §5, master cost: CPU time per successful request from /proc over the
//! throughput runs' window, of the master, the workers, the whole tree and
//! loadgen itself, per mode and load; and the master's fds over one
//! new-connection run per mode. Its charts: `cost-per-request.svg` and
//! `master-fds-over-time.svg`; its headline on the first screen: the whole
//! tree's CPU per request with a new connection per request.

use std::collections::BTreeMap;

use runs::format::count;
use runs::labels::{Load, Mode, Section};
use runs::{ProcessReport, Report};

use super::Figures;
use crate::charts::cost::CostChart;
use crate::charts::master_fds::MasterFdsChart;
use crate::charts::{Chart, boxed};
use crate::stats::{
    Disturbance, Paired, PerRound, Spread, by_round, disturbance, disturbed_rounds, group, mode,
    mode_load, per_round,
};
use crate::text::{
    Marked, Ranked, and_list, baseline_name, disturbed_mark, disturbed_note, image, load_name,
    nothing, paired_ratio, ranking, rounds, section_link, teach, w, with_load,
};

/// The heading, as links to it are written.
pub const HEADING: &str = "5. Master cost";

/// Below this CPU per request (µs) in every round, a master is said to have
/// used no measurable CPU: the text prints µs to one decimal
/// ([`cpu_micros`]), where less reads as 0.0.
pub const UNMEASURED_CPU_US: f64 = 0.05;

/// The least rise of a master's fds over the window that the text explains
/// as what it holds in flight: one fd (fds are whole; less is no rise).
pub const LEAST_FDS_SWING: f64 = 1.0;

/// One run's CPU per successful request, µs (= ms per 1,000 requests).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RunCost {
    /// The master: the first `--watch`'s process; `None` for the baseline,
    /// whose master is not in the path.
    pub master_us: Option<f64>,
    /// Every other watched process (all watch entries), summed.
    pub workers_us: Option<f64>,
    /// The whole tree: the master (if in the path) and the workers.
    pub tree_us: Option<f64>,
    /// loadgen itself (`loadgen_usage`), `None` in runs without it.
    pub loadgen_us: Option<f64>,
}

/// The CPU per request of one run (see [`RunCost`]). A process watched twice
/// counts once.
pub fn run_cost(run: &Report) -> RunCost {
    let in_path = run.labels.mode.is_none_or(Mode::master_in_path);
    let master = run.master();
    let per_request = |process: &ProcessReport| process.summary.cpu_ms_per_1000_requests;
    let mut others: BTreeMap<u32, Option<f64>> = BTreeMap::new();
    for process in run.watch.iter().flat_map(|tree| tree.processes.iter()) {
        if Some(process.pid) != master.map(|master| master.pid) {
            others.insert(process.pid, per_request(process));
        }
    }
    let workers_us = others
        .values()
        .copied()
        .flatten()
        .fold(None, |sum: Option<f64>, value| {
            Some(sum.unwrap_or(0.0) + value)
        });
    let master_us = if in_path {
        master.and_then(per_request)
    } else {
        None
    };
    let tree_us = if in_path {
        master_us.map(|master| master + workers_us.unwrap_or(0.0))
    } else {
        workers_us
    };
    RunCost {
        master_us,
        workers_us,
        tree_us,
        loadgen_us: run
            .loadgen_usage
            .and_then(|usage| usage.cpu_ms_per_1000_requests),
    }
}

/// Section 5: CPU per request of one mode under one load, over its rounds.
#[derive(Debug, Clone)]
pub struct CostRow {
    /// The mode.
    pub mode: Mode,
    /// The load.
    pub load: Load,
    /// Rounds (runs) in the row.
    pub rounds: usize,
    /// The master's µs per request; `None` for the baseline (no master in the
    /// path) or without a watched master.
    pub master_us: Option<Spread>,
    /// The workers', summed.
    pub workers_us: Option<Spread>,
    /// The whole tree's.
    pub tree_us: Option<Spread>,
    /// loadgen's own; `None` for runs written before loadgen measured it.
    pub loadgen_us: Option<Spread>,
    /// nginx watched alone (runs written before the workers behind it were
    /// watched too): its tree is not the whole tree.
    pub nginx_alone: bool,
    /// Every round's whole-tree µs per request, in round order (the strip
    /// chart's dots).
    pub every_round_tree_us: Vec<f64>,
    /// The whole tree's µs per request of each labelled round, to pair.
    pub tree_per_round: PerRound,
    /// Whether each of `every_round_tree_us` was disturbed (a different dot).
    pub every_round_disturbed: Vec<bool>,
    /// The disturbed rounds, and what disturbed them.
    pub disturbed: Vec<(Option<u32>, Disturbance)>,
}

/// Section 5's chart: the master's fds over one newconn run.
#[derive(Debug, Clone)]
pub struct FdSeries {
    /// The mode.
    pub mode: Mode,
    /// (seconds from the run's start, fds).
    pub points: Vec<(f64, f64)>,
    /// The measurement window, seconds from the run's start.
    pub window_s: (f64, f64),
}

impl FdSeries {
    /// The fewest and the most fds at a sample inside the window.
    pub fn window_range(&self) -> Option<(f64, f64)> {
        let inside = self
            .points
            .iter()
            .filter(|(t, _)| *t >= self.window_s.0 && *t <= self.window_s.1)
            .map(|p| p.1);
        let least = inside
            .clone()
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))))?;
        let most = inside.fold(least, f64::max);
        Some((least, most))
    }
}

/// §5's figures, from §1's runs.
#[derive(Debug, Clone, Default)]
pub struct MasterCost {
    /// One row per mode and load, over its rounds.
    pub rows: Vec<CostRow>,
    /// The master's fds over one new-connection run per mode.
    pub master_fds: Vec<FdSeries>,
}

impl MasterCost {
    /// The figures of the throughput runs.
    pub fn of(runs: &[&Report]) -> MasterCost {
        MasterCost {
            rows: cost(runs),
            master_fds: master_fds(runs),
        }
    }
}

fn cost(runs: &[&Report]) -> Vec<CostRow> {
    group(runs, mode_load)
        .into_iter()
        .map(|((mode, load), runs)| {
            let ordered = by_round(&runs);
            let costs: Vec<RunCost> = ordered.iter().map(|run| run_cost(run)).collect();
            CostRow {
                mode,
                load,
                rounds: runs.len(),
                master_us: Spread::of(costs.iter().filter_map(|cost| cost.master_us)),
                workers_us: Spread::of(costs.iter().filter_map(|cost| cost.workers_us)),
                tree_us: Spread::of(costs.iter().filter_map(|cost| cost.tree_us)),
                loadgen_us: Spread::of(costs.iter().filter_map(|cost| cost.loadgen_us)),
                nginx_alone: mode == Mode::Nginx && runs.iter().any(|run| run.watch.len() < 2),
                every_round_tree_us: costs.iter().filter_map(|cost| cost.tree_us).collect(),
                tree_per_round: per_round(&runs, |run| run_cost(run).tree_us),
                every_round_disturbed: ordered
                    .iter()
                    .zip(&costs)
                    .filter(|(_, cost)| cost.tree_us.is_some())
                    .map(|(run, _)| disturbance(run).is_some())
                    .collect(),
                disturbed: disturbed_rounds(&runs),
            }
        })
        .filter(|row| row.tree_us.is_some() || row.loadgen_us.is_some())
        .collect()
}

fn master_fds(runs: &[&Report]) -> Vec<FdSeries> {
    let newconn: Vec<&Report> = runs
        .iter()
        .copied()
        .filter(|run| run.labels.load == Some(Load::NewConn))
        // The baseline's watched master is not in the path: its fds say nothing.
        .filter(|run| run.labels.mode.is_some_and(Mode::master_in_path))
        .collect();
    group(&newconn, mode)
        .into_iter()
        .filter_map(|(mode, mut runs)| {
            // Round 1 if there is one: the same round for every mode.
            runs.sort_by_key(|run| run.labels.round.unwrap_or(u32::MAX));
            let run = runs.into_iter().find(|run| run.master().is_some())?;
            let master = run.master()?;
            let phases = &run.phases;
            Some(FdSeries {
                mode,
                points: master
                    .samples
                    .iter()
                    .map(|sample| (sample.t_ms / 1000.0, sample.fds as f64))
                    .collect(),
                window_s: (
                    phases.measure_start_ms / 1000.0,
                    phases.measure_end_ms / 1000.0,
                ),
            })
        })
        .collect()
}

/// The chart of the CPU per request, if there are rows.
fn cost_chart(figures: &Figures) -> Option<CostChart<'_>> {
    let rows = &figures.master_cost.rows;
    (!rows.is_empty()).then_some(CostChart { rows })
}

/// The chart of the master's fds over a run, if a master was watched.
fn master_fds_chart(figures: &Figures) -> Option<MasterFdsChart<'_>> {
    let series = &figures.master_cost.master_fds;
    (!series.is_empty()).then_some(MasterFdsChart { series })
}

/// §5's charts, in the order its text links them.
pub fn charts(figures: &Figures) -> Vec<Box<dyn Chart + '_>> {
    [
        cost_chart(figures).map(boxed),
        master_fds_chart(figures).map(boxed),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// CPU µs: one decimal below 100 µs, none above.
pub fn cpu_micros(us: f64) -> String {
    if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// CPU µs per request over rounds: `10.2 (9.8–11.0)`, or `–` without one.
pub fn spread_cpu(spread: Option<Spread>) -> String {
    match spread {
        None => "–".to_owned(),
        Some(spread) if spread.count > 1 => format!(
            "{} ({}–{})",
            cpu_micros(spread.median),
            cpu_micros(spread.min),
            cpu_micros(spread.max)
        ),
        Some(spread) => cpu_micros(spread.median),
    }
}

/// The glance line of the cost: the whole tree's CPU per request with a new
/// connection per request, per mode, and the baseline's.
pub fn glance(figures: &Figures) -> Option<String> {
    let rows: Vec<(Mode, f64)> = figures
        .master_cost
        .rows
        .iter()
        .filter(|row| row.load == Load::NewConn && !row.nginx_alone)
        .filter_map(|row| Some((row.mode, row.tree_us?.median)))
        .collect();
    let listed = |peer: bool| -> Vec<String> {
        rows.iter()
            .filter(|(mode, _)| !mode.is_baseline() && mode.is_peer() == peer)
            .map(|(mode, us)| format!("`{mode}` {} µs", cpu_micros(*us)))
            .collect()
    };
    let modes = listed(false);
    if modes.is_empty() {
        return None;
    }
    let peers = listed(true);
    let peers = if peers.is_empty() {
        String::new()
    } else {
        format!("; peers {}", peers.join(", "))
    };
    let baseline = rows
        .iter()
        .find(|(mode, _)| *mode == Mode::Direct)
        .or_else(|| rows.iter().find(|(mode, _)| *mode == Mode::Ceiling))
        .map_or(String::new(), |(mode, us)| {
            format!(
                "; the baseline {} {} µs",
                baseline_name(*mode),
                cpu_micros(*us)
            )
        });
    Some(format!(
        "**Server CPU per request at saturation, a new connection per request** (the whole \
         tree, median; cost at equal load was not measured in these runs, and at saturation \
         each mode ran at its own rate): {}{baseline}{peers}. {}",
        modes.join(", "),
        section_link(HEADING)
    ))
}

/// §5: the table, its charts and what they teach.
pub fn markdown(out: &mut String, figures: &Figures) {
    w!(out, "## {HEADING}");
    w!(out);
    w!(
        out,
        "CPU time per successful request, in µs (the same number as ms per 1,000 requests), \
         from /proc over the measured window: the master (the first watched process), the \
         workers (every other watched process, summed), the whole server tree, and loadgen \
         itself. With a new connection per request every request is one connection: the \
         figure is also the cost per connection. The baseline has no master in the path (–): \
         its tree is the workers. Peers are watched as whole trees (nginx and the workers \
         behind it), so every row compares the same thing."
    );
    w!(out);
    let equal = super::cost::at_named_rates(figures);
    if equal.is_empty() {
        w!(
            out,
            "_Cost at equal load was not measured in these runs: the figures below are at \
             saturation only._"
        );
    } else {
        w!(
            out,
            "**At equal offered rates** ({}, each mode doing the same work), the whole tree's \
             CPU per request and its ratio to the baseline's, paired by round: {}",
            section_link(super::cost::HEADING),
            equal.join(" ")
        );
    }
    w!(out);
    w!(
        out,
        "**At saturation**, from the closed-loop runs of {}: each mode at its own rate, \
         batching as its load allows, loadgen on the same cores; the figures below are of \
         that, and compare less well than those at equal rates.",
        section_link(super::throughput::HEADING)
    );
    w!(out);
    let table = &figures.master_cost.rows;
    rounds(out, figures.rounds.get(&Section::Throughput));
    if table.is_empty() {
        nothing(out, "throughput runs with --watch, so no cost");
        return;
    }
    w!(
        out,
        "| mode | load | rounds | master µs/request | workers µs/request | tree µs/request | loadgen µs/request |"
    );
    w!(out, "|---|---|---:|---:|---:|---:|---:|");
    for row in table {
        w!(
            out,
            "| {}{}{} | {} | {} | {} | {} | {} | {} |",
            row.mode,
            if row.nginx_alone { " ¹" } else { "" },
            disturbed_mark(&row.disturbed),
            load_name(row.load),
            row.rounds,
            spread_cpu(row.master_us),
            spread_cpu(row.workers_us),
            spread_cpu(row.tree_us),
            spread_cpu(row.loadgen_us),
        );
    }
    w!(out);
    if table.iter().any(|row| row.nginx_alone) {
        w!(
            out,
            "¹ These runs watched nginx alone, not the workers behind it: its tree is not the \
             whole tree, and its row does not compare with `proxy`'s."
        );
        w!(out);
    }
    let marked: Vec<Marked<'_>> = table
        .iter()
        .map(|row| {
            (
                format!("`{}` {}", row.mode, load_name(row.load)),
                row.disturbed.as_slice(),
            )
        })
        .collect();
    disturbed_note(out, &marked);
    if table.iter().all(|row| row.loadgen_us.is_none()) {
        w!(
            out,
            "loadgen's own CPU was not recorded in these runs (written before it was): –."
        );
        w!(out);
    }
    if let Some(chart) = cost_chart(figures) {
        image(out, &chart);
    }
    let mut lessons = Vec::new();
    for load in [Load::KeepAlive, Load::NewConn, Load::OpenLoop] {
        let rows: Vec<&CostRow> = table.iter().filter(|row| row.load == load).collect();
        let trees: Vec<Ranked<Mode>> = rows
            .iter()
            .filter(|row| !row.nginx_alone)
            .filter_map(|row| {
                Some(Ranked {
                    name: row.mode,
                    spread: row.tree_us?,
                    rounds: row.tree_per_round.clone(),
                })
            })
            .collect();
        if let Some(text) = ranking(
            &format!("{}, of the whole trees per request", with_load(load)),
            &trees,
            false,
            |us| format!("{} µs", cpu_micros(us)),
        ) {
            lessons.push(text);
        }
        let baseline = rows
            .iter()
            .find(|row| row.mode == Mode::Direct)
            .or_else(|| rows.iter().find(|row| row.mode == Mode::Ceiling));
        if let Some(baseline) = baseline {
            let against: Vec<String> = rows
                .iter()
                .filter(|row| !row.mode.is_baseline() && !row.nginx_alone)
                .filter_map(|row| {
                    let paired = Paired::of(&row.tree_per_round, &baseline.tree_per_round)?;
                    Some(format!("`{}` {}", row.mode, paired_ratio(&paired)))
                })
                .collect();
            if !against.is_empty() {
                lessons.push(format!(
                    "{}, the whole tree's CPU per request against the baseline {}'s, as the \
                     ratio of the two runs of each round: {}.",
                    with_load(load),
                    baseline_name(baseline.mode),
                    against.join("; ")
                ));
            }
        }
        let idle: Vec<String> = rows
            .iter()
            .filter(|row| row.master_us.is_some_and(|m| m.max < UNMEASURED_CPU_US))
            .map(|row| format!("`{}`", row.mode))
            .collect();
        let busy = rows
            .iter()
            .filter(|row| !row.nginx_alone)
            .filter_map(|row| Some((row.mode, row.master_us?, row.tree_us?)))
            .max_by(|a, b| a.1.median.total_cmp(&b.1.median));
        if let Some((mode, master, tree)) = busy {
            if master.median > 0.0 {
                lessons.push(format!(
                    "{}, the `{mode}` master spent {} µs per request, {:.0} % of its tree's{}.",
                    with_load(load),
                    cpu_micros(master.median),
                    100.0 * master.median / tree.median.max(1e-9),
                    if idle.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; the {} master{} no measurable CPU in any round",
                            and_list(&idle),
                            if idle.len() > 1 { "s used" } else { " used" }
                        )
                    }
                ));
            }
        }
    }
    teach(out, &lessons);
    if let Some(chart) = master_fds_chart(figures) {
        image(out, &chart);
        let ranges: Vec<String> = chart
            .series
            .iter()
            .filter_map(|series| {
                let (least, most) = series.window_range()?;
                Some(format!(
                    "`{}` {}–{}",
                    series.mode,
                    count(least.round() as u64),
                    count(most.round() as u64)
                ))
            })
            .collect();
        if !ranges.is_empty() {
            let swing = chart
                .series
                .iter()
                .filter_map(|series| {
                    let (least, most) = series.window_range()?;
                    Some((series.mode, most - least))
                })
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let mut text = format!(
                "The master's fds over one new-connection run per mode (its first round), \
                 fewest–most in the measured window: {}.",
                ranges.join(", ")
            );
            if let Some((mode, swing)) = swing {
                if swing >= LEAST_FDS_SWING {
                    text.push_str(&format!(
                        " The rise above the fewest is what a master holds in flight — two \
                         fds per open relay for a relaying master, the sockets not yet \
                         handed over for one that hands them — and was largest for `{mode}`: \
                         {} fds.",
                        count(swing.round() as u64)
                    ));
                }
            }
            w!(out, "{text}");
            w!(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{process, throughput_run, watch_tree};

    /// Cost per request: the master is the first watch's root, the workers
    /// every other watched process of every entry, the tree both; for
    /// `direct` the master is not in the path and the tree is the workers;
    /// loadgen's own from `loadgen_usage`, absent in old runs.
    #[test]
    fn cost_per_request_of_master_workers_tree_and_loadgen() {
        let mut proxy = throughput_run("proxy", "keepalive", "1");
        watch_tree(
            &mut proxy,
            0,
            vec![
                process(10, 0, 10.0, 1, 1),
                process(11, 10, 4.0, 1, 1),
                process(12, 10, 3.0, 1, 1),
            ],
        );
        proxy.loadgen_usage = Some(runs::LoadgenUsage {
            cpu_user_ms: 1.0,
            cpu_system_ms: 1.0,
            cpu_ms_per_1000_requests: Some(6.5),
        });
        assert_eq!(
            run_cost(&proxy),
            RunCost {
                master_us: Some(10.0),
                workers_us: Some(7.0),
                tree_us: Some(17.0),
                loadgen_us: Some(6.5),
            }
        );
        let mut direct = throughput_run("direct", "keepalive", "1");
        watch_tree(
            &mut direct,
            0,
            vec![
                process(20, 0, 0.5, 1, 1),
                process(21, 20, 4.0, 1, 1),
                process(22, 20, 4.0, 1, 1),
            ],
        );
        assert_eq!(
            run_cost(&direct),
            RunCost {
                master_us: None,
                workers_us: Some(8.0),
                tree_us: Some(8.0),
                loadgen_us: None,
            }
        );
        // nginx: --watch nginx --watch <proxy master>: the whole tree is both.
        let mut nginx = throughput_run("nginx", "keepalive", "1");
        watch_tree(
            &mut nginx,
            0,
            vec![process(30, 0, 1.0, 1, 1), process(31, 30, 9.0, 1, 1)],
        );
        watch_tree(
            &mut nginx,
            1,
            vec![
                process(40, 0, 0.0, 1, 1),
                process(41, 40, 3.0, 1, 1),
                process(42, 40, 3.0, 1, 1),
            ],
        );
        let cost = run_cost(&nginx);
        assert_eq!((cost.master_us, cost.tree_us), (Some(1.0), Some(16.0)));
        // Over rounds: the median and min–max per mode and load.
        let mut proxy2 = proxy.clone();
        proxy2.labels.round = Some(2);
        proxy2.watch[0].processes[0]
            .summary
            .cpu_ms_per_1000_requests = Some(14.0);
        let mut proxy3 = proxy.clone();
        proxy3.labels.round = Some(3);
        proxy3.watch[0].processes[0]
            .summary
            .cpu_ms_per_1000_requests = Some(12.0);
        let figures = Figures::of(&[proxy, proxy2, proxy3, direct, nginx]);
        let rows: Vec<(Mode, Option<f64>, Option<f64>)> = figures
            .master_cost
            .rows
            .iter()
            .map(|row| {
                (
                    row.mode,
                    row.master_us.map(|s| s.median),
                    row.tree_us.map(|s| s.median),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (Mode::Proxy, Some(12.0), Some(19.0)),
                (Mode::Direct, None, Some(8.0)),
                (Mode::Nginx, Some(1.0), Some(16.0)),
            ]
        );
        let proxy_row = &figures.master_cost.rows[0];
        assert_eq!(proxy_row.rounds, 3);
        let tree = proxy_row.tree_us.expect("a tree");
        assert_eq!((tree.min, tree.max), (17.0, 21.0));
        assert!(!figures.master_cost.rows[2].nginx_alone);
        assert_eq!(figures.rounds.get(&Section::Throughput), Some(&(1, 3)));
        assert_eq!(figures.master_cost.master_fds.len(), 0, "keep-alive only");
        // With a new connection per request, the baseline has no master fds
        // to draw: its watched master is not in the path.
        let newconn = Figures::of(&[
            throughput_run("direct", "newconn", "1"),
            throughput_run("proxy", "newconn", "1"),
        ]);
        let drawn: Vec<Mode> = newconn
            .master_cost
            .master_fds
            .iter()
            .map(|s| s.mode)
            .collect();
        assert_eq!(drawn, [Mode::Proxy]);
    }

    /// nginx watched alone (old runs) is flagged: its row is not a whole tree.
    #[test]
    fn nginx_watched_alone_is_flagged() {
        let nginx = throughput_run("nginx", "newconn", "1");
        let figures = Figures::of(&[nginx]);
        assert!(figures.master_cost.rows[0].nginx_alone);
        assert_eq!(figures.master_cost.master_fds.len(), 1);
        assert_eq!(figures.peers.modes, vec![Mode::Nginx]);
    }
}
