//! §2, the fd bill: the most fds the master, its workers and the whole tree
//! held with N keep-alive connections open, and their memory; per mode the
//! slope of fds against connections (fds per connection) and what that
//! allows under the usual soft limit. Its chart: `fds.svg`; its headline on
//! the first screen: fds per connection, `proxy` against the handoff modes.

use std::collections::BTreeMap;

use runs::format::{bytes, count};
use runs::labels::{Mode, Section};
use runs::{ProcessReport, Report, UseSummary};

use super::{Figures, fd_limit};
use crate::charts::fds::FdsChart;
use crate::charts::{Chart, boxed};
use crate::stats::{Failures, connections, group, least_squares, median, mode, workers_of};
use crate::text::{and_list, failures_count, image, nothing, rounds, section_link, teach, w};

/// The heading, as links to it are written.
pub const HEADING: &str = "2. The fd bill";

/// The usual soft limit of open fds per process (`ulimit -n`).
pub const USUAL_SOFT_LIMIT: f64 = 1024.0;

/// The fds a relaying master holds per client connection: the client's
/// socket and its own connection to the worker (`proxy`, and nginx in front
/// of the workers). The fd bill draws this slope; the fd limit's capacity
/// divides the fds left by it.
pub const RELAY_FDS_PER_CONNECTION: u64 = 2;

/// The least slope of fds per connection that counts as a cost: a master
/// below it holds no fd per connection (the text prints a slope to one
/// decimal, where this reads as 0.0), so its own fds do not limit its
/// connections.
pub const LEAST_FDS_PER_CONNECTION: f64 = 0.05;

/// Section 2: master fds and RSS with N held connections.
#[derive(Debug, Clone)]
pub struct FdBillRow {
    /// The mode.
    pub mode: Mode,
    /// Held keep-alive connections.
    pub connections: u64,
    /// Most fds the master held (median over rounds).
    pub master_fds: Option<f64>,
    /// Largest master RSS, bytes (median over rounds).
    pub master_rss_bytes: Option<f64>,
    /// The workers' fds: the sum of each child of the master's most (median
    /// over rounds).
    pub workers_fds: Option<f64>,
    /// The workers' RSS, summed likewise, bytes.
    pub workers_rss_bytes: Option<f64>,
    /// The whole tree's fds: every watched process, the most at one sample.
    pub tree_fds: Option<f64>,
    /// The whole tree's RSS, bytes.
    pub tree_rss_bytes: Option<f64>,
    /// Requests failed or never answered, all rounds.
    pub failures: Failures,
}

/// Section 2: how many fds a mode's master holds per connection.
#[derive(Debug, Clone)]
pub struct FdSlope {
    /// The mode.
    pub mode: Mode,
    /// Least-squares slope of master fds against connections.
    pub fds_per_connection: f64,
    /// Master fds extrapolated to no connection (the base: listeners, channels, ...).
    pub base_fds: f64,
    /// The same of the whole tree's fds (master and workers), if measured.
    pub tree: Option<(f64, f64)>,
}

/// Connections that fit under an fd limit with `base` fds and `per_connection`
/// fds each: `None` if a connection costs nothing.
pub fn connections_at_limit(limit: f64, base: f64, per_connection: f64) -> Option<f64> {
    (per_connection > LEAST_FDS_PER_CONNECTION)
        .then(|| ((limit - base) / per_connection).max(0.0).floor())
}

/// §2's figures.
#[derive(Debug, Clone, Default)]
pub struct FdBill {
    /// One row per mode and number of connections held.
    pub rows: Vec<FdBillRow>,
    /// Per mode: fds per connection, from the rows.
    pub slopes: Vec<FdSlope>,
}

impl FdBill {
    /// The figures of §2's runs.
    pub fn of(runs: &[&Report]) -> FdBill {
        let rows = fd_bill(runs);
        FdBill {
            slopes: fd_slopes(&rows),
            rows,
        }
    }
}

/// The sum of `figure` over the master's workers; `None` without any.
fn workers_sum(run: &Report, figure: impl Fn(&ProcessReport) -> f64) -> Option<f64> {
    let workers = workers_of(run);
    (!workers.is_empty()).then(|| workers.into_iter().map(figure).sum())
}

/// The sum over every watch entry of a tree figure; `None` without any.
fn tree_sum(run: &Report, figure: impl Fn(&UseSummary) -> f64) -> Option<f64> {
    (!run.watch.is_empty()).then(|| run.watch.iter().map(|tree| figure(&tree.summary)).sum())
}

fn fd_bill(runs: &[&Report]) -> Vec<FdBillRow> {
    group(runs, |run| Some((mode(run)?, connections(run))))
        .into_iter()
        .map(|((mode, connections), runs)| FdBillRow {
            mode,
            connections,
            master_fds: median(
                runs.iter()
                    .filter_map(|run| Some(run.master()?.summary.fds_max as f64)),
            ),
            master_rss_bytes: median(
                runs.iter()
                    .filter_map(|run| Some(run.master()?.summary.rss_max_bytes as f64)),
            ),
            workers_fds: median(
                runs.iter()
                    .filter_map(|run| workers_sum(run, |p| p.summary.fds_max as f64)),
            ),
            workers_rss_bytes: median(
                runs.iter()
                    .filter_map(|run| workers_sum(run, |p| p.summary.rss_max_bytes as f64)),
            ),
            tree_fds: median(
                runs.iter()
                    .filter_map(|run| tree_sum(run, |summary| summary.fds_max as f64)),
            ),
            tree_rss_bytes: median(
                runs.iter()
                    .filter_map(|run| tree_sum(run, |summary| summary.rss_max_bytes as f64)),
            ),
            failures: Failures::of(&runs),
        })
        .collect()
}

fn fd_slopes(rows: &[FdBillRow]) -> Vec<FdSlope> {
    // Per mode: (connections, master fds) and (connections, tree fds).
    type Points = Vec<(f64, f64)>;
    let mut by_mode: BTreeMap<Mode, (Points, Points)> = BTreeMap::new();
    for row in rows {
        let entry = by_mode.entry(row.mode).or_default();
        if let Some(fds) = row.master_fds {
            entry.0.push((row.connections as f64, fds));
        }
        if let Some(fds) = row.tree_fds {
            entry.1.push((row.connections as f64, fds));
        }
    }
    by_mode
        .into_iter()
        .filter_map(|(mode, (master, tree))| {
            let (slope, base) = least_squares(&master)?;
            Some(FdSlope {
                mode,
                fds_per_connection: slope,
                base_fds: base,
                tree: least_squares(&tree),
            })
        })
        .collect()
}

/// The chart of fds against connections, if there are rows.
fn fds_chart(figures: &Figures) -> Option<FdsChart<'_>> {
    let rows = &figures.fd_bill.rows;
    (!rows.is_empty()).then_some(FdsChart { rows })
}

/// §2's chart.
pub fn charts(figures: &Figures) -> Vec<Box<dyn Chart + '_>> {
    fds_chart(figures).into_iter().map(boxed).collect()
}

/// `0.0` or `0.0–0.1`: the range of one-decimal figures.
fn decimal_range(values: &[f64]) -> String {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (low, high) = (
        format!("{:.1}", low.max(0.0)),
        format!("{:.1}", high.max(0.0)),
    );
    if low == high {
        low
    } else {
        format!("{low}–{high}")
    }
}

/// The glance line of the fd bill: fds per connection of the master and the
/// whole tree, `proxy` against the handoff modes.
pub fn glance(figures: &Figures) -> Option<String> {
    let per = |slopes: &[&FdSlope]| -> Option<String> {
        if slopes.is_empty() {
            return None;
        }
        let masters: Vec<f64> = slopes.iter().map(|s| s.fds_per_connection).collect();
        let trees: Vec<f64> = slopes
            .iter()
            .filter_map(|s| s.tree.map(|(per, _)| per))
            .collect();
        Some(if trees.len() == slopes.len() {
            format!(
                "{} in the master, {} in the whole tree",
                decimal_range(&masters),
                decimal_range(&trees)
            )
        } else {
            format!("{} in the master", decimal_range(&masters))
        })
    };
    let proxy: Vec<_> = figures
        .fd_bill
        .slopes
        .iter()
        .filter(|s| s.mode == Mode::Proxy)
        .collect();
    let handoff: Vec<_> = figures
        .fd_bill
        .slopes
        .iter()
        .filter(|s| s.mode.is_handoff())
        .collect();
    let mut parts = Vec::new();
    if let Some(text) = per(&proxy) {
        parts.push(format!("`proxy` {text}"));
    }
    if let Some(text) = per(&handoff) {
        let names: Vec<String> = handoff.iter().map(|s| format!("`{}`", s.mode)).collect();
        parts.push(format!("{} {text}", and_list(&names)));
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "**fds per client connection:** {}. {}",
        parts.join("; "),
        section_link(HEADING)
    ))
}

/// §2: the table, its chart and what the slopes teach.
pub fn markdown(out: &mut String, figures: &Figures) {
    w!(out, "## {HEADING}");
    w!(out);
    w!(
        out,
        "The most file descriptors the master, its workers (summed) and the whole tree held \
         while N keep-alive connections were open, and their memory: a master that relays \
         holds two fds per connection (the client's and the worker's), one that hands sockets \
         over holds none once they are handed; the workers hold one per connection they serve \
         in every mode. The tree's count is what `fs.file-max` must allow for; each process's \
         own is what its `ulimit -n` must."
    );
    w!(out);
    rounds(out, figures.rounds.get(&Section::FdBill));
    if figures.fd_bill.rows.is_empty() {
        nothing(out, "fd bill");
        return;
    }
    for chart in charts(figures) {
        image(out, chart.as_ref());
    }
    w!(
        out,
        "| mode | connections | master fds | workers fds | tree fds | master RSS | workers RSS | tree RSS | failed / unanswered |"
    );
    w!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let fds = |value: Option<f64>| value.map_or("–".to_owned(), |fds| count(fds.round() as u64));
    let rss = |value: Option<f64>| value.map_or("–".to_owned(), |rss| bytes(rss.round() as u64));
    for row in &figures.fd_bill.rows {
        w!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.mode,
            count(row.connections),
            fds(row.master_fds),
            fds(row.workers_fds),
            fds(row.tree_fds),
            rss(row.master_rss_bytes),
            rss(row.workers_rss_bytes),
            rss(row.tree_rss_bytes),
            failures_count(&row.failures)
        );
    }
    w!(out);
    let mut lessons: Vec<String> = figures
        .fd_bill
        .slopes
        .iter()
        .map(|slope| {
            let tree = slope.tree.map_or(String::new(), |(per, base)| {
                format!(
                    "; its whole tree {:.1} per connection (on a base of {:.0})",
                    per.max(0.0),
                    base
                )
            });
            // §3 measured, at the master's own limit, the fds it held besides
            // its relays and those it kept free: the estimate counts both.
            let measured = figures
                .fd_limit
                .rows
                .iter()
                .filter(|row| row.mode == slope.mode)
                .find_map(|row| row.capacity?.open_and_spare);
            let at_limit = match (
                connections_at_limit(USUAL_SOFT_LIMIT, slope.base_fds, slope.fds_per_connection),
                measured,
            ) {
                (None, _) => ": its own fds do not limit the connections".to_owned(),
                (Some(_), Some((open, spare))) => {
                    let n = connections_at_limit(
                        USUAL_SOFT_LIMIT,
                        (open + spare) as f64,
                        slope.fds_per_connection,
                    )
                    .unwrap_or(0.0);
                    format!(
                        ": under the usual soft limit of {} fds it can hold about {} \
                         connections, ({} − {} open − {} kept free) / {:.1}, the open and free \
                         fds {} measured at its limit",
                        count(USUAL_SOFT_LIMIT as u64),
                        count(n as u64),
                        count(USUAL_SOFT_LIMIT as u64),
                        count(open),
                        count(spare),
                        slope.fds_per_connection,
                        section_link(fd_limit::HEADING)
                    )
                }
                (Some(n), None) => format!(
                    ": under the usual soft limit of {} fds it can hold at most about {} \
                     connections, fewer by the fds it keeps free ({} did not measure them)",
                    count(USUAL_SOFT_LIMIT as u64),
                    count(n as u64),
                    section_link(fd_limit::HEADING)
                ),
            };
            format!(
                "The `{}` master held {:.1} fds per connection (on a base of {:.0}){tree}{at_limit}.",
                slope.mode,
                slope.fds_per_connection.max(0.0),
                slope.base_fds
            )
        })
        .collect();
    if let Some(most) = figures.fd_bill.rows.iter().map(|row| row.connections).max() {
        let trees: Vec<String> = figures
            .fd_bill
            .rows
            .iter()
            .filter(|row| row.connections == most)
            .filter_map(|row| {
                Some(format!(
                    "`{}` {} ({:.1} per connection)",
                    row.mode,
                    count(row.tree_fds?.round() as u64),
                    row.tree_fds? / most.max(1) as f64
                ))
            })
            .collect();
        if trees.len() > 1 {
            lessons.push(format!(
                "With {} connections the whole tree held: {}.",
                count(most),
                trees.join(", ")
            ));
        }
    }
    teach(out, &lessons);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{process, run, set_master_fds, watch_tree};
    use crate::sections::Figures;

    /// The fd bill's slope: 2 fds per connection for the proxy, 0 for a handoff.
    #[test]
    fn fd_bill_slopes() {
        let mut runs = Vec::new();
        for n in [100u64, 500, 1000] {
            for (mode, fds) in [("proxy", 12 + 2 * n as usize), ("handoff-socket", 9)] {
                let n_label = n.to_string();
                let mut run = run(
                    &[
                        ("section", "fdbill"),
                        ("mode", mode),
                        ("connections", &n_label),
                    ],
                    1.0,
                    1,
                );
                set_master_fds(&mut run, fds);
                runs.push(run);
            }
        }
        let figures = Figures::of(&runs);
        assert_eq!(figures.fd_bill.rows.len(), 6);
        assert_eq!(figures.fd_bill.rows[0].mode, Mode::Proxy);
        assert_eq!(figures.fd_bill.rows[0].master_fds, Some(212.0));
        let slopes: Vec<(Mode, f64, f64)> = figures
            .fd_bill
            .slopes
            .iter()
            .map(|s| (s.mode, s.fds_per_connection, s.base_fds))
            .collect();
        assert_eq!(slopes.len(), 2);
        assert!((slopes[0].1 - 2.0).abs() < 1e-9 && (slopes[0].2 - 12.0).abs() < 1e-6);
        assert!(slopes[1].1.abs() < 1e-9 && (slopes[1].2 - 9.0).abs() < 1e-6);
        // Without §3's figures the estimate under 1,024 fds is an upper bound.
        let text = figures.markdown();
        assert!(
            text.contains(
                "can hold at most about 506 connections, fewer by the fds it keeps free \
                 ([§3](#3-the-fd-limit) did not measure them)"
            ),
            "{text}"
        );
        // With them, (1,024 − open − kept free) / 2: §3's proxy held 240 fds
        // at its limit of 256 with 112 served, 16 open besides, 16 free.
        for (n, failed) in [(100u64, 0u64), (150, 38), (200, 88)] {
            let n_label = n.to_string();
            let mut limited = run(
                &[
                    ("section", "fdlimit"),
                    ("mode", "proxy"),
                    ("connections", &n_label),
                    ("max_fds", "256"),
                ],
                1.0,
                1,
            );
            limited.requests.failed = failed;
            set_master_fds(&mut limited, if failed > 0 { 240 } else { 216 });
            runs.push(limited);
        }
        let text = Figures::of(&runs).markdown();
        assert!(
            text.contains(
                "can hold about 496 connections, (1,024 − 16 open − 16 kept free) / 2.0, the \
                 open and free fds [§3](#3-the-fd-limit) measured at its limit"
            ),
            "{text}"
        );
    }

    /// The fd bill of the whole tree: the proxy's master holds 2 fds per
    /// connection and each worker 1 (the tree 3); a handoff master none and
    /// its workers 1 each connection they serve (the tree 1).
    #[test]
    fn fd_bill_of_the_whole_tree() {
        let mut runs = Vec::new();
        for n in [100usize, 1000, 2000] {
            for (mode, master, per_worker) in [
                ("proxy", 16 + 2 * n, 10 + n / 2),
                ("handoff-listener", 12, 10 + n / 2),
            ] {
                let n_label = n.to_string();
                let mut run = run(
                    &[
                        ("section", "fdbill"),
                        ("mode", mode),
                        ("connections", &n_label),
                    ],
                    1.0,
                    1,
                );
                watch_tree(
                    &mut run,
                    0,
                    vec![
                        process(1, 0, 0.0, master, 4 << 20),
                        process(2, 1, 0.0, per_worker, 3 << 20),
                        process(3, 1, 0.0, per_worker, 3 << 20),
                    ],
                );
                runs.push(run);
            }
        }
        let figures = Figures::of(&runs);
        let proxy_2000 = figures
            .fd_bill
            .rows
            .iter()
            .find(|row| row.mode == Mode::Proxy && row.connections == 2000)
            .expect("a row");
        assert_eq!(proxy_2000.master_fds, Some(4016.0));
        assert_eq!(proxy_2000.workers_fds, Some(2020.0));
        assert_eq!(proxy_2000.tree_fds, Some(6036.0));
        assert_eq!(proxy_2000.workers_rss_bytes, Some(f64::from(6u32 << 20)));
        let slope = |mode: Mode| {
            let slope = figures
                .fd_bill
                .slopes
                .iter()
                .find(|slope| slope.mode == mode)
                .expect("a slope");
            (slope.fds_per_connection, slope.tree.expect("a tree").0)
        };
        let (master, tree) = slope(Mode::Proxy);
        assert!((master - 2.0).abs() < 1e-9 && (tree - 3.0).abs() < 1e-9);
        let (master, tree) = slope(Mode::HandoffListener);
        assert!(master.abs() < 1e-9 && (tree - 1.0).abs() < 1e-9);
        // Under the usual soft limit of 1,024 fds, a master with 16 and 2 per
        // connection serves 504 connections; one with none, any number.
        assert_eq!(connections_at_limit(1024.0, 16.0, 2.0), Some(504.0));
        assert_eq!(connections_at_limit(1024.0, 12.0, 0.0), None);
    }
}
