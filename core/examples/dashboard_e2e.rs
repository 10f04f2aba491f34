//! A server with the dashboard and one run waiting at an approval gate, for the browser test
//! (`tests/dashboard.test.mjs`) and for trying the dashboard by hand:
//!
//! ```sh
//! cargo run -p miyabi --features server --example dashboard_e2e
//! ```
//!
//! It opens a SQLite engine in a temporary directory, registers the workflow `ship`
//! (`generate-code` → the approval gate `code-review` for `alice`, with a JSON Schema for
//! edited data and a webhook notifier to a loopback receiver → `deploy`, which outputs the
//! approved data), a `report` workflow with a few finished runs for the runs list, starts a
//! run of `ship`, serves the API and the dashboard on 127.0.0.1 (a free port) and prints one
//! JSON line:
//!
//! ```json
//! {"url": "http://127.0.0.1:PORT", "token": "<alice's token>", "run": "<run id>"}
//! ```
//!
//! Open the URL, paste the token, and decide the gate. When the run finishes it prints
//! `{"finished": <the run's output>}` and keeps serving until its standard input closes (or
//! the process is stopped).

use std::time::Duration;

use miyabi::approval::{ApprovalGate, Approver, webhook};
use miyabi::server::{ServerConfig, generate_token, router};
use miyabi::{Engine, SqliteStore, StepContext, StepError, Workflow, step_fn};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // TLS is not used here (everything is on loopback), but reqwest wants a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;

    // A webhook receiver on loopback, so the gate's notification shows as delivered.
    let hooks = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hooks/miyabi", hooks.local_addr()?);
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/hooks/miyabi",
            axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }),
        );
        let _ = axum::serve(hooks, app).await;
    });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let engine = Engine::builder()
        .store(SqliteStore::open(dir.path().join("runs.db"))?)
        .public_url(&url)
        .worker_interval(Duration::from_millis(200))
        .build();

    let ship = Workflow::new("ship")
        .step(
            "generate-code",
            step_fn(|_ctx: StepContext, input: Value| async move {
                let service = input["service"].as_str().unwrap_or("api").to_string();
                Ok::<_, StepError>(json!({
                    "service": service,
                    "version": "1.4.0",
                    "patch": "--- a/src/limits.rs\n+++ b/src/limits.rs\n-const MAX: u32 = 10;\n+const MAX: u32 = 100;",
                    "files": ["src/limits.rs"],
                    "replicas": 2
                }))
            }),
        )
        .await_approval(
            "code-review",
            ApprovalGate::new()
                .title("Review the generated patch")
                .summary_from(|v| {
                    format!(
                        "The agent raised a limit in {} and wants to ship version {}.\nCheck the patch; edit the version or replicas if needed.",
                        v["service"].as_str().unwrap_or("?"),
                        v["version"].as_str().unwrap_or("?")
                    )
                })
                .link("Runbook", format!("{url}/#/runs"))
                .approvers(["alice"])
                .schema(json!({
                    "type": "object",
                    "required": ["service", "version", "patch", "replicas"],
                    "properties": {
                        "service": {"type": "string", "minLength": 1},
                        "version": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+$"},
                        "patch": {"type": "string", "minLength": 1},
                        "files": {"type": "array", "items": {"type": "string"}},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 10}
                    }
                }))
                .notify(webhook(hook_url, "dashboard-e2e-webhook-secret")),
        )
        // The gate's output is the decision; `data` is the reviewed data as approved.
        .then(
            "deploy",
            step_fn(|_ctx: StepContext, decision: Value| async move {
                Ok::<_, StepError>(decision["data"].clone())
            }),
        )
        .commit()?;
    let report = Workflow::new("report")
        .step(
            "collect",
            step_fn(|_ctx: StepContext, input: Value| async move {
                if input["fail"] == json!(true) {
                    return Err(StepError::fatal("the metrics source answered 503"));
                }
                Ok(json!({ "rows": 42, "day": input["day"] }))
            }),
        )
        .then(
            "summarize",
            step_fn(|_ctx: StepContext, v: Value| async move {
                Ok::<_, StepError>(json!({ "summary": format!("{} rows", v["rows"]) }))
            }),
        )
        .commit()?;
    engine.register(&ship);
    engine.register(&report);

    // A few finished runs, so the runs list has more than one status.
    for input in [
        json!({ "day": "2025-06-01" }),
        json!({ "day": "2025-06-02", "fail": true }),
        json!({ "day": "2025-06-03" }),
    ] {
        // The failing one ends as a failed run, not an error of this program.
        let _ = engine.start(&report, input).await;
    }
    let run = engine.spawn(&ship, json!({ "service": "billing-api" }))?;
    let run_id = run.id().to_string();

    let token = generate_token()?;
    let config = ServerConfig::new()
        .token(&token, Approver::new("alice"))
        .poll_interval(Duration::from_millis(200));
    let app = router(engine.clone(), config);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    println!("{}", json!({ "url": url, "token": token, "run": run_id }));

    // Stop when standard input closes (the test's end, or Ctrl-D).
    let (stdin_tx, stdin_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = stdin_tx.send(());
    });
    let waiter = {
        let engine = engine.clone();
        let run_id = run_id.clone();
        tokio::spawn(async move {
            // `wait` also returns while the run is suspended at the gate: wait again until
            // the decision lets it finish.
            loop {
                match engine.wait(&run_id).await {
                    Ok(run) if run.status.is_terminal() => {
                        println!(
                            "{}",
                            json!({ "finished": run.output, "status": run.status })
                        );
                        return;
                    }
                    Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    Err(e) => {
                        eprintln!("waiting for the run failed: {e}");
                        return;
                    }
                }
            }
        })
    };
    let _ = stdin_rx.await;
    waiter.abort();
    server.abort();
    Ok(())
}
