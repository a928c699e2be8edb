//! `--hgrm PATH`: a run's latency histograms as HdrHistogram's percentile
//! distribution, the `.hgrm` text that wrk2 prints with `--latency`, that
//! `HistogramLogProcessor` writes, and that HdrHistogram's plotter reads (the
//! hdrhistogram.github.io `plotFiles.html`: it draws every line of four
//! numbers, value against 1/(1-percentile)), so a run can be laid over
//! another tool's on one chart. (HistogramLogAnalyzer reads interval logs,
//! `.hlog`, a compressed encoding this is not.)
//!
//! Two files: PATH, the latency of `latency.request` (in open loop from each
//! request's intended start: coordinated omission corrected), and beside it
//! the uncorrected latency, from each request's send, named with
//! `.uncorrected` before the extension (`run.hgrm` and
//! `run.uncorrected.hgrm`, [`uncorrected_path`]): the extension stays
//! `.hgrm`, the name the plotter's page gives the format and scripts glob
//! for (`*.hgrm`), and the two sort side by side. In closed loop the two
//! are the same histogram (latency counts from the send; there is no
//! schedule to correct against); both are written all the same, so a script
//! finds both after any run.
//!
//! The `hdrhistogram` crate prints no percentile distribution (its
//! `examples/cli.rs` prints a table of other columns), so [`render`] writes
//! it as the Java `AbstractHistogram.outputPercentileDistribution` does,
//! format string for format string, with wrk2's scaling: µs recorded, ms
//! printed.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cluster::cli::UsageError;
use hdrhistogram::Histogram;

use crate::load::Measured;
use crate::output_file::OutputFile;

/// The distribution's values are µs divided by this: milliseconds, as wrk2
/// prints them (its `hdr_percentiles_print(..., 1000.0, ...)`), and the
/// plotter's default unit.
pub const OUTPUT_VALUE_UNIT_SCALING_RATIO: f64 = 1000.0;

/// Rows per halving of the distance to 100 %: 5, the default of
/// `outputPercentileDistribution` and wrk2's, which puts rows at 0 %, 10 %,
/// ..., 50 %, 55 %, ..., 75 %, 77.5 %, ... (about 100 rows for a million
/// samples). p50 is a row; p99 falls between two (98.906 % and 99.063 %).
pub const PERCENTILE_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The suffix put before the extension of the uncorrected histogram's file.
pub const UNCORRECTED_SUFFIX: &str = ".uncorrected";

/// The file of the uncorrected histogram beside `path`: `.uncorrected`
/// before its extension (`run.hgrm` → `run.uncorrected.hgrm`), or after
/// its name when it has none (`run` → `run.uncorrected`).
pub fn uncorrected_path(path: &Path) -> PathBuf {
    let Some(stem) = path.file_stem() else {
        // `..` or `/`: no file name; the check of the path refuses it.
        return path.to_owned();
    };
    let mut name = stem.to_owned();
    name.push(UNCORRECTED_SUFFIX);
    if let Some(extension) = path.extension() {
        name.push(".");
        name.push(extension);
    }
    path.with_file_name(name)
}

/// `histogram` (µs) as HdrHistogram's percentile distribution in ms: the
/// `Value Percentile TotalCount 1/(1-Percentile)` table, one row per
/// percentile step (the last, at 100 %, without the fourth column, which
/// is infinite), and the `#[Mean ...]`, `#[Max ...]`, `#[Buckets ...]`
/// footer. Java's format strings, with its `%12.Nf` for N significant
/// digits: `%12.3f %2.12f %10d %14.2f`.
pub fn render(histogram: &Histogram<u64>) -> String {
    let digits = usize::from(histogram.sigfig());
    let ms = |us: f64| us / OUTPUT_VALUE_UNIT_SCALING_RATIO;
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total_count = 0u64;
    if !histogram.is_empty() {
        for step in histogram.iter_quantiles(PERCENTILE_TICKS_PER_HALF_DISTANCE) {
            total_count += step.count_since_last_iteration();
            let value = ms(step.value_iterated_to() as f64);
            let quantile = step.quantile_iterated_to();
            if quantile < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.digits$} {quantile:2.12} {total_count:10} {:14.2}",
                    1.0 / (1.0 - quantile)
                );
            } else {
                let _ = writeln!(out, "{value:12.digits$} {quantile:2.12} {total_count:10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.digits$}, StdDeviation   = {:12.digits$}]",
        ms(histogram.mean()),
        ms(histogram.stdev())
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.digits$}, Total count    = {:12}]",
        ms(histogram.max() as f64),
        histogram.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        histogram.buckets(),
        sub_buckets(histogram.sigfig())
    );
    out
}

/// The sub-buckets of each bucket of a histogram of `sigfig` significant
/// digits whose lowest discernible value is 1 (every histogram of loadgen):
/// the power of two that holds 2 × 10^sigfig values at unit resolution
/// (2048 for 3 digits), as HdrHistogram computes `subBucketCount`; the
/// crate keeps it private.
fn sub_buckets(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// `--hgrm PATH`'s two files, checked before the load ([`OutputFile`]) and
/// written whole at its end.
#[derive(Debug)]
pub struct HgrmFiles {
    /// PATH: the corrected latency (`latency.request`).
    corrected: OutputFile,
    /// [`uncorrected_path`]: the uncorrected latency.
    uncorrected: OutputFile,
}

impl HgrmFiles {
    /// Checks that both files can be written, and that neither is `json`
    /// (`--json FILE`, which they would overwrite): an error is a
    /// [`UsageError`] naming why.
    pub fn create(path: &Path, json: Option<&Path>) -> Result<HgrmFiles, UsageError> {
        let uncorrected = uncorrected_path(path);
        if json.is_some_and(|json| json == path || json == uncorrected) {
            return Err(UsageError(format!(
                "--hgrm {} would write over --json {}: give them different names",
                path.display(),
                json.map_or(String::new(), |json| json.display().to_string())
            )));
        }
        Ok(HgrmFiles {
            corrected: OutputFile::create("--hgrm", path)?,
            uncorrected: OutputFile::create("--hgrm", &uncorrected)?,
        })
    }

    /// Writes both distributions of `measured` and puts them in place.
    pub fn write(self, measured: &Measured) -> anyhow::Result<()> {
        self.corrected
            .write(render(&measured.latency).as_bytes())
            .context("--hgrm")?;
        self.uncorrected
            .write(render(&measured.latency_uncorrected).as_bytes())
            .context("--hgrm")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::recorder::new_histogram;

    /// The uncorrected file keeps the `.hgrm` extension, beside the other.
    #[test]
    fn the_uncorrected_file_keeps_the_extension() {
        let named = |path: &str| uncorrected_path(Path::new(path));
        assert_eq!(named("run.hgrm"), Path::new("run.uncorrected.hgrm"));
        assert_eq!(
            named("out/run.v2.hgrm"),
            Path::new("out/run.v2.uncorrected.hgrm")
        );
        assert_eq!(named("out/run"), Path::new("out/run.uncorrected"));
        assert_eq!(named(".hgrm"), Path::new(".hgrm.uncorrected"));
    }

    /// `--hgrm` naming `--json`'s file, or its uncorrected file doing so, is
    /// refused before anything is created.
    #[test]
    fn refuses_to_write_over_the_json() {
        let dir = tempfile::tempdir().expect("temp dir");
        let hgrm = dir.path().join("run.hgrm");
        for json in [hgrm.clone(), dir.path().join("run.uncorrected.hgrm")] {
            let err = HgrmFiles::create(&hgrm, Some(&json)).expect_err("refused");
            assert!(err.0.contains("would write over --json"), "{}", err.0);
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
        let err =
            HgrmFiles::create(&dir.path().join("missing/run.hgrm"), None).expect_err("no folder");
        assert!(err.0.starts_with("--hgrm "), "{}", err.0);
    }

    /// The format against HdrHistogram itself: the same values recorded in
    /// a Java `Histogram(1, 60_000_000L, 3)` of HdrHistogram 2.1.11 (Debian's
    /// `libhdrhistogram-java`) and printed with
    /// `outputPercentileDistribution(System.out, 5, 1000.0)` gave the bytes
    /// of `tests/data/java-hdrhistogram-2.1.11.hgrm` exactly.
    #[test]
    fn prints_as_hdrhistograms_output_percentile_distribution() {
        let mut histogram = new_histogram(60_000_000);
        for value_us in java_values_us() {
            histogram.record(value_us).expect("in range");
        }
        assert_eq!(render(&histogram), JAVA_OUTPUT);
    }

    /// An empty histogram (a run without a successful request) is the
    /// header and the footer, as Java prints it.
    #[test]
    fn an_empty_histogram_is_its_header_and_footer() {
        let text = render(&new_histogram(60_000_000));
        assert_eq!(text, JAVA_EMPTY_OUTPUT);
    }

    /// The values recorded on both sides, µs: 2,000 from 1 µs to 50 ms,
    /// denser at the bottom (`1 + i² / 80`, integers, so Java computes the
    /// same), across many buckets' boundaries, and a tail of three: 1 s, 5 s
    /// and the top of the histogram.
    fn java_values_us() -> impl Iterator<Item = u64> {
        (0..2000u64)
            .map(|i| 1 + i * i / 80)
            .chain([1_000_000, 5_000_000, 59_999_999])
    }

    /// Java's output for [`java_values_us`].
    const JAVA_OUTPUT: &str = include_str!("../tests/data/java-hdrhistogram-2.1.11.hgrm");

    /// Java's output for an empty histogram.
    const JAVA_EMPTY_OUTPUT: &str =
        include_str!("../tests/data/java-hdrhistogram-2.1.11-empty.hgrm");
}
