//! The suite's instrument: `loadgen`, a load generator that measures what each
//! way of sharing a port costs (latency, errors, the spread over worker pids,
//! and the server's fds, memory and CPU), and `loadgen report`, which renders a
//! folder of its runs into REPORT.md and SVG charts.
//!
//! Measurement is kept apart from display: [`load`] produces one [`Report`]
//! per run; [`report`] is that report (JSON, text); [`render`] reads many of
//! them and only displays what they hold.
//!
//! # Layout
//!
//! - [`load`]: generating load and measuring it: the flags ([`cli`]), the
//!   connections, the open loop's timer, the recorder, the `--watch` sampler,
//!   `--kill`, and [`run`].
//! - [`report`]: the [`Report`] of one run: its types and JSON (the shape is
//!   `schema.json`), the statistics, the text summary, and the typed
//!   [`report::Labels`], the contract with `scripts/compare.sh`.
//! - [`render`]: `loadgen report DIR`: the figures over many runs (medians over
//!   rounds, slopes, limits), REPORT.md and the charts.
#![deny(missing_docs)]

pub mod load;
pub mod render;
pub mod report;

pub use load::{Config, cli, response, run};
pub use report::Report;
