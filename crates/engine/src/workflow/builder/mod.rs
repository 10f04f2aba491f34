//! The workflow DSL: `Workflow::new(..).step(..).then(..).branch(..).parallel(..).commit()`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::schema::Schema;
use super::step::{RetryPolicy, Step};
use crate::error::WorkflowError;

mod compile;
mod graph;

#[cfg(test)]
use compile::set_static_paths;
pub use graph::CommittedWorkflow;
pub(crate) use graph::{Graph, NodeDef, NodeKind, SleepSpec, StepDef};

pub(crate) type Selector = Arc<dyn Fn(&Value) -> String + Send + Sync>;
pub(crate) type Condition = Arc<dyn Fn(&Value) -> bool + Send + Sync>;
pub(crate) type MapFn = Arc<dyn Fn(&Value) -> Value + Send + Sync>;
pub(crate) type WakeFn = Arc<dyn Fn(&Value) -> SystemTime + Send + Sync>;

/// What happens when a non-idempotent step was started but its result never committed (the
/// process died in between): it is not re-run on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInterrupt {
    /// The run fails with an error naming the step.
    #[default]
    Fail,
    /// The run suspends at the step's path; `resume` it to run the step again.
    Suspend,
}

#[derive(Clone, Default)]
struct StepOptions {
    retry: Option<RetryPolicy>,
    timeout: Option<Duration>,
    non_idempotent: Option<OnInterrupt>,
    input_schema: Option<Value>,
    output_schema: Option<Value>,
    resume_schema: Option<Value>,
}

impl StepOptions {
    fn is_default(&self) -> bool {
        self.retry.is_none()
            && self.timeout.is_none()
            && self.non_idempotent.is_none()
            && self.input_schema.is_none()
            && self.output_schema.is_none()
            && self.resume_schema.is_none()
    }
}

enum NodeSpec {
    Step(Arc<dyn Step>),
    Fragment(Workflow),
    Nested(CommittedWorkflow),
}

/// Something a workflow can run at one place: a step (with its options), a fragment of a
/// workflow (inlined under a name), or a committed workflow nested as a step.
///
/// ```
/// use std::time::Duration;
/// use miyabi_engine::{step_fn, RetryPolicy, StepContext};
/// use serde_json::Value;
/// let flaky = step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) })
///     .retry(RetryPolicy::attempts(3))
///     .timeout(Duration::from_secs(30));
/// # let _ = flaky;
/// ```
pub struct Node {
    spec: NodeSpec,
    opts: StepOptions,
    handle: Option<u32>,
}

impl Node {
    /// A node running `step`.
    pub fn step(step: impl Step + 'static) -> Self {
        Self::from_arc(Arc::new(step))
    }

    /// A node running a shared step object.
    pub fn from_arc(step: Arc<dyn Step>) -> Self {
        Self::of(NodeSpec::Step(step), None)
    }

    /// A step executed outside Rust (by a driver such as the Node binding's), known by
    /// `handle`. Such a run must be driven through [`crate::external::ExternalRun`].
    pub fn external(handle: u32) -> Self {
        Self::of(NodeSpec::Step(Arc::new(ExternalStep(handle))), Some(handle))
    }

    fn of(spec: NodeSpec, handle: Option<u32>) -> Self {
        Self {
            spec,
            opts: StepOptions::default(),
            handle,
        }
    }

    /// Retries the step on retryable failures (steps only).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.opts.retry = Some(policy);
        self
    }

    /// Fails the attempt (retryably) if it runs longer than `d` (steps only).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.opts.timeout = Some(d);
        self
    }

    /// Declares the step non-idempotent: its start is recorded before it runs, and after a
    /// crash between start and commit it is not re-run on its own (steps only).
    pub fn non_idempotent(mut self, on_interrupt: OnInterrupt) -> Self {
        self.opts.non_idempotent = Some(on_interrupt);
        self
    }

    /// A JSON Schema the step's input must satisfy (steps only).
    pub fn input_schema(mut self, schema: Value) -> Self {
        self.opts.input_schema = Some(schema);
        self
    }

    /// A JSON Schema the step's output must satisfy (steps only).
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.opts.output_schema = Some(schema);
        self
    }

    /// A JSON Schema that resume data for this step must satisfy (steps only).
    pub fn resume_schema(mut self, schema: Value) -> Self {
        self.opts.resume_schema = Some(schema);
        self
    }
}

impl<S: Step + 'static> From<S> for Node {
    fn from(step: S) -> Self {
        Node::step(step)
    }
}

impl From<Workflow> for Node {
    fn from(fragment: Workflow) -> Self {
        Node::of(NodeSpec::Fragment(fragment), None)
    }
}

impl From<CommittedWorkflow> for Node {
    fn from(w: CommittedWorkflow) -> Self {
        Node::of(NodeSpec::Nested(w), None)
    }
}

impl From<&CommittedWorkflow> for Node {
    fn from(w: &CommittedWorkflow) -> Self {
        Node::from(w.clone())
    }
}

enum SleepSpecB {
    For(Duration),
    Until(WakeFn),
}

enum Item {
    Node(String, Node),
    Parallel(Vec<(String, Node)>, bool),
    Branch(String, Selector, Vec<(String, Node)>, Option<u32>),
    Loop {
        id: String,
        body: Node,
        cond: Condition,
        until: bool,
        max: u32,
        handle: Option<u32>,
    },
    ForEach {
        id: String,
        body: Node,
        concurrency: usize,
    },
    Sleep(String, SleepSpecB, Option<u32>),
    Map(String, MapFn, Option<u32>),
}

/// A workflow under construction. Steps run in order; each gets the previous one's output.
///
/// Paths: a step's path is its id; a branch's arms live under the branch id
/// (`review/deploy`); parallel children keep their own ids; loop and foreach iterations are
/// `id[i]` (with a fragment body's steps under it, `id[i]/fix`); a nested workflow's steps are
/// under its id (`sub/inner`).
///
/// ```
/// use miyabi_engine::{step_fn, StepContext, Workflow};
/// use serde_json::{json, Value};
///
/// let step = |q: f64| step_fn(move |_ctx: StepContext, _in: Value| async move { Ok(json!({"quality": q})) });
/// let workflow = Workflow::new("issue-resolution")
///     .step("analyze", step(0.9))
///     .then("implement", step(0.9))
///     .branch(
///         "review",
///         |out: &Value| if out["quality"].as_f64() > Some(0.8) { "deploy" } else { "fix" },
///         [("deploy", step(1.0)), ("fix", step(0.5))],
///     )
///     .parallel([("test", step(1.0)), ("lint", step(1.0)), ("security", step(1.0))])
///     .then("deploy", step(1.0))
///     .commit()?;
/// assert_eq!(workflow.id(), "issue-resolution");
/// # Ok::<(), miyabi_engine::WorkflowError>(())
/// ```
pub struct Workflow {
    id: String,
    items: Vec<Item>,
    input_schema: Option<Value>,
    output_schema: Option<Value>,
    timeout: Option<Duration>,
}

impl Workflow {
    /// Starts a workflow with this id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            items: Vec::new(),
            input_schema: None,
            output_schema: None,
            timeout: None,
        }
    }

    /// Appends a step (same as [`Workflow::then`]).
    pub fn step(self, id: impl Into<String>, node: impl Into<Node>) -> Self {
        self.then(id, node)
    }

    /// Appends a step, a fragment or a nested workflow; it gets the previous output as input.
    pub fn then(mut self, id: impl Into<String>, node: impl Into<Node>) -> Self {
        self.items.push(Item::Node(id.into(), node.into()));
        self
    }

    /// Appends an approval gate: the run suspends until the gate is decided (see
    /// [`crate::approval`]); the gate's output is the decision, with the reviewed data as
    /// approved (possibly edited) under `data`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use miyabi_engine::approval::{ApprovalGate, Escalate, Quorum};
    /// use miyabi_engine::{step_fn, StepContext, Workflow};
    /// use serde_json::Value;
    /// let codegen = step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) });
    /// let deploy = step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) });
    /// let workflow = Workflow::new("ship")
    ///     .step("generate-code", codegen)
    ///     .await_approval("code-review", ApprovalGate::new()
    ///         .approvers(["alice", "team:leads"]).policy(Quorum(2))
    ///         .deadline(Duration::from_secs(3 * 24 * 3600)).on_timeout(Escalate(["cto"])))
    ///     .then("deploy", deploy)
    ///     .commit()?;
    /// # let _ = workflow;
    /// # Ok::<(), miyabi_engine::WorkflowError>(())
    /// ```
    pub fn await_approval(
        self,
        id: impl Into<String>,
        gate: crate::approval::ApprovalGate,
    ) -> Self {
        self.then(id, Node::step(gate))
    }

    /// Runs exactly one arm: the one `selector` names for the previous output. The arm gets
    /// the previous output as input; the branch's output is the arm's output. The choice is
    /// recorded, so a replay takes the same arm.
    pub fn branch<F, S, A, N>(mut self, id: impl Into<String>, selector: F, arms: A) -> Self
    where
        F: Fn(&Value) -> S + Send + Sync + 'static,
        S: AsRef<str>,
        A: IntoIterator<Item = (&'static str, N)>,
        N: Into<Node>,
    {
        let sel: Selector = Arc::new(move |v| selector(v).as_ref().to_string());
        let arms = arms
            .into_iter()
            .map(|(k, n)| (k.to_string(), n.into()))
            .collect();
        self.items.push(Item::Branch(id.into(), sel, arms, None));
        self
    }

    /// Runs children concurrently on the previous output; the output is an object keyed by
    /// child id. Fail-fast: the first failure fails the run.
    pub fn parallel<A, N>(mut self, children: A) -> Self
    where
        A: IntoIterator<Item = (&'static str, N)>,
        N: Into<Node>,
    {
        let c = children
            .into_iter()
            .map(|(k, n)| (k.to_string(), n.into()))
            .collect();
        self.items.push(Item::Parallel(c, false));
        self
    }

    /// Like [`Workflow::parallel`], but waits for every child: a failed child's entry in the
    /// output is `{"error": message}` and the run goes on.
    pub fn parallel_all<A, N>(mut self, children: A) -> Self
    where
        A: IntoIterator<Item = (&'static str, N)>,
        N: Into<Node>,
    {
        let c = children
            .into_iter()
            .map(|(k, n)| (k.to_string(), n.into()))
            .collect();
        self.items.push(Item::Parallel(c, true));
        self
    }

    /// Runs `body`, then again on its own output while `cond(output)` is true, at most
    /// `max_iterations` times (more fails the run).
    pub fn dowhile<F>(
        self,
        id: impl Into<String>,
        body: impl Into<Node>,
        cond: F,
        max_iterations: u32,
    ) -> Self
    where
        F: Fn(&Value) -> bool + Send + Sync + 'static,
    {
        self.looped(
            id.into(),
            body.into(),
            Arc::new(cond),
            false,
            max_iterations,
            None,
        )
    }

    /// Runs `body`, then again on its own output until `cond(output)` is true, at most
    /// `max_iterations` times (more fails the run).
    pub fn dountil<F>(
        self,
        id: impl Into<String>,
        body: impl Into<Node>,
        cond: F,
        max_iterations: u32,
    ) -> Self
    where
        F: Fn(&Value) -> bool + Send + Sync + 'static,
    {
        self.looped(
            id.into(),
            body.into(),
            Arc::new(cond),
            true,
            max_iterations,
            None,
        )
    }

    fn looped(
        mut self,
        id: String,
        body: Node,
        cond: Condition,
        until: bool,
        max: u32,
        handle: Option<u32>,
    ) -> Self {
        self.items.push(Item::Loop {
            id,
            body,
            cond,
            until,
            max,
            handle,
        });
        self
    }

    /// A branch whose selector runs outside Rust, known by `handle` (see [`Node::external`]).
    pub fn branch_external(
        mut self,
        id: impl Into<String>,
        handle: u32,
        arms: Vec<(String, Node)>,
    ) -> Self {
        let sel: Selector = Arc::new(|_| String::new());
        self.items
            .push(Item::Branch(id.into(), sel, arms, Some(handle)));
        self
    }

    /// A parallel block with children named at run time (for specs built outside Rust).
    pub fn parallel_named(mut self, children: Vec<(String, Node)>, collect_all: bool) -> Self {
        self.items.push(Item::Parallel(children, collect_all));
        self
    }

    /// A loop whose condition runs outside Rust, known by `handle`; `until` picks do-until.
    pub fn loop_external(
        self,
        id: impl Into<String>,
        body: impl Into<Node>,
        handle: u32,
        until: bool,
        max_iterations: u32,
    ) -> Self {
        let cond: Condition = Arc::new(|_| false);
        self.looped(
            id.into(),
            body.into(),
            cond,
            until,
            max_iterations,
            Some(handle),
        )
    }

    /// A `map` that runs outside Rust, known by `handle`.
    pub fn map_external(mut self, id: impl Into<String>, handle: u32) -> Self {
        let f: MapFn = Arc::new(|v| v.clone());
        self.items.push(Item::Map(id.into(), f, Some(handle)));
        self
    }

    /// A `sleep_until` whose wake-time function runs outside Rust, known by `handle`.
    pub fn sleep_until_external(mut self, id: impl Into<String>, handle: u32) -> Self {
        let f: WakeFn = Arc::new(|_| SystemTime::now());
        self.items
            .push(Item::Sleep(id.into(), SleepSpecB::Until(f), Some(handle)));
        self
    }

    /// Runs `body` once per element of the previous output (an array), at most `concurrency`
    /// at a time; the output is the array of results in order.
    pub fn foreach(
        mut self,
        id: impl Into<String>,
        body: impl Into<Node>,
        concurrency: usize,
    ) -> Self {
        self.items.push(Item::ForEach {
            id: id.into(),
            body: body.into(),
            concurrency,
        });
        self
    }

    /// Waits for `d` (durably: a restarted engine waits only what is left); passes its input on.
    pub fn sleep(mut self, id: impl Into<String>, d: Duration) -> Self {
        self.items
            .push(Item::Sleep(id.into(), SleepSpecB::For(d), None));
        self
    }

    /// Waits until the time `at(previous output)` names; passes its input on.
    pub fn sleep_until<F>(mut self, id: impl Into<String>, at: F) -> Self
    where
        F: Fn(&Value) -> SystemTime + Send + Sync + 'static,
    {
        self.items.push(Item::Sleep(
            id.into(),
            SleepSpecB::Until(Arc::new(at)),
            None,
        ));
        self
    }

    /// Reshapes the previous output; the result is recorded like a step's.
    pub fn map<F>(mut self, id: impl Into<String>, f: F) -> Self
    where
        F: Fn(&Value) -> Value + Send + Sync + 'static,
    {
        self.items.push(Item::Map(id.into(), Arc::new(f), None));
        self
    }

    /// A JSON Schema the run's input must satisfy.
    pub fn input_schema(mut self, schema: Value) -> Self {
        self.input_schema = Some(schema);
        self
    }

    /// A JSON Schema the run's output must satisfy.
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Fails a run that takes longer than `d` in total (time spent suspended counts too).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Validates the definition and freezes it: rejects an empty workflow, duplicate or
    /// invalid ids, branches without arms, bad schemas and bad loop or foreach settings.
    pub fn commit(self) -> Result<CommittedWorkflow, WorkflowError> {
        compile::compile(self)
    }
}

/// A step whose code lives outside Rust; running it natively is an error.
struct ExternalStep(u32);

#[async_trait::async_trait]
impl Step for ExternalStep {
    async fn run(
        &self,
        ctx: &super::step::StepContext,
        _input: Value,
    ) -> Result<Value, crate::error::StepError> {
        Err(crate::error::StepError::fatal(format!(
            "step `{}` (external handle {}) has no Rust code: drive this run with ExternalRun",
            ctx.path(),
            self.0
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::step::{StepContext, step_fn};

    fn echo() -> Node {
        step_fn(|_: StepContext, v: Value| async move { Ok(v) })
    }

    /// Every node's static path, as `(segment, path)` for the nodes that have a segment.
    fn paths(wf: &CommittedWorkflow) -> Vec<(String, Option<String>)> {
        wf.graph
            .nodes
            .iter()
            .filter_map(|n| Some((n.seg.clone()?, n.path.as_deref().map(str::to_string))))
            .collect()
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn nodes_outside_loops_get_their_run_paths_at_commit() -> TestResult {
        let inner = Workflow::new("inner").step("x", echo()).commit()?;
        let wf = Workflow::new("w")
            .step("a", echo())
            .branch("b", |_: &Value| "ok", [("ok", echo()), ("no", echo())])
            .parallel([("p1", echo()), ("p2", echo())])
            .then("n", inner)
            .dountil("l", echo(), |_: &Value| true, 3)
            .foreach("f", echo(), 2)
            .commit()?;
        let got = paths(&wf);
        let want = |seg: &str, path: Option<&str>| (seg.to_string(), path.map(str::to_string));
        for p in [
            want("a", Some("a")),
            want("b", Some("b")),
            want("ok", Some("b/ok")),
            want("no", Some("b/no")),
            want("p1", Some("p1")),
            want("p2", Some("p2")),
            want("n", Some("n")),
            want("x", Some("n/x")),
            want("l", Some("l")),
            want("f", Some("f")),
        ] {
            assert!(got.contains(&p), "{p:?} not in {got:?}");
        }
        // The root sequence has the empty path; loop and foreach bodies have none (their
        // paths carry the iteration).
        let root = wf.graph.node(wf.graph.root);
        assert_eq!(root.path.as_deref(), Some(""));
        for n in &wf.graph.nodes {
            if let NodeKind::Loop { body, .. } | NodeKind::ForEach { body, .. } = &n.kind {
                assert_eq!(wf.graph.node(*body).path, None);
            }
        }
        Ok(())
    }

    #[test]
    fn a_node_with_two_parents_leaves_every_path_to_the_machine() -> TestResult {
        let wf = Workflow::new("w").step("a", echo()).commit()?;
        let mut nodes: Vec<NodeDef> = wf.graph.nodes.clone();
        let a = nodes
            .iter()
            .position(|n| n.seg.as_deref() == Some("a"))
            .ok_or("no node `a`")?;
        for n in &mut nodes {
            n.path = None;
        }
        nodes.push(NodeDef {
            seg: None,
            kind: NodeKind::Seq(vec![a, a]),
            handle: None,
            path: None,
        });
        let root = nodes.len() - 1;
        set_static_paths(&mut nodes, root);
        assert!(nodes.iter().all(|n| n.path.is_none()));
        Ok(())
    }
}
