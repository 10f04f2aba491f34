//! Every preset against a replayed model (a loopback OpenAI-compatible server): its tools are
//! offered and called, and its answer follows its output schema and parses into its type.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::process::Command;

use miyabi::approval::{Approver, Decision};
use miyabi::{Agent, Engine, RunStatus};
use miyabi_agents::business::{self, BusinessOptions};
use miyabi_agents::coding::CodegenOptions;
use miyabi_agents::replay::{ReplayServer, Reply, Script};
use miyabi_agents::*;
use serde_json::{Value, json};
use support::samples;

fn script(agent: &str, replies: Vec<Reply>) -> Script {
    let mut s = Script::new();
    s.insert(agent.to_owned(), replies);
    s
}

/// Names of the tools the first request offered.
fn offered(server: &ReplayServer) -> Vec<String> {
    let reqs = server.requests();
    reqs[0]["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `agent` on `input` with a replayed model; returns the object, the tool calls made, the
/// server (for its requests).
async fn run(
    agent: Agent,
    marker: &str,
    replies: Vec<Reply>,
    input: &str,
) -> (Value, Vec<String>, ReplayServer) {
    let server = ReplayServer::start(script(marker, replies)).unwrap();
    let agent = agent.model(server.model().unwrap());
    let answer = agent.generate(input).await.unwrap();
    let called = answer
        .turns
        .iter()
        .flat_map(|t| t.tool_calls.iter().map(|c| c.name.clone()))
        .collect();
    for t in &answer.turns {
        for r in &t.tool_results {
            assert!(!r.is_error, "tool error: {r:?}");
        }
    }
    (answer.object.unwrap(), called, server)
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn small_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("calc.sh"), "#!/bin/sh\necho $(($1 - $2))\n").unwrap();
    std::fs::write(p.join("test.sh"), "[ \"$(sh calc.sh 2 3)\" = 5 ]\n").unwrap();
    git(p, &["init", "-q", "-b", "main"]);
    git(p, &["config", "user.email", "dev@example.com"]);
    git(p, &["config", "user.name", "Dev"]);
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "chore: calc"]);
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_agent_reads_the_label_set_and_classifies() {
    let (obj, called, server) = run(
        issue(),
        "IssueAgent",
        vec![
            Reply::call("label_set", json!({})),
            Reply::Json(samples::issue_analysis()),
        ],
        "calc.sh 2 3 prints -1, expected 5",
    )
    .await;
    assert_eq!(called, ["label_set"]);
    assert_eq!(offered(&server), ["label_set"]);
    let a: IssueAnalysis = serde_json::from_value(obj).unwrap();
    assert_eq!(a.kind, IssueKind::Bug);
    assert!(a.labels.iter().all(|l| labels::is_label(l)));
    // The label set went back to the model as the tool's result.
    let second = &server.requests()[1];
    assert!(second.to_string().contains("priority:P0-critical"));
    // The request carried the output schema, with the label set as an enum.
    let schema = server.requests()[0]["response_format"].to_string();
    assert!(schema.contains("special:breaking-change"), "{schema}");
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_agent_refuses_a_label_outside_the_set() {
    let mut bad = samples::issue_analysis();
    bad["labels"] = json!(["type:bug", "made-up-label"]);
    let server = ReplayServer::start(script(
        "IssueAgent",
        vec![Reply::Json(bad.clone()), Reply::Json(bad)],
    ))
    .unwrap();
    let err = issue()
        .model(server.model().unwrap())
        .generate("x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("made-up-label"), "{err}");
    assert_eq!(server.requests().len(), 2, "one answer and one repair call");
}

#[tokio::test(flavor = "multi_thread")]
async fn coordinator_plans_a_dag_in_levels() {
    let (obj, called, _s) = run(
        coordinator(),
        "CoordinatorAgent",
        vec![
            Reply::call("list_agents", json!({})),
            Reply::Json(samples::plan()),
        ],
        "issue #7",
    )
    .await;
    assert_eq!(called, ["list_agents"]);
    let plan: Plan = serde_json::from_value(obj).unwrap();
    let levels = plan.levels().unwrap();
    let ids: Vec<Vec<&str>> = levels
        .iter()
        .map(|l| l.iter().map(|t| t.id.as_str()).collect())
        .collect();
    assert_eq!(ids, vec![vec!["fix", "docs"], vec!["check"]]);
}

#[test]
fn a_plan_with_a_cycle_or_an_unknown_dependency_is_refused() {
    let mut p: Plan = serde_json::from_value(samples::plan()).unwrap();
    p.tasks[0].depends_on = vec!["check".into()];
    assert!(matches!(p.levels(), Err(PlanError::Cycle(ids)) if ids.contains(&"fix".to_string())));
    p.tasks[0].depends_on = vec!["nope".into()];
    assert!(matches!(
        p.levels(),
        Err(PlanError::UnknownDependency { .. })
    ));
    p.tasks.clear();
    assert_eq!(p.levels(), Err(PlanError::Empty));
}

#[tokio::test(flavor = "multi_thread")]
async fn codegen_edits_the_worktree_with_workspace_tools() {
    let repo = small_repo();
    let agent = codegen(repo.path(), CodegenOptions::default()).unwrap();
    let (obj, called, server) = run(
        agent,
        "CodeGenAgent",
        vec![
            Reply::call("read_file", json!({"path": "calc.sh"})),
            Reply::call("edit", json!({"path": "calc.sh", "old_string": "$(($1 - $2))", "new_string": "$(($1 + $2))"})),
            Reply::Json(samples::code_change()),
        ],
        "fix calc.sh",
    )
    .await;
    assert_eq!(called, ["read_file", "edit"]);
    let tools = offered(&server);
    for t in ["read_file", "edit", "grep", "shell", "git_diff", "repo_map"] {
        assert!(tools.contains(&t.to_string()), "{t} offered: {tools:?}");
    }
    assert!(
        !tools.contains(&"git_commit".to_string()),
        "committing is the pipeline's job"
    );
    let c: CodeChange = serde_json::from_value(obj).unwrap();
    assert_eq!(c.files_changed, ["calc.sh"]);
    let ok = Command::new("sh")
        .arg("test.sh")
        .current_dir(repo.path())
        .status()
        .unwrap();
    assert!(ok.success(), "the edit landed in the repository");
}

#[tokio::test(flavor = "multi_thread")]
async fn review_runs_the_configured_checks_and_scores() {
    let repo = small_repo();
    let commands = RepoCommands {
        test: Some(vec!["sh".into(), "test.sh".into()]),
        lint: Some(vec!["true".into()]),
        ..RepoCommands::default()
    };
    let (obj, called, server) = run(
        review(repo.path(), commands).unwrap(),
        "ReviewAgent",
        vec![
            Reply::call("run_checks", json!({"names": ["test", "lint", "security"]})),
            Reply::Json(json!({"score": 40, "findings": [{"severity": "high", "file": "calc.sh", "line": 2, "message": "subtracts"}], "summary": "test fails"})),
        ],
        "review the change",
    )
    .await;
    assert_eq!(called, ["run_checks"]);
    let r: Review = serde_json::from_value(obj).unwrap();
    assert_eq!(r.score, 40);
    // The check results the model saw: test failed, lint passed, security not configured.
    let seen = server.requests()[1].to_string();
    assert!(
        seen.contains(r#"\"name\":\"test\",\"passed\":false"#)
            || seen.contains("\\\"passed\\\":false"),
        "{seen}"
    );
    assert!(
        seen.contains("no `security` command is configured"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn review_score_above_100_is_refused_by_the_schema() {
    let repo = small_repo();
    let server = ReplayServer::start(script(
        "ReviewAgent",
        vec![
            Reply::Json(samples::review(140)),
            Reply::Json(samples::review(90)),
        ],
    ))
    .unwrap();
    let answer = review(repo.path(), RepoCommands::default())
        .unwrap()
        .model(server.model().unwrap())
        .generate("x")
        .await
        .unwrap();
    assert_eq!(
        answer.object.unwrap()["score"],
        90,
        "the repair call's answer"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pr_agent_writes_a_conventional_commits_title() {
    let repo = small_repo();
    let (obj, called, _s) = run(
        pr(repo.path()).unwrap(),
        "PRAgent",
        vec![
            Reply::call("git_status", json!({})),
            Reply::Json(samples::pr_draft()),
        ],
        "issue 7, branch miyabi/issue-7",
    )
    .await;
    assert_eq!(called, ["git_status"]);
    let d: PullRequestDraft = serde_json::from_value(obj).unwrap();
    assert!(d.body.contains("Closes #7"));
    // A title that is not Conventional Commits is refused (then repaired).
    let server = ReplayServer::start(script(
        "PRAgent",
        vec![
            Reply::Json(json!({"title": "Fixed it", "body": "b"})),
            Reply::Json(samples::pr_draft()),
        ],
    ))
    .unwrap();
    let a = pr(repo.path())
        .unwrap()
        .model(server.model().unwrap())
        .generate("x")
        .await
        .unwrap();
    assert_eq!(
        a.object.unwrap()["title"],
        "fix(calc): add instead of subtracting"
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn deployment_deploys_checks_health_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let commands = RepoCommands {
        deploy: Some(vec!["sh".into(), "-c".into(), "echo v2 > deployed".into()]),
        health: Some(vec!["sh".into(), "-c".into(), "grep -q v3 deployed".into()]),
        rollback: Some(vec!["sh".into(), "-c".into(), "echo v1 > deployed".into()]),
        ..RepoCommands::default()
    };
    let (obj, called, server) = run(
        deployment(dir.path(), commands.clone(), false),
        "DeploymentAgent",
        vec![
            Reply::call("deploy", json!({})),
            Reply::call("health_check", json!({})),
            Reply::call("rollback", json!({})),
            Reply::Json(json!({"environment": "staging", "deployed": true, "healthy": false, "rolled_back": true, "summary": "health check failed; rolled back"})),
        ],
        "deploy to staging",
    )
    .await;
    assert_eq!(called, ["deploy", "health_check", "rollback"]);
    let r: DeployReport = serde_json::from_value(obj).unwrap();
    assert!(r.rolled_back);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("deployed"))
            .unwrap()
            .trim(),
        "v1"
    );
    assert!(
        server.requests()[2]
            .to_string()
            .contains("\\\"passed\\\":false")
    );

    // In production, the deploy call waits for a human.
    let server = ReplayServer::start(script(
        "DeploymentAgent",
        vec![Reply::call("deploy", json!({}))],
    ))
    .unwrap();
    let a = deployment(dir.path(), commands, true)
        .model(server.model().unwrap())
        .generate("deploy to production")
        .await
        .unwrap();
    assert_eq!(a.stop, miyabi::agent::StopReason::ApprovalRequired);
    assert_eq!(a.pending[0].tool, "deploy");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("deployed"))
            .unwrap()
            .trim(),
        "v1",
        "not deployed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refresher_lists_runs_and_decides_updates() {
    let engine = Engine::in_memory();
    let wf = miyabi::Workflow::new("issue-resolution")
        .step(
            "x",
            miyabi::step_fn(|_c: miyabi::StepContext, v: Value| async move { Ok(v) }),
        )
        .commit()
        .unwrap();
    engine.start(&wf, json!({"issue": 7})).await.unwrap();
    let (obj, called, server) = run(
        refresher(engine),
        "RefresherAgent",
        vec![
            Reply::call(
                "list_runs",
                json!({"workflow": "issue-resolution", "status": "succeeded"}),
            ),
            Reply::Json(samples::refresh_report()),
        ],
        "issues: #7 (state:implementing)",
    )
    .await;
    assert_eq!(called, ["list_runs"]);
    assert!(server.requests()[1].to_string().contains("succeeded"));
    let r: RefreshReport = serde_json::from_value(obj).unwrap();
    assert_eq!(r.updates[0].state, "state:done");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_business_preset_answers_in_its_schema() {
    let presets: Vec<(&str, &str, Agent)> = vec![
        ("entrepreneur", "AIEntrepreneurAgent", entrepreneur()),
        ("self-analysis", "SelfAnalysisAgent", self_analysis()),
        ("market-research", "MarketResearchAgent", market_research()),
        ("persona", "PersonaAgent", persona()),
        ("product-concept", "ProductConceptAgent", product_concept()),
        ("product-design", "ProductDesignAgent", product_design()),
        (
            "content-creation",
            "ContentCreationAgent",
            content_creation(),
        ),
        ("funnel-design", "FunnelDesignAgent", funnel_design()),
        ("sns-strategy", "SNSStrategyAgent", sns_strategy()),
        ("marketing", "MarketingAgent", marketing()),
        ("sales", "SalesAgent", sales()),
        ("crm", "CRMAgent", crm()),
        ("analytics", "AnalyticsAgent", analytics()),
        ("youtube", "YouTubeAgent", youtube()),
    ];
    for (name, marker, agent) in presets {
        assert_eq!(agent.name(), name);
        let (obj, _, server) = run(
            agent,
            marker,
            vec![Reply::Json(samples::business(name))],
            "a tea shop for developers",
        )
        .await;
        assert_eq!(obj, samples::business(name));
        assert!(
            server.requests()[0]["response_format"].is_object(),
            "{name} sends its schema"
        );
    }
    // Two personas are too few: the schema says 3 to 5.
    let mut two = samples::business("persona");
    two["personas"].as_array_mut().unwrap().truncate(2);
    let server = ReplayServer::start(script(
        "PersonaAgent",
        vec![Reply::Json(two.clone()), Reply::Json(two)],
    ))
    .unwrap();
    assert!(
        persona()
            .model(server.model().unwrap())
            .generate("x")
            .await
            .is_err()
    );
}

#[test]
fn the_catalog_lists_21_presets_with_schemas() {
    let c = catalog();
    assert_eq!(c.len(), 21);
    assert_eq!(c.iter().filter(|p| p.group == "coding").count(), 7);
    for p in &c {
        assert!(
            p.instructions
                .starts_with(&format!("You are the {} of Miyabi", p.agent)),
            "{}",
            p.name
        );
        assert_eq!(p.output_schema["type"], "object", "{}", p.name);
    }
}

fn business_script() -> Script {
    let mut s = Script::new();
    for (stage, marker) in [
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
        s.insert(marker.into(), vec![Reply::Json(samples::business(stage))]);
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn the_business_pipeline_passes_outputs_on_and_lets_the_founder_edit() {
    let server = ReplayServer::start(business_script()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let wf = business::business_pipeline(BusinessOptions {
        model: Some(server.model().unwrap()),
        gates_after: Some(vec!["persona".into()]),
        approvers: vec!["founder".into()],
    })
    .unwrap();
    let run = engine
        .start(&wf, json!("A tea subscription for developers"))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    assert_eq!(run.suspended[0].path, "review-persona");
    // The founder renames a persona.
    let mut edited = samples::business("persona");
    edited["personas"][0]["name"] = json!("Founder's Aki");
    engine
        .approvals()
        .decide(
            &run.id,
            "review-persona",
            &Approver::new("founder"),
            Decision::edit_and_approve(edited),
        )
        .await
        .unwrap();
    let run = engine.wait(&run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let out = run.output.unwrap();
    assert_eq!(out["brief"], "A tea subscription for developers");
    assert_eq!(out["persona"]["personas"][0]["name"], "Founder's Aki");
    assert_eq!(out["analytics"], samples::business("analytics"));
    // Every stage saw the previous ones; the stage after the gate saw the edit.
    let reqs = server.requests();
    let concept = reqs
        .iter()
        .find(|r| r.to_string().contains("You are the ProductConceptAgent"))
        .unwrap()
        .to_string();
    assert!(
        concept.contains("Founder's Aki") && concept.contains("TeaCo"),
        "{concept}"
    );
    let analytics_req = reqs
        .iter()
        .find(|r| r.to_string().contains("You are the AnalyticsAgent"))
        .unwrap()
        .to_string();
    assert!(
        analytics_req.contains("ltv_target_usd"),
        "crm's output reached analytics"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn codegen_runs_the_repositorys_configured_checks_without_asking() {
    let repo = small_repo();
    let commands = RepoCommands {
        test: Some(vec!["sh".into(), "test.sh".into()]),
        ..RepoCommands::default()
    };
    let script = || {
        vec![
            Reply::call("shell", json!({"command": "sh test.sh"})),
            Reply::Json(samples::code_change()),
        ]
    };
    // With the configured test command allowed, the shell runs it (the test fails: calc.sh
    // subtracts) and the answer comes back.
    let allowed = codegen(
        repo.path(),
        CodegenOptions::default().allow_commands(&commands),
    )
    .unwrap();
    let (obj, called, server) = run(allowed, "CodeGenAgent", script(), "run the tests").await;
    assert_eq!(called, ["shell"]);
    assert_eq!(obj, samples::code_change());
    let result = server.requests()[1].to_string();
    assert!(
        result.contains(r#"\"exit_code\":1"#),
        "the test ran and failed: {result}"
    );
    // Without it, the same call waits for a human.
    let server = ReplayServer::start(script_for("CodeGenAgent", script())).unwrap();
    let a = codegen(repo.path(), CodegenOptions::default())
        .unwrap()
        .model(server.model().unwrap())
        .generate("run the tests")
        .await
        .unwrap();
    assert_eq!(a.stop, miyabi::agent::StopReason::ApprovalRequired);
    assert_eq!(a.pending[0].tool, "shell");
}

fn script_for(agent: &str, replies: Vec<Reply>) -> Script {
    script(agent, replies)
}
