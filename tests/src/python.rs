//! Independent reference computations through the venv python (numpy, onnxruntime, pyarrow).

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

use crate::paths::{python_bin, repo_root};

/// Runs `python -c CODE ARGS...` and returns its stdout; the error carries stderr.
pub fn run_python<S: AsRef<OsStr>>(code: &str, args: &[S]) -> anyhow::Result<String> {
    let out = Command::new(python_bin())
        .arg("-c")
        .arg(code)
        .args(args)
        .current_dir(repo_root())
        .output()
        .context("cannot run the venv python")?;
    if !out.status.success() {
        bail!(
            "python failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).context("python printed non-UTF-8")
}

/// Runs `python -c CODE` with `input` as JSON on stdin (no argv size limit) and parses its
/// stdout as JSON.
pub fn python_json_stdin(
    code: &str,
    input: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    use std::io::Write;
    let mut child = Command::new(python_bin())
        .arg("-c")
        .arg(code)
        .current_dir(repo_root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("cannot run the venv python")?;
    let body = serde_json::to_vec(input)?;
    let mut stdin = child.stdin.take().context("no stdin pipe")?;
    // Write on a thread: python may fill its stdout pipe before reading all of stdin.
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let out = child.wait_with_output().context("python did not finish")?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("stdin writer panicked"))?
        .context("cannot write python's stdin")?;
    if !out.status.success() {
        bail!(
            "python failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "python printed non-JSON: {:.400}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs `python -c CODE ARGS...` and parses its stdout as JSON.
pub fn python_json<S: AsRef<OsStr>>(code: &str, args: &[S]) -> anyhow::Result<serde_json::Value> {
    let out = run_python(code, args)?;
    serde_json::from_str(&out).with_context(|| format!("python printed non-JSON: {out:.400}"))
}

/// Outputs of `model` on `inputs` (`{"name": nested array}`) computed by onnxruntime Python
/// through `scripts/reference_outputs.py`: `{"output name": nested array}`.
pub fn reference_outputs(
    model: &Path,
    inputs: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    reference_outputs_tapped(model, inputs, &[])
}

/// Like [`reference_outputs`], with inner tensors added as outputs first (`--tap NAME[:dtype]`
/// of `scripts/reference_outputs.py`, done with the Python onnx API, independently of the
/// server's Rust tap code).
pub fn reference_outputs_tapped(
    model: &Path,
    inputs: &serde_json::Value,
    taps: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("inputs.json");
    std::fs::write(&path, serde_json::to_vec(inputs)?)?;
    let script = repo_root().join("scripts/reference_outputs.py");
    let mut cmd = Command::new(python_bin());
    cmd.arg(&script)
        .arg(model)
        .arg(&path)
        .current_dir(repo_root());
    for t in taps {
        cmd.arg("--tap").arg(t);
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reference_outputs.py printed non-JSON")?;
    match v.get_mut("outputs") {
        Some(outputs) if outputs.is_object() => Ok(outputs.take()),
        _ => bail!("reference_outputs.py printed no `outputs` object"),
    }
}

/// Python source of `read_parquet(paths) -> dict`: reads shards with pyarrow (an independent
/// reader) and returns `{"rows", "columns", "types", "metadata", "data": {column: values}}`,
/// floats as plain JSON numbers.
pub const PYARROW_READER: &str = r#"
import json, sys, glob, os
import pyarrow as pa, pyarrow.parquet as pq
import numpy as np

def plain(v):
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v

def read_parquet(paths):
    tables = [pq.read_table(p) for p in paths]
    meta = {}
    if paths:
        # File-level key-value metadata (Parquet footer), without Arrow's own schema blob.
        md = pq.read_metadata(paths[0]).metadata or {}
        meta = {k.decode(): v.decode(errors="replace") for k, v in md.items() if k != b"ARROW:schema"}
    t = pa.concat_tables(tables) if tables else None
    return {
        "files": [os.path.basename(p) for p in paths],
        "rows": t.num_rows if t is not None else 0,
        "columns": t.column_names if t is not None else [],
        "types": [str(f.type) for f in t.schema] if t is not None else [],
        "metadata": meta,
        "data": {c: plain(t.column(c).to_pylist()) for c in t.column_names} if t is not None else {},
    }
"#;

/// Reads every `shard-*.parquet` of a dataset folder with pyarrow (see [`PYARROW_READER`]).
pub fn read_shards_with_pyarrow(dataset_dir: &Path) -> anyhow::Result<serde_json::Value> {
    let code = format!(
        "{PYARROW_READER}\npaths = sorted(glob.glob(os.path.join(sys.argv[1], 'shard-*.parquet')))\nprint(json.dumps(read_parquet(paths)))\n"
    );
    python_json(&code, &[dataset_dir])
}

/// Python source that turns `{"name": nested list}` into numpy arrays of the model's input
/// dtypes (`to_numpy(model, inputs) -> dict`) and numpy results back into plain JSON
/// (`to_json(dict) -> dict`).
const NUMPY_IO: &str = r#"
import json, sys
import numpy as np, onnx
from onnx import helper

def to_numpy(model, inputs):
    types = {i.name: helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in model.graph.input}
    return {k: np.array(v, dtype=types[k]) for k, v in inputs.items()}

def to_json(d):
    out = {}
    for k, v in d.items():
        v = np.asarray(v)
        if v.dtype == np.bool_:
            out[k] = v.tolist()
        elif np.issubdtype(v.dtype, np.integer):
            out[k] = v.astype(np.int64).tolist()
        else:
            out[k] = v.astype(np.float64).tolist()
    return out
"#;

/// Every named tensor of a generated test model computed with numpy alone, through the
/// `reference(name, model, inputs)` function of `scripts/make_test_models.py`.
pub fn numpy_reference(
    model_name: &str,
    model: &Path,
    inputs: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("inputs.json");
    std::fs::write(&path, serde_json::to_vec(inputs)?)?;
    let code = format!(
        "{NUMPY_IO}\nsys.path.insert(0, 'scripts')\nimport make_test_models as mtm\n\
         name, model_path, inputs_path = sys.argv[1:4]\nmodel = onnx.load(model_path)\n\
         x = to_numpy(model, json.load(open(inputs_path)))\n\
         print(json.dumps(to_json(mtm.reference(name, model, x))))\n"
    );
    python_json(
        &code,
        &[OsStr::new(model_name), model.as_os_str(), path.as_os_str()],
    )
}
