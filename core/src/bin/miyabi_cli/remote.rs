//! `--server URL`: the commands as a client of a running `miyabi serve`, so the server's
//! access control applies (roles, scopes, audit as the token's identity) instead of whoever can
//! open the database file being its admin.

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::CliError;

/// A `miyabi serve` reached over HTTP with a bearer token.
pub(crate) struct Remote {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    /// `server`: the server's base URL (`http://host:7420`).
    pub(crate) fn new(server: &str, token: Option<String>) -> Result<Self, CliError> {
        let base = Url::parse(server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "--server `{server}` is not an http(s) URL (e.g. http://127.0.0.1:7420)"
                ))
            })?;
        // reqwest is built without a default TLS provider (docs/models.md); install ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| CliError::Http {
                server: base.to_string(),
                message: e.to_string(),
            })?;
        Ok(Self { base, token, http })
    }

    /// The URL of `segments` under the base (each segment percent-encoded, so a gate path
    /// such as `checks/security` stays one segment) with `query`.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        url
    }

    /// One API call; the body of a 2xx answer, or the server's error (`{"error": {code,
    /// message}}`) with its HTTP status.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<T, CliError> {
        let url = self.url(segments, query);
        let server = || self.base.to_string();
        let mut req = self.http.request(method, url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let res = req.send().await.map_err(|e| CliError::Http {
            server: server(),
            message: error_chain(&e),
        })?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| CliError::Http {
            server: server(),
            message: error_chain(&e),
        })?;
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let field = |k: &str| v["error"][k].as_str().map(str::to_owned);
            return Err(CliError::Remote {
                status: status.as_u16(),
                code: field("code").unwrap_or_else(|| "ENGINE".into()),
                message: field("message")
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned()),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| CliError::Http {
            server: server(),
            message: format!("the answer is not what `miyabi` expects: {e}"),
        })
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        self.call(Method::GET, segments, query, None).await
    }

    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: Value,
    ) -> Result<T, CliError> {
        self.call(Method::POST, segments, &[], Some(body)).await
    }

    /// Checks that the token is `who`'s: `--as` names who the user means to act as, and the
    /// server knows who the token is.
    pub(crate) async fn check_identity(&self, who: &str) -> Result<(), CliError> {
        let me: Value = self.get(&["api", "me"], &[]).await?;
        match me["id"].as_str() {
            Some(id) if id == who => Ok(()),
            Some(id) => Err(CliError::Usage(format!(
                "--as `{who}`, but the token is `{id}`'s (with --server the token decides who acts)"
            ))),
            None => Err(CliError::Usage(format!(
                "the server did not say whose the token is: {}",
                json!(me)
            ))),
        }
    }
}

/// An error with its sources, without repeating a source the message already contains.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
