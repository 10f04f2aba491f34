//! An agent's stream in the AI SDK's UI message stream protocol (server-sent events of JSON
//! chunks, header `x-vercel-ai-ui-message-stream: v1`), and a chat route helper that answers
//! `useChat` and resumes generations waiting for a tool approval.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use bytes::BytesMut;

use super::error_response;
use super::sse::{SseBody, write_event, write_json_event};
use crate::agent::{AgentCheckpoint, AgentEvent, AgentStream};
use crate::error::StoreError;
use crate::model::{ContentPart, Message, Role, ToolCall, ToolResult};
use crate::{Agent, AgentInput};

/// One chunk of the UI message stream, as Miyabi writes them (field names as the protocol has
/// them: `toolCallId`, `errorText`, ...).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum UiChunk {
    /// The message begins (with its id when continuing one).
    Start {
        /// The assistant message's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
    },
    /// A model call begins.
    StartStep,
    /// A model call ended.
    FinishStep,
    /// A text part opens.
    TextStart {
        /// The part's id.
        id: String,
    },
    /// More text.
    TextDelta {
        /// The part's id.
        id: String,
        /// The text.
        delta: String,
    },
    /// A text part closes.
    TextEnd {
        /// The part's id.
        id: String,
    },
    /// A reasoning part opens.
    ReasoningStart {
        /// The part's id.
        id: String,
    },
    /// More reasoning.
    ReasoningDelta {
        /// The part's id.
        id: String,
        /// The text.
        delta: String,
    },
    /// A reasoning part closes.
    ReasoningEnd {
        /// The part's id.
        id: String,
    },
    /// A tool call with its whole input (sent as a dynamic tool: the client needs no types).
    ToolInputAvailable {
        /// The call's id.
        tool_call_id: String,
        /// The tool.
        tool_name: String,
        /// Its arguments.
        input: Value,
        /// Always true.
        dynamic: bool,
    },
    /// The call waits for a human's approval.
    ToolApprovalRequest {
        /// The approval's id (what the client answers with).
        approval_id: String,
        /// The call's id.
        tool_call_id: String,
    },
    /// The tool's result.
    ToolOutputAvailable {
        /// The call's id.
        tool_call_id: String,
        /// What the tool returned.
        output: Value,
        /// Always true.
        dynamic: bool,
    },
    /// The tool failed.
    ToolOutputError {
        /// The call's id.
        tool_call_id: String,
        /// The error the model saw.
        error_text: String,
        /// Always true.
        dynamic: bool,
    },
    /// A human refused the call.
    ToolOutputDenied {
        /// The call's id.
        tool_call_id: String,
    },
    /// The generation failed.
    Error {
        /// The error (Miyabi's errors name the provider, status and its message; never a key).
        error_text: String,
    },
    /// The message is complete.
    Finish {
        /// Why the model stopped (`stop`, `length`, `tool-calls`, ...).
        #[serde(skip_serializing_if = "Option::is_none")]
        finish_reason: Option<String>,
    },
}

/// Options of [`ui_chunks`] / [`ui_message_stream`].
#[derive(Debug, Clone, Default)]
pub struct UiStreamOptions {
    /// The id of the assistant message (sent in `start`).
    pub message_id: Option<String>,
    /// Leave reasoning out.
    pub no_reasoning: bool,
    /// Calls a human refused: their results are sent as `tool-output-denied`.
    pub denied: HashSet<String>,
}

/// Keeps the checkpoints of generations waiting for a tool approval, by approval key.
pub trait ApprovalStore: Send + Sync {
    /// Keeps `checkpoint` under `key`.
    fn put(&self, key: &str, checkpoint: &AgentCheckpoint) -> Result<(), StoreError>;
    /// Takes the checkpoint out (at most one caller gets it: a second answer finds nothing).
    fn take(&self, key: &str) -> Result<Option<AgentCheckpoint>, StoreError>;
}

/// An [`ApprovalStore`] in memory (lost on restart), or in a SQLite file so an approval can
/// wait for days and across restarts ([`MemoryApprovalStore::sqlite`]).
pub struct MemoryApprovalStore {
    inner: Backing,
}

enum Backing {
    Memory(Mutex<HashMap<String, AgentCheckpoint>>),
    Sqlite {
        path: String,
        conn: Mutex<rusqlite::Connection>,
    },
}

impl Default for MemoryApprovalStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryApprovalStore {
    /// A store in this process's memory.
    pub fn new() -> Self {
        Self {
            inner: Backing::Memory(Mutex::new(HashMap::new())),
        }
    }

    /// A store in the SQLite file at `path` (created, owner-only, if missing; table
    /// `miyabi_chat_approvals`).
    pub fn sqlite(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let shown = path.as_ref().display().to_string();
        let err = |e| crate::store::sqlite_error(&shown, e);
        let conn = rusqlite::Connection::open(path.as_ref()).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS miyabi_chat_approvals (
                 key TEXT PRIMARY KEY, checkpoint TEXT NOT NULL, created_at INTEGER NOT NULL);",
        )
        .map_err(err)?;
        Ok(Self {
            inner: Backing::Sqlite {
                path: shown,
                conn: Mutex::new(conn),
            },
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ApprovalStore for MemoryApprovalStore {
    fn put(&self, key: &str, checkpoint: &AgentCheckpoint) -> Result<(), StoreError> {
        match &self.inner {
            Backing::Memory(m) => {
                lock(m).insert(key.to_string(), checkpoint.clone());
                Ok(())
            }
            Backing::Sqlite { path, conn } => {
                let text = serde_json::to_string(checkpoint).map_err(|e| StoreError::Decode {
                    path: path.clone(),
                    place: "a chat approval checkpoint".into(),
                    message: e.to_string(),
                })?;
                lock(conn)
                    .execute(
                        "INSERT INTO miyabi_chat_approvals (key, checkpoint, created_at) VALUES (?1, ?2, ?3)",
                        rusqlite::params![key, text, crate::store::now_ms()],
                    )
                    .map_err(|e| crate::store::sqlite_error(path, e))?;
                Ok(())
            }
        }
    }

    fn take(&self, key: &str) -> Result<Option<AgentCheckpoint>, StoreError> {
        match &self.inner {
            Backing::Memory(m) => Ok(lock(m).remove(key)),
            Backing::Sqlite { path, conn } => {
                let text: Option<String> = match lock(conn).query_row(
                    "DELETE FROM miyabi_chat_approvals WHERE key = ?1 RETURNING checkpoint",
                    [key],
                    |r| r.get(0),
                ) {
                    Ok(t) => Some(t),
                    Err(rusqlite::Error::QueryReturnedNoRows) => None,
                    Err(e) => return Err(crate::store::sqlite_error(path, e)),
                };
                text.map(|t| {
                    serde_json::from_str(&t).map_err(|e| StoreError::Decode {
                        path: path.clone(),
                        place: format!("chat approval `{key}`"),
                        message: e.to_string(),
                    })
                })
                .transpose()
            }
        }
    }
}

/// Writes chunks for an agent's events: opens and closes text/reasoning parts around deltas.
struct Writer {
    next: u32,
    text: Option<String>,
    reasoning: Option<String>,
    step_open: bool,
    options: UiStreamOptions,
}

impl Writer {
    fn id(&mut self) -> String {
        self.next += 1;
        format!("p{}", self.next)
    }

    fn close(&mut self, out: &mut VecDeque<UiChunk>) {
        if let Some(id) = self.text.take() {
            out.push_back(UiChunk::TextEnd { id });
        }
        if let Some(id) = self.reasoning.take() {
            out.push_back(UiChunk::ReasoningEnd { id });
        }
    }

    fn tool_result(&self, r: ToolResult) -> UiChunk {
        if self.options.denied.contains(&r.call_id) {
            UiChunk::ToolOutputDenied {
                tool_call_id: r.call_id,
            }
        } else if r.is_error {
            UiChunk::ToolOutputError {
                tool_call_id: r.call_id,
                error_text: match r.content {
                    Value::String(s) => s,
                    other => other.to_string(),
                },
                dynamic: true,
            }
        } else {
            UiChunk::ToolOutputAvailable {
                tool_call_id: r.call_id,
                output: r.content,
                dynamic: true,
            }
        }
    }
}

/// Turns an agent's events into UI chunks: opens and closes text/reasoning parts and steps,
/// and keeps a generation waiting for approval in the approval store.
struct Pump {
    w: Writer,
    approvals: Option<Arc<dyn ApprovalStore>>,
    finish_reason: Option<String>,
    waiting: bool,
}

impl Pump {
    /// The chunks of one event (`None`: the stream ended) into `out`; true once the UI
    /// message stream is finished.
    fn on(
        &mut self,
        ev: Option<Result<AgentEvent, crate::AgentError>>,
        out: &mut VecDeque<UiChunk>,
    ) -> bool {
        let ev = match ev {
            None => {
                self.w.close(out);
                out.push_back(UiChunk::Finish {
                    finish_reason: self.finish_reason.take(),
                });
                return true;
            }
            Some(Err(e)) => {
                self.w.close(out);
                out.push_back(UiChunk::Error {
                    error_text: e.to_string(),
                });
                return true;
            }
            Some(Ok(ev)) => ev,
        };
        match ev {
            AgentEvent::TurnStart { .. } => {
                self.w.close(out);
                self.w.step_open = true;
                out.push_back(UiChunk::StartStep);
            }
            AgentEvent::TextDelta { text, .. } => {
                if text.is_empty() {
                    return false;
                }
                if let Some(id) = self.w.reasoning.take() {
                    out.push_back(UiChunk::ReasoningEnd { id });
                }
                let id = match &self.w.text {
                    Some(id) => id.clone(),
                    None => {
                        let id = self.w.id();
                        out.push_back(UiChunk::TextStart { id: id.clone() });
                        self.w.text = Some(id.clone());
                        id
                    }
                };
                out.push_back(UiChunk::TextDelta { id, delta: text });
            }
            AgentEvent::ReasoningDelta { text, .. } => {
                if text.is_empty() || self.w.options.no_reasoning {
                    return false;
                }
                if let Some(id) = self.w.text.take() {
                    out.push_back(UiChunk::TextEnd { id });
                }
                let id = match &self.w.reasoning {
                    Some(id) => id.clone(),
                    None => {
                        let id = self.w.id();
                        out.push_back(UiChunk::ReasoningStart { id: id.clone() });
                        self.w.reasoning = Some(id.clone());
                        id
                    }
                };
                out.push_back(UiChunk::ReasoningDelta { id, delta: text });
            }
            AgentEvent::ToolCall { call, .. } => {
                self.w.close(out);
                out.push_back(UiChunk::ToolInputAvailable {
                    tool_call_id: call.id,
                    tool_name: call.name,
                    input: call.arguments,
                    dynamic: true,
                });
            }
            AgentEvent::ToolResult { result, .. } => {
                self.w.close(out);
                out.push_back(self.w.tool_result(result));
            }
            AgentEvent::ApprovalRequired { .. } => {
                // The checkpoint comes with the response, at the end.
                self.waiting = true;
            }
            AgentEvent::InputRequired { pending } => {
                // The UI message stream has no part for a tool's question to a human.
                self.w.close(out);
                let calls = pending
                    .iter()
                    .map(|p| format!("`{}` ({})", p.call_id, p.tool))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push_back(UiChunk::Error {
                    error_text: format!(
                        "tool calls {calls} wait for a human's input, which this stream cannot ask for"
                    ),
                });
            }
            AgentEvent::TurnFinish {
                finish_reason: f, ..
            } => {
                self.w.close(out);
                if self.w.step_open {
                    out.push_back(UiChunk::FinishStep);
                }
                self.w.step_open = false;
                self.finish_reason = serde_json::to_value(f)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| s.replace('_', "-")));
            }
            AgentEvent::Finish { response } => {
                self.w.close(out);
                if self.w.step_open {
                    out.push_back(UiChunk::FinishStep);
                    self.w.step_open = false;
                }
                if self.waiting || !response.pending.is_empty() {
                    self.finish_reason = Some("tool-calls".into());
                    let key = uuid::Uuid::now_v7().to_string();
                    let stored = match (&self.approvals, &response.checkpoint) {
                        (Some(store), Some(cp)) => store.put(&key, cp).map_err(|e| e.to_string()),
                        (None, _) => Err(
                            "this route keeps no approvals: give agent_chat an ApprovalStore"
                                .into(),
                        ),
                        (Some(_), None) => {
                            Err("the generation waits for approval but gave no checkpoint".into())
                        }
                    };
                    match stored {
                        Ok(()) => {
                            for p in &response.pending {
                                out.push_back(UiChunk::ToolApprovalRequest {
                                    approval_id: format!("{key}:{}", p.call_id),
                                    tool_call_id: p.call_id.clone(),
                                });
                            }
                        }
                        Err(error_text) => out.push_back(UiChunk::Error { error_text }),
                    }
                }
                out.push_back(UiChunk::Finish {
                    finish_reason: self.finish_reason.clone(),
                });
                return true;
            }
        }
        false
    }
}

/// The UI message stream chunks of an agent's stream (approval requests name ids that only an
/// [`ApprovalStore`] can answer: use [`agent_chat`] for those).
pub fn ui_chunks(stream: AgentStream, options: UiStreamOptions) -> impl Stream<Item = UiChunk> {
    chunks(stream, options, None)
}

fn chunks(
    stream: AgentStream,
    options: UiStreamOptions,
    approvals: Option<Arc<dyn ApprovalStore>>,
) -> impl Stream<Item = UiChunk> {
    // Polled by the response body itself: no task and no channel between the agent's events
    // and the chunks (dropping the response drops the agent's stream, which stops it).
    let start = UiChunk::Start {
        message_id: options.message_id.clone(),
    };
    let pump = Pump {
        w: Writer {
            next: 0,
            text: None,
            reasoning: None,
            step_open: false,
            options,
        },
        approvals,
        finish_reason: None,
        waiting: false,
    };
    let state = (stream, pump, VecDeque::from([start]), false);
    futures::stream::unfold(
        state,
        |(mut stream, mut pump, mut out, mut done)| async move {
            loop {
                if let Some(c) = out.pop_front() {
                    return Some((c, (stream, pump, out, done)));
                }
                if done {
                    return None;
                }
                let ev = stream.next().await;
                done = pump.on(ev, &mut out);
            }
        },
    )
}

fn sse(chunks: impl Stream<Item = UiChunk> + Send + 'static) -> Response {
    // `None` ends the chunks: the protocol's `[DONE]` marker.
    let items = chunks.map(Some).chain(futures::stream::iter([None]));
    let mut res = SseBody::new(items, |c: Option<UiChunk>, buf: &mut BytesMut| match c {
        Some(c) => write_json_event(buf, None, None, &c),
        None => write_event(buf, None, None, b"[DONE]"),
    })
    .into_response();
    let h = res.headers_mut();
    h.insert(
        "x-vercel-ai-ui-message-stream",
        HeaderValue::from_static("v1"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// An agent's stream as a UI message stream response (`text/event-stream`, `data: <chunk>`,
/// ended by `data: [DONE]`, header `x-vercel-ai-ui-message-stream: v1`). Dropping the response
/// (the client went away) stops the generation.
///
/// ```no_run
/// # async fn route(agent: miyabi::Agent) -> axum::response::Response {
/// miyabi::web::ui_message_stream(agent.stream("Hello"), Default::default())
/// # }
/// ```
pub fn ui_message_stream(stream: AgentStream, options: UiStreamOptions) -> Response {
    sse(ui_chunks(stream, options))
}

/// What `useChat` (the AI SDK's default transport) posts: the chat's id and its UI messages.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The chat's id.
    #[serde(default)]
    pub id: Option<String>,
    /// The conversation as UI messages (`{"id", "role", "parts": [...]}`).
    pub messages: Vec<UiMessage>,
}

/// A UI message as the client sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct UiMessage {
    /// Its id.
    #[serde(default)]
    pub id: Option<String>,
    /// `user`, `assistant` or `system`.
    pub role: String,
    /// Its parts (`text`, `dynamic-tool` / `tool-<name>` with `state`, `step-start`, ...).
    #[serde(default)]
    pub parts: Vec<Value>,
}

fn tool_name(p: &Value) -> Option<String> {
    let t = p.get("type")?.as_str()?;
    if t == "dynamic-tool" {
        return p.get("toolName")?.as_str().map(str::to_string);
    }
    t.strip_prefix("tool-").map(str::to_string)
}

fn str_of<'a>(p: &'a Value, key: &str) -> Option<&'a str> {
    p.get(key).and_then(Value::as_str)
}

/// UI messages as Miyabi messages: text parts become text; finished tool parts become the
/// assistant's call and the tool's result (a refused one as an error the model reads); tool
/// parts still waiting for a decision are left out.
pub fn from_ui_messages(messages: &[UiMessage]) -> Vec<Message> {
    let mut out = Vec::new();
    for m in messages {
        let role = match m.role.as_str() {
            "system" => Role::System,
            "assistant" => Role::Assistant,
            _ => Role::User,
        };
        if role != Role::Assistant {
            let text: String = m
                .parts
                .iter()
                .filter(|p| str_of(p, "type") == Some("text"))
                .filter_map(|p| str_of(p, "text"))
                .collect();
            out.push(Message {
                role,
                content: vec![ContentPart::text(text)],
            });
            continue;
        }
        let mut content: Vec<ContentPart> = Vec::new();
        let mut results: Vec<ToolResult> = Vec::new();
        let flush = |content: &mut Vec<ContentPart>,
                     results: &mut Vec<ToolResult>,
                     out: &mut Vec<Message>| {
            if !content.is_empty() {
                out.push(Message {
                    role: Role::Assistant,
                    content: std::mem::take(content),
                });
            }
            if !results.is_empty() {
                out.push(Message::tool_results(std::mem::take(results)));
            }
        };
        for p in &m.parts {
            match str_of(p, "type") {
                Some("step-start") => {
                    if !results.is_empty() {
                        flush(&mut content, &mut results, &mut out);
                    }
                }
                Some("text") => {
                    if let Some(t) = str_of(p, "text").filter(|t| !t.is_empty()) {
                        if !results.is_empty() {
                            flush(&mut content, &mut results, &mut out);
                        }
                        content.push(ContentPart::text(t));
                    }
                }
                _ => {
                    let (Some(name), Some(id)) = (tool_name(p), str_of(p, "toolCallId")) else {
                        continue;
                    };
                    let (value, is_error) = match str_of(p, "state") {
                        Some("output-available") => {
                            (p.get("output").cloned().unwrap_or(Value::Null), false)
                        }
                        Some("output-error") => (
                            Value::String(
                                str_of(p, "errorText").unwrap_or("the tool failed").into(),
                            ),
                            true,
                        ),
                        Some("output-denied") => {
                            let reason = p
                                .get("approval")
                                .and_then(|a| str_of(a, "reason"))
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default();
                            (
                                Value::String(format!("a human refused this call{reason}")),
                                true,
                            )
                        }
                        _ => continue,
                    };
                    content.push(ContentPart::ToolCall(ToolCall {
                        id: id.to_string(),
                        name: name.clone(),
                        arguments: p.get("input").cloned().unwrap_or_else(|| json!({})),
                    }));
                    results.push(ToolResult {
                        call_id: id.to_string(),
                        name,
                        content: value,
                        is_error,
                    });
                }
            }
        }
        flush(&mut content, &mut results, &mut out);
    }
    out
}

/// A chat route's answer to `useChat`: the agent's reply as a UI message stream. When the last
/// assistant message answers approval requests, the checkpoint is taken from `approvals` and
/// the generation resumed with those decisions, continuing the same message; an approval that
/// is unknown or already answered gets 409.
///
/// ```no_run
/// use std::sync::Arc;
/// use axum::{Json, extract::State, response::Response};
/// use miyabi::web::{self, ApprovalStore, ChatRequest, MemoryApprovalStore};
///
/// #[derive(Clone)]
/// struct App { agent: miyabi::Agent, approvals: Arc<dyn ApprovalStore> }
///
/// async fn chat(State(app): State<App>, Json(req): Json<ChatRequest>) -> Response {
///     web::agent_chat(&app.agent, req, Some(app.approvals.clone()))
/// }
/// ```
pub fn agent_chat(
    agent: &Agent,
    request: ChatRequest,
    approvals: Option<Arc<dyn ApprovalStore>>,
) -> Response {
    let last = request.messages.last();
    let answered: Vec<&Value> = last
        .filter(|m| m.role == "assistant")
        .map(|m| {
            m.parts
                .iter()
                .filter(|p| {
                    str_of(p, "state") == Some("approval-responded")
                        && p.get("approval")
                            .and_then(|a| a.get("approved"))
                            .is_some_and(Value::is_boolean)
                })
                .collect()
        })
        .unwrap_or_default();
    if answered.is_empty() {
        let input = AgentInput::messages(from_ui_messages(&request.messages));
        return sse(chunks(
            agent.stream(input),
            UiStreamOptions::default(),
            approvals,
        ));
    }
    let Some(store) = approvals else {
        return error_response(
            StatusCode::CONFLICT,
            "CONFLICT",
            "this route keeps no approvals: give agent_chat an ApprovalStore",
        );
    };
    let approval_id = |p: &Value| {
        p.get("approval")
            .and_then(|a| str_of(a, "id"))
            .unwrap_or_default()
            .to_string()
    };
    let first = approval_id(answered[0]);
    let key = first.split(':').next().unwrap_or_default().to_string();
    let checkpoint = match store.take(&key) {
        Ok(Some(cp)) => cp,
        Ok(None) => {
            return error_response(
                StatusCode::CONFLICT,
                "CONFLICT",
                format!("approval `{key}` is unknown or was already answered"),
            );
        }
        Err(e) => return super::engine_error(&e.into()),
    };
    let mut decisions = serde_json::Map::new();
    let mut denied = HashSet::new();
    for p in answered {
        let id = approval_id(p);
        if id.split(':').next() != Some(key.as_str()) {
            continue;
        }
        let Some(call) = str_of(p, "toolCallId") else {
            continue;
        };
        let approval = p.get("approval").cloned().unwrap_or(Value::Null);
        let approved = approval
            .get("approved")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut d = json!({ "approved": approved });
        if let Some(r) = approval.get("reason").and_then(Value::as_str) {
            d["reason"] = Value::String(r.to_string());
        }
        if !approved {
            denied.insert(call.to_string());
        }
        decisions.insert(call.to_string(), d);
    }
    let options = UiStreamOptions {
        message_id: last.and_then(|m| m.id.clone()),
        denied,
        ..UiStreamOptions::default()
    };
    let stream = agent.resume_stream(checkpoint, json!({ "decisions": decisions }));
    sse(chunks(stream, options, Some(store)))
}
