#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
use miyabi::*;
use serde_json::{Value, json};

fn inc() -> Node {
    step_fn(|_c: StepContext, v: Value| async move {
        Ok(json!({"n": v["n"].as_i64().unwrap_or(0) + 1}))
    })
}

#[tokio::test]
async fn three_steps() {
    let wf = Workflow::new("t")
        .step("a", inc())
        .then("b", inc())
        .then("c", inc())
        .commit()
        .unwrap();
    let e = Engine::in_memory();
    let r = e.start(&wf, json!({"n": 0})).await.unwrap();
    assert_eq!(r.output, Some(json!({"n": 3})), "{r:?}");
    let evs: Vec<_> = futures::StreamExt::collect::<Vec<_>>(e.events(&r.id, 1)).await;
    let names: Vec<_> = evs
        .iter()
        .map(|e| e.as_ref().unwrap().type_name())
        .collect();
    assert_eq!(
        names,
        [
            "run-started",
            "step-started",
            "step-output",
            "step-started",
            "step-output",
            "step-started",
            "step-output",
            "run-finished"
        ]
    );
}
