//! Corpus import: each source format into a Parquet file the `label` command can stream.
//!
//! - [`idx`]: IDX file parsing.
//! - [`mnist`]: MNIST IDX → Parquet.
//! - [`text_parquet`]: content ids and the Utf8 Parquet writer the text importers share.
//! - [`text`]: sentences from txt/JSONL/CSV/Parquet → Parquet `id`, `text`.
//! - [`wordnet`]: WordNet 3.0 definitions and examples → Parquet.
//! - [`bbc`]: BBC News articles → train/test Parquet with a fixed split.

pub mod bbc;
pub mod idx;
pub mod mnist;
pub mod text;
pub mod text_parquet;
pub mod wordnet;

use std::fs::File;
use std::path::Path;

use arrow::datatypes::SchemaRef;
use distill_proto::atomic::AtomicFile;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// Rows per Parquet row group and per record batch the importers write.
const ROW_GROUP_ROWS: usize = 8192;

/// A zstd Parquet writer of `schema` into the temporary sibling of `path`, in row groups of
/// [`ROW_GROUP_ROWS`]; [`finish_parquet`] puts it under its final name, so a crash never leaves
/// a half file there.
fn parquet_writer(path: &Path, schema: SchemaRef) -> Result<ArrowWriter<AtomicFile>, String> {
    let file = AtomicFile::create(path).map_err(|e| e.to_string())?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| e.to_string())
}

/// Writes the footer and commits the file of [`parquet_writer`] under its final name.
fn finish_parquet(writer: ArrowWriter<AtomicFile>) -> Result<(), String> {
    let file = writer.into_inner().map_err(|e| e.to_string())?;
    file.commit().map_err(|e| e.to_string())
}

/// The report line of an output left as it was (it existed and `--force` was not given), shared
/// by the single-file importers so they word it the same.
fn write_kept(f: &mut std::fmt::Formatter<'_>, path: &Path, rows: usize) -> std::fmt::Result {
    write!(
        f,
        "kept {} ({} rows; exists, --force rewrites)",
        path.display(),
        rows
    )
}

/// Row count of an output already there (kept without `--force`), from its footer; the error
/// says what is wrong with the file.
fn existing_rows(path: &Path) -> Result<usize, String> {
    let fail = |message: String| {
        format!("existing file is not readable Parquet ({message}); use --force to rewrite it")
    };
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(e.to_string()))?;
    Ok(builder.metadata().file_metadata().num_rows().max(0) as usize)
}
