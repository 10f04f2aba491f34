//! An MCP server with workflows: `greet` (three steps, input `{"name": string}`) and `release`
//! (a build step, then an approval gate for `alice`, then a deploy step), served over stdio or
//! Streamable HTTP with the arguments of `miyabi mcp`:
//!
//! ```text
//! cargo run -p miyabi-mcp --example mcp_demo -- --db /tmp/demo.db            # stdio
//! MIYABI_TOKENS='alice=a-long-secret' cargo run -p miyabi-mcp --example mcp_demo -- --http 127.0.0.1:0
//! ```
//!
//! The node test `tests/mcp.test.mjs` drives it with the official TypeScript SDK client.

use clap::Parser;
use miyabi::approval::ApprovalGate;
use miyabi::{Engine, StepContext, StepError, Workflow, step_fn};
use miyabi_mcp::McpServer;
use miyabi_mcp::cli::{McpArgs, init_logging, serve};
use serde_json::{Value, json};

#[derive(Parser)]
struct Cli {
    /// The run database (SQLite file).
    #[arg(long, default_value = "./miyabi-mcp-demo.db")]
    db: String,
    #[command(flatten)]
    mcp: McpArgs,
}

fn greet() -> miyabi::CommittedWorkflow {
    let step = |suffix: &'static str| {
        step_fn(move |_ctx: StepContext, v: Value| async move {
            let text = v.get("text").and_then(Value::as_str).map(str::to_owned);
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            Ok::<_, StepError>(
                json!({"name": name, "text": format!("{}{suffix}", text.unwrap_or_default())}),
            )
        })
    };
    Workflow::new("greet")
        .input_schema(json!({
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        }))
        .step("hello", step("Hello"))
        .then("comma", step(", "))
        .then(
            "name",
            step_fn(|_ctx: StepContext, v: Value| async move {
                Ok::<_, StepError>(json!(format!(
                    "{}{}!",
                    v["text"].as_str().unwrap_or_default(),
                    v["name"].as_str().unwrap_or_default()
                )))
            }),
        )
        .commit()
        .unwrap_or_else(|e| panic!("the demo workflow is valid: {e}"))
}

fn release() -> miyabi::CommittedWorkflow {
    Workflow::new("release")
        .step(
            "build",
            step_fn(|_ctx: StepContext, v: Value| async move {
                Ok::<_, StepError>(json!({"version": v["version"], "artifact": "app.tar.gz"}))
            }),
        )
        .await_approval(
            "review",
            ApprovalGate::new()
                .title("Release this build?")
                .approvers(["alice"]),
        )
        .then(
            "deploy",
            step_fn(|_ctx: StepContext, v: Value| async move {
                Ok::<_, StepError>(json!({"deployed": v}))
            }),
        )
        .commit()
        .unwrap_or_else(|e| panic!("the demo workflow is valid: {e}"))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_logging();
    let cli = Cli::parse();
    let args = McpArgs {
        db: cli.db.clone(),
        ..cli.mcp
    };
    let engine = match Engine::sqlite(&args.db) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("mcp_demo: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    engine.register(&greet());
    engine.register(&release());
    let server = McpServer::builder(engine).identity(args.identity()).build();
    match serve(server, &args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp_demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
