#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Elicitation as a durable suspension (`McpClientBuilder::elicitation_suspends`): an agent step
//! whose MCP tool asks a human suspends its run with `{"kind": "tool-input", ..}` (the server is
//! told `cancel`); resuming with the answer — from a new engine and a new server process on the
//! same SQLite file — calls the tool again and the recorded answer goes to the server when it
//! asks the same question. Against server-everything (stdio) and a server written here on rmcp
//! (Streamable HTTP on loopback) that asks two questions in a row, a URL question, and counts
//! its calls.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use miyabi::{Agent, CommittedWorkflow, Engine, EngineError, Run, RunStatus, Workflow};
use miyabi_mcp::rmcp;
use miyabi_mcp::{ApprovalPolicy, ElicitationAnswer, McpClient, elicitation_fn};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ElicitationAction,
    ErrorData, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::{Value, json};

const ELICIT: &str = "everything_trigger-elicitation-request";

/// server-everything over stdio in suspend mode, once its elicitation tool is listed (it is
/// registered after the handshake, for clients that offer elicitation).
async fn everything(policy: ApprovalPolicy) -> Option<McpClient> {
    let entry = support::everything()?;
    let client = McpClient::stdio("everything", "node")
        .args([entry.to_str().unwrap(), "stdio"])
        .approval(policy)
        .elicitation_suspends()
        .connect()
        .await
        .unwrap();
    let mut changes = client.changes();
    loop {
        let names: BTreeSet<String> = client
            .list_tools()
            .await
            .unwrap()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        if names.contains("trigger-elicitation-request") {
            return Some(client);
        }
        changes.changed().await.unwrap();
    }
}

fn workflow(agent: Agent) -> CommittedWorkflow {
    Workflow::new("signup").step("ask", agent).commit().unwrap()
}

fn waiting(run: &Run) -> &Value {
    assert_eq!(run.status, RunStatus::Suspended, "{:?}", run.error);
    assert_eq!(run.suspended.len(), 1);
    assert_eq!(run.suspended[0].path, "ask");
    &run.suspended[0].payload
}

/// The violation a refused resume names: (JSON pointer, reason).
fn refused(r: Result<Run, EngineError>) -> (String, String) {
    match r {
        Err(EngineError::Schema(v)) => {
            assert_eq!(v.direction, "resume data");
            (v.pointer, v.reason)
        }
        Err(other) => panic!("expected a schema violation, got {other}"),
        Ok(run) => panic!("expected a refusal, got a run {:?}", run.status),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elicitation_suspends_the_run_and_the_answer_reaches_the_server_after_a_restart() {
    let Some(client) = everything(ApprovalPolicy::Never).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let model = support::ReplayModel::start(vec![
        support::tool_calls(&[("c1", ELICIT, json!({}))]),
        support::answer("Welcome, Ada."),
    ])
    .await;
    let agent =
        |tools: Vec<Arc<dyn miyabi::Tool>>| Agent::new("clerk").model(model.model()).tools(tools);

    let engine = Engine::sqlite(&db).unwrap();
    let wf = workflow(agent(client.agent_tools().await.unwrap()));
    let run = engine.start(&wf, json!("sign me up")).await.unwrap();
    let payload = waiting(&run).clone();
    assert_eq!(payload["kind"], "tool-input", "{payload}");
    assert_eq!(payload["agent"], "clerk");
    let pending = &payload["pending"][0];
    assert_eq!(pending["call_id"], "c1");
    assert_eq!(pending["tool"], ELICIT);
    assert_eq!(pending["arguments"], json!({}));
    assert_eq!(pending["server"], "everything");
    assert_eq!(
        pending["message"],
        "Please provide inputs for the following fields:"
    );
    assert_eq!(pending["schema"]["required"], json!(["name"]));
    assert_eq!(pending["schema"]["properties"]["email"]["format"], "email");
    assert!(pending.get("url").is_none());
    assert!(payload["resume_schema"].is_object());
    assert_eq!(model.requests().len(), 1, "the model waits too");

    // Answers that break the question's schema are refused before anything is written, with
    // the field named; so are unknown call ids and actions.
    let bad = |answer: Value| engine.resume(&run.id, "ask", answer);
    let (pointer, _) =
        refused(bad(json!({"c1": {"action": "accept", "content": {"name": 42}}})).await);
    assert_eq!(pointer, "/c1/content/name");
    let (pointer, reason) = refused(bad(json!({"c1": {"action": "accept", "content": {}}})).await);
    assert_eq!(pointer, "/c1/content");
    assert!(reason.contains("name"), "{reason}");
    let (pointer, _) = refused(bad(json!({"c1": {"action": "accept"}})).await);
    assert_eq!(pointer, "/c1");
    let (pointer, _) = refused(bad(json!({"c1": {"action": "maybe"}})).await);
    assert_eq!(pointer, "/c1/action");
    let (_, reason) = refused(bad(json!({"c9": {"action": "decline"}})).await);
    assert!(reason.contains("c9"), "{reason}");
    let still = engine.get(&run.id).await.unwrap().unwrap();
    assert_eq!(
        waiting(&still),
        &payload,
        "a refused resume changes nothing"
    );

    // A new engine on the same file, a new server process, the same question: the recorded
    // answer goes to the server and the run completes.
    drop(engine);
    client.close().await;
    let client = everything(ApprovalPolicy::Never).await.unwrap();
    let engine = Engine::sqlite(&db).unwrap();
    let wf = workflow(agent(client.agent_tools().await.unwrap()));
    engine.register(&wf);
    let run = engine
        .resume(
            &run.id,
            "ask",
            json!({"c1": {"action": "accept", "content": {
                "name": "Ada Lovelace", "check": true, "email": "ada@example.com"
            }}}),
        )
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output, Some(json!("Welcome, Ada.")));
    let reqs = model.requests();
    assert_eq!(reqs.len(), 2);
    let results = support::tool_messages(&reqs[1]);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].0, "c1");
    assert!(results[0].1.contains("Name: Ada Lovelace"), "{results:?}");
    assert!(
        results[0].1.contains("Email: ada@example.com"),
        "{results:?}"
    );
    assert!(
        results[0].1.contains("Agreed to terms: true"),
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_comes_first_then_a_decline_goes_to_the_server_as_decline() {
    // The elicitation tool is not read-only: by its annotations it needs approval first.
    let Some(client) = everything(ApprovalPolicy::Annotations).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = support::ReplayModel::start(vec![
        support::tool_calls(&[
            ("c1", ELICIT, json!({})),
            ("c2", "everything_get-sum", json!({"a": 2, "b": 40})),
        ]),
        support::answer("You declined."),
    ])
    .await;
    let agent = Agent::new("clerk")
        .model(model.model())
        .tools(client.agent_tools().await.unwrap());
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let run = engine
        .start(&workflow(agent), json!("sign me up"))
        .await
        .unwrap();
    let payload = waiting(&run);
    assert_eq!(payload["kind"], "tool-approval", "{payload}");
    assert_eq!(payload["pending"][0]["call_id"], "c1");

    let run = engine
        .resume(&run.id, "ask", json!({"approved": true}))
        .await
        .unwrap();
    let payload = waiting(&run);
    assert_eq!(payload["kind"], "tool-input", "{payload}");
    assert_eq!(payload["pending"].as_array().unwrap().len(), 1);
    assert_eq!(payload["pending"][0]["call_id"], "c1");

    let run = engine
        .resume(&run.id, "ask", json!({"c1": {"action": "decline"}}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let reqs = model.requests();
    assert_eq!(reqs.len(), 2);
    let results = support::tool_messages(&reqs[1]);
    assert_eq!(
        results.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["c1", "c2"]
    );
    assert!(
        results[0]
            .1
            .contains("User declined to provide the requested information"),
        "{results:?}"
    );
    assert!(results[1].1.contains("42"), "{results:?}");
}

/// A server written on rmcp: `book` asks which day, then asks to confirm it; `consent` asks the
/// human to open a URL; `count` counts its calls. Every call of every tool is counted.
#[derive(Clone, Default)]
struct Booking {
    calls: Arc<std::sync::Mutex<Vec<String>>>,
    counted: Arc<AtomicUsize>,
}

impl Booking {
    fn calls_of(&self, tool: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|t| *t == tool)
            .count()
    }
}

fn text(t: impl Into<String>) -> CallToolResponse {
    CallToolResponse::from(CallToolResult::success(vec![ContentBlock::text(t)]))
}

async fn ask(
    context: &RequestContext<RoleServer>,
    params: Value,
) -> Result<(ElicitationAction, Value), ErrorData> {
    let params = serde_json::from_value(params).unwrap();
    let r = context
        .peer
        .create_elicitation(params)
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    Ok((r.action, r.content.unwrap_or(Value::Null)))
}

impl rmcp::ServerHandler for Booking {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let read_only = json!({"readOnlyHint": true});
        Ok(serde_json::from_value(json!({"tools": [
            {"name": "book", "description": "Books something on a day the human picks",
             "inputSchema": {"type": "object", "properties": {"what": {"type": "string"}}, "required": ["what"]},
             "annotations": read_only},
            {"name": "consent", "description": "Asks the human to consent on a web page",
             "inputSchema": {"type": "object"}, "annotations": read_only},
            {"name": "count", "description": "Counts its calls",
             "inputSchema": {"type": "object"}, "annotations": read_only},
        ]}))
        .unwrap())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.calls.lock().unwrap().push(request.name.to_string());
        let args = Value::Object(request.arguments.unwrap_or_default());
        match request.name.as_ref() {
            "count" => {
                let n = self.counted.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(text(format!("counted {n}")))
            }
            "book" => {
                let what = args["what"].as_str().unwrap_or_default().to_owned();
                let (action, day) = ask(
                    &context,
                    json!({"mode": "form", "message": format!("Which day for {what}?"),
                           "requestedSchema": {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]}}),
                )
                .await?;
                if action != ElicitationAction::Accept {
                    return Ok(text(format!("no booking ({action:?})")));
                }
                let day = day["day"].as_str().unwrap_or_default().to_owned();
                let (action, ok) = ask(
                    &context,
                    json!({"mode": "form", "message": format!("Confirm {what} on {day}?"),
                           "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}),
                )
                .await?;
                if action == ElicitationAction::Accept && ok["ok"] == true {
                    Ok(text(format!("booked {what} on {day}")))
                } else {
                    Ok(text(format!("not booked ({action:?})")))
                }
            }
            "consent" => {
                let (action, _) = ask(
                    &context,
                    json!({"mode": "url", "message": "Consent on this page",
                           "url": "https://consent.example/ok", "elicitationId": "consent-1"}),
                )
                .await?;
                Ok(text(format!("consent: {action:?}")))
            }
            other => Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        }
    }
}

/// `server` over Streamable HTTP on a loopback port; stops when the handle is dropped.
struct Served {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(server: Booking) -> Served {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().route_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Served { url, task }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_questions_in_a_row_and_a_url_question_each_suspend_once_and_done_calls_stay_done() {
    let booking = Booking::default();
    let served = serve(booking.clone()).await;
    // A handler too: outside a run it answers (below); inside a run the run suspends.
    let handled = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&handled);
    let client = McpClient::http("desk", &served.url)
        .elicitation(elicitation_fn(move |req| {
            let h = Arc::clone(&h);
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                match req.schema.as_ref().and_then(|s| s["properties"].get("day")) {
                    Some(_) => ElicitationAnswer::Accept(json!({"day": "Monday"})),
                    None => ElicitationAnswer::Accept(json!({"ok": true})),
                }
            }
        }))
        .elicitation_suspends()
        .connect()
        .await
        .unwrap();
    let tools = client.agent_tools().await.unwrap();
    assert!(tools.iter().all(|t| !t.requires_approval()));

    let model = support::ReplayModel::start(vec![
        support::tool_calls(&[
            ("c1", "desk_book", json!({"what": "dinner"})),
            ("c2", "desk_count", json!({})),
        ]),
        support::tool_calls(&[("c3", "desk_consent", json!({}))]),
        support::answer("Booked and consented."),
    ])
    .await;
    let agent = Agent::new("planner")
        .model(model.model())
        .tools(tools.clone());
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let run = engine
        .start(&workflow(agent), json!("book dinner"))
        .await
        .unwrap();
    let payload = waiting(&run);
    assert_eq!(payload["kind"], "tool-input", "{payload}");
    assert_eq!(payload["pending"][0]["call_id"], "c1");
    assert_eq!(payload["pending"][0]["message"], "Which day for dinner?");
    assert_eq!(payload["pending"][0]["server"], "desk");
    assert_eq!(
        payload["pending"][0]["arguments"],
        json!({"what": "dinner"})
    );

    // The first answer: the call runs again, the first question is answered from the record,
    // the second one suspends the run.
    let run = engine
        .resume(
            &run.id,
            "ask",
            json!({"c1": {"action": "accept", "content": {"day": "Friday"}}}),
        )
        .await
        .unwrap();
    let payload = waiting(&run);
    assert_eq!(payload["pending"][0]["call_id"], "c1");
    assert_eq!(
        payload["pending"][0]["message"],
        "Confirm dinner on Friday?"
    );
    assert_eq!(payload["pending"][0]["schema"]["required"], json!(["ok"]));
    let (pointer, _) = refused(
        engine
            .resume(
                &run.id,
                "ask",
                json!({"c1": {"action": "accept", "content": {"ok": "yes"}}}),
            )
            .await,
    );
    assert_eq!(pointer, "/c1/content/ok");

    let run = engine
        .resume(
            &run.id,
            "ask",
            json!({"c1": {"action": "accept", "content": {"ok": true}}}),
        )
        .await
        .unwrap();
    // The next turn's URL question.
    let payload = waiting(&run);
    assert_eq!(payload["pending"][0]["call_id"], "c3");
    assert_eq!(payload["pending"][0]["url"], "https://consent.example/ok");
    assert!(payload["pending"][0].get("schema").is_none());
    let run = engine
        .resume(&run.id, "ask", json!({"c3": {"action": "accept"}}))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output, Some(json!("Booked and consented.")));

    let reqs = model.requests();
    assert_eq!(reqs.len(), 3);
    let first = support::tool_messages(&reqs[1]);
    assert_eq!(
        first,
        [
            ("c1".to_owned(), "booked dinner on Friday".to_owned()),
            ("c2".to_owned(), "counted 1".to_owned()),
        ]
    );
    let second = support::tool_messages(&reqs[2]);
    assert_eq!(second[2], ("c3".to_owned(), "consent: Accept".to_owned()));
    // `book` ran three times (asked, asked again, answered), `count` once: a completed call is
    // not repeated; the handler was never asked.
    assert_eq!(booking.calls_of("book"), 3);
    assert_eq!(booking.calls_of("count"), 1);
    assert_eq!(booking.calls_of("consent"), 2);
    assert_eq!(handled.load(Ordering::SeqCst), 0);

    // Outside a run (a plain generate) the handler answers, as without suspend mode.
    let model = support::ReplayModel::start(vec![
        support::tool_calls(&[("d1", "desk_book", json!({"what": "lunch"}))]),
        support::answer("Booked lunch."),
    ])
    .await;
    let r = Agent::new("planner")
        .model(model.model())
        .tools(tools)
        .generate("book lunch")
        .await
        .unwrap();
    assert_eq!(r.text, "Booked lunch.");
    assert_eq!(
        support::tool_messages(&model.requests()[1])[0].1,
        "booked lunch on Monday"
    );
    assert_eq!(handled.load(Ordering::SeqCst), 2);
}
