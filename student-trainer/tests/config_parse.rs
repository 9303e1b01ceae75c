//! Run-config parsing: the documented example parses, typos and bad values are errors that
//! name the key and the file.

use std::path::Path;

use student_trainer::config::{
    ConfigError, DistanceConfig, LossTerm, OptimizerConfig, RunConfig, ScheduleConfig,
};

const GOOD: &str = r#"
[data]
train = "data/labels/mnist-train"
eval  = "data/mnist-test.parquet"
input = "pixels"
label = "label"

[student]
arch = "mlp"
hidden = [800, 800]
dropout = 0.0

[[loss]]
kind = "kd"
teacher = "logits"
temperature = 20.0
weight = 1.0

[[loss]]
kind = "ce"
weight = 0.1

[[loss]]
kind = "feature"
teacher = "embedding"
student_layer = 0
distance = { kind = "smooth_l1", beta = 0.5 }

[train]
epochs = 30
batch_size = 128
lr = 1e-3
warmup_epochs = 1
seed = 0
jitter = 2
early_stopping = { patience = 5, metric = "eval_error" }

[train.optimizer]
kind = "adamw"

[train.schedule]
kind = "cosine"
"#;

fn parse(text: &str) -> Result<RunConfig, ConfigError> {
    RunConfig::parse(text, Path::new("runs/example.toml"))
}

fn err(text: &str) -> String {
    parse(text)
        .expect_err("config must be rejected")
        .to_string()
}

#[test]
fn example_config_parses() {
    let c = parse(GOOD).expect("example parses");
    assert_eq!(c.losses.len(), 3);
    assert!(matches!(c.losses[0], LossTerm::Kd { temperature, .. } if temperature == 20.0));
    assert!(matches!(c.train.optimizer, OptimizerConfig::Adamw { .. }));
    assert!(matches!(c.train.schedule, ScheduleConfig::Cosine { .. }));
    assert_eq!(c.train.jitter, 2);
    // The resolved config round-trips through TOML.
    let again = parse(&c.to_toml().expect("serialises")).expect("re-parses");
    assert_eq!(again, c);
}

#[test]
fn typo_in_train_names_key_and_file() {
    let e = err(&GOOD.replace("batch_size = 128", "batch_sise = 128"));
    assert!(e.contains("batch_sise"), "{e}");
    assert!(e.contains("runs/example.toml"), "{e}");
}

#[test]
fn typo_in_loss_term_names_key() {
    let e = err(&GOOD.replace("temperature = 20.0", "temprature = 20.0"));
    assert!(e.contains("temprature"), "{e}");
    assert!(e.contains("runs/example.toml"), "{e}");
}

#[test]
fn unknown_loss_kind_is_named() {
    let e = err(&GOOD.replace("kind = \"ce\"", "kind = \"cross_entropy\""));
    assert!(e.contains("cross_entropy"), "{e}");
}

#[test]
fn typo_in_data_and_student_tables() {
    let e = err(&GOOD.replace("input = \"pixels\"", "inputs = \"pixels\""));
    assert!(e.contains("inputs"), "{e}");
    let e = err(&GOOD.replace("hidden = [800, 800]", "hiden = [800, 800]"));
    assert!(e.contains("hiden"), "{e}");
}

#[test]
fn out_of_range_values_name_the_key() {
    let e = err(&GOOD.replace("lr = 1e-3", "lr = -1.0"));
    assert!(
        e.contains("train.lr") && e.contains("runs/example.toml"),
        "{e}"
    );
    let e = err(&GOOD.replace("temperature = 20.0", "temperature = 0.0"));
    assert!(e.contains("loss[0].temperature"), "{e}");
    // The flat keys of the old layout are refused, named.
    let e = err(&GOOD.replace("lr = 1e-3", "lr = 1e-3\nmomentum = 0.9"));
    assert!(e.contains("train.momentum"), "{e}");
    let e = err(&GOOD.replace(
        "distance = { kind = \"smooth_l1\", beta = 0.5 }",
        "distance = \"mse\"\nbeta = 0.5",
    ));
    assert!(e.contains("loss[2].beta"), "{e}");
}

#[test]
fn ce_without_label_column_is_rejected() {
    let e = err(&GOOD.replace("label = \"label\"\n", ""));
    assert!(
        e.contains("loss[1].kind") && e.contains("data.label"),
        "{e}"
    );
}

#[test]
fn missing_file_is_named() {
    let e = RunConfig::load(Path::new("/nonexistent/run.toml")).expect_err("missing");
    assert!(e.to_string().contains("/nonexistent/run.toml"), "{e}");
}

#[test]
fn parameters_of_another_kind_are_refused_at_parse_time() {
    // (replace, with, the key the error must name)
    let cases = [
        (
            "kind = \"adamw\"",
            "kind = \"adamw\"\nmomentum = 0.9",
            "train.optimizer.momentum",
        ),
        (
            "kind = \"adamw\"",
            "kind = \"adamw\"\nnesterov = true",
            "train.optimizer.nesterov",
        ),
        (
            "kind = \"adamw\"",
            "kind = \"sgd\"\nbetas = [0.9, 0.99]",
            "train.optimizer.betas",
        ),
        (
            "kind = \"adamw\"",
            "kind = \"sgd\"\neps = 1e-6",
            "train.optimizer.eps",
        ),
        (
            "kind = \"cosine\"",
            "kind = \"cosine\"\ngamma = 0.5",
            "train.schedule.gamma",
        ),
        (
            "kind = \"cosine\"",
            "kind = \"constant\"\nmin_lr = 0.0",
            "train.schedule.min_lr",
        ),
        (
            "kind = \"cosine\"",
            "kind = \"step\"\nmin_lr = 0.0\nstep_epochs = 2",
            "train.schedule.min_lr",
        ),
        (
            "kind = \"cosine\"",
            "kind = \"step\"",
            "train.schedule.step_epochs",
        ),
        (
            "kind = \"cosine\"",
            "kind = \"cosin\"",
            "train.schedule.kind",
        ),
        (
            "{ kind = \"smooth_l1\", beta = 0.5 }",
            "{ kind = \"mse\", beta = 0.5 }",
            "loss[2].distance.beta",
        ),
        (
            "{ kind = \"smooth_l1\", beta = 0.5 }",
            "{ kind = \"cosine\", temperature = 2.0 }",
            "loss[2].distance.temperature",
        ),
    ];
    for (from, to, key) in cases {
        let text = GOOD.replacen(from, to, 1);
        assert_ne!(text, GOOD, "{from} not in the example");
        let e = err(&text);
        assert!(
            e.contains(&format!("key `{key}`")) && e.contains("runs/example.toml"),
            "{to}: {e}"
        );
    }
}

#[test]
fn kinds_without_parameters_may_be_bare_strings() {
    let short = GOOD
        .replace("[train.optimizer]\nkind = \"adamw\"\n", "")
        .replace("[train.schedule]\nkind = \"cosine\"\n", "")
        .replace(
            "seed = 0\n",
            "seed = 0\noptimizer = \"sgd\"\nschedule = \"cosine\"\n",
        )
        .replace("{ kind = \"smooth_l1\", beta = 0.5 }", "\"smooth_l1\"");
    let c = parse(&short).expect("short forms parse");
    assert_eq!(
        c.train.optimizer,
        OptimizerConfig::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0
        }
    );
    assert_eq!(c.train.schedule, ScheduleConfig::Cosine { min_lr: 0.0 });
    assert!(matches!(
        c.losses[2],
        LossTerm::Feature {
            distance: DistanceConfig::SmoothL1 { beta },
            ..
        } if beta == 1.0
    ));
    // Absent tables take the defaults of the old flat keys: AdamW, constant rate.
    let bare = GOOD
        .replace("[train.optimizer]\nkind = \"adamw\"\n", "")
        .replace("[train.schedule]\nkind = \"cosine\"\n", "");
    let c = parse(&bare).expect("defaults");
    assert_eq!(
        c.train.optimizer,
        OptimizerConfig::Adamw {
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0
        }
    );
    assert_eq!(c.train.schedule, ScheduleConfig::Constant {});
}

#[test]
fn old_flat_layout_says_how_to_convert() {
    let old = GOOD
        .replace("[train.optimizer]\nkind = \"adamw\"\n", "")
        .replace("[train.schedule]\nkind = \"cosine\"\n", "")
        .replace(
            "seed = 0\n",
            "seed = 0\noptimizer = \"adamw\"\nweight_decay = 0.01\nschedule = \"cosine\"\nmin_lr = 0.001\n",
        );
    let e = parse(&old).expect_err("old layout");
    assert!(matches!(e, ConfigError::OldFormat { .. }), "{e}");
    let msg = e.to_string();
    for want in [
        "runs/example.toml",
        "train.weight_decay, train.min_lr",
        "[train.optimizer]\nkind = \"adamw\"\nweight_decay = 0.01",
        "[train.schedule]\nkind = \"cosine\"\nmin_lr = 0.001",
    ] {
        assert!(msg.contains(want), "{want:?} missing from: {msg}");
    }
}

#[test]
fn views_and_served_teacher_configs_are_checked() {
    let good = GOOD.replace("jitter = 2\n", "");
    let views = good.replace(
        "label = \"label\"\n",
        "label = \"label\"\n\n[data.views]\npath = \"data/labels/views\"\ncount = 4\n",
    );
    let cfg = parse(&views).expect("a views config parses");
    assert_eq!(cfg.data.views.as_ref().and_then(|v| v.count), Some(4));
    let served = good.replace(
        "label = \"label\"\n",
        "label = \"label\"\n\n[data.served]\nserver = \"http://127.0.0.1:8080\"\naugment = \"jitter=2,shape=28x28\"\n",
    );
    let cfg = parse(&served).expect("a served config parses");
    let s = cfg.data.served.as_ref().expect("served");
    assert_eq!((s.augment.pixels, s.augment.shape), (2, Some([1, 28, 28])));
    assert_eq!((s.view_seed, s.timeout_secs), (0, 60.0));

    let cases: Vec<(String, &[&str])> = vec![
        (
            views.replace("seed = 0", "seed = 0\njitter = 2"),
            &["train.jitter", "brings its own augmentation"],
        ),
        (views.replace("count = 4", "count = 0"), &["data.views.count", "at least 1"]),
        (views.replace("count = 4", "cont = 4"), &["data.views", "cont"]),
        (
            format!("{views}\n").replace(
                "[student]",
                "[data.served]\nserver = \"http://x\"\naugment = \"jitter=1\"\n\n[student]",
            ),
            &["data.served", "not both"],
        ),
        (
            served.replace("jitter=2,shape=28x28", "crop=2"),
            &["data.served.augment", "expected jitter=P"],
        ),
        (
            served.replace("http://127.0.0.1:8080", "https://teacher"),
            &["data.served.server", "http://"],
        ),
        (
            served.replace(
                "augment = \"jitter=2,shape=28x28\"",
                "augment = \"jitter=2\"\ntimeout_secs = 0",
            ),
            &["data.served.timeout_secs", "positive"],
        ),
        (
            views
                .replace("kind = \"kd\"\nteacher = \"logits\"\ntemperature = 20.0\nweight = 1.0\n", "kind = \"ce\"\n")
                .replace(
                    "[[loss]]\nkind = \"feature\"\nteacher = \"embedding\"\nstudent_layer = 0\ndistance = { kind = \"smooth_l1\", beta = 0.5 }\n",
                    "",
                ),
            &["data.views", "no [[loss]] term reads a teacher column"],
        ),
        (
            views.replace(
                "[student]",
                "[[data.teachers]]\nname = \"t\"\npath = \"x\"\n\n[student]",
            ),
            &["data.teachers", "cannot be joined"],
        ),
    ];
    for (text, needles) in cases {
        let e = err(&text);
        for n in needles {
            assert!(e.contains(n), "error {e:?} lacks {n:?}");
        }
    }
}
