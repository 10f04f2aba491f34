//! The engine core: a state machine with no I/O and no threads.
//!
//! Given a committed graph and a run's stored records it answers "what must happen next"
//! ([`Action`]s: run step P with input X, evaluate a selector, sleep until T) and takes results
//! back ([`Machine::complete`]), producing the records and events to commit. Replay is the same
//! code path as live execution: a path whose record is committed is not issued again.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::builder::{Graph, NodeKind, SleepSpec};
use super::event::EventKind;
use crate::error::{StepError, StepErrorKind};
use crate::store::{RecordKind, RunStatus, StepRecord, StepStatus};

/// A decision the run needs from user code (a [`crate::external::Task::Decide`] for a driver outside
/// Rust): which arm a branch takes, whether a loop goes on, what a map makes of its input,
/// when a `sleep_until` wakes. Its answer is recorded like a step's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecisionKind {
    /// A branch selector: answer with the arm name (a JSON string).
    Branch,
    /// A loop condition: answer with a JSON bool (true: run another iteration).
    Loop,
    /// A map function: answer with the mapped value.
    Map,
    /// A `sleep_until` function: answer with the wake time in ms since the epoch.
    WakeTime,
}

/// What the driver must do next.
#[derive(Debug)]
pub(crate) enum Action {
    /// Execute the step at `node` once.
    Run {
        path: Arc<str>,
        node: usize,
        input: Value,
        attempt: u32,
        resume: Option<Value>,
        /// Wait this long first (retry backoff).
        delay: Duration,
    },
    /// Have user code decide: a selector, condition, map or wake-time function.
    Decide {
        path: Arc<str>,
        node: usize,
        kind: DecisionKind,
        input: Value,
    },
    /// Wait until `wake_at` (ms since the epoch), then complete `path` with null.
    Sleep { path: Arc<str>, wake_at: i64 },
}

impl Action {
    /// The path the action is for.
    pub(crate) fn path(&self) -> &Arc<str> {
        match self {
            Action::Run { path, .. } | Action::Decide { path, .. } | Action::Sleep { path, .. } => {
                path
            }
        }
    }

    /// What the action runs, for messages.
    fn what(&self) -> &'static str {
        match self {
            Action::Run { .. } => "a step",
            Action::Decide { kind, .. } => match kind {
                DecisionKind::Branch => "a branch selector",
                DecisionKind::Loop => "a loop condition",
                DecisionKind::Map => "a map",
                DecisionKind::WakeTime => "a wake-time function",
            },
            Action::Sleep { .. } => "a sleep",
        }
    }
}

/// Where the run stands after a poll.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Status {
    Running,
    Suspended(Vec<String>),
    Succeeded(Value),
    Failed(String),
}

impl Status {
    /// The stored status this amounts to (a run the machine sees never is `Cancelled`).
    pub(crate) fn run_status(&self) -> RunStatus {
        match self {
            Status::Running => RunStatus::Running,
            Status::Suspended(_) => RunStatus::Suspended,
            Status::Succeeded(_) => RunStatus::Succeeded,
            Status::Failed(_) => RunStatus::Failed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IssuedKind {
    Step,
    Eval(DecisionKind),
    Sleep,
}

/// An action in flight.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    node: usize,
    kind: IssuedKind,
    attempt: u32,
    /// Kept only when a retry may need it again.
    input: Option<Value>,
    resume: Option<Value>,
    /// For a sleep: its wake time (ms since the epoch), recorded again when it fires.
    wake_at: i64,
}

enum Poll {
    Done(Value),
    Pending,
    Suspended,
    Failed(Failure),
}

/// Why a frame failed.
#[derive(Debug)]
enum Failure {
    /// The run fails with this error: a step's or a decision's, a schema violation, a limit.
    /// A `collect_all` parallel or foreach keeps it as the child's output instead.
    Run(String),
    /// The records do not match the definition; `Machine::diverged` says where and why. Never
    /// collected as a child's output.
    Diverged,
    /// A frame and the graph disagree: an engine bug, never the user's. Never collected.
    Invariant(String),
}

impl Poll {
    /// The run fails with `message`.
    fn fail(message: impl Into<String>) -> Self {
        Poll::Failed(Failure::Run(message.into()))
    }

    /// An engine invariant broke: `detail` says which.
    fn invariant(detail: impl Into<String>) -> Self {
        Poll::Failed(Failure::Invariant(detail.into()))
    }
}

struct StepFrame {
    node: usize,
    path: Arc<str>,
    input: Option<Value>,
}

struct SeqFrame {
    node: usize,
    prefix: Arc<str>,
    idx: usize,
    cur: Option<Frame>,
    last: Option<Value>,
}

struct ManyFrame {
    node: usize,
    path: Arc<str>,
    /// Inputs not yet handed to a child.
    inputs: Vec<Option<Value>>,
    children: Vec<Option<Frame>>,
    outputs: Vec<Option<Value>>,
    /// Indices of started, unfinished children.
    active: Vec<usize>,
    next: usize,
    done: usize,
    started: bool,
}

struct BranchFrame {
    node: usize,
    path: Arc<str>,
    input: Option<Value>,
    arm: Option<Frame>,
}

struct LoopFrame {
    node: usize,
    path: Arc<str>,
    iter: u32,
    input: Option<Value>,
    body: Option<Frame>,
    out: Option<Value>,
}

struct LeafFrame {
    node: usize,
    path: Arc<str>,
    input: Option<Value>,
}

struct NestedFrame {
    node: usize,
    path: Arc<str>,
    input: Option<Value>,
    inner: Option<Frame>,
}

/// A frame: small kinds (a step, a sleep, a map) are held inline by their parent, so a
/// sequence of steps allocates nothing per step frame; the others are boxed (they hold child
/// frames, and keep the enum small).
enum Frame {
    Step(StepFrame),
    Seq(Box<SeqFrame>),
    Parallel(Box<ManyFrame>),
    ForEach(Box<ManyFrame>),
    Branch(Box<BranchFrame>),
    Loop(Box<LoopFrame>),
    Sleep(LeafFrame),
    Map(LeafFrame),
    Nested(Box<NestedFrame>),
}

fn join(prefix: &str, seg: &str) -> Arc<str> {
    if prefix.is_empty() {
        seg.into()
    } else {
        let mut s = String::with_capacity(prefix.len() + 1 + seg.len());
        s.push_str(prefix);
        s.push('/');
        s.push_str(seg);
        s.into()
    }
}

/// A map keyed by path that holds its first entry inline. A run that completes one step at a
/// time has at most one path in flight and one output waiting for its frame, and then never
/// hashes a path or allocates a table; a wider run (parallel, foreach) spills into the map.
/// A key is in at most one of the two places.
pub(crate) struct PathMap<V> {
    first: Option<(Arc<str>, V)>,
    rest: HashMap<Arc<str>, V>,
}

impl<V> Default for PathMap<V> {
    fn default() -> Self {
        Self {
            first: None,
            rest: HashMap::default(),
        }
    }
}

impl<V> PathMap<V> {
    fn is_first(&self, path: &str) -> bool {
        // Paths are shared `Arc`s, so the pointer check settles it almost always.
        self.first
            .as_ref()
            .is_some_and(|(p, _)| std::ptr::eq(p.as_ptr(), path.as_ptr()) || &**p == path)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_empty()
    }

    fn contains_key(&self, path: &str) -> bool {
        self.is_first(path) || (!self.rest.is_empty() && self.rest.contains_key(path))
    }

    fn insert(&mut self, path: Arc<str>, v: V) {
        let inline = self.is_first(&path)
            || (self.first.is_none() && (self.rest.is_empty() || !self.rest.contains_key(&*path)));
        if inline {
            self.first = Some((path, v));
        } else {
            self.rest.insert(path, v);
        }
    }

    fn remove_entry(&mut self, path: &str) -> Option<(Arc<str>, V)> {
        if self.is_first(path) {
            return self.first.take();
        }
        if self.rest.is_empty() {
            return None;
        }
        self.rest.remove_entry(path)
    }

    fn remove(&mut self, path: &str) -> Option<V> {
        self.remove_entry(path).map(|(_, v)| v)
    }
}

/// The state machine of one run.
pub(crate) struct Machine {
    graph: Arc<Graph>,
    root: Option<Frame>,
    records: HashMap<Arc<str>, StepRecord>,
    /// Outputs of steps completed by this machine, not yet taken by their frame (their
    /// records went to `writes` only: a live run needs no second copy).
    done: PathMap<Value>,
    issued: PathMap<Issued>,
    /// Paths of the stored records (those the machine was built with) not yet met by a
    /// frame: empty for a fresh run, and empty again once a replay has met every record.
    unseen: HashSet<Arc<str>>,
    actions: Vec<Action>,
    writes: Vec<StepRecord>,
    events: Vec<EventKind>,
    suspended: Vec<String>,
    /// Suspended step paths and their nodes, as of the last poll.
    suspended_nodes: HashMap<Arc<str>, usize>,
    diverged: Option<(String, String)>,
    now: i64,
}

impl Machine {
    /// A machine for a run with `input`, over the records already stored for it (empty for a
    /// new run), with `issued` the actions still in flight from a previous machine.
    pub(crate) fn new(
        graph: Arc<Graph>,
        input: Value,
        records: Vec<StepRecord>,
        issued: PathMap<Issued>,
    ) -> Self {
        let unseen = records.iter().map(|r| r.path.clone()).collect();
        let root_node = graph.root;
        let mut m = Self {
            graph,
            root: None,
            records: records.into_iter().map(|r| (r.path.clone(), r)).collect(),
            done: PathMap::default(),
            issued,
            unseen,
            actions: Vec::new(),
            writes: Vec::new(),
            events: Vec::new(),
            suspended: Vec::new(),
            suspended_nodes: HashMap::default(),
            diverged: None,
            now: 0,
        };
        m.root = Some(m.frame(root_node, "", input));
        m
    }

    pub(crate) fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    /// Hands over the in-flight actions (to a rebuilt machine).
    pub(crate) fn take_issued(&mut self) -> PathMap<Issued> {
        std::mem::take(&mut self.issued)
    }

    /// The record of a path, if committed.
    pub(crate) fn record(&self, path: &str) -> Option<&StepRecord> {
        self.records.get(path)
    }

    /// The first divergence found during replay: (path, detail).
    pub(crate) fn divergence(&self) -> Option<&(String, String)> {
        self.diverged.as_ref()
    }

    /// Advances as far as possible without outside results.
    ///
    /// A poll that finds a divergence from the stored records (see [`Machine::divergence`])
    /// returns `Failed` and leaves nothing behind: the actions, records and events it produced
    /// before it found the mismatch are dropped, so a diverged replay runs nothing.
    pub(crate) fn poll(&mut self, now: i64) -> Status {
        self.now = now;
        self.suspended.clear();
        self.suspended_nodes.clear();
        let Some(mut root) = self.root.take() else {
            return Status::Failed("run already finished".into());
        };
        let marks = (self.actions.len(), self.writes.len(), self.events.len());
        let p = self.adv(&mut root);
        if self.diverged.is_none() && !self.unseen.is_empty() && !matches!(p, Poll::Failed(_)) {
            self.check_unreached(marks.0);
        }
        if let Some((path, detail)) = &self.diverged {
            let msg = format!("replay diverged from the stored records at `{path}`: {detail}");
            self.undo(marks);
            return Status::Failed(msg);
        }
        match p {
            Poll::Done(v) => {
                if let Some(s) = &self.graph.output_schema
                    && let Err(e) =
                        s.validate(&v, &format!("workflow `{}`", self.graph.id), "output")
                {
                    return Status::Failed(e.to_string());
                }
                Status::Succeeded(v)
            }
            Poll::Failed(Failure::Run(m)) => Status::Failed(m),
            // A divergence is reported above (with where and why); without one it is a bug.
            Poll::Failed(Failure::Diverged) => Status::Failed(
                "engine invariant: a frame reported a divergence that was not recorded".into(),
            ),
            Poll::Failed(Failure::Invariant(detail)) => {
                tracing::error!(workflow = %self.graph.id, %detail, "engine invariant violated");
                Status::Failed(format!("engine invariant violated: {detail}"))
            }
            Poll::Suspended if self.issued.is_empty() => {
                self.root = Some(root);
                let mut paths = std::mem::take(&mut self.suspended);
                paths.sort();
                Status::Suspended(paths)
            }
            Poll::Suspended | Poll::Pending => {
                self.root = Some(root);
                Status::Running
            }
        }
    }

    /// After a poll of a replay: every stored record must have been met by now, unless its
    /// path is in flight (a sleep or a non-idempotent step handed over by a previous
    /// machine). A record is written only after everything before it in the run has its
    /// record, so a poll that goes as far as it can without outside results meets them all;
    /// one that is left means the definition took another way than the run did (a step
    /// renamed, inserted or moved, a record the definition never produces). The mismatch is
    /// named where the definition departs: the first action this poll issued for a path
    /// without a record, or else the first record left over.
    fn check_unreached(&mut self, first_action: usize) {
        let mut left: Vec<&Arc<str>> = self
            .unseen
            .iter()
            .filter(|p| !self.issued.contains_key(p))
            .collect();
        if left.is_empty() {
            return;
        }
        left.sort();
        let more = match left.len() {
            1 => String::new(),
            2 => " and 1 more record".to_string(),
            n => format!(" and {} more records", n - 1),
        };
        self.diverged = Some(match self.actions.get(first_action) {
            Some(a) => (
                String::from(&**a.path()),
                format!(
                    "the definition runs {} here, which has no record, while the records go on with `{}`{more}, which the definition has not reached",
                    a.what(),
                    left[0]
                ),
            ),
            None => (
                left[0].to_string(),
                "a stored record that the definition does not produce".to_string(),
            ),
        });
    }

    /// Drops what a diverged poll produced (`marks`: the lengths of the action, record and
    /// event buffers when it began).
    fn undo(&mut self, (actions, writes, events): (usize, usize, usize)) {
        for a in self.actions.drain(actions..) {
            self.issued.remove(a.path());
        }
        self.writes.truncate(writes);
        self.events.truncate(events);
    }

    /// Puts back actions taken from a previous machine (see `RunCore::rebuild`).
    pub(crate) fn requeue(&mut self, actions: Vec<Action>) {
        self.actions.extend(actions);
    }

    /// Appends the actions issued since the last call to `into` (this machine's buffer keeps
    /// its capacity for the next ones).
    pub(crate) fn drain_actions(&mut self, into: &mut Vec<Action>) {
        into.append(&mut self.actions);
    }

    /// Appends the records produced since the last call to `into`.
    pub(crate) fn drain_records(&mut self, into: &mut Vec<StepRecord>) {
        into.append(&mut self.writes);
    }

    /// The events produced since the last call.
    pub(crate) fn drain_events(&mut self) -> std::vec::Drain<'_, EventKind> {
        self.events.drain(..)
    }

    /// Records and events produced since the last call, to commit.
    pub(crate) fn take_writes(&mut self) -> (Vec<StepRecord>, Vec<EventKind>) {
        (
            std::mem::take(&mut self.writes),
            std::mem::take(&mut self.events),
        )
    }

    /// Sets resume data on a suspended path (the caller commits the returned record).
    pub(crate) fn resume(&mut self, path: &str, data: Value, now: i64) -> Option<StepRecord> {
        let rec = self.records.get_mut(path)?;
        if rec.status != StepStatus::Suspended {
            return None;
        }
        rec.resume = Some(data);
        rec.updated_at = now;
        let rec = rec.clone();
        self.events.push(EventKind::RunResumed {
            path: Arc::clone(&rec.path),
        });
        Some(rec)
    }

    fn put(&mut self, rec: StepRecord) {
        if !self.unseen.is_empty() {
            self.unseen.remove(&*rec.path);
        }
        self.writes.push(rec.clone());
        self.records.insert(rec.path.clone(), rec);
    }

    /// The record at `path` of `kind`, if there is one. A record of another kind, or one this
    /// engine cannot have written (see [`malformed`]), is a divergence: the machine stops
    /// there rather than guess.
    fn record_for(&mut self, path: &str, kind: RecordKind) -> Option<StepRecord> {
        if self.records.is_empty() {
            return None;
        }
        let rec = self.records.get(path)?;
        let problem = if rec.kind != kind {
            Some(format!(
                "the definition has a {} here, the records a {}",
                kind.as_str(),
                rec.kind.as_str()
            ))
        } else {
            malformed(rec).map(|why| format!("the stored record is corrupt: {why}"))
        };
        if let Some(detail) = problem {
            if self.diverged.is_none() {
                self.diverged = Some((path.to_string(), detail));
            }
            return None;
        }
        let rec = rec.clone();
        if !self.unseen.is_empty() {
            self.unseen.remove(path);
        }
        Some(rec)
    }

    /// Stops the replay at `path` (keeping the first divergence found).
    fn diverge(&mut self, path: &str, detail: String) -> Poll {
        if self.diverged.is_none() {
            self.diverged = Some((path.to_string(), detail));
        }
        Poll::Failed(Failure::Diverged)
    }

    /// A failed record as the failure it reports.
    fn failure(&mut self, rec: StepRecord) -> Poll {
        match rec.error {
            Some(e) => Poll::fail(e),
            None => self.diverge(
                &rec.path,
                "the stored record is corrupt: a failed record without an error".into(),
            ),
        }
    }

    /// A record read back in a state or shape its frame does not handle (already refused by
    /// [`malformed`] when it was read, so this is a second line of defence, never a default).
    fn unexpected(&mut self, rec: &StepRecord) -> Poll {
        let why = malformed(rec).unwrap_or_else(|| {
            format!(
                "a {} record cannot be {} here",
                rec.kind.as_str(),
                rec.status.as_str()
            )
        });
        self.diverge(&rec.path, format!("the stored record is corrupt: {why}"))
    }

    fn new_record(&self, path: &str, kind: RecordKind, status: StepStatus) -> StepRecord {
        self.new_record_at(Arc::from(path), kind, status)
    }

    /// [`Machine::new_record`] with the path already shared (no copy of it).
    fn new_record_at(&self, path: Arc<str>, kind: RecordKind, status: StepStatus) -> StepRecord {
        StepRecord {
            path,
            kind,
            status,
            output: None,
            error: None,
            payload: None,
            resume: None,
            attempt: 1,
            updated_at: self.now,
        }
    }

    fn fail_record(&mut self, path: &str, kind: RecordKind, attempt: u32, error: String) -> Poll {
        let path: Arc<str> = Arc::from(path);
        let mut r = self.new_record_at(Arc::clone(&path), kind, StepStatus::Failed);
        r.error = Some(error.clone());
        r.attempt = attempt;
        self.put(r);
        self.events.push(EventKind::StepFailed {
            path,
            error: error.clone(),
        });
        Poll::fail(error)
    }

    fn frame(&self, node: usize, prefix: &str, input: Value) -> Frame {
        let n = self.graph.node(node);
        let path: Arc<str> = match (&n.path, &n.seg) {
            (Some(p), _) => Arc::clone(p),
            (None, Some(s)) => join(prefix, s),
            (None, None) => prefix.into(),
        };
        match &n.kind {
            NodeKind::Step(_) => Frame::Step(StepFrame {
                node,
                path,
                input: Some(input),
            }),
            NodeKind::Seq(_) => Frame::Seq(Box::new(SeqFrame {
                node,
                prefix: path,
                idx: 0,
                cur: None,
                last: Some(input),
            })),
            NodeKind::Parallel { children, .. } => {
                let n = children.len();
                Frame::Parallel(Box::new(ManyFrame {
                    node,
                    path,
                    inputs: vec![Some(input)],
                    children: (0..n).map(|_| None).collect(),
                    outputs: vec![None; n],
                    active: Vec::new(),
                    next: 0,
                    done: 0,
                    started: false,
                }))
            }
            NodeKind::ForEach { .. } => Frame::ForEach(Box::new(ManyFrame {
                node,
                path,
                inputs: vec![Some(input)],
                children: Vec::new(),
                outputs: Vec::new(),
                active: Vec::new(),
                next: 0,
                done: 0,
                started: false,
            })),
            NodeKind::Branch { .. } => Frame::Branch(Box::new(BranchFrame {
                node,
                path,
                input: Some(input),
                arm: None,
            })),
            NodeKind::Loop { .. } => Frame::Loop(Box::new(LoopFrame {
                node,
                path,
                iter: 0,
                input: Some(input),
                body: None,
                out: None,
            })),
            NodeKind::Sleep(_) => Frame::Sleep(LeafFrame {
                node,
                path,
                input: Some(input),
            }),
            NodeKind::Map(_) => Frame::Map(LeafFrame {
                node,
                path,
                input: Some(input),
            }),
            NodeKind::Nested { .. } => Frame::Nested(Box::new(NestedFrame {
                node,
                path,
                input: Some(input),
                inner: None,
            })),
        }
    }

    fn adv(&mut self, f: &mut Frame) -> Poll {
        match f {
            Frame::Step(s) => self.adv_step(s),
            Frame::Seq(s) => self.adv_seq(s),
            Frame::Parallel(m) => self.adv_many(m, false),
            Frame::ForEach(m) => self.adv_many(m, true),
            Frame::Branch(b) => self.adv_branch(b),
            Frame::Loop(l) => self.adv_loop(l),
            Frame::Sleep(s) => self.adv_sleep(s),
            Frame::Map(m) => self.adv_map(m),
            Frame::Nested(n) => self.adv_nested(n),
        }
    }

    fn issue_eval(&mut self, path: &Arc<str>, node: usize, kind: DecisionKind, input: Value) {
        self.issued.insert(
            Arc::clone(path),
            Issued {
                node,
                kind: IssuedKind::Eval(kind),
                attempt: 1,
                input: None,
                resume: None,
                wake_at: 0,
            },
        );
        self.actions.push(Action::Decide {
            path: Arc::clone(path),
            node,
            kind,
            input,
        });
    }

    fn issue_step(
        &mut self,
        path: &Arc<str>,
        node: usize,
        input: Value,
        attempt: u32,
        resume: Option<Value>,
        delay: Duration,
    ) {
        let graph = Arc::clone(&self.graph);
        let NodeKind::Step(def) = &graph.node(node).kind else {
            return;
        };
        let keep = def.retry.max_attempts > attempt;
        self.issued.insert(
            Arc::clone(path),
            Issued {
                node,
                kind: IssuedKind::Step,
                attempt,
                input: keep.then(|| input.clone()),
                resume: if keep { resume.clone() } else { None },
                wake_at: 0,
            },
        );
        if let Some(on) = def.non_idempotent {
            // Record the start before running, so a crash before the commit is detectable.
            let mut r = self.new_record_at(Arc::clone(path), RecordKind::Step, StepStatus::Running);
            r.attempt = attempt;
            r.payload = Some(json!({ "on_interrupt": format!("{on:?}") }));
            r.resume.clone_from(&resume);
            self.put(r);
        }
        self.events.push(EventKind::StepStarted {
            path: Arc::clone(path),
            attempt,
        });
        self.actions.push(Action::Run {
            path: Arc::clone(path),
            node,
            input,
            attempt,
            resume,
            delay,
        });
    }

    fn adv_step(&mut self, s: &mut StepFrame) -> Poll {
        if let Some(v) = self.done.remove(&s.path) {
            return Poll::Done(v);
        }
        if self.issued.contains_key(&s.path) {
            return Poll::Pending;
        }
        if let Some(rec) = self.record_for(&s.path, RecordKind::Step) {
            match rec.status {
                StepStatus::Succeeded => {
                    return match rec.output {
                        Some(v) => Poll::Done(Arc::unwrap_or_clone(v)),
                        None => self.unexpected(&rec),
                    };
                }
                StepStatus::Failed => return self.failure(rec),
                StepStatus::Suspended => match rec.resume {
                    Some(data) => {
                        // A frame hands its input to the step it issues (see below), so it
                        // still holds it only if it met the suspension in the records, which
                        // is how every resume starts: a resumed run is replayed in a new
                        // machine. Anything else is an engine bug; fail the step, never run it
                        // with a wrong input.
                        let Some(input) = s.input.clone() else {
                            return self.fail_record(
                                &s.path,
                                RecordKind::Step,
                                rec.attempt,
                                format!(
                                    "engine error: the input of `{}` was not kept for its resume",
                                    s.path
                                ),
                            );
                        };
                        self.issue_step(&s.path, s.node, input, 1, Some(data), Duration::ZERO);
                        return Poll::Pending;
                    }
                    None => {
                        self.suspended.push(String::from(&*s.path));
                        self.suspended_nodes.insert(Arc::clone(&s.path), s.node);
                        return Poll::Suspended;
                    }
                },
                StepStatus::Running => {
                    // Started, never committed, not in flight: the process died in between.
                    return self.interrupted(s, rec);
                }
            }
        }
        if self.diverged.is_some() {
            return Poll::Failed(Failure::Diverged);
        }
        let graph = Arc::clone(&self.graph);
        let NodeKind::Step(def) = &graph.node(s.node).kind else {
            return Poll::invariant(format!("`{}` is not a step", s.path));
        };
        // The input moves to the step: a fresh step is issued once by its frame (a retry
        // takes the copy its `Issued` keeps, and a suspended step is resumed in a new machine
        // whose frame is built from the records), so nothing here needs it again.
        let input = s.input.take().unwrap_or(Value::Null);
        if let Some(schema) = &def.input_schema
            && let Err(e) = schema.validate(&input, &format!("step `{}`", s.path), "input")
        {
            return self.fail_record(&s.path, RecordKind::Step, 1, e.to_string());
        }
        self.issue_step(&s.path, s.node, input, 1, None, Duration::ZERO);
        Poll::Pending
    }

    fn interrupted(&mut self, s: &StepFrame, rec: StepRecord) -> Poll {
        let graph = Arc::clone(&self.graph);
        let NodeKind::Step(def) = &graph.node(s.node).kind else {
            return Poll::invariant(format!("`{}` is not a step", s.path));
        };
        match def.non_idempotent {
            // An idempotent step's start is never recorded; treat a stray record as not run.
            None => {
                // Met in the records of a replay, so the frame still holds its input.
                let Some(input) = s.input.clone() else {
                    return self.fail_record(
                        &s.path,
                        RecordKind::Step,
                        rec.attempt,
                        format!("engine error: the input of `{}` was not kept", s.path),
                    );
                };
                self.issue_step(&s.path, s.node, input, rec.attempt, rec.resume, Duration::ZERO);
                Poll::Pending
            }
            Some(super::builder::OnInterrupt::Fail) => self.fail_record(
                &s.path,
                RecordKind::Step,
                rec.attempt,
                format!(
                    "non-idempotent step `{}` was interrupted after it started (attempt {}) and before its result was committed; it is not re-run automatically",
                    s.path, rec.attempt
                ),
            ),
            Some(super::builder::OnInterrupt::Suspend) => {
                let mut r = self.new_record(&s.path, RecordKind::Step, StepStatus::Suspended);
                r.attempt = rec.attempt;
                let payload = json!({
                    "interrupted": true,
                    "reason": format!("non-idempotent step `{}` was interrupted before its result was committed; resume to run it again", s.path),
                });
                r.payload = Some(payload.clone());
                self.put(r);
                self.events.push(EventKind::StepSuspended {
                    path: Arc::clone(&s.path),
                    payload,
                });
                self.suspended.push(String::from(&*s.path));
                self.suspended_nodes.insert(Arc::clone(&s.path), s.node);
                Poll::Suspended
            }
        }
    }

    /// The resume schema of a step suspended at `path` (as of the last poll).
    pub(crate) fn resume_schema(&self, path: &str) -> Option<super::schema::Schema> {
        let node = *self.suspended_nodes.get(path)?;
        match &self.graph.node(node).kind {
            NodeKind::Step(def) => def.resume_schema.clone(),
            _ => None,
        }
    }

    fn adv_seq(&mut self, s: &mut SeqFrame) -> Poll {
        let graph = Arc::clone(&self.graph);
        let NodeKind::Seq(children) = &graph.node(s.node).kind else {
            return Poll::invariant("not a sequence");
        };
        loop {
            if s.cur.is_none() {
                if s.idx >= children.len() {
                    return Poll::Done(s.last.take().unwrap_or(Value::Null));
                }
                let input = s.last.take().unwrap_or(Value::Null);
                s.cur = Some(self.frame(children[s.idx], &s.prefix, input));
            }
            let Some(cur) = s.cur.as_mut() else {
                continue;
            };
            match self.adv(cur) {
                Poll::Done(v) => {
                    s.last = Some(v);
                    s.idx += 1;
                    s.cur = None;
                }
                other => return other,
            }
        }
    }

    fn adv_many(&mut self, m: &mut ManyFrame, foreach: bool) -> Poll {
        let graph = Arc::clone(&self.graph);
        let (kids, concurrency, collect_all, body) = match &graph.node(m.node).kind {
            NodeKind::Parallel {
                children,
                collect_all,
            } => (Some(children), usize::MAX, *collect_all, 0),
            NodeKind::ForEach { body, concurrency } => (None, *concurrency, false, *body),
            _ => return Poll::invariant("not a parallel or foreach"),
        };
        if !m.started {
            m.started = true;
            let input = m.inputs.pop().flatten().unwrap_or(Value::Null);
            if foreach {
                let Value::Array(items) = input else {
                    return Poll::fail(format!(
                        "foreach `{}` expects an array as input, got {}",
                        m.path,
                        kind_name(&input)
                    ));
                };
                let n = items.len();
                m.inputs = items.into_iter().map(Some).collect();
                m.children = (0..n).map(|_| None).collect();
                m.outputs = vec![None; n];
            } else {
                let n = m.outputs.len();
                m.inputs = vec![Some(input); n];
            }
        }
        let n = m.outputs.len();
        let mut pending = 0usize;
        let mut suspended = false;
        let mut i = 0;
        while i < m.active.len() {
            let idx = m.active[i];
            let step = match m.children[idx].as_mut() {
                Some(c) => self.adv(c),
                None => Poll::invariant("missing child"),
            };
            match step {
                Poll::Done(v) => {
                    m.outputs[idx] = Some(v);
                    m.children[idx] = None;
                    m.done += 1;
                    m.active.swap_remove(i);
                    continue;
                }
                Poll::Pending => pending += 1,
                Poll::Suspended => suspended = true,
                Poll::Failed(Failure::Run(e)) if collect_all => {
                    m.outputs[idx] = Some(json!({ "error": e }));
                    m.children[idx] = None;
                    m.done += 1;
                    m.active.swap_remove(i);
                    continue;
                }
                Poll::Failed(e) => return Poll::Failed(e),
            }
            i += 1;
        }
        while pending < concurrency && m.next < n {
            let idx = m.next;
            m.next += 1;
            let input = m.inputs[idx].take().unwrap_or(Value::Null);
            let mut child = if let Some(kids) = kids {
                self.frame(kids[idx], &m.path, input)
            } else {
                self.frame(body, &format!("{}[{idx}]", m.path), input)
            };
            match self.adv(&mut child) {
                Poll::Done(v) => {
                    m.outputs[idx] = Some(v);
                    m.done += 1;
                }
                Poll::Pending => {
                    pending += 1;
                    m.children[idx] = Some(child);
                    m.active.push(idx);
                }
                Poll::Suspended => {
                    suspended = true;
                    m.children[idx] = Some(child);
                    m.active.push(idx);
                }
                Poll::Failed(Failure::Run(e)) if collect_all => {
                    m.outputs[idx] = Some(json!({ "error": e }));
                    m.done += 1;
                }
                Poll::Failed(e) => return Poll::Failed(e),
            }
        }
        if m.done == n {
            let outputs = std::mem::take(&mut m.outputs);
            if let Some(kids) = kids {
                let mut obj = Map::with_capacity(n);
                for (k, v) in kids.iter().zip(outputs) {
                    let key = graph.node(*k).seg.clone().unwrap_or_default();
                    obj.insert(key, v.unwrap_or(Value::Null));
                }
                return Poll::Done(Value::Object(obj));
            }
            return Poll::Done(Value::Array(
                outputs
                    .into_iter()
                    .map(|v| v.unwrap_or(Value::Null))
                    .collect(),
            ));
        }
        if pending > 0 {
            Poll::Pending
        } else if suspended {
            Poll::Suspended
        } else {
            Poll::Pending
        }
    }

    fn adv_branch(&mut self, b: &mut BranchFrame) -> Poll {
        if let Some(arm) = b.arm.as_mut() {
            return self.adv(arm);
        }
        if self.issued.contains_key(&b.path) {
            return Poll::Pending;
        }
        let graph = Arc::clone(&self.graph);
        let NodeKind::Branch { arms, .. } = &graph.node(b.node).kind else {
            return Poll::invariant("not a branch");
        };
        match self.record_for(&b.path, RecordKind::Branch) {
            Some(rec) if rec.status == StepStatus::Succeeded => {
                let Some(chosen) = recorded_arm(&rec) else {
                    return self.unexpected(&rec);
                };
                let Some((_, node)) = arms.iter().find(|(a, _)| a == chosen) else {
                    let detail = format!(
                        "the records chose arm `{chosen}`, which the definition does not have"
                    );
                    return self.diverge(&b.path, detail);
                };
                let input = b.input.take().unwrap_or(Value::Null);
                let mut arm = self.frame(*node, &b.path, input);
                let p = self.adv(&mut arm);
                b.arm = Some(arm);
                p
            }
            Some(rec) if rec.status == StepStatus::Failed => self.failure(rec),
            Some(rec) => self.unexpected(&rec),
            None if self.diverged.is_some() => Poll::Failed(Failure::Diverged),
            None => {
                let input = b.input.clone().unwrap_or(Value::Null);
                self.issue_eval(&b.path, b.node, DecisionKind::Branch, input);
                Poll::Pending
            }
        }
    }

    fn adv_loop(&mut self, l: &mut LoopFrame) -> Poll {
        let graph = Arc::clone(&self.graph);
        let NodeKind::Loop { body, max, .. } = &graph.node(l.node).kind else {
            return Poll::invariant("not a loop");
        };
        loop {
            if let Some(b) = l.body.as_mut() {
                match self.adv(b) {
                    Poll::Done(v) => {
                        l.out = Some(v);
                        l.body = None;
                    }
                    other => return other,
                }
            }
            if let Some(out) = &l.out {
                let dpath: Arc<str> = format!("{}#{}", l.path, l.iter).into();
                if self.issued.contains_key(&dpath) {
                    return Poll::Pending;
                }
                match self.record_for(&dpath, RecordKind::Loop) {
                    Some(rec) if rec.status == StepStatus::Succeeded => {
                        let Some(cont) = recorded_continue(&rec) else {
                            return self.unexpected(&rec);
                        };
                        if !cont {
                            return Poll::Done(l.out.take().unwrap_or(Value::Null));
                        }
                        l.iter += 1;
                        if l.iter >= *max {
                            return Poll::fail(format!(
                                "loop `{}` reached its limit of {max} iterations",
                                l.path
                            ));
                        }
                        l.input = l.out.take();
                    }
                    Some(rec) if rec.status == StepStatus::Failed => return self.failure(rec),
                    Some(rec) => return self.unexpected(&rec),
                    None if self.diverged.is_some() => {
                        return Poll::Failed(Failure::Diverged);
                    }
                    None => {
                        let input = out.clone();
                        self.issue_eval(&dpath, l.node, DecisionKind::Loop, input);
                        return Poll::Pending;
                    }
                }
            }
            let input = l.input.take().unwrap_or(Value::Null);
            l.body = Some(self.frame(*body, &format!("{}[{}]", l.path, l.iter), input));
        }
    }

    fn adv_sleep(&mut self, s: &mut LeafFrame) -> Poll {
        if self.issued.contains_key(&s.path) {
            return Poll::Pending;
        }
        let graph = Arc::clone(&self.graph);
        let NodeKind::Sleep(spec) = &graph.node(s.node).kind else {
            return Poll::invariant("not a sleep");
        };
        match self.record_for(&s.path, RecordKind::Sleep) {
            Some(rec) if rec.status == StepStatus::Succeeded => {
                Poll::Done(s.input.take().unwrap_or(Value::Null))
            }
            Some(rec) if rec.status == StepStatus::Running => {
                let Some(wake_at) = recorded_wake_at(&rec) else {
                    return self.unexpected(&rec);
                };
                self.issue_sleep(&s.path, s.node, wake_at);
                Poll::Pending
            }
            Some(rec) if rec.status == StepStatus::Failed => self.failure(rec),
            Some(rec) => self.unexpected(&rec),
            None if self.diverged.is_some() => Poll::Failed(Failure::Diverged),
            None => match spec {
                SleepSpec::For(d) => {
                    let wake_at = crate::store::ms_after(self.now, *d);
                    self.start_sleep(&s.path, s.node, wake_at);
                    Poll::Pending
                }
                SleepSpec::Until(_) => {
                    let input = s.input.clone().unwrap_or(Value::Null);
                    self.issue_eval(&s.path, s.node, DecisionKind::WakeTime, input);
                    Poll::Pending
                }
            },
        }
    }

    fn start_sleep(&mut self, path: &Arc<str>, node: usize, wake_at: i64) {
        let mut r = self.new_record(path, RecordKind::Sleep, StepStatus::Running);
        r.output = Some(Arc::new(json!({ "wake_at": wake_at })));
        self.put(r);
        self.issue_sleep(path, node, wake_at);
    }

    fn issue_sleep(&mut self, path: &Arc<str>, node: usize, wake_at: i64) {
        self.issued.insert(
            Arc::clone(path),
            Issued {
                node,
                kind: IssuedKind::Sleep,
                attempt: 1,
                input: None,
                resume: None,
                wake_at,
            },
        );
        self.actions.push(Action::Sleep {
            path: Arc::clone(path),
            wake_at,
        });
    }

    fn adv_map(&mut self, m: &mut LeafFrame) -> Poll {
        if self.issued.contains_key(&m.path) {
            return Poll::Pending;
        }
        match self.record_for(&m.path, RecordKind::Map) {
            Some(rec) if rec.status == StepStatus::Succeeded => match rec.output {
                Some(v) => Poll::Done(Arc::unwrap_or_clone(v)),
                None => self.unexpected(&rec),
            },
            Some(rec) if rec.status == StepStatus::Failed => self.failure(rec),
            Some(rec) => self.unexpected(&rec),
            None if self.diverged.is_some() => Poll::Failed(Failure::Diverged),
            None => {
                let input = m.input.take().unwrap_or(Value::Null);
                self.issue_eval(&m.path, m.node, DecisionKind::Map, input);
                Poll::Pending
            }
        }
    }

    fn adv_nested(&mut self, n: &mut NestedFrame) -> Poll {
        let graph = Arc::clone(&self.graph);
        let NodeKind::Nested {
            body,
            workflow,
            input_schema,
            output_schema,
        } = &graph.node(n.node).kind
        else {
            return Poll::invariant("not a nested workflow");
        };
        let place = format!("nested workflow `{workflow}` at `{}`", n.path);
        if n.inner.is_none() {
            let input = n.input.take().unwrap_or(Value::Null);
            if let Some(s) = input_schema
                && let Err(e) = s.validate(&input, &place, "input")
            {
                return Poll::fail(e.to_string());
            }
            n.inner = Some(self.frame(*body, &n.path, input));
        }
        let Some(inner) = n.inner.as_mut() else {
            return Poll::invariant("nested frame missing");
        };
        match self.adv(inner) {
            Poll::Done(v) => {
                if let Some(s) = output_schema
                    && let Err(e) = s.validate(&v, &place, "output")
                {
                    return Poll::fail(e.to_string());
                }
                Poll::Done(v)
            }
            other => other,
        }
    }

    /// Takes the result of an action. Unknown paths (stale results) are ignored.
    pub(crate) fn complete(&mut self, path: &str, result: Result<Value, StepError>, now: i64) {
        self.now = now;
        let Some((key, iss)) = self.issued.remove_entry(path) else {
            return;
        };
        let graph = Arc::clone(&self.graph);
        match iss.kind {
            IssuedKind::Step => {
                let NodeKind::Step(def) = &graph.node(iss.node).kind else {
                    return;
                };
                match result {
                    Ok(v) => {
                        if let Some(s) = &def.output_schema
                            && let Err(e) = s.validate(&v, &format!("step `{path}`"), "output")
                        {
                            self.fail_record(path, RecordKind::Step, iss.attempt, e.to_string());
                            return;
                        }
                        // One copy of the output for the store, shared by its record and its
                        // event; the value itself goes on to the next step.
                        let shared = Arc::new(v.clone());
                        let mut r = self.new_record_at(
                            Arc::clone(&key),
                            RecordKind::Step,
                            StepStatus::Succeeded,
                        );
                        r.attempt = iss.attempt;
                        r.output = Some(Arc::clone(&shared));
                        if !self.unseen.is_empty() {
                            self.unseen.remove(path);
                        }
                        // A record read back later (e.g. a stray `running` start record of a
                        // non-idempotent step) must not shadow this result.
                        if !self.records.is_empty() {
                            self.records.remove(path);
                        }
                        self.writes.push(r);
                        self.events.push(EventKind::StepOutput {
                            path: Arc::clone(&key),
                            output: shared,
                        });
                        self.done.insert(key, v);
                    }
                    Err(e) => match e.kind {
                        StepErrorKind::Suspend(payload) => {
                            let mut r = self.new_record_at(
                                Arc::clone(&key),
                                RecordKind::Step,
                                StepStatus::Suspended,
                            );
                            r.attempt = iss.attempt;
                            r.payload = Some(payload.clone());
                            self.put(r);
                            self.events.push(EventKind::StepSuspended {
                                path: Arc::clone(&key),
                                payload,
                            });
                        }
                        StepErrorKind::Retryable(msg) if iss.attempt < def.retry.max_attempts => {
                            let next = iss.attempt + 1;
                            let delay = def.retry.delay_before(next);
                            self.events.push(EventKind::StepRetrying {
                                path: Arc::clone(&key),
                                attempt: next,
                                delay_ms: delay.as_millis() as u64,
                                error: msg,
                            });
                            let input = iss.input.unwrap_or(Value::Null);
                            self.issue_step(&key, iss.node, input, next, iss.resume, delay);
                        }
                        StepErrorKind::Retryable(msg) | StepErrorKind::Fatal(msg) => {
                            let error = if iss.attempt > 1 {
                                format!(
                                    "step `{path}` failed after {} attempts: {msg}",
                                    iss.attempt
                                )
                            } else {
                                format!("step `{path}` failed: {msg}")
                            };
                            self.fail_record(path, RecordKind::Step, iss.attempt, error);
                        }
                    },
                }
            }
            IssuedKind::Eval(kind) => self.complete_eval(&key, iss.node, kind, result),
            IssuedKind::Sleep => {
                let mut r = self.new_record(path, RecordKind::Sleep, StepStatus::Succeeded);
                r.output = Some(Arc::new(json!({ "wake_at": iss.wake_at })));
                self.put(r);
            }
        }
    }

    fn complete_eval(
        &mut self,
        path: &Arc<str>,
        node: usize,
        kind: DecisionKind,
        result: Result<Value, StepError>,
    ) {
        let rk = match kind {
            DecisionKind::Branch => RecordKind::Branch,
            DecisionKind::Loop => RecordKind::Loop,
            DecisionKind::Map => RecordKind::Map,
            DecisionKind::WakeTime => RecordKind::Sleep,
        };
        let v = match result {
            Ok(v) => v,
            Err(e) => {
                self.fail_record(path, rk, 1, format!("`{path}`: {}", e.message()));
                return;
            }
        };
        let graph = Arc::clone(&self.graph);
        match kind {
            DecisionKind::Branch => {
                let NodeKind::Branch { arms, .. } = &graph.node(node).kind else {
                    return;
                };
                let name = v.as_str().unwrap_or_default();
                if !arms.iter().any(|(a, _)| a == name) {
                    let names: Vec<&str> = arms.iter().map(|(a, _)| a.as_str()).collect();
                    self.fail_record(
                        path,
                        rk,
                        1,
                        format!(
                            "branch `{path}` selected `{}`, which is not one of its arms ({})",
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                            names.join(", ")
                        ),
                    );
                    return;
                }
                let mut r = self.new_record(path, rk, StepStatus::Succeeded);
                r.output = Some(Arc::new(json!({ "arm": name })));
                self.put(r);
            }
            DecisionKind::Loop => {
                let NodeKind::Loop { until, .. } = &graph.node(node).kind else {
                    return;
                };
                let Some(c) = v.as_bool() else {
                    self.fail_record(
                        path,
                        rk,
                        1,
                        format!("loop condition at `{path}` returned {v}, not a bool"),
                    );
                    return;
                };
                let mut r = self.new_record(path, rk, StepStatus::Succeeded);
                r.output = Some(Arc::new(json!({ "continue": c != *until })));
                self.put(r);
            }
            DecisionKind::Map => {
                let mut r = self.new_record(path, rk, StepStatus::Succeeded);
                r.output = Some(Arc::new(v));
                self.put(r);
            }
            DecisionKind::WakeTime => {
                // Milliseconds since the epoch; a fraction rounds up (never wake early), and a
                // float beyond the dates a clock can show is no time at all.
                let wake_at = v.as_i64().or_else(|| {
                    v.as_f64()
                        .filter(|f| f.is_finite() && f.abs() <= MAX_DATE_MS)
                        .map(|f| f.ceil() as i64)
                });
                let Some(wake_at) = wake_at else {
                    self.fail_record(
                        path,
                        rk,
                        1,
                        format!(
                            "the wake time of sleep_until `{path}` must be a number of milliseconds since the epoch, not {v}"
                        ),
                    );
                    return;
                };
                self.start_sleep(path, node, wake_at);
            }
        }
    }
}

/// The largest time in ms since the epoch a date can hold (±8.64e15, as in ECMAScript).
const MAX_DATE_MS: f64 = 8.64e15;

/// The arm a branch record names (`{"arm": name}`).
fn recorded_arm(rec: &StepRecord) -> Option<&str> {
    rec.output.as_deref()?.get("arm")?.as_str()
}

/// A loop record's decision (`{"continue": bool}`).
fn recorded_continue(rec: &StepRecord) -> Option<bool> {
    rec.output.as_deref()?.get("continue")?.as_bool()
}

/// A sleep record's wake time (`{"wake_at": ms}`).
fn recorded_wake_at(rec: &StepRecord) -> Option<i64> {
    rec.output.as_deref()?.get("wake_at")?.as_i64()
}

/// What a stored output is, for messages (never the value itself: it is user data).
fn describe(output: Option<&Value>) -> String {
    match output {
        None => "it has no output".into(),
        Some(v) => format!("its output is {}", kind_name(v)),
    }
}

/// Why a stored record cannot have been written by this engine, if it cannot: a status its
/// kind never has, a failure without an error, a result with one, or a decision of the wrong
/// shape. Replay refuses such a record instead of reading a default out of it.
fn malformed(rec: &StepRecord) -> Option<String> {
    use RecordKind as K;
    use StepStatus as S;
    let kind = rec.kind.as_str();
    let status = rec.status.as_str();
    if rec.attempt == 0 {
        return Some(format!(
            "a {kind} record with attempt 0 (attempts count from 1)"
        ));
    }
    if rec.status == S::Failed {
        return match (&rec.error, &rec.output) {
            (None, _) => Some(format!("a failed {kind} record without an error")),
            (Some(_), Some(_)) => Some(format!("a failed {kind} record with an output")),
            (Some(_), None) => None,
        };
    }
    if rec.error.is_some() {
        return Some(format!("a {status} {kind} record with an error"));
    }
    let output = rec.output.as_deref();
    match (rec.kind, rec.status) {
        (K::Step | K::Map, S::Succeeded) if output.is_none() => {
            Some(format!("a succeeded {kind} record without an output"))
        }
        (K::Step, S::Suspended) if rec.payload.is_none() => {
            Some("a suspended step record without a suspension payload".into())
        }
        (K::Step, S::Succeeded | S::Suspended | S::Running) | (K::Map, S::Succeeded) => None,
        (K::Branch, S::Succeeded) => recorded_arm(rec).is_none().then(|| {
            format!(
                "a branch record without an `arm` name ({})",
                describe(output)
            )
        }),
        (K::Loop, S::Succeeded) => recorded_continue(rec).is_none().then(|| {
            format!(
                "a loop decision record without a `continue` bool ({})",
                describe(output)
            )
        }),
        (K::Sleep, S::Succeeded | S::Running) => recorded_wake_at(rec).is_none().then(|| {
            format!(
                "a {status} sleep record without a `wake_at` time ({})",
                describe(output)
            )
        }),
        _ => Some(format!("a {kind} record cannot be {status}")),
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::PathMap;
    use std::sync::Arc;

    #[test]
    fn a_path_map_keeps_its_first_entry_inline_and_spills_the_rest() {
        let mut m: PathMap<u32> = PathMap::default();
        assert!(m.is_empty());
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        m.insert(Arc::clone(&a), 1);
        m.insert(Arc::clone(&b), 2);
        m.insert(Arc::clone(&c), 3);
        // Found by pointer and by value alike.
        assert!(m.contains_key(&a) && m.contains_key("b") && m.contains_key("c"));
        assert!(!m.contains_key("d"));
        m.insert(Arc::from("b"), 20);
        assert_eq!(m.remove("a"), Some(1));
        // With the inline slot free, a key that lives in the spill map is replaced there, not
        // duplicated inline.
        m.insert(Arc::from("c"), 30);
        assert_eq!(m.remove("c"), Some(30));
        assert_eq!(m.remove("c"), None);
        assert_eq!(
            m.remove_entry("b").map(|(k, v)| (k.to_string(), v)),
            Some(("b".into(), 20))
        );
        assert!(m.is_empty());
        m.insert(Arc::from("d"), 4);
        assert_eq!(m.remove("d"), Some(4));
        assert!(m.is_empty());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "machine_tests.rs"]
mod machine_tests;
