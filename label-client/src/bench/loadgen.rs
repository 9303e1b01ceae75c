//! `distill-label bench-load`: a load generator for the benchmark. It encodes the first rows
//! of a Parquet file into request bodies up front (JSON or Arrow IPC), then sends them all
//! with a fixed number of concurrent connections and times them, so both encodings and any
//! server speaking the same API (teacher-server, the FastAPI baseline) get identical load.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;

use crate::label::source::{InputMapping, ParquetSource, SourceSpec};
use crate::label::LabelError;
use teacher_client::body::{arrow_ipc_body, json_body};
use teacher_client::client::{ClientConfig, ClientError, ScoreClient};

/// Request body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// `application/json` `ScoreRequest`.
    Json,
    /// Arrow IPC stream.
    Arrow,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Server connection and retries.
    pub client: ClientConfig,
    /// The Parquet file the rows come from.
    pub data: PathBuf,
    /// Model inputs.
    pub inputs: Vec<InputMapping>,
    /// Pass-through columns.
    pub columns: Vec<String>,
    /// Rows to send (the first ones of the file).
    pub rows: usize,
    /// Rows per request.
    pub batch_rows: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Body encoding.
    pub format: BodyFormat,
    /// Dataset the rows are stored in (use a fresh one per run, or rows are duplicates);
    /// `None` scores without storing.
    pub dataset: Option<String>,
}

/// One timed run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Body encoding.
    pub format: BodyFormat,
    /// Rows acknowledged.
    pub rows: u64,
    /// Rows the server reported as newly stored.
    pub stored: u64,
    /// Requests sent.
    pub requests: usize,
    /// Retries needed (429/5xx/transport).
    pub retries: u64,
    /// Request body bytes per row.
    pub body_bytes_per_row: f64,
    /// Wall time from the first send to the last answer, seconds.
    pub seconds: f64,
    /// Rows per second.
    pub rows_per_sec: f64,
}

/// Encodes the bodies, then sends and times them.
pub fn run_load(options: &LoadOptions) -> Result<LoadReport, LabelError> {
    if options.batch_rows == 0 || options.concurrency == 0 || options.rows == 0 {
        return Err(LabelError::Options(
            "--rows, --batch-rows and --concurrency must be at least 1".to_string(),
        ));
    }
    let client = ScoreClient::new(&options.client)?;
    let spec = SourceSpec {
        id_column: "id".to_string(),
        inputs: options.inputs.clone(),
        columns: options.columns.clone(),
        batch_rows: options.batch_rows,
    };
    let input_names: Vec<String> = options.inputs.iter().map(|m| m.input.clone()).collect();
    let mut bodies: Vec<(Bytes, usize)> = Vec::new();
    let mut total = 0usize;
    for batch in ParquetSource::open(&options.data, &spec)? {
        let batch = batch?;
        let take = batch.num_rows().min(options.rows - total);
        let batch = batch.slice(0, take);
        let body = match options.format {
            BodyFormat::Arrow => arrow_ipc_body(&batch)?,
            BodyFormat::Json => json_body(&batch, &input_names, options.dataset.as_deref())?,
        };
        bodies.push((Bytes::from(body), take));
        total += take;
        if total >= options.rows {
            break;
        }
    }
    if total < options.rows {
        return Err(LabelError::Options(format!(
            "{} has only {total} rows, {} asked",
            options.data.display(),
            options.rows
        )));
    }
    let body_bytes: usize = bodies.iter().map(|(b, _)| b.len()).sum();

    let next = AtomicUsize::new(0);
    let (rows, stored) = (AtomicU64::new(0), AtomicU64::new(0));
    let first_error: Mutex<Option<ClientError>> = Mutex::new(None);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..options.concurrency {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((body, n)) = bodies.get(i) else {
                    return;
                };
                if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return;
                }
                let what = format!("request {i}");
                let result = match options.format {
                    BodyFormat::Arrow => {
                        client.score_arrow(options.dataset.as_deref(), None, body, &what)
                    }
                    BodyFormat::Json => client.score_json(body, &what),
                };
                match result {
                    Ok(resp) => {
                        rows.fetch_add(*n as u64, Ordering::Relaxed);
                        stored.fetch_add(resp.stored as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e.into());
    }
    let rows = rows.into_inner();
    Ok(LoadReport {
        format: options.format,
        rows,
        stored: stored.into_inner(),
        requests: bodies.len(),
        retries: client.retries(),
        body_bytes_per_row: body_bytes as f64 / total as f64,
        seconds,
        rows_per_sec: rows as f64 / seconds,
    })
}
