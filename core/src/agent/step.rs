//! An [`Agent`] is a workflow [`Step`].

use async_trait::async_trait;
use serde_json::{Value, json};

use super::run::{Decisions, Env, checkpoint_key, step_input};
use super::{Agent, AgentCheckpoint, AgentError, StopReason};
use crate::error::StepError;
use crate::tool::answers_schema;
use crate::workflow::{Step, StepContext};

fn step_error(e: AgentError) -> StepError {
    if e.is_retryable() {
        StepError::retryable(e.to_string())
    } else {
        StepError::fatal(e.to_string())
    }
}

/// Input: a prompt string, a list of messages, or `{"prompt" | "messages", "thread"?,
/// "resource"?, "context"?}` (any other value is given to the model as JSON text). Output: the
/// answer text, or the structured object with an output schema (or a final tool's result).
///
/// A call of a tool that requires approval suspends the run at the step's path with
/// `{"kind": "tool-approval", "agent", "pending": [{"call_id", "tool", "arguments",
/// "description"}]}`; the conversation so far is kept in the run's state, so resuming with a
/// decision (see [`Agent::resume`]) continues without calling the model again for the turns
/// already done. Every turn is recorded as an `agent-turn` event under the step's path.
///
/// A call whose tool asks a human a question ([`crate::ToolError::InputRequired`], an MCP
/// server's elicitation) suspends the run the same way, once no call waits for approval, with
/// `{"kind": "tool-input", "agent", "pending": [{"call_id", "tool", "arguments", "message",
/// "schema"? | "url"?, ..details}], "resume_schema"}`: resume with `{"<call id>": {"action":
/// "accept", "content": {..}}}` (or `"decline"`, `"cancel"`). The engine checks the answers
/// against `resume_schema` before anything is written (an error names the field); each
/// answered call then runs again with the same arguments and its answers.
#[async_trait]
impl Step for Agent {
    async fn run(&self, ctx: &StepContext, input: Value) -> Result<Value, StepError> {
        let key = checkpoint_key(ctx.path());
        let env = Env::for_step(ctx);
        let progress = self.load_progress(&env).await.map_err(step_error)?;
        let result = match (ctx.resume_data(), progress) {
            // An earlier attempt of this step saved its conversation: go on from there. Resume
            // data applies only if that state still waits for a decision.
            (data, Some(saved)) => {
                let decisions = match data {
                    Some(d) if saved.waits() => {
                        Some(Decisions::parse_for(&self.name, &saved, d).map_err(step_error)?)
                    }
                    _ => None,
                };
                tracing::info!(
                    turns = saved.turns.len(),
                    "agent step continues from its checkpoint"
                );
                self.drive(saved, None, &env, decisions).await
            }
            (Some(data), None) => {
                let saved = ctx.state(&key).filter(|v| !v.is_null()).ok_or_else(|| {
                    StepError::fatal(format!(
                        "agent `{}` at `{}` was resumed, but its checkpoint is missing from the run state",
                        self.name,
                        ctx.path()
                    ))
                })?;
                let checkpoint: AgentCheckpoint = serde_json::from_value(saved).map_err(|e| {
                    StepError::fatal(format!(
                        "agent `{}` at `{}`: bad checkpoint in the run state: {e}",
                        self.name,
                        ctx.path()
                    ))
                })?;
                let decisions =
                    Decisions::parse_for(&self.name, &checkpoint, data).map_err(step_error)?;
                self.drive(checkpoint, None, &env, Some(decisions)).await
            }
            (None, None) => {
                let input = step_input(&self.name, input).map_err(step_error)?;
                match self.start_state(input, &env).await {
                    Ok(state) => self.drive(state, None, &env, None).await,
                    Err(e) => Err(e),
                }
            }
        };
        let response = result.map_err(step_error)?;
        let payload = match response.stop {
            StopReason::ApprovalRequired => Some(json!({
                "kind": "tool-approval",
                "agent": &*self.name,
                "pending": response.pending,
            })),
            StopReason::InputRequired => Some(json!({
                "kind": "tool-input",
                "agent": &*self.name,
                "resume_schema": answers_schema(&response.pending_inputs),
                "pending": response.pending_inputs,
            })),
            _ => None,
        };
        if let Some(payload) = payload {
            let checkpoint = serde_json::to_value(&response.checkpoint).map_err(|e| {
                StepError::fatal(format!(
                    "agent `{}`: checkpoint is not JSON: {e}",
                    self.name
                ))
            })?;
            ctx.set_state(&key, checkpoint);
            return ctx.suspend(payload);
        }
        if ctx.state(&key).is_some_and(|v| !v.is_null()) {
            ctx.set_state(&key, Value::Null);
        }
        // The output commits with this step; a leftover checkpoint would only be read by a
        // re-run of a step the engine will never run again, so failing to delete it is harmless.
        if let Err(e) = self.clear_progress(&env).await {
            tracing::warn!(error = %e, "could not delete the agent step's checkpoint");
        }
        Ok(match response.object {
            Some(object) => object,
            None => Value::String(response.text),
        })
    }

    fn output_schema(&self) -> Option<Value> {
        self.output.as_ref().map(|s| s.json().clone())
    }
}
