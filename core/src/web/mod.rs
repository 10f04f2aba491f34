//! Building blocks for putting workflows and agents behind your own axum routes (feature
//! `server`): a run's events as server-sent events (resumable with `Last-Event-ID`) or over a
//! WebSocket, and an agent's answer in the AI SDK's UI message stream protocol, so `useChat`
//! from `@ai-sdk/react` (or `@miyabi/react`) talks to a Rust route unchanged.
//!
//! Each helper is a plain function returning an axum [`Response`](axum::response::Response), so
//! it goes behind any extractor of yours — your own authentication first, then the helper:
//!
//! ```no_run
//! use axum::{Router, extract::{Path, State}, http::HeaderMap, response::Response, routing::{get, post}};
//! use miyabi::{Engine, CommittedWorkflow, web};
//! use serde_json::Value;
//!
//! #[derive(Clone)]
//! struct App { engine: Engine, report: CommittedWorkflow }
//!
//! async fn start(State(app): State<App>, axum::Json(input): axum::Json<Value>) -> Response {
//!     web::stream_run(&app.engine, &app.report, input).await
//! }
//! async fn events(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
//!     web::run_events(&app.engine, &id, web::last_event_id(&headers))
//! }
//!
//! # fn app(engine: Engine, report: CommittedWorkflow) -> Router {
//! Router::new()
//!     .route("/runs", post(start))
//!     .route("/runs/{id}/events", get(events))
//!     .with_state(App { engine, report })
//! # }
//! ```
//!
//! Errors answer with the HTTP API's JSON shape, `{"error": {"code", "message"}}`, and a status
//! that says what went wrong (404 for an unknown run, 400 for a bad input, 409 for an approval
//! answered twice).

mod events;
mod sse;
mod ui;

pub use events::{
    EventFollower, follow_events, last_event_id, run_events, stream_run, ws_run_events,
};
pub use ui::{
    ApprovalStore, ChatRequest, MemoryApprovalStore, UiChunk, UiStreamOptions, agent_chat,
    from_ui_messages, ui_chunks, ui_message_stream,
};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer: status, a stable code and a message naming what was wrong.
pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message.into() } })),
    )
        .into_response()
}

/// The answer for an engine error, with the status its code calls for (the HTTP API's mapping).
pub(crate) fn engine_error(e: &crate::EngineError) -> Response {
    let code = e.code();
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_response(status, code.as_str(), e.to_string())
}
