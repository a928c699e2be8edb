//! The SVG charts of REPORT.md, one file each behind one trait, [`Chart`]
//! (criterion's habit), all drawn in the one style of `crate::style`:
//!
//! | file | section | module | what it shows |
//! |---|---|---|---|
//! | `cost-vs-rate.svg` | §0 | [`cost_vs_rate`] | the whole tree's CPU per request against the offered rate, per mode, whiskers over the rounds, steps not held hollow and not joined |
//! | `rounds.svg` | §1 | [`rounds`] | every round of §1 per mode, a dot a round: requests/s and the whole tree's CPU per request |
//! | `latency-vs-rate.svg` | §1b | [`latency_vs_rate`] | p99 against the offered rate, per mode, keep-alive and a new connection per request on one latency scale |
//! | `copies.svg` | §1c | [`copies`] | the whole tree's CPU per MiB moved against the answer's size, per server (`proxy` once per `--relay`), both axes log |
//! | `fds.svg` | §2 | [`fds`] | the master's and the whole tree's fds against the connections held, log-log, each mode's line marked where it stopped |
//! | `memory.svg` | §2 | [`memory`] | the whole tree's memory against the connections held, user space and kernel, log-log |
//! | `fairness.svg` | §4 | [`fairness`] | each worker's share of the connections and requests, per way of sharing the port |
//! | `stall.svg` | §4 | [`stall`] | p99 with a stalled worker: every request's, the stalled worker's, the worst other's |
//! | `queues.svg` | §4 | [`queues`] | each listener's accept queue over a stall run, a panel per way of sharing the port, the stalls shaded |
//! | `cost-per-request.svg` | §5 | [`cost`] | CPU per request, the master's and the workers' stacked |
//! | `master-fds-over-time.svg` | §5 | [`master_fds`] | the master's fds over one new-connection run per mode |
//! | `upgrade-failures.svg` | §8 | [`upgrade_failures`] | failed requests per upgrade, per mode and strategy |
//! | `upgrade-timeline.svg` | §8 | [`upgrade_timeline`] | requests/s around an upgrade, by the generation that answered |
//!
//! A section builds a chart only when it has data to draw (its constructor
//! returns `None` otherwise), and both the section's text and the list of
//! files written take the chart from that one constructor: the text links
//! exactly the charts that are written.

pub mod copies;
pub mod cost;
pub mod cost_vs_rate;
pub mod fairness;
pub mod fds;
pub mod latency_vs_rate;
pub mod master_fds;
pub mod memory;
pub mod queues;
pub mod rounds;
pub mod scale;
pub mod stall;
pub mod upgrade_failures;
pub mod upgrade_timeline;

/// A chart of REPORT.md: one SVG file beside it, drawn from a section's
/// figures.
pub trait Chart {
    /// Its file name beside REPORT.md, as the text links it.
    fn file(&self) -> &'static str;
    /// What it shows, in words: the text of its link in REPORT.md.
    fn alt(&self) -> String;
    /// The SVG text.
    fn draw(&self) -> anyhow::Result<String>;
}

/// The runs of consecutive held `items` (`held`), each of two or more: the
/// pieces of a line a chart draws. An item not held is in none, so the line
/// stops before it and starts again after it: a step not held shows a lower
/// bound or a server behind the schedule, not a value to join.
pub fn held_runs<T>(items: &[T], held: impl Fn(&T) -> bool) -> Vec<&[T]> {
    items
        .split(|item| !held(item))
        .filter(|segment| segment.len() >= 2)
        .collect()
}

/// `chart` boxed, to stand in a section's list beside charts of other types.
pub fn boxed<'a>(chart: impl Chart + 'a) -> Box<dyn Chart + 'a> {
    Box::new(chart)
}
