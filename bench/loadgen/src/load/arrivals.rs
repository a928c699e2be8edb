//! `--arrivals uniform|poisson`: when the open loop's requests are due.
//!
//! `uniform` (the default, as wrk2) spaces the run's requests 1/rate apart.
//! `poisson` spaces them as a Poisson process at the rate: exponential gaps
//! of mean 1/rate, the arrivals of many independent users, whose bursts and
//! lulls a server meets in production and an even schedule never shows. Both
//! deal the run's requests to the connections in turn (request i to
//! connection i mod C), so only the spacing differs.
//!
//! The Poisson schedule is drawn once, before the run, from `--seed`
//! ([`PoissonSchedule::draw`]), and kept whole: each connection looks its
//! k-th request up by index, and counting a connection's requests due before
//! an instant (at the run's hard stop: `Plan::due_before`) stays a bisection
//! of at most 64 look-ups, as for `uniform`, at any rate. A generator per
//! connection would hold no memory, but could only walk its schedule one
//! request at a time, which at a high rate cut off at the hard stop is
//! billions of steps (issue 19, item 6).
//!
//! The cost is memory: [`BYTES_PER_ARRIVAL`] each, so a million arrivals
//! take 8 MiB, as much as about 400 connections' read buffers, and the
//! schedule is refused before the run beyond [`MAX_POISSON_ARRIVALS`] or
//! the memory left ([`check_poisson`]).

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use runs::{Arrivals, format};

use super::limits::MemoryRoom;

/// Parses `--arrivals`: `uniform` or `poisson`.
pub fn parse(text: &str) -> Result<Arrivals, String> {
    [Arrivals::Uniform, Arrivals::Poisson]
        .into_iter()
        .find(|arrivals| arrivals.name() == text)
        .ok_or_else(|| format!("{text:?} is not an arrival process: uniform or poisson"))
}

/// The memory one precomputed arrival takes: its time from the run's start,
/// in nanoseconds (a `u64`, the resolution of `Instant`).
pub const BYTES_PER_ARRIVAL: u64 = 8;

/// The most arrivals a Poisson schedule is drawn for: 2^24, about 16.8
/// million, 128 MiB at [`BYTES_PER_ARRIVAL`]. That is `--rate 100k` (the
/// most a server on a 2-core load generator's machine answers) for 2 min 47 s
/// of warm-up and duration, or `--rate 10k` for 28 minutes; a longer or
/// faster run takes `--arrivals uniform`, which holds no schedule. Beyond
/// it, memory and time begin to matter: drawing them takes about 70 ns
/// each (a logarithm, measured on the suite's 2-core machine: 2^26 in
/// 4.7 s), over a second here, all before the run's clock starts.
pub const MAX_POISSON_ARRIVALS: u64 = 1 << 24;

/// The stream of the seed that the arrivals are drawn from, apart from the
/// `--mix` generators of the same `--seed` (each seeded with the seed and
/// a connection's index): the same seed does not make the paths and the
/// gaps the same numbers.
const ARRIVALS_STREAM: u64 = 0xA881_7A15_5EED_0001;

/// How many arrivals a Poisson schedule at `rate_per_s` over `span` (the
/// warm-up and the duration: no request is due after it) holds on average.
pub fn expected_arrivals(rate_per_s: f64, span: Duration) -> f64 {
    rate_per_s * span.as_secs_f64()
}

/// Refuses, before the run, a Poisson schedule that could not be held: more
/// than [`MAX_POISSON_ARRIVALS`], or more memory than `memory` (when known)
/// less `other_bytes` (the connections' own). `Err` is the usage error's
/// line.
pub fn check_poisson(
    rate_per_s: f64,
    span: Duration,
    other_bytes: u64,
    memory: Option<MemoryRoom>,
) -> Result<(), String> {
    let expected = expected_arrivals(rate_per_s, span);
    let refuse = |why: String| {
        Err(format!(
            "--arrivals poisson at --rate {rate_per_s} over --warmup + --duration ({:.1} s) \
             is about {expected:.0} arrivals to draw before the run ({BYTES_PER_ARRIVAL} \
             bytes each), {why}: lower --rate or --duration, or take --arrivals uniform, \
             which holds no schedule",
            span.as_secs_f64(),
        ))
    };
    if expected > MAX_POISSON_ARRIVALS as f64 {
        return refuse(format!(
            "more than the {MAX_POISSON_ARRIVALS} ({}) loadgen draws",
            format::bytes(MAX_POISSON_ARRIVALS * BYTES_PER_ARRIVAL)
        ));
    }
    let bytes = (capacity(expected) as u64).saturating_mul(BYTES_PER_ARRIVAL);
    if let Some(memory) = memory {
        if bytes.saturating_add(other_bytes) > memory.bytes {
            return refuse(format!(
                "{} with the connections' {}, more than the {} loadgen may still take ({})",
                format::bytes(bytes),
                format::bytes(other_bytes),
                format::bytes(memory.bytes),
                memory.source
            ));
        }
    }
    Ok(())
}

/// The arrivals a schedule of `expected` on average is drawn for at most:
/// ten standard deviations over the mean (a Poisson count's is its square
/// root), which a run exceeds with a probability below 10^-23. Beyond it the
/// schedule would end early: the later requests of the window not due at
/// all.
fn capacity(expected: f64) -> usize {
    (expected + 10.0 * expected.sqrt() + 16.0).ceil() as usize
}

/// A Poisson schedule: every arrival of the run, in order, drawn before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoissonSchedule {
    /// Arrival i's time from the run's start, ns; every one before the end
    /// of the window.
    arrivals_ns: Box<[u64]>,
}

impl PoissonSchedule {
    /// Draws the arrivals of a Poisson process at `rate_per_s` over `span`
    /// (from the run's start to the window's end), from `seed`: each gap
    /// is -ln(U)/rate for U uniform in (0, 1], an exponential of mean
    /// 1/rate. The same seed draws the same schedule (with the same
    /// loadgen: `Cargo.lock` pins the generator, `rand`'s `SmallRng`).
    ///
    /// The times add up in `f64` seconds, exact to well under a nanosecond
    /// over any span a duration flag allows (a day is 8.6e13 ns, below
    /// 2^53), and each is rounded to the nanosecond.
    pub fn draw(rate_per_s: f64, span: Duration, seed: u64) -> PoissonSchedule {
        let mut generator = SmallRng::seed_from_u64(seed ^ ARRIVALS_STREAM);
        let span_s = span.as_secs_f64();
        let limit = capacity(expected_arrivals(rate_per_s, span));
        let mut arrivals_ns = Vec::with_capacity(limit.min(MAX_POISSON_ARRIVALS as usize));
        let mut at_s = 0.0;
        while arrivals_ns.len() < limit {
            // random() is in [0, 1): 1 - it is in (0, 1], whose logarithm is finite.
            let uniform = 1.0 - generator.random::<f64>();
            at_s += -uniform.ln() / rate_per_s;
            // Also ends a gap too long for an f64 (a tiny rate: infinity).
            if at_s >= span_s {
                break;
            }
            arrivals_ns.push((at_s * 1e9).round() as u64);
        }
        PoissonSchedule {
            arrivals_ns: arrivals_ns.into_boxed_slice(),
        }
    }

    /// When the run's arrival `index` is due, ns from the run's start;
    /// `None` past the last (at or after the window's end).
    pub fn due_ns(&self, index: u64) -> Option<u64> {
        let index = usize::try_from(index).ok()?;
        self.arrivals_ns.get(index).copied()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The mean and the coefficient of variation (standard deviation over
    /// mean) of the gaps between `times`, in order.
    pub(crate) fn gap_statistics(times: &[u64]) -> (f64, f64) {
        let gaps: Vec<f64> = times
            .windows(2)
            .map(|pair| (pair[1] - pair[0]) as f64)
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let variance = gaps.iter().map(|gap| (gap - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        (mean, variance.sqrt() / mean)
    }

    /// A Poisson schedule holds the rate over the span (within a few %: a
    /// count of 20,000 arrivals spreads by 0.7 %), its gaps vary as an
    /// exponential's (coefficient of variation 1, within 0.05), and the same
    /// seed draws the same schedule, another seed another one.
    #[test]
    fn poisson_holds_the_rate_with_exponential_gaps_reproducibly() {
        let span = Duration::from_secs(20);
        let schedule = PoissonSchedule::draw(1000.0, span, 7);
        let rate = schedule.arrivals_ns.len() as f64 / span.as_secs_f64();
        assert!(
            (970.0..=1030.0).contains(&rate),
            "{rate} arrivals/s of 1000"
        );
        let (mean_ns, cv) = gap_statistics(&schedule.arrivals_ns);
        assert!(
            (0.97e6..=1.03e6).contains(&mean_ns),
            "mean gap {mean_ns} ns"
        );
        assert!((0.95..=1.05).contains(&cv), "coefficient of variation {cv}");
        assert!(schedule.arrivals_ns.is_sorted());
        assert!(
            schedule
                .arrivals_ns
                .last()
                .is_some_and(|&last| last < 20_000_000_000)
        );
        assert_eq!(schedule, PoissonSchedule::draw(1000.0, span, 7));
        assert_ne!(schedule, PoissonSchedule::draw(1000.0, span, 8));
        assert_eq!(schedule.due_ns(0), schedule.arrivals_ns.first().copied());
        assert_eq!(schedule.due_ns(schedule.arrivals_ns.len() as u64), None);
        assert_eq!(schedule.due_ns(u64::MAX), None);
    }

    /// A rate so low that its first gap outlasts the span, or overflows an
    /// f64, draws an empty schedule rather than a time past the window.
    #[test]
    fn a_tiny_rate_draws_no_arrival() {
        let schedule = PoissonSchedule::draw(1e-300, Duration::from_secs(1), 0);
        assert_eq!(schedule.arrivals_ns.len(), 0);
        assert_eq!(schedule.due_ns(0), None);
    }

    /// Regression guard for the bound: a schedule beyond
    /// [`MAX_POISSON_ARRIVALS`] or the memory left is refused with a line
    /// that says why and what to do; one within both is accepted.
    #[test]
    fn refuses_a_schedule_that_cannot_be_held() {
        let plenty = Some(MemoryRoom {
            bytes: u64::MAX,
            source: "test",
        });
        let minute = Duration::from_secs(60);
        assert_eq!(check_poisson(100_000.0, minute, 0, plenty), Ok(()));
        assert_eq!(check_poisson(100_000.0, minute, 0, None), Ok(()));
        let refused = check_poisson(1e9, minute, 0, plenty).expect_err("60 billion arrivals");
        assert!(refused.contains("more than the 16777216"), "{refused}");
        assert!(refused.contains("--arrivals uniform"), "{refused}");
        let little = Some(MemoryRoom {
            bytes: 8 * 1024 * 1024,
            source: "RLIMIT_AS",
        });
        let refused = check_poisson(100_000.0, minute, 0, little).expect_err("48 MB");
        assert!(refused.contains("RLIMIT_AS"), "{refused}");
        assert_eq!(check_poisson(1000.0, minute, 0, little), Ok(()));
        let refused =
            check_poisson(1000.0, minute, 8 * 1024 * 1024, little).expect_err("no room left");
        assert!(refused.contains("with the connections'"), "{refused}");
    }

    /// `--arrivals` takes the two names the JSON gives them.
    #[test]
    fn parses_the_arrival_processes() {
        assert_eq!(parse("uniform"), Ok(Arrivals::Uniform));
        assert_eq!(parse("poisson"), Ok(Arrivals::Poisson));
        assert!(parse("Poisson").is_err());
        assert!(parse("").is_err());
    }
}
