//! The title block of REPORT.md: what measured and where, the machines, and
//! the modes named (the baseline only when the runs have it).

use runs::labels::Mode;
use runs::{Machine, Report};

use super::Figures;
use crate::text::w;

/// The runs read and the machines they were measured on.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// The machines the runs were measured on (normally one).
    pub machines: Vec<Machine>,
    /// How many runs were read.
    pub runs: usize,
}

impl Header {
    /// The machines of `runs`, each once.
    pub fn of(runs: &[Report]) -> Header {
        let mut machines: Vec<Machine> = Vec::new();
        for run in runs {
            let machine = &run.machine;
            let known = machines.iter().any(|seen| {
                seen.cpu_model == machine.cpu_model
                    && seen.cores == machine.cores
                    && seen.kernel == machine.kernel
            });
            if !known {
                machines.push(machine.clone());
            }
        }
        Header {
            machines,
            runs: runs.len(),
        }
    }
}

/// The title, the machines (a warning when there are several), and the modes.
pub fn markdown(out: &mut String, figures: &Figures) {
    let header = &figures.header;
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
        header.runs
    );
    w!(out);
    for machine in &header.machines {
        w!(
            out,
            "- Machine: {}, {} cores, {} {}",
            machine.cpu_model,
            machine.cores,
            machine.os,
            machine.kernel
        );
    }
    if header.machines.len() > 1 {
        w!(out);
        w!(
            out,
            "**Warning:** these runs come from {} different machines; their figures do not compare.",
            header.machines.len()
        );
    }
    w!(out);
    let mut baseline = String::new();
    if figures.has_mode(Mode::Direct) {
        baseline.push_str(
            ", `direct` (the baseline: the clients connect straight to every worker's own \
             port, no master, no sharing)",
        );
    }
    if figures.has_mode(Mode::Ceiling) {
        baseline.push_str(
            ", `ceiling` (runs written before `direct`: one worker's own port, no master in \
             between)",
        );
    }
    w!(
        out,
        "A figure over rounds is their median with the smallest and largest round beside it; \
         two modes compare by the ratio of their two runs within each round (its median and \
         range, \"clearly\" above or below 1 only when every round's ratio is); each section \
         says how many rounds (runs per figure) it has. Modes: `proxy` (the \
         master relays every byte), `handoff-socket` / `handoff-listener` / \
         `handoff-reuseport` (the master hands sockets to workers with SCM_RIGHTS){baseline}."
    );
    w!(out);
}
