//! The tool loop: model call → tool calls (concurrently) → results → model call, with approval
//! suspension, structured output and its repair, usage, streaming and memory.

use std::collections::HashMap;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::machine::{Action, Job, Machine};
use super::{
    Agent, AgentCheckpoint, AgentError, AgentEvent, AgentInput, AgentResponse, InstructionContext,
    Instructions, PendingApproval, PendingInput, StopReason,
};
use crate::memory::{StoredMessage, WorkingMemory};
use crate::model::internals::ResponseCollector;
use crate::model::{
    LanguageModel, Message, ModelError, ModelRequest, ModelResponse, ResponseFormat, Role,
    StreamEvent, ToolCall, ToolChoice, ToolResult, Usage,
};
use crate::tool::{InputAnswer, InputRequest, ToolContext, ToolError, ToolInput};
use crate::workflow::StepContext;

/// How long a step's per-turn checkpoint is kept at most.
const PROGRESS_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The built-in tool of [`Agent::working_memory`].
pub(crate) const REMEMBER_TOOL: &str = "remember";

pub(crate) type Sink = tokio::sync::mpsc::UnboundedSender<Result<AgentEvent, AgentError>>;

/// Where a generation runs: detached, or as a workflow step.
pub(crate) struct Env {
    pub(crate) cancel: CancellationToken,
    pub(crate) step: Option<StepContext>,
}

impl Env {
    pub(crate) fn detached() -> Self {
        Self {
            cancel: CancellationToken::new(),
            step: None,
        }
    }

    pub(crate) fn for_step(ctx: &StepContext) -> Self {
        Self {
            cancel: ctx.cancellation().clone(),
            step: Some(ctx.clone()),
        }
    }
}

/// The tool calls of the last turn while some wait for approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PendingTurn {
    pub(crate) calls: Vec<ToolCall>,
    /// Results by call position; `None` until the call ran (or was declined/refused).
    pub(crate) results: Vec<Option<ToolResult>>,
    /// The calls waiting for a human.
    pub(crate) awaiting: Vec<PendingApproval>,
    /// Per call position, the tool's answer to "does this call need approval?" once asked
    /// ([`crate::Tool::needs_approval`]); kept so a resume does not ask again.
    #[serde(default)]
    pub(crate) approval: Vec<Option<bool>>,
    /// Per call position, the question the call waits on ([`ToolError::InputRequired`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) asking: Vec<Option<InputRequest>>,
    /// Per call position, the questions it asked before and their answers: a call with some
    /// and no result runs again with them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) inputs: Vec<Vec<ToolInput>>,
    /// Per call position, the arguments it ran with when an approval changed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) edited: Vec<Option<Value>>,
}

impl PendingTurn {
    /// The arguments call `i` runs with: a human's edited ones, else the model's.
    pub(crate) fn arguments(&self, i: usize) -> Option<&Value> {
        match self.edited.get(i) {
            Some(Some(v)) => Some(v),
            _ => self.calls.get(i).map(|c| &c.arguments),
        }
    }

    /// The calls waiting for a human's input, with their questions.
    pub(crate) fn waiting_inputs(&self) -> Vec<PendingInput> {
        self.asking
            .iter()
            .enumerate()
            .filter_map(|(i, q)| {
                let (q, call) = (q.as_ref()?, self.calls.get(i)?);
                Some(PendingInput {
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    arguments: self.arguments(i).cloned().unwrap_or(Value::Null),
                    request: q.clone(),
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Decision {
    Approve { arguments: Option<Value> },
    Decline { reason: Option<String> },
}

/// Human decisions on pending tool calls, or answers to their questions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Decisions {
    all: Option<Decision>,
    per_call: HashMap<String, Decision>,
    answers: HashMap<String, InputAnswer>,
}

impl Decisions {
    /// Resume data for what `st` waits for: approval decisions while a call waits for one
    /// (approvals come first), else answers to the calls' questions.
    pub(crate) fn parse_for(
        agent: &str,
        st: &AgentCheckpoint,
        v: &Value,
    ) -> Result<Self, AgentError> {
        let inputs = st.pending_inputs();
        if inputs.is_empty() || !st.pending().is_empty() {
            return Self::parse(agent, v);
        }
        Self::parse_answers(agent, &inputs, v)
    }

    /// `{"<call id>": {"action": "accept" | "decline" | "cancel", "content"?}}`, each answer
    /// checked against its call's question.
    fn parse_answers(agent: &str, waiting: &[PendingInput], v: &Value) -> Result<Self, AgentError> {
        let bad = |m: String| AgentError::BadResume {
            agent: agent.to_owned(),
            message: m,
        };
        let ids = waiting
            .iter()
            .map(|p| format!("`{}`", p.call_id))
            .collect::<Vec<_>>()
            .join(", ");
        let map = match v {
            Value::Object(m) if !m.is_empty() => m,
            other => {
                return Err(bad(format!(
                    "tool calls wait for input: answer with {{\"<call id>\": {{\"action\": \"accept\", \"content\": {{..}}}}}} for {ids}, got {other}"
                )));
            }
        };
        let mut out = Self::default();
        for (id, a) in map {
            let Some(p) = waiting.iter().find(|p| p.call_id == *id) else {
                return Err(bad(format!(
                    "no tool call `{id}` waits for input (waiting: {ids})"
                )));
            };
            let answer: InputAnswer = serde_json::from_value(a.clone())
                .map_err(|e| bad(format!("the answer for call `{id}`: {e}")))?;
            p.request
                .check(&answer)
                .map_err(|e| bad(format!("the answer for call `{id}`: {e}")))?;
            out.answers.insert(id.clone(), answer);
        }
        Ok(out)
    }

    /// The answer given to call `id`'s question, if any.
    pub(super) fn answer_for(&self, id: &str) -> Option<&InputAnswer> {
        self.answers.get(id)
    }

    fn one(agent: &str, v: &Value) -> Result<Decision, AgentError> {
        let bad = |m: String| AgentError::BadResume {
            agent: agent.to_owned(),
            message: m,
        };
        if let Some(b) = v.as_bool() {
            return Ok(if b {
                Decision::Approve { arguments: None }
            } else {
                Decision::Decline { reason: None }
            });
        }
        let approved = v.get("approved").and_then(Value::as_bool).ok_or_else(|| {
            bad(format!(
                "a decision needs \"approved\": true or false, got {v}"
            ))
        })?;
        if approved {
            Ok(Decision::Approve {
                arguments: v.get("arguments").filter(|a| !a.is_null()).cloned(),
            })
        } else {
            Ok(Decision::Decline {
                reason: v.get("reason").and_then(Value::as_str).map(str::to_owned),
            })
        }
    }

    /// `{"approved": bool, "reason"?}` for all pending calls, or `{"decisions": {"<call id>":
    /// decision}}` / `{"decisions": [{"call_id": .., "approved": ..}]}` per call.
    pub(crate) fn parse(agent: &str, v: &Value) -> Result<Self, AgentError> {
        let mut out = Self::default();
        match v.get("decisions") {
            Some(Value::Object(map)) => {
                for (id, d) in map {
                    out.per_call.insert(id.clone(), Self::one(agent, d)?);
                }
            }
            Some(Value::Array(items)) => {
                for d in items {
                    let id = d.get("call_id").and_then(Value::as_str).ok_or_else(|| {
                        AgentError::BadResume {
                            agent: agent.to_owned(),
                            message: format!("a decision in a list needs \"call_id\", got {d}"),
                        }
                    })?;
                    out.per_call.insert(id.to_owned(), Self::one(agent, d)?);
                }
            }
            Some(other) => {
                return Err(AgentError::BadResume {
                    agent: agent.to_owned(),
                    message: format!("\"decisions\" must be an object or a list, got {other}"),
                });
            }
            None => out.all = Some(Self::one(agent, v)?),
        }
        Ok(out)
    }

    pub(super) fn for_call(&self, id: &str) -> Option<&Decision> {
        self.per_call.get(id).or(self.all.as_ref())
    }
}

fn add_usage(total: &mut Usage, u: &Usage) {
    total.input_tokens += u.input_tokens;
    total.output_tokens += u.output_tokens;
    total.cached_input_tokens += u.cached_input_tokens;
    total.cache_write_tokens += u.cache_write_tokens;
    total.reasoning_tokens += u.reasoning_tokens;
}

/// Drops leading messages that cannot start a conversation (tool results whose calls were cut
/// off by the window, assistant turns before the first user message).
fn sanitize_history(mut msgs: Vec<StoredMessage>) -> Vec<Message> {
    let start = msgs
        .iter()
        .position(|m| m.message.role == Role::User)
        .unwrap_or(msgs.len());
    msgs.drain(..start);
    msgs.into_iter().map(|m| m.message).collect()
}

impl Agent {
    fn check(&self) -> Result<&dyn LanguageModel, AgentError> {
        if let Some(m) = &self.config_error {
            return Err(AgentError::Config {
                agent: self.name.to_string(),
                message: m.clone(),
            });
        }
        if self.working_memory && self.memory.is_none() {
            return Err(AgentError::Config {
                agent: self.name.to_string(),
                message: "working_memory(true) needs memory(..)".into(),
            });
        }
        self.model.as_deref().ok_or_else(|| AgentError::Config {
            agent: self.name.to_string(),
            message: "no model: call .model(\"provider/model\") or .model(Arc<dyn LanguageModel>)"
                .into(),
        })
    }

    fn mem_err(&self, e: crate::memory::MemoryError) -> AgentError {
        AgentError::Memory {
            agent: self.name.to_string(),
            source: e,
        }
    }

    /// The working memory a generation with these ids uses: the resource's, else the thread's.
    fn working(&self, thread: Option<&str>, resource: Option<&str>) -> Option<WorkingMemory> {
        let memory = self.memory.as_ref()?;
        match (resource, thread) {
            (Some(r), _) => Some(memory.resource(r)),
            (None, Some(t)) => Some(memory.thread(t)),
            (None, None) => None,
        }
    }

    /// The state a new generation starts from: memory history, then the input.
    pub(crate) async fn start_state(
        &self,
        input: AgentInput,
        _env: &Env,
    ) -> Result<AgentCheckpoint, AgentError> {
        self.check()?;
        if input.messages.is_empty() {
            return Err(AgentError::BadInput {
                agent: self.name.to_string(),
                message: "no prompt and no messages".into(),
            });
        }
        let history = match (&self.memory, &input.thread) {
            (Some(memory), Some(thread)) if self.last_messages > 0 => sanitize_history(
                memory
                    .last_messages(thread, self.last_messages)
                    .await
                    .map_err(|e| self.mem_err(e))?,
            ),
            _ => Vec::new(),
        };
        let history_len = history.len();
        let mut messages = history;
        messages.extend(input.messages);
        Ok(AgentCheckpoint {
            agent: self.name.to_string(),
            messages,
            history: history_len,
            turns: Vec::new(),
            thread: input.thread,
            resource: input.resource,
            context: input.context,
            repaired: false,
            pending: None,
        })
    }

    async fn request(&self, st: &AgentCheckpoint, env: &Env) -> Result<ModelRequest, AgentError> {
        let mut system = match &self.instructions {
            Instructions::None => String::new(),
            Instructions::Static(s) => s.to_string(),
            Instructions::Dynamic(f) => {
                let run_state = env.step.as_ref().map(StepContext::state_snapshot);
                f(&InstructionContext {
                    context: &st.context,
                    thread: st.thread.as_deref(),
                    resource: st.resource.as_deref(),
                    run_state: run_state.as_ref(),
                })
            }
        };
        if self.working_memory
            && let Some(wm) = self.working(st.thread.as_deref(), st.resource.as_deref())
        {
            let doc = wm.all().await.map_err(|e| self.mem_err(e))?;
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str(&format!(
                "Working memory ({}; save lasting facts with the `{REMEMBER_TOOL}` tool):\n{}",
                wm.scope(),
                Value::Object(doc)
            ));
        }
        let mut messages = Vec::with_capacity(st.messages.len() + 1);
        if !system.is_empty() {
            messages.push(Message::system(system));
        }
        messages.extend(st.messages.iter().cloned());
        Ok(ModelRequest {
            messages,
            tools: self.tools.iter().map(|t| t.spec.clone()).collect(),
            tool_choice: if self.tools.is_empty() {
                ToolChoice::Auto
            } else {
                self.tool_choice.clone()
            },
            response_format: self.output.as_ref().map(|s| ResponseFormat {
                name: "output".into(),
                schema: s.json().clone(),
                strict: false,
            }),
            sampling: self.sampling.clone(),
            ..ModelRequest::default()
        })
    }

    async fn call_model(
        &self,
        model: &dyn LanguageModel,
        req: &ModelRequest,
        turn: usize,
        sink: Option<&Sink>,
        env: &Env,
    ) -> Result<ModelResponse, AgentError> {
        let agent = || self.name.to_string();
        let call = async {
            let Some(tx) = sink else {
                return model.generate(req).await;
            };
            let mut stream = match model.stream(req).await {
                Ok(s) => s,
                // A model that cannot stream still answers; its text arrives as one delta.
                Err(ModelError::Unsupported(_)) => {
                    let r = model.generate(req).await?;
                    let text = r.text();
                    if !text.is_empty() {
                        let _ = tx.send(Ok(AgentEvent::TextDelta { turn, text }));
                    }
                    return Ok(r);
                }
                Err(e) => return Err(e),
            };
            let mut collector = ResponseCollector::new();
            while let Some(ev) = stream.next().await {
                let ev = ev?;
                match &ev {
                    StreamEvent::TextDelta { text } => {
                        let _ = tx.send(Ok(AgentEvent::TextDelta {
                            turn,
                            text: text.clone(),
                        }));
                    }
                    StreamEvent::ReasoningDelta { text } => {
                        let _ = tx.send(Ok(AgentEvent::ReasoningDelta {
                            turn,
                            text: text.clone(),
                        }));
                    }
                    _ => {}
                }
                collector.push(ev);
            }
            if !collector.finished() {
                return Err(ModelError::decode(
                    "",
                    "",
                    "stream ended without a finish event",
                ));
            }
            Ok(collector.into_response())
        };
        tokio::select! {
            biased;
            _ = env.cancel.cancelled() => Err(AgentError::Cancelled { agent: agent() }),
            r = call => r.map_err(|source| AgentError::Model { agent: agent(), source }),
        }
    }

    /// Runs the jobs of an [`Action::RunTools`] concurrently. Tools see a cancellation
    /// through their own token and may finish cleanly; the engine drops the step after its
    /// grace period if one does not.
    async fn run_jobs(
        &self,
        jobs: Vec<Job>,
        st: &AgentCheckpoint,
        env: &Env,
    ) -> Result<Vec<(usize, Result<Value, ToolError>)>, AgentError> {
        let calls = st
            .pending
            .as_ref()
            .map(|p| p.calls.as_slice())
            .unwrap_or_default();
        let wm = self.working(st.thread.as_deref(), st.resource.as_deref());
        let futures = jobs.into_iter().filter_map(|job| {
            let (call, tool) = (calls.get(job.call)?, self.tools.get(job.tool)?);
            let inputs = st
                .pending
                .as_ref()
                .and_then(|p| p.inputs.get(job.call).cloned())
                .unwrap_or_default();
            let ctx = ToolContext {
                inputs,
                agent: self.name.clone(),
                call_id: call.id.clone(),
                run_id: env.step.as_ref().map(|s| s.run_id().to_owned()),
                path: env.step.as_ref().map(|s| s.path().to_owned()),
                thread: st.thread.clone(),
                resource: st.resource.clone(),
                memory: wm.clone(),
                cancel: env.cancel.child_token(),
                step: env.step.clone(),
            };
            let span = tracing::info_span!("tool", tool = %call.name, call_id = %call.id);
            Some(
                async move {
                    let out = tool.invoke(&ctx, job.arguments).await;
                    if let Err(e) = &out {
                        tracing::debug!(error = %e, "tool call failed; the error goes back to the model");
                    }
                    (job.call, out)
                }
                .instrument(span),
            )
        });
        let done = futures::future::join_all(futures).await;
        if env.cancel.is_cancelled() {
            return Err(AgentError::Cancelled {
                agent: self.name.to_string(),
            });
        }
        Ok(done)
    }

    /// Runs the loop from a state until it finishes or waits for approval.
    pub(crate) async fn drive(
        &self,
        st: AgentCheckpoint,
        sink: Option<&Sink>,
        env: &Env,
        decisions: Option<Decisions>,
    ) -> Result<AgentResponse, AgentError> {
        let model = self.check()?;
        let span = tracing::info_span!(
            "agent",
            agent = %self.name,
            run_id = env.step.as_ref().map(|s| s.run_id().to_owned()).unwrap_or_default(),
            path = env.step.as_ref().map(|s| s.path().to_owned()).unwrap_or_default(),
        );
        self.drive_inner(model, st, sink, env, decisions)
            .instrument(span)
            .await
    }

    /// The driver: executes what the [`Machine`] decides and reports the outcomes back. It
    /// owns the effects (model calls, tools, progress saves, events, memory), never a rule.
    async fn drive_inner(
        &self,
        model: &dyn LanguageModel,
        mut st: AgentCheckpoint,
        sink: Option<&Sink>,
        env: &Env,
        decisions: Option<Decisions>,
    ) -> Result<AgentResponse, AgentError> {
        let mut machine = Machine::new(self);
        let mut action = machine.start(&mut st, decisions)?;
        loop {
            action = match action {
                Action::CallModel { turn, kind } => {
                    self.save_progress(&st, env).await?;
                    if let Some(tx) = sink {
                        let _ = tx.send(Ok(AgentEvent::TurnStart { turn }));
                    }
                    let req = self.request(&st, env).await?;
                    let resp = self.call_model(model, &req, turn, sink, env).await?;
                    tracing::debug!(
                        turn,
                        tool_calls = resp.tool_calls().len(),
                        input_tokens = resp.usage.input_tokens,
                        output_tokens = resp.usage.output_tokens,
                        "agent turn"
                    );
                    let next = machine.answered(&mut st, kind, &resp);
                    if let (Some(tx), Some(p)) = (sink, &st.pending) {
                        for call in &p.calls {
                            let _ = tx.send(Ok(AgentEvent::ToolCall {
                                turn,
                                call: call.clone(),
                            }));
                        }
                    }
                    if st.pending.is_none() {
                        self.turn_finished(&st, turn, sink, env);
                    }
                    next?
                }
                Action::CheckApprovals { checks, .. } => {
                    let answers = futures::future::join_all(checks.into_iter().map(|job| {
                        let tool = self.tools.get(job.tool);
                        async move {
                            let needs = match tool {
                                Some(t) => t.tool.needs_approval(&job.arguments).await,
                                None => true,
                            };
                            (job.call, needs)
                        }
                    }))
                    .await;
                    machine.approvals_checked(&mut st, answers)
                }
                Action::RunTools { turn, jobs } => {
                    self.save_progress(&st, env).await?;
                    let outcomes = self.run_jobs(jobs, &st, env).await?;
                    let next = machine.tools_ran(&mut st, outcomes);
                    if let Some(tx) = sink {
                        let results = match &st.pending {
                            Some(p) => p.results.iter().flatten().cloned().collect(),
                            None => st
                                .turns
                                .get(turn)
                                .map(|t| t.tool_results.clone())
                                .unwrap_or_default(),
                        };
                        for result in results {
                            let _ = tx.send(Ok(AgentEvent::ToolResult { turn, result }));
                        }
                    }
                    if st.pending.is_none() {
                        self.turn_finished(&st, turn, sink, env);
                    }
                    next
                }
                Action::AwaitApproval { pending } => {
                    // The calls that ran are part of the state a resume continues from.
                    self.save_progress(&st, env).await?;
                    tracing::info!(pending = pending.len(), "agent waits for tool approval");
                    if let Some(tx) = sink {
                        let _ = tx.send(Ok(AgentEvent::ApprovalRequired {
                            pending: pending.clone(),
                        }));
                    }
                    return Ok(self.respond(st, StopReason::ApprovalRequired, None, pending));
                }
                Action::AwaitInput { pending } => {
                    self.save_progress(&st, env).await?;
                    tracing::info!(pending = pending.len(), "agent waits for a human's input");
                    if let Some(tx) = sink {
                        let _ = tx.send(Ok(AgentEvent::InputRequired { pending }));
                    }
                    return Ok(self.respond(st, StopReason::InputRequired, None, Vec::new()));
                }
                Action::Finish { stop, object } => {
                    return self.finish(st, stop, object, env).await;
                }
            };
        }
    }

    /// The working memory holding a step's per-turn checkpoint.
    fn progress_scope(&self, env: &Env) -> Option<WorkingMemory> {
        let (memory, ctx) = (self.progress.as_ref()?, env.step.as_ref()?);
        Some(memory.scope(crate::memory::Scope::Resource(format!(
            "miyabi.agent:{}",
            ctx.idempotency_key()
        ))))
    }

    async fn save_progress(&self, st: &AgentCheckpoint, env: &Env) -> Result<(), AgentError> {
        if let Some(wm) = self.progress_scope(env) {
            wm.set_with_ttl("checkpoint", st, PROGRESS_TTL)
                .await
                .map_err(|e| self.mem_err(e))?;
        }
        Ok(())
    }

    /// The checkpoint an earlier attempt of this step saved, if any.
    pub(crate) async fn load_progress(
        &self,
        env: &Env,
    ) -> Result<Option<AgentCheckpoint>, AgentError> {
        let Some(wm) = self.progress_scope(env) else {
            return Ok(None);
        };
        let saved: Option<AgentCheckpoint> =
            wm.get_as("checkpoint").await.map_err(|e| self.mem_err(e))?;
        Ok(saved.filter(|c| c.agent == *self.name))
    }

    /// Deletes the per-turn checkpoint of a finished step.
    pub(crate) async fn clear_progress(&self, env: &Env) -> Result<(), AgentError> {
        if let Some(wm) = self.progress_scope(env) {
            wm.delete("checkpoint").await.map_err(|e| self.mem_err(e))?;
        }
        Ok(())
    }

    fn turn_finished(&self, st: &AgentCheckpoint, turn: usize, sink: Option<&Sink>, env: &Env) {
        let Some(t) = st.turns.get(turn) else {
            return;
        };
        if let Some(tx) = sink {
            let _ = tx.send(Ok(AgentEvent::TurnFinish {
                turn,
                usage: t.usage,
                cost_usd: t.cost_usd,
                finish_reason: t.finish_reason,
            }));
        }
        if let Some(ctx) = &env.step {
            // The transcript goes to the run's event log under the step's path.
            ctx.emit("agent-turn", json!({ "agent": &*self.name, "turn": t }));
        }
    }

    /// A response for the state as it is (no memory writes).
    fn respond(
        &self,
        st: AgentCheckpoint,
        stop: StopReason,
        object: Option<Value>,
        pending: Vec<PendingApproval>,
    ) -> AgentResponse {
        let mut usage = Usage::default();
        let mut cost = Some(0.0);
        for t in &st.turns {
            add_usage(&mut usage, &t.usage);
            cost = match (cost, t.cost_usd) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
        if st.turns.is_empty() {
            cost = None;
        }
        let text = match (&stop, &object) {
            (StopReason::FinalTool { .. }, Some(Value::String(s))) => s.clone(),
            (StopReason::FinalTool { .. }, Some(v)) => v.to_string(),
            _ => st.turns.last().map(|t| t.text.clone()).unwrap_or_default(),
        };
        let messages = st.messages.get(st.history..).unwrap_or_default().to_vec();
        let waits = matches!(
            stop,
            StopReason::ApprovalRequired | StopReason::InputRequired
        );
        let checkpoint = waits.then(|| st.clone());
        let pending_inputs = if waits {
            st.pending_inputs()
        } else {
            Vec::new()
        };
        AgentResponse {
            text,
            object,
            stop,
            turns: st.turns,
            messages,
            usage,
            cost_usd: cost,
            pending,
            pending_inputs,
            checkpoint,
        }
    }

    /// Ends a generation: checks structured output, saves the new messages to memory.
    async fn finish(
        &self,
        st: AgentCheckpoint,
        stop: StopReason,
        object: Option<Value>,
        env: &Env,
    ) -> Result<AgentResponse, AgentError> {
        if self.output.is_some() && object.is_none() {
            return Err(AgentError::StructuredOutput {
                agent: self.name.to_string(),
                reason: format!("the loop stopped ({stop:?}) before a final answer"),
                text: st.turns.last().map(|t| t.text.clone()).unwrap_or_default(),
            });
        }
        if let (Some(memory), Some(thread)) = (&self.memory, &st.thread) {
            let now = crate::memory::now_ms();
            let prefix = env.step.as_ref().map(StepContext::idempotency_key);
            let new = st.messages.get(st.history..).unwrap_or_default();
            let stored: Vec<StoredMessage> = new
                .iter()
                .enumerate()
                .map(|(i, m)| StoredMessage {
                    // Inside a workflow the ids are stable across a replay of the step, so a
                    // retried step does not store its messages twice.
                    id: match &prefix {
                        Some(p) => format!("{p}:{i}"),
                        None => uuid::Uuid::now_v7().to_string(),
                    },
                    thread: thread.clone(),
                    resource: st.resource.clone(),
                    message: m.clone(),
                    created_at: now,
                })
                .collect();
            memory
                .append_stored(&stored)
                .await
                .map_err(|e| self.mem_err(e))?;
        }
        Ok(self.respond(st, stop, object, Vec::new()))
    }
}

/// The `remember` tool of [`Agent::working_memory`].
pub(crate) fn remember_tool() -> crate::tool::FnTool {
    crate::tool::tool_json(
        REMEMBER_TOOL,
        "Save a lasting fact in working memory under a key (a value of null deletes the key).",
        json!({
            "type": "object",
            "properties": {
                "key": {"type": "string", "minLength": 1, "description": "Short name of the fact"},
                "value": {"description": "The fact (any JSON value); null deletes it"}
            },
            "required": ["key", "value"]
        }),
        |ctx: ToolContext, args: Value| async move {
            let wm = ctx
                .memory()
                .ok_or("working memory needs a thread or resource id in the input")?;
            let key = args["key"].as_str().unwrap_or_default();
            let r = if args["value"].is_null() {
                wm.delete(key).await.map(|_| ())
            } else {
                wm.set(key, &args["value"]).await
            };
            r.map(|()| Value::String(format!("saved `{key}`")))
                .map_err(|e| e.to_string())
        },
    )
}

/// Turns a workflow step's input into an agent input: a string is the prompt; an object with
/// `prompt` or `messages` (and optional `thread`, `resource`, `context`) is taken apart; an
/// array is a list of messages; any other value is given to the model as JSON text.
pub(crate) fn step_input(agent: &str, input: Value) -> Result<AgentInput, AgentError> {
    let bad = |m: String| AgentError::BadInput {
        agent: agent.to_owned(),
        message: m,
    };
    match input {
        Value::String(s) => Ok(AgentInput::prompt(s)),
        Value::Null => Err(bad("the input is null: give a prompt or messages".into())),
        Value::Array(items) => Ok(AgentInput::messages(parse_messages(agent, items)?)),
        Value::Object(mut map) if map.contains_key("prompt") || map.contains_key("messages") => {
            let mut messages = match map.remove("messages") {
                Some(Value::Array(items)) => parse_messages(agent, items)?,
                Some(other) => return Err(bad(format!("`messages` must be a list, got {other}"))),
                None => Vec::new(),
            };
            match map.remove("prompt") {
                Some(Value::String(p)) => messages.push(Message::user(p)),
                Some(Value::Null) | None => {}
                Some(other) => messages.push(Message::user(other.to_string())),
            }
            let id = |v: Option<Value>| -> Result<Option<String>, AgentError> {
                match v {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s)),
                    Some(other) => Err(bad(format!("memory ids must be strings, got {other}"))),
                }
            };
            Ok(AgentInput {
                messages,
                thread: id(map.remove("thread"))?,
                resource: id(map.remove("resource"))?,
                context: map.remove("context").unwrap_or(Value::Null),
            })
        }
        other => Ok(AgentInput::prompt(other.to_string())),
    }
}

fn parse_messages(agent: &str, items: Vec<Value>) -> Result<Vec<Message>, AgentError> {
    items
        .into_iter()
        .map(|item| {
            if let Ok(m) = serde_json::from_value::<Message>(item.clone()) {
                return Ok(m);
            }
            // The common short form: {"role": "user", "content": "text"}.
            let role = item
                .get("role")
                .and_then(Value::as_str)
                .and_then(crate::memory::parse_role);
            match (role, item.get("content")) {
                (Some(role), Some(Value::String(text))) => Ok(Message {
                    role,
                    content: vec![crate::model::ContentPart::text(text.clone())],
                }),
                _ => Err(AgentError::BadInput {
                    agent: agent.to_owned(),
                    message: format!(
                        "a message needs a role (system, user, assistant, tool) and content, got {item}"
                    ),
                }),
            }
        })
        .collect()
}

/// The run-state key of an agent step's checkpoint while it waits for approval.
pub(crate) fn checkpoint_key(path: &str) -> String {
    format!("miyabi.agent/{path}")
}
