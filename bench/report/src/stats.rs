//! The statistics every section shares: a figure over rounds (its median and
//! range), how two modes compare (paired by round: [`Paired`]), which
//! percentiles a sample supports ([`Quote`]), what counts as not served
//! ([`Failures`]), which rounds were disturbed ([`disturbance`]), least
//! squares, and the grouping of runs by their labels. No formatting here:
//! the sections write the figures.

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

/// A figure of each round: the run's `round` label and its value, in round
/// order. Runs without a round have no place here: they pair with nothing.
pub type PerRound = Vec<(u32, f64)>;

/// `figure` of each of `runs` that has a round and a finite value, in round
/// order; a round given twice keeps the median of its values.
pub fn per_round(runs: &[&Report], figure: impl Fn(&Report) -> Option<f64>) -> PerRound {
    let mut by_round: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for run in runs {
        if let (Some(round), Some(value)) = (run.labels.round, figure(run)) {
            if value.is_finite() {
                by_round.entry(round).or_default().push(value);
            }
        }
    }
    by_round
        .into_iter()
        .filter_map(|(round, values)| Some((round, median(values)?)))
        .collect()
}

/// What the paired ratios of A against B say (see [`Paired`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every paired ratio is above 1.
    Above,
    /// Every paired ratio is below 1.
    Below,
    /// The ratios lie on both sides of 1 (or on it).
    NoClearDifference,
    /// A single pair: an order of magnitude, no verdict.
    OnePair,
}

impl Verdict {
    /// The verdict as the report words it.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Above => "clearly above 1",
            Verdict::Below => "clearly below 1",
            Verdict::NoClearDifference => "no clear difference",
            Verdict::OnePair => "one round only, no verdict",
        }
    }
}

/// A against B, paired by round: the ratio A / B within each round in which
/// both ran (the two runs adjacent in time, so that what disturbed one
/// disturbed the other), then the median of those ratios, their range and
/// their number. A round that only one of them has is skipped, and so is a
/// round where B is 0. Unpaired ranges hide a steady difference (A 10 %
/// below B in every round, both ranges wide with the rounds' noise), and one
/// disturbed round decides them; paired ratios do neither.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// The median of the paired ratios.
    pub median: f64,
    /// The smallest paired ratio.
    pub min: f64,
    /// The largest paired ratio.
    pub max: f64,
    /// How many rounds paired.
    pub pairs: usize,
}

impl Paired {
    /// The ratios of `a` against `b`, round by round; `None` without a
    /// round in common.
    pub fn of(a: &[(u32, f64)], b: &[(u32, f64)]) -> Option<Paired> {
        let ratios: Vec<f64> = a
            .iter()
            .filter_map(|&(round, a)| {
                let &(_, b) = b.iter().find(|(other, _)| *other == round)?;
                (b != 0.0).then(|| a / b)
            })
            .filter(|ratio| ratio.is_finite())
            .collect();
        let spread = Spread::of(ratios)?;
        Some(Paired {
            median: spread.median,
            min: spread.min,
            max: spread.max,
            pairs: spread.count,
        })
    }

    /// "Clearly above 1" or "clearly below 1" only when every paired ratio
    /// is on that side of 1; a single pair gives no verdict.
    pub fn verdict(&self) -> Verdict {
        if self.pairs < 2 {
            Verdict::OnePair
        } else if self.min > 1.0 {
            Verdict::Above
        } else if self.max < 1.0 {
            Verdict::Below
        } else {
            Verdict::NoClearDifference
        }
    }
}

/// A run's latency counted from each request's intended start (open loop;
/// in closed loop, from its send).
pub fn corrected_of(run: &Report) -> Option<&HistogramSummary> {
    run.latency.request.as_ref()
}

/// A run's latency as sent: `None` in closed loop, where it is the same.
pub fn sent_of(run: &Report) -> Option<&HistogramSummary> {
    run.latency.request_uncorrected.as_ref()
}

pub use runs::judge::{SAMPLES_ABOVE_A_PERCENTILE, samples_for};

/// What the report may say of a percentile of a histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quote {
    /// The percentile, µs, and the samples it rests on.
    Percentile {
        /// The value, µs.
        us: f64,
        /// The histogram's samples.
        samples: u64,
    },
    /// Too few samples for it: the largest of them, µs, and how many.
    MaxOf {
        /// The largest sample, µs.
        us: f64,
        /// The histogram's samples.
        samples: u64,
    },
}

impl Quote {
    /// The quotable figure of `summary` at `percentile`, whose value is
    /// `value_us`: the value when at least [`SAMPLES_ABOVE_A_PERCENTILE`]
    /// samples lie above it, else the maximum of the samples.
    pub fn of(summary: &HistogramSummary, percentile: f64, value_us: u64) -> Quote {
        if summary.count >= samples_for(percentile) {
            Quote::Percentile {
                us: value_us as f64,
                samples: summary.count,
            }
        } else {
            Quote::MaxOf {
                us: summary.max_us as f64,
                samples: summary.count,
            }
        }
    }

    /// The quote of a percentile over `runs`' histograms (`which`): the
    /// median of the percentile when every run has the samples for it, else
    /// the median of their maxima, said to be one; the samples are the
    /// fewest of a run.
    pub fn over(
        runs: &[&Report],
        which: fn(&Report) -> Option<&HistogramSummary>,
        percentile: f64,
        value: impl Fn(&HistogramSummary) -> u64,
    ) -> Option<Quote> {
        let summaries: Vec<&HistogramSummary> = runs.iter().filter_map(|run| which(run)).collect();
        let samples = summaries.iter().map(|summary| summary.count).min()?;
        let supported = summaries
            .iter()
            .all(|summary| summary.count >= samples_for(percentile));
        Some(if supported {
            Quote::Percentile {
                us: median(summaries.iter().map(|summary| value(summary) as f64))?,
                samples,
            }
        } else {
            Quote::MaxOf {
                us: median(summaries.iter().map(|summary| summary.max_us as f64))?,
                samples,
            }
        })
    }

    /// The samples it rests on.
    pub fn samples(self) -> u64 {
        match self {
            Quote::Percentile { samples, .. } | Quote::MaxOf { samples, .. } => samples,
        }
    }

    /// The figure, µs: the percentile, or the maximum standing in for it (an
    /// upper bound of it).
    pub fn us(self) -> f64 {
        match self {
            Quote::Percentile { us, .. } | Quote::MaxOf { us, .. } => us,
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

/// The failure kind of a request due in the window and never answered
/// (`requests.unanswered_at_end`): neither a latency sample nor one of
/// loadgen's error kinds, yet a request the server did not serve. "0
/// errors" beside 18 % unanswered would be a wrong figure.
pub const UNANSWERED: &str = "unanswered";

/// The requests of some runs that were not served: failed (loadgen's error
/// kinds) and unanswered (see [`UNANSWERED`]), and all the requests due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failures {
    /// Requests that failed, every kind loadgen counts.
    pub failed: u64,
    /// Requests due in the window and never answered.
    pub unanswered: u64,
    /// Every request of the window: answered, failed and unanswered.
    pub due: u64,
}

impl Failures {
    /// The failures of `runs`, summed.
    pub fn of(runs: &[&Report]) -> Failures {
        runs.iter().fold(Failures::default(), |sum, run| {
            let requests = &run.requests;
            Failures {
                failed: sum.failed + requests.failed,
                unanswered: sum.unanswered + requests.unanswered_at_end,
                due: sum.due + requests.ok + requests.failed + requests.unanswered_at_end,
            }
        })
    }

    /// Requests not served, of either kind.
    pub fn total(&self) -> u64 {
        self.failed + self.unanswered
    }

    /// Whether every request due was served.
    pub fn none(&self) -> bool {
        self.total() == 0
    }
}

/// loadgen's share of the machine's CPU over a run's window: its own CPU
/// (`loadgen_usage`) over the window's wall time times the machine's cores;
/// `None` in runs that did not record it.
pub fn loadgen_share(run: &Report) -> Option<f64> {
    let usage = run.loadgen_usage?;
    let window_ms = run.phases.measure_end_ms - run.phases.measure_start_ms;
    let capacity_ms = window_ms * run.machine.cores.max(1) as f64;
    (capacity_ms > 0.0).then(|| (usage.cpu_user_ms + usage.cpu_system_ms) / capacity_ms)
}

/// Steal time, as a share of the window's CPU (`window_s × cores`), above
/// which a round is marked disturbed: the hypervisor ran another guest on
/// this machine's CPUs for more than a twentieth of the time.
pub const DISTURBED_STEAL_SHARE: f64 = 0.05;

/// Busy CPU that was neither the server tree's nor loadgen's, as a share of
/// the window's CPU, above which a round is marked disturbed: other
/// processes (another build, another benchmark) took more than a tenth of
/// the machine.
pub const DISTURBED_OTHERS_SHARE: f64 = 0.10;

/// What took the machine from the server and loadgen in one run, as shares
/// of the window's CPU (see [`disturbance`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Disturbance {
    /// Steal time: CPU the hypervisor gave to others.
    pub steal: f64,
    /// Busy CPU of other processes: busy − the server tree's − loadgen's;
    /// `None` when the run did not record loadgen's own CPU, or watched no
    /// server tree (its CPU then cannot be told from other processes').
    pub others: Option<f64>,
}

/// A disturbed round: one in which the server tree and loadgen got clearly
/// less CPU than the machine had, from the run's `machine_usage`
/// (`/proc/stat` over the window): steal above
/// [`DISTURBED_STEAL_SHARE`] of the window's CPU (`window_s × cores`), or
/// other processes' busy time (busy − the watched trees' CPU − loadgen's)
/// above [`DISTURBED_OTHERS_SHARE`] of it. Such a round is marked in the
/// tables and the strip chart, never dropped: its figures stay in every
/// median and range, and the reader sees which they are. `None` when the
/// round was not disturbed, or when the run did not record the machine's
/// CPU (runs written before `machine_usage`).
pub fn disturbance(run: &Report) -> Option<Disturbance> {
    let machine = run.machine_usage?;
    let capacity_s = machine.capacity_s();
    if capacity_s <= 0.0 {
        return None;
    }
    let tree_s: f64 = run
        .watch
        .iter()
        .map(|tree| (tree.summary.cpu_user_ms + tree.summary.cpu_system_ms) / 1000.0)
        .sum();
    // Without a watched tree, the server's own CPU would count as others'.
    let watched = !run.watch.is_empty();
    let others = run.loadgen_usage.filter(|_| watched).map(|usage| {
        let loadgen_s = (usage.cpu_user_ms + usage.cpu_system_ms) / 1000.0;
        ((machine.busy_s - tree_s - loadgen_s) / capacity_s).max(0.0)
    });
    let disturbance = Disturbance {
        steal: machine.steal_s / capacity_s,
        others,
    };
    (disturbance.steal > DISTURBED_STEAL_SHARE
        || others.is_some_and(|others| others > DISTURBED_OTHERS_SHARE))
    .then_some(disturbance)
}

/// The disturbed rounds of `runs` (see [`disturbance`]), in round order: the
/// run's round (`None` without a label) and what disturbed it.
pub fn disturbed_rounds(runs: &[&Report]) -> Vec<(Option<u32>, Disturbance)> {
    by_round(runs)
        .into_iter()
        .filter_map(|run| Some((run.labels.round, disturbance(run)?)))
        .collect()
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

/// Failures by kind, summed over `runs`, the non-zero ones, most first;
/// the requests never answered as the kind [`UNANSWERED`].
pub fn kinds(runs: &[&Report]) -> Vec<(String, u64)> {
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for run in runs {
        for (kind, count) in &run.errors.by_kind {
            *sums.entry(kind.clone()).or_default() += count;
        }
        *sums.entry(UNANSWERED.to_owned()).or_default() += run.requests.unanswered_at_end;
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

    fn paired(a: &[(u32, f64)], b: &[(u32, f64)]) -> Paired {
        Paired::of(a, b).expect("rounds in common")
    }

    /// Paired by round: every ratio above 1 is clearly above, every one
    /// below clearly below, ratios on both sides no clear difference; the
    /// median and range are of the ratios, not of the values.
    #[test]
    fn pairing_rule_above_below_straddling() {
        // B is noisy (round 2 disturbed), A 10 % below B in every round:
        // the unpaired ranges overlap, the pairs do not.
        let b = [(1, 100.0), (2, 60.0), (3, 110.0)];
        let a = [(1, 90.0), (2, 54.0), (3, 99.0)];
        let below = paired(&a, &b);
        assert_eq!(below.pairs, 3);
        assert!((below.median - 0.9).abs() < 1e-12);
        assert!((below.min - 0.9).abs() < 1e-12 && (below.max - 0.9).abs() < 1e-12);
        assert_eq!(below.verdict(), Verdict::Below);
        assert_eq!(below.verdict().text(), "clearly below 1");
        let above = paired(&b, &a);
        assert_eq!(above.verdict(), Verdict::Above);
        assert_eq!(above.verdict().text(), "clearly above 1");
        let straddling = paired(
            &[(1, 1.1), (2, 0.9), (3, 1.2)],
            &[(1, 1.0), (2, 1.0), (3, 1.0)],
        );
        assert_eq!(straddling.verdict(), Verdict::NoClearDifference);
        assert_eq!(
            (straddling.min, straddling.median, straddling.max),
            (0.9, 1.1, 1.2)
        );
        // A ratio of exactly 1 is not above.
        let touching = paired(&[(1, 2.0), (2, 1.0)], &[(1, 1.0), (2, 1.0)]);
        assert_eq!(touching.verdict(), Verdict::NoClearDifference);
    }

    /// A round that only one side has is skipped (and a B of 0); one pair
    /// gives a ratio but no verdict; no round in common gives nothing.
    #[test]
    fn pairing_rule_skips_missing_rounds_and_one_pair_decides_nothing() {
        let pairs = paired(
            &[(1, 2.0), (2, 3.0), (4, 9.0)],
            &[(1, 1.0), (2, 1.0), (3, 5.0), (4, 0.0)],
        );
        assert_eq!(pairs.pairs, 2);
        assert_eq!((pairs.min, pairs.max), (2.0, 3.0));
        assert_eq!(pairs.verdict(), Verdict::Above);
        let one = paired(&[(1, 2.0)], &[(1, 1.0), (2, 1.0)]);
        assert_eq!((one.pairs, one.median), (1, 2.0));
        assert_eq!(one.verdict(), Verdict::OnePair);
        assert_eq!(Paired::of(&[(1, 2.0)], &[(2, 1.0)]), None);
        assert_eq!(Paired::of(&[], &[(2, 1.0)]), None);
    }

    /// A percentile is quoted when 10 samples lie above it: p99 from 1,000
    /// samples, p99.9 from 10,000, p50 from 20; below that the maximum,
    /// said to be one, and how many samples.
    #[test]
    fn percentiles_need_ten_samples_above_them() {
        assert_eq!(samples_for(99.0), 1_000);
        assert_eq!(samples_for(99.9), 10_000);
        assert_eq!(samples_for(50.0), 20);
        assert_eq!(samples_for(90.0), 100);
        let mut summary = crate::fixtures::run(&[], 1.0, 1)
            .latency
            .request
            .expect("a histogram");
        summary.max_us = 9_000;
        summary.p99_us = 2_000;
        summary.count = 600;
        assert_eq!(
            Quote::of(&summary, 99.0, summary.p99_us),
            Quote::MaxOf {
                us: 9_000.0,
                samples: 600
            }
        );
        summary.count = 1_000;
        let quote = Quote::of(&summary, 99.0, summary.p99_us);
        assert_eq!(
            quote,
            Quote::Percentile {
                us: 2_000.0,
                samples: 1_000
            }
        );
        assert_eq!(quote.us(), 2_000.0);
        assert!(matches!(
            Quote::of(&summary, 99.9, summary.p99_9_us),
            Quote::MaxOf { .. }
        ));
    }

    /// Failures count the unanswered requests as a kind of their own, beside
    /// loadgen's, and the requests due include them.
    #[test]
    fn unanswered_is_a_failure_kind() {
        let mut run = crate::fixtures::run(&[], 1.0, 1);
        run.requests.ok = 700;
        run.requests.failed = 3;
        run.requests.unanswered_at_end = 297;
        run.errors.by_kind.insert("timeout".to_owned(), 3);
        let failures = Failures::of(&[&run]);
        assert_eq!(
            failures,
            Failures {
                failed: 3,
                unanswered: 297,
                due: 1_000
            }
        );
        assert_eq!(failures.total(), 300);
        assert_eq!(
            kinds(&[&run]),
            [(UNANSWERED.to_owned(), 297), ("timeout".to_owned(), 3)]
        );
        run.requests.unanswered_at_end = 0;
        run.requests.failed = 0;
        run.errors.by_kind.clear();
        assert!(Failures::of(&[&run]).none());
        assert!(kinds(&[&run]).is_empty());
    }

    /// A round is disturbed when steal passes 5 % of the window's CPU or
    /// other processes' busy time 10 %; a round with the machine to the
    /// server and loadgen, or without a record of it, is not.
    #[test]
    fn disturbed_rounds_by_steal_or_other_processes() {
        use runs::MachineUsage;
        // 1 s on 2 cores: 2 s of CPU. The skeleton's tree uses 2 ms.
        let machine = |busy_s: f64, steal_s: f64| MachineUsage {
            window_s: 1.0,
            cores: 2,
            busy_s,
            idle_s: 2.0 - busy_s - steal_s,
            iowait_s: 0.0,
            steal_s,
        };
        let mut run = crate::fixtures::run(&[("round", "2")], 1.0, 1);
        assert_eq!(disturbance(&run), None, "not recorded");
        run.loadgen_usage = Some(runs::LoadgenUsage {
            cpu_user_ms: 200.0,
            cpu_system_ms: 800.0,
            cpu_ms_per_1000_requests: None,
        });
        // Busy 1.1 s: the tree's 0.002 and loadgen's 1.0, others 0.098 s (4.9 %).
        run.machine_usage = Some(machine(1.1, 0.05));
        assert_eq!(disturbance(&run), None);
        // Steal 0.2 s of 2: 10 %.
        run.machine_usage = Some(machine(1.1, 0.2));
        let stolen = disturbance(&run).expect("disturbed by steal");
        assert!((stolen.steal - 0.1).abs() < 1e-9);
        // Others 0.498 s of 2: 24.9 %.
        run.machine_usage = Some(machine(1.5, 0.0));
        let others = disturbance(&run).expect("disturbed by others");
        assert!((others.others.expect("others") - 0.249).abs() < 1e-9);
        assert_eq!(disturbed_rounds(&[&run]), [(Some(2), others)]);
        // Without a watched server tree, the server's CPU is not told from
        // others': only steal can tell.
        let watch = std::mem::take(&mut run.watch);
        assert_eq!(disturbance(&run), None, "a run with no --watch");
        run.watch = watch;
        // Without loadgen's own CPU, likewise.
        run.loadgen_usage = None;
        assert_eq!(disturbance(&run), None);
    }

    /// The figure of each round, in round order; runs without a round are
    /// left out, a round given twice is their median.
    #[test]
    fn per_round_values() {
        let with = |round: Option<u32>, per_s: f64| {
            let mut run = crate::fixtures::run(&[], per_s, 1);
            run.labels.round = round;
            run
        };
        let runs = [
            with(Some(2), 20.0),
            with(None, 99.0),
            with(Some(1), 10.0),
            with(Some(2), 40.0),
        ];
        let refs: Vec<&Report> = runs.iter().collect();
        assert_eq!(
            per_round(&refs, |run| Some(run.requests.per_s)),
            [(1, 10.0), (2, 30.0)]
        );
    }
}
