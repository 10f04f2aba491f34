//! Model-layer benchmarks (issue 3 §6). Prints one JSON line per figure:
//! `{"bench": "...", "value": ..., "unit": "..."}`.
//!
//! Run: `cargo bench -p miyabi --bench model_stream`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use miyabi::model::internals::decoder;
use miyabi::model::{
    Catalog, HttpOptions, LanguageModel, ModelBuilder, ModelRequest, Protocol, StreamEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel),
    )
    .unwrap()
}

fn frame(chunks: &[u8], sse: impl Fn(&str) -> String, done: bool) -> Vec<u8> {
    let text = String::from_utf8(chunks.to_vec()).unwrap();
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str(&sse(line));
    }
    if done {
        out.push_str("data: [DONE]\n\n");
    }
    out.into_bytes()
}

fn report(name: &str, value: f64, unit: &str) {
    println!("{{\"bench\": \"{name}\", \"value\": {value:.3}, \"unit\": \"{unit}\"}}");
}

/// Decodes `body` (fed in 4 KiB network-sized chunks) repeatedly for about `budget`; returns
/// (events per second, text/reasoning/tool deltas per second).
fn decode_rate(protocol: Protocol, body: &[u8], budget: Duration) -> (f64, f64) {
    let mut events = 0u64;
    let mut deltas = 0u64;
    let mut out = Vec::with_capacity(1024);
    let start = Instant::now();
    let mut iters = 0;
    while start.elapsed() < budget || iters < 3 {
        let mut d = decoder(protocol, "bench");
        for chunk in body.chunks(4096) {
            d.feed(chunk, &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        for e in out.drain(..) {
            events += 1;
            if matches!(
                e,
                StreamEvent::TextDelta { .. }
                    | StreamEvent::ReasoningDelta { .. }
                    | StreamEvent::ToolCallDelta { .. }
            ) {
                deltas += 1;
            }
            black_box(&e);
        }
        iters += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    (events as f64 / secs, deltas as f64 / secs)
}

async fn serve(listener: tokio::net::TcpListener, body: &'static [u8]) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let _ = sock.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut tmp = [0u8; 16384];
            loop {
                let header_end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p;
                    }
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                };
                let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while buf.len() < header_end + 4 + len {
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                buf.drain(..header_end + 4 + len);
                let mut reply = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
                reply.extend_from_slice(body);
                if sock.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn main() {
    let budget = Duration::from_millis(if std::env::var("MIYABI_BENCH_QUICK").is_ok() {
        200
    } else {
        1500
    });

    // 1. Decode + normalize from memory.
    let openai = frame(
        &fixture("openai/chat/openai-text.chunks.txt"),
        |l| format!("data: {l}\n\n"),
        true,
    );
    let (ev, deltas) = decode_rate(Protocol::OpenAiChat, &openai, budget);
    report("model.openai.decode", deltas / 1e6, "Mtext-delta/s");
    report("model.openai.decode.events", ev / 1e6, "Mevents/s");

    let anth_line = |l: &str| {
        let ty = serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        format!("event: {ty}\ndata: {l}\n\n")
    };
    // The recorded Anthropic text stream is short; repeat its text deltas to a realistic length.
    let anth_raw = String::from_utf8(fixture("anthropic/anthropic-text.chunks.txt")).unwrap();
    let mut lines: Vec<&str> = anth_raw.lines().filter(|l| !l.trim().is_empty()).collect();
    let delta_lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("text_delta"))
        .collect();
    let stop_at = lines
        .iter()
        .position(|l| l.contains("content_block_stop"))
        .unwrap();
    let mut long: Vec<&str> = lines.drain(..stop_at).collect();
    for _ in 0..20 {
        long.extend(delta_lines.iter().copied());
    }
    long.extend(lines);
    let anthropic = frame(long.join("\n").as_bytes(), anth_line, false);
    let (_, deltas) = decode_rate(Protocol::Anthropic, &anthropic, budget);
    report("model.anthropic.decode", deltas / 1e6, "Mtext-delta/s");

    let bedrock = fixture("amazon-bedrock/derived-binary/amazon-bedrock-text.eventstream.bin");
    let (ev, _) = decode_rate(Protocol::Bedrock, &bedrock, budget);
    report("model.bedrock.decode", ev / 1e6, "Mevents/s");

    // 2. Catalogue.
    // The model crate's embedded catalogue, read from its source (in this repository) rather
    // than included: a path outside this crate's directory would not be in its package.
    let json: &'static str = String::leak(
        std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../crates/model/src/catalog/catalog.json"),
        )
        .unwrap(),
    );
    let t = Instant::now();
    let n = 20;
    for _ in 0..n {
        black_box(Catalog::parse_static(json).unwrap());
    }
    report(
        "model.catalog.load",
        t.elapsed().as_secs_f64() * 1e3 / n as f64,
        "ms",
    );
    let c = Catalog::parse_static(json).unwrap();
    let t = Instant::now();
    let models: usize = c.providers().iter().map(|p| p.models().len()).sum();
    report(
        "model.catalog.all_models_parse",
        t.elapsed().as_secs_f64() * 1e3,
        "ms",
    );
    black_box(models);
    let env = |k: &str| (k == "ANTHROPIC_API_KEY").then(|| "k".to_owned());
    let builder = ModelBuilder::new("anthropic/claude-sonnet-4-5").env(env);
    builder.resolve().unwrap();
    let t = Instant::now();
    let n = 100_000;
    for _ in 0..n {
        black_box(builder.resolve().unwrap());
    }
    report(
        "model.resolve",
        t.elapsed().as_secs_f64() * 1e6 / n as f64,
        "us",
    );
    let t = Instant::now();
    for _ in 0..n {
        black_box(Catalog::embedded().lookup("openrouter/anthropic/claude-sonnet-4.5"));
    }
    report(
        "model.catalog.lookup",
        t.elapsed().as_secs_f64() * 1e6 / n as f64,
        "us",
    );

    // SigV4 signing of a Bedrock Converse request (done for every attempt).
    #[cfg(feature = "bedrock")]
    {
        use miyabi::model::aws::{AwsCredentials, SigV4Signer};
        let signer = SigV4Signer::new(
            AwsCredentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                None,
            ),
            "us-east-1",
            "bedrock",
        );
        let body = vec![b'x'; 2048];
        let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        let url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
        let now = std::time::SystemTime::now();
        let n = 20_000;
        let t = Instant::now();
        for _ in 0..n {
            black_box(signer.sign("POST", url, &headers, &body, now).unwrap());
        }
        report(
            "model.bedrock.sigv4_sign_2KiB",
            t.elapsed().as_secs_f64() * 1e6 / n as f64,
            "us",
        );
    }

    // 3. Per-request overhead over a raw reqwest call to the same loopback server.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let body: &'static [u8] = Box::leak(fixture("groq/groq-text.json").into_boxed_slice());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(listener, body));
        let req = ModelRequest::user("Invent a new holiday and describe its traditions.").with_max_tokens(512);
        let m = ModelBuilder::new("groq/llama-3.3-70b-versatile")
            .env(|_| None)
            .api_key("k")
            .base_url(&url)
            .http_options(HttpOptions::default())
            .build()
            .unwrap();
        let raw = reqwest::Client::new();
        let raw_body = serde_json::to_vec(&serde_json::json!({"model": "llama-3.3-70b-versatile", "messages": [{"role": "user", "content": "Invent a new holiday and describe its traditions."}], "max_tokens": 512})).unwrap();
        let chat_url = format!("{url}/chat/completions");
        let n = 1500;
        for _ in 0..100 {
            m.generate(&req).await.unwrap();
            raw.post(&chat_url).header("authorization", "Bearer k").body(raw_body.clone()).send().await.unwrap().bytes().await.unwrap();
        }
        let mut best_raw = f64::MAX;
        let mut best_model = f64::MAX;
        for _round in 0..3 {
            let t = Instant::now();
            for _ in 0..n {
                let r = raw.post(&chat_url).header("authorization", "Bearer k").header("content-type", "application/json").body(raw_body.clone()).send().await.unwrap();
                let b = r.bytes().await.unwrap();
                black_box(serde_json::from_slice::<serde_json::Value>(&b).unwrap());
            }
            best_raw = best_raw.min(t.elapsed().as_secs_f64() * 1e6 / n as f64);
            let t = Instant::now();
            for _ in 0..n {
                black_box(m.generate(&req).await.unwrap());
            }
            best_model = best_model.min(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
        report("model.request.raw_reqwest", best_raw, "us");
        report("model.request.miyabi", best_model, "us");
        report("model.request.overhead", best_model - best_raw, "us");
    });
}
