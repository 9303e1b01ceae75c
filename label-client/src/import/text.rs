//! `import-text`: sentences from a text file (one a line), JSONL, CSV or a Parquet column →
//! a Parquet file with the columns `id` and `text` (both Utf8), ready for `distill-label label`.
//!
//! - **Text** is stored exactly as given (a `txt` line without its line break, `\n` or `\r\n`).
//!   Rows whose text is empty or only whitespace are skipped and counted (a text teacher rejects
//!   them).
//! - **Ids** come from `--id-field` when given (strings as they are, JSON/Parquet integers in
//!   decimal); a repeated or empty id is an error naming both places. Without it the id is
//!   derived from the content ([`content_id`]: 16 hex digits of the text's SHA-256), so the same
//!   sentence gets the same id in every file and every run; a sentence seen again is dropped
//!   (the first one is kept) and counted as a duplicate.
//! - Malformed input (bad UTF-8, bad JSON, a missing or non-string field, a CSV record with the
//!   wrong number of fields, a null in Parquet) is an error naming the file and the line
//!   (1-based) or, for Parquet, the row (0-based).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int32Type, Int64Type, UInt32Type, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::text_parquet::{content_id, parquet_rows, TextError, Utf8ParquetWriter};

/// Input formats of `import-text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextFormat {
    /// One sentence a line (UTF-8).
    Txt,
    /// One JSON object a line.
    Jsonl,
    /// Comma-separated with a header row (RFC 4180 quoting).
    Csv,
    /// A Utf8 column of a Parquet file.
    Parquet,
}

impl TextFormat {
    /// The format a file name's extension implies (`.txt`, `.jsonl`/`.ndjson`, `.csv`,
    /// `.parquet`), if any.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "txt" | "text" => Some(Self::Txt),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            "parquet" | "pq" => Some(Self::Parquet),
            _ => None,
        }
    }
}

/// What to import.
#[derive(Debug, Clone)]
pub struct TextImportOptions {
    /// The input file.
    pub input: PathBuf,
    /// Its format.
    pub format: TextFormat,
    /// Field (JSONL), header (CSV) or column (Parquet) holding the text; unused for `txt`.
    pub text_field: String,
    /// Field holding the row ids; `None`: ids derived from the text.
    pub id_field: Option<String>,
    /// The Parquet file to write.
    pub out: PathBuf,
    /// Rewrite `out` when it exists (otherwise it is kept and reported).
    pub force: bool,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextImportReport {
    /// The Parquet file.
    pub path: PathBuf,
    /// Rows in it.
    pub rows: usize,
    /// Sentences dropped because the same text came earlier (content ids only).
    pub duplicates: usize,
    /// Rows skipped because their text was empty or whitespace.
    pub empty: usize,
    /// False when the file was already there and left alone (no `force`).
    pub written: bool,
}

impl std::fmt::Display for TextImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.written {
            return super::write_kept(f, &self.path, self.rows);
        }
        write!(
            f,
            "wrote {} ({} rows; {} duplicate sentences dropped, {} empty skipped)",
            self.path.display(),
            self.rows,
            self.duplicates,
            self.empty
        )
    }
}

/// Collects rows into the output: skips empty texts, assigns or checks ids.
struct Sink {
    writer: Utf8ParquetWriter,
    input: PathBuf,
    /// Id → where it was first seen (`line 3` / `row 2`).
    seen: HashMap<String, String>,
    duplicates: usize,
    empty: usize,
}

impl Sink {
    fn push(&mut self, at: String, id: Option<String>, text: &str) -> Result<(), TextError> {
        if text.trim().is_empty() {
            self.empty += 1;
            return Ok(());
        }
        let id = match id {
            Some(id) => {
                if id.is_empty() {
                    return Err(self.malformed(at, "the id is empty".to_string()));
                }
                if let Some(first) = self.seen.get(&id) {
                    return Err(
                        self.malformed(at, format!("id {id:?} was already used on {first}"))
                    );
                }
                id
            }
            None => {
                let id = content_id(text);
                if self.seen.contains_key(&id) {
                    self.duplicates += 1;
                    return Ok(());
                }
                id
            }
        };
        self.writer.push(&[&id, text])?;
        self.seen.insert(id, at);
        Ok(())
    }

    fn malformed(&self, at: String, message: String) -> TextError {
        TextError::Malformed {
            path: self.input.clone(),
            at,
            message,
        }
    }
}

/// Imports `options.input` into `options.out` (columns `id`, `text`).
pub fn import_text(options: &TextImportOptions) -> Result<TextImportReport, TextError> {
    if options.out.exists() && !options.force {
        return Ok(TextImportReport {
            path: options.out.clone(),
            rows: parquet_rows(&options.out)?,
            duplicates: 0,
            empty: 0,
            written: false,
        });
    }
    let mut sink = Sink {
        writer: Utf8ParquetWriter::create(&options.out, &["id", "text"])?,
        input: options.input.clone(),
        seen: HashMap::new(),
        duplicates: 0,
        empty: 0,
    };
    match options.format {
        TextFormat::Txt => read_txt(&options.input, &mut sink)?,
        TextFormat::Jsonl => read_jsonl(options, &mut sink)?,
        TextFormat::Csv => read_csv(options, &mut sink)?,
        TextFormat::Parquet => read_parquet(options, &mut sink)?,
    }
    if sink.writer.rows() == 0 {
        return Err(TextError::Input {
            path: options.input.clone(),
            message: format!("no sentences ({} empty rows skipped)", sink.empty),
        });
    }
    let (duplicates, empty) = (sink.duplicates, sink.empty);
    let rows = sink.writer.finish()?;
    Ok(TextImportReport {
        path: options.out.clone(),
        rows,
        duplicates,
        empty,
        written: true,
    })
}

fn open(path: &Path) -> Result<BufReader<File>, TextError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TextError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Calls `f(line_number, line)` for every line, without its line break, checking UTF-8.
fn for_each_line(
    path: &Path,
    mut f: impl FnMut(u64, &str) -> Result<(), TextError>,
) -> Result<(), TextError> {
    let mut reader = open(path)?;
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| TextError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let text = std::str::from_utf8(&buf)
            .map_err(|e| TextError::at_line(path, line, format!("not valid UTF-8 ({e})")))?;
        f(line, text)?;
    }
}

fn read_txt(path: &Path, sink: &mut Sink) -> Result<(), TextError> {
    for_each_line(path, |line, text| {
        sink.push(format!("line {line}"), None, text)
    })
}

fn read_jsonl(options: &TextImportOptions, sink: &mut Sink) -> Result<(), TextError> {
    let path = &options.input;
    for_each_line(path, |line, raw| {
        if raw.trim().is_empty() {
            return Ok(());
        }
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| TextError::at_line(path, line, format!("not valid JSON ({e})")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| TextError::at_line(path, line, "not a JSON object"))?;
        let text = match obj.get(&options.text_field) {
            Some(serde_json::Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(TextError::at_line(
                    path,
                    line,
                    format!(
                        "field {:?} is {}, expected a string",
                        options.text_field,
                        json_kind(other)
                    ),
                ))
            }
            None => {
                return Err(TextError::at_line(
                    path,
                    line,
                    format!("no field {:?}", options.text_field),
                ))
            }
        };
        let id = match &options.id_field {
            None => None,
            Some(field) => Some(match obj.get(field) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
                Some(other) => {
                    return Err(TextError::at_line(
                        path,
                        line,
                        format!(
                            "id field {field:?} is {}, expected a string or an integer",
                            json_kind(other)
                        ),
                    ))
                }
                None => {
                    return Err(TextError::at_line(
                        path,
                        line,
                        format!("no id field {field:?}"),
                    ))
                }
            }),
        };
        sink.push(format!("line {line}"), id, text)
    })
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn read_csv(options: &TextImportOptions, sink: &mut Sink) -> Result<(), TextError> {
    let path = &options.input;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(open(path)?);
    let headers = reader
        .byte_headers()
        .map_err(|e| csv_error(path, &e))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name.as_bytes())
            .ok_or_else(|| TextError::Input {
                path: path.clone(),
                message: format!(
                    "no column {name:?} in the header; its columns are: {}",
                    headers
                        .iter()
                        .map(|h| String::from_utf8_lossy(h).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    };
    let text_col = column(&options.text_field)?;
    let id_col = options.id_field.as_deref().map(column).transpose()?;
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, &e)),
        }
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize, what: &str| -> Result<&str, TextError> {
            let bytes = record.get(i).unwrap_or_default();
            std::str::from_utf8(bytes).map_err(|e| {
                TextError::at_line(path, line, format!("{what} is not valid UTF-8 ({e})"))
            })
        };
        let text = field(text_col, "the text")?;
        let id = id_col
            .map(|i| field(i, "the id").map(str::to_string))
            .transpose()?;
        sink.push(format!("line {line}"), id, text)?;
    }
}

fn csv_error(path: &Path, e: &csv::Error) -> TextError {
    match e.position() {
        Some(p) => TextError::at_line(path, p.line(), csv_message(e)),
        None => TextError::Input {
            path: path.to_path_buf(),
            message: csv_message(e),
        },
    }
}

fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields, but the header has {expected_len}"),
        _ => format!("malformed CSV ({e})"),
    }
}

fn read_parquet(options: &TextImportOptions, sink: &mut Sink) -> Result<(), TextError> {
    let path = &options.input;
    let fail = |message: String| TextError::Input {
        path: path.clone(),
        message,
    };
    let file = File::open(path).map_err(|source| TextError::Read {
        path: path.clone(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| fail(format!("not readable Parquet ({e})")))?;
    let schema = builder.schema().clone();
    let column = |name: &str| {
        schema.index_of(name).map_err(|_| {
            fail(format!(
                "no column {name:?}; its columns are: {}",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    };
    let text_idx = column(&options.text_field)?;
    let id_idx = options.id_field.as_deref().map(column).transpose()?;
    let text_type = schema.field(text_idx).data_type().clone();
    if !is_string(&text_type) {
        return Err(fail(format!(
            "column {:?} is {text_type}, expected a string column",
            options.text_field
        )));
    }
    if let Some(i) = id_idx {
        let t = schema.field(i).data_type();
        if !(is_string(t) || is_integer(t)) {
            return Err(fail(format!(
                "id column {:?} is {t}, expected a string or integer column",
                schema.field(i).name()
            )));
        }
    }
    let mut roots = vec![text_idx];
    roots.extend(id_idx);
    roots.sort_unstable();
    roots.dedup();
    let position = |i: usize| roots.iter().position(|r| *r == i).unwrap_or(0);
    let (text_pos, id_pos) = (position(text_idx), id_idx.map(position));
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.clone());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(8192)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut row = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| fail(format!("reading row {row} onwards: {e}")))?;
        let texts = batch.column(text_pos);
        let ids = id_pos.map(|p| batch.column(p));
        for r in 0..batch.num_rows() {
            let at = format!("row {}", row + r);
            let malformed = |message: String| TextError::Malformed {
                path: path.clone(),
                at: at.clone(),
                message,
            };
            let text = string_value(texts.as_ref(), r)
                .ok_or_else(|| malformed(format!("column {:?} is null", options.text_field)))?;
            let id = match ids {
                None => None,
                Some(a) => Some(scalar_string(a.as_ref(), r).ok_or_else(|| {
                    malformed(format!(
                        "id column {:?} is null",
                        options.id_field.as_deref().unwrap_or_default()
                    ))
                })?),
            };
            sink.push(at, id, text)?;
        }
        row += batch.num_rows();
    }
    Ok(())
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int32 | DataType::Int64 | DataType::UInt32 | DataType::UInt64
    )
}

/// Row `r` of a string column; `None` when null (or not a string column).
fn string_value(a: &dyn Array, r: usize) -> Option<&str> {
    if a.is_null(r) {
        return None;
    }
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(r)),
        DataType::LargeUtf8 => Some(a.as_string::<i64>().value(r)),
        DataType::Utf8View => Some(a.as_string_view().value(r)),
        _ => None,
    }
}

/// Row `r` of a string or integer column as text; `None` when null.
fn scalar_string(a: &dyn Array, r: usize) -> Option<String> {
    if a.is_null(r) {
        return None;
    }
    match a.data_type() {
        DataType::Int32 => Some(a.as_primitive::<Int32Type>().value(r).to_string()),
        DataType::Int64 => Some(a.as_primitive::<Int64Type>().value(r).to_string()),
        DataType::UInt32 => Some(a.as_primitive::<UInt32Type>().value(r).to_string()),
        DataType::UInt64 => Some(a.as_primitive::<UInt64Type>().value(r).to_string()),
        _ => string_value(a, r).map(str::to_string),
    }
}
