//! §3, the fd limit: every mode with the master's fd limit lowered
//! (`--max-fds`) and a rising number of keep-alive connections: the most
//! served without an error, the first with errors, and from the steps with
//! errors the capacity (connections served at once). Its headline on the
//! first screen: the connections each mode served at the limit.

use runs::Report;
use runs::format::{count, micros};
use runs::labels::{Mode, Section};

use super::Figures;
use super::fd_bill::RELAY_FDS_PER_CONNECTION;
use crate::stats::{
    Failures, Spread, connections, failed, group, kinds, latency_median, median, mode,
};
use crate::text::{and_list, failures_count, nothing, opt_micros, rounds, section_link, teach, w};

/// The heading, as links to it are written.
pub const HEADING: &str = "3. The fd limit";

/// How far N − failed may vary over the steps with errors for the capacity
/// to be called the same at every step: one connection.
pub const STEADY_WITHIN_CONNECTIONS: f64 = 1.0;

/// Section 3: one mode under `--max-fds`.
#[derive(Debug, Clone)]
pub struct FdLimitRow {
    /// The mode.
    pub mode: Mode,
    /// The master's `--max-fds` (`max_fds` label), if given.
    pub max_fds: Option<u64>,
    /// Every N tried, fewest first.
    pub tried: Vec<Tried>,
    /// The most connections served without a failed or unanswered request
    /// (`None` if every N had one).
    pub most_without_errors: Option<u64>,
    /// The fewest connections with a failed or unanswered request (`None`
    /// if none had one).
    pub first_with_errors: Option<u64>,
    /// From the steps with errors: how many connections were served at once.
    pub capacity: Option<Capacity>,
}

/// What the steps with errors show of a master's capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Connections served at once: N − failed, the median over the steps with
    /// errors (each connection beyond it failed once).
    pub connections: u64,
    /// Whether N − failed was the same (within [`STEADY_WITHIN_CONNECTIONS`])
    /// at every step with errors.
    pub steady: bool,
    /// Whether every failure was a timeout: the clients beyond waited
    /// unanswered until their timeout.
    pub timeouts_only: bool,
    /// Relaying modes ([`RELAY_FDS_PER_CONNECTION`] fds per connection) with
    /// `max_fds`: the fds the master held besides its relays (its most −
    /// relay fds × capacity) and the fds it kept free (limit − its most), so
    /// capacity = (limit − open − spare) / relay fds.
    pub open_and_spare: Option<(u64, u64)>,
}

/// Section 3: one number of connections tried under the limit.
#[derive(Debug, Clone)]
pub struct Tried {
    /// Connections held.
    pub connections: u64,
    /// Failed requests, all rounds: the clients beyond the capacity, each
    /// failed once (the capacity is N − failed).
    pub failed: u64,
    /// Requests failed or never answered, all rounds.
    pub failures: Failures,
    /// The kinds of failure, most first.
    pub kinds: Vec<(String, u64)>,
    /// Median p99, µs.
    pub p99_us: Option<f64>,
    /// The master's most fds (median over rounds).
    pub master_fds: Option<f64>,
}

/// §3's figures.
#[derive(Debug, Clone, Default)]
pub struct FdLimit {
    /// One row per mode, its steps by connections.
    pub rows: Vec<FdLimitRow>,
}

impl FdLimit {
    /// The figures of §3's runs.
    pub fn of(runs: &[&Report]) -> FdLimit {
        FdLimit {
            rows: fd_limit(runs),
        }
    }
}

fn fd_limit(runs: &[&Report]) -> Vec<FdLimitRow> {
    group(runs, mode)
        .into_iter()
        .map(|(mode, runs)| {
            let by_n = group(&runs, |run| Some(connections(run)));
            let tried: Vec<Tried> = by_n
                .iter()
                .map(|(&connections, runs)| Tried {
                    connections,
                    failed: failed(runs),
                    failures: Failures::of(runs),
                    kinds: kinds(runs),
                    p99_us: latency_median(runs, |summary| summary.p99_us),
                    master_fds: median(
                        runs.iter()
                            .filter_map(|run| Some(run.master()?.summary.fds_max as f64)),
                    ),
                })
                .collect();
            let max_fds = runs.iter().find_map(|run| run.labels.max_fds);
            FdLimitRow {
                capacity: capacity(mode, max_fds, &tried),
                max_fds,
                most_without_errors: tried
                    .iter()
                    .filter(|tried| tried.failures.none())
                    .map(|tried| tried.connections)
                    .max(),
                first_with_errors: tried
                    .iter()
                    .filter(|tried| !tried.failures.none())
                    .map(|tried| tried.connections)
                    .min(),
                mode,
                tried,
            }
        })
        .collect()
}

/// What the steps with errors say of the capacity (see [`Capacity`]).
pub fn capacity(mode: Mode, max_fds: Option<u64>, tried: &[Tried]) -> Option<Capacity> {
    let failing: Vec<&Tried> = tried.iter().filter(|tried| tried.failed > 0).collect();
    let served: Vec<f64> = failing
        .iter()
        .map(|tried| tried.connections.saturating_sub(tried.failed) as f64)
        .collect();
    let spread = Spread::of(served)?;
    let connections = spread.median.round() as u64;
    let relays = mode.relays();
    let open_and_spare = match (relays, max_fds) {
        (true, Some(limit)) => {
            let most = median(failing.iter().filter_map(|tried| tried.master_fds))?.round() as u64;
            let relayed = RELAY_FDS_PER_CONNECTION * connections;
            (most >= relayed && limit >= most).then(|| (most - relayed, limit - most))
        }
        _ => None,
    };
    Some(Capacity {
        connections,
        steady: spread.max - spread.min <= STEADY_WITHIN_CONNECTIONS,
        timeouts_only: failing
            .iter()
            .all(|tried| tried.kinds.iter().all(|(kind, _)| kind == "timeout")),
        open_and_spare,
    })
}

/// What one fd limit row served: `112 at once`, `≥ 400 (limit not reached)`.
fn served_at_limit(row: &FdLimitRow) -> Option<String> {
    Some(
        match (row.capacity, row.most_without_errors, row.first_with_errors) {
            (Some(capacity), _, Some(_)) => format!("{} at once", count(capacity.connections)),
            (None, Some(most), Some(first)) => {
                format!("{} but not {}", count(most), count(first))
            }
            (None, None, Some(first)) => format!("fewer than {}", count(first)),
            (_, Some(most), None) => format!("≥ {} (limit not reached)", count(most)),
            (_, None, None) => return None,
        },
    )
}

/// The glance line of the fd limit: the connections each mode served with
/// its master's fds limited.
pub fn glance(figures: &Figures) -> Option<String> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for row in &figures.fd_limit.rows {
        let Some(text) = served_at_limit(row) else {
            continue;
        };
        let name = format!("`{}`", row.mode);
        match groups.iter_mut().find(|(served, _)| *served == text) {
            Some((_, modes)) => modes.push(name),
            None => groups.push((text, vec![name])),
        }
    }
    if groups.is_empty() {
        return None;
    }
    let mut limits: Vec<Option<u64>> = figures
        .fd_limit
        .rows
        .iter()
        .map(|row| row.max_fds)
        .collect();
    limits.sort_unstable();
    limits.dedup();
    let limit = match limits.as_slice() {
        [Some(fds)] => format!(" with the master limited to {} fds", count(*fds)),
        _ => " with the master's fds limited".to_owned(),
    };
    let served: Vec<String> = groups
        .iter()
        .map(|(text, modes)| format!("{} {text}", and_list(modes)))
        .collect();
    Some(format!(
        "**Connections served{limit}** (`--max-fds`): {}. {}",
        served.join("; "),
        section_link(HEADING)
    ))
}

/// §3: a row per mode and what its steps teach.
pub fn markdown(out: &mut String, figures: &Figures) {
    w!(out, "## {HEADING}");
    w!(out);
    w!(
        out,
        "Every mode with the master's fd limit lowered (`--max-fds`) and a rising number of \
         keep-alive connections: how many each serves before requests fail."
    );
    w!(out);
    rounds(out, figures.rounds.get(&Section::FdLimit));
    if figures.fd_limit.rows.is_empty() {
        nothing(out, "fd limit");
        return;
    }
    w!(
        out,
        "| mode | master --max-fds | most connections without errors | first with errors | connections tried: failed / unanswered requests, p99 |"
    );
    w!(out, "|---|---:|---:|---|---|");
    let mut lessons = Vec::new();
    for row in &figures.fd_limit.rows {
        let tried: Vec<String> = row
            .tried
            .iter()
            .map(|tried| {
                format!(
                    "{}: {}, {}",
                    count(tried.connections),
                    failures_count(&tried.failures),
                    opt_micros(tried.p99_us)
                )
            })
            .collect();
        let first = match row.first_with_errors {
            Some(n) => {
                let kinds = row
                    .tried
                    .iter()
                    .find(|tried| tried.connections == n)
                    .map(|tried| {
                        tried
                            .kinds
                            .iter()
                            .map(|(kind, count)| format!("{kind} {count}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                format!("{} ({kinds})", count(n))
            }
            None => "none".to_owned(),
        };
        let most = match (row.most_without_errors, row.first_with_errors) {
            (Some(most), None) => format!("≥ {} (limit not reached)", count(most)),
            (most, _) => most.map_or("none".to_owned(), count),
        };
        w!(
            out,
            "| {} | {} | {most} | {first} | {} |",
            row.mode,
            row.max_fds.map_or("–".to_owned(), count),
            tried.join(", ")
        );
        let limit = row
            .max_fds
            .map_or(String::new(), |fds| format!(" with {} fds", count(fds)));
        let p99 = match (
            row.tried
                .first()
                .and_then(|t| Some((t.connections, t.p99_us?))),
            row.tried
                .last()
                .and_then(|t| Some((t.connections, t.p99_us?))),
        ) {
            (Some((n_low, low)), Some((n_high, high))) if n_high > n_low => format!(
                ", its p99 {} at {} connections and {} at {}",
                micros(low),
                count(n_low),
                micros(high),
                count(n_high)
            ),
            _ => String::new(),
        };
        lessons.push(match (row.most_without_errors, row.first_with_errors) {
            (most, Some(first)) => {
                let mut text = format!(
                    "The `{}` master{limit} served {} but not {} connections.",
                    row.mode,
                    most.map_or("no count tried".to_owned(), count),
                    count(first)
                );
                if let Some(capacity) = row.capacity {
                    let steady = if capacity.steady {
                        "at every step with errors"
                    } else {
                        "the median over the steps with errors"
                    };
                    text.push_str(&format!(
                        " Its capacity is {} connections at once: N − failed, {steady}.",
                        count(capacity.connections),
                    ));
                    if let (Some((open, spare)), Some(limit)) =
                        (capacity.open_and_spare, row.max_fds)
                    {
                        text.push_str(&format!(
                            " That is (limit − open − spare) / {RELAY_FDS_PER_CONNECTION} = ({} − \
                             {} − {}) / {RELAY_FDS_PER_CONNECTION}, the open fds and the spare \
                             read from its most fds at those steps.",
                            count(limit),
                            count(open),
                            count(spare)
                        ));
                    }
                    if capacity.timeouts_only {
                        text.push_str(
                            " Every failure was a timeout: the clients beyond the capacity \
                             got no answer before their timeout.",
                        );
                    }
                }
                text
            }
            (Some(most), None) => format!(
                "The `{}` master{limit} served every count tried without an error: ≥ {} \
                 connections, its limit not reached{p99}.",
                row.mode,
                count(most),
            ),
            (None, None) => format!("The `{}` master{limit} has no step.", row.mode),
        });
    }
    w!(out);
    teach(out, &lessons);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{run, set_master_fds};
    use crate::sections::Figures;

    /// The fd limit: the most N without errors and the first N with errors.
    #[test]
    fn fd_limit_finds_the_edge() {
        let runs: Vec<Report> = [(50u64, 0u64), (100, 0), (150, 30), (200, 80)]
            .into_iter()
            .map(|(n, failed)| {
                let n_label = n.to_string();
                let mut run = run(
                    &[
                        ("section", "fdlimit"),
                        ("mode", "proxy"),
                        ("connections", &n_label),
                        ("max_fds", "256"),
                    ],
                    1.0,
                    1,
                );
                run.requests.failed = failed;
                run.errors.by_kind.insert("timeout".to_owned(), failed);
                run
            })
            .collect();
        let figures = Figures::of(&runs);
        let row = &figures.fd_limit.rows[0];
        assert_eq!(row.max_fds, Some(256));
        assert_eq!(row.most_without_errors, Some(100));
        assert_eq!(row.first_with_errors, Some(150));
        assert_eq!(row.tried[2].kinds, vec![("timeout".to_owned(), 30)]);
    }

    /// The proxy's capacity under --max-fds from its steps with errors: N −
    /// failed served at once, and (limit − open − spare) / 2 from its fds.
    #[test]
    fn fd_limit_capacity_from_the_failing_steps() {
        let runs: Vec<Report> = [(100u64, 0u64, 216usize), (150, 38, 240), (200, 88, 240)]
            .into_iter()
            .map(|(n, failed, fds)| {
                let n_label = n.to_string();
                let mut run = run(
                    &[
                        ("section", "fdlimit"),
                        ("mode", "proxy"),
                        ("connections", &n_label),
                        ("max_fds", "256"),
                    ],
                    1.0,
                    1,
                );
                run.requests.failed = failed;
                run.errors.by_kind.insert("timeout".to_owned(), failed);
                set_master_fds(&mut run, fds);
                run
            })
            .collect();
        let figures = Figures::of(&runs);
        let capacity = figures.fd_limit.rows[0].capacity.expect("a capacity");
        assert_eq!(
            capacity,
            Capacity {
                connections: 112,
                steady: true,
                timeouts_only: true,
                open_and_spare: Some((16, 16)),
            }
        );
        assert_eq!(figures.rounds.get(&Section::FdLimit), Some(&(1, 1)));
    }
}
