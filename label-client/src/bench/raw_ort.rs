//! The benchmark's lower bound: ONNX Runtime's `Session::run` called directly from Rust on
//! the same model and batches the server gets, with no HTTP, no decoding and no storage.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type};
use ort::session::Session;
use ort::value::TensorRef;
use serde::Serialize;

use crate::label::source::{InputMapping, ParquetSource, SourceSpec};

/// Errors of the raw benchmark.
#[derive(Debug, thiserror::Error)]
pub enum RawBenchError {
    /// ONNX Runtime failed (loading the library or the model, or running it).
    #[error("onnx runtime: {0}")]
    Ort(String),
    /// Reading the input rows failed.
    #[error(transparent)]
    Source(#[from] crate::label::source::SourceError),
    /// The input column is not a FixedSizeList<Float32>, or the options are wrong.
    #[error("{0}")]
    Input(String),
}

fn ort_err<E: std::fmt::Display>(e: E) -> RawBenchError {
    RawBenchError::Ort(e.to_string())
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RawOptions {
    /// ONNX Runtime shared library (`libonnxruntime.so.*`).
    pub ort_library: PathBuf,
    /// The ONNX model.
    pub model: PathBuf,
    /// Parquet file with the input rows.
    pub data: PathBuf,
    /// Input column (Float32 lists) and the model input it feeds.
    pub input: InputMapping,
    /// Rows per run.
    pub batch_rows: usize,
    /// Distinct batches taken from the file and cycled through.
    pub batches: usize,
    /// Untimed runs first.
    pub warmup: usize,
    /// Timed runs.
    pub iters: usize,
}

/// One timed series of runs.
#[derive(Debug, Clone, Serialize)]
pub struct RawReport {
    /// Rows per run.
    pub batch_rows: usize,
    /// Timed runs.
    pub iters: usize,
    /// Rows run in the timed part.
    pub rows: u64,
    /// Wall time of the timed part, seconds.
    pub seconds: f64,
    /// Rows per second.
    pub rows_per_sec: f64,
}

/// Loads the batches, builds the session, runs it `warmup + iters` times.
pub fn run_raw(options: &RawOptions) -> Result<RawReport, RawBenchError> {
    if options.batch_rows == 0 || options.iters == 0 || options.batches == 0 {
        return Err(RawBenchError::Input(
            "--batch-rows, --iters and --batches must be at least 1".to_string(),
        ));
    }
    let batches = read_batches(
        &options.data,
        &options.input,
        options.batch_rows,
        options.batches,
    )?;
    let env = ort::init_from(&options.ort_library)
        .map_err(ort_err)?
        .build()
        .map_err(ort_err)?;
    let mut session = Session::builder(&env)
        .map_err(ort_err)?
        .commit_from_file(&options.model)
        .map_err(ort_err)?;
    let name = options.input.input.as_str();
    let mut run_one = |i: usize| -> Result<(), RawBenchError> {
        let (width, data) = &batches[i % batches.len()];
        let rows = data.len() / width;
        let tensor = TensorRef::from_array_view(([rows as i64, *width as i64], data.as_slice()))
            .map_err(ort_err)?;
        let outputs = session.run(ort::inputs![name => tensor]).map_err(ort_err)?;
        // Touch the first output so the work cannot be skipped.
        let (_, values) = outputs[0].try_extract_tensor::<f32>().map_err(ort_err)?;
        std::hint::black_box(values.first().copied());
        Ok(())
    };
    for i in 0..options.warmup {
        run_one(i)?;
    }
    let start = Instant::now();
    for i in 0..options.iters {
        run_one(i)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let rows = (options.batch_rows * options.iters) as u64;
    Ok(RawReport {
        batch_rows: options.batch_rows,
        iters: options.iters,
        rows,
        seconds,
        rows_per_sec: rows as f64 / seconds,
    })
}

/// The first `count` full batches of the input column, each as (row width, flat f32 values).
fn read_batches(
    path: &Path,
    input: &InputMapping,
    batch_rows: usize,
    count: usize,
) -> Result<Vec<(usize, Vec<f32>)>, RawBenchError> {
    let spec = SourceSpec {
        id_column: "id".to_string(),
        inputs: vec![input.clone()],
        columns: vec![],
        batch_rows,
    };
    let mut out = Vec::new();
    for batch in ParquetSource::open(path, &spec)? {
        let batch = batch?;
        if batch.num_rows() < batch_rows {
            break;
        }
        let list = batch.column(1).as_fixed_size_list();
        if list.value_type() != DataType::Float32 {
            return Err(RawBenchError::Input(format!(
                "column {:?} holds {}, the raw benchmark feeds Float32 only",
                input.column,
                list.value_type()
            )));
        }
        let width = list.value_length() as usize;
        let values = list
            .values()
            .slice(list.offset() * width, list.len() * width);
        let values = values.as_primitive::<Float32Type>();
        out.push((width, values.values().to_vec()));
        if out.len() == count {
            break;
        }
    }
    if out.is_empty() {
        return Err(RawBenchError::Input(format!(
            "{} has fewer than {batch_rows} rows",
            path.display()
        )));
    }
    Ok(out)
}
