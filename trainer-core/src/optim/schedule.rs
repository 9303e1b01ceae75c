//! Learning rate per step: linear warm-up, then constant, cosine or step decay.

use crate::config::{ScheduleConfig, TrainConfig};

/// The learning rate of update `step` (0-based) in a run of `steps_per_epoch × epochs` steps.
pub fn lr_at(t: &TrainConfig, step: u64, steps_per_epoch: usize) -> f64 {
    let spe = steps_per_epoch.max(1) as f64;
    let total = spe * t.epochs as f64;
    let warmup = (t.warmup_epochs * spe).round();
    let s = step as f64;
    if s < warmup {
        return t.lr * (s + 1.0) / warmup;
    }
    match t.schedule {
        ScheduleConfig::Constant {} => t.lr,
        ScheduleConfig::Cosine { min_lr } => {
            let span = (total - warmup).max(1.0);
            let progress = ((s - warmup) / span).clamp(0.0, 1.0);
            min_lr + (t.lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
        ScheduleConfig::Step { step_epochs, gamma } => {
            let epoch = (s / spe).floor() as u64;
            let period = step_epochs.max(1) as u64;
            t.lr * gamma.powi((epoch / period) as i32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> TrainConfig {
        toml::from_str(text).expect("test config parses")
    }

    #[test]
    fn warmup_then_cosine_reaches_min() {
        let t =
            cfg("epochs = 2\nlr = 1.0\nwarmup_epochs = 0.5\nschedule = { kind = \"cosine\", min_lr = 0.1 }");
        assert!((lr_at(&t, 0, 10) - 0.2).abs() < 1e-12);
        assert!((lr_at(&t, 4, 10) - 1.0).abs() < 1e-12);
        assert!((lr_at(&t, 5, 10) - 1.0).abs() < 1e-12);
        assert!((lr_at(&t, 20, 10) - 0.1).abs() < 1e-12);
        let mid = lr_at(&t, 5 + 15 / 2, 10);
        assert!(mid > 0.1 && mid < 1.0);
    }

    #[test]
    fn step_decays_every_period() {
        let t = cfg(
            "epochs = 6\nlr = 1.0\nschedule = { kind = \"step\", step_epochs = 2, gamma = 0.5 }",
        );
        assert_eq!(lr_at(&t, 0, 10), 1.0);
        assert_eq!(lr_at(&t, 19, 10), 1.0);
        assert_eq!(lr_at(&t, 20, 10), 0.5);
        assert_eq!(lr_at(&t, 45, 10), 0.25);
    }
}
