//! The training loop: builds the student, loss terms and optimizer from a [`RunConfig`],
//! trains epoch by epoch on background-prepared batches, evaluates, logs, checkpoints,
//! resumes, and writes the run folder (`config.toml`, `student.safetensors`, `student.onnx`,
//! `metrics.jsonl`, `steps.jsonl`, `summary.json`, `curves.png`).
//!
//! [`run`] is the sequence; each step is its own module: [`run_folder`] (config and folder),
//! [`setup`] (data, student, objective), [`epoch`] (one pass over the rows), [`early_stop`],
//! [`checkpoint`], [`evaluate`], [`outputs`] (what a finished run writes). Text students
//! (`static`, `transformer`) train in [`text`] with the terms of [`text_objective`].
//! `[self_distill]` adds the exits of [`self_distill`] to this loop; `[online]` runs several
//! networks in the loop of [`online`].

pub mod checkpoint;
pub mod early_stop;
pub mod epoch;
mod error;
pub mod evaluate;
pub mod init;
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

use crate::config::{EarlyStopping, LossTerm, RunConfig, StopMetric};
use crate::data::EvalData;
use crate::metrics::{self, EpochMetrics, EvalMetrics, Summary};
use crate::model::Student;
use crate::optim::Optimizer;
use checkpoint::CheckpointState;
use early_stop::{EarlyStopper, Verdict};
pub use error::{BoxError, TermError, TrainError};
use setup::Setup;

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

fn watched(m: &EvalMetrics, metric: StopMetric) -> Option<f64> {
    match metric {
        StopMetric::EvalError => Some(m.errors as f64),
        StopMetric::EvalLoss => Some(m.ce),
        StopMetric::EvalKd => m.kd,
    }
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

/// The loop state to start from: a fresh one, or the checkpoint's with the student and
/// optimizer restored and `metrics.jsonl` cut back to it.
fn starting_state(
    resume: bool,
    out: &Path,
    setup: &Setup,
    opt: &mut Optimizer,
) -> Result<(CheckpointState, Vec<EpochMetrics>), TrainError> {
    let metrics_path = out.join("metrics.jsonl");
    if resume {
        if let Some(s) = checkpoint::load_state(out)? {
            checkpoint::restore(out, &s, &setup.varmap, opt)?;
            let history = metrics::truncate_epochs(&metrics_path, s.epoch)?;
            return Ok((s, student_lines(history)));
        }
        let _ = std::fs::remove_file(&metrics_path);
    }
    Ok((CheckpointState::fresh(), Vec::new()))
}

/// The `[student]`'s lines of a `metrics.jsonl` (all of a plain run's).
pub fn student_lines(history: Vec<EpochMetrics>) -> Vec<EpochMetrics> {
    history.into_iter().filter(|m| m.is_student()).collect()
}

/// Feeds an epoch's eval metrics to early stopping; saves the best weights on improvement.
/// Returns whether to stop.
fn early_stopping_step(
    es: &EarlyStopping,
    stopper: &mut EarlyStopper,
    eval: &EvalMetrics,
    epoch: usize,
    setup: &Setup,
    out: &Path,
) -> Result<bool, TrainError> {
    let value = watched(eval, es.metric).ok_or_else(|| {
        TrainError::Config(
            "early_stopping.metric = \"eval_kd\" needs full teacher logits in the eval set".into(),
        )
    })?;
    match stopper.observe(epoch, value) {
        Verdict::Improved => {
            let dir = checkpoint::dir(out);
            std::fs::create_dir_all(&dir).map_err(|source| TrainError::Io { path: dir, source })?;
            checkpoint::save_vars(&setup.varmap, &outputs::best_path(out), |_| true)?;
            Ok(false)
        }
        Verdict::Wait => Ok(false),
        Verdict::Stop => Ok(true),
    }
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
/// An `[online]` config trains in [`online::train`].
pub fn train_with_setup(
    cfg: &RunConfig,
    out: &Path,
    setup: &Setup,
    opts: &TrainOptions,
    started: Instant,
) -> Result<RunOutcome, TrainError> {
    if cfg.online.is_some() {
        return online::train(cfg, out, setup, opts, started);
    }
    let wall = started;
    let out = out.to_path_buf();
    let tcfg = &cfg.train;
    let mut opt = Optimizer::new(tcfg.optimizer.into(), setup.vars()?);
    let (mut state, mut history) = starting_state(opts.resume, &out, setup, &mut opt)?;
    let prior_wall = state.wall_s;
    let mut stopper = tcfg
        .early_stopping
        .map(|es| EarlyStopper::new(es.patience, state.best));
    let metrics_path = out.join("metrics.jsonl");
    let labels = setup.labels();
    let mut step_log = metrics::steps::StepLog::open(
        &out.join(outputs::STEPS_FILE),
        labels.clone(),
        state.optimizer_steps,
    )?;

    while state.epoch < tcfg.epochs && !state.stopped_early {
        if opts.stop_after.is_some_and(|n| state.epoch >= n) {
            return Ok(RunOutcome::Paused {
                epochs: state.epoch,
            });
        }
        let t_epoch = Instant::now();
        let totals = epoch::train_epoch(
            setup,
            tcfg,
            &mut opt,
            state.epoch,
            opts.quiet,
            &mut step_log,
        )?;
        let eval_m = evaluate_opt(&setup.student, setup.eval.as_deref(), cfg)?;
        state.epoch += 1;
        state.optimizer_steps = opt.steps();
        state.train_samples += totals.rows;
        state.train_s += totals.step_s;
        let m = EpochMetrics {
            epoch: state.epoch,
            lr: totals.lr,
            steps: opt.steps(),
            train_loss: totals.mean_loss(),
            train_terms: totals.mean_terms(&labels),
            train_samples_per_s: totals.samples_per_s(),
            epoch_wall_s: t_epoch.elapsed().as_secs_f64(),
            eval: eval_m.clone(),
            text_eval: None,
            network: setup
                .self_distill
                .as_ref()
                .map(|_| metrics::STUDENT_NETWORK.to_string()),
        };
        if !opts.quiet {
            eprintln!("{}", epoch_line(&m));
        }
        metrics::append_epoch(&metrics_path, &m)?;
        if let (Some(sd), Some(e)) = (&setup.self_distill, setup.eval.as_deref()) {
            let exits = sd.evaluate(
                &setup.student,
                e,
                cfg.train.eval_batch_size,
                kd_temperature(&cfg.losses),
            )?;
            for (name, em) in exits {
                let mut line = m.clone();
                let own = format!("{name}:");
                line.train_terms.retain(|k, _| k.starts_with(&own));
                line.eval = Some(em);
                line.network = Some(name);
                if !opts.quiet {
                    eprintln!("{}", epoch_line(&line));
                }
                metrics::append_epoch(&metrics_path, &line)?;
            }
        }
        history.push(m);
        if let (Some(es), Some(stopper), Some(em)) = (&tcfg.early_stopping, &mut stopper, &eval_m) {
            if early_stopping_step(es, stopper, em, state.epoch, setup, &out)? {
                state.stopped_early = true;
                if !opts.quiet {
                    eprintln!("early stopping: no improvement for {} epochs", es.patience);
                }
            }
            state.best = stopper.best();
        }
        state.wall_s = prior_wall + wall.elapsed().as_secs_f64();
        checkpoint::save(&out, &setup.varmap, &opt, state.clone())?;
    }

    let best = state.best.filter(|_| tcfg.early_stopping.is_some());
    let finished = outputs::Finished {
        state: &state,
        best,
        history: &history,
        prior_wall_s: prior_wall,
        started: wall,
    };
    let summary = outputs::write(cfg, setup, &out, opts, &finished, Default::default())?;
    Ok(RunOutcome::Finished(summary))
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
