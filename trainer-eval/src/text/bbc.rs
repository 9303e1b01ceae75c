//! BBC News 5-class: the train and test Parquet files of `distill-label import-bbc` (its fixed
//! split; columns `text`, `title`, `label`). Scores: nearest-centroid accuracy and the linear
//! probe ([`super::probe`]), both trained on the train split and scored on the test split.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use super::metrics::{nearest_centroid_accuracy, Embeddings};
use super::probe::{LinearProbe, ProbeConfig};
use super::TextEvalError;

/// One split of BBC News.
#[derive(Debug, Clone, PartialEq)]
pub struct BbcSplit {
    /// The file.
    pub path: PathBuf,
    /// Whole articles (title line included).
    pub texts: Vec<String>,
    /// First lines.
    pub titles: Vec<String>,
    /// Class names, one per row.
    pub labels: Vec<String>,
}

/// The BBC result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BbcScore {
    /// Class names, sorted (the class index order).
    pub classes: Vec<String>,
    /// Train articles.
    pub train: usize,
    /// Test articles.
    pub test: usize,
    /// Nearest-centroid accuracy on the test split.
    pub centroid_accuracy: f64,
    /// Linear-probe accuracy on the test split.
    pub probe_accuracy: f64,
    /// Linear-probe accuracy on the train split.
    pub probe_train_accuracy: f64,
    /// The probe's final train objective.
    pub probe_train_loss: f64,
    /// The probe's settings.
    pub probe: ProbeConfig,
}

/// The values of a string column, row by row; a null is an error naming file, column and row.
fn strings(
    path: &Path,
    batch: &arrow::record_batch::RecordBatch,
    name: &str,
    first_row: usize,
) -> Result<Vec<String>, TextEvalError> {
    let err = |message: String| TextEvalError::Data {
        path: path.to_path_buf(),
        message,
    };
    let col = batch.column_by_name(name).ok_or_else(|| {
        err(format!(
            "no column `{name}` (import it with distill-label import-bbc)"
        ))
    })?;
    let get = |i: usize| -> Option<String> {
        match col.data_type() {
            DataType::Utf8 => Some(col.as_string::<i32>().value(i).to_string()),
            DataType::LargeUtf8 => Some(col.as_string::<i64>().value(i).to_string()),
            DataType::Utf8View => Some(col.as_string_view().value(i).to_string()),
            _ => None,
        }
    };
    (0..col.len())
        .map(|i| {
            if col.is_null(i) {
                return Err(err(format!(
                    "column `{name}` is null at row {}",
                    first_row + i
                )));
            }
            get(i).ok_or_else(|| {
                err(format!(
                    "column `{name}` is {}, expected a string column",
                    col.data_type()
                ))
            })
        })
        .collect()
}

impl BbcSplit {
    /// Reads one split file.
    pub fn read(path: &Path) -> Result<Self, TextEvalError> {
        let err = |message: String| TextEvalError::Data {
            path: path.to_path_buf(),
            message,
        };
        let file = File::open(path).map_err(|source| TextEvalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| err(format!("not a readable Parquet file: {e}")))?
            .build()
            .map_err(|e| err(e.to_string()))?;
        let mut split = Self {
            path: path.to_path_buf(),
            texts: Vec::new(),
            titles: Vec::new(),
            labels: Vec::new(),
        };
        for batch in reader {
            let batch = batch.map_err(|e| err(e.to_string()))?;
            let first = split.texts.len();
            split.texts.extend(strings(path, &batch, "text", first)?);
            split.titles.extend(strings(path, &batch, "title", first)?);
            split.labels.extend(strings(path, &batch, "label", first)?);
        }
        if split.texts.is_empty() {
            return Err(err("no rows".into()));
        }
        if let Some(i) = split.texts.iter().position(|t| t.trim().is_empty()) {
            return Err(err(format!("column `text` is empty at row {i}")));
        }
        Ok(split)
    }
}

/// Class names (sorted), and each train and test row's index into them.
pub type ClassIndices = (Vec<String>, Vec<usize>, Vec<usize>);

/// The sorted class names of `train`, and each row's class index in `train` and `test`
/// (a test class absent from train is an error).
pub fn class_indices(train: &BbcSplit, test: &BbcSplit) -> Result<ClassIndices, TextEvalError> {
    let mut classes = train.labels.clone();
    classes.sort();
    classes.dedup();
    let index = |split: &BbcSplit| -> Result<Vec<usize>, TextEvalError> {
        split
            .labels
            .iter()
            .enumerate()
            .map(|(row, l)| {
                classes.binary_search(l).map_err(|_| TextEvalError::Data {
                    path: split.path.clone(),
                    message: format!("row {row} has label {l:?}, which no train row has"),
                })
            })
            .collect()
    };
    let (a, b) = (index(train)?, index(test)?);
    if classes.len() < 2 {
        return Err(TextEvalError::Data {
            path: train.path.clone(),
            message: format!(
                "{} class(es); classification needs 2 or more",
                classes.len()
            ),
        });
    }
    Ok((classes, a, b))
}

/// Scores train and test embeddings (rows in the files' order).
pub fn score(
    train: &BbcSplit,
    test: &BbcSplit,
    train_emb: &Embeddings,
    test_emb: &Embeddings,
    probe: &ProbeConfig,
) -> Result<BbcScore, TextEvalError> {
    let (classes, ytrain, ytest) = class_indices(train, test)?;
    let k = classes.len();
    let centroid_accuracy = nearest_centroid_accuracy(train_emb, &ytrain, test_emb, &ytest, k)?;
    let fitted = LinearProbe::fit(train_emb, &ytrain, k, probe)?;
    Ok(BbcScore {
        train: train.texts.len(),
        test: test.texts.len(),
        centroid_accuracy,
        probe_accuracy: fitted.accuracy(test_emb, &ytest)?,
        probe_train_accuracy: fitted.accuracy(train_emb, &ytrain)?,
        probe_train_loss: fitted.train_loss,
        probe: *probe,
        classes,
    })
}
