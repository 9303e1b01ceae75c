//! The real binary killed with SIGKILL mid-run, then `--resume`d, ends with the same weights
//! as an uninterrupted run (wherever the kill landed).

mod data_support;

use std::process::Command;
use std::time::{Duration, Instant};

use data_support::{kd_config, write_config, write_sets};

const BIN: &str = env!("CARGO_BIN_EXE_student-trainer");

fn train(args: &[&str]) {
    let st = Command::new(BIN)
        .args(args)
        .status()
        .expect("spawn student-trainer");
    assert!(st.success(), "student-trainer {args:?} failed");
}

#[test]
fn sigkill_then_resume_matches_uninterrupted_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train_set, eval) = write_sets(dir.path(), 4000, 200);
    let body = kd_config(&train_set, &eval, 4, "jitter = 1")
        .replace("hidden = [32]", "hidden = [256, 128]");
    let cfg = write_config(dir.path(), "kill.toml", &body);
    let cfg_s = cfg.display().to_string();
    let full = dir.path().join("full").display().to_string();
    let killed = dir.path().join("killed");
    let killed_s = killed.display().to_string();

    train(&[
        "train",
        "--config",
        &cfg_s,
        "--out",
        &full,
        "--quiet",
        "--no-onnx",
    ]);

    let mut child = Command::new(BIN)
        .args([
            "train",
            "--config",
            &cfg_s,
            "--out",
            &killed_s,
            "--quiet",
            "--no-onnx",
        ])
        .spawn()
        .expect("spawn");
    // Kill once the first checkpoint exists (or after a deadline), mid-epoch if we can.
    let t0 = Instant::now();
    while !killed.join("checkpoint/state.json").exists() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(30));
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    train(&[
        "train",
        "--out",
        &killed_s,
        "--resume",
        "--quiet",
        "--no-onnx",
    ]);
    let a = std::fs::read(dir.path().join("full/student.safetensors")).expect("full");
    let b = std::fs::read(killed.join("student.safetensors")).expect("resumed");
    assert_eq!(
        a, b,
        "killed + resumed run differs from the uninterrupted one"
    );
    let lines = std::fs::read_to_string(killed.join("metrics.jsonl")).expect("metrics");
    assert_eq!(
        lines.lines().count(),
        4,
        "one metrics line per epoch, none duplicated"
    );
}
