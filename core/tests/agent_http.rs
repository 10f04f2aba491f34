#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Agents against a loopback HTTP server speaking the OpenAI chat-completions protocol, through
//! the model layer's custom provider (`ModelBuilder::custom`): the requests on the wire (tools,
//! tool results, response format), two tool rounds with parallel calls, tool errors, structured
//! output repair, streaming over SSE, and a workflow that suspends for approval and resumes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use miyabi::agent::{AgentEvent, StopReason};
use miyabi::model::{ModelBuilder, Protocol};
use miyabi::tool::tool_json;
use miyabi::{Agent, Engine, RunStatus, ToolContext, Workflow, tool_fn};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One scripted answer: a JSON body, or SSE `data:` payloads.
#[derive(Clone)]
enum Reply {
    Json(Value),
    Sse(Vec<Value>),
}

/// A loopback server answering `POST /v1/chat/completions` with scripted replies in order.
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(Mutex::new(std::collections::VecDeque::from(replies)));
        let s = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (s, r) = (s.clone(), replies.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, s, r).await;
                });
            }
        });
        Self { url, seen, task }
    }

    fn requests(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }

    fn agent(&self, name: &str) -> Agent {
        let model = ModelBuilder::custom("loopback", "gpt-test", Protocol::OpenAiChat, &self.url)
            .build()
            .unwrap();
        Agent::new(name).model(model)
    }
}

async fn serve(
    mut sock: TcpStream,
    seen: Arc<Mutex<Vec<Value>>>,
    replies: Arc<Mutex<std::collections::VecDeque<Reply>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let mut tmp = [0u8; 8192];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        assert!(
            head.starts_with("post /v1/chat/completions "),
            "unexpected request: {head}"
        );
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        while buf.len() < head_end + 4 + len {
            let mut tmp = [0u8; 8192];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        let body: Value = serde_json::from_slice(&buf[head_end + 4..head_end + 4 + len]).unwrap();
        buf.drain(..head_end + 4 + len);
        seen.lock().unwrap().push(body);
        let reply = replies.lock().unwrap().pop_front();
        let (ctype, payload) = match reply {
            Some(Reply::Json(v)) => ("application/json", v.to_string()),
            Some(Reply::Sse(events)) => {
                let mut s = String::new();
                for e in events {
                    s.push_str(&format!("data: {e}\n\n"));
                }
                s.push_str("data: [DONE]\n\n");
                ("text/event-stream", s)
            }
            None => (
                "application/json",
                json!({"error": {"message": "script exhausted", "type": "invalid_request_error"}})
                    .to_string(),
            ),
        };
        let status = if payload.contains("script exhausted") {
            "400 Bad Request"
        } else {
            "200 OK"
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n",
            payload.len()
        );
        sock.write_all(head.as_bytes()).await?;
        sock.write_all(payload.as_bytes()).await?;
        sock.flush().await?;
    }
}

fn usage(p: u64, c: u64) -> Value {
    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
}

fn tool_calls(list: &[(&str, &str, Value)], u: Value) -> Reply {
    let calls: Vec<Value> = list
        .iter()
        .map(|(id, name, args)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    Reply::Json(json!({
        "id": "chatcmpl-x", "object": "chat.completion", "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}],
        "usage": u
    }))
}

fn answer(text: &str, u: Value) -> Reply {
    Reply::Json(json!({
        "id": "chatcmpl-y", "object": "chat.completion", "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": u
    }))
}

#[derive(Deserialize, JsonSchema)]
struct Pair {
    /// First operand.
    a: i64,
    /// Second operand.
    b: i64,
}

fn math() -> Vec<miyabi::tool::FnTool> {
    vec![
        tool_fn("add", "Adds", |_c: ToolContext, p: Pair| async move {
            Ok::<_, String>(p.a + p.b)
        }),
        tool_fn("mul", "Multiplies", |_c: ToolContext, p: Pair| async move {
            Ok::<_, String>(p.a * p.b)
        }),
        tool_fn("div", "Divides", |_c: ToolContext, p: Pair| async move {
            if p.b == 0 {
                Err("division by zero".to_owned())
            } else {
                Ok(p.a / p.b)
            }
        }),
    ]
}

fn tool_messages(req: &Value) -> Vec<Value> {
    req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .cloned()
        .collect()
}

#[tokio::test]
async fn two_tool_rounds_with_parallel_calls_and_an_error_over_http() {
    let server = Server::start(vec![
        tool_calls(&[("call_1", "add", json!({"a": 2, "b": 3}))], usage(20, 8)),
        tool_calls(
            &[
                ("call_2", "mul", json!({"a": 5, "b": 4})),
                ("call_3", "div", json!({"a": 1, "b": 0})),
            ],
            usage(40, 12),
        ),
        answer("20, and 1/0 is undefined.", usage(60, 9)),
    ])
    .await;
    let agent = server
        .agent("calc")
        .instructions("Use the tools.")
        .tools(math());
    let r = agent.generate("(2+3)*4 and 1/0?").await.unwrap();
    assert_eq!(r.text, "20, and 1/0 is undefined.");
    assert_eq!(r.stop, StopReason::Done);
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (120, 29));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    // What went over the wire: system first, the tools as functions with derived schemas.
    assert_eq!(reqs[0]["model"], "gpt-test");
    assert_eq!(
        reqs[0]["messages"][0],
        json!({"role": "system", "content": "Use the tools."})
    );
    assert_eq!(reqs[0]["tools"][0]["type"], "function");
    assert_eq!(reqs[0]["tools"][0]["function"]["name"], "add");
    let params = &reqs[0]["tools"][0]["function"]["parameters"];
    assert_eq!(params["required"], json!(["a", "b"]));
    assert_eq!(params["properties"]["a"]["description"], "First operand.");
    // Round two carries the assistant's call and the result, keyed by call id.
    let tools = tool_messages(&reqs[1]);
    assert_eq!(
        tools,
        [json!({"role": "tool", "tool_call_id": "call_1", "content": "5"})]
    );
    let assistant = &reqs[1]["messages"][2];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["tool_calls"][0]["id"], "call_1");
    // Round three: both parallel results in call order, the error as text for the model.
    let tools = tool_messages(&reqs[2]);
    assert_eq!(tools.len(), 3);
    assert_eq!(tools[1]["tool_call_id"], "call_2");
    assert_eq!(tools[1]["content"], "20");
    assert_eq!(tools[2]["tool_call_id"], "call_3");
    assert_eq!(tools[2]["content"], "tool `div` failed: division by zero");
}

#[tokio::test]
async fn structured_output_with_repair_over_http() {
    let server = Server::start(vec![
        answer("{\"verdict\": \"ship\"}", usage(30, 5)),
        answer("{\"verdict\": \"ship\", \"confidence\": 0.8}", usage(50, 9)),
    ])
    .await;
    let agent = server.agent("judge").output_schema(json!({
        "type": "object",
        "properties": {"verdict": {"enum": ["ship", "hold"]}, "confidence": {"type": "number"}},
        "required": ["verdict", "confidence"]
    }));
    let r = agent.generate("Ship it?").await.unwrap();
    assert_eq!(
        r.object,
        Some(json!({"verdict": "ship", "confidence": 0.8}))
    );
    let reqs = server.requests();
    assert_eq!(reqs[0]["response_format"]["type"], "json_schema");
    assert_eq!(
        reqs[0]["response_format"]["json_schema"]["schema"]["required"],
        json!(["verdict", "confidence"])
    );
    let msgs = reqs[1]["messages"].as_array().unwrap();
    let repair = msgs.last().unwrap();
    assert_eq!(repair["role"], "user");
    assert!(
        repair["content"]
            .as_str()
            .unwrap()
            .contains("\"confidence\" is a required property"),
        "{repair}"
    );
}

#[tokio::test]
async fn streaming_over_sse() {
    let server = Server::start(vec![
        Reply::Sse(vec![
            json!({"id": "s1", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_9", "type": "function", "function": {"name": "add", "arguments": ""}}]}}]}),
            json!({"id": "s1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\": 40,"}}]}}]}),
            json!({"id": "s1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": " \"b\": 2}"}}]}}]}),
            json!({"id": "s1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "usage": usage(11, 4)}),
        ]),
        Reply::Sse(vec![
            json!({"id": "s2", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "The answer"}}]}),
            json!({"id": "s2", "choices": [{"index": 0, "delta": {"content": " is 42."}}]}),
            json!({"id": "s2", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage(22, 6)}),
        ]),
    ])
    .await;
    let agent = server.agent("streamer").tools(math());
    let mut stream = agent.stream("40+2?");
    let mut deltas = Vec::new();
    let mut tool_results = Vec::new();
    let mut finished = None;
    while let Some(ev) = stream.next().await {
        match ev.unwrap() {
            AgentEvent::TextDelta { text, .. } => deltas.push(text),
            AgentEvent::ToolResult { result, .. } => tool_results.push(result.content),
            AgentEvent::Finish { response } => finished = Some(response),
            _ => {}
        }
    }
    assert_eq!(deltas, ["The answer", " is 42."]);
    assert_eq!(tool_results, [json!(42)]);
    let r = finished.unwrap();
    assert_eq!(r.text, "The answer is 42.");
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (33, 10));
    let reqs = server.requests();
    assert_eq!(reqs[0]["stream"], true);
    assert_eq!(tool_messages(&reqs[1])[0]["content"], "42");
}

#[tokio::test]
async fn workflow_approval_over_http() {
    let server = Server::start(vec![
        tool_calls(
            &[("call_p", "pay", json!({"amount": 120, "to": "ACME"}))],
            usage(15, 6),
        ),
        answer("Paid ACME 120.", usage(30, 5)),
    ])
    .await;
    let paid = Arc::new(Mutex::new(Vec::new()));
    let p = paid.clone();
    let pay = tool_json(
        "pay",
        "Pays an invoice",
        json!({"type": "object", "properties": {"amount": {"type": "number"}, "to": {"type": "string"}}, "required": ["amount", "to"]}),
        move |_c: ToolContext, args: Value| {
            let p = p.clone();
            async move {
                p.lock().unwrap().push(args.clone());
                Ok::<_, String>(json!({"ok": true}))
            }
        },
    )
    .requires_approval(true);
    let agent = server.agent("payer").tool(pay);
    let wf = Workflow::new("pay")
        .step("pay", agent)
        .timeout(Duration::from_secs(30))
        .commit()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let run = engine
        .start(&wf, json!("pay the ACME invoice"))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    assert_eq!(
        run.suspended[0].payload["pending"][0]["arguments"],
        json!({"amount": 120, "to": "ACME"})
    );
    // The human lowers the amount before approving.
    let run = engine
        .resume(
            &run.id,
            "pay",
            json!({"decisions": {"call_p": {"approved": true, "arguments": {"amount": 100, "to": "ACME"}}}}),
        )
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output, Some(json!("Paid ACME 120.")));
    assert_eq!(
        *paid.lock().unwrap(),
        [json!({"amount": 100, "to": "ACME"})]
    );
    assert_eq!(
        server.requests().len(),
        2,
        "one model call before and one after approval"
    );
}
