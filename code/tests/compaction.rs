//! Long sessions: a session's thread past the threshold of the model's context window is
//! compacted into a summary plus the latest requests, and the rewritten history is what a
//! resumed session (another process, the same file) reads.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use miyabi::Memory;
use miyabi::model::{
    ContentPart, EventStream, FinishReason, LanguageModel, Message, ModelError, ModelRequest,
    ModelResponse, Role, Usage,
};
use miyabi_code::agent::{SUMMARY_HEADING, compact, estimate_tokens};

/// A model that answers every request with a fixed summary and records what it was asked.
#[derive(Default)]
struct Summariser {
    seen: Mutex<Vec<ModelRequest>>,
}

#[async_trait]
impl LanguageModel for Summariser {
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        self.seen.lock().unwrap().push(req.clone());
        Ok(ModelResponse {
            content: vec![ContentPart::Text {
                text: "SUMMARY: fixed calc.sh (subtracted), tests pass.".into(),
            }],
            finish_reason: FinishReason::Stop,
            raw_finish_reason: None,
            usage: Usage::default(),
            cost_usd: None,
            response_id: None,
            request_id: None,
            model: None,
        })
    }

    async fn stream(&self, _req: &ModelRequest) -> Result<EventStream, ModelError> {
        unreachable!("compaction does not stream")
    }
}

fn request(i: usize) -> Vec<Message> {
    vec![
        Message::user(format!(
            "request {i}: {}",
            "please look at calc.sh ".repeat(40)
        )),
        Message::assistant(format!("answer {i}: {}", "I changed the line. ".repeat(60))),
    ]
}

#[tokio::test]
async fn a_long_session_is_compacted_and_a_resumed_session_reads_the_compacted_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sessions.db");
    let memory = Memory::sqlite(&db).unwrap();
    for i in 1..=4 {
        memory.append("s1", Some("me"), &request(i)).await.unwrap();
    }
    let model = Arc::new(Summariser::default());
    let all: Vec<Message> = memory
        .last_messages("s1", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message)
        .collect();
    let tokens = estimate_tokens(&all);

    // Below the threshold: nothing happens, the model is not called.
    let none = compact(&memory, "s1", model.as_ref(), tokens * 2, 0.8, 1)
        .await
        .unwrap();
    assert_eq!(none, None);
    assert!(model.seen.lock().unwrap().is_empty());

    // Past it: the first three requests become a summary; the last request stays as it was.
    let c = compact(&memory, "s1", model.as_ref(), tokens, 0.8, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.replaced, c.kept), (6, 2));
    assert!(c.tokens_after < c.tokens_before / 2, "{c:?}");
    let asked = model.seen.lock().unwrap()[0].messages[1].text();
    assert!(asked.contains("request 1") && asked.contains("answer 3"));
    assert!(
        !asked.contains("request 4"),
        "the kept request is not summarised"
    );

    // Another process opening the same file sees the compacted history.
    drop(memory);
    let reopened = Memory::sqlite(&db).unwrap();
    let thread: Vec<Message> = reopened
        .last_messages("s1", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message)
        .collect();
    assert_eq!(thread.len(), 3);
    assert_eq!(thread[0].role, Role::User);
    assert!(thread[0].text().starts_with(SUMMARY_HEADING));
    assert!(thread[0].text().contains("fixed calc.sh"));
    assert!(thread[1].text().starts_with("request 4"));
    assert!(thread[2].text().starts_with("answer 4"));
}
