//! Approval gates in the in-memory store.

use std::collections::BTreeMap;

use super::GateStore;
use super::memory::MemoryStore;
use crate::approval::{
    Approval, ApprovalFilter, ApprovalStatus, AuditFilter, AuditRecord, Delivery, DeliveryStatus,
    GateUpdate, NewGate,
};
use crate::error::StoreError;

type DeliveryKey = (String, String, String, String);

/// Gates, audit records and the outbox, under one lock.
#[derive(Default)]
pub(super) struct GateData {
    gates: BTreeMap<(String, String), Approval>,
    audit: Vec<AuditRecord>,
    outbox: BTreeMap<DeliveryKey, Delivery>,
}

fn key(d: &Delivery) -> DeliveryKey {
    (
        d.run_id.clone(),
        d.gate.clone(),
        d.notifier.clone(),
        d.event.clone(),
    )
}

impl GateData {
    /// Forgets the gates and pending notifications of deleted runs (the audit trail stays).
    pub(super) fn remove_runs(&mut self, runs: &[String]) {
        if runs.is_empty() {
            return;
        }
        let doomed: std::collections::HashSet<&str> = runs.iter().map(String::as_str).collect();
        self.gates
            .retain(|(run, _), _| !doomed.contains(run.as_str()));
        self.outbox
            .retain(|(run, _, _, _), _| !doomed.contains(run.as_str()));
    }

    pub(super) fn insert(&mut self, gates: Vec<NewGate>) {
        for g in gates {
            let k = (g.approval.run_id.clone(), g.approval.gate.clone());
            if self.gates.contains_key(&k) {
                continue;
            }
            self.gates.insert(k, g.approval);
            self.push_audit(g.audit);
            for d in g.deliveries {
                self.outbox.entry(key(&d)).or_insert(d);
            }
        }
    }

    fn push_audit(&mut self, mut r: AuditRecord) {
        r.id = self.audit.len() as i64 + 1;
        self.audit.push(r);
    }

    fn with_deliveries(&self, a: &Approval) -> Approval {
        let mut a = a.clone();
        a.deliveries = self
            .outbox
            .values()
            .filter(|d| d.run_id == a.run_id && d.gate == a.gate)
            .cloned()
            .collect();
        a
    }
}

impl MemoryStore {
    pub(super) fn gate_data(&self) -> std::sync::MutexGuard<'_, GateData> {
        self.gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl GateStore for MemoryStore {
    fn gate(&self, run: &str, gate: &str) -> Result<Option<Approval>, StoreError> {
        let g = self.gate_data();
        Ok(g.gates
            .get(&(run.to_string(), gate.to_string()))
            .map(|a| g.with_deliveries(a)))
    }

    fn list_gates(&self, f: &ApprovalFilter) -> Result<Vec<Approval>, StoreError> {
        let g = self.gate_data();
        let mut out: Vec<&Approval> = g
            .gates
            .values()
            .filter(|a| f.run_id.as_ref().is_none_or(|r| *r == a.run_id))
            .filter(|a| f.status.is_none_or(|s| s == a.status))
            .filter(|a| {
                f.deadline_before.is_none_or(|t| {
                    a.status == ApprovalStatus::Pending && a.deadline_at.is_some_and(|d| d <= t)
                })
            })
            .filter(|a| !f.undelivered || (a.status != ApprovalStatus::Pending && !a.delivered))
            .filter(|a| {
                f.approver
                    .as_ref()
                    .is_none_or(|w| w.may_decide(&a.approvers))
            })
            .collect();
        out.sort_by(|a, b| (b.created_at, &b.run_id).cmp(&(a.created_at, &a.run_id)));
        if let Some(l) = f.limit {
            out.truncate(l);
        }
        Ok(out.into_iter().map(|a| g.with_deliveries(a)).collect())
    }

    fn update_gate(&self, u: &GateUpdate) -> Result<bool, StoreError> {
        let mut g = self.gate_data();
        let k = (u.approval.run_id.clone(), u.approval.gate.clone());
        match g.gates.get(&k) {
            Some(a)
                if a.version == u.expected_version
                    && u.before_deadline
                        .is_none_or(|t| a.deadline_at.is_none_or(|d| d > t)) => {}
            _ => return Ok(false),
        }
        let mut next = u.approval.clone();
        next.deliveries.clear();
        g.gates.insert(k, next);
        for r in &u.audit {
            g.push_audit(r.clone());
        }
        for d in &u.deliveries {
            g.outbox.entry(key(d)).or_insert_with(|| d.clone());
        }
        Ok(true)
    }

    fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let g = self.gate_data();
        let it = g
            .audit
            .iter()
            .filter(|r| f.run_id.as_ref().is_none_or(|x| *x == r.run_id))
            .filter(|r| f.gate.as_ref().is_none_or(|x| *x == r.gate))
            .filter(|r| f.actor.as_ref().is_none_or(|x| *x == r.actor))
            .cloned();
        Ok(match f.limit {
            Some(l) => it.take(l).collect(),
            None => it.collect(),
        })
    }

    fn audit_newest(
        &self,
        f: &AuditFilter,
        before: Option<i64>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let g = self.gate_data();
        let it = g
            .audit
            .iter()
            .rev()
            .filter(|r| before.is_none_or(|b| r.id < b))
            .filter(|r| f.run_id.as_ref().is_none_or(|x| *x == r.run_id))
            .filter(|r| f.gate.as_ref().is_none_or(|x| *x == r.gate))
            .filter(|r| f.actor.as_ref().is_none_or(|x| *x == r.actor))
            .cloned();
        Ok(match f.limit {
            Some(l) => it.take(l).collect(),
            None => it.collect(),
        })
    }

    fn due_deliveries(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let g = self.gate_data();
        let mut due: Vec<Delivery> = g
            .outbox
            .values()
            .filter(|d| d.status == DeliveryStatus::Pending && d.next_at <= now)
            .cloned()
            .collect();
        due.sort_by_key(|d| d.next_at);
        due.truncate(limit);
        Ok(due)
    }

    fn update_delivery(&self, d: &Delivery, audit: Option<&AuditRecord>) -> Result<(), StoreError> {
        let mut g = self.gate_data();
        if let Some(slot) = g.outbox.get_mut(&key(d)) {
            *slot = d.clone();
        }
        if let Some(r) = audit {
            g.push_audit(r.clone());
        }
        Ok(())
    }

    fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.gate_data().push_audit(record.clone());
        Ok(())
    }
}
