//! Every preset has an eval suite (agents/evals/<preset>.json, docs/evals.md's format) that
//! loads, whose schema metric is the preset's current output schema; two suites run end to
//! end through `miyabi-run agent` with a replayed model.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miyabi::eval::{CommandTarget, Suite};
use serde_json::{Value, json};

fn evals() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("evals")
}

#[test]
fn every_preset_has_a_suite_that_loads_and_matches_its_schema() {
    for p in miyabi_agents::catalog() {
        let path = evals().join(format!("{}.json", p.name));
        let suite = Suite::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            suite.dataset.cases().len() >= 3,
            "{}: a handful of cases",
            p.name
        );
        let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if let Some(schema) = raw["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["type"] == "json_schema")
        {
            assert_eq!(
                schema["schema"], p.output_schema,
                "{}: the suite's schema is stale",
                p.name
            );
        }
    }
}

fn replay_file(dir: &Path, script: Value) -> PathBuf {
    let path = dir.join("replay.json");
    std::fs::write(&path, script.to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_issue_suite_runs_through_miyabi_run() {
    let dir = tempfile::tempdir().unwrap();
    let answer = |kind: &str, label: &str| {
        json!([{"json": {"kind": kind, "priority": "P2", "severity": "medium", "labels": [label],
                         "summary": "s", "affected_files": [], "acceptance": []}}])
    };
    let script = replay_file(
        dir.path(),
        json!({
            "IssueAgent|crashes": answer("bug", "type:bug"),
            "IssueAgent|CSV export": answer("feature", "type:feature"),
            "IssueAgent|password": answer("security", "type:security"),
        }),
    );
    let mut suite = Suite::load(evals().join("issue.json")).unwrap();
    suite.target = Arc::new(
        CommandTarget::new(vec![
            env!("CARGO_BIN_EXE_miyabi-run").into(),
            "agent".into(),
            "issue".into(),
            "--replay".into(),
            script.display().to_string(),
        ])
        .unwrap(),
    );
    let outcome = suite.run().await.unwrap();
    assert!(outcome.passed(), "{:#?}", outcome.results.metrics);
    assert_eq!(outcome.results.samples.len(), 3);
    assert!(outcome.results.samples.iter().all(|s| s.error.is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_codegen_suite_checks_the_repository_after_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let script = replay_file(
        dir.path(),
        json!({
            "CodeGenAgent": [
                {"calls": [{"name": "edit", "arguments": {"path": "calc.sh", "old_string": "$(($1 - $2))", "new_string": "$(($1 + $2))"}}]},
                {"json": {"summary": "adds", "files_changed": ["calc.sh"], "tests_changed": false}}
            ]
        }),
    );
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_miyabi-run"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The suite's own target (sh repo-target.sh codegen), with the binary on PATH and the replay.
    let mut suite = Suite::load(evals().join("codegen.json")).unwrap();
    suite.target = Arc::new(
        CommandTarget::new(vec![
            "sh".into(),
            "-c".into(),
            format!(
                "PATH='{path}' MIYABI_RUN_REPLAY='{}' sh '{}' codegen",
                script.display(),
                evals().join("repo-target.sh").display()
            ),
        ])
        .unwrap(),
    );
    let outcome = suite.run().await.unwrap();
    assert!(outcome.passed(), "{:#?}", outcome.results.samples);
    for s in &outcome.results.samples {
        assert_eq!(s.output.as_ref().unwrap()["test_passed"], true);
    }
}

#[test]
fn presets_json_is_the_catalog() {
    // agents/presets.json: the presets as data for other languages (`miyabi run presets`).
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("presets.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        file,
        serde_json::to_value(miyabi_agents::catalog()).unwrap(),
        "regenerate with: miyabi run presets > agents/presets.json"
    );
}
