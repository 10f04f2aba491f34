//! The HTTP API (feature `server`): REST under `/api`, server-sent events for one run's event
//! log, a WebSocket for dashboards, and an OpenAPI 3.1 document. See `docs/server.md`.
//!
//! This is the crate `miyabi-server`; the crate `miyabi` re-exports it as `miyabi::server`
//! (feature `server`), which is the path to write in an application. It depends on the engine
//! (`miyabi-engine`) and on no other Miyabi crate.
//!
//! [`router`] builds an [`axum::Router`] to nest into an application; [`serve`] binds an
//! address (127.0.0.1:7420 by default) and returns a [`ServerHandle`] with the local address
//! and a graceful shutdown.
//!
//! ```no_run
//! use miyabi_engine::approval::Approver;
//! use miyabi_server::{serve, ServerConfig};
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = miyabi_engine::Engine::sqlite("miyabi.db")?;
//! let config = ServerConfig::new().token("a-long-random-secret", Approver::new("alice"));
//! let server = serve(engine, config, None).await?;
//! println!("listening on {}", server.local_addr());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

mod access;
mod config;
mod dashboard;
mod driver;
mod error;
mod evals;
mod openapi;
mod routes;
mod stream;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use access::{Identity, JwksSource, JwtConfig, Permission, Role, Scope};
pub use config::{DEFAULT_BODY_LIMIT, ServerConfig, generate_token};
pub use driver::{DriverError, ExternalDriver};
pub(crate) use error::ApiError;
pub use error::ServerError;
pub use evals::{EVAL_SCHEMA, EvalComparer};
pub use routes::{API_ROUTES, RouteInfo};

// The engine's items under the paths this code has always used for them (it was the module
// `miyabi::server` of the one-crate `miyabi`).
use miyabi_engine::{
    CommittedWorkflow, Engine, EngineError, ErrorCode, EventKind, RunEvent, RunFilter, RunStatus,
    StoreError, approval, store,
};

/// The default address of [`serve`]: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7420";

pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) config: ServerConfig,
    /// Fired when the server shuts down: ends every stream.
    pub(crate) shutdown: CancellationToken,
    /// The run-list feed of WebSocket subscribers, while anyone listens.
    pub(crate) runs_feed:
        Mutex<Option<tokio::sync::broadcast::Sender<Arc<crate::store::RunSummary>>>>,
}

pub(crate) type AppState = Arc<Shared>;

/// Builds the API's router (every route under `/api`) for `engine`, to nest or merge into an
/// application, or to serve as is.
///
/// Without any configured token, every authenticated route answers 401 (add one with
/// [`ServerConfig::token`]; [`serve`] generates one).
pub fn router(engine: Engine, config: ServerConfig) -> Router {
    router_with(engine, config, CancellationToken::new())
}

fn router_with(engine: Engine, config: ServerConfig, shutdown: CancellationToken) -> Router {
    let limit = config.body_limit;
    let cors = config.cors.clone();
    let extra = config.extra.clone();
    let extra_authenticated = config.extra_authenticated.clone();
    let state: AppState = Arc::new(Shared {
        engine,
        config,
        shutdown,
        runs_feed: Mutex::new(None),
    });
    let mut app = routes::api(&state)
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(Arc::clone(&state));
    if let Some(extra) = extra {
        let mounted = RouteInfo {
            method: "*",
            path: "*",
            permission: Permission::Mounted,
            action: None,
        };
        app = app.merge(extra.route_layer(middleware::from_fn_with_state(
            (Arc::clone(&state), mounted),
            guard,
        )));
    }
    if let Some(extra) = extra_authenticated {
        let authenticated = RouteInfo {
            method: "*",
            path: "*",
            permission: Permission::Authenticated,
            action: None,
        };
        app = app.merge(extra.route_layer(middleware::from_fn_with_state(
            (state, authenticated),
            guard,
        )));
    }
    let mut app = app
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
        .layer(middleware::map_response(json_errors))
        .layer(middleware::from_fn(trace_request));
    if let Some(origins) = cors {
        let origins: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        app = app.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(tower_http::cors::AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    HeaderName::from_static("last-event-id"),
                ]),
        );
    }
    app
}

/// A running server: its address, and a graceful shutdown.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), std::io::Error>>,
}

impl ServerHandle {
    /// The address the server listens on (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, ends open event streams and WebSockets, and waits for
    /// in-flight requests to finish.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server stops (after [`ServerHandle::shutdown`], or an error).
    pub async fn wait(self) -> Result<(), ServerError> {
        match self.task.await {
            Ok(r) => r.map_err(ServerError::Io),
            Err(e) => Err(ServerError::Task(e.to_string())),
        }
    }

    /// A token that shuts the server down when cancelled (for signal handlers).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Serves the API on `addr` ([`DEFAULT_ADDR`], loopback, when `None`).
///
/// When `config` has no token, one random token is generated for the identity `admin` and
/// printed once to stderr (never logged). A configuration that gives the same token to two
/// identities is refused ([`ServerConfig::validate`]).
pub async fn serve(
    engine: Engine,
    mut config: ServerConfig,
    addr: Option<SocketAddr>,
) -> Result<ServerHandle, ServerError> {
    let addr = match addr {
        Some(a) => a,
        None => DEFAULT_ADDR
            .parse()
            .map_err(|e: std::net::AddrParseError| ServerError::Task(e.to_string()))?,
    };
    config.validate()?;
    if !config.has_tokens() {
        let token = generate_token()?;
        config = config.token(&token, crate::approval::Approver::new("admin"));
        // Printed once, on stderr only, for the operator; never through tracing.
        eprintln!("miyabi: no MIYABI_TOKENS configured; generated a token for `admin`:\n{token}");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let app = router_with(engine, config, shutdown.clone());
    let stop = shutdown.clone();
    tracing::info!(addr = %local, "miyabi server listening");
    let task = tokio::spawn(
        async move {
            // No Nagle delay: a streamed response (SSE, a Streamable HTTP MCP answer) is
            // written in small pieces, and waiting for the peer's delayed ACK cost 40 ms each.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        }
        .instrument(tracing::info_span!("server", addr = %local)),
    );
    Ok(ServerHandle {
        addr: local,
        shutdown,
        task,
    })
}

/// The bearer token of a request: the `Authorization` header (scheme case-insensitive), or
/// `?access_token=` on the two routes a browser cannot give headers.
fn presented_token(req: &Request) -> Option<String> {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let v = v.trim_start();
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_string())
        })
        .filter(|t| !t.is_empty());
    // The query string is never logged.
    from_header.or_else(|| {
        let path = req.uri().path();
        (path == "/api/ws" || path.ends_with("/events"))
            .then(|| query_param(req.uri().query(), "access_token"))
            .flatten()
    })
}

/// The identity behind a token: a static token, else a JWT when an issuer is configured.
async fn identify(state: &AppState, token: &str) -> Option<Identity> {
    if let Some(who) = state.config.identify(token) {
        return Some(who.clone());
    }
    let verifier = state.config.jwt.as_ref()?;
    if !access::looks_like_jwt(token) {
        return None;
    }
    match verifier.verify(token).await {
        Ok(who) => Some(who),
        Err(e) => {
            tracing::debug!(reason = %e, "JWT refused");
            None
        }
    }
}

/// Every route but the public ones: authenticates the caller (401), checks the route's
/// permission against its roles (403), puts the [`Identity`] and its [`Approver`] in the
/// request's extensions, and records requests to routes that change state in the audit
/// trail with their outcome (refusals included).
///
/// [`Approver`]: crate::approval::Approver
async fn guard(
    State((state, info)): State<(AppState, RouteInfo)>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = presented_token(&req);
    let who = match token.as_deref() {
        Some(t) => identify(&state, t).await,
        None => None,
    };
    let who = who.ok_or_else(ApiError::unauthorized)?;
    tracing::Span::current().record("identity", who.id());
    let (mut parts, body) = req.into_parts();
    let params: Vec<(String, String)> =
        match axum::extract::RawPathParams::from_request_parts(&mut parts, &()).await {
            Ok(p) => p
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Err(_) => Vec::new(),
        };
    let who = Arc::new(who);
    let res = if who.may(info.permission) {
        let mut req = Request::from_parts(parts, body);
        req.extensions_mut().insert(Arc::clone(&who));
        req.extensions_mut().insert(who.approver.clone());
        next.run(req).await
    } else {
        let roles: Vec<&str> = info.permission.roles().iter().map(|r| r.as_str()).collect();
        let why = if info.permission == Permission::Mounted && !who.scope.is_all() {
            format!(
                "`{}` is limited to some workflows; this endpoint needs every workflow in scope",
                who.id()
            )
        } else {
            format!(
                "`{}` lacks the role this needs ({})",
                who.id(),
                roles.join(" or ")
            )
        };
        ApiError::forbidden(why).into_response()
    };
    if let Some(action) = info.action {
        record(&state, &who, action, &params, &res);
    }
    Ok(res)
}

/// Writes the audit record of a request that changes state.
fn record(
    state: &AppState,
    who: &Identity,
    action: &str,
    params: &[(String, String)],
    res: &Response,
) {
    let Some(gates) = state.engine.store().gates() else {
        tracing::warn!(
            action,
            "this store keeps no audit trail; action not recorded"
        );
        return;
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let status = res.status();
    let outcome = match status.as_u16() {
        200..=299 => "ok",
        403 => "denied",
        404 => "not-found",
        _ => "failed",
    };
    let (run_id, workflow) = match action {
        "run.start" => (
            res.extensions()
                .get::<routes::StartedRun>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            param("id"),
        ),
        _ => (
            param("run").or_else(|| param("id")).unwrap_or_default(),
            None,
        ),
    };
    let mut data = serde_json::json!({ "outcome": outcome, "status": status.as_u16() });
    if let Some(w) = workflow {
        data["workflow"] = serde_json::Value::String(w);
    }
    if action == "run.rerun"
        && let Some(started) = res.extensions().get::<routes::StartedRun>()
    {
        data["started"] = serde_json::Value::String(started.0.clone());
    }
    let rec = crate::approval::AuditRecord {
        id: 0,
        run_id,
        gate: param("gate").unwrap_or_default(),
        at: state.engine.now_ms(),
        actor: who.id().to_string(),
        action: action.to_string(),
        comment: res
            .extensions()
            .get::<error::ErrorNote>()
            .map(|n| n.0.clone()),
        diff: None,
        data: Some(data),
    };
    if let Err(e) = gates.append_audit(&rec) {
        tracing::error!(error = %e, action, "cannot record an action in the audit trail");
    }
}

pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Gives every error response made outside the handlers (no route, wrong method, body limit)
/// the API's JSON error shape.
async fn json_errors(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        return ApiError::for_status(status).into_response();
    }
    res
}

/// One span per request: method, path (never the query string or headers), identity, status.
async fn trace_request(req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "http",
        method = %req.method(),
        path = %req.uri().path(),
        identity = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    async move {
        let res = next.run(req).await;
        let status: StatusCode = res.status();
        tracing::Span::current().record("status", status.as_u16());
        tracing::debug!(status = status.as_u16(), "request");
        res
    }
    .instrument(span)
    .await
}
