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
