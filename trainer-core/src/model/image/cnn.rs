//! The convolutional student: `[conv3x3 + ReLU + maxpool 2x2] * n`, flatten,
//! `Linear + ReLU (+ dropout)`, then a linear head.

use candle_core::{Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, Module, VarBuilder};

use crate::model::dropout::Dropout;
use crate::model::linear::linear;

/// A small CNN reading flat rows as `[C, H, W]` images. Weights: `conv{i}.weight [out, in, 3, 3]`,
/// `conv{i}.bias [out]`, `fc.weight [hidden, flat]`, `fc.bias`, `out.weight [classes, hidden]`,
/// `out.bias` (PyTorch's layouts, which ONNX `Conv` and `Gemm(transB=1)` take as they are).
#[derive(Debug)]
pub struct Cnn {
    input_shape: [usize; 3],
    convs: Vec<Conv2d>,
    /// `[C, H, W]` after each conv block.
    block_shapes: Vec<[usize; 3]>,
    fc: Linear,
    out: Linear,
    dropout: f32,
}

impl Cnn {
    /// Creates (or loads) the layers under `vb`. The caller has validated that every block's
    /// input map is at least 2x2.
    pub fn new(
        input_shape: [usize; 3],
        channels: &[usize],
        hidden: usize,
        num_classes: usize,
        dropout: f32,
        vb: VarBuilder,
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let [mut c, mut h, mut w] = input_shape;
        let mut convs = Vec::with_capacity(channels.len());
        let mut block_shapes = Vec::with_capacity(channels.len());
        for (i, &ch) in channels.iter().enumerate() {
            convs.push(candle_nn::conv2d(c, ch, 3, cfg, vb.pp(format!("conv{i}")))?);
            // 3x3 with padding 1 keeps H x W; the 2x2/2 pool floors odd sizes, as ONNX MaxPool does.
            (c, h, w) = (ch, h / 2, w / 2);
            block_shapes.push([c, h, w]);
        }
        let fc = candle_nn::linear(c * h * w, hidden, vb.pp("fc"))?;
        let out = candle_nn::linear(hidden, num_classes, vb.pp("out"))?;
        Ok(Self {
            input_shape,
            convs,
            block_shapes,
            fc,
            out,
            dropout,
        })
    }

    /// The `[C, H, W]` the flat input rows are read as.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input_shape
    }

    /// The conv layers, input side first.
    pub fn convs(&self) -> &[Conv2d] {
        &self.convs
    }

    /// `[C, H, W]` of each conv block's output (after the pool).
    pub fn block_shapes(&self) -> &[[usize; 3]] {
        &self.block_shapes
    }

    /// The fully connected hidden layer.
    pub fn fc(&self) -> &Linear {
        &self.fc
    }

    /// The classification head.
    pub fn head(&self) -> &Linear {
        &self.out
    }

    /// Logits and the activations: each conv block's pooled output flattened to `[b, C*H*W]`,
    /// then the fully connected layer's post-ReLU (pre-dropout) output.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        train: bool,
        drop: &Dropout,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let [c, h, w] = self.input_shape;
        let b = x.dim(0)?;
        let mut acts = Vec::with_capacity(self.convs.len() + 1);
        let mut m = x.reshape((b, c, h, w))?;
        for conv in &self.convs {
            m = conv.forward(&m)?.relu()?.max_pool2d(2)?;
            // A contiguous tensor flattens as a view: no copy.
            acts.push(m.flatten_from(1)?);
        }
        let flat = m.flatten_from(1)?;
        let a = linear(&self.fc, &flat)?.relu()?;
        let hdn = if train {
            drop.apply(&a, self.dropout)?
        } else {
            a.clone()
        };
        acts.push(a);
        Ok((linear(&self.out, &hdn)?, acts))
    }
}
