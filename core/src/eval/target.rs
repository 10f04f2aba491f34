//! [`Target`]: what is evaluated — anything that turns an input into an output.

use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use serde_json::Value;

use crate::{Agent, AgentInput, CommittedWorkflow, Engine, RunStatus};

/// A target's failure (the model call failed, the run failed...). Such a sample is an
/// *error* in the results, apart from metric failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

impl TargetError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Anything that turns a case's input into an output: a closure
/// `Fn(Value) -> impl Future<Output = Result<Value, E>>` (E: Display), an [`Agent`], or a
/// committed workflow on an engine ([`WorkflowTarget`]).
#[async_trait]
pub trait Target: Send + Sync {
    /// Produces the output for one input.
    async fn call(&self, input: Value) -> Result<Value, TargetError>;
}

#[async_trait]
impl<F, Fut, E> Target for F
where
    F: Fn(Value) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, E>> + Send,
    E: fmt::Display,
{
    async fn call(&self, input: Value) -> Result<Value, TargetError> {
        (self)(input).await.map_err(|e| TargetError(e.to_string()))
    }
}

/// An agent's output is its structured answer (`object`) when it has one, else its text.
/// The input is read as an agent step reads it ([`AgentInput::from_json`]): a string is the
/// prompt, an array the messages, an object with `prompt`/`messages`.
#[async_trait]
impl Target for Agent {
    async fn call(&self, input: Value) -> Result<Value, TargetError> {
        let input =
            AgentInput::from_json(self.name(), input).map_err(|e| TargetError(e.to_string()))?;
        let response = self
            .generate(input)
            .await
            .map_err(|e| TargetError(e.to_string()))?;
        Ok(response.object.unwrap_or(Value::String(response.text)))
    }
}

/// A committed workflow run on an engine: each case starts a run with the case's input, and
/// the run's output is the target's output. A run that fails, is cancelled or suspends (for a
/// human) is a target error naming its status and the run id.
#[derive(Clone)]
pub struct WorkflowTarget {
    engine: Engine,
    workflow: CommittedWorkflow,
}

impl fmt::Debug for WorkflowTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowTarget").finish_non_exhaustive()
    }
}

impl WorkflowTarget {
    /// Runs `workflow` on `engine`.
    pub fn new(engine: Engine, workflow: CommittedWorkflow) -> Self {
        Self { engine, workflow }
    }
}

#[async_trait]
impl Target for WorkflowTarget {
    async fn call(&self, input: Value) -> Result<Value, TargetError> {
        let run = self
            .engine
            .start(&self.workflow, input)
            .await
            .map_err(|e| TargetError(e.to_string()))?;
        match (run.status, run.output) {
            (RunStatus::Succeeded, Some(output)) => Ok(output),
            (RunStatus::Succeeded, None) => Ok(Value::Null),
            (status, _) => Err(TargetError(format!(
                "run {} ended {status:?}{}",
                run.id,
                run.error.map(|e| format!(": {e}")).unwrap_or_default()
            ))),
        }
    }
}
