//! The shape both charts of §2 share: a figure against the connections
//! held, log-log (1,000 to 38,000 connections, a few fds to tens of
//! thousands), one colour and marker per mode, two series each (solid and
//! dashed), grey reference lines labelled at the right, a tick at each
//! count of connections asked, and each line that ends at a mode's limit
//! ringed there, with what stopped it in its legend entry (text beside the
//! point would cross other lines where they crowd).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::sections::fd_bill::{FdBillLimit, FdBillRow};
use crate::style::{
    FONT, SIZE, colour, drawing, legend_at, legend_entry, markers, modes_of, svg, value_ticks,
};

/// One of the two series drawn per mode (the chart's caption names it).
pub struct Series {
    /// Its value in a row, if measured.
    pub value: fn(&FdBillRow) -> Option<f64>,
}

/// What a chart of §2 draws.
pub struct Scale<'a> {
    /// The caption; it says which series is solid and which dashed (the
    /// legend names the modes only).
    pub caption: &'static str,
    /// The y axis's description.
    pub y_desc: &'static str,
    /// How a y value is written on the axis.
    pub y_label: fn(f64) -> String,
    /// The solid series and the dashed one.
    pub series: [Series; 2],
    /// Horizontal reference lines: the value and its label.
    pub references: Vec<(f64, String)>,
    /// Every mode and step.
    pub rows: &'a [FdBillRow],
    /// Where modes stopped.
    pub limits: &'a [FdBillLimit],
}

impl Scale<'_> {
    /// The SVG text.
    pub fn draw(&self) -> anyhow::Result<String> {
        let rows = self.rows;
        let modes = modes_of(rows.iter().map(|row| row.mode));
        let xs = rows.iter().map(FdBillRow::held_or_asked);
        let x_min = xs.clone().fold(f64::INFINITY, f64::min).max(1.0);
        let x_max = xs.fold(x_min * 2.0, f64::max);
        let ys: Vec<f64> = rows
            .iter()
            .flat_map(|row| self.series.iter().filter_map(|series| (series.value)(row)))
            .chain(self.references.iter().map(|(y, _)| *y))
            .filter(|y| *y > 0.0)
            .collect();
        let y_min = ys.iter().copied().fold(f64::INFINITY, f64::min);
        let y_min = if y_min.is_finite() { y_min } else { 1.0 };
        let y_max = ys.iter().copied().fold(y_min * 10.0, f64::max);
        // Room right of the last step for the reference lines' labels, where
        // no line runs.
        let (x_low, x_high) = (x_min / 1.3, x_max * 3.0);
        let (y_low, y_high) = (y_min / 2.0, y_max * 4.0);
        svg(SIZE, |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(self.caption, (FONT, 20))
                .margin(16)
                // Room right of the plot for the reference lines' labels.
                .margin_right(24)
                .x_label_area_size(48)
                .y_label_area_size(84)
                .build_cartesian_2d((x_low..x_high).log_scale(), (y_low..y_high).log_scale())
                .map_err(drawing)?;
            chart
                .configure_mesh()
                .x_labels(0)
                // A log axis draws its key points even with no labels asked
                // for: the counts of connections below are the ticks.
                .x_label_formatter(&|_| String::new())
                .disable_x_mesh()
                .x_desc("keep-alive connections held (log scale)")
                .y_desc(self.y_desc)
                .y_label_formatter(&|y| (self.y_label)(*y))
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 15))
                .draw()
                .map_err(drawing)?;
            // A tick, a faint line and a label at each count asked.
            let mut asked: Vec<f64> = rows.iter().map(|row| row.connections as f64).collect();
            asked.sort_by(f64::total_cmp);
            asked.dedup();
            value_ticks(&mut chart, root, &asked, (y_low, y_high), |n| {
                runs::format::count(n.round() as u64)
            })?;
            let grey = RGBColor(90, 90, 90);
            for (y, text) in &self.references {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(x_low, *y), (x_high, *y)],
                        8,
                        4,
                        grey.stroke_width(1),
                    ))
                    .map_err(drawing)?;
                let (px, py) = chart.backend_coord(&(x_high, *y));
                root.draw(&Text::new(
                    text.clone(),
                    (px - 6, py - 3),
                    (FONT, 13)
                        .into_font()
                        .color(&grey)
                        .into_text_style(root)
                        .pos(Pos::new(HPos::Right, VPos::Bottom)),
                ))
                .map_err(drawing)?;
            }
            for (index, mode) in modes.iter().enumerate() {
                let style = colour(index).stroke_width(2);
                let limit = self.limits.iter().find(|limit| limit.mode == *mode);
                for (dashed, series) in [false, true].into_iter().zip(&self.series) {
                    let points: Vec<(f64, f64)> = rows
                        .iter()
                        .filter(|row| row.mode == *mode)
                        .filter_map(|row| Some((row.held_or_asked(), (series.value)(row)?)))
                        .filter(|(_, y)| *y > 0.0)
                        .collect();
                    if points.is_empty() {
                        continue;
                    }
                    let drawn = if dashed {
                        chart.draw_series(DashedLineSeries::new(
                            points.iter().copied(),
                            6,
                            4,
                            style,
                        ))
                    } else {
                        chart.draw_series(LineSeries::new(points.iter().copied(), style))
                    }
                    .map_err(drawing)?;
                    let mark = if dashed {
                        colour(index).stroke_width(2)
                    } else {
                        colour(index).filled()
                    };
                    // One legend entry per mode, on its solid series (the
                    // caption says which is which): half the entries, so
                    // that the box covers no data.
                    if !dashed {
                        let anno = drawn.label(match limit {
                            Some(limit) => format!("{mode} (ringed: stopped, {})", limit.short),
                            None => mode.to_string(),
                        });
                        legend_entry(anno, index, false, style, mark);
                    }
                    markers(&mut chart, index, &points, mark)?;
                }
                // Where the mode stopped: its last step, ringed.
                if let Some(limit) = limit {
                    let points = rows
                        .iter()
                        .filter(|row| row.mode == *mode && row.connections == limit.asked)
                        .flat_map(|row| self.series.iter().filter_map(|series| (series.value)(row)))
                        .map(|y| Circle::new((limit.held, y), 11, colour(index).stroke_width(2)));
                    chart.draw_series(points).map_err(drawing)?;
                }
            }
            legend_at(&mut chart, SeriesLabelPosition::UpperLeft)
        })
    }
}
