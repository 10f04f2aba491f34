//! Every event of a run precedes its `run-finished`, and a step's own events precede its
//! `step-output`, whichever driver runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use miyabi::external::{ExternalRun, Task};
use miyabi::{Engine, EventKind, Node, RunEvent, RunStatus, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

/// A Rust step that reports two turns while it works (as an agent step does).
fn chatty() -> Node {
    step_fn(|ctx: StepContext, input: Value| async move {
        ctx.emit("agent-turn", json!({ "turn": 1 }));
        tokio::task::yield_now().await;
        ctx.emit("agent-turn", json!({ "turn": 2 }));
        Ok(json!({ "answer": input }))
    })
}

fn events(engine: &Engine, run: &str) -> Vec<RunEvent> {
    engine.store().events(run, 1, 1000).expect("events")
}

/// Checks the order rules and returns the events' kinds as short strings.
fn check_order(events: &[RunEvent]) -> Vec<String> {
    let mut seen_output = std::collections::HashSet::new();
    let mut finished = false;
    let mut names = Vec::new();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.seq,
            i as u64 + 1,
            "sequence numbers without gaps: {events:?}"
        );
        assert!(!finished, "event {} after run-finished: {events:?}", e.seq);
        match &e.kind {
            EventKind::StepOutput { path, .. } => {
                seen_output.insert(path.clone());
                names.push(format!("output:{path}"));
            }
            EventKind::Custom { path, name, .. } => {
                assert!(
                    !seen_output.contains(path),
                    "`{name}` of `{path}` stored after that step's output: {events:?}"
                );
                names.push(format!("custom:{path}"));
            }
            EventKind::RunFinished { .. } => {
                finished = true;
                names.push("finished".into());
            }
            _ => {}
        }
    }
    assert!(finished, "the run finished: {events:?}");
    names
}

#[tokio::test]
async fn a_native_steps_events_precede_its_output_in_an_externally_driven_run() {
    let wf = Workflow::new("order-ext")
        .step("agent", chatty())
        .then("next", Node::external(1))
        .commit()
        .expect("commit");
    let engine = Engine::in_memory();
    engine.register(&wf);
    let mut run: ExternalRun = engine.start_external(&wf, json!("q")).expect("start");
    let mut tasks = run.poll().expect("poll");
    while run.status() == RunStatus::Running {
        for task in std::mem::take(&mut tasks) {
            match task {
                Task::Native { path } => {
                    let fut = run.native(&path).expect("native future");
                    let result = fut.await;
                    run.complete(&path, result);
                }
                Task::Step { path, input, .. } => run.complete(&path, Ok(input)),
                other => panic!("unexpected task {other:?}"),
            }
        }
        tasks = run.poll().expect("poll");
    }
    assert_eq!(run.status(), RunStatus::Succeeded);
    let id = run.id().to_string();
    drop(run);
    let names = check_order(&events(&engine, &id));
    assert_eq!(
        names,
        [
            "custom:agent",
            "custom:agent",
            "output:agent",
            "output:next",
            "finished"
        ]
    );
}

#[tokio::test]
async fn a_native_steps_events_precede_run_finished_when_it_is_the_last_step() {
    let wf = Workflow::new("order-ext-last")
        .step("first", Node::external(1))
        .then("agent", chatty())
        .commit()
        .expect("commit");
    let engine = Engine::in_memory();
    engine.register(&wf);
    let mut run = engine.start_external(&wf, json!("q")).expect("start");
    let mut tasks = run.advance().expect("advance");
    while !run.is_settled() {
        for task in std::mem::take(&mut tasks) {
            match task {
                Task::Native { path } => {
                    let fut = run.native(&path).expect("native future");
                    run.flush().expect("flush before waiting");
                    let result = fut.await;
                    run.complete(&path, result);
                }
                Task::Step { path, input, .. } => run.complete(&path, Ok(input)),
                other => panic!("unexpected task {other:?}"),
            }
        }
        tasks = run.advance().expect("advance");
    }
    run.flush().expect("flush");
    let id = run.id().to_string();
    drop(run);
    let names = check_order(&events(&engine, &id));
    assert_eq!(
        names,
        [
            "output:first",
            "custom:agent",
            "custom:agent",
            "output:agent",
            "finished"
        ]
    );
}

#[tokio::test]
async fn a_steps_events_precede_its_output_in_the_tokio_driver() {
    let wf = Workflow::new("order-tokio")
        .step("agent", chatty())
        .then("again", chatty())
        .commit()
        .expect("commit");
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::sqlite(dir.path().join("runs.db")).expect("engine");
    let run = engine.start(&wf, json!("q")).await.expect("start");
    assert_eq!(run.status, RunStatus::Succeeded);
    let names = check_order(&events(&engine, &run.id));
    assert_eq!(
        names,
        [
            "custom:agent",
            "custom:agent",
            "output:agent",
            "custom:again",
            "custom:again",
            "output:again",
            "finished"
        ]
    );
}
