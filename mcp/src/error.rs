//! Errors of the MCP client and server.

use std::time::Duration;

/// An MCP client operation failed. Every variant names the server (as configured) and the
/// operation or tool, so an agent's tool error says where it came from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum McpClientError {
    /// The client's configuration is unusable (empty command, bad URL or header).
    #[error("MCP server `{server}` is badly configured: {reason}")]
    Config {
        /// The server's name.
        server: String,
        /// What is wrong.
        reason: String,
    },
    /// Starting the server or the MCP handshake failed.
    #[error("could not connect to MCP server `{server}`: {message}")]
    Connect {
        /// The server's name.
        server: String,
        /// What failed (spawn error, HTTP error, handshake error).
        message: String,
    },
    /// The connection broke (the server process exited, the HTTP session ended) during
    /// `operation`. The next call reconnects.
    #[error("MCP server `{server}` went away during {operation}: {message}")]
    Disconnected {
        /// The server's name.
        server: String,
        /// `tools/call weather`, `resources/read file:///x`, ...
        operation: String,
        /// What the transport said.
        message: String,
    },
    /// The server answered `operation` with a JSON-RPC error.
    #[error("MCP server `{server}` refused {operation}: {message} (code {code})")]
    Remote {
        /// The server's name.
        server: String,
        /// The operation.
        operation: String,
        /// The JSON-RPC error code.
        code: i32,
        /// The server's message.
        message: String,
    },
    /// The server answered `operation` with something that is not its result.
    #[error("MCP server `{server}` sent an unexpected answer to {operation}: {message}")]
    Garbage {
        /// The server's name.
        server: String,
        /// The operation.
        operation: String,
        /// What was wrong.
        message: String,
    },
    /// `operation` did not finish within the per-call timeout; the request was cancelled.
    #[error("MCP server `{server}` did not answer {operation} within {after:?}")]
    Timeout {
        /// The server's name.
        server: String,
        /// The operation.
        operation: String,
        /// The timeout.
        after: Duration,
    },
    /// The caller cancelled `operation`; the server was told.
    #[error("{operation} on MCP server `{server}` was cancelled")]
    Cancelled {
        /// The server's name.
        server: String,
        /// The operation.
        operation: String,
    },
    /// The tool ran and reported an error (`isError: true`).
    #[error("tool `{tool}` of MCP server `{server}` failed: {message}")]
    ToolFailed {
        /// The server's name.
        server: String,
        /// The MCP tool's name (without the server prefix).
        tool: String,
        /// The tool's text.
        message: String,
    },
}

impl McpClientError {
    /// The server this error is about.
    pub fn server(&self) -> &str {
        match self {
            Self::Config { server, .. }
            | Self::Connect { server, .. }
            | Self::Disconnected { server, .. }
            | Self::Remote { server, .. }
            | Self::Garbage { server, .. }
            | Self::Timeout { server, .. }
            | Self::Cancelled { server, .. }
            | Self::ToolFailed { server, .. } => server,
        }
    }

    /// Whether the connection is gone (the next call reconnects).
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Self::Disconnected { .. })
    }
}

/// The MCP server (Miyabi served over MCP) could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpServerError {
    /// The engine could not be opened.
    #[error("could not open the engine at `{path}`: {message}")]
    Engine {
        /// The database path.
        path: String,
        /// The engine's error.
        message: String,
    },
    /// The identity or token configuration is unusable.
    #[error("bad MCP server configuration: {0}")]
    Config(String),
    /// Binding the HTTP address failed.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime could not be started.
    #[error("could not start the async runtime ({threads} thread(s)): {source}")]
    Runtime {
        /// The worker threads asked for.
        threads: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Serving stopped with an error.
    #[error("MCP {transport} transport failed: {message}")]
    Transport {
        /// `stdio` or `http`.
        transport: &'static str,
        /// What failed.
        message: String,
    },
}
