//! Group commit: concurrent appends to one dataset share fsyncs, and none is acknowledged
//! before the log bytes holding its rows were synced.

mod store_common;

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, StringArray};
use arrow::ipc::reader::StreamReader;
use distill_proto::store::{LabelStore, SyncPoint};
use store_common::*;

/// Reads a WAL segment as its format is documented (magic `DSTLWAL1`, then records
/// `[u64 LE length][u32 LE crc32][Arrow IPC stream]`), independently of the store's own
/// reader: for every id, the byte offset where the record holding it ends.
fn record_ends(path: &Path) -> HashMap<String, u64> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(&bytes[..8], b"DSTLWAL1");
    let mut pos = 8usize;
    let mut out = HashMap::new();
    while pos + 12 <= bytes.len() {
        let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap()) as usize;
        if pos + 12 + len > bytes.len() {
            break; // a record still being written by another thread
        }
        let payload = &bytes[pos + 12..pos + 12 + len];
        let end = (pos + 12 + len) as u64;
        for batch in StreamReader::try_new(payload, None).unwrap() {
            let batch = batch.unwrap();
            let ids = batch
                .column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            for i in 0..ids.len() {
                out.insert(ids.value(i).to_string(), end);
            }
        }
        pos += 12 + len;
    }
    out
}

#[test]
fn no_append_is_acknowledged_before_its_log_bytes_are_synced() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LabelStore::open(dir.path(), teacher(), options(1_000_000)).unwrap());
    // Every fsync is slow (as on a real disk) and reports how far it made each segment durable.
    let durable: Arc<Mutex<HashMap<PathBuf, u64>>> = Arc::default();
    let d = durable.clone();
    store.observe_syncs(Arc::new(move |p| match p {
        SyncPoint::Before(_) => std::thread::sleep(Duration::from_millis(15)),
        SyncPoint::After(path, len) => {
            let mut m = d.lock().unwrap();
            let e = m.entry(path.to_path_buf()).or_insert(0);
            *e = (*e).max(len);
        }
    }));
    // A first append creates the dataset and its log segment.
    store.append("d", rows(0..1)).unwrap();
    let wal = fs::read_dir(dir.path().join("d/_wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();

    const THREADS: usize = 8;
    const PER_THREAD: usize = 6;
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, durable, violations, wal) = (
                store.clone(),
                durable.clone(),
                violations.clone(),
                wal.clone(),
            );
            std::thread::spawn(move || {
                for k in 0..PER_THREAD {
                    let first = 1 + (t * PER_THREAD + k) * 3;
                    let out = store.append("d", rows(first..first + 3)).unwrap();
                    assert_eq!(out.stored, 3);
                    // Acknowledged: the record holding these rows must lie within what an
                    // fsync that already returned covered.
                    let synced = durable.lock().unwrap().get(&wal).copied().unwrap_or(0);
                    let end = record_ends(&wal)[&format!("row-{first}")];
                    if end > synced {
                        violations.lock().unwrap().push(format!(
                            "rows {first}.. acknowledged with their record ending at byte {end}, \
                             but only {synced} bytes were synced"
                        ));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let v = violations.lock().unwrap();
    assert!(v.is_empty(), "{v:#?}");

    // The appends shared fsyncs: far fewer fsyncs than appends.
    let appends = (THREADS * PER_THREAD + 1) as u64;
    let stats = store.stats();
    assert!(
        stats.wal_fsyncs < appends,
        "{} fsyncs for {appends} appends: no group commit",
        stats.wal_fsyncs
    );
    assert!(stats.group_commits >= 1 && stats.wal_bytes > 0, "{stats:?}");

    // And every acknowledged row is there after a crash (drop without close).
    drop(store);
    let store = LabelStore::open(dir.path(), teacher(), options(1_000_000)).unwrap();
    assert_eq!(store.manifest("d").unwrap().rows, appends * 3 - 2);
}

#[test]
fn a_duplicate_is_acknowledged_only_once_the_original_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LabelStore::open(dir.path(), teacher(), options(1_000_000)).unwrap());
    store.append("d", rows(0..1)).unwrap();
    let wal = fs::read_dir(dir.path().join("d/_wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    let durable: Arc<Mutex<u64>> = Arc::default();
    let d = durable.clone();
    store.observe_syncs(Arc::new(move |p| match p {
        SyncPoint::Before(_) => std::thread::sleep(Duration::from_millis(150)),
        SyncPoint::After(_, len) => {
            let mut m = d.lock().unwrap();
            *m = (*m).max(len);
        }
    }));
    // The original append is held in its (slow) fsync while the same rows are re-sent.
    let s = store.clone();
    let original = std::thread::spawn(move || s.append("d", rows(1..4)).unwrap());
    // Wait until its record is written (and its slow fsync under way).
    while !record_ends(&wal).contains_key("row-1") {
        std::thread::sleep(Duration::from_millis(5));
    }
    let again = store.append("d", rows(1..4)).unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 3));
    let end = record_ends(&wal)["row-1"];
    let synced = *durable.lock().unwrap();
    assert!(
        end <= synced,
        "duplicates acknowledged at synced {synced} before the original's record (ending at {end}) was durable"
    );
    assert_eq!(original.join().unwrap().stored, 3);
}
