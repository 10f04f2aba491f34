//! Agent-aware metrics and embedding similarity through the public API: a real `Agent` with
//! tools against a loopback server replaying recorded chat completions, and an embedding model
//! against the same kind of server.
#![cfg(feature = "eval")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod eval_support;

use std::time::Duration;

use eval_support::{Replay, completion, embeddings, tool_calls};
use miyabi::eval::metrics::{
    CostBudget, EmbeddingSimilarity, ExpectedCall, LatencyBudget, StepBudget, TokenBudget,
    ToolCalls, ToolScore, Trajectory,
};
use miyabi::eval::{Case, Dataset, Evaluator, Metric, Outcome, Sample};
use miyabi::tool::tool_json;
use miyabi::{Agent, ToolContext};
use serde_json::{Value, json};

/// The agent's model: routes on the prompt and on how many tool results came back.
async fn agent_server() -> Replay {
    Replay::start(|_, body| {
        let msgs = body["messages"].as_array().unwrap();
        let prompt = msgs
            .iter()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string();
        let tool_msgs = msgs.iter().filter(|m| m["role"] == "tool").count();
        let reply = match (prompt.as_str(), tool_msgs) {
            ("weather", 0) => tool_calls(&[(
                "c1",
                "search",
                json!({"query": "weather paris", "limit": 3}),
            )]),
            ("math", 0) => tool_calls(&[
                ("c1", "calc", json!({"expr": "2+2"})),
                ("c2", "search", json!({"query": "four"})),
            ]),
            ("math", 2) => tool_calls(&[("c3", "calc", json!({"expr": "4*4"}))]),
            _ => completion("done", "stop"),
        };
        (200, reply)
    })
    .await
}

fn agent(server: &Replay) -> Agent {
    let search = tool_json(
        "search",
        "Searches",
        json!({"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}),
        |_ctx: ToolContext, _args: Value| async move { Ok::<_, String>(json!(["result"])) },
    );
    let calc = tool_json(
        "calc",
        "Computes",
        json!({"type": "object", "properties": {"expr": {"type": "string"}}}),
        |_ctx: ToolContext, _args: Value| async move { Ok::<_, String>(json!(4)) },
    );
    Agent::new("helper")
        .model(server.model("agent-1"))
        .tools([search, calc])
        .max_steps(5)
}

#[tokio::test]
async fn tool_call_metrics_read_the_agents_trace() {
    let server = agent_server().await;
    let agent = agent(&server);
    let mut weather = Case::new("weather", "weather");
    weather.metadata.insert(
        "expected_tools".into(),
        json!([{"name": "search", "arguments": {"query": "weather paris"}}]),
    );
    let mut math = Case::new("math", "math");
    // Expects calc then search; the agent calls calc, search, calc.
    math.metadata
        .insert("expected_tools".into(), json!(["calc", "search"]));
    let mut direct = Case::new("direct", "direct");
    direct
        .metadata
        .insert("expected_tools".into(), json!(["search"]));
    let dataset = Dataset::from_cases("agent", [weather, math, direct]).unwrap();

    let results = Evaluator::new()
        .add_metric("tools", ToolCalls::from_case())
        .add_metric(
            "tools_exact",
            ToolCalls::from_case().measure(ToolScore::Exact),
        )
        .add_metric("order", Trajectory::from_case())
        .add_metric("order_exact", Trajectory::from_case().exact())
        .add_metric("steps", StepBudget::at_most(2))
        .add_metric("tokens", TokenBudget::at_most(100))
        .add_metric("cost", CostBudget::at_most(0.01).unwrap())
        .add_metric("latency", LatencyBudget::at_most(Duration::from_secs(3600)))
        .evaluate(&agent, &dataset)
        .await
        .unwrap();
    let v = |case: &str, metric: &str| {
        results
            .samples
            .iter()
            .find(|s| s.case_id == case)
            .unwrap()
            .scores[metric]
            .clone()
    };
    // weather: one call, expected and made (arguments contain the expected subset).
    assert_eq!(v("weather", "tools").value, Some(1.0));
    assert_eq!(v("weather", "tools_exact").value, Some(1.0));
    assert_eq!(v("weather", "order").value, Some(1.0));
    // math: made calc, search, calc; expected calc, search. Precision 2/3, recall 1.
    let t = v("math", "tools");
    assert!((t.value.unwrap() - 0.8).abs() < 1e-12, "{t:?}");
    assert_eq!(t.metadata["unexpected"], json!(["calc"]));
    assert_eq!(t.metadata["called"], json!(["calc", "search", "calc"]));
    assert_eq!(v("math", "tools_exact").value, Some(0.0));
    assert_eq!(v("math", "order").value, Some(1.0));
    assert!((v("math", "order_exact").value.unwrap() - 2.0 / 3.0).abs() < 1e-12);
    // direct: expected a search, made nothing.
    assert_eq!(v("direct", "tools").value, Some(0.0));
    assert_eq!(v("direct", "tools").metadata["missing"], json!(["search"]));
    // Turns: weather 2, math 3, direct 1.
    assert_eq!(v("weather", "steps").value, Some(1.0));
    assert_eq!(v("math", "steps").value, Some(0.0));
    assert_eq!(v("math", "steps").metadata["turns"], json!(3));
    // Tokens: each replayed call uses 40+8 (tool calls) or 50+10 (text).
    assert_eq!(v("weather", "tokens").metadata["tokens"], json!(48 + 60));
    assert_eq!(v("weather", "tokens").value, Some(0.0));
    assert_eq!(v("direct", "tokens").value, Some(1.0));
    // A custom model has no price: cost is unscored, saying so.
    assert!(
        v("direct", "cost")
            .unscored
            .unwrap()
            .contains("cost is unknown")
    );
    assert_eq!(v("direct", "latency").value, Some(1.0));

    // The trace is kept in the results and summed.
    let math_sample = results
        .samples
        .iter()
        .find(|s| s.case_id == "math")
        .unwrap();
    assert_eq!(math_sample.trace.as_ref().unwrap().turns, 3);
    let usage = results.usage.as_ref().unwrap();
    assert_eq!((usage.samples, usage.turns, usage.tool_calls), (3, 6, 4));
    assert_eq!(usage.cost_usd, None);
    let back = miyabi::eval::EvalResults::from_json(&results.to_json()).unwrap();
    assert_eq!(back.usage, results.usage);
}

#[tokio::test]
async fn argument_mismatch_and_explicit_expectations() {
    let server = agent_server().await;
    let agent = agent(&server);
    let dataset = Dataset::from_cases("a", [Case::new("weather", "weather")]).unwrap();
    let results = Evaluator::new()
        .add_metric(
            "wrong_args",
            ToolCalls::expect([ExpectedCall::with_arguments(
                "search",
                json!({"query": "weather london"}),
            )]),
        )
        .add_metric(
            "names_only",
            ToolCalls::expect([ExpectedCall::with_arguments(
                "search",
                json!({"query": "weather london"}),
            )])
            .ignore_arguments(),
        )
        .add_metric(
            "nested",
            ToolCalls::expect([ExpectedCall::with_arguments(
                "search",
                json!({"limit": 3.0}),
            )]),
        )
        .add_metric("order", Trajectory::expect(["calc", "search"]))
        .evaluate(&agent, &dataset)
        .await
        .unwrap();
    let s = &results.samples[0].scores;
    assert_eq!(s["wrong_args"].value, Some(0.0));
    assert_eq!(s["names_only"].value, Some(1.0));
    assert_eq!(
        s["nested"].value,
        Some(1.0),
        "3 and 3.0 are the same number"
    );
    assert_eq!(s["order"].value, Some(0.5));
}

#[tokio::test]
async fn agent_metrics_on_a_target_without_trace_are_unscored() {
    let target = |_: Value| async move { Ok::<_, std::convert::Infallible>(json!("x")) };
    let dataset = Dataset::from_cases("a", [Case::new("1", "q")]).unwrap();
    let results = Evaluator::new()
        .add_metric("tools", ToolCalls::expect([ExpectedCall::named("search")]))
        .add_metric("steps", StepBudget::at_most(3))
        .evaluate(&target, &dataset)
        .await
        .unwrap();
    let m = results.metric("tools").unwrap();
    assert_eq!((m.scored, m.unscored), (0, 1));
    assert!(
        results.samples[0].scores["steps"]
            .unscored
            .as_deref()
            .unwrap()
            .contains("no trace")
    );
    // A case without expected tools in its metadata is unscored too.
    let server = agent_server().await;
    let results = Evaluator::new()
        .add_metric("tools", ToolCalls::from_case())
        .evaluate(&agent(&server), &dataset)
        .await
        .unwrap();
    assert!(
        results.samples[0].scores["tools"]
            .unscored
            .as_deref()
            .unwrap()
            .contains("expected_tools")
    );
}

#[tokio::test]
async fn embedding_similarity_through_the_model_layer() {
    let server = Replay::start(|path, body| {
        assert!(path.ends_with("/embeddings"), "{path}");
        let vec_of = |t: &str| -> Vec<f32> {
            match t {
                "cat" => vec![1.0, 0.0],
                "kitten" => vec![0.8, 0.6],
                "car" => vec![0.0, 1.0],
                "anti-cat" => vec![-1.0, 0.0],
                _ => vec![0.0, 0.0],
            }
        };
        let inputs: Vec<Vec<f32>> = body["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| vec_of(t.as_str().unwrap()))
            .collect();
        (200, embeddings(&inputs))
    })
    .await;
    let metric = EmbeddingSimilarity::new(server.embedder("embed-1"));
    let score = |expected: Value, out: &str| {
        let case = Case::new("c", "q").expected(expected);
        let out = json!(out);
        let metric = &metric;
        async move { metric.score(&Sample::new(&case, &out)).await }
    };
    assert_eq!(score(json!("cat"), "cat").await.value(), Some(1.0));
    let k = score(json!("cat"), "kitten").await;
    assert!((k.value().unwrap() - 0.8).abs() < 1e-6, "{k:?}");
    assert_eq!(score(json!("cat"), "car").await.value(), Some(0.0));
    // A negative cosine scores 0, the raw value is kept.
    let neg = score(json!("cat"), "anti-cat").await;
    assert_eq!(neg.value(), Some(0.0));
    assert_eq!(neg.score().unwrap().metadata["cosine"], json!(-1.0));
    // Several references: the best one counts.
    let best = score(json!(["car", "kitten"]), "cat").await;
    assert!((best.value().unwrap() - 0.8).abs() < 1e-6);
    assert_eq!(best.score().unwrap().metadata["reference"], json!(1));
    // A zero vector cannot be compared: unscored.
    assert!(matches!(
        score(json!("cat"), "???").await,
        Outcome::Unscored { .. }
    ));
    // One request per sample: output and references together.
    let last = server.requests().pop().unwrap();
    assert_eq!(last.body["input"], json!(["???", "cat"]));
    // No expected: unscored without a call.
    let before = server.calls();
    let case = Case::new("c", "q");
    let out = json!("cat");
    assert!(matches!(
        metric.score(&Sample::new(&case, &out)).await,
        Outcome::Unscored { .. }
    ));
    assert_eq!(server.calls(), before);

    let failing = Replay::start(|_, _| (401, json!({"error": {"message": "no key"}}))).await;
    let metric = EmbeddingSimilarity::new(failing.embedder("embed-1"));
    let case = Case::new("c", "q").expected("cat");
    match metric.score(&Sample::new(&case, &out)).await {
        Outcome::Unscored { reason } => {
            assert!(reason.contains("embedding call failed"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
