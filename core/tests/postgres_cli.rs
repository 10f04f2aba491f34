//! The `miyabi` CLI on a Postgres database (`--db postgres://…`): listing and cancelling runs
//! another process stored, and messages that never show the URL's password. Needs
//! `MIYABI_TEST_POSTGRES_URL`; skips without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use miyabi::{Engine, RunStatus, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

fn miyabi(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_miyabi"))
        .args(["--db", db])
        .args(args)
        .env_remove("MIYABI_DB")
        .env_remove("MIYABI_TOKENS")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_list_and_cancel_on_postgres() {
    let Ok(base) = std::env::var("MIYABI_TEST_POSTGRES_URL") else {
        eprintln!("skipped: MIYABI_TEST_POSTGRES_URL not set");
        return;
    };
    // A database of its own (the CLI uses the default schema), reached with a password that
    // the server (trust authentication on the test cluster) ignores: it must never be shown.
    let name = format!("miyabi_cli_{}", std::process::id());
    let admin = base.clone();
    let setup = name.clone();
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {setup}"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {setup}"))
            .unwrap();
    })
    .join()
    .unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    let url = format!("{head}/{name}").replacen("://miyabi@", "://miyabi:hunter2@", 1);

    let engine = Engine::postgres(&url).unwrap();
    let echo = step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) });
    let greet = Workflow::new("greet").step("hello", echo).commit().unwrap();
    let review = step_fn(|ctx: StepContext, _v: Value| async move {
        ctx.suspend::<Value>(json!({ "question": "ok?" }))
    });
    let approve = Workflow::new("approve")
        .step("review", review)
        .commit()
        .unwrap();
    let done = engine.start(&greet, json!(1)).await.unwrap().id;
    let waiting = engine.start(&approve, json!("doc")).await.unwrap().id;

    let out = miyabi(&url, &["runs", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![waiting.as_str(), done.as_str()]);

    let out = miyabi(&url, &["runs", "cancel", &waiting]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = engine.get(&waiting).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);

    // A server that cannot be reached: the error names the database, not the password.
    let bad = url.replace(&format!("/{name}"), "/no_such_database_here");
    let out = miyabi(&bad, &["runs", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no_such_database_here"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    drop(engine);
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&base, postgres::NoTls).unwrap();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
    })
    .join()
    .unwrap();
}
