//! `miyabi eval run` and `miyabi eval compare` through the built binary: suite files with a
//! command target, deterministic metrics and an LLM judge on a loopback replay server, the
//! reports it writes (JSON, JUnit, Markdown, HTML) and its exit codes (0 / 100 / 1).
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod eval_support;

use std::path::Path;
use std::process::{Command, Output};

use eval_support::{Replay, completion};
use serde_json::{Value, json};

fn miyabi(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_miyabi"))
        .current_dir(dir)
        .args(args)
        .env_remove("MIYABI_DB")
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Twelve cases: "ship N" expects deploy, "undo N" expects rollback.
fn write_dataset(dir: &Path) {
    let mut lines = String::new();
    for i in 0..12u32 {
        let (input, expected) = if i.is_multiple_of(2) {
            (format!("ship {i}"), "deploy")
        } else {
            (format!("undo {i}"), "rollback")
        };
        lines.push_str(
            &json!({"id": format!("c{i}"), "input": input, "expected": expected}).to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(dir.join("cases.jsonl"), lines).unwrap();
}

/// A command target: right on every case, or (`wrong`) always "deploy".
fn suite(dir: &Path, file: &str, wrong: bool, gate: f64, extra: &str) {
    let script = if wrong {
        r#"cat >/dev/null; echo '"deploy"'"#
    } else {
        r#"input=$(cat); case "$input" in *ship*) echo '"deploy"';; *) echo '"rollback"';; esac"#
    };
    let yaml = format!(
        "name: deploys\ndataset: cases.jsonl\ntarget:\n  command: [\"sh\", \"-c\", {script:?}]\n\
concurrency: 4\nmetrics:\n  - type: exact\n    gate: {{ pass_rate: {gate} }}\n  - name: has-word\n    type: contains\n    any: [\"deploy\", \"rollback\"]\n{extra}"
    );
    std::fs::write(dir.join(file), yaml).unwrap();
}

#[test]
fn run_writes_every_report_and_exits_by_the_gates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_dataset(d);
    suite(d, "good.yaml", false, 0.9, "");
    let o = miyabi(
        d,
        &[
            "eval",
            "run",
            "good.yaml",
            "--output",
            "out/r.json",
            "--junit",
            "out/r.xml",
            "--markdown",
            "out/r.md",
            "--html",
            "out/r.html",
        ],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("## Eval `deploys` — ✅ passed"), "{stdout}");

    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/r.json")).unwrap()).unwrap();
    assert_eq!(r["schema"], "miyabi.eval/v1");
    assert_eq!(r["cases"], 12);
    assert_eq!(r["metrics"][0]["mean"], 1.0);
    assert_eq!(r["samples"][0]["output"], "deploy");

    // JUnit: well-formed XML with a case suite and a gate suite.
    let xml = std::fs::read_to_string(d.join("out/r.xml")).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut suites = 0;
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) if e.name().0 == "testsuite" => suites += 1,
            _ => {}
        }
    }
    assert_eq!(suites, 2);
    assert_eq!(std::fs::read_to_string(d.join("out/r.md")).unwrap(), stdout);

    // HTML: one self-contained file with charts, no script, nothing loaded from elsewhere.
    let html = std::fs::read_to_string(d.join("out/r.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg class=\"hist\""));
    assert!(html.contains("c11"));
    for banned in ["<script", " src=", "<link", "@import", "url("] {
        assert!(!html.contains(banned), "{banned} in the HTML report");
    }

    // The same suite with a gate it cannot meet: exit 100.
    suite(d, "strict.yaml", true, 0.9, "");
    let o = miyabi(d, &["eval", "run", "strict.yaml", "--json"]);
    assert_eq!(code(&o), 100, "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["passed"], false);
    assert_eq!(r["metrics"][0]["pass_rate"], 0.5);
}

#[test]
fn a_durable_run_is_stored_in_the_run_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_dataset(d);
    suite(d, "good.yaml", false, 0.9, "");
    let o = miyabi(
        d,
        &[
            "--db",
            "runs.db",
            "eval",
            "run",
            "good.yaml",
            "--durable",
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["metrics"][0]["mean"], 1.0);
    let o = miyabi(d, &["--db", "runs.db", "runs", "list", "--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let runs: Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["workflow"], "eval.deploys");
    assert_eq!(runs[0]["status"], "succeeded");
    // Without --durable nothing is written to a database.
    let o = miyabi(d, &["--db", "other.db", "eval", "run", "good.yaml"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!d.join("other.db").exists());
}

#[test]
fn bad_suites_and_missing_files_exit_1_naming_what_was_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_dataset(d);
    std::fs::write(
        d.join("bad.yaml"),
        "dataset: cases.jsonl\ntarget: { command: [\"cat\"] }\nmetrics:\n  - type: exact\n  - { name: fuzzy, type: levenshtien }\n",
    )
    .unwrap();
    let o = miyabi(d, &["eval", "run", "bad.yaml"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(err.contains("metrics[1] (fuzzy)"), "{err}");
    assert!(err.contains("unknown metric type \"levenshtien\""), "{err}");

    std::fs::write(
        d.join("param.yaml"),
        "dataset: cases.jsonl\ntarget: { command: [\"cat\"] }\nmetrics:\n  - { type: exact, trimm: true }\n",
    )
    .unwrap();
    let o = miyabi(d, &["eval", "run", "param.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown parameter `trimm`"),
        "{}",
        text(&o)
    );

    std::fs::write(
        d.join("judge.yaml"),
        "dataset: cases.jsonl\ntarget: { command: [\"cat\"] }\nmetrics:\n  - { type: rubric, criteria: x }\n",
    )
    .unwrap();
    let o = miyabi(d, &["eval", "run", "judge.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs a `judge:` model"),
        "{}",
        text(&o)
    );

    // A finite number too large for a duration is an error, not a panic.
    std::fs::write(
        d.join("huge.yaml"),
        "dataset: cases.jsonl\ntarget: { command: [\"cat\"] }\nmetrics:\n  - { type: latency, max_ms: 1e300 }\n",
    )
    .unwrap();
    let o = miyabi(d, &["eval", "run", "huge.yaml"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("too large for a duration"),
        "{}",
        text(&o)
    );

    std::fs::write(d.join("yaml.yaml"), "dataset: [unclosed\n").unwrap();
    let o = miyabi(d, &["eval", "run", "yaml.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("yaml.yaml: line"),
        "{}",
        text(&o)
    );

    // A target that cannot run at all is an infrastructure error, not a failed gate.
    std::fs::write(
        d.join("broken.yaml"),
        "dataset: cases.jsonl\ntarget: { command: [\"sh\", \"-c\", \"echo boom >&2; exit 3\"] }\nmetrics:\n  - type: exact\n",
    )
    .unwrap();
    let o = miyabi(
        d,
        &["eval", "run", "broken.yaml", "--output", "broken.json"],
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("failed on every sample (12)") && err.contains("boom"),
        "{err}"
    );
    assert!(
        d.join("broken.json").exists(),
        "the reports are still written"
    );

    let o = miyabi(d, &["eval", "run", "nope.yaml"]);
    assert_eq!(code(&o), 1);
    let o = miyabi(d, &["eval", "compare", "a.json", "b.json"]);
    assert_eq!(code(&o), 1);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("a.json"),
        "{}",
        text(&o)
    );
}

#[test]
fn compare_and_baseline_exit_100_on_a_significant_regression() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_dataset(d);
    suite(d, "a.yaml", false, 0.0, "");
    suite(d, "b.yaml", true, 0.0, "");
    let o = miyabi(d, &["eval", "run", "a.yaml", "--output", "a.json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = miyabi(d, &["eval", "run", "b.yaml", "--output", "b.json"]);
    assert_eq!(code(&o), 0, "no gate fails on its own: {}", text(&o));

    // A vs itself: no regression.
    let o = miyabi(d, &["eval", "compare", "a.json", "a.json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    // B lost 6 of 12 exact matches, all one way: McNemar p = 2 / 2^6 ≈ 0.03.
    let o = miyabi(
        d,
        &[
            "eval", "compare", "a.json", "b.json", "--html", "ab.html", "--output", "ab.json",
        ],
    );
    assert_eq!(code(&o), 100, "{}", text(&o));
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(md.contains("significant regression"), "{md}");
    assert!(md.contains("`c1`: 1.000 → 0.000"), "{md}");
    let html = std::fs::read_to_string(d.join("ab.html")).unwrap();
    assert!(html.contains("<svg class=\"deltas\""));
    assert!(html.contains("Regressed cases (6)"));
    let cmp: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("ab.json")).unwrap()).unwrap();
    assert_eq!(cmp["schema"], "miyabi.eval.compare/v1");
    assert_eq!(cmp["metrics"][0]["verdict"], "worse");
    // B better than A: not a regression.
    let o = miyabi(d, &["eval", "compare", "b.json", "a.json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));

    // The suite's baseline (or --baseline) gates the run itself.
    suite(d, "b-vs-a.yaml", true, 0.0, "baseline: a.json\n");
    let o = miyabi(d, &["eval", "run", "b-vs-a.yaml"]);
    assert_eq!(code(&o), 100, "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("## A/B"));
    let o = miyabi(d, &["eval", "run", "a.yaml", "--baseline", "b.json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judge_suite_uses_the_cache_file_on_a_rerun() {
    let server = Replay::start(|_, body| {
        let user = body["messages"][1]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let score = if user.contains("OUTPUT:\ndeploy") {
            5
        } else {
            2
        };
        (
            200,
            completion(
                &json!({"score": score, "reason": "judged"}).to_string(),
                "stop",
            ),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    write_dataset(&d);
    let extra = format!(
        "judge:\n  model: replay/judge-1\n  base_url: {}\n  protocol: openai-chat\n  cache: .cache/judge.db\n\
  \n",
        server.url
    );
    let yaml = format!(
        "name: judged\ndataset: cases.jsonl\ntarget:\n  command: [\"sh\", \"-c\", \"input=$(cat); case \\\"$input\\\" in *ship*) echo deploy;; *) echo rollback;; esac\"]\n\
{extra}metrics:\n  - name: quality\n    type: rubric\n    criteria: Says deploy\n    gate: {{ mean: 0.5 }}\n"
    );
    std::fs::write(d.join("judged.yaml"), yaml).unwrap();
    let run = {
        let d = d.clone();
        move || {
            let d = d.clone();
            tokio::task::spawn_blocking(move || {
                miyabi(&d, &["eval", "run", "judged.yaml", "--json"])
            })
        }
    };
    let o = run().await.unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    // 6 × 1.0 (score 5) and 6 × 0.25 (score 2).
    assert_eq!(r["metrics"][0]["mean"], 0.625);
    assert_eq!(server.calls(), 12);
    assert!(d.join(".cache/judge.db").exists());
    let o = run().await.unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        server.calls(),
        12,
        "the rerun is answered from the cache file"
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["metrics"][0]["mean"], 0.625);
    assert_eq!(
        r["samples"][0]["scores"]["quality"]["metadata"]["judge_cached"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_target_with_a_response_cache_replays_on_a_rerun() {
    let server = Replay::start(|_, body| {
        let user = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_string();
        let answer = if user.contains("ship") {
            "deploy"
        } else {
            "rollback"
        };
        (200, completion(answer, "stop"))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    write_dataset(&d);
    let yaml = format!(
        "name: modelled\ndataset: cases.jsonl\ntarget:\n  model: replay/agent-1\n  base_url: {}\n  protocol: openai-chat\n  system: Answer deploy or rollback.\n  prompt: \"Request: {{{{input}}}}\"\n  cache: .cache/responses.db\nmetrics:\n  - type: exact\n    gate: {{ pass_rate: 1.0 }}\n  - {{ type: latency, max_ms: 600000 }}\n",
        server.url
    );
    std::fs::write(d.join("modelled.yaml"), yaml).unwrap();
    let run = || {
        let d = d.clone();
        tokio::task::spawn_blocking(move || miyabi(&d, &["eval", "run", "modelled.yaml", "--json"]))
    };
    let o = run().await.unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(server.calls(), 12);
    assert!(
        server.requests()[0]
            .text_of("user")
            .starts_with("Request: ")
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["samples"][0]["trace"]["turns"], 1);
    assert!(r["samples"][0].get("cached").is_none());
    let o = run().await.unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        server.calls(),
        12,
        "the rerun is answered from the response cache"
    );
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["samples"][0]["cached"], true);
    assert!(
        r["samples"][0]["scores"]["latency"]["unscored"]
            .as_str()
            .unwrap()
            .contains("cached sample")
    );
}
