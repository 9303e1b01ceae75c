"""The table of scripts/text_exits.sh: each exit and each alone-trained student, eval-text
scores, size and speed, and WordNet held-out fidelity from the training runs.

Usage: text_exits_report.py OUT [SD]: SD (default `sd`) names the self-distilled run folder
and the prefix of its eval files. Speed comes from the back-to-back `NAME-speed{1,2}.json`
passes where they exist (the faster round), else from the eval itself."""

import json
import sys
from pathlib import Path


def load(p: Path):
    return json.loads(p.read_text())


def main() -> None:
    out = Path(sys.argv[1])
    sd = sys.argv[2] if len(sys.argv) > 2 else "sd"
    rows = [
        ("exit0 of the self-distilled 3-layer student (1 block)", f"{sd}-exit0", sd, "exit0"),
        ("1-layer student trained alone (teacher layer 0)", "l1", "l1", None),
        ("exit1 of the self-distilled 3-layer student (2 blocks)", f"{sd}-exit1", sd, "exit1"),
        ("2-layer student trained alone (teacher layers 0, 2)", "l2", "l2", None),
        ("self-distilled 3-layer student, its own output", f"{sd}-student", sd, None),
        ("3-layer student trained alone (teacher layers 0, 2, 4)", "l3", "l3", None),
    ]
    print(
        "| model | Lee-50 Pearson | WordSim-353 Spearman | BBC centroid | BBC probe "
        "| fidelity (BBC+Lee) | WordNet fidelity | params | ONNX MB | sentences/s | latency ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, ev, run, exit_name in rows:
        e = load(out / "eval" / f"{ev}.json")
        s = load(out / run / "summary.json")
        if exit_name is None:
            wn = s["text"]["final_eval"]["fidelity"]
        else:
            wn = s["networks"][exit_name]["text_eval"]["fidelity"]
        sp = e["speed"]
        rounds = [out / "eval" / f"{ev}-speed{r}.json" for r in (1, 2)]
        timed = [load(p)["speed"] for p in rounds if p.exists()]
        if timed:
            sp = max(timed, key=lambda t: t["sentences_per_s"])
        print(
            f"| {label} | {e['lee']['pearson']:.3f} | {e['wordsim']['spearman']:.3f} "
            f"| {e['bbc']['centroid_accuracy']:.3f} | {e['bbc']['probe_accuracy']:.3f} "
            f"| {e['fidelity']['mean_cosine']:.3f} | {wn:.3f} | {sp['parameters']:,} "
            f"| {sp['onnx_bytes'] / 1e6:.1f} | {sp['sentences_per_s']:.0f} "
            f"| {sp['latency_ms_batch1']:.2f} |"
        )
    print()
    print("| run | train rows | eval rows | samples/s | run wall s |")
    print("|---|---:|---:|---:|---:|")
    for run in [sd, "l1", "l2", "l3"]:
        s = load(out / run / "summary.json")
        wall = (out / f"{run}.wall_s").read_text().strip()
        print(
            f"| {run} | {s['train_rows']:,} | {s['text']['eval_rows']:,} "
            f"| {s['samples_per_s']:.0f} | {wall} |"
        )


if __name__ == "__main__":
    main()
