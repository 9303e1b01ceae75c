//! The label client of distill (`distill-label`): imports MNIST from its raw IDX files into
//! Parquet, streams a Parquet dataset to teacher-server as Arrow IPC batches (concurrently,
//! with retries), and generates load for the server benchmark.
//!
//! - [`idx`]: IDX file parsing.
//! - [`import`]: MNIST IDX → Parquet.
//! - [`source`]: the Parquet file as a stream of request batches.
//! - [`body`]: batches as Arrow IPC or JSON request bodies.
//! - [`retry`]: retry classification and backoff.
//! - [`client`]: the HTTP client of the server API.
//! - [`label`]: the `label` command.
//! - [`loadgen`]: the `bench-load` command.
//! - [`raw_ort`]: the raw ONNX Runtime baseline of the benchmark.

pub mod body;
pub mod client;
pub mod idx;
pub mod import;
pub mod label;
pub mod loadgen;
pub mod raw_ort;
pub mod retry;
pub mod source;

pub use client::{ClientConfig, ClientError, ScoreClient};
pub use label::{label, LabelError, LabelOptions, LabelSummary};
pub use retry::RetryPolicy;
