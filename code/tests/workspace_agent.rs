#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The workspace, git and repository-map tools used by a real `miyabi::Agent`, driven by a
//! scripted model: the agent greps, reads, edits, escapes nothing, and the model sees each
//! tool's result (errors included).

use std::collections::VecDeque;
use std::fs;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use miyabi::Agent;
use miyabi::model::{
    ContentPart, EventStream, FinishReason, LanguageModel, ModelError, ModelRequest, ModelResponse,
    Role, ToolCall, ToolResult, Usage,
};
use miyabi_code::{Git, RepoMap, Workspace};
use serde_json::{Value, json};

#[derive(Default)]
struct Scripted {
    replies: Mutex<VecDeque<ModelResponse>>,
    seen: Mutex<Vec<ModelRequest>>,
}

#[async_trait]
impl LanguageModel for Scripted {
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        self.seen.lock().unwrap().push(req.clone());
        Ok(self
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .expect("the script has no more replies"))
    }

    async fn stream(&self, _req: &ModelRequest) -> Result<EventStream, ModelError> {
        panic!("this test only generates")
    }
}

fn reply(content: Vec<ContentPart>, finish: FinishReason) -> ModelResponse {
    ModelResponse {
        content,
        finish_reason: finish,
        raw_finish_reason: None,
        usage: Usage::default(),
        cost_usd: None,
        response_id: None,
        request_id: None,
        model: None,
    }
}

fn call(id: &str, name: &str, args: Value) -> ModelResponse {
    reply(
        vec![ContentPart::ToolCall(ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: args,
        })],
        FinishReason::ToolCalls,
    )
}

fn results(req: &ModelRequest) -> Vec<ToolResult> {
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

#[tokio::test]
async fn an_agent_greps_reads_and_edits_with_the_workspace_tools() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    fs::create_dir_all(p.join("src")).unwrap();
    fs::write(
        p.join("src/lib.rs"),
        "pub fn answer() -> u32 {\n    41\n}\n",
    )
    .unwrap();
    let ws = Workspace::new(p).unwrap();
    let model = Arc::new(Scripted::default());
    model.replies.lock().unwrap().extend([
        call("1", "grep", json!({"pattern": "fn answer", "context": 1})),
        call(
            "2",
            "write_file",
            json!({"path": "../outside.txt", "content": "x"}),
        ),
        call(
            "3",
            "edit",
            json!({"path": "src/lib.rs", "old_string": "    41\n", "new_string": "    42\n"}),
        ),
        call("4", "find_symbol", json!({"name": "answer"})),
        reply(vec![ContentPart::text("fixed")], FinishReason::Stop),
    ]);
    let mut tools = ws.tools();
    tools.extend(Git::for_workspace(&ws).tools());
    tools.extend(RepoMap::new(&ws).tools());
    let agent = Agent::new("coder")
        .model(model.clone() as Arc<dyn LanguageModel>)
        .instructions("Fix the answer.")
        .tools(tools)
        .max_steps(8);
    let answer = agent.generate("make answer() return 42").await.unwrap();
    assert_eq!(answer.text, "fixed");
    assert_eq!(
        fs::read_to_string(p.join("src/lib.rs")).unwrap(),
        "pub fn answer() -> u32 {\n    42\n}\n"
    );
    assert!(!p.parent().unwrap().join("outside.txt").exists());

    let seen = model.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5);
    let names: Vec<&str> = seen[0].tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 15, "{names:?}");
    let grep = &results(&seen[1])[0];
    assert_eq!(
        grep.content,
        json!("src/lib.rs:1:pub fn answer() -> u32 {\nsrc/lib.rs-2-    41\n")
    );
    let escape = &results(&seen[2])[0];
    assert!(escape.is_error);
    assert!(
        escape.content.as_str().unwrap().contains("contains `..`"),
        "{escape:?}"
    );
    let edit = &results(&seen[3])[0];
    assert!(!edit.is_error);
    assert!(
        edit.content
            .as_str()
            .unwrap()
            .contains("-    41\n+    42\n"),
        "{edit:?}"
    );
    let found = &results(&seen[4])[0];
    assert!(
        found
            .content
            .as_str()
            .unwrap()
            .starts_with("definitions of `answer` (1):\nsrc/lib.rs:1: [function]"),
        "{found:?}"
    );
}
