//! The issue-resolution pipeline end to end, as the `miyabi-run` program: the demo repository
//! (a failing test and an issue), the replayed model of the demo, a loopback server answering
//! like GitHub's API and a bare repository as `origin`. The run ends with the test fixed, lint
//! clean, one squashed commit on `miyabi/issue-7` pushed, and one draft PR request with the
//! expected title and body. Killed at a random point and started again, it finishes without a
//! second PR.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::fake_github::{self, FakeGitHub};

const TOKEN: &str = "ghp_e2e_token_never_printed";
const TITLE: &str = "fix(calc): add the arguments instead of subtracting them";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

struct Setup {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    origin: PathBuf,
    deploy: PathBuf,
    db: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (repo, deploy) = (dir.path().join("repo"), dir.path().join("deploy"));
    let ok = Command::new("sh")
        .arg(root().join("demo/make-repo.sh"))
        .arg(&repo)
        .arg(&deploy)
        .status()
        .unwrap();
    assert!(ok.success());
    let origin = dir.path().join("origin.git");
    git(
        dir.path(),
        &["init", "-q", "--bare", origin.to_str().unwrap()],
    );
    git(
        &repo,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(&repo, &["push", "-q", "origin", "main"]);
    let failing = Command::new("sh")
        .arg("test.sh")
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(!failing.status.success(), "the test fails before the run");
    Setup {
        db: dir.path().join("runs.db"),
        _dir: dir,
        repo,
        origin,
        deploy,
    }
}

fn command(s: &Setup, gh: &FakeGitHub, from_file: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_miyabi-run"));
    c.args(["issue-resolution", "--repo"])
        .arg(&s.repo)
        .args([
            "--issue",
            "7",
            "--github-repo",
            "acme/calc",
            "--yes",
            "--json",
            "--db",
        ])
        .arg(&s.db)
        .arg("--replay")
        .arg(root().join("demo/replay.json"))
        .env("GITHUB_API_URL", &gh.url)
        .env("GITHUB_TOKEN", TOKEN)
        .env_remove("MIYABI_DB")
        .env_remove("MIYABI_AGENTS_MODEL")
        .stdin(Stdio::null());
    if from_file {
        c.arg("--issue-file").arg(s.repo.join("ISSUE.md"));
    }
    c
}

fn check_result(s: &Setup, gh: &FakeGitHub, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "the token was printed"
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["status"], "succeeded", "{result}");
    let output = &result["output"];
    assert_eq!(output["review"]["score"], 93, "after one fix round");
    assert_eq!(output["deploy"]["healthy"], true, "{output}");

    // One draft PR, with the PRAgent's title and a body closing the issue.
    let pulls = gh.pulls();
    assert_eq!(pulls.len(), 1, "exactly one PR: {pulls:?}");
    let pr = &pulls[0];
    assert_eq!(pr["title"], TITLE);
    assert_eq!(pr["draft"], true);
    assert_eq!(pr["head"]["ref"], "miyabi/issue-7");
    assert_eq!(pr["base"]["ref"], "main");
    let body = pr["body"].as_str().unwrap();
    assert!(
        body.contains("Closes #7") && body.contains("## Testing"),
        "{body}"
    );
    let posts = gh
        .requests()
        .iter()
        .filter(|r| r.0 == "POST" && r.1.ends_with("/pulls"))
        .count();
    assert_eq!(posts, 1, "one PR request");
    assert!(
        gh.requests()
            .iter()
            .all(|r| r.3.as_deref() == Some(&format!("Bearer {TOKEN}")[..]))
    );

    // The issue's labels: IssueAgent's, then state:reviewing.
    let labels = gh.state.lock().unwrap().labels.get(&7).cloned().unwrap();
    assert!(
        labels.contains(&"type:bug".to_string()) && labels.contains(&"state:reviewing".to_string()),
        "{labels:?}"
    );

    // The branch was pushed: one Conventional Commits commit on main, the test fixed, lint clean.
    let tip = git(&s.origin, &["rev-parse", "miyabi/issue-7"]);
    assert_eq!(git(&s.origin, &["log", "-1", "--format=%s", &tip]), TITLE);
    assert_eq!(
        git(&s.origin, &["rev-parse", &format!("{tip}^")]),
        git(&s.repo, &["rev-parse", "main"])
    );
    let check = s.repo.parent().unwrap().join("check");
    git(
        &s.repo,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            check.to_str().unwrap(),
            &tip,
        ],
    );
    for script in ["test.sh", "lint.sh"] {
        let o = Command::new("sh")
            .arg(script)
            .current_dir(&check)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    git(
        &s.repo,
        &["worktree", "remove", "--force", check.to_str().unwrap()],
    );
    // main is untouched, no worktree or task branch is left behind.
    assert!(
        !Command::new("sh")
            .arg("test.sh")
            .current_dir(&s.repo)
            .output()
            .unwrap()
            .status
            .success()
    );
    assert_eq!(git(&s.repo, &["worktree", "list"]).lines().count(), 1);
    assert_eq!(
        git(&s.repo, &["branch", "--list", "miyabi/*"]).trim(),
        "miyabi/issue-7"
    );
    // Deployed.
    let deployed = Command::new("sh")
        .arg(s.deploy.join("calc.sh"))
        .args(["2", "3"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&deployed.stdout).trim(), "5");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pipeline_fixes_the_issue_and_opens_one_draft_pr() {
    let s = setup();
    let gh = fake_github::start(vec![7], 0).await;
    let out = tokio::task::spawn_blocking({
        let mut c = command(&s, &gh, true);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    check_result(&s, &gh, &out);

    // A second command for the same issue prints the finished run; with --again a new run goes
    // through every stage again and finds the PR it opened instead of opening another.
    let again = tokio::task::spawn_blocking({
        let mut c = command(&s, &gh, true);
        c.arg("--again");
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    check_result(&s, &gh, &again);
    let finds = gh
        .requests()
        .iter()
        .filter(|r| r.0 == "GET" && r.1 == "/repos/acme/calc/pulls")
        .count();
    assert_eq!(finds, 2, "each run looked for the branch's PR first");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_a_random_point_and_restarted_it_finishes_without_a_second_pr() {
    let s = setup();
    let gh = fake_github::start(vec![7], 3).await;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let delay = Duration::from_millis(u64::from(nanos % 1500));
    eprintln!("killing the first process after {delay:?}");
    let mut first = command(&s, &gh, false)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(delay).await;
    first.kill().unwrap(); // SIGKILL
    let _ = first.wait();
    let out = tokio::task::spawn_blocking({
        let mut c = command(&s, &gh, false);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    check_result(&s, &gh, &out);
    // The issue was read from GitHub with its comments.
    assert!(
        gh.requests()
            .iter()
            .any(|r| r.0 == "GET" && r.1 == "/repos/acme/calc/issues/7/comments")
    );
}

/// The same pipeline from Rust, started by a signed `issues.labeled` webhook delivery: the run
/// suspends at the approval gate, a reviewer approves, and the draft PR is opened.
#[tokio::test(flavor = "multi_thread")]
async fn a_labeled_issue_starts_the_pipeline_from_rust_through_the_webhook() {
    use axum::body::Body;
    use axum::http::Request;
    use miyabi::approval::{Approver, Decision};
    use miyabi::{Engine, RunStatus};
    use miyabi_agents::github::webhook::{self, WebhookConfig};
    use miyabi_agents::github::{GitHub, RepoRef};
    use miyabi_agents::pipeline::{self, GitHubTarget, PipelineConfig};
    use miyabi_agents::replay::{ReplayServer, load_script};
    use tower::ServiceExt;

    let s = setup();
    let gh = fake_github::start(vec![7], 0).await;
    let model =
        ReplayServer::start(load_script(&root().join("demo/replay.json")).unwrap()).unwrap();
    let mut config = PipelineConfig::new(&s.repo, model.model().unwrap()).unwrap();
    config.approvers = vec!["alice".into()];
    config.github = Some(GitHubTarget {
        client: GitHub::new(&gh.url, Some(TOKEN.into())).unwrap(),
        repo: RepoRef::parse("acme/calc").unwrap(),
        remote: "origin".into(),
    });
    let engine = Engine::sqlite(&s.db).unwrap();
    let workflow = pipeline::issue_resolution(&engine, config).unwrap();
    let app = webhook::router(
        WebhookConfig::new(engine.clone(), "hook-secret")
            .on_issue_labeled("agent:codegen", workflow),
    );
    let event = serde_json::json!({
        "action": "labeled", "label": {"name": "agent:codegen"},
        "issue": {"number": 7, "title": "calc.sh subtracts instead of adding",
                  "body": "`sh calc.sh 2 3` prints -1; it should print 5.", "labels": [{"name": "agent:codegen"}]},
        "repository": {"full_name": "acme/calc"}, "sender": {"login": "octocat"}});
    let body = serde_json::to_vec(&event).unwrap();
    let req = Request::post(webhook::PATH)
        .header("x-github-event", "issues")
        .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header("x-hub-signature-256", webhook::sign(b"hook-secret", &body))
        .body(Body::from(body))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let answer: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    let run_id = answer["runs"][0].as_str().unwrap().to_owned();

    let run = engine.wait(&run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended, "{:?}", run.error);
    assert_eq!(run.suspended[0].path, "approval");
    assert!(gh.pulls().is_empty(), "no PR before the approval");
    engine
        .approvals()
        .decide(
            &run_id,
            "approval",
            &Approver::new("alice"),
            Decision::approve(),
        )
        .await
        .unwrap();
    let run = engine.wait(&run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let out = run.output.unwrap();
    assert_eq!(out["pr"]["opened"], true, "{out}");
    let pulls = gh.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0]["title"], TITLE);
    // The labels that started it are kept, IssueAgent's added, the state moved on.
    let labels = gh.state.lock().unwrap().labels.get(&7).cloned().unwrap();
    for l in ["agent:codegen", "type:bug", "state:reviewing"] {
        assert!(labels.contains(&l.to_string()), "{labels:?}");
    }
    assert_eq!(
        git(&s.origin, &["log", "-1", "--format=%s", "miyabi/issue-7"]),
        TITLE
    );
}

/// `miyabi run business`: 13 stages on the replayed model; at the founder's gate after
/// `persona` the founder edits the plan in $EDITOR, and the edit is what the run keeps.
#[test]
fn the_business_pipeline_runs_as_a_program_and_the_founder_edits_a_stage() {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut script = serde_json::Map::new();
    for (stage, agent) in [
        ("entrepreneur", "AIEntrepreneurAgent"),
        ("self-analysis", "SelfAnalysisAgent"),
        ("market-research", "MarketResearchAgent"),
        ("persona", "PersonaAgent"),
        ("product-concept", "ProductConceptAgent"),
        ("product-design", "ProductDesignAgent"),
        ("content-creation", "ContentCreationAgent"),
        ("funnel-design", "FunnelDesignAgent"),
        ("sns-strategy", "SNSStrategyAgent"),
        ("marketing", "MarketingAgent"),
        ("sales", "SalesAgent"),
        ("crm", "CRMAgent"),
        ("analytics", "AnalyticsAgent"),
    ] {
        script.insert(
            agent.into(),
            serde_json::json!([{"json": support::samples::business(stage)}]),
        );
    }
    let replay = dir.path().join("business.json");
    std::fs::write(&replay, Value::Object(script).to_string()).unwrap();
    let editor = dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/\"Aki\"/\"Founder Aki\"/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let business = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_miyabi-run"));
        c.args([
            "business",
            "--brief",
            "A tea subscription for developers",
            "--gate-after",
            "persona",
            "--json",
        ])
        .arg("--db")
        .arg(dir.path().join("b.db"))
        .arg("--replay")
        .arg(&replay)
        .env("EDITOR", &editor)
        .env_remove("MIYABI_DB");
        c
    };
    // No answer at the gate: the run stays suspended.
    let first = business().stdin(Stdio::null()).output().unwrap();
    assert!(!first.status.success());
    assert!(String::from_utf8_lossy(&first.stdout).contains("stays suspended"));
    // The same command continues it, and the founder edits the personas.
    let mut child = business()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"e\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("continued (suspended)"), "{stdout}");
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let plan = &result["output"];
    assert_eq!(plan["brief"], "A tea subscription for developers");
    assert_eq!(
        plan["persona"]["personas"][0]["name"], "Founder Aki",
        "{plan}"
    );
    assert_eq!(plan["analytics"], support::samples::business("analytics"));
    assert_eq!(
        plan.as_object().unwrap().len(),
        14,
        "the brief and 13 stages"
    );
}
