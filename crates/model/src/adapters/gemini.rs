//! Google Gemini `generateContent` / `streamGenerateContent?alt=sse`, on the Gemini API (API key)
//! or Vertex AI (`vertex: true`, OAuth bearer token), including Vertex's streamed function-call
//! arguments (`partialArgs`).

use serde_json::{Map, Value, json};

use super::{
    Adapter, Target, b64, merge_options, params_or_empty, parse_common_error, parse_json,
    result_text, stream_error, to_body,
};
use crate::decode::{StreamDecoder, ToolCallAccumulator, map_finish};
use crate::error::ModelError;
use crate::framing::SseDecoder;
use crate::http::{ParsedError, WireRequest};
use crate::types::{
    ContentPart, FinishReason, MediaSource, ModelRequest, ModelResponse, Role, StreamEvent,
    ToolChoice, Usage,
};

/// The Gemini adapter.
#[derive(Debug, Clone, Copy)]
pub struct Gemini {
    /// Vertex AI URL layout (`{base}/publishers/google/models/{model}`).
    pub vertex: bool,
}

fn media_part(source: &MediaSource, media_type: &str) -> Value {
    match source {
        MediaSource::Bytes { data } => {
            json!({"inlineData": {"mimeType": media_type, "data": b64(data)}})
        }
        MediaSource::Url { url } => json!({"fileData": {"mimeType": media_type, "fileUri": url}}),
    }
}

fn contents(req: &ModelRequest) -> (Option<Value>, Vec<Value>) {
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
            "model"
        } else {
            "user"
        };
        let mut parts = Vec::new();
        let mut signature: Option<&str> = None;
        for p in &m.content {
            match p {
                ContentPart::Text { text } if !text.is_empty() => parts.push(json!({"text": text})),
                ContentPart::Text { .. } => {}
                ContentPart::Image { source, media_type } => parts.push(media_part(
                    source,
                    media_type.as_deref().unwrap_or("image/png"),
                )),
                ContentPart::File {
                    source, media_type, ..
                } => parts.push(media_part(source, media_type)),
                ContentPart::Reasoning { signature: s, .. } => {
                    signature = s.as_deref().or(signature)
                }
                ContentPart::ToolCall(c) => {
                    let mut part = json!({"functionCall": {"name": c.name, "args": c.arguments}});
                    if let Some(sig) = signature.take() {
                        part["thoughtSignature"] = json!(sig);
                    }
                    parts.push(part);
                }
                ContentPart::ToolResult(r) => {
                    let response = match &r.content {
                        Value::Object(_) => r.content.clone(),
                        other => json!({"result": result_text(other)}),
                    };
                    parts.push(json!({"functionResponse": {"name": r.name, "response": response}}));
                }
            }
        }
        if parts.is_empty() {
            continue;
        }
        if let Some(last) = out.last_mut()
            && last["role"] == role
            && let Some(arr) = last["parts"].as_array_mut()
        {
            arr.extend(parts);
            continue;
        }
        out.push(json!({"role": role, "parts": parts}));
    }
    let system = (!system.is_empty()).then(|| json!({"parts": [{"text": system}]}));
    (system, out)
}

impl Adapter for Gemini {
    fn build(
        &self,
        t: &Target,
        req: &ModelRequest,
        stream: bool,
    ) -> Result<WireRequest, ModelError> {
        let (system, contents) = contents(req);
        let mut body = json!({"contents": contents});
        if let Some(s) = system {
            body["systemInstruction"] = s;
        }
        if !req.tools.is_empty() {
            let decls: Vec<Value> = req
                .tools
                .iter()
                .map(|tool| {
                    let mut d = json!({"name": tool.name, "parametersJsonSchema": params_or_empty(&tool.parameters)});
                    if let Some(desc) = &tool.description {
                        d["description"] = json!(desc);
                    }
                    d
                })
                .collect();
            body["tools"] = json!([{"functionDeclarations": decls}]);
            body["toolConfig"] = json!({"functionCallingConfig": match &req.tool_choice {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Required => json!({"mode": "ANY"}),
                ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
            }});
        }
        let s = &req.sampling;
        let mut config = Map::new();
        if let Some(n) = s.max_tokens {
            config.insert("maxOutputTokens".into(), json!(n));
        }
        if let Some(x) = s.temperature {
            config.insert("temperature".into(), json!(x));
        }
        if let Some(x) = s.top_p {
            config.insert("topP".into(), json!(x));
        }
        if let Some(x) = s.top_k {
            config.insert("topK".into(), json!(x));
        }
        if !s.stop.is_empty() {
            config.insert("stopSequences".into(), json!(s.stop));
        }
        if let Some(x) = s.seed {
            config.insert("seed".into(), json!(x));
        }
        if let Some(rf) = &req.response_format {
            config.insert("responseMimeType".into(), json!("application/json"));
            config.insert("responseJsonSchema".into(), rf.schema.clone());
        }
        if let Some(r) = &req.reasoning {
            let mut tc = json!({"includeThoughts": true});
            if let Some(b) = r.budget_tokens {
                tc["thinkingBudget"] = json!(b);
            }
            config.insert("thinkingConfig".into(), tc);
        }
        if !config.is_empty() {
            body["generationConfig"] = Value::Object(config);
        }
        merge_options(&mut body, &req.provider_options);
        let prefix = if self.vertex {
            "publishers/google/models"
        } else {
            "models"
        };
        let url = if stream {
            format!(
                "{}/{prefix}/{}:streamGenerateContent?alt=sse",
                t.base_url, t.model
            )
        } else {
            format!("{}/{prefix}/{}:generateContent", t.base_url, t.model)
        };
        Ok(WireRequest {
            url,
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
        if v.get("error").is_some() {
            let p = parse_common_error(body);
            return Err(stream_error(p.message.unwrap_or_default(), p.code, None));
        }
        let mut events = Vec::new();
        let mut st = GeminiState::default();
        st.on_chunk(&v, &mut events)?;
        st.end(&mut events)?;
        let mut c = crate::decode::ResponseCollector::new();
        for e in events {
            c.push(e);
        }
        Ok(c.into_response())
    }

    fn decoder(&self, _t: &Target, raw_events: bool) -> Box<dyn StreamDecoder> {
        Box::new(GeminiDecoder {
            raw_events,
            ..GeminiDecoder::default()
        })
    }

    fn parse_error(&self) -> fn(&[u8]) -> ParsedError {
        parse_common_error
    }
}

/// Sets `value` at a JSONPath like `$.operations[1].price` inside `root`, creating objects and
/// arrays on the way; with `append` a string is appended to the string already there.
fn set_path(root: &mut Value, path: &str, value: Value, append: bool) {
    let mut cur = root;
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut segments: Vec<Result<String, usize>> = Vec::new();
    for piece in path.split('.').filter(|s| !s.is_empty()) {
        let mut rest = piece;
        if let Some(i) = rest.find('[') {
            segments.push(Ok(rest[..i].to_owned()));
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                if let Ok(n) = rest[1..end].parse::<usize>() {
                    segments.push(Err(n));
                }
                rest = &rest[end + 1..];
                if !rest.starts_with('[') {
                    break;
                }
            }
        } else {
            segments.push(Ok(rest.to_owned()));
        }
    }
    for seg in segments {
        cur = match seg {
            Ok(key) => {
                if !cur.is_object() {
                    *cur = Value::Object(Map::new());
                }
                match cur {
                    Value::Object(m) => m.entry(key).or_insert(Value::Null),
                    _ => return,
                }
            }
            Err(idx) => {
                if !cur.is_array() {
                    *cur = Value::Array(Vec::new());
                }
                match cur {
                    Value::Array(a) => {
                        while a.len() <= idx {
                            a.push(Value::Null);
                        }
                        &mut a[idx]
                    }
                    _ => return,
                }
            }
        };
    }
    match (cur, value) {
        (Value::String(existing), Value::String(more)) if append => existing.push_str(&more),
        (slot, v) => *slot = v,
    }
}

fn usage_of(u: &Value) -> Option<Usage> {
    let n = |x: &Value| x.as_u64();
    let prompt = n(&u["promptTokenCount"]);
    let cand = n(&u["candidatesTokenCount"]);
    if prompt.is_none() && cand.is_none() {
        return None;
    }
    let thoughts = n(&u["thoughtsTokenCount"]).unwrap_or(0);
    Some(Usage {
        input_tokens: prompt.unwrap_or(0),
        output_tokens: cand.unwrap_or(0).saturating_add(thoughts),
        cached_input_tokens: n(&u["cachedContentTokenCount"]).unwrap_or(0),
        cache_write_tokens: 0,
        reasoning_tokens: thoughts,
    })
}

#[derive(Default)]
struct GeminiState {
    calls: ToolCallAccumulator,
    count: usize,
    partial: Option<(String, Value)>,
    finish: Option<String>,
    usage: Option<Usage>,
    started: bool,
    ended: bool,
}

impl GeminiState {
    fn close_partial(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((key, args)) = self.partial.take() {
            let text = if args.is_null() {
                "{}".to_owned()
            } else {
                args.to_string()
            };
            self.calls.delta(&key, &text, out);
            self.calls.end(&key, out);
        }
    }

    fn on_chunk(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        if let Some(err) = v.get("error") {
            let p = parse_common_error(format!("{{\"error\":{err}}}").as_bytes());
            let status = err["code"].as_u64().and_then(|c| u16::try_from(c).ok());
            return Err(stream_error(
                p.message.unwrap_or_else(|| err.to_string()),
                p.code,
                status,
            ));
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: v["responseId"].as_str().map(str::to_owned),
                model: v["modelVersion"].as_str().map(str::to_owned),
            });
        }
        if let Some(reason) = v["promptFeedback"]["blockReason"].as_str() {
            self.finish = Some(reason.to_owned());
        }
        if let Some(cand) = v["candidates"].get(0) {
            for part in cand["content"]["parts"].as_array().into_iter().flatten() {
                if let Some(text) = part["text"].as_str()
                    && !text.is_empty()
                {
                    if part["thought"].as_bool() == Some(true) {
                        out.push(StreamEvent::ReasoningDelta {
                            text: text.to_owned(),
                        });
                    } else {
                        out.push(StreamEvent::TextDelta {
                            text: text.to_owned(),
                        });
                    }
                }
                if let Some(fc) = part.get("functionCall") {
                    let name = fc["name"].as_str();
                    let id = fc["id"].as_str();
                    if let Some(partials) = fc["partialArgs"].as_array() {
                        if let Some((_, args)) = &mut self.partial {
                            for pa in partials {
                                let path = pa["jsonPath"].as_str().unwrap_or("$");
                                if let Some(s) = pa["stringValue"].as_str() {
                                    set_path(args, path, json!(s), true);
                                } else if let Some(n) = pa.get("numberValue") {
                                    set_path(args, path, n.clone(), false);
                                } else if let Some(b) = pa.get("boolValue") {
                                    set_path(args, path, b.clone(), false);
                                } else if pa.get("nullValue").is_some() {
                                    set_path(args, path, Value::Null, false);
                                }
                            }
                        }
                    } else if fc["willContinue"].as_bool() == Some(true) && name.is_some() {
                        // Vertex streamed arguments: a call opens with its name, fragments follow.
                        self.close_partial(out);
                        self.count += 1;
                        let key = format!("c{}", self.count);
                        self.calls.start(&key, id, name, out);
                        self.partial = Some((key, Value::Object(Map::new())));
                    } else if name.is_none() && fc.as_object().is_some_and(Map::is_empty) {
                        // The empty terminal `{"functionCall":{}}`.
                        self.close_partial(out);
                    } else if name.is_some() {
                        self.close_partial(out);
                        self.count += 1;
                        let key = format!("c{}", self.count);
                        self.calls.start(&key, id, name, out);
                        let args = match fc.get("args") {
                            Some(Value::Null) | None => "{}".to_owned(),
                            Some(a) => a.to_string(),
                        };
                        self.calls.delta(&key, &args, out);
                        self.calls.end(&key, out);
                    }
                }
                if let Some(sig) = part["thoughtSignature"].as_str() {
                    out.push(StreamEvent::ReasoningSignature {
                        signature: sig.to_owned(),
                    });
                }
            }
            if let Some(r) = cand["finishReason"].as_str() {
                self.finish = Some(r.to_owned());
            }
        }
        if let Some(u) = usage_of(&v["usageMetadata"]) {
            self.usage = Some(u);
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        // A streamed (Vertex `partialArgs`) call is complete at its terminal part, when the
        // next call opens, or at the finish; a stream cut before any of those is an error.
        let Some(raw) = self.finish.take() else {
            return Err(self.calls.ended_early("a finishReason"));
        };
        self.close_partial(out);
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

/// The Gemini stream decoder (`alt=sse`; each event is a whole `GenerateContentResponse`).
#[derive(Default)]
pub struct GeminiDecoder {
    sse: SseDecoder,
    state: GeminiState,
    raw_events: bool,
}

impl StreamDecoder for GeminiDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let state = &mut self.state;
        let raw = self.raw_events;
        self.sse.feed(chunk, &mut |_name, data| {
            let v: Value = serde_json::from_str(data)
                .map_err(|e| ModelError::decode("", "", format!("bad stream chunk JSON: {e}")))?;
            if raw {
                out.push(StreamEvent::Raw {
                    event: None,
                    data: v.clone(),
                });
            }
            state.on_chunk(&v, out)
        })
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ModelError> {
        let state = &mut self.state;
        let raw = self.raw_events;
        self.sse.finish(&mut |_name, data| {
            let v: Value = serde_json::from_str(data)
                .map_err(|e| ModelError::decode("", "", format!("bad stream chunk JSON: {e}")))?;
            if raw {
                out.push(StreamEvent::Raw {
                    event: None,
                    data: v.clone(),
                });
            }
            state.on_chunk(&v, out)
        })?;
        state.end(out)
    }
}
