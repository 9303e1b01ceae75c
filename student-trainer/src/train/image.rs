//! The classification [`Task`]: a student (with its loss projectors and any
//! `[self_distill]` exits) on the rows of a [`Setup`], one optimizer, eval of the student and
//! each exit on the eval set.

use std::path::Path;
use std::time::Instant;

use candle_nn::VarMap;

use super::epoch::{self, EpochTotals};
use super::learner::{exit_line, EpochLine, Task};
use super::outputs::{self, Finished};
use super::setup::Setup;
use super::{epoch_line, evaluate_opt, kd_temperature, TrainError, TrainOptions};
use crate::config::RunConfig;
use crate::metrics::{steps::StepLog, EpochMetrics, Summary, STUDENT_NETWORK};
use trainer_core::optim::Optimizer;

/// A classification run on a built [`Setup`].
pub struct ImageTask<'a> {
    cfg: &'a RunConfig,
    setup: &'a Setup,
    out: &'a Path,
    opts: &'a TrainOptions,
    opt: Optimizer,
    labels: Vec<String>,
}

impl<'a> ImageTask<'a> {
    /// The task of `cfg` on `setup`, writing its outputs into `out`.
    pub fn new(
        cfg: &'a RunConfig,
        setup: &'a Setup,
        out: &'a Path,
        opts: &'a TrainOptions,
    ) -> Result<Self, TrainError> {
        Ok(Self {
            opt: Optimizer::new(cfg.train.optimizer.into(), setup.vars()?),
            labels: setup.labels(),
            cfg,
            setup,
            out,
            opts,
        })
    }

    /// The exits' lines of an epoch: each exit's own train terms and its eval.
    fn exit_lines(&self, student: &EpochMetrics) -> Result<Vec<EpochLine>, TrainError> {
        let (Some(sd), Some(e)) = (&self.setup.self_distill, self.setup.eval.as_deref()) else {
            return Ok(Vec::new());
        };
        let exits = sd.evaluate(
            &self.setup.student,
            e,
            self.cfg.train.eval_batch_size,
            kd_temperature(&self.cfg.losses),
        )?;
        Ok(exits
            .into_iter()
            .map(|(name, em)| {
                let mut line = exit_line(student, &name);
                line.eval = Some(em);
                EpochLine {
                    display: epoch_line(&line),
                    metrics: line,
                }
            })
            .collect())
    }
}

impl Task for ImageTask<'_> {
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
        quiet: bool,
        step_log: &mut StepLog,
    ) -> Result<EpochTotals, TrainError> {
        epoch::train_epoch(
            self.setup,
            &self.cfg.train,
            &mut self.opt,
            epoch,
            quiet,
            step_log,
        )
    }

    fn evaluate(
        &mut self,
        epoch: usize,
        totals: &EpochTotals,
        started: Instant,
    ) -> Result<Vec<EpochLine>, TrainError> {
        let eval = evaluate_opt(&self.setup.student, self.setup.eval.as_deref(), self.cfg)?;
        let m = EpochMetrics {
            epoch,
            lr: totals.lr,
            steps: self.opt.steps(),
            train_loss: totals.mean_loss(),
            train_terms: totals.mean_terms(&self.labels),
            train_samples_per_s: totals.samples_per_s(),
            epoch_wall_s: started.elapsed().as_secs_f64(),
            eval,
            text_eval: None,
            network: self
                .setup
                .self_distill
                .as_ref()
                .map(|_| STUDENT_NETWORK.to_string()),
        };
        let exits = self.exit_lines(&m)?;
        let mut lines = vec![EpochLine {
            display: epoch_line(&m),
            metrics: m,
        }];
        lines.extend(exits);
        Ok(lines)
    }

    fn finish(&mut self, end: &Finished) -> Result<Summary, TrainError> {
        outputs::write(
            self.cfg,
            self.setup,
            self.out,
            self.opts,
            end,
            Default::default(),
        )
    }
}
