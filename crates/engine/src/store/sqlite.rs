//! The SQLite store: one file, WAL, versioned migrations, one row per step path and per event.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use serde_json::Value;

use super::{
    Batch, Claim, LapsedClaim, RecordKind, Room, RunFilter, RunRecord, RunStatus, RunSummary,
    StepRecord, StepStatus, Store,
};
use crate::error::StoreError;
use crate::workflow::RunEvent;

/// Versioned migrations; index + 1 is the `user_version` after applying it.
const MIGRATIONS: &[&str] = &[
    // 1: runs, step paths, events, shared run state.
    "CREATE TABLE runs (
        id TEXT PRIMARY KEY NOT NULL,
        workflow TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        output TEXT,
        error TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        owner TEXT,
        lease_until INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX runs_by_workflow ON runs (workflow, created_at);
    CREATE INDEX runs_by_status ON runs (status, created_at);
    CREATE TABLE steps (
        run_id TEXT NOT NULL,
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        output TEXT,
        error TEXT,
        payload TEXT,
        resume TEXT,
        attempt INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (run_id, path)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        at INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE run_state (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    ) WITHOUT ROWID;",
    // 2: approval gates, their audit trail and notification outbox.
    "CREATE TABLE gates (
        run_id TEXT NOT NULL,
        gate TEXT NOT NULL,
        workflow TEXT NOT NULL,
        status TEXT NOT NULL,
        deadline_at INTEGER,
        delivered INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (run_id, gate)
    ) WITHOUT ROWID;
    CREATE INDEX gates_by_status ON gates (status, created_at);
    CREATE INDEX gates_by_deadline ON gates (deadline_at) WHERE status = 'pending';
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        gate TEXT NOT NULL,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE INDEX audit_by_run ON audit (run_id, gate, id);
    CREATE INDEX audit_by_actor ON audit (actor, id);
    CREATE TABLE outbox (
        run_id TEXT NOT NULL,
        gate TEXT NOT NULL,
        notifier TEXT NOT NULL,
        event TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_at INTEGER NOT NULL,
        last_error TEXT,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (run_id, gate, notifier, event)
    ) WITHOUT ROWID;
    CREATE INDEX outbox_due ON outbox (next_at) WHERE status = 'pending';",
    // 3: the unfiltered run listing (newest first, keyset paging) reads an index instead of
    // sorting the table.
    "CREATE INDEX runs_by_created ON runs (created_at, id);",
    // 4: fewer B-trees per run insert. Every index on `runs` is one more page the commit that
    // creates a run writes to the WAL, and page writes are most of a commit's cost. Run ids
    // are UUID v7 and `created_at` is the time in the id, so the primary key is already in
    // creation order: listings walk it newest first (filtering by workflow or by a finished
    // status as they go), and only the runs the engine looks up by status (running: recovery
    // and lease renewal; suspended: resumable) keep a status index, a partial one.
    "DROP INDEX runs_by_workflow;
    DROP INDEX runs_by_status;
    DROP INDEX runs_by_created;
    CREATE INDEX runs_active ON runs (status) WHERE status IN ('running', 'suspended');",
];

/// The condition of the partial index `runs_active`, added verbatim to queries on those
/// statuses (SQLite uses a partial index only when the query contains its condition).
const ACTIVE: &str = "status IN ('running', 'suspended')";

/// The embedded default store: a SQLite file in WAL mode.
///
/// ```no_run
/// use miyabi_engine::SqliteStore;
/// let store = SqliteStore::open("miyabi.db")?;
/// # Ok::<(), miyabi_engine::StoreError>(())
/// ```
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// Read-only connections for reads outside transactions (a file database in WAL mode:
    /// readers never block the writer nor each other); empty for in-memory databases.
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
    pub(super) path: String,
    /// Copies the WAL into the database file in the background (file databases only).
    checkpointer: Option<Checkpointer>,
}

/// A thread with its own connection that runs a passive WAL checkpoint every 100 ms, so that
/// commits never pay for checkpoints (with `synchronous=NORMAL`, a checkpoint is the only
/// write that waits for the disk). Stopped and joined when the store is dropped.
struct Checkpointer {
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// `None` when the database cannot be opened for writing a second time (the writer then
    /// checkpoints inline, as SQLite does by default).
    fn start(path: &Path) -> Option<Self> {
        let conn = Connection::open(path).ok()?;
        conn.busy_timeout(Duration::from_secs(5)).ok()?;
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("miyabi-sqlite-checkpoint".into())
            .spawn(move || {
                let (lock, cv) = &*flag;
                loop {
                    let guard = lock
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let (guard, _) = cv
                        .wait_timeout_while(guard, Duration::from_millis(100), |stop| !*stop)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if *guard {
                        return;
                    }
                    drop(guard);
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(error = %e, "background WAL checkpoint failed");
                    }
                }
            })
            .ok()?;
        Some(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How many read-only connections a file database gets.
const READERS: usize = 4;

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Creates an empty database file with mode 0600 when none exists (before SQLite creates it
/// with the process's umask, typically world-readable). An existing file is left as it is.
fn create_owner_only(path: &Path) -> std::io::Result<()> {
    let name = path.as_os_str();
    if name.is_empty() || name == ":memory:" || path.to_string_lossy().starts_with("file:") {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // A missing directory and the like: SQLite reports it with its own words.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) a database file and applies pending migrations.
    ///
    /// A new database file is created readable and writable by its owner only (0600 on
    /// Unix); SQLite gives its WAL and shared-memory files the same permissions.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let shown = path.as_ref().display().to_string();
        create_owner_only(path.as_ref()).map_err(|e| StoreError::Open {
            path: shown.clone(),
            message: format!("cannot create the file: {e}"),
        })?;
        let conn = Connection::open(path.as_ref()).map_err(|e| map_err(&shown, e))?;
        let mut store = Self::init(conn, shown)?;
        let wal = store
            .lock()
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .map_err(|e| map_err(&store.path, e))?;
        if wal == "wal" {
            store.checkpointer = Checkpointer::start(path.as_ref());
            if store.checkpointer.is_some() {
                // The writer checkpoints only as a safety net, if the thread falls far behind.
                store
                    .lock()
                    .execute_batch("PRAGMA wal_autocheckpoint=16384;")
                    .map_err(|e| map_err(&store.path, e))?;
            }
        }
        if wal == "wal" {
            for _ in 0..READERS {
                let r = Connection::open_with_flags(
                    path.as_ref(),
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| map_err(&store.path, e))?;
                r.busy_timeout(Duration::from_secs(5))
                    .map_err(|e| map_err(&store.path, e))?;
                r.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                store.readers.push(Mutex::new(r));
            }
        }
        Ok(store)
    }

    /// Opens a private in-memory SQLite database (for tests and benchmarks).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(|e| map_err(":memory:", e))?;
        Self::init(conn, ":memory:".to_string())
    }

    fn init(conn: Connection, path: String) -> Result<Self, StoreError> {
        let e = |err| map_err(&path, err);
        conn.busy_timeout(Duration::from_secs(5)).map_err(e)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // WAL survives process crashes with synchronous=NORMAL: a commit is in the WAL file
        // before `commit` returns; only an OS crash or power loss can lose the last commits.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(e)?;
        if mode != "wal" && path != ":memory:" {
            tracing::warn!(path = %path, mode = %mode, "SQLite did not switch to WAL");
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;")
            .map_err(e)?;
        let store = Self {
            conn: Mutex::new(conn),
            readers: Vec::new(),
            next_reader: std::sync::atomic::AtomicUsize::new(0),
            path,
            checkpointer: None,
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let e = |err| map_err(&self.path, err);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(e)?;
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                supported,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(e)?;
            tx.execute_batch(sql).map_err(e)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
                .map_err(e)?;
            tx.commit().map_err(e)?;
        }
        Ok(())
    }

    /// A connection for a read outside any transaction: a free reader (round robin), else
    /// the writer when there are no readers.
    pub(super) fn read(&self) -> std::sync::MutexGuard<'_, Connection> {
        let n = self.readers.len();
        if n == 0 {
            return self.lock();
        }
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..n {
            match self.readers[(start + i) % n].try_lock() {
                Ok(g) => return g,
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        self.readers[start % n]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A poisoned lock only means another thread panicked while holding it; the connection
        // itself is still consistent (SQLite rolls back unfinished transactions).
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The database location as given to [`SqliteStore::open`].
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Runs `PRAGMA integrity_check` and returns its first line (`ok` when healthy).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.lock()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| map_err(&self.path, e))
    }

    /// One transaction; `BEGIN`/`COMMIT` are cached statements too (rusqlite's `transaction()`
    /// parses them anew every time, ~4% of a small commit's instructions).
    ///
    /// `BEGIN IMMEDIATE` takes the write lock first (waiting up to the busy timeout), so the
    /// owner check below cannot go stale before the writes.
    fn write_batch(&self, conn: &mut Connection, run: &str, b: &Batch) -> Result<(), StoreError> {
        let e = |err| map_err(&self.path, err);
        conn.prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(e)?;
        let written = self.check_fence(conn, run, b).and_then(|()| {
            Self::write_rows(conn, run, b)
                .and_then(|()| conn.prepare_cached("COMMIT")?.execute([]).map(|_| ()))
                .map_err(e)
        });
        if written.is_err() && !conn.is_autocommit() {
            // Nothing of a failed batch stays: roll back what it wrote.
            let _ = conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
        }
        written
    }

    /// Several runs' batches in one transaction, each inside its own savepoint: a batch that
    /// fails (fenced, a constraint) is rolled back to its savepoint and gets its error; the
    /// others commit together. `None` when the transaction itself failed to begin or commit,
    /// in which case nothing was written.
    fn write_group(
        &self,
        conn: &mut Connection,
        batches: &[(Arc<str>, Batch)],
    ) -> Option<Vec<Result<(), StoreError>>> {
        let exec = |conn: &Connection, sql: &str| {
            conn.prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
                .map(|_| ())
        };
        exec(conn, "BEGIN IMMEDIATE").ok()?;
        let mut results = Vec::with_capacity(batches.len());
        for (run, b) in batches {
            if b.is_empty() {
                results.push(Ok(()));
                continue;
            }
            let r = exec(conn, "SAVEPOINT batch")
                .map_err(|e| map_err(&self.path, e))
                .and_then(|()| self.check_fence(conn, run, b))
                .and_then(|()| Self::write_rows(conn, run, b).map_err(|e| map_err(&self.path, e)));
            let closed = if r.is_ok() {
                exec(conn, "RELEASE batch")
            } else {
                exec(conn, "ROLLBACK TO batch").and_then(|()| exec(conn, "RELEASE batch"))
            };
            if closed.is_err() {
                let _ = exec(conn, "ROLLBACK");
                return None;
            }
            results.push(r);
        }
        if exec(conn, "COMMIT").is_err() {
            if !conn.is_autocommit() {
                let _ = exec(conn, "ROLLBACK");
            }
            return None;
        }
        Some(results)
    }

    /// Refuses the batch if the run's row names another owner than its fence.
    fn check_fence(&self, conn: &Connection, run: &str, b: &Batch) -> Result<(), StoreError> {
        let Some(fence) = b.fence.as_deref().filter(|_| b.create.is_none()) else {
            return Ok(());
        };
        let owner: Option<Option<String>> = conn
            .prepare_cached("SELECT owner FROM runs WHERE id = ?1")
            .and_then(|mut s| s.query_row([run], |r| r.get(0)).optional())
            .map_err(|err| map_err(&self.path, err))?;
        match owner {
            Some(o) if o.as_deref() != Some(fence) => Err(StoreError::Fenced {
                run: run.to_string(),
                owner: o,
            }),
            _ => Ok(()),
        }
    }

    fn write_rows(tx: &Connection, run: &str, b: &Batch) -> rusqlite::Result<()> {
        if let Some(n) = b.new_run_row() {
            // (In its final state when the batch also ends it: one insert into each of the
            // run's B-trees instead of an insert and an update.)
            let r = n.record;
            tx.prepare_cached(
                "INSERT INTO runs (id, workflow, fingerprint, status, input, output, error,
                 created_at, updated_at, owner, lease_until) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
            )?
            .execute(params![
                r.id,
                r.workflow,
                r.fingerprint,
                n.status.as_str(),
                r.input.to_string(),
                n.output.map(|v| v.to_string()),
                n.error,
                r.created_at,
                n.updated_at,
                n.owner,
                n.lease_until
            ])?;
        }
        for path in &b.clear {
            tx.prepare_cached("DELETE FROM steps WHERE run_id = ?1 AND path = ?2")?
                .execute(params![run, path])?;
        }
        for s in &b.steps {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO steps (run_id, path, kind, status, output, error, payload,
                 resume, attempt, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
            )?
            .execute(params![
                run,
                s.path,
                s.kind.as_str(),
                s.status.as_str(),
                s.output.as_ref().map(|v| v.to_string()),
                s.error,
                s.payload.as_ref().map(Value::to_string),
                s.resume.as_ref().map(Value::to_string),
                s.attempt,
                s.updated_at
            ])?;
        }
        for (k, v) in &b.state {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO run_state (run_id, key, value) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![run, k, v.to_string()])?;
        }
        // One row per event, inserted up to EVENTS_PER_INSERT rows per statement (a
        // statement's fixed cost is a good part of a small commit).
        for chunk in b.events.chunks(EVENTS_PER_INSERT) {
            let bodies = chunk
                .iter()
                .map(|ev| serde_json::to_string(&ev.kind))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            let seqs: Vec<i64> = chunk.iter().map(|ev| ev.seq as i64).collect();
            let mut args: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(1 + 3 * chunk.len());
            args.push(&run);
            for ((ev, seq), body) in chunk.iter().zip(&seqs).zip(&bodies) {
                args.extend([seq as &dyn rusqlite::ToSql, &ev.at, body]);
            }
            tx.prepare_cached(insert_events_sql(chunk.len()))?
                .execute(args.as_slice())?;
        }
        if let Some(u) = b.update.as_ref().filter(|_| b.create.is_none()) {
            let sql = if u.release {
                "UPDATE runs SET status=?2, output=?3, error=?4, updated_at=?5, owner=NULL,
                 lease_until=NULL WHERE id=?1"
            } else {
                "UPDATE runs SET status=?2, output=?3, error=?4, updated_at=?5 WHERE id=?1"
            };
            tx.prepare_cached(sql)?.execute(params![
                run,
                u.status.as_str(),
                u.output.as_ref().map(|v| v.to_string()),
                u.error,
                u.updated_at
            ])?;
        }
        if !b.gates.is_empty() {
            super::sqlite_gates::insert_gates(tx, &b.gates)?;
        }
        Ok(())
    }

    /// The counting and claiming of [`Store::claim_lapsed`], inside its transaction.
    fn claim_in_transaction(
        &self,
        conn: &Connection,
        c: &LapsedClaim<'_>,
    ) -> Result<Vec<RawRun>, StoreError> {
        let e = |err| map_err(&self.path, err);
        let mut room = Room::counting(c.limits, std::iter::empty());
        if !c.limits.is_empty() {
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT workflow, COUNT(*) FROM runs
                     WHERE status = 'running' AND {ACTIVE} AND owner IS NOT NULL
                       AND (lease_until IS NULL OR lease_until >= ?1)
                     GROUP BY workflow"
                ))
                .map_err(e)?;
            let mut rows = st.query([c.now]).map_err(e)?;
            while let Some(row) = rows.next().map_err(e)? {
                let workflow: String = row.get(0).map_err(e)?;
                let n: i64 = row.get(1).map_err(e)?;
                room.add(&workflow, usize::try_from(n).unwrap_or(0));
            }
        }
        if room.exhausted() {
            return Ok(Vec::new());
        }
        // The waiting runs, oldest first; the definitions this engine cannot execute and the
        // workflows at their limit are passed over.
        let fingerprints: std::collections::HashSet<&str> =
            c.fingerprints.iter().map(String::as_str).collect();
        let mut picked: Vec<String> = Vec::new();
        {
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT id, workflow, fingerprint FROM runs
                     WHERE status = 'running' AND {ACTIVE}
                       AND (owner IS NULL OR lease_until < ?1)
                     ORDER BY id"
                ))
                .map_err(e)?;
            let mut rows = st.query([c.now]).map_err(e)?;
            while let Some(row) = rows.next().map_err(e)? {
                if picked.len() >= c.limit || room.exhausted() {
                    break;
                }
                let fingerprint: String = row.get(2).map_err(e)?;
                if !fingerprints.contains(fingerprint.as_str()) {
                    continue;
                }
                let workflow: String = row.get(1).map_err(e)?;
                if room.take(&workflow) {
                    picked.push(row.get(0).map_err(e)?);
                }
            }
        }
        let mut st = conn
            .prepare_cached(&format!(
                "UPDATE runs SET owner = ?1, lease_until = ?2 WHERE id = ?3 RETURNING {RUN_COLUMNS}"
            ))
            .map_err(e)?;
        picked
            .iter()
            .map(|id| {
                st.query_row(params![c.new_owner, c.lease_until, id], raw_run)
                    .map_err(e)
            })
            .collect()
    }

    fn decode_json(&self, place: &str, s: Option<String>) -> Result<Option<Value>, StoreError> {
        s.map(|s| {
            serde_json::from_str(&s).map_err(|e| StoreError::Decode {
                path: self.path.clone(),
                place: place.to_string(),
                message: e.to_string(),
            })
        })
        .transpose()
    }

    fn decode_run(&self, row: RawRun) -> Result<RunRecord, StoreError> {
        let place = format!("runs[{}]", row.id);
        let status = RunStatus::parse(&row.status).ok_or_else(|| StoreError::Decode {
            path: self.path.clone(),
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

const RUN_COLUMNS: &str = "id, workflow, fingerprint, status, input, output, error, created_at, updated_at, owner, lease_until";

fn raw_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRun> {
    Ok(RawRun {
        id: r.get(0)?,
        workflow: r.get(1)?,
        fingerprint: r.get(2)?,
        status: r.get(3)?,
        input: r.get(4)?,
        output: r.get(5)?,
        error: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        owner: r.get(9)?,
        lease_until: r.get(10)?,
    })
}

impl Store for SqliteStore {
    fn commit(&self, run: &str, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        self.write_batch(&mut conn, run, &batch)
    }

    fn commit_group(&self, batches: Vec<(Arc<str>, Batch)>) -> Vec<Result<(), StoreError>> {
        if batches.len() < 2 {
            return batches
                .into_iter()
                .map(|(run, b)| self.commit(&run, b))
                .collect();
        }
        let mut conn = self.lock();
        match self.write_group(&mut conn, &batches) {
            Some(results) => results,
            // The group's transaction could not begin or commit (nothing of it stayed):
            // commit the batches one by one, so that each gets its own outcome.
            None => batches
                .iter()
                .map(|(run, b)| {
                    if b.is_empty() {
                        Ok(())
                    } else {
                        self.write_batch(&mut conn, run, b)
                    }
                })
                .collect(),
        }
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let raw = {
            let conn = self.read();
            conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))
                .and_then(|mut s| s.query_row([id], raw_run).optional())
                .map_err(|e| map_err(&self.path, e))?
        };
        raw.map(|r| self.decode_run(r)).transpose()
    }

    fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let (tail, args) = filter_sql(f);
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs {tail}");
        let raws = {
            let conn = self.read();
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(|e| map_err(&self.path, e))?;
            stmt.query_map(rusqlite::params_from_iter(args), raw_run)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| map_err(&self.path, e))?
        };
        raws.into_iter().map(|r| self.decode_run(r)).collect()
    }

    fn list_run_summaries(&self, f: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let (tail, args) = filter_sql(f);
        let sql =
            format!("SELECT id, workflow, status, error, created_at, updated_at FROM runs {tail}");
        let conn = self.read();
        let mut stmt = conn
            .prepare_cached(&sql)
            .map_err(|e| map_err(&self.path, e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| map_err(&self.path, e))?;
        drop(stmt);
        drop(conn);
        rows.into_iter()
            .map(|(id, workflow, status, error, created_at, updated_at)| {
                let status = RunStatus::parse(&status).ok_or_else(|| StoreError::Decode {
                    path: self.path.clone(),
                    place: format!("runs[{id}]"),
                    message: format!("unknown status `{status}`"),
                })?;
                Ok(RunSummary {
                    id,
                    workflow,
                    status,
                    error,
                    created_at,
                    updated_at,
                })
            })
            .collect()
    }

    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, StoreError> {
        type Raw = (
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            u32,
            i64,
        );
        let raws: Vec<Raw> = {
            let conn = self.read();
            conn.prepare_cached(
                "SELECT path, kind, status, output, error, payload, resume, attempt, updated_at
                 FROM steps WHERE run_id = ?1",
            )
            .and_then(|mut s| {
                s.query_map([run], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                })?
                .collect()
            })
            .map_err(|e| map_err(&self.path, e))?
        };
        raws.into_iter()
            .map(
                |(path, kind, status, output, error, payload, resume, attempt, updated_at)| {
                    let place = format!("steps[{run}/{path}]");
                    let bad = |what: &str, v: &str| StoreError::Decode {
                        path: self.path.clone(),
                        place: place.clone(),
                        message: format!("unknown {what} `{v}`"),
                    };
                    Ok(StepRecord {
                        kind: RecordKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
                        status: StepStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
                        output: self.decode_json(&place, output)?.map(Arc::new),
                        error,
                        payload: self.decode_json(&place, payload)?,
                        resume: self.decode_json(&place, resume)?,
                        attempt,
                        updated_at,
                        path: path.into(),
                    })
                },
            )
            .collect()
    }

    fn state(&self, run: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let raws: Vec<(String, String)> = {
            let conn = self.read();
            conn.prepare_cached("SELECT key, value FROM run_state WHERE run_id = ?1")
                .and_then(|mut s| {
                    s.query_map([run], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .map_err(|e| map_err(&self.path, e))?
        };
        raws.into_iter()
            .map(|(k, v)| {
                let place = format!("run_state[{run}/{k}]");
                Ok((k, self.decode_json(&place, Some(v))?.unwrap_or(Value::Null)))
            })
            .collect()
    }

    fn events(&self, run: &str, from: u64, limit: usize) -> Result<Vec<RunEvent>, StoreError> {
        let raws: Vec<(i64, i64, String)> = {
            let conn = self.read();
            conn.prepare_cached(
                "SELECT seq, at, body FROM events WHERE run_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![run, from as i64, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect()
            })
            .map_err(|e| map_err(&self.path, e))?
        };
        let run_id: Arc<str> = run.into();
        raws.into_iter()
            .map(|(seq, at, body)| {
                let kind = serde_json::from_str(&body).map_err(|e| StoreError::Decode {
                    path: self.path.clone(),
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
        let conn = self.read();
        conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_id = ?1")
            .and_then(|mut s| s.query_row([run], |r| r.get::<_, i64>(0)))
            .map(|v| v as u64)
            .map_err(|e| map_err(&self.path, e))
    }

    fn claim(&self, c: &Claim<'_>) -> Result<bool, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "UPDATE runs SET status = 'running', owner = ?1, lease_until = ?2
             WHERE id = ?3 AND status = ?4 AND owner IS ?5",
        )
        .and_then(|mut s| {
            s.execute(params![
                c.new_owner,
                c.lease_until,
                c.run,
                c.status.as_str(),
                c.owner
            ])
        })
        .map(|n| n == 1)
        .map_err(|e| map_err(&self.path, e))
    }

    /// Counts the executing runs and claims waiting ones in one `BEGIN IMMEDIATE` transaction:
    /// it holds the file's write lock from the count to the claims, so engines in other
    /// processes on the same file cannot claim in between (and both take the last slot).
    fn claim_lapsed(&self, c: &LapsedClaim<'_>) -> Result<Vec<RunRecord>, StoreError> {
        if c.fingerprints.is_empty() || c.limit == 0 {
            return Ok(Vec::new());
        }
        let conn = self.lock();
        let e = |err| map_err(&self.path, err);
        conn.prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(e)?;
        let claimed = self.claim_in_transaction(&conn, c).and_then(|raws| {
            conn.prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
                .map_err(e)?;
            Ok(raws)
        });
        if claimed.is_err() && !conn.is_autocommit() {
            let _ = conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
        }
        drop(conn);
        claimed?.into_iter().map(|r| self.decode_run(r)).collect()
    }

    fn gates(&self) -> Option<&dyn super::GateStore> {
        Some(self)
    }

    fn prune(&self, rule: &super::Retention, now: i64) -> Result<u64, StoreError> {
        if rule.is_empty() {
            return Ok(0);
        }
        let e = |err| map_err(&self.path, err);
        // Finished runs, newest first per workflow (ids are UUID v7: creation order); those
        // beyond `keep_last` or ended before the cutoff are deleted. -1 means "no limit".
        let keep = rule
            .keep_last
            .map_or(-1, |k| i64::try_from(k).unwrap_or(i64::MAX));
        let cutoff = rule.cutoff(now).unwrap_or(i64::MIN);
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(e)?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS prune_ids (id TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
             DELETE FROM temp.prune_ids;",
        )
        .map_err(e)?;
        let selected = tx
            .execute(
                "INSERT INTO temp.prune_ids (id)
                 SELECT id FROM (
                     SELECT id, updated_at,
                            ROW_NUMBER() OVER (PARTITION BY workflow ORDER BY id DESC) AS n
                     FROM runs
                     WHERE status IN ('succeeded', 'failed', 'cancelled')
                       AND (?1 IS NULL OR workflow = ?1)
                 )
                 WHERE (?2 >= 0 AND n > ?2) OR updated_at < ?3",
                params![rule.workflow, keep, cutoff],
            )
            .map_err(e)?;
        let mut deleted = 0;
        if selected > 0 {
            for table in ["steps", "events", "run_state", "gates", "outbox"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE run_id IN (SELECT id FROM temp.prune_ids)"),
                    [],
                )
                .map_err(e)?;
            }
            deleted = tx
                .execute(
                    "DELETE FROM runs WHERE id IN (SELECT id FROM temp.prune_ids)
                     AND status IN ('succeeded', 'failed', 'cancelled')",
                    [],
                )
                .map_err(e)?;
            tx.execute("DELETE FROM temp.prune_ids", []).map_err(e)?;
        }
        tx.commit().map_err(e)?;
        Ok(deleted as u64)
    }

    fn renew(&self, owner: &str, lease_until: i64) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.prepare_cached(&format!(
            "UPDATE runs SET lease_until = ?2 WHERE owner = ?1 AND status = 'running' AND {ACTIVE}"
        ))
        .and_then(|mut s| s.execute(params![owner, lease_until]))
        .map(|_| ())
        .map_err(|e| map_err(&self.path, e))
    }
}

/// The `WHERE ... ORDER BY ... LIMIT ...` of a run listing and its parameters. The limit is a
/// parameter (-1: none), so one statement per filter shape is cached.
fn filter_sql(f: &RunFilter) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = String::from("WHERE 1=1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(w) = &f.workflow {
        args.push(w.clone().into());
        sql.push_str(&format!(" AND workflow = ?{}", args.len()));
    }
    if let Some(s) = f.status {
        args.push(s.as_str().to_string().into());
        sql.push_str(&format!(" AND status = ?{}", args.len()));
        if matches!(s, RunStatus::Running | RunStatus::Suspended) {
            sql.push_str(&format!(" AND {ACTIVE}"));
        }
    }
    // Creation times become bounds on the id: a UUID v7's text starts with its time in
    // milliseconds as fixed-width lowercase hex (`tttttttt-tttt-7…`).
    let id_at = |t: i64| {
        let t = t.max(0) as u64;
        format!("{:08x}-{:04x}", (t >> 16) & 0xffff_ffff, t & 0xffff)
    };
    if let Some(t) = f.created_after {
        args.push(id_at(t).into());
        sql.push_str(&format!(" AND id >= ?{}", args.len()));
    }
    if let Some(t) = f.created_before {
        args.push(id_at(t).into());
        sql.push_str(&format!(" AND id < ?{}", args.len()));
    }
    if let Some((_, id)) = &f.before {
        args.push(id.clone().into());
        sql.push_str(&format!(" AND id < ?{}", args.len()));
    }
    sql.push_str(" ORDER BY id DESC");
    args.push(
        f.limit
            .map_or(-1, |l| l.min(i64::MAX as usize) as i64)
            .into(),
    );
    sql.push_str(&format!(" LIMIT ?{}", args.len()));
    (sql, args)
}

/// Prepared statements kept per connection (rusqlite's default of 16 is fewer than the
/// writer uses: runs, steps, events by row count, state, updates, fencing, transactions and
/// savepoints, gates, claims; an evicted statement is parsed again on its next use).
const STATEMENT_CACHE: usize = 64;

/// The most event rows one `INSERT` carries.
const EVENTS_PER_INSERT: usize = 16;

/// `INSERT INTO events … VALUES (?1, ?2, ?3, ?4), (?1, ?5, ?6, ?7), …` for `n` rows (1 ≤ n ≤
/// [`EVENTS_PER_INSERT`]): the run id is bound once, then seq, at and body per row.
fn insert_events_sql(n: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        (1..=EVENTS_PER_INSERT)
            .map(|n| {
                let rows: Vec<String> = (0..n)
                    .map(|i| format!("(?1, ?{}, ?{}, ?{})", 2 + 3 * i, 3 + 3 * i, 4 + 3 * i))
                    .collect();
                format!(
                    "INSERT INTO events (run_id, seq, at, body) VALUES {}",
                    rows.join(", ")
                )
            })
            .collect()
    });
    all[n.clamp(1, EVENTS_PER_INSERT) - 1].as_str()
}

/// Maps a SQLite error to the store's typed error, keeping SQLite's message.
pub fn map_err(path: &str, e: rusqlite::Error) -> StoreError {
    let path = path.to_string();
    let message = e.to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Busy { path, message }
        }
        Some(ErrorCode::DiskFull) => StoreError::Full { path, message },
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly { path, message },
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt { path, message }
        }
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            StoreError::Open { path, message }
        }
        _ => StoreError::Other { path, message },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plan(store: &SqliteStore, sql: &str, args: &[rusqlite::types::Value]) -> String {
        let conn = store.lock();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap();
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("; ")
    }

    #[test]
    fn active_statuses_are_found_through_the_partial_index() {
        let store = SqliteStore::open_in_memory().unwrap();
        for status in [RunStatus::Running, RunStatus::Suspended] {
            let (tail, args) = filter_sql(&RunFilter {
                status: Some(status),
                ..Default::default()
            });
            let p = plan(&store, &format!("SELECT id FROM runs {tail}"), &args);
            assert!(p.contains("runs_active"), "{status:?}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "{status:?} sorts: {p}");
        }
        let renew = format!(
            "UPDATE runs SET lease_until = ?2 WHERE owner = ?1 AND status = 'running' AND {ACTIVE}"
        );
        let p = plan(&store, &renew, &["o".to_string().into(), 1i64.into()]);
        assert!(p.contains("runs_active"), "{p}");
        // Ids from UUID v7 text bounds: a run created at `t` is inside [t, t + 1).
        let id = uuid::Builder::from_unix_timestamp_millis(1_732_000_000_123, &[7; 10])
            .into_uuid()
            .to_string();
        let (tail, args) = filter_sql(&RunFilter {
            created_after: Some(1_732_000_000_123),
            created_before: Some(1_732_000_000_124),
            ..Default::default()
        });
        let n: i64 = store
            .lock()
            .query_row(
                &format!(
                    "SELECT count(*) FROM (SELECT ?{} AS id {tail})",
                    args.len() + 1
                ),
                rusqlite::params_from_iter(args.iter().cloned().chain([id.into()])),
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
        // Everything else walks the primary key (creation order) instead of sorting.
        let (tail, args) = filter_sql(&RunFilter {
            workflow: Some("w".into()),
            status: Some(RunStatus::Succeeded),
            created_after: Some(1),
            before: Some((2, "0190f5b2-7d3c-7a9e-8f00-000000000000".into())),
            ..Default::default()
        });
        let p = plan(&store, &format!("SELECT id FROM runs {tail}"), &args);
        assert!(p.contains("PRIMARY KEY"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
    }

    #[test]
    fn a_batch_of_many_events_is_stored_one_row_each_in_order() {
        use crate::workflow::{EventKind, RunEvent};
        let store = SqliteStore::open_in_memory().unwrap();
        let run: Arc<str> = "r".into();
        let events: Vec<RunEvent> = (1..=40)
            .map(|seq| RunEvent {
                run_id: Arc::clone(&run),
                seq,
                at: seq as i64 * 10,
                kind: EventKind::Custom {
                    path: "p".into(),
                    name: format!("e{seq}"),
                    data: serde_json::json!(seq),
                },
            })
            .collect();
        let batch = Batch {
            events: events.clone(),
            ..Batch::default()
        };
        store.commit("r", batch).unwrap();
        assert_eq!(store.events("r", 1, usize::MAX).unwrap(), events);
        assert_eq!(store.events("r", 17, 2).unwrap(), events[16..18].to_vec());
        assert_eq!(store.last_seq("r").unwrap(), 40);
        let rows: i64 = store
            .lock()
            .query_row("SELECT count(*) FROM events WHERE run_id = 'r'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(rows, 40);
    }
}
