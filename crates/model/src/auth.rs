//! Request signing and auth headers: the key's header, custom headers, a Vertex service
//! account's access token, Azure's query string and AWS SigV4 signatures, for one call of a
//! [`Resolved`] model.

use std::time::SystemTime;

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};

use super::catalog::Auth;
use super::error::{ConfigError, HeaderKind, ModelError};
use super::http::{self, CallSite, HttpClient, HttpOptions};
use super::redact::{Secrets, is_sensitive_name};
use super::resolve::Resolved;

impl Resolved {
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
    pub(super) async fn add_google_token(
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
    pub(super) fn sign_headers(
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
