//! Disk faults at exact points of the write path, through the store's failpoint hook: a full
//! disk during a log append and during a shard write, a log that cannot be cut back, a failing
//! fsync, a dataset that cannot be recovered at open. Each time: the call fails with the right
//! kind, nothing of the failed call is half-stored, reads and other datasets keep working,
//! and once the fault is gone the dataset recovers in place with every acknowledged row
//! exactly once. (`tests/tests/disk_faults.rs` does the same with a real full tmpfs.)

mod store_common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use distill_proto::store::{FaultKind, FaultPoint, LabelStore, StoreError};
use store_common::*;

fn no_space() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::ENOSPC)
}

/// A hook that fails `point` with a full disk while `on` is set.
fn failing(point: FaultPoint, on: Arc<AtomicBool>) -> distill_proto::store::FaultHook {
    failing_with(point, on, libc::ENOSPC)
}

/// A hook that fails `point` with OS error `errno` while `on` is set.
fn failing_with(
    point: FaultPoint,
    on: Arc<AtomicBool>,
    errno: i32,
) -> distill_proto::store::FaultHook {
    Arc::new(move |p| {
        if p == point && on.load(Ordering::SeqCst) {
            Err(std::io::Error::from_raw_os_error(errno))
        } else {
            Ok(())
        }
    })
}

/// Past the store's retry delay for a dataset that is down.
fn wait_for_retry() {
    std::thread::sleep(Duration::from_millis(1100));
}

fn ids_of(range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|i| format!("row-{i}")).collect()
}

fn stored_ids(dir: &std::path::Path) -> BTreeSet<String> {
    let ids = read_ids(dir);
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "an id is stored twice");
    set
}

#[test]
fn a_full_disk_during_a_log_append_stores_nothing_of_that_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    store.append("d", rows(0..5)).unwrap();
    let on = Arc::new(AtomicBool::new(true));
    store.inject_faults(Some(failing(FaultPoint::WalAppend, on.clone())));
    let e = store.append("d", rows(5..9)).unwrap_err();
    assert_eq!(e.fault_kind(), Some(FaultKind::NoSpace), "{e}");
    // The log was cut back cleanly, so the dataset is not down: reads work, and once there
    // is room the same rows go in as new rows (nothing of the failed call was kept).
    assert_eq!(store.manifest("d").unwrap().pending_rows, 5);
    assert!(store.faults().is_empty());
    on.store(false, Ordering::SeqCst);
    let out = store.append("d", rows(5..9)).unwrap();
    assert_eq!((out.stored, out.duplicates), (4, 0));
    store.seal("d").unwrap();
    assert_eq!(stored_ids(&dir.path().join("d")), ids_of(0..9));
}

#[test]
fn a_log_that_cannot_be_cut_back_takes_the_dataset_down_until_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    store.append("d", rows(0..5)).unwrap();
    store.append("other", rows(0..2)).unwrap();
    let append_fails = Arc::new(AtomicBool::new(true));
    let hook_on = append_fails.clone();
    // The append fails, and so does cutting the segment back (the old `let _ = truncate`).
    store.inject_faults(Some(Arc::new(move |p| {
        if hook_on.load(Ordering::SeqCst)
            && matches!(p, FaultPoint::WalAppend | FaultPoint::WalTruncate)
        {
            Err(no_space())
        } else {
            Ok(())
        }
    })));
    assert!(store.append("d", rows(5..9)).is_err());
    append_fails.store(false, Ordering::SeqCst);
    // No record may be logged behind a possibly torn one: refused until recovery.
    let e = store.append("d", rows(9..12)).unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
    assert_eq!(store.faults().len(), 1);
    // Reads and the other dataset keep working meanwhile.
    assert_eq!(store.manifest("d").unwrap().dataset, "d");
    assert_eq!(store.append("other", rows(2..4)).unwrap().stored, 2);
    assert_eq!(store.list().unwrap().len(), 2);
    wait_for_retry();
    let out = store.append("d", rows(9..12)).unwrap();
    assert_eq!(out.stored, 3);
    assert!(store.faults().is_empty());
    store.close().unwrap();
    assert_eq!(
        stored_ids(&dir.path().join("d")),
        ids_of(0..5).union(&ids_of(9..12)).cloned().collect()
    );
}

#[test]
fn a_full_disk_during_a_shard_write_keeps_acknowledged_rows_and_recovers_in_place() {
    let dir = tempfile::tempdir().unwrap();
    // Shards of 4 rows, so appends finish shards while the disk is "full".
    let store = LabelStore::open(dir.path(), teacher(), options(4)).unwrap();
    store.append("d", rows(0..6)).unwrap();
    store.manifest("d").unwrap();
    let on = Arc::new(AtomicBool::new(true));
    store.inject_faults(Some(failing(FaultPoint::ShardWrite, on.clone())));
    let mut acked: BTreeSet<String> = ids_of(0..6);
    // The log still takes rows; the background encoder fails. The append that handed it
    // the rows is acknowledged (its rows are durable in the log); later ones are refused.
    let mut refused = 0;
    for k in 0..6 {
        let r = rows(6 + k * 3..9 + k * 3);
        match store.append("d", r) {
            Ok(_) => acked.extend(ids_of(6 + k * 3..9 + k * 3)),
            Err(e) => {
                assert_eq!(e.fault_kind(), Some(FaultKind::NoSpace), "{e}");
                assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
                refused += 1;
            }
        }
        // Let the encoder reach the failure.
        let _ = store.manifest("d");
    }
    assert!(
        refused >= 4,
        "appends after the shard failure are refused ({refused})"
    );
    let down = store.faults();
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].1.kind, FaultKind::NoSpace);
    // The manifest on disk still answers; seal refuses while the disk is full.
    assert!(store.manifest("d").is_ok());
    wait_for_retry();
    assert!(store.seal("d").is_err(), "still full: recovery fails");
    on.store(false, Ordering::SeqCst);
    wait_for_retry();
    let m = store.seal("d").unwrap();
    assert_eq!((m.rows as usize, m.pending_rows), (acked.len(), 0));
    assert_eq!(stored_ids(&dir.path().join("d")), acked);
    // And it takes writes again.
    assert_eq!(store.append("d", rows(100..102)).unwrap().stored, 2);
    store.close().unwrap();
}

#[test]
fn a_disk_turned_read_only_while_finishing_a_shard_is_reported_as_read_only_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(4)).unwrap();
    let on = Arc::new(AtomicBool::new(true));
    store.inject_faults(Some(failing_with(
        FaultPoint::ShardFinish,
        on.clone(),
        libc::EROFS,
    )));
    // 6 rows: shard 0 (4 rows) is finished in the background and fails; the call itself was
    // durable in the log, so it is acknowledged.
    assert_eq!(store.append("d", rows(0..6)).unwrap().stored, 6);
    // Drains the encoder (which fails); the manifest on disk still answers, without the shard.
    assert_eq!(store.manifest("d").unwrap().shards.len(), 0);
    let down = store.faults();
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].1.kind, FaultKind::ReadOnly);
    let e = store.append("d", rows(6..8)).unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
    assert_eq!(e.fault_kind(), Some(FaultKind::ReadOnly), "{e}");
    assert!(
        e.to_string().contains("read-only"),
        "the message says what is wrong: {e}"
    );
    // Other datasets are not affected by this dataset's fault (the hook is store-wide, so
    // switch it off first: what matters is that "d" stays down until its retry time).
    on.store(false, Ordering::SeqCst);
    assert_eq!(store.append("other", rows(0..2)).unwrap().stored, 2);
    wait_for_retry();
    let m = store.seal("d").unwrap();
    assert_eq!((m.rows, m.pending_rows), (6, 0));
    assert_eq!(stored_ids(&dir.path().join("d")), ids_of(0..6));
    store.close().unwrap();
}

#[test]
fn a_failed_fsync_is_never_acknowledged_and_a_retry_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    store.append("d", rows(0..5)).unwrap();
    let on = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let (hook_on, hook_calls) = (on.clone(), calls.clone());
    store.inject_faults(Some(Arc::new(move |p| {
        if p == FaultPoint::WalFsync && hook_on.load(Ordering::SeqCst) {
            hook_calls.fetch_add(1, Ordering::SeqCst);
            Err(std::io::Error::other("injected EIO"))
        } else {
            Ok(())
        }
    })));
    let e = store.append("d", rows(5..8)).unwrap_err();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the append waited for its fsync"
    );
    assert!(matches!(e, StoreError::Io { .. }), "{e}");
    assert!(
        store.append("d", rows(8..9)).is_err(),
        "down after a failed fsync"
    );
    on.store(false, Ordering::SeqCst);
    wait_for_retry();
    // The un-acknowledged rows may or may not have reached the disk; sending them again
    // never conflicts and never stores them twice.
    let out = store.append("d", rows(5..9)).unwrap();
    assert_eq!(out.stored + out.duplicates, 4);
    store.close().unwrap();
    assert_eq!(stored_ids(&dir.path().join("d")), ids_of(0..9));
}

#[test]
fn a_dataset_that_cannot_be_recovered_does_not_stop_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    store.append("bad", rows(0..3)).unwrap();
    store.append("good", rows(0..3)).unwrap();
    drop(store);
    // A manifest that no longer parses (a bad manual edit, a bad disk block): recovery fails.
    let wal_dir = dir.path().join("bad").join("_wal");
    let seg = std::fs::read_dir(&wal_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest = dir.path().join("bad").join("_manifest.json");
    let saved = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, b"{ not json").unwrap();
    let store = LabelStore::open(dir.path(), teacher(), options(100)).unwrap();
    assert!(seg.exists(), "the bad dataset's log is kept");
    assert_eq!(store.append("good", rows(3..5)).unwrap().stored, 2);
    let e = store.append("bad", rows(3..4)).unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e}");
    assert_eq!(store.faults().len(), 1);
    assert_eq!(store.list().unwrap().len(), 2);
    // Repaired by hand: the next call after the retry delay recovers it in place.
    std::fs::write(&manifest, saved).unwrap();
    wait_for_retry();
    assert_eq!(store.append("bad", rows(3..4)).unwrap().stored, 1);
    store.close().unwrap();
    assert_eq!(stored_ids(&dir.path().join("bad")), ids_of(0..4));
    assert_eq!(stored_ids(&dir.path().join("good")), ids_of(0..5));
}

#[test]
fn a_slow_encoder_makes_appends_wait_within_the_backlog_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(1_000_000);
    o.encode_backlog_bytes = 1; // every batch waits for the one before it
    let store = LabelStore::open(dir.path(), teacher(), o).unwrap();
    store.inject_faults(Some(Arc::new(|p| {
        if p == FaultPoint::ShardWrite {
            std::thread::sleep(Duration::from_millis(30));
        }
        Ok(())
    })));
    let mut waited = Duration::ZERO;
    for k in 0..5 {
        let (_, t) = store.append_timed("d", rows(k * 2..k * 2 + 2)).unwrap();
        waited += t.backlog_wait;
        let backlog = store.stats().encode_backlog_bytes;
        // At most the batch just queued (one batch larger than the bound goes in alone).
        assert!(backlog < 4096, "backlog {backlog} bytes");
    }
    assert!(waited > Duration::ZERO, "appends waited for the encoder");
    let m = store.seal("d").unwrap();
    assert_eq!(m.rows, 10);
    assert!(store.stats().parquet_encode > Duration::ZERO);
    store.close().unwrap();
}
