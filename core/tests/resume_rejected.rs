//! A rejected resume changes nothing: the run's row (status, owner, `updated_at`), its step
//! records and its events are exactly as they were, and a valid resume still works after it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use miyabi::approval::ApprovalGate;
use miyabi::store::RunRecord;
use miyabi::{Engine, EngineError, Node, RunStatus, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

fn review() -> Node {
    (step_fn(|ctx: StepContext, input: Value| async move {
        match ctx.resume_data() {
            Some(d) => Ok(json!({ "input": input, "decision": d })),
            None => ctx.suspend(json!({ "question": "ok?" })),
        }
    }))
    .resume_schema(json!({
        "type": "object",
        "properties": { "approved": { "type": "boolean" } },
        "required": ["approved"]
    }))
}

/// Everything the store holds about a run.
fn snapshot(engine: &Engine, id: &str) -> (RunRecord, String, String, u64) {
    let store = engine.store();
    let row = store.run(id).expect("read").expect("the run exists");
    let steps = format!("{:?}", store.steps(id).expect("steps"));
    let state = format!("{:?}", store.state(id).expect("state"));
    let seq = store.last_seq(id).expect("last seq");
    (row, steps, state, seq)
}

fn assert_unchanged(
    before: &(RunRecord, String, String, u64),
    after: &(RunRecord, String, String, u64),
) {
    assert_eq!(after.0.status, RunStatus::Suspended);
    assert_eq!(after.0.updated_at, before.0.updated_at, "updated_at moved");
    assert_eq!(after.0.owner, before.0.owner, "owner changed");
    assert_eq!(after.0.lease_until, before.0.lease_until, "lease changed");
    assert_eq!(after.1, before.1, "step records changed");
    assert_eq!(after.2, before.2, "run state changed");
    assert_eq!(after.3, before.3, "events were added");
}

#[tokio::test]
async fn rejected_resumes_change_no_row() {
    let gate = ApprovalGate::new().title("approve");
    let wf = Workflow::new("rejected-resume")
        .step("review", review())
        .parallel([("gate", Node::from(gate)), ("other", review())])
        .commit()
        .expect("commit");
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = miyabi::clock::ManualClock::starting_now();
    let engine = Engine::builder()
        .store(miyabi::SqliteStore::open(dir.path().join("runs.db")).expect("store"))
        .clock(clock.clone())
        .build();
    let run = engine.start(&wf, json!(1)).await.expect("start");
    assert_eq!(run.status, RunStatus::Suspended);
    let before = snapshot(&engine, &run.id);
    // Let the clock move, so a write would show in `updated_at`.
    clock.advance(std::time::Duration::from_secs(1));

    // A path that is not suspended.
    let e = engine
        .resume(&run.id, "nope", json!({ "approved": true }))
        .await;
    assert!(matches!(e, Err(EngineError::NotSuspended { .. })), "{e:?}");
    assert_unchanged(&before, &snapshot(&engine, &run.id));

    // Resume data that violates the step's resume schema.
    let e = engine
        .resume(&run.id, "review", json!({ "approved": "yes" }))
        .await;
    let msg = format!("{}", e.as_ref().expect_err("schema violation"));
    assert!(msg.contains("review") && msg.contains("approved"), "{msg}");
    assert_unchanged(&before, &snapshot(&engine, &run.id));

    // The same through spawn_resume, which must refuse before it returns.
    assert!(engine.spawn_resume(&run.id, "review", json!(7)).is_err());
    assert_unchanged(&before, &snapshot(&engine, &run.id));

    // A valid resume still works, and then the gate may not be resumed directly.
    let run = engine
        .resume(&run.id, "review", json!({ "approved": true }))
        .await
        .expect("resume");
    assert_eq!(run.status, RunStatus::Suspended);
    let mut paths: Vec<_> = run.suspended.iter().map(|s| s.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["gate", "other"]);
    let before = snapshot(&engine, &run.id);
    clock.advance(std::time::Duration::from_secs(1));
    let e = engine
        .resume(&run.id, "gate", json!({ "approved": true }))
        .await;
    let msg = format!(
        "{}",
        e.as_ref().expect_err("a gate is decided, not resumed")
    );
    assert!(msg.contains("approvals"), "{msg}");
    assert_unchanged(&before, &snapshot(&engine, &run.id));

    let run = engine
        .resume(&run.id, "other", json!({ "approved": false }))
        .await
        .expect("resume other");
    assert_eq!(run.status, RunStatus::Suspended);
    assert_eq!(run.suspended.len(), 1);
    assert_eq!(run.suspended[0].path, "gate");
}

#[tokio::test]
async fn a_payload_may_name_the_schema_of_its_resume_data() {
    // One step names a schema in its payload; another names one that does not compile.
    let asks = |schema: Value| {
        step_fn(move |ctx: StepContext, _input: Value| {
            let schema = schema.clone();
            async move {
                match ctx.resume_data() {
                    Some(d) => Ok(d.clone()),
                    None => ctx.suspend(json!({ "question": "day?", "resume_schema": schema })),
                }
            }
        })
    };
    let wf = Workflow::new("payload-schema")
        .parallel([
            (
                "day",
                asks(json!({
                    "type": "object",
                    "properties": { "day": { "enum": ["fri", "sat"] } },
                    "required": ["day"]
                })),
            ),
            ("broken", asks(json!({ "type": "no-such-type" }))),
        ])
        .commit()
        .expect("commit");
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::sqlite(dir.path().join("runs.db")).expect("engine");
    let run = engine.start(&wf, json!(null)).await.expect("start");
    assert_eq!(run.status, RunStatus::Suspended);
    let before = snapshot(&engine, &run.id);

    let e = engine
        .resume(&run.id, "day", json!({ "day": "sun" }))
        .await
        .expect_err("refused");
    match &e {
        EngineError::Schema(v) => {
            assert_eq!(v.place, "step `day`");
            assert_eq!(v.pointer, "/day");
        }
        other => panic!("expected a schema violation, got {other}"),
    }
    assert_unchanged(&before, &snapshot(&engine, &run.id));

    // A schema that does not compile checks nothing.
    let run = engine
        .resume(&run.id, "broken", json!(42))
        .await
        .expect("resume broken");
    assert_eq!(run.suspended.len(), 1);
    let run = engine
        .resume(&run.id, "day", json!({ "day": "sat" }))
        .await
        .expect("resume day");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
}
