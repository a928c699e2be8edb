//! `loadgen report DIR`: reads every `DIR/runs/*.json` (loadgen reports with
//! their `--label`s), computes the figures (`figures`) and writes
//! `DIR/REPORT.md` (`markdown`) and the SVG charts (`charts`). Every
//! figure and count printed comes from the runs; the two display modules read
//! only `Figures`, never each other.

use std::path::{Path, PathBuf};

use anyhow::Context;

use runs::labels::Load;

pub(crate) mod charts;
pub(crate) mod figures;
pub(crate) mod markdown;

use figures::Figures;

/// Renders `dir`: writes REPORT.md and the charts that have data; returns the
/// paths written.
pub fn render_dir(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let runs = runs::read_runs(dir)?;
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
            write(charts::LATENCY_SVG, charts::latency(*load, lines)?)?;
        }
    }
    if !figures.sweep.is_empty() {
        write(
            charts::LATENCY_RATE_SVG,
            charts::latency_vs_rate(&figures.sweep)?,
        )?;
    }
    if figures
        .throughput
        .iter()
        .any(|row| row.load != Load::OpenLoop && !row.every_round.is_empty())
    {
        write(
            charts::ROUNDS_SVG,
            charts::rounds(&figures.throughput, &figures.cost)?,
        )?;
    }
    if !figures.fd_bill.is_empty() {
        write(charts::FDS_SVG, charts::fds(&figures.fd_bill)?)?;
    }
    if !figures.fairness.is_empty() {
        write(charts::FAIRNESS_SVG, charts::fairness(&figures.fairness)?)?;
    }
    if !figures.stalls.is_empty() {
        write(charts::STALL_SVG, charts::stall(&figures.stalls)?)?;
    }
    if !figures.cost.is_empty() {
        write(charts::COST_SVG, charts::cost(&figures.cost)?)?;
    }
    if !figures.master_fds.is_empty() {
        write(
            charts::MASTER_FDS_SVG,
            charts::master_fds(&figures.master_fds)?,
        )?;
    }
    if !figures.upgrades.is_empty() {
        write(
            charts::UPGRADE_FAILURES_SVG,
            charts::upgrade_failures(&figures.upgrades)?,
        )?;
    }
    if !figures.upgrade_timelines.is_empty() {
        write(
            charts::UPGRADE_TIMELINE_SVG,
            charts::upgrade_timeline(&figures.upgrade_timelines)?,
        )?;
    }
    write("REPORT.md", markdown::render(&figures))?;
    Ok(written)
}
