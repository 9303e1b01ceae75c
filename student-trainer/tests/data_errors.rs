//! Bad input gives a clear error naming the file, column or key — never a panic or a
//! silent skip.

mod data_support;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int64Array, StringArray};
use data_support::{
    columns, fsl, fsl_i32, kd_config, synth, write_config, write_parquet, write_sets,
};
use student_trainer::train::{run, TrainOptions};

fn train_err(config: &Path, out: &Path) -> String {
    let o = TrainOptions {
        config: Some(config.to_path_buf()),
        out: Some(out.to_path_buf()),
        quiet: true,
        ..Default::default()
    };
    match run(&o) {
        Ok(r) => panic!("expected an error, got {r:?}"),
        Err(e) => e.to_string(),
    }
}

/// Writes `cfg_body` and trains; returns the error text.
fn try_config(dir: &Path, body: &str) -> String {
    let cfg = write_config(dir, "bad.toml", body);
    train_err(&cfg, &dir.join("out"))
}

#[test]
fn missing_input_column_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 40, 20);
    let e = try_config(
        dir.path(),
        &kd_config(&train, &eval, 1, "").replace("input = \"pixels\"", "input = \"image\""),
    );
    assert!(
        e.contains("\"image\"") && e.contains("not found") && e.contains("pixels"),
        "{e}"
    );
}

#[test]
fn unknown_teacher_column_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 40, 20);
    let e = try_config(
        dir.path(),
        &kd_config(&train, &eval, 1, "").replace("teacher = \"logits\"", "teacher = \"logitz\""),
    );
    assert!(
        e.contains("\"logitz\"") && e.contains(&train.display().to_string()),
        "{e}"
    );
}

#[test]
fn shard_with_another_schema_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 40, 20);
    let s = synth(10, 9);
    let mut cols = columns(&s);
    cols.pop(); // no embedding column
    let odd = train.join("shard-000002.parquet");
    write_parquet(&odd, cols);
    let e = try_config(dir.path(), &kd_config(&train, &eval, 1, ""));
    assert!(
        e.contains("shard-000002.parquet") && e.contains("columns differ"),
        "{e}"
    );
}

#[test]
fn corrupt_parquet_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 40, 20);
    let bad = train.join("shard-000001.parquet");
    std::fs::write(&bad, b"this is not parquet at all").expect("write");
    let e = try_config(dir.path(), &kd_config(&train, &eval, 1, ""));
    assert!(
        e.contains("corrupt") && e.contains("shard-000001.parquet"),
        "{e}"
    );
}

#[test]
fn empty_dataset_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, eval) = write_sets(dir.path(), 40, 20);
    let empty = dir.path().join("empty.parquet");
    write_parquet(
        &empty,
        vec![
            (
                "id",
                Arc::new(StringArray::from(Vec::<String>::new())) as ArrayRef,
            ),
            ("pixels", fsl(vec![], 64)),
            (
                "label",
                Arc::new(Int64Array::from(Vec::<i64>::new())) as ArrayRef,
            ),
            ("logits", fsl(vec![], 10)),
        ],
    );
    let e = try_config(dir.path(), &kd_config(&empty, &eval, 1, ""));
    assert!(e.contains("empty") && e.contains("empty.parquet"), "{e}");
    let e = try_config(
        dir.path(),
        &kd_config(&dir.path().join("nothing-*.parquet"), &eval, 1, ""),
    );
    assert!(e.contains("nothing-*.parquet"), "{e}");
    let e = try_config(
        dir.path(),
        &kd_config(&dir.path().join("missing.parquet"), &eval, 1, ""),
    );
    assert!(
        e.contains("missing.parquet") && e.contains("not found"),
        "{e}"
    );
}

#[test]
fn wrong_dtypes_and_widths_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 40, 20);
    let s = synth(20, 5);
    // Float labels.
    let f = dir.path().join("floatlabels.parquet");
    let mut cols = columns(&s);
    cols[2] = (
        "label",
        Arc::new(Float32Array::from(vec![1.0f32; 20])) as ArrayRef,
    );
    write_parquet(&f, cols);
    let e = try_config(dir.path(), &kd_config(&f, &eval, 1, ""));
    assert!(e.contains("\"label\"") && e.contains("integer"), "{e}");
    // Input column that is not a list of floats.
    let g = dir.path().join("intinput.parquet");
    let mut cols = columns(&s);
    cols[1] = (
        "pixels",
        Arc::new(Int64Array::from(vec![1i64; 20])) as ArrayRef,
    );
    write_parquet(&g, cols);
    let e = try_config(dir.path(), &kd_config(&g, &eval, 1, ""));
    assert!(
        e.contains("\"pixels\"") && e.contains("FixedSizeList"),
        "{e}"
    );
    // Teacher logits of the wrong width for the classes the labels imply.
    let body = kd_config(&train, &eval, 1, "")
        .replace("label = \"label\"", "label = \"label\"\nnum_classes = 12");
    let e = try_config(dir.path(), &body);
    assert!(e.contains("\"logits\"") && e.contains("width 10"), "{e}");
    // Eval inputs of another width than the training inputs.
    let h = dir.path().join("narrow.parquet");
    let mut cols = columns(&s);
    cols[1] = ("pixels", fsl(vec![0.5; 20 * 32], 32));
    write_parquet(&h, cols);
    let e = try_config(dir.path(), &kd_config(&train, &h, 1, ""));
    assert!(
        e.contains("narrow.parquet") && e.contains("width 32"),
        "{e}"
    );
}

#[test]
fn bad_values_are_named_with_the_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, eval) = write_sets(dir.path(), 40, 20);
    let mut s = synth(20, 5);
    s.x[3 * 64 + 5] = f32::NAN;
    let f = dir.path().join("nan.parquet");
    write_parquet(&f, columns(&s));
    let e = try_config(dir.path(), &kd_config(&f, &eval, 1, ""));
    assert!(
        e.contains("non-finite") && e.contains("row 3") && e.contains("\"pixels\""),
        "{e}"
    );

    let mut s = synth(20, 5);
    s.labels[7] = 42;
    let g = dir.path().join("labels.parquet");
    write_parquet(&g, columns(&s));
    let body = kd_config(&g, &eval, 1, "")
        .replace("label = \"label\"", "label = \"label\"\nnum_classes = 10");
    let e = try_config(dir.path(), &body);
    assert!(e.contains("row 7") && e.contains("label 42"), "{e}");
}

#[test]
fn topk_storage_is_used_by_kd_and_refused_elsewhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, eval) = write_sets(dir.path(), 40, 20);
    let s = synth(60, 4);
    let k = 3;
    let (mut idx, mut vals, mut lse) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..60 {
        let row = &s.logits[r * 10..(r + 1) * 10];
        let mut order: Vec<usize> = (0..10).collect();
        order.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
        for &c in &order[..k] {
            idx.push(c as i32);
            vals.push(row[c]);
        }
        let m = row.iter().cloned().fold(f32::MIN, f32::max);
        lse.push(m + row.iter().map(|v| (v - m).exp()).sum::<f32>().ln());
    }
    let mut cols = columns(&s);
    cols.truncate(3);
    cols.push(("logits_topk_indices", fsl_i32(idx, k)));
    cols.push(("logits_topk_values", fsl(vals, k)));
    cols.push((
        "logits_logsumexp",
        Arc::new(Float32Array::from(lse)) as ArrayRef,
    ));
    let f = dir.path().join("topk.parquet");
    write_parquet(&f, cols);
    // kd reads the top-k trio automatically.
    let cfg = write_config(dir.path(), "topk.toml", &kd_config(&f, &eval, 1, ""));
    let o = TrainOptions {
        config: Some(cfg),
        out: Some(dir.path().join("topk-run")),
        quiet: true,
        ..Default::default()
    };
    run(&o).expect("kd on top-k storage trains");
    // soft_bce cannot use top-k storage.
    let body = kd_config(&f, &eval, 1, "").replace("kind = \"kd\"", "kind = \"soft_bce\"");
    let e = try_config(dir.path(), &body);
    assert!(e.contains("top-k") && e.contains("loss[0].teacher"), "{e}");
}

#[test]
fn student_layer_out_of_range_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 40, 20);
    let body = kd_config(&train, &eval, 1, "").replace(
        "[train]",
        "[[loss]]\nkind = \"feature\"\nteacher = \"embedding\"\nstudent_layer = 3\n\n[train]",
    );
    let e = try_config(dir.path(), &body);
    assert!(e.contains("loss[2].student_layer = 3"), "{e}");
}

#[test]
fn multi_teacher_join_by_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, eval) = write_sets(dir.path(), 40, 20);
    // Teacher datasets hold the same ids in another order.
    let mut rows: Vec<usize> = (0..20).collect();
    rows.reverse();
    let a = synth(20, 1);
    let b = synth(20, 2);
    let t1 = dir.path().join("t1.parquet");
    let mut ids: Vec<String> = rows.iter().map(|&r| a.ids[r].clone()).collect();
    ids.extend(b.ids.iter().cloned());
    let mut logits: Vec<f32> = rows
        .iter()
        .flat_map(|&r| a.logits[r * 10..(r + 1) * 10].to_vec())
        .collect();
    logits.extend(b.logits.iter().cloned());
    write_parquet(
        &t1,
        vec![
            ("id", Arc::new(StringArray::from(ids.clone())) as ArrayRef),
            ("logits", fsl(logits.clone(), 10)),
        ],
    );
    let t2 = dir.path().join("t2.parquet");
    write_parquet(
        &t2,
        vec![
            (
                "id",
                Arc::new(StringArray::from(ids[..30].to_vec())) as ArrayRef,
            ),
            ("logits", fsl(logits[..300].to_vec(), 10)),
        ],
    );
    let teachers = |second: &Path| {
        kd_config(&train, &eval, 1, "").replace(
            "label = \"label\"",
            &format!(
                "label = \"label\"\nteachers = [{{ name = \"a\", path = \"{}\", weight = 2.0 }}, {{ name = \"b\", path = \"{}\" }}]",
                t1.display(),
                second.display()
            ),
        )
    };
    // Both teachers complete: trains.
    let cfg = write_config(dir.path(), "mt.toml", &teachers(&t1));
    let o = TrainOptions {
        config: Some(cfg),
        out: Some(dir.path().join("mt-run")),
        quiet: true,
        ..Default::default()
    };
    run(&o).expect("multi-teacher kd trains");
    // The second teacher lacks ten training ids.
    let e = try_config(dir.path(), &teachers(&t2));
    assert!(e.contains("missing from teacher \"b\""), "{e}");
}

/// Writes `cols` with the label store's shard metadata naming a teacher by `sha`.
fn write_store_shard(path: &Path, cols: Vec<(&str, ArrayRef)>, sha: &str) {
    use distill_proto::store::manifest::{ShardMetadata, SHARD_METADATA_KEY};
    use distill_proto::store::{FeatureDType, TeacherFingerprint, SCHEMA_VERSION};
    let meta = ShardMetadata {
        schema_version: SCHEMA_VERSION,
        dataset: "synthetic".into(),
        teacher: TeacherFingerprint {
            model_sha256: sha.into(),
            inputs: vec![],
            outputs: vec![],
            ort_version: "1.31.1".into(),
            provider: "cpu".into(),
            feature_dtype: FeatureDType::F32,
            logits_topk: None,
            store_inputs: true,
            tokenizer: None,
        },
        columns: vec![],
        input_digest: distill_proto::store::DigestAlgorithm::CURRENT,
    };
    let props = parquet::file::properties::WriterProperties::builder()
        .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
            SHARD_METADATA_KEY.to_string(),
            serde_json::to_string(&meta).expect("json"),
        )]))
        .build();
    let batch = arrow::record_batch::RecordBatch::try_from_iter(cols).expect("batch");
    let file = std::fs::File::create(path).expect("create");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

#[test]
fn shard_from_another_teacher_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, eval) = write_sets(dir.path(), 40, 20);
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).expect("mkdir");
    write_store_shard(
        &store.join("shard-000000.parquet"),
        columns(&synth(30, 1)),
        "aaaa",
    );
    write_store_shard(
        &store.join("shard-000001.parquet"),
        columns(&synth(30, 2)),
        "aaaa",
    );
    // Same teacher in both shards: trains.
    let cfg = write_config(dir.path(), "same.toml", &kd_config(&store, &eval, 1, ""));
    let o = TrainOptions {
        config: Some(cfg),
        out: Some(dir.path().join("same-run")),
        quiet: true,
        ..Default::default()
    };
    run(&o).expect("shards of one teacher train");
    // A third shard from another model is refused, naming it and the difference.
    write_store_shard(
        &store.join("shard-000002.parquet"),
        columns(&synth(30, 3)),
        "bbbb",
    );
    let e = try_config(dir.path(), &kd_config(&store, &eval, 1, ""));
    assert!(
        e.contains("shard-000002.parquet") && e.contains("another teacher") && e.contains("bbbb"),
        "{e}"
    );
    // A plain file mixed with store shards is refused too.
    std::fs::remove_file(store.join("shard-000002.parquet")).expect("rm");
    write_parquet(&store.join("shard-000003.parquet"), columns(&synth(30, 4)));
    let e = try_config(dir.path(), &kd_config(&store, &eval, 1, ""));
    assert!(
        e.contains("shard-000003.parquet") && e.contains("metadata"),
        "{e}"
    );
}
