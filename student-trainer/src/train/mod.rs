//! The training loop: builds the student, loss terms and optimizer from a [`RunConfig`],
//! trains epoch by epoch on background-prepared batches, evaluates, logs, checkpoints,
//! resumes, and writes the run folder (`config.toml`, `student.safetensors`, `student.onnx`,
//! `metrics.jsonl`, `steps.jsonl`, `summary.json`, `curves.png`).
//!
//! [`run`] is the sequence; each step is its own module: [`run_folder`] (config and folder),
//! [`setup`] (data, student, objective), then one [`learner::Learner`] drives the epochs of a
//! [`learner::Task`] — resume, metrics files, [`early_stop`], [`checkpoint`] — whichever kind
//! the run is: [`image`] (a classifier, one pass over the rows in [`epoch`], eval in
//! [`evaluate`], `[self_distill]` exits from [`self_distill`]), [`text`] (`static`,
//! `transformer` students with the terms of [`text_objective`]) or [`online`] (several
//! networks in one loop). [`outputs`] is what a finished run writes.

pub mod checkpoint;
pub mod early_stop;
pub mod epoch;
mod error;
pub mod evaluate;
pub mod image;
pub mod init;
pub mod learner;
pub mod objective;
pub mod online;
pub mod outputs;
pub mod run_folder;
pub mod self_distill;
pub mod setup;
pub mod text;
pub mod text_exits;
pub mod text_objective;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::{LossTerm, RunConfig};
use crate::metrics::{EpochMetrics, EvalMetrics, Summary};
pub use error::{BoxError, TermError, TrainError};
use learner::Learner;
use setup::Setup;
use trainer_core::model::Student;
use trainer_data::EvalData;

/// How to run `train`.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// The config file (optional with `resume`: the run folder's `config.toml` is used).
    pub config: Option<PathBuf>,
    /// The run folder (default `runs/<config file stem>`).
    pub out: Option<PathBuf>,
    /// Continue from the run folder's checkpoint.
    pub resume: bool,
    /// No progress bars or per-epoch lines.
    pub quiet: bool,
    /// Stop (resumably) after this many epochs in total, e.g. to split a run.
    pub stop_after: Option<usize>,
    /// Write `student.onnx` (on by default from the CLI).
    pub export_onnx: bool,
    /// Write `curves.png`.
    pub plot: bool,
}

/// What a `train` call ended with.
// Returned once per run: boxing the summary would only add noise at every call site.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// The run finished; outputs are written.
    Finished(Summary),
    /// `stop_after` paused the run after this many epochs; `--resume` continues it.
    Paused {
        /// Epochs completed.
        epochs: usize,
    },
}

/// Temperature used for the eval KD loss: the first kd term's, else 1.
pub fn kd_temperature(losses: &[LossTerm]) -> f64 {
    losses
        .iter()
        .find_map(|t| match t {
            LossTerm::Kd { temperature, .. } => Some(*temperature),
            _ => None,
        })
        .unwrap_or(1.0)
}

/// Evaluates the student on the eval set, if there is one.
fn evaluate_opt(
    student: &Student,
    eval: Option<&EvalData>,
    cfg: &RunConfig,
) -> Result<Option<EvalMetrics>, TrainError> {
    eval.map(|e| {
        evaluate::evaluate(
            student,
            e,
            cfg.train.eval_batch_size,
            kd_temperature(&cfg.losses),
        )
    })
    .transpose()
}

/// The `[student]`'s lines of a `metrics.jsonl` (all of a plain run's).
pub fn student_lines(history: Vec<EpochMetrics>) -> Vec<EpochMetrics> {
    history.into_iter().filter(|m| m.is_student()).collect()
}

/// Trains as configured; see [`TrainOptions`]. Prints the teacher check (the teacher's eval
/// errors beside the student's) and any warning to stderr.
pub fn run(opts: &TrainOptions) -> Result<RunOutcome, TrainError> {
    let wall = Instant::now();
    let (cfg, out) = run_folder::prepare(opts)?;
    if cfg.student.is_text() {
        return text::run(opts, cfg, out, wall);
    }
    let setup = Setup::build(&cfg, opts.quiet)?;
    let outcome = train_with_setup(&cfg, &out, &setup, opts, wall)?;
    if let RunOutcome::Finished(s) = &outcome {
        if let Some(c) = &s.teacher_check {
            if !opts.quiet {
                eprintln!("{}", c.line());
            }
            if let Some(n) = &c.note {
                eprintln!("note: {n}");
            }
        }
        for w in &s.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(outcome)
}

/// Trains `cfg` in the run folder `out` (its `config.toml` already written) on a built
/// [`Setup`], e.g. one whose data a sweep shares between runs; with `opts.resume` it
/// continues from the folder's checkpoint when there is one. `started` is when this session
/// began (for the summary's wall time). Prints nothing but the per-epoch lines (`!quiet`).
/// An `[online]` config trains as an [`online::OnlineTask`], any other as an
/// [`image::ImageTask`].
pub fn train_with_setup(
    cfg: &RunConfig,
    out: &Path,
    setup: &Setup,
    opts: &TrainOptions,
    started: Instant,
) -> Result<RunOutcome, TrainError> {
    let learner = Learner::new(out, opts, cfg.train.early_stopping, started);
    if cfg.online.is_some() {
        return learner.fit(&mut online::OnlineTask::new(cfg, setup, out, opts)?);
    }
    learner.fit(&mut image::ImageTask::new(cfg, setup, out, opts)?)
}

/// One human-readable line per epoch.
pub fn epoch_line(m: &EpochMetrics) -> String {
    let mut s = format!(
        "epoch {:>3}  loss {:.4}  lr {:.2e}  {:.0} samples/s",
        m.epoch, m.train_loss, m.lr, m.train_samples_per_s
    );
    if let Some(n) = &m.network {
        s = format!("{n:<8} {s}");
    }
    if let Some(e) = &m.eval {
        s.push_str(&format!(
            "  eval errors {}/{} ({:.2}%)",
            e.errors,
            e.rows,
            100.0 * (1.0 - e.accuracy)
        ));
        if let Some(a) = e.agreement {
            s.push_str(&format!("  agreement {:.2}%", 100.0 * a));
        }
        if let Some(k) = e.kd {
            s.push_str(&format!("  eval kd {k:.4}"));
        }
    }
    s
}
