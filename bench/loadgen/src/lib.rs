//! The suite's instrument: `loadgen`, a load generator that measures what each
//! way of sharing a port costs (latency, errors, the spread over worker pids,
//! and the server's fds, memory and CPU), and `loadgen report`, which renders a
//! folder of its runs into REPORT.md and SVG charts.
//!
//! Measurement is kept apart from display: [`load`] produces one
//! [`runs::Report`] per run, written through the run model (`runs`);
//! [`render`] reads many of them and only displays what they hold.
//!
//! # Layout
//!
//! - [`load`]: generating load and measuring it: the flags ([`cli`]), the
//!   connections, the open loop's timer, the recorder, the `--watch` sampler,
//!   `--kill`, the run's report built from the recorder, and [`run`].
//! - [`summary`]: the report of a run as a short text, on stdout.
//! - [`json_file`]: `--json FILE`, checked before the load and replaced
//!   whole at its end.
//! - [`render`]: `loadgen report DIR`: the figures over many runs (medians over
//!   rounds, slopes, limits), REPORT.md and the charts.
#![deny(missing_docs)]

pub mod json_file;
pub mod load;
pub mod render;
pub mod summary;

pub use load::{Config, cli, response, run};
