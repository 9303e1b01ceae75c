//! Learning rate per step: linear warm-up, then constant, cosine or step decay.

use super::ScheduleConfig;

/// What a learning-rate schedule needs of a run: its peak rate, its length and warm-up in
/// epochs, and the decay after warm-up (the run config converts into it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: f64,
    /// Passes over the training rows.
    pub epochs: usize,
    /// Linear warm-up length in epochs (fractions allowed).
    pub warmup_epochs: f64,
    /// The decay after warm-up.
    pub schedule: ScheduleConfig,
}

/// The learning rate of update `step` (0-based) in a run of `steps_per_epoch × epochs` steps.
pub fn lr_at(schedule: impl Into<Schedule>, step: u64, steps_per_epoch: usize) -> f64 {
    let t = schedule.into();
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

    /// Just the `[train]` keys a schedule reads, parsed as the run config parses them.
    #[derive(serde::Deserialize)]
    struct Train {
        epochs: usize,
        lr: f64,
        #[serde(default)]
        warmup_epochs: f64,
        #[serde(default)]
        schedule: ScheduleConfig,
    }

    fn cfg(text: &str) -> Schedule {
        let t: Train = toml::from_str(text).expect("test config parses");
        Schedule {
            lr: t.lr,
            epochs: t.epochs,
            warmup_epochs: t.warmup_epochs,
            schedule: t.schedule,
        }
    }

    #[test]
    fn warmup_then_cosine_reaches_min() {
        let t =
            cfg("epochs = 2\nlr = 1.0\nwarmup_epochs = 0.5\nschedule = { kind = \"cosine\", min_lr = 0.1 }");
        assert!((lr_at(t, 0, 10) - 0.2).abs() < 1e-12);
        assert!((lr_at(t, 4, 10) - 1.0).abs() < 1e-12);
        assert!((lr_at(t, 5, 10) - 1.0).abs() < 1e-12);
        assert!((lr_at(t, 20, 10) - 0.1).abs() < 1e-12);
        let mid = lr_at(t, 5 + 15 / 2, 10);
        assert!(mid > 0.1 && mid < 1.0);
    }

    #[test]
    fn step_decays_every_period() {
        let t = cfg(
            "epochs = 6\nlr = 1.0\nschedule = { kind = \"step\", step_epochs = 2, gamma = 0.5 }",
        );
        assert_eq!(lr_at(t, 0, 10), 1.0);
        assert_eq!(lr_at(t, 19, 10), 1.0);
        assert_eq!(lr_at(t, 20, 10), 0.5);
        assert_eq!(lr_at(t, 45, 10), 0.25);
    }
}
