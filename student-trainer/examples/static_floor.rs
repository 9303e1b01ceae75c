//! Writes the static "floor" encoder as ONNX: a `static` student whose table is the teacher's
//! own token-embedding table (`embeddings.word_embeddings.weight`), untrained, mean-pooled over
//! the mask — what averaging the teacher's input token embeddings scores (docs/text-eval.md).
//!
//! `cargo run -p student-trainer --example static_floor -- MODEL.safetensors OUT.onnx`

use anyhow::Context;
use trainer_core::export::export_text_onnx;
use trainer_core::model::text::config::{StaticConfig, StaticInit, WORD_EMBEDDINGS};
use trainer_core::model::{StudentConfig, TextStudent};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [from, out] = &args[..] else {
        anyhow::bail!("usage: static_floor MODEL.safetensors OUT.onnx");
    };
    let tensors = candle_core::safetensors::load(from, &candle_core::Device::Cpu)
        .with_context(|| format!("reading {from}"))?;
    let table = tensors
        .get(WORD_EMBEDDINGS)
        .with_context(|| format!("{from} has no tensor {WORD_EMBEDDINGS}"))?;
    let (vocab, dim) = table.dims2()?;
    let config = StudentConfig::Static(StaticConfig {
        vocab,
        dim,
        project_to: None,
        init: Some(StaticInit {
            from: from.into(),
            tensor: WORD_EMBEDDINGS.to_string(),
            pca: false,
        }),
    });
    let (_vars, student) = TextStudent::build(&config)?;
    export_text_onnx(&student, false, std::path::Path::new(out))?;
    println!("wrote {out} (static, {vocab} x {dim}, untrained)");
    Ok(())
}
