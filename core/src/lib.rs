//! # Miyabi
//!
//! A durable AI-agent framework. This crate is the engine: workflows with steps, branches,
//! parallel children, loops, foreach, sleeps and nested workflows, executed durably on SQLite
//! (one row per executed step path, resume by replay), with suspend/resume for humans in the
//! loop and recovery after a crash.
//!
//! Agents ([`Agent`]: a model, instructions, [`Tool`]s and [`Memory`]) run the tool loop and
//! are steps themselves: `.step("analyze", agent)`. See the [`agent`], [`tool`] and [`memory`]
//! modules; models are in [`model`](mod@model).
//!
//! ```
//! use miyabi::{step_fn, Engine, StepContext, Workflow};
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

pub mod agent;
#[doc(inline)]
pub use miyabi_engine::approval;
#[doc(inline)]
pub use miyabi_engine::clock;
#[cfg(feature = "eval")]
pub mod eval;
pub mod memory;
#[doc(inline)]
pub use miyabi_engine::store;
/// Models: the crate `miyabi-model`, re-exported.
#[doc(inline)]
pub use miyabi_model as model;
/// The HTTP API: the crate `miyabi-server`, re-exported (feature `server`).
#[cfg(feature = "server")]
#[doc(inline)]
pub use miyabi_server as server;
pub mod tool;
#[cfg(feature = "server")]
pub mod web;

/// The engine's error types under the path the code in this crate has always used for them
/// (some are used only with the `server` or `eval` feature).
#[allow(unused_imports)]
mod error {
    pub(crate) use miyabi_engine::{EngineError, ErrorCode, StepError, StoreError};
}
/// The engine's workflow types under the path the code in this crate has always used for them.
mod workflow {
    pub(crate) use miyabi_engine::*;
}

pub use agent::{Agent, AgentError, AgentInput, AgentResponse};
pub use memory::{Memory, MemoryError, MemoryOptions, WorkingMemory};
#[cfg(feature = "postgres")]
pub use miyabi_engine::PostgresStore;
pub use miyabi_engine::{
    CancelRequest, CommittedWorkflow, Durability, Engine, EngineBuilder, EventKind, Node,
    OnInterrupt, RetryPolicy, Run, RunEvent, RunHandle, Schema, Step, StepContext, StepFn,
    Suspension, Workflow, step_fn,
};
pub use miyabi_engine::{
    EngineError, Error, ErrorCode, SchemaViolation, StepError, StoreError, WorkflowError,
};
pub use miyabi_engine::{MemoryStore, Retention, RunFilter, RunStatus, SqliteStore};
pub use model::{EmbeddingModel, LanguageModel, ModelError, embedding, model};
pub use tool::{Tool, ToolContext, ToolError, tool_fn};

#[doc(inline)]
pub use miyabi_engine::{external, spec};
