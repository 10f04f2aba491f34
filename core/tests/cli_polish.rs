//! The `miyabi` CLI's manners: no database created by a typo, RFC 3339 times, votes still
//! needed, host names in `--addr`, pretty `runs show`, required options in the usage line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use miyabi::approval::{ApprovalGate, Quorum};
use miyabi::{Engine, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

fn miyabi(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_miyabi"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("MIYABI_DB")
        .env_remove("MIYABI_TOKENS")
        .env_remove("MIYABI_ACCESS_FILE")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn commands_other_than_serve_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("rnus.db");
    for args in [
        &["runs", "list"][..],
        &["runs", "show", "x"],
        &["runs", "cancel", "x"],
        &["approvals", "list"],
        &["approve", "r", "g", "--as", "alice"],
        &["runs", "prune", "--keep-last", "1"],
    ] {
        let o = miyabi(&typo, args);
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("no database at"), "{args:?}: {err}");
        assert!(err.contains("rnus.db"), "{err}");
        assert!(!typo.exists(), "{args:?} created the file");
    }
}

#[tokio::test]
async fn times_are_rfc3339_show_is_pretty_and_approve_counts_votes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let run = {
        let engine = Engine::sqlite(&db).unwrap();
        let echo = step_fn(|_c: StepContext, v: Value| async move { Ok(v) });
        let wf = Workflow::new("two")
            .step("prep", echo)
            .await_approval(
                "review",
                ApprovalGate::new()
                    .approvers(["alice", "bob", "carol"])
                    .policy(Quorum(2)),
            )
            .commit()
            .unwrap();
        engine
            .start(&wf, json!({ "nested": { "list": [1, 2] } }))
            .await
            .unwrap()
            .id
    };
    let listed: Value =
        serde_json::from_str(&stdout(&miyabi(&db, &["runs", "list", "--json"]))).unwrap();
    let created = listed["runs"][0]["created_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        created.len() >= 20 && created.as_bytes()[10] == b'T' && created.ends_with('Z'),
        "{created}"
    );
    let table = stdout(&miyabi(&db, &["runs", "list"]));
    assert!(table.contains(&created[..19]), "{table}");
    // `runs show`: nested JSON over several indented lines.
    let shown = stdout(&miyabi(&db, &["runs", "show", &run]));
    assert!(shown.contains("\n              \"list\": ["), "{shown}");
    // Quorum 2: after alice, one more approval is needed; after bob, approved.
    let o = stdout(&miyabi(&db, &["approve", &run, "review", "--as", "alice"]));
    assert!(o.contains("1 more approval needed"), "{o}");
    let o: Value = serde_json::from_str(&stdout(&miyabi(
        &db,
        &["approve", &run, "review", "--as", "bob", "--json"],
    )))
    .unwrap();
    assert_eq!(o["votes_needed"], 0);
    assert_eq!(o["approval"]["status"], "approved");
    assert!(o["approval"]["decided_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn usage_names_required_options() {
    let o = Command::new(env!("CARGO_BIN_EXE_miyabi"))
        .args(["approve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("--as <WHO> <RUN> <GATE>"), "{help}");
}

#[test]
fn serve_accepts_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_miyabi"))
        .arg("--db")
        .arg(dir.path().join("runs.db"))
        .args(["serve", "--addr", "localhost:0"])
        .env_remove("MIYABI_TOKENS")
        .env_remove("MIYABI_ACCESS_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let addr = loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "serve ended: {seen:?}"
        );
        if let Some(rest) = line.trim_end().split(" on http://").nth(1) {
            break rest.to_string();
        }
        seen.push(line);
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let ip: std::net::SocketAddr = addr.parse().unwrap();
    assert!(ip.ip().is_loopback(), "{addr}");
    // A host name that does not resolve is an error naming it.
    let o = Command::new(env!("CARGO_BIN_EXE_miyabi"))
        .arg("--db")
        .arg(dir.path().join("runs.db"))
        .args(["serve", "--addr", "no-such-host.invalid:7420"])
        .env_remove("MIYABI_TOKENS")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-host.invalid"));
}

#[tokio::test]
async fn cancel_and_prune_from_the_cli_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let (waiting, done) = {
        let engine = Engine::sqlite(&db).unwrap();
        let ask = step_fn(|ctx: StepContext, _v: Value| async move {
            ctx.suspend::<Value>(json!({ "question": "?" }))
        });
        let wf = Workflow::new("ask").step("ask", ask).commit().unwrap();
        let echo = step_fn(|_c: StepContext, v: Value| async move { Ok(v) });
        let quick = Workflow::new("quick").step("x", echo).commit().unwrap();
        let done = engine.start(&quick, json!(1)).await.unwrap().id;
        (engine.start(&wf, json!(1)).await.unwrap().id, done)
    };
    let as_user = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_miyabi"))
            .arg("--db")
            .arg(&db)
            .args(args)
            .env("USER", "tess")
            .env_remove("MIYABI_DB")
            .output()
            .unwrap()
    };
    stdout(&as_user(&["runs", "cancel", &waiting]));
    assert!(!as_user(&["runs", "cancel", &waiting]).status.success());
    stdout(&as_user(&[
        "runs",
        "prune",
        "--keep-last",
        "0",
        "--workflow",
        "quick",
    ]));
    let engine = Engine::sqlite(&db).unwrap();
    let trail = engine
        .approvals()
        .audit(&miyabi::approval::AuditFilter {
            actor: Some("cli:tess".into()),
            ..Default::default()
        })
        .unwrap();
    let actions: Vec<(String, String, String)> = trail
        .iter()
        .map(|r| {
            (
                r.action.clone(),
                r.run_id.clone(),
                r.data.as_ref().unwrap()["outcome"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("run.cancel".to_string(), waiting.clone(), "ok".to_string()),
            (
                "run.cancel".to_string(),
                waiting.clone(),
                "failed".to_string()
            ),
            ("runs.prune".to_string(), String::new(), "ok".to_string()),
        ]
    );
    assert_eq!(trail[2].data.as_ref().unwrap()["deleted"], 1);
    assert!(engine.get(&done).await.unwrap().is_none());
}
