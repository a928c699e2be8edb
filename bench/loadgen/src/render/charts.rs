//! The SVG charts of `loadgen report`, drawn with plotters' SVG backend from
//! [`super::figures`]: the latency spectrum (log-log: nines against µs), the fd
//! bill (master and whole tree), the fairness bars, the CPU per request
//! (master and workers stacked), the master's fds over time, every round of
//! §1 per mode (a strip chart) and p99 against the offered rate (the sweep).

use plotters::chart::SeriesAnno;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figures::{
    CostRow, FairnessRow, FdBillRow, FdSeries, SLOS_US, SpectrumLine, Spread, StallRow, SweepLine,
    ThroughputRow, UpgradeRow, UpgradeTimeline, Variant, nines,
};
use runs::labels::{Load, Mode, Strategy};

/// The charts' file names, as REPORT.md links them.
pub const LATENCY_SVG: &str = "latency.svg";
/// Section 2's chart.
pub const FDS_SVG: &str = "fds.svg";
/// Section 4's chart.
pub const FAIRNESS_SVG: &str = "fairness.svg";
/// §4's stalled-worker chart.
pub const STALL_SVG: &str = "stall.svg";
/// Section 5's chart of the master's fds.
pub const MASTER_FDS_SVG: &str = "master-fds-over-time.svg";
/// Section 5's chart of the CPU per request.
pub const COST_SVG: &str = "cost-per-request.svg";
/// Section 1's strip chart: every round per mode.
pub const ROUNDS_SVG: &str = "rounds.svg";
/// Section 1b's chart: p99 against the offered rate.
pub const LATENCY_RATE_SVG: &str = "latency-vs-rate.svg";

/// Section 8's chart of failed requests per upgrade.
pub const UPGRADE_FAILURES_SVG: &str = "upgrade-failures.svg";
/// Section 8's chart of requests/s around an upgrade.
pub const UPGRADE_TIMELINE_SVG: &str = "upgrade-timeline.svg";

/// The usual soft limit of open fds per process, drawn on the fd bill.
const SOFT_LIMIT: f64 = 1024.0;

/// The master's part of a stacked cost bar (Okabe–Ito vermillion).
const MASTER_COLOUR: RGBColor = RGBColor(213, 94, 0);
/// The workers' part (Okabe–Ito blue).
const WORKERS_COLOUR: RGBColor = RGBColor(0, 114, 178);

/// Every chart's size in pixels.
const SIZE: (u32, u32) = (960, 560);

/// The font family; the SVG names it and the viewer picks a face.
const FONT: &str = "sans-serif";

/// A colour per series, colour-blind safe (Okabe–Ito), in mode order.
const PALETTE: [RGBColor; 8] = [
    RGBColor(213, 94, 0),
    RGBColor(0, 114, 178),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(120, 120, 120),
    RGBColor(0, 0, 0),
];

/// The colour of series `index`.
fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// A drawing error as an anyhow error (plotters' error carries the backend's).
fn drawing<E: std::fmt::Display>(err: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {err}")
}

/// Draws with `draw` on a white SVG canvas and returns the SVG text.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        draw(&root)?;
        root.present().map_err(drawing)?;
    }
    Ok(out)
}

/// Latency against percentile, one line per mode: y log-scaled µs, x in nines
/// with ticks at p50, p90, p99, p99.9, ...
pub fn latency(load: Load, lines: &[SpectrumLine]) -> anyhow::Result<String> {
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
        for (percentile, label) in [
            (50.0, "p50"),
            (90.0, "p90"),
            (99.0, "p99"),
            (99.9, "p99.9"),
            (99.99, "p99.99"),
            (99.999, "p99.999"),
        ] {
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
                label,
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

/// Draws a point marker per series index at each of `points`: circle,
/// triangle, square, cross, ... so that no two modes rely on colour alone.
fn markers<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    index: usize,
    points: &[(f64, f64)],
    style: ShapeStyle,
) -> anyhow::Result<()>
where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    let points = points.iter().copied();
    match index % 4 {
        0 => chart
            .draw_series(points.map(|p| Circle::new(p, 5, style)))
            .map(|_| ()),
        1 => chart
            .draw_series(points.map(|p| TriangleMarker::new(p, 6, style)))
            .map(|_| ()),
        2 => chart
            .draw_series(
                points.map(|p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], style)),
            )
            .map(|_| ()),
        _ => chart
            .draw_series(points.map(|p| Cross::new(p, 5, style)))
            .map(|_| ()),
    }
    .map_err(drawing)
}

/// Master fds (solid) and the whole tree's (dashed) against held
/// connections, per mode with markers; a line at the usual soft limit of
/// 1,024 fds and the 2-per-connection slope, both labelled.
pub fn fds(rows: &[FdBillRow]) -> anyhow::Result<String> {
    let modes = modes_of(rows.iter().map(|row| row.mode));
    let x_max = rows.iter().map(|row| row.connections).max().unwrap_or(1) as f64;
    let y_max = rows
        .iter()
        .flat_map(|row| [row.master_fds, row.tree_fds])
        .flatten()
        .fold(SOFT_LIMIT * 1.1, f64::max);
    svg(SIZE, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "The fd bill: open fds against held connections, master and whole tree",
                (FONT, 20),
            )
            .margin(16)
            .margin_right(28)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max * 1.12)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .x_desc("open keep-alive connections")
            .y_desc("open fds (most during the run)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()
            .map_err(drawing)?;
        let grey = RGBColor(90, 90, 90);
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, SOFT_LIMIT), (x_max * 1.05, SOFT_LIMIT)],
                8,
                4,
                grey.stroke_width(1),
            ))
            .map_err(drawing)?;
        let text = |text: String, (px, py): (i32, i32), hpos: HPos| {
            root.draw(&Text::new(
                text,
                (px, py),
                (FONT, 13)
                    .into_font()
                    .color(&grey)
                    .into_text_style(root)
                    .pos(Pos::new(hpos, VPos::Bottom)),
            ))
            .map_err(drawing)
        };
        text(
            "1,024: the usual soft limit (ulimit -n) of one process".to_owned(),
            chart.backend_coord(&(x_max * 1.03, SOFT_LIMIT + y_max * 0.01)),
            HPos::Right,
        )?;
        // The slope of a relaying master: 2 fds per connection, from the origin.
        let slope_end = (x_max * 1.05).min(y_max * 1.05 / 2.0);
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, 0.0), (slope_end, 2.0 * slope_end)],
                2,
                4,
                grey.stroke_width(1),
            ))
            .map_err(drawing)?;
        let (px, py) = chart.backend_coord(&(slope_end, 2.0 * slope_end));
        text(
            "dotted: 2 fds per connection".to_owned(),
            (px - 6, py - 6),
            HPos::Right,
        )?;
        for (index, mode) in modes.iter().enumerate() {
            let series = |figure: fn(&FdBillRow) -> Option<f64>| -> Vec<(f64, f64)> {
                rows.iter()
                    .filter(|row| row.mode == *mode)
                    .filter_map(|row| Some((row.connections as f64, figure(row)?)))
                    .collect()
            };
            let master = series(|row| row.master_fds);
            let tree = series(|row| row.tree_fds);
            let style = colour(index).stroke_width(2);
            let filled = colour(index).filled();
            let anno = chart
                .draw_series(LineSeries::new(master.iter().copied(), style))
                .map_err(drawing)?
                .label(format!("{mode}: master"));
            legend_entry(anno, index, false, style, filled);
            markers(&mut chart, index, &master, filled)?;
            if !tree.is_empty() {
                let hollow = colour(index).stroke_width(2);
                let anno = chart
                    .draw_series(DashedLineSeries::new(tree.iter().copied(), 6, 4, style))
                    .map_err(drawing)?
                    .label(format!("{mode}: whole tree"));
                legend_entry(anno, index, true, style, hollow);
                markers(&mut chart, index, &tree, hollow)?;
            }
        }
        legend(&mut chart)
    })
}

/// A legend entry: a line (`dashed` or solid) in `line` and series `index`'s
/// marker (see [`markers`]) in `mark`.
fn legend_entry<'a>(
    anno: &mut SeriesAnno<'a, SVGBackend<'a>>,
    index: usize,
    dashed: bool,
    line: ShapeStyle,
    mark: ShapeStyle,
) {
    macro_rules! entry {
        ($marker:expr) => {
            anno.legend(move |(x, y)| {
                let segments = if dashed {
                    vec![(0, 0), (7, 0), (13, 0), (20, 0)]
                } else {
                    vec![(0, 0), (20, 0)]
                };
                EmptyElement::at((x, y))
                    + PathElement::new(segments[..2].to_vec(), line)
                    + PathElement::new(segments[segments.len() - 2..].to_vec(), line)
                    + $marker
            })
        };
    }
    match index % 4 {
        0 => entry!(Circle::new((10, 0), 4, mark)),
        1 => entry!(TriangleMarker::new((10, 0), 5, mark)),
        2 => entry!(Rectangle::new([(6, -4), (14, 4)], mark)),
        _ => entry!(Cross::new((10, 0), 4, mark)),
    };
}

/// CPU per request, µs, one panel per load (sharing the y scale): a bar per
/// mode, the master's part below the workers', a whisker from the tree's
/// fewest to its most µs over rounds, and the tree's median above.
pub fn cost(rows: &[CostRow]) -> anyhow::Result<String> {
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
                        Rectangle::new([(x + 0.2, 0.0), (x + 0.8, master)], MASTER_COLOUR.filled()),
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
                            PathElement::new(vec![(x + 0.5, tree.min), (x + 0.5, tree.max)], BLACK),
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

/// A panel's title for `load`.
fn load_title(load: Load) -> &'static str {
    match load {
        Load::KeepAlive => "keep-alive, closed loop",
        Load::NewConn => "a new connection per request (µs per request = per connection)",
        Load::OpenLoop => "open loop at the asked rate",
    }
}

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

/// §4: each worker's share, largest first, one group of bars per way of
/// sharing the port: a panel per cluster size and [`FAIRNESS_PANELS`] entry,
/// a dashed line at the even share.
pub fn fairness(rows: &[FairnessRow]) -> anyhow::Result<String> {
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

/// A short name for a bar group: `listener single`, `socket`, `proxy`.
fn variant_label(variant: Variant) -> String {
    let mode = variant.mode.name();
    let mode = mode.strip_prefix("handoff-").unwrap_or(mode);
    match variant.accept {
        Some(accept) => format!("{mode} {}", accept.name()),
        None => mode.to_owned(),
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
            variant_label(*variant),
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

/// One figure of a [`StallRow`], over rounds.
type StallFigure = fn(&StallRow) -> Option<Spread>;

/// §4, a stalled worker: per way of sharing the port, the p99 of every
/// request, of the stalled worker's and of the worst other worker's, in ms:
/// a bar at the median over rounds, a whisker from the least to the most.
pub fn stall(rows: &[StallRow]) -> anyhow::Result<String> {
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
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], tint.filled()));
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
                variant_label(row.variant),
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

/// The master's fds over time in one newconn run per mode, the measured window shaded.
pub fn master_fds(series: &[FdSeries]) -> anyhow::Result<String> {
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

/// The modes of the sweep in the order of `modes`, for one shared legend.
fn sweep_modes(lines: &[SweepLine]) -> Vec<Mode> {
    let mut modes = modes_of(lines.iter().map(|line| line.mode));
    modes.sort();
    modes
}

/// A rate tick: `800`, `5.5k`, `120k`.
fn rate_label(per_s: f64) -> String {
    if per_s >= 1000.0 {
        format!("{}k", trim(per_s / 1000.0))
    } else {
        format!("{per_s:.0}")
    }
}

/// A legend strip above the panels, never over data: per mode its colour,
/// dash and marker (as [`mode_line`] and [`markers`] draw them) and its name;
/// then each `extra` entry, a grey marker (ringed if its flag is set) and a
/// text.
fn legend_strip(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    modes: &[Mode],
    extra: &[(&str, bool)],
) -> anyhow::Result<()> {
    let (width, _) = area.dim_in_pixel();
    let per_row = ((width as i32 - 40) / 200).max(1) as usize;
    for (index, mode) in modes.iter().enumerate() {
        let (row, column) = (index / per_row, index % per_row);
        let (x, y) = (20 + column as i32 * 200, 14 + row as i32 * 22);
        let style = colour(index).stroke_width(2);
        let line = vec![(x, y), (x + 34, y)];
        match dash_of(index) {
            None => area.draw(&PathElement::new(line, style)),
            Some((size, gap)) => area.draw(&plotters::element::DashedPathElement::new(
                line, size, gap, style,
            )),
        }
        .map_err(drawing)?;
        let mark = colour(index).filled();
        let at = (x + 17, y);
        match index % 4 {
            0 => area.draw(&Circle::new(at, 5, mark)),
            1 => area.draw(&TriangleMarker::new(at, 6, mark)),
            2 => area.draw(&Rectangle::new(
                [(at.0 - 4, at.1 - 4), (at.0 + 4, at.1 + 4)],
                mark,
            )),
            _ => area.draw(&Cross::new(at, 5, mark)),
        }
        .map_err(drawing)?;
        area.draw(&Text::new(
            mode.name(),
            (x + 42, y),
            (FONT, 14)
                .into_font()
                .into_text_style(area)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(drawing)?;
    }
    let rows = modes.len().div_ceil(per_row) as i32;
    for (index, (text, ringed)) in extra.iter().enumerate() {
        let (x, y) = (20 + index as i32 * 420, 14 + rows * 22);
        let grey = RGBColor(90, 90, 90);
        area.draw(&Circle::new((x + 17, y), 5, grey.filled()))
            .map_err(drawing)?;
        if *ringed {
            area.draw(&Circle::new((x + 17, y), 10, BLACK.stroke_width(1)))
                .map_err(drawing)?;
        }
        area.draw(&Text::new(
            (*text).to_owned(),
            (x + 42, y),
            (FONT, 14)
                .into_font()
                .into_text_style(area)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(drawing)?;
    }
    Ok(())
}

/// p99 (corrected) against the offered rate, one panel per load side by
/// side, both on one log-scale latency axis; a line per mode (colour, dash
/// and marker), a ring round the markers of the steps not held; dashed lines
/// at the objectives (1 ms, 10 ms).
pub fn latency_vs_rate(lines: &[SweepLine]) -> anyhow::Result<String> {
    let modes = sweep_modes(lines);
    let mut loads: Vec<Load> = lines.iter().map(|line| line.load).collect();
    loads.sort();
    loads.dedup();
    let p99s = lines
        .iter()
        .flat_map(|line| line.steps.iter().filter_map(|step| step.p99_us));
    // From 100 µs at least, so that every chart labels the decades from
    // 100 µs up and two runs' charts read alike.
    let y_min = p99s.clone().fold(100.0, f64::min).max(1.0) * 0.7;
    let y_max = p99s.fold(SLOS_US[SLOS_US.len() - 1], f64::max) * 1.6;
    let legend_rows = modes.len().div_ceil(((1400 - 40) / 200) as usize) as u32 + 1;
    let size = (1400, 620 + 22 * legend_rows);
    svg(size, |root| {
        let titled = root
            .titled(
                "p99 latency against the offered rate (open loop, corrected for coordinated omission)",
                (FONT, 20),
            )
            .map_err(drawing)?;
        let (legend_area, panels_area) = titled.split_vertically(12 + 22 * legend_rows);
        legend_strip(
            &legend_area,
            &modes,
            &[
                (
                    "held: ≥ 95 % answered, on time (p50 < 10× as sent), no error",
                    false,
                ),
                ("ringed: not held", true),
            ],
        )?;
        let areas = panels_area.split_evenly((1, loads.len().max(1)));
        for (load, area) in loads.iter().zip(areas.iter()) {
            let panel: Vec<&SweepLine> = lines.iter().filter(|line| line.load == *load).collect();
            let rates = panel
                .iter()
                .flat_map(|line| line.steps.iter().map(|step| step.offered_per_s));
            let x_min = rates.clone().fold(f64::INFINITY, f64::min).max(1.0);
            let x_max = rates.fold(x_min * 2.0, f64::max);
            let title = match load {
                Load::NewConn => "a new connection per request, open loop",
                _ => "keep-alive, open loop",
            };
            let mut chart = ChartBuilder::on(area)
                .caption(title, (FONT, 16))
                .margin(12)
                // Room right of the plot for the objectives' labels.
                .margin_right(88)
                .x_label_area_size(52)
                .y_label_area_size(76)
                .build_cartesian_2d(
                    (x_min / 1.25..x_max * 1.25).log_scale(),
                    (y_min..y_max).log_scale(),
                )
                .map_err(drawing)?;
            chart
                .configure_mesh()
                .x_labels(0)
                // A log axis draws its decades even with no labels asked
                // for: the offered rates below are the ticks.
                .x_label_formatter(&|_| String::new())
                .disable_x_mesh()
                .y_desc("p99 latency (log scale)")
                .x_desc("offered rate, requests/s (log scale)")
                .y_label_formatter(&|us| micros_label(*us))
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 14))
                .draw()
                .map_err(drawing)?;
            // A tick and a label at every offered rate.
            let mut offered: Vec<f64> = panel
                .iter()
                .flat_map(|line| line.steps.iter().map(|step| step.offered_per_s))
                .collect();
            offered.sort_by(f64::total_cmp);
            offered.dedup();
            let (ax, ay) = area.get_base_pixel();
            for &rate in &offered {
                chart
                    .draw_series(LineSeries::new(
                        [(rate, y_min), (rate, y_max)],
                        BLACK.mix(0.08),
                    ))
                    .map_err(drawing)?;
                let (px, py) = chart.backend_coord(&(rate, y_min));
                area.draw(&Text::new(
                    rate_label(rate),
                    (px - ax, py - ay + 6),
                    (FONT, 13)
                        .into_font()
                        .into_text_style(area)
                        .pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(drawing)?;
            }
            // The objectives, labelled right of the plot, where no data is.
            let grey = RGBColor(90, 90, 90);
            for slo in SLOS_US {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(x_min / 1.25, slo), (x_max * 1.25, slo)],
                        8,
                        4,
                        grey.stroke_width(1),
                    ))
                    .map_err(drawing)?;
                let (px, py) = chart.backend_coord(&(x_max * 1.25, slo));
                area.draw(&Text::new(
                    format!("p99 ≤ {}", micros_label(slo)),
                    (px - ax + 6, py - ay),
                    (FONT, 12)
                        .into_font()
                        .color(&grey)
                        .into_text_style(area)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(drawing)?;
            }
            for line in panel {
                let index = modes.iter().position(|m| *m == line.mode).unwrap_or(0);
                let points: Vec<(f64, f64)> = line
                    .steps
                    .iter()
                    .filter_map(|step| Some((step.offered_per_s, step.p99_us?.max(1.0))))
                    .collect();
                let style = colour(index).stroke_width(2);
                match dash_of(index) {
                    None => chart.draw_series(LineSeries::new(points.iter().copied(), style)),
                    Some((size, gap)) => chart.draw_series(DashedLineSeries::new(
                        points.iter().copied(),
                        size,
                        gap,
                        style,
                    )),
                }
                .map_err(drawing)?;
                let held: Vec<(f64, f64)> = line
                    .steps
                    .iter()
                    .filter(|step| step.held())
                    .filter_map(|step| Some((step.offered_per_s, step.p99_us?.max(1.0))))
                    .collect();
                let missed: Vec<(f64, f64)> = line
                    .steps
                    .iter()
                    .filter(|step| !step.held())
                    .filter_map(|step| Some((step.offered_per_s, step.p99_us?.max(1.0))))
                    .collect();
                markers(&mut chart, index, &held, colour(index).filled())?;
                markers(&mut chart, index, &missed, colour(index).filled())?;
                // A ring round the steps not held, whatever the marker's shape.
                chart
                    .draw_series(
                        missed
                            .iter()
                            .map(|&p| Circle::new(p, 10, BLACK.stroke_width(1))),
                    )
                    .map_err(drawing)?;
            }
        }
        Ok(())
    })
}

/// Every round of §1 per mode, one dot a round (colour and marker per mode)
/// and a black bar at the median: requests/s, and the whole tree's CPU per
/// request, for keep-alive and a new connection per request, one panel each.
pub fn rounds(throughput: &[ThroughputRow], cost: &[CostRow]) -> anyhow::Result<String> {
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
    // (title, unit, per mode and load: every round's values)
    type Panel = (String, &'static str, Vec<(Mode, Vec<f64>)>);
    let mut panels: Vec<Panel> = Vec::new();
    for load in loads {
        let values: Vec<(Mode, Vec<f64>)> = throughput
            .iter()
            .filter(|row| row.load == load)
            .map(|row| (row.mode, row.every_round.clone()))
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
        let values: Vec<(Mode, Vec<f64>)> = cost
            .iter()
            .filter(|row| row.load == load && !row.nginx_alone)
            .map(|row| (row.mode, row.every_round_tree_us.clone()))
            .collect();
        if values.iter().any(|(_, v)| !v.is_empty()) {
            panels.push((
                format!("the whole tree's CPU per request, {}", load_title(load)),
                "CPU µs per request",
                values,
            ));
        }
    }
    let height = 60 + 260 * panels.len().max(1) as u32;
    svg((SIZE.0 + 100, height), |root| {
        let titled = root
            .titled(
                "Every round of §1, per mode: a dot per round, the bar at the median",
                (FONT, 20),
            )
            .map_err(drawing)?;
        let areas = titled.split_evenly((panels.len().max(1), 1));
        for ((title, unit, values), area) in panels.iter().zip(areas.iter()) {
            let y_max = values
                .iter()
                .flat_map(|(_, v)| v.iter().copied())
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
                let Some((_, rounds)) = values.iter().find(|(m, _)| m == mode) else {
                    continue;
                };
                // Side by side within the mode's column, in round order.
                let n = rounds.len().max(1) as f64;
                let points: Vec<(f64, f64)> = rounds
                    .iter()
                    .enumerate()
                    .map(|(round, &value)| (x + (round as f64 - (n - 1.0) / 2.0) * 0.06, value))
                    .collect();
                markers(&mut chart, index, &points, colour(index).filled())?;
                if let Some(median) = super::figures::median(rounds.iter().copied()) {
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

/// The dash of series `index`: solid, then dashes, dots and long dashes in
/// turn (as [`mode_line`] draws them).
fn dash_of(index: usize) -> Option<(u32, u32)> {
    match index % 4 {
        0 => None,
        1 => Some((9, 5)),
        2 => Some((2, 4)),
        _ => Some((16, 5)),
    }
}

/// One mode's line, in the mode's colour, with its entry in the legend.
fn mode_line<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    index: usize,
    mode: Mode,
    points: &[(f64, f64)],
) -> anyhow::Result<()>
where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    let style = colour(index).stroke_width(2);
    // A dash pattern besides the colour, so that no two modes are told apart
    // by colour alone (colour-blind readers, a grey print): solid, then
    // dashes, dots and long dashes in turn.
    let dash = dash_of(index);
    let series = match dash {
        None => chart.draw_series(LineSeries::new(points.iter().copied(), style)),
        Some((size, gap)) => chart.draw_series(DashedLineSeries::new(
            points.iter().copied(),
            size,
            gap,
            style,
        )),
    };
    series.map_err(drawing)?.label(mode.name()).legend(
        move |(x, y)| -> DynElement<'static, SVGBackend<'_>, (i32, i32)> {
            let line = vec![(x, y), (x + 24, y)];
            match dash {
                None => PathElement::new(line, style).into_dyn(),
                Some((size, gap)) => {
                    plotters::element::DashedPathElement::new(line, size, gap, style).into_dyn()
                }
            }
        },
    );
    Ok(())
}

fn legend<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
) -> anyhow::Result<()>
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
{
    legend_at(chart, SeriesLabelPosition::UpperLeft)
}

/// The legend box at `position`, over a translucent white.
fn legend_at<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 14))
        .draw()
        .map_err(drawing)
}

/// The distinct modes of `modes`, in their first order.
fn modes_of(modes: impl Iterator<Item = Mode>) -> Vec<Mode> {
    let mut seen: Vec<Mode> = Vec::new();
    for mode in modes {
        if !seen.contains(&mode) {
            seen.push(mode);
        }
    }
    seen
}

/// A latency tick: `50 µs`, `2 ms`, `1.5 s`.
fn micros_label(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{} ms", trim(us / 1000.0))
    } else {
        format!("{} s", trim(us / 1_000_000.0))
    }
}

/// A number with at most one decimal, without a trailing `.0`.
fn trim(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

/// How a legend strip shows an entry.
#[derive(Clone, Copy)]
enum Swatch {
    /// A filled box (a bar).
    Filled,
    /// A line, solid or with (dash, gap) pixels.
    Line(Option<(u32, u32)>),
}

/// A legend strip of free entries (not modes: see [`legend_strip`]): a
/// filled box or a line sample per entry, left to right.
fn swatch_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    entries: &[(RGBColor, Swatch, &str)],
) -> anyhow::Result<()> {
    let mut x = 80;
    for &(colour, swatch, text) in entries {
        if let Swatch::Line(dash) = swatch {
            let style = colour.stroke_width(2);
            let line = vec![(x, 18), (x + 28, 18)];
            match dash {
                None => area.draw(&PathElement::new(line, style)),
                Some((size, gap)) => area.draw(&plotters::element::DashedPathElement::new(
                    line, size, gap, style,
                )),
            }
            .map_err(drawing)?;
        } else {
            area.draw(&Rectangle::new([(x, 10), (x + 22, 26)], colour.filled()))
                .map_err(drawing)?;
        }
        area.draw(&Text::new(
            text.to_owned(),
            (x + 34, 18),
            (FONT, 14)
                .into_font()
                .into_text_style(area)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(drawing)?;
        x += 46 + 8 * text.chars().count() as i32;
    }
    Ok(())
}

/// Section 8: failed requests per upgrade (the median over a cell's
/// upgrades, min–max as a whisker), a horizontal bar per mode and strategy,
/// named on the left, coloured by strategy, its value written beside it (so
/// a 0 shows).
pub fn upgrade_failures(rows: &[UpgradeRow]) -> anyhow::Result<String> {
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

/// A strategy's colour, the same in every chart.
fn strategy_colour(strategy: Strategy) -> RGBColor {
    let index = Strategy::ALL
        .iter()
        .position(|s| *s == strategy)
        .unwrap_or(0);
    // Skip the palette's first two: the timeline's old and new generations.
    colour(index + 2)
}

/// The colour of the old generation's answers (Okabe–Ito blue).
const OLD_COLOUR: RGBColor = RGBColor(0, 114, 178);
/// The new generation's (Okabe–Ito vermillion), dashed.
const NEW_COLOUR: RGBColor = RGBColor(213, 94, 0);
/// The new master's `ready` (Okabe–Ito bluish green).
const READY_COLOUR: RGBColor = RGBColor(0, 158, 115);

/// Section 8: requests/s around one upgrade, a panel per strategy (one mode):
/// the answers of the old master's workers and of the new one's, the failed
/// requests, and when the new master started, was ready and the old one
/// exited.
pub fn upgrade_timeline(lines: &[UpgradeTimeline]) -> anyhow::Result<String> {
    let y_max = lines
        .iter()
        .flat_map(|line| line.old.iter().chain(&line.new).chain(&line.failed))
        .map(|point| point.1)
        .fold(10.0, f64::max)
        * 1.1;
    let x_min = lines
        .iter()
        .flat_map(|line| line.old.iter().map(|p| p.0))
        .fold(0.0, f64::min);
    let x_max = lines
        .iter()
        .flat_map(|line| line.old.iter().map(|p| p.0))
        .fold(0.5, f64::max);
    let mode = lines.first().map_or("", |line| line.mode.name());
    let height = 90 + 260 * lines.len().max(1) as u32;
    svg((SIZE.0, height), |root| {
        let titled = root
            .titled(
                &format!("{mode}: requests/s around an upgrade, by the generation that answered"),
                (FONT, 20),
            )
            .map_err(drawing)?;
        let (legend_area, panels) = titled.split_vertically(36);
        swatch_legend(
            &legend_area,
            &[
                (OLD_COLOUR, Swatch::Line(None), "old workers"),
                (NEW_COLOUR, Swatch::Line(Some((9, 5))), "new workers"),
                (BLACK, Swatch::Line(Some((2, 4))), "failed"),
                (READY_COLOUR, Swatch::Line(None), "new master ready"),
                (
                    RGBColor(120, 120, 120),
                    Swatch::Line(Some((16, 5))),
                    "old master exit",
                ),
            ],
        )?;
        let areas = panels.split_evenly((lines.len().max(1), 1));
        for (line, area) in lines.iter().zip(areas.iter()) {
            let mut chart = ChartBuilder::on(area)
                .caption(line.strategy.name(), (FONT, 16))
                .margin(8)
                .margin_right(20)
                .x_label_area_size(40)
                .y_label_area_size(80)
                .build_cartesian_2d(x_min..x_max, 0.0..y_max)
                .map_err(drawing)?;
            chart
                .configure_mesh()
                .x_desc("when the request was due, s from the upgrade's start")
                // No "-0.0" at the origin.
                .x_label_formatter(&|x| format!("{:.1}", if x.abs() < 1e-9 { 0.0 } else { *x }))
                .y_desc("requests/s")
                .y_label_formatter(&|y| format!("{y:.0}"))
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 14))
                .draw()
                .map_err(drawing)?;
            let vertical = |x: f64| vec![(x, 0.0), (x, y_max)];
            chart
                .draw_series([PathElement::new(
                    vertical(line.new_ready_s),
                    READY_COLOUR.stroke_width(2),
                )])
                .map_err(drawing)?;
            chart
                .draw_series(DashedLineSeries::new(
                    vertical(line.old_exit_s),
                    16,
                    5,
                    RGBColor(120, 120, 120).stroke_width(2),
                ))
                .map_err(drawing)?;
            chart
                .draw_series(LineSeries::new(
                    line.old.iter().copied(),
                    OLD_COLOUR.stroke_width(2),
                ))
                .map_err(drawing)?;
            chart
                .draw_series(DashedLineSeries::new(
                    line.new.iter().copied(),
                    9,
                    5,
                    NEW_COLOUR.stroke_width(2),
                ))
                .map_err(drawing)?;
            chart
                .draw_series(DashedLineSeries::new(
                    line.failed.iter().copied(),
                    2,
                    4,
                    BLACK.stroke_width(2),
                ))
                .map_err(drawing)?;
        }
        Ok(())
    })
}
