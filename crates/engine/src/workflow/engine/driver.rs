//! The tokio driver: runs a run's steps as futures, coalesces commits, enforces step and run
//! timeouts, cancellation and sleeps (see docs/architecture.md, "The tokio driver").

use super::*;

impl Engine {
    pub(super) async fn drive(&self, core: Box<RunCore>) -> Result<Run, EngineError> {
        self.drive_from(core, Vec::new()).await
    }

    pub(super) async fn drive_from(
        &self,
        core: Box<RunCore>,
        first: Vec<Action>,
    ) -> Result<Run, EngineError> {
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
        if !self.inner.limits.is_empty() {
            // A slot under the concurrency limits may be free: `work` here looks at once.
            self.inner.work_wake.notify_one();
        }
        result
    }
}

pub(crate) type StepResult = (Arc<str>, Result<Value, StepError>);

/// How long a cancelled run waits for its in-flight steps to observe their token.
pub(super) const CANCEL_GRACE: Duration = Duration::from_secs(2);

pub(super) async fn drive(
    mut core: Box<RunCore>,
    first: Vec<Action>,
    always_replay: bool,
    coalesce: Durability,
    group: Arc<crate::workflow::group::GroupCommit>,
) -> Result<Run, EngineError> {
    let graph = Arc::clone(core.graph());
    let active = Arc::clone(&core.active);
    let emit = Emitter::default();
    let mut inflight = Inflight::default();
    let deadline = graph.timeout.map(|t| {
        let elapsed = Duration::from_millis(
            core.clock.now_ms().saturating_sub(core.created_at).max(0) as u64,
        );
        // A timeout too far away for the clock to represent is no deadline at all.
        tokio::time::Instant::now().checked_add(t.saturating_sub(elapsed))
    });
    let deadline = deadline.flatten();
    // One buffer for the whole run: the actions of each advance are appended and drained.
    let mut actions = first;
    loop {
        let status = core.advance_into(&mut actions);
        if matches!(status, RunStatus::Succeeded | RunStatus::Failed) {
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
                Action::Decide {
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
                        if r.is_err() && active.cancel.is_cancelled() {
                            // It failed because the run was cancelled (before this driver
                            // waited on anything): the run ends cancelled, not failed.
                            drop(inflight);
                            core.finish(RunStatus::Cancelled, "cancelled".into())?;
                            return Ok(outcome_taken(&mut core));
                        }
                        core.complete(&p, r);
                        progressed = true;
                        continue;
                    }
                    inflight.push(fut);
                }
                Action::Sleep { path, wake_at } => {
                    let cancel = active.cancel.clone();
                    let wait = wake_at.saturating_sub(core.clock.now_ms()).max(0) as u64;
                    inflight.push(Box::pin(async move {
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
            RunStatus::Running => {}
            _ if inflight.is_empty() => return Ok(outcome_taken(&mut core)),
            _ => {}
        }
        if inflight.is_empty() {
            return Err(EngineError::Invariant {
                run: core.run_id.to_string(),
                detail: "the run is running but the machine issued no action".into(),
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
                core.take_emitted(&emit);
                core.finish(RunStatus::Cancelled, "cancelled".into())?;
                return Ok(outcome_taken(&mut core));
            }
            _ = sleep_deadline => {
                active.cancel.cancel();
                drop(inflight);
                core.take_emitted(&emit);
                let t = graph.timeout.unwrap_or_default();
                core.finish(RunStatus::Failed, run_timed_out(t))?;
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
pub(super) struct Inflight(
    Option<FuturesUnordered<futures::future::BoxFuture<'static, StepResult>>>,
);

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
        core,
        Arc::clone(&path),
        attempt,
        resume,
        token,
        emit.clone(),
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
                        return (Arc::clone(&path), Err(step_timed_out(&path, t)));
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

/// The error of a step attempt that ran past its timeout (both drivers).
pub(crate) fn step_timed_out(path: &str, t: Duration) -> StepError {
    StepError::retryable(format!("step `{path}` timed out after {}", shown(t)))
}

/// The error of a run that ran past its workflow's timeout (both drivers).
pub(crate) fn run_timed_out(t: Duration) -> String {
    format!("run timed out after {}", shown(t))
}

/// A timeout as users wrote it: whole seconds as `5 s`, anything else in milliseconds.
fn shown(t: Duration) -> String {
    if t.subsec_millis() == 0 && t.as_secs() > 0 {
        format!("{} s", t.as_secs())
    } else {
        format!("{} ms", t.as_millis())
    }
}

pub(crate) fn evaluate(
    graph: &Graph,
    node: usize,
    kind: DecisionKind,
    input: &Value,
    path: &str,
) -> Result<Value, StepError> {
    let n = graph.node(node);
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| match (&n.kind, kind) {
        (NodeKind::Branch { selector, .. }, DecisionKind::Branch) => {
            Ok(Value::String(selector(input)))
        }
        (NodeKind::Loop { cond, .. }, DecisionKind::Loop) => Ok(Value::Bool(cond(input))),
        (NodeKind::Map(f), DecisionKind::Map) => Ok(f(input)),
        (NodeKind::Sleep(SleepSpec::Until(f)), DecisionKind::WakeTime) => {
            let t = f(input);
            let ms = crate::store::millis(t.duration_since(UNIX_EPOCH).unwrap_or_default());
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

pub(super) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
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
        updated_at: core.clock.now_ms(),
    }
}

pub(crate) fn outcome(core: &RunCore) -> Run {
    let now = core.clock.now_ms();
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
