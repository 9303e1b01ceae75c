//! ONNX protobuf messages, model editing (taps) and graph building (student export).
//!
//! - [`pb`]: prost messages generated from ONNX's own schema (`scripts/onnx/gen_pb.sh`).
//! - [`edit`]: listing inner tensors and exposing them as extra outputs ("taps").
//! - [`builder`]: building small graphs from weights, for student export.
//! - this file: decoding/encoding whole models, the error type and element-type mapping.

pub mod builder;
pub mod edit;
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod pb;

pub use builder::{attr_float, attr_int, attr_ints, attr_string, GraphBuilder};
pub use edit::{add_taps, tappable_tensors, Tap};
pub use pb::{
    attribute_proto, tensor_proto, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

use prost::Message;

use crate::DType;

/// Errors reading, editing or building ONNX models.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The bytes are not a valid ONNX protobuf model.
    #[error("not a valid ONNX model (protobuf decode failed): {0}")]
    Decode(#[from] prost::DecodeError),
    /// The model decoded but carries no graph.
    #[error("the ONNX model has no graph")]
    NoGraph,
    /// A tensor name that is not an inner tensor of the graph.
    #[error(
        "no inner tensor named `{name}` in the graph; {}",
        candidates_hint(candidates)
    )]
    UnknownTensor {
        /// The name asked for.
        name: String,
        /// Tappable tensor names close to it, best first.
        candidates: Vec<String>,
    },
    /// A tap request asked for a tensor that is already a graph output.
    #[error("`{0}` is already a graph output; request it as an output, not as a tap")]
    AlreadyOutput(String),
    /// The same tensor was tapped twice.
    #[error("tensor `{0}` is tapped more than once")]
    DuplicateTap(String),
    /// A tap string that cannot be parsed.
    #[error("invalid tap `{spec}`: {reason}")]
    InvalidTap {
        /// The text given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The dtype given with a tap contradicts the type the model declares for the tensor.
    #[error("tap `{tensor}` was given dtype {requested}, but the model declares {declared}")]
    DTypeConflict {
        /// The tapped tensor.
        tensor: String,
        /// The element type in the model's value_info.
        declared: DType,
        /// The element type given with the tap.
        requested: DType,
    },
    /// Something the model uses that distill does not handle (an element type, a non-tensor value).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

fn candidates_hint(candidates: &[String]) -> String {
    if candidates.is_empty() {
        "the graph has no tappable inner tensors".to_string()
    } else {
        format!("close matches: {}", candidates.join(", "))
    }
}

/// Decodes a serialized `ModelProto` (the bytes of a `.onnx` file) and checks it has a graph.
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto, OnnxError> {
    let model = ModelProto::decode(bytes)?;
    if model.graph.is_none() {
        return Err(OnnxError::NoGraph);
    }
    Ok(model)
}

/// Serializes a model to the bytes of a `.onnx` file.
pub fn encode_model(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// The ONNX `TensorProto.DataType` value of a distill element type.
pub fn elem_type(dtype: DType) -> i32 {
    use tensor_proto::DataType as D;
    let t = match dtype {
        DType::F32 => D::Float,
        DType::F16 => D::Float16,
        DType::F64 => D::Double,
        DType::I64 => D::Int64,
        DType::I32 => D::Int32,
        DType::Bool => D::Bool,
    };
    t as i32
}

/// The distill element type of an ONNX `TensorProto.DataType` value, if distill handles it.
pub fn dtype_of(elem_type: i32) -> Option<DType> {
    use tensor_proto::DataType as D;
    match D::try_from(elem_type).ok()? {
        D::Float => Some(DType::F32),
        D::Float16 => Some(DType::F16),
        D::Double => Some(DType::F64),
        D::Int64 => Some(DType::I64),
        D::Int32 => Some(DType::I32),
        D::Bool => Some(DType::Bool),
        _ => None,
    }
}

/// The ONNX name of an element type value (`FLOAT`, `INT8`, ...) for error messages.
pub fn elem_type_name(elem_type: i32) -> String {
    match tensor_proto::DataType::try_from(elem_type) {
        Ok(t) => t.as_str_name().to_string(),
        Err(_) => format!("unknown element type {elem_type}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_mapping_round_trips_and_matches_onnx_numbers() {
        // Numbers from onnx.proto's TensorProto.DataType.
        let expected = [
            (DType::F32, 1),
            (DType::I32, 6),
            (DType::I64, 7),
            (DType::Bool, 9),
            (DType::F16, 10),
            (DType::F64, 11),
        ];
        for (dtype, number) in expected {
            assert_eq!(elem_type(dtype), number);
            assert_eq!(dtype_of(number), Some(dtype));
        }
        assert_eq!(dtype_of(3), None, "INT8 is not a distill dtype");
        assert_eq!(dtype_of(999), None);
        assert_eq!(elem_type_name(3), "INT8");
    }

    #[test]
    fn garbage_bytes_are_a_decode_error() {
        let err = decode_model(&[0xff, 0xff, 0xff, 0x01, 0x02]).unwrap_err();
        assert!(matches!(err, OnnxError::Decode(_)), "{err:?}");
        assert!(err.to_string().contains("not a valid ONNX model"));
    }

    #[test]
    fn empty_model_has_no_graph() {
        let err = decode_model(&[]).unwrap_err();
        assert!(matches!(err, OnnxError::NoGraph), "{err:?}");
    }
}
