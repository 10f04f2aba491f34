//! Access control over HTTP on loopback with a real SQLite file: the permission matrix (every
//! route of the route table × every role × in/out of scope), the audit trail of state
//! changes (refusals included), JWTs against a JWKS file and URL, the configuration formats,
//! and routes mounted with `protected_routes` (MCP).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use miyabi::approval::{ApprovalGate, Approver};
use miyabi::server::{
    API_ROUTES, Identity, JwtConfig, Permission, Role, ServerConfig, ServerError, ServerHandle,
    serve,
};
use miyabi::{CommittedWorkflow, Engine, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

/// The test identities: one per role, plus one without roles; all limited to `billing.*`.
const ROLES: [&str; 5] = ["none", "viewer", "operator", "approver", "admin"];

fn token_of(role: &str) -> String {
    format!("{role}-token-0123456789")
}

fn workflows(ns: &str) -> Vec<CommittedWorkflow> {
    let ask = step_fn(|ctx: StepContext, v: Value| async move {
        match ctx.resume_data() {
            Some(d) => Ok(json!({ "in": v, "answer": d })),
            None => ctx.suspend(json!({ "question": "?" })),
        }
    });
    vec![
        Workflow::new(format!("{ns}.ask"))
            .step("ask", ask)
            .commit()
            .unwrap(),
        Workflow::new(format!("{ns}.gate"))
            .await_approval(
                "gate",
                ApprovalGate::new().title("Ship it?").approvers(ROLES),
            )
            .commit()
            .unwrap(),
    ]
}

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    server: ServerHandle,
    base: String,
    http: reqwest::Client,
    db: std::path::PathBuf,
}

fn scoped_config() -> ServerConfig {
    let mut config = ServerConfig::new().poll_interval(Duration::from_millis(20));
    for role in ROLES {
        let mut who = Identity::new(role).workflows(["billing.*"]);
        if let Some(r) = Role::parse(role) {
            who = who.roles([r]);
        }
        config = config.identity(token_of(role), who);
    }
    config
}

impl Fixture {
    async fn new(config: ServerConfig) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("runs.db");
        let engine = Engine::sqlite(&db).unwrap();
        for ns in ["billing", "ops"] {
            for wf in workflows(ns) {
                engine.register(&wf);
            }
        }
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
            db,
        }
    }

    /// A run of `workflow`, suspended.
    async fn suspended(&self, workflow: &str) -> String {
        let wf = self.engine.workflow(workflow).unwrap();
        let run = self.engine.start(&wf, json!(1)).await.unwrap();
        assert_eq!(run.status.as_str(), "suspended");
        run.id
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.http.post(url).json(&body.unwrap_or(json!({}))),
            _ => self.http.get(url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        // An event stream stays open: its status is all this needs.
        let is_stream = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let text = if is_stream {
            String::new()
        } else {
            r.text().await.unwrap_or_default()
        };
        (status, text)
    }

    /// The whole audit trail, through the API's pages (newest first).
    async fn audit(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let (s, body) = self
                .call(
                    "GET",
                    &format!("/api/audit?limit=500&cursor={cursor}"),
                    Some(ADMIN_ALL),
                    None,
                )
                .await;
            assert_eq!(s, 200, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            out.extend(v["audit"].as_array().unwrap().iter().cloned());
            match v["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => return out,
            }
        }
    }
}

/// An unscoped admin, to read the whole audit trail.
const ADMIN_ALL: &str = "root-token-0123456789";

/// What the test expects of a route: the roles that may call it, and how scope applies.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// No token needed.
    Public,
    /// A resource named in the path: 2xx (this status) in scope, 404 out of scope.
    Resource(u16),
    /// A list: 200 either way, holding in-scope items only.
    List,
    /// The WebSocket: subscribing to an in-scope run works, an out-of-scope one is not found.
    Ws,
}

/// The expectations, written independently of the route table: a route added to the API
/// without an entry here fails `every_route_role_and_scope`.
fn expected(method: &str, path: &str) -> Option<(&'static [&'static str], Kind)> {
    const ANY: &[&str] = &["none", "viewer", "operator", "approver", "admin"];
    const READ: &[&str] = &["viewer", "operator", "admin"];
    const INBOX: &[&str] = &["viewer", "operator", "approver", "admin"];
    const OPERATE: &[&str] = &["operator", "admin"];
    const DECIDE: &[&str] = &["approver", "admin"];
    Some(match (method, path) {
        ("GET", "/api/health") | ("GET", "/api/openapi.json") => (ANY, Kind::Public),
        ("GET", "/api/me") => (ANY, Kind::List),
        ("GET", "/api/workflows") => (READ, Kind::List),
        ("GET", "/api/workflows/{id}") => (READ, Kind::Resource(200)),
        ("GET", "/api/workflows/{id}/stats") => (READ, Kind::Resource(200)),
        ("POST", "/api/runs/{id}/rerun") => (OPERATE, Kind::Resource(202)),
        // Asked about a suspended run, which is not failed: 409 in scope, 404 out of scope.
        ("POST", "/api/runs/{id}/retry") => (OPERATE, Kind::Resource(409)),
        ("POST", "/api/workflows/{id}/runs") => (OPERATE, Kind::Resource(202)),
        ("GET", "/api/runs") => (READ, Kind::List),
        ("GET", "/api/runs/{id}") => (READ, Kind::Resource(200)),
        ("POST", "/api/runs/{id}/cancel") => (OPERATE, Kind::Resource(200)),
        ("POST", "/api/runs/{id}/resume") => (OPERATE, Kind::Resource(202)),
        ("GET", "/api/runs/{id}/events") => (READ, Kind::Resource(200)),
        ("GET", "/api/ws") => (READ, Kind::Ws),
        ("GET", "/api/approvals") => (INBOX, Kind::List),
        ("GET", "/api/approvals/{run}/{gate}") => (INBOX, Kind::Resource(200)),
        ("POST", "/api/approvals/{run}/{gate}/decision") => (DECIDE, Kind::Resource(200)),
        ("GET", "/api/audit") => (READ, Kind::List),
        ("GET", "/api/evals") => (READ, Kind::List),
        // Asked about a run that is not an eval run: 422 in scope, 404 out of scope.
        ("GET", "/api/evals/compare") => (READ, Kind::Resource(422)),
        _ => return None,
    })
}

#[tokio::test]
async fn every_route_role_and_scope() {
    let config = scoped_config().identity(ADMIN_ALL, Identity::admin(Approver::new("root")));
    let f = Fixture::new(config).await;
    let mut cases = 0;
    for route in API_ROUTES {
        let (allowed, kind) = expected(route.method, route.path).unwrap_or_else(|| {
            panic!(
                "{} {} has no entry in this test's expectations",
                route.method, route.path
            )
        });
        for role in ROLES {
            for in_scope in [true, false] {
                cases += 1;
                let ns = if in_scope { "billing" } else { "ops" };
                let ask = f.suspended(&format!("{ns}.ask")).await;
                let billing_gate = f.suspended("billing.gate").await;
                let ops_gate = f.suspended("ops.gate").await;
                let gate_run = if in_scope {
                    billing_gate.clone()
                } else {
                    ops_gate.clone()
                };
                let mut path = route
                    .path
                    .replace("{run}", &gate_run)
                    .replace("{gate}", "gate");
                path = if path.starts_with("/api/workflows/") {
                    path.replace("{id}", &format!("{ns}.ask"))
                } else {
                    path.replace("{id}", &ask)
                };
                if path == "/api/audit" {
                    path = format!("/api/audit?run={gate_run}");
                }
                if path == "/api/evals/compare" {
                    path = format!("/api/evals/compare?a={ask}&b={ask}");
                }
                let body = match route.path {
                    "/api/workflows/{id}/runs" => Some(json!({ "input": 2 })),
                    "/api/runs/{id}/resume" => Some(json!({ "path": "ask", "data": 3 })),
                    "/api/runs/{id}/rerun" => Some(json!({})),
                    "/api/approvals/{run}/{gate}/decision" => Some(json!({ "action": "approve" })),
                    _ => None,
                };
                let token = token_of(role);
                let what = format!(
                    "{} {} as {role}, {}",
                    route.method,
                    route.path,
                    if in_scope { "in scope" } else { "out of scope" }
                );
                if matches!(kind, Kind::Ws) {
                    check_ws(&f, &token, allowed.contains(&role), &ask, in_scope, &what).await;
                    continue;
                }
                let (status, text) = f.call(route.method, &path, Some(&token), body).await;
                let permitted = allowed.contains(&role);
                match kind {
                    Kind::Public => assert_eq!(status, 200, "{what}: {text}"),
                    _ if !permitted => {
                        assert_eq!(status, 403, "{what}: {text}");
                        assert!(text.contains("FORBIDDEN"), "{what}: {text}");
                    }
                    Kind::Resource(ok) => {
                        let want = if in_scope { ok } else { 404 };
                        assert_eq!(status, want, "{what}: {text}");
                    }
                    Kind::List => {
                        assert_eq!(status, 200, "{what}: {text}");
                        // Nothing of the out-of-scope namespace shows; in-scope items do.
                        assert!(!text.contains("ops."), "{what}: {text}");
                        assert!(!text.contains(&ops_gate), "{what}: {text}");
                        match route.path {
                            // No eval runs here (tests/dashboard_evals.test.mjs scopes them).
                            "/api/me" | "/api/evals" => {}
                            "/api/workflows" => assert!(text.contains("billing.gate")),
                            "/api/audit" => {
                                assert_eq!(text.contains(&gate_run), in_scope, "{what}: {text}")
                            }
                            _ => assert!(text.contains(&billing_gate), "{what}: {text}"),
                        }
                    }
                    Kind::Ws => unreachable!(),
                }
                // Without a token, every route but the public ones is 401.
                let (status, _) = f.call(route.method, &path, None, None).await;
                let want = if matches!(kind, Kind::Public) {
                    200
                } else {
                    401
                };
                assert_eq!(status, want, "{what} without a token");
            }
        }
    }
    assert_eq!(cases, API_ROUTES.len() * ROLES.len() * 2);
    // Every state-changing request was audited with actor, target and outcome.
    let audit = f.audit().await;
    let find = |action: &str, actor: &str, outcome: &str| {
        audit.iter().any(|r| {
            r["action"] == action && r["actor"] == actor && r["data"]["outcome"] == outcome
        })
    };
    assert!(find("run.cancel", "viewer", "denied"));
    assert!(find("run.cancel", "operator", "ok"));
    assert!(find("run.cancel", "operator", "not-found"));
    assert!(find("run.start", "approver", "denied"));
    assert!(find("run.resume", "admin", "ok"));
    assert!(find("run.rerun", "viewer", "denied"));
    assert!(find("run.retry", "viewer", "denied"));
    assert!(find("run.retry", "operator", "failed"));
    let rerun = audit
        .iter()
        .find(|r| r["action"] == "run.rerun" && r["data"]["outcome"] == "ok")
        .unwrap();
    assert!(rerun["data"]["started"].is_string());
    assert!(find("gate.decide", "operator", "denied"));
    assert!(find("gate.decide", "approver", "ok"));
    let started = audit
        .iter()
        .find(|r| r["action"] == "run.start" && r["data"]["outcome"] == "ok")
        .unwrap();
    assert!(!started["run_id"].as_str().unwrap().is_empty());
    assert_eq!(started["data"]["workflow"], "billing.ask");
    assert!(started["at"].as_i64().unwrap() > 0);
    let refused = audit
        .iter()
        .find(|r| r["action"] == "run.start" && r["data"]["outcome"] == "denied")
        .unwrap();
    assert!(
        refused["comment"]
            .as_str()
            .unwrap()
            .contains("lacks the role")
    );
    f.server.shutdown().await.unwrap();
    // Tokens never reach the database.
    let mut bytes = std::fs::read(&f.db).unwrap();
    if let Ok(wal) = std::fs::read(f.db.with_extension("db-wal")) {
        bytes.extend(wal);
    }
    let text = String::from_utf8_lossy(&bytes);
    for role in ROLES {
        assert!(
            !text.contains(&token_of(role)),
            "a token reached the database"
        );
    }
}

async fn check_ws(
    f: &Fixture,
    token: &str,
    permitted: bool,
    run: &str,
    in_scope: bool,
    what: &str,
) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/api/ws", f.base.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert!(!permitted, "{what}: refused with {}", res.status());
            assert_eq!(res.status().as_u16(), 403, "{what}");
        }
        Err(e) => panic!("{what}: {e}"),
        Ok((mut ws, _)) => {
            assert!(permitted, "{what}: the socket opened");
            ws.send(tokio_tungstenite::tungstenite::Message::text(
                json!({ "subscribe": run }).to_string(),
            ))
            .await
            .unwrap();
            let msg = loop {
                match ws.next().await.unwrap().unwrap() {
                    tokio_tungstenite::tungstenite::Message::Text(t) => {
                        break serde_json::from_str::<Value>(&t).unwrap();
                    }
                    _ => continue,
                }
            };
            if in_scope {
                assert_eq!(msg["type"], "subscribed", "{what}: {msg}");
            } else {
                assert_eq!(msg["type"], "error", "{what}: {msg}");
                assert_eq!(msg["error"]["code"], "NOT_FOUND", "{what}: {msg}");
            }
            // The run-list feed shows in-scope runs only.
            ws.send(tokio_tungstenite::tungstenite::Message::text(
                json!({ "subscribe": "runs" }).to_string(),
            ))
            .await
            .unwrap();
            let _ = ws.close(None).await;
        }
    }
}

#[tokio::test]
async fn the_run_feed_and_lists_hide_out_of_scope_runs() {
    let f = Fixture::new(scoped_config()).await;
    let token = token_of("viewer");
    use tokio_tungstenite::tungstenite::Message;
    let url = format!(
        "{}/api/ws?access_token={token}",
        f.base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(json!({ "subscribe": "runs" }).to_string()))
        .await
        .unwrap();
    let mut got = Vec::new();
    loop {
        if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "subscribed" {
                break;
            }
        }
    }
    let out = f.suspended("ops.ask").await;
    let inside = f.suspended("billing.ask").await;
    // Events arrive in order of change: the in-scope run shows, the other never does.
    loop {
        if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
            let v: Value = serde_json::from_str(&t).unwrap();
            got.push(v["run"]["id"].as_str().unwrap_or_default().to_string());
            if got.contains(&inside) {
                break;
            }
        }
    }
    assert!(!got.contains(&out), "{got:?}");
    // Paging a scoped listing of many workflows walks past the others.
    let f2 = f;
    let mut mine = vec![inside.clone()];
    for i in 0..7 {
        let _ = f2.suspended("ops.ask").await;
        if i % 2 == 0 {
            mine.push(f2.suspended("billing.ask").await);
        }
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, text) = f2
            .call(
                "GET",
                &format!("/api/runs?limit=2&cursor={cursor}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(s, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        for r in v["runs"].as_array().unwrap() {
            assert!(r["workflow"].as_str().unwrap().starts_with("billing."));
            seen.push(r["id"].as_str().unwrap().to_string());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    mine.reverse();
    assert_eq!(seen, mine);
    f2.server.shutdown().await.unwrap();
}

// --- JWT -----------------------------------------------------------------------------------

struct Signer {
    key: jsonwebtoken::EncodingKey,
    jwks: Value,
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh P-256 key pair (ring), as a signing key and a one-key JWKS.
fn signer(kid: &str) -> Signer {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let public = pair.public_key().as_ref();
    assert_eq!(public[0], 4);
    let jwks = json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": b64(&public[1..33]), "y": b64(&public[33..65]),
    }]});
    Signer {
        key: jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwks,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(s: &Signer, kid: &str, claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, &claims, &s.key).unwrap()
}

fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": "https://idp.test/", "aud": "miyabi", "sub": "dana",
        "exp": now() + 600, "iat": now(),
        "roles": ["operator"], "groups": ["payments"], "workflows": ["billing.*"],
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

async fn jwt_checks(f: &Fixture, s: &Signer, kid: &str) {
    let me = |t: String| async move { f.call("GET", "/api/me", Some(&t), None).await };
    let (st, text) = me(sign(s, kid, claims(json!({})))).await;
    assert_eq!(st, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({ "id": "dana", "teams": ["payments"], "roles": ["operator"], "workflows": ["billing.*"] })
    );
    // Roles and scope apply: an operator of billing.* starts billing runs, not ops ones.
    let t = sign(s, kid, claims(json!({})));
    let (st, _) = f
        .call("POST", "/api/workflows/billing.ask/runs", Some(&t), None)
        .await;
    assert_eq!(st, 202);
    let (st, _) = f
        .call("POST", "/api/workflows/ops.ask/runs", Some(&t), None)
        .await;
    assert_eq!(st, 404);
    let viewer = sign(s, kid, claims(json!({ "roles": "viewer" })));
    let (st, _) = f
        .call(
            "POST",
            "/api/workflows/billing.ask/runs",
            Some(&viewer),
            None,
        )
        .await;
    assert_eq!(st, 403);
    // Refused: wrong issuer, wrong audience, expired, not yet valid, no subject, another
    // key, a tampered payload.
    for bad in [
        json!({ "iss": "https://evil.test/" }),
        json!({ "aud": "other" }),
        json!({ "exp": now() - 3600 }),
        json!({ "nbf": now() + 3600 }),
        json!({ "sub": null }),
        json!({ "exp": null }),
    ] {
        let (st, _) = me(sign(s, kid, claims(bad.clone()))).await;
        assert_eq!(st, 401, "{bad}");
    }
    let stranger = signer(kid);
    let (st, _) = me(sign(&stranger, kid, claims(json!({})))).await;
    assert_eq!(st, 401, "signed by another key");
    let good = sign(s, kid, claims(json!({})));
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = b64(serde_json::to_string(&claims(
        json!({ "roles": ["admin"], "workflows": ["*"] }),
    ))
    .unwrap()
    .as_bytes());
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    let (st, _) = me(forged).await;
    assert_eq!(st, 401, "tampered payload");
    // `alg: none` is refused.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(serde_json::to_string(&claims(json!({})))
            .unwrap()
            .as_bytes())
    );
    let (st, _) = me(none).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn jwts_are_verified_against_a_jwks_file() {
    let s = signer("k1");
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, s.jwks.to_string()).unwrap();
    let config = ServerConfig::new()
        .jwt(JwtConfig::new("https://idp.test/", "miyabi").jwks_file(&jwks))
        .unwrap();
    let f = Fixture::new(config).await;
    jwt_checks(&f, &s, "k1").await;
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn jwts_are_verified_against_a_jwks_url_refetched_for_a_new_key() {
    use std::sync::{Arc, Mutex};
    let first = signer("k1");
    let jwks = Arc::new(Mutex::new(first.jwks.clone()));
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (j, h) = (Arc::clone(&jwks), Arc::clone(&hits));
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let v = j.lock().unwrap().clone();
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { axum::Json(v) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = ServerConfig::new()
        .jwt(
            JwtConfig::new("https://idp.test/", "miyabi")
                .jwks_url(format!("http://{idp}/jwks.json"))
                .refresh_interval(Duration::ZERO),
        )
        .unwrap();
    let f = Fixture::new(config).await;
    jwt_checks(&f, &first, "k1").await;
    // The provider rotates its key: a token with the new kid makes the server fetch again.
    let second = signer("k2");
    *jwks.lock().unwrap() = second.jwks.clone();
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    let (st, _) = f
        .call(
            "GET",
            "/api/me",
            Some(&sign(&second, "k2", claims(json!({})))),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) > before);
    f.server.shutdown().await.unwrap();
}

// --- Configuration ------------------------------------------------------------------------

#[tokio::test]
async fn tokens_roles_and_scopes_from_the_environment_formats() {
    let config = ServerConfig::new()
        .tokens_with_access(
            "alice:leads=alice-token-123456;bob=bob-token-1234567;carl=carl-token-123456",
            "alice=operator,approver;bob=viewer",
            "bob=billing.*",
        )
        .unwrap();
    let f = Fixture::new(config).await;
    async fn me_of(f: &Fixture, t: &str) -> Value {
        let (_, text) = f.call("GET", "/api/me", Some(t), None).await;
        serde_json::from_str::<Value>(&text).unwrap()
    }
    let me = |t: &'static str| me_of(&f, t);
    assert_eq!(
        me("alice-token-123456").await,
        json!({ "id": "alice", "teams": ["leads"], "roles": ["operator", "approver"], "workflows": ["*"] })
    );
    assert_eq!(
        me("bob-token-1234567").await["workflows"],
        json!(["billing.*"])
    );
    // An entry without roles is an admin (as before roles existed).
    assert_eq!(me("carl-token-123456").await["roles"], json!(["admin"]));
    // The bearer scheme is case-insensitive.
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = f
            .http
            .get(format!("{}/api/me", f.base))
            .header("authorization", format!("{scheme} bob-token-1234567"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let r = f
        .http
        .get(format!("{}/api/me", f.base))
        .header("authorization", "Basic bob-token-1234567")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    f.server.shutdown().await.unwrap();

    // Errors name the place, never the token.
    let err = ServerConfig::new()
        .tokens_with_access("a=same-token-123456;b=same-token-123456", "", "")
        .unwrap_err();
    assert!(!err.to_string().contains("same-token"), "{err}");
    assert!(err.to_string().contains("entry 2"), "{err}");
    let err = ServerConfig::new()
        .tokens_with_access("a=tok-a-123456789", "a=owner", "")
        .unwrap_err();
    assert!(err.to_string().contains("unknown role `owner`"), "{err}");
    let err = ServerConfig::new()
        .tokens_with_access("a=tok-a-123456789", "zed=viewer", "")
        .unwrap_err();
    assert!(err.to_string().contains("MIYABI_ROLES `zed`"), "{err}");
    // The same token for two identities through the builder: `serve` refuses to start.
    let config = ServerConfig::new()
        .identity(
            "dup-token-12345678",
            Identity::new("x").roles([Role::Viewer]),
        )
        .identity(
            "dup-token-12345678",
            Identity::new("y").roles([Role::Admin]),
        );
    let err = config.validate().unwrap_err();
    assert!(matches!(err, ServerError::DuplicateToken { .. }), "{err}");
    assert!(!err.to_string().contains("dup-token"));
    let engine = Engine::in_memory();
    let err = serve(engine, config, Some("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(err, ServerError::DuplicateToken { .. }), "{err}");
}

#[tokio::test]
async fn an_access_file_gives_identities_without_holding_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer("kf");
    std::fs::write(dir.path().join("jwks.json"), s.jwks.to_string()).unwrap();
    // A variable cargo sets for every test run (this crate forbids `unsafe`, so no set_var).
    let var = "CARGO_MANIFEST_DIR";
    let erin = std::env::var(var).unwrap();
    let digest = {
        let d = ring::digest::digest(&ring::digest::SHA256, b"fay-token-123456789");
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let file = dir.path().join("access.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[identity]]
id = "erin"
roles = ["approver"]
teams = ["leads"]
token_env = "{var}"

[[identity]]
id = "fay"
roles = ["viewer"]
workflows = ["ops.*"]
token_sha256 = "{digest}"

[jwt]
issuer = "https://idp.test/"
audience = "miyabi"
jwks_file = "jwks.json"
"#
        ),
    )
    .unwrap();
    let config = ServerConfig::new().access_file(&file).unwrap();
    let f = Fixture::new(config).await;
    let (st, text) = f.call("GET", "/api/me", Some(&erin), None).await;
    assert_eq!(st, 200);
    assert!(text.contains("\"approver\""), "{text}");
    let (st, text) = f
        .call("GET", "/api/me", Some("fay-token-123456789"), None)
        .await;
    assert_eq!(st, 200);
    assert!(text.contains("ops.*"), "{text}");
    let (st, _) = f
        .call(
            "GET",
            "/api/me",
            Some(&sign(&s, "kf", claims(json!({})))),
            None,
        )
        .await;
    assert_eq!(st, 200, "the JWKS path is relative to the file");
    f.server.shutdown().await.unwrap();
    // Mistakes name the file and the identity.
    std::fs::write(&file, "[[identity]]\nid = \"gus\"\nroles = [\"viewer\"]\n").unwrap();
    let err = ServerConfig::new()
        .access_file(&file)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("access.toml") && err.contains("`gus`"),
        "{err}"
    );
    assert!(err.contains("token_env or token_sha256"), "{err}");
    std::fs::write(&file, "[[identity]]\nid = \"gus\"\nrole = [\"viewer\"]\n").unwrap();
    let err = ServerConfig::new()
        .access_file(&file)
        .unwrap_err()
        .to_string();
    assert!(err.contains("malformed access file"), "{err}");
}

#[tokio::test]
async fn mounted_routes_need_an_operator_of_every_workflow() {
    let mounted = axum::Router::new().route(
        "/mounted",
        axum::routing::get(|axum::Extension(who): axum::Extension<Approver>| async move { who.id }),
    );
    let config = scoped_config()
        .identity(
            "ops-all-token-1234",
            Identity::new("oper").roles([Role::Operator]),
        )
        .protected_routes(mounted);
    let f = Fixture::new(config).await;
    for (token, want) in [
        ("ops-all-token-1234".to_string(), 200),
        (token_of("operator"), 403), // scoped
        (token_of("admin"), 403),    // scoped
        (token_of("viewer"), 403),
    ] {
        let (st, text) = f.call("GET", "/mounted", Some(&token), None).await;
        assert_eq!(st, want, "{token}: {text}");
        if want == 200 {
            assert_eq!(text, "oper");
        }
    }
    assert_eq!(f.call("GET", "/mounted", None, None).await.0, 401);
    assert!(Permission::Mounted.roles().contains(&Role::Operator));
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancelling_through_the_api_closes_the_runs_gates_at_once() {
    let f = Fixture::new(scoped_config()).await;
    let run = f.suspended("billing.gate").await;
    let (s, text) = f
        .call(
            "POST",
            &format!("/api/runs/{run}/cancel"),
            Some(&token_of("operator")),
            None,
        )
        .await;
    assert_eq!(s, 200, "{text}");
    let (s, text) = f
        .call(
            "GET",
            &format!("/api/approvals/{run}/gate"),
            Some(&token_of("viewer")),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["approval"]["status"], "closed");
    let (s, text) = f
        .call(
            "POST",
            &format!("/api/approvals/{run}/gate/decision"),
            Some(&token_of("approver")),
            Some(json!({ "action": "approve" })),
        )
        .await;
    assert_eq!(s, 409, "{text}");
    assert!(text.contains("closed"), "{text}");
    let (_, text) = f
        .call("GET", "/api/approvals", Some(&token_of("approver")), None)
        .await;
    assert!(!text.contains(&run), "{text}");
    f.server.shutdown().await.unwrap();
}
