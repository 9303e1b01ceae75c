//! Range checks serde cannot express (positive rates, probabilities in [0, 1), ...) and the
//! few cross-table requirements (`ce` needs `data.label`, early stopping needs `data.eval`).
//! Which keys exist for which kind is the types' job, not this module's.

use std::collections::HashSet;

use super::{
    DataConfig, DistanceConfig, LossTerm, OnlineConfig, OptimizerConfig, RunConfig, ScheduleConfig,
    SelfDistillConfig, TrainConfig,
};
use trainer_core::model::StudentConfig;

/// A failed check: the dotted key and what is wrong.
pub type Failure = (String, String);

type Check = Result<(), Failure>;

fn fail(key: impl Into<String>, message: impl Into<String>) -> Check {
    Err((key.into(), message.into()))
}

fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

fn non_negative(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// All checks of a run config, table by table.
pub fn run_config(cfg: &RunConfig) -> Check {
    if cfg.student.is_text() {
        if cfg.online.is_some() {
            return fail(
                "online",
                "applies to the image students only (student.arch = \"mlp\" or \"cnn\")",
            );
        }
        if let Some(sd) = &cfg.self_distill {
            self_distill(sd, &cfg.student)?;
        }
        return text_run(cfg);
    }
    for (key, set) in [
        ("data.token_types", cfg.data.token_types.is_some()),
        ("data.bucket_by_length", cfg.data.bucket_by_length),
        ("data.shuffle_window", cfg.data.shuffle_window.is_some()),
        ("data.eval_fraction", cfg.data.eval_fraction.is_some()),
        ("data.train_fraction", cfg.data.train_fraction.is_some()),
    ] {
        if set {
            return fail(
                key,
                "applies to text students only (student.arch = \"static\" or \"transformer\")",
            );
        }
    }
    train(&cfg.train, cfg.data.eval.is_some())?;
    optimizer(&cfg.train.optimizer)?;
    schedule(&cfg.train.schedule, cfg.train.lr)?;
    data(&cfg.data)?;
    losses(&cfg.losses, cfg.data.label.is_some())?;
    views(cfg)?;
    modes(cfg)
}

/// `[data.views]` and `[data.served]`: one teacher source that brings its own augmentation.
fn views(cfg: &RunConfig) -> Check {
    let d = &cfg.data;
    let key = match (&d.views, &d.served) {
        (None, None) => return Ok(()),
        (Some(_), Some(_)) => return fail(
            "data.served",
            "give [data.views] (stored views) or [data.served] (teacher asked per batch), not both",
        ),
        (Some(v), None) => {
            if v.count == Some(0) {
                return fail("data.views.count", "must be at least 1");
            }
            "data.views"
        }
        (None, Some(s)) => {
            if !positive(s.timeout_secs) {
                return fail("data.served.timeout_secs", "must be positive");
            }
            if !s.server.starts_with("http://") {
                return fail(
                    "data.served.server",
                    format!(
                        "{:?} must start with http:// (no TLS in this build)",
                        s.server
                    ),
                );
            }
            "data.served"
        }
    };
    if cfg.train.jitter > 0 {
        return fail(
            "train.jitter",
            format!(
                "{key} brings its own augmentation (the one the teacher saw); set train.jitter = 0"
            ),
        );
    }
    if !d.teachers.is_empty() {
        return fail(
            "data.teachers",
            format!(
                "{key} is the teacher source of this run; data.teachers cannot be joined to it"
            ),
        );
    }
    if !cfg.losses.iter().any(|t| t.teacher().is_some()) {
        return fail(
            key,
            "no [[loss]] term reads a teacher column (kd, soft_bce, feature, ...); the views would go unused",
        );
    }
    Ok(())
}

/// `[online]` and `[self_distill]`: one mode at a time, hard labels present, sane weights.
fn modes(cfg: &RunConfig) -> Check {
    let (key, set) = match (&cfg.online, &cfg.self_distill) {
        (None, None) => return Ok(()),
        (Some(_), Some(_)) => {
            return fail(
                "self_distill",
                "give [online] or [self_distill], not both in one run",
            )
        }
        (Some(_), None) => ("online", true),
        (None, Some(_)) => ("self_distill", true),
    };
    if set && cfg.data.label.is_none() {
        return fail(
            key,
            "needs data.label: the other networks or exits learn from the hard labels",
        );
    }
    if cfg.train.early_stopping.is_some() {
        return fail(
            "train.early_stopping",
            format!("is not supported with [{key}] (every network's eval is logged per epoch in metrics.jsonl)"),
        );
    }
    match (&cfg.online, &cfg.self_distill) {
        (Some(o), _) => online(o),
        (_, Some(sd)) => self_distill(sd, &cfg.student),
        _ => Ok(()),
    }
}

fn online(o: &OnlineConfig) -> Check {
    if !positive(o.temperature()) {
        return fail("online.temperature", "must be positive");
    }
    let (weight, others_key) = match o {
        OnlineConfig::Mutual { weight, peers, .. } => {
            if peers.is_empty() {
                return fail(
                    "online.peers",
                    "mutual learning needs at least one peer beside [student]: add [online.peers.NAME] with arch = ...",
                );
            }
            (*weight, "online.peers")
        }
        OnlineConfig::TeacherStudent {
            weight,
            teacher_weight,
            ..
        } => {
            if !non_negative(*teacher_weight) {
                return fail("online.teacher_weight", "must be >= 0");
            }
            (*weight, "online.teacher")
        }
    };
    if !non_negative(weight) {
        return fail("online.weight", "must be >= 0");
    }
    for (name, net) in o.others() {
        let key = match o {
            OnlineConfig::Mutual { .. } => format!("{others_key}.{name}"),
            OnlineConfig::TeacherStudent { .. } => others_key.to_string(),
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid || name == "student" {
            return fail(
                key,
                format!("network name {name:?} must be letters, digits, '_' or '-', and not \"student\""),
            );
        }
        if net.is_text() {
            return fail(
                format!("{key}.arch"),
                "online networks must be image students (\"mlp\" or \"cnn\")",
            );
        }
    }
    Ok(())
}

fn self_distill(sd: &SelfDistillConfig, student: &StudentConfig) -> Check {
    let (deepest, what) = match student {
        StudentConfig::Mlp { hidden, .. } => (hidden.len().saturating_sub(1), "hidden layers"),
        StudentConfig::Cnn { channels, .. } => (channels.len(), "conv blocks"),
        StudentConfig::Transformer(c) => (c.layers.saturating_sub(1), "encoder blocks"),
        StudentConfig::Static(_) => {
            return fail(
                "self_distill",
                "the static student has no layers to put an exit after (self-distillation applies to mlp, cnn and transformer students)",
            )
        }
    };
    if sd.exits.is_empty() {
        return fail(
            "self_distill.exits",
            "name at least one layer to attach an exit to, e.g. exits = [0]",
        );
    }
    for (i, &l) in sd.exits.iter().enumerate() {
        if l >= deepest {
            let allowed = if deepest == 0 {
                "none: the student has no layer before its own head".to_string()
            } else {
                format!("0..={}", deepest - 1)
            };
            return fail(
                format!("self_distill.exits[{i}]"),
                format!(
                    "exit after layer {l}, but the {} student's deepest exit is its own head; {what} that can take an exit: {allowed}",
                    student.arch_name()
                ),
            );
        }
        if sd.exits[..i].contains(&l) {
            return fail(
                format!("self_distill.exits[{i}]"),
                format!("layer {l} is listed twice"),
            );
        }
    }
    if sd.head_hidden == Some(0) {
        return fail("self_distill.head_hidden", "must be at least 1");
    }
    match sd.temperature {
        Some(_) if student.is_text() => {
            return fail(
                "self_distill.temperature",
                "a transformer exit's KD term is the cosine distance to the deepest embedding, which has no temperature; remove the key",
            )
        }
        Some(t) if !positive(t) => return fail("self_distill.temperature", "must be positive"),
        _ => {}
    }
    if !(sd.kd_weight.is_finite() && (0.0..=1.0).contains(&sd.kd_weight)) {
        return fail("self_distill.kd_weight", "must be in [0, 1]");
    }
    if !non_negative(sd.hint_weight) {
        return fail("self_distill.hint_weight", "must be >= 0");
    }
    Ok(())
}

/// The checks of a text run: embedding losses only, its own data keys.
fn text_run(cfg: &RunConfig) -> Check {
    let d = &cfg.data;
    train(&cfg.train, true)?;
    optimizer(&cfg.train.optimizer)?;
    schedule(&cfg.train.schedule, cfg.train.lr)?;
    if cfg.train.early_stopping.is_some() {
        return fail(
            "train.early_stopping",
            "is not supported for text students (every epoch's eval is logged; pick the epoch from metrics.jsonl)",
        );
    }
    if cfg.train.jitter > 0 {
        return fail(
            "train.jitter",
            "image jitter does not apply to text students",
        );
    }
    for (key, set) in [
        ("data.label", d.label.is_some()),
        ("data.num_classes", d.num_classes.is_some()),
        ("data.image_shape", d.image_shape.is_some()),
        ("data.teachers", !d.teachers.is_empty()),
        ("data.views", d.views.is_some()),
        ("data.served", d.served.is_some()),
    ] {
        if set {
            return fail(
                key,
                "does not apply to text students (they train on a token column against stored embeddings)",
            );
        }
    }
    if d.shuffle_window == Some(0) {
        return fail("data.shuffle_window", "must be at least 1");
    }
    if let Some(f) = d.train_fraction {
        if !(f > 0.0 && f <= 1.0) {
            return fail("data.train_fraction", format!("must be in (0, 1], got {f}"));
        }
    }
    if let Some(f) = d.eval_fraction {
        if !(f > 0.0 && f < 1.0) {
            return fail("data.eval_fraction", format!("must be in (0, 1), got {f}"));
        }
        if d.eval.is_some() {
            return fail(
                "data.eval_fraction",
                "give either data.eval (a source) or data.eval_fraction (held out by id), not both",
            );
        }
    }
    if matches!(&cfg.student, StudentConfig::Static(_)) && d.token_types.is_some() {
        return fail(
            "data.token_types",
            "the static student ignores token types; remove the key",
        );
    }
    for (i, term) in cfg.losses.iter().enumerate() {
        if matches!(
            term,
            LossTerm::Ce { .. } | LossTerm::Kd { .. } | LossTerm::SoftBce { .. }
        ) {
            return fail(
                format!("loss[{i}].kind"),
                format!(
                    "a text student trains on embeddings: use feature, infonce, rkd or sp, not {:?}",
                    term.kind()
                ),
            );
        }
        if term.teacher().is_some_and(|t| t.contains(':')) {
            return fail(
                format!("loss[{i}].teacher"),
                "text runs read teacher columns from data.train itself (no NAME:column)",
            );
        }
    }
    losses(&cfg.losses, false)
}

fn train(t: &TrainConfig, has_eval: bool) -> Check {
    if t.epochs == 0 {
        return fail("train.epochs", "must be at least 1");
    }
    if t.batch_size == 0 {
        return fail("train.batch_size", "must be at least 1");
    }
    if t.eval_batch_size == 0 {
        return fail("train.eval_batch_size", "must be at least 1");
    }
    if !positive(t.lr) {
        return fail("train.lr", format!("must be positive, got {}", t.lr));
    }
    if !non_negative(t.warmup_epochs) {
        return fail("train.warmup_epochs", "must be >= 0");
    }
    if let Some(es) = &t.early_stopping {
        if es.patience == 0 {
            return fail("train.early_stopping.patience", "must be at least 1");
        }
        if !has_eval {
            return fail(
                "train.early_stopping",
                "needs data.eval (a held-out set to watch)",
            );
        }
    }
    Ok(())
}

fn optimizer(o: &OptimizerConfig) -> Check {
    let weight_decay = match *o {
        OptimizerConfig::Adamw {
            betas,
            eps,
            weight_decay,
        } => {
            if !betas.iter().all(|b| (0.0..1.0).contains(b)) {
                return fail("train.optimizer.betas", "each beta must be in [0, 1)");
            }
            if !positive(eps) {
                return fail("train.optimizer.eps", "must be positive");
            }
            weight_decay
        }
        OptimizerConfig::Sgd {
            momentum,
            nesterov,
            weight_decay,
        } => {
            if !(0.0..1.0).contains(&momentum) {
                return fail("train.optimizer.momentum", "must be in [0, 1)");
            }
            if nesterov && momentum == 0.0 {
                return fail(
                    "train.optimizer.nesterov",
                    "needs a positive train.optimizer.momentum",
                );
            }
            weight_decay
        }
    };
    if !non_negative(weight_decay) {
        return fail("train.optimizer.weight_decay", "must be >= 0");
    }
    Ok(())
}

fn schedule(s: &ScheduleConfig, lr: f64) -> Check {
    match *s {
        ScheduleConfig::Constant {} => Ok(()),
        ScheduleConfig::Cosine { min_lr } => {
            if !(non_negative(min_lr) && min_lr <= lr) {
                return fail("train.schedule.min_lr", "must be in [0, train.lr]");
            }
            Ok(())
        }
        ScheduleConfig::Step { step_epochs, gamma } => {
            if step_epochs == 0 {
                return fail("train.schedule.step_epochs", "must be at least 1");
            }
            if !(gamma > 0.0 && gamma <= 1.0) {
                return fail("train.schedule.gamma", "must be in (0, 1]");
            }
            Ok(())
        }
    }
}

fn data(d: &DataConfig) -> Check {
    if let Some(shape) = &d.image_shape {
        if !(shape.len() == 2 || shape.len() == 3) || shape.contains(&0) {
            return fail(
                "data.image_shape",
                "must be [H, W] or [C, H, W] with positive sizes",
            );
        }
    }
    if d.num_classes == Some(0) {
        return fail("data.num_classes", "must be at least 1");
    }
    let mut names = HashSet::new();
    for (i, t) in d.teachers.iter().enumerate() {
        let key = format!("data.teachers[{i}]");
        if t.name.is_empty() || t.name.contains(':') {
            return fail(
                format!("{key}.name"),
                "must be non-empty and contain no ':'",
            );
        }
        if !names.insert(t.name.as_str()) {
            return fail(
                format!("{key}.name"),
                format!("duplicate teacher name {:?}", t.name),
            );
        }
        if !positive(t.weight) {
            return fail(format!("{key}.weight"), "must be positive");
        }
    }
    Ok(())
}

fn losses(terms: &[LossTerm], has_label: bool) -> Check {
    if terms.is_empty() {
        return fail("loss", "no [[loss]] terms; add e.g. [[loss]] kind = \"ce\"");
    }
    for (i, term) in terms.iter().enumerate() {
        loss(i, term, has_label)?;
    }
    Ok(())
}

fn loss(i: usize, term: &LossTerm, has_label: bool) -> Check {
    let key = |k: &str| format!("loss[{i}].{k}");
    if !non_negative(term.weight()) {
        return fail(key("weight"), "must be >= 0");
    }
    if term.teacher().is_some_and(str::is_empty) {
        return fail(key("teacher"), "must name a column");
    }
    match term {
        LossTerm::Ce { .. } if !has_label => fail(
            key("kind"),
            "a \"ce\" term needs data.label (the hard-label column)",
        ),
        LossTerm::Kd { temperature, .. }
        | LossTerm::SoftBce { temperature, .. }
        | LossTerm::Infonce { temperature, .. }
            if !positive(*temperature) =>
        {
            fail(key("temperature"), "must be positive")
        }
        LossTerm::Feature { distance, .. } => match *distance {
            DistanceConfig::SmoothL1 { beta } if !positive(beta) => {
                fail(key("distance.beta"), "must be positive")
            }
            DistanceConfig::Kl { temperature } if !positive(temperature) => {
                fail(key("distance.temperature"), "must be positive")
            }
            _ => Ok(()),
        },
        LossTerm::Rkd {
            distance_weight,
            angle_weight,
            ..
        } if !(*distance_weight >= 0.0 && *angle_weight >= 0.0) => fail(
            key("distance_weight"),
            "distance_weight and angle_weight must be >= 0",
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(text: &str) -> Check {
        let o: OptimizerConfig = toml::from_str(text).expect("optimizer table");
        optimizer(&o)
    }

    fn sched(text: &str, lr: f64) -> Check {
        let s: ScheduleConfig = toml::from_str(text).expect("schedule table");
        schedule(&s, lr)
    }

    fn key(r: Check) -> Option<String> {
        r.err().map(|(k, _)| k)
    }

    #[test]
    fn optimizer_ranges() {
        let cases: [(&str, Option<&str>); 8] = [
            ("kind = \"adamw\"", None),
            (
                "kind = \"adamw\"\nbetas = [0.9, 1.0]",
                Some("train.optimizer.betas"),
            ),
            ("kind = \"adamw\"\neps = 0.0", Some("train.optimizer.eps")),
            (
                "kind = \"adamw\"\nweight_decay = -0.1",
                Some("train.optimizer.weight_decay"),
            ),
            ("kind = \"sgd\"\nmomentum = 0.9\nnesterov = true", None),
            (
                "kind = \"sgd\"\nmomentum = 1.0",
                Some("train.optimizer.momentum"),
            ),
            (
                "kind = \"sgd\"\nnesterov = true",
                Some("train.optimizer.nesterov"),
            ),
            (
                "kind = \"sgd\"\nweight_decay = -1.0",
                Some("train.optimizer.weight_decay"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(key(opt(text)).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn schedule_ranges() {
        let cases: [(&str, Option<&str>); 6] = [
            ("kind = \"constant\"", None),
            ("kind = \"cosine\"\nmin_lr = 0.5", None),
            (
                "kind = \"cosine\"\nmin_lr = 2.0",
                Some("train.schedule.min_lr"),
            ),
            (
                "kind = \"step\"\nstep_epochs = 0",
                Some("train.schedule.step_epochs"),
            ),
            (
                "kind = \"step\"\nstep_epochs = 2\ngamma = 0.0",
                Some("train.schedule.gamma"),
            ),
            ("kind = \"step\"\nstep_epochs = 2\ngamma = 1.0", None),
        ];
        for (text, want) in cases {
            assert_eq!(key(sched(text, 1.0)).as_deref(), want, "{text}");
        }
    }
}
