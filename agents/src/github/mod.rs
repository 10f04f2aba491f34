//! GitHub through its REST API, on reqwest (feature `github`): read an issue and its comments,
//! comment, set labels, create a branch, push (git with the user's credentials), open a draft
//! pull request, read check runs; and [`webhook`], a receiver that starts workflows.
//!
//! Why reqwest and not octocrab: the framework already ships reqwest (the model layer) with
//! rustls on `ring`, and needs a handful of endpoints; octocrab would add its own HTTP stack
//! (hyper-rustls with aws-lc by default, tower, jsonwebtoken...) for those few calls, and its
//! retry layer does not cover GitHub's secondary rate limits (403 + `retry-after`), which are
//! handled here.
//!
//! - **Token**: `GITHUB_TOKEN` (or `GH_TOKEN`) from the environment, or given; sent only in the
//!   `authorization` header, never logged, never in an error or `Debug` output.
//! - **Pagination**: lists follow the `link` header's `rel="next"` (100 per page) to the end.
//! - **Rate limits**: after every response the client notes `x-ratelimit-remaining` and
//!   `x-ratelimit-reset`; when none is left it waits for the reset before the next request (up
//!   to [`GitHub::max_wait`], else [`GitHubError::RateLimited`]). A 403 or 429 that is a rate
//!   limit (`retry-after`, or `x-ratelimit-remaining: 0`) is retried after `retry-after` seconds
//!   (secondary limits), or after the reset, or after 60 s when neither is given (GitHub's
//!   advice), at most [`GitHub::max_retries`] times.

pub mod webhook;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use miyabi::{Tool, ToolContext, tool_fn};
use reqwest::{Method, StatusCode, header::HeaderMap};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What went wrong talking to GitHub. Never holds the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitHubError {
    /// 404: the repository, issue or ref does not exist (or the token may not see it).
    #[error("GitHub: {what} was not found (404)")]
    NotFound {
        /// What was asked for (`GET /repos/o/r/issues/7`).
        what: String,
    },
    /// Any other error status.
    #[error("GitHub: {what} failed with {status}: {message}")]
    Status {
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// The rate limit is used up and its reset is further away than the client may wait, or
    /// the retries are exhausted.
    #[error("GitHub: rate limited on {what}; retry after {wait_secs} s")]
    RateLimited {
        /// The request.
        what: String,
        /// How long GitHub asked to wait.
        wait_secs: u64,
    },
    /// The request could not be sent or its answer read.
    #[error("GitHub: {what}: {reason}")]
    Transport {
        /// The request.
        what: String,
        /// Why.
        reason: String,
    },
    /// The answer was not what the API documents.
    #[error("GitHub: {what}: unexpected answer: {reason}")]
    Decode {
        /// The request.
        what: String,
        /// Why.
        reason: String,
    },
    /// `git push` failed.
    #[error("git push: {0}")]
    Push(String),
    /// A bad argument (a repository not written `owner/name`...).
    #[error("GitHub: {0}")]
    Invalid(String),
}

/// A repository, `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RepoRef {
    /// The owner (user or organisation).
    pub owner: String,
    /// The repository's name.
    pub name: String,
}

impl RepoRef {
    /// Parses `owner/name`.
    pub fn parse(s: &str) -> Result<Self, GitHubError> {
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match s.split_once('/') {
            Some((o, n)) if ok(o) && ok(n) => Ok(Self {
                owner: o.to_owned(),
                name: n.to_owned(),
            }),
            _ => Err(GitHubError::Invalid(format!(
                "`{s}` is not a repository written owner/name"
            ))),
        }
    }
}

impl std::fmt::Display for RepoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// A label as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueLabel {
    /// Its name.
    pub name: String,
}

/// A user as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The login.
    pub login: String,
}

/// An issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// Its number.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Body (Markdown), if any.
    #[serde(default)]
    pub body: Option<String>,
    /// `open` or `closed`.
    pub state: String,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<IssueLabel>,
    /// Its page.
    #[serde(default)]
    pub html_url: String,
    /// Who opened it.
    #[serde(default)]
    pub user: Option<User>,
}

/// A comment on an issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// Its id.
    pub id: u64,
    /// Body (Markdown).
    #[serde(default)]
    pub body: String,
    /// Who wrote it.
    #[serde(default)]
    pub user: Option<User>,
}

/// A pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Body.
    #[serde(default)]
    pub body: Option<String>,
    /// Whether it is a draft.
    #[serde(default)]
    pub draft: bool,
    /// Its page.
    #[serde(default)]
    pub html_url: String,
}

/// A new pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPullRequest {
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// The branch with the changes.
    pub head: String,
    /// The branch to merge into.
    pub base: String,
}

/// A check run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRun {
    /// Its name.
    pub name: String,
    /// `queued`, `in_progress`, `completed`...
    pub status: String,
    /// `success`, `failure`... once completed.
    #[serde(default)]
    pub conclusion: Option<String>,
}

/// The rate limit as last reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests left in the window (`x-ratelimit-remaining`).
    pub remaining: Option<u64>,
    /// When the window resets, seconds since the Unix epoch (`x-ratelimit-reset`).
    pub reset: Option<u64>,
}

/// A token, kept out of `Debug` and errors.
#[derive(Clone)]
struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A GitHub REST client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GitHub {
    http: reqwest::Client,
    base: Arc<str>,
    token: Option<Token>,
    max_retries: u32,
    max_wait: Duration,
    rate: Arc<Mutex<RateLimit>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The `rel="next"` URL of a `link` header.
fn next_link(h: &HeaderMap) -> Option<String> {
    let link = h.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, rest) = part.split_once(';')?;
        rest.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

impl GitHub {
    /// A client for `base_url` (`https://api.github.com`, or a GitHub Enterprise
    /// `https://host/api/v3`) with an optional token.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, GitHubError> {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .user_agent("miyabi-agents")
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| GitHubError::Transport {
                what: "building the HTTP client".into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            http,
            base: Arc::from(base_url.trim_end_matches('/')),
            token: token.filter(|t| !t.is_empty()).map(|t| Token(Arc::from(t))),
            max_retries: 3,
            max_wait: Duration::from_secs(900),
            rate: Arc::new(Mutex::new(RateLimit::default())),
        })
    }

    /// The client from the environment: the token from `GITHUB_TOKEN` or `GH_TOKEN`, the API
    /// from `GITHUB_API_URL` (default `https://api.github.com`).
    pub fn from_env() -> Result<Self, GitHubError> {
        let token = std::env::var("GITHUB_TOKEN")
            .ok()
            .or_else(|| std::env::var("GH_TOKEN").ok());
        let base =
            std::env::var("GITHUB_API_URL").unwrap_or_else(|_| "https://api.github.com".into());
        Self::new(&base, token)
    }

    /// Retries of a rate-limited request (default 3).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The longest the client waits for a rate limit (default 15 minutes); a longer wait is
    /// [`GitHubError::RateLimited`].
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The rate limit as last reported.
    pub fn rate_limit(&self) -> RateLimit {
        self.rate.lock().map(|r| *r).unwrap_or_default()
    }

    async fn wait(&self, what: &str, secs: u64) -> Result<(), GitHubError> {
        if Duration::from_secs(secs) > self.max_wait {
            return Err(GitHubError::RateLimited {
                what: what.to_owned(),
                wait_secs: secs,
            });
        }
        tracing::info!(
            request = what,
            wait_secs = secs,
            "GitHub rate limit: waiting"
        );
        tokio::time::sleep(Duration::from_secs(secs)).await;
        Ok(())
    }

    /// Sends one request (retrying rate limits); returns the headers and the JSON body.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(HeaderMap, Value), GitHubError> {
        let path = url.strip_prefix(&*self.base).unwrap_or(url);
        let path = path.split('?').next().unwrap_or(path);
        let what = format!("{method} {path}");
        // The primary limit is used up: wait for its reset first.
        let before = self.rate_limit();
        if before.remaining == Some(0)
            && let Some(reset) = before.reset
            && reset > now_secs()
        {
            self.wait(&what, reset - now_secs()).await?;
        }
        let mut attempt = 0;
        loop {
            let mut req = self
                .http
                .request(method.clone(), url)
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28");
            if let Some(t) = &self.token {
                req = req.bearer_auth(&*t.0);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| GitHubError::Transport {
                what: what.clone(),
                reason: e.without_url().to_string(),
            })?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let remaining = header_u64(&headers, "x-ratelimit-remaining");
            let reset = header_u64(&headers, "x-ratelimit-reset");
            if let Ok(mut r) = self.rate.lock() {
                if remaining.is_some() {
                    r.remaining = remaining;
                }
                if reset.is_some() {
                    r.reset = reset;
                }
            }
            let text = resp.text().await.map_err(|e| GitHubError::Transport {
                what: what.clone(),
                reason: e.without_url().to_string(),
            })?;
            let json: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            if status.is_success() {
                return Ok((headers, json));
            }
            let message = json
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| json.to_string());
            let retry_after = header_u64(&headers, "retry-after");
            let limited = (status == StatusCode::FORBIDDEN
                || status == StatusCode::TOO_MANY_REQUESTS)
                && (retry_after.is_some()
                    || remaining == Some(0)
                    || message.to_ascii_lowercase().contains("rate limit"));
            if limited {
                let wait = retry_after
                    .or_else(|| {
                        (remaining == Some(0))
                            .then(|| reset.map(|r| r.saturating_sub(now_secs())))
                            .flatten()
                    })
                    .unwrap_or(60);
                if attempt >= self.max_retries {
                    return Err(GitHubError::RateLimited {
                        what,
                        wait_secs: wait,
                    });
                }
                attempt += 1;
                self.wait(&what, wait).await?;
                continue;
            }
            if status == StatusCode::NOT_FOUND {
                return Err(GitHubError::NotFound { what });
            }
            return Err(GitHubError::Status {
                what,
                status: status.as_u16(),
                message,
            });
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, GitHubError> {
        let (_, v) = self.send(Method::GET, &self.url(path), None).await?;
        decode(path, v)
    }

    /// GETs every page of a list (`items` picks the list out of a page, for wrapped lists).
    async fn get_all<T: DeserializeOwned>(
        &self,
        path: &str,
        items: impl Fn(Value) -> Value,
    ) -> Result<Vec<T>, GitHubError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut url = Some(self.url(&format!("{path}{sep}per_page=100")));
        let mut out = Vec::new();
        let mut pages = 0;
        while let Some(u) = url.take() {
            pages += 1;
            if pages > 1000 {
                return Err(GitHubError::Decode {
                    what: path.to_owned(),
                    reason: "more than 1000 pages".into(),
                });
            }
            let (headers, v) = self.send(Method::GET, &u, None).await?;
            let page: Vec<T> = decode(path, items(v))?;
            out.extend(page);
            url = next_link(&headers);
        }
        Ok(out)
    }

    /// An issue.
    pub async fn issue(&self, repo: &RepoRef, number: u64) -> Result<Issue, GitHubError> {
        self.get(&format!("/repos/{repo}/issues/{number}")).await
    }

    /// All comments of an issue, oldest first.
    pub async fn comments(&self, repo: &RepoRef, number: u64) -> Result<Vec<Comment>, GitHubError> {
        self.get_all(&format!("/repos/{repo}/issues/{number}/comments"), |v| v)
            .await
    }

    /// Comments on an issue or pull request.
    pub async fn comment(
        &self,
        repo: &RepoRef,
        number: u64,
        body: &str,
    ) -> Result<Comment, GitHubError> {
        let path = format!("/repos/{repo}/issues/{number}/comments");
        let (_, v) = self
            .send(Method::POST, &self.url(&path), Some(&json!({"body": body})))
            .await?;
        decode(&path, v)
    }

    /// Replaces an issue's labels; returns them as set.
    pub async fn set_labels(
        &self,
        repo: &RepoRef,
        number: u64,
        labels: &[String],
    ) -> Result<Vec<String>, GitHubError> {
        let path = format!("/repos/{repo}/issues/{number}/labels");
        let (_, v) = self
            .send(
                Method::PUT,
                &self.url(&path),
                Some(&json!({"labels": labels})),
            )
            .await?;
        let labels: Vec<IssueLabel> = decode(&path, v)?;
        Ok(labels.into_iter().map(|l| l.name).collect())
    }

    /// Creates branch `name` at commit `sha`; a branch that already exists at that commit is
    /// fine (so a retried step does not fail).
    pub async fn create_branch(
        &self,
        repo: &RepoRef,
        name: &str,
        sha: &str,
    ) -> Result<(), GitHubError> {
        let path = format!("/repos/{repo}/git/refs");
        let body = json!({"ref": format!("refs/heads/{name}"), "sha": sha});
        match self.send(Method::POST, &self.url(&path), Some(&body)).await {
            Ok(_) => Ok(()),
            Err(GitHubError::Status { status: 422, .. }) => {
                let existing: Value = self
                    .get(&format!("/repos/{repo}/git/ref/heads/{name}"))
                    .await?;
                if existing["object"]["sha"] == sha {
                    Ok(())
                } else {
                    Err(GitHubError::Invalid(format!(
                        "branch `{name}` already exists at another commit"
                    )))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The open pull request from `head` (a branch of the same repository), if any.
    pub async fn find_pull(
        &self,
        repo: &RepoRef,
        head: &str,
    ) -> Result<Option<PullRequest>, GitHubError> {
        let pulls: Vec<PullRequest> = self
            .get_all(
                &format!("/repos/{repo}/pulls?state=open&head={}:{head}", repo.owner),
                |v| v,
            )
            .await?;
        Ok(pulls.into_iter().next())
    }

    /// Opens a draft pull request.
    pub async fn create_draft_pull(
        &self,
        repo: &RepoRef,
        pr: &NewPullRequest,
    ) -> Result<PullRequest, GitHubError> {
        let path = format!("/repos/{repo}/pulls");
        let body = json!({"title": pr.title, "body": pr.body, "head": pr.head, "base": pr.base, "draft": true});
        let (_, v) = self
            .send(Method::POST, &self.url(&path), Some(&body))
            .await?;
        decode(&path, v)
    }

    /// The check runs of a commit or branch.
    pub async fn check_runs(
        &self,
        repo: &RepoRef,
        git_ref: &str,
    ) -> Result<Vec<CheckRun>, GitHubError> {
        self.get_all(
            &format!("/repos/{repo}/commits/{git_ref}/check-runs"),
            |mut v| {
                v.get_mut("check_runs")
                    .map(Value::take)
                    .unwrap_or(Value::Null)
            },
        )
        .await
    }

    /// Pushes `branch` of the local repository at `dir` to `remote` (a remote name, a URL or a
    /// path) with git and the user's own git credentials (credential helper, SSH keys). With a
    /// token and an `https://` remote, the token is given to git as an HTTP header through
    /// git's environment (`GIT_CONFIG_*`), never on the command line.
    pub async fn push(&self, dir: &Path, remote: &str, branch: &str) -> Result<(), GitHubError> {
        let mut cmd = tokio::process::Command::new("git");
        cmd.arg("push")
            .arg("--force-with-lease")
            .arg(remote)
            .arg(format!("refs/heads/{branch}:refs/heads/{branch}"))
            .current_dir(dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null());
        if remote.starts_with("https://")
            && let Some(t) = &self.token
        {
            use base64::Engine as _;
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", t.0));
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {basic}"),
                );
        }
        let out = cmd
            .output()
            .await
            .map_err(|e| GitHubError::Push(e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            if let Some(t) = &self.token {
                msg = msg.replace(&*t.0, "<redacted>");
            }
            Err(GitHubError::Push(msg))
        }
    }

    /// Tools over this client for an agent (RefresherAgent, a triage agent): `get_issue`
    /// (with its comments), `comment`, `set_labels`, each on `repo`.
    pub fn tools(&self, repo: &RepoRef) -> Vec<Arc<dyn Tool>> {
        #[derive(Deserialize, JsonSchema)]
        struct IssueArgs {
            /// The issue number.
            number: u64,
        }
        #[derive(Deserialize, JsonSchema)]
        struct CommentArgs {
            /// The issue number.
            number: u64,
            /// The comment (Markdown).
            body: String,
        }
        #[derive(Deserialize, JsonSchema)]
        struct LabelArgs {
            /// The issue number.
            number: u64,
            /// The labels the issue should have (replacing its current ones).
            labels: Vec<String>,
        }
        let (g1, r1) = (self.clone(), repo.clone());
        let (g2, r2) = (self.clone(), repo.clone());
        let (g3, r3) = (self.clone(), repo.clone());
        vec![
            Arc::new(tool_fn(
                "get_issue",
                "Reads an issue with its labels and comments",
                move |_c: ToolContext, a: IssueArgs| {
                    let (g, r) = (g1.clone(), r1.clone());
                    async move {
                        let issue = g.issue(&r, a.number).await.map_err(|e| e.to_string())?;
                        let comments = g.comments(&r, a.number).await.map_err(|e| e.to_string())?;
                        Ok::<_, String>(json!({"issue": issue, "comments": comments}))
                    }
                },
            )),
            Arc::new(tool_fn(
                "comment",
                "Comments on an issue",
                move |_c: ToolContext, a: CommentArgs| {
                    let (g, r) = (g2.clone(), r2.clone());
                    async move {
                        let c = g
                            .comment(&r, a.number, &a.body)
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok::<_, String>(json!({"id": c.id}))
                    }
                },
            )),
            Arc::new(tool_fn(
                "set_labels",
                "Sets an issue's labels (from Miyabi's label set)",
                move |_c: ToolContext, a: LabelArgs| {
                    let (g, r) = (g3.clone(), r3.clone());
                    async move {
                        if let Some(bad) = a.labels.iter().find(|l| !crate::labels::is_label(l)) {
                            return Err(format!("`{bad}` is not in the label set"));
                        }
                        let set = g
                            .set_labels(&r, a.number, &a.labels)
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok::<_, String>(json!({"labels": set}))
                    }
                },
            )),
        ]
    }
}

impl GitHub {
    /// Applies RefresherAgent's report to `repo`: for each update, the issue's labels become its
    /// current ones minus `remove_labels` and every other `state:` label, plus `add_labels` and
    /// the update's state label; its comment (if any) is posted. Labels outside the label set are
    /// refused before anything is sent. Returns the labels each issue ended with.
    pub async fn apply_refresh(
        &self,
        repo: &RepoRef,
        report: &crate::coding::RefreshReport,
    ) -> Result<Vec<(u64, Vec<String>)>, GitHubError> {
        for u in &report.updates {
            let all = u
                .add_labels
                .iter()
                .chain(&u.remove_labels)
                .chain([&u.state]);
            if let Some(bad) = all.into_iter().find(|l| !crate::labels::is_label(l)) {
                return Err(GitHubError::Invalid(format!(
                    "issue #{}: `{bad}` is not in the label set",
                    u.issue
                )));
            }
        }
        let mut out = Vec::new();
        for u in &report.updates {
            let current = self.issue(repo, u.issue).await?;
            let mut labels: Vec<String> = current
                .labels
                .into_iter()
                .map(|l| l.name)
                .filter(|l| !u.remove_labels.contains(l) && !l.starts_with("state:"))
                .collect();
            for l in u.add_labels.iter().chain([&u.state]) {
                if !labels.contains(l) {
                    labels.push(l.clone());
                }
            }
            let set = self.set_labels(repo, u.issue, &labels).await?;
            if let Some(c) = u.comment.as_deref().filter(|c| !c.trim().is_empty()) {
                self.comment(repo, u.issue, c).await?;
            }
            out.push((u.issue, set));
        }
        Ok(out)
    }
}

fn decode<T: DeserializeOwned>(what: &str, v: Value) -> Result<T, GitHubError> {
    serde_json::from_value(v).map_err(|e| GitHubError::Decode {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}
