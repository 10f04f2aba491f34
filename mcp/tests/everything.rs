#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Miyabi's MCP client against the official reference server,
//! `@modelcontextprotocol/server-everything`, over stdio and over Streamable HTTP: every tool
//! it offers (the long-running one with progress, sampling answered by a Miyabi model,
//! elicitation answered by a handler), its resources, resource templates and prompts,
//! `list_changed` following, timeouts, cancellation, typed errors and reconnection.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use miyabi_mcp::{
    CallOptions, ElicitationAnswer, McpClient, McpClientBuilder, McpClientError, Progress,
    elicitation_fn,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn configure(b: McpClientBuilder, asked: Arc<Mutex<Vec<String>>>) -> McpClientBuilder {
    b.timeout(Duration::from_secs(60))
        .sampling(support::Fixed::new("sampled by miyabi"))
        .elicitation(elicitation_fn(move |req| {
            let asked = Arc::clone(&asked);
            async move {
                asked.lock().unwrap().push(req.message.clone());
                assert_eq!(req.server, "everything");
                match req.url {
                    Some(_) => ElicitationAnswer::Decline,
                    None => {
                        assert!(req.schema.is_some(), "a form elicitation has a schema");
                        ElicitationAnswer::Accept(json!({
                            "name": "Ada Lovelace",
                            "check": true,
                            "email": "ada@example.com",
                        }))
                    }
                }
            }
        }))
}

fn text_of(r: &rmcp_result::CallToolResult) -> String {
    serde_json::to_value(&r.content)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str).map(str::to_owned))
        .collect::<Vec<_>>()
        .join("\n")
}

mod rmcp_result {
    pub use miyabi_mcp::rmcp::model::CallToolResult;
}

/// The tool names, once the conditional tools (registered after the handshake, announced with
/// `notifications/tools/list_changed`) are there.
async fn tools_after_list_changed(client: &McpClient) -> BTreeSet<String> {
    let mut changes = client.changes();
    loop {
        let names: BTreeSet<String> = client
            .list_tools()
            .await
            .unwrap()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        if names.contains("trigger-sampling-request") {
            return names;
        }
        changes.changed().await.unwrap();
    }
}

async fn exercise(client: McpClient, asked: Arc<Mutex<Vec<String>>>) {
    let info = client.server_info().await.expect("server info");
    assert!(
        info.name.contains("everything"),
        "server name: {}",
        info.name
    );
    let names = tools_after_list_changed(&client).await;
    let mut called = BTreeSet::new();

    let r = client
        .call_tool("echo", json!({"message": "hi there"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "Echo: hi there");
    called.insert("echo");

    let r = client
        .call_tool("get-sum", json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert!(text_of(&r).contains("42"), "{}", text_of(&r));
    called.insert("get-sum");

    let r = client
        .call_tool(
            "get-annotated-message",
            json!({"messageType": "error", "includeImage": true}),
        )
        .await
        .unwrap();
    let content = serde_json::to_value(&r.content).unwrap();
    assert!(content.to_string().contains("image"), "{content}");
    called.insert("get-annotated-message");

    let r = client.call_tool("get-env", json!({})).await.unwrap();
    assert!(text_of(&r).contains("PATH"), "the environment as JSON");
    called.insert("get-env");

    let r = client
        .call_tool("get-resource-links", json!({"count": 2}))
        .await
        .unwrap();
    let links = serde_json::to_value(&r.content).unwrap();
    assert_eq!(
        links
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] == "resource_link")
            .count(),
        2,
        "{links}"
    );
    called.insert("get-resource-links");

    let r = client
        .call_tool(
            "get-resource-reference",
            json!({"resourceType": "Text", "resourceId": 3}),
        )
        .await
        .unwrap();
    assert!(
        serde_json::to_value(&r.content)
            .unwrap()
            .to_string()
            .contains("resource"),
        "an embedded resource"
    );
    called.insert("get-resource-reference");

    let r = client
        .call_tool("get-structured-content", json!({"location": "Chicago"}))
        .await
        .unwrap();
    let structured = r.structured_content.clone().expect("structured content");
    assert!(structured["temperature"].is_number(), "{structured}");
    called.insert("get-structured-content");

    let r = client.call_tool("get-tiny-image", json!({})).await.unwrap();
    assert!(
        serde_json::to_value(&r.content).unwrap()[1]["mimeType"] == "image/png",
        "an image part"
    );
    called.insert("get-tiny-image");

    // A data: URI, so the server fetches nothing from the network.
    let r = client
        .call_tool(
            "gzip-file-as-resource",
            json!({"name": "hello.txt.gz", "data": "data:text/plain;base64,aGVsbG8gbWl5YWJp", "outputType": "resource"}),
        )
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{:?}", r.content);
    assert!(
        serde_json::to_value(&r.content)
            .unwrap()
            .to_string()
            .contains("hello.txt.gz")
    );
    called.insert("gzip-file-as-resource");

    for toggle in ["toggle-simulated-logging", "toggle-subscriber-updates"] {
        let r = client.call_tool(toggle, json!({})).await.unwrap();
        assert!(!text_of(&r).is_empty(), "{toggle} says what it did");
        // Toggle back off, so nothing keeps sending.
        client.call_tool(toggle, json!({})).await.unwrap();
        called.insert(toggle);
    }

    // The long-running operation reports progress to the caller.
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let r = client
        .call_tool_with(
            "trigger-long-running-operation",
            json!({"duration": 0.3, "steps": 3}),
            CallOptions {
                progress: Some(Arc::new(move |p| sink.lock().unwrap().push(p))),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(text_of(&r).contains("Long running operation completed"));
    let progress: Vec<f64> = seen.lock().unwrap().iter().map(|p| p.progress).collect();
    assert_eq!(progress, vec![1.0, 2.0, 3.0]);
    assert_eq!(seen.lock().unwrap()[0].total, Some(3.0));
    called.insert("trigger-long-running-operation");

    // Sampling: answered by the client's Miyabi model.
    let r = client
        .call_tool(
            "trigger-sampling-request",
            json!({"prompt": "say hi", "maxTokens": 20}),
        )
        .await
        .unwrap();
    assert!(text_of(&r).contains("sampled by miyabi"), "{}", text_of(&r));
    called.insert("trigger-sampling-request");

    // Elicitation: answered by the handler.
    let r = client
        .call_tool("trigger-elicitation-request", json!({}))
        .await
        .unwrap();
    assert!(text_of(&r).contains("Ada Lovelace"), "{}", text_of(&r));
    called.insert("trigger-elicitation-request");
    let r = client
        .call_tool(
            "trigger-url-elicitation",
            json!({"url": "https://example.com/consent"}),
        )
        .await
        .unwrap();
    assert!(
        text_of(&r).to_lowercase().contains("decline"),
        "{}",
        text_of(&r)
    );
    called.insert("trigger-url-elicitation");
    assert!(asked.lock().unwrap().len() >= 2);

    // A task-only tool (the experimental tasks extension, which this client does not speak):
    // a typed error naming the server and the tool.
    if names.contains("simulate-research-query") {
        let r = client
            .call_tool(
                "simulate-research-query",
                json!({"topic": "durable agents"}),
            )
            .await;
        match r {
            Err(McpClientError::Remote {
                server, operation, ..
            }) => {
                assert_eq!(server, "everything");
                assert_eq!(operation, "tools/call simulate-research-query");
            }
            Ok(r) => assert_eq!(r.is_error, Some(true), "a task-only tool cannot run inline"),
            Err(other) => panic!("unexpected error {other}"),
        }
        called.insert("simulate-research-query");
    }

    let offered: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let missing: Vec<_> = offered.difference(&called).collect();
    assert!(
        missing.is_empty(),
        "tools offered but not called: {missing:?}"
    );

    // An unknown tool: a typed error, not a crash.
    let e = client.call_tool("no-such-tool", json!({})).await;
    match e {
        Err(McpClientError::Remote {
            server, operation, ..
        }) => {
            assert_eq!(server, "everything");
            assert_eq!(operation, "tools/call no-such-tool");
        }
        Ok(r) => assert_eq!(r.is_error, Some(true)),
        Err(other) => panic!("unexpected error {other}"),
    }

    // Resources, templates, prompts.
    let resources = client.list_resources().await.unwrap();
    assert!(!resources.is_empty());
    let first = &resources[0];
    let read = client.read_resource(&first.uri).await.unwrap();
    assert!(!read.contents.is_empty());
    let templates = client.list_resource_templates().await.unwrap();
    assert!(!templates.is_empty());
    let prompts = client.list_prompts().await.unwrap();
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"simple-prompt"), "{names:?}");
    let p = client
        .get_prompt("simple-prompt", Value::Null)
        .await
        .unwrap();
    assert!(!p.messages.is_empty());
    let p = client
        .get_prompt("args-prompt", json!({"city": "Kyoto", "state": "Kansai"}))
        .await
        .unwrap();
    assert!(
        serde_json::to_value(&p.messages)
            .unwrap()
            .to_string()
            .contains("Kyoto")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_over_stdio() {
    let Some(entry) = support::everything() else {
        return;
    };
    let asked = Arc::default();
    let client = configure(
        McpClient::stdio("everything", "node")
            .args([entry.to_str().unwrap(), "stdio"])
            .cwd(support::root()),
        Arc::clone(&asked),
    )
    .connect()
    .await
    .unwrap();
    exercise(client, asked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_over_streamable_http() {
    let Some(entry) = support::everything() else {
        return;
    };
    let server = support::HttpEverything::start(&entry).await;
    let asked = Arc::default();
    let client = configure(
        McpClient::http("everything", &server.url).header("X-Test", "miyabi"),
        Arc::clone(&asked),
    )
    .connect()
    .await
    .unwrap();
    exercise(client, asked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_cancellation_cancel_the_request() {
    let Some(entry) = support::everything() else {
        return;
    };
    let client = McpClient::stdio("everything", "node")
        .args([entry.to_str().unwrap(), "stdio"])
        .connect()
        .await
        .unwrap();
    // A 30 s operation with a 200 ms timeout.
    let e = client
        .call_tool_with(
            "trigger-long-running-operation",
            json!({"duration": 30, "steps": 30}),
            CallOptions {
                timeout: Some(Duration::from_millis(200)),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap_err();
    match &e {
        McpClientError::Timeout {
            server, operation, ..
        } => {
            assert_eq!(server, "everything");
            assert_eq!(operation, "tools/call trigger-long-running-operation");
        }
        other => panic!("expected a timeout, got {other}"),
    }
    // Cancelled by a token once the first progress arrives.
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let e = client
        .call_tool_with(
            "trigger-long-running-operation",
            json!({"duration": 30, "steps": 300}),
            CallOptions {
                cancel: Some(cancel),
                progress: Some(Arc::new(move |_| c.cancel())),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, McpClientError::Cancelled { .. }), "{e}");
    // The connection is still good.
    let r = client
        .call_tool("echo", json!({"message": "still here"}))
        .await
        .unwrap();
    assert_eq!(text_of(&r), "Echo: still here");
    assert_eq!(client.connections(), 1);
}
