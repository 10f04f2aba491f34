//! Storage: the [`Store`] trait, its records, and the SQLite and in-memory stores.
//!
//! Applications pick a store ([`SqliteStore`], [`MemoryStore`], both also at the crate root)
//! and read runs through [`crate::Engine`]; the rest of this module is for those who implement
//! a [`Store`] of their own, and for tests ([`FaultInjectingStore`]).
//!
//! The store keeps one row per run, one row per executed step path, one row per event and one
//! row per key of shared run state. The engine never rewrites a whole-run snapshot: every step
//! transition is a small [`Batch`] committed atomically.

#[cfg(feature = "testing")]
mod fault;
mod memory;
mod memory_gates;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;
mod sqlite_gates;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;

#[cfg(feature = "testing")]
pub use fault::{Fault, FaultInjectingStore};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
pub use sqlite::SqliteStore;
/// A rusqlite error as a [`StoreError`] naming the database `path`, as the stores report them.
/// Public (and hidden) for the crate `miyabi`, whose UI chat store keeps its own SQLite table;
/// not part of the API.
#[doc(hidden)]
pub use sqlite::map_err as sqlite_error;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Executing (or waiting to be recovered after a crash).
    Running,
    /// Waiting for `resume` at one or more paths.
    Suspended,
    /// Finished with an output.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped by `cancel`.
    Cancelled,
}

impl RunStatus {
    /// The status as stored (`running`, `suspended`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Suspended => "suspended",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "suspended" => RunStatus::Suspended,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run has ended for good.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id.
    pub id: String,
    /// Workflow id.
    pub workflow: String,
    /// Fingerprint of the workflow definition the run started with.
    pub fingerprint: String,
    /// Current status.
    pub status: RunStatus,
    /// The run's input (shared with the run's `run-started` event: no second copy).
    pub input: Arc<Value>,
    /// The run's output, once succeeded (shared with its `run-finished` event).
    pub output: Option<Arc<Value>>,
    /// The run's error, once failed.
    pub error: Option<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Last status change, milliseconds since the Unix epoch.
    pub updated_at: i64,
    /// The engine instance executing the run, while running.
    pub owner: Option<String>,
    /// Until when the owner's claim holds, milliseconds since the Unix epoch.
    pub lease_until: Option<i64>,
}

impl RunRecord {
    /// Whether the run executes at time `now` (ms since the epoch): running, with an owner
    /// whose lease has not ended. What [`ConcurrencyLimits`] count.
    pub fn is_executing(&self, now: i64) -> bool {
        self.status == RunStatus::Running
            && self.owner.is_some()
            && self.lease_until.is_none_or(|t| t >= now)
    }

    /// Whether the run waits for an engine at time `now`: running with no owner (enqueued or
    /// released) or with a lease that ended before `now`. What [`Store::claim_lapsed`] takes.
    pub fn is_waiting(&self, now: i64) -> bool {
        self.status == RunStatus::Running
            && (self.owner.is_none() || self.lease_until.is_some_and(|t| t < now))
    }
}

/// A run without its input and output, as listings show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Run id.
    pub id: String,
    /// Workflow id.
    pub workflow: String,
    /// Current status.
    pub status: RunStatus,
    /// The run's error, once failed or cancelled.
    pub error: Option<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Last status change, milliseconds since the Unix epoch.
    pub updated_at: i64,
}

impl From<RunRecord> for RunSummary {
    fn from(r: RunRecord) -> Self {
        Self {
            id: r.id,
            workflow: r.workflow,
            status: r.status,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// What a step record stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// A step's execution.
    Step,
    /// A branch's choice (`output` is `{"arm": name}`).
    Branch,
    /// A loop's decision after an iteration (`output` is `{"continue": bool}`).
    Loop,
    /// A `map`'s result.
    Map,
    /// A sleep (`output` is `{"wake_at": ms}`).
    Sleep,
    /// A foreach's item list length (`output` is `{"items": n}`).
    ForEach,
}

impl RecordKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RecordKind::Step => "step",
            RecordKind::Branch => "branch",
            RecordKind::Loop => "loop",
            RecordKind::Map => "map",
            RecordKind::Sleep => "sleep",
            RecordKind::ForEach => "foreach",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "step" => RecordKind::Step,
            "branch" => RecordKind::Branch,
            "loop" => RecordKind::Loop,
            "map" => RecordKind::Map,
            "sleep" => RecordKind::Sleep,
            "foreach" => RecordKind::ForEach,
            _ => return None,
        })
    }
}

/// Where a step path stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Started and not yet committed (written only for non-idempotent steps and sleeps).
    Running,
    /// Committed with an output.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Suspended, waiting for resume data.
    Suspended,
}

impl StepStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Suspended => "suspended",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => StepStatus::Running,
            "succeeded" => StepStatus::Succeeded,
            "failed" => StepStatus::Failed,
            "suspended" => StepStatus::Suspended,
            _ => return None,
        })
    }
}

/// One stored step path of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The path inside the run (`analyze`, `checks/lint`, `fix[2]`, `each[7]/summarize`),
    /// shared with the run's events about it.
    pub path: Arc<str>,
    /// What the record stands for.
    pub kind: RecordKind,
    /// Where it stands.
    pub status: StepStatus,
    /// The committed output (or the decision, for branch/loop/sleep records), shared with
    /// the `step-output` event that reported it.
    pub output: Option<Arc<Value>>,
    /// The failure message.
    pub error: Option<String>,
    /// The suspension payload.
    pub payload: Option<Value>,
    /// Resume data given to a suspended path, not yet consumed.
    pub resume: Option<Value>,
    /// Attempt number (1-based) of the last execution.
    pub attempt: u32,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// Conditions on a run for [`Store::claim`].
#[derive(Debug, Clone, PartialEq)]
pub struct Claim<'a> {
    /// Run id.
    pub run: &'a str,
    /// The status the run must have.
    pub status: RunStatus,
    /// The owner the run must have now (`None`: no owner).
    pub owner: Option<&'a str>,
    /// The new owner.
    pub new_owner: &'a str,
    /// The new lease expiry (ms since the epoch).
    pub lease_until: i64,
}

/// Limits on how many runs execute at once across every engine on a store, checked when
/// runs that wait for an engine are claimed ([`Store::claim_lapsed`]): at most `global` runs
/// of any workflow, and at most `per_workflow[id]` runs of workflow `id`. A run *executes*
/// while it is running with an owner whose lease has not ended
/// ([`RunRecord::is_executing`]); suspended, finished and waiting runs take no slot. Set
/// through [`EngineBuilder::workflow_limit`](crate::EngineBuilder::workflow_limit) and
/// [`EngineBuilder::global_limit`](crate::EngineBuilder::global_limit); every engine that
/// claims runs on the store must be given the same limits (see docs/scaling.md).
///
/// ```
/// use miyabi_engine::store::ConcurrencyLimits;
/// let limits = ConcurrencyLimits::default().global(20).workflow("ingest", 2);
/// assert_eq!(limits.workflow_limit("ingest"), Some(2));
/// assert_eq!(limits.workflow_limit("other"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConcurrencyLimits {
    /// At most this many runs of any workflow execute at once (`None`: no global limit).
    pub global: Option<usize>,
    /// At most this many runs of a workflow (by workflow id) execute at once.
    pub per_workflow: std::collections::BTreeMap<String, usize>,
}

impl ConcurrencyLimits {
    /// At most `n` runs of any workflow execute at once.
    pub fn global(mut self, n: usize) -> Self {
        self.global = Some(n);
        self
    }

    /// At most `n` runs of workflow `id` execute at once.
    pub fn workflow(mut self, id: impl Into<String>, n: usize) -> Self {
        self.per_workflow.insert(id.into(), n);
        self
    }

    /// The limit of workflow `id`, if it has one.
    pub fn workflow_limit(&self, id: &str) -> Option<usize> {
        self.per_workflow.get(id).copied()
    }

    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.global.is_none() && self.per_workflow.is_empty()
    }
}

/// What [`Store::claim_lapsed`] claims: runs that wait for an engine, of the definitions an
/// engine can execute, within its room and the deployment's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LapsedClaim<'a> {
    /// The definitions (fingerprints) the claiming engine has registered.
    pub fingerprints: &'a [String],
    /// The new owner.
    pub new_owner: &'a str,
    /// The time (ms since the epoch) leases are compared with.
    pub now: i64,
    /// The new lease expiry (ms since the epoch).
    pub lease_until: i64,
    /// At most this many runs (the claiming engine's room).
    pub limit: usize,
    /// The limits on runs executing at once across every engine on the store.
    pub limits: &'a ConcurrencyLimits,
}

/// The room [`ConcurrencyLimits`] leave, counted from the runs executing now: what the stores'
/// `claim_lapsed` uses to pick runs within the limits.
pub(crate) struct Room<'a> {
    limits: &'a ConcurrencyLimits,
    total: usize,
    /// Executing runs of the workflows that have a limit.
    per_workflow: rustc_hash::FxHashMap<String, usize>,
}

impl<'a> Room<'a> {
    /// The room left by the executing runs of these workflows (one item per run).
    pub(crate) fn counting<'s>(
        limits: &'a ConcurrencyLimits,
        executing: impl IntoIterator<Item = &'s str>,
    ) -> Self {
        let mut room = Self {
            limits,
            total: 0,
            per_workflow: rustc_hash::FxHashMap::default(),
        };
        for workflow in executing {
            room.add(workflow, 1);
        }
        room
    }

    /// Counts `n` more executing runs of `workflow`.
    pub(crate) fn add(&mut self, workflow: &str, n: usize) {
        self.total = self.total.saturating_add(n);
        if self.limits.per_workflow.contains_key(workflow) {
            let c = self.per_workflow.entry(workflow.to_string()).or_default();
            *c = c.saturating_add(n);
        }
    }

    fn executing(&self, workflow: &str) -> usize {
        self.per_workflow.get(workflow).copied().unwrap_or(0)
    }

    /// Whether one more run of `workflow` fits.
    pub(crate) fn fits(&self, workflow: &str) -> bool {
        self.limits.global.is_none_or(|g| self.total < g)
            && self
                .limits
                .workflow_limit(workflow)
                .is_none_or(|l| self.executing(workflow) < l)
    }

    /// Takes a slot for a run of `workflow` if one is free; returns whether it did.
    pub(crate) fn take(&mut self, workflow: &str) -> bool {
        let fits = self.fits(workflow);
        if fits {
            self.add(workflow, 1);
        }
        fits
    }

    /// Whether the runs counted, those of `workflow` among them, are within the limits that
    /// apply to `workflow` (its own and the global one).
    pub(crate) fn holds(&self, workflow: &str) -> bool {
        self.limits.global.is_none_or(|g| self.total <= g)
            && self
                .limits
                .workflow_limit(workflow)
                .is_none_or(|l| self.executing(workflow) <= l)
    }

    /// How many more runs the global limit admits (`usize::MAX` without one).
    pub(crate) fn left(&self) -> usize {
        self.limits
            .global
            .map_or(usize::MAX, |g| g.saturating_sub(self.total))
    }

    /// Whether no run of any workflow fits any more (the global limit is reached).
    pub(crate) fn exhausted(&self) -> bool {
        self.left() == 0
    }

    /// The workflows at their own limit (the Postgres store's claim query excludes them).
    #[cfg(feature = "postgres")]
    pub(crate) fn full_workflows(&self) -> Vec<String> {
        self.limits
            .per_workflow
            .iter()
            .filter(|(w, l)| self.executing(w) >= **l)
            .map(|(w, _)| w.clone())
            .collect()
    }
}

/// A change to a run's row, committed with a [`Batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunUpdate {
    /// New status.
    pub status: RunStatus,
    /// Output (when succeeded).
    pub output: Option<Arc<Value>>,
    /// Error (when failed).
    pub error: Option<String>,
    /// Time of the change (ms).
    pub updated_at: i64,
    /// Whether to drop the owner and lease (the run is no longer executing).
    pub release: bool,
}

/// The writes of one run's transition, committed atomically.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// A new run to insert.
    pub create: Option<RunRecord>,
    /// A change to the run's row.
    pub update: Option<RunUpdate>,
    /// Paths whose step records are deleted, before `steps` are written: a run retried from
    /// its failed steps forgets their failures ([`Engine::retry`](crate::Engine::retry)).
    pub clear: Vec<String>,
    /// Step records to insert or replace (keyed by path).
    pub steps: Vec<StepRecord>,
    /// Shared run state keys to set.
    pub state: Vec<(String, Value)>,
    /// Events to append (their `seq` is already assigned).
    pub events: Vec<crate::workflow::RunEvent>,
    /// Approval gates reached by the run (kept only by stores with [`Store::gates`]).
    pub gates: Vec<crate::approval::NewGate>,
    /// When set (and the batch creates no run), the run's row must still name this owner, or
    /// the store refuses the whole batch with [`StoreError::Fenced`]: an engine whose lease
    /// lapsed while another engine took the run over cannot write into it any more.
    pub fence: Option<std::sync::Arc<str>>,
}

/// The row of the run a batch creates, as the store inserts it: a run created and finished in
/// one commit (the batch also carries its update) is inserted in its final state, one insert
/// instead of an insert and an update.
pub(crate) struct NewRunRow<'a> {
    pub(crate) record: &'a RunRecord,
    pub(crate) status: RunStatus,
    pub(crate) output: Option<&'a Arc<Value>>,
    pub(crate) error: Option<&'a str>,
    pub(crate) updated_at: i64,
    pub(crate) owner: Option<&'a str>,
    pub(crate) lease_until: Option<i64>,
}

impl Batch {
    /// The row of the run this batch creates, if it creates one.
    pub(crate) fn new_run_row(&self) -> Option<NewRunRow<'_>> {
        let r = self.create.as_ref()?;
        Some(match &self.update {
            Some(u) => NewRunRow {
                record: r,
                status: u.status,
                output: u.output.as_ref(),
                error: u.error.as_deref(),
                updated_at: u.updated_at,
                owner: if u.release { None } else { r.owner.as_deref() },
                lease_until: if u.release { None } else { r.lease_until },
            },
            None => NewRunRow {
                record: r,
                status: r.status,
                output: r.output.as_ref(),
                error: r.error.as_deref(),
                updated_at: r.updated_at,
                owner: r.owner.as_deref(),
                lease_until: r.lease_until,
            },
        })
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.create.is_none()
            && self.update.is_none()
            && self.clear.is_empty()
            && self.steps.is_empty()
            && self.state.is_empty()
            && self.events.is_empty()
            && self.gates.is_empty()
    }
}

/// Which runs [`Store::list_runs`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs created at or after this time (ms).
    pub created_after: Option<i64>,
    /// Only runs created before this time (ms).
    pub created_before: Option<i64>,
    /// Keyset paging: only runs strictly older than this `(created_at, id)` in the listing's
    /// order (newest first), i.e. the page after the run with this key.
    pub before: Option<(i64, String)>,
    /// At most this many (newest first); `None` for all.
    pub limit: Option<usize>,
}

impl RunFilter {
    /// Whether a run passes the filter.
    pub fn matches(&self, r: &RunRecord) -> bool {
        self.workflow.as_ref().is_none_or(|w| *w == r.workflow)
            && self.status.is_none_or(|s| s == r.status)
            && self.created_after.is_none_or(|t| r.created_at >= t)
            && self.created_before.is_none_or(|t| r.created_at < t)
            && self
                .before
                .as_ref()
                .is_none_or(|(t, id)| (r.created_at, r.id.as_str()) < (*t, id.as_str()))
    }
}

/// Which finished runs to delete ([`crate::Engine::prune`], [`Store::prune`]): those that
/// finished longer ago than `max_age`, and, per workflow, those beyond the newest
/// `keep_last`. Only finished runs (succeeded, failed, cancelled) are ever deleted: a running
/// or suspended run is kept whatever its age, so an approval can wait as long as it needs.
///
/// Deleting a run deletes its step records, events, state, approval gates and pending
/// notifications; the approvals audit trail is kept.
///
/// ```
/// use std::time::Duration;
/// let rule = miyabi_engine::Retention::older_than(Duration::from_secs(7 * 86_400)).keep_last(1_000);
/// # let _ = rule;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Delete finished runs whose last change (their end) is older than this.
    pub max_age: Option<std::time::Duration>,
    /// Per workflow, keep at most this many finished runs (the newest by creation).
    pub keep_last: Option<usize>,
    /// Only runs of this workflow (all workflows when `None`).
    pub workflow: Option<String>,
}

impl Retention {
    /// Deletes finished runs that ended longer ago than `age`.
    pub fn older_than(age: std::time::Duration) -> Self {
        Self {
            max_age: Some(age),
            ..Self::default()
        }
    }

    /// Keeps at most `n` finished runs per workflow, deleting older ones.
    pub fn keep_last(mut self, n: usize) -> Self {
        self.keep_last = Some(n);
        self
    }

    /// Applies the rule to the runs of `workflow` only.
    pub fn workflow(mut self, workflow: impl Into<String>) -> Self {
        self.workflow = Some(workflow.into());
        self
    }

    /// Whether the rule deletes anything at all (an age or a count is set).
    pub fn is_empty(&self) -> bool {
        self.max_age.is_none() && self.keep_last.is_none()
    }

    /// The cutoff in ms since the epoch for a rule applied at `now`: runs that ended before it
    /// are deleted. `None` when there is no age limit, or when it reaches before the epoch.
    pub(crate) fn cutoff(&self, now: i64) -> Option<i64> {
        let age = i64::try_from(self.max_age?.as_millis()).ok()?;
        now.checked_sub(age)
    }
}

/// Durable storage for runs, step records, events and run state.
///
/// Calls are synchronous on purpose: the embedded stores commit in microseconds, and the Node
/// driver calls them from JavaScript without a thread hop. Every method names what failed in
/// its [`StoreError`].
pub trait Store: Send + Sync + 'static {
    /// Commits a batch atomically: all of it or none of it. The batch is given by value so
    /// that a store keeping it in memory need not copy it.
    fn commit(&self, run: &str, batch: Batch) -> Result<(), StoreError>;
    /// Commits the batches of several runs, each atomically and independently of the others
    /// (one failing, say fenced, leaves the rest committed); the results are in the batches'
    /// order. The engine calls it with the batches that queued while a commit was in progress
    /// (group commit). The default commits them one by one; `SqliteStore` writes them in one
    /// transaction, one savepoint per batch.
    fn commit_group(&self, batches: Vec<(Arc<str>, Batch)>) -> Vec<Result<(), StoreError>> {
        batches
            .into_iter()
            .map(|(run, b)| self.commit(&run, b))
            .collect()
    }
    /// Reads one run.
    fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError>;
    /// Lists runs, newest first.
    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError>;
    /// Lists runs without their input and output, newest first (for listings: the SQLite
    /// store neither reads nor decodes the JSON columns).
    fn list_run_summaries(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        Ok(self
            .list_runs(filter)?
            .into_iter()
            .map(RunSummary::from)
            .collect())
    }
    /// All step records of a run.
    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, StoreError>;
    /// The run's shared state.
    fn state(&self, run: &str) -> Result<Vec<(String, Value)>, StoreError>;
    /// Events with `seq >= from`, in order, at most `limit`.
    fn events(
        &self,
        run: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<crate::workflow::RunEvent>, StoreError>;
    /// The highest event sequence number of a run (0 when none).
    fn last_seq(&self, run: &str) -> Result<u64, StoreError>;
    /// Takes ownership of a run if it matches the claim's conditions; sets status `running`.
    /// Returns whether the claim succeeded.
    fn claim(&self, claim: &Claim<'_>) -> Result<bool, StoreError>;
    /// Claims for `claim.new_owner` up to `claim.limit` running runs of the given definitions
    /// (`claim.fingerprints`) that wait for an engine: no owner (enqueued, or released) or a
    /// lease that ended before `claim.now`. Returns them as claimed, oldest first (by id: run
    /// ids are UUID v7, creation order).
    ///
    /// The claim respects `claim.limits` ([`ConcurrencyLimits`]) across every engine on the
    /// store: a run is taken only while the runs *executing* (status running, an owner, a lease
    /// not ended before `claim.now`; see [`RunRecord::is_executing`]) of its workflow, and of
    /// all workflows, stay within their limits with it. A run whose workflow is at its limit is
    /// passed over (it keeps waiting, unowned) and younger runs of other workflows may be
    /// taken. No interleaving of claims, from any number of engines and processes, may leave
    /// more runs executing than a limit allows.
    ///
    /// The first-party stores override this: `MemoryStore` counts and claims under its lock,
    /// `SqliteStore` in one `BEGIN IMMEDIATE` transaction (so two processes on one file cannot
    /// both take the last slot), `PostgresStore` in one statement with `FOR UPDATE SKIP LOCKED`
    /// when no limit applies and, with limits, in one transaction serialised by an advisory
    /// lock. The default, for other stores, lists the running runs and claims them one by one
    /// with [`Store::claim`]; with limits it counts again after each claim and gives the run
    /// back when a limit is exceeded (two engines racing for the last slot may then both give
    /// it back; a later pass takes it), which holds the limits on any store whose `claim`,
    /// `commit` and `list_runs` are each atomic.
    fn claim_lapsed(&self, claim: &LapsedClaim<'_>) -> Result<Vec<RunRecord>, StoreError> {
        let c = claim;
        if c.fingerprints.is_empty() || c.limit == 0 {
            return Ok(Vec::new());
        }
        let running_runs = || {
            self.list_runs(&RunFilter {
                status: Some(RunStatus::Running),
                ..RunFilter::default()
            })
        };
        let mut running = running_runs()?;
        running.reverse();
        let mut room = Room::counting(
            c.limits,
            running
                .iter()
                .filter(|r| r.is_executing(c.now))
                .map(|r| r.workflow.as_str()),
        );
        let mut out = Vec::new();
        for mut r in running {
            if out.len() >= c.limit || room.exhausted() {
                break;
            }
            if !r.is_waiting(c.now)
                || !c.fingerprints.contains(&r.fingerprint)
                || !room.fits(&r.workflow)
            {
                continue;
            }
            if !self.claim(&Claim {
                run: &r.id,
                status: RunStatus::Running,
                owner: r.owner.as_deref(),
                new_owner: c.new_owner,
                lease_until: c.lease_until,
            })? {
                continue;
            }
            if !c.limits.is_empty() {
                // Another engine may have claimed between the listing and this claim: count
                // again, this claim included, and give the run back if a limit is exceeded.
                let now_running = running_runs()?;
                let recount = Room::counting(
                    c.limits,
                    now_running
                        .iter()
                        .filter(|x| x.is_executing(c.now))
                        .map(|x| x.workflow.as_str()),
                );
                if !recount.holds(&r.workflow) {
                    self.commit(
                        &r.id,
                        Batch {
                            update: Some(RunUpdate {
                                status: RunStatus::Running,
                                output: r.output.clone(),
                                error: r.error.clone(),
                                updated_at: r.updated_at,
                                release: true,
                            }),
                            fence: Some(Arc::from(c.new_owner)),
                            ..Batch::default()
                        },
                    )?;
                    // Go on from the new count (without this run, given back).
                    room = Room::counting(
                        c.limits,
                        now_running
                            .iter()
                            .filter(|x| x.id != r.id && x.is_executing(c.now))
                            .map(|x| x.workflow.as_str()),
                    );
                    continue;
                }
            }
            room.take(&r.workflow);
            r.owner = Some(c.new_owner.to_string());
            r.lease_until = Some(c.lease_until);
            out.push(r);
        }
        Ok(out)
    }
    /// A wake-up that fires when another process adds work to the store (an enqueued run, a
    /// decided approval gate), for idle workers ([`crate::Engine::work`]); `None` when the
    /// store cannot tell (workers then poll). `PostgresStore` uses `LISTEN`/`NOTIFY`.
    fn wakeups(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
    /// Extends the lease of every running run of `owner`.
    fn renew(&self, owner: &str, lease_until: i64) -> Result<(), StoreError>;
    /// Deletes the finished runs that `rule` selects at time `now` (ms since the epoch), with
    /// everything stored for them but the approvals audit trail; returns how many runs it
    /// deleted. Never deletes a running or suspended run.
    fn prune(&self, rule: &Retention, now: i64) -> Result<u64, StoreError>;
    /// The approval gates this store keeps ([`crate::approval`]); `None` for a store
    /// without them (approval gates then fail with a clear error).
    fn gates(&self) -> Option<&dyn GateStore> {
        None
    }
}

/// Storage of approval gates, their audit trail and their notification outbox.
///
/// Gates are created by a run's [`Batch`] (atomically with the suspension that reached
/// them); every later change is a compare-and-set on the gate's version.
pub trait GateStore: Send + Sync {
    /// One gate.
    fn gate(&self, run: &str, gate: &str) -> Result<Option<crate::approval::Approval>, StoreError>;
    /// Gates matching a filter, newest first, with their deliveries.
    fn list_gates(
        &self,
        filter: &crate::approval::ApprovalFilter,
    ) -> Result<Vec<crate::approval::Approval>, StoreError>;
    /// Applies `update` if the gate still has `update.expected_version`; returns whether it did.
    fn update_gate(&self, update: &crate::approval::GateUpdate) -> Result<bool, StoreError>;
    /// Audit records, oldest first.
    fn audit(
        &self,
        filter: &crate::approval::AuditFilter,
    ) -> Result<Vec<crate::approval::AuditRecord>, StoreError>;
    /// Audit records matching `filter`, **newest first**, only those with an id below
    /// `before` when given (keyset paging: pass the last record's id of a page to get the
    /// next), at most `filter.limit`.
    fn audit_newest(
        &self,
        filter: &crate::approval::AuditFilter,
        before: Option<i64>,
    ) -> Result<Vec<crate::approval::AuditRecord>, StoreError>;
    /// Pending notifications due at `now`, oldest first.
    fn due_deliveries(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<crate::approval::Delivery>, StoreError>;
    /// Stores a notification's new state, with an optional audit record.
    fn update_delivery(
        &self,
        delivery: &crate::approval::Delivery,
        audit: Option<&crate::approval::AuditRecord>,
    ) -> Result<(), StoreError>;
    /// Appends one audit record that belongs to no gate change: an action on a run through
    /// the API (start, cancel, resume) or its refusal. `record.gate` is empty for run-level
    /// actions and `record.run_id` empty when no run is concerned (a refused start).
    fn append_audit(&self, record: &crate::approval::AuditRecord) -> Result<(), StoreError>;
}

/// The wall-clock time in milliseconds since the epoch, as the stores record it. Public (and
/// hidden) for the crate `miyabi`, whose UI chat store stamps its rows the same way; not part
/// of the API.
#[doc(hidden)]
#[inline]
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

/// `d` in whole milliseconds, saturating at `i64::MAX` (about 292 million years: a duration
/// that long means "never", it is not an error to overflow into).
#[inline]
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    // In u64 rather than `as_millis`'s u128: this runs for every record the engine writes.
    let ms = d
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()));
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// The time `d` after `at` (both in ms since the epoch), saturating instead of overflowing.
pub(crate) fn ms_after(at: i64, d: std::time::Duration) -> i64 {
    at.saturating_add(millis(d))
}

/// Whether `db` is a Postgres URL (`postgres://` or `postgresql://`) rather than a file path.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// `db` as messages may show it: a URL without its password and query, a file path as it is.
pub fn shown_location(db: &str) -> String {
    // Any URL (`scheme://user:password@host/...`), not only Postgres': a mistyped scheme must
    // not show its password either.
    let Some((scheme, rest)) = db.split_once("://") else {
        return db.to_string();
    };
    let rest = rest.split('?').next().unwrap_or("");
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        None => format!("{scheme}://{rest}"),
    }
}
