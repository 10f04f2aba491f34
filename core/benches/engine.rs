//! Engine benchmark: prints one JSON line per figure, `{"bench": name, "value": n, "unit": u}`,
//! on stdout; details (spread, counts, breakdowns) go to stderr.
//!
//! ```text
//! cargo bench -p miyabi --bench engine
//! ```
//!
//! Shapes (see `docs/benchmarks.md` for the figures and what they mean):
//! - `engine.memory.3step`: 3 linear steps, in-memory store, runs one after another on a
//!   current-thread runtime, µs per run; `engine.memory.3step.multi_thread`: the same loop in a
//!   task of the multi-thread runtime.
//! - `engine.sqlite.3step`: the same on a SQLite file, every step committed, µs per run.
//! - `engine.sqlite.100step`: 100 linear steps on the SQLite file, ms per run.
//! - `engine.sqlite.floor.commit`: not the engine: one tiny SQLite transaction with the store's
//!   file settings, µs, the yardstick for the SQLite figures (a run commits several times).
//! - `engine.sqlite.100step.bytes.*`: what one 100-step run writes: `logical` (the row payloads
//!   stored for that run id), `file` (db + WAL growth, checkpoints held off), `checkpoint` (the
//!   page bytes a checkpoint of those frames writes into the db file), `io` (bytes passed to
//!   write(2) during the run with default settings).
//! - `engine.{sqlite,memory}.10k_concurrent_sleep[.rss]`: 10,000 runs spawned at once, each one
//!   step awaiting a 10 ms tokio sleep: wall ms and peak RSS (VmHWM) of a fresh child process;
//!   `engine.sqlite.10k_concurrent_sleep_node[.rss]`: the same with a durable `.sleep` node
//!   followed by a step.
//!
//! Each in-process shape runs `MIYABI_BENCH_REPEATS` (default 5) batches and reports the median
//! batch; each child-process shape runs `MIYABI_BENCH_CHILD_REPEATS` (default 3) times and
//! reports the median. `MIYABI_BENCH_ONLY=memory.3step,sqlite.100step` picks shapes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use miyabi::{CommittedWorkflow, Engine, Node, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

const CONCURRENT: usize = 10_000;
const SLEEP: Duration = Duration::from_millis(10);

fn emit(bench: &str, value: f64, unit: &str) {
    println!(
        "{}",
        json!({ "bench": bench, "value": value, "unit": unit })
    );
}

fn note(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Median of the values, with the spread noted (benches share 2 cores with other work).
fn median(name: &str, unit: &str, mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let m = xs[xs.len() / 2];
    let shown: Vec<String> = xs.iter().map(|x| format!("{x:.2}")).collect();
    note(format!(
        "{name}: {} batches, median {m:.2} {unit}, min {:.2}, max {:.2} (spread {:.0}%): [{}]",
        xs.len(),
        xs[0],
        xs[xs.len() - 1],
        (xs[xs.len() - 1] - xs[0]) / m * 100.0,
        shown.join(", ")
    ));
    m
}

fn inc() -> Node {
    step_fn(
        |_: StepContext, v: Value| async move { Ok(json!({ "n": v["n"].as_i64().unwrap() + 1 })) },
    )
}

/// A step that awaits once (as any step doing I/O does) before computing.
fn inc_awaiting() -> Node {
    step_fn(|_: StepContext, v: Value| async move {
        tokio::task::yield_now().await;
        Ok(json!({ "n": v["n"].as_i64().unwrap() + 1 }))
    })
}

fn linear(id: &str, steps: usize) -> CommittedWorkflow {
    linear_with(id, steps, inc)
}

fn linear_with(id: &str, steps: usize, step: fn() -> Node) -> CommittedWorkflow {
    let mut wf = Workflow::new(id).step("s0", step());
    for i in 1..steps {
        wf = wf.then(format!("s{i}"), step());
    }
    wf.commit().unwrap()
}

async fn run_checked(engine: &Engine, wf: &CommittedWorkflow, n: i64, steps: i64) -> String {
    let run = engine.start(wf, json!({ "n": n })).await.unwrap();
    // Checked without building the expected value (an allocation the engine did not make).
    assert_eq!(
        run.output.as_ref().and_then(|o| o["n"].as_i64()),
        Some(n + steps),
        "run {} of {}: {:?}",
        run.id,
        wf.id(),
        run
    );
    run.id
}

/// Runs `count` runs one after another; returns the mean time per run.
async fn sequential(engine: &Engine, wf: &CommittedWorkflow, steps: i64, count: usize) -> Duration {
    let t0 = Instant::now();
    for i in 0..count {
        run_checked(engine, wf, i as i64, steps).await;
    }
    t0.elapsed() / count as u32
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn shape_memory_3step(repeats: usize, current: bool, multi: bool) {
    let runs = env_usize("MIYABI_BENCH_RUNS_MEMORY", 20_000);
    let wf = linear("linear-3", 3);
    if current {
        let rt = current_thread();
        let batches = (0..repeats)
            .map(|_| {
                rt.block_on(async {
                    let engine = Engine::in_memory();
                    sequential(&engine, &wf, 3, runs / 10).await; // warm-up
                    sequential(&engine, &wf, 3, runs).await.as_secs_f64() * 1e6
                })
            })
            .collect();
        let m = median("engine.memory.3step (current-thread)", "us", batches);
        emit("engine.memory.3step", round(m, 2), "us");
    }
    if !multi {
        return;
    }

    // The same loop in a task of the multi-thread runtime (as in a server's request handler).
    let rt = multi_thread();
    let batches = (0..repeats)
        .map(|_| {
            let wf = wf.clone();
            rt.block_on(async move {
                tokio::spawn(async move {
                    let engine = Engine::in_memory();
                    sequential(&engine, &wf, 3, runs / 10).await;
                    sequential(&engine, &wf, 3, runs).await.as_secs_f64() * 1e6
                })
                .await
                .unwrap()
            })
        })
        .collect();
    let m = median("engine.memory.3step (multi-thread)", "us", batches);
    emit("engine.memory.3step.multi_thread", round(m, 2), "us");
}

fn shape_sqlite(repeats: usize, dir: &Path, three_step: bool, hundred_step: bool) {
    let runs3 = env_usize("MIYABI_BENCH_RUNS_SQLITE", 2_000);
    let runs100 = env_usize("MIYABI_BENCH_RUNS_100", 20);
    let three = linear("linear-3", 3);
    let hundred = linear("linear-100", 100);
    let rt = current_thread();
    let engine = Engine::sqlite(dir.join("bench.db")).unwrap();

    // Also measured: one commit per step (`Durability::EveryStep`), and steps that await
    // (each yields once, like a step doing I/O), where the default policy commits every step
    // before the run waits.
    let strict = Engine::builder()
        .store(miyabi::SqliteStore::open(dir.join("bench-strict.db")).unwrap())
        .durability(miyabi::Durability::EveryStep)
        .build();
    let three_awaiting = linear_with("linear-3-awaiting", 3, inc_awaiting);
    let variants: [(&str, &Engine, &CommittedWorkflow); 3] = [
        ("engine.sqlite.3step", &engine, &three),
        ("engine.sqlite.3step.every_step", &strict, &three),
        (
            "engine.sqlite.3step.awaiting_steps",
            &engine,
            &three_awaiting,
        ),
    ];
    if three_step {
        for (name, engine, wf) in variants {
            let batches = (0..repeats)
                .map(|_| {
                    rt.block_on(async {
                        sequential(engine, wf, 3, runs3 / 10).await;
                        sequential(engine, wf, 3, runs3).await.as_secs_f64() * 1e6
                    })
                })
                .collect();
            let m = median(name, "us", batches);
            emit(name, round(m, 2), "us");
        }
    }
    if !hundred_step {
        return;
    }

    let batches = (0..repeats)
        .map(|_| {
            rt.block_on(async {
                sequential(&engine, &hundred, 100, 2).await;
                sequential(&engine, &hundred, 100, runs100)
                    .await
                    .as_secs_f64()
                    * 1e3
            })
        })
        .collect();
    let m = median("engine.sqlite.100step", "ms", batches);
    emit("engine.sqlite.100step", round(m, 3), "ms");

    let hundred_awaiting = linear_with("linear-100-awaiting", 100, inc_awaiting);
    for (name, engine, wf) in [
        ("engine.sqlite.100step.every_step", &strict, &hundred),
        (
            "engine.sqlite.100step.awaiting_steps",
            &engine,
            &hundred_awaiting,
        ),
    ] {
        let batches = (0..repeats)
            .map(|_| {
                rt.block_on(async {
                    sequential(engine, wf, 100, 2).await;
                    sequential(engine, wf, 100, runs100).await.as_secs_f64() * 1e3
                })
            })
            .collect();
        let m = median(name, "ms", batches);
        emit(name, round(m, 3), "ms");
    }
}

/// This machine's floor for one durable SQLite transaction, outside the engine: the same file
/// settings as `SqliteStore` (WAL, synchronous=NORMAL, automatic checkpoints), one ~100-byte row
/// per transaction, as a yardstick for the per-run figures (a run commits several times).
fn shape_sqlite_floor(repeats: usize, dir: &Path) {
    let count = env_usize("MIYABI_BENCH_RUNS_FLOOR", 5_000);
    let mut conn = rusqlite::Connection::open(dir.join("floor.db")).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
        .unwrap();
    conn.execute_batch(
        "PRAGMA synchronous=NORMAL;
         CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL,
           body TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;",
    )
    .unwrap();
    let body = "x".repeat(100);
    let mut seq = 0i64;
    let mut batch = |n: usize| -> Duration {
        let t0 = Instant::now();
        for _ in 0..n {
            seq += 1;
            let tx = conn.transaction().unwrap();
            tx.prepare_cached("INSERT INTO events (run_id, seq, at, body) VALUES (?1, ?2, ?3, ?4)")
                .unwrap()
                .execute(rusqlite::params![
                    "0190f5b2-7d3c-7a9e-8f00-000000000000",
                    seq,
                    seq,
                    body
                ])
                .unwrap();
            tx.commit().unwrap();
        }
        t0.elapsed() / n as u32
    };
    let batches = (0..repeats)
        .map(|_| {
            batch(count / 10);
            batch(count).as_secs_f64() * 1e6
        })
        .collect();
    let m = median("engine.sqlite.floor.commit", "us", batches);
    emit("engine.sqlite.floor.commit", round(m, 2), "us");
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn proc_wchar() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/io").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The page numbers of the WAL frames from byte offset `from` on.
fn wal_pages(wal: &Path, from: u64, page_size: u64) -> Vec<u32> {
    let bytes = std::fs::read(wal).unwrap_or_default();
    let frame = page_size + 24;
    let mut off = from.max(32);
    let mut pages = Vec::new();
    while off + frame <= bytes.len() as u64 {
        let o = off as usize;
        pages.push(u32::from_be_bytes([
            bytes[o],
            bytes[o + 1],
            bytes[o + 2],
            bytes[o + 3],
        ]));
        off += frame;
    }
    pages
}

/// Bytes one 100-step run writes to the database, on a fresh file so the run is alone in it.
fn shape_bytes(dir: &Path) {
    let db = dir.join("bytes.db");
    let wal = dir.join("bytes.db-wal");
    let hundred = linear("linear-100", 100);
    let rt = current_thread();
    // One commit per step: the file figures are those of a run whose every step is committed
    // on its own (the worst case; the default policy writes less for pure-computation steps).
    let engine = Engine::builder()
        .store(miyabi::SqliteStore::open(&db).unwrap())
        .durability(miyabi::Durability::EveryStep)
        .build();
    // A second connection: reads the rows back, truncates the WAL, pins it during the run.
    let side = rusqlite::Connection::open(&db).unwrap();
    let page_size: u64 = side
        .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64;
    rt.block_on(run_checked(&engine, &hundred, 0, 100)); // warm-up: tables, pages

    // (a) Logical: the row payloads stored for the run id (text and JSON columns by their
    // byte length, every integer column as 8 bytes).
    let id = rt.block_on(run_checked(&engine, &hundred, 1000, 100));
    let q = |sql: &str| -> (i64, i64) {
        side.query_row(sql, [&id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    };
    let len = |cols: &[&str]| -> String {
        cols.iter()
            .map(|c| format!("coalesce(length(CAST({c} AS BLOB)), 0)"))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let runs = q(&format!(
        "SELECT count(*), coalesce(sum({} + 8 * 4), 0) FROM runs WHERE id = ?1",
        len(&[
            "id",
            "workflow",
            "fingerprint",
            "status",
            "input",
            "output",
            "error",
            "owner"
        ])
    ));
    let steps = q(&format!(
        "SELECT count(*), coalesce(sum({} + 8 * 2), 0) FROM steps WHERE run_id = ?1",
        len(&[
            "run_id", "path", "kind", "status", "output", "error", "payload", "resume"
        ])
    ));
    let events = q(&format!(
        "SELECT count(*), coalesce(sum({} + 8 * 2), 0) FROM events WHERE run_id = ?1",
        len(&["run_id", "body"])
    ));
    let state = q(&format!(
        "SELECT count(*), coalesce(sum({}), 0) FROM run_state WHERE run_id = ?1",
        len(&["run_id", "key", "value"])
    ));
    let logical = runs.1 + steps.1 + events.1 + state.1;
    note(format!(
        "bytes.logical: runs {} row(s) {} B, steps {} rows {} B, events {} rows {} B, run_state {} rows {} B; \
         the run id alone is {} B of every row",
        runs.0,
        runs.1,
        steps.0,
        steps.1,
        events.0,
        events.1,
        state.0,
        state.1,
        id.len()
    ));
    emit(
        "engine.sqlite.100step.bytes.logical",
        logical as f64,
        "bytes",
    );

    // (b) Files: truncate the WAL, then hold a read transaction on the side connection that
    // started before the run. Checkpoints (automatic ones included) can then copy nothing and
    // the WAL cannot restart, so every page the run commits is appended to the WAL and the db
    // file is untouched: db + WAL growth is what the run wrote.
    let (busy, _, _): (i64, i64, i64) = side
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    let (db0, wal0) = (file_size(&db), file_size(&wal));
    side.execute_batch("BEGIN").unwrap();
    side.query_row("SELECT count(*) FROM runs", [], |r| r.get::<_, i64>(0))
        .unwrap();
    rt.block_on(run_checked(&engine, &hundred, 2000, 100));
    let (db1, wal1) = (file_size(&db), file_size(&wal));
    side.execute_batch("COMMIT").unwrap();
    let pages = wal_pages(&wal, wal0, page_size);
    let mut distinct = pages.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let grown = (db1 + wal1) as i64 - (db0 + wal0) as i64;
    note(format!(
        "bytes.file: WAL truncated first (busy={busy}); db {db0} -> {db1} B, WAL {wal0} -> {wal1} B: \
         {} frames of {page_size} B pages + 24 B headers (+32 B WAL header), {} distinct pages",
        pages.len(),
        distinct.len()
    ));
    if busy != 0 || wal0 != 0 {
        note("SKIPPED engine.sqlite.100step.bytes.file: the WAL could not be truncated first");
    } else {
        emit("engine.sqlite.100step.bytes.file", grown as f64, "bytes");
    }
    // Which b-trees those frames belong to (the dbstat table maps page numbers to b-trees).
    let owner: std::collections::HashMap<u32, String> = side
        .prepare("SELECT pageno, name FROM dbstat")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))?
                .collect()
        })
        .unwrap_or_default();
    let mut by_tree: std::collections::BTreeMap<String, usize> = Default::default();
    for p in &pages {
        let name = owner.get(p).cloned().unwrap_or_else(|| format!("page {p}"));
        *by_tree.entry(name).or_default() += 1;
    }
    note(format!(
        "bytes.file: WAL frames by b-tree: {by_tree:?}; about {:.1} frames per commit",
        pages.len() as f64 / 102.0
    ));
    // What a checkpoint of those frames writes into the db file: each distinct page once.
    emit(
        "engine.sqlite.100step.bytes.checkpoint",
        (distinct.len() as u64 * page_size) as f64,
        "bytes",
    );
    let (ck_busy, ck_log, ck_done): (i64, i64, i64) = side
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    note(format!(
        "bytes.checkpoint: checkpoint(TRUNCATE) after the run: busy {ck_busy}, {ck_log} frames, \
         {ck_done} checkpointed; db file {db1} -> {} B",
        file_size(&db)
    ));
    drop(side);

    // (c) I/O: bytes passed to write(2) by this process during one run, default settings
    // (automatic checkpoint at 1000 WAL pages; a restart after a checkpoint reuses the WAL).
    let w0 = proc_wchar();
    rt.block_on(run_checked(&engine, &hundred, 3000, 100));
    let w1 = proc_wchar();
    match (w0, w1) {
        (Some(a), Some(b)) => emit("engine.sqlite.100step.bytes.io", (b - a) as f64, "bytes"),
        _ => note("SKIPPED engine.sqlite.100step.bytes.io: /proc/self/io is not readable"),
    }
}

fn vm_hwm_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Child process: `CONCURRENT` runs spawned at once; prints `wall_ms rss_mb`.
fn child_concurrent(store: &str, kind: &str, dir: &Path) {
    let wf = match kind {
        "step" => Workflow::new("nap-step")
            .step(
                "nap",
                step_fn(|_: StepContext, v: Value| async move {
                    tokio::time::sleep(SLEEP).await;
                    Ok(json!({ "n": v["n"].as_i64().unwrap() + 1 }))
                }),
            )
            .commit()
            .unwrap(),
        "node" => Workflow::new("nap-node")
            .sleep("nap", SLEEP)
            .then("inc", inc())
            .commit()
            .unwrap(),
        other => panic!("unknown kind {other}"),
    };
    let engine = match store {
        "sqlite" => Engine::sqlite(dir.join(format!("concurrent-{kind}.db"))).unwrap(),
        "memory" => Engine::in_memory(),
        other => panic!("unknown store {other}"),
    };
    let rt = multi_thread();
    let wall = rt.block_on(async {
        // Returns how long spawning took (each spawn commits its run before returning).
        let go = |count: usize| {
            let engine = engine.clone();
            let wf = wf.clone();
            async move {
                let t0 = Instant::now();
                let handles: Vec<_> = (0..count)
                    .map(|i| (i, engine.spawn(&wf, json!({ "n": i })).unwrap()))
                    .collect();
                let spawned = t0.elapsed();
                for (i, h) in handles {
                    let run = h.wait().await.unwrap();
                    assert_eq!(run.output, Some(json!({ "n": i + 1 })), "{run:?}");
                }
                spawned
            }
        };
        go(100).await; // warm-up
        let t0 = Instant::now();
        let spawned = go(CONCURRENT).await;
        let wall = t0.elapsed();
        note(format!(
            "child {store}/{kind}: {CONCURRENT} runs in {:.1} ms, of which {:.1} ms in the spawn loop",
            wall.as_secs_f64() * 1e3,
            spawned.as_secs_f64() * 1e3
        ));
        wall
    });
    println!("{} {}", wall.as_secs_f64() * 1e3, vm_hwm_mb());
}

fn shape_concurrent(store: &str, kind: &str, dir: &Path, repeats: usize) {
    let exe = std::env::current_exe().unwrap();
    let name = match kind {
        "step" => format!("engine.{store}.10k_concurrent_sleep"),
        _ => format!("engine.{store}.10k_concurrent_sleep_node"),
    };
    let mut walls = Vec::new();
    let mut rss = Vec::new();
    for r in 0..repeats {
        let sub = dir.join(format!("{store}-{kind}-{r}"));
        std::fs::create_dir_all(&sub).unwrap();
        let out = Command::new(&exe)
            .arg(format!("--child=concurrent:{store}:{kind}"))
            .arg(&sub)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        if !out.status.success() {
            note(format!("SKIPPED {name}: child exited with {}", out.status));
            return;
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let mut it = line.split_whitespace().map(|v| v.parse::<f64>().unwrap());
        walls.push(it.next().unwrap());
        rss.push(it.next().unwrap());
        std::fs::remove_dir_all(&sub).ok();
    }
    let w = median(&name, "ms", walls);
    let m = median(&format!("{name}.rss"), "MB", rss);
    emit(&name, round(w, 1), "ms");
    emit(&format!("{name}.rss"), round(m, 1), "MB");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(spec) = args
        .iter()
        .find_map(|a| a.strip_prefix("--child=concurrent:"))
    {
        let (store, kind) = spec.split_once(':').unwrap();
        let dir = args.iter().find(|a| !a.starts_with("--")).unwrap();
        child_concurrent(store, kind, Path::new(dir));
        return;
    }
    // `cargo bench` passes `--bench` (and a filter, if given): ignored.
    let only: Vec<String> = std::env::var("MIYABI_BENCH_ONLY")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let want = |name: &str| only.is_empty() || only.iter().any(|o| name.starts_with(o.as_str()));
    let repeats = env_usize("MIYABI_BENCH_REPEATS", 5);
    let child_repeats = env_usize("MIYABI_BENCH_CHILD_REPEATS", 3);
    let dir = tempfile::tempdir().unwrap();

    emit(
        "engine.cores",
        std::thread::available_parallelism().map_or(0, |n| n.get()) as f64,
        "cores",
    );
    let (current, multi) = (
        want("memory.3step.current_thread"),
        want("memory.3step.multi_thread"),
    );
    if current || multi {
        shape_memory_3step(repeats, current, multi);
    }
    if want("sqlite.floor") {
        shape_sqlite_floor(repeats, dir.path());
    }
    let (three_step, hundred_step) = (want("sqlite.3step"), want("sqlite.100step"));
    if three_step || hundred_step {
        shape_sqlite(repeats, dir.path(), three_step, hundred_step);
    }
    if want("sqlite.100step.bytes") {
        shape_bytes(dir.path());
    }
    if want("sqlite.10k_concurrent_sleep") {
        shape_concurrent("sqlite", "step", dir.path(), child_repeats);
        shape_concurrent("sqlite", "node", dir.path(), child_repeats);
    }
    if want("memory.10k_concurrent_sleep") {
        shape_concurrent("memory", "step", dir.path(), child_repeats);
    }
}
