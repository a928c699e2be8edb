//! Section 8: requests/s around one upgrade, a panel per strategy (one mode):
//! the answers of the old master's workers and of the new one's, the failed
//! requests, and when the new master started, was ready and the old one
//! exited.
//! (§8, `upgrade-timeline.svg`.)

use plotters::prelude::*;

use super::Chart;
use crate::sections::upgrades::UpgradeTimeline;
use crate::style::{FONT, SIZE, Swatch, drawing, svg, swatch_legend};

/// The file REPORT.md links.
pub const FILE: &str = "upgrade-timeline.svg";

/// The colour of the old generation's answers (Okabe–Ito blue).
const OLD_COLOUR: RGBColor = RGBColor(0, 114, 178);
/// The new generation's (Okabe–Ito vermillion), dashed.
const NEW_COLOUR: RGBColor = RGBColor(213, 94, 0);
/// The new master's `ready` (Okabe–Ito bluish green).
const READY_COLOUR: RGBColor = RGBColor(0, 158, 115);

/// The chart: what it draws from.
pub struct UpgradeTimelineChart<'a> {
    /// One run per strategy, of one mode.
    pub lines: &'a [UpgradeTimeline],
}

impl Chart for UpgradeTimelineChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "Requests/s around an upgrade, by the generation of the worker that answered".to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let lines = self.lines;
        let y_max = lines
            .iter()
            .flat_map(|line| line.old.iter().chain(&line.new).chain(&line.failed))
            .map(|point| point.1)
            .fold(10.0, f64::max)
            * 1.1;
        let x_min = lines
            .iter()
            .flat_map(|line| line.old.iter().map(|p| p.0))
            .fold(0.0, f64::min);
        let x_max = lines
            .iter()
            .flat_map(|line| line.old.iter().map(|p| p.0))
            .fold(0.5, f64::max);
        let mode = lines.first().map_or("", |line| line.mode.name());
        let height = 90 + 260 * lines.len().max(1) as u32;
        svg((SIZE.0, height), |root| {
            let titled = root
                .titled(
                    &format!(
                        "{mode}: requests/s around an upgrade, by the generation that answered"
                    ),
                    (FONT, 20),
                )
                .map_err(drawing)?;
            let (legend_area, panels) = titled.split_vertically(36);
            swatch_legend(
                &legend_area,
                &[
                    (OLD_COLOUR, Swatch::Line(None), "old workers"),
                    (NEW_COLOUR, Swatch::Line(Some((9, 5))), "new workers"),
                    (BLACK, Swatch::Line(Some((2, 4))), "failed"),
                    (READY_COLOUR, Swatch::Line(None), "new master ready"),
                    (
                        RGBColor(120, 120, 120),
                        Swatch::Line(Some((16, 5))),
                        "old master exit",
                    ),
                ],
            )?;
            let areas = panels.split_evenly((lines.len().max(1), 1));
            for (line, area) in lines.iter().zip(areas.iter()) {
                let mut chart = ChartBuilder::on(area)
                    .caption(line.strategy.name(), (FONT, 16))
                    .margin(8)
                    .margin_right(20)
                    .x_label_area_size(40)
                    .y_label_area_size(80)
                    .build_cartesian_2d(x_min..x_max, 0.0..y_max)
                    .map_err(drawing)?;
                chart
                    .configure_mesh()
                    .x_desc("when the request was due, s from the upgrade's start")
                    // No "-0.0" at the origin.
                    .x_label_formatter(&|x| format!("{:.1}", if x.abs() < 1e-9 { 0.0 } else { *x }))
                    .y_desc("requests/s")
                    .y_label_formatter(&|y| format!("{y:.0}"))
                    .label_style((FONT, 13))
                    .axis_desc_style((FONT, 14))
                    .draw()
                    .map_err(drawing)?;
                let vertical = |x: f64| vec![(x, 0.0), (x, y_max)];
                chart
                    .draw_series([PathElement::new(
                        vertical(line.new_ready_s),
                        READY_COLOUR.stroke_width(2),
                    )])
                    .map_err(drawing)?;
                chart
                    .draw_series(DashedLineSeries::new(
                        vertical(line.old_exit_s),
                        16,
                        5,
                        RGBColor(120, 120, 120).stroke_width(2),
                    ))
                    .map_err(drawing)?;
                chart
                    .draw_series(LineSeries::new(
                        line.old.iter().copied(),
                        OLD_COLOUR.stroke_width(2),
                    ))
                    .map_err(drawing)?;
                chart
                    .draw_series(DashedLineSeries::new(
                        line.new.iter().copied(),
                        9,
                        5,
                        NEW_COLOUR.stroke_width(2),
                    ))
                    .map_err(drawing)?;
                chart
                    .draw_series(DashedLineSeries::new(
                        line.failed.iter().copied(),
                        2,
                        4,
                        BLACK.stroke_width(2),
                    ))
                    .map_err(drawing)?;
            }
            Ok(())
        })
    }
}
