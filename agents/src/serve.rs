//! The HTTP API with the GitHub webhook receiver (feature `server`): what `miyabi run serve`
//! serves, for Rust applications that embed it.
//!
//! [`router`] is `miyabi`'s API router (`miyabi::server::router`: the `/api` routes with
//! their access control, the dashboard) merged with the webhook receiver
//! ([`webhook::router`]) at `/webhooks/github`. The API authenticates with its bearer tokens;
//! the webhook with the `X-Hub-Signature-256` signature (no token), so GitHub can call it.
//! [`serve`] binds an address and serves that router.
//!
//! ```no_run
//! # async fn demo(repo: &std::path::Path, model: std::sync::Arc<dyn miyabi::LanguageModel>) -> Result<(), Box<dyn std::error::Error>> {
//! use miyabi::approval::Approver;
//! use miyabi::server::ServerConfig;
//! use miyabi_agents::github::webhook::WebhookConfig;
//! use miyabi_agents::pipeline::{self, PipelineConfig};
//!
//! let engine = miyabi::Engine::sqlite("runs.db")?;
//! let workflow = pipeline::issue_resolution(&engine, PipelineConfig::new(repo, model)?)?;
//! let hooks = WebhookConfig::new(engine.clone(), std::env::var("GITHUB_WEBHOOK_SECRET")?)
//!     .on_issue_labeled("agent:codegen", workflow);
//! let api = ServerConfig::from_env()?.token(std::env::var("MIYABI_TOKEN")?, Approver::new("alice"));
//! let server = miyabi_agents::serve::serve(engine, api, hooks, "127.0.0.1:7420".parse()?).await?;
//! println!("listening on http://{}", server.local_addr());
//! server.wait().await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;

use axum::Router;
use miyabi::Engine;
use miyabi::approval::Approver;
use miyabi::server::{ServerConfig, ServerError};

use crate::github::webhook::{self, WebhookConfig};

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The API's configuration is invalid (the same token for two identities...).
    #[error(transparent)]
    Config(#[from] ServerError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
    /// The server's task ended abnormally.
    #[error("the server's task: {0}")]
    Task(String),
}

/// The API (`/api/...`, the dashboard; bearer tokens from `server`) and the webhook receiver
/// (`POST /webhooks/github`, signed with the webhook's secret) over one engine.
///
/// Without any token or JWT issuer in `server`, every authenticated API route answers 401
/// (add one; [`serve`] generates one); the webhook works either way.
pub fn router(engine: Engine, server: ServerConfig, hooks: WebhookConfig) -> Router {
    miyabi::server::router(engine, server).merge(webhook::router(hooks))
}

/// A running server: its address and a graceful shutdown.
#[derive(Debug)]
pub struct ServeHandle {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), std::io::Error>>,
}

impl ServeHandle {
    /// The address the server listens on (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits for the open ones to end.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.stop.send_replace(true);
        self.wait().await
    }

    /// Starts a graceful shutdown without waiting (for signal handlers): see [`Self::wait`].
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until the server stops.
    pub async fn wait(self) -> Result<(), ServeError> {
        match self.task.await {
            Ok(r) => r.map_err(ServeError::Io),
            Err(e) => Err(ServeError::Task(e.to_string())),
        }
    }
}

/// Serves [`router`] on `addr`. When `server` has no token (nor JWT issuer), one is generated
/// for the identity `admin` and printed once to stderr (never logged), as `miyabi serve` does.
pub async fn serve(
    engine: Engine,
    mut server: ServerConfig,
    hooks: WebhookConfig,
    addr: SocketAddr,
) -> Result<ServeHandle, ServeError> {
    server.validate()?;
    if !server.has_tokens() {
        let token = miyabi::server::generate_token()?;
        server = server.token(&token, Approver::new("admin"));
        eprintln!("miyabi: no token configured; generated a token for `admin`:\n{token}");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    let app = router(engine, server, hooks);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    Ok(ServeHandle {
        addr: local,
        stop,
        task,
    })
}
