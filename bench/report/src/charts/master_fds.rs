//! The master's fds over time in one newconn run per mode, the measured window shaded.
//! (§5, `master-fds-over-time.svg`.)

use plotters::prelude::*;

use super::Chart;
use crate::sections::master_cost::FdSeries;
use crate::style::{FONT, SIZE, drawing, legend, mode_line, svg};

/// The file REPORT.md links.
pub const FILE: &str = "master-fds-over-time.svg";

/// The chart: what it draws from.
pub struct MasterFdsChart<'a> {
    /// One run per mode.
    pub series: &'a [FdSeries],
}

impl Chart for MasterFdsChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "The master's fds over one new-connection run per mode".to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let series = self.series;
        let x_max = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(0.1, f64::max);
        let y_max = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(10.0, f64::max);
        // Room above the lines for the legend (eight modes and the window), so
        // that it covers no data.
        let y_top = y_max * 1.9;
        svg(SIZE, |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(
                    "The master's open fds over a run, a new connection per request",
                    (FONT, 20),
                )
                .margin(16)
                .x_label_area_size(48)
                .y_label_area_size(72)
                .build_cartesian_2d(0.0..x_max * 1.02, 0.0..y_top)
                .map_err(drawing)?;
            if let Some(first) = series.first() {
                let (from, to) = first.window_s;
                chart
                    .draw_series([Rectangle::new(
                        [(from, 0.0), (to, y_top)],
                        RGBColor(230, 230, 230).mix(0.5).filled(),
                    )])
                    .map_err(drawing)?
                    .label("measured (after the warm-up)")
                    .legend(|(x, y)| {
                        Rectangle::new(
                            [(x, y - 5), (x + 20, y + 5)],
                            RGBColor(220, 220, 220).filled(),
                        )
                    });
            }
            chart
                .configure_mesh()
                .x_desc("time from the run's start, s")
                .y_desc("master's open fds")
                .y_label_formatter(&|y| format!("{y:.0}"))
                .label_style((FONT, 14))
                .axis_desc_style((FONT, 15))
                .draw()
                .map_err(drawing)?;
            for (index, line) in series.iter().enumerate() {
                mode_line(&mut chart, index, line.mode, &line.points)?;
            }
            legend(&mut chart)
        })
    }
}
