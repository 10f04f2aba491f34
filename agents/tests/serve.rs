//! `miyabi run serve` as a program: the HTTP API with the GitHub webhook receiver. A signed
//! `issues.opened` delivery starts the issue-resolution pipeline in the server's process; the
//! run is listed by the API (with a token), waits for a human at a task's command (resumed over
//! the API) and at the approval gate (approved over the API), and opens the draft PR. A bad signature is 401, a replayed delivery 409, the API without
//! a token 401, and the program refuses to start without the webhook's secret.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use miyabi_agents::github::webhook;
use serde_json::{Value, json};
use support::demo;
use support::fake_github;

const SECRET: &str = "webhook-secret-never-printed";
const API_TOKEN: &str = "api-token-for-alice";
const GH_TOKEN: &str = "ghp_serve_token";
/// A command the permission policy asks about.
const SED: &str = "sed -i 's/[$]1 - [$]2/$2 + $1/' calc.sh";

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client() -> reqwest::Client {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::new()
}

async fn deliver(
    http: &reqwest::Client,
    base: &str,
    event: &Value,
    id: &str,
    signature: Option<String>,
) -> (u16, Value) {
    let body = serde_json::to_vec(event).unwrap();
    let mut req = http
        .post(format!("{base}{}", webhook::PATH))
        .header("x-github-event", "issues")
        .header("x-github-delivery", id)
        .header("content-type", "application/json");
    if let Some(sig) = signature {
        req = req.header("x-hub-signature-256", sig);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Reads the run's server-sent events (from the first) until the `nth` event of type `until`.
async fn events_until(
    http: &reqwest::Client,
    base: &str,
    run: &str,
    until: &str,
    nth: usize,
) -> String {
    let mut resp = http
        .get(format!("{base}/api/runs/{run}/events"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut text = String::new();
    let marker = format!("event: {until}");
    while text.matches(&marker).count() < nth {
        match resp.chunk().await.unwrap() {
            Some(c) => text.push_str(&String::from_utf8_lossy(&c)),
            None => panic!("the event stream ended before `{until}`:\n{text}"),
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_issue_event_starts_the_pipeline_in_the_server() {
    let d = demo::setup();
    let gh = fake_github::start(vec![7], 0).await;
    // The demo's answers, but the fix task asks to run a command first.
    let mut script = demo::script();
    script["CodeGenAgent|\"id\":\"fix\""] = json!([
        {"calls": [{"name": "shell", "arguments": {"command": SED}}]},
        {"json": {"summary": "calc.sh adds now.", "files_changed": ["calc.sh"], "tests_changed": false}}
    ]);
    let replay = d.dir.path().join("replay.json");
    std::fs::write(&replay, script.to_string()).unwrap();
    let serve = |secret: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_miyabi-run"));
        c.args(["serve", "--repo"])
            .arg(&d.repo)
            .args([
                "--addr",
                "127.0.0.1:0",
                "--on-opened",
                "--approver",
                "alice",
            ])
            .args(["--github-repo", "acme/calc", "--db"])
            .arg(&d.db)
            .arg("--replay")
            .arg(&replay)
            .env("GITHUB_API_URL", &gh.url)
            .env("GITHUB_TOKEN", GH_TOKEN)
            .env("MIYABI_TOKEN", API_TOKEN)
            .env_remove("GITHUB_WEBHOOK_SECRET")
            .env_remove("MIYABI_DB")
            .env_remove("MIYABI_TOKENS")
            .env_remove("MIYABI_ACCESS_FILE")
            .env_remove("MIYABI_AGENTS_MODEL")
            .stdin(Stdio::null());
        if let Some(s) = secret {
            c.env("GITHUB_WEBHOOK_SECRET", s);
        }
        c
    };

    // Without the secret it does not start.
    let refused = serve(None).output().unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("GITHUB_WEBHOOK_SECRET"), "{stderr}");

    let mut child = serve(Some(SECRET))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let (first, mut lines) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        (lines.next().unwrap().unwrap(), lines)
    })
    .await
    .unwrap();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in `{first}`"))
        .to_owned();
    let http = client();

    // The API needs a token.
    let anon = http.get(format!("{base}/api/runs")).send().await.unwrap();
    assert_eq!(anon.status().as_u16(), 401);

    let opened = json!({"action": "opened",
        "issue": {"number": 7, "title": "calc.sh subtracts instead of adding",
                  "body": "`sh calc.sh 2 3` prints -1; it should print 5.", "labels": []},
        "repository": {"full_name": "acme/calc"}, "sender": {"login": "octocat"}});
    let sign = |v: &Value| {
        Some(webhook::sign(
            SECRET.as_bytes(),
            &serde_json::to_vec(v).unwrap(),
        ))
    };

    // Signed with another secret, or not at all: 401.
    let forged = Some(webhook::sign(
        b"guess",
        &serde_json::to_vec(&opened).unwrap(),
    ));
    assert_eq!(deliver(&http, &base, &opened, "d-1", forged).await.0, 401);
    assert_eq!(deliver(&http, &base, &opened, "d-1", None).await.0, 401);
    // Another repository's event starts nothing.
    let mut elsewhere = opened.clone();
    elsewhere["repository"]["full_name"] = json!("someone/else");
    let (status, body) = deliver(&http, &base, &elsewhere, "d-0", sign(&elsewhere)).await;
    assert_eq!((status, body["ignored"].is_string()), (200, true), "{body}");

    // Signed: 202, a run of the pipeline.
    let (status, body) = deliver(&http, &base, &opened, "d-1", sign(&opened)).await;
    assert_eq!(status, 202, "{body}");
    let run = body["runs"][0].as_str().unwrap().to_owned();
    // The same delivery again: a replay, 409, nothing started.
    let (status, _) = deliver(&http, &base, &opened, "d-1", sign(&opened)).await;
    assert_eq!(status, 409);

    // The run is listed by the API.
    let list: Value = http
        .get(format!("{base}/api/runs"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let runs = list["runs"].as_array().unwrap();
    let pipelines: Vec<&Value> = runs
        .iter()
        .filter(|r| r["workflow"] == "issue-resolution")
        .collect();
    assert_eq!(pipelines.len(), 1, "{list}");
    assert_eq!(pipelines[0]["id"], run.as_str());

    // It runs in the server's process until the fix task's command waits for a human; the
    // run shows the command, and a resume over the API approves it.
    events_until(&http, &base, &run, "run-suspended", 1).await;
    let got: Value = http
        .get(format!("{base}/api/runs/{run}"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let waiting = &got["run"]["suspended"][0];
    assert_eq!(waiting["path"], "implement", "{got}");
    assert_eq!(waiting["payload"]["kind"], "tool-approval");
    assert_eq!(waiting["payload"]["pending"][0]["command"], SED);
    let resumed = http
        .post(format!("{base}/api/runs/{run}/resume"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"path": "implement", "data": {"approved": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status().as_u16(), 202, "{:?}", resumed.text().await);
    // Then up to the approval gate; approved over the API, it opens the draft PR.
    events_until(&http, &base, &run, "run-suspended", 2).await;
    let decided = http
        .post(format!("{base}/api/approvals/{run}/approval/decision"))
        .bearer_auth(API_TOKEN)
        .json(&json!({"action": "approve", "comment": "ship it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status().as_u16(), 200, "{:?}", decided.text().await);
    events_until(&http, &base, &run, "run-finished", 1).await;
    let got: Value = http
        .get(format!("{base}/api/runs/{run}"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["run"]["status"], "succeeded", "{got}");
    assert_eq!(got["run"]["input"]["issue"]["number"], 7);
    let pulls = gh.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0]["head"]["ref"], "miyabi/issue-7");
    assert!(
        d.pushed("miyabi/issue-7", "calc.sh")
            .contains("echo $(($2 + $1))")
    );

    // Nothing printed a secret.
    drop(server);
    let rest: Vec<String> = lines.by_ref().map_while(Result::ok).collect();
    let err: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    let all = format!("{first}\n{}\n{}", rest.join("\n"), err.join("\n"));
    for secret in [SECRET, API_TOKEN, GH_TOKEN] {
        assert!(!all.contains(secret), "a secret was printed:\n{all}");
    }
}
