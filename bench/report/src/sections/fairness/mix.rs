//! §4, uneven work: the open loop with each request's work drawn from a
//! heavy-tailed mix (`loadgen --mix`), so that a worker busy with a long
//! request shows in its own p99: the pooled p99, the best and the worst
//! worker's.

use runs::Report;
use runs::format::micros;

use super::{Variant, cluster_size};
use crate::sections::Figures;
use crate::stats::{Failures, PerRound, Spread, group, latency_spread, per_round};
use crate::text::{Ranked, failures_count, ranking, spread_micros, teach, w};

/// Section 4, uneven work (`--mix`): one variant, over its rounds.
#[derive(Debug, Clone)]
pub struct MixRow {
    /// The way of sharing the port.
    pub variant: Variant,
    /// Workers in the cluster.
    pub workers: usize,
    /// The mix, as `--mix` gave it: `95 % /, 5 % /?work_us=5000`.
    pub mix: String,
    /// p99 of all requests, µs, per round.
    pub p99_us: Option<Spread>,
    /// The best worker's p99, µs, per round.
    pub best_worker_p99_us: Option<Spread>,
    /// The worst worker's p99, µs, per round.
    pub worst_worker_p99_us: Option<Spread>,
    /// Requests failed or never answered, all rounds.
    pub failures: Failures,
    /// The worst worker's p99 of each labelled round, µs, to pair.
    pub worst_worker_p99_per_round: PerRound,
}

/// The rows of the uneven-work runs.
pub fn rows(runs: &[&Report]) -> Vec<MixRow> {
    let key = |run: &Report| Some((cluster_size(run), Variant::of(run)?));
    group(runs, key)
        .into_iter()
        .map(|((workers, variant), runs)| {
            let worker_p99 = |run: &&Report| -> Vec<f64> {
                run.workers
                    .by_pid
                    .iter()
                    .filter_map(|w| w.latency.as_ref().map(|l| l.p99_us as f64))
                    .collect()
            };
            let mix = runs
                .first()
                .map(|run| {
                    let total: u32 = run.parameters.mix.iter().map(|e| e.weight).sum();
                    run.parameters
                        .mix
                        .iter()
                        .map(|e| {
                            format!(
                                "{:.0} % {}",
                                100.0 * f64::from(e.weight) / f64::from(total.max(1)),
                                e.path
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            MixRow {
                variant,
                workers,
                mix,
                p99_us: latency_spread(&runs, |s| s.p99_us),
                best_worker_p99_us: Spread::of(
                    runs.iter()
                        .filter_map(|run| worker_p99(run).into_iter().min_by(f64::total_cmp)),
                ),
                worst_worker_p99_us: Spread::of(
                    runs.iter()
                        .filter_map(|run| worker_p99(run).into_iter().max_by(f64::total_cmp)),
                ),
                failures: Failures::of(&runs),
                worst_worker_p99_per_round: per_round(&runs, |run| {
                    worker_p99(&run).into_iter().max_by(f64::total_cmp)
                }),
            }
        })
        .collect()
}

/// §4, uneven work: `?work_us=` drawn from a heavy-tailed mix.
pub fn markdown(out: &mut String, figures: &Figures) {
    let table = &figures.fairness.mixes;
    if table.is_empty() {
        return;
    }
    w!(out, "### Uneven work");
    w!(out);
    w!(
        out,
        "The open loop with each request's work drawn from a mix ({}), so that a worker busy \
         with a long request shows in its own p99: where the requests queue behind a busy \
         worker, its p99 and the worst worker's rise.",
        table[0].mix
    );
    w!(out);
    w!(
        out,
        "| way of sharing the port | workers | p99 | the best worker's p99 | the worst worker's p99 | failed / unanswered |"
    );
    w!(out, "|---|---:|---:|---:|---:|---:|");
    for row in table {
        w!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            row.variant,
            row.workers,
            spread_micros(row.p99_us),
            spread_micros(row.best_worker_p99_us),
            spread_micros(row.worst_worker_p99_us),
            failures_count(&row.failures)
        );
    }
    w!(out);
    let worst: Vec<Ranked<String>> = table
        .iter()
        .filter_map(|row| {
            Some(Ranked {
                name: row.variant.to_string(),
                spread: row.worst_worker_p99_us?,
                rounds: row.worst_worker_p99_per_round.clone(),
            })
        })
        .collect();
    let lessons: Vec<String> = ranking(
        "By the worst worker's p99 under uneven work",
        &worst,
        false,
        micros,
    )
    .into_iter()
    .collect();
    teach(out, &lessons);
}
