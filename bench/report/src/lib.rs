//! The renderer of the suite's comparison reports: `report DIR` reads every
//! `DIR/runs/*.json` (loadgen runs with their `--label`s, read through the
//! run model, `runs`), and `DIR/peers.json` and `DIR/answers.json` when the
//! harness kept them, and writes `DIR/REPORT.md` and its SVG charts. Every
//! figure and count it prints is computed from the runs. It never links the
//! load generator: the two tools meet only in the run model.
//!
//! # Layout
//!
//! - `sections`: one module per section of REPORT.md, in its order, each
//!   giving its figures (computed from the runs), its Markdown and its
//!   charts; `Figures` holds them all.
//! - `charts`: the ten SVG charts, one file each behind one trait, `Chart`.
//! - `stats`: the statistics the sections share: a figure over rounds (its
//!   median and range), two modes compared in pairs by round, when a
//!   percentile may be quoted, failures (failed and unanswered), least
//!   squares, the grouping of runs by their labels.
//! - `text`: the Markdown helpers: a heading's anchor and link, a chart's
//!   image link, lists and ranges of values, the sentence that ranks modes.
//! - `style`: the one drawing style of every chart: palette, markers and
//!   dashes, legends, axis labels, the SVG canvas.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use anyhow::Context;

mod charts;
#[cfg(test)]
mod fixtures;
mod sections;
mod stats;
mod style;
mod text;

use sections::Figures;

/// Renders `dir`: reads `dir/runs/*.json`, writes REPORT.md and the charts
/// that have data; returns the paths written, the charts first.
pub fn render_dir(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let runs = runs::read_runs(dir)?;
    anyhow::ensure!(
        !runs.is_empty(),
        "no runs in {}: expected loadgen --json reports there",
        dir.join("runs").display()
    );
    let ran = runs::folder::read_peers(dir)?;
    // A config peers.json names but the folder lacks is said to be missing.
    let missing_configs = ran
        .iter()
        .flat_map(|file| file.peers.iter())
        .filter_map(|peer| peer.config.clone())
        .filter(|config| !dir.join(config).is_file())
        .collect();
    let answers = runs::folder::read_answers(dir)?;
    let figures = Figures::of(&runs).with_folder(ran, missing_configs, answers);
    let mut written = Vec::new();
    let mut write = |name: &str, text: String| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    for chart in figures.charts() {
        write(chart.file(), chart.draw()?)?;
    }
    write("REPORT.md", figures.markdown())?;
    Ok(written)
}
