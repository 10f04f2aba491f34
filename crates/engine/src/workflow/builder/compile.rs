//! The compiler: `Workflow::commit` turns the DSL's items into the flat graph, checks ids,
//! arms, limits and schemas, claims every path template, and writes the fingerprint.

use super::*;

/// Builds the flat graph of `wf` (see [`Workflow::commit`]).
pub(super) fn compile(wf: Workflow) -> Result<CommittedWorkflow, WorkflowError> {
    let mut b = GraphBuilder {
        workflow: wf.id.clone(),
        nodes: Vec::new(),
        paths: HashSet::new(),
        desc: String::new(),
    };
    let _ = write!(b.desc, "workflow:{};", wf.id);
    let input_schema = b.schema(wf.input_schema, "workflow input")?;
    let output_schema = b.schema(wf.output_schema, "workflow output")?;
    let timeout = wf.timeout;
    let id = wf.id.clone();
    if wf.items.is_empty() {
        return Err(WorkflowError::Empty { workflow: id });
    }
    let root = b.fragment(None, wf.items, "")?;
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
