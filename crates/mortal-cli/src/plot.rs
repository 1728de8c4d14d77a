//! Figures, drawn from result files only, so they can be redrawn without retraining.
//!
//! Rendering uses plotters with an embedded font (DejaVu Sans via ab_glyph), so PNGs
//! render on a machine without any system font library.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use mortal::error::{Error, Result};
use mortal::train::EpochRecord;

static FONTS: Once = Once::new();

/// Registers the embedded font under the family name `sans-serif` (once per process).
pub fn register_fonts() {
    FONTS.call_once(|| {
        // The embedded font is a valid TTF; failure here would be a packaging bug.
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let bytes = match style {
                FontStyle::Bold => dejavu::sans::bold(),
                _ => dejavu::sans::regular(),
            };
            plotters::style::register_font("sans-serif", style, bytes)
                .unwrap_or_else(|_| panic!("embedded DejaVu font rejected"));
        }
    });
}

/// One line of a chart, optionally with a shaded band (e.g. ±1 std over seeds).
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// Legend entry.
    pub label: String,
    /// (x, y) points, drawn in order.
    pub points: Vec<(f64, f64)>,
    /// (x, low, high) of the band, if any.
    pub band: Vec<(f64, f64, f64)>,
    /// Draw the line dashed (e.g. a reference level), without point markers.
    pub dashed: bool,
    /// No point markers (e.g. a histogram's steps).
    pub plain: bool,
}

/// A line chart.
#[derive(Clone, Debug, Default)]
pub struct LineChart {
    pub title: String,
    /// X axis label, with unit.
    pub x_label: String,
    /// Y axis label, with unit.
    pub y_label: String,
    pub series: Vec<Series>,
    /// Logarithmic x axis (non-positive x values are not drawn).
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Categorical x axis: tick labels at the given x positions (the values are then
    /// indices 0, 1, …, and only these ticks are labelled).
    pub x_ticks: Vec<(f64, String)>,
}

/// Colour of the i-th series (a colour-blind-friendly palette).
pub fn palette(i: usize) -> RGBColor {
    const P: [RGBColor; 8] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(120, 120, 120),
        RGBColor(240, 228, 66),
    ];
    P[i % P.len()]
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(
        format!("cannot draw {}", path.display()),
        std::io::Error::other(e.to_string()),
    )
}

fn bounds(chart: &LineChart) -> (f64, f64, f64, f64) {
    let xs = chart.series.iter().flat_map(|s| {
        s.points
            .iter()
            .map(|p| p.0)
            .chain(s.band.iter().map(|b| b.0))
    });
    let ys = chart.series.iter().flat_map(|s| {
        s.points
            .iter()
            .map(|p| p.1)
            .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
    });
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in xs.filter(|v| v.is_finite() && (!chart.log_x || *v > 0.0)) {
        x0 = x0.min(x);
        x1 = x1.max(x);
    }
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for y in ys.filter(|v| v.is_finite() && (!chart.log_y || *v > 0.0)) {
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1) = if chart.log_x { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if !y0.is_finite() {
        (y0, y1) = (if chart.log_y { 0.1 } else { 0.0 }, 1.0);
    }
    if !chart.x_ticks.is_empty() {
        // Categories: half a slot of room on each side.
        let lo = chart.x_ticks.iter().map(|t| t.0).fold(x0, f64::min);
        let hi = chart.x_ticks.iter().map(|t| t.0).fold(x1, f64::max);
        (x0, x1) = (lo - 0.5, hi + 0.5);
    } else if x1 <= x0 {
        if chart.log_x {
            (x0, x1) = (x0 / 2.0, x1 * 2.0);
        } else {
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
    } else if chart.log_x {
        (x0, x1) = (x0 / 1.15, x1 * 1.15);
    } else if chart.series.iter().any(|s| !s.plain) {
        // Room for the markers at the ends.
        let pad = (x1 - x0) * 0.03;
        (x0, x1) = (x0 - pad, x1 + pad);
    }
    if chart.log_y {
        (x0, x1, y0 / 1.3, y1 * 1.3)
    } else {
        let pad = ((y1 - y0) * 0.08).max(1e-9);
        (
            x0,
            x1,
            (y0 - pad).max(if y0 >= 0.0 { 0.0 } else { f64::MIN }),
            y1 + pad,
        )
    }
}

/// A tick label: integers without decimals, otherwise up to three significant digits
/// (trailing zeros dropped).
fn tick(v: f64) -> String {
    let s = if v == v.round() && v.abs() < 1e6 {
        return format!("{v:.0}");
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.1 {
        format!("{v:.2}")
    } else if v.abs() >= 1e-3 {
        format!("{v:.3}")
    } else {
        return format!("{v:.0e}");
    };
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The corner of the plot with the fewest data points near it, for the legend.
fn legend_corner(chart: &LineChart, (x0, x1, y0, y1): (f64, f64, f64, f64)) -> SeriesLabelPosition {
    let norm = |v: f64, lo: f64, hi: f64, log: bool| {
        if log {
            (v.max(1e-300).ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            (v - lo) / (hi - lo)
        }
    };
    let pts: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .map(|p| (p.0, p.1))
                .chain(s.band.iter().flat_map(|b| [(b.0, b.1), (b.0, b.2)]))
        })
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .map(|(x, y)| (norm(x, x0, x1, chart.log_x), norm(y, y0, y1, chart.log_y)))
        .collect();
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let crowd = |right: bool, upper: bool| {
        pts.iter()
            .filter(|(x, y)| {
                (if right { *x > 0.55 } else { *x < 0.45 })
                    && (if upper { *y > 0.6 } else { *y < 0.4 })
            })
            .count()
    };
    let mut best = 0;
    let mut best_n = usize::MAX;
    for (i, (_, r, u)) in corners.iter().enumerate() {
        let n = crowd(*r, *u);
        if n < best_n {
            (best, best_n) = (i, n);
        }
    }
    corners[best].0.clone()
}

/// 1-2-5 ticks covering [lo, hi] (both > 0).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = m * decade;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

fn draw_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &LineChart,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (x0, x1, y0, y1) = bounds(chart);
    let corner = legend_corner(chart, (x0, x1, y0, y1));
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(&chart.title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64);
    let categorical = !chart.x_ticks.is_empty();
    let x_fmt = |v: &f64| -> String {
        if categorical {
            chart
                .x_ticks
                .iter()
                .find(|t| (t.0 - *v).abs() < 1e-6)
                .map_or(String::new(), |t| t.1.clone())
        } else {
            tick(*v)
        }
    };
    let in_x = |x: f64| !chart.log_x || x > 0.0;
    let in_y = |y: f64| !chart.log_y || y > 0.0;
    macro_rules! body {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            let mut mesh = ctx.configure_mesh();
            mesh.x_labels(if categorical {
                chart.x_ticks.len().max(2)
            } else {
                12
            })
            .y_labels(14)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&|v: &f64| tick(*v))
            .x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(RGBColor(235, 235, 235));
            if categorical {
                mesh.disable_x_mesh();
            }
            mesh.draw().map_err(|e| e.to_string())?;
            for (i, s) in chart.series.iter().enumerate() {
                let c = palette(i);
                let band: Vec<&(f64, f64, f64)> = s
                    .band
                    .iter()
                    .filter(|b| in_x(b.0) && in_y(b.1) && in_y(b.2))
                    .collect();
                if !band.is_empty() {
                    let mut poly: Vec<(f64, f64)> = band.iter().map(|b| (b.0, b.2)).collect();
                    poly.extend(band.iter().rev().map(|b| (b.0, b.1)));
                    ctx.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18))))
                        .map_err(|e| e.to_string())?;
                }
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| in_x(p.0) && in_y(p.1))
                    .collect();
                let legend = move |(x, y): (i32, i32)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
                };
                if s.dashed {
                    ctx.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, c.stroke_width(2)))
                        .map_err(|e| e.to_string())?
                        .label(s.label.as_str())
                        .legend(legend);
                } else {
                    ctx.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                        .map_err(|e| e.to_string())?
                        .label(s.label.as_str())
                        .legend(legend);
                    if !s.plain {
                        ctx.draw_series(pts.iter().map(|p| Circle::new(*p, 3, c.filled())))
                            .map_err(|e| e.to_string())?;
                    }
                }
            }
            if chart.series.iter().any(|s| !s.label.is_empty()) {
                ctx.configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(180, 180, 180))
                    .label_font(("sans-serif", 14))
                    .position(corner.clone())
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
        }};
    }
    let xs = x0..x1;
    let ys = y0..y1;
    let build = |e: plotters::drawing::DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    match (chart.log_x, chart.log_y) {
        (false, false) => body!(builder.build_cartesian_2d(xs, ys).map_err(build)?),
        (false, true) => body!(
            builder
                .build_cartesian_2d(xs, ys.log_scale().with_key_points(log_ticks(y0, y1)))
                .map_err(build)?
        ),
        (true, false) => body!(
            builder
                .build_cartesian_2d(xs.log_scale().with_key_points(log_ticks(x0, x1)), ys)
                .map_err(build)?
        ),
        (true, true) => body!(
            builder
                .build_cartesian_2d(
                    xs.log_scale().with_key_points(log_ticks(x0, x1)),
                    ys.log_scale().with_key_points(log_ticks(y0, y1))
                )
                .map_err(build)?
        ),
    }
    root.present().map_err(|e| e.to_string())
}

/// Draws `chart` to `<stem>.png` (1000×620) and `<stem>.svg` (the stem must not end in an
/// extension); returns the PNG path.
pub fn line_chart(chart: &LineChart, stem: &Path) -> Result<PathBuf> {
    register_fonts();
    if let Some(dir) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        mortal::fsutil::create_dir(dir)?;
    }
    // Appended, not `with_extension`: stems may hold dots (`…_lr-0.001_c1_s1`).
    let with = |ext: &str| {
        let mut s = stem.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let (png, svg) = (with(".png"), with(".svg"));
    // A log axis cannot show x ≤ 0: say so in the figure rather than drop points silently.
    let hidden = if chart.log_x {
        chart
            .series
            .iter()
            .flat_map(|s| &s.points)
            .filter(|p| p.0.is_finite() && p.0 <= 0.0)
            .count()
    } else {
        0
    };
    let annotated;
    let chart = if hidden > 0 {
        let mut c = chart.clone();
        c.title = format!(
            "{} ({hidden} point{} at x ≤ 0 not shown on the log axis)",
            c.title,
            if hidden == 1 { "" } else { "s" }
        );
        annotated = c;
        &annotated
    } else {
        chart
    };
    {
        let root = BitMapBackend::new(&png, (1000, 620)).into_drawing_area();
        draw_chart(&root, chart).map_err(|e| plot_err(&png, e))?;
    }
    {
        let root = SVGBackend::new(&svg, (1000, 620)).into_drawing_area();
        draw_chart(&root, chart).map_err(|e| plot_err(&svg, e))?;
    }
    Ok(png)
}

/// Reads a run's `epochs.csv`.
pub fn read_epochs(path: &Path) -> Result<Vec<EpochRecord>> {
    mortal::fsutil::read_csv(path, "an epochs.csv file")
}

/// What a curve needs of an `epochs.csv` (a training run's or a distillation student's).
#[derive(serde::Deserialize)]
struct CurvePoint {
    epoch: usize,
    valid_error: f64,
}

/// Validation error (%) per epoch of several runs, one line each; `runs` holds
/// (legend label, run directory: a training run or a distillation student).
pub fn training_curves(runs: &[(String, PathBuf)], title: &str, stem: &Path) -> Result<PathBuf> {
    let mut series = Vec::new();
    for (label, dir) in runs {
        let rows: Vec<CurvePoint> =
            mortal::fsutil::read_csv(&dir.join("epochs.csv"), "an epochs.csv file")?;
        series.push(Series {
            label: label.clone(),
            points: rows
                .iter()
                .map(|r| (r.epoch as f64, 100.0 * r.valid_error))
                .collect(),
            ..Series::default()
        });
    }
    line_chart(
        &LineChart {
            title: title.to_string(),
            x_label: "epoch".into(),
            y_label: "validation error (%)".into(),
            series,
            log_y: true,
            ..LineChart::default()
        },
        stem,
    )
}

/// Colour of a signed value in [−1, 1] on a diverging blue–white–red map (ColorBrewer
/// RdBu end points): negative blue, zero white, positive red.
pub fn diverging(v: f32) -> RGBColor {
    let t = v.clamp(-1.0, 1.0);
    let (end, a) = if t >= 0.0 {
        ((178.0, 24.0, 43.0), t)
    } else {
        ((33.0, 102.0, 172.0), -t)
    };
    let mid = (247.0, 247.0, 247.0);
    let mix = |m: f32, e: f32| (m + (e - m) * a).round() as u8;
    RGBColor(mix(mid.0, end.0), mix(mid.1, end.1), mix(mid.2, end.2))
}

/// A grid of signed images (e.g. first-layer receptive fields), each `width × height`
/// values in row-major order and scaled to its own largest |value|, drawn with
/// [`diverging`] colours, `cols` per row, to a PNG (no SVG: thousands of pixels).
pub fn image_grid(
    images: &[Vec<f32>],
    (width, height): (usize, usize),
    cols: usize,
    title: &str,
    note: &str,
    png: &Path,
) -> Result<PathBuf> {
    register_fonts();
    if let Some(dir) = png.parent().filter(|p| !p.as_os_str().is_empty()) {
        mortal::fsutil::create_dir(dir)?;
    }
    let cols = cols.max(1);
    let rows = images.len().div_ceil(cols).max(1);
    let (scale, gap, margin, top, bottom) = (4usize, 8usize, 20usize, 44usize, 34usize);
    let (tw, th) = (width * scale, height * scale);
    let w = (2 * margin + cols * (tw + gap) - gap).max(420);
    let h = top + margin + rows * (th + gap) - gap + bottom;
    let draw = || -> std::result::Result<(), String> {
        let root = BitMapBackend::new(png, (w as u32, h as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let centred = |size: u32| {
            TextStyle::from(("sans-serif", size).into_font()).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ),
            )
        };
        root.draw(&Text::new(
            title.to_string(),
            ((w / 2) as i32, 22),
            centred(20),
        ))
        .map_err(|e| e.to_string())?;
        root.draw(&Text::new(
            note.to_string(),
            ((w / 2) as i32, (h - bottom / 2) as i32),
            centred(14),
        ))
        .map_err(|e| e.to_string())?;
        for (k, img) in images.iter().enumerate() {
            let (r, c) = (k / cols, k % cols);
            let x0 = (margin + c * (tw + gap)) as i32;
            let y0 = (top + r * (th + gap)) as i32;
            let peak = img.iter().fold(0f32, |m, v| m.max(v.abs()));
            let inv = if peak > 0.0 { 1.0 / peak } else { 0.0 };
            for (p, v) in img.iter().enumerate().take(width * height) {
                let (py, px) = ((p / width) as i32, (p % width) as i32);
                let s = scale as i32;
                let (x, y) = (x0 + px * s, y0 + py * s);
                root.draw(&Rectangle::new(
                    [(x, y), (x + s, y + s)],
                    diverging(v * inv).filled(),
                ))
                .map_err(|e| e.to_string())?;
            }
            root.draw(&Rectangle::new(
                [(x0 - 1, y0 - 1), (x0 + tw as i32, y0 + th as i32)],
                RGBColor(170, 170, 170).stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    };
    draw().map_err(|e| plot_err(png, e))?;
    Ok(png.to_path_buf())
}

/// A histogram as a step line for [`line_chart`]: `bins` equal bins over `[lo, hi]`, the
/// y value being the percentage of `values` in each bin.
pub fn histogram_steps(values: &[f32], lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64)> {
    let bins = bins.max(1);
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &v in values {
        let v = f64::from(v);
        if v.is_finite() && width > 0.0 {
            let b = (((v - lo) / width).floor().max(0.0) as usize).min(bins - 1);
            counts[b] += 1;
        }
    }
    let n = values.len().max(1) as f64;
    let mut out = Vec::with_capacity(2 * bins + 2);
    out.push((lo, 0.0));
    for (b, c) in counts.iter().enumerate() {
        let y = 100.0 * *c as f64 / n;
        out.push((lo + b as f64 * width, y));
        out.push((lo + (b + 1) as f64 * width, y));
    }
    out.push((hi, 0.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_png_and_svg_with_embedded_font() {
        let dir = tempfile::tempdir().unwrap();
        let chart = LineChart {
            title: "test".into(),
            x_label: "epoch".into(),
            y_label: "error (%)".into(),
            series: vec![Series {
                label: "a".into(),
                points: vec![(1.0, 10.0), (2.0, 5.0), (3.0, 3.0)],
                band: vec![(1.0, 9.0, 11.0), (2.0, 4.0, 6.0), (3.0, 2.5, 3.5)],
                ..Series::default()
            }],
            log_y: true,
            ..LineChart::default()
        };
        let png = line_chart(&chart, &dir.path().join("c")).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let svg = std::fs::read_to_string(dir.path().join("c.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("epoch"));
        // Dots in the stem are kept (two runs differing after a dot get two files).
        let a = line_chart(&chart, &dir.path().join("lr-0.001_c1")).unwrap();
        let b = line_chart(&chart, &dir.path().join("lr-0.003_c1")).unwrap();
        assert_eq!(a, dir.path().join("lr-0.001_c1.png"));
        assert!(b.is_file() && dir.path().join("lr-0.003_c1.svg").is_file());
    }

    #[test]
    fn log_x_categorical_dashed_grid_and_histogram_render() {
        let dir = tempfile::tempdir().unwrap();
        let chart = LineChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y (%)".into(),
            series: vec![
                Series {
                    label: "a".into(),
                    points: vec![(0.0, 1.0), (1.0, 2.0)],
                    ..Series::default()
                },
                Series {
                    label: "ref".into(),
                    points: vec![(0.0, 1.5), (1.0, 1.5)],
                    dashed: true,
                    ..Series::default()
                },
            ],
            x_ticks: vec![(0.0, "off".into()), (1.0, "on".into())],
            ..LineChart::default()
        };
        assert!(line_chart(&chart, &dir.path().join("cat")).is_ok());
        let log = LineChart {
            series: vec![Series {
                label: "a".into(),
                points: vec![(0.0, 5.0), (0.01, 2.0), (1.0, 1.0)],
                ..Series::default()
            }],
            log_x: true,
            log_y: true,
            ..chart
        };
        assert!(line_chart(&log, &dir.path().join("log")).is_ok());
        // The x = 0 point cannot be drawn on the log axis: the figure says so.
        let svg = std::fs::read_to_string(dir.path().join("log.svg")).unwrap();
        assert!(
            svg.contains("1 point at x ≤ 0 not shown"),
            "no note of the hidden point"
        );
        let imgs = vec![vec![0.5f32; 784], vec![-1.0f32; 784], vec![0.0; 784]];
        let png = image_grid(
            &imgs,
            (28, 28),
            2,
            "fields",
            "note",
            &dir.path().join("g.png"),
        )
        .unwrap();
        assert_eq!(&std::fs::read(png).unwrap()[1..4], b"PNG");
        let h = histogram_steps(&[0.0, 0.5, 1.0, 1.0], 0.0, 1.0, 2);
        assert_eq!(h[1], (0.0, 25.0));
        assert_eq!(h[3], (0.5, 75.0));
        assert_eq!(diverging(0.0), RGBColor(247, 247, 247));
        assert_eq!(diverging(1.0), RGBColor(178, 24, 43));
    }
}
