//! [`CachedModel`]: a target's model calls kept in a SQLite file, keyed by the model id, the
//! whole request (messages, tools, tool choice, response format, sampling, reasoning, provider
//! options) **and the epoch** of the sample being run, so re-running an evaluation replays the
//! answers while repeats (epochs) stay real repeats. A sample whose target was answered from
//! the cache is flagged (`SampleResult::cached`), and latency and cost metrics refuse to score
//! it (its latency and cost are not the target's).

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::EvalError;
use super::cache::{CacheDb, call_key};
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
    db: CacheDb,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("path", &self.db.path())
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

    /// The key of a call: the SHA-256 (hex) of the model id, the request and the epoch.
    pub fn key(model_id: &str, request: &ModelRequest, epoch: u32) -> String {
        call_key(model_id, request, epoch)
    }

    /// The response stored under `key`.
    pub fn get(&self, key: &str) -> Result<Option<ModelResponse>, EvalError> {
        let text: Option<String> = self
            .db
            .conn()
            .query_row(
                "SELECT response FROM response_cache WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db.error(e))?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| self.db.error(e)))
            .transpose()
    }

    /// Stores a response under `key`.
    pub fn put(
        &self,
        key: &str,
        model_id: &str,
        response: &ModelResponse,
    ) -> Result<(), EvalError> {
        let text = serde_json::to_string(response).map_err(|e| self.db.error(e))?;
        let now = super::runner::unix_ms();
        self.db
            .conn()
            .execute(
                "INSERT OR REPLACE INTO response_cache (key, model, response, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![key, model_id, text, now],
            )
            .map(|_| ())
            .map_err(|e| self.db.error(e))
    }

    /// How many responses are stored.
    pub fn len(&self) -> Result<usize, EvalError> {
        self.db.count("response_cache")
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
