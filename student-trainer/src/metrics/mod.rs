//! Per-epoch metrics (`metrics.jsonl`), per-step losses (`steps.jsonl`), the run summary (`summary.json`), and the host-side
//! scoring of logits against labels and teacher logits shared by training-time eval and
//! `student-trainer eval`.

pub mod steps;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

// The per-epoch eval scores are computed in the eval layer; the summary carries them.
pub use trainer_eval::score::{score_logits, EvalMetrics};
use trainer_eval::teacher;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Optimizer steps taken so far.
    pub steps: u64,
    /// Mean weighted total loss over the epoch's steps.
    pub train_loss: f64,
    /// Mean unweighted value of each loss term, by label (e.g. `kd:logits`).
    pub train_terms: BTreeMap<String, f64>,
    /// Training throughput (forward, backward, update; eval excluded).
    pub train_samples_per_s: f64,
    /// Wall time of the epoch including eval.
    pub epoch_wall_s: f64,
    /// Held-out metrics, when `data.eval` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<EvalMetrics>,
    /// Held-out metrics of a text student (loss terms and teacher fidelity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_eval: Option<TextEvalMetrics>,
    /// Which network of an online or self-distillation run the line is about (`student`,
    /// a peer's name, `teacher`, `exit0`, …); absent in a plain run's single line per epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl EpochMetrics {
    /// Whether the line is about the `[student]` itself (a plain run's line, or `student`).
    pub fn is_student(&self) -> bool {
        self.network.as_deref().is_none_or(|n| n == STUDENT_NETWORK)
    }
}

/// The `network` name of the `[student]` in runs with several networks or exits.
pub const STUDENT_NETWORK: &str = "student";

/// One more network of an online run, or an exit of a self-distilled one, in `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkSummary {
    /// `peer`, `teacher` or `exit`.
    pub role: String,
    /// Held-out metrics of the exported weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<EvalMetrics>,
    /// Held-out misclassifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_errors: Option<usize>,
    /// A text exit's held-out loss terms and teacher fidelity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_eval: Option<TextEvalMetrics>,
    /// Trainable scalars of the exported network (an exit: the truncated network).
    pub param_count: usize,
    /// Its files in the run folder.
    pub files: Vec<String>,
}

/// A text student on held-out rows: the loss terms and how close it is to the teacher.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TextEvalMetrics {
    /// Rows evaluated.
    pub rows: usize,
    /// Weighted total loss, row-weighted over eval chunks of `train.eval_batch_size` rows
    /// (in-batch terms such as infonce see the chunk as their batch).
    pub loss: f64,
    /// Unweighted value of each term, by label.
    pub terms: BTreeMap<String, f64>,
    /// The teacher column fidelity is measured against.
    pub fidelity_column: String,
    /// Mean cosine similarity of the student's embedding and the teacher's, per row.
    pub fidelity: f64,
}

/// What a text run adds to `summary.json`: before vs after distillation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TextSummary {
    /// The student as initialised (teacher layers, PCA table or random), before any step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_eval: Option<TextEvalMetrics>,
    /// The exported student.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_eval: Option<TextEvalMetrics>,
    /// Rows of the eval set.
    pub eval_rows: usize,
    /// Rows held per shuffle window (all training rows when resident).
    pub window_rows: usize,
    /// Whether the training rows were held in memory (one window) or streamed.
    pub resident: bool,
    /// Real tokens / padded positions over all training batches of the last epoch.
    pub padding_efficiency: f64,
}

/// `summary.json` of a finished run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Epochs trained.
    pub epochs: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Epoch whose weights were exported (the best one under early stopping).
    pub exported_epoch: usize,
    /// Held-out metrics of the exported weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval: Option<EvalMetrics>,
    /// Held-out misclassifications of the exported weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_errors: Option<usize>,
    /// Held-out accuracy of the exported weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Top-1 agreement with the teacher on the held-out set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    /// Trainable scalars of the student (projectors excluded).
    pub param_count: usize,
    /// Training rows.
    pub train_rows: usize,
    /// Mean training throughput over all epochs.
    pub samples_per_s: f64,
    /// Total wall time, summed over resumed sessions.
    pub wall_s: f64,
    /// Files written into the run folder.
    pub files: Vec<String>,
    /// Text students only: eval before and after distillation, data-path figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Box<TextSummary>>,
    /// The teacher's own eval errors beside the student's, when the eval set holds teacher
    /// logits ([`teacher`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_check: Option<teacher::TeacherCheck>,
    /// Warnings about the run (e.g. a teacher that is not clearly better than the student).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The other networks of an online run, or the exits of a self-distilled one, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, NetworkSummary>,
}

/// Errors writing metrics files.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {message}")]
pub struct MetricsError {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    pub message: String,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> MetricsError {
    MetricsError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Appends one epoch to `metrics.jsonl`.
pub fn append_epoch(path: &Path, m: &EpochMetrics) -> Result<(), MetricsError> {
    let line = serde_json::to_string(m).map_err(|e| io_err(path, e))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    writeln!(f, "{line}").map_err(|e| io_err(path, e))?;
    f.sync_data().map_err(|e| io_err(path, e))
}

/// Reads `metrics.jsonl`, keeping the lines of the first `keep` epochs (one line per epoch, or
/// one per network in runs with several) and rewriting the file with only those (a killed run
/// may have logged an epoch its checkpoint does not hold). Kept lines stay as written: parsing
/// and printing a float again need not give back its last digit.
pub fn truncate_epochs(path: &Path, keep: usize) -> Result<Vec<EpochMetrics>, MetricsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_err(path, e)),
    };
    let mut out = Vec::new();
    let mut body = String::new();
    let mut last = 0;
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let m: EpochMetrics = serde_json::from_str(line)
            .map_err(|e| io_err(path, format!("line {} does not parse: {e}", i + 1)))?;
        if m.epoch > keep {
            break;
        }
        last = last.max(m.epoch);
        out.push(m);
        body.push_str(line);
        body.push('\n');
    }
    if last < keep {
        return Err(io_err(
            path,
            format!("holds {last} epochs, the checkpoint {keep}"),
        ));
    }
    std::fs::write(path, body).map_err(|e| io_err(path, e))?;
    Ok(out)
}

/// Reads every epoch of a finished run's `metrics.jsonl`.
pub fn read_epochs(path: &Path) -> Result<Vec<EpochMetrics>, MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| io_err(path, format!("line {} does not parse: {e}", i + 1)))
        })
        .collect()
}

/// Writes `summary.json`.
pub fn write_summary(path: &Path, s: &Summary) -> Result<(), MetricsError> {
    let text = serde_json::to_string_pretty(s).map_err(|e| io_err(path, e))?;
    std::fs::write(path, text + "\n").map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_the_kept_lines_as_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("metrics.jsonl");
        // serde_json's default float parser reads this as a neighbour of its value, which
        // prints as 1.8831117975711824: re-serialising would change the file.
        let line = |epoch: usize| {
            format!(
                r#"{{"epoch":{epoch},"lr":0.2,"steps":13,"train_loss":1.8831117975711822,"train_terms":{{}},"train_samples_per_s":1.0,"epoch_wall_s":1.0}}"#
            )
        };
        let text = format!("{}\n{}\n{}\n", line(1), line(2), line(3));
        std::fs::write(&p, &text).expect("write");
        let kept = truncate_epochs(&p, 2).expect("truncate");
        assert_eq!(kept.iter().map(|m| m.epoch).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            std::fs::read_to_string(&p).expect("read"),
            format!("{}\n{}\n", line(1), line(2))
        );
        let e = truncate_epochs(&p, 3).expect_err("fewer epochs than the checkpoint");
        assert!(e.to_string().contains("holds 2 epochs"), "{e}");
    }
}
