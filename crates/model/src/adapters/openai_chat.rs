//! OpenAI Chat Completions and every compatible API (Groq, DeepSeek, Mistral, xAI, OpenRouter,
//! Together, vLLM, LM Studio, ...). The decoder tolerates the dialects seen in recorded traffic:
//! `reasoning_content` / `reasoning` deltas, Mistral's content-part arrays, tool-call fragments
//! without `index`, empty `id`/`name` re-sends, usage in any chunk, Azure's empty first chunk.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{
    Adapter, Target, media_url, merge_options, params_or_empty, parse_common_error, parse_json,
    result_text, stream_error, to_body,
};
use crate::decode::{StreamDecoder, ToolCallAccumulator, map_finish, parse_arguments};
use crate::error::ModelError;
use crate::framing::SseDecoder;
use crate::http::{ParsedError, WireRequest};
use crate::types::{
    ContentPart, FinishReason, Message, ModelRequest, ModelResponse, Role, StreamEvent, ToolCall,
    ToolChoice, Usage,
};

/// The OpenAI Chat Completions adapter.
#[derive(Debug, Clone, Copy)]
pub struct OpenAiChat;

fn uses_max_completion_tokens(provider: &str) -> bool {
    provider == "openai" || provider.starts_with("azure")
}

fn sends_stream_options(provider: &str) -> bool {
    !matches!(provider, "mistral" | "perplexity")
}

/// Converts messages to Chat Completions messages.
pub(crate) fn messages(msgs: &[Message]) -> Vec<Value> {
    let mut out = Vec::with_capacity(msgs.len());
    for m in msgs {
        match m.role {
            Role::System => out.push(json!({"role": "system", "content": m.text()})),
            Role::User | Role::Tool => {
                let mut parts = Vec::new();
                let mut simple = true;
                for p in &m.content {
                    match p {
                        ContentPart::Text { text } => parts.push(json!({"type": "text", "text": text})),
                        ContentPart::Image { source, media_type } => {
                            simple = false;
                            parts.push(json!({"type": "image_url", "image_url": {"url": media_url(source, media_type.as_deref())}}));
                        }
                        ContentPart::File { source, media_type, filename } => {
                            simple = false;
                            let mut file = json!({"file_data": media_url(source, Some(media_type))});
                            if let Some(name) = filename {
                                file["filename"] = json!(name);
                            }
                            parts.push(json!({"type": "file", "file": file}));
                        }
                        ContentPart::ToolResult(r) => out.push(json!({
                            "role": "tool", "tool_call_id": r.call_id, "content": result_text(&r.content)
                        })),
                        ContentPart::ToolCall(_) | ContentPart::Reasoning { .. } => {}
                    }
                }
                if parts.is_empty() {
                    continue;
                }
                if simple {
                    out.push(json!({"role": "user", "content": m.text()}));
                } else {
                    out.push(json!({"role": "user", "content": parts}));
                }
            }
            Role::Assistant => {
                let text = m.text();
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|p| match p {
                        ContentPart::ToolCall(c) => Some(json!({
                            "id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": arguments_string(&c.arguments)}
                        })),
                        _ => None,
                    })
                    .collect();
                let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                out.push(msg);
            }
        }
    }
    out
}

/// Arguments as the JSON-encoded string OpenAI expects (free-form text stays as it is).
pub(crate) fn arguments_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Adapter for OpenAiChat {
    fn build(
        &self,
        t: &Target,
        req: &ModelRequest,
        stream: bool,
    ) -> Result<WireRequest, ModelError> {
        let mut body = json!({"model": t.model, "messages": messages(&req.messages)});
        if !req.tools.is_empty() {
            body["tools"] = Value::Array(
                req.tools
                    .iter()
                    .map(|tool| {
                        let mut f = json!({"name": tool.name, "parameters": params_or_empty(&tool.parameters)});
                        if let Some(d) = &tool.description {
                            f["description"] = json!(d);
                        }
                        json!({"type": "function", "function": f})
                    })
                    .collect(),
            );
            body["tool_choice"] = match &req.tool_choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
            };
        }
        if let Some(rf) = &req.response_format {
            body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": rf.name, "schema": rf.schema, "strict": rf.strict}});
        }
        let s = &req.sampling;
        if let Some(n) = s.max_tokens {
            let key = if uses_max_completion_tokens(&t.provider) {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            body[key] = json!(n);
        }
        if let Some(x) = s.temperature {
            body["temperature"] = json!(x);
        }
        if let Some(x) = s.top_p {
            body["top_p"] = json!(x);
        }
        if !s.stop.is_empty() {
            body["stop"] = json!(s.stop);
        }
        if let Some(x) = s.seed {
            body["seed"] = json!(x);
        }
        if let Some(x) = s.presence_penalty {
            body["presence_penalty"] = json!(x);
        }
        if let Some(x) = s.frequency_penalty {
            body["frequency_penalty"] = json!(x);
        }
        if let Some(effort) = req.reasoning.as_ref().and_then(|r| r.effort.as_ref()) {
            body["reasoning_effort"] = json!(effort);
        }
        if stream {
            body["stream"] = json!(true);
            if sends_stream_options(&t.provider) {
                body["stream_options"] = json!({"include_usage": true});
            }
        }
        merge_options(&mut body, &req.provider_options);
        Ok(WireRequest {
            url: format!("{}/chat/completions", t.base_url),
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                (
                    "accept".to_owned(),
                    if stream {
                        "text/event-stream"
                    } else {
                        "application/json"
                    }
                    .to_owned(),
                ),
            ],
            body: to_body(&body),
        })
    }

    fn parse_response(&self, t: &Target, body: &[u8]) -> Result<ModelResponse, ModelError> {
        let v: Value = parse_json(t, body)?;
        if let Some(err) = v.get("error") {
            let p = parse_common_error(body);
            return Err(stream_error(
                p.message.unwrap_or_else(|| err.to_string()),
                p.code,
                None,
            ));
        }
        let choice = v
            .get("choices")
            .and_then(|c| c.get(0))
            .ok_or_else(|| ModelError::decode(&t.provider, &t.model, "response has no choices"))?;
        let msg = choice.get("message").cloned().unwrap_or(Value::Null);
        let mut content = Vec::new();
        for key in ["reasoning_content", "reasoning"] {
            if let Some(r) = msg
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                content.push(ContentPart::Reasoning {
                    text: r.to_owned(),
                    signature: None,
                });
                break;
            }
        }
        match msg.get("content") {
            Some(Value::String(s)) if !s.is_empty() => {
                content.push(ContentPart::Text { text: s.clone() })
            }
            Some(Value::Array(parts)) => {
                let (reasoning, text) = content_parts(parts);
                if !reasoning.is_empty() {
                    content.push(ContentPart::Reasoning {
                        text: reasoning,
                        signature: None,
                    });
                }
                if !text.is_empty() {
                    content.push(ContentPart::Text { text });
                }
            }
            _ => {}
        }
        if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
            for (i, c) in calls.iter().enumerate() {
                let f = c.get("function").cloned().unwrap_or(Value::Null);
                let args = match f.get("arguments") {
                    Some(Value::String(s)) => parse_arguments(s),
                    Some(Value::Null) | None => json!({}),
                    Some(other) => other.clone(),
                };
                content.push(ContentPart::ToolCall(ToolCall {
                    id: c
                        .get("id")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("call_{}", i + 1)),
                    name: f
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    arguments: args,
                }));
            }
        }
        let raw = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let usage = v
            .get("usage")
            .and_then(|u| serde_json::from_value::<OaiUsage>(u.clone()).ok())
            .map(|u| u.normalize())
            .unwrap_or_default();
        Ok(ModelResponse {
            content,
            finish_reason: raw
                .as_deref()
                .map(map_finish)
                .unwrap_or(FinishReason::Other),
            raw_finish_reason: raw,
            usage,
            cost_usd: None,
            response_id: v
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            request_id: None,
            model: v
                .get("model")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }

    fn decoder(&self, _t: &Target, raw_events: bool) -> Box<dyn StreamDecoder> {
        Box::new(ChatDecoder {
            raw_events,
            ..ChatDecoder::default()
        })
    }

    fn parse_error(&self) -> fn(&[u8]) -> ParsedError {
        parse_common_error
    }
}

/// Mistral-style content parts: `thinking` (with nested text parts) and `text`.
fn content_parts(parts: &[Value]) -> (String, String) {
    let mut reasoning = String::new();
    let mut text = String::new();
    for p in parts {
        match p.get("type").and_then(Value::as_str) {
            Some("thinking") => match p.get("thinking") {
                Some(Value::Array(inner)) => {
                    for i in inner {
                        if let Some(t) = i.get("text").and_then(Value::as_str) {
                            reasoning.push_str(t);
                        }
                    }
                }
                Some(Value::String(s)) => reasoning.push_str(s),
                _ => {}
            },
            Some("text") | None => {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    text.push_str(t);
                }
            }
            _ => {}
        }
    }
    (reasoning, text)
}

#[derive(Debug, Default, Deserialize)]
struct OaiUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl OaiUsage {
    fn normalize(&self) -> Usage {
        Usage {
            input_tokens: self.prompt_tokens.unwrap_or(0),
            output_tokens: self.completion_tokens.unwrap_or(0),
            cached_input_tokens: self
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<OaiUsage>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

/// `delta.content`: a string (borrowed when it has no escapes) or Mistral's array of parts,
/// decoded in one pass.
enum DeltaContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<Value>),
}

impl<'de: 'a, 'a> Deserialize<'de> for DeltaContent<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = DeltaContent<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(DeltaContent::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(DeltaContent::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(DeltaContent::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::new();
                while let Some(p) = seq.next_element::<Value>()? {
                    parts.push(p);
                }
                Ok(DeltaContent::Parts(parts))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<DeltaContent<'a>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// The Chat Completions stream decoder.
#[derive(Default)]
pub struct ChatDecoder {
    sse: SseDecoder,
    state: ChatState,
    raw_events: bool,
}

#[derive(Default)]
struct ChatState {
    started: bool,
    calls: ToolCallAccumulator,
    finish: Option<String>,
    usage: Option<Usage>,
    done: bool,
    ended: bool,
}

impl ChatState {
    fn on_data(
        &mut self,
        data: &str,
        raw: bool,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ModelError> {
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Chunk<'_> = serde_json::from_str(data)
            .map_err(|e| ModelError::decode("", "", format!("bad stream chunk JSON: {e}")))?;
        if raw {
            out.push(StreamEvent::Raw {
                event: None,
                data: serde_json::from_str(data).unwrap_or(Value::Null),
            });
        }
        if let Some(err) = chunk.error {
            let p = parse_common_error(format!("{{\"error\":{}}}", err.get()).as_bytes());
            let status = serde_json::from_str::<Value>(err.get())
                .ok()
                .and_then(|v| v.get("code").and_then(Value::as_u64))
                .and_then(|c| u16::try_from(c).ok());
            return Err(stream_error(
                p.message.unwrap_or_else(|| err.get().to_owned()),
                p.code,
                status,
            ));
        }
        if !self.started {
            let id = chunk.id.as_deref().filter(|s| !s.is_empty());
            let model = chunk.model.as_deref().filter(|s| !s.is_empty());
            if id.is_some() || model.is_some() {
                self.started = true;
                out.push(StreamEvent::Start {
                    id: id.map(str::to_owned),
                    model: model.map(str::to_owned),
                });
            }
        }
        for choice in chunk.choices {
            if let Some(delta) = choice.delta {
                let reasoning = delta.reasoning_content.or(delta.reasoning);
                if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
                    out.push(StreamEvent::ReasoningDelta {
                        text: r.into_owned(),
                    });
                }
                match delta.content {
                    Some(DeltaContent::Text(text)) if !text.is_empty() => {
                        out.push(StreamEvent::TextDelta {
                            text: text.into_owned(),
                        });
                    }
                    Some(DeltaContent::Parts(parts)) => {
                        let (reasoning, text) = content_parts(&parts);
                        if !reasoning.is_empty() {
                            out.push(StreamEvent::ReasoningDelta { text: reasoning });
                        }
                        if !text.is_empty() {
                            out.push(StreamEvent::TextDelta { text });
                        }
                    }
                    _ => {}
                }
                if let Some(tcs) = delta.tool_calls {
                    for tc in tcs {
                        let id = tc.id.as_deref().filter(|s| !s.is_empty());
                        let key = match (tc.index, id) {
                            (Some(i), _) => format!("i{i}"),
                            (None, Some(id)) => format!("id{id}"),
                            (None, None) => self
                                .calls
                                .last_key()
                                .map(str::to_owned)
                                .unwrap_or_else(|| "i0".to_owned()),
                        };
                        let (name, args) = match &tc.function {
                            Some(f) => (f.name.as_deref(), f.arguments),
                            None => (None, None),
                        };
                        if self.calls.position(&key).is_none()
                            || id.is_some()
                            || name.is_some_and(|n| !n.is_empty())
                        {
                            self.calls.start(&key, id, name, out);
                        }
                        if let Some(a) = args {
                            let raw = a.get();
                            if raw.starts_with('"') {
                                let s: Cow<'_, str> = serde_json::from_str(raw).map_err(|e| {
                                    ModelError::decode("", "", format!("bad arguments: {e}"))
                                })?;
                                self.calls.delta(&key, &s, out);
                            } else if raw != "null" {
                                // Some compatibles send the arguments as an object.
                                self.calls.delta(&key, raw, out);
                            }
                        }
                    }
                }
            }
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                self.calls.end_all(out);
                self.finish = Some(reason.into_owned());
            }
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u.normalize());
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        // Calls are complete only when the provider says so (a finish reason); a stream cut
        // before that leaves them unfinished and is an error.
        let Some(raw) = self.finish.take() else {
            return Err(self.calls.ended_early("a finish reason"));
        };
        self.calls.end_all(out);
        if let Some(u) = self.usage.take() {
            out.push(StreamEvent::Usage { usage: u });
        }
        let mut reason = map_finish(&raw);
        if reason == FinishReason::Stop && self.calls.any() {
            reason = FinishReason::ToolCalls;
        }
        out.push(StreamEvent::Finish {
            reason,
            raw: Some(raw),
        });
        Ok(())
    }
}

impl StreamDecoder for ChatDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let state = &mut self.state;
        let raw = self.raw_events;
        self.sse.feed(chunk, &mut |_event, data| {
            if state.done {
                Ok(())
            } else {
                state.on_data(data, raw, out)
            }
        })?;
        // Flush at [DONE] so consumers see the end without waiting for the socket to close.
        if state.done && !state.ended {
            state.ended = true;
            state.end(out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let state = &mut self.state;
        let raw = self.raw_events;
        self.sse.finish(&mut |_event, data| {
            if state.done {
                Ok(())
            } else {
                state.on_data(data, raw, out)
            }
        })?;
        if state.ended {
            return Ok(());
        }
        state.ended = true;
        state.end(out)
    }
}
