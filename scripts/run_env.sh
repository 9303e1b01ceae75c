# The environment every run script starts from (sourced from the repository root, not run):
# ROOT, START (for elapsed times), the ONNX Runtime library and the built binaries' folder.
ROOT=$PWD
START=$(date +%s)
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/.deps/onnxruntime/libonnxruntime.so.1.31.1}
BIN=$ROOT/target/debug
