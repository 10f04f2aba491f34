//! The REST handlers.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{ApiError, AppState, driver, openapi, stream};
use crate::approval::{ApprovalFilter, ApprovalStatus, Approver, AuditFilter, Decision};
use crate::store::{RunFilter, RunStatus};

/// Routes without authentication.
pub(crate) fn public() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(openapi_doc))
}

/// Routes behind the bearer token.
pub(crate) fn protected() -> Router<AppState> {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/workflows", get(list_workflows))
        .route("/api/workflows/{id}", get(get_workflow))
        .route("/api/workflows/{id}/runs", post(start_run))
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{id}", get(get_run))
        .route("/api/runs/{id}/cancel", post(cancel_run))
        .route("/api/runs/{id}/resume", post(resume_run))
        .route("/api/runs/{id}/events", get(stream::sse))
        .route("/api/ws", get(stream::ws))
        .route("/api/approvals", get(list_approvals))
        .route("/api/approvals/{run}/{gate}", get(get_approval))
        .route("/api/approvals/{run}/{gate}/decision", post(decide))
        .route("/api/audit", get(audit))
}

/// A JSON request body: malformed JSON is 400 `bad-request`, JSON of the wrong shape 422
/// `validation`, a body over the limit 413 `payload-too-large` (all in the API's error shape).
/// No `Content-Type` is required.
pub(crate) struct Body<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes =
            axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e: BytesRejection| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::too_large()
                    } else {
                        ApiError::bad_request(format!("cannot read the request body: {e}"))
                    }
                })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map(Body).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => ApiError::validation(format!("invalid request body: {e}")),
                _ => ApiError::bad_request(format!("malformed JSON: {e}")),
            }
        })
    }
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn openapi_doc() -> Json<Value> {
    Json(openapi::document())
}

async fn me(Extension(who): Extension<Approver>) -> Json<Approver> {
    Json(who)
}

fn workflow_json(w: &crate::CommittedWorkflow) -> Value {
    json!({ "id": w.id(), "fingerprint": w.fingerprint(), "graph": w.graph() })
}

async fn list_workflows(State(s): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = s.engine.workflows().iter().map(workflow_json).collect();
    Json(json!({ "workflows": list }))
}

async fn get_workflow(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    s.engine
        .workflow(&id)
        .map(|w| Json(workflow_json(&w)))
        .ok_or_else(|| ApiError::not_found(format!("workflow `{id}` is not registered")))
}

#[derive(Deserialize)]
struct StartBody {
    #[serde(default)]
    input: Value,
}

async fn start_run(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<StartBody>,
) -> Result<Response, ApiError> {
    let wf = s
        .engine
        .workflow(&id)
        .ok_or_else(|| ApiError::not_found(format!("workflow `{id}` is not registered")))?;
    let run_id = if wf.graph.is_external() {
        // Its steps run outside Rust: the driver of the process that serves starts it (and
        // parses the input the way that runtime does), or nobody does.
        let driver = s
            .config
            .driver
            .as_ref()
            .ok_or_else(|| driver::no_driver(&id, "start a run"))?;
        driver.start(wf, body.input).await?
    } else {
        s.engine.spawn(&wf, body.input)?.id().to_string()
    };
    tracing::info!(run = %run_id, workflow = %id, "run started");
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": run_id }))).into_response())
}

/// The registered definition of a stored run, when its steps run outside Rust.
fn external_workflow(s: &AppState, run_id: &str) -> Result<Option<String>, ApiError> {
    let Some(record) = s.engine.store().run(run_id)? else {
        return Ok(None);
    };
    // A definition that is not registered is reported by the engine's own call.
    Ok(s.engine
        .graph_for(&record)
        .ok()
        .filter(|g| g.is_external())
        .map(|_| record.workflow))
}

/// `GET /api/runs` query.
#[derive(Deserialize)]
struct ListQuery {
    workflow: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Default and largest page sizes of `GET /api/runs`.
pub(crate) const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 500;

fn encode_cursor(created_at: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (t, id) = s.split_once(':')?;
    Some((t.parse().ok()?, id.to_string()))
}

async fn list_runs(
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunPage>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(st) => Some(RunStatus::parse(st).ok_or_else(|| {
            ApiError::validation(format!(
                "unknown status `{st}` (running, suspended, succeeded, failed, cancelled)"
            ))
        })?),
    };
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| ApiError::bad_request("invalid cursor"))?),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let filter = RunFilter {
        workflow: q.workflow.filter(|w| !w.is_empty()),
        status,
        before,
        limit: Some(limit + 1),
        ..RunFilter::default()
    };
    let mut runs = s.engine.store().list_run_summaries(&filter)?;
    let next = if runs.len() > limit {
        runs.truncate(limit);
        runs.last().map(|r| encode_cursor(r.created_at, &r.id))
    } else {
        None
    };
    Ok(Json(RunPage {
        runs,
        next_cursor: next,
    }))
}

/// A page of `GET /api/runs`, serialized straight into the response body.
#[derive(serde::Serialize)]
struct RunPage {
    runs: Vec<crate::store::RunSummary>,
    next_cursor: Option<String>,
}

async fn get_run(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = s
        .engine
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run `{id}` not found")))?;
    let mut steps = s.engine.store().steps(&id)?;
    steps.sort_by(|a, b| (a.updated_at, &a.path).cmp(&(b.updated_at, &b.path)));
    Ok(Json(json!({ "run": run, "steps": steps })))
}

async fn cancel_run(
    State(s): State<AppState>,
    Extension(who): Extension<Approver>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = match &s.config.driver {
        // Its driver stops it at once (the engine's own cancellation would wait until the
        // driver next looks at the run).
        Some(driver) if external_workflow(&s, &id)?.is_some() => {
            driver.cancel(id.clone()).await?;
            s.engine
                .get(&id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("run `{id}` not found")))?
        }
        _ => s.engine.cancel(&id).await?,
    };
    tracing::info!(run = %id, by = %who.id, "run cancelled");
    Ok(Json(json!({ "run": run })))
}

#[derive(Deserialize)]
struct ResumeBody {
    path: String,
    #[serde(default)]
    data: Value,
}

async fn resume_run(
    State(s): State<AppState>,
    Extension(who): Extension<Approver>,
    Path(id): Path<String>,
    Body(body): Body<ResumeBody>,
) -> Result<Response, ApiError> {
    if let Some(workflow) = external_workflow(&s, &id)? {
        let driver = s
            .config
            .driver
            .as_ref()
            .ok_or_else(|| driver::no_driver(&workflow, &format!("resume run `{id}`")))?;
        driver
            .resume(id.clone(), body.path.clone(), body.data)
            .await?;
    } else {
        s.engine.spawn_resume(&id, &body.path, body.data)?;
    }
    tracing::info!(run = %id, path = %body.path, by = %who.id, "run resumed");
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response())
}

/// `GET /api/approvals` query.
#[derive(Deserialize)]
struct ApprovalsQuery {
    status: Option<String>,
    all: Option<String>,
    run: Option<String>,
    limit: Option<usize>,
}

fn approval_status(s: Option<&str>) -> Result<Option<ApprovalStatus>, ApiError> {
    match s {
        None | Some("") => Ok(None),
        Some(st) => ApprovalStatus::parse(st).map(Some).ok_or_else(|| {
            ApiError::validation(format!(
                "unknown approval status `{st}` (pending, approved, rejected)"
            ))
        }),
    }
}

/// The caller's inbox (pending gates awaiting them), or with `?all=1` every gate matching
/// `status` and `run`.
async fn list_approvals(
    State(s): State<AppState>,
    Extension(who): Extension<Approver>,
    q: Result<Query<ApprovalsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = approval_status(q.status.as_deref())?;
    let all = matches!(q.all.as_deref(), Some("1" | "true" | "yes"));
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let approvals = s.engine.approvals();
    let list = if all {
        approvals.list(&ApprovalFilter {
            run_id: q.run.filter(|r| !r.is_empty()),
            status,
            limit: Some(limit),
            ..ApprovalFilter::default()
        })?
    } else {
        if status.is_some_and(|st| st != ApprovalStatus::Pending) {
            return Err(ApiError::validation(
                "the inbox holds pending gates only; add all=1 to list other statuses",
            ));
        }
        let mut inbox = approvals.inbox(&who)?;
        if let Some(run) = q.run.as_deref().filter(|r| !r.is_empty()) {
            inbox.retain(|a| a.run_id == run);
        }
        inbox.truncate(limit);
        inbox
    };
    Ok(Json(json!({ "approvals": list })))
}

async fn get_approval(
    State(s): State<AppState>,
    Path((run, gate)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let a = s.engine.approvals().get(&run, &gate)?;
    Ok(Json(json!({ "approval": a })))
}

async fn decide(
    State(s): State<AppState>,
    Extension(who): Extension<Approver>,
    Path((run, gate)): Path<(String, String)>,
    Body(decision): Body<Decision>,
) -> Result<Json<Value>, ApiError> {
    let approvals = s.engine.approvals();
    let mut a = approvals.decide(&run, &gate, &who, decision).await?;
    // A decided gate of a run whose steps run outside Rust: the engine could not continue the
    // run; the driver of this process does it now (without a driver, the process that defines
    // the workflow picks the decision up).
    if a.status != ApprovalStatus::Pending
        && !a.delivered
        && let Some(driver) = &s.config.driver
        && external_workflow(&s, &run)?.is_some()
    {
        match driver.deliver(run.clone(), gate.clone()).await {
            Ok(()) => a = approvals.get(&run, &gate)?,
            Err(e) => {
                tracing::warn!(run = %run, gate = %gate, error = %e, "decision recorded; handing it to the run failed (the approvals worker retries)");
            }
        }
    }
    Ok(Json(json!({ "approval": a })))
}

/// `GET /api/audit` query.
#[derive(Deserialize)]
struct AuditQuery {
    run: Option<String>,
    gate: Option<String>,
    actor: Option<String>,
    limit: Option<usize>,
}

async fn audit(
    State(s): State<AppState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let nonempty = |v: Option<String>| v.filter(|x| !x.is_empty());
    let records = s.engine.approvals().audit(&AuditFilter {
        run_id: nonempty(q.run),
        gate: nonempty(q.gate),
        actor: nonempty(q.actor),
        limit: Some(q.limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT)),
    })?;
    Ok(Json(json!({ "audit": records })))
}
