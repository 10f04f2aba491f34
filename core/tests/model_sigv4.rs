//! AWS SigV4 signing for Amazon Bedrock: the signer against reference values computed with
//! botocore and the AWS SigV4 test suite (`tests/fixtures/sigv4`), and the exact signed request
//! a Bedrock model sends to a loopback server with a pinned clock.
#![cfg(feature = "bedrock")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use miyabi::model::aws::{AwsCredentials, SigV4Signer, region_for};
use miyabi::model::{
    Auth, ConfigError, HttpClient, HttpOptions, LanguageModel, ModelBuilder, ModelError,
    ModelRequest, collect_stream,
};
use model_support::{Reply, Server, read_fixture};
use serde_json::Value;

const MODEL: &str = "amazon-bedrock/anthropic.claude-3-haiku-20240307-v1:0";

fn vectors() -> Value {
    serde_json::from_slice(&read_fixture("sigv4/expected.json")).unwrap()
}

fn fixed_time(v: &Value) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(v["unix_time"].as_u64().unwrap())
}

fn fast() -> HttpOptions {
    HttpOptions {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        first_byte_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(20),
        ..HttpOptions::default()
    }
}

/// A client that connects `localhost` (port 80 in the URL, so no port in the Host header) to the
/// loopback server.
fn pinned_client(server: &Server) -> HttpClient {
    let addr: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    HttpClient::with_host_overrides(Duration::from_secs(5), &[("localhost", addr)]).unwrap()
}

fn event_stream_reply() -> Reply {
    let mut reply = Reply::sse(read_fixture(
        "amazon-bedrock/derived-binary/amazon-bedrock-text.eventstream.bin",
    ));
    reply.headers = vec![(
        "content-type".into(),
        "application/vnd.amazon.eventstream".into(),
    )];
    reply
}

#[test]
fn signer_matches_botocore_and_the_aws_test_suite() {
    let v = vectors();
    let time = fixed_time(&v);
    let cases = v["cases"].as_object().unwrap();
    assert!(cases.contains_key("post-vanilla"));
    for (name, case) in cases {
        let creds = AwsCredentials::new(
            v["access_key_id"].as_str().unwrap(),
            v["secret_access_key"].as_str().unwrap(),
            case["session_token"].as_str().map(str::to_owned),
        );
        let signer = SigV4Signer::new(
            creds,
            case["region"].as_str().unwrap(),
            case["service"].as_str().unwrap(),
        )
        .with_content_sha256(case["content_sha256"].as_bool().unwrap());
        let headers: Vec<(String, String)> = case["request_headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let mut got = signer
            .sign(
                "POST",
                case["url"].as_str().unwrap(),
                &headers,
                case["body"].as_str().unwrap().as_bytes(),
                time,
            )
            .unwrap();
        got.sort();
        let mut want: Vec<(String, String)> = case["expect"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        want.sort();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn a_different_secret_or_time_changes_the_signature() {
    let v = vectors();
    let case = &v["cases"]["bedrock-converse"];
    let sign = |secret: &str, time: SystemTime| {
        SigV4Signer::new(
            AwsCredentials::new("AKIDEXAMPLE", secret, None),
            "us-east-1",
            "bedrock",
        )
        .sign(
            "POST",
            case["url"].as_str().unwrap(),
            &[("content-type".into(), "application/json".into())],
            case["body"].as_str().unwrap().as_bytes(),
            time,
        )
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == "authorization")
        .unwrap()
        .1
    };
    let want = case["expect"]["authorization"].as_str().unwrap();
    let t = fixed_time(&v);
    assert_eq!(sign(v["secret_access_key"].as_str().unwrap(), t), want);
    assert_ne!(sign("another-secret", t), want);
    assert_ne!(
        sign(
            v["secret_access_key"].as_str().unwrap(),
            t + Duration::from_secs(1)
        ),
        want
    );
}

#[tokio::test]
async fn bedrock_model_sends_the_exact_signed_request() {
    let v = vectors();
    let case = v["cases"]["loopback-converse-stream"].clone();
    let server = Server::start(vec![event_stream_reply()]).await;
    let (ak, sk) = (
        v["access_key_id"].as_str().unwrap().to_owned(),
        v["secret_access_key"].as_str().unwrap().to_owned(),
    );
    let token = case["session_token"].as_str().unwrap().to_owned();
    let time = fixed_time(&v);
    let m = ModelBuilder::new(MODEL)
        .env(move |k| match k {
            "AWS_ACCESS_KEY_ID" => Some(ak.clone()),
            "AWS_SECRET_ACCESS_KEY" => Some(sk.clone()),
            "AWS_SESSION_TOKEN" => Some(token.clone()),
            "AWS_REGION" => Some("us-west-2".into()),
            "AMAZON_BEDROCK_BASE_URL" => Some("http://localhost".into()),
            _ => None,
        })
        .clock(move || time)
        .http_client(pinned_client(&server))
        .http_options(fast())
        .build()
        .unwrap();
    assert_eq!(m.resolved().auth, Auth::AwsSigV4);
    let got = collect_stream(m.stream(&ModelRequest::user("hi")).await.unwrap())
        .await
        .unwrap();
    assert!(!got.text().is_empty());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    );
    assert_eq!(r.header("host"), Some("localhost"));
    assert_eq!(
        std::str::from_utf8(&r.body).unwrap(),
        case["body"].as_str().unwrap()
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    for name in [
        "authorization",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
    ] {
        assert_eq!(
            r.header(name),
            case["expect"][name].as_str(),
            "header {name}"
        );
    }
    let authz = r.header("authorization").unwrap();
    assert!(authz.starts_with(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-west-2/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="
    ));
}

#[tokio::test]
async fn every_attempt_is_signed_anew() {
    let server = Server::start(vec![
        Reply::json(500, r#"{"message":"try again"}"#),
        event_stream_reply(),
    ])
    .await;
    let base = fixed_time(&vectors());
    let tick = Arc::new(AtomicU64::new(0));
    let m = ModelBuilder::new(MODEL)
        .env(|k| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".into()),
            "AWS_REGION" => Some("us-east-1".into()),
            "AMAZON_BEDROCK_BASE_URL" => Some("http://localhost".into()),
            _ => None,
        })
        .clock(move || base + Duration::from_secs(tick.fetch_add(1, Ordering::SeqCst)))
        .http_client(pinned_client(&server))
        .http_options(fast())
        .build()
        .unwrap();
    collect_stream(m.stream(&ModelRequest::user("hi")).await.unwrap())
        .await
        .unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("x-amz-date"), Some("20150830T123600Z"));
    assert_eq!(reqs[1].header("x-amz-date"), Some("20150830T123601Z"));
    assert_ne!(
        reqs[0].header("authorization"),
        reqs[1].header("authorization")
    );
    assert!(reqs[1].header("x-amz-security-token").is_none());
}

#[tokio::test]
async fn bedrock_api_key_wins_over_access_keys() {
    let server = Server::start(vec![event_stream_reply()]).await;
    let url = server.url.clone();
    let m = ModelBuilder::new(MODEL)
        .env(move |k| match k {
            "AWS_BEARER_TOKEN_BEDROCK" => Some("bedrock-api-key".into()),
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".into()),
            "AWS_REGION" => Some("us-east-1".into()),
            "AMAZON_BEDROCK_BASE_URL" => Some(url.clone()),
            _ => None,
        })
        .http_options(fast())
        .build()
        .unwrap();
    assert_eq!(m.resolved().auth, Auth::Bearer);
    collect_stream(m.stream(&ModelRequest::user("hi")).await.unwrap())
        .await
        .unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.header("authorization"), Some("Bearer bedrock-api-key"));
    assert!(r.header("x-amz-date").is_none());
}

#[test]
fn configuration_errors_say_what_to_set() {
    // No key and no access keys.
    let err = ModelBuilder::new(MODEL)
        .env(|k| (k == "AWS_REGION").then(|| "us-east-1".to_owned()))
        .resolve()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            &err,
            ModelError::Config(ConfigError::MissingKey { sigv4: true, .. })
        ),
        "{msg}"
    );
    assert!(
        msg.contains("AWS_BEARER_TOKEN_BEDROCK")
            && msg.contains("AWS_ACCESS_KEY_ID")
            && msg.contains("AWS_SECRET_ACCESS_KEY"),
        "{msg}"
    );
    // Access keys but no region anywhere (base URL overridden to a host without one).
    let err = ModelBuilder::new(MODEL)
        .env(|k| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".into()),
            _ => None,
        })
        .base_url("http://localhost")
        .resolve()
        .unwrap_err();
    assert!(
        matches!(&err, ModelError::Config(ConfigError::MissingAwsRegion { spec }) if spec == MODEL),
        "{err:?}"
    );
    assert!(err.to_string().contains("AWS_REGION"), "{err}");
    // Forced SigV4 without credentials.
    let err = ModelBuilder::new("openai/gpt-4.1")
        .env(|_| None)
        .auth(Auth::AwsSigV4)
        .resolve()
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ModelError::Config(ConfigError::MissingAwsCredentials { spec }) if spec == "openai/gpt-4.1"
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
}

#[test]
fn region_comes_from_env_then_the_host() {
    let none = |_: &str| None;
    assert_eq!(
        region_for(&none, "https://bedrock-runtime.ap-south-1.amazonaws.com").as_deref(),
        Some("ap-south-1")
    );
    assert_eq!(region_for(&none, "http://localhost:8080"), None);
    let env = |k: &str| (k == "AWS_DEFAULT_REGION").then(|| "eu-north-1".to_owned());
    assert_eq!(
        region_for(&env, "https://bedrock-runtime.ap-south-1.amazonaws.com").as_deref(),
        Some("eu-north-1")
    );
}

#[test]
fn credentials_never_print_their_secrets() {
    let c = AwsCredentials::new("AKIDEXAMPLE", "TOP-SECRET-KEY", Some("SESSION-TOK".into()));
    let text = format!("{c:?}");
    assert!(text.contains("AKIDEXAMPLE"));
    assert!(!text.contains("TOP-SECRET-KEY") && !text.contains("SESSION-TOK"));
    let m = ModelBuilder::new(MODEL)
        .env(|_| None)
        .aws_credentials(c)
        .base_url("https://bedrock-runtime.us-east-1.amazonaws.com")
        .resolve()
        .unwrap();
    let text = format!("{m:?}");
    assert!(!text.contains("TOP-SECRET-KEY") && !text.contains("SESSION-TOK"));
    assert_eq!(m.auth, Auth::AwsSigV4);
}
