//! The embedded catalogue: every one of the 223 providers resolves to an adapter and a valid base
//! URL, or says exactly what to configure; "provider/model" splits on the first `/`; overrides,
//! custom providers and discovery.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use miyabi::model::{ApiKey, Auth, Catalog, ConfigError, ModelBuilder, ModelError, Protocol};

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn catalogue_has_the_union_of_both_data_sets() {
    let c = Catalog::embedded();
    assert_eq!(c.providers().len(), 223);
    let both = c
        .providers()
        .iter()
        .filter(|p| p.sources.len() == 2)
        .count();
    let only_mastra = c
        .providers()
        .iter()
        .filter(|p| p.sources == ["mastra"])
        .count();
    let only_md = c
        .providers()
        .iter()
        .filter(|p| p.sources == ["models.dev"])
        .count();
    assert_eq!((both, only_mastra, only_md), (132, 76, 15));
    let models: usize = c.providers().iter().map(|p| p.models().len()).sum();
    assert!(models > 9000, "{models} models");
}

#[test]
fn every_provider_resolves_or_says_what_to_configure() {
    let c = Catalog::embedded();
    let mut resolved = 0;
    let mut needs_base = Vec::new();
    for p in c.providers() {
        let model = p
            .models()
            .first()
            .map(|m| m.id.clone())
            .unwrap_or_else(|| "some-model".into());
        let spec = format!("{}/{}", p.id, model);

        // With nothing configured: either it works (local endpoints) or the error names a variable.
        match ModelBuilder::new(&spec).env(env_of(&[])).resolve() {
            Ok(r) => assert!(
                r.base_url.starts_with("http://127.0.0.1")
                    || r.base_url.starts_with("http://localhost"),
                "{spec} resolved without a key to {}",
                r.base_url
            ),
            Err(ModelError::Config(c)) => {
                let msg = c.to_string();
                // The variant says what is missing, the message names what to set.
                match &c {
                    ConfigError::MissingKey { env_vars, .. } => {
                        assert_eq!(env_vars, &p.key_env, "{spec}: {msg}")
                    }
                    ConfigError::MissingBaseUrl { env_var, .. } => {
                        assert_eq!(env_var, &p.base_url_env(), "{spec}: {msg}")
                    }
                    ConfigError::BaseUrlNeedsEnv { missing, .. } => assert!(
                        missing.iter().all(|m| p.config_env.contains(m)),
                        "{spec}: {msg}"
                    ),
                    other => panic!("{spec}: unexpected {other:?}"),
                }
                let names_something = p.key_env.iter().any(|k| msg.contains(k))
                    || p.config_env.iter().any(|k| msg.contains(k))
                    || msg.contains(&p.base_url_env());
                assert!(names_something, "{spec}: unhelpful error {msg}");
            }
            Err(e) => panic!("{spec}: {e}"),
        }

        // With every variable the provider lists set, it resolves to a concrete http(s) URL.
        let mut pairs: Vec<(String, String)> = p
            .key_env
            .iter()
            .map(|k| (k.clone(), "secret-value".to_owned()))
            .collect();
        pairs.extend(p.config_env.iter().map(|k| {
            // A variable that holds a whole URL gets one; the others are host or name parts.
            let v = if k.ends_with("BASE_URL") {
                "https://gw.example"
            } else {
                "cfg"
            };
            (k.clone(), v.to_owned())
        }));
        pairs.push(("AWS_REGION".into(), "us-east-1".into()));
        let env: HashMap<String, String> = pairs.into_iter().collect();
        let result = ModelBuilder::new(&spec)
            .env(move |k| env.get(k).cloned())
            .resolve();
        match result {
            Ok(r) => {
                assert!(
                    r.base_url.starts_with("https://") || r.base_url.starts_with("http://"),
                    "{spec}: {}",
                    r.base_url
                );
                assert!(
                    !r.base_url.contains("${"),
                    "{spec}: unfilled template {}",
                    r.base_url
                );
                assert!(!r.base_url.ends_with('/'));
                assert!(Protocol::ALL.contains(&r.protocol));
                resolved += 1;
            }
            Err(ModelError::Config(c)) => {
                let msg = c.to_string();
                assert!(p.base_url.is_none(), "{spec}: {msg}");
                assert!(
                    matches!(&c, ConfigError::MissingBaseUrl { env_var, .. } if *env_var == p.base_url_env()),
                    "{spec}: {c:?}"
                );
                assert!(msg.contains(&p.base_url_env()), "{spec}: {msg}");
                needs_base.push(p.id.clone());
            }
            Err(e) => panic!("{spec}: {e}"),
        }
    }
    assert_eq!(resolved + needs_base.len(), 223);
    needs_base.sort();
    assert_eq!(needs_base, ["gitlab", "netlify", "sap-ai-core"]);
}

#[test]
fn native_protocols_and_defaults() {
    let env = env_of(&[
        ("ANTHROPIC_API_KEY", "a"),
        ("OPENAI_API_KEY", "o"),
        ("GEMINI_API_KEY", "g"),
        ("COHERE_API_KEY", "c"),
        ("GROQ_API_KEY", "q"),
    ]);
    let env = std::sync::Arc::new(env);
    let resolve = |spec: &str| {
        let e = env.clone();
        ModelBuilder::new(spec)
            .env(move |k| e(k))
            .resolve()
            .unwrap()
    };
    let a = resolve("anthropic/claude-sonnet-4-5");
    assert_eq!(
        (a.protocol, a.base_url.as_str()),
        (Protocol::Anthropic, "https://api.anthropic.com/v1")
    );
    assert_eq!(a.auth, Auth::Header("x-api-key".into()));
    let facts = a.info.as_ref().unwrap();
    assert!(facts.context_window.unwrap() >= 200_000);
    assert!(facts.capabilities.tools && facts.capabilities.reasoning);
    assert!(facts.pricing.unwrap().input.unwrap() > 0.0);
    let o = resolve("openai/gpt-4.1");
    assert_eq!(
        (o.protocol, o.base_url.as_str()),
        (Protocol::OpenAiResponses, "https://api.openai.com/v1")
    );
    let g = resolve("google/gemini-2.5-flash");
    assert_eq!(
        (g.protocol, g.auth.clone()),
        (Protocol::Gemini, Auth::Header("x-goog-api-key".into()))
    );
    assert_eq!(
        resolve("cohere/command-a-03-2025").protocol,
        Protocol::Cohere
    );
    let q = resolve("groq/llama-3.3-70b-versatile");
    assert_eq!(
        (q.protocol, q.base_url.as_str(), q.auth.clone()),
        (
            Protocol::OpenAiChat,
            "https://api.groq.com/openai/v1",
            Auth::Bearer
        )
    );
}

#[test]
fn splits_on_the_first_slash_only() {
    let r = ModelBuilder::new("openrouter/anthropic/claude-sonnet-4.5")
        .env(env_of(&[("OPENROUTER_API_KEY", "k")]))
        .resolve()
        .unwrap();
    assert_eq!(r.provider, "openrouter");
    assert_eq!(r.model, "anthropic/claude-sonnet-4.5");
    assert!(
        r.info.is_some(),
        "openrouter's anthropic/claude-sonnet-4.5 has catalogue facts"
    );
    let (p, m) = Catalog::embedded()
        .lookup("openrouter/anthropic/claude-sonnet-4.5")
        .unwrap();
    assert_eq!(p.id, "openrouter");
    assert_eq!(m.unwrap().id, "anthropic/claude-sonnet-4.5");
}

#[test]
fn per_model_protocol_override() {
    // zenmux routes Claude through its Anthropic-compatible endpoint.
    let r = ModelBuilder::new("zenmux/anthropic/claude-opus-4.5")
        .env(env_of(&[("ZENMUX_API_KEY", "k")]))
        .resolve()
        .unwrap();
    assert_eq!(r.protocol, Protocol::Anthropic);
    assert_eq!(r.base_url, "https://zenmux.ai/api/anthropic/v1");
    assert_eq!(r.auth, Auth::Header("x-api-key".into()));
}

#[test]
fn templates_overrides_and_errors() {
    let err = ModelBuilder::new("azure/gpt-4.1")
        .env(env_of(&[("AZURE_API_KEY", "k")]))
        .resolve()
        .unwrap_err();
    assert!(err.to_string().contains("AZURE_RESOURCE_NAME"), "{err}");
    let r = ModelBuilder::new("azure/gpt-4.1")
        .env(env_of(&[
            ("AZURE_API_KEY", "k"),
            ("AZURE_RESOURCE_NAME", "acme"),
        ]))
        .resolve()
        .unwrap();
    assert_eq!(r.base_url, "https://acme.openai.azure.com/openai/v1");
    assert_eq!(r.auth, Auth::Header("api-key".into()));

    let r = ModelBuilder::new("groq/x")
        .env(env_of(&[
            ("GROQ_API_KEY", "k"),
            ("GROQ_BASE_URL", "http://127.0.0.1:9/v1/"),
        ]))
        .resolve()
        .unwrap();
    assert_eq!(r.base_url, "http://127.0.0.1:9/v1");
    let r = ModelBuilder::new("groq/x")
        .env(env_of(&[("GROQ_API_KEY", "k")]))
        .base_url("https://proxy.example/v1")
        .resolve()
        .unwrap();
    assert_eq!(r.base_url, "https://proxy.example/v1");

    let err = ModelBuilder::new("groq/x")
        .env(env_of(&[]))
        .resolve()
        .unwrap_err();
    assert!(err.to_string().contains("GROQ_API_KEY"), "{err}");
    let err = ModelBuilder::new("no-such-provider/x")
        .env(env_of(&[]))
        .resolve()
        .unwrap_err();
    assert!(err.to_string().contains("unknown provider"), "{err}");
    let err = ModelBuilder::new("groq")
        .env(env_of(&[]))
        .resolve()
        .unwrap_err();
    assert!(
        matches!(&err, ModelError::Config(ConfigError::BadSpec { spec }) if spec == "groq"),
        "{err:?}"
    );

    // A key passed explicitly wins and is never printed.
    let r = ModelBuilder::new("groq/x")
        .env(env_of(&[]))
        .api_key("sk-very-secret")
        .resolve()
        .unwrap();
    assert!(r.has_key());
    let dbg = format!("{r:?}");
    assert!(
        !dbg.contains("sk-very-secret") && dbg.contains("[redacted]"),
        "{dbg}"
    );
    assert_eq!(format!("{:?}", ApiKey::new("sk-very-secret")), "[redacted]");
}

#[test]
fn custom_providers() {
    let r = ModelBuilder::custom(
        "vllm",
        "qwen3",
        Protocol::OpenAiChat,
        "http://10.0.0.5:8000/v1",
    )
    .env(env_of(&[]))
    .resolve()
    .unwrap();
    assert_eq!(
        (r.protocol, r.base_url.as_str(), r.has_key()),
        (Protocol::OpenAiChat, "http://10.0.0.5:8000/v1", false)
    );
    let r = ModelBuilder::custom(
        "ollama",
        "llama3",
        Protocol::Ollama,
        "http://localhost:11434",
    )
    .resolve()
    .unwrap();
    assert_eq!(r.protocol, Protocol::Ollama);
    // Local catalogue providers need no key.
    let r = ModelBuilder::new("lmstudio/qwen3")
        .env(env_of(&[]))
        .resolve()
        .unwrap();
    assert_eq!(r.base_url, "http://127.0.0.1:1234/v1");
}

#[test]
fn discovery() {
    let c = Catalog::embedded();
    let anthropic = c.provider("anthropic").unwrap();
    assert!(anthropic.has_credentials_in(&|k| (k == "ANTHROPIC_API_KEY").then(|| "x".to_owned())));
    assert!(!anthropic.has_credentials_in(&|_| None));
    assert!(anthropic.requirements().contains("ANTHROPIC_API_KEY"));
    assert!(
        c.provider("gitlab")
            .unwrap()
            .requirements()
            .contains("GITLAB_BASE_URL")
    );
    let reasoning_with_tools = c.models_where(|m| m.capabilities.reasoning && m.capabilities.tools);
    assert!(reasoning_with_tools.len() > 1000);
    let families: std::collections::HashSet<Protocol> =
        c.providers().iter().map(|p| p.protocol).collect();
    for p in [
        Protocol::OpenAiChat,
        Protocol::OpenAiResponses,
        Protocol::Anthropic,
        Protocol::Gemini,
        Protocol::Cohere,
        Protocol::Bedrock,
    ] {
        assert!(families.contains(&p), "{p}");
    }
    // available() reads the real environment; it must at least not list a provider whose key is unset.
    for p in c.available() {
        assert!(p.has_credentials());
    }
}
