//! Protocol adapters: pure translators from a [`ModelRequest`] to a [`WireRequest`] and from
//! response bytes back to a [`ModelResponse`] or [`StreamEvent`](super::StreamEvent)s. They do no I/O.

use base64::Engine;
use serde_json::{Value, json};

use super::catalog::Protocol;
use super::decode::StreamDecoder;
use super::error::ModelError;
use super::http::{ParsedError, WireRequest};
use super::types::{MediaSource, ModelRequest, ModelResponse};

pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod gemini;
pub mod ollama;
pub mod openai_chat;
pub mod openai_responses;

/// What an adapter needs to know about the call besides the request.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Provider id (some dialect choices depend on it).
    pub provider: String,
    /// Model id as the provider knows it.
    pub model: String,
    /// Base URL without a trailing `/`.
    pub base_url: String,
    /// The model's output limit from the catalogue (a default `max_tokens` where one is required).
    pub max_output_tokens: Option<u64>,
}

/// One protocol family's translator.
pub trait Adapter: Send + Sync {
    /// The request to send.
    fn build(
        &self,
        target: &Target,
        req: &ModelRequest,
        stream: bool,
    ) -> Result<WireRequest, ModelError>;
    /// A complete (non-streamed) response body.
    fn parse_response(&self, target: &Target, body: &[u8]) -> Result<ModelResponse, ModelError>;
    /// A decoder for a streamed body.
    fn decoder(&self, target: &Target, raw_events: bool) -> Box<dyn StreamDecoder>;
    /// The provider's description of an error body.
    fn parse_error(&self) -> fn(&[u8]) -> ParsedError;
    /// Whether the family has native JSON Schema output (otherwise a forced tool is used).
    fn native_structured_output(&self) -> bool {
        true
    }
}

/// The adapter of a protocol family.
pub fn adapter(protocol: Protocol) -> &'static dyn Adapter {
    match protocol {
        Protocol::OpenAiChat => &openai_chat::OpenAiChat,
        Protocol::Anthropic => &anthropic::Anthropic { vertex: false },
        Protocol::VertexAnthropic => &anthropic::Anthropic { vertex: true },
        Protocol::OpenAiResponses => &openai_responses::OpenAiResponses,
        Protocol::Gemini => &gemini::Gemini { vertex: false },
        Protocol::VertexGemini => &gemini::Gemini { vertex: true },
        Protocol::Cohere => &cohere::Cohere,
        Protocol::Bedrock => &bedrock::Bedrock,
        Protocol::Ollama => &ollama::Ollama,
    }
}

/// A streamed-body decoder for a protocol family (for recorded traffic, tests and benchmarks).
pub fn decoder(protocol: Protocol, provider: &str) -> Box<dyn StreamDecoder> {
    let target = Target {
        provider: provider.to_owned(),
        ..Target::default()
    };
    adapter(protocol).decoder(&target, false)
}

/// Percent-encodes a URL path segment or query value (unreserved characters kept).
pub(crate) fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Merges provider options into the body (provider options win).
pub(crate) fn merge_options(body: &mut Value, options: &Option<Value>) {
    if let (Value::Object(b), Some(Value::Object(o))) = (body, options) {
        for (k, v) in o {
            b.insert(k.clone(), v.clone());
        }
    }
}

/// A tool result as text: strings as they are, other values as JSON.
pub(crate) fn result_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Base64 of bytes.
pub(crate) fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A URL for a media source (`data:` URL for inline bytes).
pub(crate) fn media_url(source: &MediaSource, media_type: Option<&str>) -> String {
    match source {
        MediaSource::Url { url } => url.clone(),
        MediaSource::Bytes { data } => {
            format!(
                "data:{};base64,{}",
                media_type.unwrap_or("application/octet-stream"),
                b64(data)
            )
        }
    }
}

/// Serializes a JSON body.
pub(crate) fn to_body(value: &Value) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// Parses a JSON body, mapping failure to a decode error.
pub(crate) fn parse_json<'a, T: serde::Deserialize<'a>>(
    target: &Target,
    body: &'a [u8],
) -> Result<T, ModelError> {
    serde_json::from_slice(body).map_err(|e| {
        let preview: String = String::from_utf8_lossy(body).chars().take(200).collect();
        ModelError::decode(
            &target.provider,
            &target.model,
            format!("bad response JSON: {e}; body starts {preview:?}"),
        )
    })
}

/// An error that arrived inside a 200 stream, classified like an HTTP error.
pub(crate) fn stream_error(
    message: String,
    code: Option<String>,
    status: Option<u16>,
) -> ModelError {
    super::error::classify(
        super::error::ErrorContext {
            message,
            code,
            status,
            ..Default::default()
        },
        None,
    )
}

/// The usual `{"error": {"message", "type", "code"}}` / `{"message"}` / `{"error": "..."}` bodies.
pub(crate) fn parse_common_error(body: &[u8]) -> ParsedError {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return ParsedError::default();
    };
    let err = v.get("error").unwrap_or(&v);
    let s = |x: Option<&Value>| -> Option<String> {
        match x? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let message = match err {
        Value::String(s) => Some(s.clone()),
        _ => s(err.get("message"))
            .or_else(|| s(v.get("message")))
            .or_else(|| s(v.get("detail"))),
    };
    let text = |x: Option<&Value>| x.and_then(Value::as_str).map(str::to_owned);
    // A textual code beats a numeric one (Gemini: `"code": 429, "status": "RESOURCE_EXHAUSTED"`).
    let code = text(err.get("code"))
        .or_else(|| text(err.get("type")))
        .or_else(|| text(err.get("status")))
        .or_else(|| s(err.get("code")))
        .or_else(|| text(v.get("type")));
    let mut retry_after = None;
    if let Some(details) = err.get("details").and_then(Value::as_array) {
        for d in details {
            if let Some(delay) = d.get("retryDelay").and_then(Value::as_str) {
                retry_after = super::http::parse_retry_delay(delay);
            }
        }
    }
    ParsedError {
        message,
        code,
        request_id: s(v.get("request_id")),
        retry_after,
    }
}

/// `{"type": "object"}` fallback for a tool without parameters.
pub(crate) fn params_or_empty(v: &Value) -> Value {
    if v.is_null() {
        json!({"type": "object", "properties": {}})
    } else {
        v.clone()
    }
}
