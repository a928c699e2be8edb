//! §1b's rates, from §1's runs of the same invocation (ARCHITECTURE.md's
//! rule): `steps` rates spaced evenly on a log scale from 10 % of the
//! slowest mode's median closed-loop requests/s to the larger of 150 % of
//! it and 120 % of the fastest mode's, two significant digits.

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

/// The rule, from each mode's median requests/s.
pub fn rates_of(medians: &[(Mode, f64)], steps: usize) -> Option<Rates> {
    let slowest = *medians.iter().min_by(|a, b| a.1.total_cmp(&b.1))?;
    let fastest = *medians.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let low = LOWEST_RATE.max(0.1 * slowest.1);
    let high = (1.5 * slowest.1).max(1.2 * fastest.1).max(2.0 * low);
    let mut rates: Vec<u64> = (0..steps)
        .map(|i| {
            let at = if steps > 1 {
                i as f64 / (steps - 1) as f64
            } else {
                0.0
            };
            two_digits(low * (high / low).powf(at))
        })
        .collect();
    rates.sort_unstable();
    rates.dedup();
    Some(Rates {
        rates,
        slowest,
        fastest,
    })
}

/// The rates of `load`'s sweep from the §1 runs in `runs_dir`.
pub fn rates(runs_dir: &Path, load: Load, steps: usize) -> anyhow::Result<Rates> {
    let mut per_mode: BTreeMap<Mode, Vec<f64>> = BTreeMap::new();
    for entry in
        std::fs::read_dir(runs_dir).with_context(|| format!("read {}", runs_dir.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.starts_with("throughput-") || !name.ends_with(".json") {
            continue;
        }
        let report = runs::read_json(&path)?;
        let labels = &report.labels;
        if labels.section == Some(Section::Throughput) && labels.load == Some(load) {
            if let Some(mode) = labels.mode {
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
    match rates_of(&medians, steps) {
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

    /// The rule on round figures: from 10 % of the slowest to 120 % of the
    /// fastest, two significant digits.
    #[test]
    fn the_rule() {
        let rates =
            rates_of(&[(Mode::Proxy, 10_000.0), (Mode::Direct, 40_000.0)], 6).expect("rates");
        assert_eq!(rates.rates.first(), Some(&1_000));
        assert_eq!(rates.rates.last(), Some(&48_000));
        assert_eq!(rates.rates.len(), 6);
        assert_eq!(rates.slowest.0, Mode::Proxy);
        assert_eq!(two_digits(1234.0), 1200);
        assert_eq!(two_digits(125.0), 120);
        assert_eq!(median(&[1.0, 3.0, 2.0, 4.0]), 2.5);
    }
}
