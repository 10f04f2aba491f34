//! OpenAI Responses (`POST {base}/responses`): OpenAI, Azure OpenAI v1, xAI, LM Studio ("Open
//! Responses"), Bedrock Mantle.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::openai_chat::arguments_string;
use super::{
    Adapter, Target, media_url, merge_options, params_or_empty, parse_common_error, parse_json,
    result_text, stream_error, to_body,
};
use crate::decode::{StreamDecoder, ToolCallAccumulator, map_finish, parse_arguments};
use crate::error::ModelError;
use crate::framing::SseDecoder;
use crate::http::{ParsedError, WireRequest};
use crate::types::{
    ContentPart, FinishReason, ModelRequest, ModelResponse, Role, StreamEvent, ToolCall,
    ToolChoice, Usage,
};

/// The OpenAI Responses adapter.
#[derive(Debug, Clone, Copy)]
pub struct OpenAiResponses;

fn input_items(req: &ModelRequest) -> (Option<String>, Vec<Value>) {
    let mut instructions = String::new();
    let mut items = Vec::new();
    for m in &req.messages {
        match m.role {
            Role::System => {
                if !instructions.is_empty() {
                    instructions.push('\n');
                }
                instructions.push_str(&m.text());
            }
            Role::User | Role::Tool => {
                let mut parts = Vec::new();
                for p in &m.content {
                    match p {
                        ContentPart::Text { text } => parts.push(json!({"type": "input_text", "text": text})),
                        ContentPart::Image { source, media_type } => parts.push(
                            json!({"type": "input_image", "image_url": media_url(source, media_type.as_deref())}),
                        ),
                        ContentPart::File { source, media_type, filename } => {
                            let mut f = json!({"type": "input_file", "file_data": media_url(source, Some(media_type))});
                            if let Some(n) = filename {
                                f["filename"] = json!(n);
                            }
                            parts.push(f);
                        }
                        ContentPart::ToolResult(r) => items.push(json!({
                            "type": "function_call_output", "call_id": r.call_id, "output": result_text(&r.content)
                        })),
                        ContentPart::ToolCall(_) | ContentPart::Reasoning { .. } => {}
                    }
                }
                if !parts.is_empty() {
                    items.push(json!({"role": "user", "content": parts}));
                }
            }
            Role::Assistant => {
                for p in &m.content {
                    match p {
                        ContentPart::Text { text } if !text.is_empty() => items.push(json!({
                            "role": "assistant", "content": [{"type": "output_text", "text": text}]
                        })),
                        ContentPart::ToolCall(c) => items.push(json!({
                            "type": "function_call", "call_id": c.id, "name": c.name,
                            "arguments": arguments_string(&c.arguments)
                        })),
                        _ => {}
                    }
                }
            }
        }
    }
    ((!instructions.is_empty()).then_some(instructions), items)
}

impl Adapter for OpenAiResponses {
    fn build(
        &self,
        t: &Target,
        req: &ModelRequest,
        stream: bool,
    ) -> Result<WireRequest, ModelError> {
        let (instructions, input) = input_items(req);
        let mut body = json!({"model": t.model});
        if let Some(i) = instructions {
            body["instructions"] = json!(i);
        }
        body["input"] = Value::Array(input);
        if !req.tools.is_empty() {
            body["tools"] = Value::Array(
                req.tools
                    .iter()
                    .map(|tool| {
                        let mut v = json!({"type": "function", "name": tool.name, "parameters": params_or_empty(&tool.parameters)});
                        if let Some(d) = &tool.description {
                            v["description"] = json!(d);
                        }
                        v
                    })
                    .collect(),
            );
            body["tool_choice"] = match &req.tool_choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool(name) => json!({"type": "function", "name": name}),
            };
        }
        if let Some(rf) = &req.response_format {
            body["text"] = json!({"format": {"type": "json_schema", "name": rf.name, "schema": rf.schema, "strict": rf.strict}});
        }
        let s = &req.sampling;
        if let Some(n) = s.max_tokens {
            body["max_output_tokens"] = json!(n);
        }
        if let Some(x) = s.temperature {
            body["temperature"] = json!(x);
        }
        if let Some(x) = s.top_p {
            body["top_p"] = json!(x);
        }
        if let Some(effort) = req.reasoning.as_ref().and_then(|r| r.effort.as_ref()) {
            body["reasoning"] = json!({"effort": effort, "summary": "auto"});
        }
        if stream {
            body["stream"] = json!(true);
        }
        merge_options(&mut body, &req.provider_options);
        Ok(WireRequest {
            url: format!("{}/responses", t.base_url),
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
        if v.get("error").is_some_and(|e| !e.is_null()) && v.get("output").is_none() {
            let p = parse_common_error(body);
            return Err(stream_error(p.message.unwrap_or_default(), p.code, None));
        }
        response_from_value(&v)
    }

    fn decoder(&self, _t: &Target, raw_events: bool) -> Box<dyn StreamDecoder> {
        Box::new(ResponsesDecoder {
            raw_events,
            ..ResponsesDecoder::default()
        })
    }

    fn parse_error(&self) -> fn(&[u8]) -> ParsedError {
        parse_common_error
    }
}

fn usage_of(v: &Value) -> Usage {
    let n = |x: &Value| x.as_u64().unwrap_or(0);
    Usage {
        input_tokens: n(&v["input_tokens"]),
        output_tokens: n(&v["output_tokens"]),
        cached_input_tokens: n(&v["input_tokens_details"]["cached_tokens"]),
        cache_write_tokens: 0,
        reasoning_tokens: n(&v["output_tokens_details"]["reasoning_tokens"]),
    }
}

fn finish_of(response: &Value, has_calls: bool) -> (FinishReason, String) {
    let status = response["status"]
        .as_str()
        .unwrap_or("completed")
        .to_owned();
    let reason = match status.as_str() {
        "incomplete" => match response["incomplete_details"]["reason"].as_str() {
            Some("max_output_tokens") => FinishReason::Length,
            Some("content_filter") => FinishReason::ContentFilter,
            _ => FinishReason::Other,
        },
        "failed" => FinishReason::Error,
        _ if has_calls => FinishReason::ToolCalls,
        other => map_finish(other),
    };
    (reason, status)
}

fn response_from_value(v: &Value) -> Result<ModelResponse, ModelError> {
    let mut content = Vec::new();
    for item in v["output"].as_array().into_iter().flatten() {
        match item["type"].as_str() {
            Some("reasoning") => {
                let mut text = String::new();
                for s in item["summary"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(item["content"].as_array().into_iter().flatten())
                {
                    text.push_str(s["text"].as_str().unwrap_or(""));
                }
                let signature = item["encrypted_content"].as_str().map(str::to_owned);
                if !text.is_empty() || signature.is_some() {
                    content.push(ContentPart::Reasoning { text, signature });
                }
            }
            Some("message") => {
                for c in item["content"].as_array().into_iter().flatten() {
                    if let Some(t) = c["text"].as_str() {
                        match content.last_mut() {
                            Some(ContentPart::Text { text }) => text.push_str(t),
                            _ => content.push(ContentPart::Text { text: t.to_owned() }),
                        }
                    }
                }
            }
            Some("function_call") => content.push(ContentPart::ToolCall(ToolCall {
                id: item["call_id"].as_str().unwrap_or("").to_owned(),
                name: item["name"].as_str().unwrap_or("").to_owned(),
                arguments: parse_arguments(item["arguments"].as_str().unwrap_or("")),
            })),
            Some("custom_tool_call") => content.push(ContentPart::ToolCall(ToolCall {
                id: item["call_id"].as_str().unwrap_or("").to_owned(),
                name: item["name"].as_str().unwrap_or("").to_owned(),
                arguments: Value::String(item["input"].as_str().unwrap_or("").to_owned()),
            })),
            _ => {}
        }
    }
    let has_calls = content
        .iter()
        .any(|p| matches!(p, ContentPart::ToolCall(_)));
    let (finish_reason, raw) = finish_of(v, has_calls);
    Ok(ModelResponse {
        content,
        finish_reason,
        raw_finish_reason: Some(raw),
        usage: usage_of(&v["usage"]),
        cost_usd: None,
        response_id: v["id"].as_str().map(str::to_owned),
        request_id: None,
        model: v["model"].as_str().map(str::to_owned),
    })
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    output_index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    item: Option<&'a RawValue>,
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
}

/// The Responses stream decoder.
#[derive(Default)]
pub struct ResponsesDecoder {
    sse: SseDecoder,
    state: RespState,
    raw_events: bool,
}

#[derive(Default)]
struct RespState {
    calls: ToolCallAccumulator,
    finished: bool,
    error: Option<ModelError>,
}

impl RespState {
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
        let key = format!("o{}", ev.output_index.unwrap_or(0));
        match ev.kind.as_ref() {
            "response.created" => {
                let r: Value = ev
                    .response
                    .and_then(|r| serde_json::from_str(r.get()).ok())
                    .unwrap_or(Value::Null);
                out.push(StreamEvent::Start {
                    id: r["id"].as_str().map(str::to_owned),
                    model: r["model"].as_str().map(str::to_owned),
                });
            }
            "response.output_text.delta" => {
                if let Some(d) = ev.delta.filter(|d| !d.is_empty()) {
                    out.push(StreamEvent::TextDelta {
                        text: d.into_owned(),
                    });
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(d) = ev.delta.filter(|d| !d.is_empty()) {
                    out.push(StreamEvent::ReasoningDelta {
                        text: d.into_owned(),
                    });
                }
            }
            "response.output_item.added" | "response.output_item.done" => {
                let item: Value = ev
                    .item
                    .and_then(|i| serde_json::from_str(i.get()).ok())
                    .unwrap_or(Value::Null);
                let done = ev.kind == "response.output_item.done";
                match item["type"].as_str() {
                    Some("function_call") | Some("custom_tool_call") => {
                        self.calls.start(
                            &key,
                            item["call_id"].as_str(),
                            item["name"].as_str(),
                            out,
                        );
                        if done {
                            let full = item["arguments"]
                                .as_str()
                                .or(item["input"].as_str())
                                .unwrap_or("");
                            self.calls.complete_if_empty(&key, full, out);
                            self.calls.end(&key, out);
                        }
                    }
                    Some("reasoning") if done => {
                        if let Some(sig) = item["encrypted_content"].as_str() {
                            out.push(StreamEvent::ReasoningSignature {
                                signature: sig.to_owned(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                if let Some(d) = ev.delta {
                    self.calls.delta(&key, &d, out);
                }
            }
            "response.function_call_arguments.done" => {
                if let Some(a) = ev.arguments {
                    self.calls.complete_if_empty(&key, &a, out);
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let r: Value = ev
                    .response
                    .and_then(|r| serde_json::from_str(r.get()).ok())
                    .unwrap_or(Value::Null);
                self.finished = true;
                if ev.kind == "response.failed" {
                    // A failed response's calls may be cut anywhere: report the failure
                    // without ending them.
                    if let Some(e) = self.error.take() {
                        return Err(e);
                    }
                    let msg = r["error"]["message"]
                        .as_str()
                        .unwrap_or("response failed")
                        .to_owned();
                    return Err(stream_error(
                        msg,
                        r["error"]["code"].as_str().map(str::to_owned),
                        None,
                    ));
                }
                self.calls.end_all(out);
                out.push(StreamEvent::Usage {
                    usage: usage_of(&r["usage"]),
                });
                let (reason, raw) = finish_of(&r, self.calls.any());
                out.push(StreamEvent::Finish {
                    reason,
                    raw: Some(raw),
                });
            }
            "error" => {
                // Newer API: nested `error`; older: `code`/`message` on the event. `response.failed`
                // usually follows; remember the first description and fail there (or at the end).
                let (message, code) = match ev
                    .error
                    .and_then(|e| serde_json::from_str::<Value>(e.get()).ok())
                {
                    Some(e) => (
                        e["message"].as_str().unwrap_or("stream error").to_owned(),
                        e["code"].as_str().or(e["type"].as_str()).map(str::to_owned),
                    ),
                    None => (
                        ev.message
                            .map(Cow::into_owned)
                            .unwrap_or_else(|| "stream error".to_owned()),
                        ev.code.map(Cow::into_owned),
                    ),
                };
                if self.error.is_none() {
                    self.error = Some(stream_error(message, code, None));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), ModelError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if !self.finished {
            return Err(self.calls.ended_early("response.completed"));
        }
        Ok(())
    }
}

impl StreamDecoder for ResponsesDecoder {
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
        state.end()
    }
}
