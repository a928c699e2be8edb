//! How one open-loop run is judged: held or not, and its p99 as far as its
//! samples support it. The renderer judges §0's and §1b's runs by these
//! rules, and the harness picks the sweep's knee by them from the runs it
//! has just made ([`Report::meets`]): one rule, here, so that the steps the
//! harness repeats are the ones the report calls the knee.

use crate::run::{HistogramSummary, KEPT_UP_RATIO, Report};

/// Corrected over uncorrected p50 from which a run's requests are said to
/// have waited to be sent: the server fell behind the schedule, and a late
/// answer still counts as answered.
pub const WAITING_RATIO: f64 = 10.0;

/// The latency objectives of the sweep (§1b), p99 in µs: 1 ms and 10 ms.
/// The report gives each mode's capacity at each; the harness picks each
/// mode's knee at the loosest, the capacity on the report's first screen.
pub const SLOS_US: [f64; 2] = [1_000.0, 10_000.0];

/// Samples that must lie above a percentile for the report to quote it:
/// the p99 of 600 requests is their 6th largest, one unlucky request from
/// another figure, so a p99 needs 1,000 samples and a p99.9 10,000.
pub const SAMPLES_ABOVE_A_PERCENTILE: f64 = 10.0;

/// The fewest samples for which `percentile` (0 to 100) may be quoted: 1,000
/// for p99 (see [`SAMPLES_ABOVE_A_PERCENTILE`]).
pub fn samples_for(percentile: f64) -> u64 {
    let above = (1.0 - percentile / 100.0).max(1e-12);
    // Less a hair, so that 10 / 0.01 is 1,000 and not 1,001 from rounding.
    (SAMPLES_ABOVE_A_PERCENTILE / above - 1e-6).ceil() as u64
}

/// The figure of `summary` at `percentile` that may be quoted, µs: its
/// `value_us` when the samples support it, else their maximum (an upper
/// bound of it).
pub fn quotable_us(summary: &HistogramSummary, percentile: f64, value_us: u64) -> u64 {
    if summary.count >= samples_for(percentile) {
        value_us
    } else {
        summary.max_us
    }
}

impl Report {
    /// Requests due in the window and not served: failed, or never answered.
    pub fn unserved(&self) -> u64 {
        self.requests.failed + self.requests.unanswered_at_end
    }

    /// An open loop at `offered_per_s` held: no request failed or was left
    /// unanswered, at least [`KEPT_UP_RATIO`] of the offered rate was
    /// answered, and the server kept up with the schedule (the corrected
    /// p50 under [`WAITING_RATIO`] times the p50 as sent: a server at half
    /// the offered rate answers every request of a short step, a second
    /// late).
    pub fn held(&self, offered_per_s: f64) -> bool {
        let on_time = match (&self.latency.request, &self.latency.request_uncorrected) {
            (Some(corrected), Some(sent)) => {
                (corrected.p50_us as f64) < WAITING_RATIO * (sent.p50_us as f64).max(1.0)
            }
            _ => true,
        };
        self.unserved() == 0 && self.requests.per_s >= KEPT_UP_RATIO * offered_per_s && on_time
    }

    /// The corrected p99 as it may be quoted (see [`quotable_us`]), µs.
    pub fn p99_quotable_us(&self) -> Option<u64> {
        let summary = self.latency.request.as_ref()?;
        Some(quotable_us(summary, 99.0, summary.p99_us))
    }

    /// Held at `offered_per_s` with a quotable p99 of at most `slo_us`.
    pub fn meets(&self, offered_per_s: f64, slo_us: f64) -> bool {
        self.held(offered_per_s)
            && self
                .p99_quotable_us()
                .is_some_and(|p99| p99 as f64 <= slo_us)
    }
}
