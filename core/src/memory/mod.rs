//! Memory for agents: threads of messages (an agent reads the last N back as history) and
//! working memory, a JSON document per thread or per resource (a user, an account...) with
//! get / set / merge / delete per key, TTL per key and size caps with LRU eviction (by count and
//! by bytes) applied on write, with no manual prune.
//!
//! Backends: SQLite (default; its own tables, so it can share the engine's database file) and
//! Redis (feature `redis`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), miyabi::MemoryError> {
//! use miyabi::Memory;
//! use serde_json::json;
//!
//! let memory = Memory::in_memory()?;
//! let user = memory.resource("user-42");
//! user.set("last_action", json!("deploy")).await?;
//! user.merge("prefs", json!({"lang": "ja"})).await?;
//! assert_eq!(user.get("last_action").await?, Some(json!("deploy")));
//! # Ok(()) }
//! ```
//!
//! Messages are stored one row (SQLite) or one list entry (Redis) per message with a stable id,
//! so semantic recall can later add an embeddings table keyed by message id without migrating
//! the messages themselves.

mod error;
#[cfg(feature = "redis")]
mod redis;
mod sqlite;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use error::MemoryError;
#[cfg(feature = "redis")]
pub use redis::RedisMemory;
pub use sqlite::SqliteMemory;
pub(crate) use sqlite::parse_role;

use crate::model::Message;

/// Limits applied by a memory backend on every write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryOptions {
    /// TTL of a working-memory key written without its own TTL (`None`: keys live until
    /// deleted or evicted).
    pub default_ttl: Option<Duration>,
    /// Most working-memory keys kept (all scopes together); the least recently used go first.
    pub max_entries: Option<u64>,
    /// Most working-memory bytes kept (key + JSON value, all scopes together); the least
    /// recently used keys go first.
    pub max_bytes: Option<u64>,
    /// Most messages kept per thread; the oldest go first.
    pub max_messages_per_thread: Option<u64>,
}

impl MemoryOptions {
    /// No TTL, no caps.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the default TTL of working-memory keys.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// Caps the number of working-memory keys (LRU eviction).
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = Some(n);
        self
    }

    /// Caps the bytes of working memory (LRU eviction).
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// Caps the messages kept per thread (oldest dropped).
    pub fn max_messages_per_thread(mut self, n: u64) -> Self {
        self.max_messages_per_thread = Some(n);
        self
    }

    pub(crate) fn has_caps(&self) -> bool {
        self.max_entries.is_some() || self.max_bytes.is_some()
    }
}

/// A message as stored in a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Stable id (unique in the store).
    pub id: String,
    /// The thread.
    pub thread: String,
    /// The resource the thread belongs to, if any.
    pub resource: Option<String>,
    /// The message.
    pub message: Message,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// A thread's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadInfo {
    /// The thread id.
    pub id: String,
    /// The resource it belongs to, if any.
    pub resource: Option<String>,
    /// Number of messages kept.
    pub messages: u64,
    /// Creation time, ms since the Unix epoch.
    pub created_at: i64,
    /// Last append, ms since the Unix epoch.
    pub updated_at: i64,
}

/// What a working memory belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One conversation thread.
    Thread(String),
    /// A resource (user, account...) across its threads.
    Resource(String),
}

impl Scope {
    /// The scope as one string (`thread:<id>` or `resource:<id>`), as backends store it.
    pub fn key(&self) -> String {
        match self {
            Self::Thread(id) => format!("thread:{id}"),
            Self::Resource(id) => format!("resource:{id}"),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// A storage backend for [`Memory`]. Implement it to keep memory elsewhere; the crate ships
/// [`SqliteMemory`] and, with the `redis` feature, `RedisMemory`.
///
/// Working-memory operations take a scope string (see [`Scope::key`]). Every write applies the
/// backend's TTL and caps itself.
#[async_trait]
pub trait MemoryBackend: Send + Sync {
    /// A working-memory key's value, if present and not expired.
    async fn get(&self, scope: &str, key: &str) -> Result<Option<Value>, MemoryError>;
    /// Writes a key; `ttl` (or the backend's default TTL) sets when it expires.
    async fn set(
        &self,
        scope: &str,
        key: &str,
        value: &Value,
        ttl: Option<Duration>,
    ) -> Result<(), MemoryError>;
    /// Merges `patch` into a key's value (JSON merge patch, RFC 7386), creating it if missing;
    /// returns the new value.
    async fn merge(
        &self,
        scope: &str,
        key: &str,
        patch: &Value,
        ttl: Option<Duration>,
    ) -> Result<Value, MemoryError>;
    /// Deletes a key; whether it existed (and had not expired).
    async fn delete(&self, scope: &str, key: &str) -> Result<bool, MemoryError>;
    /// All live keys of a scope.
    async fn all(&self, scope: &str) -> Result<Map<String, Value>, MemoryError>;
    /// Deletes every key of a scope; how many there were.
    async fn clear(&self, scope: &str) -> Result<u64, MemoryError>;
    /// Appends messages to a thread (created on first append). Idempotent by message id: a
    /// message whose id is already stored is skipped.
    async fn append(&self, messages: &[StoredMessage]) -> Result<(), MemoryError>;
    /// The last `n` messages of a thread, oldest first.
    async fn last_messages(
        &self,
        thread: &str,
        n: usize,
    ) -> Result<Vec<StoredMessage>, MemoryError>;
    /// A thread's metadata.
    async fn thread(&self, thread: &str) -> Result<Option<ThreadInfo>, MemoryError>;
    /// The threads of a resource, most recently updated first.
    async fn threads(&self, resource: &str) -> Result<Vec<ThreadInfo>, MemoryError>;
    /// Deletes a thread, its messages and its working memory; whether it existed.
    async fn delete_thread(&self, thread: &str) -> Result<bool, MemoryError>;
}

/// Agent memory: threads of messages and working memory, on a [`MemoryBackend`]. Cheap to
/// clone.
#[derive(Clone)]
pub struct Memory {
    backend: Arc<dyn MemoryBackend>,
}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memory").finish_non_exhaustive()
    }
}

impl Memory {
    /// Memory in a SQLite file (created if missing; may be the engine's own database file:
    /// memory uses its own tables and its own connection). No TTL, no caps.
    pub fn sqlite(path: impl AsRef<std::path::Path>) -> Result<Self, MemoryError> {
        Self::sqlite_with(path, MemoryOptions::default())
    }

    /// Memory in a SQLite file with TTL and caps.
    pub fn sqlite_with(
        path: impl AsRef<std::path::Path>,
        options: MemoryOptions,
    ) -> Result<Self, MemoryError> {
        Ok(Self::from_backend(Arc::new(SqliteMemory::open(
            path, options,
        )?)))
    }

    /// Memory in a private in-memory SQLite database (tests, ephemeral agents).
    pub fn in_memory() -> Result<Self, MemoryError> {
        Self::in_memory_with(MemoryOptions::default())
    }

    /// In-memory SQLite with TTL and caps.
    pub fn in_memory_with(options: MemoryOptions) -> Result<Self, MemoryError> {
        Ok(Self::from_backend(Arc::new(SqliteMemory::open_in_memory(
            options,
        )?)))
    }

    /// Memory on a Redis server (`redis://127.0.0.1:6379/0`); keys are prefixed with `prefix`
    /// so several applications can share one database.
    #[cfg(feature = "redis")]
    pub async fn redis(
        url: &str,
        prefix: &str,
        options: MemoryOptions,
    ) -> Result<Self, MemoryError> {
        Ok(Self::from_backend(Arc::new(
            RedisMemory::connect(url, prefix, options).await?,
        )))
    }

    /// Memory on any backend.
    pub fn from_backend(backend: Arc<dyn MemoryBackend>) -> Self {
        Self { backend }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn MemoryBackend> {
        &self.backend
    }

    /// Working memory of a thread.
    pub fn thread(&self, id: impl Into<String>) -> WorkingMemory {
        self.scope(Scope::Thread(id.into()))
    }

    /// Working memory of a resource (shared by all its threads).
    pub fn resource(&self, id: impl Into<String>) -> WorkingMemory {
        self.scope(Scope::Resource(id.into()))
    }

    /// Working memory of a scope.
    pub fn scope(&self, scope: Scope) -> WorkingMemory {
        WorkingMemory {
            backend: Arc::clone(&self.backend),
            scope_key: Arc::from(scope.key()),
            scope,
        }
    }

    /// Appends messages to a thread with fresh ids; returns the ids.
    pub async fn append(
        &self,
        thread: &str,
        resource: Option<&str>,
        messages: &[Message],
    ) -> Result<Vec<String>, MemoryError> {
        let now = now_ms();
        let stored: Vec<StoredMessage> = messages
            .iter()
            .map(|m| StoredMessage {
                id: uuid::Uuid::now_v7().to_string(),
                thread: thread.to_owned(),
                resource: resource.map(str::to_owned),
                message: m.clone(),
                created_at: now,
            })
            .collect();
        self.backend.append(&stored).await?;
        Ok(stored.into_iter().map(|m| m.id).collect())
    }

    /// Appends messages with ids chosen by the caller (idempotent: known ids are skipped).
    pub async fn append_stored(&self, messages: &[StoredMessage]) -> Result<(), MemoryError> {
        self.backend.append(messages).await
    }

    /// The last `n` messages of a thread, oldest first.
    pub async fn last_messages(
        &self,
        thread: &str,
        n: usize,
    ) -> Result<Vec<StoredMessage>, MemoryError> {
        self.backend.last_messages(thread, n).await
    }

    /// A thread's metadata.
    pub async fn thread_info(&self, thread: &str) -> Result<Option<ThreadInfo>, MemoryError> {
        self.backend.thread(thread).await
    }

    /// The threads of a resource, most recently updated first.
    pub async fn threads(&self, resource: &str) -> Result<Vec<ThreadInfo>, MemoryError> {
        self.backend.threads(resource).await
    }

    /// Deletes a thread with its messages and working memory.
    pub async fn delete_thread(&self, thread: &str) -> Result<bool, MemoryError> {
        self.backend.delete_thread(thread).await
    }
}

/// The working memory of one thread or resource: a JSON document of keys.
#[derive(Clone)]
pub struct WorkingMemory {
    backend: Arc<dyn MemoryBackend>,
    scope: Scope,
    scope_key: Arc<str>,
}

impl fmt::Debug for WorkingMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkingMemory")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl WorkingMemory {
    /// What this working memory belongs to.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// A key's value, if present and not expired.
    pub async fn get(&self, key: &str) -> Result<Option<Value>, MemoryError> {
        self.backend.get(&self.scope_key, key).await
    }

    /// A key's value decoded into a Rust type.
    pub async fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, MemoryError> {
        match self.get(key).await? {
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| MemoryError::Decode {
                    place: format!("{}/{key}", self.scope_key),
                    message: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    /// Writes a key (with the backend's default TTL, if any).
    pub async fn set(&self, key: &str, value: impl Serialize) -> Result<(), MemoryError> {
        let value = to_json(key, value)?;
        self.backend.set(&self.scope_key, key, &value, None).await
    }

    /// Writes a key that expires after `ttl`.
    pub async fn set_with_ttl(
        &self,
        key: &str,
        value: impl Serialize,
        ttl: Duration,
    ) -> Result<(), MemoryError> {
        let value = to_json(key, value)?;
        self.backend
            .set(&self.scope_key, key, &value, Some(ttl))
            .await
    }

    /// Merges `patch` into a key (JSON merge patch: objects merge recursively, `null` removes
    /// a field, anything else replaces); returns the new value.
    pub async fn merge(&self, key: &str, patch: impl Serialize) -> Result<Value, MemoryError> {
        let patch = to_json(key, patch)?;
        self.backend.merge(&self.scope_key, key, &patch, None).await
    }

    /// Deletes a key; whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, MemoryError> {
        self.backend.delete(&self.scope_key, key).await
    }

    /// The whole document: every live key.
    pub async fn all(&self) -> Result<Map<String, Value>, MemoryError> {
        self.backend.all(&self.scope_key).await
    }

    /// Deletes every key; how many there were.
    pub async fn clear(&self) -> Result<u64, MemoryError> {
        self.backend.clear(&self.scope_key).await
    }
}

fn to_json(key: &str, value: impl Serialize) -> Result<Value, MemoryError> {
    serde_json::to_value(value).map_err(|e| MemoryError::Encode {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

/// JSON merge patch (RFC 7386) of `patch` into `target`.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut v = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut v, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(v, json!({"a": "z", "c": {"d": "e"}}));
        let mut v = json!([1, 2]);
        merge_patch(&mut v, &json!({"a": 1}));
        assert_eq!(v, json!({"a": 1}));
        let mut v = json!({"a": 1});
        merge_patch(&mut v, &json!("x"));
        assert_eq!(v, json!("x"));
    }
}
