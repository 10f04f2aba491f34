//! `<MiyabiWorkflow>`: a run of a workflow, server-rendered, then live.

use leptos::prelude::*;
use serde_json::Value;

use crate::model::{MiyabiApi, RunResult, RunView, Waiting};

/// What the initial render shows: the run, `None` for no run (or no such run), or why it could
/// not be read.
type Loaded = Result<Option<RunView>, String>;

/// A workflow's run, rendered on the server and followed live after hydration.
///
/// - With `run`, the server renders that run's status, steps and the gate it waits at (read
///   from the engine given with `provide_engine`); in the browser the component then follows
///   the run's events (`GET {api}/runs/{id}/events`) and updates step by step.
/// - A form starts a new run of `workflow` (`POST {api}/workflows/{id}/runs`) with the JSON
///   input typed into it (`input` fills it at first), and follows it.
/// - When the run waits at an approval gate, the gate's title, summary and data (editable
///   JSON) are shown with **Approve** and **Reject** buttons (`POST
///   {api}/approvals/{run}/{gate}/decision`; edited data is sent only when it changed, and is
///   checked against the gate's schema by the server, whose refusal is shown).
/// - `on_complete` is called once when the component sees the run finish live (not for a run
///   that had already finished when the page was rendered).
///
/// Unstyled: every part has a `miyabi-*` class and `data-status` attributes to style.
#[component]
pub fn MiyabiWorkflow(
    /// The workflow's id, as registered with the engine.
    #[prop(into)]
    workflow: String,
    /// A run to show (rendered on the server, then followed live); `None`: only the start form
    /// until a run is started.
    #[prop(optional_no_strip, into)]
    run: Option<String>,
    /// The start form's first input (JSON; `{}` by default).
    #[prop(optional)]
    input: Option<Value>,
    /// Called with the run's result when it finishes while the page is open.
    #[prop(optional, into)]
    on_complete: Option<Callback<RunResult>>,
    /// Called with a run's id when the form started it (e.g. to put it into the URL).
    #[prop(optional, into)]
    on_start: Option<Callback<String>>,
    /// Where the API is; else the `MiyabiApi` in context, else `/api` on this origin.
    #[prop(optional)]
    api: Option<MiyabiApi>,
) -> impl IntoView {
    let api = api.or_else(use_context::<MiyabiApi>).unwrap_or_default();
    let initial = OnceResource::new(load(api.clone(), run.clone()));
    // The run as events made it; `None` until the first change after the initial render.
    let live: RwSignal<Option<RunView>> = RwSignal::new(None);
    let error: RwSignal<Option<String>> = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let input_text = RwSignal::new(pretty(
        &input.unwrap_or_else(|| Value::Object(Default::default())),
    ));
    let live_run = Live {
        api: api.clone(),
        live,
        error,
        on_complete,
        #[cfg(feature = "hydrate")]
        follower: StoredValue::new_local(None),
    };

    // After hydration: follow the server-rendered run, unless it had already ended.
    Effect::new({
        let live_run = live_run.clone();
        move |_| {
            if let Some(Ok(Some(snapshot))) = initial.get()
                && live.get_untracked().is_none()
            {
                let finished = snapshot.finished();
                let (id, from) = (snapshot.id.clone(), snapshot.last_seq + 1);
                live.set(Some(snapshot));
                if !finished {
                    live_run.follow(id, from);
                }
            }
        }
    });
    // Unmounted: close the event stream.
    #[cfg(feature = "hydrate")]
    on_cleanup({
        let follower = live_run.follower;
        move || {
            follower.try_update_value(|f| f.take());
        }
    });

    let start = {
        let live_run = live_run.clone();
        let workflow = workflow.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            if busy.get_untracked() {
                return;
            }
            let parsed = serde_json::from_str::<Value>(&input_text.get_untracked());
            let input = match parsed {
                Ok(v) => v,
                Err(e) => {
                    error.set(Some(format!("The input is not valid JSON: {e}")));
                    return;
                }
            };
            error.set(None);
            busy.set(true);
            live_run.start(workflow.clone(), input, on_start, busy);
        }
    };

    view! {
        <section class="miyabi-workflow" data-workflow=workflow.clone()>
            <form class="miyabi-start" on:submit=start>
                <label class="miyabi-input">
                    <span>"Input"</span>
                    <textarea
                        name="input"
                        rows="4"
                        prop:value=move || input_text.get()
                        on:input:target=move |ev| input_text.set(ev.target().value())
                    >
                        {input_text.get_untracked()}
                    </textarea>
                </label>
                <button type="submit" disabled=move || busy.get()>
                    "Start a run"
                </button>
            </form>
            <p class="miyabi-error" role="alert" hidden=move || error.with(Option::is_none)>
                {move || error.get().unwrap_or_default()}
            </p>
            <Suspense fallback=|| view! { <p class="miyabi-loading">"Loading the run…"</p> }>
                {
                    let live_run = live_run.clone();
                    move || {
                        let live_run = live_run.clone();
                        Suspend::new(async move {
                            let loaded = initial.await;
                            run_panel(loaded, live_run)
                        })
                    }
                }
            </Suspense>
        </section>
    }
}

/// `<MastraWorkflow>`: the name of the brief's example, for [`MiyabiWorkflow`].
pub use MiyabiWorkflow as MastraWorkflow;

/// The run's part of the component: from the server's snapshot until events change it.
fn run_panel(loaded: Loaded, live_run: Live) -> impl IntoView {
    let (snapshot, load_error) = match loaded {
        Ok(v) => (v, None),
        Err(e) => (None, Some(e)),
    };
    let live = live_run.live;
    let current = Signal::derive(move || live.get().or_else(|| snapshot.clone()));
    let status = move || current.with(|r| r.as_ref().map(|r| r.status.clone()));
    let api = live_run.api.clone();
    view! {
        {load_error.map(|e| view! { <p class="miyabi-error" role="alert">{e}</p> })}
        <Show
            when=move || current.with(Option::is_some)
            fallback=|| view! { <p class="miyabi-no-run">"No run yet."</p> }
        >
            <div class="miyabi-run" data-status=status>
                <p class="miyabi-run-head">
                    "Run "
                    <code class="miyabi-run-id">
                        {move || current.with(|r| r.as_ref().map(|r| r.id.clone()))}
                    </code>
                    " of "
                    <code>{move || current.with(|r| r.as_ref().map(|r| r.workflow.clone()))}</code>
                    ": "
                    <strong class="miyabi-status">{status}</strong>
                </p>
                <ol class="miyabi-steps">
                    <For
                        each=move || current.with(|r| r.as_ref().map(|r| r.steps.clone()).unwrap_or_default())
                        key=|s| (s.path.clone(), s.status.clone())
                        let:step
                    >
                        <li class="miyabi-step" data-path=step.path.clone() data-status=step.status.clone()>
                            <span class="miyabi-step-path">{step.path.clone()}</span>
                            " "
                            <span class="miyabi-step-status">{step.status.clone()}</span>
                            {step.error.clone().map(|e| view! { <span class="miyabi-step-error">" — " {e}</span> })}
                        </li>
                    </For>
                </ol>
                <For
                    each=move || {
                        current
                            .with(|r| {
                                r.as_ref()
                                    .map(|r| r.waiting.iter().map(|w| (r.id.clone(), w.clone())).collect::<Vec<_>>())
                                    .unwrap_or_default()
                            })
                    }
                    key=|(run, w)| (run.clone(), w.path.clone())
                    children={
                        let api = api.clone();
                        let error = live_run.error;
                        move |(run, waiting)| gate_card(api.clone(), run, waiting, error)
                    }
                />
                {move || {
                    current
                        .with(|r| r.as_ref().and_then(|r| r.output.clone()))
                        .map(|o| view! { <pre class="miyabi-output">{pretty(&o)}</pre> })
                }}
                {move || {
                    current
                        .with(|r| r.as_ref().and_then(|r| r.error.clone()))
                        .map(|e| view! { <p class="miyabi-run-error">{e}</p> })
                }}
            </div>
        </Show>
    }
}

/// A suspension of the run: an approval gate's card, or a note for other suspensions.
fn gate_card(
    api: MiyabiApi,
    run: String,
    waiting: Waiting,
    error: RwSignal<Option<String>>,
) -> AnyView {
    let Some(request) = waiting.approval.clone() else {
        return view! {
            <div class="miyabi-waiting" data-path=waiting.path.clone()>
                "Waiting at " <code>{waiting.path.clone()}</code>
            </div>
        }
        .into_any();
    };
    let original = request.data.clone();
    let text = RwSignal::new(pretty(&original));
    let comment = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let gate = waiting.path.clone();
    let decide = move |approve: bool| {
        if busy.get_untracked() {
            return;
        }
        let data = if approve {
            match serde_json::from_str::<Value>(&text.get_untracked()) {
                Ok(v) if v == original => None,
                Ok(v) => Some(v),
                Err(e) => {
                    error.set(Some(format!("The data is not valid JSON: {e}")));
                    return;
                }
            }
        } else {
            None
        };
        let mut body = serde_json::json!({ "action": if approve { "approve" } else { "reject" } });
        if let Some(data) = data {
            body["data"] = data;
        }
        let comment = comment.get_untracked();
        if !comment.trim().is_empty() {
            body["comment"] = Value::String(comment);
        }
        error.set(None);
        busy.set(true);
        send_decision(api.clone(), run.clone(), gate.clone(), body, busy, error);
    };
    let approvers = request.approvers.join(", ");
    view! {
        <div class="miyabi-gate" data-gate=waiting.path.clone()>
            <h3 class="miyabi-gate-title">{request.title.clone()}</h3>
            <p class="miyabi-gate-summary">{request.summary.clone()}</p>
            <p class="miyabi-gate-approvers">"Approvers: " {approvers}</p>
            <label class="miyabi-gate-data">
                <span>"Data"</span>
                <textarea
                    name="data"
                    rows="8"
                    prop:value=move || text.get()
                    on:input:target=move |ev| {
                        // A refusal was about the data as it was.
                        error.set(None);
                        text.set(ev.target().value());
                    }
                >
                    {text.get_untracked()}
                </textarea>
            </label>
            <label class="miyabi-gate-comment">
                <span>"Comment"</span>
                <input
                    type="text"
                    name="comment"
                    prop:value=move || comment.get()
                    on:input:target=move |ev| comment.set(ev.target().value())
                />
            </label>
            <button class="miyabi-approve" on:click={
                let decide = decide.clone();
                move |_| decide(true)
            } disabled=move || busy.get()>
                "Approve"
            </button>
            <button class="miyabi-reject" on:click=move |_| decide(false) disabled=move || busy.get()>
                "Reject"
            </button>
        </div>
    }
    .into_any()
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The live side of one component: its signals, callback and event stream.
#[derive(Clone)]
struct Live {
    api: MiyabiApi,
    live: RwSignal<Option<RunView>>,
    error: RwSignal<Option<String>>,
    on_complete: Option<Callback<RunResult>>,
    /// The open event stream (browser only: an `EventSource` lives on the page's thread).
    #[cfg(feature = "hydrate")]
    follower: StoredValue<Option<crate::client::Follower>, LocalStorage>,
}

/// The initial load: the run from the engine (server) or the API (browser).
fn load(api: MiyabiApi, run: Option<String>) -> impl Future<Output = Loaded> + Send + 'static {
    #[cfg(feature = "ssr")]
    {
        let _ = api;
        let engine = crate::server::engine();
        async move {
            match run {
                Some(id) => crate::server::load_run(engine, id).await,
                None => Ok(None),
            }
        }
    }
    #[cfg(feature = "hydrate")]
    {
        send_wrapper::SendWrapper::new(async move {
            match run {
                Some(id) => crate::client::load_run(api, id).await,
                None => Ok(None),
            }
        })
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        let _ = api;
        async move {
            match run {
                Some(_) => Err("miyabi-leptos was built without `ssr` or `hydrate`".to_string()),
                None => Ok(None),
            }
        }
    }
}

#[cfg(feature = "hydrate")]
fn send_decision(
    api: MiyabiApi,
    run: String,
    gate: String,
    body: Value,
    busy: RwSignal<bool>,
    error: RwSignal<Option<String>>,
) {
    leptos::task::spawn_local(async move {
        let url = api.decision_url(&run, &gate);
        // The run continues on the server; its events bring the change.
        if let Err(f) = crate::client::request(&api, "POST", &url, Some(&body)).await {
            error.set(Some(f.message));
        }
        busy.set(false);
    });
}

#[cfg(not(feature = "hydrate"))]
fn send_decision(
    _api: MiyabiApi,
    _run: String,
    _gate: String,
    _body: Value,
    busy: RwSignal<bool>,
    _error: RwSignal<Option<String>>,
) {
    busy.set(false);
}

impl Live {
    #[cfg(feature = "hydrate")]
    fn start(
        &self,
        workflow: String,
        input: Value,
        on_start: Option<Callback<String>>,
        busy: RwSignal<bool>,
    ) {
        let this = self.clone();
        leptos::task::spawn_local(async move {
            let url = this.api.url(&format!(
                "/workflows/{}/runs",
                crate::model::encode_segment(&workflow)
            ));
            let body = serde_json::json!({ "input": input });
            match crate::client::request(&this.api, "POST", &url, Some(&body)).await {
                Ok(answer) => match answer.get("id").and_then(Value::as_str) {
                    Some(id) => {
                        this.live.set(Some(RunView::started(id, workflow)));
                        this.follow(id.to_string(), 1);
                        if let Some(cb) = on_start {
                            cb.run(id.to_string());
                        }
                    }
                    None => this
                        .error
                        .set(Some(format!("POST {url}: the answer has no run `id`"))),
                },
                Err(f) => this.error.set(Some(f.message)),
            }
            busy.set(false);
        });
    }

    #[cfg(not(feature = "hydrate"))]
    fn start(
        &self,
        _workflow: String,
        _input: Value,
        _on_start: Option<Callback<String>>,
        busy: RwSignal<bool>,
    ) {
        busy.set(false);
    }

    /// Follows run `id`'s events from `from`, replacing any stream followed before.
    #[cfg(feature = "hydrate")]
    fn follow(&self, id: String, from: u64) {
        let (live, error, on_complete) = (self.live, self.error, self.on_complete);
        let url = self.api.events_url(&id, from);
        let follower = crate::client::follow(&url, move |event| {
            let mut finished = None;
            live.update(|view| {
                let Some(view) = view.as_mut().filter(|v| v.id == id) else {
                    return;
                };
                match view.apply(&event) {
                    Ok(true) => finished = view.result(),
                    Ok(false) => {}
                    Err(e) => error.set(Some(format!("run `{id}`: {e}"))),
                }
            });
            match finished {
                Some(result) => {
                    if let Some(cb) = on_complete {
                        cb.run(result);
                    }
                    true
                }
                None => false,
            }
        });
        match follower {
            Ok(f) => self.follower.set_value(Some(f)),
            Err(e) => self.error.set(Some(e)),
        }
    }

    #[cfg(not(feature = "hydrate"))]
    fn follow(&self, _id: String, _from: u64) {
        // Nothing to follow while rendering on the server.
        let _ = (&self.live, &self.error, &self.on_complete);
    }
}
