//! The label client of distill (`distill-label`): imports MNIST from its raw IDX files and
//! sentences (text, JSONL, CSV, Parquet, WordNet, BBC News) into Parquet, streams a Parquet dataset to teacher-server as Arrow IPC batches (concurrently,
//! with retries), and generates load for the server benchmark.
//!
//! - [`idx`]: IDX file parsing.
//! - [`import`]: MNIST IDX → Parquet.
//! - [`text`]: content ids and the Utf8 Parquet writer the text importers share.
//! - [`text_import`]: sentences from txt/JSONL/CSV/Parquet → Parquet `id`, `text`.
//! - [`wordnet`]: WordNet 3.0 definitions and examples → Parquet.
//! - [`bbc`]: BBC News articles → train/test Parquet with a fixed split.
//! - [`source`]: the Parquet file as a stream of request batches.
//! - [`body`]: batches as Arrow IPC or JSON request bodies.
//! - [`retry`]: retry classification and backoff.
//! - [`client`]: the HTTP client of the server API.
//! - [`label`]: the `label` command.
//! - [`loadgen`]: the `bench-load` command.
//! - [`raw_ort`]: the raw ONNX Runtime baseline of the benchmark.
//! - [`views`]: seeded augmented views of each row (`label --views K --augment ...`).

pub mod bbc;
pub mod body;
pub mod client;
pub mod idx;
pub mod import;
pub mod label;
pub mod loadgen;
pub mod raw_ort;
pub mod retry;
pub mod source;
pub mod text;
pub mod text_import;
pub mod views;
pub mod wordnet;

pub use client::{ClientConfig, ClientError, ScoreClient};
pub use label::{label, LabelError, LabelOptions, LabelSummary};
pub use retry::RetryPolicy;
