//! [`JudgeCache`]: a judge's answers kept in a SQLite file, keyed by a SHA-256 of the judge
//! model's id, the whole request (the prompt with the case's inputs in it) and the epoch, so
//! re-running an evaluation does not call the judge again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::EvalError;
use crate::model::ModelRequest;

/// A cache of judge answers in a SQLite file (or in memory). Cheap to clone: clones share the
/// connection. Only the answer text is stored, never a key or a header.
#[derive(Clone)]
pub struct JudgeCache {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for JudgeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JudgeCache")
            .field("path", &self.path)
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
        let path = path.as_ref().to_path_buf();
        let err = |e: rusqlite::Error| EvalError::Cache {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode=WAL;")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Some(path),
        })
    }

    /// A cache that lives as long as this value (and its clones).
    pub fn in_memory() -> Result<Self, EvalError> {
        let err = |e: rusqlite::Error| EvalError::Cache {
            path: ":memory:".into(),
            message: e.to_string(),
        };
        let conn = Connection::open_in_memory().map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: None,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a SQLite connection half-written in a
        // way that matters here (each statement is atomic), so a poisoned lock is reused.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, e: rusqlite::Error) -> EvalError {
        EvalError::Cache {
            path: self
                .path
                .as_ref()
                .map_or_else(|| ":memory:".into(), |p| p.display().to_string()),
            message: e.to_string(),
        }
    }

    /// The key of a judge call: the SHA-256 (hex) of the model id, the request and the epoch.
    pub fn key(model_id: &str, request: &ModelRequest, epoch: u32) -> String {
        let doc = json!({ "v": 1, "model": model_id, "request": request, "epoch": epoch });
        let digest = ring::digest::digest(&ring::digest::SHA256, doc.to_string().as_bytes());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The answer stored under `key`.
    pub fn get(&self, key: &str) -> Result<Option<CachedAnswer>, EvalError> {
        self.conn()
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
            .map_err(|e| self.error(e))
    }

    /// Stores an answer under `key` (replacing any).
    pub fn put(&self, key: &str, model_id: &str, answer: &CachedAnswer) -> Result<(), EvalError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO judge_cache (key, model, answer, finish_reason, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key, model_id, answer.text, answer.finish_reason, now],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// How many answers are stored.
    pub fn len(&self) -> Result<usize, EvalError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM judge_cache", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as usize)
            .map_err(|e| self.error(e))
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
