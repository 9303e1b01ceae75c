//! `POST /v1/embeddings`: OpenAI's embeddings API over a text teacher, so existing clients
//! and vector-database tooling can call the teacher (or a distilled student served the same
//! way) unchanged. The texts go through the same tokenizer and batcher as `/v1/score`; nothing
//! is stored.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::Json;
use base64::Engine;
use distill_proto::api::{ErrorBody, OutputSpec, Pooling};
use distill_proto::openai::{
    Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EmbeddingVector, EncodingFormat,
};
use distill_proto::{Tensor, TensorData};

use crate::batcher::JobInputs;
use crate::error::ApiError;
use crate::outputs::OutputPlan;
use crate::routes::score::read_request_body;
use crate::state::SharedState;
use crate::teacher::TeacherError;

/// The output `/v1/embeddings` returns: the one stored as `embedding`, else the first float
/// output that is one vector per row (pooled, or 2-D as the model gives it).
pub fn embedding_output(plan: &OutputPlan) -> Option<&OutputSpec> {
    let vector = |s: &&OutputSpec| {
        s.dtype.is_float()
            && match s.pooling {
                Pooling::None => s.shape.len() == 2,
                _ => s.shape.len() == 3,
            }
    };
    plan.specs
        .iter()
        .filter(vector)
        .find(|s| s.name == "embedding")
        .or_else(|| plan.specs.iter().find(vector))
}

/// Rows of a `[rows, width]` float tensor as f32 vectors.
fn rows_f32(t: &Tensor) -> Vec<Vec<f32>> {
    let width = t.row_len().max(1);
    let flat: Vec<f32> = match t.data() {
        TensorData::F32(v) => v.clone(),
        TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        TensorData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
    };
    flat.chunks(width).map(<[f32]>::to_vec).collect()
}

/// One vector in the format asked for: numbers, or the little-endian f32 bytes in base64.
fn encode_vector(v: Vec<f32>, format: EncodingFormat) -> EmbeddingVector {
    match format {
        EncodingFormat::Float => EmbeddingVector::Float(v),
        EncodingFormat::Base64 => {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

/// Embeds one text or a list of texts with the text teacher.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "embeddings",
    security((), ("bearer" = [])),
    request_body(content = EmbeddingRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One vector per input text, in order", body = EmbeddingResponse),
        (status = "4XX", description = "Bad request (empty input, a text the tokenizer refuses, unsupported dimensions), no tokenizer, or queue full", body = ErrorBody),
        (status = "5XX", description = "Inference failed, or the server is shutting down", body = ErrorBody)
    )
)]
pub async fn embeddings(
    State(state): State<SharedState>,
    req: Request,
) -> Result<Json<EmbeddingResponse>, ApiError> {
    let front = state.text.clone().ok_or(ApiError::NoTokenizer)?;
    let spec = embedding_output(&state.plan).ok_or_else(|| {
        ApiError::invalid(
            "no_embedding_output",
            "input",
            "the teacher serves no one-vector-per-row float output (pool one with --pool NAME=mean)",
        )
    })?;
    let (parts, body) = req.into_parts();
    let bytes = read_request_body(&state, &parts.headers, body).await?;
    let request: EmbeddingRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid(
            "invalid_json",
            "body",
            format!("not an embeddings request: {e}"),
        )
    })?;
    let width = spec.shape.last().and_then(|d| match d {
        distill_proto::api::Dim::Fixed(n) => Some(*n),
        distill_proto::api::Dim::Dynamic(_) => None,
    });
    if let Some(d) = request.dimensions {
        if Some(d) != width {
            let served = width.map_or("a model-defined number of".to_string(), |w| w.to_string());
            return Err(ApiError::invalid(
                "unsupported_dimensions",
                "dimensions",
                format!("dimensions {d}: this model's embeddings have {served} dimensions, and only that width is served"),
            ));
        }
    }
    let texts = request.input.into_texts();
    if texts.is_empty() {
        return Err(ApiError::invalid(
            "empty_batch",
            "input",
            "input is an empty list; send a string or a list of strings",
        ));
    }
    if texts.len() > state.limits.max_request_rows {
        return Err(ApiError::TooManyRows {
            rows: texts.len(),
            limit: state.limits.max_request_rows,
        });
    }
    let enc_front = front.clone();
    let tokens = tokio::task::spawn_blocking(move || enc_front.encode(texts))
        .await
        .map_err(|source| ApiError::Task {
            what: "tokenize",
            source,
        })?
        .map_err(|e| match ApiError::from(e) {
            ApiError::Invalid(mut e) => {
                e.field = "input".into();
                ApiError::Invalid(e)
            }
            ApiError::SequenceTooLong { message, .. } => ApiError::SequenceTooLong {
                field: "input".into(),
                message,
            },
            other => other,
        })?;
    let symbol = match state
        .signature
        .input(&front.layout.ids)
        .and_then(|s| s.shape.get(1))
    {
        Some(distill_proto::api::Dim::Dynamic(s)) => Some(s.as_str()),
        _ => None,
    };
    crate::validate::check_token_grid(&tokens, symbol, &state.limits).map_err(|e| match e {
        ApiError::DimTooLarge { message, .. } => ApiError::DimTooLarge {
            field: "input".into(),
            message,
        },
        other => other,
    })?;
    let rows = tokens.len();
    let prompt_tokens = tokens.tokens();
    let rx = state
        .batcher
        .submit(JobInputs::Tokens(Arc::new(tokens)), rows)?;
    let outputs = rx.await.map_err(|_| ApiError::InferenceStopped)??;
    let vectors = outputs.get(&spec.name).map(rows_f32).ok_or_else(|| {
        ApiError::Teacher(TeacherError::Run(
            format!("the batcher returned no output {:?}", spec.name).into(),
        ))
    })?;
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| Embedding {
            object: "embedding".to_string(),
            embedding: encode_vector(v, request.encoding_format),
            index,
        })
        .collect();
    Ok(Json(EmbeddingResponse {
        object: "list".to_string(),
        data,
        model: request.model.unwrap_or_else(|| state.model_name.clone()),
        usage: EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32() {
        let EmbeddingVector::Base64(s) = encode_vector(vec![1.0, -2.5], EncodingFormat::Base64)
        else {
            panic!("base64 expected")
        };
        let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        let back: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(back, [1.0, -2.5]);
    }

    #[test]
    fn rows_come_out_as_vectors() {
        let t = Tensor::new(vec![2, 2], TensorData::F32(vec![1., 2., 3., 4.])).unwrap();
        assert_eq!(rows_f32(&t), vec![vec![1., 2.], vec![3., 4.]]);
    }
}
