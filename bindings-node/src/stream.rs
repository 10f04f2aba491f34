//! Native async work seen from JS: a task on napi's tokio runtime sends parts into a bounded
//! channel, and JS pulls them with `next()`, an async call that waits for the first part and
//! then takes every part already there. One native→JS hop carries a whole batch, so a fast
//! stream costs a hop per batch, not per delta.
//!
//! Errors travel as data (`NativeError`), not as thrown napi errors: a provider error carries
//! its provider, status and the provider's own message, which a napi error could only carry
//! inside its message text.

use std::future::Future;
use std::sync::Arc;

use miyabi::{AgentError, ModelError};
use napi_derive::napi;
use serde_json::Value;
use tokio::sync::mpsc;

/// Parts a stream may hold unread before its producer waits.
const CAPACITY: usize = 8192;
/// Most parts one `next()` returns.
const MAX_BATCH: usize = 65_536;

/// An error of native async work, as data; the facade turns it into its error class.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct NativeError {
    /// `PROVIDER`, `CONFIG`, `UNSUPPORTED`, `CANCELLED`, `INVALID_ARGUMENT`, `VALIDATION`,
    /// `MEMORY` or `ENGINE`.
    pub code: String,
    /// The whole message (for a provider error it includes the provider's own message).
    pub message: String,
    /// For `PROVIDER`: `auth`, `rate-limited`, `context-length`, `invalid-request`,
    /// `content-filtered`, `server`, `network`, `timeout` or `decode`.
    pub kind: Option<String>,
    /// Provider id (`openai`, `anthropic`, ...).
    pub provider: Option<String>,
    /// Model id.
    pub model: Option<String>,
    /// HTTP status, when there was a response.
    pub status: Option<u32>,
    /// The provider's own error message.
    pub provider_message: Option<String>,
    /// The provider's error type or code.
    pub provider_code: Option<String>,
    /// The provider's request id.
    pub request_id: Option<String>,
    /// How long the provider asked to wait, in milliseconds.
    pub retry_after_ms: Option<f64>,
    /// Whether the same call may succeed if tried again.
    pub retryable: bool,
}

impl NativeError {
    /// An error with `code`; Rust names in `message` are replaced by what JS users write
    /// (see [`crate::js_words`]).
    pub(crate) fn new(code: &str, message: impl ToString) -> Self {
        Self {
            code: code.to_owned(),
            message: crate::js_words(message.to_string()),
            ..Self::default()
        }
    }

    pub(crate) fn from_model(e: &ModelError) -> Self {
        let mut out = Self::new(e.code().as_str(), e);
        out.kind = match e {
            ModelError::Auth(_) => Some("auth"),
            ModelError::RateLimited { .. } => Some("rate-limited"),
            ModelError::ContextLength(_) => Some("context-length"),
            ModelError::InvalidRequest(_) => Some("invalid-request"),
            ModelError::ContentFiltered(_) => Some("content-filtered"),
            ModelError::Server(_) => Some("server"),
            ModelError::Network(_) => Some("network"),
            ModelError::Timeout { .. } => Some("timeout"),
            ModelError::Decode(_) => Some("decode"),
            _ => None,
        }
        .map(str::to_owned);
        if let Some(c) = e.context() {
            out.provider = Some(c.provider.clone()).filter(|s| !s.is_empty());
            out.model = Some(c.model.clone()).filter(|s| !s.is_empty());
            out.status = c.status.map(u32::from);
            out.provider_message = Some(c.message.clone());
            out.provider_code.clone_from(&c.code);
            out.request_id.clone_from(&c.request_id);
        }
        out.retry_after_ms = e.retry_after().map(|d| d.as_secs_f64() * 1000.0);
        out.retryable = e.is_retryable();
        out
    }

    pub(crate) fn from_agent(e: &AgentError) -> Self {
        let mut out = match e {
            AgentError::Model { source, .. } => {
                let mut n = Self::from_model(source);
                n.message = crate::js_words(e.to_string());
                return n;
            }
            _ => Self::new(e.code().as_str(), e),
        };
        out.retryable = e.is_retryable();
        out
    }
}

/// What a producer sends.
pub(crate) enum Item {
    Part(Value),
    Fail(NativeError),
}

/// The producer's end of a stream.
pub(crate) type Sink = mpsc::Sender<Item>;

/// Some parts, pulled at once.
#[napi(object)]
pub struct NativeBatch {
    /// The parts in order: a string is a text delta; anything else an object with a `type`.
    #[napi(ts_type = "Array<string | { type: string; [key: string]: unknown }>")]
    pub parts: Vec<Value>,
    /// The stream is over (after these parts).
    pub done: bool,
    /// The stream failed (after these parts).
    pub error: Option<NativeError>,
}

/// Parts produced by native async work (a model call, a stream, an agent generation, a native
/// workflow step), pulled from JS in batches with `next()`. Cancelled by `cancel()` or when it is
/// garbage-collected.
#[napi]
pub struct NativeStream {
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Item>>>,
    task: tokio::task::JoinHandle<()>,
}

impl NativeStream {
    /// Starts `produce` on napi's tokio runtime with the sending end of a new stream.
    pub(crate) fn spawn<F, Fut>(produce: F) -> Self
    where
        F: FnOnce(Sink) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let task = napi::bindgen_prelude::spawn(produce(tx));
        Self {
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            task,
        }
    }
}

#[napi]
impl NativeStream {
    /// Waits for the next part, then returns it with every part already available.
    #[napi]
    pub async fn next(&self) -> napi::Result<NativeBatch> {
        let rx = Arc::clone(&self.rx);
        let mut rx = rx.lock().await;
        let mut parts = Vec::new();
        let batch = |parts, done, error| NativeBatch { parts, done, error };
        match rx.recv().await {
            None => return Ok(batch(parts, true, None)),
            Some(Item::Fail(e)) => return Ok(batch(parts, true, Some(e))),
            Some(Item::Part(v)) => parts.push(v),
        }
        while parts.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Item::Part(v)) => parts.push(v),
                Ok(Item::Fail(e)) => return Ok(batch(parts, true, Some(e))),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    return Ok(batch(parts, true, None));
                }
            }
        }
        Ok(batch(parts, false, None))
    }

    /// Stops the work (an HTTP stream is closed); `next()` then reports the end.
    #[napi]
    pub fn cancel(&self) {
        self.task.abort();
    }
}

impl Drop for NativeStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
