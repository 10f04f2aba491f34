//! The target response cache through the public API: an agent on a `CachedModel` against a
//! loopback replay server; a re-run replays every answer without a call, epochs are real
//! repeats, cached samples are flagged and their latency and cost are not scored.
#![cfg(feature = "eval")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod eval_support;

use std::sync::Arc;
use std::time::Duration;

use eval_support::{Replay, completion, tool_calls};
use miyabi::eval::metrics::{CostBudget, Exact, LatencyBudget, ToolCalls};
use miyabi::eval::{CachedModel, Case, Dataset, Evaluator, ResponseCache};
use miyabi::model::LanguageModel;
use miyabi::tool::tool_json;
use miyabi::{Agent, ToolContext};
use serde_json::{Value, json};

async fn server() -> Replay {
    Replay::start(|_, body| {
        let msgs = body["messages"].as_array().unwrap();
        if msgs.iter().any(|m| m["role"] == "tool") {
            (200, completion("done", "stop"))
        } else {
            (200, tool_calls(&[("c1", "search", json!({"q": "x"}))]))
        }
    })
    .await
}

fn agent(model: Arc<dyn LanguageModel>) -> Agent {
    let search = tool_json(
        "search",
        "Searches",
        json!({"type": "object", "properties": {"q": {"type": "string"}}}),
        |_ctx: ToolContext, _args: Value| async move { Ok::<_, String>(json!("hit")) },
    );
    Agent::new("cached").model(model).tools([search])
}

fn evaluator(epochs: u32) -> Evaluator {
    Evaluator::new()
        .add_metric("exact", Exact::new())
        .add_metric(
            "tools",
            ToolCalls::expect([miyabi::eval::metrics::ExpectedCall::named("search")]),
        )
        .add_metric("latency", LatencyBudget::at_most(Duration::from_secs(3600)))
        .add_metric("cost", CostBudget::at_most(1.0).unwrap())
        .epochs(epochs)
}

#[tokio::test]
async fn a_rerun_replays_the_target_from_the_cache_file() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("responses.db");
    let dataset = Dataset::from_cases(
        "c",
        [
            Case::new("a", "find a").expected("done"),
            Case::new("b", "find b").expected("done"),
        ],
    )
    .unwrap();
    let run = |epochs: u32| {
        let cached = CachedModel::new(
            Arc::new(s.model("agent-1")),
            "replay/agent-1",
            ResponseCache::open(&path).unwrap(),
        );
        let agent = agent(Arc::new(cached));
        let dataset = &dataset;
        async move { evaluator(epochs).evaluate(&agent, dataset).await.unwrap() }
    };
    let first = run(1).await;
    // Two cases × two model calls (tool call, then the answer).
    assert_eq!(s.calls(), 4);
    assert!(first.samples.iter().all(|x| !x.cached));
    assert_eq!(first.samples[0].scores["latency"].value, Some(1.0));
    assert_eq!(ResponseCache::open(&path).unwrap().len().unwrap(), 4);

    let second = run(1).await;
    assert_eq!(s.calls(), 4, "the re-run is answered from the cache file");
    for (a, b) in first.samples.iter().zip(&second.samples) {
        assert_eq!(a.output, b.output);
        assert_eq!(a.scores["exact"].value, b.scores["exact"].value);
        assert_eq!(a.scores["tools"].value, Some(1.0));
        assert_eq!(b.scores["tools"].value, Some(1.0));
        assert!(b.cached);
        for m in ["latency", "cost"] {
            let why = b.scores[m].unscored.as_deref().unwrap();
            assert!(why.contains("cached sample"), "{m}: {why}");
        }
    }
    let json = second.to_json();
    assert!(json.contains("\"cached\": true"));

    // Epoch 1 is a new question: repeats are real.
    let third = run(2).await;
    assert_eq!(s.calls(), 8);
    assert!(
        third
            .samples
            .iter()
            .filter(|x| x.epoch == 0)
            .all(|x| x.cached)
    );
    assert!(
        third
            .samples
            .iter()
            .filter(|x| x.epoch == 1)
            .all(|x| !x.cached)
    );
}

#[tokio::test]
async fn a_cached_model_streams_its_answer_and_keeps_failures_out() {
    let s = server().await;
    let cache = ResponseCache::in_memory().unwrap();
    let model = CachedModel::new(
        Arc::new(s.model("agent-1")),
        "replay/agent-1",
        cache.clone(),
    );
    let req = miyabi::model::ModelRequest::user("hello");
    let a = model.generate(&req).await.unwrap();
    let events = model.stream(&req).await.unwrap();
    let collected = miyabi::model::collect_stream(events).await.unwrap();
    assert_eq!(collected.tool_calls(), a.tool_calls());
    assert_eq!(s.calls(), 1, "the stream was answered from the cache");

    let failing = Replay::start(|_, _| (400, json!({"error": {"message": "bad"}}))).await;
    let model = CachedModel::new(Arc::new(failing.model("m")), "replay/m", cache.clone());
    assert!(model.generate(&req).await.is_err());
    assert_eq!(cache.len().unwrap(), 1, "a failure is not cached");
}
