//! Durable runs on Postgres against the same on SQLite (one JSON line per figure), for
//! bench/pg.mjs:
//!
//! ```text
//! cargo run --release -p miyabi --features postgres --example pg_bench -- postgres://… [runs] [only]
//! ```
//!
//! Figures: `miyabi.<store>.<shape>` with shapes `3step` (µs per run, runs one after another)
//! and `100step` (ms per run); store `postgres` (loopback, schema `miyabi_bench`, recreated) and
//! `sqlite` (a file in a temp dir). Steps add one to their input, so every run's output is
//! checked. `durability` is the engine's default (a step's result is committed before the run
//! waits; pure steps share a commit) and `everystep` (one commit per step). `only` (say
//! `postgres.3step`) measures that one figure (bench/pg.mjs's interleaved rounds).

use std::time::Instant;

use miyabi::{Durability, Engine, PostgresStore, SqliteStore, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

fn linear(id: &str, n: usize) -> Result<miyabi::CommittedWorkflow, String> {
    let mut w = Workflow::new(id);
    for i in 0..n {
        let add =
            step_fn(
                |_ctx: StepContext, v: Value| async move { Ok(json!(v.as_i64().unwrap_or(0) + 1)) },
            );
        w = w.step(format!("s{i}"), add);
    }
    w.commit().map_err(|e| e.to_string())
}

async fn per_run(
    engine: &Engine,
    wf: &miyabi::CommittedWorkflow,
    steps: i64,
    runs: usize,
) -> Result<f64, String> {
    // Warm-up (connections, prepared statements).
    for i in 0..(runs / 10).max(1) {
        engine
            .start(wf, json!(i))
            .await
            .map_err(|e| e.to_string())?;
    }
    let t = Instant::now();
    for i in 0..runs {
        let r = engine
            .start(wf, json!(i))
            .await
            .map_err(|e| e.to_string())?;
        if r.output != Some(json!(i as i64 + steps)) {
            return Err(format!("run {i}: wrong output {:?}", r.output));
        }
    }
    Ok(t.elapsed().as_secs_f64() / runs as f64)
}

fn emit(bench: &str, value: f64, unit: &str) {
    println!(
        "{}",
        json!({ "bench": bench, "value": (value * 100.0).round() / 100.0, "unit": unit })
    );
}

async fn main_() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("MIYABI_TEST_POSTGRES_URL").ok())
        .ok_or("give the Postgres URL")?;
    let runs: usize = args
        .next()
        .map(|s| s.parse().map_err(|e| format!("{s}: {e}")))
        .transpose()?
        .unwrap_or(1000);
    let only = args.next();
    let wanted = |figure: &str| only.as_deref().is_none_or(|o| o == figure);
    let three = linear("linear-3", 3)?;
    let hundred = linear("linear-100", 100)?;
    let dir = std::env::temp_dir().join(format!("miyabi-pg-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for (durability, tag) in [
        (Durability::Coalesced, ""),
        (Durability::EveryStep, ".everystep"),
    ] {
        for store in ["postgres", "sqlite"] {
            let (f3, f100) = (
                format!("{store}.3step{tag}"),
                format!("{store}.100step{tag}"),
            );
            if !wanted(&f3) && !wanted(&f100) {
                continue;
            }
            let builder = Engine::builder().durability(durability);
            let engine = if store == "postgres" {
                let schema = format!("miyabi_bench{}", tag.replace('.', "_"));
                postgres_reset(&url, &schema)?;
                builder
                    .store(
                        PostgresStore::builder(&url)
                            .schema(schema)
                            .open()
                            .map_err(|e| e.to_string())?,
                    )
                    .build()
            } else {
                let file = dir.join(format!("bench{tag}.db"));
                let _ = std::fs::remove_file(&file);
                builder
                    .store(SqliteStore::open(&file).map_err(|e| e.to_string())?)
                    .build()
            };
            if wanted(&f3) {
                let s3 = per_run(&engine, &three, 3, runs).await?;
                emit(&format!("miyabi.{f3}"), s3 * 1e6, "us/run");
            }
            if wanted(&f100) {
                let s100 = per_run(&engine, &hundred, 100, (runs / 10).max(10)).await?;
                emit(&format!("miyabi.{f100}"), s100 * 1e3, "ms/run");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Drops the benchmark's schema (on a thread: the synchronous client must not run inside
/// the runtime).
fn postgres_reset(url: &str, schema: &str) -> Result<String, String> {
    let (url, schema) = (url.to_string(), schema.to_string());
    std::thread::spawn(move || -> Result<String, String> {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .map_err(|e| e.to_string())?;
        Ok(schema)
    })
    .join()
    .map_err(|_| "reset thread panicked".to_string())?
}

fn main() -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pg_bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(main_()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pg_bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
