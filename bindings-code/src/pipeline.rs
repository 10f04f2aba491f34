//! The issue-resolution pipeline from Node: [`NativePipeline`] builds an engine on the given
//! store, the pipeline's configuration (`miyabi_agents::pipeline::PipelineConfig`) and the
//! workflow `issue-resolution` — the same Rust workflow `miyabi run issue-resolution` runs —
//! and starts, waits for, decides and resumes its runs. Every call answers with plain JSON
//! (a run as the facade's `PipelineRun`); errors carry the engine's codes (`NOT_FOUND`,
//! `FORBIDDEN`, `CONFLICT`, `VALIDATION`, ...).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use miyabi::approval::{Approver, Decision};
use miyabi::model::{Catalog, ModelBuilder, Protocol};
use miyabi::{CommittedWorkflow, Engine, LanguageModel, Run, RunStatus};
use miyabi_agents::github::{GitHub, RepoRef};
use miyabi_agents::pipeline::{self, GitHubTarget, PipelineConfig};
use miyabi_agents::replay::{ReplayServer, Script, load_script};
use miyabi_agents::runner;
use miyabi_agents::{RepoCommands, commands::Argv};
use napi_derive::napi;
use serde::Deserialize;
use serde_json::{Value, json};

/// The approval gate's step path in the workflow.
const GATE: &str = "approval";

/// Why a pipeline call failed, with the code the facade's `MiyabiError` gets.
#[derive(Debug, thiserror::Error)]
enum PipelineCallError {
    /// The options are not usable.
    #[error("issueResolution: {0}")]
    Options(String),
    /// The pipeline was closed.
    #[error("the pipeline was closed")]
    Closed,
    /// The issue could not be read.
    #[error("{0}")]
    Issue(#[from] runner::IssueError),
    /// The engine refused or failed.
    #[error("{0}")]
    Engine(#[from] miyabi::EngineError),
    /// The approval gate refused the decision.
    #[error("{0}")]
    Approval(#[from] miyabi::approval::ApprovalError),
    /// The workflow could not be set up.
    #[error("issueResolution: {0}")]
    Setup(#[from] pipeline::PipelineError),
}

impl PipelineCallError {
    fn code(&self) -> &'static str {
        match self {
            Self::Options(_) => "INVALID_ARGUMENT",
            Self::Closed => "SHUTDOWN",
            Self::Issue(runner::IssueError::File { .. }) => "INVALID_ARGUMENT",
            Self::Issue(runner::IssueError::GitHub(
                miyabi_agents::github::GitHubError::NotFound { .. },
            )) => "NOT_FOUND",
            Self::Issue(_) => "ENGINE",
            Self::Engine(e) => e.code().as_str(),
            Self::Approval(e) => e.code().as_str(),
            Self::Setup(pipeline::PipelineError::Commands(_)) => "CONFIG",
            Self::Setup(_) => "INVALID_ARGUMENT",
        }
    }
}

/// An async call's outcome as the facade reads it: `{ok: true, value}` or `{ok: false, code,
/// message}` (the promise never rejects, so that the facade can give the error its code).
fn settle(r: Result<Value, PipelineCallError>) -> Value {
    match r {
        Ok(value) => json!({"ok": true, "value": value}),
        Err(e) => json!({"ok": false, "code": e.code(), "message": e.to_string()}),
    }
}

impl From<PipelineCallError> for napi::Error<String> {
    fn from(e: PipelineCallError) -> Self {
        napi::Error::new(e.code().to_owned(), e.to_string())
    }
}

/// Where the pull request goes (the facade's `github` option).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GitHubSpec {
    owner: String,
    repo: String,
    token: Option<String>,
    api_url: Option<String>,
    remote: Option<String>,
}

/// The facade's options, as JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    repo: String,
    db: String,
    model: Option<String>,
    #[serde(rename = "baseURL")]
    base_url: Option<String>,
    api_key: Option<String>,
    protocol: Option<String>,
    replay: Option<Value>,
    github: Option<GitHubSpec>,
    issue_file: Option<String>,
    commands: Option<serde_json::Map<String, Value>>,
    base: Option<String>,
    approvers: Option<Vec<String>>,
    max_fix_rounds: Option<u32>,
    sandbox: Option<String>,
}

struct Inner {
    engine: Engine,
    workflow: CommittedWorkflow,
    github: Option<GitHubTarget>,
    issue_file: Option<PathBuf>,
    /// Keeps the replayed model's server alive as long as the pipeline.
    _replay: Option<ReplayServer>,
}

/// The issue-resolution pipeline on one repository and one run database.
#[napi]
pub struct NativePipeline {
    inner: Mutex<Option<Arc<Inner>>>,
    approvers: Vec<String>,
    repo: String,
}

fn bad(what: impl Into<String>) -> PipelineCallError {
    PipelineCallError::Options(what.into())
}

/// The model: a replay script (a file or the script itself), or `"provider/model"` with the
/// options a preset takes (`baseURL`, `apiKey`, `protocol`; a provider the catalogue does not
/// know, given with both `baseURL` and `protocol`, is a custom endpoint).
fn model_of(s: &Spec) -> Result<(Arc<dyn LanguageModel>, Option<ReplayServer>), PipelineCallError> {
    if let Some(replay) = &s.replay {
        let script: Script = match replay {
            Value::String(path) => load_script(std::path::Path::new(path))
                .map_err(|e| bad(format!("`replay`: {e}")))?,
            other => serde_json::from_value(other.clone()).map_err(|e| {
                bad(format!(
                    "`replay`: not a replay script ({{\"<Agent>\": [{{\"json\"|\"text\"|\"calls\": ...}}]}}): {e}"
                ))
            })?,
        };
        let server = ReplayServer::start(script).map_err(|e| bad(format!("`replay`: {e}")))?;
        let m = server.model().map_err(|e| bad(format!("`replay`: {e}")))?;
        return Ok((m, Some(server)));
    }
    let spec = s.model.clone().unwrap_or_else(miyabi_agents::default_model);
    let protocol = match &s.protocol {
        None => None,
        Some(p) => Some(Protocol::parse(p).ok_or_else(|| {
            let known: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
            bad(format!(
                "`protocol`: unknown protocol `{p}` (known: {})",
                known.join(", ")
            ))
        })?),
    };
    let mut b = match (spec.split_once('/'), protocol, &s.base_url) {
        (Some((provider, name)), Some(protocol), Some(url))
            if !provider.is_empty()
                && !name.is_empty()
                && Catalog::embedded().provider(provider).is_none() =>
        {
            ModelBuilder::custom(provider, name, protocol, url)
        }
        _ => {
            let mut b = ModelBuilder::new(spec.as_str());
            if let Some(p) = protocol {
                b = b.protocol(p);
            }
            if let Some(u) = &s.base_url {
                b = b.base_url(u.clone());
            }
            b
        }
    };
    if let Some(k) = &s.api_key {
        b = b.api_key(k.clone());
    }
    let m = b.build().map_err(|e| {
        // In the facade's words: the option, not the Rust builder's method.
        let words = e.to_string().replace("ModelBuilder::api_key", "`apiKey`");
        bad(format!("`model` `{spec}`: {words}"))
    })?;
    Ok((Arc::new(m), None))
}

/// The repository's commands with the `commands` option over them: an array replaces a
/// command, `null` removes it (the check is then skipped).
fn commands_of(
    mut c: RepoCommands,
    given: &serde_json::Map<String, Value>,
) -> Result<RepoCommands, PipelineCallError> {
    for (k, v) in given {
        if k == "timeoutSecs" {
            c.timeout_secs = match v {
                Value::Null => None,
                v => Some(
                    v.as_f64()
                        .filter(|f| *f >= 1.0 && f.fract() == 0.0)
                        .ok_or_else(|| {
                            bad(format!(
                                "`commands.timeoutSecs`: a whole number of seconds from 1, got {v}"
                            ))
                        })? as u64,
                ),
            };
            continue;
        }
        let argv: Option<Argv> = match v {
            Value::Null => None,
            Value::Array(words) if !words.is_empty() => Some(
                words
                    .iter()
                    .map(|w| w.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        bad(format!(
                            "`commands.{k}`: an array of strings (the program and its arguments), got {v}"
                        ))
                    })?,
            ),
            other => {
                return Err(bad(format!(
                    "`commands.{k}`: an array of strings (the program and its arguments) or null, got {other}"
                )));
            }
        };
        let slot = match k.as_str() {
            "test" => &mut c.test,
            "lint" => &mut c.lint,
            "security" => &mut c.security,
            "deploy" => &mut c.deploy,
            "health" => &mut c.health,
            "rollback" => &mut c.rollback,
            other => {
                return Err(bad(format!(
                    "`commands.{other}`: unknown command (known: test, lint, security, deploy, health, rollback, timeoutSecs)"
                )));
            }
        };
        *slot = argv;
    }
    Ok(c)
}

fn github_of(g: &GitHubSpec) -> Result<GitHubTarget, PipelineCallError> {
    let repo = RepoRef::parse(&format!("{}/{}", g.owner, g.repo))
        .map_err(|e| bad(format!("`github`: {e}")))?;
    let token = g
        .token
        .clone()
        .or_else(|| std::env::var("GITHUB_TOKEN").ok())
        .or_else(|| std::env::var("GH_TOKEN").ok())
        .filter(|t| !t.trim().is_empty());
    let api = g
        .api_url
        .clone()
        .or_else(|| std::env::var("GITHUB_API_URL").ok())
        .unwrap_or_else(|| "https://api.github.com".into());
    let client = GitHub::new(&api, token).map_err(|e| bad(format!("`github`: {e}")))?;
    Ok(GitHubTarget {
        client,
        repo,
        remote: g.remote.clone().unwrap_or_else(|| "origin".into()),
    })
}

/// A run as the facade's `PipelineRun`: with the approval gate's request while it waits there.
fn run_json(engine: &Engine, run: &Run) -> Value {
    let gate = (run.status == RunStatus::Suspended && run.suspended.iter().any(|s| s.path == GATE))
        .then(|| engine.approvals().get(&run.id, GATE).ok())
        .flatten()
        .map(|a| {
            json!({"path": a.gate, "title": a.title, "summary": a.summary, "data": a.data,
                   "approvers": a.approvers, "status": a.status.as_str()})
        });
    json!({
        "id": run.id,
        "workflow": run.workflow,
        "status": run.status.as_str(),
        "issue": run.input["issue"]["number"],
        "input": run.input,
        "output": run.output,
        "error": run.error,
        "suspended": run.suspended.iter().map(|s| json!({"path": s.path, "payload": s.payload})).collect::<Vec<_>>(),
        "gate": gate,
        "createdAt": run.created_at,
        "updatedAt": run.updated_at,
    })
}

impl NativePipeline {
    fn build(options: Value) -> Result<Self, PipelineCallError> {
        let s: Spec = serde_json::from_value(options).map_err(|e| bad(e.to_string()))?;
        if s.replay.is_some() && (s.model.is_some() || s.base_url.is_some()) {
            return Err(bad(
                "give either `replay` or `model` (with `baseURL`...), not both",
            ));
        }
        let repo = PathBuf::from(&s.repo);
        if !repo.is_dir() {
            return Err(bad(format!(
                "`repo`: `{}` is not a directory",
                repo.display()
            )));
        }
        let db = s.db.strip_prefix("sqlite:").unwrap_or(&s.db);
        if db.is_empty() || db == "memory" {
            return Err(bad(
                "`db`: a SQLite file (`sqlite:<path>` or a path) or a Postgres URL: the pipeline's runs must outlive the process",
            ));
        }
        let (model, replay) = model_of(&s)?;
        let mut config = PipelineConfig::new(&repo, model)?;
        if let Some(c) = &s.commands {
            config.commands = commands_of(config.commands, c)?;
        }
        if let Some(b) = &s.base {
            config.base = b.clone();
        }
        if let Some(a) = &s.approvers {
            if a.is_empty() || a.iter().any(|x| x.trim().is_empty()) {
                return Err(bad("`approvers`: at least one, none empty"));
            }
            config.approvers = a.clone();
        }
        if let Some(n) = s.max_fix_rounds {
            config.max_fix_rounds = n;
        }
        config.sandbox =
            crate::sandbox_mode(s.sandbox.as_deref()).map_err(|e| bad(e.to_string()))?;
        config.github = s.github.as_ref().map(github_of).transpose()?;
        let issue_file = s.issue_file.as_ref().map(PathBuf::from);
        if let Some(f) = &issue_file
            && !f.is_file()
        {
            return Err(bad(format!("`issueFile`: `{}` is not a file", f.display())));
        }
        let engine = Engine::open(db)?;
        let workflow = pipeline::issue_resolution(&engine, config.clone())?;
        engine.register(&workflow);
        // Gates decided elsewhere (another process, the HTTP API on this database) are handed
        // to this engine's runs by its worker.
        engine.start_worker();
        Ok(Self {
            inner: Mutex::new(Some(Arc::new(Inner {
                engine,
                workflow,
                github: config.github.clone(),
                issue_file,
                _replay: replay,
            }))),
            approvers: config.approvers.clone(),
            repo: config.repo.display().to_string(),
        })
    }

    fn inner(&self) -> Result<Arc<Inner>, PipelineCallError> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(PipelineCallError::Closed)
    }
}

/// The issue a `start` names: an object is the issue itself; a number is read from the
/// `issueFile` (with that number) or from GitHub; nothing reads the `issueFile`.
async fn issue_of(inner: &Inner, issue: Option<Value>) -> Result<Value, PipelineCallError> {
    let number = match &issue {
        Some(Value::Object(_)) => {
            return issue.ok_or_else(|| bad("`issue`: missing"));
        }
        Some(Value::Number(n)) => Some(
            n.as_f64()
                .filter(|f| *f >= 1.0 && f.fract() == 0.0 && *f <= 9_007_199_254_740_991.0)
                .map(|f| f as u64)
                .ok_or_else(|| bad(format!("`issue`: a whole number from 1, got {n}")))?,
        ),
        None | Some(Value::Null) => None,
        Some(other) => {
            return Err(bad(format!(
                "`issue`: a number or {{number, title, body}}, got {other}"
            )));
        }
    };
    match (&inner.issue_file, number, &inner.github) {
        (Some(f), n, _) => Ok(runner::read_issue_file(f, n)?),
        (None, Some(n), Some(gh)) => Ok(runner::fetch_issue(gh, n).await?),
        (None, Some(n), None) => Err(bad(format!(
            "issue #{n}: the pipeline has neither `github` to read it from nor an `issueFile`; pass the issue itself ({{number, title, body}})"
        ))),
        (None, None, _) => Err(bad(
            "`issue`: give its number (read from GitHub) or the issue itself, or configure `issueFile`",
        )),
    }
}

#[napi]
impl NativePipeline {
    /// Builds the engine on `options.db`, the pipeline's configuration and the workflow
    /// `issue-resolution` (registered, so runs of earlier processes can be continued here).
    #[napi(factory, ts_args_type = "options: Record<string, unknown>")]
    pub fn create(options: Value) -> napi::Result<Self, String> {
        Ok(napi::bindgen_prelude::within_runtime_if_available(|| {
            Self::build(options)
        })?)
    }

    /// The repository (absolute).
    #[napi(getter)]
    pub fn repo(&self) -> String {
        self.repo.clone()
    }

    /// Who may decide the approval gate.
    #[napi(getter)]
    pub fn approvers(&self) -> Vec<String> {
        self.approvers.clone()
    }

    /// Starts a run for the issue (or continues the issue's unfinished one) and resolves once
    /// it finishes or suspends. Like every async method here, it resolves with `{ok: true,
    /// value}` (the run) or `{ok: false, code, message}`; it never rejects.
    #[napi(
        ts_args_type = "issue?: number | Record<string, unknown> | null",
        ts_return_type = "Promise<{ ok: true; value: unknown } | { ok: false; code: string; message: string }>"
    )]
    pub async fn start(&self, issue: Option<Value>) -> Value {
        let inner = match self.inner() {
            Ok(i) => i,
            Err(e) => return settle(Err(e)),
        };
        settle(start(&inner, issue).await)
    }

    /// Waits until the run no longer executes here (finished, or suspended) and returns it.
    #[napi(
        ts_return_type = "Promise<{ ok: true; value: unknown } | { ok: false; code: string; message: string }>"
    )]
    pub async fn wait(&self, run_id: String) -> Value {
        let inner = self.inner();
        settle(
            async move {
                let inner = inner?;
                let run = inner.engine.wait(&run_id).await?;
                Ok(run_json(&inner.engine, &run))
            }
            .await,
        )
    }

    /// The run as stored, or null.
    #[napi(
        ts_return_type = "Promise<{ ok: true; value: unknown } | { ok: false; code: string; message: string }>"
    )]
    pub async fn get(&self, run_id: String) -> Value {
        let inner = self.inner();
        settle(
            async move {
                let inner = inner?;
                let run = inner.engine.get(&run_id).await?;
                Ok(run.map_or(Value::Null, |r| run_json(&inner.engine, &r)))
            }
            .await,
        )
    }

    /// The pipeline's runs (of one issue, when given), newest first.
    #[napi(
        ts_return_type = "Promise<{ ok: true; value: unknown } | { ok: false; code: string; message: string }>"
    )]
    pub async fn list(&self, issue: Option<u32>) -> Value {
        let inner = self.inner();
        settle(
            async move {
                let inner = inner?;
                let runs = match issue {
                    Some(n) => runner::runs_for_issue(&inner.engine, u64::from(n)).await?,
                    None => {
                        inner
                            .engine
                            .list(&miyabi::RunFilter {
                                workflow: Some(pipeline::WORKFLOW_ID.into()),
                                ..miyabi::RunFilter::default()
                            })
                            .await?
                    }
                };
                Ok(Value::Array(
                    runs.iter().map(|r| run_json(&inner.engine, r)).collect(),
                ))
            }
            .await,
        )
    }

    /// Decides the approval gate as `who` (one of the approvers), approving or rejecting with
    /// an optional comment, and resolves once the run finishes or suspends again.
    #[napi(
        ts_return_type = "Promise<{ ok: true; value: unknown } | { ok: false; code: string; message: string }>"
    )]
    pub async fn decide(
        &self,
        run_id: String,
        approve: bool,
        who: String,
        comment: Option<String>,
    ) -> Value {
        let inner = self.inner();
        settle(
            async move {
                let inner = inner?;
                let mut d = if approve {
                    Decision::approve()
                } else {
                    Decision::reject()
                };
                if let Some(c) = comment {
                    d = d.comment(c);
                }
                inner
                    .engine
                    .approvals()
                    .decide(&run_id, GATE, &Approver::new(who), d)
                    .await?;
                let run = inner.engine.wait(&run_id).await?;
                Ok(run_json(&inner.engine, &run))
            }
            .await,
        )
    }

    /// Resumes a suspended path other than the gate with `data` (a command a task waits on:
    /// `implement` with `{approved}`; an interrupted deploy: `deploy` with `{rerun: true}`) and
    /// resolves once the run finishes or suspends again.
    #[napi(
        ts_args_type = "runId: string, path: string, data: unknown",
        ts_return_type = "Promise<{ ok: true; value: unknown } | { ok: false; code: string; message: string }>"
    )]
    pub async fn resume(&self, run_id: String, path: String, data: Value) -> Value {
        let inner = self.inner();
        settle(
            async move {
                let inner = inner?;
                if path == GATE {
                    return Err(bad(
                        "the approval gate is decided with approve/reject (which keep its audit trail), not resumed",
                    ));
                }
                let run = inner
                    .engine
                    .resume(&run_id, &path, crate::ints(data))
                    .await?;
                Ok(run_json(&inner.engine, &run))
            }
            .await,
        )
    }

    /// Takes over the runs a dead process left running (their lease lapsed) and drives them
    /// here; resolves with their ids (`wait` for each).
    #[napi(
        ts_return_type = "Promise<{ ok: true; value: unknown } | { ok: false; code: string; message: string }>"
    )]
    pub async fn recover(&self) -> Value {
        let inner = self.inner();
        settle(
            async move {
                let inner = inner?;
                Ok(json!(inner.engine.recover().await?))
            }
            .await,
        )
    }

    /// Closes this handle: later calls fail with `SHUTDOWN`. Runs executing now go on until
    /// they finish or suspend; what they commit stays in the database.
    #[napi]
    pub fn close(&self) {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

async fn start(inner: &Inner, issue: Option<Value>) -> Result<Value, PipelineCallError> {
    let issue = issue_of(inner, issue).await?;
    let number = issue["number"]
        .as_u64()
        .ok_or_else(|| bad("`issue.number`: a whole number from 1"))?;
    let engine = &inner.engine;
    let id = match runner::unfinished_run(engine, number).await? {
        Some(r) => {
            if r.status == RunStatus::Running {
                // Left by a dead process: take it over (nothing happens if it is alive).
                engine.recover().await?;
            }
            r.id
        }
        None => engine
            .spawn(&inner.workflow, json!({"issue": issue}))?
            .id()
            .to_owned(),
    };
    let run = engine.wait(&id).await?;
    Ok(run_json(engine, &run))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn map(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn commands_replace_remove_and_refuse_naming_the_key() {
        let base = RepoCommands {
            test: Some(vec!["cargo".into(), "test".into()]),
            lint: Some(vec!["cargo".into(), "clippy".into()]),
            ..RepoCommands::default()
        };
        let c = commands_of(
            base.clone(),
            &map(json!({"test": ["sh", "test.sh"], "lint": null, "timeoutSecs": 30})),
        )
        .unwrap();
        assert_eq!(c.test, Some(vec!["sh".to_owned(), "test.sh".to_owned()]));
        assert_eq!(c.lint, None, "null removes the command");
        assert_eq!(c.timeout_secs, Some(30));
        for (bad_value, words) in [
            (json!({"deploy": []}), "`commands.deploy`"),
            (json!({"deploy": ["ok", 3]}), "`commands.deploy`"),
            (json!({"timeoutSecs": 0.5}), "`commands.timeoutSecs`"),
            (json!({"build": ["make"]}), "unknown command"),
        ] {
            let e = commands_of(base.clone(), &map(bad_value)).unwrap_err();
            assert_eq!(e.code(), "INVALID_ARGUMENT");
            assert!(e.to_string().contains(words), "{e}");
        }
    }
}
