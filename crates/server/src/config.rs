//! Server configuration: bearer tokens and their identities, CORS, the body limit.

use std::sync::Arc;
use std::time::Duration;

use ring::digest;

use super::access::{AccessFile, Identity, JwtConfig, JwtVerifier, Scope, Verifier};
use super::{EvalComparer, ExternalDriver, ServerError};
use crate::approval::Approver;

/// A token kept only as its SHA-256 digest, so the configuration never holds (or prints) it.
#[derive(Clone)]
pub(crate) struct TokenDigest(pub(crate) [u8; 32]);

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
/// use miyabi_engine::approval::Approver;
/// use miyabi_server::ServerConfig;
/// let config = ServerConfig::new()
///     .token("a-long-random-secret", Approver::new("alice").teams(["leads"]))
///     .cors(["http://localhost:5173"])
///     .body_limit(256 * 1024);
/// assert!(!format!("{config:?}").contains("a-long-random-secret"));
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    pub(crate) tokens: Vec<(TokenDigest, Identity)>,
    pub(crate) jwt: Option<Verifier>,
    pub(crate) cors: Option<Vec<String>>,
    pub(crate) body_limit: usize,
    pub(crate) poll: Duration,
    /// Drives runs of workflows with steps outside Rust (none: such requests are refused).
    pub(crate) driver: Option<Arc<dyn ExternalDriver>>,
    pub(crate) extra: Option<axum::Router>,
    /// Routes behind authentication only, applying roles and scopes themselves.
    pub(crate) extra_authenticated: Option<axum::Router>,
    /// Compares eval runs for `GET /api/evals/compare` (none: that endpoint is unsupported).
    pub(crate) eval_comparer: Option<Arc<dyn EvalComparer>>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Identities only: tokens are secrets.
        let who: Vec<&str> = self.tokens.iter().map(|(_, i)| i.id()).collect();
        f.debug_struct("ServerConfig")
            .field("identities", &who)
            .field("jwt", &self.jwt)
            .field("cors", &self.cors)
            .field("body_limit", &self.body_limit)
            .field("external_driver", &self.driver.is_some())
            .field("protected_routes", &self.extra.is_some())
            .field("authenticated_routes", &self.extra_authenticated.is_some())
            .field("eval_comparer", &self.eval_comparer.is_some())
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
            jwt: None,
            cors: None,
            body_limit: DEFAULT_BODY_LIMIT,
            poll: Duration::from_millis(500),
            driver: None,
            extra: None,
            extra_authenticated: None,
            eval_comparer: None,
        }
    }

    /// Reads the access configuration from the environment (docs/server.md, Access control):
    ///
    /// - `MIYABI_ACCESS_FILE`: an access file ([`ServerConfig::access_file`]);
    /// - `MIYABI_TOKENS`: tokens (see [`ServerConfig::tokens_from_str`]), admins unless
    /// - `MIYABI_ROLES` (`alice=operator,approver;bob=viewer`) gives an identity's roles, and
    /// - `MIYABI_SCOPES` (`alice=billing.*,deploy`) limits it to some workflows;
    /// - `MIYABI_JWT_ISSUER`, `MIYABI_JWT_AUDIENCE` with `MIYABI_JWKS_URL` or
    ///   `MIYABI_JWKS_FILE`: JWTs from an identity provider ([`JwtConfig`], default claims).
    ///
    /// Nothing is configured when none is set. The same token for two identities is an error.
    pub fn from_env() -> Result<Self, ServerError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut c = Self::new();
        if let Some(path) = var("MIYABI_ACCESS_FILE") {
            c = c.access_file(path)?;
        }
        if let Some(v) = var("MIYABI_TOKENS") {
            let roles = var("MIYABI_ROLES").unwrap_or_default();
            let scopes = var("MIYABI_SCOPES").unwrap_or_default();
            c = c.tokens_with_access(&v, &roles, &scopes)?;
        } else if var("MIYABI_ROLES").is_some() || var("MIYABI_SCOPES").is_some() {
            return Err(ServerError::Access {
                place: "MIYABI_ROLES/MIYABI_SCOPES".into(),
                reason: "set without MIYABI_TOKENS".into(),
            });
        }
        match (var("MIYABI_JWT_ISSUER"), var("MIYABI_JWT_AUDIENCE")) {
            (Some(iss), Some(aud)) => {
                let mut jwt = JwtConfig::new(iss, aud);
                if let Some(u) = var("MIYABI_JWKS_URL") {
                    jwt = jwt.jwks_url(u);
                } else if let Some(f) = var("MIYABI_JWKS_FILE") {
                    jwt = jwt.jwks_file(f);
                }
                c = c.jwt(jwt)?;
            }
            (None, None) => {}
            _ => {
                return Err(ServerError::Access {
                    place: "MIYABI_JWT_ISSUER/MIYABI_JWT_AUDIENCE".into(),
                    reason: "both are needed to accept JWTs".into(),
                });
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Adds the identities (and JWT configuration) of an access file, TOML:
    ///
    /// ```toml
    /// [[identity]]
    /// id = "carol"
    /// teams = ["payments"]
    /// roles = ["operator", "approver"]
    /// workflows = ["billing.*"]          # omitted: every workflow
    /// token_env = "CAROL_TOKEN"          # the variable holding the token, or:
    /// # token_sha256 = "<64 hex digits>" # the token's SHA-256 (the file holds no secret)
    ///
    /// [jwt]
    /// issuer = "https://idp.example.com/"
    /// audience = "miyabi"
    /// jwks_url = "https://idp.example.com/.well-known/jwks.json"   # or jwks_file = "jwks.json"
    /// roles_claim = "miyabi_roles"      # defaults: id_claim "sub", roles_claim "roles",
    ///                                   # teams_claim "groups", workflows_claim "workflows"
    /// ```
    ///
    /// Roles are required for every identity; errors name the file and the identity, never a
    /// token.
    pub fn access_file(mut self, path: impl AsRef<std::path::Path>) -> Result<Self, ServerError> {
        let path = path.as_ref();
        let file = AccessFile::read(path)?;
        for (n, entry) in file.identity.into_iter().enumerate() {
            let place = format!("{} identity {} (`{}`)", path.display(), n + 1, entry.id);
            if entry.id.trim().is_empty() {
                return Err(ServerError::Access {
                    place,
                    reason: "the identity id is empty".into(),
                });
            }
            let roles = super::access::parse_roles(&place, &entry.roles)?;
            let mut identity = Identity::new(entry.id.trim())
                .teams(entry.teams)
                .roles(roles);
            if let Some(w) = entry.workflows {
                identity.scope = Scope::workflows(w);
            }
            let digest = match (entry.token_env, entry.token_sha256) {
                (Some(var), None) => {
                    let token = std::env::var(&var).map_err(|_| ServerError::Access {
                        place: place.clone(),
                        reason: format!("the variable `{var}` (token_env) is not set"),
                    })?;
                    if token.trim().len() < 8 {
                        return Err(ServerError::Access {
                            place,
                            reason: format!("the token in `{var}` is shorter than 8 characters"),
                        });
                    }
                    TokenDigest::of(token.trim())
                }
                (None, Some(hex)) => TokenDigest(super::access::hex_digest(&place, &hex)?),
                (None, None) => {
                    return Err(ServerError::Access {
                        place,
                        reason: "give token_env or token_sha256".into(),
                    });
                }
                (Some(_), Some(_)) => {
                    return Err(ServerError::Access {
                        place,
                        reason: "give token_env or token_sha256, not both".into(),
                    });
                }
            };
            self.tokens.push((digest, identity));
        }
        if let Some(jwt) = file.jwt {
            self = self.jwt(jwt)?;
        }
        self.validate()?;
        Ok(self)
    }

    /// Adds tokens in the `MIYABI_TOKENS` format with roles and scopes in the `MIYABI_ROLES`
    /// and `MIYABI_SCOPES` formats (`id=value,value;...`). An identity without a roles entry
    /// is an admin; one without a scopes entry sees every workflow. A roles or scopes entry
    /// naming an identity without a token is an error.
    pub fn tokens_with_access(
        mut self,
        tokens: &str,
        roles: &str,
        scopes: &str,
    ) -> Result<Self, ServerError> {
        let first = self.tokens.len();
        self = self.tokens_from_str(tokens)?;
        let roles = super::access::parse_assignments("MIYABI_ROLES", roles)?;
        let scopes = super::access::parse_assignments("MIYABI_SCOPES", scopes)?;
        for (id, names) in roles {
            let place = format!("MIYABI_ROLES `{id}`");
            let set = super::access::parse_roles(&place, &names)?;
            let mut found = false;
            for (_, who) in self.tokens[first..]
                .iter_mut()
                .filter(|(_, w)| w.id() == id)
            {
                who.roles = set.clone();
                found = true;
            }
            if !found {
                return Err(ServerError::Access {
                    place,
                    reason: "no MIYABI_TOKENS entry has this identity".into(),
                });
            }
        }
        for (id, patterns) in scopes {
            let mut found = false;
            for (_, who) in self.tokens[first..]
                .iter_mut()
                .filter(|(_, w)| w.id() == id)
            {
                who.scope = Scope::workflows(patterns.clone());
                found = true;
            }
            if !found {
                return Err(ServerError::Access {
                    place: format!("MIYABI_SCOPES `{id}`"),
                    reason: "no MIYABI_TOKENS entry has this identity".into(),
                });
            }
        }
        self.validate()?;
        Ok(self)
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
            let added = self.tokens.len() - 1;
            if self.tokens[..added]
                .iter()
                .any(|(d, w)| d.matches(&self.tokens[added].0) && w.id() != id)
            {
                return Err(bad("the same token is configured for another identity"));
            }
        }
        Ok(self)
    }

    /// Accepts `token` as a bearer token for `identity`, an admin of every workflow (use
    /// [`ServerConfig::identity`] to give roles and a scope).
    pub fn token(self, token: impl AsRef<str>, identity: Approver) -> Self {
        self.identity(token, Identity::admin(identity))
    }

    /// Accepts `token` as a bearer token for `identity`, with its roles and scope. The same
    /// token for two identities is a configuration error ([`ServerConfig::validate`];
    /// [`serve`](super::serve) refuses to start, and a [`router`](super::router) refuses the
    /// token).
    pub fn identity(mut self, token: impl AsRef<str>, identity: Identity) -> Self {
        self.tokens
            .push((TokenDigest::of(token.as_ref()), identity));
        self
    }

    /// Also accepts JWTs from an identity provider (see [`JwtConfig`]); reads a JWKS file or
    /// document now (a JWKS URL is fetched at the first token).
    pub fn jwt(mut self, config: JwtConfig) -> Result<Self, ServerError> {
        self.jwt = Some(std::sync::Arc::new(JwtVerifier::new(config)?));
        Ok(self)
    }

    /// Whether any token (or a JWT issuer) is configured.
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty() || self.jwt.is_some()
    }

    /// Checks the configuration: the same token configured for two identities is an error
    /// naming both (never the token).
    pub fn validate(&self) -> Result<(), ServerError> {
        for (i, (a, who_a)) in self.tokens.iter().enumerate() {
            for (b, who_b) in &self.tokens[i + 1..] {
                if a.matches(b) && who_a != who_b {
                    return Err(ServerError::DuplicateToken {
                        first: who_a.id().to_string(),
                        second: who_b.id().to_string(),
                    });
                }
            }
        }
        Ok(())
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
    /// [`Node::external`](miyabi_engine::Node::external) nodes) to `driver`: starting them, resuming
    /// them and delivering their approval decisions through the API. Without one, the API
    /// refuses to start or resume such runs (409, before anything is written); see
    /// [`ExternalDriver`].
    pub fn external_driver(mut self, driver: Arc<dyn ExternalDriver>) -> Self {
        self.driver = Some(driver);
        self
    }

    /// Compares eval runs for `GET /api/evals/compare` (the dashboard's Evals view) with
    /// `comparer`; `miyabi` has one, `miyabi::eval::Comparer` (feature `eval`). Without one,
    /// that endpoint answers `UNSUPPORTED`; `GET /api/evals` needs none.
    pub fn eval_comparer(mut self, comparer: Arc<dyn EvalComparer>) -> Self {
        self.eval_comparer = Some(comparer);
        self
    }

    /// Serves `routes` next to the API, behind the same bearer authentication: a request
    /// without a valid token gets 401, and a handler finds the caller's
    /// [`Approver`] (and [`Identity`]) in the request's extensions. Only identities with the
    /// operator or admin role and every workflow in scope may call them
    /// ([`Permission::Mounted`](super::Permission::Mounted)): such endpoints apply no scope
    /// of their own; others get 403. For endpoints that live outside this crate,
    /// such as the MCP endpoint of `miyabi-mcp`. The routes must not overlap the API's.
    pub fn protected_routes(mut self, routes: axum::Router) -> Self {
        self.extra = Some(match self.extra.take() {
            Some(r) => r.merge(routes),
            None => routes,
        });
        self
    }

    /// Serves `routes` next to the API behind the bearer authentication only: a request without
    /// a valid token gets 401, and every identity reaches them whatever its roles, with its
    /// [`Identity`] (and [`Approver`]) in the request's extensions. For endpoints that apply
    /// roles and workflow scopes themselves, per operation: `miyabi-mcp`'s endpoint lists and
    /// allows each MCP tool and resource by the caller's roles and scope. The routes must not
    /// overlap the API's.
    pub fn authenticated_routes(mut self, routes: axum::Router) -> Self {
        self.extra_authenticated = Some(match self.extra_authenticated.take() {
            Some(r) => r.merge(routes),
            None => routes,
        });
        self
    }

    /// The identity a presented static token belongs to, comparing against every token in
    /// constant time. A token configured for two different identities identifies nobody.
    pub(crate) fn identify(&self, presented: &str) -> Option<&Identity> {
        let d = TokenDigest::of(presented);
        let mut found: Option<&Identity> = None;
        let mut ambiguous = false;
        for (t, who) in &self.tokens {
            if t.matches(&d) {
                match found {
                    None => found = Some(who),
                    Some(f) if f != who => ambiguous = true,
                    Some(_) => {}
                }
            }
        }
        if ambiguous {
            tracing::error!("a presented token is configured for two identities; refused");
            return None;
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
