//! Reading a dataset back: a dataset folder, one shard, or a glob of shards, streamed as
//! record batches of chosen columns, one shard at a time.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::manifest::{
    corrupt, fingerprint_differences, io_err, read_manifest, ShardMetadata, MANIFEST_FILE,
    SHARD_METADATA_KEY,
};
use super::{ColumnInfo, Manifest, ShardInfo, StoreError, TeacherFingerprint, SCHEMA_VERSION};

/// A set of shards that share one schema and one teacher fingerprint.
#[derive(Debug, Clone)]
pub struct DatasetReader {
    files: Vec<PathBuf>,
    schema: SchemaRef,
    rows: u64,
    manifest: Option<Manifest>,
}

/// What the footer of one shard says.
struct ShardHead {
    schema: SchemaRef,
    rows: u64,
    bytes: u64,
    meta: Option<ShardMetadata>,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `*` and `?` wildcard match (no character classes).
fn wildcard(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some(p);
            mark = i;
            p += 1;
        } else if let Some(sp) = star {
            p = sp + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    while p < pat.len() && pat[p] == b'*' {
        p += 1;
    }
    p == pat.len()
}

fn list_dir(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let e = e.map_err(|e| io_err(dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        if keep(&name) && e.path().is_file() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

fn read_head(path: &Path) -> Result<ShardHead, StoreError> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let bytes = file.metadata().map_err(|e| io_err(path, e))?.len();
    let b = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| corrupt(path, format!("not a readable Parquet file: {e}")))?;
    let md = b.metadata().file_metadata();
    let rows = md.num_rows().max(0) as u64;
    let meta = match md
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == SHARD_METADATA_KEY))
        .and_then(|k| k.value.as_deref())
    {
        None => None,
        Some(json) => Some(
            serde_json::from_str::<ShardMetadata>(json)
                .map_err(|e| corrupt(path, format!("bad {SHARD_METADATA_KEY} metadata: {e}")))?,
        ),
    };
    if let Some(m) = &meta {
        if m.schema_version != SCHEMA_VERSION {
            return Err(corrupt(
                path,
                format!(
                    "schema version {} is not supported (this build reads {SCHEMA_VERSION})",
                    m.schema_version
                ),
            ));
        }
    }
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(b.schema().fields().clone()));
    Ok(ShardHead {
        schema,
        rows,
        bytes,
        meta,
    })
}

impl DatasetReader {
    /// Opens a dataset folder (its manifest's finished shards, or every `*.parquet` in it when
    /// it has no manifest), one `.parquet` file, or a glob like `dir/*.parquet` (wildcards in
    /// the file name only). Checks that every shard has the same schema and teacher
    /// fingerprint; errors name the offending file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut manifest = None;
        let files = if has_glob(&name) {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let files = list_dir(dir, |n| wildcard(name.as_bytes(), n.as_bytes()))?;
            if files.is_empty() {
                return Err(corrupt(path, "the pattern matches no files"));
            }
            files
        } else if path.is_dir() {
            let mpath = path.join(MANIFEST_FILE);
            if mpath.is_file() {
                let m = read_manifest(&mpath)?;
                let files: Vec<PathBuf> = m.shards.iter().map(|s| path.join(&s.file)).collect();
                if files.is_empty() {
                    return Err(corrupt(
                        path,
                        format!(
                            "dataset has no finished shards ({} rows pending: seal it first)",
                            m.pending_rows
                        ),
                    ));
                }
                manifest = Some(m);
                files
            } else {
                let files = list_dir(path, |n| n.ends_with(".parquet"))?;
                if files.is_empty() {
                    return Err(corrupt(
                        path,
                        "empty dataset: no _manifest.json and no .parquet files",
                    ));
                }
                files
            }
        } else if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            return Err(StoreError::NotFound(path.display().to_string()));
        };

        let mut heads = Vec::with_capacity(files.len());
        for f in &files {
            heads.push(read_head(f)?);
        }
        let first = &heads[0];
        for (f, h) in files.iter().zip(&heads).skip(1) {
            if h.schema.fields() != first.schema.fields() {
                return Err(corrupt(
                    f,
                    format!(
                        "columns differ from {}: {} vs {}",
                        files[0].display(),
                        field_list(&h.schema),
                        field_list(&first.schema)
                    ),
                ));
            }
            check_fingerprints(f, h.meta.as_ref(), &files[0], first.meta.as_ref())?;
        }
        if let Some(m) = &manifest {
            for (f, h) in files.iter().zip(&heads) {
                match &h.meta {
                    Some(sm) => {
                        let d = fingerprint_differences(&m.teacher, &sm.teacher);
                        if !d.is_empty() {
                            return Err(corrupt(f, format!("shard was produced by another teacher than the manifest says: {}", d.join("; "))));
                        }
                    }
                    None => {
                        return Err(corrupt(
                            f,
                            format!("shard has no {SHARD_METADATA_KEY} metadata"),
                        ))
                    }
                }
            }
        }
        let rows = heads.iter().map(|h| h.rows).sum();
        if manifest.is_none() {
            // A single file or a glob: describe it from the shards' own metadata.
            manifest = first.meta.as_ref().map(|sm| Manifest {
                schema_version: sm.schema_version,
                dataset: sm.dataset.clone(),
                teacher: sm.teacher.clone(),
                columns: sm.columns.clone(),
                input_digest: sm.input_digest,
                rows,
                pending_rows: 0,
                shards: files
                    .iter()
                    .zip(&heads)
                    .map(|(f, h)| ShardInfo {
                        file: f.display().to_string(),
                        rows: h.rows,
                        bytes: h.bytes,
                    })
                    .collect(),
            });
        }
        Ok(Self {
            schema: first.schema.clone(),
            files,
            rows,
            manifest,
        })
    }

    /// The Arrow schema shared by all shards.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows in all shards.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The dataset's manifest, or one built from the shards' metadata; `None` for plain
    /// Parquet files written by other tools.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// The teacher that produced the rows, when known.
    pub fn fingerprint(&self) -> Option<&TeacherFingerprint> {
        self.manifest.as_ref().map(|m| &m.teacher)
    }

    /// The description of one stored column, when known.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.manifest
            .as_ref()?
            .columns
            .iter()
            .find(|c| c.name == name)
    }

    /// The shard files, in reading order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Streams record batches of the named columns (in the order named), at most
    /// `batch_rows` rows each, shard by shard; never holds the whole set in memory.
    pub fn batches(&self, columns: &[&str], batch_rows: usize) -> Result<BatchIter, StoreError> {
        if batch_rows == 0 {
            return Err(StoreError::InvalidRows(
                "batch_rows must be at least 1".into(),
            ));
        }
        if columns.is_empty() {
            return Err(StoreError::InvalidRows("no columns requested".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for c in columns {
            if !seen.insert(*c) {
                return Err(StoreError::InvalidRows(format!(
                    "column {c:?} requested twice"
                )));
            }
            if self.schema.index_of(c).is_err() {
                return Err(StoreError::InvalidRows(format!(
                    "no column {c:?} in {} (columns: {})",
                    self.files[0].display(),
                    field_list(&self.schema)
                )));
            }
        }
        Ok(BatchIter {
            files: self.files.clone(),
            next_file: 0,
            current: None,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            batch_rows,
        })
    }
}

fn field_list(s: &SchemaRef) -> String {
    s.fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_fingerprints(
    f: &Path,
    m: Option<&ShardMetadata>,
    first_path: &Path,
    first: Option<&ShardMetadata>,
) -> Result<(), StoreError> {
    match (m, first) {
        (None, None) => Ok(()),
        (Some(a), Some(b)) => {
            let d = fingerprint_differences(&b.teacher, &a.teacher);
            if d.is_empty() {
                Ok(())
            } else {
                Err(corrupt(
                    f,
                    format!(
                        "produced by another teacher than {}: {}",
                        first_path.display(),
                        d.join("; ")
                    ),
                ))
            }
        }
        _ => Err(corrupt(
            f,
            format!(
                "only one of this file and {} carries {SHARD_METADATA_KEY} metadata",
                first_path.display()
            ),
        )),
    }
}

/// Record batches of chosen columns, read one shard at a time.
pub struct BatchIter {
    files: Vec<PathBuf>,
    next_file: usize,
    current: Option<(PathBuf, ParquetRecordBatchReader)>,
    columns: Vec<String>,
    batch_rows: usize,
}

impl BatchIter {
    /// The shard the last batch came from.
    pub fn current_file(&self) -> Option<&Path> {
        self.current.as_ref().map(|(p, _)| p.as_path())
    }

    fn open_next(&mut self) -> Result<bool, StoreError> {
        let Some(path) = self.files.get(self.next_file).cloned() else {
            return Ok(false);
        };
        self.next_file += 1;
        let file = File::open(&path).map_err(|e| io_err(&path, e))?;
        let b = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| corrupt(&path, format!("not a readable Parquet file: {e}")))?;
        let mut idx = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            idx.push(
                b.schema()
                    .index_of(c)
                    .map_err(|_| corrupt(&path, format!("no column {c:?}")))?,
            );
        }
        let mask = ProjectionMask::roots(b.parquet_schema(), idx);
        let reader = b
            .with_projection(mask)
            .with_batch_size(self.batch_rows)
            .build()
            .map_err(|e| corrupt(&path, e.to_string()))?;
        self.current = Some((path, reader));
        Ok(true)
    }

    fn reorder(&self, path: &Path, batch: RecordBatch) -> Result<RecordBatch, StoreError> {
        let schema = batch.schema();
        let mut idx = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            idx.push(
                schema
                    .index_of(c)
                    .map_err(|_| corrupt(path, format!("no column {c:?}")))?,
            );
        }
        batch.project(&idx).map_err(StoreError::from)
    }
}

impl Iterator for BatchIter {
    type Item = Result<RecordBatch, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((path, reader)) = self.current.as_mut() {
                match reader.next() {
                    Some(Ok(b)) => {
                        let path = path.clone();
                        return Some(self.reorder(&path, b));
                    }
                    Some(Err(e)) => {
                        let err = corrupt(path, e.to_string());
                        self.current = None;
                        self.next_file = self.files.len();
                        return Some(Err(err));
                    }
                    None => self.current = None,
                }
            }
            match self.open_next() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.next_file = self.files.len();
                    return Some(Err(e));
                }
            }
        }
    }
}
