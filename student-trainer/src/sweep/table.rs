//! The sweep's results, aggregated over seeds: one row per scratch baseline and grid point,
//! mean ± standard deviation (sample, n − 1) of test errors, accuracy, agreement with the
//! teacher and eval KD; the Markdown table; the best setting.

use serde::Serialize;

use super::plan::{describe, Grid, RunKind};
use super::store::RunResult;

/// Mean and sample standard deviation of a metric over seeds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub std: f64,
    /// Values.
    pub n: usize,
}

impl Stat {
    /// Over `values`; `None` when empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Self {
            mean,
            std: var.sqrt(),
            n,
        })
    }

    /// `mean ± std` of a count, one decimal.
    pub fn show_plain(&self) -> String {
        self.show(1.0, 1)
    }

    /// `mean ± std` with `digits` decimals, `scale` applied (100 for percentages).
    fn show(&self, scale: f64, digits: usize) -> String {
        if self.n > 1 {
            format!(
                "{:.digits$} ± {:.digits$}",
                self.mean * scale,
                self.std * scale
            )
        } else {
            format!("{:.digits$}", self.mean * scale)
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `scratch` or `point`.
    pub kind: &'static str,
    /// Grid point index (points only).
    pub point: Option<usize>,
    /// Scratch group (value indices of the non-loss keys).
    pub group: Vec<usize>,
    /// `key = value, ...`.
    pub label: String,
    /// Per grid key, the value (scratch rows: `—` for loss keys).
    pub values: Vec<String>,
    /// Seeds finished.
    pub runs: usize,
    /// Eval rows.
    pub eval_rows: usize,
    /// Test errors.
    pub errors: Stat,
    /// Accuracy.
    pub accuracy: Stat,
    /// Eval cross-entropy (tie-break of the best setting).
    pub ce: Stat,
    /// Top-1 agreement with the teacher.
    pub agreement: Option<Stat>,
    /// Eval KD loss.
    pub kd: Option<Stat>,
}

impl Row {
    /// The run kind of the row.
    pub fn run_kind(&self) -> RunKind {
        match self.point {
            Some(p) => RunKind::Point(p),
            None => RunKind::Scratch(self.group.clone()),
        }
    }
}

fn collect(kind: &RunKind, grid: &Grid, results: &[&RunResult]) -> Option<Row> {
    let evals: Vec<_> = results
        .iter()
        .filter_map(|r| r.summary.eval.as_ref())
        .collect();
    let f = |get: &dyn Fn(&crate::metrics::EvalMetrics) -> Option<f64>| {
        let v: Vec<f64> = evals.iter().filter_map(|e| get(e)).collect();
        (v.len() == evals.len()).then(|| Stat::of(&v)).flatten()
    };
    let errors = f(&|e| Some(e.errors as f64))?;
    let (point, group, values) = match kind {
        RunKind::Point(p) => {
            let c = grid.decode(*p);
            let values = grid
                .settings(&c, false)
                .into_iter()
                .map(|(_, v)| v)
                .collect();
            (Some(*p), grid.group_of(&c), values)
        }
        RunKind::Scratch(g) => {
            let mut it = grid.settings(g, true).into_iter();
            let values = grid
                .keys
                .iter()
                .map(|k| {
                    if k.path.is_loss() {
                        "—".to_string()
                    } else {
                        it.next().map(|(_, v)| v).unwrap_or_default()
                    }
                })
                .collect();
            (None, g.clone(), values)
        }
    };
    Some(Row {
        kind: if point.is_some() { "point" } else { "scratch" },
        point,
        group,
        label: describe(grid, kind),
        values,
        runs: evals.len(),
        eval_rows: evals.first().map_or(0, |e| e.rows),
        errors,
        accuracy: f(&|e| Some(e.accuracy))?,
        ce: f(&|e| Some(e.ce))?,
        agreement: f(&|e| e.agreement),
        kd: f(&|e| e.kd),
    })
}

/// The rows of the finished runs: scratch baselines (in `groups` order), then the points.
pub fn rows(
    grid: &Grid,
    groups: &[Vec<usize>],
    points: &[usize],
    results: &[RunResult],
) -> Vec<Row> {
    let mut out = Vec::new();
    for g in groups {
        let rs: Vec<&RunResult> = results
            .iter()
            .filter(|r| r.point.is_none() && r.group == *g)
            .collect();
        out.extend(collect(&RunKind::Scratch(g.clone()), grid, &rs));
    }
    for &p in points {
        let rs: Vec<&RunResult> = results.iter().filter(|r| r.point == Some(p)).collect();
        out.extend(collect(&RunKind::Point(p), grid, &rs));
    }
    out
}

/// The scratch row of a group.
pub fn scratch_of<'a>(rows: &'a [Row], group: &[usize]) -> Option<&'a Row> {
    rows.iter().find(|r| r.point.is_none() && r.group == group)
}

/// The best row among those with every seed finished: fewest mean errors, then lowest mean
/// eval cross-entropy, then the first. Scratch rows compete too (distilling may not pay).
pub fn best(rows: &[Row], seeds: usize) -> Option<&Row> {
    rows.iter().filter(|r| r.runs == seeds).min_by(|a, b| {
        a.errors
            .mean
            .total_cmp(&b.errors.mean)
            .then(a.ce.mean.total_cmp(&b.ce.mean))
    })
}

/// The Markdown table.
pub fn markdown(grid: &Grid, rows: &[Row]) -> String {
    let mut head: Vec<String> = grid
        .keys
        .iter()
        .map(|k| format!("`{}`", k.path.text))
        .collect();
    head.extend(
        [
            "seeds",
            "test errors",
            "accuracy %",
            "agreement %",
            "eval KD",
            "vs scratch",
        ]
        .map(String::from),
    );
    let mut s = format!("| {} |\n", head.join(" | "));
    s.push_str(&format!(
        "|{}|\n",
        head.iter()
            .enumerate()
            .map(|(i, _)| if i < grid.keys.len() { "---" } else { "---:" })
            .collect::<Vec<_>>()
            .join("|")
    ));
    for r in rows {
        let mut cells: Vec<String> = if r.point.is_none() {
            r.values
                .iter()
                .map(|v| {
                    if v == "—" {
                        "scratch".into()
                    } else {
                        v.clone()
                    }
                })
                .collect()
        } else {
            r.values.clone()
        };
        let vs = match (r.point, scratch_of(rows, &r.group)) {
            (Some(_), Some(sc)) => format!("{:+.1}", r.errors.mean - sc.errors.mean),
            _ => "—".into(),
        };
        cells.extend([
            r.runs.to_string(),
            r.errors.show(1.0, 1),
            r.accuracy.show(100.0, 2),
            r.agreement.map_or("—".into(), |a| a.show(100.0, 2)),
            r.kd.map_or("—".into(), |k| k.show(1.0, 4)),
            vs,
        ]);
        s.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_use_the_sample_deviation() {
        let s = Stat::of(&[2.0, 4.0, 6.0]).expect("stat");
        assert_eq!((s.mean, s.n), (4.0, 3));
        assert!((s.std - 2.0).abs() < 1e-12);
        assert_eq!(s.show(1.0, 1), "4.0 ± 2.0");
        assert_eq!(Stat::of(&[5.0]).expect("one").show(1.0, 1), "5.0");
        assert!(Stat::of(&[]).is_none());
    }
}
