//! The teacher: a model with a fixed signature that maps named input tensors to named output
//! tensors. One module per runtime (`ort`); the rest of the server only sees [`Teacher`].

pub mod ort;

use distill_proto::api::TensorSpec;
use distill_proto::Tensor;

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

/// Errors of loading or running a teacher.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TeacherError {
    /// ONNX Runtime could not be loaded or set up.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    /// The model file could not be read, edited or loaded.
    #[error("model: {0}")]
    Load(String),
    /// The requested execution provider cannot be used.
    #[error("execution provider: {0}")]
    Provider(String),
    /// The runtime refused the inputs (shapes the graph cannot take).
    #[error("the model rejected the inputs: {0}")]
    BadInput(String),
    /// Inference failed.
    #[error("inference failed: {0}")]
    Run(String),
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
        inputs: &[(String, Tensor)],
        outputs: &[String],
    ) -> Result<Vec<(String, Tensor)>, TeacherError>;
}
