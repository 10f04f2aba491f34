#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! A Miyabi agent whose model is a local replay (a loopback chat-completions server) calls
//! server-everything's tools through `McpClient::agent_tools`: results go back to the model,
//! progress notifications reach the run's event log, a tool that is not read-only suspends the
//! run for approval and runs once approved.

mod support;

use miyabi::EventKind;
use miyabi::{Agent, Engine, RunStatus, Workflow};
use miyabi_mcp::{ApprovalPolicy, McpClient};
use serde_json::json;

async fn everything(policy: ApprovalPolicy) -> Option<McpClient> {
    let entry = support::everything()?;
    Some(
        McpClient::stdio("everything", "node")
            .args([entry.to_str().unwrap(), "stdio"])
            .approval(policy)
            .connect()
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_calls_mcp_tools_and_progress_reaches_the_run() {
    let Some(client) = everything(ApprovalPolicy::default()).await else {
        return;
    };
    let tools = client.agent_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    assert!(names.contains(&"everything_get-sum"), "{names:?}");
    let sum = tools
        .iter()
        .find(|t| t.name() == "everything_get-sum")
        .unwrap();
    assert!(!sum.requires_approval(), "get-sum is read-only");
    assert_eq!(
        sum.parameters()["properties"]["a"]["type"],
        "number",
        "the schema as given"
    );
    let gzip = tools
        .iter()
        .find(|t| t.name() == "everything_gzip-file-as-resource")
        .unwrap();
    assert!(gzip.requires_approval(), "gzip is not read-only");

    let model = support::ReplayModel::start(vec![
        support::tool_calls(&[
            ("c1", "everything_get-sum", json!({"a": 2, "b": 40})),
            (
                "c2",
                "everything_trigger-long-running-operation",
                json!({"duration": 0.2, "steps": 2}),
            ),
        ]),
        support::answer("The sum is 42."),
    ])
    .await;
    let agent = Agent::new("helper").model(model.model()).tools(tools);
    let wf = Workflow::new("mcp-agent")
        .step("ask", agent)
        .commit()
        .unwrap();
    let engine = Engine::in_memory();
    let run = engine.start(&wf, json!("add 2 and 40")).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output, Some(json!("The sum is 42.")));

    let reqs = model.requests();
    assert_eq!(reqs.len(), 2);
    let results = support::tool_messages(&reqs[1]);
    assert_eq!(results.len(), 2);
    assert!(results[0].1.contains("42"), "{results:?}");
    assert!(results[1].1.contains("Long running operation completed"));
    // The tools as the model saw them: prefixed names, the server's schemas.
    let offered: Vec<String> = reqs[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(offered.contains(&"everything_echo".to_owned()));

    let events = engine.store().events(&run.id, 0, 1000).unwrap();
    let progress: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Custom {
                name, data, path, ..
            } if name == "mcp-progress" => Some((path.to_string(), data.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(progress.len(), 2, "{progress:?}");
    assert_eq!(progress[0].0, "ask");
    assert_eq!(progress[0].1["server"], "everything");
    assert_eq!(progress[0].1["tool"], "trigger-long-running-operation");
    assert_eq!(progress[0].1["callId"], "c2");
    assert_eq!(progress[1].1["progress"], 2.0);
    assert_eq!(progress[1].1["total"], 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_is_not_read_only_waits_for_approval() {
    let Some(client) = everything(ApprovalPolicy::default()).await else {
        return;
    };
    let model = support::ReplayModel::start(vec![
        support::tool_calls(&[(
            "c1",
            "everything_gzip-file-as-resource",
            json!({"name": "a.gz", "data": "data:text/plain;base64,aGk=", "outputType": "resource"}),
        )]),
        support::answer("Compressed."),
    ])
    .await;
    let agent = Agent::new("zipper")
        .model(model.model())
        .tools(client.agent_tools().await.unwrap());
    let wf = Workflow::new("zip").step("zip", agent).commit().unwrap();
    let engine = Engine::in_memory();
    let run = engine.start(&wf, json!("zip it")).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    let payload = &run.suspended[0].payload;
    assert_eq!(payload["kind"], "tool-approval");
    assert_eq!(
        payload["pending"][0]["tool"],
        "everything_gzip-file-as-resource"
    );
    assert_eq!(model.requests().len(), 1);

    let run = engine
        .resume(&run.id, "zip", json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let results = support::tool_messages(&model.requests()[1]);
    assert!(results[0].1.contains("a.gz"), "{results:?}");

    // The same tools with approval switched off run at once.
    let never = everything(ApprovalPolicy::Never).await.unwrap();
    assert!(
        never
            .agent_tools()
            .await
            .unwrap()
            .iter()
            .all(|t| !t.requires_approval())
    );
}
