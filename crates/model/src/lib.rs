//! The model layer: one object-safe [`LanguageModel`] trait, provider-neutral messages and
//! streaming events, a catalogue of every provider of models.dev and Mastra's registry behind
//! `"provider/model"` strings, native protocol adapters, and one HTTP layer with timeouts,
//! retries and typed errors.
//!
//! This is the crate `miyabi-model`; the crate `miyabi` re-exports it as `miyabi::model` (and
//! its most used items at its root: `miyabi::model(..)`, `miyabi::LanguageModel`, ...), which
//! is the path to write in an application. It depends on no other Miyabi crate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), miyabi_model::ModelError> {
//! use futures::StreamExt;
//! use miyabi_model::{LanguageModel, ModelRequest, StreamEvent};
//!
//! let m = miyabi_model::model("openai/gpt-4.1")?;
//! let mut events = m.stream(&ModelRequest::user("Say hi")).await?;
//! while let Some(ev) = events.next().await {
//!     if let StreamEvent::TextDelta { text } = ev? {
//!         print!("{text}");
//!     }
//! }
//! # Ok(()) }
//! ```

pub(crate) mod adapters;
mod auth;
#[cfg(feature = "bedrock")]
pub mod aws;
mod call;
pub mod catalog;
mod code;
pub(crate) mod decode;
mod embedding;
mod error;
mod fallback;
pub(crate) mod framing;
pub(crate) mod gcp;
pub(crate) mod http;
pub(crate) mod redact;
mod resolve;
mod types;

pub use call::{LanguageModel, Model, collect_stream};
pub use catalog::{Auth, Capabilities, Catalog, ModelInfo, Pricing, Protocol, ProviderInfo};
pub use code::ErrorCode;
pub use embedding::{
    Embedder, EmbeddingInput, EmbeddingModel, EmbeddingRequest, Embeddings, embedding,
};
pub use error::{ConfigError, ErrorContext, HeaderKind, ModelError, TimeoutKind};
pub use fallback::FallbackModel;
pub use gcp::ServiceAccount;
pub use http::{HttpClient, HttpOptions};
pub use resolve::{ModelBuilder, Resolved, model};
pub use types::{
    ApiKey, ContentPart, EventStream, FinishReason, MediaSource, Message, ModelRequest,
    ModelResponse, ReasoningConfig, ResponseFormat, Role, Sampling, StreamEvent, ToolCall,
    ToolChoice, ToolResult, ToolSpec, Usage,
};

/// The layer's internals, for the crate's own tests, its benchmarks and the fuzz targets in
/// `fuzz/` (protocol adapters and stream decoders driven directly, the framing decoders, the
/// retry-hint parsers), and for the other Miyabi crates (the agent loop's response collector;
/// the approval notifiers' error chains, retry hints and secret redaction, which use this
/// layer's own rules). Not part of the API: anything here may change or go without notice.
#[doc(hidden)]
pub mod internals {
    pub use super::adapters::bedrock::{EventMessage, EventStreamDecoder};
    pub use super::adapters::{Adapter, Target, adapter, decoder};
    pub use super::decode::{ResponseCollector, StreamDecoder, decode_all};
    pub use super::framing::{FramingError, NdjsonDecoder, SseDecoder};
    pub use super::gcp::CLOUD_PLATFORM_SCOPE;
    pub use super::http::{
        ParsedError, RETRY_AFTER_CAP, WireRequest, error_chain, parse_retry_after,
        parse_retry_after_ms, parse_retry_delay, retry_after,
    };
    pub use super::redact::Secrets;
}
