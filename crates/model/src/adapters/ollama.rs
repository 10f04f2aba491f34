//! Ollama's native `POST {base}/api/chat` with its NDJSON stream. (Ollama also serves the
//! OpenAI-compatible API at `/v1`; the native one exposes `keep_alive`, `options.num_ctx`, ...
//! through provider options.)

use serde_json::{Map, Value, json};

use super::{
    Adapter, Target, b64, merge_options, params_or_empty, parse_json, result_text, stream_error,
    to_body,
};
use crate::decode::{ResponseCollector, StreamDecoder, ToolCallAccumulator, map_finish};
use crate::error::ModelError;
use crate::framing::NdjsonDecoder;
use crate::http::{ParsedError, WireRequest};
use crate::types::{
    ContentPart, FinishReason, MediaSource, ModelRequest, ModelResponse, Role, StreamEvent, Usage,
};

/// The Ollama native adapter.
#[derive(Debug, Clone, Copy)]
pub struct Ollama;

fn messages(req: &ModelRequest) -> Vec<Value> {
    let mut out = Vec::new();
    for m in &req.messages {
        let role = match m.role {
            Role::System => "system",
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        let mut text = String::new();
        let mut images = Vec::new();
        let mut calls = Vec::new();
        for p in &m.content {
            match p {
                ContentPart::Text { text: t } => text.push_str(t),
                ContentPart::Image { source: MediaSource::Bytes { data }, .. } => images.push(json!(b64(data))),
                ContentPart::ToolCall(c) => calls.push(json!({"function": {"name": c.name, "arguments": c.arguments}})),
                ContentPart::ToolResult(r) => {
                    out.push(json!({"role": "tool", "tool_name": r.name, "content": result_text(&r.content)}))
                }
                _ => {}
            }
        }
        if text.is_empty() && images.is_empty() && calls.is_empty() {
            continue;
        }
        let mut msg = json!({"role": role, "content": text});
        if !images.is_empty() {
            msg["images"] = Value::Array(images);
        }
        if !calls.is_empty() {
            msg["tool_calls"] = Value::Array(calls);
        }
        out.push(msg);
    }
    out
}

fn parse_ollama_error(body: &[u8]) -> ParsedError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    ParsedError {
        message: v["error"].as_str().map(str::to_owned),
        ..ParsedError::default()
    }
}

impl Adapter for Ollama {
    fn build(
        &self,
        t: &Target,
        req: &ModelRequest,
        stream: bool,
    ) -> Result<WireRequest, ModelError> {
        let mut body = json!({"model": t.model, "messages": messages(req), "stream": stream});
        if !req.tools.is_empty() {
            body["tools"] = Value::Array(
                req.tools
                    .iter()
                    .map(|tool| {
                        json!({"type": "function", "function": {"name": tool.name,
                            "description": tool.description.clone().unwrap_or_default(),
                            "parameters": params_or_empty(&tool.parameters)}})
                    })
                    .collect(),
            );
        }
        if let Some(rf) = &req.response_format {
            body["format"] = rf.schema.clone();
        }
        if req.reasoning.is_some() {
            body["think"] = json!(true);
        }
        let s = &req.sampling;
        let mut options = Map::new();
        if let Some(n) = s.max_tokens {
            options.insert("num_predict".into(), json!(n));
        }
        if let Some(x) = s.temperature {
            options.insert("temperature".into(), json!(x));
        }
        if let Some(x) = s.top_p {
            options.insert("top_p".into(), json!(x));
        }
        if let Some(x) = s.top_k {
            options.insert("top_k".into(), json!(x));
        }
        if !s.stop.is_empty() {
            options.insert("stop".into(), json!(s.stop));
        }
        if let Some(x) = s.seed {
            options.insert("seed".into(), json!(x));
        }
        if !options.is_empty() {
            body["options"] = Value::Object(options);
        }
        merge_options(&mut body, &req.provider_options);
        Ok(WireRequest {
            url: format!("{}/api/chat", t.base_url),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: to_body(&body),
        })
    }

    fn parse_response(&self, t: &Target, body: &[u8]) -> Result<ModelResponse, ModelError> {
        let v: Value = parse_json(t, body)?;
        let mut st = OllamaState::default();
        let mut events = Vec::new();
        st.on_line(&v, &mut events)?;
        st.end(&mut events)?;
        let mut c = ResponseCollector::new();
        for e in events {
            c.push(e);
        }
        Ok(c.into_response())
    }

    fn decoder(&self, _t: &Target, raw_events: bool) -> Box<dyn StreamDecoder> {
        Box::new(OllamaDecoder {
            raw_events,
            ..OllamaDecoder::default()
        })
    }

    fn parse_error(&self) -> fn(&[u8]) -> ParsedError {
        parse_ollama_error
    }
}

#[derive(Default)]
struct OllamaState {
    calls: ToolCallAccumulator,
    count: usize,
    started: bool,
    finished: bool,
}

impl OllamaState {
    fn on_line(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        if let Some(e) = v["error"].as_str() {
            return Err(stream_error(e.to_owned(), None, None));
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: None,
                model: v["model"].as_str().map(str::to_owned),
            });
        }
        let msg = &v["message"];
        if let Some(t) = msg["thinking"].as_str().filter(|t| !t.is_empty()) {
            out.push(StreamEvent::ReasoningDelta { text: t.to_owned() });
        }
        if let Some(t) = msg["content"].as_str().filter(|t| !t.is_empty()) {
            out.push(StreamEvent::TextDelta { text: t.to_owned() });
        }
        for call in msg["tool_calls"].as_array().into_iter().flatten() {
            // Calls arrive whole, with object arguments and usually no id.
            self.count += 1;
            let key = format!("c{}", self.count);
            let f = &call["function"];
            self.calls
                .start(&key, call["id"].as_str(), f["name"].as_str(), out);
            let args = match &f["arguments"] {
                Value::String(s) => s.clone(),
                Value::Null => "{}".to_owned(),
                other => other.to_string(),
            };
            self.calls.delta(&key, &args, out);
            self.calls.end(&key, out);
        }
        if v["done"].as_bool() == Some(true) {
            self.finished = true;
            let n = |x: &Value| x.as_u64().unwrap_or(0);
            out.push(StreamEvent::Usage {
                usage: Usage {
                    input_tokens: n(&v["prompt_eval_count"]),
                    output_tokens: n(&v["eval_count"]),
                    ..Usage::default()
                },
            });
            let raw = v["done_reason"].as_str().unwrap_or("stop").to_owned();
            let mut reason = map_finish(&raw);
            if reason == FinishReason::Stop && self.calls.any() {
                reason = FinishReason::ToolCalls;
            }
            out.push(StreamEvent::Finish {
                reason,
                raw: Some(raw),
            });
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        if self.finished {
            Ok(())
        } else {
            Err(self.calls.ended_early("done:true"))
        }
    }
}

/// The Ollama NDJSON stream decoder.
#[derive(Default)]
pub struct OllamaDecoder {
    lines: NdjsonDecoder,
    state: OllamaState,
    raw_events: bool,
}

impl StreamDecoder for OllamaDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let state = &mut self.state;
        let raw = self.raw_events;
        self.lines.feed(chunk, &mut |line| {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| ModelError::decode("", "", format!("bad NDJSON line: {e}")))?;
            if raw {
                out.push(StreamEvent::Raw {
                    event: None,
                    data: v.clone(),
                });
            }
            state.on_line(&v, out)
        })
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let state = &mut self.state;
        self.lines.finish(&mut |line| {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| ModelError::decode("", "", format!("bad NDJSON line: {e}")))?;
            state.on_line(&v, out)
        })?;
        state.end(out)
    }
}
