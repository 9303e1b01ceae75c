//! Group commit of a dataset's write-ahead log: concurrent appends write their records under
//! the dataset's lock, then wait here, outside it, until an fsync that started after their
//! bytes were written has finished. One waiter at a time runs the fsync (of every segment
//! written since the last one) for everybody whose bytes it covers; the others sleep until
//! the durable position passes theirs. So N concurrent appends cost about one fsync, not N,
//! and none returns before its own bytes are on disk.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::manifest::{corrupt, io_err};
use super::StoreError;

/// Counters shared by every dataset of a store.
#[derive(Default)]
pub(crate) struct Counters {
    fsyncs: AtomicU64,
    commits: AtomicU64,
    wal_bytes: AtomicU64,
    hook: Mutex<Option<SyncHook>>,
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
}

impl Counters {
    pub(crate) fn observe(&self, hook: SyncHook) {
        *self.hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    fn hook(&self) -> Option<SyncHook> {
        self.hook.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            wal_fsyncs: self.fsyncs.load(Ordering::Relaxed),
            group_commits: self.commits.load(Ordering::Relaxed),
            wal_bytes: self.wal_bytes.load(Ordering::Relaxed),
        }
    }
}

/// An observer of every write-ahead log fsync, called before it starts and after it returned
/// (what a test uses to check that no append is acknowledged before its bytes are synced).
pub type SyncHook = Arc<dyn Fn(SyncPoint<'_>) + Send + Sync>;

/// Where an fsync stands, for a [`SyncHook`].
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
    /// acknowledged until the store is reopened (which replays what the log holds).
    failed: Option<String>,
}

/// The group commit of one dataset's log.
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
    counters: Arc<Counters>,
}

/// What one wait did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Waited {
    /// fsync rounds this caller ran itself (0 when another caller's covered its bytes).
    pub rounds: u32,
}

impl GroupCommit {
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
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
    pub(crate) fn failure(&self) -> Option<String> {
        self.lock().failed.clone()
    }

    /// Returns once everything up to `ticket` is durable, running the fsync itself when no
    /// other caller is.
    pub(crate) fn wait(&self, ticket: u64) -> Result<Waited, StoreError> {
        let mut waited = Waited::default();
        let mut st = self.lock();
        loop {
            if let Some(f) = &st.failed {
                return Err(corrupt(
                    Path::new(&f.clone()),
                    "syncing the write-ahead log failed; reopen the store to recover the logged rows",
                ));
            }
            if st.synced >= ticket {
                return Ok(waited);
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
                Err((path, e)) => {
                    st.failed = Some(path.display().to_string());
                    self.done.notify_all();
                    return Err(e);
                }
            }
            self.done.notify_all();
        }
    }

    fn sync(&self, files: &[(PathBuf, Arc<File>)]) -> Result<(), (PathBuf, StoreError)> {
        for (path, file) in files {
            let hook = self.counters.hook();
            // The length before the fsync is what it is guaranteed to cover.
            let len = match &hook {
                Some(h) => {
                    h(SyncPoint::Before(path));
                    file.metadata().map(|m| m.len()).unwrap_or(0)
                }
                None => 0,
            };
            file.sync_data()
                .map_err(|e| (path.clone(), io_err(path, e)))?;
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
            if let Some(h) = &hook {
                h(SyncPoint::After(path, len));
            }
        }
        Ok(())
    }
}
