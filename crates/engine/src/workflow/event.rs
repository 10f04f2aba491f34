//! Run events: what subscribers see and what the store's event log keeps.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use serde_json::Value;

use crate::store::RunStatus;

/// One event of a run, with its sequence number in the run's event log (from 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    /// The run (shared by all of a run's events: no copy of the id per event).
    pub run_id: Arc<str>,
    /// Position in the run's event log, from 1, without gaps.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl RunEvent {
    /// The step path the event is about, if any.
    pub fn path(&self) -> Option<&str> {
        match &self.kind {
            EventKind::StepStarted { path, .. }
            | EventKind::StepOutput { path, .. }
            | EventKind::StepSuspended { path, .. }
            | EventKind::StepFailed { path, .. }
            | EventKind::StepRetrying { path, .. }
            | EventKind::RunResumed { path }
            | EventKind::Custom { path, .. } => Some(path),
            EventKind::RunStarted { .. }
            | EventKind::RunSuspended { .. }
            | EventKind::RunRetried { .. }
            | EventKind::RunFinished { .. } => None,
        }
    }

    /// The event's type name (`run-started`, `step-output`, ...).
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            EventKind::RunStarted { .. } => "run-started",
            EventKind::StepStarted { .. } => "step-started",
            EventKind::StepOutput { .. } => "step-output",
            EventKind::StepSuspended { .. } => "step-suspended",
            EventKind::StepFailed { .. } => "step-failed",
            EventKind::StepRetrying { .. } => "step-retrying",
            EventKind::RunResumed { .. } => "run-resumed",
            EventKind::RunSuspended { .. } => "run-suspended",
            EventKind::RunRetried { .. } => "run-retried",
            EventKind::RunFinished { .. } => "run-finished",
            EventKind::Custom { .. } => "custom",
        }
    }
}

/// What a [`RunEvent`] reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EventKind {
    /// The run was created.
    RunStarted {
        /// Workflow id.
        workflow: String,
        /// The run's input (shared with the run's record).
        input: Arc<Value>,
    },
    /// A step began an attempt.
    StepStarted {
        /// Step path (shared with the step's record and the run's other events).
        path: Arc<str>,
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// A step's output was committed.
    StepOutput {
        /// Step path (shared with the step's record and the run's other events).
        path: Arc<str>,
        /// The output (shared with the step's record: cloning an event copies no output).
        output: Arc<Value>,
    },
    /// A step suspended the run at its path.
    StepSuspended {
        /// Step path (shared with the step's record and the run's other events).
        path: Arc<str>,
        /// What the step asks for.
        payload: Value,
    },
    /// A step failed for good.
    StepFailed {
        /// Step path (shared with the step's record and the run's other events).
        path: Arc<str>,
        /// The failure.
        error: String,
    },
    /// A step failed and will be retried.
    StepRetrying {
        /// Step path (shared with the step's record and the run's other events).
        path: Arc<str>,
        /// The attempt that will run next.
        attempt: u32,
        /// Delay before it, in milliseconds.
        delay_ms: u64,
        /// The failure of the previous attempt.
        error: String,
    },
    /// Resume data was given to a suspended path.
    RunResumed {
        /// The resumed path.
        path: Arc<str>,
    },
    /// The run is waiting for resume at these paths.
    RunSuspended {
        /// The suspended paths.
        paths: Vec<String>,
    },
    /// A failed run was reopened to run its failed steps again ([`crate::Engine::retry`]);
    /// what succeeded before is kept. A `run-finished` event follows again when it ends.
    RunRetried {
        /// The paths whose failures were cleared, to run again.
        paths: Vec<String>,
    },
    /// The run ended.
    RunFinished {
        /// Final status.
        status: RunStatus,
        /// Output, when succeeded (shared with the run's record).
        output: Option<Arc<Value>>,
        /// Error, when failed or cancelled.
        error: Option<String>,
    },
    /// A custom event emitted by a step with [`crate::StepContext::emit`].
    Custom {
        /// The emitting step's path.
        path: Arc<str>,
        /// Event name.
        name: String,
        /// Event data.
        data: Value,
    },
}
