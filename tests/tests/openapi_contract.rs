//! The HTTP contract as served: `/openapi.json` validates as OpenAPI 3.1 with a real
//! validator (PyPI `openapi-spec-validator`), and the router answers exactly the operations
//! the document lists: every documented method on every documented path is routed, every
//! other method there is refused with 405, and paths outside the document are 404.

use distill_tests::{run_python, test_model, Reply, Server};
use reqwest::Method;

/// Validates the document at argv[1] as OpenAPI 3.1 (not just "some version").
const VALIDATE: &str = r#"
import json, sys
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
with open(sys.argv[1]) as f:
    spec = json.load(f)
validate(spec, cls=OpenAPIV31SpecValidator)
print("valid OpenAPI", spec["openapi"])
"#;

/// The methods probed. HEAD and OPTIONS are left out: axum answers HEAD wherever GET is
/// routed, as HTTP asks, and that is not a separate operation.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn request(s: &Server, method: &str, path: &str) -> Reply {
    let method = Method::from_bytes(method.as_bytes()).expect("a method name");
    s.send(
        s.client()
            .request(method, s.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body("{}"),
    )
}

/// The router's own refusals: no route (404 `not_found`), or not with this method (405).
fn refusal(r: &Reply) -> Option<String> {
    if r.status != 404 && r.status != 405 {
        return None;
    }
    let code = r.error().error.code;
    matches!(code.as_str(), "not_found" | "method_not_allowed").then_some(code)
}

#[test]
fn openapi_document_validates_as_3_1() {
    let s = Server::start(&test_model("mlp.onnx"), &["--ep", "cpu"]);
    let doc = s.get("/openapi.json").expect_status(200).json();
    assert_eq!(doc["openapi"], "3.1.0", "{:.300}", doc.to_string());
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).expect("JSON")).expect("write");
    let out = run_python(VALIDATE, &[&file]).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(out.trim(), "valid OpenAPI 3.1.0");
    // The request and answer bodies are the API types' own schemas.
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    for name in [
        "ScoreRequest",
        "ScoreResponse",
        "ErrorBody",
        "ModelInfo",
        "DatasetSummary",
        "Manifest",
    ] {
        assert!(
            schemas.contains_key(name),
            "no schema {name}: {:?}",
            schemas.keys()
        );
    }
    let request = &schemas["ScoreRequest"];
    assert_eq!(request["additionalProperties"], false, "{request}");
    let mut fields: Vec<&str> = request["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    let mut declared = distill_proto::api::ScoreRequest::FIELDS.to_vec();
    declared.sort_unstable();
    assert_eq!(fields, declared);
    assert_eq!(request["required"], serde_json::json!(["inputs"]));
}

#[test]
fn the_router_answers_exactly_the_documented_operations() {
    let s = Server::start(&test_model("mlp.onnx"), &["--ep", "cpu"]);
    let doc = s.get("/openapi.json").expect_status(200).json();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 8, "too few paths: {:?}", paths.keys());
    for (path, item) in paths {
        let concrete = path.replace("{name}", "contract-probe");
        for method in METHODS {
            let documented = item.get(method.to_ascii_lowercase()).is_some();
            let r = request(&s, method, &concrete);
            match (documented, refusal(&r)) {
                (true, None) => {}
                (true, Some(code)) => {
                    panic!("{method} {path} is documented but the router says {code}: {r:?}")
                }
                (false, Some(code)) => assert_eq!(
                    code, "method_not_allowed",
                    "{method} {path} is not documented: {r:?}"
                ),
                (false, None) => {
                    panic!("{method} {path} is answered but not documented: {r:?}")
                }
            }
        }
    }
    // Paths beside the documented ones are not routed at all.
    for probe in [
        "/",
        "/v1",
        "/v1/",
        "/v1/score/x",
        "/v1/model/x",
        "/v1/datasets/",
        "/v1/datasets/x/y",
        "/v1/datasets/x/seal/z",
        "/health/",
        "/docs",
        "/openapi.yaml",
        "/api-docs/openapi.json",
        "/v2/score",
    ] {
        assert!(!paths.contains_key(probe), "{probe} is documented");
        for method in METHODS {
            let r = request(&s, method, probe);
            assert_eq!(
                refusal(&r).as_deref(),
                Some("not_found"),
                "{method} {probe}: {r:?}"
            );
        }
    }
}

#[test]
fn the_served_document_describes_this_model_and_its_example_is_accepted() {
    // Found by schemathesis (bench/fuzz_openapi.sh): the document's example and its free-form
    // `inputs` described requests this model refuses, and dataset names had no pattern.
    let s = Server::start(&test_model("mlp.onnx"), &["--ep", "cpu"]);
    let doc = s.get("/openapi.json").expect_status(200).json();
    let request = &doc["components"]["schemas"]["ScoreRequest"];
    let x = &request["properties"]["inputs"]["properties"]["x"];
    assert_eq!(
        (
            &x["minItems"],
            &x["items"]["minItems"],
            &x["items"]["maxItems"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(16),
            &serde_json::json!(16)
        ),
        "{x}"
    );
    assert_eq!(x["items"]["items"]["type"], "number");
    // f32 inputs: numbers beyond f32's range would round to infinity (refused as non-finite).
    let max = x["items"]["items"]["maximum"].as_f64().unwrap_or(0.0);
    assert!(
        (max / f64::from(f32::MAX) - 1.0).abs() < 1e-12,
        "maximum {max}"
    );
    assert_eq!(
        request["properties"]["return"]["items"]["enum"],
        serde_json::json!(["logits", "embedding"]),
        "{request}"
    );
    let r = s.score(&request["example"]).expect_status(200).json();
    assert_eq!(r["stored"], 2, "{r}");

    // The name pattern says exactly what the server accepts.
    let pattern = doc["paths"]["/v1/datasets/{name}"]["get"]["parameters"][0]["schema"]["pattern"]
        .as_str()
        .expect("a name pattern")
        .to_string();
    // `.` and `..` are refused too, but an HTTP client resolves them as path segments.
    let names = [
        "example",
        "a.b-c_D9",
        "...",
        "a/b",
        "é",
        &"n".repeat(128),
        &"n".repeat(129),
    ];
    let code = "import json, re, sys\nprint(json.dumps([re.fullmatch(sys.argv[1], n) is not None for n in json.loads(sys.argv[2])]))";
    let names_json = serde_json::to_string(&names).expect("JSON");
    let matches = distill_tests::python_json(code, &[&pattern, &names_json]).expect("python re");
    let dots =
        distill_tests::python_json(code, &[pattern.as_str(), r#"[".", ".."]"#]).expect("python re");
    assert_eq!(
        dots,
        serde_json::json!([false, false]),
        "the pattern lets . or .. through"
    );
    for (i, name) in names.iter().enumerate() {
        let url = format!("/v1/datasets/{}", urlencode(name));
        let status = s.get(&url).status;
        let accepted = status != 400;
        assert_eq!(
            matches[i].as_bool(),
            Some(accepted),
            "name {name:?}: pattern says {}, server answered {status}",
            matches[i]
        );
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
