//! Notifications about approval gates: Slack (Block Kit), Discord (one embed) and a generic
//! JSON webhook signed with HMAC-SHA256.
//!
//! A [`Notifier`] is a configured destination; [`Notifier::render`] builds the exact request it
//! sends for a [`GateNotice`] and [`Notifier::send`] makes one delivery attempt. Retrying is the
//! caller's business (the approval outbox): [`NotifyError::is_retryable`], [`retry_delay`] and
//! [`MAX_ATTEMPTS`] describe the policy. Webhook URLs are secrets, so neither a notifier's
//! `Debug` output nor an error ever shows the URL or the signing secret; [`Notifier::key`] is
//! the identifier to store and log instead.
//!
//! The payloads are described in `docs/approvals.md` ("Notifications").

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::internals::{Secrets, error_chain, retry_after};

/// Most delivery attempts the outbox makes for one notification (the first one included).
pub const MAX_ATTEMPTS: u32 = 8;

/// Timeout of one delivery attempt (connecting, sending, and reading the answer).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest backoff [`retry_delay`] computes.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest `Retry-After` [`retry_delay`] honours (a receiver asking for more gets this).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How much of a receiver's error answer is kept in a [`NotifyError`].
const ERROR_BODY_CHARS: usize = 500;
/// How much of a receiver's answer is read at all.
const ERROR_BODY_READ: usize = 8 * 1024;
/// Extra links shown as Slack buttons next to "Review".
const SLACK_MAX_EXTRA_LINKS: usize = 5;
const USER_AGENT: &str = concat!("miyabi/", env!("CARGO_PKG_VERSION"));

/// Discord embed colours.
const COLOR_PENDING: u32 = 0xFF_BF_00; // amber
const COLOR_APPROVED: u32 = 0x2E_CC_71; // green
const COLOR_REJECTED: u32 = 0xE7_4C_3C; // red
const COLOR_OTHER: u32 = 0x95_A5_A6; // grey

/// What a notification says about a gate (built by the gate code from the approval request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateNotice {
    /// The run waiting at the gate.
    pub run_id: String,
    /// The workflow's id.
    pub workflow: String,
    /// The gate's step path, e.g. `"code-review"` or `"checks/security-review"`.
    pub gate: String,
    /// One-line title of the request.
    pub title: String,
    /// What is to be decided (Markdown-ish text; shown as is).
    pub summary: String,
    /// Who may decide, e.g. `["alice", "team:leads"]`.
    pub approvers: Vec<String>,
    /// When the gate times out, in milliseconds since the Unix epoch.
    pub deadline_at: Option<i64>,
    /// URL of the gate's page in the dashboard.
    pub link: String,
    /// Extra links from the request (pull request, build log, ...).
    pub links: Vec<Link>,
    /// What happened at the gate.
    pub event: NoticeEvent,
}

/// A labelled link shown with a notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Text of the link or button.
    pub label: String,
    /// Where it goes.
    pub url: String,
}

/// What happened at a gate. Serialized with a `kind` tag:
/// `{"kind": "requested"}`, `{"kind": "escalated"}`,
/// `{"kind": "decided", "status": "approved", "by": ["alice"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NoticeEvent {
    /// The gate is waiting for a decision.
    Requested,
    /// The gate is still waiting and has been escalated (reminder, wider audience).
    Escalated,
    /// The gate was closed without a decision: its run was cancelled or failed.
    Closed,
    /// The gate was decided.
    Decided {
        /// `"approved"` or `"rejected"`.
        status: String,
        /// Who decided.
        by: Vec<String>,
    },
}

impl NoticeEvent {
    /// `requested`, `escalated` or `decided`.
    fn name(&self) -> &'static str {
        match self {
            NoticeEvent::Requested => "requested",
            NoticeEvent::Escalated => "escalated",
            NoticeEvent::Decided { .. } => "decided",
            NoticeEvent::Closed => "closed",
        }
    }

    /// A short human description: "Approval requested", "Approved by alice", ...
    fn describe(&self) -> String {
        match self {
            NoticeEvent::Requested => "Approval requested".to_owned(),
            NoticeEvent::Escalated => "Approval escalated".to_owned(),
            NoticeEvent::Closed => "Closed: the run ended without a decision".to_owned(),
            NoticeEvent::Decided { status, by } => {
                let what = match status.as_str() {
                    "approved" => "Approved".to_owned(),
                    "rejected" => "Rejected".to_owned(),
                    other => format!("Decided ({other})"),
                };
                if by.is_empty() {
                    what
                } else {
                    format!("{what} by {}", by.join(", "))
                }
            }
        }
    }

    fn color(&self) -> u32 {
        match self {
            NoticeEvent::Requested | NoticeEvent::Escalated => COLOR_PENDING,
            NoticeEvent::Closed => COLOR_OTHER,
            NoticeEvent::Decided { status, .. } => match status.as_str() {
                "approved" => COLOR_APPROVED,
                "rejected" => COLOR_REJECTED,
                _ => COLOR_OTHER,
            },
        }
    }
}

/// The exact request a notifier sends: a JSON body and the headers added to the `POST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The JSON body.
    pub body: Vec<u8>,
    /// Header names and values, in the order they are added.
    pub headers: Vec<(String, String)>,
}

/// A failed delivery attempt. The text names the notifier by its [`Notifier::key`]; it never
/// contains the destination URL or the signing secret.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The receiver answered with a non-2xx status.
    #[error("{notifier}: HTTP {status}{}", body_suffix(.body))]
    Status {
        /// The notifier's [`Notifier::key`].
        notifier: String,
        /// The HTTP status.
        status: u16,
        /// The receiver's answer, at most 500 characters.
        body: String,
        /// The receiver's `Retry-After` (or `Retry-After-Ms`), if any.
        retry_after: Option<Duration>,
    },
    /// No answer: connection, TLS or timeout failure.
    #[error("{notifier}: request failed: {message}")]
    Transport {
        /// The notifier's [`Notifier::key`].
        notifier: String,
        /// What went wrong.
        message: String,
    },
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl NotifyError {
    /// Whether another attempt may succeed: HTTP 408, 429 and 5xx, and transport failures.
    /// Other statuses (400, 403, 404, ...) mean the request or the configuration is wrong.
    pub fn is_retryable(&self) -> bool {
        match self {
            NotifyError::Status { status, .. } => {
                matches!(*status, 408 | 429) || (500..=599).contains(status)
            }
            NotifyError::Transport { .. } => true,
        }
    }
}

/// The delay before delivery attempt `attempt` (the first attempt is 1 and has no delay):
/// 1 s before attempt 2, then doubling (2 s, 4 s, ...), with ±20 % jitter, never more than
/// 5 minutes. When the failed attempt's answer carried a `Retry-After`, that delay is used
/// instead (without jitter, at most one hour).
///
/// ```
/// use std::time::Duration;
/// use miyabi_engine::approval::{NotifyError, retry_delay};
///
/// let err = NotifyError::Transport { notifier: "slack:0123".into(), message: "reset".into() };
/// let d = retry_delay(2, &err);
/// assert!(d >= Duration::from_millis(800) && d <= Duration::from_millis(1200));
/// assert!(retry_delay(30, &err) <= Duration::from_secs(300));
/// ```
pub fn retry_delay(attempt: u32, err: &NotifyError) -> Duration {
    if attempt <= 1 {
        return Duration::ZERO;
    }
    if let NotifyError::Status {
        retry_after: Some(after),
        ..
    } = err
    {
        return (*after).min(MAX_RETRY_AFTER);
    }
    let base = Duration::from_secs(1)
        .saturating_mul(1u32 << (attempt - 2).min(16))
        .min(MAX_BACKOFF);
    base.mul_f64(0.8 + 0.4 * fastrand::f64()).min(MAX_BACKOFF)
}

/// Checks a webhook signature: `signature_header` is the `X-Miyabi-Signature` value
/// (`sha256=<hex>`), `timestamp` the `X-Miyabi-Timestamp` value and `body` the raw request body.
/// The comparison is constant-time. It does not check the timestamp's age: a receiver should
/// also reject timestamps more than 5 minutes away from its clock (replays).
///
/// ```
/// use miyabi_engine::approval::{GateNotice, NoticeEvent, verify_signature, webhook};
///
/// let notice = GateNotice {
///     run_id: "run-1".into(),
///     workflow: "publish".into(),
///     gate: "review".into(),
///     title: "Publish the post?".into(),
///     summary: String::new(),
///     approvers: vec![],
///     deadline_at: None,
///     link: "https://dashboard.invalid/runs/run-1/gates/review".into(),
///     links: vec![],
///     event: NoticeEvent::Requested,
/// };
/// let hook = webhook("https://hooks.invalid/miyabi", "s3cret");
/// let now_ms = 1_700_000_000_000;
/// let req = hook.render(&notice, now_ms);
/// let header = |name: &str| {
///     req.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
/// };
/// let (ts, sig) = (header("X-Miyabi-Timestamp"), header("X-Miyabi-Signature"));
///
/// // Receiver side.
/// let age = (now_ms / 1000 - ts.parse::<i64>().unwrap_or(0)).abs();
/// assert!(age <= 300 && verify_signature("s3cret", ts, &req.body, sig));
/// assert!(!verify_signature("other", ts, &req.body, sig));
/// ```
pub fn verify_signature(
    secret: &str,
    timestamp: &str,
    body: &[u8],
    signature_header: &str,
) -> bool {
    let Some(hex) = signature_header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = hex_decode(hex) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, &signed_payload(timestamp, body), &tag).is_ok()
}

/// `<timestamp>.<body>`, the bytes a webhook signature covers.
fn signed_payload(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(timestamp.len() + 1 + body.len());
    data.extend_from_slice(timestamp.as_bytes());
    data.push(b'.');
    data.extend_from_slice(body);
    data
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Slack,
    Discord,
    Webhook,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Slack => "slack",
            Kind::Discord => "discord",
            Kind::Webhook => "webhook",
        }
    }
}

struct Inner {
    kind: Kind,
    url: String,
    /// The signing secret (generic webhooks only).
    secret: String,
    key: String,
    /// What is scrubbed from error texts: the URL in its forms (whole), and, wherever any
    /// 12-character run of them appears, the signing secret and the token-like parts of the
    /// URL (long path segments, query values, a password).
    redact: Secrets,
}

/// A configured notification destination: [`slack`], [`discord`] or [`webhook`].
///
/// Cheap to clone (the configuration is shared). Its `Debug` output shows only the kind and
/// the [`key`](Notifier::key), never the URL or the secret.
///
/// ```
/// let n = miyabi_engine::approval::slack("https://hooks.invalid/services/T0/B0/XXXX");
/// assert_eq!(n.kind(), "slack");
/// assert!(!format!("{n:?}").contains("XXXX"));
/// ```
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("kind", &self.kind())
            .field("key", &self.inner.key)
            .finish()
    }
}

/// A Slack incoming webhook; messages use Block Kit (header, summary, fields, buttons).
pub fn slack(webhook_url: impl Into<String>) -> Notifier {
    Notifier::new(Kind::Slack, webhook_url.into(), String::new())
}

/// A Discord webhook; messages are one line of content and one embed, with mentions disabled.
pub fn discord(webhook_url: impl Into<String>) -> Notifier {
    Notifier::new(Kind::Discord, webhook_url.into(), String::new())
}

/// A generic JSON webhook: the body carries the whole [`GateNotice`], and each request is
/// signed with HMAC-SHA256 under `secret` (see [`verify_signature`]). Use a long random secret.
pub fn webhook(url: impl Into<String>, secret: impl Into<String>) -> Notifier {
    Notifier::new(Kind::Webhook, url.into(), secret.into())
}

impl Notifier {
    fn new(kind: Kind, url: String, secret: String) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, url.as_bytes());
        let key = format!("{}:{}", kind.name(), &hex_encode(digest.as_ref())[..16]);
        let mut redact = Secrets::new([secret.as_str()]).with_exact(&url);
        if let Ok(parsed) = reqwest::Url::parse(&url) {
            redact = redact.with_exact(parsed.as_str()).with_url(&url);
            // The path and query are where webhook tokens live: Slack's and Discord's tokens
            // are the last path segment.
            let path = parsed.path();
            if path.len() >= 8 {
                redact = redact.with_exact(path);
            }
            for segment in path.split('/').filter(|p| p.len() >= 16) {
                redact = redact.with(segment);
            }
            if let Some(query) = parsed.query().filter(|q| q.len() >= 8) {
                redact = redact.with_exact(query);
                for value in query
                    .split('&')
                    .filter_map(|p| p.split_once('=').map(|(_, v)| v))
                {
                    redact = redact.with(value);
                }
            }
            if let Some(pw) = parsed.password() {
                redact = redact.with(pw);
            }
        }
        Notifier {
            inner: Arc::new(Inner {
                kind,
                url,
                secret,
                key,
                redact,
            }),
        }
    }

    /// `"slack"`, `"discord"` or `"webhook"`.
    pub fn kind(&self) -> &'static str {
        self.inner.kind.name()
    }

    /// A stable identifier that is safe to store and log: the kind, `':'`, and the first 16 hex
    /// characters of the SHA-256 of the URL (`slack:3f2a9c0e51d4b7a8`). The same configuration
    /// gives the same key in every process; the key never contains the URL or the secret.
    pub fn key(&self) -> String {
        self.inner.key.clone()
    }

    /// The exact request this notifier sends for `notice` at time `now_ms` (milliseconds since
    /// the Unix epoch): the JSON body and the headers. [`send`](Notifier::send) renders with the
    /// current time, so each attempt carries a fresh timestamp and signature.
    pub fn render(&self, notice: &GateNotice, now_ms: i64) -> Rendered {
        let mut headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("User-Agent".to_owned(), USER_AGENT.to_owned()),
        ];
        let body = match self.inner.kind {
            Kind::Slack => to_bytes(&slack_payload(notice)),
            Kind::Discord => to_bytes(&discord_payload(notice, now_ms)),
            Kind::Webhook => {
                let body = to_bytes(&WebhookBody {
                    kind: match notice.event {
                        NoticeEvent::Requested => "approval.requested",
                        NoticeEvent::Escalated => "approval.escalated",
                        NoticeEvent::Decided { .. } => "approval.decided",
                        NoticeEvent::Closed => "approval.closed",
                    },
                    notice,
                    sent_at: now_ms,
                });
                let timestamp = now_ms.div_euclid(1000).to_string();
                let key =
                    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.inner.secret.as_bytes());
                let tag = ring::hmac::sign(&key, &signed_payload(&timestamp, &body));
                let delivery = format!(
                    "{}/{}/{}",
                    header_safe(&notice.run_id),
                    header_safe(&notice.gate),
                    notice.event.name()
                );
                headers.push(("X-Miyabi-Timestamp".to_owned(), timestamp));
                headers.push((
                    "X-Miyabi-Signature".to_owned(),
                    format!("sha256={}", hex_encode(tag.as_ref())),
                ));
                headers.push(("X-Miyabi-Delivery".to_owned(), delivery));
                body
            }
        };
        Rendered { body, headers }
    }

    /// One delivery attempt: `POST` of [`render`](Notifier::render)'s request with the current
    /// time, timing out after 10 seconds; redirects are not followed. `Ok` on a 2xx answer.
    ///
    /// The error names the notifier by its [`key`](Notifier::key) and carries the HTTP status
    /// and the start of the receiver's answer (500 characters), or the transport failure; it
    /// never contains the URL or the signing secret.
    pub async fn send(&self, notice: &GateNotice) -> Result<(), NotifyError> {
        let transport = |message: String| NotifyError::Transport {
            notifier: self.inner.key.clone(),
            message: self.redact(&message),
        };
        let client = http_client().map_err(transport)?;
        let rendered = self.render(notice, now_ms());
        let mut request = client.post(self.inner.url.as_str()).body(rendered.body);
        for (name, value) in &rendered.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        tracing::debug!(notifier = %self.inner.key, event = notice.event.name(), "sending notification");
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Err(transport(error_chain(&e.without_url()))),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = retry_after(response.headers());
        let mut raw = Vec::new();
        while raw.len() < ERROR_BODY_READ {
            match response.chunk().await {
                Ok(Some(chunk)) => raw.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        let text = self.redact(String::from_utf8_lossy(&raw).trim());
        Err(NotifyError::Status {
            notifier: self.inner.key.clone(),
            status: status.as_u16(),
            body: text.chars().take(ERROR_BODY_CHARS).collect(),
            retry_after,
        })
    }

    fn redact(&self, text: &str) -> String {
        self.inner.redact.redact(text).into_owned()
    }
}

/// The client all notifiers share: rustls with the `ring` provider (installed explicitly, as in
/// `model::http`), a 10 s timeout per attempt, no redirects. Public (and hidden) for the HTTP
/// server in the crate `miyabi`, which fetches JWKS documents with it; not part of the API.
#[doc(hidden)]
pub fn http_client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            if rustls::crypto::CryptoProvider::get_default().is_none() {
                // Err means another provider was installed concurrently, which is fine.
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            reqwest::Client::builder()
                .connect_timeout(SEND_TIMEOUT)
                .timeout(SEND_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .pool_idle_timeout(Duration::from_secs(90))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing these types (strings, numbers, string-keyed maps) cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// The generic webhook's body.
#[derive(Serialize)]
struct WebhookBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    notice: &'a GateNotice,
    sent_at: i64,
}

/// The title shown for a notice (the gate's path when the request has no title).
fn display_title(notice: &GateNotice) -> String {
    if notice.title.trim().is_empty() {
        format!("Approval needed: {}", notice.gate)
    } else {
        notice.title.clone()
    }
}

fn approvers_text(notice: &GateNotice) -> String {
    if notice.approvers.is_empty() {
        "—".to_owned()
    } else {
        notice.approvers.join(", ")
    }
}

// ---------------------------------------------------------------------------------------------
// Slack

/// Slack's limits: header text, section text, field text, button text and URL.
const SLACK_HEADER: usize = 150;
const SLACK_SECTION: usize = 3000;
const SLACK_FIELD: usize = 2000;
const SLACK_BUTTON_TEXT: usize = 75;
const SLACK_BUTTON_URL: usize = 3000;

fn slack_payload(notice: &GateNotice) -> Value {
    let title = display_title(notice);
    let event = notice.event.describe();
    let fallback = format!("{event}: {title} ({} / {})", notice.workflow, notice.gate);
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&title, SLACK_HEADER), "emoji": true },
    })];
    if !notice.summary.trim().is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": mrkdwn(&notice.summary, SLACK_SECTION) },
        }));
    }
    let mut fields = vec![
        ("Status", event),
        ("Workflow", notice.workflow.clone()),
        ("Run", notice.run_id.clone()),
        ("Gate", notice.gate.clone()),
        ("Approvers", approvers_text(notice)),
    ];
    if let Some(at) = notice.deadline_at {
        fields.push(("Deadline", iso8601(at)));
    }
    let fields: Vec<Value> = fields
        .into_iter()
        .map(|(name, value)| {
            let head = format!("*{name}*\n");
            let budget = SLACK_FIELD - head.chars().count();
            json!({ "type": "mrkdwn", "text": format!("{head}{}", mrkdwn(&value, budget)) })
        })
        .collect();
    blocks.push(json!({ "type": "section", "fields": fields }));
    let mut buttons = Vec::new();
    if usable_url(&notice.link) {
        buttons.push(json!({
            "type": "button",
            "text": { "type": "plain_text", "text": "Review" },
            "url": notice.link,
            "action_id": "miyabi-review",
            "style": "primary",
        }));
    }
    let extra = notice.links.iter().filter(|l| usable_url(&l.url));
    for (i, link) in extra.take(SLACK_MAX_EXTRA_LINKS).enumerate() {
        let label = if link.label.trim().is_empty() {
            "Link"
        } else {
            link.label.as_str()
        };
        buttons.push(json!({
            "type": "button",
            "text": { "type": "plain_text", "text": truncate(label, SLACK_BUTTON_TEXT) },
            "url": link.url,
            "action_id": format!("miyabi-link-{}", i + 1),
        }));
    }
    if !buttons.is_empty() {
        blocks.push(json!({ "type": "actions", "elements": buttons }));
    }
    json!({ "text": mrkdwn(&fallback, SLACK_SECTION), "blocks": blocks })
}

fn usable_url(url: &str) -> bool {
    !url.trim().is_empty() && url.chars().count() <= SLACK_BUTTON_URL
}

/// Slack `mrkdwn` text: `&`, `<` and `>` escaped (so user text cannot form links or mentions),
/// cut to `max` characters with "…".
fn mrkdwn(s: &str, max: usize) -> String {
    let mut pieces = Vec::with_capacity(s.len());
    for c in s.chars() {
        pieces.push(match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            c => c.to_string(),
        });
    }
    let total: usize = pieces.iter().map(|p| p.chars().count()).sum();
    if total <= max {
        return pieces.concat();
    }
    let mut out = String::new();
    let mut n = 0;
    for piece in pieces {
        let len = piece.chars().count();
        if n + len + 1 > max {
            break;
        }
        out.push_str(&piece);
        n += len;
    }
    out.push('…');
    out
}

// ---------------------------------------------------------------------------------------------
// Discord

/// Discord's limits: content, embed title, description, field name and value, whole embed.
const DISCORD_CONTENT: usize = 2000;
const DISCORD_TITLE: usize = 256;
const DISCORD_DESCRIPTION: usize = 4096;
const DISCORD_FIELD_VALUE: usize = 1024;
const DISCORD_EMBED_TOTAL: usize = 6000;

fn discord_payload(notice: &GateNotice, now_ms: i64) -> Value {
    let title = truncate(&display_title(notice), DISCORD_TITLE);
    let event = notice.event.describe();
    let content = format!(
        "{event}: {} ({} / {})",
        display_title(notice),
        notice.workflow,
        notice.gate
    );
    let content = truncate(&one_line(&content), DISCORD_CONTENT);
    let mut description =
        (!notice.summary.trim().is_empty()).then(|| truncate(&notice.summary, DISCORD_DESCRIPTION));
    let mut fields: Vec<(&str, String, bool)> = vec![
        ("Status", event, true),
        ("Workflow", notice.workflow.clone(), true),
        ("Run", notice.run_id.clone(), true),
        ("Gate", notice.gate.clone(), true),
        ("Approvers", approvers_text(notice), true),
    ];
    if let Some(at) = notice.deadline_at {
        fields.push(("Deadline", iso8601(at), true));
    }
    let links: Vec<String> = notice
        .links
        .iter()
        .filter(|l| !l.url.trim().is_empty())
        .map(|l| {
            let label = if l.label.trim().is_empty() {
                "link"
            } else {
                l.label.as_str()
            };
            let label = one_line(label).replace('[', "\\[").replace(']', "\\]");
            format!("[{label}]({})", l.url)
        })
        .collect();
    if !links.is_empty() {
        fields.push(("Links", links.join("\n"), false));
    }
    for (_, value, _) in &mut fields {
        if value.trim().is_empty() {
            *value = "—".to_owned();
        }
        *value = truncate(value, DISCORD_FIELD_VALUE);
    }
    // The whole embed (title, description, field names and values) must fit in 6000
    // characters: shorten the description first, then the field values from the last.
    let count = |s: &str| s.chars().count();
    let total = |d: &Option<String>, f: &[(&str, String, bool)]| {
        count(&title)
            + d.as_deref().map_or(0, count)
            + f.iter().map(|(n, v, _)| count(n) + count(v)).sum::<usize>()
    };
    let mut excess = total(&description, &fields).saturating_sub(DISCORD_EMBED_TOTAL);
    if excess > 0
        && let Some(d) = description.take()
    {
        let len = count(&d);
        if len > excess {
            description = Some(truncate(&d, len - excess));
        }
        excess = total(&description, &fields).saturating_sub(DISCORD_EMBED_TOTAL);
    }
    for (_, value, _) in fields.iter_mut().rev() {
        if excess == 0 {
            break;
        }
        let len = count(value);
        let keep = len.saturating_sub(excess).max(1);
        *value = truncate(value, keep);
        excess -= len - count(value);
    }
    let mut embed = serde_json::Map::new();
    embed.insert("title".into(), json!(title));
    if let Some(d) = description {
        embed.insert("description".into(), json!(d));
    }
    if !notice.link.trim().is_empty() {
        embed.insert("url".into(), json!(notice.link));
    }
    embed.insert("color".into(), json!(notice.event.color()));
    embed.insert(
        "fields".into(),
        Value::Array(
            fields
                .into_iter()
                .map(|(name, value, inline)| json!({ "name": name, "value": value, "inline": inline }))
                .collect(),
        ),
    );
    embed.insert("timestamp".into(), json!(iso8601(now_ms)));
    json!({
        "content": content,
        "embeds": [Value::Object(embed)],
        "allowed_mentions": { "parse": [] },
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// `s` cut to at most `max` characters, ending with "…" when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds) for milliseconds since the Unix epoch.
fn iso8601(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms since the Unix epoch"))
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    s.chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// A header-safe form of an id: printable ASCII is kept, anything else (and `%`) is
/// percent-encoded byte by byte.
fn header_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
