//! The `miyabi` binary as a subprocess, against a run database prepared here: `runs list`,
//! `runs show`, `runs cancel` (of a workflow the CLI knows nothing about), and `serve`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use miyabi::approval::ApprovalGate;
use miyabi::{Engine, EventKind, RunStatus, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

fn miyabi(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_miyabi"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("MIYABI_DB")
        .env_remove("MIYABI_TOKENS")
        .env_remove("MIYABI_SERVER")
        .env_remove("MIYABI_TOKEN")
        .output()
        .unwrap()
}

/// `miyabi --server http://<addr> [--token T] args...`, with no database given.
fn client(addr: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_miyabi"));
    cmd.arg("--server")
        .arg(format!("http://{addr}"))
        .args(args)
        .env_remove("MIYABI_DB")
        .env_remove("MIYABI_TOKEN")
        .current_dir(std::env::temp_dir());
    if let Some(t) = token {
        cmd.arg("--token").arg(t);
    }
    cmd.output().unwrap()
}

fn failure(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_out(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Three finished runs of `greet` and one run of `approve` suspended at `review`.
async fn prepare(db: &Path) -> (Vec<String>, String) {
    let engine = Engine::sqlite(db).unwrap();
    let echo = step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) });
    let greet = Workflow::new("greet").step("hello", echo).commit().unwrap();
    let review = step_fn(|ctx: StepContext, _v: Value| async move {
        ctx.suspend::<Value>(json!({ "question": "ok?" }))
    });
    let approve = Workflow::new("approve")
        .step("review", review)
        .commit()
        .unwrap();
    let mut done = Vec::new();
    for i in 0..3 {
        done.push(engine.start(&greet, json!(i)).await.unwrap().id);
    }
    let waiting = engine.start(&approve, json!("doc")).await.unwrap().id;
    (done, waiting)
}

#[tokio::test]
async fn runs_list_show_and_cancel_without_the_workflow_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let (done, waiting) = prepare(&db).await;

    let all = json_out(&miyabi(&db, &["runs", "list", "--json"]));
    let ids: Vec<&str> = all["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [waiting.as_str(), &done[2], &done[1], &done[0]]);
    let suspended = json_out(&miyabi(
        &db,
        &["runs", "list", "--status", "suspended", "--json"],
    ));
    assert_eq!(suspended["runs"].as_array().unwrap().len(), 1);
    let limited = json_out(&miyabi(
        &db,
        &[
            "runs",
            "list",
            "--workflow",
            "greet",
            "--limit",
            "2",
            "--json",
        ],
    ));
    assert_eq!(limited["runs"].as_array().unwrap().len(), 2);

    // Tables for people.
    let o = miyabi(&db, &["runs", "list"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("ID") && text.contains(&waiting) && text.contains("suspended"));

    let shown = json_out(&miyabi(&db, &["runs", "show", &waiting, "--json"]));
    assert_eq!(shown["run"]["status"], "suspended");
    assert_eq!(shown["run"]["suspended"][0]["path"], "review");
    assert_eq!(shown["steps"][0]["path"], "review");
    let o = miyabi(&db, &["runs", "show", &done[0]]);
    assert!(String::from_utf8(o.stdout).unwrap().contains("hello"));

    // Cancel a suspended run of a workflow the CLI has no code for: committed in the store.
    let cancelled = json_out(&miyabi(&db, &["runs", "cancel", &waiting, "--json"]));
    assert_eq!(cancelled["run"]["status"], "cancelled");
    let engine = Engine::sqlite(&db).unwrap();
    let run = engine.get(&waiting).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    let events = engine.store().events(&waiting, 1, usize::MAX).unwrap();
    let last = events.last().unwrap();
    assert!(matches!(
        last.kind,
        EventKind::RunFinished {
            status: RunStatus::Cancelled,
            ..
        }
    ));
    assert_eq!(
        last.seq,
        events.len() as u64,
        "the event log has no gap: {events:?}"
    );
    assert_eq!(engine.store().run(&waiting).unwrap().unwrap().owner, None);

    // Errors: a finished run, an unknown run, a bad status.
    let o = miyabi(&db, &["runs", "cancel", &done[0]]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already finished"));
    let o = miyabi(&db, &["runs", "show", "nope"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));
    let o = miyabi(&db, &["runs", "list", "--status", "bogus"]);
    assert!(!o.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_executing_in_another_live_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let engine = Engine::sqlite(&db).unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let r2 = Arc::clone(&release);
    let hold = step_fn(move |_ctx: StepContext, v: Value| {
        let r = Arc::clone(&r2);
        async move {
            r.notified().await;
            Ok(v)
        }
    });
    let wf = Workflow::new("hold").step("wait", hold).commit().unwrap();
    let h = engine.spawn(&wf, json!(1)).unwrap();
    let id = h.id().to_string();
    // This test process owns the run, and is alive.
    let db2 = db.clone();
    let id2 = id.clone();
    let o = tokio::task::spawn_blocking(move || miyabi(&db2, &["runs", "cancel", &id2]))
        .await
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("owned by another engine"), "{err}");
    release.notify_one();
    assert_eq!(h.wait().await.unwrap().status, RunStatus::Succeeded);
}

fn gated() -> miyabi::CommittedWorkflow {
    let echo = step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) });
    Workflow::new("gated")
        .step(
            "checks",
            Workflow::new("checks").await_approval(
                "security",
                ApprovalGate::new()
                    .title("Security review")
                    .approvers(["alice", "team:ops"]),
            ),
        )
        .then("ship", echo)
        .commit()
        .unwrap()
}

#[tokio::test]
async fn approvals_list_approve_and_reject_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let (first, second) = {
        let engine = Engine::sqlite(&db).unwrap();
        let wf = gated();
        let a = engine
            .start(&wf, json!({ "patch": "v1" }))
            .await
            .unwrap()
            .id;
        let b = engine.start(&wf, json!({ "patch": "x" })).await.unwrap().id;
        (a, b)
    };
    let pending = json_out(&miyabi(&db, &["approvals", "list", "--json"]));
    assert_eq!(pending["approvals"].as_array().unwrap().len(), 2);
    let inbox = json_out(&miyabi(
        &db,
        &["approvals", "list", "--as", "bob", "--json"],
    ));
    assert_eq!(inbox["approvals"].as_array().unwrap().len(), 0);
    let inbox = json_out(&miyabi(
        &db,
        &[
            "approvals",
            "list",
            "--as",
            "bob",
            "--team",
            "ops",
            "--json",
        ],
    ));
    assert_eq!(inbox["approvals"].as_array().unwrap().len(), 2);
    let o = miyabi(&db, &["approvals", "list"]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("RUN") && text.contains("checks/security"));

    // Someone who is not an approver is refused.
    let o = miyabi(
        &db,
        &["approve", &first, "checks/security", "--as", "mallory"],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("may not decide"));
    // Approve with edited data and a comment; reject the other.
    let edit = dir.path().join("edit.json");
    std::fs::write(&edit, r#"{"patch": "v2"}"#).unwrap();
    let approved = json_out(&miyabi(
        &db,
        &[
            "approve",
            &first,
            "checks/security",
            "--as",
            "alice",
            "--comment",
            "lgtm",
            "--edit",
            edit.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(approved["approval"]["status"], "approved");
    let rejected = json_out(&miyabi(
        &db,
        &[
            "reject",
            &second,
            "checks/security",
            "--as",
            "bob",
            "--team",
            "ops",
            "--comment",
            "no",
            "--json",
        ],
    ));
    assert_eq!(rejected["approval"]["status"], "rejected");
    let o = miyabi(&db, &["reject", &first, "checks/security", "--as", "alice"]);
    assert!(
        !o.status.success(),
        "a decided gate cannot be decided again"
    );
    let all = json_out(&miyabi(&db, &["approvals", "list", "--all", "--json"]));
    assert_eq!(all["approvals"].as_array().unwrap().len(), 2);

    // The CLI has no workflow code: an engine that has it hands the decision to the run.
    let engine = Engine::sqlite(&db).unwrap();
    engine.register(&gated());
    engine.approvals().tick().await.unwrap();
    let run = engine.wait(&first).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output.unwrap()["data"], json!({ "patch": "v2" }));
}

/// Starts `miyabi serve` on a free port; returns the child, its address and its stderr lines.
fn start_server(db: &Path, tokens: Option<&str>) -> (std::process::Child, String, Vec<String>) {
    match tokens {
        Some(t) => start_server_with(db, &[("MIYABI_TOKENS", t)]),
        None => start_server_with(db, &[]),
    }
}

/// `start_server` with these environment variables (tokens, roles, scopes).
fn start_server_with(
    db: &Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_miyabi"));
    cmd.arg("--db")
        .arg(db)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("MIYABI_TOKENS")
        .env_remove("MIYABI_ROLES")
        .env_remove("MIYABI_SCOPES")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "serve ended: {lines:?}"
        );
        let line = line.trim_end().to_string();
        lines.push(line.clone());
        if let Some(rest) = line.split(" on http://").nth(1) {
            break rest.to_string();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, addr, lines)
}

#[tokio::test]
async fn serve_prints_a_generated_token_once_and_uses_configured_ones() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let (_, waiting) = prepare(&db).await;
    let http = reqwest::Client::new();

    let (mut child, addr, lines) = start_server(&db, None);
    let token = lines
        .iter()
        .find(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
        .cloned()
        .expect("a generated token line");
    assert_eq!(lines.iter().filter(|l| l.contains(&token)).count(), 1);
    let r = http
        .get(format!("http://{addr}/api/runs/{waiting}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["run"]["status"], "suspended");
    let r = http
        .get(format!("http://{addr}/api/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    child.kill().unwrap();
    child.wait().unwrap();

    let secret = "ops-token-5f2b9c0e7d1a";
    let (mut child, addr, lines) = start_server(&db, Some(&format!("ops:leads={secret}")));
    assert!(!lines.iter().any(|l| l.contains("generated")), "{lines:?}");
    let me: Value = http
        .get(format!("http://{addr}/api/me"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me,
        json!({ "id": "ops", "teams": ["leads"], "roles": ["admin"], "workflows": ["*"] })
    );
    // The server cancels too, without the workflow's code.
    let r = http
        .post(format!("http://{addr}/api/runs/{waiting}/cancel"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn other_commands_run_the_miyabi_program_of_that_name() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    // A `miyabi-hello` on PATH that reports its arguments and the database it was given.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let hello = bin.join("miyabi-hello");
    std::fs::write(
        &hello,
        "#!/bin/sh\necho \"args: $*\"\necho \"db: $MIYABI_DB\"\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&hello, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_miyabi"))
        .args(["--db", db.to_str().unwrap(), "hello", "a b", "--flag"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("args: a b --flag"), "{stdout}");
    assert!(
        stdout.contains(&format!("db: {}", db.display())),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(3), "its exit status is ours");

    let out = Command::new(env!("CARGO_BIN_EXE_miyabi"))
        .args(["--db", db.to_str().unwrap(), "nope"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown command `nope`") && stderr.contains("miyabi-nope"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_cli_against_a_server_acts_as_the_token_under_its_roles() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let (done, waiting) = prepare(&db).await;
    let gated_run = {
        let engine = Engine::sqlite(&db).unwrap();
        engine
            .start(&gated(), json!({ "patch": "v1" }))
            .await
            .unwrap()
            .id
    };
    let (mut child, addr, _) = start_server_with(
        &db,
        &[
            (
                "MIYABI_TOKENS",
                "alice=tok-alice-7c1d;vic=tok-vic-93ab;olga=tok-olga-21fe",
            ),
            ("MIYABI_ROLES", "alice=approver;vic=viewer;olga=operator"),
        ],
    );

    // A viewer reads runs through the server, as from the database.
    let listed = json_out(&client(
        &addr,
        Some("tok-vic-93ab"),
        &["runs", "list", "--json"],
    ));
    let ids: Vec<&str> = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&done[0].as_str()) && ids.contains(&waiting.as_str()),
        "{ids:?}"
    );
    let shown = json_out(&client(
        &addr,
        Some("tok-vic-93ab"),
        &["runs", "show", &waiting, "--json"],
    ));
    assert_eq!(shown["run"]["status"], "suspended");
    let table = client(
        &addr,
        Some("tok-vic-93ab"),
        &["runs", "list", "--status", "suspended"],
    );
    assert!(String::from_utf8_lossy(&table.stdout).contains(&waiting));

    // ... but may not cancel: the server's answer, with its code.
    let err = failure(&client(
        &addr,
        Some("tok-vic-93ab"),
        &["runs", "cancel", &waiting],
    ));
    assert!(err.contains("[FORBIDDEN]") && err.contains("403"), "{err}");
    // No token, or a wrong one: refused by the server.
    let err = failure(&client(&addr, None, &["runs", "list"]));
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("tok-"), "{err}");
    // An operator cancels; the server audits it as olga.
    let cancelled = json_out(&client(
        &addr,
        Some("tok-olga-21fe"),
        &["runs", "cancel", &waiting, "--json"],
    ));
    assert_eq!(cancelled["run"]["status"], "cancelled");

    // The approver's inbox through the server, and a decision as the token's identity.
    let inbox = json_out(&client(
        &addr,
        Some("tok-alice-7c1d"),
        &["approvals", "list", "--json"],
    ));
    let gates: Vec<&str> = inbox["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(gates, [gated_run.as_str()]);
    let err = failure(&client(
        &addr,
        Some("tok-alice-7c1d"),
        &["approve", &gated_run, "checks/security", "--as", "bob"],
    ));
    assert!(err.contains("`bob`") && err.contains("`alice`"), "{err}");
    let decided = json_out(&client(
        &addr,
        Some("tok-alice-7c1d"),
        &[
            "approve",
            &gated_run,
            "checks/security",
            "--as",
            "alice",
            "--comment",
            "lgtm",
            "--json",
        ],
    ));
    assert_eq!(decided["approval"]["status"], "approved");
    assert_eq!(decided["votes_needed"], 0);
    // The viewer cannot decide.
    let err = failure(&client(
        &addr,
        Some("tok-vic-93ab"),
        &["reject", &gated_run, "checks/security", "--as", "vic"],
    ));
    assert!(err.contains("403") || err.contains("409"), "{err}");

    // The audit trail names who acted, as the server saw them.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let audit: Value = http
        .get(format!("http://{addr}/api/audit"))
        .bearer_auth("tok-vic-93ab")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let acts: Vec<(String, String)> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap_or("").to_owned(),
                r["action"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(
        acts.contains(&("olga".into(), "run.cancel".into())),
        "{acts:?}"
    );
    assert!(acts.iter().any(|(who, _)| who == "alice"), "{acts:?}");
    assert!(
        acts.iter()
            .any(|(who, act)| who == "vic" && act == "run.cancel"),
        "the refusal is audited too: {acts:?}"
    );

    // What the server cannot do, and a bad URL, are usage errors naming the problem.
    let err = failure(&client(
        &addr,
        Some("tok-olga-21fe"),
        &["runs", "prune", "--keep-last", "1"],
    ));
    assert!(
        err.contains("[INVALID_ARGUMENT]") && err.contains("--db"),
        "{err}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_miyabi"))
        .args(["--server", "localhost:7420", "runs", "list"])
        .env_remove("MIYABI_TOKEN")
        .output()
        .unwrap();
    let err = failure(&o);
    assert!(err.contains("not an http(s) URL"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
    // The server was down: a clear error naming it.
    let err = failure(&client(&addr, Some("tok-olga-21fe"), &["runs", "list"]));
    assert!(
        err.contains("cannot talk to the server at http://"),
        "{err}"
    );
}

#[tokio::test]
async fn runs_retry_goes_to_the_server_that_has_the_workflows_steps() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let engine = Engine::sqlite(&db).unwrap();
    // Its service is down for the first call only.
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let wf = Workflow::new("upload")
        .step(
            "send",
            step_fn(move |_c: StepContext, v: Value| {
                let was_down = down.swap(false, std::sync::atomic::Ordering::SeqCst);
                async move {
                    if was_down {
                        return Err(miyabi::StepError::fatal("storage answered 503"));
                    }
                    Ok(json!({ "sent": v }))
                }
            }),
        )
        .commit()
        .unwrap();
    engine.register(&wf);
    let failed = engine.start(&wf, json!(7)).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);

    // Against the database alone, the CLI has no steps to run: it says where to go.
    let db2 = db.clone();
    let id = failed.id.clone();
    let o = tokio::task::spawn_blocking(move || miyabi(&db2, &["runs", "retry", &id]))
        .await
        .unwrap();
    let err = failure(&o);
    assert!(
        err.contains("--server") && err.contains(&failed.id),
        "{err}"
    );

    let server = miyabi::server::serve(
        engine.clone(),
        miyabi::server::ServerConfig::new()
            .token("tok-olga-5150", miyabi::approval::Approver::new("olga")),
        Some("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let addr = server.local_addr().to_string();
    let (a, id) = (addr.clone(), failed.id.clone());
    let out = tokio::task::spawn_blocking(move || {
        json_out(&client(
            &a,
            Some("tok-olga-5150"),
            &["runs", "retry", &id, "--json"],
        ))
    })
    .await
    .unwrap();
    assert_eq!(out, json!({ "id": failed.id, "retried": true }));
    let done = engine.wait(&failed.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(done.output, Some(json!({ "sent": 7 })));
    // Once more: it succeeded, so the server refuses, and the CLI shows its code and message.
    let (a, id) = (addr.clone(), failed.id.clone());
    let o = tokio::task::spawn_blocking(move || {
        client(&a, Some("tok-olga-5150"), &["runs", "retry", &id])
    })
    .await
    .unwrap();
    let err = failure(&o);
    assert!(
        err.contains("[CONFLICT]") && err.contains("only failed runs can be retried"),
        "{err}"
    );
    server.shutdown().await.unwrap();
}
