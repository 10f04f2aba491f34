//! The `Step` trait, the context a step runs with, and typed step helpers.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::StepError;

/// One unit of work in a workflow. Input and output are JSON values at this layer; use
/// [`step_fn`] for typed steps with serde types.
///
/// ```
/// use miyabi_engine::{Step, StepContext, StepError};
/// use serde_json::{json, Value};
///
/// struct Double;
///
/// #[async_trait::async_trait]
/// impl Step for Double {
///     async fn run(&self, _ctx: &StepContext, input: Value) -> Result<Value, StepError> {
///         Ok(json!(input.as_i64().unwrap_or(0) * 2))
///     }
/// }
/// ```
#[async_trait]
pub trait Step: Send + Sync {
    /// Runs the step once. Return `ctx.suspend(payload)` to wait for a human or an event.
    async fn run(&self, ctx: &StepContext, input: Value) -> Result<Value, StepError>;

    /// The JSON Schema the input must satisfy, if any.
    fn input_schema(&self) -> Option<Value> {
        None
    }

    /// The JSON Schema the output must satisfy, if any.
    fn output_schema(&self) -> Option<Value> {
        None
    }
}

/// Shared, persisted key/value state of one run, readable and writable by all its steps.
#[derive(Debug, Default)]
pub(crate) struct RunState {
    inner: Mutex<StateInner>,
}

#[derive(Debug, Default)]
struct StateInner {
    values: HashMap<String, Value>,
    dirty: Vec<String>,
}

impl RunState {
    pub(crate) fn from_values(values: Vec<(String, Value)>) -> Self {
        Self {
            inner: Mutex::new(StateInner {
                values: values.into_iter().collect(),
                dirty: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StateInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self, key: &str) -> Option<Value> {
        self.lock().values.get(key).cloned()
    }

    pub(crate) fn set(&self, key: &str, value: Value) {
        let mut s = self.lock();
        if !s.dirty.iter().any(|k| k == key) {
            s.dirty.push(key.to_string());
        }
        s.values.insert(key.to_string(), value);
    }

    /// Appends the keys changed since the last call, with their values, to `into` (no
    /// allocation when nothing changed).
    pub(crate) fn take_dirty_into(&self, into: &mut Vec<(String, Value)>) {
        let mut s = self.lock();
        if s.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut s.dirty);
        into.extend(
            dirty
                .into_iter()
                .filter_map(|k| s.values.get(&k).cloned().map(|v| (k, v))),
        );
    }

    pub(crate) fn snapshot(&self) -> serde_json::Map<String, Value> {
        self.lock()
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// A custom event from a step, on its way to the run's event log.
#[derive(Debug)]
pub(crate) struct Emitted {
    pub path: String,
    pub name: String,
    pub data: Value,
}

/// The queue of a run's custom events between its steps and its driver: a mutex-guarded
/// deque and a wake-up. (A tokio channel allocates a 32-slot block per run up front, which
/// was a 2.5 KB allocation on every run's path whether or not a step emitted anything.)
#[derive(Clone, Default)]
pub(crate) struct Emitter(Arc<EmitQueue>);

#[derive(Default)]
struct EmitQueue {
    items: std::sync::Mutex<std::collections::VecDeque<Emitted>>,
    ready: tokio::sync::Notify,
}

impl Emitter {
    fn items(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Emitted>> {
        self.0
            .items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn send(&self, e: Emitted) {
        self.items().push_back(e);
        self.0.ready.notify_one();
    }

    pub(crate) fn try_recv(&self) -> Option<Emitted> {
        self.items().pop_front()
    }

    /// The next event; waits for one (cancel-safe: an event is only taken when returned).
    pub(crate) async fn recv(&self) -> Emitted {
        loop {
            if let Some(e) = self.try_recv() {
                return e;
            }
            self.0.ready.notified().await;
        }
    }
}

/// What a step can see and do while it runs: run id and path, attempt, idempotency key,
/// cancellation, shared run state, custom events, suspension and resume data.
///
/// Cloning it is cheap (one reference count): [`step_fn`] hands each closure its own clone.
#[derive(Clone)]
pub struct StepContext {
    // Behind one `Arc` rather than inline: a clone of a cancellation token takes a lock (twice,
    // counting its drop), which costs more than the allocation this saves.
    inner: Arc<CtxInner>,
}

struct CtxInner {
    run_id: Arc<str>,
    path: Arc<str>,
    attempt: u32,
    resume: Option<Value>,
    cancel: CancellationToken,
    state: Arc<RunState>,
    emitter: Option<Emitter>,
    clock: crate::clock::TimeSource,
}

impl std::fmt::Debug for StepContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepContext")
            .field("run_id", &self.inner.run_id)
            .field("path", &self.inner.path)
            .field("attempt", &self.inner.attempt)
            .finish_non_exhaustive()
    }
}

impl StepContext {
    /// The context of one attempt of the step at `path` of `core`'s run.
    pub(crate) fn new(
        core: &crate::workflow::core::RunCore,
        path: Arc<str>,
        attempt: u32,
        resume: Option<Value>,
        cancel: CancellationToken,
        emitter: Emitter,
    ) -> Self {
        Self {
            inner: Arc::new(CtxInner {
                run_id: Arc::clone(&core.run_id),
                path,
                attempt,
                resume,
                cancel,
                state: Arc::clone(&core.state),
                emitter: Some(emitter),
                clock: core.clock.clone(),
            }),
        }
    }

    /// The time by the engine's clock (ms since the epoch; see
    /// [`EngineBuilder::clock`](crate::EngineBuilder::clock)): what a step should use for
    /// times it records, so that tests with a manual clock see them move with it.
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    /// This step's path in the run (`analyze`, `checks/lint`, `each[3]`).
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// `run id + path`: stable across retries, replays and processes, for making external side
    /// effects idempotent.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.inner.run_id, self.inner.path)
    }

    /// The data given to `resume` when this step was suspended and is now resumed.
    pub fn resume_data(&self) -> Option<&Value> {
        self.inner.resume.as_ref()
    }

    /// Suspends the run at this step's path; the step runs again with
    /// [`StepContext::resume_data`] set once the run is resumed.
    ///
    /// ```
    /// # use miyabi_engine::{StepContext, StepError};
    /// # use serde_json::{json, Value};
    /// async fn review(ctx: StepContext, input: Value) -> Result<Value, StepError> {
    ///     match ctx.resume_data() {
    ///         Some(decision) => Ok(decision.clone()),
    ///         None => ctx.suspend(json!({"ask": "approve?", "draft": input})),
    ///     }
    /// }
    /// ```
    ///
    /// A payload object with a `resume_schema` key (a JSON Schema object) names the schema of
    /// the data this suspension must be resumed with: [`crate::Engine::resume`] checks the data
    /// against it, as against the step's own resume schema, and refuses data that breaks it
    /// ([`crate::EngineError::Schema`], naming the field) before anything is written. A schema
    /// that does not compile is ignored (with a warning).
    pub fn suspend<T>(&self, payload: impl Serialize) -> Result<T, StepError> {
        let payload = serde_json::to_value(payload)
            .map_err(|e| StepError::fatal(format!("suspend payload is not JSON: {e}")))?;
        Err(StepError::suspend(payload))
    }

    /// The token cancelled when the run is cancelled or the step times out. Watch it; to
    /// stop work of your own, take a `child_token()` of it: a step without a timeout shares
    /// its run's token, so cancelling this one cancels the whole run.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    /// Whether the run was cancelled (or the step timed out).
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Reads a key of the run's shared state.
    pub fn state(&self, key: &str) -> Option<Value> {
        self.inner.state.get(key)
    }

    /// Writes a key of the run's shared state; persisted with the step's result.
    pub fn set_state(&self, key: &str, value: impl Into<Value>) {
        self.inner.state.set(key, value.into());
    }

    /// All of the run's shared state.
    pub fn state_snapshot(&self) -> serde_json::Map<String, Value> {
        self.inner.state.snapshot()
    }

    /// Emits a custom event to the run's subscribers and event log.
    pub fn emit(&self, name: &str, data: impl Into<Value>) {
        if let Some(tx) = &self.inner.emitter {
            // Read by the run's driver; after it ends there is no one left to tell.
            tx.send(Emitted {
                path: self.inner.path.to_string(),
                name: name.to_string(),
                data: data.into(),
            });
        }
    }
}

/// How a failed step is retried: exponential backoff with jitter, up to `max_attempts`.
///
/// ```
/// use std::time::Duration;
/// let policy = miyabi_engine::RetryPolicy::attempts(5).initial_delay(Duration::from_millis(50));
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retries).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_delay: Duration,
    /// Upper bound of any delay.
    pub max_delay: Duration,
    /// Growth factor per attempt.
    pub multiplier: f64,
    /// Whether to randomize each delay (between half and all of it).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// A policy with `n` total attempts and default backoff.
    pub fn attempts(n: u32) -> Self {
        Self {
            max_attempts: n.max(1),
            ..Self::default()
        }
    }

    /// Sets the delay before the second attempt.
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// Sets the upper bound of delays.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Turns jitter on or off.
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// The delay before attempt `next` (2 for the first retry).
    pub fn delay_before(&self, next: u32) -> Duration {
        let exp = next.saturating_sub(2).min(60) as i32;
        let base = self.initial_delay.as_secs_f64() * self.multiplier.powi(exp);
        let capped = base.min(self.max_delay.as_secs_f64()).max(0.0);
        let secs = if self.jitter {
            capped * (0.5 + fastrand::f64() * 0.5)
        } else {
            capped
        };
        // `secs` is finite and at most `max_delay` (NaN from a bad multiplier became 0), but
        // `max_delay` itself may be beyond what an f64 of seconds converts back exactly.
        Duration::try_from_secs_f64(secs)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// A step made from an async closure over typed input and output; see [`step_fn`].
pub struct StepFn<F, I, O> {
    f: F,
    _types: PhantomData<fn(I) -> O>,
}

#[async_trait]
impl<F, Fut, I, O> Step for StepFn<F, I, O>
where
    F: Fn(StepContext, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, StepError>> + Send + 'static,
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
{
    async fn run(&self, ctx: &StepContext, input: Value) -> Result<Value, StepError> {
        // A step typed as plain `Value` takes and gives JSON as is, without a serde round trip.
        let mut slot = Some(input);
        let typed = (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<I>>()
            .and_then(Option::take);
        let input: I = match (typed, slot) {
            (Some(i), _) => i,
            (None, Some(v)) => serde_json::from_value(v).map_err(|e| {
                StepError::fatal(format!(
                    "step `{}`: input does not match the step's Rust type: {e}",
                    ctx.path()
                ))
            })?,
            (None, None) => Err(StepError::fatal("step input missing"))?,
        };
        let out = (self.f)(ctx.clone(), input).await?;
        let mut slot = Some(out);
        if let Some(v) = (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<Value>>()
            .and_then(Option::take)
        {
            return Ok(v);
        }
        serde_json::to_value(slot).map_err(|e| {
            StepError::fatal(format!(
                "step `{}`: output cannot be turned into JSON: {e}",
                ctx.path()
            ))
        })
    }
}

/// Makes a workflow node from an async closure with serde input and output types.
///
/// ```
/// use miyabi_engine::{step_fn, StepContext};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// struct Issue { title: String }
/// #[derive(Serialize)]
/// struct Analysis { quality: f64 }
///
/// let analyze = step_fn(|_ctx: StepContext, issue: Issue| async move {
///     Ok(Analysis { quality: if issue.title.is_empty() { 0.0 } else { 0.9 } })
/// });
/// # let _ = analyze;
/// ```
pub fn step_fn<F, Fut, I, O>(f: F) -> super::Node
where
    F: Fn(StepContext, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, StepError>> + Send + 'static,
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
{
    super::Node::step(StepFn {
        f,
        _types: PhantomData,
    })
}
