//! `student-trainer export-init`: a text run config's student as initialised, untrained, as
//! ONNX (the "before distillation" model to evaluate).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use trainer_core::export::export_text_onnx;
use trainer_core::model::TextStudent;

use crate::config::RunConfig;

/// `export-init` flags.
#[derive(Debug, Args)]
pub struct ExportInitArgs {
    /// A run config with a text student (`student.arch = "static"` or `"transformer"`).
    #[arg(long)]
    pub config: PathBuf,
    /// Where to write the ONNX file.
    #[arg(long)]
    pub out: PathBuf,
}

/// Builds the config's text student as initialised and writes its ONNX.
fn export_init(a: &ExportInitArgs) -> anyhow::Result<TextStudent> {
    let cfg = RunConfig::load(&a.config)?;
    if !cfg.student.is_text() {
        anyhow::bail!(
            "{}: student.arch = \"{}\" is not a text student (export-init writes `static` or `transformer` students)",
            a.config.display(),
            cfg.student.arch_name()
        );
    }
    let (_vars, student) = TextStudent::build(&cfg.student)
        .with_context(|| format!("building the student of {}", a.config.display()))?;
    let types = cfg.data.token_types.is_some();
    export_text_onnx(&student, types, &a.out)?;
    Ok(student)
}

/// Runs `export-init` and prints what it wrote.
pub fn run(a: ExportInitArgs) -> anyhow::Result<()> {
    let s = export_init(&a)?;
    println!(
        "wrote {} ({} student as initialised, {} parameters)",
        a.out.display(),
        s.arch_name(),
        s.param_count()
    );
    Ok(())
}
