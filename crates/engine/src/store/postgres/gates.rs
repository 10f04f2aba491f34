//! Approval gates on Postgres: the `gates`, `audit` and `outbox` tables. Gate changes are
//! compare-and-set on the gate's version (two workers applying one deadline: one wins); the
//! outbox is claimed with `FOR UPDATE SKIP LOCKED` (a notification goes out from one worker).

use std::sync::Arc;

use postgres::GenericClient;

use super::{PostgresStore, map_err};
use crate::approval::{
    Approval, ApprovalFilter, ApprovalStatus, AuditFilter, AuditRecord, Delivery, DeliveryStatus,
    GateUpdate, NewGate,
};
use crate::error::StoreError;
use crate::store::GateStore;

fn to_json<T: serde::Serialize>(label: &str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Other {
        path: label.to_string(),
        message: format!("cannot encode an approval record: {e}"),
    })
}

/// The stored document of a gate: everything but its deliveries (kept in `outbox`).
fn gate_doc(label: &str, a: &Approval) -> Result<String, StoreError> {
    if a.deliveries.is_empty() {
        return to_json(label, a);
    }
    let mut bare = a.clone();
    bare.deliveries.clear();
    to_json(label, &bare)
}

fn insert_audit(
    tx: &mut impl GenericClient,
    label: &str,
    r: &AuditRecord,
) -> Result<(), StoreError> {
    let doc = to_json(label, r)?;
    tx.execute(
        "INSERT INTO audit (run_id, gate, at, actor, doc) VALUES ($1,$2,$3,$4,$5)",
        &[&r.run_id, &r.gate, &r.at, &r.actor, &doc],
    )
    .map_err(|e| map_err(label, &e))?;
    Ok(())
}

fn insert_delivery(
    tx: &mut impl GenericClient,
    label: &str,
    d: &Delivery,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO outbox (run_id, gate, notifier, event, status, attempts, next_at,
         last_error, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING",
        &[
            &d.run_id,
            &d.gate,
            &d.notifier,
            &d.event,
            &d.status.as_str(),
            &i64::from(d.attempts),
            &d.next_at,
            &d.last_error,
            &d.updated_at,
        ],
    )
    .map_err(|e| map_err(label, &e))?;
    Ok(())
}

/// Inserts gates reached by a run inside the run's batch transaction. A gate that exists
/// already (a replayed suspension) is left as it is.
pub(super) fn insert_gates(
    tx: &mut impl GenericClient,
    label: &str,
    gates: &[NewGate],
) -> Result<(), StoreError> {
    for g in gates {
        let a = &g.approval;
        let doc = gate_doc(label, a)?;
        let n = tx
            .execute(
                "INSERT INTO gates (run_id, gate, workflow, status, deadline_at, delivered,
                 created_at, version, doc) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
                 ON CONFLICT DO NOTHING",
                &[
                    &a.run_id,
                    &a.gate,
                    &a.workflow,
                    &a.status.as_str(),
                    &a.deadline_at,
                    &a.delivered,
                    &a.created_at,
                    &(a.version as i64),
                    &doc,
                ],
            )
            .map_err(|e| map_err(label, &e))?;
        if n == 0 {
            continue;
        }
        insert_audit(tx, label, &g.audit)?;
        for d in &g.deliveries {
            insert_delivery(tx, label, d)?;
        }
    }
    Ok(())
}

const DELIVERY_COLUMNS: &str =
    "run_id, gate, notifier, event, status, attempts, next_at, last_error, updated_at";

impl PostgresStore {
    fn decode_gate(&self, doc: &str) -> Result<Approval, StoreError> {
        serde_json::from_str(doc).map_err(|e| StoreError::Decode {
            path: self.label.to_string(),
            place: "gates".into(),
            message: e.to_string(),
        })
    }

    fn decode_delivery(&self, r: &postgres::Row) -> Result<Delivery, StoreError> {
        let d = |e: postgres::Error| self.decode_err(&e);
        let run_id: String = r.try_get(0).map_err(d)?;
        let gate: String = r.try_get(1).map_err(d)?;
        let status: String = r.try_get(4).map_err(d)?;
        let attempts: i64 = r.try_get(5).map_err(d)?;
        let status = DeliveryStatus::parse(&status).ok_or_else(|| StoreError::Decode {
            path: self.label.to_string(),
            place: format!("outbox[{run_id}/{gate}]"),
            message: format!("unknown status `{status}`"),
        })?;
        Ok(Delivery {
            notifier: r.try_get(2).map_err(d)?,
            event: r.try_get(3).map_err(d)?,
            status,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            next_at: r.try_get(6).map_err(d)?,
            last_error: r.try_get(7).map_err(d)?,
            updated_at: r.try_get(8).map_err(d)?,
            run_id,
            gate,
        })
    }

    fn deliveries_of(&self, run: &str, gate: &str) -> Result<Vec<Delivery>, StoreError> {
        let rows = self.rows(
            format!(
                "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE run_id = $1 AND gate = $2
                 ORDER BY updated_at, notifier, event"
            ),
            vec![Box::new(run.to_string()), Box::new(gate.to_string())],
        )?;
        rows.iter().map(|r| self.decode_delivery(r)).collect()
    }
}

impl GateStore for PostgresStore {
    fn gate(&self, run: &str, gate: &str) -> Result<Option<Approval>, StoreError> {
        let rows = self.rows(
            "SELECT doc FROM gates WHERE run_id = $1 AND gate = $2".into(),
            vec![Box::new(run.to_string()), Box::new(gate.to_string())],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let doc: String = row.try_get(0).map_err(|e| self.decode_err(&e))?;
        let mut a = self.decode_gate(&doc)?;
        a.deliveries = self.deliveries_of(run, gate)?;
        Ok(Some(a))
    }

    fn list_gates(&self, f: &ApprovalFilter) -> Result<Vec<Approval>, StoreError> {
        let mut sql = String::from("SELECT doc FROM gates WHERE true");
        let mut args: Vec<Box<dyn postgres::types::ToSql + Sync + Send>> = Vec::new();
        if let Some(r) = &f.run_id {
            args.push(Box::new(r.clone()));
            sql.push_str(&format!(" AND run_id = ${}", args.len()));
        }
        if let Some(s) = f.status {
            args.push(Box::new(s.as_str()));
            sql.push_str(&format!(" AND status = ${}", args.len()));
        }
        if let Some(t) = f.deadline_before {
            args.push(Box::new(t));
            sql.push_str(&format!(
                " AND status = 'pending' AND deadline_at IS NOT NULL AND deadline_at <= ${}",
                args.len()
            ));
        }
        if f.undelivered {
            sql.push_str(" AND status <> 'pending' AND NOT delivered");
        }
        sql.push_str(" ORDER BY created_at DESC, run_id DESC, gate");
        let rows = self.rows(sql, args)?;
        let mut out = Vec::new();
        for row in &rows {
            let doc: String = row.try_get(0).map_err(|e| self.decode_err(&e))?;
            let mut a = self.decode_gate(&doc)?;
            if let Some(who) = &f.approver
                && !who.may_decide(&a.approvers)
            {
                continue;
            }
            a.deliveries = self.deliveries_of(&a.run_id, &a.gate)?;
            out.push(a);
            if f.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    fn update_gate(&self, u: &GateUpdate) -> Result<bool, StoreError> {
        let u = u.clone();
        let channel = self.channel.clone();
        self.pool.call(move |c| {
            let label = Arc::clone(&c.label);
            let e = |err: postgres::Error| map_err(&label, &err);
            let client = c.client()?;
            let mut tx = client.transaction().map_err(e)?;
            let a = &u.approval;
            let deadline = if a.status == ApprovalStatus::Pending {
                a.deadline_at
            } else {
                None
            };
            let doc = gate_doc(&label, a)?;
            let n = tx
                .execute(
                    "UPDATE gates SET status = $3, deadline_at = $4, delivered = $5, version = $6,
                     doc = $7 WHERE run_id = $1 AND gate = $2 AND version = $8
                     AND ($9::bigint IS NULL OR deadline_at IS NULL OR deadline_at > $9)",
                    &[
                        &a.run_id,
                        &a.gate,
                        &a.status.as_str(),
                        &deadline,
                        &a.delivered,
                        &(a.version as i64),
                        &doc,
                        &(u.expected_version as i64),
                        &u.before_deadline,
                    ],
                )
                .map_err(e)?;
            if n == 0 {
                return Ok(false);
            }
            for r in &u.audit {
                insert_audit(&mut tx, &label, r)?;
            }
            for d in &u.deliveries {
                insert_delivery(&mut tx, &label, d)?;
            }
            // A decided gate is work for a worker that runs the gate's workflow.
            if a.status != ApprovalStatus::Pending && !a.delivered {
                tx.execute("SELECT pg_notify($1, 'gate')", &[&channel])
                    .map_err(e)?;
            }
            tx.commit().map_err(|err| super::commit_err(&label, &err))?;
            Ok(true)
        })
    }

    fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_query(f, None, false)
    }

    fn audit_newest(
        &self,
        f: &AuditFilter,
        before: Option<i64>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_query(f, before, true)
    }

    fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.pool.call(move |c| {
            let label = Arc::clone(&c.label);
            let client = c.client()?;
            insert_audit(client, &label, &r)
        })
    }

    /// Due notifications, each claimed for this caller: its `next_at` moves one outbox lease
    /// ahead in the same statement, so another worker does not take it while it is sent.
    fn due_deliveries(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let rows = self.rows(
            format!(
                "UPDATE outbox o SET next_at = $2
                 FROM (SELECT run_id, gate, notifier, event FROM outbox
                       WHERE status = 'pending' AND next_at <= $1
                       ORDER BY next_at LIMIT $3 FOR UPDATE SKIP LOCKED) c
                 WHERE o.run_id = c.run_id AND o.gate = c.gate AND o.notifier = c.notifier
                   AND o.event = c.event
                 RETURNING {}",
                DELIVERY_COLUMNS
                    .split(", ")
                    .map(|c| format!("o.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            vec![
                Box::new(now),
                Box::new(now.saturating_add(self.outbox_lease_ms)),
                Box::new(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        )?;
        let mut out: Vec<Delivery> = rows
            .iter()
            .map(|r| self.decode_delivery(r))
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|d| d.updated_at);
        Ok(out)
    }

    fn update_delivery(&self, d: &Delivery, audit: Option<&AuditRecord>) -> Result<(), StoreError> {
        let d = d.clone();
        let audit = audit.cloned();
        self.pool.call(move |c| {
            let label = Arc::clone(&c.label);
            let e = |err: postgres::Error| map_err(&label, &err);
            let client = c.client()?;
            let mut tx = client.transaction().map_err(e)?;
            tx.execute(
                "UPDATE outbox SET status = $5, attempts = $6, next_at = $7, last_error = $8,
                 updated_at = $9 WHERE run_id = $1 AND gate = $2 AND notifier = $3 AND event = $4",
                &[
                    &d.run_id,
                    &d.gate,
                    &d.notifier,
                    &d.event,
                    &d.status.as_str(),
                    &i64::from(d.attempts),
                    &d.next_at,
                    &d.last_error,
                    &d.updated_at,
                ],
            )
            .map_err(e)?;
            if let Some(r) = &audit {
                insert_audit(&mut tx, &label, r)?;
            }
            tx.commit().map_err(|err| super::commit_err(&label, &err))
        })
    }
}

impl PostgresStore {
    /// The audit trail filtered, oldest first, or newest first below id `before`.
    fn audit_query(
        &self,
        f: &AuditFilter,
        before: Option<i64>,
        newest: bool,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = String::from("SELECT id, doc FROM audit WHERE true");
        let mut args: Vec<Box<dyn postgres::types::ToSql + Sync + Send>> = Vec::new();
        if let Some(r) = &f.run_id {
            args.push(Box::new(r.clone()));
            sql.push_str(&format!(" AND run_id = ${}", args.len()));
        }
        if let Some(g) = &f.gate {
            args.push(Box::new(g.clone()));
            sql.push_str(&format!(" AND gate = ${}", args.len()));
        }
        if let Some(a) = &f.actor {
            args.push(Box::new(a.clone()));
            sql.push_str(&format!(" AND actor = ${}", args.len()));
        }
        if let Some(b) = before {
            args.push(Box::new(b));
            sql.push_str(&format!(" AND id < ${}", args.len()));
        }
        sql.push_str(if newest {
            " ORDER BY id DESC"
        } else {
            " ORDER BY id"
        });
        if let Some(l) = f.limit {
            args.push(Box::new(i64::try_from(l).unwrap_or(i64::MAX)));
            sql.push_str(&format!(" LIMIT ${}", args.len()));
        }
        let rows = self.rows(sql, args)?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get(0).map_err(|e| self.decode_err(&e))?;
                let doc: String = row.try_get(1).map_err(|e| self.decode_err(&e))?;
                let mut r: AuditRecord =
                    serde_json::from_str(&doc).map_err(|e| StoreError::Decode {
                        path: self.label.to_string(),
                        place: format!("audit[{id}]"),
                        message: e.to_string(),
                    })?;
                r.id = id;
                Ok(r)
            })
            .collect()
    }
}
