//! Runs of workflows whose code runs outside Rust, started and resumed through the API.
//!
//! A workflow built with [`Node::external`](miyabi_engine::Node::external) (what the Node binding
//! builds for JS steps) cannot be driven by the engine's tokio driver: its steps live in
//! another runtime. A server that should start and resume such runs is given an
//! [`ExternalDriver`] ([`ServerConfig::external_driver`](super::ServerConfig::external_driver));
//! `engine.serve()` of `@miyabi/core` gives one that hands every request to the JS engine that
//! serves, which drives the run like one it started itself (and cancels it at once when the API
//! cancels it). Without a driver, the routes refuse to start or resume such runs with 409
//! before anything is written.

use async_trait::async_trait;
use serde_json::Value;

use super::ApiError;
use crate::{CommittedWorkflow, ErrorCode};

/// Starts, resumes and continues runs of workflows whose steps run outside Rust (graphs with
/// [`Node::external`](miyabi_engine::Node::external) nodes), on behalf of the HTTP API.
///
/// Each method does its checks and commits before it resolves (so that the API can answer
/// with the outcome), then drives the run in the background.
#[async_trait]
pub trait ExternalDriver: Send + Sync + 'static {
    /// Starts a run of `workflow` (the newest registered definition of its id) with `input`
    /// and drives it; resolves to the run id once the run is committed.
    async fn start(&self, workflow: CommittedWorkflow, input: Value)
    -> Result<String, DriverError>;

    /// Gives `data` to the suspended `path` of run `run_id` (with the checks of
    /// [`Engine::resume`](crate::Engine::resume)) and drives the run; resolves once the resume
    /// data is committed.
    async fn resume(&self, run_id: String, path: String, data: Value) -> Result<(), DriverError>;

    /// Hands the decided approval gate `gate` of run `run_id` to the run and drives it (see
    /// [`Approvals::resume_external`](crate::approval::Approvals::resume_external)); resolves
    /// once the decision is committed to the run, or at once when there is nothing to hand
    /// over.
    async fn deliver(&self, run_id: String, gate: String) -> Result<(), DriverError>;

    /// Retries the failed run `run_id` from its failed steps (with the checks of
    /// [`Engine::retry`](crate::Engine::retry)) and drives it; resolves once the reopening is
    /// committed. A driver that cannot retry answers `UNSUPPORTED` (the default).
    async fn retry(&self, run_id: String) -> Result<(), DriverError> {
        Err(DriverError::new(
            ErrorCode::Unsupported,
            format!(
                "run `{run_id}`: this server's driver of workflows with steps outside Rust cannot retry runs"
            ),
        ))
    }

    /// Cancels run `run_id`: a run this driver drives stops at once (its steps see their
    /// cancellation); any other run is cancelled through [`Engine::cancel`](crate::Engine::cancel).
    /// Resolves once the cancellation is committed.
    async fn cancel(&self, run_id: String) -> Result<(), DriverError>;
}

/// A request an [`ExternalDriver`] refused or could not carry out. Its code (the crate's
/// [`ErrorCode`], the same the engine's own errors carry) decides the API's status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DriverError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What went wrong (sent to the API client: no secrets).
    pub message: String,
}

impl DriverError {
    /// A failure with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<crate::EngineError> for DriverError {
    fn from(e: crate::EngineError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<DriverError> for ApiError {
    fn from(e: DriverError) -> Self {
        if e.code.http_status() >= 500 {
            tracing::error!(error = %e.message, code = e.code.as_str(), "external driver failed");
        }
        Self::of(e.code, e.message)
    }
}

/// The refusal of a server without a driver: 409, naming the workflow and why.
pub(crate) fn no_driver(workflow: &str, what: &str) -> ApiError {
    ApiError::of(
        crate::ErrorCode::Conflict,
        format!(
            "cannot {what}: workflow `{workflow}` has steps that run outside Rust (JavaScript steps \
             of @miyabi/core) and this server has no driver for them; use the server of the \
             process that defines them (`engine.serve()` of @miyabi/core)"
        ),
    )
}
