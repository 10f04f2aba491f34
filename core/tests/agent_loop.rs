#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The agent's tool loop through the public API, with a scripted model: tool rounds, parallel
//! calls, errors fed back, structured output and its repair, stop conditions, streaming,
//! approval outside a workflow, memory history and working memory.

mod agent_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agent_support::{Scripted, calls, last_tool_results, text};
use futures::StreamExt;
use miyabi::agent::{AgentCheckpoint, AgentEvent, StopReason, TurnKind};
use miyabi::model::{Role, Usage};
use miyabi::tool::tool_json;
use miyabi::{Agent, AgentError, AgentInput, Memory, ToolContext, tool_fn};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, JsonSchema)]
struct Pair {
    a: i64,
    b: i64,
}

fn math_tools(counter: Arc<AtomicUsize>) -> Vec<miyabi::tool::FnTool> {
    let c1 = counter.clone();
    let c2 = counter;
    vec![
        tool_fn(
            "add",
            "Adds two integers",
            move |_ctx: ToolContext, p: Pair| {
                let c = c1.clone();
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(p.a + p.b)
                }
            },
        ),
        tool_fn(
            "mul",
            "Multiplies two integers",
            move |_ctx: ToolContext, p: Pair| {
                let c = c2.clone();
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(p.a * p.b)
                }
            },
        ),
    ]
}

#[tokio::test]
async fn two_tool_rounds_then_answer() {
    let model = Scripted::new(vec![
        calls(&[("c1", "add", json!({"a": 2, "b": 3}))]),
        calls(&[("c2", "mul", json!({"a": 5, "b": 4}))]),
        text("The answer is 20."),
    ]);
    let counter = Arc::new(AtomicUsize::new(0));
    let agent = Agent::new("calc")
        .model(model.clone())
        .instructions("You compute.")
        .tools(math_tools(counter.clone()));
    let r = agent.generate("(2+3)*4?").await.unwrap();
    assert_eq!(r.text, "The answer is 20.");
    assert_eq!(r.stop, StopReason::Done);
    assert_eq!(r.turns.len(), 3);
    assert_eq!(counter.load(Ordering::SeqCst), 2);
    assert_eq!(
        r.usage,
        Usage {
            input_tokens: 30,
            output_tokens: 11,
            ..Usage::default()
        }
    );
    assert_eq!(r.turns[0].tool_results[0].content, json!(5));
    assert_eq!(r.turns[1].tool_results[0].content, json!(20));

    let reqs = model.requests();
    assert_eq!(reqs.len(), 3);
    // Every request: the system message first, both tools offered with derived schemas.
    for req in &reqs {
        assert_eq!(req.messages[0].role, Role::System);
        assert_eq!(req.messages[0].text(), "You compute.");
        let names: Vec<_> = req.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["add", "mul"]);
        assert_eq!(req.tools[0].parameters["required"], json!(["a", "b"]));
    }
    // The second request carries the first call's result; the third the second's.
    assert_eq!(last_tool_results(&reqs[1])[0].content, json!(5));
    assert_eq!(last_tool_results(&reqs[1])[0].call_id, "c1");
    assert_eq!(last_tool_results(&reqs[2])[0].content, json!(20));
    // system, user, assistant(call), tool, assistant(call), tool
    assert_eq!(reqs[2].messages.len(), 6);
    // New messages: user, assistant, tool, assistant, tool, assistant.
    assert_eq!(r.messages.len(), 6);
    assert_eq!(r.messages[0].role, Role::User);
    assert_eq!(r.messages[5].text(), "The answer is 20.");
}

// The clock is paused: the calls' sleeps take no real time, and the order they finish in
// follows their virtual durations exactly.
#[tokio::test(start_paused = true)]
async fn parallel_tool_calls_run_concurrently() {
    let model = Scripted::new(vec![
        calls(&[
            ("a", "slow", json!({"ms": 300, "tag": "first"})),
            ("b", "slow", json!({"ms": 300, "tag": "second"})),
            ("c", "slow", json!({"ms": 10, "tag": "third"})),
        ]),
        text("all done"),
    ]);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (f, p, done) = (in_flight.clone(), peak.clone(), finished.clone());
    let slow = tool_json(
        "slow",
        "Sleeps",
        json!({"type": "object", "properties": {"ms": {"type": "integer"}, "tag": {"type": "string"}}, "required": ["ms", "tag"]}),
        move |_ctx: ToolContext, args: Value| {
            let (f, p, done) = (f.clone(), p.clone(), done.clone());
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(args["ms"].as_u64().unwrap())).await;
                f.fetch_sub(1, Ordering::SeqCst);
                done.lock().unwrap().push(args["tag"].clone());
                Ok::<_, String>(args["tag"].clone())
            }
        },
    );
    let agent = Agent::new("par").model(model.clone()).tool(slow);
    let r = agent.generate("go").await.unwrap();
    assert_eq!(r.text, "all done");
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "all three calls were in flight at once"
    );
    // The short call, issued last, finished first: it did not wait for the long ones.
    assert_eq!(finished.lock().unwrap()[0], json!("third"));
    // Results go back in call order, whatever order they finished in.
    let results = last_tool_results(&model.requests()[1]);
    let ids: Vec<_> = results.iter().map(|r| r.call_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let tags: Vec<_> = results.iter().map(|r| r.content.clone()).collect();
    assert_eq!(tags, [json!("first"), json!("second"), json!("third")]);
}

#[tokio::test]
async fn tool_errors_go_back_to_the_model() {
    let model = Scripted::new(vec![
        calls(&[
            ("e1", "fails", json!({"what": "disk"})),
            ("e2", "add", json!({"a": "two", "b": 3})),
            ("e3", "nope", json!({})),
            ("e4", "add", json!({"a": 1, "b": 1})),
        ]),
        text("recovered"),
    ]);
    let fails = tool_json(
        "fails",
        "Always fails",
        json!({"type": "object", "properties": {"what": {"type": "string"}}}),
        |_ctx: ToolContext, args: Value| async move {
            Err::<Value, _>(format!("{} is on fire", args["what"].as_str().unwrap()))
        },
    );
    let counter = Arc::new(AtomicUsize::new(0));
    let agent = Agent::new("errs")
        .model(model.clone())
        .tool(fails)
        .tools(math_tools(counter.clone()));
    let r = agent.generate("try").await.unwrap();
    assert_eq!(r.text, "recovered");
    assert_eq!(
        counter.load(Ordering::SeqCst),
        1,
        "only the valid add call ran"
    );
    let results = last_tool_results(&model.requests()[1]);
    assert_eq!(results.len(), 4);
    assert!(results[0].is_error);
    assert_eq!(
        results[0].content,
        json!("tool `fails` failed: disk is on fire")
    );
    assert!(results[1].is_error);
    let invalid = results[1].content.as_str().unwrap();
    assert!(
        invalid.starts_with("invalid arguments for tool `add` at `/a`"),
        "{invalid}"
    );
    assert!(results[2].is_error);
    assert_eq!(
        results[2].content,
        json!("there is no tool named `nope` (available: fails, add, mul)")
    );
    assert!(!results[3].is_error);
    assert_eq!(results[3].content, json!(2));
}

#[derive(Deserialize, JsonSchema)]
#[allow(dead_code)]
struct Review {
    quality: f64,
    summary: String,
}

#[tokio::test]
async fn structured_output_with_one_repair() {
    let model = Scripted::new(vec![
        text("Quality is good, around 0.9."),
        text("```json\n{\"quality\": 0.9, \"summary\": \"fine\"}\n```"),
    ]);
    let agent = Agent::new("reviewer")
        .model(model.clone())
        .output_type::<Review>();
    let r = agent.generate("review this").await.unwrap();
    assert_eq!(r.object, Some(json!({"quality": 0.9, "summary": "fine"})));
    assert_eq!(r.turns.len(), 2);
    assert_eq!(r.turns[1].kind, TurnKind::Repair);
    let reqs = model.requests();
    let fmt = reqs[0].response_format.as_ref().unwrap();
    assert_eq!(fmt.schema["required"], json!(["quality", "summary"]));
    let repair = reqs[1].messages.last().unwrap();
    assert_eq!(repair.role, Role::User);
    assert!(
        repair.text().contains("the answer is not JSON"),
        "{}",
        repair.text()
    );

    // A second bad answer is a typed error naming the reason.
    let model = Scripted::new(vec![
        text("{\"quality\": \"high\"}"),
        text("{\"quality\": \"very high\"}"),
    ]);
    let agent = Agent::new("reviewer")
        .model(model.clone())
        .output_type::<Review>();
    match agent.generate("review").await {
        Err(AgentError::StructuredOutput { reason, text, .. }) => {
            assert!(
                reason.contains("\"summary\" is a required property"),
                "{reason}"
            );
            assert_eq!(text, "{\"quality\": \"very high\"}");
        }
        other => panic!("expected a structured-output error, got {other:?}"),
    }
    assert_eq!(model.calls(), 2, "exactly one repair attempt");
    let repair = model.requests()[1].messages.last().unwrap().text();
    assert!(repair.contains("summary"), "{repair}");
}

#[tokio::test]
async fn stop_conditions_max_steps_final_tool_predicate() {
    let looping: Vec<_> = (0..10)
        .map(|i| calls(&[(&format!("c{i}"), "add", json!({"a": i, "b": 1}))]))
        .collect();
    let model = Scripted::new(looping.clone());
    let agent = Agent::new("loop")
        .model(model.clone())
        .tools(math_tools(Arc::new(AtomicUsize::new(0))))
        .max_steps(3);
    let r = agent.generate("forever").await.unwrap();
    assert_eq!(r.stop, StopReason::MaxSteps);
    assert_eq!(model.calls(), 3);

    // A final tool ends the loop with its result.
    let model = Scripted::new(vec![
        calls(&[("f", "submit", json!({"verdict": "ship it"}))]),
        text("never asked"),
    ]);
    let submit = tool_json(
        "submit",
        "Submit the verdict",
        json!({"type": "object", "properties": {"verdict": {"type": "string"}}, "required": ["verdict"]}),
        |_ctx: ToolContext, args: Value| async move { Ok::<_, String>(args) },
    )
    .final_tool(true);
    let agent = Agent::new("final").model(model.clone()).tool(submit);
    let r = agent.generate("decide").await.unwrap();
    assert_eq!(
        r.stop,
        StopReason::FinalTool {
            tool: "submit".into()
        }
    );
    assert_eq!(r.object, Some(json!({"verdict": "ship it"})));
    assert_eq!(model.calls(), 1);

    // A predicate over the turn.
    let model = Scripted::new(looping);
    let agent = Agent::new("pred")
        .model(model.clone())
        .tools(math_tools(Arc::new(AtomicUsize::new(0))))
        .stop_when(|turn| turn.tool_results.iter().any(|r| r.content == json!(3)));
    let r = agent.generate("until 3").await.unwrap();
    assert_eq!(r.stop, StopReason::Predicate);
    assert_eq!(model.calls(), 3, "a=2,b=1 gives 3 on the third turn");
}

#[tokio::test]
async fn streaming_events() {
    let model = Scripted::new(vec![
        calls(&[("c1", "add", json!({"a": 1, "b": 2}))]),
        text("one plus two is three"),
    ]);
    let agent = Agent::new("streamer")
        .model(model.clone())
        .tools(math_tools(Arc::new(AtomicUsize::new(0))));
    let mut stream = agent.stream("1+2");
    let mut kinds = Vec::new();
    let mut text = String::new();
    let mut response = None;
    while let Some(ev) = stream.next().await {
        let ev = ev.unwrap();
        match &ev {
            AgentEvent::TextDelta { text: t, turn } => {
                assert_eq!(*turn, 1);
                text.push_str(t);
            }
            AgentEvent::Finish { response: r } => response = Some(r.clone()),
            _ => {}
        }
        let kind = serde_json::to_value(&ev).unwrap()["type"]
            .as_str()
            .unwrap()
            .to_owned();
        if kinds.last() != Some(&kind) {
            kinds.push(kind);
        }
    }
    assert_eq!(
        kinds,
        [
            "turn_start",
            "tool_call",
            "tool_result",
            "turn_finish",
            "turn_start",
            "text_delta",
            "turn_finish",
            "finish"
        ]
    );
    assert_eq!(text, "one plus two is three");
    let response = response.unwrap();
    assert_eq!(response.text, "one plus two is three");
    assert_eq!(response.usage.input_tokens, 20);
}

#[tokio::test]
async fn approval_outside_a_workflow() {
    let deleted = Arc::new(AtomicUsize::new(0));
    let d = deleted.clone();
    let delete = tool_json(
        "delete_branch",
        "Deletes a git branch",
        json!({"type": "object", "properties": {"branch": {"type": "string"}}, "required": ["branch"]}),
        move |_ctx: ToolContext, args: Value| {
            let d = d.clone();
            async move {
                d.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(json!({"deleted": args["branch"]}))
            }
        },
    )
    .requires_approval(true);
    let model = Scripted::new(vec![
        calls(&[
            ("d1", "delete_branch", json!({"branch": "old"})),
            ("a1", "add", json!({"a": 1, "b": 1})),
        ]),
        text("deleted old"),
        calls(&[("d2", "delete_branch", json!({"branch": "main"}))]),
        text("I will not delete main"),
    ]);
    let counter = Arc::new(AtomicUsize::new(0));
    let agent = Agent::new("ops")
        .model(model.clone())
        .tool(delete)
        .tools(math_tools(counter.clone()));

    let r = agent.generate("clean up").await.unwrap();
    assert_eq!(r.stop, StopReason::ApprovalRequired);
    assert_eq!(r.pending.len(), 1);
    assert_eq!(r.pending[0].call_id, "d1");
    assert_eq!(r.pending[0].arguments, json!({"branch": "old"}));
    assert_eq!(deleted.load(Ordering::SeqCst), 0);
    assert_eq!(
        counter.load(Ordering::SeqCst),
        1,
        "the call without approval ran"
    );
    // The checkpoint survives JSON (it could be stored anywhere).
    let saved = serde_json::to_string(r.checkpoint.as_ref().unwrap()).unwrap();
    let cp: AgentCheckpoint = serde_json::from_str(&saved).unwrap();
    assert_eq!(cp.pending().len(), 1);

    let r = agent.resume(cp, &json!({"approved": true})).await.unwrap();
    assert_eq!(r.text, "deleted old");
    assert_eq!(deleted.load(Ordering::SeqCst), 1);
    assert_eq!(
        counter.load(Ordering::SeqCst),
        1,
        "the add call did not run again"
    );
    assert_eq!(model.calls(), 2);
    let results = last_tool_results(&model.requests()[1]);
    assert_eq!(results[0].content, json!({"deleted": "old"}));
    assert_eq!(results[1].content, json!(2));

    // Declined: the model is told, the tool does not run.
    let r = agent.generate("delete main").await.unwrap();
    let cp = r.checkpoint.unwrap();
    let r = agent
        .resume(
            cp,
            &json!({"decisions": {"d2": {"approved": false, "reason": "main is protected"}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.text, "I will not delete main");
    assert_eq!(deleted.load(Ordering::SeqCst), 1);
    let results = last_tool_results(&model.requests()[3]);
    assert!(results[0].is_error);
    assert_eq!(
        results[0].content,
        json!("a human declined the call of tool `delete_branch`: main is protected")
    );
    // Bad decisions are typed errors.
    let again = Scripted::new(vec![calls(&[(
        "d3",
        "delete_branch",
        json!({"branch": "x"}),
    )])]);
    let agent2 = Agent::new("ops").model(again).tool(
        tool_json(
            "delete_branch",
            "Deletes",
            json!({"type": "object"}),
            |_c: ToolContext, _a: Value| async move { Ok::<_, String>(json!(null)) },
        )
        .requires_approval(true),
    );
    let cp = agent2.generate("x").await.unwrap().checkpoint.unwrap();
    let err = agent2.resume(cp, &json!({"yes": 1})).await.unwrap_err();
    assert!(matches!(err, AgentError::BadResume { .. }), "{err}");
}

#[tokio::test]
async fn memory_history_and_working_memory() {
    let dir = tempfile::tempdir().unwrap();
    let memory = Memory::sqlite(dir.path().join("mem.db")).unwrap();
    let model = Scripted::new(vec![
        calls(&[("r1", "remember", json!({"key": "name", "value": "Aiko"}))]),
        text("Nice to meet you, Aiko."),
        text("You are Aiko."),
    ]);
    let agent = Agent::new("buddy")
        .model(model.clone())
        .instructions_fn(|ctx| {
            format!(
                "Speak {}.",
                ctx.context["lang"].as_str().unwrap_or("English")
            )
        })
        .memory(memory.clone())
        .working_memory(true)
        .last_messages(10);
    let input = AgentInput::prompt("I am Aiko")
        .thread("t1")
        .resource("user-1")
        .context(json!({"lang": "Japanese"}));
    let r = agent.generate(input).await.unwrap();
    assert_eq!(r.text, "Nice to meet you, Aiko.");
    assert_eq!(
        memory.resource("user-1").get("name").await.unwrap(),
        Some(json!("Aiko"))
    );
    let r = agent
        .generate(
            AgentInput::prompt("Who am I?")
                .thread("t1")
                .resource("user-1"),
        )
        .await
        .unwrap();
    assert_eq!(r.text, "You are Aiko.");
    let reqs = model.requests();
    let system = reqs[0].messages[0].text();
    assert!(system.starts_with("Speak Japanese."), "{system}");
    assert!(
        system.contains("Working memory (resource:user-1"),
        "{system}"
    );
    let system = reqs[2].messages[0].text();
    assert!(system.starts_with("Speak English."), "{system}");
    assert!(system.contains("{\"name\":\"Aiko\"}"), "{system}");
    // History: the first exchange (4 messages), then the new prompt.
    let roles: Vec<Role> = reqs[2].messages[1..].iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Assistant,
            Role::User
        ]
    );
    let info = memory.thread_info("t1").await.unwrap().unwrap();
    assert_eq!(info.messages, 6);
    assert_eq!(info.resource.as_deref(), Some("user-1"));

    // A window that would start with a tool result starts at the next user message instead.
    let model = Scripted::new(vec![text("ok")]);
    let agent = Agent::new("buddy")
        .model(model.clone())
        .memory(memory.clone())
        .last_messages(3);
    agent
        .generate(AgentInput::prompt("again").thread("t1"))
        .await
        .unwrap();
    let sent = &model.requests()[0].messages;
    assert_eq!(sent[0].role, Role::User);
    assert_eq!(sent[0].text(), "Who am I?");
}

#[tokio::test]
async fn configuration_errors_are_reported() {
    let agent = Agent::new("nomodel");
    assert!(matches!(
        agent.generate("hi").await,
        Err(AgentError::Config { .. })
    ));
    let agent = Agent::new("bad").model("nosuchprovider/x");
    let err = agent.generate("hi").await.unwrap_err().to_string();
    assert!(err.contains("unknown provider"), "{err}");
    let bad_tool = tool_json(
        "bad name!",
        "x",
        json!({"type": "object"}),
        |_c: ToolContext, _a: Value| async move { Ok::<_, String>(json!(1)) },
    );
    let agent = Agent::new("t").model(Scripted::new(vec![])).tool(bad_tool);
    let err = agent.generate("hi").await.unwrap_err().to_string();
    assert!(err.contains("tool name"), "{err}");
    let agent = Agent::new("s")
        .model(Scripted::new(vec![]))
        .output_schema(json!({"type": 12}));
    assert!(matches!(
        agent.generate("hi").await,
        Err(AgentError::Config { .. })
    ));
    // A model failure is a typed error that keeps the provider's message.
    let agent = Agent::new("empty").model(Scripted::new(vec![]));
    match agent.generate("hi").await {
        Err(AgentError::Model { source, .. }) => {
            assert!(source.to_string().contains("no more replies"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cost_is_summed_when_every_turn_is_priced() {
    let mut a = calls(&[("c", "add", json!({"a": 1, "b": 1}))]);
    a.cost_usd = Some(0.001);
    let mut b = text("2");
    b.cost_usd = Some(0.002);
    let agent = Agent::new("priced")
        .model(Scripted::new(vec![a, b]))
        .tools(math_tools(Arc::new(AtomicUsize::new(0))));
    let r = agent.generate("1+1").await.unwrap();
    assert!((r.cost_usd.unwrap() - 0.003).abs() < 1e-12);
    let agent = Agent::new("unpriced").model(Scripted::new(vec![text("x")]));
    assert_eq!(agent.generate("?").await.unwrap().cost_usd, None);
}

#[tokio::test]
async fn tool_choice_is_sent_with_tools_only() {
    use miyabi::model::ToolChoice;
    let model = Scripted::new(vec![
        calls(&[("c", "add", json!({"a": 1, "b": 2}))]),
        text("3"),
    ]);
    let agent = Agent::new("forced")
        .model(model.clone())
        .tools(math_tools(Arc::new(AtomicUsize::new(0))))
        .tool_choice(ToolChoice::Tool("add".into()))
        .max_steps(2);
    agent.generate("1+2").await.unwrap();
    assert_eq!(
        model.requests()[0].tool_choice,
        ToolChoice::Tool("add".into())
    );
    let model = Scripted::new(vec![text("no tools")]);
    Agent::new("plain")
        .model(model.clone())
        .tool_choice(ToolChoice::Required)
        .generate("hi")
        .await
        .unwrap();
    assert_eq!(model.requests()[0].tool_choice, ToolChoice::Auto);
}
