//! §2, the bill at scale (issue 23): every mode holding from 1,000 up to
//! 38,000 idle keep-alive connections (`loadgen --hold`), each server in a
//! network namespace and a memory cgroup of its own. Per step: the fds and
//! RSS of the master, its workers and the whole tree, the kernel memory
//! charged to the tree's cgroup, the time to open, the connections that
//! failed to open by kind; per mode the slope of fds and of memory against
//! the connections held (the cost of one idle connection), and where its
//! steps ended (its limit, and which). Its charts: `fds.svg`,
//! `memory.svg`; its headlines on the first screen: fds per connection,
//! then what each mode held at the machine's fd limit and the memory per
//! idle connection.

use std::collections::BTreeMap;

use runs::format::{bytes, count};
use runs::labels::{Mode, Section};
use runs::{ProcessReport, Report, Role, UseSummary};

use super::{Figures, fd_limit};
use crate::charts::fds::FdsChart;
use crate::charts::memory::MemoryChart;
use crate::charts::{Chart, boxed};
use crate::stats::{Failures, connections, group, least_squares, median, mode, workers_of};
use crate::text::{and_list, failures_count, image, nothing, rounds, section_link, teach, w};

/// The heading, as links to it are written.
pub const HEADING: &str = "2. The bill at scale";

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

/// How near its fd limit a process must have come for a step it could not
/// hold to be blamed on that limit: within 1 % (a master keeps a few fds
/// free for its own use, `proxy` a spare and its pipes).
pub const NEAR_FD_LIMIT: f64 = 0.99;

/// Section 2: fds and memory with N held connections.
#[derive(Debug, Clone)]
pub struct FdBillRow {
    /// The mode.
    pub mode: Mode,
    /// Keep-alive connections asked for.
    pub connections: u64,
    /// Connections held, all opened and answered (median over rounds);
    /// `None` in runs written before `loadgen --hold`, which held what they
    /// asked for.
    pub held: Option<f64>,
    /// How long opening them took, ms (median over rounds).
    pub open_ms: Option<f64>,
    /// Most fds the master held (median over rounds).
    pub master_fds: Option<f64>,
    /// Largest master RSS, bytes (median over rounds).
    pub master_rss_bytes: Option<f64>,
    /// The workers' fds: the sum of each child of the master's most (median
    /// over rounds).
    pub workers_fds: Option<f64>,
    /// The whole tree's fds: every watched process, the most at one sample.
    pub tree_fds: Option<f64>,
    /// The whole tree's RSS, bytes.
    pub tree_rss_bytes: Option<f64>,
    /// The kernel memory charged to the tree's own memory cgroup at most,
    /// its objects (sockets, inodes, files, epoll items) and its TCP
    /// buffers, bytes (median over rounds); `None` where the tree had no
    /// cgroup of its own.
    pub kernel_bytes: Option<f64>,
    /// The fd limit each process of the tree ran under (the `max_fds`
    /// label).
    pub fd_limit: Option<u64>,
    /// The process of the tree that held the most fds, and how many (the
    /// first round's): the master, or a worker.
    pub fullest: Option<(Role, u64)>,
    /// Connections that failed to open, by kind, all rounds.
    pub failed_to_open: BTreeMap<String, u64>,
    /// Requests failed or never answered, all rounds.
    pub failures: Failures,
}

impl FdBillRow {
    /// The connections held: what loadgen held, or what it asked for in
    /// runs before `--hold`.
    pub fn held_or_asked(&self) -> f64 {
        self.held.unwrap_or(self.connections as f64)
    }

    /// Whether it held fewer than it asked for.
    pub fn short(&self) -> bool {
        self.held.is_some_and(|held| held < self.connections as f64)
    }
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

/// Section 2: what one idle connection costs a mode in memory, the slopes
/// against the connections held.
#[derive(Debug, Clone)]
pub struct MemoryPerConnection {
    /// The mode.
    pub mode: Mode,
    /// The whole tree's RSS per connection, bytes: user space (the
    /// workers' and the master's buffers and tasks).
    pub tree_user_bytes: Option<f64>,
    /// The master's RSS per connection, bytes.
    pub master_user_bytes: Option<f64>,
    /// The kernel memory charged to the tree per connection, bytes.
    pub kernel_bytes: Option<f64>,
}

/// Section 2: where a mode's steps ended, at the first it could not hold.
#[derive(Debug, Clone)]
pub struct FdBillLimit {
    /// The mode.
    pub mode: Mode,
    /// The connections asked for at that step.
    pub asked: u64,
    /// The connections it held.
    pub held: f64,
    /// What stopped it, in words: the fd limit of a process, or the kinds
    /// of failure.
    pub reason: String,
    /// The same in a few words, for a chart: `master out of fds`.
    pub short: &'static str,
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
    /// One row per mode and number of connections asked for.
    pub rows: Vec<FdBillRow>,
    /// Per mode: fds per connection, from the rows.
    pub slopes: Vec<FdSlope>,
    /// Per mode: memory per connection, from the rows.
    pub memory: Vec<MemoryPerConnection>,
    /// Per mode that reached one: its limit.
    pub limits: Vec<FdBillLimit>,
}

impl FdBill {
    /// The figures of §2's runs.
    pub fn of(runs: &[&Report]) -> FdBill {
        let rows = fd_bill(runs);
        FdBill {
            slopes: fd_slopes(&rows),
            memory: memory_slopes(&rows),
            limits: limits(&rows),
            rows,
        }
    }

    /// The most connections `mode` held at any step.
    pub fn most_held(&self, mode: Mode) -> Option<f64> {
        self.rows
            .iter()
            .filter(|row| row.mode == mode)
            .map(FdBillRow::held_or_asked)
            .reduce(f64::max)
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

/// The kernel memory charged to the run's server tree at most: objects and
/// TCP buffers of its memory cgroup.
fn kernel_bytes(run: &Report) -> Option<f64> {
    let cgroup = run.watch.first()?.memory_cgroup.as_ref()?;
    Some((cgroup.kernel_max_bytes + cgroup.socket_buffers_max_bytes) as f64)
}

/// The process of the run's tree that held the most fds, and how many.
fn fullest(run: &Report) -> Option<(Role, u64)> {
    run.watch
        .first()?
        .processes
        .iter()
        .map(|process| (process.role, process.summary.fds_max as u64))
        .max_by_key(|(_, fds)| *fds)
}

fn fd_bill(runs: &[&Report]) -> Vec<FdBillRow> {
    group(runs, |run| Some((mode(run)?, connections(run))))
        .into_iter()
        .map(|((mode, connections), runs)| {
            let each = |figure: &dyn Fn(&Report) -> Option<f64>| {
                median(runs.iter().filter_map(|run| figure(run)))
            };
            let mut failed_to_open: BTreeMap<String, u64> = BTreeMap::new();
            for run in &runs {
                for (kind, n) in run.hold.iter().flat_map(|hold| &hold.failed_to_open) {
                    if *n > 0 {
                        *failed_to_open.entry(kind.clone()).or_default() += n;
                    }
                }
            }
            FdBillRow {
                mode,
                connections,
                held: each(&|run| Some(run.hold.as_ref()?.held as f64)),
                open_ms: each(&|run| Some(run.hold.as_ref()?.open_time_ms)),
                master_fds: each(&|run| Some(run.master()?.summary.fds_max as f64)),
                master_rss_bytes: each(&|run| Some(run.master()?.summary.rss_max_bytes as f64)),
                workers_fds: each(&|run| workers_sum(run, |p| p.summary.fds_max as f64)),
                tree_fds: each(&|run| tree_sum(run, |summary| summary.fds_max as f64)),
                tree_rss_bytes: each(&|run| tree_sum(run, |summary| summary.rss_max_bytes as f64)),
                kernel_bytes: each(&kernel_bytes),
                fd_limit: runs.iter().find_map(|run| run.labels.max_fds),
                fullest: runs.first().and_then(|run| fullest(run)),
                failed_to_open,
                failures: Failures::of(&runs),
            }
        })
        .collect()
}

/// Per mode, the least-squares slope of `figure` against the connections
/// held, over the rows that have it.
fn slopes_of(
    rows: &[FdBillRow],
    figure: impl Fn(&FdBillRow) -> Option<f64>,
) -> BTreeMap<Mode, (f64, f64)> {
    let mut by_mode: BTreeMap<Mode, Vec<(f64, f64)>> = BTreeMap::new();
    for row in rows {
        if let Some(value) = figure(row) {
            by_mode
                .entry(row.mode)
                .or_default()
                .push((row.held_or_asked(), value));
        }
    }
    by_mode
        .into_iter()
        .filter_map(|(mode, points)| Some((mode, least_squares(&points)?)))
        .collect()
}

fn fd_slopes(rows: &[FdBillRow]) -> Vec<FdSlope> {
    let tree = slopes_of(rows, |row| row.tree_fds);
    slopes_of(rows, |row| row.master_fds)
        .into_iter()
        .map(|(mode, (slope, base))| FdSlope {
            mode,
            fds_per_connection: slope,
            base_fds: base,
            tree: tree.get(&mode).copied(),
        })
        .collect()
}

fn memory_slopes(rows: &[FdBillRow]) -> Vec<MemoryPerConnection> {
    let tree = slopes_of(rows, |row| row.tree_rss_bytes);
    let master = slopes_of(rows, |row| row.master_rss_bytes);
    let kernel = slopes_of(rows, |row| row.kernel_bytes);
    let mut modes: Vec<Mode> = tree.keys().chain(kernel.keys()).copied().collect();
    modes.sort();
    modes.dedup();
    modes
        .into_iter()
        .map(|mode| MemoryPerConnection {
            mode,
            tree_user_bytes: tree.get(&mode).map(|slope| slope.0),
            master_user_bytes: master.get(&mode).map(|slope| slope.0),
            kernel_bytes: kernel.get(&mode).map(|slope| slope.0),
        })
        .collect()
}

/// Per mode, its first step (by connections asked) that it could not hold,
/// and why: a process of the tree at its fd limit, or the failures to open.
fn limits(rows: &[FdBillRow]) -> Vec<FdBillLimit> {
    let mut seen: Vec<Mode> = Vec::new();
    let mut limits = Vec::new();
    for row in rows.iter().filter(|row| row.short()) {
        if seen.contains(&row.mode) {
            continue;
        }
        seen.push(row.mode);
        let at_limit = match (row.fd_limit, row.fullest) {
            (Some(limit), Some((role, fds))) if fds as f64 >= limit as f64 * NEAR_FD_LIMIT => {
                let (whose, short) = match role {
                    Role::Watched => ("its master", "master out of fds"),
                    Role::Child => ("a worker", "a worker out of fds"),
                };
                Some((
                    format!(
                        "{whose} reached {} fds of its limit of {}",
                        count(fds),
                        count(limit)
                    ),
                    short,
                ))
            }
            _ => None,
        };
        let failed: Vec<String> = row
            .failed_to_open
            .iter()
            .map(|(kind, n)| format!("{} {kind}", count(*n)))
            .collect();
        let (reason, short) = match (at_limit, failed.is_empty()) {
            (Some((limit, short)), true) => (limit, short),
            (Some((limit, short)), false) => (
                format!("{limit}; the rest failed to open ({})", failed.join(", ")),
                short,
            ),
            (None, false) => (
                format!("failed to open: {}", failed.join(", ")),
                "failed to open",
            ),
            (None, true) => (
                "no process at its fd limit and no failure counted".to_owned(),
                "held fewer",
            ),
        };
        limits.push(FdBillLimit {
            mode: row.mode,
            asked: row.connections,
            held: row.held_or_asked(),
            reason,
            short,
        });
    }
    limits
}

/// The chart of fds against connections, if there are rows.
fn fds_chart(figures: &Figures) -> Option<FdsChart<'_>> {
    let bill = &figures.fd_bill;
    (!bill.rows.is_empty()).then_some(FdsChart {
        rows: &bill.rows,
        limits: &bill.limits,
    })
}

/// The chart of memory against connections, if any row has a figure of
/// memory.
fn memory_chart(figures: &Figures) -> Option<MemoryChart<'_>> {
    let bill = &figures.fd_bill;
    bill.rows
        .iter()
        .any(|row| row.tree_rss_bytes.is_some() || row.kernel_bytes.is_some())
        .then_some(MemoryChart {
            rows: &bill.rows,
            limits: &bill.limits,
        })
}

/// §2's charts.
pub fn charts(figures: &Figures) -> Vec<Box<dyn Chart + '_>> {
    let fds = fds_chart(figures).map(boxed);
    let memory = memory_chart(figures).map(boxed);
    fds.into_iter().chain(memory).collect()
}

/// Bytes per connection as the text writes them: `3.8 KiB`, `712 B`.
pub fn per_connection(bytes: f64) -> String {
    if bytes.abs() >= 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{:.0} B", bytes.max(0.0))
    }
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

/// The glance line of the bill at scale: what each mode held at the
/// machine's fd limit, and the memory per idle connection, user and kernel.
pub fn glance_scale(figures: &Figures) -> Option<String> {
    let bill = &figures.fd_bill;
    // Only runs that held their connections (`loadgen --hold`) say what a
    // mode held; older ones asked for a few thousand at a rate.
    if bill.rows.iter().all(|row| row.held.is_none()) {
        return None;
    }
    let modes: Vec<Mode> = bill.slopes.iter().map(|slope| slope.mode).collect();
    let held: Vec<String> = modes
        .iter()
        .filter_map(|&mode| {
            let most = bill.most_held(mode)?;
            Some(match bill.limits.iter().find(|limit| limit.mode == mode) {
                Some(limit) => format!(
                    "`{mode}` {} of {} ({})",
                    count(limit.held.round() as u64),
                    count(limit.asked),
                    limit.reason
                ),
                None => format!("`{mode}` all {}", count(most.round() as u64)),
            })
        })
        .collect();
    let memory: Vec<String> = bill
        .memory
        .iter()
        .filter_map(|memory| {
            let user = memory.tree_user_bytes.map(per_connection);
            let kernel = memory.kernel_bytes.map(per_connection);
            Some(match (user, kernel) {
                (Some(user), Some(kernel)) => {
                    format!("`{}` {user} user + {kernel} kernel", memory.mode)
                }
                (Some(user), None) => format!("`{}` {user} user", memory.mode),
                (None, Some(kernel)) => format!("`{}` {kernel} kernel", memory.mode),
                (None, None) => return None,
            })
        })
        .collect();
    if held.is_empty() {
        return None;
    }
    let limit = bill
        .rows
        .iter()
        .find_map(|row| row.fd_limit)
        .map_or_else(String::new, |limit| {
            format!(" under a limit of {} fds per process", count(limit))
        });
    let memory = if memory.is_empty() {
        String::new()
    } else {
        format!(
            "; **memory per idle connection** (the whole tree): {}",
            memory.join(", ")
        )
    };
    Some(format!(
        "**Connections held{limit}:** {}{memory}. {}",
        held.join(", "),
        section_link(HEADING)
    ))
}

/// `value` as a count, or `–`.
fn count_or_dash(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |value| count(value.round() as u64))
}

/// `value` as bytes, or `–`.
fn bytes_or_dash(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |value| {
        bytes(value.max(0.0).round() as u64)
    })
}

/// §2: the table, its charts and what the slopes teach.
pub fn markdown(out: &mut String, figures: &Figures) {
    w!(out, "## {HEADING}");
    w!(out);
    w!(
        out,
        "Each mode holding from a thousand to tens of thousands of idle keep-alive \
         connections (`loadgen --hold`: every connection opened first, then one request every \
         5 s each), its steps ending at the first it could not hold. A master that relays \
         holds two fds per connection (the client's and the worker's), one that hands sockets \
         over holds none once they are handed; the workers hold one per connection they serve \
         in every mode. Each process's own count is what its `ulimit -n` must allow, the \
         tree's what `fs.file-max` must. Memory: the RSS of the processes (user space) and \
         the kernel memory charged to the server tree's own memory cgroup (its sockets, \
         inodes, files, epoll items and TCP buffers): on loopback both ends of a connection \
         live in the same kernel, and the cgroup counts the server's end alone, loadgen \
         staying outside it (where the harness could make a cgroup: root and cgroup v1's \
         memory controller). Each server ran in a network namespace of its own where one \
         could be made (root), loadgen connecting from eight loopback addresses."
    );
    w!(out);
    rounds(out, figures.rounds.get(&Section::FdBill));
    let bill = &figures.fd_bill;
    if bill.rows.is_empty() {
        nothing(out, "fd bill");
        return;
    }
    for chart in charts(figures) {
        image(out, chart.as_ref());
    }
    w!(
        out,
        "| mode | asked | held | opened in | master fds | workers fds | tree fds | master RSS | tree RSS | kernel | failed to open | failed / unanswered |"
    );
    w!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
    );
    for row in &bill.rows {
        let failed_to_open: Vec<String> = row
            .failed_to_open
            .iter()
            .map(|(kind, n)| format!("{} {kind}", count(*n)))
            .collect();
        w!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.mode,
            count(row.connections),
            count_or_dash(row.held),
            row.open_ms
                .map_or("–".to_owned(), |ms| format!("{:.2} s", ms / 1000.0)),
            count_or_dash(row.master_fds),
            count_or_dash(row.workers_fds),
            count_or_dash(row.tree_fds),
            bytes_or_dash(row.master_rss_bytes),
            bytes_or_dash(row.tree_rss_bytes),
            bytes_or_dash(row.kernel_bytes),
            if failed_to_open.is_empty() {
                "0".to_owned()
            } else {
                failed_to_open.join(", ")
            },
            failures_count(&row.failures)
        );
    }
    w!(out);
    if !bill.memory.is_empty() {
        w!(
            out,
            "Memory per idle connection, the slope of each figure against the connections held \
             (least squares over the steps):"
        );
        w!(out);
        w!(
            out,
            "| mode | whole tree, user space (RSS) | master, user space (RSS) | kernel (cgroup) |"
        );
        w!(out, "|---|---:|---:|---:|");
        for memory in &bill.memory {
            let text = |value: Option<f64>| value.map_or("–".to_owned(), per_connection);
            w!(
                out,
                "| {} | {} | {} | {} |",
                memory.mode,
                text(memory.tree_user_bytes),
                text(memory.master_user_bytes),
                text(memory.kernel_bytes)
            );
        }
        w!(out);
        if bill.rows.iter().all(|row| row.kernel_bytes.is_none()) {
            w!(
                out,
                "_The kernel's share was not measured: the servers had no memory cgroup of their \
                 own (it needs root and cgroup v1's memory controller)._"
            );
            w!(out);
        }
    }
    let mut lessons: Vec<String> = bill
        .limits
        .iter()
        .map(|limit| {
            format!(
                "`{}` held {} of the {} connections asked, where its steps end: {}.",
                limit.mode,
                count(limit.held.round() as u64),
                count(limit.asked),
                limit.reason
            )
        })
        .collect();
    lessons.extend(bill.slopes.iter().map(|slope| {
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
    }));
    if let Some(most) = bill.rows.iter().map(|row| row.connections).max() {
        let trees: Vec<String> = bill
            .rows
            .iter()
            .filter(|row| row.connections == most)
            .filter_map(|row| {
                Some(format!(
                    "`{}` {} ({:.1} per connection)",
                    row.mode,
                    count(row.tree_fds?.round() as u64),
                    row.tree_fds? / row.held_or_asked().max(1.0)
                ))
            })
            .collect();
        if trees.len() > 1 {
            lessons.push(format!(
                "With {} connections asked the whole tree held: {}.",
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
        assert_eq!(proxy_2000.tree_rss_bytes, Some(f64::from(10u32 << 20)));
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

    /// The bill at scale: `proxy` stops at 10,000 asked with its master at
    /// its fd limit and the rest failed to open; a handoff mode holds every
    /// step. Memory per connection is the slope of the tree's RSS and of
    /// the kernel memory its cgroup was charged, against the connections
    /// held; the glance line says both.
    #[test]
    fn the_bill_at_scale_ends_each_mode_at_its_limit() {
        let mut runs = Vec::new();
        let steps: [(&str, u64, u64); 5] = [
            ("proxy", 1_000, 1_000),
            ("proxy", 5_000, 5_000),
            ("proxy", 10_000, 9_980),
            ("handoff-socket", 1_000, 1_000),
            ("handoff-socket", 38_000, 38_000),
        ];
        for (mode, asked, held) in steps {
            let asked_label = asked.to_string();
            let mut run = run(
                &[
                    ("section", "fdbill"),
                    ("mode", mode),
                    ("connections", &asked_label),
                    ("max_fds", "20000"),
                ],
                1.0,
                1,
            );
            let per_worker = 10 + held as usize / 2;
            let (master_fds, master_rss, worker_rss) = if mode == "proxy" {
                (20 + 2 * held as usize, (4 << 20) + 8_192 * held, 3 << 20)
            } else {
                (12, 4 << 20, (3 << 20) + 1_024 * held / 2)
            };
            watch_tree(
                &mut run,
                0,
                vec![
                    process(1, 0, 0.0, master_fds, master_rss),
                    process(2, 1, 0.0, per_worker, worker_rss),
                    process(3, 1, 0.0, per_worker, worker_rss),
                ],
            );
            let kernel_per_connection = if mode == "proxy" { 12_000 } else { 4_000 };
            run.watch[0].memory_cgroup = Some(runs::MemoryCgroupReport {
                path: "/sys/fs/cgroup/memory/portshare-1-1".to_owned(),
                kernel_max_bytes: 1_000_000 + kernel_per_connection * held,
                socket_buffers_max_bytes: 0,
                charged_max_bytes: 0,
                samples: Vec::new(),
                error: None,
            });
            let mut failed_to_open = BTreeMap::new();
            failed_to_open.insert("timeout".to_owned(), asked - held);
            failed_to_open.insert("reset".to_owned(), 0);
            run.hold = Some(runs::Hold {
                connections: asked,
                held,
                interval_s: 5.0,
                processes: 1,
                open_time_ms: asked as f64 / 6.0,
                connect: None,
                failed_to_open,
            });
            runs.push(run);
        }
        let figures = Figures::of(&runs);
        let bill = &figures.fd_bill;
        let [limit] = bill.limits.as_slice() else {
            panic!("one mode stopped: {:?}", bill.limits);
        };
        assert_eq!(
            (limit.mode, limit.asked, limit.held),
            (Mode::Proxy, 10_000, 9_980.0)
        );
        assert_eq!(
            limit.reason,
            "its master reached 19,980 fds of its limit of 20,000; the rest failed to open \
             (20 timeout)"
        );
        let memory = |mode: Mode| {
            bill.memory
                .iter()
                .find(|memory| memory.mode == mode)
                .expect("a mode's memory")
                .clone()
        };
        let proxy = memory(Mode::Proxy);
        assert!((proxy.master_user_bytes.expect("RSS") - 8_192.0).abs() < 1e-6);
        assert!((proxy.kernel_bytes.expect("kernel") - 12_000.0).abs() < 1e-6);
        let socket = memory(Mode::HandoffSocket);
        assert!((socket.tree_user_bytes.expect("RSS") - 1_024.0).abs() < 1e-6);
        assert!((socket.kernel_bytes.expect("kernel") - 4_000.0).abs() < 1e-6);
        let text = figures.markdown();
        assert!(
            text.contains(
                "- **Connections held under a limit of 20,000 fds per process:** `proxy` 9,980 \
                 of 10,000 (its master reached 19,980 fds of its limit of 20,000; the rest \
                 failed to open (20 timeout)), `handoff-socket` all 38,000; **memory per idle \
                 connection** (the whole tree): `proxy` 8.0 KiB user + 11.7 KiB kernel, \
                 `handoff-socket` 1.0 KiB user + 3.9 KiB kernel. [§2](#2-the-bill-at-scale)"
            ),
            "{text}"
        );
        assert!(
            text.contains("| proxy | 10,000 | 9,980 | 1.67 s | 19,980 |"),
            "{text}"
        );
        assert!(text.contains("| 20 timeout | 0 |"), "{text}");
        assert!(text.contains("![")); // both charts linked
        for chart in charts(&figures) {
            let svg = chart.draw().expect("drawn");
            assert!(
                svg.contains("(ringed: stopped, master out of fds)"),
                "{}",
                chart.file()
            );
        }
    }
}
