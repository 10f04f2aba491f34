#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Agents as workflow steps: output into the next step, transcript events, approval suspend →
//! resume (on one engine and across engine instances on one SQLite file), and recovery after
//! the process running the workflow is SIGKILLed, without a second model call for committed
//! steps.

mod agent_support;

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agent_support::{Scripted, calls, last_tool_results, server_error, text};
use futures::StreamExt;
use miyabi::tool::tool_json;
use miyabi::{
    Agent, Engine, EventKind, Memory, RetryPolicy, RunStatus, StepContext, ToolContext, Workflow,
    step_fn,
};
use serde_json::{Value, json};

fn deploy_tool(count: Arc<AtomicUsize>) -> miyabi::tool::FnTool {
    tool_json(
        "deploy",
        "Deploys a version to production",
        json!({"type": "object", "properties": {"version": {"type": "string"}}, "required": ["version"]}),
        move |ctx: ToolContext, args: Value| {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(json!({
                    "deployed": args["version"],
                    "key": ctx.idempotency_key(),
                }))
            }
        },
    )
    .requires_approval(true)
}

#[tokio::test]
async fn agent_as_a_step_feeds_the_next_step() {
    let analyst = Scripted::new(vec![text(r#"{"quality": 0.93, "issue": "typo"}"#)]);
    let writer = Scripted::new(vec![text("Fixed the typo.")]);
    let analyze = Agent::new("analyze")
        .model(analyst.clone())
        .output_schema(json!({
            "type": "object",
            "properties": {"quality": {"type": "number"}, "issue": {"type": "string"}},
            "required": ["quality", "issue"]
        }));
    let implement = Agent::new("implement").model(writer.clone());
    let wf = Workflow::new("issue")
        .step("analyze", analyze)
        .then("implement", implement)
        .then(
            "report",
            step_fn(|_ctx: StepContext, v: Value| async move { Ok(json!({ "report": v })) }),
        )
        .commit()
        .unwrap();
    let engine = Engine::in_memory();
    let run = engine
        .start(
            &wf,
            json!({"prompt": "Title: Fix teh docs", "thread": null}),
        )
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output, Some(json!({"report": "Fixed the typo."})));
    // The structured object of `analyze` became the prompt of `implement`, as JSON text.
    let sent = writer.requests()[0].messages[0].text();
    let parsed: Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(parsed, json!({"quality": 0.93, "issue": "typo"}));
    // Each turn is in the run's event log under the step's path.
    let events: Vec<_> = engine
        .events(&run.id, 0)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let turns: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Custom { path, name, data } if name == "agent-turn" => {
                Some((path.clone(), data.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(turns.len(), 2, "{events:?}");
    assert_eq!(&*turns[0].0, "analyze");
    assert_eq!(turns[0].1["turn"]["usage"]["input_tokens"], 10);
    assert_eq!(&*turns[1].0, "implement");
}

#[tokio::test]
async fn approval_suspends_and_resume_continues_without_new_model_calls() {
    let model = Scripted::new(vec![
        calls(&[("c1", "deploy", json!({"version": "1.2.0"}))]),
        text("Deployed 1.2.0."),
    ]);
    let count = Arc::new(AtomicUsize::new(0));
    let agent = Agent::new("release")
        .model(model.clone())
        .tool(deploy_tool(count.clone()));
    let wf = Workflow::new("release")
        .step("ship", agent)
        .commit()
        .unwrap();
    let engine = Engine::in_memory();
    let run = engine.start(&wf, json!("ship 1.2.0")).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    assert_eq!(run.suspended[0].path, "ship");
    let payload = &run.suspended[0].payload;
    assert_eq!(payload["kind"], "tool-approval");
    assert_eq!(payload["pending"][0]["tool"], "deploy");
    assert_eq!(
        payload["pending"][0]["arguments"],
        json!({"version": "1.2.0"})
    );
    assert_eq!(count.load(Ordering::SeqCst), 0);
    assert_eq!(model.calls(), 1);

    let run = engine
        .resume(&run.id, "ship", json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output, Some(json!("Deployed 1.2.0.")));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(model.calls(), 2, "the first turn was not asked again");
    let result = &last_tool_results(&model.requests()[1])[0];
    assert_eq!(result.content["deployed"], "1.2.0");
    assert_eq!(
        result.content["key"],
        format!("{}:ship:c1", run.id),
        "tools get a replay-stable idempotency key"
    );
}

#[tokio::test]
async fn declined_approval_inside_a_workflow() {
    let model = Scripted::new(vec![
        calls(&[("c1", "deploy", json!({"version": "9.9.9"}))]),
        text("Not deployed."),
    ]);
    let count = Arc::new(AtomicUsize::new(0));
    let agent = Agent::new("release")
        .model(model.clone())
        .tool(deploy_tool(count.clone()));
    let wf = Workflow::new("release")
        .step("ship", agent)
        .commit()
        .unwrap();
    let engine = Engine::in_memory();
    let run = engine.start(&wf, json!("ship 9.9.9")).await.unwrap();
    let run = engine
        .resume(
            &run.id,
            "ship",
            json!({"approved": false, "reason": "freeze week"}),
        )
        .await
        .unwrap();
    assert_eq!(run.output, Some(json!("Not deployed.")));
    assert_eq!(count.load(Ordering::SeqCst), 0);
    let result = &last_tool_results(&model.requests()[1])[0];
    assert!(result.is_error);
    assert!(
        result.content.as_str().unwrap().contains("freeze week"),
        "{result:?}"
    );
}

#[tokio::test]
async fn approval_resumes_on_another_engine_instance() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let memory_db = db.clone();
    let wf_for = |model: Arc<Scripted>, count: Arc<AtomicUsize>, memory: Memory| {
        let agent = Agent::new("release")
            .model(model)
            .memory(memory)
            .tool(deploy_tool(count));
        Workflow::new("release")
            .step("ship", agent)
            .then(
                "notify",
                step_fn(|_c: StepContext, v: Value| async move { Ok(json!({"said": v})) }),
            )
            .commit()
            .unwrap()
    };

    // Process one: runs until the approval, then goes away.
    let first = Scripted::new(vec![
        text("Let me check."),
        calls(&[("c9", "deploy", json!({"version": "2.0.0"}))]),
    ]);
    let run_id = {
        let memory = Memory::sqlite(&memory_db).unwrap();
        let engine = Engine::sqlite(&db).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        // The first reply has no tool call, so use a thread to give history to the second
        // generation: one generation per prompt.
        let wf = wf_for(first.clone(), count.clone(), memory.clone());
        let agent = Agent::new("release")
            .model(first.clone())
            .memory(memory.clone());
        agent
            .generate(miyabi::AgentInput::prompt("status?").thread("ops"))
            .await
            .unwrap();
        let run = engine
            .start(&wf, json!({"prompt": "ship 2.0.0", "thread": "ops"}))
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Suspended);
        assert_eq!(count.load(Ordering::SeqCst), 0);
        run.id
    };
    assert_eq!(first.calls(), 2);

    // Process two: a new engine and a new model on the same file. Only the turn after the
    // approval reaches the model; it sees the whole conversation so far.
    let second = Scripted::new(vec![text("Shipped 2.0.0.")]);
    let memory = Memory::sqlite(&memory_db).unwrap();
    let engine = Engine::sqlite(&db).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let wf = wf_for(second.clone(), count.clone(), memory.clone());
    engine.register(&wf);
    let run = engine
        .resume(
            &run_id,
            "ship",
            json!({"decisions": {"c9": {"approved": true}}}),
        )
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output, Some(json!({"said": "Shipped 2.0.0."})));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(second.calls(), 1);
    let req = &second.requests()[0];
    let texts: Vec<String> = req.messages.iter().map(|m| m.text()).collect();
    assert_eq!(texts[0], "status?", "history from memory: {texts:?}");
    assert_eq!(texts[1], "Let me check.");
    assert_eq!(texts[2], "ship 2.0.0");
    assert_eq!(last_tool_results(req)[0].content["deployed"], "2.0.0");
    // The thread holds both generations: 2 + 4 messages, stored once.
    let info = memory.thread_info("ops").await.unwrap().unwrap();
    assert_eq!(info.messages, 6);
    // The checkpoint was cleared from the run state once the step finished.
    let state = engine.store().state(&run_id).unwrap();
    assert!(
        state
            .iter()
            .all(|(k, v)| !k.starts_with("miyabi.agent/") || v.is_null()),
        "{state:?}"
    );
}

/// Waits until `engine` has committed an event of the run matching `found` (the engine sends
/// an event to subscribers only once it is committed).
async fn wait_for_event(engine: &Engine, run_id: &str, found: impl Fn(&EventKind) -> bool) {
    let mut events = std::pin::pin!(engine.events(run_id, 1));
    while let Some(e) = events.next().await {
        if found(&e.unwrap().kind) {
            return;
        }
    }
    panic!("the run's events ended before the awaited one");
}

// ---------------------------------------------------------------------------------------------
// SIGKILL: the child runs `analyze` (an agent) then `wait` (a step that blocks until killed).

/// Reads the child's stdout until it prints `READY` (it blocks there until killed).
fn wait_ready(child: &mut std::process::Child) {
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    loop {
        use std::io::Read as _;
        let mut buf = [0u8; 256];
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "child exited before READY: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&seen).contains("READY") {
            return;
        }
    }
}

/// Starts this test binary as a helper process running `entry` (an ignored test in
/// `helper_process`), with `envs`.
fn helper(entry: &str, envs: &[(&str, &std::ffi::OsStr)]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--ignored",
        "--exact",
        &format!("helper_process::{entry}"),
        "--nocapture",
        "--test-threads=1",
    ])
    .envs(envs.iter().copied());
    c
}

const CHILD: &str = "MIYABI_AGENT_CRASH_CHILD";
const CHILD_DB: &str = "MIYABI_AGENT_CRASH_DB";

/// With `block` (the engine running it), `wait` blocks until killed once `analyze` is
/// committed.
fn crash_workflow(model: Arc<Scripted>, block: Option<Engine>) -> miyabi::CommittedWorkflow {
    let agent = Agent::new("analyze").model(model).tools([tool_json(
        "lookup",
        "Looks up an issue",
        json!({"type": "object", "properties": {"id": {"type": "integer"}}}),
        |_c: ToolContext, a: Value| async move {
            Ok::<_, String>(json!({"id": a["id"], "title": "crash on start"}))
        },
    )]);
    Workflow::new("triage")
        .step("analyze", agent)
        .then(
            "wait",
            step_fn(move |c: StepContext, v: Value| {
                let block = block.clone();
                async move {
                    if let Some(engine) = block {
                        // Tell the parent once the agent's output is committed, then wait to be
                        // killed.
                        wait_for_event(&engine, c.run_id(), |k| {
                            matches!(k, EventKind::StepOutput { path, .. } if &**path == "analyze")
                        })
                        .await;
                        println!("READY");
                        tokio::time::sleep(Duration::from_secs(600)).await;
                    }
                    Ok(json!({"done": v}))
                }
            }),
        )
        .commit()
        .unwrap()
}

/// The helper processes' entry points: ignored tests that the tests above run in a child
/// process (`--ignored --exact helper_process::<name>`); they are not tests of their own.
mod helper_process {
    use super::*;

    /// Panics unless started by `parent` (which sets `var`).
    fn started_by(var: &str, parent: &str) {
        assert!(
            std::env::var(var).is_ok(),
            "a helper process entry point, run by `{parent}` in a child process: not a test"
        );
    }

    #[tokio::test]
    #[ignore = "helper process entry point"]
    async fn child_worker() {
        started_by(
            CHILD,
            "sigkill_after_agent_step_recovers_without_model_calls",
        );
        let db = std::env::var(CHILD_DB).unwrap();
        let model = Scripted::new(vec![
            calls(&[("l1", "lookup", json!({"id": 7}))]),
            text("Issue 7 crashes on start."),
        ]);
        let engine = Engine::sqlite(&db).unwrap();
        let wf = crash_workflow(model, Some(engine.clone()));
        let _ = engine.start(&wf, json!("triage issue 7")).await;
    }

    #[tokio::test]
    #[ignore = "helper process entry point"]
    async fn midstep_child_worker() {
        started_by(
            MID_CHILD,
            "sigkill_inside_an_agent_step_resumes_from_its_last_turn",
        );
        let db = std::path::PathBuf::from(std::env::var(CHILD_DB).unwrap());
        let model = Scripted::new(vec![calls(&[("s1", "slow_lookup", json!({}))])]);
        let engine = Engine::sqlite(&db).unwrap();
        let wf = midstep_workflow(model, &db, Some(engine.clone()));
        let _ = engine.start(&wf, json!("triage issue 8")).await;
    }

    #[tokio::test]
    #[ignore = "helper process entry point"]
    async fn approval_child_worker() {
        started_by(APPROVAL_CHILD, "approval_survives_a_process_restart");
        let db = std::path::PathBuf::from(std::env::var(CHILD_DB).unwrap());
        let model = Scripted::new(vec![calls(&[(
            "c7",
            "deploy",
            json!({"version": "7.0.0"}),
        )])]);
        let engine = Engine::sqlite(&db).unwrap();
        let run = engine
            .start(
                &approval_workflow(model, Arc::new(AtomicUsize::new(0))),
                json!("ship 7.0.0"),
            )
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Suspended);
        println!("RUN {}", run.id);
    }
}

#[tokio::test]
async fn sigkill_after_agent_step_recovers_without_model_calls() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let mut child = helper(
        "child_worker",
        &[(CHILD, "1".as_ref()), (CHILD_DB, db.as_os_str())],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_ready(&mut child);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));

    // Recover in this process with a model that has no replies: any call would fail the run.
    let model = Scripted::new(vec![]);
    let engine = Engine::builder()
        .store(miyabi::SqliteStore::open(&db).unwrap())
        .lease(Duration::from_millis(200))
        .build();
    let wf = crash_workflow(model.clone(), None);
    engine.register(&wf);
    // The child's process is gone (reaped above), so its run is taken over at once.
    let recovered = engine.recover().await.unwrap();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    let run = engine.wait(&recovered[0]).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(
        run.output,
        Some(json!({"done": "Issue 7 crashes on start."}))
    );
    assert_eq!(
        model.calls(),
        0,
        "the committed agent step was not run again"
    );
}

// ---------------------------------------------------------------------------------------------
// Per-turn checkpoints (`Agent::checkpoints`).

#[tokio::test]
async fn a_retried_step_continues_from_its_last_turn() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let model = Scripted::script(vec![
        Ok(calls(&[("c1", "lookup", json!({"id": 1}))])),
        Err(server_error()),
        Ok(text("Issue 1 crashes on start.")),
    ]);
    let looked_up = Arc::new(AtomicUsize::new(0));
    let l = looked_up.clone();
    let agent = Agent::new("triage")
        .model(model.clone())
        .checkpoints(Memory::sqlite(&db).unwrap())
        .tool(tool_json(
            "lookup",
            "Looks up an issue",
            json!({"type": "object"}),
            move |_c: ToolContext, _a: Value| {
                let l = l.clone();
                async move {
                    l.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(json!("crash on start"))
                }
            },
        ));
    let wf = Workflow::new("triage")
        .step(
            "triage",
            miyabi::Node::step(agent)
                .retry(RetryPolicy::attempts(2).initial_delay(Duration::from_millis(1))),
        )
        .commit()
        .unwrap();
    let engine = Engine::sqlite(&db).unwrap();
    let run = engine.start(&wf, json!("triage 1")).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output, Some(json!("Issue 1 crashes on start.")));
    // Attempt 1: tool call, lookup, then a 503. Attempt 2: only the failed call is repeated.
    assert_eq!(model.calls(), 3);
    assert_eq!(
        looked_up.load(Ordering::SeqCst),
        1,
        "the finished round did not run again"
    );
    let retried = &model.requests()[2];
    assert_eq!(
        retried,
        &model.requests()[1],
        "attempt 2 sent the same conversation"
    );
    // The checkpoint is gone once the step finished.
    let memory = Memory::sqlite(&db).unwrap();
    let scope = miyabi::memory::Scope::Resource(format!("miyabi.agent:{}:triage", run.id));
    assert!(memory.scope(scope).all().await.unwrap().is_empty());
}

#[tokio::test]
async fn approval_with_checkpoints_does_not_rerun_finished_calls() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let model = Scripted::new(vec![
        calls(&[
            ("c1", "deploy", json!({"version": "3.0.0"})),
            ("c2", "lookup", json!({})),
        ]),
        text("Deployed 3.0.0."),
    ]);
    let deployed = Arc::new(AtomicUsize::new(0));
    let looked_up = Arc::new(AtomicUsize::new(0));
    let l = looked_up.clone();
    let agent = Agent::new("release")
        .model(model.clone())
        .checkpoints(Memory::sqlite(&db).unwrap())
        .tool(deploy_tool(deployed.clone()))
        .tool(tool_json(
            "lookup",
            "Reads the changelog",
            json!({"type": "object"}),
            move |_c: ToolContext, _a: Value| {
                let l = l.clone();
                async move {
                    l.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(json!("changelog"))
                }
            },
        ));
    let wf = Workflow::new("release")
        .step("ship", agent)
        .commit()
        .unwrap();
    let engine = Engine::sqlite(&db).unwrap();
    let run = engine.start(&wf, json!("ship 3.0.0")).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    assert_eq!(looked_up.load(Ordering::SeqCst), 1);
    let run = engine
        .resume(&run.id, "ship", json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(deployed.load(Ordering::SeqCst), 1);
    assert_eq!(looked_up.load(Ordering::SeqCst), 1);
    assert_eq!(model.calls(), 2);
    let results = last_tool_results(&model.requests()[1]);
    assert_eq!(results[1].content, json!("changelog"));
}

const MID_CHILD: &str = "MIYABI_AGENT_MIDSTEP_CHILD";

/// With `block` (the engine running it), the tool blocks until killed once the run is
/// committed.
fn midstep_workflow(
    model: Arc<Scripted>,
    db: &std::path::Path,
    block: Option<Engine>,
) -> miyabi::CommittedWorkflow {
    let agent = Agent::new("analyze")
        .model(model)
        .checkpoints(Memory::sqlite(db).unwrap())
        .tool(tool_json(
            "slow_lookup",
            "Looks up an issue slowly",
            json!({"type": "object"}),
            move |c: ToolContext, _a: Value| {
                let block = block.clone();
                async move {
                    if let Some(engine) = block {
                        // The model's first turn is saved; once the run itself is committed
                        // (its first event, committed with its row, reaches subscribers; the
                        // engine commits before it waits on this step), wait here to be killed.
                        wait_for_event(&engine, c.run_id().unwrap(), |_| true).await;
                        println!("READY");
                        tokio::time::sleep(Duration::from_secs(600)).await;
                    }
                    Ok::<_, String>(json!({"title": "crash on start"}))
                }
            },
        ));
    Workflow::new("midstep")
        .step("analyze", agent)
        .commit()
        .unwrap()
}

#[tokio::test]
async fn sigkill_inside_an_agent_step_resumes_from_its_last_turn() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let mut child = helper(
        "midstep_child_worker",
        &[(MID_CHILD, "1".as_ref()), (CHILD_DB, db.as_os_str())],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_ready(&mut child);
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));

    // Recovery: the model is asked only for the turn after the interrupted tool round.
    let model = Scripted::new(vec![text("Issue 8 crashes on start.")]);
    let engine = Engine::sqlite(&db).unwrap();
    let wf = midstep_workflow(model.clone(), &db, None);
    engine.register(&wf);
    // The child's process is gone (reaped above), so its run is taken over at once.
    let recovered = engine.recover().await.unwrap();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    let run = engine.wait(&recovered[0]).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output, Some(json!("Issue 8 crashes on start.")));
    assert_eq!(model.calls(), 1, "the first turn came from the checkpoint");
    let req = &model.requests()[0];
    assert_eq!(req.messages[0].text(), "triage issue 8");
    assert_eq!(
        last_tool_results(req)[0].content,
        json!({"title": "crash on start"})
    );
}

// ---------------------------------------------------------------------------------------------
// Approval across a process restart: a child process starts the run, which suspends for
// approval, and exits; this process resumes it.

const APPROVAL_CHILD: &str = "MIYABI_AGENT_APPROVAL_CHILD";

fn approval_workflow(model: Arc<Scripted>, count: Arc<AtomicUsize>) -> miyabi::CommittedWorkflow {
    Workflow::new("release-process")
        .step(
            "ship",
            Agent::new("release").model(model).tool(deploy_tool(count)),
        )
        .commit()
        .unwrap()
}

#[tokio::test]
async fn approval_survives_a_process_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let out = helper(
        "approval_child_worker",
        &[(APPROVAL_CHILD, "1".as_ref()), (CHILD_DB, db.as_os_str())],
    )
    .stderr(Stdio::null())
    .output()
    .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The test harness prints `test approval_child_worker ... ` on the same line.
    let run_id = stdout
        .split("RUN ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run id from the child: {stdout}"))
        .to_owned();

    let model = Scripted::new(vec![text("Shipped 7.0.0.")]);
    let count = Arc::new(AtomicUsize::new(0));
    let engine = Engine::sqlite(&db).unwrap();
    engine.register(&approval_workflow(model.clone(), count.clone()));
    let suspended = engine.get(&run_id).await.unwrap().unwrap();
    assert_eq!(suspended.status, RunStatus::Suspended);
    assert_eq!(
        suspended.suspended[0].payload["pending"][0]["call_id"],
        "c7"
    );
    let run = engine
        .resume(&run_id, "ship", json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output, Some(json!("Shipped 7.0.0.")));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(model.calls(), 1, "only the turn after the approval");
    assert_eq!(
        last_tool_results(&model.requests()[0])[0].content["deployed"],
        "7.0.0"
    );
}

#[tokio::test]
async fn cancelling_a_run_stops_a_waiting_model_call_and_a_running_tool() {
    // A model call that would take 30 s.
    let slow_model = Scripted::slow(Duration::from_secs(30));
    let wf = Workflow::new("slow-model")
        .step("think", Agent::new("slow").model(slow_model.clone()))
        .commit()
        .unwrap();
    let engine = Engine::in_memory();
    let handle = engine.spawn(&wf, json!("think hard")).unwrap();
    // The step has started (and so has its model call) once its start is committed.
    wait_for_event(
        &engine,
        handle.id(),
        |k| matches!(k, EventKind::StepStarted { path, .. } if &**path == "think"),
    )
    .await;
    let run = engine.cancel(handle.id()).await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(slow_model.calls(), 0, "the model call never answered");

    // A tool that waits for its cancellation token, and tells which came first.
    let (started_tx, started_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (saw_tx, mut saw_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let agent = Agent::new("waiter")
        .model(Scripted::new(vec![calls(&[("w", "wait", json!({}))])]))
        .tool(tool_json(
            "wait",
            "Waits",
            json!({"type": "object"}),
            move |ctx: ToolContext, _a: Value| {
                let (started, saw) = (started_tx.clone(), saw_tx.clone());
                async move {
                    let _ = started.send(());
                    let cancelled = tokio::select! {
                        _ = ctx.cancellation().cancelled() => true,
                        _ = tokio::time::sleep(Duration::from_secs(30)) => false,
                    };
                    let _ = saw.send(cancelled);
                    Ok::<_, String>(json!("done"))
                }
            },
        ));
    let wf = Workflow::new("slow-tool")
        .step("wait", agent)
        .commit()
        .unwrap();
    let handle = engine.spawn(&wf, json!("wait")).unwrap();
    let mut started_rx = started_rx;
    started_rx.recv().await.unwrap();
    let run = engine.cancel(handle.id()).await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    // The tool got the run's cancellation through its context (before its 30 s wait ended).
    assert_eq!(saw_rx.recv().await, Some(true));
}
