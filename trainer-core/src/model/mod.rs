//! Student architectures as candle modules with named, stable weight names.
//!
//! - [`config`]: the `[student]` TOML table ([`StudentConfig`]).
//! - [`image`]: the image students, [`image::mlp`] and [`image::cnn`], one file per family.
//! - [`dropout`]: seeded dropout used by both; [`exits`]: self-distillation exit heads.
//! - [`linear`]: the fully connected layer as one fused autograd node (the CPU hot path);
//!   [`fused`]: LayerNorm and softmax likewise.
//! - [`text`]: the text students, [`text::static_embed`] and [`text::transformer`]
//!   (BERT-style), behind [`TextStudent`]; their config in [`text::config`], starting weights
//!   from BERT safetensors in [`text::weights`], the static table's PCA in [`text::pca`].
//! - [`vars`]: which variable names belong to the exported student.
//!
//! Weight names (the keys in the `VarMap` and in checkpoints):
//! - MLP: `fc0.weight`, `fc0.bias`, `fc1.…`, `out.weight`, `out.bias`.
//! - CNN: `conv0.weight`, `conv0.bias`, `conv1.…`, `fc.weight`, `fc.bias`, `out.weight`, `out.bias`.
//!
//! - Static: `embeddings.weight [vocab, dim]`, `projector.*`.
//! - Transformer: Hugging Face BERT names (`embeddings.word_embeddings.weight`,
//!   `encoder.layer.N.attention.self.query.weight`, ...), `projector.*`.
//!
//! Linear weights are `[out, in]`, conv weights `[out, in, 3, 3]` (PyTorch's layouts).

pub mod config;
pub mod dropout;
pub mod exits;
pub mod fused;
pub mod image;
pub mod linear;
pub mod text;
pub mod vars;

use std::path::PathBuf;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

pub use config::StudentConfig;
pub use dropout::Dropout;
pub use exits::{ExitHead, Exits, SelfDistillConfig};
pub use image::{Cnn, Mlp};
pub use text::{StaticConfig, TextOutput, TextStudent, TransformerConfig};

/// What can go wrong building or running a student.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The `[student]` configuration does not describe a buildable network.
    #[error("invalid student config: {0}")]
    Config(String),
    /// The input batch is not `[batch, input_dim]`.
    #[error("student input has shape {got:?}, expected [batch, {expected}]")]
    InputShape {
        /// The input width the student was built for.
        expected: usize,
        /// The shape that was passed.
        got: Vec<usize>,
    },
    /// The input batch is not f32.
    #[error("student input has dtype {0:?}, expected f32")]
    InputDType(DType),
    /// A text student's input batch is malformed (shape, dtype, id out of range).
    #[error("text student input: {0}")]
    TextInput(String),
    /// A weights file could not be read.
    #[error("reading weights {path}: {source}")]
    ReadWeights {
        /// The file.
        path: PathBuf,
        /// candle's safetensors error.
        #[source]
        source: candle_core::Error,
    },
    /// A weights file lacks a tensor the student needs.
    #[error("weights {path} have no tensor `{name}`")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A weights file's tensor has another shape than the student's.
    #[error("weights {path}: tensor `{name}` has shape {got:?}, the student needs {expected:?}")]
    TensorShape {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The student's shape.
        expected: Vec<usize>,
        /// The file's shape.
        got: Vec<usize>,
    },
    /// `init.layers` names a layer the source does not have.
    #[error("weights {path} have {available} encoder layers (0..{available}); init.layers names layer {layer}")]
    NoSuchLayer {
        /// The file.
        path: PathBuf,
        /// The layer asked for.
        layer: usize,
        /// How many `encoder.layer.N` blocks the file has.
        available: usize,
    },
    /// An error inside candle.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The architecture-specific network inside a [`Student`].
#[derive(Debug)]
pub enum Network {
    /// A multi-layer perceptron.
    Mlp(Mlp),
    /// A convolutional network.
    Cnn(Cnn),
}

/// What one forward pass gives.
#[derive(Debug, Clone)]
pub struct StudentOutput {
    /// Class scores before softmax, `[batch, num_classes]`.
    pub logits: Tensor,
    /// `hidden[i]` is the activation after hidden layer `i`, flattened to `[batch, feature_dims()[i]]`
    /// (post-ReLU, before dropout). Feature and relation losses attach here.
    pub hidden: Vec<Tensor>,
}

/// A student network: a config, its sizes and the candle layers (weights live in the `VarMap`
/// behind the `VarBuilder` it was built with).
#[derive(Debug)]
pub struct Student {
    config: StudentConfig,
    input_dim: usize,
    num_classes: usize,
    network: Network,
    feature_dims: Vec<usize>,
    dropout: Dropout,
}

impl Student {
    /// Validates `config` against the data's width and class count, then creates the layers
    /// under `vb` (a `VarBuilder::from_varmap` creates fresh weights; a safetensors one loads).
    pub fn new(
        config: &StudentConfig,
        input_dim: usize,
        num_classes: usize,
        vb: VarBuilder,
    ) -> Result<Self, ModelError> {
        config.validate(input_dim, num_classes)?;
        let (network, feature_dims) = match config {
            StudentConfig::Mlp {
                hidden,
                dropout,
                input_dropout,
            } => {
                let m = Mlp::new(input_dim, hidden, num_classes, *dropout, *input_dropout, vb)?;
                (Network::Mlp(m), hidden.clone())
            }
            StudentConfig::Cnn {
                channels,
                hidden,
                dropout,
                input_shape,
            } => {
                let c = Cnn::new(*input_shape, channels, *hidden, num_classes, *dropout, vb)?;
                let mut dims: Vec<usize> = c
                    .block_shapes()
                    .iter()
                    .map(|s| s.iter().product())
                    .collect();
                dims.push(*hidden);
                (Network::Cnn(c), dims)
            }
            StudentConfig::Static(_) | StudentConfig::Transformer(_) => {
                return Err(ModelError::Config(format!(
                    "arch `{}` is a text student (token ids in, an embedding out): build it with TextStudent",
                    config.arch_name()
                )))
            }
        };
        Ok(Self {
            config: config.clone(),
            input_dim,
            num_classes,
            network,
            feature_dims,
            dropout: Dropout::new(0),
        })
    }

    /// Runs the network on `x` (`[batch, input_dim]`, f32). Dropout is applied only when `train`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<StudentOutput, ModelError> {
        let dims = x.dims();
        if dims.len() != 2 || dims[1] != self.input_dim {
            return Err(ModelError::InputShape {
                expected: self.input_dim,
                got: dims.to_vec(),
            });
        }
        if x.dtype() != DType::F32 {
            return Err(ModelError::InputDType(x.dtype()));
        }
        let (logits, hidden) = match &self.network {
            Network::Mlp(m) => m.forward(x, train, &self.dropout)?,
            Network::Cnn(c) => c.forward(x, train, &self.dropout)?,
        };
        Ok(StudentOutput { logits, hidden })
    }

    /// Restarts the dropout generator, so a seeded run drops the same units.
    pub fn seed_dropout(&self, seed: u64) {
        self.dropout.reseed(seed);
    }

    /// Width of each entry of [`StudentOutput::hidden`].
    pub fn feature_dims(&self) -> Vec<usize> {
        self.feature_dims.clone()
    }

    /// Number of trainable scalars (weights and biases).
    pub fn param_count(&self) -> usize {
        fn linear(l: &candle_nn::Linear) -> usize {
            l.weight().elem_count() + l.bias().map_or(0, |b| b.elem_count())
        }
        match &self.network {
            Network::Mlp(m) => {
                m.hidden_layers().iter().map(linear).sum::<usize>() + linear(m.head())
            }
            Network::Cnn(c) => {
                let convs: usize = c
                    .convs()
                    .iter()
                    .map(|cv| cv.weight().elem_count() + cv.bias().map_or(0, |b| b.elem_count()))
                    .sum();
                convs + linear(c.fc()) + linear(c.head())
            }
        }
    }

    /// The configuration this student was built from.
    pub fn config(&self) -> &StudentConfig {
        &self.config
    }

    /// Width of the input rows.
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// Number of classes (width of the logits).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The architecture-specific layers (the exporter reads the weights from here).
    pub fn network(&self) -> &Network {
        &self.network
    }
}

/// Eval-mode logits, so a student can be used wherever candle expects a `Module`.
impl candle_nn::Module for Student {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Student::forward(self, xs, false)
            .map(|o| o.logits)
            .map_err(|e| match e {
                ModelError::Candle(c) => c,
                other => candle_core::Error::Msg(other.to_string()),
            })
    }
}
