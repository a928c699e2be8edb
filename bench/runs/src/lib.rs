//! The run model: what one `loadgen` run measured, as it is written to JSON
//! and read back. It is the one vocabulary of the two tools over it: the load
//! generator (`bench/loadgen`) writes runs through these types, and the
//! renderer (`bench/report`) reads a folder of them; neither knows the other.
//! No load and no drawing here: the types, their JSON, and numbers for people.
//!
//! # Layout
//!
//! - [`run`]: the [`Report`] of one run and every part of it, serialised as
//!   they are (the shape is `schema.json`), and the statistics computed once
//!   over a set of counts ([`Fairness`]).
//! - [`judge`]: how one open-loop run is judged (held, its quotable p99),
//!   by the renderer and by the harness alike.
//! - [`labels`]: what a run was (section, mode, load, round, ...), typed: the
//!   contract between `scripts/compare.sh` and the renderer.
//! - [`files`]: reading one run, a results folder's `runs/*.json`, and the
//!   bytes a run is written as.
//! - [`folder`]: what a results folder holds beside its runs, written by the
//!   harness: how each peer ran (`peers.json`) and what each server answered
//!   (`answers.json`).
//! - [`schema`]: the committed `schema.json`, and the small validator the
//!   tests check every report against.
//! - [`format`](mod@format): numbers for people: `1,000`, `412 µs`, `3.2 MiB`.
//!
//! Times in the JSON carry their unit in their name: `_us`, `_ms`, `_s`.
#![deny(missing_docs)]

pub mod files;
pub mod folder;
pub mod format;
pub mod judge;
pub mod labels;
pub mod run;
pub mod schema;

pub use files::{read_json, read_runs, to_json};
pub use labels::Labels;
pub use run::*;
