//! The statistics every section shares: a figure over rounds (its median and
//! range), how two such figures compare (only ranges that do not overlap
//! rank), least squares, and the grouping of runs by their labels. No
//! formatting here: the sections write the figures.

use std::collections::BTreeMap;

use runs::labels::{Load, Mode};
use runs::{HistogramSummary, ProcessReport, Report, Role};

/// A figure over rounds: median, smallest, largest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (of an even count: the mean of the middle two).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// How many values.
    pub count: usize,
}

impl Spread {
    /// The spread of `values`; `None` if there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: values[0],
            max: values[n - 1],
            count: n,
        })
    }
}

/// How two figures over rounds compare: only ranges that do not overlap rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Every round of the first is above every round of the second.
    Above,
    /// Every round of the first is below every round of the second.
    Below,
    /// The ranges overlap: no clear difference.
    Overlap,
    /// One of them has a single round: an order of magnitude, not a ranking.
    OneRound,
}

impl Order {
    /// Compares `a` with `b` by their min–max over rounds.
    pub fn of(a: &Spread, b: &Spread) -> Order {
        if a.count < 2 || b.count < 2 {
            Order::OneRound
        } else if a.min > b.max {
            Order::Above
        } else if a.max < b.min {
            Order::Below
        } else {
            Order::Overlap
        }
    }
}

/// The median of `values`, `None` without any.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    Spread::of(values).map(|spread| spread.median)
}

/// Least squares of y on x: (slope, intercept); `None` with fewer than two
/// distinct x.
pub fn least_squares(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| (sxy / sxx, mean_y - sxy / sxx * mean_x))
}

/// Groups `runs` by `key`, the groups sorted by key; a run without a key
/// (`None`) is left out.
pub fn group<'a, K: Ord>(
    runs: &[&'a Report],
    key: impl Fn(&Report) -> Option<K>,
) -> BTreeMap<K, Vec<&'a Report>> {
    let mut groups: BTreeMap<K, Vec<&Report>> = BTreeMap::new();
    for &run in runs {
        if let Some(key) = key(run) {
            groups.entry(key).or_default().push(run);
        }
    }
    groups
}

/// The mode of a run.
pub fn mode(run: &Report) -> Option<Mode> {
    run.labels.mode
}

/// The mode and load of a run.
pub fn mode_load(run: &Report) -> Option<(Mode, Load)> {
    Some((run.labels.mode?, run.labels.load?))
}

/// The connections of a fd bill or fd limit step: its label, or as loaded.
pub fn connections(run: &Report) -> u64 {
    run.labels
        .connections
        .unwrap_or(run.parameters.connections as u64)
}

/// `runs` in round order (a run without a round last, in its file order).
pub fn by_round<'a>(runs: &[&'a Report]) -> Vec<&'a Report> {
    let mut sorted = runs.to_vec();
    sorted.sort_by_key(|run| run.labels.round.unwrap_or(u32::MAX));
    sorted
}

/// The median over `runs` of a latency figure of `latency.request`.
pub fn latency_median(runs: &[&Report], figure: impl Fn(&HistogramSummary) -> u64) -> Option<f64> {
    median(runs.iter().filter_map(|run| {
        run.latency
            .request
            .as_ref()
            .map(|summary| figure(summary) as f64)
    }))
}

/// The spread over `runs` of a figure of their pooled latency, µs.
pub fn latency_spread(
    runs: &[&Report],
    figure: impl Fn(&HistogramSummary) -> u64,
) -> Option<Spread> {
    Spread::of(
        runs.iter()
            .filter_map(|run| run.latency.request.as_ref().map(|s| figure(s) as f64)),
    )
}

/// Failed requests, all `runs`.
pub fn failed(runs: &[&Report]) -> u64 {
    runs.iter().map(|run| run.requests.failed).sum()
}

/// The master's children (its workers) in the first `--watch` tree.
pub fn workers_of(run: &Report) -> Vec<&ProcessReport> {
    let Some(master) = run.master() else {
        return Vec::new();
    };
    run.watch
        .first()
        .map(|tree| {
            tree.processes
                .iter()
                .filter(|process| process.role == Role::Child && process.ppid == master.pid)
                .collect()
        })
        .unwrap_or_default()
}

/// Failures by kind, summed over `runs`, the non-zero ones, most first.
pub fn kinds(runs: &[&Report]) -> Vec<(String, u64)> {
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for run in runs {
        for (kind, count) in &run.errors.by_kind {
            *sums.entry(kind.clone()).or_default() += count;
        }
    }
    let mut kinds: Vec<(String, u64)> = sums.into_iter().filter(|(_, n)| *n > 0).collect();
    kinds.sort_by_key(|kind| std::cmp::Reverse(kind.1));
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Medians of odd and even counts, min and max; nothing from nothing.
    #[test]
    fn spreads() {
        let spread = Spread::of([3.0, 1.0, 2.0]).expect("values");
        assert_eq!(
            (spread.median, spread.min, spread.max, spread.count),
            (2.0, 1.0, 3.0, 3)
        );
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(Spread::of([]), None);
    }

    /// Two modes rank only when their ranges over rounds do not overlap; a
    /// single round does not rank.
    #[test]
    fn ranking_needs_ranges_that_do_not_overlap() {
        let spread = |values: &[f64]| Spread::of(values.iter().copied()).expect("values");
        let listener = spread(&[126_000.0, 191_000.0, 215_000.0]);
        let socket = spread(&[114_000.0, 131_000.0, 146_000.0]);
        let proxy = spread(&[64_000.0, 71_000.0, 72_000.0]);
        assert_eq!(Order::of(&listener, &socket), Order::Overlap);
        assert_eq!(Order::of(&listener, &proxy), Order::Above);
        assert_eq!(Order::of(&proxy, &socket), Order::Below);
        assert_eq!(Order::of(&spread(&[1.0]), &proxy), Order::OneRound);
    }
}
