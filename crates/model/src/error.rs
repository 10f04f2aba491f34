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
    /// base URL...). The [`ConfigError`] says exactly what to set.
    #[error("configuration error: {0}")]
    Config(ConfigError),
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

    /// A [`ModelError::Decode`]: the response could not be read. Public (and hidden) only for
    /// the agent loop in the crate `miyabi`, which reports a stream that ended without a finish
    /// event this way; not part of the API.
    #[doc(hidden)]
    pub fn decode(provider: &str, model: &str, message: impl Into<String>) -> Self {
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
            Self::Config(c) => c.redact(secrets),
            Self::Unsupported(m) => secrets.redact_in_place(m),
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

impl From<ConfigError> for ModelError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

/// Which header a [`ConfigError::BadHeaderName`] or [`ConfigError::BadHeaderValue`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderKind {
    /// The header that carries the API key ([`Auth::Header`](super::Auth::Header)).
    Auth,
    /// A header added with [`ModelBuilder::header`](super::ModelBuilder::header).
    Custom,
    /// A header produced by AWS SigV4 signing.
    Signed,
}

impl fmt::Display for HeaderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auth => "auth header",
            Self::Custom => "header",
            Self::Signed => "signed header",
        })
    }
}

/// What is wrong with a model's configuration ([`ModelError::Config`]). Each message says what
/// to set and where; none contains a secret (the key, a header's value, a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The model spec is not `"provider/model"` (no `/`, or an empty provider or model id).
    #[error("model spec {spec:?} must be \"provider/model\"")]
    BadSpec {
        /// The spec as given.
        spec: String,
    },
    /// The catalogue has no such provider.
    #[error(
        "unknown provider {provider:?} (the catalogue has {known} providers{}); for another endpoint use ModelBuilder::custom",
        similar_list(similar)
    )]
    UnknownProvider {
        /// The provider id as given.
        provider: String,
        /// How many providers the catalogue has.
        known: usize,
        /// Catalogue ids that contain the given one or are contained in it (at most five).
        similar: Vec<String>,
    },
    /// The provider has no base URL in the catalogue and none was given.
    #[error(
        "provider {provider:?} has no known base URL{}: set {env_var} or use ModelBuilder::base_url",
        note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
    )]
    MissingBaseUrl {
        /// The provider id.
        provider: String,
        /// The variable that sets it, e.g. `GITLAB_BASE_URL`.
        env_var: String,
        /// The catalogue's note on how the provider is reached, when it has one.
        note: Option<String>,
    },
    /// The provider's base URL has placeholders filled from environment variables that are
    /// not set.
    #[error(
        "provider {provider:?} needs {} set for its base URL {template} (or set {env_var} / ModelBuilder::base_url)",
        missing.join(" and ")
    )]
    BaseUrlNeedsEnv {
        /// The provider id.
        provider: String,
        /// The unset variables, e.g. `AZURE_RESOURCE_NAME`.
        missing: Vec<String>,
        /// The base URL template, with its secret parts redacted.
        template: String,
        /// The variable that sets the whole base URL instead.
        env_var: String,
    },
    /// The base URL is not an `http://` or `https://` URL.
    #[error("provider {provider:?}: base URL {url:?} is not http(s)")]
    BadBaseUrl {
        /// The provider id.
        provider: String,
        /// The base URL, with its secret parts redacted.
        url: String,
    },
    /// No API key was given and none of the provider's variables is set.
    #[error("no API key for provider {provider:?}: {}, or pass ModelBuilder::api_key", key_sources(env_vars, *sigv4, *service_account))]
    MissingKey {
        /// The provider id.
        provider: String,
        /// The variables any of which holds the key (empty when none is known).
        env_vars: Vec<String>,
        /// AWS access keys (SigV4 signing) would do instead.
        sigv4: bool,
        /// A Google service-account key file would do instead.
        service_account: bool,
    },
    /// SigV4 signing was asked for but no AWS access keys are available.
    #[error(
        "{spec}: SigV4 signing needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or ModelBuilder::aws_credentials)"
    )]
    MissingAwsCredentials {
        /// The model spec.
        spec: String,
    },
    /// SigV4 signing needs a region and none was found.
    #[error("{spec}: SigV4 signing needs a region: set AWS_REGION")]
    MissingAwsRegion {
        /// The model spec.
        spec: String,
    },
    /// SigV4 signing was asked for in a build without the `bedrock` feature.
    #[error("{spec}: SigV4 signing needs miyabi built with the `bedrock` feature")]
    SigV4Unavailable {
        /// The model spec.
        spec: String,
    },
    /// A request could not be signed with AWS SigV4.
    #[error("cannot sign the request: {reason}")]
    AwsSigning {
        /// Why, with the signer's own message.
        reason: String,
    },
    /// A Google service-account key cannot be used (unreadable file, not a service-account
    /// key, a private key that is not RSA...).
    #[error("service-account credentials: {reason}")]
    GoogleCredentials {
        /// Why, with the underlying error's message.
        reason: String,
    },
    /// The API key cannot be sent in a header.
    #[error("the API key for {provider} contains characters not allowed in a header")]
    KeyNotHeaderSafe {
        /// The provider id.
        provider: String,
    },
    /// A fetched access token cannot be sent in a header.
    #[error("the access token contains characters not allowed in a header")]
    TokenNotHeaderSafe,
    /// A header name is not a valid HTTP header name.
    #[error("bad {kind} name {name:?}")]
    BadHeaderName {
        /// The name as given.
        name: String,
        /// Which header.
        kind: HeaderKind,
    },
    /// A header value is not a valid HTTP header value (the value is not shown: it may be a
    /// credential).
    #[error("bad value for {kind} {name:?}")]
    BadHeaderValue {
        /// The header's name.
        name: String,
        /// Which header.
        kind: HeaderKind,
    },
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client: {reason}")]
    HttpClient {
        /// The HTTP library's message.
        reason: String,
    },
    /// The HTTP library refused to build a request for this model (a URL it cannot use...).
    #[error("{provider}/{model}: bad request: {reason}")]
    BadRequest {
        /// The provider id.
        provider: String,
        /// The model id.
        model: String,
        /// The HTTP library's message.
        reason: String,
    },
    /// A [`FallbackModel`](super::FallbackModel) with no models was called.
    #[error("empty fallback chain")]
    EmptyFallbackChain,
}

fn similar_list(similar: &[String]) -> String {
    if similar.is_empty() {
        String::new()
    } else {
        format!(", similar: {}", similar.join(", "))
    }
}

fn key_sources(env_vars: &[String], sigv4: bool, service_account: bool) -> String {
    let mut out = if env_vars.is_empty() {
        "no key variable is known".to_owned()
    } else {
        format!("set {}", env_vars.join(" or "))
    };
    if sigv4 {
        out.push_str(", or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (SigV4)");
    }
    if service_account {
        out.push_str(", or GOOGLE_APPLICATION_CREDENTIALS to a service-account key file");
    }
    out
}

impl ConfigError {
    /// Scrubs every configured secret from the error's texts (all of them: a spec, a header
    /// name or a provider id given by mistake may hold one too).
    fn redact(&mut self, secrets: &Secrets) {
        let mut fields: Vec<&mut String> = Vec::new();
        match self {
            Self::BadSpec { spec }
            | Self::MissingAwsCredentials { spec }
            | Self::MissingAwsRegion { spec }
            | Self::SigV4Unavailable { spec } => fields.push(spec),
            Self::AwsSigning { reason }
            | Self::GoogleCredentials { reason }
            | Self::HttpClient { reason } => fields.push(reason),
            Self::BadHeaderName { name, .. } | Self::BadHeaderValue { name, .. } => {
                fields.push(name)
            }
            Self::UnknownProvider {
                provider, similar, ..
            } => {
                fields.push(provider);
                fields.extend(similar.iter_mut());
            }
            Self::MissingBaseUrl {
                provider,
                env_var,
                note,
            } => {
                fields.extend([provider, env_var]);
                fields.extend(note.as_mut());
            }
            Self::BaseUrlNeedsEnv {
                provider,
                missing,
                template,
                env_var,
            } => {
                fields.extend([provider, template, env_var]);
                fields.extend(missing.iter_mut());
            }
            Self::BadBaseUrl { provider, url } => fields.extend([provider, url]),
            Self::MissingKey {
                provider, env_vars, ..
            } => {
                fields.push(provider);
                fields.extend(env_vars.iter_mut());
            }
            Self::KeyNotHeaderSafe { provider } => fields.push(provider),
            Self::BadRequest {
                provider,
                model,
                reason,
            } => fields.extend([provider, model, reason]),
            Self::TokenNotHeaderSafe | Self::EmptyFallbackChain => {}
        }
        for f in fields {
            secrets.redact_in_place(f);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-live-0123456789abcdefghij";

    /// Configuration errors raised during a call (a request the HTTP library refuses, unusable
    /// credentials) go through the same scrubbing as provider errors, in every text field.
    #[test]
    fn config_errors_are_scrubbed_in_every_field() {
        let secrets = Secrets::new([KEY]);
        let with_key = format!("for url http://h/v1?key={KEY}");
        let errors = [
            ConfigError::BadRequest {
                provider: "openai".into(),
                model: "gpt-4.1".into(),
                reason: with_key.clone(),
            },
            ConfigError::GoogleCredentials {
                reason: with_key.clone(),
            },
            ConfigError::AwsSigning {
                reason: with_key.clone(),
            },
            ConfigError::BadSpec {
                spec: format!("{KEY}/x"),
            },
            ConfigError::BadHeaderName {
                name: KEY.into(),
                kind: HeaderKind::Custom,
            },
            ConfigError::BaseUrlNeedsEnv {
                provider: "p".into(),
                missing: vec![KEY.into()],
                template: with_key.clone(),
                env_var: "P_BASE_URL".into(),
            },
        ];
        for e in errors {
            let before = ModelError::Config(e.clone());
            assert!(before.to_string().contains(KEY), "{before}");
            let after = before.redacted(&secrets);
            let shown = format!("{after} {after:?}");
            assert!(!shown.contains(KEY), "{shown}");
            assert!(shown.contains("[REDACTED"), "{shown}");
            assert_eq!(after.code(), crate::ErrorCode::Config);
        }
    }
}
