//! [`Target`]: what is evaluated — anything that turns an input into an output.

use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{ToolCall, Usage};
use crate::{Agent, AgentInput, AgentResponse, CommittedWorkflow, Engine, RunStatus};

/// What a target did to produce its output: the tool calls it made (in order), how many model
/// calls (turns) it took, the tokens and the cost. An [`Agent`] target reports it; agent-aware
/// metrics ([`metrics::ToolCalls`](super::metrics::ToolCalls), ...) read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Every tool call, in the order made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Model calls made (an agent's turns).
    pub turns: usize,
    /// Tokens used over all model calls, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Cost in USD over all model calls, when every call had a price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Why the target stopped (an agent's stop reason, e.g. `done`, `max_steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
}

impl Trace {
    /// The trace of an agent's generation: its tool calls over all turns, its turn count,
    /// usage, cost and stop reason.
    pub fn from_agent_response(response: &AgentResponse) -> Self {
        // `StopReason` serialises as `{"kind": "done", ...}`.
        let stop = serde_json::to_value(&response.stop)
            .ok()
            .and_then(|v| v.get("kind").and_then(Value::as_str).map(str::to_owned));
        Self {
            tool_calls: response
                .turns
                .iter()
                .flat_map(|t| t.tool_calls.iter().cloned())
                .collect(),
            turns: response.turns.len(),
            usage: Some(response.usage),
            cost_usd: response.cost_usd,
            stop,
        }
    }

    /// The names of the tools called, in order.
    pub fn tool_names(&self) -> Vec<&str> {
        self.tool_calls.iter().map(|c| c.name.as_str()).collect()
    }
}

/// A target's output with its [`Trace`], when it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetOutput {
    /// The output the metrics score.
    pub output: Value,
    /// What the target did.
    pub trace: Option<Trace>,
}

impl From<Value> for TargetOutput {
    fn from(output: Value) -> Self {
        Self {
            output,
            trace: None,
        }
    }
}

/// A target's failure (the model call failed, the run failed...). Such a sample is an
/// *error* in the results, apart from metric failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

impl TargetError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Anything that turns a case's input into an output: a closure
/// `Fn(Value) -> impl Future<Output = Result<Value, E>>` (E: Display), an [`Agent`], or a
/// committed workflow on an engine ([`WorkflowTarget`]).
#[async_trait]
pub trait Target: Send + Sync {
    /// Produces the output for one input.
    async fn call(&self, input: Value) -> Result<Value, TargetError>;

    /// Produces the output and, when the target can say, its [`Trace`]. The evaluator calls
    /// this; the default is [`call`](Self::call) without a trace.
    async fn run(&self, input: Value) -> Result<TargetOutput, TargetError> {
        self.call(input).await.map(TargetOutput::from)
    }
}

#[async_trait]
impl<F, Fut, E> Target for F
where
    F: Fn(Value) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Value, E>> + Send,
    E: fmt::Display,
{
    async fn call(&self, input: Value) -> Result<Value, TargetError> {
        (self)(input).await.map_err(|e| TargetError(e.to_string()))
    }
}

/// An agent's output is its structured answer (`object`) when it has one, else its text.
/// The input is read as an agent step reads it ([`AgentInput::from_json`]): a string is the
/// prompt, an array the messages, an object with `prompt`/`messages`.
#[async_trait]
impl Target for Agent {
    async fn call(&self, input: Value) -> Result<Value, TargetError> {
        let input =
            AgentInput::from_json(self.name(), input).map_err(|e| TargetError(e.to_string()))?;
        let response = self
            .generate(input)
            .await
            .map_err(|e| TargetError(e.to_string()))?;
        Ok(response.object.unwrap_or(Value::String(response.text)))
    }

    async fn run(&self, input: Value) -> Result<TargetOutput, TargetError> {
        let input =
            AgentInput::from_json(self.name(), input).map_err(|e| TargetError(e.to_string()))?;
        let response = self
            .generate(input)
            .await
            .map_err(|e| TargetError(e.to_string()))?;
        let trace = Trace::from_agent_response(&response);
        Ok(TargetOutput {
            output: response.object.unwrap_or(Value::String(response.text)),
            trace: Some(trace),
        })
    }
}

/// A committed workflow run on an engine: each case starts a run with the case's input, and
/// the run's output is the target's output. A run that fails, is cancelled or suspends (for a
/// human) is a target error naming its status and the run id.
#[derive(Clone)]
pub struct WorkflowTarget {
    engine: Engine,
    workflow: CommittedWorkflow,
}

impl fmt::Debug for WorkflowTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowTarget").finish_non_exhaustive()
    }
}

impl WorkflowTarget {
    /// Runs `workflow` on `engine`.
    pub fn new(engine: Engine, workflow: CommittedWorkflow) -> Self {
        Self { engine, workflow }
    }
}

#[async_trait]
impl Target for WorkflowTarget {
    async fn call(&self, input: Value) -> Result<Value, TargetError> {
        let run = self
            .engine
            .start(&self.workflow, input)
            .await
            .map_err(|e| TargetError(e.to_string()))?;
        match (run.status, run.output) {
            (RunStatus::Succeeded, Some(output)) => Ok(output),
            (RunStatus::Succeeded, None) => Ok(Value::Null),
            (status, _) => Err(TargetError(format!(
                "run {} ended {status:?}{}",
                run.id,
                run.error.map(|e| format!(": {e}")).unwrap_or_default()
            ))),
        }
    }
}

/// A language model called once per case: the input (as text) goes into a prompt template
/// (`{{input}}`, default the input itself) as the user message, after an optional system
/// message; the answer's text is the output and the call's usage and cost are its trace.
#[derive(Clone)]
pub struct ModelTarget {
    model: std::sync::Arc<dyn crate::LanguageModel>,
    system: Option<String>,
    template: String,
    sampling: crate::model::Sampling,
}

impl fmt::Debug for ModelTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelTarget")
            .field("system", &self.system)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

impl ModelTarget {
    /// Calls `model`.
    pub fn new(model: std::sync::Arc<dyn crate::LanguageModel>) -> Self {
        Self {
            model,
            system: None,
            template: "{{input}}".into(),
            sampling: crate::model::Sampling::default(),
        }
    }

    /// A system message.
    pub fn system(mut self, text: impl Into<String>) -> Self {
        self.system = Some(text.into());
        self
    }

    /// The user message's template; `{{input}}` is replaced by the case's input as text.
    pub fn prompt(mut self, template: impl Into<String>) -> Self {
        self.template = template.into();
        self
    }

    /// Sampling settings.
    pub fn sampling(mut self, sampling: crate::model::Sampling) -> Self {
        self.sampling = sampling;
        self
    }
}

#[async_trait]
impl Target for ModelTarget {
    async fn call(&self, input: Value) -> Result<Value, TargetError> {
        self.run(input).await.map(|o| o.output)
    }

    async fn run(&self, input: Value) -> Result<TargetOutput, TargetError> {
        let user = self
            .template
            .replace("{{input}}", &super::metric::value_text(&input));
        let mut req = crate::model::ModelRequest::user(user);
        if let Some(s) = &self.system {
            req = req.with_system(s.clone());
        }
        req.sampling = self.sampling.clone();
        let response = self
            .model
            .generate(&req)
            .await
            .map_err(|e| TargetError(e.to_string()))?;
        Ok(TargetOutput {
            output: Value::String(response.text()),
            trace: Some(Trace {
                tool_calls: response.tool_calls().into_iter().cloned().collect(),
                turns: 1,
                usage: Some(response.usage),
                cost_usd: response.cost_usd,
                stop: None,
            }),
        })
    }
}

/// An external program run once per case: the input as JSON on its standard input, its
/// standard output the output (parsed as JSON when it is JSON, else the text without the
/// trailing newline). A nonzero exit is a target error with the end of its standard error.
#[derive(Debug, Clone)]
pub struct CommandTarget {
    argv: Vec<String>,
    dir: Option<std::path::PathBuf>,
}

impl CommandTarget {
    /// Runs `argv[0]` with the other arguments (no shell). Fails on an empty `argv`.
    pub fn new(argv: Vec<String>) -> Result<Self, super::EvalError> {
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(super::EvalError::Config(
                "a command target needs a program".into(),
            ));
        }
        Ok(Self { argv, dir: None })
    }

    /// The working directory.
    pub fn current_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }
}

#[async_trait]
impl Target for CommandTarget {
    async fn call(&self, input: Value) -> Result<Value, TargetError> {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(d) = &self.dir {
            cmd.current_dir(d);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| TargetError(format!("cannot start {:?}: {e}", self.argv[0])))?;
        if let Some(mut stdin) = child.stdin.take() {
            let bytes = input.to_string().into_bytes();
            // A program that does not read its input may close stdin early: not an error.
            let _ = stdin.write_all(&bytes).await;
            let _ = stdin.shutdown().await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| TargetError(format!("{:?}: {e}", self.argv[0])))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: String = err
                .chars()
                .rev()
                .take(500)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(TargetError(format!(
                "{:?} exited with {}: {}",
                self.argv[0],
                out.status,
                tail.trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        Ok(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
    }
}
