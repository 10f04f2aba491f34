//! [`Approvals`]: the inbox, decisions with compare-and-set, deadlines, handing decisions to
//! runs, and the notification outbox.

use serde_json::json;

use super::error::ApprovalError;
use super::types::{
    Approval, ApprovalFilter, ApprovalStatus, Approver, AuditFilter, AuditRecord, Decision,
    DecisionAction, Delivery, DeliveryStatus, GateUpdate, OnTimeout, Policy, Vote,
};
use crate::error::EngineError;
use crate::store::{GateStore, RunStatus};
use crate::workflow::{Engine, Schema};

/// How many times a decision is retried when the gate changed between read and write.
const CAS_ROUNDS: usize = 16;

/// The actor of deadline outcomes.
pub const DEADLINE_ACTOR: &str = "system:deadline";

/// The approval gates of an engine's runs; from [`Engine::approvals`]. Cheap to clone.
#[derive(Clone)]
pub struct Approvals {
    engine: Engine,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").finish_non_exhaustive()
    }
}

/// What one pass of the approvals worker did ([`Approvals::tick`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Gates whose deadline was applied.
    pub expired: usize,
    /// Decided gates handed to their runs.
    pub delivered: usize,
    /// Notifications sent successfully.
    pub notified: usize,
    /// Notification attempts that failed.
    pub notify_failures: usize,
    /// Pending gates closed because their run ended.
    pub closed: usize,
}

impl Approvals {
    pub(crate) fn new(engine: Engine) -> Self {
        Self { engine }
    }

    fn store(&self) -> Result<&dyn GateStore, ApprovalError> {
        self.engine
            .store()
            .gates()
            .ok_or(ApprovalError::Unsupported)
    }

    /// One gate, with its votes, outcome and notification state.
    pub fn get(&self, run_id: &str, gate: &str) -> Result<Approval, ApprovalError> {
        self.store()?
            .gate(run_id, gate)?
            .ok_or_else(|| ApprovalError::NotFound {
                run: run_id.to_string(),
                gate: gate.to_string(),
            })
    }

    /// Gates matching a filter, newest first.
    pub fn list(&self, filter: &ApprovalFilter) -> Result<Vec<Approval>, ApprovalError> {
        Ok(self.store()?.list_gates(filter)?)
    }

    /// The pending gates `who` may decide and has not voted on yet, newest first. Gates of
    /// runs that ended (cancelled, failed) are left out even before the worker closes them.
    pub fn inbox(&self, who: &Approver) -> Result<Vec<Approval>, ApprovalError> {
        let pending = self.store()?.list_gates(&ApprovalFilter {
            status: Some(ApprovalStatus::Pending),
            approver: Some(who.clone()),
            ..ApprovalFilter::default()
        })?;
        let mut out = Vec::new();
        for a in pending {
            if a.awaits(who) && self.run_ended(&a.run_id)?.is_none() {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// The run's status when it ended without finishing its gates (terminal, or gone).
    fn run_ended(&self, run_id: &str) -> Result<Option<String>, ApprovalError> {
        Ok(match self.engine.store().run(run_id)? {
            None => Some("deleted".into()),
            Some(r) if r.status.is_terminal() => Some(r.status.as_str().to_string()),
            Some(_) => None,
        })
    }

    /// Closes the pending gates of a run that ended (cancelled, failed): they leave inboxes,
    /// refuse later decisions (409, naming why), and their notifiers send a `closed` notice.
    /// Returns how many this call closed. The approvals worker does it for every ended run;
    /// the server calls it at once after a cancellation.
    pub async fn close_run(&self, run_id: &str) -> Result<usize, ApprovalError> {
        match self.run_ended(run_id)? {
            Some(status) => self.close_gates(run_id, status).await,
            None => Ok(0),
        }
    }

    async fn close_gates(&self, run_id: &str, status: String) -> Result<usize, ApprovalError> {
        let store = self.store()?;
        let mut closed = 0;
        for a in store.list_gates(&ApprovalFilter {
            run_id: Some(run_id.to_string()),
            status: Some(ApprovalStatus::Pending),
            ..ApprovalFilter::default()
        })? {
            let now = self.engine.now_ms();
            let mut next = a.clone();
            next.version += 1;
            next.deliveries.clear();
            next.status = ApprovalStatus::Closed;
            next.decided_at = Some(now);
            next.deadline_at = None;
            // Nothing to hand to the run.
            next.delivered = true;
            let reason = format!("the run is {status}");
            let audit = vec![AuditRecord {
                id: 0,
                run_id: a.run_id.clone(),
                gate: a.gate.clone(),
                at: now,
                actor: "system:engine".into(),
                action: "closed".into(),
                comment: Some(reason.clone()),
                diff: None,
                data: Some(json!({ "run_status": status })),
            }];
            if store.update_gate(&GateUpdate {
                expected_version: a.version,
                approval: next.clone(),
                audit,
                deliveries: notices(&next, "closed", now),
                before_deadline: None,
            })? {
                closed += 1;
                tracing::info!(run = %run_id, gate = %a.gate, %reason, "gate closed");
            }
        }
        if closed > 0 {
            self.engine.wake_worker();
        }
        Ok(closed)
    }

    /// The audit trail, oldest first.
    pub fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, ApprovalError> {
        Ok(self.store()?.audit(filter)?)
    }

    /// The audit trail newest first: records with an id below `before` (the last id of the
    /// previous page), at most `filter.limit`.
    pub fn audit_newest(
        &self,
        filter: &AuditFilter,
        before: Option<i64>,
    ) -> Result<Vec<AuditRecord>, ApprovalError> {
        Ok(self.store()?.audit_newest(filter, before)?)
    }

    /// Records `who`'s decision on a gate. When it decides the gate (by its policy), the
    /// gate's output goes to the run, which continues in the background if its workflow is
    /// registered with this engine (otherwise an engine that has it picks it up).
    ///
    /// Exactly one terminal decision wins, whatever the race (other approvers, retries, the
    /// deadline): every change is a compare-and-set on the gate's version, and a decision on
    /// a decided gate, or a second vote by the same user, is a [`ApprovalError::Conflict`].
    pub async fn decide(
        &self,
        run_id: &str,
        gate: &str,
        who: &Approver,
        decision: Decision,
    ) -> Result<Approval, ApprovalError> {
        let span = tracing::info_span!("approval.decide", run_id, gate, who = %who.id);
        let _enter = span.enter();
        let store = self.store()?;
        for _ in 0..CAS_ROUNDS {
            let a = self.get(run_id, gate)?;
            if a.status == ApprovalStatus::Pending
                && let Some(status) = self.run_ended(run_id)?
            {
                // The run ended (cancelled, failed) and the worker has not closed its gates
                // yet: close them now, and refuse.
                self.close_gates(run_id, status).await?;
                continue;
            }
            if a.status != ApprovalStatus::Pending {
                return Err(ApprovalError::Conflict {
                    run: run_id.to_string(),
                    gate: gate.to_string(),
                    reason: decided_reason(&a),
                });
            }
            let now = self.engine.now_ms();
            if a.deadline_at.is_some_and(|d| d <= now) {
                // Past the deadline, before the worker applied it: apply it now (a rejection,
                // an approval or an escalation), then look again.
                self.expire(a, now).await?;
                continue;
            }
            let entries = who.entries(&a.approvers);
            if entries.is_empty() {
                return Err(ApprovalError::Forbidden {
                    who: who.id.clone(),
                    run: run_id.to_string(),
                    gate: gate.to_string(),
                    approvers: a.approvers.join(", "),
                });
            }
            if a.votes.iter().any(|v| v.by == who.id) {
                return Err(ApprovalError::Conflict {
                    run: run_id.to_string(),
                    gate: gate.to_string(),
                    reason: format!("`{}` already voted on this gate", who.id),
                });
            }
            let mut next = a.clone();
            next.version += 1;
            next.deliveries.clear();
            let mut diff = None;
            if let Some(edited) = &decision.data {
                if decision.action == DecisionAction::Reject {
                    return Err(ApprovalError::BadDecision {
                        run: run_id.to_string(),
                        gate: gate.to_string(),
                        reason: "a rejection cannot carry edited data".into(),
                    });
                }
                if let Some(schema) = &a.schema {
                    let schema =
                        Schema::new(schema.clone()).map_err(|e| ApprovalError::BadDecision {
                            run: run_id.to_string(),
                            gate: gate.to_string(),
                            reason: format!("the gate's schema does not compile: {e}"),
                        })?;
                    schema.validate(edited, &format!("gate `{gate}`"), "edited data")?;
                }
                let patch = json_patch::diff(&a.data, edited);
                diff = serde_json::to_value(patch).ok();
                next.data = edited.clone();
            }
            next.votes.push(Vote {
                by: who.id.clone(),
                action: decision.action,
                comment: decision.comment.clone(),
                edited: decision.data.is_some(),
                entries: entries.iter().map(|e| e.to_string()).collect(),
                at: now,
            });
            let mut audit = vec![AuditRecord {
                id: 0,
                run_id: run_id.to_string(),
                gate: gate.to_string(),
                at: now,
                actor: who.id.clone(),
                action: match decision.action {
                    DecisionAction::Approve if decision.data.is_some() => "edited-and-approved",
                    DecisionAction::Approve => "approved",
                    DecisionAction::Reject => "rejected",
                }
                .into(),
                comment: decision.comment.clone(),
                diff,
                data: None,
            }];
            let mut deliveries = Vec::new();
            if let Some(status) = outcome(&next) {
                finish(&mut next, status, now, false);
                audit.push(decided_record(&next, now));
                deliveries = notices(&next, "decided", now);
            }
            let update = GateUpdate {
                expected_version: a.version,
                approval: next.clone(),
                audit,
                deliveries,
                before_deadline: Some(now),
            };
            if !store.update_gate(&update)? {
                continue;
            }
            tracing::info!(status = next.status.as_str(), "approval recorded");
            if next.status != ApprovalStatus::Pending
                && let Err(e) = self.deliver(&next).await
            {
                tracing::warn!(error = %e, "decision recorded; handing it to the run failed (the worker retries)");
            }
            self.engine.wake_worker();
            return self.get(run_id, gate);
        }
        Err(ApprovalError::Conflict {
            run: run_id.to_string(),
            gate: gate.to_string(),
            reason: "the gate kept changing while deciding; try again".into(),
        })
    }

    /// One pass of the approvals worker: applies passed deadlines, hands decided gates to
    /// their runs, sends due notifications. The worker calls it periodically; call it
    /// yourself to apply deadlines at once (e.g. in a CLI).
    pub async fn tick(&self) -> Result<TickReport, ApprovalError> {
        let store = self.store()?;
        let mut report = TickReport::default();
        let now = self.engine.now_ms();
        for a in store.list_gates(&ApprovalFilter {
            deadline_before: Some(now),
            ..ApprovalFilter::default()
        })? {
            if self.expire(a, now).await? {
                report.expired += 1;
            }
        }
        // Gates of runs that ended without them (cancelled, failed) are closed.
        let mut ended = std::collections::HashSet::new();
        for a in store.list_gates(&ApprovalFilter {
            status: Some(ApprovalStatus::Pending),
            ..ApprovalFilter::default()
        })? {
            if !ended.contains(&a.run_id) && self.run_ended(&a.run_id)?.is_some() {
                ended.insert(a.run_id.clone());
            }
        }
        for run in ended {
            report.closed += self.close_run(&run).await?;
        }
        for a in store.list_gates(&ApprovalFilter {
            undelivered: true,
            ..ApprovalFilter::default()
        })? {
            if self.deliver(&a).await? {
                report.delivered += 1;
            }
        }
        for d in store.due_deliveries(self.engine.now_ms(), 64)? {
            match self.send(d).await? {
                Some(true) => report.notified += 1,
                Some(false) => report.notify_failures += 1,
                None => {}
            }
        }
        Ok(report)
    }

    /// Applies a gate's deadline outcome; returns whether this call applied it.
    async fn expire(&self, a: Approval, now: i64) -> Result<bool, ApprovalError> {
        let store = self.store()?;
        let mut next = a.clone();
        next.version += 1;
        next.deliveries.clear();
        let mut audit = Vec::new();
        let deliveries;
        match &a.on_timeout {
            OnTimeout::Escalate(to) => {
                for t in to {
                    if !next.approvers.contains(t) {
                        next.approvers.push(t.clone());
                    }
                }
                next.escalated = true;
                next.deadline_at = None;
                audit.push(AuditRecord {
                    id: 0,
                    run_id: a.run_id.clone(),
                    gate: a.gate.clone(),
                    at: now,
                    actor: DEADLINE_ACTOR.into(),
                    action: "escalated".into(),
                    comment: Some(format!("deadline passed; escalated to {}", to.join(", "))),
                    diff: None,
                    data: Some(json!({ "approvers": next.approvers })),
                });
                deliveries = notices(&next, "escalated", now);
            }
            outcome @ (OnTimeout::Approve | OnTimeout::Reject) => {
                let (action, status) = if *outcome == OnTimeout::Approve {
                    (DecisionAction::Approve, ApprovalStatus::Approved)
                } else {
                    (DecisionAction::Reject, ApprovalStatus::Rejected)
                };
                next.votes.push(Vote {
                    by: DEADLINE_ACTOR.into(),
                    action,
                    comment: Some("deadline passed".into()),
                    edited: false,
                    entries: Vec::new(),
                    at: now,
                });
                finish(&mut next, status, now, true);
                audit.push(AuditRecord {
                    id: 0,
                    run_id: a.run_id.clone(),
                    gate: a.gate.clone(),
                    at: now,
                    actor: DEADLINE_ACTOR.into(),
                    action: "timed-out".into(),
                    comment: Some(format!("deadline passed; {}", status.as_str())),
                    diff: None,
                    data: None,
                });
                audit.push(decided_record(&next, now));
                deliveries = notices(&next, "decided", now);
            }
        }
        let applied = store.update_gate(&GateUpdate {
            expected_version: a.version,
            approval: next.clone(),
            audit,
            deliveries,
            before_deadline: None,
        })?;
        if applied && next.status != ApprovalStatus::Pending {
            self.deliver(&next).await?;
        }
        Ok(applied)
    }

    /// For runs driven outside Rust (the Node binding): hands a decided gate's output to its
    /// suspended run and returns the run for the caller to drive; `None` when there is nothing
    /// to hand over (pending, delivered already, or the run moved on). The gate is marked
    /// delivered once its output is committed to the run.
    pub fn resume_external(
        &self,
        run_id: &str,
        gate: &str,
    ) -> Result<Option<crate::external::ExternalRun>, ApprovalError> {
        let a = self.get(run_id, gate)?;
        let Some(output) = a.output.clone() else {
            return Ok(None);
        };
        if a.delivered {
            return Ok(None);
        }
        let status = self.engine.store().run(run_id)?.map(|r| r.status);
        let run = match status {
            Some(RunStatus::Suspended) => {
                match self.engine.resume_gate_external(run_id, gate, output) {
                    Ok(run) => Some(run),
                    Err(EngineError::NotSuspended { .. }) => None,
                    Err(e) => return Err(e.into()),
                }
            }
            Some(s) if !s.is_terminal() => return Ok(None),
            _ => None,
        };
        self.mark_delivered(run_id, gate)?;
        Ok(run)
    }

    fn mark_delivered(&self, run_id: &str, gate: &str) -> Result<bool, ApprovalError> {
        let store = self.store()?;
        for _ in 0..CAS_ROUNDS {
            let Some(cur) = store.gate(run_id, gate)? else {
                return Ok(false);
            };
            if cur.delivered {
                return Ok(false);
            }
            let mut next = cur.clone();
            next.delivered = true;
            next.version += 1;
            next.deliveries.clear();
            if store.update_gate(&GateUpdate {
                expected_version: cur.version,
                approval: next,
                audit: Vec::new(),
                deliveries: Vec::new(),
                before_deadline: None,
            })? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Hands a decided gate's output to its run; returns whether the gate is now delivered.
    async fn deliver(&self, a: &Approval) -> Result<bool, ApprovalError> {
        let Some(output) = a.output.clone() else {
            return Ok(false);
        };
        if a.delivered {
            return Ok(false);
        }
        let run = self.engine.store().run(&a.run_id)?;
        let done = match run.map(|r| r.status) {
            None => true,
            Some(s) if s.is_terminal() => true,
            Some(RunStatus::Suspended) => {
                match self.engine.resume_gate(&a.run_id, &a.gate, output) {
                    Ok(()) => true,
                    // The gate was consumed already (a crash after the resume committed).
                    Err(EngineError::NotSuspended { .. }) => true,
                    // Its steps run outside Rust: the installed handoff (the Node binding's
                    // engine) resumes it, which marks the gate delivered.
                    Err(EngineError::DrivenOutsideRust { .. }) => {
                        self.engine.hand_off_gate(&a.run_id, &a.gate);
                        false
                    }
                    Err(
                        EngineError::UnknownWorkflow(_)
                        | EngineError::DefinitionChanged { .. }
                        | EngineError::NotResumable { .. }
                        | EngineError::Contended { .. },
                    ) => false,
                    Err(e) => return Err(e.into()),
                }
            }
            // Running elsewhere: delivered once the run suspends again.
            Some(_) => false,
        };
        if !done {
            return Ok(false);
        }
        self.mark_delivered(&a.run_id, &a.gate)
    }

    /// Sends one due notification; `None` when no notifier with its key exists in this
    /// process (another process may send it).
    async fn send(&self, mut d: Delivery) -> Result<Option<bool>, ApprovalError> {
        let Some(notifier) = super::notify_registry::get(&d.notifier) else {
            return Ok(None);
        };
        let store = self.store()?;
        let Some(a) = store.gate(&d.run_id, &d.gate)? else {
            return Ok(None);
        };
        let notice = notice_for(&a, &d.event, self.engine.public_url());
        let span = tracing::info_span!("approval.notify", run_id = %d.run_id, gate = %d.gate, notifier = %d.notifier, event = %d.event);
        let result = {
            let _e = span.enter();
            notifier.send(&notice).await
        };
        let now = self.engine.now_ms();
        d.attempts += 1;
        d.updated_at = now;
        let (ok, audit) = match result {
            Ok(()) => {
                d.status = DeliveryStatus::Delivered;
                d.last_error = None;
                (true, None)
            }
            Err(e) => {
                let msg = e.to_string();
                let give_up = !e.is_retryable() || d.attempts >= super::notify::MAX_ATTEMPTS;
                d.last_error = Some(msg.clone());
                let audit = if give_up {
                    d.status = DeliveryStatus::Failed;
                    tracing::warn!(error = %msg, "notification failed for good");
                    Some(AuditRecord {
                        id: 0,
                        run_id: d.run_id.clone(),
                        gate: d.gate.clone(),
                        at: now,
                        actor: "system:notifier".into(),
                        action: "notification-failed".into(),
                        comment: Some(msg),
                        diff: None,
                        data: Some(json!({
                            "notifier": d.notifier,
                            "event": d.event,
                            "attempts": d.attempts,
                        })),
                    })
                } else {
                    d.next_at = crate::store::ms_after(
                        now,
                        super::notify::retry_delay(d.attempts.saturating_add(1), &e),
                    );
                    None
                };
                (false, audit)
            }
        };
        store.update_delivery(&d, audit.as_ref())?;
        Ok(Some(ok))
    }
}

/// The notice a notifier sends for a gate event.
fn notice_for(a: &Approval, event: &str, public_url: &str) -> super::notify::GateNotice {
    use super::notify::{GateNotice, NoticeEvent};
    let event = match event {
        "escalated" => NoticeEvent::Escalated,
        "closed" => NoticeEvent::Closed,
        "decided" => NoticeEvent::Decided {
            status: a.status.as_str().to_string(),
            by: a.votes.iter().map(|v| v.by.clone()).collect(),
        },
        _ => NoticeEvent::Requested,
    };
    GateNotice {
        run_id: a.run_id.clone(),
        workflow: a.workflow.clone(),
        gate: a.gate.clone(),
        title: a.title.clone(),
        summary: a.summary.clone(),
        approvers: a.approvers.clone(),
        deadline_at: a.deadline_at,
        link: gate_link(public_url, &a.run_id, &a.gate),
        // Only http(s) links reach a notification, as only those reach the dashboard.
        links: a
            .links
            .iter()
            .filter(|l| is_web_url(&l.url))
            .cloned()
            .collect(),
        event,
    }
}

/// The dashboard page of a gate: `<public url>/#/approvals/<run>/<gate, percent-encoded>`.
pub fn gate_link(public_url: &str, run_id: &str, gate: &str) -> String {
    let mut enc = String::with_capacity(gate.len());
    for b in gate.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    format!(
        "{}/#/approvals/{run_id}/{enc}",
        public_url.trim_end_matches('/')
    )
}

/// Whether `url` is an absolute http or https URL (not `javascript:`, `data:`, ...).
pub(crate) fn is_web_url(url: &str) -> bool {
    reqwest::Url::parse(url.trim()).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// Whether the votes decide the gate, and how.
fn outcome(a: &Approval) -> Option<ApprovalStatus> {
    if a.votes.iter().any(|v| v.action == DecisionAction::Reject) {
        return Some(ApprovalStatus::Rejected);
    }
    let approvals: Vec<&Vote> = a
        .votes
        .iter()
        .filter(|v| v.action == DecisionAction::Approve)
        .collect();
    let decided = match a.policy {
        Policy::Any => !approvals.is_empty(),
        Policy::Quorum(n) => approvals.len() >= n.max(1) as usize,
        Policy::All => a
            .approvers
            .iter()
            .all(|entry| approvals.iter().any(|v| v.entries.contains(entry))),
    };
    decided.then_some(ApprovalStatus::Approved)
}

/// Marks a gate decided and computes its output.
fn finish(a: &mut Approval, status: ApprovalStatus, now: i64, timed_out: bool) {
    a.status = status;
    a.decided_at = Some(now);
    let comment = a.votes.last().and_then(|v| v.comment.clone());
    let decided_by: Vec<&str> = a
        .votes
        .iter()
        .filter(|v| (status == ApprovalStatus::Approved) == (v.action == DecisionAction::Approve))
        .map(|v| v.by.as_str())
        .collect();
    a.output = Some(json!({
        "status": status.as_str(),
        "approved": status == ApprovalStatus::Approved,
        "data": a.data,
        "comment": comment,
        "decided_by": decided_by,
        "votes": a.votes,
        "timed_out": timed_out,
    }));
}

fn decided_record(a: &Approval, now: i64) -> AuditRecord {
    AuditRecord {
        id: 0,
        run_id: a.run_id.clone(),
        gate: a.gate.clone(),
        at: now,
        actor: "system:engine".into(),
        action: "decided".into(),
        comment: Some(a.status.as_str().to_string()),
        diff: None,
        data: a.output.clone(),
    }
}

fn notices(a: &Approval, event: &str, now: i64) -> Vec<Delivery> {
    a.notify
        .iter()
        .map(|key| Delivery {
            run_id: a.run_id.clone(),
            gate: a.gate.clone(),
            notifier: key.clone(),
            event: event.to_string(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_at: now,
            last_error: None,
            updated_at: now,
        })
        .collect()
}

fn decided_reason(a: &Approval) -> String {
    if a.status == ApprovalStatus::Closed {
        return format!(
            "the gate is closed: its run ended without it{}",
            a.decided_at
                .map(|t| format!(" at {}", rfc3339(t)))
                .unwrap_or_default()
        );
    }
    if let Some(v) = a.votes.iter().find(|v| v.by == DEADLINE_ACTOR) {
        return format!(
            "the deadline passed at {}; the gate was {} by its deadline",
            rfc3339(v.at),
            a.status.as_str()
        );
    }
    let by: Vec<&str> = a.votes.iter().map(|v| v.by.as_str()).collect();
    format!(
        "already {} (by {}){}",
        a.status.as_str(),
        by.join(", "),
        a.decided_at
            .map(|t| format!(" at {}", rfc3339(t)))
            .unwrap_or_default()
    )
}

/// A time in ms since the epoch as RFC 3339 (UTC).
fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
    t.ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}
