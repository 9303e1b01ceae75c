//! The text students' fixture: a store of ragged token rows with the label store's text
//! schema (`id`, `input_ids`/`token_type_ids` as List<Int32>, `embedding` and a tapped layer
//! as FixedSizeList<f32>), and run configs over it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, ListBuilder, StringArray};

use super::{fsl, write_parquet, Rng};

/// The students' vocabulary.
pub const VOCAB: usize = 48;
/// Width of the stored teacher embedding.
pub const EMB: usize = 8;
/// Width of the stored tapped layer (`layer3`).
pub const TAP: usize = 6;

/// One stored row.
#[derive(Clone)]
pub struct Row {
    /// Row id.
    pub id: String,
    /// Token ids.
    pub tokens: Vec<i32>,
    /// Teacher embedding.
    pub emb: Vec<f32>,
    /// Tapped layer.
    pub tap: Vec<f32>,
}

/// A `VOCAB × width` table of uniform values in [-1, 1).
pub fn table(seed: u64, width: usize) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..VOCAB * width)
        .map(|_| r.next_f32() * 2.0 - 1.0)
        .collect()
}

/// `n` rows of 2..=13 tokens; the teacher embedding is tanh of twice the mean of a fixed token
/// table (learnable by both students), the tapped layer the mean of another.
pub fn rows(n: usize, seed: u64) -> Vec<Row> {
    let (te, tt) = (table(91, EMB), table(92, TAP));
    let mut r = Rng::new(seed);
    (0..n)
        .map(|i| {
            let len = 2 + (r.next_f32() * 12.0) as usize;
            let tokens: Vec<i32> = (0..len)
                .map(|_| 1 + (r.next_f32() * (VOCAB - 1) as f32) as i32)
                .collect();
            let mean = |t: &[f32], w: usize| -> Vec<f32> {
                (0..w)
                    .map(|j| {
                        tokens.iter().map(|&k| t[k as usize * w + j]).sum::<f32>() / len as f32
                    })
                    .collect()
            };
            Row {
                id: format!("s{seed}-{i}"),
                emb: mean(&te, EMB).iter().map(|x| (2.0 * x).tanh()).collect(),
                tap: mean(&tt, TAP),
                tokens,
            }
        })
        .collect()
}

/// A List<Int32> column of `f` of each row.
pub fn token_list(rows: &[Row], f: impl Fn(&Row) -> Vec<i32>) -> ArrayRef {
    let mut b = ListBuilder::new(Int32Builder::new());
    for r in rows {
        b.values().append_slice(&f(r));
        b.append(true);
    }
    Arc::new(b.finish())
}

/// The text store's columns for `rows`.
pub fn columns(rows: &[Row]) -> Vec<(&'static str, ArrayRef)> {
    vec![
        (
            "id",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        ("input_ids", token_list(rows, |r| r.tokens.clone())),
        (
            "token_type_ids",
            token_list(rows, |r| vec![0; r.tokens.len()]),
        ),
        (
            "embedding",
            fsl(rows.iter().flat_map(|r| r.emb.clone()).collect(), EMB),
        ),
        (
            "layer3",
            fsl(rows.iter().flat_map(|r| r.tap.clone()).collect(), TAP),
        ),
    ]
}

/// Writes `rows` as the shards of a dataset folder, `per_shard` rows each.
pub fn write_store(dir: &Path, rows: &[Row], per_shard: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (i, chunk) in rows.chunks(per_shard).enumerate() {
        write_parquet(&dir.join(format!("shard-{i:06}.parquet")), columns(chunk));
    }
    dir.to_path_buf()
}

/// A text run config over `train` (a dataset folder) with `student` and `losses` tables.
pub fn run_config(
    train: &Path,
    student: &str,
    losses: &str,
    epochs: usize,
    extra_data: &str,
) -> String {
    format!(
        r#"
[data]
train = "{}"
input = "input_ids"
eval_fraction = 0.15
{extra_data}

{student}

{losses}

[train]
epochs = {epochs}
batch_size = 32
eval_batch_size = 64
lr = 0.01
seed = 7
"#,
        train.display()
    )
}

/// A static-embedding student.
pub const STATIC: &str = r#"
[student]
arch = "static"
vocab = 48
dim = 8
"#;

/// A 2-layer transformer student projected to the embedding width.
pub const TRANSFORMER: &str = r#"
[student]
arch = "transformer"
layers = 2
hidden = 16
heads = 2
ffn = 32
vocab = 48
max_positions = 16
project_to = 8
"#;

/// Cosine and InfoNCE terms on the pooled embedding.
pub const COSINE_AND_NCE: &str = r#"
[[loss]]
kind = "feature"
teacher = "embedding"
distance = "cosine"

[[loss]]
kind = "infonce"
teacher = "embedding"
temperature = 0.1
weight = 0.2
"#;
