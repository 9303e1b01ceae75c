//! Building small ONNX graphs from weights (student export): inputs, outputs, initializers and
//! nodes, written as IR version 8 with the default-domain opset 17.

use super::pb::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use super::{elem_type, tensor_proto};
use crate::api::Dim;
use crate::DType;

/// IR version written by [`GraphBuilder`]: ONNX Runtime 1.31 accepts up to 13, and 8 is what
/// opset 17 was released with (the schema's newest constant would be refused).
pub const IR_VERSION: i64 = 8;
/// Default-domain opset written by [`GraphBuilder`].
pub const OPSET_VERSION: i64 = 17;

/// Accumulates a graph and turns it into a loadable model.
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    graph: GraphProto,
}

impl GraphBuilder {
    /// An empty graph with the given name.
    pub fn new(graph_name: &str) -> Self {
        GraphBuilder {
            graph: GraphProto {
                name: graph_name.to_string(),
                ..Default::default()
            },
        }
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, dtype: DType, shape: &[Dim]) {
        self.graph.input.push(value_info(name, dtype, Some(shape)));
    }

    /// Declares a graph output.
    pub fn output(&mut self, name: &str, dtype: DType, shape: &[Dim]) {
        self.graph.output.push(value_info(name, dtype, Some(shape)));
    }

    /// Adds an f32 initializer stored as little-endian `raw_data`.
    /// `data.len()` must equal the product of `dims` (checked in debug builds; ONNX Runtime
    /// rejects a mismatched model at load).
    pub fn initializer_f32(&mut self, name: &str, dims: &[usize], data: &[f32]) {
        debug_assert_eq!(
            dims.iter().product::<usize>(),
            data.len(),
            "initializer {name}"
        );
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push_initializer(name, dims, DType::F32, raw);
    }

    /// Adds an i64 initializer stored as little-endian `raw_data` (e.g. a Reshape shape).
    pub fn initializer_i64(&mut self, name: &str, dims: &[usize], data: &[i64]) {
        debug_assert_eq!(
            dims.iter().product::<usize>(),
            data.len(),
            "initializer {name}"
        );
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push_initializer(name, dims, DType::I64, raw);
    }

    fn push_initializer(&mut self, name: &str, dims: &[usize], dtype: DType, raw_data: Vec<u8>) {
        self.graph.initializer.push(TensorProto {
            name: name.to_string(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: elem_type(dtype),
            raw_data,
            data_location: tensor_proto::DataLocation::Default as i32,
            ..Default::default()
        });
    }

    /// Appends a node of the default domain; nodes must be added in topological order.
    /// The node is named `<op_type>_<index>` so error messages of runtimes can point at it.
    pub fn node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attributes: Vec<AttributeProto>,
    ) {
        let index = self.graph.node.len();
        self.graph.node.push(NodeProto {
            name: format!("{op_type}_{index}"),
            op_type: op_type.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attributes,
            ..Default::default()
        });
    }

    /// The finished model: IR version 8, default-domain opset 17, producer `distill`.
    pub fn finish(self) -> ModelProto {
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET_VERSION,
            }],
            producer_name: "distill".to_string(),
            producer_version: env!("CARGO_PKG_VERSION").to_string(),
            graph: Some(self.graph),
            ..Default::default()
        }
    }
}

/// A tensor `ValueInfoProto`; `shape: None` leaves the shape (even the rank) unknown.
pub(crate) fn value_info(name: &str, dtype: DType, shape: Option<&[Dim]>) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(tensor_type(elem_type(dtype), shape.map(shape_proto))),
        ..Default::default()
    }
}

/// A tensor `TypeProto` of the given ONNX element type and optional shape.
pub(crate) fn tensor_type(elem_type: i32, shape: Option<TensorShapeProto>) -> TypeProto {
    TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type,
            shape,
        })),
        ..Default::default()
    }
}

/// `Dim::Fixed` becomes `dim_value`, `Dim::Dynamic` becomes `dim_param`.
pub(crate) fn shape_proto(shape: &[Dim]) -> TensorShapeProto {
    use tensor_shape_proto::{dimension::Value, Dimension};
    TensorShapeProto {
        dim: shape
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Dim::Fixed(n) => Value::DimValue(*n as i64),
                    Dim::Dynamic(s) => Value::DimParam(s.clone()),
                }),
                ..Default::default()
            })
            .collect(),
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Int as i32,
        i: Some(v),
        ..Default::default()
    }
}

/// A list-of-integers attribute (kernel shapes, strides, pads, perms).
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Float as i32,
        f: Some(v),
        ..Default::default()
    }
}

/// A string attribute (stored as UTF-8 bytes, as ONNX does).
pub fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::String as i32,
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{decode_model, encode_model};

    #[test]
    fn built_model_round_trips_through_bytes() {
        let mut b = GraphBuilder::new("g");
        b.input(
            "x",
            DType::F32,
            &[Dim::Dynamic("batch".into()), Dim::Fixed(3)],
        );
        b.initializer_f32("w", &[2, 3], &[1.0, -2.0, 3.5, 0.0, 1e-8, -0.0]);
        b.initializer_i64("shape", &[2], &[-1, 6]);
        b.node("Gemm", &["x", "w"], &["y"], vec![attr_int("transB", 1)]);
        b.output(
            "y",
            DType::F32,
            &[Dim::Dynamic("batch".into()), Dim::Fixed(2)],
        );
        let model = b.finish();
        assert_eq!(model.ir_version, 8);
        assert_eq!(model.opset_import[0].version, 17);
        let decoded = decode_model(&encode_model(&model)).unwrap();
        assert_eq!(decoded, model);
        let g = decoded.graph.unwrap();
        // Little-endian raw_data, exactly as PyTorch writes it.
        assert_eq!(g.initializer[0].raw_data[..4], 1.0f32.to_le_bytes());
        assert_eq!(g.initializer[1].raw_data[..8], (-1i64).to_le_bytes());
        assert_eq!(g.node[0].name, "Gemm_0");
        assert_eq!(g.node[0].attribute[0].r#type, AttributeType::Int as i32);
    }

    #[test]
    fn zero_valued_attributes_keep_their_value_field() {
        // onnx.checker wants exactly one value field present, even when it holds 0.
        let node = NodeProto {
            attribute: vec![
                attr_int("keepdims", 0),
                attr_float("alpha", 0.0),
                attr_string("mode", ""),
            ],
            ..Default::default()
        };
        let back =
            <NodeProto as prost::Message>::decode(&*prost::Message::encode_to_vec(&node)).unwrap();
        assert_eq!(back.attribute[0].i, Some(0));
        assert_eq!(back.attribute[1].f, Some(0.0));
        assert_eq!(back.attribute[2].s.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn attributes_carry_their_type() {
        assert_eq!(attr_ints("k", &[3, 3]).ints, vec![3, 3]);
        assert_eq!(attr_float("alpha", 0.5).f, Some(0.5));
        assert_eq!(
            attr_string("auto_pad", "VALID").s.as_deref(),
            Some(&b"VALID"[..])
        );
        assert_eq!(
            attr_string("auto_pad", "VALID").r#type,
            AttributeType::String as i32
        );
    }
}
