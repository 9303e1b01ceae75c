//! The trainer's evaluation layer: exported students (and teachers) run through ONNX Runtime,
//! and the scores the trainer reports.
//!
//! - [`ort_runtime`]: the process-wide ONNX Runtime environment and [`OnnxClassifier`];
//!   [`ort_text`]: [`OnnxTextEncoder`] runs a text encoder ONNX (a student or any BERT-style
//!   model).
//! - [`score`]: error, loss and teacher agreement of logits; [`teacher`]: the teacher's own
//!   eval scores, from its stored logits.
//! - [`text`]: text encoders scored on Lee-50, WordSim-353, BBC News, fidelity and speed.

pub mod ort_runtime;
pub mod ort_text;
pub mod score;
pub mod teacher;
pub mod text;

use std::path::PathBuf;

pub use ort_runtime::{ort_environment, resolve_ort_lib, NamedOutput, OnnxClassifier};
pub use ort_text::{OnnxTextEncoder, TokenBatch};
pub use score::{score_logits, EvalMetrics};

/// What can go wrong loading or running a model in ONNX Runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file could not be read.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`reading`, ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// ONNX Runtime could not be found or loaded.
    #[error("ONNX Runtime: {0}")]
    OrtInit(String),
    /// ONNX Runtime failed to load or run a model.
    #[error("ONNX Runtime, model {path}: {message}")]
    Ort {
        /// The model file.
        path: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
    /// The model's inputs or outputs are not those of a classifier distill can drive.
    #[error("model {path} is not a usable classifier: {reason}")]
    UnsupportedModel {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The rows passed to a classifier do not match its input.
    #[error("classifier input: {0}")]
    Input(String),
}
