//! Parquet shard files: written as `_shard-NNNNNN.parquet.tmp`, renamed to
//! `shard-NNNNNN.parquet` once complete and fsync'd, so a reader never sees half a shard.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, LogicalType, Type as PhysicalType, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use std::sync::Arc;

use super::commit::{Counters, FaultPoint};
use super::manifest::{io_err, sync_dir, SHARD_METADATA_KEY};
use super::{ColumnInfo, ShardInfo, StoreError, StoreOptions};

/// The file name of shard `index`.
pub(crate) fn shard_name(index: u64) -> String {
    format!("shard-{index:06}.parquet")
}

/// Parses a shard file name back into its index.
pub(crate) fn shard_index(name: &str) -> Option<u64> {
    name.strip_prefix("shard-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

/// Writer properties: zstd, bounded row groups, the shard metadata, no dictionary for float
/// output leaves (dictionaries rarely pay off for features) and for the unique `id` and digest
/// columns. Float *outputs* get byte-stream-split (~9% smaller for logits and embeddings).
/// Float *inputs* keep Parquet's dictionary encoding (which falls back to plain by itself once
/// a column chunk has more distinct values than a dictionary page holds) and no statistics:
/// measured on MNIST pixels (`proto/examples/input_codecs.rs`, table in docs/results/bench.md)
/// dictionary + zstd encodes a shard in ~35% less CPU than plain + zstd and is ~40% smaller
/// (227 against 377 B/row), where zstd levels, snappy or no codec on plain pages trade one for
/// the other.
fn properties(
    schema: &SchemaRef,
    options: &StoreOptions,
    metadata_json: String,
    inputs: &[&str],
) -> Result<WriterProperties, StoreError> {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SHARD_METADATA_KEY.to_string(),
            metadata_json,
        )]));
    let descr = ArrowSchemaConverter::new().convert(schema)?;
    for col in descr.columns() {
        let float16 = matches!(col.logical_type_ref(), Some(LogicalType::Float16));
        let float = matches!(
            col.physical_type(),
            PhysicalType::FLOAT | PhysicalType::DOUBLE
        ) || float16;
        let top = col.path().parts().first().map(String::as_str);
        if float && top.is_some_and(|t| inputs.contains(&t)) {
            b = b.set_column_statistics_enabled(col.path().clone(), EnabledStatistics::None);
        } else if float {
            b = b
                .set_column_encoding(col.path().clone(), Encoding::BYTE_STREAM_SPLIT)
                .set_column_dictionary_enabled(col.path().clone(), false);
        } else if matches!(top, Some("id") | Some(super::DIGEST_COLUMN)) {
            b = b.set_column_dictionary_enabled(col.path().clone(), false);
        }
    }
    Ok(b.build())
}

/// A shard being written.
pub(crate) struct ShardWriter {
    index: u64,
    tmp: PathBuf,
    path: PathBuf,
    writer: ArrowWriter<BufWriter<File>>,
    rows: u64,
    /// For the failpoints of tests.
    counters: Arc<Counters>,
}

impl ShardWriter {
    /// Starts shard `index` in `dir` (any stale `.tmp` of the same name is replaced); the
    /// float columns of `columns` that are model inputs are dictionary-encoded, without statistics.
    pub(crate) fn create(
        dir: &Path,
        index: u64,
        schema: SchemaRef,
        options: &StoreOptions,
        metadata_json: String,
        columns: &[ColumnInfo],
        counters: Arc<Counters>,
    ) -> Result<Self, StoreError> {
        let path = dir.join(shard_name(index));
        let tmp = dir.join(format!("_{}.tmp", shard_name(index)));
        let file = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        let inputs: Vec<&str> = columns
            .iter()
            .filter(|c| c.kind == "input")
            .map(|c| c.name.as_str())
            .collect();
        let props = properties(&schema, options, metadata_json, &inputs)?;
        let writer = ArrowWriter::try_new(BufWriter::new(file), schema, Some(props))?;
        Ok(Self {
            index,
            tmp,
            path,
            writer,
            rows: 0,
            counters,
        })
    }

    /// The shard's index.
    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    /// Writes rows (encoded into the current row group; flushed every `row_group_rows`).
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        self.counters
            .fault(FaultPoint::ShardWrite)
            .map_err(|e| io_err(&self.tmp, e))?;
        self.writer.write(batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Writes the footer, fsyncs, renames to the final name and fsyncs the folder.
    pub(crate) fn finish(self) -> Result<ShardInfo, StoreError> {
        self.counters
            .fault(FaultPoint::ShardFinish)
            .map_err(|e| io_err(&self.tmp, e))?;
        let buf = self.writer.into_inner()?;
        let file = buf
            .into_inner()
            .map_err(|e| io_err(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| io_err(&self.tmp, e))?;
        let bytes = file.metadata().map_err(|e| io_err(&self.tmp, e))?.len();
        drop(file);
        fs::rename(&self.tmp, &self.path).map_err(|e| io_err(&self.path, e))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(ShardInfo {
            file: shard_name(self.index),
            rows: self.rows,
            bytes,
        })
    }

    /// Drops the shard being written and removes its `.tmp` file (its rows stay in the WAL).
    pub(crate) fn abandon(self) {
        let tmp = self.tmp.clone();
        drop(self);
        let _ = fs::remove_file(tmp);
    }
}
