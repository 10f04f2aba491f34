//! Google service-account credentials for Vertex AI: the OAuth 2.0 JWT-bearer flow. Miyabi signs
//! an RS256 JWT with the service account's private key (`ring`, already used by the TLS stack),
//! posts it to the account's token URL and caches the access token until shortly before it
//! expires.
//!
//! Credentials come from `GOOGLE_APPLICATION_CREDENTIALS` (the path of a service-account JSON
//! key file) or [`ModelBuilder::google_service_account`](super::ModelBuilder::google_service_account);
//! an access token in `GOOGLE_VERTEX_ACCESS_TOKEN` takes precedence.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ConfigError, ErrorContext, ModelError};
use super::http::{self, CallSite, HttpClient, HttpOptions, ParsedError, WireRequest};
use super::types::ApiKey;

/// The OAuth scope requested for Vertex AI.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime asked for in the JWT (Google's maximum).
const ASSERTION_LIFETIME: u64 = 3600;
/// A cached token is renewed this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Longest token lifetime believed (`expires_in` is capped to this).
const MAX_TOKEN_LIFETIME: u64 = 86_400;

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// A service account's key: its e-mail, private key (printed as `[redacted]`), key id and token
/// URL.
#[derive(Clone)]
pub struct ServiceAccount {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: String,
    key: Arc<ring::signature::RsaKeyPair>,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

fn config(msg: impl fmt::Display) -> ModelError {
    ConfigError::GoogleCredentials {
        reason: msg.to_string(),
    }
    .into()
}

/// The DER bytes of the first PEM block (`PRIVATE KEY` = PKCS#8, `RSA PRIVATE KEY` = PKCS#1).
fn pem_der(pem: &str) -> Result<(bool, Vec<u8>), ModelError> {
    let begin = pem
        .find("-----BEGIN ")
        .ok_or_else(|| config("private_key is not PEM"))?;
    let rest = &pem[begin + 11..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| config("private_key is not PEM"))?;
    let label = &rest[..label_end];
    let body = &rest[label_end + 5..];
    let end = body
        .find("-----END ")
        .ok_or_else(|| config("private_key has no END line"))?;
    let b64: String = body[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| config(format!("private_key is not valid base64: {e}")))?;
    match label {
        "PRIVATE KEY" => Ok((true, der)),
        "RSA PRIVATE KEY" => Ok((false, der)),
        other => Err(config(format!(
            "private_key is a {other:?} block, not an RSA private key"
        ))),
    }
}

impl ServiceAccount {
    /// Parses a service-account JSON key (the file Google Cloud hands out).
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let f: KeyFile =
            serde_json::from_str(text).map_err(|e| config(format!("not a JSON key file: {e}")))?;
        if let Some(kind) = f.kind.as_deref()
            && kind != "service_account"
        {
            return Err(config(format!(
                "type {kind:?} is not supported (only \"service_account\" keys); pass an access token in GOOGLE_VERTEX_ACCESS_TOKEN instead (e.g. `gcloud auth print-access-token`)"
            )));
        }
        let client_email = f
            .client_email
            .ok_or_else(|| config("client_email is missing"))?;
        let pem = f
            .private_key
            .ok_or_else(|| config("private_key is missing"))?;
        let (pkcs8, der) = pem_der(&pem)?;
        let key = if pkcs8 {
            ring::signature::RsaKeyPair::from_pkcs8(&der)
        } else {
            ring::signature::RsaKeyPair::from_der(&der)
        }
        .map_err(|e| config(format!("private_key rejected: {e}")))?;
        Ok(Self {
            client_email,
            private_key_id: f.private_key_id,
            token_uri: f.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned()),
            key: Arc::new(key),
        })
    }

    /// Reads a service-account JSON key file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, ModelError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_json(&text)
    }

    /// The account's e-mail (the JWT issuer).
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// Where the JWT is exchanged for an access token.
    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The signed JWT assertion for `scope`, issued at `now` (seconds since the epoch).
    pub fn assertion(&self, scope: &str, now: u64) -> Result<String, ModelError> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        let mut signing_input = b64.encode(header.to_string());
        signing_input.push('.');
        signing_input.push_str(&b64.encode(claims.to_string()));
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| config("RS256 signing failed"))?;
        signing_input.push('.');
        signing_input.push_str(&b64.encode(signature));
        Ok(signing_input)
    }
}

/// `application/x-www-form-urlencoded` value encoding.
fn form_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse_token_error(body: &[u8]) -> ParsedError {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return ParsedError::default();
    };
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    ParsedError {
        message: text("error_description").or_else(|| text("error")),
        code: text("error"),
        ..ParsedError::default()
    }
}

/// Access tokens for a service account, fetched on demand and cached.
pub(crate) struct TokenSource {
    account: ServiceAccount,
    scope: String,
    cached: tokio::sync::Mutex<Option<(ApiKey, Instant)>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("account", &self.account.client_email)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub(crate) fn new(account: ServiceAccount) -> Self {
        Self {
            account,
            scope: CLOUD_PLATFORM_SCOPE.to_owned(),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A valid access token: the cached one, or a new one from the token URL.
    pub(crate) async fn token(
        &self,
        client: &HttpClient,
        options: &HttpOptions,
        site: CallSite<'_>,
        now: SystemTime,
    ) -> Result<ApiKey, ModelError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() + REFRESH_MARGIN < *until
        {
            return Ok(token.clone());
        }
        let unix = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| config("the clock is before 1970"))?
            .as_secs();
        let assertion = self.account.assertion(&self.scope, unix)?;
        let body = format!(
            "grant_type={}&assertion={}",
            form_value(GRANT_TYPE),
            form_value(&assertion)
        );
        let wire = WireRequest {
            url: self.account.token_uri.clone(),
            headers: vec![(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            )],
            body: bytes::Bytes::from(body),
        };
        let deadline = super::call::deadline_after(options.total_timeout);
        // The assertion is a credential too (it can be exchanged for tokens for an hour).
        let secrets = site.secrets.with(&assertion);
        let site = CallSite {
            secrets: &secrets,
            ..site
        };
        let token_err = |e: ModelError| -> ModelError {
            match e {
                ModelError::InvalidRequest(ctx) | ModelError::Auth(ctx) => {
                    ModelError::Auth(Box::new(ErrorContext {
                        message: format!("service-account token exchange failed: {}", ctx.message),
                        ..*ctx
                    }))
                }
                other => other,
            }
        };
        let resp = http::send(
            client,
            options,
            site,
            &wire,
            http::RequestAuth {
                headers: &[],
                sign: None,
            },
            parse_token_error,
            deadline,
        )
        .await
        .map_err(token_err)?;
        let body = http::read_body(resp, options, site, deadline)
            .await
            .map_err(|e| e.redacted(&secrets))?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            ModelError::decode(
                site.provider,
                site.model,
                format!("bad token response JSON: {e}"),
            )
        })?;
        let Some(token) = v["access_token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(ModelError::decode(
                site.provider,
                site.model,
                "token response has no access_token",
            ));
        };
        // A hostile or broken token server cannot make us overflow: the lifetime is capped at a
        // day (Google's tokens live an hour).
        let ttl = v["expires_in"]
            .as_u64()
            .unwrap_or(3600)
            .min(MAX_TOKEN_LIFETIME);
        let token = ApiKey::new(token);
        let now = Instant::now();
        let until = now.checked_add(Duration::from_secs(ttl)).unwrap_or(now);
        *cached = Some((token.clone(), until));
        Ok(token)
    }
}
