//! The built-in metrics against known values, through the public API.
#![cfg(feature = "eval")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use miyabi::eval::metrics::{
    Bleu, Contains, Exact, JsonDiff, JsonSchema, Levenshtein, NumericDiff, Regex, RougeL,
    ValidJson, levenshtein, tokenize,
};
use miyabi::eval::{Case, Metric, Outcome, Sample, Score};
use serde_json::{Value, json};

async fn run(metric: &dyn Metric, case: &Case, output: Value) -> Outcome {
    let sample = Sample::new(case, &output);
    metric.score(&sample).await
}

async fn value(metric: &dyn Metric, expected: Option<Value>, output: Value) -> f64 {
    let mut case = Case::new("c", "in");
    case.expected = expected;
    match run(metric, &case, output).await {
        Outcome::Scored(s) => s.value(),
        Outcome::Unscored { reason } => panic!("unscored: {reason}"),
    }
}

async fn unscored(metric: &dyn Metric, expected: Option<Value>, output: Value) -> String {
    let mut case = Case::new("c", "in");
    case.expected = expected;
    match run(metric, &case, output).await {
        Outcome::Unscored { reason } => reason,
        other => panic!("expected unscored, got {other:?}"),
    }
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn scores_are_finite_and_in_range() {
    assert!(Score::new(f64::NAN).is_err());
    assert!(Score::new(1.01).is_err());
    assert!(Score::new(-0.0).is_ok());
    assert!(matches!(
        Outcome::from_value(f64::INFINITY, "x"),
        Outcome::Unscored { .. }
    ));
}

#[tokio::test]
async fn exact() {
    let m = Exact::new();
    close(value(&m, Some(json!("deploy")), json!("deploy")).await, 1.0);
    close(
        value(&m, Some(json!("deploy")), json!("Deploy ")).await,
        0.0,
    );
    close(
        value(
            &Exact::new().trim().ignore_case(),
            Some(json!("deploy")),
            json!(" Deploy "),
        )
        .await,
        1.0,
    );
    close(
        value(&m, Some(json!({"a": [1, 2]})), json!({"a": [1, 2]})).await,
        1.0,
    );
    close(value(&m, Some(json!(4)), json!("4")).await, 0.0);
    assert!(unscored(&m, None, json!("x")).await.contains("no expected"));
}

#[tokio::test]
async fn contains_any_all_case_insensitive() {
    close(
        value(
            &Contains::any(["deploy", "ship"]),
            None,
            json!("We DEPLOY now"),
        )
        .await,
        1.0,
    );
    close(
        value(&Contains::any(["deploy"]), None, json!("we wait")).await,
        0.0,
    );
    close(
        value(
            &Contains::any(["deploy"]).case_sensitive(),
            None,
            json!("DEPLOY"),
        )
        .await,
        0.0,
    );
    // all: the fraction found, 2 of 3.
    close(
        value(&Contains::all(["a", "b", "z"]), None, json!("A b c")).await,
        2.0 / 3.0,
    );
    close(
        value(&Contains::all(["a", "b"]), None, json!("a b")).await,
        1.0,
    );
    // Against the expected text (any reference).
    close(
        value(
            &Contains::expected(),
            Some(json!(["x", "deploy"])),
            json!("deploy!"),
        )
        .await,
        1.0,
    );
    assert!(
        !unscored(&Contains::expected(), None, json!("x"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn regex() {
    let m = Regex::new(r"^\d{3}-\d{4}$").unwrap();
    close(value(&m, None, json!("555-1234")).await, 1.0);
    close(value(&m, None, json!("555-12345")).await, 0.0);
    assert!(Regex::new("(").is_err());
}

#[tokio::test]
async fn valid_json_and_schema() {
    close(
        value(&ValidJson::new(), None, json!("{\"a\": 1}")).await,
        1.0,
    );
    close(
        value(&ValidJson::new(), None, json!("```json\n{\"a\": 1}\n```")).await,
        1.0,
    );
    close(value(&ValidJson::new(), None, json!("{a: 1}")).await, 0.0);
    close(
        value(&ValidJson::new(), None, json!({"already": "json"})).await,
        1.0,
    );
    let schema = JsonSchema::new(&json!({
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}
    }))
    .unwrap();
    close(
        value(&schema, None, json!("{\"name\": \"x\", \"age\": 3}")).await,
        1.0,
    );
    let case = Case::new("c", "in");
    let out = run(&schema, &case, json!({"age": "3"})).await;
    let s = out.score().unwrap();
    assert_eq!(s.value(), 0.0);
    let reason = s.reason.clone().unwrap();
    assert!(
        reason.contains("name") && reason.contains("/age"),
        "{reason}"
    );
    assert!(JsonSchema::new(&json!({"type": 12})).is_err());
}

#[tokio::test]
async fn json_diff() {
    // Expected leaves /a, /b/c, /b/d; output has /a (equal), /b/c (changed), /e (extra):
    // distinct paths = 3 expected + 1 extra = 4, equal = 1 → 0.25.
    let case = Case::new("c", "in").expected(json!({"a": 1, "b": {"c": 2, "d": 3}}));
    let out = run(
        &JsonDiff::new(),
        &case,
        json!({"a": 1, "b": {"c": 9}, "e": 0}),
    )
    .await;
    let s = out.score().unwrap();
    close(s.value(), 0.25);
    assert_eq!(s.metadata["missing"], json!(["/b/d"]));
    assert_eq!(s.metadata["changed"], json!(["/b/c"]));
    assert_eq!(s.metadata["extra"], json!(["/e"]));
    close(
        value(
            &JsonDiff::new(),
            Some(json!("{\"x\": [1, 2]}")),
            json!("{\"x\": [1, 2]}"),
        )
        .await,
        1.0,
    );
    close(
        value(&JsonDiff::new(), Some(json!({"x": 1})), json!("not json")).await,
        0.0,
    );
}

#[tokio::test]
async fn numeric_difference() {
    // Relative: 1 - |95 - 100| / 100 = 0.95.
    close(
        value(&NumericDiff::relative(), Some(json!(100)), json!(95)).await,
        0.95,
    );
    close(
        value(&NumericDiff::relative(), Some(json!(100)), json!(" 250 ")).await,
        0.0,
    );
    close(
        value(
            &NumericDiff::within(0.01).unwrap(),
            Some(json!(12.345)),
            json!("12.34"),
        )
        .await,
        1.0,
    );
    close(
        value(
            &NumericDiff::within(0.001).unwrap(),
            Some(json!(12.345)),
            json!(12.34),
        )
        .await,
        0.0,
    );
    close(
        value(&NumericDiff::relative(), Some(json!(1)), json!("n/a")).await,
        0.0,
    );
    assert!(
        unscored(&NumericDiff::relative(), Some(json!("many")), json!(1))
            .await
            .contains("not a number")
    );
    assert!(NumericDiff::within(f64::NAN).is_err());
}

#[tokio::test]
async fn levenshtein_similarity() {
    // kitten → sitting: substitute k→s, e→i, insert g = 3 edits; max length 7.
    assert_eq!(levenshtein("kitten", "sitting"), 3);
    assert_eq!(levenshtein("", "abc"), 3);
    assert_eq!(levenshtein("naïve", "naive"), 1);
    close(
        value(&Levenshtein::new(), Some(json!("sitting")), json!("kitten")).await,
        1.0 - 3.0 / 7.0,
    );
    close(
        value(&Levenshtein::new(), Some(json!("")), json!("")).await,
        1.0,
    );
}

#[tokio::test]
async fn bleu_textbook_values() {
    let t = |s: &str| tokenize(s);
    let reference = "the cat is on the mat";
    let cand = "the cat sat on the mat";
    // Candidate n-grams vs the reference (both 6 tokens, so the brevity penalty is 1):
    //   1-grams: the×2, cat, sat, on, mat → the(2), cat, on, mat match = 5/6
    //   2-grams: the cat ✓, cat sat, sat on, on the ✓, the mat ✓           = 3/5
    //   3-grams: the cat sat, cat sat on, sat on the, on the mat ✓          = 1/4
    //   4-grams: none of the 3 match                                         = 0/3
    // BLEU-2 = (5/6 · 3/5)^(1/2) = √0.5; BLEU-3 = (5/6 · 3/5 · 1/4)^(1/3) = 0.125^(1/3) = 0.5;
    // BLEU-4 = 0 unsmoothed; smoothed: (5/6 · 4/6 · 2/5 · 1/4)^(1/4) = (1/18)^(1/4).
    close(
        Bleu::new()
            .max_n(2)
            .unwrap()
            .compute(&t(cand), &[t(reference)]),
        0.5f64.sqrt(),
    );
    close(
        Bleu::new()
            .max_n(3)
            .unwrap()
            .compute(&t(cand), &[t(reference)]),
        0.5,
    );
    close(Bleu::new().compute(&t(cand), &[t(reference)]), 0.0);
    close(
        Bleu::new().smoothed().compute(&t(cand), &[t(reference)]),
        (1.0f64 / 18.0).powf(0.25),
    );
    // Papineni et al.'s clipping example: "the" ×7 against a reference with two "the": 2/7.
    close(
        Bleu::new()
            .max_n(1)
            .unwrap()
            .compute(&t("the the the the the the the"), &[t(reference)]),
        2.0 / 7.0,
    );
    // Brevity penalty: "the cat" (c = 2) against r = 6: p1 = 1, BP = e^(1 − 6/2) = e^−2.
    close(
        Bleu::new()
            .max_n(1)
            .unwrap()
            .compute(&t("the cat"), &[t(reference)]),
        (-2.0f64).exp(),
    );
    // Several references: the closest length and the highest clip count.
    close(
        Bleu::new()
            .max_n(1)
            .unwrap()
            .compute(&t("the cat"), &[t(reference), t("a cat")]),
        1.0,
    );
    // Through the Metric trait, with an `expected` array as references.
    close(
        value(
            &Bleu::new(),
            Some(json!([reference, "x"])),
            json!(reference),
        )
        .await,
        1.0,
    );
    assert!(Bleu::new().max_n(0).is_err());
}

#[tokio::test]
async fn rouge_l_textbook_values() {
    let t = |s: &str| tokenize(s);
    // Lin (2004): reference "police killed the gunman"; "police kill the gunman" has
    // LCS "police the gunman" = 3, P = R = 3/4 → F1 = 0.75; "the gunman kill police" has
    // LCS "the gunman" = 2 → 0.5.
    let r = RougeL::new();
    close(
        r.compute(&t("police kill the gunman"), &t("police killed the gunman")),
        0.75,
    );
    close(
        r.compute(&t("the gunman kill police"), &t("police killed the gunman")),
        0.5,
    );
    // LCS of "the cat sat on the mat" / "the cat is on the mat" = "the cat on the mat" = 5:
    // P = R = 5/6.
    close(
        r.compute(&t("the cat sat on the mat"), &t("The cat is on the mat.")),
        5.0 / 6.0,
    );
    // β = 2 with P = 1 (LCS 2 of candidate 2), R = 2/4: 5·1·0.5 / (0.5 + 4·1) = 2.5/4.5.
    close(
        RougeL::new()
            .beta(2.0)
            .unwrap()
            .compute(&t("police gunman"), &t("police killed the gunman")),
        2.5 / 4.5,
    );
    close(
        value(
            &r,
            Some(json!("police killed the gunman")),
            json!("police kill the gunman"),
        )
        .await,
        0.75,
    );
    assert!(unscored(&r, None, json!("x")).await.contains("no expected"));
    assert!(RougeL::new().beta(0.0).is_err());
}
