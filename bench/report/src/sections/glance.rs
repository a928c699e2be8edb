//! "At a glance", the first screen: each section's headline figure, computed
//! from the runs and linked to its section (each section writes its own
//! line: `glance`), then who holds which fd in each mode — the mechanism,
//! not a measurement.

use runs::labels::Mode;

use super::fd_bill::RELAY_FDS_PER_CONNECTION;
use super::{Figures, cost, fd_bill, fd_limit, master_cost, sweep};
use crate::text::{section_link, w};

/// The first screen: the headline figures, each linked to its section, and
/// which process holds which fd in each mode.
pub fn markdown(out: &mut String, figures: &Figures) {
    w!(out, "## At a glance");
    w!(out);
    let lines: Vec<String> = cost::glance(figures)
        .into_iter()
        .map(Some)
        .chain([
            fd_bill::glance(figures),
            fd_limit::glance(figures),
            master_cost::glance(figures),
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
