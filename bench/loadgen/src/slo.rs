//! `--slo EXPR`: thresholds a run must meet, judged after it, which set the
//! exit code (as k6's thresholds do: `p(99)<10`), so that a script or CI can
//! fail on a latency or an error budget without reading the JSON.
//!
//! An expression is `METRIC OP VALUE`, OP one of `<`, `<=`, `>`, `>=`, `=`:
//!
//! - `pN` (`p50`, `p99`, `p99.9`, `p100` the maximum) `<= 10ms`: a
//!   percentile of `latency.request`, a duration (`250us`, `1.5ms`, `2s`).
//!   In open loop that is the corrected latency, from each request's
//!   intended start; in closed loop, from its send.
//! - `errors <= 5`: failed requests of the window (`errors.total`).
//! - `answered >= 0.95` (or `95%`): the share of the window's requests
//!   answered with a 2xx: `ok / (ok + failed + unanswered_at_end)`, which in
//!   open loop is of the requests *due* (`requests.scheduled`: those never
//!   sent count against it) and in closed loop of those sent. `errors=0`
//!   alone passes a run whose server fell behind and left requests
//!   unanswered; `answered` does not.
//! - `rps >= 1000` (`5k`): successful requests per second of the window
//!   (`requests.per_s`).
//!
//! A metric with nothing to measure (a percentile of a run without a
//! successful request, the share of no request) fails.

use std::fmt::Write;

use runs::SloResult;
use runs::format::{count, micros, rate};

use crate::load::Measured;
use crate::load::units::parse_count;

pub use runs::SLO_FAILED_EXIT_CODE;

/// What a threshold bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Metric {
    /// A percentile of `latency.request`, 0 (exclusive) to 100.
    Percentile(f64),
    /// Failed requests of the window.
    Errors,
    /// The share of the window's requests answered with a 2xx, 0 to 1.
    Answered,
    /// Successful requests per second of the window.
    Rps,
}

/// How the measured value must compare with the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
}

impl Op {
    /// The operators, longest first, so that `<=` is not read as `<`.
    const ALL: [(&'static str, Op); 6] = [
        ("<=", Op::LessOrEqual),
        (">=", Op::GreaterOrEqual),
        ("==", Op::Equal),
        ("<", Op::Less),
        (">", Op::Greater),
        ("=", Op::Equal),
    ];

    /// Whether `value OP bound` holds.
    fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Op::Less => value < bound,
            Op::LessOrEqual => value <= bound,
            Op::Greater => value > bound,
            Op::GreaterOrEqual => value >= bound,
            Op::Equal => value == bound,
        }
    }
}

/// One `--slo` threshold, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as given, kept for the report.
    expr: String,
    /// What it bounds.
    metric: Metric,
    /// How.
    op: Op,
    /// The bound, in the metric's unit: µs for a percentile, a share from 0
    /// to 1 for `answered`, a count or requests/s for the others.
    bound: f64,
}

impl Threshold {
    /// Parses `METRIC OP VALUE` (spaces allowed around each part); the
    /// error says what is wrong, for clap's one line.
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let bad = |why: String| Err(format!("{text:?}: {why}"));
        let Some((at, symbol, op)) = Op::ALL
            .iter()
            .filter_map(|&(symbol, op)| text.find(symbol).map(|at| (at, symbol, op)))
            .min_by_key(|&(at, symbol, _)| (at, usize::MAX - symbol.len()))
        else {
            return bad(
                "not METRIC OP VALUE, e.g. p99<=10ms, errors=0, answered>=0.95, rps>=1000".into(),
            );
        };
        let name = text[..at].trim();
        let value = text[at + symbol.len()..].trim();
        let metric = match name {
            "errors" => Metric::Errors,
            "answered" => Metric::Answered,
            "rps" => Metric::Rps,
            _ => match name.strip_prefix('p').map(str::parse::<f64>) {
                Some(Ok(percentile)) if percentile > 0.0 && percentile <= 100.0 => {
                    Metric::Percentile(percentile)
                }
                Some(_) => {
                    return bad(format!(
                        "{name:?} is not a percentile from p0 (excluded) to p100"
                    ));
                }
                None => {
                    return bad(format!(
                        "{name:?} is not a metric: pN (p99, p99.9), errors, answered or rps"
                    ));
                }
            },
        };
        let bound = match metric {
            Metric::Percentile(_) => cluster::cli::parse_duration(value)
                .map(|bound| bound.as_secs_f64() * 1e6)
                .map_err(|err| format!("a latency is a duration, e.g. 10ms: {err}")),
            Metric::Answered => parse_share(value),
            Metric::Errors | Metric::Rps => parse_count(value),
        };
        match bound {
            Ok(bound) => Ok(Threshold {
                expr: text.trim().to_owned(),
                metric,
                op,
                bound,
            }),
            Err(err) => bad(err),
        }
    }

    /// What `measured` gives for this threshold's metric, in its unit;
    /// `None` when there is nothing to measure.
    fn measure(&self, measured: &Measured) -> Option<f64> {
        let requests = &measured.report.requests;
        match self.metric {
            Metric::Percentile(percentile) => (!measured.latency.is_empty())
                .then(|| measured.latency.value_at_percentile(percentile) as f64),
            Metric::Errors => Some(requests.failed as f64),
            Metric::Answered => {
                let window = requests.ok + requests.failed + requests.unanswered_at_end;
                (window > 0).then(|| requests.ok as f64 / window as f64)
            }
            Metric::Rps => Some(requests.per_s),
        }
    }

    /// Judges the run: what it measured, and whether the threshold held.
    pub fn judge(&self, measured: &Measured) -> SloResult {
        let value = self.measure(measured);
        SloResult {
            expr: self.expr.clone(),
            value,
            pass: value.is_some_and(|value| self.op.holds(value, self.bound)),
        }
    }
}

/// A share from 0 to 1: `0.95`, or a percentage, `95%`.
fn parse_share(text: &str) -> Result<f64, String> {
    let (number, scale) = match text.strip_suffix('%') {
        Some(number) => (number.trim(), 100.0),
        None => (text, 1.0),
    };
    match number.parse::<f64>().map(|share| share / scale) {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!(
            "{text:?} is not a share from 0 to 1, e.g. 0.95 or 95%"
        )),
    }
}

/// Judges every threshold against `measured`, in the order given.
pub fn judge(thresholds: &[Threshold], measured: &Measured) -> Vec<SloResult> {
    thresholds
        .iter()
        .map(|threshold| threshold.judge(measured))
        .collect()
}

/// Whether every threshold held (true without any).
pub fn all_pass(results: &[SloResult]) -> bool {
    results.iter().all(|result| result.pass)
}

/// The summary's lines for `results`, one a threshold: `pass` or `FAIL`,
/// the expression, and what the run measured, as a person reads it.
pub fn lines(results: &[SloResult]) -> String {
    let mut out = String::new();
    for result in results {
        let measured = match (Threshold::parse(&result.expr), result.value) {
            (_, None) => "nothing to measure".to_owned(),
            (Ok(threshold), Some(value)) => match threshold.metric {
                Metric::Percentile(_) => micros(value),
                Metric::Errors => count(value as u64),
                Metric::Answered => format!("{:.2} %", value * 100.0),
                Metric::Rps => format!("{}/s", rate(value)),
            },
            // A report written by another version: the number as it is.
            (Err(_), Some(value)) => value.to_string(),
        };
        let verdict = if result.pass { "pass" } else { "FAIL" };
        let _ = writeln!(
            out,
            "  slo         {verdict} {}: measured {measured}",
            result.expr
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of `--help` parse into their metric, operator and bound
    /// (µs for a latency, a share for `answered`).
    #[test]
    fn parses_thresholds() {
        let parsed = |text: &str| {
            let threshold = Threshold::parse(text).unwrap_or_else(|err| panic!("{err}"));
            (threshold.metric, threshold.op, threshold.bound)
        };
        assert_eq!(
            parsed("p99<=10ms"),
            (Metric::Percentile(99.0), Op::LessOrEqual, 10_000.0)
        );
        assert_eq!(
            parsed("p99.9<=50ms"),
            (Metric::Percentile(99.9), Op::LessOrEqual, 50_000.0)
        );
        assert_eq!(
            parsed("p50<1ms"),
            (Metric::Percentile(50.0), Op::Less, 1000.0)
        );
        assert_eq!(
            parsed("p99 <= 250us"),
            (Metric::Percentile(99.0), Op::LessOrEqual, 250.0)
        );
        assert_eq!(
            parsed("p100<2s"),
            (Metric::Percentile(100.0), Op::Less, 2e6)
        );
        assert_eq!(parsed("errors=0"), (Metric::Errors, Op::Equal, 0.0));
        assert_eq!(parsed("errors==0"), (Metric::Errors, Op::Equal, 0.0));
        assert_eq!(parsed("errors<=5"), (Metric::Errors, Op::LessOrEqual, 5.0));
        assert_eq!(
            parsed("answered>=0.95"),
            (Metric::Answered, Op::GreaterOrEqual, 0.95)
        );
        assert_eq!(
            parsed("answered>=95%"),
            (Metric::Answered, Op::GreaterOrEqual, 0.95)
        );
        assert_eq!(
            parsed("rps>=1000"),
            (Metric::Rps, Op::GreaterOrEqual, 1000.0)
        );
        assert_eq!(parsed("rps>5k"), (Metric::Rps, Op::Greater, 5000.0));
        assert_eq!(
            Threshold::parse(" p99<=10ms ").expect("valid").expr,
            "p99<=10ms"
        );
    }

    /// Bad expressions are refused with a line that says what is wrong.
    #[test]
    fn refuses_bad_thresholds() {
        for (text, says) in [
            ("p99", "not METRIC OP VALUE"),
            ("p99<10", "time unit needed"),
            ("p0<1ms", "not a percentile"),
            ("p101<1ms", "not a percentile"),
            ("px<1ms", "not a percentile"),
            ("latency<1ms", "not a metric"),
            ("answered>=1.5", "not a share"),
            ("answered>=95", "not a share"),
            ("errors<=-1", "out of range"),
            ("rps>=many", "not a number"),
            ("p99<=", "a latency is a duration"),
        ] {
            let err = Threshold::parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
            assert!(!err.contains('\n'), "{text}: {err}");
        }
    }

    /// Each operator compares as it reads, boundaries included.
    #[test]
    fn operators_compare_as_they_read() {
        assert!(Op::Less.holds(1.0, 2.0) && !Op::Less.holds(2.0, 2.0));
        assert!(Op::LessOrEqual.holds(2.0, 2.0) && !Op::LessOrEqual.holds(3.0, 2.0));
        assert!(Op::Greater.holds(3.0, 2.0) && !Op::Greater.holds(2.0, 2.0));
        assert!(Op::GreaterOrEqual.holds(2.0, 2.0) && !Op::GreaterOrEqual.holds(1.0, 2.0));
        assert!(Op::Equal.holds(0.0, 0.0) && !Op::Equal.holds(1.0, 0.0));
    }

    /// The shares parse from 0 to 1, as a fraction or a percentage.
    #[test]
    fn parses_shares() {
        assert_eq!(parse_share("1"), Ok(1.0));
        assert_eq!(parse_share("0"), Ok(0.0));
        assert_eq!(parse_share("99.5%"), Ok(0.995));
        assert!(parse_share("101%").is_err());
        assert!(parse_share("-0.1").is_err());
    }
}
