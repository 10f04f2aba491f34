//! Shared helpers for the agent tests: a scripted `LanguageModel` that answers with prepared
//! responses in order and records every request it gets.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use miyabi::model::{
    ContentPart, EventStream, FinishReason, LanguageModel, ModelError, ModelRequest, ModelResponse,
    Role, StreamEvent, ToolCall, ToolResult, Usage,
};
use serde_json::Value;

/// A model that replays prepared responses and records the requests.
#[derive(Default)]
pub struct Scripted {
    replies: Mutex<VecDeque<Result<ModelResponse, ModelError>>>,
    seen: Mutex<Vec<ModelRequest>>,
    pub delay: Duration,
}

impl Scripted {
    pub fn new(replies: Vec<ModelResponse>) -> Arc<Self> {
        Self::script(replies.into_iter().map(Ok).collect())
    }

    /// A model that answers each call only after `delay` (and has no replies).
    pub fn slow(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            delay,
            ..Self::default()
        })
    }

    /// Replies that may be errors.
    pub fn script(replies: Vec<Result<ModelResponse, ModelError>>) -> Arc<Self> {
        Arc::new(Self {
            replies: Mutex::new(replies.into()),
            ..Self::default()
        })
    }

    pub fn requests(&self) -> Vec<ModelRequest> {
        self.seen.lock().unwrap().clone()
    }

    pub fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn remaining(&self) -> usize {
        self.replies.lock().unwrap().len()
    }

    fn next(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        self.seen.lock().unwrap().push(req.clone());
        self.replies.lock().unwrap().pop_front().unwrap_or_else(|| {
            Err(ModelError::InvalidRequest(Box::new(
                miyabi::model::ErrorContext {
                    provider: "scripted".into(),
                    model: "script".into(),
                    message: "the script has no more replies".into(),
                    ..Default::default()
                },
            )))
        })
    }
}

#[async_trait]
impl LanguageModel for Scripted {
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.next(req)
    }

    async fn stream(&self, req: &ModelRequest) -> Result<EventStream, ModelError> {
        let r = self.next(req)?;
        let mut events = vec![StreamEvent::Start {
            id: None,
            model: None,
        }];
        let mut index = 0;
        for part in &r.content {
            match part {
                ContentPart::Text { text } => {
                    // One delta per word, as a provider would split it.
                    for piece in text.split_inclusive(' ') {
                        events.push(StreamEvent::TextDelta {
                            text: piece.to_owned(),
                        });
                    }
                }
                ContentPart::Reasoning { text, .. } => {
                    events.push(StreamEvent::ReasoningDelta { text: text.clone() })
                }
                ContentPart::ToolCall(call) => {
                    events.push(StreamEvent::ToolCallStart {
                        index,
                        id: call.id.clone(),
                        name: call.name.clone(),
                    });
                    events.push(StreamEvent::ToolCallDelta {
                        index,
                        delta: call.arguments.to_string(),
                    });
                    events.push(StreamEvent::ToolCallEnd {
                        index,
                        call: call.clone(),
                    });
                    index += 1;
                }
                _ => {}
            }
        }
        events.push(StreamEvent::Usage { usage: r.usage });
        events.push(StreamEvent::Finish {
            reason: r.finish_reason,
            raw: None,
        });
        Ok(Box::pin(futures::stream::iter(events.into_iter().map(Ok))))
    }
}

fn usage(i: u64, o: u64) -> Usage {
    Usage {
        input_tokens: i,
        output_tokens: o,
        ..Usage::default()
    }
}

/// A retryable provider failure (HTTP 503).
pub fn server_error() -> ModelError {
    ModelError::Server(Box::new(miyabi::model::ErrorContext {
        provider: "scripted".into(),
        model: "script".into(),
        status: Some(503),
        message: "overloaded".into(),
        ..Default::default()
    }))
}

/// A text answer (10 input, 5 output tokens).
pub fn text(t: &str) -> ModelResponse {
    ModelResponse {
        content: vec![ContentPart::text(t)],
        finish_reason: FinishReason::Stop,
        raw_finish_reason: Some("stop".into()),
        usage: usage(10, 5),
        cost_usd: None,
        response_id: None,
        request_id: None,
        model: None,
    }
}

/// A turn with tool calls `(id, name, arguments)` (10 input, 3 output tokens).
pub fn calls(list: &[(&str, &str, Value)]) -> ModelResponse {
    ModelResponse {
        content: list
            .iter()
            .map(|(id, name, args)| {
                ContentPart::ToolCall(ToolCall {
                    id: (*id).to_owned(),
                    name: (*name).to_owned(),
                    arguments: args.clone(),
                })
            })
            .collect(),
        finish_reason: FinishReason::ToolCalls,
        raw_finish_reason: Some("tool_calls".into()),
        usage: usage(10, 3),
        cost_usd: None,
        response_id: None,
        request_id: None,
        model: None,
    }
}

/// The tool results of the last tool message of a request.
pub fn last_tool_results(req: &ModelRequest) -> Vec<ToolResult> {
    req.messages
        .iter()
        .rev()
        .find(|m| m.role == Role::Tool)
        .map(|m| {
            m.content
                .iter()
                .filter_map(|p| match p {
                    ContentPart::ToolResult(r) => Some(r.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
