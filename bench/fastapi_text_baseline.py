#!/usr/bin/env python3
"""What a user would write instead of teacher-server's text path: FastAPI + uvicorn + the Hugging
Face `tokenizers` package + onnxruntime + pyarrow, speaking the subset of teacher-server's API
the text benchmark uses.

- `POST /v1/score` with a JSON `ScoreRequest` whose input is a list of sentences
  (`{"dataset": D, "ids": [...], "inputs": {"text": ["a sentence", ...]}}`) or an Arrow IPC
  stream (`Content-Type: application/vnd.apache.arrow.stream`, `?dataset=NAME`, an `id` column
  and a Utf8 `text` column).
- Tokenizes the request's sentences (truncation at --max-length, padding to the longest sentence
  of the request), runs the encoder, mean-pools `last_hidden_state` over the attention mask
  (optionally L2-normalised), then writes one zstd Parquet file per request into
  DATA_DIR/DATASET/ (tmp name, fsync, rename) with columns `id`, `text`, `input_ids`
  List<Int32> (the unpadded token ids) and `embedding` FixedSizeList<Float32, hidden>, and only
  then answers - "durable before ack" like teacher-server, without its write-ahead log, batching
  across requests, length ordering, or idempotency by id.
- `GET /health`.

Usage: fastapi_text_baseline.py --model M.onnx --tokenizer tokenizer.json --data-dir DIR
                                [--port 8082] [--max-length 256] [--normalize]
"""
import argparse
import json
import os
import uuid

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from tokenizers import Tokenizer

ARROW = "application/vnd.apache.arrow.stream"
TEXT = "text"


def load_tokenizer(path: str, max_length: int) -> Tokenizer:
    tok = Tokenizer.from_file(path)
    # tokenizer.json files often ship fixed padding/truncation (MiniLM's: 128); replace both.
    tok.enable_truncation(max_length=max_length)
    pad = tok.padding or {}
    pad_token = pad.get("pad_token", "[PAD]")
    tok.enable_padding(pad_id=tok.token_to_id(pad_token), pad_token=pad_token)
    return tok


def build_app(model: str, tokenizer: str, data_dir: str, max_length: int, normalize: bool) -> FastAPI:
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in sess.get_inputs()]
    tok = load_tokenizer(tokenizer, max_length)
    app = FastAPI()

    def embed(sentences: list) -> tuple:
        if not sentences or not all(isinstance(s, str) and s.strip() for s in sentences):
            raise ValueError("every sentence must be a non-empty string")
        enc = tok.encode_batch(sentences)
        mask = np.asarray([e.attention_mask for e in enc], dtype=np.int64)
        cols = {"input_ids": [e.ids for e in enc], "attention_mask": mask,
                "token_type_ids": [e.type_ids for e in enc]}
        feeds = {name: np.asarray(cols[name], dtype=np.int64) for name in inputs}
        (hidden,) = sess.run(["last_hidden_state"], feeds)
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        if normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        ids = [e.ids[: int(n)] for e, n in zip(enc, mask.sum(axis=1))]
        return ids, pooled.astype(np.float32)

    def store(dataset: str, ids: pa.Array, text: pa.Array, token_ids: list, emb: np.ndarray) -> None:
        table = pa.table({
            "id": ids,
            "text": text,
            "input_ids": pa.array(token_ids, pa.list_(pa.int32())),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), emb.shape[1]),
        })
        folder = os.path.join(data_dir, dataset)
        os.makedirs(folder, exist_ok=True)
        final = os.path.join(folder, f"part-{uuid.uuid4().hex}.parquet")
        tmp = final + ".tmp"
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)

    def answer(rows: int, dataset: str) -> dict:
        return {"rows": rows, "dataset": dataset, "stored": rows if dataset else 0,
                "duplicates": 0, "outputs": {}}

    def score_arrow(body: bytes, dataset: str) -> dict:
        table = pa.ipc.open_stream(body).read_all().combine_chunks()
        text = table.column(TEXT).chunk(0)
        token_ids, emb = embed(text.to_pylist())
        if dataset:
            store(dataset, table.column("id").chunk(0), text, token_ids, emb)
        return answer(table.num_rows, dataset)

    def score_json(body: bytes) -> dict:
        req = json.loads(body)
        sentences = req["inputs"][TEXT]
        token_ids, emb = embed(sentences)
        dataset = req.get("dataset")
        if dataset:
            store(dataset, pa.array(req.get("ids") or [], pa.string()), pa.array(sentences, pa.string()),
                  token_ids, emb)
        return answer(len(sentences), dataset)

    @app.post("/v1/score")
    async def score(request: Request, dataset: str = None):
        body = await request.body()
        try:
            if request.headers.get("content-type", "").startswith(ARROW):
                return await run_in_threadpool(score_arrow, body, dataset)
            return await run_in_threadpool(score_json, body)
        except (KeyError, TypeError, ValueError, pa.ArrowException) as e:
            raise HTTPException(status_code=400, detail=str(e))

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--port", type=int, default=8082)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--normalize", action="store_true")
    args = ap.parse_args()
    app = build_app(args.model, args.tokenizer, args.data_dir, args.max_length, args.normalize)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, workers=1)


if __name__ == "__main__":
    main()
