//! The HTTP API (feature `server`): REST under `/api`, server-sent events for one run's event
//! log, a WebSocket for dashboards, and an OpenAPI 3.1 document. See `docs/server.md`.
//!
//! [`router`] builds an [`axum::Router`] to nest into an application; [`serve`] binds an
//! address (127.0.0.1:7420 by default) and returns a [`ServerHandle`] with the local address
//! and a graceful shutdown.
//!
//! ```no_run
//! use miyabi::approval::Approver;
//! use miyabi::server::{serve, ServerConfig};
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = miyabi::Engine::sqlite("miyabi.db")?;
//! let config = ServerConfig::new().token("a-long-random-secret", Approver::new("alice"));
//! let server = serve(engine, config, None).await?;
//! println!("listening on {}", server.local_addr());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

mod config;
mod dashboard;
mod driver;
mod error;
mod openapi;
mod routes;
mod stream;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use config::{DEFAULT_BODY_LIMIT, ServerConfig, generate_token};
pub use driver::{DriverError, ExternalDriver};
pub(crate) use error::ApiError;
pub use error::ServerError;

use crate::Engine;

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
    let state: AppState = Arc::new(Shared {
        engine,
        config,
        shutdown,
        runs_feed: Mutex::new(None),
    });
    let protected = routes::protected().route_layer(middleware::from_fn_with_state(
        Arc::clone(&state),
        authenticate,
    ));
    let mut app = routes::public()
        .merge(protected)
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(Arc::clone(&state));
    if let Some(extra) = extra {
        app = app.merge(extra.route_layer(middleware::from_fn_with_state(state, authenticate)));
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
/// printed once to stderr (never logged).
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

/// The identity behind a request's bearer token (in the request's extensions).
async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    // Browsers cannot set headers on EventSource or WebSocket: those two routes also take
    // `?access_token=`. The query string is never logged.
    let token = from_header.or_else(|| {
        let path = req.uri().path();
        (path == "/api/ws" || path.ends_with("/events"))
            .then(|| query_param(req.uri().query(), "access_token"))
            .flatten()
    });
    let who = token
        .as_deref()
        .and_then(|t| state.config.identify(t))
        .cloned()
        .ok_or_else(ApiError::unauthorized)?;
    tracing::Span::current().record("identity", who.id.as_str());
    req.extensions_mut().insert(who);
    Ok(next.run(req).await)
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
