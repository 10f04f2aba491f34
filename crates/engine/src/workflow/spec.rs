//! The language-neutral workflow format: a workflow described as data (JSON, camelCase
//! fields), turned into a [`CommittedWorkflow`] with the builder's external-handle methods.
//! The Node binding sends it for workflows written in TypeScript; any other binding, the HTTP
//! API or MCP can use the same format.
//!
//! Functions of the host language (steps, branch selectors, loop conditions, maps, wake-time
//! functions) are numbered by the host: a spec names them by handle, and a driven run asks
//! for them by handle in its tasks ([`crate::external::Task`]). Numbering them in definition
//! order gives the same handles — and the same fingerprint — in every process.
//!
//! ```
//! use miyabi_engine::spec::WorkflowSpec;
//! use serde_json::json;
//!
//! let spec = WorkflowSpec::from_value(json!({
//!     "id": "double",
//!     "steps": [{ "kind": "step", "id": "a", "node": { "kind": "step", "handle": 0 } }]
//! }))?;
//! let wf = spec.commit(&[])?;
//! assert_eq!(wf.id(), "double");
//! # Ok::<(), miyabi_engine::spec::SpecError>(())
//! ```

use std::sync::Arc;
use std::time::Duration;

use super::{CommittedWorkflow, Node, OnInterrupt, RetryPolicy, Step, Workflow};
use crate::error::{ErrorCode, WorkflowError};
use serde::Deserialize;
use serde_json::Value;

/// How many iterations a loop of the workflow format may run when its `maxIterations` is not
/// given: one more fails the run.
pub const DEFAULT_MAX_ITERATIONS: u32 = 100;

fn default_max_iterations() -> u32 {
    DEFAULT_MAX_ITERATIONS
}

fn default_concurrency() -> usize {
    1
}

/// A whole workflow: id, schemas, run timeout and its items in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Workflow id.
    pub id: String,
    /// JSON Schema of the run's input.
    #[serde(default)]
    pub input_schema: Option<Value>,
    /// JSON Schema of the run's output.
    #[serde(default)]
    pub output_schema: Option<Value>,
    /// Timeout of a whole run, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The items, run in order.
    pub steps: Vec<ItemSpec>,
}

/// One item of a workflow's sequence.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum ItemSpec {
    /// A step, fragment or nested workflow under `id`.
    Step {
        /// Its id.
        id: String,
        /// What runs there.
        node: NodeSpec,
    },
    /// Children run on the same input; output keyed by child id.
    Parallel {
        /// The children.
        children: Vec<NamedNode>,
        /// Wait for every child (a failure becomes `{"error": ..}`) instead of failing fast.
        #[serde(default)]
        all: bool,
    },
    /// Exactly one arm runs, the one the selector (`selector` handle) names.
    Branch {
        /// Branch id.
        id: String,
        /// Handle of the selector function.
        selector: u32,
        /// The arms.
        arms: Vec<NamedNode>,
    },
    /// A do-while (or do-until) loop with a JS condition.
    Loop {
        /// Loop id.
        id: String,
        /// The body.
        body: NodeSpec,
        /// Handle of the condition function.
        condition: u32,
        /// Loop until the condition holds (do-until) rather than while it holds.
        #[serde(default)]
        until: bool,
        /// At most this many iterations (default [`DEFAULT_MAX_ITERATIONS`]; more fails the run).
        #[serde(default = "default_max_iterations")]
        max_iterations: u32,
    },
    /// The body runs once per element of the input array.
    Foreach {
        /// Foreach id.
        id: String,
        /// The body.
        body: NodeSpec,
        /// At most this many at a time (default 1).
        #[serde(default = "default_concurrency")]
        concurrency: usize,
    },
    /// A durable sleep for `ms` milliseconds.
    Sleep {
        /// Sleep id.
        id: String,
        /// Duration in milliseconds.
        ms: u64,
    },
    /// A durable sleep until the time a JS function returns.
    SleepUntil {
        /// Sleep id.
        id: String,
        /// Handle of the wake-time function.
        handle: u32,
    },
    /// A JS function reshaping the value.
    Map {
        /// Map id.
        id: String,
        /// Handle of the function.
        handle: u32,
    },
}

/// A node with its id (a parallel child or a branch arm).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedNode {
    /// Its id.
    pub id: String,
    /// What runs there.
    pub node: NodeSpec,
}

/// What runs at one place.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum NodeSpec {
    /// A JS step function with its options.
    Step {
        /// The function's handle.
        handle: u32,
        /// Retry policy.
        #[serde(default)]
        retry: Option<RetrySpec>,
        /// Attempt timeout in milliseconds (enforced by the JS driver; part of the fingerprint).
        #[serde(default)]
        timeout_ms: Option<u64>,
        /// `"fail"` or `"suspend"`: declares the step non-idempotent.
        #[serde(default)]
        non_idempotent: Option<OnInterrupt>,
        /// JSON Schema of its input.
        #[serde(default)]
        input_schema: Option<Value>,
        /// JSON Schema of its output.
        #[serde(default)]
        output_schema: Option<Value>,
        /// JSON Schema of its resume data.
        #[serde(default)]
        resume_schema: Option<Value>,
    },
    /// A sequence of items inlined under the node's id.
    Fragment {
        /// The items.
        steps: Vec<ItemSpec>,
    },
    /// A whole workflow nested as one node (committed on its own first).
    Workflow {
        /// The nested workflow.
        workflow: Box<WorkflowSpec>,
    },
    /// A Rust step (an agent) from the list given to `commit`, by index.
    Native {
        /// Its index in that list.
        index: u32,
        /// Retry policy.
        #[serde(default)]
        retry: Option<RetrySpec>,
        /// Attempt timeout in milliseconds.
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
}

/// A retry policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetrySpec {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// Delay before the second attempt, in milliseconds.
    #[serde(default)]
    pub initial_delay_ms: Option<u64>,
    /// Upper bound of a delay, in milliseconds.
    #[serde(default)]
    pub max_delay_ms: Option<u64>,
    /// Randomize delays (default true).
    #[serde(default)]
    pub jitter: Option<bool>,
}

/// The longest duration a spec may hold, in milliseconds: 2^53 − 1, the largest whole number a
/// JS number holds exactly (about 285,000 years). Deadlines and wake times are milliseconds
/// since the epoch in an `i64`: anything longer would overflow them.
pub const MAX_MS: u64 = 9_007_199_254_740_991;

/// A duration option in milliseconds, checked against [`MAX_MS`]; `what` names it for the
/// message (`` `timeoutMs` of step `a` ``).
fn millis(ms: u64, what: impl FnOnce() -> String) -> Result<Duration, SpecError> {
    if ms > MAX_MS {
        return Err(SpecError::Shape(format!(
            "{} must be a whole number of milliseconds from 0 to {MAX_MS}, got {ms}",
            what()
        )));
    }
    Ok(Duration::from_millis(ms))
}

impl RetrySpec {
    fn policy(&self, place: &str) -> Result<RetryPolicy, SpecError> {
        let mut p = RetryPolicy::attempts(self.attempts);
        if let Some(ms) = self.initial_delay_ms {
            p = p.initial_delay(millis(ms, || format!("`retry.initialDelayMs` of {place}"))?);
        }
        if let Some(ms) = self.max_delay_ms {
            p = p.max_delay(millis(ms, || format!("`retry.maxDelayMs` of {place}"))?);
        }
        if let Some(j) = self.jitter {
            p = p.jitter(j);
        }
        Ok(p)
    }
}

/// A spec that cannot become a workflow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The value does not have the spec's shape.
    #[error("invalid workflow spec: {0}")]
    Shape(String),
    /// The builder rejected the definition.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
}

impl SpecError {
    /// Always [`ErrorCode::InvalidWorkflow`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidWorkflow
    }
}

impl WorkflowSpec {
    /// Reads a spec from a JSON value.
    pub fn from_value(v: Value) -> Result<Self, SpecError> {
        serde_json::from_value(v).map_err(|e| SpecError::Shape(e.to_string()))
    }

    /// Builds and commits the workflow; `native` nodes name a step of `natives`.
    pub fn commit(self, natives: &[Arc<dyn Step>]) -> Result<CommittedWorkflow, SpecError> {
        if self.id.is_empty() {
            return Err(SpecError::Shape(
                "a workflow id must be a non-empty string".to_owned(),
            ));
        }
        let id = self.id;
        let mut wf = Workflow::new(id.clone());
        if let Some(s) = self.input_schema {
            wf = wf.input_schema(s);
        }
        if let Some(s) = self.output_schema {
            wf = wf.output_schema(s);
        }
        if let Some(ms) = self.timeout_ms {
            wf = wf.timeout(millis(ms, || format!("`timeoutMs` of workflow `{id}`"))?);
        }
        Ok(items(wf, self.steps, natives)?.commit()?)
    }
}

fn items(
    mut wf: Workflow,
    items: Vec<ItemSpec>,
    natives: &[Arc<dyn Step>],
) -> Result<Workflow, SpecError> {
    for item in items {
        wf = match item {
            ItemSpec::Step { id, node } => {
                let n = node.build(natives, &format!("step `{id}`"))?;
                wf.then(id, n)
            }
            ItemSpec::Parallel { children, all } => {
                wf.parallel_named(named(children, natives)?, all)
            }
            ItemSpec::Branch { id, selector, arms } => {
                wf.branch_external(id, selector, named(arms, natives)?)
            }
            ItemSpec::Loop {
                id,
                body,
                condition,
                until,
                max_iterations,
            } => {
                let body = body.build(natives, &format!("loop `{id}`"))?;
                wf.loop_external(id, body, condition, until, max_iterations)
            }
            ItemSpec::Foreach {
                id,
                body,
                concurrency,
            } => {
                let body = body.build(natives, &format!("foreach `{id}`"))?;
                wf.foreach(id, body, concurrency)
            }
            ItemSpec::Sleep { id, ms } => {
                let d = millis(ms, || format!("the duration of sleep `{id}`"))?;
                wf.sleep(id, d)
            }
            ItemSpec::SleepUntil { id, handle } => wf.sleep_until_external(id, handle),
            ItemSpec::Map { id, handle } => wf.map_external(id, handle),
        };
    }
    Ok(wf)
}

fn named(
    nodes: Vec<NamedNode>,
    natives: &[Arc<dyn Step>],
) -> Result<Vec<(String, Node)>, SpecError> {
    nodes
        .into_iter()
        .map(|n| {
            let node = n.node.build(natives, &format!("step `{}`", n.id))?;
            Ok((n.id, node))
        })
        .collect()
}

impl NodeSpec {
    /// The node; `place` names it in messages (`` step `a` ``).
    fn build(self, natives: &[Arc<dyn Step>], place: &str) -> Result<Node, SpecError> {
        match self {
            NodeSpec::Step {
                handle,
                retry,
                timeout_ms,
                non_idempotent,
                input_schema,
                output_schema,
                resume_schema,
            } => {
                let mut n = Node::external(handle);
                if let Some(r) = retry {
                    n = n.retry(r.policy(place)?);
                }
                if let Some(ms) = timeout_ms {
                    n = n.timeout(millis(ms, || format!("`timeoutMs` of {place}"))?);
                }
                if let Some(on_interrupt) = non_idempotent {
                    n = n.non_idempotent(on_interrupt);
                }
                if let Some(s) = input_schema {
                    n = n.input_schema(s);
                }
                if let Some(s) = output_schema {
                    n = n.output_schema(s);
                }
                if let Some(s) = resume_schema {
                    n = n.resume_schema(s);
                }
                Ok(n)
            }
            NodeSpec::Fragment { steps } => {
                // The fragment's own id is never used: its items live under the node's path.
                Ok(Node::from(items(
                    Workflow::new("fragment"),
                    steps,
                    natives,
                )?))
            }
            NodeSpec::Workflow { workflow } => Ok(Node::from(workflow.commit(natives)?)),
            NodeSpec::Native {
                index,
                retry,
                timeout_ms,
            } => {
                let step = natives.get(index as usize).ok_or_else(|| {
                    SpecError::Shape(format!(
                        "native step {index} is not in the list of native steps ({} given)",
                        natives.len()
                    ))
                })?;
                let mut n = Node::from_arc(Arc::clone(step));
                if let Some(r) = retry {
                    n = n.retry(r.policy(place)?);
                }
                if let Some(ms) = timeout_ms {
                    n = n.timeout(millis(ms, || format!("`timeoutMs` of {place}"))?);
                }
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::external::{DecisionKind, Task};
    use crate::{Engine, RunStatus, StepError};
    use serde_json::json;

    fn every_kind() -> Value {
        json!({
            "id": "spec",
            "inputSchema": {"type": "integer"},
            "steps": [
                {"kind": "step", "id": "inc", "node": {"kind": "step", "handle": 0,
                    "retry": {"attempts": 2, "initialDelayMs": 0, "jitter": false}}},
                {"kind": "branch", "id": "route", "selector": 1, "arms": [
                    {"id": "big", "node": {"kind": "step", "handle": 2}},
                    {"id": "small", "node": {"kind": "fragment", "steps": [
                        {"kind": "step", "id": "a", "node": {"kind": "step", "handle": 0}}
                    ]}}
                ]},
                {"kind": "loop", "id": "grow", "body": {"kind": "step", "handle": 0},
                    "condition": 3, "until": true, "maxIterations": 10},
                {"kind": "map", "id": "list", "handle": 4},
                {"kind": "foreach", "id": "each", "body": {"kind": "step", "handle": 0}, "concurrency": 2},
                {"kind": "parallel", "children": [
                    {"id": "p", "node": {"kind": "step", "handle": 5}},
                    {"id": "nested", "node": {"kind": "workflow", "workflow": {
                        "id": "inner", "steps": [{"kind": "step", "id": "x", "node": {"kind": "step", "handle": 5}}]
                    }}}
                ]},
                {"kind": "sleep", "id": "nap", "ms": 1},
                {"kind": "sleepUntil", "id": "until", "handle": 6}
            ]
        })
    }

    fn answer(t: &Task) -> Result<Value, StepError> {
        match t {
            Task::Step {
                handle: 0, input, ..
            } => Ok(json!(input.as_i64().unwrap() + 1)),
            Task::Step {
                handle: 2, input, ..
            } => Ok(json!(input.as_i64().unwrap() * 10)),
            Task::Step { handle: 5, .. } => Ok(json!("p")),
            Task::Decide {
                handle: 1,
                kind: DecisionKind::Branch,
                input,
                ..
            } => Ok(json!(if input.as_i64().unwrap() > 2 {
                "big"
            } else {
                "small"
            })),
            Task::Decide {
                handle: 3,
                kind: DecisionKind::Loop,
                input,
                ..
            } => Ok(json!(input.as_i64().unwrap() >= 12)),
            Task::Decide {
                handle: 4,
                kind: DecisionKind::Map,
                input,
                ..
            } => Ok(json!([input, 0])),
            Task::Decide {
                handle: 6,
                kind: DecisionKind::WakeTime,
                ..
            } => Ok(json!(0)),
            other => panic!("unexpected task {other:?}"),
        }
    }

    #[test]
    fn a_spec_with_every_kind_runs_to_the_end() {
        let wf = WorkflowSpec::from_value(every_kind())
            .unwrap()
            .commit(&[])
            .unwrap();
        let engine = Engine::in_memory();
        let mut run = engine.start_external(&wf, json!(1)).unwrap();
        let mut handles = Vec::new();
        while run.status() == RunStatus::Running {
            for t in run.poll().unwrap() {
                match &t {
                    Task::Step { path, handle, .. } | Task::Decide { path, handle, .. } => {
                        handles.push(*handle);
                        let r = answer(&t);
                        run.complete(path, r);
                    }
                    Task::Sleep { path, .. } => run.complete(path, Ok(Value::Null)),
                    other => panic!("unexpected task {other:?}"),
                }
            }
        }
        let out = run.outcome();
        // 1+1=2 → small → a: 3 → loop until >= 12: 4..12 → [12, 0] → [13, 1] → parallel
        assert_eq!(
            out.output,
            Some(json!({"p": "p", "nested": "p"})),
            "{out:?}"
        );
        assert!(handles.contains(&6), "the wake-time function ran");
        assert!(!handles.contains(&2), "the big arm did not run");
    }

    #[test]
    fn the_same_spec_gives_the_same_fingerprint_and_a_change_another() {
        let a = WorkflowSpec::from_value(every_kind())
            .unwrap()
            .commit(&[])
            .unwrap();
        let b = WorkflowSpec::from_value(every_kind())
            .unwrap()
            .commit(&[])
            .unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut changed = every_kind();
        changed["steps"][0]["node"]["handle"] = json!(9);
        let c = WorkflowSpec::from_value(changed)
            .unwrap()
            .commit(&[])
            .unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn bad_specs_are_rejected_with_the_reason() {
        let e =
            WorkflowSpec::from_value(json!({"id": "x", "steps": [{"kind": "jump"}]})).unwrap_err();
        assert!(e.to_string().contains("jump"), "{e}");
        let e = WorkflowSpec::from_value(json!({"id": "x", "steps": [
            {"kind": "step", "id": "a", "node": {"kind": "step", "handle": 0, "nonIdempotent": "maybe"}}
        ]}))
        .unwrap_err();
        assert!(e.to_string().contains("maybe"), "{e}");
        let e = WorkflowSpec::from_value(json!({"id": "x", "steps": [
            {"kind": "step", "id": "a", "node": {"kind": "step", "handle": 0}},
            {"kind": "step", "id": "a", "node": {"kind": "step", "handle": 1}}
        ]}))
        .unwrap()
        .commit(&[])
        .unwrap_err();
        assert!(matches!(
            e,
            SpecError::Workflow(WorkflowError::DuplicateId { .. })
        ));
        let e = WorkflowSpec::from_value(json!({"id": "x", "steps": [], "extra": 1})).unwrap_err();
        assert!(e.to_string().contains("extra"), "{e}");
    }

    #[test]
    fn an_empty_workflow_id_is_rejected_even_nested() {
        let e = WorkflowSpec::from_value(json!({"id": "", "steps": [
            {"kind": "step", "id": "a", "node": {"kind": "step", "handle": 0}}
        ]}))
        .unwrap()
        .commit(&[])
        .unwrap_err();
        assert!(e.to_string().contains("non-empty"), "{e}");
        let e = WorkflowSpec::from_value(json!({"id": "outer", "steps": [
            {"kind": "step", "id": "n", "node": {"kind": "workflow", "workflow": {"id": "", "steps": [
                {"kind": "step", "id": "a", "node": {"kind": "step", "handle": 0}}
            ]}}}
        ]}))
        .unwrap()
        .commit(&[])
        .unwrap_err();
        assert!(e.to_string().contains("non-empty"), "{e}");
    }

    #[test]
    fn durations_beyond_2_pow_53_ms_are_rejected_naming_the_option() {
        let too_long = MAX_MS + 1;
        for (spec, option) in [
            (
                json!({"id": "x", "timeoutMs": too_long, "steps": [
                {"kind": "step", "id": "a", "node": {"kind": "step", "handle": 0}}]}),
                "`timeoutMs` of workflow `x`",
            ),
            (
                json!({"id": "x", "steps": [
                {"kind": "step", "id": "a", "node": {"kind": "step", "handle": 0, "timeoutMs": u64::MAX}}]}),
                "`timeoutMs` of step `a`",
            ),
            (
                json!({"id": "x", "steps": [
                {"kind": "step", "id": "a", "node": {"kind": "step", "handle": 0,
                    "retry": {"attempts": 2, "initialDelayMs": too_long}}}]}),
                "`retry.initialDelayMs` of step `a`",
            ),
            (
                json!({"id": "x", "steps": [
                {"kind": "step", "id": "a", "node": {"kind": "step", "handle": 0}},
                {"kind": "sleep", "id": "nap", "ms": u64::MAX}]}),
                "the duration of sleep `nap`",
            ),
        ] {
            let e = WorkflowSpec::from_value(spec)
                .unwrap()
                .commit(&[])
                .unwrap_err()
                .to_string();
            assert!(e.contains(option), "{e}");
            assert!(e.contains("from 0 to 9007199254740991"), "{e}");
        }
    }

    #[test]
    fn numbers_out_of_range_are_refused_naming_the_value() {
        for (timeout, shown) in [
            (json!(1.5), "1.5"),
            (json!(-1), "-1"),
            (json!(1e300), "1e300"),
        ] {
            let e = WorkflowSpec::from_value(json!({"id": "x", "timeoutMs": timeout, "steps": []}))
                .unwrap_err()
                .to_string();
            assert!(e.contains(shown) || e.contains("1e+300"), "{e}");
        }
    }
}
