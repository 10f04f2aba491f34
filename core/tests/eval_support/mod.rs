//! Shared helpers for the eval tests: a loopback HTTP server that replays recorded
//! OpenAI-compatible responses (chat completions and embeddings), choosing the answer for each
//! request with a function of the request, and counting the calls.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::{Arc, Mutex};

use miyabi::model::{Embedder, Model, ModelBuilder, Protocol};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the handler answers: a status and a JSON body.
pub type Handler = Arc<dyn Fn(&str, &Value) -> (u16, Value) + Send + Sync>;

/// A request as received: the path and the JSON body.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub body: Value,
}

impl Seen {
    /// The concatenated text of the request's messages with this role.
    pub fn text_of(&self, role: &str) -> String {
        self.body["messages"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter(|m| m["role"] == role)
                    .map(|m| match &m["content"] {
                        Value::String(s) => s.clone(),
                        Value::Array(parts) => parts
                            .iter()
                            .filter_map(|p| p["text"].as_str())
                            .collect::<Vec<_>>()
                            .join(""),
                        _ => String::new(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}

/// A loopback server replaying recorded responses.
pub struct Replay {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body of a non-streamed chat completion (as an OpenAI-compatible server records it)
/// answering `text`, finishing with `finish_reason`.
pub fn completion(text: &str, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-replay",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "judge-1",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_reason
        }],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
    })
}

/// A chat completion that calls tools (`(id, name, arguments)`).
pub fn tool_calls(calls: &[(&str, &str, Value)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| {
            json!({"id": id, "type": "function",
                   "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    json!({
        "id": "chatcmpl-replay",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "agent-1",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": null, "tool_calls": calls},
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48}
    })
}

/// The body of an embeddings response with these vectors.
pub fn embeddings(vectors: &[Vec<f32>]) -> Value {
    json!({
        "object": "list",
        "data": vectors.iter().enumerate().map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v})).collect::<Vec<_>>(),
        "model": "embed-1",
        "usage": {"prompt_tokens": 8, "total_tokens": 8}
    })
}

impl Replay {
    /// Starts a server answering every request with `handler(path, body)`.
    pub async fn start(
        handler: impl Fn(&str, &Value) -> (u16, Value) + Send + Sync + 'static,
    ) -> Self {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let _ = sock.set_nodelay(true);
                let (seen, handler) = (seen2.clone(), handler.clone());
                tokio::spawn(async move {
                    let _ = serve(sock, seen, handler).await;
                });
            }
        });
        Self {
            url: format!("http://{addr}/v1"),
            seen,
            task,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests so far.
    pub fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// A chat model speaking to this server.
    pub fn model(&self, name: &str) -> Model {
        ModelBuilder::custom("replay", name, Protocol::OpenAiChat, &self.url)
            .api_key("test-key")
            .build()
            .unwrap()
    }

    /// An embedding model speaking to this server.
    pub fn embedder(&self, name: &str) -> Embedder {
        ModelBuilder::custom("replay", name, Protocol::OpenAiChat, &self.url)
            .api_key("test-key")
            .build_embedding()
            .unwrap()
    }
}

async fn serve(
    mut sock: TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Handler,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
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
        let path = lines
            .next()
            .unwrap_or("")
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let len: usize = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.trim().parse().unwrap())
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
        let body: Value =
            serde_json::from_slice(&buf[body_start..body_start + len]).unwrap_or(Value::Null);
        buf.drain(..body_start + len);
        seen.lock().unwrap().push(Seen {
            path: path.clone(),
            body: body.clone(),
        });
        let (status, reply) = handler(&path, &body);
        let bytes = reply.to_string().into_bytes();
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            bytes.len()
        );
        sock.write_all(head.as_bytes()).await?;
        sock.write_all(&bytes).await?;
        sock.flush().await?;
    }
}
