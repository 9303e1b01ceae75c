//! Shared helpers of the label-store tests: a small teacher fingerprint and row generators.
#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use distill_proto::api::{Dim, OutputSource, OutputSpec, Pooling, TensorSpec};
use distill_proto::store::{FeatureDType, LabelRows, StoreOptions, TeacherFingerprint, TopK};
use distill_proto::{DType, Tensor, TensorData};

/// Input width, classes, embedding width of the test teacher.
pub const IN: usize = 4;
pub const CLASSES: usize = 6;
pub const EMB: usize = 3;

/// A teacher with input `x` [batch, 4] f32, outputs `logits` [batch, 6] and `embedding` [batch, 3].
pub fn teacher() -> TeacherFingerprint {
    TeacherFingerprint {
        model_sha256: "ab".repeat(32),
        inputs: vec![TensorSpec {
            name: "x".into(),
            dtype: DType::F32,
            shape: vec![Dim::Dynamic("batch".into()), Dim::Fixed(IN)],
        }],
        outputs: vec![
            OutputSpec {
                name: "logits".into(),
                tensor: "logits".into(),
                source: OutputSource::Output,
                dtype: DType::F32,
                shape: vec![Dim::Dynamic("batch".into()), Dim::Fixed(CLASSES)],
                pooling: Pooling::None,
                normalize: false,
            },
            OutputSpec {
                name: "embedding".into(),
                tensor: "/fc1/Relu_output_0".into(),
                source: OutputSource::Tap,
                dtype: DType::F32,
                shape: vec![Dim::Dynamic("batch".into()), Dim::Fixed(EMB)],
                pooling: Pooling::None,
                normalize: false,
            },
        ],
        ort_version: "1.31.1".into(),
        provider: "cpu".into(),
        feature_dtype: FeatureDType::F32,
        logits_topk: None,
        store_inputs: true,
        tokenizer: None,
    }
}

/// The test teacher with top-k storage of `logits`.
pub fn teacher_topk(k: usize) -> TeacherFingerprint {
    let mut t = teacher();
    t.logits_topk = Some(TopK {
        output: "logits".into(),
        k,
    });
    t
}

/// Small options so tests roll shards and row groups.
pub fn options(shard_max_rows: usize) -> StoreOptions {
    StoreOptions {
        shard_max_rows,
        shard_max_bytes: 1 << 30,
        row_group_rows: 4,
        ..StoreOptions::default()
    }
}

/// Deterministic input value of row `i`, element `j`.
pub fn x_val(i: usize, j: usize) -> f32 {
    ((i * 31 + j * 7) % 17) as f32 * 0.25 - 2.0
}

/// Deterministic logit of row `i`, class `c` (with ties at some rows).
pub fn logit(i: usize, c: usize) -> f32 {
    (((i * 13 + c * 5) % 11) as f32 - 5.0) * 0.75
}

/// Deterministic embedding value.
pub fn emb(i: usize, j: usize) -> f32 {
    (i as f32) * 0.5 + j as f32
}

/// Rows `range` with ids `row-{i}` and a pass-through column `label` (i64).
pub fn rows(range: std::ops::Range<usize>) -> LabelRows {
    let n = range.len();
    let ids: Vec<String> = range.clone().map(|i| format!("row-{i}")).collect();
    let x: Vec<f32> = range
        .clone()
        .flat_map(|i| (0..IN).map(move |j| x_val(i, j)))
        .collect();
    let l: Vec<f32> = range
        .clone()
        .flat_map(|i| (0..CLASSES).map(move |c| logit(i, c)))
        .collect();
    let e: Vec<f32> = range
        .clone()
        .flat_map(|i| (0..EMB).map(move |j| emb(i, j)))
        .collect();
    let label: ArrayRef = Arc::new(Int64Array::from(
        range.clone().map(|i| (i % 10) as i64).collect::<Vec<_>>(),
    ));
    LabelRows {
        ids,
        inputs: vec![(
            "x".into(),
            Tensor::new(vec![n, IN], TensorData::F32(x)).unwrap(),
        )]
        .into(),
        outputs: vec![
            (
                "logits".into(),
                Tensor::new(vec![n, CLASSES], TensorData::F32(l)).unwrap(),
            ),
            (
                "embedding".into(),
                Tensor::new(vec![n, EMB], TensorData::F32(e)).unwrap(),
            ),
        ]
        .into(),
        columns: vec![("label".into(), label)],
        tokens: None,
    }
}

/// Every id of a dataset folder as read back through the reader, in order.
pub fn read_ids(dir: &std::path::Path) -> Vec<String> {
    let r = distill_proto::store::DatasetReader::open(dir).unwrap();
    let mut out = Vec::new();
    for b in r.batches(&["id"], 5).unwrap() {
        let b = b.unwrap();
        let a = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        out.extend((0..a.len()).map(|i| a.value(i).to_string()));
    }
    out
}
