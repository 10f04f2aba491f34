//! Access control: identities with roles and workflow scopes, what each route requires, and
//! JWTs from an identity provider verified against a JWKS. See `docs/server.md` (Access
//! control).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ServerError;
use crate::approval::Approver;

/// What an identity may do. Roles add up: an identity may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads workflows, runs, their events, gates and the audit trail (within its scope).
    Viewer,
    /// A viewer that also starts, cancels and resumes runs.
    Operator,
    /// Sees its inbox and decides the gates that name it (directly or through a team).
    Approver,
    /// Everything an operator and an approver may do (it too decides only the gates that
    /// name it).
    Admin,
}

impl Role {
    /// Every role, from least to most privileged.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Approver, Role::Admin];

    /// `viewer`, `operator`, `approver` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Parses [`Role::as_str`]'s output (case-insensitive).
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "approver" => Some(Role::Approver),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What a route requires of the caller's roles (the route table,
/// [`API_ROUTES`](super::API_ROUTES), gives one per route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// No token at all (health, the OpenAPI document).
    Public,
    /// Any valid token, whatever its roles (`/api/me`).
    Authenticated,
    /// viewer, operator or admin.
    Read,
    /// viewer, operator, approver or admin: an approver sees the gates that name it.
    Inbox,
    /// operator or admin.
    Operate,
    /// approver or admin (and the gate must name the caller).
    Decide,
    /// operator or admin, with every workflow in scope: endpoints mounted with
    /// [`ServerConfig::protected_routes`](super::ServerConfig::protected_routes) (MCP),
    /// which apply no scope of their own.
    Mounted,
}

impl Permission {
    /// The roles that satisfy it (empty for [`Permission::Public`] and
    /// [`Permission::Authenticated`], which need none).
    pub fn roles(self) -> &'static [Role] {
        match self {
            Permission::Public | Permission::Authenticated => &[],
            Permission::Read => &[Role::Viewer, Role::Operator, Role::Admin],
            Permission::Inbox => &[Role::Viewer, Role::Operator, Role::Approver, Role::Admin],
            Permission::Operate => &[Role::Operator, Role::Admin],
            Permission::Decide => &[Role::Approver, Role::Admin],
            Permission::Mounted => &[Role::Operator, Role::Admin],
        }
    }
}

/// Which workflows an identity may see and act on.
///
/// A scope is a list of workflow id patterns: an exact id (`deploy`), or a namespace — a
/// prefix ending in `*` (`billing.*` matches `billing.refund` and `billing.invoice/v2`; the
/// part before `*` is compared literally). `*` alone, or [`Scope::All`], is every workflow.
/// Anything out of scope answers 404, as if it did not exist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every workflow.
    #[default]
    All,
    /// Only workflows matching one of these patterns.
    Workflows(Vec<String>),
}

/// Serialized as its list of patterns, `["*"]` for every workflow.
impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scope::All => ["*"].serialize(s),
            Scope::Workflows(list) => list.serialize(s),
        }
    }
}

impl Scope {
    /// A scope of these patterns (`*` among them makes it [`Scope::All`]).
    pub fn workflows<I, S>(patterns: I) -> Scope
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let list: Vec<String> = patterns
            .into_iter()
            .map(Into::into)
            .map(|p: String| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if list.iter().any(|p| p == "*") {
            Scope::All
        } else {
            Scope::Workflows(list)
        }
    }

    /// Whether `workflow` is in scope.
    pub fn allows(&self, workflow: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Workflows(list) => list.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => workflow.starts_with(prefix),
                None => p == workflow,
            }),
        }
    }

    /// Whether every workflow is in scope.
    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }

    /// The one workflow id this scope allows, when it is a single exact id.
    pub(crate) fn single(&self) -> Option<&str> {
        match self {
            Scope::Workflows(list) if list.len() == 1 && !list[0].ends_with('*') => {
                Some(list[0].as_str())
            }
            _ => None,
        }
    }
}

/// Who is calling: the approver identity (id and teams, what gates name and the audit trail
/// records), its roles and its scope.
///
/// ```
/// use miyabi_server::{Identity, Role};
/// let carol = Identity::new("carol")
///     .teams(["payments"])
///     .roles([Role::Operator, Role::Approver])
///     .workflows(["billing.*"]);
/// assert!(carol.has(Role::Operator));
/// assert!(carol.scope.allows("billing.refund"));
/// assert!(!carol.scope.allows("deploy"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The id and teams.
    #[serde(flatten)]
    pub approver: Approver,
    /// Its roles.
    pub roles: BTreeSet<Role>,
    /// The workflows it may see and act on (serialized as `workflows`).
    #[serde(rename = "workflows")]
    pub scope: Scope,
}

impl Identity {
    /// An identity without roles (it may call `/api/me` only) and with every workflow in
    /// scope.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            approver: Approver::new(id),
            roles: BTreeSet::new(),
            scope: Scope::All,
        }
    }

    /// An administrator of every workflow: what [`ServerConfig::token`](super::ServerConfig::token)
    /// and `MIYABI_TOKENS` entries without a `MIYABI_ROLES` entry give.
    pub fn admin(approver: Approver) -> Self {
        Self {
            approver,
            roles: BTreeSet::from([Role::Admin]),
            scope: Scope::All,
        }
    }

    /// Sets the teams.
    pub fn teams<I, S>(mut self, teams: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.approver = self.approver.teams(teams);
        self
    }

    /// Adds roles.
    pub fn roles<I: IntoIterator<Item = Role>>(mut self, roles: I) -> Self {
        self.roles.extend(roles);
        self
    }

    /// Limits the identity to workflows matching these patterns (see [`Scope`]).
    pub fn workflows<I, S>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope = Scope::workflows(patterns);
        self
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.approver.id
    }

    /// Whether it holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether its roles satisfy `permission` (scope aside).
    pub fn may(&self, permission: Permission) -> bool {
        match permission {
            Permission::Public | Permission::Authenticated => true,
            Permission::Mounted => {
                self.scope.is_all() && Permission::Operate.roles().iter().any(|r| self.has(*r))
            }
            p => p.roles().iter().any(|r| self.has(*r)),
        }
    }
}

fn access_error(place: impl Into<String>, reason: impl Into<String>) -> ServerError {
    ServerError::Access {
        place: place.into(),
        reason: reason.into(),
    }
}

/// Parses `id=a,b;id2=c` (the `MIYABI_ROLES` and `MIYABI_SCOPES` formats).
pub(crate) fn parse_assignments(
    var: &str,
    spec: &str,
) -> Result<Vec<(String, Vec<String>)>, ServerError> {
    let mut out = Vec::new();
    for (n, entry) in spec.split(';').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (id, list) = entry.split_once('=').ok_or_else(|| {
            access_error(
                format!("{var} entry {}", n + 1),
                "expected `id=value,value`",
            )
        })?;
        let id = id.trim();
        if id.is_empty() {
            return Err(access_error(
                format!("{var} entry {}", n + 1),
                "the identity id is empty",
            ));
        }
        let values = list
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        out.push((id.to_string(), values));
    }
    Ok(out)
}

/// Parses role names, naming `place` in the error.
pub(crate) fn parse_roles(place: &str, names: &[String]) -> Result<BTreeSet<Role>, ServerError> {
    names
        .iter()
        .map(|n| {
            Role::parse(n).ok_or_else(|| {
                access_error(
                    place,
                    format!("unknown role `{n}` (viewer, operator, approver, admin)"),
                )
            })
        })
        .collect()
}

/// The access file (`miyabi serve --access FILE`, `MIYABI_ACCESS_FILE`), TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessFile {
    #[serde(default)]
    pub(crate) identity: Vec<FileIdentity>,
    pub(crate) jwt: Option<JwtConfig>,
}

/// One `[[identity]]` of the access file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileIdentity {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) teams: Vec<String>,
    pub(crate) roles: Vec<String>,
    pub(crate) workflows: Option<Vec<String>>,
    /// The environment variable holding the token.
    pub(crate) token_env: Option<String>,
    /// The token's SHA-256 digest, 64 hex digits (the file then holds no secret).
    pub(crate) token_sha256: Option<String>,
}

impl AccessFile {
    pub(crate) fn read(path: &Path) -> Result<Self, ServerError> {
        let place = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| access_error(&place, format!("cannot read the access file: {e}")))?;
        let mut file: AccessFile = toml::from_str(&text)
            .map_err(|e| access_error(&place, format!("malformed access file: {}", e.message())))?;
        if let Some(jwt) = file.jwt.as_mut()
            && let Some(JwksSource::File(f)) = jwt.jwks.as_mut()
            && f.is_relative()
            && let Some(dir) = path.parent()
        {
            *f = dir.join(&*f);
        }
        Ok(file)
    }
}

/// Decodes 64 hex digits into a digest.
pub(crate) fn hex_digest(place: &str, hex: &str) -> Result<[u8; 32], ServerError> {
    let hex = hex.trim();
    let bad = || access_error(place, "token_sha256 must be 64 hex digits");
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}

/// Where the identity provider's signing keys are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JwksSource {
    /// A JWKS document on disk (read when the configuration is built).
    #[serde(rename = "jwks_file")]
    File(PathBuf),
    /// A JWKS URL (fetched at the first token, and again when a token names an unknown key,
    /// at most once per [`JwtConfig::refresh_interval`]).
    #[serde(rename = "jwks_url")]
    Url(String),
    /// A JWKS document given inline (JSON).
    #[serde(rename = "jwks")]
    Inline(String),
}

/// Verification of JWTs from an identity provider: issuer, audience, expiry (and `nbf`),
/// the signature against a JWKS, and the claims that give the identity, its teams, roles and
/// scope.
///
/// ```
/// use miyabi_server::JwtConfig;
/// let jwt = JwtConfig::new("https://idp.example.com/", "miyabi")
///     .jwks_url("https://idp.example.com/.well-known/jwks.json")
///     .roles_claim("miyabi_roles");
/// # let _ = jwt;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud` (one of the token's audiences).
    pub audience: String,
    /// The keys.
    #[serde(flatten)]
    pub jwks: Option<JwksSource>,
    /// The claim holding the identity id (default `sub`).
    #[serde(default = "default_id_claim")]
    pub id_claim: String,
    /// The claim holding role names, an array or a space-separated string (default `roles`).
    /// Unknown names are ignored; a token without known roles may only call `/api/me`.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// The claim holding team names (default `groups`).
    #[serde(default = "default_teams_claim")]
    pub teams_claim: String,
    /// The claim holding workflow patterns (default `workflows`); without it the scope is
    /// every workflow.
    #[serde(default = "default_workflows_claim")]
    pub workflows_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (default 30).
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Least time between two fetches of a JWKS URL, in seconds (default 60).
    #[serde(default = "default_refresh")]
    pub refresh_secs: u64,
}

fn default_id_claim() -> String {
    "sub".into()
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_teams_claim() -> String {
    "groups".into()
}
fn default_workflows_claim() -> String {
    "workflows".into()
}
fn default_leeway() -> u64 {
    30
}
fn default_refresh() -> u64 {
    60
}

impl JwtConfig {
    /// Tokens issued by `issuer` for `audience`; add the keys with [`JwtConfig::jwks_file`],
    /// [`JwtConfig::jwks_url`] or [`JwtConfig::jwks_json`].
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks: None,
            id_claim: default_id_claim(),
            roles_claim: default_roles_claim(),
            teams_claim: default_teams_claim(),
            workflows_claim: default_workflows_claim(),
            leeway_secs: default_leeway(),
            refresh_secs: default_refresh(),
        }
    }

    /// Keys from a JWKS file.
    pub fn jwks_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.jwks = Some(JwksSource::File(path.into()));
        self
    }

    /// Keys from a JWKS URL.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks = Some(JwksSource::Url(url.into()));
        self
    }

    /// Keys from a JWKS document (JSON text).
    pub fn jwks_json(mut self, json: impl Into<String>) -> Self {
        self.jwks = Some(JwksSource::Inline(json.into()));
        self
    }

    /// The claim holding the identity id (default `sub`).
    pub fn id_claim(mut self, claim: impl Into<String>) -> Self {
        self.id_claim = claim.into();
        self
    }

    /// The claim holding role names (default `roles`).
    pub fn roles_claim(mut self, claim: impl Into<String>) -> Self {
        self.roles_claim = claim.into();
        self
    }

    /// The claim holding team names (default `groups`).
    pub fn teams_claim(mut self, claim: impl Into<String>) -> Self {
        self.teams_claim = claim.into();
        self
    }

    /// The claim holding workflow patterns (default `workflows`).
    pub fn workflows_claim(mut self, claim: impl Into<String>) -> Self {
        self.workflows_claim = claim.into();
        self
    }

    /// Clock skew allowed on `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway_secs = leeway.as_secs();
        self
    }

    /// Least time between two fetches of a JWKS URL (default 60 s).
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh_secs = every.as_secs();
        self
    }
}

/// Why a JWT was refused (logged at debug level; the client gets a plain 401).
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwtRefusal {
    #[error("malformed token header: {0}")]
    Header(jsonwebtoken::errors::Error),
    #[error("no signing key matches the token (kid {0:?})")]
    NoKey(Option<String>),
    #[error("the key's algorithm does not match the token's")]
    Algorithm,
    #[error("the token is invalid: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    #[error("the claim `{0}` is missing or not a string")]
    Claim(String),
    #[error("cannot fetch the JWKS: {0}")]
    Fetch(String),
}

struct Keys {
    set: jsonwebtoken::jwk::JwkSet,
    fetched: Option<Instant>,
}

/// Verifies tokens for one [`JwtConfig`]; keeps (and refreshes) its keys.
pub(crate) struct JwtVerifier {
    config: JwtConfig,
    keys: tokio::sync::Mutex<Keys>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .finish_non_exhaustive()
    }
}

fn parse_jwks(place: &str, text: &str) -> Result<jsonwebtoken::jwk::JwkSet, ServerError> {
    let mut set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(text)
        .map_err(|e| access_error(place, format!("malformed JWKS: {e}")))?;
    // A public key set holds no shared secrets: an `oct` key there is refused outright.
    set.keys.retain(|k| {
        !matches!(
            k.algorithm,
            jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
        )
    });
    Ok(set)
}

impl JwtVerifier {
    pub(crate) fn new(config: JwtConfig) -> Result<Self, ServerError> {
        let set = match &config.jwks {
            None => {
                return Err(access_error(
                    "jwt",
                    "no keys: give jwks_file, jwks_url or jwks",
                ));
            }
            Some(JwksSource::File(p)) => {
                let place = p.display().to_string();
                let text = std::fs::read_to_string(p)
                    .map_err(|e| access_error(&place, format!("cannot read the JWKS: {e}")))?;
                Some(parse_jwks(&place, &text)?)
            }
            Some(JwksSource::Inline(text)) => Some(parse_jwks("jwt.jwks", text)?),
            Some(JwksSource::Url(u)) => {
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(access_error("jwt.jwks_url", "expected an http(s) URL"));
                }
                None
            }
        };
        Ok(Self {
            config,
            keys: tokio::sync::Mutex::new(Keys {
                set: set.unwrap_or(jsonwebtoken::jwk::JwkSet { keys: Vec::new() }),
                fetched: None,
            }),
        })
    }

    async fn fetch(&self, url: &str) -> Result<jsonwebtoken::jwk::JwkSet, JwtRefusal> {
        let client = crate::approval::http_client().map_err(JwtRefusal::Fetch)?;
        let res = client
            .get(url)
            .send()
            .await
            .map_err(|e| JwtRefusal::Fetch(e.to_string()))?;
        if !res.status().is_success() {
            return Err(JwtRefusal::Fetch(format!("HTTP {}", res.status())));
        }
        let text = res
            .text()
            .await
            .map_err(|e| JwtRefusal::Fetch(e.to_string()))?;
        parse_jwks(url, &text).map_err(|e| JwtRefusal::Fetch(e.to_string()))
    }

    /// The key for a token header (fetching the JWKS URL when the key is unknown and the last
    /// fetch is old enough).
    async fn key(&self, kid: Option<&str>) -> Result<Option<jsonwebtoken::jwk::Jwk>, JwtRefusal> {
        let find = |set: &jsonwebtoken::jwk::JwkSet| -> Option<jsonwebtoken::jwk::Jwk> {
            match kid {
                Some(k) => set.find(k).cloned(),
                None if set.keys.len() == 1 => set.keys.first().cloned(),
                None => None,
            }
        };
        let mut keys = self.keys.lock().await;
        if let Some(k) = find(&keys.set) {
            return Ok(Some(k));
        }
        let Some(JwksSource::Url(url)) = &self.config.jwks else {
            return Ok(None);
        };
        let due = keys
            .fetched
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(self.config.refresh_secs));
        if !due {
            return Ok(None);
        }
        keys.fetched = Some(Instant::now());
        keys.set = self.fetch(url).await?;
        Ok(find(&keys.set))
    }

    /// The identity a token stands for, or why it is refused.
    pub(crate) async fn verify(&self, token: &str) -> Result<Identity, JwtRefusal> {
        use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
        let header = decode_header(token).map_err(JwtRefusal::Header)?;
        let jwk = self
            .key(header.kid.as_deref())
            .await?
            .ok_or_else(|| JwtRefusal::NoKey(header.kid.clone()))?;
        if let Some(alg) = jwk.common.key_algorithm {
            let same = alg
                .to_string()
                .eq_ignore_ascii_case(&format!("{:?}", header.alg));
            if !same {
                return Err(JwtRefusal::Algorithm);
            }
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(JwtRefusal::Invalid)?;
        // The header's algorithm, which must be of the key's family (checked by `decode`).
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[self.config.issuer.as_str()]);
        v.set_audience(&[self.config.audience.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.validate_nbf = true;
        v.leeway = self.config.leeway_secs;
        let data = decode::<serde_json::Map<String, Value>>(token, &key, &v)
            .map_err(JwtRefusal::Invalid)?;
        let claims = data.claims;
        let id = claims
            .get(&self.config.id_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| JwtRefusal::Claim(self.config.id_claim.clone()))?;
        let strings = |name: &str| -> Option<Vec<String>> {
            match claims.get(name)? {
                Value::String(s) => Some(s.split_whitespace().map(str::to_string).collect()),
                Value::Array(a) => Some(
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                ),
                _ => None,
            }
        };
        let roles = strings(&self.config.roles_claim)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| Role::parse(r))
            .collect::<Vec<_>>();
        let mut identity = Identity::new(id)
            .teams(strings(&self.config.teams_claim).unwrap_or_default())
            .roles(roles);
        if let Some(w) = strings(&self.config.workflows_claim) {
            identity = identity.workflows(w);
        }
        Ok(identity)
    }
}

/// A shared JWT verifier.
pub(crate) type Verifier = Arc<JwtVerifier>;

/// Whether a presented token looks like a JWT (three base64url parts).
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
