//! Approval gates on SQLite: the `gates`, `audit` and `outbox` tables.

use rusqlite::{OptionalExtension, params};

use super::GateStore;
use super::sqlite::{SqliteStore, map_err};
use crate::approval::{
    Approval, ApprovalFilter, ApprovalStatus, AuditFilter, AuditRecord, Delivery, DeliveryStatus,
    GateUpdate, NewGate,
};
use crate::error::StoreError;

fn to_json<T: serde::Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// The stored document of a gate: everything but its deliveries (kept in `outbox`).
fn gate_doc(a: &Approval) -> rusqlite::Result<String> {
    if a.deliveries.is_empty() {
        return to_json(a);
    }
    let mut bare = a.clone();
    bare.deliveries.clear();
    to_json(&bare)
}

fn insert_audit(tx: &rusqlite::Connection, r: &AuditRecord) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO audit (run_id, gate, at, actor, doc) VALUES (?1,?2,?3,?4,?5)")?
        .execute(params![r.run_id, r.gate, r.at, r.actor, to_json(r)?])?;
    Ok(())
}

fn insert_delivery(tx: &rusqlite::Connection, d: &Delivery) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO outbox (run_id, gate, notifier, event, status, attempts, next_at,
         last_error, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
    )?
    .execute(params![
        d.run_id,
        d.gate,
        d.notifier,
        d.event,
        d.status.as_str(),
        d.attempts,
        d.next_at,
        d.last_error,
        d.updated_at
    ])?;
    Ok(())
}

/// Inserts gates reached by a run, inside the run's batch transaction. A gate that exists
/// already (a replayed suspension) is left as it is.
pub(super) fn insert_gates(tx: &rusqlite::Connection, gates: &[NewGate]) -> rusqlite::Result<()> {
    for g in gates {
        let a = &g.approval;
        let n = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO gates (run_id, gate, workflow, status, deadline_at,
                 delivered, created_at, version, doc) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
            )?
            .execute(params![
                a.run_id,
                a.gate,
                a.workflow,
                a.status.as_str(),
                a.deadline_at,
                a.delivered,
                a.created_at,
                a.version as i64,
                gate_doc(a)?
            ])?;
        if n == 0 {
            continue;
        }
        insert_audit(tx, &g.audit)?;
        for d in &g.deliveries {
            insert_delivery(tx, d)?;
        }
    }
    Ok(())
}

struct RawDelivery {
    run_id: String,
    gate: String,
    notifier: String,
    event: String,
    status: String,
    attempts: u32,
    next_at: i64,
    last_error: Option<String>,
    updated_at: i64,
}

const DELIVERY_COLUMNS: &str =
    "run_id, gate, notifier, event, status, attempts, next_at, last_error, updated_at";

fn raw_delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawDelivery> {
    Ok(RawDelivery {
        run_id: r.get(0)?,
        gate: r.get(1)?,
        notifier: r.get(2)?,
        event: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        next_at: r.get(6)?,
        last_error: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

impl SqliteStore {
    fn decode_gate(&self, doc: &str) -> Result<Approval, StoreError> {
        serde_json::from_str(doc).map_err(|e| StoreError::Decode {
            path: self.path.clone(),
            place: "gates".into(),
            message: e.to_string(),
        })
    }

    fn decode_delivery(&self, r: RawDelivery) -> Result<Delivery, StoreError> {
        let status = DeliveryStatus::parse(&r.status).ok_or_else(|| StoreError::Decode {
            path: self.path.clone(),
            place: format!("outbox[{}/{}]", r.run_id, r.gate),
            message: format!("unknown status `{}`", r.status),
        })?;
        Ok(Delivery {
            run_id: r.run_id,
            gate: r.gate,
            notifier: r.notifier,
            event: r.event,
            status,
            attempts: r.attempts,
            next_at: r.next_at,
            last_error: r.last_error,
            updated_at: r.updated_at,
        })
    }

    fn deliveries_of(&self, run: &str, gate: &str) -> Result<Vec<Delivery>, StoreError> {
        let raw: Vec<RawDelivery> = {
            let conn = self.lock();
            conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE run_id = ?1 AND gate = ?2
                 ORDER BY updated_at, notifier, event"
            ))
            .and_then(|mut s| {
                s.query_map(params![run, gate], raw_delivery)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| map_err(&self.path, e))?
        };
        raw.into_iter().map(|r| self.decode_delivery(r)).collect()
    }
}

impl SqliteStore {
    fn audit_query(
        &self,
        f: &AuditFilter,
        before: Option<i64>,
        newest_first: bool,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = String::from("SELECT id, doc FROM audit WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(r) = &f.run_id {
            args.push(r.clone().into());
            sql.push_str(&format!(" AND run_id = ?{}", args.len()));
        }
        if let Some(g) = &f.gate {
            args.push(g.clone().into());
            sql.push_str(&format!(" AND gate = ?{}", args.len()));
        }
        if let Some(a) = &f.actor {
            args.push(a.clone().into());
            sql.push_str(&format!(" AND actor = ?{}", args.len()));
        }
        if let Some(b) = before {
            args.push(b.into());
            sql.push_str(&format!(" AND id < ?{}", args.len()));
        }
        sql.push_str(if newest_first {
            " ORDER BY id DESC"
        } else {
            " ORDER BY id"
        });
        if let Some(l) = f.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let rows: Vec<(i64, String)> = {
            let conn = self.lock();
            conn.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(rusqlite::params_from_iter(args), |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|e| map_err(&self.path, e))?
        };
        rows.into_iter()
            .map(|(id, doc)| {
                let mut r: AuditRecord =
                    serde_json::from_str(&doc).map_err(|e| StoreError::Decode {
                        path: self.path.clone(),
                        place: format!("audit[{id}]"),
                        message: e.to_string(),
                    })?;
                r.id = id;
                Ok(r)
            })
            .collect()
    }
}

impl GateStore for SqliteStore {
    fn gate(&self, run: &str, gate: &str) -> Result<Option<Approval>, StoreError> {
        let doc: Option<String> = {
            let conn = self.lock();
            conn.prepare_cached("SELECT doc FROM gates WHERE run_id = ?1 AND gate = ?2")
                .and_then(|mut s| s.query_row(params![run, gate], |r| r.get(0)).optional())
                .map_err(|e| map_err(&self.path, e))?
        };
        let Some(doc) = doc else { return Ok(None) };
        let mut a = self.decode_gate(&doc)?;
        a.deliveries = self.deliveries_of(run, gate)?;
        Ok(Some(a))
    }

    fn list_gates(&self, f: &ApprovalFilter) -> Result<Vec<Approval>, StoreError> {
        let mut sql = String::from("SELECT doc FROM gates WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(r) = &f.run_id {
            args.push(r.clone().into());
            sql.push_str(&format!(" AND run_id = ?{}", args.len()));
        }
        if let Some(s) = f.status {
            args.push(s.as_str().to_string().into());
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(t) = f.deadline_before {
            args.push(t.into());
            sql.push_str(&format!(
                " AND status = 'pending' AND deadline_at IS NOT NULL AND deadline_at <= ?{}",
                args.len()
            ));
        }
        if f.undelivered {
            sql.push_str(" AND status != 'pending' AND delivered = 0");
        }
        sql.push_str(" ORDER BY created_at DESC, run_id DESC, gate");
        let docs: Vec<String> = {
            let conn = self.lock();
            conn.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(rusqlite::params_from_iter(args), |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<String>>>()
                })
                .map_err(|e| map_err(&self.path, e))?
        };
        let mut out = Vec::new();
        for doc in docs {
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
        let mut conn = self.lock();
        let write = |conn: &mut rusqlite::Connection| -> rusqlite::Result<bool> {
            let tx = conn.transaction()?;
            let a = &u.approval;
            let n = tx
                .prepare_cached(
                    "UPDATE gates SET status = ?3, deadline_at = ?4, delivered = ?5, version = ?6,
                     doc = ?7 WHERE run_id = ?1 AND gate = ?2 AND version = ?8
                     AND (?9 IS NULL OR deadline_at IS NULL OR deadline_at > ?9)",
                )?
                .execute(params![
                    a.run_id,
                    a.gate,
                    a.status.as_str(),
                    if a.status == ApprovalStatus::Pending {
                        a.deadline_at
                    } else {
                        None
                    },
                    a.delivered,
                    a.version as i64,
                    gate_doc(a)?,
                    u.expected_version as i64,
                    u.before_deadline
                ])?;
            if n == 0 {
                return Ok(false);
            }
            for r in &u.audit {
                insert_audit(&tx, r)?;
            }
            for d in &u.deliveries {
                insert_delivery(&tx, d)?;
            }
            tx.commit()?;
            Ok(true)
        };
        write(&mut conn).map_err(|e| map_err(&self.path, e))
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

    fn due_deliveries(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let raw: Vec<RawDelivery> = {
            let conn = self.lock();
            conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE status = 'pending' AND next_at <= ?1
                 ORDER BY next_at LIMIT ?2"
            ))
            .and_then(|mut s| {
                s.query_map(params![now, limit as i64], raw_delivery)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| map_err(&self.path, e))?
        };
        raw.into_iter().map(|r| self.decode_delivery(r)).collect()
    }

    fn update_delivery(&self, d: &Delivery, audit: Option<&AuditRecord>) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let write = |conn: &mut rusqlite::Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.prepare_cached(
                "UPDATE outbox SET status = ?5, attempts = ?6, next_at = ?7, last_error = ?8,
                 updated_at = ?9 WHERE run_id = ?1 AND gate = ?2 AND notifier = ?3 AND event = ?4",
            )?
            .execute(params![
                d.run_id,
                d.gate,
                d.notifier,
                d.event,
                d.status.as_str(),
                d.attempts,
                d.next_at,
                d.last_error,
                d.updated_at
            ])?;
            if let Some(r) = audit {
                insert_audit(&tx, r)?;
            }
            tx.commit()
        };
        write(&mut conn).map_err(|e| map_err(&self.path, e))
    }

    fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let conn = self.lock();
        insert_audit(&conn, record).map_err(|e| map_err(&self.path, e))
    }
}
