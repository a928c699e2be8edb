//! The suite's instrument: `loadgen`, a load generator that measures what each
//! way of sharing a port costs (latency, errors, the spread over worker pids,
//! and the server's fds, memory and CPU).
//!
//! Measurement is kept apart from display: [`load`] produces one
//! [`runs::Report`] per run, written through the run model (`runs`); the
//! renderer (`bench/report`, the `report` binary) reads a folder of them and
//! only displays what they hold. loadgen never links it.
//!
//! # Layout
//!
//! - [`load`]: generating load and measuring it: the flags ([`cli`]), the
//!   connections, the open loop's timer, the recorder, the `--watch` sampler,
//!   `--kill`, the run's report built from the recorder, and [`run`].
//! - [`summary`]: the report of a run as a short text, on stdout.
//! - [`slo`]: `--slo EXPR`, the thresholds judged after the run, and the exit
//!   code when one fails.
//! - [`hgrm`]: `--hgrm PATH`, the latency histograms as HdrHistogram's
//!   percentile distribution.
//! - [`output_file`]: the files of `--json FILE` and `--hgrm PATH`, checked
//!   before the load and replaced whole at its end.
#![deny(missing_docs)]

pub mod hgrm;
pub mod load;
pub mod output_file;
pub mod slo;
pub mod summary;

pub use load::{Config, Measured, cli, response, run};
