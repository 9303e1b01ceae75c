//! The frame of the OpenAPI 3.1 document: title, security scheme, tags and the schemas the
//! handlers refer to. The operations come from each handler's `#[utoipa::path]` and are
//! added, together with the routes themselves, in `routes::api` — one list for both.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// Name of the bearer-token security scheme the authenticated operations refer to.
pub const BEARER: &str = "bearer";

/// An Arrow IPC stream (schema message, record batches, end marker) as the request body.
pub struct ArrowStream;

impl PartialSchema for ArrowStream {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some(
                "Arrow IPC stream: an `id` column, one column per model input, any other \
                 column passed through",
            ))
            .into()
    }
}

impl ToSchema for ArrowStream {}

/// The document's frame; the paths are filled in by `routes::api`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "distill teacher-server",
        description = "Serves a frozen ONNX teacher over HTTP (JSON or Arrow IPC) and stores its \
                       outputs in a Parquet label store. Every error answer is an `ErrorBody`."
    ),
    modifiers(&BearerScheme),
    components(schemas(
        distill_proto::api::ErrorBody,
        distill_proto::api::ErrorDetail
    )),
    tags(
        (name = "score", description = "Scoring batches and storing the teacher's outputs"),
        (name = "datasets", description = "The label store's datasets"),
        (name = "embeddings", description = "OpenAI-compatible sentence embeddings from a text teacher"),
        (name = "ops", description = "Model facts, liveness, metrics and this document")
    )
)]
pub struct ApiDoc;

/// Declares the bearer token (`--api-token`) as a security scheme.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// What a dataset name may be (`distill_proto::store::validate_dataset_name`), as a pattern.
pub const DATASET_NAME_PATTERN: &str = r"^(?!\.\.?$)[A-Za-z0-9._-]{1,128}$";

/// The document as this server serves it: dataset names carry their pattern, `return` lists
/// the served outputs, and on a server
/// without a tokenizer the score request's `inputs` are described by the model's own
/// signature (input names, element types, fixed axes, at most `max_rows` rows) with an example
/// this model accepts, so a client (or a fuzzer) generating from the document reaches the
/// teacher instead of the shape check.
pub fn specialise(
    doc: &mut serde_json::Value,
    inputs: Option<&[distill_proto::api::TensorSpec]>,
    outputs: &[String],
    max_rows: usize,
) {
    use serde_json::{json, Value};
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut() {
                let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                    continue;
                };
                for p in params
                    .iter_mut()
                    .filter(|p| p["name"] == "name" && p["in"] == "path")
                {
                    p["schema"]["pattern"] = json!(DATASET_NAME_PATTERN);
                }
            }
        }
    }
    let Some(request) = doc.pointer_mut("/components/schemas/ScoreRequest") else {
        return;
    };
    request["properties"]["dataset"]["pattern"] = json!(DATASET_NAME_PATTERN);
    // Outputs to echo: only served ones; `columns: null` reads as no columns.
    request["properties"]["return"]["items"] = json!({ "enum": outputs });
    request["properties"]["columns"]["type"] = json!(["object", "null"]);
    let Some(inputs) = inputs else { return };
    let mut properties = serde_json::Map::new();
    let mut example = serde_json::Map::new();
    for spec in inputs {
        properties.insert(spec.name.clone(), input_schema(spec, max_rows));
        example.insert(spec.name.clone(), example_value(spec, 2));
    }
    let names: Vec<&str> = inputs.iter().map(|s| s.name.as_str()).collect();
    request["properties"]["inputs"] = json!({
        "type": "object",
        "description": "One nested array `[batch, ...]` per model input, by input name (this server's model).",
        "properties": properties,
        "required": names,
        "additionalProperties": false,
    });
    request["example"] = json!({
        "dataset": "example",
        "ids": ["example-0", "example-1"],
        "inputs": example,
    });
}

/// A nested-array schema of one input: fixed axes exact, dynamic ones at least 1 long.
fn input_schema(spec: &distill_proto::api::TensorSpec, max_rows: usize) -> serde_json::Value {
    use distill_proto::api::Dim;
    use distill_proto::DType;
    let leaf = match spec.dtype {
        DType::F32 | DType::F16 | DType::F64 => "number",
        DType::I64 | DType::I32 => "integer",
        DType::Bool => "boolean",
    };
    let mut schema = serde_json::json!({ "type": leaf });
    // Finite values of the element type only: a larger JSON number would round to infinity.
    let bound = match spec.dtype {
        DType::F32 => Some(f64::from(f32::MAX)),
        DType::F16 => Some(f64::from(half::f16::MAX)),
        _ => None,
    };
    if let Some(b) = bound {
        schema["minimum"] = (-b).into();
        schema["maximum"] = b.into();
    }
    for (axis, dim) in spec.shape.iter().enumerate().rev() {
        let mut a = serde_json::json!({ "type": "array", "items": schema });
        match dim {
            Dim::Fixed(n) => {
                a["minItems"] = (*n).into();
                a["maxItems"] = (*n).into();
            }
            Dim::Dynamic(_) => {
                a["minItems"] = 1.into();
                if axis == 0 {
                    a["maxItems"] = max_rows.into();
                }
            }
        }
        schema = a;
    }
    schema
}

/// Zeros of one input's shape with `rows` rows and every other dynamic axis 1.
fn example_value(spec: &distill_proto::api::TensorSpec, rows: usize) -> serde_json::Value {
    use distill_proto::api::Dim;
    use distill_proto::DType;
    let zero = match spec.dtype {
        DType::Bool => serde_json::json!(false),
        DType::I64 | DType::I32 => serde_json::json!(0),
        _ => serde_json::json!(0.0),
    };
    spec.shape
        .iter()
        .enumerate()
        .rev()
        .fold(zero, |inner, (axis, dim)| {
            let n = match dim {
                Dim::Fixed(n) => *n,
                Dim::Dynamic(_) if axis == 0 => rows,
                Dim::Dynamic(_) => 1,
            };
            serde_json::Value::Array(vec![inner; n])
        })
}
