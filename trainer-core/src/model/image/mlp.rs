//! The fully connected student: `[Linear + ReLU (+ dropout)] * n`, then a linear head.

use candle_core::{Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::model::dropout::Dropout;
use crate::model::linear::linear;

/// A multi-layer perceptron. Weights: `fc{i}.weight [out, in]`, `fc{i}.bias [out]`, `out.weight`,
/// `out.bias` (PyTorch's `nn.Linear` layout, so ONNX `Gemm(transB=1)` takes them as they are).
#[derive(Debug)]
pub struct Mlp {
    hidden: Vec<Linear>,
    out: Linear,
    dropout: f32,
    input_dropout: f32,
}

impl Mlp {
    /// Creates (or loads, depending on `vb`'s backend) the layers under `vb`.
    pub fn new(
        input_dim: usize,
        hidden: &[usize],
        num_classes: usize,
        dropout: f32,
        input_dropout: f32,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mut layers = Vec::with_capacity(hidden.len());
        let mut width = input_dim;
        for (i, &h) in hidden.iter().enumerate() {
            layers.push(candle_nn::linear(width, h, vb.pp(format!("fc{i}")))?);
            width = h;
        }
        let out = candle_nn::linear(width, num_classes, vb.pp("out"))?;
        Ok(Self {
            hidden: layers,
            out,
            dropout,
            input_dropout,
        })
    }

    /// The hidden layers, input side first.
    pub fn hidden_layers(&self) -> &[Linear] {
        &self.hidden
    }

    /// The classification head.
    pub fn head(&self) -> &Linear {
        &self.out
    }

    /// Logits and the post-ReLU (pre-dropout) activation of every hidden layer.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        train: bool,
        drop: &Dropout,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let mut acts = Vec::with_capacity(self.hidden.len());
        let mut h = if train {
            drop.apply(x, self.input_dropout)?
        } else {
            x.clone()
        };
        for layer in &self.hidden {
            let a = linear(layer, &h)?.relu()?;
            h = if train {
                drop.apply(&a, self.dropout)?
            } else {
                a.clone()
            };
            acts.push(a);
        }
        Ok((linear(&self.out, &h)?, acts))
    }
}
