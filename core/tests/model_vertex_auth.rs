//! Vertex AI with a Google service account: the RS256 JWT against one computed independently
//! (Python `cryptography`, tests/fixtures/vertex), the JWT-bearer exchange with a loopback token
//! endpoint, the cached token on the model's requests, and typed failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model_support;

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use miyabi::model::internals::CLOUD_PLATFORM_SCOPE;
use miyabi::model::{
    Auth, ConfigError, HttpClient, HttpOptions, LanguageModel, ModelBuilder, ModelError,
    ModelRequest, ServiceAccount,
};
use model_support::{Reply, Server, fixture_dir, read_fixture};
use serde_json::Value;

const TOKEN: &str = "ya29.c.test-access-token-0123";

fn key_path() -> String {
    fixture_dir()
        .join("vertex/test-service-account.json")
        .to_string_lossy()
        .into_owned()
}

fn vectors() -> Value {
    serde_json::from_slice(&read_fixture("vertex/expected.json")).unwrap()
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

fn pinned_client(server: &Server) -> HttpClient {
    let addr: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    HttpClient::with_host_overrides(Duration::from_secs(5), &[("localhost", addr)]).unwrap()
}

fn vertex_model(server: &Server, credentials: String) -> miyabi::model::Model {
    let at = UNIX_EPOCH + Duration::from_secs(vectors()["iat"].as_u64().unwrap());
    ModelBuilder::new("google-vertex/gemini-2.5-flash")
        .env(move |k| match k {
            "GOOGLE_APPLICATION_CREDENTIALS" => Some(credentials.clone()),
            "GOOGLE_VERTEX_BASE_URL" => {
                Some("http://localhost/v1/projects/p/locations/us-central1".into())
            }
            _ => None,
        })
        .clock(move || at)
        .http_client(pinned_client(server))
        .http_options(fast())
        .build()
        .unwrap()
}

fn token_reply() -> Reply {
    Reply::json(
        200,
        format!(r#"{{"access_token":"{TOKEN}","expires_in":3599,"token_type":"Bearer"}}"#),
    )
}

#[test]
fn assertion_matches_an_independent_rs256_implementation() {
    let v = vectors();
    let sa = ServiceAccount::from_file(key_path()).unwrap();
    assert_eq!(v["scope"], CLOUD_PLATFORM_SCOPE);
    let got = sa
        .assertion(CLOUD_PLATFORM_SCOPE, v["iat"].as_u64().unwrap())
        .unwrap();
    assert_eq!(got, v["assertion"].as_str().unwrap());
    // A different issue time gives a different assertion.
    assert_ne!(
        sa.assertion(CLOUD_PLATFORM_SCOPE, v["iat"].as_u64().unwrap() + 1)
            .unwrap(),
        got
    );
}

#[tokio::test]
async fn vertex_model_exchanges_the_jwt_once_and_sends_the_token() {
    let server = Server::start(vec![
        token_reply(),
        Reply::json(200, read_fixture("google/google-text.json")),
    ])
    .await;
    let m = vertex_model(&server, key_path());
    assert_eq!(m.resolved().auth, Auth::GoogleServiceAccount);
    let a = m.generate(&ModelRequest::user("hi")).await.unwrap();
    let b = m.generate(&ModelRequest::user("again")).await.unwrap();
    assert!(!a.text().is_empty());
    assert_eq!(a.text(), b.text());

    let reqs = server.requests();
    assert_eq!(reqs.len(), 3, "one token exchange, then two model calls");
    let t = &reqs[0];
    assert_eq!(t.path, "/token");
    assert_eq!(t.header("host"), Some("localhost"));
    assert_eq!(
        t.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let want_body = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
        vectors()["assertion"].as_str().unwrap()
    );
    assert_eq!(std::str::from_utf8(&t.body).unwrap(), want_body);
    assert!(t.header("authorization").is_none());
    for r in &reqs[1..] {
        assert_eq!(
            r.path,
            "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
}

#[tokio::test]
async fn a_rejected_assertion_is_an_auth_error_without_secrets() {
    let server = Server::start(vec![Reply::json(
        400,
        r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
    )])
    .await;
    let m = vertex_model(&server, key_path());
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert!(matches!(err, ModelError::Auth(_)), "{err:?}");
    let text = format!("{err} {err:?} {m:?}");
    assert!(text.contains("Invalid JWT Signature."), "{text}");
    assert!(!text.contains("PRIVATE KEY"));
    assert_eq!(server.requests().len(), 1, "no model call without a token");
}

#[tokio::test]
async fn a_token_that_cannot_be_a_header_is_a_config_error_without_the_token() {
    let server = Server::start(vec![Reply::json(
        200,
        r#"{"access_token":"ya29.bad\ntoken-0123456789","expires_in":3599}"#,
    )])
    .await;
    let m = vertex_model(&server, key_path());
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert!(
        matches!(err, ModelError::Config(ConfigError::TokenNotHeaderSafe)),
        "{err:?}"
    );
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("ya29") && !shown.contains("token-0123"),
        "{shown}"
    );
    assert_eq!(server.requests().len(), 1, "only the token exchange");
}

#[tokio::test]
async fn access_token_variable_wins_over_the_key_file() {
    let server = Server::start(vec![Reply::json(
        200,
        read_fixture("google/google-text.json"),
    )])
    .await;
    let path = key_path();
    let m = ModelBuilder::new("google-vertex/gemini-2.5-flash")
        .env(move |k| match k {
            "GOOGLE_VERTEX_ACCESS_TOKEN" => Some("direct-token".into()),
            "GOOGLE_APPLICATION_CREDENTIALS" => Some(path.clone()),
            "GOOGLE_VERTEX_BASE_URL" => Some("http://localhost/v1".into()),
            _ => None,
        })
        .http_client(pinned_client(&server))
        .http_options(fast())
        .build()
        .unwrap();
    assert_eq!(m.resolved().auth, Auth::Bearer);
    m.generate(&ModelRequest::user("hi")).await.unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("authorization"), Some("Bearer direct-token"));
}

#[test]
fn unusable_credentials_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("adc.json");
    std::fs::write(
        &user,
        r#"{"type":"authorized_user","client_id":"x","client_secret":"y","refresh_token":"z"}"#,
    )
    .unwrap();
    let err = ServiceAccount::from_file(&user).unwrap_err();
    assert!(
        err.to_string().contains("GOOGLE_VERTEX_ACCESS_TOKEN"),
        "{err}"
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#,
    )
    .unwrap();
    assert!(matches!(
        ServiceAccount::from_file(&bad),
        Err(ModelError::Config(ConfigError::GoogleCredentials { .. }))
    ));
    assert!(ServiceAccount::from_file(dir.path().join("missing.json")).is_err());
    // No token and no key file: the error names both ways.
    let err = ModelBuilder::new("google-vertex/gemini-2.5-flash")
        .env(|k| match k {
            "GOOGLE_VERTEX_PROJECT" => Some("p".into()),
            "GOOGLE_VERTEX_LOCATION" => Some("us-central1".into()),
            _ => None,
        })
        .resolve()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("GOOGLE_VERTEX_ACCESS_TOKEN")
            && msg.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{msg}"
    );
    let sa = ServiceAccount::from_file(key_path()).unwrap();
    let text = format!("{sa:?}");
    assert!(text.contains("miyabi-test@") && !text.contains("PRIVATE KEY"));
}
