#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! A tool whose approval depends on the arguments of each call (`Tool::approval`): the agent
//! loop runs the calls that need none and waits for a human on the others; a tool that does not
//! override the hook keeps its `requires_approval` behaviour.

mod agent_support;

use std::sync::{Arc, Mutex};

use agent_support::{Scripted, calls, last_tool_results, text};
use async_trait::async_trait;
use miyabi::agent::StopReason;
use miyabi::tool::{Tool, ToolError};
use miyabi::{Agent, ToolContext};
use serde_json::{Value, json};

/// Deletes "files": a path under `scratch/` needs no approval, anything else does.
struct Delete {
    ran: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Tool for Delete {
    fn name(&self) -> &str {
        "delete"
    }

    fn description(&self) -> &str {
        "Deletes a file"
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]})
    }

    fn approval(&self, args: &Value) -> bool {
        !args["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("scratch/"))
    }

    async fn call(&self, _ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let path = args["path"].as_str().unwrap_or_default().to_owned();
        self.ran.lock().unwrap().push(path.clone());
        Ok(json!({"deleted": path}))
    }
}

#[tokio::test]
async fn approval_is_decided_per_call_from_the_arguments() {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let model = Scripted::new(vec![
        calls(&[
            ("c1", "delete", json!({"path": "scratch/a.txt"})),
            ("c2", "delete", json!({"path": "src/main.rs"})),
        ]),
        text("done"),
    ]);
    let agent = Agent::new("cleaner")
        .model(model.clone())
        .tool(Delete { ran: ran.clone() });

    let r = agent.generate("clean up").await.unwrap();
    assert_eq!(r.stop, StopReason::ApprovalRequired);
    assert_eq!(r.pending.len(), 1, "only the call outside scratch/ waits");
    assert_eq!(r.pending[0].call_id, "c2");
    assert_eq!(r.pending[0].arguments, json!({"path": "src/main.rs"}));
    assert_eq!(*ran.lock().unwrap(), vec!["scratch/a.txt".to_owned()]);

    let r = agent
        .resume(r.checkpoint.unwrap(), &json!({"approved": true}))
        .await
        .unwrap();
    assert_eq!(r.text, "done");
    assert_eq!(
        *ran.lock().unwrap(),
        vec!["scratch/a.txt".to_owned(), "src/main.rs".to_owned()]
    );
    let results = last_tool_results(&model.requests()[1]);
    assert_eq!(results[0].content, json!({"deleted": "scratch/a.txt"}));
    assert_eq!(results[1].content, json!({"deleted": "src/main.rs"}));
}

/// A tool that only says `requires_approval` still waits on every call.
struct Legacy;

#[async_trait]
impl Tool for Legacy {
    fn name(&self) -> &str {
        "legacy"
    }

    fn description(&self) -> &str {
        "Always asks"
    }

    fn parameters(&self) -> Value {
        json!({"type": "object"})
    }

    fn requires_approval(&self) -> bool {
        true
    }

    async fn call(&self, _ctx: &ToolContext, _args: Value) -> Result<Value, ToolError> {
        Ok(json!("ran"))
    }
}

#[tokio::test]
async fn the_default_hook_keeps_requires_approval() {
    let model = Scripted::new(vec![calls(&[("l1", "legacy", json!({}))]), text("ok")]);
    let agent = Agent::new("old").model(model).tool(Legacy);
    let r = agent.generate("go").await.unwrap();
    assert_eq!(r.stop, StopReason::ApprovalRequired);
    assert_eq!(r.pending[0].call_id, "l1");
}
