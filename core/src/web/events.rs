//! A run's events for web clients: followed across suspensions and other processes, as
//! server-sent events or WebSocket messages.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use bytes::BytesMut;

use super::sse::{SseBody, write_json_event};
use super::{engine_error, error_response};
use crate::error::EngineError;
use crate::workflow::{EventKind, RunEvent};
use crate::{CommittedWorkflow, Engine};

/// How often a run that is not executing in this engine (suspended, or driven by another
/// process on the same database) is looked at in the store.
const POLL: Duration = Duration::from_millis(250);

/// The `Last-Event-ID` header (what a reconnecting `EventSource` sends) as the last sequence
/// number the client has; `None` when absent or not a number.
pub fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A run's events from a sequence number on, as a [`Stream`]: see [`follow_events`].
pub struct EventFollower {
    rx: mpsc::Receiver<Result<RunEvent, EngineError>>,
}

impl Stream for EventFollower {
    type Item = Result<RunEvent, EngineError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Follows run `run_id` from event `from` (1 for all): the stored events, then live ones while
/// it executes in this engine, and — while it is suspended or driven by another process —
/// whatever the store gains. Ends after the `run-finished` that ends the log (a retried run has
/// earlier ones), or with the error. Each event comes
/// once, in order. Dropping the stream stops the following task.
pub fn follow_events(engine: &Engine, run_id: &str, from: u64) -> EventFollower {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(follow(engine.clone(), run_id.to_string(), from.max(1), tx));
    EventFollower { rx }
}

async fn follow(
    engine: Engine,
    run_id: String,
    mut next: u64,
    sink: mpsc::Sender<Result<RunEvent, EngineError>>,
) {
    loop {
        let mut events = Box::pin(engine.events(&run_id, next));
        let mut got = false;
        loop {
            tokio::select! {
                biased;
                _ = sink.closed() => return,
                item = events.next() => match item {
                    Some(Ok(ev)) => {
                        if ev.seq < next {
                            continue;
                        }
                        next = ev.seq + 1;
                        got = true;
                        // A retried run has an earlier `run-finished`: the stream ends at the
                        // one that is the log's last event.
                        let end = matches!(ev.kind, EventKind::RunFinished { .. })
                            && engine
                                .store()
                                .last_seq(&run_id)
                                .is_ok_and(|last| last <= ev.seq);
                        if sink.send(Ok(ev)).await.is_err() || end {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        let _ = sink.send(Err(e)).await;
                        return;
                    }
                    None => break,
                },
            }
        }
        drop(events);
        if !got {
            // Nothing new: a run that has ended and whose log is fully sent is done.
            let store = engine.store();
            match store.run(&run_id) {
                Ok(Some(r)) if r.status.is_terminal() => match store.last_seq(&run_id) {
                    Ok(last) if last < next => return,
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = sink.send(Err(e.into())).await;
                        return;
                    }
                },
                Ok(None) => return,
                Ok(Some(_)) => {}
                Err(e) => {
                    let _ = sink.send(Err(e.into())).await;
                    return;
                }
            }
        }
        tokio::select! {
            _ = sink.closed() => return,
            _ = tokio::time::sleep(if got { Duration::ZERO } else { POLL }) => {}
        }
    }
}

/// One event as an SSE event: `id:` its sequence number, `event:` its type, `data:` its JSON.
fn sse_event(r: Result<RunEvent, EngineError>, buf: &mut BytesMut) {
    match r {
        Ok(ev) => write_json_event(buf, Some(ev.seq), Some(ev.type_name()), &ev),
        Err(e) => write_json_event(
            buf,
            None,
            Some("error"),
            &json!({ "error": { "code": e.code().as_str(), "message": e.to_string() } }),
        ),
    }
}

/// The events as a `text/event-stream` response.
fn sse_response(events: EventFollower) -> Response {
    SseBody::new(events, sse_event).into_response()
}

fn not_found(run_id: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("run `{run_id}` not found"),
    )
}

/// Run `run_id`'s events as server-sent events, after event `last` (the client's
/// `Last-Event-ID`, see [`last_event_id`]; `None`: from the first), until `run-finished`; a
/// comment every 15 s keeps proxies from closing a quiet stream. An unknown run is a 404.
pub fn run_events(engine: &Engine, run_id: &str, last: Option<u64>) -> Response {
    match engine.store().run(run_id) {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(run_id),
        Err(e) => return engine_error(&e.into()),
    }
    let from = last.map_or(1, |l| l.saturating_add(1));
    sse_response(follow_events(engine, run_id, from))
}

/// Starts a run of `workflow` with `input` and answers with its events as server-sent events
/// (header `x-run-id` names the run, so a client can reconnect to [`run_events`]). A bad input
/// is a 400/422 naming the field, before anything is stored.
pub async fn stream_run(engine: &Engine, workflow: &CommittedWorkflow, input: Value) -> Response {
    let run = match engine.spawn(workflow, input) {
        Ok(h) => h.id().to_string(),
        Err(e) => return engine_error(&e),
    };
    let mut res = sse_response(follow_events(engine, &run, 1));
    if let Ok(v) = HeaderValue::from_str(&run) {
        res.headers_mut().insert("x-run-id", v);
    }
    res
}

/// Run `run_id`'s events over a WebSocket (one JSON text message per event, after event
/// `last`), closed after `run-finished`; an error is sent as `{"error": {...}}` before closing.
/// Text the client sends is ignored; its close ends the stream.
pub fn ws_run_events(
    ws: WebSocketUpgrade,
    engine: &Engine,
    run_id: &str,
    last: Option<u64>,
) -> Response {
    match engine.store().run(run_id) {
        Ok(Some(_)) => {}
        Ok(None) => return not_found(run_id),
        Err(e) => return engine_error(&e.into()),
    }
    let events = follow_events(engine, run_id, last.map_or(1, |l| l.saturating_add(1)));
    ws.on_upgrade(move |socket| send_events(socket, events))
}

async fn send_events(mut socket: WebSocket, mut events: EventFollower) {
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            item = events.next() => {
                let text = match item {
                    Some(Ok(ev)) => serde_json::to_string(&ev).unwrap_or_else(|_| "{}".into()),
                    Some(Err(e)) => json!({ "error": { "code": e.code().as_str(), "message": e.to_string() } }).to_string(),
                    None => {
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    }
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
        }
    }
}
