//! Shared pieces of the stream decoders: the decoder trait, the tool-call accumulator, finish
//! reason helpers and the collector that assembles events into a [`ModelResponse`].

use serde_json::Value;

use super::error::ModelError;
use super::framing::FramingError;
use super::types::{ContentPart, FinishReason, ModelResponse, StreamEvent, ToolCall, Usage};

impl From<FramingError> for ModelError {
    fn from(e: FramingError) -> Self {
        ModelError::decode("", "", e.0)
    }
}

/// A pure, incremental translator from a provider's streamed bytes to normalized events.
pub trait StreamDecoder: Send {
    /// Feeds the next chunk of the body, appending the events it completes to `out`.
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), ModelError>;
    /// The body ended. Emits what is still pending; an error if the stream ended before the
    /// provider said it was finished.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ModelError>;
}

/// Parses assembled tool arguments: empty means `{}`; text that is not JSON (free-form tools)
/// is kept as a JSON string.
pub fn parse_arguments(raw: &str) -> Value {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Value::Object(serde_json::Map::new());
    }
    match serde_json::from_str(trimmed) {
        Ok(Value::Null) => Value::Object(serde_json::Map::new()),
        Ok(v) => v,
        Err(_) => Value::String(raw.to_owned()),
    }
}

#[derive(Debug)]
struct PendingCall {
    key: String,
    id: String,
    name: String,
    args: String,
    ended: bool,
}

/// Assembles tool calls from fragments keyed by a provider-specific key (OpenAI `index`,
/// Anthropic block index, Responses item id...).
#[derive(Debug, Default)]
pub struct ToolCallAccumulator {
    calls: Vec<PendingCall>,
    generated: usize,
}

impl ToolCallAccumulator {
    /// A new, empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether any call was seen.
    pub fn any(&self) -> bool {
        !self.calls.is_empty()
    }

    /// The position of the call with this key.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.calls.iter().position(|c| c.key == key)
    }

    /// The key of the most recent call.
    pub fn last_key(&self) -> Option<&str> {
        self.calls.last().map(|c| c.key.as_str())
    }

    /// Starts a call (or, if `key` is known, fills in an id or name that was missing; empty
    /// re-sends never overwrite). Emits `ToolCallStart` for a new call.
    pub fn start(
        &mut self,
        key: &str,
        id: Option<&str>,
        name: Option<&str>,
        out: &mut Vec<StreamEvent>,
    ) -> usize {
        if let Some(i) = self.position(key) {
            let c = &mut self.calls[i];
            if let Some(id) = id.filter(|s| !s.is_empty())
                && c.id.is_empty()
            {
                c.id = id.to_owned();
            }
            if let Some(name) = name.filter(|s| !s.is_empty())
                && c.name.is_empty()
            {
                c.name = name.to_owned();
            }
            return i;
        }
        let id = match id.filter(|s| !s.is_empty()) {
            Some(id) => id.to_owned(),
            None => {
                self.generated += 1;
                format!("call_{}", self.generated)
            }
        };
        let index = self.calls.len();
        let name = name.unwrap_or("").to_owned();
        out.push(StreamEvent::ToolCallStart {
            index,
            id: id.clone(),
            name: name.clone(),
        });
        self.calls.push(PendingCall {
            key: key.to_owned(),
            id,
            name,
            args: String::new(),
            ended: false,
        });
        index
    }

    /// Appends an argument fragment.
    pub fn delta(&mut self, key: &str, fragment: &str, out: &mut Vec<StreamEvent>) {
        if fragment.is_empty() {
            return;
        }
        let index = match self.position(key) {
            Some(i) => i,
            None => self.start(key, None, None, out),
        };
        let call = &mut self.calls[index];
        if call.ended {
            return;
        }
        call.args.push_str(fragment);
        out.push(StreamEvent::ToolCallDelta {
            index,
            delta: fragment.to_owned(),
        });
    }

    /// Replaces the arguments with the complete text when no fragment was streamed (LM Studio
    /// sends arguments only in `.done` events).
    pub fn complete_if_empty(&mut self, key: &str, full: &str, out: &mut Vec<StreamEvent>) {
        if let Some(i) = self.position(key)
            && self.calls[i].args.is_empty()
            && !full.is_empty()
        {
            self.delta(key, full, out);
        }
    }

    /// Ends the call with this key, emitting `ToolCallEnd` with parsed arguments.
    pub fn end(&mut self, key: &str, out: &mut Vec<StreamEvent>) {
        if let Some(i) = self.position(key) {
            Self::end_at(&mut self.calls[i], i, out);
        }
    }

    fn end_at(call: &mut PendingCall, index: usize, out: &mut Vec<StreamEvent>) {
        if call.ended {
            return;
        }
        call.ended = true;
        out.push(StreamEvent::ToolCallEnd {
            index,
            call: ToolCall {
                id: call.id.clone(),
                name: call.name.clone(),
                arguments: parse_arguments(&call.args),
            },
        });
    }

    /// How many calls were started and not ended.
    pub fn open_count(&self) -> usize {
        self.calls.iter().filter(|c| !c.ended).count()
    }

    /// The error for a stream that ended before the provider finished (`missing` says what
    /// never came, e.g. "a finish reason"). Unfinished calls are not ended: their arguments
    /// may be cut anywhere, so no `ToolCallEnd` is emitted for them.
    pub fn ended_early(&self, missing: &str) -> ModelError {
        let open = self.open_count();
        let calls = match open {
            0 => String::new(),
            1 => "; 1 tool call was cut off before its arguments were complete".to_owned(),
            n => format!("; {n} tool calls were cut off before their arguments were complete"),
        };
        ModelError::decode(
            "",
            "",
            format!("stream ended early, without {missing}{calls}"),
        )
    }

    /// Ends every open call. Only for when the provider said the response (and so every call
    /// in it) is complete.
    pub fn end_all(&mut self, out: &mut Vec<StreamEvent>) {
        for (i, c) in self.calls.iter_mut().enumerate() {
            Self::end_at(c, i, out);
        }
    }
}

/// Normalizes a provider's finish reason.
pub fn map_finish(raw: &str) -> FinishReason {
    match raw {
        "stop" | "end_turn" | "stop_sequence" | "STOP" | "COMPLETE" | "STOP_SEQUENCE"
        | "completed" => FinishReason::Stop,
        "length"
        | "max_tokens"
        | "model_length"
        | "MAX_TOKENS"
        | "max_output_tokens"
        | "model_context_window_exceeded" => FinishReason::Length,
        "tool_calls" | "function_call" | "tool_use" | "TOOL_CALL" => FinishReason::ToolCalls,
        "content_filter"
        | "refusal"
        | "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "guardrail_intervened"
        | "content_filtered" => FinishReason::ContentFilter,
        "error" | "ERROR" | "TIMEOUT" | "MALFORMED_FUNCTION_CALL" => FinishReason::Error,
        _ => FinishReason::Other,
    }
}

/// Assembles a stream's events into a response, the same shape `generate` returns.
#[derive(Debug, Default)]
pub struct ResponseCollector {
    content: Vec<ContentPart>,
    calls: Vec<Option<ToolCall>>,
    usage: Usage,
    cost_usd: Option<f64>,
    finish: Option<(FinishReason, Option<String>)>,
    id: Option<String>,
    model: Option<String>,
}

impl ResponseCollector {
    /// A new collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event.
    pub fn push(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::Start { id, model } => {
                if id.is_some() {
                    self.id = id;
                }
                if model.is_some() {
                    self.model = model;
                }
            }
            StreamEvent::TextDelta { text } => match self.content.last_mut() {
                Some(ContentPart::Text { text: t }) => t.push_str(&text),
                _ => self.content.push(ContentPart::Text { text }),
            },
            StreamEvent::ReasoningDelta { text } => match self.content.last_mut() {
                Some(ContentPart::Reasoning {
                    text: t,
                    signature: None,
                }) => t.push_str(&text),
                _ => self.content.push(ContentPart::Reasoning {
                    text,
                    signature: None,
                }),
            },
            StreamEvent::ReasoningSignature { signature } => {
                let last_reasoning = self.content.iter_mut().rev().find_map(|p| match p {
                    ContentPart::Reasoning { signature: s, .. } => Some(s),
                    _ => None,
                });
                match last_reasoning {
                    Some(s) if s.is_none() => *s = Some(signature),
                    _ => self.content.push(ContentPart::Reasoning {
                        text: String::new(),
                        signature: Some(signature),
                    }),
                }
            }
            StreamEvent::ToolCallEnd { index, call } => {
                if self.calls.len() <= index {
                    self.calls.resize(index + 1, None);
                }
                self.calls[index] = Some(call.clone());
                self.content.push(ContentPart::ToolCall(call));
            }
            StreamEvent::Usage { usage } => self.usage = usage,
            StreamEvent::Cost { usd } => self.cost_usd = Some(usd),
            StreamEvent::Finish { reason, raw } => self.finish = Some((reason, raw)),
            StreamEvent::ToolCallStart { .. }
            | StreamEvent::ToolCallDelta { .. }
            | StreamEvent::Raw { .. } => {}
        }
    }

    /// Whether a finish event arrived.
    pub fn finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The assembled response.
    pub fn into_response(self) -> ModelResponse {
        let (finish_reason, raw_finish_reason) = self.finish.unwrap_or((FinishReason::Other, None));
        ModelResponse {
            content: self.content,
            finish_reason,
            raw_finish_reason,
            usage: self.usage,
            cost_usd: self.cost_usd,
            response_id: self.id,
            request_id: None,
            model: self.model,
        }
    }
}

/// Decodes a whole body held in memory (tests, benchmarks, recorded traffic).
pub fn decode_all(
    decoder: &mut dyn StreamDecoder,
    body: &[u8],
) -> Result<Vec<StreamEvent>, ModelError> {
    let mut out = Vec::new();
    decoder.feed(body, &mut out)?;
    decoder.finish(&mut out)?;
    Ok(out)
}

/// Name of the tool used to force structured output on providers without native JSON Schema
/// output. Its call is turned back into response text.
pub const STRUCTURED_OUTPUT_TOOL: &str = "json_response";

/// Turns the forced structured-output tool call back into text events.
#[derive(Debug, Default)]
pub struct StructuredToolUnwrap {
    index: Option<usize>,
}

impl StructuredToolUnwrap {
    /// Rewrites `events` in place.
    pub fn apply(&mut self, events: &mut Vec<StreamEvent>) {
        let mut i = 0;
        while i < events.len() {
            let replace = match &events[i] {
                StreamEvent::ToolCallStart { index, name, .. }
                    if name == STRUCTURED_OUTPUT_TOOL =>
                {
                    self.index = Some(*index);
                    Some(None)
                }
                StreamEvent::ToolCallDelta { index, delta } if Some(*index) == self.index => {
                    Some(Some(StreamEvent::TextDelta {
                        text: delta.clone(),
                    }))
                }
                StreamEvent::ToolCallEnd { index, .. } if Some(*index) == self.index => Some(None),
                StreamEvent::Finish {
                    reason: FinishReason::ToolCalls,
                    raw,
                } if self.index.is_some() => Some(Some(StreamEvent::Finish {
                    reason: FinishReason::Stop,
                    raw: raw.clone(),
                })),
                _ => None,
            };
            match replace {
                Some(Some(ev)) => {
                    events[i] = ev;
                    i += 1;
                }
                Some(None) => {
                    events.remove(i);
                }
                None => i += 1,
            }
        }
    }

    /// Rewrites a complete response.
    pub fn apply_response(response: &mut ModelResponse) {
        let mut changed = false;
        for part in &mut response.content {
            if let ContentPart::ToolCall(call) = part
                && call.name == STRUCTURED_OUTPUT_TOOL
            {
                let text = serde_json::to_string(&call.arguments).unwrap_or_default();
                *part = ContentPart::Text { text };
                changed = true;
            }
        }
        if changed && response.finish_reason == FinishReason::ToolCalls {
            response.finish_reason = FinishReason::Stop;
        }
    }
}
