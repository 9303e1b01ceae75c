//! What a text student's forward pass gives, and the pooling both architectures share.

use candle_core::Tensor;

/// What one forward pass of a text student gives.
#[derive(Debug, Clone)]
pub struct TextOutput {
    /// The pooled (and projected, if configured) sentence embedding, `[batch, output_dim]`.
    pub embedding: Tensor,
    /// `hidden[i]`: masked mean of encoder block `i`'s output, `[batch, hidden]` (the ONNX
    /// export's `hidden{i}` outputs). Empty for the static student.
    pub hidden: Vec<Tensor>,
    /// `tokens[i]`: block `i`'s token states, `[batch, seq, hidden]` (padding rows included).
    pub tokens: Vec<Tensor>,
}

/// Mean over the sequence of the rows whose mask is 1: `x [b, s, d]`, `mask` f32 `[b, s]` →
/// `[b, d]`. A row with no tokens gives zeros (the count is clamped at 1e-9, as
/// sentence-transformers does).
pub fn masked_mean(x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let summed = mask.unsqueeze(1)?.matmul(x)?.squeeze(1)?;
    let count = mask.sum_keepdim(1)?.clamp(1e-9f32, f32::MAX)?;
    summed.broadcast_div(&count)
}
