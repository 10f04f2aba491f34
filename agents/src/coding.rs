//! The 7 coding agents: CoordinatorAgent, IssueAgent, CodeGenAgent, ReviewAgent, PRAgent,
//! DeploymentAgent, RefresherAgent — presets with instructions, tools and typed output.

use std::path::Path;
use std::sync::Arc;

use miyabi::{Agent, Engine, RunFilter, RunStatus, Tool, ToolContext, tool_fn};
use miyabi_code::shell::{SandboxMode, ShellConfig};
use miyabi_code::{Git, RepoMap, Workspace};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::commands::{CheckResult, RepoCommands, run_check};
use crate::plan::Plan;
use crate::{AgentsError, preset};

// ---------------------------------------------------------------------------------------------
// Output types

/// What kind of change an issue asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IssueKind {
    /// Something is broken.
    Bug,
    /// New functionality.
    Feature,
    /// Restructuring without a change of behaviour.
    Refactor,
    /// Documentation.
    Docs,
    /// Tests.
    Test,
    /// Tooling, build, dependencies.
    Chore,
    /// A vulnerability.
    Security,
    /// Speed or resources.
    Performance,
}

/// How soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Priority {
    /// Drop everything.
    P0,
    /// Next.
    P1,
    /// Planned.
    P2,
    /// Later.
    P3,
}

/// How bad.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Cosmetic or minor.
    Low,
    /// Broken with a workaround.
    Medium,
    /// Broken, no workaround.
    High,
    /// Data loss, breach, outage.
    Critical,
}

fn label_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let schema = json!({
        "type": "array",
        "description": "Labels from Miyabi's label set (docs/agents21.md)",
        "items": {"type": "string", "enum": crate::labels::names()},
        "uniqueItems": true
    });
    serde_json::from_value(schema).unwrap_or_default()
}

/// IssueAgent's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueAnalysis {
    /// The kind of change.
    pub kind: IssueKind,
    /// How soon.
    pub priority: Priority,
    /// How bad.
    pub severity: Severity,
    /// Labels to set, from the label set only.
    #[schemars(schema_with = "label_list")]
    pub labels: Vec<String>,
    /// The problem in one or two sentences.
    pub summary: String,
    /// Files that probably need changing.
    #[serde(default)]
    pub affected_files: Vec<String>,
    /// How the fix can be checked (a command, a test name).
    #[serde(default)]
    pub acceptance: Vec<String>,
}

/// CodeGenAgent's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeChange {
    /// What was changed and why.
    pub summary: String,
    /// The files changed, relative to the repository.
    pub files_changed: Vec<String>,
    /// Whether tests were added or changed.
    #[serde(default)]
    pub tests_changed: bool,
}

/// One finding of a review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The file, if the finding is about one.
    #[serde(default)]
    pub file: Option<String>,
    /// The line, if known.
    #[serde(default)]
    pub line: Option<u32>,
    /// What is wrong and what to do.
    pub message: String,
}

/// ReviewAgent's output: a quality score out of 100 and the findings. The pipeline ships at
/// 80 and above ([`crate::pipeline::REVIEW_THRESHOLD`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// Quality, 0 to 100.
    #[schemars(range(min = 0, max = 100))]
    pub score: u8,
    /// What is wrong (empty when nothing is).
    pub findings: Vec<Finding>,
    /// The review in two or three sentences.
    pub summary: String,
}

/// PRAgent's output: a draft pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequestDraft {
    /// A Conventional Commits title: `type(scope)?: description`.
    #[schemars(regex(
        pattern = r"^(feat|fix|docs|style|refactor|perf|test|build|ci|chore|revert)(\([a-z0-9._/-]+\))?!?: .+"
    ))]
    pub title: String,
    /// The description (Markdown); links the issue with `Closes #N`.
    pub body: String,
    /// Labels for the pull request.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// DeploymentAgent's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployReport {
    /// The environment deployed to.
    pub environment: String,
    /// The deploy command succeeded.
    pub deployed: bool,
    /// The health check passed after it.
    pub healthy: bool,
    /// A rollback ran (deploy or health check failed).
    pub rolled_back: bool,
    /// What happened.
    pub summary: String,
}

/// One status update RefresherAgent decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusUpdate {
    /// The issue number.
    pub issue: u64,
    /// Its state label (`state:...`).
    pub state: String,
    /// Labels to add.
    #[serde(default)]
    pub add_labels: Vec<String>,
    /// Labels to remove.
    #[serde(default)]
    pub remove_labels: Vec<String>,
    /// A comment to post, if any.
    #[serde(default)]
    pub comment: Option<String>,
}

/// RefresherAgent's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshReport {
    /// The updates, one per issue that needs one.
    pub updates: Vec<StatusUpdate>,
}

// ---------------------------------------------------------------------------------------------
// Instructions

/// CoordinatorAgent's instructions.
pub const COORDINATOR: &str = "You are the CoordinatorAgent of Miyabi. You get an issue and its \
analysis. Break the work into a few tasks with dependencies (a DAG): each task has a short id, a \
title, a description precise enough for the agent that does it, the agent (codegen for code and \
tests, review, deployment), the ids it depends on, and the files it will touch. Tasks without a \
dependency between them run in parallel, each in its own git worktree, so give independent tasks \
disjoint files. Call list_agents if unsure what each agent does. Answer with the plan as JSON.";

/// IssueAgent's instructions.
pub const ISSUE: &str = "You are the IssueAgent of Miyabi. Analyse the issue you are given: its \
kind, priority (P0 to P3), severity, a short summary, the files it probably concerns and how a \
fix can be checked. Choose labels only from the label set (call label_set to see it with its \
meanings): one type:, one priority:, one severity:, and the agent:, area: and effort: labels that \
apply. Answer with the analysis as JSON.";

/// CodeGenAgent's instructions.
pub const CODEGEN: &str = "You are the CodeGenAgent of Miyabi. You implement one task in a git \
worktree of the repository with the workspace tools: find the code (grep, glob, read_file, \
repo_map), change it with edit or apply_patch, add or fix tests, and run them with the shell \
tool. Do not commit: the pipeline commits your worktree. Answer with JSON: a summary, the files \
you changed, and whether you changed tests.";

/// ReviewAgent's instructions.
pub const REVIEW: &str = "You are the ReviewAgent of Miyabi. Review the change you are given \
(its diff and the results of the repository's static checks; call run_checks to run them again \
and git_diff or read_file to look closer). Score its quality out of 100: correctness first, then \
tests, security, readability. Below 80 means it must be fixed: list every finding with its \
severity, file and line and what to do. A failed check is at least a high finding. Answer with \
JSON: score, findings, summary.";

/// PRAgent's instructions.
pub const PR: &str = "You are the PRAgent of Miyabi. Write the draft pull request for the change \
you are given: a Conventional Commits title (`fix(scope): ...`, `feat: ...`), and a Markdown \
body with a summary, the changes, how it was tested and `Closes #<issue>`. Use git_diff and \
git_status if you need to look at the change. Answer with JSON: title, body, labels.";

/// DeploymentAgent's instructions.
pub const DEPLOYMENT: &str = "You are the DeploymentAgent of Miyabi. Deploy with the deploy tool, \
then call health_check; if either fails, call rollback. Never skip the health check. Answer with \
JSON: environment, deployed, healthy, rolled_back, summary.";

/// RefresherAgent's instructions.
pub const REFRESHER: &str = "You are the RefresherAgent of Miyabi. Keep issues' status current: \
look at the workflow runs (list_runs) and the issues you are given, and decide for each issue \
whose state changed its state label (state:implementing, state:reviewing, \
state:awaiting-approval, state:done, state:blocked), labels to add or remove (from the label \
set), and a short comment when a human should know. Answer with JSON: updates.";

// ---------------------------------------------------------------------------------------------
// Tools

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

/// `list_agents`: the agents a plan's task can name, with their roles.
pub fn list_agents_tool() -> Arc<dyn Tool> {
    Arc::new(tool_fn(
        "list_agents",
        "Lists the agents a task can be given to, with what each does",
        |_ctx: ToolContext, _a: NoArgs| async move {
            Ok::<_, String>(json!([
                {"agent": "codegen", "does": "changes code and tests in its own git worktree"},
                {"agent": "review", "does": "reviews the changes of the tasks it depends on"},
                {"agent": "deployment", "does": "runs the deploy command and its health check"},
            ]))
        },
    ))
}

/// `label_set`: the documented label set, with colours and meanings.
pub fn label_set_tool() -> Arc<dyn Tool> {
    Arc::new(tool_fn(
        "label_set",
        "The labels an issue may get, with what each means",
        |_ctx: ToolContext, _a: NoArgs| async move {
            serde_json::to_value(crate::labels::LABELS).map_err(|e| e.to_string())
        },
    ))
}

#[derive(Deserialize, JsonSchema)]
struct ChecksArgs {
    /// Checks to run, from `test`, `lint`, `security`; all three when empty.
    #[serde(default)]
    names: Vec<String>,
}

/// `run_checks`: runs the repository's configured checks (`test`, `lint`, `security`) in `root`.
pub fn run_checks_tool(root: &Path, commands: RepoCommands) -> Arc<dyn Tool> {
    let root = root.to_path_buf();
    Arc::new(tool_fn(
        "run_checks",
        "Runs the repository's static checks (test, lint, security) and returns their results",
        move |_ctx: ToolContext, a: ChecksArgs| {
            let (root, commands) = (root.clone(), commands.clone());
            async move {
                let names = if a.names.is_empty() {
                    vec!["test".to_owned(), "lint".to_owned(), "security".to_owned()]
                } else {
                    a.names
                };
                let mut out = Vec::new();
                for n in names {
                    if !["test", "lint", "security"].contains(&n.as_str()) {
                        return Err(format!("unknown check `{n}` (known: test, lint, security)"));
                    }
                    out.push(run_check(&commands, &n, &root).await);
                }
                serde_json::to_value(out).map_err(|e| e.to_string())
            }
        },
    ))
}

fn command_tool(
    name: &'static str,
    description: &'static str,
    check: &'static str,
    root: &Path,
    commands: &RepoCommands,
) -> miyabi::tool::FnTool {
    let root = root.to_path_buf();
    let commands = commands.clone();
    tool_fn(name, description, move |_ctx: ToolContext, _a: NoArgs| {
        let (root, commands) = (root.clone(), commands.clone());
        async move {
            let r: CheckResult = run_check(&commands, check, &root).await;
            serde_json::to_value(r).map_err(|e| e.to_string())
        }
    })
}

#[derive(Deserialize, JsonSchema)]
struct ListRunsArgs {
    /// Only runs of this workflow.
    #[serde(default)]
    workflow: Option<String>,
    /// Only runs in this status: running, suspended, succeeded, failed, cancelled.
    #[serde(default)]
    status: Option<String>,
    /// At most this many, newest first (default 20).
    #[serde(default)]
    limit: Option<usize>,
}

/// `list_runs`: the engine's workflow runs (id, workflow, status, input, error), newest first.
pub fn list_runs_tool(engine: Engine) -> Arc<dyn Tool> {
    Arc::new(tool_fn(
        "list_runs",
        "Lists workflow runs, newest first, with their status",
        move |_ctx: ToolContext, a: ListRunsArgs| {
            let engine = engine.clone();
            async move {
                let status = match a.status.as_deref() {
                    None => None,
                    Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
                        format!("unknown status `{s}` (known: running, suspended, succeeded, failed, cancelled)")
                    })?),
                };
                let filter = RunFilter {
                    workflow: a.workflow,
                    status,
                    limit: Some(a.limit.unwrap_or(20).min(200)),
                    ..RunFilter::default()
                };
                let runs = engine.list(&filter).await.map_err(|e| e.to_string())?;
                Ok::<_, String>(Value::Array(
                    runs.into_iter()
                        .map(|r| {
                            json!({"id": r.id, "workflow": r.workflow, "status": r.status.to_string(),
                                   "input": r.input, "error": r.error, "updated_at": r.updated_at})
                        })
                        .collect(),
                ))
            }
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Presets

/// CoordinatorAgent: issue + analysis → [`Plan`] (a DAG of tasks). Tools: `list_agents`.
pub fn coordinator() -> Agent {
    preset::<Plan>("coordinator", COORDINATOR)
        .tool(list_agents_tool())
        .max_steps(4)
}

/// IssueAgent: an issue (title, body, comments) → [`IssueAnalysis`] with labels from
/// [`crate::labels::LABELS`]. Tools: `label_set`.
pub fn issue() -> Agent {
    preset::<IssueAnalysis>("issue", ISSUE)
        .tool(label_set_tool())
        .max_steps(4)
}

/// Options of [`codegen`].
#[derive(Debug, Clone)]
pub struct CodegenOptions {
    /// The shell's sandbox (default workspace-write).
    pub sandbox: SandboxMode,
    /// Model calls per task (default 30).
    pub max_steps: usize,
    /// Tokens of repository map in the instructions (default 1024; 0 for none).
    pub map_tokens: usize,
    /// Commands the shell runs without asking, on top of the recommended policy and the
    /// repository's `.miyabi/permissions.toml` (the pipeline adds the repository's configured
    /// test, lint and security commands: see [`CodegenOptions::allow_commands`]).
    pub allow: Vec<String>,
}

impl Default for CodegenOptions {
    fn default() -> Self {
        Self {
            sandbox: SandboxMode::WorkspaceWrite,
            max_steps: 30,
            map_tokens: 1024,
            allow: Vec::new(),
        }
    }
}

impl CodegenOptions {
    /// Lets the shell run the repository's configured `test`, `lint` and `security` commands
    /// (with any further arguments) without asking: they are the repository's own, configured
    /// in `.miyabi/pipeline.toml` or its Cargo/npm defaults. Every other command keeps the
    /// policy's verdict (unknown commands ask, and an agent in a workflow then waits for a
    /// human).
    pub fn allow_commands(mut self, commands: &RepoCommands) -> Self {
        for name in ["test", "lint", "security"] {
            if let Some(argv) = commands.get(name).filter(|a| !a.is_empty()) {
                let line = argv.join(" ");
                self.allow.push(format!("{line}:*"));
            }
        }
        self
    }
}

/// CodeGenAgent over the working tree at `root` (a worktree in the pipeline) → [`CodeChange`].
/// Tools: miyabi-code's workspace tools (read_file, list_dir, glob, grep, write_file, edit,
/// apply_patch, todo), repo_map, find_symbol, the sandboxed shell under the repository's
/// permission policy, and git_status / git_diff (committing is the pipeline's job).
pub fn codegen(root: impl AsRef<Path>, options: CodegenOptions) -> Result<Agent, AgentsError> {
    let workspace = Workspace::new(root.as_ref())?;
    let mut policy = miyabi_code::policy::Policy::recommended();
    let file = workspace.root().join(".miyabi").join("permissions.toml");
    if file.exists() {
        policy.merge_file(&file)?;
    }
    for pattern in &options.allow {
        policy = policy.allow(pattern)?;
    }
    let shell = miyabi_code::shell::ShellTool::new(
        ShellConfig::new(workspace.root()).sandbox(options.sandbox),
        policy,
    )?;
    let mut tools: Vec<Arc<dyn Tool>> = workspace.tools();
    tools.extend(
        Git::for_workspace(&workspace)
            .tools()
            .into_iter()
            .filter(|t| matches!(t.name(), "git_status" | "git_diff")),
    );
    let map = RepoMap::new(&workspace);
    tools.extend(map.tools());
    tools.push(Arc::new(shell));
    let mut instructions = String::from(CODEGEN);
    let project = miyabi_code::instructions::Instructions::collect(&workspace)?;
    if !project.is_empty() {
        instructions.push_str("\n\n");
        instructions.push_str(&project.system_prompt());
    }
    if options.map_tokens > 0
        && let Ok(index) = map.index()
        && index.file_count() > 0
    {
        instructions.push_str("\n\n# Repository map\n");
        instructions.push_str(&index.render(options.map_tokens));
    }
    Ok(preset::<CodeChange>("codegen", &instructions)
        .tools(tools)
        .max_steps(options.max_steps))
}

/// ReviewAgent over `root` with the repository's `commands` → [`Review`]. Tools: `run_checks`
/// (the configured test, lint and security commands), `git_diff`, `git_status`, `read_file`,
/// `grep`. The pipeline runs the checks first and gives their results with the diff, then caps
/// the score below the threshold when a check failed ([`crate::pipeline`]).
pub fn review(root: impl AsRef<Path>, commands: RepoCommands) -> Result<Agent, AgentsError> {
    let workspace = Workspace::new(root.as_ref())?;
    let mut tools: Vec<Arc<dyn Tool>> = vec![run_checks_tool(workspace.root(), commands)];
    tools.extend(
        Git::for_workspace(&workspace)
            .tools()
            .into_iter()
            .filter(|t| matches!(t.name(), "git_status" | "git_diff")),
    );
    tools.extend(
        workspace
            .read_only_tools()
            .into_iter()
            .filter(|t| matches!(t.name(), "read_file" | "grep")),
    );
    Ok(preset::<Review>("review", REVIEW).tools(tools).max_steps(8))
}

/// PRAgent over `root` → [`PullRequestDraft`] (Conventional Commits title, body closing the
/// issue). Tools: `git_diff`, `git_status`. Opening the PR is [`crate::github`]'s job.
pub fn pr(root: impl AsRef<Path>) -> Result<Agent, AgentsError> {
    let git = Git::new(root.as_ref())?;
    let tools: Vec<Arc<dyn Tool>> = git
        .tools()
        .into_iter()
        .filter(|t| matches!(t.name(), "git_status" | "git_diff"))
        .collect();
    Ok(preset::<PullRequestDraft>("pr", PR)
        .tools(tools)
        .max_steps(4))
}

/// DeploymentAgent over `root` with the repository's `deploy`, `health` and `rollback`
/// commands → [`DeployReport`]. Tools: `deploy`, `health_check`, `rollback`. With
/// `production`, `deploy` requires a human's approval (the run suspends at the call).
pub fn deployment(root: impl AsRef<Path>, commands: RepoCommands, production: bool) -> Agent {
    let root = root.as_ref();
    let deploy = command_tool(
        "deploy",
        "Runs the deploy command",
        "deploy",
        root,
        &commands,
    )
    .requires_approval(production);
    let health = command_tool(
        "health_check",
        "Runs the health check",
        "health",
        root,
        &commands,
    );
    let rollback = command_tool(
        "rollback",
        "Rolls the deployment back",
        "rollback",
        root,
        &commands,
    );
    preset::<DeployReport>("deployment", DEPLOYMENT)
        .tool(deploy)
        .tool(health)
        .tool(rollback)
        .max_steps(6)
}

/// RefresherAgent over `engine`'s runs → [`RefreshReport`]. Tools: `list_runs`; add the GitHub
/// tools ([`crate::github::GitHub::tools`]) to let it read issues.
pub fn refresher(engine: Engine) -> Agent {
    preset::<RefreshReport>("refresher", REFRESHER)
        .tool(list_runs_tool(engine))
        .max_steps(8)
}
