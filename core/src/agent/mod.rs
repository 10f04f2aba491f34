//! Agents: a model with instructions, tools and memory, running the tool loop (model call →
//! tool calls, concurrently → results → model call, until the model answers, `max_steps`
//! turns, a final tool, or a stop predicate). An [`Agent`] is a [`crate::Step`], so it drops
//! straight into a workflow: `.step("analyze", agent)`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use miyabi::model::{ContentPart, FinishReason, LanguageModel, ModelError, ModelRequest, ModelResponse, EventStream, Usage};
//! use miyabi::{Agent, ToolContext, tool_fn};
//!
//! /// A stand-in model that answers "hi"; use `miyabi::model("openai/gpt-4o")` for real.
//! struct Hi;
//! #[async_trait]
//! impl LanguageModel for Hi {
//!     async fn generate(&self, _req: &ModelRequest) -> Result<ModelResponse, ModelError> {
//!         Ok(ModelResponse { content: vec![ContentPart::text("hi")], finish_reason: FinishReason::Stop,
//!             raw_finish_reason: None, usage: Usage::default(), cost_usd: None, response_id: None,
//!             request_id: None, model: None })
//!     }
//!     async fn stream(&self, _req: &ModelRequest) -> Result<EventStream, ModelError> {
//!         Err(ModelError::Unsupported("no streaming".into()))
//!     }
//! }
//!
//! let agent = Agent::new("greeter").model(Arc::new(Hi)).instructions("Be brief.").max_steps(4);
//! let answer = agent.generate("Hello").await?;
//! assert_eq!(answer.text, "hi");
//! # Ok(()) }
//! ```

mod error;
mod machine;
mod run;
mod step;

use std::fmt;
use std::sync::Arc;

use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use error::AgentError;

use crate::memory::Memory;
use crate::model::{
    FinishReason, LanguageModel, Message, Model, ModelError, Sampling, ToolCall, ToolChoice,
    ToolResult, Usage,
};
pub use crate::tool::PendingInput;
use crate::tool::{CompiledTool, IntoTool};
use crate::workflow::Schema;

/// Where an agent's model comes from: a `"provider/model"` spec, a [`Model`], or any
/// `Arc<dyn LanguageModel>` (a fallback chain, a scripted test model...).
pub trait IntoModel {
    /// Resolves the model.
    fn into_model(self) -> Result<Arc<dyn LanguageModel>, ModelError>;
}

impl IntoModel for &str {
    fn into_model(self) -> Result<Arc<dyn LanguageModel>, ModelError> {
        Ok(Arc::new(crate::model::model(self)?))
    }
}

impl IntoModel for String {
    fn into_model(self) -> Result<Arc<dyn LanguageModel>, ModelError> {
        self.as_str().into_model()
    }
}

impl IntoModel for Model {
    fn into_model(self) -> Result<Arc<dyn LanguageModel>, ModelError> {
        Ok(Arc::new(self))
    }
}

impl IntoModel for Arc<dyn LanguageModel> {
    fn into_model(self) -> Result<Arc<dyn LanguageModel>, ModelError> {
        Ok(self)
    }
}

impl<M: LanguageModel + 'static> IntoModel for Arc<M> {
    fn into_model(self) -> Result<Arc<dyn LanguageModel>, ModelError> {
        Ok(self)
    }
}

/// What dynamic instructions are computed from.
#[derive(Debug, Clone, Copy)]
pub struct InstructionContext<'a> {
    /// The request context given with the input (`context` field; `null` when none).
    pub context: &'a Value,
    /// The memory thread, if any.
    pub thread: Option<&'a str>,
    /// The memory resource, if any.
    pub resource: Option<&'a str>,
    /// The workflow run's shared state, when the agent runs as a step.
    pub run_state: Option<&'a Map<String, Value>>,
}

type InstructionsFn = Arc<dyn Fn(&InstructionContext<'_>) -> String + Send + Sync>;
type StopFn = Arc<dyn Fn(&AgentTurn) -> bool + Send + Sync>;

#[derive(Clone)]
enum Instructions {
    None,
    Static(Arc<str>),
    Dynamic(InstructionsFn),
}

/// An agent: a model, instructions, tools, optional memory and an optional output schema.
/// Cheap to clone; build it once and use it from many tasks.
#[derive(Clone)]
pub struct Agent {
    pub(crate) name: Arc<str>,
    model: Option<Arc<dyn LanguageModel>>,
    instructions: Instructions,
    tools: Vec<CompiledTool>,
    tool_choice: ToolChoice,
    max_steps: usize,
    output: Option<Schema>,
    sampling: Sampling,
    memory: Option<Memory>,
    last_messages: usize,
    working_memory: bool,
    stop_when: Option<StopFn>,
    progress: Option<Memory>,
    /// The first configuration error, reported by every call.
    config_error: Option<String>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field(
                "tools",
                &self.tools.iter().map(|t| &t.spec.name).collect::<Vec<_>>(),
            )
            .field("max_steps", &self.max_steps)
            .field("structured", &self.output.is_some())
            .field("memory", &self.memory.is_some())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// A new agent with no model yet, no tools and `max_steps` 8.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: Arc::from(name.into()),
            model: None,
            instructions: Instructions::None,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            max_steps: 8,
            output: None,
            sampling: Sampling::default(),
            memory: None,
            last_messages: 20,
            working_memory: false,
            stop_when: None,
            progress: None,
            config_error: None,
        }
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn fail(&mut self, message: String) {
        if self.config_error.is_none() {
            self.config_error = Some(message);
        }
    }

    /// The model: `"provider/model"` (resolved now through the catalogue; a missing key is
    /// reported by the first call), a [`Model`] or an `Arc<dyn LanguageModel>`.
    pub fn model(mut self, model: impl IntoModel) -> Self {
        match model.into_model() {
            Ok(m) => self.model = Some(m),
            Err(e) => self.fail(format!("model: {e}")),
        }
        self
    }

    /// Fixed instructions (the system message).
    pub fn instructions(mut self, text: impl Into<String>) -> Self {
        self.instructions = Instructions::Static(Arc::from(text.into()));
        self
    }

    /// Instructions computed per call from the request context, memory ids and run state.
    pub fn instructions_fn(
        mut self,
        f: impl Fn(&InstructionContext<'_>) -> String + Send + Sync + 'static,
    ) -> Self {
        self.instructions = Instructions::Dynamic(Arc::new(f));
        self
    }

    /// Adds tools (their names must be unique; their schemas must compile).
    pub fn tools<I>(mut self, tools: I) -> Self
    where
        I: IntoIterator,
        I::Item: IntoTool,
    {
        for t in tools {
            self = self.tool(t);
        }
        self
    }

    /// Adds one tool.
    pub fn tool(mut self, tool: impl IntoTool) -> Self {
        match CompiledTool::new(tool.into_tool()) {
            Ok(t) => {
                if self.tools.iter().any(|x| x.spec.name == t.spec.name) {
                    self.fail(format!("two tools are named `{}`", t.spec.name));
                } else {
                    self.tools.push(t);
                }
            }
            Err(e) => self.fail(e.to_string()),
        }
        self
    }

    /// Whether the model must call a tool (`Required`, or a named `Tool`), may (`Auto`, the
    /// default) or must not (`None`). Applies to every model call of the loop, so `Required`
    /// needs a final tool or `max_steps` to end.
    pub fn tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = choice;
        self
    }

    /// The most model calls of one generation (tool rounds + the answer); default 8. The
    /// repair call of structured output is not counted.
    pub fn max_steps(mut self, n: usize) -> Self {
        self.max_steps = n.max(1);
        self
    }

    /// Structured output: the answer must be JSON following this schema; it is validated, and
    /// an invalid answer gets one repair attempt with the validation error.
    pub fn output_schema(mut self, schema: Value) -> Self {
        match Schema::new(schema) {
            Ok(s) => self.output = Some(s),
            Err(e) => self.fail(format!("output schema does not compile: {e}")),
        }
        self
    }

    /// Structured output with the schema derived from a Rust type.
    pub fn output_type<T: schemars::JsonSchema>(self) -> Self {
        self.output_schema(crate::tool::schema_of::<T>())
    }

    /// Sampling settings for every model call.
    pub fn sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// The sampling temperature.
    pub fn temperature(mut self, t: f64) -> Self {
        self.sampling.temperature = Some(t);
        self
    }

    /// Maximum output tokens per model call.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.sampling.max_tokens = Some(n);
        self
    }

    /// Memory: with a `thread` in the input, the last messages of the thread are the history
    /// and the new messages are appended to it when the generation finishes.
    pub fn memory(mut self, memory: Memory) -> Self {
        self.memory = Some(memory);
        self
    }

    /// How many messages of the thread are read back as history (default 20).
    pub fn last_messages(mut self, n: usize) -> Self {
        self.last_messages = n;
        self
    }

    /// Shows the working memory of the input's resource (or thread) to the model in the system
    /// message and gives it a `remember` tool that writes a key. Needs [`Agent::memory`].
    pub fn working_memory(mut self, on: bool) -> Self {
        if on == self.working_memory {
            return self;
        }
        self.working_memory = on;
        if on {
            self.tool(run::remember_tool())
        } else {
            self.tools.retain(|t| t.spec.name != run::REMEMBER_TOOL);
            self
        }
    }

    /// Inside a workflow, saves the conversation after every model call and every round of tool
    /// results in this memory (a working-memory key per run and step path, kept 7 days at most,
    /// deleted when the step finishes). A step interrupted by a crash, or retried after a
    /// failure, then continues from the last saved turn instead of calling the model again for
    /// the turns already done; only the tool calls of an interrupted round run again (use
    /// [`ToolContext::idempotency_key`](crate::ToolContext::idempotency_key)).
    pub fn checkpoints(mut self, memory: Memory) -> Self {
        self.progress = Some(memory);
        self
    }

    /// Stops the loop after a turn for which the predicate holds (checked after the turn's
    /// tool calls ran).
    pub fn stop_when(mut self, f: impl Fn(&AgentTurn) -> bool + Send + Sync + 'static) -> Self {
        self.stop_when = Some(Arc::new(f));
        self
    }

    /// Runs the tool loop to an answer. A call of a tool that requires approval ends the call
    /// with [`StopReason::ApprovalRequired`], the pending calls and a checkpoint for
    /// [`Agent::resume`].
    pub async fn generate(
        &self,
        input: impl Into<AgentInput>,
    ) -> Result<AgentResponse, AgentError> {
        let env = run::Env::detached();
        let state = self.start_state(input.into(), &env).await?;
        self.drive(state, None, &env, None).await
    }

    /// Continues a generation that stopped for approval, with the decisions: `{"approved":
    /// true}` (or `false`, with an optional `"reason"`) for every pending call, or
    /// `{"decisions": {"<call id>": {"approved": bool, "reason"?: str, "arguments"?: {...}}}}`.
    /// Calls left without a decision stay pending.
    ///
    /// A generation that stopped for input ([`StopReason::InputRequired`]) continues with the
    /// answers instead: `{"<call id>": {"action": "accept", "content": {...}}}` (or `"decline"`,
    /// `"cancel"`) per waiting call; an `accept` of a form question must follow its schema (the
    /// error names the field). Each answered call runs again with the same arguments and finds
    /// the answers in [`ToolContext::inputs`](crate::ToolContext::inputs).
    pub async fn resume(
        &self,
        checkpoint: AgentCheckpoint,
        decisions: &Value,
    ) -> Result<AgentResponse, AgentError> {
        let env = run::Env::detached();
        let decisions = run::Decisions::parse_for(&self.name, &checkpoint, decisions)?;
        self.drive(checkpoint, None, &env, Some(decisions)).await
    }

    /// Runs the tool loop, streaming text and reasoning deltas, tool calls and results, turn
    /// boundaries with their usage, and finally the whole response. Dropping the stream stops
    /// the generation. The generation runs in a task of the current tokio runtime, so call this
    /// from inside one.
    pub fn stream(&self, input: impl Into<AgentInput>) -> AgentStream {
        self.spawn_stream(Start::Input(input.into()))
    }

    /// [`Agent::resume`], streaming like [`Agent::stream`]: the approved calls' results come
    /// first (as tool-result events), then the rest of the tool loop. Bad decisions end the
    /// stream with the error [`Agent::resume`] would return.
    ///
    /// ```no_run
    /// # async fn demo(agent: miyabi::Agent, checkpoint: miyabi::agent::AgentCheckpoint) {
    /// use futures::StreamExt;
    /// let mut events = agent.resume_stream(checkpoint, serde_json::json!({ "approved": true }));
    /// while let Some(event) = events.next().await {
    ///     println!("{event:?}");
    /// }
    /// # }
    /// ```
    pub fn resume_stream(&self, checkpoint: AgentCheckpoint, decisions: Value) -> AgentStream {
        self.spawn_stream(Start::Resume(Box::new(checkpoint), decisions))
    }

    fn spawn_stream(&self, start: Start) -> AgentStream {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let agent = self.clone();
        let task = tokio::spawn(async move {
            let env = run::Env::detached();
            let result = match start {
                Start::Input(input) => match agent.start_state(input, &env).await {
                    Ok(state) => agent.drive(state, Some(&tx), &env, None).await,
                    Err(e) => Err(e),
                },
                Start::Resume(checkpoint, decisions) => {
                    match run::Decisions::parse_for(&agent.name, &checkpoint, &decisions) {
                        Ok(d) => agent.drive(*checkpoint, Some(&tx), &env, Some(d)).await,
                        Err(e) => Err(e),
                    }
                }
            };
            let _ = match result {
                Ok(response) => tx.send(Ok(AgentEvent::Finish {
                    response: Box::new(response),
                })),
                Err(e) => tx.send(Err(e)),
            };
        });
        AgentStream { rx, task }
    }
}

/// Where a streamed generation starts.
enum Start {
    Input(AgentInput),
    Resume(Box<AgentCheckpoint>, Value),
}

/// The input of a generation: a prompt or messages, plus memory ids and a request context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentInput {
    /// The new messages (a prompt is one user message).
    pub messages: Vec<Message>,
    /// Memory thread: its last messages are the history; the new ones are appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// Memory resource (user, account...) the thread belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Request context for dynamic instructions.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub context: Value,
}

impl AgentInput {
    /// One user message.
    pub fn prompt(text: impl Into<String>) -> Self {
        Self {
            messages: vec![Message::user(text)],
            ..Self::default()
        }
    }

    /// These messages.
    pub fn messages(messages: Vec<Message>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }

    /// Reads an input from JSON the way an agent step reads its input: a string is the prompt;
    /// an array is a list of messages (`{"role", "content"}` with text or content parts); an
    /// object with `prompt` and/or `messages` (and optional `thread`, `resource`, `context`) is
    /// taken apart; any other value is given to the model as JSON text. `agent` names the agent
    /// in errors. Used by the language bindings.
    pub fn from_json(agent: &str, value: Value) -> Result<Self, AgentError> {
        run::step_input(agent, value)
    }

    /// Uses a memory thread.
    pub fn thread(mut self, id: impl Into<String>) -> Self {
        self.thread = Some(id.into());
        self
    }

    /// Sets the memory resource.
    pub fn resource(mut self, id: impl Into<String>) -> Self {
        self.resource = Some(id.into());
        self
    }

    /// Sets the request context.
    pub fn context(mut self, context: Value) -> Self {
        self.context = context;
        self
    }
}

impl From<&str> for AgentInput {
    fn from(s: &str) -> Self {
        Self::prompt(s)
    }
}

impl From<String> for AgentInput {
    fn from(s: String) -> Self {
        Self::prompt(s)
    }
}

impl From<Vec<Message>> for AgentInput {
    fn from(messages: Vec<Message>) -> Self {
        Self::messages(messages)
    }
}

/// Why a generation stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum StopReason {
    /// The model answered without calling tools.
    Done,
    /// `max_steps` model calls were made.
    MaxSteps,
    /// A tool marked final was called; its result is the answer.
    FinalTool {
        /// The tool's name.
        tool: String,
    },
    /// The `stop_when` predicate held.
    Predicate,
    /// A tool call needs a human's approval.
    ApprovalRequired,
    /// A tool call asked a human a question ([`crate::ToolError::InputRequired`]).
    InputRequired,
}

/// What kind of model call a turn was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnKind {
    /// A normal call of the tool loop.
    Model,
    /// The repair call after an answer that did not follow the output schema.
    Repair,
}

/// One model call of a generation, with the tool calls it made and their results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTurn {
    /// Position in the generation, from 0.
    pub index: usize,
    /// Model call or repair.
    pub kind: TurnKind,
    /// The text the model produced.
    pub text: String,
    /// Its reasoning text, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reasoning: String,
    /// The tool calls it made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Their results, in call order (filled once the calls ran).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_results: Vec<ToolResult>,
    /// Token usage of the call.
    pub usage: Usage,
    /// Its cost in USD, when the catalogue has prices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
}

/// A tool call waiting for a human's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// The call id (key of a per-call decision).
    pub call_id: String,
    /// The tool's name.
    pub tool: String,
    /// The arguments the model gave.
    pub arguments: Value,
    /// The tool's description.
    pub description: String,
}

/// Everything needed to continue a generation that waits for approval. Serializable: keep it
/// anywhere and call [`Agent::resume`] later, from any process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCheckpoint {
    pub(crate) agent: String,
    /// The conversation so far (history, input and generated messages; not the system message).
    pub(crate) messages: Vec<Message>,
    /// How many leading messages came from memory.
    pub(crate) history: usize,
    pub(crate) turns: Vec<AgentTurn>,
    pub(crate) thread: Option<String>,
    pub(crate) resource: Option<String>,
    #[serde(default)]
    pub(crate) context: Value,
    pub(crate) repaired: bool,
    pub(crate) pending: Option<run::PendingTurn>,
}

impl AgentCheckpoint {
    /// The tool calls waiting for a decision.
    pub fn pending(&self) -> Vec<PendingApproval> {
        self.pending
            .as_ref()
            .map(|p| p.awaiting.clone())
            .unwrap_or_default()
    }

    /// The tool calls waiting for a human's input (answered once every approval is decided).
    pub fn pending_inputs(&self) -> Vec<PendingInput> {
        self.pending
            .as_ref()
            .map(run::PendingTurn::waiting_inputs)
            .unwrap_or_default()
    }

    /// Whether a call waits for a human: a decision or an answer.
    pub(crate) fn waits(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| !p.awaiting.is_empty() || p.asking.iter().any(Option::is_some))
    }

    /// The model calls made so far.
    pub fn turns(&self) -> &[AgentTurn] {
        &self.turns
    }
}

/// The result of a generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentResponse {
    /// The answer text (for a final tool: its result, as text).
    pub text: String,
    /// The structured answer (with an output schema), or a final tool's JSON result.
    pub object: Option<Value>,
    /// Why the generation stopped.
    pub stop: StopReason,
    /// Every model call, with its tool calls and results.
    pub turns: Vec<AgentTurn>,
    /// The messages this generation added: the input and what was generated.
    pub messages: Vec<Message>,
    /// Usage summed over all turns.
    pub usage: Usage,
    /// Cost summed over all turns, when every turn had a price.
    pub cost_usd: Option<f64>,
    /// Tool calls waiting for approval (with [`StopReason::ApprovalRequired`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingApproval>,
    /// Tool calls waiting for a human's input (with [`StopReason::InputRequired`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_inputs: Vec<PendingInput>,
    /// The checkpoint to resume from (with [`StopReason::ApprovalRequired`] or
    /// [`StopReason::InputRequired`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<AgentCheckpoint>,
}

/// An event of a streamed generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
#[non_exhaustive]
pub enum AgentEvent {
    /// A model call starts.
    TurnStart {
        /// Turn index.
        turn: usize,
    },
    /// A piece of answer text.
    TextDelta {
        /// Turn index.
        turn: usize,
        /// The text.
        text: String,
    },
    /// A piece of reasoning text.
    ReasoningDelta {
        /// Turn index.
        turn: usize,
        /// The text.
        text: String,
    },
    /// The model called a tool (arguments complete).
    ToolCall {
        /// Turn index.
        turn: usize,
        /// The call.
        call: ToolCall,
    },
    /// A tool call's result (or error).
    ToolResult {
        /// Turn index.
        turn: usize,
        /// The result.
        result: ToolResult,
    },
    /// Tool calls wait for approval; the generation stops here.
    ApprovalRequired {
        /// The pending calls.
        pending: Vec<PendingApproval>,
    },
    /// Tool calls wait for a human's input; the generation stops here.
    InputRequired {
        /// The waiting calls and their questions.
        pending: Vec<PendingInput>,
    },
    /// A model call and its tool calls are done.
    TurnFinish {
        /// Turn index.
        turn: usize,
        /// Usage of the call.
        usage: Usage,
        /// Cost of the call, when priced.
        cost_usd: Option<f64>,
        /// Why the model stopped.
        finish_reason: FinishReason,
    },
    /// The generation is over.
    Finish {
        /// The whole response.
        response: Box<AgentResponse>,
    },
}

/// The events of [`Agent::stream`]; ends after [`AgentEvent::Finish`] or an error.
pub struct AgentStream {
    rx: tokio::sync::mpsc::UnboundedReceiver<Result<AgentEvent, AgentError>>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for AgentStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentStream").finish_non_exhaustive()
    }
}

impl Stream for AgentStream {
    type Item = Result<AgentEvent, AgentError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for AgentStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
