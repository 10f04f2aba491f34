//! Amazon Bedrock Converse / ConverseStream. The stream is the AWS binary event-stream format
//! (`application/vnd.amazon.eventstream`), decoded by [`EventStreamDecoder`]. Authentication is a
//! Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`, sent as a bearer token); SigV4 signing is not
//! implemented yet.

use serde_json::{Map, Value, json};

use super::{
    Adapter, Target, merge_options, params_or_empty, parse_common_error, parse_json, result_text,
    stream_error, to_body,
};
use crate::decode::{ResponseCollector, StreamDecoder, ToolCallAccumulator, map_finish};
use crate::error::ModelError;
use crate::http::{ParsedError, WireRequest};
use crate::types::{
    ContentPart, FinishReason, MediaSource, ModelRequest, ModelResponse, Role, StreamEvent,
    ToolChoice, Usage,
};

/// The Bedrock Converse adapter.
#[derive(Debug, Clone, Copy)]
pub struct Bedrock;

/// Percent-encodes a path segment (model ids contain `:` and may be ARNs with `/`).
fn encode_segment(s: &str) -> String {
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

fn format_of(media_type: Option<&str>) -> String {
    media_type
        .and_then(|m| m.split('/').nth(1))
        .unwrap_or("png")
        .to_owned()
}

fn messages(req: &ModelRequest) -> (Vec<Value>, Vec<Value>) {
    let mut system = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    for m in &req.messages {
        if m.role == Role::System {
            system.push(json!({"text": m.text()}));
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
                ContentPart::Text { text } if !text.is_empty() => blocks.push(json!({"text": text})),
                ContentPart::Image { source: MediaSource::Bytes { data }, media_type } => blocks.push(
                    json!({"image": {"format": format_of(media_type.as_deref()), "source": {"bytes": super::b64(data)}}}),
                ),
                ContentPart::Reasoning { text, signature: Some(sig) } => {
                    blocks.push(json!({"reasoningContent": {"reasoningText": {"text": text, "signature": sig}}}))
                }
                ContentPart::ToolCall(c) => blocks.push(json!({"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.arguments}})),
                ContentPart::ToolResult(r) => {
                    let content = match &r.content {
                        Value::Object(_) | Value::Array(_) => json!([{"json": r.content}]),
                        other => json!([{"text": result_text(other)}]),
                    };
                    blocks.push(json!({"toolResult": {"toolUseId": r.call_id, "content": content,
                        "status": if r.is_error { "error" } else { "success" }}}));
                }
                _ => {}
            }
        }
        if blocks.is_empty() {
            continue;
        }
        if let Some(last) = out.last_mut()
            && last["role"] == role
            && let Some(arr) = last["content"].as_array_mut()
        {
            arr.extend(blocks);
            continue;
        }
        out.push(json!({"role": role, "content": blocks}));
    }
    (system, out)
}

impl Adapter for Bedrock {
    fn build(
        &self,
        t: &Target,
        req: &ModelRequest,
        stream: bool,
    ) -> Result<WireRequest, ModelError> {
        let (system, msgs) = messages(req);
        let mut body = json!({"messages": msgs});
        if !system.is_empty() {
            body["system"] = Value::Array(system);
        }
        if !req.tools.is_empty() {
            let tools: Vec<Value> = req
                .tools
                .iter()
                .map(|tool| {
                    let mut spec = json!({"name": tool.name, "inputSchema": {"json": params_or_empty(&tool.parameters)}});
                    if let Some(d) = &tool.description {
                        spec["description"] = json!(d);
                    }
                    json!({"toolSpec": spec})
                })
                .collect();
            let mut cfg = json!({"tools": tools});
            match &req.tool_choice {
                ToolChoice::Auto => cfg["toolChoice"] = json!({"auto": {}}),
                ToolChoice::Required => cfg["toolChoice"] = json!({"any": {}}),
                ToolChoice::Tool(name) => cfg["toolChoice"] = json!({"tool": {"name": name}}),
                ToolChoice::None => {}
            }
            body["toolConfig"] = cfg;
        }
        let s = &req.sampling;
        let mut inf = Map::new();
        if let Some(n) = s.max_tokens {
            inf.insert("maxTokens".into(), json!(n));
        }
        if let Some(x) = s.temperature {
            inf.insert("temperature".into(), json!(x));
        }
        if let Some(x) = s.top_p {
            inf.insert("topP".into(), json!(x));
        }
        if !s.stop.is_empty() {
            inf.insert("stopSequences".into(), json!(s.stop));
        }
        if !inf.is_empty() {
            body["inferenceConfig"] = Value::Object(inf);
        }
        if let Some(b) = req.reasoning.as_ref().and_then(|r| r.budget_tokens) {
            body["additionalModelRequestFields"] =
                json!({"thinking": {"type": "enabled", "budget_tokens": b}});
        }
        if req.response_format.is_some() {
            return Err(ModelError::Unsupported(
                "structured output on Bedrock Converse: pass a tool and ToolChoice::Tool instead"
                    .to_owned(),
            ));
        }
        merge_options(&mut body, &req.provider_options);
        let verb = if stream {
            "converse-stream"
        } else {
            "converse"
        };
        Ok(WireRequest {
            url: format!("{}/model/{}/{verb}", t.base_url, encode_segment(&t.model)),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: to_body(&body),
        })
    }

    fn parse_response(&self, t: &Target, body: &[u8]) -> Result<ModelResponse, ModelError> {
        let v: Value = parse_json(t, body)?;
        let mut events = vec![StreamEvent::Start {
            id: None,
            model: None,
        }];
        let mut calls = ToolCallAccumulator::new();
        for (i, block) in v["output"]["message"]["content"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(text) = block["text"].as_str() {
                events.push(StreamEvent::TextDelta {
                    text: text.to_owned(),
                });
            }
            if let Some(r) = block.get("reasoningContent") {
                if let Some(text) = r["reasoningText"]["text"].as_str() {
                    events.push(StreamEvent::ReasoningDelta {
                        text: text.to_owned(),
                    });
                }
                if let Some(sig) = r["reasoningText"]["signature"].as_str() {
                    events.push(StreamEvent::ReasoningSignature {
                        signature: sig.to_owned(),
                    });
                }
            }
            if let Some(tu) = block.get("toolUse") {
                let key = format!("b{i}");
                calls.start(
                    &key,
                    tu["toolUseId"].as_str(),
                    tu["name"].as_str(),
                    &mut events,
                );
                let args = match &tu["input"] {
                    Value::Null => "{}".to_owned(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                calls.delta(&key, &args, &mut events);
                calls.end(&key, &mut events);
            }
        }
        if let Some(u) = v.get("usage") {
            events.push(StreamEvent::Usage { usage: usage_of(u) });
        }
        let raw = v["stopReason"].as_str().unwrap_or("end_turn").to_owned();
        events.push(StreamEvent::Finish {
            reason: map_finish(&raw),
            raw: Some(raw),
        });
        let mut c = ResponseCollector::new();
        for e in events {
            c.push(e);
        }
        Ok(c.into_response())
    }

    fn decoder(&self, _t: &Target, raw_events: bool) -> Box<dyn StreamDecoder> {
        Box::new(BedrockDecoder {
            raw_events,
            ..BedrockDecoder::default()
        })
    }

    fn parse_error(&self) -> fn(&[u8]) -> ParsedError {
        parse_common_error
    }
}

fn usage_of(u: &Value) -> Usage {
    let n = |x: &Value| x.as_u64().unwrap_or(0);
    let read = n(&u["cacheReadInputTokens"]);
    let write = n(&u["cacheWriteInputTokens"]);
    Usage {
        input_tokens: n(&u["inputTokens"])
            .saturating_add(read)
            .saturating_add(write),
        output_tokens: n(&u["outputTokens"]),
        cached_input_tokens: read,
        cache_write_tokens: write,
        reasoning_tokens: 0,
    }
}

/// One decoded event-stream message.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMessage {
    /// `(name, string value)` of the string-typed headers (other header types are skipped).
    pub headers: Vec<(String, String)>,
    /// The payload.
    pub payload: Vec<u8>,
}

impl EventMessage {
    /// A string header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An incremental decoder of AWS event-stream frames: `total_len u32 | headers_len u32 |
/// prelude_crc u32 | headers | payload | message_crc u32`, big-endian, CRC32 (IEEE). Frames may
/// be split across chunks; a CRC mismatch or an impossible length is an error.
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buf: Vec<u8>,
}

/// Longest frame accepted (the format allows 16 MiB).
const MAX_FRAME: usize = 16 * 1024 * 1024;

impl EventStreamDecoder {
    /// A new decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether bytes of an incomplete frame are buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Feeds bytes, appending complete messages to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<EventMessage>) -> Result<(), String> {
        self.buf.extend_from_slice(chunk);
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            if rest.len() < 12 {
                break;
            }
            let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let total = be(&rest[0..4]) as usize;
            let headers_len = be(&rest[4..8]) as usize;
            if !(16..=MAX_FRAME).contains(&total) || headers_len > total - 16 {
                return Err(format!(
                    "bad event-stream frame lengths {total}/{headers_len}"
                ));
            }
            if crc32fast::hash(&rest[0..8]) != be(&rest[8..12]) {
                return Err("event-stream prelude CRC mismatch".to_owned());
            }
            if rest.len() < total {
                break;
            }
            let frame = &rest[..total];
            if crc32fast::hash(&frame[..total - 4]) != be(&frame[total - 4..]) {
                return Err("event-stream message CRC mismatch".to_owned());
            }
            let headers = parse_headers(&frame[12..12 + headers_len])?;
            out.push(EventMessage {
                headers,
                payload: frame[12 + headers_len..total - 4].to_vec(),
            });
            pos += total;
        }
        self.buf.drain(..pos);
        Ok(())
    }
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let short = || "truncated event-stream header".to_owned();
    while !b.is_empty() {
        let name_len = *b.first().ok_or_else(short)? as usize;
        let name = b.get(1..1 + name_len).ok_or_else(short)?;
        let name = String::from_utf8_lossy(name).into_owned();
        b = &b[1 + name_len..];
        let ty = *b.first().ok_or_else(short)?;
        b = &b[1..];
        let fixed = |n: usize, b: &mut &[u8]| -> Result<(), String> {
            if b.len() < n {
                return Err(short());
            }
            *b = &b[n..];
            Ok(())
        };
        match ty {
            0 | 1 => {}
            2 => fixed(1, &mut b)?,
            3 => fixed(2, &mut b)?,
            4 => fixed(4, &mut b)?,
            5 | 8 => fixed(8, &mut b)?,
            9 => fixed(16, &mut b)?,
            6 | 7 => {
                let len = u16::from_be_bytes([
                    *b.first().ok_or_else(short)?,
                    *b.get(1).ok_or_else(short)?,
                ]) as usize;
                let value = b.get(2..2 + len).ok_or_else(short)?;
                if ty == 7 {
                    out.push((name, String::from_utf8_lossy(value).into_owned()));
                }
                b = &b[2 + len..];
            }
            other => return Err(format!("unknown event-stream header type {other}")),
        }
    }
    Ok(out)
}

/// The ConverseStream decoder.
#[derive(Default)]
pub struct BedrockDecoder {
    frames: EventStreamDecoder,
    messages: Vec<EventMessage>,
    calls: ToolCallAccumulator,
    stop: Option<String>,
    usage: Option<Usage>,
    raw_events: bool,
    ended: bool,
}

impl BedrockDecoder {
    fn on_message(
        &mut self,
        m: &EventMessage,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ModelError> {
        let v: Value = serde_json::from_slice(&m.payload)
            .map_err(|e| ModelError::decode("", "", format!("bad event payload JSON: {e}")))?;
        if m.header(":message-type") == Some("exception")
            || m.header(":message-type") == Some("error")
        {
            let kind = m
                .header(":exception-type")
                .or(m.header(":error-code"))
                .unwrap_or("exception")
                .to_owned();
            let msg = v["message"]
                .as_str()
                .or(m.header(":error-message"))
                .unwrap_or("stream exception")
                .to_owned();
            let status = match kind.as_str() {
                "throttlingException" => Some(429),
                "internalServerException" | "modelStreamErrorException" => Some(500),
                "serviceUnavailableException" => Some(503),
                "validationException" => Some(400),
                _ => None,
            };
            return Err(stream_error(msg, Some(kind), status));
        }
        let event = m.header(":event-type").unwrap_or("");
        if self.raw_events {
            out.push(StreamEvent::Raw {
                event: Some(event.to_owned()),
                data: v.clone(),
            });
        }
        let key = format!("b{}", v["contentBlockIndex"].as_u64().unwrap_or(0));
        match event {
            "messageStart" => out.push(StreamEvent::Start {
                id: None,
                model: None,
            }),
            "contentBlockStart" => {
                if let Some(tu) = v["start"].get("toolUse") {
                    self.calls
                        .start(&key, tu["toolUseId"].as_str(), tu["name"].as_str(), out);
                }
            }
            "contentBlockDelta" => {
                let d = &v["delta"];
                if let Some(t) = d["text"].as_str().filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta { text: t.to_owned() });
                }
                if let Some(input) = d["toolUse"]["input"].as_str() {
                    self.calls.delta(&key, input, out);
                }
                let r = &d["reasoningContent"];
                if let Some(t) = r["text"].as_str().filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::ReasoningDelta { text: t.to_owned() });
                }
                if let Some(s) = r["signature"].as_str().or(r["redactedContent"].as_str()) {
                    out.push(StreamEvent::ReasoningSignature {
                        signature: s.to_owned(),
                    });
                }
            }
            "contentBlockStop" => self.calls.end(&key, out),
            "messageStop" => {
                self.stop = Some(v["stopReason"].as_str().unwrap_or("end_turn").to_owned())
            }
            "metadata" if v["usage"].is_object() => {
                self.usage = Some(usage_of(&v["usage"]));
            }
            _ => {}
        }
        Ok(())
    }
}

impl StreamDecoder for BedrockDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let mut msgs = std::mem::take(&mut self.messages);
        self.frames
            .feed(chunk, &mut msgs)
            .map_err(|e| ModelError::decode("", "", e))?;
        for m in msgs.drain(..) {
            self.on_message(&m, out)?;
        }
        self.messages = msgs;
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        if self.frames.has_partial() {
            return Err(ModelError::decode(
                "",
                "",
                "stream ended inside an event-stream frame",
            ));
        }
        let Some(raw) = self.stop.take() else {
            return Err(self.calls.ended_early("messageStop"));
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
