//! Figures, drawn from result files only, so they can be redrawn without retraining.
//!
//! Rendering uses plotters with an embedded font (DejaVu Sans via ab_glyph), so PNGs
//! render on a machine without any system font library.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::train::EpochRecord;

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
    /// Logarithmic y axis.
    pub log_y: bool,
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
    for x in xs.filter(|v| v.is_finite()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
    }
    let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
    for y in ys.filter(|v| v.is_finite() && (!chart.log_y || *v > 0.0)) {
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if !y0.is_finite() {
        (y0, y1) = (if chart.log_y { 0.1 } else { 0.0 }, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
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

/// A tick label: integers without decimals, otherwise up to three significant digits.
fn tick(v: f64) -> String {
    if v == v.round() && v.abs() < 1e6 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
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
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(&chart.title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64);
    macro_rules! body {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_labels(12)
                .y_labels(14)
                .x_label_formatter(&|v: &f64| tick(*v))
                .y_label_formatter(&|v: &f64| tick(*v))
                .x_desc(chart.x_label.as_str())
                .y_desc(chart.y_label.as_str())
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 16))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, s) in chart.series.iter().enumerate() {
                let c = palette(i);
                if !s.band.is_empty() {
                    let mut poly: Vec<(f64, f64)> = s.band.iter().map(|b| (b.0, b.2)).collect();
                    poly.extend(s.band.iter().rev().map(|b| (b.0, b.1)));
                    ctx.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18))))
                        .map_err(|e| e.to_string())?;
                }
                ctx.draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(s.label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
                    });
                ctx.draw_series(s.points.iter().map(|p| Circle::new(*p, 3, c.filled())))
                    .map_err(|e| e.to_string())?;
            }
            if chart.series.iter().any(|s| !s.label.is_empty()) {
                ctx.configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(180, 180, 180))
                    .label_font(("sans-serif", 14))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
        }};
    }
    if chart.log_y {
        body!(
            builder
                .build_cartesian_2d(
                    x0..x1,
                    (y0..y1).log_scale().with_key_points(log_ticks(y0, y1))
                )
                .map_err(|e| e.to_string())?
        );
    } else {
        body!(
            builder
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| e.to_string())?
        );
    }
    root.present().map_err(|e| e.to_string())
}

/// Draws `chart` to `<stem>.png` (1000×620) and `<stem>.svg`; returns the PNG path.
pub fn line_chart(chart: &LineChart, stem: &Path) -> Result<PathBuf> {
    register_fonts();
    if let Some(dir) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::fsutil::create_dir(dir)?;
    }
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
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
    let mut rd = csv::Reader::from_path(path)
        .map_err(|e| Error::artifact(path, format!("cannot read: {e}")))?;
    rd.deserialize()
        .collect::<std::result::Result<Vec<EpochRecord>, _>>()
        .map_err(|e| Error::artifact(path, format!("not an epochs.csv file: {e}")))
}

/// Validation error (%) per epoch of several runs, one line each; `runs` holds
/// (legend label, run directory).
pub fn training_curves(runs: &[(String, PathBuf)], title: &str, stem: &Path) -> Result<PathBuf> {
    let mut series = Vec::new();
    for (label, dir) in runs {
        let rows = read_epochs(&dir.join("epochs.csv"))?;
        series.push(Series {
            label: label.clone(),
            points: rows
                .iter()
                .map(|r| (r.epoch as f64, 100.0 * r.valid_error))
                .collect(),
            band: Vec::new(),
        });
    }
    line_chart(
        &LineChart {
            title: title.to_string(),
            x_label: "epoch".into(),
            y_label: "validation error (%)".into(),
            series,
            log_y: true,
        },
        stem,
    )
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
            }],
            log_y: true,
        };
        let png = line_chart(&chart, &dir.path().join("c")).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let svg = std::fs::read_to_string(dir.path().join("c.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("epoch"));
    }
}
