//! Errors: the server's own ([`ServerError`]) and the API's JSON error body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::EngineError;

/// Starting or running the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
    /// `MIYABI_TOKENS` (or a token list given in its format) is malformed.
    #[error("MIYABI_TOKENS entry {entry}: {reason}")]
    Tokens {
        /// The entry's position, from 1.
        entry: usize,
        /// What is wrong (never the token itself).
        reason: String,
    },
    /// The system's random generator failed.
    #[error("cannot generate a token: the system random generator failed")]
    Random,
    /// The server task ended abnormally.
    #[error("server task ended abnormally: {0}")]
    Task(String),
}

/// An API error: an HTTP status, a stable code and a message, sent as
/// `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer <token>)",
        )
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", message)
    }

    pub(crate) fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "the request body is larger than the server's limit",
        )
    }

    /// The error shape for a status produced outside the handlers (no route, wrong method,
    /// body limit).
    pub(crate) fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::not_found("no such route"),
            StatusCode::METHOD_NOT_ALLOWED => Self::new(
                status,
                "method-not-allowed",
                "method not allowed on this route",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => Self::too_large(),
            StatusCode::UNAUTHORIZED => Self::unauthorized(),
            s if s.is_server_error() => Self::new(s, "internal", "internal server error"),
            s => Self::new(
                s,
                "bad-request",
                s.canonical_reason().unwrap_or("bad request"),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut r = (self.status, body.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::UnknownRun(_) | EngineError::UnknownWorkflow(_) => {
                Self::not_found(message)
            }
            EngineError::NotResumable { .. }
            | EngineError::Finished { .. }
            | EngineError::Contended { .. }
            | EngineError::GateNeedsDecision { .. }
            | EngineError::NotAGate { .. }
            | EngineError::DrivenOutsideRust { .. }
            | EngineError::NotSuspended { .. }
            | EngineError::Owned { .. }
            | EngineError::DefinitionChanged { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            EngineError::Schema(_) => Self::validation(message),
            _ => {
                tracing::error!(error = %message, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}

impl From<crate::approval::ApprovalError> for ApiError {
    fn from(e: crate::approval::ApprovalError) -> Self {
        use crate::approval::ApprovalError as A;
        match e {
            A::Engine(e) => e.into(),
            e => {
                let message = e.to_string();
                match e.code() {
                    "not-found" => Self::not_found(message),
                    "forbidden" => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
                    "conflict" => Self::new(StatusCode::CONFLICT, "conflict", message),
                    "validation" => Self::validation(message),
                    _ => {
                        tracing::error!(error = %message, "internal error");
                        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
                    }
                }
            }
        }
    }
}

impl From<crate::error::StoreError> for ApiError {
    fn from(e: crate::error::StoreError) -> Self {
        EngineError::from(e).into()
    }
}
