//! The server side (feature `ssr`): runs read from the engine while the page renders.

use leptos::prelude::{provide_context, use_context};
use serde_json::json;

use crate::model::RunView;

/// The engine the components read runs from while rendering on the server.
#[derive(Clone)]
pub struct MiyabiEngine(pub miyabi::Engine);

impl std::fmt::Debug for MiyabiEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MiyabiEngine")
    }
}

/// Gives the components `engine` for server-side rendering. Call it in the context function
/// of the Leptos handler (`leptos_axum::render_app_async_with_context(move ||
/// provide_engine(engine.clone()), ...)`).
pub fn provide_engine(engine: miyabi::Engine) {
    provide_context(MiyabiEngine(engine));
}

/// The engine given with [`provide_engine`], if any (read in the component's body: contexts
/// are not reachable from inside its futures).
pub(crate) fn engine() -> Option<miyabi::Engine> {
    use_context::<MiyabiEngine>().map(|e| e.0)
}

/// The run `id` as the API's `GET /api/runs/{id}` shows it, read from `engine`, with the
/// sequence number of its last event (read first: events after it that the snapshot already
/// shows are applied again harmlessly).
pub(crate) async fn load_run(
    engine: Option<miyabi::Engine>,
    id: String,
) -> Result<Option<RunView>, String> {
    let engine = engine.ok_or(
        "miyabi-leptos: no engine to render the run with: call `miyabi_leptos::provide_engine(engine)` in the Leptos handler's context",
    )?;
    let store_err = |e: miyabi::StoreError| format!("reading run `{id}`: {e}");
    let last_seq = engine.store().last_seq(&id).map_err(store_err)?;
    let Some(run) = engine
        .get(&id)
        .await
        .map_err(|e| format!("reading run `{id}`: {e}"))?
    else {
        return Ok(None);
    };
    let mut steps = engine.store().steps(&id).map_err(store_err)?;
    steps.sort_by(|a, b| (a.updated_at, &a.path).cmp(&(b.updated_at, &b.path)));
    let mut view = RunView::from_api(&json!({ "run": run, "steps": steps }))?;
    view.last_seq = last_seq;
    Ok(Some(view))
}

/// An agent's answer to `messages` in the AI SDK's UI message stream protocol, as server-sent
/// events: each item is one event (`data: <chunk>\n\n`), the last one `data: [DONE]\n\n`.
/// Serve them with `content-type: text/event-stream` and `x-vercel-ai-ui-message-stream: v1`.
///
/// Chunks: `start`; per model call `start-step`, `text-start` / `text-delta` / `text-end` (id
/// `text-<turn>`), `finish-step`; `finish` (with the finish reason); or `error` with the error's
/// message (Miyabi's model errors name the provider and status, never a key). Reasoning, tool
/// calls and approval requests are not sent (the generation stops at an approval).
pub fn chat_events(
    agent: &miyabi::Agent,
    messages: &[crate::model::ChatMessage],
) -> impl futures::Stream<Item = String> + Send + 'static {
    use futures::StreamExt;
    use miyabi::agent::AgentEvent;
    use miyabi::model::Message;

    let input: Vec<Message> = messages
        .iter()
        .map(|m| {
            if m.role == "assistant" {
                Message::assistant(m.text.clone())
            } else {
                Message::user(m.text.clone())
            }
        })
        .collect();
    let events = agent.stream(input);
    let sse = |chunk: serde_json::Value| format!("data: {chunk}\n\n");
    struct State<S> {
        events: S,
        open_text: Option<String>,
        queue: std::collections::VecDeque<String>,
        done: bool,
    }
    let state = State {
        events,
        open_text: None,
        queue: [sse(json!({ "type": "start" }))].into(),
        done: false,
    };
    futures::stream::unfold(state, move |mut st| async move {
        loop {
            if let Some(item) = st.queue.pop_front() {
                return Some((item, st));
            }
            if st.done {
                return None;
            }
            let next = st.events.next().await;
            let close_text = |st: &mut State<_>| {
                if let Some(id) = st.open_text.take() {
                    st.queue
                        .push_back(sse(json!({ "type": "text-end", "id": id })));
                }
            };
            match next {
                Some(Ok(AgentEvent::TurnStart { .. })) => {
                    st.queue.push_back(sse(json!({ "type": "start-step" })));
                }
                Some(Ok(AgentEvent::TextDelta { turn, text })) => {
                    let id = format!("text-{turn}");
                    if st.open_text.as_deref() != Some(id.as_str()) {
                        close_text(&mut st);
                        st.queue
                            .push_back(sse(json!({ "type": "text-start", "id": id })));
                        st.open_text = Some(id.clone());
                    }
                    st.queue.push_back(sse(
                        json!({ "type": "text-delta", "id": id, "delta": text }),
                    ));
                }
                Some(Ok(AgentEvent::TurnFinish { .. })) => {
                    close_text(&mut st);
                    st.queue.push_back(sse(json!({ "type": "finish-step" })));
                }
                Some(Ok(AgentEvent::Finish { response })) => {
                    close_text(&mut st);
                    // The last model call's reason; `tool-calls` while calls await approval.
                    let reason = if response.pending.is_empty() {
                        response
                            .turns
                            .last()
                            .and_then(|t| serde_json::to_value(t.finish_reason).ok())
                            .and_then(|v| v.as_str().map(|r| r.replace('_', "-")))
                            .unwrap_or_else(|| "stop".to_string())
                    } else {
                        "tool-calls".to_string()
                    };
                    st.queue
                        .push_back(sse(json!({ "type": "finish", "finishReason": reason })));
                    st.queue.push_back("data: [DONE]\n\n".to_string());
                    st.done = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    close_text(&mut st);
                    st.queue
                        .push_back(sse(json!({ "type": "error", "errorText": e.to_string() })));
                    st.queue.push_back("data: [DONE]\n\n".to_string());
                    st.done = true;
                }
                None => {
                    close_text(&mut st);
                    st.queue.push_back("data: [DONE]\n\n".to_string());
                    st.done = true;
                }
            }
        }
    })
}
