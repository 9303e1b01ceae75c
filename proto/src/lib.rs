//! The shared contract of distill: what `teacher-server`, `student-trainer` and
//! `label-client` must agree on.
//!
//! - [`api`]: the JSON types of the HTTP API.
//! - [`atomic`]: crash-safe file replacement (tmp + fsync + rename + folder fsync).
//! - [`arrow_codec`]: tensors to and from Arrow columns (store, Arrow request bodies, trainer).
//! - [`tensor`]: dense tensors of the dtypes ONNX models take and give.
//! - [`onnx`]: the ONNX protobuf messages, model editing (taps) and graph building (export).
//! - [`store`]: the Parquet label store: schema, manifest, write-ahead log, writer, reader.
//! - `tokenizer` (feature `tokenizer`): the one `tokenizer.json` loader of server and trainer.
//! - [`views`]: seeded augmented views of rows, labelled by `distill-label` and replayed by the
//!   trainer.

pub mod api;
pub mod arrow_codec;
pub mod atomic;
pub mod onnx;
pub mod openai;
pub mod store;
pub mod tensor;
#[cfg(feature = "tokenizer")]
pub mod tokenizer;
pub mod views;

pub use tensor::{DType, NamedTensors, Tensor, TensorData, TensorError};
