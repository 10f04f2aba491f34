//! Miyabi served over MCP: an [`Engine`]'s registered workflows, agents and plain tools as MCP
//! tools, runs and their event logs as resources, and approvals as tools.
//!
//! | MCP tool | what it does |
//! |---|---|
//! | `run_<workflow>` | starts the workflow with the arguments as input (wrapped as `{"input": ..}` when the workflow's input schema is not an object) and waits until the run finishes or suspends; progress notifications per finished step; the result is the run (`runId`, `status`, `output`, `error`, `waitingFor`) |
//! | `agent_<name>` | asks the agent (`{"prompt": ".."}`) and returns its answer (or the calls waiting for approval) |
//! | a plain tool's name | calls the tool |
//! | `approvals_list` | the caller's pending gates (`{"run"?: id}`), or every gate with `{"all": true, "status"?: ..}` |
//! | `approvals_decide` | `{"run", "gate", "action": "approve" \| "reject", "data"?, "comment"?}`: the same policy checks and audit as the HTTP API |
//!
//! Resources: `miyabi://runs/{id}` (the run as JSON) and `miyabi://runs/{id}/events` (its event
//! log); `resources/list` lists the latest runs.
//!
//! The caller is an [`Approver`]: over Streamable HTTP the identity of the request's bearer
//! token (see [`http`]), over stdio the identity given to [`McpServer::identity`].
//!
//! Over HTTP the API's roles and workflow scopes apply per tool and resource (the caller's
//! [`Identity`]): `run_<workflow>` needs the operator or admin role and the workflow in scope;
//! agent and plain tools need the operator or admin role with every workflow in scope (they
//! are bound to no workflow); `approvals_list` the viewer, operator, approver or admin role
//! (`all=true` a read role), `approvals_decide` the approver or admin role; resources a read
//! role. `tools/list` shows only what the caller may call; what is out of its scope does not
//! exist for it (as the API answers 404), and a tool its roles do not allow answers a
//! `FORBIDDEN` error naming the role it needs. Over stdio the process's user may do everything.

pub mod http;

use std::sync::Arc;

use miyabi::approval::{ApprovalError, ApprovalFilter, ApprovalStatus, Approver, Decision};
use miyabi::server::{Identity, Permission};
use miyabi::{Agent, CommittedWorkflow, Engine, EventKind, RunFilter, RunStatus, Tool};
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::{Map, Value, json};

/// How many runs `resources/list` lists (newest first).
const LISTED_RUNS: usize = 50;

/// The tool names of the approval tools.
const APPROVALS_LIST: &str = "approvals_list";
const APPROVALS_DECIDE: &str = "approvals_decide";

struct Inner {
    engine: Engine,
    agents: Vec<ServedAgent>,
    tools: Vec<ServedTool>,
    identity: Option<Approver>,
    name: String,
}

/// An agent as served: its tool name and `tools/list` entry, made once when the server is built.
struct ServedAgent {
    agent: Agent,
    name: String,
    entry: Value,
}

/// A plain tool as served: its argument schema compiled once (an invalid schema is reported to
/// each caller, as the tool cannot be called) and its `tools/list` entry.
struct ServedTool {
    tool: Arc<dyn Tool>,
    schema: Result<miyabi::Schema, String>,
    entry: Value,
}

/// An MCP server over an engine. Cheap to clone (shared); one value serves every session.
#[derive(Clone)]
pub struct McpServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.inner.name)
            .field("agents", &self.inner.agents.len())
            .field("tools", &self.inner.tools.len())
            .field(
                "identity",
                &self.inner.identity.as_ref().map(|i| i.id.as_str()),
            )
            .finish()
    }
}

/// Builds an [`McpServer`].
pub struct McpServerBuilder {
    engine: Engine,
    agents: Vec<Agent>,
    tools: Vec<Arc<dyn Tool>>,
    identity: Option<Approver>,
    name: String,
}

impl std::fmt::Debug for McpServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServerBuilder")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl McpServerBuilder {
    /// Serves `agent` as the tool `agent_<name>`.
    pub fn agent(mut self, agent: Agent) -> Self {
        self.agents.push(agent);
        self
    }

    /// Serves `tool` under its own name.
    pub fn tool(mut self, tool: impl miyabi::tool::IntoTool) -> Self {
        self.tools.push(tool.into_tool());
        self
    }

    /// The identity of a caller that did not come through the HTTP API's bearer auth (stdio):
    /// whose inbox `approvals_list` shows and who decides with `approvals_decide`.
    pub fn identity(mut self, who: Approver) -> Self {
        self.identity = Some(who);
        self
    }

    /// The server name announced in the handshake (`miyabi` by default).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The server. Compiles the plain tools' argument schemas and the `tools/list` entries of
    /// the agents and plain tools once, here.
    pub fn build(self) -> McpServer {
        let agents = self
            .agents
            .into_iter()
            .map(|agent| {
                let name = tool_name("agent", agent.name());
                let entry = json!({
                    "name": name,
                    "description": format!("Asks the Miyabi agent `{}` and returns its answer.", agent.name()),
                    "inputSchema": {"type": "object", "properties": {"prompt": {"type": "string", "description": "What to ask"}}, "required": ["prompt"]},
                    "annotations": {"readOnlyHint": false, "openWorldHint": true},
                });
                ServedAgent { agent, name, entry }
            })
            .collect();
        let tools = self
            .tools
            .into_iter()
            .map(|tool| {
                let parameters = tool.parameters();
                let schema = miyabi::Schema::new(parameters.clone());
                let entry = json!({
                    "name": tool.name(),
                    "description": tool.description(),
                    "inputSchema": parameters,
                    "annotations": {"readOnlyHint": false, "destructiveHint": tool.requires_approval()},
                });
                ServedTool {
                    tool,
                    schema,
                    entry,
                }
            })
            .collect();
        McpServer {
            inner: Arc::new(Inner {
                engine: self.engine,
                agents,
                tools,
                identity: self.identity,
                name: self.name,
            }),
        }
    }
}

/// A tool name made of a prefix and a user's name: letters, digits, `_` and `-` kept, others
/// replaced by `_`.
fn tool_name(prefix: &str, name: &str) -> String {
    format!("{prefix}_{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The MCP arguments schema of a workflow and whether the input is wrapped as `input`.
fn workflow_schema(wf: &CommittedWorkflow) -> (Value, bool) {
    match wf.input_schema() {
        None => (json!({"type": "object"}), false),
        Some(s) if s.get("type").and_then(Value::as_str) == Some("object") => {
            let mut s = s.clone();
            if let Some(o) = s.as_object_mut() {
                o.remove("$schema");
            }
            (s, false)
        }
        Some(s) => {
            let mut s = s.clone();
            if let Some(o) = s.as_object_mut() {
                o.remove("$schema");
            }
            (
                json!({"type": "object", "properties": {"input": s}, "required": ["input"]}),
                true,
            )
        }
    }
}

/// A result of one text part (a string as it is, other values as pretty JSON) and optionally
/// structured content.
fn text_result(value: &Value, structured: Option<Value>, is_error: bool) -> CallToolResult {
    let text = match value {
        Value::String(s) => s.clone(),
        v => serde_json::to_string_pretty(v).unwrap_or_default(),
    };
    let content = vec![ContentBlock::text(text)];
    let mut out = if is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    out.structured_content = structured;
    out
}

fn tool_failure(message: impl Into<String>) -> CallToolResult {
    let message = message.into();
    text_result(&Value::String(message), None, true)
}

fn approval_failure(e: &ApprovalError) -> CallToolResult {
    let body = json!({"error": {"code": e.code().as_str(), "message": e.to_string()}});
    text_result(&body, Some(body.clone()), true)
}

/// The run as the workflow tool returns it.
fn run_result(run: &miyabi::Run, engine: &Engine) -> Value {
    let gates = engine.approvals();
    let waiting: Vec<Value> = run
        .suspended
        .iter()
        .map(|s| {
            let kind = s
                .payload
                .get("type")
                .or_else(|| s.payload.get("kind"))
                .and_then(Value::as_str)
                .unwrap_or("resume")
                .to_owned();
            let mut w = json!({"path": s.path, "kind": kind, "payload": s.payload});
            if kind == "approval"
                && let Ok(a) = gates.get(&run.id, &s.path)
            {
                w["approval"] = serde_json::to_value(&a).unwrap_or(Value::Null);
                w["decideWith"] = json!({
                    "tool": APPROVALS_DECIDE,
                    "arguments": {"run": run.id, "gate": s.path, "action": "approve"},
                });
            }
            w
        })
        .collect();
    json!({
        "runId": run.id,
        "workflow": run.workflow,
        "status": run.status,
        "output": run.output,
        "error": run.error,
        "waitingFor": waiting,
        "resource": format!("miyabi://runs/{}", run.id),
    })
}

/// What the caller may do: over HTTP its [`Identity`] (roles and scope), over stdio everything.
enum Access {
    /// The process's own user (stdio), or an embedding that put no identity in the request.
    Full,
    /// An authenticated HTTP caller.
    Identity(Arc<Identity>),
}

impl Access {
    fn may(&self, permission: Permission) -> bool {
        match self {
            Access::Full => true,
            Access::Identity(who) => who.may(permission),
        }
    }

    /// Whether `workflow` is in the caller's scope.
    fn sees(&self, workflow: &str) -> bool {
        match self {
            Access::Full => true,
            Access::Identity(who) => who.scope.allows(workflow),
        }
    }

    /// The refusal of an operation that needs `permission`, naming the caller and the roles.
    fn forbidden(&self, what: &str, permission: Permission) -> CallToolResult {
        let who = match self {
            Access::Full => "the caller",
            Access::Identity(who) => who.id(),
        };
        let message = if permission == Permission::Mounted {
            format!(
                "`{who}` may not call {what}: it needs the operator or admin role with every workflow in scope"
            )
        } else {
            let roles: Vec<&str> = permission.roles().iter().map(|r| r.as_str()).collect();
            format!(
                "`{who}` may not call {what}: it needs the {} role",
                roles.join(" or ")
            )
        };
        let body = json!({"error": {"code": "FORBIDDEN", "message": message}});
        text_result(&body, Some(body.clone()), true)
    }
}

fn object_arg<'a>(args: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    args.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

impl McpServer {
    /// A server over `engine`: its registered workflows (at the time of each `tools/list`), its
    /// runs and its approvals.
    pub fn builder(engine: Engine) -> McpServerBuilder {
        McpServerBuilder {
            engine,
            agents: Vec::new(),
            tools: Vec::new(),
            identity: None,
            name: "miyabi".into(),
        }
    }

    /// The engine served.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The caller: the HTTP request's identity (set by the bearer auth), else the configured one.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Option<Approver> {
        ctx.extensions
            .get::<::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Approver>().cloned())
            .or_else(|| self.inner.identity.clone())
    }

    /// What the caller may do (see [`Access`]).
    fn access(&self, ctx: &RequestContext<RoleServer>) -> Access {
        ctx.extensions
            .get::<::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Arc<Identity>>().cloned())
            .map_or(Access::Full, Access::Identity)
    }

    fn tool_list(&self, access: &Access) -> Vec<Value> {
        let mut out = Vec::new();
        let mut workflows = self.inner.engine.workflows();
        workflows.sort_by(|a, b| a.id().cmp(b.id()));
        let operate = access.may(Permission::Operate);
        for wf in workflows
            .into_iter()
            .filter(|w| operate && access.sees(w.id()))
        {
            let (schema, _) = workflow_schema(&wf);
            out.push(json!({
                "name": tool_name("run", wf.id()),
                "title": format!("Run workflow {}", wf.id()),
                "description": format!("Runs the Miyabi workflow `{}` until it finishes or suspends (e.g. for an approval) and returns the run: runId, status, output, error, and what a suspended run waits for.", wf.id()),
                "inputSchema": schema,
                "annotations": {"readOnlyHint": false, "destructiveHint": false, "openWorldHint": true},
            }));
        }
        if access.may(Permission::Mounted) {
            out.extend(self.inner.agents.iter().map(|a| a.entry.clone()));
            out.extend(self.inner.tools.iter().map(|t| t.entry.clone()));
        }
        if access.may(Permission::Inbox) {
            out.push(json!({
            "name": APPROVALS_LIST,
            "description": "Lists the approval gates waiting for you (the caller), optionally for one run; with all=true, every gate (optionally by status).",
            "inputSchema": {"type": "object", "properties": {
                "run": {"type": "string", "description": "Only this run's gates"},
                "all": {"type": "boolean", "description": "Every gate, not only those waiting for you"},
                "status": {"type": "string", "enum": ["pending", "approved", "rejected", "closed"]},
            }},
            "annotations": {"readOnlyHint": true},
        }));
        }
        if access.may(Permission::Decide) {
            out.push(json!({
            "name": APPROVALS_DECIDE,
            "description": "Approves or rejects an approval gate as you (the caller), under the gate's policy; the run continues once the gate is decided.",
            "inputSchema": {"type": "object", "properties": {
                "run": {"type": "string"},
                "gate": {"type": "string", "description": "The gate's path in the run"},
                "action": {"type": "string", "enum": ["approve", "reject"]},
                "data": {"description": "Edited data (approve only), validated against the gate's schema"},
                "comment": {"type": "string"},
            }, "required": ["run", "gate", "action"]},
            "annotations": {"readOnlyHint": false, "destructiveHint": true},
        }));
        }
        out
    }

    async fn call(
        &self,
        name: &str,
        args: Map<String, Value>,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let access = self.access(ctx);
        let what = || format!("`{name}`");
        if name == APPROVALS_LIST {
            if !access.may(Permission::Inbox) {
                return Ok(access.forbidden(&what(), Permission::Inbox));
            }
            return Ok(self.approvals_list(&args, ctx, &access));
        }
        if name == APPROVALS_DECIDE {
            if !access.may(Permission::Decide) {
                return Ok(access.forbidden(&what(), Permission::Decide));
            }
            return Ok(Box::pin(self.approvals_decide(args, ctx, &access)).await);
        }
        // A workflow out of the caller's scope has no tool, as the API answers 404. (Every
        // workflow tool's name starts with `run_`: other calls skip listing the workflows.)
        if name.starts_with("run_")
            && let Some(wf) = self
                .inner
                .engine
                .workflows()
                .into_iter()
                .find(|w| tool_name("run", w.id()) == name && access.sees(w.id()))
        {
            if !access.may(Permission::Operate) {
                return Ok(access.forbidden(&what(), Permission::Operate));
            }
            // Boxed, as the agent's answer below: the call's future stays small for the other
            // tools (rmcp moves it into a task per request).
            return Ok(Box::pin(self.run_workflow(&wf, args, ctx)).await);
        }
        let agent = self.inner.agents.iter().find(|a| a.name == name);
        let tool = self.inner.tools.iter().find(|t| t.tool.name() == name);
        if (agent.is_some() || tool.is_some()) && !access.may(Permission::Mounted) {
            return Ok(access.forbidden(&what(), Permission::Mounted));
        }
        if let Some(ServedAgent { agent, .. }) = agent {
            let Some(prompt) = object_arg(&args, "prompt") else {
                return Err(ErrorData::invalid_params(
                    format!("tool `{name}` needs a `prompt` string"),
                    None,
                ));
            };
            let answer = tokio::select! {
                r = Box::pin(agent.generate(miyabi::AgentInput::prompt(prompt))) => r,
                () = ctx.ct.cancelled() => return Ok(tool_failure("cancelled")),
            };
            return Ok(match answer {
                Ok(r) if r.pending.is_empty() => text_result(
                    &Value::String(r.text.clone()),
                    Some(json!({"text": r.text, "object": r.object})),
                    false,
                ),
                Ok(r) => {
                    let v = json!({"text": r.text, "waitingFor": {"kind": "tool-approval", "pending": r.pending}});
                    text_result(&v, Some(v.clone()), true)
                }
                Err(e) => tool_failure(e.to_string()),
            });
        }
        if let Some(ServedTool { tool, schema, .. }) = tool {
            let args = Value::Object(args);
            let schema = schema.as_ref().map_err(|e| {
                ErrorData::internal_error(format!("tool `{name}` has a bad schema: {e}"), None)
            })?;
            if let Err((pointer, reason)) = schema.check(&args) {
                return Err(ErrorData::invalid_params(
                    format!("invalid arguments for `{name}` at `{pointer}`: {reason}"),
                    None,
                ));
            }
            let tctx = miyabi::ToolContext::detached("mcp", &ctx.id.to_string());
            let cancel = tctx.cancellation().clone();
            let out = tokio::select! {
                r = tool.call(&tctx, args) => r,
                () = ctx.ct.cancelled() => { cancel.cancel(); return Ok(tool_failure("cancelled")); }
            };
            return Ok(match out {
                Ok(v) => text_result(&v, v.is_object().then(|| v.clone()), false),
                Err(e) => tool_failure(e.to_string()),
            });
        }
        Err(ErrorData::invalid_params(
            format!("there is no tool named `{name}`"),
            None,
        ))
    }

    async fn run_workflow(
        &self,
        wf: &CommittedWorkflow,
        args: Map<String, Value>,
        ctx: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        use futures::StreamExt;
        let engine = &self.inner.engine;
        let (_, wrapped) = workflow_schema(wf);
        let input = if wrapped {
            args.get("input").cloned().unwrap_or(Value::Null)
        } else {
            Value::Object(args)
        };
        let handle = match engine.spawn(wf, input) {
            Ok(h) => h,
            Err(e) => {
                let body = json!({"error": {"code": e.code().as_str(), "message": e.to_string()}});
                return text_result(&body, Some(body.clone()), true);
            }
        };
        let run_id = handle.id().to_owned();
        let token = ctx.meta.get_progress_token();
        let mut events = Box::pin(engine.events(&run_id, 1));
        let mut done = 0u32;
        // Paths already reported (each finished step once, whatever the order events come in).
        let mut reported = std::collections::HashSet::new();
        let peer = ctx.peer.clone();
        let notify = |done: u32, path: String| {
            let peer = peer.clone();
            let token = token.clone();
            async move {
                if let Some(token) = token
                    && let Ok(p) = serde_json::from_value(json!({
                        "progressToken": token,
                        "progress": done,
                        "message": format!("step `{path}` finished"),
                    }))
                {
                    let _ = peer.notify_progress(p).await;
                }
            }
        };
        let follow = async {
            while let Some(ev) = events.next().await {
                let Ok(ev) = ev else { break };
                if let EventKind::StepOutput { path, .. } = &ev.kind
                    && reported.insert(path.to_string())
                {
                    done += 1;
                    notify(done, path.to_string()).await;
                }
            }
        };
        tokio::select! {
            () = follow => {}
            () = ctx.ct.cancelled() => {
                // The client gave up on the call: the run is cancelled with it.
                if let Err(e) = engine.cancel(&run_id).await {
                    tracing::warn!(run = %run_id, error = %e, "cancelling the run of a cancelled MCP call failed");
                }
            }
        }
        let run = match handle.wait().await {
            Ok(r) => r,
            Err(e) => match engine.get(&run_id).await {
                Ok(Some(r)) => r,
                _ => return tool_failure(format!("run {run_id}: {e}")),
            },
        };
        // Steps that finished after the live stream ended (or before it began) are reported
        // from the log, so every progress notification precedes the result.
        if let Ok(all) = engine.store().events(&run_id, 1, usize::MAX) {
            for ev in all {
                if let EventKind::StepOutput { path, .. } = &ev.kind
                    && reported.insert(path.to_string())
                {
                    done += 1;
                    notify(done, path.to_string()).await;
                }
            }
        }
        let v = run_result(&run, engine);
        text_result(&v, Some(v.clone()), run.status == RunStatus::Failed)
    }

    fn approvals_list(
        &self,
        args: &Map<String, Value>,
        ctx: &RequestContext<RoleServer>,
        access: &Access,
    ) -> CallToolResult {
        let Some(who) = self.caller(ctx) else {
            return tool_failure("no identity: approvals need an authenticated caller");
        };
        let approvals = self.inner.engine.approvals();
        let run = object_arg(args, "run").map(str::to_owned);
        let status = match object_arg(args, "status") {
            None => None,
            Some(s) => match ApprovalStatus::parse(s) {
                Some(st) => Some(st),
                None => {
                    return tool_failure(format!(
                        "unknown approval status `{s}` (pending, approved, rejected, closed)"
                    ));
                }
            },
        };
        let all = args.get("all").and_then(Value::as_bool).unwrap_or(false);
        if all && !access.may(Permission::Read) {
            return access.forbidden("`approvals_list` with all=true", Permission::Read);
        }
        let list = if all {
            approvals.list(&ApprovalFilter {
                run_id: run,
                status,
                limit: Some(200),
                ..ApprovalFilter::default()
            })
        } else {
            if status.is_some_and(|st| st != ApprovalStatus::Pending) {
                return tool_failure(
                    "the inbox holds pending gates only; add all=true to list other statuses",
                );
            }
            approvals.inbox(&who).map(|mut v| {
                if let Some(run) = &run {
                    v.retain(|a| &a.run_id == run);
                }
                v
            })
        };
        match list {
            Ok(mut list) => {
                list.retain(|a| access.sees(&a.workflow));
                let v = json!({"approvals": list});
                text_result(&v, Some(v.clone()), false)
            }
            Err(e) => approval_failure(&e),
        }
    }

    async fn approvals_decide(
        &self,
        mut args: Map<String, Value>,
        ctx: &RequestContext<RoleServer>,
        access: &Access,
    ) -> CallToolResult {
        let Some(who) = self.caller(ctx) else {
            return tool_failure("no identity: approvals need an authenticated caller");
        };
        let (Some(run), Some(gate)) = (
            object_arg(&args, "run").map(str::to_owned),
            object_arg(&args, "gate").map(str::to_owned),
        ) else {
            return tool_failure("`run` and `gate` are required");
        };
        args.remove("run");
        args.remove("gate");
        // A run out of the caller's scope does not exist for it.
        let approvals = self.inner.engine.approvals();
        if let Ok(a) = approvals.get(&run, &gate)
            && !access.sees(&a.workflow)
        {
            let body = json!({"error": {"code": "NOT_FOUND", "message": format!("no approval gate `{gate}` in run `{run}`")}});
            return text_result(&body, Some(body.clone()), true);
        }
        let decision: Decision = match serde_json::from_value(Value::Object(args)) {
            Ok(d) => d,
            Err(e) => return tool_failure(format!("bad decision: {e}")),
        };
        match self
            .inner
            .engine
            .approvals()
            .decide(&run, &gate, &who, decision)
            .await
        {
            Ok(a) => {
                tracing::info!(run = %run, gate = %gate, by = %who.id, "gate decided over MCP");
                let v = json!({"approval": a});
                text_result(&v, Some(v.clone()), false)
            }
            Err(e) => approval_failure(&e),
        }
    }

    async fn resources(&self, access: &Access) -> Result<Vec<Value>, ErrorData> {
        if !access.may(Permission::Read) {
            return Ok(Vec::new());
        }
        let runs = self
            .inner
            .engine
            .list(&RunFilter {
                limit: Some(LISTED_RUNS),
                ..RunFilter::default()
            })
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(runs
            .iter()
            .filter(|r| access.sees(&r.workflow))
            .map(|r| {
                json!({
                    "uri": format!("miyabi://runs/{}", r.id),
                    "name": format!("run {}", r.id),
                    "description": format!("a run of workflow `{}` ({:?})", r.workflow, r.status),
                    "mimeType": "application/json",
                })
            })
            .collect())
    }

    async fn read(&self, uri: &str, access: &Access) -> Result<ReadResourceResult, ErrorData> {
        let rest = uri
            .strip_prefix("miyabi://runs/")
            .ok_or_else(|| ErrorData::resource_not_found(format!("no resource `{uri}`"), None))?;
        let (id, events) = match rest.strip_suffix("/events") {
            Some(id) => (id, true),
            None => (rest, false),
        };
        if id.is_empty() || id.contains('/') {
            return Err(ErrorData::resource_not_found(
                format!("no resource `{uri}`"),
                None,
            ));
        }
        let engine = &self.inner.engine;
        let run = engine
            .get(id)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
            .filter(|r| access.sees(&r.workflow))
            .ok_or_else(|| ErrorData::resource_not_found(format!("no run `{id}`"), None))?;
        if !access.may(Permission::Read) {
            let roles: Vec<&str> = Permission::Read
                .roles()
                .iter()
                .map(|r| r.as_str())
                .collect();
            return Err(ErrorData::invalid_request(
                format!(
                    "FORBIDDEN: reading runs needs the {} role",
                    roles.join(" or ")
                ),
                None,
            ));
        }
        let body = if events {
            let list = engine
                .store()
                .events(id, 1, 10_000)
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            json!({"runId": run.id, "events": list})
        } else {
            serde_json::to_value(&run).unwrap_or(Value::Null)
        };
        let text = serde_json::to_string_pretty(&body)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        serde_json::from_value(json!({
            "contents": [{"uri": uri, "mimeType": "application/json", "text": text}],
        }))
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }
}

fn internal(e: serde_json::Error) -> ErrorData {
    ErrorData::internal_error(e.to_string(), None)
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .build();
        let mut info = Implementation::default();
        info.name = self.inner.name.clone();
        info.version = env!("CARGO_PKG_VERSION").into();
        let mut config = ServerConfig::new(caps);
        config.server_info = info;
        config.instructions = Some(
            "Miyabi: run durable workflows (run_<id> tools), ask agents (agent_<name>), read runs \
             (miyabi://runs/{id}, miyabi://runs/{id}/events) and decide approvals \
             (approvals_list, approvals_decide)."
                .into(),
        );
        config
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let access = self.access(&context);
        serde_json::from_value(json!({"tools": self.tool_list(&access)})).map_err(internal)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        self.call(&request.name, args, &context)
            .await
            .map(CallToolResponse::from)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let access = self.access(&context);
        let list = self.resources(&access).await?;
        serde_json::from_value(json!({"resources": list})).map_err(internal)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        serde_json::from_value(json!({"resourceTemplates": [
            {"uriTemplate": "miyabi://runs/{id}", "name": "run", "description": "A run: status, input, output, error, what it waits for", "mimeType": "application/json"},
            {"uriTemplate": "miyabi://runs/{id}/events", "name": "run events", "description": "A run's event log", "mimeType": "application/json"},
        ]}))
        .map_err(internal)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let access = self.access(&context);
        self.read(&request.uri, &access)
            .await
            .map(ReadResourceResponse::from)
    }
}
