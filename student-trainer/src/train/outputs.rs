//! What a finished run writes: the exported weights (the best epoch's under early stopping),
//! `student.onnx`, `curves.png` and `summary.json`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::checkpoint::{self, BestState, CheckpointState};
use super::setup::Setup;
use super::{evaluate_opt, run_folder, TrainError, TrainOptions};
use crate::config::RunConfig;
use crate::metrics::{self, EpochMetrics, EvalMetrics, NetworkSummary, Summary};
use std::collections::BTreeMap;
pub use trainer_core::model::vars::is_student_var;
use trainer_eval::teacher::{teacher_eval, TeacherCheck};

/// Per-step training losses of a run (`metrics::steps`).
pub const STEPS_FILE: &str = "steps.jsonl";
/// Per-epoch metrics of a run, a line per network and epoch (`metrics::EpochMetrics`).
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The early-stopping copy of the best weights.
pub fn best_path(out: &Path) -> PathBuf {
    checkpoint::dir(out).join("best.safetensors")
}

/// Whether `name` is an exit head's exported weight (`__exit{L}.fc.*`, `__exit{L}.out.*`;
/// the training-only hint projection excluded).
pub fn is_exit_var(name: &str) -> bool {
    name.starts_with(trainer_core::model::exits::EXIT_PREFIX) && !name.contains(".hint.")
}

/// Where the loop ended.
pub struct Finished<'a> {
    /// The final loop state.
    pub state: &'a CheckpointState,
    /// The best epoch, when early stopping was configured.
    pub best: Option<BestState>,
    /// Every epoch's metrics.
    pub history: &'a [EpochMetrics],
    /// Wall time of earlier sessions of this run.
    pub prior_wall_s: f64,
    /// When this session started.
    pub started: Instant,
}

/// Restores the weights to export and writes the run folder's outputs and summary; `networks`
/// are an online run's other networks (already written), and a self-distilled run's exits are
/// added to them here.
pub fn write(
    cfg: &RunConfig,
    setup: &Setup,
    out: &Path,
    opts: &TrainOptions,
    end: &Finished,
    mut networks: BTreeMap<String, NetworkSummary>,
) -> Result<Summary, TrainError> {
    let state = end.state;
    let exported_epoch = match end.best {
        Some(b) => {
            if b.epoch != state.epoch {
                checkpoint::load_vars(&setup.varmap, &best_path(out))?;
            }
            b.epoch
        }
        None => state.epoch,
    };
    let final_eval = evaluate_opt(&setup.student, setup.eval.as_deref(), cfg)?;
    let mut files = run_files();
    checkpoint::save_vars(
        &setup.varmap,
        &out.join("student.safetensors"),
        is_student_var,
    )?;
    files.push("student.safetensors".into());
    if opts.export_onnx {
        let path = out.join("student.onnx");
        trainer_core::export::export_onnx(&setup.student, &cfg.data.input, "logits", &path)?;
        files.push("student.onnx".into());
    }
    if setup.self_distill.is_some() {
        files.push("exits.safetensors".into());
        let exits = write_exits(cfg, setup, out, opts)?;
        for n in exits.values() {
            files.extend(n.files.iter().cloned());
        }
        networks.extend(exits);
    }
    for n in networks.values() {
        for f in &n.files {
            if !files.contains(f) {
                files.push(f.clone());
            }
        }
    }
    if opts.plot {
        write_plot(out, cfg, setup.student.param_count(), end.history)?;
        files.push("curves.png".into());
    }
    files.push("summary.json".into());
    let teacher_check = teacher_check(cfg, setup, final_eval.as_ref());
    let warnings = teacher_check
        .iter()
        .filter_map(|c| c.warning.clone())
        .collect();
    let summary = Summary {
        epochs: state.epoch,
        stopped_early: state.stopped_early,
        exported_epoch,
        test_errors: final_eval.as_ref().map(|e| e.errors),
        accuracy: final_eval.as_ref().map(|e| e.accuracy),
        agreement: final_eval.as_ref().and_then(|e| e.agreement),
        eval: final_eval,
        param_count: setup.student.param_count(),
        train_rows: setup.data.rows(),
        samples_per_s: state.train_samples as f64 / state.train_s.max(1e-9),
        wall_s: end.prior_wall_s + end.started.elapsed().as_secs_f64(),
        files,
        text: None,
        teacher_check,
        warnings,
        networks,
    };
    metrics::write_summary(&out.join("summary.json"), &summary)?;
    Ok(summary)
}

/// Writes a self-distilled run's `exits.safetensors` and exit models; returns the exits'
/// summaries (with their final eval).
fn write_exits(
    cfg: &RunConfig,
    setup: &Setup,
    out: &Path,
    opts: &TrainOptions,
) -> Result<BTreeMap<String, NetworkSummary>, TrainError> {
    let Some(sd) = &setup.self_distill else {
        return Ok(BTreeMap::new());
    };
    let evals = match setup.eval.as_deref() {
        Some(e) => sd.evaluate(
            &setup.student,
            e,
            cfg.train.eval_batch_size,
            super::kd_temperature(&cfg.losses),
        )?,
        None => Vec::new(),
    };
    let exits = sd.export(
        &setup.student,
        &cfg.data.input,
        out,
        opts.export_onnx,
        &evals,
    )?;
    checkpoint::save_vars(&setup.varmap, &out.join("exits.safetensors"), is_exit_var)?;
    Ok(exits)
}

/// The files every run folder holds before its weights: config, metrics and step log.
pub fn run_files() -> Vec<String> {
    vec![
        run_folder::CONFIG_FILE.to_string(),
        METRICS_FILE.into(),
        STEPS_FILE.into(),
    ]
}

/// Draws `curves.png` from the `[student]`'s `history` and the run's `steps.jsonl`.
pub fn write_plot(
    out: &Path,
    cfg: &RunConfig,
    param_count: usize,
    history: &[EpochMetrics],
) -> Result<(), TrainError> {
    let path = out.join("curves.png");
    let steps = metrics::steps::read_steps(&out.join(STEPS_FILE))?;
    let title = crate::plot::run_title(out, cfg, param_count);
    crate::plot::write_curves(&path, &title, history, &steps).map_err(|source| TrainError::Plot {
        path: path.clone(),
        source: Box::new(source),
    })
}

/// The teacher's eval errors against a scratch student: this run's when it has no teacher
/// terms, else the run named by `data.scratch_run`; else the teacher's errors and no verdict.
fn teacher_check(
    cfg: &RunConfig,
    setup: &Setup,
    student: Option<&EvalMetrics>,
) -> Option<TeacherCheck> {
    let teacher = teacher_eval(setup.eval.as_deref()?)?;
    let student = student?;
    if cfg.losses.iter().all(|t| t.teacher().is_none()) {
        return Some(TeacherCheck::against_scratch(
            teacher,
            student.errors as f64,
            "this run's student (trained without teacher terms)",
            None,
        ));
    }
    let Some(run) = &cfg.data.scratch_run else {
        return Some(TeacherCheck::without_baseline(teacher, ""));
    };
    Some(match scratch_errors(Path::new(run), student.rows) {
        Ok(errors) => TeacherCheck::against_scratch(
            teacher,
            errors as f64,
            "the scratch run's student",
            Some(run.clone()),
        ),
        Err(why) => {
            TeacherCheck::without_baseline(teacher, &format!("data.scratch_run {run}: {why}"))
        }
    })
}

/// The eval errors of the finished scratch run in `run`, checked to be a run without teacher
/// terms on an eval set of `rows` rows; the error says why it cannot serve as the baseline.
fn scratch_errors(run: &Path, rows: usize) -> Result<usize, String> {
    let cfg = RunConfig::load(&run.join(run_folder::CONFIG_FILE)).map_err(|e| e.to_string())?;
    if cfg.losses.iter().any(|t| t.teacher().is_some()) {
        return Err("that run has teacher terms, so it is no scratch baseline".into());
    }
    let path = run.join("summary.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {} (is the run finished?): {e}", path.display()))?;
    let summary: Summary =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let eval = summary
        .eval
        .ok_or_else(|| format!("{} has no eval metrics", path.display()))?;
    if eval.rows != rows {
        return Err(format!(
            "its eval set has {} rows, this run's {rows}: not the same eval set",
            eval.rows
        ));
    }
    Ok(eval.errors)
}
