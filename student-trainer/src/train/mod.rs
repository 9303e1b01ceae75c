//! The training loop: builds the student, loss terms and optimizer from a [`RunConfig`],
//! trains epoch by epoch on background-prepared batches, evaluates, logs, checkpoints,
//! resumes, and writes the run folder (`config.toml`, `student.safetensors`, `student.onnx`,
//! `metrics.jsonl`, `steps.jsonl`, `summary.json`, `curves.png`).

pub mod checkpoint;
pub mod evaluate;
pub mod init;
pub mod objective;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{ConfigError, LossTerm, RunConfig, StopMetric};
use crate::data::jitter::Jitter;
use crate::data::loader::{mix_seed, streams};
use crate::data::{DataError, EvalData, Loader, TrainData};
use crate::metrics::{self, EpochMetrics, EvalMetrics, Summary};
use crate::model::Student;
use crate::optim::{lr_at, Hyper, OptimError, Optimizer};
use checkpoint::{BestState, CheckpointState};
use objective::{Objective, TargetTensors, PROJECTOR_PREFIX};

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The config file is unreadable or invalid.
    #[error(transparent)]
    ConfigFile(#[from] ConfigError),
    /// The config does not fit the data or the student.
    #[error("config: {0}")]
    Config(String),
    /// Training or eval data is missing or malformed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The student could not be built or run.
    #[error("student: {0}")]
    Model(String),
    /// A loss term failed (shape or value problems).
    #[error("loss term {term}: {message}")]
    Loss {
        /// The term's label, e.g. `kd:logits`.
        term: String,
        /// What failed.
        message: String,
    },
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}, step {step}: loss is {value}; lower train.lr")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// Step within the epoch.
        step: usize,
        /// The loss value.
        value: f32,
    },
    /// A candle error.
    #[error("candle: {0}")]
    Candle(candle_core::Error),
    /// An optimizer error.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The run folder is not usable.
    #[error("run folder {path}: {message}")]
    RunFolder {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Writing metrics or the summary failed.
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    /// ONNX export failed.
    #[error("ONNX export: {0}")]
    Export(String),
}

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

fn folder_err(path: &Path, message: impl Into<String>) -> TrainError {
    TrainError::RunFolder {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Resolves the config and the run folder; writes `config.toml` for a fresh run.
fn prepare(opts: &TrainOptions) -> Result<(RunConfig, PathBuf), TrainError> {
    let cwd = std::env::current_dir().map_err(|e| folder_err(Path::new("."), e.to_string()))?;
    let given = match &opts.config {
        Some(p) => {
            let mut c = RunConfig::load(p)?;
            c.resolve_paths(&cwd);
            Some(c)
        }
        None => None,
    };
    let out = match (&opts.out, &opts.config) {
        (Some(o), _) => o.clone(),
        (None, Some(c)) => {
            let stem = c
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "run".into());
            PathBuf::from("runs").join(stem)
        }
        (None, None) => {
            return Err(TrainError::Config(
                "give --config, or --out with --resume".into(),
            ))
        }
    };
    let saved_path = out.join("config.toml");
    if opts.resume {
        let saved = RunConfig::load(&saved_path)
            .map_err(|e| folder_err(&out, format!("cannot resume: {e}")))?;
        if let Some(g) = given {
            if g != saved {
                return Err(folder_err(
                    &out,
                    "the given --config differs from the run's config.toml; resume without --config or start a new run",
                ));
            }
        }
        return Ok((saved, out));
    }
    let cfg =
        given.ok_or_else(|| TrainError::Config("--config is required unless --resume".into()))?;
    if checkpoint::dir(&out).join("state.json").exists() || out.join("summary.json").exists() {
        return Err(folder_err(
            &out,
            "already holds a run; pass --resume to continue it or choose another --out",
        ));
    }
    std::fs::create_dir_all(&out).map_err(|e| folder_err(&out, e.to_string()))?;
    let text = cfg.to_toml()?;
    std::fs::write(&saved_path, text).map_err(|e| folder_err(&saved_path, e.to_string()))?;
    let _ = std::fs::remove_file(out.join("metrics.jsonl"));
    Ok((cfg, out))
}

/// The eval set's teacher column and whether the config demanded it.
fn eval_teacher(cfg: &RunConfig) -> (Option<String>, bool) {
    if let Some(t) = &cfg.data.eval_teacher {
        return (Some(t.clone()), true);
    }
    let first_kd = cfg.losses.iter().find_map(|t| match t {
        LossTerm::Kd { teacher, .. } if !teacher.contains(':') => Some(teacher.clone()),
        _ => None,
    });
    (first_kd, false)
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

fn all_vars(map: &VarMap) -> Result<Vec<(String, Var)>, TrainError> {
    let data = map
        .data()
        .lock()
        .map_err(|_| TrainError::Config("variable map lock poisoned".into()))?;
    Ok(data.iter().map(|(n, v)| (n.clone(), v.clone())).collect())
}

fn progress(quiet: bool, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(steps as u64);
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(format!("epoch {epoch}/{epochs}"));
    pb
}

/// Trains as configured; see [`TrainOptions`].
pub fn run(opts: &TrainOptions) -> Result<RunOutcome, TrainError> {
    let wall = Instant::now();
    let (cfg, out) = prepare(opts)?;
    let tcfg = &cfg.train;
    let data = Arc::new(TrainData::load(&cfg.data, &cfg.losses)?);
    let input_dim = data.input.cols;
    if !opts.quiet {
        eprintln!(
            "loaded {} training rows × {input_dim} inputs, {} classes; {:.1} MB held in memory",
            data.rows(),
            data.num_classes,
            data.host_bytes() as f64 / 1e6
        );
    }
    let (teacher_col, teacher_required) = eval_teacher(&cfg);
    let eval = match &cfg.data.eval {
        Some(p) => Some(EvalData::load(
            p,
            &cfg.data.input,
            cfg.data.label.as_deref().unwrap_or("label"),
            teacher_col.as_deref(),
            teacher_required,
            Some(input_dim),
            Some(data.num_classes),
        )?),
        None => None,
    };
    let jitter = if tcfg.jitter > 0 {
        Some(Jitter::new(tcfg.jitter, cfg.data.image_shape.as_deref(), input_dim).ok_or_else(|| {
            TrainError::Config(format!(
                "train.jitter needs the image layout: inputs have width {input_dim}, which data.image_shape {:?} does not describe (set data.image_shape = [C, H, W])",
                cfg.data.image_shape
            ))
        })?)
    } else {
        None
    };

    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = init::seeded_var_builder(&varmap, tcfg.seed, &dev);
    let student = Student::new(&cfg.student, input_dim, data.num_classes, vb.clone())
        .map_err(|e| TrainError::Model(e.to_string()))?;
    let objective = Objective::new(&cfg.losses, &data, &student, &vb)?;
    let mut opt = Optimizer::new(Hyper::from_config(tcfg), all_vars(&varmap)?);

    let metrics_path = out.join("metrics.jsonl");
    let mut history: Vec<EpochMetrics> = Vec::new();
    let mut state = CheckpointState {
        epoch: 0,
        optimizer_steps: 0,
        tensors: String::new(),
        best: None,
        stopped_early: false,
        wall_s: 0.0,
        train_samples: 0,
        train_s: 0.0,
    };
    if opts.resume {
        if let Some(s) = checkpoint::load_state(&out)? {
            checkpoint::restore(&out, &s, &varmap, &mut opt)?;
            history = metrics::truncate_epochs(&metrics_path, s.epoch)?;
            state = s;
        } else {
            let _ = std::fs::remove_file(&metrics_path);
        }
    }
    let prior_wall = state.wall_s;
    let steps_per_epoch = data.rows().div_ceil(tcfg.batch_size);
    let best_path = checkpoint::dir(&out).join("best.safetensors");
    let labels_of = objective.labels();
    let steps_path = out.join("steps.jsonl");
    let mut step_log =
        metrics::steps::StepLog::open(&steps_path, labels_of.clone(), state.optimizer_steps)?;

    while state.epoch < tcfg.epochs && !state.stopped_early {
        if opts.stop_after.is_some_and(|n| state.epoch >= n) {
            return Ok(RunOutcome::Paused {
                epochs: state.epoch,
            });
        }
        let epoch = state.epoch; // 0-based index of the epoch being trained
        let t_epoch = Instant::now();
        student.seed_dropout(mix_seed(tcfg.seed, streams::DROPOUT, epoch as u64));
        let loader = Loader::epoch(data.clone(), tcfg.batch_size, tcfg.seed, epoch, jitter);
        let pb = progress(opts.quiet, loader.steps(), epoch + 1, tcfg.epochs);
        let mut sums = vec![0f64; labels_of.len()];
        let mut total_sum = 0f64;
        let mut rows_seen = 0u64;
        let mut lr = tcfg.lr;
        let mut step_time = 0f64;
        for (i, batch) in loader.enumerate() {
            let t0 = Instant::now();
            let rows = batch.rows;
            let x =
                Tensor::from_vec(batch.x, (rows, input_dim), &dev).map_err(TrainError::Candle)?;
            let labels = match batch.labels {
                Some(l) => Some(Tensor::from_vec(l, rows, &dev).map_err(TrainError::Candle)?),
                None => None,
            };
            let targets = batch
                .targets
                .into_iter()
                .map(|t| TargetTensors::from_batch(t, rows, &dev))
                .collect::<candle_core::Result<Vec<_>>>()
                .map_err(TrainError::Candle)?;
            let output = student
                .forward(&x, true)
                .map_err(|e| TrainError::Model(e.to_string()))?;
            let (loss, values) = objective.loss(&output, labels.as_ref(), &targets)?;
            let lv = loss.to_scalar::<f32>().map_err(TrainError::Candle)?;
            if !lv.is_finite() {
                return Err(TrainError::Diverged {
                    epoch: epoch + 1,
                    step: i,
                    value: lv,
                });
            }
            let grads = loss.backward().map_err(TrainError::Candle)?;
            lr = lr_at(tcfg, opt.steps(), steps_per_epoch);
            opt.step(&grads, lr)?;
            drop(grads);
            step_log.record(epoch + 1, opt.steps(), lr, rows, lv, &values)?;
            step_time += t0.elapsed().as_secs_f64();
            total_sum += lv as f64 * rows as f64;
            for (s, v) in sums.iter_mut().zip(&values) {
                *s += *v as f64 * rows as f64;
            }
            rows_seen += rows as u64;
            pb.inc(1);
            if i % 20 == 0 {
                pb.set_message(format!(
                    "loss {:.4} · {:.0} samples/s",
                    total_sum / rows_seen as f64,
                    rows_seen as f64 / step_time.max(1e-9)
                ));
            }
        }
        pb.finish_and_clear();
        step_log.end_epoch()?;
        let n = rows_seen.max(1) as f64;
        let eval_m = match &eval {
            Some(e) => Some(evaluate::evaluate(
                &student,
                e,
                tcfg.eval_batch_size,
                kd_temperature(&cfg.losses),
            )?),
            None => None,
        };
        state.epoch += 1;
        state.optimizer_steps = opt.steps();
        state.train_samples += rows_seen;
        state.train_s += step_time;
        let m = EpochMetrics {
            epoch: state.epoch,
            lr,
            steps: opt.steps(),
            train_loss: total_sum / n,
            train_terms: labels_of
                .iter()
                .zip(&sums)
                .map(|(l, s)| (l.clone(), s / n))
                .collect::<BTreeMap<_, _>>(),
            train_samples_per_s: rows_seen as f64 / step_time.max(1e-9),
            epoch_wall_s: t_epoch.elapsed().as_secs_f64(),
            eval: eval_m.clone(),
        };
        if !opts.quiet {
            eprintln!("{}", epoch_line(&m));
        }
        metrics::append_epoch(&metrics_path, &m)?;
        history.push(m);
        if let (Some(es), Some(em)) = (&tcfg.early_stopping, &eval_m) {
            let value = watched(em, es.metric).ok_or_else(|| {
                TrainError::Config(
                    "early_stopping.metric = \"eval_kd\" needs full teacher logits in the eval set"
                        .into(),
                )
            })?;
            let improved = state.best.is_none_or(|b| value < b.value);
            if improved {
                state.best = Some(BestState {
                    value,
                    epoch: state.epoch,
                });
                std::fs::create_dir_all(checkpoint::dir(&out))
                    .map_err(|e| folder_err(&out, e.to_string()))?;
                checkpoint::save_vars(&varmap, &best_path, |_| true)?;
            } else if state
                .best
                .is_some_and(|b| state.epoch - b.epoch >= es.patience)
            {
                state.stopped_early = true;
                if !opts.quiet {
                    eprintln!("early stopping: no improvement for {} epochs", es.patience);
                }
            }
        }
        state.wall_s = prior_wall + wall.elapsed().as_secs_f64();
        checkpoint::save(&out, &varmap, &opt, state.clone())?;
    }

    // Export the best weights under early stopping, the last ones otherwise.
    let mut exported_epoch = state.epoch;
    if let Some(b) = state.best.filter(|_| tcfg.early_stopping.is_some()) {
        if b.epoch != state.epoch {
            checkpoint::load_vars(&varmap, &best_path)?;
        }
        exported_epoch = b.epoch;
    }
    let final_eval = match &eval {
        Some(e) => Some(evaluate::evaluate(
            &student,
            e,
            tcfg.eval_batch_size,
            kd_temperature(&cfg.losses),
        )?),
        None => None,
    };
    let mut files = vec![
        "config.toml".to_string(),
        "metrics.jsonl".into(),
        "steps.jsonl".into(),
    ];
    checkpoint::save_vars(&varmap, &out.join("student.safetensors"), |n| {
        !n.starts_with(PROJECTOR_PREFIX)
    })?;
    files.push("student.safetensors".into());
    if opts.export_onnx {
        let path = out.join("student.onnx");
        crate::export::export_onnx(&student, &cfg.data.input, "logits", &path)
            .map_err(|e| TrainError::Export(e.to_string()))?;
        files.push("student.onnx".into());
    }
    if opts.plot {
        let path = out.join("curves.png");
        let steps = metrics::steps::read_steps(&steps_path)?;
        let title = crate::plot::run_title(&out, &cfg, student.param_count());
        crate::plot::write_curves(&path, &title, &history, &steps)
            .map_err(|e| folder_err(&path, e.to_string()))?;
        files.push("curves.png".into());
    }
    files.push("summary.json".into());
    let summary = Summary {
        epochs: state.epoch,
        stopped_early: state.stopped_early,
        exported_epoch,
        test_errors: final_eval.as_ref().map(|e| e.errors),
        accuracy: final_eval.as_ref().map(|e| e.accuracy),
        agreement: final_eval.as_ref().and_then(|e| e.agreement),
        eval: final_eval,
        param_count: student.param_count(),
        train_rows: data.rows(),
        samples_per_s: state.train_samples as f64 / state.train_s.max(1e-9),
        wall_s: prior_wall + wall.elapsed().as_secs_f64(),
        files,
    };
    metrics::write_summary(&out.join("summary.json"), &summary)?;
    Ok(RunOutcome::Finished(summary))
}

/// One human-readable line per epoch.
pub fn epoch_line(m: &EpochMetrics) -> String {
    let mut s = format!(
        "epoch {:>3}  loss {:.4}  lr {:.2e}  {:.0} samples/s",
        m.epoch, m.train_loss, m.lr, m.train_samples_per_s
    );
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
