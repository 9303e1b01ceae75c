# teacher-server on a CUDA GPU.
#   docker compose up          (see docker-compose.yml: GPU reservation, volumes, healthcheck)
# Stage 1 builds the Rust binary; stage 2 is a CUDA 13 + cuDNN 9 runtime with the ONNX Runtime
# GPU build from PyPI (onnxruntime-gpu 1.31.1 is built for CUDA 13). The binary loads
# libonnxruntime dynamically (ort's load-dynamic), so nothing of ONNX Runtime is linked at
# build time. `--ep auto` registers CUDA when it works and falls back to CPU otherwise;
# GET /v1/model and /metrics report the provider actually used.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p teacher-server \
 && cp target/release/teacher-server /usr/local/bin/teacher-server

FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The GPU build of ONNX Runtime: libonnxruntime.so.1.31.1 + libonnxruntime_providers_cuda.so.
RUN python3 -m venv /opt/ort \
 && /opt/ort/bin/pip install --no-cache-dir onnxruntime-gpu==1.31.1 \
 && ln -s "$(/opt/ort/bin/python -c 'import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))')/capi" /opt/ort/capi \
 && test -f /opt/ort/capi/libonnxruntime.so.1.31.1
ENV ORT_DYLIB_PATH=/opt/ort/capi/libonnxruntime.so.1.31.1 \
    DISTILL_EP=auto \
    DISTILL_MODEL=/models/teacher.onnx \
    DISTILL_DATA_DIR=/data \
    DISTILL_BIND=0.0.0.0:8080
COPY --from=build /usr/local/bin/teacher-server /usr/local/bin/teacher-server
VOLUME ["/data"]
EXPOSE 8080
# SIGTERM seals open shards before exit (give it time: docker's default grace is 10 s).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
  CMD ["/opt/ort/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
CMD ["teacher-server", "serve", "--ep", "auto"]
