//! Execution providers: `/v1/model` reports where ONNX Runtime placed every node (measured by
//! profiling a warm-up run, compared with onnxruntime's own profile of the same model in
//! Python), and rows computed on one provider do not join a dataset computed on another
//! unless the server is started with `--allow-mixed-providers`.

use std::collections::BTreeSet;

use distill_tests::python::read_shards_with_pyarrow;
use distill_tests::{ids, python_json, test_model, Rng, Server};
use serde_json::{json, Value};

/// `(node, op, provider)` of every node ONNX Runtime's Python API profiles in one run.
fn python_placement(model: &std::path::Path) -> BTreeSet<(String, String, String)> {
    let code = r#"
import json, os, sys, tempfile
import numpy as np, onnxruntime as ort
so = ort.SessionOptions()
so.enable_profiling = True
so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "p")
s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
feed = {}
for i in s.get_inputs():
    shape = [d if isinstance(d, int) else 1 for d in i.shape]
    feed[i.name] = np.zeros(shape, dtype=np.float32)
s.run(None, feed)
events = json.load(open(s.end_profiling()))
nodes = sorted({(e["name"][: -len("_kernel_time")], e["args"]["op_name"], e["args"]["provider"])
                for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")})
print(json.dumps(nodes))
"#;
    let v = python_json(code, &[model]).expect("onnxruntime profile");
    v.as_array()
        .expect("list")
        .iter()
        .map(|n| {
            let s = |i: usize| n[i].as_str().expect("string").to_string();
            (s(0), s(1), s(2))
        })
        .collect()
}

#[test]
fn model_reports_the_node_placement_onnx_runtime_measured() {
    let model = test_model("mlp.onnx");
    // `auto` on a machine without CUDA: every node on the CPU, recorded as `cpu`.
    let server = Server::start(&model, &["--ep", "auto"]);
    let info = server.get("/v1/model").expect_status(200).json();
    assert_eq!(info["provider"], "cpu", "{info}");
    let p = &info["placement"];
    assert_eq!(p["measured"], true, "{info}");
    let got: BTreeSet<(String, String, String)> = p["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().expect("string").to_string();
            (s("node"), s("op"), s("provider"))
        })
        .collect();
    assert!(!got.is_empty(), "{info}");
    assert_eq!(
        got,
        python_placement(&model),
        "placement differs from onnxruntime's own profile"
    );
    assert_eq!(
        p["providers"],
        json!({"CPUExecutionProvider": got.len()}),
        "{info}"
    );
}

fn store(
    server: &Server,
    dataset: &str,
    prefix: &str,
    n: usize,
    seed: u64,
) -> distill_tests::Reply {
    server.score(&json!({
        "dataset": dataset,
        "ids": ids(prefix, 0..n),
        "inputs": {"x": Rng::new(seed).matrix(n, 16)},
    }))
}

fn rows(server: &Server, dataset: &str) -> u64 {
    let m = server
        .get(&format!("/v1/datasets/{dataset}"))
        .expect_status(200)
        .json();
    m["rows"].as_u64().unwrap_or(0) + m["pending_rows"].as_u64().unwrap_or(0)
}

#[test]
fn rows_of_another_provider_are_refused_unless_mixing_is_allowed() {
    let model = test_model("mlp.onnx");
    let mut server = Server::start(&model, &["--ep", "cpu"]);
    store(&server, "gpu-set", "g", 4, 1).expect_status(200);
    store(&server, "cpu-set", "c", 4, 2).expect_status(200);
    server.seal("cpu-set");
    // Every shard records the provider its rows were computed on.
    let table = read_shards_with_pyarrow(&server.dataset_dir("cpu-set")).expect("pyarrow");
    let meta: Value = serde_json::from_str(
        table["metadata"]["distill.manifest"]
            .as_str()
            .expect("shard metadata"),
    )
    .expect("JSON");
    assert_eq!(meta["teacher"]["provider"], "cpu", "{meta}");
    server.kill9();

    // `gpu-set` as a GPU server would have left it: its manifest says the rows came from CUDA.
    let path = server.dataset_dir("gpu-set").join("_manifest.json");
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("JSON");
    m["teacher"]["provider"] = json!("cuda");
    std::fs::write(&path, serde_json::to_vec_pretty(&m).expect("JSON")).expect("write manifest");

    server.restart();
    let refused = store(&server, "gpu-set", "g", 8, 1).expect_status(409);
    let e = refused.error().error;
    assert_eq!(
        (e.code.as_str(), e.field.as_deref()),
        ("provider_mismatch", Some("dataset")),
        "{refused:?}"
    );
    for word in ["cuda", "cpu", "--allow-mixed-providers"] {
        assert!(
            e.message.contains(word),
            "message lacks {word}: {}",
            e.message
        );
    }
    assert_eq!(rows(&server, "gpu-set"), 4, "a refused request stored rows");
    // Other datasets, and new ones, take rows as before.
    store(&server, "cpu-set", "c2", 3, 4).expect_status(200);
    store(&server, "new-set", "n", 3, 5).expect_status(200);

    server
        .restart_with(&model, &["--ep", "cpu", "--allow-mixed-providers"])
        .expect("restart with --allow-mixed-providers");
    let r = store(&server, "gpu-set", "g", 8, 1)
        .expect_status(200)
        .json();
    assert_eq!(
        (r["stored"].as_u64(), r["duplicates"].as_u64()),
        (Some(4), Some(4)),
        "{r}"
    );
    assert_eq!(rows(&server, "gpu-set"), 8);
}
