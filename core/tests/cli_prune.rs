//! `miyabi runs prune` deletes finished runs and keeps suspended ones, which still resume.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};

use miyabi::{Engine, RunFilter, RunStatus, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

fn miyabi(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_miyabi"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("MIYABI_DB")
        .env_remove("MIYABI_TOKENS")
        .output()
        .unwrap()
}

#[tokio::test]
async fn runs_prune_keeps_suspended_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let engine = Engine::sqlite(&db).unwrap();
    let greet = Workflow::new("greet")
        .step(
            "hello",
            step_fn(|_ctx: StepContext, v: Value| async move { Ok(json!({ "hello": v })) }),
        )
        .commit()
        .unwrap();
    let review = Workflow::new("approve")
        .step(
            "review",
            step_fn(|ctx: StepContext, v: Value| async move {
                match ctx.resume_data() {
                    Some(d) => Ok(json!({ "doc": v, "ok": d })),
                    None => ctx.suspend(json!({ "question": "ok?" })),
                }
            }),
        )
        .commit()
        .unwrap();
    let mut done = Vec::new();
    for i in 0..4 {
        done.push(engine.start(&greet, json!(i)).await.unwrap().id);
    }
    let waiting = engine.start(&review, json!("doc")).await.unwrap().id;

    // A rule is required.
    let o = miyabi(&db, &["runs", "prune"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--keep-last") && err.contains("[INVALID_ARGUMENT]"),
        "{err}"
    );
    // Engine errors carry the code the HTTP API and Node report.
    let o = miyabi(&db, &["runs", "cancel", "nope"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("[NOT_FOUND]"));
    // A bad age names itself.
    let o = miyabi(&db, &["runs", "prune", "--older-than", "soon"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--older-than"));

    // Nothing ended a day ago.
    let o = miyabi(&db, &["runs", "prune", "--older-than", "1day", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["deleted"], 0);

    let o = miyabi(
        &db,
        &["runs", "prune", "--keep-last", "1", "--workflow", "greet"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "deleted 3 finished run(s)"
    );
    let left: Vec<String> = engine
        .store()
        .list_runs(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, [waiting.clone(), done[3].clone()]);

    let o = miyabi(&db, &["runs", "prune", "--keep-last", "0"]);
    assert!(o.status.success());
    let run = engine
        .resume(&waiting, "review", json!(true))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
}
