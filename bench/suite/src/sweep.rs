//! §1b's rates, from §1's runs of the same invocation (ARCHITECTURE.md's
//! rule), in two parts:
//!
//! - the ladder, the same absolute rates for every mode: each `ratio` times
//!   the one below, two significant digits, from 10 % of the slowest mode's
//!   median closed-loop requests/s up to the first rate at or above the
//!   larger of 150 % of it and 120 % of the fastest mode's; at most `steps`
//!   of them, the highest kept when the range needs more ([`rates_of`]);
//! - the knee of each mode, from its own ladder runs: the two adjacent
//!   rates between which it stopped meeting the loosest objective, and
//!   their geometric middle, so that around the knee the rates are at most
//!   √`ratio` apart; each of the three is repeated in rounds ([`knee_of`]).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use runs::labels::{Load, Mode, Section};

/// The lowest rate of a sweep, requests/s: below it a step has too few
/// requests to say anything.
pub const LOWEST_RATE: f64 = 10.0;

/// The rates of one load's sweep, and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    /// The rates, ascending, without repeats (two steps that round to one
    /// rate run once).
    pub rates: Vec<u64>,
    /// The slowest mode and its median requests/s.
    pub slowest: (Mode, f64),
    /// The fastest mode and its median requests/s.
    pub fastest: (Mode, f64),
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `x` rounded to two significant digits (ties to even).
fn two_digits(x: f64) -> u64 {
    let scale = 10f64.powf(x.log10().floor() - 1.0);
    ((x / scale).round_ties_even() * scale).round() as u64
}

/// The ladder's rule, from each mode's median requests/s: rates `ratio`
/// apart from the lowest (10 % of the slowest, at least [`LOWEST_RATE`]) up
/// to the first at or above the highest (the larger of 150 % of the
/// slowest and 120 % of the fastest), at most `steps` of them: when the
/// range needs more, the lowest go, since the knees lie near the top.
pub fn rates_of(medians: &[(Mode, f64)], steps: usize, ratio: f64) -> Option<Rates> {
    let slowest = *medians.iter().min_by(|a, b| a.1.total_cmp(&b.1))?;
    let fastest = *medians.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let low = LOWEST_RATE.max(0.1 * slowest.1);
    let high = (1.5 * slowest.1).max(1.2 * fastest.1).max(2.0 * low);
    // The rungs from the lowest: `needed` of them reach the highest (a hair
    // under, so that a range of exactly ratio^k is not one rung longer).
    let needed = ((high / low).ln() / ratio.ln() - 1e-9).ceil() as i32 + 1;
    let first = (needed - steps.max(1) as i32).max(0);
    let mut rates: Vec<u64> = (first..needed)
        .map(|rung| two_digits(low * ratio.powi(rung)))
        .collect();
    rates.sort_unstable();
    rates.dedup();
    Some(Rates {
        rates,
        slowest,
        fastest,
    })
}

/// The three rates around one mode's knee, lowest first: two adjacent
/// rates of the ladder and their geometric middle (two significant
/// digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knee {
    /// The highest rate of the ladder up to which every step met the
    /// objective (the lowest, if none did; the one below the highest, if
    /// all did).
    pub low: u64,
    /// √(low × high).
    pub middle: u64,
    /// The rate of the ladder above `low`.
    pub high: u64,
}

impl Knee {
    /// The rate of `point`.
    pub fn rate(&self, point: KneePoint) -> u64 {
        match point {
            KneePoint::Low => self.low,
            KneePoint::Middle => self.middle,
            KneePoint::High => self.high,
        }
    }
}

/// One of a knee's three rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KneePoint {
    /// The rate of the ladder under the knee.
    Low,
    /// The middle, new to the sweep.
    Middle,
    /// The rate of the ladder over the knee.
    High,
}

impl KneePoint {
    /// The three, lowest first.
    pub const ALL: [KneePoint; 3] = [KneePoint::Low, KneePoint::Middle, KneePoint::High];

    /// Whether the ladder ran it already (in the sweep's round 1).
    pub fn on_the_ladder(self) -> bool {
        self != KneePoint::Middle
    }
}

impl std::fmt::Display for KneePoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KneePoint::Low => "low",
            KneePoint::Middle => "mid",
            KneePoint::High => "high",
        })
    }
}

/// The knee of one mode and load from its ladder: `met[i]` says whether
/// the run at `ladder[i]` met the objective. The count stops at the first
/// step that missed, as the report's capacity does; `None` for a ladder of
/// fewer than two rates.
pub fn knee_of(ladder: &[u64], met: &[bool]) -> Option<Knee> {
    if ladder.len() < 2 {
        return None;
    }
    let held = met.iter().take_while(|met| **met).count();
    let i = held.saturating_sub(1).min(ladder.len() - 2);
    let (low, high) = (ladder[i], ladder[i + 1]);
    Some(Knee {
        low,
        middle: two_digits(((low as f64) * (high as f64)).sqrt()),
        high,
    })
}

/// The knee of `mode` under `load` from its ladder runs in `runs_dir`
/// (round 1 of the sweep), judged by the report's rule
/// ([`runs::Report::meets`]) at the loosest objective
/// ([`runs::judge::SLOS_US`]); a rate without its run counts as missed.
/// `None` for a ladder of fewer than two rates: no knee to look at.
pub fn knee(
    runs_dir: &Path,
    mode: Mode,
    load: Load,
    ladder: &[u64],
) -> anyhow::Result<Option<Knee>> {
    let slo_us = runs::judge::SLOS_US[runs::judge::SLOS_US.len() - 1];
    let mut met = vec![false; ladder.len()];
    for report in section_runs(runs_dir, "sweep-", Section::Sweep)? {
        let labels = &report.labels;
        if labels.mode != Some(mode) || labels.load != Some(load) || labels.round != Some(1) {
            continue;
        }
        if let Some(i) = labels
            .rate
            .and_then(|rate| ladder.iter().position(|r| *r == rate))
        {
            met[i] = report.meets(ladder[i] as f64, slo_us);
        }
    }
    Ok(knee_of(ladder, &met))
}

/// The runs of `section` in `runs_dir` (files `PREFIX-*.json`).
fn section_runs(
    runs_dir: &Path,
    prefix: &str,
    section: Section,
) -> anyhow::Result<Vec<runs::Report>> {
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(runs_dir).with_context(|| format!("read {}", runs_dir.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with(prefix) && name.ends_with(".json") {
            let report = runs::read_json(&path)?;
            if report.labels.section == Some(section) {
                found.push(report);
            }
        }
    }
    Ok(found)
}

/// The rates of `load`'s sweep from the §1 runs in `runs_dir`.
pub fn rates(runs_dir: &Path, load: Load, steps: usize, ratio: f64) -> anyhow::Result<Rates> {
    let mut per_mode: BTreeMap<Mode, Vec<f64>> = BTreeMap::new();
    for report in section_runs(runs_dir, "throughput-", Section::Throughput)? {
        if report.labels.load == Some(load) {
            if let Some(mode) = report.labels.mode {
                per_mode
                    .entry(mode)
                    .or_default()
                    .push(report.requests.per_s);
            }
        }
    }
    let medians: Vec<(Mode, f64)> = per_mode
        .iter()
        .map(|(mode, values)| (*mode, median(values)))
        .collect();
    match rates_of(&medians, steps, ratio) {
        Some(rates) => Ok(rates),
        None => bail!(
            "no §1 runs of {load} in {} to take the sweep's rates from",
            runs_dir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ladder on round figures: doubling from 10 % of the slowest to
    /// the first rate past 120 % of the fastest, two significant digits;
    /// capped, it keeps the highest rungs.
    #[test]
    fn the_ladder() {
        let medians = [(Mode::Proxy, 10_000.0), (Mode::Direct, 40_000.0)];
        let rates = rates_of(&medians, 8, 2.0).expect("rates");
        assert_eq!(
            rates.rates,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000]
        );
        assert_eq!(rates.slowest.0, Mode::Proxy);
        let capped = rates_of(&medians, 3, 2.0).expect("rates");
        assert_eq!(capped.rates, [16_000, 32_000, 64_000]);
        let quick = rates_of(&medians, 3, 4.0).expect("rates");
        assert_eq!(quick.rates, [4_000, 16_000, 64_000]);
        // A range of exactly a power of the ratio ends on its top.
        let exact = rates_of(&[(Mode::Proxy, 10_000.0), (Mode::Direct, 10_000.0)], 8, 2.0);
        assert_eq!(exact.expect("rates").rates.last(), Some(&16_000));
        assert_eq!(two_digits(1234.0), 1200);
        assert_eq!(two_digits(125.0), 120);
        assert_eq!(median(&[1.0, 3.0, 2.0, 4.0]), 2.5);
    }

    /// The knee lies between the last step met and the next, the count
    /// stopping at the first miss; at either end of the ladder, the two end
    /// rates; the middle is √2 from each with a ladder doubling.
    #[test]
    fn the_knee() {
        let ladder = [1_000, 2_000, 4_000, 8_000];
        let knee = |met: &[bool]| knee_of(&ladder, met).expect("knee");
        let middle = knee(&[true, true, false, false]);
        assert_eq!(
            (middle.low, middle.middle, middle.high),
            (2_000, 2_800, 4_000)
        );
        // A step met above a miss does not move the knee up.
        assert_eq!(knee(&[true, false, true, false]).low, 1_000);
        assert_eq!(knee(&[false, false, false, false]).low, 1_000);
        let all = knee(&[true, true, true, true]);
        assert_eq!((all.low, all.high), (4_000, 8_000));
        assert_eq!(all.rate(KneePoint::Middle), 5_700);
        assert!(knee_of(&[1_000], &[true]).is_none());
        assert!(KneePoint::Low.on_the_ladder() && !KneePoint::Middle.on_the_ladder());
    }
}
