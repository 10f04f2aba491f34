//! The engine's background worker: approval deadlines, decided gates, notifications, retention.

use super::*;

impl Engine {
    /// The approval gates of this engine's runs: inbox, decisions, audit trail.
    ///
    /// ```
    /// use miyabi_engine::approval::{ApprovalGate, Approver, Decision};
    /// use miyabi_engine::{step_fn, Engine, StepContext, Workflow};
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

    /// Sets where the approvals worker hands a decided gate of a run whose steps run outside
    /// Rust (graphs with [`Node::external`](crate::Node::external) nodes), which the tokio
    /// driver cannot continue: `handoff(run_id, gate)` should resume it with
    /// [`Approvals::resume_external`](crate::approval::Approvals::resume_external) and drive
    /// it. Called on every worker pass until the gate is delivered (a handoff that cannot
    /// take the run, e.g. because its workflow is not registered in this process, just returns
    /// and another process may take it). `None` removes the handoff. The Node binding installs
    /// one that calls its JavaScript engine.
    ///
    /// ```
    /// let engine = miyabi_engine::Engine::in_memory();
    /// engine.hand_external_gates_to(Some(std::sync::Arc::new(|run: &str, gate: &str| {
    ///     println!("resume {run} at {gate}");
    /// })));
    /// ```
    pub fn hand_external_gates_to(&self, handoff: Option<GateHandoff>) {
        *lock(&self.inner.gate_handoff) = handoff;
    }

    /// Hands a decided gate of an externally driven run to the installed handoff; false when
    /// there is none.
    pub(crate) fn hand_off_gate(&self, run_id: &str, gate: &str) -> bool {
        let handoff = lock(&self.inner.gate_handoff).clone();
        match handoff {
            Some(f) => {
                f(run_id, gate);
                true
            }
            None => false,
        }
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
            let mut next_prune = tokio::time::Instant::now();
            loop {
                // Holds the engine only during a pass: a dropped engine stops its worker.
                {
                    let Some(inner) = weak.upgrade() else { return };
                    let engine = Engine { inner };
                    if let Err(e) = engine.approvals().tick().await {
                        tracing::warn!(error = %e, "approvals worker pass failed");
                    }
                    if let Some(rule) = &engine.inner.retention
                        && tokio::time::Instant::now() >= next_prune
                    {
                        next_prune = tokio::time::Instant::now() + engine.inner.retention_every;
                        match engine.prune(rule) {
                            Ok(0) => {}
                            Ok(n) => {
                                tracing::info!(deleted = n, "retention: finished runs deleted")
                            }
                            Err(e) => tracing::warn!(error = %e, "retention pass failed"),
                        }
                    }
                }
                let _ = tokio::time::timeout(every, wake.notified()).await;
            }
        });
    }

    /// Deletes the finished runs that `rule` selects, with their step records, events, state,
    /// gates and pending notifications (the approvals audit trail is kept); returns how many
    /// runs were deleted. Running and suspended runs are never deleted, whatever their age.
    ///
    /// ```
    /// use std::time::Duration;
    /// use miyabi_engine::{Engine, Retention};
    /// let engine = Engine::in_memory();
    /// let deleted = engine.prune(&Retention::older_than(Duration::from_secs(86_400)).keep_last(100))?;
    /// assert_eq!(deleted, 0);
    /// # Ok::<(), miyabi_engine::EngineError>(())
    /// ```
    pub fn prune(&self, rule: &crate::store::Retention) -> Result<u64, EngineError> {
        Ok(self.inner.store.prune(rule, self.now_ms())?)
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
            return Err(EngineError::DrivenOutsideRust {
                run: run_id.to_string(),
                workflow: record.workflow,
                operation: format!("resume gate `{path}`"),
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
}
