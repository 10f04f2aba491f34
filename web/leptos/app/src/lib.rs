//! The example app: one page with `<MiyabiWorkflow>` for the workflow `publish` (draft → an
//! approval gate → publish), rendered on the server by axum and hydrated in the browser.
//! `main.rs` is the server (feature `ssr`); `hydrate()` is the browser's entry point (feature
//! `hydrate`, built to wasm by `scripts/build-leptos`).

use leptos::prelude::*;
use miyabi_leptos::{MiyabiApi, MiyabiChat, MiyabiWorkflow, RunResult};

/// The page.
#[component]
pub fn App() -> impl IntoView {
    // Where main.rs mounts Miyabi's router; the components find the API here.
    provide_context(MiyabiApi::new("/miyabi/api"));
    let run = run_in_url();
    let (completed, set_completed) = signal(None::<RunResult>);
    view! {
        <main>
            <h1>"Publish a post"</h1>
            <p>"A draft is written, an editor approves it (and may edit it), then it is published."</p>
            <MiyabiWorkflow
                workflow="publish"
                run=run
                input=serde_json::json!({ "topic": "durable workflows" })
                on_start=|id: String| show_run_in_url(&id)
                on_complete=move |result: RunResult| set_completed.set(Some(result))
            />
            <p id="completed">
                {move || {
                    completed
                        .get()
                        .map(|r| {
                            format!(
                                "on_complete: {} {}",
                                r.status,
                                r.output.map(|o| o.to_string()).unwrap_or_default(),
                            )
                        })
                }}
            </p>
            <h2>"Ask the assistant"</h2>
            <MiyabiChat endpoint="/chat" placeholder="Ask about the post" />
        </main>
    }
}

/// The run in the page's URL (`/?run=<id>`): from the request on the server, from
/// `location.search` in the browser, so both render the same run.
fn run_in_url() -> Option<String> {
    #[cfg(feature = "ssr")]
    let query = use_context::<axum::http::request::Parts>()
        .and_then(|p| p.uri.query().map(str::to_string))
        .unwrap_or_default();
    #[cfg(feature = "hydrate")]
    let query = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    let query = String::new();
    query
        .trim_start_matches('?')
        .split('&')
        .find_map(|kv| kv.strip_prefix("run="))
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_string)
}

/// Puts a started run into the URL, so a reload renders it on the server.
fn show_run_in_url(id: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.replace_state_with_url(
            &wasm_bindgen::JsValue::NULL,
            "",
            Some(&format!("?run={id}")),
        );
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = id;
}

/// The HTML document around [`App`] (server only): the hydration scripts load
/// `/pkg/miyabi_leptos_app.js` and its wasm.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <title>"Miyabi × Leptos"</title>
                // No favicon request.
                <link rel="icon" href="data:," />
                <style>{STYLE}</style>
                <HydrationScripts options />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The page's style: the components are unstyled; this styles their `miyabi-*` classes.
#[cfg(feature = "ssr")]
const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 46rem; color: #1d232b; }
textarea { width: 100%; font-family: ui-monospace, monospace; font-size: 0.85rem; }
.miyabi-start, .miyabi-gate { border: 1px solid #d5dae1; border-radius: 8px; padding: 1rem; margin: 1rem 0; }
.miyabi-input span, .miyabi-gate-data span, .miyabi-gate-comment span { display: block; font-weight: 600; margin-bottom: .25rem; }
.miyabi-gate-comment input { width: 100%; margin-bottom: .75rem; }
.miyabi-steps { padding-left: 1.25rem; }
.miyabi-step { margin: .25rem 0; }
.miyabi-step-status { padding: 0 .5rem; border-radius: 999px; background: #eef1f5; font-size: .8rem; }
.miyabi-step[data-status=succeeded] .miyabi-step-status { background: #d9f2e1; }
.miyabi-step[data-status=suspended] .miyabi-step-status { background: #fdf0c8; }
.miyabi-step[data-status=failed] .miyabi-step-status { background: #f8d7d7; }
.miyabi-error, .miyabi-run-error { color: #b42318; }
.miyabi-gate { background: #fffbeb; border-color: #f3d27a; }
.miyabi-gate-title { margin-top: 0; }
button { margin-right: .5rem; padding: .4rem .9rem; }
.miyabi-output { background: #f4f6f8; padding: .75rem; border-radius: 6px; }
#completed { font-weight: 600; color: #05603a; }
.miyabi-messages { padding-left: 0; list-style: none; }
.miyabi-message { margin: .35rem 0; padding: .5rem .75rem; border-radius: 8px; white-space: pre-wrap; }
.miyabi-message[data-role=user] { background: #e8f0fe; }
.miyabi-message[data-role=assistant] { background: #f4f6f8; }
.miyabi-chat-form input { width: 70%; padding: .4rem; }
";

/// The browser's entry point, called by the hydration script.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    // A mark for tests and scripts: the page is interactive from here on.
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
