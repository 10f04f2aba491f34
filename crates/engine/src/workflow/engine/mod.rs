//! The `Engine` and its tokio driver.

// Keys are run ids, workflow ids and fingerprints the engine and the application make: a fast
// non-keyed hash is enough.
use rustc_hash::FxHashMap as HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, UNIX_EPOCH};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::{FutureExt, Stream};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::builder::{CommittedWorkflow, Graph, NodeKind, SleepSpec};
use super::core::{Live, RunCore, Suspension};
use super::event::RunEvent;
use super::machine::{Action, DecisionKind, Status};
use super::step::{Emitter, StepContext};
use crate::error::{EngineError, StepError};
use crate::store::{Claim, MemoryStore, RunFilter, RunRecord, RunStatus, SqliteStore, Store};

mod driver;
mod events;
mod lease;
mod worker;

pub(crate) use driver::{
    StepResult, evaluate, outcome, outcome_taken, run_step, run_timed_out, step_timed_out,
};

use lease::{hostname, owner_is_dead};

/// The key of a suspension payload that names the JSON Schema of its resume data.
const SUSPENSION_RESUME_SCHEMA: &str = "resume_schema";

/// A run as seen from outside: status, output or error, and what it waits for.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Run {
    /// Run id.
    pub id: String,
    /// Workflow id.
    pub workflow: String,
    /// Current status.
    pub status: RunStatus,
    /// The run's input.
    pub input: Value,
    /// The output, once succeeded.
    pub output: Option<Value>,
    /// The error, once failed or cancelled.
    pub error: Option<String>,
    /// The suspended paths and their payloads, while suspended.
    pub suspended: Vec<Suspension>,
    /// Creation time, ms since the Unix epoch.
    pub created_at: i64,
    /// Last status change, ms since the Unix epoch.
    pub updated_at: i64,
}

impl Run {
    fn from_record(r: RunRecord, suspended: Vec<Suspension>) -> Self {
        Self {
            id: r.id,
            workflow: r.workflow,
            status: r.status,
            input: Arc::unwrap_or_clone(r.input),
            output: r.output.map(Arc::unwrap_or_clone),
            error: r.error,
            suspended,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub(crate) struct Active {
    pub(crate) cancel: CancellationToken,
    pub(crate) live: Live,
}

impl Active {
    /// A fresh token and no subscribers, for a run being created or loaded.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            cancel: CancellationToken::new(),
            live: Live::default(),
        })
    }
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    /// Registered definitions by fingerprint, and the newest fingerprint per workflow id.
    by_fingerprint: RwLock<HashMap<String, Arc<Graph>>>,
    latest: RwLock<HashMap<String, String>>,
    pub(crate) active: Mutex<HashMap<Arc<str>, Arc<Active>>>,
    owner: Arc<str>,
    lease: Duration,
    always_replay: bool,
    durability: Durability,
    heartbeat: std::sync::OnceLock<()>,
    /// The approvals worker (deadlines, decided gates, notifications): started once.
    worker: std::sync::OnceLock<()>,
    pub(crate) wake: Arc<tokio::sync::Notify>,
    worker_every: Duration,
    /// Finished runs the worker deletes, and how often it looks.
    retention: Option<crate::store::Retention>,
    retention_every: Duration,
    pub(crate) public_url: String,
    /// Where the worker hands decided gates of runs whose steps run outside Rust.
    pub(crate) gate_handoff: Mutex<Option<GateHandoff>>,
    /// Where the engine reads the time.
    pub(crate) clock: crate::clock::TimeSource,
    /// Batches of runs waiting while another run commits (see `group.rs`).
    group: Arc<super::group::GroupCommit>,
    /// At most this many runs taken over by `recover`/`work` execute here at once.
    max_active: Option<usize>,
    /// Runs executing at once across every engine on the store (checked by the claims of
    /// `recover`/`work`).
    pub(crate) limits: crate::store::ConcurrencyLimits,
    /// Wakes `Engine::work` when one of its runs ends.
    work_wake: Arc<tokio::sync::Notify>,
    /// Held from a claim of a run until the run is in `active`, so that `recover` never
    /// takes a run this engine is about to drive for one it left behind (and drives it twice).
    pub(crate) claims: Mutex<()>,
}

/// A function that takes a decided approval gate of a run driven outside Rust: `(run_id, gate)`
/// (see [`Engine::hand_external_gates_to`]).
pub type GateHandoff = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// When the tokio driver commits a run's step records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every step's record is committed before the run waits for anything (a step's I/O, a
    /// sleep, a timer) and before the run reports its status; steps that finish without
    /// waiting (pure computation) share one commit. A crash can only lose results of such
    /// steps that completed within the same non-waiting burst, and those are re-run
    /// (at-least-once, as for a crash during a step).
    #[default]
    Coalesced,
    /// One commit per step, even for steps that finish without waiting.
    EveryStep,
}

/// Configures an [`Engine`].
///
/// ```
/// use std::time::Duration;
/// let engine = miyabi_engine::Engine::builder()
///     .store(miyabi_engine::MemoryStore::new())
///     .lease(Duration::from_secs(10))
///     .build();
/// # let _ = engine;
/// ```
pub struct EngineBuilder {
    store: Option<Arc<dyn Store>>,
    lease: Duration,
    always_replay: bool,
    durability: Durability,
    worker_every: Duration,
    retention: Option<crate::store::Retention>,
    retention_every: Duration,
    public_url: String,
    clock: crate::clock::TimeSource,
    max_active: Option<usize>,
    limits: crate::store::ConcurrencyLimits,
}

impl EngineBuilder {
    /// At most `n` runs execute in this engine at once when it takes runs over
    /// ([`Engine::recover`], [`Engine::work`]); the rest stay in the store for other workers
    /// (default: no limit). With several worker processes on one store this spreads the runs
    /// between them and bounds each one's load.
    pub fn max_active(mut self, n: usize) -> Self {
        self.max_active = Some(n.max(1));
        self
    }

    /// At most `n` runs of the workflow `workflow_id` execute at once across every engine on
    /// the store, counted in the store: a run executes while it is running with an owner whose
    /// lease has not ended (suspended runs take no slot). [`Engine::work`] and
    /// [`Engine::recover`] never take a waiting run (enqueued with [`Engine::enqueue`], or left
    /// by a lapsed lease) beyond it; such runs wait unowned, oldest first, until a run of the
    /// workflow ends. `n` is at least 1.
    ///
    /// The limits are checked when runs are claimed, by the claiming engine: give every engine
    /// that works on the store the same limits (as the same code does). Runs an engine starts
    /// itself ([`Engine::start`], [`Engine::spawn`]), resumes or retries execute at once,
    /// whatever the limits, and take slots while they execute (see docs/scaling.md).
    ///
    /// ```
    /// let engine = miyabi_engine::Engine::builder()
    ///     .workflow_limit("ingest", 2)
    ///     .global_limit(50)
    ///     .build();
    /// # let _ = engine;
    /// ```
    pub fn workflow_limit(mut self, workflow_id: impl Into<String>, n: usize) -> Self {
        self.limits = self.limits.workflow(workflow_id, n.max(1));
        self
    }

    /// At most `n` runs of any workflow execute at once across every engine on the store
    /// (at least 1); checked as [`EngineBuilder::workflow_limit`] is. Unlike
    /// [`EngineBuilder::max_active`], which bounds one engine, this bounds the deployment.
    pub fn global_limit(mut self, n: usize) -> Self {
        self.limits = self.limits.global(n.max(1));
        self
    }

    /// Where the engine reads the time for what it writes and compares: run and record
    /// timestamps, approval deadlines, leases, retention (default: the system clock). Tests
    /// pass a [`ManualClock`](crate::clock::ManualClock) to move a week forward without
    /// waiting. Timers (sleeps, timeouts, backoff) still wait on tokio's clock.
    pub fn clock(mut self, clock: impl crate::clock::Clock) -> Self {
        self.clock = crate::clock::TimeSource::Custom(Arc::new(clock));
        self
    }

    /// The store for runs (default: in memory).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A shared store.
    pub fn store_arc(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// How long this engine's claim on a running run holds without renewal (default 30 s).
    /// Another engine may recover the run once it expires (or at once, when the owning
    /// process on this host is gone).
    pub fn lease(mut self, d: Duration) -> Self {
        self.lease = d;
        self
    }

    /// Drops the in-memory machine after every step and rebuilds it from the store (a test
    /// mode proving that every decision is in the records).
    pub fn always_replay(mut self, on: bool) -> Self {
        self.always_replay = on;
        self
    }

    /// When step records are committed (default [`Durability::Coalesced`]).
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// How often the approvals worker looks for passed deadlines, decided gates to hand to
    /// their runs and notifications to send (default 1 s; it also wakes at once after a
    /// change made in this process).
    pub fn worker_interval(mut self, d: Duration) -> Self {
        self.worker_every = d.max(Duration::from_millis(1));
        self
    }

    /// Deletes finished runs by `rule` in the background (see [`Engine::prune`]): the
    /// engine's worker applies it once it starts (with the first run this engine creates)
    /// and then every [`EngineBuilder::retention_interval`]. Running and suspended runs are
    /// never deleted.
    ///
    /// ```
    /// use std::time::Duration;
    /// use miyabi_engine::{Engine, Retention};
    /// let engine = Engine::builder()
    ///     .retention(Retention::older_than(Duration::from_secs(30 * 86_400)).keep_last(10_000))
    ///     .build();
    /// # let _ = engine;
    /// ```
    pub fn retention(mut self, rule: crate::store::Retention) -> Self {
        self.retention = (!rule.is_empty()).then_some(rule);
        self
    }

    /// How often the retention rule is applied (default 60 s).
    pub fn retention_interval(mut self, d: Duration) -> Self {
        self.retention_every = d.max(Duration::from_millis(1));
        self
    }

    /// The dashboard's public address, used in notification links
    /// (default `http://127.0.0.1:7420`).
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = url.into().trim_end_matches('/').to_string();
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Engine {
        let pid = std::process::id();
        let host = hostname();
        Engine {
            inner: Arc::new(Inner {
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                by_fingerprint: RwLock::new(HashMap::default()),
                latest: RwLock::new(HashMap::default()),
                active: Mutex::new(HashMap::default()),
                owner: format!("{}@{host}:{pid}", uuid::Uuid::now_v7().simple()).into(),
                lease: self.lease,
                always_replay: self.always_replay,
                durability: self.durability,
                heartbeat: std::sync::OnceLock::new(),
                worker: std::sync::OnceLock::new(),
                wake: Arc::new(tokio::sync::Notify::new()),
                worker_every: self.worker_every,
                retention: self.retention,
                retention_every: self.retention_every,
                public_url: self.public_url,
                gate_handoff: Mutex::new(None),
                clock: self.clock,
                group: Arc::default(),
                max_active: self.max_active,
                limits: self.limits,
                work_wake: Arc::new(tokio::sync::Notify::new()),
                claims: Mutex::new(()),
            }),
        }
    }
}

/// Runs workflows durably: start, get, list, resume, cancel, watch events, recover after a
/// crash.
///
/// ```
/// use miyabi_engine::{step_fn, Engine, StepContext, Workflow};
/// use serde_json::{json, Value};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let add = step_fn(|_ctx: StepContext, v: Value| async move { Ok(json!(v.as_i64().unwrap_or(0) + 1)) });
/// let wf = Workflow::new("count").step("add", add).commit()?;
/// let engine = Engine::in_memory();
/// let run = engine.start(&wf, json!(41)).await?;
/// assert_eq!(run.output, Some(json!(42)));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("owner", &self.inner.owner)
            .finish_non_exhaustive()
    }
}

/// What [`Engine::request_cancel`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum CancelRequest {
    /// The run was not executing in this engine: its cancellation is committed.
    Cancelled(Run),
    /// The run executes in this engine: its driver was told to stop and commits the
    /// cancellation itself.
    Requested,
}

impl CancelRequest {
    fn into_run(self, run_id: &str) -> Result<Run, EngineError> {
        match self {
            Self::Cancelled(run) => Ok(run),
            Self::Requested => Err(EngineError::Contended {
                run: run_id.to_string(),
                operation: "cancel".into(),
            }),
        }
    }
}

/// A run started with [`Engine::spawn`]: wait for it or watch it.
pub struct RunHandle {
    id: String,
    join: tokio::task::JoinHandle<Result<Run, EngineError>>,
}

impl RunHandle {
    /// The run id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits until the run finishes or suspends.
    pub async fn wait(self) -> Result<Run, EngineError> {
        match self.join.await {
            Ok(r) => r,
            Err(e) => Err(EngineError::Aborted {
                run: self.id,
                reason: e.to_string(),
            }),
        }
    }
}

impl Engine {
    /// A builder with defaults (in-memory store, 30 s lease).
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            store: None,
            lease: Duration::from_secs(30),
            always_replay: false,
            durability: Durability::default(),
            worker_every: Duration::from_secs(1),
            retention: None,
            retention_every: Duration::from_secs(60),
            public_url: "http://127.0.0.1:7420".into(),
            clock: crate::clock::TimeSource::System,
            max_active: None,
            limits: crate::store::ConcurrencyLimits::default(),
        }
    }

    /// The time by this engine's clock (ms since the epoch). Public (and hidden) for the HTTP
    /// server in the crate `miyabi`, which stamps its events by the engine's clock; not part of
    /// the API.
    #[doc(hidden)]
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// An engine over an in-memory store.
    pub fn in_memory() -> Self {
        Self::builder().build()
    }

    /// An engine over a SQLite file (created if missing).
    pub fn sqlite(path: impl AsRef<std::path::Path>) -> Result<Self, EngineError> {
        Ok(Self::builder().store(SqliteStore::open(path)?).build())
    }

    /// An engine over the database `db` names: a Postgres URL (`postgres://…` or
    /// `postgresql://…`, with the `postgres` feature) or a SQLite file path. What the CLI's
    /// `--db` and the server accept.
    pub fn open(db: &str) -> Result<Self, EngineError> {
        if crate::store::is_postgres_url(db) {
            #[cfg(feature = "postgres")]
            return Self::postgres(db);
            #[cfg(not(feature = "postgres"))]
            return Err(EngineError::Store(crate::error::StoreError::Open {
                path: crate::store::shown_location(db),
                message: "this build of miyabi has no Postgres support (cargo feature `postgres`)"
                    .into(),
            }));
        }
        Self::sqlite(db)
    }

    /// An engine over a Postgres database (`postgres://user:password@host:port/database`, the
    /// tables in the schema `miyabi`), shared with other engine processes: see
    /// [`Engine::work`] and docs/scaling.md. Use [`crate::PostgresStore::builder`] with
    /// [`EngineBuilder::store`] for another schema or pool size.
    #[cfg(feature = "postgres")]
    pub fn postgres(url: &str) -> Result<Self, EngineError> {
        Ok(Self::builder()
            .store(crate::store::PostgresStore::open(url)?)
            .build())
    }

    /// Creates a run without executing it here: it is committed with no owner, for a worker
    /// ([`Engine::work`], in this or another process) to take and drive. The mode of a web
    /// process that only enqueues. Returns the run id.
    pub fn enqueue(
        &self,
        workflow: &CommittedWorkflow,
        input: Value,
    ) -> Result<String, EngineError> {
        let g = &workflow.graph;
        if !read(&self.inner.by_fingerprint).contains_key(&g.fingerprint) {
            self.register(workflow);
        }
        let now = self.now_ms();
        let mut core = RunCore::create(
            Arc::clone(&self.inner.store),
            Arc::clone(g),
            new_run_id(now),
            input,
            &self.inner.owner,
            crate::store::ms_after(now, self.inner.lease),
            self.inner.clock.clone(),
        )?;
        core.disown();
        core.flush_grouped_blocking(&self.inner.group)?;
        // A worker in this process (if any) looks at once.
        self.inner.work_wake.notify_one();
        Ok(String::from(&*core.run_id))
    }

    /// The engine's store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// This engine instance's owner id (`uuid@host:pid`).
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// Registers a workflow definition; several definitions (fingerprints) of one workflow id
    /// may be registered, so that old runs can finish. New runs use the newest.
    pub fn register(&self, workflow: &CommittedWorkflow) {
        let g = &workflow.graph;
        write(&self.inner.by_fingerprint).insert(g.fingerprint.clone(), Arc::clone(g));
        write(&self.inner.latest).insert(g.id.clone(), g.fingerprint.clone());
    }

    /// The registered workflows: the newest definition of each workflow id, sorted by id.
    pub fn workflows(&self) -> Vec<CommittedWorkflow> {
        let by_fingerprint = read(&self.inner.by_fingerprint);
        let mut out: Vec<CommittedWorkflow> = read(&self.inner.latest)
            .values()
            .filter_map(|fp| by_fingerprint.get(fp))
            .map(|g| CommittedWorkflow {
                graph: Arc::clone(g),
            })
            .collect();
        out.sort_by(|a, b| a.id().cmp(b.id()));
        out
    }

    /// The newest registered definition of a workflow id.
    pub fn workflow(&self, id: &str) -> Option<CommittedWorkflow> {
        let fp = read(&self.inner.latest).get(id).cloned()?;
        read(&self.inner.by_fingerprint)
            .get(&fp)
            .map(|g| CommittedWorkflow {
                graph: Arc::clone(g),
            })
    }

    /// Whether the stored run `r`'s definition (registered with this engine) has steps that run
    /// outside Rust, so that only an [`crate::external::ExternalRun`] can drive it. Public (and
    /// hidden) for the HTTP server in the crate `miyabi`, which hands such runs to its driver;
    /// not part of the API.
    #[doc(hidden)]
    pub fn is_external_run(&self, r: &RunRecord) -> Result<bool, EngineError> {
        self.graph_for(r).map(|g| g.is_external())
    }

    pub(crate) fn graph_for(&self, r: &RunRecord) -> Result<Arc<Graph>, EngineError> {
        if let Some(g) = read(&self.inner.by_fingerprint).get(&r.fingerprint) {
            return Ok(Arc::clone(g));
        }
        match read(&self.inner.latest).get(&r.workflow) {
            Some(current) => Err(EngineError::DefinitionChanged {
                run: r.id.clone(),
                workflow: r.workflow.clone(),
                stored: r.fingerprint.clone(),
                current: current.clone(),
            }),
            None => Err(EngineError::UnknownWorkflow(r.workflow.clone())),
        }
    }

    /// Starts a run and drives it until it finishes or suspends.
    pub async fn start(
        &self,
        workflow: &CommittedWorkflow,
        input: Value,
    ) -> Result<Run, EngineError> {
        let core = self.create(workflow, input)?;
        self.activate(&core);
        self.drive(core).await
    }

    /// Starts a run in the background; the run is committed before this returns.
    pub fn spawn(
        &self,
        workflow: &CommittedWorkflow,
        input: Value,
    ) -> Result<RunHandle, EngineError> {
        let mut core = self.create(workflow, input)?;
        // Active before its row exists: a concurrent `recover` in this engine must never see
        // the run as one of ours that nobody drives.
        self.activate(&core);
        if let Err(e) = core.flush_grouped_blocking(&self.inner.group) {
            lock(&self.inner.active).remove(&*core.run_id);
            return Err(e);
        }
        let id = String::from(&*core.run_id);
        let engine = self.clone();
        let join = tokio::spawn(async move { engine.drive(core).await });
        Ok(RunHandle { id, join })
    }

    pub(crate) fn create(
        &self,
        workflow: &CommittedWorkflow,
        input: Value,
    ) -> Result<Box<RunCore>, EngineError> {
        let g = &workflow.graph;
        if !read(&self.inner.by_fingerprint).contains_key(&g.fingerprint) {
            self.register(workflow);
        }
        self.ensure_heartbeat();
        if self.inner.retention.is_some() && self.inner.worker.get().is_none() {
            self.start_worker();
        }
        let now = self.now_ms();
        RunCore::create(
            Arc::clone(&self.inner.store),
            Arc::clone(g),
            new_run_id(now),
            input,
            &self.inner.owner,
            crate::store::ms_after(now, self.inner.lease),
            self.inner.clock.clone(),
        )
    }

    /// Counts the run as executing here (for `cancel`, `events` and recovery).
    pub(crate) fn activate(&self, core: &RunCore) {
        lock(&self.inner.active).insert(Arc::clone(&core.run_id), Arc::clone(&core.active));
    }

    /// Gives resume data to a suspended path and drives the run until it finishes or
    /// suspends again. Works from any process on the same store.
    ///
    /// An approval gate ([`crate::approval::ApprovalGate`]) cannot be resumed this way: decide
    /// it through [`Engine::approvals`], which keeps its audit trail.
    pub async fn resume(&self, run_id: &str, path: &str, data: Value) -> Result<Run, EngineError> {
        let (core, actions) = self.prepare_resume(run_id, path, data, false)?;
        self.activate(&core);
        self.drive_from(core, actions).await
    }

    /// Gives resume data to a suspended path and drives the run in the background. Errors
    /// about the resume itself (unknown run, path not suspended, resume data violating its
    /// schema) are returned before this returns; the handle waits for the rest.
    pub fn spawn_resume(
        &self,
        run_id: &str,
        path: &str,
        data: Value,
    ) -> Result<RunHandle, EngineError> {
        let (core, actions) = self.prepare_resume(run_id, path, data, false)?;
        self.activate(&core);
        let id = run_id.to_string();
        let engine = self.clone();
        let join = tokio::spawn(async move { engine.drive_from(core, actions).await });
        Ok(RunHandle { id, join })
    }

    /// Retries a failed run from its failed steps and drives it until it finishes or
    /// suspends: the paths that failed run again from attempt 1, everything that succeeded
    /// before is replayed from the store, not run again, and the run's event log gains a
    /// `run-retried` event naming the paths (its earlier events, failures included, stay).
    /// Works from any process on the same store, for runs of a workflow registered here under
    /// the definition the run started with.
    ///
    /// Refused, with nothing written, when the run is not failed
    /// ([`EngineError::NotRetryable`]), failed outside any step — on its workflow's timeout,
    /// which counts from the run's creation, or on a divergence
    /// ([`EngineError::NothingToRetry`]) — or is being retried by another engine
    /// ([`EngineError::Contended`]). A non-idempotent step that failed runs again too: the
    /// retry is the caller's decision.
    ///
    /// ```
    /// # use miyabi_engine::{Engine, RunStatus, StepContext, StepError, Workflow, step_fn};
    /// # use std::sync::atomic::{AtomicBool, Ordering};
    /// # use std::sync::Arc;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let fixed = Arc::new(AtomicBool::new(false));
    /// let f = Arc::clone(&fixed);
    /// let wf = Workflow::new("flaky")
    ///     .step("call", step_fn(move |_c: StepContext, v: serde_json::Value| {
    ///         let ok = f.load(Ordering::SeqCst);
    ///         async move { if ok { Ok(v) } else { Err(StepError::fatal("service down")) } }
    ///     }))
    ///     .commit()?;
    /// let engine = Engine::in_memory();
    /// engine.register(&wf);
    /// let run = engine.start(&wf, serde_json::json!(1)).await?;
    /// assert_eq!(run.status, RunStatus::Failed);
    /// fixed.store(true, Ordering::SeqCst); // the service is back
    /// let run = engine.retry(&run.id).await?;
    /// assert_eq!(run.status, RunStatus::Succeeded);
    /// # Ok(()) }
    /// ```
    pub async fn retry(&self, run_id: &str) -> Result<Run, EngineError> {
        let (core, actions) = self.prepare_retry(run_id)?;
        self.drive_from(core, actions).await
    }

    /// [`Engine::retry`] in the background: the refusals are returned before this returns;
    /// the handle waits for the rest.
    pub fn spawn_retry(&self, run_id: &str) -> Result<RunHandle, EngineError> {
        let (core, actions) = self.prepare_retry(run_id)?;
        let id = run_id.to_string();
        let engine = self.clone();
        let join = tokio::spawn(async move { engine.drive_from(core, actions).await });
        Ok(RunHandle { id, join })
    }

    /// Checks that a run may be retried, claims it, commits the reopening (see
    /// [`RunCore::load_retry`]) and returns the run's core with the actions to start with.
    pub(crate) fn prepare_retry(
        &self,
        run_id: &str,
    ) -> Result<(Box<RunCore>, Vec<Action>), EngineError> {
        let record = self
            .inner
            .store
            .run(run_id)?
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))?;
        if record.status != RunStatus::Failed {
            return Err(EngineError::NotRetryable {
                run: run_id.to_string(),
                status: record.status,
            });
        }
        let graph = self.graph_for(&record)?;
        let nothing = |r: &RunRecord| EngineError::NothingToRetry {
            run: run_id.to_string(),
            error: r
                .error
                .clone()
                .unwrap_or_else(|| "no error recorded".into()),
        };
        // Refused before the claim when there is nothing to run again: nothing is written.
        let steps = self.inner.store.steps(run_id)?;
        if !steps
            .iter()
            .any(|s| s.status == crate::store::StepStatus::Failed)
        {
            return Err(nothing(&record));
        }
        // Gates the run still waits at were closed when it failed: nobody could decide them.
        let waiting: Vec<&str> = steps
            .iter()
            .filter(|s| {
                s.status == crate::store::StepStatus::Suspended
                    && s.payload
                        .as_ref()
                        .is_some_and(crate::approval::is_gate_payload)
            })
            .map(|s| &*s.path)
            .collect();
        if let (false, Some(gates)) = (waiting.is_empty(), self.inner.store.gates()) {
            let closed: Vec<String> = gates
                .list_gates(&crate::approval::ApprovalFilter {
                    run_id: Some(run_id.to_string()),
                    status: Some(crate::approval::ApprovalStatus::Closed),
                    ..Default::default()
                })?
                .into_iter()
                .filter(|a| waiting.contains(&a.gate.as_str()))
                .map(|a| a.gate)
                .collect();
            if !closed.is_empty() {
                return Err(EngineError::GatesClosed {
                    run: run_id.to_string(),
                    gates: closed,
                });
            }
        }
        let _claiming = lock(&self.inner.claims);
        let claimed = self.inner.store.claim(&Claim {
            run: run_id,
            status: RunStatus::Failed,
            owner: None,
            new_owner: &self.inner.owner,
            lease_until: crate::store::ms_after(self.now_ms(), self.inner.lease),
        })?;
        if !claimed {
            return Err(EngineError::Contended {
                run: run_id.to_string(),
                operation: "retry".into(),
            });
        }
        self.ensure_heartbeat();
        // Read again under the claim: the records are this engine's until it releases them.
        let reopened = (|| {
            let record = self
                .inner
                .store
                .run(run_id)?
                .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))?;
            let Some(mut core) = RunCore::load_retry(
                Arc::clone(&self.inner.store),
                graph,
                &record,
                &self.inner.owner,
                self.inner.clock.clone(),
            )?
            else {
                return Err(nothing(&record));
            };
            self.activate(&core);
            match core.poll() {
                Ok((actions, _)) => Ok((core, actions)),
                Err(e) => {
                    lock(&self.inner.active).remove(run_id);
                    Err(e)
                }
            }
        })();
        match reopened {
            Ok(done) => {
                tracing::info!(run = %run_id, "run retried from its failed steps");
                Ok(done)
            }
            Err(e) => {
                // The claim marked the run running: put it back as it was (failed, with its
                // error, released), so that it neither hangs as running nor loses its error.
                let back = crate::store::Batch {
                    update: Some(crate::store::RunUpdate {
                        status: RunStatus::Failed,
                        output: None,
                        error: record.error.clone(),
                        updated_at: self.now_ms(),
                        release: true,
                    }),
                    fence: Some(Arc::clone(&self.inner.owner)),
                    ..Default::default()
                };
                if let Err(undo) = self.inner.store.commit(run_id, back) {
                    tracing::error!(run = %run_id, error = %undo, "a refused retry could not put the run back as failed; it is left to lease expiry");
                }
                Err(e)
            }
        }
    }

    /// Checks the path and the resume data against a suspended run, then claims it and
    /// commits the data: returns the run's core and the actions to start with. A rejected
    /// resume (unknown path, a gate resumed directly, data violating the step's resume schema)
    /// is refused before the claim, so it changes nothing in the store.
    pub(crate) fn prepare_resume(
        &self,
        run_id: &str,
        path: &str,
        data: Value,
        gate: bool,
    ) -> Result<(Box<RunCore>, Vec<Action>), EngineError> {
        let record = self
            .inner
            .store
            .run(run_id)?
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))?;
        if record.status != RunStatus::Suspended {
            return Err(EngineError::NotResumable {
                run: run_id.to_string(),
                status: record.status,
                path: path.to_string(),
            });
        }
        let graph = self.graph_for(&record)?;
        // Validate on a replay that commits nothing: the run's row and records stay as they
        // are when the resume is refused.
        {
            let mut probe = RunCore::load(
                Arc::clone(&self.inner.store),
                Arc::clone(&graph),
                &record,
                RunStatus::Suspended,
                &self.inner.owner,
                self.inner.clock.clone(),
            )?;
            let mut actions = Vec::new();
            if probe.advance_into(&mut actions) == RunStatus::Suspended && actions.is_empty() {
                self.check_resume(&probe, run_id, path, &data, gate)?;
            }
        }
        // Until the run is active here (below), `recover` in this engine must not take it.
        let _claiming = lock(&self.inner.claims);
        let claimed = self.inner.store.claim(&Claim {
            run: run_id,
            status: RunStatus::Suspended,
            owner: None,
            new_owner: &self.inner.owner,
            lease_until: crate::store::ms_after(self.now_ms(), self.inner.lease),
        })?;
        if !claimed {
            return Err(EngineError::Contended {
                run: run_id.to_string(),
                operation: format!("resume `{path}`"),
            });
        }
        // The claim holds only while it is renewed: without the heartbeat, an engine that only
        // resumes runs would lose them to another engine's `recover` while still running them.
        self.ensure_heartbeat();
        // Loaded as `Suspended`, its status before the claim: the replay below then commits no
        // second `run-suspended` event and does not drop the owner the claim just set (a run
        // left running without an owner could be taken over by another engine's `recover`).
        // Loaded again after the claim: another process may have resumed and re-suspended the
        // run between the check above and the claim.
        let record = self
            .inner
            .store
            .run(run_id)?
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))?;
        let mut core = RunCore::load(
            Arc::clone(&self.inner.store),
            graph,
            &record,
            RunStatus::Suspended,
            &self.inner.owner,
            self.inner.clock.clone(),
        )?;
        // Replay up to the suspension points (commits nothing new for a consistent store).
        let (actions, status) = core.poll()?;
        if !actions.is_empty() || status != RunStatus::Suspended {
            // A resumed path that never ran (crash after resume): just continue the run.
            self.activate(&core);
            return Ok((core, actions));
        }
        if let Err(e) = self.check_resume(&core, run_id, path, &data, gate) {
            // Only when the run changed between the check and the claim.
            core.release_suspended()?;
            return Err(e);
        }
        core.resume(path, data)?;
        self.activate(&core);
        Ok((core, Vec::new()))
    }

    /// Whether `path` of a suspended run may be resumed with `data`: it is suspended, it is
    /// (or is not, for `gate` false) an approval gate, and `data` satisfies its resume schema
    /// and the one its suspension payload names (`resume_schema`, see [`StepContext::suspend`]).
    fn check_resume(
        &self,
        core: &RunCore,
        run_id: &str,
        path: &str,
        data: &Value,
        gate: bool,
    ) -> Result<(), EngineError> {
        let suspensions = core.suspensions();
        let Some(suspension) = suspensions.iter().find(|s| s.path == path) else {
            return Err(EngineError::NotSuspended {
                run: run_id.to_string(),
                path: path.to_string(),
                suspended: core.suspended_paths().join(", "),
            });
        };
        let is_gate = crate::approval::is_gate_payload(&suspension.payload);
        if is_gate != gate {
            let (run, path) = (run_id.to_string(), path.to_string());
            return Err(if is_gate {
                EngineError::GateNeedsDecision { run, path }
            } else {
                EngineError::NotAGate { run, path }
            });
        }
        if let Some(schema) = core.resume_schema_for(path) {
            schema.validate(data, &format!("step `{path}`"), "resume data")?;
        }
        // A schema the suspension itself names (an agent's answers to its tools' questions).
        if let Some(doc) = suspension.payload.get(SUSPENSION_RESUME_SCHEMA)
            && doc.is_object()
        {
            match super::schema::Schema::new(doc.clone()) {
                Ok(schema) => schema.validate(data, &format!("step `{path}`"), "resume data")?,
                Err(e) => {
                    tracing::warn!(run = %run_id, %path, error = %e, "the suspension's resume schema does not compile; resume data not checked against it");
                }
            }
        }
        Ok(())
    }

    /// Cancels a run: in-flight steps see their cancellation token fire and the run is marked
    /// cancelled. A suspended run is cancelled at once, also when its workflow is not
    /// registered here (the cancellation is then committed at the store level). A run that is
    /// executing in another live engine fails with [`EngineError::Owned`].
    pub async fn cancel(&self, run_id: &str) -> Result<Run, EngineError> {
        let active = lock(&self.inner.active).get(run_id).cloned();
        let active = match active {
            Some(a) => a,
            None => match self.request_cancel(run_id)? {
                CancelRequest::Cancelled(run) => return Ok(run),
                // It started executing here meanwhile.
                CancelRequest::Requested => match lock(&self.inner.active).get(run_id).cloned() {
                    Some(a) => a,
                    None => return self.request_cancel(run_id).and_then(|r| r.into_run(run_id)),
                },
            },
        };
        let mut rx = active.live.subscribe();
        active.cancel.cancel();
        // Wait for the driver to commit the cancellation.
        loop {
            if let Some(r) = self.inner.store.run(run_id)?
                && r.status.is_terminal()
            {
                return Ok(Run::from_record(r, Vec::new()));
            }
            if let Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) =
                tokio::time::timeout(Duration::from_millis(50), rx.recv()).await
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Cancels a run without waiting: a run executing in this engine is told to stop (its
    /// driver commits the cancellation: [`CancelRequest::Requested`]); any other run's
    /// cancellation is committed before this returns ([`CancelRequest::Cancelled`]), with the
    /// errors of [`Engine::cancel`]. For drivers outside Rust, which cannot await.
    pub fn request_cancel(&self, run_id: &str) -> Result<CancelRequest, EngineError> {
        if let Some(a) = lock(&self.inner.active).get(run_id) {
            a.cancel.cancel();
            return Ok(CancelRequest::Requested);
        }
        let record = self
            .inner
            .store
            .run(run_id)?
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))?;
        if record.status.is_terminal() {
            return Err(EngineError::Finished {
                run: run_id.to_string(),
                status: record.status,
            });
        }
        // A run executing in another live engine is that engine's to cancel.
        if record.status == RunStatus::Running
            && let Some(owner) = record.owner.as_deref()
            && owner != &*self.inner.owner
            && record
                .lease_until
                .is_some_and(|until| until >= self.now_ms())
            && !owner_is_dead(owner)
        {
            return Err(EngineError::Owned {
                run: run_id.to_string(),
                owner: owner.to_string(),
            });
        }
        // Without the definition (a tool such as the CLI registers no workflows) the
        // cancellation is committed at the store level: nothing is replayed.
        let graph = match self.graph_for(&record) {
            Ok(g) => Some(g),
            Err(EngineError::UnknownWorkflow(_) | EngineError::DefinitionChanged { .. }) => None,
            Err(e) => return Err(e),
        };
        let _claiming = lock(&self.inner.claims);
        let claimed = self.inner.store.claim(&Claim {
            run: run_id,
            status: record.status,
            owner: record.owner.as_deref(),
            new_owner: &self.inner.owner,
            lease_until: crate::store::ms_after(self.now_ms(), self.inner.lease),
        })?;
        if !claimed {
            return Err(EngineError::Contended {
                run: run_id.to_string(),
                operation: "cancel".into(),
            });
        }
        match graph {
            Some(graph) => {
                let mut core = RunCore::load(
                    Arc::clone(&self.inner.store),
                    graph,
                    &record,
                    RunStatus::Running,
                    &self.inner.owner,
                    self.inner.clock.clone(),
                )?;
                core.finish(RunStatus::Cancelled, "cancelled".into())?;
            }
            None => self.cancel_in_store(run_id)?,
        }
        self.get_sync(run_id)?
            .map(CancelRequest::Cancelled)
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))
    }

    /// Commits the cancellation of a claimed run without its definition: the run row becomes
    /// `cancelled` (owner released) and `run-finished` is appended to its event log.
    fn cancel_in_store(&self, run_id: &str) -> Result<(), EngineError> {
        let now = self.now_ms();
        let error = "cancelled".to_string();
        let seq = self.inner.store.last_seq(run_id)? + 1;
        let batch = crate::store::Batch {
            update: Some(crate::store::RunUpdate {
                status: RunStatus::Cancelled,
                output: None,
                error: Some(error.clone()),
                updated_at: now,
                release: true,
            }),
            events: vec![RunEvent {
                run_id: run_id.into(),
                seq,
                at: now,
                kind: super::event::EventKind::RunFinished {
                    status: RunStatus::Cancelled,
                    output: None,
                    error: Some(error),
                },
            }],
            ..crate::store::Batch::default()
        };
        self.inner.store.commit(run_id, batch)?;
        Ok(())
    }

    /// Reads a run.
    pub async fn get(&self, run_id: &str) -> Result<Option<Run>, EngineError> {
        self.get_sync(run_id)
    }

    /// [`Engine::get`] without `async`: the stores are synchronous (for drivers and bindings
    /// that cannot await).
    pub fn get_sync(&self, run_id: &str) -> Result<Option<Run>, EngineError> {
        let Some(r) = self.inner.store.run(run_id)? else {
            return Ok(None);
        };
        let suspended = if r.status == RunStatus::Suspended {
            let mut s: Vec<Suspension> = self
                .inner
                .store
                .steps(run_id)?
                .into_iter()
                .filter(|s| s.status == crate::store::StepStatus::Suspended && s.resume.is_none())
                .map(|s| Suspension {
                    path: s.path.to_string(),
                    payload: s.payload.unwrap_or(Value::Null),
                })
                .collect();
            s.sort_by(|a, b| a.path.cmp(&b.path));
            s
        } else {
            Vec::new()
        };
        Ok(Some(Run::from_record(r, suspended)))
    }

    /// Lists runs, newest first (suspension details are left out; use [`Engine::get`]).
    pub async fn list(&self, filter: &RunFilter) -> Result<Vec<Run>, EngineError> {
        self.list_sync(filter)
    }

    /// [`Engine::list`] without `async` (see [`Engine::get_sync`]).
    pub fn list_sync(&self, filter: &RunFilter) -> Result<Vec<Run>, EngineError> {
        Ok(self
            .inner
            .store
            .list_runs(filter)?
            .into_iter()
            .map(|r| Run::from_record(r, Vec::new()))
            .collect())
    }

    /// Waits until the run is no longer executing in this engine and returns it.
    pub async fn wait(&self, run_id: &str) -> Result<Run, EngineError> {
        loop {
            let active = lock(&self.inner.active).get(run_id).cloned();
            match active {
                Some(a) => {
                    let mut rx = a.live.subscribe();
                    drop(a);
                    if !lock(&self.inner.active).contains_key(run_id) {
                        continue;
                    }
                    loop {
                        match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
                            Ok(Ok(ev))
                                if matches!(
                                    ev.kind,
                                    super::event::EventKind::RunFinished { .. }
                                        | super::event::EventKind::RunSuspended { .. }
                                ) =>
                            {
                                break;
                            }
                            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => break,
                            _ if !lock(&self.inner.active).contains_key(run_id) => break,
                            _ => {}
                        }
                    }
                }
                None => {
                    return self
                        .get(run_id)
                        .await?
                        .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()));
                }
            }
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A UUID v7 run id and the time (ms) it encodes: time-ordered, and increasing within this
/// process even for runs created in the same millisecond (a 12-bit counter fills `rand_a`;
/// past 4,096 runs in one millisecond it borrows from the next); random bits from a
/// thread-local generator, so there is no system call per run. The time becomes the run's
/// `created_at`, so ordering runs by id orders them by creation time (the SQLite store's
/// listings rely on it).
fn new_run_id(now_ms: i64) -> (String, i64) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = (now_ms.max(0) as u64) << 12;
    let mut prev = LAST.load(Ordering::Relaxed);
    let stamp = loop {
        let next = if now > prev { now } else { prev + 1 };
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(p) => prev = p,
        }
    };
    let (ms, counter) = (stamp >> 12, (stamp & 0xfff) as u16);
    let mut rand = [0u8; 10];
    fastrand::fill(&mut rand[2..]);
    rand[0] = (counter >> 8) as u8;
    rand[1] = (counter & 0xff) as u8;
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &rand)
        .into_uuid()
        .to_string();
    (id, ms as i64)
}
