//! The GitHub client against a loopback server answering like GitHub's REST API: reads,
//! pagination, writes, a secondary rate limit (403 + retry-after) retried, a 404, the token
//! sent but never shown; the webhook receiver: signatures, replays, triggers.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::process::Command;

use axum::body::Body;
use axum::http::Request;
use miyabi::{Engine, RunStatus, StepContext, Workflow, step_fn};
use miyabi_agents::github::webhook::{self, WebhookConfig};
use miyabi_agents::github::{GitHub, GitHubError, NewPullRequest, RepoRef};
use serde_json::{Value, json};
use support::fake_github;
use tower::ServiceExt;

const TOKEN: &str = "ghp_test_token_that_must_not_leak";

fn repo() -> RepoRef {
    RepoRef::parse("acme/calc").unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_an_issue_and_every_page_of_its_comments() {
    let gh = fake_github::start(vec![7], 150).await;
    let client = GitHub::new(&gh.url, Some(TOKEN.into())).unwrap();
    let issue = client.issue(&repo(), 7).await.unwrap();
    assert_eq!(issue.title, "calc.sh adds wrong");
    let comments = client.comments(&repo(), 7).await.unwrap();
    assert_eq!(comments.len(), 150, "two pages, following the link header");
    assert_eq!(comments[149].body, "comment 149");
    let pages: Vec<Value> = gh
        .requests()
        .into_iter()
        .filter(|r| r.1.ends_with("/comments"))
        .map(|r| r.2)
        .collect();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[1]["page"], "2");
    // Every request carried the token; the rate limit was noted.
    assert!(
        gh.requests()
            .iter()
            .all(|r| r.3.as_deref() == Some(&format!("Bearer {TOKEN}")[..]))
    );
    assert_eq!(client.rate_limit().remaining, Some(4996));
    assert!(!format!("{client:?}").contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_issue_is_not_found_and_names_the_request() {
    let gh = fake_github::start(vec![7], 0).await;
    let client = GitHub::new(&gh.url, Some(TOKEN.into())).unwrap();
    let err = client.issue(&repo(), 404).await.unwrap_err();
    assert!(matches!(err, GitHubError::NotFound { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("GET /repos/acme/calc/issues/404"), "{text}");
    assert!(!text.contains(TOKEN) && !format!("{err:?}").contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secondary_rate_limit_is_waited_out_and_retried() {
    let gh = fake_github::start(vec![7], 0).await;
    gh.state.lock().unwrap().secondary_limit_next = Some("POST /repos/acme/calc/pulls".into());
    let client = GitHub::new(&gh.url, Some(TOKEN.into())).unwrap();
    let pr = client
        .create_draft_pull(
            &repo(),
            &NewPullRequest {
                title: "fix: add".into(),
                body: "Closes #7".into(),
                head: "miyabi/issue-7".into(),
                base: "main".into(),
            },
        )
        .await
        .unwrap();
    assert!(pr.draft);
    let posts = gh
        .requests()
        .into_iter()
        .filter(|r| r.0 == "POST" && r.1.ends_with("/pulls"))
        .count();
    assert_eq!(posts, 2, "one limited, one retried");
    assert_eq!(gh.pulls().len(), 1);

    // With no retries allowed the limit is an error saying how long to wait.
    gh.state.lock().unwrap().secondary_limit_next =
        Some("GET /repos/acme/calc/issues/7/comments".into());
    let strict = GitHub::new(&gh.url, Some(TOKEN.into()))
        .unwrap()
        .max_retries(0);
    let err = strict.comments(&repo(), 7).await.unwrap_err();
    assert!(
        matches!(err, GitHubError::RateLimited { wait_secs: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_up_primary_limit_waits_for_its_reset_or_says_how_long() {
    let gh = fake_github::start(vec![7], 0).await;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    {
        let mut f = gh.state.lock().unwrap();
        f.remaining = 1; // the next answer says 0 are left
        f.reset = Some(now() + 3600);
    }
    let client = GitHub::new(&gh.url, Some(TOKEN.into()))
        .unwrap()
        .max_wait(std::time::Duration::from_secs(60));
    client.issue(&repo(), 7).await.unwrap();
    assert_eq!(client.rate_limit().remaining, Some(0));
    // The reset is an hour away, more than the client may wait: no request is sent.
    let sent = gh.requests().len();
    let err = client.issue(&repo(), 7).await.unwrap_err();
    assert!(
        matches!(err, GitHubError::RateLimited { wait_secs, .. } if wait_secs > 60),
        "{err:?}"
    );
    assert_eq!(gh.requests().len(), sent);
    // A reset one second away is waited for, then the request goes.
    gh.state.lock().unwrap().reset = Some(now() + 1);
    let fresh = GitHub::new(&gh.url, Some(TOKEN.into())).unwrap();
    fresh.issue(&repo(), 7).await.unwrap();
    assert_eq!(fresh.rate_limit().remaining, Some(0));
    fresh.issue(&repo(), 7).await.unwrap();
    assert_eq!(gh.requests().len(), sent + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_comments_labels_branches_and_reads_check_runs() {
    let gh = fake_github::start(vec![7], 0).await;
    let client = GitHub::new(&gh.url, Some(TOKEN.into())).unwrap();
    let c = client.comment(&repo(), 7, "On it.").await.unwrap();
    assert_eq!(c.body, "On it.");
    let set = client
        .set_labels(
            &repo(),
            7,
            &["type:bug".into(), "state:implementing".into()],
        )
        .await
        .unwrap();
    assert_eq!(set, ["type:bug", "state:implementing"]);
    assert_eq!(client.issue(&repo(), 7).await.unwrap().labels.len(), 2);
    client
        .create_branch(&repo(), "miyabi/issue-7", "abc123")
        .await
        .unwrap();
    client
        .create_branch(&repo(), "miyabi/issue-7", "abc123")
        .await
        .unwrap();
    let err = client
        .create_branch(&repo(), "miyabi/issue-7", "def456")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another commit"), "{err}");
    let runs = client.check_runs(&repo(), "abc123").await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].conclusion.as_deref(), Some("success"));
    assert!(
        client
            .find_pull(&repo(), "miyabi/issue-7")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn push_sends_a_branch_to_a_remote() {
    let dir = tempfile::tempdir().unwrap();
    let (work, remote) = (dir.path().join("work"), dir.path().join("remote.git"));
    let git = |d: &std::path::Path, a: &[&str]| {
        let o = Command::new("git").args(a).current_dir(d).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    std::fs::create_dir_all(&work).unwrap();
    git(
        dir.path(),
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    git(&work, &["init", "-q", "-b", "main"]);
    git(
        &work,
        &[
            "-c",
            "user.email=a@b",
            "-c",
            "user.name=A",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "init",
        ],
    );
    git(&work, &["branch", "miyabi/issue-7"]);
    let client = GitHub::new("http://127.0.0.1:9", Some(TOKEN.into())).unwrap();
    client
        .push(&work, remote.to_str().unwrap(), "miyabi/issue-7")
        .await
        .unwrap();
    assert_eq!(
        git(&remote, &["rev-parse", "miyabi/issue-7"]),
        git(&work, &["rev-parse", "HEAD"])
    );
    let err = client
        .push(&work, "/nonexistent/remote", "miyabi/issue-7")
        .await
        .unwrap_err();
    assert!(matches!(err, GitHubError::Push(_)));
}

#[tokio::test(flavor = "multi_thread")]
async fn refresher_reports_are_applied_as_labels_and_comments() {
    use miyabi_agents::{RefreshReport, StatusUpdate};
    let gh = fake_github::start(vec![7], 0).await;
    let client = GitHub::new(&gh.url, Some(TOKEN.into())).unwrap();
    client
        .set_labels(
            &repo(),
            7,
            &[
                "type:bug".into(),
                "state:implementing".into(),
                "effort:large".into(),
            ],
        )
        .await
        .unwrap();
    let report = RefreshReport {
        updates: vec![StatusUpdate {
            issue: 7,
            state: "state:done".into(),
            add_labels: vec!["phase:maintenance".into()],
            remove_labels: vec!["effort:large".into()],
            comment: Some("Resolved by PR #100.".into()),
        }],
    };
    let applied = client.apply_refresh(&repo(), &report).await.unwrap();
    assert_eq!(
        applied,
        vec![(
            7,
            vec![
                "type:bug".to_string(),
                "phase:maintenance".into(),
                "state:done".into()
            ]
        )]
    );
    let comments = client.comments(&repo(), 7).await.unwrap();
    assert_eq!(comments.last().unwrap().body, "Resolved by PR #100.");
    // A label outside the set is refused before anything is sent.
    let mut bad = report.clone();
    bad.updates[0].add_labels = vec!["wontfix-please".into()];
    let sent = gh.requests().len();
    let err = client.apply_refresh(&repo(), &bad).await.unwrap_err();
    assert!(err.to_string().contains("wontfix-please"), "{err}");
    assert_eq!(gh.requests().len(), sent);
}

fn echo_workflow() -> miyabi::CommittedWorkflow {
    Workflow::new("triage")
        .step(
            "echo",
            step_fn(|_c: StepContext, v: Value| async move { Ok(v) }),
        )
        .commit()
        .unwrap()
}

fn delivery(body: &Value, id: &str, event: &str, signature: Option<String>) -> Request<Body> {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut r = Request::post(webhook::PATH)
        .header("x-github-event", event)
        .header("x-github-delivery", id)
        .header("content-type", "application/json");
    if let Some(s) = signature {
        r = r.header("x-hub-signature-256", s);
    }
    r.body(Body::from(bytes)).unwrap()
}

async fn send(app: &axum::Router, req: Request<Body>) -> (u16, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_verifies_signatures_rejects_replays_and_starts_workflows() {
    let engine = Engine::in_memory();
    let secret = "s3cret";
    let app = webhook::router(
        WebhookConfig::new(engine.clone(), secret)
            .on_issue_opened(echo_workflow())
            .on_issue_labeled("agent:codegen", echo_workflow()),
    );
    let opened = json!({"action": "opened", "issue": {"number": 7, "title": "calc adds wrong", "body": "b", "labels": [{"name": "type:bug"}]},
                        "repository": {"full_name": "acme/calc"}, "sender": {"login": "octocat"}});
    let sig = |b: &Value| {
        Some(webhook::sign(
            secret.as_bytes(),
            &serde_json::to_vec(b).unwrap(),
        ))
    };

    // No signature, a wrong one, one made with another secret: 401, nothing started.
    assert_eq!(
        send(&app, delivery(&opened, "d0", "issues", None)).await.0,
        401
    );
    assert_eq!(
        send(
            &app,
            delivery(&opened, "d0", "issues", Some("sha256=00".into()))
        )
        .await
        .0,
        401
    );
    let other = Some(webhook::sign(
        b"other",
        &serde_json::to_vec(&opened).unwrap(),
    ));
    assert_eq!(
        send(&app, delivery(&opened, "d0", "issues", other)).await.0,
        401
    );
    assert!(engine.list(&Default::default()).await.unwrap().is_empty());

    // Signed: a run starts with the issue.
    let (status, body) = send(&app, delivery(&opened, "d1", "issues", sig(&opened))).await;
    assert_eq!(status, 202, "{body}");
    let id = body["runs"][0].as_str().unwrap().to_owned();
    let run = engine.wait(&id).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output.unwrap()["issue"]["number"], 7);

    // The same delivery again: 409, no second run.
    let (status, _) = send(&app, delivery(&opened, "d1", "issues", sig(&opened))).await;
    assert_eq!(status, 409);
    assert_eq!(engine.list(&Default::default()).await.unwrap().len(), 1);

    // labeled with another label: ignored; with the configured one: started.
    let mut labeled = opened.clone();
    labeled["action"] = json!("labeled");
    labeled["label"] = json!({"name": "type:bug"});
    let (status, body) = send(&app, delivery(&labeled, "d2", "issues", sig(&labeled))).await;
    assert_eq!((status, body["ignored"].is_string()), (200, true), "{body}");
    labeled["label"] = json!({"name": "agent:codegen"});
    let (status, _) = send(&app, delivery(&labeled, "d3", "issues", sig(&labeled))).await;
    assert_eq!(status, 202);
    // A tampered body with the old signature: 401.
    let mut tampered = labeled.clone();
    tampered["issue"]["number"] = json!(8);
    assert_eq!(
        send(&app, delivery(&tampered, "d4", "issues", sig(&labeled)))
            .await
            .0,
        401
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_start_workflows_and_replays_are_rejected_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hooks.db");
    let engine = Engine::in_memory();
    let make = || {
        webhook::router(
            WebhookConfig::new(engine.clone(), "k")
                .on_issue_comment(Some("/miyabi fix".into()), echo_workflow())
                .deliveries(miyabi::Memory::sqlite(&db).unwrap()),
        )
    };
    let c = json!({"action": "created", "issue": {"number": 7, "title": "t", "body": null, "labels": []},
                   "comment": {"id": 5, "body": "please /miyabi fix", "user": {"login": "octocat"}},
                   "repository": {"full_name": "acme/calc"}, "sender": {"login": "octocat"}});
    let sig = Some(webhook::sign(b"k", &serde_json::to_vec(&c).unwrap()));
    let (status, body) = send(&make(), delivery(&c, "e1", "issue_comment", sig.clone())).await;
    assert_eq!(status, 202, "{body}");
    // A new receiver on the same database still knows the delivery.
    assert_eq!(
        send(&make(), delivery(&c, "e1", "issue_comment", sig))
            .await
            .0,
        409
    );
}
