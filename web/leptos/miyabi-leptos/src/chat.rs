//! `<MiyabiChat>`: a chat with an agent over the UI message stream.

use leptos::prelude::*;

use crate::model::ChatMessage;

/// A chat with an agent: the conversation goes to `endpoint` (`POST {"messages": [{"role",
/// "text"}]}`), and the answer streams back into the last message as it is written — the AI
/// SDK's UI message stream protocol (`text-delta` chunks; an `error` chunk is shown in the
/// alert). On the server, [`crate::chat_events`] answers such a route for a `miyabi::Agent`.
///
/// Unstyled: the list has the class `miyabi-messages`, each message `miyabi-message` with
/// `data-role` (`user`, `assistant`), the form `miyabi-chat-form`.
#[component]
pub fn MiyabiChat(
    /// The agent route of the app (`/chat`).
    #[prop(into)]
    endpoint: String,
    /// The message box's placeholder.
    #[prop(optional, into)]
    placeholder: Option<String>,
) -> impl IntoView {
    let messages = RwSignal::new(Vec::<ChatMessage>::new());
    let draft = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error: RwSignal<Option<String>> = RwSignal::new(None);
    let send = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = draft.get_untracked();
        if busy.get_untracked() || text.trim().is_empty() {
            return;
        }
        draft.set(String::new());
        error.set(None);
        busy.set(true);
        messages.update(|m| {
            m.push(ChatMessage {
                role: "user".to_string(),
                text,
            })
        });
        let history = messages.get_untracked();
        messages.update(|m| {
            m.push(ChatMessage {
                role: "assistant".to_string(),
                text: String::new(),
            })
        });
        ask(endpoint.clone(), history, messages, busy, error);
    };
    view! {
        <section class="miyabi-chat">
            <ol class="miyabi-messages">
                <For
                    each=move || {
                        messages.get().into_iter().enumerate().collect::<Vec<_>>()
                    }
                    key=|(i, m)| (*i, m.text.clone())
                    let:item
                >
                    <li class="miyabi-message" data-role=item.1.role.clone()>
                        {item.1.text.clone()}
                    </li>
                </For>
            </ol>
            <p class="miyabi-error" role="alert" hidden=move || error.with(Option::is_none)>
                {move || error.get().unwrap_or_default()}
            </p>
            <form class="miyabi-chat-form" on:submit=send>
                <input
                    type="text"
                    name="message"
                    aria-label="Message"
                    placeholder=placeholder.unwrap_or_else(|| "Ask something".to_string())
                    prop:value=move || draft.get()
                    on:input:target=move |ev| draft.set(ev.target().value())
                />
                <button type="submit" disabled=move || busy.get()>
                    "Send"
                </button>
            </form>
        </section>
    }
}

/// Sends the conversation and streams the answer into the last (assistant) message.
#[cfg(feature = "hydrate")]
fn ask(
    endpoint: String,
    history: Vec<ChatMessage>,
    messages: RwSignal<Vec<ChatMessage>>,
    busy: RwSignal<bool>,
    error: RwSignal<Option<String>>,
) {
    leptos::task::spawn_local(async move {
        let body = serde_json::json!({ "messages": history });
        let result = crate::client::post_events(&endpoint, &body, |data| {
            if data == "[DONE]" {
                return;
            }
            let Ok(chunk) = serde_json::from_str::<serde_json::Value>(data) else {
                return;
            };
            match chunk.get("type").and_then(serde_json::Value::as_str) {
                Some("text-delta") => {
                    let delta = chunk
                        .get("delta")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    messages.update(|m| {
                        if let Some(last) = m.last_mut() {
                            last.text.push_str(&delta);
                        }
                    });
                }
                Some("error") => error.set(Some(
                    chunk
                        .get("errorText")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("the agent failed")
                        .to_string(),
                )),
                _ => {}
            }
        })
        .await;
        if let Err(f) = result {
            error.set(Some(f.message));
        }
        busy.set(false);
    });
}

#[cfg(not(feature = "hydrate"))]
fn ask(
    _endpoint: String,
    _history: Vec<ChatMessage>,
    _messages: RwSignal<Vec<ChatMessage>>,
    busy: RwSignal<bool>,
    _error: RwSignal<Option<String>>,
) {
    busy.set(false);
}
