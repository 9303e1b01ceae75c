//! DatasetReader: folders, single files, globs, projections and its errors.

mod store_common;

use std::fs;

use distill_proto::store::{DatasetReader, LabelStore, StoreError};
use store_common::*;

fn two_datasets() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(4)).unwrap();
    store.append("a", rows(0..10)).unwrap();
    store.close().unwrap();
    drop(store);
    let mut other = teacher();
    other.model_sha256 = "ef".repeat(32);
    let store = LabelStore::open(dir.path(), other, options(4)).unwrap();
    store.append("b", rows(0..3)).unwrap();
    store.close().unwrap();
    dir
}

#[test]
fn reads_a_folder_a_file_and_a_glob() {
    let dir = two_datasets();
    let a = dir.path().join("a");
    let r = DatasetReader::open(&a).unwrap();
    assert_eq!((r.rows(), r.files().len()), (10, 3));
    let one = DatasetReader::open(&a.join("shard-000001.parquet")).unwrap();
    assert_eq!(one.rows(), 4);
    let m = one.manifest().expect("a shard alone is self-describing");
    assert_eq!(m.dataset, "a");
    assert_eq!(m.teacher, teacher());
    assert_eq!(m.columns, r.manifest().unwrap().columns);
    let g = DatasetReader::open(&a.join("shard-00000[01].parquet"));
    assert!(g.is_err(), "character classes are not supported");
    let g = DatasetReader::open(&a.join("shard-*.parquet")).unwrap();
    assert_eq!(g.rows(), 10);
    let total: usize = g
        .batches(&["id", "embedding"], 3)
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(total, 10);
}

#[test]
fn missing_columns_are_named() {
    let dir = two_datasets();
    let r = DatasetReader::open(&dir.path().join("a")).unwrap();
    let e = r.batches(&["id", "logitz"], 8).err().unwrap().to_string();
    assert!(e.contains("\"logitz\"") && e.contains("logits"), "{e}");
    assert!(r.batches(&["id", "id"], 8).is_err());
    assert!(r.batches(&["id"], 0).is_err());
}

#[test]
fn a_shard_from_another_teacher_is_refused_naming_the_file() {
    let dir = two_datasets();
    let mixed = dir.path().join("mixed");
    fs::create_dir(&mixed).unwrap();
    fs::copy(
        dir.path().join("a/shard-000000.parquet"),
        mixed.join("p0.parquet"),
    )
    .unwrap();
    fs::copy(
        dir.path().join("b/shard-000000.parquet"),
        mixed.join("p1.parquet"),
    )
    .unwrap();
    let e = DatasetReader::open(&mixed).err().unwrap();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::Corrupt { .. }));
    assert!(
        msg.contains("p1.parquet") && msg.contains("model sha256"),
        "{msg}"
    );
    // The same through a glob.
    let msg = DatasetReader::open(&mixed.join("*.parquet"))
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("p1.parquet"), "{msg}");
    // And a foreign shard dropped into a dataset folder listed by its manifest.
    let a = dir.path().join("a");
    fs::copy(
        dir.path().join("b/shard-000000.parquet"),
        a.join("shard-000002.parquet"),
    )
    .unwrap();
    let msg = DatasetReader::open(&a).err().unwrap().to_string();
    assert!(
        msg.contains("shard-000002.parquet") && msg.contains("another teacher"),
        "{msg}"
    );
}

#[test]
fn corrupt_and_empty_inputs_get_clear_errors() {
    let dir = two_datasets();
    let a = dir.path().join("a");
    // Truncated shard: its footer is gone.
    let p = a.join("shard-000001.parquet");
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let msg = DatasetReader::open(&a).err().unwrap().to_string();
    assert!(
        msg.contains("shard-000001.parquet") && msg.contains("not a readable Parquet file"),
        "{msg}"
    );
    let junk = dir.path().join("junk.parquet");
    fs::write(&junk, b"not parquet at all").unwrap();
    assert!(DatasetReader::open(&junk)
        .err()
        .unwrap()
        .to_string()
        .contains("junk.parquet"));

    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let msg = DatasetReader::open(&empty).err().unwrap().to_string();
    assert!(msg.contains("empty dataset"), "{msg}");
    assert!(DatasetReader::open(&empty.join("*.parquet"))
        .err()
        .unwrap()
        .to_string()
        .contains("matches no files"));
    assert!(matches!(
        DatasetReader::open(&dir.path().join("absent")),
        Err(StoreError::NotFound(_))
    ));

    // A dataset with only pending rows has nothing to read yet.
    let d2 = tempfile::tempdir().unwrap();
    let store = LabelStore::open(d2.path(), teacher(), options(100)).unwrap();
    store.append("p", rows(0..3)).unwrap();
    let msg = DatasetReader::open(&d2.path().join("p"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("no finished shards") && msg.contains("seal"),
        "{msg}"
    );
}

#[test]
fn reader_and_batches_can_move_to_a_loader_thread() {
    fn send<T: Send + 'static>() {}
    send::<DatasetReader>();
    send::<distill_proto::store::BatchIter>();
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LabelStore>();
}
