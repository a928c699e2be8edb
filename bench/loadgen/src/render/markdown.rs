//! REPORT.md of `loadgen report`: the [`Figures`] as Markdown tables, each
//! section opened by what it shows and closed by what its figures teach — the
//! sentences are written from the figures, not fixed in advance.

use std::fmt::Write;

use super::charts::{
    COST_SVG, FAIRNESS_SVG, FDS_SVG, LATENCY_RATE_SVG, LATENCY_SVG, MASTER_FDS_SVG, ROUNDS_SVG,
    STALL_SVG, UPGRADE_FAILURES_SVG, UPGRADE_TIMELINE_SVG,
};
use super::figures::{
    AROUND_AFTER_MS, AROUND_BEFORE_MS, CostRow, FdLimitRow, Figures, HELD_SHARE, Order, SLOS_US,
    SloCapacity, Spread, SweepLine, ThroughputRow, UpgradeRow, WAITING_RATIO, connections_at_limit,
};
use runs::format::{bytes, count, count_f64, micros, rate};
use runs::labels::{Load, Mode, Section, Strategy};

/// The usual soft limit of open fds per process (`ulimit -n`).
pub const USUAL_SOFT_LIMIT: f64 = 1024.0;

/// Renders the whole report.
pub fn render(figures: &Figures) -> String {
    let mut out = String::new();
    header(&mut out, figures);
    glance(&mut out, figures);
    throughput(&mut out, figures);
    sweep(&mut out, figures);
    fd_bill(&mut out, figures);
    fd_limit(&mut out, figures);
    fairness(&mut out, figures);
    master_cost(&mut out, figures);
    faults(&mut out, figures);
    peers(&mut out, figures);
    upgrades(&mut out, figures);
    limitations(&mut out, figures);
    out
}

/// The headings the first screen and the limitations link to, as written.
const THROUGHPUT: &str = "1. Throughput and latency";
const SWEEP: &str = "1b. Latency against offered load";
const FD_BILL: &str = "2. The fd bill";
const FD_LIMIT: &str = "3. The fd limit";
const FAIRNESS: &str = "4. Fairness";
const MASTER_COST: &str = "5. Master cost";
const FAULTS: &str = "6. Faults";
const UPGRADES: &str = "8. Upgrades";
const LIMITATIONS: &str = "Limitations";

/// The anchor GitHub gives a heading: lower case, punctuation dropped, spaces
/// as hyphens (`2. The fd bill` → `2-the-fd-bill`).
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `[§2](#2-the-fd-bill)`: a link to a numbered section.
fn section_link(heading: &str) -> String {
    let number = heading.split('.').next().unwrap_or(heading);
    format!("[§{number}](#{})", anchor(heading))
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
    let mut baseline = String::new();
    if has_mode(figures, Mode::Direct) {
        baseline.push_str(
            ", `direct` (the baseline: the clients connect straight to every worker's own \
             port, no master, no sharing)",
        );
    }
    if has_mode(figures, Mode::Ceiling) {
        baseline.push_str(
            ", `ceiling` (runs written before `direct`: one worker's own port, no master in \
             between)",
        );
    }
    w!(
        out,
        "A figure over rounds is their median with the smallest and largest round beside it; \
         each section says how many rounds (runs per figure) it has. Modes: `proxy` (the \
         master relays every byte), `handoff-socket` / `handoff-listener` / \
         `handoff-reuseport` (the master hands sockets to workers with SCM_RIGHTS){baseline}."
    );
    w!(out);
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
fn glance_fds(figures: &Figures) -> Option<String> {
    let per = |slopes: &[&super::figures::FdSlope]| -> Option<String> {
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
        .fd_slopes
        .iter()
        .filter(|s| s.mode == Mode::Proxy)
        .collect();
    let handoff: Vec<_> = figures
        .fd_slopes
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
        section_link(FD_BILL)
    ))
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
fn glance_fd_limit(figures: &Figures) -> Option<String> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for row in &figures.fd_limit {
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
    let mut limits: Vec<Option<u64>> = figures.fd_limit.iter().map(|row| row.max_fds).collect();
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
        section_link(FD_LIMIT)
    ))
}

/// The glance line of the cost: the whole tree's CPU per request with a new
/// connection per request, per mode, and the baseline's.
fn glance_cost(figures: &Figures) -> Option<String> {
    let rows: Vec<(Mode, f64)> = figures
        .cost
        .iter()
        .filter(|row| row.load == Load::NewConn && !row.nginx_alone)
        .filter_map(|row| Some((row.mode, row.tree_us?.median)))
        .collect();
    let listed = |peer: bool| -> Vec<String> {
        rows.iter()
            .filter(|(mode, _)| !mode.is_baseline() && mode.is_peer() == peer)
            .map(|(mode, us)| format!("`{mode}` {} µs", cpu_micros(*us)))
            .collect()
    };
    let modes = listed(false);
    if modes.is_empty() {
        return None;
    }
    let peers = listed(true);
    let peers = if peers.is_empty() {
        String::new()
    } else {
        format!("; peers {}", peers.join(", "))
    };
    let baseline = rows
        .iter()
        .find(|(mode, _)| *mode == Mode::Direct)
        .or_else(|| rows.iter().find(|(mode, _)| *mode == Mode::Ceiling))
        .map_or(String::new(), |(mode, us)| {
            format!(
                "; the baseline {} {} µs",
                baseline_name(*mode),
                cpu_micros(*us)
            )
        });
    Some(format!(
        "**Server CPU per request, a new connection per request** (the whole tree, median): \
         {}{baseline}{peers}. {}",
        modes.join(", "),
        section_link(MASTER_COST)
    ))
}

/// The first screen: the headline figures, each linked to its section, and
/// which process holds which fd in each mode.
fn glance(out: &mut String, figures: &Figures) {
    w!(out, "## At a glance");
    w!(out);
    let lines: Vec<String> = [
        glance_fds(figures),
        glance_fd_limit(figures),
        glance_cost(figures),
        glance_capacity(figures),
    ]
    .into_iter()
    .flatten()
    .collect();
    for line in &lines {
        w!(out, "- {line}");
    }
    if !lines.is_empty() {
        w!(out);
    }
    w!(
        out,
        "Who holds an fd for each client connection — the mechanism, not a measurement ({} \
         has the measured figures):",
        section_link(FD_BILL)
    );
    w!(out);
    w!(out, "| mode | master | the worker that serves it |");
    w!(out, "|---|---|---|");
    w!(
        out,
        "| `proxy` | 2: the client's socket and its own connection to the worker | 1: the \
         master's connection |"
    );
    w!(
        out,
        "| `handoff-socket` | 1, only until the worker acknowledges the handed socket; then 0 | \
         1: the client's socket |"
    );
    w!(
        out,
        "| `handoff-listener`, `handoff-reuseport` | 0: the workers accept themselves | 1: the \
         client's socket |"
    );
    for baseline in [Mode::Direct, Mode::Ceiling] {
        if has_mode(figures, baseline) {
            w!(
                out,
                "| baseline `{baseline}` | none: not in the path | 1: the client's socket |"
            );
        }
    }
    w!(out);
}

/// `0-1` or `0, 2-3`: a CPU list as /proc writes it.
fn cpu_list(cpus: &[usize]) -> String {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for &cpu in cpus {
        match ranges.last_mut() {
            Some((_, high)) if *high + 1 == cpu => *high = cpu,
            _ => ranges.push((cpu, cpu)),
        }
    }
    let texts: Vec<String> = ranges
        .iter()
        .map(|&(low, high)| {
            if low == high {
                low.to_string()
            } else {
                format!("{low}-{high}")
            }
        })
        .collect();
    texts.join(", ")
}

/// `0-1` or `0-1 or 2-3`: the CPU lists the runs recorded.
fn cpu_lists(lists: &[Vec<usize>]) -> String {
    let texts: Vec<String> = lists.iter().map(|list| cpu_list(list)).collect();
    match texts.split_last() {
        None => "–".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The last section: what the runs do not show, from what they recorded.
fn limitations(out: &mut String, figures: &Figures) {
    w!(out, "## {LIMITATIONS}");
    w!(out);
    let setup = &figures.setup;
    let cores = {
        let mut cores: Vec<usize> = figures.machines.iter().map(|m| m.cores).collect();
        cores.sort_unstable();
        cores.dedup();
        one_of(&cores)
    };
    let recorded = setup.shared + setup.pinned;
    let mut cpus = if recorded == 0 {
        format!(
            "**CPUs:** the runs did not record which CPUs loadgen and the server could use (no \
             `affinity` in their JSON); the machine has {cores} cores, and nothing in the runs \
             says loadgen and the server did not share them. On shared cores requests/s at \
             saturation measures loadgen's CPU per request as much as the server's."
        )
    } else if setup.pinned == 0 {
        format!(
            "**CPUs: shared.** In every run that recorded it, loadgen (CPUs {}) and the server \
             (CPUs {}) could run on the same CPUs of the machine's {cores}: requests/s at \
             saturation measures loadgen's CPU per request as much as the server's.",
            cpu_lists(&setup.loadgen_cpus),
            cpu_lists(&setup.server_cpus)
        )
    } else if setup.shared == 0 {
        format!(
            "**CPUs: pinned apart.** In every run that recorded it, loadgen ran on CPUs {} and \
             the server on CPUs {} of the machine's {cores}, none shared; they still share \
             memory, caches and the kernel.",
            cpu_lists(&setup.loadgen_cpus),
            cpu_lists(&setup.server_cpus)
        )
    } else {
        format!(
            "**CPUs: mixed.** loadgen and the server shared CPUs in {} runs and were pinned \
             apart in {} (loadgen on CPUs {}, the server on {}, of the machine's {cores}): the \
             figures of the shared runs measure loadgen's CPU too.",
            setup.shared,
            setup.pinned,
            cpu_lists(&setup.loadgen_cpus),
            cpu_lists(&setup.server_cpus)
        )
    };
    if recorded > 0 && setup.unrecorded > 0 {
        cpus.push_str(&format!(
            " {} runs did not record their CPUs.",
            setup.unrecorded
        ));
    }
    w!(out, "- {cpus}");
    let hosts: Vec<String> = setup.hosts.iter().map(|h| format!("`{h}`")).collect();
    if setup.loopback_only() {
        w!(
            out,
            "- **Loopback only:** every target was on this machine ({}): no network card, no \
             wire, no interrupts from one; a client on another host adds them.",
            and_list(&hosts)
        );
    } else if !hosts.is_empty() {
        w!(
            out,
            "- **Targets:** {}; the runs on loopback had no network card or wire in the path.",
            and_list(&hosts)
        );
    }
    let workers: Vec<usize> = setup.workers.iter().map(|&w| w as usize).collect();
    if workers.is_empty() {
        w!(
            out,
            "- **Workers:** the runs do not say how many workers the server had (no `workers` \
             label)."
        );
    } else {
        w!(
            out,
            "- **Workers:** {} per server (the runs' `workers` label); nothing here shows how \
             the modes scale with more.",
            one_of(&workers)
        );
    }
    let sections = [
        (Section::Throughput, THROUGHPUT),
        (Section::Sweep, SWEEP),
        (Section::FdBill, FD_BILL),
        (Section::FdLimit, FD_LIMIT),
        (Section::Fairness, FAIRNESS),
        (Section::Faults, FAULTS),
    ];
    let rounds: Vec<String> = sections
        .iter()
        .filter_map(|&(section, heading)| {
            let (low, high) = figures.rounds.get(&section)?;
            let n = if low == high {
                low.to_string()
            } else {
                format!("{low}–{high}")
            };
            let also = if section == Section::Throughput {
                format!(" and {}", section_link(MASTER_COST))
            } else {
                String::new()
            };
            Some(format!("{n} in {}{also}", section_link(heading)))
        })
        .collect();
    if !rounds.is_empty() {
        w!(
            out,
            "- **Rounds per figure:** {}. A figure from one run is an order of magnitude, \
             not a ranking; with few rounds a difference inside the min–max ranges is no \
             difference.",
            rounds.join(", ")
        );
    }
    w!(
        out,
        "- **The machine:** a virtual machine or a machine shared with other work adds noise \
         no figure here measures (stolen CPU time, neighbours, frequency changes): a caveat, \
         not a measurement."
    );
    w!(out);
}

/// Whether any throughput or fd bill figure is of `mode`.
fn has_mode(figures: &Figures, mode: Mode) -> bool {
    figures.throughput.iter().any(|row| row.mode == mode)
        || figures.fd_bill.iter().any(|row| row.mode == mode)
}

/// The sentence that says how many rounds a section's figures come from.
fn rounds(out: &mut String, figures: &Figures, section: Section) {
    let text = match figures.rounds.get(&section) {
        None => return,
        Some((1, 1)) => {
            "One run per figure, no rounds: an order of magnitude, not a ranking.".to_owned()
        }
        Some((low, high)) if low == high => {
            format!("Each figure comes from {low} rounds: the median, and min–max beside it.")
        }
        Some((low, high)) => format!(
            "Each figure comes from {low} to {high} rounds: the median, and min–max beside it."
        ),
    };
    w!(out, "_{text}_");
    w!(out);
}

/// A latency over rounds: `1.97 ms (1.66 ms–2.23 ms)`, or `–` without one.
fn spread_micros(spread: Option<Spread>) -> String {
    match spread {
        None => "–".to_owned(),
        Some(spread) if spread.count > 1 => format!(
            "{} ({}–{})",
            micros(spread.median),
            micros(spread.min),
            micros(spread.max)
        ),
        Some(spread) => micros(spread.median),
    }
}

/// CPU µs: one decimal below 100 µs, none above.
fn cpu_micros(us: f64) -> String {
    if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// CPU µs per request over rounds: `10.2 (9.8–11.0)`, or `–` without one.
fn spread_cpu(spread: Option<Spread>) -> String {
    match spread {
        None => "–".to_owned(),
        Some(spread) if spread.count > 1 => format!(
            "{} ({}–{})",
            cpu_micros(spread.median),
            cpu_micros(spread.min),
            cpu_micros(spread.max)
        ),
        Some(spread) => cpu_micros(spread.median),
    }
}

/// How a sentence about `load` opens.
fn with_load(load: Load) -> &'static str {
    match load {
        Load::KeepAlive => "With keep-alive",
        Load::NewConn => "With a new connection per request",
        Load::OpenLoop => "In the open loop",
    }
}

/// What `mode` is called when it is the baseline.
fn baseline_name(mode: Mode) -> String {
    match mode {
        Mode::Ceiling => "`ceiling` (one worker's own port)".to_owned(),
        mode => format!("`{mode}`"),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The ranking sentence of `rows` (one load) by `figure`, higher first: the
/// top mode, the modes clearly below it and those with no clear difference.
fn ranking<N: std::fmt::Display + PartialEq, T>(
    what: &str,
    rows: &[(N, Spread, T)],
    higher_is_better: bool,
    unit: impl Fn(f64) -> String,
) -> Option<String> {
    let best = rows.iter().max_by(|a, b| {
        let order = a.1.median.total_cmp(&b.1.median);
        if higher_is_better {
            order
        } else {
            order.reverse()
        }
    })?;
    let others: Vec<&(N, Spread, T)> = rows.iter().filter(|row| row.0 != best.0).collect();
    if others.is_empty() {
        return None;
    }
    let named = |order: Order| -> Vec<String> {
        others
            .iter()
            .filter(|row| Order::of(&best.1, &row.1) == order)
            .map(|row| format!("`{}`", row.0))
            .collect()
    };
    let (beaten, beaten_order) = if higher_is_better {
        (named(Order::Above), "above")
    } else {
        (named(Order::Below), "below")
    };
    let overlap = named(Order::Overlap);
    let one_round = named(Order::OneRound);
    let mut text = format!(
        "{what}, `{}` had the {} median ({})",
        best.0,
        if higher_is_better {
            "highest"
        } else {
            "lowest"
        },
        unit(best.1.median)
    );
    if !beaten.is_empty() {
        text.push_str(&format!(
            "; every round {beaten_order} every round of {}",
            and_list(&beaten)
        ));
    }
    if !overlap.is_empty() {
        text.push_str(&format!(
            "; no clear difference from {} (the rounds' ranges overlap)",
            and_list(&overlap)
        ));
    }
    if !one_round.is_empty() {
        text.push_str(&format!(
            "; against {} one round only, no ranking",
            and_list(&one_round)
        ));
    }
    text.push('.');
    Some(text)
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
    w!(out, "## {THROUGHPUT}");
    w!(out);
    let open_loop = if figures
        .throughput
        .iter()
        .any(|row| row.load == Load::OpenLoop)
    {
        "; and an open loop at one asked rate for all, so that latencies compare at equal load \
         (corrected for coordinated omission: counted from when each request was due)"
            .to_owned()
    } else {
        format!(
            "; each until it is saturated, so its latency is that of a saturated server: {} \
             compares the latencies at equal loads",
            section_link(SWEEP)
        )
    };
    w!(
        out,
        "Requests per second and latency of every mode: {} keep-alive connections in a closed \
         loop; a new connection for every request (the case in which the modes differ \
         most){open_loop}.",
        one_of(&figures.throughput_connections)
    );
    w!(out);
    rounds(out, figures, Section::Throughput);
    if figures.throughput.is_empty() {
        nothing(out, "throughput");
        return;
    }
    w!(
        out,
        "| mode | load | requests/s median (min–max) | p50 | p99 median (min–max) | p99.9 | errors |"
    );
    w!(out, "|---|---|---:|---:|---:|---:|---:|");
    for row in &figures.throughput {
        let (load, per_s) = match row.asked_per_s {
            Some(asked) => (
                format!("{}, asked {}/s", load_name(row.load), rate(asked.median)),
                format!(
                    "achieved {}, {:.0} % of asked",
                    spread_rate(&row.per_s),
                    100.0 * row.per_s.median / asked.median.max(1e-9)
                ),
            ),
            None => (load_name(row.load).to_owned(), spread_rate(&row.per_s)),
        };
        w!(
            out,
            "| {} | {load} | {per_s} | {} | {} | {} | {} |",
            row.mode,
            opt_micros(row.p50_us),
            spread_micros(row.p99),
            opt_micros(row.p99_9_us),
            errors(row.failed, row.requests),
        );
    }
    w!(out);
    if figures
        .throughput
        .iter()
        .any(|row| row.load != Load::OpenLoop && !row.every_round.is_empty())
    {
        w!(
            out,
            "![Every round per mode: requests/s and CPU per request]({ROUNDS_SVG})"
        );
        w!(out);
    }
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
        let ranked: Vec<(Mode, Spread, ())> = rows
            .iter()
            .filter(|row| !row.mode.is_baseline())
            .map(|row| (row.mode, row.per_s, ()))
            .collect();
        if let Some(text) = ranking(with_load(load), &ranked, true, |per_s| {
            format!("{}/s", count_f64(per_s))
        }) {
            lessons.push(text);
        }
        let baseline = rows
            .iter()
            .find(|row| row.mode == Mode::Direct)
            .or_else(|| rows.iter().find(|row| row.mode == Mode::Ceiling));
        if let Some(baseline) = baseline {
            let against: Vec<String> = rows
                .iter()
                .filter(|row| !row.mode.is_baseline())
                .map(|row| {
                    let mark = match Order::of(&row.per_s, &baseline.per_s) {
                        Order::Above => ", clearly above",
                        Order::Below => ", clearly below",
                        Order::Overlap => ", no clear difference",
                        Order::OneRound => "",
                    };
                    format!(
                        "`{}` {:.0} %{mark}",
                        row.mode,
                        100.0 * row.per_s.median / baseline.per_s.median.max(1e-9)
                    )
                })
                .collect();
            if !against.is_empty() {
                lessons.push(format!(
                    "{}, against the baseline {} at {}/s: {}.",
                    with_load(load),
                    baseline_name(baseline.mode),
                    count_f64(baseline.per_s.median),
                    against.join("; ")
                ));
            }
        }
    }
    let open: Vec<&ThroughputRow> = figures
        .throughput
        .iter()
        .filter(|row| row.load == Load::OpenLoop && row.p99_us.is_some())
        .collect();
    for row in &open {
        if let Some(asked) = row.asked_per_s {
            let achieved = row.per_s.median / asked.median.max(1e-9);
            if achieved < 0.97 {
                lessons.push(format!(
                    "`{}` achieved only {:.0} % of the asked {}/s.",
                    row.mode,
                    100.0 * achieved,
                    rate(asked.median)
                ));
            }
        }
        if row.waiting_rounds > 0 {
            lessons.push(format!(
                "In the open loop, `{}`'s corrected p99 was {:.0}× or more its p99 as sent in \
                 {} of {} rounds ({} against {}, medians): the load generator's requests were \
                 waiting to be sent — the server fell behind the schedule, and the latency \
                 counted from the send hides it.",
                row.mode,
                WAITING_RATIO,
                row.waiting_rounds,
                row.per_s.count,
                opt_micros(row.p99_us),
                opt_micros(row.p99_uncorrected_us)
            ));
        }
    }
    if let (Some(low), Some(high)) = (
        open.iter()
            .min_by(|a, b| a.p99_us.unwrap_or(0.0).total_cmp(&b.p99_us.unwrap_or(0.0))),
        open.iter()
            .max_by(|a, b| a.p99_us.unwrap_or(0.0).total_cmp(&b.p99_us.unwrap_or(0.0))),
    ) {
        if low.mode != high.mode {
            lessons.push(format!(
                "At the same asked open-loop rate{}, the median p99 ran from {} (`{}`) to {} (`{}`).",
                low.asked_per_s
                    .map_or(String::new(), |asked| format!(" of {}/s", rate(asked.median))),
                opt_micros(low.p99_us),
                low.mode,
                opt_micros(high.p99_us),
                high.mode
            ));
        }
    }
    teach(out, &lessons);
}

/// A sweep's capacity at an objective: `12,000/s`, `≥ 40,000/s (not
/// reached)`, `< 1,000/s (the lightest step missed)`, or `–` without steps.
fn slo_capacity(line: &SweepLine, slo_us: f64) -> String {
    match line.capacity(slo_us) {
        SloCapacity::Held(rate_per_s) => format!("{}/s", rate(rate_per_s)),
        SloCapacity::NotReached(rate_per_s) => {
            format!("≥ {}/s (not reached)", rate(rate_per_s))
        }
        SloCapacity::None => line.steps.first().map_or("–".to_owned(), |step| {
            format!(
                "< {}/s (the lightest step missed)",
                rate(step.offered_per_s)
            )
        }),
    }
}

/// An objective: `p99 ≤ 1 ms`.
fn slo_name(slo_us: f64) -> String {
    format!("p99 ≤ {}", micros_short(slo_us))
}

/// `1 ms`, `10 ms`, `500 µs`: a latency objective, without decimals.
fn micros_short(us: f64) -> String {
    if us >= 1000.0 {
        format!("{} ms", us / 1000.0)
    } else {
        format!("{us} µs")
    }
}

/// The glance line of the sweep: each mode's capacity at p99 ≤ 10 ms, under
/// each load.
fn glance_capacity(figures: &Figures) -> Option<String> {
    let slo = SLOS_US[SLOS_US.len() - 1];
    let mut modes: Vec<Mode> = figures.sweep.iter().map(|line| line.mode).collect();
    modes.dedup();
    let loads: Vec<Load> = [Load::KeepAlive, Load::NewConn]
        .into_iter()
        .filter(|&load| figures.sweep.iter().any(|line| line.load == load))
        .collect();
    if modes.is_empty() || loads.is_empty() {
        return None;
    }
    let entries: Vec<String> = modes
        .iter()
        .map(|&mode| {
            let per_load: Vec<String> = loads
                .iter()
                .map(|&load| {
                    figures
                        .sweep
                        .iter()
                        .find(|line| line.mode == mode && line.load == load)
                        .map_or("–".to_owned(), |line| slo_capacity(line, slo))
                })
                .collect();
            format!("`{mode}` {}", per_load.join(" / "))
        })
        .collect();
    let loads: Vec<&str> = loads.iter().map(|&load| load_name(load)).collect();
    Some(format!(
        "**Capacity at {}** (the highest offered rate held without errors, open loop; {}): {}. \
         {}",
        slo_name(slo),
        loads.join(" / "),
        entries.join(", "),
        section_link(SWEEP)
    ))
}

/// Section 1b: latency against offered load.
fn sweep(out: &mut String, figures: &Figures) {
    w!(out, "## {SWEEP}");
    w!(out);
    w!(
        out,
        "Every mode at the same offered rates in an open loop ({} connections, `--rate`), with \
         keep-alive and with a new connection per request, from light load to past the \
         capacity of the slowest mode. Latency is counted from when each request was due \
         (corrected for coordinated omission); the latency as sent (uncorrected) is beside it. \
         A step is **held** when at least {:.0} % of its requests were answered, none \
         failed, and most were sent on time (the p50 less than {:.0}× the p50 as sent): \
         *answered/s* counts late answers too, so a server that fell behind the schedule \
         can show 100 % with a p50 of a second. A mode's capacity at an objective is the \
         highest offered rate up to which every step was held with its p99 within it. The rates, and how they were chosen \
         from §1's runs, are in [README.md](README.md).",
        one_of(&figures.sweep_connections),
        HELD_SHARE * 100.0,
        WAITING_RATIO
    );
    w!(out);
    rounds(out, figures, Section::Sweep);
    if figures.sweep.is_empty() {
        nothing(out, "sweep");
        return;
    }
    w!(
        out,
        "![p99 against offered rate, per mode, keep-alive and a new connection per request]({LATENCY_RATE_SVG})"
    );
    w!(out);
    let loads: Vec<Load> = [Load::KeepAlive, Load::NewConn, Load::OpenLoop]
        .into_iter()
        .filter(|&load| figures.sweep.iter().any(|line| line.load == load))
        .collect();
    let mut header = vec!["mode".to_owned()];
    for &load in &loads {
        for slo in SLOS_US {
            header.push(format!("{}, {}", load_name(load), slo_name(slo)));
        }
    }
    w!(out, "The highest offered rate held at each objective:");
    w!(out);
    w!(out, "| {} |", header.join(" | "));
    w!(out, "|---|{}", "---:|".repeat(header.len() - 1));
    let mut modes: Vec<Mode> = figures.sweep.iter().map(|line| line.mode).collect();
    modes.dedup();
    for &mode in &modes {
        let mut cells = vec![format!("`{mode}`")];
        for &load in &loads {
            let line = figures
                .sweep
                .iter()
                .find(|line| line.mode == mode && line.load == load);
            for slo in SLOS_US {
                cells.push(line.map_or("–".to_owned(), |line| slo_capacity(line, slo)));
            }
        }
        w!(out, "| {} |", cells.join(" | "));
    }
    w!(out);
    for &load in &loads {
        w!(out, "**{}**, every step:", capitalised(load_name(load)));
        w!(out);
        w!(
            out,
            "| mode | offered/s | answered/s | held | p50 | p99 | p99.9 | p50 as sent | p99 as sent | p99.9 as sent | errors |"
        );
        w!(
            out,
            "|---|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for line in figures.sweep.iter().filter(|line| line.load == load) {
            for step in &line.steps {
                w!(
                    out,
                    "| {} | {} | {} ({:.0} %) | {} | {} | {}{} | {} | {} | {} | {} | {} |",
                    line.mode,
                    rate(step.offered_per_s),
                    rate(step.achieved_per_s),
                    100.0 * step.achieved_per_s / step.offered_per_s.max(1e-9),
                    if step.held() { "yes" } else { "no" },
                    opt_micros(step.p50_us),
                    opt_micros(step.p99_us),
                    if step.waiting() { " ²" } else { "" },
                    opt_micros(step.p99_9_us),
                    opt_micros(step.p50_sent_us),
                    opt_micros(step.p99_sent_us),
                    opt_micros(step.p99_9_sent_us),
                    errors(step.failed, step.requests),
                );
            }
        }
        w!(out);
    }
    let mut lessons = Vec::new();
    if figures
        .sweep
        .iter()
        .any(|line| line.waiting().next().is_some())
    {
        w!(
            out,
            "² The corrected p99 is {WAITING_RATIO:.0}× or more the p99 as sent: the load \
             generator's requests were waiting to be sent."
        );
        w!(out);
    }
    for &load in &loads {
        if let Some(text) = sweep_capacity_lesson(figures, load) {
            lessons.push(text);
        }
    }
    for line in &figures.sweep {
        let waiting: Vec<_> = line.waiting().collect();
        let Some(worst) = waiting.iter().max_by(|a, b| {
            let ratio = |s: &&&super::figures::SweepStep| {
                s.p99_us.unwrap_or(0.0) / s.p99_sent_us.unwrap_or(1.0).max(1.0)
            };
            ratio(a).total_cmp(&ratio(b))
        }) else {
            continue;
        };
        let rates: Vec<String> = waiting
            .iter()
            .map(|step| format!("{}/s", rate(step.offered_per_s)))
            .collect();
        lessons.push(format!(
            "`{}` {}: at {} of its {} steps ({} offered) the corrected p99 was \
             {WAITING_RATIO:.0}× or more the p99 as sent (at {}/s: {} against {}): the load \
             generator's requests were waiting to be sent — the server fell behind the \
             schedule, and the latency counted from the send hides it.",
            line.mode,
            load_name(line.load),
            waiting.len(),
            line.steps.len(),
            and_list(&rates),
            rate(worst.offered_per_s),
            opt_micros(worst.p99_us),
            opt_micros(worst.p99_sent_us),
        ));
    }
    teach(out, &lessons);
}

/// What the sweep of `load` shows of the capacity at the loosest objective:
/// its range over the modes, and the modes that missed it at the lightest
/// step.
fn sweep_capacity_lesson(figures: &Figures, load: Load) -> Option<String> {
    let slo = SLOS_US[SLOS_US.len() - 1];
    let lines: Vec<&SweepLine> = figures
        .sweep
        .iter()
        .filter(|line| line.load == load)
        .collect();
    let named = |modes: &[Mode]| -> String {
        let names: Vec<String> = modes.iter().map(|mode| format!("`{mode}`")).collect();
        and_list(&names)
    };
    let mut held: Vec<(Mode, f64)> = Vec::new();
    let mut missed: Vec<Mode> = Vec::new();
    for line in &lines {
        match line.capacity(slo) {
            SloCapacity::Held(rate) | SloCapacity::NotReached(rate) => held.push((line.mode, rate)),
            SloCapacity::None => missed.push(line.mode),
        }
    }
    let lightest = lines
        .iter()
        .filter_map(|line| line.steps.first())
        .map(|step| step.offered_per_s)
        .fold(f64::INFINITY, f64::min);
    let missed_text = if missed.is_empty() {
        String::new()
    } else {
        format!(
            "{} missed it even at the lightest step, {}/s",
            named(&missed),
            rate(lightest)
        )
    };
    let low = held.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied();
    let high = held.iter().max_by(|a, b| a.1.total_cmp(&b.1)).copied();
    let at = |value: f64| -> Vec<Mode> {
        held.iter()
            .filter(|(_, rate)| *rate == value)
            .map(|(mode, _)| *mode)
            .collect()
    };
    let text = match (low, high) {
        (None, _) | (_, None) => format!(
            "{}, no mode held p99 ≤ {} with no error even at the lightest step, {}/s.",
            with_load(load),
            micros_short(slo),
            rate(lightest)
        ),
        (Some(low), Some(high)) if low.1 < high.1 => format!(
            "{}, the capacity at {} ran from {}/s ({}) to {}/s ({}){}; the steps are a \
             factor {:.1} apart, so modes one step apart may differ by less.",
            with_load(load),
            slo_name(slo),
            rate(low.1),
            named(&at(low.1)),
            rate(high.1),
            named(&at(high.1)),
            if missed_text.is_empty() {
                String::new()
            } else {
                format!("; {missed_text}")
            },
            step_factor(figures, load)
        ),
        (Some(low), Some(_)) if missed.is_empty() && held.len() > 1 => format!(
            "{}, every mode had the same capacity at {}: {}/s.",
            with_load(load),
            slo_name(slo),
            rate(low.1)
        ),
        (Some(low), Some(_)) => format!(
            "{}, {} held {} up to {}/s{}.",
            with_load(load),
            named(&at(low.1)),
            slo_name(slo),
            rate(low.1),
            if missed_text.is_empty() {
                String::new()
            } else {
                format!("; {missed_text}")
            }
        ),
    };
    Some(text)
}

/// The median factor between consecutive offered rates of `load`'s sweep.
fn step_factor(figures: &Figures, load: Load) -> f64 {
    super::figures::median(
        figures
            .sweep
            .iter()
            .filter(|line| line.load == load)
            .flat_map(|line| {
                line.steps
                    .windows(2)
                    .map(|pair| pair[1].offered_per_s / pair[0].offered_per_s.max(1e-9))
            }),
    )
    .unwrap_or(1.0)
}

/// `Keep-alive` of `keep-alive`.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().chain(chars).collect()
    })
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
    w!(out, "## {FD_BILL}");
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
    rounds(out, figures, Section::FdBill);
    if figures.fd_bill.is_empty() {
        nothing(out, "fd bill");
        return;
    }
    w!(
        out,
        "![Master and whole-tree fds against open connections]({FDS_SVG})"
    );
    w!(out);
    w!(
        out,
        "| mode | connections | master fds | workers fds | tree fds | master RSS | workers RSS | tree RSS | errors |"
    );
    w!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let fds = |value: Option<f64>| value.map_or("–".to_owned(), |fds| count(fds.round() as u64));
    let rss = |value: Option<f64>| value.map_or("–".to_owned(), |rss| bytes(rss.round() as u64));
    for row in &figures.fd_bill {
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
            count(row.failed)
        );
    }
    w!(out);
    let mut lessons: Vec<String> = figures
        .fd_slopes
        .iter()
        .map(|slope| {
            let tree = slope.tree.map_or(String::new(), |(per, base)| {
                format!(
                    "; its whole tree {:.1} per connection (on a base of {:.0})",
                    per.max(0.0),
                    base
                )
            });
            let at_limit = match connections_at_limit(
                USUAL_SOFT_LIMIT,
                slope.base_fds,
                slope.fds_per_connection,
            ) {
                Some(n) => format!(
                    ": under the usual soft limit of {} fds it can hold about {} connections",
                    count(USUAL_SOFT_LIMIT as u64),
                    count(n as u64)
                ),
                None => ": its own fds do not limit the connections".to_owned(),
            };
            format!(
                "The `{}` master held {:.1} fds per connection (on a base of {:.0}){tree}{at_limit}.",
                slope.mode,
                slope.fds_per_connection.max(0.0),
                slope.base_fds
            )
        })
        .collect();
    if let Some(most) = figures.fd_bill.iter().map(|row| row.connections).max() {
        let trees: Vec<String> = figures
            .fd_bill
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

fn fd_limit(out: &mut String, figures: &Figures) {
    w!(out, "## {FD_LIMIT}");
    w!(out);
    w!(
        out,
        "Every mode with the master's fd limit lowered (`--max-fds`) and a rising number of \
         keep-alive connections: how many each serves before requests fail."
    );
    w!(out);
    rounds(out, figures, Section::FdLimit);
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
                            " That is (limit − open − spare) / 2 = ({} − {} − {}) / 2, the \
                             open fds and the spare read from its most fds at those steps.",
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

fn fairness(out: &mut String, figures: &Figures) {
    w!(out, "## {FAIRNESS}");
    w!(out);
    w!(
        out,
        "Who gets the connections when the workers accept (or are handed) them, with more \
         workers than cores, so that the accept path and not only the CPU scheduler decides; \
         and who waits when one worker stalls. Each way of sharing the port is measured, \
         `handoff-listener` once per `--accept` strategy (drain: every waiting worker is woken \
         and the first takes the queue; single: the same, one connection per wake-up; \
         exclusive: EPOLLEXCLUSIVE, one waiter woken; blocking: a thread blocked in accept(2), \
         the kernel's FIFO queue). Jain's index counts every worker, one that got nothing as 0: \
         1 is even, 1/n is all on one."
    );
    w!(out);
    rounds(out, figures, Section::Fairness);
    if figures.fairness.is_empty() && figures.stalls.is_empty() && figures.mixes.is_empty() {
        nothing(out, "fairness");
        return;
    }
    fairness_spread(out, figures);
    fairness_stall(out, figures);
    fairness_mix(out, figures);
}

/// A share over rounds: `12.5 %`, or `12.5 % (10.0 %–15.0 %)`.
fn spread_percent(spread: Option<Spread>) -> String {
    match spread {
        None => "–".to_owned(),
        Some(spread) if spread.count > 1 => format!(
            "{:.1} % ({:.1}–{:.1} %)",
            spread.median * 100.0,
            spread.min * 100.0,
            spread.max * 100.0
        ),
        Some(spread) => format!("{:.1} %", spread.median * 100.0),
    }
}

/// A figure over rounds with `decimals`: `0.93`, or `0.93 (0.90–0.95)`.
fn spread_plain(spread: Option<Spread>, decimals: usize) -> String {
    match spread {
        None => "–".to_owned(),
        Some(spread) if spread.count > 1 => format!(
            "{:.decimals$} ({:.decimals$}–{:.decimals$})",
            spread.median, spread.min, spread.max
        ),
        Some(spread) => format!("{:.decimals$}", spread.median),
    }
}

/// §4, the spread of connections and requests over the workers.
fn fairness_spread(out: &mut String, figures: &Figures) {
    if figures.fairness.is_empty() {
        return;
    }
    w!(out, "### Who gets the connections");
    w!(out);
    w!(
        out,
        "A new connection per request in an open loop below saturation, and keep-alive \
         connections opened in a burst (counted from the first, no warm-up)."
    );
    w!(out);
    w!(
        out,
        "![Each worker's share of the connections and requests, per way of sharing the port]({FAIRNESS_SVG})"
    );
    w!(out);
    w!(
        out,
        "_One group of bars per way of sharing the port, one bar per worker, largest first: \
         at each rank the median over rounds of that rank's share (a worker that got nothing \
         is a bar of 0); the dashed line is the even share, 100 % / workers._"
    );
    w!(out);
    w!(
        out,
        "| way of sharing the port | workers | load | connection shares, largest first | smallest – largest share | Jain's index, connections | Jain's index, requests | errors |"
    );
    w!(out, "|---|---:|---|---|---|---:|---:|---:|");
    for row in &figures.fairness {
        let shares: Vec<String> = row
            .connection_shares
            .iter()
            .map(|share| format!("{:.0}", share * 100.0))
            .collect();
        w!(
            out,
            "| `{}` | {} | {} | {} % | {} – {} | {} | {} | {} |",
            row.variant,
            row.workers,
            load_name(row.load),
            shares.join(" / "),
            spread_percent(row.least_share),
            spread_percent(row.most_share),
            spread_plain(row.connections_jain, 3),
            spread_plain(row.requests_jain, 3),
            count(row.failed)
        );
    }
    w!(out);
    let mut lessons = Vec::new();
    let mut groups: Vec<(usize, Load)> = figures
        .fairness
        .iter()
        .map(|row| (row.workers, row.load))
        .collect();
    groups.dedup();
    for (workers, load) in groups {
        let rows: Vec<(String, Spread, ())> = figures
            .fairness
            .iter()
            .filter(|row| row.workers == workers && row.load == load)
            .filter_map(|row| Some((format!("{}", row.variant), row.connections_jain?, ())))
            .collect();
        let what = format!(
            "By Jain's index of the connections with {workers} workers and {}",
            load_name(load)
        );
        if let Some(text) = ranking(&what, &rows, true, |jain| format!("{jain:.3}")) {
            lessons.push(text);
        }
        // A strategy where one worker took everything in some round.
        for row in figures
            .fairness
            .iter()
            .filter(|row| row.workers == workers && row.load == load)
        {
            if let Some(most) = row.most_share
                && most.max >= 0.999
            {
                lessons.push(format!(
                    "With `{}` ({workers} workers, {}) one worker took every connection in at least one round.",
                    row.variant,
                    load_name(load)
                ));
            }
        }
    }
    teach(out, &lessons);
}

/// §4, a worker stopped twice during an open-loop run.
fn fairness_stall(out: &mut String, figures: &Figures) {
    if figures.stalls.is_empty() {
        return;
    }
    let stall_ms = figures.stalls[0].stall_ms;
    w!(out, "### A stalled worker");
    w!(out);
    w!(
        out,
        "The open loop again, with one worker stopped (SIGSTOP, `loadgen --stop`) twice for \
         {stall_ms:.0} ms and continued (SIGCONT): the requests that waited behind it. A request \
         that arrives in the middle of a stall waits only its rest, so few latencies reach the \
         whole stall in any mode; the count of latencies of at least a tenth of it is the one \
         that tells how many waited. The stalled worker is the cluster's first."
    );
    w!(out);
    w!(
        out,
        "![p99 of every request, of the stalled worker and of the worst other worker, per way of sharing the port]({STALL_SVG})"
    );
    w!(out);
    w!(
        out,
        "| way of sharing the port | workers | requests ≥ {stall_ms:.0} ms | requests ≥ {:.0} ms | p99 | max | stalled worker's p99 | the others' worst p99 | stalled worker's share of requests | errors |",
        stall_ms / 10.0
    );
    w!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &figures.stalls {
        w!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.variant,
            row.workers,
            spread_plain(row.waited_stall, 0),
            spread_plain(row.waited_tenth, 0),
            spread_micros(row.p99_us),
            spread_micros(row.max_us),
            spread_micros(row.stalled_p99_us),
            spread_micros(row.others_p99_us),
            spread_percent(row.stalled_share),
            count(row.failed)
        );
    }
    w!(out);
    let mut lessons = Vec::new();
    let waited: Vec<(String, Spread, ())> = figures
        .stalls
        .iter()
        .filter_map(|row| Some((format!("{}", row.variant), row.waited_tenth?, ())))
        .collect();
    let what = format!(
        "By the requests that waited at least {:.0} ms",
        stall_ms / 10.0
    );
    if let Some(text) = ranking(&what, &waited, false, count_f64) {
        lessons.push(text);
    }
    let p99: Vec<(String, Spread, ())> = figures
        .stalls
        .iter()
        .filter_map(|row| Some((format!("{}", row.variant), row.p99_us?, ())))
        .collect();
    if let Some(text) = ranking("By p99 with a stalled worker", &p99, false, micros) {
        lessons.push(text);
    }
    teach(out, &lessons);
}

/// §4, uneven work: `?work_us=` drawn from a heavy-tailed mix.
fn fairness_mix(out: &mut String, figures: &Figures) {
    if figures.mixes.is_empty() {
        return;
    }
    w!(out, "### Uneven work");
    w!(out);
    w!(
        out,
        "The open loop with each request's work drawn from a mix ({}), so that a worker busy \
         with a long request shows in its own p99: where the requests queue behind a busy \
         worker, its p99 and the worst worker's rise.",
        figures.mixes[0].mix
    );
    w!(out);
    w!(
        out,
        "| way of sharing the port | workers | p99 | the best worker's p99 | the worst worker's p99 | errors |"
    );
    w!(out, "|---|---:|---:|---:|---:|---:|");
    for row in &figures.mixes {
        w!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            row.variant,
            row.workers,
            spread_micros(row.p99_us),
            spread_micros(row.best_worker_p99_us),
            spread_micros(row.worst_worker_p99_us),
            count(row.failed)
        );
    }
    w!(out);
    let worst: Vec<(String, Spread, ())> = figures
        .mixes
        .iter()
        .filter_map(|row| Some((format!("{}", row.variant), row.worst_worker_p99_us?, ())))
        .collect();
    let lessons: Vec<String> = ranking(
        "By the worst worker's p99 under uneven work",
        &worst,
        false,
        micros,
    )
    .into_iter()
    .collect();
    teach(out, &lessons);
}

fn master_cost(out: &mut String, figures: &Figures) {
    w!(out, "## {MASTER_COST}");
    w!(out);
    w!(
        out,
        "CPU time per successful request, in µs (the same number as ms per 1,000 requests), \
         from /proc over the measured window of the throughput runs: the master (the first \
         watched process), the workers (every other watched process, summed), the whole \
         server tree, and loadgen itself. With a new connection per request every request is \
         one connection: the figure is also the cost per connection. The baseline has no \
         master in the path (–): its tree is the workers. Peers are watched as whole trees \
         (nginx and the workers behind it), so every row compares the same thing."
    );
    w!(out);
    rounds(out, figures, Section::Throughput);
    if figures.cost.is_empty() {
        nothing(out, "throughput runs with --watch, so no cost");
        return;
    }
    w!(
        out,
        "| mode | load | rounds | master µs/request | workers µs/request | tree µs/request | loadgen µs/request |"
    );
    w!(out, "|---|---|---:|---:|---:|---:|---:|");
    for row in &figures.cost {
        w!(
            out,
            "| {}{} | {} | {} | {} | {} | {} | {} |",
            row.mode,
            if row.nginx_alone { " ¹" } else { "" },
            load_name(row.load),
            row.rounds,
            spread_cpu(row.master_us),
            spread_cpu(row.workers_us),
            spread_cpu(row.tree_us),
            spread_cpu(row.loadgen_us),
        );
    }
    w!(out);
    if figures.cost.iter().any(|row| row.nginx_alone) {
        w!(
            out,
            "¹ These runs watched nginx alone, not the workers behind it: its tree is not the \
             whole tree, and its row does not compare with `proxy`'s."
        );
        w!(out);
    }
    if figures.cost.iter().all(|row| row.loadgen_us.is_none()) {
        w!(
            out,
            "loadgen's own CPU was not recorded in these runs (written before it was): –."
        );
        w!(out);
    }
    w!(
        out,
        "![CPU per request, master and workers, per mode and load]({COST_SVG})"
    );
    w!(out);
    let mut lessons = Vec::new();
    for load in [Load::KeepAlive, Load::NewConn, Load::OpenLoop] {
        let rows: Vec<&CostRow> = figures.cost.iter().filter(|row| row.load == load).collect();
        let trees: Vec<(Mode, Spread, ())> = rows
            .iter()
            .filter(|row| !row.nginx_alone)
            .filter_map(|row| Some((row.mode, row.tree_us?, ())))
            .collect();
        if let Some(text) = ranking(
            &format!("{}, of the whole trees per request", with_load(load)),
            &trees,
            false,
            |us| format!("{} µs", cpu_micros(us)),
        ) {
            lessons.push(text);
        }
        let idle: Vec<String> = rows
            .iter()
            .filter(|row| row.master_us.is_some_and(|m| m.max < 0.05))
            .map(|row| format!("`{}`", row.mode))
            .collect();
        let busy = rows
            .iter()
            .filter(|row| !row.nginx_alone)
            .filter_map(|row| Some((row.mode, row.master_us?, row.tree_us?)))
            .max_by(|a, b| a.1.median.total_cmp(&b.1.median));
        if let Some((mode, master, tree)) = busy {
            if master.median > 0.0 {
                lessons.push(format!(
                    "{}, the `{mode}` master spent {} µs per request, {:.0} % of its tree's{}.",
                    with_load(load),
                    cpu_micros(master.median),
                    100.0 * master.median / tree.median.max(1e-9),
                    if idle.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; the {} master{} no measurable CPU in any round",
                            and_list(&idle),
                            if idle.len() > 1 { "s used" } else { " used" }
                        )
                    }
                ));
            }
        }
    }
    teach(out, &lessons);
    if !figures.master_fds.is_empty() {
        w!(
            out,
            "![The master's fds over one new-connection run per mode]({MASTER_FDS_SVG})"
        );
        w!(out);
        let ranges: Vec<String> = figures
            .master_fds
            .iter()
            .filter_map(|series| {
                let (least, most) = series.window_range()?;
                Some(format!(
                    "`{}` {}–{}",
                    series.mode,
                    count(least.round() as u64),
                    count(most.round() as u64)
                ))
            })
            .collect();
        if !ranges.is_empty() {
            let swing = figures
                .master_fds
                .iter()
                .filter_map(|series| {
                    let (least, most) = series.window_range()?;
                    Some((series.mode, most - least))
                })
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let mut text = format!(
                "The master's fds over one new-connection run per mode (its first round), \
                 fewest–most in the measured window: {}.",
                ranges.join(", ")
            );
            if let Some((mode, swing)) = swing {
                if swing >= 1.0 {
                    text.push_str(&format!(
                        " The rise above the fewest is what a master holds in flight — two \
                         fds per open relay for a relaying master, the sockets not yet \
                         handed over for one that hands them — and was largest for `{mode}`: \
                         {} fds.",
                        count(swing.round() as u64)
                    ));
                }
            }
            w!(out, "{text}");
            w!(out);
        }
    }
}

fn faults(out: &mut String, figures: &Figures) {
    w!(out, "## {FAULTS}");
    w!(out);
    w!(
        out,
        "One worker killed with SIGKILL mid-run under load, per mode: the requests that failed, \
         and how long after the kill the respawned worker answered its first request."
    );
    w!(out);
    rounds(out, figures, Section::Faults);
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
        let missing: Vec<&str> = Mode::PEERS
            .into_iter()
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

fn upgrades(out: &mut String, figures: &Figures) {
    w!(out, "## {UPGRADES}");
    w!(out);
    let rows = &figures.upgrades;
    let Some(first) = rows.first() else {
        w!(
            out,
            "A running master replaced by a new one under load (`scripts/upgrade.py`)."
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
        "A running master replaced by a new one under load, by `scripts/upgrade.py`: an open \
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
    w!(
        out,
        "![Failed requests per upgrade, per mode and strategy]({UPGRADE_FAILURES_SVG})"
    );
    w!(out);
    if !figures.upgrade_timelines.is_empty() {
        w!(
            out,
            "![Requests/s around an upgrade, by the generation of the worker that answered]({UPGRADE_TIMELINE_SVG})"
        );
        w!(out);
    }
    teach(out, &upgrade_lessons(rows));
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
    use crate::render::figures::tests::run;
    use runs::{Affinity, Report, Role, WatchedAffinity};

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

    fn spread(values: &[f64]) -> Spread {
        Spread::of(values.iter().copied()).expect("values")
    }

    /// "What it shows" ranks only modes whose rounds do not overlap, and says
    /// "no clear difference" for the others.
    #[test]
    fn ranks_only_what_does_not_overlap() {
        let rows = [
            (Mode::Proxy, spread(&[64e3, 71e3, 72e3]), ()),
            (Mode::HandoffSocket, spread(&[114e3, 131e3, 146e3]), ()),
            (Mode::HandoffListener, spread(&[126e3, 192e3, 215e3]), ()),
        ];
        let text =
            ranking("With keep-alive", &rows, true, |v| format!("{v:.0}/s")).expect("a ranking");
        assert_eq!(
            text,
            "With keep-alive, `handoff-listener` had the highest median (192000/s); every \
             round above every round of `proxy`; no clear difference from `handoff-socket` \
             (the rounds' ranges overlap)."
        );
        let single = [
            (Mode::Proxy, spread(&[1.0]), ()),
            (Mode::Direct, spread(&[2.0]), ()),
        ];
        assert!(
            ranking("x", &single, true, |v| format!("{v}"))
                .expect("a sentence")
                .contains("one round only, no ranking")
        );
    }

    /// A run labelled `labels` whose master holds `master_fds` and its tree
    /// `tree_fds`.
    fn fds(labels: &[(&str, &str)], master_fds: usize, tree_fds: usize) -> Report {
        let mut report = run(labels, 1.0, 1);
        report.watch[0].processes[0].summary.fds_max = master_fds;
        report.watch[0].summary.fds_max = tree_fds;
        report
    }

    /// A newconn throughput run of `mode`: its master spends `master_us` and
    /// one worker `worker_us` CPU per request.
    fn newconn(mode: &str, master_us: f64, worker_us: f64) -> Report {
        let mut report = run(
            &[
                ("section", "throughput"),
                ("mode", mode),
                ("load", "newconn"),
            ],
            1.0,
            1,
        );
        let tree = &mut report.watch[0];
        tree.processes[0].summary.cpu_ms_per_1000_requests = Some(master_us);
        let mut worker = tree.processes[0].clone();
        worker.pid = 2;
        worker.ppid = 1;
        worker.role = Role::Child;
        worker.summary.cpu_ms_per_1000_requests = Some(worker_us);
        tree.processes.push(worker);
        report
    }

    /// A small run set with every section the first screen reads: proxy 2
    /// fds per connection in the master and 3 in the tree, the handoff modes
    /// 0 and 1; proxy serving 112 connections under 256 fds, a handoff
    /// master 400 without reaching its limit; CPU per request with a new
    /// connection per request.
    fn glance_runs() -> Vec<Report> {
        let mut runs = Vec::new();
        for n in [100usize, 1000] {
            let label = n.to_string();
            for (mode, master, tree) in [
                ("proxy", 12 + 2 * n, 20 + 3 * n),
                ("handoff-socket", 9, 15 + n),
                ("handoff-listener", 9, 15 + n),
            ] {
                runs.push(fds(
                    &[
                        ("section", "fdbill"),
                        ("mode", mode),
                        ("connections", &label),
                    ],
                    master,
                    tree,
                ));
            }
        }
        for (mode, n, failed) in [
            ("proxy", 50u64, 0u64),
            ("proxy", 150, 38),
            ("proxy", 200, 88),
            ("handoff-listener", 50, 0),
            ("handoff-listener", 400, 0),
        ] {
            let label = n.to_string();
            let mut report = run(
                &[
                    ("section", "fdlimit"),
                    ("mode", mode),
                    ("connections", &label),
                    ("max_fds", "256"),
                ],
                1.0,
                1,
            );
            report.requests.failed = failed;
            runs.push(report);
        }
        runs.push(newconn("proxy", 40.0, 50.0));
        runs.push(newconn("handoff-socket", 1.0, 30.0));
        runs.push(newconn("direct", 5.0, 20.0));
        runs
    }

    /// The lines of the "At a glance" block that start with `- `.
    fn glance_lines(text: &str) -> Vec<String> {
        let start = text.find("## At a glance").expect("an At a glance block");
        let end = text.find(&format!("## {THROUGHPUT}")).expect("section 1");
        assert!(start < end, "the glance comes before section 1");
        text[start..end]
            .lines()
            .filter(|line| line.starts_with("- "))
            .map(str::to_owned)
            .collect()
    }

    /// The first screen: each headline figure computed from the runs and
    /// linked to its section, at most five lines.
    #[test]
    fn glance_lines_carry_the_figures_and_their_links() {
        let text = render(&Figures::of(&glance_runs()));
        let lines = glance_lines(&text);
        assert_eq!(
            lines,
            [
                "- **fds per client connection:** `proxy` 2.0 in the master, 3.0 in the whole \
                 tree; `handoff-socket` and `handoff-listener` 0.0 in the master, 1.0 in the \
                 whole tree. [§2](#2-the-fd-bill)",
                "- **Connections served with the master limited to 256 fds** (`--max-fds`): \
                 `proxy` 112 at once; `handoff-listener` ≥ 400 (limit not reached). \
                 [§3](#3-the-fd-limit)",
                "- **Server CPU per request, a new connection per request** (the whole tree, \
                 median): `proxy` 90.0 µs, `handoff-socket` 31.0 µs; the baseline `direct` \
                 20.0 µs. [§5](#5-master-cost)",
            ]
        );
        assert!(lines.len() <= 5);
        // The mechanism, said to be one, with the baseline's row.
        assert!(text.contains("the mechanism, not a measurement"));
        assert!(text.contains("| `handoff-socket` | 1, only until the worker acknowledges"));
        assert!(text.contains("| baseline `direct` | none"));
        // No capacity at an SLO: there is no sweep to take it from.
        assert!(!text.contains("p99 ≤ 10 ms"));
    }

    /// A glance line whose data is absent is left out, not written empty.
    #[test]
    fn glance_omits_a_line_without_its_data() {
        let runs: Vec<Report> = glance_runs()
            .into_iter()
            .filter(|run| run.labels.section != Some(Section::FdLimit))
            .collect();
        let lines = glance_lines(&render(&Figures::of(&runs)));
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].contains("fds per client connection"));
        assert!(lines[1].contains("Server CPU per request"));
        let only_fds: Vec<Report> = glance_runs()
            .into_iter()
            .filter(|run| run.labels.section == Some(Section::FdBill))
            .collect();
        let lines = glance_lines(&render(&Figures::of(&only_fds)));
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(glance_lines(&render(&Figures::default())).is_empty());
    }

    /// Every `(#anchor)` the report links to is the anchor of one of its
    /// headings.
    #[test]
    fn links_point_at_headings() {
        assert_eq!(anchor(FD_BILL), "2-the-fd-bill");
        assert_eq!(anchor(THROUGHPUT), "1-throughput-and-latency");
        let mut figures = Figures::of(&glance_runs());
        figures.rounds.insert(Section::Faults, (1, 1));
        let text = render(&figures);
        let anchors: Vec<String> = text
            .lines()
            .filter_map(|line| line.strip_prefix("## "))
            .map(anchor)
            .collect();
        let mut links = 0;
        for (at, _) in text.match_indices("](#") {
            let rest = &text[at + 3..];
            let target = &rest[..rest.find(')').expect("a closed link")];
            assert!(anchors.iter().any(|a| a == target), "no heading #{target}");
            links += 1;
        }
        assert!(links >= 4, "{links} links");
    }

    /// The Limitations section reads the CPUs from each run's affinity:
    /// shared, pinned apart, or not recorded (with the machine's cores).
    #[test]
    fn limitations_say_shared_or_pinned_from_affinity() {
        let with = |loadgen: Vec<usize>, server: Vec<usize>| {
            let mut report = newconn("proxy", 1.0, 1.0);
            report.affinity = Some(Affinity {
                loadgen,
                watched: vec![WatchedAffinity {
                    pid: 1,
                    cpus: server,
                }],
            });
            report
        };
        let limitations = |runs: &[Report]| {
            let text = render(&Figures::of(runs));
            let start = text.find("## Limitations").expect("a Limitations section");
            assert!(
                !text[start..].contains("\n## "),
                "Limitations is the last section"
            );
            text[start..].to_owned()
        };
        let shared = limitations(&[with(vec![0, 1], vec![0, 1])]);
        assert!(shared.contains("**CPUs: shared.**"), "{shared}");
        assert!(shared.contains("loadgen (CPUs 0-1) and the server (CPUs 0-1)"));
        let pinned = limitations(&[with(vec![0], vec![1])]);
        assert!(pinned.contains("**CPUs: pinned apart.**"), "{pinned}");
        assert!(
            pinned.contains("loadgen ran on CPUs 0 and the server on CPUs 1 of the machine's 2")
        );
        assert!(!pinned.contains("CPUs: shared"), "{pinned}");
        let mixed = limitations(&[with(vec![0], vec![1]), with(vec![0, 1], vec![1])]);
        assert!(mixed.contains("**CPUs: mixed.**"), "{mixed}");
        let unknown = limitations(&[newconn("proxy", 1.0, 1.0)]);
        assert!(unknown.contains("did not record which CPUs"), "{unknown}");
        assert!(unknown.contains("the machine has 2 cores"), "{unknown}");
        // Loopback from the targets; the workers from their label.
        assert!(unknown.contains("**Loopback only:**") && unknown.contains("`127.0.0.1`"));
        let mut remote = run(
            &[("section", "fdbill"), ("mode", "proxy"), ("workers", "2")],
            1.0,
            1,
        );
        remote.parameters.targets = vec![
            "http://[::1]:8080/".to_owned(),
            "http://10.0.0.5:8080/".to_owned(),
        ];
        let remote = limitations(&[remote]);
        assert!(
            remote.contains("**Targets:** `10.0.0.5` and `::1`"),
            "{remote}"
        );
        assert!(remote.contains("**Workers:** 2 per server"), "{remote}");
        assert!(remote.contains("a caveat, not a measurement"));
    }

    /// The sweep's section: the capacity at each objective per mode and load
    /// from hand-made steps, every step's row with its held mark, the 10×
    /// rule said where it applies, and the capacity at p99 ≤ 10 ms on the
    /// first screen.
    #[test]
    fn sweep_section_and_its_glance_line() {
        use crate::render::figures::tests::sweep_run;
        let runs = vec![
            sweep_run("proxy", "keepalive", 1_000, 1_000.0, (300, 290), 0),
            sweep_run("proxy", "keepalive", 2_000, 2_000.0, (900, 850), 0),
            sweep_run("proxy", "keepalive", 4_000, 3_990.0, (4_000, 900), 0),
            sweep_run("proxy", "keepalive", 8_000, 6_000.0, (90_000, 2_000), 0),
            sweep_run("handoff-socket", "keepalive", 1_000, 1_000.0, (200, 200), 0),
            sweep_run("handoff-socket", "keepalive", 2_000, 2_000.0, (300, 300), 0),
            sweep_run("handoff-socket", "keepalive", 4_000, 4_000.0, (400, 400), 0),
            sweep_run("handoff-socket", "keepalive", 8_000, 8_000.0, (500, 500), 0),
            sweep_run("proxy", "newconn", 500, 500.0, (2_000, 2_000), 0),
            sweep_run("proxy", "newconn", 1_000, 999.0, (30_000, 2_900), 3),
            // An error at the lightest step: no capacity at any objective.
            sweep_run("direct", "keepalive", 1_000, 1_000.0, (200, 200), 1),
            sweep_run("direct", "keepalive", 2_000, 2_000.0, (200, 200), 0),
        ];
        let text = render(&Figures::of(&runs));
        let section = &text[text
            .find("## 1b. Latency against offered load")
            .expect("§1b")..];
        let section = &section[..section.find("\n## 2.").expect("§2 follows")];
        assert!(
            section.contains("at least 95 % of its requests were answered"),
            "{section}"
        );
        assert!(section.contains("One run per figure"), "{section}");
        assert!(section.contains("](latency-vs-rate.svg)"), "{section}");
        assert!(
            section.contains(
                "| `proxy` | 2,000/s | 4,000/s | < 500/s (the lightest step missed) | 500/s |"
            ),
            "{section}"
        );
        assert!(
            section.contains(
                "| `handoff-socket` | ≥ 8,000/s (not reached) | ≥ 8,000/s (not reached) | – | – |"
            ),
            "{section}"
        );
        assert!(
            section.contains("| proxy | 8,000 | 6,000 (75 %) | no | 100 µs | 90.00 ms ² |"),
            "{section}"
        );
        assert!(
            section.contains("| proxy | 1,000 | 999 (100 %) | no |"),
            "{section}"
        );
        assert!(
            section.contains(
                "`proxy` keep-alive: at 1 of its 4 steps (8,000/s offered) the corrected \
                 p99 was 10× or more the p99 as sent (at 8,000/s: 90.00 ms against 2.00 ms): \
                 the load generator's requests were waiting to be sent"
            ),
            "{section}"
        );
        assert!(
            section.contains("With keep-alive, the capacity at p99 ≤ 10 ms ran from 4,000/s (`proxy`) to 8,000/s (`handoff-socket`); `direct` missed it even at the lightest step, 1,000/s; the steps"),
            "{section}"
        );
        // One mode in the new-connection sweep: nothing says "every mode".
        assert!(
            section.contains(
                "With a new connection per request, `proxy` held p99 ≤ 10 ms up to 500/s."
            ),
            "{section}"
        );
        let lines = glance_lines(&text);
        assert_eq!(
            lines,
            [
                "- **Capacity at p99 ≤ 10 ms** (the highest offered rate held without errors, \
              open loop; keep-alive / new connection per request): `proxy` 4,000/s / 500/s, \
              `handoff-socket` ≥ 8,000/s (not reached) / –, `direct` < 1,000/s (the lightest \
              step missed) / –. [§1b](#1b-latency-against-offered-load)"
            ]
        );
        assert!(
            text.contains("- **Rounds per figure:** 1 in [§1b](#1b-latency-against-offered-load)"),
            "{text}"
        );
    }

    /// Each section says its own round count; no section claims rounds it
    /// does not have.
    #[test]
    fn each_section_states_its_rounds() {
        let mut figures = Figures::default();
        figures.rounds.insert(Section::Throughput, (3, 3));
        figures.rounds.insert(Section::FdBill, (1, 1));
        let text = render(&figures);
        assert!(text.contains("Each figure comes from 3 rounds"));
        assert!(text.contains("One run per figure, no rounds"));
        assert!(!text.contains("medians of 3 rounds"));
    }
}
