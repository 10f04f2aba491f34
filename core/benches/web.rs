//! `miyabi::web` benchmark over loopback HTTP: one JSON line per figure on stdout,
//! `{"bench": name, "value": n, "unit": u}`; spreads on stderr.
//!
//! ```text
//! cargo bench -p miyabi --features server --bench web
//! ```
//!
//! - `web.ui.first-chunk`: a loopback model server writes one text delta; the time until the
//!   client of an axum route answering with `ui_message_stream(agent.stream(..))` reads its
//!   `text-delta` chunk, µs (median of `MIYABI_BENCH_FIRST`, default 50).
//! - `web.ui.throughput`: UI message stream chunks read by the client per second from a
//!   `MIYABI_BENCH_DELTAS`-delta model stream (default 100,000; median of `MIYABI_BENCH_REPEATS`).
//! - `web.sse.events`: a run's events per second through `run_events` (SSE), for a finished run
//!   of one step that emitted `MIYABI_BENCH_EVENTS` events (default 100,000), read from SQLite.
//! - `….per-cpu-s`: the same counts per second of CPU time used by the whole process (every
//!   thread: the loopback model server, the agent, the route and the client), from
//!   `/proc/self/stat`; on a shared host this is the steadier figure for "per core" targets, and
//!   a conservative one (the client's and the model server's work are counted too).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use futures::StreamExt;
use miyabi::model::{ModelBuilder, Protocol};
use miyabi::{Agent, Engine, StepContext, Workflow, step_fn, web};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify};

fn emit(bench: &str, value: f64, unit: &str) {
    println!(
        "{}",
        json!({ "bench": bench, "value": (value * 10.0).round() / 10.0, "unit": unit })
    );
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

/// CPU time (user + system, all threads) used by this process so far, in seconds.
fn cpu_seconds() -> f64 {
    static TICK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let tick = *TICK.get_or_init(|| {
        let out = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    });
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which ends with the last ')'): utime is the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / tick
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

const HEAD: &str = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"#;

fn delta(w: &str) -> String {
    format!(
        "data: {HEAD}{}}},\"finish_reason\":null}}]}}\n\n",
        serde_json::to_string(w).unwrap()
    )
}

const TAIL: &str = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

/// What the model server does next: a whole stream of n deltas, or one delta then wait.
#[derive(Clone)]
struct Mode {
    n: Arc<std::sync::atomic::AtomicUsize>,
    first: Arc<Mutex<Option<Instant>>>,
    release: Arc<Notify>,
}

async fn model(State(m): State<Mode>) -> axum::response::Response {
    let n = m.n.load(std::sync::atomic::Ordering::SeqCst);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::convert::Infallible>>(16);
    tokio::spawn(async move {
        if n == 0 {
            *m.first.lock().await = Some(Instant::now());
            let _ = tx.send(Ok(delta("first"))).await;
            m.release.notified().await;
            let _ = tx.send(Ok(TAIL.to_string())).await;
        } else {
            let mut buf = String::new();
            for i in 0..n {
                buf.push_str(&delta(&format!(" w{}", i % 1000)));
                if buf.len() > 64 * 1024 && tx.send(Ok(std::mem::take(&mut buf))).await.is_err() {
                    return;
                }
            }
            buf.push_str(TAIL);
            let _ = tx.send(Ok(buf)).await;
        }
    });
    let body = axum::body::Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|v| (v, rx))
    }));
    axum::response::Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}

async fn serve(app: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    // Without TCP_NODELAY, small SSE writes wait for delayed ACKs (~40 ms on Linux).
    let l = axum::serve::ListenerExt::tap_io(l, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

/// Reads SSE `data:` payloads; calls `f` for each; returns the count.
async fn read(res: reqwest::Response, mut f: impl FnMut(&str)) -> usize {
    let mut stream = res.bytes_stream();
    let mut buf = Vec::<u8>::new();
    let mut n = 0;
    while let Some(bytes) = stream.next().await {
        buf.extend_from_slice(&bytes.unwrap());
        let mut start = 0;
        while let Some(i) = buf[start..].windows(2).position(|w| w == b"\n\n") {
            let block = std::str::from_utf8(&buf[start..start + i]).unwrap();
            for line in block.lines() {
                if let Some(d) = line.strip_prefix("data:") {
                    n += 1;
                    f(d.trim_start());
                }
            }
            start += i + 2;
        }
        buf.drain(..start);
    }
    n
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let first_runs = env("MIYABI_BENCH_FIRST", 50);
    let deltas = env("MIYABI_BENCH_DELTAS", 100_000);
    let repeats = env("MIYABI_BENCH_REPEATS", 5);
    let events = env("MIYABI_BENCH_EVENTS", 100_000);

    let mode = Mode {
        n: Arc::new(0.into()),
        first: Arc::new(Mutex::new(None)),
        release: Arc::new(Notify::new()),
    };
    let model_url = serve(
        Router::new()
            .route("/v1/chat/completions", post(model))
            .with_state(mode.clone()),
    )
    .await;
    let m = ModelBuilder::custom(
        "loopback",
        "m",
        Protocol::OpenAiChat,
        &format!("{model_url}/v1"),
    )
    .build()
    .unwrap();
    let agent = Agent::new("bench").model(m);
    let route = Router::new()
        .route(
            "/chat",
            post(|State(a): State<Agent>| async move {
                web::ui_message_stream(a.stream("go"), Default::default())
            }),
        )
        .with_state(agent);
    let base = serve(route).await;
    let client = reqwest::Client::new();

    // First chunk.
    let mut firsts = Vec::new();
    for r in 0..first_runs + 3 {
        mode.n.store(0, std::sync::atomic::Ordering::SeqCst);
        let res = client.post(format!("{base}/chat")).send().await.unwrap();
        let mut seen: Option<Instant> = None;
        let release = mode.release.clone();
        read(res, |d| {
            if seen.is_none() && d.contains("\"text-delta\"") {
                seen = Some(Instant::now());
                release.notify_one();
            }
        })
        .await;
        let at = mode.first.lock().await.take().unwrap();
        if r >= 3 {
            firsts.push(seen.unwrap().duration_since(at).as_secs_f64() * 1e6);
        }
    }
    eprintln!(
        "web.ui.first-chunk us: min {:.0} max {:.0}",
        firsts.iter().cloned().fold(f64::MAX, f64::min),
        firsts.iter().cloned().fold(0.0, f64::max)
    );
    emit("web.ui.first-chunk", median(firsts), "us");

    // Throughput.
    mode.n.store(deltas, std::sync::atomic::Ordering::SeqCst);
    let (mut rates, mut per_cpu) = (Vec::new(), Vec::new());
    for r in 0..=repeats {
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let mut text = 0usize;
        let res = client.post(format!("{base}/chat")).send().await.unwrap();
        let n = read(res, |d| {
            if d.contains("\"text-delta\"") {
                text += 1;
            }
        })
        .await;
        assert!(text >= deltas, "lost deltas: {text} of {deltas}");
        if r > 0 {
            rates.push(n as f64 / t0.elapsed().as_secs_f64());
            per_cpu.push(n as f64 / (cpu_seconds() - c0));
        }
    }
    eprintln!("web.ui.throughput chunks/s: {rates:?}; per CPU-second: {per_cpu:?}");
    emit("web.ui.throughput", median(rates), "chunks/s");
    emit(
        "web.ui.throughput.per-cpu-s",
        median(per_cpu),
        "chunks/cpu-s",
    );

    // A run's stored events through run_events.
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let wf = Workflow::new("chatty")
        .step(
            "talk",
            step_fn(move |ctx: StepContext, _: Value| async move {
                for i in 0..events {
                    ctx.emit("tick", json!({ "i": i }));
                }
                Ok(json!(events))
            }),
        )
        .commit()
        .unwrap();
    let run = engine.start(&wf, json!(null)).await.unwrap();
    let route = Router::new()
        .route(
            "/runs/{id}/events",
            get(
                |State(e): State<Engine>,
                 axum::extract::Path(id): axum::extract::Path<String>,
                 h: HeaderMap| async move {
                    web::run_events(&e, &id, web::last_event_id(&h))
                },
            ),
        )
        .with_state(engine.clone());
    let base = serve(route).await;
    let (mut rates, mut per_cpu) = (Vec::new(), Vec::new());
    for r in 0..=repeats {
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let res = client
            .get(format!("{base}/runs/{}/events", run.id))
            .send()
            .await
            .unwrap();
        let n = read(res, |_| {}).await;
        assert!(n > events, "{n} events");
        if r > 0 {
            rates.push(n as f64 / t0.elapsed().as_secs_f64());
            per_cpu.push(n as f64 / (cpu_seconds() - c0));
        }
    }
    eprintln!("web.sse.events events/s: {rates:?}; per CPU-second: {per_cpu:?}");
    emit("web.sse.events", median(rates), "events/s");
    emit("web.sse.events.per-cpu-s", median(per_cpu), "events/cpu-s");
}
