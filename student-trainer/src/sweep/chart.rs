//! `sweep.png`: mean test errors against the first `--grid` key (one evenly spaced column per
//! value tried), one line per setting of the other keys with ± std bars, and the scratch
//! baselines dashed: a flat line when the first key addresses `[[loss]]` (scratch does not
//! have it), else a line over its values.

use plotters::prelude::{SeriesLabelPosition, BLACK};
use plotters::style::RGBColor;

use super::plan::Grid;
use super::table::Row;
use crate::plot::{draw_panel, figure, fmt_num, Axis, Mark, Panel, PlotError, Series, PALETTE};

const GREYS: [RGBColor; 4] = [
    RGBColor(60, 60, 60),
    RGBColor(120, 120, 120),
    RGBColor(90, 90, 90),
    RGBColor(150, 150, 150),
];

/// A legend's settings and the rows on its line, at their x columns.
type Line<'a> = (Vec<String>, Vec<(f64, &'a Row)>);

/// Adds ± std bars of `rows` (at their x columns) to `series`.
fn bars(series: &mut Vec<Series>, color: RGBColor, pts: &[(f64, &Row)]) {
    for (x, r) in pts {
        if r.errors.n > 1 && r.errors.std > 0.0 {
            let mut b = Series::new("", color, Mark::Line);
            b.width = 1;
            b.points = vec![
                (*x, r.errors.mean - r.errors.std),
                (*x, r.errors.mean + r.errors.std),
            ];
            series.push(b);
        }
    }
}

/// The chart as PNG; `None` when no grid point has finished.
pub fn draw(title: &str, grid: &Grid, rows: &[Row]) -> Result<Option<Vec<u8>>, PlotError> {
    let Some(first) = grid.keys.first() else {
        return Ok(None);
    };
    if !rows.iter().any(|r| r.point.is_some()) {
        return Ok(None);
    }
    let labels: Vec<String> = first.values.iter().map(|v| v.to_string()).collect();
    let (x0, x1) = (-0.5, labels.len() as f64 - 0.5);
    let mut series = Vec::new();
    let mut notes = Vec::new();

    // One line per setting of the other keys.
    let mut lines: Vec<Line> = Vec::new();
    for r in rows.iter().filter(|r| r.point.is_some()) {
        let Some(p) = r.point else { continue };
        let c = grid.decode(p);
        let others: Vec<String> = grid
            .keys
            .iter()
            .zip(&r.values)
            .skip(1)
            .map(|(k, v)| format!("{} = {v}", k.path.text))
            .collect();
        let x = c[0] as f64;
        match lines.iter_mut().find(|(o, _)| *o == others) {
            Some((_, pts)) => pts.push((x, r)),
            None => lines.push((others, vec![(x, r)])),
        }
    }
    for (i, (others, pts)) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let label = if others.is_empty() {
            "distilled".to_string()
        } else {
            others.join(", ")
        };
        let mut s = Series::new(label, color, Mark::LineDots);
        s.points = pts.iter().map(|(x, r)| (*x, r.errors.mean)).collect();
        series.push(s);
        bars(&mut series, color, pts);
        for (x, r) in pts {
            notes.push((*x, r.errors.mean, format!("{:.0}", r.errors.mean), color));
        }
    }

    // Scratch baselines.
    let scratch: Vec<&Row> = rows.iter().filter(|r| r.point.is_none()).collect();
    if first.path.is_loss() {
        for (i, r) in scratch.iter().enumerate() {
            let others: Vec<String> = grid
                .keys
                .iter()
                .zip(&r.values)
                .filter(|(k, _)| !k.path.is_loss())
                .map(|(k, v)| format!("{} = {v}", k.path.text))
                .collect();
            let what = if others.is_empty() {
                String::new()
            } else {
                format!(", {}", others.join(", "))
            };
            let mut s = Series::new(
                format!("from scratch{what} ({:.1})", r.errors.mean),
                GREYS[i % GREYS.len()],
                Mark::Dashed,
            );
            s.points = vec![(x0, r.errors.mean), (x1, r.errors.mean)];
            series.push(s);
        }
    } else {
        let mut lines: Vec<Line> = Vec::new();
        for r in &scratch {
            let Some(&x) = r.group.first() else { continue };
            let others: Vec<String> = grid
                .keys
                .iter()
                .zip(&r.values)
                .skip(1)
                .filter(|(k, _)| !k.path.is_loss())
                .map(|(k, v)| format!("{} = {v}", k.path.text))
                .collect();
            match lines.iter_mut().find(|(o, _)| *o == others) {
                Some((_, pts)) => pts.push((x as f64, r)),
                None => lines.push((others, vec![(x as f64, r)])),
            }
        }
        for (i, (others, pts)) in lines.iter().enumerate() {
            let color = GREYS[i % GREYS.len()];
            let what = if others.is_empty() {
                String::new()
            } else {
                format!(", {}", others.join(", "))
            };
            let mut s = Series::new(format!("from scratch{what}"), color, Mark::Dashed);
            s.points = pts.iter().map(|(x, r)| (*x, r.errors.mean)).collect();
            series.push(s);
            bars(&mut series, color, pts);
            for (x, r) in pts {
                notes.push((*x, r.errors.mean, format!("{:.0}", r.errors.mean), BLACK));
            }
        }
    }

    let y = Axis::fit(
        "test errors (mean over seeds, bars ± std)",
        series.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
        false,
        false,
        fmt_num,
    );
    let key = first.path.text.clone();
    let n = labels.len();
    let png = figure("sweep.png", (1100, 680), title, |area| {
        draw_panel(
            area,
            &Panel {
                title: format!("Test errors against {key}"),
                x: Axis {
                    label: format!("{key} (one column per value tried)"),
                    range: x0..x1,
                    log: false,
                    fmt: std::sync::Arc::new(move |v: f64| {
                        let i = v.round();
                        if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                            labels[i as usize].clone()
                        } else {
                            String::new()
                        }
                    }),
                    ticks: n,
                },
                y,
                series,
                notes,
                empty: "no finished runs".into(),
                legend: SeriesLabelPosition::UpperRight,
            },
        )
    })?;
    Ok(Some(png))
}
