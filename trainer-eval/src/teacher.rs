//! The teacher strength check: the teacher's own errors on the eval set (scored from the eval
//! set's stored teacher logits), set beside a student trained without it, with a warning when
//! the teacher is not clearly better — then distillation has little to transfer.
//!
//! "Clearly better" means the teacher makes fewer eval errors than the student by at least
//! [`margin`]: the larger of 10% of the student's errors and two standard deviations of the
//! difference of two error counts (√(student + teacher errors): each count is close to
//! Poisson at these error rates, and the two are treated as independent, which overstates the
//! noise of a paired comparison, so the test errs towards warning less).
//!
//! A run trained with the teacher is no scratch student: its own errors say nothing about
//! the teacher against a student alone. It is compared with the scratch run named by
//! `data.scratch_run`, or the check gives the teacher's errors and no verdict.

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
    /// A student trained without teacher terms (this run when it has none, the scratch run
    /// named by `data.scratch_run`, or a sweep's scratch runs).
    Scratch,
    /// Nothing to compare with: the run learned from the teacher and names no scratch run, so
    /// its own errors cannot say whether the teacher beats a student alone.
    #[serde(alias = "this_student")]
    None,
}

/// The teacher beside a scratch student, and the verdict (none without a scratch student).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TeacherCheck {
    /// The teacher's eval errors.
    pub teacher: TeacherEval,
    /// What the student errors are of.
    pub baseline: Baseline,
    /// The scratch run folder whose errors were read, when not this run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_run: Option<String>,
    /// The scratch student's eval errors (a mean when several seeds were run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student_errors: Option<f64>,
    /// How many fewer errors count as clearly better ([`margin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// Whether the teacher beat the scratch student by at least the margin; absent when
    /// there was no scratch student to compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearly_better: Option<bool>,
    /// The warning, when the teacher did not clearly beat the scratch student.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Why there is no verdict, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The note of a check without a scratch student, so logs and tests can look for it.
pub const NO_BASELINE: &str = "no scratch baseline: this run learned from the teacher, so its own errors cannot tell whether the teacher is better than a student alone";

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
    /// Compares the teacher with a scratch student's eval errors; `what` names that student
    /// in the warning (e.g. "the scratch student (mean of 3 seeds)"), `run` its folder when
    /// it is another run's.
    pub fn against_scratch(
        teacher: TeacherEval,
        student_errors: f64,
        what: &str,
        run: Option<String>,
    ) -> Self {
        let t = teacher.errors as f64;
        let m = margin(student_errors, t);
        let clearly_better = student_errors - t >= m;
        let warning = (!clearly_better).then(|| {
            format!(
                "{WEAK_TEACHER}: the teacher (eval column {:?}) makes {} errors on the {} eval rows, {what} {}; clearly better means at least {:.0} fewer errors than the student (the larger of 10% and 2·√(sum of both))",
                teacher.column,
                teacher.errors,
                teacher.rows,
                fmt_errors(student_errors),
                m.ceil()
            )
        });
        Self {
            teacher,
            baseline: Baseline::Scratch,
            baseline_run: run,
            student_errors: Some(student_errors),
            margin: Some(m),
            clearly_better: Some(clearly_better),
            warning,
            note: None,
        }
    }

    /// The teacher's errors alone, with no verdict; `why` says what the scratch baseline
    /// lacked (empty when none was named) and is added to the note.
    pub fn without_baseline(teacher: TeacherEval, why: &str) -> Self {
        let mut note = format!(
            "{NO_BASELINE}; name a finished scratch run on the same eval set as `data.scratch_run`, or run `sweep`, which trains the scratch baseline"
        );
        if !why.is_empty() {
            note.push_str(&format!(" ({why})"));
        }
        Self {
            teacher,
            baseline: Baseline::None,
            baseline_run: None,
            student_errors: None,
            margin: None,
            clearly_better: None,
            warning: None,
            note: Some(note),
        }
    }

    /// One line for logs: the teacher's errors beside the scratch student's.
    pub fn line(&self) -> String {
        let teacher = format!(
            "teacher (eval column {:?}): {} errors / {} ({:.2}%)",
            self.teacher.column,
            self.teacher.errors,
            self.teacher.rows,
            100.0 * self.teacher.accuracy,
        );
        match (self.student_errors, &self.baseline_run) {
            (Some(e), Some(run)) => format!(
                "{teacher}; scratch student ({run}): {} errors",
                fmt_errors(e)
            ),
            (Some(e), None) => format!(
                "{teacher}; student without teacher: {} errors",
                fmt_errors(e)
            ),
            (None, _) => format!("{teacher}; no scratch baseline to compare with"),
        }
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
        let ok = TeacherCheck::against_scratch(t(93), 135.0, "the scratch student", None);
        assert!(
            ok.clearly_better == Some(true) && ok.warning.is_none(),
            "{ok:?}"
        );
        // 135 vs 110: 25 fewer, under the margin.
        let close = TeacherCheck::against_scratch(t(110), 135.0, "the scratch student", None);
        assert_eq!(close.clearly_better, Some(false));
        let w = close.warning.expect("warning");
        assert!(
            w.starts_with(WEAK_TEACHER) && w.contains("110") && w.contains("135"),
            "{w}"
        );
    }

    #[test]
    fn without_a_baseline_there_is_no_verdict() {
        let teacher = TeacherEval {
            column: "logits".into(),
            rows: 10000,
            errors: 1061,
            accuracy: 0.8939,
        };
        let c = TeacherCheck::without_baseline(teacher, "");
        assert_eq!(
            (c.baseline, c.clearly_better, c.margin),
            (Baseline::None, None, None)
        );
        assert!(c.warning.is_none());
        let note = c.note.as_deref().expect("note");
        assert!(
            note.starts_with(NO_BASELINE) && note.contains("sweep"),
            "{note}"
        );
        let json = serde_json::to_string(&c).expect("json");
        assert!(!json.contains("clearly_better"), "{json}");
        // A summary.json written before the baseline could be named still reads.
        let old = r#"{"teacher":{"column":"logits","rows":1,"errors":0,"accuracy":1.0},"baseline":"this_student","student_errors":3.0,"margin":1.0,"clearly_better":true}"#;
        let c: TeacherCheck = serde_json::from_str(old).expect("old summary");
        assert_eq!(c.baseline, Baseline::None);
    }
}
