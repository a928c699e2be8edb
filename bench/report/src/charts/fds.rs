//! Master fds (solid) and the whole tree's (dashed) against held
//! connections, per mode with markers; a line at the usual soft limit
//! ([`USUAL_SOFT_LIMIT`]) and the slope of a relaying master
//! ([`RELAY_FDS_PER_CONNECTION`]), both labelled.
//! (§2, `fds.svg`.)

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use runs::format::count;

use super::Chart;
use crate::sections::fd_bill::{FdBillRow, RELAY_FDS_PER_CONNECTION, USUAL_SOFT_LIMIT};
use crate::style::{FONT, SIZE, colour, drawing, legend, legend_entry, markers, modes_of, svg};

/// The file REPORT.md links.
pub const FILE: &str = "fds.svg";

/// The chart: what it draws from.
pub struct FdsChart<'a> {
    /// Every mode and count of connections.
    pub rows: &'a [FdBillRow],
}

impl Chart for FdsChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "Master and whole-tree fds against open connections".to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let rows = self.rows;
        let modes = modes_of(rows.iter().map(|row| row.mode));
        let x_max = rows.iter().map(|row| row.connections).max().unwrap_or(1) as f64;
        let y_max = rows
            .iter()
            .flat_map(|row| [row.master_fds, row.tree_fds])
            .flatten()
            .fold(USUAL_SOFT_LIMIT * 1.1, f64::max);
        svg(SIZE, |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(
                    "The fd bill: open fds against held connections, master and whole tree",
                    (FONT, 20),
                )
                .margin(16)
                .margin_right(28)
                .x_label_area_size(48)
                .y_label_area_size(80)
                .build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max * 1.12)
                .map_err(drawing)?;
            chart
                .configure_mesh()
                .x_desc("open keep-alive connections")
                .y_desc("open fds (most during the run)")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.0}"))
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 15))
                .draw()
                .map_err(drawing)?;
            let grey = RGBColor(90, 90, 90);
            chart
                .draw_series(DashedLineSeries::new(
                    [(0.0, USUAL_SOFT_LIMIT), (x_max * 1.05, USUAL_SOFT_LIMIT)],
                    8,
                    4,
                    grey.stroke_width(1),
                ))
                .map_err(drawing)?;
            let text = |text: String, (px, py): (i32, i32), hpos: HPos| {
                root.draw(&Text::new(
                    text,
                    (px, py),
                    (FONT, 13)
                        .into_font()
                        .color(&grey)
                        .into_text_style(root)
                        .pos(Pos::new(hpos, VPos::Bottom)),
                ))
                .map_err(drawing)
            };
            text(
                format!(
                    "{}: the usual soft limit (ulimit -n) of one process",
                    count(USUAL_SOFT_LIMIT as u64)
                ),
                chart.backend_coord(&(x_max * 1.03, USUAL_SOFT_LIMIT + y_max * 0.01)),
                HPos::Right,
            )?;
            // The slope of a relaying master, from the origin.
            let relay = RELAY_FDS_PER_CONNECTION as f64;
            let slope_end = (x_max * 1.05).min(y_max * 1.05 / relay);
            chart
                .draw_series(DashedLineSeries::new(
                    [(0.0, 0.0), (slope_end, relay * slope_end)],
                    2,
                    4,
                    grey.stroke_width(1),
                ))
                .map_err(drawing)?;
            let (px, py) = chart.backend_coord(&(slope_end, relay * slope_end));
            text(
                format!("dotted: {RELAY_FDS_PER_CONNECTION} fds per connection"),
                (px - 6, py - 6),
                HPos::Right,
            )?;
            for (index, mode) in modes.iter().enumerate() {
                let series = |figure: fn(&FdBillRow) -> Option<f64>| -> Vec<(f64, f64)> {
                    rows.iter()
                        .filter(|row| row.mode == *mode)
                        .filter_map(|row| Some((row.connections as f64, figure(row)?)))
                        .collect()
                };
                let master = series(|row| row.master_fds);
                let tree = series(|row| row.tree_fds);
                let style = colour(index).stroke_width(2);
                let filled = colour(index).filled();
                let anno = chart
                    .draw_series(LineSeries::new(master.iter().copied(), style))
                    .map_err(drawing)?
                    .label(format!("{mode}: master"));
                legend_entry(anno, index, false, style, filled);
                markers(&mut chart, index, &master, filled)?;
                if !tree.is_empty() {
                    let hollow = colour(index).stroke_width(2);
                    let anno = chart
                        .draw_series(DashedLineSeries::new(tree.iter().copied(), 6, 4, style))
                        .map_err(drawing)?
                        .label(format!("{mode}: whole tree"));
                    legend_entry(anno, index, true, style, hollow);
                    markers(&mut chart, index, &tree, hollow)?;
                }
            }
            legend(&mut chart)
        })
    }
}
