//! A Markdown table comparing finished runs (the `report` subcommand): each run's summary
//! plus its exported student re-scored on one eval set, so all rows use the same data.

use crate::metrics::{EvalMetrics, Summary};

/// One row of the report.
#[derive(Debug, Clone)]
pub struct ReportRow {
    /// Display name of the run.
    pub name: String,
    /// The run's `summary.json`.
    pub summary: Summary,
    /// The exported model re-scored on the report's eval set.
    pub eval: EvalMetrics,
    /// Which file was scored (`student.onnx` or `student.safetensors`).
    pub scored: String,
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{:.2}%", 100.0 * x))
}

/// Renders the report.
pub fn render(title: &str, eval_data: &str, rows: &[ReportRow], elapsed_s: Option<f64>) -> String {
    let mut s = format!("# {title}\n\n");
    s.push_str(&format!(
        "Eval set: `{eval_data}`. Every row is re-scored from the run's exported model; \
         ONNX Runtime rows/s is the median of 5 timed passes over the eval set in batches of \
         1024 rows on this machine.\n\n"
    ));
    s.push_str("| run | params | epochs | test errors | accuracy | agreement with teacher | eval KD | train samples/s | wall time | ONNX Runtime rows/s | scored |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {}{} | {} / {} | {} | {} | {} | {:.0} | {:.0} s | {} | `{}` |\n",
            r.name,
            r.summary.param_count,
            r.summary.epochs,
            if r.summary.stopped_early {
                " (early stop)"
            } else {
                ""
            },
            r.eval.errors,
            r.eval.rows,
            pct(Some(r.eval.accuracy)),
            pct(r.eval.agreement),
            r.eval.kd.map_or("–".into(), |k| format!("{k:.4}")),
            r.summary.samples_per_s,
            r.summary.wall_s,
            r.eval
                .infer_rows_per_s
                .map_or("–".into(), |v| format!("{v:.0}")),
            r.scored,
        ));
    }
    if let Some(e) = elapsed_s {
        s.push_str(&format!("\nTotal elapsed: {e:.0} s.\n"));
    }
    s
}
