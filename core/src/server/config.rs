//! Server configuration: bearer tokens and their identities, CORS, the body limit.

use std::sync::Arc;
use std::time::Duration;

use ring::digest;

use super::{ExternalDriver, ServerError};
use crate::approval::Approver;

/// A token kept only as its SHA-256 digest, so the configuration never holds (or prints) it.
#[derive(Clone)]
pub(crate) struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub(crate) fn of(token: &str) -> Self {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// Constant-time comparison: every byte is looked at whatever the first difference.
    pub(crate) fn matches(&self, other: &TokenDigest) -> bool {
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

/// How a server built by [`router`](super::router) or [`serve`](super::serve) behaves.
///
/// ```
/// use miyabi::approval::Approver;
/// use miyabi::server::ServerConfig;
/// let config = ServerConfig::new()
///     .token("a-long-random-secret", Approver::new("alice").teams(["leads"]))
///     .cors(["http://localhost:5173"])
///     .body_limit(256 * 1024);
/// assert!(!format!("{config:?}").contains("a-long-random-secret"));
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    pub(crate) tokens: Vec<(TokenDigest, Approver)>,
    pub(crate) cors: Option<Vec<String>>,
    pub(crate) body_limit: usize,
    pub(crate) poll: Duration,
    /// Drives runs of workflows with steps outside Rust (none: such requests are refused).
    pub(crate) driver: Option<Arc<dyn ExternalDriver>>,
    pub(crate) extra: Option<axum::Router>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Identities only: tokens are secrets.
        let who: Vec<&str> = self.tokens.iter().map(|(_, i)| i.id.as_str()).collect();
        f.debug_struct("ServerConfig")
            .field("identities", &who)
            .field("cors", &self.cors)
            .field("body_limit", &self.body_limit)
            .field("external_driver", &self.driver.is_some())
            .field("protected_routes", &self.extra.is_some())
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

impl ServerConfig {
    /// No tokens (every authenticated route answers 401 until one is added; [`serve`](super::serve)
    /// generates one), CORS off, 1 MiB body limit.
    pub fn new() -> Self {
        Self {
            tokens: Vec::new(),
            cors: None,
            body_limit: DEFAULT_BODY_LIMIT,
            poll: Duration::from_millis(500),
            driver: None,
            extra: None,
        }
    }

    /// Reads tokens from `MIYABI_TOKENS` (see [`ServerConfig::tokens_from_str`]); no tokens
    /// when the variable is unset or empty.
    pub fn from_env() -> Result<Self, ServerError> {
        let mut c = Self::new();
        if let Ok(v) = std::env::var("MIYABI_TOKENS") {
            c = c.tokens_from_str(&v)?;
        }
        Ok(c)
    }

    /// Adds tokens in the `MIYABI_TOKENS` format: entries `id[:team,team]=TOKEN` separated by
    /// `;` (`alice:leads,ops=s3cret;bob=t0ken`). Errors name the entry's position, never its
    /// token.
    pub fn tokens_from_str(mut self, spec: &str) -> Result<Self, ServerError> {
        for (n, entry) in spec.split(';').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let bad = |reason: &str| ServerError::Tokens {
                entry: n + 1,
                reason: reason.to_string(),
            };
            let (who, token) = entry
                .split_once('=')
                .ok_or_else(|| bad("expected `id[:team,...]=TOKEN`"))?;
            let (id, teams) = match who.split_once(':') {
                Some((id, teams)) => (id.trim(), teams),
                None => (who.trim(), ""),
            };
            if id.is_empty() {
                return Err(bad("the identity id is empty"));
            }
            if token.trim().len() < 8 {
                return Err(bad("the token is shorter than 8 characters"));
            }
            let teams = teams
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            self = self.token(token.trim(), Approver::new(id).teams(teams));
        }
        Ok(self)
    }

    /// Accepts `token` as a bearer token for `identity`.
    pub fn token(mut self, token: impl AsRef<str>, identity: Approver) -> Self {
        self.tokens
            .push((TokenDigest::of(token.as_ref()), identity));
        self
    }

    /// Whether any token is configured.
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Allows cross-origin requests from these origins (`https://ops.example.com`); CORS is off
    /// otherwise.
    pub fn cors<I, T>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.cors = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// The largest request body accepted, in bytes (default 1 MiB); larger ones get 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How often streams of runs driven elsewhere (another process, or a suspended run) and
    /// the WebSocket run-list feed look at the store (default 500 ms).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(10));
        self
    }

    /// Hands runs of workflows whose steps run outside Rust (graphs with
    /// [`Node::external`](crate::Node::external) nodes) to `driver`: starting them, resuming
    /// them and delivering their approval decisions through the API. Without one, the API
    /// refuses to start or resume such runs (409, before anything is written); see
    /// [`ExternalDriver`].
    pub fn external_driver(mut self, driver: Arc<dyn ExternalDriver>) -> Self {
        self.driver = Some(driver);
        self
    }

    /// The identity a presented token belongs to, comparing against every token in constant
    /// time.
    /// Serves `routes` next to the API, behind the same bearer authentication: a request
    /// without a valid token gets 401, and a handler finds the caller's
    /// [`Approver`] in the request's extensions. For endpoints that live outside this crate,
    /// such as the MCP endpoint of `miyabi-mcp`. The routes must not overlap the API's.
    pub fn protected_routes(mut self, routes: axum::Router) -> Self {
        self.extra = Some(match self.extra.take() {
            Some(r) => r.merge(routes),
            None => routes,
        });
        self
    }

    pub(crate) fn identify(&self, presented: &str) -> Option<&Approver> {
        let d = TokenDigest::of(presented);
        let mut found = None;
        for (t, who) in &self.tokens {
            if t.matches(&d) && found.is_none() {
                found = Some(who);
            }
        }
        found
    }
}

/// A random token: 32 bytes from the operating system's generator, as 64 hex digits.
pub fn generate_token() -> Result<String, ServerError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ServerError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
