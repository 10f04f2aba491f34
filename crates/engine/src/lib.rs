//! # Miyabi's engine
//!
//! The crate `miyabi-engine`: workflows with steps, branches, parallel children, loops,
//! foreach, sleeps and nested workflows, executed durably (one record per executed step path,
//! resume by replay) on SQLite, Postgres (feature `postgres`) or in memory, with
//! suspend/resume for humans in the loop, approval gates, and recovery after a crash.
//!
//! Applications use it through the crate `miyabi`, which re-exports every public item here at
//! the same path (`miyabi_engine::Engine`, `miyabi_engine::store::Store`, `miyabi_engine::approval::ApprovalGate`,
//! ...) beside models, agents, tools, memory and the HTTP server. It depends on the model
//! layer (`miyabi-model`) for [`ErrorCode`] and the approval notifiers' HTTP helpers, and on no
//! other Miyabi crate.
//!
//! ```
//! use miyabi_engine::{step_fn, Engine, StepContext, Workflow};
//! use serde_json::{json, Value};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let review = step_fn(|ctx: StepContext, draft: Value| async move {
//!     match ctx.resume_data() {
//!         Some(decision) => Ok(json!({ "draft": draft, "approved": decision["approved"] })),
//!         None => ctx.suspend(json!({ "question": "approve this draft?" })),
//!     }
//! });
//! let wf = Workflow::new("publish").step("review", review).commit()?;
//! let dir = tempfile::tempdir()?;
//! let engine = Engine::sqlite(dir.path().join("runs.db"))?;
//! let run = engine.start(&wf, json!("hello")).await?;
//! assert_eq!(run.suspended[0].path, "review");
//! let run = engine.resume(&run.id, "review", json!({ "approved": true })).await?;
//! assert_eq!(run.output, Some(json!({ "draft": "hello", "approved": true })));
//! # Ok(()) }
//! ```

pub mod approval;
pub mod clock;
mod error;
pub mod store;
mod workflow;

/// The model layer, under the path the engine's code has always used for it.
use miyabi_model as model;

pub use error::{
    EngineError, Error, ErrorCode, SchemaViolation, StepError, StoreError, WorkflowError,
};
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
pub use store::{MemoryStore, Retention, RunFilter, RunStatus, SqliteStore};
pub use workflow::{
    CancelRequest, CommittedWorkflow, Durability, Engine, EngineBuilder, EventKind, Node,
    OnInterrupt, RetryPolicy, Run, RunEvent, RunHandle, Schema, Step, StepContext, StepFn,
    Suspension, Workflow, step_fn,
};

/// The language-neutral workflow format (workflows described as JSON data, with handles for
/// the host language's functions), used by the Node binding.
pub mod spec {
    pub use crate::workflow::spec::*;
}

/// Driving runs from outside the tokio driver, for language bindings: an [`ExternalRun`]
/// hands out [`Task`]s (steps to run, [`DecisionKind`]s to decide, sleeps) and takes their
/// results back. The Node binding drives JavaScript steps this way.
///
/// [`ExternalRun`]: external::ExternalRun
/// [`Task`]: external::Task
/// [`DecisionKind`]: external::DecisionKind
pub mod external {
    pub use crate::workflow::{DecisionKind, ExternalRun, GateHandoff, Task};
}
