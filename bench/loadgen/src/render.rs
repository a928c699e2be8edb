//! `loadgen report DIR`: reads every `DIR/runs/*.json` (loadgen reports with
//! their `--label`s), computes the figures ([`crate::figures`]) and writes
//! `DIR/REPORT.md` ([`crate::markdown`]) and the SVG charts ([`crate::charts`]).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::charts;
use crate::figures::{Figures, LabelledRun};
use crate::markdown;
use crate::report::Report;

/// The charts' file names, as REPORT.md links them.
pub const LATENCY_SVG: &str = "latency.svg";
/// Section 2's chart.
pub const FDS_SVG: &str = "fds.svg";
/// Section 4's chart.
pub const FAIRNESS_SVG: &str = "fairness.svg";
/// Section 5's chart.
pub const MASTER_FDS_SVG: &str = "master-fds-over-time.svg";

/// Reads `dir/runs/*.json`, in file-name order.
pub fn read_runs(dir: &Path) -> anyhow::Result<Vec<LabelledRun>> {
    let runs_dir = dir.join("runs");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&runs_dir)
        .with_context(|| format!("read {}", runs_dir.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("list {}", runs_dir.display()))?;
    paths.retain(|path| path.extension().is_some_and(|ext| ext == "json"));
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read {}", path.display()))?;
            let report: Report = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a loadgen report", path.display()))?;
            Ok(LabelledRun {
                file: path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                report,
            })
        })
        .collect()
}

/// Renders `dir`: writes REPORT.md and the charts that have data; returns the
/// paths written.
pub fn render_dir(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let runs = read_runs(dir)?;
    anyhow::ensure!(
        !runs.is_empty(),
        "no runs in {}: expected loadgen --json reports there",
        dir.join("runs").display()
    );
    let figures = Figures::of(&runs);
    let mut written = Vec::new();
    let mut write = |name: &str, text: String| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    if let Some((load, lines)) = &figures.spectra {
        if !lines.is_empty() {
            write(LATENCY_SVG, charts::latency(load, lines)?)?;
        }
    }
    if !figures.fd_bill.is_empty() {
        write(FDS_SVG, charts::fds(&figures.fd_bill)?)?;
    }
    if !figures.fairness.is_empty() {
        write(FAIRNESS_SVG, charts::fairness(&figures.fairness)?)?;
    }
    if !figures.master_fds.is_empty() {
        write(MASTER_FDS_SVG, charts::master_fds(&figures.master_fds)?)?;
    }
    write("REPORT.md", markdown::render(&figures))?;
    Ok(written)
}
