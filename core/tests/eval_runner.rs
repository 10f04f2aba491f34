//! The Evaluator end to end: closure, Agent and workflow targets, concurrency, epochs,
//! latency, errors and unscored samples counted apart, weights, gates, A/B comparison and
//! the reports (JSON read back, JUnit parsed with quick-xml, Markdown).
#![cfg(feature = "eval")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use miyabi::eval::metrics::{Contains, Exact, NumericDiff};
use miyabi::eval::{
    Case, Dataset, EvalError, EvalResults, Evaluator, Metric, Outcome, SCHEMA, Sample, Score,
    Verdict, WorkflowTarget,
};
use miyabi::model::{
    ContentPart, EventStream, FinishReason, LanguageModel, ModelError, ModelRequest, ModelResponse,
    Usage,
};
use miyabi::{Agent, Engine, Workflow, step_fn};
use serde_json::{Value, json};

fn dataset(n: usize) -> Dataset {
    Dataset::from_cases(
        "numbers",
        (0..n).map(|i| {
            Case::new(format!("c{i}"), json!(i))
                .expected(json!(i * 2))
                .cluster(format!("g{}", i % 3))
        }),
    )
    .unwrap()
}

#[tokio::test]
async fn closure_target_with_the_briefs_shape() {
    let target = |input: Value| async move {
        let text = input.as_str().unwrap_or_default().to_string();
        Ok::<_, String>(json!(if text.contains("ship") {
            "deploy now"
        } else {
            "wait"
        }))
    };
    let ds = Dataset::from_cases(
        "ops",
        [
            Case::new("a", "ship it").expected("deploy now"),
            Case::new("b", "hold").expected("deploy now"),
            Case::new("c", "ship again"),
        ],
    )
    .unwrap();
    let evaluator = Evaluator::new()
        .add_metric("exact", Exact::new())
        .add_metric("contains", Contains::any(["deploy"]));
    let results = evaluator.evaluate(&target, &ds).await.unwrap();
    let exact = results.metric("exact").unwrap();
    // c has no expected value: unscored, left out of the denominator (1 of 2, not 1 of 3).
    assert_eq!((exact.scored, exact.unscored, exact.cases), (2, 1, 2));
    assert_eq!(exact.mean, Some(0.5));
    let contains = results.metric("contains").unwrap();
    assert_eq!(contains.mean, Some(2.0 / 3.0));
    assert_eq!(contains.passes, 2);
    assert!(contains.pass_rate_ci.unwrap().contains(2.0 / 3.0));
    let c = results.samples.iter().find(|s| s.case_id == "c").unwrap();
    assert_eq!(c.scores["exact"].value, None);
    assert!(
        c.scores["exact"]
            .unscored
            .as_deref()
            .unwrap()
            .contains("no expected")
    );
    assert!(results.passed(), "no gate, passes");
}

#[tokio::test]
async fn epochs_concurrency_latency_and_errors() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (f, m, c) = (in_flight.clone(), max_seen.clone(), calls.clone());
    let target = move |input: Value| {
        let (f, m, c) = (f.clone(), m.clone(), c.clone());
        async move {
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            c.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            f.fetch_sub(1, Ordering::SeqCst);
            let i = input.as_u64().unwrap();
            if i == 3 {
                Err("model unavailable".to_string())
            } else {
                Ok(json!(i * 2))
            }
        }
    };
    let ds = dataset(10);
    let results = Evaluator::new()
        .add_metric("num", NumericDiff::within(0.0).unwrap())
        .concurrency(3)
        .epochs(2)
        .evaluate(&target, &ds)
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 20);
    assert!(max_seen.load(Ordering::SeqCst) <= 3, "concurrency limit");
    assert_eq!(results.samples.len(), 20);
    // Ordered by case, then epoch.
    assert_eq!(
        (
            results.samples[0].case_id.as_str(),
            results.samples[0].epoch
        ),
        ("c0", 0)
    );
    assert_eq!(
        (
            results.samples[1].case_id.as_str(),
            results.samples[1].epoch
        ),
        ("c0", 1)
    );
    assert!(results.samples.iter().all(|s| s.latency_ms >= 0.0));
    // Case 3 failed twice: errors, not zeros.
    assert_eq!(results.errors, 2);
    let num = results.metric("num").unwrap();
    assert_eq!((num.scored, num.errored, num.cases), (18, 2, 9));
    assert_eq!(num.mean, Some(1.0));
    // Cases carry clusters: a clustered SE is reported over 3 clusters.
    assert_eq!(num.clusters, Some(3));
    let s3 = results.samples.iter().find(|s| s.case_id == "c3").unwrap();
    assert_eq!(s3.error.as_deref(), Some("model unavailable"));
    assert!(s3.scores.is_empty());

    // Serial: never more than one in flight.
    max_seen.store(0, Ordering::SeqCst);
    Evaluator::new()
        .add_metric("num", NumericDiff::within(0.0).unwrap())
        .concurrency(1)
        .evaluate(&target, &ds)
        .await
        .unwrap();
    assert_eq!(max_seen.load(Ordering::SeqCst), 1);
}

/// A custom metric: half credit for odd inputs, unscored for input 0.
struct Half;
#[async_trait]
impl Metric for Half {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        match sample.case.input.as_u64() {
            Some(0) => Outcome::unscored("nothing to judge"),
            Some(i) if i % 2 == 1 => Score::new(0.5).unwrap().with_reason("odd").into(),
            _ => Score::new(1.0).unwrap().into(),
        }
    }
}

#[tokio::test]
async fn weights_thresholds_and_gates() {
    let target = |input: Value| async move { Ok::<_, String>(json!(input.as_u64().unwrap() * 2)) };
    let ds = dataset(5);
    let ev = || {
        Evaluator::new()
            .add_metric("num", NumericDiff::within(0.0).unwrap())
            .add_metric("half", Half)
            .weight("half", 3.0)
            .pass_threshold("half", 0.75)
    };
    let results = ev()
        .gate_mean("num", 1.0)
        .gate_pass_rate("half", 0.5)
        .evaluate(&target, &ds)
        .await
        .unwrap();
    // half: inputs 1..4 scored (0 unscored): 0.5, 1, 0.5, 1 → mean 0.75, pass rate 2/4.
    let half = results.metric("half").unwrap();
    assert_eq!(
        (half.mean, half.pass_rate, half.unscored),
        (Some(0.75), Some(0.5), 1)
    );
    // Overall for input 1: (1·1 + 3·0.5) / 4 = 0.625; for input 0 only num scored: 1.
    let s1 = &results.samples[1];
    assert_eq!(s1.scores["overall"].value, Some(0.625));
    assert_eq!(results.samples[0].scores["overall"].value, Some(1.0));
    assert!(results.passed());
    assert_eq!(results.gates.len(), 2);

    let failing = ev()
        .gate_pass_rate("half", 0.6)
        .evaluate(&target, &ds)
        .await
        .unwrap();
    assert!(!failing.passed());
    assert_eq!(failing.gates[0].actual, Some(0.5));

    // Configuration errors surface from evaluate.
    for bad in [
        ev().weight("half", 0.0),
        ev().pass_threshold("nope", 0.5),
        ev().gate_mean("num", 1.5),
        ev().add_metric("num", Exact::new()),
        ev().concurrency(0),
        Evaluator::new(),
    ] {
        let e = bad.evaluate(&target, &ds).await.unwrap_err();
        assert!(matches!(e, EvalError::Config(_)), "{e:?}");
    }
}

/// A model that always answers `answer`.
struct Fixed(&'static str);
#[async_trait]
impl LanguageModel for Fixed {
    async fn generate(&self, _req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        Ok(ModelResponse {
            content: vec![ContentPart::text(self.0)],
            finish_reason: FinishReason::Stop,
            raw_finish_reason: None,
            usage: Usage::default(),
            cost_usd: None,
            response_id: None,
            request_id: None,
            model: None,
        })
    }
    async fn stream(&self, _req: &ModelRequest) -> Result<EventStream, ModelError> {
        Err(ModelError::Unsupported("no streaming".into()))
    }
}

#[tokio::test]
async fn agent_and_workflow_targets() {
    let ds = Dataset::from_cases(
        "ops",
        [
            Case::new("a", "what now?").expected("deploy"),
            Case::new("b", "and now?").expected("wait"),
        ],
    )
    .unwrap();
    let agent = Agent::new("ops").model(Arc::new(Fixed("deploy")) as Arc<dyn LanguageModel>);
    let results = Evaluator::new()
        .add_metric("exact", Exact::new())
        .evaluate(&agent, &ds)
        .await
        .unwrap();
    assert_eq!(results.samples[0].output, Some(json!("deploy")));
    assert_eq!(results.metric("exact").unwrap().mean, Some(0.5));

    let wf = Workflow::new("shout")
        .step(
            "upper",
            step_fn(|_ctx, input: Value| async move {
                Ok(json!(input.as_str().unwrap_or_default().to_uppercase()))
            }),
        )
        .commit()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let target = WorkflowTarget::new(engine, wf);
    let ds = Dataset::from_cases("shout", [Case::new("x", "deploy").expected("DEPLOY")]).unwrap();
    let results = Evaluator::new()
        .add_metric("exact", Exact::new())
        .evaluate(&target, &ds)
        .await
        .unwrap();
    assert_eq!(results.metric("exact").unwrap().mean, Some(1.0));
}

#[tokio::test]
async fn compare_finds_a_regression_and_reports_it() {
    // 60 cases; A answers every one right; B gets every 4th wrong (15 regressions, no
    // improvement): McNemar exact/χ² on 15 vs 0 is significant → worse.
    let ds = dataset(60);
    let a = |input: Value| async move { Ok::<_, String>(json!(input.as_u64().unwrap() * 2)) };
    let b = |input: Value| async move {
        let i = input.as_u64().unwrap();
        Ok::<_, String>(json!(if i.is_multiple_of(4) {
            i * 2 + 1
        } else {
            i * 2
        }))
    };
    let ev = Evaluator::new()
        .add_metric("num", NumericDiff::within(0.0).unwrap())
        .add_metric("close", NumericDiff::relative());
    let ra = ev.evaluate(&a, &ds).await.unwrap();
    let rb = ev.evaluate(&b, &ds).await.unwrap();
    let cmp = Evaluator::compare(&ra, &rb).unwrap();
    let num = cmp.metric("num").unwrap();
    assert_eq!(num.verdict, Verdict::Worse);
    let m = num.mcnemar.unwrap();
    assert_eq!((m.a_only, m.b_only), (15, 0));
    assert_eq!(
        (num.paired.wins, num.paired.losses, num.paired.ties),
        (0, 15, 45)
    );
    assert_eq!(num.regressed.len(), 15);
    assert_eq!(num.regressed[0].case_id, "c0");
    assert!((num.paired.mean_diff + 0.25).abs() < 1e-12);
    assert!(num.paired.ci_bootstrap.unwrap().high < 0.0);
    assert!(cmp.has_significant_regression());
    // A continuous metric gets no McNemar; c0 (expected 0, output 1) scores 0 in B.
    let close = cmp.metric("close").unwrap();
    assert!(close.mcnemar.is_none());
    // Same runs against themselves: no difference.
    let same = Evaluator::compare(&ra, &ra).unwrap();
    assert_eq!(
        same.metric("num").unwrap().verdict,
        Verdict::NoDetectableDifference
    );
    assert!(!same.has_significant_regression());

    // A stored baseline: the JSON report read back compares the same.
    let baseline = EvalResults::from_json(&ra.to_json()).unwrap();
    assert_eq!(baseline, ra);
    assert_eq!(Evaluator::compare(&baseline, &rb).unwrap(), cmp);

    let md = cmp.to_markdown();
    assert!(md.contains("significant regression"), "{md}");
    assert!(md.contains("| num |") && md.contains("worse"), "{md}");
    assert!(md.contains("`c0`"), "{md}");
    let back = miyabi::eval::Comparison::from_json(&cmp.to_json()).unwrap();
    assert_eq!(back, cmp);

    let other = Dataset::from_cases("x", [Case::new("zzz", 1)]).unwrap();
    let rz = ev.evaluate(&a, &other).await.unwrap();
    assert!(matches!(
        Evaluator::compare(&ra, &rz),
        Err(EvalError::Compare(_))
    ));
}

#[tokio::test]
async fn json_junit_and_markdown_reports() {
    let target = |input: Value| async move {
        match input.as_str().unwrap() {
            "boom" => Err("backend <down> & \u{1}".to_string()),
            s => Ok(json!(s)),
        }
    };
    let ds = Dataset::from_cases(
        "r&d",
        [
            Case::new("ok", "deploy").expected("deploy"),
            Case::new("bad \"one\"", "nope").expected("deploy"),
            Case::new("err", "boom").expected("deploy"),
            Case::new("skip", "deploy"),
        ],
    )
    .unwrap();
    let results = Evaluator::new()
        .name("suite<1>")
        .add_metric("exact", Exact::new())
        .gate_pass_rate("exact", 0.9)
        .evaluate(&target, &ds)
        .await
        .unwrap();
    assert!(!results.passed());

    // JSON: versioned, parses back; another version is refused.
    let json = results.to_json();
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema"], SCHEMA);
    assert_eq!(v["metrics"][0]["name"], "exact");
    assert_eq!(v["samples"][1]["scores"]["exact"]["passed"], false);
    assert_eq!(EvalResults::from_json(&json).unwrap(), results);
    let other = json.replace("miyabi.eval/v1", "miyabi.eval/v9");
    assert!(matches!(
        EvalResults::from_json(&other),
        Err(EvalError::Report(_))
    ));

    // JUnit: well-formed XML; failures and errors apart.
    let xml = results.to_junit();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut suites = Vec::new();
    let mut failures = Vec::new();
    let mut errors = Vec::new();
    let mut skipped = 0;
    let mut testcases = 0;
    loop {
        use quick_xml::events::Event;
        match reader.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) => {
                let attr = |name: &str| {
                    e.attributes()
                        .map(|a| a.unwrap())
                        .find(|a| a.key.as_ref() == name)
                        .map(|a| {
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .unwrap()
                                .into_owned()
                        })
                };
                match e.name().as_ref() {
                    "testsuite" => suites.push((
                        attr("name").unwrap(),
                        attr("tests").unwrap(),
                        attr("failures").unwrap(),
                        attr("errors").unwrap(),
                        attr("skipped").unwrap(),
                    )),
                    "testcase" => testcases += 1,
                    "failure" => failures.push(attr("message").unwrap()),
                    "error" => errors.push(attr("message").unwrap()),
                    "skipped" => skipped += 1,
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(suites.len(), 2);
    assert_eq!(suites[0].0, "suite<1> (r&d)");
    assert_eq!(
        (
            suites[0].1.as_str(),
            suites[0].2.as_str(),
            suites[0].3.as_str(),
            suites[0].4.as_str()
        ),
        ("4", "1", "1", "1")
    );
    assert_eq!(testcases, 5, "4 cases + 1 gate");
    assert_eq!(errors, vec!["backend <down> & \u{FFFD}".to_string()]);
    assert_eq!(
        failures.len(),
        2,
        "one metric failure, one gate: {failures:?}"
    );
    assert!(
        failures[1].contains("exact pass rate >= 0.9"),
        "{failures:?}"
    );
    assert_eq!(skipped, 1);

    let md = results.to_markdown();
    assert!(md.contains("❌ failed"), "{md}");
    assert!(md.contains("| exact |"), "{md}");
    assert!(md.contains("`err` — error: backend <down>"), "{md}");
    assert!(md.contains("`bad \"one\"` — exact 0.000"), "{md}");
}

#[test]
fn a_hostile_latency_in_a_results_file_does_not_panic() {
    let s: miyabi::eval::SampleResult = serde_json::from_value(serde_json::json!({
        "case_id": "c", "epoch": 0, "latency_ms": 1e300, "scores": {}
    }))
    .unwrap();
    assert_eq!(s.latency(), std::time::Duration::MAX);
    let neg: miyabi::eval::SampleResult = serde_json::from_value(serde_json::json!({
        "case_id": "c", "epoch": 0, "latency_ms": -5.0, "scores": {}
    }))
    .unwrap();
    assert_eq!(neg.latency(), std::time::Duration::ZERO);
}

/// The README's Rust evaluation example is the program docs/evals.md runs as a doc test.
#[test]
fn readme_shows_the_doc_tested_evaluation_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme
        .find("## Evaluation")
        .expect("README has ## Evaluation")..];
    let start = section
        .find("```rust\n")
        .expect("a ```rust block under ## Evaluation");
    let end = section[start + 8..].find("```\n").unwrap() + start + 8;
    let block = &section[start..end + 4];
    assert!(block.contains("Evaluator::new()") && block.contains("fn main()"));
    let evals = std::fs::read_to_string(root.join("docs").join("evals.md")).unwrap();
    assert!(
        evals.contains(block),
        "docs/evals.md (whose Rust examples run as doc tests) holds README's example:\n{block}"
    );
}
