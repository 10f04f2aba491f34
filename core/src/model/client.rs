//! `model("provider/model")`: resolution through the catalogue, and the [`Model`] that sends
//! requests through an adapter and the HTTP layer.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};

use super::adapters::{Adapter, Target, adapter};
use super::catalog::{Auth, Catalog, ModelInfo, Protocol, env_prefix, fill_template};
use super::decode::{ResponseCollector, StreamDecoder, StructuredToolUnwrap};
use super::error::{ConfigError, HeaderKind, ModelError};
use super::http::{self, CallSite, HttpClient, HttpOptions};
use super::redact::{Secrets, is_sensitive_name, redact_url};
use super::types::{ApiKey, EventStream, ModelRequest, ModelResponse, StreamEvent};

/// A language model: anything that answers a [`ModelRequest`]. Object-safe, so agents and the
/// bindings can hold `Arc<dyn LanguageModel>`.
#[async_trait]
pub trait LanguageModel: Send + Sync {
    /// One complete answer.
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError>;
    /// A stream of normalized events.
    async fn stream(&self, req: &ModelRequest) -> Result<EventStream, ModelError>;
}

type EnvFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
type ClockFn = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Resolves `"provider/model"` with the catalogue and the process environment.
///
/// ```no_run
/// # async fn demo() -> Result<(), miyabi::model::ModelError> {
/// use miyabi::model::{LanguageModel, ModelRequest};
/// let m = miyabi::model("anthropic/claude-sonnet-4-5")?;
/// let answer = m.generate(&ModelRequest::user("Hello")).await?;
/// println!("{}", answer.text());
/// # Ok(()) }
/// ```
pub fn model(spec: &str) -> Result<Model, ModelError> {
    Model::builder(spec).build()
}

/// Configures a [`Model`]: explicit key, base URL override, custom providers, HTTP options.
#[derive(Clone)]
pub struct ModelBuilder {
    spec: String,
    api_key: Option<ApiKey>,
    base_url: Option<String>,
    protocol: Option<Protocol>,
    auth: Option<Auth>,
    headers: Vec<(String, String)>,
    options: HttpOptions,
    client: Option<HttpClient>,
    env: EnvFn,
    clock: Option<ClockFn>,
    #[cfg(feature = "bedrock")]
    aws_credentials: Option<super::aws::AwsCredentials>,
    google_account: Option<super::gcp::ServiceAccount>,
    azure_deployment: Option<(Option<String>, String)>,
    custom: bool,
}

impl fmt::Debug for ModelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelBuilder")
            .field("spec", &self.spec)
            .field("api_key", &self.api_key)
            .field("base_url", &self.base_url.as_deref().map(redact_url))
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl ModelBuilder {
    /// Starts from `"provider/model"`.
    pub fn new(spec: impl Into<String>) -> Self {
        Self {
            spec: spec.into(),
            api_key: None,
            base_url: None,
            protocol: None,
            auth: None,
            headers: Vec::new(),
            options: HttpOptions::default(),
            client: None,
            env: Arc::new(|k| std::env::var(k).ok()),
            clock: None,
            #[cfg(feature = "bedrock")]
            aws_credentials: None,
            google_account: None,
            azure_deployment: None,
            custom: false,
        }
    }

    /// A provider that is not in the catalogue: any base URL speaking a protocol family (a local
    /// vLLM or llama.cpp server is `Protocol::OpenAiChat`, LM Studio also `OpenAiResponses`,
    /// Ollama `Protocol::Ollama`...). Authenticates with the family's default scheme when a key
    /// is given, and sends no key otherwise.
    pub fn custom(provider: &str, model: &str, protocol: Protocol, base_url: &str) -> Self {
        let mut b = Self::new(format!("{provider}/{model}"));
        b.protocol = Some(protocol);
        b.base_url = Some(base_url.to_owned());
        b.custom = true;
        b
    }

    /// Uses this key instead of the provider's environment variable.
    pub fn api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Overrides the base URL (also possible with `<PROVIDER>_BASE_URL`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Overrides the protocol family.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Overrides how the key is sent.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Adds a header to every request (e.g. `anthropic-beta`, `OpenAI-Organization`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Timeouts and retries.
    pub fn http_options(mut self, options: HttpOptions) -> Self {
        self.options = options;
        self
    }

    /// Uses this HTTP client (and its connection pool) instead of the shared one.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.client = Some(client);
        self
    }

    /// Reads environment variables through `lookup` instead of the process environment.
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Arc::new(lookup);
        self
    }

    /// The clock used to time-stamp signed requests (AWS SigV4); the system clock by default.
    /// Tests pin it to check a signature against an independently computed one.
    pub fn clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(now));
        self
    }

    /// Signs requests with these AWS credentials (SigV4) instead of reading
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`.
    #[cfg(feature = "bedrock")]
    pub fn aws_credentials(mut self, credentials: super::aws::AwsCredentials) -> Self {
        self.aws_credentials = Some(credentials);
        self
    }

    /// Authenticates Vertex AI calls with this service account (OAuth JWT-bearer flow) instead
    /// of `GOOGLE_VERTEX_ACCESS_TOKEN` / `GOOGLE_APPLICATION_CREDENTIALS`.
    pub fn google_service_account(mut self, account: super::gcp::ServiceAccount) -> Self {
        self.google_account = Some(account);
        self
    }

    /// Azure OpenAI's deployment URLs instead of the v1 API:
    /// `{resource}/openai/deployments/{deployment}/chat/completions?api-version={api_version}`
    /// (Chat Completions protocol, `api-key` header). The deployment is the model part of the
    /// spec unless given; the resource comes from the provider's base URL
    /// (`AZURE_RESOURCE_NAME`, or `AZURE_BASE_URL` / [`base_url`](Self::base_url) with or without
    /// its `/openai/v1` suffix).
    pub fn azure_deployment(
        mut self,
        deployment: Option<&str>,
        api_version: impl Into<String>,
    ) -> Self {
        self.azure_deployment = Some((deployment.map(str::to_owned), api_version.into()));
        self
    }

    /// Resolves everything and returns the model.
    pub fn build(self) -> Result<Model, ModelError> {
        let resolved = self.resolve()?;
        let (client, options) = self.client_and_options()?;
        Ok(Model {
            inner: Arc::new(Inner {
                resolved,
                client,
                options,
            }),
        })
    }

    /// The HTTP client (the given one, or the shared pool for the connect timeout) and options.
    pub(super) fn client_and_options(self) -> Result<(HttpClient, HttpOptions), ModelError> {
        let client = match self.client {
            Some(c) => c,
            None => HttpClient::shared_with(self.options.connect_timeout)?,
        };
        Ok((client, self.options))
    }

    /// Resolves without building an HTTP client (discovery, tests).
    pub fn resolve(&self) -> Result<Resolved, ModelError> {
        let bad_spec = || ConfigError::BadSpec {
            spec: self.spec.clone(),
        };
        let (provider_id, model_id) = self.spec.split_once('/').ok_or_else(bad_spec)?;
        if provider_id.is_empty() || model_id.is_empty() {
            return Err(bad_spec().into());
        }
        let env = &*self.env;
        let catalog = Catalog::embedded();
        let provider = if self.custom {
            None
        } else {
            catalog.provider(provider_id)
        };
        if provider.is_none() && !self.custom {
            let similar: Vec<String> = catalog
                .providers()
                .iter()
                .map(|p| p.id.as_str())
                .filter(|id| id.contains(provider_id) || provider_id.contains(*id))
                .take(5)
                .map(str::to_owned)
                .collect();
            return Err(ConfigError::UnknownProvider {
                provider: provider_id.to_owned(),
                known: catalog.providers().len(),
                similar,
            }
            .into());
        }
        let info: Option<ModelInfo> = provider.and_then(|p| p.model(model_id)).cloned();
        let protocol = self
            .protocol
            .or(self.azure_deployment.as_ref().map(|_| Protocol::OpenAiChat))
            .or_else(|| info.as_ref().and_then(|m| m.protocol_override))
            .or(provider.map(|p| p.protocol))
            .unwrap_or(Protocol::OpenAiChat);

        // Base URL: builder > <PROVIDER>_BASE_URL > per-model override > provider default.
        let env_var = env_prefix(provider_id) + "_BASE_URL";
        let template = self
            .base_url
            .clone()
            .or_else(|| env(&env_var).filter(|s| !s.is_empty()))
            .or_else(|| info.as_ref().and_then(|m| m.base_url_override.clone()))
            .or_else(|| provider.and_then(|p| p.base_url.clone()));
        let Some(template) = template else {
            return Err(ConfigError::MissingBaseUrl {
                provider: provider_id.to_owned(),
                env_var,
                note: provider.and_then(|p| p.note.clone()),
            }
            .into());
        };
        let base_url =
            fill_template(&template, env).map_err(|missing| ConfigError::BaseUrlNeedsEnv {
                provider: provider_id.to_owned(),
                missing: missing.into_iter().map(Into::into).collect(),
                template: redact_url(&template),
                env_var: env_var.clone(),
            })?;
        let mut base_url = base_url.trim_end_matches('/').to_owned();
        let mut query = None;
        if let Some((deployment, api_version)) = &self.azure_deployment {
            let resource = base_url
                .strip_suffix("/openai/v1")
                .or_else(|| base_url.strip_suffix("/openai"))
                .unwrap_or(&base_url);
            let deployment = deployment.as_deref().unwrap_or(model_id);
            base_url = format!(
                "{resource}/openai/deployments/{}",
                super::adapters::encode_path_segment(deployment)
            );
            query = Some(format!(
                "api-version={}",
                super::adapters::encode_path_segment(api_version)
            ));
        }
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::BadBaseUrl {
                provider: provider_id.to_owned(),
                url: redact_url(&base_url),
            }
            .into());
        }

        // Auth: a protocol override for this model (e.g. Anthropic behind an OpenAI-compatible
        // gateway) uses that family's scheme.
        let auth = self.auth.clone().unwrap_or_else(|| match provider {
            Some(p) if p.protocol == protocol => p.auth.clone(),
            Some(p) if self.azure_deployment.is_some() && p.auth != Auth::Bearer => p.auth.clone(),
            None if self.azure_deployment.is_some() => Auth::Header("api-key".to_owned()),
            _ => protocol.default_auth(),
        });
        let key_env: Vec<String> = provider.map(|p| p.key_env.clone()).unwrap_or_default();
        let key = if auth == Auth::AwsSigV4 {
            None
        } else {
            self.api_key.clone().or_else(|| {
                key_env
                    .iter()
                    .find_map(|k| env(k).filter(|v| !v.is_empty()).map(ApiKey::new))
            })
        };
        let signer = self.signer(protocol, &auth, key.is_some(), &base_url)?;
        let google = self.google_tokens(protocol, key.is_some())?;
        let wants_sigv4 = protocol == Protocol::Bedrock || auth == Auth::AwsSigV4;
        if key.is_none()
            && signer.is_none()
            && google.is_none()
            && auth != Auth::None
            && !self.custom
            && !is_loopback(&base_url)
        {
            return Err(ConfigError::MissingKey {
                provider: provider_id.to_owned(),
                env_vars: key_env,
                sigv4: wants_sigv4 && cfg!(feature = "bedrock"),
                service_account: matches!(
                    protocol,
                    Protocol::VertexGemini | Protocol::VertexAnthropic
                ),
            }
            .into());
        }
        let secrets = self.secrets(key.as_ref(), &base_url, signer.as_deref());
        let auth = if signer.is_some() {
            Auth::AwsSigV4
        } else if google.is_some() {
            Auth::GoogleServiceAccount
        } else if key.is_some() {
            auth
        } else {
            Auth::None
        };
        Ok(Resolved {
            provider: provider_id.to_owned(),
            model: model_id.to_owned(),
            protocol,
            base_url,
            auth,
            key,
            headers: self.headers.clone(),
            info,
            signer,
            google,
            query,
            clock: self.clock.clone(),
            secrets,
        })
    }

    /// Everything this model is configured with that must never be shown: the key, the values
    /// of credential-like custom headers (`Authorization`, `x-api-key`, ...), AWS secret keys
    /// and session tokens, and the secret parts of the base URL.
    #[cfg(feature = "bedrock")]
    fn secrets(
        &self,
        key: Option<&ApiKey>,
        base_url: &str,
        signer: Option<&super::aws::SigV4Signer>,
    ) -> Secrets {
        let mut values = self.plain_secrets(key);
        if let Some(s) = signer {
            values.extend(s.credentials().secret_values());
        }
        Secrets::new(values).with_url(base_url)
    }

    #[cfg(not(feature = "bedrock"))]
    fn secrets(&self, key: Option<&ApiKey>, base_url: &str, _signer: Option<&NoSigner>) -> Secrets {
        Secrets::new(self.plain_secrets(key)).with_url(base_url)
    }

    fn plain_secrets(&self, key: Option<&ApiKey>) -> Vec<String> {
        let mut values: Vec<String> = key.map(|k| k.expose().to_owned()).into_iter().collect();
        values.extend(
            self.headers
                .iter()
                .filter(|(k, _)| is_sensitive_name(k))
                .map(|(_, v)| v.clone()),
        );
        values
    }

    /// A service-account token source for a Vertex call without an access token.
    fn google_tokens(
        &self,
        protocol: Protocol,
        has_key: bool,
    ) -> Result<Option<Arc<super::gcp::TokenSource>>, ModelError> {
        if has_key || !matches!(protocol, Protocol::VertexGemini | Protocol::VertexAnthropic) {
            return Ok(None);
        }
        let account = match &self.google_account {
            Some(a) => a.clone(),
            None => match (self.env)("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty()) {
                Some(path) => super::gcp::ServiceAccount::from_file(path)?,
                None => return Ok(None),
            },
        };
        Ok(Some(Arc::new(super::gcp::TokenSource::new(account))))
    }

    /// A SigV4 signer when the call is to be signed: auth forced to [`Auth::AwsSigV4`], or a
    /// Bedrock call without an API key and with AWS credentials available.
    #[cfg(feature = "bedrock")]
    fn signer(
        &self,
        protocol: Protocol,
        auth: &Auth,
        has_key: bool,
        base_url: &str,
    ) -> Result<Option<Arc<super::aws::SigV4Signer>>, ModelError> {
        use super::aws::{AwsCredentials, SigV4Signer, region_for};
        let forced = *auth == Auth::AwsSigV4;
        if !forced && (has_key || protocol != Protocol::Bedrock || self.custom) {
            return Ok(None);
        }
        let env = &*self.env;
        let Some(credentials) = self
            .aws_credentials
            .clone()
            .or_else(|| AwsCredentials::from_env(env))
        else {
            if forced {
                return Err(ConfigError::MissingAwsCredentials {
                    spec: self.spec.clone(),
                }
                .into());
            }
            return Ok(None);
        };
        let Some(region) = region_for(env, base_url) else {
            return Err(ConfigError::MissingAwsRegion {
                spec: self.spec.clone(),
            }
            .into());
        };
        Ok(Some(Arc::new(SigV4Signer::new(
            credentials,
            region,
            "bedrock",
        ))))
    }

    #[cfg(not(feature = "bedrock"))]
    fn signer(
        &self,
        _protocol: Protocol,
        auth: &Auth,
        _has_key: bool,
        _base_url: &str,
    ) -> Result<Option<Arc<NoSigner>>, ModelError> {
        if *auth == Auth::AwsSigV4 {
            return Err(ConfigError::SigV4Unavailable {
                spec: self.spec.clone(),
            }
            .into());
        }
        Ok(None)
    }
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host.starts_with("127.") || rest.starts_with("[::1]")
}

/// A resolved model: everything needed to call it.
#[derive(Clone)]
pub struct Resolved {
    /// Provider id.
    pub provider: String,
    /// Model id.
    pub model: String,
    /// Protocol family.
    pub protocol: Protocol,
    /// Base URL (placeholders filled, no trailing `/`).
    pub base_url: String,
    /// How the key is sent.
    pub auth: Auth,
    key: Option<ApiKey>,
    headers: Vec<(String, String)>,
    /// Catalogue facts, when the model is listed.
    pub info: Option<ModelInfo>,
    #[cfg(feature = "bedrock")]
    signer: Option<Arc<super::aws::SigV4Signer>>,
    #[cfg(not(feature = "bedrock"))]
    signer: Option<Arc<NoSigner>>,
    google: Option<Arc<super::gcp::TokenSource>>,
    /// A query string added to every request URL (Azure's `api-version`).
    query: Option<String>,
    clock: Option<ClockFn>,
    /// What is scrubbed from every error of this model.
    secrets: Secrets,
}

/// Stands in for the SigV4 signer when the `bedrock` feature is off (never constructed).
#[cfg(not(feature = "bedrock"))]
#[derive(Debug)]
enum NoSigner {}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("protocol", &self.protocol)
            .field("base_url", &self.secrets.redact(&self.base_url))
            .field("auth", &self.auth)
            .field("key", &self.key)
            .field("signed", &self.signer.is_some())
            .field("service_account", &self.google.is_some())
            .finish_non_exhaustive()
    }
}

impl Resolved {
    /// Whether a key will be sent.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// What is scrubbed from every error of this model.
    pub(super) fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    fn target(&self) -> Target {
        Target {
            provider: self.provider.clone(),
            model: self.model.clone(),
            base_url: self.base_url.clone(),
            max_output_tokens: self.info.as_ref().and_then(|m| m.max_output_tokens),
        }
    }

    pub(super) fn auth_headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, ModelError> {
        let mut out = Vec::new();
        if let Some(key) = &self.key {
            let bad = || ConfigError::KeyNotHeaderSafe {
                provider: self.provider.clone(),
            };
            match &self.auth {
                Auth::Bearer => {
                    let mut v = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                        .map_err(|_| bad())?;
                    v.set_sensitive(true);
                    out.push((AUTHORIZATION, v));
                }
                Auth::Header(name) => {
                    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                        ConfigError::BadHeaderName {
                            name: name.clone(),
                            kind: HeaderKind::Auth,
                        }
                    })?;
                    let mut v = HeaderValue::from_str(key.expose()).map_err(|_| bad())?;
                    v.set_sensitive(true);
                    out.push((n, v));
                }
                Auth::None | Auth::AwsSigV4 | Auth::GoogleServiceAccount => {}
            }
        }
        for (k, v) in &self.headers {
            let n =
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| ConfigError::BadHeaderName {
                    name: k.clone(),
                    kind: HeaderKind::Custom,
                })?;
            let mut v = HeaderValue::from_str(v).map_err(|_| ConfigError::BadHeaderValue {
                name: k.clone(),
                kind: HeaderKind::Custom,
            })?;
            if is_sensitive_name(k) {
                v.set_sensitive(true);
            }
            out.push((n, v));
        }
        Ok(out)
    }

    /// Adds the configured query string (Azure's `api-version`) to a request URL.
    pub(super) fn add_query(&self, wire: &mut http::WireRequest) {
        if let Some(q) = &self.query {
            wire.url
                .push(if wire.url.contains('?') { '&' } else { '?' });
            wire.url.push_str(q);
        }
    }

    /// The bearer header of a service-account access token, when Vertex calls use one; returns
    /// the secrets of the call (this model's, plus that token).
    async fn add_google_token(
        &self,
        client: &HttpClient,
        options: &HttpOptions,
        headers: &mut Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Secrets, ModelError> {
        let Some(source) = &self.google else {
            return Ok(self.secrets.clone());
        };
        let now = self.clock.as_ref().map_or_else(SystemTime::now, |c| c());
        let site = CallSite {
            provider: &self.provider,
            model: &self.model,
            secrets: &self.secrets,
        };
        let token = source.token(client, options, site, now).await?;
        let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| ConfigError::TokenNotHeaderSafe)?;
        v.set_sensitive(true);
        headers.push((AUTHORIZATION, v));
        Ok(self.secrets.with(token.expose()))
    }

    /// The SigV4 headers for one attempt of `req` (`None` when requests are not signed).
    fn sign_headers(
        &self,
        req: &http::WireRequest,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, ModelError> {
        #[cfg(feature = "bedrock")]
        if let Some(signer) = &self.signer {
            let now = self.clock.as_ref().map_or_else(SystemTime::now, |c| c());
            let mut headers = req.headers.clone();
            headers.extend(self.headers.iter().cloned());
            let signed = signer.sign("POST", &req.url, &headers, &req.body, now)?;
            let mut out = Vec::with_capacity(signed.len());
            for (k, v) in signed {
                let n = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                    ConfigError::BadHeaderName {
                        name: k.clone(),
                        kind: HeaderKind::Signed,
                    }
                })?;
                let mut v = HeaderValue::from_str(&v).map_err(|_| ConfigError::BadHeaderValue {
                    name: k.clone(),
                    kind: HeaderKind::Signed,
                })?;
                if n == AUTHORIZATION || n.as_str() == "x-amz-security-token" {
                    v.set_sensitive(true);
                }
                out.push((n, v));
            }
            return Ok(out);
        }
        let _ = (req, &self.clock);
        Ok(Vec::new())
    }
}

struct Inner {
    resolved: Resolved,
    client: HttpClient,
    options: HttpOptions,
}

/// A model reachable over HTTP through a protocol adapter. Cheap to clone.
#[derive(Clone)]
pub struct Model {
    inner: Arc<Inner>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("resolved", &self.inner.resolved)
            .finish()
    }
}

impl Model {
    /// A builder for `"provider/model"`.
    pub fn builder(spec: impl Into<String>) -> ModelBuilder {
        ModelBuilder::new(spec)
    }

    /// What the model resolved to.
    pub fn resolved(&self) -> &Resolved {
        &self.inner.resolved
    }

    /// `"provider/model"`.
    pub fn id(&self) -> String {
        format!(
            "{}/{}",
            self.inner.resolved.provider, self.inner.resolved.model
        )
    }

    fn adapter(&self) -> &'static dyn Adapter {
        adapter(self.inner.resolved.protocol)
    }

    fn site<'a>(&'a self, secrets: &'a Secrets) -> CallSite<'a> {
        CallSite {
            provider: &self.inner.resolved.provider,
            model: &self.inner.resolved.model,
            secrets,
        }
    }

    fn price(&self, resp: &mut ModelResponse) {
        if let Some(p) = self.inner.resolved.info.as_ref().and_then(|m| m.pricing) {
            resp.cost_usd = p.cost(&resp.usage);
        }
    }
}

#[async_trait]
impl LanguageModel for Model {
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let r = &self.inner.resolved;
        let mut secrets = r.secrets.clone();
        self.generate_with(req, &mut secrets)
            .await
            .map_err(|e| e.redacted(&secrets))
    }

    async fn stream(&self, req: &ModelRequest) -> Result<EventStream, ModelError> {
        let r = &self.inner.resolved;
        let mut secrets = r.secrets.clone();
        self.stream_with(req, &mut secrets)
            .await
            .map_err(|e| e.redacted(&secrets))
    }
}

impl Model {
    /// `generate`; `secrets` grows by the access token when one is fetched for the call.
    async fn generate_with(
        &self,
        req: &ModelRequest,
        secrets: &mut Secrets,
    ) -> Result<ModelResponse, ModelError> {
        let r = &self.inner.resolved;
        let opts = &self.inner.options;
        let adapter = self.adapter();
        let target = r.target();
        let mut wire = adapter
            .build(&target, req, false)
            .map_err(|e| e.with_target(&r.provider, &r.model))?;
        r.add_query(&mut wire);
        let mut auth = r.auth_headers()?;
        *secrets = r
            .add_google_token(&self.inner.client, &self.inner.options, &mut auth)
            .await?;
        let site = self.site(secrets);
        let deadline = deadline_after(opts.total_timeout);
        let resp = http::send(
            &self.inner.client,
            opts,
            site,
            &wire,
            http::RequestAuth {
                headers: &auth,
                sign: r
                    .signer
                    .is_some()
                    .then_some(&(|w: &http::WireRequest| r.sign_headers(w)) as _),
            },
            adapter.parse_error(),
            deadline,
        )
        .await?;
        let request_id = http::request_id(resp.headers());
        let body = http::read_body(resp, opts, site, deadline).await?;
        let mut out = adapter
            .parse_response(&target, &body)
            .map_err(|e| with_request_id(e.with_target(&r.provider, &r.model), &request_id))?;
        if req.response_format.is_some() && !adapter.native_structured_output() {
            StructuredToolUnwrap::apply_response(&mut out);
        }
        out.request_id = request_id;
        self.price(&mut out);
        tracing::debug!(provider = %r.provider, model = %r.model, input = out.usage.input_tokens, output = out.usage.output_tokens, "model response");
        Ok(out)
    }

    /// `stream`; `secrets` grows by the access token when one is fetched for the call.
    async fn stream_with(
        &self,
        req: &ModelRequest,
        secrets: &mut Secrets,
    ) -> Result<EventStream, ModelError> {
        let r = &self.inner.resolved;
        let opts = self.inner.options.clone();
        let adapter = self.adapter();
        let target = r.target();
        let mut wire = adapter
            .build(&target, req, true)
            .map_err(|e| e.with_target(&r.provider, &r.model))?;
        r.add_query(&mut wire);
        let mut auth = r.auth_headers()?;
        *secrets = r
            .add_google_token(&self.inner.client, &self.inner.options, &mut auth)
            .await?;
        let deadline = deadline_after(opts.total_timeout);
        let resp = http::send(
            &self.inner.client,
            &opts,
            self.site(secrets),
            &wire,
            http::RequestAuth {
                headers: &auth,
                sign: r
                    .signer
                    .is_some()
                    .then_some(&(|w: &http::WireRequest| r.sign_headers(w)) as _),
            },
            adapter.parse_error(),
            deadline,
        )
        .await?;
        let request_id = http::request_id(resp.headers());
        let state = StreamState {
            body: Box::pin(resp.bytes_stream()),
            decoder: adapter.decoder(&target, req.include_raw_events),
            pending: VecDeque::new(),
            scratch: Vec::new(),
            unwrap: (req.response_format.is_some() && !adapter.native_structured_output())
                .then(StructuredToolUnwrap::default),
            provider: r.provider.clone(),
            model: r.model.clone(),
            request_id,
            options: opts,
            deadline,
            done: false,
            pending_error: None,
            secrets: secrets.clone(),
            pricing: r.info.as_ref().and_then(|m| m.pricing),
        };
        Ok(Box::pin(futures::stream::unfold(
            state,
            |mut s| async move {
                let item = s.next_event().await?;
                Some((item, s))
            },
        )))
    }
}

/// `now + after`, or a point far in the future when that cannot be represented.
pub(crate) fn deadline_after(after: std::time::Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

fn with_request_id(mut e: ModelError, id: &Option<String>) -> ModelError {
    let ctx = match &mut e {
        ModelError::Auth(c)
        | ModelError::ContextLength(c)
        | ModelError::InvalidRequest(c)
        | ModelError::ContentFiltered(c)
        | ModelError::Server(c)
        | ModelError::Network(c)
        | ModelError::Decode(c) => Some(c),
        ModelError::RateLimited { ctx, .. } | ModelError::Timeout { ctx, .. } => Some(ctx),
        _ => None,
    };
    if let Some(c) = ctx
        && c.request_id.is_none()
    {
        c.request_id.clone_from(id);
    }
    e
}

type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send>>;

struct StreamState {
    body: ByteStream,
    decoder: Box<dyn StreamDecoder>,
    pending: VecDeque<StreamEvent>,
    scratch: Vec<StreamEvent>,
    unwrap: Option<StructuredToolUnwrap>,
    provider: String,
    model: String,
    request_id: Option<String>,
    options: HttpOptions,
    deadline: Instant,
    done: bool,
    pending_error: Option<ModelError>,
    /// Scrubbed from every error of the stream.
    secrets: Secrets,
    /// The model's prices: a `Cost` event follows every `Usage` event.
    pricing: Option<super::catalog::Pricing>,
}

impl StreamState {
    /// The next event; `None` once the stream is over. Never retries: the first byte of the
    /// answer has been delivered, so a retry could re-run (and re-bill) the generation.
    async fn next_event(&mut self) -> Option<Result<StreamEvent, ModelError>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some(Ok(ev));
            }
            if let Some(e) = self.pending_error.take() {
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            let site = CallSite {
                provider: &self.provider,
                model: &self.model,
                secrets: &self.secrets,
            };
            let chunk =
                match http::next_chunk(&mut self.body, &self.options, site, self.deadline).await {
                    Ok(c) => c,
                    Err(e) => {
                        self.done = true;
                        // The body broke off: calls still open stay unfinished (no
                        // `ToolCallEnd`), the error says the stream ended early.
                        let e = match e {
                            ModelError::Network(mut c) => {
                                c.message = format!("stream ended early: {}", c.message);
                                ModelError::Network(c)
                            }
                            other => other,
                        };
                        return Some(Err(
                            with_request_id(e, &self.request_id).redacted(&self.secrets)
                        ));
                    }
                };
            let result = match &chunk {
                Some(bytes) => self.decoder.feed(bytes, &mut self.scratch),
                None => {
                    self.done = true;
                    self.decoder.finish(&mut self.scratch)
                }
            };
            if let Some(u) = &mut self.unwrap {
                u.apply(&mut self.scratch);
            }
            let finished = self
                .scratch
                .iter()
                .any(|e| matches!(e, StreamEvent::Finish { .. }));
            for mut ev in self.scratch.drain(..) {
                // Raw provider events (opt-in) may carry an echoed key, like error events.
                if let StreamEvent::Raw { data, .. } = &mut ev {
                    self.secrets.redact_json(data);
                }
                // The same price `generate` puts on its response, after each usage report.
                let cost = match (&ev, &self.pricing) {
                    (StreamEvent::Usage { usage }, Some(p)) => p.cost(usage),
                    _ => None,
                };
                self.pending.push_back(ev);
                if let Some(usd) = cost {
                    self.pending.push_back(StreamEvent::Cost { usd });
                }
            }
            if finished {
                // The provider said it is done; do not wait for the socket to close.
                self.done = true;
            }
            if let Err(e) = result {
                self.done = true;
                let e =
                    with_request_id(e.with_target(&self.provider, &self.model), &self.request_id)
                        .redacted(&self.secrets);
                if self.pending.is_empty() {
                    return Some(Err(e));
                }
                // Deliver the events decoded before the error, then the error.
                self.pending_error = Some(e);
            }
        }
    }
}

/// Collects a stream into a response (what `generate` would have returned).
pub async fn collect_stream(mut stream: EventStream) -> Result<ModelResponse, ModelError> {
    let mut c = ResponseCollector::new();
    while let Some(ev) = stream.next().await {
        c.push(ev?);
    }
    if !c.finished() {
        return Err(ModelError::decode(
            "",
            "",
            "stream ended without a finish event",
        ));
    }
    Ok(c.into_response())
}
