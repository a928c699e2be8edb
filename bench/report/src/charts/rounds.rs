//! Every round of §1 per mode, one dot a round (colour and marker per mode;
//! hollow for a disturbed round, see `stats::disturbance`) and a black bar
//! at the median: requests/s, and the whole tree's CPU per request, for
//! keep-alive and a new connection per request, one panel each.
//! (§1, `rounds.svg`.)

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use runs::labels::{Load, Mode};

use super::Chart;
use crate::sections::master_cost::CostRow;
use crate::sections::throughput::ThroughputRow;
use crate::stats::{DISTURBED_OTHERS_SHARE, DISTURBED_STEAL_SHARE, median};
use crate::style::{
    FONT, SIZE, colour, drawing, hollow_markers, load_title, markers, modes_of, svg, trim,
};

/// The file REPORT.md links.
pub const FILE: &str = "rounds.svg";

/// The chart: what it draws from.
pub struct RoundsChart<'a> {
    /// §1's rows: every round's requests/s.
    pub throughput: &'a [ThroughputRow],
    /// §5's rows, from the same runs: every round's CPU per request.
    pub cost: &'a [CostRow],
}

impl Chart for RoundsChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "Every round per mode: requests/s and CPU per request".to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let (throughput, cost) = (self.throughput, self.cost);
        let loads = [Load::KeepAlive, Load::NewConn];
        let modes = {
            let mut modes = modes_of(
                throughput
                    .iter()
                    .filter(|row| loads.contains(&row.load))
                    .map(|row| row.mode),
            );
            modes.sort();
            modes
        };
        // (title, unit, per mode and load: every round's values, and whether
        // each round was disturbed)
        type Panel = (String, &'static str, Vec<(Mode, Vec<f64>, Vec<bool>)>);
        let mut panels: Vec<Panel> = Vec::new();
        for load in loads {
            let values: Vec<(Mode, Vec<f64>, Vec<bool>)> = throughput
                .iter()
                .filter(|row| row.load == load)
                .map(|row| {
                    (
                        row.mode,
                        row.every_round.clone(),
                        row.every_round_disturbed.clone(),
                    )
                })
                .collect();
            if !values.is_empty() {
                panels.push((
                    format!("requests/s, {}", load_title(load)),
                    "requests/s",
                    values,
                ));
            }
        }
        for load in loads {
            let values: Vec<(Mode, Vec<f64>, Vec<bool>)> = cost
                .iter()
                .filter(|row| row.load == load && !row.nginx_alone)
                .map(|row| {
                    (
                        row.mode,
                        row.every_round_tree_us.clone(),
                        row.every_round_disturbed.clone(),
                    )
                })
                .collect();
            if values.iter().any(|(_, v, _)| !v.is_empty()) {
                panels.push((
                    format!("the whole tree's CPU per request, {}", load_title(load)),
                    "CPU µs per request",
                    values,
                ));
            }
        }
        let any_disturbed = panels
            .iter()
            .any(|(_, _, values)| values.iter().any(|(_, _, d)| d.contains(&true)));
        let height = 60 + 260 * panels.len().max(1) as u32;
        svg((SIZE.0 + 100, height), |root| {
            let titled = root
                .titled(
                    "Every round of §1, per mode: a dot per round, the bar at the median",
                    (FONT, 20),
                )
                .map_err(drawing)?;
            let titled = if any_disturbed {
                let (note, rest) = titled.split_vertically(24);
                note.draw(&Text::new(
                    format!(
                        "hollow: a disturbed round (steal > {:.0} % or other processes > {:.0} % of the machine's CPU), kept",
                        DISTURBED_STEAL_SHARE * 100.0,
                        DISTURBED_OTHERS_SHARE * 100.0
                    ),
                    ((SIZE.0 + 100) as i32 / 2, 4),
                    (FONT, 14)
                        .into_font()
                        .into_text_style(&note)
                        .pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(drawing)?;
                rest
            } else {
                titled
            };
            let areas = titled.split_evenly((panels.len().max(1), 1));
            for ((title, unit, values), area) in panels.iter().zip(areas.iter()) {
                let y_max = values
                    .iter()
                    .flat_map(|(_, v, _)| v.iter().copied())
                    .fold(1.0, f64::max)
                    * 1.15;
                let mut chart = ChartBuilder::on(area)
                    .caption(title, (FONT, 16))
                    .margin(10)
                    .margin_right(20)
                    .x_label_area_size(40)
                    .y_label_area_size(84)
                    .build_cartesian_2d(0.0..modes.len().max(1) as f64, 0.0..y_max)
                    .map_err(drawing)?;
                chart
                    .configure_mesh()
                    .x_labels(0)
                    .disable_x_mesh()
                    .y_desc(*unit)
                    .y_label_formatter(&|y| {
                        if *y >= 10_000.0 {
                            format!("{}k", trim(y / 1000.0))
                        } else {
                            format!("{y:.0}")
                        }
                    })
                    .label_style((FONT, 13))
                    .axis_desc_style((FONT, 14))
                    .draw()
                    .map_err(drawing)?;
                let (ax, ay) = area.get_base_pixel();
                for (index, mode) in modes.iter().enumerate() {
                    let x = index as f64 + 0.5;
                    // The names alternate between two lines, so that long ones
                    // never run into each other.
                    let (px, py) = chart.backend_coord(&(x, 0.0));
                    area.draw(&Text::new(
                        mode.name(),
                        (px - ax, py - ay + 4 + 16 * (index as i32 % 2)),
                        (FONT, 13)
                            .into_font()
                            .into_text_style(area)
                            .pos(Pos::new(HPos::Center, VPos::Top)),
                    ))
                    .map_err(drawing)?;
                    let Some((_, rounds, disturbed)) = values.iter().find(|(m, _, _)| m == mode)
                    else {
                        continue;
                    };
                    // Side by side within the mode's column, in round order.
                    let n = rounds.len().max(1) as f64;
                    let points: Vec<(f64, f64, bool)> = rounds
                        .iter()
                        .enumerate()
                        .map(|(round, &value)| {
                            (
                                x + (round as f64 - (n - 1.0) / 2.0) * 0.06,
                                value,
                                disturbed.get(round).copied().unwrap_or(false),
                            )
                        })
                        .collect();
                    let of = |wanted: bool| -> Vec<(f64, f64)> {
                        points
                            .iter()
                            .filter(|p| p.2 == wanted)
                            .map(|p| (p.0, p.1))
                            .collect()
                    };
                    markers(&mut chart, index, &of(false), colour(index).filled())?;
                    hollow_markers(&mut chart, index, &of(true), colour(index))?;
                    if let Some(median) = median(rounds.iter().copied()) {
                        chart
                            .draw_series([PathElement::new(
                                vec![(x - 0.3, median), (x + 0.3, median)],
                                BLACK.stroke_width(2),
                            )])
                            .map_err(drawing)?;
                    }
                }
            }
            Ok(())
        })
    }
}
