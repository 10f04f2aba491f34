#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! A server that crashes, hangs or writes garbage: typed errors naming the server and the tool,
//! and a reconnection on the next call. The misbehaving server is `tests/fixtures/crashy.mjs`
//! on the official TypeScript SDK.

mod support;

use std::time::Duration;

use miyabi::{ToolContext, ToolError};
use miyabi_mcp::{CallOptions, McpClient, McpClientError};
use serde_json::{Value, json};

fn text(r: &miyabi_mcp::rmcp::model::CallToolResult) -> String {
    serde_json::to_value(&r.content).unwrap()[0]["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn crashy() -> Option<McpClient> {
    support::everything()?;
    let script = support::root().join("mcp/tests/fixtures/crashy.mjs");
    Some(
        McpClient::stdio("crashy", "node")
            .arg_path(&script)
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .unwrap(),
    )
}

trait ArgPath {
    fn arg_path(self, p: &std::path::Path) -> Self;
}

impl ArgPath for miyabi_mcp::McpClientBuilder {
    fn arg_path(self, p: &std::path::Path) -> Self {
        self.args([p.to_str().unwrap()])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_a_typed_error_and_the_next_call_reconnects() {
    let Some(client) = crashy().await else {
        return;
    };
    let first = text(
        &client
            .call_tool("echo", json!({"message": "a"}))
            .await
            .unwrap(),
    );
    let e = client.call_tool("crash", json!({})).await.unwrap_err();
    match &e {
        McpClientError::Disconnected {
            server, operation, ..
        } => {
            assert_eq!(server, "crashy");
            assert_eq!(operation, "tools/call crash");
        }
        other => panic!("expected a disconnection, got {other}"),
    }
    assert!(e.to_string().contains("crashy") && e.to_string().contains("crash"));
    let second = text(
        &client
            .call_tool("echo", json!({"message": "b"}))
            .await
            .unwrap(),
    );
    assert_eq!(client.connections(), 2, "reconnected once");
    let pid = |s: &str| s.rsplit(' ').next().unwrap().to_owned();
    assert_ne!(pid(&first), pid(&second), "a new server process answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_inside_an_agent_tool_names_server_and_tool() {
    let Some(client) = crashy().await else {
        return;
    };
    let tools = client.agent_tools().await.unwrap();
    let crash = tools.iter().find(|t| t.name() == "crashy_crash").unwrap();
    assert!(crash.requires_approval(), "marked destructive");
    let echo = tools.iter().find(|t| t.name() == "crashy_echo").unwrap();
    assert!(!echo.requires_approval(), "marked read-only");
    let ctx = ToolContext::detached("agent", "call-1");
    let e = crash.call(&ctx, json!({})).await.unwrap_err();
    match &e {
        ToolError::Failed { tool, message } => {
            assert_eq!(tool, "crashy_crash");
            assert!(message.contains("MCP server `crashy`"), "{message}");
            assert!(message.contains("tools/call crash"), "{message}");
        }
        other => panic!("{other}"),
    }
    let out = echo.call(&ctx, json!({"message": "again"})).await.unwrap();
    assert!(out.as_str().unwrap().starts_with("again from "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_times_out_and_garbage_is_survived() {
    let Some(client) = crashy().await else {
        return;
    };
    let e = client
        .call_tool_with(
            "hang",
            json!({}),
            CallOptions {
                timeout: Some(Duration::from_millis(300)),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, McpClientError::Timeout { server, operation, .. } if server == "crashy" && operation == "tools/call hang"),
        "{e}"
    );
    // A line that is not JSON-RPC: skipped or fatal to the connection, never a panic; either
    // way the call after it works.
    match client.call_tool("garbage", json!({})).await {
        Ok(r) => assert_eq!(text(&r), "after garbage"),
        Err(e) => assert_eq!(e.server(), "crashy"),
    }
    let r = client
        .call_tool("echo", json!({"message": "ok"}))
        .await
        .unwrap();
    assert!(text(&r).starts_with("ok from "));
    // Cancelling the step's token cancels the tool call of an agent.
    let tools = client.agent_tools().await.unwrap();
    let hang = tools.iter().find(|t| t.name() == "crashy_hang").unwrap();
    let ctx = ToolContext::detached("agent", "call-2");
    let token = ctx.cancellation().clone();
    let call = hang.call(&ctx, Value::Object(Default::default()));
    token.cancel();
    let e = call.await.unwrap_err();
    assert!(matches!(e, ToolError::Cancelled { .. }), "{e}");
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output_and_errors() {
    let secret = "s3cr3t-value-never-shown";
    let b = McpClient::stdio("local", "definitely-not-a-command-miyabi")
        .env("API_KEY", secret)
        .timeout(Duration::from_secs(5));
    assert!(!format!("{b:?}").contains(secret));
    let e = b.connect().await.unwrap_err();
    assert!(matches!(e, McpClientError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("local"), "{e}");
    assert!(!e.to_string().contains(secret));

    let h = McpClient::http("remote", "http://127.0.0.1:9/mcp")
        .header("Authorization", format!("Bearer {secret}"));
    assert!(!format!("{h:?}").contains(secret));
    let built = h.build().unwrap();
    assert!(!format!("{built:?}").contains(secret));
    let e = McpClient::http("remote", "http://127.0.0.1:9/mcp")
        .header("Authorization", format!("Bearer {secret}\n"))
        .build()
        .unwrap_err();
    assert!(matches!(e, McpClientError::Config { .. }));
    assert!(!e.to_string().contains(secret), "{e}");
    let e = McpClient::http("remote", "ftp://x").build().unwrap_err();
    assert!(
        e.to_string().contains("not an http:// or https:// URL"),
        "{e}"
    );
}
