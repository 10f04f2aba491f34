//! One error-code table: every error type's `code()` comes from `ErrorCode`, whose strings are
//! unique, round-trip through serde, and map to an HTTP status.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashSet;

use miyabi::approval::{ApprovalGate, Approver, Decision};
use miyabi::{
    Engine, EngineError, ErrorCode, RunStatus, StepContext, Workflow, WorkflowError, step_fn,
};
use serde_json::{Value, json};

#[test]
fn codes_are_unique_screaming_snake_and_round_trip() {
    let mut seen = HashSet::new();
    for c in ErrorCode::ALL {
        let s = c.as_str();
        assert!(seen.insert(s), "duplicate {s}");
        assert!(
            s.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'),
            "{s}"
        );
        assert_eq!(serde_json::to_value(c).unwrap(), json!(s));
        assert_eq!(serde_json::from_value::<ErrorCode>(json!(s)).unwrap(), c);
        assert_eq!(c.to_string(), s);
        assert!((400..600).contains(&c.http_status()), "{s}");
    }
}

#[tokio::test]
async fn engine_approval_and_workflow_errors_carry_their_codes() {
    let engine = Engine::in_memory();
    let unknown = engine.resume("nope", "x", json!(1)).await.unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::NotFound);
    assert_eq!(unknown.code().http_status(), 404);

    let wf = Workflow::new("codes")
        .step(
            "ask",
            step_fn(|ctx: StepContext, v: Value| async move {
                match ctx.resume_data() {
                    Some(_) => Ok(v),
                    None => ctx.suspend(json!({})),
                }
            }),
        )
        .then("gate", ApprovalGate::new().approvers(["alice"]))
        .commit()
        .unwrap();
    let run = engine.start(&wf, json!(1)).await.unwrap();
    let wrong_path = engine.resume(&run.id, "gate", json!(1)).await.unwrap_err();
    assert!(matches!(wrong_path, EngineError::NotSuspended { .. }));
    assert_eq!(wrong_path.code(), ErrorCode::NotSuspended);
    let run = engine.resume(&run.id, "ask", json!(1)).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    let gate = engine.resume(&run.id, "gate", json!(1)).await.unwrap_err();
    assert_eq!(gate.code(), ErrorCode::Conflict, "{gate}");

    // The approvals API uses the same table: an unknown gate is NOT_FOUND, not a store error.
    let missing = engine
        .approvals()
        .decide("nope", "gate", &Approver::new("alice"), Decision::approve())
        .await
        .unwrap_err();
    assert_eq!(missing.code(), ErrorCode::NotFound, "{missing}");
    let forbidden = engine
        .approvals()
        .decide(
            &run.id,
            "gate",
            &Approver::new("mallory"),
            Decision::approve(),
        )
        .await
        .unwrap_err();
    assert_eq!(forbidden.code(), ErrorCode::Forbidden);

    let done = engine.cancel(&run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Cancelled);
    let again = engine.cancel(&run.id).await.unwrap_err();
    assert_eq!(again.code(), ErrorCode::Conflict);

    let empty = Workflow::new("empty").commit().unwrap_err();
    assert!(matches!(empty, WorkflowError::Empty { .. }));
    assert_eq!(empty.code(), ErrorCode::InvalidWorkflow);
    assert_eq!(
        miyabi::Error::from(empty).code(),
        ErrorCode::InvalidWorkflow
    );
}
