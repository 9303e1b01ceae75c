//! `import-mnist`: raw MNIST IDX files → `mnist-train.parquet` / `mnist-test.parquet`.
//!
//! Columns: `id` Utf8 (`train-0`, ... / `test-0`, ...), `pixels`
//! FixedSizeList<Float32, rows*cols> scaled to [0, 1], `label` Int64. zstd, written
//! atomically (`proto::atomic`), so a crash never leaves a half file under the final name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::idx::{read_images, read_labels, IdxError, IdxImages};
use super::{existing_rows, finish_parquet, parquet_writer, ROW_GROUP_ROWS};

/// Errors of the MNIST import.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An IDX file is missing or malformed.
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// Images and labels files disagree on the number of rows.
    #[error("{images} holds {image_count} images but {labels} holds {label_count} labels")]
    CountMismatch {
        /// Images file.
        images: PathBuf,
        /// Images in it.
        image_count: usize,
        /// Labels file.
        labels: PathBuf,
        /// Labels in it.
        label_count: usize,
    },
    /// Writing the output failed.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The output file that could not be written.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// One split of MNIST as it is named on disk and in ids.
#[derive(Debug, Clone, Copy)]
struct Split {
    /// IDX file name prefix (`train`, `t10k`).
    idx_prefix: &'static str,
    /// Id prefix and output file stem (`train`, `test`).
    name: &'static str,
}

const SPLITS: [Split; 2] = [
    Split {
        idx_prefix: "train",
        name: "train",
    },
    Split {
        idx_prefix: "t10k",
        name: "test",
    },
];

/// What happened to one output file.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedFile {
    /// The Parquet file.
    pub path: PathBuf,
    /// Rows in it.
    pub rows: usize,
    /// False when the file was already there and left alone (no `--force`).
    pub written: bool,
}

/// Imports both MNIST splits from `idx_dir` into `out_dir/mnist-{train,test}.parquet`.
/// Existing outputs are kept unless `force` is set.
pub fn import_mnist(
    idx_dir: &Path,
    out_dir: &Path,
    force: bool,
) -> Result<Vec<ImportedFile>, ImportError> {
    std::fs::create_dir_all(out_dir).map_err(|e| ImportError::Write {
        path: out_dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut done = Vec::new();
    for split in SPLITS {
        let out = out_dir.join(format!("mnist-{}.parquet", split.name));
        if out.exists() && !force {
            let rows = existing_rows(&out).map_err(|message| ImportError::Write {
                path: out.clone(),
                message,
            })?;
            done.push(ImportedFile {
                path: out,
                rows,
                written: false,
            });
            continue;
        }
        let images_path = idx_dir.join(format!("{}-images-idx3-ubyte", split.idx_prefix));
        let labels_path = idx_dir.join(format!("{}-labels-idx1-ubyte", split.idx_prefix));
        let images = read_images(&images_path)?;
        let labels = read_labels(&labels_path)?;
        if images.count != labels.len() {
            return Err(ImportError::CountMismatch {
                images: images_path,
                image_count: images.count,
                labels: labels_path,
                label_count: labels.len(),
            });
        }
        write_split(&out, split.name, &images, &labels)?;
        done.push(ImportedFile {
            path: out,
            rows: images.count,
            written: true,
        });
    }
    Ok(done)
}

/// The Arrow schema of an imported split with `image_len` pixels per row.
pub fn mnist_schema(image_len: usize) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new(
            "pixels",
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, false)),
                image_len as i32,
            ),
            false,
        ),
        Field::new("label", DataType::Int64, false),
    ]))
}

/// Builds the record batch of rows `start..end` of a split.
pub fn mnist_batch(
    id_prefix: &str,
    images: &IdxImages,
    labels: &[u8],
    start: usize,
    end: usize,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let len = images.image_len();
    let schema = mnist_schema(len);
    let ids: StringArray = (start..end)
        .map(|i| Some(format!("{id_prefix}-{i}")))
        .collect();
    // Scale grey levels to [0, 1] as float32, the usual MNIST preprocessing.
    let values: Float32Array = images.pixels[start * len..end * len]
        .iter()
        .map(|&p| p as f32 / 255.0)
        .collect();
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let pixels = FixedSizeListArray::try_new(item, len as i32, Arc::new(values), None)?;
    let label: Int64Array = labels[start..end].iter().map(|&l| l as i64).collect();
    RecordBatch::try_new(
        schema,
        vec![Arc::new(ids) as ArrayRef, Arc::new(pixels), Arc::new(label)],
    )
}

/// Writes one split to `out` atomically.
fn write_split(
    out: &Path,
    id_prefix: &str,
    images: &IdxImages,
    labels: &[u8],
) -> Result<(), ImportError> {
    let fail = |message: String| ImportError::Write {
        path: out.to_path_buf(),
        message,
    };
    let mut writer = parquet_writer(out, mnist_schema(images.image_len())).map_err(fail)?;
    let mut start = 0;
    while start < images.count {
        let end = (start + ROW_GROUP_ROWS).min(images.count);
        let batch =
            mnist_batch(id_prefix, images, labels, start, end).map_err(|e| fail(e.to_string()))?;
        writer.write(&batch).map_err(|e| fail(e.to_string()))?;
        start = end;
    }
    finish_parquet(writer).map_err(fail)
}
