//! The issue-resolution pipeline, for real: IssueAgent analyses the issue → CoordinatorAgent
//! plans a DAG of tasks → the plan runs as a workflow built at run time (a child run, level by
//! level, each CodeGenAgent task in its own git worktree, merged after each level onto the
//! branch `miyabi/issue-<N>`) → ReviewAgent scores the change (static checks + the model's
//! review; below [`REVIEW_THRESHOLD`] a fix loop of CodeGenAgent + ReviewAgent, at most 3
//! rounds) → test ∥ lint ∥ security with the repository's own commands, each in its own
//! worktree → an approval gate → PRAgent writes the pull request, the branch is squashed into
//! one Conventional Commits commit, pushed, and a draft PR opened (once: a restarted run finds
//! the PR it opened) → DeploymentAgent's deploy command with a health check and rollback.
//!
//! Every stage is a durable step: a killed process's run is taken over by the next process on
//! the same database (`Engine::recover`), committed steps are not run again, and the steps with
//! outside effects (labels, push, PR) are idempotent.
//!
//! A CodeGenAgent command that the permission policy asks about waits for a human: in the
//! plan's child run, the `implement` step suspends too and forwards the decision it is resumed
//! with to the child ([`crate::child_approval`]); in the fix loop, the `revise` step is the
//! agent's own step and suspends as agents do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miyabi::approval::ApprovalGate;
use miyabi::{
    CommittedWorkflow, Engine, LanguageModel, Node, OnInterrupt, RunFilter, RunStatus, Step,
    StepContext, StepError, Workflow, WorkflowError, step_fn,
};
use miyabi_code::Worktrees;
use miyabi_code::git::ChildResult;
use miyabi_code::shell::SandboxMode;
use serde_json::{Value, json};

use crate::child_approval;
use crate::coding::{self, CodegenOptions, Review};
use crate::commands::{CheckResult, RepoCommands, run_check};
use crate::github::{GitHub, NewPullRequest, RepoRef};
use crate::plan::{Plan, Task, TaskAgent};

/// The review score at and above which the change ships; below it, the fix loop runs.
pub const REVIEW_THRESHOLD: u8 = 80;

/// The workflow's id.
pub const WORKFLOW_ID: &str = "issue-resolution";

/// Where the pull request goes.
#[derive(Debug, Clone)]
pub struct GitHubTarget {
    /// The client.
    pub client: GitHub,
    /// The repository on GitHub.
    pub repo: RepoRef,
    /// The git remote to push to (a remote name, URL or path; default `origin`).
    pub remote: String,
}

/// The pipeline's configuration.
#[derive(Clone)]
pub struct PipelineConfig {
    /// The local git repository.
    pub repo: PathBuf,
    /// The model of every agent.
    pub model: Arc<dyn LanguageModel>,
    /// The repository's commands (default: [`RepoCommands::load`]).
    pub commands: RepoCommands,
    /// Where the PR goes; `None`: the PR is drafted and the branch committed, nothing is sent.
    pub github: Option<GitHubTarget>,
    /// The branch the work starts from and the PR targets (default: the repository's current
    /// branch).
    pub base: String,
    /// Who may decide the approval gate (default: `$USER`).
    pub approvers: Vec<String>,
    /// Fix rounds after a review below the threshold (default 3; more fails the run).
    pub max_fix_rounds: u32,
    /// The CodeGenAgent shell's sandbox (default workspace-write).
    pub sandbox: SandboxMode,
}

impl std::fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineConfig")
            .field("repo", &self.repo)
            .field("commands", &self.commands)
            .field("github", &self.github)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Why the pipeline could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// The repository's commands are misconfigured.
    #[error(transparent)]
    Commands(#[from] crate::commands::CommandsError),
    /// Git failed.
    #[error("git: {0}")]
    Git(String),
    /// The workflow could not be built.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
}

impl PipelineConfig {
    /// The configuration for `repo` with `model`: its commands from `.miyabi/pipeline.toml`
    /// or the Cargo/npm defaults, its current branch as the base, no GitHub.
    pub fn new(
        repo: impl AsRef<Path>,
        model: Arc<dyn LanguageModel>,
    ) -> Result<Self, PipelineError> {
        let repo = crate::commands::absolute(repo.as_ref());
        let commands = RepoCommands::load(&repo)?;
        let out = std::process::Command::new("git")
            .args(["rev-parse", "--abbrev-ref", "HEAD"])
            .current_dir(&repo)
            .output()
            .map_err(|e| PipelineError::Git(e.to_string()))?;
        if !out.status.success() {
            return Err(PipelineError::Git(format!(
                "{} is not a git repository with a commit: {}",
                repo.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let base = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(Self {
            repo,
            model,
            commands,
            github: None,
            base,
            approvers: vec![std::env::var("USER").unwrap_or_else(|_| "reviewer".into())],
            max_fix_rounds: 3,
            sandbox: SandboxMode::WorkspaceWrite,
        })
    }
}

/// Runs git in `dir`; its stdout.
async fn git(dir: &Path, args: &[&str]) -> Result<String, StepError> {
    let out = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(|e| StepError::fatal(format!("git {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(StepError::fatal(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The branch of issue `n`.
pub fn branch_of(issue: u64) -> String {
    format!("miyabi/issue-{issue}")
}

fn issue_number(issue: &Value) -> Result<u64, StepError> {
    issue["number"].as_u64().ok_or_else(|| {
        StepError::fatal("the input's `issue.number` is missing or not a whole number")
    })
}

/// A checkout of `rev` in a worktree of its own under the repository's git directory, for
/// `f`; removed afterwards (and before, when a crashed run left it).
async fn with_checkout<T, F, Fut>(repo: &Path, key: &str, rev: &str, f: F) -> Result<T, StepError>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<T, StepError>>,
{
    let common = git(repo, &["rev-parse", "--git-common-dir"]).await?;
    let common = if Path::new(&common).is_absolute() {
        PathBuf::from(common)
    } else {
        repo.join(common)
    };
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = common.join("miyabi").join("checks").join(safe);
    let dir_s = dir.display().to_string();
    {
        // git's worktree bookkeeping is not safe against concurrent adds and prunes.
        let _admin = WORKTREE_ADMIN.lock().await;
        if dir.exists() {
            let _ = git(repo, &["worktree", "remove", "--force", &dir_s]).await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        // --force: a crash may have left the path registered with its directory gone.
        git(
            repo,
            &[
                "worktree", "add", "--force", "--quiet", "--detach", &dir_s, rev,
            ],
        )
        .await?;
    }
    let result = f(dir.clone()).await;
    let _admin = WORKTREE_ADMIN.lock().await;
    let _ = git(repo, &["worktree", "remove", "--force", &dir_s]).await;
    result
}

/// Serialises this process's `git worktree` add/remove/prune of checks.
static WORKTREE_ADMIN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn issue_text(issue: &Value) -> String {
    let mut s = format!(
        "Issue #{}: {}\n\n{}",
        issue["number"],
        issue["title"].as_str().unwrap_or(""),
        issue["body"].as_str().unwrap_or("")
    );
    if let Some(comments) = issue["comments"].as_array() {
        for c in comments {
            s.push_str("\n\n---\nComment: ");
            s.push_str(c.as_str().unwrap_or(&c.to_string()));
        }
    }
    s
}

/// The state keys the pipeline keeps.
const ISSUE: &str = "miyabi.issue";
const ANALYSIS: &str = "miyabi.analysis";
const BASE: &str = "miyabi.base";
const PLAN_RUN: &str = "miyabi.plan_run";
/// What the `implement` step suspended for: the child's suspensions ([`child_approval`]).
const PLAN_WAIT: &str = "miyabi.plan_wait";

/// The issue-resolution workflow on `engine` (the plan's child runs go to the same engine).
/// Input: `{"issue": {"number", "title", "body", "comments"?: [text], "labels"?: [name]}}`.
/// Output: `{"issue", "branch", "commit", "review", "checks", "pr", "deploy"}`.
pub fn issue_resolution(
    engine: &Engine,
    config: PipelineConfig,
) -> Result<CommittedWorkflow, PipelineError> {
    let cfg = Arc::new(config);
    let trees = Worktrees::new(&cfg.repo).map_err(|e| PipelineError::Git(e.to_string()))?;

    // 1. IssueAgent.
    let c = Arc::clone(&cfg);
    let analyze = step_fn(move |ctx: StepContext, input: Value| {
        let c = Arc::clone(&c);
        async move {
            let issue = input["issue"].clone();
            let n = issue_number(&issue)?;
            let agent = coding::issue().model(Arc::clone(&c.model));
            let analysis = agent.run(&ctx, Value::String(issue_text(&issue))).await?;
            if let Some(gh) = &c.github {
                let mut labels: Vec<String> = issue["labels"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|l| l.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                for l in analysis["labels"].as_array().into_iter().flatten() {
                    if let Some(l) = l.as_str()
                        && !labels.iter().any(|x| x == l)
                    {
                        labels.push(l.to_owned());
                    }
                }
                labels.retain(|l| !l.starts_with("state:"));
                labels.push("state:implementing".into());
                gh.client
                    .set_labels(&gh.repo, n, &labels)
                    .await
                    .map_err(|e| StepError::retryable(e.to_string()))?;
            }
            let base = git(&c.repo, &["rev-parse", &format!("{}^{{commit}}", c.base)]).await?;
            ctx.set_state(ISSUE, issue.clone());
            ctx.set_state(ANALYSIS, analysis.clone());
            ctx.set_state(BASE, base.clone());
            Ok(json!({"issue": issue, "analysis": analysis}))
        }
    });

    // 2. CoordinatorAgent.
    let c = Arc::clone(&cfg);
    let plan = step_fn(move |ctx: StepContext, input: Value| {
        let c = Arc::clone(&c);
        async move {
            let agent = coding::coordinator().model(Arc::clone(&c.model));
            let out = agent.run(&ctx, input).await?;
            let plan: Plan = serde_json::from_value(out.clone())
                .map_err(|e| StepError::fatal(format!("the plan: {e}")))?;
            plan.levels().map_err(|e| StepError::fatal(e.to_string()))?;
            Ok(out)
        }
    });

    // 3. The plan as a child run.
    let (c, e, t) = (Arc::clone(&cfg), engine.clone(), trees.clone());
    let implement = step_fn(move |ctx: StepContext, input: Value| {
        let (c, engine, trees) = (Arc::clone(&c), e.clone(), t.clone());
        async move {
            let plan: Plan = serde_json::from_value(input)
                .map_err(|e| StepError::fatal(format!("the plan: {e}")))?;
            let issue = ctx.state(ISSUE).unwrap_or(Value::Null);
            let n = issue_number(&issue)?;
            let base = ctx.state(BASE).unwrap_or(Value::Null);
            let base = base.as_str().unwrap_or("HEAD").to_owned();
            let branch = branch_of(n);
            let wf = plan_workflow(&c, &trees, &plan, ctx.run_id(), &branch, &issue)
                .map_err(|e| StepError::fatal(e.to_string()))?;
            engine.register(&wf);
            let existing = engine
                .list(&RunFilter {
                    workflow: Some(wf.id().to_owned()),
                    ..RunFilter::default()
                })
                .await
                .map_err(|e| StepError::retryable(e.to_string()))?;
            let child = match existing.into_iter().next() {
                Some(r) => {
                    if r.status == RunStatus::Running {
                        // Left by a dead process: take it over (its workflow is registered now).
                        engine
                            .recover()
                            .await
                            .map_err(|e| StepError::retryable(e.to_string()))?;
                    }
                    r.id
                }
                None => {
                    git(&c.repo, &["branch", "-f", &branch, &base]).await?;
                    engine
                        .spawn(&wf, json!({"plan": plan}))
                        .map_err(|e| StepError::retryable(e.to_string()))?
                        .id()
                        .to_owned()
                }
            };
            ctx.set_state(PLAN_RUN, child.clone());
            ctx.emit("plan-run", json!({"run": child, "workflow": wf.id()}));
            // Resumed with a decision on the child's tool approvals: hand it on.
            if let Some(data) = ctx.resume_data() {
                let recorded = ctx.state(PLAN_WAIT).unwrap_or(Value::Null);
                let paths = child_approval::forward(&engine, &child, &recorded, data).await?;
                ctx.emit("plan-decision", json!({"run": child, "paths": paths}));
            }
            let run = child_approval::wait_child(&ctx, &engine, &child).await?;
            if run.status == RunStatus::Suspended {
                // A task waits for a human (a command the policy asks about): so does this step.
                let payload = child_approval::parent_payload(&child, wf.id(), &run.suspended);
                ctx.set_state(PLAN_WAIT, payload.clone());
                return ctx.suspend(payload);
            }
            if run.status != RunStatus::Succeeded {
                return Err(StepError::fatal(format!(
                    "the plan's run {child} is {}: {}",
                    run.status,
                    run.error.unwrap_or_default()
                )));
            }
            if ctx.state(PLAN_WAIT).is_some_and(|v| !v.is_null()) {
                ctx.set_state(PLAN_WAIT, Value::Null);
            }
            let commit = git(&c.repo, &["rev-parse", &branch]).await?;
            let files = git(&c.repo, &["diff", "--name-only", &base, &commit]).await?;
            Ok(
                json!({"branch": branch, "base": base, "commit": commit, "plan_run": child,
                      "files": files.lines().collect::<Vec<_>>(), "tasks": run.output}),
            )
        }
    });

    // 4. ReviewAgent, and the fix loop.
    let review_step = || review_node(Arc::clone(&cfg));
    let (c, t) = (Arc::clone(&cfg), trees.clone());
    let revise = step_fn(move |ctx: StepContext, review: Value| {
        let (c, trees) = (Arc::clone(&c), t.clone());
        async move {
            let issue = ctx.state(ISSUE).unwrap_or(Value::Null);
            let trees = trees.base(branch_of(issue_number(&issue)?));
            // Resumed after a tool approval: go on in the same worktree, with what the agent
            // did before it asked.
            let wt = trees
                .create(ctx.run_id(), ctx.path(), ctx.resume_data().is_some())
                .await
                .map_err(|e| StepError::fatal(e.to_string()))?;
            let agent = coding::codegen(
                wt.dir(),
                CodegenOptions {
                    sandbox: c.sandbox,
                    ..CodegenOptions::default()
                }
                .allow_commands(&c.commands),
            )
            .map_err(|e| StepError::fatal(e.to_string()))?
            .model(Arc::clone(&c.model));
            let prompt = json!({"task": "Fix every finding of the review, then stop.",
                                "issue": issue_text(&issue), "review": review});
            match agent.run(&ctx, prompt).await {
                Ok(out) => {
                    let child = trees
                        .finish(&wt, out)
                        .await
                        .map_err(|e| StepError::fatal(e.to_string()))?;
                    serde_json::to_value(child).map_err(|e| StepError::fatal(e.to_string()))
                }
                // Suspended (a command waits for approval): the worktree stays for the resume.
                Err(e) if is_suspension(&e) => Err(e),
                Err(e) => {
                    let _ = trees.remove(wt.entry(), true).await;
                    Err(e)
                }
            }
        }
    });
    let fix_round = Workflow::new("round")
        .step(
            "revise",
            revise.resume_schema(child_approval::decision_schema()),
        )
        .then(
            "advance",
            advance_node(Arc::clone(&cfg), trees.clone(), None),
        )
        .then("review", review_step());
    let fix = Workflow::new("fix").dountil(
        "rounds",
        fix_round,
        |v: &Value| score(v) >= REVIEW_THRESHOLD,
        cfg.max_fix_rounds.max(1),
    );
    let ship = step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) });

    // 5. test ∥ lint ∥ security, each in its own worktree.
    let check = |name: &'static str| {
        let c = Arc::clone(&cfg);
        step_fn(move |ctx: StepContext, _input: Value| {
            let c = Arc::clone(&c);
            async move {
                let issue = ctx.state(ISSUE).unwrap_or(Value::Null);
                let branch = branch_of(issue_number(&issue)?);
                let key = format!("{}-{}", ctx.run_id(), ctx.path());
                let r = with_checkout(&c.repo, &key, &branch, |dir| {
                    let c = Arc::clone(&c);
                    async move { Ok(run_check(&c.commands, name, &dir).await) }
                })
                .await?;
                serde_json::to_value(r).map_err(|e| StepError::fatal(e.to_string()))
            }
        })
    };
    let verdict = step_fn(|ctx: StepContext, checks: Value| async move {
        let failed: Vec<String> = ["test", "lint", "security"]
            .iter()
            .filter(|n| checks[**n]["passed"] == false && checks[**n]["skipped"] == false)
            .map(|n| format!("{n}: {}", checks[*n]["output"].as_str().unwrap_or("")))
            .collect();
        if !failed.is_empty() {
            return Err(StepError::fatal(format!(
                "checks failed — {}",
                failed.join("; ")
            )));
        }
        let review = ctx.state("miyabi.review").unwrap_or(Value::Null);
        Ok(json!({"checks": checks, "review": review}))
    });

    // 6. The human.
    let gate = ApprovalGate::new()
        .title("Open the pull request and deploy?")
        .summary_from(|v: &Value| {
            let line = |n: &str| {
                let c = &v["checks"][n];
                if c["skipped"] == true {
                    format!("{n} skipped")
                } else if c["passed"] == true {
                    format!("{n} passed")
                } else {
                    format!("{n} FAILED")
                }
            };
            format!(
                "review {}/100; {}, {}, {}",
                v["review"]["score"],
                line("test"),
                line("lint"),
                line("security")
            )
        })
        .approvers(cfg.approvers.clone());

    // 7. PRAgent + the pull request.
    let c = Arc::clone(&cfg);
    let pr_draft = step_fn(move |ctx: StepContext, decision: Value| {
        let c = Arc::clone(&c);
        async move {
            if decision["approved"] != true {
                return Ok(
                    json!({"skipped": "the change was rejected at the approval gate",
                                 "comment": decision["comment"]}),
                );
            }
            let issue = ctx.state(ISSUE).unwrap_or(Value::Null);
            let n = issue_number(&issue)?;
            let branch = branch_of(n);
            let base = ctx.state(BASE).unwrap_or(Value::Null);
            let base = base.as_str().unwrap_or("HEAD").to_owned();
            let diff = git(&c.repo, &["diff", &base, &branch]).await?;
            let agent = coding::pr(&c.repo)
                .map_err(|e| StepError::fatal(e.to_string()))?
                .model(Arc::clone(&c.model));
            let prompt = json!({"issue": issue_text(&issue), "analysis": ctx.state(ANALYSIS),
                                "review": ctx.state("miyabi.review"), "branch": branch, "diff": diff});
            let mut draft = agent.run(&ctx, prompt).await?;
            let closes = format!("Closes #{n}");
            let body = draft["body"].as_str().unwrap_or("").to_owned();
            if !body.contains(&closes) {
                draft["body"] = Value::String(format!("{body}\n\n{closes}"));
            }
            Ok(draft)
        }
    });
    let c = Arc::clone(&cfg);
    let open_pr = step_fn(move |ctx: StepContext, draft: Value| {
        let c = Arc::clone(&c);
        async move {
            if draft.get("skipped").is_some() {
                return Ok(draft);
            }
            let issue = ctx.state(ISSUE).unwrap_or(Value::Null);
            let n = issue_number(&issue)?;
            let branch = branch_of(n);
            let base = ctx.state(BASE).unwrap_or(Value::Null);
            let base = base.as_str().unwrap_or("HEAD").to_owned();
            let title = draft["title"].as_str().unwrap_or("").to_owned();
            let body = draft["body"].as_str().unwrap_or("").to_owned();
            let commit = squash(&c.repo, &branch, &base, &title, &body).await?;
            let Some(gh) = &c.github else {
                return Ok(
                    json!({"title": title, "body": body, "branch": branch, "commit": commit,
                                 "opened": false, "reason": "no GitHub repository configured"}),
                );
            };
            gh.client
                .push(&c.repo, &gh.remote, &branch)
                .await
                .map_err(|e| StepError::retryable(e.to_string()))?;
            let existing = gh
                .client
                .find_pull(&gh.repo, &branch)
                .await
                .map_err(|e| StepError::retryable(e.to_string()))?;
            let pr = match existing {
                Some(pr) => pr,
                None => gh
                    .client
                    .create_draft_pull(
                        &gh.repo,
                        &NewPullRequest {
                            title: title.clone(),
                            body: body.clone(),
                            head: branch.clone(),
                            base: c.base.clone(),
                        },
                    )
                    .await
                    .map_err(|e| StepError::retryable(e.to_string()))?,
            };
            Ok(
                json!({"title": title, "body": body, "branch": branch, "commit": commit,
                      "opened": true, "number": pr.number, "url": pr.html_url}),
            )
        }
    })
    .retry(miyabi::RetryPolicy::attempts(3));

    // 8. DeploymentAgent's commands: deploy, health check, rollback.
    let c = Arc::clone(&cfg);
    let deploy = step_fn(move |ctx: StepContext, pr: Value| {
        let c = Arc::clone(&c);
        async move {
            if pr.get("skipped").is_some() || c.commands.deploy.is_none() {
                let why = if pr.get("skipped").is_some() {
                    "rejected at the approval gate"
                } else {
                    "no deploy command is configured"
                };
                return Ok(
                    json!({"pr": pr, "deploy": {"environment": "none", "deployed": false,
                    "healthy": false, "rolled_back": false, "summary": why}}),
                );
            }
            let issue = ctx.state(ISSUE).unwrap_or(Value::Null);
            let branch = branch_of(issue_number(&issue)?);
            let key = format!("{}-{}", ctx.run_id(), ctx.path());
            let report = with_checkout(&c.repo, &key, &branch, |dir| {
                let c = Arc::clone(&c);
                async move { Ok(deploy_with_rollback(&c.commands, &dir).await) }
            })
            .await?;
            Ok(json!({"pr": pr, "deploy": report}))
        }
    })
    .non_idempotent(OnInterrupt::Suspend);

    let c = Arc::clone(&cfg);
    let done = step_fn(move |ctx: StepContext, v: Value| {
        let c = Arc::clone(&c);
        async move {
            let issue = ctx.state(ISSUE).unwrap_or(Value::Null);
            let n = issue_number(&issue)?;
            if let Some(gh) = &c.github
                && v["pr"]["opened"] == true
            {
                let mut labels: Vec<String> = ctx
                    .state(ANALYSIS)
                    .and_then(|a| serde_json::from_value(a["labels"].clone()).ok())
                    .unwrap_or_default();
                labels.retain(|l: &String| !l.starts_with("state:"));
                labels.push("state:reviewing".into());
                gh.client
                    .set_labels(&gh.repo, n, &labels)
                    .await
                    .map_err(|e| StepError::retryable(e.to_string()))?;
            }
            // The tasks' and merges' branches are folded into the issue's branch: delete them.
            let mut runs = vec![ctx.run_id().to_owned()];
            if let Some(child) = ctx
                .state(PLAN_RUN)
                .and_then(|v| v.as_str().map(str::to_owned))
            {
                runs.push(child);
            }
            let refs = git(
                &c.repo,
                &[
                    "for-each-ref",
                    "--format=%(refname:short)",
                    "refs/heads/miyabi/",
                ],
            )
            .await?;
            for r in refs.lines() {
                if runs.iter().any(|id| r.starts_with(&format!("miyabi/{id}"))) {
                    let _ = git(&c.repo, &["branch", "-D", r]).await;
                }
            }
            Ok(
                json!({"issue": n, "branch": branch_of(n), "review": ctx.state("miyabi.review"),
                      "pr": v["pr"], "deploy": v["deploy"]}),
            )
        }
    });

    Ok(Workflow::new(WORKFLOW_ID)
        .input_schema(json!({"type": "object", "required": ["issue"], "properties": {
            "issue": {"type": "object", "required": ["number", "title"], "properties": {
                "number": {"type": "integer", "minimum": 1}, "title": {"type": "string"},
                "body": {"type": ["string", "null"]}, "comments": {"type": "array"}, "labels": {"type": "array"}}}}}))
        .step("analyze", analyze)
        .then("plan", plan)
        .then(
            "implement",
            implement.resume_schema(child_approval::decision_schema()),
        )
        .then("review", review_step())
        .branch(
            "quality",
            |v: &Value| if score(v) >= REVIEW_THRESHOLD { "ship" } else { "fix" },
            [("ship", ship), ("fix", Node::from(fix))],
        )
        .parallel([("test", check("test")), ("lint", check("lint")), ("security", check("security"))])
        .then("verdict", verdict)
        .await_approval("approval", gate)
        .then("pr-draft", pr_draft)
        .then("open-pr", open_pr)
        .then("deploy", deploy)
        .then("done", done)
        .commit()?)
}

/// Whether a step's error is a suspension (`ctx.suspend`), not a failure.
fn is_suspension(e: &StepError) -> bool {
    !e.is_retryable() && e.message().starts_with("suspended: ")
}

fn score(v: &Value) -> u8 {
    v["score"].as_u64().map(|s| s.min(100) as u8).unwrap_or(0)
}

/// The review: the static checks in a checkout of the branch, then ReviewAgent with the diff
/// and their results; a failed test or lint caps the score below the threshold.
fn review_node(c: Arc<PipelineConfig>) -> Node {
    step_fn(move |ctx: StepContext, _input: Value| {
        let c = Arc::clone(&c);
        async move {
            let issue = ctx.state(ISSUE).unwrap_or(Value::Null);
            let branch = branch_of(issue_number(&issue)?);
            let base = ctx.state(BASE).unwrap_or(Value::Null);
            let base = base.as_str().unwrap_or("HEAD").to_owned();
            let diff = git(&c.repo, &["diff", &base, &branch]).await?;
            let key = format!("{}-{}", ctx.run_id(), ctx.path());
            let (checks, review) = with_checkout(&c.repo, &key, &branch, |dir| {
                let (c, ctx) = (Arc::clone(&c), ctx.clone());
                async move {
                    let mut checks: Vec<CheckResult> = Vec::new();
                    for n in ["test", "lint"] {
                        checks.push(run_check(&c.commands, n, &dir).await);
                    }
                    let agent = coding::review(&dir, c.commands.clone())
                        .map_err(|e| StepError::fatal(e.to_string()))?
                        .model(Arc::clone(&c.model));
                    let prompt =
                        json!({"issue": issue_text(&issue), "diff": diff, "checks": checks});
                    let out = agent.run(&ctx, prompt).await?;
                    Ok((checks, out))
                }
            })
            .await?;
            let mut review: Review = serde_json::from_value(review)
                .map_err(|e| StepError::fatal(format!("the review: {e}")))?;
            for ch in checks.iter().filter(|ch| !ch.passed && !ch.skipped) {
                review.score = review.score.min(REVIEW_THRESHOLD - 1);
                review.findings.push(coding::Finding {
                    severity: coding::Severity::High,
                    file: None,
                    line: None,
                    message: format!("`{}` fails: {}", ch.command.join(" "), ch.output.trim()),
                });
            }
            let out = serde_json::to_value(&review).map_err(|e| StepError::fatal(e.to_string()))?;
            ctx.set_state("miyabi.review", out.clone());
            let mut out = out;
            out["checks"] = serde_json::to_value(&checks).unwrap_or(Value::Null);
            Ok(out)
        }
    })
}

/// Merges worktree results (a [`ChildResult`], or the object a parallel of them outputs) and
/// moves the issue's branch to the merge.
fn advance_node(c: Arc<PipelineConfig>, trees: Worktrees, branch: Option<String>) -> Node {
    step_fn(move |ctx: StepContext, input: Value| {
        let (c, trees, branch) = (Arc::clone(&c), trees.clone(), branch.clone());
        async move {
            let items: Vec<Value> = if input.get("branch").is_some() && input.get("path").is_some()
            {
                vec![input]
            } else {
                match input {
                    Value::Object(o) => o.into_iter().map(|(_, v)| v).collect(),
                    Value::Array(a) => a,
                    other => return Err(StepError::fatal(format!("nothing to merge in {other}"))),
                }
            };
            let children: Vec<ChildResult> = items
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()
                .map_err(|e| StepError::fatal(format!("the tasks' results: {e}")))?;
            let branch = match branch {
                Some(b) => b,
                None => branch_of(issue_number(&ctx.state(ISSUE).unwrap_or(Value::Null))?),
            };
            let report = trees
                .base(branch.clone())
                .merge(ctx.run_id(), ctx.path(), &children)
                .await
                .map_err(|e| StepError::fatal(e.to_string()))?;
            if !report.conflicts.is_empty() {
                return Err(StepError::fatal(format!(
                    "tasks changed the same lines: {:?}",
                    report.conflicts
                )));
            }
            git(&c.repo, &["branch", "-f", &branch, &report.commit]).await?;
            serde_json::to_value(&report).map_err(|e| StepError::fatal(e.to_string()))
        }
    })
}

/// The plan as a workflow `plan-<run id>`: per level of the DAG, its CodeGenAgent tasks in
/// parallel (each in a worktree from the issue's branch), then a merge that moves the branch.
/// Review and deployment tasks are left to the pipeline's own review and deploy stages.
pub fn plan_workflow(
    c: &Arc<PipelineConfig>,
    trees: &Worktrees,
    plan: &Plan,
    parent_run: &str,
    branch: &str,
    issue: &Value,
) -> Result<CommittedWorkflow, PipelineError> {
    let levels = plan
        .levels()
        .map_err(|e| PipelineError::Git(e.to_string()))?;
    let trees = trees.clone().base(branch.to_owned());
    let mut wf = Workflow::new(format!("plan-{parent_run}"));
    let mut any = false;
    for (k, level) in levels.iter().enumerate() {
        let tasks: Vec<&Task> = level
            .iter()
            .filter(|t| t.agent == TaskAgent::Codegen)
            .collect();
        if tasks.is_empty() {
            continue;
        }
        any = true;
        let mut children = Vec::new();
        for task in tasks {
            let (c, task_v, issue) = (
                Arc::clone(c),
                serde_json::to_value(task).unwrap_or_default(),
                issue.clone(),
            );
            let node = trees.step(move |ctx: StepContext, wt, _input: Value| {
                let (c, task, issue) = (Arc::clone(&c), task_v.clone(), issue.clone());
                async move {
                    let agent = coding::codegen(
                        wt.dir(),
                        CodegenOptions {
                            sandbox: c.sandbox,
                            ..CodegenOptions::default()
                        }
                        .allow_commands(&c.commands),
                    )
                    .map_err(|e| StepError::fatal(e.to_string()))?
                    .model(Arc::clone(&c.model));
                    agent
                        .run(&ctx, json!({"task": task, "issue": issue_text(&issue)}))
                        .await
                }
            });
            let id: String = task
                .id
                .chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                        ch
                    } else {
                        '-'
                    }
                })
                .collect();
            children.push((format!("task-{id}"), node));
        }
        wf = wf.parallel_named(children, false).then(
            format!("merge-{k}"),
            advance_node(Arc::clone(c), trees.clone(), Some(branch.to_owned())),
        );
    }
    if !any {
        return Err(PipelineError::Git("the plan has no codegen task".into()));
    }
    Ok(wf.commit()?)
}

/// Squashes `base..branch` into one commit with the PR's title and body (idempotent: a branch
/// already squashed with this title is left as it is). Returns the commit.
async fn squash(
    repo: &Path,
    branch: &str,
    base: &str,
    title: &str,
    body: &str,
) -> Result<String, StepError> {
    let tip = git(repo, &["rev-parse", branch]).await?;
    let parent = git(repo, &["rev-parse", &format!("{tip}^")])
        .await
        .unwrap_or_default();
    let subject = git(repo, &["log", "-1", "--format=%s", &tip]).await?;
    if parent == base && subject == title {
        return Ok(tip);
    }
    let tree = git(repo, &["rev-parse", &format!("{tip}^{{tree}}")]).await?;
    let message = format!("{title}\n\n{body}");
    let out = tokio::process::Command::new("git")
        .args(["commit-tree", &tree, "-p", base, "-m", &message])
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "Miyabi")
        .env("GIT_AUTHOR_EMAIL", "miyabi@localhost")
        .env("GIT_COMMITTER_NAME", "Miyabi")
        .env("GIT_COMMITTER_EMAIL", "miyabi@localhost")
        .output()
        .await
        .map_err(|e| StepError::fatal(format!("git commit-tree: {e}")))?;
    if !out.status.success() {
        return Err(StepError::fatal(format!(
            "git commit-tree: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    git(repo, &["branch", "-f", branch, &commit]).await?;
    Ok(commit)
}

/// Deploys with `commands`: deploy, then the health check; either failing runs the rollback.
pub async fn deploy_with_rollback(commands: &RepoCommands, dir: &Path) -> coding::DeployReport {
    let deploy = run_check(commands, "deploy", dir).await;
    let health = if deploy.passed {
        Some(run_check(commands, "health", dir).await)
    } else {
        None
    };
    let healthy = health.as_ref().is_some_and(|h| h.passed || h.skipped);
    let mut rolled_back = false;
    let mut summary = if !deploy.passed {
        format!("deploy failed: {}", deploy.output.trim())
    } else if !healthy {
        format!(
            "health check failed: {}",
            health
                .as_ref()
                .map(|h| h.output.trim().to_owned())
                .unwrap_or_default()
        )
    } else {
        let out = deploy.output.trim();
        let health = if health.as_ref().is_some_and(|h| h.skipped) {
            "no health check configured"
        } else {
            "health check passed"
        };
        if out.is_empty() {
            format!("deployed; {health}")
        } else {
            format!("deployed ({out}); {health}")
        }
    };
    if !deploy.passed || !healthy {
        let rb = run_check(commands, "rollback", dir).await;
        rolled_back = rb.passed;
        summary.push_str(if rb.passed {
            "; rolled back"
        } else {
            "; ROLLBACK FAILED or not configured"
        });
    }
    coding::DeployReport {
        environment: "default".into(),
        deployed: deploy.passed,
        healthy,
        rolled_back,
        summary,
    }
}
