//! The model layer: one object-safe [`LanguageModel`] trait, provider-neutral messages and
//! streaming events, a catalogue of every provider of models.dev and Mastra's registry behind
//! `"provider/model"` strings, native protocol adapters, and one HTTP layer with timeouts,
//! retries and typed errors.
//!
//! ```no_run
//! # async fn demo() -> Result<(), miyabi::model::ModelError> {
//! use futures::StreamExt;
//! use miyabi::model::{LanguageModel, ModelRequest, StreamEvent};
//!
//! let m = miyabi::model("openai/gpt-4.1")?;
//! let mut events = m.stream(&ModelRequest::user("Say hi")).await?;
//! while let Some(ev) = events.next().await {
//!     if let StreamEvent::TextDelta { text } = ev? {
//!         print!("{text}");
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod adapters;
mod auth;
#[cfg(feature = "bedrock")]
pub mod aws;
mod call;
pub mod catalog;
pub mod decode;
mod embedding;
mod error;
mod fallback;
pub mod framing;
pub mod gcp;
pub mod http;
pub(crate) mod redact;
mod resolve;
mod types;

pub use call::{LanguageModel, Model, collect_stream};
pub use catalog::{Auth, Capabilities, Catalog, ModelInfo, Pricing, Protocol, ProviderInfo};
pub use decode::StreamDecoder;
pub use embedding::{
    Embedder, EmbeddingInput, EmbeddingModel, EmbeddingRequest, Embeddings, embedding,
};
pub use error::{ConfigError, ErrorContext, HeaderKind, ModelError, TimeoutKind};
pub use fallback::FallbackModel;
pub use gcp::ServiceAccount;
pub use http::{HttpClient, HttpOptions, WireRequest};
pub use resolve::{ModelBuilder, Resolved, model};
pub use types::{
    ApiKey, ContentPart, EventStream, FinishReason, MediaSource, Message, ModelRequest,
    ModelResponse, ReasoningConfig, ResponseFormat, Role, Sampling, StreamEvent, ToolCall,
    ToolChoice, ToolResult, ToolSpec, Usage,
};
