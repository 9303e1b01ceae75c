//! End-to-end training runs on a small synthetic set: it learns, it is deterministic, and a
//! paused + resumed run ends bit-identical to an uninterrupted one.

mod data_support;

use std::path::Path;

use data_support::{
    finished, kd_config, numbers, pixel_data, resumable_kd_config, write_config, write_sets,
};
use student_trainer::train::{run, RunOutcome, TrainOptions};

fn opts(config: &Path, out: &Path) -> TrainOptions {
    TrainOptions {
        config: Some(config.to_path_buf()),
        out: Some(out.to_path_buf()),
        resume: false,
        quiet: true,
        stop_after: None,
        export_onnx: true,
        plot: true,
    }
}

#[test]
fn kd_run_learns_and_writes_the_run_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 1000, 300);
    let cfg = write_config(
        dir.path(),
        "kd.toml",
        &kd_config(
            &train,
            &eval,
            4,
            "schedule = \"cosine\"\nwarmup_epochs = 0.5",
        ),
    );
    let out = dir.path().join("run");
    let s = finished(run(&opts(&cfg, &out)).expect("training runs"));
    assert_eq!(s.epochs, 4);
    let acc = s.accuracy.expect("eval accuracy");
    assert!(acc > 0.9, "accuracy {acc} after 4 epochs on an easy task");
    let agreement = s.agreement.expect("agreement with the teacher");
    assert!(agreement > 0.8, "agreement {agreement}");
    assert_eq!(s.param_count, 64 * 32 + 32 + 32 * 10 + 10);
    assert!(s.samples_per_s > 0.0);
    for f in [
        "config.toml",
        "student.safetensors",
        "student.onnx",
        "metrics.jsonl",
        "summary.json",
        "curves.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let m = numbers(&out);
    assert_eq!(m.len(), 4);
    assert!(
        m[3].train_loss < m[0].train_loss,
        "loss falls: {} -> {}",
        m[0].train_loss,
        m[3].train_loss
    );
    assert!(m[0].train_terms.contains_key("kd:logits") && m[0].train_terms.contains_key("ce"));
    // The written config is the resolved one and parses again.
    student_trainer::config::RunConfig::load(&out.join("config.toml"))
        .expect("resolved config parses");
    // A second fresh run into the same folder is refused.
    let e = run(&opts(&cfg, &out)).expect_err("run folder in use");
    assert!(e.to_string().contains("--resume"), "{e}");
}

#[test]
fn same_seed_gives_identical_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 400, 100);
    let cfg = write_config(
        dir.path(),
        "det.toml",
        &kd_config(&train, &eval, 2, "jitter = 1"),
    );
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let mut o = opts(&cfg, &a);
    o.export_onnx = false;
    finished(run(&o).expect("run a"));
    o.out = Some(b.clone());
    finished(run(&o).expect("run b"));
    assert_eq!(numbers(&a), numbers(&b));
    let wa = std::fs::read(a.join("student.safetensors")).expect("a weights");
    let wb = std::fs::read(b.join("student.safetensors")).expect("b weights");
    assert_eq!(wa, wb, "weights differ between identical runs");
}

#[test]
fn resumed_run_is_bit_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 300, 100);
    // Dropout and jitter on, so resume must also restore their random streams.
    let body = resumable_kd_config(&train, &eval, 2);
    let cfg = write_config(dir.path(), "res.toml", &body);
    let (full, split) = (dir.path().join("full"), dir.path().join("split"));
    let mut o = opts(&cfg, &full);
    o.export_onnx = false;
    finished(run(&o).expect("uninterrupted run"));

    o.out = Some(split.clone());
    o.stop_after = Some(1);
    assert_eq!(
        run(&o).expect("first half"),
        RunOutcome::Paused { epochs: 1 }
    );
    o.stop_after = None;
    o.resume = true;
    finished(run(&o).expect("resumed half"));

    assert_eq!(numbers(&full), numbers(&split));
    let a = std::fs::read(full.join("student.safetensors")).expect("full weights");
    let b = std::fs::read(split.join("student.safetensors")).expect("split weights");
    assert_eq!(a, b, "resumed weights differ from the uninterrupted run");
}

#[test]
fn hard_label_only_sgd_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 600, 200);
    let body = format!(
        r#"
{data}[student]
arch = "mlp"
hidden = [32, 16]
[[loss]]
kind = "ce"
[train]
epochs = 3
batch_size = 32
lr = 0.05
early_stopping = {{ patience = 2, metric = "eval_loss" }}

[train.optimizer]
kind = "sgd"
momentum = 0.9
nesterov = true

[train.schedule]
kind = "step"
step_epochs = 2
gamma = 0.5
"#,
        data = pixel_data(&train, &eval)
    );
    let cfg = write_config(dir.path(), "ce.toml", &body);
    let out = dir.path().join("ce");
    let mut o = opts(&cfg, &out);
    o.export_onnx = false;
    let s = finished(run(&o).expect("ce run"));
    assert!(s.accuracy.expect("accuracy") > 0.9, "{s:?}");
    // No teacher column configured and none named in the eval set: no agreement reported.
    assert!(s.agreement.is_none());
}

#[test]
fn feature_and_relation_terms_train() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 200, 50);
    let body = kd_config(&train, &eval, 1, "").replace(
        "[train]",
        r#"[[loss]]
kind = "feature"
teacher = "embedding"
student_layer = 0
distance = "cosine"
weight = 0.5

[[loss]]
kind = "rkd"
teacher = "embedding"
weight = 0.1

[[loss]]
kind = "sp"
teacher = "embedding"

[[loss]]
kind = "infonce"
teacher = "embedding"
temperature = 0.2
weight = 0.1

[[loss]]
kind = "soft_bce"
teacher = "logits"
weight = 0.1

[train]"#,
    );
    let cfg = write_config(dir.path(), "feat.toml", &body);
    let out = dir.path().join("feat");
    let mut o = opts(&cfg, &out);
    o.export_onnx = false;
    finished(run(&o).expect("feature run"));
    let m = &numbers(&out)[0];
    for k in [
        "feature:embedding",
        "rkd:embedding",
        "sp:embedding",
        "infonce:embedding",
        "soft_bce:logits",
    ] {
        let v = m
            .train_terms
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing: {:?}", m.train_terms));
        assert!(v.is_finite(), "{k} = {v}");
    }
    // The projector (32 -> 12) trained with the student but is not part of the export.
    let w =
        candle_core::safetensors::load(out.join("student.safetensors"), &candle_core::Device::Cpu)
            .expect("weights");
    assert!(w.keys().all(|k| !k.starts_with("__proj")), "{:?}", w.keys());
    let ck = std::fs::read_dir(out.join("checkpoint"))
        .expect("checkpoint dir")
        .count();
    assert!(ck >= 2);
}

#[test]
fn early_stopping_exports_the_best_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 300, 200);
    // A high constant learning rate makes the eval error wander, so patience matters.
    let body = kd_config(
        &train,
        &eval,
        6,
        "early_stopping = { patience = 2, metric = \"eval_error\" }",
    )
    .replace("lr = 0.01", "lr = 0.05");
    let cfg = write_config(dir.path(), "es.toml", &body);
    let out = dir.path().join("es");
    let mut o = opts(&cfg, &out);
    o.export_onnx = false;
    let s = finished(run(&o).expect("run"));
    let m = numbers(&out);
    let errors: Vec<usize> = m
        .iter()
        .map(|e| e.eval.as_ref().expect("eval").errors)
        .collect();
    let best = *errors.iter().min().expect("epochs");
    let best_epoch = errors.iter().position(|&e| e == best).expect("best") + 1;
    assert_eq!(s.exported_epoch, best_epoch, "errors per epoch {errors:?}");
    assert_eq!(
        s.test_errors,
        Some(best),
        "exported weights are the best epoch's"
    );
    if s.stopped_early {
        assert_eq!(
            m.len(),
            best_epoch + 2,
            "stops after `patience` epochs without improvement"
        );
    } else {
        assert_eq!(m.len(), 6);
    }
}

/// What the trainer before `[train.optimizer]` / `[train.schedule]` saved as a run folder's
/// `config.toml` (every `[train]` field spelled out, flat).
const OLD_RUN_CONFIG: &str = r#"[data]
train = "TRAIN"
eval = "EVAL"
input = "pixels"
label = "label"

[student]
arch = "mlp"
hidden = [32]
dropout = 0.0
input_dropout = 0.0

[[loss]]
kind = "ce"
weight = 1.0

[train]
epochs = 2
batch_size = 32
eval_batch_size = 1024
optimizer = "adamw"
lr = 0.01
weight_decay = 0.0
schedule = "cosine"
warmup_epochs = 0.0
min_lr = 0.0
seed = 3
jitter = 0
"#;

#[test]
fn old_run_folder_resume_says_how_to_convert_then_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 200, 50);
    let out = dir.path().join("old");
    std::fs::create_dir_all(&out).expect("run folder");
    let old = OLD_RUN_CONFIG
        .replace("TRAIN", &train.display().to_string())
        .replace("EVAL", &eval.display().to_string());
    std::fs::write(out.join("config.toml"), &old).expect("old config");
    let resume = TrainOptions {
        config: None,
        out: Some(out.clone()),
        resume: true,
        quiet: true,
        stop_after: None,
        export_onnx: false,
        plot: false,
    };
    let e = run(&resume).expect_err("old layout").to_string();
    for want in [
        "cannot resume",
        "config.toml",
        "train.weight_decay, train.min_lr",
        "[train.optimizer]\nkind = \"adamw\"\nweight_decay = 0.0",
        "[train.schedule]\nkind = \"cosine\"\nmin_lr = 0.0",
    ] {
        assert!(e.contains(want), "{want:?} missing from: {e}");
    }
    // Following the message converts the file, and the run resumes.
    let converted = old
        .replace("optimizer = \"adamw\"\n", "")
        .replace("weight_decay = 0.0\n", "")
        .replace("schedule = \"cosine\"\n", "")
        .replace("min_lr = 0.0\n", "")
        + "\n[train.optimizer]\nkind = \"adamw\"\nweight_decay = 0.0\n\n[train.schedule]\nkind = \"cosine\"\nmin_lr = 0.0\n";
    std::fs::write(out.join("config.toml"), converted).expect("converted config");
    let s = finished(run(&resume).expect("resumes after conversion"));
    assert_eq!(s.epochs, 2);
}
