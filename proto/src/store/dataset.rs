//! One dataset's writer state: recovery at open (WAL replay), durable appends, shard rolling,
//! sealing.
//!
//! An append writes its log records under the dataset's lock, hands the rows to the dataset's
//! background encoder ([`super::encoder`]) and returns a ticket; the caller then waits for the
//! group commit ([`super::commit`]) outside the lock, so the fsync of one append overlaps the
//! log writes of the next ones, concurrent appends share an fsync, and Parquet encoding runs
//! on its own thread. Which shard a row goes to is decided here, at log time (one log segment
//! per shard), so the log alone says how to rebuild every unfinished shard. A shard finished
//! before its rows' log fsync is fine: the shard itself is fsync'd and in the manifest before
//! its log segment is deleted.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, BooleanArray, FixedSizeBinaryArray, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::commit::{Counters, FaultPoint, GroupCommit};
use super::digest::{DigestAlgorithm, RowDigest, DIGEST_LEN};
use super::encoder::Encoder;
use super::manifest::{
    corrupt, fingerprint_differences, io_err, read_manifest, shard_metadata, sync_dir,
    write_manifest, MANIFEST_FILE,
};
use super::rows::Prepared;
use super::shard::{shard_index, shard_name, ShardWriter};
use super::wal::{
    read_segment, remove_segment, segment_index, segment_name, WalSegment, PROVIDER_KEY,
};
use super::{
    AppendOutcome, ColumnInfo, Fault, Manifest, StoreError, StoreOptions, TeacherFingerprint,
    DIGEST_COLUMN, SCHEMA_VERSION,
};

/// The log segment being filled: the open shard's rows, as logged.
struct OpenSegment {
    index: u64,
    wal: WalSegment,
    rows: u64,
    bytes: u64,
    /// Execution provider of its rows: a shard holds rows of one provider only.
    provider: Arc<str>,
}

/// A dataset folder and what is known about it in memory.
pub(crate) struct Dataset {
    name: String,
    dir: PathBuf,
    /// The teacher the dataset was made by (the manifest's, fixed at creation).
    teacher: TeacherFingerprint,
    digest: DigestAlgorithm,
    /// Fixed by the first rows; `None` while the dataset holds none.
    schema: Option<SchemaRef>,
    ids: HashMap<String, RowDigest>,
    next_shard: u64,
    open: Option<OpenSegment>,
    /// Segments created for shards after the open one (an append that spans a roll).
    ahead: BTreeMap<u64, WalSegment>,
    /// Set when undoing a failed log write failed too: the log may end in a torn record, so
    /// nothing more may be appended after it until the dataset is recovered from disk.
    broken: Option<Fault>,
    /// The log's group commit (waited on outside the dataset's lock).
    commit: Arc<GroupCommit>,
    /// Encodes logged rows into shards in the background; owns the manifest.
    encoder: Encoder,
    counters: Arc<Counters>,
}

/// What a dataset's part of an append did, before the caller waits for durability.
pub(crate) struct Logged {
    /// Rows newly logged and skipped.
    pub outcome: AppendOutcome,
    /// The group-commit ticket to wait for before acknowledging.
    pub ticket: u64,
    /// The group commit to wait on.
    pub commit: Arc<GroupCommit>,
    /// Time spent encoding and writing log records.
    pub wal_write: Duration,
    /// Time spent waiting for room in the encoder's backlog.
    pub backlog_wait: Duration,
}

/// Folder of the write-ahead log segments inside a dataset folder (`_` so readers skip it).
const WAL_DIR: &str = "_wal";

fn wal_dir(dir: &Path) -> PathBuf {
    dir.join(WAL_DIR)
}

/// Reads the `id` and digest columns of a finished shard.
fn read_ids(path: &Path) -> Result<(SchemaRef, Vec<(String, RowDigest)>), StoreError> {
    let file = fs::File::open(path).map_err(|e| io_err(path, e))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| corrupt(path, format!("not a readable Parquet file: {e}")))?;
    let schema = b.schema().clone();
    let idx_of = |n: &str| {
        schema
            .index_of(n)
            .map_err(|_| corrupt(path, format!("shard has no {n:?} column")))
    };
    let (ii, di) = (idx_of("id")?, idx_of(DIGEST_COLUMN)?);
    let mask = ProjectionMask::roots(b.parquet_schema(), [ii, di]);
    let reader = b
        .with_projection(mask)
        .with_batch_size(8192)
        .build()
        .map_err(|e| corrupt(path, e.to_string()))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(path, e.to_string()))?;
        out.extend(ids_and_digests(&batch).map_err(|m| corrupt(path, m))?);
    }
    Ok((strip_metadata(&schema), out))
}

/// The ids and digests of a batch in the stored layout.
fn ids_and_digests(batch: &RecordBatch) -> Result<Vec<(String, RowDigest)>, String> {
    let ids = batch
        .column_by_name("id")
        .and_then(|a| a.as_any().downcast_ref::<StringArray>())
        .ok_or("column \"id\" is missing or not Utf8")?;
    let dig = batch
        .column_by_name(DIGEST_COLUMN)
        .and_then(|a| a.as_any().downcast_ref::<FixedSizeBinaryArray>())
        .filter(|a| a.value_length() as usize == DIGEST_LEN)
        .ok_or_else(|| format!("column {DIGEST_COLUMN:?} is missing or not FixedSizeBinary(16)"))?;
    if ids.null_count() > 0 || dig.null_count() > 0 {
        return Err("null ids or digests".into());
    }
    Ok((0..batch.num_rows())
        .map(|i| {
            let mut d = [0u8; DIGEST_LEN];
            d.copy_from_slice(dig.value(i));
            (ids.value(i).to_string(), d)
        })
        .collect())
}

/// The schema without key-value metadata (shards carry theirs; batches do not).
fn strip_metadata(s: &SchemaRef) -> SchemaRef {
    std::sync::Arc::new(arrow::datatypes::Schema::new(s.fields().clone()))
}

/// What recovery rebuilds from the shards and the log before the dataset starts.
struct Rebuilt {
    manifest: Manifest,
    schema: Option<SchemaRef>,
    ids: HashMap<String, RowDigest>,
    next_shard: u64,
}

impl Rebuilt {
    /// Writes the rows of one log segment into shard `index`, finishes it and drops the log.
    fn replay_segment(
        &mut self,
        dir: &Path,
        index: u64,
        path: &Path,
        options: &StoreOptions,
        counters: &Arc<Counters>,
    ) -> Result<(), StoreError> {
        let mut writer: Option<ShardWriter> = None;
        let mut rows = 0u64;
        let torn = read_segment(path, |batch| {
            let provider = batch
                .schema_ref()
                .metadata()
                .get(PROVIDER_KEY)
                .cloned()
                .unwrap_or_else(|| self.manifest.teacher.provider.clone());
            let pairs = ids_and_digests(&batch).map_err(|m| corrupt(path, m))?;
            // Ids already stored are skipped (a log never repeats one, but be safe).
            let keep: Vec<bool> = pairs
                .iter()
                .map(|(id, _)| !self.ids.contains_key(id))
                .collect();
            let batch = if keep.iter().all(|&k| k) {
                batch
            } else {
                filter_record_batch(&batch, &BooleanArray::from(keep.clone()))?
            };
            if batch.num_rows() == 0 {
                return Ok(());
            }
            let schema = strip_metadata(batch.schema_ref());
            match &self.schema {
                Some(s) if s.fields() != schema.fields() => {
                    return Err(corrupt(
                        path,
                        "logged rows do not match the dataset's columns",
                    ));
                }
                None => self.schema = Some(schema.clone()),
                _ => {}
            }
            let w = match writer.as_mut() {
                Some(w) => w,
                None => writer.insert(ShardWriter::create(
                    dir,
                    index,
                    schema,
                    options,
                    shard_metadata(&self.manifest, dir, &provider)?,
                    &self.manifest.columns,
                    counters.clone(),
                )?),
            };
            w.write(&batch)?;
            for ((id, d), k) in pairs.into_iter().zip(keep) {
                if k {
                    self.ids.insert(id, d);
                }
            }
            rows += batch.num_rows() as u64;
            Ok(())
        });
        let torn = match torn {
            Ok(t) => t,
            Err(e) => {
                if let Some(w) = writer {
                    w.abandon();
                }
                return Err(e);
            }
        };
        if torn > 0 {
            tracing::warn!(file = %path.display(), bytes = torn, "dropped a torn write-ahead log tail (never acknowledged)");
        }
        if let Some(w) = writer {
            let info = w.finish()?;
            self.manifest.rows += info.rows;
            self.manifest.shards.push(info);
            write_manifest(dir, &self.manifest)?;
            tracing::info!(dataset = %self.manifest.dataset, shard = index, rows, "replayed write-ahead log into a shard");
        }
        remove_segment(path)?;
        sync_dir(&wal_dir(dir))?;
        self.next_shard = self.next_shard.max(index + 1);
        Ok(())
    }
}

impl Dataset {
    /// A new, empty dataset: creates its folder and writes its manifest.
    pub(crate) fn create(
        data_dir: &Path,
        name: &str,
        teacher: &TeacherFingerprint,
        columns: Vec<ColumnInfo>,
        digest: DigestAlgorithm,
        options: &StoreOptions,
        counters: Arc<Counters>,
    ) -> Result<Self, StoreError> {
        let dir = data_dir.join(name);
        fs::create_dir_all(wal_dir(&dir)).map_err(|e| io_err(&dir, e))?;
        sync_dir(data_dir)?;
        let manifest = Manifest {
            schema_version: SCHEMA_VERSION,
            dataset: name.to_string(),
            teacher: teacher.clone(),
            columns,
            rows: 0,
            pending_rows: 0,
            shards: Vec::new(),
            input_digest: digest,
        };
        write_manifest(&dir, &manifest)?;
        Self::start(
            &dir,
            Rebuilt {
                manifest,
                schema: None,
                ids: HashMap::new(),
                next_shard: 0,
            },
            options,
            counters,
        )
    }

    fn start(
        dir: &Path,
        rebuilt: Rebuilt,
        options: &StoreOptions,
        counters: Arc<Counters>,
    ) -> Result<Self, StoreError> {
        let Rebuilt {
            manifest,
            schema,
            ids,
            next_shard,
        } = rebuilt;
        let name = manifest.dataset.clone();
        Ok(Self {
            teacher: manifest.teacher.clone(),
            digest: manifest.input_digest,
            schema,
            ids,
            next_shard,
            open: None,
            ahead: BTreeMap::new(),
            broken: None,
            commit: Arc::new(GroupCommit::new(counters.clone(), &name)),
            encoder: Encoder::start(dir, &name, manifest, options, counters.clone())?,
            counters,
            name,
            dir: dir.to_path_buf(),
        })
    }

    /// Opens an existing dataset folder: removes leftover `.tmp` files, rebuilds the id map
    /// from the shards, and replays the write-ahead log into finished shards.
    pub(crate) fn recover(
        dir: &Path,
        name: &str,
        options: &StoreOptions,
        counters: Arc<Counters>,
    ) -> Result<Self, StoreError> {
        let mut manifest = read_manifest(&dir.join(MANIFEST_FILE))?;
        if manifest.dataset != name {
            // A folder copied or renamed by hand: its shards name another dataset.
            manifest.dataset = name.to_string();
        }
        let listed: HashMap<&str, ()> = manifest
            .shards
            .iter()
            .map(|s| (s.file.as_str(), ()))
            .collect();
        let wal = wal_dir(dir);
        fs::create_dir_all(&wal).map_err(|e| io_err(&wal, e))?;
        let mut segments: BTreeMap<u64, PathBuf> = BTreeMap::new();
        for e in fs::read_dir(&wal).map_err(|e| io_err(&wal, e))? {
            let e = e.map_err(|e| io_err(&wal, e))?;
            let fname = e.file_name().to_string_lossy().to_string();
            if let Some(i) = segment_index(&fname) {
                segments.insert(i, e.path());
            }
        }
        let mut max_index: Option<u64> = None;
        for s in &manifest.shards {
            let i = shard_index(&s.file).ok_or_else(|| {
                corrupt(
                    &dir.join(MANIFEST_FILE),
                    format!("bad shard name {:?}", s.file),
                )
            })?;
            max_index = max_index.max(Some(i));
        }
        for e in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let e = e.map_err(|e| io_err(dir, e))?;
            let fname = e.file_name().to_string_lossy().to_string();
            let path = e.path();
            if fname.ends_with(".tmp") {
                // A shard or manifest cut short by a crash; its rows are still in the WAL.
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            } else if let Some(i) = shard_index(&fname) {
                if !listed.contains_key(fname.as_str()) {
                    if segments.contains_key(&i) {
                        // Renamed but not yet in the manifest: the WAL still has its rows.
                        fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                    } else {
                        let orphan = dir.join(format!("{fname}.orphan"));
                        tracing::warn!(file = %path.display(), "shard not in the manifest and no log to rebuild it: renamed to .orphan");
                        fs::rename(&path, &orphan).map_err(|e| io_err(&path, e))?;
                        max_index = max_index.max(Some(i));
                    }
                }
            }
        }
        sync_dir(dir)?;

        let mut rebuilt = Rebuilt {
            manifest,
            schema: None,
            ids: HashMap::new(),
            next_shard: max_index.map_or(0, |i| i + 1),
        };
        for s in rebuilt.manifest.shards.clone() {
            let path = dir.join(&s.file);
            if !path.is_file() {
                return Err(corrupt(&path, "listed in the manifest but missing"));
            }
            let (schema, ids) = read_ids(&path)?;
            if rebuilt.schema.is_none() {
                rebuilt.schema = Some(schema);
            }
            rebuilt.ids.extend(ids);
        }

        for (i, path) in segments {
            let shard_done = rebuilt
                .manifest
                .shards
                .iter()
                .any(|s| s.file == shard_name(i));
            if shard_done {
                remove_segment(&path)?;
                continue;
            }
            rebuilt.replay_segment(dir, i, &path, options, &counters)?;
        }
        rebuilt.manifest.pending_rows = 0;
        Self::start(dir, rebuilt, options, counters)
    }

    /// The manifest with the current pending row count, once the rows queued so far are
    /// encoded (so finished shards are listed as soon as an append that filled them returns).
    pub(crate) fn manifest(&self) -> Result<Manifest, StoreError> {
        self.encoder.drain().map_err(|f| self.unavailable(f))?;
        Ok(self.snapshot())
    }

    /// The manifest as it stands, without waiting for the encoder.
    fn snapshot(&self) -> Manifest {
        let ids = self.ids.len() as u64;
        self.encoder.with_manifest(|m| {
            let mut m = m.clone();
            m.pending_rows = ids.saturating_sub(m.rows);
            m
        })
    }

    /// How this dataset's input digests are computed.
    pub(crate) fn digest(&self) -> DigestAlgorithm {
        self.digest
    }

    /// Why this dataset cannot take writes now, if it cannot: a failed log fsync, a failed
    /// shard write, or a log that could not be cut back. The store then recovers it from disk.
    pub(crate) fn fault(&self) -> Option<Fault> {
        self.broken
            .clone()
            .or_else(|| self.commit.failure())
            .or_else(|| self.encoder.failure())
    }

    fn unavailable(&self, fault: Fault) -> StoreError {
        StoreError::Unavailable {
            dataset: self.name.clone(),
            fault,
        }
    }

    /// Logs prepared rows and queues them for encoding; the caller must wait for the returned
    /// ticket before acknowledging (see `LabelStore::append` for the contract).
    pub(crate) fn append(
        &mut self,
        teacher: &TeacherFingerprint,
        prepared: Prepared,
        options: &StoreOptions,
    ) -> Result<Logged, StoreError> {
        if let Some(f) = self.fault() {
            return Err(self.unavailable(f));
        }
        if prepared.digest_algorithm != self.digest {
            return Err(corrupt(
                &self.dir,
                format!(
                    "rows digested with {} for a dataset using {}",
                    prepared.digest_algorithm.name(),
                    self.digest.name()
                ),
            ));
        }
        let diffs = fingerprint_differences(&self.teacher, teacher);
        if !diffs.is_empty() {
            return Err(StoreError::TeacherMismatch {
                dataset: self.name.clone(),
                message: diffs.join("; "),
            });
        }
        let batch = self.conform(prepared.batch, &prepared.columns)?;

        // Idempotency: same id + same digest is a duplicate; a different digest fails the call.
        let mut keep = Vec::with_capacity(prepared.ids.len());
        for (id, d) in prepared.ids.iter().zip(&prepared.digests) {
            match self.ids.get(id) {
                Some(old) if old == d => keep.push(false),
                Some(_) => {
                    return Err(StoreError::IdConflict {
                        dataset: self.name.clone(),
                        id: id.clone(),
                    })
                }
                None => keep.push(true),
            }
        }
        let duplicates = keep.iter().filter(|k| !**k).count();
        let stored = keep.len() - duplicates;
        if stored == 0 {
            // The rows may be another call's, logged but not yet durable: wait for them too.
            return Ok(Logged {
                outcome: AppendOutcome { stored, duplicates },
                ticket: self.commit.ticket(),
                commit: self.commit.clone(),
                wal_write: Duration::ZERO,
                backlog_wait: Duration::ZERO,
            });
        }
        let batch = if duplicates > 0 {
            filter_record_batch(&batch, &BooleanArray::from(keep.clone()))?
        } else {
            batch
        };

        // Split at shard row limits: chunk j goes to shard first + j.
        let max = options.shard_max_rows.max(1) as u64;
        // Rows of another provider than the open shard's start a new shard.
        let open = self
            .open
            .as_ref()
            .filter(|o| *o.provider == *teacher.provider);
        let first = match (&self.open, open) {
            (_, Some(o)) => o.index,
            (Some(o), None) => o.index + 1,
            (None, None) => self.next_shard,
        };
        let mut room = open.map_or(max, |o| max.saturating_sub(o.rows).max(1));
        let mut chunks: Vec<(u64, RecordBatch)> = Vec::new();
        let mut off = 0usize;
        let mut idx = first;
        while off < batch.num_rows() {
            let take = (room as usize).min(batch.num_rows() - off);
            chunks.push((idx, batch.slice(off, take)));
            off += take;
            idx += 1;
            room = max;
        }

        let t0 = Instant::now();
        let provider: Arc<str> = Arc::from(teacher.provider.as_str());
        let (ticket, sizes) = self.log(&chunks, &provider)?;
        let wal_write = t0.elapsed();
        for ((id, d), k) in prepared.ids.into_iter().zip(prepared.digests).zip(keep) {
            if k {
                self.ids.insert(id, d);
            }
        }
        if self.schema.is_none() {
            self.schema = Some(strip_metadata(batch.schema_ref()));
        }
        // The rows are in the log now; from here on nothing can fail the call but its fsync.
        let backlog_wait = self.enqueue(chunks, sizes, &provider, options);
        Ok(Logged {
            outcome: AppendOutcome { stored, duplicates },
            ticket,
            commit: self.commit.clone(),
            wal_write,
            backlog_wait,
        })
    }

    /// Checks the batch against the dataset's columns and puts it in the dataset's order.
    fn conform(
        &mut self,
        batch: RecordBatch,
        columns: &[ColumnInfo],
    ) -> Result<RecordBatch, StoreError> {
        let Some(schema) = self.schema.clone() else {
            // First rows: they fix the columns (the manifest may hold those of an append that
            // never made it to the log, so rewrite it).
            let dir = self.dir.clone();
            self.encoder.with_manifest(|m| {
                if columns != m.columns.as_slice() {
                    m.columns = columns.to_vec();
                    write_manifest(&dir, m)?;
                }
                Ok::<_, StoreError>(())
            })?;
            return Ok(batch);
        };
        let mismatch = |message: String| StoreError::SchemaMismatch {
            dataset: self.name.clone(),
            message,
        };
        let given = batch.schema();
        for f in given.fields() {
            if schema.field_with_name(f.name()).is_err() {
                return Err(mismatch(format!(
                    "column {:?} is not one of the dataset's columns",
                    f.name()
                )));
            }
        }
        let mut arrays = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            let Some(a) = batch.column_by_name(f.name()) else {
                return Err(mismatch(format!("column {:?} is missing", f.name())));
            };
            if a.data_type() != f.data_type() {
                return Err(mismatch(format!(
                    "column {:?} is {} in the dataset but {} in these rows",
                    f.name(),
                    f.data_type(),
                    a.data_type()
                )));
            }
            if !f.is_nullable() && a.null_count() > 0 {
                return Err(mismatch(format!(
                    "column {:?} may not hold nulls",
                    f.name()
                )));
            }
            arrays.push(a.clone());
        }
        Ok(RecordBatch::try_new(schema, arrays)?)
    }

    /// Writes every chunk to its log segment (made durable by the group commit, not here);
    /// on failure undoes what it wrote. Returns the group-commit ticket of the writes and
    /// the bytes each chunk took in the log.
    fn log(
        &mut self,
        chunks: &[(u64, RecordBatch)],
        provider: &str,
    ) -> Result<(u64, Vec<u64>), StoreError> {
        let mut before: Vec<(u64, u64)> = Vec::new();
        let mut created: Vec<u64> = Vec::new();
        let mut wrote: Vec<(u64, u64)> = Vec::new();
        let counters = self.counters.clone();
        let result = (|| {
            for (idx, b) in chunks {
                let seg = self.segment(*idx, &mut created)?;
                before.push((*idx, seg.len()));
                counters
                    .fault(FaultPoint::WalAppend)
                    .map_err(|e| io_err(seg.path(), e))?;
                // The record names its provider, so replay stamps the shard right.
                let schema = b
                    .schema_ref()
                    .as_ref()
                    .clone()
                    .with_metadata(HashMap::from([(
                        PROVIDER_KEY.to_string(),
                        provider.to_string(),
                    )]));
                let n = seg.append(&b.clone().with_schema(Arc::new(schema))?)?;
                wrote.push((*idx, n));
            }
            if !created.is_empty() {
                // New segments' names must be durable too; rare (once per shard).
                sync_dir(&wal_dir(&self.dir))?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.undo(before, created);
            return Err(e);
        }
        let mut ticket = self.commit.ticket();
        for &(idx, n) in &wrote {
            let seg = self.segment(idx, &mut Vec::new())?;
            let (path, file) = (seg.path().to_path_buf(), seg.file().clone());
            ticket = self.commit.written(&path, &file, n);
        }
        Ok((ticket, wrote.into_iter().map(|(_, n)| n).collect()))
    }

    /// Cuts segments back to their lengths before a failed log write and removes the ones it
    /// created. If that fails the log may end in a torn record that later appends would sit
    /// behind (and replay would drop them with it), so the dataset takes no more writes until
    /// it is recovered from disk, where replay drops the torn tail.
    fn undo(&mut self, before: Vec<(u64, u64)>, created: Vec<u64>) {
        let mut failed: Option<StoreError> = None;
        for (idx, len) in before.into_iter().rev() {
            if created.contains(&idx) {
                continue;
            }
            let counters = self.counters.clone();
            let r = self.segment(idx, &mut Vec::new()).and_then(|seg| {
                counters
                    .fault(FaultPoint::WalTruncate)
                    .map_err(|e| io_err(seg.path(), e))?;
                seg.truncate(len)
            });
            if let Err(e) = r {
                failed.get_or_insert(e);
            }
        }
        for idx in created {
            if let Some(seg) = self.ahead.remove(&idx) {
                if let Err(e) = remove_segment(seg.path()) {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            tracing::error!(dataset = %self.name, error = %e, "cutting the write-ahead log back after a failed write failed; the dataset takes no writes until it is recovered");
            self.broken = Some(Fault::of(&e));
        }
    }

    /// The log segment of shard `idx` (the open one's, or one created ahead).
    fn segment(&mut self, idx: u64, created: &mut Vec<u64>) -> Result<&mut WalSegment, StoreError> {
        if self.open.as_ref().is_some_and(|o| o.index == idx) {
            if let Some(o) = self.open.as_mut() {
                return Ok(&mut o.wal);
            }
        }
        if !self.ahead.contains_key(&idx) {
            let seg = WalSegment::create(wal_dir(&self.dir).join(segment_name(idx)))?;
            self.ahead.insert(idx, seg);
            created.push(idx);
        }
        self.ahead
            .get_mut(&idx)
            .ok_or_else(|| corrupt(&self.dir, "log segment vanished"))
    }

    /// Hands the logged chunks to the encoder, rolling to a new shard as the limits (rows,
    /// log bytes) are reached. Returns the time spent waiting for room in the backlog.
    fn enqueue(
        &mut self,
        chunks: Vec<(u64, RecordBatch)>,
        sizes: Vec<u64>,
        provider: &Arc<str>,
        options: &StoreOptions,
    ) -> Duration {
        let mut waited = Duration::ZERO;
        for ((idx, b), n) in chunks.into_iter().zip(sizes) {
            if self.open.as_ref().is_some_and(|o| o.index != idx) {
                self.finish_open();
            }
            if self.open.is_none() {
                // `log` created the segment; it is there unless the map is inconsistent, in
                // which case the rows stay in the log for recovery.
                let Some(wal) = self.ahead.remove(&idx) else {
                    self.broken = Some(Fault::io(format!("no log segment for shard {idx}")));
                    return waited;
                };
                self.open = Some(OpenSegment {
                    index: idx,
                    wal,
                    rows: 0,
                    bytes: 0,
                    provider: provider.clone(),
                });
            }
            let rows = b.num_rows() as u64;
            waited += self.encoder.rows(idx, b, n, provider.clone());
            if let Some(o) = self.open.as_mut() {
                o.rows += rows;
                o.bytes += n;
                if o.rows >= options.shard_max_rows.max(1) as u64
                    || o.bytes >= options.shard_max_bytes
                {
                    self.finish_open();
                }
            }
        }
        waited
    }

    /// Ends the open segment: the encoder finishes its shard and then removes the segment.
    fn finish_open(&mut self) {
        if let Some(o) = self.open.take() {
            self.encoder.finish(o.index, o.wal.path().to_path_buf());
            self.next_shard = self.next_shard.max(o.index + 1);
        }
    }

    /// Finishes the open shard, if any, waits for the encoder, and returns the manifest.
    pub(crate) fn seal(&mut self) -> Result<Manifest, StoreError> {
        if let Some(f) = self.fault() {
            return Err(self.unavailable(f));
        }
        self.finish_open();
        self.manifest()
    }

    /// Rows stored (finished + pending) and finished shards.
    pub(crate) fn summary(&self) -> (u64, usize) {
        let shards = self.encoder.with_manifest(|m| m.shards.len());
        (self.ids.len() as u64, shards)
    }
}
