//! Fused, in-place parameter updates as candle `InplaceOp2`s: one pass over parameter,
//! gradient and state per step, no temporary tensors. Large parameters are split across two
//! threads; every element is updated independently, so the result does not depend on the split.

use std::cell::RefCell;

use candle_core::{CpuStorage, InplaceOp2, Layout};

/// Elements below which a parameter is updated on the calling thread only.
const PARALLEL_MIN: usize = 1 << 16;

fn f32_slice_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{what}: parameter is not contiguous")))?;
    match s {
        CpuStorage::F32(v) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("{what}: only f32 parameters are supported"),
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{what}: gradient is not contiguous")))?;
    match s {
        CpuStorage::F32(v) => Ok(&v[a..b]),
        _ => candle_core::bail!("{what}: only f32 gradients are supported"),
    }
}

/// The parameter and gradient of an in-place step as f32 slices, checked to be as long as
/// each other and as every optimizer state buffer in `state_lens` (done once per step,
/// before the update loop).
fn param_and_grad<'a>(
    s1: &'a mut CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
    what: &str,
    state_lens: &[usize],
) -> candle_core::Result<(&'a mut [f32], &'a [f32])> {
    let p = f32_slice_mut(s1, l1, what)?;
    let g = f32_slice(s2, l2, what)?;
    if p.len() != g.len() || state_lens.iter().any(|&n| n != p.len()) {
        candle_core::bail!("{what}: parameter, gradient and state sizes differ");
    }
    Ok((p, g))
}

/// Runs `f` over matching chunks of up to four slices, on two threads when large.
fn split2<F>(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], f: F)
where
    F: Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync,
{
    let n = p.len();
    if n < PARALLEL_MIN {
        f(p, g, m, v);
        return;
    }
    let half = n / 2;
    let (p0, p1) = p.split_at_mut(half);
    let (g0, g1) = g.split_at(half);
    let (m0, m1) = m.split_at_mut(half);
    // SGD has no second buffer: v is empty and split accordingly.
    let vh = half.min(v.len());
    let (v0, v1) = v.split_at_mut(vh);
    std::thread::scope(|s| {
        s.spawn(|| f(p1, g1, m1, v1));
        f(p0, g0, m0, v0);
    });
}

/// One AdamW update (PyTorch's formulation).
pub struct AdamWStep<'a> {
    m: RefCell<&'a mut [f32]>,
    v: RefCell<&'a mut [f32]>,
    decay: f32,
    step_size: f32,
    inv_sqrt_bc2: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
}

impl<'a> AdamWStep<'a> {
    /// The update of step `t` (1-based) with the given moment buffers.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        m: &'a mut [f32],
        v: &'a mut [f32],
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        t: u64,
    ) -> Self {
        let bc1 = 1.0 - beta1.powi(t as i32);
        let bc2 = 1.0 - beta2.powi(t as i32);
        Self {
            m: RefCell::new(m),
            v: RefCell::new(v),
            decay: (1.0 - lr * weight_decay) as f32,
            step_size: (lr / bc1) as f32,
            inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            eps: eps as f32,
        }
    }
}

impl InplaceOp2 for AdamWStep<'_> {
    fn name(&self) -> &'static str {
        "adamw-step"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let mut m = self.m.borrow_mut();
        let mut v = self.v.borrow_mut();
        let (p, g) = param_and_grad(s1, l1, s2, l2, "adamw", &[m.len(), v.len()])?;
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        let (c1, c2) = (1.0 - b1, 1.0 - b2);
        let (decay, step_size, isb) = (self.decay, self.step_size, self.inv_sqrt_bc2);
        split2(p, g, &mut m, &mut v, |p, g, m, v| {
            for i in 0..p.len() {
                let gi = g[i];
                let mi = b1 * m[i] + c1 * gi;
                let vi = b2 * v[i] + c2 * gi * gi;
                m[i] = mi;
                v[i] = vi;
                let denom = vi.sqrt() * isb + eps;
                p[i] = p[i] * decay - step_size * mi / denom;
            }
        });
        Ok(())
    }
}

/// One SGD update with optional (Nesterov) momentum (PyTorch's formulation).
pub struct SgdStep<'a> {
    buf: RefCell<&'a mut [f32]>,
    lr: f32,
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
    first: bool,
}

impl<'a> SgdStep<'a> {
    /// The update with momentum buffer `buf`; `first` marks the first step (buffer = gradient).
    pub fn new(
        buf: &'a mut [f32],
        lr: f64,
        momentum: f64,
        nesterov: bool,
        weight_decay: f64,
        first: bool,
    ) -> Self {
        Self {
            buf: RefCell::new(buf),
            lr: lr as f32,
            momentum: momentum as f32,
            nesterov,
            weight_decay: weight_decay as f32,
            first,
        }
    }
}

impl InplaceOp2 for SgdStep<'_> {
    fn name(&self) -> &'static str {
        "sgd-step"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let mut buf = self.buf.borrow_mut();
        let (p, g) = param_and_grad(s1, l1, s2, l2, "sgd", &[buf.len()])?;
        let (lr, mu, wd, nesterov, first) = (
            self.lr,
            self.momentum,
            self.weight_decay,
            self.nesterov,
            self.first,
        );
        split2(p, g, &mut buf, &mut [], |p, g, b, _| {
            for i in 0..p.len() {
                let d = g[i] + wd * p[i];
                let step = if mu == 0.0 {
                    d
                } else {
                    let bi = if first { d } else { mu * b[i] + d };
                    b[i] = bi;
                    if nesterov {
                        d + mu * bi
                    } else {
                        bi
                    }
                };
                p[i] -= lr * step;
            }
        });
        Ok(())
    }
}
