//! A run's batch written by one SQL statement.
//!
//! Every part of a [`Batch`] — the fence, the new run, cleared and written step paths, state,
//! events, the run's update and the `NOTIFY` — is a part of one statement (data-modifying
//! `WITH` queries), so a batch without approval gates is one round trip to the server and,
//! outside a transaction, its own commit: on a loopback connection each round trip costs about
//! as much as the WAL flush (see docs/benchmarks.md). The statement has only the parts the
//! batch needs (a run's first commit: the new run, its steps and events), since the server
//! sets up every part of a plan on each execution; each shape is prepared once per connection.
//!
//! With a fence, `f` first locks the run's row (`FOR UPDATE`) and every write is conditional
//! on `ok` (the row is absent or still names the fence's owner). Once the row is locked no
//! other session can change its owner before this one ends, so the check holds for the whole
//! statement. A fenced-off batch writes nothing and the statement returns the row's owner for
//! the error.

use postgres::GenericClient;
use postgres::types::ToSql;
use serde_json::Value;

use super::{RunStatus, StepRecord, gates, map_err};
use crate::error::StoreError;
use crate::store::Batch;

/// One batch's statement, from which its text (the key its prepared form is kept under) and
/// arguments are built.
pub(super) struct Write<'a> {
    params: Params<'a>,
}

/// A statement's arguments.
pub(super) type Args<'p> = Vec<&'p (dyn ToSql + Sync)>;

impl<'a> Write<'a> {
    /// The statement for `b`, a batch of `run`; `channel` is the store's `NOTIFY` channel.
    pub(super) fn of(
        label: &str,
        channel: &'a str,
        run: &'a str,
        b: &'a Batch,
    ) -> Result<Self, StoreError> {
        let params = Params::of(channel, run, b).map_err(|message| StoreError::Other {
            path: label.to_string(),
            message,
        })?;
        Ok(Self { params })
    }

    /// The statement's text and arguments, with the parts this batch needs.
    pub(super) fn statement(&self) -> (String, Args<'_>) {
        self.params.statement()
    }
}

/// Runs a batch's statement (prepared from [`Write::statement`]'s text, with its arguments),
/// then inserts the batch's approval gates (if any; the caller has opened a transaction for a
/// batch with gates).
pub(super) fn run(
    client: &mut impl GenericClient,
    st: &postgres::Statement,
    args: &[&(dyn ToSql + Sync)],
    label: &str,
    run: &str,
    b: &Batch,
) -> Result<(), StoreError> {
    let row = client
        .query_one(st, args)
        .map_err(|e| super::commit_err(label, &e))?;
    let written: bool = row.try_get(0).map_err(|e| map_err(label, &e))?;
    if !written {
        let owner: Option<String> = row.try_get(1).map_err(|e| map_err(label, &e))?;
        return Err(StoreError::Fenced {
            run: run.to_string(),
            owner,
        });
    }
    if !b.gates.is_empty() {
        gates::insert_gates(client, label, &b.gates)?;
    }
    Ok(())
}

/// Builds a statement's text and its argument list together.
struct Sql<'p> {
    text: String,
    args: Vec<&'p (dyn ToSql + Sync)>,
}

impl<'p> Sql<'p> {
    /// A placeholder for `v` with its type (`$n::cast`).
    fn arg(&mut self, v: &'p (dyn ToSql + Sync), cast: &str) -> String {
        self.args.push(v);
        format!("${}::{cast}", self.args.len())
    }

    /// Adds a `WITH` part.
    fn part(&mut self, name: &str, body: &str) {
        self.text
            .push_str(if self.text.is_empty() { "WITH " } else { ", " });
        self.text.push_str(name);
        self.text.push_str(" AS (");
        self.text.push_str(body);
        self.text.push(')');
    }
}

/// The statement's parameters, in its order.
struct Params<'a> {
    run: &'a str,
    fence: Option<&'a str>,
    new_run: Option<NewRun<'a>>,
    clear: &'a [String],
    // Step records.
    paths: Vec<&'a str>,
    kinds: Vec<&'a str>,
    statuses: Vec<&'a str>,
    outputs: Vec<Option<String>>,
    errors: Vec<Option<&'a str>>,
    payloads: Vec<Option<String>>,
    resumes: Vec<Option<String>>,
    attempts: Vec<i64>,
    step_times: Vec<i64>,
    keys: Vec<&'a str>,
    values: Vec<String>,
    seqs: Vec<i64>,
    ats: Vec<i64>,
    bodies: Vec<String>,
    // The run's update.
    update: Option<Update<'a>>,
    channel: &'a str,
    notify: Option<String>,
}

/// The run's update with its columns in the forms the statement sends.
struct Update<'a> {
    u: &'a crate::store::RunUpdate,
    status: &'static str,
    output: Option<String>,
}

/// The new run's row with its columns in the forms the statement sends.
struct NewRun<'a> {
    row: crate::store::NewRunRow<'a>,
    status: &'static str,
    input: String,
    output: Option<String>,
}

impl<'a> Params<'a> {
    fn of(channel: &'a str, run: &'a str, b: &'a Batch) -> Result<Self, String> {
        let new_run = b.new_run_row().map(|row| NewRun {
            status: row.status.as_str(),
            input: row.record.input.to_string(),
            output: row.output.map(|v| v.to_string()),
            row,
        });
        // A run enqueued for any worker wakes the idle ones.
        let mut notify = new_run
            .as_ref()
            .is_some_and(|n| n.row.status == RunStatus::Running && n.row.owner.is_none());
        // One row per path: the last record of a path in the batch wins (as a replace would).
        let mut seen = std::collections::HashSet::with_capacity(b.steps.len());
        let mut steps: Vec<&StepRecord> = b
            .steps
            .iter()
            .rev()
            .filter(|s| seen.insert(&*s.path))
            .collect();
        steps.reverse();
        let mut seen = std::collections::HashSet::with_capacity(b.state.len());
        let mut state: Vec<(&str, String)> = b
            .state
            .iter()
            .rev()
            .filter(|(k, _)| seen.insert(k.as_str()))
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        state.reverse();
        let bodies = b
            .events
            .iter()
            .map(|ev| serde_json::to_string(&ev.kind))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("cannot encode an event of run `{run}`: {err}"))?;
        // The update applies to an existing run (a new one is inserted in its final state).
        let update = b.update.as_ref().filter(|_| b.create.is_none());
        // A run left running without an owner is work for any worker.
        notify |= update.is_some_and(|u| u.status == RunStatus::Running && u.release);
        Ok(Self {
            run,
            fence: b.fence.as_deref().filter(|_| b.create.is_none()),
            new_run,
            clear: &b.clear,
            paths: steps.iter().map(|s| &*s.path).collect(),
            kinds: steps.iter().map(|s| s.kind.as_str()).collect(),
            statuses: steps.iter().map(|s| s.status.as_str()).collect(),
            outputs: steps
                .iter()
                .map(|s| s.output.as_ref().map(|v| v.to_string()))
                .collect(),
            errors: steps.iter().map(|s| s.error.as_deref()).collect(),
            payloads: steps
                .iter()
                .map(|s| s.payload.as_ref().map(Value::to_string))
                .collect(),
            resumes: steps
                .iter()
                .map(|s| s.resume.as_ref().map(Value::to_string))
                .collect(),
            attempts: steps.iter().map(|s| i64::from(s.attempt)).collect(),
            step_times: steps.iter().map(|s| s.updated_at).collect(),
            keys: state.iter().map(|(k, _)| *k).collect(),
            values: state.into_iter().map(|(_, v)| v).collect(),
            seqs: b.events.iter().map(|ev| ev.seq as i64).collect(),
            ats: b.events.iter().map(|ev| ev.at).collect(),
            bodies,
            update: update.map(|u| Update {
                status: u.status.as_str(),
                output: u.output.as_ref().map(|v| v.to_string()),
                u,
            }),
            channel,
            notify: notify.then(|| format!("run {run}")),
        })
    }

    /// The statement's text and arguments, with the parts this batch needs.
    fn statement(&self) -> (String, Args<'_>) {
        let mut q = Sql {
            text: String::new(),
            args: Vec::with_capacity(24),
        };
        let id = q.arg(&self.run, "text");
        // Every write's condition: the fence holds (when there is one).
        let (and_ok, where_ok) = match &self.fence {
            Some(fence) => {
                q.part(
                    "f",
                    &format!("SELECT owner FROM runs WHERE id = {id} FOR UPDATE"),
                );
                let fence = q.arg(fence, "text");
                q.part(
                    "ok",
                    &format!(
                        "SELECT NOT EXISTS (SELECT 1 FROM f WHERE owner IS DISTINCT FROM {fence}) AS ok"
                    ),
                );
                (" AND (SELECT ok FROM ok)", " WHERE (SELECT ok FROM ok)")
            }
            None => ("", ""),
        };
        if let Some(n) = &self.new_run {
            let cols = [
                q.arg(&n.row.record.workflow, "text"),
                q.arg(&n.row.record.fingerprint, "text"),
                q.arg(&n.status, "text"),
                q.arg(&n.input, "text"),
                q.arg(&n.output, "text"),
                q.arg(&n.row.error, "text"),
                q.arg(&n.row.record.created_at, "bigint"),
                q.arg(&n.row.updated_at, "bigint"),
                q.arg(&n.row.owner, "text"),
                q.arg(&n.row.lease_until, "bigint"),
            ];
            q.part(
                "new_run",
                &format!(
                    "INSERT INTO runs (id, workflow, fingerprint, status, input, output, error, \
                     created_at, updated_at, owner, lease_until) VALUES ({id}, {})",
                    cols.join(", ")
                ),
            );
        }
        let paths = (!self.paths.is_empty() || !self.clear.is_empty())
            .then(|| q.arg(&self.paths, "text[]"));
        if !self.clear.is_empty() {
            // Cleared paths that the batch writes again are replaced by the upsert below
            // (one statement cannot delete and insert the same row).
            let clear = q.arg(&self.clear, "text[]");
            let paths = paths.as_deref().unwrap_or("'{}'::text[]");
            q.part(
                "cleared",
                &format!(
                    "DELETE FROM steps WHERE run_id = {id} AND path = ANY({clear}) \
                     AND path <> ALL({paths}){and_ok}"
                ),
            );
        }
        if let (Some(paths), false) = (&paths, self.paths.is_empty()) {
            let cols = [
                paths.clone(),
                q.arg(&self.kinds, "text[]"),
                q.arg(&self.statuses, "text[]"),
                q.arg(&self.outputs, "text[]"),
                q.arg(&self.errors, "text[]"),
                q.arg(&self.payloads, "text[]"),
                q.arg(&self.resumes, "text[]"),
                q.arg(&self.attempts, "bigint[]"),
                q.arg(&self.step_times, "bigint[]"),
            ];
            q.part(
                "step_rows",
                &format!(
                    "INSERT INTO steps (run_id, path, kind, status, output, error, payload, \
                     resume, attempt, updated_at) SELECT {id}, * FROM unnest({}){where_ok} \
                     ON CONFLICT (run_id, path) DO UPDATE SET kind = EXCLUDED.kind, \
                     status = EXCLUDED.status, output = EXCLUDED.output, error = EXCLUDED.error, \
                     payload = EXCLUDED.payload, resume = EXCLUDED.resume, \
                     attempt = EXCLUDED.attempt, updated_at = EXCLUDED.updated_at",
                    cols.join(", ")
                ),
            );
        }
        if !self.keys.is_empty() {
            let (k, v) = (q.arg(&self.keys, "text[]"), q.arg(&self.values, "text[]"));
            q.part(
                "state_rows",
                &format!(
                    "INSERT INTO run_state (run_id, key, value) SELECT {id}, * \
                     FROM unnest({k}, {v}){where_ok} \
                     ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value"
                ),
            );
        }
        if !self.seqs.is_empty() {
            let cols = [
                q.arg(&self.seqs, "bigint[]"),
                q.arg(&self.ats, "bigint[]"),
                q.arg(&self.bodies, "text[]"),
            ];
            q.part(
                "event_rows",
                &format!(
                    "INSERT INTO events (run_id, seq, at, body) SELECT {id}, * \
                     FROM unnest({}){where_ok}",
                    cols.join(", ")
                ),
            );
        }
        if let Some(up) = &self.update {
            let set = [
                format!("status = {}", q.arg(&up.status, "text")),
                format!("output = {}", q.arg(&up.output, "text")),
                format!("error = {}", q.arg(&up.u.error, "text")),
                format!("updated_at = {}", q.arg(&up.u.updated_at, "bigint")),
            ];
            let release = if up.u.release {
                ", owner = NULL, lease_until = NULL"
            } else {
                ""
            };
            q.part(
                "updated",
                &format!(
                    "UPDATE runs SET {}{release} WHERE id = {id}{and_ok}",
                    set.join(", ")
                ),
            );
        }
        let notified = match &self.notify {
            Some(payload) => {
                let (ch, payload) = (q.arg(&self.channel, "text"), q.arg(payload, "text"));
                q.part(
                    "notified",
                    &format!("SELECT pg_notify({ch}, {payload}){where_ok}"),
                );
                ", (SELECT count(*) FROM notified)"
            }
            None => "",
        };
        if !q.text.is_empty() {
            q.text.push(' ');
        }
        if self.fence.is_some() {
            q.text
                .push_str("SELECT (SELECT ok FROM ok), (SELECT owner FROM f)");
        } else {
            // ($1 is used by every part; alone, a batch of gates only still names it.)
            q.text
                .push_str(&format!("SELECT {id} IS NOT NULL, NULL::text"));
        }
        q.text.push_str(notified);
        (q.text, q.args)
    }
}
