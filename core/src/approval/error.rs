//! Errors of approval operations.

use crate::error::{EngineError, SchemaViolation, StoreError};

/// An approval operation failed. [`ApprovalError::code`] gives a stable code for APIs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// No such gate.
    #[error("run `{run}` has no approval gate `{gate}`")]
    NotFound {
        /// Run id.
        run: String,
        /// Gate path.
        gate: String,
    },
    /// The user is not among the gate's approvers.
    #[error("`{who}` may not decide gate `{gate}` of run `{run}` (approvers: {approvers})")]
    Forbidden {
        /// The user.
        who: String,
        /// Run id.
        run: String,
        /// Gate path.
        gate: String,
        /// The gate's approvers, comma-separated.
        approvers: String,
    },
    /// The gate was already decided, or this user already voted.
    #[error("gate `{gate}` of run `{run}`: {reason}")]
    Conflict {
        /// Run id.
        run: String,
        /// Gate path.
        gate: String,
        /// Why (`already approved by alice at ...`, `bob already voted`).
        reason: String,
    },
    /// The decision is malformed or edited data violates the gate's schema.
    #[error(transparent)]
    Invalid(#[from] SchemaViolation),
    /// The decision itself is not acceptable (e.g. data given with a rejection).
    #[error("gate `{gate}` of run `{run}`: {reason}")]
    BadDecision {
        /// Run id.
        run: String,
        /// Gate path.
        gate: String,
        /// What is wrong.
        reason: String,
    },
    /// The engine's store does not keep approval gates.
    #[error("this engine's store does not keep approval gates (use SqliteStore or MemoryStore)")]
    Unsupported,
    /// Storage failed; nothing committed before is lost.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Handing the decision to the run failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ApprovalError {
    /// A stable code: `not-found`, `forbidden`, `conflict`, `validation`, `store`, `engine`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not-found",
            Self::Forbidden { .. } => "forbidden",
            Self::Conflict { .. } => "conflict",
            Self::Invalid(_) | Self::BadDecision { .. } => "validation",
            Self::Unsupported | Self::Store(_) => "store",
            Self::Engine(_) => "engine",
        }
    }
}
