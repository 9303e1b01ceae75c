#!/usr/bin/env python3
"""The tables of scripts/views.sh: test errors per variant and seed, storage per view.

Usage: scripts/views_report.py OUT SEEDS STUDENTS EPOCHS (as scripts/views.sh calls it).
"""
import json, os, sys, glob
out, seeds, students, epochs = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]
wall = dict(l.split() for l in open(f"{out}/wall.txt"))
def errors(run):
    return json.load(open(f"{out}/runs/{run}/summary.json"))["eval"]["errors"]
variants = [
    ("alone, jittered (ce)", "alone-jitter"),
    ("offline KD, single-view logits, no jitter", "kd"),
    ("offline KD, single-view logits, student jittered", "kd-jitter"),
    ("K = 1 stored view, replayed", "views1"),
    ("K = 4 stored views, replayed", "views4"),
    ("K = 8 stored views, replayed", "views8"),
    ("teacher served per augmented batch", "served"),
]
lines, table = [], []
t = json.load(open(f"{out}/runs/teacher/summary.json"))
lines.append(f"Teacher 2x1200, ±2 px jitter: {t['eval']['errors']} test errors ({wall['teacher']} s).\n")
for st in students:
    lines.append(f"### {st} student, {epochs} epochs\n")
    lines.append("| variant | " + " | ".join(f"errors s{s}" for s in seeds) + " | mean | vs single-view jittered | run wall s (" + " / ".join(f"s{s}" for s in seeds) + ") |")
    lines.append("|---|" + "---:|" * (len(seeds) + 3))
    base = sum(errors(f"{st}-kd-jitter-s{s}") for s in seeds) / len(seeds)
    for label, v in variants:
        errs = [errors(f"{st}-{v}-s{s}") for s in seeds]
        mean = sum(errs) / len(errs)
        walls = [wall.get(f"{st}-{v}-s{s}", "?") for s in seeds]
        delta = "—" if v == "kd-jitter" else f"{mean - base:+.1f}"
        lines.append(f"| {label} | " + " | ".join(map(str, errs)) + f" | {mean:.1f} | {delta} | {' / '.join(walls)} |")
        table.append(dict(student=st, variant=v, errors=errs, mean=mean, wall_s=walls))
    lines.append("")
def du(p):
    return sum(os.path.getsize(f) for f in glob.glob(f"{p}/**/*", recursive=True) if os.path.isfile(f))
label_s = dict(l.split() for l in open(f"{out}/label.txt"))
storage = []
lines.append("### Storage per view (sealed datasets, Parquet shards + manifest)\n")
lines.append("| dataset | rows | inputs stored | bytes | bytes per row | label wall s |")
lines.append("|---|---:|---|---:|---:|---:|")
for root, inputs in [("labels-noinputs", "no"), ("labels", "yes")]:
    for name in ["single", "k1", "k4", "k8"]:
        p = f"{out}/{root}/{name}"
        if not os.path.isdir(p):
            continue
        m = json.load(open(f"{p}/_manifest.json"))
        b = du(p)
        w = label_s.get(f"{root}/{name}", "?")
        storage.append(dict(dataset=name, inputs=inputs, rows=m["rows"], bytes=b, label_s=w))
        lines.append(f"| {name} | {m['rows']:,} | {inputs} | {b:,} | {b / m['rows']:.0f} | {w} |")
open(f"{out}/views.md", "w").write("\n".join(lines) + "\n")
json.dump(table, open(f"{out}/rows.json", "w"), indent=1)
json.dump(storage, open(f"{out}/storage.json", "w"), indent=1)
print("\n".join(lines))
