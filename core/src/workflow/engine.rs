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
use super::core::{Live, Phase, RunCore, Suspension};
use super::event::RunEvent;
use super::machine::{Action, EvalKind, Status};
use super::step::{Emitter, StepContext};
use crate::error::{EngineError, StepError};
use crate::store::{
    Claim, MemoryStore, RunFilter, RunRecord, RunStatus, SqliteStore, Store, now_ms,
};

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
    pub(crate) public_url: String,
    /// Batches of runs waiting while another run commits (see `group.rs`).
    group: Arc<super::group::GroupCommit>,
}

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
/// let engine = miyabi::Engine::builder()
///     .store(miyabi::MemoryStore::new())
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
    public_url: String,
}

impl EngineBuilder {
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
                public_url: self.public_url,
                group: Arc::default(),
            }),
        }
    }
}

/// Runs workflows durably: start, get, list, resume, cancel, watch events, recover after a
/// crash.
///
/// ```
/// use miyabi::{step_fn, Engine, StepContext, Workflow};
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
            Err(e) => Err(EngineError::InvalidState {
                run: self.id,
                status: "aborted".into(),
                operation: format!("wait ({e})"),
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
            public_url: "http://127.0.0.1:7420".into(),
        }
    }

    /// An engine over an in-memory store.
    pub fn in_memory() -> Self {
        Self::builder().build()
    }

    /// An engine over a SQLite file (created if missing).
    pub fn sqlite(path: impl AsRef<std::path::Path>) -> Result<Self, EngineError> {
        Ok(Self::builder().store(SqliteStore::open(path)?).build())
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
        core.flush_grouped_blocking(&self.inner.group)?;
        self.activate(&core);
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
        RunCore::create(
            Arc::clone(&self.inner.store),
            Arc::clone(g),
            new_run_id(),
            input,
            &self.inner.owner,
            now_ms() + self.inner.lease.as_millis() as i64,
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

    /// Claims a suspended run, checks the path and the resume data, and commits the data:
    /// returns the run's core and the actions to start with.
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
            return Err(EngineError::InvalidState {
                run: run_id.to_string(),
                status: record.status.to_string(),
                operation: format!("resume `{path}` (only suspended runs can be resumed)"),
            });
        }
        let graph = self.graph_for(&record)?;
        let claimed = self.inner.store.claim(&Claim {
            run: run_id,
            status: RunStatus::Suspended,
            owner: None,
            new_owner: &self.inner.owner,
            lease_until: now_ms() + self.inner.lease.as_millis() as i64,
        })?;
        if !claimed {
            return Err(EngineError::InvalidState {
                run: run_id.to_string(),
                status: "being resumed elsewhere".into(),
                operation: format!("resume `{path}`"),
            });
        }
        // The claim holds only while it is renewed: without the heartbeat, an engine that only
        // resumes runs would lose them to another engine's `recover` while still running them.
        self.ensure_heartbeat();
        // Loaded as `Suspended`, its status before the claim: the replay below then commits no
        // second `run-suspended` event and does not drop the owner the claim just set (a run
        // left running without an owner could be taken over by another engine's `recover`).
        let mut core = RunCore::load(
            Arc::clone(&self.inner.store),
            graph,
            &record,
            RunStatus::Suspended,
            &self.inner.owner,
        )?;
        // Replay up to the suspension points (commits nothing new for a consistent store).
        let (actions, status) = core.poll()?;
        if !actions.is_empty() || status != Phase::Suspended {
            // A resumed path that never ran (crash after resume): just continue the run.
            return Ok((core, actions));
        }
        if !core.suspended_paths().iter().any(|p| p == path) {
            let err = EngineError::NotSuspended {
                run: run_id.to_string(),
                path: path.to_string(),
                suspended: core.suspended_paths().join(", "),
            };
            core.release_suspended()?;
            return Err(err);
        }
        let is_gate = core
            .suspensions()
            .iter()
            .any(|s| s.path == path && crate::approval::is_gate_payload(&s.payload));
        if is_gate != gate {
            core.release_suspended()?;
            return Err(EngineError::InvalidState {
                run: run_id.to_string(),
                status: "suspended".into(),
                operation: if is_gate {
                    format!(
                        "resume approval gate `{path}` directly (decide it through engine.approvals(), which keeps its audit trail)"
                    )
                } else {
                    format!("decide `{path}`: it is not an approval gate")
                },
            });
        }
        if let Some(schema) = core.resume_schema_for(path)
            && let Err(e) = schema.validate(&data, &format!("step `{path}`"), "resume data")
        {
            core.release_suspended()?;
            return Err(e.into());
        }
        core.resume(path, data)?;
        Ok((core, Vec::new()))
    }

    /// Cancels a run: in-flight steps see their cancellation token fire and the run is marked
    /// cancelled. A suspended run is cancelled at once, also when its workflow is not
    /// registered here (the cancellation is then committed at the store level). A run that is
    /// executing in another live engine fails with [`EngineError::Owned`].
    pub async fn cancel(&self, run_id: &str) -> Result<Run, EngineError> {
        let active = lock(&self.inner.active).get(run_id).cloned();
        if let Some(a) = active {
            let mut rx = a.live.subscribe();
            a.cancel.cancel();
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
        let record = self
            .inner
            .store
            .run(run_id)?
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))?;
        if record.status.is_terminal() {
            return Err(EngineError::InvalidState {
                run: run_id.to_string(),
                status: record.status.to_string(),
                operation: "cancel".into(),
            });
        }
        // A run executing in another live engine is that engine's to cancel.
        if record.status == RunStatus::Running
            && let Some(owner) = record.owner.as_deref()
            && owner != &*self.inner.owner
            && record.lease_until.is_some_and(|until| until >= now_ms())
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
        let claimed = self.inner.store.claim(&Claim {
            run: run_id,
            status: record.status,
            owner: record.owner.as_deref(),
            new_owner: &self.inner.owner,
            lease_until: now_ms() + self.inner.lease.as_millis() as i64,
        })?;
        if !claimed {
            return Err(EngineError::InvalidState {
                run: run_id.to_string(),
                status: "changing".into(),
                operation: "cancel (it changed state meanwhile; try again)".into(),
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
                )?;
                core.finish(RunStatus::Cancelled, "cancelled".into())?;
            }
            None => self.cancel_in_store(run_id)?,
        }
        self.get(run_id)
            .await?
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))
    }

    /// Commits the cancellation of a claimed run without its definition: the run row becomes
    /// `cancelled` (owner released) and `run-finished` is appended to its event log.
    fn cancel_in_store(&self, run_id: &str) -> Result<(), EngineError> {
        let now = now_ms();
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
                    path: s.path,
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
        Ok(self
            .inner
            .store
            .list_runs(filter)?
            .into_iter()
            .map(|r| Run::from_record(r, Vec::new()))
            .collect())
    }

    /// The run's events from sequence number `from` (1 for all): the stored ones, then live
    /// ones while the run executes in this engine. Ends when the run stops executing here.
    pub fn events(
        &self,
        run_id: &str,
        from: u64,
    ) -> impl Stream<Item = Result<RunEvent, EngineError>> + Send + 'static {
        let store = Arc::clone(&self.inner.store);
        let active = lock(&self.inner.active).get(run_id).cloned();
        let run_id = run_id.to_string();
        async_stream(store, active, run_id, from)
    }

    /// Takes over runs left `running` by a dead process or an expired lease, for every
    /// registered workflow, and drives them in the background. Returns their ids.
    pub async fn recover(&self) -> Result<Vec<String>, EngineError> {
        let cores = self.claim_orphans()?;
        let mut taken = Vec::with_capacity(cores.len());
        for core in cores {
            self.activate(&core);
            let engine = self.clone();
            taken.push(core.run_id.to_string());
            tokio::spawn(async move {
                if let Err(e) = engine.drive(core).await {
                    tracing::error!(error = %e, "recovered run stopped");
                }
            });
        }
        self.ensure_heartbeat();
        Ok(taken)
    }

    /// Claims every run left `running` by a dead process, an expired lease or an earlier
    /// failure of this engine, whose workflow is registered; returns their rebuilt cores.
    // Boxed on purpose: each core is handed to its own driver, which keeps it boxed.
    #[allow(clippy::vec_box)]
    pub(crate) fn claim_orphans(&self) -> Result<Vec<Box<RunCore>>, EngineError> {
        let now = now_ms();
        let running = self.inner.store.list_runs(&RunFilter {
            status: Some(RunStatus::Running),
            ..RunFilter::default()
        })?;
        let mut cores = Vec::new();
        for r in running {
            if lock(&self.inner.active).contains_key(r.id.as_str()) {
                continue;
            }
            let claimable = match (&r.owner, r.lease_until) {
                (None, _) => true,
                (Some(o), _) if o.as_str() == &*self.inner.owner => true,
                (Some(_), Some(until)) if until < now => true,
                (Some(o), _) => owner_is_dead(o),
            };
            if !claimable {
                continue;
            }
            let graph = match self.graph_for(&r) {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(run = %r.id, error = %e, "cannot recover run");
                    continue;
                }
            };
            if !self.inner.store.claim(&Claim {
                run: &r.id,
                status: RunStatus::Running,
                owner: r.owner.as_deref(),
                new_owner: &self.inner.owner,
                lease_until: now + self.inner.lease.as_millis() as i64,
            })? {
                continue;
            }
            cores.push(RunCore::load(
                Arc::clone(&self.inner.store),
                graph,
                &r,
                RunStatus::Running,
                &self.inner.owner,
            )?);
        }
        Ok(cores)
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

    pub(crate) fn ensure_heartbeat(&self) {
        self.start_worker();
        if self.inner.heartbeat.get().is_some() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.heartbeat.set(()).is_err() {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        // Renew well within the lease, however short (a floor above lease/3 lets the lease
        // lapse between renewals, and another engine's `recover` takes over a live run).
        let every = (self.inner.lease / 3).max(Duration::from_millis(1));
        handle.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                let until = now_ms() + inner.lease.as_millis() as i64;
                if let Err(e) = inner.store.renew(&inner.owner, until) {
                    tracing::warn!(error = %e, "lease renewal failed");
                }
            }
        });
    }

    /// The approval gates of this engine's runs: inbox, decisions, audit trail.
    ///
    /// ```
    /// use miyabi::approval::{ApprovalGate, Approver, Decision};
    /// use miyabi::{step_fn, Engine, StepContext, Workflow};
    /// use serde_json::{json, Value};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let draft = step_fn(|_ctx: StepContext, v: Value| async move { Ok(json!({"text": v})) });
    /// let wf = Workflow::new("publish")
    ///     .step("draft", draft)
    ///     .await_approval("review", ApprovalGate::new().approvers(["alice"]))
    ///     .commit()?;
    /// let engine = Engine::in_memory();
    /// let run = engine.start(&wf, json!("hello")).await?;
    /// let alice = Approver::new("alice");
    /// assert_eq!(engine.approvals().inbox(&alice)?.len(), 1);
    /// engine.approvals().decide(&run.id, "review", &alice, Decision::approve()).await?;
    /// let run = engine.wait(&run.id).await?;
    /// assert_eq!(run.output.map(|o| o["approved"].clone()), Some(json!(true)));
    /// # Ok(()) }
    /// ```
    pub fn approvals(&self) -> crate::approval::Approvals {
        self.start_worker();
        crate::approval::Approvals::new(self.clone())
    }

    /// Wakes the approvals worker for an immediate pass.
    pub(crate) fn wake_worker(&self) {
        self.inner.wake.notify_one();
    }

    /// The dashboard's public address (for links).
    pub(crate) fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// Starts the approvals worker, if it is not running: it applies passed deadlines (also
    /// ones that passed while no process ran), hands decided gates to their runs (when their
    /// workflow is registered here) and sends notifications from the outbox. Engines start it
    /// by themselves when they start, resume or recover runs, or open [`Engine::approvals`];
    /// it needs a tokio runtime and stops when the engine is dropped.
    pub fn start_worker(&self) {
        if self.inner.worker.get().is_some() || self.inner.store.gates().is_none() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.worker.set(()).is_err() {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = self.inner.worker_every;
        let wake = Arc::clone(&self.inner.wake);
        handle.spawn(async move {
            loop {
                // Holds the engine only during a pass: a dropped engine stops its worker.
                {
                    let Some(inner) = weak.upgrade() else { return };
                    let engine = Engine { inner };
                    if let Err(e) = engine.approvals().tick().await {
                        tracing::warn!(error = %e, "approvals worker pass failed");
                    }
                }
                let _ = tokio::time::timeout(every, wake.notified()).await;
            }
        });
    }

    /// Claims a suspended run at an approval gate, commits the decision as the gate's resume
    /// data and drives the run in the background.
    pub(crate) fn resume_gate(
        &self,
        run_id: &str,
        path: &str,
        output: Value,
    ) -> Result<(), EngineError> {
        if let Some(record) = self.inner.store.run(run_id)?
            && self.graph_for(&record)?.is_external()
        {
            // Its steps run outside Rust: its driver resumes it (`Approvals::resume_external`).
            return Err(EngineError::InvalidState {
                run: run_id.to_string(),
                status: "driven outside Rust".into(),
                operation: format!("resume gate `{path}` on the tokio driver"),
            });
        }
        let (core, actions) = self.prepare_resume(run_id, path, output, true)?;
        self.activate(&core);
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.drive_from(core, actions).await {
                tracing::error!(error = %e, "run resumed by an approval stopped");
            }
        });
        Ok(())
    }

    async fn drive(&self, core: Box<RunCore>) -> Result<Run, EngineError> {
        self.drive_from(core, Vec::new()).await
    }

    async fn drive_from(&self, core: Box<RunCore>, first: Vec<Action>) -> Result<Run, EngineError> {
        let run_id = Arc::clone(&core.run_id);
        let span = tracing::info_span!("run", run_id = %run_id, workflow = %core.workflow());
        let result = drive(
            core,
            first,
            self.inner.always_replay,
            self.inner.durability,
            Arc::clone(&self.inner.group),
        )
        .instrument(span)
        .await;
        lock(&self.inner.active).remove(&*run_id);
        result
    }
}

pub(crate) type StepResult = (Arc<str>, Result<Value, StepError>);

/// How long a cancelled run waits for its in-flight steps to observe their token.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

async fn drive(
    mut core: Box<RunCore>,
    first: Vec<Action>,
    always_replay: bool,
    coalesce: Durability,
    group: Arc<super::group::GroupCommit>,
) -> Result<Run, EngineError> {
    let graph = Arc::clone(core.graph());
    let active = Arc::clone(&core.active);
    let emit = Emitter::default();
    let mut inflight = Inflight::default();
    let deadline = graph.timeout.map(|t| {
        let elapsed = Duration::from_millis((now_ms() - core.created_at).max(0) as u64);
        tokio::time::Instant::now() + t.saturating_sub(elapsed)
    });
    // One buffer for the whole run: the actions of each advance are appended and drained.
    let mut actions = first;
    loop {
        let status = core.advance_into(&mut actions);
        if matches!(status, Phase::Succeeded | Phase::Failed) {
            // Finished (say, a fail-fast failure): siblings still in flight no longer matter,
            // and the machine must not be polled again. Tell them through their token.
            core.take_emitted(&emit);
            core.flush_grouped(&group).await?;
            active.cancel.cancel();
            drop(inflight);
            return Ok(outcome_taken(&mut core));
        }
        // Commits are coalesced: steps that finish without waiting (their future is ready on
        // its first poll) are completed at once and their records join the pending batch.
        // Before the run waits for anything, the batch is committed.
        let mut progressed = false;
        for a in actions.drain(..) {
            match a {
                Action::Eval {
                    path,
                    node,
                    kind,
                    input,
                } => {
                    let r = evaluate(&graph, node, kind, &input, &path);
                    core.complete(&path, r);
                    progressed = true;
                }
                Action::Run {
                    path,
                    node,
                    input,
                    attempt,
                    resume,
                    delay,
                } => {
                    let non_idempotent = matches!(
                        &graph.node(node).kind,
                        NodeKind::Step(def) if def.non_idempotent.is_some()
                    );
                    if non_idempotent || coalesce == Durability::EveryStep {
                        // Its start record must be durable before it runs.
                        core.flush_grouped(&group).await?;
                    }
                    let mut fut = run_step(
                        &graph, &core, &emit, path, node, input, attempt, resume, delay,
                    );
                    if delay.is_zero()
                        && coalesce == Durability::Coalesced
                        && !always_replay
                        && let Some((p, r)) = (&mut fut).now_or_never()
                    {
                        // Events the step emitted come before its output.
                        core.take_emitted(&emit);
                        core.complete(&p, r);
                        progressed = true;
                        continue;
                    }
                    inflight.push(fut);
                }
                Action::Sleep { path, wake_at } => {
                    let cancel = active.cancel.clone();
                    inflight.push(Box::pin(async move {
                        let wait = (wake_at - now_ms()).max(0) as u64;
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                            _ = cancel.cancelled() => {}
                        }
                        (path, Ok(Value::Null))
                    }));
                }
            }
        }
        if progressed && coalesce == Durability::Coalesced && !always_replay {
            continue;
        }
        core.flush_grouped(&group).await?;
        if always_replay {
            core.rebuild()?;
        }
        if progressed {
            continue;
        }
        match status {
            Phase::Running => {}
            _ if inflight.is_empty() => return Ok(outcome_taken(&mut core)),
            _ => {}
        }
        if inflight.is_empty() {
            return Err(EngineError::InvalidState {
                run: core.run_id.to_string(),
                status: "running with nothing to do".into(),
                operation: "continue (engine bug: the machine issued no action)".into(),
            });
        }
        let sleep_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => futures::future::pending::<()>().await,
            }
        };
        tokio::select! {
            biased;
            _ = active.cancel.cancelled() => {
                // Give in-flight steps a moment to see their token and stop cleanly.
                let _ = tokio::time::timeout(CANCEL_GRACE, async {
                    while inflight.next().await.is_some() {}
                })
                .await;
                drop(inflight);
                core.finish(RunStatus::Cancelled, "cancelled".into())?;
                return Ok(outcome_taken(&mut core));
            }
            _ = sleep_deadline => {
                active.cancel.cancel();
                drop(inflight);
                let t = graph.timeout.unwrap_or_default();
                core.finish(RunStatus::Failed, format!("run timed out after {t:?}"))?;
                return Ok(outcome_taken(&mut core));
            }
            em = emit.recv() => {
                core.custom(em.path, em.name, em.data)?;
            }
            Some((path, result)) = inflight.next() => {
                core.take_emitted(&emit);
                core.complete(&path, result);
                // Take every other result that is already there, to commit them together.
                while let Some(Some((p, r))) = inflight.next().now_or_never() {
                    core.complete(&p, r);
                }
            }
        }
        core.take_emitted(&emit);
    }
}

/// The driver's futures in flight (steps that waited, sleeps), made on first use: a run whose
/// steps never wait does not pay for a `FuturesUnordered` (two allocations).
#[derive(Default)]
struct Inflight(Option<FuturesUnordered<futures::future::BoxFuture<'static, StepResult>>>);

impl Inflight {
    fn push(&mut self, f: futures::future::BoxFuture<'static, StepResult>) {
        self.0.get_or_insert_with(FuturesUnordered::new).push(f);
    }

    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(FuturesUnordered::is_empty)
    }

    /// The next finished future; `None` at once when there is none in flight.
    async fn next(&mut self) -> Option<StepResult> {
        match &mut self.0 {
            Some(f) => f.next().await,
            None => None,
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_step(
    graph: &Arc<Graph>,
    core: &RunCore,
    emit: &Emitter,
    path: Arc<str>,
    node: usize,
    input: Value,
    attempt: u32,
    resume: Option<Value>,
    delay: Duration,
) -> futures::future::BoxFuture<'static, StepResult> {
    let NodeKind::Step(def) = &graph.node(node).kind else {
        return Box::pin(async move { (path, Err(StepError::fatal("not a step"))) });
    };
    let step = Arc::clone(&def.step);
    let timeout = def.timeout;
    // A step with a timeout gets a token of its own (cancelled when it times out, without
    // touching its siblings); any other step shares the run's token, which costs no allocation
    // and no registration in the token tree per step.
    let cancel = &core.active.cancel;
    let token = if timeout.is_some() {
        cancel.child_token()
    } else {
        cancel.clone()
    };
    let ctx = StepContext::new(
        Arc::clone(&core.run_id),
        Arc::clone(&path),
        attempt,
        resume,
        token,
        Arc::clone(&core.state),
        Some(emit.clone()),
    );
    let span = tracing::info_span!("step", path = %path, attempt);
    Box::pin(
        async move {
            if !delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = ctx.cancellation().cancelled() => return (path, Err(StepError::fatal("cancelled"))),
                }
            }
            let fut = AssertUnwindSafe(step.run(&ctx, input)).catch_unwind();
            let r = match timeout {
                Some(t) => match tokio::time::timeout(t, fut).await {
                    Ok(r) => r,
                    Err(_) => {
                        // The step's own token (a child of the run's: see above).
                        ctx.cancellation().cancel();
                        return (
                            Arc::clone(&path),
                            Err(StepError::retryable(format!(
                                "step `{path}` timed out after {t:?}"
                            ))),
                        );
                    }
                },
                None => fut.await,
            };
            let r = r.unwrap_or_else(|panic| {
                Err(StepError::fatal(format!(
                    "step `{path}` panicked: {}",
                    panic_message(&panic)
                )))
            });
            (path, r)
        }
        .instrument(span),
    )
}

pub(crate) fn evaluate(
    graph: &Graph,
    node: usize,
    kind: EvalKind,
    input: &Value,
    path: &str,
) -> Result<Value, StepError> {
    let n = graph.node(node);
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| match (&n.kind, kind) {
        (NodeKind::Branch { selector, .. }, EvalKind::Select) => Ok(Value::String(selector(input))),
        (NodeKind::Loop { cond, .. }, EvalKind::Condition) => Ok(Value::Bool(cond(input))),
        (NodeKind::Map(f), EvalKind::Map) => Ok(f(input)),
        (NodeKind::Sleep(SleepSpec::Until(f)), EvalKind::WakeAt) => {
            let t = f(input);
            let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
            Ok(Value::from(ms))
        }
        _ => Err(StepError::fatal(format!("`{path}`: nothing to evaluate"))),
    }));
    r.unwrap_or_else(|p| {
        Err(StepError::fatal(format!(
            "`{path}` panicked: {}",
            panic_message(&p)
        )))
    })
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".into()
    }
}

/// [`outcome`] for a driver that is done with the run: moves the input and the output out of
/// the core instead of copying them.
pub(crate) fn outcome_taken(core: &mut RunCore) -> Run {
    let (output, error) = match std::mem::replace(&mut core.status, Status::Running) {
        Status::Succeeded(v) => (Some(v), None),
        Status::Failed(e) => (None, Some(e)),
        s @ (Status::Running | Status::Suspended(_)) => {
            core.status = s;
            (None, None)
        }
    };
    Run {
        id: String::from(&*core.run_id),
        workflow: core.workflow().to_owned(),
        status: core.committed,
        input: std::mem::take(&mut core.input),
        output,
        error,
        suspended: core.suspensions(),
        created_at: core.created_at,
        updated_at: now_ms(),
    }
}

pub(crate) fn outcome(core: &RunCore) -> Run {
    let now = now_ms();
    let (output, error) = match &core.status {
        Status::Succeeded(v) => (Some(v.clone()), None),
        Status::Failed(e) => (None, Some(e.clone())),
        Status::Running | Status::Suspended(_) => (None, None),
    };
    let status = core.committed;
    Run {
        id: String::from(&*core.run_id),
        workflow: core.workflow().to_owned(),
        status,
        input: core.input.clone(),
        output,
        error,
        suspended: core.suspensions(),
        created_at: core.created_at,
        updated_at: now,
    }
}

fn async_stream(
    store: Arc<dyn Store>,
    active: Option<Arc<Active>>,
    run_id: String,
    from: u64,
) -> impl Stream<Item = Result<RunEvent, EngineError>> + Send + 'static {
    // Subscribe before reading the log, so nothing falls between the two.
    let live = active.map(|a| a.live.subscribe());
    let stored = store.events(&run_id, from.max(1), usize::MAX);
    let (stored, err) = match stored {
        Ok(v) => (v, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let next = stored.last().map_or(from.max(1), |e| e.seq + 1);
    // A run that already finished or suspended has nothing more to say.
    let settled = stored.last().is_some_and(|e| {
        matches!(
            e.kind,
            super::event::EventKind::RunFinished { .. }
                | super::event::EventKind::RunSuspended { .. }
        )
    });
    let live = if settled { None } else { live };
    let head = futures::stream::iter(
        stored
            .into_iter()
            .map(Ok)
            .chain(err.map(|e| Err(EngineError::Store(e)))),
    );
    let tail = futures::stream::unfold((live, next), move |(live, mut next)| {
        let store = Arc::clone(&store);
        let run_id = run_id.clone();
        async move {
            let mut rx = live?;
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.seq < next => continue,
                    Ok(ev) => {
                        // A gap (a batch committed while this subscription began) is filled
                        // from the log.
                        let mut out = Vec::new();
                        if ev.seq > next {
                            match store.events(&run_id, next, (ev.seq - next) as usize) {
                                Ok(evs) => out.extend(evs.into_iter().map(Ok)),
                                Err(e) => out.push(Err(EngineError::Store(e))),
                            }
                        }
                        next = ev.seq + 1;
                        let end = matches!(
                            ev.kind,
                            super::event::EventKind::RunFinished { .. }
                                | super::event::EventKind::RunSuspended { .. }
                        );
                        let rx = if end { None } else { Some(rx) };
                        out.push(Ok(ev));
                        return Some((out, (rx, next)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Fell behind: fill the gap from the log.
                        match store.events(&run_id, next, usize::MAX) {
                            Ok(evs) => {
                                if let Some(l) = evs.last() {
                                    next = l.seq + 1;
                                }
                                let evs = evs.into_iter().map(Ok).collect();
                                return Some((evs, (Some(rx), next)));
                            }
                            Err(e) => {
                                return Some((vec![Err(EngineError::Store(e))], (None, next)));
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    })
    .flat_map(futures::stream::iter);
    head.chain(tail)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether the owner (`uuid@host:pid`) is a process on this host that no longer exists.
fn owner_is_dead(owner: &str) -> bool {
    let Some((_, hp)) = owner.split_once('@') else {
        return false;
    };
    let Some((host, pid)) = hp.rsplit_once(':') else {
        return false;
    };
    if host != hostname() || !cfg!(target_os = "linux") {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) if pid == std::process::id() => false,
        Ok(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
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
fn new_run_id() -> (String, i64) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = (now_ms().max(0) as u64) << 12;
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
