//! A scripted `LanguageModel` for the shell tool's agent tests: it answers with prepared
//! responses in order and records every request it gets.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use miyabi::model::{
    ContentPart, EventStream, FinishReason, LanguageModel, ModelError, ModelRequest, ModelResponse,
    Role, ToolCall, ToolResult, Usage,
};
use serde_json::Value;

/// A model that replays prepared responses and records the requests.
#[derive(Default)]
pub struct Scripted {
    replies: Mutex<VecDeque<ModelResponse>>,
    seen: Mutex<Vec<ModelRequest>>,
}

impl Scripted {
    pub fn new(replies: Vec<ModelResponse>) -> Arc<Self> {
        Arc::new(Self {
            replies: Mutex::new(replies.into()),
            seen: Mutex::default(),
        })
    }

    pub fn requests(&self) -> Vec<ModelRequest> {
        self.seen.lock().unwrap().clone()
    }

    fn next(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        self.seen.lock().unwrap().push(req.clone());
        self.replies.lock().unwrap().pop_front().ok_or_else(|| {
            ModelError::InvalidRequest(Box::new(miyabi::model::ErrorContext {
                provider: "scripted".into(),
                model: "script".into(),
                message: "the script has no more replies".into(),
                ..Default::default()
            }))
        })
    }
}

#[async_trait]
impl LanguageModel for Scripted {
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        self.next(req)
    }

    async fn stream(&self, _req: &ModelRequest) -> Result<EventStream, ModelError> {
        Err(ModelError::InvalidRequest(Box::new(
            miyabi::model::ErrorContext {
                provider: "scripted".into(),
                model: "script".into(),
                message: "the scripted model does not stream".into(),
                ..Default::default()
            },
        )))
    }
}

fn usage() -> Usage {
    Usage {
        input_tokens: 10,
        output_tokens: 3,
        ..Usage::default()
    }
}

/// A text answer.
pub fn text(t: &str) -> ModelResponse {
    ModelResponse {
        content: vec![ContentPart::text(t)],
        finish_reason: FinishReason::Stop,
        raw_finish_reason: Some("stop".into()),
        usage: usage(),
        cost_usd: None,
        response_id: None,
        request_id: None,
        model: None,
    }
}

/// A turn with tool calls `(id, name, arguments)`.
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
        usage: usage(),
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
