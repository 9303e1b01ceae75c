//! Trainer step speed of the 3-layer, 384-wide transformer student (MiniLM-L3 sizes, 30522-row
//! vocabulary) at batch 64 on 12-token rows: `cargo test -p student-trainer --test text_step_speed
//! -- --ignored --nocapture`. Prints samples/s over the timed steps (forward,
//! loss, backward, AdamW; data waits excluded, as `metrics.jsonl` reports it) and the process
//! CPU seconds per step, which stays comparable when other work shares the machine.

mod data_support;

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, ListBuilder, StringArray};
use data_support::{fsl, write_config, write_parquet, Rng};
use student_trainer::train::{self, RunOutcome, TrainOptions};

/// utime + stime of this process, in seconds (Linux `/proc/self/stat`, 100 ticks/s).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

#[test]
#[ignore = "a measurement, not a check: run it by name with --ignored"]
fn transformer_l3_step_speed() {
    let (rows, len, dim, batch) = (64 * 12, 12usize, 384usize, 64usize);
    let tmp = tempfile::tempdir().unwrap();
    let mut r = Rng::new(3);
    let mut tokens = ListBuilder::new(Int32Builder::new());
    for _ in 0..rows {
        let row: Vec<i32> = (0..len)
            .map(|_| 1000 + (r.next_f32() * 20000.0) as i32)
            .collect();
        tokens.values().append_slice(&row);
        tokens.append(true);
    }
    let emb: Vec<f32> = (0..rows * dim).map(|_| r.next_f32() - 0.5).collect();
    let ids: Vec<String> = (0..rows).map(|i| format!("r{i}")).collect();
    let store = tmp.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    write_parquet(
        &store.join("shard-000000.parquet"),
        vec![
            ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
            ("input_ids", Arc::new(tokens.finish()) as ArrayRef),
            ("embedding", fsl(emb, dim)),
        ],
    );
    let body = format!(
        r#"
[data]
train = "{}"
input = "input_ids"

[student]
arch = "transformer"
layers = 3
hidden = 384
heads = 12
ffn = 1536

[[loss]]
kind = "feature"
teacher = "embedding"
distance = "cosine"

[[loss]]
kind = "infonce"
teacher = "embedding"
temperature = 0.05
weight = 0.1

[train]
epochs = 1
batch_size = {batch}
lr = 0.0001
"#,
        store.display()
    );
    let cfg = write_config(tmp.path(), "speed.toml", &body);
    let cpu0 = cpu_seconds();
    let o = TrainOptions {
        config: Some(cfg),
        out: Some(tmp.path().join("run")),
        quiet: true,
        ..Default::default()
    };
    let RunOutcome::Finished(s) = train::run(&o).expect("trains") else {
        panic!("the run did not finish");
    };
    let steps = rows / batch;
    let cpu = cpu0.zip(cpu_seconds()).map(|(a, b)| (b - a) / steps as f64);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "3-layer 384-wide transformer, batch {batch} x {len} tokens: {:.1} samples/s ({} steps); {} CPU s/step (incl. setup); load average {}",
        s.samples_per_s,
        steps,
        cpu.map_or("?".into(), |c| format!("{c:.3}")),
        load.trim()
    );
    assert!(s.samples_per_s.is_finite() && s.samples_per_s > 0.0);
}
