//! Section 8: failed requests per upgrade (the median over a cell's
//! upgrades, min–max as a whisker), a horizontal bar per mode and strategy,
//! named on the left, coloured by strategy, its value written beside it (so
//! a 0 shows).
//! (§8, `upgrade-failures.svg`.)

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use runs::labels::Strategy;

use super::Chart;
use crate::sections::upgrades::UpgradeRow;
use crate::style::{FONT, SIZE, Swatch, colour, drawing, svg, swatch_legend};

/// The file REPORT.md links.
pub const FILE: &str = "upgrade-failures.svg";

/// The chart: what it draws from.
pub struct UpgradeFailuresChart<'a> {
    /// Every mode and strategy.
    pub rows: &'a [UpgradeRow],
}

impl Chart for UpgradeFailuresChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "Failed requests per upgrade, per mode and strategy".to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let rows = self.rows;
        let mut strategies: Vec<Strategy> = rows.iter().map(|row| row.strategy).collect();
        strategies.sort();
        strategies.dedup();
        let mut ordered: Vec<&UpgradeRow> = rows.iter().collect();
        ordered.sort_by_key(|row| (row.strategy, row.mode));
        let x_max = rows
            .iter()
            .filter_map(|row| row.failed_per_upgrade.map(|spread| spread.max))
            .fold(1.0, f64::max)
            * 1.15;
        let n = ordered.len().max(1);
        let height = 150 + 34 * n as u32;
        svg((SIZE.0, height), |root| {
            let titled = root
                .titled(
                    "Failed requests per upgrade (median over the upgrades, whisker min–max)",
                    (FONT, 20),
                )
                .map_err(drawing)?;
            let (legend_area, area) = titled.split_vertically(36);
            let entries: Vec<(RGBColor, Swatch, &str)> = strategies
                .iter()
                .map(|strategy| (strategy_colour(*strategy), Swatch::Filled, strategy.name()))
                .collect();
            swatch_legend(&legend_area, &entries)?;
            let mut chart = ChartBuilder::on(&area)
                .margin(12)
                .margin_right(40)
                .x_label_area_size(44)
                .y_label_area_size(270)
                .build_cartesian_2d(0.0..x_max, 0.0..n as f64)
                .map_err(drawing)?;
            chart
                .configure_mesh()
                .y_labels(0)
                .disable_y_mesh()
                .x_desc("failed requests per upgrade")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 14))
                .draw()
                .map_err(drawing)?;
            let text = |hpos: HPos| {
                (FONT, 13)
                    .into_font()
                    .into_text_style(&area)
                    .pos(Pos::new(hpos, VPos::Center))
            };
            for (index, row) in ordered.iter().enumerate() {
                // The first row at the top.
                let y = (n - 1 - index) as f64 + 0.5;
                chart
                    .plotting_area()
                    .draw(
                        &(EmptyElement::at((0.0, y))
                            + Text::new(
                                format!("{} · {}", row.mode, row.strategy),
                                (-10, 0),
                                text(HPos::Right),
                            )),
                    )
                    .map_err(drawing)?;
                let Some(spread) = row.failed_per_upgrade else {
                    continue;
                };
                chart
                    .draw_series([Rectangle::new(
                        [(0.0, y - 0.32), (spread.median, y + 0.32)],
                        strategy_colour(row.strategy).filled(),
                    )])
                    .map_err(drawing)?;
                if spread.count > 1 && spread.max > spread.min {
                    chart
                        .draw_series([PathElement::new(
                            vec![(spread.min, y), (spread.max, y)],
                            BLACK,
                        )])
                        .map_err(drawing)?;
                }
                chart
                    .plotting_area()
                    .draw(
                        &(EmptyElement::at((spread.max.max(spread.median), y))
                            + Text::new(format!("{:.0}", spread.median), (6, 0), text(HPos::Left))),
                    )
                    .map_err(drawing)?;
            }
            Ok(())
        })
    }
}

/// A strategy's colour, the same in every chart.
fn strategy_colour(strategy: Strategy) -> RGBColor {
    let index = Strategy::ALL
        .iter()
        .position(|s| *s == strategy)
        .unwrap_or(0);
    // Skip the palette's first two: the timeline's old and new generations.
    colour(index + 2)
}
