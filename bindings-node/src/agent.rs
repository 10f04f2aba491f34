//! Agents, JS tools and memory from JS.
//!
//! The tool loop runs in Rust on napi's tokio runtime; a JS tool is called from it through one
//! threadsafe function per agent (the facade's dispatcher), whose promise the loop awaits. The
//! dispatcher never throws: it resolves with `{ok: true, value}` or `{ok: false, error}`, so a
//! JS throw becomes a tool error that goes back to the model, never a crash.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use miyabi::agent::{AgentEvent, AgentTurn, StopReason};
use miyabi::tool::{Tool, ToolContext, ToolError};
use miyabi::{Agent, AgentInput, AgentResponse, Memory};
use napi::bindgen_prelude::{Function, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi_derive::napi;
use serde_json::{Value, json};

use crate::model::{NativeModel, finish_reason, sampling, tool_call, tool_choice, usage_value};
use crate::stream::{Item, NativeError, NativeStream, Sink};

/// What the facade's tool dispatcher gets for one call.
#[napi(object)]
pub struct NativeToolCall {
    /// The tool's name.
    pub tool: String,
    /// The arguments (already checked against the tool's schema).
    #[napi(ts_type = "Record<string, unknown>")]
    pub args: Value,
    /// The model's id for this call.
    pub tool_call_id: String,
    /// The calling agent.
    pub agent: String,
    /// The workflow run, when the agent runs as a step.
    pub run_id: Option<String>,
    /// The step path, when the agent runs as a step.
    pub path: Option<String>,
    /// `run:path:call` inside a workflow, the call id otherwise.
    pub idempotency_key: String,
    /// The memory thread, if any.
    pub thread: Option<String>,
    /// The memory resource, if any.
    pub resource: Option<String>,
    /// `true`: not a call but the question "does this call need approval?", answered with
    /// `{ok: true, value: boolean}`.
    pub approval: Option<bool>,
}

type Dispatch =
    ThreadsafeFunction<NativeToolCall, Promise<Value>, NativeToolCall, napi::Status, false, true>;

/// A tool whose `execute` is a JS function.
struct JsTool {
    name: String,
    description: String,
    parameters: Value,
    approval: bool,
    /// The tool's `requiresApproval` is a JS function, asked per call through the dispatcher.
    approval_fn: bool,
    is_final: bool,
    call: Arc<Dispatch>,
}

#[async_trait]
impl Tool for JsTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    fn requires_approval(&self) -> bool {
        self.approval
    }

    fn is_final(&self) -> bool {
        self.is_final
    }

    async fn needs_approval(&self, args: &Value) -> bool {
        if !self.approval_fn {
            return self.approval;
        }
        let arg = NativeToolCall {
            tool: self.name.clone(),
            args: args.clone(),
            tool_call_id: String::new(),
            agent: String::new(),
            run_id: None,
            path: None,
            idempotency_key: String::new(),
            thread: None,
            resource: None,
            approval: Some(true),
        };
        let answer = async {
            let v = self.call.call_async_catch(arg).await.ok()?.await.ok()?;
            if v.get("ok").and_then(Value::as_bool) != Some(true) {
                let error = v.get("error").cloned().unwrap_or(Value::Null);
                tracing::warn!(tool = %self.name, %error,
                    "the tool's approval predicate failed; the call waits for a human");
                return None;
            }
            v.get("value").and_then(Value::as_bool)
        };
        // A predicate that fails or answers something else than a boolean: ask a human.
        answer.await.unwrap_or(true)
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let arg = NativeToolCall {
            tool: self.name.clone(),
            args,
            tool_call_id: ctx.call_id().to_owned(),
            agent: ctx.agent().to_owned(),
            run_id: ctx.run_id().map(str::to_owned),
            path: ctx.path().map(str::to_owned),
            idempotency_key: ctx.idempotency_key(),
            thread: ctx.thread().map(str::to_owned),
            resource: ctx.resource().map(str::to_owned),
            approval: None,
        };
        let failed = |m: String| ToolError::failed(&self.name, m);
        let run = async {
            let promise = self
                .call
                .call_async_catch(arg)
                .await
                .map_err(|e| failed(e.reason.clone()))?;
            let v = promise.await.map_err(|e| failed(e.reason.clone()))?;
            if v.get("ok").and_then(Value::as_bool) == Some(true) {
                Ok(v.get("value").cloned().unwrap_or(Value::Null))
            } else {
                let message = match v.get("error") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => "the tool failed".to_owned(),
                };
                Err(failed(message))
            }
        };
        tokio::select! {
            biased;
            _ = ctx.cancellation().cancelled() => Err(ToolError::Cancelled { tool: self.name.clone() }),
            r = run => r,
        }
    }
}

/// A tool's definition from JS.
#[napi(object)]
pub struct NativeToolDef {
    /// Its name (letters, digits, `_`, `-`).
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// JSON Schema of its arguments (an object schema).
    #[napi(ts_type = "Record<string, unknown>")]
    pub parameters: Value,
    /// Every call needs a human's approval first.
    pub requires_approval: Option<bool>,
    /// `requiresApproval` is a function: the dispatcher is asked per call (`approval: true`).
    pub approval_fn: Option<bool>,
    /// A call ends the loop; its result is the answer.
    pub is_final: Option<bool>,
}

/// An agent's settings from JS.
#[napi(object)]
pub struct NativeAgentConfig {
    /// Its name.
    pub name: String,
    /// The system message.
    pub instructions: Option<String>,
    /// Most model calls per generation (default 8).
    pub max_steps: Option<u32>,
    /// `auto`, `none`, `required` or a tool name.
    pub tool_choice: Option<String>,
    /// Structured output: a JSON Schema the answer must follow.
    #[napi(ts_type = "Record<string, unknown>")]
    pub output_schema: Option<Value>,
    /// Maximum output tokens per call.
    pub max_tokens: Option<u32>,
    /// Temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling.
    pub top_k: Option<u32>,
    /// Stop sequences.
    pub stop_sequences: Option<Vec<String>>,
    /// Seed.
    pub seed: Option<i64>,
    /// How many messages of a memory thread are read back (default 20).
    pub last_messages: Option<u32>,
    /// Show the working memory to the model and give it a `remember` tool.
    pub working_memory: Option<bool>,
}

/// An agent: a model, instructions, tools (JS functions), optional memory.
#[napi]
pub struct NativeAgent {
    pub(crate) agent: Agent,
    /// A model that could not be resolved: every call reports it.
    model_error: Option<NativeError>,
}

#[napi]
impl NativeAgent {
    /// Builds an agent. `dispatch` runs a JS tool: it gets the call and resolves with
    /// `{ok: true, value}` or `{ok: false, error}`.
    #[napi(factory)]
    pub fn create(
        config: NativeAgentConfig,
        model: &NativeModel,
        tools: Vec<NativeToolDef>,
        #[napi(
            ts_arg_type = "(call: NativeToolCall) => Promise<{ ok: true; value: unknown } | { ok: false; error: string }>"
        )]
        dispatch: Function<'_, NativeToolCall, Promise<Value>>,
        memory: Option<&NativeMemory>,
    ) -> napi::Result<Self> {
        let mut agent = Agent::new(config.name);
        let model_error = match model.get() {
            Ok(m) => {
                agent = agent.model(m);
                None
            }
            Err(e) => Some(*e),
        };
        if let Some(i) = config.instructions {
            agent = agent.instructions(i);
        }
        if let Some(n) = config.max_steps {
            agent = agent.max_steps(n as usize);
        }
        if config.tool_choice.is_some() {
            agent = agent.tool_choice(tool_choice(config.tool_choice.as_deref()));
        }
        if let Some(s) = config.output_schema {
            agent = agent.output_schema(s);
        }
        agent = agent.sampling(sampling(
            config.max_tokens,
            config.temperature,
            config.top_p,
            config.top_k,
            config.stop_sequences,
            config.seed,
        ));
        if let Some(m) = memory {
            agent = agent.memory(m.memory.clone());
        }
        if let Some(n) = config.last_messages {
            agent = agent.last_messages(n as usize);
        }
        if config.working_memory == Some(true) {
            agent = agent.working_memory(true);
        }
        if !tools.is_empty() {
            let call: Arc<Dispatch> = Arc::new(
                dispatch
                    .build_threadsafe_function::<NativeToolCall>()
                    .callee_handled::<false>()
                    .weak::<true>()
                    .build()?,
            );
            for t in tools {
                agent = agent.tool(JsTool {
                    name: t.name,
                    description: t.description.unwrap_or_default(),
                    parameters: t.parameters,
                    approval: t.requires_approval.unwrap_or(false),
                    approval_fn: t.approval_fn.unwrap_or(false),
                    is_final: t.is_final.unwrap_or(false),
                    call: Arc::clone(&call),
                });
            }
        }
        Ok(Self { agent, model_error })
    }

    /// The agent's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.agent.name().to_owned()
    }

    /// Runs the tool loop to an answer: the stream holds one `agent-response` part.
    #[napi(ts_args_type = "input: unknown")]
    pub fn generate(&self, input: Value) -> NativeStream {
        let agent = self.agent.clone();
        let start = self.input(input);
        NativeStream::spawn(|tx| async move {
            let r = match start {
                Ok(input) => agent
                    .generate(input)
                    .await
                    .map_err(|e| Box::new(NativeError::from_agent(&e))),
                Err(e) => Err(e),
            };
            let _ = tx
                .send(match r {
                    Ok(resp) => Item::Part(response_value(&resp, "agent-response")),
                    Err(e) => Item::Fail(*e),
                })
                .await;
        })
    }

    /// Runs the tool loop, streaming: `start-step`, text deltas (strings), `reasoning-delta`,
    /// `tool-call`, `tool-result`, `approval-required`, `finish-step`, and a `finish` part
    /// holding the whole response.
    #[napi(ts_args_type = "input: unknown")]
    pub fn stream(&self, input: Value) -> NativeStream {
        let agent = self.agent.clone();
        let start = self.input(input);
        NativeStream::spawn(|tx| async move {
            let input = match start {
                Ok(i) => i,
                Err(e) => {
                    let _ = tx.send(Item::Fail(*e)).await;
                    return;
                }
            };
            forward(agent.stream(input), &tx).await;
        })
    }

    /// `resume`, streaming like `stream`: the decided calls' `tool-result` parts first, then the
    /// rest of the tool loop, and a `finish` part holding the whole response.
    #[napi(ts_args_type = "checkpoint: unknown, decisions: unknown")]
    pub fn resume_stream(&self, checkpoint: Value, decisions: Value) -> NativeStream {
        let agent = self.agent.clone();
        let model_error = self.model_error.clone();
        NativeStream::spawn(|tx| async move {
            if let Some(e) = model_error {
                let _ = tx.send(Item::Fail(e)).await;
                return;
            }
            let cp = match serde_json::from_value(checkpoint) {
                Ok(cp) => cp,
                Err(e) => {
                    let _ = tx
                        .send(Item::Fail(NativeError::new(
                            "INVALID_ARGUMENT",
                            format!(
                                "not a checkpoint (pass the `checkpoint` of a response as it is): {}",
                                crate::words::serde_words(e.to_string())
                            ),
                        )))
                        .await;
                    return;
                }
            };
            forward(agent.resume_stream(cp, decisions), &tx).await;
        })
    }

    /// Continues a generation that stopped for approval (`checkpoint` from its response) with
    /// the decisions (`{approved}` for all, or `{decisions: {<call id>: {approved, ...}}}`).
    #[napi(ts_args_type = "checkpoint: unknown, decisions: unknown")]
    pub fn resume(&self, checkpoint: Value, decisions: Value) -> NativeStream {
        let agent = self.agent.clone();
        let model_error = self.model_error.clone();
        NativeStream::spawn(|tx| async move {
            let r = async {
                if let Some(e) = model_error {
                    return Err(Box::new(e));
                }
                let cp = serde_json::from_value(checkpoint).map_err(|e| {
                    Box::new(NativeError::new(
                        "INVALID_ARGUMENT",
                        format!(
                            "not a checkpoint (pass the `checkpoint` of a response as it is): {}",
                            crate::words::serde_words(e.to_string())
                        ),
                    ))
                })?;
                agent
                    .resume(cp, &decisions)
                    .await
                    .map_err(|e| Box::new(NativeError::from_agent(&e)))
            }
            .await;
            let _ = tx
                .send(match r {
                    Ok(resp) => Item::Part(response_value(&resp, "agent-response")),
                    Err(e) => Item::Fail(*e),
                })
                .await;
        })
    }
}

impl NativeAgent {
    fn input(&self, input: Value) -> Result<AgentInput, Box<NativeError>> {
        if let Some(e) = &self.model_error {
            return Err(Box::new(e.clone()));
        }
        AgentInput::from_json(self.agent.name(), input)
            .map_err(|e| Box::new(NativeError::from_agent(&e)))
    }
}

async fn send(tx: &Sink, item: Item) -> Result<(), ()> {
    tx.send(item).await.map_err(|_| ())
}

/// Sends an agent stream's events as parts until it ends or the JS side stops reading.
async fn forward(mut events: miyabi::agent::AgentStream, tx: &Sink) {
    while let Some(ev) = events.next().await {
        let item = match ev {
            Ok(ev) => match event_part(ev) {
                Some(p) => Item::Part(p),
                None => continue,
            },
            Err(e) => Item::Fail(NativeError::from_agent(&e)),
        };
        if send(tx, item).await.is_err() {
            return;
        }
    }
}

fn kebab(s: &str) -> String {
    s.replace('_', "-")
}

fn stop_reason(s: &StopReason) -> (String, Option<String>) {
    let tool = match s {
        StopReason::FinalTool { tool } => Some(tool.clone()),
        _ => None,
    };
    let kind = serde_json::to_value(s)
        .ok()
        .and_then(|v| v.get("kind").and_then(Value::as_str).map(kebab))
        .unwrap_or_else(|| "other".to_owned());
    (kind, tool)
}

fn result_value(r: &miyabi::model::ToolResult) -> Value {
    json!({
        "type": "tool-result",
        "toolCallId": r.call_id,
        "toolName": r.name,
        "output": r.content,
        "isError": r.is_error,
    })
}

fn turn_value(t: &AgentTurn) -> Value {
    json!({
        "text": t.text,
        "reasoning": t.reasoning,
        "toolCalls": t.tool_calls.iter().map(tool_call).collect::<Vec<_>>(),
        "toolResults": t.tool_results.iter().map(result_value).collect::<Vec<_>>(),
        "usage": usage_value(&t.usage),
        "costUsd": t.cost_usd,
        "finishReason": finish_reason(t.finish_reason),
        "repair": matches!(t.kind, miyabi::agent::TurnKind::Repair),
    })
}

fn pending_value(p: &miyabi::agent::PendingApproval) -> Value {
    json!({
        "toolCallId": p.call_id,
        "toolName": p.tool,
        "input": p.arguments,
        "description": p.description,
    })
}

/// A whole response as one part of type `ty`.
fn response_value(r: &AgentResponse, ty: &str) -> Value {
    let (stop, final_tool) = stop_reason(&r.stop);
    json!({
        "type": ty,
        "text": r.text,
        "object": r.object,
        "stopReason": stop,
        "finalTool": final_tool,
        "finishReason": r.turns.last().map_or("stop", |t| finish_reason(t.finish_reason)),
        "steps": r.turns.iter().map(turn_value).collect::<Vec<_>>(),
        "toolCalls": r.turns.iter().flat_map(|t| t.tool_calls.iter().map(tool_call)).collect::<Vec<_>>(),
        "toolResults": r.turns.iter().flat_map(|t| t.tool_results.iter().map(result_value)).collect::<Vec<_>>(),
        "usage": usage_value(&r.usage),
        "costUsd": r.cost_usd,
        "messages": serde_json::to_value(&r.messages).unwrap_or(Value::Null),
        "pending": r.pending.iter().map(pending_value).collect::<Vec<_>>(),
        "checkpoint": r.checkpoint.as_ref().and_then(|c| serde_json::to_value(c).ok()),
    })
}

fn event_part(ev: AgentEvent) -> Option<Value> {
    Some(match ev {
        AgentEvent::TurnStart { turn } => json!({"type": "start-step", "step": turn}),
        AgentEvent::TextDelta { text, .. } => Value::String(text),
        AgentEvent::ReasoningDelta { text, .. } => {
            json!({"type": "reasoning-delta", "text": text})
        }
        AgentEvent::ToolCall { call, .. } => tool_call(&call),
        AgentEvent::ToolResult { result, .. } => result_value(&result),
        AgentEvent::ApprovalRequired { pending } => json!({
            "type": "approval-required",
            "pending": pending.iter().map(pending_value).collect::<Vec<_>>(),
        }),
        AgentEvent::TurnFinish {
            turn,
            usage,
            cost_usd,
            finish_reason: reason,
        } => json!({
            "type": "finish-step",
            "step": turn,
            "usage": usage_value(&usage),
            "costUsd": cost_usd,
            "finishReason": finish_reason(reason),
        }),
        AgentEvent::Finish { response } => response_value(&response, "finish"),
        _ => return None,
    })
}

/// Agent memory: threads of messages and working memory, in SQLite.
#[napi]
pub struct NativeMemory {
    pub(crate) memory: Memory,
}

/// A TTL from JS milliseconds: finite, more than 0, and within what a `Duration` holds
/// (`Duration::from_secs_f64` panics beyond it).
fn ttl_of(ms: f64) -> napi::Result<Duration> {
    let bad = || {
        napi::Error::from_reason(format!(
            "`ttlMs` must be a number of milliseconds more than 0 (omit it for no expiry), got {ms}"
        ))
    };
    if !ms.is_finite() || ms <= 0.0 {
        return Err(bad());
    }
    Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| bad())
}

// Async napi methods reject with a plain status; the facade gives memory errors their class.
fn mem_err(e: miyabi::MemoryError) -> napi::Error {
    napi::Error::from_reason(e.to_string())
}

fn scope(memory: &Memory, kind: &str, id: String) -> napi::Result<miyabi::WorkingMemory> {
    match kind {
        "thread" => Ok(memory.thread(id)),
        "resource" => Ok(memory.resource(id)),
        other => Err(napi::Error::from_reason(format!(
            "a working memory belongs to a `thread` or a `resource`, not `{other}`"
        ))),
    }
}

#[napi]
impl NativeMemory {
    /// Opens memory in a SQLite file (`memory` for a private in-memory database).
    #[napi(factory)]
    pub fn open(path: String) -> napi::Result<Self, String> {
        let memory = if path == "memory" {
            Memory::in_memory()
        } else {
            Memory::sqlite(&path)
        }
        .map_err(|e| napi::Error::new("MEMORY".to_owned(), e.to_string()))?;
        Ok(Self { memory })
    }

    /// A working-memory key (null if missing or expired).
    #[napi(ts_return_type = "Promise<unknown>")]
    pub async fn get(&self, kind: String, id: String, key: String) -> napi::Result<Value> {
        let wm = scope(&self.memory, &kind, id)?;
        Ok(wm.get(&key).await.map_err(mem_err)?.unwrap_or(Value::Null))
    }

    /// Writes a key, optionally expiring after `ttlMs` (finite and more than 0; anything else
    /// is an error naming it, never a panic).
    #[napi(ts_args_type = "kind: string, id: string, key: string, value: unknown, ttlMs?: number")]
    pub async fn set(
        &self,
        kind: String,
        id: String,
        key: String,
        value: Value,
        ttl_ms: Option<f64>,
    ) -> napi::Result<()> {
        let wm = scope(&self.memory, &kind, id)?;
        match ttl_ms {
            Some(ms) => {
                let ttl = ttl_of(ms)?;
                wm.set_with_ttl(&key, crate::ints(value), ttl)
                    .await
                    .map_err(mem_err)
            }
            None => wm.set(&key, crate::ints(value)).await.map_err(mem_err),
        }
    }

    /// Merges a JSON merge patch into a key; returns the new value.
    #[napi(
        ts_args_type = "kind: string, id: string, key: string, patch: unknown",
        ts_return_type = "Promise<unknown>"
    )]
    pub async fn merge(
        &self,
        kind: String,
        id: String,
        key: String,
        patch: Value,
    ) -> napi::Result<Value> {
        let wm = scope(&self.memory, &kind, id)?;
        wm.merge(&key, crate::ints(patch)).await.map_err(mem_err)
    }

    /// Deletes a key; whether it existed.
    #[napi]
    pub async fn delete(&self, kind: String, id: String, key: String) -> napi::Result<bool> {
        let wm = scope(&self.memory, &kind, id)?;
        wm.delete(&key).await.map_err(mem_err)
    }

    /// The whole working-memory document.
    #[napi(ts_return_type = "Promise<Record<string, unknown>>")]
    pub async fn all(&self, kind: String, id: String) -> napi::Result<Value> {
        let wm = scope(&self.memory, &kind, id)?;
        Ok(Value::Object(wm.all().await.map_err(mem_err)?))
    }

    /// Deletes every key; how many there were.
    #[napi]
    pub async fn clear(&self, kind: String, id: String) -> napi::Result<u32> {
        let wm = scope(&self.memory, &kind, id)?;
        let n = wm.clear().await.map_err(mem_err)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The last `n` messages of a thread, oldest first (`{role, content}` as stored).
    #[napi(ts_return_type = "Promise<Array<Record<string, unknown>>>")]
    pub async fn last_messages(&self, thread: String, n: u32) -> napi::Result<Vec<Value>> {
        let msgs = self
            .memory
            .last_messages(&thread, n as usize)
            .await
            .map_err(mem_err)?;
        Ok(msgs
            .into_iter()
            .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
            .collect())
    }

    /// Deletes a thread with its messages and working memory; whether it existed.
    #[napi]
    pub async fn delete_thread(&self, thread: String) -> napi::Result<bool> {
        self.memory.delete_thread(&thread).await.map_err(mem_err)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::ttl_of;

    #[test]
    fn hostile_ttls_are_errors_not_panics() {
        for ms in [f64::NAN, f64::INFINITY, -5.0, 0.0, 1e300, f64::MAX] {
            let e = ttl_of(ms).unwrap_err();
            assert!(e.reason.contains("`ttlMs`"), "{}", e.reason);
        }
        assert_eq!(ttl_of(1500.0).unwrap().as_millis(), 1500);
    }
}
