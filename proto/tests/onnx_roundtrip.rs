//! Decoding and encoding ONNX models without Python: round trips and bad input.

use distill_proto::api::Dim;
use distill_proto::onnx::{
    attr_int, decode_model, encode_model, pb::DeviceConfigurationProto, GraphBuilder, ModelProto,
    OnnxError,
};
use distill_proto::DType;

fn small_model() -> ModelProto {
    let mut b = GraphBuilder::new("g");
    b.input(
        "x",
        DType::F32,
        &[Dim::Dynamic("batch".into()), Dim::Fixed(2)],
    );
    b.initializer_f32("w", &[3, 2], &[0.5, -1.0, 2.0, 0.25, -0.125, 8.0]);
    b.node("Gemm", &["x", "w"], &["y"], vec![attr_int("transB", 1)]);
    b.output(
        "y",
        DType::F32,
        &[Dim::Dynamic("batch".into()), Dim::Fixed(3)],
    );
    b.finish()
}

#[test]
fn encode_then_decode_is_identity() {
    let model = small_model();
    let bytes = encode_model(&model);
    let back = decode_model(&bytes).unwrap();
    assert_eq!(back, model);
    assert_eq!(encode_model(&back), bytes, "re-encoding is stable");
}

#[test]
fn newest_schema_fields_survive_a_round_trip() {
    // prost keeps no unknown fields, so a field missing from our schema would be lost on
    // re-save. ModelProto.configuration (tag 26) is one of the newest: it must be known.
    let mut model = small_model();
    model.configuration.push(DeviceConfigurationProto {
        name: "cfg".into(),
        num_devices: 2,
        device: vec!["a".into(), "b".into()],
    });
    let back = decode_model(&encode_model(&model)).unwrap();
    assert_eq!(back.configuration, model.configuration);
}

#[test]
fn garbage_and_truncated_bytes_are_decode_errors() {
    let err = decode_model(b"this is not an onnx file").unwrap_err();
    assert!(matches!(err, OnnxError::Decode(_)), "{err:?}");
    assert!(err.to_string().contains("not a valid ONNX model"), "{err}");

    let bytes = encode_model(&small_model());
    let err = decode_model(&bytes[..bytes.len() - 7]).unwrap_err();
    assert!(matches!(err, OnnxError::Decode(_)), "truncated: {err:?}");
}

#[test]
fn a_model_without_graph_is_rejected() {
    let model = ModelProto {
        ir_version: 8,
        ..Default::default()
    };
    let err = decode_model(&encode_model(&model)).unwrap_err();
    assert!(matches!(err, OnnxError::NoGraph), "{err:?}");
    assert!(err.to_string().contains("no graph"), "{err}");
}
