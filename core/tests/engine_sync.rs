//! The synchronous reads and the non-waiting cancel that drivers outside Rust use.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use miyabi::{CancelRequest, Engine, RunFilter, RunStatus, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

#[tokio::test]
async fn get_list_and_request_cancel_without_awaiting() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = Arc::clone(&gate);
    let wf = Workflow::new("sync")
        .step(
            "ask",
            step_fn(|ctx: StepContext, v: Value| async move {
                match ctx.resume_data() {
                    Some(_) => Ok(v),
                    None => ctx.suspend(json!({})),
                }
            }),
        )
        .commit()
        .unwrap();
    let slow = Workflow::new("slow")
        .step(
            "wait",
            step_fn(move |ctx: StepContext, v: Value| {
                let g = Arc::clone(&g);
                async move {
                    tokio::select! {
                        _ = g.notified() => Ok(v),
                        _ = ctx.cancellation().cancelled() => Err(miyabi::StepError::fatal("cancelled")),
                    }
                }
            }),
        )
        .commit()
        .unwrap();
    let engine = Engine::in_memory();
    let parked = engine.start(&wf, json!(1)).await.unwrap();
    assert_eq!(
        engine.get_sync(&parked.id).unwrap().unwrap().suspended[0].path,
        "ask"
    );
    assert_eq!(engine.list_sync(&RunFilter::default()).unwrap().len(), 1);
    assert!(engine.get_sync("nope").unwrap().is_none());

    // Not executing here: committed before request_cancel returns.
    match engine.request_cancel(&parked.id).unwrap() {
        CancelRequest::Cancelled(run) => assert_eq!(run.status, RunStatus::Cancelled),
        other => panic!("{other:?}"),
    }
    assert!(
        engine.request_cancel(&parked.id).is_err(),
        "already finished"
    );

    // Executing here: the driver is told, and commits the cancellation itself.
    let handle = engine.spawn(&slow, json!(2)).unwrap();
    let id = handle.id().to_string();
    assert!(matches!(
        engine.request_cancel(&id).unwrap(),
        CancelRequest::Requested
    ));
    assert_eq!(handle.wait().await.unwrap().status, RunStatus::Cancelled);
    assert_eq!(
        engine.get_sync(&id).unwrap().unwrap().status,
        RunStatus::Cancelled
    );
}
