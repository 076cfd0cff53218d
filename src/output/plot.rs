//! PNG figures: stacked line plots of observables against time (or any shared x) and colour
//! maps such as the Husimi Q function Q(theta, phi).
//!
//! Drawing uses plotters' bitmap backend with its pure-Rust `ab_glyph` text renderer. That
//! renderer knows no system fonts, so DejaVu Sans (Bitstream Vera licence, see
//! `assets/LICENSE-DejaVu.txt`) is compiled into the binary with `include_bytes!` and registered
//! once as the `sans-serif` family: figures then need no fontconfig/freetype or any other
//! system library, and look the same on every machine.
//!
//! Every failure (bad input shapes, an unwritable path, a drawing error) is reported as
//! [`OutputError::Write`]; nothing here panics on I/O or drawing errors.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::OutputError;

/// The embedded font (DejaVu Sans, Bitstream Vera licence).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// Font family name the embedded font is registered under (plotters' default family).
const FONT: &str = "sans-serif";

/// Width of a line plot in pixels.
const LINE_WIDTH_PX: u32 = 1000;
/// Height of one line-plot panel in pixels.
const PANEL_HEIGHT_PX: u32 = 320;
/// Height reserved for the figure title in pixels.
const TITLE_HEIGHT_PX: u32 = 40;
/// Heat map size in pixels.
const HEATMAP_SIZE_PX: (u32, u32) = (1000, 720);
/// Width of the colour-bar strip (bar plus its tick labels) in pixels.
const COLORBAR_STRIP_PX: u32 = 140;

/// Target number of ticks on an x axis (and the heat map's y axis).
const X_TICKS: usize = 10;
/// Target number of y ticks per line-plot panel (and on the colour bar).
const Y_TICKS: usize = 6;
/// Fraction of the data range added above and below autoscaled axes.
const MARGIN_FRACTION: f64 = 0.05;

/// Line colours (the "tab10" palette), cycled per panel.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Viridis sampled at 0, 1/8, ..., 1; linearly interpolated in between.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// Colour of heat-map cells whose value is not finite.
const NAN_COLOR: RGBColor = RGBColor(200, 200, 200);

/// One named curve of a line plot; `y[i]` belongs to `x[i]`.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    pub name: &'a str,
    pub y: &'a [f64],
}

/// Registers the embedded font once; later calls return the first call's result.
fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            register_font(FONT, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "the embedded font could not be loaded".to_string())
        })
        .clone()
}

/// Builds the crate's write error for `path`.
fn write_err(path: &Path, message: impl std::fmt::Display) -> OutputError {
    OutputError::Write {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Checks the things that would otherwise fail late (and obscurely) inside the encoder.
fn check_path(path: &Path) -> Result<(), OutputError> {
    let is_png = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(write_err(
            path,
            "figures are written as PNG; the file name must end in `.png`",
        ));
    }
    ensure_font().map_err(|m| write_err(path, m))
}

/// Smallest and largest finite value, or `None` if there is none.
fn finite_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Axis range for data in `[lo, hi]`: widened by `margin` of the span on each side; a window of
/// +-10 % around the value when the data are constant to within a relative 1e-7 (tiny wiggles
/// would only give unreadable tick labels); `[-1, 1]` around zero; `[0, 1]` when there is no
/// data. The result is always finite with `lo < hi`.
fn axis_range(range: Option<(f64, f64)>, margin: f64) -> (f64, f64) {
    const LIMIT: f64 = f64::MAX / 4.0;
    let Some((lo, hi)) = range else {
        return (0.0, 1.0);
    };
    let (lo, hi) = (lo.clamp(-LIMIT, LIMIT), hi.clamp(-LIMIT, LIMIT));
    let (span, scale) = (hi - lo, lo.abs().max(hi.abs()));
    let pad = if span > 1e-7 * scale {
        span * margin
    } else if scale > 1e-300 {
        0.1 * scale
    } else {
        1.0
    };
    (lo - pad, hi + pad)
}

/// One axis, used directly as a plotters coordinate: its range, "nice" tick positions (1, 2, 2.5
/// or 5 times a power of ten apart) and how their labels are written. Ticks are computed here
/// rather than by plotters, whose automatic ticks break down for ranges far from unit scale
/// (a single tick for data around 1e-20).
#[derive(Debug, Clone)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    /// Decimal places the tick step needs (negative for steps of 10, 100, ...).
    step_digits: i32,
    /// Scientific notation (chosen per axis, so all labels of one axis look alike).
    scientific: bool,
}

impl Axis {
    fn new(lo: f64, hi: f64, target: usize) -> Self {
        let mut axis = Axis {
            lo,
            hi,
            ticks: Vec::new(),
            step_digits: 0,
            scientific: false,
        };
        let raw = (hi - lo) / target.max(1) as f64;
        if !(raw > 0.0 && raw.is_finite()) {
            return axis;
        }
        let exp = raw.log10().floor();
        let mag = 10f64.powf(exp);
        // Tick indices k (ticks at k * step) inside [lo, hi], forgiving rounding at the ends.
        let span_of = |step: f64| ((lo / step - 1e-9).ceil(), (hi / step + 1e-9).floor());
        // The finest step giving at most `target + 1` ticks; 10 * mag always qualifies.
        let (mult, step) = [1.0, 2.0, 2.5, 5.0, 10.0]
            .into_iter()
            .map(|m| (m, m * mag))
            .find(|&(_, step)| {
                let (first, last) = span_of(step);
                last - first < target as f64 + 0.5
            })
            .unwrap_or((10.0, 10.0 * mag));
        let (first, last) = span_of(step);
        if !(first.abs() < 1e15 && last.abs() < 1e15 && last - first < 1e4) {
            return axis;
        }
        axis.ticks = (first as i64..=last as i64)
            .map(|k| k as f64 * step)
            .map(|v| if v.abs() < step * 1e-9 { 0.0 } else { v })
            .collect();
        let exp = exp as i32 + i32::from(mult == 10.0);
        axis.step_digits = -exp + i32::from(mult == 2.5);
        let scale = lo.abs().max(hi.abs());
        axis.scientific = !((1e-3..1e5).contains(&scale) && axis.step_digits <= 6);
        axis
    }

    fn label(&self, v: f64) -> String {
        let trim = |m: &str| -> String {
            if m.contains('.') {
                m.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                m.to_string()
            }
        };
        if v == 0.0 {
            return "0".to_string();
        }
        if !v.is_finite() {
            return format!("{v}");
        }
        if self.scientific {
            let decimals = (v.abs().log10().floor() as i32 + self.step_digits).clamp(0, 15) as usize;
            let s = format!("{v:.decimals$e}");
            match s.split_once('e') {
                Some((m, e)) => format!("{}e{e}", trim(m)),
                None => s,
            }
        } else {
            let decimals = self.step_digits.clamp(0, 15) as usize;
            trim(&format!("{v:.decimals$}"))
        }
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        RangedCoordf64::from(self.lo..self.hi).map(value, limit)
    }

    /// The ticks as the bold (labelled) key points; no light grid lines.
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, value: &f64) -> String {
        self.label(*value)
    }
}

/// `v` with four significant digits, in plain or scientific notation by magnitude.
fn short_number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let mag = v.abs();
    if (1e-3..1e5).contains(&mag) {
        let decimals = (3.0 - mag.log10().floor()).clamp(0.0, 6.0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{v:.3e}");
        match s.split_once('e') {
            Some((m, e)) => format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.')),
            None => s,
        }
    }
}

/// Splits `(x, y)` pairs into maximal runs of consecutive points where both are finite.
fn finite_runs(x: &[f64], y: &[f64]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = Vec::new();
    let mut current = Vec::new();
    for (&xi, &yi) in x.iter().zip(y) {
        if xi.is_finite() && yi.is_finite() {
            current.push((xi, yi));
        } else if !current.is_empty() {
            runs.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

/// Writes a PNG with one panel per entry of `panels`, stacked vertically and sharing the x axis
/// (same range; the x description `x_label` under the bottom panel only).
///
/// Each panel is `(y-axis label, series)`; every series is drawn as a line, in a legend under its
/// name (an empty name gets no legend entry). Non-finite values (in `x` or a series) leave gaps;
/// an isolated finite point between gaps is drawn as a dot. Each panel's y range is autoscaled to
/// its finite values with a small margin (constant data gets a window around the value, a panel
/// with no finite value gets `[0, 1]`). With a single x value, every series is drawn as markers.
///
/// Errors: no panels, a series whose length differs from `x`, a path not ending in `.png`, or
/// any drawing or file error.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    x: &[f64],
    panels: &[(&str, Vec<Series>)],
) -> Result<(), OutputError> {
    check_path(path)?;
    if panels.is_empty() {
        return Err(write_err(path, "line plot with no panels"));
    }
    for (panel, series) in panels {
        if let Some(s) = series.iter().find(|s| s.y.len() != x.len()) {
            return Err(write_err(
                path,
                format!(
                    "series `{}` in panel `{panel}` has {} values but x has {}",
                    s.name,
                    s.y.len(),
                    x.len()
                ),
            ));
        }
    }
    let n_panels = u32::try_from(panels.len()).map_err(|_| write_err(path, "too many panels"))?;
    let height = n_panels
        .checked_mul(PANEL_HEIGHT_PX)
        .and_then(|h| h.checked_add(TITLE_HEIGHT_PX))
        .ok_or_else(|| write_err(path, "too many panels"))?;

    let root = BitMapBackend::new(path, (LINE_WIDTH_PX, height)).into_drawing_area();
    draw_line_plot(&root, title, x_label, x, panels).map_err(|m| write_err(path, m))?;
    root.present().map_err(|e| write_err(path, e))
}

fn draw_line_plot(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    x_label: &str,
    x: &[f64],
    panels: &[(&str, Vec<Series>)],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let body = root.titled(title, (FONT, 24)).map_err(e)?;

    let (x0, x1) = axis_range(finite_range(x.iter().copied()), 0.0);
    let x_axis = Axis::new(x0, x1, X_TICKS);
    let finite_x = x.iter().filter(|v| v.is_finite()).count();
    let markers_only = finite_x == 1;

    let areas = body.split_evenly((panels.len(), 1));
    for (i, (area, (y_label, series))) in areas.iter().zip(panels).enumerate() {
        let last = i + 1 == panels.len();
        let y_data = finite_range(series.iter().flat_map(|s| {
            x.iter()
                .zip(s.y)
                .filter(|(xi, _)| xi.is_finite())
                .map(|(_, &y)| y)
        }));
        let (y0, y1) = axis_range(y_data, MARGIN_FRACTION);
        let y_axis = Axis::new(y0, y1, Y_TICKS);

        let mut chart = ChartBuilder::on(area)
            .margin_left(10)
            .margin_right(20)
            .margin_top(8)
            .margin_bottom(4)
            .x_label_area_size(if last { 50 } else { 28 })
            .y_label_area_size(90)
            .build_cartesian_2d(x_axis.clone(), y_axis)
            .map_err(e)?;
        let mut mesh = chart.configure_mesh();
        mesh.label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .y_desc(*y_label)
            .light_line_style(WHITE);
        if last {
            mesh.x_desc(x_label);
        }
        mesh.draw().map_err(e)?;

        let mut labelled = false;
        for (k, s) in series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let line = color.stroke_width(2);
            let runs = finite_runs(x, s.y);
            let anno = if markers_only {
                let dots = runs.iter().flatten().map(|&p| Circle::new(p, 5, color.filled()));
                let anno = chart.draw_series(dots).map_err(e)?;
                if !s.name.is_empty() {
                    anno.legend(move |(px, py)| Circle::new((px + 10, py), 5, color.filled()));
                }
                anno
            } else {
                let single = runs
                    .iter()
                    .filter(|r| r.len() == 1)
                    .map(|r| Circle::new(r[0], 2, color.filled()));
                chart.draw_series(single).map_err(e)?;
                let paths = runs
                    .iter()
                    .filter(|r| r.len() > 1)
                    .map(|r| PathElement::new(r.clone(), line));
                let anno = chart.draw_series(paths).map_err(e)?;
                if !s.name.is_empty() {
                    anno.legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 20, py)], line));
                }
                anno
            };
            if !s.name.is_empty() {
                anno.label(s.name);
                labelled = true;
            }
        }
        if labelled {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font((FONT, 15))
                .draw()
                .map_err(e)?;
        }
    }
    Ok(())
}

/// One family of fixed points for [`branch_plot`]: `(x, y, stable)` triples (any order of y
/// at one x; x non-decreasing), drawn in palette colour `colour`.
#[derive(Debug, Clone, Copy)]
pub struct BranchSet<'a> {
    pub name: &'a str,
    pub colour: usize,
    pub points: &'a [(f64, f64, bool)],
    /// Draw the points as markers only (e.g. where runs of the ODE end), labelled `name`.
    pub markers: bool,
}

/// The one-panel chart of [`branch_plot`] and [`curve_plot`]: axes over the given ranges,
/// labelled, with the mesh drawn.
fn single_chart<'a, 'b>(
    body: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    x_label: &str,
    y_label: &str,
) -> Result<ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Axis, Axis>>, String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut chart = ChartBuilder::on(body)
        .margin_left(10)
        .margin_right(20)
        .margin_top(8)
        .margin_bottom(4)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(Axis::new(x0, x1, X_TICKS), Axis::new(y0, y1, Y_TICKS))
        .map_err(e)?;
    chart
        .configure_mesh()
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .y_desc(y_label)
        .x_desc(x_label)
        .light_line_style(WHITE)
        .draw()
        .map_err(e)?;
    Ok(chart)
}

/// The series legend in the upper left corner, on a translucent box.
fn upper_left_legend<'a, 'b: 'a>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Axis, Axis>>,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 15))
        .draw()
        .map_err(e)?;
    Ok(())
}

/// Branches of a set of fixed points: points at consecutive x are linked greedily by the
/// smallest |dy| (each point at most once, |dy| below `max_jump`); unlinked points start a new
/// branch. Returns polylines of (x, y, stable).
fn assemble_branches(points: &[(f64, f64, bool)], max_jump: f64) -> Vec<Vec<(f64, f64, bool)>> {
    let mut groups: Vec<Vec<(f64, f64, bool)>> = Vec::new();
    for &p in points.iter().filter(|p| p.0.is_finite() && p.1.is_finite()) {
        match groups.last_mut() {
            // Points at the same (x, y) (e.g. two fixed points that differ only in sx) are
            // one point of the plot: stable if either is.
            Some(g) if g[0].0 == p.0 => match g.iter_mut().find(|q| q.1 == p.1) {
                Some(q) => q.2 |= p.2,
                None => g.push(p),
            },
            _ => groups.push(vec![p]),
        }
    }
    let mut done: Vec<Vec<(f64, f64, bool)>> = Vec::new();
    let mut open: Vec<Vec<(f64, f64, bool)>> = Vec::new();
    for g in groups {
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for (i, b) in open.iter().enumerate() {
            let last = b[b.len() - 1];
            for (j, q) in g.iter().enumerate() {
                pairs.push(((q.1 - last.1).abs(), i, j));
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut used_b, mut used_p) = (vec![false; open.len()], vec![false; g.len()]);
        let mut next: Vec<Vec<(f64, f64, bool)>> = Vec::new();
        let mut taken: Vec<Option<usize>> = vec![None; g.len()];
        for (d, i, j) in pairs {
            if d <= max_jump && !used_b[i] && !used_p[j] {
                used_b[i] = true;
                used_p[j] = true;
                taken[j] = Some(i);
            }
        }
        let mut old: Vec<Option<Vec<(f64, f64, bool)>>> = open.into_iter().map(Some).collect();
        for (j, q) in g.iter().enumerate() {
            let mut b = match taken[j] {
                Some(i) => old[i].take().unwrap_or_default(),
                None => Vec::new(),
            };
            b.push(*q);
            next.push(b);
        }
        done.extend(old.into_iter().flatten());
        open = next;
    }
    done.extend(open);
    done
}

/// Writes a PNG of fixed-point branches y(x) (e.g. mean-field sz against a scanned drive): each
/// [`BranchSet`] in its own colour, segments between two stable points solid, every other
/// segment dashed, isolated points as dots (filled when stable); a set with `markers` as
/// crosses only. Points at consecutive x are joined into branches by the smallest jump in y (at
/// most 10 % of the y range).
///
/// Errors: a path not ending in `.png`, or any drawing or file error.
pub fn branch_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    sets: &[BranchSet],
) -> Result<(), OutputError> {
    check_path(path)?;
    let root =
        BitMapBackend::new(path, (LINE_WIDTH_PX, 2 * PANEL_HEIGHT_PX + TITLE_HEIGHT_PX)).into_drawing_area();
    draw_branch_plot(&root, title, x_label, y_label, sets).map_err(|m| write_err(path, m))?;
    root.present().map_err(|e| write_err(path, e))
}

fn draw_branch_plot(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    sets: &[BranchSet],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let body = root.titled(title, (FONT, 24)).map_err(e)?;
    let all = || sets.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = axis_range(finite_range(all().map(|p| p.0)), 0.0);
    let yr = finite_range(all().map(|p| p.1));
    let (y0, y1) = axis_range(yr, MARGIN_FRACTION);
    let max_jump = yr.map_or(1.0, |(lo, hi)| 0.1 * (hi - lo).max(1e-300));
    let mut chart = single_chart(&body, (x0, x1), (y0, y1), x_label, y_label)?;
    for set in sets {
        let color = PALETTE[set.colour % PALETTE.len()];
        let line = color.stroke_width(2);
        if set.markers {
            let pts = set.points.iter().filter(|p| p.0.is_finite() && p.1.is_finite());
            chart
                .draw_series(pts.map(|p| Cross::new((p.0, p.1), 4, color.stroke_width(1))))
                .map_err(e)?
                .label(set.name)
                .legend(move |(px, py)| Cross::new((px + 10, py), 4, color.stroke_width(1)));
            continue;
        }
        let branches = assemble_branches(set.points, max_jump);
        let mut solid = Vec::new();
        let mut dashed = Vec::new();
        let mut dots = Vec::new();
        for b in &branches {
            if b.len() == 1 {
                dots.push(b[0]);
            }
            // Maximal runs of segments of one kind, drawn as one path each (a dash pattern
            // restarts with every path, so per-segment dashes would look solid).
            let mut run: Vec<(f64, f64)> = Vec::new();
            let mut run_solid = true;
            for w in b.windows(2) {
                let seg_solid = w[0].2 && w[1].2;
                if !run.is_empty() && seg_solid != run_solid {
                    let done = std::mem::take(&mut run);
                    if run_solid {
                        solid.push(done)
                    } else {
                        dashed.push(done)
                    }
                }
                if run.is_empty() {
                    run.push((w[0].0, w[0].1));
                    run_solid = seg_solid;
                }
                run.push((w[1].0, w[1].1));
            }
            if run.len() > 1 {
                if run_solid {
                    solid.push(run)
                } else {
                    dashed.push(run)
                }
            }
        }
        let anno = chart
            .draw_series(solid.into_iter().map(|s| PathElement::new(s, line)))
            .map_err(e)?;
        anno.label(format!("{} stable", set.name))
            .legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 20, py)], line));
        let anno = chart
            .draw_series(dashed.into_iter().map(|s| DashedPathElement::new(s, 6, 4, line)))
            .map_err(e)?;
        anno.label(format!("{} unstable", set.name))
            .legend(move |(px, py)| DashedPathElement::new(vec![(px, py), (px + 24, py)], 6, 4, line));
        chart
            .draw_series(dots.into_iter().map(|p| {
                let style = if p.2 {
                    color.filled()
                } else {
                    color.stroke_width(1)
                };
                Circle::new((p.0, p.1), 3, style)
            }))
            .map_err(e)?;
    }
    upper_left_legend(&mut chart)?;
    Ok(())
}

/// Colour for `t` in `[0, 1]` (clamped) on the viridis-like ramp.
fn ramp(t: f64) -> RGBColor {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let pos = t * (VIRIDIS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(VIRIDIS.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |p: u8, q: u8| (f64::from(p) + (f64::from(q) - f64::from(p)) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Cell edges for grid points `v` (strictly increasing, finite): midpoints between neighbours,
/// the outer cells as wide as their inner neighbour; a single point gets a cell of width 1.
fn cell_edges(v: &[f64]) -> Vec<f64> {
    let n = v.len();
    match n {
        0 => Vec::new(),
        1 => vec![v[0] - 0.5, v[0] + 0.5],
        _ => {
            let mut edges = Vec::with_capacity(n + 1);
            edges.push(v[0] - 0.5 * (v[1] - v[0]));
            edges.extend(v.windows(2).map(|w| 0.5 * (w[0] + w[1])));
            edges.push(v[n - 1] + 0.5 * (v[n - 1] - v[n - 2]));
            edges
        }
    }
}

/// Writes a PNG colour map of `z` over the grid `xs` x `ys` (e.g. the Husimi Q(theta, phi)),
/// with a colour bar on the right; the title is followed by the finite min/max of `z`.
///
/// `z` is row-major with `ys` as rows: `z[iy * xs.len() + ix]` belongs to `(xs[ix], ys[iy])`.
/// `xs` and `ys` must be finite and strictly increasing (they may be non-uniform: each point's
/// cell reaches halfway to its neighbours). Non-finite `z` values are drawn grey; constant `z`
/// is drawn in the middle colour of the ramp.
///
/// Errors: empty or non-increasing grids, `z.len() != xs.len() * ys.len()`, a path not ending
/// in `.png`, or any drawing or file error.
pub fn heatmap(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    xs: &[f64],
    ys: &[f64],
    z: &[f64],
) -> Result<(), OutputError> {
    check_path(path)?;
    for (name, grid) in [("x", xs), ("y", ys)] {
        if grid.is_empty() {
            return Err(write_err(path, format!("heat map with an empty {name} grid")));
        }
        if grid.iter().any(|v| !v.is_finite()) || grid.windows(2).any(|w| w[0] >= w[1]) {
            return Err(write_err(
                path,
                format!("heat map {name} grid must be finite and strictly increasing"),
            ));
        }
    }
    if xs.len().checked_mul(ys.len()) != Some(z.len()) {
        return Err(write_err(
            path,
            format!(
                "heat map has {} values for a {} x {} grid",
                z.len(),
                xs.len(),
                ys.len()
            ),
        ));
    }
    let root = BitMapBackend::new(path, HEATMAP_SIZE_PX).into_drawing_area();
    draw_heatmap(&root, title, x_label, y_label, xs, ys, z).map_err(|m| write_err(path, m))?;
    root.present().map_err(|e| write_err(path, e))
}

fn draw_heatmap(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    xs: &[f64],
    ys: &[f64],
    z: &[f64],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let z_range = finite_range(z.iter().copied());
    let full_title = match z_range {
        Some((lo, hi)) => format!("{title}   (min {}, max {})", short_number(lo), short_number(hi)),
        None => format!("{title}   (no finite values)"),
    };
    // Colour scale: exactly the data range; data constant to within a relative 1e-7 (as for
    // line plots) map to the middle of the ramp.
    let (z_lo, z_hi) = z_range.unwrap_or((0.0, 1.0));
    let z_span = z_hi - z_lo;
    let z_varies = z_span.is_finite() && z_span > 1e-7 * z_lo.abs().max(z_hi.abs());
    let color_of = |v: f64| -> RGBColor {
        if !v.is_finite() {
            NAN_COLOR
        } else if z_varies {
            ramp((v - z_lo) / z_span)
        } else {
            ramp(0.5)
        }
    };

    root.fill(&WHITE).map_err(e)?;
    let body = root.titled(&full_title, (FONT, 22)).map_err(e)?;
    let (main, bar) = body.split_horizontally(HEATMAP_SIZE_PX.0 - COLORBAR_STRIP_PX);

    let (x_edges, y_edges) = (cell_edges(xs), cell_edges(ys));
    let (x0, x1) = (x_edges[0], x_edges[xs.len()]);
    let (y0, y1) = (y_edges[0], y_edges[ys.len()]);
    let (x_axis, y_axis) = (Axis::new(x0, x1, X_TICKS), Axis::new(y0, y1, X_TICKS));
    // The plotting areas of map and bar share top and bottom, so the bar lines up with the map.
    let (top, bottom) = (10, 55);
    let mut chart = ChartBuilder::on(&main)
        .margin_top(top)
        .margin_left(10)
        .margin_right(10)
        .x_label_area_size(bottom)
        .y_label_area_size(80)
        .build_cartesian_2d(x_axis, y_axis)
        .map_err(e)?;
    let cells = ys.iter().enumerate().flat_map(|(iy, _)| {
        let (x_edges, y_edges) = (&x_edges, &y_edges);
        (0..xs.len()).map(move |ix| {
            let color = color_of(z[iy * xs.len() + ix]);
            Rectangle::new(
                [(x_edges[ix], y_edges[iy]), (x_edges[ix + 1], y_edges[iy + 1])],
                color.filled(),
            )
        })
    });
    chart.draw_series(cells).map_err(e)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(e)?;

    // Colour bar: a strip of the ramp against a value axis on its right.
    let (b_lo, b_hi) = if z_varies {
        (z_lo, z_hi)
    } else {
        axis_range(z_range, 0.0)
    };
    let b_axis = Axis::new(b_lo, b_hi, Y_TICKS);
    let mut cbar = ChartBuilder::on(&bar)
        .margin_top(top)
        .margin_left(10)
        .margin_right(10)
        .x_label_area_size(bottom)
        .set_label_area_size(LabelAreaPosition::Right, 85)
        .build_cartesian_2d(0.0..1.0, b_axis)
        .map_err(e)?;
    const BANDS: usize = 256;
    let band = |k: usize| b_lo + (b_hi - b_lo) * k as f64 / BANDS as f64;
    let strip = (0..BANDS).map(|k| {
        let mid = 0.5 * (band(k) + band(k + 1));
        Rectangle::new([(0.0, band(k)), (1.0, band(k + 1))], color_of(mid).filled())
    });
    cbar.draw_series(strip).map_err(e)?;
    cbar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .label_style((FONT, 14))
        .draw()
        .map_err(e)?;
    Ok(())
}

/// Writes a PNG of `points` (x, y) as markers and `fit` (x, y) as a line, on a logarithmic y
/// axis and, with `log_x`, a logarithmic x axis (a power law is then a straight line; an
/// exponential with a linear x axis): finite-size scaling of a gap or rate (seed 000 Fig. 2d).
/// Points with non-positive or non-finite coordinates on a log axis are left out.
///
/// Errors: no drawable point, a path not ending in `.png`, or any drawing or file error.
pub fn scaling_plot(
    path: &Path,
    title: &str,
    labels: (&str, &str),
    points: &[(f64, f64)],
    fit: Option<(&str, &[(f64, f64)])>,
    log_x: bool,
) -> Result<(), OutputError> {
    check_path(path)?;
    ensure_font().map_err(|m| write_err(path, m))?;
    let ok = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite() && p.1 > 0.0 && (!log_x || p.0 > 0.0);
    let pts: Vec<(f64, f64)> = points.iter().filter(ok).copied().collect();
    let line: Vec<(f64, f64)> = fit.map_or(Vec::new(), |f| f.1.iter().filter(ok).copied().collect());
    let all = || pts.iter().chain(&line);
    let (Some((x0, x1)), Some((y0, y1))) =
        (finite_range(all().map(|p| p.0)), finite_range(all().map(|p| p.1)))
    else {
        return Err(write_err(path, "scaling plot with no drawable point"));
    };
    let (y0, y1) = (y0 / 1.3, y1 * 1.3);
    let (x0, x1) = if log_x {
        (x0 / 1.1, x1 * 1.1)
    } else {
        let pad = 0.05 * (x1 - x0).max(1e-300);
        (x0 - pad, x1 + pad)
    };
    let root =
        BitMapBackend::new(path, (LINE_WIDTH_PX, 2 * PANEL_HEIGHT_PX + TITLE_HEIGHT_PX)).into_drawing_area();
    let draw = || -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let body = root.titled(title, (FONT, 24)).map_err(e)?;
        let mut builder = ChartBuilder::on(&body);
        builder
            .margin_left(10)
            .margin_right(20)
            .margin_top(8)
            .margin_bottom(4)
            .x_label_area_size(50)
            .y_label_area_size(90);
        let marker = PALETTE[0];
        let fitc = PALETTE[3];
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .label_style((FONT, 15))
                    .axis_desc_style((FONT, 17))
                    .x_desc(labels.0)
                    .y_desc(labels.1)
                    .x_labels(12)
                    .y_labels(12)
                    .x_label_formatter(&|v: &f64| short_number(*v))
                    .y_label_formatter(&|v: &f64| short_number(*v))
                    .draw()
                    .map_err(e)?;
                chart
                    .draw_series(pts.iter().map(|p| Circle::new(*p, 5, marker.filled())))
                    .map_err(e)?
                    .label("computed")
                    .legend(move |(px, py)| Circle::new((px + 10, py), 5, marker.filled()));
                if let Some((name, _)) = fit {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            line.clone(),
                            fitc.stroke_width(2),
                        )))
                        .map_err(e)?
                        .label(name)
                        .legend(move |(px, py)| {
                            PathElement::new(vec![(px, py), (px + 20, py)], fitc.stroke_width(2))
                        });
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.4))
                    .label_font((FONT, 15))
                    .draw()
                    .map_err(e)?;
            }};
        }
        if log_x {
            body!(
                builder
                    .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                    .map_err(e)?
            );
        } else {
            body!(
                builder
                    .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                    .map_err(e)?
            );
        }
        Ok(())
    };
    draw().map_err(|m| write_err(path, m))?;
    root.present().map_err(|e| write_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Width and height from the IHDR chunk, after checking the PNG signature.
    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).expect("read png");
        assert!(bytes.len() > 33, "file too short");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&bytes[12..16], b"IHDR");
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (be(&bytes[16..20]), be(&bytes[20..24]))
    }

    fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| a + (b - a) * i as f64 / (n - 1).max(1) as f64)
            .collect()
    }

    #[test]
    fn line_plot_writes_png_of_expected_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.png");
        let t = linspace(0.0, 10.0, 200);
        let jz: Vec<f64> = t.iter().map(|t| (-0.3 * t).exp() * t.cos()).collect();
        let jx: Vec<f64> = t.iter().map(|t| t.sin()).collect();
        let mut gap = jx.clone();
        gap[50..60].fill(f64::NAN);
        gap[100] = f64::INFINITY;
        let panels = [
            (
                "<J_z>",
                vec![
                    Series { name: "J_z", y: &jz },
                    Series {
                        name: "gappy",
                        y: &gap,
                    },
                ],
            ),
            ("<J_x>", vec![Series { name: "J_x", y: &jx }]),
        ];
        line_plot(&path, "test", "t", &t, &panels).unwrap();
        assert_eq!(
            png_size(&path),
            (LINE_WIDTH_PX, 2 * PANEL_HEIGHT_PX + TITLE_HEIGHT_PX)
        );
    }

    #[test]
    fn line_plot_degenerate_inputs_do_not_error() {
        let dir = tempfile::tempdir().unwrap();
        let t = linspace(0.0, 1.0, 5);
        let constant = [2.5; 5];
        let zeros = [0.0; 5];
        let nan = [f64::NAN; 5];
        let tiny = [1e-300, 2e-300, 1e-300, 3e-300, 0.0];
        let huge = [-1e308, 1e308, f64::MAX, -f64::MAX, 0.0];
        let almost = [1.0, 1.0 + 1e-15, 1.0, 1.0, 1.0];
        let panels = [
            (
                "const",
                vec![
                    Series {
                        name: "c",
                        y: &constant,
                    },
                    Series { name: "0", y: &zeros },
                ],
            ),
            (
                "nan",
                vec![Series {
                    name: "all NaN",
                    y: &nan,
                }],
            ),
            (
                "tiny",
                vec![Series {
                    name: "tiny",
                    y: &tiny,
                }],
            ),
            (
                "huge",
                vec![Series {
                    name: "huge",
                    y: &huge,
                }],
            ),
            ("almost", vec![Series { name: "", y: &almost }]),
            ("empty", vec![]),
        ];
        let path = dir.path().join("degenerate.png");
        line_plot(&path, "degenerate", "t", &t, &panels).unwrap();
        assert_eq!(png_size(&path).1, 6 * PANEL_HEIGHT_PX + TITLE_HEIGHT_PX);

        // A single x point: markers.
        let path = dir.path().join("single.png");
        line_plot(
            &path,
            "single",
            "t",
            &[3.0],
            &[("y", vec![Series { name: "a", y: &[1.0] }])],
        )
        .unwrap();
        assert_eq!(
            png_size(&path),
            (LINE_WIDTH_PX, PANEL_HEIGHT_PX + TITLE_HEIGHT_PX)
        );

        // No x points at all, and non-finite x.
        let path = dir.path().join("empty.png");
        line_plot(
            &path,
            "empty",
            "t",
            &[],
            &[("y", vec![Series { name: "a", y: &[] }])],
        )
        .unwrap();
        let path = dir.path().join("nan_x.png");
        let x = [0.0, f64::NAN, 2.0];
        line_plot(
            &path,
            "nan x",
            "t",
            &x,
            &[(
                "y",
                vec![Series {
                    name: "a",
                    y: &[1.0, 5.0, 2.0],
                }],
            )],
        )
        .unwrap();
    }

    #[test]
    fn line_plot_rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("x.png");
        let mismatch = line_plot(
            &good,
            "t",
            "x",
            &[1.0, 2.0],
            &[("y", vec![Series { name: "a", y: &[1.0] }])],
        );
        assert!(matches!(mismatch, Err(OutputError::Write { .. })));
        assert!(line_plot(&good, "t", "x", &[1.0], &[]).is_err());
        let not_png = dir.path().join("x.txt");
        assert!(
            line_plot(
                &not_png,
                "t",
                "x",
                &[1.0],
                &[("y", vec![Series { name: "a", y: &[1.0] }])]
            )
            .is_err()
        );
        let missing_dir = dir.path().join("no/such/dir/x.png");
        let err = line_plot(
            &missing_dir,
            "t",
            "x",
            &[1.0],
            &[("y", vec![Series { name: "a", y: &[1.0] }])],
        );
        match err {
            Err(OutputError::Write { path, .. }) => assert!(path.ends_with("x.png")),
            Ok(()) => panic!("writing into a missing directory succeeded"),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    #[test]
    fn heatmap_writes_png_of_expected_size() {
        let dir = tempfile::tempdir().unwrap();
        let theta = linspace(0.0, std::f64::consts::PI, 40);
        let phi = linspace(-std::f64::consts::PI, std::f64::consts::PI, 80);
        let z: Vec<f64> = phi
            .iter()
            .flat_map(|p| theta.iter().map(move |t| (-(t - 1.0).powi(2) - p.powi(2)).exp()))
            .collect();
        let path = dir.path().join("q.png");
        heatmap(&path, "Q", "theta", "phi", &theta, &phi, &z).unwrap();
        assert_eq!(png_size(&path), HEATMAP_SIZE_PX);
    }

    #[test]
    fn heatmap_degenerate_inputs_do_not_error() {
        let dir = tempfile::tempdir().unwrap();
        let xs = [0.0, 1.0, 3.0];
        let ys = [0.0, 1.0];
        let cases: [(&str, [f64; 6]); 4] = [
            ("const", [0.7; 6]),
            ("zero", [0.0; 6]),
            ("nan", [f64::NAN; 6]),
            ("some_nan", [1.0, f64::NAN, 2.0, f64::INFINITY, 0.5, 1e-12]),
        ];
        for (name, z) in cases {
            let path = dir.path().join(format!("{name}.png"));
            heatmap(&path, name, "x", "y", &xs, &ys, &z).unwrap();
            assert_eq!(png_size(&path), HEATMAP_SIZE_PX);
        }
        let path = dir.path().join("single.png");
        heatmap(&path, "single", "x", "y", &[1.0], &[2.0], &[3.0]).unwrap();
        assert_eq!(png_size(&path), HEATMAP_SIZE_PX);
    }

    #[test]
    fn heatmap_rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        assert!(heatmap(&path, "t", "x", "y", &[0.0, 1.0], &[0.0], &[1.0]).is_err());
        assert!(heatmap(&path, "t", "x", "y", &[], &[0.0], &[]).is_err());
        assert!(heatmap(&path, "t", "x", "y", &[1.0, 0.0], &[0.0], &[1.0, 2.0]).is_err());
        assert!(heatmap(&path, "t", "x", "y", &[f64::NAN], &[0.0], &[1.0]).is_err());
    }

    #[test]
    fn tick_labels_are_compact() {
        let labels = |lo: f64, hi: f64, n: usize| -> Vec<String> {
            let axis = Axis::new(lo, hi, n);
            axis.ticks.iter().map(|&v| axis.label(v)).collect()
        };
        assert_eq!(labels(-1.0, 1.0, 4), ["-1", "-0.5", "0", "0.5", "1"]);
        assert_eq!(labels(0.0, 10.0, 5), ["0", "2", "4", "6", "8", "10"]);
        assert_eq!(labels(0.0, 0.002, 4), ["0", "0.0005", "0.001", "0.0015", "0.002"]);
        assert_eq!(labels(0.0, 1e-6, 4), ["0", "2.5e-7", "5e-7", "7.5e-7", "1e-6"]);
        assert_eq!(
            labels(1e-20, 3e-20, 4),
            ["1e-20", "1.5e-20", "2e-20", "2.5e-20", "3e-20"]
        );
        assert_eq!(labels(0.0, 2e6, 4), ["0", "5e5", "1e6", "1.5e6", "2e6"]);
        assert_eq!(labels(0.1, 0.7, 3), ["0.2", "0.4", "0.6"]);
        assert_eq!(labels(-250.0, 250.0, 2), ["-200", "0", "200"]);
        assert_eq!(labels(0.0, 10.0, 4), ["0", "2.5", "5", "7.5", "10"]);
        assert_eq!(
            labels(-0.3, 0.31, 6),
            ["-0.3", "-0.2", "-0.1", "0", "0.1", "0.2", "0.3"]
        );
        assert!(Axis::new(1.0, 1.0, 5).ticks.is_empty());
        assert!(Axis::new(0.0, f64::NAN, 5).ticks.is_empty());
        assert_eq!(short_number(1.6691), "1.669");
        assert_eq!(short_number(4.6259e-82), "4.626e-82");
        assert_eq!(short_number(120.0), "120");
    }

    #[test]
    fn ramp_endpoints_and_axis_ranges() {
        assert_eq!(ramp(0.0), RGBColor(68, 1, 84));
        assert_eq!(ramp(1.0), RGBColor(253, 231, 37));
        assert_eq!(ramp(f64::NAN), RGBColor(68, 1, 84));
        assert_eq!(axis_range(None, 0.05), (0.0, 1.0));
        let (lo, hi) = axis_range(Some((2.0, 2.0)), 0.05);
        assert!(lo < 2.0 && hi > 2.0);
        let (lo, hi) = axis_range(Some((0.0, 0.0)), 0.05);
        assert!(lo < 0.0 && hi > 0.0);
        let (lo, hi) = axis_range(Some((-f64::MAX, f64::MAX)), 0.05);
        assert!(lo.is_finite() && hi.is_finite() && lo < hi);
    }

    /// Renders sample figures to `$TMPDIR/plot_sample_*.png` for looking at by eye:
    /// `cargo test --release --lib output::plot -- --ignored`.
    #[test]
    #[ignore = "renders sample PNGs into /tmp for a person to look at; run with `cargo test --release --lib output::plot -- --ignored`"]
    fn render_samples() {
        let dir = std::env::temp_dir();
        let t = linspace(0.0, 20.0, 400);
        let jz: Vec<f64> = t.iter().map(|t| -(-0.2 * t).exp() * (1.3 * t).cos()).collect();
        let jx: Vec<f64> = t.iter().map(|t| (-0.1 * t).exp() * (1.3 * t).sin()).collect();
        let mut gap: Vec<f64> = t.iter().map(|t| 0.5 * (0.7 * t).sin()).collect();
        gap[100..130].fill(f64::NAN);
        let var: Vec<f64> = t.iter().map(|t| 1e-4 * (1.0 + t)).collect();
        let constant = vec![0.25; t.len()];
        let nan = vec![f64::NAN; t.len()];
        let panels = [
            (
                "⟨J_z⟩/j",
                vec![
                    Series {
                        name: "⟨J_z⟩/j",
                        y: &jz,
                    },
                    Series {
                        name: "<J_x>/j",
                        y: &jx,
                    },
                ],
            ),
            (
                "misc",
                vec![
                    Series {
                        name: "with NaN gap",
                        y: &gap,
                    },
                    Series {
                        name: "constant 0.25",
                        y: &constant,
                    },
                    Series {
                        name: "all NaN",
                        y: &nan,
                    },
                ],
            ),
            (
                "Var(J_z)",
                vec![Series {
                    name: "Var(J_z)",
                    y: &var,
                }],
            ),
        ];
        line_plot(
            &dir.join("plot_sample_lines.png"),
            "Dicke superradiance, N = 100",
            "time t (1/kappa)",
            &t,
            &panels,
        )
        .unwrap();
        line_plot(
            &dir.join("plot_sample_single.png"),
            "single point",
            "t",
            &[2.0],
            &[(
                "y",
                vec![Series { name: "a", y: &[1.0] }, Series { name: "b", y: &[1.5] }],
            )],
        )
        .unwrap();

        let theta = linspace(0.0, std::f64::consts::PI, 90);
        let phi = linspace(-std::f64::consts::PI, std::f64::consts::PI, 180);
        let z: Vec<f64> = phi
            .iter()
            .flat_map(|p| {
                theta.iter().map(move |t| {
                    let c = t.cos() * 0.3f64.cos() + t.sin() * 0.3f64.sin() * (p - 1.0).cos();
                    (((1.0 + c) / 2.0).powi(20)) * 21.0 / (4.0 * std::f64::consts::PI)
                })
            })
            .collect();
        heatmap(
            &dir.join("plot_sample_heatmap.png"),
            "Husimi Q(θ, φ), j = 10",
            "θ (polar angle)",
            "φ (azimuth)",
            &theta,
            &phi,
            &z,
        )
        .unwrap();
    }

    /// A power law on log-log axes and an exponential on semi-log axes are drawn; nothing
    /// drawable (all y <= 0) is an error, not a panic.
    #[test]
    fn scaling_plot_writes_and_refuses_empty() {
        let dir = tempfile::tempdir().unwrap();
        let pts: Vec<(f64, f64)> = [18.0, 24.0, 36.0, 54.0]
            .iter()
            .map(|n: &f64| (*n, 1.72 * n.powf(-0.9)))
            .collect();
        let p = dir.path().join("s.png");
        scaling_plot(&p, "t", ("N", "gap"), &pts, Some(("fit", &pts)), true).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() > 1000);
        scaling_plot(&p, "t", ("N", "gap"), &pts, None, false).unwrap();
        let bad = [(1.0, 0.0), (2.0, -1.0)];
        assert!(scaling_plot(&p, "t", ("N", "gap"), &bad, None, true).is_err());
    }
}

/// One parametric curve of [`curve_plot`]: `(x, y)` in drawing order (x need not be monotone,
/// e.g. a hysteresis loop), in palette colour `colour`, solid or dashed.
#[derive(Debug, Clone, Copy)]
pub struct Curve<'a> {
    pub name: &'a str,
    pub colour: usize,
    pub points: &'a [(f64, f64)],
    pub dashed: bool,
}

/// Writes a PNG of parametric curves y against x on one panel, with a legend (upper left).
/// Non-finite points split a curve.
///
/// Errors: a path not ending in `.png`, or any drawing or file error.
pub fn curve_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
) -> Result<(), OutputError> {
    check_path(path)?;
    let root =
        BitMapBackend::new(path, (LINE_WIDTH_PX, 2 * PANEL_HEIGHT_PX + TITLE_HEIGHT_PX)).into_drawing_area();
    draw_curves(&root, title, x_label, y_label, curves).map_err(|m| write_err(path, m))?;
    root.present().map_err(|e| write_err(path, e))
}

fn draw_curves(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let body = root.titled(title, (FONT, 24)).map_err(e)?;
    let all = || curves.iter().flat_map(|c| c.points.iter());
    let (x0, x1) = axis_range(finite_range(all().map(|p| p.0)), 0.0);
    let (y0, y1) = axis_range(finite_range(all().map(|p| p.1)), MARGIN_FRACTION);
    let mut chart = single_chart(&body, (x0, x1), (y0, y1), x_label, y_label)?;
    for c in curves {
        let line = PALETTE[c.colour % PALETTE.len()].stroke_width(2);
        let runs: Vec<Vec<(f64, f64)>> = c
            .points
            .split(|p| !(p.0.is_finite() && p.1.is_finite()))
            .filter(|r| r.len() > 1)
            .map(|r| r.to_vec())
            .collect();
        let anno = if c.dashed {
            chart
                .draw_series(runs.into_iter().map(|r| DashedPathElement::new(r, 6, 4, line)))
                .map_err(e)?
        } else {
            chart
                .draw_series(runs.into_iter().map(|r| PathElement::new(r, line)))
                .map_err(e)?
        };
        let dashed = c.dashed;
        anno.label(c.name).legend(move |(px, py)| {
            if dashed {
                DashedPathElement::new(vec![(px, py), (px + 24, py)], 6, 4, line).into_dyn()
            } else {
                PathElement::new(vec![(px, py), (px + 20, py)], line).into_dyn()
            }
        });
    }
    upper_left_legend(&mut chart)?;
    Ok(())
}

/// Most points of a [`loglog_curves`] curve drawn with markers.
pub const MAX_MARKERS: usize = 80;

/// Writes a PNG of curves y against x as lines with markers (dashed curves: lines only, e.g.
/// asymptotes), on a logarithmic x axis when `log_x` and a logarithmic y axis when every
/// finite y is positive; legend upper left. Non-finite points (and non-positive ones on a log
/// axis) split a curve. Seed 004 Fig. 4b: loop widths against the ramp rate, one curve per N.
///
/// Errors: no drawable point, a path not ending in `.png`, or any drawing or file error.
pub fn loglog_curves(
    path: &Path,
    title: &str,
    labels: (&str, &str),
    curves: &[Curve],
    log_x: bool,
) -> Result<(), OutputError> {
    check_path(path)?;
    ensure_font().map_err(|m| write_err(path, m))?;
    let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!log_x || p.0 > 0.0);
    let all = || curves.iter().flat_map(|c| c.points.iter()).filter(|p| finite(p));
    let log_y = all().all(|p| p.1 > 0.0);
    let (Some((x0, x1)), Some((y0, y1))) =
        (finite_range(all().map(|p| p.0)), finite_range(all().map(|p| p.1)))
    else {
        return Err(write_err(path, "curve plot with no drawable point"));
    };
    let pad = |lo: f64, hi: f64, log: bool| {
        if log {
            (lo / 1.15, hi * 1.15)
        } else {
            let d = 0.05 * (hi - lo).max(1e-300);
            (lo - d, hi + d)
        }
    };
    let ((x0, x1), (y0, y1)) = (pad(x0, x1, log_x), pad(y0, y1, log_y));
    let root =
        BitMapBackend::new(path, (LINE_WIDTH_PX, 2 * PANEL_HEIGHT_PX + TITLE_HEIGHT_PX)).into_drawing_area();
    let draw = || -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let body = root.titled(title, (FONT, 22)).map_err(e)?;
        let mut builder = ChartBuilder::on(&body);
        builder
            .margin_left(10)
            .margin_right(20)
            .margin_top(8)
            .margin_bottom(4)
            .x_label_area_size(50)
            .y_label_area_size(90);
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .label_style((FONT, 15))
                    .axis_desc_style((FONT, 17))
                    .x_desc(labels.0)
                    .y_desc(labels.1)
                    .x_labels(12)
                    .y_labels(12)
                    .x_label_formatter(&|v: &f64| short_number(*v))
                    .y_label_formatter(&|v: &f64| short_number(*v))
                    .draw()
                    .map_err(e)?;
                for c in curves {
                    let colour = PALETTE[c.colour % PALETTE.len()];
                    let line = colour.stroke_width(2);
                    let ok = |p: &(f64, f64)| finite(p) && (!log_y || p.1 > 0.0);
                    let runs: Vec<Vec<(f64, f64)>> = c
                        .points
                        .split(|p| !ok(p))
                        .filter(|r| !r.is_empty())
                        .map(|r| r.to_vec())
                        .collect();
                    let dashed = c.dashed;
                    let anno = if dashed {
                        chart
                            .draw_series(
                                runs.iter()
                                    .map(|r| DashedPathElement::new(r.clone(), 6, 4, line)),
                            )
                            .map_err(e)?
                    } else {
                        // Markers at every point while they stay apart; on a dense curve at
                        // every `stride`-th point, offset by the curve's colour index, so that
                        // curves on top of each other (a collapse) still show every colour.
                        let stride = c.points.len().div_ceil(MAX_MARKERS / 4).max(1);
                        let marked =
                            |i: usize| c.points.len() <= MAX_MARKERS || i % stride == c.colour % stride;
                        chart
                            .draw_series(
                                c.points
                                    .iter()
                                    .enumerate()
                                    .filter(|(i, p)| marked(*i) && ok(p))
                                    .map(|(_, p)| Circle::new(*p, 4, colour.filled())),
                            )
                            .map_err(e)?;
                        chart
                            .draw_series(runs.iter().map(|r| PathElement::new(r.clone(), line)))
                            .map_err(e)?
                    };
                    anno.label(c.name).legend(move |(px, py)| {
                        if dashed {
                            DashedPathElement::new(vec![(px, py), (px + 24, py)], 6, 4, line).into_dyn()
                        } else {
                            PathElement::new(vec![(px, py), (px + 20, py)], line).into_dyn()
                        }
                    });
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.4))
                    .label_font((FONT, 15))
                    .draw()
                    .map_err(e)?;
            }};
        }
        match (log_x, log_y) {
            (true, true) => body!(
                builder
                    .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                    .map_err(e)?
            ),
            (true, false) => body!(
                builder
                    .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                    .map_err(e)?
            ),
            (false, true) => body!(
                builder
                    .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                    .map_err(e)?
            ),
            (false, false) => body!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(e)?),
        }
        Ok(())
    };
    draw().map_err(|m| write_err(path, m))?;
    root.present().map_err(|e| write_err(path, e))
}
