//! §4, where connections wait: the connections waiting in each listening
//! socket's accept queue over one stall run, a small panel per way of
//! sharing the port on one shared scale, each stall (SIGSTOP … SIGCONT)
//! shaded; a line per listener, its colour, dash and marker by whose queue
//! it is (the master's, the one shared, the stalled worker's own, another
//! worker's own). (§4, `queues.svg`.)

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Chart;
use crate::sections::fairness::queues::QueuePanel;
use crate::style::{FONT, colour, dash_of, drawing, legend_key, markers, svg};

/// The file REPORT.md links.
pub const FILE: &str = "queues.svg";

/// The shade of a stall.
const STALL_SHADE: RGBColor = RGBColor(200, 200, 200);

/// The legend's entries, by series (see `Whose::series`).
const SERIES: [&str; 4] = [
    "the master's queue",
    "one queue shared by the workers",
    "the stalled worker's own queue",
    "another worker's own queue",
];

/// The chart: what it draws from.
pub struct QueuesChart<'a> {
    /// One stall run per way of sharing the port.
    pub panels: &'a [QueuePanel],
}

impl Chart for QueuesChart<'_> {
    fn file(&self) -> &'static str {
        FILE
    }

    fn alt(&self) -> String {
        "connections waiting in each accept queue over a stall run, per way of sharing the port, the stalls shaded".to_owned()
    }

    fn draw(&self) -> anyhow::Result<String> {
        let panels = self.panels;
        let columns = if panels.len() <= 4 { 2 } else { 3 };
        let rows = panels.len().div_ceil(columns).max(1);
        let height = 110 + rows as u32 * 260;
        // One scale for every panel, so that depths compare across them.
        let most = panels
            .iter()
            .flat_map(|panel| panel.lines.iter().map(|line| line.queued_max))
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let y_max = (most * 1.15).ceil().max(2.0);
        let x_max = panels
            .iter()
            .map(|panel| panel.end_ms)
            .fold(100.0, f64::max)
            / 1000.0;
        svg((1400, height), |root| {
            let interval_ms = panels.first().map_or(0.0, |panel| panel.interval_ms);
            let titled = root
                .titled(
                    &format!(
                        "Connections waiting in each accept queue during one stall run, read every \
                         {interval_ms:.0} ms (shaded: one worker stopped, SIGSTOP to SIGCONT)"
                    ),
                    (FONT, 20),
                )
                .map_err(drawing)?;
            let (legend_area, grid) = titled.split_vertically(50);
            legend(&legend_area)?;
            let areas = grid.split_evenly((rows, columns));
            for (panel, area) in panels.iter().zip(areas.iter()) {
                let mut chart = ChartBuilder::on(area)
                    .caption(
                        format!("{}, {} workers", panel.variant.label(), panel.workers),
                        (FONT, 16),
                    )
                    .margin(8)
                    .margin_right(20)
                    .x_label_area_size(40)
                    .y_label_area_size(56)
                    .build_cartesian_2d(0.0..x_max, 0.0..y_max)
                    .map_err(drawing)?;
                chart
                    .configure_mesh()
                    .x_desc("time since the run's start, s")
                    .y_desc("waiting connections")
                    .x_label_formatter(&|x| format!("{x:.1}"))
                    .y_label_formatter(&|y| format!("{y:.0}"))
                    .label_style((FONT, 13))
                    .axis_desc_style((FONT, 14))
                    .draw()
                    .map_err(drawing)?;
                chart
                    .draw_series(panel.stalls.iter().map(|&(from, to)| {
                        Rectangle::new(
                            [(from / 1000.0, 0.0), (to / 1000.0, y_max)],
                            STALL_SHADE.mix(0.6).filled(),
                        )
                    }))
                    .map_err(drawing)?;
                for line in &panel.lines {
                    let (series, _) = line.whose.series();
                    let points: Vec<(f64, f64)> = line
                        .samples
                        .iter()
                        .map(|&(t, queued)| (t / 1000.0, queued))
                        .collect();
                    let style = colour(series).stroke_width(2);
                    match dash_of(series) {
                        None => chart
                            .draw_series(LineSeries::new(points.iter().copied(), style))
                            .map(|_| ()),
                        Some((size, gap)) => chart
                            .draw_series(DashedLineSeries::new(
                                points.iter().copied(),
                                size,
                                gap,
                                style,
                            ))
                            .map(|_| ()),
                    }
                    .map_err(drawing)?;
                    // A marker where a connection was waiting, so that the
                    // series are told apart without colour, and a sample of
                    // 0 does not hide the axis.
                    let waiting: Vec<(f64, f64)> =
                        points.iter().copied().filter(|&(_, q)| q > 0.0).collect();
                    markers(&mut chart, series, &waiting, colour(series).filled())?;
                }
            }
            Ok(())
        })
    }
}

/// The legend strip above the panels: each kind of queue's line and
/// marker, and the stall's shade.
fn legend(area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> anyhow::Result<()> {
    let text = |x: i32, y: i32, label: &str| {
        Text::new(
            label.to_owned(),
            (x, y),
            (FONT, 14)
                .into_font()
                .into_text_style(area)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        )
    };
    let mut x = 40;
    let y = 25;
    for (series, label) in SERIES.iter().enumerate() {
        legend_key(area, series, (x, y))?;
        area.draw(&text(x + 42, y, label)).map_err(drawing)?;
        x += 70 + 8 * label.chars().count() as i32;
    }
    area.draw(&Rectangle::new(
        [(x, y - 8), (x + 28, y + 8)],
        STALL_SHADE.mix(0.6).filled(),
    ))
    .map_err(drawing)?;
    area.draw(&text(x + 36, y, "worker stopped"))
        .map_err(drawing)?;
    Ok(())
}
