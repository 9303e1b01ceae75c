//! A run's `curves.png`: on top the training loss per logged step window (`steps.jsonl`), the
//! weighted total and each term when there are several, on a log axis when it spans decades;
//! below, per epoch, the eval error and disagreement with the teacher (in % of eval rows),
//! and the eval cross-entropy, eval KD loss and mean training loss.

use std::path::Path;

use plotters::prelude::*;

use super::{
    draw_panel, figure, fmt_num, fmt_pct, write_png, Axis, Mark, Panel, PlotError, Series, PALETTE,
};
use crate::config::RunConfig;
use crate::metrics::steps::StepRecord;
use crate::metrics::EpochMetrics;
use trainer_core::model::StudentConfig;

/// Short description of a student architecture, e.g. `mlp 800-800` or `cnn 32-64 + 128`.
pub fn student_desc(s: &StudentConfig) -> String {
    let join = |v: &[usize]| {
        v.iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join("-")
    };
    match s {
        StudentConfig::Mlp { hidden, .. } if hidden.is_empty() => "linear".into(),
        StudentConfig::Mlp { hidden, .. } => format!("mlp {}", join(hidden)),
        StudentConfig::Cnn {
            channels, hidden, ..
        } => format!("cnn {} + {hidden}", join(channels)),
        StudentConfig::Static(c) => format!("static {}x{}", c.vocab, c.dim),
        StudentConfig::Transformer(c) => {
            format!("transformer {}x{} ({} heads)", c.layers, c.hidden, c.heads)
        }
    }
}

/// The title of a run's charts: folder name, student, size and epochs.
pub fn run_title(run_dir: &Path, cfg: &RunConfig, params: usize) -> String {
    let name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| run_dir.display().to_string());
    let e = cfg.train.epochs;
    format!(
        "run \"{name}\": {}, {} parameters, {e} epoch{}",
        student_desc(&cfg.student),
        fmt_num(params as f64),
        if e == 1 { "" } else { "s" }
    )
}

/// Draws `curves.png` for a run and returns the PNG bytes.
pub fn draw_curves(
    title: &str,
    history: &[EpochMetrics],
    steps: &[StepRecord],
) -> Result<Vec<u8>, PlotError> {
    let epochs = history.last().map_or(1, |m| m.epoch);
    let few = history.len() <= 4;
    figure("curves.png", (1300, 900), title, |area| {
        let (top, bottom) = area.split_vertically(430);
        let (left, right) = bottom.split_horizontally(650);
        draw_panel(&top, &loss_panel(history, steps))?;
        draw_panel(&left, &error_panel(history, epochs, few))?;
        draw_panel(&right, &eval_loss_panel(history, epochs, few))
    })
}

/// Draws `curves.png` into `path`.
pub fn write_curves(
    path: &Path,
    title: &str,
    history: &[EpochMetrics],
    steps: &[StepRecord],
) -> Result<(), PlotError> {
    write_png(path, &draw_curves(title, history, steps)?)
}

fn loss_panel(history: &[EpochMetrics], steps: &[StepRecord]) -> Panel {
    let mut series = Vec::new();
    let window = steps.first().map_or(0, |s| s.steps);
    let (title, x_label) = if steps.is_empty() {
        // A run from before steps.jsonl: per-epoch means are all there is.
        let mut s = Series::new("training loss (epoch mean)", BLACK, Mark::LineDots);
        s.points = history
            .iter()
            .map(|m| (m.steps as f64, m.train_loss))
            .collect();
        series.push(s);
        ("Training loss per epoch", "optimizer steps")
    } else {
        let terms: Vec<String> = steps[0].terms.keys().cloned().collect();
        let mut total = Series::new(
            if terms.len() > 1 {
                "total (weighted sum)"
            } else {
                "training loss"
            },
            BLACK,
            Mark::Line,
        );
        total.points = steps.iter().map(|s| (s.step as f64, s.loss)).collect();
        total.width = 2;
        series.push(total);
        if terms.len() > 1 {
            for (i, t) in terms.iter().enumerate() {
                let mut s = Series::new(
                    format!("{t} (unweighted)"),
                    PALETTE[i % PALETTE.len()],
                    Mark::Line,
                );
                s.width = 1;
                s.points = steps
                    .iter()
                    .filter_map(|r| r.terms.get(t).map(|v| (r.step as f64, *v)))
                    .collect();
                series.push(s);
            }
        }
        ("Training loss per step", "optimizer step")
    };
    let xmax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| *v > 0.0)
        .collect();
    let mut y = Axis::fit("loss", values, true, true, fmt_num);
    if y.log {
        y.label = "loss (log scale)".into();
    }
    let title = if window > 1 {
        format!(
            "{title} (mean of every {window} steps; {} epoch{})",
            history.len(),
            if history.len() == 1 { "" } else { "s" }
        )
    } else {
        title.to_string()
    };
    Panel {
        title,
        x: Axis {
            label: x_label.into(),
            range: 0.0..xmax * 1.02,
            log: false,
            fmt: std::sync::Arc::new(fmt_num),
            ticks: 10,
        },
        y,
        series,
        notes: Vec::new(),
        empty: "no training steps logged".into(),
        legend: SeriesLabelPosition::UpperRight,
    }
}

fn per_epoch(
    history: &[EpochMetrics],
    f: impl Fn(&EpochMetrics) -> Option<f64>,
) -> Vec<(f64, f64)> {
    history
        .iter()
        .filter_map(|m| f(m).map(|v| (m.epoch as f64, v)))
        .collect()
}

fn error_panel(history: &[EpochMetrics], epochs: usize, few: bool) -> Panel {
    let mut err = Series::new("eval error", PALETTE[1], Mark::LineDots);
    err.points = per_epoch(history, |m| {
        m.eval.as_ref().map(|e| 100.0 * (1.0 - e.accuracy))
    });
    let mut dis = Series::new("disagreement with teacher", PALETTE[3], Mark::LineDots);
    dis.points = per_epoch(history, |m| {
        m.eval
            .as_ref()
            .and_then(|e| e.agreement)
            .map(|a| 100.0 * (1.0 - a))
    });
    let notes = if few {
        value_notes(&[&err, &dis], fmt_pct)
    } else {
        Vec::new()
    };
    let values = err.points.iter().chain(&dis.points).map(|p| p.1);
    let mut y = Axis::fit("% of eval rows", values, true, true, fmt_pct);
    if y.log {
        y.label = "% of eval rows (log scale)".into();
    }
    Panel {
        title: "Held-out error and disagreement with the teacher".into(),
        x: Axis::epochs(epochs),
        y,
        series: [err, dis]
            .into_iter()
            .filter(|s| !s.points.is_empty())
            .collect(),
        notes,
        empty: "no eval set (data.eval is not set)".into(),
        legend: SeriesLabelPosition::UpperRight,
    }
}

fn eval_loss_panel(history: &[EpochMetrics], epochs: usize, few: bool) -> Panel {
    let mut ce = Series::new("eval cross-entropy", PALETTE[0], Mark::LineDots);
    ce.points = per_epoch(history, |m| m.eval.as_ref().map(|e| e.ce));
    let mut kd = Series::new("eval KD loss", PALETTE[4], Mark::LineDots);
    kd.points = per_epoch(history, |m| m.eval.as_ref().and_then(|e| e.kd));
    let mut train = Series::new("training loss (epoch mean)", PALETTE[7], Mark::LineDots);
    train.points = per_epoch(history, |m| Some(m.train_loss));
    let notes = if few {
        value_notes(&[&ce, &kd], fmt_num)
    } else {
        Vec::new()
    };
    let values = ce
        .points
        .iter()
        .chain(&kd.points)
        .chain(&train.points)
        .map(|p| p.1)
        .filter(|v| *v > 0.0);
    let mut y = Axis::fit("loss (nats)", values, true, true, fmt_num);
    if y.log {
        y.label = "loss (nats, log scale)".into();
    }
    Panel {
        title: "Held-out losses per epoch".into(),
        x: Axis::epochs(epochs),
        y,
        series: [ce, kd, train]
            .into_iter()
            .filter(|s| !s.points.is_empty())
            .collect(),
        notes,
        empty: "no eval set (data.eval is not set)".into(),
        legend: SeriesLabelPosition::UpperRight,
    }
}

/// Labels each point of `series` with its value (for runs with a handful of epochs).
pub(crate) fn value_notes(
    series: &[&Series],
    fmt: fn(f64) -> String,
) -> Vec<(f64, f64, String, RGBColor)> {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(x, y)| (x, y, fmt(y), s.color)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::EvalMetrics;

    fn epoch(e: usize, loss: f64, eval: bool) -> EpochMetrics {
        EpochMetrics {
            epoch: e,
            lr: 1e-3,
            steps: 10 * e as u64,
            train_loss: loss,
            train_terms: Default::default(),
            train_samples_per_s: 1.0,
            epoch_wall_s: 1.0,
            eval: eval.then(|| EvalMetrics {
                rows: 100,
                errors: 10 / e,
                accuracy: 1.0 - 0.1 / e as f64,
                ce: loss,
                agreement: Some(0.95),
                kd: Some(loss / 10.0),
                infer_rows_per_s: None,
            }),
            text_eval: None,
            network: None,
        }
    }

    fn decode(png: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut r = png::Decoder::new(png).read_info().expect("png header");
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).expect("png frame");
        (info.width, info.height, buf)
    }

    /// Text pixels: the figure is not blank and the title band holds dark glyph pixels
    /// (before fonts were embedded, charts carried no text at all).
    #[test]
    fn curves_carry_text_and_draw_with_and_without_eval_or_steps() {
        let hist: Vec<_> = (1..=3).map(|e| epoch(e, 1.0 / e as f64, true)).collect();
        let steps: Vec<_> = (1..=30)
            .map(|s| StepRecord {
                step: s,
                epoch: 1 + (s as usize - 1) / 10,
                steps: 1,
                lr: 1e-3,
                loss: 2.0 / s as f64,
                terms: [
                    ("ce".to_string(), 1.0 / s as f64),
                    ("kd:logits".into(), 0.5),
                ]
                .into_iter()
                .collect(),
            })
            .collect();
        let png = draw_curves("run \"t\"", &hist, &steps).expect("draws");
        let (w, h, px) = decode(&png);
        assert_eq!((w, h), (1300, 900));
        let dark_in_title = (0..44 * w as usize)
            .filter(|i| px[3 * i] < 100 && px[3 * i + 1] < 100 && px[3 * i + 2] < 100)
            .count();
        assert!(dark_in_title > 200, "title glyph pixels: {dark_in_title}");
        // No eval set and no steps.jsonl (an old run): still draws, with notes instead.
        let hist: Vec<_> = (1..=2).map(|e| epoch(e, 1.0, false)).collect();
        draw_curves("run \"old\"", &hist, &[]).expect("draws without eval and steps");
    }

    #[test]
    fn log_axis_only_when_values_span_more_than_a_decade() {
        assert!(Axis::fit("l", [2.0, 0.01], true, true, fmt_num).log);
        assert!(!Axis::fit("l", [2.0, 0.5], true, true, fmt_num).log);
        assert!(!Axis::fit("l", [2.0, 0.1], true, true, fmt_num).log);
        assert!(!Axis::fit("l", [2.0, 0.0], true, true, fmt_num).log);
        assert_eq!(
            Axis::fit("l", [0.0, 0.0], true, true, fmt_num).range,
            0.0..1.0
        );
        assert_eq!(fmt_num(1_276_810.0), "1.28M");
        assert_eq!(fmt_num(24_790.0), "24.8k");
        assert_eq!(fmt_num(0.0062), "0.0062");
        assert_eq!(fmt_pct(2.5), "2.5%");
    }
}
