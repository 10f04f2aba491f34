//! The crate's error types: one small enum per domain, each keeping the source message.

use std::fmt;

use serde_json::Value;

pub use miyabi_model::ErrorCode;

/// A workflow definition is invalid; returned by [`crate::Workflow::commit`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// The workflow has no steps.
    #[error("workflow `{workflow}` is empty: add at least one step before commit()")]
    Empty {
        /// Workflow id.
        workflow: String,
    },
    /// Two nodes share one path inside the workflow.
    #[error(
        "workflow `{workflow}`: duplicate id `{id}` (every step, branch, loop and parallel id must be unique in its scope)"
    )]
    DuplicateId {
        /// Workflow id.
        workflow: String,
        /// The repeated id, as a path.
        id: String,
    },
    /// An id is empty or holds a character reserved for paths.
    #[error("workflow `{workflow}`: invalid id `{id}`: {reason}")]
    InvalidId {
        /// Workflow id.
        workflow: String,
        /// The offending id.
        id: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A branch, parallel or loop was declared without what it needs.
    #[error("workflow `{workflow}`: `{id}`: {reason}")]
    InvalidNode {
        /// Workflow id.
        workflow: String,
        /// The node's path.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A JSON Schema does not compile.
    #[error("workflow `{workflow}`: {place}: invalid JSON Schema: {reason}")]
    BadSchema {
        /// Workflow id.
        workflow: String,
        /// Where the schema was given (step id and direction).
        place: String,
        /// The schema compiler's message.
        reason: String,
    },
}

/// A value does not match a JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {direction} violates its schema at `{pointer}`: {reason}")]
pub struct SchemaViolation {
    /// Step path (or `workflow <id>` for the run's own input and output).
    pub place: String,
    /// `input`, `output` or `resume data`.
    pub direction: String,
    /// JSON pointer to the offending value (`""` is the whole value).
    pub pointer: String,
    /// The validator's reason.
    pub reason: String,
}

/// A step's failure, as returned by [`crate::Step::run`].
///
/// Any error type converts into it with `?` (it is retryable by default); use
/// [`StepError::fatal`] for a failure retries cannot fix. `StepError` deliberately does not
/// implement `std::error::Error`, so that `?` works on every error type.
pub struct StepError {
    pub(crate) kind: StepErrorKind,
}

#[derive(Debug, Clone)]
pub(crate) enum StepErrorKind {
    /// Retried according to the step's policy.
    Retryable(String),
    /// Fails the step at once.
    Fatal(String),
    /// The step asks the run to suspend at its path with this payload.
    Suspend(Value),
}

impl StepError {
    /// A failure that the retry policy may retry.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            kind: StepErrorKind::Retryable(message.into()),
        }
    }

    /// A failure that is never retried.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            kind: StepErrorKind::Fatal(message.into()),
        }
    }

    /// The failure's message (the suspension payload as JSON for a suspension).
    pub fn message(&self) -> String {
        match &self.kind {
            StepErrorKind::Retryable(m) | StepErrorKind::Fatal(m) => m.clone(),
            StepErrorKind::Suspend(p) => format!("suspended: {p}"),
        }
    }

    /// Whether the retry policy may retry this failure.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, StepErrorKind::Retryable(_))
    }

    /// A request to suspend the run at the step's path with `payload` (what
    /// [`crate::StepContext::suspend`] returns; for drivers that run steps outside Rust).
    pub fn suspended(payload: Value) -> Self {
        Self::suspend(payload)
    }

    pub(crate) fn suspend(payload: Value) -> Self {
        Self {
            kind: StepErrorKind::Suspend(payload),
        }
    }
}

impl fmt::Debug for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for StepError {
    fn from(e: E) -> Self {
        // Keep the whole source chain in the message.
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Self::retryable(message)
    }
}

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database is locked by another connection for longer than the busy timeout.
    #[error("database `{path}` is busy (locked by another connection): {message}")]
    Busy {
        /// Database location.
        path: String,
        /// SQLite's message.
        message: String,
    },
    /// The database file or disk is full.
    #[error("database `{path}` is full: {message}")]
    Full {
        /// Database location.
        path: String,
        /// SQLite's message.
        message: String,
    },
    /// The database cannot be written (read-only file or directory).
    #[error("database `{path}` is read-only: {message}")]
    ReadOnly {
        /// Database location.
        path: String,
        /// SQLite's message.
        message: String,
    },
    /// The file is not a database, or is damaged.
    #[error("database `{path}` is corrupt or not a Miyabi database: {message}")]
    Corrupt {
        /// Database location.
        path: String,
        /// SQLite's message.
        message: String,
    },
    /// The file cannot be opened.
    #[error("cannot open database `{path}`: {message}")]
    Open {
        /// Database location.
        path: String,
        /// The cause.
        message: String,
    },
    /// The database was written by a newer Miyabi.
    #[error(
        "database `{path}` has schema version {found}, newer than this build supports ({supported})"
    )]
    TooNew {
        /// Database location.
        path: String,
        /// Version found in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// A write's outcome is unknown (it may or may not have committed).
    #[error("database `{path}`: outcome of a write is unknown: {message}")]
    Indeterminate {
        /// Database location.
        path: String,
        /// The cause.
        message: String,
    },
    /// A stored value could not be decoded.
    #[error("database `{path}`: bad stored data in {place}: {message}")]
    Decode {
        /// Database location.
        path: String,
        /// Table and key.
        place: String,
        /// The decoder's message.
        message: String,
    },
    /// The run's row names another owner than the committing engine: that engine lost its
    /// claim (its lease expired and another engine took the run over), so its writes were
    /// refused and nothing of the batch was committed.
    #[error(
        "run `{run}` is owned by {} now: this engine lost its claim on it and its writes were not committed",
        owner.as_deref().map(|o| format!("`{o}`")).unwrap_or_else(|| "no engine".to_string())
    )]
    Fenced {
        /// Run id.
        run: String,
        /// The owner the row names.
        owner: Option<String>,
    },
    /// Any other SQLite error.
    #[error("database `{path}`: {message}")]
    Other {
        /// Database location.
        path: String,
        /// SQLite's message.
        message: String,
    },
}

/// An engine operation failed: what went wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Storage failed; nothing committed before this error is lost.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The workflow is not registered with this engine.
    #[error("workflow `{0}` is not registered with this engine")]
    UnknownWorkflow(String),
    /// No run has this id.
    #[error("run `{0}` not found")]
    UnknownRun(String),
    /// Only suspended runs can be resumed; this one is running or finished.
    #[error("run `{run}` is {status}: only suspended runs can be resumed (`{path}`)")]
    NotResumable {
        /// Run id.
        run: String,
        /// Its status.
        status: crate::store::RunStatus,
        /// The path that was to be resumed.
        path: String,
    },
    /// Only failed runs can be retried; this one is running, suspended, succeeded or cancelled.
    #[error("run `{run}` is {status}: only failed runs can be retried (rerun it for a new run)")]
    NotRetryable {
        /// Run id.
        run: String,
        /// Its status.
        status: crate::store::RunStatus,
    },
    /// The failed run has no failed step to run again: it failed on its workflow's timeout,
    /// on a divergence from its definition or inside the engine.
    #[error(
        "run `{run}` failed outside any step ({error}): there is no failed step to retry; rerun it for a new run"
    )]
    NothingToRetry {
        /// Run id.
        run: String,
        /// The run's error.
        error: String,
    },
    /// The failed run waits at approval gates that were closed when it failed: retried, it
    /// would wait at gates nobody can decide.
    #[error(
        "run `{run}` failed while approval gates were open ({}); they were closed with it: rerun it for a new run",
        gates.join(", ")
    )]
    GatesClosed {
        /// Run id.
        run: String,
        /// The closed gates' paths.
        gates: Vec<String>,
    },
    /// The run has finished (succeeded, failed or cancelled): there is nothing to cancel.
    #[error("run `{run}` already finished ({status}): cannot cancel it")]
    Finished {
        /// Run id.
        run: String,
        /// Its final status.
        status: crate::store::RunStatus,
    },
    /// The run changed state between this engine's read and its claim (another process
    /// resumed, cancelled or recovered it meanwhile); nothing was written.
    #[error("run `{run}` changed state while this engine tried to {operation}: try again")]
    Contended {
        /// Run id.
        run: String,
        /// What was attempted (`resume \`review\``, `cancel`).
        operation: String,
    },
    /// The path is an approval gate: it is decided through
    /// [`crate::Engine::approvals`] (which keeps the audit trail), not resumed.
    #[error(
        "`{path}` of run `{run}` is an approval gate: decide it through engine.approvals(), which keeps its audit trail"
    )]
    GateNeedsDecision {
        /// Run id.
        run: String,
        /// The gate's path.
        path: String,
    },
    /// A decision was given for a path that is not an approval gate.
    #[error("`{path}` of run `{run}` is not an approval gate: resume it instead of deciding it")]
    NotAGate {
        /// Run id.
        run: String,
        /// The path.
        path: String,
    },
    /// The run's steps are not Rust code (a workflow defined in JavaScript): only the driver
    /// that has its code can continue it.
    #[error(
        "run `{run}` is driven outside Rust (its workflow `{workflow}` has steps in another language): the driver that has its code must {operation}"
    )]
    DrivenOutsideRust {
        /// Run id.
        run: String,
        /// Workflow id.
        workflow: String,
        /// What was attempted.
        operation: String,
    },
    /// The task driving the run ended abnormally (it panicked outside a step or was aborted).
    #[error("the task driving run `{run}` ended abnormally: {reason}")]
    Aborted {
        /// Run id.
        run: String,
        /// The runtime's report.
        reason: String,
    },
    /// An engine invariant does not hold: a bug in Miyabi, not in the workflow.
    #[error(
        "run `{run}`: engine invariant violated: {detail} (this is a Miyabi bug; please report it)"
    )]
    Invariant {
        /// Run id.
        run: String,
        /// What does not hold.
        detail: String,
    },
    /// The path is not suspended in this run.
    #[error("run `{run}` has no suspended step at path `{path}` (suspended paths: {suspended})")]
    NotSuspended {
        /// Run id.
        run: String,
        /// The path given.
        path: String,
        /// The paths that are suspended, comma-separated.
        suspended: String,
    },
    /// A value violates a schema (run input, resume data).
    #[error(transparent)]
    Schema(#[from] SchemaViolation),
    /// The run was started under a different definition of its workflow.
    #[error(
        "run `{run}` was started with workflow `{workflow}` fingerprint {stored}, but the registered definition has fingerprint {current}: the definition changed; register the old definition to finish this run"
    )]
    DefinitionChanged {
        /// Run id.
        run: String,
        /// Workflow id.
        workflow: String,
        /// Fingerprint recorded in the run.
        stored: String,
        /// Fingerprint of the registered definition.
        current: String,
    },
    /// A replay found stored records that the definition does not produce.
    #[error("run `{run}`: replay diverged from the stored records at `{path}`: {detail}")]
    ReplayDiverged {
        /// Run id.
        run: String,
        /// The first mismatching path.
        path: String,
        /// What differed.
        detail: String,
    },
    /// Another engine owns the run (its lease has not expired).
    #[error("run `{run}` is owned by another engine ({owner}) until its lease expires")]
    Owned {
        /// Run id.
        run: String,
        /// Owner description.
        owner: String,
    },
    /// The engine is shutting down.
    #[error("engine is shut down")]
    Shutdown,
}

/// The crate's top-level error, for callers that mix domains.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A workflow definition error.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// An engine error.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A storage error.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WorkflowError {
    /// Always [`ErrorCode::InvalidWorkflow`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidWorkflow
    }
}

impl StoreError {
    /// [`ErrorCode::Conflict`] for a fenced write (another engine owns the run), else
    /// [`ErrorCode::Store`].
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Fenced { .. } => ErrorCode::Conflict,
            _ => ErrorCode::Store,
        }
    }
}

impl EngineError {
    /// The error's stable code (see [`ErrorCode`]).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Store(e) => e.code(),
            Self::UnknownWorkflow(_) => ErrorCode::UnknownWorkflow,
            Self::UnknownRun(_) => ErrorCode::NotFound,
            Self::NotResumable { .. }
            | Self::NotRetryable { .. }
            | Self::NothingToRetry { .. }
            | Self::GatesClosed { .. }
            | Self::Finished { .. }
            | Self::Contended { .. }
            | Self::GateNeedsDecision { .. }
            | Self::NotAGate { .. }
            | Self::DrivenOutsideRust { .. }
            | Self::Owned { .. } => ErrorCode::Conflict,
            Self::NotSuspended { .. } => ErrorCode::NotSuspended,
            Self::Schema(_) => ErrorCode::Validation,
            Self::DefinitionChanged { .. } => ErrorCode::DefinitionChanged,
            Self::ReplayDiverged { .. } => ErrorCode::ReplayDiverged,
            Self::Shutdown => ErrorCode::Shutdown,
            Self::Aborted { .. } | Self::Invariant { .. } => ErrorCode::Engine,
        }
    }
}

impl Error {
    /// The error's stable code (see [`ErrorCode`]).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Workflow(e) => e.code(),
            Self::Engine(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }
}
