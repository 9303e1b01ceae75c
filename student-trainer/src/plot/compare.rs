//! The charts of `student-trainer report`: the runs' eval curves on shared axes, test errors
//! against ONNX Runtime speed and parameter count, and (when the runs hold one) a temperature
//! sweep of test errors against the KD temperature per student size.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::curves::value_notes;
use super::{
    bold, columns_axis, draw_panel, figure, fmt_num, fmt_pct, text, Axis, Mark, Panel, PlotError,
    Series, PALETTE,
};
use crate::metrics::EpochMetrics;

/// What the comparison charts need of one report row.
#[derive(Debug, Clone)]
pub struct RunPoint<'a> {
    /// Display name.
    pub name: &'a str,
    /// The run's per-epoch metrics.
    pub history: &'a [EpochMetrics],
    /// Misclassified rows of the report's eval set.
    pub errors: usize,
    /// Rows of the report's eval set.
    pub rows: usize,
    /// ONNX Runtime rows/s on the eval set (none when only safetensors was scored).
    pub rows_per_s: Option<f64>,
    /// Trainable parameters.
    pub params: usize,
    /// The student's architecture, e.g. `mlp 800-800` (sweep series are grouped by it).
    pub student: String,
    /// KD temperature when the run is plain KD (kd, optionally with hard-label ce).
    pub kd_temperature: Option<f64>,
    /// Whether the run trained on hard labels only.
    pub scratch: bool,
    /// A reference test-error count for this run (e.g. the paper's).
    pub reference: Option<f64>,
}

fn color_of(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Eval error and disagreement with the teacher per epoch, every run on the same axes.
pub fn draw_epoch_comparison(title: &str, runs: &[RunPoint]) -> Result<Vec<u8>, PlotError> {
    let epochs = runs
        .iter()
        .filter_map(|r| r.history.last().map(|m| m.epoch))
        .max()
        .unwrap_or(1);
    let series = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Vec<Series> {
        runs.iter()
            .enumerate()
            .map(|(i, r)| {
                let mut s = Series::new(r.name, color_of(i), Mark::LineDots);
                s.points = r
                    .history
                    .iter()
                    .filter_map(|m| f(m).map(|v| (m.epoch as f64, v)))
                    .collect();
                s
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let err = series(&|m| m.eval.as_ref().map(|e| 100.0 * (1.0 - e.accuracy)));
    let dis = series(&|m| {
        m.eval
            .as_ref()
            .and_then(|e| e.agreement)
            .map(|a| 100.0 * (1.0 - a))
    });
    let panel = |name: &str, s: Vec<Series>, empty: &str| {
        let mut y = Axis::fit(
            "% of eval rows",
            s.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
            true,
            true,
            fmt_pct,
        );
        if y.log {
            y.label = "% of eval rows (log scale)".into();
        }
        let few = s.iter().all(|s| s.points.len() <= 2);
        Panel {
            title: name.into(),
            x: Axis::epochs(epochs),
            y,
            notes: if few {
                value_notes(&s.iter().collect::<Vec<_>>(), fmt_pct)
            } else {
                Vec::new()
            },
            series: s,
            empty: empty.into(),
            legend: SeriesLabelPosition::UpperRight,
        }
    };
    let height = 620 + 22 * runs.len().saturating_sub(6) as u32;
    figure("compare-epochs.png", (1300, height), title, |area| {
        let (left, right) = area.split_horizontally(650);
        draw_panel(
            &left,
            &panel("Held-out error per epoch", err, "no run has an eval set"),
        )?;
        draw_panel(
            &right,
            &panel(
                "Disagreement with the teacher per epoch",
                dis,
                "no run was evaluated against teacher logits (data.eval_teacher)",
            ),
        )
    })
}

/// Groups of runs by parameter count, largest first: (label, colour, members).
fn size_groups(runs: &[RunPoint]) -> Vec<(String, RGBColor, Vec<usize>)> {
    let mut sizes: Vec<usize> = runs.iter().map(|r| r.params).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes.dedup();
    sizes
        .iter()
        .enumerate()
        .map(|(g, &p)| {
            let members = (0..runs.len()).filter(|&i| runs[i].params == p).collect();
            (
                format!("{} parameters", fmt_num(p as f64)),
                color_of(g),
                members,
            )
        })
        .collect()
}

/// Test errors per run as bars (annotated with size and speed), beside a scatter of test
/// errors against ONNX Runtime rows/s, coloured by parameter count.
/// `reference` names where `RunPoint::reference` numbers come from (legend text).
pub fn draw_tradeoff(
    title: &str,
    runs: &[RunPoint],
    reference: &str,
) -> Result<Vec<u8>, PlotError> {
    let groups = size_groups(runs);
    let color = |i: usize| {
        groups
            .iter()
            .find(|g| g.2.contains(&i))
            .map_or(BLACK, |g| g.1)
    };
    let height = (180 + 46 * runs.len() as u32).max(560);
    figure("compare-tradeoff.png", (1500, height), title, |area| {
        let (left, right) = area.split_horizontally(900);
        bars(&left, runs, &color, reference)?;
        let mut series = Vec::new();
        let mut notes = Vec::new();
        for (label, c, members) in &groups {
            let mut s = Series::new(label.clone(), *c, Mark::Dots);
            for &i in members {
                if let Some(v) = runs[i].rows_per_s {
                    s.points.push((v, runs[i].errors as f64));
                    notes.push((v, runs[i].errors as f64, format!("#{}", i + 1), *c));
                }
            }
            series.push(s);
        }
        let xs: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        let mut x = Axis::fit(
            "ONNX Runtime rows/s on this machine",
            xs,
            true,
            false,
            fmt_num,
        );
        if x.log {
            x.label.push_str(" (log scale)");
        }
        let y = Axis::fit(
            "test errors",
            series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .chain([0.0]),
            false,
            true,
            fmt_num,
        );
        draw_panel(
            &right,
            &Panel {
                title: "Test errors against inference speed".into(),
                x,
                y,
                series: series
                    .into_iter()
                    .filter(|s| !s.points.is_empty())
                    .collect(),
                notes,
                empty: "no run was scored through ONNX Runtime".into(),
                // Fast, small students tend to sit high on the right, so the legend goes low.
                legend: SeriesLabelPosition::LowerRight,
            },
        )
    })
}

fn bars(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    runs: &[RunPoint],
    color: &dyn Fn(usize) -> RGBColor,
    reference: &str,
) -> Result<(), PlotError> {
    let fail = |e: &dyn std::fmt::Display| PlotError::Draw {
        chart: "test error bars".into(),
        message: e.to_string(),
    };
    let n = runs.len().max(1) as f64;
    let max = runs
        .iter()
        .map(|r| (r.errors as f64).max(r.reference.unwrap_or(0.0)))
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("Test errors of each run", bold(19))
        .margin(14)
        .x_label_area_size(52)
        .y_label_area_size(16)
        .build_cartesian_2d(0.0..max * 2.4, 0.0..n)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("test errors (misclassified eval rows)")
        .x_label_formatter(&|v| fmt_num(*v))
        .label_style(text(14))
        .axis_desc_style(text(16))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(|e| fail(&e))?;
    let mut referenced = false;
    for (i, r) in runs.iter().enumerate() {
        // The first run on top.
        let top = n - i as f64;
        let c = color(i);
        let e = r.errors as f64;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, top - 0.18), (e, top - 0.82)],
                c.mix(0.85).filled(),
            )))
            .map_err(|e| fail(&e))?;
        let speed = r
            .rows_per_s
            .map_or("not timed".into(), |v| format!("{} rows/s", fmt_num(v)));
        let label = format!(
            "#{} {}: {} ({}), {} params, {speed}",
            i + 1,
            short(r.name, 44),
            r.errors,
            fmt_pct(100.0 * r.errors as f64 / r.rows.max(1) as f64),
            fmt_num(r.params as f64),
        );
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((e, top - 0.5))
                    + Text::new(
                        label,
                        (8, 0),
                        text(14).pos(Pos::new(HPos::Left, VPos::Center)),
                    ),
            ))
            .map_err(|e| fail(&e))?;
        if let Some(v) = r.reference {
            let s = chart
                .draw_series(std::iter::once(Cross::new(
                    (v, top - 0.5),
                    8,
                    BLACK.stroke_width(3),
                )))
                .map_err(|e| fail(&e))?;
            if !referenced {
                referenced = true;
                s.label(reference.to_string())
                    .legend(|(x, y)| Cross::new((x + 10, y), 6, BLACK.stroke_width(3)));
            }
        }
    }
    if referenced {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(170, 170, 170))
            .label_font(text(14))
            .draw()
            .map_err(|e| fail(&e))?;
    }
    Ok(())
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}

/// The architectures distilled at two or more temperatures, in order of first appearance.
fn swept_archs<'a>(runs: &'a [RunPoint]) -> Vec<&'a str> {
    let mut archs: Vec<&str> = Vec::new();
    for r in runs.iter().filter(|r| r.kd_temperature.is_some()) {
        if !archs.contains(&r.student.as_str()) {
            archs.push(&r.student);
        }
    }
    archs.retain(|a| {
        runs.iter()
            .filter(|r| r.student == *a && r.kd_temperature.is_some())
            .count()
            >= 2
    });
    archs
}

/// The chart being built: its series, value notes and reference crosses.
struct SweepChart<'a> {
    series: Vec<Series>,
    notes: Vec<(f64, f64, String, RGBColor)>,
    refs: Series,
    reference: &'a str,
    /// The temperatures tried, sorted: the x columns.
    temps: Vec<f64>,
}

impl SweepChart<'_> {
    /// The x column of temperature `t`.
    fn col(&self, t: f64) -> f64 {
        self.temps.iter().position(|&v| v == t).unwrap_or(0) as f64
    }

    /// The x range: half a column beyond the first and the last.
    fn xs(&self) -> (f64, f64) {
        (-0.5, self.temps.len() as f64 - 0.5)
    }

    /// `arch`'s distilled runs as one line over the temperatures, with their references.
    fn distilled(&mut self, runs: &[RunPoint], arch: &str, c: RGBColor) {
        let mut kd: Vec<&RunPoint> = runs
            .iter()
            .filter(|r| r.student == arch && r.kd_temperature.is_some())
            .collect();
        kd.sort_by(|a, b| {
            a.kd_temperature
                .partial_cmp(&b.kd_temperature)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut s = Series::new(format!("{arch} distilled"), c, Mark::LineDots);
        for r in &kd {
            let t = self.col(r.kd_temperature.unwrap_or(1.0));
            s.points.push((t, r.errors as f64));
            self.notes
                .push((t, r.errors as f64, r.errors.to_string(), c));
            if let Some(v) = r.reference {
                self.refs.points.push((t, v));
                self.notes.push((t, v, format!("{v:.0}"), BLACK));
            }
        }
        self.series.push(s);
    }

    /// `arch`'s scratch runs as flat dashed lines, each with its reference's lighter one.
    fn scratch(&mut self, runs: &[RunPoint], arch: &str, c: RGBColor) {
        let (x0, x1) = self.xs();
        for r in runs.iter().filter(|r| r.student == arch && r.scratch) {
            let e = r.errors as f64;
            let mut b = Series::new(
                format!("{arch} from scratch ({})", r.errors),
                c,
                Mark::Dashed,
            );
            b.points = vec![(x0, e), (x1, e)];
            self.series.push(b);
            if let Some(v) = r.reference {
                let mut rb = Series::new(
                    format!("{arch} from scratch, {} ({v:.0})", self.reference),
                    lighten(c),
                    Mark::Dashed,
                );
                rb.width = 1;
                rb.points = vec![(x0, v), (x1, v)];
                self.series.push(rb);
            }
        }
    }
}

/// Test errors against KD temperature per student architecture, with each size's scratch run
/// as a dashed line and reference numbers as crosses; `None` when no architecture was
/// distilled at two or more temperatures.
pub fn draw_sweep(
    title: &str,
    runs: &[RunPoint],
    reference: &str,
) -> Result<Option<Vec<u8>>, PlotError> {
    let archs = swept_archs(runs);
    if archs.is_empty() {
        return Ok(None);
    }
    // One evenly spaced column per temperature tried (a log axis over 1..20 has too few
    // labelled ticks to read the values off).
    let mut temps: Vec<f64> = runs.iter().filter_map(|r| r.kd_temperature).collect();
    temps.sort_by(f64::total_cmp);
    temps.dedup();
    let mut chart = SweepChart {
        series: Vec::new(),
        notes: Vec::new(),
        refs: Series::new(reference, BLACK, Mark::Crosses),
        reference,
        temps,
    };
    for (g, arch) in archs.iter().enumerate() {
        let c = color_of(g);
        chart.distilled(runs, arch, c);
        chart.scratch(runs, arch, c);
    }
    let SweepChart {
        mut series,
        notes,
        refs,
        temps,
        ..
    } = chart;
    if !refs.points.is_empty() {
        series.push(refs);
    }
    let y = Axis::fit(
        "test errors",
        series.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
        false,
        false,
        fmt_num,
    );
    let labels: Vec<String> = temps
        .iter()
        .map(|t| format!("T = {}", fmt_num(*t)))
        .collect();
    let x = columns_axis(
        "KD temperature T (one column per value tried)".into(),
        labels,
    );
    let png = figure("compare-sweep.png", (1100, 680), title, |area| {
        draw_panel(
            area,
            &Panel {
                title: "Test errors against the KD temperature T".into(),
                x,
                y,
                series,
                notes,
                empty: String::new(),
                legend: SeriesLabelPosition::UpperLeft,
            },
        )
    })?;
    Ok(Some(png))
}

fn lighten(c: RGBColor) -> RGBColor {
    RGBColor(
        ((c.0 as u16 + 255) / 2) as u8,
        ((c.1 as u16 + 255) / 2) as u8,
        ((c.2 as u16 + 255) / 2) as u8,
    )
}
