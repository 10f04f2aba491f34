//! The compiled graph: a committed workflow's flat arena of nodes, with paths and fingerprint.

use super::*;

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

    /// Whether some of its steps run outside Rust (its runs need an
    /// [`crate::external::ExternalRun`]). Public (and hidden) for the HTTP server in the crate
    /// `miyabi`, which hands such runs to its driver; not part of the API.
    #[doc(hidden)]
    pub fn is_external(&self) -> bool {
        self.graph.is_external()
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
    /// a run allocates no path for it. Set by `set_static_paths` (the compiler) when the graph is committed.
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
