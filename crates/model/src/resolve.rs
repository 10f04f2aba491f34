//! Spec resolution and provider configuration: `model("provider/model")`, the [`ModelBuilder`]
//! and what a model resolves to ([`Resolved`]: protocol, base URL, auth scheme, key, signer,
//! service account, the secrets scrubbed from its errors), through the catalogue and the
//! environment.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use super::adapters::Target;
use super::call::Model;
use super::catalog::{Auth, Catalog, ModelInfo, Protocol, env_prefix, fill_template};
use super::error::{ConfigError, ModelError};
use super::http::{HttpClient, HttpOptions};
use super::redact::{Secrets, is_sensitive_name, redact_url};
use super::types::ApiKey;

type EnvFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;
type ClockFn = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Resolves `"provider/model"` with the catalogue and the process environment.
///
/// ```no_run
/// # async fn demo() -> Result<(), miyabi_model::ModelError> {
/// use miyabi_model::{LanguageModel, ModelRequest};
/// let m = miyabi_model::model("anthropic/claude-sonnet-4-5")?;
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
        Ok(Model::new(resolved, client, options))
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
                missing,
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
    pub(super) key: Option<ApiKey>,
    pub(super) headers: Vec<(String, String)>,
    /// Catalogue facts, when the model is listed.
    pub info: Option<ModelInfo>,
    #[cfg(feature = "bedrock")]
    pub(super) signer: Option<Arc<super::aws::SigV4Signer>>,
    #[cfg(not(feature = "bedrock"))]
    pub(super) signer: Option<Arc<NoSigner>>,
    pub(super) google: Option<Arc<super::gcp::TokenSource>>,
    /// A query string added to every request URL (Azure's `api-version`).
    pub(super) query: Option<String>,
    pub(super) clock: Option<ClockFn>,
    /// What is scrubbed from every error of this model.
    pub(super) secrets: Secrets,
}

/// Stands in for the SigV4 signer when the `bedrock` feature is off (never constructed).
#[cfg(not(feature = "bedrock"))]
#[derive(Debug)]
pub(super) enum NoSigner {}

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

    /// Where the adapter sends the request.
    pub(super) fn target(&self) -> Target {
        Target {
            provider: self.provider.clone(),
            model: self.model.clone(),
            base_url: self.base_url.clone(),
            max_output_tokens: self.info.as_ref().and_then(|m| m.max_output_tokens),
        }
    }
}
