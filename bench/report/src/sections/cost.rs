//! §0, cost at equal load, the headline: every mode and peer at the same
//! absolute offered rates in an open loop, each step repeated in shuffled
//! rounds with the server tree watched. Per load and rate: the whole tree's
//! CPU per request (master and workers apart) and loadgen's, the requests
//! not served, whether the step was held, the latency at that load; then
//! each mode against `direct`, paired by round. Its chart:
//! `cost-vs-rate.svg`; its headline on the first screen: the cost at a
//! named rate every server held.
//!
//! On a machine whose cores loadgen shares, requests/s at saturation (§1)
//! measure the total CPU per request of everything running, and each mode
//! saturates at its own rate, batching differently. At equal offered rates
//! every mode does the same work, so CPU per request compares.

use runs::Report;
use runs::format::{count, rate};
use runs::labels::{Load, Mode, Section};

use super::Figures;
use super::master_cost::{RunCost, cpu_micros, run_cost, spread_cpu};
use super::sweep::{self, WAITING_RATIO};
use crate::charts::cost_vs_rate::CostVsRateChart;
use crate::charts::{Chart, boxed};
use crate::stats::{
    Disturbance, Failures, Paired, PerRound, Quote, SAMPLES_ABOVE_A_PERCENTILE, Spread, Verdict,
    by_round, corrected_of, disturbed_rounds, group, per_round, samples_for,
};
use crate::text::{
    Marked, Ranked, and_list, baseline_name, disturbed_mark, disturbed_note, failures, image,
    load_name, opt_micros, opt_quote, paired_ratio, ranking, rounds, teach, w, with_load,
};

/// The heading, as links to it are written.
pub const HEADING: &str = "0. Cost at equal load";

/// One mode at one offered rate under one load, over its rounds.
#[derive(Debug, Clone)]
pub struct CostStep {
    /// The mode or peer.
    pub mode: Mode,
    /// `keepalive` or `newconn`.
    pub load: Load,
    /// The offered rate, requests/s (the `rate` label, else `--rate`).
    pub offered_per_s: f64,
    /// Runs (rounds) behind the step.
    pub rounds: usize,
    /// Rounds held, each judged on its own as §1b's steps are
    /// ([`Report::held`]).
    pub held_rounds: usize,
    /// The master's µs per request; `None` for the baseline (no master in
    /// the path).
    pub master_us: Option<Spread>,
    /// The workers', summed.
    pub workers_us: Option<Spread>,
    /// The whole tree's.
    pub tree_us: Option<Spread>,
    /// loadgen's own.
    pub loadgen_us: Option<Spread>,
    /// The whole tree's µs per request of each round, to pair.
    pub tree_per_round: PerRound,
    /// Requests failed or never answered, all rounds.
    pub failures: Failures,
    /// p50, counted from each request's intended start, over the rounds.
    pub p50: Option<Quote>,
    /// p99 likewise, quoted only where the samples support it.
    pub p99: Option<Quote>,
    /// nginx watched alone (its tree is not the whole tree).
    pub nginx_alone: bool,
    /// The disturbed rounds, and what disturbed them.
    pub disturbed: Vec<(Option<u32>, Disturbance)>,
    /// Under loadgen's open model (a new connection per request): its
    /// bound on requests in flight and the requests of all rounds that
    /// found it reached and waited for a place; `None` in the other models.
    pub in_flight: Option<(usize, u64)>,
}

impl CostStep {
    /// Held in most of its rounds: a cost of a step not held is that of a
    /// server that fell behind, not of the offered rate.
    pub fn held(&self) -> bool {
        2 * self.held_rounds > self.rounds
    }
}

/// §0's figures.
#[derive(Debug, Clone, Default)]
pub struct Cost {
    /// One step per load, mode and rate, in that order.
    pub steps: Vec<CostStep>,
    /// How the runs' clients ran ([`crate::text::open_loop_clients`]).
    pub clients: String,
}

/// The offered rate of an open-loop run: its `rate` label, else its `--rate`.
pub fn offered(run: &Report) -> Option<u64> {
    run.labels
        .rate
        .or_else(|| Some(run.parameters.rate_per_s?.round() as u64))
}

impl Cost {
    /// The figures of the cost runs.
    pub fn of(runs: &[&Report]) -> Cost {
        let clients = crate::text::open_loop_clients(runs);
        let key = |run: &Report| Some((run.labels.load?, run.labels.mode?, offered(run)?));
        let steps = group(runs, key)
            .into_iter()
            .map(|((load, mode, offered_per_s), runs)| {
                let runs = by_round(&runs);
                let offered_per_s = offered_per_s as f64;
                let costs: Vec<RunCost> = runs.iter().map(|run| run_cost(run)).collect();
                CostStep {
                    mode,
                    load,
                    offered_per_s,
                    rounds: runs.len(),
                    held_rounds: runs.iter().filter(|run| run.held(offered_per_s)).count(),
                    master_us: Spread::of(costs.iter().filter_map(|cost| cost.master_us)),
                    workers_us: Spread::of(costs.iter().filter_map(|cost| cost.workers_us)),
                    tree_us: Spread::of(costs.iter().filter_map(|cost| cost.tree_us)),
                    loadgen_us: Spread::of(costs.iter().filter_map(|cost| cost.loadgen_us)),
                    tree_per_round: per_round(&runs, |run| run_cost(run).tree_us),
                    failures: Failures::of(&runs),
                    p50: Quote::over(&runs, corrected_of, 50.0, |s| s.p50_us),
                    p99: Quote::over(&runs, corrected_of, 99.0, |s| s.p99_us),
                    nginx_alone: mode == Mode::Nginx && runs.iter().any(|run| run.watch.len() < 2),
                    disturbed: disturbed_rounds(&runs),
                    in_flight: runs
                        .iter()
                        .filter_map(|run| run.requests.in_flight)
                        .map(|in_flight| (in_flight.bound, in_flight.waited))
                        .reduce(|(bound, a), (_, b)| (bound, a + b)),
                }
            })
            .collect();
        Cost { steps, clients }
    }

    /// The loads measured, in table order.
    pub fn loads(&self) -> Vec<Load> {
        let mut loads: Vec<Load> = self.steps.iter().map(|step| step.load).collect();
        loads.dedup();
        loads
    }

    /// The steps of `load`.
    pub fn of_load(&self, load: Load) -> impl Iterator<Item = &CostStep> {
        self.steps.iter().filter(move |step| step.load == load)
    }

    /// The offered rates of `load`, lowest first.
    pub fn rates(&self, load: Load) -> Vec<f64> {
        let mut rates: Vec<f64> = self.of_load(load).map(|step| step.offered_per_s).collect();
        rates.sort_by(f64::total_cmp);
        rates.dedup();
        rates
    }

    /// The rate of `load` the report names on its first screen: the highest
    /// one that every mode and peer held (so that each cost is of the same
    /// work, done), else the lowest.
    pub fn named_rate(&self, load: Load) -> Option<f64> {
        let rates = self.rates(load);
        rates
            .iter()
            .rev()
            .copied()
            .find(|&rate| {
                self.of_load(load)
                    .filter(|step| step.offered_per_s == rate)
                    .all(CostStep::held)
            })
            .or_else(|| rates.first().copied())
    }

    /// The baseline's step of `load` at `rate`: `direct`, else `ceiling`.
    pub fn baseline(&self, load: Load, rate: f64) -> Option<&CostStep> {
        let at = |mode: Mode| {
            self.of_load(load)
                .find(|step| step.mode == mode && step.offered_per_s == rate)
        };
        at(Mode::Direct).or_else(|| at(Mode::Ceiling))
    }

    /// `step`'s whole tree against the baseline's at the same load and rate,
    /// paired by round; `None` for the baseline itself, or without rounds in
    /// common.
    pub fn against_baseline(&self, step: &CostStep) -> Option<Paired> {
        if step.mode.is_baseline() || step.nginx_alone {
            return None;
        }
        let baseline = self.baseline(step.load, step.offered_per_s)?;
        Paired::of(&step.tree_per_round, &baseline.tree_per_round)
    }
}

/// The chart of the tree's cost against the offered rate, if there are steps.
fn cost_vs_rate_chart(figures: &Figures) -> Option<CostVsRateChart<'_>> {
    let steps = &figures.cost.steps;
    steps
        .iter()
        .any(|step| step.tree_us.is_some())
        .then_some(CostVsRateChart { steps })
}

/// §0's chart.
pub fn charts(figures: &Figures) -> Vec<Box<dyn Chart + '_>> {
    cost_vs_rate_chart(figures).into_iter().map(boxed).collect()
}

/// A paired ratio in a table cell: `2.00× (1.83–2.21), clearly above`.
pub fn ratio_cell(paired: Option<Paired>) -> String {
    let Some(paired) = paired else {
        return "–".to_owned();
    };
    let verdict = match paired.verdict() {
        Verdict::Above => "clearly above",
        Verdict::Below => "clearly below",
        Verdict::NoClearDifference => "no clear difference",
        Verdict::OnePair => return format!("{:.2}× (one round)", paired.median),
    };
    format!(
        "{:.2}× ({:.2}–{:.2}), {verdict}",
        paired.median, paired.min, paired.max
    )
}

/// `held (5 of 5)`, `no (2 of 5)`, or `yes` / `no` for a single round.
fn held_cell(step: &CostStep) -> String {
    let held = if step.held() { "yes" } else { "no" };
    if step.rounds > 1 {
        format!("{held} ({} of {})", step.held_rounds, step.rounds)
    } else {
        held.to_owned()
    }
}

/// One sentence per load for §5: the whole tree's CPU per request at the
/// named rate, per mode, with its ratio to the baseline's paired by round.
pub fn at_named_rates(figures: &Figures) -> Vec<String> {
    let cost = &figures.cost;
    cost.loads()
        .into_iter()
        .filter_map(|load| {
            let rate_per_s = cost.named_rate(load)?;
            let entries: Vec<String> = cost
                .of_load(load)
                .filter(|step| step.offered_per_s == rate_per_s && !step.nginx_alone)
                .filter_map(|step| {
                    let tree = cpu_micros(step.tree_us?.median);
                    Some(match cost.against_baseline(step) {
                        Some(paired) => {
                            format!("`{}` {tree} µs, {}", step.mode, paired_ratio(&paired))
                        }
                        None => format!("`{}` {tree} µs", step.mode),
                    })
                })
                .collect();
            (!entries.is_empty()).then(|| {
                format!(
                    "{} at {}/s: {}.",
                    with_load(load),
                    rate(rate_per_s),
                    entries.join("; ")
                )
            })
        })
        .collect()
}

/// The glance line of each load: the whole tree's CPU per request at the
/// named rate, per mode and peer, with the ratio against the baseline
/// paired by round.
pub fn glance(figures: &Figures) -> Vec<String> {
    let cost = &figures.cost;
    let mut lines = Vec::new();
    for load in cost.loads() {
        let Some(rate_per_s) = cost.named_rate(load) else {
            continue;
        };
        let at: Vec<&CostStep> = cost
            .of_load(load)
            .filter(|step| step.offered_per_s == rate_per_s && !step.nginx_alone)
            .collect();
        let held_by_all = at.iter().all(|step| step.held());
        let entries: Vec<String> = at
            .iter()
            .filter_map(|step| {
                let tree = step.tree_us?;
                let against = cost.against_baseline(step).map_or(String::new(), |paired| {
                    if paired.pairs < 2 {
                        format!(" ({:.2}×)", paired.median)
                    } else {
                        format!(
                            " ({:.2}×, {:.2}–{:.2})",
                            paired.median, paired.min, paired.max
                        )
                    }
                });
                let baseline = if step.mode.is_baseline() {
                    "the baseline "
                } else {
                    ""
                };
                Some(format!(
                    "{baseline}`{}` {} µs{against}",
                    step.mode,
                    cpu_micros(tree.median)
                ))
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        let rounds = at.iter().map(|step| step.rounds).max().unwrap_or(0);
        lines.push(format!(
            "**Server CPU per request at equal load, {} at {}/s** ({}; the whole tree, median \
             of {} rounds; in brackets against `direct`, the ratio of the two runs of each \
             round, median and range): {}. {}",
            load_name(load),
            rate(rate_per_s),
            if held_by_all {
                "the highest rate every server held"
            } else {
                "no rate was held by every server: the lowest"
            },
            rounds,
            entries.join(", "),
            crate::text::section_link(HEADING)
        ));
    }
    lines
}

/// §0: what it measures, the tables per load, the paired ratios, the chart
/// and what they teach; without cost runs, that cost at equal load was not
/// measured.
pub fn markdown(out: &mut String, figures: &Figures) {
    let cost = &figures.cost;
    w!(out, "## {HEADING}");
    w!(out);
    if cost.steps.is_empty() {
        w!(
            out,
            "_Cost at equal load was not measured in this folder: its runs were written before \
             the cost section (`section=cost`: every mode at the same offered rates, each step \
             repeated in rounds). {} gives the CPU per request at saturation, where each mode \
             ran at its own rate and loadgen competed for the same cores._",
            crate::text::section_link(super::master_cost::HEADING)
        );
        w!(out);
        return;
    }
    w!(
        out,
        "Every mode and peer at the same offered rates in an open loop ({}, `--rate`), with \
         keep-alive and with a new connection per request, each step repeated \
         in rounds whose order was shuffled, the server tree watched: the CPU each request cost \
         the whole server tree (the master and the workers apart) and loadgen itself, µs per \
         request from /proc over the measured window, the median over rounds with min–max. At \
         saturation (§1) each mode runs at its own rate and loadgen competes for the same \
         cores; here every mode does the same work, so the costs compare. A step is **held** \
         in a round as in {}: at least {:.0} % of its requests answered, none failed or left \
         unanswered, the p50 below {WAITING_RATIO:.0}× the p50 as sent; a cost of a step not \
         held is that of a server that fell behind. Latency counts from when each request was \
         due; a percentile is quoted only with at least {SAMPLES_ABOVE_A_PERCENTILE:.0} samples \
         above it (a p99 needs {}), otherwise *max of N*; *samples* is the fewest of a round.",
        cost.clients,
        crate::text::section_link(sweep::HEADING),
        runs::KEPT_UP_RATIO * 100.0,
        count(samples_for(99.0)),
    );
    w!(out);
    rounds(out, figures.rounds.get(&Section::Cost));
    for chart in charts(figures) {
        image(out, chart.as_ref());
    }
    let mut lessons = Vec::new();
    for load in cost.loads() {
        w!(out, "**{}**:", capitalised(load_name(load)));
        w!(out);
        w!(
            out,
            "| mode | offered/s | tree µs/request | master µs/request | workers µs/request | loadgen µs/request | held | p50 | p99 | samples | failed / unanswered |"
        );
        w!(
            out,
            "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
        );
        let mut modes: Vec<Mode> = cost.of_load(load).map(|step| step.mode).collect();
        modes.dedup();
        for &mode in &modes {
            for step in cost.of_load(load).filter(|step| step.mode == mode) {
                w!(
                    out,
                    "| {}{}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    step.mode,
                    if step.nginx_alone { " ¹" } else { "" },
                    disturbed_mark(&step.disturbed),
                    rate(step.offered_per_s),
                    spread_cpu(step.tree_us),
                    spread_cpu(step.master_us),
                    spread_cpu(step.workers_us),
                    spread_cpu(step.loadgen_us),
                    held_cell(step),
                    opt_micros(step.p50.map(Quote::us)),
                    opt_quote(step.p99),
                    step.p99
                        .map_or("–".to_owned(), |quote| count(quote.samples())),
                    failures(&step.failures),
                );
            }
        }
        w!(out);
        let marked: Vec<Marked<'_>> = cost
            .of_load(load)
            .map(|step| {
                (
                    format!("`{}` at {}/s", step.mode, rate(step.offered_per_s)),
                    step.disturbed.as_slice(),
                )
            })
            .collect();
        disturbed_note(out, &marked);
        let rates = cost.rates(load);
        let compared: Vec<Mode> = modes
            .iter()
            .copied()
            .filter(|mode| !mode.is_baseline())
            .collect();
        if rates
            .iter()
            .any(|&rate_per_s| cost.baseline(load, rate_per_s).is_some())
            && !compared.is_empty()
        {
            let baseline = cost
                .steps
                .iter()
                .find(|step| step.load == load && step.mode.is_baseline())
                .map_or(Mode::Direct, |step| step.mode);
            w!(
                out,
                "The whole tree's CPU per request against the baseline {}'s at the same rate, {}: \
                 the ratio of the two runs of each round, their median (min–max), and \
                 \"clearly\" only when every round's ratio is on that side of 1:",
                baseline_name(baseline),
                load_name(load)
            );
            w!(out);
            let header: Vec<String> = rates
                .iter()
                .map(|&rate_per_s| format!("{}/s", rate(rate_per_s)))
                .collect();
            w!(out, "| mode | {} |", header.join(" | "));
            w!(out, "|---|{}", "---:|".repeat(rates.len()));
            for &mode in &compared {
                let cells: Vec<String> = rates
                    .iter()
                    .map(|&rate_per_s| {
                        cost.of_load(load)
                            .find(|step| step.mode == mode && step.offered_per_s == rate_per_s)
                            .map_or("–".to_owned(), |step| {
                                let cell = ratio_cell(cost.against_baseline(step));
                                if step.held() {
                                    cell
                                } else {
                                    format!("{cell} (not held)")
                                }
                            })
                    })
                    .collect();
                w!(out, "| `{mode}` | {} |", cells.join(" | "));
            }
            w!(out);
        }
        if let Some(rate_per_s) = cost.named_rate(load) {
            let ranked: Vec<Ranked<Mode>> = cost
                .of_load(load)
                .filter(|step| step.offered_per_s == rate_per_s && !step.nginx_alone)
                .filter_map(|step| {
                    Some(Ranked {
                        name: step.mode,
                        spread: step.tree_us?,
                        rounds: step.tree_per_round.clone(),
                    })
                })
                .collect();
            if let Some(text) = ranking(
                &format!(
                    "{} at {}/s, of the whole trees' CPU per request",
                    with_load(load),
                    rate(rate_per_s)
                ),
                &ranked,
                false,
                |us| format!("{} µs", cpu_micros(us)),
            ) {
                lessons.push(text);
            }
        }
        let not_held: Vec<String> = modes
            .iter()
            .filter_map(|&mode| {
                let lowest = cost
                    .of_load(load)
                    .filter(|step| step.mode == mode && !step.held())
                    .map(|step| step.offered_per_s)
                    .fold(None, |low: Option<f64>, rate| {
                        Some(low.map_or(rate, |low| low.min(rate)))
                    })?;
                Some(format!("`{mode}` from {}/s", rate(lowest)))
            })
            .collect();
        if !not_held.is_empty() {
            lessons.push(format!(
                "{}, steps not held in most rounds (their cost is of a server behind the \
                 schedule): {}.",
                with_load(load),
                and_list(&not_held)
            ));
        }
    }
    let reached: Vec<String> = cost
        .steps
        .iter()
        .filter_map(|step| match step.in_flight {
            Some((bound, waited)) if waited > 0 => Some(format!(
                "`{}` {} at {}/s, {} requests over {} rounds (the bound: {bound})",
                step.mode,
                load_name(step.load),
                rate(step.offered_per_s),
                count(waited),
                step.rounds
            )),
            _ => None,
        })
        .collect();
    if !reached.is_empty() {
        lessons.push(format!(
            "loadgen's bound on requests in flight was reached, and requests due then waited \
             for a place (their latency counts from when they were due; the CPU per request \
             is the same work): {}.",
            and_list(&reached)
        ));
    }
    if cost.steps.iter().any(|step| step.nginx_alone) {
        w!(
            out,
            "¹ These runs watched nginx alone, not the workers behind it: its tree is not the \
             whole tree."
        );
        w!(out);
    }
    teach(out, &lessons);
}

/// `Keep-alive` of `keep-alive`.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::cost_run;

    /// The cost of one step over rounds: the tree's, master's, workers' and
    /// loadgen's µs per request with their range; the ratio against
    /// `direct` paired by round, clearly above only when every round is;
    /// the named rate is the highest every server held.
    #[test]
    fn cost_at_equal_rates_paired_against_direct() {
        let mut runs = Vec::new();
        for (round, proxy_master, direct_tree) in
            [(1, 60.0, 40.0), (2, 90.0, 60.0), (3, 70.0, 44.0)]
        {
            for rate in [1_000, 2_000] {
                runs.push(cost_run(
                    "proxy",
                    "newconn",
                    rate,
                    round,
                    (proxy_master, 40.0),
                ));
                runs.push(cost_run(
                    "direct",
                    "newconn",
                    rate,
                    round,
                    (1.0, direct_tree),
                ));
            }
        }
        // proxy did not keep up at 2,000/s in rounds 2 and 3.
        for run in runs.iter_mut().filter(|run| {
            run.labels.mode == Some(Mode::Proxy)
                && run.labels.rate == Some(2_000)
                && run.labels.round != Some(1)
        }) {
            run.requests.per_s = 1_500.0;
            run.requests.unanswered_at_end = 750;
        }
        let figures = Figures::of(&runs);
        let cost = &figures.cost;
        let proxy = cost
            .steps
            .iter()
            .find(|step| step.mode == Mode::Proxy && step.offered_per_s == 1_000.0)
            .expect("a proxy step");
        let tree = proxy.tree_us.expect("a tree");
        assert_eq!((tree.median, tree.min, tree.max), (110.0, 100.0, 130.0));
        assert_eq!(proxy.master_us.map(|m| m.median), Some(70.0));
        assert_eq!(proxy.loadgen_us.map(|l| l.median), Some(5.0));
        assert!(proxy.held());
        let direct = cost.baseline(Load::NewConn, 1_000.0).expect("direct");
        assert_eq!(direct.master_us, None, "no master in the path");
        let paired = cost.against_baseline(proxy).expect("pairs");
        // 100/40, 130/60, 110/44: 2.5, 2.17, 2.5.
        assert_eq!(paired.pairs, 3);
        assert_eq!(paired.verdict(), Verdict::Above);
        assert_eq!(cost.named_rate(Load::NewConn), Some(1_000.0));
        let slow = cost
            .steps
            .iter()
            .find(|step| step.mode == Mode::Proxy && step.offered_per_s == 2_000.0)
            .expect("a proxy step");
        assert_eq!((slow.held_rounds, slow.held()), (1, false));
        assert_eq!(slow.failures.unanswered, 1_500);

        let text = figures.markdown();
        let section = &text[text.find("## 0. Cost at equal load").expect("§0")..];
        let section = &section[..section.find("\n## 1. ").expect("§1 follows")];
        assert!(section.contains("](cost-vs-rate.svg)"), "{section}");
        assert!(
            section.contains("| proxy | 1,000 | 110 (100–130) | 70.0 (60.0–90.0) | 40.0 (40.0–40.0) | 5.0 (5.0–5.0) | yes (3 of 3) |"),
            "{section}"
        );
        assert!(
            section.contains("| `proxy` | 2.50× (2.17–2.50), clearly above | "),
            "{section}"
        );
        assert!(section.contains("(not held)"), "{section}");
        assert!(section.contains("`proxy` from 2,000/s"), "{section}");
        assert!(section.contains("1,500 unanswered"), "{section}");
        assert!(
            section.contains("Each figure comes from 3 rounds"),
            "{section}"
        );
        // The section comes first, after the glance.
        assert!(text.find("## 0. Cost").expect("§0") < text.find("## 1. ").expect("§1"));
        assert!(
            text.find("## At a glance").expect("glance") < text.find("## 0. Cost").expect("§0")
        );
    }

    /// Requests that waited for a place under loadgen's bound are summed
    /// over the step's rounds and said once, beside the mode and rate.
    #[test]
    fn the_in_flight_bound_reached_is_said() {
        let mut runs = Vec::new();
        for round in 1..=2 {
            let mut run = crate::fixtures::cost_run("proxy", "newconn", 2_000, round, (50.0, 40.0));
            run.requests.in_flight = Some(runs::InFlight {
                bound: 50,
                max: 50,
                waited: 4 * u64::from(round),
            });
            runs.push(run);
        }
        let text = Figures::of(&runs).markdown();
        assert!(
            text.contains(
                "`proxy` new connection per request at 2,000/s, 12 requests over 2 rounds (the \
                 bound: 50)"
            ),
            "{text}"
        );
    }

    /// Without cost runs (old folders) the section says that cost at equal
    /// load was not measured, and draws nothing.
    #[test]
    fn old_folders_say_cost_at_equal_load_was_not_measured() {
        let figures = Figures::of(&crate::fixtures::glance_runs());
        assert!(figures.cost.steps.is_empty());
        assert!(charts(&figures).is_empty());
        let text = figures.markdown();
        assert!(
            text.contains("_Cost at equal load was not measured in this folder"),
            "{text}"
        );
    }
}
