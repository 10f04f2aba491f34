//! The Postgres store: several engine processes (workers) on one database, which arbitrates.
//!
//! The same design as [`super::SqliteStore`]: one row per run, per step path, per event and per
//! state key; every transition a small batch written by one statement (its own transaction, one
//! round trip: `write.rs`), fenced by the run's owner (the row locked `FOR UPDATE` first, in the
//! same statement); queued batches of several runs committed together (one transaction, a
//! savepoint per batch). What Postgres
//! adds: runs whose lease lapsed are claimed with `FOR UPDATE SKIP LOCKED` (two workers never
//! wait on each other for the same orphan), the outbox is claimed the same way, and commits
//! that create unowned runs (enqueued) or decide gates send a `NOTIFY` that wakes idle workers.
//!
//! The driver is rust-postgres's synchronous client, each connection owned by a thread of
//! the store (see `pool.rs` and docs/scaling.md).

mod gates;
mod pool;
mod schema;
mod write;

use std::sync::{Arc, OnceLock};

use postgres::types::ToSql;
use serde_json::Value;

use super::{
    Batch, Claim, LapsedClaim, RecordKind, Room, RunFilter, RunRecord, RunStatus, RunSummary,
    StepRecord, StepStatus, Store,
};
use crate::error::StoreError;
use crate::workflow::RunEvent;
use pool::{Listener, Pool};

/// Configures a [`PostgresStore`]: the schema it lives in and how many connections it keeps.
///
/// ```no_run
/// let store = miyabi_engine::PostgresStore::builder("postgres://miyabi@127.0.0.1:5432/app")
///     .schema("miyabi")
///     .connections(8)
///     .open()?;
/// # Ok::<(), miyabi_engine::StoreError>(())
/// ```
#[derive(Clone)]
pub struct PostgresStoreBuilder {
    url: String,
    schema: String,
    connections: usize,
    outbox_lease: std::time::Duration,
    max_version: Option<usize>,
}

impl std::fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStoreBuilder")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl PostgresStoreBuilder {
    /// The schema holding the store's tables (default `miyabi`; created if missing). Letters,
    /// digits and `_` only. Several stores (several applications, or parallel tests) can share
    /// a database in different schemas.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How many connections (each on its own thread) serve the store's calls (default 4).
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }

    /// How long a worker holds a notification it took from the outbox before another worker
    /// may take it (default 60 s): a worker that died while sending leaves it to others.
    pub fn outbox_lease(mut self, d: std::time::Duration) -> Self {
        self.outbox_lease = d;
        self
    }

    /// Applies migrations only up to `version` (tests of migrations from an older schema).
    #[cfg(feature = "testing")]
    pub fn migrate_to(mut self, version: usize) -> Self {
        self.max_version = Some(version);
        self
    }

    /// Connects, creates the schema if needed and applies pending migrations.
    pub fn open(self) -> Result<PostgresStore, StoreError> {
        let shown = redact(&self.url);
        let config: postgres::Config =
            self.url
                .parse()
                .map_err(|e: postgres::Error| StoreError::Open {
                    path: shown.clone(),
                    message: format!("not a valid Postgres URL: {e}"),
                })?;
        if self.schema.is_empty()
            || self.schema.len() > 63
            || !self
                .schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(StoreError::Open {
                path: shown,
                message: format!(
                    "schema name `{}` must be 1 to 63 letters, digits or `_`",
                    self.schema
                ),
            });
        }
        let label: Arc<str> = format!("{}#{}", label_of(&config), self.schema).into();
        let search_path: Arc<str> = format!("\"{}\"", self.schema).into();
        let pool = Pool::start(&config, &search_path, &label, self.connections)?;
        let store = PostgresStore {
            pool,
            label,
            schema: self.schema.clone(),
            channel: channel_for(&self.schema),
            config,
            wake: OnceLock::new(),
            outbox_lease_ms: super::millis(self.outbox_lease),
        };
        store.migrate(self.max_version.unwrap_or(schema::MIGRATIONS.len()))?;
        Ok(store)
    }
}

/// Runs, steps, events, state, approval gates and their outbox in a Postgres database, shared
/// by any number of engine processes.
///
/// ```no_run
/// use miyabi_engine::{Engine, PostgresStore};
/// let engine = Engine::builder()
///     .store(PostgresStore::open("postgres://miyabi@127.0.0.1:5432/app")?)
///     .build();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PostgresStore {
    pool: Pool,
    label: Arc<str>,
    schema: String,
    channel: String,
    config: postgres::Config,
    /// The wake-up for idle workers and its LISTEN thread, started on first use.
    wake: OnceLock<(Arc<tokio::sync::Notify>, Option<Listener>)>,
    outbox_lease_ms: i64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.label)
            .finish_non_exhaustive()
    }
}

/// The URL without its password (for messages).
fn redact(url: &str) -> String {
    if super::is_postgres_url(url) {
        super::shown_location(url)
    } else {
        "postgres (unparsed URL)".into()
    }
}

/// `postgres://user@host:port/db` from a parsed configuration (never the password).
fn label_of(c: &postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

/// Maps a Postgres error to the store's typed error, keeping the server's message.
pub(super) fn map_err(label: &str, e: &postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    let path = label.to_string();
    let message = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    let Some(code) = e.code() else {
        return StoreError::Other { path, message };
    };
    if *code == SqlState::DISK_FULL || *code == SqlState::OUT_OF_MEMORY {
        StoreError::Full { path, message }
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        // A standby after a failover, or a read-only server.
        StoreError::ReadOnly { path, message }
    } else if *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::TOO_MANY_CONNECTIONS
    {
        StoreError::Busy { path, message }
    } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
        StoreError::Corrupt { path, message }
    } else if *code == SqlState::INVALID_PASSWORD
        || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        || *code == SqlState::INVALID_CATALOG_NAME
    {
        StoreError::Open { path, message }
    } else {
        StoreError::Other { path, message }
    }
}

const RUN_COLUMNS: &str = "id, workflow, fingerprint, status, input, output, error, created_at, updated_at, owner, lease_until";

/// Executing runs per workflow, for limited claims: running, owned, lease not ended before $1.
const SQL_COUNT_EXECUTING: &str = "SELECT workflow, count(*) FROM runs
     WHERE status = 'running' AND owner IS NOT NULL AND (lease_until IS NULL OR lease_until >= $1)
     GROUP BY workflow";
/// Waiting runs for a limited claim, oldest first: of the definitions $2, not of the workflows
/// $3 (at their limit), not already looked at in this claim ($4), at most $5, locked.
const SQL_PICK_WAITING: &str = "SELECT id, workflow FROM runs
     WHERE status = 'running' AND (owner IS NULL OR lease_until < $1)
       AND fingerprint = ANY($2) AND workflow <> ALL($3) AND id <> ALL($4)
     ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED";

/// [`RUN_COLUMNS`] qualified by a table alias (for `UPDATE … RETURNING`).
fn run_columns_of(alias: &str) -> String {
    RUN_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct RawRun {
    id: String,
    workflow: String,
    fingerprint: String,
    status: String,
    input: String,
    output: Option<String>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
    owner: Option<String>,
    lease_until: Option<i64>,
}

fn raw_run(r: &postgres::Row) -> Result<RawRun, postgres::Error> {
    Ok(RawRun {
        id: r.try_get(0)?,
        workflow: r.try_get(1)?,
        fingerprint: r.try_get(2)?,
        status: r.try_get(3)?,
        input: r.try_get(4)?,
        output: r.try_get(5)?,
        error: r.try_get(6)?,
        created_at: r.try_get(7)?,
        updated_at: r.try_get(8)?,
        owner: r.try_get(9)?,
        lease_until: r.try_get(10)?,
    })
}

/// A listing's `WHERE … ORDER BY … LIMIT …` and its parameters (as the SQLite store: creation
/// times become bounds on the UUID v7 id, the listing walks the primary key newest first).
fn filter_sql(f: &RunFilter) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut sql = String::from("WHERE true");
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    if let Some(w) = &f.workflow {
        args.push(Box::new(w.clone()));
        sql.push_str(&format!(" AND workflow = ${}", args.len()));
    }
    if let Some(s) = f.status {
        args.push(Box::new(s.as_str()));
        sql.push_str(&format!(" AND status = ${}", args.len()));
    }
    let id_at = |t: i64| {
        let t = t.max(0) as u64;
        format!("{:08x}-{:04x}", (t >> 16) & 0xffff_ffff, t & 0xffff)
    };
    if let Some(t) = f.created_after {
        args.push(Box::new(id_at(t)));
        sql.push_str(&format!(" AND id >= ${}", args.len()));
    }
    if let Some(t) = f.created_before {
        args.push(Box::new(id_at(t)));
        sql.push_str(&format!(" AND id < ${}", args.len()));
    }
    if let Some((_, id)) = &f.before {
        args.push(Box::new(id.clone()));
        sql.push_str(&format!(" AND id < ${}", args.len()));
    }
    sql.push_str(" ORDER BY id DESC");
    args.push(Box::new(
        f.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX)),
    ));
    sql.push_str(&format!(" LIMIT ${}", args.len()));
    (sql, args)
}

fn params(args: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect()
}

impl PostgresStore {
    /// Opens the store at `url` (`postgres://user:password@host:port/database`) in the schema
    /// `miyabi`, creating it and applying pending migrations.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).open()
    }

    /// A builder for a store at `url` (schema, connections).
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            url: url.into(),
            schema: "miyabi".into(),
            connections: 4,
            outbox_lease: std::time::Duration::from_secs(60),
            max_version: None,
        }
    }

    /// Where the store is: `postgres://user@host:port/database#schema` (no password).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The schema version of the database (the number of migrations applied).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.pool.call(|c| {
            let label = Arc::clone(&c.label);
            let client = c.client()?;
            let row = client
                .query_one("SELECT version FROM schema_version", &[])
                .map_err(|e| map_err(&label, &e))?;
            Ok(row.get::<_, i64>(0))
        })
    }

    fn migrate(&self, upto: usize) -> Result<(), StoreError> {
        let schema = self.schema.clone();
        self.pool.call(move |c| {
            let label = Arc::clone(&c.label);
            let e = |err: postgres::Error| map_err(&label, &err);
            let client = c.client()?;
            let mut tx = client.transaction().map_err(e)?;
            // One process migrates at a time; the others wait and then find nothing to do.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("miyabi-migrate:{schema}")],
            )
            .map_err(e)?;
            tx.batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
                 CREATE TABLE IF NOT EXISTS \"{schema}\".schema_version (version BIGINT NOT NULL);"
            ))
            .map_err(e)?;
            let found: Option<i64> = tx
                .query_opt(
                    &format!("SELECT version FROM \"{schema}\".schema_version"),
                    &[],
                )
                .map_err(e)?
                .map(|r| r.get(0));
            let version = match found {
                Some(v) => v,
                None => {
                    tx.execute(
                        &format!("INSERT INTO \"{schema}\".schema_version (version) VALUES (0)"),
                        &[],
                    )
                    .map_err(e)?;
                    0
                }
            };
            let supported = schema::MIGRATIONS.len() as i64;
            if version > supported {
                return Err(StoreError::TooNew {
                    path: label.to_string(),
                    found: version,
                    supported,
                });
            }
            for (i, sql) in schema::MIGRATIONS
                .iter()
                .enumerate()
                .take(upto)
                .skip(version.max(0) as usize)
            {
                tx.batch_execute(&format!("SET LOCAL search_path TO \"{schema}\"; {sql}"))
                    .map_err(e)?;
                tx.execute(
                    &format!("UPDATE \"{schema}\".schema_version SET version = $1"),
                    &[&(i as i64 + 1)],
                )
                .map_err(e)?;
            }
            tx.commit().map_err(e)
        })
    }

    fn decode_json(&self, place: &str, s: Option<String>) -> Result<Option<Value>, StoreError> {
        s.map(|s| {
            serde_json::from_str(&s).map_err(|e| StoreError::Decode {
                path: self.label.to_string(),
                place: place.to_string(),
                message: e.to_string(),
            })
        })
        .transpose()
    }

    fn decode_run(&self, row: RawRun) -> Result<RunRecord, StoreError> {
        let place = format!("runs[{}]", row.id);
        let status = RunStatus::parse(&row.status).ok_or_else(|| StoreError::Decode {
            path: self.label.to_string(),
            place: place.clone(),
            message: format!("unknown status `{}`", row.status),
        })?;
        Ok(RunRecord {
            input: Arc::new(
                self.decode_json(&place, Some(row.input))?
                    .unwrap_or(Value::Null),
            ),
            output: self.decode_json(&place, row.output)?.map(Arc::new),
            id: row.id,
            workflow: row.workflow,
            fingerprint: row.fingerprint,
            status,
            error: row.error,
            created_at: row.created_at,
            updated_at: row.updated_at,
            owner: row.owner,
            lease_until: row.lease_until,
        })
    }

    /// Runs a query on a connection thread and returns its rows.
    fn rows(
        &self,
        sql: String,
        args: Vec<Box<dyn ToSql + Sync + Send>>,
    ) -> Result<Vec<postgres::Row>, StoreError> {
        self.pool.call(move |c| {
            let label = Arc::clone(&c.label);
            let (client, st) = c.prepared(&sql)?;
            client
                .query(&st, &params(&args))
                .map_err(|e| map_err(&label, &e))
        })
    }

    /// [`Store::claim_lapsed`] under [`ConcurrencyLimits`](super::ConcurrencyLimits): the
    /// claimed runs' rows.
    fn claim_limited(&self, c: &LapsedClaim<'_>) -> Result<Vec<postgres::Row>, StoreError> {
        let limits = c.limits.clone();
        let lock_key = format!("miyabi-claims:{}", self.schema);
        let (owner, now, lease_until, limit) =
            (c.new_owner.to_string(), c.now, c.lease_until, c.limit);
        let fingerprints = c.fingerprints.to_vec();
        self.pool.call(move |conn| {
            let label = Arc::clone(&conn.label);
            let e = |err: postgres::Error| map_err(&label, &err);
            let count = conn.prepared(SQL_COUNT_EXECUTING)?.1;
            let pick = conn.prepared(SQL_PICK_WAITING)?.1;
            let take = conn.prepared(&format!(
                "UPDATE runs r SET owner = $1, lease_until = $2 WHERE r.id = ANY($3) RETURNING {}",
                run_columns_of("r")
            ))?.1;
            let client = conn.client()?;
            let mut tx = client.transaction().map_err(e)?;
            // Every limited claim on this schema waits here for the one before it to commit,
            // so each counts the slots the others took.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_key])
                .map_err(e)?;
            let mut room = Room::counting(&limits, std::iter::empty());
            for row in tx.query(&count, &[&now]).map_err(e)? {
                let workflow: String = row.try_get(0).map_err(e)?;
                let n: i64 = row.try_get(1).map_err(e)?;
                room.add(&workflow, usize::try_from(n).unwrap_or(0));
            }
            let mut claimed: Vec<postgres::Row> = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            loop {
                let want = limit.saturating_sub(claimed.len()).min(room.left());
                if want == 0 {
                    break;
                }
                // The oldest waiting runs of workflows with room; a workflow filling up on the
                // way is left out of the next round.
                let full = room.full_workflows();
                let rows = tx
                    .query(
                        &pick,
                        &[
                            &now,
                            &fingerprints,
                            &full,
                            &seen,
                            &i64::try_from(want).unwrap_or(i64::MAX),
                        ],
                    )
                    .map_err(e)?;
                let mut picked: Vec<String> = Vec::new();
                let mut passed_over = false;
                for row in &rows {
                    let id: String = row.try_get(0).map_err(e)?;
                    let workflow: String = row.try_get(1).map_err(e)?;
                    if room.take(&workflow) {
                        picked.push(id.clone());
                    } else {
                        passed_over = true;
                    }
                    seen.push(id);
                }
                if !picked.is_empty() {
                    claimed.extend(
                        tx.query(&take, &[&owner, &lease_until, &picked])
                            .map_err(e)?,
                    );
                }
                if rows.len() < want || !passed_over {
                    break;
                }
            }
            tx.commit().map_err(|err| commit_err(&label, &err))?;
            Ok(claimed)
        })
    }

    fn decode_err(&self, e: &postgres::Error) -> StoreError {
        StoreError::Decode {
            path: self.label.to_string(),
            place: "row".into(),
            message: e.to_string(),
        }
    }
}

impl Store for PostgresStore {
    fn commit(&self, run: &str, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let run = run.to_string();
        let channel = self.channel.clone();
        self.pool.call(move |c| {
            let label = Arc::clone(&c.label);
            let w = write::Write::of(&label, &channel, &run, &batch)?;
            let (sql, args) = w.statement();
            let (client, st) = c.prepared(&sql)?;
            if batch.gates.is_empty() {
                // One statement: its own transaction, one round trip.
                return write::run(client, &st, &args, &label, &run, &batch);
            }
            let mut tx = client.transaction().map_err(|e| map_err(&label, &e))?;
            write::run(&mut tx, &st, &args, &label, &run, &batch)?;
            tx.commit().map_err(|e| commit_err(&label, &e))
        })
    }

    fn commit_group(&self, batches: Vec<(Arc<str>, Batch)>) -> Vec<Result<(), StoreError>> {
        if batches.len() < 2 {
            return batches
                .into_iter()
                .map(|(run, b)| self.commit(&run, b))
                .collect();
        }
        let n = batches.len();
        let channel = self.channel.clone();
        let out = self.pool.call(move |c| {
            let label = Arc::clone(&c.label);
            // Each batch's statement, prepared before the transaction begins.
            let writes: Vec<Option<Result<write::Write<'_>, StoreError>>> = batches
                .iter()
                .map(|(run, b)| (!b.is_empty()).then(|| write::Write::of(&label, &channel, run, b)))
                .collect();
            let mut prepared = Vec::with_capacity(writes.len());
            for w in &writes {
                prepared.push(match w {
                    None => None,
                    Some(Err(e)) => Some(Err(e.clone_msg())),
                    Some(Ok(w)) => {
                        let (sql, args) = w.statement();
                        Some(Ok((c.prepared(&sql)?.1, args)))
                    }
                });
            }
            let client = c.client()?;
            let mut tx = client.transaction().map_err(|e| map_err(&label, &e))?;
            let mut results = Vec::with_capacity(batches.len());
            for ((run, b), w) in batches.iter().zip(prepared) {
                let (st, args) = match w {
                    None => {
                        results.push(Ok(()));
                        continue;
                    }
                    Some(Err(e)) => {
                        results.push(Err(e));
                        continue;
                    }
                    Some(Ok(w)) => w,
                };
                let mut sp = tx.savepoint("batch").map_err(|e| map_err(&label, &e))?;
                match write::run(&mut sp, &st, &args, &label, run, b) {
                    Ok(()) => {
                        sp.commit().map_err(|e| map_err(&label, &e))?;
                        results.push(Ok(()));
                    }
                    Err(err) => {
                        sp.rollback().map_err(|e| map_err(&label, &e))?;
                        results.push(Err(err));
                    }
                }
            }
            match tx.commit() {
                Ok(()) => Ok(results),
                Err(e) => {
                    let err = commit_err(&label, &e);
                    Ok(results.into_iter().map(|_| Err(err.clone_msg())).collect())
                }
            }
        });
        match out {
            Ok(r) => r,
            Err(e) => (0..n).map(|_| Err(e.clone_msg())).collect(),
        }
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let rows = self.rows(
            format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
            vec![Box::new(id.to_string())],
        )?;
        rows.first()
            .map(|r| {
                raw_run(r)
                    .map_err(|e| self.decode_err(&e))
                    .and_then(|r| self.decode_run(r))
            })
            .transpose()
    }

    fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let (tail, args) = filter_sql(f);
        let rows = self.rows(format!("SELECT {RUN_COLUMNS} FROM runs {tail}"), args)?;
        rows.iter()
            .map(|r| {
                raw_run(r)
                    .map_err(|e| self.decode_err(&e))
                    .and_then(|r| self.decode_run(r))
            })
            .collect()
    }

    fn list_run_summaries(&self, f: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let (tail, args) = filter_sql(f);
        let rows = self.rows(
            format!("SELECT id, workflow, status, error, created_at, updated_at FROM runs {tail}"),
            args,
        )?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0).map_err(|e| self.decode_err(&e))?;
                let status: String = r.try_get(2).map_err(|e| self.decode_err(&e))?;
                let status = RunStatus::parse(&status).ok_or_else(|| StoreError::Decode {
                    path: self.label.to_string(),
                    place: format!("runs[{id}]"),
                    message: format!("unknown status `{status}`"),
                })?;
                Ok(RunSummary {
                    workflow: r.try_get(1).map_err(|e| self.decode_err(&e))?,
                    status,
                    error: r.try_get(3).map_err(|e| self.decode_err(&e))?,
                    created_at: r.try_get(4).map_err(|e| self.decode_err(&e))?,
                    updated_at: r.try_get(5).map_err(|e| self.decode_err(&e))?,
                    id,
                })
            })
            .collect()
    }

    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, StoreError> {
        let rows = self.rows(
            "SELECT path, kind, status, output, error, payload, resume, attempt, updated_at
             FROM steps WHERE run_id = $1"
                .into(),
            vec![Box::new(run.to_string())],
        )?;
        rows.iter()
            .map(|r| {
                let d = |e: postgres::Error| self.decode_err(&e);
                let path: String = r.try_get(0).map_err(d)?;
                let kind: String = r.try_get(1).map_err(d)?;
                let status: String = r.try_get(2).map_err(d)?;
                let place = format!("steps[{run}/{path}]");
                let bad = |what: &str, v: &str| StoreError::Decode {
                    path: self.label.to_string(),
                    place: place.clone(),
                    message: format!("unknown {what} `{v}`"),
                };
                let attempt: i64 = r.try_get(7).map_err(d)?;
                Ok(StepRecord {
                    kind: RecordKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
                    status: StepStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
                    output: self
                        .decode_json(&place, r.try_get(3).map_err(d)?)?
                        .map(Arc::new),
                    error: r.try_get(4).map_err(d)?,
                    payload: self.decode_json(&place, r.try_get(5).map_err(d)?)?,
                    resume: self.decode_json(&place, r.try_get(6).map_err(d)?)?,
                    attempt: u32::try_from(attempt)
                        .map_err(|_| bad("attempt", &attempt.to_string()))?,
                    updated_at: r.try_get(8).map_err(d)?,
                    path: path.into(),
                })
            })
            .collect()
    }

    fn state(&self, run: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let rows = self.rows(
            "SELECT key, value FROM run_state WHERE run_id = $1 ORDER BY key".into(),
            vec![Box::new(run.to_string())],
        )?;
        rows.iter()
            .map(|r| {
                let k: String = r.try_get(0).map_err(|e| self.decode_err(&e))?;
                let v: String = r.try_get(1).map_err(|e| self.decode_err(&e))?;
                let place = format!("run_state[{run}/{k}]");
                Ok((k, self.decode_json(&place, Some(v))?.unwrap_or(Value::Null)))
            })
            .collect()
    }

    fn events(&self, run: &str, from: u64, limit: usize) -> Result<Vec<RunEvent>, StoreError> {
        let rows = self.rows(
            "SELECT seq, at, body FROM events WHERE run_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3"
                .into(),
            vec![
                Box::new(run.to_string()),
                Box::new(i64::try_from(from).unwrap_or(i64::MAX)),
                Box::new(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        )?;
        let run_id: Arc<str> = run.into();
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get(0).map_err(|e| self.decode_err(&e))?;
                let at: i64 = r.try_get(1).map_err(|e| self.decode_err(&e))?;
                let body: String = r.try_get(2).map_err(|e| self.decode_err(&e))?;
                let kind = serde_json::from_str(&body).map_err(|e| StoreError::Decode {
                    path: self.label.to_string(),
                    place: format!("events[{run}#{seq}]"),
                    message: e.to_string(),
                })?;
                Ok(RunEvent {
                    run_id: Arc::clone(&run_id),
                    seq: seq as u64,
                    at,
                    kind,
                })
            })
            .collect()
    }

    fn last_seq(&self, run: &str) -> Result<u64, StoreError> {
        let rows = self.rows(
            "SELECT COALESCE(MAX(seq), 0)::bigint FROM events WHERE run_id = $1".into(),
            vec![Box::new(run.to_string())],
        )?;
        let v: i64 = rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| self.decode_err(&e))?
            .unwrap_or(0);
        Ok(v.max(0) as u64)
    }

    fn claim(&self, c: &Claim<'_>) -> Result<bool, StoreError> {
        let args: (String, i64, String, &'static str, Option<String>) = (
            c.new_owner.to_string(),
            c.lease_until,
            c.run.to_string(),
            c.status.as_str(),
            c.owner.map(str::to_string),
        );
        self.pool.call(move |conn| {
            let label = Arc::clone(&conn.label);
            let (client, st) = conn.prepared(
                "UPDATE runs SET status = 'running', owner = $1, lease_until = $2
                 WHERE id = $3 AND status = $4 AND owner IS NOT DISTINCT FROM $5",
            )?;
            client
                .execute(&st, &[&args.0, &args.1, &args.2, &args.3, &args.4])
                .map(|n| n == 1)
                .map_err(|e| map_err(&label, &e))
        })
    }

    /// Without limits, one statement: `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED LIMIT
    /// n)`, so workers polling together skip each other's rows instead of queueing on them.
    /// With limits, one transaction that takes a transaction-scoped advisory lock of the
    /// schema first (limited claims of every worker run one at a time, each counting what the
    /// previous one committed), counts the executing runs, then picks the oldest waiting runs
    /// `FOR UPDATE SKIP LOCKED` and claims those that fit.
    fn claim_lapsed(&self, c: &LapsedClaim<'_>) -> Result<Vec<RunRecord>, StoreError> {
        if c.fingerprints.is_empty() || c.limit == 0 {
            return Ok(Vec::new());
        }
        let rows = if c.limits.is_empty() {
            self.rows(
                format!(
                    "UPDATE runs r SET owner = $1, lease_until = $2
                     FROM (SELECT id FROM runs
                           WHERE status = 'running' AND (owner IS NULL OR lease_until < $3)
                             AND fingerprint = ANY($4)
                           ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED) c
                     WHERE r.id = c.id
                     RETURNING {}",
                    run_columns_of("r")
                ),
                vec![
                    Box::new(c.new_owner.to_string()),
                    Box::new(c.lease_until),
                    Box::new(c.now),
                    Box::new(c.fingerprints.to_vec()),
                    Box::new(i64::try_from(c.limit).unwrap_or(i64::MAX)),
                ],
            )?
        } else {
            self.claim_limited(c)?
        };
        let mut out: Vec<RunRecord> = rows
            .iter()
            .map(|r| {
                raw_run(r)
                    .map_err(|e| self.decode_err(&e))
                    .and_then(|r| self.decode_run(r))
            })
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn renew(&self, owner: &str, lease_until: i64) -> Result<(), StoreError> {
        let owner = owner.to_string();
        self.pool.call(move |c| {
            let label = Arc::clone(&c.label);
            let (client, st) = c.prepared(
                // Rows locked right now (the owner committing, another engine claiming) are
                // skipped rather than waited for: no lock order to get wrong against group
                // commits (which lock several runs), and the next renewal comes within a third
                // of the lease.
                "UPDATE runs SET lease_until = $2 WHERE id IN (
                   SELECT id FROM runs WHERE owner = $1 AND status = 'running'
                   ORDER BY id FOR UPDATE SKIP LOCKED)",
            )?;
            client
                .execute(&st, &[&owner, &lease_until])
                .map(|_| ())
                .map_err(|e| map_err(&label, &e))
        })
    }

    fn prune(&self, rule: &super::Retention, now: i64) -> Result<u64, StoreError> {
        if rule.is_empty() {
            return Ok(0);
        }
        let keep = rule
            .keep_last
            .map_or(-1, |k| i64::try_from(k).unwrap_or(i64::MAX));
        let cutoff = rule.cutoff(now).unwrap_or(i64::MIN);
        let workflow = rule.workflow.clone();
        self.pool.call(move |c| {
            let label = Arc::clone(&c.label);
            let client = c.client()?;
            let n = client
                .execute(
                    "WITH doomed AS (
                       SELECT id FROM (
                         SELECT id, updated_at,
                                ROW_NUMBER() OVER (PARTITION BY workflow ORDER BY id DESC) AS n
                         FROM runs
                         WHERE status IN ('succeeded', 'failed', 'cancelled')
                           AND ($1::text IS NULL OR workflow = $1)
                       ) x WHERE ($2::bigint >= 0 AND n > $2::bigint) OR updated_at < $3::bigint
                     ),
                     s AS (DELETE FROM steps WHERE run_id IN (SELECT id FROM doomed)),
                     e AS (DELETE FROM events WHERE run_id IN (SELECT id FROM doomed)),
                     t AS (DELETE FROM run_state WHERE run_id IN (SELECT id FROM doomed)),
                     g AS (DELETE FROM gates WHERE run_id IN (SELECT id FROM doomed)),
                     o AS (DELETE FROM outbox WHERE run_id IN (SELECT id FROM doomed))
                     DELETE FROM runs WHERE id IN (SELECT id FROM doomed)
                       AND status IN ('succeeded', 'failed', 'cancelled')",
                    &[&workflow, &keep, &cutoff],
                )
                .map_err(|e| map_err(&label, &e))?;
            Ok(n)
        })
    }

    fn gates(&self) -> Option<&dyn super::GateStore> {
        Some(self)
    }

    fn wakeups(&self) -> Option<Arc<tokio::sync::Notify>> {
        let (wake, _) = self.wake.get_or_init(|| {
            let wake = Arc::new(tokio::sync::Notify::new());
            let listener =
                Listener::start(self.config.clone(), self.channel.clone(), Arc::clone(&wake));
            (wake, listener)
        });
        Some(Arc::clone(wake))
    }
}

/// A failed `COMMIT`: when the connection broke, the transaction may or may not have
/// committed (the server may have received the `COMMIT`).
fn commit_err(label: &str, e: &postgres::Error) -> StoreError {
    if e.code().is_none() {
        StoreError::Indeterminate {
            path: label.to_string(),
            message: e.to_string(),
        }
    } else {
        map_err(label, e)
    }
}

impl StoreError {
    /// The same error again (for the results of a group whose transaction failed).
    pub(crate) fn clone_msg(&self) -> StoreError {
        let (path, message) = match self {
            StoreError::Busy { path, message } => {
                return StoreError::Busy {
                    path: path.clone(),
                    message: message.clone(),
                };
            }
            StoreError::Indeterminate { path, message } => {
                return StoreError::Indeterminate {
                    path: path.clone(),
                    message: message.clone(),
                };
            }
            StoreError::ReadOnly { path, message } => {
                return StoreError::ReadOnly {
                    path: path.clone(),
                    message: message.clone(),
                };
            }
            StoreError::Open { path, message } => (path.clone(), message.clone()),
            StoreError::Other { path, message } => (path.clone(), message.clone()),
            other => (String::new(), other.to_string()),
        };
        StoreError::Other { path, message }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn urls_shown_in_messages_have_no_password() {
        assert_eq!(
            redact("postgres://app:s3cret@db.internal:5432/runs?sslmode=disable"),
            "postgres://app@db.internal:5432/runs"
        );
        assert_eq!(redact("postgres://db/runs"), "postgres://db/runs");
        assert_eq!(redact("mysql://u:p@h/d"), "postgres (unparsed URL)");
        assert!(!redact("postgres://a:p%40ss@h/d").contains("p%40ss"));
    }
}

/// The `LISTEN`/`NOTIFY` channel of a schema: `miyabi_<schema>`, or — past Postgres' 63-byte
/// limit on names — its first 38 bytes and a stable hash of the whole (every process on the
/// schema computes the same channel).
fn channel_for(schema: &str) -> String {
    let full = format!("miyabi_{schema}");
    if full.len() <= 63 {
        return full;
    }
    // FNV-1a, 64 bits: stable across processes and builds (unlike the std hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in schema.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Schema names are ASCII (checked when the store opens), so any byte index is a boundary.
    format!("miyabi_{}_{h:016x}", &schema[..38])
}

#[cfg(test)]
mod channel_tests {
    use super::channel_for;

    #[test]
    fn channels_fit_postgres_names_and_stay_distinct() {
        assert_eq!(channel_for("public"), "miyabi_public");
        let a = channel_for(&format!("{}_a", "x".repeat(60)));
        let b = channel_for(&format!("{}_b", "x".repeat(60)));
        assert!(a.len() <= 63, "{a}");
        assert_ne!(a, b);
        assert_eq!(a, channel_for(&format!("{}_a", "x".repeat(60))));
    }
}
