//! The HTTP API on loopback over a real SQLite file: every route, authentication, error
//! shapes, paging, SSE replay then live, the WebSocket, and tokens kept out of the logs.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use miyabi::approval::{ApprovalGate, Approver};
use miyabi::server::{ServerConfig, ServerHandle, serve};
use miyabi::{CommittedWorkflow, Engine, StepContext, Workflow, step_fn};
use serde_json::{Value, json};
use tokio::sync::Notify;

const TOKEN: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-fedcba9876543210";

/// Everything tracing writes in this test binary.
fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = Arc::clone(&buf);
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Writer(Arc::clone(&b)))
            .try_init();
        buf
    })
    .clone()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    server: ServerHandle,
    base: String,
    http: reqwest::Client,
    gate: Arc<Notify>,
}

impl Fixture {
    async fn new() -> Self {
        log_buffer();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
        let gate = Arc::new(Notify::new());
        for wf in workflows(Arc::clone(&gate)) {
            engine.register(&wf);
        }
        let config = ServerConfig::new()
            .token(TOKEN, Approver::new("alice").teams(["leads"]))
            .token(BOB, Approver::new("bob"))
            .body_limit(64 * 1024)
            .poll_interval(Duration::from_millis(20));
        let server = serve(engine.clone(), config, Some("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        Fixture {
            _dir: dir,
            engine,
            server,
            base,
            http: reqwest::Client::new(),
            gate,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_as(TOKEN, path, body).await
    }

    async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post_as(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the run stops executing in this engine (it suspends or finishes), then
    /// reads it over HTTP and checks it has `status`. Every run here is started, resumed or
    /// handed its gate's decision by a request to this engine, which makes the run active
    /// before it answers, so `Engine::wait` sees it.
    async fn wait_status(&self, id: &str, status: &str) -> Value {
        let run = self.engine.wait(id).await.unwrap();
        let (_, v) = self.get(&format!("/api/runs/{id}")).await;
        assert_eq!(v["run"]["status"], status, "{run:?}");
        v
    }
}

fn echo() -> miyabi::Node {
    step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) })
}

fn workflows(gate: Arc<Notify>) -> Vec<CommittedWorkflow> {
    let review = step_fn(|ctx: StepContext, v: Value| async move {
        match ctx.resume_data() {
            Some(d) => Ok(json!({ "draft": v, "decision": d })),
            None => ctx.suspend(json!({ "question": "approve?" })),
        }
    });
    let wait = step_fn(move |_ctx: StepContext, v: Value| {
        let gate = Arc::clone(&gate);
        async move {
            gate.notified().await;
            Ok(v)
        }
    });
    let emit = step_fn(|ctx: StepContext, v: Value| async move {
        for i in 0..5 {
            ctx.emit("tick", json!(i));
        }
        Ok(v)
    });
    let inner = Workflow::new("inner").step("x", echo()).commit().unwrap();
    let fragment = Workflow::new("frag").step("f1", echo()).then("f2", echo());
    vec![
        Workflow::new("greet")
            .step("hello", echo())
            .commit()
            .unwrap(),
        Workflow::new("approve")
            .step("draft", echo())
            .then("review", review)
            .commit()
            .unwrap(),
        Workflow::new("slow")
            .step("first", echo())
            .then("wait", wait)
            .then("emit", emit)
            .commit()
            .unwrap(),
        Workflow::new("gated")
            .step("draft", echo())
            .then(
                "checks",
                Workflow::new("checks").await_approval(
                    "security",
                    ApprovalGate::new()
                        .title("Security review")
                        .approvers(["alice", "team:ops"])
                        .schema(json!({ "type": "object", "required": ["patch"] })),
                ),
            )
            .then("ship", echo())
            .commit()
            .unwrap(),
        Workflow::new("shapes")
            .step("start", echo())
            .branch("route", |_v: &Value| "a", [("a", echo()), ("b", echo())])
            .parallel([("lint", echo()), ("test", echo())])
            .dowhile("fix", echo(), |_v: &Value| false, 3)
            .foreach("each", echo(), 2)
            .sleep("nap", Duration::from_millis(1))
            .map("shape", |v: &Value| v.clone())
            .then("sub", inner)
            .then("group", fragment)
            .commit()
            .unwrap(),
    ]
}

#[tokio::test]
async fn authentication_and_error_shapes() {
    let f = Fixture::new().await;
    // Open routes.
    let r = f.http.get(f.url("/api/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = f
        .http
        .get(f.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every route of the route table is documented.
    for route in miyabi::server::API_ROUTES {
        let (method, path) = (route.method.to_lowercase(), route.path);
        let method = method.as_str();
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    // No token, a wrong token, a token in the query of a non-streaming route: 401.
    let r = f.http.get(f.url("/api/runs")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    let r = f
        .http
        .get(f.url("/api/runs"))
        .bearer_auth("wrong-token-0000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = f
        .http
        .get(f.url(&format!("/api/runs?access_token={TOKEN}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The right token, and the identity behind it.
    let (s, me) = f.get("/api/me").await;
    assert_eq!(s, 200);
    assert_eq!(
        me,
        json!({ "id": "alice", "teams": ["leads"], "roles": ["admin"], "workflows": ["*"] })
    );
    let r = f
        .http
        .get(f.url("/api/me"))
        .bearer_auth(BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["id"], "bob");
    // Unknown route, wrong method.
    let (s, b) = f.get("/api/nothing").await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("NOT_FOUND")));
    let (s, b) = f.post("/api/runs", json!({})).await;
    assert_eq!(s, 405);
    assert_eq!(b["error"]["code"], "METHOD_NOT_ALLOWED");
    // Malformed JSON: 400; JSON of the wrong shape: 422.
    let r = f
        .http
        .post(f.url("/api/workflows/greet/runs"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"input\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "INVALID_ARGUMENT"
    );
    let (s, b) = f.post("/api/runs/x/resume", json!({ "data": 1 })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("VALIDATION")));
    // Over the body limit (64 KiB here): 413, with and without a Content-Length.
    let big = json!({ "input": "x".repeat(100 * 1024) });
    let (s, b) = f.post("/api/workflows/greet/runs", big).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE"))
    );
    let chunks = futures::stream::iter(
        (0..100).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1024]))),
    );
    let r = f
        .http
        .post(f.url("/api/workflows/greet/runs"))
        .bearer_auth(TOKEN)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "PAYLOAD_TOO_LARGE"
    );
    // 404s.
    for path in [
        "/api/workflows/nope",
        "/api/runs/nope",
        "/api/runs/nope/events",
    ] {
        let (s, b) = f.get(path).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (404, Some("NOT_FOUND")),
            "{path}"
        );
    }
    for path in ["/api/workflows/nope/runs", "/api/runs/nope/cancel"] {
        let (s, b) = f.post(path, json!({})).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (404, Some("NOT_FOUND")),
            "{path}"
        );
    }
    let (s, _) = f
        .post("/api/runs/nope/resume", json!({ "path": "a", "data": 1 }))
        .await;
    assert_eq!(s, 404);
    // Bad query values.
    let (s, b) = f.get("/api/runs?status=bogus").await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("VALIDATION")));
    let (s, b) = f.get("/api/runs?cursor=!!").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    let (s, _) = f.get("/api/runs?limit=abc").await;
    assert_eq!(s, 400);
    // A run started and read, so the logs have seen a full request cycle.
    let (s, b) = f
        .post("/api/workflows/greet/runs", json!({ "input": 1 }))
        .await;
    assert_eq!(s, 202);
    f.wait_status(b["id"].as_str().unwrap(), "succeeded").await;
    f.server.shutdown().await.unwrap();
    // Tokens never reach the logs, while requests do.
    let logs = String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned();
    assert!(logs.contains("/api/runs"), "requests are traced: {logs}");
    for secret in [TOKEN, BOB, "wrong-token-0000000000"] {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "a token leaked into the logs: {leaks:#?}");
    }
}

#[tokio::test]
async fn workflows_are_listed_with_their_graphs() {
    let f = Fixture::new().await;
    let (s, b) = f.get("/api/workflows").await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = b["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["approve", "gated", "greet", "shapes", "slow"]);
    let (s, w) = f.get("/api/workflows/shapes").await;
    assert_eq!(s, 200);
    assert_eq!(
        w["fingerprint"],
        f.engine.workflow("shapes").unwrap().fingerprint()
    );
    let g = &w["graph"];
    let node = |id: &str| {
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no node {id}: {g}"))
    };
    for (id, kind, parent) in [
        ("start", "step", Value::Null),
        ("route", "branch", Value::Null),
        ("route/a", "step", json!("route")),
        ("parallel(lint,test)", "parallel", Value::Null),
        ("lint", "step", json!("parallel(lint,test)")),
        ("fix", "loop", Value::Null),
        ("fix[*]", "step", json!("fix")),
        ("each", "foreach", Value::Null),
        ("each[*]", "step", json!("each")),
        ("nap", "sleep", Value::Null),
        ("shape", "map", Value::Null),
        ("sub", "nested", Value::Null),
        ("sub/x", "step", json!("sub")),
        ("group", "group", Value::Null),
        ("group/f2", "step", json!("group")),
    ] {
        let n = node(id);
        assert_eq!(n["kind"], kind, "{id}");
        assert_eq!(n["parent"], parent, "{id}");
    }
    assert_eq!(node("route")["arms"], json!(["a", "b"]));
    assert_eq!(node("parallel(lint,test)")["path"], Value::Null);
    let edges = g["edges"].as_array().unwrap();
    let has = |from: &str, to: &str, kind: &str| {
        edges
            .iter()
            .any(|e| e["from"] == from && e["to"] == to && e["kind"] == kind)
    };
    assert!(has("start", "route", "next"));
    assert!(has("route", "route/b", "arm"));
    assert!(has("parallel(lint,test)", "test", "child"));
    assert!(has("fix", "fix[*]", "body"));
    assert!(has("sub", "sub/x", "body"));
    assert!(has("group", "group/f1", "body"));
    assert!(has("group/f1", "group/f2", "next"));
    assert!(has("shape", "sub", "next"));
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn runs_start_read_page_resume_and_cancel() {
    let f = Fixture::new().await;
    // Start, suspend, read with step records, resume.
    let (s, b) = f
        .post("/api/workflows/approve/runs", json!({ "input": "text" }))
        .await;
    assert_eq!(s, 202);
    let id = b["id"].as_str().unwrap().to_string();
    let detail = f.wait_status(&id, "suspended").await;
    assert_eq!(detail["run"]["suspended"][0]["path"], "review");
    let paths: Vec<&str> = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"draft") && paths.contains(&"review"));
    let (s, b) = f
        .post(
            &format!("/api/runs/{id}/resume"),
            json!({ "path": "nowhere", "data": 1 }),
        )
        .await;
    // The same code as the engine's error and a Node MiyabiError's.
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("NOT_SUSPENDED"))
    );
    let (s, _) = f
        .post(
            &format!("/api/runs/{id}/resume"),
            json!({ "path": "review", "data": { "ok": true } }),
        )
        .await;
    assert_eq!(s, 202);
    let done = f.wait_status(&id, "succeeded").await;
    assert_eq!(done["run"]["output"]["decision"], json!({ "ok": true }));
    // Cancel a suspended run; cancelling again is a conflict.
    let (_, b) = f
        .post("/api/workflows/approve/runs", json!({ "input": 2 }))
        .await;
    let victim = b["id"].as_str().unwrap().to_string();
    f.wait_status(&victim, "suspended").await;
    let (s, b) = f
        .post(&format!("/api/runs/{victim}/cancel"), json!({}))
        .await;
    assert_eq!((s, b["run"]["status"].as_str()), (200, Some("cancelled")));
    let (s, b) = f
        .post(&format!("/api/runs/{victim}/cancel"), json!({}))
        .await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("CONFLICT")));
    // Paging: 7 more runs, pages of 3, newest first, no duplicates.
    for i in 0..7 {
        let (_, b) = f
            .post("/api/workflows/greet/runs", json!({ "input": i }))
            .await;
        f.wait_status(b["id"].as_str().unwrap(), "succeeded").await;
    }
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/runs?limit=3&cursor={c}"),
            None => "/api/runs?limit=3".to_string(),
        };
        let (s, b) = f.get(&q).await;
        assert_eq!(s, 200);
        pages += 1;
        seen.extend(b["runs"].as_array().unwrap().iter().cloned());
        match b["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (9, 3));
    let keys: Vec<(i64, String)> = seen
        .iter()
        .map(|r| {
            (
                r["created_at"].as_i64().unwrap(),
                r["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(keys, sorted, "newest first, without duplicates");
    // Filters, and the same listing from the engine.
    let (_, b) = f.get("/api/runs?workflow=greet&status=succeeded").await;
    assert_eq!(b["runs"].as_array().unwrap().len(), 7);
    let (_, b) = f.get("/api/runs?status=cancelled").await;
    assert_eq!(b["runs"][0]["id"], victim.as_str());
    let (_, b) = f.get("/api/runs?limit=100000").await;
    assert_eq!(b["runs"].as_array().unwrap().len(), 9);
    assert_eq!(b["next_cursor"], Value::Null);
    assert_eq!(
        f.engine
            .list(&miyabi::RunFilter::default())
            .await
            .unwrap()
            .len(),
        9
    );
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn approvals_inbox_decision_and_audit() {
    let f = Fixture::new().await;
    let (s, b) = f
        .post(
            "/api/workflows/gated/runs",
            json!({ "input": { "patch": "v1" } }),
        )
        .await;
    assert_eq!(s, 202);
    let run = b["id"].as_str().unwrap().to_string();
    f.wait_status(&run, "suspended").await;
    let gate_url = format!("/api/approvals/{run}/checks%2Fsecurity");
    // Alice's inbox has the gate; Bob's (not an approver) does not, but he can list all.
    let (s, b) = f.get("/api/approvals?status=pending").await;
    assert_eq!(s, 200);
    let inbox = b["approvals"].as_array().unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["gate"], "checks/security");
    assert_eq!(inbox[0]["title"], "Security review");
    let (_, b) = f.get_as(BOB, "/api/approvals").await;
    assert_eq!(b["approvals"].as_array().unwrap().len(), 0);
    let (_, b) = f
        .get_as(BOB, &format!("/api/approvals?all=1&run={run}"))
        .await;
    assert_eq!(b["approvals"].as_array().unwrap().len(), 1);
    let (s, b) = f.get("/api/approvals?status=bogus").await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("VALIDATION")));
    // One gate, by its percent-encoded path.
    let (s, b) = f.get(&gate_url).await;
    assert_eq!(
        (s, b["approval"]["status"].as_str()),
        (200, Some("pending"))
    );
    let (s, b) = f.get(&format!("/api/approvals/{run}/nope")).await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("NOT_FOUND")));
    // Decisions: Bob may not; malformed or invalid bodies are refused; Alice edits and approves.
    let decision = format!("{gate_url}/decision");
    let (s, b) = f
        .post_as(BOB, &decision, json!({ "action": "approve" }))
        .await;
    assert_eq!((s, b["error"]["code"].as_str()), (403, Some("FORBIDDEN")));
    let (s, b) = f.post(&decision, json!({ "action": "maybe" })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("VALIDATION")));
    let (s, b) = f
        .post(
            &decision,
            json!({ "action": "approve", "data": { "no": "patch" } }),
        )
        .await;
    assert_eq!((s, b["error"]["code"].as_str()), (422, Some("VALIDATION")));
    let r = f
        .http
        .post(f.url(&decision))
        .bearer_auth(TOKEN)
        .body("{action")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (s, b) = f
        .post(
            &decision,
            json!({ "action": "approve", "data": { "patch": "v2" }, "comment": "tightened" }),
        )
        .await;
    assert_eq!(
        (s, b["approval"]["status"].as_str()),
        (200, Some("approved"))
    );
    let done = f.wait_status(&run, "succeeded").await;
    assert_eq!(done["run"]["output"]["data"], json!({ "patch": "v2" }));
    let (s, b) = f.post(&decision, json!({ "action": "reject" })).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("CONFLICT")));
    // The audit trail.
    let (s, b) = f.get(&format!("/api/audit?run={run}")).await;
    assert_eq!(s, 200);
    let actions: Vec<&str> = b["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"requested"), "{actions:?}");
    assert!(actions.contains(&"edited-and-approved"), "{actions:?}");
    let (_, b) = f.get("/api/audit?actor=alice").await;
    let by_alice = b["audit"].as_array().unwrap();
    assert!(!by_alice.is_empty() && by_alice.iter().all(|r| r["actor"] == "alice"));
    f.server.shutdown().await.unwrap();
}

/// Reads server-sent events from a response until the body ends.
async fn read_sse(r: reqwest::Response, mut on: impl FnMut(u64, &str, Value)) {
    let mut body = r.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, String::new(), String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if let Some(id) = id {
                on(id, &event, serde_json::from_str(&data).unwrap());
            }
        }
    }
}

#[tokio::test]
async fn sse_replays_from_last_event_id_then_follows_live_until_finished() {
    let f = Fixture::new().await;
    let (_, b) = f
        .post("/api/workflows/slow/runs", json!({ "input": "x" }))
        .await;
    let id = b["id"].as_str().unwrap().to_string();
    // Wait until the run is inside `wait` (its step-started event is committed; the engine
    // sends events to subscribers only then).
    {
        let mut events = std::pin::pin!(f.engine.events(&id, 1));
        while let Some(e) = events.next().await {
            if e.unwrap().path() == Some("wait") {
                break;
            }
        }
    }
    let r = f
        .http
        .get(f.url(&format!("/api/runs/{id}/events")))
        .bearer_auth(TOKEN)
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let gate = Arc::clone(&f.gate);
    let mut seqs = Vec::new();
    let mut kinds = Vec::new();
    let mut released = false;
    read_sse(r, |seq, event, data| {
        assert_eq!(data["seq"], seq);
        assert_eq!(data["type"], event);
        seqs.push(seq);
        kinds.push(event.to_string());
        if !released && data["type"] == "step-started" && data["path"] == "wait" {
            // Everything stored so far was replayed: let the run go on, live.
            gate.notify_one();
            released = true;
        }
    })
    .await;
    assert_eq!(seqs[0], 2, "replay starts after Last-Event-ID");
    assert_eq!(
        seqs,
        (2..2 + seqs.len() as u64).collect::<Vec<_>>(),
        "no gaps"
    );
    assert_eq!(kinds.iter().filter(|k| *k == "custom").count(), 5);
    assert_eq!(kinds.last().map(String::as_str), Some("run-finished"));
    // A finished run's log replays from ?from= and the stream ends.
    let r = f
        .http
        .get(f.url(&format!(
            "/api/runs/{id}/events?from=3&access_token={TOKEN}"
        )))
        .send()
        .await
        .unwrap();
    let mut again = Vec::new();
    read_sse(r, |seq, _, _| again.push(seq)).await;
    assert_eq!(again, seqs[1..].to_vec());
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn websocket_subscriptions_receive_run_list_changes_and_run_events() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let f = Fixture::new().await;
    // Without a token the upgrade is refused.
    let url = format!("ws://{}/api/ws", f.server.local_addr());
    assert!(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err()
    );
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text(r#"{"subscribe": "runs"}"#))
        .await
        .unwrap();
    let ack = recv(&mut ws).await;
    assert_eq!(ack, json!({ "type": "subscribed", "target": "runs" }));
    let (_, b) = f
        .post("/api/workflows/approve/runs", json!({ "input": "ws" }))
        .await;
    let id = b["id"].as_str().unwrap().to_string();
    // The run appears on the feed (running or already suspended).
    loop {
        let m = recv(&mut ws).await;
        if m["type"] == "run" && m["run"]["id"] == id.as_str() && m["run"]["status"] == "suspended"
        {
            break;
        }
    }
    // Subscribe to the run's events from the start, then resume it: events up to the end.
    ws.send(Message::text(
        json!({ "subscribe": id, "from": 1 }).to_string(),
    ))
    .await
    .unwrap();
    let mut events = Vec::new();
    let mut resumed = false;
    loop {
        let m = recv(&mut ws).await;
        match m["type"].as_str() {
            Some("subscribed") => assert_eq!(m["target"], id.as_str()),
            Some("event") => {
                assert_eq!(m["run"], id.as_str());
                let ev = &m["event"];
                events.push(ev["seq"].as_u64().unwrap());
                if ev["type"] == "run-suspended" && !resumed {
                    resumed = true;
                    let (s, _) = f
                        .post(
                            &format!("/api/runs/{id}/resume"),
                            json!({ "path": "review", "data": "ok" }),
                        )
                        .await;
                    assert_eq!(s, 202);
                }
                if m["end"] == true {
                    assert_eq!(ev["type"], "run-finished");
                    break;
                }
            }
            Some("run") => {}
            other => panic!("unexpected message {other:?}: {m}"),
        }
    }
    assert_eq!(events, (1..=events.len() as u64).collect::<Vec<_>>());
    // Unknown runs and malformed messages get error messages.
    ws.send(Message::text(r#"{"subscribe": "nope"}"#))
        .await
        .unwrap();
    loop {
        let m = recv(&mut ws).await;
        if m["type"] == "error" {
            assert_eq!(m["error"]["code"], "NOT_FOUND");
            break;
        }
    }
    ws.send(Message::text("not json")).await.unwrap();
    loop {
        let m = recv(&mut ws).await;
        if m["type"] == "error" {
            assert_eq!(m["error"]["code"], "INVALID_ARGUMENT");
            break;
        }
    }
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_router_without_tokens_refuses_everyone_and_config_debug_hides_tokens() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = ServerConfig::new().token(TOKEN, Approver::new("alice"));
    let shown = format!("{config:?}");
    assert!(shown.contains("alice") && !shown.contains(TOKEN));
    let err = ServerConfig::new()
        .tokens_from_str("alice:leads=tiny")
        .unwrap_err()
        .to_string();
    assert!(err.contains("entry 1") && !err.contains("tiny"), "{err}");
    let c = ServerConfig::new()
        .tokens_from_str(&format!("alice:leads,ops={TOKEN}; bob={BOB}"))
        .unwrap();
    assert!(c.has_tokens());
    // A router with no token: 401 for everything but health and the document.
    let engine = Engine::in_memory();
    let app = miyabi::server::router(engine, ServerConfig::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum_serve(listener, app).await });
    let http = reqwest::Client::new();
    let r = http
        .get(format!("http://{addr}/api/runs"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("http://{addr}/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // CORS is off unless configured; configured, a listed origin's preflight is answered.
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    let app = miyabi::server::router(
        Engine::in_memory(),
        ServerConfig::new()
            .token(TOKEN, Approver::new("alice"))
            .cors(["http://dash.local"]),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum_serve(listener, app).await });
    let r = http
        .request(reqwest::Method::OPTIONS, format!("http://{addr}/api/runs"))
        .header("origin", "http://dash.local")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://dash.local"
    );
    let r = http
        .get(format!("http://{addr}/api/runs"))
        .header("origin", "http://evil.local")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn recv(ws: &mut Ws) -> Value {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str::<Value>(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) {
    let _ = axum::serve(listener, app).await;
}
