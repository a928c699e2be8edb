//! §4, a stalled worker: the open loop with one worker stopped (SIGSTOP,
//! `loadgen --stop`) twice and continued: the requests that waited behind
//! it, the p99 of every request, of the stalled worker and of the worst
//! other worker. Its chart: `stall.svg`.

use runs::format::{count_f64, micros};
use runs::{Report, StallWaits, WorkerShare};

use super::{Variant, cluster_size, spread_percent, spread_plain};
use crate::charts::stall::StallChart;
use crate::sections::Figures;
use crate::stats::{Failures, PerRound, Spread, group, latency_spread, median, per_round};
use crate::text::{Ranked, failures_count, image, ranking, spread_micros, teach, w};

/// Section 4, the stalled worker: one variant (loadgen `--stop`), over its rounds.
#[derive(Debug, Clone)]
pub struct StallRow {
    /// The way of sharing the port.
    pub variant: Variant,
    /// Workers in the cluster.
    pub workers: usize,
    /// How long each stall lasted (`--stop-for`), ms.
    pub stall_ms: f64,
    /// Requests whose latency was at least the stall, per round.
    pub waited_stall: Option<Spread>,
    /// Requests whose latency was at least a tenth of the stall, per round.
    pub waited_tenth: Option<Spread>,
    /// p99 of all requests, µs, per round.
    pub p99_us: Option<Spread>,
    /// The slowest request, µs, per round.
    pub max_us: Option<Spread>,
    /// The stalled worker's own p99, µs, per round.
    pub stalled_p99_us: Option<Spread>,
    /// The worst p99 of the other workers, µs, per round.
    pub others_p99_us: Option<Spread>,
    /// The stalled worker's share of the requests, per round.
    pub stalled_share: Option<Spread>,
    /// Requests failed or never answered, all rounds.
    pub failures: Failures,
    /// The requests that waited a tenth of the stall, of each labelled
    /// round, to pair.
    pub waited_tenth_per_round: PerRound,
    /// p99 of each labelled round, µs, to pair.
    pub p99_per_round: PerRound,
}

/// The rows of the stalled-worker runs.
pub fn rows(runs: &[&Report]) -> Vec<StallRow> {
    let key = |run: &Report| Some((cluster_size(run), Variant::of(run)?));
    group(runs, key)
        .into_iter()
        .map(|((workers, variant), runs)| {
            let waits = |figure: fn(&StallWaits) -> u64| {
                Spread::of(
                    runs.iter()
                        .filter_map(|run| run.stall_waits.as_ref().map(|w| figure(w) as f64)),
                )
            };
            // The stalled worker's p99 and the worst of the others', per round.
            let mut stalled_p99 = Vec::new();
            let mut others_p99 = Vec::new();
            let mut stalled_share = Vec::new();
            for run in &runs {
                let Some(stopped) = run.stalls.first().map(|stall| stall.pid) else {
                    continue;
                };
                let p99 = |worker: &WorkerShare| worker.latency.as_ref().map(|l| l.p99_us as f64);
                let stalled = run.workers.by_pid.iter().find(|w| w.pid == stopped);
                if let Some(p99) = stalled.and_then(p99) {
                    stalled_p99.push(p99);
                }
                stalled_share.push(stalled.map_or(0.0, |w| w.requests_share));
                if let Some(worst) = run
                    .workers
                    .by_pid
                    .iter()
                    .filter(|w| w.pid != stopped)
                    .filter_map(p99)
                    .max_by(f64::total_cmp)
                {
                    others_p99.push(worst);
                }
            }
            StallRow {
                variant,
                workers,
                stall_ms: median(
                    runs.iter()
                        .filter_map(|run| run.stall_waits.as_ref().map(|w| w.stop_for_ms)),
                )
                .or_else(|| {
                    median(
                        runs.iter()
                            .filter_map(|run| run.labels.stall_ms.map(|ms| ms as f64)),
                    )
                })
                .unwrap_or(0.0),
                waited_stall: waits(|w| w.at_least_stall),
                waited_tenth: waits(|w| w.at_least_tenth),
                p99_us: latency_spread(&runs, |s| s.p99_us),
                max_us: latency_spread(&runs, |s| s.max_us),
                stalled_p99_us: Spread::of(stalled_p99),
                others_p99_us: Spread::of(others_p99),
                stalled_share: Spread::of(stalled_share),
                failures: Failures::of(&runs),
                waited_tenth_per_round: per_round(&runs, |run| {
                    Some(run.stall_waits.as_ref()?.at_least_tenth as f64)
                }),
                p99_per_round: per_round(&runs, |run| {
                    Some(run.latency.request.as_ref()?.p99_us as f64)
                }),
            }
        })
        .collect()
}

/// The chart of who waited, if there are rows.
pub fn chart(figures: &Figures) -> Option<StallChart<'_>> {
    let rows = &figures.fairness.stalls;
    (!rows.is_empty()).then_some(StallChart { rows })
}

/// §4, a worker stopped twice during an open-loop run.
pub fn markdown(out: &mut String, figures: &Figures) {
    let table = &figures.fairness.stalls;
    if table.is_empty() {
        return;
    }
    let stall_ms = table[0].stall_ms;
    w!(out, "### A stalled worker");
    w!(out);
    w!(
        out,
        "The open loop again, with one worker stopped (SIGSTOP, `loadgen --stop`) twice for \
         {stall_ms:.0} ms and continued (SIGCONT): the requests that waited behind it. A request \
         that arrives in the middle of a stall waits only its rest, so few latencies reach the \
         whole stall in any mode; the count of latencies of at least a tenth of it is the one \
         that tells how many waited. The stalled worker is the cluster's first."
    );
    w!(out);
    if let Some(chart) = chart(figures) {
        image(out, &chart);
    }
    w!(
        out,
        "| way of sharing the port | workers | requests ≥ {stall_ms:.0} ms | requests ≥ {:.0} ms | p99 | max | stalled worker's p99 | the others' worst p99 | stalled worker's share of requests | failed / unanswered |",
        stall_ms / f64::from(StallWaits::TENTH_DIVISOR)
    );
    w!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in table {
        w!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.variant,
            row.workers,
            spread_plain(row.waited_stall, 0),
            spread_plain(row.waited_tenth, 0),
            spread_micros(row.p99_us),
            spread_micros(row.max_us),
            spread_micros(row.stalled_p99_us),
            spread_micros(row.others_p99_us),
            spread_percent(row.stalled_share),
            failures_count(&row.failures)
        );
    }
    w!(out);
    let mut lessons = Vec::new();
    let waited: Vec<Ranked<String>> = table
        .iter()
        .filter_map(|row| {
            Some(Ranked {
                name: row.variant.to_string(),
                spread: row.waited_tenth?,
                rounds: row.waited_tenth_per_round.clone(),
            })
        })
        .collect();
    let what = format!(
        "By the requests that waited at least {:.0} ms",
        stall_ms / f64::from(StallWaits::TENTH_DIVISOR)
    );
    if let Some(text) = ranking(&what, &waited, false, count_f64) {
        lessons.push(text);
    }
    let p99: Vec<Ranked<String>> = table
        .iter()
        .filter_map(|row| {
            Some(Ranked {
                name: row.variant.to_string(),
                spread: row.p99_us?,
                rounds: row.p99_per_round.clone(),
            })
        })
        .collect();
    if let Some(text) = ranking("By p99 with a stalled worker", &p99, false, micros) {
        lessons.push(text);
    }
    teach(out, &lessons);
}
