//! §4, a stalled worker: per way of sharing the port, the p99 of every
//! request, of the stalled worker's and of the worst other worker's, in ms:
//! a bar at the median over rounds, a whisker from the least to the most.
//! (§4, `stall.svg`.)

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Chart;
use crate::sections::fairness::StallRow;
use crate::stats::Spread;
use crate::style::{FONT, colour, drawing, svg};

/// The file REPORT.md links.
pub const FILE: &str = "stall.svg";

/// One figure of a [`StallRow`], over rounds.
type StallFigure = fn(&StallRow) -> Option<Spread>;

/// The chart: what it draws from.
pub struct StallChart<'a> {
    /// Every way of sharing the port.
    pub rows: &'a [StallRow],
}

impl Chart for StallChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "p99 of every request, of the stalled worker and of the worst other worker, per way of sharing the port".to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let rows = self.rows;
        let figures: [(&str, StallFigure); 3] = [
            ("p99, every request", |row| row.p99_us),
            ("p99, the stalled worker's requests", |row| {
                row.stalled_p99_us
            }),
            ("p99, the worst other worker's", |row| row.others_p99_us),
        ];
        let most = rows
            .iter()
            .flat_map(|row| figures.iter().filter_map(|(_, figure)| figure(row)))
            .map(|spread| spread.max / 1000.0)
            .fold(1.0, f64::max);
        // Room above the bars for the legend, so that it covers no data.
        let y_max = most * 1.35;
        let stall_ms = rows.first().map_or(0.0, |row| row.stall_ms);
        svg((1400, 620), |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(
                    format!(
                        "One worker stopped twice for {stall_ms:.0} ms in an open loop: who waited \
                         (bars: median over rounds, whiskers: min–max)"
                    ),
                    (FONT, 20),
                )
                .margin(16)
                .x_label_area_size(40)
                .y_label_area_size(80)
                .build_cartesian_2d(0.0..rows.len().max(1) as f64, 0.0..y_max)
                .map_err(drawing)?;
            chart
                .configure_mesh()
                .x_labels(0)
                .disable_x_mesh()
                .y_desc("latency, ms")
                .y_label_formatter(&|y| format!("{y:.0}"))
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 15))
                .draw()
                .map_err(drawing)?;
            let width = 0.8 / figures.len() as f64;
            for (which, (name, figure)) in figures.iter().enumerate() {
                let tint = colour(which);
                let bars: Vec<_> = rows
                    .iter()
                    .enumerate()
                    .filter_map(|(index, row)| Some((index, figure(row)?)))
                    .collect();
                let x0 = |index: usize| index as f64 + 0.1 + which as f64 * width;
                chart
                    .draw_series(bars.iter().map(|&(index, spread)| {
                        Rectangle::new(
                            [
                                (x0(index) + width * 0.08, 0.0),
                                (x0(index) + width * 0.92, spread.median / 1000.0),
                            ],
                            tint.filled(),
                        )
                    }))
                    .map_err(drawing)?
                    .label(*name)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 20, y + 5)], tint.filled())
                    });
                for &(index, spread) in &bars {
                    let middle = x0(index) + width / 2.0;
                    chart
                        .draw_series(LineSeries::new(
                            [(middle, spread.min / 1000.0), (middle, spread.max / 1000.0)],
                            BLACK.stroke_width(2),
                        ))
                        .map_err(drawing)?;
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .label_font((FONT, 15))
                .draw()
                .map_err(drawing)?;
            for (index, row) in rows.iter().enumerate() {
                let (px, py) = chart.backend_coord(&(index as f64 + 0.5, 0.0));
                root.draw(&Text::new(
                    row.variant.label(),
                    (px, py + 4),
                    (FONT, 14)
                        .into_font()
                        .into_text_style(root)
                        .pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(drawing)?;
            }
            Ok(())
        })
    }
}
