//! An engine that lost its claim on a run (its lease lapsed and another engine took the run
//! over) cannot commit into it any more: its writes are refused whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use miyabi::*;
use serde_json::{Value, json};

async fn wait_for_event(engine: &Engine, run: &str, path: &str) {
    for _ in 0..500 {
        let events = engine.store().events(run, 1, 1000).unwrap();
        if events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::StepStarted { path: p, .. } if p == path))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("`{path}` never started");
}

#[tokio::test]
async fn a_run_taken_over_by_another_engine_refuses_the_old_owners_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let engine = Engine::sqlite(&db).unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::clone(&release);
    let slow = step_fn(move |_ctx: StepContext, v: Value| {
        let gate = Arc::clone(&gate);
        async move {
            gate.notified().await;
            Ok(json!({ "first": v }))
        }
    });
    let second = step_fn(|_ctx: StepContext, v: Value| async move { Ok(json!({ "second": v })) });
    let wf = Workflow::new("fenced")
        .step("first", slow)
        .then("second", second)
        .commit()
        .unwrap();
    let handle = engine.spawn(&wf, json!(1)).unwrap();
    let id = handle.id().to_string();
    wait_for_event(&engine, &id, "first").await;

    // Another engine takes the run over (as `recover` does once a lease has lapsed).
    let side = rusqlite::Connection::open(&db).unwrap();
    side.execute(
        "UPDATE runs SET owner = 'other-engine@host:1', lease_until = ?2 WHERE id = ?1",
        rusqlite::params![id, i64::MAX],
    )
    .unwrap();

    release.notify_one();
    let err = handle.wait().await.unwrap_err();
    assert!(matches!(err, EngineError::Owned { .. }), "{err}");
    assert!(err.to_string().contains("other-engine@host:1"), "{err}");

    // Nothing of the old owner's later work reached the store.
    let steps = engine.store().steps(&id).unwrap();
    assert!(
        steps
            .iter()
            .all(|s| s.status != StepStatus::Succeeded && s.path != "second"),
        "{steps:?}"
    );
    let row = engine.store().run(&id).unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Running);
    assert_eq!(row.owner.as_deref(), Some("other-engine@host:1"));
    assert!(
        !engine
            .store()
            .events(&id, 1, 1000)
            .unwrap()
            .iter()
            .any(|e| matches!(e.kind, EventKind::StepOutput { .. })),
        "no step output was committed by the fenced engine"
    );
}
