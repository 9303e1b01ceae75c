//! ONNX protobuf messages, model editing (taps) and graph building (student export).
