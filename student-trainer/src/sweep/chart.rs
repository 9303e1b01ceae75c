//! `sweep.png`: mean test errors against the first `--grid` key (one evenly spaced column per
//! value tried), one line per setting of the other keys with ± std bars, and the scratch
//! baselines dashed: a flat line when the first key addresses `[[loss]]` (scratch does not
//! have it), else a line over its values.

use plotters::prelude::{SeriesLabelPosition, BLACK};
use plotters::style::RGBColor;

use super::plan::Grid;
use super::table::Row;
use crate::plot::{
    columns_axis, draw_panel, figure, fmt_num, Axis, Mark, Panel, PlotError, Series, PALETTE,
};

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

/// `key = value` of each grid key of `r` that `keep` admits (with the key's index).
fn settings(grid: &Grid, r: &Row, keep: impl Fn(usize, &Grid) -> bool) -> Vec<String> {
    grid.keys
        .iter()
        .zip(&r.values)
        .enumerate()
        .filter(|(i, _)| keep(*i, grid))
        .map(|(_, (k, v))| format!("{} = {v}", k.path.text))
        .collect()
}

/// Adds `(settings, x, row)` to the line of its settings, lines in order of first appearance.
fn add_to_line<'a>(lines: &mut Vec<Line<'a>>, others: Vec<String>, x: f64, r: &'a Row) {
    match lines.iter_mut().find(|(o, _)| *o == others) {
        Some((_, pts)) => pts.push((x, r)),
        None => lines.push((others, vec![(x, r)])),
    }
}

/// The distilled lines: one per setting of the keys after the first, x = the first key's value.
fn distilled_lines<'a>(grid: &Grid, rows: &'a [Row]) -> Vec<Line<'a>> {
    let mut lines: Vec<Line> = Vec::new();
    for r in rows {
        let Some(p) = r.point else { continue };
        let x = grid.decode(p)[0] as f64;
        add_to_line(&mut lines, settings(grid, r, |i, _| i > 0), x, r);
    }
    lines
}

/// The scratch lines over the first key's values (it is not a loss key): one per setting of
/// the other non-loss keys.
fn scratch_lines<'a>(grid: &Grid, scratch: &[&'a Row]) -> Vec<Line<'a>> {
    let mut lines: Vec<Line> = Vec::new();
    for r in scratch {
        let Some(&x) = r.group.first() else { continue };
        let others = settings(grid, r, |i, g| i > 0 && !g.keys[i].path.is_loss());
        add_to_line(&mut lines, others, x as f64, r);
    }
    lines
}

/// `, a = 1, b = 2` (empty without settings), for a scratch baseline's legend.
fn suffix(others: &[String]) -> String {
    if others.is_empty() {
        String::new()
    } else {
        format!(", {}", others.join(", "))
    }
}

/// How a family of lines is drawn.
struct LineStyle {
    colors: &'static [RGBColor],
    mark: Mark,
    /// The colour of the value notes; `None`: the line's own.
    note_color: Option<RGBColor>,
    /// The legend of a line from its settings.
    legend: fn(&[String]) -> String,
}

/// Adds each line (with its ± std bars) to `series` and a note of its mean at each point.
fn add_lines(
    series: &mut Vec<Series>,
    notes: &mut Vec<(f64, f64, String, RGBColor)>,
    lines: &[Line],
    style: &LineStyle,
) {
    for (i, (others, pts)) in lines.iter().enumerate() {
        let color = style.colors[i % style.colors.len()];
        let mut s = Series::new((style.legend)(others), color, style.mark);
        s.points = pts.iter().map(|(x, r)| (*x, r.errors.mean)).collect();
        series.push(s);
        bars(series, color, pts);
        for (x, r) in pts {
            let note = style.note_color.unwrap_or(color);
            notes.push((*x, r.errors.mean, format!("{:.0}", r.errors.mean), note));
        }
    }
}

/// Flat dashed lines across the chart, one per scratch baseline (the first key addresses
/// `[[loss]]`, which scratch runs do not have).
fn flat_scratch(series: &mut Vec<Series>, grid: &Grid, scratch: &[&Row], xs: (f64, f64)) {
    for (i, r) in scratch.iter().enumerate() {
        let others = settings(grid, r, |i, g| !g.keys[i].path.is_loss());
        let mut s = Series::new(
            format!("from scratch{} ({:.1})", suffix(&others), r.errors.mean),
            GREYS[i % GREYS.len()],
            Mark::Dashed,
        );
        s.points = vec![(xs.0, r.errors.mean), (xs.1, r.errors.mean)];
        series.push(s);
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
    let distilled = LineStyle {
        colors: &PALETTE,
        mark: Mark::LineDots,
        note_color: None,
        legend: |others| {
            if others.is_empty() {
                "distilled".to_string()
            } else {
                others.join(", ")
            }
        },
    };
    add_lines(
        &mut series,
        &mut notes,
        &distilled_lines(grid, rows),
        &distilled,
    );
    let scratch: Vec<&Row> = rows.iter().filter(|r| r.point.is_none()).collect();
    if first.path.is_loss() {
        flat_scratch(&mut series, grid, &scratch, (x0, x1));
    } else {
        let style = LineStyle {
            colors: &GREYS,
            mark: Mark::Dashed,
            note_color: Some(BLACK),
            legend: |others| format!("from scratch{}", suffix(others)),
        };
        add_lines(
            &mut series,
            &mut notes,
            &scratch_lines(grid, &scratch),
            &style,
        );
    }
    let y = Axis::fit(
        "test errors (mean over seeds, bars ± std)",
        series.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
        false,
        false,
        fmt_num,
    );
    let key = first.path.text.clone();
    let x = columns_axis(format!("{key} (one column per value tried)"), labels);
    let png = figure("sweep.png", (1100, 680), title, |area| {
        draw_panel(
            area,
            &Panel {
                title: format!("Test errors against {key}"),
                x,
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
