//! The one training driver of every kind of run, after burn-train's `Learner`: a [`Task`]
//! (the image classifier of [`super::image`], the text student of [`super::text`], the
//! networks of an [`super::online`] run) trains and evaluates an epoch; the [`Learner`] runs
//! the epochs and owns what is the same for all of them — resume, `metrics.jsonl`,
//! `steps.jsonl`, early stopping, checkpoints and the pause of `stop_after`.
//!
//! One resume semantics: a run that restores a checkpoint cuts `metrics.jsonl` and
//! `steps.jsonl` back to the checkpoint's epoch and optimizer step; a run that does not
//! (fresh, or `--resume` with no checkpoint yet) starts both files empty. Either way the
//! files of a paused-and-resumed run hold exactly the lines of a straight run.

use std::path::Path;
use std::time::Instant;

use candle_nn::VarMap;

use super::checkpoint::{self, CheckpointState};
use super::early_stop::{watched, EarlyStopper, Verdict};
use super::epoch::EpochTotals;
use super::outputs::{self, Finished, METRICS_FILE};
use super::{student_lines, RunOutcome, TrainError, TrainOptions};
use crate::config::EarlyStopping;
use crate::metrics::{self, steps::StepLog, EpochMetrics, Summary};
use trainer_core::optim::Optimizer;

/// One `metrics.jsonl` line of an epoch and how it reads on the terminal.
#[derive(Debug, Clone)]
pub struct EpochLine {
    /// The line.
    pub metrics: EpochMetrics,
    /// Its terminal form (printed unless `quiet`).
    pub display: String,
}

/// An exit's line of an epoch: the `[student]`'s line with only the exit's own train terms
/// (`NAME:…`), named `name`; the caller sets its eval.
pub fn exit_line(student: &EpochMetrics, name: &str) -> EpochMetrics {
    let mut line = student.clone();
    let own = format!("{name}:");
    line.train_terms.retain(|k, _| k.starts_with(&own));
    line.network = Some(name.to_string());
    line
}

/// What the [`Learner`] trains: one kind of run's epoch, eval and outputs.
pub trait Task {
    /// Epochs of the whole run.
    fn epochs(&self) -> usize;
    /// Labels of the values [`Task::train_epoch`] records per step (`steps.jsonl`).
    fn step_labels(&self) -> Vec<String>;
    /// Every variable of the run: what a checkpoint saves and restores.
    fn varmap(&self) -> &VarMap;
    /// The optimizers, each with its network's name: the `[student]`'s first (its steps are
    /// the checkpoint's `optimizer_steps`), any others' steps kept by name.
    fn optimizers(&mut self) -> Vec<(&str, &mut Optimizer)>;
    /// Trains 0-based `epoch`, recording every optimizer step in `step_log`.
    fn train_epoch(
        &mut self,
        epoch: usize,
        quiet: bool,
        step_log: &mut StepLog,
    ) -> Result<EpochTotals, TrainError>;
    /// Evaluates after 1-based `epoch` (trained as `totals`, begun at `started`) and returns
    /// its `metrics.jsonl` lines, the `[student]`'s first (early stopping watches its eval).
    fn evaluate(
        &mut self,
        epoch: usize,
        totals: &EpochTotals,
        started: Instant,
    ) -> Result<Vec<EpochLine>, TrainError>;
    /// Writes the finished run's outputs (weights, exports, plot, `summary.json`).
    fn finish(&mut self, end: &Finished) -> Result<Summary, TrainError>;
    /// Puts the task's own running figures into the state a checkpoint saves.
    fn save_progress(&self, _state: &mut CheckpointState) {}
    /// Takes them back from a restored checkpoint.
    fn restore_progress(&mut self, _state: &CheckpointState) {}
}

/// Drives a [`Task`] in a run folder.
pub struct Learner<'a> {
    out: &'a Path,
    opts: &'a TrainOptions,
    early_stopping: Option<EarlyStopping>,
    started: Instant,
}

/// The loop's state between epochs.
struct Progress {
    state: CheckpointState,
    /// The `[student]`'s lines so far (for the plot).
    history: Vec<EpochMetrics>,
    /// Wall time of earlier sessions.
    prior_wall_s: f64,
    stopper: Option<EarlyStopper>,
}

impl<'a> Learner<'a> {
    /// A learner for the run folder `out` (its `config.toml` already written); `started` is
    /// when this session began (for the wall time).
    pub fn new(
        out: &'a Path,
        opts: &'a TrainOptions,
        early_stopping: Option<EarlyStopping>,
        started: Instant,
    ) -> Self {
        Self {
            out,
            opts,
            early_stopping,
            started,
        }
    }

    /// Trains `task` to its last epoch (or early stop, or `stop_after`), resuming from the
    /// folder's checkpoint when `opts.resume` and there is one.
    pub fn fit(&self, task: &mut impl Task) -> Result<RunOutcome, TrainError> {
        let vars = task.varmap().clone();
        let mut p = self.start(task, &vars)?;
        let keep_steps = loop_steps(task);
        let labels = task.step_labels();
        let mut step_log = StepLog::open(&self.out.join(outputs::STEPS_FILE), labels, keep_steps)?;
        while p.state.epoch < task.epochs() && !p.state.stopped_early {
            if self.opts.stop_after.is_some_and(|n| p.state.epoch >= n) {
                return Ok(RunOutcome::Paused {
                    epochs: p.state.epoch,
                });
            }
            let t_epoch = Instant::now();
            let totals = task.train_epoch(p.state.epoch, self.opts.quiet, &mut step_log)?;
            let lines = task.evaluate(p.state.epoch + 1, &totals, t_epoch)?;
            p.state.epoch += 1;
            record_steps(&mut p.state, task);
            p.state.train_samples += totals.rows;
            p.state.train_s += totals.step_s;
            self.log(&lines, &mut p.history)?;
            self.early_stop(&mut p, lines.first(), &vars)?;
            p.state.wall_s = p.prior_wall_s + self.started.elapsed().as_secs_f64();
            task.save_progress(&mut p.state);
            self.save(task, &vars, &p.state)?;
        }
        let end = Finished {
            state: &p.state,
            best: p.state.best.filter(|_| self.early_stopping.is_some()),
            history: &p.history,
            prior_wall_s: p.prior_wall_s,
            started: self.started,
        };
        Ok(RunOutcome::Finished(task.finish(&end)?))
    }

    /// Where the run starts: the checkpoint's state, with the variables and optimizers
    /// restored and `metrics.jsonl` cut back to it; else epoch 0 with no metrics file.
    fn start(&self, task: &mut impl Task, vars: &VarMap) -> Result<Progress, TrainError> {
        let metrics_path = self.out.join(METRICS_FILE);
        let (state, history) = match checkpoint::load_state(self.out)? {
            Some(s) if self.opts.resume => {
                let mut opts: Vec<(&mut Optimizer, u64)> = task
                    .optimizers()
                    .into_iter()
                    .enumerate()
                    .map(|(i, (name, opt))| {
                        let steps = match i {
                            0 => s.optimizer_steps,
                            _ => s.network_steps.get(name).copied().unwrap_or(0),
                        };
                        (opt, steps)
                    })
                    .collect();
                checkpoint::restore_all(self.out, &s, vars, &mut opts)?;
                task.restore_progress(&s);
                let lines = metrics::truncate_epochs(&metrics_path, s.epoch)?;
                (s, student_lines(lines))
            }
            _ => {
                remove_if_present(&metrics_path)?;
                (CheckpointState::fresh(), Vec::new())
            }
        };
        Ok(Progress {
            stopper: self
                .early_stopping
                .map(|es| EarlyStopper::new(es.patience, state.best)),
            prior_wall_s: state.wall_s,
            state,
            history,
        })
    }

    /// Prints and appends an epoch's lines; the `[student]`'s join the history.
    fn log(&self, lines: &[EpochLine], history: &mut Vec<EpochMetrics>) -> Result<(), TrainError> {
        let path = self.out.join(METRICS_FILE);
        for l in lines {
            if !self.opts.quiet {
                eprintln!("{}", l.display);
            }
            metrics::append_epoch(&path, &l.metrics)?;
        }
        history.extend(
            lines
                .iter()
                .filter(|l| l.metrics.is_student())
                .map(|l| l.metrics.clone()),
        );
        Ok(())
    }

    /// Feeds the `[student]`'s eval to early stopping: keeps the best weights on improvement,
    /// marks the state stopped after `patience` epochs without.
    fn early_stop(
        &self,
        p: &mut Progress,
        student: Option<&EpochLine>,
        vars: &VarMap,
    ) -> Result<(), TrainError> {
        let (Some(es), Some(stopper), Some(eval)) = (
            &self.early_stopping,
            &mut p.stopper,
            student.and_then(|l| l.metrics.eval.as_ref()),
        ) else {
            return Ok(());
        };
        let value = watched(eval, es.metric).ok_or_else(|| {
            TrainError::Config(
                "early_stopping.metric = \"eval_kd\" needs full teacher logits in the eval set"
                    .into(),
            )
        })?;
        match stopper.observe(p.state.epoch, value) {
            Verdict::Improved => {
                let dir = checkpoint::dir(self.out);
                std::fs::create_dir_all(&dir)
                    .map_err(|source| TrainError::Io { path: dir, source })?;
                checkpoint::save_vars(vars, &outputs::best_path(self.out), |_| true)?;
            }
            Verdict::Wait => {}
            Verdict::Stop => {
                p.state.stopped_early = true;
                if !self.opts.quiet {
                    eprintln!("early stopping: no improvement for {} epochs", es.patience);
                }
            }
        }
        p.state.best = stopper.best();
        Ok(())
    }

    /// Checkpoints the variables and every optimizer after an epoch.
    fn save(
        &self,
        task: &mut impl Task,
        vars: &VarMap,
        state: &CheckpointState,
    ) -> Result<(), TrainError> {
        let opts = task.optimizers();
        let refs: Vec<&Optimizer> = opts.iter().map(|(_, o)| &**o).collect();
        checkpoint::save_all(self.out, vars, &refs, state.clone())
    }
}

/// Optimizer updates so far as `steps.jsonl` counts them: the most of any network's.
fn loop_steps(task: &mut impl Task) -> u64 {
    task.optimizers()
        .iter()
        .map(|(_, o)| o.steps())
        .max()
        .unwrap_or(0)
}

/// Copies the optimizers' step counts into the checkpoint state.
fn record_steps(state: &mut CheckpointState, task: &mut impl Task) {
    let opts = task.optimizers();
    let mut it = opts.iter();
    if let Some((_, o)) = it.next() {
        state.optimizer_steps = o.steps();
    }
    state.network_steps = it.map(|(n, o)| (n.to_string(), o.steps())).collect();
}

/// Removes `path`; a missing file is fine.
fn remove_if_present(path: &Path) -> Result<(), TrainError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(TrainError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StopMetric;
    use crate::metrics::EvalMetrics;
    use candle_core::{DType, Device, Tensor};
    use trainer_core::optim::Hyper;

    /// A toy task: two "networks", one variable each, pulled towards a target by SGD (the
    /// second steps in odd epochs only), and a scripted eval loss per epoch.
    struct Toy {
        vars: VarMap,
        opts: Vec<Optimizer>,
        epochs: usize,
        eval_ce: Vec<f64>,
        finished: Option<(usize, usize, Option<usize>)>,
    }

    impl Toy {
        fn new(epochs: usize, eval_ce: Vec<f64>) -> Self {
            let vars = VarMap::new();
            let sgd = Hyper::Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            };
            let opts = ["w", "v"]
                .iter()
                .map(|name| {
                    let init = candle_nn::Init::Const(1.0);
                    vars.get(2, name, init, DType::F32, &Device::Cpu)
                        .expect("var");
                    let var = vars.data().lock().expect("lock")[*name].clone();
                    Optimizer::new(sgd, vec![(name.to_string(), var)])
                })
                .collect();
            Self {
                vars,
                opts,
                epochs,
                eval_ce,
                finished: None,
            }
        }

        fn weights(&self) -> Vec<Vec<f32>> {
            let data = self.vars.data().lock().expect("lock");
            ["w", "v"]
                .map(|n| data[n].as_tensor().to_vec1::<f32>().expect("var"))
                .to_vec()
        }
    }

    impl Task for Toy {
        fn epochs(&self) -> usize {
            self.epochs
        }
        fn step_labels(&self) -> Vec<String> {
            vec!["sq".into()]
        }
        fn varmap(&self) -> &VarMap {
            &self.vars
        }
        fn optimizers(&mut self) -> Vec<(&str, &mut Optimizer)> {
            let [a, b] = &mut self.opts[..] else {
                unreachable!("two optimizers")
            };
            vec![("student", a), ("other", b)]
        }
        fn train_epoch(
            &mut self,
            epoch: usize,
            _quiet: bool,
            step_log: &mut StepLog,
        ) -> Result<EpochTotals, TrainError> {
            let mut totals = EpochTotals::new(1, 0.1);
            let target = Tensor::new(&[3f32, -2.0], &Device::Cpu)?;
            for _ in 0..3 {
                let sq = |name: &str| {
                    let v = self.vars.data().lock().expect("lock")[name].clone();
                    v.as_tensor().sub(&target)?.sqr()?.sum_all()
                };
                let loss = (sq("w")? + sq("v")?)?;
                let lv = loss.to_scalar::<f32>()?;
                let grads = loss.backward()?;
                self.opts[0].step(&grads, 0.05)?;
                if epoch % 2 == 1 {
                    self.opts[1].step(&grads, 0.05)?;
                }
                step_log.record(epoch + 1, self.opts[0].steps(), 0.05, 4, lv, &[lv])?;
                totals.add(4, lv, &[lv], 0.0, 0.05);
            }
            step_log.end_epoch()?;
            Ok(totals)
        }
        fn evaluate(
            &mut self,
            epoch: usize,
            totals: &EpochTotals,
            _started: Instant,
        ) -> Result<Vec<EpochLine>, TrainError> {
            let line = |network: &str, eval: Option<EvalMetrics>| EpochLine {
                metrics: EpochMetrics {
                    epoch,
                    lr: totals.lr,
                    steps: self.opts[0].steps(),
                    train_loss: totals.mean_loss(),
                    train_terms: totals.mean_terms(&["sq".into()]),
                    train_samples_per_s: 0.0,
                    epoch_wall_s: 0.0,
                    eval,
                    text_eval: None,
                    network: Some(network.into()),
                },
                display: String::new(),
            };
            let eval = EvalMetrics {
                rows: 1,
                errors: 0,
                accuracy: 1.0,
                ce: self.eval_ce[epoch - 1],
                agreement: None,
                kd: None,
                infer_rows_per_s: None,
            };
            Ok(vec![line("student", Some(eval)), line("other", None)])
        }
        fn finish(&mut self, end: &Finished) -> Result<Summary, TrainError> {
            self.finished = Some((
                end.state.epoch,
                end.history.len(),
                end.best.map(|b| b.epoch),
            ));
            Err(TrainError::Config("the toy writes no summary".into()))
        }
    }

    fn opts(resume: bool, stop_after: Option<usize>) -> TrainOptions {
        TrainOptions {
            resume,
            quiet: true,
            stop_after,
            ..Default::default()
        }
    }

    fn read(dir: &Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file)).expect(file)
    }

    /// Runs a toy to the end; `Err` from the toy's `finish` means it got there.
    fn fit_to_end(dir: &Path, toy: &mut Toy, resume: bool) {
        let e = Learner::new(dir, &opts(resume, None), None, Instant::now())
            .fit(toy)
            .expect_err("the toy's finish");
        assert!(e.to_string().contains("toy"), "{e}");
    }

    #[test]
    fn paused_and_resumed_run_matches_a_straight_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).expect("a");
        std::fs::create_dir_all(&b).expect("b");
        let ce = vec![3.0, 2.0, 1.0];
        let mut straight = Toy::new(3, ce.clone());
        fit_to_end(&a, &mut straight, false);

        let mut first = Toy::new(3, ce.clone());
        let paused = Learner::new(&b, &opts(false, Some(1)), None, Instant::now())
            .fit(&mut first)
            .expect("paused");
        assert_eq!(paused, RunOutcome::Paused { epochs: 1 });
        // A fresh process: new variables and optimizers, everything from the checkpoint.
        let mut second = Toy::new(3, ce);
        fit_to_end(&b, &mut second, true);

        assert_eq!(straight.weights(), second.weights());
        assert_eq!(read(&a, METRICS_FILE), read(&b, METRICS_FILE));
        assert_eq!(read(&a, outputs::STEPS_FILE), read(&b, outputs::STEPS_FILE));
        assert_eq!(read(&a, METRICS_FILE).lines().count(), 6);
        // Both optimizers' step counts survive the pause (the second skips even epochs).
        let s = checkpoint::load_state(&b).expect("state").expect("some");
        assert_eq!((s.optimizer_steps, s.network_steps["other"]), (9, 3));
        assert_eq!(straight.finished, Some((3, 3, None)));
        assert_eq!(second.finished, straight.finished, "history from the file");
    }

    #[test]
    fn a_run_without_a_checkpoint_starts_its_metrics_file_empty() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        for resume in [false, true] {
            std::fs::write(dir.join(METRICS_FILE), "{stale}\n").expect("stale");
            std::fs::write(dir.join(outputs::STEPS_FILE), "").expect("stale");
            let mut toy = Toy::new(1, vec![1.0]);
            fit_to_end(dir, &mut toy, resume);
            assert_eq!(
                read(dir, METRICS_FILE).lines().count(),
                2,
                "resume {resume}"
            );
            std::fs::remove_dir_all(checkpoint::dir(dir)).expect("rm checkpoint");
        }
    }

    #[test]
    fn resume_drops_lines_the_checkpoint_does_not_hold() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let mut toy = Toy::new(2, vec![2.0, 1.0]);
        Learner::new(dir, &opts(false, Some(1)), None, Instant::now())
            .fit(&mut toy)
            .expect("paused");
        let after_one = read(dir, METRICS_FILE);
        // A kill after the metrics append but before the checkpoint leaves an extra epoch.
        let extra = after_one.replace("\"epoch\":1", "\"epoch\":2");
        std::fs::write(dir.join(METRICS_FILE), format!("{after_one}{extra}")).expect("w");
        let mut toy = Toy::new(2, vec![2.0, 1.0]);
        fit_to_end(dir, &mut toy, true);
        let lines: Vec<EpochMetrics> = metrics::read_epochs(&dir.join(METRICS_FILE)).expect("r");
        let epochs: Vec<usize> = lines.iter().map(|l| l.epoch).collect();
        assert_eq!(epochs, [1, 1, 2, 2]);
    }

    #[test]
    fn early_stopping_ends_the_loop_keeps_the_best_and_survives_resume() {
        let es = EarlyStopping {
            patience: 1,
            metric: StopMetric::EvalLoss,
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        // Best at epoch 2; epoch 3 is worse, so the run stops after 3 of 6 epochs.
        let ce = vec![3.0, 1.0, 2.0, 0.5, 0.5, 0.5];
        let mut toy = Toy::new(6, ce.clone());
        Learner::new(dir, &opts(false, Some(2)), Some(es), Instant::now())
            .fit(&mut toy)
            .expect("paused");
        assert!(outputs::best_path(dir).is_file(), "best weights saved");
        let mut toy = Toy::new(6, ce);
        let e = Learner::new(dir, &opts(true, None), Some(es), Instant::now())
            .fit(&mut toy)
            .expect_err("the toy's finish");
        assert!(e.to_string().contains("toy"), "{e}");
        assert_eq!(toy.finished, Some((3, 3, Some(2))));
        let s = checkpoint::load_state(dir).expect("state").expect("some");
        assert!(s.stopped_early);
    }
}
