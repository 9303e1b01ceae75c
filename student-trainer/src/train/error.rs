//! [`TrainError`]: what can end a training run, each variant keeping its cause as `source`.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::metrics::MetricsError;
use trainer_core::export::ExportError;
use trainer_core::loss::LossError;
use trainer_core::model::ModelError;
use trainer_core::optim::OptimError;
use trainer_data::DataError;

/// A boxed cause, for failures that come from several libraries (I/O, safetensors, JSON).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The config file is unreadable or invalid.
    #[error(transparent)]
    ConfigFile(#[from] ConfigError),
    /// The config does not fit the data or the student.
    #[error("config: {0}")]
    Config(String),
    /// Training or eval data is missing or malformed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The student could not be built or run.
    #[error("student: {0}")]
    Model(#[from] ModelError),
    /// A loss term failed (shape or value problems).
    #[error("loss term {term}: {source}")]
    Loss {
        /// The term's label, e.g. `kd:logits`.
        term: String,
        /// What failed (boxed: a loss error carries both shapes).
        source: Box<TermError>,
    },
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}, step {step}: loss is {value}; lower train.lr")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// Step within the epoch.
        step: usize,
        /// The loss value.
        value: f32,
    },
    /// A candle error.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// An optimizer error.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        source: BoxError,
    },
    /// The run folder is not usable.
    #[error("run folder {path}: {message}")]
    RunFolder {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file of the run folder could not be written.
    #[error("run folder {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `curves.png` could not be drawn.
    #[error("run folder {path}: {source}")]
    Plot {
        /// The image file.
        path: PathBuf,
        /// plotters' error.
        source: BoxError,
    },
    /// `--resume` found a `config.toml` it cannot read.
    #[error("run folder {path}: cannot resume: {source}")]
    Resume {
        /// The run folder.
        path: PathBuf,
        /// Why its config does not load (an old layout says how to convert it).
        source: ConfigError,
    },
    /// Writing metrics or the summary failed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// ONNX export failed.
    #[error("ONNX export: {0}")]
    Export(#[from] ExportError),
}

/// Why one loss term could not be evaluated on a batch.
#[derive(Debug, thiserror::Error)]
pub enum TermError {
    /// The loss function refused its inputs.
    #[error(transparent)]
    Loss(#[from] LossError),
    /// Projecting or combining the term's tensors failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The batch lacks what the term reads (labels, a teacher target, a hidden layer).
    #[error("{0}")]
    Missing(&'static str),
}
