//! LayerNorm, last-axis softmax and GELU (erf) as single autograd nodes on the CPU (f32).
//!
//! candle's fused `layer_norm` / `softmax_last_dim` kernels have no backward, and the op-by-op
//! forms record ~10 nodes each (means, broadcasts, sqrt, divisions) whose backward allocates a
//! tensor per node; in the transformer student they run once per block and per attention head
//! row. These ops do the forward in one pass over the rows and hand back the gradients from
//! closed forms: for LayerNorm `dx = (g·w − mean(g·w) − x̂·mean(g·w·x̂)) / σ`, `dw = Σ g·x̂`,
//! `db = Σ g`; for softmax `dx = y·(g − Σ g·y)`; for GELU `dx = g·(Φ(x) + x·φ(x))`. candle's
//! own `gelu_erf` backward is eight full-size tensor ops (square, negate, divide, exp, two
//! scalings, erf, adds) on the `[tokens, ffn]` activation, the largest tensor of a block.

use candle_core::cpu::erf::erf_f32;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};

/// `LayerNorm(x) * weight + bias` over the last dim; one node when `x` is f32 on the CPU.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    if x.dtype() == DType::F32 && x.device().is_cpu() {
        x.contiguous()?.apply_op3(weight, bias, LayerNormOp { eps })
    } else {
        candle_nn::ops::layer_norm_slow(x, weight, bias, eps)
    }
}

/// Softmax over the last dim; one node when `x` is f32 on the CPU.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.dtype() == DType::F32 && x.device().is_cpu() {
        x.contiguous()?.apply_op1(SoftmaxOp)
    } else {
        candle_nn::ops::softmax(x, candle_core::D::Minus1)
    }
}

/// `x·Φ(x)` (GELU with the exact normal CDF, as BERT's `gelu`); one node when `x` is f32 on
/// the CPU.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if x.dtype() == DType::F32 && x.device().is_cpu() {
        x.contiguous()?.apply_op1(GeluErfOp)
    } else {
        x.gelu_erf()
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{what}: f32 tensors only")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => bail!("{what}: input must be contiguous"),
    }
}

struct LayerNormOp {
    eps: f32,
}

/// Per row: mean and 1/σ.
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
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
        let x = f32_slice(xs, xl, "fused-layer-norm")?;
        let w = f32_slice(ws, wl, "fused-layer-norm weight")?;
        let b = f32_slice(bs, bl, "fused-layer-norm bias")?;
        let d = xl.shape().dims().last().copied().unwrap_or(0);
        if d == 0 || w.len() != d || b.len() != d {
            bail!(
                "fused-layer-norm: input {:?}, weight [{}], bias [{}] do not fit",
                xl.shape(),
                w.len(),
                b.len()
            );
        }
        let mut out = vec![0f32; x.len()];
        for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let (mean, inv) = row_stats(row, self.eps);
            for j in 0..d {
                o[j] = (row[j] - mean) * inv * w[j] + b[j];
            }
        }
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = w.dim(0)?;
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let gv = grad.flatten_all()?.to_vec1::<f32>()?;
        let wv = w.to_vec1::<f32>()?;
        let mut dx = vec![0f32; xv.len()];
        let (mut dw, mut db) = (vec![0f32; d], vec![0f32; d]);
        let mut xhat = vec![0f32; d];
        for ((row, g), dxr) in xv
            .chunks_exact(d)
            .zip(gv.chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
        {
            let (mean, inv) = row_stats(row, self.eps);
            let (mut m1, mut m2) = (0f32, 0f32);
            for j in 0..d {
                xhat[j] = (row[j] - mean) * inv;
                let gw = g[j] * wv[j];
                m1 += gw;
                m2 += gw * xhat[j];
                dw[j] += g[j] * xhat[j];
                db[j] += g[j];
            }
            let (m1, m2) = (m1 / d as f32, m2 / d as f32);
            for j in 0..d {
                dxr[j] = (g[j] * wv[j] - m1 - xhat[j] * m2) * inv;
            }
        }
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, d, dev)?),
            Some(Tensor::from_vec(db, d, dev)?),
        ))
    }
}

struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "fused-softmax")?;
        let d = l.shape().dims().last().copied().unwrap_or(0);
        if d == 0 {
            bail!("fused-softmax: empty last dim in {:?}", l.shape());
        }
        let mut out = vec![0f32; x.len()];
        for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (o, &v) in o.iter_mut().zip(row) {
                *o = (v - max).exp();
                sum += *o;
            }
            o.iter_mut().for_each(|v| *v /= sum);
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let d = res.dim(candle_core::D::Minus1)?;
        let y = res.flatten_all()?.to_vec1::<f32>()?;
        let g = grad.flatten_all()?.to_vec1::<f32>()?;
        let mut dx = vec![0f32; y.len()];
        for ((yr, gr), dr) in y
            .chunks_exact(d)
            .zip(g.chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
        {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for j in 0..d {
                dr[j] = yr[j] * (gr[j] - dot);
            }
        }
        Ok(Some(Tensor::from_vec(dx, res.shape(), res.device())?))
    }
}

struct GeluErfOp;

/// Φ(x), the standard normal CDF, as candle's `gelu_erf` computes it.
fn normal_cdf(x: f32) -> f32 {
    0.5 * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

impl CustomOp1 for GeluErfOp {
    fn name(&self) -> &'static str {
        "fused-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "fused-gelu-erf")?;
        let out = x.iter().map(|&v| v * normal_cdf(v)).collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op2_no_bwd(x, &GeluErfGrad)?))
    }
}

/// `g·(Φ(x) + x·φ(x))` in one pass over the upstream gradient `g` and the input `x`.
struct GeluErfGrad;

impl CustomOp2 for GeluErfGrad {
    fn name(&self) -> &'static str {
        "fused-gelu-erf-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(gs, gl, "fused-gelu-erf-grad")?;
        let x = f32_slice(xs, xl, "fused-gelu-erf input")?;
        if g.len() != x.len() {
            bail!(
                "fused-gelu-erf-grad: gradient {:?} and input {:?} differ",
                gl.shape(),
                xl.shape()
            );
        }
        // 1/sqrt(2π): φ(x) = exp(-x²/2) / sqrt(2π).
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        let out = g
            .iter()
            .zip(x)
            .map(|(&g, &v)| g * (normal_cdf(v) + v * INV_SQRT_2PI * (-0.5 * v * v).exp()))
            .collect();
        Ok((CpuStorage::F32(out), gl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
        d.max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Gradients of `sum(y * up)`: `up` as the upstream gradient of `y`.
    fn grads(y: &Tensor, up: &Tensor) -> candle_core::backprop::GradStore {
        (y * up).unwrap().sum_all().unwrap().backward().unwrap()
    }

    fn var(dims: &[usize]) -> Var {
        Var::from_tensor(&Tensor::randn(0f32, 1.0, dims, &Device::Cpu).unwrap()).unwrap()
    }

    /// Values and gradients equal candle's op-by-op LayerNorm and softmax (autograd through
    /// basic ops) and its `gelu_erf`, with a non-uniform upstream gradient.
    #[test]
    fn match_candle_op_by_op_forward_and_backward() {
        let (x, w, b) = (var(&[3, 4, 6]), var(&[6]), var(&[6]));
        let up = Tensor::randn(0f32, 1.0, (3, 4, 6), &Device::Cpu).unwrap();
        let fused = layer_norm(&x, &w, &b, 1e-5).unwrap();
        let slow = candle_nn::ops::layer_norm_slow(&x, &w, &b, 1e-5).unwrap();
        assert!(max_abs(&fused, &slow) < 1e-5);
        let (gf, gs) = (grads(&fused, &up), grads(&slow, &up));
        for v in [&x, &w, &b] {
            let (a, r) = (gf.get(v).unwrap(), gs.get(v).unwrap());
            assert!(max_abs(a, r) < 1e-4, "layer-norm gradient: {a} vs {r}");
        }
        let fused = softmax_last_dim(&x).unwrap();
        let slow = candle_nn::ops::softmax(&x, candle_core::D::Minus1).unwrap();
        assert!(max_abs(&fused, &slow) < 1e-6);
        let (gf, gs) = (grads(&fused, &up), grads(&slow, &up));
        let (a, r) = (gf.get(&x).unwrap(), gs.get(&x).unwrap());
        assert!(max_abs(a, r) < 1e-5, "softmax gradient: {a} vs {r}");
        let fused = gelu_erf(&x).unwrap();
        let slow = x.as_tensor().gelu_erf().unwrap();
        assert!(max_abs(&fused, &slow) < 1e-6);
        let (gf, gs) = (grads(&fused, &up), grads(&slow, &up));
        let (a, r) = (gf.get(&x).unwrap(), gs.get(&x).unwrap());
        assert!(max_abs(a, r) < 1e-5, "gelu gradient: {a} vs {r}");
    }
}
