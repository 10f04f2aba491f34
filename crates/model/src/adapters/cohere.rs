//! Cohere v2 Chat (`POST {base}/chat`, named SSE events). The `tool_plan` Cohere writes before
//! calling tools is surfaced as reasoning.

use serde_json::{Value, json};

use super::openai_chat::arguments_string;
use super::{
    Adapter, Target, merge_options, params_or_empty, parse_common_error, parse_json, result_text,
    stream_error, to_body,
};
use crate::decode::{ResponseCollector, StreamDecoder, ToolCallAccumulator, map_finish};
use crate::error::ModelError;
use crate::framing::SseDecoder;
use crate::http::{ParsedError, WireRequest};
use crate::types::{
    ContentPart, FinishReason, ModelRequest, ModelResponse, Role, StreamEvent, ToolChoice, Usage,
};

/// The Cohere v2 adapter.
#[derive(Debug, Clone, Copy)]
pub struct Cohere;

fn messages(req: &ModelRequest) -> Vec<Value> {
    let mut out = Vec::new();
    for m in &req.messages {
        match m.role {
            Role::System => out.push(json!({"role": "system", "content": m.text()})),
            Role::User | Role::Tool => {
                let mut text = String::new();
                for p in &m.content {
                    match p {
                        ContentPart::Text { text: t } => text.push_str(t),
                        ContentPart::ToolResult(r) => out.push(json!({
                            "role": "tool", "tool_call_id": r.call_id,
                            "content": [{"type": "document", "document": {"data": result_text(&r.content)}}]
                        })),
                        _ => {}
                    }
                }
                if !text.is_empty() {
                    out.push(json!({"role": "user", "content": text}));
                }
            }
            Role::Assistant => {
                let mut msg = json!({"role": "assistant"});
                let text = m.text();
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|p| match p {
                        ContentPart::ToolCall(c) => Some(json!({"id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": arguments_string(&c.arguments)}})),
                        _ => None,
                    })
                    .collect();
                let plan: String = m
                    .content
                    .iter()
                    .filter_map(|p| {
                        if let ContentPart::Reasoning { text, .. } = p {
                            Some(text.as_str())
                        } else {
                            None
                        }
                    })
                    .collect();
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                    if !plan.is_empty() {
                        msg["tool_plan"] = json!(plan);
                    }
                }
                if !text.is_empty() {
                    msg["content"] = json!(text);
                }
                out.push(msg);
            }
        }
    }
    out
}

impl Adapter for Cohere {
    fn build(
        &self,
        t: &Target,
        req: &ModelRequest,
        stream: bool,
    ) -> Result<WireRequest, ModelError> {
        let mut body = json!({"model": t.model, "messages": messages(req)});
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
            match &req.tool_choice {
                ToolChoice::Auto => {}
                ToolChoice::None => body["tool_choice"] = json!("NONE"),
                ToolChoice::Required | ToolChoice::Tool(_) => {
                    body["tool_choice"] = json!("REQUIRED")
                }
            }
        }
        if let Some(rf) = &req.response_format {
            body["response_format"] = json!({"type": "json_object", "json_schema": rf.schema});
        }
        let s = &req.sampling;
        if let Some(n) = s.max_tokens {
            body["max_tokens"] = json!(n);
        }
        if let Some(x) = s.temperature {
            body["temperature"] = json!(x);
        }
        if let Some(x) = s.top_p {
            body["p"] = json!(x);
        }
        if let Some(x) = s.top_k {
            body["k"] = json!(x);
        }
        if !s.stop.is_empty() {
            body["stop_sequences"] = json!(s.stop);
        }
        if let Some(x) = s.seed {
            body["seed"] = json!(x);
        }
        if let Some(b) = req.reasoning.as_ref().and_then(|r| r.budget_tokens) {
            body["thinking"] = json!({"type": "enabled", "token_budget": b});
        }
        if stream {
            body["stream"] = json!(true);
        }
        merge_options(&mut body, &req.provider_options);
        Ok(WireRequest {
            url: format!("{}/chat", t.base_url),
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
        let msg = &v["message"];
        if msg.is_null() {
            let p = parse_common_error(body);
            return Err(stream_error(
                p.message
                    .unwrap_or_else(|| "response has no message".to_owned()),
                p.code,
                None,
            ));
        }
        let mut st = CohereState::default();
        let mut events = vec![StreamEvent::Start {
            id: v["id"].as_str().map(str::to_owned),
            model: None,
        }];
        if let Some(plan) = msg["tool_plan"].as_str().filter(|s| !s.is_empty()) {
            events.push(StreamEvent::ReasoningDelta {
                text: plan.to_owned(),
            });
        }
        for c in msg["content"].as_array().into_iter().flatten() {
            match c["type"].as_str() {
                Some("thinking") => events.push(StreamEvent::ReasoningDelta {
                    text: c["thinking"].as_str().unwrap_or("").to_owned(),
                }),
                _ => {
                    if let Some(text) = c["text"].as_str() {
                        events.push(StreamEvent::TextDelta {
                            text: text.to_owned(),
                        });
                    }
                }
            }
        }
        for (i, call) in msg["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let key = format!("t{i}");
            st.calls.start(
                &key,
                call["id"].as_str(),
                call["function"]["name"].as_str(),
                &mut events,
            );
            if let Some(a) = call["function"]["arguments"].as_str() {
                st.calls.delta(&key, a, &mut events);
            }
            st.calls.end(&key, &mut events);
        }
        st.on_end(&v, &mut events)?;
        let mut c = ResponseCollector::new();
        for e in events {
            c.push(e);
        }
        Ok(c.into_response())
    }

    fn decoder(&self, _t: &Target, raw_events: bool) -> Box<dyn StreamDecoder> {
        Box::new(CohereDecoder {
            raw_events,
            ..CohereDecoder::default()
        })
    }

    fn parse_error(&self) -> fn(&[u8]) -> ParsedError {
        parse_common_error
    }
}

fn usage_of(u: &Value) -> Usage {
    let n = |x: &Value| x.as_u64().unwrap_or(0);
    let tokens = if u["tokens"].is_object() {
        &u["tokens"]
    } else {
        &u["billed_units"]
    };
    Usage {
        input_tokens: n(&tokens["input_tokens"]),
        output_tokens: n(&tokens["output_tokens"]),
        cached_input_tokens: n(&u["cached_tokens"]),
        cache_write_tokens: 0,
        reasoning_tokens: 0,
    }
}

#[derive(Default)]
struct CohereState {
    calls: ToolCallAccumulator,
    finished: bool,
}

impl CohereState {
    /// `message-end` (stream) or the whole response: usage and finish.
    fn on_end(&mut self, end: &Value, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let raw = end["finish_reason"]
            .as_str()
            .unwrap_or("COMPLETE")
            .to_owned();
        if raw == "ERROR" {
            let msg = end["error"]
                .as_str()
                .unwrap_or("generation failed")
                .to_owned();
            // A failed generation's calls may be cut anywhere: not ended.
            return Err(stream_error(msg, Some("ERROR".to_owned()), None));
        }
        self.calls.end_all(out);
        self.finished = true;
        if end["usage"].is_object() {
            out.push(StreamEvent::Usage {
                usage: usage_of(&end["usage"]),
            });
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

    fn on_event(&mut self, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let v: Value = serde_json::from_str(data)
            .map_err(|e| ModelError::decode("", "", format!("bad stream event JSON: {e}")))?;
        let key = format!("t{}", v["index"].as_u64().unwrap_or(0));
        let msg = &v["delta"]["message"];
        match v["type"].as_str() {
            Some("message-start") => out.push(StreamEvent::Start {
                id: v["id"].as_str().map(str::to_owned),
                model: None,
            }),
            Some("content-delta") => {
                let c = &msg["content"];
                if let Some(t) = c["text"].as_str().filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta { text: t.to_owned() });
                }
                if let Some(t) = c["thinking"].as_str().filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::ReasoningDelta { text: t.to_owned() });
                }
            }
            Some("tool-plan-delta") => {
                if let Some(t) = msg["tool_plan"].as_str().filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::ReasoningDelta { text: t.to_owned() });
                }
            }
            Some("tool-call-start") => {
                let tc = &msg["tool_calls"];
                self.calls.start(
                    &key,
                    tc["id"].as_str(),
                    tc["function"]["name"].as_str(),
                    out,
                );
                if let Some(a) = tc["function"]["arguments"].as_str() {
                    self.calls.delta(&key, a, out);
                }
            }
            Some("tool-call-delta") => {
                if let Some(a) = msg["tool_calls"]["function"]["arguments"].as_str() {
                    self.calls.delta(&key, a, out);
                }
            }
            Some("tool-call-end") => self.calls.end(&key, out),
            Some("message-end") => self.on_end(&v["delta"], out)?,
            _ => {}
        }
        Ok(())
    }
}

/// The Cohere v2 stream decoder.
#[derive(Default)]
pub struct CohereDecoder {
    sse: SseDecoder,
    state: CohereState,
    raw_events: bool,
}

impl StreamDecoder for CohereDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let state = &mut self.state;
        let raw = self.raw_events;
        self.sse.feed(chunk, &mut |name, data| {
            if raw {
                out.push(StreamEvent::Raw {
                    event: name.map(str::to_owned),
                    data: serde_json::from_str(data).unwrap_or(Value::Null),
                });
            }
            state.on_event(data, out)
        })
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let state = &mut self.state;
        self.sse
            .finish(&mut |_name, data| state.on_event(data, out))?;
        if !state.finished {
            return Err(state.calls.ended_early("message-end"));
        }
        Ok(())
    }
}
