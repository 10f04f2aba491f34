//! A GitHub webhook receiver: an axum [`Router`] with `POST /webhooks/github` that starts
//! configured workflows on `issues` (opened, labeled) and `issue_comment` (created) events.
//!
//! - The `X-Hub-Signature-256` header (`sha256=<hex HMAC-SHA256 of the body>` under the
//!   webhook's secret) is verified in constant time; a missing or wrong signature is **401**.
//! - Each delivery id (`X-GitHub-Delivery`) is remembered for 7 days (in a [`Memory`]: give it a
//!   SQLite one to remember across restarts); a second delivery with the same id is **409**, so
//!   a replayed request starts nothing.
//! - A matching event starts each matching workflow with `{"event", "action", "delivery",
//!   "repository", "issue": {"number", "title", "body", "labels"}, "comment"?, "sender"}` and
//!   answers **202** `{"runs": [ids]}`; anything else is 200 `{"ignored": why}`.
//!
//! Mount it next to the API; it authenticates by signature, not by the API's tokens:
//!
//! ```no_run
//! # fn demo(engine: miyabi::Engine, wf: miyabi::CommittedWorkflow) -> Result<(), Box<dyn std::error::Error>> {
//! use miyabi_agents::github::webhook::{self, WebhookConfig};
//! let hooks = WebhookConfig::new(engine.clone(), std::env::var("GITHUB_WEBHOOK_SECRET")?)
//!     .on_issue_labeled("agent:codegen", wf);
//! let app = miyabi::server::router(engine, miyabi::server::ServerConfig::from_env()?)
//!     .merge(webhook::router(hooks));
//! # let _ = app; Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use miyabi::{CommittedWorkflow, Engine, Memory};
use serde_json::{Value, json};

/// The path the router serves.
pub const PATH: &str = "/webhooks/github";

/// How long delivery ids are remembered.
const DELIVERY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Which events start a workflow.
#[derive(Clone)]
struct Trigger {
    event: &'static str,
    action: &'static str,
    label: Option<String>,
    contains: Option<String>,
    workflow: CommittedWorkflow,
}

/// The receiver's configuration: the secret, the engine and the triggers.
#[derive(Clone)]
pub struct WebhookConfig {
    engine: Engine,
    secret: Arc<[u8]>,
    triggers: Vec<Trigger>,
    deliveries: Option<Memory>,
    repositories: Vec<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secret", &"<redacted>")
            .field("repositories", &self.repositories)
            .field(
                "triggers",
                &self
                    .triggers
                    .iter()
                    .map(|t| format!("{}.{} -> {}", t.event, t.action, t.workflow.id()))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// A receiver starting runs on `engine`, verifying signatures with `secret`.
    pub fn new(engine: Engine, secret: impl Into<String>) -> Self {
        Self {
            engine,
            secret: Arc::from(secret.into().into_bytes()),
            triggers: Vec::new(),
            deliveries: None,
            repositories: Vec::new(),
        }
    }

    fn trigger(
        mut self,
        event: &'static str,
        action: &'static str,
        label: Option<String>,
        contains: Option<String>,
        workflow: CommittedWorkflow,
    ) -> Self {
        self.engine.register(&workflow);
        self.triggers.push(Trigger {
            event,
            action,
            label,
            contains,
            workflow,
        });
        self
    }

    /// Starts `workflow` when an issue is opened.
    pub fn on_issue_opened(self, workflow: CommittedWorkflow) -> Self {
        self.trigger("issues", "opened", None, None, workflow)
    }

    /// Starts `workflow` when `label` is added to an issue.
    pub fn on_issue_labeled(self, label: impl Into<String>, workflow: CommittedWorkflow) -> Self {
        self.trigger("issues", "labeled", Some(label.into()), None, workflow)
    }

    /// Starts `workflow` when a comment containing `text` (any comment with `None`) is posted.
    pub fn on_issue_comment(self, text: Option<String>, workflow: CommittedWorkflow) -> Self {
        self.trigger("issue_comment", "created", None, text, workflow)
    }

    /// Accepts events of this repository only (`owner/name`, compared without case; call it
    /// again to accept more). Events of other repositories are answered 200 `{"ignored"}` and
    /// start nothing. Without it, every repository's events are accepted.
    pub fn repository(mut self, full_name: impl Into<String>) -> Self {
        self.repositories.push(full_name.into());
        self
    }

    /// Where delivery ids are remembered (default: an in-process memory). A SQLite
    /// [`Memory`] keeps rejecting replays after a restart.
    pub fn deliveries(mut self, memory: Memory) -> Self {
        self.deliveries = Some(memory);
        self
    }
}

struct Shared {
    config: WebhookConfig,
    deliveries: Memory,
    lock: tokio::sync::Mutex<()>,
}

/// The receiver's router (`POST /webhooks/github`).
pub fn router(config: WebhookConfig) -> Router {
    let deliveries = match config.deliveries.clone() {
        Some(m) => Ok(m),
        None => Memory::in_memory(),
    };
    let shared = deliveries.map(|deliveries| {
        Arc::new(Shared {
            config,
            deliveries,
            lock: tokio::sync::Mutex::new(()),
        })
    });
    match shared {
        Ok(s) => Router::new().route(PATH, post(receive)).with_state(s),
        Err(e) => {
            let msg = format!("the webhook's delivery memory could not be opened: {e}");
            Router::new().route(
                PATH,
                post(move || {
                    let msg = msg.clone();
                    async move { answer(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": msg})) }
                }),
            )
        }
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn verify_signature(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(tag) = hex::decode(hex_sig) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, body, &tag).is_ok()
}

/// The `X-Hub-Signature-256` value for `body` under `secret` (for senders and tests).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn receive(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(sig) = header(&headers, "x-hub-signature-256") else {
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing X-Hub-Signature-256"}),
        );
    };
    if !verify_signature(&s.config.secret, &body, sig) {
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "X-Hub-Signature-256 does not match the body"}),
        );
    }
    let Some(delivery) = header(&headers, "x-github-delivery").map(str::to_owned) else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "missing X-GitHub-Delivery"}),
        );
    };
    let event = header(&headers, "x-github-event").unwrap_or("").to_owned();
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("the body is not JSON: {e}")}),
            );
        }
    };
    let seen = s.deliveries.resource("github-webhook-deliveries");
    let _guard = s.lock.lock().await;
    match seen.get(&delivery).await {
        Ok(Some(_)) => {
            return answer(
                StatusCode::CONFLICT,
                json!({"error": format!("delivery {delivery} was already received")}),
            );
        }
        Ok(None) => {}
        Err(e) => {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": format!("delivery memory: {e}")}),
            );
        }
    }
    if let Err(e) = seen
        .set_with_ttl(&delivery, json!(event), DELIVERY_TTL)
        .await
    {
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": format!("delivery memory: {e}")}),
        );
    }
    if event == "ping" {
        return answer(StatusCode::OK, json!({"pong": true}));
    }
    let repository = payload["repository"]["full_name"].as_str().unwrap_or("");
    if !s.config.repositories.is_empty()
        && !s
            .config
            .repositories
            .iter()
            .any(|r| r.eq_ignore_ascii_case(repository))
    {
        return answer(
            StatusCode::OK,
            json!({"ignored": format!("events of repository `{repository}` are not accepted here")}),
        );
    }
    let action = payload["action"].as_str().unwrap_or("");
    let matching: Vec<&Trigger> = s
        .config
        .triggers
        .iter()
        .filter(|t| t.event == event && t.action == action)
        .filter(|t| {
            t.label
                .as_ref()
                .is_none_or(|l| payload["label"]["name"].as_str() == Some(l.as_str()))
        })
        .filter(|t| {
            t.contains.as_ref().is_none_or(|c| {
                payload["comment"]["body"]
                    .as_str()
                    .is_some_and(|b| b.contains(c.as_str()))
            })
        })
        .collect();
    if matching.is_empty() {
        return answer(
            StatusCode::OK,
            json!({"ignored": format!("no workflow is configured for {event}.{action}")}),
        );
    }
    let issue = &payload["issue"];
    let input = json!({
        "event": event,
        "action": action,
        "delivery": delivery,
        "repository": payload["repository"]["full_name"],
        "issue": {
            "number": issue["number"],
            "title": issue["title"],
            "body": issue["body"],
            "labels": issue["labels"].as_array().map(|l| l.iter().map(|x| x["name"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
        },
        "comment": payload.get("comment").map(|c| json!({"id": c["id"], "body": c["body"], "user": c["user"]["login"]})),
        "sender": payload["sender"]["login"],
    });
    let mut runs = Vec::new();
    for t in matching {
        match s.config.engine.spawn(&t.workflow, input.clone()) {
            Ok(h) => runs.push(h.id().to_owned()),
            Err(e) => {
                if runs.is_empty() {
                    // Nothing started: let GitHub's redelivery try again.
                    let _ = seen.delete(&delivery).await;
                }
                return answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": format!("starting `{}`: {e}", t.workflow.id()), "runs": runs}),
                );
            }
        }
    }
    answer(StatusCode::ACCEPTED, json!({"runs": runs}))
}
