//! The server's load benchmark (driven by `bench/server.sh`; see docs/benchmarks.md, "Server").
//!
//! ```text
//! server_bench seed <db> <runs>     # seed <runs> finished runs into a SQLite file
//! server_bench serve <db> <addr>    # serve it (tokens from MIYABI_TOKENS); prints the address
//! server_bench sse <subscribers> <events>
//!                                   # one run, <subscribers> SSE clients, every event to each
//! ```
//!
//! Figures are printed as JSON lines `{"bench": name, "value": n, "unit": u}`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use miyabi::approval::Approver;
use miyabi::server::{ServerConfig, serve};
use miyabi::store::{Batch, RunRecord, Store};
use miyabi::{Engine, EventKind, RunEvent, RunStatus, SqliteStore, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

fn figure(name: &str, value: f64, unit: &str) {
    println!(
        "{}",
        json!({ "bench": name, "value": (value * 10.0).round() / 10.0, "unit": unit })
    );
}

fn seed(db: &str, n: usize) {
    let store = SqliteStore::open(db).unwrap();
    let base = 1_700_000_000_000_i64;
    let started = Instant::now();
    for i in 0..n {
        let id = format!("{:08}-seed-{i:08}", i);
        let at = base + i as i64 * 10;
        let status = if i % 10 == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let workflow = if i % 2 == 0 { "ingest" } else { "report" };
        let input = std::sync::Arc::new(json!({ "n": i, "source": "bench", "tags": ["a", "b"] }));
        let output = (status == RunStatus::Succeeded)
            .then(|| std::sync::Arc::new(json!({ "ok": true, "n": i })));
        let error = (status == RunStatus::Failed).then(|| "boom".to_string());
        let batch = Batch {
            create: Some(RunRecord {
                id: id.clone(),
                workflow: workflow.into(),
                fingerprint: "bench".into(),
                status,
                input: input.clone(),
                output: output.clone(),
                error: error.clone(),
                created_at: at,
                updated_at: at + 5,
                owner: None,
                lease_until: None,
            }),
            events: vec![
                RunEvent {
                    run_id: id.as_str().into(),
                    seq: 1,
                    at,
                    kind: EventKind::RunStarted {
                        workflow: workflow.into(),
                        input,
                    },
                },
                RunEvent {
                    run_id: id.as_str().into(),
                    seq: 2,
                    at: at + 5,
                    kind: EventKind::RunFinished {
                        status,
                        output,
                        error,
                    },
                },
            ],
            ..Batch::default()
        };
        store.commit(&id, batch).unwrap();
    }
    eprintln!("seeded {n} runs in {:?}", started.elapsed());
}

async fn serve_db(db: &str, addr: &str) {
    let engine = Engine::sqlite(db).unwrap();
    let config = ServerConfig::from_env().unwrap();
    let server = serve(engine, config, Some(addr.parse().unwrap()))
        .await
        .unwrap();
    eprintln!("listening on http://{}", server.local_addr());
    tokio::signal::ctrl_c().await.ok();
    server.shutdown().await.unwrap();
}

/// One run whose first step waits for a signal and then emits `events` custom events;
/// `subscribers` SSE clients follow it. Reports how many received every event, and the time
/// from the signal until the last client saw `run-finished`.
async fn sse(subscribers: usize, events: usize) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("sse.db")).unwrap();
    let go = Arc::new(tokio::sync::Notify::new());
    let g = Arc::clone(&go);
    let step = step_fn(move |ctx: StepContext, v: Value| {
        let g = Arc::clone(&g);
        async move {
            g.notified().await;
            for i in 0..events {
                ctx.emit("tick", json!(i));
                if i % 10 == 9 {
                    tokio::task::yield_now().await;
                }
            }
            Ok(v)
        }
    });
    let wf = Workflow::new("fanout").step("emit", step).commit().unwrap();
    engine.register(&wf);
    let token = "bench-token-0123456789abcdef";
    let server = serve(
        engine.clone(),
        ServerConfig::new().token(token, Approver::new("bench")),
        Some("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let run = engine.spawn(&wf, json!(null)).unwrap();
    let url = format!(
        "http://{}/api/runs/{}/events",
        server.local_addr(),
        run.id()
    );
    let connected = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut clients = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let (http, url, connected) = (http.clone(), url.clone(), Arc::clone(&connected));
        clients.push(tokio::spawn(async move {
            let r = http.get(&url).bearer_auth(token).send().await.unwrap();
            let mut body = r.bytes_stream();
            let (mut buf, mut seqs, mut first) = (String::new(), Vec::new(), true);
            while let Some(chunk) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
                while let Some(end) = buf.find("\n\n") {
                    let frame: String = buf.drain(..end + 2).collect();
                    if let Some(id) = frame.lines().find_map(|l| l.strip_prefix("id:")) {
                        seqs.push(id.trim().parse::<u64>().unwrap());
                        if first {
                            first = false;
                            connected.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }
            (seqs, Instant::now())
        }));
    }
    while connected.load(Ordering::SeqCst) < subscribers {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t0 = Instant::now();
    go.notify_one();
    let done = run.wait().await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let total = engine.store().last_seq(done.id.as_str()).unwrap();
    let mut complete = 0;
    let mut last = t0;
    for c in clients {
        let (seqs, at) = c.await.unwrap();
        if seqs == (1..=total).collect::<Vec<_>>() {
            complete += 1;
        }
        last = last.max(at);
    }
    eprintln!("{complete}/{subscribers} subscribers received all {total} events");
    figure(
        "server.sse_subscribers_complete",
        complete as f64,
        "clients",
    );
    figure("server.sse_events_per_run", total as f64, "events");
    figure(
        "server.sse_fanout",
        last.duration_since(t0).as_secs_f64() * 1000.0,
        "ms",
    );
    figure(
        "server.sse_deliveries",
        (complete as f64 * total as f64) / last.duration_since(t0).as_secs_f64(),
        "events/s",
    );
    server.shutdown().await.unwrap();
}

/// Where one page's time goes: the store read, the engine's conversion, the JSON encoding.
async fn profile(db: &str) {
    let engine = Engine::sqlite(db).unwrap();
    let filter = miyabi::RunFilter {
        limit: Some(51),
        ..Default::default()
    };
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(engine.store().list_runs(&filter).unwrap());
    }
    figure(
        "server.profile.store_list_51",
        t.elapsed().as_secs_f64() * 1e6 / n as f64,
        "us",
    );
    let t = Instant::now();
    let mut summaries = Vec::new();
    for _ in 0..n {
        summaries = engine.store().list_run_summaries(&filter).unwrap();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    figure("server.profile.store_summaries_51", us, "us");
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_json::to_vec(&summaries).unwrap());
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    figure("server.profile.encode_summaries_51", us, "us");
    let t = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..n {
        runs = engine.list(&filter).await.unwrap();
    }
    figure(
        "server.profile.engine_list_51",
        t.elapsed().as_secs_f64() * 1e6 / n as f64,
        "us",
    );
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        bytes = serde_json::to_vec(&runs).unwrap().len();
    }
    figure(
        "server.profile.encode_51",
        t.elapsed().as_secs_f64() * 1e6 / n as f64,
        "us",
    );
    eprintln!("page bytes: {bytes}");
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["seed", db, n] => seed(db, n.parse().unwrap()),
        ["serve", db, addr] => serve_db(db, addr).await,
        ["profile", db] => profile(db).await,
        ["sse", n, events] => sse(n.parse().unwrap(), events.parse().unwrap()).await,
        _ => {
            eprintln!(
                "usage: server_bench seed <db> <runs> | serve <db> <addr> | sse <subscribers> <events>"
            );
            std::process::exit(2);
        }
    }
}
