//! LLM judges through the public API, against a loopback server replaying recorded
//! OpenAI-compatible chat completions: scale and verdict judges, unscored samples naming the
//! metric and the case, prompt overrides, the SQLite judge cache, the pairwise judge.
#![cfg(feature = "eval")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod eval_support;

use eval_support::{Replay, completion};
use miyabi::eval::{
    Case, Dataset, EvalError, Evaluator, Judge, JudgeCache, JudgeMetric, Metric, Outcome,
    PairwiseJudge, Sample, judge::Preference,
};
use serde_json::{Value, json};

/// A judge server: answers by what the output under judgement says.
async fn judge_server() -> Replay {
    Replay::start(|_path, body| {
        let user = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "user")
            .map(|m| m["content"].as_str().unwrap_or("").to_string())
            .collect::<String>();
        let answer = if user.contains("Decide whether the agent achieved") {
            // The goal judge: achieved when the agent called `refund` and says so.
            let calls = user
                .split("TOOL CALLS:\n")
                .nth(1)
                .and_then(|s| s.split("\n\nFINAL OUTPUT").next())
                .unwrap_or("");
            let output = user.rsplit("FINAL OUTPUT:\n").next().unwrap_or("");
            if output.contains("NOBOOL") {
                completion(r#"{"achieved": "perhaps", "reason": "?"}"#, "stop")
            } else {
                let achieved = calls.contains("refund(") && output.contains("refunded");
                completion(
                    &json!({"achieved": achieved, "reason": format!("calls: {calls}")}).to_string(),
                    "stop",
                )
            }
        } else if user.contains("GARBAGE") {
            completion("I think this output is quite good overall.", "stop")
        } else if user.contains("REFUSE") {
            completion(
                r#"{"refused": true, "reason": "I cannot judge this"}"#,
                "stop",
            )
        } else if user.contains("FILTERED") {
            completion("", "content_filter")
        } else if user.contains("HUGE") {
            completion(r#"{"score": 9, "reason": "off the scale"}"#, "stop")
        } else if user.contains("Split the OUTPUT") {
            // Verdict judges: one verdict per sentence; sentences with "wrong" fail,
            // with "maybe" are unsure.
            let output = user.rsplit("OUTPUT:\n").next().unwrap_or("");
            let verdicts: Vec<Value> = output
                .split('.')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let v = if s.contains("wrong") {
                        "no"
                    } else if s.contains("maybe") {
                        "unsure"
                    } else {
                        "yes"
                    };
                    json!({"statement": s, "verdict": v, "reason": "checked"})
                })
                .collect();
            completion(
                &format!(
                    "```json\n{}\n```",
                    json!({"verdicts": verdicts, "reason": "summary"})
                ),
                "stop",
            )
        } else {
            // Rubric: the score is the number of "good" words, capped at 5, min 1.
            let output = user
                .split("OUTPUT:\n")
                .nth(1)
                .and_then(|s| s.split("\n\nREFERENCE").next())
                .unwrap_or("");
            let n = output.matches("good").count().clamp(1, 5);
            completion(
                &json!({"score": n, "reason": format!("{n} good words")}).to_string(),
                "stop",
            )
        };
        (200, answer)
    })
    .await
}

fn echo() -> impl Fn(Value) -> std::future::Ready<Result<Value, std::convert::Infallible>> {
    |input: Value| std::future::ready(Ok(input))
}

#[tokio::test]
async fn rubric_judge_scores_on_its_scale_and_sends_a_structured_request() {
    let server = judge_server().await;
    let judge = Judge::from_model(server.model("judge-1"));
    assert_eq!(judge.model_id(), "replay/judge-1");
    let dataset = Dataset::from_cases(
        "answers",
        [
            Case::new("one", "good"),
            Case::new("three", "good good good"),
            Case::new("five", "good good good good good good"),
        ],
    )
    .unwrap();
    let results = Evaluator::new()
        .add_metric(
            "helpfulness",
            JudgeMetric::rubric(&judge, "The answer is helpful and polite."),
        )
        .evaluate(&echo(), &dataset)
        .await
        .unwrap();
    let scores: Vec<f64> = results
        .samples
        .iter()
        .map(|s| s.scores["helpfulness"].value.unwrap())
        .collect();
    // 1..5 normalised: (n - 1) / 4.
    assert_eq!(scores, [0.0, 0.5, 1.0]);
    let s = &results.samples[1].scores["helpfulness"];
    assert_eq!(s.reason.as_deref(), Some("3 good words"));
    assert_eq!(s.metadata["raw_score"], json!(3.0));
    assert_eq!(s.metadata["judge_model"], json!("replay/judge-1"));
    assert_eq!(s.metadata["judge_cached"], json!(false));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    let r = &reqs[0];
    assert!(r.path.ends_with("/chat/completions"), "{}", r.path);
    assert_eq!(r.body["temperature"], json!(0.0));
    assert_eq!(r.body["response_format"]["type"], "json_schema");
    assert!(r.text_of("system").contains("a number from 1 to 5"));
    assert!(
        r.text_of("user")
            .contains("The answer is helpful and polite.")
    );
}

#[tokio::test]
async fn verdict_judges_score_the_share_of_passing_statements() {
    let server = judge_server().await;
    let judge = Judge::from_model(server.model("judge-1"));
    let case = Case::new("c1", "Where is the tower?")
        .expected("Paris")
        .context(json!(["The tower is in Paris.", "It is 330 m tall."]));
    let out = json!("It is in Paris. It is 330 m tall. It is wrong here. It is maybe blue.");
    for metric in [
        JudgeMetric::faithfulness(&judge),
        JudgeMetric::hallucination(&judge),
        JudgeMetric::factuality(&judge),
        JudgeMetric::answer_relevancy(&judge),
        JudgeMetric::toxicity(&judge),
    ] {
        let outcome = metric.score(&Sample::new(&case, &out)).await;
        let score = outcome
            .score()
            .unwrap_or_else(|| panic!("{}: {outcome:?}", metric.kind()));
        // (2 yes + ½ unsure) / 4 statements.
        assert_eq!(score.value(), 0.625, "{}", metric.kind());
        assert_eq!(score.metadata["statements"], json!(4));
        assert_eq!(score.metadata["no"], json!(1));
    }
    let reqs = server.requests();
    assert!(
        reqs[0]
            .text_of("user")
            .contains("The tower is in Paris.\n---\nIt is 330 m tall.")
    );
    assert!(reqs[2].text_of("user").contains("REFERENCE:\nParis"));

    // An empty output: no statements. Relevancy of nothing is 0; toxicity of nothing is 1.
    let empty = json!("");
    let rel = JudgeMetric::answer_relevancy(&judge)
        .score(&Sample::new(&case, &empty))
        .await;
    assert_eq!(rel.value(), Some(0.0));
    let tox = JudgeMetric::toxicity(&judge)
        .score(&Sample::new(&case, &empty))
        .await;
    assert_eq!(tox.value(), Some(1.0));
}

#[tokio::test]
async fn unusable_answers_are_unscored_naming_the_metric_and_the_case() {
    let server = judge_server().await;
    let judge = Judge::from_model(server.model("judge-1"));
    let dataset = Dataset::from_cases(
        "mixed",
        [
            Case::new("fine", "good good good good good"),
            Case::new("garbled", "GARBAGE"),
            Case::new("refused", "REFUSE"),
            Case::new("filtered", "FILTERED"),
            Case::new("off-scale", "HUGE"),
        ],
    )
    .unwrap();
    let results = Evaluator::new()
        .add_metric("helpfulness", JudgeMetric::rubric(&judge, "helpful"))
        .evaluate(&echo(), &dataset)
        .await
        .unwrap();
    let m = results.metric("helpfulness").unwrap();
    assert_eq!((m.scored, m.unscored, m.cases), (1, 4, 1));
    assert_eq!(m.mean, Some(1.0), "unscored samples are not zeros");
    let reason = |id: &str| {
        let s = results.samples.iter().find(|s| s.case_id == id).unwrap();
        assert_eq!(s.scores["helpfulness"].value, None);
        s.scores["helpfulness"].unscored.clone().unwrap()
    };
    let garbled = reason("garbled");
    assert!(garbled.contains("\"helpfulness\""), "{garbled}");
    assert!(garbled.contains("\"garbled\""), "{garbled}");
    assert!(garbled.contains("not a JSON object"), "{garbled}");
    assert!(reason("refused").contains("refused: I cannot judge this"));
    assert!(reason("filtered").contains("content filter"));
    assert!(reason("off-scale").contains("outside the scale 1..5"));

    // A faithfulness judge on a case without context does not call the judge.
    let before = server.calls();
    let case = Case::new("no-context", "q");
    let out = json!("answer");
    let outcome = JudgeMetric::faithfulness(&judge)
        .score(&Sample::new(&case, &out).with_metric("grounded"))
        .await;
    match outcome {
        Outcome::Unscored { reason } => {
            assert!(reason.contains("\"grounded\""), "{reason}");
            assert!(reason.contains("no context"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.calls(), before);
}

#[tokio::test]
async fn a_failing_judge_model_is_unscored_not_zero() {
    let server = Replay::start(|_, _| (400, json!({"error": {"message": "bad request"}}))).await;
    let judge = Judge::from_model(server.model("judge-1"));
    let case = Case::new("c", "q");
    let out = json!("a");
    match JudgeMetric::rubric(&judge, "x")
        .score(&Sample::new(&case, &out))
        .await
    {
        Outcome::Unscored { reason } => {
            assert!(
                reason.contains("the judge model replay/judge-1 failed"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_prompt_can_be_overridden_and_is_checked() {
    let server = judge_server().await;
    let judge = Judge::from_model(server.model("judge-1"));
    let metric = JudgeMetric::rubric(&judge, "concise")
        .scale(0.0, 10.0)
        .unwrap()
        .prompt("Rate {{output}} for {{criteria}} between {{min}} and {{max}}. Question: {{input}}")
        .unwrap();
    let case = Case::new("c", "why?");
    let out = json!("good good");
    let outcome = metric.score(&Sample::new(&case, &out)).await;
    // The replay answers 1 when it cannot find the rubric's "OUTPUT:" section: 1 on 0..10.
    assert_eq!(outcome.value(), Some(0.1));
    let user = server.requests()[0].text_of("user");
    assert_eq!(
        user,
        "Rate good good for concise between 0 and 10. Question: why?"
    );
    assert!(
        server.requests()[0]
            .text_of("system")
            .contains("from 0 to 10")
    );

    let err = JudgeMetric::rubric(&judge, "x")
        .prompt("Rate {{outptu}}")
        .unwrap_err();
    assert!(matches!(err, EvalError::Config(_)));
    assert!(
        err.to_string().contains("unknown placeholder {{outptu}}"),
        "{err}"
    );
    let err = JudgeMetric::rubric(&judge, "x")
        .prompt("Rate it")
        .unwrap_err();
    assert!(err.to_string().contains("must contain {{output}}"), "{err}");
    assert!(JudgeMetric::toxicity(&judge).scale(0.0, 1.0).is_err());
    assert!(JudgeMetric::rubric(&judge, "x").scale(5.0, 1.0).is_err());
}

#[tokio::test]
async fn the_cache_file_spares_the_judge_on_a_rerun() {
    let server = judge_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("judge-cache.db");
    let dataset = Dataset::from_cases(
        "cached",
        [
            Case::new("a", "good"),
            Case::new("b", "good good"),
            Case::new("c", "GARBAGE"),
        ],
    )
    .unwrap();
    let run = |epochs: u32| {
        let judge =
            Judge::from_model(server.model("judge-1")).cache(JudgeCache::open(&path).unwrap());
        let dataset = &dataset;
        async move {
            Evaluator::new()
                .add_metric("rubric", JudgeMetric::rubric(&judge, "good"))
                .epochs(epochs)
                .evaluate(&echo(), dataset)
                .await
                .unwrap()
        }
    };
    let first = run(1).await;
    assert_eq!(server.calls(), 3);
    assert_eq!(JudgeCache::open(&path).unwrap().len().unwrap(), 3);
    // Re-run with a fresh cache handle on the same file (as a new process would): no call.
    let second = run(1).await;
    assert_eq!(server.calls(), 3, "the rerun must not call the judge");
    for (a, b) in first.samples.iter().zip(&second.samples) {
        assert_eq!(a.scores["rubric"].value, b.scores["rubric"].value);
        assert_eq!(a.scores["rubric"].unscored, b.scores["rubric"].unscored);
    }
    assert_eq!(
        second.samples[0].scores["rubric"].metadata["judge_cached"],
        json!(true)
    );
    assert_eq!(
        first.samples[0].scores["rubric"].metadata["judge_cached"],
        json!(false)
    );
    // The garbled answer is cached too and still unscored.
    assert!(second.samples[2].scores["rubric"].unscored.is_some());

    // Two epochs: epoch 0 is cached, epoch 1 is a new question (repeats are real).
    run(2).await;
    assert_eq!(server.calls(), 6);

    // Another judge model id is another key.
    let other = Judge::from_model(server.model("judge-2")).cache(JudgeCache::open(&path).unwrap());
    let case = Case::new("a", "good");
    let out = json!("good");
    JudgeMetric::rubric(&other, "good")
        .score(&Sample::new(&case, &out))
        .await;
    assert_eq!(server.calls(), 7);
    // Another prompt (criteria) is another key.
    JudgeMetric::rubric(&other, "polite")
        .score(&Sample::new(&case, &out))
        .await;
    assert_eq!(server.calls(), 8);
}

#[tokio::test]
async fn the_pairwise_judge_asks_both_orders() {
    // Prefers the output with more "good"; ties when equal. A biased judge always says "A".
    let fair = Replay::start(|_, body| {
        let user = body["messages"][1]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let a = user
            .split("OUTPUT A:\n")
            .nth(1)
            .unwrap()
            .split("\n\nOUTPUT B:")
            .next()
            .unwrap();
        let b = user.split("OUTPUT B:\n").nth(1).unwrap();
        let (ca, cb) = (a.matches("good").count(), b.matches("good").count());
        let p = if ca > cb {
            "A"
        } else if cb > ca {
            "B"
        } else {
            "tie"
        };
        (
            200,
            completion(
                &json!({"preferred": p, "reason": "more good"}).to_string(),
                "stop",
            ),
        )
    })
    .await;
    let judge = Judge::from_model(fair.model("judge-1"));
    let case = Case::new("p1", "say something");
    let v = PairwiseJudge::new(&judge)
        .criteria("more good")
        .compare(&case, &json!("good"), &json!("good good"), 0)
        .await
        .unwrap();
    assert_eq!(v.preferred, Preference::B);
    assert_eq!(fair.calls(), 2);
    assert!(
        fair.requests()[0]
            .text_of("user")
            .contains("better (more good)?")
    );

    let biased = Replay::start(|_, _| {
        (
            200,
            completion(r#"{"preferred": "A", "reason": "first is best"}"#, "stop"),
        )
    })
    .await;
    let judge = Judge::from_model(biased.model("judge-1"));
    let v = PairwiseJudge::new(&judge)
        .compare(&case, &json!("x"), &json!("y"), 0)
        .await
        .unwrap();
    assert_eq!(v.preferred, Preference::Tie, "position bias is cancelled");

    let broken = Replay::start(|_, _| {
        (
            200,
            completion(r#"{"preferred": "C", "reason": "?"}"#, "stop"),
        )
    })
    .await;
    let judge = Judge::from_model(broken.model("judge-1"));
    let err = PairwiseJudge::new(&judge)
        .compare(&case, &json!("x"), &json!("y"), 0)
        .await
        .unwrap_err();
    assert!(matches!(err, EvalError::Judge { .. }));
    assert!(err.to_string().contains("case \"p1\""), "{err}");
}

#[tokio::test]
async fn the_goal_judge_decides_from_the_tool_calls_not_from_what_the_output_claims() {
    use miyabi::eval::Trace;
    use miyabi::model::ToolCall;
    let server = judge_server().await;
    let judge = Judge::from_model(server.model("judge-1"));
    let goal = JudgeMetric::goal_success(&judge);
    assert_eq!(goal.kind(), "goal_success");
    let case = Case::new("r1", "Refund order 42").expected("The order is refunded in full.");
    let out = json!("I refunded order 42.");
    let did = Trace {
        tool_calls: vec![ToolCall {
            id: "c1".into(),
            name: "refund".into(),
            arguments: json!({"order": 42}),
        }],
        turns: 2,
        ..Trace::default()
    };
    let achieved = goal.score(&Sample::new(&case, &out).with_trace(&did)).await;
    let score = achieved.score().unwrap_or_else(|| panic!("{achieved:?}"));
    assert_eq!(score.value(), 1.0);
    assert_eq!(score.metadata["achieved"], json!(true));
    // The same claim without the call: not achieved.
    let idle = Trace {
        turns: 1,
        ..Trace::default()
    };
    let claimed = goal
        .score(&Sample::new(&case, &out).with_trace(&idle))
        .await;
    assert_eq!(claimed.value(), Some(0.0));
    let req = &server.requests()[0];
    assert!(req.text_of("system").contains("\"achieved\""));
    let user = req.text_of("user");
    assert!(user.contains("GOAL:\nRefund order 42"), "{user}");
    assert!(
        user.contains("SUCCESS CRITERIA (may be empty):\nThe order is refunded in full."),
        "{user}"
    );
    assert!(
        user.contains("TOOL CALLS:\n1. refund({\"order\":42})"),
        "{user}"
    );
    assert!(
        server.requests()[1]
            .text_of("user")
            .contains("TOOL CALLS:\n(no tool calls)")
    );
    // A target without a trace says so; an answer without a boolean is unscored, named.
    let _ = goal.score(&Sample::new(&case, &out)).await;
    assert!(
        server.requests()[2]
            .text_of("user")
            .contains("(the target reported no trace)")
    );
    let bad = json!("NOBOOL");
    let unscored = goal.score(&Sample::new(&case, &bad).with_trace(&did)).await;
    let why = format!("{unscored:?}");
    assert!(unscored.value().is_none(), "{why}");
    assert!(
        why.contains("goal_success") && why.contains("r1") && why.contains("achieved"),
        "{why}"
    );
}
