//! The teacher strength check: the teacher's own errors on the eval set (scored from the eval
//! set's stored teacher logits), set beside a student trained without it, with a warning when
//! the teacher is not clearly better — then distillation has little to transfer.
//!
//! "Clearly better" means the teacher makes fewer eval errors than the student by at least
//! [`margin`]: the larger of 10% of the student's errors and two standard deviations of the
//! difference of two error counts (√(student + teacher errors): each count is close to
//! Poisson at these error rates, and the two are treated as independent, which overstates the
//! noise of a paired comparison, so the test errs towards warning less).

use serde::{Deserialize, Serialize};

use trainer_data::{EvalData, Target};

/// The warning's fixed opening, so logs and tests can look for it.
pub const WEAK_TEACHER: &str =
    "this teacher is not better than the student alone; distillation cannot help much";

/// The teacher's top-1 errors on the eval set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TeacherEval {
    /// The eval set's teacher-logits column.
    pub column: String,
    /// Rows scored.
    pub rows: usize,
    /// Rows where the teacher's top class is not the label.
    pub errors: usize,
    /// `1 - errors / rows`.
    pub accuracy: f64,
}

/// What the teacher was compared with.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// A student trained without teacher terms (a scratch run, or a sweep's scratch runs).
    Scratch,
    /// The run's own student, which was trained with the teacher: no scratch run was there.
    ThisStudent,
}

/// The teacher beside the student, and the verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TeacherCheck {
    /// The teacher's eval errors.
    pub teacher: TeacherEval,
    /// What the student errors are of.
    pub baseline: Baseline,
    /// The student's eval errors (a mean when several seeds were run).
    pub student_errors: f64,
    /// How many fewer errors count as clearly better ([`margin`]).
    pub margin: f64,
    /// Whether the teacher beat the student by at least the margin.
    pub clearly_better: bool,
    /// The warning, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Index of the largest value (the first on ties, as the scorer counts agreement).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// The teacher's errors on `eval`, when the eval set holds teacher logits.
pub fn teacher_eval(eval: &EvalData) -> Option<TeacherEval> {
    let (column, target) = eval.teacher.as_ref()?;
    let rows = eval.labels.len();
    let top = |r: usize| match target {
        Target::Dense(m) => argmax(m.row(r)),
        Target::TopK {
            indices, values, ..
        } => indices[r * values.cols + argmax(values.row(r))] as usize,
        // Eval targets are read from the eval set, never served; no class matches.
        Target::Served { .. } => usize::MAX,
    };
    let errors = (0..rows)
        .filter(|&r| top(r) != eval.labels[r] as usize)
        .count();
    Some(TeacherEval {
        column: column.clone(),
        rows,
        errors,
        accuracy: 1.0 - errors as f64 / rows.max(1) as f64,
    })
}

/// Fewer errors than the student by which a teacher counts as clearly better.
pub fn margin(student_errors: f64, teacher_errors: f64) -> f64 {
    (0.1 * student_errors).max(2.0 * (student_errors + teacher_errors).max(0.0).sqrt())
}

impl TeacherCheck {
    /// Compares the teacher with a student's eval errors; `what` names that student in the
    /// warning (e.g. "the scratch student (mean of 3 seeds)").
    pub fn new(teacher: TeacherEval, baseline: Baseline, student_errors: f64, what: &str) -> Self {
        let t = teacher.errors as f64;
        let m = margin(student_errors, t);
        let clearly_better = student_errors - t >= m;
        let warning = (!clearly_better).then(|| {
            let mut w = format!(
                "{WEAK_TEACHER}: the teacher (eval column {:?}) makes {} errors on the {} eval rows, {what} {}; clearly better means at least {:.0} fewer errors than the student (the larger of 10% and 2·√(sum of both))",
                teacher.column,
                teacher.errors,
                teacher.rows,
                fmt_errors(student_errors),
                m.ceil()
            );
            if baseline == Baseline::ThisStudent {
                w.push_str(
                    "; no scratch run to compare with, so this compares with this run's own student, which learned from the teacher (a `sweep` trains the scratch baseline)",
                );
            }
            w
        });
        Self {
            teacher,
            baseline,
            student_errors,
            margin: m,
            clearly_better,
            warning,
        }
    }

    /// One line for logs: the teacher's errors beside the student's.
    pub fn line(&self) -> String {
        let who = match self.baseline {
            Baseline::Scratch => "student without teacher",
            Baseline::ThisStudent => "this student",
        };
        format!(
            "teacher (eval column {:?}): {} errors / {} ({:.2}%); {who}: {} errors",
            self.teacher.column,
            self.teacher.errors,
            self.teacher.rows,
            100.0 * self.teacher.accuracy,
            fmt_errors(self.student_errors)
        )
    }
}

/// A whole number as such, a mean with one decimal.
fn fmt_errors(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trainer_data::Matrix;

    fn eval_with(logits: Vec<f32>, labels: Vec<u32>) -> EvalData {
        let rows = labels.len();
        EvalData {
            input: Matrix {
                rows,
                cols: 1,
                data: vec![0.0; rows],
            },
            labels,
            teacher: Some((
                "logits".into(),
                Target::Dense(Matrix {
                    rows,
                    cols: 2,
                    data: logits,
                }),
            )),
        }
    }

    #[test]
    fn teacher_errors_come_from_the_stored_logits() {
        let e = eval_with(vec![1.0, 0.0, 0.0, 1.0, 2.0, 1.0], vec![0, 1, 1]);
        let t = teacher_eval(&e).expect("teacher column");
        assert_eq!((t.rows, t.errors), (3, 1));
        assert!((t.accuracy - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn clearly_better_needs_the_margin() {
        let t = |errors| TeacherEval {
            column: "logits".into(),
            rows: 10000,
            errors,
            accuracy: 1.0 - errors as f64 / 1e4,
        };
        // 135 scratch vs 93 teacher: 42 fewer, margin max(13.5, 2·√228 = 30.2).
        let ok = TeacherCheck::new(t(93), Baseline::Scratch, 135.0, "the scratch student");
        assert!(ok.clearly_better && ok.warning.is_none(), "{ok:?}");
        // 135 vs 110: 25 fewer, under the margin.
        let close = TeacherCheck::new(t(110), Baseline::Scratch, 135.0, "the scratch student");
        assert!(!close.clearly_better);
        let w = close.warning.expect("warning");
        assert!(
            w.starts_with(WEAK_TEACHER) && w.contains("110") && w.contains("135"),
            "{w}"
        );
        let own = TeacherCheck::new(t(300), Baseline::ThisStudent, 120.0, "this run's student");
        assert!(own
            .warning
            .expect("warning")
            .contains("no scratch run to compare with"));
    }
}
