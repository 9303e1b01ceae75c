//! A training source: a label-store dataset folder (manifest + shards), one `.parquet` file,
//! or a glob, opened with the label store's own reader (`distill_proto::store::DatasetReader`,
//! which checks that every file has the same schema and teacher fingerprint) and streamed
//! column by column, file by file.

use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use distill_proto::store::{DatasetReader, StoreError};

use super::DataError;

/// Rows per record batch read from Parquet.
const READ_BATCH_ROWS: usize = 8192;

/// One opened set of Parquet files with a common schema.
#[derive(Debug, Clone)]
pub struct ParquetSource {
    /// The path or glob as given (for error messages).
    pub spec: String,
    /// Total rows over all files.
    pub rows: usize,
    /// Whether a label-store dataset holds acknowledged rows outside its finished shards (its
    /// manifest counts pending rows, or its write-ahead log is not empty): it is not sealed,
    /// and those rows are not read.
    pub unsealed: bool,
    /// The common Arrow schema (the reader's, kept so column types can be borrowed).
    schema: SchemaRef,
    reader: DatasetReader,
}

/// The store's error as the trainer's, keeping the file it names.
fn data_error(spec: &str, e: StoreError) -> DataError {
    match e {
        StoreError::NotFound(_) => DataError::NotFound { path: spec.into() },
        StoreError::Io { path, source } => DataError::Io {
            path: path.into(),
            source,
        },
        StoreError::Corrupt { path, message } => DataError::Corrupt {
            path: path.into(),
            message,
        },
        other => DataError::Corrupt {
            path: spec.into(),
            message: other.to_string(),
        },
    }
}

impl ParquetSource {
    /// Opens a dataset folder, a Parquet file or a glob; every file must share the first
    /// file's schema and fingerprint metadata, and the set must hold at least one row.
    pub fn open(spec: &str) -> Result<Self, DataError> {
        let reader = DatasetReader::open(Path::new(spec)).map_err(|e| data_error(spec, e))?;
        let rows = usize::try_from(reader.rows()).map_err(|_| DataError::Corrupt {
            path: spec.into(),
            message: format!("{} rows do not fit in memory", reader.rows()),
        })?;
        if rows == 0 {
            return Err(DataError::Empty {
                source_path: spec.into(),
                message: "the dataset has no rows".into(),
            });
        }
        // The manifest is rewritten when a shard finishes, so rows appended since then show
        // only in the write-ahead log of the open shard.
        let wal_rows = std::fs::read_dir(Path::new(spec).join("_wal"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .any(|e| e.metadata().is_ok_and(|m| m.len() > 0))
            })
            .unwrap_or(false);
        let unsealed = reader.manifest().is_some_and(|m| m.pending_rows > 0) || wal_rows;
        let source = Self {
            spec: spec.into(),
            rows,
            unsealed,
            schema: reader.schema(),
            reader,
        };
        if let Some(w) = source.unsealed_warning() {
            eprintln!("{w}");
        }
        Ok(source)
    }

    /// The warning printed when the dataset is not sealed: training then sees its finished
    /// shards only, and a silent partial dataset would be mistaken for the whole one.
    pub fn unsealed_warning(&self) -> Option<String> {
        self.unsealed.then(|| {
            format!(
                "warning: dataset {} is not sealed: acknowledged rows outside its finished \
                 shards are left out; training reads the {} rows of its finished shards \
                 (seal it first: POST /v1/datasets/NAME/seal, or stop the server with SIGTERM)",
                self.spec, self.rows
            )
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

    /// Streams the named columns (in the order given; a name may repeat) file by file; `visit`
    /// gets each batch with the file it came from. Only one record batch is in memory at a time.
    pub fn for_each_batch(
        &self,
        columns: &[&str],
        mut visit: impl FnMut(&Path, &RecordBatch) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        let mut unique: Vec<&str> = Vec::with_capacity(columns.len());
        for c in columns {
            self.column_type(c)?;
            if !unique.contains(c) {
                unique.push(c);
            }
        }
        let position: Vec<usize> = columns
            .iter()
            .map(|c| unique.iter().position(|u| u == c).unwrap_or_default())
            .collect();
        let mut batches = self
            .reader
            .batches(&unique, READ_BATCH_ROWS)
            .map_err(|e| data_error(&self.spec, e))?;
        while let Some(batch) = batches.next() {
            let batch = batch.map_err(|e| data_error(&self.spec, e))?;
            let file = batches
                .current_file()
                .map_or_else(|| PathBuf::from(&self.spec), Path::to_path_buf);
            let ordered = RecordBatch::try_from_iter(
                columns
                    .iter()
                    .zip(&position)
                    .map(|(c, &i)| (c.to_string(), batch.column(i).clone())),
            )
            .map_err(|e| DataError::Corrupt {
                path: file.clone(),
                message: e.to_string(),
            })?;
            visit(&file, &ordered)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distill_proto::api::{Dim, OutputSource, OutputSpec, Pooling, TensorSpec};
    use distill_proto::store::{
        FeatureDType, LabelRows, LabelStore, StoreOptions, TeacherFingerprint,
    };
    use distill_proto::{DType, Tensor, TensorData};

    fn teacher() -> TeacherFingerprint {
        let shape = vec![Dim::Dynamic("batch".into()), Dim::Fixed(2)];
        TeacherFingerprint {
            model_sha256: "ab".repeat(32),
            inputs: vec![TensorSpec {
                name: "x".into(),
                dtype: DType::F32,
                shape: shape.clone(),
            }],
            outputs: vec![OutputSpec {
                name: "logits".into(),
                tensor: "logits".into(),
                source: OutputSource::Output,
                dtype: DType::F32,
                shape,
                pooling: Pooling::None,
                normalize: false,
            }],
            ort_version: "1.31.1".into(),
            provider: "cpu".into(),
            feature_dtype: FeatureDType::F32,
            logits_topk: None,
            store_inputs: true,
            tokenizer: None,
        }
    }

    fn rows(range: std::ops::Range<usize>) -> LabelRows {
        let n = range.len();
        let v: Vec<f32> = range.clone().flat_map(|i| [i as f32, 1.0]).collect();
        let t = || Tensor::new(vec![n, 2], TensorData::F32(v.clone())).unwrap();
        LabelRows {
            ids: range.map(|i| format!("r{i}")).collect(),
            inputs: vec![("x".into(), t())].into(),
            outputs: vec![("logits".into(), t())].into(),
            columns: vec![],
            tokens: None,
        }
    }

    #[test]
    fn an_unsealed_dataset_is_said_to_be_partial() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            shard_max_rows: 4,
            ..StoreOptions::default()
        };
        let store = LabelStore::open(dir.path(), teacher(), options).unwrap();
        // 4 rows fill a shard, 2 more wait in the open one.
        store.append("d", rows(0..4)).unwrap();
        store.append("d", rows(4..6)).unwrap();
        // Shards are finished in the background; the manifest call waits for the encoder.
        store.manifest("d").unwrap();
        let spec = dir.path().join("d").display().to_string();
        let src = ParquetSource::open(&spec).unwrap();
        assert_eq!((src.rows, src.unsealed), (4, true));
        let w = src
            .unsealed_warning()
            .expect("a warning for an unsealed dataset");
        assert!(w.contains("not sealed") && w.contains("the 4 rows"), "{w}");
        store.seal("d").unwrap();
        let src = ParquetSource::open(&spec).unwrap();
        assert_eq!((src.rows, src.unsealed), (6, false));
        assert_eq!(src.unsealed_warning(), None);
        store.close().unwrap();
    }
}
