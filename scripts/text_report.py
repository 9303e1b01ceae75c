#!/usr/bin/env python3
"""Writes the Markdown report of `make demo-text` (scripts/demo_text.sh) to stdout from what the
demo left in its folder: eval/<model>.json (student-trainer eval-text), the two students' run
folders (summary.json: fidelity on the held-out WordNet rows before and after training) and the
teacher's labelling figures. Every number is read from those files; nothing is computed here but
ratios to the teacher.

Usage: scripts/text_report.py --out runs/demo-text --elapsed-s SECONDS
"""
import argparse
import json
import os
import subprocess

ROWS = [
    ("teacher", "all-MiniLM-L6-v2, exact f32 ONNX (`export-bert`)"),
    ("paraphrase-MiniLM-L3-v2", "paraphrase-MiniLM-L3-v2 (public 3-layer model, what you could download instead)"),
    ("static-init", "static student **before** training (teacher token table, PCA to 256, inverse-PCA projector)"),
    ("static", "static student **after** distillation"),
    ("transformer-l3-init", "3-layer transformer **before** training (teacher layers 0, 2, 4)"),
    ("transformer-l3", "3-layer transformer **after** distillation"),
]


def load(path):
    with open(path) as f:
        return json.load(f)


def fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--elapsed-s", type=float, required=True)
    a = ap.parse_args()
    ev = {name: load(os.path.join(a.out, "eval", f"{name}.json")) for name, _ in ROWS}
    t = ev["teacher"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()

    def score(e):
        return {
            "lee": e["lee"]["pearson"],
            "wordsim": e["wordsim"]["spearman"],
            "centroid": e["bbc"]["centroid_accuracy"],
            "probe": e["bbc"]["probe_accuracy"],
            "fidelity": e["fidelity"]["mean_cosine"],
            "sps": e["speed"]["sentences_per_s"],
            "lat": e["speed"]["latency_ms_batch1"],
            "params": e["speed"]["parameters"],
            "mb": e["speed"]["onnx_bytes"] / 1e6,
        }

    ts = score(t)
    print("# distill demo-text: all-MiniLM-L6-v2 -> static and 3-layer students\n")
    print(f"Commit `{commit}`; {os.cpu_count()} CPUs; total elapsed {a.elapsed_s:.0f} s. Teacher labels: "
          "the whole WordNet 3.0 corpus (definitions and examples) through teacher-server "
          "(`--tokenizer`, 128 tokens); students trained on the stored pooled embeddings. "
          "Scores from `student-trainer eval-text` (mean pooling, L2-normalised, 128 tokens): "
          "Lee-50 Pearson, WordSim-353 Spearman, BBC News (fixed split) nearest-centroid and "
          "linear-probe accuracy, fidelity = mean cosine to the teacher on BBC test + Lee texts; "
          "speed = ONNX Runtime sentences/s at batch 64 (BBC titles) and median latency at batch 1.\n")
    print("| model | Lee-50 | WordSim-353 | BBC centroid | BBC probe | fidelity | params | ONNX MB | sentences/s | × teacher | latency ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, label in ROWS:
        s = score(ev[name])
        print(f"| {label} | {fmt(s['lee'])} | {fmt(s['wordsim'])} | {fmt(s['centroid'])} | {fmt(s['probe'])} | "
              f"{fmt(s['fidelity'])} | {s['params']:,} | {s['mb']:.1f} | {s['sps']:.0f} | "
              f"{s['sps'] / ts['sps']:.1f}× | {s['lat']:.2f} |")
    print("\nScore / teacher score (the issue's targets: transformer ≥ 0.95× on each at ≥ 1.8× speed; "
          "static ≥ 0.85× on Lee-50 and BBC at ≥ 20× speed):\n")
    print("| model | Lee-50 | WordSim-353 | BBC centroid | speed |")
    print("|---|---:|---:|---:|---:|")
    for name, label in ROWS[1:]:
        s = score(ev[name])
        print(f"| {name} | {s['lee'] / ts['lee']:.2f}× | {s['wordsim'] / ts['wordsim']:.2f}× | "
              f"{s['centroid'] / ts['centroid']:.2f}× | {s['sps'] / ts['sps']:.1f}× |")
    print("\nTraining (fidelity = mean cosine with the teacher's stored embedding on the held-out 1% of "
          "WordNet rows, before the first step and after the last epoch):\n")
    print("| student | train rows | epochs | samples/s | train wall s | fidelity before | fidelity after |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run in ("static", "transformer-l3"):
        s = load(os.path.join(a.out, run, "summary.json"))
        tx = s["text"]
        print(f"| {run} | {s['train_rows']:,} | {s['epochs']} | {s['samples_per_s']:.0f} | {s['wall_s']:.0f} | "
              f"{fmt(tx['initial_eval']['fidelity'])} | {fmt(tx['final_eval']['fidelity'])} |")
    pad = os.path.join(a.out, "teacher-padding.txt")
    if os.path.exists(pad):
        vals = dict(line.split() for line in open(pad) if line.strip())
        real, padded = float(vals["distill_tokens_real_total"]), float(vals["distill_tokens_padded_total"])
        print(f"\nLabelling: padding efficiency {real / padded:.3f} ({real:.0f} real / {padded:.0f} padded tokens).")
    emb = os.path.join(a.out, "student-embeddings.json")
    if os.path.exists(emb):
        r = load(emb)
        print(f"\nThe distilled transformer served through teacher-server's `/v1/embeddings`: "
              f"{len(r['data'])} embeddings of {len(r['data'][0]['embedding'])} floats "
              f"(`usage.prompt_tokens` {r['usage']['prompt_tokens']}).")


if __name__ == "__main__":
    main()
