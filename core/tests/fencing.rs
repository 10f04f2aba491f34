//! An engine that lost its claim on a run (its lease lapsed and another engine took the run
//! over) cannot commit into it any more: its writes are refused whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use miyabi::store::*;
use miyabi::*;
use serde_json::{Value, json};
use std::sync::Arc;

/// Waits for `path`'s step-started event: the engine sends it to subscribers once it is
/// committed, so no polling of the store is needed.
async fn wait_for_event(engine: &Engine, run: &str, path: &str) {
    let mut events = std::pin::pin!(engine.events(run, 1));
    while let Some(e) = events.next().await {
        if matches!(&e.unwrap().kind, EventKind::StepStarted { path: p, .. } if &**p == path) {
            return;
        }
    }
    panic!("the run's events ended before `{path}` started");
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
            .all(|s| s.status != StepStatus::Succeeded && &*s.path != "second"),
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

fn new_run(id: &str, owner: &str) -> Batch {
    Batch {
        create: Some(RunRecord {
            id: id.into(),
            workflow: "w".into(),
            fingerprint: "f".into(),
            status: RunStatus::Running,
            input: json!(null).into(),
            output: None,
            error: None,
            created_at: 1,
            updated_at: 1,
            owner: Some(owner.into()),
            lease_until: Some(i64::MAX),
        }),
        ..Batch::default()
    }
}

fn step_done(path: &str, owner: &str) -> Batch {
    Batch {
        steps: vec![StepRecord {
            path: path.into(),
            kind: RecordKind::Step,
            status: StepStatus::Succeeded,
            output: Some(json!(path).into()),
            error: None,
            payload: None,
            resume: None,
            attempt: 1,
            updated_at: 2,
        }],
        fence: Some(owner.into()),
        ..Batch::default()
    }
}

/// A group commit writes several runs' batches in one transaction, each in its own
/// savepoint: the fenced one is refused whole and the others commit.
#[test]
fn a_fenced_batch_in_a_group_is_refused_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("runs.db")).unwrap();
    for (id, owner) in [("a", "me"), ("b", "someone-else"), ("c", "me")] {
        store.commit(id, new_run(id, owner)).unwrap();
    }
    let results = store.commit_group(vec![
        ("a".into(), step_done("a1", "me")),
        ("b".into(), step_done("b1", "me")),
        ("c".into(), step_done("c1", "me")),
        ("a".into(), Batch::default()),
    ]);
    assert_eq!(results.len(), 4);
    assert!(results[0].is_ok() && results[2].is_ok() && results[3].is_ok());
    assert!(
        matches!(&results[1], Err(StoreError::Fenced { run, owner }) if run == "b" && owner.as_deref() == Some("someone-else")),
        "{:?}",
        results[1]
    );
    assert_eq!(store.steps("a").unwrap().len(), 1);
    assert_eq!(store.steps("c").unwrap().len(), 1);
    assert!(store.steps("b").unwrap().is_empty());
}

/// Many runs whose steps await, on a multi-thread runtime: their commits queue behind each
/// other and go through group commits; every run finishes with its own outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_commit_through_groups_without_mixing_results() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let step = || {
        step_fn(|_ctx: StepContext, v: Value| async move {
            tokio::task::yield_now().await;
            Ok(json!({ "n": v["n"].as_i64().unwrap() + 1 }))
        })
    };
    let wf = Workflow::new("grouped")
        .step("a", step())
        .then("b", step())
        .commit()
        .unwrap();
    let handles: Vec<_> = (0..300)
        .map(|i| (i, engine.spawn(&wf, json!({ "n": i })).unwrap()))
        .collect();
    for (i, h) in handles {
        let id = h.id().to_string();
        let run = h.wait().await.unwrap();
        assert_eq!(run.output, Some(json!({ "n": i + 2 })));
        let steps = engine.store().steps(&id).unwrap();
        assert_eq!(steps.len(), 2, "{steps:?}");
        let row = engine.store().run(&id).unwrap().unwrap();
        assert_eq!(row.status, RunStatus::Succeeded);
        assert_eq!(row.owner, None);
    }
}
