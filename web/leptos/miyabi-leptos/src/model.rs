//! What the components show: a run as the browser sees it, built from the API's run JSON
//! (`GET /api/runs/{id}`, or the engine on the server) and kept current with the run's events
//! (`GET /api/runs/{id}/events`). Plain data, the same on the server and in the browser.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where the components find Miyabi's HTTP API (`miyabi::server::router`).
///
/// Provide one with [`leptos::prelude::provide_context`] (or pass `api=` to a component); the
/// default is `/api` on the page's own origin with no token, for an app that mounts the router
/// next to its pages and puts its own authentication in front of it (see `docs/web.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MiyabiApi {
    /// The API's base URL, without a trailing slash (`/api`, `https://ops.example.com/api`).
    pub base: String,
    /// A bearer token sent with every request (`Authorization`, and `?access_token=` on the
    /// event stream, which browsers cannot send headers with). `None`: rely on the app's session.
    pub token: Option<String>,
}

impl Default for MiyabiApi {
    fn default() -> Self {
        Self {
            base: "/api".to_string(),
            token: None,
        }
    }
}

impl MiyabiApi {
    /// An API at `base` (`/api`), without a token.
    pub fn new(base: impl Into<String>) -> Self {
        let base = base.into();
        Self {
            base: base.trim_end_matches('/').to_string(),
            token: None,
        }
    }

    /// Sends `token` as the bearer token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The URL of `path` (which starts with `/`) under the API.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The URL of a run's event stream, from event `from` (1: the whole log).
    pub fn events_url(&self, run: &str, from: u64) -> String {
        let mut url = format!(
            "{}/runs/{}/events?from={from}",
            self.base,
            encode_segment(run)
        );
        if let Some(token) = &self.token {
            url.push_str("&access_token=");
            url.push_str(&encode_segment(token));
        }
        url
    }

    /// The URL that decides the gate `gate` of `run` (the gate path in one segment).
    pub fn decision_url(&self, run: &str, gate: &str) -> String {
        format!(
            "{}/approvals/{}/{}/decision",
            self.base,
            encode_segment(run),
            encode_segment(gate)
        )
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), so a gate path such as
/// `checks/security` stays one path segment.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A run as the components show it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunView {
    /// The run's id.
    pub id: String,
    /// Its workflow's id.
    pub workflow: String,
    /// `running`, `suspended`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The steps seen so far, in the order they first ran.
    pub steps: Vec<StepView>,
    /// The gates (and other suspensions) the run waits at.
    pub waiting: Vec<Waiting>,
    /// The output, once succeeded.
    pub output: Option<Value>,
    /// The error, once failed or cancelled.
    pub error: Option<String>,
    /// The sequence number of the last event applied (0: none, the view came from a snapshot).
    pub last_seq: u64,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepView {
    /// The step's path (`draft`, `review`, `each[2]/fetch`).
    pub path: String,
    /// `running`, `succeeded`, `failed`, `suspended` or `retrying`.
    pub status: String,
    /// Its output, once committed.
    pub output: Option<Value>,
    /// Its failure.
    pub error: Option<String>,
}

/// A path the run is suspended at: an approval gate (with what to review) or another suspension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    /// The suspended path (for a gate: the gate's id, used to decide it).
    pub path: String,
    /// The approval request, when the path is an approval gate.
    pub approval: Option<ApprovalRequest>,
    /// The raw suspension payload.
    pub payload: Value,
}

/// What an approval gate asks (the `request` of its suspension payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The request's title.
    pub title: String,
    /// Its summary.
    #[serde(default)]
    pub summary: String,
    /// The data under review: what an approver may edit before approving.
    #[serde(default)]
    pub data: Value,
    /// Who may decide (`alice`, `team:leads`, `*`).
    #[serde(default)]
    pub approvers: Vec<String>,
}

/// One message of a [`crate::MiyabiChat`] conversation, as the chat sends it to its agent route
/// (`{"messages": [{"role": "user" | "assistant", "text": "..."}]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The message's text.
    pub text: String,
}

/// How a run ended: what `on_complete` receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The run's id.
    pub run_id: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The output, when succeeded.
    pub output: Option<Value>,
    /// The error, when failed or cancelled.
    pub error: Option<String>,
}

impl Waiting {
    /// A suspension from its path and payload (`{"type": "approval", "request": {...}}` for a
    /// gate).
    pub fn new(path: String, payload: Value) -> Self {
        let approval = if payload.get("type").and_then(Value::as_str) == Some("approval") {
            payload
                .get("request")
                .and_then(|r| serde_json::from_value(r.clone()).ok())
        } else {
            None
        };
        Self {
            path,
            approval,
            payload,
        }
    }
}

impl RunView {
    /// An empty view of a run that was just started.
    pub fn started(id: impl Into<String>, workflow: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            workflow: workflow.into(),
            status: "running".to_string(),
            ..Self::default()
        }
    }

    /// From the API's answer to `GET /api/runs/{id}`: `{"run": Run, "steps": [StepRecord]}`.
    pub fn from_api(body: &Value) -> Result<Self, String> {
        let run = body
            .get("run")
            .ok_or("the run's JSON has no `run` object")?;
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let id = text(run, "id").ok_or("the run's JSON has no `run.id`")?;
        let workflow = text(run, "workflow").unwrap_or_default();
        let status = text(run, "status").ok_or("the run's JSON has no `run.status`")?;
        let mut view = Self {
            id,
            workflow,
            status,
            output: run.get("output").filter(|v| !v.is_null()).cloned(),
            error: text(run, "error"),
            ..Self::default()
        };
        for s in run
            .get("suspended")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(path) = text(s, "path") {
                let payload = s.get("payload").cloned().unwrap_or(Value::Null);
                view.waiting.push(Waiting::new(path, payload));
            }
        }
        for s in body
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // Branch, loop, map and sleep records are decisions, not steps to show.
            if s.get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k != "step")
            {
                continue;
            }
            let Some(path) = text(s, "path") else {
                continue;
            };
            view.steps.push(StepView {
                path,
                status: text(s, "status").unwrap_or_default(),
                output: s.get("output").filter(|v| !v.is_null()).cloned(),
                error: text(s, "error"),
            });
        }
        Ok(view)
    }

    /// Whether the run has ended (no more events will come).
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }

    /// How the run ended, once it has.
    pub fn result(&self) -> Option<RunResult> {
        self.finished().then(|| RunResult {
            run_id: self.id.clone(),
            status: self.status.clone(),
            output: self.output.clone(),
            error: self.error.clone(),
        })
    }

    fn step(&mut self, path: &str) -> &mut StepView {
        let i = match self.steps.iter().position(|s| s.path == path) {
            Some(i) => i,
            None => {
                self.steps.push(StepView {
                    path: path.to_string(),
                    status: "running".to_string(),
                    output: None,
                    error: None,
                });
                self.steps.len() - 1
            }
        };
        &mut self.steps[i]
    }

    /// Applies one event of the run's log (the `data` of a server-sent event: a `RunEvent` as
    /// JSON). Events at or before [`RunView::last_seq`] are ignored, so a replayed stream
    /// changes nothing. Returns whether the event finished the run.
    pub fn apply(&mut self, event: &Value) -> Result<bool, String> {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .ok_or("the event has no `type`")?;
        let seq = event.get("seq").and_then(Value::as_u64).unwrap_or(0);
        if seq != 0 && seq <= self.last_seq {
            return Ok(false);
        }
        self.last_seq = self.last_seq.max(seq);
        let path = event
            .get("path")
            .and_then(Value::as_str)
            .map(str::to_string);
        let need_path = || {
            path.clone()
                .ok_or(format!("the `{kind}` event has no `path`"))
        };
        match kind {
            "run-started" => {
                self.status = "running".to_string();
                if let Some(w) = event.get("workflow").and_then(Value::as_str) {
                    self.workflow = w.to_string();
                }
            }
            "step-started" => {
                let step = self.step(&need_path()?);
                step.status = "running".to_string();
                step.error = None;
            }
            "step-output" => {
                let output = event.get("output").cloned();
                let step = self.step(&need_path()?);
                step.status = "succeeded".to_string();
                step.output = output;
            }
            "step-suspended" => {
                let path = need_path()?;
                self.step(&path).status = "suspended".to_string();
                let payload = event.get("payload").cloned().unwrap_or(Value::Null);
                self.waiting.retain(|w| w.path != path);
                self.waiting.push(Waiting::new(path, payload));
            }
            "step-failed" | "step-retrying" => {
                let error = event
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let step = self.step(&need_path()?);
                step.status = if kind == "step-failed" {
                    "failed"
                } else {
                    "retrying"
                }
                .to_string();
                step.error = error;
            }
            "run-resumed" => {
                let path = need_path()?;
                self.waiting.retain(|w| w.path != path);
                self.step(&path).status = "running".to_string();
                self.status = "running".to_string();
            }
            "run-suspended" => self.status = "suspended".to_string(),
            "run-finished" => {
                self.status = event
                    .get("status")
                    .and_then(Value::as_str)
                    .ok_or("the `run-finished` event has no `status`")?
                    .to_string();
                self.output = event.get("output").filter(|v| !v.is_null()).cloned();
                self.error = event
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                self.waiting.clear();
                return Ok(true);
            }
            // `custom` events and kinds added later change nothing shown here.
            _ => {}
        }
        Ok(false)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_build_the_run_and_a_replay_changes_nothing() {
        let events = [
            json!({"run_id": "r", "seq": 1, "at": 0, "type": "run-started", "workflow": "w", "input": {}}),
            json!({"run_id": "r", "seq": 2, "at": 0, "type": "step-started", "path": "draft", "attempt": 1}),
            json!({"run_id": "r", "seq": 3, "at": 0, "type": "step-output", "path": "draft", "output": {"n": 1}}),
            json!({"run_id": "r", "seq": 4, "at": 0, "type": "step-started", "path": "review", "attempt": 1}),
            json!({"run_id": "r", "seq": 5, "at": 0, "type": "step-suspended", "path": "review",
                   "payload": {"type": "approval", "request": {"title": "Check", "summary": "s", "data": {"n": 1}, "approvers": ["*"]}}}),
            json!({"run_id": "r", "seq": 6, "at": 0, "type": "run-suspended", "paths": ["review"]}),
        ];
        let mut v = RunView::started("r", "w");
        for e in &events {
            assert!(!v.apply(e).unwrap());
        }
        assert_eq!(v.status, "suspended");
        assert_eq!(v.steps.len(), 2);
        assert_eq!(v.steps[0].status, "succeeded");
        assert_eq!(v.steps[1].status, "suspended");
        let gate = v.waiting[0].approval.as_ref().unwrap();
        assert_eq!(gate.title, "Check");
        assert_eq!(gate.data, json!({"n": 1}));
        let before = v.clone();
        for e in &events {
            v.apply(e).unwrap();
        }
        assert_eq!(v, before);

        v.apply(&json!({"seq": 7, "type": "run-resumed", "path": "review"}))
            .unwrap();
        assert!(v.waiting.is_empty());
        assert_eq!(v.status, "running");
        let done = v
            .apply(&json!({"seq": 8, "type": "run-finished", "status": "succeeded", "output": {"ok": true}, "error": null}))
            .unwrap();
        assert!(done);
        assert_eq!(
            v.result().unwrap(),
            RunResult {
                run_id: "r".into(),
                status: "succeeded".into(),
                output: Some(json!({"ok": true})),
                error: None
            }
        );
    }

    #[test]
    fn malformed_events_are_errors_not_panics() {
        let mut v = RunView::started("r", "w");
        assert!(v.apply(&json!({})).unwrap_err().contains("type"));
        assert!(
            v.apply(&json!({"seq": 1, "type": "step-output"}))
                .unwrap_err()
                .contains("path")
        );
        assert!(
            v.apply(&json!({"seq": 2, "type": "run-finished"}))
                .unwrap_err()
                .contains("status")
        );
    }

    #[test]
    fn the_api_answer_reads_into_a_view() {
        let body = json!({
            "run": {"id": "r1", "workflow": "w", "status": "suspended", "input": {}, "output": null, "error": null,
                    "suspended": [{"path": "review", "payload": {"type": "approval", "request": {"title": "T", "data": [1]}}}],
                    "created_at": 0, "updated_at": 0},
            "steps": [
                {"path": "draft", "kind": "step", "status": "succeeded", "output": {"a": 1}},
                {"path": "pick", "kind": "branch", "status": "succeeded", "output": {"arm": "x"}},
                {"path": "review", "kind": "step", "status": "suspended", "output": null}
            ]
        });
        let v = RunView::from_api(&body).unwrap();
        assert_eq!(v.id, "r1");
        assert_eq!(
            v.steps.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
            ["draft", "review"]
        );
        assert_eq!(v.waiting[0].approval.as_ref().unwrap().data, json!([1]));
        assert!(RunView::from_api(&json!({"steps": []})).is_err());
    }

    #[test]
    fn urls_keep_a_gate_path_in_one_segment() {
        let api = MiyabiApi::new("/api/").token("t k");
        assert_eq!(
            api.decision_url("r1", "checks/security"),
            "/api/approvals/r1/checks%2Fsecurity/decision"
        );
        assert_eq!(
            api.events_url("r1", 3),
            "/api/runs/r1/events?from=3&access_token=t%20k"
        );
    }
}
