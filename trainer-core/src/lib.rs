//! The trainer's compute layer, free of file formats and the network: student models, their
//! losses, optimizers and learning-rate schedules, and ONNX graph export.
//!
//! - [`model`]: student architectures ([`model::image`], [`model::text`]), with their
//!   `[student]` and `[self_distill]` config.
//! - [`loss`]: the distillation losses and the `[[loss]]` terms that select them.
//! - [`optim`]: AdamW/SGD with checkpointable state, LR schedules, `[train.optimizer]` and
//!   `[train.schedule]`.
//! - [`export`]: candle weights → ONNX graphs and safetensors checkpoints.
//! - [`serde_kind`]: the `key = "kind"` shorthand of the kind-tagged config tables.

pub mod export;
pub mod loss;
pub mod model;
pub mod optim;
pub mod serde_kind;
