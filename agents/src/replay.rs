//! A replayed model for tests and the demo: a loopback HTTP server that answers OpenAI Chat
//! Completions requests from a script, so presets and pipelines run without an API key.
//!
//! The script gives each agent its replies in order. A request is matched to an agent by its
//! system message (a preset's instructions begin `You are the <Agent> of Miyabi`), and the reply
//! is picked by how many assistant messages the request already holds — so the answer depends
//! only on the conversation, not on the order requests arrive in: agents running in parallel,
//! or a pipeline restarted after a crash, get the same answers. A key `"<Agent>|<needle>"`
//! applies to that agent's conversations whose first user message contains the needle (two
//! tasks of the same agent, or a review after a fix), before the plain `"<Agent>"` key.
//!
//! ```json
//! {"IssueAgent": [{"calls": [{"name": "label_set", "arguments": {}}]},
//!                 {"json": {"kind": "bug", "priority": "P1", "severity": "high", "labels": ["type:bug"], "summary": "..."}}],
//!  "PRAgent": [{"text": "..."}]}
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use miyabi::LanguageModel;
use miyabi::model::{ModelBuilder, Protocol};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One scripted reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Answer with this text.
    Text(String),
    /// Answer with this JSON, as text (a structured answer).
    Json(Value),
    /// Call these tools (`{"name", "arguments"}`), all in one turn.
    Calls(Vec<ScriptedCall>),
}

/// A scripted tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptedCall {
    /// The tool's name.
    pub name: String,
    /// Its arguments.
    #[serde(default)]
    pub arguments: Value,
}

impl Reply {
    /// One tool call.
    pub fn call(name: &str, arguments: Value) -> Self {
        Reply::Calls(vec![ScriptedCall {
            name: name.to_owned(),
            arguments,
        }])
    }
}

/// Replies per agent (`"IssueAgent"`, `"CodeGenAgent"`...), in conversation order.
pub type Script = BTreeMap<String, Vec<Reply>>;

/// Why the replay server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// Binding the loopback port failed.
    #[error("replay server: {0}")]
    Io(#[from] std::io::Error),
    /// The script file is not a script.
    #[error("replay script {path}: {reason}")]
    Script {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The model could not be built.
    #[error("replay model: {0}")]
    Model(#[from] miyabi::ModelError),
}

/// A running replay server (stops when dropped).
#[derive(Debug)]
pub struct ReplayServer {
    url: String,
    requests: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
}

/// Reads a script from a JSON file.
pub fn load_script(path: &std::path::Path) -> Result<Script, ReplayError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReplayError::Script {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| ReplayError::Script {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl ReplayServer {
    /// Starts serving `script` on 127.0.0.1 (a free port).
    pub fn start(script: Script) -> Result<Self, ReplayError> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (Arc::clone(&requests), Arc::clone(&stop));
        let script = Arc::new(script);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(sock) = conn else { continue };
                let (log, script) = (Arc::clone(&log), Arc::clone(&script));
                std::thread::spawn(move || serve(sock, &script, &log));
            }
        });
        Ok(Self {
            url,
            requests,
            stop,
        })
    }

    /// The base URL (`http://127.0.0.1:<port>`), to use as an OpenAI-compatible base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A model that calls this server.
    pub fn model(&self) -> Result<Arc<dyn LanguageModel>, ReplayError> {
        let m =
            ModelBuilder::custom("replay", "scripted", Protocol::OpenAiChat, &self.url).build()?;
        Ok(Arc::new(m))
    }

    /// The request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(addr) = self.url.strip_prefix("http://") {
            let _ = TcpStream::connect(addr);
        }
    }
}

/// Which agent a request is for, its first user message, and its reply index.
fn route(body: &Value) -> (Option<String>, String, usize) {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let system = messages
        .iter()
        .find(|m| m["role"] == "system")
        .map(|m| m["content"].to_string())
        .unwrap_or_default();
    let agent = system.split("You are the ").nth(1).and_then(|rest| {
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        (!name.is_empty()).then_some(name)
    });
    let turn = messages.iter().filter(|m| m["role"] == "assistant").count();
    let first_user = messages
        .iter()
        .find(|m| m["role"] == "user")
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    (agent, first_user, turn)
}

/// The replies for a request: `"<Agent>|<needle>"` when the first user message contains the
/// needle (the first such key in order), else `"<Agent>"`.
fn replies<'a>(script: &'a Script, agent: &str, first_user: &str) -> Option<&'a Vec<Reply>> {
    let prefix = format!("{agent}|");
    script
        .iter()
        .find(|(k, _)| {
            k.strip_prefix(&prefix)
                .is_some_and(|needle| first_user.contains(needle))
        })
        .map(|(_, v)| v)
        .or_else(|| script.get(agent))
}

fn render(reply: &Reply, turn: usize, stream: bool) -> String {
    let (message, finish) = match reply {
        Reply::Text(t) => (json!({"role": "assistant", "content": t}), "stop"),
        Reply::Json(v) => (
            json!({"role": "assistant", "content": v.to_string()}),
            "stop",
        ),
        Reply::Calls(calls) => {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    json!({"index": i, "id": format!("call_{turn}_{i}"), "type": "function",
                           "function": {"name": c.name, "arguments": c.arguments.to_string()}})
                })
                .collect();
            (
                json!({"role": "assistant", "content": null, "tool_calls": calls}),
                "tool_calls",
            )
        }
    };
    let usage = json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120});
    if !stream {
        return json!({"id": "replay", "object": "chat.completion", "created": 0, "model": "scripted",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage})
        .to_string();
    }
    let first = json!({"id": "replay", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
        "choices": [{"index": 0, "delta": message, "finish_reason": null}]});
    let last = json!({"id": "replay", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
        "choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": usage});
    format!("data: {first}\n\ndata: {last}\n\ndata: [DONE]\n\n")
}

fn serve(mut sock: TcpStream, script: &Script, log: &Mutex<Vec<Value>>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        match sock.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + 4 + len {
        match sock.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let end = (head_end + 4 + len).min(buf.len());
    let body: Value = serde_json::from_slice(&buf[head_end + 4..end]).unwrap_or(Value::Null);
    let stream = body["stream"] == true;
    let (agent, first_user, turn) = route(&body);
    if let Ok(mut l) = log.lock() {
        l.push(body);
    }
    let reply = agent
        .as_ref()
        .and_then(|a| replies(script, a, &first_user))
        .and_then(|r| r.get(turn));
    let (status, ctype, payload) = match reply {
        Some(r) => (
            "200 OK",
            if stream {
                "text/event-stream"
            } else {
                "application/json"
            },
            render(r, turn, stream),
        ),
        None => (
            "400 Bad Request",
            "application/json",
            json!({"error": {"message": format!(
                "replay script has no reply {turn} for {}",
                agent.as_deref().unwrap_or("a request without a `You are the <Agent>` system message")
            )}})
            .to_string(),
        ),
    };
    let _ = write!(
        sock,
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
        payload.len()
    );
}
