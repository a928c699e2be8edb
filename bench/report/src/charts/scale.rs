//! The shape both charts of §2 share: a figure against the connections
//! held, log-log (1,000 to 38,000 connections, a few fds to tens of
//! thousands), one colour and marker per mode, two series each (solid and
//! dashed), grey reference lines labelled at the right, and each line that
//! ends at a mode's limit marked there with what stopped it.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::sections::fd_bill::{FdBillLimit, FdBillRow};
use crate::style::{FONT, SIZE, colour, drawing, legend_at, legend_entry, markers, modes_of, svg};

/// One of the two series drawn per mode.
pub struct Series {
    /// Its name in the legend, after the mode's (`master`).
    pub name: &'static str,
    /// Its value in a row, if measured.
    pub value: fn(&FdBillRow) -> Option<f64>,
}

/// What a chart of §2 draws.
pub struct Scale<'a> {
    /// The caption.
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
        let (x_low, x_high) = (x_min / 1.3, x_max * 1.6);
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
                .x_desc("keep-alive connections held (log scale)")
                .y_desc(self.y_desc)
                .x_label_formatter(&|x| runs::format::count(x.round() as u64))
                .y_label_formatter(&|y| (self.y_label)(*y))
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 15))
                .draw()
                .map_err(drawing)?;
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
                    let anno = if dashed {
                        chart.draw_series(DashedLineSeries::new(
                            points.iter().copied(),
                            6,
                            4,
                            style,
                        ))
                    } else {
                        chart.draw_series(LineSeries::new(points.iter().copied(), style))
                    }
                    .map_err(drawing)?
                    .label(format!("{mode}: {}", series.name));
                    let mark = if dashed {
                        colour(index).stroke_width(2)
                    } else {
                        colour(index).filled()
                    };
                    legend_entry(anno, index, dashed, style, mark);
                    markers(&mut chart, index, &points, mark)?;
                }
                // Where the mode stopped: its last step, marked with why.
                if let Some(limit) = self.limits.iter().find(|limit| limit.mode == *mode)
                    && let Some(y) = rows
                        .iter()
                        .find(|row| row.mode == *mode && row.connections == limit.asked)
                        .and_then(|row| (self.series[0].value)(row))
                {
                    let (px, py) = chart.backend_coord(&(limit.held, y));
                    root.draw(&Text::new(
                        format!("{mode}: {}", limit.short),
                        (px + 8, py - 8),
                        (FONT, 13)
                            .into_font()
                            .color(&colour(index))
                            .into_text_style(root)
                            .pos(Pos::new(HPos::Left, VPos::Bottom)),
                    ))
                    .map_err(drawing)?;
                }
            }
            legend_at(&mut chart, SeriesLabelPosition::UpperLeft)
        })
    }
}
