//! Tools: what an agent's model may call. A [`Tool`] has a name, a description, a JSON Schema
//! of its arguments and an async `call`; [`tool_fn`] makes one from an async closure over a serde
//! argument type whose schema is derived with `schemars`.
//!
//! ```
//! use miyabi::tool::{tool_fn, Tool, ToolContext};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Weather {
//!     /// City name.
//!     city: String,
//! }
//!
//! let weather = tool_fn("weather", "Current weather for a city", |_ctx: ToolContext, w: Weather| async move {
//!     Ok::<_, String>(format!("sunny in {}", w.city))
//! });
//! assert_eq!(weather.name(), "weather");
//! assert_eq!(weather.parameters()["required"][0], "city");
//! ```

mod error;
mod input;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use error::ToolError;
pub(crate) use input::answers_schema;
pub use input::{InputAnswer, InputRequest, PendingInput, ToolInput};

use crate::memory::WorkingMemory;
use crate::workflow::Schema;

/// What a tool sees while it runs: which agent called it and with which call id, the workflow
/// run and step path when the agent runs as a step, a cancellation token, and the working
/// memory of the conversation's thread or resource when the agent has memory.
#[derive(Clone, Debug)]
pub struct ToolContext {
    pub(crate) agent: Arc<str>,
    pub(crate) call_id: String,
    pub(crate) run_id: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) thread: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) memory: Option<WorkingMemory>,
    pub(crate) cancel: CancellationToken,
    /// The agent's step, when it runs in a workflow: where [`ToolContext::emit`] writes.
    pub(crate) step: Option<crate::workflow::StepContext>,
    /// The questions this call asked a human before and their answers, in order.
    pub(crate) inputs: Vec<ToolInput>,
}

impl ToolContext {
    /// A context for calling a tool directly (tests, or tools used outside an agent).
    pub fn detached(agent: &str, call_id: &str) -> Self {
        Self {
            agent: Arc::from(agent),
            call_id: call_id.to_owned(),
            run_id: None,
            path: None,
            thread: None,
            resource: None,
            memory: None,
            cancel: CancellationToken::new(),
            step: None,
            inputs: Vec::new(),
        }
    }

    /// This context with the answers of earlier rounds of the call (for calling a tool that
    /// asks for input directly, as the agent loop does after a `tool-input` suspension).
    pub fn with_inputs(mut self, inputs: Vec<ToolInput>) -> Self {
        self.inputs = inputs;
        self
    }

    /// The calling agent's name.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The model's id for this call.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The workflow run, when the agent runs as a step.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// The step's path in its run, when the agent runs as a step.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// A key for making the tool's side effects idempotent: run id, step path and call id inside
    /// a workflow (stable across replays), the call id alone otherwise.
    pub fn idempotency_key(&self) -> String {
        match (&self.run_id, &self.path) {
            (Some(run), Some(path)) => format!("{run}:{path}:{}", self.call_id),
            _ => self.call_id.clone(),
        }
    }

    /// The memory thread of the conversation, if any.
    pub fn thread(&self) -> Option<&str> {
        self.thread.as_deref()
    }

    /// The memory resource (user, account...) of the conversation, if any.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// Working memory of the conversation's resource (or its thread when no resource was
    /// given), when the agent has memory.
    pub fn memory(&self) -> Option<&WorkingMemory> {
        self.memory.as_ref()
    }

    /// The questions this call asked a human in earlier rounds and the answers given, in the
    /// order they were answered. Empty on a call's first round. A tool that returned
    /// [`ToolError::InputRequired`] is called again with the same arguments once the human
    /// answered; it finds the answer here (a tool that asks several questions finds them all).
    pub fn inputs(&self) -> &[ToolInput] {
        &self.inputs
    }

    /// Cancelled when the run is cancelled or the step times out.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Emits a custom event to the run's event stream and log under the agent step's path
    /// (as [`crate::StepContext::emit`]), for progress a tool reports while it runs. Returns
    /// whether there was a run to tell: outside a workflow the event is dropped.
    pub fn emit(&self, name: &str, data: impl Into<Value>) -> bool {
        match &self.step {
            Some(step) => {
                step.emit(name, data);
                true
            }
            None => false,
        }
    }
}

/// A tool a model can call. Object-safe: agents hold `Arc<dyn Tool>`.
///
/// An error returned by [`Tool::call`] does not end the agent's loop: its text goes back to the
/// model as the call's result (marked as an error), and the model decides what to do.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name the model calls it by (letters, digits, `_` and `-`).
    fn name(&self) -> &str;

    /// What it does, for the model.
    fn description(&self) -> &str;

    /// JSON Schema of the arguments (an object schema).
    fn parameters(&self) -> Value;

    /// Whether a human must approve each call before it runs. Inside a workflow the run suspends
    /// at the agent's step; [`crate::Agent::generate`] returns the pending calls.
    fn requires_approval(&self) -> bool {
        false
    }

    /// Whether a human must approve THIS call, given its arguments (already checked against
    /// [`Tool::parameters`]). The agent loop asks this for every call; the default is
    /// [`Tool::requires_approval`], so a tool that does not override it behaves as before. A
    /// tool whose risk depends on its arguments (a shell command under a permission policy)
    /// overrides it.
    fn approval(&self, args: &Value) -> bool {
        let _ = args;
        self.requires_approval()
    }

    /// The question of [`Tool::approval`] for a tool that must wait for its answer (a
    /// JavaScript predicate on another thread, a policy service). The agent loop asks this, once
    /// per call, and records the answer in its checkpoint (a resume does not ask again); the
    /// default answers with [`Tool::approval`]. A tool that cannot answer should say `true`.
    async fn needs_approval(&self, args: &Value) -> bool {
        self.approval(args)
    }

    /// Whether a call of this tool ends the agent's loop, its result becoming the answer.
    fn is_final(&self) -> bool {
        false
    }

    /// Runs the tool with arguments that already passed [`Tool::parameters`].
    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError>;
}

/// A tool ready for use: the tool and its compiled argument schema.
#[derive(Clone)]
pub(crate) struct CompiledTool {
    pub(crate) tool: Arc<dyn Tool>,
    pub(crate) schema: Schema,
    pub(crate) spec: crate::model::ToolSpec,
}

impl std::fmt::Debug for CompiledTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledTool")
            .field("name", &self.tool.name())
            .finish_non_exhaustive()
    }
}

impl CompiledTool {
    pub(crate) fn new(tool: Arc<dyn Tool>) -> Result<Self, ToolError> {
        let name = tool.name().to_owned();
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(ToolError::BadDefinition {
                tool: name,
                reason: "a tool name must be 1 to 64 letters, digits, `_` or `-`".into(),
            });
        }
        let parameters = tool.parameters();
        if parameters.get("type").and_then(Value::as_str) != Some("object") {
            return Err(ToolError::BadDefinition {
                tool: name,
                reason: format!(
                    "the argument schema must have \"type\": \"object\", got {parameters}"
                ),
            });
        }
        let schema =
            Schema::new(parameters.clone()).map_err(|reason| ToolError::BadDefinition {
                tool: name.clone(),
                reason: format!("invalid argument schema: {reason}"),
            })?;
        let spec = crate::model::ToolSpec {
            name,
            description: Some(tool.description().to_owned()).filter(|d| !d.is_empty()),
            parameters,
        };
        Ok(Self { tool, schema, spec })
    }

    /// Validates the arguments, then calls the tool.
    pub(crate) async fn invoke(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        self.validate(&args)?;
        self.tool.call(ctx, args).await
    }

    pub(crate) fn validate(&self, args: &Value) -> Result<(), ToolError> {
        self.schema
            .check(args)
            .map_err(|(pointer, reason)| ToolError::InvalidArguments {
                tool: self.spec.name.clone(),
                pointer,
                reason,
            })
    }
}

/// JSON Schema of a Rust type, shaped for tool arguments (no `$schema` key).
pub fn schema_of<T: JsonSchema>() -> Value {
    let mut v = schemars::SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("$schema");
        // An argument struct without fields derives `{"type":"object"}` already; a unit type
        // derives `null`, which no provider accepts as a tool's arguments.
        if obj.get("type").and_then(Value::as_str) == Some("null") {
            obj.insert("type".into(), Value::String("object".into()));
        }
    }
    v
}

type BoxFut = std::pin::Pin<Box<dyn Future<Output = Result<Value, ToolError>> + Send>>;

/// A tool made from a closure; see [`tool_fn`] and [`tool_json`].
pub struct FnTool {
    name: String,
    description: String,
    parameters: Value,
    approval: bool,
    is_final: bool,
    f: Arc<dyn Fn(ToolContext, Value) -> BoxFut + Send + Sync>,
}

impl std::fmt::Debug for FnTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnTool")
            .field("name", &self.name)
            .field("requires_approval", &self.approval)
            .field("is_final", &self.is_final)
            .finish_non_exhaustive()
    }
}

impl FnTool {
    /// Every call must be approved by a human before it runs.
    pub fn requires_approval(mut self, on: bool) -> Self {
        self.approval = on;
        self
    }

    /// A call of this tool ends the agent's loop; its result is the answer.
    pub fn final_tool(mut self, on: bool) -> Self {
        self.is_final = on;
        self
    }
}

#[async_trait]
impl Tool for FnTool {
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

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        (self.f)(ctx.clone(), args).await
    }
}

/// Makes a tool from an async closure over a serde argument type; the argument schema is
/// derived from the type with `schemars` (doc comments become field descriptions). The closure
/// may fail with any error that displays; its text goes back to the model.
pub fn tool_fn<F, Fut, A, O, E>(name: &str, description: &str, f: F) -> FnTool
where
    F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    A: DeserializeOwned + JsonSchema + Send + 'static,
    O: Serialize + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let tool_name: Arc<str> = Arc::from(name);
    let f = Arc::new(f);
    FnTool {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters: schema_of::<A>(),
        approval: false,
        is_final: false,
        f: Arc::new(move |ctx, args| {
            let f = Arc::clone(&f);
            let tool = Arc::clone(&tool_name);
            Box::pin(async move {
                let args: A =
                    serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments {
                        tool: tool.to_string(),
                        pointer: String::new(),
                        reason: e.to_string(),
                    })?;
                let out = f(ctx, args).await.map_err(|e| ToolError::Failed {
                    tool: tool.to_string(),
                    message: e.to_string(),
                })?;
                serde_json::to_value(out).map_err(|e| ToolError::Failed {
                    tool: tool.to_string(),
                    message: format!("the result cannot be turned into JSON: {e}"),
                })
            })
        }),
    }
}

/// Makes a tool from an async closure over raw JSON arguments and an explicit JSON Schema (for
/// tools defined at run time, or from another language through the bindings).
pub fn tool_json<F, Fut, E>(name: &str, description: &str, parameters: Value, f: F) -> FnTool
where
    F: Fn(ToolContext, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let tool_name: Arc<str> = Arc::from(name);
    let f = Arc::new(f);
    FnTool {
        name: name.to_owned(),
        description: description.to_owned(),
        parameters,
        approval: false,
        is_final: false,
        f: Arc::new(move |ctx, args| {
            let f = Arc::clone(&f);
            let tool = Arc::clone(&tool_name);
            Box::pin(async move {
                f(ctx, args).await.map_err(|e| ToolError::Failed {
                    tool: tool.to_string(),
                    message: e.to_string(),
                })
            })
        }),
    }
}

/// Anything that can be given to [`crate::Agent::tools`]: a tool value or an `Arc<dyn Tool>`.
pub trait IntoTool {
    /// The shared tool.
    fn into_tool(self) -> Arc<dyn Tool>;
}

impl<T: Tool + 'static> IntoTool for T {
    fn into_tool(self) -> Arc<dyn Tool> {
        Arc::new(self)
    }
}

impl IntoTool for Arc<dyn Tool> {
    fn into_tool(self) -> Arc<dyn Tool> {
        self
    }
}
