//! A loopback server that answers like GitHub's REST API (response shapes from the public
//! documentation), for the parts the client uses; it can answer the next request to a route
//! with a secondary rate limit (403 + retry-after).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Default)]
pub struct Fake {
    pub requests: Vec<(String, String, Value, Option<String>)>,
    pub comments: BTreeMap<u64, Vec<Value>>,
    pub labels: BTreeMap<u64, Vec<String>>,
    pub refs: BTreeMap<String, String>,
    pub pulls: Vec<Value>,
    /// The next request whose "METHOD /path" starts with this answers 403 + retry-after: 1.
    pub secondary_limit_next: Option<String>,
    pub remaining: u64,
    /// `x-ratelimit-reset` to send (default: far in the future).
    pub reset: Option<u64>,
}

pub type Shared = Arc<Mutex<Fake>>;

pub struct FakeGitHub {
    pub url: String,
    pub state: Shared,
}

impl FakeGitHub {
    pub fn requests(&self) -> Vec<(String, String, Value, Option<String>)> {
        self.state.lock().unwrap().requests.clone()
    }
    pub fn pulls(&self) -> Vec<Value> {
        self.state.lock().unwrap().pulls.clone()
    }
}

fn issue_json(n: u64, labels: &[String]) -> Value {
    json!({
        "id": 1000 + n, "node_id": "I_kwDO", "number": n,
        "url": format!("https://api.github.com/repos/acme/calc/issues/{n}"),
        "html_url": format!("https://github.com/acme/calc/issues/{n}"),
        "title": "calc.sh adds wrong", "state": "open",
        "body": "`sh calc.sh 2 3` prints -1; it should print 5. The test `sh test.sh` fails.",
        "user": {"login": "octocat", "id": 1, "type": "User"},
        "labels": labels.iter().map(|l| json!({"id": 1, "name": l, "color": "ededed"})).collect::<Vec<_>>(),
        "comments": 0, "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z"
    })
}

fn limited(s: &Shared, what: &str) -> Option<Response> {
    let mut f = s.lock().unwrap();
    if f.secondary_limit_next
        .as_deref()
        .is_some_and(|p| what.starts_with(p))
    {
        f.secondary_limit_next = None;
        return Some(
            (
                StatusCode::FORBIDDEN,
                [("retry-after", "1"), ("content-type", "application/json")],
                json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                       "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}).to_string(),
            )
                .into_response(),
        );
    }
    None
}

fn log(s: &Shared, method: &str, path: String, body: Value, h: &HeaderMap) {
    let auth = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    s.lock()
        .unwrap()
        .requests
        .push((method.to_owned(), path, body, auth));
}

fn with_limits(
    s: &Shared,
    status: StatusCode,
    extra: Vec<(String, String)>,
    body: Value,
) -> Response {
    let (remaining, reset) = {
        let mut f = s.lock().unwrap();
        f.remaining = f.remaining.saturating_sub(1);
        (f.remaining, f.reset.unwrap_or(4_102_444_800))
    };
    let mut r = (status, Json(body)).into_response();
    let h = r.headers_mut();
    h.insert("x-ratelimit-limit", "5000".parse().unwrap());
    h.insert(
        "x-ratelimit-remaining",
        remaining.to_string().parse().unwrap(),
    );
    h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
    for (k, v) in extra {
        h.insert(
            axum::http::HeaderName::try_from(k).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

fn not_found() -> Value {
    json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"})
}

pub async fn start(issue_numbers: Vec<u64>, comments_on_7: usize) -> FakeGitHub {
    let mut fake = Fake {
        remaining: 4999,
        ..Fake::default()
    };
    let mut cs = Vec::new();
    for i in 0..comments_on_7 {
        cs.push(
            json!({"id": i + 1, "body": format!("comment {i}"), "user": {"login": "octocat"},
                       "created_at": "2026-12-01T10:00:00Z"}),
        );
    }
    fake.comments.insert(7, cs);
    let state: Shared = Arc::new(Mutex::new(fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let numbers = Arc::new(issue_numbers);
    let base = url.clone();

    let n1 = Arc::clone(&numbers);
    let app = Router::new()
        .route("/repos/{o}/{r}/issues/{n}", get(move |State(s): State<Shared>, Path((o, r, n)): Path<(String, String, u64)>, h: HeaderMap| {
            let numbers = Arc::clone(&n1);
            async move {
                log(&s, "GET", format!("/repos/{o}/{r}/issues/{n}"), Value::Null, &h);
                if !numbers.contains(&n) {
                    return with_limits(&s, StatusCode::NOT_FOUND, vec![], not_found());
                }
                let labels = s.lock().unwrap().labels.get(&n).cloned().unwrap_or_default();
                with_limits(&s, StatusCode::OK, vec![], issue_json(n, &labels))
            }
        }))
        .route("/repos/{o}/{r}/issues/{n}/comments", get(move |State(s): State<Shared>, Path((o, r, n)): Path<(String, String, u64)>, Query(q): Query<BTreeMap<String, String>>, h: HeaderMap| {
            let base = base.clone();
            async move {
                let what = format!("GET /repos/{o}/{r}/issues/{n}/comments");
                log(&s, "GET", what[4..].to_owned(), json!(q), &h);
                if let Some(r) = limited(&s, &what) { return r; }
                let per: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
                let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                let all = s.lock().unwrap().comments.get(&n).cloned().unwrap_or_default();
                let items: Vec<Value> = all.iter().skip((page - 1) * per).take(per).cloned().collect();
                let last = all.len().div_ceil(per).max(1);
                let mut extra = vec![];
                if page < last {
                    extra.push(("link".to_owned(), format!(
                        "<{base}/repos/{o}/{r}/issues/{n}/comments?per_page={per}&page={}>; rel=\"next\", <{base}/repos/{o}/{r}/issues/{n}/comments?per_page={per}&page={last}>; rel=\"last\"", page + 1)));
                }
                with_limits(&s, StatusCode::OK, extra, json!(items))
            }
        }).post(|State(s): State<Shared>, Path((o, r, n)): Path<(String, String, u64)>, h: HeaderMap, Json(b): Json<Value>| async move {
            log(&s, "POST", format!("/repos/{o}/{r}/issues/{n}/comments"), b.clone(), &h);
            let c = {
                let mut f = s.lock().unwrap();
                let list = f.comments.entry(n).or_default();
                let c = json!({"id": 9000 + list.len(), "body": b["body"], "user": {"login": "miyabi-bot"}});
                list.push(c.clone());
                c
            };
            with_limits(&s, StatusCode::CREATED, vec![], c)
        }))
        .route("/repos/{o}/{r}/issues/{n}/labels", put(|State(s): State<Shared>, Path((o, r, n)): Path<(String, String, u64)>, h: HeaderMap, Json(b): Json<Value>| async move {
            log(&s, "PUT", format!("/repos/{o}/{r}/issues/{n}/labels"), b.clone(), &h);
            let labels: Vec<String> = serde_json::from_value(b["labels"].clone()).unwrap_or_default();
            s.lock().unwrap().labels.insert(n, labels.clone());
            let out: Vec<Value> = labels.iter().map(|l| json!({"id": 1, "name": l, "color": "ededed", "default": false})).collect();
            with_limits(&s, StatusCode::OK, vec![], json!(out))
        }))
        .route("/repos/{o}/{r}/git/refs", post(|State(s): State<Shared>, Path((o, r)): Path<(String, String)>, h: HeaderMap, Json(b): Json<Value>| async move {
            log(&s, "POST", format!("/repos/{o}/{r}/git/refs"), b.clone(), &h);
            let name = b["ref"].as_str().unwrap_or("").to_owned();
            let sha = b["sha"].as_str().unwrap_or("").to_owned();
            let exists = s.lock().unwrap().refs.contains_key(&name);
            if exists {
                return with_limits(&s, StatusCode::UNPROCESSABLE_ENTITY, vec![], json!({"message": "Reference already exists", "status": "422"}));
            }
            s.lock().unwrap().refs.insert(name.clone(), sha.clone());
            with_limits(&s, StatusCode::CREATED, vec![], json!({"ref": name, "object": {"sha": sha, "type": "commit"}}))
        }))
        .route("/repos/{o}/{r}/git/ref/heads/{*name}", get(|State(s): State<Shared>, Path((_o, _r, name)): Path<(String, String, String)>| async move {
            let sha = s.lock().unwrap().refs.get(&format!("refs/heads/{name}")).cloned();
            match sha {
                Some(sha) => with_limits(&s, StatusCode::OK, vec![], json!({"ref": format!("refs/heads/{name}"), "object": {"sha": sha, "type": "commit"}})),
                None => with_limits(&s, StatusCode::NOT_FOUND, vec![], not_found()),
            }
        }))
        .route("/repos/{o}/{r}/pulls", get(|State(s): State<Shared>, Path((o, r)): Path<(String, String)>, Query(q): Query<BTreeMap<String, String>>, h: HeaderMap| async move {
            log(&s, "GET", format!("/repos/{o}/{r}/pulls"), json!(q), &h);
            let head = q.get("head").cloned().unwrap_or_default();
            let pulls: Vec<Value> = s.lock().unwrap().pulls.iter()
                .filter(|p| head.is_empty() || format!("{o}:{}", p["head"]["ref"].as_str().unwrap_or("")) == head)
                .cloned().collect();
            with_limits(&s, StatusCode::OK, vec![], json!(pulls))
        }).post(|State(s): State<Shared>, Path((o, r)): Path<(String, String)>, h: HeaderMap, Json(b): Json<Value>| async move {
            let what = format!("POST /repos/{o}/{r}/pulls");
            log(&s, "POST", what[5..].to_owned(), b.clone(), &h);
            if let Some(r) = limited(&s, &what) { return r; }
            let pr = {
                let mut f = s.lock().unwrap();
                let n = 100 + f.pulls.len() as u64;
                let pr = json!({"id": n, "number": n, "state": "open", "title": b["title"], "body": b["body"], "draft": b["draft"],
                    "html_url": format!("https://github.com/{o}/{r}/pull/{n}"),
                    "head": {"ref": b["head"], "label": format!("{o}:{}", b["head"].as_str().unwrap_or(""))}, "base": {"ref": b["base"]}});
                f.pulls.push(pr.clone());
                pr
            };
            with_limits(&s, StatusCode::CREATED, vec![], pr)
        }))
        .route("/repos/{o}/{r}/commits/{git_ref}/check-runs", get(|State(s): State<Shared>, Path((o, r, g)): Path<(String, String, String)>, h: HeaderMap| async move {
            log(&s, "GET", format!("/repos/{o}/{r}/commits/{g}/check-runs"), Value::Null, &h);
            with_limits(&s, StatusCode::OK, vec![], json!({"total_count": 2, "check_runs": [
                {"id": 1, "name": "test", "status": "completed", "conclusion": "success", "head_sha": g},
                {"id": 2, "name": "lint", "status": "in_progress", "conclusion": null, "head_sha": g}]}))
        }))
        .with_state(Arc::clone(&state));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FakeGitHub { url, state }
}
