//! Errors of agents.

use crate::memory::MemoryError;
use crate::model::ModelError;

/// An agent could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The agent is configured wrongly (no model, a model spec that does not resolve, a tool
    /// with a bad schema, an output schema that does not compile...).
    #[error("agent `{agent}`: {message}")]
    Config {
        /// The agent's name.
        agent: String,
        /// What is wrong.
        message: String,
    },
    /// The model call failed (after the model layer's own retries).
    #[error("agent `{agent}`: model call failed: {source}")]
    Model {
        /// The agent's name.
        agent: String,
        /// The model layer's error, with the provider's own message.
        #[source]
        source: ModelError,
    },
    /// The answer did not follow the output schema, also after one repair attempt.
    #[error(
        "agent `{agent}`: the answer does not follow the output schema ({reason}); answer was: {text}"
    )]
    StructuredOutput {
        /// The agent's name.
        agent: String,
        /// The validator's (or JSON parser's) reason.
        reason: String,
        /// The model's last answer text.
        text: String,
    },
    /// Memory failed.
    #[error("agent `{agent}`: memory: {source}")]
    Memory {
        /// The agent's name.
        agent: String,
        /// The memory error.
        #[source]
        source: MemoryError,
    },
    /// The input is not a prompt, messages, or an object with `prompt` or `messages`.
    #[error("agent `{agent}`: bad input: {message}")]
    BadInput {
        /// The agent's name.
        agent: String,
        /// What is wrong.
        message: String,
    },
    /// Resume data or a checkpoint cannot be used.
    #[error("agent `{agent}`: cannot resume: {message}")]
    BadResume {
        /// The agent's name.
        agent: String,
        /// What is wrong.
        message: String,
    },
    /// The run was cancelled or the step timed out.
    #[error("agent `{agent}`: cancelled")]
    Cancelled {
        /// The agent's name.
        agent: String,
    },
}

impl AgentError {
    /// The error's stable code ([`crate::ErrorCode`]); a model failure keeps the model's.
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            Self::Config { .. } => crate::ErrorCode::Config,
            Self::Model { source, .. } => source.code(),
            Self::StructuredOutput { .. } => crate::ErrorCode::Validation,
            Self::Memory { .. } => crate::ErrorCode::Memory,
            Self::BadInput { .. } | Self::BadResume { .. } => crate::ErrorCode::InvalidArgument,
            Self::Cancelled { .. } => crate::ErrorCode::Cancelled,
        }
    }

    /// Whether retrying the same generation may succeed (a retryable model error).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Model { source, .. } if source.is_retryable())
    }
}
