//! Digest versioning: datasets written with the v1 digest (SHA-256, before the manifest named
//! its algorithm) still open, verify and deduplicate; new datasets use XXH3-128.

mod store_common;

use std::fs;
use std::path::Path;

use arrow::array::{Array, FixedSizeBinaryArray, StringArray};
use distill_proto::store::{DigestAlgorithm, LabelStore, StoreError, DIGEST_COLUMN};
use distill_proto::TensorData;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sha2::{Digest, Sha256};
use store_common::*;

/// The v1 digest of test row `i`, computed here from its documented definition: SHA-256 over
/// the input's name length (u64 LE), name, dtype name, row-shape length and dims (u64 LE) and
/// the row's values (LE), first 16 bytes.
fn v1_digest(i: usize) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(1u64.to_le_bytes());
    h.update(b"x");
    h.update(b"f32");
    h.update(1u64.to_le_bytes());
    h.update((IN as u64).to_le_bytes());
    for j in 0..IN {
        h.update(x_val(i, j).to_le_bytes());
    }
    h.finalize()[..16].to_vec()
}

/// id -> digest of every finished shard of a dataset.
fn digests(ds: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = fs::read_dir(ds)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    for f in files {
        let r = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b = b.unwrap();
            let ids = b.column_by_name("id").unwrap();
            let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
            let d = b.column_by_name(DIGEST_COLUMN).unwrap();
            let d = d.as_any().downcast_ref::<FixedSizeBinaryArray>().unwrap();
            for i in 0..ids.len() {
                out.push((ids.value(i).to_string(), d.value(i).to_vec()));
            }
        }
    }
    out
}

/// Makes a dataset's manifest look like one written before `input_digest` existed.
fn strip_digest_field(ds: &Path) {
    let path = ds.join("_manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(m["input_digest"], "sha256-128");
    m.as_object_mut().unwrap().remove("input_digest");
    fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// Rows `range` with the inputs of row `changed` altered.
fn rows_changed(range: std::ops::Range<usize>, changed: usize) -> distill_proto::store::LabelRows {
    let start = range.start;
    let mut r = rows(range);
    let (shape, data) = r.inputs[0].1.clone().into_parts();
    let TensorData::F32(mut v) = data else {
        unreachable!("the test teacher's input is f32")
    };
    v[(changed - start) * IN] += 1.0;
    r.inputs[0].1 = distill_proto::Tensor::new(shape, TensorData::F32(v)).unwrap();
    r
}

#[test]
fn a_v1_store_still_opens_verifies_and_deduplicates() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("old");
    {
        let mut store = LabelStore::open(dir.path(), teacher(), options(8)).unwrap();
        store.set_new_dataset_digest(DigestAlgorithm::Sha256);
        store.append("old", rows(0..10)).unwrap(); // one shard of 8 + 2 in the log
        store.close().unwrap();
    }
    strip_digest_field(&ds);
    // The stored digests are exactly the v1 definition.
    let stored = digests(&ds);
    assert_eq!(stored.len(), 10);
    for (id, d) in &stored {
        let i: usize = id.strip_prefix("row-").unwrap().parse().unwrap();
        assert_eq!(d, &v1_digest(i), "{id}");
    }

    // A current store opens it, keeps SHA-256 for it and recognises its rows.
    let store = LabelStore::open(dir.path(), teacher(), options(8)).unwrap();
    assert_eq!(
        store.manifest("old").unwrap().input_digest,
        DigestAlgorithm::Sha256
    );
    let out = store.append("old", rows(5..15)).unwrap();
    assert_eq!((out.stored, out.duplicates), (5, 5));
    let e = store.append("old", rows_changed(3..5, 3)).unwrap_err();
    assert!(
        matches!(e, StoreError::IdConflict { ref id, .. } if id == "row-3"),
        "{e}"
    );
    // Rows only in the log (not sealed) are recognised after a crash too.
    drop(store);
    let store = LabelStore::open(dir.path(), teacher(), options(8)).unwrap();
    let out = store.append("old", rows(12..16)).unwrap();
    assert_eq!((out.stored, out.duplicates), (1, 3));
    assert!(matches!(
        store.append("old", rows_changed(13..14, 13)),
        Err(StoreError::IdConflict { .. })
    ));

    // A new dataset in the same store uses XXH3-128: other digests for the same rows.
    store.append("new", rows(0..4)).unwrap();
    let m = store.manifest("new").unwrap();
    assert_eq!(m.input_digest, DigestAlgorithm::Xxh3);
    store.close().unwrap();
    drop(store);
    let new = digests(&dir.path().join("new"));
    assert_eq!(new.len(), 4);
    for (id, d) in &new {
        let i: usize = id.strip_prefix("row-").unwrap().parse().unwrap();
        assert_ne!(d, &v1_digest(i), "{id}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("new/_manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["input_digest"], "xxh3-128");
    // ... and deduplicates with them across a restart.
    let store = LabelStore::open(dir.path(), teacher(), options(8)).unwrap();
    let out = store.append("new", rows(2..6)).unwrap();
    assert_eq!((out.stored, out.duplicates), (2, 2));
    assert!(matches!(
        store.append("new", rows_changed(1..2, 1)),
        Err(StoreError::IdConflict { .. })
    ));
}
