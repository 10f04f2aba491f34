//! The approval gate step: it suspends its run with an approval request and, once decided,
//! outputs the decision.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::notify::{Link, Notifier};
use super::types::{
    Approval, ApprovalStatus, AuditRecord, Delivery, DeliveryStatus, NewGate, OnTimeout, Policy,
};
use crate::error::StepError;
use crate::workflow::{Step, StepContext};

type TextFn = Arc<dyn Fn(&Value) -> String + Send + Sync>;
type DataFn = Arc<dyn Fn(&Value) -> Value + Send + Sync>;
type LinksFn = Arc<dyn Fn(&Value) -> Vec<Link> + Send + Sync>;

/// A step that waits for people to approve, reject or edit-and-approve the data it is given.
///
/// Add it with [`crate::Workflow::await_approval`] (or as any step, e.g. a parallel child).
/// When the run reaches it, the gate is stored with its request (title, summary, the data to
/// review, links), its notifications go out, and the run suspends. Decisions arrive through
/// [`crate::approval::Approvals::decide`] (from Rust, the HTTP API, the dashboard or the
/// CLI); the gate's output is the decision:
///
/// ```json
/// {"status": "approved", "approved": true, "data": <the data, possibly edited>,
///  "comment": "lgtm", "decided_by": ["alice", "bob"], "votes": [...], "timed_out": false}
/// ```
///
/// ```
/// use std::time::Duration;
/// use miyabi_engine::approval::{ApprovalGate, Escalate, Quorum};
/// let gate = ApprovalGate::new()
///     .title("Review the generated patch")
///     .approvers(["alice", "team:leads"])
///     .policy(Quorum(2))
///     .deadline(Duration::from_secs(3 * 24 * 3600))
///     .on_timeout(Escalate(["cto"]));
/// # let _ = gate;
/// ```
#[derive(Clone, Default)]
pub struct ApprovalGate {
    title: Option<String>,
    summary: Option<TextFn>,
    data: Option<DataFn>,
    links: Vec<Link>,
    links_fn: Option<LinksFn>,
    approvers: Vec<String>,
    policy: Policy,
    deadline: Option<Duration>,
    on_timeout: OnTimeout,
    schema: Option<Value>,
    notifiers: Vec<Notifier>,
}

impl std::fmt::Debug for ApprovalGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalGate")
            .field("title", &self.title)
            .field("approvers", &self.approvers)
            .field("policy", &self.policy)
            .field("deadline", &self.deadline)
            .field("on_timeout", &self.on_timeout)
            .field("notifiers", &self.notifiers)
            .finish_non_exhaustive()
    }
}

impl ApprovalGate {
    /// A gate that any one approver decides, without a deadline. Without approvers, anyone
    /// may decide (`*`).
    pub fn new() -> Self {
        Self::default()
    }

    /// The request's title (default: `Approve <gate path>`).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// A fixed summary.
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        let s: String = summary.into();
        self.summary = Some(Arc::new(move |_| s.clone()));
        self
    }

    /// A summary computed from the gate's input.
    pub fn summary_from(mut self, f: impl Fn(&Value) -> String + Send + Sync + 'static) -> Self {
        self.summary = Some(Arc::new(f));
        self
    }

    /// The data under review, computed from the gate's input (default: the input itself).
    pub fn data_from(mut self, f: impl Fn(&Value) -> Value + Send + Sync + 'static) -> Self {
        self.data = Some(Arc::new(f));
        self
    }

    /// Adds a link shown with the request.
    pub fn link(mut self, label: impl Into<String>, url: impl Into<String>) -> Self {
        self.links.push(Link {
            label: label.into(),
            url: url.into(),
        });
        self
    }

    /// Links computed from the gate's input (added after fixed ones).
    pub fn links_from(mut self, f: impl Fn(&Value) -> Vec<Link> + Send + Sync + 'static) -> Self {
        self.links_fn = Some(Arc::new(f));
        self
    }

    /// Who may decide: user ids and `team:<name>` entries.
    pub fn approvers<I, S>(mut self, approvers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.approvers = approvers.into_iter().map(Into::into).collect();
        self
    }

    /// How many approvals decide the gate ([`Policy::Any`] by default).
    pub fn policy(mut self, policy: impl Into<Policy>) -> Self {
        self.policy = policy.into();
        self
    }

    /// How long the gate waits before [`ApprovalGate::on_timeout`] applies. The deadline is
    /// stored with the gate: it fires even if it passes while no process runs (the next
    /// engine to start applies it).
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(d);
        self
    }

    /// What the deadline does (reject by default).
    pub fn on_timeout(mut self, outcome: impl Into<OnTimeout>) -> Self {
        self.on_timeout = outcome.into();
        self
    }

    /// A JSON Schema the data must satisfy after an edit (edit-and-approve).
    pub fn schema(mut self, schema: Value) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Adds a notifier told when the gate is reached, escalated and decided
    /// ([`crate::approval::slack`], [`crate::approval::discord`], [`crate::approval::webhook`]).
    pub fn notify(mut self, notifier: Notifier) -> Self {
        super::notify_registry::register(&notifier);
        self.notifiers.push(notifier);
        self
    }

    fn request(&self, path: &str, input: &Value, now: i64) -> GateRequest {
        let mut links = self.links.clone();
        if let Some(f) = &self.links_fn {
            links.extend(f(input));
        }
        GateRequest {
            title: self
                .title
                .clone()
                .unwrap_or_else(|| format!("Approve {path}")),
            summary: self.summary.as_ref().map(|f| f(input)).unwrap_or_default(),
            data: self
                .data
                .as_ref()
                .map(|f| f(input))
                .unwrap_or_else(|| input.clone()),
            links,
            schema: self.schema.clone(),
            approvers: if self.approvers.is_empty() {
                vec!["*".to_string()]
            } else {
                self.approvers.clone()
            },
            policy: self.policy,
            deadline_at: self.deadline.map(|d| crate::store::ms_after(now, d)),
            on_timeout: self.on_timeout.clone(),
            notify: self.notifiers.iter().map(Notifier::key).collect(),
        }
    }
}

/// What a gate suspends with: `{"type": "approval", "request": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GateRequest {
    pub(crate) title: String,
    pub(crate) summary: String,
    pub(crate) data: Value,
    #[serde(default)]
    pub(crate) links: Vec<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) schema: Option<Value>,
    pub(crate) approvers: Vec<String>,
    pub(crate) policy: Policy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deadline_at: Option<i64>,
    pub(crate) on_timeout: OnTimeout,
    #[serde(default)]
    pub(crate) notify: Vec<String>,
}

const GATE_TYPE: &str = "approval";

/// Whether a suspension payload is an approval gate's request.
pub(crate) fn is_gate_payload(payload: &Value) -> bool {
    payload.get("type").and_then(Value::as_str) == Some(GATE_TYPE)
        && payload.get("request").is_some_and(Value::is_object)
}

/// The gate a suspension reached, with its `requested` audit record and notifications.
pub(crate) fn gate_from_suspension(
    run_id: &str,
    workflow: &str,
    path: &str,
    payload: &Value,
    now: i64,
) -> Option<NewGate> {
    if !is_gate_payload(payload) {
        return None;
    }
    let req: GateRequest = serde_json::from_value(payload["request"].clone()).ok()?;
    let deliveries = req
        .notify
        .iter()
        .map(|key| Delivery {
            run_id: run_id.to_string(),
            gate: path.to_string(),
            notifier: key.clone(),
            event: "requested".into(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_at: now,
            last_error: None,
            updated_at: now,
        })
        .collect();
    let audit = AuditRecord {
        id: 0,
        run_id: run_id.to_string(),
        gate: path.to_string(),
        at: now,
        actor: "system:engine".into(),
        action: "requested".into(),
        comment: None,
        diff: None,
        data: Some(json!({
            "title": req.title,
            "data": req.data,
            "approvers": req.approvers,
            "policy": req.policy,
            "deadline_at": req.deadline_at,
        })),
    };
    let approval = Approval {
        run_id: run_id.to_string(),
        workflow: workflow.to_string(),
        gate: path.to_string(),
        status: ApprovalStatus::Pending,
        title: req.title,
        summary: req.summary,
        data: req.data,
        links: req.links,
        schema: req.schema,
        approvers: req.approvers,
        policy: req.policy,
        deadline_at: req.deadline_at,
        on_timeout: req.on_timeout,
        escalated: false,
        notify: req.notify,
        votes: Vec::new(),
        output: None,
        delivered: false,
        created_at: now,
        decided_at: None,
        version: 1,
        deliveries: Vec::new(),
    };
    Some(NewGate {
        approval,
        audit,
        deliveries,
    })
}

#[async_trait]
impl Step for ApprovalGate {
    async fn run(&self, ctx: &StepContext, input: Value) -> Result<Value, StepError> {
        if let Some(decision) = ctx.resume_data() {
            return Ok(decision.clone());
        }
        let req = self.request(ctx.path(), &input, ctx.now_ms());
        ctx.suspend(json!({ "type": GATE_TYPE, "request": req }))
    }
}
