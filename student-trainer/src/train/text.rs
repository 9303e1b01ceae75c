//! Training a text student (`static`, `transformer`) from a token column against the
//! teacher's stored embeddings: the same optimizer, schedule, run folder and
//! [`super::learner::Learner`] (checkpoints, resume, metrics files) as a classifier, as the
//! [`TextTask`], with token batches from
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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;

use super::checkpoint::{self, CheckpointState, TextProgress};
use super::epoch::{optimizer_step, EpochTotals, StepAt};
use super::learner::{exit_line, EpochLine, Learner, Task};
use super::outputs::{self, Finished};
use super::outputs::{is_exit_var, is_student_var};
use super::text_exits::TextSelfDistill;
use super::text_objective::TextObjective;
use super::{init, RunOutcome, TrainError, TrainOptions};
use crate::config::{LossTerm, RunConfig};
use crate::metrics::steps::StepLog;
use crate::metrics::{
    self, EpochMetrics, NetworkSummary, Summary, TextEvalMetrics, TextSummary, STUDENT_NETWORK,
};
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

/// The fidelity column's index among the targets, and its name, checked to be as wide as the
/// student's embedding.
fn fidelity(
    cfg: &RunConfig,
    data: &TextTrainData,
    student: &TextStudent,
) -> Result<Option<(usize, String)>, TrainError> {
    let Some(c) = fidelity_column(cfg) else {
        return Ok(None);
    };
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
    Ok(Some((j, c)))
}

/// What a text run loaded, in one line.
fn loaded_line(data: &TextTrainData, eval: Option<&TextRows>, student: &TextStudent) -> String {
    format!(
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
        eval.map_or(0, TextRows::rows),
        student.arch_name(),
        student.param_count()
    )
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
        let fidelity = fidelity(cfg, &data, &student)?;
        if !quiet {
            eprintln!("{}", loaded_line(&data, eval.as_ref(), &student));
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

/// What an epoch's batches looked like: real and padded token slots, and the most rows a
/// streamed window held.
struct Padding {
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
    step_log: &mut StepLog,
) -> Result<(EpochTotals, Padding), TrainError> {
    let tcfg = &cfg.train;
    let plan = EpochPlan {
        batch_size: tcfg.batch_size,
        bucket_by_length: cfg.data.bucket_by_length,
        seed: tcfg.seed,
        epoch,
    };
    let mut loader = TextLoader::epoch(setup.data.clone(), plan);
    let mut totals = EpochTotals::new(setup.labels().len(), tcfg.lr);
    let mut pad = Padding {
        tokens: 0,
        padded: 0,
        peak_window: 0,
    };
    for (i, batch) in loader.by_ref().enumerate() {
        let batch = batch?;
        let t0 = Instant::now();
        let rows = batch.rows;
        pad.tokens += batch.mask.iter().filter(|&&m| m > 0.0).count() as u64;
        pad.padded += (batch.rows * batch.seq) as u64;
        let (loss, values) = step_loss(setup, batch)?;
        let at = StepAt {
            epoch,
            step: i,
            steps_per_epoch,
            rows,
        };
        let (lv, lr) = optimizer_step(&loss, &values, at, tcfg, opt, step_log)?;
        totals.add(rows, lv, &values, t0.elapsed().as_secs_f64(), lr);
    }
    pad.peak_window = loader.finish();
    step_log.end_epoch()?;
    Ok((totals, pad))
}

/// One human-readable eval line.
fn eval_line(prefix: &str, e: &TextEvalMetrics) -> String {
    format!(
        "{prefix}: eval loss {:.4}  fidelity {:.4} (mean cosine vs {:?}, {} rows)",
        e.loss, e.fidelity, e.fidelity_column, e.rows
    )
}

/// The student's line of an epoch on the terminal.
fn student_line(m: &EpochMetrics, efficiency: f64) -> String {
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
    line
}

/// Trains a text student as configured; `cfg` and `out` come from
/// [`super::run_folder::prepare`].
pub fn run(
    opts: &TrainOptions,
    cfg: RunConfig,
    out: PathBuf,
    wall: Instant,
) -> Result<RunOutcome, TrainError> {
    let mut task = TextTask::new(&cfg, &out, opts)?;
    Learner::new(&out, opts, cfg.train.early_stopping, wall).fit(&mut task)
}

/// A text run as a [`Task`]: token batches, eval of the loss terms and teacher fidelity.
pub struct TextTask<'a> {
    cfg: &'a RunConfig,
    out: &'a Path,
    opts: &'a TrainOptions,
    setup: TextSetup,
    opt: Optimizer,
    /// Every training term's label (the exits' included).
    labels: Vec<String>,
    /// The `[[loss]]` terms' labels and weights, for the eval loss.
    objective_labels: Vec<String>,
    weights: Vec<f64>,
    /// The student as initialised, scored before any step.
    initial_eval: Option<TextEvalMetrics>,
    /// Exact when resident; streamed, each window's last batch may be short, so an epoch can
    /// take up to `windows - 1` more steps than this (the schedule then holds its final value).
    steps_per_epoch: usize,
    /// Token slots of the last epoch trained and the most rows held in memory at once.
    progress: TextProgress,
}

impl<'a> TextTask<'a> {
    /// Builds the setup and scores the initialised student (printed unless `quiet`).
    pub fn new(
        cfg: &'a RunConfig,
        out: &'a Path,
        opts: &'a TrainOptions,
    ) -> Result<Self, TrainError> {
        let setup = TextSetup::build(cfg, opts.quiet)?;
        let mut task = Self {
            opt: Optimizer::new(cfg.train.optimizer.into(), setup.vars()?),
            labels: setup.labels(),
            objective_labels: setup.objective.labels(),
            weights: cfg.losses.iter().map(LossTerm::weight).collect(),
            initial_eval: None,
            steps_per_epoch: setup.data.rows.div_ceil(cfg.train.batch_size),
            progress: TextProgress {
                window_rows: setup.data.resident.as_ref().map_or(0, |r| r.rows()),
                tokens: 0,
                padded: 0,
            },
            setup,
            cfg,
            out,
            opts,
        };
        // Weights are seeded and `init` is deterministic, so this is the same on resume.
        task.initial_eval = task.eval()?.map(|e| e.student);
        if let (false, Some(e)) = (opts.quiet, &task.initial_eval) {
            eprintln!("{}", eval_line("initialised student", e));
        }
        Ok(task)
    }

    /// Real tokens per token slot of the last epoch's batches.
    fn efficiency(&self) -> f64 {
        self.progress.tokens as f64 / self.progress.padded.max(1) as f64
    }

    /// The student's and exits' eval on the held-out rows, when there are any.
    fn eval(&self) -> Result<Option<TextEval>, TrainError> {
        match &self.setup.eval {
            Some(e) => evaluate(
                &self.setup,
                e,
                self.cfg.train.eval_batch_size,
                &self.objective_labels,
                &self.weights,
            ),
            None => Ok(None),
        }
    }

    /// Writes `student.safetensors` and `student.onnx`; returns their file names.
    fn write_student(&self) -> Result<Vec<String>, TrainError> {
        let mut files = vec!["student.safetensors".to_string()];
        checkpoint::save_vars(
            &self.setup.varmap,
            &self.out.join(&files[0]),
            is_student_var,
        )?;
        if self.opts.export_onnx {
            let path = self.out.join("student.onnx");
            trainer_core::export::export_text_onnx(
                &self.setup.student,
                self.setup.token_types(),
                &path,
            )?;
            files.push("student.onnx".into());
        }
        Ok(files)
    }

    /// Writes `exits.safetensors` and each exit's `exit{L}.onnx`; returns the files and the
    /// exits' summaries (with their final `evals`).
    fn write_exits(
        &self,
        evals: Vec<(String, TextEvalMetrics)>,
    ) -> Result<(Vec<String>, BTreeMap<String, NetworkSummary>), TrainError> {
        let mut networks = BTreeMap::new();
        let Some(sd) = &self.setup.exits else {
            return Ok((Vec::new(), networks));
        };
        let mut files = vec!["exits.safetensors".to_string()];
        checkpoint::save_vars(&self.setup.varmap, &self.out.join(&files[0]), is_exit_var)?;
        let mut evals = evals.into_iter().collect::<BTreeMap<_, _>>();
        for h in sd.heads() {
            let name = h.name();
            let mut exit_files = Vec::new();
            if self.opts.export_onnx {
                let file = format!("{name}.onnx");
                let path = self.out.join(&file);
                let types = self.setup.token_types();
                trainer_core::export::export_text_exit_onnx(&self.setup.student, h, types, &path)?;
                files.push(file.clone());
                exit_files.push(file);
            }
            networks.insert(
                name.clone(),
                NetworkSummary {
                    role: "exit".into(),
                    eval: None,
                    test_errors: None,
                    text_eval: evals.remove(&name),
                    param_count: self.setup.student.exit_param_count(h),
                    files: exit_files,
                },
            );
        }
        Ok((files, networks))
    }
}

impl Task for TextTask<'_> {
    fn epochs(&self) -> usize {
        self.cfg.train.epochs
    }

    fn step_labels(&self) -> Vec<String> {
        self.labels.clone()
    }

    fn varmap(&self) -> &VarMap {
        &self.setup.varmap
    }

    fn optimizers(&mut self) -> Vec<(&str, &mut Optimizer)> {
        vec![(STUDENT_NETWORK, &mut self.opt)]
    }

    fn train_epoch(
        &mut self,
        epoch: usize,
        _quiet: bool,
        step_log: &mut StepLog,
    ) -> Result<EpochTotals, TrainError> {
        let (totals, pad) = train_epoch(
            &self.setup,
            self.cfg,
            &mut self.opt,
            epoch,
            self.steps_per_epoch,
            step_log,
        )?;
        self.progress = TextProgress {
            window_rows: self.progress.window_rows.max(pad.peak_window),
            tokens: pad.tokens,
            padded: pad.padded,
        };
        Ok(totals)
    }

    fn evaluate(
        &mut self,
        epoch: usize,
        totals: &EpochTotals,
        started: Instant,
    ) -> Result<Vec<EpochLine>, TrainError> {
        let (text_eval, exit_evals) = TextEval::split(self.eval()?);
        let m = EpochMetrics {
            epoch,
            lr: totals.lr,
            steps: self.opt.steps(),
            train_loss: totals.mean_loss(),
            train_terms: totals.mean_terms(&self.labels),
            train_samples_per_s: totals.samples_per_s(),
            epoch_wall_s: started.elapsed().as_secs_f64(),
            eval: None,
            text_eval,
            network: self
                .setup
                .exits
                .as_ref()
                .map(|_| STUDENT_NETWORK.to_string()),
        };
        let mut lines = vec![EpochLine {
            display: student_line(&m, self.efficiency()),
            metrics: m.clone(),
        }];
        for (name, e) in exit_evals {
            let mut line = exit_line(&m, &name);
            let display = eval_line(&format!("epoch {:>3}  {name}", m.epoch), &e);
            line.text_eval = Some(e);
            lines.push(EpochLine {
                metrics: line,
                display,
            });
        }
        Ok(lines)
    }

    fn save_progress(&self, state: &mut CheckpointState) {
        state.text = Some(self.progress);
    }

    fn restore_progress(&mut self, state: &CheckpointState) {
        if let Some(p) = state.text {
            self.progress = p;
        }
    }

    fn finish(&mut self, end: &Finished) -> Result<Summary, TrainError> {
        let (final_eval, exit_evals) = TextEval::split(self.eval()?);
        let mut files = outputs::run_files();
        files.extend(self.write_student()?);
        let (exit_files, networks) = self.write_exits(exit_evals)?;
        files.extend(exit_files);
        let param_count = self.setup.student.param_count();
        if self.opts.plot {
            outputs::write_plot(self.out, self.cfg, param_count, end.history)?;
            files.push("curves.png".into());
        }
        files.push("summary.json".into());
        let data = &self.setup.data;
        let summary = Summary {
            epochs: end.state.epoch,
            stopped_early: false,
            exported_epoch: end.state.epoch,
            eval: None,
            test_errors: None,
            accuracy: None,
            agreement: None,
            param_count,
            train_rows: data.rows,
            samples_per_s: end.state.train_samples as f64 / end.state.train_s.max(1e-9),
            wall_s: end.prior_wall_s + end.started.elapsed().as_secs_f64(),
            files,
            text: Some(Box::new(TextSummary {
                initial_eval: self.initial_eval.clone(),
                final_eval,
                eval_rows: self.setup.eval.as_ref().map_or(0, TextRows::rows),
                window_rows: self.progress.window_rows,
                resident: data.resident.is_some(),
                padding_efficiency: self.efficiency(),
            })),
            // Text runs have no teacher logits to score the teacher with.
            teacher_check: None,
            warnings: Vec::new(),
            networks,
        };
        metrics::write_summary(&self.out.join("summary.json"), &summary)?;
        Ok(summary)
    }
}
