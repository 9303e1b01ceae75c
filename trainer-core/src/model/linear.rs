//! `x Wᵀ + b` as one autograd node on the CPU.
//!
//! candle records `Linear::forward` as matmul, transpose and broadcast-add nodes. Its backward
//! then accumulates the weight gradient twice (the second time through the transpose node, a
//! strided copy of the whole weight), reduces the bias gradient with a slow `sum(0)`, and
//! computes an input gradient even for the data batch, which needs none. On the 784-800-800-10
//! MLP that bookkeeping cost about as much as the matmuls it wraps. This op does the forward as
//! one matmul plus an in-place bias add and hands back the gradients directly: `gradᵀ x` for the
//! weight (contiguous, `[out, in]`), `1ᵀ grad` for the bias, and `grad W` for the input only
//! when the input tracks a gradient.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::Linear;

/// `layer.forward(x)`, through the fused op where it applies (a 2-D f32 input on the CPU and a
/// layer with a bias); otherwise through candle's `Linear`.
pub fn linear(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    match layer.bias() {
        Some(bias)
            if x.rank() == 2
                && x.dtype() == DType::F32
                && layer.weight().dtype() == DType::F32
                && x.device().is_cpu() =>
        {
            x.apply_op3(layer.weight(), bias, FusedLinear)
        }
        _ => layer.forward(x),
    }
}

struct FusedLinear;

impl CustomOp3 for FusedLinear {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = xl.shape().dims2()?;
        let (n, wk) = wl.shape().dims2()?;
        let bn = bl.shape().dims1()?;
        if wk != k || bn != n {
            bail!("fused-linear: input [{m}, {k}], weight [{n}, {wk}], bias [{bn}] do not fit");
        }
        let y = xs.matmul(ws, (1, m, n, k), xl, &wl.transpose(0, 1)?)?;
        let (CpuStorage::F32(mut y), CpuStorage::F32(b)) = (y, bs) else {
            bail!("fused-linear: f32 tensors only");
        };
        let (start, stride) = (bl.start_offset(), bl.stride()[0]);
        for row in y.chunks_exact_mut(n) {
            for (j, v) in row.iter_mut().enumerate() {
                *v += b[start + j * stride];
            }
        }
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad_x = if x.track_op() {
            Some(grad.matmul(w)?)
        } else {
            None
        };
        let grad_w = grad.t()?.matmul(x)?;
        let ones = Tensor::ones((1, grad.dim(0)?), grad.dtype(), grad.device())?;
        let grad_b = ones.matmul(grad)?.squeeze(0)?;
        Ok((grad_x, Some(grad_w), Some(grad_b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        a.sub(b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn var(dims: &[usize]) -> Var {
        Var::from_tensor(&Tensor::randn(0f32, 1.0, dims, &Device::Cpu).unwrap()).unwrap()
    }

    /// Gradients of `sum(out * up)`: a non-uniform upstream gradient, so every element counts.
    fn grads_of(out: &Tensor, up: &Tensor) -> candle_core::backprop::GradStore {
        out.mul(up).unwrap().sum_all().unwrap().backward().unwrap()
    }

    /// Values and all three gradients equal candle's own `Linear` (matmul + transpose +
    /// broadcast-add autograd), for a contiguous input and for a strided (transposed) one.
    #[test]
    fn matches_candle_linear_forward_and_backward() {
        let (w, b) = (var(&[5, 7]), var(&[5]));
        let layer = Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        let (x_rows, x_cols) = (var(&[4, 7]), var(&[7, 4]));
        for (x, input) in [
            (&x_rows, x_rows.as_tensor().clone()),
            (&x_cols, x_cols.as_tensor().t().unwrap()),
        ] {
            let fused = linear(&layer, &input).unwrap();
            let reference = layer.forward(&input).unwrap();
            assert!(max_abs_diff(&fused, &reference) < 1e-5);
            let up = Tensor::randn(0f32, 1.0, (4, 5), &Device::Cpu).unwrap();
            let (gf, gr) = (grads_of(&fused, &up), grads_of(&reference, &up));
            for v in [&w, &b, x] {
                let (a, r) = (
                    gf.get(v.as_tensor()).unwrap(),
                    gr.get(v.as_tensor()).unwrap(),
                );
                assert_eq!(a.dims(), r.dims());
                assert!(max_abs_diff(a, r) < 1e-5, "gradient differs: {a} vs {r}");
            }
        }
    }

    /// A plain data batch (no gradient tracked) gets no input gradient; the weights still do.
    #[test]
    fn untracked_input_gets_no_gradient() {
        let (w, b) = (var(&[3, 2]), var(&[3]));
        let layer = Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
        let x = Tensor::randn(0f32, 1.0, (4, 2), &Device::Cpu).unwrap();
        let grads = linear(&layer, &x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&x).is_none());
        assert!(grads.get(w.as_tensor()).is_some());
        // d(sum)/db = batch size for every output.
        let gb = grads.get(b.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(gb, vec![4.0; 3]);
    }
}
