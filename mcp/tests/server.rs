#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Miyabi's MCP server, called by Miyabi's MCP client: over Streamable HTTP mounted in the HTTP
//! API (bearer auth, Origin validation), and over stdio through the `miyabi-mcp` binary:
//! workflows as tools with progress, a suspended run's structured result, approvals decided
//! with the same checks as the HTTP API, runs and event logs as resources, plain tools and
//! agents as tools.

mod support;

use std::sync::{Arc, Mutex};

use miyabi::approval::{ApprovalGate, Approver};
use miyabi::server::{Identity, Role, ServerConfig, serve};
use miyabi::{
    Agent, CommittedWorkflow, Engine, RunStatus, SqliteStore, StepContext, StepError, Workflow,
    step_fn, tool_fn,
};
use miyabi_mcp::server::http::{self, HttpOptions};
use miyabi_mcp::{CallOptions, McpClient, McpServer, Progress};
use serde_json::{Value, json};

const ALICE: &str = "alice-token-123456";
const BOB: &str = "bob-token-1234567";
/// A viewer, an operator limited to the workflow `greet`, and an approver.
const VIC: &str = "vic-token-viewer-123";
const OLGA: &str = "olga-token-operator-1";
const CAROL: &str = "carol-token-approver";

fn greet() -> CommittedWorkflow {
    let add = |s: &'static str| {
        step_fn(move |_c: StepContext, v: Value| async move {
            Ok::<_, StepError>(
                json!({"name": v["name"], "text": format!("{}{s}", v["text"].as_str().unwrap_or_default())}),
            )
        })
    };
    Workflow::new("greet")
        .input_schema(json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}))
        .step("hello", add("Hello"))
        .then("comma", add(", "))
        .then(
            "name",
            step_fn(|_c: StepContext, v: Value| async move {
                Ok::<_, StepError>(json!(format!("{}{}!", v["text"].as_str().unwrap(), v["name"].as_str().unwrap())))
            }),
        )
        .commit()
        .unwrap()
}

fn release() -> CommittedWorkflow {
    Workflow::new("release")
        .input_schema(json!({"type": "string"}))
        .step(
            "build",
            step_fn(|_c: StepContext, v: Value| async move {
                Ok::<_, StepError>(json!({"version": v}))
            }),
        )
        .await_approval(
            "review",
            ApprovalGate::new().title("Ship it?").approvers(["alice"]),
        )
        .then(
            "deploy",
            step_fn(|_c: StepContext, v: Value| async move {
                Ok::<_, StepError>(json!({"deployed": v}))
            }),
        )
        .commit()
        .unwrap()
}

fn structured(r: &miyabi_mcp::rmcp::model::CallToolResult) -> Value {
    r.structured_content.clone().expect("structured content")
}

struct Http {
    engine: Engine,
    url: String,
    handle: Option<miyabi::server::ServerHandle>,
    stop: tokio_util::sync::CancellationToken,
}

impl Http {
    async fn start(dir: &tempfile::TempDir) -> Self {
        let engine = Engine::builder()
            .store(SqliteStore::open(dir.path().join("runs.db")).unwrap())
            .worker_interval(std::time::Duration::from_millis(20))
            .build();
        engine.register(&greet());
        engine.register(&release());
        let shout = tool_fn("shout", "Upper-cases a text", |_ctx, a: Shout| async move {
            Ok::<_, String>(a.text.to_uppercase())
        });
        let model = support::ReplayModel::start(vec![support::answer("I am the helper.")]).await;
        let helper = Agent::new("helper").model(model.model());
        std::mem::forget(model); // served for the whole test process
        let mcp = McpServer::builder(engine.clone())
            .tool(shout)
            .agent(helper)
            .build();
        let opts = HttpOptions::default();
        let stop = opts.shutdown.clone();
        let config = http::mount(
            ServerConfig::new()
                .token(ALICE, Approver::new("alice"))
                .token(BOB, Approver::new("bob"))
                .identity(VIC, Identity::new("vic").roles([Role::Viewer]))
                .identity(
                    OLGA,
                    Identity::new("olga")
                        .roles([Role::Operator])
                        .workflows(["greet"]),
                )
                .identity(CAROL, Identity::new("carol").roles([Role::Approver])),
            mcp,
            opts,
        );
        let handle = serve(engine.clone(), config, Some("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let url = format!("http://{}/mcp", handle.local_addr());
        Self {
            engine,
            url,
            handle: Some(handle),
            stop,
        }
    }

    async fn client(&self, token: &str) -> McpClient {
        McpClient::http("miyabi", &self.url)
            .header("Authorization", format!("Bearer {token}"))
            .connect()
            .await
            .unwrap()
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Shout {
    text: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_approvals_and_runs_over_streamable_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Http::start(&dir).await;
    let alice = server.client(ALICE).await;

    let tools: Vec<String> = alice
        .list_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    for t in [
        "run_greet",
        "run_release",
        "agent_helper",
        "shout",
        "approvals_list",
        "approvals_decide",
    ] {
        assert!(tools.contains(&t.to_owned()), "{t} in {tools:?}");
    }
    let greet_tool = alice
        .list_tools()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "run_greet")
        .unwrap();
    assert_eq!(
        greet_tool.input_schema["required"],
        json!(["name"]),
        "the workflow's schema"
    );

    // A workflow to completion, with a progress notification per step.
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let r = alice
        .call_tool_with(
            "run_greet",
            json!({"name": "Ada"}),
            CallOptions {
                progress: Some(Arc::new(move |p| sink.lock().unwrap().push(p))),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
    let run = structured(&r);
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["output"], "Hello, Ada!");
    let progress: Vec<f64> = seen.lock().unwrap().iter().map(|p| p.progress).collect();
    assert_eq!(progress, vec![1.0, 2.0, 3.0]);
    assert_eq!(
        seen.lock().unwrap()[2].message.as_deref(),
        Some("step `name` finished")
    );

    // Invalid input: the engine's schema violation comes back as a tool error.
    let r = alice
        .call_tool("run_greet", json!({"nom": "x"}))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert_eq!(structured(&r)["error"]["code"], "VALIDATION");

    // The run as a resource, and its events.
    let id = run["runId"].as_str().unwrap().to_owned();
    let res = alice
        .read_resource(&format!("miyabi://runs/{id}"))
        .await
        .unwrap();
    let body = serde_json::to_value(&res.contents).unwrap();
    let record: Value = serde_json::from_str(body[0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(record["status"], "succeeded");
    let res = alice
        .read_resource(&format!("miyabi://runs/{id}/events"))
        .await
        .unwrap();
    let body = serde_json::to_value(&res.contents).unwrap();
    assert!(body[0]["text"].as_str().unwrap().contains("run-finished"));
    let listed = alice.list_resources().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|r| r.uri == format!("miyabi://runs/{id}"))
    );
    assert_eq!(alice.list_resource_templates().await.unwrap().len(), 2);
    let e = alice.read_resource("miyabi://runs/nope").await.unwrap_err();
    assert!(e.to_string().contains("no run `nope`"), "{e}");

    // A workflow that suspends at an approval gate says what it waits for.
    let r = alice
        .call_tool("run_release", json!({"input": "1.2.0"}))
        .await
        .unwrap();
    let run = structured(&r);
    assert_eq!(run["status"], "suspended");
    assert_eq!(run["waitingFor"][0]["path"], "review");
    assert_eq!(run["waitingFor"][0]["kind"], "approval");
    assert_eq!(
        run["waitingFor"][0]["approval"]["approvers"],
        json!(["alice"])
    );
    assert_eq!(
        run["waitingFor"][0]["decideWith"]["tool"],
        "approvals_decide"
    );
    let rid = run["runId"].as_str().unwrap().to_owned();

    // Bob's inbox is empty; Bob may not decide (the gate's policy), Alice may.
    let bob = server.client(BOB).await;
    let r = bob.call_tool("approvals_list", json!({})).await.unwrap();
    assert_eq!(structured(&r)["approvals"], json!([]));
    let r = bob
        .call_tool(
            "approvals_decide",
            json!({"run": rid, "gate": "review", "action": "approve"}),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert_eq!(structured(&r)["error"]["code"], "FORBIDDEN");
    let r = alice.call_tool("approvals_list", json!({})).await.unwrap();
    assert_eq!(
        structured(&r)["approvals"][0]["run_id"],
        rid,
        "{}",
        structured(&r)
    );
    let r = alice
        .call_tool(
            "approvals_decide",
            json!({"run": rid, "gate": "review", "action": "approve", "comment": "ship it"}),
        )
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{:?}", r.content);
    assert_eq!(structured(&r)["approval"]["status"], "approved");
    // The decision was handed to the run by `decide` (this engine has the workflow).
    let done = server.engine.wait(&rid).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    let audit = server
        .engine
        .approvals()
        .audit(&miyabi::approval::AuditFilter {
            run_id: Some(rid.clone()),
            ..Default::default()
        })
        .unwrap();
    assert!(audit.iter().any(|a| {
        serde_json::to_value(a)
            .unwrap()
            .to_string()
            .contains("alice")
    }));

    // A plain tool and an agent.
    let r = alice
        .call_tool("shout", json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(&r.content).unwrap()[0]["text"], "HI");
    let r = alice
        .call_tool("shout", json!({"txt": "hi"}))
        .await
        .unwrap_err();
    assert!(
        r.to_string().contains("invalid arguments for `shout`"),
        "{r}"
    );
    let r = alice
        .call_tool("agent_helper", json!({"prompt": "who are you?"}))
        .await
        .unwrap();
    assert_eq!(structured(&r)["text"], "I am the helper.");

    // Ends the MCP sessions (their event streams), then the server.
    server.stop.cancel();
    server.handle.unwrap().shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_needs_a_token_and_refuses_foreign_origins() {
    let dir = tempfile::tempdir().unwrap();
    let server = Http::start(&dir).await;
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let post = |token: Option<&str>, origin: Option<&str>| {
        let mut r = http
            .post(&server.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(init.to_string());
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    assert_eq!(post(None, None).await.unwrap().status(), 401);
    assert_eq!(
        post(Some("wrong-token-000"), None).await.unwrap().status(),
        401
    );
    assert_eq!(
        post(Some(ALICE), Some("http://evil.example"))
            .await
            .unwrap()
            .status(),
        403,
        "a browser page from another origin (DNS rebinding) is refused"
    );
    assert_eq!(post(Some(ALICE), None).await.unwrap().status(), 200);
    // A client without the token cannot connect at all.
    let e = McpClient::http("miyabi", &server.url)
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(e, miyabi_mcp::McpClientError::Connect { .. }),
        "{e}"
    );
    assert!(!e.to_string().contains(ALICE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_over_stdio_through_the_binary() {
    // A run suspended at a gate, in a database file.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let engine = Engine::builder()
        .store(SqliteStore::open(&db).unwrap())
        .worker_interval(std::time::Duration::from_secs(3600))
        .build();
    engine.register(&release());
    let run = engine.start(&release(), json!("2.0.0")).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended);

    // `miyabi-mcp --as bob`: not an approver of the gate.
    let bin = env!("CARGO_BIN_EXE_miyabi-mcp");
    let bob = McpClient::stdio("miyabi", bin)
        .args(["--db", db.to_str().unwrap(), "--as", "bob"])
        .connect()
        .await
        .unwrap();
    let r = bob
        .call_tool(
            "approvals_decide",
            json!({"run": run.id, "gate": "review", "action": "reject"}),
        )
        .await
        .unwrap();
    assert_eq!(structured(&r)["error"]["code"], "FORBIDDEN");
    bob.close().await;

    // `miyabi-mcp --as alice` approves; the engine that has the workflow finishes the run.
    let alice = McpClient::stdio("miyabi", bin)
        .args(["--db", db.to_str().unwrap()])
        .env("MIYABI_MCP_AS", "alice")
        .connect()
        .await
        .unwrap();
    let r = alice.call_tool("approvals_list", json!({})).await.unwrap();
    assert_eq!(
        structured(&r)["approvals"][0]["gate"],
        "review",
        "{}",
        structured(&r)
    );
    let res = alice
        .read_resource(&format!("miyabi://runs/{}", run.id))
        .await
        .unwrap();
    assert!(
        serde_json::to_value(&res.contents)
            .unwrap()
            .to_string()
            .contains("suspended")
    );
    let r = alice
        .call_tool(
            "approvals_decide",
            json!({"run": run.id, "gate": "review", "action": "approve"}),
        )
        .await
        .unwrap();
    assert_eq!(
        structured(&r)["approval"]["status"],
        "approved",
        "{}",
        structured(&r)
    );
    // The binary registers no workflows: the decision waits in the database until an engine
    // that has the workflow hands it to the run (its approvals worker, or a tick).
    engine.approvals().tick().await.unwrap();
    let done = engine.wait(&run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    assert!(done.output.unwrap()["deployed"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_call_cancels_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = Http::start(&dir).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let s = Arc::clone(&started);
    let slow = Workflow::new("slow")
        .step(
            "wait",
            step_fn(move |ctx: StepContext, _v: Value| {
                let s = Arc::clone(&s);
                async move {
                    s.notify_one();
                    ctx.cancellation().cancelled().await;
                    Err::<Value, _>(StepError::fatal("cancelled"))
                }
            }),
        )
        .commit()
        .unwrap();
    server.engine.register(&slow);
    let alice = server.client(ALICE).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let call = alice.call_tool_with(
        "run_slow",
        json!({}),
        CallOptions {
            cancel: Some(cancel.clone()),
            ..CallOptions::default()
        },
    );
    let (r, ()) = tokio::join!(call, async {
        started.notified().await;
        cancel.cancel();
    });
    assert!(
        matches!(r, Err(miyabi_mcp::McpClientError::Cancelled { .. })),
        "{r:?}"
    );
    // The server was told (`notifications/cancelled`) and cancelled the run.
    let runs = server
        .engine
        .list(&miyabi::RunFilter {
            workflow: Some("slow".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let run = server.engine.wait(&runs[0].id).await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    server.stop.cancel();
    server.handle.unwrap().shutdown().await.unwrap();
}

async fn tool_names(c: &McpClient) -> Vec<String> {
    let mut names: Vec<String> = c
        .list_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

/// The tool error of a refused call: its code and message.
async fn refused(c: &McpClient, tool: &str, args: Value) -> (String, String) {
    let r = c.call_tool(tool, args).await.unwrap();
    assert_eq!(r.is_error, Some(true), "{tool}: {r:?}");
    let body = structured(&r);
    (
        body["error"]["code"].as_str().unwrap().to_owned(),
        body["error"]["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_scopes_apply_to_each_tool_and_resource_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Http::start(&dir).await;
    let alice = server.client(ALICE).await;
    let released = structured(
        &alice
            .call_tool("run_release", json!({"input": "v2"}))
            .await
            .unwrap(),
    );
    let release_run = released["runId"].as_str().unwrap().to_owned();

    // A viewer reads runs and its inbox, and may start, call or decide nothing.
    let vic = server.client(VIC).await;
    assert_eq!(tool_names(&vic).await, ["approvals_list"]);
    let (code, msg) = refused(&vic, "run_greet", json!({"name": "x"})).await;
    assert_eq!(code, "FORBIDDEN");
    assert!(
        msg.contains("`vic`") && msg.contains("operator or admin"),
        "{msg}"
    );
    let (code, msg) = refused(&vic, "shout", json!({"text": "x"})).await;
    assert_eq!(code, "FORBIDDEN");
    assert!(msg.contains("every workflow in scope"), "{msg}");
    let (code, _) = refused(
        &vic,
        "approvals_decide",
        json!({"run": release_run, "gate": "review", "action": "approve"}),
    )
    .await;
    assert_eq!(code, "FORBIDDEN");
    let r = vic
        .call_tool("approvals_list", json!({"all": true}))
        .await
        .unwrap();
    assert_eq!(structured(&r)["approvals"].as_array().unwrap().len(), 1);
    let uris: Vec<String> = vic
        .list_resources()
        .await
        .unwrap()
        .iter()
        .map(|r| r.uri.clone())
        .collect();
    assert!(
        uris.contains(&format!("miyabi://runs/{release_run}")),
        "{uris:?}"
    );
    vic.read_resource(&format!("miyabi://runs/{release_run}"))
        .await
        .unwrap();

    // An operator limited to `greet`: that workflow only; the rest does not exist for it.
    let olga = server.client(OLGA).await;
    assert_eq!(tool_names(&olga).await, ["approvals_list", "run_greet"]);
    let r = olga
        .call_tool("run_greet", json!({"name": "Olga"}))
        .await
        .unwrap();
    assert_eq!(structured(&r)["output"], "Hello, Olga!");
    let greet_run = structured(&r)["runId"].as_str().unwrap().to_owned();
    let e = olga
        .call_tool("run_release", json!({"input": "v3"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no tool named `run_release`"), "{e}");
    let uris: Vec<String> = olga
        .list_resources()
        .await
        .unwrap()
        .iter()
        .map(|r| r.uri.clone())
        .collect();
    assert!(
        uris.contains(&format!("miyabi://runs/{greet_run}")),
        "{uris:?}"
    );
    assert!(!uris.iter().any(|u| u.contains(&release_run)), "{uris:?}");
    let e = olga
        .read_resource(&format!("miyabi://runs/{release_run}"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no run"), "{e}");
    let r = olga
        .call_tool("approvals_list", json!({"all": true}))
        .await
        .unwrap();
    assert_eq!(
        structured(&r)["approvals"],
        json!([]),
        "the release gate is out of scope"
    );

    // An approver: its inbox and decisions, nothing else.
    let carol = server.client(CAROL).await;
    assert_eq!(
        tool_names(&carol).await,
        ["approvals_decide", "approvals_list"]
    );
    let (code, _) = refused(&carol, "run_greet", json!({"name": "x"})).await;
    assert_eq!(code, "FORBIDDEN");
    let (code, msg) = refused(&carol, "approvals_list", json!({"all": true})).await;
    assert_eq!(code, "FORBIDDEN");
    assert!(msg.contains("all=true"), "{msg}");
    assert!(carol.list_resources().await.unwrap().is_empty());
    let e = carol
        .read_resource(&format!("miyabi://runs/{release_run}"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("FORBIDDEN"), "{e}");
    // The gate names alice only: the policy refuses carol's decision, as over the API.
    let (code, _) = refused(
        &carol,
        "approvals_decide",
        json!({"run": release_run, "gate": "review", "action": "approve"}),
    )
    .await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(
        server
            .engine
            .get(&release_run)
            .await
            .unwrap()
            .unwrap()
            .status,
        RunStatus::Suspended
    );
}
