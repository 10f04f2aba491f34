//! Agent and memory benchmarks (issue 4 §5). Prints one JSON line per figure:
//! `{"bench": "...", "value": ..., "unit": "..."}`.
//!
//! - framework overhead of `Agent::generate` with a zero-latency fake model: text only, and one
//!   tool round (2 model calls + 1 tool call); the fake model's own cost is measured alone and
//!   subtracted;
//! - an agent as the only step of a workflow on the in-memory engine (per run);
//! - working-memory `set` + `get` on SQLite (a WAL file), without and with caps (with caps,
//!   every read also records its use for LRU), and on Redis when built with `--features redis`
//!   and `MIYABI_TEST_REDIS_URL` is set.
//!
//! Run: `cargo bench -p miyabi --bench agent` (add `--features redis` and
//! `MIYABI_TEST_REDIS_URL=redis://127.0.0.1:6379/0` for the Redis figure).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use miyabi::model::{
    ContentPart, EventStream, FinishReason, LanguageModel, ModelError, ModelRequest, ModelResponse,
    Role, ToolCall, Usage,
};
use miyabi::{Agent, Engine, Memory, MemoryOptions, ToolContext, Workflow, tool_fn};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

fn report(name: &str, value: f64, unit: &str) {
    println!("{{\"bench\": \"{name}\", \"value\": {value:.3}, \"unit\": \"{unit}\"}}");
}

/// Answers at once: a tool call when the last message is the user's (and tools are offered),
/// text otherwise.
struct Instant0 {
    text: ModelResponse,
    call: ModelResponse,
}

impl Instant0 {
    fn new() -> Self {
        let base = ModelResponse {
            content: vec![ContentPart::text("The answer is 42.")],
            finish_reason: FinishReason::Stop,
            raw_finish_reason: None,
            usage: Usage {
                input_tokens: 12,
                output_tokens: 6,
                ..Usage::default()
            },
            cost_usd: None,
            response_id: None,
            request_id: None,
            model: None,
        };
        let mut call = base.clone();
        call.content = vec![ContentPart::ToolCall(ToolCall {
            id: "call_1".into(),
            name: "add".into(),
            arguments: json!({"a": 40, "b": 2}),
        })];
        call.finish_reason = FinishReason::ToolCalls;
        Self { text: base, call }
    }
}

#[async_trait]
impl LanguageModel for Instant0 {
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let last = req.messages.last().map(|m| m.role);
        if !req.tools.is_empty() && last == Some(Role::User) {
            Ok(self.call.clone())
        } else {
            Ok(self.text.clone())
        }
    }

    async fn stream(&self, _req: &ModelRequest) -> Result<EventStream, ModelError> {
        Err(ModelError::Unsupported(
            "the benchmark model does not stream".into(),
        ))
    }
}

#[derive(Deserialize, JsonSchema)]
struct Pair {
    a: i64,
    b: i64,
}

/// Median of `rounds` timings of `iters` calls each, in µs per call.
fn per_call_us<F, Fut>(rt: &tokio::runtime::Runtime, iters: u32, rounds: u32, f: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let t0 = Instant::now();
        rt.block_on(async {
            for _ in 0..iters {
                f().await;
            }
        });
        samples.push(t0.elapsed().as_secs_f64() * 1e6 / f64::from(iters));
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let model = Arc::new(Instant0::new());
    let iters = 20_000;
    let rounds = 5;

    // The fake model alone, answering the same requests the agent sends.
    let text_req = ModelRequest::user("What is 40 + 2?").with_system("Be brief.");
    let model_alone = per_call_us(&rt, iters, rounds, || {
        let m = model.clone();
        let req = text_req.clone();
        async move {
            black_box(m.generate(&req).await.unwrap());
        }
    });

    let plain = Agent::new("plain")
        .model(model.clone())
        .instructions("Be brief.");
    let text_only = per_call_us(&rt, iters, rounds, || {
        let a = plain.clone();
        async move {
            black_box(a.generate("What is 40 + 2?").await.unwrap());
        }
    });
    report("agent_generate_text_only_total", text_only, "us");
    report(
        "agent_generate_text_only_overhead",
        (text_only - model_alone).max(0.0),
        "us",
    );

    let with_tool = Agent::new("calc")
        .model(model.clone())
        .instructions("Use the tool.")
        .tool(tool_fn(
            "add",
            "Adds",
            |_c: ToolContext, p: Pair| async move { Ok::<_, String>(p.a + p.b) },
        ));
    let r = rt.block_on(with_tool.generate("What is 40 + 2?")).unwrap();
    assert_eq!(r.turns.len(), 2);
    assert_eq!(r.turns[0].tool_results[0].content, json!(42));
    let one_round = per_call_us(&rt, iters / 2, rounds, || {
        let a = with_tool.clone();
        async move {
            black_box(a.generate("What is 40 + 2?").await.unwrap());
        }
    });
    report("agent_generate_one_tool_round_total", one_round, "us");
    report(
        "agent_generate_one_tool_round_overhead",
        (one_round - 2.0 * model_alone).max(0.0),
        "us",
    );

    // An agent as a workflow step (in-memory store), per run.
    let wf = Workflow::new("agent-step")
        .step("answer", plain.clone())
        .commit()
        .unwrap();
    let engine = Engine::in_memory();
    let run_us = per_call_us(&rt, 5_000, rounds, || {
        let (e, w) = (&engine, &wf);
        async move {
            black_box(e.start(w, json!("What is 40 + 2?")).await.unwrap());
        }
    });
    report("agent_step_workflow_run_in_memory", run_us, "us");

    // Working memory on SQLite, next to the floor of this machine: a bare rusqlite transaction
    // upserting one small row, with the same file settings.
    let dir = tempfile::tempdir().unwrap();
    report(
        "sqlite_floor_upsert_commit",
        sqlite_floor(&dir.path().join("floor.db"), 20_000),
        "us",
    );
    for (name, options) in [
        ("memory_sqlite_set_get", MemoryOptions::new()),
        (
            "memory_sqlite_set_get_capped",
            MemoryOptions::new()
                .max_entries(100_000)
                .max_bytes(64 << 20),
        ),
    ] {
        let memory = Memory::sqlite_with(dir.path().join(format!("{name}.db")), options).unwrap();
        set_get(&rt, name, &memory, 20_000);
    }

    #[cfg(feature = "redis")]
    match std::env::var("MIYABI_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let prefix = format!("miyabi-bench-{}", std::process::id());
            for (name, options) in [
                ("memory_redis_set_get", MemoryOptions::new()),
                (
                    "memory_redis_set_get_capped",
                    MemoryOptions::new().max_entries(100_000),
                ),
            ] {
                let p = format!("{prefix}-{name}");
                let memory = rt.block_on(Memory::redis(&url, &p, options)).unwrap();
                set_get(&rt, name, &memory, 10_000);
                set_get_concurrent(&rt, name, &memory, 16, 20_000);
                rt.block_on(async {
                    let client = redis::Client::open(url.as_str()).unwrap();
                    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                    let keys: Vec<String> = redis::cmd("KEYS")
                        .arg(format!("{p}:*"))
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    if !keys.is_empty() {
                        let _: i64 = redis::cmd("DEL")
                            .arg(keys)
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                    }
                });
            }
        }
        _ => eprintln!("bench: memory_redis skipped: MIYABI_TEST_REDIS_URL is not set"),
    }
    #[cfg(not(feature = "redis"))]
    eprintln!("bench: memory_redis skipped: build with --features redis");
}

fn sqlite_floor(path: &std::path::Path, n: u32) -> f64 {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let _: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    conn.execute_batch(
        "PRAGMA synchronous=NORMAL; CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;",
    )
    .unwrap();
    let value = json!({"last_action": "deploy", "at": 1_700_000_000, "ok": true}).to_string();
    let t0 = Instant::now();
    for i in 0..n {
        let tx = conn.transaction().unwrap();
        tx.prepare_cached(
            "INSERT INTO kv (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        )
        .unwrap()
        .execute(rusqlite::params![format!("key-{}", i % 1000), value])
        .unwrap();
        tx.commit().unwrap();
    }
    t0.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// `n` rounds of set + get of one small JSON value on 1,000 distinct keys; reports operations
/// (a set or a get) per second, and the microseconds of one set + get.
/// `clients` tasks doing set+get pairs at once on one `Memory` (one multiplexed connection,
/// requests pipelined), as a server with concurrent requests uses it; `n` pairs in all.
fn set_get_concurrent(
    rt: &tokio::runtime::Runtime,
    name: &str,
    memory: &Memory,
    clients: u32,
    n: u32,
) {
    let value = json!({"last_action": "deploy", "at": 1_700_000_000, "ok": true});
    let t0 = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let wm = memory.resource(format!("bench-{c}"));
            let value = value.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..n / clients {
                    let k = format!("key-{}", i % 100);
                    wm.set(&k, &value).await.unwrap();
                    black_box(wm.get(&k).await.unwrap());
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let ops = f64::from(2 * (n / clients) * clients) / t0.elapsed().as_secs_f64();
    report(&format!("{name}_ops_{clients}_clients"), ops, "ops/s");
}

fn set_get(rt: &tokio::runtime::Runtime, name: &str, memory: &Memory, n: u32) {
    let wm = memory.resource("bench");
    let value = json!({"last_action": "deploy", "at": 1_700_000_000, "ok": true});
    let keys: Vec<String> = (0..1000).map(|i| format!("key-{i}")).collect();
    // Warm up: create the keys.
    rt.block_on(async {
        for k in &keys {
            wm.set(k, &value).await.unwrap();
        }
    });
    let t0 = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            let k = &keys[i as usize % keys.len()];
            wm.set(k, &value).await.unwrap();
            black_box(wm.get(k).await.unwrap());
        }
    });
    let took = t0.elapsed();
    // Each operation alone.
    let t1 = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            wm.set(&keys[i as usize % keys.len()], &value)
                .await
                .unwrap();
        }
    });
    let set_us = t1.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let t2 = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            black_box(wm.get(&keys[i as usize % keys.len()]).await.unwrap());
        }
    });
    let get_us = t2.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    report(&format!("{name}_set"), set_us, "us");
    report(&format!("{name}_get"), get_us, "us");
    let ops = f64::from(2 * n) / took.as_secs_f64();
    report(&format!("{name}_ops"), ops, "ops/s");
    report(
        &format!("{name}_pair"),
        took.as_secs_f64() * 1e6 / f64::from(n),
        "us",
    );
}
