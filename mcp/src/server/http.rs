//! The Streamable HTTP transport of [`McpServer`]: an `axum::Router` serving `POST/GET/DELETE
//! /mcp`, to mount in Miyabi's HTTP server under its bearer authentication
//! ([`mount`]), or anywhere else behind your own.
//!
//! DNS-rebinding protection, as the specification requires: the `Host` header must name a
//! loopback host unless [`HttpOptions::allowed_hosts`] says otherwise, and a request that
//! carries an `Origin` header is refused (403) unless that origin is listed in
//! [`HttpOptions::allowed_origins`] (clients that are not browsers send none).

use std::sync::Arc;

use miyabi::server::ServerConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

use super::McpServer;

/// The path of the MCP endpoint.
pub const MCP_PATH: &str = "/mcp";

/// Options of the HTTP endpoint.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Accepted `Host` header values (host or `host:port`); loopback names by default. Add the
    /// public name when serving beyond loopback.
    pub allowed_hosts: Vec<String>,
    /// Accepted `Origin` values (`https://app.example.com:443`, `http://localhost:*`); none by
    /// default, so every request with an `Origin` header (a browser's) is refused.
    pub allowed_origins: Vec<String>,
    /// Stop serving (ends open sessions) when cancelled.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            shutdown: tokio_util::sync::CancellationToken::new(),
        }
    }
}

impl HttpOptions {
    /// Adds accepted browser origins.
    pub fn allow_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_origins
            .extend(origins.into_iter().map(Into::into));
        self
    }

    /// Adds accepted `Host` values.
    pub fn allow_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_hosts.extend(hosts.into_iter().map(Into::into));
        self
    }
}

/// The MCP endpoint at [`MCP_PATH`] as a router. It does no authentication of its own: mount it
/// behind one ([`mount`] uses the HTTP API's bearer tokens). Approval tools act as the
/// [`miyabi::approval::Approver`] found in the request's extensions.
pub fn router(server: McpServer, opts: HttpOptions) -> axum::Router {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(opts.allowed_hosts)
        .with_allowed_origins(opts.allowed_origins)
        .enforce_origin_validation()
        .with_cancellation_token(opts.shutdown)
        .with_sse_keep_alive(Some(std::time::Duration::from_secs(15)));
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new().route_service(MCP_PATH, service)
}

/// `config` with the MCP endpoint mounted at [`MCP_PATH`] under the HTTP API's bearer
/// authentication: serve it with `miyabi::server::serve` or `miyabi::server::router`.
///
/// The API's access control applies per tool and resource: every identity with a valid token
/// reaches the endpoint, `tools/list` shows what its roles and workflow scope allow, and a call
/// beyond them is refused (see the [module docs](super)). Approval tools still decide only
/// gates that name the caller.
///
/// Open MCP sessions hold an event stream each: cancel [`HttpOptions::shutdown`] before
/// `ServerHandle::shutdown`, or the graceful shutdown waits for the clients to leave.
///
/// ```no_run
/// use miyabi::approval::Approver;
/// use miyabi::server::{serve, ServerConfig};
/// use miyabi_mcp::server::{McpServer, http};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = miyabi::Engine::sqlite("miyabi.db")?;
/// let mcp = McpServer::builder(engine.clone()).build();
/// let config = http::mount(
///     ServerConfig::new().token("a-long-random-secret", Approver::new("alice")),
///     mcp,
///     http::HttpOptions::default(),
/// );
/// let server = serve(engine, config, None).await?; // MCP at http://127.0.0.1:7420/mcp
/// # let _ = server; Ok(()) }
/// ```
pub fn mount(config: ServerConfig, server: McpServer, opts: HttpOptions) -> ServerConfig {
    config.authenticated_routes(router(server, opts))
}
