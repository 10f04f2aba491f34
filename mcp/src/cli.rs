//! `miyabi mcp`: serve an engine over MCP from the command line, on stdio (the default, for
//! Claude Desktop, Codex, Cursor, the MCP Inspector) or on Streamable HTTP (`--http`, mounted
//! in the HTTP API under its bearer tokens).
//!
//! `miyabi mcp ...` runs the `miyabi-mcp` program (this crate's binary, found next to `miyabi`
//! or on PATH) with `--db` passed as `MIYABI_DB`; an application can flatten [`McpArgs`] into
//! its own command line, set [`McpArgs::db`] and call [`run`] on the runtime [`runtime`] builds.
//!
//! Over stdio the server runs on one thread by default (a current-thread tokio runtime, see
//! [`runtime`]) and reads and writes its standard streams as non-blocking pipes: a request
//! crosses no thread on its way in or out (docs/benchmarks.md, "MCP").

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
    /// Worker threads of the async runtime ([`runtime`]): 1 runs everything on the calling
    /// thread (the default over stdio: the shortest round trip for its one client); more let
    /// CPU-heavy workflow steps run in parallel (the default over HTTP: one per CPU).
    #[arg(long, value_name = "N", env = "MIYABI_MCP_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
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
            threads: None,
        }
    }
}

impl McpArgs {
    /// The stdio caller's identity.
    pub fn identity(&self) -> Approver {
        Approver::new(self.who.as_str()).teams(self.teams.iter().cloned())
    }

    /// The worker threads [`runtime`] starts: [`McpArgs::threads`], else 1 over stdio and one
    /// per CPU over HTTP.
    pub fn worker_threads(&self) -> usize {
        match (self.threads, self.http) {
            (Some(n), _) => usize::from(n),
            (None, None) => 1,
            (None, Some(_)) => std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// The tokio runtime to serve `args` on ([`McpArgs::worker_threads`]): a current-thread
/// runtime for one thread, else a multi-thread runtime. One thread is the default over stdio:
/// the service loop, the tool call and the pipe I/O then run on the thread that read the
/// request, where a multi-thread runtime hands each request between threads several times
/// (tens of microseconds per hop on a busy host).
///
/// ```no_run
/// use miyabi_mcp::cli::{McpArgs, run, runtime};
/// # fn main() -> Result<(), miyabi_mcp::McpServerError> {
/// let args = McpArgs::default();
/// runtime(&args)?.block_on(run(args))
/// # }
/// ```
pub fn runtime(args: &McpArgs) -> Result<tokio::runtime::Runtime, McpServerError> {
    let threads = args.worker_threads();
    let built = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    built.map_err(|source| McpServerError::Runtime { threads, source })
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
/// Ctrl-C. For applications that register workflows, agents and tools before serving (on the
/// runtime of their choice; [`runtime`] is the one `miyabi mcp` uses).
///
/// Over stdio, standard input and output are read and written as non-blocking pipes when they
/// are pipes (as MCP clients start servers), without tokio's blocking stdio threads; otherwise
/// (a terminal, a file) through them.
pub async fn serve(server: McpServer, args: &McpArgs) -> Result<(), McpServerError> {
    match args.http {
        None => {
            let (stdin, stdout) = rmcp::transport::stdio_pipes();
            let transport =
                crate::stdio::LineTransport::<rmcp::RoleServer, _, _>::new(stdin, stdout);
            let running = server
                .serve(transport)
                .await
                .map_err(|e| McpServerError::Transport {
                    transport: "stdio",
                    message: e.to_string(),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        mcp: McpArgs,
    }

    #[test]
    fn stdio_serves_on_one_thread_unless_told_otherwise() {
        let args = Cli::try_parse_from(["miyabi-mcp"]).unwrap().mcp;
        assert_eq!(args.worker_threads(), 1);
        assert_eq!(
            runtime(&args).unwrap().handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::CurrentThread
        );
        let args = Cli::try_parse_from(["miyabi-mcp", "--threads", "3"])
            .unwrap()
            .mcp;
        assert_eq!(args.worker_threads(), 3);
        assert_eq!(
            runtime(&args).unwrap().handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread
        );
        let args = Cli::try_parse_from(["miyabi-mcp", "--http"]).unwrap().mcp;
        assert_eq!(
            args.worker_threads(),
            std::thread::available_parallelism().map_or(1, usize::from)
        );
        assert!(Cli::try_parse_from(["miyabi-mcp", "--threads", "0"]).is_err());
    }
}
