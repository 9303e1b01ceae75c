//! Auxiliary exits for self-distillation: a small head after a chosen hidden layer (MLP),
//! conv block (CNN) or encoder block (transformer text student), plus the learned projection
//! the feature hint uses. An image exit's head gives class logits, a text exit's head the
//! sentence embedding (from the block's masked-mean pooled states). The heads read the
//! forward pass's per-layer outputs, so the backbone is run once for all exits.
//!
//! Weight names: `__exit{L}.fc.*` (the optional hidden layer of the head), `__exit{L}.out.*`
//! and `__exit{L}.hint.*` (the hint projection, training only). The `__` prefix keeps them out
//! of `student.safetensors`.

use candle_core::{Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::linear::linear;
use super::{Network, Student, StudentOutput};

/// The `[self_distill]` table (Zhang et al. 2019, "Be Your Own Teacher").
///
/// ```toml
/// [self_distill]
/// exits = [0]          # a head after hidden layer 0 (MLP) / conv / transformer block 0
/// temperature = 3.0    # image students only
/// kd_weight = 0.5      # exit loss: (1 - kd_weight)·task + kd_weight·KD(deepest exit)
/// hint_weight = 0.0    # + hint_weight·MSE(projected exit features, deepest features)
/// ```
///
/// Image students: the task loss is `ce`, KD the softened KL (`temperature`, default 3).
/// Transformer students: the task loss is the run's `[[loss]]` terms on the pooled embedding,
/// KD the cosine distance to the deepest embedding, which has no temperature (the key is
/// refused).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelfDistillConfig {
    /// Hidden layers (MLP), conv blocks (CNN) or encoder blocks (transformer) after which an
    /// exit head sits; the deepest exit is the network's own head.
    pub exits: Vec<usize>,
    /// Width of a ReLU hidden layer inside each exit head (absent: a linear head).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_hidden: Option<usize>,
    /// Softmax temperature of the KD term from the deepest exit (scaled by T²; image students
    /// only, absent: [`SelfDistillConfig::DEFAULT_TEMPERATURE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Share of KD in an exit's loss: `(1 - kd_weight)·task + kd_weight·kd`.
    #[serde(default = "default_kd_weight")]
    pub kd_weight: f64,
    /// Weight of the feature hint: MSE between a learned projection of the exit's features
    /// and the deepest hidden representation (0 = no hint).
    #[serde(default)]
    pub hint_weight: f64,
}

impl SelfDistillConfig {
    /// The image exits' KD temperature when `temperature` is absent.
    pub const DEFAULT_TEMPERATURE: f64 = 3.0;

    /// The image exits' KD temperature.
    pub fn temperature(&self) -> f64 {
        self.temperature.unwrap_or(Self::DEFAULT_TEMPERATURE)
    }
}

/// Name of exit `layer` in metrics, files and variable names (`exit0`, `exit1`, …).
pub fn exit_name(layer: usize) -> String {
    format!("exit{layer}")
}

fn default_kd_weight() -> f64 {
    0.5
}

/// Variable-name prefix of exit heads (`__exit0.out.weight`, …).
pub const EXIT_PREFIX: &str = "__exit";

/// One exit: the layer it reads and its head.
#[derive(Debug)]
pub struct ExitHead {
    layer: usize,
    fc: Option<Linear>,
    out: Linear,
    hint: Option<Linear>,
}

impl ExitHead {
    /// The hidden layer (MLP), conv block (CNN) or encoder block whose output the head reads.
    pub fn layer(&self) -> usize {
        self.layer
    }

    /// The exit's name (`exit{layer}`).
    pub fn name(&self) -> String {
        exit_name(self.layer)
    }

    /// The head's optional ReLU hidden layer.
    pub fn fc(&self) -> Option<&Linear> {
        self.fc.as_ref()
    }

    /// The head's output layer (to the class logits or the embedding).
    pub fn out(&self) -> &Linear {
        &self.out
    }

    /// The exit's output (logits, or a text exit's embedding) from its layer's activation
    /// `h` (`[batch, width]`).
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        match &self.fc {
            Some(fc) => linear(&self.out, &linear(fc, h)?.relu()?),
            None => linear(&self.out, h),
        }
    }

    /// The exit's features projected to the deepest representation's width (for the hint).
    pub fn hint(&self, h: &Tensor) -> Option<Result<Tensor>> {
        self.hint.as_ref().map(|p| linear(p, h))
    }

    /// Trainable scalars of the head (the hint projection excluded: it is not exported).
    pub fn param_count(&self) -> usize {
        let count = |l: &Linear| l.weight().elem_count() + l.bias().map_or(0, |b| b.elem_count());
        self.fc.as_ref().map_or(0, count) + count(&self.out)
    }
}

/// The exits of a self-distilled student, shallowest first.
#[derive(Debug)]
pub struct Exits {
    heads: Vec<ExitHead>,
}

impl Exits {
    /// Creates the heads of `cfg` for `student` under `vb` (the student's variable map).
    pub fn new(cfg: &SelfDistillConfig, student: &Student, vb: &VarBuilder) -> Result<Self> {
        Self::for_layers(cfg, &student.feature_dims(), student.num_classes(), vb)
    }

    /// Creates the heads of `cfg` for a network whose layer `i` is `dims[i]` wide and whose
    /// output is `out_dim` wide, under `vb`.
    pub fn for_layers(
        cfg: &SelfDistillConfig,
        dims: &[usize],
        out_dim: usize,
        vb: &VarBuilder,
    ) -> Result<Self> {
        let deepest = dims.last().copied().unwrap_or(0);
        let mut layers = cfg.exits.clone();
        layers.sort_unstable();
        let mut heads = Vec::with_capacity(layers.len());
        for layer in layers {
            let width = dims.get(layer).copied().ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "self_distill exit after layer {layer}: the student has {} layers",
                    dims.len()
                ))
            })?;
            let p = vb.pp(format!("{EXIT_PREFIX}{layer}"));
            let (fc, head_in) = match cfg.head_hidden {
                Some(h) => (Some(candle_nn::linear(width, h, p.pp("fc"))?), h),
                None => (None, width),
            };
            let out = candle_nn::linear(head_in, out_dim, p.pp("out"))?;
            let hint = if cfg.hint_weight > 0.0 {
                Some(candle_nn::linear(width, deepest, p.pp("hint"))?)
            } else {
                None
            };
            heads.push(ExitHead {
                layer,
                fc,
                out,
                hint,
            });
        }
        Ok(Self { heads })
    }

    /// The heads, shallowest first.
    pub fn heads(&self) -> &[ExitHead] {
        &self.heads
    }

    /// Each exit's logits from one forward pass of the student.
    pub fn logits(&self, out: &StudentOutput) -> Result<Vec<Tensor>> {
        self.outputs(&out.hidden)
    }

    /// Each exit's output from the per-layer activations of one forward pass.
    pub fn outputs(&self, hidden: &[Tensor]) -> Result<Vec<Tensor>> {
        self.heads
            .iter()
            .map(|h| {
                let a = hidden.get(h.layer).ok_or_else(|| {
                    candle_core::Error::Msg(format!("no hidden layer {}", h.layer))
                })?;
                h.forward(a)
            })
            .collect()
    }
}

/// Trainable scalars of the truncated network that stops at `head`: the backbone layers up
/// to its layer plus the head.
pub fn truncated_param_count(student: &Student, head: &ExitHead) -> usize {
    let linear = |l: &Linear| l.weight().elem_count() + l.bias().map_or(0, |b| b.elem_count());
    let backbone: usize = match student.network() {
        Network::Mlp(m) => m.hidden_layers()[..=head.layer].iter().map(linear).sum(),
        Network::Cnn(c) => c.convs()[..=head.layer]
            .iter()
            .map(|cv| cv.weight().elem_count() + cv.bias().map_or(0, |b| b.elem_count()))
            .sum(),
    };
    backbone + head.param_count()
}
