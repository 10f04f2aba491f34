//! Live streams: one run's events over SSE, and the dashboard WebSocket.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::access::Identity;
use super::{ApiError, AppState};
use crate::EngineError;
use crate::store::RunSummary;
use crate::{EventKind, RunEvent};

/// Sends `run`'s events from `next` on into `sink` (wrapped by `wrap`): the stored ones, then
/// live ones while the run executes in this engine, and — while it is suspended or driven by
/// another process — whatever the store gains, looked at every `poll`. Returns after
/// the `run-finished` that ends the log (a retried run has earlier ones), when the sink is
/// gone, or at shutdown.
async fn follow<T: Send + 'static>(
    state: AppState,
    run_id: String,
    mut next: u64,
    sink: mpsc::Sender<T>,
    wrap: impl Fn(Result<RunEvent, EngineError>) -> T + Send + 'static,
) {
    let shutdown = state.shutdown.clone();
    let poll = state.config.poll;
    loop {
        let mut events = Box::pin(state.engine.events(&run_id, next));
        let mut got = false;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
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
                            && state
                                .engine
                                .store()
                                .last_seq(&run_id)
                                .is_ok_and(|last| last <= ev.seq);
                        if sink.send(wrap(Ok(ev))).await.is_err() || end {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        let _ = sink.send(wrap(Err(e))).await;
                        return;
                    }
                    None => break,
                },
            }
        }
        drop(events);
        if !got {
            // Nothing new: a run that has ended (and whose log is fully sent) is done.
            match state.engine.store().run(&run_id) {
                Ok(Some(r)) if r.status.is_terminal() => {
                    match state.engine.store().last_seq(&run_id) {
                        Ok(last) if last < next => return,
                        Ok(_) => continue,
                        Err(e) => {
                            let _ = sink.send(wrap(Err(e.into()))).await;
                            return;
                        }
                    }
                }
                Ok(None) => return,
                Ok(Some(_)) => {}
                Err(e) => {
                    let _ = sink.send(wrap(Err(e.into()))).await;
                    return;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sink.closed() => return,
            _ = tokio::time::sleep(if got { Duration::ZERO } else { poll }) => {}
        }
    }
}

/// `?from=` of the events route.
#[derive(Deserialize)]
pub(crate) struct FromQuery {
    from: Option<u64>,
}

/// `GET /api/runs/{id}/events`: server-sent events, `id:` = the event's sequence number,
/// `event:` = its type. Resumes after `Last-Event-ID` (or from `?from=`).
pub(crate) async fn sse(
    State(state): State<AppState>,
    Extension(who): Extension<Arc<Identity>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<FromQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let from_query = q.ok().and_then(|Query(q)| q.from);
    let from_header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|last| last + 1);
    let from = from_header.or(from_query).unwrap_or(1).max(1);
    super::routes::run_in_scope(&state, &who, &id)?;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(follow(state, id, from, tx, |r| r));
    let stream = receiver_stream(rx).map(|r| -> Result<Event, Infallible> {
        Ok(match r {
            Ok(ev) => {
                let data = serde_json::to_string(&ev).unwrap_or_else(|_| "{}".into());
                Event::default()
                    .id(ev.seq.to_string())
                    .event(ev.type_name())
                    .data(data)
            }
            Err(e) => Event::default().event("error").data(
                json!({ "error": { "code": e.code().as_str(), "message": e.to_string() } })
                    .to_string(),
            ),
        })
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn receiver_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

/// `GET /api/ws`: the dashboard WebSocket (protocol in `docs/server.md`).
pub(crate) async fn ws(
    State(state): State<AppState>,
    Extension(who): Extension<Arc<Identity>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade.on_upgrade(move |socket| dashboard(state, who, socket))
}

/// A client message: `{"subscribe": "<run id>" | "runs", "from": n}` or
/// `{"unsubscribe": ...}`.
#[derive(Deserialize)]
struct ClientMessage {
    subscribe: Option<String>,
    unsubscribe: Option<String>,
    from: Option<u64>,
}

async fn dashboard(state: AppState, who: Arc<Identity>, mut socket: WebSocket) {
    let (out_tx, mut out_rx) = mpsc::channel::<Value>(1024);
    let mut subs: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(msg) = out_rx.recv() => {
                if socket.send(Message::Text(msg.to_string().into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let reply = handle_message(&state, &who, &text, &out_tx, &mut subs).await;
                if let Some(reply) = reply
                    && socket.send(Message::Text(reply.to_string().into())).await.is_err()
                {
                    break;
                }
            }
        }
    }
    for (_, h) in subs {
        h.abort();
    }
}

fn ws_error(code: &str, message: impl Into<String>) -> Value {
    json!({ "type": "error", "error": { "code": code, "message": message.into() } })
}

async fn handle_message(
    state: &AppState,
    who: &Arc<Identity>,
    text: &str,
    out: &mpsc::Sender<Value>,
    subs: &mut HashMap<String, tokio::task::JoinHandle<()>>,
) -> Option<Value> {
    let msg: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            return Some(ws_error(
                crate::ErrorCode::InvalidArgument.as_str(),
                format!("malformed message: {e}"),
            ));
        }
    };
    if let Some(target) = msg.unsubscribe {
        if let Some(h) = subs.remove(&target) {
            h.abort();
        }
        return Some(json!({ "type": "unsubscribed", "target": target }));
    }
    let Some(target) = msg.subscribe else {
        return Some(ws_error(
            crate::ErrorCode::InvalidArgument.as_str(),
            "expected {\"subscribe\": \"<run id>\" | \"runs\"} or {\"unsubscribe\": ...}",
        ));
    };
    if let Some(old) = subs.remove(&target) {
        old.abort();
    }
    let out = out.clone();
    let handle = if target == "runs" {
        let mut rx = runs_feed(state);
        let who = Arc::clone(who);
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(run) if !who.scope.allows(&run.workflow) => continue,
                    Ok(run) => {
                        if out
                            .send(json!({ "type": "run", "run": &*run }))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    } else {
        match state.engine.store().run(&target) {
            Ok(Some(r)) if who.scope.allows(&r.workflow) => {}
            Ok(_) => {
                return Some(ws_error(
                    crate::ErrorCode::NotFound.as_str(),
                    format!("run `{target}` not found"),
                ));
            }
            Err(e) => return Some(ws_error(e.code().as_str(), e.to_string())),
        }
        let run = target.clone();
        tokio::spawn(follow(
            Arc::clone(state),
            target.clone(),
            msg.from.unwrap_or(1).max(1),
            out,
            move |r| match r {
                Ok(ev) => {
                    let end = matches!(ev.kind, EventKind::RunFinished { .. });
                    json!({ "type": "event", "run": run, "event": ev, "end": end })
                }
                Err(e) => ws_error(e.code().as_str(), e.to_string()),
            },
        ))
    };
    subs.insert(target.clone(), handle);
    Some(json!({ "type": "subscribed", "target": target }))
}

type Feed = Option<broadcast::Sender<Arc<RunSummary>>>;

fn lock_feed(state: &AppState) -> std::sync::MutexGuard<'_, Feed> {
    state
        .runs_feed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Subscribes to the run-list feed, starting its poller if nobody listened before.
fn runs_feed(state: &AppState) -> broadcast::Receiver<Arc<RunSummary>> {
    let mut feed = lock_feed(state);
    if let Some(tx) = feed.as_ref() {
        return tx.subscribe();
    }
    let (tx, rx) = broadcast::channel(1024);
    *feed = Some(tx.clone());
    // The first look is taken before the subscription is acknowledged, so every run created
    // after the acknowledgement is reported.
    let known = snapshot(state, None);
    drop(feed);
    tokio::spawn(poll_runs(Arc::clone(state), tx, known));
    rx
}

type Known = HashMap<String, (crate::RunStatus, i64)>;

fn key(r: &RunSummary) -> (crate::RunStatus, i64) {
    (r.status, r.updated_at)
}

/// The newest runs and every running or suspended one (indexed reads), plus the runs of
/// `prev` that were not finished and left those lists (read one by one).
fn snapshot(state: &AppState, prev: Option<&Known>) -> HashMap<String, RunSummary> {
    let mut seen: HashMap<String, RunSummary> = HashMap::new();
    let filters = [
        crate::RunFilter {
            limit: Some(200),
            ..Default::default()
        },
        crate::RunFilter {
            status: Some(crate::RunStatus::Running),
            limit: Some(2000),
            ..Default::default()
        },
        crate::RunFilter {
            status: Some(crate::RunStatus::Suspended),
            limit: Some(2000),
            ..Default::default()
        },
    ];
    for f in &filters {
        if let Ok(runs) = state.engine.store().list_run_summaries(f) {
            for r in runs {
                seen.insert(r.id.clone(), r);
            }
        }
    }
    for (id, (status, _)) in prev.into_iter().flatten() {
        if !status.is_terminal()
            && !seen.contains_key(id)
            && let Ok(Some(r)) = state.engine.store().run(id)
        {
            seen.insert(id.clone(), RunSummary::from(r));
        }
    }
    seen
}

/// Watches the store for run-list changes: new runs and status changes. A run that changes
/// was either new or not finished before, and [`snapshot`] reads both kinds, so nothing is
/// missed. Stops when nobody listens.
async fn poll_runs(
    state: AppState,
    tx: broadcast::Sender<Arc<RunSummary>>,
    first: HashMap<String, RunSummary>,
) {
    let mut known: Known = first.values().map(|r| (r.id.clone(), key(r))).collect();
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => {}
            _ = tokio::time::sleep(state.config.poll) => {}
        }
        {
            let mut feed = lock_feed(&state);
            if tx.receiver_count() == 0 || state.shutdown.is_cancelled() {
                *feed = None;
                return;
            }
        }
        let seen = snapshot(&state, Some(&known));
        let mut changed: Vec<&RunSummary> = seen
            .values()
            .filter(|r| known.get(&r.id) != Some(&key(r)))
            .collect();
        changed.sort_by(|a, b| (a.updated_at, &a.id).cmp(&(b.updated_at, &b.id)));
        for r in changed {
            let _ = tx.send(Arc::new(r.clone()));
        }
        known = seen.values().map(|r| (r.id.clone(), key(r))).collect();
    }
}
