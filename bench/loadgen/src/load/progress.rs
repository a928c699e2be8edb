//! The progress bar on stderr while a run lasts (indicatif), shown only when
//! stderr is a terminal, so that logs and CI output stay clean.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over the run's planned time, with the requests finished so far.
pub struct Progress {
    /// The bar, drawn on stderr.
    bar: ProgressBar,
    /// Each load thread's count of finished requests.
    counters: Vec<Arc<AtomicU64>>,
    /// When the run started.
    start: Instant,
    /// The count and time of the previous tick, for the current rate.
    last: (u64, Instant),
}

impl Progress {
    /// A bar for a run of `planned` (warm-up and duration) starting at `start`.
    pub fn new(counters: Vec<Arc<AtomicU64>>, start: Instant, planned: Duration) -> Progress {
        let bar = ProgressBar::with_draw_target(
            Some(planned.as_millis().try_into().unwrap_or(u64::MAX)),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = ProgressStyle::with_template("{elapsed:>4} {wide_bar} {msg}") {
            bar.set_style(style);
        }
        Progress {
            bar,
            counters,
            start,
            last: (0, start),
        }
    }

    /// `--hold`: a bar over the `total` connections to open, counted on
    /// `counters` as each opens or fails.
    pub fn opening(counters: Vec<Arc<AtomicU64>>, total: usize) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{elapsed:>4} {wide_bar} {pos}/{len} connections opened")
        {
            bar.set_style(style);
        }
        Progress {
            bar,
            counters,
            start: Instant::now(),
            last: (0, Instant::now()),
        }
    }

    /// `--hold`: redraws the opening bar with the connections tried so far.
    pub fn tick_opening(&self) {
        let tried: u64 = self
            .counters
            .iter()
            .map(|counter| counter.load(Ordering::Relaxed))
            .sum();
        self.bar.set_position(tried);
    }

    /// Redraws the bar with the time elapsed and the current rate.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let finished: u64 = self
            .counters
            .iter()
            .map(|counter| counter.load(Ordering::Relaxed))
            .sum();
        let seconds = now.duration_since(self.last.1).as_secs_f64();
        if seconds > 0.0 {
            let rate = (finished - self.last.0.min(finished)) as f64 / seconds;
            self.bar
                .set_message(format!("{finished} requests, {rate:.0}/s"));
        }
        self.last = (finished, now);
        let elapsed = now.duration_since(self.start).as_millis();
        self.bar
            .set_position(elapsed.try_into().unwrap_or(u64::MAX));
    }

    /// Removes the bar, before the summary is printed.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
