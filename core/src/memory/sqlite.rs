//! Memory on SQLite: its own tables (prefixed `memory_`) and its own connection, so it can share
//! the engine's database file.
//!
//! Working memory keeps one row per (scope, key) with its size, expiry and last access. A
//! handle with caps recounts the totals when it opens and keeps them in a one-row table
//! through triggers on its own connection, so a write checks the caps without scanning; reads
//! through it record their use for LRU in memory, written at the start of its next write
//! transaction (before any eviction), so a read is a plain `SELECT`. Expired rows are invisible at once and deleted on
//! later writes; when a cap is exceeded, expired rows go first, then the least recently used.
//! Handles without caps pay for none of this (their writes are one row); when several
//! processes share a file, give them all the same caps, or the totals drift until the next open
//! of a capped handle.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use super::{MemoryBackend, MemoryError, MemoryOptions, StoredMessage, ThreadInfo, merge_patch};
use crate::model::{Message, Role};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS memory_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS memory_threads (
    id TEXT PRIMARY KEY,
    resource_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    next_seq INTEGER NOT NULL DEFAULT 1,
    messages INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS memory_threads_resource ON memory_threads(resource_id, updated_at);
CREATE TABLE IF NOT EXISTS memory_messages (
    id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    resource_id TEXT,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS memory_messages_thread ON memory_messages(thread_id, seq);
CREATE TABLE IF NOT EXISTS memory_working (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    expires_at INTEGER,
    accessed_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memory_working_expiry ON memory_working(expires_at)
    WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS memory_working_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    entries INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO memory_working_totals (id, entries, bytes) VALUES (1, 0, 0);
";

/// What a handle with caps adds on its own connection: the LRU index (shared, kept once
/// created) and triggers keeping the totals exact for its writes (temporary: a handle without
/// caps pays for neither).
const CAPS: &str = "
CREATE INDEX IF NOT EXISTS memory_working_lru ON memory_working(accessed_at);
CREATE TEMP TRIGGER IF NOT EXISTS memory_working_insert AFTER INSERT ON main.memory_working BEGIN
    UPDATE memory_working_totals SET entries = entries + 1, bytes = bytes + NEW.bytes WHERE id = 1;
END;
CREATE TEMP TRIGGER IF NOT EXISTS memory_working_delete AFTER DELETE ON main.memory_working BEGIN
    UPDATE memory_working_totals SET entries = entries - 1, bytes = bytes - OLD.bytes WHERE id = 1;
END;
CREATE TEMP TRIGGER IF NOT EXISTS memory_working_resize AFTER UPDATE OF bytes ON main.memory_working BEGIN
    UPDATE memory_working_totals SET bytes = bytes - OLD.bytes + NEW.bytes WHERE id = 1;
END;
UPDATE memory_working_totals SET
    entries = (SELECT count(*) FROM memory_working),
    bytes = (SELECT coalesce(sum(bytes), 0) FROM memory_working)
WHERE id = 1;
";

/// How often a handle deletes expired rows while writing.
const PURGE_EVERY: Duration = Duration::from_secs(1);

/// Memory on SQLite. Built by [`super::Memory::sqlite`]; use it directly to share one backend
/// between several `Memory` values.
pub struct SqliteMemory {
    conn: Mutex<Conn>,
    path: String,
    options: MemoryOptions,
}

struct Conn {
    conn: Connection,
    /// Last access stamp given out (µs), so stamps of one handle are strictly increasing.
    last_stamp: i64,
    last_purge: Option<Instant>,
    /// Reads not yet written to `accessed_at` (handles with caps): (scope, key) → stamp. They
    /// are written at the start of this handle's next write transaction, before any eviction
    /// decision, so a read costs no transaction of its own.
    touches: HashMap<(String, String), i64>,
}

/// Pending reads written in a transaction of their own once this many have piled up.
const MAX_PENDING_TOUCHES: usize = 1024;

impl Conn {
    /// Writes the pending reads' stamps inside `tx`.
    fn flush_touches(
        touches: &mut HashMap<(String, String), i64>,
        tx: &rusqlite::Transaction<'_>,
    ) -> rusqlite::Result<()> {
        if touches.is_empty() {
            return Ok(());
        }
        let mut stmt = tx.prepare_cached(
            "UPDATE memory_working SET accessed_at = ?3
             WHERE scope = ?1 AND key = ?2 AND accessed_at < ?3",
        )?;
        for ((scope, key), stamp) in touches.drain() {
            stmt.execute(params![scope, key, stamp])?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for SqliteMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteMemory")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SqliteMemory {
    /// Opens (or creates) memory tables in a SQLite file.
    pub fn open(path: impl AsRef<Path>, options: MemoryOptions) -> Result<Self, MemoryError> {
        let shown = path.as_ref().display().to_string();
        let conn = Connection::open(path.as_ref()).map_err(|e| err(&shown, e))?;
        Self::init(conn, shown, options, true)
    }

    /// A private in-memory database.
    pub fn open_in_memory(options: MemoryOptions) -> Result<Self, MemoryError> {
        let conn = Connection::open_in_memory().map_err(|e| err(":memory:", e))?;
        Self::init(conn, ":memory:".into(), options, false)
    }

    fn init(
        conn: Connection,
        path: String,
        options: MemoryOptions,
        wal: bool,
    ) -> Result<Self, MemoryError> {
        let e = |x| err(&path, x);
        conn.busy_timeout(Duration::from_secs(5)).map_err(e)?;
        if wal {
            let _mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(e)?;
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL;")
            .map_err(e)?;
        let caps = if options.has_caps() { CAPS } else { "" };
        conn.execute_batch(&format!("BEGIN IMMEDIATE;{SCHEMA}{caps}COMMIT;"))
            .map_err(e)?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM memory_meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(e)?;
        match version.as_deref().map(str::parse::<i64>) {
            None => {
                conn.execute(
                    "INSERT OR IGNORE INTO memory_meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )
                .map_err(e)?;
            }
            Some(Ok(v)) if v <= SCHEMA_VERSION => {}
            Some(other) => {
                return Err(MemoryError::Config(format!(
                    "memory tables in `{path}` have schema version {other:?}, newer than this build supports ({SCHEMA_VERSION})"
                )));
            }
        }
        Ok(Self {
            conn: Mutex::new(Conn {
                conn,
                last_stamp: 0,
                last_purge: None,
                touches: HashMap::new(),
            }),
            path,
            options,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn err(&self, e: rusqlite::Error) -> MemoryError {
        err(&self.path, e)
    }

    fn expiry(&self, ttl: Option<Duration>) -> Option<i64> {
        ttl.or(self.options.default_ttl)
            .map(|t| now_ms().saturating_add(t.as_millis().min(i64::MAX as u128) as i64))
    }

    /// Writes `value` under (scope, key) inside an open transaction, then enforces the caps.
    fn write_locked(
        &self,
        c: &mut Conn,
        scope: &str,
        key: &str,
        text: &str,
        expires_at: Option<i64>,
    ) -> Result<(), MemoryError> {
        let bytes = (key.len() + text.len()) as u64;
        if let Some(max) = self.options.max_bytes
            && bytes > max
        {
            return Err(MemoryError::TooLarge {
                key: key.to_owned(),
                bytes,
                max,
            });
        }
        let stamp = next_stamp(c);
        let now = now_ms();
        let purge = c.last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY);
        if purge {
            c.last_purge = Some(Instant::now());
        }
        let tx = c.conn.transaction().map_err(|e| err(&self.path, e))?;
        Conn::flush_touches(&mut c.touches, &tx).map_err(|e| err(&self.path, e))?;
        if purge {
            tx.prepare_cached(
                "DELETE FROM memory_working WHERE expires_at IS NOT NULL AND expires_at <= ?1",
            )
            .and_then(|mut s| s.execute([now]))
            .map_err(|e| err(&self.path, e))?;
        }
        tx.prepare_cached(
            "INSERT INTO memory_working (scope, key, value, bytes, expires_at, accessed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, bytes = excluded.bytes,
                 expires_at = excluded.expires_at, accessed_at = excluded.accessed_at",
        )
        .and_then(|mut s| s.execute(params![scope, key, text, bytes as i64, expires_at, stamp]))
        .map_err(|e| err(&self.path, e))?;
        if self.options.has_caps() {
            self.evict(&tx, scope, key, now, !purge)?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Deletes least recently used rows (never the one just written) until the caps hold.
    fn evict(
        &self,
        tx: &rusqlite::Transaction<'_>,
        scope: &str,
        key: &str,
        now: i64,
        mut may_purge: bool,
    ) -> Result<(), MemoryError> {
        let max_entries = self.options.max_entries.map_or(i64::MAX, |m| m as i64);
        let max_bytes = self.options.max_bytes.map_or(i64::MAX, |m| m as i64);
        loop {
            let (entries, bytes): (i64, i64) = tx
                .prepare_cached("SELECT entries, bytes FROM memory_working_totals WHERE id = 1")
                .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
                .map_err(|e| self.err(e))?;
            if entries <= max_entries && bytes <= max_bytes {
                return Ok(());
            }
            if may_purge {
                // Expired rows go before live ones.
                may_purge = false;
                let n = tx
                    .prepare_cached(
                        "DELETE FROM memory_working WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                    )
                    .and_then(|mut s| s.execute([now]))
                    .map_err(|e| self.err(e))?;
                if n > 0 {
                    continue;
                }
            }
            let victim: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT scope, key FROM memory_working
                     WHERE NOT (scope = ?1 AND key = ?2) ORDER BY accessed_at LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row([scope, key], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(|e| self.err(e))?;
            let Some((vs, vk)) = victim else {
                return Ok(());
            };
            tracing::debug!(scope = %vs, key = %vk, entries, bytes, "memory: evicting least recently used key");
            tx.prepare_cached("DELETE FROM memory_working WHERE scope = ?1 AND key = ?2")
                .and_then(|mut s| s.execute([&vs, &vk]))
                .map_err(|e| self.err(e))?;
        }
    }

    fn get_locked(
        &self,
        c: &mut Conn,
        scope: &str,
        key: &str,
    ) -> Result<Option<String>, MemoryError> {
        let now = now_ms();
        let value: Option<String> = c
            .conn
            .prepare_cached(
                "SELECT value FROM memory_working
                 WHERE scope = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
            )
            .and_then(|mut s| {
                s.query_row(params![scope, key, now], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        if value.is_some() && self.options.has_caps() {
            let stamp = next_stamp(c);
            c.touches.insert((scope.to_owned(), key.to_owned()), stamp);
            if c.touches.len() >= MAX_PENDING_TOUCHES {
                self.flush_pending(c)?;
            }
        }
        Ok(value)
    }

    /// Writes pending reads in a transaction of their own.
    fn flush_pending(&self, c: &mut Conn) -> Result<(), MemoryError> {
        if c.touches.is_empty() {
            return Ok(());
        }
        let tx = c.conn.transaction().map_err(|e| err(&self.path, e))?;
        Conn::flush_touches(&mut c.touches, &tx).map_err(|e| err(&self.path, e))?;
        tx.commit().map_err(|e| self.err(e))
    }
}

impl Drop for SqliteMemory {
    fn drop(&mut self) {
        let mut c = self.lock();
        if let Err(e) = self.flush_pending(&mut c) {
            tracing::debug!(error = %e, "memory: could not record the last reads for LRU");
        }
    }
}

#[async_trait]
impl MemoryBackend for SqliteMemory {
    async fn get(&self, scope: &str, key: &str) -> Result<Option<Value>, MemoryError> {
        let text = {
            let mut c = self.lock();
            self.get_locked(&mut c, scope, key)?
        };
        text.map(|t| decode(&t, scope, key)).transpose()
    }

    async fn set(
        &self,
        scope: &str,
        key: &str,
        value: &Value,
        ttl: Option<Duration>,
    ) -> Result<(), MemoryError> {
        let text = value.to_string();
        let expires = self.expiry(ttl);
        let mut c = self.lock();
        self.write_locked(&mut c, scope, key, &text, expires)
    }

    async fn merge(
        &self,
        scope: &str,
        key: &str,
        patch: &Value,
        ttl: Option<Duration>,
    ) -> Result<Value, MemoryError> {
        let expires = self.expiry(ttl);
        let mut c = self.lock();
        // One handle holds the connection for the read and the write; another process could
        // write in between only if it shares the file, and then the last writer wins.
        let current = self.get_locked(&mut c, scope, key)?;
        let mut value = match current {
            Some(t) => decode(&t, scope, key)?,
            None => Value::Null,
        };
        merge_patch(&mut value, patch);
        self.write_locked(&mut c, scope, key, &value.to_string(), expires)?;
        Ok(value)
    }

    async fn delete(&self, scope: &str, key: &str) -> Result<bool, MemoryError> {
        let now = now_ms();
        let c = self.lock();
        let live: Option<Option<i64>> = c
            .conn
            .prepare_cached(
                "DELETE FROM memory_working WHERE scope = ?1 AND key = ?2 RETURNING expires_at",
            )
            .and_then(|mut s| s.query_row([scope, key], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        Ok(matches!(live, Some(exp) if exp.is_none_or(|t| t > now)))
    }

    async fn all(&self, scope: &str) -> Result<Map<String, Value>, MemoryError> {
        let now = now_ms();
        let rows: Vec<(String, String)> = {
            let c = self.lock();
            let mut stmt = c
                .conn
                .prepare_cached(
                    "SELECT key, value FROM memory_working
                     WHERE scope = ?1 AND (expires_at IS NULL OR expires_at > ?2) ORDER BY key",
                )
                .map_err(|e| self.err(e))?;
            stmt.query_map(params![scope, now], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(|e| self.err(e))?
        };
        rows.into_iter()
            .map(|(k, t)| decode(&t, scope, &k).map(|v| (k, v)))
            .collect()
    }

    async fn clear(&self, scope: &str) -> Result<u64, MemoryError> {
        let now = now_ms();
        let c = self.lock();
        let expiries: Vec<Option<i64>> = {
            let mut stmt = c
                .conn
                .prepare_cached("DELETE FROM memory_working WHERE scope = ?1 RETURNING expires_at")
                .map_err(|e| self.err(e))?;
            stmt.query_map([scope], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(|e| self.err(e))?
        };
        Ok(expiries
            .into_iter()
            .filter(|e| e.is_none_or(|t| t > now))
            .count() as u64)
    }

    async fn append(&self, messages: &[StoredMessage]) -> Result<(), MemoryError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut encoded = Vec::with_capacity(messages.len());
        for m in messages {
            let content =
                serde_json::to_string(&m.message.content).map_err(|e| MemoryError::Encode {
                    key: m.id.clone(),
                    message: e.to_string(),
                })?;
            encoded.push(content);
        }
        let now = now_ms();
        let mut c = self.lock();
        let tx = c.conn.transaction().map_err(|e| self.err(e))?;
        let mut touched: Vec<&str> = Vec::new();
        for (m, content) in messages.iter().zip(&encoded) {
            let thread = m.thread.as_str();
            tx.prepare_cached(
                "INSERT INTO memory_threads (id, resource_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at,
                     resource_id = COALESCE(memory_threads.resource_id, excluded.resource_id)",
            )
            .and_then(|mut s| s.execute(params![thread, m.resource, now]))
            .map_err(|e| err(&self.path, e))?;
            let inserted = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO memory_messages (id, thread_id, resource_id, seq, role, content, created_at)
                     SELECT ?1, ?2, ?3, next_seq, ?4, ?5, ?6 FROM memory_threads WHERE id = ?2",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        m.id,
                        thread,
                        m.resource,
                        role_str(m.message.role),
                        content,
                        m.created_at
                    ])
                })
                .map_err(|e| err(&self.path, e))?;
            if inserted > 0 {
                tx.prepare_cached(
                    "UPDATE memory_threads SET next_seq = next_seq + 1, messages = messages + 1 WHERE id = ?1",
                )
                .and_then(|mut s| s.execute([thread]))
                .map_err(|e| err(&self.path, e))?;
            }
            if !touched.contains(&thread) {
                touched.push(thread);
            }
        }
        if let Some(max) = self.options.max_messages_per_thread {
            for thread in touched {
                let n = tx
                    .prepare_cached(
                        "DELETE FROM memory_messages WHERE thread_id = ?1 AND seq <=
                           (SELECT next_seq - 1 - ?2 FROM memory_threads WHERE id = ?1)",
                    )
                    .and_then(|mut s| s.execute(params![thread, max as i64]))
                    .map_err(|e| err(&self.path, e))?;
                if n > 0 {
                    tx.prepare_cached(
                        "UPDATE memory_threads SET messages = messages - ?2 WHERE id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![thread, n as i64]))
                    .map_err(|e| err(&self.path, e))?;
                }
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    async fn last_messages(
        &self,
        thread: &str,
        n: usize,
    ) -> Result<Vec<StoredMessage>, MemoryError> {
        type Row = (String, Option<String>, String, String, i64);
        let rows: Vec<Row> = {
            let c = self.lock();
            let mut stmt = c
                .conn
                .prepare_cached(
                    "SELECT id, resource_id, role, content, created_at FROM memory_messages
                     WHERE thread_id = ?1 ORDER BY seq DESC LIMIT ?2",
                )
                .map_err(|e| self.err(e))?;
            stmt.query_map(params![thread, n.min(i64::MAX as usize) as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?
        };
        let mut out = Vec::with_capacity(rows.len());
        for (id, resource, role, content, created_at) in rows.into_iter().rev() {
            let place = || format!("thread {thread} message {id}");
            let role = parse_role(&role).ok_or_else(|| MemoryError::Decode {
                place: place(),
                message: format!("unknown role {role:?}"),
            })?;
            let content = serde_json::from_str(&content).map_err(|e| MemoryError::Decode {
                place: place(),
                message: e.to_string(),
            })?;
            out.push(StoredMessage {
                id,
                thread: thread.to_owned(),
                resource,
                message: Message { role, content },
                created_at,
            });
        }
        Ok(out)
    }

    async fn thread(&self, thread: &str) -> Result<Option<ThreadInfo>, MemoryError> {
        let c = self.lock();
        c.conn
            .prepare_cached(
                "SELECT id, resource_id, messages, created_at, updated_at FROM memory_threads WHERE id = ?1",
            )
            .and_then(|mut s| s.query_row([thread], thread_row).optional())
            .map_err(|e| self.err(e))
    }

    async fn threads(&self, resource: &str) -> Result<Vec<ThreadInfo>, MemoryError> {
        let c = self.lock();
        let mut stmt = c
            .conn
            .prepare_cached(
                "SELECT id, resource_id, messages, created_at, updated_at FROM memory_threads
                 WHERE resource_id = ?1 ORDER BY updated_at DESC, id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([resource], thread_row)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))
    }

    async fn delete_thread(&self, thread: &str) -> Result<bool, MemoryError> {
        let mut c = self.lock();
        let tx = c.conn.transaction().map_err(|e| self.err(e))?;
        let n = tx
            .execute("DELETE FROM memory_threads WHERE id = ?1", [thread])
            .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM memory_messages WHERE thread_id = ?1", [thread])
            .map_err(|e| self.err(e))?;
        tx.execute(
            "DELETE FROM memory_working WHERE scope = ?1",
            [super::Scope::Thread(thread.to_owned()).key()],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n > 0)
    }
}

fn thread_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ThreadInfo> {
    Ok(ThreadInfo {
        id: r.get(0)?,
        resource: r.get(1)?,
        messages: r.get::<_, i64>(2)?.max(0) as u64,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

fn next_stamp(c: &mut Conn) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    c.last_stamp = now.max(c.last_stamp + 1);
    c.last_stamp
}

fn now_ms() -> i64 {
    super::now_ms()
}

fn decode(text: &str, scope: &str, key: &str) -> Result<Value, MemoryError> {
    serde_json::from_str(text).map_err(|e| MemoryError::Decode {
        place: format!("{scope}/{key}"),
        message: e.to_string(),
    })
}

pub(crate) fn role_str(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

pub(crate) fn parse_role(s: &str) -> Option<Role> {
    Some(match s {
        "system" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        _ => return None,
    })
}

fn err(path: &str, e: rusqlite::Error) -> MemoryError {
    MemoryError::Sqlite {
        path: path.to_owned(),
        message: e.to_string(),
    }
}
