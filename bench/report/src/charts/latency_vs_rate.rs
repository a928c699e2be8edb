//! p99 (corrected) against the offered rate, one panel per load side by
//! side, both on one log-scale latency axis; a line per mode (colour, dash
//! and marker) joining only the steps held, the steps not held drawn hollow
//! and joined to nothing (their latency is a lower bound: requests were
//! left unanswered or answered late); dashed lines at the objectives
//! ([`SLOS_US`]).
//! (§1b, `latency-vs-rate.svg`.)

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use runs::KEPT_UP_RATIO;
use runs::labels::{Load, Mode};

use super::{Chart, held_runs};
use crate::sections::sweep::{SLOS_US, SweepLine, SweepStep, WAITING_RATIO};
use crate::style::{
    FONT, colour, dash_of, drawing, hollow_markers, legend_strip, markers, micros_label, modes_of,
    rate_label, svg, value_ticks,
};

/// The file REPORT.md links.
pub const FILE: &str = "latency-vs-rate.svg";

/// The modes of the sweep in the order of `modes`, for one shared legend.
fn sweep_modes(lines: &[SweepLine]) -> Vec<Mode> {
    let mut modes = modes_of(lines.iter().map(|line| line.mode));
    modes.sort();
    modes
}

/// The chart: what it draws from.
pub struct LatencyVsRateChart<'a> {
    /// Every mode and load.
    pub lines: &'a [SweepLine],
}

impl Chart for LatencyVsRateChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "p99 against offered rate, per mode, keep-alive and a new connection per request".to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let lines = self.lines;
        let modes = sweep_modes(lines);
        let mut loads: Vec<Load> = lines.iter().map(|line| line.load).collect();
        loads.sort();
        loads.dedup();
        let p99s = lines
            .iter()
            .flat_map(|line| line.steps.iter().filter_map(|step| step.p99_us));
        // From 100 µs at least, so that every chart labels the decades from
        // 100 µs up and two runs' charts read alike.
        let y_min = p99s.clone().fold(100.0, f64::min).max(1.0) * 0.7;
        let y_max = p99s.fold(SLOS_US[SLOS_US.len() - 1], f64::max) * 1.6;
        let legend_rows = modes.len().div_ceil(((1400 - 40) / 200) as usize) as u32 + 1;
        let size = (1400, 620 + 22 * legend_rows);
        svg(size, |root| {
            let titled = root
                .titled(
                    "p99 latency against the offered rate (open loop, corrected for coordinated omission)",
                    (FONT, 20),
                )
                .map_err(drawing)?;
            let (legend_area, panels_area) = titled.split_vertically(12 + 22 * legend_rows);
            let held = format!(
                "held, joined: ≥ {:.0} % answered, none failed or unanswered, p50 < {WAITING_RATIO:.0}× as sent",
                KEPT_UP_RATIO * 100.0
            );
            legend_strip(
                &legend_area,
                &modes,
                &[
                    (held.as_str(), false),
                    ("hollow, not joined: not held (a lower bound)", true),
                ],
            )?;
            let areas = panels_area.split_evenly((1, loads.len().max(1)));
            for (load, area) in loads.iter().zip(areas.iter()) {
                let panel: Vec<&SweepLine> =
                    lines.iter().filter(|line| line.load == *load).collect();
                let rates = panel
                    .iter()
                    .flat_map(|line| line.steps.iter().map(|step| step.offered_per_s));
                let x_min = rates.clone().fold(f64::INFINITY, f64::min).max(1.0);
                let x_max = rates.fold(x_min * 2.0, f64::max);
                let title = match load {
                    Load::NewConn => "a new connection per request, open loop",
                    _ => "keep-alive, open loop",
                };
                let mut chart = ChartBuilder::on(area)
                    .caption(title, (FONT, 16))
                    .margin(12)
                    // Room right of the plot for the objectives' labels.
                    .margin_right(88)
                    .x_label_area_size(52)
                    .y_label_area_size(76)
                    .build_cartesian_2d(
                        (x_min / 1.25..x_max * 1.25).log_scale(),
                        (y_min..y_max).log_scale(),
                    )
                    .map_err(drawing)?;
                chart
                    .configure_mesh()
                    .x_labels(0)
                    // A log axis draws its decades even with no labels asked
                    // for: the offered rates below are the ticks.
                    .x_label_formatter(&|_| String::new())
                    .disable_x_mesh()
                    .y_desc("p99 latency (log scale)")
                    .x_desc("offered rate, requests/s (log scale)")
                    .y_label_formatter(&|us| micros_label(*us))
                    .label_style((FONT, 13))
                    .axis_desc_style((FONT, 14))
                    .draw()
                    .map_err(drawing)?;
                // A tick and a label at every offered rate.
                let mut offered: Vec<f64> = panel
                    .iter()
                    .flat_map(|line| line.steps.iter().map(|step| step.offered_per_s))
                    .collect();
                offered.sort_by(f64::total_cmp);
                offered.dedup();
                value_ticks(&mut chart, area, &offered, (y_min, y_max), rate_label)?;
                let (ax, ay) = area.get_base_pixel();
                // The objectives, labelled right of the plot, where no data is.
                let grey = RGBColor(90, 90, 90);
                for slo in SLOS_US {
                    chart
                        .draw_series(DashedLineSeries::new(
                            [(x_min / 1.25, slo), (x_max * 1.25, slo)],
                            8,
                            4,
                            grey.stroke_width(1),
                        ))
                        .map_err(drawing)?;
                    let (px, py) = chart.backend_coord(&(x_max * 1.25, slo));
                    area.draw(&Text::new(
                        format!("p99 ≤ {}", micros_label(slo)),
                        (px - ax + 6, py - ay),
                        (FONT, 12)
                            .into_font()
                            .color(&grey)
                            .into_text_style(area)
                            .pos(Pos::new(HPos::Left, VPos::Center)),
                    ))
                    .map_err(drawing)?;
                }
                for line in panel {
                    let index = modes.iter().position(|m| *m == line.mode).unwrap_or(0);
                    let point =
                        |step: &SweepStep| Some((step.offered_per_s, step.p99_us?.max(1.0)));
                    let style = colour(index).stroke_width(2);
                    for segment in held_segments(&line.steps) {
                        let points: Vec<(f64, f64)> = segment.iter().filter_map(point).collect();
                        match dash_of(index) {
                            None => chart.draw_series(LineSeries::new(points, style)),
                            Some((size, gap)) => {
                                chart.draw_series(DashedLineSeries::new(points, size, gap, style))
                            }
                        }
                        .map_err(drawing)?;
                    }
                    let held: Vec<(f64, f64)> = line
                        .steps
                        .iter()
                        .filter(|step| step.held())
                        .filter_map(point)
                        .collect();
                    let missed: Vec<(f64, f64)> = line
                        .steps
                        .iter()
                        .filter(|step| !step.held())
                        .filter_map(point)
                        .collect();
                    markers(&mut chart, index, &held, colour(index).filled())?;
                    hollow_markers(&mut chart, index, &missed, colour(index))?;
                }
            }
            Ok(())
        })
    }
}

/// The runs of consecutive held steps (see [`held_runs`]).
pub fn held_segments(steps: &[SweepStep]) -> Vec<&[SweepStep]> {
    held_runs(steps, SweepStep::held)
}
