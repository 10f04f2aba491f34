#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The example app as its users see it, over real HTTP on loopback: its own auth in front of
//! `miyabi::web` (401 without a token), a run started and streamed as SSE and followed again with
//! `Last-Event-ID`, the same over a WebSocket, and the agent route in the AI SDK's UI message
//! stream protocol through a tool approval (approved once; a second answer is 409), with the
//! model a loopback server speaking OpenAI's streaming Chat Completions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use futures::{SinkExt, StreamExt};
use miyabi::model::{ModelBuilder, Protocol};
use miyabi::web::{ApprovalStore, MemoryApprovalStore};
use miyabi::{Agent, Engine, ToolContext};
use miyabi_web_example::{AppState, report_workflow, router};
use serde_json::{Value, json};

const TOKEN: &str = "tok-ada";

/// A loopback OpenAI-compatible model: a `refund` call first, then an answer quoting the tool.
async fn model_server() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |axum::Json(body): axum::Json<Value>| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(body.clone());
                let last = body["messages"].as_array().unwrap().last().unwrap().clone();
                let chunk = |delta: Value, finish: Value| {
                    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                };
                let chunks = if last["role"] == "tool" {
                    let result = last["content"].as_str().unwrap_or_default().to_string();
                    vec![
                        chunk(json!({"role": "assistant", "content": "Done: "}), Value::Null),
                        chunk(json!({"content": result}), Value::Null),
                        chunk(json!({}), json!("stop")),
                    ]
                } else {
                    vec![
                        chunk(
                            json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                   "function": {"name": "refund", "arguments": "{\"order\":\"A-1\"}"}}]}),
                            Value::Null,
                        ),
                        chunk(json!({}), json!("tool_calls")),
                    ]
                };
                let body: String = chunks
                    .iter()
                    .map(|c| format!("data: {c}\n\n"))
                    .chain(["data: [DONE]\n\n".to_string()])
                    .collect();
                ([("content-type", "text/event-stream")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

struct App {
    base: String,
    refunds: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

async fn start_app(model_url: &str) -> App {
    let dir = tempfile::tempdir().unwrap();
    let report = report_workflow().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    engine.register(&report);
    let refunds = Arc::new(Mutex::new(Vec::new()));
    let r = refunds.clone();
    let refund = miyabi::tool::tool_json(
        "refund",
        "Refunds an order",
        json!({"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}),
        move |_c: ToolContext, args: Value| {
            let r = r.clone();
            async move {
                let order = args["order"].as_str().unwrap_or_default().to_string();
                r.lock().unwrap().push(order.clone());
                Ok::<_, String>(json!(format!("refunded {order}")))
            }
        },
    )
    .requires_approval(true);
    let model = ModelBuilder::custom("loopback", "gpt-test", Protocol::OpenAiChat, model_url)
        .build()
        .unwrap();
    let agent = Agent::new("support").model(model).tool(refund);
    let approvals: Arc<dyn ApprovalStore> =
        Arc::new(MemoryApprovalStore::sqlite(dir.path().join("approvals.db")).unwrap());
    let users = HashMap::from([(TOKEN.to_string(), "ada".to_string())]);
    let state = AppState {
        engine,
        report,
        agent,
        approvals,
        users: Arc::new(users),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    App {
        base,
        refunds,
        _dir: dir,
    }
}

/// `data:` payloads of an SSE body (with the `id:` of each event when present).
fn sse(body: &str) -> Vec<(Option<u64>, String)> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty() && !b.starts_with(':'))
        .map(|b| {
            let mut id = None;
            let mut data = String::new();
            for line in b.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                }
                if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            (id, data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_own_auth_guards_the_routes() {
    let (url, _) = model_server().await;
    let app = start_app(&url).await;
    let c = reqwest::Client::new();
    let res = c
        .post(format!("{}/app/reports", app.base))
        .json(&json!({"topic": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = c
        .post(format!("{}/app/chat", app.base))
        .bearer_auth("wrong")
        .json(&json!({"messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_streams_as_sse_and_resumes_after_last_event_id() {
    let (url, _) = model_server().await;
    let app = start_app(&url).await;
    let c = reqwest::Client::new();
    let res = c
        .post(format!("{}/app/reports", app.base))
        .bearer_auth(TOKEN)
        .json(&json!({"topic": "tides"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let run = res.headers()["x-run-id"].to_str().unwrap().to_string();
    let events = sse(&res.text().await.unwrap());
    let parsed: Vec<Value> = events
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(parsed.first().unwrap()["type"], "run-started");
    assert_eq!(parsed.last().unwrap()["type"], "run-finished");
    assert_eq!(parsed.last().unwrap()["output"]["title"], "Report: tides");
    let ids: Vec<u64> = events.iter().map(|(id, _)| id.unwrap()).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "ids are the seqs, each once"
    );
    assert_eq!(
        parsed.iter().filter(|e| e["type"] == "custom").count(),
        2,
        "the step's own events"
    );

    // A reconnecting client sends the last id it got: the rest follows, nothing twice.
    let again = c
        .get(format!("{}/app/runs/{run}/events", app.base))
        .bearer_auth(TOKEN)
        .header("last-event-id", "2")
        .send()
        .await
        .unwrap();
    let rest = sse(&again.text().await.unwrap());
    assert_eq!(rest.first().unwrap().0, Some(3));
    assert_eq!(rest.len(), events.len() - 2);

    let missing = c
        .get(format!("{}/app/runs/nope/events", app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let err: Value = missing.json().await.unwrap();
    assert_eq!(err["error"]["message"], "run `nope` not found");

    // A bad input never becomes a run: the same route, an input the steps cannot use, still runs
    // (the workflow has no schema), so check a JSON error from the body extractor instead.
    let bad = c
        .post(format!("{}/app/reports", app.base))
        .bearer_auth(TOKEN)
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_streams_over_a_websocket() {
    let (url, _) = model_server().await;
    let app = start_app(&url).await;
    let c = reqwest::Client::new();
    let res = c
        .post(format!("{}/app/reports", app.base))
        .bearer_auth(TOKEN)
        .json(&json!({"topic": "ws"}))
        .send()
        .await
        .unwrap();
    let run = res.headers()["x-run-id"].to_str().unwrap().to_string();
    drop(res);
    let ws_url = format!("{}/app/runs/{run}/ws", app.base.replace("http://", "ws://"));
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url)
            .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut types = Vec::new();
    while let Some(msg) = socket.next().await {
        match msg.unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(t) => {
                let ev: Value = serde_json::from_str(&t).unwrap();
                types.push(ev["type"].as_str().unwrap().to_string());
            }
            tokio_tungstenite::tungstenite::Message::Close(_) => break,
            _ => {}
        }
    }
    let _ = socket.close(None).await;
    assert_eq!(types.first().unwrap(), "run-started");
    assert_eq!(types.last().unwrap(), "run-finished");
    let _ = socket
        .send(tokio_tungstenite::tungstenite::Message::Close(None))
        .await;
}

async fn post_chat(base: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/app/chat"))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_route_speaks_the_ui_message_stream_through_an_approval() {
    let (url, seen) = model_server().await;
    let app = start_app(&url).await;
    let user = json!({"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Refund order A-1"}]});
    let res = post_chat(&app.base, &json!({"id": "chat-1", "messages": [user]})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-vercel-ai-ui-message-stream"], "v1");
    let body = res.text().await.unwrap();
    let events = sse(&body);
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    let types: Vec<&str> = chunks.iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "start",
            "start-step",
            "tool-input-available",
            "finish-step",
            "tool-approval-request",
            "finish"
        ],
        "{body}"
    );
    assert_eq!(chunks[2]["toolCallId"], "call_1");
    assert_eq!(chunks[2]["toolName"], "refund");
    assert_eq!(chunks[2]["input"], json!({"order": "A-1"}));
    assert_eq!(chunks[5]["finishReason"], "tool-calls");
    let approval_id = chunks[4]["approvalId"].as_str().unwrap().to_string();
    assert!(app.refunds.lock().unwrap().is_empty());
    assert_eq!(
        seen.lock().unwrap()[0]["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["content"],
        "Refund order A-1"
    );

    // The client approves and sends the conversation back.
    let assistant = json!({"id": "a1", "role": "assistant", "parts": [
        {"type": "step-start"},
        {"type": "dynamic-tool", "toolName": "refund", "toolCallId": "call_1", "state": "approval-responded",
         "input": {"order": "A-1"}, "approval": {"id": approval_id, "approved": true}}
    ]});
    let answer = json!({"id": "chat-1", "messages": [user, assistant]});
    let res = post_chat(&app.base, &answer).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let chunks: Vec<Value> = sse(&body)
        .into_iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(&d).unwrap())
        .collect();
    assert_eq!(
        chunks[0],
        json!({"type": "start", "messageId": "a1"}),
        "the answer continues the message"
    );
    let output = chunks
        .iter()
        .find(|c| c["type"] == "tool-output-available")
        .unwrap();
    assert_eq!(output["toolCallId"], "call_1");
    assert_eq!(output["output"], "refunded A-1");
    let text: String = chunks
        .iter()
        .filter(|c| c["type"] == "text-delta")
        .map(|c| c["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Done: refunded A-1");
    assert_eq!(
        chunks.last().unwrap(),
        &json!({"type": "finish", "finishReason": "stop"})
    );
    assert_eq!(*app.refunds.lock().unwrap(), ["A-1"]);

    // The same answer again (a double click, a replay): 409, nothing runs twice.
    let res = post_chat(&app.base, &answer).await;
    assert_eq!(res.status(), 409);
    let err: Value = res.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown or was already answered")
    );
    assert_eq!(app.refunds.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_output_denied_and_the_model_is_told() {
    let (url, seen) = model_server().await;
    let app = start_app(&url).await;
    let user = json!({"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Refund order A-1"}]});
    let first = post_chat(&app.base, &json!({"messages": [user]}))
        .await
        .text()
        .await
        .unwrap();
    let approval = sse(&first)
        .into_iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str::<Value>(&d).unwrap())
        .find(|c| c["type"] == "tool-approval-request")
        .unwrap();
    let assistant = json!({"id": "a1", "role": "assistant", "parts": [
        {"type": "dynamic-tool", "toolName": "refund", "toolCallId": "call_1", "state": "approval-responded",
         "input": {"order": "A-1"}, "approval": {"id": approval["approvalId"], "approved": false, "reason": "over the limit"}}
    ]});
    let body = post_chat(&app.base, &json!({"messages": [user, assistant]}))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        body.contains(r#"{"type":"tool-output-denied","toolCallId":"call_1"}"#),
        "{body}"
    );
    assert!(app.refunds.lock().unwrap().is_empty());
    let told = seen.lock().unwrap()[1]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(told["role"], "tool");
    assert!(
        told["content"].as_str().unwrap().contains("over the limit"),
        "{told}"
    );
}
