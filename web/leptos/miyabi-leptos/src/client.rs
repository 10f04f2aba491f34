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

/// POSTs `body` (JSON) to `url` and calls `on_data` with the `data:` of each server-sent event
/// of the answer as it arrives (events are split on the bytes `\n\n`, so a character cut between
/// two reads is never decoded in halves).
pub(crate) async fn post_events(
    url: &str,
    body: &Value,
    mut on_data: impl FnMut(&str),
) -> Result<(), Failure> {
    let what = format!("POST {url}");
    let init = RequestInit::new();
    init.set_method("POST");
    let headers = Headers::new().map_err(|e| js_error(&what, e))?;
    headers
        .set("content-type", "application/json")
        .map_err(|e| js_error(&what, e))?;
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(&body.to_string()));
    let req = Request::new_with_str_and_init(url, &init).map_err(|e| js_error(&what, e))?;
    let window = web_sys::window().ok_or("no window: the component runs outside a browser")?;
    let resp: Response = JsFuture::from(window.fetch_with_request(&req))
        .await
        .map_err(|e| js_error(&what, e))?
        .dyn_into()
        .map_err(|e| js_error(&what, e))?;
    if !resp.ok() {
        return Err(Failure {
            status: resp.status(),
            message: format!("{what}: status {}", resp.status()),
        });
    }
    let stream = resp
        .body()
        .ok_or(format!("{what}: the answer has no body"))?;
    let reader: web_sys::ReadableStreamDefaultReader = stream
        .get_reader()
        .dyn_into()
        .map_err(|e| js_error(&what, e.into()))?;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| js_error(&what, e))?;
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
            .map_err(|e| js_error(&what, e))?
            .as_bool()
            .unwrap_or(true);
        if done {
            return Ok(());
        }
        let value = js_sys::Reflect::get(&chunk, &JsValue::from_str("value"))
            .map_err(|e| js_error(&what, e))?;
        pending.extend(js_sys::Uint8Array::new(&value).to_vec());
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&event);
            for line in text.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    on_data(data.trim_start());
                }
            }
        }
    }
}
