//! Opens a set of Parquet files — a label-store dataset folder (manifest + shards), one
//! `.parquet` file, or a glob — checks every file has the same schema and teacher
//! fingerprint, and streams the requested columns file by file.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use distill_proto::store::manifest::{fingerprint_differences, ShardMetadata, SHARD_METADATA_KEY};
use distill_proto::store::Manifest;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::DataError;

/// Rows per record batch read from Parquet.
const READ_BATCH_ROWS: usize = 8192;

/// One opened set of Parquet files with a common schema.
#[derive(Debug, Clone)]
pub struct ParquetSource {
    /// The path or glob as given (for error messages).
    pub spec: String,
    /// The files, in reading order.
    pub files: Vec<PathBuf>,
    /// The common Arrow schema.
    pub schema: SchemaRef,
    /// Total rows over all files.
    pub rows: usize,
    /// The dataset manifest, when the source is a label-store folder.
    pub manifest: Option<Manifest>,
}

/// The label store's per-shard metadata (teacher fingerprint), if the file carries it.
fn shard_metadata(
    path: &Path,
    kv: Option<&Vec<parquet::file::metadata::KeyValue>>,
) -> Result<Option<ShardMetadata>, DataError> {
    let Some(json) = kv
        .and_then(|kv| kv.iter().find(|e| e.key == SHARD_METADATA_KEY))
        .and_then(|e| e.value.as_deref())
    else {
        return Ok(None);
    };
    serde_json::from_str(json)
        .map(Some)
        .map_err(|e| DataError::Corrupt {
            path: path.to_path_buf(),
            message: format!("bad {SHARD_METADATA_KEY} metadata: {e}"),
        })
}

fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    // Iterative wildcard match with backtracking on the last `*`.
    let (mut p, mut n) = (0usize, 0usize);
    let (mut star, mut mark) = (None, 0usize);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

fn resolve_files(spec: &str) -> Result<(Vec<PathBuf>, Option<Manifest>), DataError> {
    let path = Path::new(spec);
    if path.is_dir() {
        let manifest_path = path.join(distill_proto::store::MANIFEST_FILE);
        if manifest_path.is_file() {
            let text = std::fs::read_to_string(&manifest_path).map_err(|source| DataError::Io {
                path: manifest_path.clone(),
                source,
            })?;
            let manifest: Manifest =
                serde_json::from_str(&text).map_err(|e| DataError::Corrupt {
                    path: manifest_path.clone(),
                    message: format!("manifest does not parse: {e}"),
                })?;
            let files: Vec<PathBuf> = manifest.shards.iter().map(|s| path.join(&s.file)).collect();
            for f in &files {
                if !f.is_file() {
                    return Err(DataError::Corrupt {
                        path: manifest_path.clone(),
                        message: format!("lists shard {} which does not exist", f.display()),
                    });
                }
            }
            return Ok((files, Some(manifest)));
        }
        let files: Vec<PathBuf> = list_dir(path)?
            .into_iter()
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        return Ok((files, None));
    }
    if path.is_file() {
        return Ok((vec![path.to_path_buf()], None));
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    if let Some(name) = name.filter(|n| n.contains('*') || n.contains('?')) {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(DataError::NotFound { path: spec.into() });
        }
        let files = list_dir(&parent)?
            .into_iter()
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .is_some_and(|n| glob_match(name.as_bytes(), n.as_encoded_bytes()))
            })
            .collect();
        return Ok((files, None));
    }
    Err(DataError::NotFound { path: spec.into() })
}

fn open_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, DataError> {
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| DataError::Corrupt {
        path: path.to_path_buf(),
        message: format!("not a readable Parquet file: {e}"),
    })
}

fn schema_summary(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ParquetSource {
    /// Opens a dataset folder, a Parquet file or a glob; every file must share the first
    /// file's schema and fingerprint metadata, and the set must hold at least one row.
    pub fn open(spec: &str) -> Result<Self, DataError> {
        let (files, manifest) = resolve_files(spec)?;
        if files.is_empty() {
            return Err(DataError::Empty {
                source_path: spec.into(),
                message: "no Parquet files found".into(),
            });
        }
        let mut schema: Option<SchemaRef> = None;
        let mut first_meta: Option<ShardMetadata> = None;
        let mut rows = 0usize;
        for file in &files {
            let builder = open_builder(file)?;
            let meta = builder.metadata().file_metadata();
            rows += usize::try_from(meta.num_rows()).map_err(|_| DataError::Corrupt {
                path: file.clone(),
                message: "negative row count".into(),
            })?;
            let shard_meta = shard_metadata(file, meta.key_value_metadata())?;
            let this = builder.schema().clone();
            match &schema {
                None => {
                    schema = Some(this);
                    first_meta = shard_meta;
                }
                Some(first) => {
                    let same = first.fields().len() == this.fields().len()
                        && first
                            .fields()
                            .iter()
                            .zip(this.fields().iter())
                            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
                    if !same {
                        return Err(DataError::SchemaMismatch {
                            path: file.clone(),
                            first: files[0].clone(),
                            message: format!(
                                "columns [{}] differ from [{}]",
                                schema_summary(&this),
                                schema_summary(first)
                            ),
                        });
                    }
                    let differences = match (&first_meta, &shard_meta) {
                        (None, None) => Vec::new(),
                        (Some(a), Some(b)) => fingerprint_differences(&a.teacher, &b.teacher),
                        _ => vec![format!(
                            "only one of the two files carries {SHARD_METADATA_KEY} metadata"
                        )],
                    };
                    if !differences.is_empty() {
                        return Err(DataError::SchemaMismatch {
                            path: file.clone(),
                            first: files[0].clone(),
                            message: format!(
                                "rows made by another teacher: {}",
                                differences.join("; ")
                            ),
                        });
                    }
                }
            }
        }
        let schema = schema.ok_or_else(|| DataError::Empty {
            source_path: spec.into(),
            message: "no Parquet files found".into(),
        })?;
        if rows == 0 {
            return Err(DataError::Empty {
                source_path: spec.into(),
                message: "the dataset has no rows".into(),
            });
        }
        Ok(Self {
            spec: spec.into(),
            files,
            schema,
            rows,
            manifest,
        })
    }

    /// The Arrow type of a column, or a clear error listing the available columns.
    pub fn column_type(&self, name: &str) -> Result<&DataType, DataError> {
        self.schema
            .field_with_name(name)
            .map(|f| f.data_type())
            .map_err(|_| DataError::MissingColumn {
                column: name.into(),
                source_path: self.spec.clone(),
                available: self
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Whether the source has a column.
    pub fn has_column(&self, name: &str) -> bool {
        self.schema.field_with_name(name).is_ok()
    }

    /// Streams the named columns (in the order given) file by file; `visit` gets each batch
    /// with the file it came from. Only one record batch per file is in memory at a time.
    pub fn for_each_batch(
        &self,
        columns: &[&str],
        mut visit: impl FnMut(&Path, &RecordBatch) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let mut indices = Vec::with_capacity(columns.len());
        for c in columns {
            self.column_type(c)?;
            indices.push(self.schema.index_of(c).map_err(|e| DataError::Corrupt {
                path: self.files[0].clone(),
                message: e.to_string(),
            })?);
        }
        for file in &self.files {
            let builder = open_builder(file)?;
            let mask = ProjectionMask::roots(builder.parquet_schema(), indices.iter().copied());
            let reader = builder
                .with_projection(mask)
                .with_batch_size(READ_BATCH_ROWS)
                .build()
                .map_err(|e| DataError::Corrupt {
                    path: file.clone(),
                    message: e.to_string(),
                })?;
            for batch in reader {
                let batch = batch.map_err(|e| DataError::Corrupt {
                    path: file.clone(),
                    message: format!("cannot decode: {e}"),
                })?;
                // The projection keeps file order; reorder to the order asked for.
                let mut cols = Vec::with_capacity(columns.len());
                for c in columns {
                    let idx = batch.schema().index_of(c).map_err(|e| DataError::Corrupt {
                        path: file.clone(),
                        message: e.to_string(),
                    })?;
                    cols.push((c.to_string(), batch.column(idx).clone()));
                }
                let ordered = RecordBatch::try_from_iter(cols).map_err(|e| DataError::Corrupt {
                    path: file.clone(),
                    message: e.to_string(),
                })?;
                visit(file, &ordered)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_matches_shards() {
        assert!(glob_match(b"shard-*.parquet", b"shard-000001.parquet"));
        assert!(glob_match(b"*.parquet", b"a.parquet"));
        assert!(!glob_match(b"*.parquet", b"a.parquet.tmp"));
        assert!(glob_match(b"s?.parquet", b"s1.parquet"));
        assert!(!glob_match(b"s?.parquet", b"s12.parquet"));
    }
}
