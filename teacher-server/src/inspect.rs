//! `teacher-server inspect`: the model's signature and the inner tensors `--tap` can expose.

use std::fmt::Write;
use std::path::PathBuf;

use anyhow::Context;
use distill_proto::api::dims_text;
use distill_proto::onnx::{decode_model, tappable_tensors};

use crate::teacher::ort::{init_runtime, ort_version, OrtTeacher};
use crate::teacher::{EpChoice, Teacher};

/// What to inspect.
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// The ONNX model.
    pub model: PathBuf,
    /// Path of libonnxruntime; `None` lets `ort` find it.
    pub ort_lib: Option<PathBuf>,
}

/// Builds the inspection report.
pub fn inspect(args: &InspectOptions) -> anyhow::Result<String> {
    let bytes = std::fs::read(&args.model)
        .with_context(|| format!("reading model {}", args.model.display()))?;
    let model =
        decode_model(&bytes).with_context(|| format!("decoding {}", args.model.display()))?;
    let env = init_runtime(args.ort_lib.as_deref())?;
    let teacher = OrtTeacher::load(&env, &bytes, EpChoice::Cpu, 1)?;
    let sig = teacher.signature();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model: {} (ONNX Runtime {})",
        args.model.display(),
        ort_version(args.ort_lib.as_deref())
    );
    let _ = writeln!(out, "inputs:");
    for s in &sig.inputs {
        let _ = writeln!(out, "  {}  {}  {}", s.name, s.dtype, dims_text(&s.shape));
    }
    let _ = writeln!(out, "outputs:");
    for s in &sig.outputs {
        let _ = writeln!(out, "  {}  {}  {}", s.name, s.dtype, dims_text(&s.shape));
    }
    for (name, ty) in &sig.unsupported_outputs {
        let _ = writeln!(out, "  {name}  {ty}  (cannot be served)");
    }
    let taps = tappable_tensors(&model);
    let _ = writeln!(
        out,
        "tappable tensors ({}; use --tap NAME[:dtype]):",
        taps.len()
    );
    for t in taps {
        let _ = writeln!(out, "  {t}");
    }
    Ok(out)
}
