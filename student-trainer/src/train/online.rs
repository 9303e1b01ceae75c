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
use candle_nn::VarMap;

use super::checkpoint;
use super::epoch::{batch_tensors, progress, EpochTotals};
use super::learner::{EpochLine, Task};
use super::objective::TargetTensors;
use super::outputs::{self, Finished};
use super::setup::Setup;
use super::{epoch_line, evaluate_opt, init, TrainError, TrainOptions};
use crate::config::{OnlineConfig, RunConfig, TrainConfig};
use crate::metrics::{
    steps::StepLog, EpochMetrics, EvalMetrics, NetworkSummary, Summary, STUDENT_NETWORK,
};
use trainer_core::loss;
use trainer_core::model::vars::{is_student_var, VAR_PREFIX};
use trainer_core::model::Student;
use trainer_core::optim::{lr_at, Optimizer};
use trainer_data::seeds::{mix_seed, streams};
use trainer_data::{Batch, Loader};

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
        targets: &[TargetTensors],
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
        let mut total: Option<Tensor> = None;
        let mut values = Vec::new();
        for (i, out) in outs.iter().enumerate() {
            let Some(out) = out else {
                let base_len = self.base_labels(setup, i).len();
                values.extend(std::iter::repeat_n(0.0, base_len + 2));
                continue;
            };
            let (base, base_values) = match i {
                0 => setup.objective.loss(out, labels, targets)?,
                _ => peer_ce(&out.logits, labels_t)?,
            };
            let (sources, w) = self.sources(i, &active);
            let mut l = base;
            let mut kl_value = 0.0;
            if let Some(mean_kl) = self.mean_kd(&logits, i, &sources)? {
                kl_value = mean_kl.to_scalar::<f32>()?;
                if w > 0.0 {
                    l = (l + mean_kl.affine(w, 0.0)?)?;
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

    /// The networks network `i` learns from, and the weight of the mean KL to them.
    fn sources(&self, i: usize, active: &[bool]) -> (Vec<usize>, f64) {
        match &self.cfg {
            OnlineConfig::Mutual { weight, .. } => {
                ((0..active.len()).filter(|&j| j != i).collect(), *weight)
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
        }
    }

    /// The mean over `sources` of KD(network `i`, detached source logits); `None` without
    /// sources.
    fn mean_kd(
        &self,
        logits: &[Option<Tensor>],
        i: usize,
        sources: &[usize],
    ) -> Result<Option<Tensor>, TrainError> {
        let t = self.cfg.temperature();
        let mut kl_sum: Option<Tensor> = None;
        for &j in sources {
            let k = match (&logits[i], &logits[j]) {
                (Some(s), Some(o)) => {
                    loss::kd(s, &o.detach(), t).map_err(|source| TrainError::Loss {
                        term: "online_kd".into(),
                        source: Box::new(source.into()),
                    })?
                }
                _ => {
                    return Err(TrainError::Config(
                        "online_kd between inactive networks".into(),
                    ))
                }
            };
            kl_sum = Some(match kl_sum {
                None => k,
                Some(acc) => (acc + k)?,
            });
        }
        let count = sources.len() as f64;
        kl_sum
            .map(|k| k.affine(1.0 / count, 0.0).map_err(TrainError::from))
            .transpose()
    }
}

/// A peer's or the teacher's own loss: `ce` on the hard labels, and its value.
fn peer_ce(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Vec<f32>), TrainError> {
    let ce = loss::ce(logits, labels).map_err(|source| TrainError::Loss {
        term: "ce".into(),
        source: Box::new(source.into()),
    })?;
    let v = ce.to_scalar::<f32>()?;
    Ok((ce, vec![v]))
}

/// One network's optimizer and schedule.
struct NetworkOptimizer {
    opt: Optimizer,
    schedule: TrainConfig,
    /// Rate of its last step.
    lr: f64,
}

/// An online run as a [`Task`]: every network steps on the same batches; see the module docs.
pub struct OnlineTask<'a> {
    cfg: &'a RunConfig,
    setup: &'a Setup,
    out: &'a Path,
    opts: &'a TrainOptions,
    nets: OnlineNets,
    names: Vec<String>,
    optimizers: Vec<NetworkOptimizer>,
    labels: Vec<String>,
    steps_per_epoch: usize,
}

impl<'a> OnlineTask<'a> {
    /// Builds the other networks of `cfg.online` beside the setup's student, and an optimizer
    /// per network.
    pub fn new(
        cfg: &'a RunConfig,
        setup: &'a Setup,
        out: &'a Path,
        opts: &'a TrainOptions,
    ) -> Result<Self, TrainError> {
        let nets = OnlineNets::new(cfg, setup)?;
        let tcfg = &cfg.train;
        let optimizers = nets
            .variables(setup)?
            .into_iter()
            .enumerate()
            .map(|(i, vars)| NetworkOptimizer {
                opt: Optimizer::new(tcfg.optimizer.into(), vars),
                schedule: nets.schedule(i, tcfg),
                lr: tcfg.lr,
            })
            .collect();
        Ok(Self {
            names: nets.names(),
            labels: nets.labels(setup),
            steps_per_epoch: setup.data.rows().div_ceil(tcfg.batch_size),
            nets,
            optimizers,
            cfg,
            setup,
            out,
            opts,
        })
    }

    /// Re-seeds every network's dropout for loop epoch `epoch`.
    fn seed_dropout(&self, epoch: usize) {
        let dropout_seed = mix_seed(self.cfg.train.seed, streams::DROPOUT, epoch as u64);
        for i in 0..self.names.len() {
            let seed = match i {
                0 => dropout_seed,
                _ => mix_seed(dropout_seed, streams::DROPOUT, i as u64),
            };
            self.nets.network(self.setup, i).seed_dropout(seed);
        }
    }

    /// Optimizer updates so far as the step log counts them: the most of any network's.
    fn loop_steps(&self) -> u64 {
        self.optimizers
            .iter()
            .map(|o| o.opt.steps())
            .max()
            .unwrap_or(0)
    }

    /// One step on `batch`: one backward pass of the summed losses, then each network that
    /// trains in this epoch steps its own optimizer. Returns the total loss and the values.
    fn step(
        &mut self,
        batch: Batch,
        epoch: usize,
        step: usize,
    ) -> Result<(f32, OnlineLoss), TrainError> {
        let (x, y, targets) = batch_tensors(batch, self.setup.input_dim, &Device::Cpu)?;
        let l = self
            .nets
            .loss(self.setup, &x, y.as_ref(), &targets, epoch)?;
        let lv = l.total.to_scalar::<f32>()?;
        if !lv.is_finite() {
            return Err(TrainError::Diverged {
                epoch: epoch + 1,
                step,
                value: lv,
            });
        }
        let grads = l.total.backward()?;
        for (o, active) in self.optimizers.iter_mut().zip(&l.active) {
            if *active {
                o.lr = lr_at(&o.schedule, o.opt.steps(), self.steps_per_epoch);
                o.opt.step(&grads, o.lr)?;
            }
        }
        Ok((lv, l))
    }

    /// Network `i`'s line of 1-based `epoch`: its share of the step values and its eval.
    fn network_line(
        &self,
        i: usize,
        epoch: usize,
        totals: &EpochTotals,
        terms: &BTreeMap<String, f64>,
        started: Instant,
    ) -> Result<EpochLine, TrainError> {
        let name = &self.names[i];
        let eval = self.eval(self.nets.network(self.setup, i))?;
        let own = format!("{name}:");
        let m = EpochMetrics {
            epoch,
            lr: self.optimizers[i].lr,
            steps: self.optimizers[i].opt.steps(),
            train_loss: terms.get(&format!("{name}:loss")).copied().unwrap_or(0.0),
            train_terms: terms
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&own).map(|t| (t.to_string(), *v)))
                .filter(|(k, _)| k != "loss")
                .collect(),
            train_samples_per_s: totals.samples_per_s(),
            epoch_wall_s: started.elapsed().as_secs_f64(),
            eval,
            text_eval: None,
            network: Some(name.clone()),
        };
        Ok(EpochLine {
            display: epoch_line(&m),
            metrics: m,
        })
    }

    /// A network's metrics on the eval set, if there is one.
    fn eval(&self, network: &Student) -> Result<Option<EvalMetrics>, TrainError> {
        evaluate_opt(network, self.setup.eval.as_deref(), self.cfg)
    }

    /// Writes each other network as `NAME.safetensors` (its variables under their plain
    /// student names, so it loads like any student) and `NAME.onnx`, and returns their
    /// summaries.
    fn export_others(&self) -> Result<BTreeMap<String, NetworkSummary>, TrainError> {
        let mut map = BTreeMap::new();
        for o in self.nets.others() {
            let prefix = format!("{VAR_PREFIX}{}.", o.name);
            let st = format!("{}.safetensors", o.name);
            checkpoint::save_vars_renamed(&self.setup.varmap, &self.out.join(&st), |n| {
                n.strip_prefix(&prefix)
                    .filter(|rest| is_student_var(rest))
                    .map(str::to_string)
            })?;
            let mut files = vec![st];
            if self.opts.export_onnx {
                let file = format!("{}.onnx", o.name);
                let path = self.out.join(&file);
                trainer_core::export::export_onnx(
                    &o.student,
                    &self.cfg.data.input,
                    "logits",
                    &path,
                )?;
                files.push(file);
            }
            let eval = self.eval(&o.student)?;
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
}

impl Task for OnlineTask<'_> {
    fn epochs(&self) -> usize {
        self.nets.total_epochs(&self.cfg.train)
    }

    fn step_labels(&self) -> Vec<String> {
        self.labels.clone()
    }

    fn varmap(&self) -> &VarMap {
        &self.setup.varmap
    }

    fn optimizers(&mut self) -> Vec<(&str, &mut Optimizer)> {
        self.names
            .iter()
            .zip(self.optimizers.iter_mut())
            .map(|(n, o)| (n.as_str(), &mut o.opt))
            .collect()
    }

    fn train_epoch(
        &mut self,
        epoch: usize,
        quiet: bool,
        step_log: &mut StepLog,
    ) -> Result<EpochTotals, TrainError> {
        self.seed_dropout(epoch);
        let tcfg = &self.cfg.train;
        let loader = Loader::epoch(
            self.setup.data.clone(),
            tcfg.batch_size,
            tcfg.seed,
            epoch,
            self.setup.jitter,
        );
        let pb = progress(quiet, loader.steps(), epoch + 1, self.epochs());
        let mut totals = EpochTotals::new(self.labels.len(), tcfg.lr);
        for (step, batch) in loader.enumerate() {
            let batch = batch?;
            let t0 = Instant::now();
            let rows = batch.rows;
            let (lv, l) = self.step(batch, epoch, step)?;
            let lr = self.optimizers[0].lr;
            step_log.record(epoch + 1, self.loop_steps(), lr, rows, lv, &l.values)?;
            totals.add(rows, lv, &l.values, t0.elapsed().as_secs_f64(), lr);
            pb.inc(1);
        }
        pb.finish_and_clear();
        step_log.end_epoch()?;
        Ok(totals)
    }

    fn evaluate(
        &mut self,
        epoch: usize,
        totals: &EpochTotals,
        started: Instant,
    ) -> Result<Vec<EpochLine>, TrainError> {
        let terms = totals.mean_terms(&self.labels);
        (0..self.names.len())
            .map(|i| self.network_line(i, epoch, totals, &terms, started))
            .collect()
    }

    fn finish(&mut self, end: &Finished) -> Result<Summary, TrainError> {
        let networks = self.export_others()?;
        outputs::write(self.cfg, self.setup, self.out, self.opts, end, networks)
    }
}
