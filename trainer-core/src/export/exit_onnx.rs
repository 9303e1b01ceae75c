//! A self-distillation exit as a standalone, truncated ONNX model: the backbone up to the
//! exit's layer, then the exit head. Nothing deeper is in the graph, so the dropped layers
//! cost nothing at inference.
//!
//! - MLP exit after hidden layer `L`: `Gemm(transB=1) → Relu` for layers `0..=L`, then the head.
//! - CNN exit after conv block `L`: `Reshape [-1,C,H,W]`, blocks `0..=L`
//!   (`Conv → Relu → MaxPool → …`), `Flatten`, then the head.
//! - Head: optional `Gemm → Relu` (`exit.fc.*`), then `Gemm` (`exit.out.*`) to `output_name`.

use std::path::Path;

use distill_proto::api::Dim;
use distill_proto::atomic::write_atomic;
use distill_proto::onnx::{attr_int, attr_ints, encode_model, GraphBuilder, ModelProto};
use distill_proto::DType;

use super::onnx_graph::{check_no_clash, conv_node, gemm_node, prop, shape_props};
use super::ExportError;
use crate::model::{ExitHead, Network, Student};

/// Builds the truncated model of `student` that stops at `exit`.
pub fn exit_to_onnx(
    student: &Student,
    exit: &ExitHead,
    input_name: &str,
    output_name: &str,
) -> Result<ModelProto, ExportError> {
    if input_name.is_empty() || output_name.is_empty() || input_name == output_name {
        return Err(ExportError::InvalidName(format!(
            "input {input_name:?} and output {output_name:?} must be distinct, non-empty names"
        )));
    }
    let batch = || Dim::Dynamic("batch".to_string());
    let mut g = GraphBuilder::new(&format!(
        "distill_student_{}_{}",
        student.config().arch_name(),
        exit.name()
    ));
    g.input(
        input_name,
        DType::F32,
        &[batch(), Dim::Fixed(student.input_dim())],
    );
    let layer = exit.layer();
    let features = match student.network() {
        Network::Mlp(m) => {
            let layers = m.hidden_layers().get(..=layer).ok_or_else(|| {
                ExportError::InvalidExit(format!("the student has no hidden layer {layer}"))
            })?;
            let mut prev = input_name.to_string();
            for (i, l) in layers.iter().enumerate() {
                let gemm = format!("fc{i}.out");
                let relu = format!("fc{i}.relu");
                gemm_node(&mut g, l, &format!("fc{i}"), &prev, &gemm)?;
                g.node("Relu", &[&gemm], &[&relu], vec![]);
                prev = relu;
            }
            prev
        }
        Network::Cnn(c) => {
            let convs = c.convs().get(..=layer).ok_or_else(|| {
                ExportError::InvalidExit(format!("the student has no conv block {layer}"))
            })?;
            let [ch, h, w] = c.input_shape();
            g.initializer_i64("input.shape", &[4], &[-1, ch as i64, h as i64, w as i64]);
            g.node(
                "Reshape",
                &[input_name, "input.shape"],
                &["input.image"],
                vec![],
            );
            let mut prev = "input.image".to_string();
            for (i, conv) in convs.iter().enumerate() {
                let (co, re, po) = (
                    format!("conv{i}.out"),
                    format!("conv{i}.relu"),
                    format!("conv{i}.pool"),
                );
                conv_node(&mut g, conv, &format!("conv{i}"), &prev, &co)?;
                g.node("Relu", &[&co], &[&re], vec![]);
                g.node(
                    "MaxPool",
                    &[&re],
                    &[&po],
                    vec![
                        attr_ints("kernel_shape", &[2, 2]),
                        attr_ints("strides", &[2, 2]),
                    ],
                );
                prev = po;
            }
            let flat = format!("conv{layer}.flat");
            g.node("Flatten", &[&prev], &[&flat], vec![attr_int("axis", 1)]);
            flat
        }
    };
    let head_in = match exit.fc() {
        Some(fc) => {
            gemm_node(&mut g, fc, "exit.fc", &features, "exit.fc.out")?;
            g.node("Relu", &["exit.fc.out"], &["exit.fc.relu"], vec![]);
            "exit.fc.relu".to_string()
        }
        None => features,
    };
    gemm_node(&mut g, exit.out(), "exit.out", &head_in, output_name)?;
    g.output(
        output_name,
        DType::F32,
        &[batch(), Dim::Fixed(student.num_classes())],
    );
    let mut model = g.finish();
    check_no_clash(&model, input_name, output_name)?;
    let params = crate::model::exits::truncated_param_count(student, exit);
    model.doc_string = format!(
        "distill student ({}) truncated at {}, {params} parameters",
        student.config().arch_name(),
        exit.name()
    );
    model.metadata_props = vec![prop("distill.student.exit", &exit.name())];
    model.metadata_props.extend(shape_props(student));
    Ok(model)
}

/// Writes the truncated model of `exit` at `path` (atomically).
pub fn export_exit_onnx(
    student: &Student,
    exit: &ExitHead,
    input_name: &str,
    output_name: &str,
    path: &Path,
) -> Result<(), ExportError> {
    let model = exit_to_onnx(student, exit, input_name, output_name)?;
    Ok(write_atomic(path, &encode_model(&model))?)
}
