//! Errors of the model layer.

use std::fmt;
use std::time::Duration;

use super::redact::Secrets;

/// Where an error happened and what the provider said about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorContext {
    /// Provider id, e.g. `anthropic`.
    pub provider: String,
    /// Model id.
    pub model: String,
    /// HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The provider's own error message (or ours, when the provider gave none).
    pub message: String,
    /// The provider's error type or code, e.g. `rate_limit_error`, `context_length_exceeded`.
    pub code: Option<String>,
    /// The provider's request id, from a response header or the error body.
    pub request_id: Option<String>,
}

impl fmt::Display for ErrorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(code) = &self.code {
            write!(f, " [{code}]")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Establishing the TCP/TLS connection.
    Connect,
    /// Waiting for the response headers / first byte.
    FirstByte,
    /// Waiting between two chunks of a streamed body.
    Idle,
    /// The whole request.
    Total,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::FirstByte => "first byte",
            Self::Idle => "idle between chunks",
            Self::Total => "total",
        })
    }
}

/// An error from a model call. Every variant that reached a provider keeps the provider's own
/// message, the HTTP status and the request id; none contains an API key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The key was missing, wrong or lacks permission (401/403).
    #[error("authentication failed: {0}")]
    Auth(Box<ErrorContext>),
    /// Too many requests (429, or the provider's own throttling code).
    #[error("rate limited: {ctx}")]
    RateLimited {
        /// Details.
        ctx: Box<ErrorContext>,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The prompt is longer than the model's context window.
    #[error("context length exceeded: {0}")]
    ContextLength(Box<ErrorContext>),
    /// The request was rejected as invalid (400/404/422...).
    #[error("invalid request: {0}")]
    InvalidRequest(Box<ErrorContext>),
    /// A content filter blocked the prompt or the answer.
    #[error("content filtered: {0}")]
    ContentFiltered(Box<ErrorContext>),
    /// The provider failed (5xx, overloaded, or an in-stream server error).
    #[error("provider error: {0}")]
    Server(Box<ErrorContext>),
    /// The connection failed or broke.
    #[error("network error: {0}")]
    Network(Box<ErrorContext>),
    /// A timeout fired.
    #[error("{kind} timeout after {after:?}: {ctx}")]
    Timeout {
        /// Details.
        ctx: Box<ErrorContext>,
        /// Which timeout.
        kind: TimeoutKind,
        /// Its configured length.
        after: Duration,
    },
    /// The provider's response could not be understood (bad JSON, broken framing, a stream
    /// that ended without finishing).
    #[error("decode error: {0}")]
    Decode(Box<ErrorContext>),
    /// The model or provider is not configured correctly (unknown provider, missing key or
    /// base URL...). The message says exactly what to set.
    #[error("configuration error: {0}")]
    Config(String),
    /// The request asks for something this provider or adapter cannot do.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl ModelError {
    /// The error's stable code ([`crate::ErrorCode`]): `CONFIG`, `UNSUPPORTED`, or `PROVIDER`
    /// for everything the provider or the connection to it answered (a timeout included: the
    /// variant says which kind).
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            Self::Config(_) => crate::ErrorCode::Config,
            Self::Unsupported(_) => crate::ErrorCode::Unsupported,
            _ => crate::ErrorCode::Provider,
        }
    }

    /// Whether retrying the same request may succeed (rate limits, server errors, network
    /// failures, connect/first-byte timeouts).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Server(_) | Self::Network(_) => true,
            Self::Timeout { kind, .. } => {
                matches!(kind, TimeoutKind::Connect | TimeoutKind::FirstByte)
            }
            _ => false,
        }
    }

    /// The provider-side details, when the error came from a call.
    pub fn context(&self) -> Option<&ErrorContext> {
        match self {
            Self::Auth(c)
            | Self::ContextLength(c)
            | Self::InvalidRequest(c)
            | Self::ContentFiltered(c)
            | Self::Server(c)
            | Self::Network(c)
            | Self::Decode(c) => Some(c),
            Self::RateLimited { ctx, .. } | Self::Timeout { ctx, .. } => Some(ctx),
            Self::Config(_) | Self::Unsupported(_) => None,
        }
    }

    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        self.context().and_then(|c| c.status)
    }

    /// The retry-after the provider asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn decode(provider: &str, model: &str, message: impl Into<String>) -> Self {
        Self::Decode(Box::new(ErrorContext {
            provider: provider.to_owned(),
            model: model.to_owned(),
            message: message.into(),
            ..ErrorContext::default()
        }))
    }

    /// The error with every configured secret scrubbed from its texts (the provider's message
    /// and code, the request id, configuration messages).
    pub(crate) fn redacted(mut self, secrets: &Secrets) -> Self {
        if secrets.is_empty() {
            return self;
        }
        match &mut self {
            Self::Auth(c)
            | Self::ContextLength(c)
            | Self::InvalidRequest(c)
            | Self::ContentFiltered(c)
            | Self::Server(c)
            | Self::Network(c)
            | Self::Decode(c)
            | Self::RateLimited { ctx: c, .. }
            | Self::Timeout { ctx: c, .. } => {
                secrets.redact_in_place(&mut c.message);
                if let Some(code) = &mut c.code {
                    secrets.redact_in_place(code);
                }
                if let Some(id) = &mut c.request_id {
                    secrets.redact_in_place(id);
                }
            }
            Self::Config(m) | Self::Unsupported(m) => secrets.redact_in_place(m),
        }
        self
    }

    /// Fills in provider and model when a pure translator created the error without them.
    pub(crate) fn with_target(mut self, provider: &str, model: &str) -> Self {
        let ctx = match &mut self {
            Self::Auth(c)
            | Self::ContextLength(c)
            | Self::InvalidRequest(c)
            | Self::ContentFiltered(c)
            | Self::Server(c)
            | Self::Network(c)
            | Self::Decode(c) => Some(c),
            Self::RateLimited { ctx, .. } | Self::Timeout { ctx, .. } => Some(ctx),
            Self::Config(_) | Self::Unsupported(_) => None,
        };
        if let Some(c) = ctx {
            if c.provider.is_empty() {
                c.provider = provider.to_owned();
            }
            if c.model.is_empty() {
                c.model = model.to_owned();
            }
        }
        self
    }
}

/// Classifies a provider error from its HTTP status and its own type/code/message.
pub(crate) fn classify(ctx: ErrorContext, retry_after: Option<Duration>) -> ModelError {
    let code = ctx.code.as_deref().unwrap_or("").to_ascii_lowercase();
    let msg = ctx.message.to_ascii_lowercase();
    let ctx = Box::new(ctx);
    let context_length = code.contains("context_length")
        || code.contains("context_window")
        || msg.contains("context length")
        || msg.contains("context window")
        || msg.contains("maximum context")
        || msg.contains("prompt is too long")
        || msg.contains("too many tokens");
    let filtered =
        code.contains("content_filter") || code.contains("content_policy") || code == "safety";
    match ctx.status {
        Some(401) | Some(403) => ModelError::Auth(ctx),
        Some(429) => ModelError::RateLimited { ctx, retry_after },
        Some(408) => ModelError::Server(ctx),
        Some(s) if s >= 500 => ModelError::Server(ctx),
        _ if code.contains("rate_limit")
            || code.contains("throttl")
            || code == "resource_exhausted" =>
        {
            ModelError::RateLimited { ctx, retry_after }
        }
        _ if code.contains("overloaded")
            || code.contains("server_error")
            || code.contains("api_error")
            || code.contains("internal") =>
        {
            ModelError::Server(ctx)
        }
        _ if context_length => ModelError::ContextLength(ctx),
        _ if filtered => ModelError::ContentFiltered(ctx),
        _ if code.contains("authentication")
            || code.contains("permission")
            || code.contains("invalid_api_key") =>
        {
            ModelError::Auth(ctx)
        }
        _ => ModelError::InvalidRequest(ctx),
    }
}
