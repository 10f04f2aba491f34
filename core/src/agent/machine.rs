//! The agent loop's decisions, as pure functions of the checkpoint: no model, no tool, no
//! memory, no clock, no runtime. The driver (`run.rs`) asks where a checkpoint goes, does what
//! the answer says (calls the model, runs tools, saves progress, sends events) and reports the
//! outcome back, which moves the checkpoint on and yields the next [`Action`]. The workflow side
//! is built the same way (`workflow/machine.rs` and its drivers).
//!
//! Rules kept here, so that every way of running an agent (`generate`, `stream`, `resume`, the
//! workflow step, the Node binding through those) follows them alike:
//! - a turn is a model call; `max_steps` counts normal turns, not the one repair call;
//! - tool calls are checked before they run: an unknown tool or arguments that break the tool's
//!   schema become an error result for the model, not a failure of the loop;
//! - a call whose tool asks for approval waits for a human decision; the other calls of the same
//!   turn run meanwhile; a declined call becomes an error result naming the reason;
//! - a call whose tool asks a human a question ([`ToolError::InputRequired`]) has no result yet:
//!   it waits for the answer (after every approval of the turn is decided), then runs again with
//!   the same arguments and every answer it got so far; the other calls keep their results;
//! - a turn ends when every call has a result; a final tool's successful result ends the loop
//!   with that value, then the stop predicate is asked;
//! - an answer without tool calls ends the loop; with an output schema it must follow it, with
//!   one repair call allowed.

use serde_json::Value;

use super::run::{Decision, Decisions, PendingTurn};
use super::{
    Agent, AgentCheckpoint, AgentError, AgentTurn, PendingApproval, PendingInput, StopReason,
    TurnKind,
};
use crate::model::{Message, ModelResponse, Role, ToolCall, ToolResult};
use crate::tool::{ToolError, ToolInput};
use crate::workflow::Schema;

/// What the driver does next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Save the checkpoint, then call the model for turn `turn` and report the answer with
    /// [`Machine::answered`].
    CallModel { turn: usize, kind: TurnKind },
    /// Ask each of these calls' tools whether the call needs approval
    /// ([`crate::Tool::needs_approval`]) and report the answers with
    /// [`Machine::approvals_checked`]. Nothing runs before every call of the turn is answered.
    CheckApprovals { turn: usize, checks: Vec<Job> },
    /// Save the checkpoint, then run these calls of the pending turn (concurrently) and report
    /// their outcomes with [`Machine::tools_ran`]. May be empty (every call was refused or waits).
    RunTools { turn: usize, jobs: Vec<Job> },
    /// Calls of the pending turn wait for a human: save the checkpoint and return it.
    AwaitApproval { pending: Vec<PendingApproval> },
    /// Calls of the pending turn asked a human a question (and none waits for approval): save
    /// the checkpoint and return it.
    AwaitInput { pending: Vec<PendingInput> },
    /// The loop ends; `object` is the structured output or the final tool's result.
    Finish {
        stop: StopReason,
        object: Option<Value>,
    },
}

/// One tool call to run: its position in the pending turn, the agent's tool (by position in
/// the agent's tool list) and the arguments (the model's, or a human's edited ones).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Job {
    pub(crate) call: usize,
    pub(crate) tool: usize,
    pub(crate) arguments: Value,
}

/// The loop's decisions for one agent, for one drive of a checkpoint.
pub(crate) struct Machine<'a> {
    agent: &'a Agent,
    /// A human's decisions given to [`Machine::start`], with the turn they are for: they
    /// answer that turn's waiting calls only, never a later turn's.
    resume: Option<(usize, Decisions)>,
}

impl<'a> Machine<'a> {
    pub(crate) fn new(agent: &'a Agent) -> Self {
        Self {
            agent,
            resume: None,
        }
    }

    /// The decisions for `turn`, if they were given for it.
    fn decisions(&self, turn: usize) -> Option<&Decisions> {
        self.resume
            .as_ref()
            .filter(|(t, _)| *t == turn)
            .map(|(_, d)| d)
    }

    fn name(&self) -> String {
        self.agent.name.to_string()
    }

    /// Where a checkpoint goes first: the pending turn's calls (with the human's decisions),
    /// else a model call.
    pub(crate) fn start(
        &mut self,
        st: &mut AgentCheckpoint,
        decisions: Option<Decisions>,
    ) -> Result<Action, AgentError> {
        if st.agent != *self.agent.name {
            return Err(AgentError::BadResume {
                agent: self.name(),
                message: format!("the checkpoint belongs to agent `{}`", st.agent),
            });
        }
        match (&mut st.pending, decisions) {
            (None, Some(_)) => Err(AgentError::BadResume {
                agent: self.name(),
                message: "no tool call is waiting for approval".into(),
            }),
            (Some(_), d) => {
                self.resume = d.map(|d| (st.turns.len().saturating_sub(1), d));
                Ok(self.plan(st))
            }
            (None, None) => {
                // A checkpoint saved between a failed structured answer and its repair call.
                let kind =
                    if st.repaired && st.messages.last().is_some_and(|m| m.role == Role::User) {
                        TurnKind::Repair
                    } else {
                        TurnKind::Model
                    };
                Ok(self.model_turn(st, kind))
            }
        }
    }

    /// A model call of this kind, unless `max_steps` normal turns were made.
    fn model_turn(&self, st: &AgentCheckpoint, kind: TurnKind) -> Action {
        let model_turns = st
            .turns
            .iter()
            .filter(|t| t.kind == TurnKind::Model)
            .count();
        if kind == TurnKind::Model && model_turns >= self.agent.max_steps {
            return Action::Finish {
                stop: StopReason::MaxSteps,
                object: None,
            };
        }
        Action::CallModel {
            turn: st.turns.len(),
            kind,
        }
    }

    /// The model answered turn `st.turns.len()`: records the turn; its tool calls become the
    /// pending turn, or its text the answer.
    pub(crate) fn answered(
        &self,
        st: &mut AgentCheckpoint,
        kind: TurnKind,
        resp: &ModelResponse,
    ) -> Result<Action, AgentError> {
        let calls: Vec<ToolCall> = resp.tool_calls().into_iter().cloned().collect();
        let text = resp.text();
        st.turns.push(AgentTurn {
            index: st.turns.len(),
            kind,
            text: text.clone(),
            reasoning: resp.reasoning(),
            tool_calls: calls.clone(),
            tool_results: Vec::new(),
            usage: resp.usage,
            cost_usd: resp.cost_usd,
            finish_reason: resp.finish_reason,
        });
        st.messages.push(resp.to_message());
        if !calls.is_empty() {
            let n = calls.len();
            st.pending = Some(PendingTurn {
                calls,
                results: vec![None; n],
                awaiting: Vec::new(),
                approval: vec![None; n],
                asking: Vec::new(),
                inputs: Vec::new(),
                edited: Vec::new(),
            });
            return Ok(self.plan(st));
        }
        let Some(schema) = &self.agent.output else {
            return Ok(Action::Finish {
                stop: StopReason::Done,
                object: None,
            });
        };
        match parse_structured(&text, schema) {
            Ok(v) => Ok(Action::Finish {
                stop: StopReason::Done,
                object: Some(v),
            }),
            Err(reason) if !st.repaired => {
                tracing::info!(%reason, "structured output invalid; one repair attempt");
                st.repaired = true;
                st.messages.push(Message::user(format!(
                    "Your answer does not follow the required JSON Schema: {reason}. \
                     Answer again with only a JSON value that follows this schema, no other text:\n{}",
                    schema.json()
                )));
                Ok(self.model_turn(st, TurnKind::Repair))
            }
            Err(reason) => Err(AgentError::StructuredOutput {
                agent: self.name(),
                reason,
                text,
            }),
        }
    }

    /// The tools answered [`Action::CheckApprovals`]: `(call position, needs approval)`.
    /// Records the answers, then plans the turn.
    pub(crate) fn approvals_checked(
        &self,
        st: &mut AgentCheckpoint,
        answers: Vec<(usize, bool)>,
    ) -> Action {
        if let Some(p) = st.pending.as_mut() {
            let n = p.calls.len();
            p.approval.resize(n, None);
            for (i, needs) in answers {
                if let Some(slot) = p.approval.get_mut(i) {
                    *slot = Some(needs);
                }
            }
            // A call no answer came for needs approval (and the turn cannot ask forever).
            for slot in &mut p.approval {
                slot.get_or_insert(true);
            }
        }
        self.plan(st)
    }

    /// Decides each call of the pending turn that has no result yet: refused (unknown tool,
    /// invalid arguments, declined), waiting for a human, or to run now. Calls whose tool has
    /// not said yet whether they need approval are asked first.
    fn plan(&self, st: &mut AgentCheckpoint) -> Action {
        let turn = st.turns.len().saturating_sub(1);
        let decisions = self.decisions(turn);
        let Some(p) = st.pending.as_mut() else {
            return Action::RunTools {
                turn,
                jobs: Vec::new(),
            };
        };
        let tools = &self.agent.tools;
        let mut awaiting = Vec::new();
        let mut jobs = Vec::new();
        let mut checks = Vec::new();
        for (i, call) in p.calls.iter().enumerate() {
            if p.results.get(i).is_some_and(Option::is_some) {
                continue;
            }
            let refused = |e: ToolError| ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                content: Value::String(e.to_string()),
                is_error: true,
            };
            let Some(t) = tools.iter().position(|t| t.spec.name == call.name) else {
                let available = tools
                    .iter()
                    .map(|t| t.spec.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                set(
                    &mut p.results,
                    i,
                    refused(ToolError::NotFound {
                        tool: call.name.clone(),
                        available,
                    }),
                );
                continue;
            };
            let tool = &tools[t];
            // A call that asked a human runs again once answered, with the arguments it ran
            // with (its approval, if it needed one, was given before it first ran).
            if let Some(q) = p.asking.get(i).cloned().flatten() {
                if let Some(answer) = decisions.and_then(|d| d.answer_for(&call.id)) {
                    tracing::info!(tool = %call.name, call_id = %call.id, "tool call answered");
                    if p.inputs.len() <= i {
                        p.inputs.resize(i + 1, Vec::new());
                    }
                    p.inputs[i].push(ToolInput {
                        request: q,
                        answer: answer.clone(),
                    });
                    p.asking[i] = None;
                } else {
                    continue;
                }
            }
            if p.inputs.get(i).is_some_and(|v| !v.is_empty()) {
                jobs.push(Job {
                    call: i,
                    tool: t,
                    arguments: p.arguments(i).cloned().unwrap_or(Value::Null),
                });
                continue;
            }
            if let Err(e) = tool.validate(&call.arguments) {
                set(&mut p.results, i, refused(e));
                continue;
            }
            match p.approval.get(i).copied().flatten() {
                None => {
                    checks.push(Job {
                        call: i,
                        tool: t,
                        arguments: call.arguments.clone(),
                    });
                    continue;
                }
                Some(false) => {
                    jobs.push(Job {
                        call: i,
                        tool: t,
                        arguments: call.arguments.clone(),
                    });
                    continue;
                }
                Some(true) => {}
            }
            match decisions.and_then(|d| d.for_call(&call.id)) {
                None => awaiting.push(PendingApproval {
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    arguments: call.arguments.clone(),
                    description: tool.spec.description.clone().unwrap_or_default(),
                }),
                Some(Decision::Decline { reason }) => {
                    tracing::info!(tool = %call.name, call_id = %call.id, "tool call declined");
                    set(
                        &mut p.results,
                        i,
                        refused(ToolError::Declined {
                            tool: call.name.clone(),
                            reason: reason.clone(),
                        }),
                    );
                }
                Some(Decision::Approve { arguments }) => {
                    let args = arguments.clone().unwrap_or_else(|| call.arguments.clone());
                    match tool.validate(&args) {
                        Ok(()) => {
                            if arguments.is_some() {
                                if p.edited.len() <= i {
                                    p.edited.resize(i + 1, None);
                                }
                                p.edited[i] = Some(args.clone());
                            }
                            jobs.push(Job {
                                call: i,
                                tool: t,
                                arguments: args,
                            });
                        }
                        Err(e) => set(&mut p.results, i, refused(e)),
                    }
                }
            }
        }
        if !checks.is_empty() {
            return Action::CheckApprovals { turn, checks };
        }
        p.awaiting = awaiting;
        Action::RunTools { turn, jobs }
    }

    /// The jobs of a [`Action::RunTools`] finished (a tool's error goes back to the model as
    /// an error result): records their results. Then the turn waits for humans, or is complete
    /// and the loop goes on.
    pub(crate) fn tools_ran(
        &self,
        st: &mut AgentCheckpoint,
        outcomes: Vec<(usize, Result<Value, ToolError>)>,
    ) -> Action {
        let turn = st.turns.len().saturating_sub(1);
        let Some(p) = st.pending.as_mut() else {
            return self.model_turn(st, TurnKind::Model);
        };
        for (i, out) in outcomes {
            let Some(call) = p.calls.get(i) else {
                continue;
            };
            let (content, is_error) = match out {
                Ok(v) => (v, false),
                Err(ToolError::InputRequired { request, .. }) => {
                    tracing::info!(tool = %call.name, call_id = %call.id, "tool call asks a human");
                    if p.asking.len() <= i {
                        p.asking.resize(i + 1, None);
                    }
                    p.asking[i] = Some(*request);
                    continue;
                }
                Err(e) => (Value::String(e.to_string()), true),
            };
            let result = ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                content,
                is_error,
            };
            set(&mut p.results, i, result);
        }
        if !p.awaiting.is_empty() {
            return Action::AwaitApproval {
                pending: p.awaiting.clone(),
            };
        }
        let asking = p.waiting_inputs();
        if !asking.is_empty() {
            return Action::AwaitInput { pending: asking };
        }
        let Some(p) = st.pending.take() else {
            return self.model_turn(st, TurnKind::Model);
        };
        let results: Vec<ToolResult> = p.results.into_iter().flatten().collect();
        let final_call = p
            .calls
            .iter()
            .zip(&results)
            .find(|(c, r)| {
                !r.is_error
                    && self
                        .agent
                        .tools
                        .iter()
                        .any(|t| t.spec.name == c.name && t.tool.is_final())
            })
            .map(|(c, r)| (c.name.clone(), r.content.clone()));
        st.messages.push(Message::tool_results(results.clone()));
        if let Some(t) = st.turns.get_mut(turn) {
            t.tool_results = results;
        }
        if let Some((tool, value)) = final_call {
            return Action::Finish {
                stop: StopReason::FinalTool { tool },
                object: Some(value),
            };
        }
        if let Some(stop) = &self.agent.stop_when
            && st.turns.get(turn).is_some_and(|t| stop(t))
        {
            return Action::Finish {
                stop: StopReason::Predicate,
                object: None,
            };
        }
        self.model_turn(st, TurnKind::Model)
    }
}

fn set(results: &mut Vec<Option<ToolResult>>, i: usize, r: ToolResult) {
    if results.len() <= i {
        results.resize(i + 1, None);
    }
    results[i] = Some(r);
}

/// Parses an answer as JSON (allowing a Markdown code fence around it) and checks it.
pub(crate) fn parse_structured(text: &str, schema: &Schema) -> Result<Value, String> {
    let mut t = text.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        t = rest.strip_suffix("```").unwrap_or(rest).trim();
    }
    let v: Value = serde_json::from_str(t).map_err(|e| format!("the answer is not JSON: {e}"))?;
    schema.check(&v).map_err(|(pointer, reason)| {
        if pointer.is_empty() {
            reason
        } else {
            format!("at `{pointer}`: {reason}")
        }
    })?;
    Ok(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! The loop's rules on checkpoints alone: no model, no tool runs, no runtime.

    use serde_json::json;

    use super::*;
    use crate::model::{ContentPart, FinishReason, Usage};
    use crate::tool::{FnTool, tool_json};

    fn tool(name: &str) -> FnTool {
        tool_json(
            name,
            "test tool",
            json!({"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}),
            |_ctx, _args: Value| async move { Ok::<_, String>(Value::Null) },
        )
    }

    fn agent() -> Agent {
        Agent::new("a")
            .tool(tool("add"))
            .tool(tool("rm").requires_approval(true))
            .tool(tool("done").final_tool(true))
            .max_steps(3)
    }

    fn checkpoint(agent: &str) -> AgentCheckpoint {
        AgentCheckpoint {
            agent: agent.into(),
            messages: vec![Message::user("go")],
            history: 0,
            turns: Vec::new(),
            thread: None,
            resource: None,
            context: Value::Null,
            repaired: false,
            pending: None,
        }
    }

    fn answer(text: &str, calls: &[(&str, &str, Value)]) -> ModelResponse {
        let mut content = Vec::new();
        if !text.is_empty() {
            content.push(ContentPart::text(text));
        }
        for (id, name, arguments) in calls {
            content.push(ContentPart::ToolCall(ToolCall {
                id: (*id).into(),
                name: (*name).into(),
                arguments: arguments.clone(),
            }));
        }
        ModelResponse {
            content,
            finish_reason: if calls.is_empty() {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            },
            raw_finish_reason: None,
            usage: Usage::default(),
            cost_usd: None,
            response_id: None,
            request_id: None,
            model: None,
        }
    }

    /// Answers the machine's approval questions with the tools' own `approval`, as the driver
    /// does with `needs_approval`.
    fn settle(m: &Machine<'_>, st: &mut AgentCheckpoint, a: Action) -> Action {
        match a {
            Action::CheckApprovals { checks, .. } => {
                let answers = checks
                    .iter()
                    .map(|j| (j.call, m.agent.tools[j.tool].tool.approval(&j.arguments)))
                    .collect();
                m.approvals_checked(st, answers)
            }
            other => other,
        }
    }

    fn answered(
        m: &Machine<'_>,
        st: &mut AgentCheckpoint,
        kind: TurnKind,
        resp: &ModelResponse,
    ) -> Result<Action, AgentError> {
        let a = m.answered(st, kind, resp)?;
        Ok(settle(m, st, a))
    }

    fn start(
        m: &mut Machine<'_>,
        st: &mut AgentCheckpoint,
        d: Option<Decisions>,
    ) -> Result<Action, AgentError> {
        let a = m.start(st, d)?;
        Ok(settle(m, st, a))
    }

    fn call_model(turn: usize) -> Action {
        Action::CallModel {
            turn,
            kind: TurnKind::Model,
        }
    }

    #[test]
    fn a_fresh_checkpoint_calls_the_model_and_a_plain_answer_ends_the_loop() {
        let a = agent();
        let mut m = Machine::new(&a);
        let mut st = checkpoint("a");
        assert_eq!(start(&mut m, &mut st, None).unwrap(), call_model(0));
        let next = m
            .answered(&mut st, TurnKind::Model, &answer("hi", &[]))
            .unwrap();
        assert_eq!(
            next,
            Action::Finish {
                stop: StopReason::Done,
                object: None
            }
        );
        assert_eq!(st.turns.len(), 1);
        assert_eq!(st.turns[0].text, "hi");
        assert_eq!(st.messages.len(), 2);
        assert!(st.pending.is_none());
    }

    #[test]
    fn tool_calls_are_checked_before_they_run() {
        let a = agent();
        let mut m = Machine::new(&a);
        let mut st = checkpoint("a");
        start(&mut m, &mut st, None).unwrap();
        let resp = answer(
            "",
            &[
                ("c1", "add", json!({"x": 1})),
                ("c2", "nope", json!({})),
                ("c3", "add", json!({"x": "one"})),
            ],
        );
        let next = answered(&m, &mut st, TurnKind::Model, &resp).unwrap();
        assert_eq!(
            next,
            Action::RunTools {
                turn: 0,
                jobs: vec![Job {
                    call: 0,
                    tool: 0,
                    arguments: json!({"x": 1})
                }]
            }
        );
        let p = st.pending.as_ref().unwrap();
        assert!(p.results[0].is_none(), "the valid call has not run yet");
        let unknown = p.results[1].as_ref().unwrap();
        assert!(unknown.is_error);
        let text = unknown.content.as_str().unwrap();
        assert!(
            text.contains("nope") && text.contains("add, rm, done"),
            "{text}"
        );
        let invalid = p.results[2].as_ref().unwrap();
        assert!(invalid.is_error && invalid.content.as_str().unwrap().contains("/x"));

        // The job's outcome completes the turn: one tool-results message, in call order, and
        // a tool's error goes back to the model rather than failing the loop.
        let next = m.tools_ran(
            &mut st,
            vec![(
                0,
                Err(ToolError::Failed {
                    tool: "add".into(),
                    message: "disk full".into(),
                }),
            )],
        );
        assert_eq!(next, call_model(1));
        assert!(st.pending.is_none());
        let results = &st.turns[0].tool_results;
        assert_eq!(
            results
                .iter()
                .map(|r| r.call_id.as_str())
                .collect::<Vec<_>>(),
            ["c1", "c2", "c3"]
        );
        assert!(results[0].is_error && results[0].content.as_str().unwrap().contains("disk full"));
        assert_eq!(st.messages.last().unwrap().role, Role::Tool);
    }

    #[test]
    fn a_call_needing_approval_waits_while_the_others_run() {
        let a = agent();
        let mut m = Machine::new(&a);
        let mut st = checkpoint("a");
        start(&mut m, &mut st, None).unwrap();
        let resp = answer(
            "",
            &[
                ("c1", "rm", json!({"x": 1})),
                ("c2", "add", json!({"x": 2})),
            ],
        );
        let next = answered(&m, &mut st, TurnKind::Model, &resp).unwrap();
        let Action::RunTools { jobs, .. } = next else {
            panic!("expected RunTools, got {next:?}")
        };
        assert_eq!(jobs.iter().map(|j| j.call).collect::<Vec<_>>(), [1]);
        let next = m.tools_ran(&mut st, vec![(1, Ok(json!(3)))]);
        let Action::AwaitApproval { pending } = next else {
            panic!("expected AwaitApproval, got {next:?}")
        };
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].call_id, "c1");
        assert_eq!(st.pending(), pending, "the checkpoint names what waits");

        // The checkpoint survives serialization (it is what a resume reads back).
        let mut st: AgentCheckpoint =
            serde_json::from_value(serde_json::to_value(&st).unwrap()).unwrap();

        // Resumed with an edited approval: only the waiting call runs, with the new arguments.
        let d = Decisions::parse(
            "a",
            &json!({"decisions": {"c1": {"approved": true, "arguments": {"x": 9}}}}),
        )
        .unwrap();
        let next = start(&mut m, &mut st, Some(d)).unwrap();
        assert_eq!(
            next,
            Action::RunTools {
                turn: 0,
                jobs: vec![Job {
                    call: 0,
                    tool: 1,
                    arguments: json!({"x": 9})
                }]
            }
        );
        assert_eq!(
            m.tools_ran(&mut st, vec![(0, Ok(json!("removed")))]),
            call_model(1)
        );
        assert_eq!(st.turns[0].tool_results[1].content, json!(3));
    }

    #[test]
    fn a_declined_call_becomes_an_error_result_with_the_reason() {
        let a = agent();
        let mut m = Machine::new(&a);
        let mut st = checkpoint("a");
        start(&mut m, &mut st, None).unwrap();
        answered(
            &m,
            &mut st,
            TurnKind::Model,
            &answer("", &[("c1", "rm", json!({"x": 1}))]),
        )
        .unwrap();
        assert!(matches!(
            m.tools_ran(&mut st, vec![]),
            Action::AwaitApproval { .. }
        ));
        let d = Decisions::parse("a", &json!({"approved": false, "reason": "not today"})).unwrap();
        assert_eq!(
            start(&mut m, &mut st, Some(d)).unwrap(),
            Action::RunTools {
                turn: 0,
                jobs: vec![]
            }
        );
        assert_eq!(m.tools_ran(&mut st, vec![]), call_model(1));
        let r = &st.turns[0].tool_results[0];
        assert!(r.is_error && r.content.as_str().unwrap().contains("not today"));

        // An approval whose edited arguments break the schema is refused the same way.
        let mut m = Machine::new(&a);
        let mut st = checkpoint("a");
        answered(
            &m,
            &mut st,
            TurnKind::Model,
            &answer("", &[("c1", "rm", json!({"x": 1}))]),
        )
        .unwrap();
        m.tools_ran(&mut st, vec![]);
        let d =
            Decisions::parse("a", &json!({"approved": true, "arguments": {"x": "nine"}})).unwrap();
        assert_eq!(
            start(&mut m, &mut st, Some(d)).unwrap(),
            Action::RunTools {
                turn: 0,
                jobs: vec![]
            }
        );
    }

    #[test]
    fn resuming_wrongly_is_an_error() {
        let a = agent();
        let mut m = Machine::new(&a);
        let d = Decisions::parse("a", &json!(true)).unwrap();
        let err = start(&mut m, &mut checkpoint("a"), Some(d)).unwrap_err();
        assert!(err.to_string().contains("no tool call is waiting"), "{err}");
        let err = start(&mut m, &mut checkpoint("b"), None).unwrap_err();
        assert!(err.to_string().contains("belongs to agent `b`"), "{err}");
    }

    #[test]
    fn a_final_tool_ends_the_loop_with_its_result_unless_it_failed() {
        let a = agent();
        let m = Machine::new(&a);
        let mut st = checkpoint("a");
        answered(
            &m,
            &mut st,
            TurnKind::Model,
            &answer("", &[("c1", "done", json!({"x": 1}))]),
        )
        .unwrap();
        assert_eq!(
            m.tools_ran(&mut st, vec![(0, Ok(json!({"report": "ok"})))]),
            Action::Finish {
                stop: StopReason::FinalTool {
                    tool: "done".into()
                },
                object: Some(json!({"report": "ok"}))
            }
        );
        let mut st = checkpoint("a");
        answered(
            &m,
            &mut st,
            TurnKind::Model,
            &answer("", &[("c1", "done", json!({"x": 1}))]),
        )
        .unwrap();
        let failed = Err(ToolError::Failed {
            tool: "done".into(),
            message: "no".into(),
        });
        assert_eq!(m.tools_ran(&mut st, vec![(0, failed)]), call_model(1));
    }

    #[test]
    fn max_steps_counts_normal_turns_and_the_stop_predicate_is_asked_after_each_turn() {
        let a = agent();
        let mut m = Machine::new(&a);
        let mut st = checkpoint("a");
        for turn in 0..3 {
            let call = [("c", "add", json!({"x": 1}))];
            answered(&m, &mut st, TurnKind::Model, &answer("", &call)).unwrap();
            let next = m.tools_ran(&mut st, vec![(0, Ok(json!(1)))]);
            if turn < 2 {
                assert_eq!(next, call_model(turn + 1));
            } else {
                assert_eq!(
                    next,
                    Action::Finish {
                        stop: StopReason::MaxSteps,
                        object: None
                    }
                );
            }
        }
        assert_eq!(
            start(&mut m, &mut st, None).unwrap(),
            Action::Finish {
                stop: StopReason::MaxSteps,
                object: None
            },
            "a checkpoint at the limit does not call the model again"
        );

        let a = agent().stop_when(|t| t.tool_results.iter().any(|r| r.content == json!("stop")));
        let m = Machine::new(&a);
        let mut st = checkpoint("a");
        answered(
            &m,
            &mut st,
            TurnKind::Model,
            &answer("", &[("c", "add", json!({"x": 1}))]),
        )
        .unwrap();
        assert_eq!(
            m.tools_ran(&mut st, vec![(0, Ok(json!("stop")))]),
            Action::Finish {
                stop: StopReason::Predicate,
                object: None
            }
        );
    }

    #[test]
    fn structured_output_gets_one_repair_call() {
        let a = agent().output_schema(
            json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),
        );
        let mut m = Machine::new(&a);
        let mut st = checkpoint("a");
        assert_eq!(
            answered(
                &m,
                &mut st,
                TurnKind::Model,
                &answer("```json\n{\"n\": 2}\n```", &[])
            )
            .unwrap(),
            Action::Finish {
                stop: StopReason::Done,
                object: Some(json!({"n": 2}))
            },
            "a fenced JSON answer is accepted"
        );

        let mut st = checkpoint("a");
        let next = m
            .answered(&mut st, TurnKind::Model, &answer("{\"n\": \"two\"}", &[]))
            .unwrap();
        assert_eq!(
            next,
            Action::CallModel {
                turn: 1,
                kind: TurnKind::Repair
            }
        );
        let ask = st.messages.last().unwrap();
        assert_eq!(ask.role, Role::User);
        assert!(
            format!("{ask:?}").contains("/n"),
            "the repair request names the field"
        );

        // A checkpoint saved before the repair call goes on with the repair call.
        let mut saved = st.clone();
        assert_eq!(
            start(&mut m, &mut saved, None).unwrap(),
            Action::CallModel {
                turn: 1,
                kind: TurnKind::Repair
            }
        );

        let err = m
            .answered(&mut st, TurnKind::Repair, &answer("still not", &[]))
            .unwrap_err();
        match err {
            AgentError::StructuredOutput { reason, text, .. } => {
                assert!(reason.contains("not JSON"), "{reason}");
                assert_eq!(text, "still not");
            }
            other => panic!("expected StructuredOutput, got {other:?}"),
        }
        assert_eq!(st.turns[1].kind, TurnKind::Repair);
    }

    #[test]
    fn each_call_is_asked_once_whether_it_needs_approval() {
        let a = agent();
        let mut m = Machine::new(&a);
        let mut st = checkpoint("a");
        let resp = answer(
            "",
            &[
                ("c1", "rm", json!({"x": 1})),
                ("c2", "nope", json!({})),
                ("c3", "add", json!({"x": 2})),
            ],
        );
        // Only calls of known tools with valid arguments are asked about; nothing runs yet.
        let next = m.answered(&mut st, TurnKind::Model, &resp).unwrap();
        assert_eq!(
            next,
            Action::CheckApprovals {
                turn: 0,
                checks: vec![
                    Job {
                        call: 0,
                        tool: 1,
                        arguments: json!({"x": 1})
                    },
                    Job {
                        call: 2,
                        tool: 0,
                        arguments: json!({"x": 2})
                    },
                ]
            }
        );
        // The answers, not the tools' static flags, decide: here `add` (no approval flag) is
        // said to need one, and `rm` is said not to.
        let next = m.approvals_checked(&mut st, vec![(0, false), (2, true)]);
        assert_eq!(
            next,
            Action::RunTools {
                turn: 0,
                jobs: vec![Job {
                    call: 0,
                    tool: 1,
                    arguments: json!({"x": 1})
                }]
            }
        );
        assert!(
            matches!(m.tools_ran(&mut st, vec![(0, Ok(json!(1)))]), Action::AwaitApproval { ref pending } if pending[0].call_id == "c3")
        );
        // The answers are part of the checkpoint: a resume does not ask again.
        let mut st: AgentCheckpoint =
            serde_json::from_value(serde_json::to_value(&st).unwrap()).unwrap();
        let d = Decisions::parse("a", &json!(true)).unwrap();
        assert_eq!(
            m.start(&mut st, Some(d)).unwrap(),
            Action::RunTools {
                turn: 0,
                jobs: vec![Job {
                    call: 2,
                    tool: 0,
                    arguments: json!({"x": 2})
                }]
            }
        );

        // A call no answer came for needs approval.
        let m = Machine::new(&a);
        let mut st = checkpoint("a");
        m.answered(
            &mut st,
            TurnKind::Model,
            &answer("", &[("c1", "add", json!({"x": 1}))]),
        )
        .unwrap();
        assert_eq!(
            m.approvals_checked(&mut st, vec![]),
            Action::RunTools {
                turn: 0,
                jobs: vec![]
            }
        );
        assert!(matches!(
            m.tools_ran(&mut st, vec![]),
            Action::AwaitApproval { .. }
        ));
    }

    #[test]
    fn a_decision_answers_only_the_turn_that_waited() {
        let a = agent();
        let m = Machine::new(&a);
        let mut st = checkpoint("a");
        let rm = |id: &str, x: i64| answer("", &[(id, "rm", json!({ "x": x }))]);
        answered(&m, &mut st, TurnKind::Model, &rm("c1", 1)).unwrap();
        assert!(matches!(
            m.tools_ran(&mut st, vec![]),
            Action::AwaitApproval { .. }
        ));

        // The resume's drive: "approve" answers c1, of turn 0 ...
        let mut m = Machine::new(&a);
        let d = Decisions::parse("a", &json!({"approved": true})).unwrap();
        assert_eq!(
            start(&mut m, &mut st, Some(d)).unwrap(),
            Action::RunTools {
                turn: 0,
                jobs: vec![Job {
                    call: 0,
                    tool: 1,
                    arguments: json!({"x": 1})
                }]
            }
        );
        assert_eq!(
            m.tools_ran(&mut st, vec![(0, Ok(json!("gone")))]),
            call_model(1)
        );
        // ... and not the same tool's call in the next turn, which waits again.
        answered(&m, &mut st, TurnKind::Model, &rm("c2", 2)).unwrap();
        let next = m.tools_ran(&mut st, vec![]);
        let Action::AwaitApproval { pending } = next else {
            panic!("expected AwaitApproval, got {next:?}")
        };
        assert_eq!(pending[0].call_id, "c2");
    }

    fn asks(message: &str) -> ToolError {
        ToolError::input_required(
            "add",
            crate::tool::InputRequest::form(
                message,
                json!({"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"]}),
            ),
        )
    }

    fn answers(st: &AgentCheckpoint, v: Value) -> Result<Decisions, AgentError> {
        Decisions::parse_for("a", st, &v)
    }

    #[test]
    fn a_call_that_asks_waits_for_the_answer_and_runs_again_with_it() {
        let a = agent();
        let mut m = Machine::new(&a);
        let mut st = checkpoint("a");
        let resp = answer(
            "",
            &[
                ("c1", "add", json!({"x": 1})),
                ("c2", "add", json!({"x": 2})),
            ],
        );
        answered(&m, &mut st, TurnKind::Model, &resp).unwrap();
        // c1 asks, c2 completes: the turn waits for the answer, c2's result is kept.
        let next = m.tools_ran(
            &mut st,
            vec![(0, Err(asks("Which day?"))), (1, Ok(json!(2)))],
        );
        let Action::AwaitInput { pending } = next else {
            panic!("expected AwaitInput, got {next:?}")
        };
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].call_id, "c1");
        assert_eq!(pending[0].arguments, json!({"x": 1}));
        assert_eq!(pending[0].request.message, "Which day?");
        assert_eq!(
            st.pending_inputs(),
            pending,
            "the checkpoint names what waits"
        );
        assert!(st.pending().is_empty());
        let mut st: AgentCheckpoint =
            serde_json::from_value(serde_json::to_value(&st).unwrap()).unwrap();

        // Answers are checked against the question, naming the field.
        let e = answers(
            &st,
            json!({"c1": {"action": "accept", "content": {"day": 5}}}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("c1") && e.contains("content/day"), "{e}");
        let e = answers(&st, json!({"c2": {"action": "decline"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no tool call `c2` waits"), "{e}");
        assert!(answers(&st, json!({"approved": true})).is_err());

        // Answered: only c1 runs again, with its arguments; it asks a second question.
        let d = answers(
            &st,
            json!({"c1": {"action": "accept", "content": {"day": "Friday"}}}),
        )
        .unwrap();
        let next = start(&mut m, &mut st, Some(d)).unwrap();
        assert_eq!(
            next,
            Action::RunTools {
                turn: 0,
                jobs: vec![Job {
                    call: 0,
                    tool: 0,
                    arguments: json!({"x": 1})
                }]
            }
        );
        assert_eq!(st.pending.as_ref().unwrap().inputs[0].len(), 1);
        let next = m.tools_ran(&mut st, vec![(0, Err(asks("Sure?")))]);
        assert!(
            matches!(next, Action::AwaitInput { ref pending } if pending[0].request.message == "Sure?")
        );

        // The second answer: the call runs with both answers and completes the turn.
        let mut m = Machine::new(&a);
        let d = answers(&st, json!({"c1": {"action": "decline"}})).unwrap();
        let next = start(&mut m, &mut st, Some(d)).unwrap();
        assert!(matches!(next, Action::RunTools { ref jobs, .. } if jobs.len() == 1));
        let inputs = &st.pending.as_ref().unwrap().inputs[0];
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[1].answer, crate::tool::InputAnswer::Decline);
        assert_eq!(
            m.tools_ran(&mut st, vec![(0, Ok(json!("done")))]),
            call_model(1)
        );
        let results = &st.turns[0].tool_results;
        assert_eq!(results[0].content, json!("done"));
        assert_eq!(results[1].content, json!(2));
    }

    #[test]
    fn approvals_are_decided_before_questions_are_asked_and_edited_arguments_stay() {
        let a = agent();
        let mut m = Machine::new(&a);
        let mut st = checkpoint("a");
        let resp = answer(
            "",
            &[
                ("c1", "rm", json!({"x": 1})),
                ("c2", "add", json!({"x": 2})),
            ],
        );
        answered(&m, &mut st, TurnKind::Model, &resp).unwrap();
        // c2 asks while c1 waits for approval: approval first.
        let next = m.tools_ran(&mut st, vec![(1, Err(asks("Which day?")))]);
        assert!(
            matches!(next, Action::AwaitApproval { ref pending } if pending[0].call_id == "c1")
        );
        let d = answers(
            &st,
            json!({"decisions": {"c1": {"approved": true, "arguments": {"x": 7}}}}),
        )
        .unwrap();
        let next = start(&mut m, &mut st, Some(d)).unwrap();
        assert_eq!(
            next,
            Action::RunTools {
                turn: 0,
                jobs: vec![Job {
                    call: 0,
                    tool: 1,
                    arguments: json!({"x": 7})
                }]
            },
            "the approved call runs; the asking one still waits"
        );
        // The approved call asks too: both wait for input, c1 with its edited arguments.
        let next = m.tools_ran(&mut st, vec![(0, Err(asks("Really?")))]);
        let Action::AwaitInput { pending } = next else {
            panic!("expected AwaitInput, got {next:?}")
        };
        assert_eq!(
            pending
                .iter()
                .map(|p| p.call_id.as_str())
                .collect::<Vec<_>>(),
            ["c1", "c2"]
        );
        assert_eq!(pending[0].arguments, json!({"x": 7}));

        // One answer: c1 runs again with its edited arguments (no new approval); c2 waits.
        let mut m = Machine::new(&a);
        let d = answers(&st, json!({"c1": {"action": "cancel"}})).unwrap();
        let next = start(&mut m, &mut st, Some(d)).unwrap();
        assert_eq!(
            next,
            Action::RunTools {
                turn: 0,
                jobs: vec![Job {
                    call: 0,
                    tool: 1,
                    arguments: json!({"x": 7})
                }]
            }
        );
        let next = m.tools_ran(&mut st, vec![(0, Ok(json!("removed")))]);
        assert!(
            matches!(next, Action::AwaitInput { ref pending } if pending.len() == 1 && pending[0].call_id == "c2")
        );
    }
}
