//! A committed workflow's graph as JSON, for dashboards and the HTTP API.
//!
//! The document lists **nodes** (one per unit a run can record or a UI can draw) and **edges**
//! between them:
//!
//! ```json
//! {
//!   "id": "publish", "fingerprint": "…", "input_schema": null, "output_schema": null,
//!   "timeout_ms": null,
//!   "nodes": [
//!     {"id": "draft", "path": "draft", "kind": "step", "parent": null, "retry": 1, …},
//!     {"id": "review", "path": "review", "kind": "branch", "parent": null, "arms": ["ok", "fix"]},
//!     {"id": "review/ok", "path": "review/ok", "kind": "step", "parent": "review", …}
//!   ],
//!   "edges": [
//!     {"from": "draft", "to": "review", "kind": "next"},
//!     {"from": "review", "to": "review/ok", "kind": "arm", "label": "ok"}
//!   ]
//! }
//! ```
//!
//! Node kinds: `step`, `branch`, `parallel`, `loop`, `foreach`, `sleep`, `map`, `nested` (a
//! committed workflow used as a node) and `group` (an uncommitted workflow fragment used as a
//! node). A node's `path` is the path template its records have in a run (`fix[*]/revise` for
//! every iteration of the loop `fix`); a `parallel` adds no path segment, so its `path` is null
//! and its `id` is made from its children (`parallel(lint,test)` under its scope). `parent` is
//! the id of the enclosing branch, parallel, loop, foreach, nested or group node.
//!
//! Edge kinds: `next` (sequence order within one scope), `arm` (branch to an arm, `label` is
//! the arm name), `child` (parallel to a child), `body` (loop, foreach, nested or group to the
//! first node of its body).

use serde_json::{Map, Value, json};

use super::builder::{CommittedWorkflow, Graph, NodeKind, OnInterrupt, SleepSpec};

impl CommittedWorkflow {
    /// The workflow's graph as JSON: nodes with their ids, paths, kinds and options, and the
    /// edges between them. The format is described in `docs/server.md` ("Workflow graphs").
    ///
    /// ```
    /// use miyabi_engine::{step_fn, StepContext, Workflow};
    /// use serde_json::Value;
    /// let echo = || step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) });
    /// let wf = Workflow::new("w").step("a", echo()).then("b", echo()).commit()?;
    /// let g = wf.graph();
    /// assert_eq!(g["nodes"][1]["path"], "b");
    /// assert_eq!(g["edges"][0]["kind"], "next");
    /// # Ok::<(), miyabi_engine::WorkflowError>(())
    /// ```
    pub fn graph(&self) -> Value {
        let g = &self.graph;
        let mut out = Export {
            graph: g,
            nodes: Vec::new(),
            edges: Vec::new(),
        };
        out.walk(g.root, "", None);
        json!({
            "id": g.id,
            "fingerprint": g.fingerprint,
            "input_schema": g.input_schema.as_ref().map(|s| s.json().clone()),
            "output_schema": g.output_schema.as_ref().map(|s| s.json().clone()),
            "timeout_ms": g.timeout.map(|t| t.as_millis() as u64),
            "nodes": out.nodes,
            "edges": out.edges,
        })
    }
}

struct Export<'a> {
    graph: &'a Graph,
    nodes: Vec<Value>,
    edges: Vec<Value>,
}

fn join(prefix: &str, seg: &str) -> String {
    if prefix.is_empty() {
        seg.to_string()
    } else {
        format!("{prefix}/{seg}")
    }
}

impl Export<'_> {
    /// Emits node `i` placed in scope `scope` under `parent`; returns the id of the node a
    /// predecessor's edge should point to (None for an empty sequence).
    fn walk(&mut self, i: usize, scope: &str, parent: Option<&str>) -> Option<String> {
        let n = self.graph.node(i);
        let path = n.seg.as_deref().map(|s| join(scope, s));
        let here = path.clone().unwrap_or_else(|| scope.to_string());
        let mut fields = Map::new();
        let kind = match &n.kind {
            NodeKind::Seq(children) => {
                let Some(path) = &path else {
                    // A sequence without a segment (the root, a loop body, a nested
                    // workflow's body) is transparent: its children belong to the parent.
                    return self.sequence(children, &here, parent);
                };
                let id = path.clone();
                self.push(&id, Some(path), "group", parent, fields, n.handle);
                if let Some(first) = self.sequence(children, &here, Some(&id)) {
                    self.edge(&id, &first, "body", None);
                }
                return Some(id);
            }
            NodeKind::Parallel {
                children,
                collect_all,
            } => {
                let names: Vec<&str> = children
                    .iter()
                    .filter_map(|&c| self.graph.node(c).seg.as_deref())
                    .collect();
                let id = join(scope, &format!("parallel({})", names.join(",")));
                fields.insert("collect_all".into(), json!(collect_all));
                self.push(&id, None, "parallel", parent, fields, n.handle);
                for &c in children {
                    if let Some(to) = self.walk(c, scope, Some(&id)) {
                        self.edge(&id, &to, "child", None);
                    }
                }
                return Some(id);
            }
            NodeKind::Step(def) => {
                fields.insert("retry".into(), json!(def.retry.max_attempts));
                fields.insert(
                    "timeout_ms".into(),
                    json!(def.timeout.map(|t| t.as_millis() as u64)),
                );
                fields.insert(
                    "non_idempotent".into(),
                    json!(def.non_idempotent.map(|o| match o {
                        OnInterrupt::Fail => "fail",
                        OnInterrupt::Suspend => "suspend",
                    })),
                );
                for (name, s) in [
                    ("input_schema", &def.input_schema),
                    ("output_schema", &def.output_schema),
                    ("resume_schema", &def.resume_schema),
                ] {
                    if let Some(s) = s {
                        fields.insert(name.into(), s.json().clone());
                    }
                }
                "step"
            }
            NodeKind::Branch { arms, .. } => {
                let names: Vec<&str> = arms.iter().map(|(a, _)| a.as_str()).collect();
                fields.insert("arms".into(), json!(names));
                let id = here.clone();
                self.push(&id, Some(&here), "branch", parent, fields, n.handle);
                for (arm, c) in arms {
                    if let Some(to) = self.walk(*c, &here, Some(&id)) {
                        self.edge(&id, &to, "arm", Some(arm));
                    }
                }
                return Some(id);
            }
            NodeKind::Loop {
                body, until, max, ..
            } => {
                fields.insert("until".into(), json!(until));
                fields.insert("max_iterations".into(), json!(max));
                return Some(self.container(&here, "loop", parent, fields, n.handle, *body));
            }
            NodeKind::ForEach { body, concurrency } => {
                fields.insert("concurrency".into(), json!(concurrency));
                return Some(self.container(&here, "foreach", parent, fields, n.handle, *body));
            }
            NodeKind::Sleep(spec) => {
                match spec {
                    SleepSpec::For(d) => {
                        fields.insert("duration_ms".into(), json!(d.as_millis() as u64))
                    }
                    SleepSpec::Until(_) => fields.insert("until".into(), json!(true)),
                };
                "sleep"
            }
            NodeKind::Map(_) => "map",
            NodeKind::Nested { body, workflow, .. } => {
                fields.insert("workflow".into(), json!(workflow));
                let id = here.clone();
                self.push(&id, Some(&here), "nested", parent, fields, n.handle);
                if let Some(first) = self.walk(*body, &here, Some(&id)) {
                    self.edge(&id, &first, "body", None);
                }
                return Some(id);
            }
        };
        self.push(&here, Some(&here), kind, parent, fields, n.handle);
        Some(here)
    }

    /// A loop or foreach: its body's paths are under `{here}[*]`.
    fn container(
        &mut self,
        here: &str,
        kind: &str,
        parent: Option<&str>,
        fields: Map<String, Value>,
        handle: Option<u32>,
        body: usize,
    ) -> String {
        let id = here.to_string();
        self.push(&id, Some(here), kind, parent, fields, handle);
        if let Some(first) = self.walk(body, &format!("{here}[*]"), Some(&id)) {
            self.edge(&id, &first, "body", None);
        }
        id
    }

    /// The children of a sequence in order, linked by `next` edges; returns the first's id.
    fn sequence(
        &mut self,
        children: &[usize],
        scope: &str,
        parent: Option<&str>,
    ) -> Option<String> {
        let mut first = None;
        let mut prev: Option<String> = None;
        for &c in children {
            let Some(id) = self.walk(c, scope, parent) else {
                continue;
            };
            if let Some(p) = &prev {
                self.edge(p, &id, "next", None);
            }
            first.get_or_insert_with(|| id.clone());
            prev = Some(id);
        }
        first
    }

    fn push(
        &mut self,
        id: &str,
        path: Option<&str>,
        kind: &str,
        parent: Option<&str>,
        mut fields: Map<String, Value>,
        handle: Option<u32>,
    ) {
        fields.insert("id".into(), json!(id));
        fields.insert("path".into(), json!(path));
        fields.insert("kind".into(), json!(kind));
        fields.insert("parent".into(), json!(parent));
        if let Some(h) = handle {
            fields.insert("external".into(), json!(h));
        }
        self.nodes.push(Value::Object(fields));
    }

    fn edge(&mut self, from: &str, to: &str, kind: &str, label: Option<&str>) {
        let mut e = json!({ "from": from, "to": to, "kind": kind });
        if let (Some(l), Value::Object(m)) = (label, &mut e) {
            m.insert("label".into(), json!(l));
        }
        self.edges.push(e);
    }
}
