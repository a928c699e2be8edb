//! The whole server tree's CPU per request against the offered rate, one
//! panel per load side by side: a line per mode and peer (colour, dash and
//! marker) at the median over rounds, a whisker over the rounds' min–max,
//! the line joining only steps held in most rounds; a step not held drawn
//! hollow and joined to nothing (its cost is that of a server behind the
//! schedule). Every mode sits at the same few rates, with costs close to
//! each other's: each mode's markers are set a little to one side of the
//! rate's tick ([`DODGE`]), so that one does not hide another. (§0,
//! `cost-vs-rate.svg`.)

use plotters::prelude::*;
use runs::labels::Load;

use super::{Chart, held_runs};
use crate::sections::cost::CostStep;
use crate::style::{
    FONT, colour, dash_of, drawing, hollow_markers, legend_strip, markers, modes_of, rate_label,
    svg, trim, value_ticks,
};

/// The file REPORT.md links.
pub const FILE: &str = "cost-vs-rate.svg";

/// How far apart two modes' markers at one rate are set, as a factor on
/// the log axis: 4 %, so that 8 modes span ±15 %, inside the 25 % margin
/// each panel leaves beyond its rates.
const DODGE: f64 = 1.04;

/// The chart: what it draws from.
pub struct CostVsRateChart<'a> {
    /// Every step of every load, mode and rate (`Cost::steps`).
    pub steps: &'a [CostStep],
}

impl Chart for CostVsRateChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "The whole tree's CPU per request against the offered rate, per mode, keep-alive and a \
         new connection per request"
            .to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let steps: Vec<&CostStep> = self
            .steps
            .iter()
            .filter(|step| !step.nginx_alone && step.tree_us.is_some())
            .collect();
        let mut modes = modes_of(steps.iter().map(|step| step.mode));
        modes.sort();
        let mut loads: Vec<Load> = steps.iter().map(|step| step.load).collect();
        loads.sort();
        loads.dedup();
        let legend_rows = modes.len().div_ceil(((1400 - 40) / 200) as usize) as u32 + 1;
        let size = (1400, 600 + 22 * legend_rows);
        svg(size, |root| {
            let titled = root
                .titled(
                    "The whole server tree's CPU per request at equal offered rates (open loop), \
                     median over rounds, whiskers min–max",
                    (FONT, 20),
                )
                .map_err(drawing)?;
            let (legend_area, panels_area) = titled.split_vertically(12 + 22 * legend_rows);
            legend_strip(
                &legend_area,
                &modes,
                &[
                    ("held in most rounds, joined", false),
                    (
                        "hollow, not joined: not held (a server behind the schedule)",
                        true,
                    ),
                ],
            )?;
            let areas = panels_area.split_evenly((1, loads.len().max(1)));
            for (load, area) in loads.iter().zip(areas.iter()) {
                let panel: Vec<&CostStep> = steps
                    .iter()
                    .copied()
                    .filter(|step| step.load == *load)
                    .collect();
                let rates = panel.iter().map(|step| step.offered_per_s);
                let x_min = rates.clone().fold(f64::INFINITY, f64::min).max(1.0);
                let x_max = rates.fold(x_min, f64::max);
                // One rate (a quick run) in the middle of its panel.
                let (x_low, x_high) = if x_max > x_min {
                    (x_min / 1.25, x_max * 1.25)
                } else {
                    (x_min / 2.0, x_min * 2.0)
                };
                let y_max = panel
                    .iter()
                    .filter_map(|step| step.tree_us.map(|tree| tree.max))
                    .fold(1.0, f64::max)
                    * 1.1;
                let title = match load {
                    Load::NewConn => {
                        "a new connection per request (µs per request = per connection)"
                    }
                    _ => "keep-alive",
                };
                let mut chart = ChartBuilder::on(area)
                    .caption(title, (FONT, 16))
                    .margin(12)
                    .margin_right(24)
                    .x_label_area_size(52)
                    .y_label_area_size(76)
                    .build_cartesian_2d((x_low..x_high).log_scale(), 0.0..y_max)
                    .map_err(drawing)?;
                chart
                    .configure_mesh()
                    .x_labels(0)
                    .x_label_formatter(&|_| String::new())
                    .disable_x_mesh()
                    .y_desc("CPU µs per request, whole tree")
                    .x_desc("offered rate, requests/s (log scale)")
                    .y_label_formatter(&|us| trim(*us))
                    .label_style((FONT, 13))
                    .axis_desc_style((FONT, 14))
                    .draw()
                    .map_err(drawing)?;
                // A tick and a label at every offered rate.
                let mut offered: Vec<f64> = panel.iter().map(|step| step.offered_per_s).collect();
                offered.sort_by(f64::total_cmp);
                offered.dedup();
                value_ticks(&mut chart, area, &offered, (0.0, y_max), rate_label)?;
                for (index, mode) in modes.iter().enumerate() {
                    let line: Vec<&CostStep> = panel
                        .iter()
                        .copied()
                        .filter(|step| step.mode == *mode)
                        .collect();
                    let centre = (modes.len() as f64 - 1.0) / 2.0;
                    let dodge = DODGE.powf(index as f64 - centre);
                    draw_mode(&mut chart, index, dodge, &line)?;
                }
            }
            Ok(())
        })
    }
}

/// One mode's steps in a panel, each at its rate times `dodge` (its place
/// beside the other modes' markers): whiskers, the line through its held
/// steps, filled markers where held, hollow ones where not.
fn draw_mode<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    index: usize,
    dodge: f64,
    line: &[&CostStep],
) -> anyhow::Result<()>
where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    let point = |step: &&CostStep| Some((step.offered_per_s * dodge, step.tree_us?.median));
    let style = colour(index).stroke_width(2);
    // The whiskers first, under the markers.
    chart
        .draw_series(line.iter().filter_map(|step| {
            let tree = step.tree_us?;
            (tree.count > 1).then(|| {
                PathElement::new(
                    vec![
                        (step.offered_per_s * dodge, tree.min),
                        (step.offered_per_s * dodge, tree.max),
                    ],
                    colour(index).stroke_width(1),
                )
            })
        }))
        .map_err(drawing)?;
    for segment in held_runs(line, |step| step.held()) {
        let points: Vec<(f64, f64)> = segment.iter().filter_map(point).collect();
        match dash_of(index) {
            None => chart.draw_series(LineSeries::new(points, style)),
            Some((size, gap)) => chart.draw_series(DashedLineSeries::new(points, size, gap, style)),
        }
        .map_err(drawing)?;
    }
    let held: Vec<(f64, f64)> = line
        .iter()
        .filter(|step| step.held())
        .filter_map(point)
        .collect();
    let missed: Vec<(f64, f64)> = line
        .iter()
        .filter(|step| !step.held())
        .filter_map(point)
        .collect();
    markers(chart, index, &held, colour(index).filled())?;
    hollow_markers(chart, index, &missed, colour(index))
}
