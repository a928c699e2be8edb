//! Latency against percentile, one line per mode: y log-scaled µs, x in nines
//! with ticks at p50, p90, p99, p99.9, ...
//! (§1, `latency.svg`.)

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use runs::labels::Load;

use super::Chart;
use crate::sections::throughput::{SpectrumLine, nines};
use crate::style::{FONT, SIZE, drawing, legend_at, micros_label, mode_line, svg};
use crate::text::load_name;

/// The file REPORT.md links.
pub const FILE: &str = "latency.svg";

/// The chart: what it draws from.
pub struct LatencyChart<'a> {
    /// The load the lines were measured under.
    pub load: Load,
    /// A line per mode.
    pub lines: &'a [SpectrumLine],
}

impl Chart for LatencyChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        format!(
            "Latency by percentile, {}, every mode",
            load_name(self.load)
        )
    }

    fn draw(&self) -> anyhow::Result<String> {
        let (load, lines) = (self.load, self.lines);
        let points = lines.iter().flat_map(|line| line.points.iter());
        let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max);
        let y_min = points
            .clone()
            .map(|p| p.1)
            .fold(f64::INFINITY, f64::min)
            .max(1.0);
        let y_max = points.map(|p| p.1).fold(10.0, f64::max);
        let what = match load {
            Load::OpenLoop => {
                "open loop at the same rate for every mode, corrected for coordinated omission"
            }
            Load::KeepAlive => "keep-alive, closed loop",
            Load::NewConn => load.name(),
        };
        svg(SIZE, |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(
                    format!("Request latency by percentile ({what})"),
                    (FONT, 20),
                )
                .margin(16)
                .x_label_area_size(48)
                .y_label_area_size(72)
                .build_cartesian_2d(
                    nines(50.0)..x_max + 0.05,
                    (y_min * 0.8..y_max * 1.25).log_scale(),
                )
                .map_err(drawing)?;
            chart
                .configure_mesh()
                .x_labels(0)
                .disable_x_mesh()
                .y_desc("latency (log scale)")
                .x_desc("percentile")
                .y_label_formatter(&|us| micros_label(*us))
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 15))
                .draw()
                .map_err(drawing)?;
            // Percentile ticks: a light vertical line and a label at each.
            for percentile in [50.0, 90.0, 99.0, 99.9, 99.99, 99.999] {
                let x = nines(percentile);
                if x > x_max + 0.05 {
                    break;
                }
                chart
                    .draw_series(LineSeries::new(
                        [(x, y_min * 0.8), (x, y_max * 1.25)],
                        BLACK.mix(0.15),
                    ))
                    .map_err(drawing)?;
                let (px, py) = chart.backend_coord(&(x, y_min * 0.8));
                root.draw(&Text::new(
                    format!("p{percentile}"),
                    (px, py + 6),
                    (FONT, 14)
                        .into_font()
                        .into_text_style(root)
                        .pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(drawing)?;
            }
            for (index, line) in lines.iter().enumerate() {
                mode_line(&mut chart, index, line.mode, &line.points)?;
            }
            // Lower right: the tails rise to the upper left, where the slowest
            // modes run at p90-p99; the bottom right holds no line.
            legend_at(&mut chart, SeriesLabelPosition::LowerRight)
        })
    }
}
