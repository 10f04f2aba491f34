//! Configuration errors are typed: each family of `ConfigError` comes out of the public API
//! where a user meets it, keeps the `CONFIG` code, says what to set, and shows no secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use miyabi::ErrorCode;
use miyabi::model::{
    Auth, ConfigError, FallbackModel, HeaderKind, LanguageModel, ModelBuilder, ModelError,
    ModelRequest, Protocol, ServiceAccount,
};

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

/// The `ConfigError` inside `err`, after checking the code every configuration error has.
fn config(err: ModelError) -> ConfigError {
    assert_eq!(err.code(), ErrorCode::Config, "{err:?}");
    assert!(!err.is_retryable(), "{err:?}");
    assert!(err.context().is_none(), "{err:?}");
    match err {
        ModelError::Config(c) => c,
        other => panic!("not a configuration error: {other:?}"),
    }
}

fn resolve_err(b: ModelBuilder) -> ConfigError {
    config(b.resolve().unwrap_err())
}

#[test]
fn a_spec_that_is_not_provider_slash_model() {
    for spec in ["groq", "/x", "groq/", ""] {
        let c = resolve_err(ModelBuilder::new(spec).env(env_of(&[])));
        assert_eq!(
            c,
            ConfigError::BadSpec {
                spec: spec.to_owned()
            }
        );
        assert!(c.to_string().contains("\"provider/model\""), "{c}");
    }
    // The top-level function reports the same.
    let c = config(miyabi::model("no-slash").unwrap_err());
    assert!(matches!(c, ConfigError::BadSpec { .. }), "{c:?}");
}

#[test]
fn an_unknown_provider_names_similar_ones() {
    // `model()` reads the process environment, which cannot make an unknown provider known.
    let c = config(miyabi::model("nope/x").unwrap_err());
    let ConfigError::UnknownProvider {
        provider,
        known,
        similar,
    } = &c
    else {
        panic!("{c:?}");
    };
    assert_eq!(provider, "nope");
    assert_eq!(*known, 223);
    assert!(similar.is_empty(), "{similar:?}");
    let msg = c.to_string();
    assert!(
        msg.contains("unknown provider \"nope\"") && msg.contains("ModelBuilder::custom"),
        "{msg}"
    );
    assert!(!msg.contains("similar"), "{msg}");

    let c = resolve_err(ModelBuilder::new("groqq/x").env(env_of(&[])));
    let ConfigError::UnknownProvider { similar, .. } = &c else {
        panic!("{c:?}");
    };
    assert!(similar.iter().any(|s| s == "groq"), "{similar:?}");
    assert!(similar.len() <= 5, "{similar:?}");
    assert!(c.to_string().contains("similar: "), "{c}");

    // The catalogue is not consulted for a custom provider.
    let r = ModelBuilder::custom("nope", "x", Protocol::OpenAiChat, "http://10.0.0.1/v1")
        .env(env_of(&[]))
        .resolve()
        .unwrap();
    assert_eq!(r.provider, "nope");
}

#[test]
fn a_provider_without_its_key_names_the_variables() {
    let c = resolve_err(ModelBuilder::new("groq/llama").env(env_of(&[])));
    assert_eq!(
        c,
        ConfigError::MissingKey {
            provider: "groq".into(),
            env_vars: vec!["GROQ_API_KEY".into()],
            sigv4: false,
            service_account: false,
        }
    );
    let msg = c.to_string();
    assert!(
        msg.contains("set GROQ_API_KEY") && msg.contains("ModelBuilder::api_key"),
        "{msg}"
    );
    // An empty variable counts as unset.
    let c = resolve_err(ModelBuilder::new("groq/llama").env(env_of(&[("GROQ_API_KEY", "")])));
    assert!(matches!(c, ConfigError::MissingKey { .. }), "{c:?}");

    // Vertex: a service-account key file would do too.
    let c = resolve_err(
        ModelBuilder::new("google-vertex/gemini-2.5-flash").env(env_of(&[
            ("GOOGLE_VERTEX_PROJECT", "p"),
            ("GOOGLE_VERTEX_LOCATION", "us-central1"),
        ])),
    );
    let ConfigError::MissingKey {
        service_account,
        sigv4,
        ..
    } = &c
    else {
        panic!("{c:?}");
    };
    assert!(*service_account && !*sigv4, "{c:?}");
    assert!(
        c.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{c}"
    );
}

#[test]
fn a_missing_base_url_names_the_variable() {
    let c = resolve_err(ModelBuilder::new("gitlab/x").env(env_of(&[("GITLAB_TOKEN", "t")])));
    let ConfigError::MissingBaseUrl {
        provider, env_var, ..
    } = &c
    else {
        panic!("{c:?}");
    };
    assert_eq!(
        (provider.as_str(), env_var.as_str()),
        ("gitlab", "GITLAB_BASE_URL")
    );
    assert!(
        c.to_string()
            .contains("set GITLAB_BASE_URL or use ModelBuilder::base_url"),
        "{c}"
    );

    // A base URL whose placeholders come from unset variables.
    let c = resolve_err(ModelBuilder::new("azure/gpt-4.1").env(env_of(&[("AZURE_API_KEY", "k")])));
    let ConfigError::BaseUrlNeedsEnv {
        provider,
        missing,
        env_var,
        ..
    } = &c
    else {
        panic!("{c:?}");
    };
    assert_eq!(provider, "azure");
    assert_eq!(missing, &["AZURE_RESOURCE_NAME".to_owned()]);
    assert_eq!(env_var, "AZURE_BASE_URL");
    assert!(
        c.to_string().contains("needs AZURE_RESOURCE_NAME set"),
        "{c}"
    );
}

#[test]
fn a_base_url_that_is_not_http_hides_its_password() {
    let c = resolve_err(
        ModelBuilder::new("groq/x")
            .env(env_of(&[("GROQ_API_KEY", "k")]))
            .base_url("ftp://user:hunter2-password@files.example/v1"),
    );
    let ConfigError::BadBaseUrl { provider, url } = &c else {
        panic!("{c:?}");
    };
    assert_eq!(provider, "groq");
    assert!(url.starts_with("ftp://"), "{url}");
    assert!(!format!("{c} {c:?}").contains("hunter2-password"), "{c:?}");
}

#[cfg(feature = "bedrock")]
#[test]
fn sigv4_without_credentials_or_region() {
    let c = resolve_err(
        ModelBuilder::new("openai/gpt-4.1")
            .env(env_of(&[]))
            .auth(Auth::AwsSigV4),
    );
    assert_eq!(
        c,
        ConfigError::MissingAwsCredentials {
            spec: "openai/gpt-4.1".into()
        }
    );
    let c = resolve_err(
        ModelBuilder::new("openai/gpt-4.1")
            .env(env_of(&[
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret-access-key"),
            ]))
            .base_url("http://localhost:9")
            .auth(Auth::AwsSigV4),
    );
    assert!(matches!(c, ConfigError::MissingAwsRegion { .. }), "{c:?}");
    assert!(!format!("{c} {c:?}").contains("wJalrXUtnFEMI"), "{c:?}");

    // The signer itself: a URL it cannot sign keeps the parser's message.
    let signer = miyabi::model::aws::SigV4Signer::new(
        miyabi::model::aws::AwsCredentials::new("AKIDEXAMPLE", "secret-access-key-0123", None),
        "us-east-1",
        "bedrock",
    );
    let c = config(
        signer
            .sign("POST", "not a url", &[], b"", std::time::SystemTime::now())
            .unwrap_err(),
    );
    let ConfigError::AwsSigning { reason } = &c else {
        panic!("{c:?}");
    };
    assert!(reason.starts_with("URL: "), "{reason}");
    assert!(
        c.to_string().starts_with("cannot sign the request: "),
        "{c}"
    );
}

#[cfg(not(feature = "bedrock"))]
#[test]
fn sigv4_needs_the_bedrock_feature() {
    let c = resolve_err(
        ModelBuilder::new("openai/gpt-4.1")
            .env(env_of(&[]))
            .auth(Auth::AwsSigV4),
    );
    assert_eq!(
        c,
        ConfigError::SigV4Unavailable {
            spec: "openai/gpt-4.1".into()
        }
    );
    assert!(c.to_string().contains("`bedrock` feature"), "{c}");
}

#[test]
fn unusable_service_account_keys_keep_the_reason() {
    let c = config(ServiceAccount::from_json("{not json").unwrap_err());
    let ConfigError::GoogleCredentials { reason } = &c else {
        panic!("{c:?}");
    };
    assert!(reason.starts_with("not a JSON key file: "), "{reason}");
    let c = config(
        ServiceAccount::from_json(r#"{"type":"authorized_user","client_email":"a@b"}"#)
            .unwrap_err(),
    );
    assert!(c.to_string().contains("GOOGLE_VERTEX_ACCESS_TOKEN"), "{c}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let c = config(ServiceAccount::from_file(&missing).unwrap_err());
    let ConfigError::GoogleCredentials { reason } = &c else {
        panic!("{c:?}");
    };
    assert!(
        reason.starts_with("cannot read ") && reason.contains("missing.json"),
        "{reason}"
    );
    // The same error through the environment variable, when the model is built.
    let path = missing.to_string_lossy().into_owned();
    let c = resolve_err(ModelBuilder::new("google-vertex/gemini-2.5-flash").env(
        move |k| match k {
            "GOOGLE_APPLICATION_CREDENTIALS" => Some(path.clone()),
            "GOOGLE_VERTEX_PROJECT" => Some("p".into()),
            "GOOGLE_VERTEX_LOCATION" => Some("us-central1".into()),
            _ => None,
        },
    ));
    assert!(matches!(c, ConfigError::GoogleCredentials { .. }), "{c:?}");
}

/// A model on a loopback port nothing listens on: configuration errors come before any I/O.
fn local(spec: &str) -> ModelBuilder {
    ModelBuilder::new(spec)
        .env(env_of(&[]))
        .base_url("http://127.0.0.1:9/v1")
}

async fn call_err(b: ModelBuilder) -> ConfigError {
    let m = b.build().unwrap();
    let req = ModelRequest::user("hi");
    let streamed = match m.stream(&req).await {
        Ok(_) => panic!("stream started"),
        Err(e) => config(e),
    };
    let generated = config(m.generate(&req).await.unwrap_err());
    assert_eq!(streamed, generated);
    generated
}

#[tokio::test]
async fn headers_that_cannot_be_sent_name_the_header_not_the_value() {
    let c = call_err(local("openai/gpt-4.1").header("bad name", "v")).await;
    assert_eq!(
        c,
        ConfigError::BadHeaderName {
            name: "bad name".into(),
            kind: HeaderKind::Custom
        }
    );
    assert_eq!(c.to_string(), "bad header name \"bad name\"");

    let secret = "Bearer sk-live-0123456789abcdef\n";
    let c = call_err(local("openai/gpt-4.1").header("Authorization", secret)).await;
    assert_eq!(
        c,
        ConfigError::BadHeaderValue {
            name: "Authorization".into(),
            kind: HeaderKind::Custom
        }
    );
    assert!(!format!("{c} {c:?}").contains("sk-live"), "{c:?}");

    let c = call_err(
        local("openai/gpt-4.1")
            .api_key("sk-0123456789")
            .auth(Auth::Header("x key".into())),
    )
    .await;
    assert_eq!(
        c,
        ConfigError::BadHeaderName {
            name: "x key".into(),
            kind: HeaderKind::Auth
        }
    );
    assert_eq!(c.to_string(), "bad auth header name \"x key\"");
}

#[tokio::test]
async fn a_key_that_cannot_be_a_header_value_is_not_shown() {
    let c = call_err(local("openai/gpt-4.1").api_key("sk-secret-0123456789\r\nx")).await;
    assert_eq!(
        c,
        ConfigError::KeyNotHeaderSafe {
            provider: "openai".into()
        }
    );
    let shown = format!("{c} {c:?}");
    assert!(!shown.contains("sk-secret"), "{shown}");
    assert!(shown.contains("openai"), "{shown}");
}

#[tokio::test]
async fn a_url_the_http_client_refuses_is_a_bad_request() {
    let c = call_err(
        ModelBuilder::new("openai/gpt-4.1")
            .env(env_of(&[("OPENAI_API_KEY", "sk-0123456789")]))
            .base_url("http://bad host name/v1"),
    )
    .await;
    let ConfigError::BadRequest {
        provider,
        model,
        reason,
    } = &c
    else {
        panic!("{c:?}");
    };
    assert_eq!((provider.as_str(), model.as_str()), ("openai", "gpt-4.1"));
    assert!(!reason.is_empty());
    assert!(
        c.to_string().starts_with("openai/gpt-4.1: bad request: "),
        "{c}"
    );
}

#[tokio::test]
async fn an_empty_fallback_chain() {
    let chain = FallbackModel::new(Vec::<Arc<dyn LanguageModel>>::new());
    let req = ModelRequest::user("hi");
    let c = config(chain.generate(&req).await.unwrap_err());
    assert_eq!(c, ConfigError::EmptyFallbackChain);
    let c = match chain.stream(&req).await {
        Ok(_) => panic!("stream started"),
        Err(e) => config(e),
    };
    assert_eq!(c, ConfigError::EmptyFallbackChain);
    assert_eq!(
        ModelError::from(c).to_string(),
        "configuration error: empty fallback chain"
    );
}
