//! The browser side (feature `hydrate`): the API's routes with `fetch`, a run's events with
//! `EventSource`.

use serde_json::Value;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{EventSource, Headers, MessageEvent, Request, RequestInit, Response};

use crate::model::{MiyabiApi, RunView};

/// Every event type of a run's stream (`event:` of the server-sent events; named events do not
/// reach `onmessage`).
const EVENT_TYPES: [&str; 10] = [
    "run-started",
    "step-started",
    "step-output",
    "step-suspended",
    "step-failed",
    "step-retrying",
    "run-resumed",
    "run-suspended",
    "run-finished",
    "custom",
];

fn js_error(what: &str, e: JsValue) -> String {
    let detail = e
        .as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{e:?}"));
    format!("{what}: {detail}")
}

/// A failed request: the HTTP status (0 when no answer came) and what went wrong.
pub(crate) struct Failure {
    pub(crate) status: u16,
    pub(crate) message: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self { status: 0, message }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Self::from(message.to_string())
    }
}

/// Sends a request to the API and reads its JSON answer; an error status becomes the API's own
/// message (`{"error": {"code", "message"}}`).
pub(crate) async fn request(
    api: &MiyabiApi,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> Result<Value, Failure> {
    let init = RequestInit::new();
    init.set_method(method);
    let headers = Headers::new().map_err(|e| js_error("building the request", e))?;
    if let Some(token) = &api.token {
        headers
            .set("authorization", &format!("Bearer {token}"))
            .map_err(|e| js_error("building the request", e))?;
    }
    if let Some(body) = body {
        headers
            .set("content-type", "application/json")
            .map_err(|e| js_error("building the request", e))?;
        init.set_body(&JsValue::from_str(&body.to_string()));
    }
    init.set_headers(&headers);
    let req = Request::new_with_str_and_init(url, &init)
        .map_err(|e| js_error(&format!("{method} {url}"), e))?;
    let window = web_sys::window().ok_or("no window: the component runs outside a browser")?;
    let resp: Response = JsFuture::from(window.fetch_with_request(&req))
        .await
        .map_err(|e| js_error(&format!("{method} {url}"), e))?
        .dyn_into()
        .map_err(|e| js_error(&format!("{method} {url}"), e))?;
    let text = JsFuture::from(
        resp.text()
            .map_err(|e| js_error(&format!("{method} {url}"), e))?,
    )
    .await
    .map_err(|e| js_error(&format!("{method} {url}"), e))?
    .as_string()
    .unwrap_or_default();
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !resp.ok() {
        let message = json
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("status {}", resp.status()));
        return Err(Failure {
            status: resp.status(),
            message: format!("{method} {url}: {message}"),
        });
    }
    Ok(json)
}

/// Reads a run through the API (`None` when the API answers 404).
pub(crate) async fn load_run(api: MiyabiApi, id: String) -> Result<Option<RunView>, String> {
    let url = api.url(&format!("/runs/{}", crate::model::encode_segment(&id)));
    match request(&api, "GET", &url, None).await {
        Ok(body) => RunView::from_api(&body).map(Some),
        Err(f) if f.status == 404 => Ok(None),
        Err(f) => Err(f.message),
    }
}

/// An open event stream; dropping it closes the stream.
pub(crate) struct Follower {
    source: EventSource,
    _listener: Closure<dyn FnMut(MessageEvent)>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.source.close();
    }
}

/// Opens `url` (a run's events) and calls `on_event` with each event's JSON; the stream is
/// closed when `on_event` returns true (the run finished: a reconnecting `EventSource` would
/// otherwise ask again). `EventSource` reconnects by itself after a network error, sending
/// `Last-Event-ID`, so nothing is lost or repeated.
pub(crate) fn follow(
    url: &str,
    mut on_event: impl FnMut(Value) -> bool + 'static,
) -> Result<Follower, String> {
    let source = EventSource::new(url).map_err(|e| js_error(&format!("opening {url}"), e))?;
    let closer = source.clone();
    let listener = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let Some(text) = e.data().as_string() else {
            return;
        };
        let Ok(event) = serde_json::from_str::<Value>(&text) else {
            return;
        };
        if on_event(event) {
            closer.close();
        }
    });
    for kind in EVENT_TYPES {
        source
            .add_event_listener_with_callback(kind, listener.as_ref().unchecked_ref())
            .map_err(|e| js_error(&format!("listening to {url}"), e))?;
    }
    Ok(Follower {
        source,
        _listener: listener,
    })
}
