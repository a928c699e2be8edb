//! §4, who gets the connections: each worker's share of the connections and
//! requests, largest first, and Jain's index over every worker (one that got
//! nothing counts as 0), per way of sharing the port, cluster size and load.
//! Its chart: `fairness.svg`.

use runs::Report;
use runs::labels::Load;

use super::{Variant, cluster_size, per_worker, spread_percent, spread_plain};
use crate::charts::fairness::FairnessChart;
use crate::sections::Figures;
use crate::stats::{Failures, PerRound, Spread, group, median, per_round};
use crate::text::{Ranked, failures_count, image, load_name, ranking, teach, w};

/// The share of a round's connections from which one worker is said to have
/// taken every connection: all but a thousandth, so that a stray connection
/// among thousands does not hide a worker that took them all.
pub const ALL_ON_ONE_SHARE: f64 = 0.999;

/// Section 4, the spread: one variant, cluster size and load, over its rounds.
#[derive(Debug, Clone)]
pub struct FairnessRow {
    /// The way of sharing the port.
    pub variant: Variant,
    /// Workers in the cluster (label `workers`, or the master's children).
    pub workers: usize,
    /// The load: `newconn` (a connection per request) or `keepalive`.
    pub load: Load,
    /// Each worker's share of the connections, largest first, the median
    /// over rounds at each rank, 0 to 1; a worker that got none is a 0.
    pub connection_shares: Vec<f64>,
    /// The same for the requests.
    pub request_shares: Vec<f64>,
    /// The smallest worker's share of the connections, per round.
    pub least_share: Option<Spread>,
    /// The largest worker's share of the connections, per round.
    pub most_share: Option<Spread>,
    /// Jain's index of the connections per worker (every worker, silent
    /// ones as 0), per round.
    pub connections_jain: Option<Spread>,
    /// Jain's index of the requests per worker, per round.
    pub requests_jain: Option<Spread>,
    /// Jain's index of the connections of each labelled round, to pair.
    pub connections_jain_per_round: PerRound,
    /// Requests failed or never answered, all rounds.
    pub failures: Failures,
}

/// Shares of `counts`, largest first.
fn ranked_shares(counts: &[u64]) -> Vec<f64> {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    let mut shares: Vec<f64> = counts.iter().map(|&count| count as f64 / total).collect();
    shares.sort_by(|a, b| b.total_cmp(a));
    shares
}

/// The median over rounds at each rank of `ranked` (each largest first).
fn median_by_rank(ranked: &[Vec<f64>]) -> Vec<f64> {
    let ranks = ranked.iter().map(Vec::len).max().unwrap_or(0);
    (0..ranks)
        .map(|rank| {
            median(
                ranked
                    .iter()
                    .map(|shares| shares.get(rank).copied().unwrap_or(0.0)),
            )
            .unwrap_or(0.0)
        })
        .collect()
}

/// The rows of the spread runs.
pub fn rows(runs: &[&Report]) -> Vec<FairnessRow> {
    let key = |run: &Report| Some((cluster_size(run), run.labels.load?, Variant::of(run)?));
    group(runs, key)
        .into_iter()
        .map(|((workers, load, variant), runs)| {
            let connections: Vec<Vec<u64>> = runs
                .iter()
                .map(|run| per_worker(run, |w| w.connections))
                .collect();
            let requests: Vec<Vec<u64>> = runs
                .iter()
                .map(|run| per_worker(run, |w| w.requests))
                .collect();
            let connection_ranks: Vec<Vec<f64>> =
                connections.iter().map(|c| ranked_shares(c)).collect();
            let jain = |counts: &[Vec<u64>]| {
                Spread::of(
                    counts
                        .iter()
                        .filter_map(|counts| runs::Fairness::of(counts).map(|f| f.jain_index)),
                )
            };
            FairnessRow {
                variant,
                workers,
                load,
                connection_shares: median_by_rank(&connection_ranks),
                request_shares: median_by_rank(
                    &requests
                        .iter()
                        .map(|r| ranked_shares(r))
                        .collect::<Vec<_>>(),
                ),
                least_share: Spread::of(
                    connection_ranks
                        .iter()
                        .filter_map(|shares| shares.last().copied()),
                ),
                most_share: Spread::of(
                    connection_ranks
                        .iter()
                        .filter_map(|shares| shares.first().copied()),
                ),
                connections_jain: jain(&connections),
                requests_jain: jain(&requests),
                connections_jain_per_round: per_round(&runs, |run| {
                    runs::Fairness::of(&per_worker(run, |w| w.connections))
                        .map(|fairness| fairness.jain_index)
                }),
                failures: Failures::of(&runs),
            }
        })
        .collect()
}

/// The chart of the shares, if there are rows.
pub fn chart(figures: &Figures) -> Option<FairnessChart<'_>> {
    let rows = &figures.fairness.spread;
    (!rows.is_empty()).then_some(FairnessChart { rows })
}

/// §4, the spread of connections and requests over the workers.
pub fn markdown(out: &mut String, figures: &Figures) {
    let table = &figures.fairness.spread;
    if table.is_empty() {
        return;
    }
    w!(out, "### Who gets the connections");
    w!(out);
    w!(
        out,
        "A new connection per request in an open loop below saturation, and keep-alive \
         connections opened in a burst (counted from the first, no warm-up)."
    );
    w!(out);
    if let Some(chart) = chart(figures) {
        image(out, &chart);
    }
    w!(
        out,
        "_One group of bars per way of sharing the port, one bar per worker, largest first: \
         at each rank the median over rounds of that rank's share (a worker that got nothing \
         is a bar of 0); the dashed line is the even share, 100 % / workers._"
    );
    w!(out);
    w!(
        out,
        "| way of sharing the port | workers | load | connection shares, largest first | smallest – largest share | Jain's index, connections | Jain's index, requests | failed / unanswered |"
    );
    w!(out, "|---|---:|---|---|---|---:|---:|---:|");
    for row in table {
        let shares: Vec<String> = row
            .connection_shares
            .iter()
            .map(|share| format!("{:.0}", share * 100.0))
            .collect();
        w!(
            out,
            "| `{}` | {} | {} | {} % | {} – {} | {} | {} | {} |",
            row.variant,
            row.workers,
            load_name(row.load),
            shares.join(" / "),
            spread_percent(row.least_share),
            spread_percent(row.most_share),
            spread_plain(row.connections_jain, 3),
            spread_plain(row.requests_jain, 3),
            failures_count(&row.failures)
        );
    }
    w!(out);
    let mut lessons = Vec::new();
    let mut groups: Vec<(usize, Load)> = table.iter().map(|row| (row.workers, row.load)).collect();
    groups.dedup();
    for (workers, load) in groups {
        let rows: Vec<Ranked<String>> = table
            .iter()
            .filter(|row| row.workers == workers && row.load == load)
            .filter_map(|row| {
                Some(Ranked {
                    name: row.variant.to_string(),
                    spread: row.connections_jain?,
                    rounds: row.connections_jain_per_round.clone(),
                })
            })
            .collect();
        let what = format!(
            "By Jain's index of the connections with {workers} workers and {}",
            load_name(load)
        );
        if let Some(text) = ranking(&what, &rows, true, |jain| format!("{jain:.3}")) {
            lessons.push(text);
        }
        // A strategy where one worker took everything in some round.
        for row in table
            .iter()
            .filter(|row| row.workers == workers && row.load == load)
        {
            if let Some(most) = row.most_share
                && most.max >= ALL_ON_ONE_SHARE
            {
                lessons.push(format!(
                    "With `{}` ({workers} workers, {}) one worker took every connection in at least one round.",
                    row.variant,
                    load_name(load)
                ));
            }
        }
    }
    teach(out, &lessons);
}

#[cfg(test)]
mod tests {
    use runs::WorkerShare;
    use runs::labels::Mode;

    use super::*;
    use crate::fixtures::{process, run, watch_tree};
    use crate::sections::Figures;

    /// Fairness: shares by rank, medians over rounds whatever the pids were.
    #[test]
    fn fairness_ranks_shares() {
        let runs: Vec<Report> = [(10u32, 0.7), (20, 0.6), (30, 0.8)]
            .into_iter()
            .map(|(pid, top)| {
                let mut run = run(
                    &[
                        ("section", "fairness"),
                        ("mode", "handoff-listener"),
                        ("load", "keepalive"),
                        ("work_us", "100"),
                    ],
                    1.0,
                    1,
                );
                let share = |pid, requests_share: f64| WorkerShare {
                    pid,
                    requests: (requests_share * 100.0).round() as u64,
                    requests_share,
                    connections: 0,
                    first_ms: None,
                    last_ms: None,
                    latency: None,
                };
                run.workers.by_pid = vec![share(pid, 1.0 - top), share(pid + 1, top)];
                run.workers.requests_fairness =
                    runs::Fairness::of(&[((1.0 - top) * 100.0) as u64, (top * 100.0) as u64]);
                run
            })
            .collect();
        let figures = Figures::of(&runs);
        let row = &figures.fairness.spread[0];
        assert_eq!(
            (row.variant.mode, row.load, row.workers),
            (Mode::HandoffListener, Load::KeepAlive, 2)
        );
        let shares = &row.request_shares;
        assert_eq!(shares.len(), 2);
        assert!((shares[0] - 0.7).abs() < 1e-9 && (shares[1] - 0.3).abs() < 1e-9);
        let jain = row.requests_jain.expect("jain");
        assert!(jain.max < 1.0 && jain.count == 3);
    }

    /// Fairness: a worker that answered nothing (label `workers`) counts as
    /// zero: Jain's index 1/n, not 1.0 (issue 13), and a share of 0.
    #[test]
    fn fairness_counts_a_silent_worker() {
        let mut run = run(
            &[
                ("section", "fairness"),
                ("mode", "handoff-listener"),
                ("load", "keepalive"),
                ("workers", "2"),
            ],
            1.0,
            1,
        );
        run.workers.by_pid = vec![WorkerShare {
            pid: 7,
            requests: 500,
            requests_share: 1.0,
            connections: 50,
            first_ms: None,
            last_ms: None,
            latency: None,
        }];
        let figures = Figures::of(&[run]);
        let row = &figures.fairness.spread[0];
        assert_eq!(row.request_shares, vec![1.0, 0.0]);
        assert_eq!(row.connection_shares, vec![1.0, 0.0]);
        assert!((row.requests_jain.expect("jain").median - 0.5).abs() < 1e-9);
        assert!((row.connections_jain.expect("jain").median - 0.5).abs() < 1e-9);
        assert_eq!(row.least_share.expect("least").median, 0.0);
    }

    /// Jain's index counts the master's children that answered nothing even
    /// without the `workers` label: one pid answering of two is not 1.0.
    #[test]
    fn fairness_counts_silent_children_without_the_label() {
        let mut run = run(
            &[
                ("section", "fairness"),
                ("mode", "handoff-reuseport"),
                ("load", "newconn"),
            ],
            1.0,
            1,
        );
        watch_tree(
            &mut run,
            0,
            vec![
                process(1, 0, 0.0, 1, 1),
                process(2, 1, 0.0, 1, 1),
                process(3, 1, 0.0, 1, 1),
            ],
        );
        run.workers.by_pid = vec![WorkerShare {
            pid: 2,
            requests: 500,
            requests_share: 1.0,
            connections: 50,
            first_ms: None,
            last_ms: None,
            latency: None,
        }];
        let figures = Figures::of(&[run]);
        let jain = figures.fairness.spread[0].requests_jain.expect("jain");
        assert!((jain.median - 0.5).abs() < 1e-9);
    }
}
