//! Runs the example app on 127.0.0.1:3000 (or `ADDR`), with a SQLite database `web-example.db`
//! (or `MIYABI_DB`), the model from `CHAT_MODEL` (default `openai/gpt-4o-mini`), and one user
//! whose token is `TOKEN` (default `dev-token`).

use std::collections::HashMap;
use std::sync::Arc;

use miyabi::web::MemoryApprovalStore;
use miyabi::{Agent, Engine, ToolContext};
use miyabi_web_example::{AppState, report_workflow, router};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = std::env::var("MIYABI_DB").unwrap_or_else(|_| "web-example.db".into());
    let report = report_workflow()?;
    let engine = Engine::sqlite(&db)?;
    engine.register(&report);
    let refund = miyabi::tool::tool_json(
        "refund",
        "Refunds an order",
        json!({"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}),
        |_c: ToolContext, args: Value| async move { Ok::<_, String>(json!(format!("refunded {}", args["order"]))) },
    )
    .requires_approval(true);
    let agent = Agent::new("support")
        .model(
            std::env::var("CHAT_MODEL")
                .unwrap_or_else(|_| "openai/gpt-4o-mini".into())
                .as_str(),
        )
        .tool(refund);
    let users = HashMap::from([(
        std::env::var("TOKEN").unwrap_or_else(|_| "dev-token".into()),
        "dev".to_string(),
    )]);
    let approvals = Arc::new(MemoryApprovalStore::sqlite(format!("{db}.approvals"))?);
    let state = AppState {
        engine,
        report,
        agent,
        approvals,
        users: Arc::new(users),
    };
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    // TCP_NODELAY: streamed events go out at once instead of waiting for delayed ACKs.
    let listener =
        axum::serve::ListenerExt::tap_io(tokio::net::TcpListener::bind(&addr).await?, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
    eprintln!("listening on http://{addr}");
    axum::serve(listener, router(state)).await?;
    Ok(())
}
