#!/usr/bin/env python3
"""A minimal Python teacher service for the benchmark: FastAPI + uvicorn + onnxruntime +
pyarrow, speaking the subset of teacher-server's API the benchmark uses.

- `POST /v1/score` with a JSON `ScoreRequest` (`dataset`, `ids`, `inputs`, `columns`) or an
  Arrow IPC stream (`Content-Type: application/vnd.apache.arrow.stream`, `?dataset=NAME`,
  an `id` column, the model input as a FixedSizeList column, other columns passed through).
- Runs the ONNX model, then writes the request's rows (id, every model output as a
  FixedSizeList<float32>, pass-through columns) as one zstd Parquet file per request into
  DATA_DIR/DATASET/ (tmp name, fsync, rename), and only then answers - the same
  "durable before ack" promise as teacher-server, without its write-ahead log, batching
  across requests, or idempotency by id.
- `--store-inputs` also stores the model inputs (as FixedSizeList columns under their input
  names), the same columns as teacher-server's default.
- `GET /health`.

Usage: fastapi_baseline.py --model M.onnx --data-dir DIR [--port 8081] [--store-inputs]
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

ARROW = "application/vnd.apache.arrow.stream"


def build_app(model: str, data_dir: str, store_inputs: bool = False) -> FastAPI:
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in sess.get_inputs()]
    outputs = [o.name for o in sess.get_outputs()]
    app = FastAPI()

    def fixed_list(arr: np.ndarray, rows: int) -> pa.Array:
        arr = np.ascontiguousarray(arr, dtype=np.float32).reshape(rows, -1)
        return pa.FixedSizeListArray.from_arrays(pa.array(arr.ravel()), arr.shape[1])

    def store(dataset: str, ids: pa.Array, feeds: dict, outs: list, extra: dict) -> None:
        cols = {"id": ids}
        if store_inputs:
            for name in inputs:
                cols[name] = fixed_list(feeds[name], len(ids))
        for name, arr in zip(outputs, outs):
            arr = np.ascontiguousarray(arr, dtype=np.float32).reshape(len(ids), -1)
            cols[name] = pa.FixedSizeListArray.from_arrays(pa.array(arr.ravel()), arr.shape[1])
        cols.update(extra)
        folder = os.path.join(data_dir, dataset)
        os.makedirs(folder, exist_ok=True)
        final = os.path.join(folder, f"part-{uuid.uuid4().hex}.parquet")
        tmp = final + ".tmp"
        with open(tmp, "wb") as f:
            pq.write_table(pa.table(cols), f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)

    def score_arrow(body: bytes, dataset: str) -> dict:
        table = pa.ipc.open_stream(body).read_all().combine_chunks()
        feeds = {}
        for name in inputs:
            col = table.column(name).chunk(0)
            width = col.type.list_size
            feeds[name] = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
        outs = sess.run(None, feeds)
        extra = {n: table.column(n).chunk(0) for n in table.column_names if n != "id" and n not in inputs}
        if dataset:
            store(dataset, table.column("id").chunk(0), feeds, outs, extra)
        return {"rows": table.num_rows, "dataset": dataset, "stored": table.num_rows if dataset else 0,
                "duplicates": 0, "outputs": {}}

    def score_json(body: bytes) -> dict:
        req = json.loads(body)
        feeds = {name: np.asarray(req["inputs"][name], dtype=np.float32) for name in inputs}
        outs = sess.run(None, feeds)
        ids = req.get("ids") or []
        dataset = req.get("dataset")
        if dataset:
            extra = {n: pa.array(v) for n, v in (req.get("columns") or {}).items()}
            store(dataset, pa.array(ids, pa.string()), feeds, outs, extra)
        rows = len(next(iter(feeds.values())))
        return {"rows": rows, "dataset": dataset, "stored": rows if dataset else 0, "duplicates": 0, "outputs": {}}

    @app.post("/v1/score")
    async def score(request: Request, dataset: str = None):
        body = await request.body()
        try:
            if request.headers.get("content-type", "").startswith(ARROW):
                return await run_in_threadpool(score_arrow, body, dataset)
            return await run_in_threadpool(score_json, body)
        except (KeyError, ValueError, pa.ArrowException) as e:
            raise HTTPException(status_code=400, detail=str(e))

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--store-inputs", action="store_true", help="store the model inputs too")
    args = ap.parse_args()
    uvicorn.run(build_app(args.model, args.data_dir, args.store_inputs), host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False, workers=1)


if __name__ == "__main__":
    main()
