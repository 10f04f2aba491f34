//! Memory on Redis (feature `redis`).
//!
//! Layout, under a prefix `P`:
//! - `P:wm:<len(scope)>:<scope>:<key>`: a working-memory value (JSON string), with Redis' own
//!   expiry for its TTL;
//! - `P:wm:idx:<scope>`: the set of a scope's keys; `P:wm:meta`: per value key, its size, scope
//!   set and key; `P:wm:lru`: value keys by last access (a Redis-side counter, so every client
//!   agrees on the order); `P:wm:exp`: value keys by expiry time; `P:wm:totals`: entries and
//!   bytes;
//! - `P:thread:<id>`: a thread's metadata; `P:thread:<id>:msgs`: its messages (a list of JSON);
//!   `P:thread:<id>:ids`: the ids ever stored (appends are idempotent);
//!   `P:resource:<id>:threads`: a resource's threads by last update.
//!
//! Every write is one Lua script, so accounting and eviction are atomic. A handle without caps
//! writes only the value and the scope index (Redis expires values itself); accounting and LRU
//! order are kept by handles with caps, so give every handle of one prefix the same options. Scripts touch the keys
//! of evicted entries, which they cannot declare in advance: use a single Redis server (or a
//! primary with replicas), not a cluster.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde_json::{Map, Value};

use super::{
    MemoryBackend, MemoryError, MemoryOptions, Scope, StoredMessage, ThreadInfo, merge_patch,
    now_ms,
};

/// Removes one entry and its accounting. `forget(vkey)` returns 1 when the value still existed.
const FORGET: &str = r"
local function forget(meta, lru, exp, totals, vkey)
  local m = redis.call('HGET', meta, vkey)
  local live = redis.call('DEL', vkey)
  if m then
    local o = cjson.decode(m)
    redis.call('HDEL', meta, vkey)
    redis.call('HINCRBY', totals, 'entries', -1)
    redis.call('HINCRBY', totals, 'bytes', -o.b)
    redis.call('SREM', o.i, o.k)
  end
  redis.call('ZREM', lru, vkey)
  redis.call('ZREM', exp, vkey)
  return live
end
";

/// KEYS: value, scope index, meta, lru, exp, totals, clock.
/// ARGV: value, ttl ms (0 = none), key, bytes, max entries (0 = none), max bytes (0 = none),
/// now ms, expected old value or '' for none (compare-and-set, used by merge), cas flag.
const SET: &str = r"
local vkey, idx, meta, lru, exp, totals, clock = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local value, ttl, key, bytes = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local max_entries, max_bytes, now = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if ARGV[9] == '1' then
  local cur = redis.call('GET', vkey)
  if (cur or '') ~= ARGV[8] then return 0 end
end
-- Expired entries go first (their values are gone already; drop their accounting).
local expired = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 100)
for _, v in ipairs(expired) do
  if v ~= vkey then forget(meta, lru, exp, totals, v) end
end
local old = redis.call('HGET', meta, vkey)
if old then
  redis.call('HINCRBY', totals, 'bytes', bytes - cjson.decode(old).b)
else
  redis.call('HINCRBY', totals, 'entries', 1)
  redis.call('HINCRBY', totals, 'bytes', bytes)
end
redis.call('HSET', meta, vkey, cjson.encode({b = bytes, i = idx, k = key}))
if ttl > 0 then
  redis.call('SET', vkey, value, 'PX', ttl)
  redis.call('ZADD', exp, now + ttl, vkey)
else
  redis.call('SET', vkey, value)
  redis.call('ZREM', exp, vkey)
end
redis.call('SADD', idx, key)
redis.call('ZADD', lru, redis.call('INCR', clock), vkey)
if max_entries > 0 or max_bytes > 0 then
  while true do
    local e = tonumber(redis.call('HGET', totals, 'entries') or '0')
    local b = tonumber(redis.call('HGET', totals, 'bytes') or '0')
    if (max_entries == 0 or e <= max_entries) and (max_bytes == 0 or b <= max_bytes) then break end
    local head = redis.call('ZRANGE', lru, 0, 1)
    local victim = head[1]
    if victim == vkey then victim = head[2] end
    if not victim then break end
    forget(meta, lru, exp, totals, victim)
  end
end
return 1
";

/// The write of a handle without caps: KEYS: value, scope index; ARGV: value, ttl ms (0 =
/// none), key, expected old value, cas flag.
const SET_PLAIN: &str = r"
if ARGV[5] == '1' then
  local cur = redis.call('GET', KEYS[1])
  if (cur or '') ~= ARGV[4] then return 0 end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('SADD', KEYS[2], ARGV[3])
return 1
";

/// KEYS: value, lru, clock. Reads a value and marks it used.
const TOUCH: &str = r"
local v = redis.call('GET', KEYS[1])
if v then redis.call('ZADD', KEYS[2], 'XX', redis.call('INCR', KEYS[3]), KEYS[1]) end
return v
";

/// KEYS: meta, lru, exp, totals; ARGV: value keys. Returns how many were live.
const DELETE: &str = r"
local n = 0
for _, v in ipairs(ARGV) do n = n + forget(KEYS[1], KEYS[2], KEYS[3], KEYS[4], v) end
return n
";

/// KEYS: thread meta, messages, ids. ARGV: now, resource or '', max messages (0 = none), key
/// prefix, thread id, then id/json pairs. Returns the thread's length.
const APPEND: &str = r"
local meta, msgs, ids = KEYS[1], KEYS[2], KEYS[3]
local now, resource, max, prefix, thread = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
if redis.call('EXISTS', meta) == 0 then
  redis.call('HSET', meta, 'created_at', now)
end
redis.call('HSET', meta, 'updated_at', now)
if resource ~= '' and not redis.call('HGET', meta, 'resource') then
  redis.call('HSET', meta, 'resource', resource)
end
local r = redis.call('HGET', meta, 'resource')
if r then redis.call('ZADD', prefix .. ':resource:' .. r .. ':threads', now, thread) end
local i = 6
while i < #ARGV do
  if redis.call('SADD', ids, ARGV[i]) == 1 then redis.call('RPUSH', msgs, ARGV[i + 1]) end
  i = i + 2
end
if max > 0 then redis.call('LTRIM', msgs, -max, -1) end
return redis.call('LLEN', msgs)
";

/// Memory on a Redis server. Built by [`super::Memory::redis`].
pub struct RedisMemory {
    /// Reconnects by itself after the server restarts or the connection drops.
    conn: ConnectionManager,
    prefix: String,
    options: MemoryOptions,
    set: Script,
    set_plain: Script,
    touch: Script,
    delete: Script,
    append: Script,
}

impl std::fmt::Debug for RedisMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMemory")
            .field("prefix", &self.prefix)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn rerr(e: redis::RedisError) -> MemoryError {
    MemoryError::Redis(e.to_string())
}

impl RedisMemory {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379/0`); all keys start with `prefix`.
    pub async fn connect(
        url: &str,
        prefix: &str,
        options: MemoryOptions,
    ) -> Result<Self, MemoryError> {
        let client = redis::Client::open(url).map_err(rerr)?;
        // Few quick retries: a wrong URL fails in well under a second, and a later dropped
        // connection is re-established on the next command anyway.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(Duration::from_secs(5)));
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(rerr)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(rerr)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            options,
            set: Script::new(&format!("{FORGET}{SET}")),
            set_plain: Script::new(SET_PLAIN),
            touch: Script::new(TOUCH),
            delete: Script::new(&format!("{FORGET}{DELETE}")),
            append: Script::new(APPEND),
        })
    }

    fn k(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    fn vkey(&self, scope: &str, key: &str) -> String {
        self.k(&format!("wm:{}:{scope}:{key}", scope.len()))
    }

    fn idx(&self, scope: &str) -> String {
        self.k(&format!("wm:idx:{scope}"))
    }

    fn thread_key(&self, thread: &str) -> String {
        self.k(&format!("thread:{thread}"))
    }

    fn resource_index(&self, resource: &str) -> String {
        self.k(&format!("resource:{resource}:threads"))
    }

    async fn write(
        &self,
        scope: &str,
        key: &str,
        text: &str,
        ttl: Option<Duration>,
        expect: Option<&str>,
    ) -> Result<bool, MemoryError> {
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
        let ttl_ms = ttl
            .or(self.options.default_ttl)
            .map_or(0, |t| (t.as_millis() as u64).max(1));
        let mut conn = self.conn.clone();
        if !self.options.has_caps() {
            let ok: i64 = self
                .set_plain
                .key(self.vkey(scope, key))
                .key(self.idx(scope))
                .arg(text)
                .arg(ttl_ms)
                .arg(key)
                .arg(expect.unwrap_or(""))
                .arg(if expect.is_some() { "1" } else { "0" })
                .invoke_async(&mut conn)
                .await
                .map_err(rerr)?;
            return Ok(ok == 1);
        }
        let ok: i64 = self
            .set
            .key(self.vkey(scope, key))
            .key(self.idx(scope))
            .key(self.k("wm:meta"))
            .key(self.k("wm:lru"))
            .key(self.k("wm:exp"))
            .key(self.k("wm:totals"))
            .key(self.k("wm:clock"))
            .arg(text)
            .arg(ttl_ms)
            .arg(key)
            .arg(bytes)
            .arg(self.options.max_entries.unwrap_or(0))
            .arg(self.options.max_bytes.unwrap_or(0))
            .arg(now_ms())
            .arg(expect.unwrap_or(""))
            .arg(if expect.is_some() { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await
            .map_err(rerr)?;
        Ok(ok == 1)
    }

    async fn read(&self, scope: &str, key: &str) -> Result<Option<String>, MemoryError> {
        let mut conn = self.conn.clone();
        let vkey = self.vkey(scope, key);
        if self.options.has_caps() {
            self.touch
                .key(vkey)
                .key(self.k("wm:lru"))
                .key(self.k("wm:clock"))
                .invoke_async(&mut conn)
                .await
                .map_err(rerr)
        } else {
            conn.get(vkey).await.map_err(rerr)
        }
    }

    async fn forget(&self, vkeys: &[String]) -> Result<i64, MemoryError> {
        if vkeys.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        let mut inv = self.delete.prepare_invoke();
        inv.key(self.k("wm:meta"))
            .key(self.k("wm:lru"))
            .key(self.k("wm:exp"))
            .key(self.k("wm:totals"));
        for v in vkeys {
            inv.arg(v);
        }
        inv.invoke_async(&mut conn).await.map_err(rerr)
    }

    async fn info(&self, thread: &str) -> Result<Option<ThreadInfo>, MemoryError> {
        let mut conn = self.conn.clone();
        let meta: std::collections::HashMap<String, String> =
            conn.hgetall(self.thread_key(thread)).await.map_err(rerr)?;
        if meta.is_empty() {
            return Ok(None);
        }
        let len: u64 = conn
            .llen(format!("{}:msgs", self.thread_key(thread)))
            .await
            .map_err(rerr)?;
        let num = |k: &str| meta.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Some(ThreadInfo {
            id: thread.to_owned(),
            resource: meta.get("resource").cloned(),
            messages: len,
            created_at: num("created_at"),
            updated_at: num("updated_at"),
        }))
    }
}

fn decode(text: &str, place: &str) -> Result<Value, MemoryError> {
    serde_json::from_str(text).map_err(|e| MemoryError::Decode {
        place: place.to_owned(),
        message: e.to_string(),
    })
}

#[async_trait]
impl MemoryBackend for RedisMemory {
    async fn get(&self, scope: &str, key: &str) -> Result<Option<Value>, MemoryError> {
        self.read(scope, key)
            .await?
            .map(|t| decode(&t, &format!("{scope}/{key}")))
            .transpose()
    }

    async fn set(
        &self,
        scope: &str,
        key: &str,
        value: &Value,
        ttl: Option<Duration>,
    ) -> Result<(), MemoryError> {
        self.write(scope, key, &value.to_string(), ttl, None)
            .await
            .map(|_| ())
    }

    async fn merge(
        &self,
        scope: &str,
        key: &str,
        patch: &Value,
        ttl: Option<Duration>,
    ) -> Result<Value, MemoryError> {
        // Compare-and-set: retried if another client changed the key in between.
        for _ in 0..32 {
            let current = self.read(scope, key).await?;
            let mut value = match &current {
                Some(t) => decode(t, &format!("{scope}/{key}"))?,
                None => Value::Null,
            };
            merge_patch(&mut value, patch);
            let expect = current.as_deref().unwrap_or("");
            if self
                .write(scope, key, &value.to_string(), ttl, Some(expect))
                .await?
            {
                return Ok(value);
            }
        }
        Err(MemoryError::Redis(format!(
            "merge of `{scope}/{key}` lost 32 races with other writers"
        )))
    }

    async fn delete(&self, scope: &str, key: &str) -> Result<bool, MemoryError> {
        Ok(self.forget(&[self.vkey(scope, key)]).await? > 0)
    }

    async fn all(&self, scope: &str) -> Result<Map<String, Value>, MemoryError> {
        let mut conn = self.conn.clone();
        let mut keys: Vec<String> = conn.smembers(self.idx(scope)).await.map_err(rerr)?;
        keys.sort();
        if keys.is_empty() {
            return Ok(Map::new());
        }
        let vkeys: Vec<String> = keys.iter().map(|k| self.vkey(scope, k)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&vkeys)
            .query_async(&mut conn)
            .await
            .map_err(rerr)?;
        let mut out = Map::new();
        let mut gone = Vec::new();
        for ((k, v), vk) in keys.into_iter().zip(values).zip(vkeys) {
            match v {
                Some(t) => {
                    let value = decode(&t, &format!("{scope}/{k}"))?;
                    out.insert(k, value);
                }
                None => gone.push(vk),
            }
        }
        // Expired values: drop their accounting now.
        self.forget(&gone).await?;
        Ok(out)
    }

    async fn clear(&self, scope: &str) -> Result<u64, MemoryError> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = conn.smembers(self.idx(scope)).await.map_err(rerr)?;
        let vkeys: Vec<String> = keys.iter().map(|k| self.vkey(scope, k)).collect();
        Ok(self.forget(&vkeys).await?.max(0) as u64)
    }

    async fn append(&self, messages: &[StoredMessage]) -> Result<(), MemoryError> {
        // One script per thread, in the order the threads first appear.
        let mut threads: Vec<&str> = Vec::new();
        for m in messages {
            if !threads.contains(&m.thread.as_str()) {
                threads.push(&m.thread);
            }
        }
        let mut conn = self.conn.clone();
        for thread in threads {
            let batch: Vec<&StoredMessage> =
                messages.iter().filter(|m| m.thread == thread).collect();
            let resource = batch.iter().find_map(|m| m.resource.clone());
            let tk = self.thread_key(thread);
            let mut inv = self.append.prepare_invoke();
            inv.key(&tk)
                .key(format!("{tk}:msgs"))
                .key(format!("{tk}:ids"))
                .arg(now_ms())
                .arg(resource.as_deref().unwrap_or(""))
                .arg(self.options.max_messages_per_thread.unwrap_or(0))
                .arg(&self.prefix)
                .arg(thread);
            for m in batch {
                let json = serde_json::to_string(m).map_err(|e| MemoryError::Encode {
                    key: m.id.clone(),
                    message: e.to_string(),
                })?;
                inv.arg(&m.id).arg(json);
            }
            let _: i64 = inv.invoke_async(&mut conn).await.map_err(rerr)?;
        }
        Ok(())
    }

    async fn last_messages(
        &self,
        thread: &str,
        n: usize,
    ) -> Result<Vec<StoredMessage>, MemoryError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let start = -(n.min(i64::MAX as usize) as isize);
        let items: Vec<String> = conn
            .lrange(format!("{}:msgs", self.thread_key(thread)), start, -1)
            .await
            .map_err(rerr)?;
        items
            .iter()
            .map(|t| {
                serde_json::from_str(t).map_err(|e| MemoryError::Decode {
                    place: format!("thread {thread}"),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    async fn thread(&self, thread: &str) -> Result<Option<ThreadInfo>, MemoryError> {
        self.info(thread).await
    }

    async fn threads(&self, resource: &str) -> Result<Vec<ThreadInfo>, MemoryError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn
            .zrevrange(self.resource_index(resource), 0, -1)
            .await
            .map_err(rerr)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(info) = self.info(&id).await? {
                out.push(info);
            }
        }
        Ok(out)
    }

    async fn delete_thread(&self, thread: &str) -> Result<bool, MemoryError> {
        let info = self.info(thread).await?;
        let mut conn = self.conn.clone();
        let tk = self.thread_key(thread);
        let n: i64 = conn
            .del(&[tk.clone(), format!("{tk}:msgs"), format!("{tk}:ids")])
            .await
            .map_err(rerr)?;
        if let Some(r) = info.as_ref().and_then(|i| i.resource.as_deref()) {
            let _: i64 = conn
                .zrem(self.resource_index(r), thread)
                .await
                .map_err(rerr)?;
        }
        self.clear(&Scope::Thread(thread.to_owned()).key()).await?;
        Ok(n > 0)
    }
}
