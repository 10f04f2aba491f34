//! [`ErrorCode`]: the one table of error codes. It lives in this crate, the lowest of Miyabi's
//! crates, because [`ModelError::code`](crate::ModelError::code) returns it; the engine, the
//! agents, the server and the bindings use this same type (`miyabi::ErrorCode`).

use std::fmt;

/// The stable code of every error Miyabi reports, the same on every surface: `code()` of each
/// error type, the `code` of errors thrown in Node (`MiyabiError.code`), the HTTP API's
/// `{"error": {"code": ...}}` with [`ErrorCode::http_status`], and the CLI's messages.
///
/// Codes are `SCREAMING_SNAKE_CASE` strings ([`ErrorCode::as_str`]).
///
/// ```
/// use miyabi_model::ErrorCode;
/// let e = miyabi_model::model("no-such-provider/some-model").err().expect("an unknown provider");
/// assert_eq!(e.code(), ErrorCode::Config);
/// assert_eq!(e.code().as_str(), "CONFIG");
/// assert_eq!(ErrorCode::NotFound.http_status(), 404);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// A value violates its schema, or a decision or argument is malformed.
    Validation,
    /// A bad argument (an option out of range, a value that cannot cross the binding).
    InvalidArgument,
    /// No run, gate or workflow run by that id.
    NotFound,
    /// The caller may not do this (not an approver of the gate).
    Forbidden,
    /// The run or gate is in a state that does not allow the operation.
    Conflict,
    /// The path given is not suspended in the run.
    NotSuspended,
    /// The workflow definition is invalid.
    InvalidWorkflow,
    /// The workflow is not registered with this engine.
    UnknownWorkflow,
    /// The run was started under another definition of its workflow.
    DefinitionChanged,
    /// Replaying the run's records diverged from its definition.
    ReplayDiverged,
    /// Storage failed (nothing committed before is lost).
    Store,
    /// The engine is shutting down.
    Shutdown,
    /// The operation was cancelled.
    Cancelled,
    /// The operation timed out.
    Timeout,
    /// A model provider answered with an error.
    Provider,
    /// Configuration is missing or wrong (an API key, a model id, a base URL).
    Config,
    /// The provider or store does not support this.
    Unsupported,
    /// Agent memory failed.
    Memory,
    /// Anything else inside the engine (an invariant, an aborted task).
    Engine,
    /// HTTP: no bearer token, or an unknown one.
    Unauthorized,
    /// HTTP: the route exists, the method does not.
    MethodNotAllowed,
    /// HTTP: the request body is over the server's limit.
    PayloadTooLarge,
}

impl ErrorCode {
    /// The code as sent on the wire: `NOT_FOUND`, `VALIDATION`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validation => "VALIDATION",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::NotFound => "NOT_FOUND",
            Self::Forbidden => "FORBIDDEN",
            Self::Conflict => "CONFLICT",
            Self::NotSuspended => "NOT_SUSPENDED",
            Self::InvalidWorkflow => "INVALID_WORKFLOW",
            Self::UnknownWorkflow => "UNKNOWN_WORKFLOW",
            Self::DefinitionChanged => "DEFINITION_CHANGED",
            Self::ReplayDiverged => "REPLAY_DIVERGED",
            Self::Store => "STORE",
            Self::Shutdown => "SHUTDOWN",
            Self::Cancelled => "CANCELLED",
            Self::Timeout => "TIMEOUT",
            Self::Provider => "PROVIDER",
            Self::Config => "CONFIG",
            Self::Unsupported => "UNSUPPORTED",
            Self::Memory => "MEMORY",
            Self::Engine => "ENGINE",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
        }
    }

    /// The HTTP status the API answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Validation => 422,
            Self::InvalidArgument | Self::InvalidWorkflow => 400,
            Self::NotFound | Self::UnknownWorkflow => 404,
            Self::Forbidden => 403,
            Self::Unauthorized => 401,
            Self::MethodNotAllowed => 405,
            Self::PayloadTooLarge => 413,
            Self::Conflict | Self::NotSuspended | Self::DefinitionChanged => 409,
            Self::Cancelled => 499,
            Self::Timeout => 504,
            Self::Provider => 502,
            Self::Unsupported => 501,
            Self::Shutdown => 503,
            Self::ReplayDiverged | Self::Store | Self::Config | Self::Memory | Self::Engine => 500,
        }
    }

    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 22] = [
        Self::Validation,
        Self::InvalidArgument,
        Self::NotFound,
        Self::Forbidden,
        Self::Conflict,
        Self::NotSuspended,
        Self::InvalidWorkflow,
        Self::UnknownWorkflow,
        Self::DefinitionChanged,
        Self::ReplayDiverged,
        Self::Store,
        Self::Shutdown,
        Self::Cancelled,
        Self::Timeout,
        Self::Provider,
        Self::Config,
        Self::Unsupported,
        Self::Memory,
        Self::Engine,
        Self::Unauthorized,
        Self::MethodNotAllowed,
        Self::PayloadTooLarge,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
