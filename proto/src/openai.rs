//! `POST /v1/embeddings` in OpenAI's request and response shapes, so the OpenAI SDKs and
//! vector-database tooling can call a text teacher (or a distilled student) unchanged.

use serde::{Deserialize, Serialize};

/// `input` of an embeddings request: one string or a list of them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// Several texts, embedded in order.
    Many(Vec<String>),
}

impl EmbeddingInput {
    /// The texts, in order.
    pub fn into_texts(self) -> Vec<String> {
        match self {
            EmbeddingInput::One(s) => vec![s],
            EmbeddingInput::Many(v) => v,
        }
    }
}

/// How embeddings are written in the answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// A JSON array of numbers.
    #[default]
    Float,
    /// The little-endian f32 bytes, base64-encoded (what the OpenAI SDKs ask for).
    Base64,
}

/// `POST /v1/embeddings`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingRequest {
    /// The text or texts to embed.
    pub input: EmbeddingInput,
    /// Model name; accepted and echoed, the server serves one model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `float` (default) or `base64`.
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Width of the returned vectors; only the model's own width is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<usize>,
    /// End-user id; accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// One vector of the answer, as numbers or as base64.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// `encoding_format = "float"`.
    Float(Vec<f32>),
    /// `encoding_format = "base64"`.
    Base64(String),
}

/// One entry of `data`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    /// The vector.
    pub embedding: EmbeddingVector,
    /// Position of its text in `input`.
    pub index: usize,
}

/// Tokens the request cost.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// Tokens of all inputs, special tokens included.
    pub prompt_tokens: usize,
    /// The same (embeddings have no completion tokens).
    pub total_tokens: usize,
}

/// Answer to `POST /v1/embeddings`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// Always `list`.
    pub object: String,
    /// One vector per input text, in order.
    pub data: Vec<Embedding>,
    /// The served model's name.
    pub model: String,
    /// Token usage.
    pub usage: EmbeddingUsage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_take_a_string_or_a_list() {
        let one: EmbeddingRequest =
            serde_json::from_str(r#"{"input": "hi", "model": "m"}"#).unwrap();
        assert_eq!(one.input.into_texts(), ["hi"]);
        assert_eq!(one.encoding_format, EncodingFormat::Float);
        let many: EmbeddingRequest =
            serde_json::from_str(r#"{"input": ["a", "b"], "encoding_format": "base64"}"#).unwrap();
        assert_eq!(many.input.into_texts(), ["a", "b"]);
        assert_eq!(many.encoding_format, EncodingFormat::Base64);
        assert!(serde_json::from_str::<EmbeddingRequest>(r#"{"input": [1, 2]}"#).is_err());
        assert!(serde_json::from_str::<EmbeddingRequest>(r#"{"input": "a", "x": 1}"#).is_err());
    }
}
