//! LabelStore: append / seal / read back, rolling, top-k, idempotency, conflicts, schema and
//! teacher mismatches, names, concurrency.

mod store_common;

use std::sync::Arc;

use arrow::array::{Array, Float32Array, Int64Array, StringArray};
use distill_proto::store::{
    column_to_tensor, DatasetReader, FeatureDType, LabelStore, StoreError, DIGEST_COLUMN,
};
use distill_proto::{DType, TensorData};
use store_common::*;

#[test]
fn append_seal_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(1000)).unwrap();
    let out = store.append("mnist", rows(0..7)).unwrap();
    assert_eq!((out.stored, out.duplicates), (7, 0));
    store.append("mnist", rows(7..12)).unwrap();
    let m = store.manifest("mnist").unwrap();
    assert_eq!((m.rows, m.pending_rows, m.shards.len()), (0, 12, 0));
    assert_eq!(store.list().unwrap()[0].rows, 12);
    let m = store.seal("mnist").unwrap();
    assert_eq!((m.rows, m.pending_rows, m.shards.len()), (12, 0, 1));
    // Sealing again is a no-op.
    assert_eq!(store.seal("mnist").unwrap(), m);
    let names: Vec<&str> = m.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["id", "x", "logits", "embedding", "label", DIGEST_COLUMN]
    );
    assert_eq!(m.columns[2].row_shape, vec![CLASSES]);
    assert_eq!(m.columns[2].dtype, Some(DType::F32));

    let ds = dir.path().join("mnist");
    assert!(ds.join("shard-000000.parquet").is_file());
    assert!(
        std::fs::read_dir(ds.join("_wal")).unwrap().next().is_none(),
        "WAL emptied at seal"
    );
    let on_disk: distill_proto::store::Manifest =
        serde_json::from_slice(&std::fs::read(ds.join("_manifest.json")).unwrap()).unwrap();
    assert_eq!(on_disk.rows, 12);

    let r = DatasetReader::open(&ds).unwrap();
    assert_eq!(r.rows(), 12);
    assert_eq!(r.manifest().unwrap().teacher, teacher());
    let mut seen = 0;
    for b in r.batches(&["logits", "id", "label", "x"], 5).unwrap() {
        let b = b.unwrap();
        assert!(b.num_rows() <= 5);
        assert_eq!(
            b.schema().field(0).name(),
            "logits",
            "columns come in the order asked"
        );
        let logits = column_to_tensor(&b, "logits", DType::F32).unwrap();
        let x = column_to_tensor(&b, "x", DType::F32).unwrap();
        let ids = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let label = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        let (TensorData::F32(l), TensorData::F32(xv)) = (logits.data(), x.data()) else {
            panic!()
        };
        for r in 0..b.num_rows() {
            let i: usize = ids.value(r).strip_prefix("row-").unwrap().parse().unwrap();
            assert_eq!(i, seen);
            assert_eq!(label.value(r), (i % 10) as i64);
            for c in 0..CLASSES {
                assert_eq!(l[r * CLASSES + c], logit(i, c));
            }
            for j in 0..IN {
                assert_eq!(xv[r * IN + j], x_val(i, j));
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 12);
    store.close().unwrap();
}

#[test]
fn rows_roll_into_shards_at_the_row_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(10)).unwrap();
    // 3 + 25 + 7 = 35 rows: the 25-row append spans three shards.
    store.append("d", rows(0..3)).unwrap();
    store.append("d", rows(3..28)).unwrap();
    store.append("d", rows(28..35)).unwrap();
    let m = store.manifest("d").unwrap();
    assert_eq!(
        m.shards.iter().map(|s| s.rows).collect::<Vec<_>>(),
        [10, 10, 10]
    );
    assert_eq!(m.pending_rows, 5);
    let m = store.seal("d").unwrap();
    assert_eq!(
        m.shards.iter().map(|s| s.rows).collect::<Vec<_>>(),
        [10, 10, 10, 5]
    );
    assert_eq!(m.rows, 35);
    // Row groups are bounded (row_group_rows = 4).
    let f = std::fs::File::open(dir.path().join("d").join(&m.shards[0].file)).unwrap();
    let md = parquet::file::reader::SerializedFileReader::new(f).unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(md.metadata().num_row_groups(), 3);
    let ids = read_ids(&dir.path().join("d"));
    assert_eq!(ids, (0..35).map(|i| format!("row-{i}")).collect::<Vec<_>>());
    // Later appends open a new shard.
    store.append("d", rows(35..36)).unwrap();
    assert_eq!(store.seal("d").unwrap().shards.len(), 5);
}

#[test]
fn shards_roll_at_the_byte_limit_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(1_000_000);
    o.shard_max_bytes = 1;
    o.row_group_rows = 2;
    let store = LabelStore::open(dir.path(), teacher(), o).unwrap();
    for k in 0..3 {
        store.append("b", rows(k * 4..k * 4 + 4)).unwrap();
    }
    let m = store.manifest("b").unwrap();
    assert_eq!(m.shards.len(), 3, "each append exceeded 1 byte and rolled");
    assert_eq!(m.pending_rows, 0);
}

/// log-sum-exp and top-k computed directly, the naive way.
fn reference_topk(row: &[f32], k: usize) -> (Vec<i32>, Vec<f32>, f32) {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap().then(a.cmp(&b)));
    let lse = row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln() as f32;
    (
        idx[..k].iter().map(|&i| i as i32).collect(),
        idx[..k].iter().map(|&i| row[i]).collect(),
        lse,
    )
}

#[test]
fn topk_columns_replace_the_full_logits() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher_topk(3), options(100)).unwrap();
    store.append("t", rows(0..20)).unwrap();
    let m = store.seal("t").unwrap();
    let names: Vec<&str> = m.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "x",
            "logits_topk_indices",
            "logits_topk_values",
            "logits_logsumexp",
            "embedding",
            "label",
            DIGEST_COLUMN
        ]
    );
    let r = DatasetReader::open(&dir.path().join("t")).unwrap();
    assert!(r.schema().index_of("logits").is_err());
    let b = r
        .batches(
            &[
                "logits_topk_indices",
                "logits_topk_values",
                "logits_logsumexp",
            ],
            100,
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let idx = column_to_tensor(&b, "logits_topk_indices", DType::I32).unwrap();
    let val = column_to_tensor(&b, "logits_topk_values", DType::F32).unwrap();
    let lse = b.column(2).as_any().downcast_ref::<Float32Array>().unwrap();
    assert_eq!(idx.shape(), &[20, 3]);
    let (TensorData::I32(iv), TensorData::F32(vv)) = (idx.data(), val.data()) else {
        panic!()
    };
    for i in 0..20 {
        let row: Vec<f32> = (0..CLASSES).map(|c| logit(i, c)).collect();
        let (ri, rv, rl) = reference_topk(&row, 3);
        assert_eq!(&iv[i * 3..i * 3 + 3], &ri[..], "row {i}");
        assert_eq!(&vv[i * 3..i * 3 + 3], &rv[..], "row {i}");
        assert!(
            (lse.value(i) - rl).abs() < 1e-5,
            "row {i}: {} vs {rl}",
            lse.value(i)
        );
    }
}

#[test]
fn topk_matches_numpy_golden_values() {
    // Produced by proto/tests/golden/topk_golden.py (numpy); the same logits are rebuilt here.
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("golden/topk_golden.json")).unwrap();
    let logits: Vec<Vec<f32>> = serde_json::from_value(golden["logits"].clone()).unwrap();
    let k = golden["k"].as_u64().unwrap() as usize;
    let n = logits.len();
    let c = logits[0].len();
    let flat: Vec<f32> = logits.iter().flatten().copied().collect();
    let t = distill_proto::Tensor::new(vec![n, c], TensorData::F32(flat)).unwrap();
    let r = distill_proto::store::topk_rows("logits", &t, k).unwrap();
    let gi: Vec<Vec<i32>> = serde_json::from_value(golden["indices"].clone()).unwrap();
    let gv: Vec<Vec<f32>> = serde_json::from_value(golden["values"].clone()).unwrap();
    let gl: Vec<f64> = serde_json::from_value(golden["logsumexp"].clone()).unwrap();
    for i in 0..n {
        assert_eq!(&r.indices[i * k..(i + 1) * k], &gi[i][..], "row {i}");
        assert_eq!(&r.values[i * k..(i + 1) * k], &gv[i][..], "row {i}");
        let rel = ((r.logsumexp[i] as f64 - gl[i]) / gl[i].abs().max(1.0)).abs();
        assert!(rel < 1e-6, "row {i}: {} vs {}", r.logsumexp[i], gl[i]);
    }
}

#[test]
fn f16_features_and_unstored_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = teacher();
    t.feature_dtype = FeatureDType::F16;
    t.store_inputs = false;
    let store = LabelStore::open(dir.path(), t, options(100)).unwrap();
    store.append("h", rows(0..5)).unwrap();
    // Idempotency still works without stored inputs (the digest column carries it).
    assert_eq!(store.append("h", rows(0..5)).unwrap().duplicates, 5);
    let m = store.seal("h").unwrap();
    assert!(m.columns.iter().all(|c| c.name != "x"));
    let r = DatasetReader::open(&dir.path().join("h")).unwrap();
    let f = r.schema().field_with_name("embedding").unwrap().clone();
    assert_eq!(
        f.data_type().to_string(),
        m.columns
            .iter()
            .find(|c| c.name == "embedding")
            .unwrap()
            .arrow_type
    );
    assert!(
        f.data_type().to_string().contains("Float16"),
        "{}",
        f.data_type()
    );
    let b = r
        .batches(&["embedding"], 10)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let e = column_to_tensor(&b, "embedding", DType::F32).unwrap();
    let TensorData::F32(v) = e.data() else {
        panic!()
    };
    for i in 0..5 {
        for j in 0..EMB {
            assert_eq!(v[i * EMB + j], half::f16::from_f32(emb(i, j)).to_f32());
        }
    }
    drop(store);
    // The digests rebuilt from the shard still recognise the rows after a restart.
    let mut t = teacher();
    t.feature_dtype = FeatureDType::F16;
    t.store_inputs = false;
    let store = LabelStore::open(dir.path(), t, options(100)).unwrap();
    assert_eq!(
        store.append("h", rows(3..8)).unwrap(),
        distill_proto::store::AppendOutcome {
            stored: 3,
            duplicates: 2
        }
    );
}

#[test]
fn re_append_is_idempotent_and_conflicts_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    store.append("d", rows(0..10)).unwrap();
    let out = store.append("d", rows(5..15)).unwrap();
    assert_eq!((out.stored, out.duplicates), (5, 5));

    // Same ids 14..16 (14 stored, 15 new) but row 14 with different inputs: nothing stored.
    let mut bad = rows(14..17);
    if let TensorData::F32(_) = bad.inputs[0].1.data() {
        let (shape, data) = bad.inputs[0].1.clone().into_parts();
        let TensorData::F32(mut v) = data else {
            unreachable!()
        };
        v[0] += 1.0;
        bad.inputs[0].1 = distill_proto::Tensor::new(shape, TensorData::F32(v)).unwrap();
    }
    let err = store.append("d", bad).unwrap_err();
    assert!(
        matches!(&err, StoreError::IdConflict { id, .. } if id == "row-14"),
        "{err}"
    );
    assert_eq!(store.manifest("d").unwrap().pending_rows, 15);
    // Rows 15 and 16 of the failed call were not stored: they append as new now.
    assert_eq!(store.append("d", rows(15..17)).unwrap().stored, 2);

    // Duplicate ids inside one call.
    let mut dup = rows(20..22);
    dup.ids[1] = dup.ids[0].clone();
    assert!(
        matches!(store.append("d", dup), Err(StoreError::InvalidRows(m)) if m.contains("appears twice"))
    );
    store.seal("d").unwrap();
    let ids = read_ids(&dir.path().join("d"));
    assert_eq!(ids, (0..17).map(|i| format!("row-{i}")).collect::<Vec<_>>());
}

#[test]
fn bad_rows_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    let mut r = rows(0..3);
    r.ids.pop();
    let e = store.append("d", r).unwrap_err().to_string();
    assert!(
        e.contains("input \"x\"") && e.contains("expected 2 rows"),
        "{e}"
    );
    let mut r = rows(0..3);
    r.outputs.remove("embedding");
    assert!(store
        .append("d", r)
        .unwrap_err()
        .to_string()
        .contains("output \"embedding\" is missing"));
    let mut r = rows(0..3);
    r.outputs[0].1 =
        distill_proto::Tensor::new(vec![3, 5], TensorData::F32(vec![0.0; 15])).unwrap();
    let e = store.append("d", r).unwrap_err().to_string();
    assert!(
        e.contains("output \"logits\" has shape [3, 5], expected [3, 6]"),
        "{e}"
    );
    let mut r = rows(0..3);
    r.columns.push((
        "embedding".into(),
        Arc::new(Int64Array::from(vec![1, 2, 3])),
    ));
    assert!(store
        .append("d", r)
        .unwrap_err()
        .to_string()
        .contains("collides"));
    let mut r = rows(0..3);
    r.columns[0].1 = Arc::new(Int64Array::from(vec![1, 2]));
    assert!(store
        .append("d", r)
        .unwrap_err()
        .to_string()
        .contains("has 2 values, expected 3"));
    let mut r = rows(0..3);
    r.ids[1] = String::new();
    assert!(store.append("d", r).is_err());
    // None of that created the dataset.
    assert!(matches!(store.manifest("d"), Err(StoreError::NotFound(_))));
    assert!(!dir.path().join("d").exists());
}

#[test]
fn pass_through_columns_are_fixed_by_the_first_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    store.append("d", rows(0..3)).unwrap();
    let mut r = rows(3..6);
    r.columns[0].1 = Arc::new(StringArray::from(vec!["a", "b", "c"]));
    let e = store.append("d", r).unwrap_err();
    assert!(
        matches!(&e, StoreError::SchemaMismatch { message, .. } if message.contains("\"label\"") && message.contains("Int64") && message.contains("Utf8")),
        "{e}"
    );
    let mut r = rows(3..6);
    r.columns[0].0 = "other".into();
    let e = store.append("d", r).unwrap_err();
    assert!(
        matches!(&e, StoreError::SchemaMismatch { message, .. } if message.contains("\"other\"")),
        "{e}"
    );
    let mut r = rows(3..6);
    r.columns.clear();
    let e = store.append("d", r).unwrap_err();
    assert!(
        matches!(&e, StoreError::SchemaMismatch { message, .. } if message.contains("\"label\" is missing")),
        "{e}"
    );
    assert_eq!(store.manifest("d").unwrap().pending_rows, 3);
}

#[test]
fn another_teacher_cannot_append_but_can_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    store.append("d", rows(0..3)).unwrap();
    store.close().unwrap();
    drop(store);
    // Another provider / ORT version is fine.
    let mut t = teacher();
    t.provider = "cuda".into();
    t.ort_version = "1.32.0".into();
    let store = LabelStore::open(dir.path(), t, options(100)).unwrap();
    assert_eq!(store.append("d", rows(3..4)).unwrap().stored, 1);
    drop(store);
    let mut t = teacher();
    t.model_sha256 = "cd".repeat(32);
    let store = LabelStore::open(dir.path(), t.clone(), options(100)).unwrap();
    let e = store.append("d", rows(4..5)).unwrap_err();
    assert!(
        matches!(&e, StoreError::TeacherMismatch { message, .. } if message.contains("model sha256")),
        "{e}"
    );
    assert_eq!(
        store.manifest("d").unwrap().teacher.model_sha256,
        "ab".repeat(32)
    );
    assert_eq!(store.list().unwrap()[0].rows, 4);
    // A new dataset under the new teacher is fine.
    store.append("e", rows(0..1)).unwrap();
    drop(store);
    let mut t2 = teacher();
    t2.logits_topk = Some(distill_proto::store::TopK {
        output: "logits".into(),
        k: 2,
    });
    let store = LabelStore::open(dir.path(), t2, options(100)).unwrap();
    assert!(matches!(
        store.append("d", rows(4..5)),
        Err(StoreError::TeacherMismatch { .. })
    ));
}

#[test]
fn invalid_names_and_configurations() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    for name in ["", ".", "..", "a/b", "../x", "a b", &"x".repeat(129)] {
        assert!(
            matches!(
                store.append(name, rows(0..1)),
                Err(StoreError::InvalidName { .. })
            ),
            "{name:?}"
        );
        assert!(matches!(
            store.seal(name),
            Err(StoreError::InvalidName { .. })
        ));
        assert!(matches!(
            store.manifest(name),
            Err(StoreError::InvalidName { .. })
        ));
    }
    assert!(matches!(store.seal("absent"), Err(StoreError::NotFound(_))));
    drop(store);
    let e = LabelStore::open(dir.path(), teacher_topk(0), options(100))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("k must be at least 1"), "{e}");
    let mut t = teacher();
    t.logits_topk = Some(distill_proto::store::TopK {
        output: "nope".into(),
        k: 2,
    });
    assert!(LabelStore::open(dir.path(), t, options(100)).is_err());
    assert!(LabelStore::open(dir.path(), teacher(), options(0)).is_err());
    // k larger than the number of classes is refused at append.
    let store = LabelStore::open(dir.path(), teacher_topk(CLASSES + 1), options(100)).unwrap();
    let e = store.append("d", rows(0..2)).unwrap_err().to_string();
    assert!(e.contains("k=7") && e.contains("<= 6"), "{e}");
}

#[test]
fn a_data_dir_is_held_by_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    let e = LabelStore::open(dir.path(), teacher(), options(100))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("another store"), "{e}");
    drop(store);
    assert!(LabelStore::open(dir.path(), teacher(), options(100)).is_ok());
}

#[test]
fn concurrent_appends_to_one_and_several_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LabelStore::open(dir.path(), teacher(), options(25)).unwrap());
    let mut handles = Vec::new();
    for t in 0..4usize {
        let s = store.clone();
        handles.push(std::thread::spawn(move || {
            for k in 0..10usize {
                let start = t * 1000 + k * 7;
                s.append("shared", rows(start..start + 7)).unwrap();
                // Every thread also re-sends a block the others send: duplicates, never conflicts.
                s.append("shared", rows(5000..5003)).unwrap();
                s.append(&format!("own-{t}"), rows(k * 3..k * 3 + 3))
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    store.close().unwrap();
    let list = store.list().unwrap();
    assert_eq!(list.len(), 5);
    let shared = list.iter().find(|d| d.name == "shared").unwrap();
    assert_eq!(shared.rows, 4 * 70 + 3);
    let mut ids = read_ids(&dir.path().join("shared"));
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!((n, ids.len()), (283, 283));
    assert_eq!(read_ids(&dir.path().join("own-2")).len(), 30);
}

#[test]
fn dynamic_signature_axes_are_stored_as_lists_and_pooling_drops_the_sequence_axis() {
    use distill_proto::api::{Dim, OutputSource, OutputSpec, Pooling, TensorSpec};
    use distill_proto::store::{LabelRows, TeacherFingerprint};
    use distill_proto::Tensor;
    let dyn_ = |s: &str| Dim::Dynamic(s.into());
    let t = TeacherFingerprint {
        model_sha256: "00".repeat(32),
        inputs: vec![TensorSpec {
            name: "input_ids".into(),
            dtype: DType::I64,
            shape: vec![dyn_("batch"), dyn_("sequence")],
        }],
        outputs: vec![OutputSpec {
            name: "embedding".into(),
            tensor: "last_hidden_state".into(),
            source: OutputSource::Output,
            dtype: DType::F32,
            shape: vec![dyn_("batch"), dyn_("sequence"), Dim::Fixed(4)],
            pooling: Pooling::Mean,
            normalize: false,
        }],
        ort_version: "1.31.1".into(),
        provider: "cpu".into(),
        feature_dtype: FeatureDType::F32,
        logits_topk: None,
        store_inputs: true,
        tokenizer: None,
    };
    let req = |ids: &[&str], seq: usize| LabelRows {
        ids: ids.iter().map(|s| s.to_string()).collect(),
        inputs: vec![(
            "input_ids".into(),
            Tensor::new(
                vec![ids.len(), seq],
                TensorData::I64((0..ids.len() * seq).map(|v| v as i64).collect()),
            )
            .unwrap(),
        )]
        .into(),
        outputs: vec![(
            "embedding".into(),
            Tensor::new(
                vec![ids.len(), 4],
                TensorData::F32(vec![0.5; ids.len() * 4]),
            )
            .unwrap(),
        )]
        .into(),
        columns: vec![],
        tokens: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), t, options(100)).unwrap();
    store.append("s", req(&["a", "b"], 5)).unwrap();
    store.append("s", req(&["c"], 9)).unwrap();
    // The pooled output must not keep the sequence axis.
    let mut bad = req(&["d"], 3);
    bad.outputs[0].1 = Tensor::new(vec![1, 3, 4], TensorData::F32(vec![0.0; 12])).unwrap();
    let e = store.append("s", bad).unwrap_err().to_string();
    assert!(e.contains("expected [1, 4]"), "{e}");
    let m = store.seal("s").unwrap();
    let ids_col = m.columns.iter().find(|c| c.name == "input_ids").unwrap();
    assert_eq!(
        ids_col.row_shape,
        vec![0],
        "a dynamic axis is recorded as 0"
    );
    assert!(
        ids_col.arrow_type.starts_with("List("),
        "{}",
        ids_col.arrow_type
    );
    let r = DatasetReader::open(&dir.path().join("s")).unwrap();
    let mut batches = r.batches(&["input_ids", "embedding"], 100).unwrap();
    let b = batches.next().unwrap().unwrap();
    assert_eq!(b.num_rows(), 3);
    // Rows of 5 and 9 tokens cannot form one tensor; one request's rows can.
    let e = column_to_tensor(&b, "input_ids", DType::I64)
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 2 has 9 values"), "{e}");
    let first = column_to_tensor(&b.slice(0, 2), "input_ids", DType::I64).unwrap();
    assert_eq!(first.shape(), &[2, 5]);
    assert_eq!(
        column_to_tensor(&b, "embedding", DType::F32)
            .unwrap()
            .shape(),
        &[3, 4]
    );
}
