//! Errors of tools.

/// A tool could not be defined or called. When an agent calls a tool, this error's text goes
/// back to the model as the call's result; the loop goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The tool's name or argument schema is unusable.
    #[error("tool `{tool}` is badly defined: {reason}")]
    BadDefinition {
        /// The tool's name.
        tool: String,
        /// What is wrong.
        reason: String,
    },
    /// The model called a tool the agent does not have.
    #[error("there is no tool named `{tool}` (available: {available})")]
    NotFound {
        /// The name the model used.
        tool: String,
        /// The agent's tool names, comma-separated.
        available: String,
    },
    /// The arguments do not match the tool's schema.
    #[error("invalid arguments for tool `{tool}` at `{pointer}`: {reason}")]
    InvalidArguments {
        /// The tool's name.
        tool: String,
        /// JSON pointer of the offending value (`""` is the whole argument object).
        pointer: String,
        /// The validator's reason.
        reason: String,
    },
    /// The tool ran and failed.
    #[error("tool `{tool}` failed: {message}")]
    Failed {
        /// The tool's name.
        tool: String,
        /// The tool's own message.
        message: String,
    },
    /// A human declined the call.
    #[error("a human declined the call of tool `{tool}`{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Declined {
        /// The tool's name.
        tool: String,
        /// The reason given, if any.
        reason: Option<String>,
    },
    /// The call was cancelled (run cancelled or step timed out).
    #[error("tool `{tool}` was cancelled")]
    Cancelled {
        /// The tool's name.
        tool: String,
    },
    /// The call needs a human's answer to go on (an MCP server's elicitation). Not a failure:
    /// the agent loop waits for the answer (inside a workflow the run suspends with `{"kind":
    /// "tool-input", ..}`), then calls the tool again with the same arguments and the answers
    /// so far in [`super::ToolContext::inputs`].
    #[error("tool `{tool}` needs a human's input: {}", request.message)]
    InputRequired {
        /// The tool's name.
        tool: String,
        /// The question (boxed: it is larger than the other variants).
        request: Box<super::InputRequest>,
    },
}

impl ToolError {
    /// The error's stable code ([`crate::ErrorCode`]).
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            Self::BadDefinition { .. } => crate::ErrorCode::InvalidArgument,
            Self::NotFound { .. } => crate::ErrorCode::NotFound,
            Self::InvalidArguments { .. } => crate::ErrorCode::Validation,
            Self::Failed { .. } => crate::ErrorCode::Engine,
            Self::Declined { .. } => crate::ErrorCode::Forbidden,
            Self::Cancelled { .. } => crate::ErrorCode::Cancelled,
            // Seen only where no one can be asked (a tool called outside an agent loop).
            Self::InputRequired { .. } => crate::ErrorCode::Unsupported,
        }
    }

    /// A call of `tool` that waits for a human's answer to `request` (see
    /// [`ToolError::InputRequired`]).
    pub fn input_required(tool: &str, request: super::InputRequest) -> Self {
        Self::InputRequired {
            tool: tool.to_owned(),
            request: Box::new(request),
        }
    }

    /// A failure of `tool` with `message` (for hand-written [`super::Tool`] implementations).
    pub fn failed(tool: &str, message: impl Into<String>) -> Self {
        Self::Failed {
            tool: tool.to_owned(),
            message: message.into(),
        }
    }
}
