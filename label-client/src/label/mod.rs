//! `distill-label label`: streams a Parquet file to the server as Arrow IPC batches over
//! several concurrent connections, then prints what was stored.
//!
//! One reader thread decodes and encodes batches into a bounded queue (so at most
//! `concurrency` encoded batches wait in memory); `concurrency` worker threads send them.
//! The first permanent error stops the run and is returned.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::time::Instant;

use arrow::array::AsArray;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};

use teacher_client::body::{arrow_ipc_body, BodyError};
use teacher_client::client::{ClientConfig, ClientError, ScoreClient};

use source::{InputMapping, ParquetSource, SourceError, SourceSpec};
use views::{ViewError, ViewOptions};

pub mod source;
pub mod views;

/// What to label and how.
#[derive(Debug, Clone)]
pub struct LabelOptions {
    /// Server connection and retries.
    pub client: ClientConfig,
    /// The Parquet file to stream.
    pub data: PathBuf,
    /// Dataset to store the rows in.
    pub dataset: String,
    /// Column holding the row ids.
    pub id_column: String,
    /// Model inputs; empty: a text teacher's `text` column, else one column per model input,
    /// named like it (asks the server).
    pub inputs: Vec<InputMapping>,
    /// Pass-through columns.
    pub columns: Vec<String>,
    /// Rows per request.
    pub batch_rows: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Seal the dataset when every row is stored.
    pub seal: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Label K seeded augmented views of each row instead of the row itself.
    pub views: Option<ViewOptions>,
}

/// What a label run did.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSummary {
    /// Rows sent and acknowledged (views, when labelling views).
    pub rows: u64,
    /// Views labelled per source row (1 without `--views`).
    pub views: u32,
    /// Rows newly stored.
    pub stored: u64,
    /// Rows the dataset already held.
    pub duplicates: u64,
    /// Requests resent after a transient failure.
    pub retries: u64,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// The seal answer (the dataset manifest), when `seal` was asked.
    pub sealed: Option<serde_json::Value>,
}

impl LabelSummary {
    /// Acknowledged rows per second.
    pub fn rows_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for LabelSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rows {}{}  stored {}  duplicates {}  retries {}  seconds {:.2}  rows/s {:.0}",
            self.rows,
            if self.views > 1 {
                format!(
                    " ({} views of {} rows)",
                    self.views,
                    self.rows / self.views as u64
                )
            } else {
                String::new()
            },
            self.stored,
            self.duplicates,
            self.retries,
            self.seconds,
            self.rows_per_sec()
        )
    }
}

/// Errors of a label run.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The options make no sense.
    #[error("invalid options: {0}")]
    Options(String),
    /// Reading the Parquet file failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Encoding a batch failed.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The rows cannot be expanded into augmented views.
    #[error(transparent)]
    Views(#[from] ViewError),
    /// The server refused a request or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// One encoded request waiting to be sent.
struct Job {
    body: Bytes,
    rows: usize,
    what: String,
}

/// Refuses a bad dataset name and zero batch sizes or concurrency before anything is read.
fn check_options(options: &LabelOptions) -> Result<(), LabelError> {
    distill_proto::store::validate_dataset_name(&options.dataset)
        .map_err(|e| LabelError::Options(e.to_string()))?;
    if options.batch_rows == 0 || options.concurrency == 0 {
        return Err(LabelError::Options(
            "--batch-rows and --concurrency must be at least 1".to_string(),
        ));
    }
    Ok(())
}

/// The inputs to send: `--input` as given, else a text teacher's text input, else every model
/// input, each read from the column of the same name.
fn inputs(options: &LabelOptions, client: &ScoreClient) -> Result<Vec<InputMapping>, LabelError> {
    if !options.inputs.is_empty() {
        return Ok(options.inputs.clone());
    }
    let model = client.model()?;
    Ok(match model.text {
        Some(text) => vec![InputMapping {
            column: text.input.clone(),
            input: text.input,
        }],
        None => model
            .inputs
            .iter()
            .map(|i| InputMapping {
                column: i.name.clone(),
                input: i.name.clone(),
            })
            .collect(),
    })
}

/// A progress bar over `total` rows with a rows/s rate, or a hidden one.
fn progress_bar(shown: bool, total: u64) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows  {rows_per_sec}  eta {eta}",
    ) {
        bar.set_style(style.with_key(
            "rows_per_sec",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} rows/s", state.per_sec());
            },
        ));
    }
    bar
}

/// What the reader and the senders of one run share.
struct Run<'a> {
    options: &'a LabelOptions,
    client: &'a ScoreClient,
    bar: ProgressBar,
    stop: AtomicBool,
    first_error: Mutex<Option<LabelError>>,
    rows: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
}

impl Run<'_> {
    /// Keeps the first error and tells every thread to stop.
    fn fail(&self, e: LabelError) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = self.first_error.lock() {
            slot.get_or_insert(e);
        }
    }

    /// A sender: sends queued jobs until the queue closes; after a failure it drains the
    /// queue without sending, so the reader never blocks.
    fn send_all(&self, rx: &Mutex<Receiver<Job>>) {
        loop {
            let job = match rx.lock() {
                Ok(r) => r.recv(),
                Err(_) => return,
            };
            let Ok(job) = job else { return };
            if self.stop.load(Ordering::SeqCst) {
                continue;
            }
            let dataset = Some(self.options.dataset.as_str());
            match self.client.score_arrow(dataset, None, &job.body, &job.what) {
                Ok(resp) if resp.rows == job.rows => {
                    self.rows.fetch_add(job.rows as u64, Ordering::Relaxed);
                    self.stored.fetch_add(resp.stored as u64, Ordering::Relaxed);
                    self.duplicates
                        .fetch_add(resp.duplicates as u64, Ordering::Relaxed);
                    self.bar.inc(job.rows as u64);
                }
                Ok(resp) => self.fail(LabelError::Client(ClientError::BadResponse {
                    what: job.what,
                    message: format!("server scored {} rows of {}", resp.rows, job.rows),
                })),
                Err(e) => self.fail(e.into()),
            }
        }
    }

    /// The reader: decodes the file's batches, expands them into views, encodes and queues
    /// them; the first error stops it.
    fn read_all(&self, source: ParquetSource, layout: Option<[usize; 3]>, tx: SyncSender<Job>) {
        let mut offset = 0u64;
        for (index, batch) in source.enumerate() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let job = batch.map_err(LabelError::from).and_then(|b| {
                let b = match (&self.options.views, layout) {
                    (Some(v), Some(layout)) => views::expand(&b, v, layout)?,
                    _ => b,
                };
                encode_job(index, offset, &b).map_err(LabelError::from)
            });
            match job {
                Ok(job) => {
                    offset += job.rows as u64;
                    if tx.send(job).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    self.fail(e);
                    break;
                }
            }
        }
    }
}

/// Streams `options.data` to the server and returns what was stored.
pub fn label(options: &LabelOptions) -> Result<LabelSummary, LabelError> {
    check_options(options)?;
    let client = ScoreClient::new(&options.client)?;
    let k = options.views.map_or(1, |v| v.count.max(1));
    let spec = SourceSpec {
        id_column: options.id_column.clone(),
        inputs: inputs(options, &client)?,
        columns: options.columns.clone(),
        // A request carries about `batch_rows` rows, views included.
        batch_rows: (options.batch_rows / k as usize).max(1),
    };
    let source = ParquetSource::open(&options.data, &spec)?;
    let layout = match &options.views {
        Some(v) => Some(views::check(&source.schema(), spec.inputs.len(), v)?),
        None => None,
    };
    let run = Run {
        options,
        client: &client,
        bar: progress_bar(options.progress, source.rows() * k as u64),
        stop: AtomicBool::new(false),
        first_error: Mutex::new(None),
        rows: AtomicU64::new(0),
        stored: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
    };
    let start = Instant::now();
    let (tx, rx) = sync_channel::<Job>(options.concurrency);
    let rx = Mutex::new(rx);
    std::thread::scope(|scope| {
        for _ in 0..options.concurrency {
            scope.spawn(|| run.send_all(&rx));
        }
        run.read_all(source, layout, tx);
    });
    run.bar.finish_and_clear();
    if let Some(e) = run.first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let seconds = start.elapsed().as_secs_f64();
    let sealed = if options.seal {
        Some(client.seal(&options.dataset)?)
    } else {
        None
    };
    Ok(LabelSummary {
        rows: run.rows.into_inner(),
        views: k,
        stored: run.stored.into_inner(),
        duplicates: run.duplicates.into_inner(),
        retries: client.retries(),
        seconds,
        sealed,
    })
}

/// Encodes one batch, describing it by position and id range for error messages.
fn encode_job(index: usize, offset: u64, batch: &RecordBatch) -> Result<Job, BodyError> {
    let rows = batch.num_rows();
    let ids = batch.column(0).as_string_opt::<i32>();
    let range = match ids {
        Some(ids) if rows > 0 => format!(", ids {}..{}", ids.value(0), ids.value(rows - 1)),
        _ => String::new(),
    };
    Ok(Job {
        body: Bytes::from(arrow_ipc_body(batch)?),
        rows,
        what: format!(
            "batch {index} (rows {offset}..{}{range})",
            offset + rows as u64
        ),
    })
}
