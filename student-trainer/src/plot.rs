//! `curves.png`: training curves drawn with plotters' bitmap backend. The workspace builds
//! plotters without font support (no system font libraries), so the image carries no text:
//! left panel = mean training loss (blue) and eval cross-entropy (red) per epoch; right panel
//! = eval error rate (green) and teacher disagreement (orange), both from 0 at the bottom.
//! Grey horizontal lines mark quarters of each panel's range; the exact numbers are in
//! `metrics.jsonl`.

use std::path::Path;

use plotters::prelude::*;

use crate::metrics::EpochMetrics;

/// A drawing failure from plotters (its error type is generic over the backend).
pub type PlotError = Box<dyn std::error::Error + Send + Sync>;

type Series = (Vec<(f64, f64)>, RGBColor);

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    epochs: usize,
    series: &[Series],
) -> Result<(), PlotError> {
    let ymax = series
        .iter()
        .flat_map(|(s, _)| s.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.05;
    let xmax = epochs.max(2) as f64;
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .build_cartesian_2d(1.0..xmax, 0.0..ymax)?;
    for q in 0..=4 {
        let y = ymax * q as f64 / 4.0;
        chart.draw_series(LineSeries::new(
            vec![(1.0, y), (xmax, y)],
            RGBColor(215, 215, 215),
        ))?;
    }
    for (points, color) in series {
        let pts: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
        chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    Ok(())
}

/// Draws the curves of `history` into a PNG at `path`.
pub fn draw_curves(path: &Path, history: &[EpochMetrics]) -> Result<(), PlotError> {
    let root = BitMapBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let xs = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|m| f(m).map(|v| (m.epoch as f64, v)))
            .collect()
    };
    let epochs = history.last().map_or(1, |m| m.epoch);
    panel(
        &left,
        epochs,
        &[
            (xs(&|m| Some(m.train_loss)), BLUE),
            (xs(&|m| m.eval.as_ref().map(|e| e.ce)), RED),
        ],
    )?;
    panel(
        &right,
        epochs,
        &[
            (xs(&|m| m.eval.as_ref().map(|e| 1.0 - e.accuracy)), GREEN),
            (
                xs(&|m| m.eval.as_ref().and_then(|e| e.agreement).map(|a| 1.0 - a)),
                RGBColor(255, 140, 0),
            ),
        ],
    )?;
    Ok(root.present()?)
}
