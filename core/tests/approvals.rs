//! Approval gates through the public API: policies, edits, deadlines, races, audit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use miyabi::approval::{
    ApprovalError, ApprovalFilter, ApprovalGate, ApprovalStatus, Approver, AuditFilter, Decision,
    Escalate, OnTimeout, Policy, Quorum,
};
use miyabi::clock::ManualClock;
use miyabi::{
    CommittedWorkflow, Engine, EngineError, RunStatus, SqliteStore, StepContext, Workflow, step_fn,
};
use serde_json::{Value, json};

fn counter_step(n: Arc<AtomicUsize>) -> miyabi::Node {
    step_fn(move |_ctx: StepContext, v: Value| {
        let n = Arc::clone(&n);
        async move {
            n.fetch_add(1, Ordering::SeqCst);
            Ok(v)
        }
    })
}

fn codegen() -> miyabi::Node {
    step_fn(|_ctx: StepContext, v: Value| async move {
        Ok(
            json!({ "patch": format!("fix for {}", v["issue"].as_str().unwrap_or("?")), "files": 2 }),
        )
    })
}

fn deploy() -> miyabi::Node {
    step_fn(|_ctx: StepContext, v: Value| async move {
        Ok(json!({ "deployed": v["approved"], "patch": v["data"]["patch"] }))
    })
}

fn ship(gate: ApprovalGate) -> CommittedWorkflow {
    Workflow::new("ship")
        .step("generate-code", codegen())
        .await_approval("code-review", gate)
        .then("deploy", deploy())
        .commit()
        .unwrap()
}

fn sqlite_engine(dir: &tempfile::TempDir) -> Engine {
    Engine::builder()
        .store(SqliteStore::open(dir.path().join("runs.db")).unwrap())
        .worker_interval(Duration::from_millis(20))
        .build()
}

#[tokio::test]
async fn approve_continues_the_run_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let engine = sqlite_engine(&dir);
    let wf = ship(
        ApprovalGate::new()
            .title("Review the patch")
            .summary_from(|v| format!("{} files changed", v["files"]))
            .link("CI", "https://ci.example/123")
            .approvers(["alice"]),
    );
    let run = engine.start(&wf, json!({"issue": "#715"})).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    assert_eq!(run.suspended[0].path, "code-review");
    assert_eq!(run.suspended[0].payload["type"], "approval");

    let approvals = engine.approvals();
    let alice = Approver::new("alice");
    let inbox = approvals.inbox(&alice).unwrap();
    assert_eq!(inbox.len(), 1);
    let gate = &inbox[0];
    assert_eq!(gate.title, "Review the patch");
    assert_eq!(gate.summary, "2 files changed");
    assert_eq!(gate.data["patch"], "fix for #715");
    assert_eq!(gate.links[0].url, "https://ci.example/123");
    assert_eq!(gate.status, ApprovalStatus::Pending);
    assert!(
        approvals
            .inbox(&Approver::new("mallory"))
            .unwrap()
            .is_empty()
    );

    let decided = approvals
        .decide(
            &run.id,
            "code-review",
            &alice,
            Decision::approve().comment("lgtm"),
        )
        .await
        .unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    let done = engine.wait(&run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(
        done.output,
        Some(json!({"deployed": true, "patch": "fix for #715"}))
    );
    assert!(approvals.inbox(&alice).unwrap().is_empty());
    assert!(approvals.get(&run.id, "code-review").unwrap().delivered);

    let trail = approvals
        .audit(&AuditFilter {
            run_id: Some(run.id.clone()),
            ..AuditFilter::default()
        })
        .unwrap();
    let actions: Vec<&str> = trail.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["requested", "approved", "decided"]);
    assert_eq!(trail[1].actor, "alice");
    assert_eq!(trail[1].comment.as_deref(), Some("lgtm"));
    let by_alice = approvals
        .audit(&AuditFilter {
            actor: Some("alice".into()),
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(by_alice.len(), 1);

    // Deciding again is a conflict; resuming the gate directly is refused.
    let again = approvals
        .decide(&run.id, "code-review", &alice, Decision::approve())
        .await;
    assert!(
        matches!(again, Err(ApprovalError::Conflict { .. })),
        "{again:?}"
    );
    assert_eq!(again.unwrap_err().code(), miyabi::ErrorCode::Conflict);
}

#[tokio::test]
async fn a_gate_cannot_be_resumed_around_the_approvals_api() {
    let engine = Engine::in_memory();
    let wf = ship(ApprovalGate::new().approvers(["alice"]));
    let run = engine.start(&wf, json!({"issue": "#1"})).await.unwrap();
    let err = engine
        .resume(&run.id, "code-review", json!({"approved": true}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::GateNeedsDecision { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("approvals"), "{err}");
    // The run is still suspended and decidable.
    let run2 = engine.get(&run.id).await.unwrap().unwrap();
    assert_eq!(run2.status, RunStatus::Suspended);
    engine
        .approvals()
        .decide(
            &run.id,
            "code-review",
            &Approver::new("alice"),
            Decision::reject(),
        )
        .await
        .unwrap();
    let done = engine.wait(&run.id).await.unwrap();
    assert_eq!(done.output.unwrap()["deployed"], json!(false));
}

#[tokio::test]
async fn edit_and_approve_is_validated_and_recorded_as_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let engine = sqlite_engine(&dir);
    let wf = ship(ApprovalGate::new().approvers(["alice"]).schema(json!({
        "type": "object",
        "required": ["patch", "files"],
        "properties": {"patch": {"type": "string"}, "files": {"type": "integer"}}
    })));
    let run = engine.start(&wf, json!({"issue": "#9"})).await.unwrap();
    let approvals = engine.approvals();
    let alice = Approver::new("alice");

    let bad = approvals
        .decide(
            &run.id,
            "code-review",
            &alice,
            Decision::edit_and_approve(json!({"patch": 42, "files": 2})),
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code(), miyabi::ErrorCode::Validation);
    match &bad {
        ApprovalError::Invalid(v) => {
            assert_eq!(v.pointer, "/patch");
            assert!(v.place.contains("code-review"), "{bad}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing was recorded by the rejected edit.
    let gate = approvals.get(&run.id, "code-review").unwrap();
    assert!(gate.votes.is_empty());

    let reject_with_data = approvals
        .decide(
            &run.id,
            "code-review",
            &alice,
            Decision {
                action: miyabi::approval::DecisionAction::Reject,
                data: Some(json!({})),
                comment: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(reject_with_data.code(), miyabi::ErrorCode::Validation);

    approvals
        .decide(
            &run.id,
            "code-review",
            &alice,
            Decision::edit_and_approve(json!({"patch": "better fix", "files": 2}))
                .comment("tightened it"),
        )
        .await
        .unwrap();
    let done = engine.wait(&run.id).await.unwrap();
    assert_eq!(
        done.output,
        Some(json!({"deployed": true, "patch": "better fix"}))
    );
    let trail = approvals
        .audit(&AuditFilter {
            run_id: Some(run.id.clone()),
            gate: Some("code-review".into()),
            ..AuditFilter::default()
        })
        .unwrap();
    let edit = trail
        .iter()
        .find(|r| r.action == "edited-and-approved")
        .unwrap();
    assert_eq!(
        edit.diff,
        Some(json!([{"op": "replace", "path": "/patch", "value": "better fix"}]))
    );
}

#[tokio::test]
async fn quorum_and_all_policies_with_teams() {
    let engine = Engine::in_memory();
    let quorum = ship(
        ApprovalGate::new()
            .approvers(["alice", "team:leads"])
            .policy(Quorum(2)),
    );
    let run = engine.start(&quorum, json!({"issue": "#2"})).await.unwrap();
    let ap = engine.approvals();
    let alice = Approver::new("alice");
    let bob = Approver::new("bob").teams(["leads"]);
    let eve = Approver::new("eve").teams(["interns"]);
    let forbidden = ap
        .decide(&run.id, "code-review", &eve, Decision::approve())
        .await
        .unwrap_err();
    assert_eq!(forbidden.code(), miyabi::ErrorCode::Forbidden);
    assert!(forbidden.to_string().contains("team:leads"), "{forbidden}");

    let one = ap
        .decide(&run.id, "code-review", &alice, Decision::approve())
        .await
        .unwrap();
    assert_eq!(one.status, ApprovalStatus::Pending);
    let twice = ap
        .decide(&run.id, "code-review", &alice, Decision::approve())
        .await
        .unwrap_err();
    assert_eq!(twice.code(), miyabi::ErrorCode::Conflict);
    assert_eq!(ap.inbox(&bob).unwrap().len(), 1);
    assert!(ap.inbox(&alice).unwrap().is_empty(), "alice already voted");
    let two = ap
        .decide(&run.id, "code-review", &bob, Decision::approve())
        .await
        .unwrap();
    assert_eq!(two.status, ApprovalStatus::Approved);
    let out = two.output.unwrap();
    assert_eq!(out["decided_by"], json!(["alice", "bob"]));
    assert_eq!(
        engine.wait(&run.id).await.unwrap().status,
        RunStatus::Succeeded
    );

    // All: each entry must approve (a team by one member).
    let all = Workflow::new("all")
        .await_approval(
            "gate",
            ApprovalGate::new()
                .approvers(["alice", "team:leads"])
                .policy(Policy::All),
        )
        .commit()
        .unwrap();
    let run = engine.start(&all, json!(1)).await.unwrap();
    let carol = Approver::new("carol").teams(["leads"]);
    let a = ap
        .decide(&run.id, "gate", &carol, Decision::approve())
        .await
        .unwrap();
    assert_eq!(a.status, ApprovalStatus::Pending);
    let a = ap
        .decide(&run.id, "gate", &alice, Decision::approve())
        .await
        .unwrap();
    assert_eq!(a.status, ApprovalStatus::Approved);

    // A rejection is a veto under every policy.
    let run = engine.start(&all, json!(2)).await.unwrap();
    let r = ap
        .decide(
            &run.id,
            "gate",
            &carol,
            Decision::reject().comment("not now"),
        )
        .await
        .unwrap();
    assert_eq!(r.status, ApprovalStatus::Rejected);
    let done = engine.wait(&run.id).await.unwrap();
    assert_eq!(done.output.unwrap()["comment"], "not now");
}

#[tokio::test]
async fn deadline_rejects_and_escalates() {
    // A week-long deadline, on a clock the test moves: nothing sleeps.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_now();
    let engine = Engine::builder()
        .store(SqliteStore::open(dir.path().join("runs.db")).unwrap())
        .clock(clock.clone())
        // Only the passes this test makes.
        .worker_interval(Duration::from_secs(3600))
        .build();
    let week = Duration::from_secs(7 * 86_400);
    let wf = ship(
        ApprovalGate::new()
            .approvers(["alice"])
            .deadline(week)
            .on_timeout(OnTimeout::Reject),
    );
    let run = engine.start(&wf, json!({"issue": "#3"})).await.unwrap();
    clock.advance(week - Duration::from_secs(1));
    assert_eq!(engine.approvals().tick().await.unwrap().expired, 0);
    assert_eq!(
        engine.get(&run.id).await.unwrap().unwrap().status,
        RunStatus::Suspended
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(engine.approvals().tick().await.unwrap().expired, 1);
    let done = engine.wait(&run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.output.unwrap()["deployed"], json!(false));
    let gate = engine.approvals().get(&run.id, "code-review").unwrap();
    assert_eq!(gate.status, ApprovalStatus::Rejected);
    assert_eq!(gate.output.unwrap()["timed_out"], json!(true));
    let late = engine
        .approvals()
        .decide(
            &run.id,
            "code-review",
            &Approver::new("alice"),
            Decision::approve(),
        )
        .await
        .unwrap_err();
    assert_eq!(late.code(), miyabi::ErrorCode::Conflict);

    let esc = Workflow::new("esc")
        .await_approval(
            "gate",
            ApprovalGate::new()
                .approvers(["alice"])
                .deadline(Duration::from_secs(3 * 86_400))
                .on_timeout(Escalate(["cto"])),
        )
        .commit()
        .unwrap();
    let run = engine.start(&esc, json!("x")).await.unwrap();
    let cto = Approver::new("cto");
    assert!(engine.approvals().inbox(&cto).unwrap().is_empty());
    clock.advance(Duration::from_secs(3 * 86_400 + 1));
    assert_eq!(engine.approvals().tick().await.unwrap().expired, 1);
    assert_eq!(engine.approvals().inbox(&cto).unwrap().len(), 1);
    let gate = engine.approvals().get(&run.id, "gate").unwrap();
    assert!(gate.escalated);
    assert_eq!(gate.approvers, ["alice", "cto"]);
    assert_eq!(gate.status, ApprovalStatus::Pending);
    engine
        .approvals()
        .decide(&run.id, "gate", &cto, Decision::approve())
        .await
        .unwrap();
    let done = engine.wait(&run.id).await.unwrap();
    assert_eq!(done.output.unwrap()["decided_by"], json!(["cto"]));
    let trail = engine
        .approvals()
        .audit(&AuditFilter {
            run_id: Some(run.id.clone()),
            ..AuditFilter::default()
        })
        .unwrap();
    assert!(trail.iter().any(|r| r.action == "escalated"));
}

async fn wait_status(engine: &Engine, run: &str, status: RunStatus) -> miyabi::Run {
    for _ in 0..1000 {
        let r = engine.get(run).await.unwrap().unwrap();
        if r.status == status {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run} never reached {status:?}");
}

#[tokio::test]
async fn a_deadline_that_passed_while_no_process_ran_fires_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let wf = ship(
        ApprovalGate::new()
            .approvers(["alice"])
            .deadline(Duration::from_millis(100))
            .on_timeout(OnTimeout::Approve),
    );
    let clock = ManualClock::starting_now();
    let run_id = {
        let engine = Engine::builder()
            .store(SqliteStore::open(dir.path().join("runs.db")).unwrap())
            .clock(clock.clone())
            // This engine's worker would fire it itself: make it sleep through the deadline.
            .worker_interval(Duration::from_secs(3600))
            .build();
        let run = engine.start(&wf, json!({"issue": "#4"})).await.unwrap();
        run.id
    };
    // No process runs while the deadline passes.
    clock.advance(Duration::from_millis(150));
    let engine = Engine::builder()
        .store(SqliteStore::open(dir.path().join("runs.db")).unwrap())
        .clock(clock.clone())
        .worker_interval(Duration::from_millis(20))
        .build();
    engine.register(&wf);
    let report = engine.approvals().tick().await.unwrap();
    assert_eq!(report.expired, 1);
    let done = wait_status(&engine, &run_id, RunStatus::Succeeded).await;
    assert_eq!(
        done.output,
        Some(json!({"deployed": true, "patch": "fix for #4"}))
    );
}

#[tokio::test]
async fn a_decision_recorded_where_the_workflow_is_unknown_is_delivered_by_an_engine_that_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let wf = ship(ApprovalGate::new().approvers(["alice"]));
    let app = sqlite_engine(&dir);
    let run = app.start(&wf, json!({"issue": "#5"})).await.unwrap();
    drop(app);

    // Like the CLI: an engine on the same file without the workflow's code.
    let cli = sqlite_engine(&dir);
    let gate = cli
        .approvals()
        .decide(
            &run.id,
            "code-review",
            &Approver::new("alice"),
            Decision::approve(),
        )
        .await
        .unwrap();
    assert_eq!(gate.status, ApprovalStatus::Approved);
    assert!(!gate.delivered);
    assert_eq!(
        cli.get(&run.id).await.unwrap().unwrap().status,
        RunStatus::Suspended
    );
    let undelivered = cli
        .approvals()
        .list(&ApprovalFilter {
            undelivered: true,
            ..ApprovalFilter::default()
        })
        .unwrap();
    assert_eq!(undelivered.len(), 1);

    // The application comes back: its worker hands the decision to the run.
    let app = sqlite_engine(&dir);
    app.register(&wf);
    app.start_worker();
    let done = wait_status(&app, &run.id, RunStatus::Succeeded).await;
    assert_eq!(done.output.unwrap()["deployed"], json!(true));
    assert!(
        app.approvals()
            .get(&run.id, "code-review")
            .unwrap()
            .delivered
    );
}

#[tokio::test]
async fn exactly_one_terminal_decision_under_races() {
    let dir = tempfile::tempdir().unwrap();
    let engine = sqlite_engine(&dir);
    let deploys = Arc::new(AtomicUsize::new(0));
    let wf = Workflow::new("race")
        .await_approval(
            "gate",
            ApprovalGate::new()
                .approvers(["team:ops"])
                .deadline(Duration::from_millis(5))
                .on_timeout(OnTimeout::Reject),
        )
        .then("deploy", counter_step(Arc::clone(&deploys)))
        .commit()
        .unwrap();
    for round in 0..10 {
        let run = engine.start(&wf, json!(round)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(4)).await;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let ap = engine.approvals();
            let id = run.id.clone();
            let who = Approver::new(format!("op{i}")).teams(["ops"]);
            let d = if i % 2 == 0 {
                Decision::approve()
            } else {
                Decision::reject()
            };
            tasks.push(tokio::spawn(async move {
                ap.decide(&id, "gate", &who, d).await
            }));
        }
        let ticker = {
            let ap = engine.approvals();
            tokio::spawn(async move { ap.tick().await })
        };
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(a) if a.status != ApprovalStatus::Pending => wins += 1,
                Ok(_) => {}
                Err(e) => assert_eq!(e.code(), miyabi::ErrorCode::Conflict, "{e}"),
            }
        }
        let ticked = ticker.await.unwrap().unwrap();
        assert!(
            wins + ticked.expired <= 1,
            "round {round}: {wins} + {ticked:?}"
        );
        let done = wait_status(&engine, &run.id, RunStatus::Succeeded).await;
        let gate = engine.approvals().get(&run.id, "gate").unwrap();
        assert_ne!(gate.status, ApprovalStatus::Pending);
        assert_eq!(
            done.output.as_ref().unwrap()["status"],
            gate.status.as_str()
        );
        let decided: Vec<_> = engine
            .approvals()
            .audit(&AuditFilter {
                run_id: Some(run.id.clone()),
                ..AuditFilter::default()
            })
            .unwrap()
            .into_iter()
            .filter(|r| r.action == "decided")
            .collect();
        assert_eq!(decided.len(), 1, "round {round}");
    }
    assert_eq!(deploys.load(Ordering::SeqCst), 10, "one deploy per run");
}

#[tokio::test]
async fn gates_in_parallel_resolve_independently_without_rerunning_siblings() {
    let dir = tempfile::tempdir().unwrap();
    let engine = sqlite_engine(&dir);
    let builds = Arc::new(AtomicUsize::new(0));
    let wf = Workflow::new("release")
        .parallel([
            ("build", counter_step(Arc::clone(&builds))),
            (
                "security",
                miyabi::Node::step(ApprovalGate::new().approvers(["sec"])),
            ),
            (
                "legal",
                miyabi::Node::step(ApprovalGate::new().approvers(["legal"])),
            ),
        ])
        .commit()
        .unwrap();
    let run = engine.start(&wf, json!({"v": 1})).await.unwrap();
    let mut paths: Vec<_> = run.suspended.iter().map(|s| s.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["legal", "security"]);
    let ap = engine.approvals();
    ap.decide(
        &run.id,
        "legal",
        &Approver::new("legal"),
        Decision::approve(),
    )
    .await
    .unwrap();
    let mid = engine.wait(&run.id).await.unwrap();
    assert_eq!(mid.status, RunStatus::Suspended);
    assert_eq!(mid.suspended.len(), 1);
    assert_eq!(mid.suspended[0].path, "security");
    ap.decide(
        &run.id,
        "security",
        &Approver::new("sec"),
        Decision::reject().comment("CVE"),
    )
    .await
    .unwrap();
    let done = engine.wait(&run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let out = done.output.unwrap();
    assert_eq!(out["legal"]["approved"], json!(true));
    assert_eq!(out["security"]["approved"], json!(false));
    assert_eq!(out["build"], json!({"v": 1}));
    assert_eq!(builds.load(Ordering::SeqCst), 1, "the sibling ran once");
}

mod notify_support;

#[tokio::test]
async fn notifications_go_out_from_the_outbox_and_failures_never_fail_the_run() {
    use miyabi::approval::{DeliveryStatus, slack, verify_signature, webhook};
    use notify_support::{Receiver, header, reply};

    let ok = Receiver::start(vec![reply(200, "ok")]).await;
    let broken = Receiver::start(vec![reply(400, "invalid_token")]).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder()
        .store(SqliteStore::open(dir.path().join("runs.db")).unwrap())
        .worker_interval(Duration::from_millis(20))
        .public_url("https://miyabi.example")
        .build();
    let wf = ship(
        ApprovalGate::new()
            .title("Review the patch")
            .summary("two files")
            .approvers(["alice"])
            .notify(webhook(format!("{}/hook", ok.base), "s3cret"))
            .notify(slack(format!("{}/services/T/B/x", broken.base))),
    );
    let run = engine.start(&wf, json!({"issue": "#8"})).await.unwrap();
    ok.wait_for(1).await;
    let first = &ok.requests()[0];
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(body["type"], "approval.requested");
    assert_eq!(body["notice"]["run_id"], json!(run.id));
    assert_eq!(body["notice"]["gate"], "code-review");
    assert_eq!(body["notice"]["title"], "Review the patch");
    assert_eq!(
        body["notice"]["link"],
        json!(format!(
            "https://miyabi.example/#/approvals/{}/code-review",
            run.id
        ))
    );
    let ts = header(&first.headers, "x-miyabi-timestamp").unwrap();
    let sig = header(&first.headers, "x-miyabi-signature").unwrap();
    assert!(verify_signature("s3cret", ts, &first.body, sig));

    engine
        .approvals()
        .decide(
            &run.id,
            "code-review",
            &Approver::new("alice"),
            Decision::approve(),
        )
        .await
        .unwrap();
    assert_eq!(
        engine.wait(&run.id).await.unwrap().status,
        RunStatus::Succeeded
    );
    ok.wait_for(2).await;
    let second: Value = serde_json::from_slice(&ok.requests()[1].body).unwrap();
    assert_eq!(second["type"], "approval.decided");

    // The broken Slack hook failed for good (400 is not retryable): recorded, run unharmed.
    // The worker records each outcome after the receiver answered, so poll the gate until all
    // four are recorded.
    let mut gate = engine.approvals().get(&run.id, "code-review").unwrap();
    for _ in 0..500 {
        let settled = |kind: &str, status: DeliveryStatus| {
            gate.deliveries
                .iter()
                .filter(|d| d.notifier.starts_with(kind))
                .all(|d| d.status == status)
        };
        if settled("slack:", DeliveryStatus::Failed)
            && settled("webhook:", DeliveryStatus::Delivered)
            && gate.deliveries.len() == 4
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        gate = engine.approvals().get(&run.id, "code-review").unwrap();
    }
    let slack_deliveries: Vec<_> = gate
        .deliveries
        .iter()
        .filter(|d| d.notifier.starts_with("slack:"))
        .collect();
    assert_eq!(slack_deliveries.len(), 2, "{:?}", gate.deliveries);
    for d in &slack_deliveries {
        assert_eq!(d.status, DeliveryStatus::Failed);
        let err = d.last_error.as_deref().unwrap();
        assert!(
            err.contains("400") && err.contains("invalid_token"),
            "{err}"
        );
        assert!(!err.contains(&broken.base), "the URL is a secret: {err}");
    }
    assert!(
        gate.deliveries
            .iter()
            .filter(|d| d.notifier.starts_with("webhook:"))
            .all(|d| d.status == DeliveryStatus::Delivered)
    );
    let failed = engine
        .approvals()
        .audit(&AuditFilter {
            run_id: Some(run.id.clone()),
            ..AuditFilter::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "notification-failed")
        .count();
    assert_eq!(failed, 2);
    // Each event went out once per notifier (deduplicated per gate).
    assert_eq!(ok.requests().len(), 2);
}
