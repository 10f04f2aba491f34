//! Shared helpers: where the official peers are, starting server-everything, a scripted model.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use miyabi::model::{
    ContentPart, EventStream, FinishReason, LanguageModel, ModelError, ModelRequest, ModelResponse,
    StreamEvent, Usage,
};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// server-everything's entry point, or `None` (with the reason printed) when node_modules
/// lacks it or node is missing.
pub fn everything() -> Option<PathBuf> {
    let entry = root().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    if !entry.exists() {
        println!(
            "SKIPPED: {} is missing (run `npm ci` at the repository root)",
            entry.display()
        );
        return None;
    }
    if std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        println!("SKIPPED: `node` is not installed");
        return None;
    }
    Some(entry)
}

/// server-everything in Streamable HTTP mode on a free loopback port; killed on drop.
pub struct HttpEverything {
    pub url: String,
    child: tokio::process::Child,
}

impl Drop for HttpEverything {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl HttpEverything {
    pub async fn start(entry: &PathBuf) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut child = tokio::process::Command::new("node")
            .arg(entry)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // It says on stderr when it listens.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("server-everything exited before listening");
            if line.contains("listening on port") {
                break;
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            url: format!("http://127.0.0.1:{port}/mcp"),
            child,
        }
    }
}

/// A model that answers every request with a fixed text and records the requests.
#[derive(Default)]
pub struct Fixed {
    pub answer: String,
    pub seen: Mutex<Vec<ModelRequest>>,
}

impl Fixed {
    pub fn new(answer: &str) -> Arc<Self> {
        Arc::new(Self {
            answer: answer.to_owned(),
            seen: Mutex::default(),
        })
    }
}

#[async_trait]
impl LanguageModel for Fixed {
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        self.seen.lock().unwrap().push(req.clone());
        Ok(ModelResponse {
            content: vec![ContentPart::text(&self.answer)],
            finish_reason: FinishReason::Stop,
            raw_finish_reason: None,
            usage: Usage::default(),
            cost_usd: None,
            response_id: None,
            request_id: None,
            model: Some("fixed".into()),
        })
    }

    async fn stream(&self, req: &ModelRequest) -> Result<EventStream, ModelError> {
        let r = self.generate(req).await?;
        let events = vec![
            StreamEvent::TextDelta { text: r.text() },
            StreamEvent::Finish {
                reason: FinishReason::Stop,
                raw: None,
            },
        ];
        Ok(Box::pin(futures::stream::iter(events.into_iter().map(Ok))))
    }
}

/// A loopback server speaking the OpenAI chat-completions protocol that replays scripted
/// answers in order and records the requests: the model of agent tests.
pub struct ReplayModel {
    pub url: String,
    pub seen: Arc<Mutex<Vec<serde_json::Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ReplayModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReplayModel {
    pub async fn start(replies: Vec<serde_json::Value>) -> Self {
        use axum::extract::State;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        type St = (
            Arc<Mutex<Vec<serde_json::Value>>>,
            Arc<Mutex<std::collections::VecDeque<serde_json::Value>>>,
        );
        let state: St = (Arc::clone(&seen), Arc::new(Mutex::new(replies.into())));
        let app = axum::Router::new()
            .route(
                "/v1/chat/completions",
                axum::routing::post(
                    |State((seen, replies)): State<St>, body: axum::Json<serde_json::Value>| async move {
                        seen.lock().unwrap().push(body.0);
                        let reply = replies.lock().unwrap().pop_front();
                        match reply {
                            Some(r) => (axum::http::StatusCode::OK, axum::Json(r)),
                            None => (
                                axum::http::StatusCode::BAD_REQUEST,
                                axum::Json(serde_json::json!({"error": {"message": "script exhausted", "type": "invalid_request_error"}})),
                            ),
                        }
                    },
                ),
            )
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, seen, task }
    }

    pub fn model(&self) -> miyabi::model::Model {
        miyabi::model::ModelBuilder::custom(
            "loopback",
            "gpt-test",
            miyabi::model::Protocol::OpenAiChat,
            &self.url,
        )
        .build()
        .unwrap()
    }

    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.seen.lock().unwrap().clone()
    }
}

/// A chat-completions answer calling tools `(id, name, arguments)`.
pub fn tool_calls(calls: &[(&str, &str, serde_json::Value)]) -> serde_json::Value {
    let calls: Vec<serde_json::Value> = calls
        .iter()
        .map(|(id, name, args)| {
            serde_json::json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    })
}

/// A chat-completions text answer.
pub fn answer(text: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-2", "object": "chat.completion", "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    })
}

/// The tool messages of a chat-completions request, by call id.
pub fn tool_messages(req: &serde_json::Value) -> Vec<(String, String)> {
    req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            (
                m["tool_call_id"].as_str().unwrap_or_default().to_owned(),
                m["content"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| m["content"].to_string()),
            )
        })
        .collect()
}
