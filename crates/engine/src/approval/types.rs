//! The records of approval gates: requests, votes, decisions, audit entries, deliveries.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::notify::Link;

/// Who must approve, and how many of them.
///
/// Approvers are user ids (`"alice"`) or teams (`"team:leads"`, satisfied by any member of
/// the team). A rejection by any eligible approver rejects the gate under every policy (a
/// veto).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// One approval decides.
    #[default]
    Any,
    /// Every listed approver (each team by one of its members) must approve.
    All,
    /// This many distinct approvers must approve.
    Quorum(u32),
}

/// `Quorum(n)` as written in a gate: `.policy(Quorum(2))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum(pub u32);

impl From<Quorum> for Policy {
    fn from(q: Quorum) -> Self {
        Policy::Quorum(q.0)
    }
}

/// What happens when a gate's deadline passes without a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// The gate is rejected (by `system:deadline`).
    #[default]
    Reject,
    /// The gate is approved (by `system:deadline`).
    Approve,
    /// These approvers are added and notified; the gate then waits without a deadline.
    Escalate(Vec<String>),
}

/// `Escalate([...])` as written in a gate: `.on_timeout(Escalate(["cto"]))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalate<I>(pub I);

impl<I, S> From<Escalate<I>> for OnTimeout
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    fn from(e: Escalate<I>) -> Self {
        OnTimeout::Escalate(e.0.into_iter().map(Into::into).collect())
    }
}

/// Where a gate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    /// Waiting for decisions.
    Pending,
    /// Approved (its output has `approved: true`).
    Approved,
    /// Rejected (by an approver or by its deadline).
    Rejected,
    /// Closed without a decision: its run was cancelled or failed. It leaves inboxes and
    /// takes no decision.
    Closed,
}

impl ApprovalStatus {
    /// `pending`, `approved`, `rejected` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Closed => "closed",
        }
    }

    /// Parses [`ApprovalStatus::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "approved" => Some(Self::Approved),
            "rejected" => Some(Self::Rejected),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// Approve or reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionAction {
    /// Approve (possibly with edited data).
    Approve,
    /// Reject.
    Reject,
}

/// One approver's decision, given to [`crate::approval::Approvals::decide`].
///
/// Deserializes from `{"action": "approve" | "reject", "data": <edited data>, "comment": ".."}`.
///
/// ```
/// use miyabi_engine::approval::Decision;
/// use serde_json::json;
/// let d = Decision::edit_and_approve(json!({"patch": "v2"})).comment("fixed the typo");
/// # let _ = d;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Approve or reject.
    pub action: DecisionAction,
    /// Edited data (approve only): replaces the data under review; validated against the
    /// gate's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// A comment for the audit trail and the gate's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Decision {
    /// Approve the data as it is.
    pub fn approve() -> Self {
        Self {
            action: DecisionAction::Approve,
            data: None,
            comment: None,
        }
    }

    /// Reject.
    pub fn reject() -> Self {
        Self {
            action: DecisionAction::Reject,
            data: None,
            comment: None,
        }
    }

    /// Approve with changed data.
    pub fn edit_and_approve(data: Value) -> Self {
        Self {
            action: DecisionAction::Approve,
            data: Some(data),
            comment: None,
        }
    }

    /// Adds a comment.
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}

/// Who is deciding: a user id and the teams they belong to.
///
/// ```
/// let bob = miyabi_engine::approval::Approver::new("bob").teams(["leads"]);
/// assert!(bob.may_decide(&["team:leads".to_string()]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    /// User id, as listed in gates' approvers.
    pub id: String,
    /// Teams (listed in gates as `team:<name>`).
    #[serde(default)]
    pub teams: Vec<String>,
}

impl Approver {
    /// A user without teams.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            teams: Vec::new(),
        }
    }

    /// Sets the user's teams.
    pub fn teams<I, S>(mut self, teams: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.teams = teams.into_iter().map(Into::into).collect();
        self
    }

    /// Which entries of an approver list this user satisfies (their id, `team:<t>` of theirs).
    pub(crate) fn entries<'a>(&self, approvers: &'a [String]) -> Vec<&'a str> {
        approvers
            .iter()
            .filter(|a| {
                **a == self.id
                    || *a == "*"
                    || a.strip_prefix("team:")
                        .is_some_and(|t| self.teams.iter().any(|m| m == t))
            })
            .map(String::as_str)
            .collect()
    }

    /// Whether this user is among `approvers` (directly or through a team).
    pub fn may_decide(&self, approvers: &[String]) -> bool {
        !self.entries(approvers).is_empty()
    }
}

/// One recorded vote on a gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    /// The approver's id (`system:deadline` for a deadline's outcome).
    pub by: String,
    /// Approve or reject.
    pub action: DecisionAction,
    /// Their comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Whether they changed the data.
    #[serde(default)]
    pub edited: bool,
    /// The approver entries the vote stands for (`alice`, `team:leads`).
    #[serde(default)]
    pub entries: Vec<String>,
    /// When (ms since the epoch).
    pub at: i64,
}

/// An approval gate of a run: the request, its votes and, once decided, its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// The run.
    pub run_id: String,
    /// The run's workflow.
    pub workflow: String,
    /// The gate's step path (`code-review`, `checks/security`).
    pub gate: String,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// Title of the request.
    pub title: String,
    /// Summary of the request.
    pub summary: String,
    /// The data under review (after edits: the edited data).
    pub data: Value,
    /// Links shown with the request.
    #[serde(default)]
    pub links: Vec<Link>,
    /// JSON Schema edited data must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Who may decide (`alice`, `team:leads`, `*` for anyone); grows on escalation.
    pub approvers: Vec<String>,
    /// How many must approve.
    pub policy: Policy,
    /// When the deadline passes (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_at: Option<i64>,
    /// What the deadline does.
    pub on_timeout: OnTimeout,
    /// Whether the deadline escalated the gate.
    #[serde(default)]
    pub escalated: bool,
    /// Keys of the notifiers told about the gate.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Votes so far, in order.
    #[serde(default)]
    pub votes: Vec<Vote>,
    /// The gate's output once decided (what the workflow's next step receives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Whether the output was handed to the run.
    #[serde(default)]
    pub delivered: bool,
    /// When the gate was reached (ms).
    pub created_at: i64,
    /// When it was decided (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<i64>,
    /// Incremented by every change (compare-and-set).
    pub version: u64,
    /// Notification delivery state (filled when read).
    #[serde(default)]
    pub deliveries: Vec<Delivery>,
}

impl Approval {
    /// Whether `who` may vote on this gate now (listed, pending, and not voted yet).
    pub fn awaits(&self, who: &Approver) -> bool {
        self.status == ApprovalStatus::Pending
            && who.may_decide(&self.approvers)
            && !self.votes.iter().any(|v| v.by == who.id)
    }
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the store's audit log (assigned when stored).
    #[serde(default)]
    pub id: i64,
    /// The run.
    pub run_id: String,
    /// The gate's path.
    pub gate: String,
    /// When (ms since the epoch).
    pub at: i64,
    /// Who (`system:engine` for requests, `system:deadline` for timeouts).
    pub actor: String,
    /// `requested`, `approved`, `rejected`, `escalated`, `timed-out`, `decided`,
    /// `notified`, `notification-failed`.
    pub action: String,
    /// The actor's comment or the system's explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// An edit as a JSON Patch (RFC 6902) from the reviewed data to the approved data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Value>,
    /// Other details (the request, the outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not yet sent, or being retried.
    Pending,
    /// Accepted by the receiver.
    Delivered,
    /// Given up after the last attempt or a permanent error.
    Failed,
}

impl DeliveryStatus {
    /// `pending`, `delivered` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses [`DeliveryStatus::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One notification in the outbox: a gate event for one notifier, sent at most once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The run.
    pub run_id: String,
    /// The gate's path.
    pub gate: String,
    /// The notifier's key (kind and a hash of its URL; never the URL).
    pub notifier: String,
    /// `requested`, `escalated` or `decided`.
    pub event: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (ms).
    pub next_at: i64,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Last change (ms).
    pub updated_at: i64,
}

/// Which gates [`crate::approval::Approvals::list`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApprovalFilter {
    /// Only gates of this run.
    pub run_id: Option<String>,
    /// Only gates with this status.
    pub status: Option<ApprovalStatus>,
    /// Only gates listing this approver entry (`alice`, `team:leads`) or awaiting this user.
    pub approver: Option<Approver>,
    /// Only pending gates whose deadline is at or before this time (ms).
    pub deadline_before: Option<i64>,
    /// Only decided gates whose output was not yet handed to their run.
    pub undelivered: bool,
    /// At most this many (newest first).
    pub limit: Option<usize>,
}

/// Which audit records [`crate::approval::Approvals::audit`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only records of this run.
    pub run_id: Option<String>,
    /// Only records of this gate (with `run_id`).
    pub gate: Option<String>,
    /// Only records by this actor.
    pub actor: Option<String>,
    /// At most this many (oldest first).
    pub limit: Option<usize>,
}

/// A gate reached by a run, with what is stored with it (written in the run's batch).
#[derive(Debug, Clone, PartialEq)]
pub struct NewGate {
    /// The gate.
    pub approval: Approval,
    /// Its `requested` audit record.
    pub audit: AuditRecord,
    /// Its notifications.
    pub deliveries: Vec<Delivery>,
}

/// A compare-and-set change of a gate, with its audit records and notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct GateUpdate {
    /// The version the gate must still have.
    pub expected_version: u64,
    /// The gate after the change (its `version` already incremented).
    pub approval: Approval,
    /// Audit records to append.
    pub audit: Vec<AuditRecord>,
    /// Notifications to add (ignored when the same one exists).
    pub deliveries: Vec<Delivery>,
    /// `Some(t)`: apply only if the stored gate has no deadline or a deadline after `t` (ms),
    /// checked in the same transaction as the version, so a decision made after the deadline
    /// never lands, whether or not the deadline worker has run.
    pub before_deadline: Option<i64>,
}
