//! Shared helpers of the trainer's integration tests: a small synthetic classification set
//! (noisy class prototypes on an 8×8 grid) written as Parquet the way the label store does.
#![allow(dead_code)]

pub mod text;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Int32Array, Int64Array, StringArray,
};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

/// A synthetic labelled set with teacher outputs.
pub struct Synth {
    /// Row ids.
    pub ids: Vec<String>,
    /// `rows × dim` inputs in [0, 1].
    pub x: Vec<f32>,
    /// Class labels.
    pub labels: Vec<i64>,
    /// `rows × classes` teacher logits (a noisy but informative teacher).
    pub logits: Vec<f32>,
    /// `rows × 12` teacher embedding.
    pub emb: Vec<f32>,
    pub dim: usize,
    pub classes: usize,
}

/// Deterministic xorshift generator (tests must not depend on rand's API).
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

pub const DIM: usize = 64;
pub const CLASSES: usize = 10;
pub const EMB: usize = 12;

/// `rows` rows of the synthetic task; `seed` picks the noise, the prototypes are fixed.
pub fn synth(rows: usize, seed: u64) -> Synth {
    let mut proto_rng = Rng::new(7);
    let protos: Vec<f32> = (0..CLASSES * DIM)
        .map(|_| if proto_rng.next_f32() < 0.3 { 1.0 } else { 0.0 })
        .collect();
    let mut rng = Rng::new(seed);
    let mut s = Synth {
        ids: Vec::new(),
        x: Vec::new(),
        labels: Vec::new(),
        logits: Vec::new(),
        emb: Vec::new(),
        dim: DIM,
        classes: CLASSES,
    };
    for r in 0..rows {
        let c = (r * 7 + (seed as usize)) % CLASSES;
        s.ids.push(format!("s{seed}-{r}"));
        s.labels.push(c as i64);
        let row: Vec<f32> = (0..DIM)
            .map(|j| {
                let v = protos[c * DIM + j] * 0.7 + rng.next_f32() * 0.5;
                v.clamp(0.0, 1.0)
            })
            .collect();
        for k in 0..CLASSES {
            let dot: f32 = (0..DIM).map(|j| row[j] * protos[k * DIM + j]).sum();
            s.logits.push(dot * 0.5 + rng.next_f32() * 0.2);
        }
        for e in 0..EMB {
            s.emb.push(
                (0..DIM)
                    .filter(|j| j % EMB == e)
                    .map(|j| row[j])
                    .sum::<f32>(),
            );
        }
        s.x.extend(row);
    }
    s
}

/// A FixedSizeList<Float32, width> column.
pub fn fsl(values: Vec<f32>, width: usize) -> ArrayRef {
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    Arc::new(
        FixedSizeListArray::try_new(
            item,
            width as i32,
            Arc::new(Float32Array::from(values)),
            None,
        )
        .expect("fixed size list"),
    )
}

/// A FixedSizeList<Int32, width> column.
pub fn fsl_i32(values: Vec<i32>, width: usize) -> ArrayRef {
    let item = Arc::new(Field::new("item", DataType::Int32, true));
    Arc::new(
        FixedSizeListArray::try_new(item, width as i32, Arc::new(Int32Array::from(values)), None)
            .expect("fixed size list"),
    )
}

/// Writes columns as one Parquet file.
pub fn write_parquet(path: &Path, cols: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(cols).expect("batch");
    let file = std::fs::File::create(path).expect("create parquet");
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

/// Standard columns of a synthetic set: id, pixels, label, logits, embedding.
pub fn columns(s: &Synth) -> Vec<(&'static str, ArrayRef)> {
    vec![
        ("id", Arc::new(StringArray::from(s.ids.clone())) as ArrayRef),
        ("pixels", fsl(s.x.clone(), s.dim)),
        (
            "label",
            Arc::new(Int64Array::from(s.labels.clone())) as ArrayRef,
        ),
        ("logits", fsl(s.logits.clone(), s.classes)),
        ("embedding", fsl(s.emb.clone(), EMB)),
    ]
}

/// Writes train (as two shards in a folder) and eval sets under `dir`; returns (train, eval).
pub fn write_sets(dir: &Path, train_rows: usize, eval_rows: usize) -> (PathBuf, PathBuf) {
    let train_dir = dir.join("train");
    std::fs::create_dir_all(&train_dir).expect("mkdir");
    let half = train_rows / 2;
    let a = synth(half, 1);
    let b = synth(train_rows - half, 2);
    write_parquet(&train_dir.join("shard-000000.parquet"), columns(&a));
    write_parquet(&train_dir.join("shard-000001.parquet"), columns(&b));
    let e = synth(eval_rows, 3);
    let eval = dir.join("eval.parquet");
    write_parquet(&eval, columns(&e));
    (train_dir, eval)
}

/// Writes a run config into `dir/name` and returns its path.
pub fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write config");
    p
}

/// The `[data]` table of a run over the synthetic sets: `train` and `eval` with the `pixels`
/// input and `label` column (the layout [`columns`] writes).
pub fn pixel_data(train: &Path, eval: &Path) -> String {
    format!(
        "[data]\ntrain = \"{}\"\neval = \"{}\"\ninput = \"pixels\"\nlabel = \"label\"\n",
        train.display(),
        eval.display()
    )
}

/// A small KD + CE config over the synthetic sets.
pub fn kd_config(train: &Path, eval: &Path, epochs: usize, extra_train: &str) -> String {
    let data = pixel_data(train, eval);
    format!(
        r#"
{data}
[student]
arch = "mlp"
hidden = [32]

[[loss]]
kind = "kd"
teacher = "logits"
temperature = 4.0
weight = 1.0

[[loss]]
kind = "ce"
weight = 0.5

[train]
epochs = {epochs}
batch_size = 32
lr = 0.01
seed = 3
{extra_train}
"#
    )
}

/// [`kd_config`] with dropout, input jitter, AdamW and a cosine schedule on: every random
/// stream and optimizer state a resumed run must restore to match the straight run.
pub fn resumable_kd_config(train: &Path, eval: &Path, epochs: usize) -> String {
    kd_config(
        train,
        eval,
        epochs,
        "jitter = 1\noptimizer = { kind = \"adamw\", weight_decay = 0.01 }\nschedule = \"cosine\"",
    )
    .replace("hidden = [32]", "hidden = [32]\ndropout = 0.2")
}

/// The summary of a run that finished (panics on a paused or stopped one).
pub fn finished(o: student_trainer::train::RunOutcome) -> student_trainer::metrics::Summary {
    match o {
        student_trainer::train::RunOutcome::Finished(s) => s,
        other => panic!("expected a finished run, got {other:?}"),
    }
}

/// `metrics.jsonl` of the run in `out` without its timing fields, which differ between runs.
pub fn numbers(out: &Path) -> Vec<student_trainer::metrics::EpochMetrics> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|l| {
            let mut m: student_trainer::metrics::EpochMetrics =
                serde_json::from_str(l).expect("metrics line");
            m.train_samples_per_s = 0.0;
            m.epoch_wall_s = 0.0;
            if let Some(e) = m.eval.as_mut() {
                e.infer_rows_per_s = None;
            }
            m
        })
        .collect()
}
