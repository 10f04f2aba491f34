//! A server for the operations-console browser test (`tests/dashboard_console.test.mjs`) and
//! for trying the console by hand:
//!
//! ```sh
//! cargo run -p miyabi --features server --example dashboard_console
//! ```
//!
//! Workflows: `orders` (an input schema with a string, an integer and a boolean; outputs a
//! receipt), `busy` (a foreach over its input array, one item at a time, each taking 100 ms
//! with a progress event every 20 ms: a run whose events never pause) and `report` (a few finished runs, one
//! failed). Two identities: `alice` (admin) and `vic` (viewer). Prints one JSON line:
//!
//! ```json
//! {"url": "http://127.0.0.1:PORT", "token": "<alice's>", "viewer": "<vic's>"}
//! ```
//!
//! and serves until its standard input closes.

use std::time::Duration;

use miyabi::approval::Approver;
use miyabi::server::{Identity, Role, ServerConfig, generate_token, router};
use miyabi::{Engine, SqliteStore, StepContext, StepError, Workflow, step_fn};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let engine = Engine::builder()
        .store(SqliteStore::open(dir.path().join("runs.db"))?)
        .public_url(&url)
        .build();

    let orders = Workflow::new("orders")
        .input_schema(json!({
            "type": "object",
            "required": ["customer", "amount"],
            "properties": {
                "customer": { "type": "string", "minLength": 1, "description": "Who ordered" },
                "amount": { "type": "integer", "minimum": 1 },
                "express": { "type": "boolean" }
            }
        }))
        .step(
            "receipt",
            step_fn(|_ctx: StepContext, v: Value| async move {
                Ok::<_, StepError>(json!({
                    "receipt": format!("{} × {}", v["customer"].as_str().unwrap_or("?"), v["amount"]),
                    "express": v["express"],
                }))
            }),
        )
        .commit()?;
    let busy = Workflow::new("busy")
        .foreach(
            "tick",
            step_fn(|ctx: StepContext, v: Value| async move {
                // The work of one item: 100 ms with a progress event every 20 ms, so the run
                // produces events far more often than any trailing debounce waits.
                for part in 0..5 {
                    ctx.emit("progress", json!({ "item": v, "part": part }));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok::<_, StepError>(json!({ "done": v }))
            }),
            1,
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
        .commit()?;
    // An upload that fails once (its service is down) and works from then on: its run fails
    // until an operator retries it from the failed step.
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sync = Workflow::new("sync")
        .step(
            "prepare",
            step_fn(|_ctx: StepContext, v: Value| async move {
                Ok::<_, StepError>(json!({ "files": v["files"] }))
            }),
        )
        .step(
            "upload",
            step_fn(move |_ctx: StepContext, v: Value| {
                let was_down = down.swap(false, std::sync::atomic::Ordering::SeqCst);
                async move {
                    if was_down {
                        return Err(StepError::fatal("the storage service answered 503"));
                    }
                    Ok::<_, StepError>(json!({ "uploaded": v["files"] }))
                }
            }),
        )
        .commit()?;
    for wf in [&orders, &busy, &report, &sync] {
        engine.register(wf);
    }
    let _ = engine.start(&sync, json!({ "files": 3 })).await;
    for input in [
        json!({ "day": "2025-06-01" }),
        json!({ "day": "2025-06-02", "fail": true }),
        json!({ "day": "2025-06-03" }),
    ] {
        // The failing one ends as a failed run, not an error of this program.
        let _ = engine.start(&report, input).await;
    }

    let token = generate_token()?;
    let viewer = generate_token()?;
    let config = ServerConfig::new()
        .token(&token, Approver::new("alice"))
        .identity(&viewer, Identity::new("vic").roles([Role::Viewer]))
        .poll_interval(Duration::from_millis(200));
    let app = router(engine.clone(), config);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!(
        "{}",
        json!({ "url": url, "token": token, "viewer": viewer })
    );

    // Stop when standard input closes.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = tx.send(());
    });
    let _ = rx.await;
    server.abort();
    Ok(())
}
