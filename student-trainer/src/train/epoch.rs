//! One epoch of training: batches through the student, loss, backward, optimizer step, and
//! the running totals that become the epoch's metrics.

use crate::metrics::steps::StepLog;
use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use super::objective::TargetTensors;
use super::TrainError;
use crate::config::TrainConfig;
use trainer_core::optim::{lr_at, Optimizer};
use trainer_data::seeds::{mix_seed, streams};
use trainer_data::{Batch, Loader};

use super::setup::Setup;

/// Row-weighted sums over an epoch's steps.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochTotals {
    /// Σ rows · total loss.
    pub loss_sum: f64,
    /// Σ rows · term value, per term.
    pub term_sums: Vec<f64>,
    /// Rows trained on.
    pub rows: u64,
    /// Seconds inside training steps (data waits excluded).
    pub step_s: f64,
    /// Learning rate of the last step.
    pub lr: f64,
}

impl EpochTotals {
    /// Empty totals for `terms` loss terms; `lr` until a step sets it.
    pub fn new(terms: usize, lr: f64) -> Self {
        Self {
            loss_sum: 0.0,
            term_sums: vec![0.0; terms],
            rows: 0,
            step_s: 0.0,
            lr,
        }
    }

    /// Adds one step of `rows` rows.
    pub fn add(&mut self, rows: usize, loss: f32, terms: &[f32], step_s: f64, lr: f64) {
        let r = rows as f64;
        self.loss_sum += loss as f64 * r;
        for (s, v) in self.term_sums.iter_mut().zip(terms) {
            *s += *v as f64 * r;
        }
        self.rows += rows as u64;
        self.step_s += step_s;
        self.lr = lr;
    }

    fn n(&self) -> f64 {
        self.rows.max(1) as f64
    }

    /// Mean loss per row.
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.n()
    }

    /// Mean value per row of each term, by label.
    pub fn mean_terms(&self, labels: &[String]) -> BTreeMap<String, f64> {
        labels
            .iter()
            .zip(&self.term_sums)
            .map(|(l, s)| (l.clone(), s / self.n()))
            .collect()
    }

    /// Training throughput.
    pub fn samples_per_s(&self) -> f64 {
        self.rows as f64 / self.step_s.max(1e-9)
    }
}

/// Where a step sits: 0-based `epoch`, `step` within it, the epoch's step count (for the
/// schedule) and the batch's rows.
#[derive(Debug, Clone, Copy)]
pub struct StepAt {
    /// 0-based epoch.
    pub epoch: usize,
    /// Step within the epoch.
    pub step: usize,
    /// Steps per epoch, for the learning-rate schedule.
    pub steps_per_epoch: usize,
    /// Rows in the batch.
    pub rows: usize,
}

/// One optimizer step on a batch's loss, shared by the image and text loops: refuses a
/// non-finite loss, backpropagates, steps at the scheduled rate and logs the step to
/// `steps.jsonl`. Returns the loss value and the rate used.
pub fn optimizer_step(
    loss: &Tensor,
    values: &[f32],
    at: StepAt,
    tcfg: &TrainConfig,
    opt: &mut Optimizer,
    step_log: &mut StepLog,
) -> Result<(f32, f64), TrainError> {
    let lv = loss.to_scalar::<f32>()?;
    if !lv.is_finite() {
        return Err(TrainError::Diverged {
            epoch: at.epoch + 1,
            step: at.step,
            value: lv,
        });
    }
    let grads = loss.backward()?;
    let lr = lr_at(tcfg, opt.steps(), at.steps_per_epoch);
    opt.step(&grads, lr)?;
    drop(grads);
    step_log.record(at.epoch + 1, opt.steps(), lr, at.rows, lv, values)?;
    Ok((lv, lr))
}

/// The epoch's progress bar (hidden when `quiet`).
pub(crate) fn progress(quiet: bool, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
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

/// Trains epoch `epoch` (0-based) over all rows, updating the student through `opt`.
pub fn train_epoch(
    setup: &Setup,
    tcfg: &TrainConfig,
    opt: &mut Optimizer,
    epoch: usize,
    quiet: bool,
    step_log: &mut StepLog,
) -> Result<EpochTotals, TrainError> {
    let steps_per_epoch = setup.data.rows().div_ceil(tcfg.batch_size);
    setup
        .student
        .seed_dropout(mix_seed(tcfg.seed, streams::DROPOUT, epoch as u64));
    let loader = Loader::epoch(
        setup.data.clone(),
        tcfg.batch_size,
        tcfg.seed,
        epoch,
        setup.jitter,
    );
    let pb = progress(quiet, loader.steps(), epoch + 1, tcfg.epochs);
    let mut totals = EpochTotals::new(setup.labels().len(), tcfg.lr);
    for (i, batch) in loader.enumerate() {
        let batch = batch?;
        let t0 = Instant::now();
        let rows = batch.rows;
        let (loss, values) = step_loss(setup, batch)?;
        let step = StepAt {
            epoch,
            step: i,
            steps_per_epoch,
            rows,
        };
        let (lv, lr) = optimizer_step(&loss, &values, step, tcfg, opt, step_log)?;
        totals.add(rows, lv, &values, t0.elapsed().as_secs_f64(), lr);
        pb.inc(1);
        if i % 20 == 0 {
            pb.set_message(format!(
                "loss {:.4} · {:.0} samples/s",
                totals.mean_loss(),
                totals.samples_per_s()
            ));
        }
    }
    pb.finish_and_clear();
    step_log.end_epoch()?;
    Ok(totals)
}

/// The forward pass and loss of one host batch: the `[[loss]]` terms, plus the exits' under
/// self-distillation.
fn step_loss(setup: &Setup, batch: Batch) -> Result<(Tensor, Vec<f32>), TrainError> {
    let dev = Device::Cpu;
    let rows = batch.rows;
    let (x, labels, targets) = batch_tensors(batch, setup.input_dim, &dev)?;
    let output = setup.student.forward(&x, true)?;
    let (loss, mut values) = setup.objective.loss(&output, labels.as_ref(), &targets)?;
    let Some(sd) = &setup.self_distill else {
        return Ok((loss, values));
    };
    let labels = labels.ok_or_else(|| {
        TrainError::Config(format!(
            "self_distill needs hard labels, the batch of {rows} rows has none"
        ))
    })?;
    let (exit_loss, exit_values) = sd.loss(&output, &labels)?;
    values.extend(exit_values);
    Ok(((loss + exit_loss)?, values))
}

/// A host batch as tensors on `dev`: inputs `[rows, input_dim]`, labels, teacher targets.
pub fn batch_tensors(
    batch: Batch,
    input_dim: usize,
    dev: &Device,
) -> Result<(Tensor, Option<Tensor>, Vec<TargetTensors>), TrainError> {
    let rows = batch.rows;
    let x = Tensor::from_vec(batch.x, (rows, input_dim), dev)?;
    let labels = match batch.labels {
        Some(l) => Some(Tensor::from_vec(l, rows, dev)?),
        None => None,
    };
    let targets = batch
        .targets
        .into_iter()
        .map(|t| TargetTensors::from_batch(t, rows, dev))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok((x, labels, targets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_row_weighted_means() {
        let mut t = EpochTotals::new(2, 0.1);
        t.add(3, 1.0, &[2.0, 0.0], 0.5, 0.01);
        t.add(1, 5.0, &[6.0, 4.0], 0.5, 0.02);
        assert_eq!(t.rows, 4);
        assert!((t.mean_loss() - 2.0).abs() < 1e-12);
        let terms = t.mean_terms(&["a".into(), "b".into()]);
        assert!((terms["a"] - 3.0).abs() < 1e-12 && (terms["b"] - 1.0).abs() < 1e-12);
        assert!((t.samples_per_s() - 4.0).abs() < 1e-12);
        assert_eq!(t.lr, 0.02);
    }

    #[test]
    fn empty_totals_do_not_divide_by_zero() {
        let t = EpochTotals::new(1, 0.1);
        assert_eq!(t.mean_loss(), 0.0);
        assert_eq!(t.mean_terms(&["a".into()])["a"], 0.0);
        assert_eq!(t.lr, 0.1);
    }
}
