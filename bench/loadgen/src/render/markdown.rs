//! REPORT.md of `loadgen report`: the [`Figures`] as Markdown tables, each
//! section opened by what it shows and closed by what its figures teach — the
//! sentences are written from the figures, not fixed in advance.

use std::fmt::Write;

use super::charts::{FAIRNESS_SVG, FDS_SVG, LATENCY_SVG, MASTER_FDS_SVG};
use super::figures::{Figures, MasterCostRow, Spread, ThroughputRow};
use crate::report::format::{bytes, count, count_f64, micros, rate};
use crate::report::labels::{Load, Mode, Peer};

/// Renders the whole report.
pub fn render(figures: &Figures) -> String {
    let mut out = String::new();
    header(&mut out, figures);
    throughput(&mut out, figures);
    fd_bill(&mut out, figures);
    fd_limit(&mut out, figures);
    fairness(&mut out, figures);
    master_cost(&mut out, figures);
    faults(&mut out, figures);
    peers(&mut out, figures);
    out
}

/// `w!(out, ...)`: writeln! into a String, which cannot fail.
macro_rules! w {
    ($out:expr) => { let _ = writeln!($out); };
    ($out:expr, $($arg:tt)*) => { let _ = writeln!($out, $($arg)*); };
}

fn header(out: &mut String, figures: &Figures) {
    w!(
        out,
        "# One port, many workers: what each way of sharing it costs"
    );
    w!(out);
    w!(
        out,
        "Measured by `loadgen` ({} runs, read from `runs/`); how to run it again — the exact \
         commands, git revision, toolchain and limits — is in [README.md](README.md) beside \
         this file.",
        figures.runs
    );
    w!(out);
    for machine in &figures.machines {
        w!(
            out,
            "- Machine: {}, {} cores, {} {}",
            machine.cpu_model,
            machine.cores,
            machine.os,
            machine.kernel
        );
    }
    if figures.machines.len() > 1 {
        w!(out);
        w!(
            out,
            "**Warning:** these runs come from {} different machines; their figures do not compare.",
            figures.machines.len()
        );
    }
    w!(out);
    w!(
        out,
        "Figures are medians over the rounds (runs interleaved A B C D A B C D …), with the \
         smallest and largest round where it matters. Modes: `proxy` (the master relays \
         every byte), `handoff-socket` / `handoff-listener` / `handoff-reuseport` (the master \
         hands sockets to workers with SCM_RIGHTS), `ceiling` (one worker's own port, no \
         master in between)."
    );
    w!(out);
}

/// The values of a figure the runs agree on or not: `50`, `50 or 100`, `16, 50
/// or 100`; `N` without any.
fn one_of(values: &[usize]) -> String {
    let texts: Vec<String> = values.iter().map(|&value| count(value as u64)).collect();
    match texts.split_last() {
        None => "N".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn nothing(out: &mut String, what: &str) {
    w!(out, "_No {what} runs in this folder._");
    w!(out);
}

fn opt_micros(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), micros)
}

fn spread_rate(spread: &Spread) -> String {
    if spread.count > 1 {
        format!(
            "{} ({}–{})",
            count_f64(spread.median),
            count_f64(spread.min),
            count_f64(spread.max)
        )
    } else {
        count_f64(spread.median)
    }
}

fn load_name(load: Load) -> &'static str {
    match load {
        Load::KeepAlive => "keep-alive",
        Load::NewConn => "new connection per request",
        Load::OpenLoop => "open loop",
    }
}

fn throughput(out: &mut String, figures: &Figures) {
    w!(out, "## 1. Throughput and latency");
    w!(out);
    w!(
        out,
        "Requests per second and latency of every mode: {} keep-alive connections in a closed \
         loop; a new connection for every request (the case in which the modes differ most); \
         and an open loop at one fixed rate for all, so that latencies compare at equal load \
         (corrected for coordinated omission).",
        one_of(&figures.throughput_connections)
    );
    w!(out);
    if figures.throughput.is_empty() {
        nothing(out, "throughput");
        return;
    }
    w!(
        out,
        "| mode | load | requests/s median (min–max) | p50 | p99 | p99.9 | errors |"
    );
    w!(out, "|---|---|---:|---:|---:|---:|---:|");
    for row in &figures.throughput {
        let load = match row.asked_per_s {
            Some(asked) => format!("{} at {}/s", load_name(row.load), rate(asked)),
            None => load_name(row.load).to_owned(),
        };
        w!(
            out,
            "| {} | {load} | {} | {} | {} | {} | {} |",
            row.mode,
            spread_rate(&row.per_s),
            opt_micros(row.p50_us),
            opt_micros(row.p99_us),
            opt_micros(row.p99_9_us),
            errors(row.failed, row.requests),
        );
    }
    w!(out);
    if let Some((load, lines)) = &figures.spectra {
        if !lines.is_empty() {
            w!(
                out,
                "![Latency by percentile, {}, every mode]({LATENCY_SVG})",
                load_name(*load)
            );
            w!(out);
        }
    }
    let mut lessons = Vec::new();
    for load in [Load::KeepAlive, Load::NewConn] {
        let rows: Vec<&ThroughputRow> = figures
            .throughput
            .iter()
            .filter(|row| row.load == load)
            .collect();
        let best = rows
            .iter()
            .filter(|row| row.mode != Mode::Ceiling)
            .max_by(|a, b| a.per_s.median.total_cmp(&b.per_s.median));
        let worst = rows
            .iter()
            .filter(|row| row.mode != Mode::Ceiling)
            .min_by(|a, b| a.per_s.median.total_cmp(&b.per_s.median));
        if let (Some(best), Some(worst)) = (best, worst) {
            if best.mode != worst.mode {
                lessons.push(format!(
                    "With {}, `{}` served the most ({}/s) and `{}` the fewest ({}/s, {:.0} % of it).",
                    load_name(load),
                    best.mode,
                    count_f64(best.per_s.median),
                    worst.mode,
                    count_f64(worst.per_s.median),
                    100.0 * worst.per_s.median / best.per_s.median.max(1e-9)
                ));
            }
        }
        if let Some(ceiling) = rows.iter().find(|row| row.mode == Mode::Ceiling) {
            if let Some(proxy) = rows.iter().find(|row| row.mode == Mode::PROXY) {
                lessons.push(format!(
                    "With {}, the proxy reached {:.0} % of one worker's own port (the ceiling, {}/s).",
                    load_name(load),
                    100.0 * proxy.per_s.median / ceiling.per_s.median.max(1e-9),
                    count_f64(ceiling.per_s.median)
                ));
            }
        }
    }
    let open: Vec<&ThroughputRow> = figures
        .throughput
        .iter()
        .filter(|row| row.load == Load::OpenLoop && row.p99_us.is_some())
        .collect();
    if let (Some(low), Some(high)) = (
        open.iter()
            .min_by(|a, b| a.p99_us.unwrap_or(0.0).total_cmp(&b.p99_us.unwrap_or(0.0))),
        open.iter()
            .max_by(|a, b| a.p99_us.unwrap_or(0.0).total_cmp(&b.p99_us.unwrap_or(0.0))),
    ) {
        if low.mode != high.mode {
            lessons.push(format!(
                "At the same open-loop rate, p99 ran from {} (`{}`) to {} (`{}`).",
                opt_micros(low.p99_us),
                low.mode,
                opt_micros(high.p99_us),
                high.mode
            ));
        }
    }
    teach(out, &lessons);
}

fn errors(failed: u64, requests: u64) -> String {
    if failed == 0 {
        "0".to_owned()
    } else {
        format!(
            "{} ({:.2} %)",
            count(failed),
            100.0 * failed as f64 / requests.max(1) as f64
        )
    }
}

/// The closing paragraph of a section: what the figures teach.
fn teach(out: &mut String, lessons: &[String]) {
    if lessons.is_empty() {
        return;
    }
    w!(out, "**What it shows.** {}", lessons.join(" "));
    w!(out);
}

fn fd_bill(out: &mut String, figures: &Figures) {
    w!(out, "## 2. The fd bill");
    w!(out);
    w!(
        out,
        "The most file descriptors the master held while N keep-alive connections were open, \
         and its memory: a master that relays holds two fds per connection (the client's and \
         the worker's), one that hands sockets over holds none once they are handed."
    );
    w!(out);
    if figures.fd_bill.is_empty() {
        nothing(out, "fd bill");
        return;
    }
    w!(out, "![Master fds against open connections]({FDS_SVG})");
    w!(out);
    w!(
        out,
        "| mode | connections | master fds (max) | master RSS (max) | errors |"
    );
    w!(out, "|---|---:|---:|---:|---:|");
    for row in &figures.fd_bill {
        w!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.mode,
            count(row.connections),
            row.master_fds
                .map_or("–".to_owned(), |fds| count(fds.round() as u64)),
            row.master_rss_bytes
                .map_or("–".to_owned(), |rss| bytes(rss.round() as u64)),
            count(row.failed)
        );
    }
    w!(out);
    let lessons: Vec<String> = figures
        .fd_slopes
        .iter()
        .map(|slope| {
            format!(
                "The `{}` master held {:.1} fds per connection (on a base of {:.0}).",
                slope.mode,
                slope.fds_per_connection.max(0.0),
                slope.base_fds
            )
        })
        .collect();
    teach(out, &lessons);
}

fn fd_limit(out: &mut String, figures: &Figures) {
    w!(out, "## 3. The fd limit");
    w!(out);
    w!(
        out,
        "Every mode with the master's fd limit lowered (`--max-fds`) and a rising number of \
         keep-alive connections: how many each serves before requests fail."
    );
    w!(out);
    if figures.fd_limit.is_empty() {
        nothing(out, "fd limit");
        return;
    }
    w!(
        out,
        "| mode | master --max-fds | most connections without errors | first with errors | connections tried: failed requests |"
    );
    w!(out, "|---|---:|---:|---|---|");
    let mut lessons = Vec::new();
    for row in &figures.fd_limit {
        let tried: Vec<String> = row
            .tried
            .iter()
            .map(|tried| {
                format!(
                    "{}: {}, {}",
                    count(tried.connections),
                    count(tried.failed),
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
        w!(
            out,
            "| {} | {} | {} | {first} | {} |",
            row.mode,
            row.max_fds.map_or("–".to_owned(), count),
            row.most_without_errors.map_or("none".to_owned(), count),
            tried.join(", ")
        );
        let limit = row
            .max_fds
            .map_or(String::new(), |fds| format!(" with {} fds", count(fds)));
        lessons.push(match (row.most_without_errors, row.first_with_errors) {
            (Some(most), Some(first)) => format!(
                "The `{}` master{limit} served {} connections but not {}.",
                row.mode,
                count(most),
                count(first)
            ),
            (Some(most), None) => format!(
                "The `{}` master{limit} served every count tried without an error, up to {}{}.",
                row.mode,
                count(most),
                match (
                    row.tried.first().and_then(|t| t.p99_us),
                    row.tried.last().and_then(|t| t.p99_us)
                ) {
                    (Some(low), Some(high)) if row.tried.len() > 1 => format!(
                        ", with p99 going from {} to {} (a client that waits in the accept queue shows here, not in the errors)",
                        micros(low),
                        micros(high)
                    ),
                    _ => String::new(),
                }
            ),
            (None, _) => format!(
                "The `{}` master{limit} failed at every count tried.",
                row.mode
            ),
        });
    }
    w!(out);
    teach(out, &lessons);
}

fn fairness(out: &mut String, figures: &Figures) {
    w!(out, "## 4. Fairness");
    w!(out);
    w!(
        out,
        "How evenly the requests spread over the workers (Jain's index: 1 is even, 1/n all on \
         one), with and without keep-alive and with busy work per request; p99 beside, so an \
         unlucky worker shows in the tail."
    );
    w!(out);
    if figures.fairness.is_empty() {
        nothing(out, "fairness");
        return;
    }
    w!(
        out,
        "![Each worker's share of the requests, per mode]({FAIRNESS_SVG})"
    );
    w!(out);
    w!(
        out,
        "| mode | load | work per request | Jain's index | max/min | shares, largest first | p99 | errors |"
    );
    w!(out, "|---|---|---:|---:|---:|---|---:|---:|");
    for row in &figures.fairness {
        let shares: Vec<String> = row
            .shares
            .iter()
            .map(|share| format!("{:.1} %", share * 100.0))
            .collect();
        w!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.mode,
            load_name(row.load),
            if row.work_us == 0 {
                "–".to_owned()
            } else {
                format!("{} µs", count(row.work_us))
            },
            row.jain.map_or("–".to_owned(), |jain| format!("{jain:.3}")),
            row.max_min
                .map_or("∞".to_owned(), |ratio| format!("{ratio:.2}")),
            shares.join(" / "),
            opt_micros(row.p99_us),
            count(row.failed)
        );
    }
    w!(out);
    let mut lessons = Vec::new();
    let least = figures
        .fairness
        .iter()
        .filter(|row| row.jain.is_some())
        .min_by(|a, b| a.jain.unwrap_or(1.0).total_cmp(&b.jain.unwrap_or(1.0)));
    let most = figures
        .fairness
        .iter()
        .filter(|row| row.jain.is_some())
        .max_by(|a, b| a.jain.unwrap_or(0.0).total_cmp(&b.jain.unwrap_or(0.0)));
    if let (Some(least), Some(most)) = (least, most) {
        lessons.push(format!(
            "The least even spread was `{}` with {} (Jain's index {:.3}, the busiest worker {:.1} % of the requests); the most even `{}` with {} ({:.3}).",
            least.mode,
            load_name(least.load),
            least.jain.unwrap_or(0.0),
            least.shares.first().copied().unwrap_or(0.0) * 100.0,
            most.mode,
            load_name(most.load),
            most.jain.unwrap_or(0.0)
        ));
    }
    teach(out, &lessons);
}

fn master_cost(out: &mut String, figures: &Figures) {
    w!(out, "## 5. Master cost");
    w!(out);
    w!(
        out,
        "The master's CPU time per 1,000 requests (keep-alive) and per 1,000 connections (a \
         new connection per request), from the throughput runs, with the whole tree's \
         (master and workers) beside it."
    );
    w!(out);
    if figures.master_cost.is_empty() {
        nothing(
            out,
            "throughput runs with --watch on the master, so no master-cost",
        );
        return;
    }
    w!(
        out,
        "| mode | master CPU per 1,000 requests (keep-alive) | tree | master CPU per 1,000 connections (new conn) | tree |"
    );
    w!(out, "|---|---:|---:|---:|---:|");
    let ms = |value: Option<f64>| value.map_or("–".to_owned(), |ms| format!("{ms:.1} ms"));
    for row in &figures.master_cost {
        w!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.mode,
            ms(row.keepalive_master_ms),
            ms(row.keepalive_tree_ms),
            ms(row.newconn_master_ms),
            ms(row.newconn_tree_ms)
        );
    }
    w!(out);
    if !figures.master_fds.is_empty() {
        w!(
            out,
            "![The master's fds over one new-connection run per mode]({MASTER_FDS_SVG})"
        );
        w!(out);
    }
    let mut lessons = Vec::new();
    for (load, unit, pick) in [
        ("keep-alive", "requests", 0),
        ("a new connection per request", "connections", 1),
    ] {
        let value = |row: &MasterCostRow| match pick {
            0 => row.keepalive_master_ms,
            _ => row.newconn_master_ms,
        };
        let rows: Vec<(Mode, f64)> = figures
            .master_cost
            .iter()
            .filter_map(|row| Some((row.mode, value(row)?)))
            .collect();
        let most = rows.iter().max_by(|a, b| a.1.total_cmp(&b.1));
        let least = rows.iter().min_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some(most), Some(least)) = (most, least) {
            if most.0 != least.0 {
                lessons.push(format!(
                    "With {load}, the `{}` master spent {:.1} ms of CPU per 1,000 {unit}, the `{}` master {:.1} ms.",
                    most.0, most.1, least.0, least.1
                ));
            }
        }
    }
    teach(out, &lessons);
}

fn faults(out: &mut String, figures: &Figures) {
    w!(out, "## 6. Faults");
    w!(out);
    w!(
        out,
        "One worker killed with SIGKILL mid-run under load, per mode: the requests that failed, \
         and how long after the kill the respawned worker answered its first request."
    );
    w!(out);
    if figures.faults.is_empty() {
        nothing(out, "fault");
        return;
    }
    w!(
        out,
        "| mode | rounds | failed requests median (min–max) | failures by kind | kill → successor's first answer |"
    );
    w!(out, "|---|---:|---:|---|---:|");
    let mut lessons = Vec::new();
    for row in &figures.faults {
        let kinds: Vec<String> = row
            .kinds
            .iter()
            .map(|(kind, n)| format!("{kind} {}", count(*n)))
            .collect();
        let recovery = match row.recovery_ms {
            Some(spread) if spread.count > 1 => format!(
                "{:.0} ms ({:.0}–{:.0})",
                spread.median, spread.min, spread.max
            ),
            Some(spread) => format!("{:.0} ms", spread.median),
            None => "no successor answered".to_owned(),
        };
        w!(
            out,
            "| {} | {} | {} | {} | {recovery} |",
            row.mode,
            row.rounds,
            if row.failed.count > 1 {
                format!(
                    "{} ({}–{})",
                    row.failed.median, row.failed.min, row.failed.max
                )
            } else {
                format!("{}", row.failed.median)
            },
            if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds.join(", ")
            },
        );
        lessons.push(format!(
            "`{}` lost {} requests to the kill{}.",
            row.mode,
            row.failed.median,
            row.recovery_ms.map_or(String::new(), |spread| format!(
                " and served from the new worker {:.0} ms later",
                spread.median
            ))
        ));
    }
    w!(out);
    teach(out, &lessons);
}

fn peers(out: &mut String, figures: &Figures) {
    w!(out, "## 7. Peers");
    w!(out);
    w!(
        out,
        "Other software in the same rounds, measured by the same loadgen: nginx's stream \
         proxy in front of the same workers as `proxy`, and Node.js cluster with round-robin \
         (`node-rr`) and with SCHED_NONE (`node-none`) scheduling."
    );
    w!(out);
    if figures.peers.is_empty() {
        w!(
            out,
            "_No peer runs: install nginx (`apt-get install nginx libnginx-mod-stream`) and \
             Node.js 20 for the Node.js cluster, then run `scripts/compare.sh --peers`._"
        );
    } else {
        let names: Vec<String> = figures
            .peers
            .iter()
            .map(|mode| format!("`{mode}`"))
            .collect();
        w!(
            out,
            "Measured: {}; they appear in section 1's table and chart, and in every section \
             that ran them.",
            names.join(", ")
        );
        let missing: Vec<&str> = Peer::ALL
            .iter()
            .map(|&peer| Mode::Peer(peer))
            .filter(|mode| !figures.peers.contains(mode))
            .map(Mode::name)
            .collect();
        if !missing.is_empty() {
            w!(out);
            w!(out, "Not measured: {} (not installed).", missing.join(", "));
        }
    }
    w!(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The throughput section names the connections the runs had, not a
    /// number fixed in advance.
    #[test]
    fn names_the_connections_of_the_runs() {
        assert_eq!(one_of(&[]), "N");
        assert_eq!(one_of(&[50]), "50");
        assert_eq!(one_of(&[16, 50, 1000]), "16, 50 or 1,000");
        let figures = Figures {
            throughput_connections: vec![16],
            ..Figures::default()
        };
        assert!(render(&figures).contains(": 16 keep-alive connections in a closed loop"));
    }
}
