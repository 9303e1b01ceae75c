//! `student-trainer export-bert`: a BERT-family encoder (Hugging Face safetensors +
//! config.json) written as an f32 ONNX text encoder.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use trainer_core::export::export_text_onnx;
use trainer_core::model::text::config::TransformerInit;
use trainer_core::model::{StudentConfig, TextStudent, TransformerConfig};

/// `export-bert` flags.
#[derive(Debug, Args)]
pub struct ExportBertArgs {
    /// The model's `model.safetensors`.
    #[arg(long)]
    pub safetensors: PathBuf,
    /// Its Hugging Face `config.json`.
    #[arg(long)]
    pub config: PathBuf,
    /// Keep only these source layers, in this order (e.g. `0,2,4`).
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// Leave out the `token_type_ids` input (every token then has type 0).
    #[arg(long)]
    pub no_token_type_ids: bool,
    /// Where to write the ONNX file.
    #[arg(long)]
    pub out: PathBuf,
}

/// `export-bert`: builds the encoder from the safetensors, then writes its ONNX.
fn export_bert(a: &ExportBertArgs) -> anyhow::Result<TextStudent> {
    let json = std::fs::read_to_string(&a.config)
        .with_context(|| format!("reading {}", a.config.display()))?;
    let mut cfg = TransformerConfig::from_hf_config(&json)
        .with_context(|| format!("config {}", a.config.display()))?;
    if let Some(l) = &a.layers {
        cfg.layers = l.len();
    }
    cfg.init = Some(TransformerInit {
        from: a.safetensors.clone(),
        layers: a.layers.clone(),
    });
    let (_vars, student) = TextStudent::build(&StudentConfig::Transformer(cfg))?;
    export_text_onnx(&student, !a.no_token_type_ids, &a.out)?;
    Ok(student)
}

/// Runs `export-bert` and prints what it wrote.
pub fn run(a: ExportBertArgs) -> anyhow::Result<()> {
    let s = export_bert(&a)?;
    println!(
        "wrote {} ({} layers, {} parameters)",
        a.out.display(),
        s.feature_dims().len(),
        s.param_count()
    );
    Ok(())
}
