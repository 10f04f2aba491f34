//! MCP both ways for Miyabi, on `rmcp` (the official Rust SDK).
//!
//! - **Client** ([`McpClient`]): connect to any MCP server over stdio (a command with args,
//!   environment and working directory) or Streamable HTTP (a URL with headers); list and call
//!   tools, read resources and resource templates, list and get prompts; follow `list_changed`;
//!   per-call timeouts and cancellation; reconnect after a crash. [`McpClient::agent_tools`]
//!   turns the server's tools into [`miyabi::Tool`]s for an agent.
//! - **Server** ([`server`]): an [`miyabi::Engine`]'s workflows, agents, plain tools, runs,
//!   event logs and approvals over MCP, on stdio ([`cli::run`], `miyabi mcp`) or as an
//!   `axum::Router` for Streamable HTTP under the HTTP API's bearer auth.
//!
//! See `docs/mcp.md`.

pub mod cli;
pub mod client;
mod error;
pub mod server;
mod stdio;

pub use client::{
    ApprovalPolicy, CallOptions, ElicitationAnswer, ElicitationHandler, ElicitationRequest,
    McpAgentTool, McpClient, McpClientBuilder, Progress, elicitation_fn,
};
pub use error::{McpClientError, McpServerError};
/// The MCP SDK this crate is built on (its model types appear in the client's results).
pub use rmcp;
pub use server::{McpServer, McpServerBuilder};
