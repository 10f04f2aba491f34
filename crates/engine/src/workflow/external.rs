//! Driving a run from outside the tokio driver: the caller asks for tasks, runs them (e.g. as
//! JavaScript functions on Node's event loop) and hands results back, with synchronous calls
//! that commit to the store. This is how the Node binding runs JS steps without a thread hop.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use super::builder::CommittedWorkflow;
use super::core::RunCore;
use super::engine::{Engine, Run, lock, outcome, run_step};
use super::machine::{Action, DecisionKind, Status};
use crate::error::{EngineError, StepError};
use crate::store::RunStatus;

/// One thing an externally driven run needs done.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Task {
    /// Run the external step `handle` once and [`ExternalRun::complete`] `path` with its result.
    Step {
        /// Step path.
        path: String,
        /// The step's handle (from [`crate::Node::external`]).
        handle: u32,
        /// The step's input.
        input: Value,
        /// Attempt number, from 1.
        attempt: u32,
        /// Resume data, when the step is resumed after suspending.
        resume: Option<Value>,
        /// Wait this long before running (retry backoff).
        delay_ms: u64,
        /// The attempt's timeout: if it has not completed this long after it started, the
        /// driver calls [`ExternalRun::time_out`] and aborts it.
        timeout_ms: Option<u64>,
    },
    /// Have external user code decide and complete `path` with its answer: the arm name (a
    /// string) for a branch, a bool for a loop condition, the new value for a map, and the
    /// wake time in ms since the epoch for a `sleep_until`.
    Decide {
        /// Path the answer is recorded at.
        path: String,
        /// The function's handle.
        handle: u32,
        /// What kind of function it is.
        kind: DecisionKind,
        /// Its input.
        input: Value,
    },
    /// Wait until `wake_at` (ms since the epoch), then complete `path` with null.
    Sleep {
        /// The sleep's path.
        path: String,
        /// Wake time, ms since the epoch.
        wake_at: i64,
    },
    /// A step implemented in Rust: await [`ExternalRun::native`] for it, then complete `path`.
    Native {
        /// Step path.
        path: String,
    },
}

/// A run driven by the caller. Dropping it stops driving (the run stays `running` in the store,
/// and `recover` can take it over).
///
/// ```
/// use miyabi_engine::{Engine, Node, RunStatus, Workflow};
/// use miyabi_engine::external::{ExternalRun, Task};
/// use serde_json::json;
///
/// let wf = Workflow::new("ext").step("double", Node::external(7)).commit()?;
/// let engine = Engine::in_memory();
/// let mut run = engine.start_external(&wf, json!(21))?;
/// while run.status() == RunStatus::Running {
///     for task in run.poll()? {
///         if let Task::Step { path, handle: 7, input, .. } = task {
///             run.complete(&path, Ok(json!(input.as_i64().unwrap_or(0) * 2)));
///         }
///     }
/// }
/// assert_eq!(run.outcome().output, Some(json!(42)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ExternalRun {
    core: Box<RunCore>,
    engine: Engine,
    first: Vec<Action>,
    /// Native steps issued and not yet handed out, by path.
    native: Vec<(String, BoxFuture<'static, super::engine::StepResult>)>,
    emit: super::step::Emitter,
    /// External steps with a timeout, in flight: path and timeout.
    timed: Vec<(String, std::time::Duration)>,
    /// Look at the cancellation flag on the next advance (set at the start and by every
    /// flush, i.e. before and after the driver waits).
    check_cancel: bool,
    /// Advances since the flag was last looked at.
    advances: u32,
}

/// How many advances in a burst of steps that finish without waiting pass between two looks
/// at the cancellation flag (a look is an atomic load; a flush always leads to one).
const CANCEL_CHECK_EVERY: u32 = 64;

impl std::fmt::Debug for ExternalRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalRun")
            .field("id", &self.core.run_id)
            .field("status", &self.core.committed)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts a run that the caller drives with [`ExternalRun::poll`] and
    /// [`ExternalRun::complete`]; the run is committed before this returns.
    pub fn start_external(
        &self,
        workflow: &CommittedWorkflow,
        input: Value,
    ) -> Result<ExternalRun, EngineError> {
        let mut core = self.create(workflow, input)?;
        core.flush()?;
        Ok(self.external(core, Vec::new()))
    }

    /// Like [`Engine::start_external`], but the run's creation is committed with the run's
    /// first [`ExternalRun::flush`] (as the tokio driver does): a driver that flushes before it
    /// waits for anything saves a commit per run. Until then the run is not in the store.
    pub fn start_external_deferred(
        &self,
        workflow: &CommittedWorkflow,
        input: Value,
    ) -> Result<ExternalRun, EngineError> {
        let core = self.create(workflow, input)?;
        Ok(self.external(core, Vec::new()))
    }

    /// Resumes a suspended run (checks as in [`Engine::resume`]) for the caller to drive.
    pub fn resume_external(
        &self,
        run_id: &str,
        path: &str,
        data: Value,
    ) -> Result<ExternalRun, EngineError> {
        let (core, actions) = self.prepare_resume(run_id, path, data, false)?;
        Ok(self.external(core, actions))
    }

    /// Retries a failed run from its failed steps (checks as in [`Engine::retry`]) for the
    /// caller to drive.
    pub fn retry_external(&self, run_id: &str) -> Result<ExternalRun, EngineError> {
        let (core, actions) = self.prepare_retry(run_id)?;
        Ok(self.external(core, actions))
    }

    /// Resumes a run suspended at an approval gate with the gate's decision, for the caller
    /// to drive (see [`crate::approval::Approvals::resume_external`]).
    pub(crate) fn resume_gate_external(
        &self,
        run_id: &str,
        path: &str,
        output: Value,
    ) -> Result<ExternalRun, EngineError> {
        let (core, actions) = self.prepare_resume(run_id, path, output, true)?;
        Ok(self.external(core, actions))
    }

    /// Claims runs left running by a dead process (as [`Engine::recover`]) for the caller to
    /// drive.
    pub fn recover_external(&self) -> Result<Vec<ExternalRun>, EngineError> {
        let cores = self.claim_orphans()?;
        Ok(cores
            .into_iter()
            .map(|c| self.external(c, Vec::new()))
            .collect())
    }

    fn external(&self, core: Box<RunCore>, first: Vec<Action>) -> ExternalRun {
        self.activate(&core);
        let emit = super::step::Emitter::default();
        ExternalRun {
            core,
            engine: self.clone(),
            first,
            native: Vec::new(),
            emit,
            timed: Vec::new(),
            check_cancel: true,
            advances: 0,
        }
    }
}

impl ExternalRun {
    /// The run id.
    pub fn id(&self) -> &str {
        &self.core.run_id
    }

    /// The status last committed: `Running` while there is work to do.
    pub fn status(&self) -> RunStatus {
        self.core.committed
    }

    /// Whether someone called [`Engine::cancel`] for this run; the driver should then call
    /// [`ExternalRun::cancel`].
    pub fn cancel_requested(&self) -> bool {
        self.core.active.cancel.is_cancelled()
    }

    /// The run's deadline (ms since the epoch) if its workflow has a timeout.
    pub fn deadline(&self) -> Option<i64> {
        self.core
            .graph()
            .timeout
            .map(|t| crate::store::ms_after(self.core.created_at, t))
    }

    /// Advances the run and commits what it produced; returns the tasks to do now. Rust-side
    /// selectors, conditions and maps are evaluated here at once.
    pub fn poll(&mut self) -> Result<Vec<Task>, EngineError> {
        let tasks = self.advance()?;
        self.flush()?;
        Ok(tasks)
    }

    /// Like [`ExternalRun::poll`] but without committing: a driver whose tasks finished
    /// without waiting may advance again at once, and must call [`ExternalRun::flush`] before
    /// it waits for anything (see [`crate::Durability::Coalesced`]).
    ///
    /// The core decides when to look at the cancellation flag ([`Engine::cancel`] from
    /// another task, the server): on the first advance after a flush (the driver flushes
    /// before it waits) and every 64 advances of a burst that never waits. When it is set,
    /// the run is cancelled here, no tasks are returned and [`ExternalRun::status`] is
    /// `Cancelled`: the driver aborts what it still has in flight and stops.
    pub fn advance(&mut self) -> Result<Vec<Task>, EngineError> {
        self.advances += 1;
        if self.check_cancel || self.advances >= CANCEL_CHECK_EVERY {
            self.check_cancel = false;
            self.advances = 0;
            if self.cancel_requested() && self.core.committed == RunStatus::Running {
                self.cancel()?;
                return Ok(Vec::new());
            }
        }
        let mut tasks = Vec::new();
        let mut actions = std::mem::take(&mut self.first);
        // Events that native steps emitted before their results were handed back come before
        // whatever those results produce (their `step-output`, the next steps, `run-finished`).
        self.core.take_emitted(&self.emit);
        loop {
            self.core.advance_into(&mut actions);
            let mut evaluated = false;
            for a in actions.drain(..) {
                if let Some(t) = self.task(a) {
                    tasks.push(t);
                } else {
                    evaluated = true;
                }
            }
            if !evaluated {
                return Ok(tasks);
            }
        }
    }

    /// Commits what [`ExternalRun::advance`] produced.
    pub fn flush(&mut self) -> Result<(), EngineError> {
        self.check_cancel = true;
        self.core.take_emitted(&self.emit);
        self.core.flush()
    }

    /// Turns an action into a task, or evaluates Rust code at once (returning None).
    fn task(&mut self, a: Action) -> Option<Task> {
        let graph = Arc::clone(self.core.graph());
        match a {
            Action::Run {
                path,
                node,
                input,
                attempt,
                resume,
                delay,
            } => match graph.node(node).handle {
                Some(handle) => {
                    let timeout = match &graph.node(node).kind {
                        super::builder::NodeKind::Step(def) => def.timeout,
                        _ => None,
                    };
                    if let Some(t) = timeout {
                        self.timed.push((String::from(&*path), t));
                    }
                    Some(Task::Step {
                        path: String::from(&*path),
                        handle,
                        input,
                        attempt,
                        resume,
                        delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        timeout_ms: timeout
                            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
                    })
                }
                None => {
                    let fut = run_step(
                        &graph,
                        &self.core,
                        &self.emit,
                        Arc::clone(&path),
                        node,
                        input,
                        attempt,
                        resume,
                        delay,
                    );
                    self.native.push((String::from(&*path), fut));
                    Some(Task::Native {
                        path: String::from(&*path),
                    })
                }
            },
            Action::Decide {
                path,
                node,
                kind,
                input,
            } => match graph.node(node).handle {
                Some(handle) => Some(Task::Decide {
                    path: String::from(&*path),
                    handle,
                    kind,
                    input,
                }),
                None => {
                    let r = super::engine::evaluate(&graph, node, kind, &input, &path);
                    self.core.complete(&path, r);
                    None
                }
            },
            Action::Sleep { path, wake_at } => Some(Task::Sleep {
                path: String::from(&*path),
                wake_at,
            }),
        }
    }

    /// Hands back a task's result. For an eval, `Ok` holds the answer.
    pub fn complete(&mut self, path: &str, result: Result<Value, StepError>) {
        if !self.timed.is_empty() {
            self.timed.retain(|(p, _)| p != path);
        }
        self.core.take_emitted(&self.emit);
        self.core.complete(path, result);
    }

    /// The attempt of the external step at `path` ran past its `timeout_ms`: completes it
    /// with the timeout error (retryable, as in the tokio driver; the step's retry policy
    /// decides) and returns its message, for the driver to abort the step's work with. `None`
    /// when `path` is not an external step with a timeout in flight (already completed: the
    /// timer lost the race; nothing changes).
    pub fn time_out(&mut self, path: &str) -> Option<String> {
        let i = self.timed.iter().position(|(p, _)| p == path)?;
        let (path, t) = self.timed.swap_remove(i);
        let err = super::engine::step_timed_out(&path, t);
        let message = err.message().to_string();
        self.core.take_emitted(&self.emit);
        self.core.complete(&path, Err(err));
        Some(message)
    }

    /// The run's deadline ([`ExternalRun::deadline`]) passed: ends the run as failed with the
    /// same error as the tokio driver and returns it (`None` if the workflow has no timeout or
    /// the run is not running any more).
    pub fn time_out_run(&mut self) -> Result<Option<String>, EngineError> {
        let Some(t) = self.core.graph().timeout else {
            return Ok(None);
        };
        if self.core.committed != RunStatus::Running || self.is_settled() {
            return Ok(None);
        }
        let message = super::engine::run_timed_out(t);
        self.fail(&message)?;
        Ok(Some(message))
    }

    /// The future of a [`Task::Native`] step (once); await it, then [`ExternalRun::complete`].
    pub fn native(&mut self, path: &str) -> Option<BoxFuture<'static, Result<Value, StepError>>> {
        let i = self.native.iter().position(|(p, _)| p == path)?;
        let (_, fut) = self.native.swap_remove(i);
        Some(Box::pin(async move { fut.await.1 }))
    }

    /// Ends the run as cancelled (after [`ExternalRun::cancel_requested`], or on the driver's
    /// own decision); in-flight tasks' results are then ignored.
    pub fn cancel(&mut self) -> Result<(), EngineError> {
        self.core.active.cancel.cancel();
        self.core.take_emitted(&self.emit);
        self.core.finish(RunStatus::Cancelled, "cancelled".into())
    }

    /// Ends the run as failed with `error` (for example when its deadline passed).
    pub fn fail(&mut self, error: &str) -> Result<(), EngineError> {
        self.core.active.cancel.cancel();
        self.core.take_emitted(&self.emit);
        self.core.finish(RunStatus::Failed, error.to_string())
    }

    /// Commits a custom event from the step at `path`.
    pub fn emit(&mut self, path: &str, name: &str, data: Value) -> Result<(), EngineError> {
        self.core.custom(path.into(), name.into(), data)
    }

    /// Reads a key of the run's shared state.
    pub fn state(&self, key: &str) -> Option<Value> {
        self.core.state.get(key)
    }

    /// Writes a key of the run's shared state (committed with the next poll).
    pub fn set_state(&self, key: &str, value: Value) {
        self.core.state.set(key, value);
    }

    /// All of the run's shared state.
    pub fn state_snapshot(&self) -> serde_json::Map<String, Value> {
        self.core.state.snapshot()
    }

    /// The run as it stands (output, error, suspended paths).
    pub fn outcome(&self) -> Run {
        outcome(&self.core)
    }

    /// Stops driving the run and returns it as it stands, moving its input and output out
    /// instead of copying them (what a driver calls once the run has settled).
    pub fn into_outcome(mut self) -> Run {
        super::engine::outcome_taken(&mut self.core)
    }

    /// Whether the run finished or suspended (nothing left to drive).
    pub fn is_settled(&self) -> bool {
        !matches!(self.core.status, Status::Running)
    }
}

impl Drop for ExternalRun {
    fn drop(&mut self) {
        lock(&self.engine.inner.active).remove(&*self.core.run_id);
    }
}
