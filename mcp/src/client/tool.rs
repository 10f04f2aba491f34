//! An MCP server's tool as a Miyabi agent tool.

use std::sync::Arc;

use async_trait::async_trait;
use miyabi::{ToolContext, ToolError};
use rmcp::model::{CallToolResult, Tool as McpTool};
use serde_json::{Value, json};

use super::handler::ElicitScope;
use super::{CallOptions, McpClient, Progress};
use crate::error::McpClientError;

/// Which MCP tools need a human's approval before an agent's call runs (through the agent's
/// tool-approval mechanism: a workflow step suspends, `Agent::generate` returns the pending
/// calls).
#[derive(Clone, Default)]
pub enum ApprovalPolicy {
    /// From the tool's annotations, with the specification's defaults (`readOnlyHint` false,
    /// `destructiveHint` true): a tool that is destructive or not read-only needs approval; a
    /// tool marked `readOnlyHint: true` does not.
    #[default]
    Annotations,
    /// Every tool needs approval.
    Always,
    /// No tool needs approval.
    Never,
    /// Decided per tool by a function of the MCP tool definition.
    Custom(Arc<dyn Fn(&McpTool) -> bool + Send + Sync>),
}

impl std::fmt::Debug for ApprovalPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Annotations => "Annotations",
            Self::Always => "Always",
            Self::Never => "Never",
            Self::Custom(_) => "Custom",
        })
    }
}

impl ApprovalPolicy {
    /// Whether calls of `tool` need approval under this policy.
    pub fn requires_approval(&self, tool: &McpTool) -> bool {
        match self {
            Self::Annotations => {
                let a = tool.annotations.as_ref();
                let read_only = a.and_then(|a| a.read_only_hint).unwrap_or(false);
                // `destructiveHint` defaults to true and only means something for a tool that
                // is not read-only (which needs approval anyway); one that says it is
                // destructive needs approval whatever else it says.
                let destructive = a.and_then(|a| a.destructive_hint) == Some(true);
                !read_only || destructive
            }
            Self::Always => true,
            Self::Never => false,
            Self::Custom(f) => f(tool),
        }
    }
}

/// The agent-tool name of `tool` on `server`: `<server>_<tool>`, with characters other than
/// letters, digits, `_` and `-` replaced by `_`, at most 64 characters.
pub fn agent_tool_name(server: &str, tool: &str) -> String {
    let mut name: String = format!("{server}_{tool}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(64);
    name
}

/// One MCP tool as a [`miyabi::Tool`]: named `<server>_<tool>`, the server's input schema as
/// the argument schema, approval from the client's [`ApprovalPolicy`]. Calls go through the
/// client (timeout, reconnection); the step's cancellation cancels the MCP request; progress
/// notifications become `mcp-progress` events of the run when the agent runs as a step. With
/// [`super::McpClientBuilder::elicitation_suspends`], a server's question during a call inside
/// a run becomes [`ToolError::InputRequired`] (the run suspends), and the call's next round
/// answers the same question from [`ToolContext::inputs`].
pub struct McpAgentTool {
    client: McpClient,
    tool: McpTool,
    name: String,
    description: String,
    approval: bool,
}

impl std::fmt::Debug for McpAgentTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpAgentTool")
            .field("name", &self.name)
            .field("requires_approval", &self.approval)
            .finish_non_exhaustive()
    }
}

impl McpAgentTool {
    /// Wraps `tool` of `client`'s server.
    pub fn new(client: McpClient, tool: McpTool) -> Self {
        let name = agent_tool_name(client.name(), &tool.name);
        let description = tool
            .description
            .as_deref()
            .or(tool.title.as_deref())
            .unwrap_or_default()
            .to_owned();
        let approval = client.approval_policy().requires_approval(&tool);
        Self {
            client,
            tool,
            name,
            description,
            approval,
        }
    }

    /// Overrides whether calls need approval.
    pub fn requires_approval(mut self, on: bool) -> Self {
        self.approval = on;
        self
    }

    /// The MCP tool definition.
    pub fn definition(&self) -> &McpTool {
        &self.tool
    }
}

/// What the model sees of a tool result: the structured content when there is some, else the
/// text when every part is text, else the content parts as JSON.
pub(crate) fn result_value(r: &CallToolResult) -> Value {
    if let Some(s) = &r.structured_content {
        return s.clone();
    }
    let parts = serde_json::to_value(&r.content).unwrap_or(Value::Null);
    let texts: Option<Vec<&str>> = parts.as_array().map(|a| {
        a.iter()
            .filter_map(|p| {
                (p.get("type").and_then(Value::as_str) == Some("text"))
                    .then(|| p.get("text").and_then(Value::as_str))
                    .flatten()
            })
            .collect()
    });
    match texts {
        Some(t) if !t.is_empty() && t.len() == r.content.len() => Value::String(t.join("\n")),
        _ => json!({ "content": parts }),
    }
}

fn tool_error(e: McpClientError, tool: &str) -> ToolError {
    match e {
        McpClientError::Cancelled { .. } => ToolError::Cancelled {
            tool: tool.to_owned(),
        },
        other => ToolError::failed(tool, other.to_string()),
    }
}

#[async_trait]
impl miyabi::Tool for McpAgentTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        let mut schema = Value::Object((*self.tool.input_schema).clone());
        if let Some(o) = schema.as_object_mut()
            && !o.contains_key("type")
        {
            o.insert("type".into(), Value::String("object".into()));
        }
        schema
    }

    fn requires_approval(&self) -> bool {
        self.approval
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let emitter = ctx.clone();
        let server = self.client.name().to_owned();
        let tool = self.tool.name.to_string();
        let progress = {
            let (server, tool) = (server.clone(), tool.clone());
            Arc::new(move |p: Progress| {
                emitter.emit(
                    "mcp-progress",
                    json!({
                        "server": server,
                        "tool": tool,
                        "callId": emitter.call_id(),
                        "progress": p.progress,
                        "total": p.total,
                        "message": p.message,
                    }),
                );
            })
        };
        let opts = CallOptions {
            timeout: None,
            cancel: Some(ctx.cancellation().clone()),
            progress: Some(progress),
        };
        // Inside a run, a question no recorded answer fits suspends the run.
        let scope = (self.client.suspends_elicitations() && ctx.run_id().is_some())
            .then(|| ElicitScope::new(ctx.inputs().to_vec()));
        let (r, asked) = self.client.call_tool_in(&tool, args, opts, scope).await;
        if let (Some(q), false) = (asked, ctx.cancellation().is_cancelled()) {
            // Whatever the server made of `cancel` (a result, an error), the call waits for
            // the human and runs again.
            return Err(ToolError::input_required(&self.name, q.to_input_request()));
        }
        let r = r.map_err(|e| tool_error(e, &self.name))?;
        let value = result_value(&r);
        if r.is_error == Some(true) {
            let message = match &value {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            return Err(ToolError::failed(
                &self.name,
                McpClientError::ToolFailed {
                    server,
                    tool,
                    message,
                }
                .to_string(),
            ));
        }
        Ok(value)
    }
}
