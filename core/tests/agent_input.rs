#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! A tool that asks a human a question (`ToolError::InputRequired`): as a workflow step the run
//! suspends with `{"kind": "tool-input", ..}` and resumes with the answer — checked by the
//! engine against the question's schema before anything is written, also from a second engine
//! on the same SQLite file — and the tool runs again with the answer; a plain `generate` stops
//! with `StopReason::InputRequired` and `Agent::resume` goes on with the answer.

mod agent_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agent_support::{Scripted, calls, last_tool_results, text};
use async_trait::async_trait;
use futures::StreamExt;
use miyabi::agent::{AgentEvent, StopReason};
use miyabi::tool::{InputAnswer, InputRequest};
use miyabi::{Agent, AgentError, Engine, EngineError, RunStatus, Tool, ToolContext, ToolError};
use miyabi::{Workflow, agent::AgentResponse};
use serde_json::{Value, json};

/// Books a table: asks which day (a form question), once per call until answered.
struct Book {
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl Tool for Book {
    fn name(&self) -> &str {
        "book"
    }

    fn description(&self) -> &str {
        "Books a table on a day the human picks"
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"people": {"type": "integer"}}, "required": ["people"]})
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let question = InputRequest::form(
            format!("Which day for {} people?", args["people"]),
            json!({"type": "object", "properties": {"day": {"type": "string", "enum": ["fri", "sat"]}}, "required": ["day"]}),
        )
        .detail("desk", "front");
        let answer = ctx
            .inputs()
            .iter()
            .find(|i| i.request.same_question(&question))
            .map(|i| i.answer.clone());
        match answer {
            None => Err(ToolError::input_required("book", question)),
            Some(InputAnswer::Accept { content }) => Ok(json!({"booked": content["day"]})),
            Some(other) => Ok(json!({"booked": null, "because": format!("{other:?}")})),
        }
    }
}

fn agent(model: Arc<Scripted>, calls: &Arc<AtomicUsize>) -> Agent {
    Agent::new("host").model(model).tool(Book {
        calls: Arc::clone(calls),
    })
}

#[tokio::test]
async fn a_step_suspends_for_input_and_resumes_with_the_checked_answer_from_another_engine() {
    let model = Scripted::new(vec![
        calls(&[("c1", "book", json!({"people": 2}))]),
        text("Booked for Saturday."),
    ]);
    let count = Arc::new(AtomicUsize::new(0));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let wf = Workflow::new("dinner")
        .step("host", agent(model.clone(), &count))
        .commit()
        .unwrap();
    let engine = Engine::sqlite(&db).unwrap();
    let run = engine.start(&wf, json!("a table for two")).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    let payload = &run.suspended[0].payload;
    assert_eq!(payload["kind"], "tool-input");
    assert_eq!(payload["agent"], "host");
    assert_eq!(
        payload["pending"],
        json!([{
            "call_id": "c1", "tool": "book", "arguments": {"people": 2},
            "message": "Which day for 2 people?", "desk": "front",
            "schema": {"type": "object", "properties": {"day": {"type": "string", "enum": ["fri", "sat"]}}, "required": ["day"]},
        }])
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
    drop(engine);

    let engine = Engine::sqlite(&db).unwrap();
    engine.register(&wf);
    let e = engine
        .resume(
            &run.id,
            "host",
            json!({"c1": {"action": "accept", "content": {"day": "sun"}}}),
        )
        .await
        .unwrap_err();
    match &e {
        EngineError::Schema(v) => assert_eq!(v.pointer, "/c1/content/day", "{e}"),
        other => panic!("expected a schema violation, got {other}"),
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "a refused answer runs nothing"
    );
    let run = engine
        .resume(
            &run.id,
            "host",
            json!({"c1": {"action": "accept", "content": {"day": "sat"}}}),
        )
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output, Some(json!("Booked for Saturday.")));
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let results = last_tool_results(&model.requests()[1]);
    assert_eq!(results[0].content, json!({"booked": "sat"}));
    assert!(!results[0].is_error);
    assert_eq!(
        model.calls(),
        2,
        "the model is not asked again for the turn"
    );
}

#[tokio::test]
async fn generate_stops_for_input_and_resume_goes_on_with_the_answer() {
    let model = Scripted::new(vec![
        calls(&[("c1", "book", json!({"people": 4}))]),
        text("No table then."),
    ]);
    let count = Arc::new(AtomicUsize::new(0));
    let host = agent(model.clone(), &count);
    let r: AgentResponse = host.generate("a table for four").await.unwrap();
    assert_eq!(r.stop, StopReason::InputRequired);
    assert!(r.pending.is_empty());
    assert_eq!(r.pending_inputs.len(), 1);
    assert_eq!(
        r.pending_inputs[0].request.message,
        "Which day for 4 people?"
    );
    let checkpoint = r.checkpoint.clone().unwrap();
    assert_eq!(checkpoint.pending_inputs(), r.pending_inputs);

    // A bad answer is an error naming the call and the field; approvals are not answers.
    let e = host
        .resume(
            checkpoint.clone(),
            &json!({"c1": {"action": "accept", "content": {}}}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, AgentError::BadResume { .. }), "{e}");
    assert!(
        e.to_string().contains("c1") && e.to_string().contains("day"),
        "{e}"
    );
    let e = host
        .resume(checkpoint.clone(), &json!({"approved": true}))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no tool call `approved` waits"),
        "{e}"
    );

    // Streamed: the answered call's result, then the rest of the loop.
    let mut events = host.resume_stream(checkpoint, json!({"c1": {"action": "decline"}}));
    let mut results = Vec::new();
    let mut last = None;
    while let Some(ev) = events.next().await {
        match ev.unwrap() {
            AgentEvent::ToolResult { result, .. } => results.push(result),
            AgentEvent::Finish { response } => last = Some(response),
            _ => {}
        }
    }
    let last = last.unwrap();
    assert_eq!(last.stop, StopReason::Done);
    assert_eq!(last.text, "No table then.");
    assert_eq!(
        results[0].content,
        json!({"booked": null, "because": "Decline"})
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);

    // A streamed generation says what waits.
    let model = Scripted::new(vec![calls(&[("c9", "book", json!({"people": 1}))])]);
    let mut events = agent(model, &count).stream("one");
    let mut asked = None;
    while let Some(ev) = events.next().await {
        if let AgentEvent::InputRequired { pending } = ev.unwrap() {
            asked = Some(pending);
        }
    }
    assert_eq!(asked.unwrap()[0].call_id, "c9");
}
