//! Commands that wait for a human inside the issue-resolution pipeline: a CodeGenAgent task of
//! the plan's child run (or of the fix loop) calls the shell with a command the permission
//! policy asks about. The pipeline run suspends with a payload naming the child run, its path
//! and the command; resuming it with a decision forwards the decision to the child, and the
//! pipeline goes on to the draft PR. A declined command reaches the model as an error result.
//! Also as the `miyabi-run` program: asked on a terminal, refused without one (exit 3, with
//! how to resume), approved with `--approve-commands`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::process::{Command, Stdio};

use miyabi::approval::{Approver, Decision};
use miyabi::{Engine, Run, RunStatus};
use miyabi_agents::github::{GitHub, RepoRef};
use miyabi_agents::pipeline::{self, GitHubTarget, PipelineConfig};
use miyabi_agents::replay::{ReplayServer, Script};
use serde_json::{Value, json};
use support::demo::{self, Demo};
use support::fake_github::{self, FakeGitHub};

const TOKEN: &str = "ghp_approvals_token";
const TITLE: &str = "fix(calc): add the arguments instead of subtracting them";
/// Asked about: `sed` is in no allow list of the policy, the repository or the pipeline.
const SED: &str = "sed -i 's/[$]1 - [$]2/$2 + $1/' calc.sh";
const FIX_KEY: &str = "CodeGenAgent|\"id\":\"fix\"";

fn issue() -> Value {
    json!({"issue": {"number": 7, "title": "calc.sh subtracts instead of adding",
                     "body": "`sh calc.sh 2 3` prints -1; it should print 5."}})
}

struct Pipeline {
    demo: Demo,
    gh: FakeGitHub,
    model: ReplayServer,
    engine: Engine,
    workflow: miyabi::CommittedWorkflow,
}

/// The demo pipeline with the demo's script, `edit` applied to it.
async fn pipeline(edit: impl FnOnce(&mut Value)) -> Pipeline {
    let demo = demo::setup();
    let gh = fake_github::start(vec![7], 0).await;
    let mut script = demo::script();
    edit(&mut script);
    let script: Script = serde_json::from_value(script).unwrap();
    let model = ReplayServer::start(script).unwrap();
    let mut config = PipelineConfig::new(&demo.repo, model.model().unwrap()).unwrap();
    config.approvers = vec!["alice".into()];
    config.github = Some(GitHubTarget {
        client: GitHub::new(&gh.url, Some(TOKEN.into())).unwrap(),
        repo: RepoRef::parse("acme/calc").unwrap(),
        remote: "origin".into(),
    });
    let engine = Engine::sqlite(&demo.db).unwrap();
    let workflow = pipeline::issue_resolution(&engine, config).unwrap();
    engine.register(&workflow);
    Pipeline {
        demo,
        gh,
        model,
        engine,
        workflow,
    }
}

fn shell(command: &str) -> Value {
    json!({"calls": [{"name": "shell", "arguments": {"command": command}}]})
}

/// The requests the model got from one agent's conversation (routed as the replay server
/// routes them), by their number of assistant messages.
fn conversation(model: &ReplayServer, agent: &str, needle: &str, turn: usize) -> Vec<Value> {
    model
        .requests()
        .into_iter()
        .filter(|r| {
            let msgs = r["messages"].as_array().unwrap();
            let text = |role: &str| {
                let c = &msgs.iter().find(|m| m["role"] == role).unwrap()["content"];
                c.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| c.to_string())
            };
            let (system, first_user) = (text("system"), text("user"));
            system.contains(&format!("You are the {agent}"))
                && first_user.contains(needle)
                && msgs.iter().filter(|m| m["role"] == "assistant").count() == turn
        })
        .collect()
}

/// The tool messages of a request.
fn tool_results(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            m["content"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| m["content"].to_string())
        })
        .collect()
}

/// Approves the gate and waits for the end; checks the one draft PR.
async fn approve_gate_and_finish(p: &Pipeline, run: &Run) -> Run {
    assert_eq!(run.status, RunStatus::Suspended, "{:?}", run.error);
    assert_eq!(run.suspended[0].path, "approval", "{:?}", run.suspended);
    p.engine
        .approvals()
        .decide(
            &run.id,
            "approval",
            &Approver::new("alice"),
            Decision::approve(),
        )
        .await
        .unwrap();
    let run = p.engine.wait(&run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let pulls = p.gh.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0]["title"], TITLE);
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_s_command_suspends_the_pipeline_and_runs_once_approved() {
    let p = pipeline(|s| {
        s[FIX_KEY] = json!([
            shell(SED),
            {"calls": [{"name": "read_file", "arguments": {"path": "calc.sh"}}]},
            {"json": {"summary": "calc.sh adds now.", "files_changed": ["calc.sh"], "tests_changed": false}}
        ]);
    })
    .await;
    let id = p
        .engine
        .spawn(&p.workflow, issue())
        .unwrap()
        .id()
        .to_owned();
    let run = p.engine.wait(&id).await.unwrap();

    // The pipeline waits at `implement`, naming the child run, its path and the command.
    assert_eq!(run.status, RunStatus::Suspended, "{:?}", run.error);
    assert_eq!(run.suspended.len(), 1);
    assert_eq!(run.suspended[0].path, "implement");
    let payload = &run.suspended[0].payload;
    assert_eq!(payload["kind"], "tool-approval", "{payload}");
    assert_eq!(payload["agent"], "codegen");
    assert_eq!(payload["path"], "task-fix");
    let child = payload["run"].as_str().unwrap().to_owned();
    let pending = payload["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{payload}");
    assert_eq!(pending[0]["tool"], "shell");
    assert_eq!(pending[0]["command"], SED);
    assert_eq!(pending[0]["arguments"]["command"], SED);
    assert_eq!(pending[0]["path"], "task-fix");
    assert!(!pending[0]["description"].as_str().unwrap().is_empty());
    assert!(payload["message"].as_str().unwrap().contains(SED));
    let child_run = p.engine.get(&child).await.unwrap().unwrap();
    assert_eq!(child_run.status, RunStatus::Suspended);
    assert_eq!(child_run.workflow, format!("plan-{id}"));
    assert_eq!(child_run.suspended[0].path, "task-fix");
    // Nothing ran yet.
    assert!(conversation(&p.model, "CodeGenAgent", "\"id\":\"fix\"", 1).is_empty());

    // A malformed decision is refused before anything is written.
    let bad = p.engine.resume(&id, "implement", json!({"yes": 1})).await;
    assert!(bad.is_err(), "{bad:?}");

    // Approved: the command runs in the task's worktree and the pipeline goes on.
    let run = p
        .engine
        .resume(&id, "implement", json!({"approved": true}))
        .await
        .unwrap();
    let after = conversation(&p.model, "CodeGenAgent", "\"id\":\"fix\"", 1);
    assert_eq!(
        after.len(),
        1,
        "the model was called once after the command"
    );
    let results = tool_results(&after[0]);
    assert!(results[0].contains("\"exit_code\":0"), "{results:?}");
    approve_gate_and_finish(&p, &run).await;
    // The command's change is what was pushed.
    let calc = p.demo.pushed("miyabi/issue-7", "calc.sh");
    assert!(calc.contains("echo $(($2 + $1))"), "{calc}");
    assert_eq!(
        p.engine.get(&child).await.unwrap().unwrap().status,
        RunStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_command_reaches_the_model_as_an_error_result() {
    let p = pipeline(|s| {
        s[FIX_KEY] = json!([
            shell(SED),
            {"calls": [{"name": "edit", "arguments": {"path": "calc.sh", "old_string": "echo $(($1 - $2))", "new_string": "echo $(($1 + $2))"}}]},
            {"json": {"summary": "calc.sh adds now.", "files_changed": ["calc.sh"], "tests_changed": false}}
        ]);
    })
    .await;
    let id = p
        .engine
        .spawn(&p.workflow, issue())
        .unwrap()
        .id()
        .to_owned();
    let run = p.engine.wait(&id).await.unwrap();
    assert_eq!(run.suspended[0].path, "implement", "{:?}", run.error);
    let run = p
        .engine
        .resume(
            &id,
            "implement",
            json!({"approved": false, "reason": "use the edit tool, not sed"}),
        )
        .await
        .unwrap();
    // The next request of the task's conversation holds the decline as the call's result.
    let after = conversation(&p.model, "CodeGenAgent", "\"id\":\"fix\"", 1);
    assert_eq!(after.len(), 1);
    let results = tool_results(&after[0]);
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(
        results[0].contains("use the edit tool, not sed"),
        "{results:?}"
    );
    approve_gate_and_finish(&p, &run).await;
    let calc = p.demo.pushed("miyabi/issue-7", "calc.sh");
    assert!(
        calc.contains("echo $(($1 + $2))"),
        "the edit, not sed: {calc}"
    );
}

/// The forward happened, then the process died before the pipeline's step went on: resumed
/// again with the same decision, the step finds the child no longer waiting, runs nothing
/// twice and goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_decision_forwarded_before_a_crash_is_not_forwarded_again() {
    let p = pipeline(|s| {
        s[FIX_KEY] = json!([
            shell(SED),
            {"json": {"summary": "calc.sh adds now.", "files_changed": ["calc.sh"], "tests_changed": false}}
        ]);
    })
    .await;
    let id = p
        .engine
        .spawn(&p.workflow, issue())
        .unwrap()
        .id()
        .to_owned();
    let run = p.engine.wait(&id).await.unwrap();
    let child = run.suspended[0].payload["run"].as_str().unwrap().to_owned();
    // What the forward did: the child took the decision and finished.
    let c = p
        .engine
        .resume(&child, "task-fix", json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(c.status, RunStatus::Succeeded, "{:?}", c.error);
    let run = p
        .engine
        .resume(&id, "implement", json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(
        conversation(&p.model, "CodeGenAgent", "\"id\":\"fix\"", 1).len(),
        1,
        "the command ran once, the model was asked once after it"
    );
    approve_gate_and_finish(&p, &run).await;
}

/// A decision forwarded before a crash is not applied again: the child was answered (here
/// directly, as a forward that the parent did not record) and asks about a second command at
/// the same path; resuming the parent with the first decision must not approve the second.
#[tokio::test(flavor = "multi_thread")]
async fn a_decision_is_never_applied_to_a_later_question() {
    let second = "sed -n 1p calc.sh";
    let p = pipeline(|s| {
        s[FIX_KEY] = json!([
            shell(SED),
            shell(second),
            {"json": {"summary": "calc.sh adds now.", "files_changed": ["calc.sh"], "tests_changed": false}}
        ]);
    })
    .await;
    let id = p
        .engine
        .spawn(&p.workflow, issue())
        .unwrap()
        .id()
        .to_owned();
    let run = p.engine.wait(&id).await.unwrap();
    let child = run.suspended[0].payload["run"].as_str().unwrap().to_owned();
    // The forward's effect, without the parent knowing.
    let c = p
        .engine
        .resume(&child, "task-fix", json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(c.status, RunStatus::Suspended);
    assert_eq!(
        c.suspended[0].payload["pending"][0]["arguments"]["command"],
        second
    );
    // The parent's step runs again with the first decision: it waits for the child and asks
    // about the second command instead of approving it.
    let run = p
        .engine
        .resume(&id, "implement", json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    assert_eq!(run.suspended[0].path, "implement");
    assert_eq!(run.suspended[0].payload["pending"][0]["command"], second);
    assert!(
        conversation(&p.model, "CodeGenAgent", "\"id\":\"fix\"", 2).is_empty(),
        "the second command was not run"
    );
    // Approved now, it runs and the pipeline goes on.
    let run = p
        .engine
        .resume(&id, "implement", json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(
        conversation(&p.model, "CodeGenAgent", "\"id\":\"fix\"", 2).len(),
        1
    );
    approve_gate_and_finish(&p, &run).await;
}

/// The fix loop's CodeGenAgent (`revise`) runs in the pipeline's own step: its command
/// suspends the pipeline at that step, and the resume goes on in the same worktree with what
/// the agent did before it asked.
#[tokio::test(flavor = "multi_thread")]
async fn the_fix_loop_s_command_suspends_and_resumes_in_the_same_worktree() {
    let touch = "sed -i 's/^A calculator in shell.$/A calculator in shell (reviewed)./' README.md";
    let p = pipeline(|s| {
        let first_edit = s["CodeGenAgent|Fix every finding"][0].clone();
        s["CodeGenAgent|Fix every finding"] = json!([
            first_edit,
            shell(touch),
            {"json": {"summary": "test.sh also checks a negative argument.", "files_changed": ["test.sh", "README.md"], "tests_changed": true}}
        ]);
    })
    .await;
    let id = p
        .engine
        .spawn(&p.workflow, issue())
        .unwrap()
        .id()
        .to_owned();
    let run = p.engine.wait(&id).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended, "{:?}", run.error);
    let at = run.suspended[0].path.clone();
    assert!(at.ends_with("revise"), "{at}");
    let payload = &run.suspended[0].payload;
    assert_eq!(payload["kind"], "tool-approval");
    assert_eq!(payload["pending"][0]["arguments"]["command"], touch);
    let run = p
        .engine
        .resume(&id, &at, json!({"approved": true}))
        .await
        .unwrap();
    let run = approve_gate_and_finish(&p, &run).await;
    assert_eq!(run.output.unwrap()["review"]["score"], 93);
    // The edit made before the question and the approved command are both in the branch.
    let test = p.demo.pushed("miyabi/issue-7", "test.sh");
    assert!(test.contains("calc.sh 10 -4"), "{test}");
    let readme = p.demo.pushed("miyabi/issue-7", "README.md");
    assert!(readme.contains("(reviewed)"), "{readme}");
}

/// `miyabi-run issue-resolution` without a terminal and without `--approve-commands` stops at
/// the command with exit code 3 and says how to resume; with `--approve-commands` the same
/// command continues the run to the PR.
#[tokio::test(flavor = "multi_thread")]
async fn the_program_exits_with_3_without_a_terminal_and_approve_commands_continues() {
    let d = demo::setup();
    let gh = fake_github::start(vec![7], 0).await;
    let mut script = demo::script();
    script[FIX_KEY] = json!([
        shell(SED),
        {"json": {"summary": "calc.sh adds now.", "files_changed": ["calc.sh"], "tests_changed": false}}
    ]);
    let replay = d.dir.path().join("replay.json");
    std::fs::write(&replay, script.to_string()).unwrap();
    let command = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_miyabi-run"));
        c.args(["issue-resolution", "--repo"])
            .arg(&d.repo)
            .args(["--issue-file"])
            .arg(d.repo.join("ISSUE.md"))
            .args([
                "--issue",
                "7",
                "--github-repo",
                "acme/calc",
                "--yes",
                "--db",
            ])
            .arg(&d.db)
            .arg("--replay")
            .arg(&replay)
            .args(extra)
            .env("GITHUB_API_URL", &gh.url)
            .env("GITHUB_TOKEN", TOKEN)
            .env_remove("MIYABI_DB")
            .env_remove("MIYABI_AGENTS_MODEL")
            .stdin(Stdio::null());
        c
    };
    let first = tokio::task::spawn_blocking({
        let mut c = command(&[]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert_eq!(
        first.status.code(),
        Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    for needle in [
        SED,
        "implement",
        "--approve-commands",
        "/resume",
        "task-fix",
    ] {
        assert!(stdout.contains(needle), "`{needle}` in:\n{stdout}");
    }
    assert!(gh.pulls().is_empty());

    let second = tokio::task::spawn_blocking({
        let mut c = command(&["--approve-commands", "--json"]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(stdout.contains("continued (suspended)"), "{stdout}");
    assert!(
        stdout.contains(SED),
        "the approved command is shown: {stdout}"
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(gh.pulls().len(), 1);
    let calc = d.pushed("miyabi/issue-7", "calc.sh");
    assert!(calc.contains("echo $(($2 + $1))"), "{calc}");
}
