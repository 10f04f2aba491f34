//! Anthropic Messages (also MiniMax, Kimi-for-coding and other Anthropic-compatible endpoints,
//! and Claude on Vertex AI with `vertex: true`).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{
    Adapter, Target, merge_options, params_or_empty, parse_common_error, parse_json, result_text,
    stream_error, to_body,
};
use crate::decode::{
    STRUCTURED_OUTPUT_TOOL, StreamDecoder, ToolCallAccumulator, map_finish, parse_arguments,
};
use crate::error::ModelError;
use crate::framing::SseDecoder;
use crate::http::{ParsedError, WireRequest};
use crate::types::{
    ContentPart, FinishReason, MediaSource, ModelRequest, ModelResponse, Role, StreamEvent,
    ToolCall, ToolChoice, Usage,
};

/// The Anthropic Messages adapter.
#[derive(Debug, Clone, Copy)]
pub struct Anthropic {
    /// Claude on Vertex AI: `:rawPredict` URLs, no `model` in the body, `anthropic_version` in it.
    pub vertex: bool,
}

/// The `anthropic-version` header value.
pub const API_VERSION: &str = "2023-06-01";

fn media_block(kind: &str, source: &MediaSource, media_type: Option<&str>) -> Value {
    let src = match source {
        MediaSource::Url { url } => json!({"type": "url", "url": url}),
        MediaSource::Bytes { data } => json!({
            "type": "base64",
            "media_type": media_type.unwrap_or(if kind == "image" { "image/png" } else { "application/pdf" }),
            "data": super::b64(data)
        }),
    };
    json!({"type": kind, "source": src})
}

fn messages(req: &ModelRequest) -> (Option<String>, Vec<Value>) {
    let mut system = String::new();
    let mut out: Vec<Value> = Vec::new();
    for m in &req.messages {
        if m.role == Role::System {
            if !system.is_empty() {
                system.push('\n');
            }
            system.push_str(&m.text());
            continue;
        }
        let role = if m.role == Role::Assistant {
            "assistant"
        } else {
            "user"
        };
        let mut blocks = Vec::new();
        for p in &m.content {
            match p {
                ContentPart::Text { text } if !text.is_empty() => blocks.push(json!({"type": "text", "text": text})),
                ContentPart::Text { .. } => {}
                ContentPart::Image { source, media_type } => blocks.push(media_block("image", source, media_type.as_deref())),
                ContentPart::File { source, media_type, .. } => blocks.push(media_block("document", source, Some(media_type))),
                ContentPart::Reasoning { text, signature } => {
                    if let Some(sig) = signature {
                        blocks.push(json!({"type": "thinking", "thinking": text, "signature": sig}));
                    }
                }
                ContentPart::ToolCall(c) => {
                    let input = if c.arguments.is_object() { c.arguments.clone() } else { json!({}) };
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
                }
                ContentPart::ToolResult(r) => blocks.push(json!({
                    "type": "tool_result", "tool_use_id": r.call_id, "content": result_text(&r.content), "is_error": r.is_error
                })),
            }
        }
        if blocks.is_empty() {
            continue;
        }
        // Consecutive turns of the same role are merged (tool results follow a user turn...).
        if let Some(last) = out.last_mut()
            && last["role"] == role
            && let Some(arr) = last["content"].as_array_mut()
        {
            arr.extend(blocks);
            continue;
        }
        out.push(json!({"role": role, "content": blocks}));
    }
    ((!system.is_empty()).then_some(system), out)
}

impl Adapter for Anthropic {
    fn build(
        &self,
        t: &Target,
        req: &ModelRequest,
        stream: bool,
    ) -> Result<WireRequest, ModelError> {
        let (system, msgs) = messages(req);
        let max_tokens = req
            .sampling
            .max_tokens
            .map(u64::from)
            .or(t.max_output_tokens)
            .unwrap_or(4096);
        let mut body = json!({"model": t.model, "max_tokens": max_tokens});
        if let Some(s) = system {
            body["system"] = json!(s);
        }
        body["messages"] = Value::Array(msgs);
        let mut tools: Vec<Value> = req
            .tools
            .iter()
            .map(|tool| {
                let mut v =
                    json!({"name": tool.name, "input_schema": params_or_empty(&tool.parameters)});
                if let Some(d) = &tool.description {
                    v["description"] = json!(d);
                }
                v
            })
            .collect();
        let mut choice = if tools.is_empty() {
            None
        } else {
            Some(match &req.tool_choice {
                ToolChoice::Auto => json!({"type": "auto"}),
                ToolChoice::None => json!({"type": "none"}),
                ToolChoice::Required => json!({"type": "any"}),
                ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
            })
        };
        if let Some(rf) = &req.response_format {
            // No native JSON Schema output on every Anthropic-compatible endpoint: force a tool.
            tools.push(json!({"name": STRUCTURED_OUTPUT_TOOL, "description": format!("Respond with the {} object.", rf.name), "input_schema": rf.schema}));
            choice = Some(json!({"type": "tool", "name": STRUCTURED_OUTPUT_TOOL}));
        }
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools);
        }
        if let Some(c) = choice {
            body["tool_choice"] = c;
        }
        let s = &req.sampling;
        if let Some(x) = s.temperature {
            body["temperature"] = json!(x);
        }
        if let Some(x) = s.top_p {
            body["top_p"] = json!(x);
        }
        if let Some(x) = s.top_k {
            body["top_k"] = json!(x);
        }
        if !s.stop.is_empty() {
            body["stop_sequences"] = json!(s.stop);
        }
        if let Some(budget) = req.reasoning.as_ref().and_then(|r| r.budget_tokens) {
            body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        }
        if stream {
            body["stream"] = json!(true);
        }
        merge_options(&mut body, &req.provider_options);
        let url = if self.vertex {
            if let Value::Object(map) = &mut body {
                map.remove("model");
                map.insert("anthropic_version".to_owned(), json!("vertex-2023-10-16"));
            }
            let verb = if stream {
                "streamRawPredict"
            } else {
                "rawPredict"
            };
            format!(
                "{}/publishers/anthropic/models/{}:{verb}",
                t.base_url, t.model
            )
        } else {
            format!("{}/messages", t.base_url)
        };
        let mut headers = vec![
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
        ];
        if !self.vertex {
            headers.push(("anthropic-version".to_owned(), API_VERSION.to_owned()));
        }
        Ok(WireRequest {
            url,
            headers,
            body: to_body(&body),
        })
    }

    fn parse_response(&self, t: &Target, body: &[u8]) -> Result<ModelResponse, ModelError> {
        let v: Value = parse_json(t, body)?;
        if v.get("type").and_then(Value::as_str) == Some("error") {
            let p = parse_common_error(body);
            return Err(stream_error(p.message.unwrap_or_default(), p.code, None));
        }
        let mut content = Vec::new();
        for block in v
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => content.push(ContentPart::Text {
                    text: block["text"].as_str().unwrap_or("").to_owned(),
                }),
                Some("thinking") => content.push(ContentPart::Reasoning {
                    text: block["thinking"].as_str().unwrap_or("").to_owned(),
                    signature: block
                        .get("signature")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }),
                Some("redacted_thinking") => content.push(ContentPart::Reasoning {
                    text: String::new(),
                    signature: block.get("data").and_then(Value::as_str).map(str::to_owned),
                }),
                Some("tool_use") => content.push(ContentPart::ToolCall(ToolCall {
                    id: block["id"].as_str().unwrap_or("").to_owned(),
                    name: block["name"].as_str().unwrap_or("").to_owned(),
                    arguments: match block.get("input") {
                        Some(Value::Null) | None => json!({}),
                        Some(Value::String(s)) => parse_arguments(s),
                        Some(x) => x.clone(),
                    },
                })),
                _ => {}
            }
        }
        let raw = v
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let usage = v
            .get("usage")
            .and_then(|u| serde_json::from_value::<AnthUsage>(u.clone()).ok())
            .unwrap_or_default();
        Ok(ModelResponse {
            content,
            finish_reason: raw
                .as_deref()
                .map(map_finish)
                .unwrap_or(FinishReason::Other),
            raw_finish_reason: raw,
            usage: usage.normalize(),
            cost_usd: None,
            response_id: v.get("id").and_then(Value::as_str).map(str::to_owned),
            request_id: None,
            model: v.get("model").and_then(Value::as_str).map(str::to_owned),
        })
    }

    fn decoder(&self, _t: &Target, raw_events: bool) -> Box<dyn StreamDecoder> {
        Box::new(AnthropicDecoder {
            raw_events,
            ..AnthropicDecoder::default()
        })
    }

    fn parse_error(&self) -> fn(&[u8]) -> ParsedError {
        parse_common_error
    }

    fn native_structured_output(&self) -> bool {
        false
    }
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct AnthUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl AnthUsage {
    fn merge(&mut self, later: AnthUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
    }

    /// Anthropic's `input_tokens` excludes cache reads and writes; ours includes them.
    fn normalize(&self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let write = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(read)
                .saturating_add(write),
            output_tokens: self.output_tokens.unwrap_or(0),
            cached_input_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: 0,
        }
    }
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<EventDelta<'a>>,
    #[serde(borrow, default)]
    content_block: Option<Block<'a>>,
    #[serde(borrow, default)]
    message: Option<MessageStart<'a>>,
    #[serde(default)]
    usage: Option<AnthUsage>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EventDelta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageStart<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<AnthUsage>,
}

/// The Anthropic Messages stream decoder.
#[derive(Default)]
pub struct AnthropicDecoder {
    sse: SseDecoder,
    state: AnthState,
    raw_events: bool,
}

#[derive(Default)]
struct AnthState {
    calls: ToolCallAccumulator,
    usage: AnthUsage,
    stop_reason: Option<String>,
    finished: bool,
}

impl AnthState {
    fn on_event(
        &mut self,
        name: Option<&str>,
        data: &str,
        raw: bool,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ModelError> {
        let ev: Event<'_> = serde_json::from_str(data)
            .map_err(|e| ModelError::decode("", "", format!("bad stream event JSON: {e}")))?;
        if raw {
            out.push(StreamEvent::Raw {
                event: name.map(str::to_owned),
                data: serde_json::from_str(data).unwrap_or(Value::Null),
            });
        }
        let key = |i: Option<u64>| format!("b{}", i.unwrap_or(0));
        match ev.kind.as_ref() {
            "message_start" => {
                if let Some(m) = ev.message {
                    if let Some(u) = m.usage {
                        self.usage.merge(u);
                    }
                    out.push(StreamEvent::Start {
                        id: m.id.map(Cow::into_owned),
                        model: m.model.map(Cow::into_owned),
                    });
                }
            }
            "content_block_start" => {
                if let Some(b) = ev.content_block {
                    match b.kind.as_ref() {
                        "tool_use" | "server_tool_use" => {
                            self.calls.start(
                                &key(ev.index),
                                b.id.as_deref(),
                                b.name.as_deref(),
                                out,
                            );
                        }
                        "text" => {
                            if let Some(t) = b.text.filter(|t| !t.is_empty()) {
                                out.push(StreamEvent::TextDelta {
                                    text: t.into_owned(),
                                });
                            }
                        }
                        "redacted_thinking" => {
                            if let Some(d) = b.data {
                                out.push(StreamEvent::ReasoningSignature {
                                    signature: d.into_owned(),
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
            "content_block_delta" => {
                if let Some(d) = ev.delta {
                    match d.kind.as_deref() {
                        Some("text_delta") => {
                            if let Some(t) = d.text {
                                out.push(StreamEvent::TextDelta {
                                    text: t.into_owned(),
                                });
                            }
                        }
                        Some("input_json_delta") => {
                            if let Some(p) = d.partial_json {
                                self.calls.delta(&key(ev.index), &p, out);
                            }
                        }
                        Some("thinking_delta") => {
                            if let Some(t) = d.thinking {
                                out.push(StreamEvent::ReasoningDelta {
                                    text: t.into_owned(),
                                });
                            }
                        }
                        Some("signature_delta") => {
                            if let Some(s) = d.signature {
                                out.push(StreamEvent::ReasoningSignature {
                                    signature: s.into_owned(),
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
            "content_block_stop" => self.calls.end(&key(ev.index), out),
            "message_delta" => {
                if let Some(reason) = ev.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason.into_owned());
                }
                if let Some(u) = ev.usage {
                    self.usage.merge(u);
                }
            }
            "message_stop" => self.finish(out)?,
            "error" => {
                let body = format!(
                    "{{\"error\":{}}}",
                    ev.error.map(RawValue::get).unwrap_or("null")
                );
                let p = parse_common_error(body.as_bytes());
                return Err(stream_error(
                    p.message.unwrap_or_else(|| "stream error".to_owned()),
                    p.code,
                    None,
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        if self.finished {
            return Ok(());
        }
        let Some(raw) = self.stop_reason.take() else {
            return Err(self.calls.ended_early("a stop reason"));
        };
        self.finished = true;
        self.calls.end_all(out);
        out.push(StreamEvent::Usage {
            usage: self.usage.normalize(),
        });
        out.push(StreamEvent::Finish {
            reason: map_finish(&raw),
            raw: Some(raw),
        });
        Ok(())
    }
}

impl StreamDecoder for AnthropicDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let state = &mut self.state;
        let raw = self.raw_events;
        self.sse.feed(chunk, &mut |name, data| {
            state.on_event(name, data, raw, out)
        })
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let state = &mut self.state;
        let raw = self.raw_events;
        self.sse
            .finish(&mut |name, data| state.on_event(name, data, raw, out))?;
        state.finish(out)
    }
}
