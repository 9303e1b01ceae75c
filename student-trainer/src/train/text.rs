//! Training a text student (`static`, `transformer`) from a token column against the
//! teacher's stored embeddings: the same optimizer, schedule, checkpoints, resume and run
//! folder as the classification loop ([`super::run`]), with token batches from
//! [`trainer_data::text::loader`] and eval = the loss terms on held-out rows plus teacher
//! fidelity (mean cosine of student and teacher embeddings).
//!
//! The student as initialised is evaluated before any step (`summary.json`
//! `text.initial_eval`), so a run shows what distillation changed. At the end
//! `student.safetensors` (projectors excluded) and `student.onnx` (`input_ids`,
//! `attention_mask`, and `token_type_ids` when `data.token_types` is set) are written.
//!
//! `[self_distill]` (transformer students) adds the exits of [`super::text_exits`]: their
//! terms join each step's loss, each exit's eval is a `metrics.jsonl` line of its own
//! (`network = "exit{L}"`) and the run ends with `exits.safetensors` and `exit{L}.onnx`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;

use super::checkpoint::{self, CheckpointState};
use super::epoch::{optimizer_step, StepAt};
use super::text_exits::TextSelfDistill;
use super::text_objective::TextObjective;
use super::{init, outputs, run_folder, RunOutcome, TrainError, TrainOptions};
use crate::config::{LossTerm, RunConfig};
use crate::metrics::{self, EpochMetrics, NetworkSummary, Summary, TextEvalMetrics, TextSummary};
use trainer_core::model::text::TextNetwork;
use trainer_core::model::TextStudent;
use trainer_core::optim::Optimizer;
use trainer_data::text::loader::{make_text_batch, EpochPlan, TextBatch, TextLoader};
use trainer_data::text::rows::{
    self as text, TextColumns, TextRows, TextTrainData, DEFAULT_SHUFFLE_WINDOW,
};
use trainer_data::text::tokens::TokenRule;

/// A text run's data, student and objective.
pub struct TextSetup {
    /// Training rows (resident or streamed).
    pub data: Arc<TextTrainData>,
    /// Held-out rows, ordered by id hash.
    pub eval: Option<TextRows>,
    /// The student.
    pub student: TextStudent,
    /// The loss terms (with projectors).
    pub objective: TextObjective,
    /// All variables: student and projectors.
    pub varmap: VarMap,
    /// Index of the fidelity column among the targets, and its name.
    pub fidelity: Option<(usize, String)>,
    /// Self-distillation exits, when `[self_distill]` is set.
    pub exits: Option<TextSelfDistill>,
}

/// The column teacher fidelity is measured against: `data.eval_teacher`, else the first term
/// on the pooled embedding.
fn fidelity_column(cfg: &RunConfig) -> Option<String> {
    cfg.data.eval_teacher.clone().or_else(|| {
        cfg.losses
            .iter()
            .find(|t| t.student_layer() == Some(None))
            .and_then(LossTerm::teacher)
            .map(str::to_string)
    })
}

/// Which columns to read for `cfg` and `student`.
pub fn text_columns(cfg: &RunConfig, student: &TextStudent) -> TextColumns {
    let mut targets: Vec<String> = Vec::new();
    let named = cfg
        .losses
        .iter()
        .filter_map(LossTerm::teacher)
        .map(str::to_string)
        .chain(fidelity_column(cfg));
    for c in named {
        if !targets.contains(&c) {
            targets.push(c);
        }
    }
    let (max_len, type_limit, types) = match student.network() {
        TextNetwork::Transformer(t) => (
            t.config().max_positions,
            t.config().type_vocab,
            cfg.data.token_types.clone(),
        ),
        TextNetwork::Static(_) => (usize::MAX, 0, None),
    };
    TextColumns {
        tokens: cfg.data.input.clone(),
        types,
        targets,
        token_rule: TokenRule {
            limit: student.vocab(),
            limit_name: "the student's vocabulary",
            max_len,
        },
        type_limit,
    }
}

impl TextSetup {
    /// Builds the seeded student (with its `init`), reads the data and checks the terms.
    pub fn build(cfg: &RunConfig, quiet: bool) -> Result<Self, TrainError> {
        let varmap = VarMap::new();
        let vb = init::seeded_var_builder(&varmap, cfg.train.seed, &Device::Cpu);
        let student = TextStudent::new(&cfg.student, vb.clone())?;
        student.init_from_config(&varmap)?;
        let columns = text_columns(cfg, &student);
        let window = cfg.data.shuffle_window.unwrap_or(DEFAULT_SHUFFLE_WINDOW);
        let (data, held_out) = TextTrainData::load(
            &cfg.data.train,
            columns,
            window,
            cfg.data.eval_fraction,
            cfg.data.train_fraction,
        )?;
        let eval = match (&cfg.data.eval, held_out) {
            (Some(spec), _) => Some(text::load_eval(spec, &data.columns)?),
            (None, held) => held,
        };
        let objective = TextObjective::new(
            &cfg.losses,
            &data.columns.targets,
            &data.widths,
            &student,
            &vb,
        )?;
        let exits = cfg
            .self_distill
            .as_ref()
            .map(|sd| TextSelfDistill::new(sd, &student, &vb))
            .transpose()?;
        if let Some(sd) = &exits {
            sd.init_heads(&student, &varmap)?;
        }
        let fidelity = match fidelity_column(cfg) {
            Some(c) => {
                let j = data
                    .columns
                    .targets
                    .iter()
                    .position(|t| *t == c)
                    .ok_or_else(|| TrainError::Config(format!("fidelity column {c:?} not read")))?;
                if data.widths[j] != student.output_dim() {
                    return Err(TrainError::Config(format!(
                        "data.eval_teacher: teacher column {c:?} has width {}, the student's embedding {}; fidelity compares the two (set student.project_to = {})",
                        data.widths[j],
                        student.output_dim(),
                        data.widths[j]
                    )));
                }
                Some((j, c))
            }
            None => None,
        };
        if !quiet {
            eprintln!(
                "{} training rows ({}), {} eval rows; {} student, {} parameters",
                data.rows,
                match &data.resident {
                    Some(r) => format!("held in memory, {:.1} MB", r.bytes() as f64 / 1e6),
                    None => format!(
                        "streamed in {} windows of about {} rows",
                        data.windows(),
                        data.rows.div_ceil(data.windows())
                    ),
                },
                eval.as_ref().map_or(0, TextRows::rows),
                student.arch_name(),
                student.param_count()
            );
        }
        Ok(Self {
            data: Arc::new(data),
            eval,
            student,
            objective,
            varmap,
            fidelity,
            exits,
        })
    }

    /// Metric labels of every training term: the `[[loss]]` terms, then the exits'.
    pub fn labels(&self) -> Vec<String> {
        let mut labels = self.objective.labels();
        if let Some(sd) = &self.exits {
            labels.extend(sd.labels(&self.objective));
        }
        labels
    }

    /// The variables, named, for the optimizer.
    pub fn vars(&self) -> Result<Vec<(String, Var)>, TrainError> {
        let data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| TrainError::Config("variable map lock poisoned".into()))?;
        Ok(data.iter().map(|(n, v)| (n.clone(), v.clone())).collect())
    }

    /// Whether batches carry token types.
    pub fn token_types(&self) -> bool {
        self.data.columns.types.is_some()
    }
}

/// A host batch as tensors: `(ids, mask, types, targets)`.
type BatchTensors = (Tensor, Tensor, Option<Tensor>, Vec<Tensor>);

/// Wraps a host batch's buffers as tensors (no copies beyond candle's own).
pub fn batch_tensors(b: TextBatch, widths: &[usize]) -> candle_core::Result<BatchTensors> {
    let dev = Device::Cpu;
    let shape = (b.rows, b.seq);
    let ids = Tensor::from_vec(b.ids, shape, &dev)?;
    let mask = Tensor::from_vec(b.mask, shape, &dev)?;
    let types = b
        .types
        .map(|t| Tensor::from_vec(t, shape, &dev))
        .transpose()?;
    let targets = b
        .targets
        .into_iter()
        .zip(widths)
        .map(|(v, &w)| Tensor::from_vec(v, (b.rows, w), &dev))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok((ids, mask, types, targets))
}

/// The forward pass and loss of one host batch: the `[[loss]]` terms, plus the exits'.
pub fn step_loss(setup: &TextSetup, batch: TextBatch) -> Result<(Tensor, Vec<f32>), TrainError> {
    let (ids, mask, types, targets) = batch_tensors(batch, &setup.data.widths)?;
    let out = setup.student.forward(&ids, &mask, types.as_ref())?;
    let (loss, mut values) = setup.objective.loss(&out, &targets)?;
    let Some(sd) = &setup.exits else {
        return Ok((loss, values));
    };
    let (exit_loss, exit_values) = sd.loss(&out, &targets, &setup.objective)?;
    values.extend(exit_values);
    Ok(((loss + exit_loss)?, values))
}

/// Row-wise cosine similarities of two `[rows, d]` row-major buffers, summed.
fn cosine_sum(a: &[f32], b: &[f32], d: usize) -> f64 {
    a.chunks_exact(d)
        .zip(b.chunks_exact(d))
        .map(|(x, y)| {
            let (mut xy, mut xx, mut yy) = (0f64, 0f64, 0f64);
            for (&p, &q) in x.iter().zip(y) {
                xy += p as f64 * q as f64;
                xx += p as f64 * p as f64;
                yy += q as f64 * q as f64;
            }
            xy / (xx.sqrt() * yy.sqrt()).max(1e-12)
        })
        .sum()
}

/// Row-weighted sums of one network's eval over the chunks.
struct EvalSums {
    loss: f64,
    terms: Vec<f64>,
    cos: f64,
}

impl EvalSums {
    fn new(terms: usize) -> Self {
        Self {
            loss: 0.0,
            terms: vec![0.0; terms],
            cos: 0.0,
        }
    }

    /// Adds a chunk of `rows` rows: its mean `loss`, term `values`, and the cosine sum of
    /// `embedding` with the `teacher` rows (`width` wide).
    fn add(
        &mut self,
        rows: usize,
        loss: f64,
        values: &[f32],
        embedding: &Tensor,
        teacher: &[f32],
        width: usize,
    ) -> Result<(), TrainError> {
        let r = rows as f64;
        self.loss += loss * r;
        for (s, v) in self.terms.iter_mut().zip(values) {
            *s += *v as f64 * r;
        }
        let emb = embedding.flatten_all()?.to_vec1::<f32>()?;
        self.cos += cosine_sum(&emb, teacher, width);
        Ok(())
    }

    fn finish(self, rows: usize, labels: &[String], fidelity_column: &str) -> TextEvalMetrics {
        let nf = rows as f64;
        TextEvalMetrics {
            rows,
            loss: self.loss / nf,
            terms: labels
                .iter()
                .zip(&self.terms)
                .map(|(l, s)| (l.clone(), s / nf))
                .collect::<BTreeMap<_, _>>(),
            fidelity_column: fidelity_column.to_string(),
            fidelity: self.cos / nf,
        }
    }
}

/// A text run's eval: the student's, and each exit's by name.
pub struct TextEval {
    /// The student (its deepest output).
    pub student: TextEvalMetrics,
    /// Each exit's own terms (`[[loss]]` terms on its embedding, `kd`, `hint`), its weighted
    /// exit loss and its fidelity.
    pub exits: Vec<(String, TextEvalMetrics)>,
}

impl TextEval {
    /// The student's metrics and the exits', from an eval that may not have run.
    fn split(eval: Option<Self>) -> (Option<TextEvalMetrics>, Vec<(String, TextEvalMetrics)>) {
        match eval {
            Some(e) => (Some(e.student), e.exits),
            None => (None, Vec::new()),
        }
    }
}

/// The loss terms and teacher fidelity of the student (and its exits) on `eval`, in chunks of
/// `chunk` rows.
pub fn evaluate(
    setup: &TextSetup,
    eval: &TextRows,
    chunk: usize,
    labels: &[String],
    weights: &[f64],
) -> Result<Option<TextEval>, TrainError> {
    let Some((fid, fid_col)) = &setup.fidelity else {
        return Ok(None);
    };
    let n = eval.rows();
    if n == 0 {
        return Ok(None);
    }
    let exit_labels = setup
        .exits
        .as_ref()
        .map(|sd| sd.term_labels(&setup.objective))
        .unwrap_or_default();
    let mut student = EvalSums::new(labels.len());
    let heads = setup.exits.as_ref().map_or(0, |sd| sd.heads().len());
    let mut exits: Vec<EvalSums> = (0..heads)
        .map(|_| EvalSums::new(exit_labels.len()))
        .collect();
    let width = setup.data.widths[*fid];
    let idx: Vec<usize> = (0..n).collect();
    for part in idx.chunks(chunk.max(1)) {
        let batch = make_text_batch(eval, part);
        let (ids, mask, types, targets) = batch_tensors(batch, &setup.data.widths)?;
        let out = setup.student.forward(&ids, &mask, types.as_ref())?;
        let (_, values) = setup.objective.loss(&out, &targets)?;
        let loss: f64 = values.iter().zip(weights).map(|(v, w)| *v as f64 * w).sum();
        let teacher = targets[*fid].flatten_all()?.to_vec1::<f32>()?;
        student.add(part.len(), loss, &values, &out.embedding, &teacher, width)?;
        if let Some(sd) = &setup.exits {
            for (sums, t) in exits
                .iter_mut()
                .zip(sd.terms(&out, &targets, &setup.objective)?)
            {
                let loss = t.loss.to_scalar::<f32>()? as f64;
                sums.add(part.len(), loss, &t.values, &t.embedding, &teacher, width)?;
            }
        }
    }
    let names = setup
        .exits
        .as_ref()
        .map(|sd| sd.heads().iter().map(|h| h.name()).collect::<Vec<_>>())
        .unwrap_or_default();
    Ok(Some(TextEval {
        student: student.finish(n, labels, fid_col),
        exits: names
            .into_iter()
            .zip(exits)
            .map(|(name, sums)| (name, sums.finish(n, &exit_labels, fid_col)))
            .collect(),
    }))
}

/// Sums over one epoch.
struct Totals {
    loss: f64,
    terms: Vec<f64>,
    rows: u64,
    step_s: f64,
    lr: f64,
    tokens: u64,
    padded: u64,
    peak_window: usize,
}

/// Trains one epoch (0-based `epoch`).
fn train_epoch(
    setup: &TextSetup,
    cfg: &RunConfig,
    opt: &mut Optimizer,
    epoch: usize,
    steps_per_epoch: usize,
    step_log: &mut metrics::steps::StepLog,
) -> Result<Totals, TrainError> {
    let tcfg = &cfg.train;
    let plan = EpochPlan {
        batch_size: tcfg.batch_size,
        bucket_by_length: cfg.data.bucket_by_length,
        seed: tcfg.seed,
        epoch,
    };
    let mut loader = TextLoader::epoch(setup.data.clone(), plan);
    let n_terms = setup.labels().len();
    let mut t = Totals {
        loss: 0.0,
        terms: vec![0.0; n_terms],
        rows: 0,
        step_s: 0.0,
        lr: tcfg.lr,
        tokens: 0,
        padded: 0,
        peak_window: 0,
    };
    for (i, batch) in loader.by_ref().enumerate() {
        let batch = batch?;
        let t0 = Instant::now();
        let rows = batch.rows;
        t.tokens += batch.mask.iter().filter(|&&m| m > 0.0).count() as u64;
        t.padded += (batch.rows * batch.seq) as u64;
        let (loss, values) = step_loss(setup, batch)?;
        let at = StepAt {
            epoch,
            step: i,
            steps_per_epoch,
            rows,
        };
        let (lv, lr) = optimizer_step(&loss, &values, at, tcfg, opt, step_log)?;
        let r = rows as f64;
        t.loss += lv as f64 * r;
        for (s, v) in t.terms.iter_mut().zip(&values) {
            *s += *v as f64 * r;
        }
        t.rows += rows as u64;
        t.step_s += t0.elapsed().as_secs_f64();
        t.lr = lr;
    }
    t.peak_window = loader.finish();
    step_log.end_epoch()?;
    Ok(t)
}

/// One human-readable eval line.
fn eval_line(prefix: &str, e: &TextEvalMetrics) -> String {
    format!(
        "{prefix}: eval loss {:.4}  fidelity {:.4} (mean cosine vs {:?}, {} rows)",
        e.loss, e.fidelity, e.fidelity_column, e.rows
    )
}

/// Trains a text student as configured; `cfg` and `out` come from [`run_folder::prepare`].
pub fn run(
    opts: &TrainOptions,
    cfg: RunConfig,
    out: PathBuf,
    wall: Instant,
) -> Result<RunOutcome, TrainError> {
    let tcfg = &cfg.train;
    let setup = TextSetup::build(&cfg, opts.quiet)?;
    let objective_labels = setup.objective.labels();
    let labels = setup.labels();
    let weights: Vec<f64> = cfg.losses.iter().map(LossTerm::weight).collect();
    let eval = |s: &TextSetup| match &s.eval {
        Some(e) => evaluate(s, e, tcfg.eval_batch_size, &objective_labels, &weights),
        None => Ok(None),
    };
    // Weights are seeded and `init` is deterministic, so this is the same on resume.
    let initial_eval = eval(&setup)?.map(|e| e.student);
    if let (false, Some(e)) = (opts.quiet, &initial_eval) {
        eprintln!("{}", eval_line("initialised student", e));
    }
    let mut opt = Optimizer::new(tcfg.optimizer.into(), setup.vars()?);
    let metrics_path = out.join("metrics.jsonl");
    let (mut state, mut history) = match checkpoint::load_state(&out)? {
        Some(s) if opts.resume => {
            checkpoint::restore(&out, &s, &setup.varmap, &mut opt)?;
            let h = metrics::truncate_epochs(&metrics_path, s.epoch)?;
            (s, h)
        }
        _ => {
            let _ = std::fs::remove_file(&metrics_path);
            (CheckpointState::fresh(), Vec::new())
        }
    };
    let prior_wall = state.wall_s;
    let mut step_log = metrics::steps::StepLog::open(
        &out.join(outputs::STEPS_FILE),
        labels.clone(),
        state.optimizer_steps,
    )?;
    // Exact when resident; streamed, each window's last batch may be short, so an epoch can
    // take up to `windows - 1` more steps than this (the schedule then holds its final value).
    let steps_per_epoch = setup.data.rows.div_ceil(tcfg.batch_size);
    let mut efficiency = 0.0;
    let mut peak_window = setup.data.resident.as_ref().map_or(0, |r| r.rows());
    while state.epoch < tcfg.epochs {
        if opts.stop_after.is_some_and(|n| state.epoch >= n) {
            return Ok(RunOutcome::Paused {
                epochs: state.epoch,
            });
        }
        let t_epoch = Instant::now();
        let t = train_epoch(
            &setup,
            &cfg,
            &mut opt,
            state.epoch,
            steps_per_epoch,
            &mut step_log,
        )?;
        let (text_eval, exit_evals) = TextEval::split(eval(&setup)?);
        state.epoch += 1;
        state.optimizer_steps = opt.steps();
        state.train_samples += t.rows;
        state.train_s += t.step_s;
        efficiency = t.tokens as f64 / t.padded.max(1) as f64;
        peak_window = peak_window.max(t.peak_window);
        let n = t.rows.max(1) as f64;
        let m = EpochMetrics {
            epoch: state.epoch,
            lr: t.lr,
            steps: opt.steps(),
            train_loss: t.loss / n,
            train_terms: labels
                .iter()
                .zip(&t.terms)
                .map(|(l, s)| (l.clone(), s / n))
                .collect(),
            train_samples_per_s: t.rows as f64 / t.step_s.max(1e-9),
            epoch_wall_s: t_epoch.elapsed().as_secs_f64(),
            eval: None,
            text_eval,
            network: setup
                .exits
                .as_ref()
                .map(|_| metrics::STUDENT_NETWORK.to_string()),
        };
        if !opts.quiet {
            let mut line = format!(
                "epoch {:>3}  loss {:.4}  lr {:.2e}  {:.0} samples/s  padding efficiency {:.3}",
                m.epoch, m.train_loss, m.lr, m.train_samples_per_s, efficiency
            );
            if let Some(e) = &m.text_eval {
                line.push_str(&format!(
                    "  eval loss {:.4}  fidelity {:.4}",
                    e.loss, e.fidelity
                ));
            }
            eprintln!("{line}");
        }
        metrics::append_epoch(&metrics_path, &m)?;
        for (name, e) in exit_evals {
            let mut line = m.clone();
            let own = format!("{name}:");
            line.train_terms.retain(|k, _| k.starts_with(&own));
            if !opts.quiet {
                eprintln!(
                    "{}",
                    eval_line(&format!("epoch {:>3}  {name}", m.epoch), &e)
                );
            }
            line.text_eval = Some(e);
            line.network = Some(name);
            metrics::append_epoch(&metrics_path, &line)?;
        }
        history.push(m);
        state.wall_s = prior_wall + wall.elapsed().as_secs_f64();
        checkpoint::save(&out, &setup.varmap, &opt, state.clone())?;
    }
    let (final_eval, exit_evals) = TextEval::split(eval(&setup)?);
    let mut files = vec![
        run_folder::CONFIG_FILE.to_string(),
        "metrics.jsonl".into(),
        outputs::STEPS_FILE.into(),
    ];
    checkpoint::save_vars(
        &setup.varmap,
        &out.join("student.safetensors"),
        outputs::is_student_var,
    )?;
    files.push("student.safetensors".into());
    if opts.export_onnx {
        let path = out.join("student.onnx");
        trainer_core::export::export_text_onnx(&setup.student, setup.token_types(), &path)?;
        files.push("student.onnx".into());
    }
    let mut networks = BTreeMap::new();
    if let Some(sd) = &setup.exits {
        checkpoint::save_vars(
            &setup.varmap,
            &out.join("exits.safetensors"),
            outputs::is_exit_var,
        )?;
        files.push("exits.safetensors".into());
        let mut exit_evals = exit_evals.into_iter().collect::<BTreeMap<_, _>>();
        for h in sd.heads() {
            let name = h.name();
            let mut exit_files = Vec::new();
            if opts.export_onnx {
                let file = format!("{name}.onnx");
                trainer_core::export::export_text_exit_onnx(
                    &setup.student,
                    h,
                    setup.token_types(),
                    &out.join(&file),
                )?;
                files.push(file.clone());
                exit_files.push(file);
            }
            networks.insert(
                name.clone(),
                NetworkSummary {
                    role: "exit".into(),
                    eval: None,
                    test_errors: None,
                    text_eval: exit_evals.remove(&name),
                    param_count: setup.student.exit_param_count(h),
                    files: exit_files,
                },
            );
        }
    }
    if opts.plot {
        let path = out.join("curves.png");
        let steps = metrics::steps::read_steps(&out.join(outputs::STEPS_FILE))?;
        let title = crate::plot::run_title(&out, &cfg, setup.student.param_count());
        crate::plot::write_curves(&path, &title, &history, &steps).map_err(|source| {
            TrainError::Plot {
                path: path.clone(),
                source: Box::new(source),
            }
        })?;
        files.push("curves.png".into());
    }
    files.push("summary.json".into());
    let summary = Summary {
        epochs: state.epoch,
        stopped_early: false,
        exported_epoch: state.epoch,
        eval: None,
        test_errors: None,
        accuracy: None,
        agreement: None,
        param_count: setup.student.param_count(),
        train_rows: setup.data.rows,
        samples_per_s: state.train_samples as f64 / state.train_s.max(1e-9),
        wall_s: prior_wall + wall.elapsed().as_secs_f64(),
        files,
        text: Some(Box::new(TextSummary {
            initial_eval,
            final_eval,
            eval_rows: setup.eval.as_ref().map_or(0, TextRows::rows),
            window_rows: peak_window,
            resident: setup.data.resident.is_some(),
            padding_efficiency: efficiency,
        })),
        // Text runs have no teacher logits to score the teacher with.
        teacher_check: None,
        warnings: Vec::new(),
        networks,
    };
    metrics::write_summary(&out.join("summary.json"), &summary)?;
    Ok(RunOutcome::Finished(summary))
}
