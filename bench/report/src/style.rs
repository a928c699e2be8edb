//! The one drawing style of every chart: the size, the font, a palette that
//! survives colour blindness (Okabe–Ito) with a marker and a dash per series
//! so that no two series rely on colour alone, the legends (a box that covers
//! no data, or a strip above the panels), the axis labels (every decade on a
//! log axis, sub-millisecond included), and the white SVG canvas drawn with
//! plotters' SVG backend (text stays text: no fonts needed).

use plotters::chart::SeriesAnno;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use runs::labels::{Load, Mode};

/// Every chart's size in pixels.
pub const SIZE: (u32, u32) = (960, 560);

/// The font family; the SVG names it and the viewer picks a face.
pub const FONT: &str = "sans-serif";

/// A colour per series, colour-blind safe (Okabe–Ito), in mode order.
pub const PALETTE: [RGBColor; 8] = [
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
pub fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// A drawing error as an anyhow error (plotters' error carries the backend's).
pub fn drawing<E: std::fmt::Display>(err: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {err}")
}

/// Draws with `draw` on a white SVG canvas and returns the SVG text.
pub fn svg(
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

/// Draws a point marker per series index at each of `points`: circle,
/// triangle, square, cross, ... so that no two modes rely on colour alone.
pub fn markers<'a, X, Y>(
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

/// The outline of series `index`'s marker (see [`markers`]), in pixels
/// about its centre, closed: a ring of points for the triangle, square and
/// cross; `None` for the circle, drawn as a ring.
fn marker_outline(index: usize) -> Option<Vec<(i32, i32)>> {
    let points = match index % 4 {
        0 => return None,
        1 => vec![(0, -7), (6, 4), (-6, 4)],
        2 => vec![(-4, -4), (4, -4), (4, 4), (-4, 4)],
        // An × of arms about 3 px wide, 7 px from the centre.
        _ => vec![
            (-7, -5),
            (-5, -7),
            (0, -2),
            (5, -7),
            (7, -5),
            (2, 0),
            (7, 5),
            (5, 7),
            (0, 2),
            (-5, 7),
            (-7, 5),
            (-2, 0),
        ],
    };
    let mut closed = points.clone();
    closed.push(points[0]);
    Some(closed)
}

/// Draws series `index`'s marker hollow at each of `points`: its outline in
/// `colour` over white, so that it reads as "not a value" beside the filled
/// markers of [`markers`] (plotters fills its triangles whatever the style,
/// and a cross has no inside, hence the outlines drawn here).
pub fn hollow_markers<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    index: usize,
    points: &[(f64, f64)],
    colour: RGBColor,
) -> anyhow::Result<()>
where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    // The ×'s outline is thin, so that its inside shows.
    let stroke = colour.stroke_width(if index % 4 == 3 { 1 } else { 2 });
    match marker_outline(index) {
        None => chart
            .draw_series(points.iter().map(|&p| {
                EmptyElement::at(p)
                    + Circle::new((0, 0), 5, WHITE.filled())
                    + Circle::new((0, 0), 5, stroke)
            }))
            .map(|_| ()),
        Some(outline) => chart
            .draw_series(points.iter().map(|&p| {
                EmptyElement::at(p)
                    + Polygon::new(outline.clone(), WHITE.filled())
                    + PathElement::new(outline.clone(), stroke)
            }))
            .map(|_| ()),
    }
    .map_err(drawing)
}

/// A legend entry: a line (`dashed` or solid) in `line` and series `index`'s
/// marker (see [`markers`]) in `mark`.
pub fn legend_entry<'a>(
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

/// A panel's title for `load`.
pub fn load_title(load: Load) -> &'static str {
    match load {
        Load::KeepAlive => "keep-alive, closed loop",
        Load::NewConn => "a new connection per request (µs per request = per connection)",
        Load::OpenLoop => "open loop at the asked rate",
    }
}

/// A rate tick: `800`, `5.5k`, `120k`.
pub fn rate_label(per_s: f64) -> String {
    if per_s >= 1000.0 {
        format!("{}k", trim(per_s / 1000.0))
    } else {
        format!("{per_s:.0}")
    }
}

/// The key of series `index` in a legend, 34 px wide from `(x, y)`: its
/// line as the chart draws it (colour, dashes) with its marker in the middle.
pub fn legend_key(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    index: usize,
    (x, y): (i32, i32),
) -> anyhow::Result<()> {
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
    Ok(())
}

/// A legend strip above the panels, never over data: per mode (or any
/// series with a name) its colour, dash and marker (as [`mode_line`] and
/// [`markers`] draw them) and its name; then each `extra` entry, a grey
/// marker (hollow if its flag is set) and a text.
pub fn legend_strip(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    modes: &[impl std::fmt::Display],
    extra: &[(&str, bool)],
) -> anyhow::Result<()> {
    let (width, _) = area.dim_in_pixel();
    let per_row = ((width as i32 - 40) / 200).max(1) as usize;
    for (index, mode) in modes.iter().enumerate() {
        let (row, column) = (index / per_row, index % per_row);
        let (x, y) = (20 + column as i32 * 200, 14 + row as i32 * 22);
        legend_key(area, index, (x, y))?;
        area.draw(&Text::new(
            mode.to_string(),
            (x + 42, y),
            (FONT, 14)
                .into_font()
                .into_text_style(area)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(drawing)?;
    }
    let rows = modes.len().div_ceil(per_row) as i32;
    for (index, (text, hollow)) in extra.iter().enumerate() {
        let (x, y) = (20 + index as i32 * 520, 14 + rows * 22);
        let grey = RGBColor(90, 90, 90);
        let style = if *hollow {
            grey.stroke_width(2)
        } else {
            grey.filled()
        };
        area.draw(&Circle::new((x + 17, y), 5, style))
            .map_err(drawing)?;
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

/// The ticks of an x axis that names its own values (a log axis, whose
/// decades say nothing of the rates or sizes plotted): at each of `values`,
/// a faint line from `y.0` to `y.1` and `label(value)` under the axis,
/// drawn on `area`, the chart's own.
pub fn value_ticks<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    area: &DrawingArea<SVGBackend<'a>, Shift>,
    values: &[f64],
    (y_low, y_high): (Y::ValueType, Y::ValueType),
    label: impl Fn(f64) -> String,
) -> anyhow::Result<()>
where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged,
    Y::ValueType: Clone + 'static,
{
    let (ax, ay) = area.get_base_pixel();
    for &value in values {
        chart
            .draw_series(LineSeries::new(
                [(value, y_low.clone()), (value, y_high.clone())],
                BLACK.mix(0.08),
            ))
            .map_err(drawing)?;
        let (px, py) = chart.backend_coord(&(value, y_low.clone()));
        area.draw(&Text::new(
            label(value),
            (px - ax, py - ay + 6),
            (FONT, 13)
                .into_font()
                .into_text_style(area)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(drawing)?;
    }
    Ok(())
}

/// The dash of series `index`: solid, then dashes, dots and long dashes in
/// turn (as [`mode_line`] draws them).
pub fn dash_of(index: usize) -> Option<(u32, u32)> {
    match index % 4 {
        0 => None,
        1 => Some((9, 5)),
        2 => Some((2, 4)),
        _ => Some((16, 5)),
    }
}

/// One mode's line, in the mode's colour, with its entry in the legend.
pub fn mode_line<'a, X, Y>(
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

/// The legend box in the upper left, over a translucent white.
pub fn legend<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
) -> anyhow::Result<()>
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
{
    legend_at(chart, SeriesLabelPosition::UpperLeft)
}

/// The legend box at `position`, over a translucent white.
pub fn legend_at<'a, X, Y>(
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
pub fn modes_of(modes: impl Iterator<Item = Mode>) -> Vec<Mode> {
    let mut seen: Vec<Mode> = Vec::new();
    for mode in modes {
        if !seen.contains(&mode) {
            seen.push(mode);
        }
    }
    seen
}

/// A latency tick: `50 µs`, `2 ms`, `1.5 s`.
pub fn micros_label(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{} ms", trim(us / 1000.0))
    } else {
        format!("{} s", trim(us / 1_000_000.0))
    }
}

/// A number with at most one decimal, without a trailing `.0`.
pub fn trim(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

/// How a legend strip shows an entry.
#[derive(Clone, Copy)]
pub enum Swatch {
    /// A filled box (a bar).
    Filled,
    /// A line, solid or with (dash, gap) pixels.
    Line(Option<(u32, u32)>),
}

/// A legend strip of free entries (not modes: see [`legend_strip`]): a
/// filled box or a line sample per entry, left to right.
pub fn swatch_legend(
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
