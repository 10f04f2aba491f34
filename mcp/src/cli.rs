//! `miyabi mcp`: serve an engine over MCP from the command line, on stdio (the default, for
//! Claude Desktop, Codex, Cursor, the MCP Inspector) or on Streamable HTTP (`--http`, mounted
//! in the HTTP API under its bearer tokens).
//!
//! `miyabi mcp ...` runs the `miyabi-mcp` program (this crate's binary, found next to `miyabi`
//! or on PATH) with `--db` passed as `MIYABI_DB`; an application can flatten [`McpArgs`] into
//! its own command line, set [`McpArgs::db`] and call [`run`].

use std::net::SocketAddr;

use miyabi::Engine;
use miyabi::approval::Approver;
use rmcp::ServiceExt;

use crate::error::McpServerError;
use crate::server::McpServer;
use crate::server::http::{self, HttpOptions};

/// Arguments of `miyabi mcp`.
#[derive(Debug, Clone, clap::Args)]
pub struct McpArgs {
    /// The run database (set by the caller: `miyabi-mcp` takes `--db` / `MIYABI_DB`).
    #[arg(skip = String::from("./miyabi.db"))]
    pub db: String,
    /// Serve Streamable HTTP at this address (with the HTTP API, tokens from MIYABI_TOKENS)
    /// instead of stdio; loopback by default.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = miyabi::server::DEFAULT_ADDR)]
    pub http: Option<SocketAddr>,
    /// Over stdio, who the MCP client acts as for approvals (its inbox, its decisions).
    #[arg(
        long = "as",
        value_name = "WHO",
        env = "MIYABI_MCP_AS",
        default_value = "mcp"
    )]
    pub who: String,
    /// The `--as` user's teams (repeatable), for gates listing `team:<name>`.
    #[arg(long = "team", value_name = "TEAM")]
    pub teams: Vec<String>,
    /// A browser origin allowed to call the HTTP endpoint (repeatable); by default requests
    /// carrying an `Origin` header are refused.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origins: Vec<String>,
    /// A `Host` value allowed besides loopback names (repeatable), when serving beyond loopback.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
}

impl Default for McpArgs {
    fn default() -> Self {
        Self {
            db: "./miyabi.db".into(),
            http: None,
            who: "mcp".into(),
            teams: Vec::new(),
            allow_origins: Vec::new(),
            allow_hosts: Vec::new(),
        }
    }
}

impl McpArgs {
    /// The stdio caller's identity.
    pub fn identity(&self) -> Approver {
        Approver::new(self.who.as_str()).teams(self.teams.iter().cloned())
    }
}

/// Opens the engine at `args.db` and serves it (its runs and approvals: the CLI registers no
/// workflows) until stdin closes (stdio) or Ctrl-C (HTTP).
pub async fn run(args: McpArgs) -> Result<(), McpServerError> {
    let engine = Engine::sqlite(&args.db).map_err(|e| McpServerError::Engine {
        path: args.db.clone(),
        message: e.to_string(),
    })?;
    let server = McpServer::builder(engine).identity(args.identity()).build();
    serve(server, &args).await
}

/// Serves `server` on the transport `args` choose: stdio until stdin closes, or HTTP until
/// Ctrl-C. For applications that register workflows, agents and tools before serving.
pub async fn serve(server: McpServer, args: &McpArgs) -> Result<(), McpServerError> {
    match args.http {
        None => {
            let running = server.serve(rmcp::transport::stdio()).await.map_err(|e| {
                McpServerError::Transport {
                    transport: "stdio",
                    message: e.to_string(),
                }
            })?;
            running
                .waiting()
                .await
                .map_err(|e| McpServerError::Transport {
                    transport: "stdio",
                    message: e.to_string(),
                })?;
            Ok(())
        }
        Some(addr) => {
            let engine = server.engine().clone();
            let config = miyabi::server::ServerConfig::from_env()
                .map_err(|e| McpServerError::Config(e.to_string()))?;
            let opts = HttpOptions::default()
                .allow_origins(args.allow_origins.iter().cloned())
                .allow_hosts(args.allow_hosts.iter().cloned());
            let shutdown = opts.shutdown.clone();
            let config = http::mount(config, server, opts);
            let handle = miyabi::server::serve(engine, config, Some(addr))
                .await
                .map_err(|e| match e {
                    miyabi::server::ServerError::Bind { addr, source } => {
                        McpServerError::Bind { addr, source }
                    }
                    other => McpServerError::Transport {
                        transport: "http",
                        message: other.to_string(),
                    },
                })?;
            // Read by scripts and tests that start the server on port 0.
            eprintln!(
                "miyabi: MCP endpoint at http://{}{}",
                handle.local_addr(),
                http::MCP_PATH
            );
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            handle
                .shutdown()
                .await
                .map_err(|e| McpServerError::Transport {
                    transport: "http",
                    message: e.to_string(),
                })
        }
    }
}

/// Installs a `tracing` subscriber writing to stderr (stdout carries the MCP protocol on
/// stdio), filtered by `RUST_LOG` (`warn` by default).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}
