//! Candle student → ONNX graph, written from the live weights.
//!
//! The graph takes `input [batch, input_dim]` (f32, `dim_param` "batch") and gives the logits
//! plus every hidden activation as extra outputs `hidden0`, `hidden1`, … (the same tensors as
//! [`StudentOutput::hidden`](crate::model::StudentOutput)), so an exported student can serve as
//! the next round's teacher with feature taps (born-again distillation) without graph editing.
//!
//! - MLP: `Gemm(transB=1) → Relu` per hidden layer, `Gemm` head.
//! - CNN: `Reshape [-1,C,H,W]`, then per block `Conv 3x3 pads 1 → Relu → MaxPool 2x2/2` with a
//!   `Flatten` of the pooled map as `hidden{i}`, then `Gemm → Relu` (the last hidden) and the head.
//!
//! Initializers carry the checkpoint weight names (`fc0.weight`, `conv1.bias`, …).

use std::path::Path;

use candle_core::{DType as CDType, Tensor};
use candle_nn::{Conv2d, Linear};
use distill_proto::api::Dim;
use distill_proto::onnx::{
    attr_int, attr_ints, encode_model, GraphBuilder, ModelProto, StringStringEntryProto,
};
use distill_proto::DType;

use super::ExportError;
use crate::model::{Network, Student};
use distill_proto::atomic::write_atomic;

/// Hidden activations are graph outputs named `hidden0`, `hidden1`, ….
pub const HIDDEN_OUTPUT_PREFIX: &str = "hidden";

/// Builds the ONNX model of `student` with input `input_name` and logits output `output_name`.
pub fn student_to_onnx(
    student: &Student,
    input_name: &str,
    output_name: &str,
) -> Result<ModelProto, ExportError> {
    let hidden_names: Vec<String> = (0..student.feature_dims().len())
        .map(|i| format!("{HIDDEN_OUTPUT_PREFIX}{i}"))
        .collect();
    check_names(input_name, output_name, &hidden_names)?;

    let batch = || Dim::Dynamic("batch".to_string());
    let mut g = GraphBuilder::new(&format!("distill_student_{}", student.config().arch_name()));
    g.input(
        input_name,
        DType::F32,
        &[batch(), Dim::Fixed(student.input_dim())],
    );

    match student.network() {
        Network::Mlp(m) => {
            let mut prev = input_name.to_string();
            for (i, layer) in m.hidden_layers().iter().enumerate() {
                let gemm = format!("fc{i}.out");
                gemm_node(&mut g, layer, &format!("fc{i}"), &prev, &gemm)?;
                g.node("Relu", &[&gemm], &[&hidden_names[i]], vec![]);
                prev = hidden_names[i].clone();
            }
            gemm_node(&mut g, m.head(), "out", &prev, output_name)?;
        }
        Network::Cnn(c) => {
            let [ch, h, w] = c.input_shape();
            let shape_name = "input.shape";
            let image = "input.image";
            g.initializer_i64(shape_name, &[4], &[-1, ch as i64, h as i64, w as i64]);
            g.node("Reshape", &[input_name, shape_name], &[image], vec![]);
            let mut prev = image.to_string();
            for (i, conv) in c.convs().iter().enumerate() {
                let conv_out = format!("conv{i}.out");
                let relu_out = format!("conv{i}.relu");
                let pool_out = format!("conv{i}.pool");
                conv_node(&mut g, conv, &format!("conv{i}"), &prev, &conv_out)?;
                g.node("Relu", &[&conv_out], &[&relu_out], vec![]);
                g.node(
                    "MaxPool",
                    &[&relu_out],
                    &[&pool_out],
                    vec![
                        attr_ints("kernel_shape", &[2, 2]),
                        attr_ints("strides", &[2, 2]),
                    ],
                );
                g.node(
                    "Flatten",
                    &[&pool_out],
                    &[&hidden_names[i]],
                    vec![attr_int("axis", 1)],
                );
                // The next block takes the 4-D pooled map; the fc takes the last flattened one.
                prev = pool_out;
            }
            // With no conv blocks the rows are already flat: the fc reads the input itself.
            let fc_in = match c.convs().len() {
                0 => input_name.to_string(),
                n => hidden_names[n - 1].clone(),
            };
            let last = &hidden_names[c.convs().len()];
            gemm_node(&mut g, c.fc(), "fc", &fc_in, "fc.out")?;
            g.node("Relu", &["fc.out"], &[last], vec![]);
            gemm_node(&mut g, c.head(), "out", last, output_name)?;
        }
    }

    g.output(
        output_name,
        DType::F32,
        &[batch(), Dim::Fixed(student.num_classes())],
    );
    for (name, d) in hidden_names.iter().zip(student.feature_dims()) {
        g.output(name, DType::F32, &[batch(), Dim::Fixed(d)]);
    }

    let mut model = g.finish();
    check_no_clash(&model, input_name, output_name)?;
    model.doc_string = format!(
        "distill student ({}), {} parameters",
        student.config().arch_name(),
        student.param_count()
    );
    // The config travels with the model, so a later round knows what it is distilling from.
    // (Informational only; serialising this plain enum cannot fail, but never fail the export on it.)
    let config = serde_json::to_string(student.config())
        .unwrap_or_else(|e| format!("unserialisable config: {e}"));
    model.metadata_props = vec![prop("distill.student.config", &config)];
    model.metadata_props.extend(shape_props(student));
    Ok(model)
}

/// The metadata every exported student model carries about its input and class counts.
pub(crate) fn shape_props(student: &Student) -> [StringStringEntryProto; 2] {
    [
        prop(
            "distill.student.input_dim",
            &student.input_dim().to_string(),
        ),
        prop(
            "distill.student.num_classes",
            &student.num_classes().to_string(),
        ),
    ]
}

/// Writes `student` as an ONNX file at `path` (atomically: temporary file, then rename).
pub fn export_onnx(
    student: &Student,
    input_name: &str,
    output_name: &str,
    path: &Path,
) -> Result<(), ExportError> {
    let model = student_to_onnx(student, input_name, output_name)?;
    Ok(write_atomic(path, &encode_model(&model))?)
}

/// The caller's names must be non-empty, distinct, and not a `hidden{i}` output.
fn check_names(input: &str, output: &str, hidden: &[String]) -> Result<(), ExportError> {
    for (what, n) in [("input", input), ("output", output)] {
        if n.is_empty() {
            return Err(ExportError::InvalidName(format!(
                "the {what} name is empty"
            )));
        }
        if hidden.iter().any(|h| h == n) {
            return Err(ExportError::InvalidName(format!(
                "the {what} name `{n}` clashes with the hidden-activation output of the same name"
            )));
        }
    }
    if input == output {
        return Err(ExportError::InvalidName(format!(
            "input and output are both named `{input}`"
        )));
    }
    Ok(())
}

/// After building: the caller's names must not coincide with an internal tensor (`fc0.out`,
/// `conv1.weight`, …): the input is produced by nothing, the logits by the head alone.
pub(crate) fn check_no_clash(
    model: &ModelProto,
    input: &str,
    output: &str,
) -> Result<(), ExportError> {
    let Some(g) = model.graph.as_ref() else {
        return Ok(());
    };
    let produced = |name: &str| {
        g.initializer.iter().filter(|t| t.name == name).count()
            + g.node
                .iter()
                .flat_map(|n| n.output.iter())
                .filter(|o| *o == name)
                .count()
    };
    for (what, n, allowed) in [("input", input, 0), ("output", output, 1)] {
        if produced(n) != allowed {
            return Err(ExportError::InvalidName(format!(
                "the {what} name `{n}` is also the name of an internal tensor of the graph; choose another"
            )));
        }
    }
    Ok(())
}

/// Adds a layer's weight (and bias, when it has one) as f32 initializers named
/// `{prefix}.weight` / `{prefix}.bias`; returns their names in ONNX input order.
fn param_initializers(
    g: &mut GraphBuilder,
    prefix: &str,
    weight: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Vec<String>, ExportError> {
    let w_name = format!("{prefix}.weight");
    g.initializer_f32(&w_name, weight.dims(), &to_f32_vec(weight)?);
    let mut names = vec![w_name];
    if let Some(b) = bias {
        let b_name = format!("{prefix}.bias");
        g.initializer_f32(&b_name, b.dims(), &to_f32_vec(b)?);
        names.push(b_name);
    }
    Ok(names)
}

/// `input` followed by the parameter names, as a node's input list.
fn node_inputs<'a>(input: &'a str, params: &'a [String]) -> Vec<&'a str> {
    std::iter::once(input)
        .chain(params.iter().map(String::as_str))
        .collect()
}

/// `y = x · Wᵀ + b` as `Gemm(transB=1)` with initializers `{prefix}.weight`, `{prefix}.bias`.
pub(crate) fn gemm_node(
    g: &mut GraphBuilder,
    layer: &Linear,
    prefix: &str,
    input: &str,
    output: &str,
) -> Result<(), ExportError> {
    let params = param_initializers(g, prefix, layer.weight(), layer.bias())?;
    let inputs = node_inputs(input, &params);
    g.node("Gemm", &inputs, &[output], vec![attr_int("transB", 1)]);
    Ok(())
}

/// A 3x3 stride-1 `Conv` with padding 1 on every side, as candle's `Conv2dConfig{padding: 1}`.
pub(crate) fn conv_node(
    g: &mut GraphBuilder,
    conv: &Conv2d,
    prefix: &str,
    input: &str,
    output: &str,
) -> Result<(), ExportError> {
    let dims = conv.weight().dims();
    let params = param_initializers(g, prefix, conv.weight(), conv.bias())?;
    let inputs = node_inputs(input, &params);
    let kernel: Vec<i64> = dims[2..].iter().map(|&d| d as i64).collect();
    g.node(
        "Conv",
        &inputs,
        &[output],
        vec![
            attr_ints("kernel_shape", &kernel),
            attr_ints("pads", &[1, 1, 1, 1]),
            attr_ints("strides", &[1, 1]),
        ],
    );
    Ok(())
}

/// The tensor's values in row-major order as f32 (weights may live in another dtype).
pub(crate) fn to_f32_vec(t: &Tensor) -> Result<Vec<f32>, ExportError> {
    Ok(t.to_dtype(CDType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

pub(crate) fn prop(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: key.to_string(),
        value: value.to_string(),
    }
}
