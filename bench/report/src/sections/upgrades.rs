//! §8, upgrades: a running master replaced by a new one under load
//! (`suite upgrade`, `bench/suite/src/upgrade.rs`), per mode and strategy: failed requests and the
//! longest latency around each upgrade and away from them, how long the new
//! master took to be ready and the old one to exit. Its charts:
//! `upgrade-failures.svg` and `upgrade-timeline.svg`.

use std::collections::BTreeMap;

use runs::format::{count, rate};
use runs::labels::{Mode, Strategy};
use runs::{Report, Timeline, TimelineInterval, UpgradeEvent};

use super::Figures;
use crate::charts::upgrade_failures::UpgradeFailuresChart;
use crate::charts::upgrade_timeline::UpgradeTimelineChart;
use crate::charts::{Chart, boxed};
use crate::stats::{Failures, Spread, group};
use crate::text::{and_list, image, nothing, one_of, teach, w};

/// The heading, as links to it are written.
pub const HEADING: &str = "8. Upgrades";

/// Section 8: "around an upgrade" begins this long before it began, ms.
pub const AROUND_BEFORE_MS: f64 = 100.0;
/// ... and ends this long after the later of the new master's `ready` and
/// the old master's exit, ms (the queue a start-up left behind drains).
pub const AROUND_AFTER_MS: f64 = 500.0;
/// Section 8's timeline chart: from this long before the first upgrade, s.
const TIMELINE_BEFORE_S: f64 = 0.5;
/// ... to this long after it began, s.
const TIMELINE_AFTER_S: f64 = 1.5;

/// Section 8: one mode upgraded by one strategy, over every run and upgrade.
#[derive(Debug, Clone)]
pub struct UpgradeRow {
    /// The mode.
    pub mode: Mode,
    /// How the master was replaced.
    pub strategy: Strategy,
    /// Upgrades made, all runs.
    pub upgrades: usize,
    /// The open-loop rate, requests/s (of the first run).
    pub rate_per_s: Option<f64>,
    /// Requests failed or never answered, all runs.
    pub failed: u64,
    /// Failures by kind, all runs, the kinds that occurred.
    pub kinds: Vec<(String, u64)>,
    /// Failed requests around each upgrade (see [`AROUND_BEFORE_MS`]).
    pub failed_per_upgrade: Option<Spread>,
    /// The longest latency around each upgrade, ms.
    pub longest_ms: Option<Spread>,
    /// The longest latency away from every upgrade, ms: what the load costs
    /// without one.
    pub away_ms: Option<f64>,
    /// From the new master's start to its `ready`, ms.
    pub ready_ms: Option<Spread>,
    /// From the upgrade's start to the old master's exit, ms (for
    /// `restart`: from the SIGTERM).
    pub old_exit_ms: Option<Spread>,
    /// From the old master's exit to the script's start of the new master
    /// (before its exec and bind), ms: for `restart` the wait between them;
    /// negative where the new one started first (every other strategy).
    pub exit_to_start_ms: Option<Spread>,
    /// Old masters whose exit was not 0 (a signal, or a failure).
    pub old_exit_not_zero: usize,
    /// Workers' `--init-delay`, ms (of the first run).
    pub init_delay_ms: f64,
    /// `net.ipv4.tcp_migrate_req` where it ran (of the first run).
    pub tcp_migrate_req: Option<u8>,
    /// Whether it ran in a network namespace of its own.
    pub netns: bool,
    /// The kernel (of the first run).
    pub kernel: String,
}

/// One run's requests/s over time around its first upgrade, by generation.
#[derive(Debug, Clone)]
pub struct UpgradeTimeline {
    /// The mode.
    pub mode: Mode,
    /// How the master was replaced.
    pub strategy: Strategy,
    /// Answers/s of the old master's workers: (s from the upgrade's start,
    /// requests/s), one point per interval.
    pub old: Vec<(f64, f64)>,
    /// Answers/s of the new master's workers.
    pub new: Vec<(f64, f64)>,
    /// Failed requests/s.
    pub failed: Vec<(f64, f64)>,
    /// When it printed `ready`.
    pub new_ready_s: f64,
    /// When the old master exited.
    pub old_exit_s: f64,
}

/// §8's figures.
#[derive(Debug, Clone, Default)]
pub struct Upgrades {
    /// One row per mode and strategy.
    pub rows: Vec<UpgradeRow>,
    /// The timeline chart's: one run per strategy of one mode, around its
    /// first upgrade.
    pub timelines: Vec<UpgradeTimeline>,
}

impl Upgrades {
    /// The figures of §8's runs.
    pub fn of(runs: &[&Report]) -> Upgrades {
        Upgrades {
            rows: upgrades(runs),
            timelines: upgrade_timelines(runs),
        }
    }
}

/// The timeline intervals (index, slot) whose span overlaps `[from, to)`,
/// Unix ms.
fn intervals_within(
    timeline: &Timeline,
    from: f64,
    to: f64,
) -> impl Iterator<Item = (usize, &TimelineInterval)> {
    let width = timeline.interval_ms.max(f64::MIN_POSITIVE);
    timeline
        .intervals
        .iter()
        .enumerate()
        .filter(move |(index, _)| {
            let start = timeline.start_unix_ms + *index as f64 * width;
            start < to && start + width > from
        })
}

/// The span of `event` that counts as around it, Unix ms, ended at `next`
/// (the next upgrade's start) at the latest.
fn around(event: &UpgradeEvent, next: Option<f64>) -> (f64, f64) {
    let settled = event.new_ready_ms.max(event.old_exit_ms) + AROUND_AFTER_MS;
    let to = event.at_unix_ms + settled;
    (
        event.at_unix_ms - AROUND_BEFORE_MS,
        next.map_or(to, |next| to.min(next - AROUND_BEFORE_MS)),
    )
}

/// Section 8's rows: per mode and strategy, the runs with an `upgrades`
/// block and a `timeline`.
fn upgrades(runs: &[&Report]) -> Vec<UpgradeRow> {
    let groups = group(runs, |run| {
        run.upgrades.as_ref()?;
        run.timeline.as_ref()?;
        Some((run.labels.mode?, run.labels.strategy?))
    });
    groups
        .into_iter()
        .filter_map(|((mode, strategy), runs)| {
            let first = runs[0].upgrades.as_ref()?;
            let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
            let (mut failed_around, mut longest, mut ready, mut exits) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut exit_to_start = Vec::new();
            let mut away: Option<u64> = None;
            let mut not_zero = 0;
            for run in &runs {
                let (Some(upgrades), Some(timeline)) = (&run.upgrades, &run.timeline) else {
                    continue;
                };
                for (kind, count) in crate::stats::kinds(&[run]) {
                    *kinds.entry(kind).or_default() += count;
                }
                let mut inside = vec![false; timeline.intervals.len()];
                for (index, event) in upgrades.events.iter().enumerate() {
                    let next = upgrades.events.get(index + 1).map(|next| next.at_unix_ms);
                    let (from, to) = around(event, next);
                    let mut failed = 0;
                    let mut most: Option<u64> = None;
                    for (at, slot) in intervals_within(timeline, from, to) {
                        inside[at] = true;
                        failed += slot.failed.values().sum::<u64>();
                        most = most.max(slot.max_latency_us);
                    }
                    failed_around.push(failed as f64);
                    if let Some(most) = most {
                        longest.push(most as f64 / 1000.0);
                    }
                    ready.push(event.new_ready_ms - event.new_start_ms);
                    exits.push(event.old_exit_ms);
                    exit_to_start.push(event.new_start_ms - event.old_exit_ms);
                    not_zero += usize::from(event.old_exit_code != Some(0));
                }
                for (slot, inside) in timeline.intervals.iter().zip(inside) {
                    if !inside {
                        away = away.max(slot.max_latency_us);
                    }
                }
            }
            Some(UpgradeRow {
                mode,
                strategy,
                upgrades: ready.len(),
                rate_per_s: runs[0].parameters.rate_per_s,
                failed: Failures::of(&runs).total(),
                kinds: kinds.into_iter().collect(),
                failed_per_upgrade: Spread::of(failed_around),
                longest_ms: Spread::of(longest),
                away_ms: away.map(|us| us as f64 / 1000.0),
                ready_ms: Spread::of(ready),
                old_exit_ms: Spread::of(exits),
                exit_to_start_ms: Spread::of(exit_to_start),
                old_exit_not_zero: not_zero,
                init_delay_ms: first.init_delay_ms,
                tcp_migrate_req: first.tcp_migrate_req,
                netns: first.netns,
                kernel: first.kernel.clone(),
            })
        })
        .collect()
}

/// Section 8's chart: for `handoff-reuseport` (every strategy applies to
/// it), else the first mode upgraded, the first run of each strategy
/// around its first upgrade.
fn upgrade_timelines(runs: &[&Report]) -> Vec<UpgradeTimeline> {
    let usable: Vec<&Report> = runs
        .iter()
        .copied()
        .filter(|run| {
            run.timeline.is_some()
                && run.upgrades.as_ref().is_some_and(|u| !u.events.is_empty())
                && run.labels.strategy.is_some()
        })
        .collect();
    let reuseport = Mode::HandoffReuseport;
    let Some(mode) = usable
        .iter()
        .filter_map(|run| run.labels.mode)
        .find(|mode| *mode == reuseport)
        .or_else(|| usable.iter().filter_map(|run| run.labels.mode).min())
    else {
        return Vec::new();
    };
    let by_strategy = group(&usable, |run| {
        (run.labels.mode == Some(mode)).then_some(run.labels.strategy)?
    });
    by_strategy
        .into_iter()
        .filter_map(|(strategy, runs)| {
            let run = runs[0];
            let (timeline, upgrades) = (run.timeline.as_ref()?, run.upgrades.as_ref()?);
            let event = upgrades.events.first()?;
            let per_s = 1000.0 / timeline.interval_ms.max(f64::MIN_POSITIVE);
            let (mut old, mut new, mut failed) = (Vec::new(), Vec::new(), Vec::new());
            let from = event.at_unix_ms - TIMELINE_BEFORE_S * 1000.0;
            let next = upgrades
                .events
                .get(1)
                .map_or(f64::INFINITY, |next| next.at_unix_ms - AROUND_BEFORE_MS);
            let to = (event.at_unix_ms + TIMELINE_AFTER_S * 1000.0).min(next);
            for (index, slot) in intervals_within(timeline, from, to) {
                let middle = timeline.start_unix_ms + (index as f64 + 0.5) * timeline.interval_ms;
                let t = (middle - event.at_unix_ms) / 1000.0;
                let of = |pids: &[u32]| -> f64 {
                    slot.ok_by_pid
                        .iter()
                        .filter(|(pid, _)| pids.contains(pid))
                        .map(|(_, count)| *count as f64)
                        .sum::<f64>()
                        * per_s
                };
                old.push((t, of(&event.old_workers)));
                new.push((t, of(&event.new_workers)));
                failed.push((t, slot.failed.values().sum::<u64>() as f64 * per_s));
            }
            Some(UpgradeTimeline {
                mode,
                strategy,
                old,
                new,
                failed,
                new_ready_s: event.new_ready_ms / 1000.0,
                old_exit_s: event.old_exit_ms / 1000.0,
            })
        })
        .collect()
}

/// The chart of failed requests per upgrade, if there are rows.
fn failures_chart(figures: &Figures) -> Option<UpgradeFailuresChart<'_>> {
    let rows = &figures.upgrades.rows;
    (!rows.is_empty()).then_some(UpgradeFailuresChart { rows })
}

/// The chart of requests/s around an upgrade, if a run has a timeline.
fn timeline_chart(figures: &Figures) -> Option<UpgradeTimelineChart<'_>> {
    let lines = &figures.upgrades.timelines;
    (!lines.is_empty()).then_some(UpgradeTimelineChart { lines })
}

/// §8's charts, in the order its text links them.
pub fn charts(figures: &Figures) -> Vec<Box<dyn Chart + '_>> {
    [
        failures_chart(figures).map(boxed),
        timeline_chart(figures).map(boxed),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `12 ms (max 30)`, or `–`.
fn ms_median_max(spread: Option<Spread>) -> String {
    match spread {
        Some(spread) if spread.count > 1 => {
            format!("{:.0} ms (max {:.0})", spread.median, spread.max)
        }
        Some(spread) => format!("{:.0} ms", spread.median),
        None => "–".to_owned(),
    }
}

/// What a strategy does, for the section's opening.
fn strategy_text(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Takeover => {
            "the new master takes the listening sockets over SCM_RIGHTS (`--takeover`); the \
             socket never stops listening"
        }
        Strategy::Restart => {
            "SIGTERM to the old master, wait for its exit, start the new one on the same port"
        }
        Strategy::Overlap => {
            "`handoff-reuseport` only: a second master binds its own `SO_REUSEPORT` listeners \
             on the port; at its `ready`, SIGTERM to the old one"
        }
        Strategy::OverlapMigrate => {
            "the same, in a network namespace of its own with `net.ipv4.tcp_migrate_req=1` \
             (a closing listener's queued connections move to the other listeners)"
        }
    }
}

/// §8: the strategies, a row per mode and strategy, its charts and what
/// they teach.
pub fn markdown(out: &mut String, figures: &Figures) {
    w!(out, "## {HEADING}");
    w!(out);
    let rows = &figures.upgrades.rows;
    let Some(first) = rows.first() else {
        w!(
            out,
            "A running master replaced by a new one under load (`suite upgrade`, `bench/suite/src/upgrade.rs`)."
        );
        w!(out);
        nothing(out, "upgrade");
        return;
    };
    let mut upgrades: Vec<usize> = rows.iter().map(|row| row.upgrades).collect();
    upgrades.sort_unstable();
    upgrades.dedup();
    w!(
        out,
        "A running master replaced by a new one under load, by `suite upgrade` (`bench/suite/src/upgrade.rs`): an open \
         loop at {} requests/s, a new connection per request, {} upgrade(s) per mode and \
         strategy, each worker taking `--init-delay` {:.0} ms to start (a real server's \
         start-up). The strategies:",
        first.rate_per_s.map_or("?".to_owned(), rate),
        one_of(&upgrades),
        first.init_delay_ms
    );
    w!(out);
    let mut strategies: Vec<Strategy> = rows.iter().map(|row| row.strategy).collect();
    strategies.sort();
    strategies.dedup();
    for strategy in &strategies {
        w!(out, "- `{strategy}`: {}.", strategy_text(*strategy));
    }
    w!(out);
    let settings: Vec<String> = rows
        .iter()
        .filter(|row| matches!(row.strategy, Strategy::Overlap | Strategy::OverlapMigrate))
        .map(|row| {
            format!(
                "`{}` ran with `net.ipv4.tcp_migrate_req = {}` ({})",
                row.strategy,
                row.tcp_migrate_req
                    .map_or("unknown".to_owned(), |v| v.to_string()),
                if row.netns {
                    "in a network namespace of its own"
                } else {
                    "in the host's network namespace"
                }
            )
        })
        .collect();
    if !settings.is_empty() {
        w!(out, "Kernel {}: {}.", first.kernel, settings.join("; "));
        w!(out);
    }
    w!(
        out,
        "_Around an upgrade: from {AROUND_BEFORE_MS:.0} ms before it began to \
         {AROUND_AFTER_MS:.0} ms after the later of the new master's `ready` and the old \
         master's exit. Latency counts from each request's intended start. One run per cell: \
         each figure is a median over its upgrades, not over rounds._"
    );
    w!(out);
    w!(
        out,
        "| mode | strategy | upgrades | failed requests (per upgrade, median) | failures by kind | \
         longest latency around an upgrade | longest latency away from upgrades | new master: \
         start → ready | upgrade start → old master's exit |"
    );
    w!(out, "|---|---|---:|---:|---|---:|---:|---:|---:|");
    for row in rows {
        let kinds: Vec<String> = row
            .kinds
            .iter()
            .map(|(kind, n)| format!("{kind} {}", count(*n)))
            .collect();
        w!(
            out,
            "| {} | {} | {} | {} ({}) | {} | {} | {} | {} | {}{} |",
            row.mode,
            row.strategy,
            row.upgrades,
            count(row.failed),
            row.failed_per_upgrade
                .map_or("–".to_owned(), |spread| format!("{:.0}", spread.median)),
            if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds.join(", ")
            },
            ms_median_max(row.longest_ms),
            row.away_ms
                .map_or("–".to_owned(), |ms| format!("{ms:.0} ms")),
            ms_median_max(row.ready_ms),
            ms_median_max(row.old_exit_ms),
            if row.old_exit_not_zero > 0 {
                format!(", {} not exit 0", row.old_exit_not_zero)
            } else {
                String::new()
            },
        );
    }
    w!(out);
    for chart in charts(figures) {
        image(out, chart.as_ref());
    }
    let mut lessons = upgrade_lessons(rows);
    lessons.extend(restart_lesson(rows));
    lessons.extend(migrate_lesson(rows));
    teach(out, &lessons);
}

/// `low–high` of a figure over rows, or one value when they agree.
fn range_of(values: impl Iterator<Item = f64>, decimals: usize) -> Option<String> {
    let spread = Spread::of(values)?;
    let (low, high) = (
        format!("{:.decimals$}", spread.min),
        format!("{:.decimals$}", spread.max),
    );
    Some(if low == high {
        low
    } else {
        format!("{low}–{high}")
    })
}

/// What a restart's refusals line up with, from its rows: the requests
/// refused per upgrade as milliseconds of arrivals at the rate, beside the
/// time from the SIGTERM to the old master's exit (`old_exit_ms`) and from
/// that exit to the script's start of the new master (`new_start_ms`, taken
/// before its exec: its bind comes later and is not recorded). Figures side
/// by side, not a cause measured.
fn restart_lesson(rows: &[UpgradeRow]) -> Option<String> {
    let restarts: Vec<&UpgradeRow> = rows
        .iter()
        .filter(|row| row.strategy == Strategy::Restart)
        .collect();
    let rate_per_s = restarts.first()?.rate_per_s?;
    let per_upgrade: Vec<f64> = restarts
        .iter()
        .filter_map(|row| Some(row.failed_per_upgrade?.median))
        .collect();
    let refused = range_of(per_upgrade.iter().copied(), 0)?;
    let arrivals = range_of(
        per_upgrade
            .iter()
            .map(|n| n / rate_per_s.max(1e-9) * 1000.0),
        0,
    )?;
    let exit = range_of(
        restarts
            .iter()
            .filter_map(|row| Some(row.old_exit_ms?.median)),
        0,
    )?;
    let gaps: Vec<f64> = restarts
        .iter()
        .filter_map(|row| Some(row.exit_to_start_ms?.median))
        .collect();
    let gap = range_of(gaps.into_iter(), 0)?;
    Some(format!(
        "A `restart` failed {refused} requests per upgrade (the median per mode), {arrivals} ms \
         of arrivals at {}/s. From the SIGTERM (the upgrade's start) to the old master's exit \
         took {exit} ms, and the script started the new master {gap} ms after that exit \
         (medians per mode); when the new master bound the port after its start is not \
         recorded.",
        rate(rate_per_s)
    ))
}

/// Whether the runs credit `net.ipv4.tcp_migrate_req`: `overlap` (as the
/// host has it) against `overlap-migrate` (set to 1), per mode, by their
/// failures per upgrade: a difference only when every upgrade of one failed
/// more than every upgrade of the other, as two modes compare by rounds.
fn migrate_lesson(rows: &[UpgradeRow]) -> Vec<String> {
    rows.iter()
        .filter(|row| row.strategy == Strategy::Overlap)
        .filter_map(|overlap| {
            let migrate = rows
                .iter()
                .find(|row| row.mode == overlap.mode && row.strategy == Strategy::OverlapMigrate)?;
            let (a, b) = (overlap.failed_per_upgrade?, migrate.failed_per_upgrade?);
            let setting = |row: &UpgradeRow| {
                row.tcp_migrate_req
                    .map_or("unknown".to_owned(), |value| value.to_string())
            };
            let verdict = if a.min > b.max {
                format!(
                    "every upgrade with it at {} failed more than every upgrade with it at {}",
                    setting(overlap),
                    setting(migrate)
                )
            } else if b.min > a.max {
                format!(
                    "every upgrade with it at {} failed more than every upgrade with it at {}",
                    setting(migrate),
                    setting(overlap)
                )
            } else {
                format!(
                    "the failures per upgrade overlap ({:.0}–{:.0} against {:.0}–{:.0}), so \
                     these runs do not credit `net.ipv4.tcp_migrate_req` with a difference",
                    a.min, a.max, b.min, b.max
                )
            };
            Some(format!(
                "`{}` with `net.ipv4.tcp_migrate_req = {}` (`overlap`) failed {} request(s) in \
                 {} upgrade(s), with it at {} (`overlap-migrate`) {} in {}: {verdict}.",
                overlap.mode,
                setting(overlap),
                count(overlap.failed),
                overlap.upgrades,
                setting(migrate),
                count(migrate.failed),
                migrate.upgrades
            ))
        })
        .collect()
}

/// What section 8 shows, strategy by strategy, from its rows.
fn upgrade_lessons(rows: &[UpgradeRow]) -> Vec<String> {
    let mut strategies: Vec<Strategy> = rows.iter().map(|row| row.strategy).collect();
    strategies.sort();
    strategies.dedup();
    let mut lessons = Vec::new();
    for strategy in strategies {
        let of: Vec<&UpgradeRow> = rows.iter().filter(|row| row.strategy == strategy).collect();
        let upgrades: usize = of.iter().map(|row| row.upgrades).sum();
        let failed: u64 = of.iter().map(|row| row.failed).sum();
        let modes: Vec<String> = of.iter().map(|row| format!("`{}`", row.mode)).collect();
        let longest = of
            .iter()
            .filter_map(|row| row.longest_ms.map(|spread| spread.max))
            .fold(None, |most: Option<f64>, ms| {
                Some(most.map_or(ms, |m| m.max(ms)))
            });
        let longest = longest.map_or(String::new(), |ms| {
            format!("; the longest latency around an upgrade was {ms:.0} ms at most")
        });
        if failed == 0 {
            lessons.push(format!(
                "`{strategy}` failed no request in {upgrades} upgrade(s) of {}{longest}.",
                and_list(&modes)
            ));
        } else {
            let mut kinds: Vec<(String, u64)> = Vec::new();
            for row in &of {
                for (kind, n) in &row.kinds {
                    match kinds.iter_mut().find(|(k, _)| k == kind) {
                        Some(entry) => entry.1 += n,
                        None => kinds.push((kind.clone(), *n)),
                    }
                }
            }
            let kinds: Vec<String> = kinds
                .iter()
                .map(|(kind, n)| format!("{kind} {}", count(*n)))
                .collect();
            lessons.push(format!(
                "`{strategy}` failed {} request(s) in {upgrades} upgrade(s) of {} ({}){longest}.",
                count(failed),
                and_list(&modes),
                kinds.join(", ")
            ));
        }
    }
    lessons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::run;

    /// Section 8: failures and latency are counted around the upgrade they
    /// fall near (from 100 ms before it to 500 ms after the later of ready
    /// and exit), the rest is "away"; the timeline chart splits answers by
    /// generation.
    #[test]
    fn upgrade_figures_attribute_intervals_to_their_upgrade() {
        use runs::{Timeline, TimelineInterval, UpgradeEvent, Upgrades};
        let mut report = run(
            &[
                ("section", "upgrade"),
                ("mode", "handoff-reuseport"),
                ("strategy", "restart"),
            ],
            500.0,
            1000,
        );
        report.requests.failed = 7;
        report.errors.by_kind = [("connect_refused".to_owned(), 7)].into();
        let interval = |old: u64, new: u64, failed: u64, max_ms: u64| TimelineInterval {
            ok_by_pid: [(10, old), (20, new)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect(),
            failed: if failed > 0 {
                [("connect_refused".to_owned(), failed)].into()
            } else {
                Default::default()
            },
            max_latency_us: Some(max_ms * 1000),
        };
        // 100 ms intervals from t = 0; the upgrade begins at 1,000 ms, its new
        // master is ready at +300 ms: "around" is 900 ms to 1,800 ms.
        let mut intervals = vec![interval(50, 0, 0, 3); 30];
        intervals[10] = interval(10, 20, 5, 250);
        intervals[12] = interval(0, 50, 0, 40);
        intervals[25] = interval(0, 50, 2, 90);
        report.timeline = Some(Timeline {
            interval_ms: 100.0,
            start_unix_ms: 0.0,
            intervals,
        });
        report.upgrades = Some(Upgrades {
            init_delay_ms: 200.0,
            tcp_migrate_req: Some(0),
            netns: false,
            kernel: "6".to_owned(),
            events: vec![UpgradeEvent {
                at_unix_ms: 1000.0,
                old_master: 1,
                old_workers: vec![10],
                new_master: 2,
                new_workers: vec![20],
                new_start_ms: 30.0,
                new_ready_ms: 300.0,
                old_exit_ms: 30.0,
                old_exit_code: Some(0),
                old_handover_to: None,
                new_takeover_from: None,
            }],
        });
        let figures = Figures::of(&[report]);
        let row = &figures.upgrades.rows[0];
        assert_eq!((row.upgrades, row.failed), (1, 7));
        assert_eq!(row.kinds, vec![("connect_refused".to_owned(), 7)]);
        assert_eq!(row.failed_per_upgrade.map(|s| s.median), Some(5.0));
        assert_eq!(row.longest_ms.map(|s| s.max), Some(250.0));
        assert_eq!(row.away_ms, Some(90.0));
        assert_eq!(row.ready_ms.map(|s| s.median), Some(270.0));
        assert_eq!(row.old_exit_ms.map(|s| s.median), Some(30.0));
        let line = &figures.upgrades.timelines[0];
        // From 500 ms before the upgrade to 1.5 s after it: 20 intervals.
        assert_eq!(line.old.len(), 20);
        let at = |points: &[(f64, f64)], t: f64| {
            points.iter().find(|p| (p.0 - t).abs() < 1e-9).map(|p| p.1)
        };
        // The interval at 1,000–1,100 ms: 10 old and 20 new answers, 5
        // failures, in 100 ms: 100, 200 and 50 per second.
        assert_eq!(at(&line.old, 0.05), Some(100.0));
        assert_eq!(at(&line.new, 0.05), Some(200.0));
        assert_eq!(at(&line.failed, 0.05), Some(50.0));
    }

    fn row(mode: Mode, strategy: Strategy, per_upgrade: &[f64]) -> UpgradeRow {
        UpgradeRow {
            mode,
            strategy,
            upgrades: per_upgrade.len(),
            rate_per_s: Some(500.0),
            failed: per_upgrade.iter().sum::<f64>() as u64,
            kinds: Vec::new(),
            failed_per_upgrade: Spread::of(per_upgrade.iter().copied()),
            longest_ms: None,
            away_ms: None,
            ready_ms: None,
            old_exit_ms: Spread::of([32.0]),
            exit_to_start_ms: Spread::of([0.0]),
            old_exit_not_zero: 0,
            init_delay_ms: 200.0,
            tcp_migrate_req: Some(u8::from(strategy == Strategy::OverlapMigrate)),
            netns: strategy == Strategy::OverlapMigrate,
            kernel: "6".to_owned(),
        }
    }

    /// A restart's refusals are set beside the SIGTERM-to-exit time, and
    /// tcp_migrate_req is credited only when every upgrade of one setting
    /// failed more than every upgrade of the other: 1 failure against 0 in
    /// 5 upgrades each credits nothing.
    #[test]
    fn restart_and_migrate_lessons_say_only_what_the_data_shows() {
        let rows = [
            row(Mode::Proxy, Strategy::Restart, &[17.0, 18.0, 17.0]),
            row(
                Mode::HandoffReuseport,
                Strategy::Overlap,
                &[0.0, 0.0, 1.0, 0.0, 0.0],
            ),
            row(Mode::HandoffReuseport, Strategy::OverlapMigrate, &[0.0; 5]),
        ];
        assert_eq!(
            restart_lesson(&rows).expect("a restart"),
            "A `restart` failed 17 requests per upgrade (the median per mode), 34 ms of \
             arrivals at 500/s. From the SIGTERM (the upgrade's start) to the old master's \
             exit took 32 ms, and the script started the new master 0 ms after that exit \
             (medians per mode); when the new master bound the port after its start is not \
             recorded."
        );
        let migrate = migrate_lesson(&rows);
        assert_eq!(migrate.len(), 1);
        assert!(
            migrate[0].contains(
                "failed 1 request(s) in 5 upgrade(s), with it at 1 (`overlap-migrate`) 0 in 5: \
                 the failures per upgrade overlap (0–1 against 0–0), so these runs do not \
                 credit `net.ipv4.tcp_migrate_req` with a difference"
            ),
            "{}",
            migrate[0]
        );
        let clear = [
            row(Mode::HandoffReuseport, Strategy::Overlap, &[3.0, 4.0, 2.0]),
            row(Mode::HandoffReuseport, Strategy::OverlapMigrate, &[0.0; 3]),
        ];
        assert!(
            migrate_lesson(&clear)[0]
                .contains("every upgrade with it at 0 failed more than every upgrade with it at 1")
        );
    }
}
