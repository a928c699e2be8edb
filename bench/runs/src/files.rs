//! Runs on disk: one run's JSON file, the `runs/*.json` of a results folder,
//! and the bytes a run is written as (`loadgen --json FILE`).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::Report;

/// Reads the JSON report at `path`.
pub fn read_json(path: &Path) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a loadgen report", path.display()))
}

/// Reads `dir/runs/*.json`, in file-name order.
pub fn read_runs(dir: &Path) -> anyhow::Result<Vec<Report>> {
    let runs_dir = dir.join("runs");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&runs_dir)
        .with_context(|| format!("read {}", runs_dir.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("list {}", runs_dir.display()))?;
    paths.retain(|path| path.extension().is_some_and(|ext| ext == "json"));
    paths.sort();
    paths.iter().map(|path| read_json(path)).collect()
}

/// `report` as the JSON a run is written as: pretty, one field a line.
pub fn to_json(report: &Report) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec_pretty(report)
}
