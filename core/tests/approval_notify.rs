//! Approval notifications through the public API: the exact Slack, Discord and webhook
//! requests, signatures, delivery against a loopback receiver, errors and the retry policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

mod notify_support;
use notify_support::{Receiver, header, reply};

use miyabi::approval::{
    GateNotice, Link, MAX_ATTEMPTS, NoticeEvent, Notifier, NotifyError, discord, retry_delay,
    slack, verify_signature, webhook,
};
use serde_json::{Value, json};

const NOW_MS: i64 = 1_735_732_800_123; // 2025-01-01T12:00:00.123Z
const SECRET: &str = "whsec_9d1c3e7a5b2f4e60";

fn notice() -> GateNotice {
    GateNotice {
        run_id: "run-01J8".into(),
        workflow: "publish".into(),
        gate: "checks/security-review".into(),
        title: "Release v2.0".into(),
        summary: "Bump *deps* & <fix> auth".into(),
        approvers: vec!["alice".into(), "team:leads".into()],
        deadline_at: Some(1_735_819_200_000), // 2025-01-02T12:00:00Z
        link: "https://dash.test/runs/run-01J8/gates/checks/security-review".into(),
        links: vec![Link {
            label: "PR #42".into(),
            url: "https://git.test/acme/app/pull/42".into(),
        }],
        event: NoticeEvent::Requested,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Payloads

#[test]
fn slack_payload_is_block_kit() {
    let n = slack("https://hooks.test/services/T000/B000/XXXXXXXXXXXXXXXX");
    let r = n.render(&notice(), NOW_MS);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    let expected = json!({
        "text": "Approval requested: Release v2.0 (publish / checks/security-review)",
        "blocks": [
            {
                "type": "header",
                "text": { "type": "plain_text", "text": "Release v2.0", "emoji": true }
            },
            {
                "type": "section",
                "text": { "type": "mrkdwn", "text": "Bump *deps* &amp; &lt;fix&gt; auth" }
            },
            {
                "type": "section",
                "fields": [
                    { "type": "mrkdwn", "text": "*Status*\nApproval requested" },
                    { "type": "mrkdwn", "text": "*Workflow*\npublish" },
                    { "type": "mrkdwn", "text": "*Run*\nrun-01J8" },
                    { "type": "mrkdwn", "text": "*Gate*\nchecks/security-review" },
                    { "type": "mrkdwn", "text": "*Approvers*\nalice, team:leads" },
                    { "type": "mrkdwn", "text": "*Deadline*\n2025-01-02T12:00:00Z" }
                ]
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": { "type": "plain_text", "text": "Review" },
                        "url": "https://dash.test/runs/run-01J8/gates/checks/security-review",
                        "action_id": "miyabi-review",
                        "style": "primary"
                    },
                    {
                        "type": "button",
                        "text": { "type": "plain_text", "text": "PR #42" },
                        "url": "https://git.test/acme/app/pull/42",
                        "action_id": "miyabi-link-1"
                    }
                ]
            }
        ]
    });
    assert_eq!(body, expected);
    assert_eq!(
        r.headers,
        vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            (
                "User-Agent".to_owned(),
                format!("miyabi/{}", env!("CARGO_PKG_VERSION"))
            ),
        ]
    );
}

#[test]
fn slack_limits_and_decisions() {
    let mut n = notice();
    n.title = "t".repeat(400);
    n.summary = String::new();
    n.deadline_at = None;
    n.links = (0..8)
        .map(|i| Link {
            label: format!("link {i}"),
            url: format!("https://ci.test/{i}"),
        })
        .collect();
    n.event = NoticeEvent::Decided {
        status: "rejected".into(),
        by: vec!["bob".into()],
    };
    let body: Value =
        serde_json::from_slice(&slack("https://hooks.test/x").render(&n, NOW_MS).body).unwrap();
    let blocks = body["blocks"].as_array().unwrap();
    // No summary section when the summary is empty: header, fields, actions.
    assert_eq!(blocks.len(), 3);
    let header_text = blocks[0]["text"]["text"].as_str().unwrap();
    assert_eq!(header_text.chars().count(), 150);
    assert!(header_text.ends_with('…'));
    let fields = blocks[1]["fields"].as_array().unwrap();
    assert_eq!(fields[0]["text"], "*Status*\nRejected by bob");
    assert_eq!(fields.len(), 5, "no deadline field without a deadline");
    // "Review" plus the first five extra links.
    let buttons = blocks[2]["elements"].as_array().unwrap();
    assert_eq!(buttons.len(), 6);
    assert_eq!(buttons[5]["url"], "https://ci.test/4");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("Rejected by bob: ")
    );
}

#[test]
fn discord_payload_is_one_embed() {
    let n = discord("https://chat.test/api/webhooks/123/abcdefghijklmnop");
    let r = n.render(&notice(), NOW_MS);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    let expected = json!({
        "content": "Approval requested: Release v2.0 (publish / checks/security-review)",
        "embeds": [{
            "title": "Release v2.0",
            "description": "Bump *deps* & <fix> auth",
            "url": "https://dash.test/runs/run-01J8/gates/checks/security-review",
            "color": 0xFFBF00,
            "fields": [
                { "name": "Status", "value": "Approval requested", "inline": true },
                { "name": "Workflow", "value": "publish", "inline": true },
                { "name": "Run", "value": "run-01J8", "inline": true },
                { "name": "Gate", "value": "checks/security-review", "inline": true },
                { "name": "Approvers", "value": "alice, team:leads", "inline": true },
                { "name": "Deadline", "value": "2025-01-02T12:00:00Z", "inline": true },
                { "name": "Links", "value": "[PR #42](https://git.test/acme/app/pull/42)", "inline": false }
            ],
            "timestamp": "2025-01-01T12:00:00Z"
        }],
        "allowed_mentions": { "parse": [] }
    });
    assert_eq!(body, expected);
    assert_eq!(header(&r.headers, "content-type"), Some("application/json"));
}

#[test]
fn discord_colors_and_limits() {
    let d = discord("https://chat.test/api/webhooks/1/t");
    let color = |event: NoticeEvent| {
        let mut n = notice();
        n.event = event;
        let v: Value = serde_json::from_slice(&d.render(&n, NOW_MS).body).unwrap();
        v["embeds"][0]["color"].as_u64().unwrap()
    };
    let decided = |s: &str| NoticeEvent::Decided {
        status: s.into(),
        by: vec!["alice".into()],
    };
    assert_eq!(color(NoticeEvent::Escalated), 0xFFBF00);
    assert_eq!(color(decided("approved")), 0x2ECC71);
    assert_eq!(color(decided("rejected")), 0xE74C3C);

    let mut n = notice();
    n.title = "T".repeat(300);
    n.summary = "S".repeat(5000);
    n.approvers = (0..400).map(|i| format!("user{i}")).collect();
    n.links = (0..40)
        .map(|i| Link {
            label: format!("build log {i}"),
            url: format!("https://ci.test/builds/{i}/log"),
        })
        .collect();
    n.event = NoticeEvent::Escalated;
    let v: Value = serde_json::from_slice(&d.render(&n, NOW_MS).body).unwrap();
    let embed = &v["embeds"][0];
    let len = |v: &Value| v.as_str().unwrap().chars().count();
    assert_eq!(len(&embed["title"]), 256);
    assert!(embed["title"].as_str().unwrap().ends_with('…'));
    // Cut to fit the 6000-character embed budget.
    assert!(len(&embed["description"]) < 4096);
    assert!(embed["description"].as_str().unwrap().ends_with('…'));
    let fields = embed["fields"].as_array().unwrap();
    let approvers = fields.iter().find(|f| f["name"] == "Approvers").unwrap();
    assert_eq!(len(&approvers["value"]), 1024);
    assert!(approvers["value"].as_str().unwrap().ends_with('…'));
    let total = len(&embed["title"])
        + len(&embed["description"])
        + fields
            .iter()
            .map(|f| len(&f["name"]) + len(&f["value"]))
            .sum::<usize>();
    assert!(total <= 6000, "embed has {total} characters");
    assert!(len(&v["content"]) <= 2000);
    assert!(!v["content"].as_str().unwrap().contains('\n'));
}

#[test]
fn deadlines_are_iso8601_utc() {
    let s = slack("https://hooks.test/x");
    let deadline = |ms: i64| {
        let mut n = notice();
        n.deadline_at = Some(ms);
        let v: Value = serde_json::from_slice(&s.render(&n, NOW_MS).body).unwrap();
        v["blocks"][2]["fields"][5]["text"]
            .as_str()
            .unwrap()
            .trim_start_matches("*Deadline*\n")
            .to_owned()
    };
    assert_eq!(deadline(0), "1970-01-01T00:00:00Z");
    assert_eq!(deadline(951_782_400_000), "2000-02-29T00:00:00Z");
    assert_eq!(deadline(1_735_689_599_999), "2024-12-31T23:59:59Z");
    assert_eq!(deadline(4_107_542_400_000), "2100-03-01T00:00:00Z");
    assert_eq!(deadline(-1), "1969-12-31T23:59:59Z");
}

#[test]
fn webhook_body_headers_and_signature() {
    let n = webhook("https://receiver.test/hooks/miyabi", SECRET);
    let mut notice = notice();
    notice.event = NoticeEvent::Decided {
        status: "approved".into(),
        by: vec!["alice".into()],
    };
    let r = n.render(&notice, NOW_MS);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({
            "type": "approval.decided",
            "notice": {
                "run_id": "run-01J8",
                "workflow": "publish",
                "gate": "checks/security-review",
                "title": "Release v2.0",
                "summary": "Bump *deps* & <fix> auth",
                "approvers": ["alice", "team:leads"],
                "deadline_at": 1_735_819_200_000i64,
                "link": "https://dash.test/runs/run-01J8/gates/checks/security-review",
                "links": [{ "label": "PR #42", "url": "https://git.test/acme/app/pull/42" }],
                "event": { "kind": "decided", "status": "approved", "by": ["alice"] }
            },
            "sent_at": NOW_MS
        })
    );
    // The notice round-trips.
    let back: GateNotice = serde_json::from_value(body["notice"].clone()).unwrap();
    assert_eq!(back, notice);

    let names: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "Content-Type",
            "User-Agent",
            "X-Miyabi-Timestamp",
            "X-Miyabi-Signature",
            "X-Miyabi-Delivery"
        ]
    );
    assert_eq!(header(&r.headers, "Content-Type"), Some("application/json"));
    let ts = header(&r.headers, "X-Miyabi-Timestamp").unwrap();
    assert_eq!(ts, "1735732800");
    assert_eq!(
        header(&r.headers, "X-Miyabi-Delivery"),
        Some("run-01J8/checks/security-review/decided")
    );

    // An independent HMAC over "<timestamp>.<body>".
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    let expected_sig = format!("sha256={}", hex(ring::hmac::sign(&key, &signed).as_ref()));
    let sig = header(&r.headers, "X-Miyabi-Signature").unwrap();
    assert_eq!(sig, expected_sig);

    assert!(verify_signature(SECRET, ts, &r.body, sig));
    assert!(!verify_signature("wrong-secret", ts, &r.body, sig));
    let mut tampered = r.body.clone();
    tampered[10] ^= 1;
    assert!(!verify_signature(SECRET, ts, &tampered, sig));
    assert!(!verify_signature(SECRET, "1735732801", &r.body, sig));
    assert!(!verify_signature(
        SECRET,
        ts,
        &r.body,
        &sig["sha256=".len()..]
    ));
    assert!(!verify_signature(SECRET, ts, &r.body, "sha256=zz"));
    assert!(!verify_signature(SECRET, ts, &r.body, ""));

    // Event types and the delivery id of the other events.
    for (event, ty, suffix) in [
        (NoticeEvent::Requested, "approval.requested", "requested"),
        (NoticeEvent::Escalated, "approval.escalated", "escalated"),
    ] {
        let mut other = notice.clone();
        other.event = event;
        let r = n.render(&other, NOW_MS);
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["type"], ty);
        assert_eq!(
            header(&r.headers, "X-Miyabi-Delivery").unwrap(),
            format!("run-01J8/checks/security-review/{suffix}")
        );
    }
}

#[test]
fn delivery_id_is_header_safe() {
    let n = webhook("https://receiver.test/h", SECRET);
    let mut notice = notice();
    notice.run_id = "run 1%".into();
    notice.gate = "revue/é".into();
    let r = n.render(&notice, NOW_MS);
    assert_eq!(
        header(&r.headers, "X-Miyabi-Delivery"),
        Some("run%201%25/revue/%C3%A9/requested")
    );
}

// ---------------------------------------------------------------------------------------------
// Keys and secrecy

#[test]
fn keys_are_stable_and_secret_free() {
    let url = "https://hooks.test/services/T000/B000/SECRETTOKEN123";
    let a = slack(url);
    let b = slack(url.to_owned());
    assert_eq!(a.key(), b.key());
    assert_eq!(a.key(), a.clone().key());
    assert!(a.key().starts_with("slack:"));
    let hexpart = &a.key()["slack:".len()..];
    assert_eq!(hexpart.len(), 16);
    assert!(hexpart.chars().all(|c| c.is_ascii_hexdigit()));
    // The first 16 hex characters of SHA-256(url).
    let digest = ring::digest::digest(&ring::digest::SHA256, url.as_bytes());
    assert_eq!(hexpart, &hex(digest.as_ref())[..16]);

    assert_ne!(
        a.key(),
        slack("https://hooks.test/services/T000/B000/OTHER").key()
    );
    assert_eq!(discord(url).key(), format!("discord:{hexpart}"));
    let w = webhook(url, SECRET);
    assert_eq!(w.key(), format!("webhook:{hexpart}"));
    assert_eq!(w.kind(), "webhook");
    assert_eq!(discord(url).kind(), "discord");

    for n in [&a, &w] {
        let dbg = format!("{n:?}");
        assert!(!dbg.contains("SECRETTOKEN"), "{dbg}");
        assert!(!dbg.contains("hooks.test"), "{dbg}");
        assert!(!dbg.contains(SECRET), "{dbg}");
        assert!(dbg.contains(&n.key()), "{dbg}");
        assert!(!n.key().contains("SECRETTOKEN"));
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery

#[tokio::test]
async fn send_posts_the_rendered_request() {
    let rx = Receiver::start(vec![reply(200, "ok")]).await;
    let url = format!("{}/hooks/miyabi-receiver", rx.base);
    let n = webhook(url, SECRET);
    n.send(&notice()).await.unwrap();
    let seen = rx.requests();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hooks/miyabi-receiver");
    assert_eq!(
        header(&req.headers, "content-type"),
        Some("application/json")
    );
    assert_eq!(
        header(&req.headers, "x-miyabi-delivery"),
        Some("run-01J8/checks/security-review/requested")
    );
    let ts = header(&req.headers, "x-miyabi-timestamp").unwrap();
    let sig = header(&req.headers, "x-miyabi-signature").unwrap();
    assert!(verify_signature(SECRET, ts, &req.body, sig));
    // Sent with the current time.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts.parse::<i64>().unwrap()).abs() <= 300);
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["notice"], serde_json::to_value(notice()).unwrap());

    // Slack and Discord send exactly their rendered bodies.
    for n in [
        slack(format!("{}/services/T0/B0/tok", rx.base)),
        discord(format!("{}/api/webhooks/1/tok", rx.base)),
    ] {
        n.send(&notice()).await.unwrap();
        let last = rx.requests().pop().unwrap();
        let rendered = n.render(&notice(), 0);
        if n.kind() == "slack" {
            assert_eq!(last.body, rendered.body);
        } else {
            // The embed carries the send time; the rest is identical.
            let mut got: Value = serde_json::from_slice(&last.body).unwrap();
            let mut want: Value = serde_json::from_slice(&rendered.body).unwrap();
            got["embeds"][0]["timestamp"] = Value::Null;
            want["embeds"][0]["timestamp"] = Value::Null;
            assert_eq!(got, want);
        }
    }
}

#[tokio::test]
async fn failures_then_success_as_the_outbox_sees_them() {
    let mut limited = reply(429, "{\"message\": \"You are being rate limited.\"}");
    limited.headers.push(("Retry-After", "3".into()));
    let rx = Receiver::start(vec![reply(500, "internal oops"), limited, reply(200, "")]).await;
    let n = webhook(format!("{}/hooks/SECRETPATH-abcdef", rx.base), SECRET);

    let e1 = n.send(&notice()).await.unwrap_err();
    match &e1 {
        NotifyError::Status {
            notifier,
            status,
            body,
            retry_after,
        } => {
            assert_eq!(notifier, &n.key());
            assert_eq!(*status, 500);
            assert_eq!(body, "internal oops");
            assert_eq!(*retry_after, None);
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert!(e1.is_retryable());
    let text = e1.to_string();
    assert!(text.contains(&n.key()) && text.contains("500") && text.contains("internal oops"));
    let d = retry_delay(2, &e1);
    assert!(d >= Duration::from_millis(800) && d <= Duration::from_millis(1200));

    let e2 = n.send(&notice()).await.unwrap_err();
    assert!(
        matches!(e2, NotifyError::Status { status: 429, retry_after: Some(d), .. } if d == Duration::from_secs(3))
    );
    assert!(e2.is_retryable());
    assert!(e2.to_string().contains("rate limited"));
    // Retry-After wins over the backoff.
    assert_eq!(retry_delay(3, &e2), Duration::from_secs(3));
    assert_eq!(retry_delay(7, &e2), Duration::from_secs(3));

    n.send(&notice()).await.unwrap();
    let seen = rx.requests();
    assert_eq!(seen.len(), 3);
    // The same delivery id on every attempt, each attempt signed on its own.
    for req in &seen {
        assert_eq!(
            header(&req.headers, "x-miyabi-delivery"),
            Some("run-01J8/checks/security-review/requested")
        );
        let ts = header(&req.headers, "x-miyabi-timestamp").unwrap();
        let sig = header(&req.headers, "x-miyabi-signature").unwrap();
        assert!(verify_signature(SECRET, ts, &req.body, sig));
    }
    for e in [&e1, &e2] {
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains("SECRETPATH"), "{text}");
            assert!(!text.contains(SECRET), "{text}");
        }
    }
}

#[tokio::test]
async fn client_errors_are_final_and_bodies_truncated() {
    let long = "x".repeat(600);
    let rx = Receiver::start(vec![
        reply(400, "invalid_blocks"),
        reply(404, &long),
        reply(408, ""),
        reply(503, ""),
    ])
    .await;
    let n = slack(format!("{}/services/T0/B0/tok", rx.base));
    let e = n.send(&notice()).await.unwrap_err();
    assert!(
        matches!(&e, NotifyError::Status { status: 400, body, .. } if body == "invalid_blocks")
    );
    assert!(!e.is_retryable());

    let e = n.send(&notice()).await.unwrap_err();
    assert!(!e.is_retryable());
    match &e {
        NotifyError::Status { status, body, .. } => {
            assert_eq!(*status, 404);
            assert_eq!(body.chars().count(), 500);
        }
        other => panic!("{other:?}"),
    }

    let e = n.send(&notice()).await.unwrap_err();
    assert!(matches!(&e, NotifyError::Status { status: 408, .. }) && e.is_retryable());
    let e = n.send(&notice()).await.unwrap_err();
    assert!(matches!(&e, NotifyError::Status { status: 503, .. }) && e.is_retryable());
    assert_eq!(e.to_string(), format!("{}: HTTP 503", n.key()));
}

#[tokio::test]
async fn errors_never_show_the_url_or_secret() {
    // A receiver that echoes the path it was called on.
    let token = "T0A1B2C3/B9Z8Y7X6/zyxwvutsrqponmlk";
    let rx = Receiver::start(vec![reply(
        403,
        &format!("invalid token for /services/{token}"),
    )])
    .await;
    let url = format!("{}/services/{token}", rx.base);
    for n in [slack(&url), discord(&url), webhook(&url, SECRET)] {
        let e = n.send(&notice()).await.unwrap_err();
        for text in [e.to_string(), format!("{e:?}"), format!("{n:?}")] {
            assert!(!text.contains(&url), "{text}");
            assert!(!text.contains(token), "{text}");
            assert!(!text.contains(SECRET), "{text}");
        }
        assert!(e.to_string().contains("403"));
        assert!(e.to_string().contains(&n.key()));
    }

    // Nothing listens on this port: a transport error.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/services/{token}");
    for n in [slack(&url), webhook(&url, SECRET)] {
        let e = n.send(&notice()).await.unwrap_err();
        assert!(matches!(e, NotifyError::Transport { .. }), "{e:?}");
        assert!(e.is_retryable());
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(&url), "{text}");
            assert!(!text.contains(token), "{text}");
            assert!(!text.contains(SECRET), "{text}");
            assert!(text.contains(&n.key()), "{text}");
        }
    }

    // An unusable URL is a transport error too, and not echoed.
    let n = webhook("not a url with SECRETTOKEN", SECRET);
    let e = n.send(&notice()).await.unwrap_err();
    assert!(matches!(e, NotifyError::Transport { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("SECRETTOKEN"));
}

// ---------------------------------------------------------------------------------------------
// Retry policy

#[test]
fn retry_delay_grows_with_jitter_and_is_capped() {
    let err = NotifyError::Transport {
        notifier: "webhook:0000000000000000".into(),
        message: "connection reset".into(),
    };
    assert_eq!(retry_delay(1, &err), Duration::ZERO);
    for _ in 0..50 {
        for attempt in 2..=12u32 {
            let base = Duration::from_secs(1 << (attempt - 2)).min(Duration::from_secs(300));
            let d = retry_delay(attempt, &err);
            assert!(d >= base.mul_f64(0.8), "attempt {attempt}: {d:?}");
            assert!(
                d <= base.mul_f64(1.2).min(Duration::from_secs(300)),
                "attempt {attempt}: {d:?}"
            );
        }
        let d = retry_delay(u32::MAX, &err);
        assert!(
            d <= Duration::from_secs(300) && d >= Duration::from_secs(240),
            "{d:?}"
        );
    }
    // Jitter: not every delay is the same.
    let samples: Vec<Duration> = (0..20).map(|_| retry_delay(5, &err)).collect();
    assert!(samples.iter().any(|d| *d != samples[0]));
    // Grows over the attempts the outbox makes.
    let means: Vec<f64> = (2..=MAX_ATTEMPTS)
        .map(|a| {
            (0..20)
                .map(|_| retry_delay(a, &err).as_secs_f64())
                .sum::<f64>()
                / 20.0
        })
        .collect();
    assert!(means.windows(2).all(|w| w[1] > w[0]), "{means:?}");
    assert_eq!(MAX_ATTEMPTS, 8);

    // Retry-After is honoured (up to an hour).
    let limited = |secs: u64| NotifyError::Status {
        notifier: "slack:0000000000000000".into(),
        status: 429,
        body: String::new(),
        retry_after: Some(Duration::from_secs(secs)),
    };
    assert_eq!(retry_delay(2, &limited(42)), Duration::from_secs(42));
    assert_eq!(retry_delay(8, &limited(600)), Duration::from_secs(600));
    assert_eq!(retry_delay(2, &limited(86_400)), Duration::from_secs(3600));
}

#[test]
fn notifier_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Notifier>();
    fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<NotifyError>();
}
