//! [`JudgeCache`]: a judge's answers kept in a SQLite file, keyed by a SHA-256 of the judge
//! model's id, the whole request (the prompt with the case's inputs in it) and the epoch, so
//! re-running an evaluation does not call the judge again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::EvalError;
use crate::model::ModelRequest;

/// A SQLite file (or an in-memory database) holding one cache table: what the judge cache and
/// the response cache share. Clones share the connection.
#[derive(Clone)]
pub(crate) struct CacheDb {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl CacheDb {
    /// Opens (creating when needed) the file at `path` (`None`: in memory) with `schema`.
    pub(crate) fn open(path: Option<&Path>, schema: &str) -> Result<Self, EvalError> {
        let db = |conn| Self {
            conn: Arc::new(Mutex::new(conn)),
            path: path.map(Path::to_path_buf),
        };
        let shown = || path.map_or_else(|| ":memory:".into(), |p| p.display().to_string());
        let err = |e: rusqlite::Error| EvalError::Cache {
            path: shown(),
            message: e.to_string(),
        };
        let conn = match path {
            Some(p) => {
                let conn = Connection::open(p).map_err(err)?;
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(err)?;
                conn.execute_batch("PRAGMA journal_mode=WAL;")
                    .map_err(err)?;
                conn
            }
            None => Connection::open_in_memory().map_err(err)?,
        };
        conn.execute_batch(schema).map_err(err)?;
        Ok(db(conn))
    }

    /// The file, when not in memory.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a SQLite connection half-written in a
        // way that matters here (each statement is atomic), so a poisoned lock is reused.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn error(&self, e: impl std::fmt::Display) -> EvalError {
        EvalError::Cache {
            path: self
                .path
                .as_ref()
                .map_or_else(|| ":memory:".into(), |p| p.display().to_string()),
            message: e.to_string(),
        }
    }

    /// How many rows `table` holds.
    pub(crate) fn count(&self, table: &str) -> Result<usize, EvalError> {
        self.conn()
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as usize)
            .map_err(|e| self.error(e))
    }
}

/// The key of a model call in either cache: the SHA-256 (hex) of the model id, the request and
/// the epoch.
pub(crate) fn call_key(model_id: &str, request: &ModelRequest, epoch: u32) -> String {
    let doc = json!({ "v": 1, "model": model_id, "request": request, "epoch": epoch });
    let digest = ring::digest::digest(&ring::digest::SHA256, doc.to_string().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A cache of judge answers in a SQLite file (or in memory). Cheap to clone: clones share the
/// connection. Only the answer text is stored, never a key or a header.
#[derive(Clone)]
pub struct JudgeCache {
    db: CacheDb,
}

impl std::fmt::Debug for JudgeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JudgeCache")
            .field("path", &self.db.path())
            .finish_non_exhaustive()
    }
}

/// A cached answer: the text and the finish reason the judge gave.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAnswer {
    /// The judge's answer text.
    pub text: String,
    /// Its finish reason (`stop`, `content_filter`...), as the model layer names it.
    pub finish_reason: String,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS judge_cache (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    answer TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
)";

impl JudgeCache {
    /// Opens (creating when needed) the cache file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, EvalError> {
        Ok(Self {
            db: CacheDb::open(Some(path.as_ref()), SCHEMA)?,
        })
    }

    /// A cache that lives as long as this value (and its clones).
    pub fn in_memory() -> Result<Self, EvalError> {
        Ok(Self {
            db: CacheDb::open(None, SCHEMA)?,
        })
    }

    /// The key of a judge call: the SHA-256 (hex) of the model id, the request and the epoch.
    pub fn key(model_id: &str, request: &ModelRequest, epoch: u32) -> String {
        call_key(model_id, request, epoch)
    }

    /// The answer stored under `key`.
    pub fn get(&self, key: &str) -> Result<Option<CachedAnswer>, EvalError> {
        self.db
            .conn()
            .query_row(
                "SELECT answer, finish_reason FROM judge_cache WHERE key = ?1",
                params![key],
                |row| {
                    Ok(CachedAnswer {
                        text: row.get(0)?,
                        finish_reason: row.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.db.error(e))
    }

    /// Stores an answer under `key` (replacing any).
    pub fn put(&self, key: &str, model_id: &str, answer: &CachedAnswer) -> Result<(), EvalError> {
        let now = super::runner::unix_ms();
        self.db
            .conn()
            .execute(
                "INSERT OR REPLACE INTO judge_cache (key, model, answer, finish_reason, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key, model_id, answer.text, answer.finish_reason, now],
            )
            .map(|_| ())
            .map_err(|e| self.db.error(e))
    }

    /// How many answers are stored.
    pub fn len(&self) -> Result<usize, EvalError> {
        self.db.count("judge_cache")
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> Result<bool, EvalError> {
        self.len().map(|n| n == 0)
    }
}

/// A finish reason as the model layer's serde name (`stop`, `content_filter`...).
pub(crate) fn finish_name(reason: crate::model::FinishReason) -> String {
    match serde_json::to_value(reason) {
        Ok(Value::String(s)) => s,
        _ => "other".into(),
    }
}
