//! Provider-neutral request, response and streaming types.

use std::fmt;
use std::pin::Pin;

use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ModelError;

/// A secret (API key or token). Its `Debug` and `Display` print `[redacted]`, so it can sit in
/// structs that are logged or traced without leaking.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself. Only the HTTP layer should call this, to build a header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<&str> for ApiKey {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for ApiKey {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// Results of tool calls.
    Tool,
}

/// Where the bytes of an image or file come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum MediaSource {
    /// A URL the provider fetches itself (or a `data:` URL).
    Url {
        /// The URL.
        url: String,
    },
    /// Inline bytes, sent base64-encoded.
    Bytes {
        /// The raw bytes.
        #[serde(with = "base64_bytes")]
        data: Vec<u8>,
    },
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ContentPart {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    Image {
        /// Where the image is.
        source: MediaSource,
        /// Its media type, e.g. `image/png` (needed for inline bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_type: Option<String>,
    },
    /// A file such as a PDF.
    File {
        /// Where the file is.
        source: MediaSource,
        /// Its media type, e.g. `application/pdf`.
        media_type: String,
        /// An optional file name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
    },
    /// Model reasoning from an earlier turn, sent back unchanged (Anthropic thinking blocks need
    /// their signature echoed).
    Reasoning {
        /// The reasoning text.
        text: String,
        /// The provider's signature or encrypted content, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// A tool call made by the assistant.
    ToolCall(ToolCall),
    /// The result of a tool call, sent by the caller.
    ToolResult(ToolResult),
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }
}

/// A tool call: the model asks to run `name` with `arguments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call id (generated when the provider sends none).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// Parsed arguments (a JSON object for function tools; a JSON string for free-form tools).
    pub arguments: Value,
}

/// The result of running a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The id of the call this answers.
    pub call_id: String,
    /// The tool's name (some providers, e.g. Gemini and Ollama, key results by name).
    pub name: String,
    /// The result; strings are sent as text, other values as JSON.
    pub content: Value,
    /// Whether the tool failed.
    #[serde(default)]
    pub is_error: bool,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: Vec<ContentPart>,
}

impl Message {
    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: vec![ContentPart::text(text)],
        }
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: vec![ContentPart::text(text)],
        }
    }

    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: vec![ContentPart::text(text)],
        }
    }

    /// A tool-results message.
    pub fn tool_results(results: Vec<ToolResult>) -> Self {
        Self {
            role: Role::Tool,
            content: results.into_iter().map(ContentPart::ToolResult).collect(),
        }
    }

    /// The concatenated text parts.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            if let ContentPart::Text { text } = part {
                out.push_str(text);
            }
        }
        out
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The tool's name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments (an object schema).
    pub parameters: Value,
}

impl ToolSpec {
    /// A tool with a name, a description and an argument schema.
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        Self {
            name: name.into(),
            description: Some(description.into()),
            parameters,
        }
    }
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "name")]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This tool.
    Tool(String),
}

/// A JSON Schema the response must follow (structured output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFormat {
    /// A name for the schema (providers require one).
    pub name: String,
    /// The JSON Schema.
    pub schema: Value,
    /// Ask for strict schema adherence where the provider supports it.
    #[serde(default = "default_true")]
    pub strict: bool,
}

fn default_true() -> bool {
    true
}

/// Sampling and length settings; unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Maximum output tokens.
    pub max_tokens: Option<u32>,
    /// Temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (Anthropic, Gemini, Cohere, Ollama).
    pub top_k: Option<u32>,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Seed, where supported.
    pub seed: Option<u64>,
    /// Presence penalty (OpenAI-compatible).
    pub presence_penalty: Option<f64>,
    /// Frequency penalty (OpenAI-compatible).
    pub frequency_penalty: Option<f64>,
}

/// Reasoning ("thinking") settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasoningConfig {
    /// Effort level for OpenAI-style reasoning (`low`, `medium`, `high`, ...).
    pub effort: Option<String>,
    /// Token budget for Anthropic/Gemini/Bedrock-style thinking.
    pub budget_tokens: Option<u32>,
}

/// A provider-neutral model request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelRequest {
    /// The conversation. System messages may appear anywhere; adapters hoist them where the
    /// provider needs them at the top.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    /// Tool choice; ignored without tools.
    #[serde(default)]
    pub tool_choice: ToolChoice,
    /// Structured output: the response text must be JSON following this schema.
    pub response_format: Option<ResponseFormat>,
    /// Sampling settings.
    #[serde(default)]
    pub sampling: Sampling,
    /// Reasoning settings.
    pub reasoning: Option<ReasoningConfig>,
    /// Provider-specific fields merged into the request body last (they win).
    pub provider_options: Option<Value>,
    /// Emit a [`StreamEvent::Raw`] with every decoded provider event.
    #[serde(default)]
    pub include_raw_events: bool,
}

impl ModelRequest {
    /// A request with a single user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            messages: vec![Message::user(text)],
            ..Self::default()
        }
    }

    /// Adds a system message at the front.
    pub fn with_system(mut self, text: impl Into<String>) -> Self {
        self.messages.insert(0, Message::system(text));
        self
    }

    /// Adds a tool.
    pub fn with_tool(mut self, tool: ToolSpec) -> Self {
        self.tools.push(tool);
        self
    }

    /// Sets the maximum output tokens.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.sampling.max_tokens = Some(max_tokens);
        self
    }
}

/// Why generation stopped, normalized across providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// The output token limit.
    Length,
    /// The model asked for tool calls.
    ToolCalls,
    /// A content filter or refusal.
    ContentFilter,
    /// The provider reported an error.
    Error,
    /// Anything else.
    Other,
}

/// Token usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input (prompt) tokens, including cached ones.
    pub input_tokens: u64,
    /// Output tokens, including reasoning tokens.
    pub output_tokens: u64,
    /// Input tokens read from the provider's cache.
    pub cached_input_tokens: u64,
    /// Input tokens written to the provider's cache (Anthropic, Bedrock).
    pub cache_write_tokens: u64,
    /// Reasoning tokens, where reported.
    pub reasoning_tokens: u64,
}

/// A complete (non-streamed, or assembled) model response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResponse {
    /// The assistant's content: text, reasoning and tool calls, in order.
    pub content: Vec<ContentPart>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// The provider's raw finish reason, e.g. `end_turn`, `TOOL_CALL`.
    pub raw_finish_reason: Option<String>,
    /// Token usage.
    pub usage: Usage,
    /// Cost in USD from the catalogue's prices, when known.
    pub cost_usd: Option<f64>,
    /// The provider's response id.
    pub response_id: Option<String>,
    /// The provider's request id (from a response header).
    pub request_id: Option<String>,
    /// The model that answered, as reported by the provider.
    pub model: Option<String>,
}

impl ModelResponse {
    /// All text parts concatenated.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            if let ContentPart::Text { text } = part {
                out.push_str(text);
            }
        }
        out
    }

    /// All reasoning text concatenated.
    pub fn reasoning(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            if let ContentPart::Reasoning { text, .. } = part {
                out.push_str(text);
            }
        }
        out
    }

    /// The tool calls, in order.
    pub fn tool_calls(&self) -> Vec<&ToolCall> {
        self.content
            .iter()
            .filter_map(|p| {
                if let ContentPart::ToolCall(c) = p {
                    Some(c)
                } else {
                    None
                }
            })
            .collect()
    }

    /// The response text parsed as JSON (for structured output).
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.text())
    }

    /// The assistant message to append to the conversation for the next turn.
    pub fn to_message(&self) -> Message {
        Message {
            role: Role::Assistant,
            content: self.content.clone(),
        }
    }
}

/// A normalized streaming event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum StreamEvent {
    /// The response started.
    Start {
        /// The provider's response id.
        id: Option<String>,
        /// The model as reported.
        model: Option<String>,
    },
    /// A piece of answer text.
    TextDelta {
        /// The text.
        text: String,
    },
    /// A piece of reasoning text.
    ReasoningDelta {
        /// The text.
        text: String,
    },
    /// A reasoning signature (or encrypted reasoning) to send back on the next turn.
    ReasoningSignature {
        /// The signature.
        signature: String,
    },
    /// A tool call begins.
    ToolCallStart {
        /// Position of the call in this response (0, 1, ...).
        index: usize,
        /// The call id.
        id: String,
        /// The tool's name.
        name: String,
    },
    /// A fragment of a tool call's argument JSON.
    ToolCallDelta {
        /// Position of the call in this response.
        index: usize,
        /// The fragment.
        delta: String,
    },
    /// A tool call is complete; its arguments are assembled and parsed.
    ToolCallEnd {
        /// Position of the call in this response.
        index: usize,
        /// The complete call.
        call: ToolCall,
    },
    /// Token usage so far (the last one wins).
    Usage {
        /// The usage.
        usage: Usage,
    },
    /// The cost in USD of the usage so far, from the catalogue's prices: a [`Model`](super::Model)
    /// whose prices are known sends one after each [`StreamEvent::Usage`] (the last one wins), so
    /// [`collect_stream`](super::collect_stream) reports the same `cost_usd` as `generate`.
    Cost {
        /// The cost in USD.
        usd: f64,
    },
    /// Generation finished.
    Finish {
        /// Normalized reason.
        reason: FinishReason,
        /// The provider's own value.
        raw: Option<String>,
    },
    /// A decoded provider event, when [`ModelRequest::include_raw_events`] is set.
    Raw {
        /// The SSE event name, if any.
        event: Option<String>,
        /// The payload.
        data: Value,
    },
}

/// A stream of normalized events; it ends after [`StreamEvent::Finish`] or with an error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ModelError>> + Send>>;
