//! The 3-layer text student's training step, timed: the `transformer` student at MiniLM-L6's
//! block shape (hidden 384, 12 heads, FFN 1536, 30,522-word table, 512 positions), masked mean
//! pooling, the trainer's cosine feature loss against a fixed random target, backward and the
//! trainer's AdamW (weight decay 0.01) — on the batch file `bench/text_batch.py` wrote, padded
//! to its longest row. Prints samples/s, CPU seconds per step and the per-phase medians as
//! JSON (one line).
//! `bench/trainer_text.sh` runs it beside PyTorch.
//!
//! usage: text_step BATCH_JSON [STEPS] [WARMUP]

use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::{Device, Tensor};
use trainer_core::loss::{feature, FeatureDistance};
use trainer_core::model::text::pad_batch;
use trainer_core::model::{StudentConfig, TextStudent, TransformerConfig};
use trainer_core::optim::{Hyper, Optimizer};

// As the trainer binary: candle allocates a tensor per op.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(serde::Deserialize)]
struct Batch {
    ids: Vec<Vec<u32>>,
}

/// User + system CPU seconds of this process so far, all threads (`/proc/self/stat`, in the
/// kernel's 100 Hz ticks): on a machine other jobs share, CPU time per step moves less than
/// wall time. `None` off Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        bail!("usage: text_step BATCH_JSON [STEPS] [WARMUP]");
    };
    let steps: usize = args.get(2).map_or(Ok(20), |s| s.parse()).context("STEPS")?;
    let warmup: usize = args.get(3).map_or(Ok(3), |s| s.parse()).context("WARMUP")?;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let batch: Batch = serde_json::from_str(&text).with_context(|| format!("parsing {path}"))?;
    let (ids, mask) = pad_batch(&batch.ids, 0)?;
    let cfg = StudentConfig::Transformer(TransformerConfig {
        layers: 3,
        hidden: 384,
        heads: 12,
        ffn: 1536,
        vocab: 30522,
        max_positions: 512,
        type_vocab: 2,
        layer_norm_eps: 1e-12,
        project_to: None,
        init: None,
    });
    let (vm, student) = TextStudent::build(&cfg)?;
    let vars = vm
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("VarMap lock poisoned"))?
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let hyper = Hyper::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    let mut opt = Optimizer::new(hyper, vars);
    let target = Tensor::randn(0f32, 1.0, (batch.ids.len(), 384), &Device::Cpu)?;
    let (mut fwd, mut bwd, mut upd) = (Vec::new(), Vec::new(), Vec::new());
    let mut timed = 0f64;
    let mut cpu_start = None;
    for k in 0..warmup + steps {
        if k == warmup {
            cpu_start = cpu_seconds();
        }
        let t0 = Instant::now();
        let out = student.forward(&ids, &mask, None)?;
        let loss = feature(&out.embedding, &target, FeatureDistance::Cosine)?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        opt.step(&grads, 1e-4)?;
        drop(grads);
        let t3 = Instant::now();
        if k >= warmup {
            fwd.push((t1 - t0).as_secs_f64() * 1e3);
            bwd.push((t2 - t1).as_secs_f64() * 1e3);
            upd.push((t3 - t2).as_secs_f64() * 1e3);
            timed += (t3 - t0).as_secs_f64();
        }
    }
    let cpu_per_step = cpu_start
        .zip(cpu_seconds())
        .map(|(a, b)| (b - a) / steps as f64);
    let mut total: Vec<f64> = (0..steps).map(|i| fwd[i] + bwd[i] + upd[i]).collect();
    println!(
        "{}",
        serde_json::json!({
            "steps": steps,
            "seconds": timed,
            "samples_per_s": (steps * batch.ids.len()) as f64 / timed,
            "step_ms_median": median(&mut total),
            "cpu_s_per_step": cpu_per_step,
            "forward_ms_median": median(&mut fwd),
            "backward_ms_median": median(&mut bwd),
            "optimizer_ms_median": median(&mut upd),
        })
    );
    Ok(())
}
