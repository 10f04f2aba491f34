//! [`CachedModel`]: a target's model calls kept in a SQLite file, keyed by the model id, the
//! whole request (messages, tools, tool choice, response format, sampling, reasoning, provider
//! options) **and the epoch** of the sample being run, so re-running an evaluation replays the
//! answers while repeats (epochs) stay real repeats. A sample whose target was answered from
//! the cache is flagged (`SampleResult::cached`), and latency and cost metrics refuse to score
//! it (its latency and cost are not the target's).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use super::EvalError;
use crate::model::{
    ContentPart, EventStream, LanguageModel, ModelError, ModelRequest, ModelResponse, StreamEvent,
};

/// What the evaluator tells the models its target calls: the epoch of the sample, and whether
/// any answer came from a cache.
pub(crate) struct SampleScope {
    pub(crate) epoch: u32,
    pub(crate) cached: Cell<bool>,
}

tokio::task_local! {
    pub(crate) static SAMPLE: SampleScope;
}

/// A cache of model responses in a SQLite file (or in memory). Clones share the connection.
#[derive(Clone)]
pub struct ResponseCache {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS response_cache (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
)";

impl ResponseCache {
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
        let conn = Connection::open_in_memory().map_err(|e| EvalError::Cache {
            path: ":memory:".into(),
            message: e.to_string(),
        })?;
        conn.execute_batch(SCHEMA).map_err(|e| EvalError::Cache {
            path: ":memory:".into(),
            message: e.to_string(),
        })?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: None,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, e: impl std::fmt::Display) -> EvalError {
        EvalError::Cache {
            path: self
                .path
                .as_ref()
                .map_or_else(|| ":memory:".into(), |p| p.display().to_string()),
            message: e.to_string(),
        }
    }

    /// The key of a call: the SHA-256 (hex) of the model id, the request and the epoch.
    pub fn key(model_id: &str, request: &ModelRequest, epoch: u32) -> String {
        let doc = json!({ "v": 1, "model": model_id, "request": request, "epoch": epoch });
        let digest = ring::digest::digest(&ring::digest::SHA256, doc.to_string().as_bytes());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The response stored under `key`.
    pub fn get(&self, key: &str) -> Result<Option<ModelResponse>, EvalError> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT response FROM response_cache WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| self.error(e)))
            .transpose()
    }

    /// Stores a response under `key`.
    pub fn put(
        &self,
        key: &str,
        model_id: &str,
        response: &ModelResponse,
    ) -> Result<(), EvalError> {
        let text = serde_json::to_string(response).map_err(|e| self.error(e))?;
        let now = super::runner::unix_ms();
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO response_cache (key, model, response, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![key, model_id, text, now],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// How many responses are stored.
    pub fn len(&self) -> Result<usize, EvalError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM response_cache", [], |r| {
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

/// A language model whose answers are kept in a [`ResponseCache`]: give it to the agent or
/// [`ModelTarget`](super::ModelTarget) under evaluation. Inside an evaluation the key includes
/// the sample's epoch (outside one, epoch 0). A streamed call is answered whole (from the
/// cache or one `generate`) and replayed as events. Only successful answers are stored.
#[derive(Clone)]
pub struct CachedModel {
    inner: Arc<dyn LanguageModel>,
    model_id: String,
    cache: ResponseCache,
}

impl std::fmt::Debug for CachedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedModel")
            .field("model_id", &self.model_id)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl CachedModel {
    /// Caches `inner`'s answers under `model_id` (use the `"provider/model"` spec).
    pub fn new(
        inner: Arc<dyn LanguageModel>,
        model_id: impl Into<String>,
        cache: ResponseCache,
    ) -> Self {
        Self {
            inner,
            model_id: model_id.into(),
            cache,
        }
    }
}

#[async_trait]
impl LanguageModel for CachedModel {
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let epoch = SAMPLE.try_with(|s| s.epoch).unwrap_or(0);
        let key = ResponseCache::key(&self.model_id, req, epoch);
        match self.cache.get(&key) {
            Ok(Some(hit)) => {
                let _ = SAMPLE.try_with(|s| s.cached.set(true));
                return Ok(hit);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "response cache read failed; calling the model"),
        }
        let response = self.inner.generate(req).await?;
        if let Err(e) = self.cache.put(&key, &self.model_id, &response) {
            tracing::warn!(error = %e, "response cache write failed");
        }
        Ok(response)
    }

    async fn stream(&self, req: &ModelRequest) -> Result<EventStream, ModelError> {
        let r = self.generate(req).await?;
        let mut events = vec![StreamEvent::Start {
            id: r.response_id.clone(),
            model: r.model.clone(),
        }];
        let mut index = 0;
        for part in &r.content {
            match part {
                ContentPart::Text { text } => {
                    events.push(StreamEvent::TextDelta { text: text.clone() })
                }
                ContentPart::Reasoning { text, .. } => {
                    events.push(StreamEvent::ReasoningDelta { text: text.clone() })
                }
                ContentPart::ToolCall(call) => {
                    events.push(StreamEvent::ToolCallStart {
                        index,
                        id: call.id.clone(),
                        name: call.name.clone(),
                    });
                    events.push(StreamEvent::ToolCallEnd {
                        index,
                        call: call.clone(),
                    });
                    index += 1;
                }
                _ => {}
            }
        }
        events.push(StreamEvent::Usage { usage: r.usage });
        if let Some(usd) = r.cost_usd {
            events.push(StreamEvent::Cost { usd });
        }
        events.push(StreamEvent::Finish {
            reason: r.finish_reason,
            raw: r.raw_finish_reason.clone(),
        });
        Ok(Box::pin(futures::stream::iter(events.into_iter().map(Ok))))
    }
}
