//! Group commit of a dataset's write-ahead log: concurrent appends write their records under
//! the dataset's lock, then wait here, outside it, until an fsync that started after their
//! bytes were written has finished. One waiter at a time runs the fsync (of every segment
//! written since the last one) for everybody whose bytes it covers; the others sleep until
//! the durable position passes theirs. So N concurrent appends cost about one fsync, not N,
//! and none returns before its own bytes are on disk.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::manifest::io_err;
use super::{Fault, StoreError};

/// Counters shared by every dataset of a store.
#[derive(Default)]
pub(crate) struct Counters {
    fsyncs: AtomicU64,
    commits: AtomicU64,
    wal_bytes: AtomicU64,
    encode_nanos: AtomicU64,
    backlog_bytes: AtomicI64,
    #[cfg(feature = "fault-injection")]
    hook: Mutex<Option<SyncHook>>,
    #[cfg(feature = "fault-injection")]
    faults: Mutex<Option<FaultHook>>,
}

/// What a store has done since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// `fsync` calls on write-ahead log segments.
    pub wal_fsyncs: u64,
    /// Group commits: rounds of fsyncs, each making the appends written before it durable.
    pub group_commits: u64,
    /// Bytes appended to write-ahead log segments.
    pub wal_bytes: u64,
    /// Time the background encoders spent encoding rows into Parquet and finishing shards.
    pub parquet_encode: Duration,
    /// Log bytes of rows waiting for (or in) the background encoders now.
    pub encode_backlog_bytes: u64,
}

/// A failpoint: asked before each write the store makes; an `Err` is returned in place of the
/// write (how tests simulate a full disk or a failing fsync at an exact point). Only with the
/// `fault-injection` feature, which proto's own tests turn on.
#[cfg(feature = "fault-injection")]
pub type FaultHook = Arc<dyn Fn(FaultPoint) -> std::io::Result<()> + Send + Sync>;

/// The writes a failpoint can fail (named at every write so the hook, when compiled in, can
/// pick one; without the `fault-injection` feature the points cost nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// Appending a record to a write-ahead log segment.
    WalAppend,
    /// Cutting a segment back after a failed append.
    WalTruncate,
    /// fsync of a log segment (group commit).
    WalFsync,
    /// Encoding rows into the open Parquet shard.
    ShardWrite,
    /// Finishing a shard (footer, fsync, rename, manifest).
    ShardFinish,
}

impl Counters {
    #[cfg(feature = "fault-injection")]
    pub(crate) fn observe(&self, hook: SyncHook) {
        *self.hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    #[cfg(feature = "fault-injection")]
    fn hook(&self) -> Option<SyncHook> {
        self.hook.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    #[cfg(feature = "fault-injection")]
    pub(crate) fn inject(&self, hook: Option<FaultHook>) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// The failpoint at `point`: `Ok` unless a test's hook fails it.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn fault(&self, point: FaultPoint) -> std::io::Result<()> {
        let hook = self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        hook.map_or(Ok(()), |h| h(point))
    }

    /// The failpoint at `point`: always `Ok` in builds without the `fault-injection` feature.
    #[cfg(not(feature = "fault-injection"))]
    #[inline(always)]
    pub(crate) fn fault(&self, _point: FaultPoint) -> std::io::Result<()> {
        Ok(())
    }

    pub(crate) fn encoded(&self, took: Duration) {
        self.encode_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn backlog(&self, delta: i64) {
        self.backlog_bytes.fetch_add(delta, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            wal_fsyncs: self.fsyncs.load(Ordering::Relaxed),
            group_commits: self.commits.load(Ordering::Relaxed),
            wal_bytes: self.wal_bytes.load(Ordering::Relaxed),
            parquet_encode: Duration::from_nanos(self.encode_nanos.load(Ordering::Relaxed)),
            encode_backlog_bytes: self.backlog_bytes.load(Ordering::Relaxed).max(0) as u64,
        }
    }
}

/// An observer of every write-ahead log fsync, called before it starts and after it returned
/// (what a test uses to check that no append is acknowledged before its bytes are synced).
/// Only with the `fault-injection` feature.
#[cfg(feature = "fault-injection")]
pub type SyncHook = Arc<dyn Fn(SyncPoint<'_>) + Send + Sync>;

/// Where an fsync stands, for a [`SyncHook`].
#[cfg(feature = "fault-injection")]
#[derive(Debug)]
pub enum SyncPoint<'a> {
    /// About to sync this segment.
    Before(&'a Path),
    /// This segment is durable up to this many bytes (its length when the sync started).
    After(&'a Path, u64),
}

struct State {
    /// Bytes written to the log so far (all segments of the dataset, a running total).
    written: u64,
    /// Bytes known durable.
    synced: u64,
    /// Whether a waiter is running an fsync now.
    syncing: bool,
    /// Segments written since the last fsync started.
    dirty: Vec<(PathBuf, Arc<File>)>,
    /// Set when an fsync failed: what was written may not be durable, so nothing more is
    /// acknowledged by this log (the dataset recovers in place, replaying what it holds).
    failed: Option<Fault>,
}

/// The group commit of one dataset's log.
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
    counters: Arc<Counters>,
    dataset: String,
}

/// What one wait did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Waited {
    /// fsync rounds this caller ran itself (0 when another caller's covered its bytes).
    pub rounds: u32,
}

impl GroupCommit {
    pub(crate) fn new(counters: Arc<Counters>, dataset: &str) -> Self {
        Self {
            state: Mutex::new(State {
                written: 0,
                synced: 0,
                syncing: false,
                dirty: Vec::new(),
                failed: None,
            }),
            done: Condvar::new(),
            counters,
            dataset: dataset.to_string(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below is a plain field update; a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that `bytes` were written to `segment` (call after the write returned, under the
    /// dataset's lock); returns the ticket to wait for.
    pub(crate) fn written(&self, path: &Path, file: &Arc<File>, bytes: u64) -> u64 {
        self.counters.wal_bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut st = self.lock();
        st.written += bytes;
        if !st.dirty.iter().any(|(p, _)| p == path) {
            st.dirty.push((path.to_path_buf(), file.clone()));
        }
        st.written
    }

    /// The ticket covering everything written so far (a call that wrote nothing still waits
    /// for it: its duplicates may be rows whose fsync has not finished yet).
    pub(crate) fn ticket(&self) -> u64 {
        self.lock().written
    }

    /// Why appends are refused, if an fsync failed.
    pub(crate) fn failure(&self) -> Option<Fault> {
        self.lock().failed.clone()
    }

    /// Returns once everything up to `ticket` is durable, running the fsync itself when no
    /// other caller is.
    pub(crate) fn wait(&self, ticket: u64) -> Result<Waited, StoreError> {
        let mut waited = Waited::default();
        let mut st = self.lock();
        loop {
            // Bytes synced before a failure are durable: their append succeeded.
            if st.synced >= ticket {
                return Ok(waited);
            }
            if let Some(f) = &st.failed {
                return Err(StoreError::Unavailable {
                    dataset: self.dataset.clone(),
                    fault: f.clone(),
                });
            }
            if st.syncing {
                st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.syncing = true;
            let target = st.written;
            let files = std::mem::take(&mut st.dirty);
            drop(st);
            let result = self.sync(&files);
            st = self.lock();
            st.syncing = false;
            waited.rounds += 1;
            self.counters.commits.fetch_add(1, Ordering::Relaxed);
            match result {
                Ok(()) => st.synced = st.synced.max(target),
                Err(e) => {
                    tracing::error!(dataset = %self.dataset, error = %e, "syncing the write-ahead log failed; appends not yet durable fail, the dataset recovers in place");
                    st.failed = Some(Fault::of(&e));
                    self.done.notify_all();
                    return Err(e);
                }
            }
            self.done.notify_all();
        }
    }

    fn sync(&self, files: &[(PathBuf, Arc<File>)]) -> Result<(), StoreError> {
        for (path, file) in files {
            #[cfg(feature = "fault-injection")]
            let hook = self.counters.hook();
            // The length before the fsync is what it is guaranteed to cover.
            #[cfg(feature = "fault-injection")]
            let len = match &hook {
                Some(h) => {
                    h(SyncPoint::Before(path));
                    file.metadata().map(|m| m.len()).unwrap_or(0)
                }
                None => 0,
            };
            self.counters
                .fault(FaultPoint::WalFsync)
                .and_then(|()| file.sync_data())
                .map_err(|e| io_err(path, e))?;
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
            #[cfg(feature = "fault-injection")]
            if let Some(h) = &hook {
                h(SyncPoint::After(path, len));
            }
        }
        Ok(())
    }
}
