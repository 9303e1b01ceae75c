# teacher-server on a CUDA GPU.
#   docker compose up          (see docker-compose.yml: GPU reservation, volumes, healthcheck)
# Stage 1 builds the Rust binary; stage 2 is a CUDA 13 + cuDNN 9 runtime with the ONNX Runtime
# GPU build from PyPI (onnxruntime-gpu 1.31.1 is built for CUDA 13). The binary loads
# libonnxruntime dynamically (ort's load-dynamic), so nothing of ONNX Runtime is linked at
# build time. The image runs `--ep cuda`: the server refuses to start when CUDA cannot be
# registered, instead of serving on CPU under a GPU label (`--ep auto` would fall back).
# GET /health (the healthcheck), /v1/model and /metrics report the provider in use.
# The server runs as the unprivileged user `distill` (uid 10001), which owns /data.
#
# Build arguments (defaults are what `docker compose build` uses):
#   BUILD_IMAGE    the Rust toolchain image of the build stage
#   RUNTIME_IMAGE  the CUDA runtime image the server runs in (any Debian/Ubuntu with apt works:
#                  without a GPU the server then needs `--ep cpu`, see docker-compose.cpu.yml)
#   BINARY_FROM    `build` compiles the server in the image; `prebuilt` copies PREBUILT_BINARY
#                  (a release binary built on the host, for glibc >= the runtime image's) from
#                  the build context instead
#   ORT_PACKAGE    the PyPI package that provides libonnxruntime.so.1.31.1
# pip can be given a CA bundle (e.g. behind a TLS-intercepting proxy) as the build secret
# `pip_ca`: `--secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt`.
ARG BUILD_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
ARG BINARY_FROM=build

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p teacher-server \
 && cp target/release/teacher-server /usr/local/bin/teacher-server

FROM scratch AS prebuilt
ARG PREBUILT_BINARY=target/release/teacher-server
COPY ${PREBUILT_BINARY} /usr/local/bin/teacher-server

FROM ${BINARY_FROM} AS binary

FROM ${RUNTIME_IMAGE}
ARG ORT_PACKAGE=onnxruntime-gpu==1.31.1
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The GPU build of ONNX Runtime: libonnxruntime.so.1.31.1 + libonnxruntime_providers_cuda.so.
RUN --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && python3 -m venv /opt/ort \
 && /opt/ort/bin/pip install --no-cache-dir "$ORT_PACKAGE" \
 && ln -s "$(/opt/ort/bin/python -c 'import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))')/capi" /opt/ort/capi \
 && test -f /opt/ort/capi/libonnxruntime.so.1.31.1
ENV ORT_DYLIB_PATH=/opt/ort/capi/libonnxruntime.so.1.31.1 \
    DISTILL_EP=cuda \
    DISTILL_MODEL=/models/teacher.onnx \
    DISTILL_DATA_DIR=/data \
    DISTILL_BIND=0.0.0.0:8080
COPY --from=binary /usr/local/bin/teacher-server /usr/local/bin/teacher-server
# A fixed uid/gid so a bind-mounted ./data can be chowned to it on the host.
RUN groupadd --system --gid 10001 distill \
 && useradd --system --uid 10001 --gid distill --home-dir /data --no-create-home distill \
 && mkdir -p /data \
 && chown distill:distill /data
USER distill
VOLUME ["/data"]
EXPOSE 8080
# SIGTERM seals open shards before exit (give it time: docker's default grace is 10 s).
STOPSIGNAL SIGTERM
# /health answers 503 once the inference thread has stopped (urlopen raises on it) and
# names the provider in use.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
  CMD ["/opt/ort/bin/python", "-c", "import json, urllib.request; h = json.load(urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)); assert h['status'] == 'ok' and h['provider'] == 'cuda', h"]
CMD ["teacher-server", "serve", "--ep", "cuda"]
