//! Crash recovery: rows acknowledged before a crash (simulated by dropping the store without
//! sealing, or by damaging files the way a crash would) are present exactly once after reopen.

mod store_common;

use std::fs;
use std::path::Path;

use distill_proto::store::LabelStore;
use store_common::*;

fn wal_files(ds: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(ds.join("_wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn acknowledged_rows_survive_a_crash_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(10)).unwrap();
    store.append("d", rows(0..13)).unwrap(); // one finished shard (10) + 3 pending
    store.append("d", rows(13..18)).unwrap();
    // Shards are encoded in the background: wait for the encoder before looking at files.
    store.manifest("d").unwrap();
    let ds = dir.path().join("d");
    assert!(
        ds.join("_shard-000001.parquet.tmp").exists(),
        "open shard is a .tmp file"
    );
    assert_eq!(wal_files(&ds).len(), 1);
    drop(store); // no seal: the open shard's .tmp is abandoned as in a kill -9

    let store = LabelStore::open(dir.path(), teacher(), options(10)).unwrap();
    assert!(
        !ds.join("_shard-000001.parquet.tmp").exists(),
        "leftover .tmp removed"
    );
    assert!(wal_files(&ds).is_empty(), "WAL replayed into a shard");
    let m = store.manifest("d").unwrap();
    assert_eq!((m.rows, m.pending_rows), (18, 0));
    assert_eq!(m.shards.iter().map(|s| s.rows).collect::<Vec<_>>(), [10, 8]);
    assert_eq!(
        read_ids(&ds),
        (0..18).map(|i| format!("row-{i}")).collect::<Vec<_>>()
    );
    // Re-sending everything after the restart stores nothing twice.
    let out = store.append("d", rows(0..20)).unwrap();
    assert_eq!((out.stored, out.duplicates), (2, 18));
    store.close().unwrap();
    assert_eq!(read_ids(&ds).len(), 20);
}

#[test]
fn a_torn_wal_tail_is_dropped_and_earlier_records_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    store.append("d", rows(0..4)).unwrap();
    store.append("d", rows(4..9)).unwrap();
    let ds = dir.path().join("d");
    let wal = wal_files(&ds).pop().unwrap();
    let len_before_third = fs::metadata(&wal).unwrap().len();
    store.append("d", rows(9..12)).unwrap();
    drop(store);
    // Cut the last record in the middle, as a crash during its write would.
    let full = fs::metadata(&wal).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&wal).unwrap();
    f.set_len(len_before_third + (full - len_before_third) / 2)
        .unwrap();
    drop(f);

    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    assert_eq!(
        read_ids(&ds),
        (0..9).map(|i| format!("row-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(store.manifest("d").unwrap().rows, 9);
    // The dropped rows were never acknowledged; sending them again stores them.
    assert_eq!(store.append("d", rows(9..12)).unwrap().stored, 3);
}

#[test]
fn a_corrupted_record_crc_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    store.append("d", rows(0..4)).unwrap();
    let ds = dir.path().join("d");
    let wal = wal_files(&ds).pop().unwrap();
    let good = fs::metadata(&wal).unwrap().len();
    store.append("d", rows(4..6)).unwrap();
    drop(store);
    let mut bytes = fs::read(&wal).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff; // payload no longer matches its crc32
    fs::write(&wal, &bytes).unwrap();
    assert!(bytes.len() as u64 > good);
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    assert_eq!(store.manifest("d").unwrap().rows, 4);
}

#[test]
fn a_crash_between_rename_and_manifest_update_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    store.append("d", rows(0..5)).unwrap();
    let ds = dir.path().join("d");
    let manifest_before = fs::read(ds.join("_manifest.json")).unwrap();
    let wal = wal_files(&ds).pop().unwrap();
    let wal_bytes = fs::read(&wal).unwrap();
    store.seal("d").unwrap();
    drop(store);
    // Put back the state of a crash after the shard rename, before the manifest and WAL updates.
    fs::write(ds.join("_manifest.json"), manifest_before).unwrap();
    fs::write(&wal, wal_bytes).unwrap();
    assert!(ds.join("shard-000000.parquet").exists());

    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    let m = store.manifest("d").unwrap();
    assert_eq!((m.rows, m.shards.len()), (5, 1));
    assert_eq!(
        read_ids(&ds),
        (0..5).map(|i| format!("row-{i}")).collect::<Vec<_>>()
    );
    assert!(wal_files(&ds).is_empty());
}

#[test]
fn a_crash_after_the_manifest_update_drops_the_stale_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    store.append("d", rows(0..5)).unwrap();
    let ds = dir.path().join("d");
    let wal = wal_files(&ds).pop().unwrap();
    let wal_bytes = fs::read(&wal).unwrap();
    store.seal("d").unwrap();
    drop(store);
    fs::write(&wal, wal_bytes).unwrap(); // the WAL delete never happened
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    assert_eq!(store.manifest("d").unwrap().rows, 5);
    assert_eq!(read_ids(&ds).len(), 5);
    assert!(wal_files(&ds).is_empty());
}

/// The provider each shard's `distill.manifest` metadata names.
fn shard_providers(ds: &Path) -> Vec<String> {
    use distill_proto::store::{ShardMetadata, SHARD_METADATA_KEY};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut shards: Vec<_> = fs::read_dir(ds)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    shards.sort();
    shards
        .iter()
        .map(|p| {
            let r = SerializedFileReader::new(fs::File::open(p).unwrap()).unwrap();
            let kv = r.metadata().file_metadata().key_value_metadata().unwrap();
            let json = kv
                .iter()
                .find(|k| k.key == SHARD_METADATA_KEY)
                .and_then(|k| k.value.clone())
                .unwrap();
            let m: ShardMetadata = serde_json::from_str(&json).unwrap();
            m.teacher.provider
        })
        .collect()
}

#[test]
fn each_shard_names_the_provider_that_computed_it_even_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("d");
    let mut cuda = teacher();
    cuda.provider = "cuda".into();
    // A CUDA server stores 6 rows (one finished shard of 4, 2 in the log) and is killed.
    let store = LabelStore::open(dir.path(), cuda.clone(), options(4)).unwrap();
    store.append("d", rows(0..6)).unwrap();
    store.manifest("d").unwrap();
    drop(store);
    // A CPU server (mixed providers allowed by its operator) opens the data dir, replays the
    // CUDA rows, stores 3 rows of its own (still in the log) and is killed too.
    let store = LabelStore::open(dir.path(), teacher(), options(4)).unwrap();
    store.append("d", rows(6..9)).unwrap();
    drop(store);
    // The CUDA server again: the CPU rows it replays from the log are filed as CPU rows,
    // though the manifest says the dataset is CUDA's.
    let store = LabelStore::open(dir.path(), cuda, options(4)).unwrap();
    store.append("d", rows(9..11)).unwrap();
    let m = store.seal("d").unwrap();
    assert_eq!(m.rows, 11);
    assert_eq!(
        m.teacher.provider, "cuda",
        "the dataset keeps its first provider"
    );
    assert_eq!(
        m.shards.iter().map(|s| s.rows).collect::<Vec<_>>(),
        [4, 2, 3, 2]
    );
    assert_eq!(shard_providers(&ds), ["cuda", "cuda", "cpu", "cuda"]);
    assert_eq!(
        read_ids(&ds),
        (0..11).map(|i| format!("row-{i}")).collect::<Vec<_>>()
    );
}
