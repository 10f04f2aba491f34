//! The issue-resolution workflow from Miyabi's brief, with stand-in local steps (no network, no
//! model), to show the engine alone. The real pipeline, with the agents' presets, git worktrees
//! and GitHub, is `miyabi run issue-resolution` of the crate `miyabi-agents` (`./scripts/demo`,
//! docs/agents21.md). This one:
//! analyze → implement → review (deploy | fix loop) → test ∥ lint ∥ security → human approval →
//! deploy, stored in a SQLite file.
//!
//! ```text
//! cargo run -p miyabi --example issue_resolution               # asks for approval on stdin
//! cargo run -p miyabi --example issue_resolution -- --yes      # approves on its own
//! cargo run -p miyabi --example issue_resolution -- --db runs.db --resume <run-id>
//! ```
//!
//! The run suspends at `code-review`. It is stored, so any process on the same file can resume
//! it: answer nothing (close stdin) and this process exits, leaving the run suspended; then
//! resume it with `--resume <run-id>`.

use std::error::Error;
use std::time::Duration;

use futures::StreamExt;
use miyabi::approval::{ApprovalGate, Approver, AuditFilter, Decision};
use miyabi::{
    Engine, EventKind, OnInterrupt, RetryPolicy, RunStatus, StepContext, StepError, Workflow,
    step_fn,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Issue {
    number: u64,
    title: String,
}

#[derive(Serialize, Deserialize)]
struct Patch {
    issue: u64,
    files: Vec<String>,
    quality: f64,
    summary: String,
}

/// Pretends to work for a moment, so the steps can be seen running.
async fn work(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn issue_resolution() -> Result<miyabi::CommittedWorkflow, miyabi::WorkflowError> {
    let analyze = step_fn(|_ctx: StepContext, issue: Issue| async move {
        work(300).await;
        Ok(json!({
            "issue": issue.number,
            "title": issue.title,
            "cause": "Config::load unwraps the first line of an empty file",
            "files": ["src/config.rs"],
        }))
    });

    let implement = step_fn(|ctx: StepContext, analysis: Value| async move {
        work(400).await;
        // Shared run state: persisted with the step's result, readable by later steps.
        ctx.set_state("title", analysis["title"].clone());
        Ok(Patch {
            issue: analysis["issue"].as_u64().unwrap_or(0),
            files: vec!["src/config.rs".into()],
            quality: 0.62,
            summary: "return the default config for an empty file".into(),
        })
    });

    // The `fix` arm: revise the patch until the reviewer's score is above 0.8 (at most 3 rounds).
    let revise = step_fn(|_ctx: StepContext, mut patch: Patch| async move {
        work(250).await;
        patch.quality = ((patch.quality + 0.12) * 100.0).round() / 100.0;
        Ok(patch)
    });
    let fix = Workflow::new("fix").dountil(
        "revise",
        revise,
        |patch: &Value| patch["quality"].as_f64() > Some(0.8),
        3,
    );
    let ship = step_fn(|_ctx: StepContext, patch: Value| async move { Ok(patch) });

    let test = step_fn(|ctx: StepContext, _patch: Value| async move {
        work(600).await;
        ctx.emit("progress", json!({ "passed": 48, "total": 48 }));
        Ok(json!({ "passed": 48, "failed": 0 }))
    });
    let lint = step_fn(|_ctx: StepContext, _patch: Value| async move {
        work(200).await;
        Ok(json!({ "warnings": 0 }))
    });
    // Fails once (a retryable error), then passes: the engine retries it.
    let security = step_fn(|ctx: StepContext, _patch: Value| async move {
        work(300).await;
        if ctx.attempt() == 1 {
            return Err(StepError::retryable("advisory database is busy"));
        }
        Ok(json!({ "findings": 0 }))
    })
    .retry(RetryPolicy::attempts(3).initial_delay(Duration::from_millis(200)));

    // The human in the loop: an approval gate. Its request shows the checks; its output is the
    // decision, with the data as approved.
    let code_review = ApprovalGate::new()
        .title("Deploy the fix?")
        .summary_from(|checks: &Value| format!("checks: {checks}"))
        .approvers([reviewer()]);

    // Deploying is not idempotent: if the process dies mid-deploy, a human decides what next.
    let deploy = step_fn(|ctx: StepContext, decision: Value| async move {
        if decision["approved"] != json!(true) {
            return Ok(json!({ "deployed": false, "reason": "rejected in review" }));
        }
        work(300).await;
        // The key is stable across retries and processes: a real deploy API would dedupe on it.
        Ok(json!({ "deployed": true, "version": "v1.4.1", "key": ctx.idempotency_key() }))
    })
    .non_idempotent(OnInterrupt::Suspend);

    Workflow::new("issue-resolution")
        .step("analyze", analyze)
        .then("implement", implement)
        .branch(
            "review",
            |patch: &Value| {
                if patch["quality"].as_f64() > Some(0.8) {
                    "deploy"
                } else {
                    "fix"
                }
            },
            [("deploy", ship), ("fix", fix.into())],
        )
        .parallel([("test", test), ("lint", lint), ("security", security)])
        .await_approval("code-review", code_review)
        .then("deploy", deploy)
        .commit()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut yes = false;
    let mut db = "miyabi-demo.db".to_string();
    let mut resume_id = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--yes" | "-y" => yes = true,
            "--db" => db = args.next().ok_or("--db needs a path")?,
            "--resume" => resume_id = Some(args.next().ok_or("--resume needs a run id")?),
            other => {
                return Err(format!(
                    "unknown argument `{other}` (try --yes, --db PATH, --resume RUN_ID)"
                )
                .into());
            }
        }
    }

    let workflow = issue_resolution()?;
    let engine = Engine::sqlite(&db)?;
    // A process that resumes runs must know their workflow (same definition, same fingerprint).
    engine.register(&workflow);
    let shown = std::path::absolute(&db)?;
    println!("Miyabi demo: workflow `{}`", workflow.id());
    println!("runs are stored in {} (SQLite)\n", shown.display());

    let (run_id, next) = match resume_id {
        None => {
            let input = json!({ "number": 42, "title": "crash when the config file is empty" });
            let handle = engine.spawn(&workflow, input)?;
            let id = handle.id().to_string();
            println!("run {id} started");
            let next = follow(&engine, &id, 1, true).await?;
            handle.wait().await?;
            (id, next)
        }
        Some(id) => {
            if engine.get(&id).await?.is_none() {
                return Err(format!("no run {id} in {db}").into());
            }
            println!("run {id}: its stored events");
            let next = follow(&engine, &id, 1, false).await?;
            (id, next)
        }
    };

    let Some(run) = engine.get(&run_id).await? else {
        return Err(format!("run {run_id} not found in {db}").into());
    };
    let Some(suspension) = run.suspended.first() else {
        println!("\nrun {run_id} is {}, nothing to approve", run.status);
        return match run.error {
            Some(error) => Err(error.into()),
            None => Ok(()),
        };
    };
    let gate = engine.approvals().get(&run_id, &suspension.path)?;
    println!(
        "\nrun {run_id} waits at approval gate `{}`: {}",
        gate.gate, gate.title
    );
    println!("  {}", gate.summary);
    println!("  approvers: {}", gate.approvers.join(", "));
    println!("It is committed to {db}: this process may exit now, and any other can resume it:");
    println!("  cargo run -p miyabi --example issue_resolution -- --db {db} --resume {run_id}\n");

    let approved = if yes {
        println!("Approve the deploy? [y/n] y (--yes)");
        true
    } else {
        match ask("Approve the deploy? [y/n] ").await? {
            Some(answer) => answer,
            None => {
                println!(
                    "\nno answer on stdin: the run stays suspended; resume it with the command above"
                );
                return Ok(());
            }
        }
    };

    let who = Approver::new(reviewer());
    let decision = if approved {
        Decision::approve().comment("approved from the demo")
    } else {
        Decision::reject().comment("rejected from the demo")
    };
    engine
        .approvals()
        .decide(&run_id, &gate.gate, &who, decision)
        .await?;
    follow(&engine, &run_id, next, true).await?;
    let run = engine.wait(&run_id).await?;
    for record in engine.approvals().audit(&AuditFilter {
        run_id: Some(run_id.clone()),
        ..AuditFilter::default()
    })? {
        println!(
            "  audit: {:<20} by {:<16} {}",
            record.action,
            record.actor,
            record.comment.unwrap_or_default()
        );
    }

    let paths: Vec<String> = engine
        .store()
        .steps(&run_id)?
        .into_iter()
        .map(|s| s.path.to_string())
        .collect();
    println!("\nrun {run_id} {}", run.status);
    println!("output: {}", run.output.unwrap_or(Value::Null));
    println!("stored records, one per path: {}", paths.join(", "));
    if run.status != RunStatus::Succeeded {
        return Err(run
            .error
            .unwrap_or_else(|| "run did not succeed".into())
            .into());
    }
    Ok(())
}

/// Who approves in the demo: the user running it.
fn reviewer() -> String {
    std::env::var("USER").unwrap_or_else(|_| "you".into())
}

/// Prints the run's events from sequence number `from` until it suspends or finishes (with
/// `wait`) or until the stored log ends (without); returns the next sequence number.
/// `engine.events` ends when the run stops executing in this engine, so a run that is not
/// executing yet (a resume on another task) is followed by subscribing again.
async fn follow(
    engine: &Engine,
    run_id: &str,
    mut from: u64,
    wait: bool,
) -> Result<u64, Box<dyn Error>> {
    loop {
        let mut events = Box::pin(engine.events(run_id, from));
        let mut stopped = false;
        while let Some(event) = events.next().await {
            let event = event?;
            from = event.seq + 1;
            let what = match &event.kind {
                EventKind::RunStarted { workflow, .. } => workflow.clone(),
                EventKind::StepStarted { path, attempt: 1 } => path.to_string(),
                EventKind::StepStarted { path, attempt } => format!("{path} (attempt {attempt})"),
                EventKind::StepOutput { path, output } => format!("{path:<21}{}", short(output)),
                EventKind::StepRetrying {
                    path,
                    error,
                    delay_ms,
                    ..
                } => {
                    format!("{path:<21}{error}; retrying in {delay_ms} ms")
                }
                EventKind::StepFailed { path, error } => format!("{path:<21}{error}"),
                EventKind::StepSuspended { path, .. } | EventKind::RunResumed { path } => {
                    path.to_string()
                }
                EventKind::RunSuspended { paths } => paths.join(", "),
                EventKind::RunFinished { status, .. } => status.to_string(),
                EventKind::Custom { path, name, data } => {
                    format!("{path:<21}{name} {}", short(data))
                }
                _ => String::new(),
            };
            println!("  {:>3}  {:<15}{what}", event.seq, event.type_name());
            stopped = matches!(
                event.kind,
                EventKind::RunSuspended { .. } | EventKind::RunFinished { .. }
            );
        }
        if stopped || !wait {
            return Ok(from);
        }
        // Not executing here (yet): look again shortly.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(72) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// Asks a yes/no question on stdin; `None` when stdin is closed.
async fn ask(question: &str) -> Result<Option<bool>, Box<dyn Error>> {
    use std::io::{IsTerminal as _, Write as _};
    loop {
        print!("{question}");
        std::io::stdout().flush()?;
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map(|n| (n > 0).then_some(line))
        })
        .await??;
        if !std::io::stdin().is_terminal() {
            // Show the piped answer as if it had been typed.
            println!("{}", line.as_deref().unwrap_or("").trim());
        }
        match line.as_deref().map(str::trim) {
            None => return Ok(None),
            Some("y" | "Y" | "yes") => return Ok(Some(true)),
            Some("n" | "N" | "no") => return Ok(Some(false)),
            Some(_) => println!("please answer y or n"),
        }
    }
}
