//! The client side's answers to the server: progress routing, `list_changed` following,
//! sampling with a Miyabi model, elicitation through a user's handler or as a durable
//! suspension of the calling run (answered from recorded answers on the call's next round).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex};

use rmcp::ClientHandler;
use rmcp::model::{
    ClientCapabilities, ClientConfig, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, ElicitationAction, ErrorData, Implementation,
    JsonRpcMessage, ProgressNotificationParam, ProgressToken, ServerNotification, Tool as McpTool,
};
use rmcp::service::{NotificationContext, RequestContext, RoleClient};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Progress, ProgressFn};

/// How many progress notifications for calls not yet registered are kept (a notification can
/// overtake the registration of its call's token).
const ORPHANS: usize = 64;

#[derive(Default)]
pub(crate) struct ProgressRoutes {
    routes: HashMap<ProgressToken, ProgressFn>,
    orphans: Vec<(ProgressToken, Progress)>,
}

pub(crate) struct Shared {
    pub(crate) server: String,
    pub(crate) progress: StdMutex<ProgressRoutes>,
    pub(crate) tools: StdMutex<Option<Vec<McpTool>>>,
    pub(crate) changed: watch::Sender<u64>,
    pub(crate) sampling: Option<Arc<dyn miyabi::LanguageModel>>,
    pub(crate) elicitation: Option<Arc<dyn ElicitationHandler>>,
    /// Elicitations of agent tool calls inside runs suspend the run
    /// (`McpClientBuilder::elicitation_suspends`).
    pub(crate) suspends: bool,
    /// In suspend mode, one tool call at a time: an elicitation carries nothing that names the
    /// call it belongs to, so it belongs to the one call in flight.
    pub(crate) one_call: Arc<tokio::sync::Mutex<()>>,
    /// The call in flight that suspends on a question (none for a call that does not).
    pub(crate) scope: StdMutex<Option<Arc<ElicitScope>>>,
}

/// One suspending tool call's elicitations: the answers recorded in earlier rounds (used once
/// each, for the same question), and the first question no recorded answer fits.
pub(crate) struct ElicitScope {
    recorded: Vec<miyabi::tool::ToolInput>,
    used: StdMutex<Vec<bool>>,
    asked: StdMutex<Option<ElicitationRequest>>,
}

impl ElicitScope {
    pub(crate) fn new(recorded: Vec<miyabi::tool::ToolInput>) -> Self {
        let used = vec![false; recorded.len()];
        Self {
            recorded,
            used: StdMutex::new(used),
            asked: StdMutex::new(None),
        }
    }

    /// The recorded answer to `req`, if one was given for the same question and not used yet.
    fn answer(&self, req: &ElicitationRequest) -> Option<ElicitationAnswer> {
        let question = req.to_input_request();
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let i = self
            .recorded
            .iter()
            .enumerate()
            .position(|(i, r)| !used[i] && r.request.same_question(&question))?;
        used[i] = true;
        Some(match &self.recorded[i].answer {
            miyabi::tool::InputAnswer::Accept { content } => {
                ElicitationAnswer::Accept(content.clone())
            }
            miyabi::tool::InputAnswer::Decline => ElicitationAnswer::Decline,
            miyabi::tool::InputAnswer::Cancel => ElicitationAnswer::Cancel,
        })
    }

    /// Keeps the first unanswered question of the call.
    fn ask(&self, req: ElicitationRequest) {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        if asked.is_none() {
            *asked = Some(req);
        }
    }

    /// The question the call asked that no recorded answer fits, if any.
    pub(crate) fn asked(&self) -> Option<ElicitationRequest> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Installs a call's scope for as long as it lives (with the client's one-call lock held).
pub(crate) struct ScopeGuard {
    shared: Arc<Shared>,
    pub(crate) scope: Option<Arc<ElicitScope>>,
    _one: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        if self.scope.is_some() {
            *self.shared.scope.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

impl Shared {
    /// Waits for the client's one-call lock (suspend mode), then installs `scope` for the call
    /// (none: a call whose questions go to the handler).
    pub(crate) async fn enter(self: &Arc<Self>, scope: Option<ElicitScope>) -> ScopeGuard {
        let one = Arc::clone(&self.one_call).lock_owned().await;
        let scope = scope.map(Arc::new);
        if let Some(s) = &scope {
            *self.scope.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(s));
        }
        ScopeGuard {
            shared: Arc::clone(self),
            scope,
            _one: one,
        }
    }
}

/// Removes a progress route when the call ends.
pub(crate) struct RouteGuard {
    shared: Arc<Shared>,
    token: ProgressToken,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        let mut p = self
            .shared
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        p.routes.remove(&self.token);
    }
}

impl Shared {
    /// Sends the progress of the call with `token` to `f` until the guard is dropped.
    pub(crate) fn route(self: &Arc<Self>, token: ProgressToken, f: ProgressFn) -> RouteGuard {
        let early: Vec<Progress> = {
            let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
            p.routes.insert(token.clone(), Arc::clone(&f));
            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut p.orphans)
                .into_iter()
                .partition(|(t, _)| *t == token);
            p.orphans = rest;
            mine.into_iter().map(|(_, pr)| pr).collect()
        };
        for pr in early {
            f(pr);
        }
        RouteGuard {
            shared: Arc::clone(self),
            token,
        }
    }

    /// Hands a progress notification to its call's callback (or keeps it for a call not yet
    /// registered). Called by [`ProgressTap`] in the order messages arrive, so every progress
    /// notification a server sends before its result reaches the callback before the call
    /// returns (rmcp's own notification handlers run in spawned tasks, in no fixed order with
    /// the response).
    fn progress(&self, params: ProgressNotificationParam) {
        let pr = Progress {
            progress: params.progress,
            total: params.total,
            message: params.message,
        };
        let f = {
            let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
            match p.routes.get(&params.progress_token) {
                Some(f) => Some(Arc::clone(f)),
                None => {
                    if p.orphans.len() >= ORPHANS {
                        p.orphans.remove(0);
                    }
                    p.orphans.push((params.progress_token, pr.clone()));
                    None
                }
            }
        };
        if let Some(f) = f {
            f(pr);
        }
    }

    fn list_changed(&self, what: &str) {
        if what == "tools" {
            *self.tools.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        tracing::debug!(server = %self.server, list = what, "MCP list changed");
        self.changed.send_modify(|g| *g += 1);
    }
}

/// A question a server asks a human (`elicitation/create`): a message and the JSON Schema of
/// the answer it wants (form mode), or a URL to open (URL mode).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ElicitationRequest {
    /// The server's name, as configured.
    pub server: String,
    /// What the server asks.
    pub message: String,
    /// The JSON Schema of the answer (form mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// The URL the human should open (URL mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl ElicitationRequest {
    /// The question as an agent tool's [`miyabi::tool::InputRequest`] (the server's name as
    /// the detail `server`).
    pub fn to_input_request(&self) -> miyabi::tool::InputRequest {
        miyabi::tool::InputRequest {
            message: self.message.clone(),
            schema: self.schema.clone(),
            url: self.url.clone(),
            details: serde_json::Map::new(),
        }
        .detail("server", self.server.clone())
    }
}

/// A human's answer to an [`ElicitationRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum ElicitationAnswer {
    /// The human answered; the value must match the request's schema.
    Accept(Value),
    /// The human said no.
    Decline,
    /// The human dismissed the question.
    Cancel,
}

/// Answers elicitation requests: typically shows the question to a human (a UI, a chat, an
/// approval inbox) and waits for the answer. The MCP call that asked waits meanwhile.
pub trait ElicitationHandler: Send + Sync {
    /// Answers one request.
    fn elicit(
        &self,
        request: ElicitationRequest,
    ) -> Pin<Box<dyn Future<Output = ElicitationAnswer> + Send + '_>>;
}

struct FnElicitation<F>(F);

impl<F, Fut> ElicitationHandler for FnElicitation<F>
where
    F: Fn(ElicitationRequest) -> Fut + Send + Sync,
    Fut: Future<Output = ElicitationAnswer> + Send + 'static,
{
    fn elicit(
        &self,
        request: ElicitationRequest,
    ) -> Pin<Box<dyn Future<Output = ElicitationAnswer> + Send + '_>> {
        Box::pin((self.0)(request))
    }
}

/// An [`ElicitationHandler`] from an async closure.
///
/// ```
/// use miyabi_mcp::{elicitation_fn, ElicitationAnswer};
/// let handler = elicitation_fn(|req| async move {
///     println!("{} asks: {}", req.server, req.message);
///     ElicitationAnswer::Decline
/// });
/// # let _ = handler;
/// ```
pub fn elicitation_fn<F, Fut>(f: F) -> Arc<dyn ElicitationHandler>
where
    F: Fn(ElicitationRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ElicitationAnswer> + Send + 'static,
{
    Arc::new(FnElicitation(f))
}

/// Wraps a client transport and routes progress notifications as they arrive.
pub(crate) struct ProgressTap<T> {
    pub(crate) inner: T,
    pub(crate) shared: Arc<Shared>,
}

impl<T> Transport<RoleClient> for ProgressTap<T>
where
    T: Transport<RoleClient>,
{
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let msg = self.inner.receive().await?;
        if let JsonRpcMessage::Notification(n) = &msg
            && let ServerNotification::ProgressNotification(p) = &n.notification
        {
            self.shared.progress(p.params.clone());
        }
        Some(msg)
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

pub(crate) struct Handler {
    shared: Arc<Shared>,
}

impl Handler {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// The text of sampling content (text parts joined; other parts described).
fn sampling_text(content: &Value) -> String {
    let parts: Vec<&Value> = match content {
        Value::Array(a) => a.iter().collect(),
        v => vec![v],
    };
    parts
        .iter()
        .map(|p| match p.get("type").and_then(Value::as_str) {
            Some("text") => p
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            Some(other) => format!("[{other} content]"),
            None => String::new(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        let mut caps = ClientCapabilities::default();
        if self.shared.sampling.is_some() {
            caps.sampling = serde_json::from_value(json!({})).ok();
        }
        if self.shared.elicitation.is_some() || self.shared.suspends {
            caps.elicitation = serde_json::from_value(json!({"form": {}, "url": {}})).ok();
        }
        let mut info = Implementation::default();
        info.name = "miyabi".into();
        info.version = env!("CARGO_PKG_VERSION").into();
        ClientConfig::new(caps, info)
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.shared.list_changed("tools");
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.shared.list_changed("resources");
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.shared.list_changed("prompts");
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let Some(model) = &self.shared.sampling else {
            return Err(ErrorData::invalid_request(
                "sampling is not enabled on this client",
                None,
            ));
        };
        let raw = serde_json::to_value(&params)
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let mut req = miyabi::model::ModelRequest::default();
        if let Some(system) = raw.get("systemPrompt").and_then(Value::as_str) {
            req.messages.push(miyabi::model::Message::system(system));
        }
        for m in raw
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = sampling_text(m.get("content").unwrap_or(&Value::Null));
            match m.get("role").and_then(Value::as_str) {
                Some("assistant") => req.messages.push(miyabi::model::Message::assistant(text)),
                _ => req.messages.push(miyabi::model::Message::user(text)),
            }
        }
        req.sampling.max_tokens = Some(params.max_tokens);
        req.sampling.temperature = params.temperature.map(f64::from);
        if let Some(stop) = raw.get("stopSequences").and_then(Value::as_array) {
            req.sampling.stop = stop
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        let res = model.generate(&req).await.map_err(|e| {
            tracing::warn!(server = %self.shared.server, error = %e, "sampling request failed");
            ErrorData::internal_error(format!("the sampling model failed: {e}"), None)
        })?;
        let stop = match res.finish_reason {
            miyabi::model::FinishReason::Length => CreateMessageResult::STOP_REASON_END_MAX_TOKEN,
            _ => CreateMessageResult::STOP_REASON_END_TURN,
        };
        let model_name = res.model.clone().unwrap_or_else(|| "miyabi".to_owned());
        serde_json::from_value(json!({
            "model": model_name,
            "stopReason": stop,
            "role": "assistant",
            "content": {"type": "text", "text": res.text()},
        }))
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let raw = serde_json::to_value(&request)
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let req = ElicitationRequest {
            server: self.shared.server.clone(),
            message: raw
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            schema: raw.get("requestedSchema").cloned(),
            url: raw.get("url").and_then(Value::as_str).map(str::to_owned),
        };
        let scope = self
            .shared
            .scope
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let answer = match (scope, &self.shared.elicitation) {
            // A call inside a run: the answer recorded for this question, else the run
            // suspends (the server is told `cancel`, which ends its call).
            (Some(scope), _) => match scope.answer(&req) {
                Some(answer) => answer,
                None => {
                    tracing::info!(server = %self.shared.server, "elicitation: the calling run will wait for a human");
                    scope.ask(req);
                    ElicitationAnswer::Cancel
                }
            },
            (None, Some(handler)) => handler.elicit(req).await,
            (None, None) => ElicitationAnswer::Decline,
        };
        Ok(match answer {
            ElicitationAnswer::Accept(v) => {
                let mut r = ElicitResult::new(ElicitationAction::Accept);
                r.content = Some(v);
                r
            }
            ElicitationAnswer::Decline => ElicitResult::new(ElicitationAction::Decline),
            ElicitationAnswer::Cancel => ElicitResult::new(ElicitationAction::Cancel),
        })
    }
}
