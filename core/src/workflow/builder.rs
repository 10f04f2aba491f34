//! The workflow DSL: `Workflow::new(..).step(..).then(..).branch(..).parallel(..).commit()`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::schema::Schema;
use super::step::{RetryPolicy, Step};
use crate::error::WorkflowError;

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
/// use miyabi::{step_fn, RetryPolicy, StepContext};
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
/// use miyabi::{step_fn, StepContext, Workflow};
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
/// # Ok::<(), miyabi::WorkflowError>(())
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
    /// use miyabi::approval::{ApprovalGate, Escalate, Quorum};
    /// use miyabi::{step_fn, StepContext, Workflow};
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
    /// # Ok::<(), miyabi::WorkflowError>(())
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
        let mut b = GraphBuilder {
            workflow: self.id.clone(),
            nodes: Vec::new(),
            paths: HashSet::new(),
            desc: String::new(),
        };
        let _ = write!(b.desc, "workflow:{};", self.id);
        let input_schema = b.schema(self.input_schema, "workflow input")?;
        let output_schema = b.schema(self.output_schema, "workflow output")?;
        let timeout = self.timeout;
        let id = self.id.clone();
        if self.items.is_empty() {
            return Err(WorkflowError::Empty { workflow: id });
        }
        let root = b.fragment(None, self.items, "")?;
        let fingerprint = format!("{:016x}", fnv1a(b.desc.as_bytes()));
        set_static_paths(&mut b.nodes, root);
        Ok(CommittedWorkflow {
            graph: Arc::new(Graph {
                id,
                fingerprint,
                nodes: b.nodes,
                root,
                input_schema,
                output_schema,
                timeout,
            }),
        })
    }
}

/// A validated, immutable workflow; cheap to clone. Register it with an engine and start runs.
#[derive(Clone)]
pub struct CommittedWorkflow {
    pub(crate) graph: Arc<Graph>,
}

impl std::fmt::Debug for CommittedWorkflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommittedWorkflow")
            .field("id", &self.graph.id)
            .field("fingerprint", &self.graph.fingerprint)
            .field("nodes", &self.graph.nodes.len())
            .finish()
    }
}

impl CommittedWorkflow {
    /// The workflow id.
    pub fn id(&self) -> &str {
        &self.graph.id
    }

    /// A hash of the definition's structure (ids, kinds, options, schemas); a run records it,
    /// and resuming under a different fingerprint is an error.
    pub fn fingerprint(&self) -> &str {
        &self.graph.fingerprint
    }

    /// The workflow's input schema, if any.
    pub fn input_schema(&self) -> Option<&Value> {
        self.graph.input_schema.as_ref().map(Schema::json)
    }
}

/// Step options after compilation.
#[derive(Clone)]
pub(crate) struct StepDef {
    pub step: Arc<dyn Step>,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    pub non_idempotent: Option<OnInterrupt>,
    pub input_schema: Option<Schema>,
    pub output_schema: Option<Schema>,
    pub resume_schema: Option<Schema>,
}

#[derive(Clone)]
pub(crate) enum SleepSpec {
    For(Duration),
    Until(WakeFn),
}

#[derive(Clone)]
pub(crate) enum NodeKind {
    Step(Box<StepDef>),
    Seq(Vec<usize>),
    Parallel {
        children: Vec<usize>,
        collect_all: bool,
    },
    Branch {
        selector: Selector,
        arms: Vec<(String, usize)>,
    },
    Loop {
        body: usize,
        cond: Condition,
        until: bool,
        max: u32,
    },
    ForEach {
        body: usize,
        concurrency: usize,
    },
    Sleep(SleepSpec),
    Map(MapFn),
    Nested {
        body: usize,
        workflow: String,
        input_schema: Option<Schema>,
        output_schema: Option<Schema>,
    },
}

/// One node of the committed graph. `seg` is the path segment it adds (None: none).
#[derive(Clone)]
pub(crate) struct NodeDef {
    pub seg: Option<String>,
    pub kind: NodeKind,
    /// For user code run outside Rust: the driver's handle for it.
    pub handle: Option<u32>,
    /// The node's full path in every run, when it is not under a loop or foreach (whose
    /// iterations give it a different path each time): shared by every frame made for it, so
    /// a run allocates no path for it. Set by [`set_static_paths`] when the graph is committed.
    pub path: Option<Arc<str>>,
}

/// A committed workflow's graph: a flat arena of nodes.
pub(crate) struct Graph {
    pub id: String,
    pub fingerprint: String,
    pub nodes: Vec<NodeDef>,
    pub root: usize,
    pub input_schema: Option<Schema>,
    pub output_schema: Option<Schema>,
    pub timeout: Option<Duration>,
}

impl Graph {
    /// Whether some of its code runs outside Rust (its runs need an [`crate::external::ExternalRun`]).
    pub(crate) fn is_external(&self) -> bool {
        self.nodes.iter().any(|n| n.handle.is_some())
    }

    pub(crate) fn node(&self, i: usize) -> &NodeDef {
        // Indices come from the builder and are always in range.
        &self.nodes[i]
    }
}

struct GraphBuilder {
    workflow: String,
    nodes: Vec<NodeDef>,
    paths: HashSet<String>,
    desc: String,
}

fn join(prefix: &str, seg: &str) -> String {
    if prefix.is_empty() {
        seg.to_string()
    } else {
        format!("{prefix}/{seg}")
    }
}

impl GraphBuilder {
    fn push(&mut self, seg: Option<String>, kind: NodeKind) -> usize {
        self.push_h(seg, kind, None)
    }

    fn push_h(&mut self, seg: Option<String>, kind: NodeKind, handle: Option<u32>) -> usize {
        if let Some(h) = handle {
            let _ = write!(self.desc, "handle={h};");
        }
        self.nodes.push(NodeDef {
            seg,
            kind,
            handle,
            path: None,
        });
        self.nodes.len() - 1
    }

    fn schema(&mut self, s: Option<Value>, place: &str) -> Result<Option<Schema>, WorkflowError> {
        let Some(json) = s else { return Ok(None) };
        let _ = write!(self.desc, "schema[{place}]:{json};");
        Schema::new(json)
            .map(Some)
            .map_err(|reason| WorkflowError::BadSchema {
                workflow: self.workflow.clone(),
                place: place.to_string(),
                reason,
            })
    }

    fn check_id(&self, id: &str) -> Result<(), WorkflowError> {
        let reason = if id.is_empty() {
            Some("ids must not be empty".to_string())
        } else {
            id.chars()
                .find(|c| matches!(c, '/' | '[' | ']' | '#'))
                .map(|c| format!("`{c}` is reserved for paths"))
        };
        match reason {
            Some(reason) => Err(WorkflowError::InvalidId {
                workflow: self.workflow.clone(),
                id: id.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    fn claim_path(&mut self, path: String) -> Result<(), WorkflowError> {
        if self.paths.insert(path.clone()) {
            Ok(())
        } else {
            Err(WorkflowError::DuplicateId {
                workflow: self.workflow.clone(),
                id: path,
            })
        }
    }

    fn invalid(&self, id: &str, reason: impl Into<String>) -> WorkflowError {
        WorkflowError::InvalidNode {
            workflow: self.workflow.clone(),
            id: id.to_string(),
            reason: reason.into(),
        }
    }

    /// Builds a sequence of items in scope `prefix`; `seg` is the sequence's own segment.
    fn fragment(
        &mut self,
        seg: Option<String>,
        items: Vec<Item>,
        prefix: &str,
    ) -> Result<usize, WorkflowError> {
        if items.is_empty() {
            return Err(self.invalid(prefix, "a workflow fragment needs at least one step"));
        }
        self.desc.push_str("seq(");
        let mut children = Vec::with_capacity(items.len());
        for item in items {
            children.push(self.item(item, prefix)?);
        }
        self.desc.push_str(");");
        Ok(self.push(seg, NodeKind::Seq(children)))
    }

    fn item(&mut self, item: Item, prefix: &str) -> Result<usize, WorkflowError> {
        match item {
            Item::Node(id, node) => {
                self.check_id(&id)?;
                let path = join(prefix, &id);
                self.claim_path(path.clone())?;
                self.node(Some(id), node, &path)
            }
            Item::Parallel(children, collect_all) => {
                if children.is_empty() {
                    return Err(self.invalid(prefix, "parallel() needs at least one child"));
                }
                let _ = write!(self.desc, "par[{collect_all}](");
                let mut idx = Vec::with_capacity(children.len());
                for (id, node) in children {
                    self.check_id(&id)?;
                    let path = join(prefix, &id);
                    self.claim_path(path.clone())?;
                    idx.push(self.node(Some(id), node, &path)?);
                }
                self.desc.push_str(");");
                Ok(self.push(
                    None,
                    NodeKind::Parallel {
                        children: idx,
                        collect_all,
                    },
                ))
            }
            Item::Branch(id, selector, arms, handle) => {
                self.check_id(&id)?;
                let path = join(prefix, &id);
                self.claim_path(path.clone())?;
                if arms.is_empty() {
                    return Err(self.invalid(&path, "branch() needs at least one arm"));
                }
                let _ = write!(self.desc, "branch:{id}(");
                let mut idx = Vec::with_capacity(arms.len());
                for (arm, node) in arms {
                    self.check_id(&arm)?;
                    let arm_path = join(&path, &arm);
                    self.claim_path(arm_path.clone())?;
                    let _ = write!(self.desc, "arm:{arm}=");
                    let n = self.node(Some(arm.clone()), node, &arm_path)?;
                    idx.push((arm, n));
                }
                self.desc.push_str(");");
                Ok(self.push_h(
                    Some(id),
                    NodeKind::Branch {
                        selector,
                        arms: idx,
                    },
                    handle,
                ))
            }
            Item::Loop {
                id,
                body,
                cond,
                until,
                max,
                handle,
            } => {
                self.check_id(&id)?;
                let path = join(prefix, &id);
                self.claim_path(path.clone())?;
                if max == 0 {
                    return Err(self.invalid(&path, "a loop's max_iterations must be at least 1"));
                }
                let _ = write!(self.desc, "loop:{id}[until={until},max={max}](");
                let body = self.node(None, body, &format!("{path}[*]"))?;
                self.desc.push_str(");");
                Ok(self.push_h(
                    Some(id),
                    NodeKind::Loop {
                        body,
                        cond,
                        until,
                        max,
                    },
                    handle,
                ))
            }
            Item::ForEach {
                id,
                body,
                concurrency,
            } => {
                self.check_id(&id)?;
                let path = join(prefix, &id);
                self.claim_path(path.clone())?;
                if concurrency == 0 {
                    return Err(self.invalid(&path, "foreach concurrency must be at least 1"));
                }
                let _ = write!(self.desc, "foreach:{id}[{concurrency}](");
                let body = self.node(None, body, &format!("{path}[*]"))?;
                self.desc.push_str(");");
                Ok(self.push(Some(id), NodeKind::ForEach { body, concurrency }))
            }
            Item::Sleep(id, spec, handle) => {
                self.check_id(&id)?;
                self.claim_path(join(prefix, &id))?;
                let spec = match spec {
                    SleepSpecB::For(d) => {
                        let _ = write!(self.desc, "sleep:{id}[{}ms];", d.as_millis());
                        SleepSpec::For(d)
                    }
                    SleepSpecB::Until(f) => {
                        let _ = write!(self.desc, "sleep-until:{id};");
                        SleepSpec::Until(f)
                    }
                };
                Ok(self.push_h(Some(id), NodeKind::Sleep(spec), handle))
            }
            Item::Map(id, f, handle) => {
                self.check_id(&id)?;
                self.claim_path(join(prefix, &id))?;
                let _ = write!(self.desc, "map:{id};");
                Ok(self.push_h(Some(id), NodeKind::Map(f), handle))
            }
        }
    }

    /// Builds a node placed at `path` with segment `seg`.
    fn node(
        &mut self,
        seg: Option<String>,
        node: Node,
        path: &str,
    ) -> Result<usize, WorkflowError> {
        let Node { spec, opts, handle } = node;
        match spec {
            NodeSpec::Step(step) => {
                let _ = write!(
                    self.desc,
                    "step:{path}[retry={:?},timeout={:?},nonidem={:?}]",
                    opts.retry.as_ref().map(|r| r.max_attempts),
                    opts.timeout,
                    opts.non_idempotent
                );
                let input_schema = self.schema(
                    opts.input_schema.or_else(|| step.input_schema()),
                    &format!("step `{path}` input"),
                )?;
                let output_schema = self.schema(
                    opts.output_schema.or_else(|| step.output_schema()),
                    &format!("step `{path}` output"),
                )?;
                let resume_schema =
                    self.schema(opts.resume_schema, &format!("step `{path}` resume data"))?;
                self.desc.push(';');
                Ok(self.push_h(
                    seg,
                    NodeKind::Step(Box::new(StepDef {
                        step,
                        retry: opts.retry.unwrap_or_default(),
                        timeout: opts.timeout,
                        non_idempotent: opts.non_idempotent,
                        input_schema,
                        output_schema,
                        resume_schema,
                    })),
                    handle,
                ))
            }
            NodeSpec::Fragment(w) => {
                if !opts.is_default() {
                    return Err(self.invalid(path, "step options (retry, timeout, schemas) apply to steps, not to workflow fragments"));
                }
                let _ = write!(self.desc, "fragment:{path}");
                self.fragment(seg, w.items, path)
            }
            NodeSpec::Nested(w) => {
                if !opts.is_default() {
                    return Err(self.invalid(path, "step options (retry, timeout, schemas) apply to steps, not to nested workflows"));
                }
                let g = &w.graph;
                let _ = write!(self.desc, "nested:{path}={}:{};", g.id, g.fingerprint);
                // Copy the nested graph's arena, shifting its indices.
                let off = self.nodes.len();
                for n in &g.nodes {
                    self.nodes.push(NodeDef {
                        seg: n.seg.clone(),
                        kind: shift(&n.kind, off),
                        handle: n.handle,
                        path: None,
                    });
                }
                // The nested paths must not collide with ours: claim them under `path`.
                let mut inner = Vec::new();
                collect_paths(g, g.root, "", &mut inner);
                for p in inner {
                    self.claim_path(join(path, &p))?;
                }
                Ok(self.push(
                    seg,
                    NodeKind::Nested {
                        body: g.root + off,
                        workflow: g.id.clone(),
                        input_schema: g.input_schema.clone(),
                        output_schema: g.output_schema.clone(),
                    },
                ))
            }
        }
    }
}

fn shift(k: &NodeKind, off: usize) -> NodeKind {
    match k {
        NodeKind::Seq(c) => NodeKind::Seq(c.iter().map(|i| i + off).collect()),
        NodeKind::Parallel {
            children,
            collect_all,
        } => NodeKind::Parallel {
            children: children.iter().map(|i| i + off).collect(),
            collect_all: *collect_all,
        },
        NodeKind::Branch { selector, arms } => NodeKind::Branch {
            selector: selector.clone(),
            arms: arms.iter().map(|(a, i)| (a.clone(), i + off)).collect(),
        },
        NodeKind::Loop {
            body,
            cond,
            until,
            max,
        } => NodeKind::Loop {
            body: body + off,
            cond: cond.clone(),
            until: *until,
            max: *max,
        },
        NodeKind::ForEach { body, concurrency } => NodeKind::ForEach {
            body: body + off,
            concurrency: *concurrency,
        },
        NodeKind::Nested {
            body,
            workflow,
            input_schema,
            output_schema,
        } => NodeKind::Nested {
            body: body + off,
            workflow: workflow.clone(),
            input_schema: input_schema.clone(),
            output_schema: output_schema.clone(),
        },
        other => other.clone(),
    }
}

/// Gives every node that is not under a loop or foreach its full path (see [`NodeDef::path`]).
/// The paths follow the machine's rules: a node with a segment adds it to its parent's path,
/// one without shares it; loop and foreach bodies get an iteration index, so they and every
/// node under them keep `None`. If some node had two parents (never, for a built graph), no
/// node gets a path, and the machine joins every path as it goes.
pub(crate) fn set_static_paths(nodes: &mut [NodeDef], root: usize) {
    let children = |k: &NodeKind| -> Vec<usize> {
        match k {
            NodeKind::Seq(c) | NodeKind::Parallel { children: c, .. } => c.clone(),
            NodeKind::Branch { arms, .. } => arms.iter().map(|(_, c)| *c).collect(),
            NodeKind::Nested { body, .. } => vec![*body],
            NodeKind::Loop { .. }
            | NodeKind::ForEach { .. }
            | NodeKind::Step(_)
            | NodeKind::Sleep(_)
            | NodeKind::Map(_) => Vec::new(),
        }
    };
    let mut parents = vec![0u32; nodes.len()];
    for n in nodes.iter() {
        for c in children(&n.kind) {
            match parents.get_mut(c) {
                Some(p) => *p += 1,
                None => return,
            }
        }
    }
    if parents.iter().any(|&p| p > 1) {
        return;
    }
    let mut todo: Vec<(usize, Arc<str>)> = vec![(root, Arc::from(""))];
    while let Some((i, prefix)) = todo.pop() {
        let Some(n) = nodes.get_mut(i) else { continue };
        let here: Arc<str> = match &n.seg {
            Some(s) => join(&prefix, s).into(),
            None => prefix,
        };
        n.path = Some(Arc::clone(&here));
        todo.extend(
            children(&n.kind)
                .into_iter()
                .map(|c| (c, Arc::clone(&here))),
        );
    }
}

/// The path templates a graph's nodes occupy, for collision checks when nesting.
fn collect_paths(g: &Graph, i: usize, prefix: &str, out: &mut Vec<String>) {
    let n = g.node(i);
    let here = match &n.seg {
        Some(s) => {
            let p = join(prefix, s);
            out.push(p.clone());
            p
        }
        None => prefix.to_string(),
    };
    match &n.kind {
        NodeKind::Seq(c) | NodeKind::Parallel { children: c, .. } => {
            for &c in c {
                collect_paths(g, c, &here, out);
            }
        }
        NodeKind::Branch { arms, .. } => {
            for (_, c) in arms {
                collect_paths(g, *c, &here, out);
            }
        }
        NodeKind::Loop { body, .. } | NodeKind::ForEach { body, .. } => {
            collect_paths(g, *body, &format!("{here}[*]"), out);
        }
        NodeKind::Nested { body, .. } => collect_paths(g, *body, &here, out),
        NodeKind::Step(_) | NodeKind::Sleep(_) | NodeKind::Map(_) => {}
    }
}

/// 64-bit FNV-1a: a stable structural hash for fingerprints (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
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
