//! Workflows: the DSL, the engine core state machine, and the tokio driver.

mod builder;
mod core;
mod engine;
mod event;
mod export;
mod external;
mod group;
mod machine;
mod schema;
pub(crate) mod spec;
mod step;

pub use builder::{CommittedWorkflow, Node, OnInterrupt, Workflow};
pub use core::Suspension;
pub use engine::{CancelRequest, Durability, Engine, EngineBuilder, GateHandoff, Run, RunHandle};
pub use event::{EventKind, RunEvent};
pub use external::{ExternalRun, Task};
pub use machine::DecisionKind;
pub use schema::Schema;
pub use step::{RetryPolicy, Step, StepContext, StepFn, step_fn};
