//! The whole server tree's CPU per MiB moved against the answer's size, one
//! line per server (each mode, `proxy` once per `--relay`, nginx), both
//! axes log: the cost of a request's own work falls per MiB as the answers
//! grow, and what is left at the largest is the cost of the bytes. The
//! median over rounds, a whisker over their min–max, the line joining only
//! sizes held in most rounds, a size not held hollow. Each server's markers
//! are set a little to one side of the size's tick ([`DODGE`]). (§1c,
//! `copies.svg`.)

use plotters::prelude::*;

use super::{Chart, held_runs};
use crate::sections::copies::{CopiesStep, Server, Way, size_name};
use crate::style::{
    FONT, colour, dash_of, drawing, hollow_markers, legend_strip, markers, svg, trim, value_ticks,
};

/// The file REPORT.md links.
pub const FILE: &str = "copies.svg";

/// How far apart two servers' markers at one size are set, as a factor on
/// the log axis: 6 %, so that 6 servers span ±16 %, inside the margin of
/// 2× each side of the sizes.
const DODGE: f64 = 1.06;

/// The chart: what it draws from.
pub struct CopiesChart<'a> {
    /// Every step of §1c (`Copies::steps`); the answers are drawn.
    pub steps: &'a [CopiesStep],
}

/// A CPU time per MiB on the log axis: `0.05`, `0.5`, `20`.
fn ms_label(ms: f64) -> String {
    if ms >= 1.0 {
        trim(ms)
    } else {
        let text = format!("{ms:.3}");
        text.trim_end_matches('0').to_owned()
    }
}

impl Chart for CopiesChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "The whole tree's CPU per MiB moved against the answer's size, per server, both axes log"
            .to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let steps: Vec<&CopiesStep> = self
            .steps
            .iter()
            .filter(|step| step.way == Way::Answer && step.tree_ms_per_mib.is_some())
            .collect();
        let mut servers: Vec<Server> = steps.iter().map(|step| step.server).collect();
        servers.sort();
        servers.dedup();
        let mut sizes: Vec<f64> = steps.iter().map(|step| step.bytes as f64).collect();
        sizes.sort_by(f64::total_cmp);
        sizes.dedup();
        let (Some(&x_min), Some(&x_max)) = (sizes.first(), sizes.last()) else {
            anyhow::bail!("no answer to draw");
        };
        let values = steps.iter().filter_map(|step| step.tree_ms_per_mib);
        let y_min = values
            .clone()
            .map(|spread| spread.min)
            .fold(f64::INFINITY, f64::min)
            / 1.6;
        let y_max = values.map(|spread| spread.max).fold(y_min, f64::max) * 1.6;
        let legend_rows = servers.len().div_ceil(((1400 - 40) / 200) as usize) as u32 + 1;
        let size = (1400, 640 + 22 * legend_rows);
        svg(size, |root| {
            let titled = root
                .titled(
                    "The whole server tree's CPU per MiB moved against the answer's size (the same \
                     rate for every server at a size), median over rounds, whiskers min–max",
                    (FONT, 18),
                )
                .map_err(drawing)?;
            let (legend_area, area) = titled.split_vertically(12 + 22 * legend_rows);
            legend_strip(
                &legend_area,
                &servers,
                &[
                    ("held in most rounds, joined", false),
                    (
                        "hollow, not joined: not held (a server behind the schedule)",
                        true,
                    ),
                ],
            )?;
            let (x_low, x_high) = (x_min / 2.0, x_max * 2.0);
            let mut chart = ChartBuilder::on(&area)
                .margin(12)
                .margin_right(24)
                .x_label_area_size(52)
                .y_label_area_size(84)
                .build_cartesian_2d((x_low..x_high).log_scale(), (y_min..y_max).log_scale())
                .map_err(drawing)?;
            chart
                .configure_mesh()
                .x_labels(0)
                // The sizes below are the ticks.
                .x_label_formatter(&|_| String::new())
                .disable_x_mesh()
                .y_desc("CPU ms per MiB moved, whole tree (log scale)")
                .x_desc("the answer's size, bytes (log scale)")
                .y_label_formatter(&|ms| ms_label(*ms))
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 14))
                .draw()
                .map_err(drawing)?;
            value_ticks(&mut chart, &area, &sizes, (y_min, y_max), |bytes| {
                size_name(bytes as u64)
            })?;
            let centre = (servers.len() as f64 - 1.0) / 2.0;
            for (index, server) in servers.iter().enumerate() {
                let line: Vec<&CopiesStep> = steps
                    .iter()
                    .copied()
                    .filter(|step| step.server == *server)
                    .collect();
                let dodge = DODGE.powf(index as f64 - centre);
                let point = |step: &&CopiesStep| {
                    Some((step.bytes as f64 * dodge, step.tree_ms_per_mib?.median))
                };
                chart
                    .draw_series(line.iter().filter_map(|step| {
                        let spread = step.tree_ms_per_mib?;
                        let x = step.bytes as f64 * dodge;
                        (spread.count > 1).then(|| {
                            PathElement::new(
                                vec![(x, spread.min), (x, spread.max)],
                                colour(index).stroke_width(1),
                            )
                        })
                    }))
                    .map_err(drawing)?;
                let style = colour(index).stroke_width(2);
                for segment in held_runs(&line, |step| step.held()) {
                    let points: Vec<(f64, f64)> = segment.iter().filter_map(point).collect();
                    match dash_of(index) {
                        None => chart.draw_series(LineSeries::new(points, style)),
                        Some((size, gap)) => {
                            chart.draw_series(DashedLineSeries::new(points, size, gap, style))
                        }
                    }
                    .map_err(drawing)?;
                }
                let (held, missed): (Vec<&CopiesStep>, Vec<&CopiesStep>) =
                    line.iter().partition(|step| step.held());
                let held: Vec<(f64, f64)> = held.iter().filter_map(point).collect();
                let missed: Vec<(f64, f64)> = missed.iter().filter_map(point).collect();
                markers(&mut chart, index, &held, colour(index).filled())?;
                hollow_markers(&mut chart, index, &missed, colour(index))?;
            }
            Ok(())
        })
    }
}
