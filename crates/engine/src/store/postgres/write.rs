//! A run's batch written by one SQL statement.
//!
//! Every part of a [`Batch`] — the fence, the new run, cleared and written step paths, state,
//! events, the run's update and the `NOTIFY` — is a part of one statement (data-modifying
//! `WITH` queries), so a batch without approval gates is one round trip to the server and,
//! outside a transaction, its own commit: on a loopback connection each round trip costs about
//! as much as the WAL flush (see docs/benchmarks.md). A part with nothing to write gets empty
//! arrays or a `NULL` and writes no row.
//!
//! The fence comes first: `f` locks the run's row (`FOR UPDATE`) when the batch is fenced, and
//! every write is conditional on `ok` (the row is absent or still names the fence's owner).
//! Once the row is locked no other session can change its owner before this one ends, so the
//! check holds for the whole statement. A fenced-off batch writes nothing and the statement
//! returns the row's owner for the error.

use postgres::GenericClient;
use serde_json::Value;

use super::{RunStatus, StepRecord, gates, map_err};
use crate::error::StoreError;
use crate::store::Batch;

/// The statement; parameters:
/// `$1` run id, `$2` fence (owner, or NULL);
/// `$3`–`$12` the new run (NULL workflow: none): workflow, fingerprint, status, input, output,
/// error, created_at, updated_at, owner, lease_until;
/// `$13` step paths to delete;
/// `$14`–`$22` step records (arrays): path, kind, status, output, error, payload, resume,
/// attempt, updated_at;
/// `$23`, `$24` state keys and values; `$25`–`$27` events: seq, at, body;
/// `$28`–`$32` the run's update (NULL status: none): status, output, error, updated_at, release;
/// `$33`, `$34` the notification's channel and payload (NULL payload: none).
///
/// Returns one row: whether the batch was written, and the run's owner when it was not.
pub(super) const SQL_WRITE: &str = "
WITH f AS (
    SELECT owner FROM runs WHERE id = $1 AND $2::text IS NOT NULL FOR UPDATE
), ok AS (
    SELECT NOT EXISTS (SELECT 1 FROM f WHERE owner IS DISTINCT FROM $2::text) AS ok
), new_run AS (
    INSERT INTO runs (id, workflow, fingerprint, status, input, output, error,
                      created_at, updated_at, owner, lease_until)
    SELECT $1, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text,
           $9::bigint, $10::bigint, $11::text, $12::bigint
    WHERE $3::text IS NOT NULL
), cleared AS (
    DELETE FROM steps
    WHERE run_id = $1 AND path = ANY($13::text[]) AND path <> ALL($14::text[])
      AND (SELECT ok FROM ok)
), step_rows AS (
    INSERT INTO steps (run_id, path, kind, status, output, error, payload, resume,
                       attempt, updated_at)
    SELECT $1, * FROM unnest($14::text[], $15::text[], $16::text[], $17::text[], $18::text[],
                             $19::text[], $20::text[], $21::bigint[], $22::bigint[])
    WHERE (SELECT ok FROM ok)
    ON CONFLICT (run_id, path) DO UPDATE SET kind = EXCLUDED.kind, status = EXCLUDED.status,
      output = EXCLUDED.output, error = EXCLUDED.error, payload = EXCLUDED.payload,
      resume = EXCLUDED.resume, attempt = EXCLUDED.attempt, updated_at = EXCLUDED.updated_at
), state_rows AS (
    INSERT INTO run_state (run_id, key, value)
    SELECT $1, * FROM unnest($23::text[], $24::text[])
    WHERE (SELECT ok FROM ok)
    ON CONFLICT (run_id, key) DO UPDATE SET value = EXCLUDED.value
), event_rows AS (
    INSERT INTO events (run_id, seq, at, body)
    SELECT $1, * FROM unnest($25::bigint[], $26::bigint[], $27::text[])
    WHERE (SELECT ok FROM ok)
), updated AS (
    UPDATE runs SET status = $28::text, output = $29::text, error = $30::text,
        updated_at = $31::bigint,
        owner = CASE WHEN $32::bool THEN NULL ELSE owner END,
        lease_until = CASE WHEN $32::bool THEN NULL ELSE lease_until END
    WHERE id = $1 AND $28::text IS NOT NULL AND (SELECT ok FROM ok)
), notified AS (
    SELECT pg_notify($33::text, $34::text) WHERE $34::text IS NOT NULL AND (SELECT ok FROM ok)
)
SELECT (SELECT ok FROM ok), (SELECT owner FROM f), (SELECT count(*) FROM notified)";

/// Writes one run's batch: the statement, then its approval gates (if any; the caller has
/// opened a transaction for a batch with gates).
pub(super) fn write_batch(
    client: &mut impl GenericClient,
    st: &postgres::Statement,
    label: &str,
    channel: &str,
    run: &str,
    b: &Batch,
) -> Result<(), StoreError> {
    let w = Params::of(channel, run, b).map_err(|message| StoreError::Other {
        path: label.to_string(),
        message,
    })?;
    let row = client
        .query_one(st, &w.params())
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

/// The statement's parameters, in its order.
struct Params<'a> {
    run: &'a str,
    fence: Option<&'a str>,
    // The new run.
    workflow: Option<&'a str>,
    fingerprint: Option<&'a str>,
    status: Option<&'static str>,
    input: Option<String>,
    output: Option<String>,
    error: Option<&'a str>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
    owner: Option<&'a str>,
    lease_until: Option<i64>,
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
    update_status: Option<&'static str>,
    update_output: Option<String>,
    update_error: Option<&'a str>,
    update_at: Option<i64>,
    release: bool,
    channel: &'a str,
    notify: Option<String>,
}

impl<'a> Params<'a> {
    fn of(channel: &'a str, run: &'a str, b: &'a Batch) -> Result<Self, String> {
        // A run created and finished in one commit is inserted in its final state.
        let new_run = b.create.as_ref().map(|r| match &b.update {
            Some(u) => (
                r,
                u.status,
                u.output.as_ref(),
                u.error.as_deref(),
                u.updated_at,
                if u.release { None } else { r.owner.as_deref() },
                if u.release { None } else { r.lease_until },
            ),
            None => (
                r,
                r.status,
                r.output.as_ref(),
                r.error.as_deref(),
                r.updated_at,
                r.owner.as_deref(),
                r.lease_until,
            ),
        });
        // A run enqueued for any worker wakes the idle ones.
        let mut notify = new_run.is_some_and(|(_, status, _, _, _, owner, _)| {
            status == RunStatus::Running && owner.is_none()
        });
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
            workflow: new_run.map(|n| n.0.workflow.as_str()),
            fingerprint: new_run.map(|n| n.0.fingerprint.as_str()),
            status: new_run.map(|n| n.1.as_str()),
            input: new_run.map(|n| n.0.input.to_string()),
            output: new_run.and_then(|n| n.2.map(|v| v.to_string())),
            error: new_run.and_then(|n| n.3),
            created_at: new_run.map(|n| n.0.created_at),
            updated_at: new_run.map(|n| n.4),
            owner: new_run.and_then(|n| n.5),
            lease_until: new_run.and_then(|n| n.6),
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
            update_status: update.map(|u| u.status.as_str()),
            update_output: update.and_then(|u| u.output.as_ref().map(|v| v.to_string())),
            update_error: update.and_then(|u| u.error.as_deref()),
            update_at: update.map(|u| u.updated_at),
            release: update.is_some_and(|u| u.release),
            channel,
            notify: notify.then(|| format!("run {run}")),
        })
    }

    /// The parameters `$1`…`$34`.
    fn params(&self) -> [&(dyn postgres::types::ToSql + Sync); 34] {
        [
            &self.run,
            &self.fence,
            &self.workflow,
            &self.fingerprint,
            &self.status,
            &self.input,
            &self.output,
            &self.error,
            &self.created_at,
            &self.updated_at,
            &self.owner,
            &self.lease_until,
            &self.clear,
            &self.paths,
            &self.kinds,
            &self.statuses,
            &self.outputs,
            &self.errors,
            &self.payloads,
            &self.resumes,
            &self.attempts,
            &self.step_times,
            &self.keys,
            &self.values,
            &self.seqs,
            &self.ats,
            &self.bodies,
            &self.update_status,
            &self.update_output,
            &self.update_error,
            &self.update_at,
            &self.release,
            &self.channel,
            &self.notify,
        ]
    }
}
