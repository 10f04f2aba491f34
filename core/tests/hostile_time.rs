//! Durations at the edge of what clocks hold (`Duration::MAX`, NaN and infinite backoff
//! factors, wake times before the epoch) never panic: they mean "never" or "at once".
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, UNIX_EPOCH};

use miyabi::approval::{ApprovalGate, Approver, Decision};
use miyabi::{Engine, RetryPolicy, RunStatus, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

#[test]
fn retry_delays_stay_within_their_bounds_for_any_policy() {
    for multiplier in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -3.0,
        0.0,
        1e308,
        2.0,
    ] {
        for (initial, max) in [
            (Duration::MAX, Duration::MAX),
            (Duration::MAX, Duration::from_secs(1)),
            (Duration::from_secs(1), Duration::MAX),
            (Duration::ZERO, Duration::ZERO),
        ] {
            for jitter in [false, true] {
                let mut p = RetryPolicy::attempts(100);
                p.initial_delay = initial;
                p.max_delay = max;
                p.multiplier = multiplier;
                p.jitter = jitter;
                for next in [0, 1, 2, 3, 64, u32::MAX] {
                    let d = p.delay_before(next);
                    assert!(d <= max, "{d:?} > {max:?} for {multiplier} {initial:?}");
                }
            }
        }
    }
}

fn echo() -> miyabi::Node {
    step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) })
}

#[tokio::test]
async fn the_longest_timeouts_and_leases_mean_never() {
    let wf = Workflow::new("forever")
        .step("a", echo().timeout(Duration::MAX))
        .timeout(Duration::MAX)
        .commit()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::builder()
        .store(miyabi::SqliteStore::open(dir.path().join("r.db").to_str().unwrap()).unwrap())
        .lease(Duration::MAX)
        .build();
    let run = engine.start(&wf, json!(7)).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output, Some(json!(7)));
    let stored = engine.store().run(&run.id).unwrap().unwrap();
    assert!(stored.created_at > 0);
}

#[tokio::test]
async fn a_sleep_of_duration_max_waits_until_cancelled() {
    let wf = Workflow::new("sleeps")
        .step("a", echo())
        .sleep("nap", Duration::MAX)
        .then("b", echo())
        .commit()
        .unwrap();
    let engine = Engine::in_memory();
    let handle = engine.spawn(&wf, json!(1)).unwrap();
    let id = handle.id().to_string();
    // The sleep's record is committed before the run waits; look for it (bounded).
    let mut steps = Vec::new();
    for _ in 0..5000 {
        steps = engine.store().steps(&id).unwrap();
        if steps.iter().any(|s| &*s.path == "nap") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let nap = steps
        .iter()
        .find(|s| &*s.path == "nap")
        .expect("sleep record");
    assert_eq!(nap.output.as_deref(), Some(&json!({ "wake_at": i64::MAX })));
    let cancelled = engine.cancel(&id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(handle.wait().await.unwrap().status, RunStatus::Cancelled);
}

#[tokio::test]
async fn a_wake_time_before_the_epoch_wakes_at_once() {
    let wf = Workflow::new("past")
        .sleep_until("nap", |_v: &Value| UNIX_EPOCH - Duration::from_secs(86_400))
        .then("b", echo())
        .commit()
        .unwrap();
    let run = Engine::in_memory().start(&wf, json!(3)).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output, Some(json!(3)));
}

#[tokio::test]
async fn a_gate_deadline_of_duration_max_never_passes() {
    let wf = Workflow::new("gated")
        .step(
            "gate",
            ApprovalGate::new()
                .approvers(["alice"])
                .deadline(Duration::MAX),
        )
        .commit()
        .unwrap();
    let engine = Engine::in_memory();
    let run = engine.start(&wf, json!(1)).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    let approvals = engine.approvals();
    let gate = approvals.get(&run.id, "gate").unwrap();
    assert_eq!(gate.deadline_at, Some(i64::MAX));
    approvals.tick().await.unwrap();
    assert_eq!(
        engine.get(&run.id).await.unwrap().unwrap().status,
        RunStatus::Suspended
    );
    approvals
        .decide(
            &run.id,
            "gate",
            &Approver::new("alice"),
            Decision::approve(),
        )
        .await
        .unwrap();
    assert_eq!(
        engine.wait(&run.id).await.unwrap().status,
        RunStatus::Succeeded
    );
}
