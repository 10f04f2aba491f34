//! The REST handlers.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use std::sync::Arc;

use super::access::{Identity, Permission};
use super::{ApiError, AppState, driver, openapi, stream};
use crate::approval::{ApprovalFilter, ApprovalStatus, AuditFilter, Decision};
use crate::store::{RunFilter, RunStatus};

/// One route of the API, as the route table [`API_ROUTES`] lists it: what the router serves
/// and what each route requires are both made from this table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RouteInfo {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path pattern (`/api/runs/{id}/cancel`).
    pub path: &'static str,
    /// What the caller's roles must allow.
    pub permission: Permission,
    /// The audited action (`run.cancel`) for routes that change state; every request to
    /// one is recorded in the audit trail with its outcome, refusals included.
    pub action: Option<&'static str>,
}

const fn route(
    method: &'static str,
    path: &'static str,
    permission: Permission,
    action: Option<&'static str>,
) -> RouteInfo {
    RouteInfo {
        method,
        path,
        permission,
        action,
    }
}

/// Every route of the API with its method, permission and audited action. Out-of-scope
/// resources answer 404 on every route; lists leave them out.
pub const API_ROUTES: &[RouteInfo] = &[
    route("GET", "/api/health", Permission::Public, None),
    route("GET", "/api/openapi.json", Permission::Public, None),
    route("GET", "/api/me", Permission::Authenticated, None),
    route("GET", "/api/workflows", Permission::Read, None),
    route("GET", "/api/workflows/{id}", Permission::Read, None),
    route("GET", "/api/workflows/{id}/stats", Permission::Read, None),
    route(
        "POST",
        "/api/workflows/{id}/runs",
        Permission::Operate,
        Some("run.start"),
    ),
    route("GET", "/api/runs", Permission::Read, None),
    route("GET", "/api/runs/{id}", Permission::Read, None),
    route(
        "POST",
        "/api/runs/{id}/cancel",
        Permission::Operate,
        Some("run.cancel"),
    ),
    route(
        "POST",
        "/api/runs/{id}/resume",
        Permission::Operate,
        Some("run.resume"),
    ),
    route(
        "POST",
        "/api/runs/{id}/retry",
        Permission::Operate,
        Some("run.retry"),
    ),
    route(
        "POST",
        "/api/runs/{id}/rerun",
        Permission::Operate,
        Some("run.rerun"),
    ),
    route("GET", "/api/runs/{id}/events", Permission::Read, None),
    route("GET", "/api/ws", Permission::Read, None),
    route("GET", "/api/approvals", Permission::Inbox, None),
    route(
        "GET",
        "/api/approvals/{run}/{gate}",
        Permission::Inbox,
        None,
    ),
    route(
        "POST",
        "/api/approvals/{run}/{gate}/decision",
        Permission::Decide,
        Some("gate.decide"),
    ),
    route("GET", "/api/audit", Permission::Read, None),
    route("GET", "/api/evals", Permission::Read, None),
    route("GET", "/api/evals/compare", Permission::Read, None),
];

/// The handler of a route of [`API_ROUTES`].
fn handler(r: &RouteInfo) -> Option<MethodRouter<AppState>> {
    Some(match (r.method, r.path) {
        ("GET", "/api/health") => get(health),
        ("GET", "/api/openapi.json") => get(openapi_doc),
        ("GET", "/api/me") => get(me),
        ("GET", "/api/workflows") => get(list_workflows),
        ("GET", "/api/workflows/{id}") => get(get_workflow),
        ("GET", "/api/workflows/{id}/stats") => get(workflow_stats),
        ("POST", "/api/workflows/{id}/runs") => post(start_run),
        ("GET", "/api/runs") => get(list_runs),
        ("GET", "/api/runs/{id}") => get(get_run),
        ("POST", "/api/runs/{id}/cancel") => post(cancel_run),
        ("POST", "/api/runs/{id}/resume") => post(resume_run),
        ("POST", "/api/runs/{id}/retry") => post(retry_run),
        ("POST", "/api/runs/{id}/rerun") => post(rerun),
        ("GET", "/api/runs/{id}/events") => get(stream::sse),
        ("GET", "/api/ws") => get(stream::ws),
        ("GET", "/api/approvals") => get(list_approvals),
        ("GET", "/api/approvals/{run}/{gate}") => get(get_approval),
        ("POST", "/api/approvals/{run}/{gate}/decision") => post(decide),
        ("GET", "/api/audit") => get(audit),
        ("GET", "/api/evals") => get(super::evals::list),
        ("GET", "/api/evals/compare") => get(super::evals::compare),
        _ => return None,
    })
}

/// The API's routes, each behind the guard its table entry asks for (public ones without).
pub(crate) fn api(state: &AppState) -> Router<AppState> {
    let mut app = Router::new();
    for info in API_ROUTES {
        let Some(mut h) = handler(info) else {
            tracing::error!(path = info.path, "route without a handler; not served");
            continue;
        };
        if info.permission != Permission::Public {
            h = h.route_layer(axum::middleware::from_fn_with_state(
                (std::sync::Arc::clone(state), *info),
                super::guard,
            ));
        }
        app = app.route(info.path, h);
    }
    app
}

/// A run id, made known to the audit trail by the handler that created the run.
#[derive(Clone)]
pub(crate) struct StartedRun(pub(crate) String);

/// The caller, from the request's extensions.
type Caller = Extension<Arc<Identity>>;

/// A stored run the caller may see: 404 (as if it did not exist) when it is out of scope.
pub(crate) fn run_in_scope(
    s: &AppState,
    who: &Identity,
    id: &str,
) -> Result<crate::store::RunRecord, ApiError> {
    match s.engine.store().run(id)? {
        Some(r) if who.scope.allows(&r.workflow) => Ok(r),
        _ => Err(ApiError::not_found(format!("run `{id}` not found"))),
    }
}

/// A registered workflow the caller may see.
fn workflow_in_scope(
    s: &AppState,
    who: &Identity,
    id: &str,
) -> Result<crate::CommittedWorkflow, ApiError> {
    s.engine
        .workflow(id)
        .filter(|_| who.scope.allows(id))
        .ok_or_else(|| ApiError::not_found(format!("workflow `{id}` is not registered")))
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

async fn me(Extension(who): Caller) -> Json<Identity> {
    Json((*who).clone())
}

fn workflow_json(w: &crate::CommittedWorkflow) -> Value {
    json!({ "id": w.id(), "fingerprint": w.fingerprint(), "graph": w.graph() })
}

async fn list_workflows(State(s): State<AppState>, Extension(who): Caller) -> Json<Value> {
    let list: Vec<Value> = s
        .engine
        .workflows()
        .iter()
        .filter(|w| who.scope.allows(w.id()))
        .map(workflow_json)
        .collect();
    Json(json!({ "workflows": list }))
}

async fn get_workflow(
    State(s): State<AppState>,
    Extension(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    workflow_in_scope(&s, &who, &id).map(|w| Json(workflow_json(&w)))
}

#[derive(Deserialize)]
struct StartBody {
    #[serde(default)]
    input: Value,
}

/// How many of a workflow's newest runs its statistics cover.
pub(crate) const STATS_RUNS: usize = 500;

/// `GET /api/workflows/{id}/stats`: over the newest [`STATS_RUNS`] runs of the workflow (the
/// runs in the store, whether or not the workflow is registered here): counts by status, the
/// success rate among finished runs, p50/p95 of finished runs' durations (created to last
/// change), and the 10 newest runs.
async fn workflow_stats(
    State(s): State<AppState>,
    Extension(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !who.scope.allows(&id) {
        return Err(ApiError::not_found(format!(
            "workflow `{id}` is not registered"
        )));
    }
    let runs = s.engine.store().list_run_summaries(&RunFilter {
        workflow: Some(id.clone()),
        limit: Some(STATS_RUNS),
        ..RunFilter::default()
    })?;
    if runs.is_empty() && s.engine.workflow(&id).is_none() {
        return Err(ApiError::not_found(format!(
            "workflow `{id}` is not registered"
        )));
    }
    let mut by_status = serde_json::Map::new();
    for st in [
        RunStatus::Running,
        RunStatus::Suspended,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ] {
        let n = runs.iter().filter(|r| r.status == st).count();
        by_status.insert(st.as_str().to_string(), json!(n));
    }
    let finished: Vec<&crate::store::RunSummary> =
        runs.iter().filter(|r| r.status.is_terminal()).collect();
    let succeeded = finished
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .count();
    let mut durations: Vec<i64> = finished
        .iter()
        .map(|r| (r.updated_at - r.created_at).max(0))
        .collect();
    durations.sort_unstable();
    // Nearest-rank percentile.
    let pct = |p: usize| -> Option<i64> {
        if durations.is_empty() {
            return None;
        }
        let rank = (p * durations.len()).div_ceil(100).max(1);
        durations.get(rank - 1).copied()
    };
    let success_rate = if finished.is_empty() {
        Value::Null
    } else {
        json!(succeeded as f64 / finished.len() as f64)
    };
    let recent: Vec<&crate::store::RunSummary> = runs.iter().take(10).collect();
    Ok(Json(json!({
        "workflow": id,
        "runs": runs.len(),
        "by_status": by_status,
        "finished": finished.len(),
        "success_rate": success_rate,
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "recent": recent,
    })))
}

/// `POST /api/runs/{id}/rerun` body: the input of the new run (the old run's when absent).
#[derive(Deserialize)]
struct RerunBody {
    input: Option<Value>,
}

/// `POST /api/runs/{id}/rerun`: a new run of the run's workflow (its newest registered
/// definition) with the same input, or an edited one.
async fn rerun(
    State(s): State<AppState>,
    Extension(who): Caller,
    Path(id): Path<String>,
    Body(body): Body<RerunBody>,
) -> Result<Response, ApiError> {
    let old = run_in_scope(&s, &who, &id)?;
    let input = match body.input {
        Some(v) => v,
        None => (*old.input).clone(),
    };
    let wf = s.engine.workflow(&old.workflow).ok_or_else(|| {
        ApiError::of(
            crate::ErrorCode::UnknownWorkflow,
            format!(
                "workflow `{}` of run `{id}` is not registered with this server",
                old.workflow
            ),
        )
    })?;
    let run_id = if wf.is_external() {
        let driver = s
            .config
            .driver
            .as_ref()
            .ok_or_else(|| driver::no_driver(&old.workflow, "rerun a run"))?;
        driver.start(wf, input).await?
    } else {
        s.engine.spawn(&wf, input)?.id().to_string()
    };
    tracing::info!(run = %run_id, of = %id, by = %who.id(), "run re-run");
    let mut res = (StatusCode::ACCEPTED, Json(json!({ "id": run_id }))).into_response();
    res.extensions_mut().insert(StartedRun(run_id));
    Ok(res)
}

async fn start_run(
    State(s): State<AppState>,
    Extension(who): Caller,
    Path(id): Path<String>,
    Body(body): Body<StartBody>,
) -> Result<Response, ApiError> {
    let wf = workflow_in_scope(&s, &who, &id)?;
    let run_id = if wf.is_external() {
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
    tracing::info!(run = %run_id, workflow = %id, by = %who.id(), "run started");
    let mut res = (StatusCode::ACCEPTED, Json(json!({ "id": run_id }))).into_response();
    res.extensions_mut().insert(StartedRun(run_id));
    Ok(res)
}

/// The registered definition of a stored run, when its steps run outside Rust.
fn external_workflow(s: &AppState, run_id: &str) -> Result<Option<String>, ApiError> {
    let Some(record) = s.engine.store().run(run_id)? else {
        return Ok(None);
    };
    // A definition that is not registered is reported by the engine's own call.
    let external = matches!(s.engine.is_external_run(&record), Ok(true));
    Ok(external.then_some(record.workflow))
}

/// `GET /api/runs` query.
#[derive(Deserialize)]
struct ListQuery {
    workflow: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    /// Search: a run id (or its prefix), or text in the run's input or output.
    q: Option<String>,
    /// Created at or after (RFC 3339 or ms since the epoch).
    from: Option<String>,
    /// Created before (RFC 3339 or ms since the epoch).
    to: Option<String>,
}

/// A time in a query: RFC 3339 or milliseconds since the epoch.
fn query_time(name: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Some(ms));
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| Some((t.unix_timestamp_nanos() / 1_000_000) as i64))
        .map_err(|_| {
            ApiError::validation(format!(
                "`{name}` must be an RFC 3339 time or milliseconds since the epoch, not `{v}`"
            ))
        })
}

/// Default and largest page sizes of `GET /api/runs`.
pub(crate) const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 500;

pub(crate) fn encode_cursor(created_at: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

pub(crate) fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (t, id) = s.split_once(':')?;
    Some((t.parse().ok()?, id.to_string()))
}

async fn list_runs(
    State(s): State<AppState>,
    Extension(who): Caller,
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
    let mut workflow = q.workflow.filter(|w| !w.is_empty());
    if let Some(w) = &workflow
        && !who.scope.allows(w)
    {
        return Ok(Json(RunPage {
            runs: Vec::new(),
            next_cursor: None,
        }));
    }
    if workflow.is_none() {
        workflow = who.scope.single().map(str::to_string);
    }
    let mut filter = RunFilter {
        workflow,
        status,
        before,
        limit: Some(limit + 1),
        created_after: query_time("from", q.from.as_deref())?,
        created_before: query_time("to", q.to.as_deref())?,
    };
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        return search_runs(&s, &who, filter, text, limit).map(Json);
    }
    if who.scope.is_all() || filter.workflow.is_some() {
        let mut runs = s.engine.store().list_run_summaries(&filter)?;
        let next = if runs.len() > limit {
            runs.truncate(limit);
            runs.last().map(|r| encode_cursor(r.created_at, &r.id))
        } else {
            None
        };
        return Ok(Json(RunPage {
            runs,
            next_cursor: next,
        }));
    }
    // A scope of several workflows or namespaces: walk the listing in batches, keeping the
    // runs in scope. A page may come back short after SCAN_BATCHES batches; its cursor then
    // continues where the walk stopped.
    const SCAN_BATCHES: usize = 20;
    filter.limit = Some(MAX_LIMIT);
    let mut runs = Vec::new();
    let mut next = None;
    for _ in 0..SCAN_BATCHES {
        let batch = s.engine.store().list_run_summaries(&filter)?;
        let full = batch.len() == MAX_LIMIT;
        let mut last = None;
        for r in batch {
            last = Some((r.created_at, r.id.clone()));
            if who.scope.allows(&r.workflow) {
                if runs.len() == limit {
                    // One more in scope exists: the page ends at the previous one.
                    next = runs
                        .last()
                        .map(|r: &crate::store::RunSummary| encode_cursor(r.created_at, &r.id));
                    return Ok(Json(RunPage {
                        runs,
                        next_cursor: next,
                    }));
                }
                runs.push(r);
            }
        }
        if !full {
            return Ok(Json(RunPage {
                runs,
                next_cursor: None,
            }));
        }
        next = last.as_ref().map(|(t, id)| encode_cursor(*t, id));
        filter.before = last;
    }
    Ok(Json(RunPage {
        runs,
        next_cursor: next,
    }))
}

/// `GET /api/runs?q=`: the run with that id, else runs whose id starts with it or whose input
/// or output holds it (case-insensitive), newest first, within the filter and the caller's
/// scope. Walks at most [`SEARCH_SCAN`] runs per request; a short page then carries a cursor
/// that continues the walk.
fn search_runs(
    s: &AppState,
    who: &Identity,
    mut filter: RunFilter,
    text: &str,
    limit: usize,
) -> Result<RunPage, ApiError> {
    if filter.before.is_none()
        && let Some(r) = s.engine.store().run(text)?
        && who.scope.allows(&r.workflow)
        && filter.matches(&r)
    {
        return Ok(RunPage {
            runs: vec![crate::store::RunSummary::from(r)],
            next_cursor: None,
        });
    }
    let needle = text.to_lowercase();
    let hit = |r: &crate::store::RunRecord| {
        r.id.starts_with(text)
            || r.input.to_string().to_lowercase().contains(&needle)
            || r.output
                .as_ref()
                .is_some_and(|o| o.to_string().to_lowercase().contains(&needle))
    };
    const BATCH: usize = 200;
    filter.limit = Some(BATCH);
    let mut runs = Vec::new();
    let mut scanned = 0;
    loop {
        let batch = s.engine.store().list_runs(&filter)?;
        let full = batch.len() == BATCH;
        let mut last = None;
        for r in batch {
            scanned += 1;
            last = Some((r.created_at, r.id.clone()));
            if who.scope.allows(&r.workflow) && hit(&r) {
                runs.push(crate::store::RunSummary::from(r));
                if runs.len() == limit {
                    let next = last.as_ref().map(|(t, id)| encode_cursor(*t, id));
                    return Ok(RunPage {
                        runs,
                        next_cursor: next,
                    });
                }
            }
        }
        if !full {
            return Ok(RunPage {
                runs,
                next_cursor: None,
            });
        }
        if scanned >= SEARCH_SCAN {
            let next = last.as_ref().map(|(t, id)| encode_cursor(*t, id));
            return Ok(RunPage {
                runs,
                next_cursor: next,
            });
        }
        filter.before = last;
    }
}

/// The most runs one search request reads.
pub(crate) const SEARCH_SCAN: usize = 10_000;

/// A page of `GET /api/runs`, serialized straight into the response body.
#[derive(serde::Serialize)]
struct RunPage {
    runs: Vec<crate::store::RunSummary>,
    next_cursor: Option<String>,
}

async fn get_run(
    State(s): State<AppState>,
    Extension(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    run_in_scope(&s, &who, &id)?;
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
    Extension(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    run_in_scope(&s, &who, &id)?;
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
    // Its open gates close now (the approvals worker would do it at its next pass).
    if let Err(e) = s.engine.approvals().close_run(&id).await {
        tracing::warn!(run = %id, error = %e, "run cancelled; closing its gates failed (the worker retries)");
    }
    tracing::info!(run = %id, by = %who.id(), "run cancelled");
    Ok(Json(json!({ "run": run })))
}

#[derive(Deserialize)]
struct ResumeBody {
    path: String,
    #[serde(default)]
    data: Value,
}

/// `POST /api/runs/{id}/retry`: a failed run runs its failed steps again (202 with its id once
/// the reopening is committed; 409 when it is not failed or failed outside any step).
async fn retry_run(
    State(s): State<AppState>,
    Extension(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    run_in_scope(&s, &who, &id)?;
    if let Some(workflow) = external_workflow(&s, &id)? {
        let driver = s
            .config
            .driver
            .as_ref()
            .ok_or_else(|| driver::no_driver(&workflow, &format!("retry run `{id}`")))?;
        driver.retry(id.clone()).await?;
    } else {
        s.engine.spawn_retry(&id)?;
    }
    tracing::info!(run = %id, by = %who.id(), "run retried");
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response())
}

async fn resume_run(
    State(s): State<AppState>,
    Extension(who): Caller,
    Path(id): Path<String>,
    Body(body): Body<ResumeBody>,
) -> Result<Response, ApiError> {
    run_in_scope(&s, &who, &id)?;
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
    tracing::info!(run = %id, path = %body.path, by = %who.id(), "run resumed");
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response())
}

/// `GET /api/approvals` query.
#[derive(Deserialize)]
struct ApprovalsQuery {
    status: Option<String>,
    all: Option<String>,
    run: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn approval_status(s: Option<&str>) -> Result<Option<ApprovalStatus>, ApiError> {
    match s {
        None | Some("") => Ok(None),
        Some(st) => ApprovalStatus::parse(st).map(Some).ok_or_else(|| {
            ApiError::validation(format!(
                "unknown approval status `{st}` (pending, approved, rejected, closed)"
            ))
        }),
    }
}

/// The caller's inbox (pending gates awaiting them), or with `?all=1` every gate matching
/// `status` and `run`.
async fn list_approvals(
    State(s): State<AppState>,
    Extension(who): Caller,
    q: Result<Query<ApprovalsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = approval_status(q.status.as_deref())?;
    let all = matches!(q.all.as_deref(), Some("1" | "true" | "yes"));
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let approvals = s.engine.approvals();
    let list = if all {
        if !who.may(Permission::Read) {
            return Err(ApiError::forbidden(format!(
                "`{}` may list its inbox only (all=1 needs the viewer, operator or admin role)",
                who.id()
            )));
        }
        let mut list = approvals.list(&ApprovalFilter {
            run_id: q.run.filter(|r| !r.is_empty()),
            status,
            ..ApprovalFilter::default()
        })?;
        list.retain(|a| who.scope.allows(&a.workflow));
        list
    } else {
        if status.is_some_and(|st| st != ApprovalStatus::Pending) {
            return Err(ApiError::validation(
                "the inbox holds pending gates only; add all=1 to list other statuses",
            ));
        }
        let mut inbox = approvals.inbox(&who.approver)?;
        if let Some(run) = q.run.as_deref().filter(|r| !r.is_empty()) {
            inbox.retain(|a| a.run_id == run);
        }
        inbox.retain(|a| who.scope.allows(&a.workflow));
        inbox
    };
    // Newest first, in a total order, paged by the last gate's key.
    let key = |a: &crate::approval::Approval| (a.created_at, a.run_id.clone(), a.gate.clone());
    let mut list = list;
    list.sort_by_key(|a| std::cmp::Reverse(key(a)));
    if let Some(c) = q.cursor.as_deref().filter(|c| !c.is_empty()) {
        let (t, rest) = decode_cursor(c).ok_or_else(|| ApiError::bad_request("invalid cursor"))?;
        let (run, gate) = rest
            .split_once('/')
            .ok_or_else(|| ApiError::bad_request("invalid cursor"))?;
        let after = (t, run.to_string(), gate.to_string());
        list.retain(|a| key(a) < after);
    }
    let next = if list.len() > limit {
        list.truncate(limit);
        list.last()
            .map(|a| encode_cursor(a.created_at, &format!("{}/{}", a.run_id, a.gate)))
    } else {
        None
    };
    Ok(Json(json!({ "approvals": list, "next_cursor": next })))
}

/// A gate the caller may see: in scope, and (for an identity that may not read runs) naming
/// it; 404 otherwise.
fn gate_in_scope(
    s: &AppState,
    who: &Identity,
    run: &str,
    gate: &str,
) -> Result<crate::approval::Approval, ApiError> {
    let hidden = || {
        ApiError::from(crate::approval::ApprovalError::NotFound {
            run: run.to_string(),
            gate: gate.to_string(),
        })
    };
    match s.engine.approvals().get(run, gate) {
        Ok(a)
            if who.scope.allows(&a.workflow)
                && (who.may(Permission::Read) || who.approver.may_decide(&a.approvers)) =>
        {
            Ok(a)
        }
        Ok(_) => Err(hidden()),
        Err(e) => Err(e.into()),
    }
}

async fn get_approval(
    State(s): State<AppState>,
    Extension(who): Caller,
    Path((run, gate)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let a = gate_in_scope(&s, &who, &run, &gate)?;
    Ok(Json(json!({ "approval": a })))
}

async fn decide(
    State(s): State<AppState>,
    Extension(who): Caller,
    Path((run, gate)): Path<(String, String)>,
    Body(decision): Body<Decision>,
) -> Result<Json<Value>, ApiError> {
    let approvals = s.engine.approvals();
    gate_in_scope(&s, &who, &run, &gate)?;
    let mut a = approvals
        .decide(&run, &gate, &who.approver, decision)
        .await?;
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
    cursor: Option<String>,
    order: Option<String>,
}

/// The audit trail: newest first, paged by `cursor` (`next_cursor` of the previous page);
/// `order=oldest` lists oldest first (one page of `limit`).
async fn audit(
    State(s): State<AppState>,
    Extension(who): Caller,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let nonempty = |v: Option<String>| v.filter(|x| !x.is_empty());
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let oldest = match q.order.as_deref() {
        None | Some("" | "newest") => false,
        Some("oldest") => true,
        Some(o) => {
            return Err(ApiError::validation(format!(
                "unknown order `{o}` (newest, oldest)"
            )));
        }
    };
    let mut before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            decode_cursor(c)
                .map(|(id, _)| id)
                .ok_or_else(|| ApiError::bad_request("invalid cursor"))?,
        ),
    };
    let mut filter = AuditFilter {
        run_id: nonempty(q.run),
        gate: nonempty(q.gate),
        actor: nonempty(q.actor),
        limit: Some(limit + 1),
    };
    if oldest {
        filter.limit = Some(limit);
        let mut records = s.engine.approvals().audit(&filter)?;
        let mut cache = std::collections::HashMap::new();
        records.retain(|r| audit_in_scope(&s, &who, r, &mut cache));
        return Ok(Json(json!({ "audit": records, "next_cursor": null })));
    }
    let mut cache = std::collections::HashMap::new();
    let mut records = Vec::new();
    // A scoped identity's page skips records out of scope: read batches until it is full.
    const SCAN_BATCHES: usize = 20;
    for _ in 0..SCAN_BATCHES {
        let batch = s.engine.approvals().audit_newest(&filter, before)?;
        let full = batch.len() == limit + 1;
        before = batch.last().map(|r| r.id);
        for r in batch {
            if audit_in_scope(&s, &who, &r, &mut cache) {
                records.push(r);
            }
        }
        if records.len() > limit || !full {
            break;
        }
    }
    let next = if records.len() > limit {
        records.truncate(limit);
        records.last().map(|r| encode_cursor(r.id, "audit"))
    } else if who.scope.is_all() {
        None
    } else {
        // The walk stopped before the end: continue from where it stopped.
        before.map(|b| encode_cursor(b, "audit"))
    };
    Ok(Json(json!({ "audit": records, "next_cursor": next })))
}

/// Whether an audit record is about a run in the caller's scope (refused starts: their
/// workflow). Records of deleted runs are in scope of unscoped identities only.
fn audit_in_scope(
    s: &AppState,
    who: &Identity,
    r: &crate::approval::AuditRecord,
    cache: &mut std::collections::HashMap<String, Option<String>>,
) -> bool {
    if who.scope.is_all() {
        return true;
    }
    let workflow = if r.run_id.is_empty() {
        r.data
            .as_ref()
            .and_then(|d| d.get("workflow"))
            .and_then(Value::as_str)
            .map(str::to_string)
    } else {
        cache
            .entry(r.run_id.clone())
            .or_insert_with(|| {
                s.engine
                    .store()
                    .run(&r.run_id)
                    .ok()
                    .flatten()
                    .map(|r| r.workflow)
            })
            .clone()
    };
    workflow.is_some_and(|w| who.scope.allows(&w))
}
