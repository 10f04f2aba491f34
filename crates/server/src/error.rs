//! Errors: the server's own ([`ServerError`]) and the API's JSON error body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::{EngineError, ErrorCode};

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
    /// The access configuration (an access file, `MIYABI_ROLES`, `MIYABI_SCOPES`, a JWT
    /// configuration or its JWKS) is wrong.
    #[error("access configuration ({place}): {reason}")]
    Access {
        /// Where: a file, a variable and entry, a setting.
        place: String,
        /// What is wrong (never a token).
        reason: String,
    },
    /// The same token is configured for two identities.
    #[error("the same token is configured for two identities, `{first}` and `{second}`")]
    DuplicateToken {
        /// One identity.
        first: String,
        /// The other.
        second: String,
    },
    /// The system's random generator failed.
    #[error("cannot generate a token: the system random generator failed")]
    Random,
    /// The server task ended abnormally.
    #[error("server task ended abnormally: {0}")]
    Task(String),
}

/// The message of an error response, kept in the response's extensions for the audit trail.
#[derive(Debug, Clone)]
pub(crate) struct ErrorNote(pub(crate) String);

/// An API error: an HTTP status, a stable code and a message, sent as
/// `{"error": {"code": "...", "message": "..."}}`. The code is the crate's [`ErrorCode`],
/// the same string the Node package and the CLI report.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    /// An error with `code`'s HTTP status.
    pub(crate) fn of(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.as_str(),
            message: message.into(),
        }
    }

    pub(crate) fn unauthorized() -> Self {
        Self::of(
            ErrorCode::Unauthorized,
            "a valid bearer token is required (Authorization: Bearer <token>)",
        )
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::Forbidden, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::NotFound, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::InvalidArgument, message)
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::of(ErrorCode::Validation, message)
    }

    pub(crate) fn too_large() -> Self {
        Self::of(
            ErrorCode::PayloadTooLarge,
            "the request body is larger than the server's limit",
        )
    }

    /// The error shape for a status produced outside the handlers (no route, wrong method,
    /// body limit).
    pub(crate) fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::not_found("no such route"),
            StatusCode::METHOD_NOT_ALLOWED => Self::of(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => Self::too_large(),
            StatusCode::UNAUTHORIZED => Self::unauthorized(),
            s if s.is_server_error() => Self {
                status: s,
                code: ErrorCode::Engine.as_str(),
                message: "internal server error".into(),
            },
            s => Self {
                status: s,
                code: ErrorCode::InvalidArgument.as_str(),
                message: s.canonical_reason().unwrap_or("bad request").into(),
            },
        }
    }

    /// An error of the engine or the approvals API, by its code; server-side failures are
    /// logged.
    fn from_coded(code: ErrorCode, message: String) -> Self {
        let e = Self::of(code, message);
        if e.status.is_server_error() {
            tracing::error!(error = %e.message, code = e.code, "internal error");
        }
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut r = (self.status, body.to_string()).into_response();
        // For the audit trail of the request (never holds a token).
        r.extensions_mut().insert(ErrorNote(self.message));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        Self::from_coded(e.code(), e.to_string())
    }
}

impl From<crate::approval::ApprovalError> for ApiError {
    fn from(e: crate::approval::ApprovalError) -> Self {
        Self::from_coded(e.code(), e.to_string())
    }
}

impl From<crate::StoreError> for ApiError {
    fn from(e: crate::StoreError) -> Self {
        EngineError::from(e).into()
    }
}
