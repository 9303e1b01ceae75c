//! The teacher: a model with a fixed signature that maps named input tensors to named output
//! tensors. One module per runtime (`ort`); the rest of the server only sees [`Teacher`].

pub mod ort;
pub mod placement;

use std::sync::Arc;

use distill_proto::api::TensorSpec;
use distill_proto::NamedTensors;

/// Which execution provider runs the graph, chosen once when the session is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EpChoice {
    /// CUDA when it can be registered, else CPU.
    #[default]
    Auto,
    /// CUDA or fail to start.
    Cuda,
    /// CPU only.
    Cpu,
}

/// Inputs and outputs a teacher declares.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    /// Model inputs, in graph order.
    pub inputs: Vec<TensorSpec>,
    /// Graph outputs (taps included) whose element type the server supports, in graph order.
    pub outputs: Vec<TensorSpec>,
    /// Graph outputs of other element types (name, type), which cannot be served.
    pub unsupported_outputs: Vec<(String, String)>,
}

impl Signature {
    /// The input of that name.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|s| s.name == name)
    }

    /// The output of that name.
    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|s| s.name == name)
    }
}

/// What went wrong in words, with the error that caused it when there is one (shared, so
/// one failed run can be answered to every request merged into it).
#[derive(Debug, Clone)]
pub struct Cause {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    /// `context: source`, keeping `source`.
    pub fn new(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: context.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// Just the source, in its own words.
    pub fn of(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::new(String::new(), source)
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Self {
            message,
            source: None,
        }
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The source is written out too: the HTTP answer carries only this text.
        match (&self.source, self.message.is_empty()) {
            (Some(s), true) => write!(f, "{s}"),
            (Some(s), false) => write!(f, "{}: {s}", self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Errors of loading or running a teacher.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TeacherError {
    /// ONNX Runtime could not be loaded or set up.
    #[error("ONNX Runtime: {0}")]
    Runtime(#[source] Cause),
    /// The model file could not be read, edited or loaded.
    #[error("model: {0}")]
    Load(#[source] Cause),
    /// The requested execution provider cannot be used.
    #[error("execution provider: {0}")]
    Provider(#[source] Cause),
    /// The runtime refused the inputs (shapes the graph cannot take).
    #[error("the model rejected the inputs: {0}")]
    BadInput(#[source] Cause),
    /// Inference failed.
    #[error("inference failed: {0}")]
    Run(#[source] Cause),
}

/// A frozen model the server runs. Runs on one dedicated thread, hence `&mut self`.
pub trait Teacher: Send + 'static {
    /// The model's inputs and outputs.
    fn signature(&self) -> &Signature;

    /// The execution provider actually used (`cuda` or `cpu`).
    fn provider(&self) -> &str;

    /// Runs one batch; `inputs` follow the signature, and the result holds the requested
    /// graph outputs by graph name, in the order asked.
    fn run(
        &mut self,
        inputs: &NamedTensors,
        outputs: &[String],
    ) -> Result<NamedTensors, TeacherError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn causes_keep_their_source_and_say_it() {
        let io = std::io::Error::other("disk on fire");
        let e = TeacherError::Run(Cause::new("reading output \"y\"", io));
        assert_eq!(
            e.to_string(),
            "inference failed: reading output \"y\": disk on fire"
        );
        let cause = e.source().expect("the cause");
        let root = cause.source().expect("the io error");
        assert_eq!(root.to_string(), "disk on fire");
        let bare = TeacherError::BadInput(Cause::of(std::io::Error::other("bad shape")));
        assert_eq!(bare.to_string(), "the model rejected the inputs: bad shape");
        let plain = TeacherError::Load("no such input".into());
        assert!(plain.source().and_then(|c| c.source()).is_none());
    }
}
