//! Consistent teaching of augmented inputs (issue 12): `distill-label label --views K
//! --augment jitter=P` stores the teacher's outputs of K seeded views of each row, and the
//! trainer replays exactly those views (`[data.views]`) or asks the running teacher for each
//! augmented batch (`[data.served]`).
//!
//! The stored views are checked against an independent numpy computation: the view seeds (the
//! SplitMix64 / FNV-1a formula redone in Python), the shifted images and the teacher's logits
//! of them (`make_test_models.reference`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use distill_tests::{bin_path, ort_lib, run_python, test_model, Rng, Server};
use serde_json::Value;

const ROWS: usize = 40;

/// Writes `ROWS` rows (`id`, `x` as fixed_size_list<float>[16] = a 4x4 image, `label`).
fn write_images(path: &Path, seed: u64) {
    let x = Rng::new(seed).matrix(ROWS, 16);
    let json_path = path.with_extension("json");
    std::fs::write(&json_path, x.to_string()).expect("write inputs");
    let code = r#"
import json, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
x = np.array(json.loads(open(sys.argv[2]).read()), dtype=np.float32)
n = x.shape[0]
pq.write_table(pa.table({
    "id": pa.array([f"img-{i}" for i in range(n)]),
    "x": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 16),
    "label": pa.array(np.arange(n) % 10, type=pa.int64()),
}), sys.argv[1], row_group_size=13)
"#;
    run_python(code, &[path.as_os_str(), json_path.as_os_str()]).expect("pyarrow writes");
}

fn label_views(server: &Server, data: &Path, dataset: &str, views: u32, base: u64) -> Output {
    Command::new(bin_path("distill-label"))
        .args(["label", "--server", &server.url(""), "--dataset", dataset])
        .arg("--data")
        .arg(data)
        .args([
            "--columns",
            "label",
            "--batch-rows",
            "24",
            "--seal",
            "--quiet",
        ])
        .args(["--views", &views.to_string(), "--augment", "jitter=1"])
        .args(["--view-seed", &base.to_string()])
        .output()
        .expect("run distill-label")
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// numpy's view of a views dataset: seeds redone from the ids, images shifted by the offsets
/// the seeds give, the teacher's logits of those images.
const NUMPY_CHECK: &str = r#"
import glob, json, os, sys
import numpy as np, onnx, pyarrow as pa, pyarrow.parquet as pq
sys.path.insert(0, 'scripts')
import make_test_models as mtm
src_path, ds_dir, model_path, base, p = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
M = (1 << 64) - 1
def mix(seed, a, b):
    z = (seed + a * 0x9E3779B97F4A7C15 + b * 0xD1B54A32D192ED03) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)
def id_hash(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M
    return mix(h, 11, 0)
src = pq.read_table(src_path).to_pydict()
images = {i: np.array(r, np.float32).reshape(4, 4) for i, r in zip(src['id'], src['x'])}
labels = dict(zip(src['id'], src['label']))
paths = sorted(glob.glob(os.path.join(ds_dir, 'shard-*.parquet')))
t = pa.concat_tables([pq.read_table(f) for f in paths]).to_pydict()
n = 2 * p + 1
out = {'rows': len(t['id']), 'ids_ok': 0, 'seeds_ok': 0, 'inputs_ok': 0, 'labels_ok': 0}
shifted, stored_logits, shifts = [], [], set()
for k in range(len(t['id'])):
    of, v, s = t['view_of'][k], t['view'][k], t['view_seed'][k]
    out['ids_ok'] += t['id'][k] == f"{of}#v{v}" and t['augment'][k] == f"jitter={p}"
    out['seeds_ok'] += s == mix(mix(base, 16, id_hash(of)), v, 0)
    dy, dx = s % n - p, (s // n) % n - p
    shifts.add((dy, dx))
    img = np.zeros((4, 4), np.float32)
    for y in range(4):
        for x in range(4):
            if 0 <= y - dy < 4 and 0 <= x - dx < 4:
                img[y, x] = images[of][y - dy, x - dx]
    out['inputs_ok'] += bool(np.array_equal(np.array(t['x'][k], np.float32), img.reshape(-1)))
    out['labels_ok'] += t['label'][k] == labels[of]
    shifted.append(img.reshape(-1))
    stored_logits.append(t['logits'][k])
ref = mtm.reference('mlp', onnx.load(model_path), {'x': np.stack(shifted)})['logits']
out['logits_max_err'] = float(np.max(np.abs(np.array(stored_logits, np.float64) - ref)))
out['distinct_shifts'] = len(shifts)
print(json.dumps(out))
"#;

/// Writes a run config: `extra` is the `[data.views]` / `[data.served]` table.
fn config(dir: &Path, name: &str, train: &Path, extra: &str, epochs: usize) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"[data]
train = "{train}"
input = "x"
label = "label"

{extra}

[student]
arch = "mlp"
hidden = [32]

[[loss]]
kind = "kd"
teacher = "logits"
temperature = 2.0

[[loss]]
kind = "ce"
weight = 0.1

[train]
epochs = {epochs}
batch_size = 16
lr = 1e-2
seed = 3
optimizer = "adamw"
"#,
            train = train.display()
        ),
    )
    .expect("write config");
    path
}

fn train(config: &Path, out: &Path, more: &[&str]) -> Output {
    Command::new(bin_path("student-trainer"))
        .arg("train")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(more)
        .env("ORT_DYLIB_PATH", ort_lib())
        .output()
        .expect("run student-trainer")
}

/// Each epoch's training loss and terms, from `metrics.jsonl`.
fn train_losses(run: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .filter(|m| m.get("train_loss").is_some())
        .map(|m| serde_json::json!([m["train_loss"], m["train_terms"]]))
        .collect()
}

fn views_table(dataset: &Path, count: Option<u32>) -> String {
    let count = count.map(|c| format!("count = {c}\n")).unwrap_or_default();
    format!("[data.views]\npath = \"{}\"\n{count}", dataset.display())
}

#[test]
fn stored_views_hold_the_teachers_outputs_of_the_inputs_the_trainer_replays() {
    let model = test_model("mlp.onnx");
    let server = Server::start(&model, &["--ep", "cpu"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("images.parquet");
    write_images(&data, 31);
    let out = label_views(&server, &data, "views", 3, 5);
    assert_ok("distill-label --views 3", &out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("(3 views of 40 rows)"), "{said}");

    let ds = server.dataset_dir("views");
    let check: Value = serde_json::from_str(
        run_python(
            NUMPY_CHECK,
            &[
                data.as_os_str(),
                ds.as_os_str(),
                model.as_os_str(),
                "5".as_ref(),
                "1".as_ref(),
            ],
        )
        .expect("numpy check")
        .trim(),
    )
    .expect("JSON");
    let n = 3 * ROWS as u64;
    for key in ["rows", "ids_ok", "seeds_ok", "inputs_ok", "labels_ok"] {
        assert_eq!(check[key].as_u64(), Some(n), "{key}: {check}");
    }
    assert!(check["logits_max_err"].as_f64().unwrap() < 1e-5, "{check}");
    assert!(check["distinct_shifts"].as_u64().unwrap() >= 7, "{check}");

    // The trainer replays every view from the source rows and finds the stored inputs equal.
    let runs = dir.path();
    let cfg = config(runs, "views", &data, &views_table(&ds, None), 3);
    let out = train(&cfg, &runs.join("run-views"), &[]);
    assert_ok("training on the stored views", &out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("views: 3 per row (jitter=1)")
            && log.contains("120 stored view inputs equal their replay"),
        "{log}"
    );

    // Interrupted after one epoch and resumed: the same numbers as the straight run.
    let resumed = runs.join("run-resumed");
    assert_ok(
        "first epoch",
        &train(&cfg, &resumed, &["--quiet", "--stop-after", "1"]),
    );
    assert_ok("resume", &train(&cfg, &resumed, &["--quiet", "--resume"]));
    let straight = train_losses(&runs.join("run-views"));
    assert_eq!(straight.len(), 3, "one line per epoch: {straight:?}");
    assert_eq!(train_losses(&resumed), straight);

    // Views labelled from other images under the same ids are caught, naming the view.
    let other = dir.path().join("other.parquet");
    write_images(&other, 32);
    let cfg = config(runs, "wrong-source", &other, &views_table(&ds, None), 1);
    let out = train(&cfg, &runs.join("run-wrong"), &["--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("differs from replaying jitter=1")
            && err.contains("#v"),
        "{err}"
    );

    // More views than stored is refused; fewer are used as asked.
    let cfg = config(runs, "too-many", &data, &views_table(&ds, Some(4)), 1);
    let err = train(&cfg, &runs.join("run-4"), &["--quiet"]);
    let text = String::from_utf8_lossy(&err.stderr);
    assert!(text.contains("holds views 0..3 only"), "{text}");
    let cfg = config(runs, "two", &data, &views_table(&ds, Some(2)), 1);
    let out = train(&cfg, &runs.join("run-2"), &[]);
    assert_ok("two of three views", &out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("80 stored view inputs equal their replay")
    );

    // Random jitter on top of the views would break the consistency: refused up front.
    let jitter = std::fs::read_to_string(runs.join("views.toml"))
        .unwrap()
        .replace("seed = 3", "seed = 3\njitter = 1");
    let jcfg = runs.join("jitter.toml");
    std::fs::write(&jcfg, jitter).unwrap();
    let text = String::from_utf8_lossy(&train(&jcfg, &runs.join("run-j"), &["--quiet"]).stderr)
        .to_string();
    assert!(
        text.contains("train.jitter") && text.contains("brings its own augmentation"),
        "{text}"
    );
}

#[test]
fn a_served_teacher_run_sees_the_same_views_as_the_stored_ones() {
    let model = test_model("mlp.onnx");
    let server = Server::start(&model, &["--ep", "cpu"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("images.parquet");
    write_images(&data, 33);
    // Two stored views; a two-epoch run uses view 0 then view 1 of every row, exactly the
    // views a served run of two epochs augments its batches with.
    assert_ok("labelling", &label_views(&server, &data, "v2", 2, 7));
    let runs = dir.path();
    let stored = config(
        runs,
        "stored",
        &data,
        &views_table(&server.dataset_dir("v2"), None),
        2,
    );
    assert_ok(
        "stored views run",
        &train(&stored, &runs.join("stored"), &["--quiet"]),
    );
    let served_table = format!(
        "[data.served]\nserver = \"{}\"\naugment = \"jitter=1\"\nview_seed = 7\n",
        server.url("")
    );
    let served = config(runs, "served", &data, &served_table, 2);
    let out = train(&served, &runs.join("served"), &[]);
    assert_ok("served teacher run", &out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("served teacher"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (a, b) = (
        train_losses(&runs.join("stored")),
        train_losses(&runs.join("served")),
    );
    assert_eq!(a.len(), 2);
    // The server scored the views in other batches than at labelling time; ONNX Runtime may
    // round a row differently in another batch, so compare to float precision, not bits.
    for (x, y) in a.iter().zip(&b) {
        let (x, y) = (x[0].as_f64().unwrap(), y[0].as_f64().unwrap());
        assert!(
            (x - y).abs() <= 1e-5 * x.abs().max(1.0),
            "stored {a:?} vs served {b:?}"
        );
    }
    // Asked the same questions in the same order, the served run repeats itself.
    assert_ok(
        "served again",
        &train(&served, &runs.join("served-2"), &["--quiet"]),
    );
    assert_eq!(train_losses(&runs.join("served-2")), b);

    // An output the teacher does not serve is named at start-up.
    let bad = std::fs::read_to_string(&served)
        .unwrap()
        .replace("teacher = \"logits\"", "teacher = \"no_such_output\"");
    let bcfg = runs.join("bad.toml");
    std::fs::write(&bcfg, bad).unwrap();
    let text =
        String::from_utf8_lossy(&train(&bcfg, &runs.join("bad"), &["--quiet"]).stderr).to_string();
    assert!(
        text.contains("data.served") && text.contains("no_such_output"),
        "{text}"
    );
}
