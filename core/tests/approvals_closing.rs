//! Gates that close with their run, deadlines checked with the decision, notification links
//! filtered, and database files readable by their owner only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use miyabi::approval::{
    ApprovalGate, ApprovalStatus, Approver, AuditFilter, Decision, OnTimeout, webhook,
};
use miyabi::clock::ManualClock;
use miyabi::{CommittedWorkflow, Engine, RunStatus, SqliteStore, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

mod notify_support;
use notify_support::{Receiver, reply};

fn gated(gate: ApprovalGate) -> CommittedWorkflow {
    Workflow::new("gated")
        .step(
            "prepare",
            step_fn(|_c: StepContext, v: Value| async move { Ok(v) }),
        )
        .await_approval("review", gate)
        .commit()
        .unwrap()
}

fn engine_at(dir: &tempfile::TempDir, clock: Option<ManualClock>) -> Engine {
    let mut b = Engine::builder()
        .store(SqliteStore::open(dir.path().join("runs.db")).unwrap())
        // Only the passes the tests make.
        .worker_interval(Duration::from_secs(3600))
        .public_url("https://miyabi.example");
    if let Some(c) = clock {
        b = b.clock(c);
    }
    b.build()
}

#[tokio::test]
async fn a_cancelled_run_closes_its_gates_and_notifies_closed() {
    let hook = Receiver::start(vec![reply(200, "ok")]).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(&dir, None);
    let wf = gated(
        ApprovalGate::new()
            .title("Ship?")
            .approvers(["alice"])
            .notify(webhook(format!("{}/hook", hook.base), "s3cret")),
    );
    let run = engine.start(&wf, json!(1)).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    let alice = Approver::new("alice");
    assert_eq!(engine.approvals().inbox(&alice).unwrap().len(), 1);
    engine.cancel(&run.id).await.unwrap();
    // Before any worker pass: the inbox is empty, and a decision is refused naming why.
    assert!(engine.approvals().inbox(&alice).unwrap().is_empty());
    let err = engine
        .approvals()
        .decide(&run.id, "review", &alice, Decision::approve())
        .await
        .unwrap_err();
    assert_eq!(err.code(), miyabi::ErrorCode::Conflict);
    assert!(err.to_string().contains("closed"), "{err}");
    let gate = engine.approvals().get(&run.id, "review").unwrap();
    assert_eq!(gate.status, ApprovalStatus::Closed);
    assert!(gate.output.is_none());
    let trail = engine
        .approvals()
        .audit(&AuditFilter {
            run_id: Some(run.id.clone()),
            ..AuditFilter::default()
        })
        .unwrap();
    let closed = trail.iter().find(|r| r.action == "closed").unwrap();
    assert_eq!(closed.comment.as_deref(), Some("the run is cancelled"));
    assert!(!trail.iter().any(|r| r.action == "approved"));
    // The notifier sends `requested`, then `closed` (not a decision); the worker, woken by
    // each change, sends them.
    hook.wait_for(2).await;
    let kinds: Vec<String> = hook
        .requests()
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            v["type"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(kinds, ["approval.requested", "approval.closed"]);
    let last: Value = serde_json::from_slice(&hook.requests()[1].body).unwrap();
    assert_eq!(last["notice"]["event"]["kind"], "closed");
}

#[tokio::test]
async fn the_worker_closes_gates_of_runs_that_ended_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(&dir, None);
    let wf = gated(ApprovalGate::new().approvers(["alice"]));
    let a = engine.start(&wf, json!(1)).await.unwrap();
    let b = engine.start(&wf, json!(2)).await.unwrap();
    engine.cancel(&a.id).await.unwrap();
    let report = engine.approvals().tick().await.unwrap();
    assert_eq!(report.closed, 1);
    assert_eq!(
        engine.approvals().get(&a.id, "review").unwrap().status,
        ApprovalStatus::Closed
    );
    assert_eq!(
        engine.approvals().get(&b.id, "review").unwrap().status,
        ApprovalStatus::Pending
    );
    assert_eq!(engine.approvals().tick().await.unwrap().closed, 0);
}

#[tokio::test]
async fn a_decision_after_the_deadline_is_refused_before_the_worker_runs() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_now();
    let engine = engine_at(&dir, Some(clock.clone()));
    let wf = gated(
        ApprovalGate::new()
            .approvers(["alice"])
            .deadline(Duration::from_secs(3600))
            .on_timeout(OnTimeout::Reject),
    );
    let run = engine.start(&wf, json!(1)).await.unwrap();
    clock.advance(Duration::from_secs(3601));
    // No tick: the deadline is checked with the decision.
    let err = engine
        .approvals()
        .decide(
            &run.id,
            "review",
            &Approver::new("alice"),
            Decision::approve(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), miyabi::ErrorCode::Conflict);
    assert!(err.to_string().contains("deadline passed"), "{err}");
    let gate = engine.approvals().get(&run.id, "review").unwrap();
    assert_eq!(gate.status, ApprovalStatus::Rejected);
    assert!(gate.votes.iter().all(|v| v.by != "alice"));
    let done = engine.wait(&run.id).await.unwrap();
    assert_eq!(done.output.unwrap()["timed_out"], json!(true));
}

#[tokio::test]
async fn the_store_refuses_a_decision_past_the_deadline_in_the_same_transaction() {
    use miyabi::approval::{DecisionAction, GateUpdate, Vote};
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_now();
    let engine = engine_at(&dir, Some(clock.clone()));
    let wf = gated(
        ApprovalGate::new()
            .approvers(["alice"])
            .deadline(Duration::from_secs(60)),
    );
    let run = engine.start(&wf, json!(1)).await.unwrap();
    let a = engine.approvals().get(&run.id, "review").unwrap();
    let deadline = a.deadline_at.unwrap();
    let mut next = a.clone();
    next.version += 1;
    next.deliveries.clear();
    next.votes.push(Vote {
        by: "alice".into(),
        action: DecisionAction::Approve,
        comment: None,
        edited: false,
        entries: vec!["alice".into()],
        at: deadline,
    });
    let update = |t: i64| GateUpdate {
        expected_version: a.version,
        approval: next.clone(),
        audit: Vec::new(),
        deliveries: Vec::new(),
        before_deadline: Some(t),
    };
    // Both stores: at the deadline, refused; a moment before, applied.
    let gates = engine.store().gates().unwrap();
    assert!(!gates.update_gate(&update(deadline)).unwrap());
    assert!(gates.update_gate(&update(deadline - 1)).unwrap());
    let mem = miyabi::MemoryStore::new();
    let mem_engine = Engine::builder().store(mem).build();
    let run = mem_engine.start(&wf, json!(1)).await.unwrap();
    let a = mem_engine.approvals().get(&run.id, "review").unwrap();
    let mut next = a.clone();
    next.version += 1;
    let d = a.deadline_at.unwrap();
    let g = mem_engine.store().gates().unwrap();
    let up = |t: i64| GateUpdate {
        expected_version: a.version,
        approval: next.clone(),
        audit: Vec::new(),
        deliveries: Vec::new(),
        before_deadline: Some(t),
    };
    assert!(!g.update_gate(&up(d)).unwrap());
    assert!(g.update_gate(&up(d - 1)).unwrap());
}

#[tokio::test]
async fn notification_links_are_http_only() {
    let hook = Receiver::start(vec![reply(200, "ok")]).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(&dir, None);
    let wf = gated(
        ApprovalGate::new()
            .approvers(["alice"])
            .link("CI", "https://ci.example/1")
            .link("evil", "javascript:alert(document.cookie)")
            .link("data", "data:text/html,<script>alert(1)</script>")
            .link("relative", "/somewhere")
            .notify(webhook(format!("{}/hook", hook.base), "s3cret")),
    );
    engine.start(&wf, json!(1)).await.unwrap();
    hook.wait_for(1).await;
    let body: Value = serde_json::from_slice(&hook.requests()[0].body).unwrap();
    assert_eq!(
        body["notice"]["links"],
        json!([{ "label": "CI", "url": "https://ci.example/1" }])
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_and_its_wal_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let engine = Engine::sqlite(&path).unwrap();
    let wf = gated(ApprovalGate::new().approvers(["alice"]));
    engine
        .start(&wf, json!({ "secret": "input" }))
        .await
        .unwrap();
    for name in ["runs.db", "runs.db-wal", "runs.db-shm"] {
        let p = dir.path().join(name);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}: {mode:o}");
    }
}

#[tokio::test]
async fn a_failed_run_whose_gates_were_closed_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(&dir, None);
    let wf = Workflow::new("release")
        .parallel([
            (
                "review",
                miyabi::Node::step(ApprovalGate::new().approvers(["alice"])),
            ),
            (
                "check",
                step_fn(|_c: StepContext, _v: Value| async move {
                    Err::<Value, _>(miyabi::StepError::fatal("lint failed"))
                }),
            ),
        ])
        .commit()
        .unwrap();
    engine.register(&wf);
    let run = engine.start(&wf, json!(1)).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    engine.approvals().tick().await.unwrap();
    assert_eq!(
        engine.approvals().get(&run.id, "review").unwrap().status,
        ApprovalStatus::Closed
    );
    let last = engine.store().last_seq(&run.id).unwrap();
    match engine.retry(&run.id).await {
        Err(err @ miyabi::EngineError::GatesClosed { .. }) => {
            assert_eq!(err.code(), miyabi::ErrorCode::Conflict);
            let msg = err.to_string();
            assert!(msg.contains("review") && msg.contains("rerun"), "{msg}");
        }
        other => panic!("expected GatesClosed, got {other:?}"),
    }
    // Nothing written: still failed, released, same log.
    let stored = engine.store().run(&run.id).unwrap().unwrap();
    assert_eq!((stored.status, stored.owner), (RunStatus::Failed, None));
    assert_eq!(engine.store().last_seq(&run.id).unwrap(), last);
}
