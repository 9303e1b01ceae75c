//! Charts as PNG images, drawn with plotters' bitmap backend and text rendered by `ab_glyph`
//! from DejaVu Sans compiled into the binary (the `dejavu` crate), so no system font is read.
//!
//! - [`curves`]: a run's `curves.png` (training loss per step, eval metrics per epoch).
//! - [`compare`]: the charts of `student-trainer report` (runs on shared axes, accuracy
//!   against speed and size, the temperature sweep).
//! - here: the font, the panel drawer both use (axes, ticks, log scales, legend, labels).

pub mod compare;
pub mod curves;

use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub use curves::{draw_curves, run_title, write_curves};

/// The font family every chart uses (registered once from the embedded DejaVu Sans).
const FAMILY: &str = "sans-serif";

/// Errors drawing a chart.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The embedded font could not be loaded.
    #[error("the embedded DejaVu Sans font does not load")]
    Font,
    /// plotters failed to draw.
    #[error("drawing {chart}: {message}")]
    Draw {
        /// Which chart.
        chart: String,
        /// plotters' message.
        message: String,
    },
    /// The image could not be encoded or written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The PNG encoder failed.
    #[error("encoding {chart} as PNG: {source}")]
    Encode {
        /// Which chart.
        chart: String,
        /// The cause.
        #[source]
        source: png::EncodingError,
    },
}

/// Registers DejaVu Sans (regular and bold) with plotters, once per process.
fn fonts() -> Result<(), PlotError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    ok.then_some(()).ok_or(PlotError::Font)
}

/// A text style of `size` pixels.
fn text(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// A bold text style of `size` pixels.
fn bold(size: u32) -> TextStyle<'static> {
    (FAMILY, size, FontStyle::Bold).into_font().color(&BLACK)
}

/// Colours for series, distinguishable on white (Tableau 10, then darker variants).
pub(crate) const PALETTE: [RGBColor; 14] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(16, 60, 120),
    RGBColor(120, 20, 20),
    RGBColor(20, 90, 20),
    RGBColor(150, 70, 0),
];

/// Prints an axis tick value.
pub(crate) type Formatter = Arc<dyn Fn(f64) -> String + Send + Sync>;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mark {
    /// A line with a dot at each point.
    LineDots,
    /// A plain line (dense series).
    Line,
    /// A dashed line (baselines).
    Dashed,
    /// Crosses only (reference values, e.g. a paper's numbers).
    Crosses,
    /// Dots only (scatter).
    Dots,
}

/// One series of a panel.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Legend text (empty: not in the legend).
    pub label: String,
    /// Colour.
    pub color: RGBColor,
    /// Points (non-finite values are dropped).
    pub points: Vec<(f64, f64)>,
    /// How it is drawn.
    pub mark: Mark,
    /// Line width in pixels.
    pub width: u32,
}

impl Series {
    pub(crate) fn new(label: impl Into<String>, color: RGBColor, mark: Mark) -> Self {
        Self {
            label: label.into(),
            color,
            points: Vec::new(),
            mark,
            width: 2,
        }
    }
}

/// One axis: its range, whether it is logarithmic, and how ticks are printed.
#[derive(Clone)]
pub(crate) struct Axis {
    /// Axis title, with units.
    pub label: String,
    /// Range shown.
    pub range: Range<f64>,
    /// Logarithmic.
    pub log: bool,
    /// Tick formatter.
    pub fmt: Formatter,
    /// Approximate tick count.
    pub ticks: usize,
}

impl Axis {
    /// An axis fitted to `values`: logarithmic when they are positive and span 30x or more
    /// (and `allow_log`; narrower log axes get too few ticks to read), else linear (from 0 when `from_zero`), with some headroom.
    pub(crate) fn fit(
        label: impl Into<String>,
        values: impl IntoIterator<Item = f64>,
        allow_log: bool,
        from_zero: bool,
        fmt: fn(f64) -> String,
    ) -> Self {
        let v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (range, log) = if v.is_empty() || (hi - lo).abs() < 1e-12 && hi.abs() < 1e-12 {
            // Nothing, or all zeros (e.g. no eval errors): a unit axis rather than 0..1e-9.
            (0.0..1.0, false)
        } else if allow_log && lo > 0.0 && hi / lo >= 30.0 {
            (lo / 1.5..hi * 1.5, true)
        } else {
            let span = (hi - lo).abs().max(hi.abs() * 0.05).max(1e-9);
            let bottom = if from_zero && lo >= 0.0 {
                0.0
            } else {
                lo - 0.08 * span
            };
            (bottom..hi + 0.12 * span, false)
        };
        Self {
            label: label.into(),
            range,
            log,
            fmt: Arc::new(fmt),
            ticks: 8,
        }
    }

    /// An axis over epochs `1..=epochs` with whole-number ticks.
    pub(crate) fn epochs(epochs: usize) -> Self {
        let n = epochs.max(1) as f64;
        Self {
            label: "epoch".into(),
            range: 0.5..n + 0.5,
            log: false,
            fmt: Arc::new(fmt_int),
            ticks: epochs.clamp(1, 12),
        }
    }
}

/// A categorical x axis: one evenly spaced column per label, at 0, 1, ..., shown from half a
/// column before the first to half a column after the last.
pub(crate) fn columns_axis(label: String, labels: Vec<String>) -> Axis {
    let ticks = labels.len();
    Axis {
        label,
        range: -0.5..ticks as f64 - 0.5,
        log: false,
        fmt: Arc::new(move |v: f64| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        }),
        ticks,
    }
}

/// Whole numbers (ticks between them print nothing).
pub(crate) fn fmt_int(v: f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}

/// Compact numbers: 0.0012, 0.35, 12, 1.2k, 3.4M.
pub(crate) fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        trim(format!("{:.2}", v / 1e6)) + "M"
    } else if a >= 1e4 {
        trim(format!("{:.1}", v / 1e3)) + "k"
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else {
        let digits = (-a.log10()).ceil() as usize + 1;
        trim(format!("{v:.digits$}"))
    }
}

/// Percentages: `2.5%`.
pub(crate) fn fmt_pct(v: f64) -> String {
    fmt_num(v) + "%"
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A panel: title, axes, series, value labels at points, and a note when there is no data.
#[derive(Clone)]
pub(crate) struct Panel {
    /// Title over the panel.
    pub title: String,
    /// Horizontal axis.
    pub x: Axis,
    /// Vertical axis.
    pub y: Axis,
    /// The series, drawn in order.
    pub series: Vec<Series>,
    /// Text placed at points: (x, y, text, colour).
    pub notes: Vec<(f64, f64, String, RGBColor)>,
    /// Shown instead of the series when there are none.
    pub empty: String,
    /// Legend corner.
    pub legend: SeriesLabelPosition,
}

/// Draws `panel` into `area`: a log or linear axis pair, chosen at run time.
pub(crate) fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    panel: &Panel,
) -> Result<(), PlotError> {
    let fail = |e: &dyn std::fmt::Display| PlotError::Draw {
        chart: panel.title.clone(),
        message: e.to_string(),
    };
    let (x, y) = (panel.x.range.clone(), panel.y.range.clone());
    match (panel.x.log, panel.y.log) {
        (false, false) => on_axes(area, panel, x, y).map_err(|e| fail(&e)),
        (false, true) => on_axes(area, panel, x, y.log_scale()).map_err(|e| fail(&e)),
        (true, false) => on_axes(area, panel, x.log_scale(), y).map_err(|e| fail(&e)),
        (true, true) => on_axes(area, panel, x.log_scale(), y.log_scale()).map_err(|e| fail(&e)),
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn on_axes<X, Y>(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    panel: &Panel,
    x: X,
    y: Y,
) -> DrawResult
where
    X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, bold(19))
        .margin(14)
        .x_label_area_size(52)
        .y_label_area_size(78)
        .build_cartesian_2d(x, y)?;
    let xf = panel.x.fmt.clone();
    let yf = panel.y.fmt.clone();
    chart
        .configure_mesh()
        .x_desc(panel.x.label.as_str())
        .y_desc(panel.y.label.as_str())
        .x_labels(panel.x.ticks)
        .y_labels(panel.y.ticks)
        .x_label_formatter(&|v| xf(*v))
        .y_label_formatter(&|v| yf(*v))
        .label_style(text(14))
        .axis_desc_style(text(16))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    if panel.series.iter().all(|s| s.points.is_empty()) {
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(
            panel.empty.clone(),
            (w as i32 / 2, h as i32 / 2),
            text(16)
                .color(&RGBColor(110, 110, 110))
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        return Ok(());
    }
    let mut legend = false;
    for s in &panel.series {
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        let c = s.color;
        let style = c.stroke_width(s.width);
        if s.mark == Mark::LineDots {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        }
        let anno = match s.mark {
            Mark::Line | Mark::LineDots => {
                chart.draw_series(LineSeries::new(pts.clone(), style))?
            }
            Mark::Dashed => chart.draw_series(DashedLineSeries::new(pts.clone(), 8, 6, style))?,
            Mark::Crosses => chart.draw_series(
                pts.iter()
                    .map(|&p| Cross::new(p, 7, c.stroke_width(3)).into_dyn()),
            )?,
            Mark::Dots => chart.draw_series(
                pts.iter()
                    .map(|&p| Circle::new(p, 6, c.filled()).into_dyn()),
            )?,
        };
        if !s.label.is_empty() {
            legend = true;
            let w = s.width;
            anno.label(s.label.clone())
                .legend(move |(x, y)| match s.mark {
                    Mark::Crosses => Cross::new((x + 10, y), 6, c.stroke_width(3)).into_dyn(),
                    Mark::Dots => Circle::new((x + 10, y), 5, c.filled()).into_dyn(),
                    _ => PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(w + 1))
                        .into_dyn(),
                });
        }
    }
    for (x, y, t, c) in &panel.notes {
        chart.draw_series(std::iter::once(
            EmptyElement::at((*x, *y)) + Text::new(t.clone(), (7, -18), text(13).color(c)),
        ))?;
    }
    if legend {
        chart
            .configure_series_labels()
            .position(panel.legend.clone())
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(170, 170, 170))
            .label_font(text(14))
            .margin(10)
            .draw()?;
    }
    Ok(())
}

/// Draws a figure of `size` pixels: white, a bold title line, and `body` below it.
pub(crate) fn figure(
    chart: &str,
    size: (u32, u32),
    title: &str,
    body: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), PlotError>,
) -> Result<Vec<u8>, PlotError> {
    fonts()?;
    let fail = |e: &dyn std::fmt::Display| PlotError::Draw {
        chart: chart.to_string(),
        message: e.to_string(),
    };
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let (top, rest) = root.split_vertically(44);
        top.draw(&Text::new(
            title.to_string(),
            (size.0 as i32 / 2, 24),
            bold(22).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(|e| fail(&e))?;
        body(&rest)?;
        root.present().map_err(|e| fail(&e))?;
    }
    encode_png(chart, size, &rgb)
}

fn encode_png(chart: &str, (w, h): (u32, u32), rgb: &[u8]) -> Result<Vec<u8>, PlotError> {
    let enc = |source| PlotError::Encode {
        chart: chart.to_string(),
        source,
    };
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, w, h);
    e.set_color(png::ColorType::Rgb);
    e.set_depth(png::BitDepth::Eight);
    e.set_compression(png::Compression::Best);
    e.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    let mut writer = e.write_header().map_err(enc)?;
    writer.write_image_data(rgb).map_err(enc)?;
    writer.finish().map_err(enc)?;
    Ok(out)
}

/// Writes PNG bytes to `path`.
pub fn write_png(path: &Path, png: &[u8]) -> Result<(), PlotError> {
    std::fs::write(path, png).map_err(|source| PlotError::Write {
        path: path.display().to_string(),
        source,
    })
}
