//! Shared helpers for the model-layer tests: recorded fixtures, their expected assembled results,
//! and a scripted loopback HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use miyabi::model::{ContentPart, ModelResponse, Protocol};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn read_fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn expected() -> serde_json::Map<String, Value> {
    let v: Value = serde_json::from_slice(&read_fixture("expected.json")).unwrap();
    v.as_object().unwrap().clone()
}

/// The protocol of an expected.json family.
pub fn protocol_of(family: &str) -> Option<Protocol> {
    let f = family.split(' ').next().unwrap();
    Some(match f {
        "openai-chat" => Protocol::OpenAiChat,
        "openai-responses" => Protocol::OpenAiResponses,
        "anthropic-messages" => Protocol::Anthropic,
        "gemini-generateContent" => Protocol::Gemini,
        "bedrock-converse" => Protocol::Bedrock,
        "cohere-v2-chat" => Protocol::Cohere,
        _ => return None,
    })
}

/// Re-frames a `.chunks.txt` file (one payload per line) as the provider sends it on the wire.
pub fn frame(protocol: Protocol, chunks: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(chunks.to_vec()).unwrap();
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match protocol {
            Protocol::OpenAiChat => out.push_str(&format!("data: {line}\n\n")),
            Protocol::Gemini | Protocol::VertexGemini => {
                out.push_str(&format!("data: {line}\r\n\r\n"))
            }
            _ => {
                let v: Value = serde_json::from_str(line).unwrap();
                let ty = v["type"].as_str().unwrap_or("message");
                out.push_str(&format!("event: {ty}\ndata: {line}\n\n"));
            }
        }
    }
    if protocol == Protocol::OpenAiChat {
        out.push_str("data: [DONE]\n\n");
    }
    out.into_bytes()
}

/// The body a streamed fixture replays as.
pub fn wire_body(rel: &str, protocol: Protocol) -> Vec<u8> {
    let raw = read_fixture(rel);
    if rel.ends_with(".chunks.txt") {
        frame(protocol, &raw)
    } else {
        raw
    }
}

fn usage_pair(protocol: Protocol, u: &Value) -> (u64, u64) {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    match protocol {
        Protocol::OpenAiChat => (n(&u["prompt_tokens"]), n(&u["completion_tokens"])),
        Protocol::Anthropic => (
            n(&u["input_tokens"])
                + n(&u["cache_read_input_tokens"])
                + n(&u["cache_creation_input_tokens"]),
            n(&u["output_tokens"]),
        ),
        Protocol::OpenAiResponses => (n(&u["input_tokens"]), n(&u["output_tokens"])),
        Protocol::Gemini => (
            n(&u["promptTokenCount"]),
            n(&u["candidatesTokenCount"]) + n(&u["thoughtsTokenCount"]),
        ),
        Protocol::Bedrock => (
            n(&u["inputTokens"]) + n(&u["cacheReadInputTokens"]) + n(&u["cacheWriteInputTokens"]),
            n(&u["outputTokens"]),
        ),
        Protocol::Cohere => (
            n(&u["tokens"]["input_tokens"]),
            n(&u["tokens"]["output_tokens"]),
        ),
        _ => (0, 0),
    }
}

fn parse_args(s: &str) -> Value {
    if s.trim().is_empty() {
        return serde_json::json!({});
    }
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Null) => serde_json::json!({}),
        Ok(v) => v,
        Err(_) => Value::String(s.to_owned()),
    }
}

/// Asserts that an assembled response matches an expected.json `assembled` record.
pub fn assert_matches(name: &str, protocol: Protocol, got: &ModelResponse, want: &Value) {
    assert_eq!(
        got.text(),
        want["text"].as_str().unwrap_or(""),
        "{name}: text"
    );
    let mut want_reasoning = want["reasoning"].as_str().unwrap_or("").to_owned();
    if let Some(plan) = want.get("tool_plan").and_then(Value::as_str) {
        want_reasoning.push_str(plan);
    }
    assert_eq!(got.reasoning(), want_reasoning, "{name}: reasoning");
    let calls = got.tool_calls();
    let want_calls = want["tool_calls"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        calls.len(),
        want_calls.len(),
        "{name}: number of tool calls"
    );
    for (c, w) in calls.iter().zip(&want_calls) {
        assert_eq!(c.name, w["name"].as_str().unwrap(), "{name}: tool name");
        let raw = match w
            .get("arguments")
            .or_else(|| w.get("args"))
            .or_else(|| w.get("input"))
        {
            Some(Value::String(s)) => parse_args(s),
            Some(Value::Null) | None => serde_json::json!({}),
            Some(other) => other.clone(),
        };
        assert_eq!(c.arguments, raw, "{name}: tool arguments of {}", c.name);
        if let Some(id) = w
            .get("id")
            .or_else(|| w.get("call_id"))
            .and_then(Value::as_str)
        {
            assert_eq!(c.id, id, "{name}: tool call id");
        }
    }
    let raw_finish = want
        .get("finish_reason")
        .or_else(|| want.get("stop_reason"))
        .or_else(|| want.get("status"));
    if let Some(f) = raw_finish.and_then(Value::as_str) {
        assert_eq!(
            got.raw_finish_reason.as_deref(),
            Some(f),
            "{name}: raw finish reason"
        );
    }
    if let Some(u) = want.get("usage").filter(|u| u.is_object()) {
        let (i, o) = usage_pair(protocol, u);
        assert_eq!(
            (got.usage.input_tokens, got.usage.output_tokens),
            (i, o),
            "{name}: usage"
        );
    }
    // Content order sanity: reasoning never follows the first text part of the same response.
    let _ = got
        .content
        .iter()
        .filter(|p| matches!(p, ContentPart::Text { .. }))
        .count();
}

/// One scripted response of the loopback server.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Body pieces written one after another (chunked encoding), with a pause before each.
    pub chunks: Vec<Vec<u8>>,
    pub pause: Duration,
    /// Wait this long before sending anything.
    pub delay: Duration,
    /// Close the connection after the chunks without the terminating chunk.
    pub drop_after_chunks: bool,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![body.into()],
            pause: Duration::ZERO,
            delay: Duration::ZERO,
            drop_after_chunks: false,
        }
    }

    pub fn sse(body: impl Into<Vec<u8>>) -> Self {
        let mut r = Self::json(200, body);
        r.headers = vec![("content-type".into(), "text/event-stream".into())];
        r
    }

    /// Splits the body into pieces of `size` bytes.
    pub fn split(mut self, size: usize) -> Self {
        let all: Vec<u8> = self.chunks.concat();
        self.chunks = all.chunks(size.max(1)).map(<[u8]>::to_vec).collect();
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// A request as the server received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A loopback HTTP/1.1 server answering with scripted replies in order (the last one repeats).
pub struct Server {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(replies: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(replies);
        let counter = Arc::new(Mutex::new(0usize));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                // Replies go out in small writes (head, chunk sizes, chunks): without NODELAY,
                // Nagle's algorithm holds each one for the client's delayed ACK (~40 ms).
                let _ = sock.set_nodelay(true);
                let (seen, replies, counter) = (seen2.clone(), replies.clone(), counter.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, seen, replies, counter).await;
                });
            }
        });
        Server {
            url: format!("http://{addr}"),
            seen,
            task,
        }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(
    mut sock: TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    replies: Arc<Vec<Reply>>,
    counter: Arc<Mutex<usize>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // Read one request (headers + content-length body).
        let header_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let mut tmp = [0u8; 8192];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let body_start = header_end + 4;
        while buf.len() < body_start + len {
            let mut tmp = [0u8; 8192];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        let body = buf[body_start..body_start + len].to_vec();
        buf.drain(..body_start + len);
        seen.lock().unwrap().push(Seen {
            method,
            path,
            headers,
            body,
        });
        let reply = {
            let mut c = counter.lock().unwrap();
            let r = replies[(*c).min(replies.len() - 1)].clone();
            *c += 1;
            r
        };
        tokio::time::sleep(reply.delay).await;
        let mut head = format!(
            "HTTP/1.1 {} X\r\ntransfer-encoding: chunked\r\n",
            reply.status
        );
        for (k, v) in &reply.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        sock.write_all(head.as_bytes()).await?;
        sock.flush().await?;
        for chunk in &reply.chunks {
            if !reply.pause.is_zero() {
                tokio::time::sleep(reply.pause).await;
            }
            if chunk.is_empty() {
                continue;
            }
            sock.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            sock.write_all(chunk).await?;
            sock.write_all(b"\r\n").await?;
            sock.flush().await?;
        }
        if reply.drop_after_chunks {
            sock.shutdown().await?;
            return Ok(());
        }
        sock.write_all(b"0\r\n\r\n").await?;
        sock.flush().await?;
    }
}
