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
        Ok(Self {
            spec: spec.into(),
            rows,
            schema: reader.schema(),
            reader,
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
