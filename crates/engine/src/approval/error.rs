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
    /// The error's stable code ([`crate::ErrorCode`]); a store or engine failure keeps its own.
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            Self::NotFound { .. } => crate::ErrorCode::NotFound,
            Self::Forbidden { .. } => crate::ErrorCode::Forbidden,
            Self::Conflict { .. } => crate::ErrorCode::Conflict,
            Self::Invalid(_) | Self::BadDecision { .. } => crate::ErrorCode::Validation,
            Self::Unsupported => crate::ErrorCode::Unsupported,
            Self::Store(e) => e.code(),
            Self::Engine(e) => e.code(),
        }
    }
}
