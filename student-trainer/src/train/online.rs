//! Online distillation (`[online]`): the `[student]` and one or more other networks trained in
//! the same loop on the same batches.
//!
//! - `mutual` (deep mutual learning, Zhang et al. 2018): every network learns from its own
//!   loss (the `[student]` from the `[[loss]]` terms, each peer from `ce` on the hard labels)
//!   plus `weight` × the mean over the other networks of KD(their outputs, T) — KL of the
//!   detached, temperature-softened outputs, scaled by T² as Hinton KD.
//! - `teacher_student`: a teacher network trains alone on `ce` for `warmup_epochs`, then
//!   `train.epochs` joint epochs follow in which the student learns from its `[[loss]]` terms
//!   plus `weight` × KD(teacher, T), and the teacher from `ce` plus `teacher_weight` ×
//!   KD(student, T).
//!
//! The other outputs are detached in each KL term, so one backward pass of the summed losses
//! gives every network exactly the gradient of its own loss; each network then steps its own
//! optimizer (the updates are simultaneous, not the alternating ones of the DML paper). Every
//! network is evaluated each epoch (`metrics.jsonl` gets a line per network, `network` naming
//! it), checkpointed, and exported as `NAME.safetensors` and `NAME.onnx` (the `[student]` as
//! `student.*`). Variables of network `NAME` are named `online.NAME.…` in the checkpoint.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};

use super::checkpoint::{self, CheckpointState};
use super::epoch::{batch_tensors, progress, EpochTotals};
use super::outputs;
use super::setup::Setup;
use super::{epoch_line, evaluate, init, kd_temperature, RunOutcome, TrainError, TrainOptions};
use crate::config::{OnlineConfig, RunConfig, TrainConfig};
use crate::metrics::{self, steps::StepLog, EpochMetrics, NetworkSummary, STUDENT_NETWORK};
use trainer_core::loss;
use trainer_core::model::vars::{is_student_var, VAR_PREFIX};
use trainer_core::model::Student;
use trainer_core::optim::{lr_at, Optimizer};
use trainer_data::seeds::{mix_seed, streams};
use trainer_data::Loader;

/// A network of an online run other than the `[student]`.
pub struct OtherNetwork {
    /// Its name (a peer's table name, or `teacher`).
    pub name: String,
    /// `peer` or `teacher`.
    pub role: &'static str,
    /// The network.
    pub student: Student,
}

/// The networks of an online run beside the `[student]` (which lives in the [`Setup`]).
pub struct OnlineNets {
    cfg: OnlineConfig,
    others: Vec<OtherNetwork>,
}

/// The loss of one step: the total to backpropagate, every label's value, and which networks
/// trained in it.
pub struct OnlineLoss {
    /// Σ of the active networks' losses.
    pub total: Tensor,
    /// Values in [`OnlineNets::labels`] order (0 for a network that is not training yet).
    pub values: Vec<f32>,
    /// Per network (the `[student]` first): whether it trains in this epoch.
    pub active: Vec<bool>,
}

impl OnlineNets {
    /// Builds the other networks of `cfg.online` under the setup's variable map, seeded by
    /// `train.seed` and their variable names.
    pub fn new(cfg: &RunConfig, setup: &Setup) -> Result<Self, TrainError> {
        let online = cfg
            .online
            .clone()
            .ok_or_else(|| TrainError::Config("the run has no [online] table".into()))?;
        let vb = init::seeded_var_builder(&setup.varmap, cfg.train.seed, &Device::Cpu);
        let role = match online {
            OnlineConfig::Mutual { .. } => "peer",
            OnlineConfig::TeacherStudent { .. } => "teacher",
        };
        let mut others = Vec::new();
        for (name, net) in online.others() {
            let student = Student::new(
                &net,
                setup.input_dim,
                setup.data.num_classes,
                vb.pp(format!("{VAR_PREFIX}{name}")),
            )
            .map_err(|e| TrainError::Config(format!("online network {name:?}: {e}")))?;
            others.push(OtherNetwork {
                name,
                role,
                student,
            });
        }
        Ok(Self {
            cfg: online,
            others,
        })
    }

    /// The networks beside the `[student]`.
    pub fn others(&self) -> &[OtherNetwork] {
        &self.others
    }

    /// Network names, the `[student]` first.
    pub fn names(&self) -> Vec<String> {
        std::iter::once(STUDENT_NETWORK.to_string())
            .chain(self.others.iter().map(|o| o.name.clone()))
            .collect()
    }

    /// The network `i` (0 = the `[student]`).
    pub fn network<'a>(&'a self, setup: &'a Setup, i: usize) -> &'a Student {
        match i {
            0 => &setup.student,
            _ => &self.others[i - 1].student,
        }
    }

    /// Loop epochs in all: teacher warm-up plus `train.epochs`.
    pub fn total_epochs(&self, tcfg: &TrainConfig) -> usize {
        self.cfg.warmup_epochs() + tcfg.epochs
    }

    /// Whether network `i` trains in loop epoch `epoch` (0-based): all do, except the
    /// `[student]` during the teacher's warm-up.
    pub fn trains(&self, i: usize, epoch: usize) -> bool {
        i != 0 || epoch >= self.cfg.warmup_epochs()
    }

    /// The schedule settings of network `i`: the teacher's span covers its warm-up too.
    pub fn schedule(&self, i: usize, tcfg: &TrainConfig) -> TrainConfig {
        let mut t = tcfg.clone();
        if i != 0 {
            t.epochs += self.cfg.warmup_epochs();
        }
        t
    }

    fn base_labels(&self, setup: &Setup, i: usize) -> Vec<String> {
        match i {
            0 => setup.objective.labels(),
            _ => vec!["ce".to_string()],
        }
    }

    /// Metric labels of a step: per network `NAME:loss`, its own terms as `NAME:TERM`, and
    /// `NAME:online_kd` (the KL to the other networks).
    pub fn labels(&self, setup: &Setup) -> Vec<String> {
        let mut out = Vec::new();
        for (i, n) in self.names().iter().enumerate() {
            out.push(format!("{n}:loss"));
            for l in self.base_labels(setup, i) {
                out.push(format!("{n}:{l}"));
            }
            out.push(format!("{n}:online_kd"));
        }
        out
    }

    /// Each network's variables, by name, for its own optimizer (the `[student]`'s include
    /// its loss projectors).
    pub fn variables(&self, setup: &Setup) -> Result<Vec<Vec<(String, Var)>>, TrainError> {
        let all = setup.vars()?;
        let mut out = vec![Vec::new(); self.others.len() + 1];
        for (name, var) in all {
            let slot = self
                .others
                .iter()
                .position(|o| name.starts_with(&format!("{VAR_PREFIX}{}.", o.name)))
                .map_or(0, |p| p + 1);
            out[slot].push((name, var));
        }
        Ok(out)
    }

    /// The forward passes and losses of one batch in loop epoch `epoch`.
    pub fn loss(
        &self,
        setup: &Setup,
        x: &Tensor,
        labels: Option<&Tensor>,
        targets: &[super::objective::TargetTensors],
        epoch: usize,
    ) -> Result<OnlineLoss, TrainError> {
        let n = self.others.len() + 1;
        let active: Vec<bool> = (0..n).map(|i| self.trains(i, epoch)).collect();
        let labels_t = labels.ok_or_else(|| {
            TrainError::Config("online training needs hard labels (data.label)".into())
        })?;
        let mut outs = Vec::with_capacity(n);
        for (i, &a) in active.iter().enumerate() {
            outs.push(if a {
                Some(self.network(setup, i).forward(x, true)?)
            } else {
                None
            });
        }
        let logits: Vec<Option<Tensor>> = outs
            .iter()
            .map(|o| o.as_ref().map(|o| o.logits.clone()))
            .collect();
        let t = self.cfg.temperature();
        let kd = |i: usize, j: usize| -> Result<Tensor, TrainError> {
            match (&logits[i], &logits[j]) {
                (Some(s), Some(o)) => {
                    loss::kd(s, &o.detach(), t).map_err(|source| TrainError::Loss {
                        term: "online_kd".into(),
                        source: Box::new(source.into()),
                    })
                }
                _ => Err(TrainError::Config(
                    "online_kd between inactive networks".into(),
                )),
            }
        };
        let mut total: Option<Tensor> = None;
        let mut values = Vec::new();
        for (i, out) in outs.iter().enumerate() {
            let base_len = self.base_labels(setup, i).len();
            let Some(out) = out else {
                values.extend(std::iter::repeat_n(0.0, base_len + 2));
                continue;
            };
            let (base, base_values) = match i {
                0 => setup.objective.loss(out, labels, targets)?,
                _ => {
                    let ce =
                        loss::ce(&out.logits, labels_t).map_err(|source| TrainError::Loss {
                            term: "ce".into(),
                            source: Box::new(source.into()),
                        })?;
                    let v = ce.to_scalar::<f32>()?;
                    (ce, vec![v])
                }
            };
            // The networks network i learns from, and the weight of the mean KL to them.
            let (sources, w): (Vec<usize>, f64) = match &self.cfg {
                OnlineConfig::Mutual { weight, .. } => {
                    ((0..n).filter(|&j| j != i).collect(), *weight)
                }
                OnlineConfig::TeacherStudent {
                    weight,
                    teacher_weight,
                    ..
                } => match i {
                    0 => (vec![1], *weight),
                    _ if active[0] => (vec![0], *teacher_weight),
                    _ => (Vec::new(), 0.0),
                },
            };
            let mut l = base;
            let mut kl_value = 0.0;
            if !sources.is_empty() {
                let count = sources.len() as f64;
                let mut kl_sum: Option<Tensor> = None;
                for j in sources {
                    let k = kd(i, j)?;
                    kl_sum = Some(match kl_sum {
                        None => k,
                        Some(acc) => (acc + k)?,
                    });
                }
                if let Some(k) = kl_sum {
                    let mean_kl = k.affine(1.0 / count, 0.0)?;
                    kl_value = mean_kl.to_scalar::<f32>()?;
                    if w > 0.0 {
                        l = (l + mean_kl.affine(w, 0.0)?)?;
                    }
                }
            }
            values.push(l.to_scalar::<f32>()?);
            values.extend(base_values);
            values.push(kl_value);
            total = Some(match total {
                None => l,
                Some(acc) => (acc + l)?,
            });
        }
        let total = match total {
            Some(t) => t,
            None => Tensor::new(0f32, x.device())?,
        };
        Ok(OnlineLoss {
            total,
            values,
            active,
        })
    }
}

/// Per-network running state of the loop.
struct Learner {
    opt: Optimizer,
    schedule: TrainConfig,
    lr: f64,
}

/// Trains an online run in `out` (its `config.toml` already written): see the module docs.
pub fn train(
    cfg: &RunConfig,
    out: &Path,
    setup: &Setup,
    opts: &TrainOptions,
    started: Instant,
) -> Result<RunOutcome, TrainError> {
    let nets = OnlineNets::new(cfg, setup)?;
    let tcfg = &cfg.train;
    let names = nets.names();
    let mut learners: Vec<Learner> = nets
        .variables(setup)?
        .into_iter()
        .enumerate()
        .map(|(i, vars)| Learner {
            opt: Optimizer::new(tcfg.optimizer.into(), vars),
            schedule: nets.schedule(i, tcfg),
            lr: tcfg.lr,
        })
        .collect();
    let metrics_path = out.join("metrics.jsonl");
    let (mut state, mut history) = match (opts.resume, checkpoint::load_state(out)?) {
        (true, Some(s)) => {
            let mut restore: Vec<(&mut Optimizer, u64)> = Vec::new();
            for (i, l) in learners.iter_mut().enumerate() {
                let steps = match i {
                    0 => s.optimizer_steps,
                    _ => s.network_steps.get(&names[i]).copied().unwrap_or(0),
                };
                restore.push((&mut l.opt, steps));
            }
            checkpoint::restore_all(out, &s, &setup.varmap, &mut restore)?;
            let h = metrics::truncate_epochs(&metrics_path, s.epoch)?;
            (s, super::student_lines(h))
        }
        _ => {
            let _ = std::fs::remove_file(&metrics_path);
            (CheckpointState::fresh(), Vec::new())
        }
    };
    let prior_wall = state.wall_s;
    let labels = nets.labels(setup);
    let loop_steps = |ls: &[Learner]| ls.iter().map(|l| l.opt.steps()).max().unwrap_or(0);
    let mut step_log = StepLog::open(
        &out.join(outputs::STEPS_FILE),
        labels.clone(),
        loop_steps(&learners),
    )?;
    let total_epochs = nets.total_epochs(tcfg);
    let steps_per_epoch = setup.data.rows().div_ceil(tcfg.batch_size);
    while state.epoch < total_epochs {
        if opts.stop_after.is_some_and(|n| state.epoch >= n) {
            return Ok(RunOutcome::Paused {
                epochs: state.epoch,
            });
        }
        let epoch = state.epoch;
        let t_epoch = Instant::now();
        let dropout_seed = mix_seed(tcfg.seed, streams::DROPOUT, epoch as u64);
        for i in 0..names.len() {
            let seed = match i {
                0 => dropout_seed,
                _ => mix_seed(dropout_seed, streams::DROPOUT, i as u64),
            };
            nets.network(setup, i).seed_dropout(seed);
        }
        let loader = Loader::epoch(
            setup.data.clone(),
            tcfg.batch_size,
            tcfg.seed,
            epoch,
            setup.jitter,
        );
        let pb = progress(opts.quiet, loader.steps(), epoch + 1, total_epochs);
        let mut totals = EpochTotals::new(labels.len(), tcfg.lr);
        for (step, batch) in loader.enumerate() {
            let batch = batch?;
            let t0 = Instant::now();
            let rows = batch.rows;
            let (x, y, targets) = batch_tensors(batch, setup.input_dim, &Device::Cpu)?;
            let l = nets.loss(setup, &x, y.as_ref(), &targets, epoch)?;
            let lv = l.total.to_scalar::<f32>()?;
            if !lv.is_finite() {
                return Err(TrainError::Diverged {
                    epoch: epoch + 1,
                    step,
                    value: lv,
                });
            }
            let grads = l.total.backward()?;
            for (learner, active) in learners.iter_mut().zip(&l.active) {
                if *active {
                    learner.lr = lr_at(&learner.schedule, learner.opt.steps(), steps_per_epoch);
                    learner.opt.step(&grads, learner.lr)?;
                }
            }
            drop(grads);
            let lr = learners[0].lr;
            step_log.record(epoch + 1, loop_steps(&learners), lr, rows, lv, &l.values)?;
            totals.add(rows, lv, &l.values, t0.elapsed().as_secs_f64(), lr);
            pb.inc(1);
        }
        pb.finish_and_clear();
        step_log.end_epoch()?;
        state.epoch += 1;
        state.optimizer_steps = learners[0].opt.steps();
        state.network_steps = names
            .iter()
            .zip(&learners)
            .skip(1)
            .map(|(n, l)| (n.clone(), l.opt.steps()))
            .collect();
        state.train_samples += totals.rows;
        state.train_s += totals.step_s;
        let terms = totals.mean_terms(&labels);
        for (i, name) in names.iter().enumerate() {
            let eval = setup
                .eval
                .as_deref()
                .map(|e| {
                    evaluate::evaluate(
                        nets.network(setup, i),
                        e,
                        tcfg.eval_batch_size,
                        kd_temperature(&cfg.losses),
                    )
                })
                .transpose()?;
            let own = format!("{name}:");
            let m = EpochMetrics {
                epoch: state.epoch,
                lr: learners[i].lr,
                steps: learners[i].opt.steps(),
                train_loss: terms.get(&format!("{name}:loss")).copied().unwrap_or(0.0),
                train_terms: terms
                    .iter()
                    .filter_map(|(k, v)| k.strip_prefix(&own).map(|t| (t.to_string(), *v)))
                    .filter(|(k, _)| k != "loss")
                    .collect(),
                train_samples_per_s: totals.samples_per_s(),
                epoch_wall_s: t_epoch.elapsed().as_secs_f64(),
                eval,
                text_eval: None,
                network: Some(name.clone()),
            };
            if !opts.quiet {
                eprintln!("{}", epoch_line(&m));
            }
            metrics::append_epoch(&metrics_path, &m)?;
            if i == 0 {
                history.push(m);
            }
        }
        state.wall_s = prior_wall + started.elapsed().as_secs_f64();
        let opt_refs: Vec<&Optimizer> = learners.iter().map(|l| &l.opt).collect();
        checkpoint::save_all(out, &setup.varmap, &opt_refs, state.clone())?;
    }
    let networks = export_others(cfg, setup, &nets, out, opts)?;
    let finished = outputs::Finished {
        state: &state,
        best: None,
        history: &history,
        prior_wall_s: prior_wall,
        started,
    };
    let summary = outputs::write(cfg, setup, out, opts, &finished, networks)?;
    Ok(RunOutcome::Finished(summary))
}

/// Writes each other network as `NAME.safetensors` (its variables under their plain student
/// names, so it loads like any student) and `NAME.onnx`, and returns their summaries.
fn export_others(
    cfg: &RunConfig,
    setup: &Setup,
    nets: &OnlineNets,
    out: &Path,
    opts: &TrainOptions,
) -> Result<BTreeMap<String, NetworkSummary>, TrainError> {
    let mut map = BTreeMap::new();
    for o in nets.others() {
        let prefix = format!("{VAR_PREFIX}{}.", o.name);
        let st = format!("{}.safetensors", o.name);
        checkpoint::save_vars_renamed(&setup.varmap, &out.join(&st), |n| {
            n.strip_prefix(&prefix)
                .filter(|rest| is_student_var(rest))
                .map(str::to_string)
        })?;
        let mut files = vec![st];
        if opts.export_onnx {
            let file = format!("{}.onnx", o.name);
            trainer_core::export::export_onnx(
                &o.student,
                &cfg.data.input,
                "logits",
                &out.join(&file),
            )?;
            files.push(file);
        }
        let eval = setup
            .eval
            .as_deref()
            .map(|e| {
                evaluate::evaluate(
                    &o.student,
                    e,
                    cfg.train.eval_batch_size,
                    kd_temperature(&cfg.losses),
                )
            })
            .transpose()?;
        map.insert(
            o.name.clone(),
            NetworkSummary {
                text_eval: None,
                role: o.role.to_string(),
                test_errors: eval.as_ref().map(|e| e.errors),
                eval,
                param_count: o.student.param_count(),
                files,
            },
        );
    }
    Ok(map)
}
