//! AWS Signature Version 4 for Amazon Bedrock (feature `bedrock`, on by default), using the
//! `aws-sigv4` crate for the canonical request, the string to sign and the signature.
//!
//! Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for temporary
//! credentials, `AWS_SESSION_TOKEN`; the region from `AWS_REGION`, `AWS_DEFAULT_REGION` or the
//! `bedrock-runtime.<region>.amazonaws.com` host. A Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`)
//! takes precedence and is sent as a bearer token without signing.

use std::fmt;
use std::time::SystemTime;

use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use super::error::{ConfigError, ModelError};
use super::types::ApiKey;

/// AWS credentials: an access key pair and, for temporary credentials, a session token. The
/// secret parts print as `[redacted]`.
#[derive(Clone)]
pub struct AwsCredentials {
    access_key_id: String,
    secret_access_key: ApiKey,
    session_token: Option<ApiKey>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

impl AwsCredentials {
    /// Credentials from explicit values.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: ApiKey::new(secret_access_key),
            session_token: session_token.filter(|t| !t.is_empty()).map(ApiKey::new),
        }
    }

    /// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`) through `env`;
    /// `None` unless both keys are set and non-empty.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        Some(Self::new(
            get("AWS_ACCESS_KEY_ID")?,
            get("AWS_SECRET_ACCESS_KEY")?,
            get("AWS_SESSION_TOKEN"),
        ))
    }

    /// The access key id (not a secret).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Whether a session token is present.
    pub fn has_session_token(&self) -> bool {
        self.session_token.is_some()
    }

    /// The secret parts (secret access key, session token), to scrub from errors.
    pub(crate) fn secret_values(&self) -> Vec<String> {
        let mut out = vec![self.secret_access_key.expose().to_owned()];
        if let Some(t) = &self.session_token {
            out.push(t.expose().to_owned());
        }
        out
    }
}

/// The region for a Bedrock call: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then the region in a
/// `bedrock-runtime.<region>.amazonaws.com` base URL.
pub fn region_for(env: &dyn Fn(&str) -> Option<String>, base_url: &str) -> Option<String> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    get("AWS_REGION")
        .or_else(|| get("AWS_DEFAULT_REGION"))
        .or_else(|| {
            let host = base_url.split_once("://")?.1.split(['/', ':']).next()?;
            let rest = host.strip_prefix("bedrock-runtime.")?;
            let (region, _) = rest.split_once('.')?;
            (!region.is_empty()).then(|| region.to_owned())
        })
}

/// Signs requests with AWS Signature Version 4 (headers, `AWS4-HMAC-SHA256`).
#[derive(Clone, Debug)]
pub struct SigV4Signer {
    credentials: AwsCredentials,
    region: String,
    service: String,
    content_sha256: bool,
}

impl SigV4Signer {
    /// A signer for `service` (`bedrock` for the Bedrock runtime) in `region`. By default it adds
    /// `x-amz-content-sha256` (the hex SHA-256 of the body) to the signed headers.
    pub fn new(
        credentials: AwsCredentials,
        region: impl Into<String>,
        service: impl Into<String>,
    ) -> Self {
        Self {
            credentials,
            region: region.into(),
            service: service.into(),
            content_sha256: true,
        }
    }

    /// Whether to add and sign `x-amz-content-sha256`.
    pub fn with_content_sha256(mut self, on: bool) -> Self {
        self.content_sha256 = on;
        self
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The credentials requests are signed with.
    pub(crate) fn credentials(&self) -> &AwsCredentials {
        &self.credentials
    }

    /// The headers to add to a request so that it is signed at `time`: `authorization`,
    /// `x-amz-date`, and `x-amz-content-sha256` / `x-amz-security-token` where they apply.
    /// `headers` are the request's other headers, all of which are signed (the `host` header is
    /// taken from the URL unless given).
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        time: SystemTime,
    ) -> Result<Vec<(String, String)>, ModelError> {
        let bad = |what: &str, e: &dyn std::error::Error| {
            ModelError::from(ConfigError::AwsSigning {
                reason: format!("{what}: {e}"),
            })
        };
        // aws-sigv4 requires a URI with a host; say so instead of letting it fail later.
        let parsed = reqwest::Url::parse(url).map_err(|e| bad("URL", &e))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::AwsSigning {
                reason: format!("URL {url:?} has no host"),
            }
            .into());
        }
        let identity: Identity = aws_credential_types::Credentials::new(
            self.credentials.access_key_id.clone(),
            self.credentials.secret_access_key.expose().to_owned(),
            self.credentials
                .session_token
                .as_ref()
                .map(|t| t.expose().to_owned()),
            None,
            "miyabi",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = if self.content_sha256 {
            PayloadChecksumKind::XAmzSha256
        } else {
            PayloadChecksumKind::NoHeader
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| bad("parameters", &e))?
            .into();
        let request = SignableRequest::new(
            method,
            url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| bad("request", &e))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| bad("signature", &e))?
            .into_parts();
        let (signed, _params) = instructions.into_parts();
        Ok(signed
            .into_iter()
            .map(|h| (h.name().to_owned(), h.value().to_owned()))
            .collect())
    }
}
