//! Early stopping as a small state machine: each epoch's watched value (lower is better)
//! either improves on the best so far, waits, or — `patience` epochs after the best — stops.
//! Its state is the checkpoint's [`BestState`], so a resumed run continues the same count.

use super::checkpoint::BestState;
use crate::config::StopMetric;
use crate::metrics::EvalMetrics;

/// The value of `metric` in an epoch's eval (`None`: `eval_kd` without full teacher logits).
pub fn watched(m: &EvalMetrics, metric: StopMetric) -> Option<f64> {
    match metric {
        StopMetric::EvalError => Some(m.errors as f64),
        StopMetric::EvalLoss => Some(m.ce),
        StopMetric::EvalKd => m.kd,
    }
}

/// What one epoch's value means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A new best: keep these weights.
    Improved,
    /// No improvement yet, within patience.
    Wait,
    /// `patience` epochs without improvement: stop now.
    Stop,
}

/// Tracks the best watched value and decides when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopper {
    patience: usize,
    best: Option<BestState>,
}

impl EarlyStopper {
    /// A stopper that waits `patience` epochs (>= 1) after the best one, resuming from `best`.
    pub fn new(patience: usize, best: Option<BestState>) -> Self {
        Self { patience, best }
    }

    /// Records `value` of (1-based) `epoch`.
    pub fn observe(&mut self, epoch: usize, value: f64) -> Verdict {
        // `<` and not `>=`: a NaN never counts as an improvement.
        let improved = self.best.is_none_or(|b| value < b.value);
        match self.best {
            Some(b) if !improved => {
                if epoch.saturating_sub(b.epoch) >= self.patience {
                    Verdict::Stop
                } else {
                    Verdict::Wait
                }
            }
            _ => {
                self.best = Some(BestState { value, epoch });
                Verdict::Improved
            }
        }
    }

    /// The best epoch and value so far.
    pub fn best(&self) -> Option<BestState> {
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict::{Improved as I, Stop as S, Wait as W};
    use super::*;

    /// (patience, values of epochs 1.., expected verdicts, expected best epoch)
    type Case = (usize, &'static [f64], &'static [Verdict], usize);

    const CASES: &[Case] = &[
        // Steady improvement never stops.
        (1, &[5.0, 4.0, 3.0], &[I, I, I], 3),
        // Patience 1: the first epoch without improvement stops.
        (1, &[5.0, 6.0], &[I, S], 1),
        // Patience 2: one flat epoch waits, the second stops.
        (2, &[5.0, 5.0, 5.0], &[I, W, S], 1),
        // An improvement inside the patience window restarts the count.
        (2, &[5.0, 6.0, 4.0, 7.0, 8.0], &[I, W, I, W, S], 3),
        // Equal is not better: the earlier epoch stays the best.
        (3, &[2.0, 2.0, 2.0, 1.0], &[I, W, W, I], 4),
        // A NaN is never an improvement.
        (1, &[1.0, f64::NAN], &[I, S], 1),
        // Infinity is still a first best.
        (1, &[f64::INFINITY, 1.0, 1.0], &[I, I, S], 2),
    ];

    #[test]
    fn verdicts_follow_the_table() {
        for (patience, values, verdicts, best_epoch) in CASES {
            let mut es = EarlyStopper::new(*patience, None);
            let got: Vec<Verdict> = values
                .iter()
                .enumerate()
                .map(|(i, v)| es.observe(i + 1, *v))
                .collect();
            assert_eq!(&got, verdicts, "patience {patience}, values {values:?}");
            assert_eq!(es.best().map(|b| b.epoch), Some(*best_epoch), "{values:?}");
        }
    }

    #[test]
    fn resumes_from_the_checkpointed_best() {
        // Best at epoch 2 with patience 3, resumed after epoch 4: epoch 5 stops.
        let mut es = EarlyStopper::new(
            3,
            Some(BestState {
                value: 1.0,
                epoch: 2,
            }),
        );
        assert_eq!(es.observe(5, 1.5), Verdict::Stop);
        let mut es = EarlyStopper::new(
            3,
            Some(BestState {
                value: 1.0,
                epoch: 2,
            }),
        );
        assert_eq!(es.observe(5, 0.5), Verdict::Improved);
        assert_eq!(
            es.best(),
            Some(BestState {
                value: 0.5,
                epoch: 5
            })
        );
    }
}
