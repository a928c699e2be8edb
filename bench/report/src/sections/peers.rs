//! §7, peers: the other software measured in the same rounds by the same
//! loadgen (nginx's stream proxy, Node.js cluster), and the ones that were
//! not installed.

use runs::Report;
use runs::labels::Mode;

use super::Figures;
use crate::text::w;

/// The heading, as links to it are written.
pub const HEADING: &str = "7. Peers";

/// §7's figures.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    /// The peer modes that have runs, in table order.
    pub modes: Vec<Mode>,
}

impl Peers {
    /// The peers of `runs`, each once.
    pub fn of(runs: &[Report]) -> Peers {
        let mut modes: Vec<Mode> = runs
            .iter()
            .filter_map(|run| run.labels.mode)
            .filter(|mode| mode.is_peer())
            .collect();
        modes.sort();
        modes.dedup();
        Peers { modes }
    }
}

/// §7: which peers were measured, and how to measure the others.
pub fn markdown(out: &mut String, figures: &Figures) {
    w!(out, "## {HEADING}");
    w!(out);
    w!(
        out,
        "Other software in the same rounds, measured by the same loadgen: nginx's stream \
         proxy in front of the same workers as `proxy`, and Node.js cluster with round-robin \
         (`node-rr`) and with SCHED_NONE (`node-none`) scheduling."
    );
    w!(out);
    if figures.peers.modes.is_empty() {
        w!(
            out,
            "_No peer runs: install nginx (`apt-get install nginx libnginx-mod-stream`) and \
             Node.js 20 for the Node.js cluster, then run `scripts/compare.sh --peers`._"
        );
    } else {
        let names: Vec<String> = figures
            .peers
            .modes
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
            .filter(|mode| !figures.peers.modes.contains(mode))
            .map(Mode::name)
            .collect();
        if !missing.is_empty() {
            w!(out);
            w!(out, "Not measured: {} (not installed).", missing.join(", "));
        }
    }
    w!(out);
}
