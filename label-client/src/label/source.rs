//! Streams the rows to label out of a Parquet file, batch by batch, as the record batches the
//! server takes: `id`, one column per model input (renamed to the input's name; a tensor input
//! from a FixedSizeList column, a text input from a string column, sent as Utf8), then the
//! pass-through columns. Only the selected columns are decoded; never the whole file at once.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

/// One model input fed from a file column: `--input COLUMN[=MODEL_INPUT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputMapping {
    /// Column of the Parquet file.
    pub column: String,
    /// Model input name the column is sent as.
    pub input: String,
}

impl std::str::FromStr for InputMapping {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (column, input) = match s.split_once('=') {
            Some((c, i)) => (c.trim(), i.trim()),
            None => (s.trim(), s.trim()),
        };
        if column.is_empty() || input.is_empty() {
            return Err(format!(
                "invalid input mapping {s:?}: expected COLUMN or COLUMN=MODEL_INPUT"
            ));
        }
        Ok(Self {
            column: column.to_string(),
            input: input.to_string(),
        })
    }
}

/// Errors opening or reading the source file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file cannot be opened or is not Parquet.
    #[error("cannot read Parquet file {path}: {message}")]
    Open {
        /// The Parquet file that could not be opened.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A requested column is not in the file.
    #[error("{path} has no column {column:?} (needed for {role}); its columns are: {available}")]
    MissingColumn {
        /// The Parquet file that lacks the column.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// Why it is needed.
        role: String,
        /// The file's columns, comma separated.
        available: String,
    },
    /// A column has a type the server cannot take.
    #[error("{path}: column {column:?} is {found}, expected {expected}")]
    WrongType {
        /// The Parquet file holding the column.
        path: PathBuf,
        /// The column of the wrong type.
        column: String,
        /// Type found.
        found: String,
        /// Type expected.
        expected: String,
    },
    /// Two outgoing columns would carry the same name.
    #[error("column name {0:?} is used twice in the request (check --input and --columns)")]
    DuplicateName(String),
    /// Decoding a batch failed.
    #[error("reading {path}: {message}")]
    Read {
        /// The Parquet file whose batch failed to decode.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// What to read from the file.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Column holding the row ids (Utf8).
    pub id_column: String,
    /// Model inputs and the columns feeding them.
    pub inputs: Vec<InputMapping>,
    /// Pass-through columns, sent under their own names.
    pub columns: Vec<String>,
    /// Rows per batch.
    pub batch_rows: usize,
}

/// The columns to send as `(file column index, outgoing name)`: the ids first, then the
/// inputs, then the pass-through columns, each checked to exist with a usable type, no
/// outgoing name twice.
fn wanted_columns(
    path: &Path,
    file_schema: &Schema,
    spec: &SourceSpec,
) -> Result<Vec<(usize, String)>, SourceError> {
    let available = file_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let find = |column: &str, role: String| {
        file_schema
            .index_of(column)
            .map_err(|_| SourceError::MissingColumn {
                path: path.to_path_buf(),
                column: column.to_string(),
                role,
                available: available.clone(),
            })
    };
    let mut wanted: Vec<(usize, String)> = Vec::new();
    let id_idx = find(&spec.id_column, "row ids".to_string())?;
    let id_type = file_schema.field(id_idx).data_type();
    if id_type != &DataType::Utf8 {
        return Err(SourceError::WrongType {
            path: path.to_path_buf(),
            column: spec.id_column.clone(),
            found: id_type.to_string(),
            expected: "Utf8 (string ids)".to_string(),
        });
    }
    wanted.push((id_idx, "id".to_string()));
    for m in &spec.inputs {
        let idx = find(&m.column, format!("model input {:?}", m.input))?;
        let dt = file_schema.field(idx).data_type();
        if !matches!(dt, DataType::FixedSizeList(_, _)) && !is_text(dt) {
            return Err(SourceError::WrongType {
                path: path.to_path_buf(),
                column: m.column.clone(),
                found: dt.to_string(),
                expected: "FixedSizeList of the model input's element type, or a string \
                           column for a text input"
                    .to_string(),
            });
        }
        wanted.push((idx, m.input.clone()));
    }
    for c in &spec.columns {
        let idx = find(c, "a pass-through column".to_string())?;
        wanted.push((idx, c.clone()));
    }
    let mut seen = std::collections::HashSet::new();
    for (_, name) in &wanted {
        if !seen.insert(name.as_str()) {
            return Err(SourceError::DuplicateName(name.clone()));
        }
    }
    Ok(wanted)
}

/// The schema of the outgoing batches: the wanted columns under their outgoing names, text
/// columns as Utf8 whatever string type the file uses (the server takes Utf8).
fn outgoing_schema(file_schema: &Schema, wanted: &[(usize, String)]) -> SchemaRef {
    let fields: Vec<Field> = wanted
        .iter()
        .map(|(i, name)| {
            let field = file_schema.field(*i).clone().with_name(name.clone());
            if is_text(field.data_type()) {
                field.with_data_type(DataType::Utf8)
            } else {
                field
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// An open source file: its row count and the outgoing schema, then an iterator of batches.
pub struct ParquetSource {
    path: PathBuf,
    rows: u64,
    schema: SchemaRef,
    reader: ParquetRecordBatchReader,
    /// Position of each outgoing column in the projected batch.
    order: Vec<usize>,
}

impl ParquetSource {
    /// Opens `path` and checks the columns of `spec` exist with usable types.
    pub fn open(path: &Path, spec: &SourceSpec) -> Result<Self, SourceError> {
        let open_err = |message: String| SourceError::Open {
            path: path.to_path_buf(),
            message,
        };
        let file = File::open(path).map_err(|e| open_err(e.to_string()))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| open_err(e.to_string()))?;
        let file_schema = builder.schema().clone();
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let wanted = wanted_columns(path, &file_schema, spec)?;
        // The projected batch holds the selected columns in file order; map them back.
        let mut projected: Vec<usize> = wanted.iter().map(|(i, _)| *i).collect();
        projected.sort_unstable();
        projected.dedup();
        let order = wanted
            .iter()
            .map(|(i, _)| projected.iter().position(|p| p == i).unwrap_or(0))
            .collect();
        let schema = outgoing_schema(&file_schema, &wanted);
        let mask = ProjectionMask::roots(builder.parquet_schema(), projected);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(spec.batch_rows.max(1))
            .build()
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            rows,
            schema,
            reader,
            order,
        })
    }

    /// Rows in the file.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Schema of the batches this source yields.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// A string column: a text model input (sent as Utf8).
fn is_text(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

impl Iterator for ParquetSource {
    type Item = Result<RecordBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.reader.next()? {
            Ok(b) => b,
            Err(e) => {
                return Some(Err(SourceError::Read {
                    path: self.path.clone(),
                    message: e.to_string(),
                }))
            }
        };
        let columns = self
            .order
            .iter()
            .zip(self.schema.fields())
            .map(|(&i, field)| {
                let column = batch.column(i);
                if column.data_type() == field.data_type() {
                    Ok(column.clone())
                } else {
                    arrow::compute::cast(column, field.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>();
        let columns = match columns {
            Ok(c) => c,
            Err(e) => {
                return Some(Err(SourceError::Read {
                    path: self.path.clone(),
                    message: e.to_string(),
                }))
            }
        };
        Some(
            RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| SourceError::Read {
                path: self.path.clone(),
                message: e.to_string(),
            }),
        )
    }
}
