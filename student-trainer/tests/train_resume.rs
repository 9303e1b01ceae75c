//! One resume semantics for every kind of run: trained straight, and paused after epoch 1 then
//! `--resume`d in a new call, a classifier (dropout, jitter, cosine schedule), a text student
//! (a transformer with an exit, streamed in windows) and an online mutual run end with the
//! same weights, the same `metrics.jsonl` (but for its timing fields) and `steps.jsonl` byte
//! for byte, and the same summary.

mod data_support;

use std::path::{Path, PathBuf};

use data_support::text::{rows, run_config, write_store, COSINE_AND_NCE, TRANSFORMER};
use data_support::{finished, kd_config, resumable_kd_config, write_config, write_sets};
use student_trainer::metrics::Summary;
use student_trainer::train::{run, RunOutcome, TrainOptions};

/// `metrics.jsonl` and `summary.json` fields that measure time, not training.
const TIMING: &[&str] = &[
    "train_samples_per_s",
    "epoch_wall_s",
    "samples_per_s",
    "wall_s",
];

/// `text` with the numbers of the [`TIMING`] fields blanked, everything else as written.
fn mask_timing(text: &str) -> String {
    let mut out = text.to_string();
    for key in TIMING {
        let pat = format!("\"{key}\":");
        let mut from = 0;
        while let Some(i) = out[from..].find(&pat) {
            let start = from + i + pat.len();
            let len = out[start..]
                .find(|c: char| !(c.is_ascii_digit() || "-+.eE ".contains(c)))
                .unwrap_or(out.len() - start);
            out.replace_range(start..start + len, "T");
            from = start;
        }
    }
    out
}

#[test]
fn the_timing_mask_blanks_only_timing_fields() {
    let line = r#"{"train_loss":1.25,"epoch_wall_s":0.5,"train_samples_per_s":1e3}"#;
    assert_eq!(
        mask_timing(line),
        r#"{"train_loss":1.25,"epoch_wall_s":T,"train_samples_per_s":T}"#
    );
    assert_eq!(mask_timing("\"wall_s\": 2.5,\n"), "\"wall_s\":T,\n");
}

fn opts(config: Option<PathBuf>, out: &Path) -> TrainOptions {
    TrainOptions {
        config,
        out: Some(out.to_path_buf()),
        quiet: true,
        export_onnx: false,
        ..Default::default()
    }
}

/// Trains `body` straight into `dir/straight`, and paused after epoch 1 then resumed (without
/// `--config`, as after a restart) into `dir/split`; returns both folders and summaries.
fn straight_and_split(dir: &Path, body: &str) -> [(PathBuf, Summary); 2] {
    let cfg = write_config(dir, "run.toml", body);
    let (a, b) = (dir.join("straight"), dir.join("split"));
    let sa = finished(run(&opts(Some(cfg.clone()), &a)).expect("straight run"));
    let mut o = opts(Some(cfg), &b);
    o.stop_after = Some(1);
    assert_eq!(
        run(&o).expect("first epoch"),
        RunOutcome::Paused { epochs: 1 }
    );
    let mut o = opts(None, &b);
    o.resume = true;
    let sb = finished(run(&o).expect("resumed run"));
    [(a, sa), (b, sb)]
}

/// The split run is the straight one: weights, both metrics files, losses and summary.
fn assert_same_run(dir: &Path, body: &str, weights: &[&str], lines: usize) {
    let [(a, sa), (b, sb)] = straight_and_split(dir, body);
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    for f in weights {
        assert!(read(&a, f) == read(&b, f), "{f} differs after resume");
    }
    let text = |d: &Path, f: &str| String::from_utf8(read(d, f)).expect("utf-8");
    let steps = text(&a, "steps.jsonl");
    assert!(!steps.is_empty());
    assert_eq!(steps, text(&b, "steps.jsonl"), "steps.jsonl differs");
    let metrics = mask_timing(&text(&a, "metrics.jsonl"));
    assert_eq!(metrics.lines().count(), lines, "{metrics}");
    assert_eq!(
        metrics,
        mask_timing(&text(&b, "metrics.jsonl")),
        "metrics.jsonl differs"
    );
    let losses = |d: &Path| -> Vec<f64> {
        student_trainer::metrics::read_epochs(&d.join("metrics.jsonl"))
            .expect("metrics")
            .iter()
            .map(|m| m.train_loss)
            .collect()
    };
    assert_eq!(losses(&a), losses(&b));
    let (ja, jb) = (
        serde_json::to_string_pretty(&sa).expect("json"),
        serde_json::to_string_pretty(&sb).expect("json"),
    );
    assert_eq!(mask_timing(&ja), mask_timing(&jb), "summaries differ");
}

#[test]
fn image_run_resumes_into_the_straight_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 300, 100);
    let body = resumable_kd_config(&train, &eval, 3);
    assert_same_run(dir.path(), &body, &["student.safetensors"], 3);
}

#[test]
fn text_run_resumes_into_the_straight_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = write_store(&dir.path().join("store"), &rows(300, 7), 128);
    // 100-row windows: the data streams, so the summary's window peak must survive the pause.
    let body = run_config(
        &store,
        TRANSFORMER,
        COSINE_AND_NCE,
        3,
        "shuffle_window = 100",
    ) + "\n[self_distill]\nexits = [0]\nhint_weight = 0.1\n";
    let weights = ["student.safetensors", "exits.safetensors"];
    // A student and an exit line per epoch.
    assert_same_run(dir.path(), &body, &weights, 6);
}

#[test]
fn online_mutual_run_resumes_into_the_straight_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 300, 80);
    let body = kd_config(&train, &eval, 3, "")
        .replace("hidden = [32]", "hidden = [32]\ndropout = 0.1")
        + r#"
[online]
mode = "mutual"
temperature = 2.0
[online.peers.peer]
arch = "mlp"
hidden = [24]
dropout = 0.1
"#;
    let weights = ["student.safetensors", "peer.safetensors"];
    // Both networks' lines per epoch.
    assert_same_run(dir.path(), &body, &weights, 6);
}
