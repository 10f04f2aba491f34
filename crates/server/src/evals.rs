//! The API of the dashboard's Evals view (docs/evals.md):
//!
//! - `GET /api/evals`: the eval suites found in the store (workflows `eval.<suite>`) and a page
//!   of eval runs, newest first, each with the summary of its results (the `miyabi.eval/v1`
//!   document without its samples). Only the outputs of the runs on the page are read.
//! - `GET /api/evals/compare?a=<run>&b=<run>`: the paired A/B comparison of two finished eval
//!   runs of one suite — the comparison `miyabi eval compare` makes, computed by the
//!   [`EvalComparer`] the server was given (`miyabi` passes its own with the feature `eval`) —
//!   as its `miyabi.eval.compare/v1` JSON.
//!
//! Both take the caller's workflow scope into account: runs out of scope are left out of
//! lists, and naming one answers 404 as for any run.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::access::Identity;
use super::routes::{DEFAULT_LIMIT, SEARCH_SCAN, decode_cursor, encode_cursor, run_in_scope};
use super::{ApiError, AppState};
use crate::ErrorCode;
use crate::store::{RunFilter, RunRecord, RunStatus};

/// The prefix of an eval run's workflow id: a durable eval run of suite `s` is a run of the
/// workflow `eval.s` (`miyabi::eval::DurableEval`).
pub(crate) const EVAL_PREFIX: &str = "eval.";

/// The `schema` of an eval run's results document (its output), as `miyabi::eval` writes it.
pub const EVAL_SCHEMA: &str = "miyabi.eval/v1";
use EVAL_SCHEMA as SCHEMA;

/// Compares the results of two eval runs for `GET /api/evals/compare`: the evaluation code
/// lives above this crate (in `miyabi`, feature `eval`), so the server is given it. `miyabi`'s
/// implementation is `miyabi::eval::Comparer` (the paired comparison of `miyabi eval
/// compare`); a server without one answers that endpoint with `UNSUPPORTED`.
///
/// ```
/// use miyabi_server::{EvalComparer, ServerConfig};
/// use serde_json::{Value, json};
/// use std::sync::Arc;
///
/// /// Compares two results documents by their number of samples only.
/// struct Count;
/// impl EvalComparer for Count {
///     fn compare(&self, a: &Value, b: &Value) -> Result<Value, String> {
///         let n = |v: &Value| v["samples"].as_array().map_or(0, Vec::len);
///         Ok(json!({ "schema": "count/v1", "a": n(a), "b": n(b) }))
///     }
/// }
/// let config = ServerConfig::new().eval_comparer(Arc::new(Count));
/// # let _ = config;
/// ```
pub trait EvalComparer: Send + Sync {
    /// B against A (A the baseline), both `miyabi.eval/v1` documents (their `schema` already
    /// checked): the comparison as JSON, or why the two cannot be compared (answered as 422
    /// with this message).
    fn compare(&self, a: &Value, b: &Value) -> Result<Value, String>;
}

/// The largest page of `GET /api/evals` (every run on a page has its output read).
pub(crate) const MAX_EVAL_LIMIT: usize = 100;

/// How many run summaries one read of the store's listing returns while scanning.
const BATCH: usize = 500;

/// `GET /api/evals` query.
#[derive(Deserialize)]
pub(crate) struct EvalsQuery {
    /// Only runs of this suite (the workflow `eval.<suite>`).
    suite: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// One suite: its name, workflow, and its runs among the newest [`SEARCH_SCAN`] runs.
#[derive(serde::Serialize)]
struct SuiteInfo {
    name: String,
    workflow: String,
    runs: usize,
    last_run_at: Option<i64>,
}

/// The suite of an eval workflow id.
fn suite_of(workflow: &str) -> Option<&str> {
    workflow
        .strip_prefix(EVAL_PREFIX)
        .filter(|suite| !suite.is_empty())
}

/// The suites the caller may see: the registered `eval.*` workflows and those of the newest
/// [`SEARCH_SCAN`] runs, the suite with the newest run first.
fn suites(s: &AppState, who: &Identity) -> Result<Vec<SuiteInfo>, ApiError> {
    let mut found: BTreeMap<String, SuiteInfo> = BTreeMap::new();
    for w in s.engine.workflows() {
        if let Some(suite) = suite_of(w.id())
            && who.scope.allows(w.id())
        {
            found
                .entry(w.id().to_string())
                .or_insert_with(|| SuiteInfo {
                    name: suite.to_string(),
                    workflow: w.id().to_string(),
                    runs: 0,
                    last_run_at: None,
                });
        }
    }
    let mut filter = RunFilter {
        limit: Some(BATCH),
        ..RunFilter::default()
    };
    let mut scanned = 0;
    while scanned < SEARCH_SCAN {
        let batch = s.engine.store().list_run_summaries(&filter)?;
        scanned += batch.len();
        let full = batch.len() == BATCH;
        filter.before = batch.last().map(|r| (r.created_at, r.id.clone()));
        for r in batch {
            let Some(suite) = suite_of(&r.workflow) else {
                continue;
            };
            if !who.scope.allows(&r.workflow) {
                continue;
            }
            let e = found
                .entry(r.workflow.clone())
                .or_insert_with(|| SuiteInfo {
                    name: suite.to_string(),
                    workflow: r.workflow.clone(),
                    runs: 0,
                    last_run_at: None,
                });
            e.runs += 1;
            e.last_run_at = Some(e.last_run_at.map_or(r.created_at, |t| t.max(r.created_at)));
        }
        if !full {
            break;
        }
    }
    let mut list: Vec<SuiteInfo> = found.into_values().collect();
    list.sort_by(|a, b| {
        b.last_run_at
            .cmp(&a.last_run_at)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(list)
}

/// The results of an eval run's output without the samples; `None` when the output is not a
/// `miyabi.eval/v1` document.
fn results_summary(output: &Value) -> Option<Value> {
    let obj = output.as_object()?;
    if obj.get("schema").and_then(Value::as_str) != Some(SCHEMA) {
        return None;
    }
    let summary: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "samples")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(Value::Object(summary))
}

/// An eval run as `GET /api/evals` lists it.
fn run_entry(r: &RunRecord) -> Value {
    json!({
        "id": r.id,
        "workflow": r.workflow,
        "suite": suite_of(&r.workflow),
        "status": r.status,
        "error": r.error,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "results": r.output.as_deref().and_then(results_summary),
    })
}

/// `GET /api/evals`: `{suites, runs, next_cursor}` (see the module docs). Without `suite`,
/// the runs of every suite in scope; such a page walks at most [`SEARCH_SCAN`] runs, and a
/// short page then carries a cursor that continues the walk.
pub(crate) async fn list(
    State(s): State<AppState>,
    Extension(who): Extension<Arc<Identity>>,
    q: Result<Query<EvalsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_EVAL_LIMIT);
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| ApiError::bad_request("invalid cursor"))?),
    };
    let suites = suites(&s, &who)?;
    let suite = q.suite.filter(|x| !x.is_empty());
    let (runs, next) = match suite {
        Some(suite) => {
            let workflow = format!("{EVAL_PREFIX}{suite}");
            if who.scope.allows(&workflow) {
                let mut runs = s.engine.store().list_runs(&RunFilter {
                    workflow: Some(workflow),
                    before,
                    limit: Some(limit + 1),
                    ..RunFilter::default()
                })?;
                let next = if runs.len() > limit {
                    runs.truncate(limit);
                    runs.last().map(|r| encode_cursor(r.created_at, &r.id))
                } else {
                    None
                };
                (runs, next)
            } else {
                (Vec::new(), None)
            }
        }
        None => every_suite(&s, &who, before, limit)?,
    };
    let runs: Vec<Value> = runs.iter().map(run_entry).collect();
    Ok(Json(json!({
        "suites": suites,
        "runs": runs,
        "next_cursor": next,
    })))
}

/// The eval runs of every suite in scope, newest first, from `before`: up to `limit` runs
/// (read whole) and the cursor of the next page.
fn every_suite(
    s: &AppState,
    who: &Identity,
    before: Option<(i64, String)>,
    limit: usize,
) -> Result<(Vec<RunRecord>, Option<String>), ApiError> {
    let mut filter = RunFilter {
        before,
        limit: Some(BATCH),
        ..RunFilter::default()
    };
    let mut ids: Vec<(i64, String)> = Vec::new();
    let mut scanned = 0;
    let mut next = None;
    'walk: loop {
        let batch = s.engine.store().list_run_summaries(&filter)?;
        let full = batch.len() == BATCH;
        let mut last = None;
        for r in batch {
            scanned += 1;
            last = Some((r.created_at, r.id.clone()));
            if suite_of(&r.workflow).is_some() && who.scope.allows(&r.workflow) {
                if ids.len() == limit {
                    // One more exists: the page ends at the previous one.
                    next = ids.last().map(|(t, id)| encode_cursor(*t, id));
                    break 'walk;
                }
                ids.push((r.created_at, r.id));
            }
        }
        if !full {
            break;
        }
        if scanned >= SEARCH_SCAN {
            next = last.as_ref().map(|(t, id)| encode_cursor(*t, id));
            break;
        }
        filter.before = last;
    }
    let mut runs = Vec::with_capacity(ids.len());
    for (_, id) in ids {
        // A run deleted since the listing is left out.
        if let Some(r) = s.engine.store().run(&id)? {
            runs.push(r);
        }
    }
    Ok((runs, next))
}

/// `GET /api/evals/compare` query.
#[derive(Deserialize)]
pub(crate) struct CompareQuery {
    a: Option<String>,
    b: Option<String>,
}

/// A finished eval run the caller may see, with its results; a 4xx naming the run otherwise
/// (404 unknown or out of scope, 422 not an eval run or no results, 409 not finished).
fn eval_run(s: &AppState, who: &Identity, id: &str) -> Result<(RunRecord, Value), ApiError> {
    let r = run_in_scope(s, who, id)?;
    if suite_of(&r.workflow).is_none() {
        return Err(ApiError::validation(format!(
            "run `{id}` is not an eval run: its workflow `{}` is not an `{EVAL_PREFIX}<suite>` workflow",
            r.workflow
        )));
    }
    match r.status {
        RunStatus::Succeeded => {}
        RunStatus::Running | RunStatus::Suspended => {
            return Err(ApiError::of(
                ErrorCode::Conflict,
                format!(
                    "eval run `{id}` is not finished (it is {}); compare it once it has succeeded",
                    r.status
                ),
            ));
        }
        RunStatus::Failed | RunStatus::Cancelled => {
            return Err(ApiError::validation(format!(
                "eval run `{id}` has no results: it {}",
                r.status
            )));
        }
    }
    let results = r
        .output
        .as_deref()
        .filter(|o| o.get("schema").and_then(Value::as_str) == Some(SCHEMA))
        .ok_or_else(|| {
            ApiError::validation(format!(
                "run `{id}` of `{}` has no `{SCHEMA}` results as its output",
                r.workflow
            ))
        })
        .cloned()?;
    Ok((r, results))
}

/// `GET /api/evals/compare?a=<run>&b=<run>`: B against A (A the baseline), the comparison's
/// JSON with `a_run` and `b_run` (id, created_at) added.
pub(crate) async fn compare(
    State(s): State<AppState>,
    Extension(who): Extension<Arc<Identity>>,
    q: Result<Query<CompareQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let param = |name: &str, v: Option<String>| {
        v.filter(|x| !x.is_empty()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{name}` is required: GET /api/evals/compare?a=<run>&b=<run>"
            ))
        })
    };
    let a = param("a", q.a)?;
    let b = param("b", q.b)?;
    let (ra, results_a) = eval_run(&s, &who, &a)?;
    let (rb, results_b) = eval_run(&s, &who, &b)?;
    if ra.workflow != rb.workflow {
        return Err(ApiError::validation(format!(
            "run `{b}` is an eval run of suite `{}`, run `{a}` of suite `{}`: compare two runs of one suite",
            suite_of(&rb.workflow).unwrap_or(&rb.workflow),
            suite_of(&ra.workflow).unwrap_or(&ra.workflow)
        )));
    }
    let Some(comparer) = s.config.eval_comparer.clone() else {
        return Err(ApiError::of(
            ErrorCode::Unsupported,
            "this server compares no eval runs: it was started without an eval comparer \
             (`ServerConfig::eval_comparer`; `miyabi serve` has one with the feature `eval`)",
        ));
    };
    let mut v = comparer.compare(&results_a, &results_b).map_err(|e| {
        ApiError::validation(format!("eval runs `{a}` and `{b}` cannot be compared: {e}"))
    })?;
    if let Value::Object(m) = &mut v {
        m.insert(
            "a_run".into(),
            json!({ "id": ra.id, "created_at": ra.created_at }),
        );
        m.insert(
            "b_run".into(),
            json!({ "id": rb.id, "created_at": rb.created_at }),
        );
    }
    Ok(Json(v))
}
