//! CPU per request, µs, one panel per load (sharing the y scale): a bar per
//! mode, the master's part below the workers', a whisker from the tree's
//! fewest to its most µs over rounds, and the tree's median above.
//! (§5, `cost-per-request.svg`.)

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use runs::labels::Load;

use super::Chart;
use crate::sections::master_cost::CostRow;
use crate::style::{FONT, SIZE, drawing, load_title, modes_of, svg};

/// The file REPORT.md links.
pub const FILE: &str = "cost-per-request.svg";

/// The master's part of a stacked cost bar (Okabe–Ito vermillion).
const MASTER_COLOUR: RGBColor = RGBColor(213, 94, 0);
/// The workers' part (Okabe–Ito blue).
const WORKERS_COLOUR: RGBColor = RGBColor(0, 114, 178);

/// The chart: what it draws from.
pub struct CostChart<'a> {
    /// Every mode and load.
    pub rows: &'a [CostRow],
}

impl Chart for CostChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "CPU per request, master and workers, per mode and load".to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let rows = self.rows;
        let mut loads: Vec<Load> = rows.iter().map(|row| row.load).collect();
        loads.sort();
        loads.dedup();
        let modes = modes_of(rows.iter().map(|row| row.mode));
        let y_max = rows
            .iter()
            .filter_map(|row| row.tree_us.map(|tree| tree.max))
            .fold(1.0, f64::max)
            * 1.18;
        let width = (260 + 120 * modes.len() as u32).max(SIZE.0);
        let height = 90 + 300 * loads.len().max(1) as u32;
        svg((width, height), |root| {
            let titled = root
                .titled(
                    "CPU per request, µs: the master (bottom) and the workers (top), median over rounds",
                    (FONT, 20),
                )
                .map_err(drawing)?;
            // The legend, above the panels and never over a bar.
            let (legend_area, panels_area) = titled.split_vertically(36);
            let key = |x: i32, colour: RGBColor, text: &str| -> anyhow::Result<()> {
                legend_area
                    .draw(&Rectangle::new([(x, 10), (x + 22, 26)], colour.filled()))
                    .map_err(drawing)?;
                legend_area
                    .draw(&Text::new(
                        text.to_owned(),
                        (x + 30, 18),
                        (FONT, 14)
                            .into_font()
                            .into_text_style(&legend_area)
                            .pos(Pos::new(HPos::Left, VPos::Center)),
                    ))
                    .map_err(drawing)
            };
            key(90, MASTER_COLOUR, "master (first watched process)")?;
            key(390, WORKERS_COLOUR, "workers (every other watched process)")?;
            legend_area
                .draw(&PathElement::new(
                    vec![(740, 10), (740, 26)],
                    BLACK.stroke_width(1),
                ))
                .map_err(drawing)?;
            legend_area
                .draw(&Text::new(
                    "tree: min–max over rounds",
                    (750, 18),
                    (FONT, 14)
                        .into_font()
                        .into_text_style(&legend_area)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(drawing)?;
            let areas = panels_area.split_evenly((loads.len().max(1), 1));
            for (load, area) in loads.iter().zip(areas.iter()) {
                let mut chart = ChartBuilder::on(area)
                    .caption(load_title(*load), (FONT, 16))
                    .margin(10)
                    .margin_right(20)
                    .x_label_area_size(34)
                    .y_label_area_size(80)
                    .build_cartesian_2d(0.0..modes.len().max(1) as f64, 0.0..y_max)
                    .map_err(drawing)?;
                chart
                    .configure_mesh()
                    .x_labels(0)
                    .disable_x_mesh()
                    .y_desc("CPU per request, µs")
                    .y_label_formatter(&|y| format!("{y:.0}"))
                    .label_style((FONT, 13))
                    .axis_desc_style((FONT, 14))
                    .draw()
                    .map_err(drawing)?;
                for (index, mode) in modes.iter().enumerate() {
                    let x = index as f64;
                    // Texts in the chart's coordinates, offset in pixels: the
                    // panel's own origin is not the backend's.
                    let centred = |vpos: VPos| {
                        (FONT, 13)
                            .into_font()
                            .into_text_style(area)
                            .pos(Pos::new(HPos::Center, vpos))
                    };
                    chart
                        .plotting_area()
                        .draw(
                            &(EmptyElement::at((x + 0.5, 0.0))
                                + Text::new(mode.name(), (0, 6), centred(VPos::Top))),
                        )
                        .map_err(drawing)?;
                    let Some(row) = rows
                        .iter()
                        .find(|row| row.load == *load && row.mode == *mode)
                    else {
                        continue;
                    };
                    let master = row.master_us.map_or(0.0, |m| m.median);
                    let workers = row.workers_us.map_or(0.0, |w| w.median);
                    chart
                        .draw_series([
                            Rectangle::new(
                                [(x + 0.2, 0.0), (x + 0.8, master)],
                                MASTER_COLOUR.filled(),
                            ),
                            Rectangle::new(
                                [(x + 0.2, master), (x + 0.8, master + workers)],
                                WORKERS_COLOUR.filled(),
                            ),
                        ])
                        .map_err(drawing)?;
                    let Some(tree) = row.tree_us else {
                        continue;
                    };
                    if tree.count > 1 {
                        chart
                            .draw_series([
                                PathElement::new(
                                    vec![(x + 0.5, tree.min), (x + 0.5, tree.max)],
                                    BLACK,
                                ),
                                PathElement::new(
                                    vec![(x + 0.44, tree.min), (x + 0.56, tree.min)],
                                    BLACK,
                                ),
                                PathElement::new(
                                    vec![(x + 0.44, tree.max), (x + 0.56, tree.max)],
                                    BLACK,
                                ),
                            ])
                            .map_err(drawing)?;
                    }
                    chart
                        .plotting_area()
                        .draw(
                            &(EmptyElement::at((x + 0.5, tree.max.max(tree.median)))
                                + Text::new(
                                    format!("{:.1}", tree.median),
                                    (0, -4),
                                    centred(VPos::Bottom),
                                )),
                        )
                        .map_err(drawing)?;
                }
            }
            Ok(())
        })
    }
}
