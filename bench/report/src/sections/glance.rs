//! "At a glance", the first screen: the cost per request at equal load and
//! what this machine cannot show, then each section's headline figure,
//! computed from the runs and linked to its section (each section writes
//! its own line: `glance`), then who holds which fd in each mode — the
//! mechanism, not a measurement.

use runs::labels::Mode;

use super::fd_bill::RELAY_FDS_PER_CONNECTION;
use super::{Figures, cost, fd_bill, fd_limit, master_cost, sweep, throughput};
use crate::text::{section_link, w};

/// The first screen: the headline figures, each linked to its section, and
/// which process holds which fd in each mode.
pub fn markdown(out: &mut String, figures: &Figures) {
    w!(out, "## At a glance");
    w!(out);
    // At equal load first; the cost at saturation only where there is no
    // cost at equal load to give.
    let cost_lines = cost::glance(figures);
    let saturated = if cost_lines.is_empty() {
        master_cost::glance(figures)
    } else {
        None
    };
    let lines: Vec<String> = cost_lines
        .into_iter()
        .map(Some)
        .chain([
            throughput::glance_limit(figures),
            fd_bill::glance(figures),
            fd_bill::glance_scale(figures),
            fd_limit::glance(figures),
            saturated,
            sweep::glance(figures),
        ])
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
        section_link(fd_bill::HEADING)
    );
    w!(out);
    w!(out, "| mode | master | the worker that serves it |");
    w!(out, "|---|---|---|");
    w!(
        out,
        "| `proxy` | {RELAY_FDS_PER_CONNECTION}: the client's socket and its own connection to \
         the worker | 1: the master's connection |"
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
        if figures.has_mode(baseline) {
            w!(
                out,
                "| baseline `{baseline}` | none: not in the path | 1: the client's socket |"
            );
        }
    }
    w!(out);
}

#[cfg(test)]
mod tests {
    use runs::Report;
    use runs::labels::Section;

    use super::*;
    use crate::fixtures::{glance_lines, glance_runs};

    /// The first screen: each headline figure computed from the runs and
    /// linked to its section, at most five lines.
    #[test]
    fn glance_lines_carry_the_figures_and_their_links() {
        let text = Figures::of(&glance_runs()).markdown();
        let lines = glance_lines(&text);
        assert_eq!(
            lines,
            [
                "- **fds per client connection:** `proxy` 2.0 in the master, 3.0 in the whole \
                 tree; `handoff-socket` and `handoff-listener` 0.0 in the master, 1.0 in the \
                 whole tree. [§2](#2-the-bill-at-scale)",
                "- **Connections served with the master limited to 256 fds** (`--max-fds`): \
                 `proxy` 112 at once; `handoff-listener` ≥ 400 (limit not reached). \
                 [§3](#3-the-fd-limit)",
                "- **Server CPU per request at saturation, a new connection per request** (the \
                 whole tree, median; cost at equal load was not measured in these runs, and at \
                 saturation each mode ran at its own rate): `proxy` 90.0 µs, `handoff-socket` \
                 31.0 µs; the baseline `direct` 20.0 µs. [§5](#5-master-cost)",
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

    /// With cost runs the first screen opens with the cost at equal load,
    /// paired against `direct`, then the one sentence on what a machine
    /// whose cores loadgen shares cannot show; the cost at saturation goes.
    #[test]
    fn glance_opens_with_cost_at_equal_load() {
        use crate::fixtures::{cost_run, newconn};
        let mut runs = Vec::new();
        for (round, proxy_master) in [(1, 60.0), (2, 90.0), (3, 70.0)] {
            runs.push(cost_run(
                "proxy",
                "newconn",
                2_600,
                round,
                (proxy_master, 40.0),
            ));
            runs.push(cost_run("direct", "newconn", 2_600, round, (1.0, 40.0)));
        }
        let mut saturated = newconn("proxy", 40.0, 50.0);
        saturated.loadgen_usage = Some(runs::LoadgenUsage {
            cpu_user_ms: 200.0,
            cpu_system_ms: 800.0,
            cpu_ms_per_1000_requests: None,
        });
        saturated.affinity = Some(runs::Affinity {
            loadgen: vec![0, 1],
            watched: vec![runs::WatchedAffinity {
                pid: 1,
                cpus: vec![0, 1],
            }],
        });
        runs.push(saturated);
        let lines = glance_lines(&Figures::of(&runs).markdown());
        assert_eq!(
            lines[0],
            "- **Server CPU per request at equal load, new connection per request at 2,600/s** \
             (the highest rate every server held; the whole tree, median of 3 rounds; in \
             brackets against `direct`, the ratio of the two runs of each round, median and \
             range): `proxy` 110 µs (2.75×, 2.50–3.25), the baseline `direct` 40.0 µs. \
             [§0](#0-cost-at-equal-load)"
        );
        assert_eq!(
            lines[1],
            "- **What this machine cannot show:** a ranking of the modes by requests/s, since \
             loadgen ran on the same cores as the servers and took 50 % of the machine's CPU \
             at saturation ([§1](#1-throughput-and-latency))."
        );
        assert!(
            lines
                .iter()
                .all(|line| !line.contains("at saturation, a new"))
        );
    }

    /// A glance line whose data is absent is left out, not written empty.
    #[test]
    fn glance_omits_a_line_without_its_data() {
        let runs: Vec<Report> = glance_runs()
            .into_iter()
            .filter(|run| run.labels.section != Some(Section::FdLimit))
            .collect();
        let lines = glance_lines(&Figures::of(&runs).markdown());
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].contains("fds per client connection"));
        assert!(lines[1].contains("Server CPU per request"));
        let only_fds: Vec<Report> = glance_runs()
            .into_iter()
            .filter(|run| run.labels.section == Some(Section::FdBill))
            .collect();
        let lines = glance_lines(&Figures::of(&only_fds).markdown());
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(glance_lines(&Figures::default().markdown()).is_empty());
    }
}
