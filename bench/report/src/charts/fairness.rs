//! §4: each worker's share, largest first, one group of bars per way of
//! sharing the port: a panel per cluster size and [`FAIRNESS_PANELS`] entry,
//! a dashed line at the even share.
//! (§4, `fairness.svg`.)

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use runs::labels::Load;

use super::Chart;
use crate::sections::fairness::{FairnessRow, Variant};
use crate::style::{FONT, SIZE, colour, drawing, svg};

/// The file REPORT.md links.
pub const FILE: &str = "fairness.svg";

/// §4's panels: which shares, of which load.
const FAIRNESS_PANELS: [(Load, bool, &str); 3] = [
    (
        Load::NewConn,
        false,
        "connections (= requests), a new connection per request, open loop",
    ),
    (
        Load::KeepAlive,
        false,
        "connections, keep-alive, opened in a burst",
    ),
    (
        Load::KeepAlive,
        true,
        "requests, keep-alive, opened in a burst",
    ),
];

/// The chart: what it draws from.
pub struct FairnessChart<'a> {
    /// Every way of sharing the port, cluster size and load.
    pub rows: &'a [FairnessRow],
}

impl Chart for FairnessChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "Each worker's share of the connections and requests, per way of sharing the port"
            .to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let rows = self.rows;
        let mut sizes: Vec<usize> = rows.iter().map(|row| row.workers).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let mut variants: Vec<Variant> = rows.iter().map(|row| row.variant).collect();
        variants.sort();
        variants.dedup();
        let mut panels = Vec::new();
        for &workers in &sizes {
            for (load, requests, what) in FAIRNESS_PANELS {
                let panel: Vec<(Variant, &[f64])> = rows
                    .iter()
                    .filter(|row| row.workers == workers && row.load == load)
                    .map(|row| {
                        let shares = match requests {
                            true => &row.request_shares,
                            false => &row.connection_shares,
                        };
                        (row.variant, shares.as_slice())
                    })
                    .collect();
                if !panel.is_empty() {
                    panels.push((format!("{workers} workers: {what}"), panel));
                }
            }
        }
        let size = (1400, (60 + 260 * panels.len() as u32).max(SIZE.1));
        svg(size, |root| {
            let titled = root
                .titled(
                    "Fairness: each worker's share, largest first (dashed: the even share)",
                    (FONT, 22),
                )
                .map_err(drawing)?;
            let areas = titled.split_evenly((panels.len().max(1), 1));
            for ((title, panel), area) in panels.iter().zip(areas.iter()) {
                fairness_panel(area, title, panel, &variants)?;
            }
            Ok(())
        })
    }
}

fn fairness_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    groups: &[(Variant, &[f64])],
    variants: &[Variant],
) -> anyhow::Result<()> {
    let most = groups
        .iter()
        .flat_map(|(_, shares)| shares.iter().copied())
        .fold(0.0, f64::max);
    let y_max = (most * 100.0 * 1.15).max(10.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 17))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..groups.len().max(1) as f64, 0.0..y_max)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_labels(0)
        .disable_x_mesh()
        .y_desc("share, %")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(drawing)?;
    for (index, (variant, shares)) in groups.iter().enumerate() {
        // The same colour for a variant in every panel.
        let tint = colour(variants.iter().position(|v| v == variant).unwrap_or(index));
        let ranks = shares.len().max(1);
        let width = 0.8 / ranks as f64;
        let left = index as f64 + 0.1;
        let bars = shares.iter().enumerate().map(|(rank, share)| {
            let x0 = left + rank as f64 * width;
            Rectangle::new(
                [(x0 + width * 0.05, 0.0), (x0 + width * 0.95, share * 100.0)],
                tint.filled(),
            )
        });
        chart.draw_series(bars).map_err(drawing)?;
        // The even share, 100 / workers: bars above it served more than their part.
        let even = 100.0 / ranks as f64;
        chart
            .draw_series(DashedLineSeries::new(
                [(left, even), (left + 0.8, even)],
                4,
                3,
                BLACK.stroke_width(1),
            ))
            .map_err(drawing)?;
        // backend_coord is in the whole image's pixels, `area` draws in its
        // own: without the shift each name fell a panel's offset too low.
        let (px, py) = chart.backend_coord(&(index as f64 + 0.5, 0.0));
        let (ax, ay) = area.get_base_pixel();
        area.draw(&Text::new(
            variant.label(),
            (px - ax, py - ay + 4),
            (FONT, 14)
                .into_font()
                .into_text_style(area)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(drawing)?;
    }
    Ok(())
}
