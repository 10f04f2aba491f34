//! Hostile retry hints never panic: `retry-after: 1e20`, `-5`, `NaN`, `inf`, dates in the year
//! 9999 or with a 25-digit year, `retry-after-ms: 1e300`, Gemini's `retryDelay: "1e20s"`. Each
//! becomes a typed rate-limit error carrying a hint capped at `RETRY_AFTER_CAP`, or is ignored
//! (the normal backoff applies). Then a seeded fuzz of a few thousand random hints through the
//! public parsers, every adapter's error parser, and the HTTP layer over loopback. And token
//! counts of `u64::MAX` saturate instead of overflowing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model_support;

use std::time::Duration;

use miyabi::approval::{GateNotice, NoticeEvent, NotifyError, retry_delay, webhook};
use miyabi::model::internals::{
    RETRY_AFTER_CAP, adapter, parse_retry_after, parse_retry_after_ms, parse_retry_delay,
};
use miyabi::model::{
    HttpOptions, LanguageModel, Model, ModelBuilder, ModelError, ModelRequest, Protocol,
};
use model_support::{Reply, Server, read_fixture};

fn options(max_retries: u32) -> HttpOptions {
    HttpOptions {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        first_byte_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(20),
        max_retries,
        ..HttpOptions::default()
    }
}

fn model(spec: &str, server: &Server, path: &str, max_retries: u32) -> Model {
    ModelBuilder::new(spec)
        .env(|_| None)
        .api_key("sk-test-0123456789")
        .base_url(format!("{}{path}", server.url))
        .http_options(options(max_retries))
        .build()
        .unwrap()
}

fn rate_limited(header: &str, value: &str) -> Reply {
    Reply::json(
        429,
        r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#,
    )
    .header(header, value)
}

fn gemini_429(delay: &str) -> Reply {
    Reply::json(
        429,
        format!(
            r#"{{"error":{{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":{}}}]}}}}"#,
            serde_json::to_string(delay).unwrap()
        ),
    )
}

/// What happened to one call against [`Reply`] then a success.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The hint was too long to wait: the rate-limit error with this hint, after one request.
    Returned(Option<Duration>),
    /// The hint was ignored or short: retried once and succeeded.
    Retried,
}

async fn call(spec: &str, path: &str, first: Reply, ok: Reply) -> Outcome {
    let server = Server::start(vec![first, ok]).await;
    let m = model(spec, &server, path, 1);
    let got = m.generate(&ModelRequest::user("hi")).await;
    match got {
        Ok(_) => {
            assert_eq!(server.requests().len(), 2);
            Outcome::Retried
        }
        Err(e) => {
            assert!(matches!(e, ModelError::RateLimited { .. }), "{e:?}");
            assert_eq!(e.status(), Some(429));
            assert_eq!(server.requests().len(), 1, "{e:?}");
            Outcome::Returned(e.retry_after())
        }
    }
}

#[tokio::test]
async fn hostile_retry_after_headers_are_capped_or_ignored_without_panicking() {
    let ok = || Reply::json(200, read_fixture("groq/groq-text.json"));
    let capped = Outcome::Returned(Some(RETRY_AFTER_CAP));
    let cases = [
        ("retry-after", "1e20", &capped),
        ("retry-after", "1e400", &capped),
        ("retry-after", "inf", &capped),
        ("retry-after", "18446744073709551616", &capped),
        ("retry-after-ms", "1e300", &capped),
        ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT", &capped),
        (
            "retry-after",
            "Fri, 31 Dec 9999999999999999999999999 23:59:59 GMT",
            &capped,
        ),
        ("retry-after", "-5", &Outcome::Retried),
        ("retry-after", "NaN", &Outcome::Retried),
        ("retry-after", "-inf", &Outcome::Retried),
        ("retry-after-ms", "-1e300", &Outcome::Retried),
        (
            "retry-after",
            "Fri, 99 Dec 2026 99:99:99 GMT",
            &Outcome::Retried,
        ),
        (
            "retry-after",
            "Fri, 31 Dec -9999 23:59:59 GMT",
            &Outcome::Retried,
        ),
        (
            "retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            &Outcome::Retried,
        ),
        ("retry-after", "0.01", &Outcome::Retried),
    ];
    for (header, value, want) in cases {
        let got = call(
            "groq/llama-3.3-70b-versatile",
            "/v1",
            rate_limited(header, value),
            ok(),
        )
        .await;
        assert_eq!(&got, want, "{header}: {value}");
    }
}

#[tokio::test]
async fn hostile_gemini_retry_delays_are_capped_or_ignored_without_panicking() {
    let ok = || Reply::json(200, read_fixture("google/google-text.json"));
    let capped = Outcome::Returned(Some(RETRY_AFTER_CAP));
    for (delay, want) in [
        ("1e20s", &capped),
        ("1e400s", &capped),
        ("infs", &capped),
        ("-5s", &Outcome::Retried),
        ("NaNs", &Outcome::Retried),
        ("s", &Outcome::Retried),
        ("0.01s", &Outcome::Retried),
    ] {
        let got = call(
            "google/gemini-2.5-flash",
            "/v1beta",
            gemini_429(delay),
            ok(),
        )
        .await;
        assert_eq!(&got, want, "retryDelay {delay}");
    }
    // The recorded quota error keeps its exact 34.4 s.
    let server = Server::start(vec![Reply::json(
        429,
        read_fixture("google/google-429-retry-info.json"),
    )])
    .await;
    let e = model("google/gemini-2.5-flash", &server, "/v1beta", 0)
        .generate(&ModelRequest::user("hi"))
        .await
        .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_millis(34_400)));
}

#[tokio::test]
async fn a_notifier_told_to_retry_after_1e20_seconds_gets_a_capped_delay() {
    let server = Server::start(vec![rate_limited("retry-after", "1e20")]).await;
    let n = webhook(format!("{}/hook", server.url), "whsec_0123456789abcdef");
    let notice = GateNotice {
        run_id: "r".into(),
        workflow: "w".into(),
        gate: "g".into(),
        title: "t".into(),
        summary: String::new(),
        approvers: vec![],
        deadline_at: None,
        link: String::new(),
        links: vec![],
        event: NoticeEvent::Requested,
    };
    let e = n.send(&notice).await.unwrap_err();
    match &e {
        NotifyError::Status {
            status: 429,
            retry_after,
            ..
        } => assert_eq!(*retry_after, Some(RETRY_AFTER_CAP)),
        other => panic!("{other:?}"),
    }
    assert!(retry_delay(2, &e) <= Duration::from_secs(3600));
}

/// SplitMix64: a small, seeded, reproducible generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn int(&mut self) -> String {
        match self.below(5) {
            0 => (self.next() % 100).to_string(),
            1 => (self.next() as i64).to_string(),
            2 => self.next().to_string(),
            3 => format!("{}{}", self.next(), self.next()),
            _ => (self.next() % 10_000).to_string(),
        }
    }
}

/// A random retry hint: a number in any notation, a (possibly broken) HTTP date, or pieces
/// glued together.
fn hint(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "0",
        "1",
        "5",
        "9",
        "30",
        "1e20",
        "1e308",
        "1e309",
        "-",
        "+",
        ".",
        "e",
        "E",
        "e-",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "infinity",
        " ",
        "s",
        "ms",
        "GMT",
        "Mon,",
        "Dec",
        "Feb",
        "31",
        "00",
        "9999",
        "99999999999999999999",
        "23:59:59",
        ":",
        "0x10",
        "\t",
        "1_000",
        ",",
        "-0",
        "4.9e-324",
        "1.7976931348623157e308",
        "18446744073709551615",
    ];
    match rng.below(4) {
        0 => format!(
            "{}{}.{}e{}",
            rng.pick(&["", "-", "+"]),
            rng.int(),
            rng.next() % 1000,
            rng.int()
        ),
        1 => format!(
            "{}, {} {} {} {}:{}:{} {}",
            rng.pick(&["Mon", "Fri", "Xyz", ""]),
            rng.int(),
            rng.pick(&["Jan", "Dec", "Foo", "Feb"]),
            rng.int(),
            rng.int(),
            rng.int(),
            rng.int(),
            rng.pick(&["GMT", "UTC", "GMT"])
        ),
        2 => {
            let n = 1 + rng.below(6);
            (0..n).map(|_| rng.pick(PIECES)).collect()
        }
        _ => {
            let n = rng.below(24);
            (0..n)
                .map(|_| char::from(0x20 + (rng.next() % 95) as u8))
                .collect()
        }
    }
}

#[test]
fn seeded_fuzz_of_retry_hints_through_the_public_parsers() {
    let iters: usize = std::env::var("MIYABI_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        * 4000;
    let mut rng = Rng(0x5EED_0020);
    let mut parsed = 0;
    for _ in 0..iters {
        let h = hint(&mut rng);
        for d in [
            parse_retry_after(&h),
            parse_retry_after_ms(&h),
            parse_retry_delay(&h),
        ]
        .into_iter()
        .flatten()
        {
            assert!(d <= RETRY_AFTER_CAP, "{h:?} gave {d:?}");
            parsed += 1;
        }
        // Gemini-style bodies through every adapter's error parser.
        let body = format!(
            r#"{{"error":{{"code":429,"message":"m","details":[{{"retryDelay":{}}}]}}}}"#,
            serde_json::to_string(&h).unwrap()
        );
        assert_eq!(
            adapter(Protocol::Gemini).parse_error()(body.as_bytes()).retry_after,
            parse_retry_delay(&h),
            "{h:?}: a retryDelay in a body reads as the bare value"
        );
        for p in Protocol::ALL {
            let got = adapter(p).parse_error()(body.as_bytes());
            if let Some(d) = got.retry_after {
                assert!(d <= RETRY_AFTER_CAP, "{p}: {h:?} gave {d:?}");
            }
            let _ = adapter(p).parse_error()(h.as_bytes());
        }
    }
    assert!(
        parsed > iters / 10,
        "the generator reaches valid hints ({parsed})"
    );
}

#[tokio::test]
async fn seeded_fuzz_of_retry_hints_over_loopback() {
    let mut rng = Rng(0x5EED_0021);
    let mut replies = Vec::new();
    let mut sent = Vec::new();
    while replies.len() < 120 {
        let h = hint(&mut rng);
        // Only what can travel in a header (the server writes it verbatim).
        let h = h.trim().to_owned();
        if h.is_empty() {
            continue;
        }
        let reply = if replies.len() % 3 == 2 {
            gemini_429(&h)
        } else {
            rate_limited(
                if replies.len() % 3 == 0 {
                    "retry-after"
                } else {
                    "retry-after-ms"
                },
                &h,
            )
        };
        sent.push(h);
        replies.push(reply);
    }
    let server = Server::start(replies).await;
    let m = model("groq/llama-3.3-70b-versatile", &server, "/v1", 0);
    for h in &sent {
        let e = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
        assert!(matches!(e, ModelError::RateLimited { .. }), "{h:?}: {e:?}");
        if let Some(d) = e.retry_after() {
            assert!(d <= RETRY_AFTER_CAP, "{h:?} gave {d:?}");
        }
    }
    assert_eq!(server.requests().len(), sent.len());
}

#[tokio::test]
async fn hostile_token_counts_saturate_instead_of_overflowing() {
    use miyabi::model::internals::Target;
    use miyabi::model::{EmbeddingModel, ModelResponse};
    const MAX: u64 = u64::MAX;
    let t = Target::default();
    let parse = |p: Protocol, body: String| -> ModelResponse {
        adapter(p).parse_response(&t, body.as_bytes()).unwrap()
    };
    // Anthropic: input + cache reads + cache writes.
    let r = parse(
        Protocol::Anthropic,
        format!(
            r#"{{"id":"m","type":"message","role":"assistant","model":"c","content":[{{"type":"text","text":"hi"}}],"stop_reason":"end_turn","usage":{{"input_tokens":{MAX},"cache_read_input_tokens":{MAX},"cache_creation_input_tokens":7,"output_tokens":1}}}}"#
        ),
    );
    assert_eq!(r.usage.input_tokens, MAX);
    // Gemini: candidates + thoughts.
    let r = parse(
        Protocol::Gemini,
        format!(
            r#"{{"candidates":[{{"content":{{"parts":[{{"text":"hi"}}]}},"finishReason":"STOP"}}],"usageMetadata":{{"promptTokenCount":1,"candidatesTokenCount":{MAX},"thoughtsTokenCount":{MAX}}}}}"#
        ),
    );
    assert_eq!(r.usage.output_tokens, MAX);
    // Bedrock: input + cache reads + cache writes.
    let r = parse(
        Protocol::Bedrock,
        format!(
            r#"{{"output":{{"message":{{"role":"assistant","content":[{{"text":"hi"}}]}}}},"stopReason":"end_turn","usage":{{"inputTokens":{MAX},"outputTokens":1,"cacheReadInputTokens":{MAX},"cacheWriteInputTokens":{MAX}}}}}"#
        ),
    );
    assert_eq!(r.usage.input_tokens, MAX);
    // Priced over loopback: the cost of an absurd usage is a number, not a panic.
    let server = Server::start(vec![Reply::json(
        200,
        format!(
            r#"{{"candidates":[{{"content":{{"parts":[{{"text":"hi"}}]}},"finishReason":"STOP"}}],"usageMetadata":{{"promptTokenCount":{MAX},"candidatesTokenCount":{MAX},"thoughtsTokenCount":{MAX},"cachedContentTokenCount":{MAX}}}}}"#
        ),
    )])
    .await;
    let r = model("google/gemini-2.5-flash", &server, "/v1beta", 0)
        .generate(&ModelRequest::user("hi"))
        .await
        .unwrap();
    assert!(r.cost_usd.is_some_and(f64::is_finite), "{r:?}");
    // Embeddings summed over batches.
    let body = format!(
        r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":[0.1,0.2]}}],"model":"m","usage":{{"prompt_tokens":{MAX},"total_tokens":{MAX}}}}}"#
    );
    let server = Server::start(vec![Reply::json(200, body)]).await;
    let e = ModelBuilder::new("openai/text-embedding-3-small")
        .env(|_| None)
        .api_key("sk-test-0123456789")
        .base_url(format!("{}/v1", server.url))
        .http_options(options(0))
        .build_embedding()
        .unwrap()
        .with_max_batch(1);
    let out = e.embed(&["a", "b"]).await.unwrap();
    assert_eq!(out.usage.unwrap().input_tokens, MAX);
}
