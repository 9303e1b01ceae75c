//! Getting a trained student out of candle: an ONNX graph (so ONNX Runtime, the teacher server
//! or a next distillation round can run it) and safetensors checkpoints. Running exported
//! models through ONNX Runtime is `trainer-eval`'s job.
//!
//! - [`onnx_graph`]: candle weights → ONNX `ModelProto` (logits plus `hidden{i}` outputs).
//! - [`exit_onnx`]: a self-distillation exit as a truncated model that stops at that exit.
//! - [`checkpoint`]: strict safetensors save/load of a `VarMap`.
//! - [`text_onnx`]: text students → ONNX (`input_ids`, `attention_mask` → `embedding`), and a
//!   transformer's self-distillation exit truncated the same way.
//!
//! Files are written with [`distill_proto::atomic`] (tmp + fsync + rename + folder fsync), so
//! readers never see a half-written file.

pub mod checkpoint;
pub mod exit_onnx;
pub mod onnx_graph;
pub mod text_onnx;

use std::path::PathBuf;

pub use checkpoint::{load_safetensors, save_safetensors};
pub use exit_onnx::{exit_to_onnx, export_exit_onnx};
pub use onnx_graph::{export_onnx, student_to_onnx, HIDDEN_OUTPUT_PREFIX};
pub use text_onnx::{
    export_text_exit_onnx, export_text_onnx, text_exit_to_onnx, text_student_to_onnx,
};

/// What can go wrong exporting or checkpointing a student.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// An input/output name that cannot be used in the graph.
    #[error("invalid graph tensor name: {0}")]
    InvalidName(String),
    /// A self-distillation exit the student cannot be truncated at.
    #[error("cannot export the exit: {0}")]
    InvalidExit(String),
    /// Reading weights out of candle failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`writing`, `renaming to`, ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A checkpoint lacks a weight the model needs.
    #[error("checkpoint {path} has no tensor `{name}` (it holds: {present})")]
    MissingTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The weight name the model needs.
        name: String,
        /// The names the file does hold, comma separated.
        present: String,
    },
    /// A checkpoint weight has the wrong shape for the model.
    #[error("checkpoint {path}: tensor `{name}` has shape {got:?}, the model needs {expected:?}")]
    ShapeMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// The weight name.
        name: String,
        /// The shape the model's variable has.
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// A checkpoint holds tensors the model does not have (a checkpoint of another architecture).
    #[error("checkpoint {path} holds tensors this model does not have: {names}")]
    UnexpectedTensors {
        /// The checkpoint file.
        path: PathBuf,
        /// The extra names, comma separated.
        names: String,
    },
}

/// A failed atomic write keeps its step, file and OS error.
impl From<distill_proto::atomic::AtomicWriteError> for ExportError {
    fn from(e: distill_proto::atomic::AtomicWriteError) -> Self {
        ExportError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}
