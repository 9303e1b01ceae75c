//! Run-config parsing: the documented example parses, typos and bad values are errors that
//! name the key and the file.

use std::path::Path;

use student_trainer::config::{ConfigError, LossTerm, OptimizerKind, RunConfig, ScheduleKind};

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
distance = "smooth_l1"
beta = 0.5

[train]
epochs = 30
batch_size = 128
optimizer = "adamw"
lr = 1e-3
schedule = "cosine"
warmup_epochs = 1
seed = 0
jitter = 2
early_stopping = { patience = 5, metric = "eval_error" }
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
    assert_eq!(c.train.optimizer, OptimizerKind::Adamw);
    assert_eq!(c.train.schedule, ScheduleKind::Cosine);
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
    let e = err(&GOOD.replace(
        "optimizer = \"adamw\"",
        "optimizer = \"adamw\"\nmomentum = 0.9",
    ));
    assert!(e.contains("train.momentum"), "{e}");
    let e = err(&GOOD.replace("distance = \"smooth_l1\"", "distance = \"mse\""));
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
