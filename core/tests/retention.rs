//! Retention: finished runs are deleted by age or beyond a count per workflow, with their
//! records, events, state and gates; running and suspended runs never are, and still resume.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use miyabi::approval::{ApprovalGate, Approver, AuditFilter, Decision};
use miyabi::store::Store;
use miyabi::{
    Engine, MemoryStore, Retention, RunFilter, RunStatus, SqliteStore, StepContext, Workflow,
    step_fn,
};
use serde_json::{Value, json};

fn done() -> Workflow {
    Workflow::new("done").step(
        "work",
        step_fn(|_ctx: StepContext, v: Value| async move { Ok(json!({ "seen": v })) }),
    )
}

fn waits() -> Workflow {
    Workflow::new("waits").step(
        "review",
        step_fn(|ctx: StepContext, v: Value| async move {
            match ctx.resume_data() {
                Some(d) => Ok(json!({ "input": v, "decision": d })),
                None => ctx.suspend(json!({ "question": "ok?" })),
            }
        }),
    )
}

fn ids(engine: &Engine, workflow: &str, status: Option<RunStatus>) -> Vec<String> {
    engine
        .store()
        .list_runs(&RunFilter {
            workflow: Some(workflow.into()),
            status,
            ..RunFilter::default()
        })
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect()
}

async fn rules_hold(store: Arc<dyn Store>) {
    let engine = Engine::builder().store_arc(Arc::clone(&store)).build();
    let done = done().commit().expect("commit");
    let waits = waits().commit().expect("commit");
    let mut finished = Vec::new();
    for i in 0..5 {
        finished.push(engine.start(&done, json!(i)).await.expect("start").id);
    }
    let mut suspended = Vec::new();
    for i in 0..3 {
        let run = engine.start(&waits, json!(i)).await.expect("start");
        assert_eq!(run.status, RunStatus::Suspended);
        suspended.push(run.id);
    }
    // One of `waits` finishes.
    let run = engine
        .resume(&suspended[0], "review", json!("yes"))
        .await
        .expect("resume");
    assert_eq!(run.status, RunStatus::Succeeded);
    let waits_done = suspended.remove(0);

    // Keep the 2 newest finished runs of every workflow.
    let deleted = engine
        .prune(&Retention::default().keep_last(2))
        .expect("prune");
    assert_eq!(deleted, 3);
    let mut kept = ids(&engine, "done", None);
    kept.sort();
    assert_eq!(kept, finished[3..]);
    for id in &finished[..3] {
        assert!(store.run(id).expect("read").is_none(), "{id} deleted");
        assert!(store.steps(id).expect("steps").is_empty());
        assert!(store.events(id, 1, 100).expect("events").is_empty());
        assert!(store.state(id).expect("state").is_empty());
    }
    // `waits` has one finished run (kept: under the count) and two suspended ones.
    assert_eq!(ids(&engine, "waits", None).len(), 3);

    // By age: nothing ended before now; everything finished ended before an hour from now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let old = Retention::older_than(Duration::from_secs(3600));
    assert_eq!(store.prune(&old, now).expect("prune"), 0);
    // Only one workflow's runs when the rule names it.
    let only_waits = Retention::older_than(Duration::from_secs(3600)).workflow("waits");
    assert_eq!(store.prune(&only_waits, now + 7_200_000).expect("prune"), 1);
    assert!(store.run(&waits_done).expect("read").is_none());
    assert_eq!(ids(&engine, "done", None).len(), 2);
    assert_eq!(store.prune(&old, now + 7_200_000).expect("prune"), 2);
    assert!(ids(&engine, "done", None).is_empty());

    // Suspended runs survived every pass, of any age, and still resume.
    assert_eq!(
        ids(&engine, "waits", Some(RunStatus::Suspended)),
        suspended.iter().rev().cloned().collect::<Vec<_>>()
    );
    let far = Retention::older_than(Duration::ZERO).keep_last(0);
    assert_eq!(store.prune(&far, i64::MAX).expect("prune"), 0);
    for id in &suspended {
        let run = engine
            .resume(id, "review", json!("later"))
            .await
            .expect("resume");
        assert_eq!(run.status, RunStatus::Succeeded);
        assert_eq!(
            run.output.as_ref().map(|o| &o["decision"]),
            Some(&json!("later"))
        );
    }
    assert_eq!(store.prune(&far, i64::MAX).expect("prune"), 2);
    assert!(ids(&engine, "waits", None).is_empty());
}

#[tokio::test]
async fn retention_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        SqliteStore::open(dir.path().join("runs.db").to_str().expect("utf-8 path")).expect("open");
    rules_hold(Arc::new(store)).await;
}

#[tokio::test]
async fn retention_in_memory() {
    rules_hold(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn a_pruned_runs_gate_goes_and_its_audit_trail_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::sqlite(dir.path().join("runs.db")).expect("engine");
    let wf = Workflow::new("gated")
        .step(
            "gate",
            ApprovalGate::new().title("ship?").approvers(["alice"]),
        )
        .commit()
        .expect("commit");
    let run = engine.start(&wf, json!(1)).await.expect("start");
    assert_eq!(run.status, RunStatus::Suspended);
    let approvals = engine.approvals();
    // A pending gate's run is suspended: never pruned.
    let all = Retention::older_than(Duration::ZERO).keep_last(0);
    assert_eq!(engine.store().prune(&all, i64::MAX).expect("prune"), 0);
    approvals
        .decide(
            &run.id,
            "gate",
            &Approver::new("alice"),
            Decision::approve(),
        )
        .await
        .expect("decide");
    let finished = engine.wait(&run.id).await.expect("wait");
    assert_eq!(finished.status, RunStatus::Succeeded);
    assert_eq!(engine.store().prune(&all, i64::MAX).expect("prune"), 1);
    assert!(
        approvals.get(&run.id, "gate").is_err(),
        "the gate row is gone"
    );
    let trail = approvals
        .audit(&AuditFilter {
            run_id: Some(run.id.clone()),
            ..AuditFilter::default()
        })
        .expect("audit");
    assert!(trail.iter().any(|r| r.action == "approved"), "{trail:?}");
}

#[tokio::test]
async fn the_engine_option_prunes_in_the_background() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::builder()
        .store(
            SqliteStore::open(dir.path().join("runs.db").to_str().expect("utf-8 path"))
                .expect("open"),
        )
        .retention(Retention::default().keep_last(1))
        .retention_interval(Duration::from_millis(5))
        .worker_interval(Duration::from_millis(5))
        .build();
    let wf = done().commit().expect("commit");
    let waits = waits().commit().expect("commit");
    let parked = engine.start(&waits, json!(0)).await.expect("start").id;
    let mut last = String::new();
    for i in 0..4 {
        last = engine.start(&wf, json!(i)).await.expect("start").id;
    }
    // Wait (bounded) for the worker's pass to leave only the newest finished run.
    let mut left = ids(&engine, "done", None);
    for _ in 0..2000 {
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        left = ids(&engine, "done", None);
    }
    assert_eq!(left, [last]);
    assert_eq!(ids(&engine, "waits", Some(RunStatus::Suspended)), [parked]);
}
