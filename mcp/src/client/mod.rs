//! The MCP client: connect to any MCP server over stdio or Streamable HTTP, list and call its
//! tools, read its resources and prompts, and hand its tools to a Miyabi agent.
//!
//! ```no_run
//! use miyabi_mcp::McpClient;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let everything = McpClient::stdio("everything", "npx")
//!     .args(["-y", "@modelcontextprotocol/server-everything"])
//!     .connect()
//!     .await?;
//! let tools = everything.agent_tools().await?; // `everything_echo`, `everything_get-sum`, ...
//! let agent = miyabi::Agent::new("helper")
//!     .model("openai/gpt-4o-mini")
//!     .tools(tools);
//! # let _ = agent; Ok(()) }
//! ```

// Sampling is deprecated by the newest specification (SEP-2577) but servers still use it.
#[allow(deprecated)]
mod handler;
mod tool;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, GetPromptRequestParams,
    GetPromptResult, Prompt, ReadResourceRequestParams, ReadResourceResult, Resource,
    ResourceTemplate, ServerResult, Tool as McpTool,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient, RunningService, ServiceError};
use serde_json::Value;
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use handler::{ElicitScope, Handler, ProgressTap, Shared};
pub use handler::{ElicitationAnswer, ElicitationHandler, ElicitationRequest, elicitation_fn};
pub use tool::{ApprovalPolicy, McpAgentTool};

use crate::error::McpClientError;

/// The default per-call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How to reach a server.
#[derive(Clone)]
enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Environment values and header values may be secrets: names only.
        match self {
            Self::Stdio {
                command,
                args,
                env,
                cwd,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &env.iter().map(|(k, _)| k).collect::<Vec<_>>())
                .field("cwd", cwd)
                .finish(),
            Self::Http { url, headers } => f
                .debug_struct("Http")
                .field("url", url)
                .field(
                    "headers",
                    &headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                )
                .finish(),
        }
    }
}

/// Progress of a call, as the server reported it (`notifications/progress`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Progress {
    /// Progress so far (increases with every notification).
    pub progress: f64,
    /// The total, when the server knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// The server's message, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A callback for the progress of one call.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Options of one call: timeout, cancellation, progress.
#[derive(Clone, Default)]
pub struct CallOptions {
    /// Overrides the client's per-call timeout.
    pub timeout: Option<Duration>,
    /// Cancelling it cancels the MCP request (the server gets `notifications/cancelled`).
    pub cancel: Option<CancellationToken>,
    /// Called with every progress notification of this call.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallOptions")
            .field("timeout", &self.timeout)
            .field("cancel", &self.cancel.is_some())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// Builds an [`McpClient`]: [`McpClient::stdio`] or [`McpClient::http`], then options, then
/// [`McpClientBuilder::connect`].
pub struct McpClientBuilder {
    name: String,
    transport: Transport,
    timeout: Duration,
    approval: ApprovalPolicy,
    sampling: Option<Arc<dyn miyabi::LanguageModel>>,
    elicitation: Option<Arc<dyn ElicitationHandler>>,
    suspends: bool,
}

impl std::fmt::Debug for McpClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClientBuilder")
            .field("name", &self.name)
            .field("transport", &self.transport)
            .field("timeout", &self.timeout)
            .field("sampling", &self.sampling.is_some())
            .field("elicitation", &self.elicitation.is_some())
            .field("elicitation_suspends", &self.suspends)
            .finish_non_exhaustive()
    }
}

impl McpClientBuilder {
    fn new(name: &str, transport: Transport) -> Self {
        Self {
            name: name.to_owned(),
            transport,
            timeout: DEFAULT_TIMEOUT,
            approval: ApprovalPolicy::default(),
            sampling: None,
            elicitation: None,
            suspends: false,
        }
    }

    /// Arguments of the command (stdio only).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if let Transport::Stdio { args: a, .. } = &mut self.transport {
            a.extend(args.into_iter().map(Into::into));
        }
        self
    }

    /// One environment variable of the command (stdio only; added to the inherited
    /// environment). Values never appear in Debug output or errors.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        if let Transport::Stdio { env, .. } = &mut self.transport {
            env.push((key.into(), value.into()));
        }
        self
    }

    /// The working directory of the command (stdio only).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        if let Transport::Stdio { cwd, .. } = &mut self.transport {
            *cwd = Some(dir.into());
        }
        self
    }

    /// One HTTP header sent with every request (Streamable HTTP only), e.g.
    /// `("Authorization", "Bearer ...")`. Values never appear in Debug output or errors.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Transport::Http { headers, .. } = &mut self.transport {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// The per-call timeout ([`DEFAULT_TIMEOUT`] by default). A call that takes longer is
    /// cancelled on the server and fails with [`McpClientError::Timeout`].
    pub fn timeout(mut self, after: Duration) -> Self {
        self.timeout = after;
        self
    }

    /// Which of the server's tools need a human's approval when an agent calls them
    /// ([`ApprovalPolicy::Annotations`] by default).
    pub fn approval(mut self, policy: ApprovalPolicy) -> Self {
        self.approval = policy;
        self
    }

    /// Answers the server's sampling requests (`sampling/createMessage`) with `model`. Off by
    /// default: without it the client does not offer sampling.
    pub fn sampling(mut self, model: Arc<dyn miyabi::LanguageModel>) -> Self {
        self.sampling = Some(model);
        self
    }

    /// Answers the server's elicitation requests (`elicitation/create`) with `handler` (a
    /// human's answer). Off by default: without it the client does not offer elicitation.
    pub fn elicitation(mut self, handler: Arc<dyn ElicitationHandler>) -> Self {
        self.elicitation = Some(handler);
        self
    }

    /// Makes an elicitation during an agent's tool call inside a workflow run a durable
    /// suspension of the run, answered by a human whenever they come back. Off by default.
    ///
    /// The client answers the server `cancel` (so its call ends) and the [`McpAgentTool`]
    /// returns [`miyabi::ToolError::InputRequired`]: the agent's step suspends with `{"kind":
    /// "tool-input", "agent", "pending": [{"call_id", "tool", "arguments", "server",
    /// "message", "schema" | "url"}], "resume_schema"}`. Resuming the step with `{"<call id>":
    /// {"action": "accept", "content": {..}}}` (or `"decline"`, `"cancel"`) calls the tool
    /// again with the same arguments; when the server asks the same question (same message,
    /// schema and URL), the client answers it from the recorded answer without suspending.
    ///
    /// Elsewhere (a plain `Agent::generate`, [`McpClient::call_tool`]) elicitations go to the
    /// [`McpClientBuilder::elicitation`] handler, or are declined without one; the client offers
    /// elicitation either way.
    ///
    /// MCP does not say which call an elicitation belongs to, so in this mode the client makes
    /// one tool call at a time (the others wait): give agents that call slow tools in parallel
    /// a client each. An elicitation that arrives during another request (a resource read)
    /// while a tool call is in flight counts as that call's.
    pub fn elicitation_suspends(mut self) -> Self {
        self.suspends = true;
        self
    }

    /// Checks the configuration without connecting.
    pub fn build(self) -> Result<McpClient, McpClientError> {
        let bad = |reason: String| McpClientError::Config {
            server: self.name.clone(),
            reason,
        };
        if self.name.is_empty() {
            return Err(bad("the server name is empty".into()));
        }
        match &self.transport {
            Transport::Stdio { command, .. } if command.is_empty() => {
                return Err(bad("the command is empty".into()));
            }
            Transport::Http { url, headers } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad(format!(
                        "the URL `{url}` is not an http:// or https:// URL"
                    )));
                }
                for (k, v) in headers {
                    if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                        return Err(bad(format!("`{k}` is not a valid HTTP header name")));
                    }
                    if http::HeaderValue::from_str(v).is_err() {
                        return Err(bad(format!(
                            "the value of header `{k}` is not a valid HTTP header value"
                        )));
                    }
                }
            }
            Transport::Stdio { .. } => {}
        }
        let (changed, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            server: self.name.clone(),
            progress: StdMutex::new(handler::ProgressRoutes::default()),
            tools: StdMutex::new(None),
            changed,
            sampling: self.sampling,
            elicitation: self.elicitation,
            suspends: self.suspends,
            one_call: Arc::default(),
            scope: StdMutex::new(None),
        });
        Ok(McpClient {
            inner: Arc::new(Inner {
                name: self.name,
                transport: self.transport,
                timeout: self.timeout,
                approval: self.approval,
                shared,
                conn: Mutex::new(None),
                connects: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// Connects (spawns the command or opens the HTTP session) and initializes.
    pub async fn connect(self) -> Result<McpClient, McpClientError> {
        let client = self.build()?;
        client.connection().await?;
        Ok(client)
    }
}

type Service = RunningService<RoleClient, Handler>;

struct Inner {
    name: String,
    transport: Transport,
    timeout: Duration,
    approval: ApprovalPolicy,
    shared: Arc<Shared>,
    conn: Mutex<Option<Arc<Service>>>,
    connects: std::sync::atomic::AtomicU64,
}

/// A connection to one MCP server. Cheap to clone (shared). A call after the connection broke
/// (the server crashed, the HTTP session ended) reconnects first.
#[derive(Clone)]
pub struct McpClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for McpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClient")
            .field("name", &self.inner.name)
            .field("transport", &self.inner.transport)
            .finish_non_exhaustive()
    }
}

/// Cancels the request on the server when the call is dropped before its answer.
struct AbandonGuard {
    peer: Peer<RoleClient>,
    id: Option<rmcp::model::RequestId>,
    reason: &'static str,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let peer = self.peer.clone();
            let reason = self.reason;
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = peer
                        .notify_cancelled(rmcp::model::CancelledNotificationParam::new(
                            Some(id),
                            Some(reason.to_owned()),
                        ))
                        .await;
                });
            }
        }
    }
}

impl McpClient {
    /// A server started as a child process speaking MCP on its stdin/stdout.
    pub fn stdio(name: &str, command: impl Into<String>) -> McpClientBuilder {
        McpClientBuilder::new(
            name,
            Transport::Stdio {
                command: command.into(),
                args: Vec::new(),
                env: Vec::new(),
                cwd: None,
            },
        )
    }

    /// A server at a Streamable HTTP endpoint (`http://127.0.0.1:3001/mcp`).
    pub fn http(name: &str, url: impl Into<String>) -> McpClientBuilder {
        McpClientBuilder::new(
            name,
            Transport::Http {
                url: url.into(),
                headers: Vec::new(),
            },
        )
    }

    /// The server's name, as configured (the prefix of its agent tools).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// How many times the client connected (1 after `connect`; more after reconnections).
    pub fn connections(&self) -> u64 {
        self.inner
            .connects
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The server's name and version from the handshake, once connected.
    pub async fn server_info(&self) -> Option<rmcp::model::Implementation> {
        let conn = self.inner.conn.lock().await;
        conn.as_ref()
            .and_then(|s| s.peer().peer_info())
            .and_then(|i| i.server_info.clone())
    }

    /// A receiver that changes whenever the server says one of its lists (tools, resources,
    /// prompts) changed. The tool list is re-read on the next [`McpClient::list_tools`].
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.shared.changed.subscribe()
    }

    /// Closes the connection (stops the child process). The next call connects again.
    pub async fn close(&self) {
        let taken = self.inner.conn.lock().await.take();
        if let Some(service) = taken {
            service.cancellation_token().cancel();
        }
    }

    /// The live connection, connecting (again) if there is none or it broke.
    async fn connection(&self) -> Result<Arc<Service>, McpClientError> {
        let mut conn = self.inner.conn.lock().await;
        if let Some(s) = conn.as_ref()
            && !s.is_closed()
            && !s.peer().is_transport_closed()
        {
            return Ok(Arc::clone(s));
        }
        if let Some(old) = conn.take() {
            old.cancellation_token().cancel();
            tracing::info!(server = %self.inner.name, "MCP connection lost; reconnecting");
        }
        *self
            .inner
            .shared
            .tools
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        let service = Arc::new(self.open().await?);
        self.inner
            .connects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *conn = Some(Arc::clone(&service));
        Ok(service)
    }

    async fn open(&self) -> Result<Service, McpClientError> {
        let server = self.inner.name.clone();
        let fail = |message: String| McpClientError::Connect {
            server: server.clone(),
            message,
        };
        let handler = Handler::new(Arc::clone(&self.inner.shared));
        let connect = async {
            match &self.inner.transport {
                Transport::Stdio {
                    command,
                    args,
                    env,
                    cwd,
                } => {
                    let mut cmd = tokio::process::Command::new(command);
                    cmd.args(args);
                    for (k, v) in env {
                        cmd.env(k, v);
                    }
                    if let Some(dir) = cwd {
                        cmd.current_dir(dir);
                    }
                    let proc = crate::stdio::ChildProcess::spawn(cmd)
                        .map_err(|e| fail(format!("cannot start `{command}`: {e}")))?;
                    let tap = ProgressTap {
                        inner: proc,
                        shared: Arc::clone(&self.inner.shared),
                    };
                    handler
                        .serve(tap)
                        .await
                        .map_err(|e| fail(format!("handshake failed: {e}")))
                }
                Transport::Http { url, headers } => {
                    let mut map = HashMap::new();
                    for (k, v) in headers {
                        let name = http::HeaderName::from_bytes(k.as_bytes())
                            .map_err(|_| fail(format!("`{k}` is not a valid header name")))?;
                        let value = http::HeaderValue::from_str(v)
                            .map_err(|_| fail(format!("header `{k}` has an invalid value")))?;
                        map.insert(name, value);
                    }
                    let config = rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url.as_str())
                        .custom_headers(map);
                    let http = http_client().map_err(&fail)?;
                    let transport =
                        rmcp::transport::StreamableHttpClientTransport::with_client(http, config);
                    let tap = ProgressTap {
                        inner: transport,
                        shared: Arc::clone(&self.inner.shared),
                    };
                    handler
                        .serve(tap)
                        .await
                        .map_err(|e| fail(format!("handshake with {url} failed: {e}")))
                }
            }
        };
        match tokio::time::timeout(self.inner.timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(fail(format!(
                "no answer to the handshake within {:?}",
                self.inner.timeout
            ))),
        }
    }

    fn map_err(&self, operation: &str, e: ServiceError) -> McpClientError {
        let server = self.inner.name.clone();
        let operation = operation.to_owned();
        match e {
            ServiceError::McpError(d) => McpClientError::Remote {
                server,
                operation,
                code: d.code.0,
                message: d.message.to_string(),
            },
            ServiceError::TransportClosed => McpClientError::Disconnected {
                server,
                operation,
                message: "the connection is closed".into(),
            },
            ServiceError::TransportSend(t) => McpClientError::Disconnected {
                server,
                operation,
                message: t.to_string(),
            },
            ServiceError::UnexpectedResponse => McpClientError::Garbage {
                server,
                operation,
                message: "the result has the wrong type".into(),
            },
            ServiceError::Timeout { timeout } => McpClientError::Timeout {
                server,
                operation,
                after: timeout,
            },
            ServiceError::Cancelled { .. } => McpClientError::Cancelled { server, operation },
            other => McpClientError::Garbage {
                server,
                operation,
                message: other.to_string(),
            },
        }
    }

    /// Runs `fut` under the timeout and cancellation of `opts`.
    async fn bounded<T, F>(
        &self,
        operation: &str,
        opts: &CallOptions,
        fut: F,
    ) -> Result<T, McpClientError>
    where
        F: std::future::Future<Output = Result<T, McpClientError>>,
    {
        let after = opts.timeout.unwrap_or(self.inner.timeout);
        let cancel = opts.cancel.clone().unwrap_or_default();
        tokio::select! {
            r = tokio::time::timeout(after, fut) => match r {
                Ok(r) => r,
                Err(_) => Err(McpClientError::Timeout {
                    server: self.inner.name.clone(),
                    operation: operation.to_owned(),
                    after,
                }),
            },
            () = cancel.cancelled() => Err(McpClientError::Cancelled {
                server: self.inner.name.clone(),
                operation: operation.to_owned(),
            }),
        }
    }

    /// Runs a request on the live connection; a broken connection is dropped so the next call
    /// reconnects.
    async fn request<T, F, Fut>(
        &self,
        operation: &str,
        opts: &CallOptions,
        f: F,
    ) -> Result<T, McpClientError>
    where
        F: FnOnce(Arc<Service>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let service = self.connection().await?;
        let out = self
            .bounded(operation, opts, async {
                f(Arc::clone(&service))
                    .await
                    .map_err(|e| self.map_err(operation, e))
            })
            .await;
        if let Err(e) = &out
            && e.is_disconnect()
        {
            self.forget(&service).await;
        }
        out
    }

    async fn forget(&self, service: &Arc<Service>) {
        let mut conn = self.inner.conn.lock().await;
        if conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, service))
            && let Some(old) = conn.take()
        {
            old.cancellation_token().cancel();
        }
    }

    /// The server's tools (every page), cached until the server says the list changed.
    pub async fn list_tools(&self) -> Result<Vec<McpTool>, McpClientError> {
        let service = self.connection().await?;
        if let Some(t) = self
            .inner
            .shared
            .tools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(t);
        }
        // Read the generation first: a change announced while listing makes the next call
        // list again.
        let generation = *self.inner.shared.changed.borrow();
        let tools = self
            .request("tools/list", &CallOptions::default(), |s| async move {
                s.peer().list_all_tools().await
            })
            .await?;
        if *self.inner.shared.changed.borrow() == generation && !service.is_closed() {
            *self
                .inner
                .shared
                .tools
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(tools.clone());
        }
        Ok(tools)
    }

    /// Calls a tool with the client's timeout. `arguments` must be a JSON object (or null).
    /// A result with `isError: true` is returned as it is (see [`McpClient::call_tool_with`]).
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: Value,
    ) -> Result<CallToolResult, McpClientError> {
        self.call_tool_with(tool, arguments, CallOptions::default())
            .await
    }

    /// Calls a tool with explicit options (timeout, cancellation, progress). Dropping the
    /// returned future, the timeout and the cancellation token all cancel the request on the
    /// server (`notifications/cancelled`).
    pub async fn call_tool_with(
        &self,
        tool: &str,
        arguments: Value,
        opts: CallOptions,
    ) -> Result<CallToolResult, McpClientError> {
        self.call_tool_in(tool, arguments, opts, None).await.0
    }

    /// A tool call; with [`McpClientBuilder::elicitation_suspends`], one at a time, with
    /// `scope` (answers recorded for it) installed while it runs. Returns the outcome and the
    /// question the server asked that no recorded answer fitted (the server was told `cancel`).
    pub(crate) async fn call_tool_in(
        &self,
        tool: &str,
        arguments: Value,
        opts: CallOptions,
        scope: Option<ElicitScope>,
    ) -> (
        Result<CallToolResult, McpClientError>,
        Option<ElicitationRequest>,
    ) {
        let shared = &self.inner.shared;
        let guard = if shared.suspends {
            let cancel = opts.cancel.clone().unwrap_or_default();
            tokio::select! {
                g = shared.enter(scope) => Some(g),
                () = cancel.cancelled() => {
                    return (
                        Err(McpClientError::Cancelled {
                            server: self.inner.name.clone(),
                            operation: format!("tools/call {tool}"),
                        }),
                        None,
                    );
                }
            }
        } else {
            None
        };
        let out = self.call_tool_inner(tool, arguments, opts).await;
        let asked = guard
            .as_ref()
            .and_then(|g| g.scope.as_ref())
            .and_then(|s| s.asked());
        drop(guard);
        (out, asked)
    }

    async fn call_tool_inner(
        &self,
        tool: &str,
        arguments: Value,
        opts: CallOptions,
    ) -> Result<CallToolResult, McpClientError> {
        let operation = format!("tools/call {tool}");
        let args = match arguments {
            Value::Object(m) => Some(m),
            Value::Null => None,
            other => {
                return Err(McpClientError::Config {
                    server: self.inner.name.clone(),
                    reason: format!(
                        "the arguments of tool `{tool}` must be a JSON object, got {other}"
                    ),
                });
            }
        };
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = args;
        let shared = Arc::clone(&self.inner.shared);
        let progress = opts.progress.clone();
        let result = self
            .request(&operation, &opts, |s| async move {
                let peer = s.peer().clone();
                let handle = peer
                    .send_request_with_option(
                        ClientRequest::CallToolRequest(CallToolRequest::new(params)),
                        PeerRequestOptions::no_options(),
                    )
                    .await?;
                let mut guard = AbandonGuard {
                    peer: peer.clone(),
                    id: Some(handle.id.clone()),
                    reason: "request abandoned by the caller",
                };
                let _route = progress.map(|p| shared.route(handle.progress_token.clone(), p));
                let out = handle.await_response().await;
                guard.id = None;
                match out? {
                    ServerResult::CallToolResult(r) => Ok(r),
                    _ => Err(ServiceError::UnexpectedResponse),
                }
            })
            .await?;
        Ok(result)
    }

    /// The server's resources (every page).
    pub async fn list_resources(&self) -> Result<Vec<Resource>, McpClientError> {
        self.request("resources/list", &CallOptions::default(), |s| async move {
            s.peer().list_all_resources().await
        })
        .await
    }

    /// The server's resource templates (every page).
    pub async fn list_resource_templates(&self) -> Result<Vec<ResourceTemplate>, McpClientError> {
        self.request(
            "resources/templates/list",
            &CallOptions::default(),
            |s| async move { s.peer().list_all_resource_templates().await },
        )
        .await
    }

    /// Reads one resource.
    pub async fn read_resource(&self, uri: &str) -> Result<ReadResourceResult, McpClientError> {
        let params = ReadResourceRequestParams::new(uri.to_owned());
        self.request(
            &format!("resources/read {uri}"),
            &CallOptions::default(),
            |s| async move { s.read_resource(params).await },
        )
        .await
    }

    /// The server's prompts (every page).
    pub async fn list_prompts(&self) -> Result<Vec<Prompt>, McpClientError> {
        self.request("prompts/list", &CallOptions::default(), |s| async move {
            s.peer().list_all_prompts().await
        })
        .await
    }

    /// Gets one prompt with its arguments (a JSON object of strings, or null).
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Value,
    ) -> Result<GetPromptResult, McpClientError> {
        let mut params = GetPromptRequestParams::new(name.to_owned());
        if let Value::Object(m) = arguments {
            params.arguments = Some(m);
        }
        self.request(
            &format!("prompts/get {name}"),
            &CallOptions::default(),
            |s| async move { s.get_prompt(params).await },
        )
        .await
    }

    /// The server's tools as Miyabi agent tools, named `<server>_<tool>`, with the server's
    /// argument schemas and the client's [`ApprovalPolicy`].
    pub async fn agent_tools(&self) -> Result<Vec<Arc<dyn miyabi::Tool>>, McpClientError> {
        let tools = self.list_tools().await?;
        Ok(tools
            .into_iter()
            .map(|t| Arc::new(McpAgentTool::new(self.clone(), t)) as Arc<dyn miyabi::Tool>)
            .collect())
    }

    pub(crate) fn approval_policy(&self) -> &ApprovalPolicy {
        &self.inner.approval
    }

    /// Whether elicitations of agent tool calls in runs suspend the run.
    pub(crate) fn suspends_elicitations(&self) -> bool {
        self.inner.shared.suspends
    }
}

/// The HTTP client of Streamable HTTP connections (rustls with the `ring` provider, as the
/// model layer).
fn http_client() -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
