//! An existing axum app — its own state, its own authentication — that puts a Miyabi workflow
//! and a Miyabi agent behind its routes with `miyabi::web`, using only Miyabi's public API:
//!
//! - `POST /app/reports` starts a run of `report` and streams its events (SSE);
//! - `GET /app/runs/{id}/events` follows a run (SSE, resumable with `Last-Event-ID`);
//! - `GET /app/runs/{id}/ws` the same over a WebSocket;
//! - `POST /app/chat` an agent in the AI SDK's UI message stream protocol (`useChat`), with a
//!   tool that needs approval.
//!
//! Every route sits behind the app's own [`User`] extractor (a bearer token from its user table).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use miyabi::web::{self, ApprovalStore, ChatRequest};
use miyabi::{Agent, CommittedWorkflow, Engine, StepContext, Workflow, WorkflowError, step_fn};
use serde_json::{Value, json};

/// The app's state: the engine, its workflow, the agent, where chat approvals wait, its users.
#[derive(Clone)]
pub struct AppState {
    /// The Miyabi engine.
    pub engine: Engine,
    /// The workflow behind `/app/reports`.
    pub report: CommittedWorkflow,
    /// The agent behind `/app/chat`.
    pub agent: Agent,
    /// Where chat generations wait for a tool approval.
    pub approvals: Arc<dyn ApprovalStore>,
    /// Bearer token → user name.
    pub users: Arc<HashMap<String, String>>,
}

/// The signed-in user, from `Authorization: Bearer <token>`; 401 otherwise.
pub struct User(pub String);

impl FromRequestParts<AppState> for User {
    type Rejection = (StatusCode, Json<Value>);

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match token.and_then(|t| state.users.get(t)) {
            Some(name) => Ok(User(name.clone())),
            None => Err((
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": { "code": "UNAUTHORIZED", "message": "sign in first" } })),
            )),
        }
    }
}

/// outline → write (one event per section) → assemble.
pub fn report_workflow() -> Result<CommittedWorkflow, WorkflowError> {
    Workflow::new("report")
        .step(
            "outline",
            step_fn(|_ctx: StepContext, input: Value| async move {
                let topic = input["topic"].as_str().unwrap_or("nothing").to_string();
                Ok(json!({ "topic": topic, "sections": ["Background", "Findings"] }))
            }),
        )
        .step(
            "write",
            step_fn(|ctx: StepContext, outline: Value| async move {
                let mut sections = Vec::new();
                for title in outline["sections"].as_array().cloned().unwrap_or_default() {
                    ctx.emit("section-written", json!({ "title": title }));
                    sections.push(json!({ "title": title, "text": format!("{} of {}", title.as_str().unwrap_or(""), outline["topic"].as_str().unwrap_or("")) }));
                }
                Ok(json!({ "topic": outline["topic"], "sections": sections }))
            }),
        )
        .step(
            "assemble",
            step_fn(|_ctx: StepContext, doc: Value| async move {
                Ok(json!({ "title": format!("Report: {}", doc["topic"].as_str().unwrap_or("")) }))
            }),
        )
        .commit()
}

async fn start_report(
    State(s): State<AppState>,
    User(_): User,
    Json(input): Json<Value>,
) -> Response {
    web::stream_run(&s.engine, &s.report, input).await
}

async fn run_events(
    State(s): State<AppState>,
    User(_): User,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    web::run_events(&s.engine, &id, web::last_event_id(&headers))
}

async fn run_ws(
    State(s): State<AppState>,
    User(_): User,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
    headers: HeaderMap,
) -> Response {
    web::ws_run_events(ws, &s.engine, &id, web::last_event_id(&headers))
}

async fn chat(State(s): State<AppState>, User(_): User, Json(req): Json<ChatRequest>) -> Response {
    web::agent_chat(&s.agent, req, Some(s.approvals.clone()))
}

/// The app's routes, nested under `/app` of whatever router the app already has.
pub fn router(state: AppState) -> Router {
    let app = Router::new()
        .route("/reports", post(start_report))
        .route("/runs/{id}/events", get(run_events))
        .route("/runs/{id}/ws", get(run_ws))
        .route("/chat", post(chat))
        .with_state(state);
    Router::new()
        .nest("/app", app)
        .route("/health", get(|| async { "ok" }))
}
