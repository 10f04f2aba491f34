//! Models from JS: `NativeModel` resolves `"provider/model"` (with the options a JS user may
//! pass: base URL, key, headers, protocol, retries, timeout) and starts calls whose results and
//! stream parts are pulled through a [`NativeStream`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use miyabi::model::{
    Catalog, FinishReason, HttpOptions, LanguageModel, Message, ModelBuilder, ModelRequest,
    ModelResponse, Protocol, ResponseFormat, Sampling, StreamEvent, ToolCall, ToolChoice, ToolSpec,
    Usage,
};
use miyabi::{AgentInput, ModelError};
use napi_derive::napi;
use serde_json::{Map, Value, json};

use crate::stream::{Item, NativeError, NativeStream, Sink};

/// How to reach a model: what `"provider/model"` would take from the environment, given
/// explicitly.
#[napi(object)]
#[derive(Default)]
pub struct NativeModelOptions {
    /// Base URL of the API (else `<PROVIDER>_BASE_URL`, else the catalogue's).
    pub base_url: Option<String>,
    /// API key (else the provider's variable, e.g. `OPENAI_API_KEY`).
    pub api_key: Option<String>,
    /// Extra headers sent with every request.
    pub headers: Option<HashMap<String, String>>,
    /// Protocol family, e.g. `openai-chat` (else the catalogue's).
    pub protocol: Option<String>,
    /// Retries after the first attempt (default 2).
    pub max_retries: Option<u32>,
    /// Timeout of a whole call, in milliseconds (default 15 minutes): finite and more than 0;
    /// anything else makes every call fail with a `CONFIG` error naming it (never a panic).
    pub timeout_ms: Option<f64>,
}

/// A resolved model (or the reason it cannot be used, reported by every call).
#[napi]
pub struct NativeModel {
    model: Result<Arc<dyn LanguageModel>, String>,
    id: String,
}

impl NativeModel {
    pub(crate) fn get(&self) -> Result<Arc<dyn LanguageModel>, Box<NativeError>> {
        self.model.clone().map_err(|m| {
            Box::new(NativeError::new(
                "CONFIG",
                format!("model `{}`: {m}", self.id),
            ))
        })
    }
}

/// A call timeout from JS milliseconds: finite, more than 0, and within what a `Duration`
/// holds (`Duration::from_secs_f64` panics beyond it).
fn timeout_of(ms: f64) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`timeoutMs` must be a number of milliseconds more than 0 (omit it for the default of 15 minutes), got {ms}"
        )
    };
    if !ms.is_finite() || ms <= 0.0 {
        return Err(bad());
    }
    Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| bad())
}

/// Builds a model from a spec and options; `Err` holds the configuration error's text.
///
/// A provider the catalogue does not know, given with both `baseURL` and `protocol`, is a
/// custom endpoint (`ModelBuilder::custom`): a local server, a proxy, another vendor.
fn build(spec: &str, o: NativeModelOptions) -> Result<Arc<dyn LanguageModel>, String> {
    let m = builder(spec, o)?.build().map_err(config_words)?;
    Ok(Arc::new(m))
}

/// Builds an embedding model the same way.
pub(crate) fn build_embedding(
    spec: &str,
    o: NativeModelOptions,
) -> Result<Arc<dyn miyabi::EmbeddingModel>, String> {
    let m = builder(spec, o)?.build_embedding().map_err(config_words)?;
    Ok(Arc::new(m))
}

fn config_words(e: ModelError) -> String {
    match e {
        ModelError::Config(c) => crate::js_words(c.to_string()),
        other => crate::js_words(other.to_string()),
    }
}

/// The model builder for a spec and options.
fn builder(spec: &str, o: NativeModelOptions) -> Result<ModelBuilder, String> {
    let protocol = match &o.protocol {
        None => None,
        Some(p) => Some(Protocol::parse(p).ok_or_else(|| {
            let known: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
            format!("unknown protocol `{p}` (known: {})", known.join(", "))
        })?),
    };
    let custom = match (spec.split_once('/'), protocol, &o.base_url) {
        (Some((provider, model)), Some(protocol), Some(url))
            if !provider.is_empty()
                && !model.is_empty()
                && Catalog::embedded().provider(provider).is_none() =>
        {
            Some(ModelBuilder::custom(provider, model, protocol, url))
        }
        _ => None,
    };
    let mut b = match custom {
        Some(b) => b,
        None => {
            let mut b = ModelBuilder::new(spec);
            if let Some(p) = protocol {
                b = b.protocol(p);
            }
            if let Some(u) = o.base_url {
                b = b.base_url(u);
            }
            b
        }
    };
    if let Some(k) = o.api_key {
        b = b.api_key(k);
    }
    for (k, v) in o.headers.unwrap_or_default() {
        b = b.header(k, v);
    }
    if o.max_retries.is_some() || o.timeout_ms.is_some() {
        let mut h = HttpOptions::default();
        if let Some(n) = o.max_retries {
            h.max_retries = n;
        }
        if let Some(ms) = o.timeout_ms {
            h.total_timeout = timeout_of(ms)?;
        }
        b = b.http_options(h);
    }
    Ok(b)
}

#[napi]
impl NativeModel {
    /// Resolves `"provider/model"`. A model that cannot be used (unknown provider, no key)
    /// is still returned; its calls fail with a `CONFIG` error saying what to set.
    #[napi(factory)]
    pub fn create(spec: String, options: Option<NativeModelOptions>) -> Self {
        let model = build(&spec, options.unwrap_or_default());
        Self { model, id: spec }
    }

    /// `"provider/model"` as given.
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.id.clone()
    }

    /// One complete answer: the stream holds one `response` part.
    #[napi]
    pub fn generate(&self, request: NativeModelRequest) -> NativeStream {
        let model = self.get();
        let req = request_of(request);
        NativeStream::spawn(|tx| async move {
            let r = async {
                let model = model?;
                let req = req?;
                model
                    .generate(&req)
                    .await
                    .map_err(|e| Box::new(NativeError::from_model(&e)))
            }
            .await;
            let _ = tx
                .send(match r {
                    Ok(resp) => Item::Part(response_part(&resp)),
                    Err(e) => Item::Fail(*e),
                })
                .await;
        })
    }

    /// A streamed answer: text deltas (strings), `reasoning-delta`, `tool-input-start`,
    /// `tool-input-delta`, `tool-call` and finally `finish` parts.
    #[napi]
    pub fn stream(&self, request: NativeModelRequest) -> NativeStream {
        let model = self.get();
        let req = request_of(request);
        NativeStream::spawn(|tx| async move {
            let r = async {
                let model = model?;
                let req = req?;
                let s = model
                    .stream(&req)
                    .await
                    .map_err(|e| Box::new(NativeError::from_model(&e)))?;
                pump(s, &tx).await
            }
            .await;
            if let Err(e) = r {
                let _ = tx.send(Item::Fail(*e)).await;
            }
        })
    }
}

/// Forwards a model's events as parts; `Err` when the stream failed (or JS went away).
async fn pump(mut s: miyabi::model::EventStream, tx: &Sink) -> Result<(), Box<NativeError>> {
    let mut usage = Usage::default();
    let mut ids: Vec<String> = Vec::new();
    let mut finished = false;
    while let Some(ev) = s.next().await {
        let ev = ev.map_err(|e| Box::new(NativeError::from_model(&e)))?;
        let part = match ev {
            StreamEvent::TextDelta { text } => Value::String(text),
            StreamEvent::ReasoningDelta { text } => {
                json!({"type": "reasoning-delta", "text": text})
            }
            StreamEvent::Start { id, model } => {
                json!({"type": "start", "id": id, "modelId": model})
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                if ids.len() <= index {
                    ids.resize(index + 1, String::new());
                }
                ids[index].clone_from(&id);
                json!({"type": "tool-input-start", "id": id, "toolName": name})
            }
            StreamEvent::ToolCallDelta { index, delta } => {
                let id = ids.get(index).cloned().unwrap_or_default();
                json!({"type": "tool-input-delta", "id": id, "delta": delta})
            }
            StreamEvent::ToolCallEnd { call, .. } => tool_call(&call),
            StreamEvent::Usage { usage: u } => {
                usage = u;
                continue;
            }
            StreamEvent::Finish { reason, raw } => {
                finished = true;
                json!({
                    "type": "finish",
                    "finishReason": finish_reason(reason),
                    "rawFinishReason": raw,
                    "usage": usage_value(&usage),
                })
            }
            _ => continue,
        };
        if tx.send(Item::Part(part)).await.is_err() {
            return Ok(());
        }
    }
    if !finished {
        return Err(Box::new(NativeError::new(
            "PROVIDER",
            "the model's stream ended without a finish event",
        )));
    }
    Ok(())
}

/// A model request from JS.
#[napi(object)]
pub struct NativeModelRequest {
    /// A prompt string, or messages (`{role, content}`; content a string or parts), or
    /// `{prompt?, messages?}`.
    #[napi(ts_type = "unknown")]
    pub input: Value,
    /// A system message, put first.
    pub system: Option<String>,
    /// Tools the model may call: `{name, description?, parameters}` (a JSON Schema).
    pub tools: Option<Vec<NativeToolSpec>>,
    /// `auto`, `none`, `required` or a tool name.
    pub tool_choice: Option<String>,
    /// Structured output: the answer must be JSON following this JSON Schema.
    #[napi(ts_type = "Record<string, unknown>")]
    pub response_schema: Option<Value>,
    /// Maximum output tokens.
    pub max_tokens: Option<u32>,
    /// Temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling.
    pub top_k: Option<u32>,
    /// Stop sequences.
    pub stop_sequences: Option<Vec<String>>,
    /// Seed.
    pub seed: Option<i64>,
    /// Presence penalty.
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f64>,
    /// Provider-specific fields merged into the request body.
    #[napi(ts_type = "Record<string, unknown>")]
    pub provider_options: Option<Value>,
}

/// A tool as the model sees it.
#[napi(object)]
pub struct NativeToolSpec {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// JSON Schema of its arguments (an object schema).
    #[napi(ts_type = "Record<string, unknown>")]
    pub parameters: Value,
}

/// Messages from a JS input (see [`AgentInput::from_json`]).
pub(crate) fn messages_of(input: Value) -> Result<Vec<Message>, Box<NativeError>> {
    let input = AgentInput::from_json("model", input)
        .map_err(|e| Box::new(NativeError::new("INVALID_ARGUMENT", e)))?;
    Ok(input.messages)
}

/// Sampling settings from JS.
pub(crate) fn sampling(
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u32>,
    stop: Option<Vec<String>>,
    seed: Option<i64>,
) -> Sampling {
    Sampling {
        max_tokens,
        temperature,
        top_p,
        top_k,
        stop: stop.unwrap_or_default(),
        seed: seed.and_then(|s| u64::try_from(s).ok()),
        ..Sampling::default()
    }
}

fn request_of(r: NativeModelRequest) -> Result<ModelRequest, Box<NativeError>> {
    let mut messages = messages_of(r.input)?;
    if let Some(s) = r.system {
        messages.insert(0, Message::system(s));
    }
    let mut s = sampling(
        r.max_tokens,
        r.temperature,
        r.top_p,
        r.top_k,
        r.stop_sequences,
        r.seed,
    );
    s.presence_penalty = r.presence_penalty;
    s.frequency_penalty = r.frequency_penalty;
    Ok(ModelRequest {
        messages,
        tools: r
            .tools
            .unwrap_or_default()
            .into_iter()
            .map(|t| ToolSpec {
                name: t.name,
                description: t.description,
                parameters: t.parameters,
            })
            .collect(),
        tool_choice: tool_choice(r.tool_choice.as_deref()),
        response_format: r.response_schema.map(|schema| ResponseFormat {
            name: "output".into(),
            schema,
            strict: false,
        }),
        sampling: s,
        provider_options: r.provider_options,
        ..ModelRequest::default()
    })
}

pub(crate) fn tool_choice(c: Option<&str>) -> ToolChoice {
    match c {
        None | Some("auto") => ToolChoice::Auto,
        Some("none") => ToolChoice::None,
        Some("required") => ToolChoice::Required,
        Some(name) => ToolChoice::Tool(name.to_owned()),
    }
}

pub(crate) fn finish_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool-calls",
        FinishReason::ContentFilter => "content-filter",
        FinishReason::Error => "error",
        FinishReason::Other => "other",
    }
}

pub(crate) fn usage_value(u: &Usage) -> Value {
    json!({
        "inputTokens": u.input_tokens,
        "outputTokens": u.output_tokens,
        "totalTokens": u.input_tokens + u.output_tokens,
        "reasoningTokens": u.reasoning_tokens,
        "cachedInputTokens": u.cached_input_tokens,
    })
}

pub(crate) fn tool_call(c: &ToolCall) -> Value {
    json!({"type": "tool-call", "toolCallId": c.id, "toolName": c.name, "input": c.arguments})
}

fn response_part(r: &ModelResponse) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), "response".into());
    m.insert("text".into(), r.text().into());
    m.insert("reasoning".into(), r.reasoning().into());
    m.insert(
        "toolCalls".into(),
        Value::Array(r.tool_calls().into_iter().map(tool_call).collect()),
    );
    m.insert("finishReason".into(), finish_reason(r.finish_reason).into());
    m.insert("rawFinishReason".into(), json!(r.raw_finish_reason));
    m.insert("usage".into(), usage_value(&r.usage));
    m.insert("costUsd".into(), json!(r.cost_usd));
    m.insert("responseId".into(), json!(r.response_id));
    m.insert("requestId".into(), json!(r.request_id));
    m.insert("modelId".into(), json!(r.model));
    Value::Object(m)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn hostile_timeouts_are_configuration_errors_not_panics() {
        for ms in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            0.0,
            1e300,
            f64::MAX,
        ] {
            let o = NativeModelOptions {
                api_key: Some("k".into()),
                timeout_ms: Some(ms),
                ..NativeModelOptions::default()
            };
            let Err(e) = build("openai/gpt-4o", o) else {
                panic!("{ms} was accepted");
            };
            assert!(e.contains("`timeoutMs`"), "{e}");
        }
        let o = NativeModelOptions {
            api_key: Some("k".into()),
            timeout_ms: Some(1500.0),
            ..NativeModelOptions::default()
        };
        assert!(build("openai/gpt-4o", o).is_ok());
    }

    #[test]
    fn an_unknown_provider_with_base_url_and_protocol_is_a_custom_endpoint() {
        let o = NativeModelOptions {
            base_url: Some("http://127.0.0.1:9/v1".into()),
            protocol: Some("openai-chat".into()),
            ..NativeModelOptions::default()
        };
        assert!(build("my-llm/llama-3", o).is_ok());
        let Err(e) = build("my-llm/llama-3", NativeModelOptions::default()) else {
            panic!("an unknown provider alone was accepted");
        };
        assert!(e.contains("model(spec, { baseURL, protocol })"), "{e}");
        assert!(!e.contains("ModelBuilder"), "{e}");
    }
}
