//! `RunCore`: one run's state machine plus its synchronous commits and live events.
//!
//! Every driver (the tokio driver here, the JavaScript driver in the Node binding) goes through
//! this type: `poll` advances the machine and commits what it produced in one store batch;
//! `complete` hands a result back. Nothing here awaits.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::sync::broadcast;

use super::builder::Graph;
use super::event::{EventKind, RunEvent};
use super::machine::{Action, Machine, Status};
use super::step::RunState;
use crate::error::{EngineError, StepError};
use crate::store::{Batch, RunRecord, RunStatus, RunUpdate, StepStatus, Store};

/// Live subscribers of one active run; the channel is made on first subscription.
#[derive(Default)]
pub(crate) struct Live {
    tx: OnceLock<broadcast::Sender<RunEvent>>,
}

impl Live {
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.tx
            .get_or_init(|| broadcast::channel(4096).0)
            .subscribe()
    }

    /// Whether anyone ever subscribed (then events are copied for them).
    fn watched(&self) -> bool {
        self.tx.get().is_some()
    }

    fn send(&self, ev: &RunEvent) {
        if let Some(tx) = self.tx.get() {
            // No receivers is fine: nobody is watching right now.
            let _ = tx.send(ev.clone());
        }
    }
}

/// A suspended path and what it asks for.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Suspension {
    /// The suspended path; pass it to `resume`.
    pub path: String,
    /// The payload the step suspended with.
    pub payload: Value,
}

pub(crate) struct RunCore {
    pub(crate) run_id: Arc<str>,
    machine: Machine,
    store: Arc<dyn Store>,
    next_seq: u64,
    pub(crate) state: Arc<RunState>,
    /// The run's cancellation token and live subscribers, shared with the engine's table of
    /// active runs (one allocation for both).
    pub(crate) active: Arc<super::engine::Active>,
    pub(crate) input: Value,
    /// The status last committed to the run row.
    pub(crate) committed: RunStatus,
    pub(crate) created_at: i64,
    /// The run's outcome once it stopped executing.
    pub(crate) status: Status,
    /// Writes produced and not yet committed (see [`RunCore::advance`]).
    pending: Batch,
    /// The engine that claimed the run: every commit is fenced by it (see [`Batch::fence`]).
    owner: Arc<str>,
    /// The engine's clock: every timestamp the run writes.
    pub(crate) clock: crate::clock::TimeSource,
}

impl RunCore {
    /// Creates a new run; its row is written with the first [`RunCore::flush`]. `id` is the
    /// run id and the time (ms) it encodes, which becomes the run's `created_at` (so that the
    /// stores' creation order and id order agree).
    pub(crate) fn create(
        store: Arc<dyn Store>,
        graph: Arc<Graph>,
        id: (String, i64),
        input: Value,
        owner: &Arc<str>,
        lease_until: i64,
        clock: crate::clock::TimeSource,
    ) -> Result<Box<Self>, EngineError> {
        if let Some(s) = &graph.input_schema {
            s.validate(&input, &format!("workflow `{}`", graph.id), "input")?;
        }
        let (id, now) = id;
        let run_id: Arc<str> = Arc::from(id.as_str());
        // The stored copy of the input, shared by the run's record and its first event.
        let stored = Arc::new(input.clone());
        let record = RunRecord {
            id,
            workflow: graph.id.clone(),
            fingerprint: graph.fingerprint.clone(),
            status: RunStatus::Running,
            input: Arc::clone(&stored),
            output: None,
            error: None,
            created_at: now,
            updated_at: now,
            owner: Some(String::from(&**owner)),
            lease_until: Some(lease_until),
        };
        let started = RunEvent {
            run_id: Arc::clone(&run_id),
            seq: 1,
            at: now,
            kind: EventKind::RunStarted {
                workflow: graph.id.clone(),
                input: stored,
            },
        };
        // Room for the usual run's events (started, a start and an output per step,
        // finished) without growing the vector on the way.
        let mut events = Vec::with_capacity(8);
        events.push(started);
        let pending = Batch {
            create: Some(record),
            events,
            ..Batch::default()
        };
        // Boxed: the core is close to a kilobyte, and drivers move it around (into futures, into
        // an `ExternalRun`); a box makes each move a pointer copy.
        Ok(Box::new(Self {
            machine: Machine::new(graph, input.clone(), Vec::new(), Default::default()),
            run_id,
            store,
            next_seq: 2,
            state: Arc::new(RunState::default()),
            active: super::engine::Active::new(),
            input,
            committed: RunStatus::Running,
            created_at: now,
            status: Status::Running,
            pending,
            owner: Arc::clone(owner),
            clock,
        }))
    }

    /// Leaves the run to be created without an owner (enqueued for any worker).
    pub(crate) fn disown(&mut self) {
        if let Some(r) = self.pending.create.as_mut() {
            r.owner = None;
            r.lease_until = None;
        }
    }

    /// Rebuilds a stored run from its records (replay).
    pub(crate) fn load(
        store: Arc<dyn Store>,
        graph: Arc<Graph>,
        record: &RunRecord,
        committed: RunStatus,
        owner: &Arc<str>,
        clock: crate::clock::TimeSource,
    ) -> Result<Box<Self>, EngineError> {
        let steps = store.steps(&record.id)?;
        let state = store.state(&record.id)?;
        let next_seq = store.last_seq(&record.id)? + 1;
        Ok(Box::new(Self {
            machine: Machine::new(graph, (*record.input).clone(), steps, Default::default()),
            run_id: record.id.as_str().into(),
            store,
            next_seq,
            state: Arc::new(RunState::from_values(state)),
            active: super::engine::Active::new(),
            input: (*record.input).clone(),
            committed,
            created_at: record.created_at,
            status: Status::Running,
            pending: Batch::default(),
            owner: Arc::clone(owner),
            clock,
        }))
    }

    /// Rebuilds a failed run for a retry from its failed records ([`Engine::retry`]): the
    /// machine is built without the records that failed (so it runs those paths again, from
    /// attempt 1, and replays everything that succeeded), and the pending batch deletes them,
    /// reopens the run (running, its error cleared, still owned by this engine) and records a
    /// `run-retried` event naming them. `None` when no record failed (a run that failed on its
    /// timeout or on a divergence): there is no step to retry.
    ///
    /// [`Engine::retry`]: crate::Engine::retry
    pub(crate) fn load_retry(
        store: Arc<dyn Store>,
        graph: Arc<Graph>,
        record: &RunRecord,
        owner: &Arc<str>,
        clock: crate::clock::TimeSource,
    ) -> Result<Option<Box<Self>>, EngineError> {
        let (failed, kept): (Vec<_>, Vec<_>) = store
            .steps(&record.id)?
            .into_iter()
            .partition(|s| s.status == StepStatus::Failed);
        if failed.is_empty() {
            return Ok(None);
        }
        let paths: Vec<String> = failed.into_iter().map(|s| s.path.to_string()).collect();
        let state = store.state(&record.id)?;
        let next_seq = store.last_seq(&record.id)? + 1;
        let now = clock.now_ms();
        let mut core = Box::new(Self {
            machine: Machine::new(graph, (*record.input).clone(), kept, Default::default()),
            run_id: record.id.as_str().into(),
            store,
            next_seq,
            state: Arc::new(RunState::from_values(state)),
            active: super::engine::Active::new(),
            input: (*record.input).clone(),
            committed: RunStatus::Running,
            created_at: record.created_at,
            status: Status::Running,
            pending: Batch {
                clear: paths.clone(),
                update: Some(RunUpdate {
                    status: RunStatus::Running,
                    output: None,
                    error: None,
                    updated_at: now,
                    release: false,
                }),
                ..Batch::default()
            },
            owner: Arc::clone(owner),
            clock,
        });
        core.stamp(EventKind::RunRetried { paths }, now);
        Ok(Some(core))
    }

    /// Drops the in-memory machine and rebuilds it from the store, keeping actions in flight.
    pub(crate) fn rebuild(&mut self) -> Result<(), EngineError> {
        let steps = self.store.steps(&self.run_id)?;
        let issued = self.machine.take_issued();
        let mut actions = Vec::new();
        self.machine.drain_actions(&mut actions);
        let graph = Arc::clone(self.machine.graph());
        self.machine = Machine::new(graph, self.input.clone(), steps, issued);
        // Actions issued by results handed back since the last poll are still to be done.
        self.machine.requeue(actions);
        Ok(())
    }

    pub(crate) fn graph(&self) -> &Arc<Graph> {
        self.machine.graph()
    }

    /// The run's workflow id.
    pub(crate) fn workflow(&self) -> &str {
        &self.machine.graph().id
    }

    /// Advances the machine and commits what it produced in one batch.
    pub(crate) fn poll(&mut self) -> Result<(Vec<Action>, RunStatus), EngineError> {
        let mut actions = Vec::new();
        let phase = self.advance_into(&mut actions);
        self.flush()?;
        Ok((actions, phase))
    }

    /// Advances the machine as far as it goes without outside results, appending the actions
    /// to `actions` (a driver reuses one buffer for a whole run); what it produced is added to
    /// the pending batch, which [`RunCore::flush`] commits. A driver may advance several times
    /// (steps that finished without waiting) before it flushes; it must flush before it waits
    /// for anything and before it reports the run's status.
    pub(crate) fn advance_into(&mut self, actions: &mut Vec<Action>) -> RunStatus {
        let now = self.clock.now_ms();
        let status = self.machine.poll(now);
        self.machine.drain_actions(actions);
        self.collect(now);
        let target = status.run_status();
        if target != self.committed {
            let (output, error) = match &status {
                // One stored copy, shared by the run's row and its `run-finished` event.
                Status::Succeeded(v) => (Some(Arc::new(v.clone())), None),
                Status::Failed(e) => (None, Some(e.clone())),
                _ => (None, None),
            };
            match &status {
                Status::Suspended(paths) => self.stamp(
                    EventKind::RunSuspended {
                        paths: paths.clone(),
                    },
                    now,
                ),
                Status::Succeeded(_) | Status::Failed(_) => self.stamp(
                    EventKind::RunFinished {
                        status: target,
                        output: output.clone(),
                        error: error.clone(),
                    },
                    now,
                ),
                Status::Running => {}
            }
            self.pending.update = Some(RunUpdate {
                status: target,
                output,
                error,
                updated_at: now,
                release: target != RunStatus::Running,
            });
            self.committed = target;
        }
        let phase = status.run_status();
        self.status = status;
        phase
    }

    /// Moves what the machine produced since the last call (records, events, state) into
    /// the pending batch.
    fn collect(&mut self, now: i64) {
        let first = self.pending.steps.len();
        self.machine.drain_records(&mut self.pending.steps);
        for s in &self.pending.steps[first..] {
            if s.status == StepStatus::Suspended
                && let Some(p) = &s.payload
                && let Some(g) = crate::approval::gate_from_suspension(
                    &self.run_id,
                    &self.machine.graph().id,
                    &s.path,
                    p,
                    now,
                )
            {
                self.pending.gates.push(g);
            }
        }
        self.state.take_dirty_into(&mut self.pending.state);
        let (run_id, next_seq) = (&self.run_id, &mut self.next_seq);
        self.pending
            .events
            .extend(self.machine.drain_events().map(|kind| {
                let seq = *next_seq;
                *next_seq += 1;
                RunEvent {
                    run_id: Arc::clone(run_id),
                    seq,
                    at: now,
                    kind,
                }
            }));
    }

    /// Commits the pending batch (if any) and tells live subscribers.
    pub(crate) fn flush(&mut self) -> Result<(), EngineError> {
        if let Some((batch, live)) = self.take_batch() {
            let r = self.store.commit(&self.run_id, batch);
            self.committed(r, live)?;
        }
        self.check_divergence()
    }

    /// [`RunCore::flush`] through the engine's group commit: when another run is committing,
    /// this run's batch joins the next group and the task waits without holding its thread.
    pub(crate) async fn flush_grouped(
        &mut self,
        group: &super::group::GroupCommit,
    ) -> Result<(), EngineError> {
        if let Some((batch, live)) = self.take_batch() {
            let r = group.commit(&*self.store, &self.run_id, batch).await;
            self.committed(r, live)?;
        }
        self.check_divergence()
    }

    /// [`RunCore::flush`] through the engine's group commit, blocking the thread (for
    /// synchronous callers such as `Engine::spawn`).
    pub(crate) fn flush_grouped_blocking(
        &mut self,
        group: &super::group::GroupCommit,
    ) -> Result<(), EngineError> {
        if let Some((batch, live)) = self.take_batch() {
            let r = group.commit_blocking(&*self.store, &self.run_id, batch);
            self.committed(r, live)?;
        }
        self.check_divergence()
    }

    /// The pending batch, fenced by this engine, and its events for live subscribers (which
    /// go out only after the commit succeeded); `None` when there is nothing to commit.
    fn take_batch(&mut self) -> Option<(Batch, Option<Vec<RunEvent>>)> {
        self.collect(self.clock.now_ms());
        if self.pending.is_empty() {
            return None;
        }
        let mut batch = std::mem::take(&mut self.pending);
        batch.fence = Some(Arc::clone(&self.owner));
        let live = self.active.live.watched().then(|| batch.events.clone());
        Some((batch, live))
    }

    fn committed(
        &self,
        r: Result<(), crate::error::StoreError>,
        live: Option<Vec<RunEvent>>,
    ) -> Result<(), EngineError> {
        r.map_err(|e| match e {
            crate::error::StoreError::Fenced { run, owner } => EngineError::Owned {
                run,
                owner: owner.unwrap_or_else(|| "no engine (released)".into()),
            },
            e => e.into(),
        })?;
        for ev in live.iter().flatten() {
            self.active.live.send(ev);
        }
        Ok(())
    }

    fn check_divergence(&self) -> Result<(), EngineError> {
        if let Some((path, detail)) = self.machine.divergence() {
            return Err(EngineError::ReplayDiverged {
                run: self.run_id.to_string(),
                path: path.clone(),
                detail: detail.clone(),
            });
        }
        Ok(())
    }

    /// Adds an event to the pending batch with the run's next sequence number.
    fn stamp(&mut self, kind: EventKind, at: i64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.events.push(RunEvent {
            run_id: Arc::clone(&self.run_id),
            seq,
            at,
            kind,
        });
    }

    /// Hands back the result of an action.
    pub(crate) fn complete(&mut self, path: &str, result: Result<Value, StepError>) {
        self.machine.complete(path, result, self.clock.now_ms());
    }

    /// Sets resume data on a suspended path and commits it (with the run back to running).
    pub(crate) fn resume(&mut self, path: &str, data: Value) -> Result<(), EngineError> {
        let now = self.clock.now_ms();
        let Some(rec) = self.machine.resume(path, data, now) else {
            return Err(EngineError::NotSuspended {
                run: self.run_id.to_string(),
                path: path.to_string(),
                suspended: self.suspended_paths().join(", "),
            });
        };
        let (_, kinds) = self.machine.take_writes();
        self.pending.steps.push(rec);
        for kind in kinds {
            self.stamp(kind, now);
        }
        self.flush()?;
        // The claim that preceded this set the row to running.
        self.committed = RunStatus::Running;
        self.status = Status::Running;
        Ok(())
    }

    /// Moves the custom events steps emitted so far into the pending batch.
    pub(crate) fn take_emitted(&mut self, rx: &super::step::Emitter) {
        while let Some(em) = rx.try_recv() {
            self.custom_pending(em.path, em.name, em.data);
        }
    }

    /// Adds a custom event to the pending batch (committed with the next flush).
    pub(crate) fn custom_pending(&mut self, path: String, name: String, data: Value) {
        let path = path.into();
        self.stamp(EventKind::Custom { path, name, data }, self.clock.now_ms());
    }

    /// Commits a custom event.
    pub(crate) fn custom(
        &mut self,
        path: String,
        name: String,
        data: Value,
    ) -> Result<(), EngineError> {
        let path = path.into();
        self.stamp(EventKind::Custom { path, name, data }, self.clock.now_ms());
        self.flush()
    }

    /// Ends the run with `status` (cancelled or failed) and `error`, whatever is in flight.
    pub(crate) fn finish(&mut self, status: RunStatus, error: String) -> Result<(), EngineError> {
        let now = self.clock.now_ms();
        let (steps, mut kinds) = self.machine.take_writes();
        kinds.push(EventKind::RunFinished {
            status,
            output: None,
            error: Some(error.clone()),
        });
        self.pending.steps.extend(steps);
        self.state.take_dirty_into(&mut self.pending.state);
        self.pending.update = Some(RunUpdate {
            status,
            output: None,
            error: Some(error.clone()),
            updated_at: now,
            release: true,
        });
        for kind in kinds {
            self.stamp(kind, now);
        }
        self.committed = status;
        self.status = Status::Failed(error);
        self.flush()
    }

    /// Puts a claimed run back to suspended without changes (after a rejected resume).
    pub(crate) fn release_suspended(&mut self) -> Result<(), EngineError> {
        self.pending.update = Some(RunUpdate {
            status: RunStatus::Suspended,
            output: None,
            error: None,
            updated_at: self.clock.now_ms(),
            release: true,
        });
        self.committed = RunStatus::Suspended;
        self.flush()
    }

    /// The suspended paths, as of the last poll.
    pub(crate) fn suspended_paths(&self) -> Vec<String> {
        match &self.status {
            Status::Suspended(p) => p.clone(),
            _ => Vec::new(),
        }
    }

    /// The suspended paths with their payloads.
    pub(crate) fn suspensions(&self) -> Vec<Suspension> {
        self.suspended_paths()
            .into_iter()
            .map(|path| {
                let payload = self
                    .machine
                    .record(&path)
                    .filter(|r| r.status == StepStatus::Suspended)
                    .and_then(|r| r.payload.clone())
                    .unwrap_or(Value::Null);
                Suspension { path, payload }
            })
            .collect()
    }

    /// The step node at a suspended path, for resume-schema checks.
    pub(crate) fn resume_schema_for(&self, path: &str) -> Option<super::schema::Schema> {
        self.machine.resume_schema(path)
    }
}
