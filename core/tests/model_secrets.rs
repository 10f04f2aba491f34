//! Configured secrets never leave through errors, `Debug` output or logs, even when a provider
//! (or a webhook receiver) echoes them: OpenAI's 401 quotes the whole key, others quote tokens,
//! headers or URLs. Loopback servers play the providers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model_support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use futures::StreamExt;
use miyabi::approval::{GateNotice, NoticeEvent, NotifyError, discord, slack, webhook};
use miyabi::model::aws::AwsCredentials;
use miyabi::model::{
    HttpClient, HttpOptions, LanguageModel, Model, ModelBuilder, ModelError, ModelRequest,
    Protocol, ServiceAccount, StreamEvent, collect_stream,
};
use model_support::{Reply, Server, fixture_dir};

/// A realistic OpenAI project key (made up).
const OPENAI_KEY: &str =
    "sk-proj-Q8vX2mK9pL4nR7tY1wE6zA3sD5fG0hJ2kL8bN4cV7xM1qW9eR3tY6uI0oP5aS2dF8gH4jK7lZ";
const ANTHROPIC_KEY: &str =
    "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-AbCdEfGhIjKlMnOpQrStUvWx";
const GEMINI_KEY: &str = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY";
const AWS_SESSION: &str =
    "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexampleSessionToken0123456789";
const HEADER_TOKEN: &str = "gw-tok-7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e";

fn fast() -> HttpOptions {
    HttpOptions {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        first_byte_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(20),
        max_retries: 0,
        ..HttpOptions::default()
    }
}

/// Asserts that `text` holds neither `secret` nor any 12-character run of it.
fn assert_clean(text: &str, secret: &str, what: &str) {
    assert!(!text.contains(secret), "{what}: the secret leaked: {text}");
    let chars: Vec<char> = secret.chars().collect();
    for w in chars.windows(12) {
        let run: String = w.iter().collect();
        assert!(
            !text.contains(&run),
            "{what}: a piece of the secret ({run:?}) leaked: {text}"
        );
    }
}

/// Every text an error can show: Display, Debug, and the provider-side accessors.
fn error_texts(e: &ModelError) -> Vec<String> {
    let mut out = vec![e.to_string(), format!("{e:?}")];
    if let Some(c) = e.context() {
        out.push(c.message.clone());
        out.push(c.to_string());
        out.extend(c.code.clone());
        out.extend(c.request_id.clone());
    }
    out
}

fn assert_error_clean(e: &ModelError, secret: &str) {
    for t in error_texts(e) {
        assert_clean(&t, secret, "error");
    }
}

fn openai_401(key: &str) -> String {
    format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
    )
}

fn openai_chat(server: &Server) -> Model {
    ModelBuilder::new("openai/gpt-4o-mini")
        .env(|_| None)
        .protocol(Protocol::OpenAiChat)
        .api_key(OPENAI_KEY)
        .base_url(format!("{}/v1", server.url))
        .http_options(fast())
        .build()
        .unwrap()
}

/// Checks the typed error still says who failed, how, and what the provider said.
fn assert_described(e: &ModelError, provider: &str, model: &str, status: u16, says: &str) {
    let c = e.context().expect("a provider-side error");
    assert_eq!(c.provider, provider, "{e:?}");
    assert_eq!(c.model, model, "{e:?}");
    assert_eq!(c.status, Some(status), "{e:?}");
    assert!(c.message.contains(says), "{e:?}");
    assert!(c.message.contains("[REDACTED"), "{e:?}");
    let shown = e.to_string();
    assert!(shown.contains(provider) && shown.contains(model), "{shown}");
    assert!(shown.contains(&format!("HTTP {status}")), "{shown}");
    assert!(shown.contains(says), "{shown}");
}

#[tokio::test]
async fn openai_chat_401_echoing_the_key_is_redacted_in_generate_and_stream() {
    let server = Server::start(vec![Reply::json(401, openai_401(OPENAI_KEY))]).await;
    let m = openai_chat(&server);
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert!(matches!(err, ModelError::Auth(_)), "{err:?}");
    assert_described(
        &err,
        "openai",
        "gpt-4o-mini",
        401,
        "Incorrect API key provided",
    );
    assert_error_clean(&err, OPENAI_KEY);
    // The hint names the key by its last four characters only.
    assert!(err.to_string().contains("[REDACTED ...K7lZ]"), "{err}");
    assert_eq!(
        err.context().unwrap().code.as_deref(),
        Some("invalid_api_key")
    );

    let Err(err) = m.stream(&ModelRequest::user("hi")).await else {
        panic!("the stream must fail")
    };
    assert_described(
        &err,
        "openai",
        "gpt-4o-mini",
        401,
        "Incorrect API key provided",
    );
    assert_error_clean(&err, OPENAI_KEY);
}

#[tokio::test]
async fn embeddings_401_echoing_the_key_is_redacted() {
    use miyabi::model::EmbeddingModel;
    let server = Server::start(vec![Reply::json(401, openai_401(OPENAI_KEY))]).await;
    let e = ModelBuilder::new("openai/text-embedding-3-small")
        .env(|_| None)
        .api_key(OPENAI_KEY)
        .base_url(format!("{}/v1", server.url))
        .http_options(fast())
        .build_embedding()
        .unwrap();
    let err = e.embed(&["hello"]).await.unwrap_err();
    assert_described(
        &err,
        "openai",
        "text-embedding-3-small",
        401,
        "Incorrect API key provided",
    );
    assert_error_clean(&err, OPENAI_KEY);
}

#[tokio::test]
async fn anthropic_401_echoing_the_key_is_redacted() {
    let body = format!(
        r#"{{"type":"error","error":{{"type":"authentication_error","message":"invalid x-api-key: {ANTHROPIC_KEY}"}}}}"#
    );
    let server = Server::start(vec![Reply::json(401, body)]).await;
    let m = ModelBuilder::new("anthropic/claude-sonnet-4-5")
        .env(|_| None)
        .api_key(ANTHROPIC_KEY)
        .base_url(format!("{}/v1", server.url))
        .http_options(fast())
        .build()
        .unwrap();
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert!(matches!(err, ModelError::Auth(_)), "{err:?}");
    assert_described(
        &err,
        "anthropic",
        "claude-sonnet-4-5",
        401,
        "invalid x-api-key",
    );
    assert_error_clean(&err, ANTHROPIC_KEY);
    let Err(err) = m.stream(&ModelRequest::user("hi")).await else {
        panic!("the stream must fail")
    };
    assert_error_clean(&err, ANTHROPIC_KEY);
}

#[tokio::test]
async fn gemini_400_echoing_the_key_is_redacted() {
    let body = format!(
        r#"{{"error":{{"code":400,"message":"API key not valid. Please pass a valid API key. (key={GEMINI_KEY})","status":"INVALID_ARGUMENT"}}}}"#
    );
    let server = Server::start(vec![Reply::json(400, body)]).await;
    let m = ModelBuilder::new("google/gemini-2.5-flash")
        .env(|_| None)
        .api_key(GEMINI_KEY)
        .base_url(format!("{}/v1beta", server.url))
        .http_options(fast())
        .build()
        .unwrap();
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert_described(&err, "google", "gemini-2.5-flash", 400, "API key not valid");
    assert_error_clean(&err, GEMINI_KEY);
}

#[tokio::test]
async fn error_events_mid_stream_echoing_the_key_are_redacted() {
    // OpenAI-compatible: an `{"error"}` chunk after some text.
    let chat = format!(
        "data: {{\"id\":\"c1\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"Hel\"}}}}]}}\n\n\
         data: {{\"error\":{{\"message\":\"key {OPENAI_KEY} was revoked mid-request\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}}}\n\n"
    );
    let server = Server::start(vec![Reply::sse(chat).split(40)]).await;
    let m = openai_chat(&server);
    let mut s = m.stream(&ModelRequest::user("hi")).await.unwrap();
    let mut error = None;
    while let Some(ev) = s.next().await {
        if let Err(e) = ev {
            error = Some(e);
        }
    }
    let err = error.expect("the error event is reported");
    assert_error_clean(&err, OPENAI_KEY);
    let c = err.context().unwrap();
    assert_eq!(
        (c.provider.as_str(), c.model.as_str()),
        ("openai", "gpt-4o-mini")
    );
    assert!(c.message.contains("was revoked mid-request"), "{err:?}");
    assert!(c.message.contains("[REDACTED"), "{err:?}");

    // Anthropic: `event: error` after the message started.
    let anth = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{{\"input_tokens\":3}}}}}}\n\n\
         event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded for key {ANTHROPIC_KEY}\"}}}}\n\n"
    );
    let server = Server::start(vec![Reply::sse(anth)]).await;
    let m = ModelBuilder::new("anthropic/claude-x")
        .env(|_| None)
        .api_key(ANTHROPIC_KEY)
        .base_url(format!("{}/v1", server.url))
        .http_options(fast())
        .build()
        .unwrap();
    let err = collect_stream(m.stream(&ModelRequest::user("hi")).await.unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::Server(_)), "{err:?}");
    assert_error_clean(&err, ANTHROPIC_KEY);
    assert!(
        err.to_string().contains("Overloaded for key [REDACTED"),
        "{err}"
    );

    // With raw events on, the error event's payload goes out as a `Raw` event first: redacted.
    let mut req = ModelRequest::user("hi");
    req.include_raw_events = true;
    let mut s = m.stream(&req).await.unwrap();
    let mut raw = Vec::new();
    while let Some(ev) = s.next().await {
        if let Ok(StreamEvent::Raw { data, .. }) = ev {
            raw.push(data.to_string());
        }
    }
    assert_eq!(raw.len(), 2, "{raw:?}");
    assert!(raw[1].contains("Overloaded for key [REDACTED"), "{raw:?}");
    for r in &raw {
        assert_clean(r, ANTHROPIC_KEY, "raw event");
    }
}

#[tokio::test]
async fn a_key_cut_short_by_the_provider_or_by_truncation_is_still_redacted() {
    // A plain-text body (no JSON message): the key straddles the 500-character cut.
    let mut text = "x".repeat(480);
    text.push(' ');
    text.push_str(OPENAI_KEY);
    text.push_str(" is not valid");
    // A provider quoting only the first 40 characters of the key.
    let partial = format!(
        r#"{{"error":{{"message":"key {}... rejected","type":"invalid_request_error"}}}}"#,
        &OPENAI_KEY[..40]
    );
    let server = Server::start(vec![
        Reply::json(403, text).header("content-type", "text/plain"),
        Reply::json(401, partial),
    ])
    .await;
    let m = openai_chat(&server);
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_error_clean(&err, OPENAI_KEY);
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_error_clean(&err, OPENAI_KEY);
    assert!(err.to_string().contains("rejected"), "{err}");
}

#[tokio::test]
async fn azure_key_custom_headers_and_bedrock_credentials_are_redacted() {
    // Azure (api-key header) echoing the key in a 401.
    let azure_key = "3f9c0a7b5e1d4c2a8b6f0e9d7c5a3b1e";
    let server = Server::start(vec![Reply::json(
        401,
        format!(
            r#"{{"error":{{"code":"401","message":"Access denied due to invalid subscription key {azure_key}."}}}}"#
        ),
    )])
    .await;
    let m = ModelBuilder::new("azure/gpt-4o")
        .env(|_| None)
        .api_key(azure_key)
        .base_url(format!("{}/openai/v1", server.url))
        .http_options(fast())
        .build()
        .unwrap();
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert_error_clean(&err, azure_key);
    assert!(
        err.to_string().contains("invalid subscription key"),
        "{err}"
    );

    // A gateway token given as a custom Authorization header and an x-api-key header.
    let server = Server::start(vec![Reply::json(
        401,
        format!(
            r#"{{"error":{{"message":"gateway rejected Authorization: Bearer {HEADER_TOKEN} and x-api-key=team-key-0a1b2c3d4e5f"}}}}"#
        ),
    )])
    .await;
    let m = ModelBuilder::custom(
        "gateway",
        "m",
        Protocol::OpenAiChat,
        &format!("{}/v1", server.url),
    )
    .header("Authorization", format!("Bearer {HEADER_TOKEN}"))
    .header("x-api-key", "team-key-0a1b2c3d4e5f")
    .http_options(fast())
    .build()
    .unwrap();
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert_error_clean(&err, HEADER_TOKEN);
    assert!(!err.to_string().contains("team-key-0a1b2c3d4e5f"), "{err}");
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(format!("Bearer {HEADER_TOKEN}").as_str()),
        "the header is still sent"
    );
    assert!(!format!("{m:?}").contains(HEADER_TOKEN));

    // Bedrock with SigV4: an exception frame quoting the secret key and the session token.
    let server = Server::start(vec![Reply::json(
        403,
        format!(
            r#"{{"message":"The request signature we calculated does not match. secret={AWS_SECRET} token={AWS_SESSION}"}}"#
        ),
    )
    .header("x-amzn-errortype", "InvalidSignatureException:http://internal.amazon.com/")])
    .await;
    let creds = AwsCredentials::new("AKIAEXAMPLE0123", AWS_SECRET, Some(AWS_SESSION.into()));
    let m = ModelBuilder::new("amazon-bedrock/anthropic.claude-3-haiku-20240307-v1:0")
        .env(|k| (k == "AWS_REGION").then(|| "us-east-1".to_owned()))
        .aws_credentials(creds.clone())
        .base_url(server.url.clone())
        .http_options(fast())
        .build()
        .unwrap();
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert!(matches!(err, ModelError::Auth(_)), "{err:?}");
    assert_error_clean(&err, AWS_SECRET);
    assert_error_clean(&err, AWS_SESSION);
    assert!(err.to_string().contains("signature we calculated"), "{err}");
    for text in [format!("{m:?}"), format!("{creds:?}")] {
        assert_clean(&text, AWS_SECRET, "debug");
        assert_clean(&text, AWS_SESSION, "debug");
    }
}

fn pinned_client(server: &Server) -> HttpClient {
    let addr: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    HttpClient::with_host_overrides(Duration::from_secs(5), &[("localhost", addr)]).unwrap()
}

#[tokio::test]
async fn vertex_access_tokens_and_assertions_are_redacted() {
    // A token server echoing the assertion it rejects.
    let key_path = fixture_dir().join("vertex/test-service-account.json");
    let account = ServiceAccount::from_file(&key_path).unwrap();
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let assertion = account
        .assertion(
            miyabi::model::internals::CLOUD_PLATFORM_SCOPE,
            1_700_000_000,
        )
        .unwrap();
    let token = "ya29.c.b0AXv0zTPretendAccessToken-0123456789abcdefghijklmnop";
    let server = Server::start(vec![
        Reply::json(
            400,
            format!(r#"{{"error":"invalid_grant","error_description":"Invalid JWT: {assertion}"}}"#),
        ),
        Reply::json(
            200,
            format!(r#"{{"access_token":"{token}","expires_in":3599,"token_type":"Bearer"}}"#),
        ),
        Reply::json(
            401,
            format!(
                r#"{{"error":{{"code":401,"message":"Request had invalid authentication credentials: {token}","status":"UNAUTHENTICATED"}}}}"#
            ),
        ),
    ])
    .await;
    let m = ModelBuilder::new("google-vertex/gemini-2.5-flash")
        .env(|k| {
            (k == "GOOGLE_VERTEX_BASE_URL")
                .then(|| "http://localhost/v1/projects/p/locations/us-central1".to_owned())
        })
        .google_service_account(account.clone())
        .clock(move || at)
        .http_client(pinned_client(&server))
        .http_options(fast())
        .build()
        .unwrap();
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert!(matches!(err, ModelError::Auth(_)), "{err:?}");
    assert_error_clean(&err, &assertion);
    assert!(err.to_string().contains("Invalid JWT"), "{err}");

    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert!(matches!(err, ModelError::Auth(_)), "{err:?}");
    assert_error_clean(&err, token);
    assert!(
        err.to_string()
            .contains("invalid authentication credentials"),
        "{err}"
    );
    assert!(!format!("{account:?} {m:?}").contains("PRIVATE KEY"));
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn keys_echoed_by_providers_never_reach_the_logs() {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A 429 quoting the key is retried (and the retry logged), then a 401 quoting it ends the
    // call; then a stream whose error event quotes it.
    let server = Server::start(vec![
        Reply::json(
            429,
            format!(r#"{{"error":{{"message":"Rate limit reached for key {OPENAI_KEY}","type":"rate_limit_error"}}}}"#),
        )
        .header("retry-after", "0"),
        Reply::json(401, openai_401(OPENAI_KEY)),
        Reply::sse(format!(
            "data: {{\"error\":{{\"message\":\"bad key {OPENAI_KEY}\",\"code\":\"invalid_api_key\"}}}}\n\n"
        )),
    ])
    .await;
    // The base URL carries a password too (sent as basic auth by the HTTP client).
    let url = server
        .url
        .replace("http://", "http://proxyuser:proxy-pass-5e6f7a8b9c0d@");
    let m = ModelBuilder::new("openai/gpt-4o-mini")
        .env(|_| None)
        .protocol(Protocol::OpenAiChat)
        .api_key(OPENAI_KEY)
        .base_url(format!("{url}/v1"))
        .http_options(HttpOptions {
            max_retries: 1,
            ..fast()
        })
        .build()
        .unwrap();
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    let err2 = collect_stream(m.stream(&ModelRequest::user("hi")).await.unwrap())
        .await
        .unwrap_err();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("retrying model request"),
        "tracing was captured: {logs}"
    );
    assert!(
        logs.contains("Rate limit reached for key"),
        "the error is logged: {logs}"
    );
    for text in [logs, format!("{err:?} {err2:?} {m:?}")] {
        assert_clean(&text, OPENAI_KEY, "logs");
        assert!(!text.contains("proxy-pass-5e6f7a8b9c0d"), "{text}");
    }
}

#[test]
fn debug_of_builders_and_credentials_shows_no_secret() {
    let b = ModelBuilder::new("openai/gpt-4o")
        .api_key(OPENAI_KEY)
        .header("Authorization", format!("Bearer {HEADER_TOKEN}"))
        .base_url(
            "https://user:base-url-pass-0123456789@gw.invalid/v1?api_key=qs-key-abcdef0123456789",
        )
        .aws_credentials(AwsCredentials::new(
            "AKIAEXAMPLE0123",
            AWS_SECRET,
            Some(AWS_SESSION.into()),
        ));
    let text = format!("{b:?}");
    for s in [
        OPENAI_KEY,
        HEADER_TOKEN,
        AWS_SECRET,
        AWS_SESSION,
        "base-url-pass-0123456789",
        "qs-key-abcdef0123456789",
    ] {
        assert_clean(&text, s, "ModelBuilder Debug");
    }
    assert!(text.contains("gw.invalid"), "{text}");
    // A configuration error quoting the base URL hides its password.
    let err = ModelBuilder::new("openai/gpt-4o")
        .env(|_| None)
        .api_key(OPENAI_KEY)
        .base_url("ftp://user:ftp-pass-0123456789@gw.invalid/v1")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("is not http(s)"), "{err}");
    assert_clean(
        &format!("{err} {err:?}"),
        "ftp-pass-0123456789",
        "config error",
    );

    let m = b.env(|_| None).build().unwrap();
    let text = format!("{m:?} {:?}", m.resolved());
    for s in [
        OPENAI_KEY,
        HEADER_TOKEN,
        "base-url-pass-0123456789",
        "qs-key-abcdef0123456789",
    ] {
        assert_clean(&text, s, "Model Debug");
    }
}

fn notice() -> GateNotice {
    GateNotice {
        run_id: "run-1".into(),
        workflow: "publish".into(),
        gate: "review".into(),
        title: "Publish?".into(),
        summary: String::new(),
        approvers: vec![],
        deadline_at: None,
        link: "https://dashboard.invalid/runs/run-1".into(),
        links: vec![],
        event: NoticeEvent::Requested,
    }
}

#[tokio::test]
async fn notifier_errors_redact_echoed_tokens_and_secrets_even_in_pieces() {
    let token = "Xq7Lm2Np9Rs4Tv8Wy3Za6Bc1";
    let secret = "whsec_5f8e2d7c9b1a4e6f3d0c8b7a";
    // Receivers echoing only the token segment, a cut-off secret, the URL percent-encoded.
    let server = Server::start(vec![Reply::json(
        403,
        format!(
            "invalid_token: {token} (signature made with {}...)",
            &secret[..20]
        ),
    )])
    .await;
    let url = format!("{}/services/T0AAAAAAA/B0BBBBBBB/{token}", server.url);
    for n in [slack(&url), discord(&url), webhook(&url, secret)] {
        let e = n.send(&notice()).await.unwrap_err();
        assert!(
            matches!(e, NotifyError::Status { status: 403, .. }),
            "{e:?}"
        );
        for text in [e.to_string(), format!("{e:?}")] {
            assert_clean(&text, token, "notifier error");
            if n.kind() == "webhook" {
                assert_clean(&text, secret, "notifier error");
            }
            assert!(text.contains("invalid_token"), "{text}");
        }
    }
}
