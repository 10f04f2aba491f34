//! Driving runs from outside the tokio driver (as the Node binding does), on SQLite files.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use miyabi::external::*;
use miyabi::store::*;
use miyabi::*;
use serde_json::{Value, json};

/// Drives a run to rest, answering tasks with `handler`; returns the run.
async fn drive(run: &mut ExternalRun, handler: &dyn Fn(&Task) -> Result<Value, StepError>) -> Run {
    while run.status() == RunStatus::Running {
        let tasks = run.poll().unwrap();
        for t in tasks {
            match &t {
                Task::Step { path, .. } | Task::Decide { path, .. } => {
                    let r = handler(&t);
                    run.complete(path, r);
                }
                Task::Sleep { path, wake_at } => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_millis() as i64;
                    tokio::time::sleep(std::time::Duration::from_millis(
                        (wake_at - now).max(0) as u64
                    ))
                    .await;
                    run.complete(path, Ok(Value::Null));
                }
                Task::Native { path } => {
                    let r = run.native(path).unwrap().await;
                    run.complete(path, r);
                }
                _ => unreachable!(),
            }
        }
    }
    run.outcome()
}

fn spec() -> CommittedWorkflow {
    Workflow::new("ext")
        .step("inc", Node::external(1))
        .branch_external(
            "route",
            2,
            vec![
                ("big".into(), Node::external(3)),
                ("small".into(), Node::external(4)),
            ],
        )
        .loop_external("grow", Node::external(1), 5, true, 10)
        .map_external("wrap", 6)
        .then(
            "native",
            step_fn(|_c: StepContext, v: Value| async move { Ok(json!({"native": v})) }),
        )
        .parallel_named(
            vec![
                ("a".into(), Node::external(1)),
                ("gate".into(), Node::external(7)),
            ],
            false,
        )
        .commit()
        .unwrap()
}

fn handler(t: &Task) -> Result<Value, StepError> {
    match t {
        Task::Step {
            handle: 1, input, ..
        } => Ok(json!(input.as_i64().unwrap_or(0) + 1)),
        Task::Step {
            handle: 3, input, ..
        } => Ok(json!(input.as_i64().unwrap() * 100)),
        Task::Step {
            handle: 4, input, ..
        } => Ok(input.clone()),
        Task::Step {
            handle: 7,
            resume: Some(r),
            ..
        } => Ok(r.clone()),
        Task::Step {
            handle: 7, path, ..
        } => Err(StepError::retryable(format!("no resume at {path}"))),
        Task::Decide {
            handle: 2,
            kind: DecisionKind::Branch,
            input,
            ..
        } => Ok(json!(if input.as_i64().unwrap() > 5 {
            "big"
        } else {
            "small"
        })),
        Task::Decide {
            handle: 5,
            kind: DecisionKind::Loop,
            input,
            ..
        } => Ok(json!(input.as_i64().unwrap() >= 3)),
        Task::Decide {
            handle: 6,
            kind: DecisionKind::Map,
            input,
            ..
        } => Ok(json!({"n": input})),
        other => panic!("unexpected task {other:?}"),
    }
}

#[tokio::test]
async fn an_external_driver_runs_every_construct_and_suspends() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("x.db")).unwrap();
    let wf = Workflow::new("gate")
        .step(
            "ask",
            Node::external(7).resume_schema(json!({"type": "string"})),
        )
        .commit()
        .unwrap();
    // A step that suspends: handle 7 suspends when it has no resume data.
    let suspend_handler = |t: &Task| -> Result<Value, StepError> {
        match t {
            Task::Step {
                handle: 7,
                resume: None,
                ..
            } => Err(StepContextless::suspend(json!({"q": "ok?"}))),
            other => handler(other),
        }
    };
    let mut run = engine.start_external(&wf, json!(null)).unwrap();
    let out = drive(&mut run, &suspend_handler).await;
    assert_eq!(out.status, RunStatus::Suspended);
    assert_eq!(out.suspended[0].payload, json!({"q": "ok?"}));
    let id = out.id.clone();
    drop(run);

    // Resumed by a second engine on the same file (another process).
    let engine2 = Engine::sqlite(dir.path().join("x.db")).unwrap();
    engine2.register(&wf);
    assert!(matches!(
        engine2.resume_external(&id, "ask", json!(5)),
        Err(EngineError::Schema(_))
    ));
    let mut run = engine2.resume_external(&id, "ask", json!("yes")).unwrap();
    let out = drive(&mut run, &suspend_handler).await;
    assert_eq!(out.output, Some(json!("yes")), "{out:?}");

    // Every construct, with the run's gate resumed.
    let wf = spec();
    let mut run = engine.start_external(&wf, json!(5)).unwrap();
    let out = drive(&mut run, &suspend_handler).await;
    assert_eq!(out.status, RunStatus::Suspended, "{out:?}");
    assert_eq!(out.suspended[0].path, "gate");
    drop(run);
    let mut run = engine
        .resume_external(&out.id, "gate", json!("approved"))
        .unwrap();
    let out = drive(&mut run, &suspend_handler).await;
    // 5+1=6 → big → 600 → loop until >=3: 601 → map {"n":601} → native → parallel
    assert_eq!(
        out.output,
        Some(json!({"a": 1, "gate": "approved"})),
        "{out:?}"
    );
    let evs: Vec<RunEvent> = futures::StreamExt::collect::<Vec<_>>(engine.events(&out.id, 1))
        .await
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    let native = evs.iter().find_map(|e| match &e.kind {
        EventKind::StepOutput { path, output } if &**path == "native" => Some((**output).clone()),
        _ => None,
    });
    assert_eq!(native, Some(json!({"native": {"n": 601}})));
}

/// `suspend` without a StepContext, as a driver outside Rust reports it.
struct StepContextless;
impl StepContextless {
    fn suspend(payload: Value) -> StepError {
        StepError::suspended(payload)
    }
}

#[tokio::test]
async fn a_cancel_request_reaches_the_external_driver() {
    let engine = Engine::in_memory();
    let wf = Workflow::new("c")
        .step("s", Node::external(1))
        .commit()
        .unwrap();
    let mut run = engine.start_external(&wf, json!(0)).unwrap();
    let tasks = run.poll().unwrap();
    assert_eq!(tasks.len(), 1);
    let id = run.id().to_string();
    let e2 = engine.clone();
    let cancel = tokio::spawn(async move { e2.cancel(&id).await });
    while !run.cancel_requested() {
        tokio::task::yield_now().await;
    }
    run.cancel().unwrap();
    assert_eq!(cancel.await.unwrap().unwrap().status, RunStatus::Cancelled);
    assert_eq!(run.status(), RunStatus::Cancelled);
}

#[tokio::test]
async fn an_approval_gate_in_a_run_driven_from_outside() {
    use miyabi::approval::{ApprovalGate, ApprovalStatus, Approver, Decision};
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let wf = Workflow::new("ext-gate")
        .step("inc", Node::external(1))
        .await_approval("review", ApprovalGate::new().approvers(["alice"]))
        .then(
            "after",
            Node::external(1).input_schema(json!({"type": "object"})),
        )
        .commit()
        .unwrap();
    engine.register(&wf);
    let handle_after = |t: &Task| match t {
        Task::Step { path, input, .. } if path == "after" => Ok(json!({"got": input["data"]})),
        _ => handler(t),
    };
    let mut run = engine.start_external(&wf, json!(1)).unwrap();
    let out = drive(&mut run, &handle_after).await;
    assert_eq!(out.status, RunStatus::Suspended);
    assert_eq!(out.suspended[0].path, "review");
    drop(run);

    let approvals = engine.approvals();
    // Where decided gates go: the Node binding installs its JS engine here.
    let handed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let sink = std::sync::Arc::clone(&handed);
    engine.hand_external_gates_to(Some(std::sync::Arc::new(move |run: &str, gate: &str| {
        sink.lock()
            .unwrap()
            .push((run.to_string(), gate.to_string()));
    })));
    let gate = approvals
        .decide(
            &out.id,
            "review",
            &Approver::new("alice"),
            Decision::edit_and_approve(json!(41)),
        )
        .await
        .unwrap();
    // The tokio driver cannot run this workflow's steps: the decision waits for its driver.
    assert_eq!(gate.status, ApprovalStatus::Approved);
    assert!(!gate.delivered);
    assert_eq!(
        engine.get(&out.id).await.unwrap().unwrap().status,
        RunStatus::Suspended
    );
    // The decision was handed to the installed handoff, and every worker pass hands it again
    // until the run takes it.
    let want = (out.id.clone(), "review".to_string());
    assert_eq!(handed.lock().unwrap().first(), Some(&want));
    handed.lock().unwrap().clear();
    approvals.tick().await.unwrap();
    assert_eq!(*handed.lock().unwrap(), vec![want.clone()]);
    let mut resumed = approvals
        .resume_external(&out.id, "review")
        .unwrap()
        .unwrap();
    let done = drive(&mut resumed, &handle_after).await;
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.output, Some(json!({"got": 41})));
    assert!(approvals.get(&out.id, "review").unwrap().delivered);
    assert!(
        approvals
            .resume_external(&out.id, "review")
            .unwrap()
            .is_none()
    );
    // Delivered: no more handoffs.
    handed.lock().unwrap().clear();
    approvals.tick().await.unwrap();
    assert!(handed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_deferred_start_is_committed_with_the_first_flush() {
    let dir = tempfile::tempdir().unwrap();
    let inner: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(SqliteStore::open(dir.path().join("runs.db")).unwrap());
    let store = FaultInjectingStore::new(std::sync::Arc::clone(&inner));
    let engine = Engine::builder().store(store).build();
    let wf = Workflow::new("deferred")
        .step("a", Node::external(1))
        .then("b", Node::external(1))
        .commit()
        .unwrap();
    let mut run = engine.start_external_deferred(&wf, json!(1)).unwrap();
    assert!(
        inner.run(run.id()).unwrap().is_none(),
        "not stored before its first flush"
    );
    let out = drive(&mut run, &handler).await;
    assert_eq!(out.status, RunStatus::Succeeded);
    assert_eq!(out.output, Some(json!(3)));
    let stored = inner.run(&out.id).unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Succeeded);
    let seqs: Vec<u64> = inner
        .events(&out.id, 1, 100)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gaps");
}

#[tokio::test]
async fn the_core_times_out_an_external_step_with_the_tokio_drivers_error() {
    let engine = Engine::in_memory();
    let wf = Workflow::new("t")
        .step(
            "slow",
            Node::external(1).timeout(std::time::Duration::from_millis(50)),
        )
        .then("quick", Node::external(1))
        .commit()
        .unwrap();
    let mut run = engine.start_external(&wf, json!(0)).unwrap();
    let tasks = run.poll().unwrap();
    assert!(
        matches!(&tasks[..], [Task::Step { path, timeout_ms: Some(50), .. }] if path == "slow"),
        "{tasks:?}"
    );
    // Only a step with a timeout in flight can time out.
    assert_eq!(run.time_out("quick"), None);
    let message = run.time_out("slow").unwrap();
    assert_eq!(message, "step `slow` timed out after 50 ms");
    // The timer lost the race a second time: nothing changes.
    assert_eq!(run.time_out("slow"), None);
    assert!(run.poll().unwrap().is_empty());
    let out = run.outcome();
    assert_eq!(out.status, RunStatus::Failed);
    assert!(out.error.unwrap().contains(&message));
}

#[tokio::test]
async fn the_core_fails_a_run_past_its_deadline_with_the_tokio_drivers_error() {
    let engine = Engine::in_memory();
    let wf = Workflow::new("t")
        .step("s", Node::external(1))
        .timeout(std::time::Duration::from_secs(30))
        .commit()
        .unwrap();
    let mut run = engine.start_external(&wf, json!(0)).unwrap();
    assert!(run.deadline().is_some());
    run.poll().unwrap();
    assert_eq!(
        run.time_out_run().unwrap().as_deref(),
        Some("run timed out after 30 s")
    );
    assert_eq!(run.status(), RunStatus::Failed);
    assert_eq!(run.time_out_run().unwrap(), None, "once");

    let untimed = Workflow::new("u")
        .step("s", Node::external(1))
        .commit()
        .unwrap();
    let mut run = engine.start_external(&untimed, json!(0)).unwrap();
    assert_eq!(run.deadline(), None);
    assert_eq!(run.time_out_run().unwrap(), None);
    assert_eq!(run.status(), RunStatus::Running);
}

#[tokio::test]
async fn the_core_applies_a_cancel_request_on_the_first_advance_after_a_flush() {
    let engine = Engine::in_memory();
    let wf = Workflow::new("c")
        .step("s", Node::external(1))
        .commit()
        .unwrap();
    let mut run = engine.start_external(&wf, json!(0)).unwrap();
    assert_eq!(run.poll().unwrap().len(), 1);
    assert!(matches!(
        engine.request_cancel(run.id()).unwrap(),
        CancelRequest::Requested
    ));
    run.complete("s", Ok(json!(1)));
    // The poll flushed: this advance looks at the flag, cancels, and hands out nothing.
    assert!(run.advance().unwrap().is_empty());
    assert_eq!(run.status(), RunStatus::Cancelled);
    assert_eq!(
        engine.get(run.id()).await.unwrap().unwrap().status,
        RunStatus::Cancelled
    );
}

#[tokio::test]
async fn a_burst_that_never_waits_still_sees_a_cancel_request() {
    let engine = Engine::in_memory();
    // A loop of steps that complete at once: the driver never flushes in between.
    let wf = Workflow::new("burst")
        .loop_external("l", Node::external(1), 2, false, 1000)
        .commit()
        .unwrap();
    let mut run = engine.start_external(&wf, json!(0)).unwrap();
    let mut tasks = run.advance().unwrap();
    engine.request_cancel(run.id()).unwrap();
    let mut steps = 0;
    while run.status() == RunStatus::Running {
        for t in std::mem::take(&mut tasks) {
            match t {
                Task::Step { path, .. } => {
                    steps += 1;
                    run.complete(&path, Ok(json!(steps)));
                }
                Task::Decide { path, .. } => run.complete(&path, Ok(json!(true))),
                other => panic!("unexpected {other:?}"),
            }
        }
        tasks = run.advance().unwrap();
        assert!(steps < 1000, "the request was never seen");
    }
    assert_eq!(run.status(), RunStatus::Cancelled);
    assert!(steps <= 64, "seen within 64 advances, after {steps} steps");
}

#[tokio::test]
async fn decisions_from_outside_are_checked_by_the_machine() {
    let engine = Engine::in_memory();
    let answer = |kind_answer: Value| {
        move |t: &Task| -> Result<Value, StepError> {
            match t {
                Task::Decide { .. } => Ok(kind_answer.clone()),
                other => handler(other),
            }
        }
    };
    // A loop condition must be a boolean: no truthiness.
    let looped = Workflow::new("l")
        .loop_external("l", Node::external(1), 2, false, 10)
        .commit()
        .unwrap();
    let mut run = engine.start_external(&looped, json!(0)).unwrap();
    let out = drive(&mut run, &answer(json!(1))).await;
    assert_eq!(out.status, RunStatus::Failed);
    assert!(out.error.unwrap().contains("not a bool"));

    // A wake time: whole milliseconds, a fraction rounds up, anything else fails the run.
    let sleepy = Workflow::new("s")
        .sleep_until_external("nap", 3)
        .commit()
        .unwrap();
    let mut run = engine.start_external(&sleepy, json!(0)).unwrap();
    let out = drive(&mut run, &answer(json!(1.5))).await;
    assert_eq!(out.status, RunStatus::Succeeded, "{out:?}");
    let steps = engine.store().steps(&out.id).unwrap();
    let nap = steps.iter().find(|s| &*s.path == "nap").unwrap();
    assert_eq!(nap.output.as_deref().unwrap()["wake_at"], json!(2));
    for bad in [json!("soon"), json!(1e300)] {
        let mut run = engine.start_external(&sleepy, json!(0)).unwrap();
        let out = drive(&mut run, &answer(bad.clone())).await;
        assert_eq!(out.status, RunStatus::Failed, "{bad}");
        assert!(
            out.error
                .unwrap()
                .contains("must be a number of milliseconds since the epoch"),
            "{bad}"
        );
    }
}
