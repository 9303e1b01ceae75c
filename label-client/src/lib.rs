//! The label client of distill (`distill-label`), three jobs in three folders:
//!
//! - [`import`]: corpora into Parquet: MNIST from its raw IDX files, sentences from text,
//!   JSONL, CSV, Parquet, WordNet and BBC News.
//! - [`label`]: a Parquet dataset streamed to teacher-server as Arrow IPC batches
//!   (concurrently, with retries), optionally as seeded augmented views of each row.
//! - [`bench`]: load generation against the server, and the raw ONNX Runtime baseline.
//!
//! The HTTP client, its retries and the request bodies are the `teacher-client` crate's.

pub mod bench;
pub mod import;
pub mod label;

pub use label::{label, LabelError, LabelOptions, LabelSummary};
