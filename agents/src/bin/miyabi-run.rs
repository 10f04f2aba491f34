//! `miyabi-run` (`miyabi run ...`): runs Miyabi's provided workflows and agents.
//!
//! ```text
//! miyabi run issue-resolution --repo <path> --issue <N> [--github-repo owner/name]
//! miyabi run issue-resolution --repo <path> --issue-file issue.md [--issue <N>] [--approve-commands]
//! GITHUB_WEBHOOK_SECRET=.. miyabi run serve --repo <path> --on-opened   # the API + the webhook
//! miyabi run business --brief "..." [--gate-after persona]   # the 13-stage business pipeline
//! miyabi run agent <preset> < input.json          # one preset; the input as JSON on stdin
//! miyabi run presets                              # the 21 presets as JSON
//! ```

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use miyabi::approval::{Approver, Decision};
use miyabi::{Engine, EventKind, LanguageModel, RunFilter, RunStatus};
use miyabi_agents::child_approval;
use miyabi_agents::github::{GitHub, RepoRef};
use miyabi_agents::pipeline::{self, GitHubTarget, PipelineConfig};
use miyabi_agents::replay::{ReplayServer, load_script};
use miyabi_agents::runner;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "miyabi run",
    about = "Runs Miyabi's provided workflows and agent presets"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Resolves an issue: analyse, plan, implement in worktrees, review (fix loop below 80),
    /// test ∥ lint ∥ security, approval, draft PR, deploy.
    IssueResolution(IssueArgs),
    /// Runs one preset on the JSON input read from stdin; prints its answer as JSON.
    Agent(AgentArgs),
    /// The business pipeline: 13 stages from the founder's brief to analytics, with founder
    /// review gates (approve, edit in $EDITOR, or reject).
    Business(BusinessArgs),
    /// Prints the 21 presets (instructions, tools, output schemas) as JSON.
    Presets,
    /// Serves the HTTP API (as `miyabi serve`) with a GitHub webhook receiver at
    /// /webhooks/github that starts the issue-resolution pipeline for --repo; the runs execute
    /// in this process. The webhook's secret comes from GITHUB_WEBHOOK_SECRET (required).
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// The local git repository the pipeline works on.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Address to listen on (`host:port`; port 0 picks a free one). The bound address is
    /// printed on stdout.
    #[arg(long, default_value = "127.0.0.1:7420")]
    addr: String,
    /// The run database: a SQLite file or a Postgres URL (default: MIYABI_DB, else
    /// `<repo>/.miyabi/runs.db`).
    #[arg(long, env = "MIYABI_DB")]
    db: Option<String>,
    /// An access file (TOML: identities, roles, scopes, JWT; docs/server.md). MIYABI_TOKENS,
    /// MIYABI_ROLES, MIYABI_SCOPES and MIYABI_JWT_* are read too, as by `miyabi serve`.
    #[arg(long, env = "MIYABI_ACCESS_FILE")]
    access: Option<PathBuf>,
    /// A bearer token of the API for the first --approver, with every permission (prefer the
    /// environment variable to the command line, which other users can see).
    #[arg(long, env = "MIYABI_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Who may decide the pipeline's approval gate (repeatable; default: $USER).
    #[arg(long = "approver")]
    approvers: Vec<String>,
    /// Start the pipeline when an issue is opened.
    #[arg(long)]
    on_opened: bool,
    /// Start the pipeline when this label is added to an issue (repeatable).
    #[arg(long = "on-label")]
    on_label: Vec<String>,
    /// Start the pipeline when a comment containing this text is posted on an issue
    /// (repeatable).
    #[arg(long = "on-comment")]
    on_comment: Vec<String>,
    /// The GitHub repository (owner/name) whose events are accepted and where the PR goes;
    /// default: from the `origin` remote when it is on GitHub. Without one, events of every
    /// repository are accepted and the PR is only drafted.
    #[arg(long)]
    github_repo: Option<String>,
    /// The git remote to push branches to.
    #[arg(long, default_value = "origin")]
    remote: String,
    /// The branch to start from and target (default: the current branch).
    #[arg(long)]
    base: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct ModelArgs {
    /// The model of every agent, "provider/model" (default: MIYABI_AGENTS_MODEL or openai/gpt-4o).
    #[arg(long, env = "MIYABI_AGENTS_MODEL")]
    model: Option<String>,
    /// Answer from a replay script (JSON: replies per agent) instead of calling a provider.
    #[arg(long, env = "MIYABI_RUN_REPLAY")]
    replay: Option<PathBuf>,
}

#[derive(Args)]
struct IssueArgs {
    /// The local git repository.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The issue number (read from GitHub unless --issue-file is given).
    #[arg(long)]
    issue: Option<u64>,
    /// Read the issue from a file: JSON {number, title, body, comments?} or Markdown (`# title`, body).
    #[arg(long)]
    issue_file: Option<PathBuf>,
    /// The GitHub repository (owner/name) for the issue and the PR; default: from the `origin`
    /// remote when the issue comes from GitHub.
    #[arg(long)]
    github_repo: Option<String>,
    /// The git remote to push the branch to.
    #[arg(long, default_value = "origin")]
    remote: String,
    /// The branch to start from and target (default: the current branch).
    #[arg(long)]
    base: Option<String>,
    /// The run database (default: MIYABI_DB, else `<repo>/.miyabi/runs.db`).
    #[arg(long, env = "MIYABI_DB")]
    db: Option<PathBuf>,
    /// Approve at the approval gate without asking (commands still ask: see
    /// --approve-commands).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Approve every shell command a CodeGenAgent task asks to run, without asking. UNSAFE:
    /// the model then runs any command the permission policy would have asked a human about
    /// (in the sandbox, but with the repository's worktree writable).
    #[arg(long)]
    approve_commands: bool,
    /// Start a new run even if one for this issue already succeeded.
    #[arg(long)]
    again: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct BusinessArgs {
    /// The founder's brief: text, or @file to read it from a file.
    #[arg(long)]
    brief: String,
    /// Stages after which the founder reviews the plan (default: product-concept).
    #[arg(long = "gate-after")]
    gate_after: Vec<String>,
    /// The run database.
    #[arg(long, env = "MIYABI_DB", default_value = "miyabi-business.db")]
    db: PathBuf,
    /// Approve every review without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct AgentArgs {
    /// The preset (`miyabi run presets` lists them).
    name: String,
    /// The repository for coding presets.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
}

type Error = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::IssueResolution(a) => issue_resolution(a).await,
        Cmd::Agent(a) => agent(a).await,
        Cmd::Business(a) => business(a).await,
        Cmd::Serve(a) => serve(a).await,
        Cmd::Presets => serde_json::to_string_pretty(&miyabi_agents::catalog())
            .map(|s| {
                println!("{s}");
                true
            })
            .map_err(Into::into),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => match e.downcast_ref::<WaitsForHuman>() {
            Some(w) => {
                println!("{w}");
                ExitCode::from(EXIT_WAITS)
            }
            None => {
                eprintln!("miyabi run: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The exit code when the run waits for a decision on a command and nobody can be asked.
const EXIT_WAITS: u8 = 3;

/// The run waits for a decision on a command, and stdin is not a terminal: how to give it.
#[derive(Debug)]
struct WaitsForHuman(String);

impl std::fmt::Display for WaitsForHuman {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WaitsForHuman {}

/// The GitHub repository for `repo`: `given`, else its `remote` when that is on GitHub.
fn github_target(
    repo: &Path,
    given: Option<&str>,
    remote: &str,
    from_remote: bool,
) -> Result<Option<GitHubTarget>, Error> {
    let name = match given {
        Some(r) => Some(RepoRef::parse(r)?),
        None if from_remote => {
            runner::remote_url(repo, remote).and_then(|u| runner::repo_from_remote(&u))
        }
        None => None,
    };
    Ok(match name {
        Some(repo) => Some(GitHubTarget {
            client: GitHub::from_env()?,
            repo,
            remote: remote.to_owned(),
        }),
        None => None,
    })
}

async fn serve(a: ServeArgs) -> Result<bool, Error> {
    use miyabi_agents::github::webhook::WebhookConfig;
    let secret = std::env::var("GITHUB_WEBHOOK_SECRET")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .ok_or("GITHUB_WEBHOOK_SECRET is not set: the webhook's secret (the one configured on GitHub) is required to verify deliveries")?;
    if !a.on_opened && a.on_label.is_empty() && a.on_comment.is_empty() {
        return Err(
            "nothing would start the pipeline: give --on-opened, --on-label <label> and/or --on-comment <text>"
                .into(),
        );
    }
    let addr: std::net::SocketAddr = match a.addr.parse() {
        Ok(addr) => addr,
        Err(_) => tokio::net::lookup_host(&a.addr)
            .await
            .map_err(|e| format!("--addr `{}`: {e}", a.addr))?
            .next()
            .ok_or_else(|| format!("--addr `{}` resolves to no address", a.addr))?,
    };
    let repo = std::path::absolute(&a.repo)?;
    let (m, _replay) = model(&a.model)?;
    let mut config = PipelineConfig::new(&repo, m)?;
    if let Some(b) = &a.base {
        config.base = b.clone();
    }
    if !a.approvers.is_empty() {
        config.approvers = a.approvers.clone();
    }
    config.github = github_target(&repo, a.github_repo.as_deref(), &a.remote, true)?;

    let db = match &a.db {
        Some(d) => d.clone(),
        None => {
            std::fs::create_dir_all(repo.join(".miyabi"))?;
            repo.join(".miyabi").join("runs.db").display().to_string()
        }
    };
    let engine = Engine::open(&db)?;
    let workflow = pipeline::issue_resolution(&engine, config.clone())?;
    let mut hooks = WebhookConfig::new(engine.clone(), secret);
    if !miyabi::store::is_postgres_url(&db) {
        // Delivery ids in the run database: replays stay rejected after a restart.
        hooks = hooks.deliveries(miyabi::Memory::sqlite(&db)?);
    }
    if let Some(gh) = &config.github {
        hooks = hooks.repository(format!("{}/{}", gh.repo.owner, gh.repo.name));
    }
    if a.on_opened {
        hooks = hooks.on_issue_opened(workflow.clone());
    }
    for label in &a.on_label {
        hooks = hooks.on_issue_labeled(label.clone(), workflow.clone());
    }
    for text in &a.on_comment {
        hooks = hooks.on_issue_comment(Some(text.clone()), workflow.clone());
    }
    engine.register(&workflow);
    let recovered = engine.recover().await?;

    let mut api = miyabi::server::ServerConfig::from_env()?;
    if let Some(path) = &a.access
        && std::env::var_os("MIYABI_ACCESS_FILE").is_none_or(|v| v != path.as_os_str())
    {
        api = api.access_file(path)?;
    }
    if let Some(token) = a.token.as_deref().filter(|t| !t.trim().is_empty()) {
        let who = config
            .approvers
            .first()
            .cloned()
            .unwrap_or_else(|| "admin".into());
        api = api.token(token.trim(), Approver::new(who));
    }
    let server = miyabi_agents::serve::serve(engine, api, hooks, addr).await?;
    let local = server.local_addr();
    println!("miyabi run serve: listening on http://{local}");
    println!(
        "  webhook  http://{local}{} (issue-resolution for {}{})",
        miyabi_agents::github::webhook::PATH,
        repo.display(),
        config
            .github
            .as_ref()
            .map(|g| format!(", GitHub {}/{}", g.repo.owner, g.repo.name))
            .unwrap_or_default()
    );
    println!("  database {}", miyabi::store::shown_location(&db));
    if !recovered.is_empty() {
        println!("  took over {} unfinished run(s)", recovered.len());
    }
    shutdown_signal().await;
    println!("miyabi run serve: stopping");
    // Event streams of suspended runs stay open: give open requests a moment, then stop.
    match tokio::time::timeout(Duration::from_secs(5), server.shutdown()).await {
        Ok(r) => r?,
        Err(_) => println!("miyabi run serve: open connections closed"),
    }
    Ok(true)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The model, and the replay server that must live as long as it.
fn model(a: &ModelArgs) -> Result<(Arc<dyn LanguageModel>, Option<ReplayServer>), Error> {
    if let Some(path) = &a.replay {
        let server = ReplayServer::start(load_script(path)?)?;
        return Ok((server.model()?, Some(server)));
    }
    let spec = a.model.clone().unwrap_or_else(miyabi_agents::default_model);
    let m = miyabi::model(&spec).map_err(|e| format!("model `{spec}`: {e}"))?;
    Ok((Arc::new(m), None))
}

async fn agent(a: AgentArgs) -> Result<bool, Error> {
    let (m, _server) = model(&a.model)?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let input: Value = serde_json::from_str(&input).unwrap_or(Value::String(input));
    let agent = miyabi_agents::preset_by_name(&a.name, &a.root)?.model(m);
    let prompt = match input {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let answer = agent.generate(prompt).await?;
    println!("{}", answer.object.unwrap_or(Value::String(answer.text)));
    Ok(true)
}

async fn business(a: BusinessArgs) -> Result<bool, Error> {
    use miyabi_agents::business::{BusinessOptions, business_pipeline};
    let (m, _server) = model(&a.model)?;
    let brief = match a.brief.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("--brief @{path}: {e}"))?,
        None => a.brief.clone(),
    };
    let founder = std::env::var("USER").unwrap_or_else(|_| "founder".into());
    let workflow = business_pipeline(BusinessOptions {
        model: Some(m),
        gates_after: (!a.gate_after.is_empty()).then(|| a.gate_after.clone()),
        approvers: vec![founder.clone()],
    })?;
    let engine = Engine::sqlite(&a.db)?;
    engine.register(&workflow);
    engine.recover().await?;
    // An unfinished run for the same brief (left waiting for the founder) is continued.
    let unfinished = engine
        .list(&RunFilter {
            workflow: Some(workflow.id().to_owned()),
            ..RunFilter::default()
        })
        .await?
        .into_iter()
        .find(|r| {
            r.input == Value::String(brief.clone())
                && matches!(r.status, RunStatus::Running | RunStatus::Suspended)
        });
    let run_id = match unfinished {
        Some(r) => {
            println!("run {} continued ({})", r.id, r.status);
            r.id
        }
        None => {
            let id = engine
                .spawn(&workflow, Value::String(brief))?
                .id()
                .to_owned();
            println!("run {id} started (business-pipeline, {})", a.db.display());
            id
        }
    };
    let mut from = 1;
    loop {
        from = follow(&engine, &run_id, from).await?;
        let Some(run) = engine.get(&run_id).await? else {
            return Err(format!("run {run_id} vanished").into());
        };
        match run.status {
            RunStatus::Running => continue,
            RunStatus::Suspended => {
                let Some(s) = run.suspended.first() else {
                    continue;
                };
                let gate = engine.approvals().get(&run_id, &s.path)?;
                println!("\n{} — {}", gate.title, gate.summary);
                let who = Approver::new(founder.clone());
                let decision = if a.yes {
                    println!("approved (--yes)");
                    Decision::approve()
                } else {
                    match ask_edit("Approve, edit or reject? [y/e/n] ").await? {
                        None => {
                            println!(
                                "no answer: the run stays suspended in {}; the same command continues it",
                                a.db.display()
                            );
                            return Ok(false);
                        }
                        Some('y') => Decision::approve(),
                        Some('e') => Decision::edit_and_approve(edit(&gate.data)?),
                        Some(_) => Decision::reject().comment("rejected by the founder"),
                    }
                };
                engine
                    .approvals()
                    .decide(&run_id, &s.path, &who, decision)
                    .await?;
            }
            _ => {
                let run = engine.wait(&run_id).await?;
                if a.json {
                    println!(
                        "{}",
                        json!({"run": run.id, "status": run.status.to_string(), "output": run.output, "error": run.error})
                    );
                } else {
                    println!("\nrun {} {}", run.id, run.status);
                    if let Some(e) = &run.error {
                        println!("  error   {e}");
                    }
                    if let Some(plan) = &run.output {
                        println!("{}", serde_json::to_string_pretty(plan)?);
                    }
                }
                return Ok(run.status == RunStatus::Succeeded);
            }
        }
    }
}

/// Opens `data` as JSON in `$EDITOR` (default `vi`) and reads it back.
fn edit(data: &Value) -> Result<Value, Error> {
    let dir = std::env::temp_dir().join(format!("miyabi-edit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("stage.json");
    std::fs::write(&file, serde_json::to_string_pretty(data)?)?;
    let editor = std::env::var("EDITOR").unwrap_or_else(|_| "vi".into());
    let status = std::process::Command::new(&editor).arg(&file).status()?;
    if !status.success() {
        return Err(format!("{editor} exited with {status}").into());
    }
    let text = std::fs::read_to_string(&file)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(serde_json::from_str(&text).map_err(|e| format!("the edited plan is not JSON: {e}"))?)
}

async fn ask_edit(question: &str) -> Result<Option<char>, Error> {
    loop {
        print!("{question}");
        std::io::stdout().flush()?;
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map(|n| (n > 0).then_some(line))
        })
        .await??;
        match line.as_deref().map(str::trim) {
            None => return Ok(None),
            Some("y" | "yes") => return Ok(Some('y')),
            Some("e" | "edit") => return Ok(Some('e')),
            Some("n" | "no") => return Ok(Some('n')),
            Some(_) => println!("please answer y, e or n"),
        }
    }
}

async fn issue_resolution(a: IssueArgs) -> Result<bool, Error> {
    let repo = std::path::absolute(&a.repo)?;
    let (m, _server) = model(&a.model)?;
    let mut config = PipelineConfig::new(&repo, m)?;
    if let Some(b) = &a.base {
        config.base = b.clone();
    }

    // GitHub: given, or from `origin` when the issue comes from GitHub.
    let github = github_target(
        &repo,
        a.github_repo.as_deref(),
        &a.remote,
        a.issue_file.is_none(),
    )?;
    config.github = github.clone();

    let issue = match (&a.issue_file, a.issue, &github) {
        (Some(f), n, _) => runner::read_issue_file(f, n)?,
        (None, Some(n), Some(gh)) => runner::fetch_issue(gh, n).await?,
        (None, Some(_), None) => {
            return Err("--issue needs a GitHub repository: --github-repo owner/name, or an `origin` remote on GitHub (or give --issue-file)".into());
        }
        (None, None, _) => return Err("give --issue <N> or --issue-file <path>".into()),
    };
    let number = issue["number"].as_u64().unwrap_or(0);

    let db = match &a.db {
        Some(d) => d.clone(),
        None => {
            std::fs::create_dir_all(repo.join(".miyabi"))?;
            repo.join(".miyabi").join("runs.db")
        }
    };
    let engine = Engine::sqlite(&db)?;
    let workflow = pipeline::issue_resolution(&engine, config.clone())?;
    engine.register(&workflow);
    let recovered = engine.recover().await?;

    // A run for this issue left unfinished (or suspended at the gate) is continued.
    let mine = runner::runs_for_issue(&engine, number).await?;
    let unfinished = mine
        .iter()
        .find(|r| matches!(r.status, RunStatus::Running | RunStatus::Suspended));
    let run_id = match (unfinished, mine.first()) {
        (Some(r), _) => {
            let how = if recovered.contains(&r.id) {
                "taken over after a crash"
            } else {
                "continued"
            };
            println!("run {} for issue #{number}: {how} ({})", r.id, r.status);
            r.id.clone()
        }
        (None, Some(r)) if r.status == RunStatus::Succeeded && !a.again => {
            println!(
                "issue #{number} was resolved by run {} (--again starts a new run)",
                r.id
            );
            return report(&engine, &r.id, a.json).await;
        }
        _ => {
            let h = engine.spawn(&workflow, json!({"issue": issue}))?;
            println!(
                "run {} started: issue #{number} {}",
                h.id(),
                issue["title"].as_str().unwrap_or("")
            );
            h.id().to_owned()
        }
    };

    let mut from = 1;
    loop {
        from = follow(&engine, &run_id, from).await?;
        let Some(run) = engine.get(&run_id).await? else {
            return Err(format!("run {run_id} vanished from {}", db.display()).into());
        };
        match run.status {
            RunStatus::Running => continue,
            RunStatus::Suspended => {
                let Some(s) = run.suspended.first() else {
                    continue;
                };
                if child_approval::is_tool_approval(&s.payload) {
                    let decision = decide_commands(&a, &repo, number, &run_id, s).await?;
                    engine.resume(&run_id, &s.path, decision).await?;
                    continue;
                }
                if s.path != "approval" {
                    // A step with outside effects (deploy) was interrupted by a crash: a human
                    // says whether to run it again.
                    println!(
                        "\nrun {run_id} waits at `{}`: {}",
                        s.path,
                        short(&s.payload)
                    );
                    let again = if a.yes {
                        println!("running `{}` again (--yes)", s.path);
                        true
                    } else {
                        ask(&format!("Run `{}` again? [y/n] ", s.path)).await? == Some(true)
                    };
                    if !again {
                        println!(
                            "the run stays suspended; run the same command again to continue it"
                        );
                        return Ok(false);
                    }
                    engine
                        .resume(&run_id, &s.path, json!({"rerun": true}))
                        .await?;
                    continue;
                }
                let gate = engine.approvals().get(&run_id, &s.path)?;
                println!("\napproval gate: {} — {}", gate.title, gate.summary);
                let approve = if a.yes {
                    println!("approved (--yes)");
                    true
                } else {
                    match ask("Approve? [y/n] ").await? {
                        Some(b) => b,
                        None => {
                            println!(
                                "no answer: the run stays suspended; run the same command again to continue it"
                            );
                            return Ok(false);
                        }
                    }
                };
                let who = Approver::new(config.approvers.first().cloned().unwrap_or_default());
                let decision = if approve {
                    Decision::approve()
                } else {
                    Decision::reject()
                };
                engine
                    .approvals()
                    .decide(&run_id, &s.path, &who, decision)
                    .await?;
            }
            _ => return report(&engine, &run_id, a.json).await,
        }
    }
}

/// The decision on the commands a suspension at a tool approval waits for: approved with
/// `--approve-commands`, else asked y/N on the terminal; without a terminal, the run stays
/// suspended and [`WaitsForHuman`] says how to resume it.
async fn decide_commands(
    a: &IssueArgs,
    repo: &Path,
    number: u64,
    run_id: &str,
    s: &miyabi::Suspension,
) -> Result<Value, Error> {
    let p = &s.payload;
    let child = p["run"].as_str();
    match child {
        Some(child) => println!(
            "\nrun {run_id} waits at `{}`: the plan's run {child} asks to run (at {}):",
            s.path,
            p["paths"]
                .as_array()
                .map(|v| v
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        None => println!(
            "\nrun {run_id} waits at `{}`: the agent asks to run:",
            s.path
        ),
    }
    for call in p["pending"].as_array().into_iter().flatten() {
        let at = call["path"]
            .as_str()
            .map(|p| format!(" [{p}]"))
            .unwrap_or_default();
        println!("  {}{at}", child_approval::describe_call(call));
        if call["arguments"]["command"].is_null()
            && let Some(d) = call["description"].as_str().and_then(|d| d.lines().next())
        {
            println!("      {d}");
        }
    }
    if a.approve_commands {
        println!("approved (--approve-commands)");
        return Ok(json!({"approved": true}));
    }
    let how = || {
        // This very command continues the run; with --approve-commands it approves.
        let again: Vec<String> = std::env::args()
            .skip(1)
            .filter(|x| x != "--approve-commands")
            .map(|x| shell_quote(&x))
            .collect();
        let body = json!({"path": s.path, "data": {"approved": true}});
        WaitsForHuman(format!(
            "the run stays suspended: run {run_id}, path `{path}` (issue #{number} in {repo}). To decide:\n  \
             miyabi run {again} --approve-commands\n  \
             (or the same command on a terminal, to answer y/N), or over HTTP from\n  \
             `miyabi run serve --repo {repo}` on this database (it runs the pipeline):\n    \
             curl -X POST -H \"authorization: Bearer $MIYABI_TOKEN\" -d '{body}' http://127.0.0.1:7420/api/runs/{run_id}/resume\n  \
             (to decline: \"data\": {{\"approved\": false, \"reason\": \"...\"}})",
            again = again.join(" "),
            repo = repo.display(),
            path = s.path,
        ))
    };
    if !std::io::stdin().is_terminal() {
        return Err(how().into());
    }
    match ask_yes_no("Run it? [y/N] ").await? {
        Some(true) => Ok(json!({"approved": true})),
        Some(false) => {
            let who = std::env::var("USER").unwrap_or_else(|_| "the user".into());
            Ok(json!({"approved": false, "reason": format!("declined by {who} at the terminal")}))
        }
        None => Err(how().into()),
    }
}

/// `arg` as one word for a POSIX shell.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Asks y/N: an empty answer is no; `None` at the end of the input.
async fn ask_yes_no(question: &str) -> Result<Option<bool>, Error> {
    loop {
        print!("{question}");
        std::io::stdout().flush()?;
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map(|n| (n > 0).then_some(line))
        })
        .await??;
        match line.as_deref().map(str::trim) {
            None => return Ok(None),
            Some("y" | "Y" | "yes") => return Ok(Some(true)),
            Some("" | "n" | "N" | "no") => return Ok(Some(false)),
            Some(_) => println!("please answer y or n"),
        }
    }
}

async fn report(engine: &Engine, run_id: &str, as_json: bool) -> Result<bool, Error> {
    let run = engine.wait(run_id).await?;
    let ok = run.status == RunStatus::Succeeded;
    if as_json {
        println!(
            "{}",
            json!({"run": run.id, "status": run.status.to_string(), "output": run.output, "error": run.error})
        );
        return Ok(ok);
    }
    println!("\nrun {} {}", run.id, run.status);
    if let Some(out) = &run.output {
        println!("  branch  {}", out["branch"].as_str().unwrap_or("-"));
        println!("  review  {}/100", out["review"]["score"]);
        let pr = &out["pr"];
        if pr["opened"] == true {
            println!(
                "  PR      #{} {} ({})",
                pr["number"],
                pr["title"].as_str().unwrap_or(""),
                pr["url"].as_str().unwrap_or("")
            );
        } else {
            println!(
                "  PR      {} — {}",
                pr["title"].as_str().unwrap_or("not opened"),
                pr["reason"]
                    .as_str()
                    .or(pr["skipped"].as_str())
                    .unwrap_or("")
            );
        }
        println!(
            "  deploy  {}",
            out["deploy"]["summary"].as_str().unwrap_or("-")
        );
    }
    if let Some(e) = &run.error {
        println!("  error   {e}");
    }
    Ok(ok)
}

/// Prints the run's events from `from` while it runs here; returns the next sequence number.
/// The plan's child run is followed too, its lines marked `plan ›`.
async fn follow(engine: &Engine, run_id: &str, mut from: u64) -> Result<u64, Error> {
    let mut events = Box::pin(engine.events(run_id, from));
    let mut saw = false;
    while let Some(event) = events.next().await {
        let event = event?;
        saw = true;
        from = event.seq + 1;
        if let EventKind::Custom { name, data, .. } = &event.kind
            && name == "plan-run"
            && let Some(child) = data["run"].as_str()
            && let Some(next) = FOLLOWED.lock().ok().and_then(|mut f| {
                // Not followed right now: follow it from where its lines stopped.
                let e = f.entry(child.to_owned()).or_insert((false, 1));
                (!e.0).then(|| {
                    e.0 = true;
                    e.1
                })
            })
        {
            tokio::spawn(follow_child(engine.clone(), child.to_owned(), next));
        }
        if let Some(line) = line(&event.kind) {
            println!("  {:<14} {line}", event.type_name());
        }
    }
    if !saw {
        // Not executing in this process yet (being taken over): look again shortly.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(from)
}

/// The child runs followed: whether they are being followed now, and the next event to show.
static FOLLOWED: std::sync::Mutex<std::collections::BTreeMap<String, (bool, u64)>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

async fn follow_child(engine: Engine, run_id: String, mut from: u64) {
    loop {
        let mut events = Box::pin(engine.events(&run_id, from));
        let mut saw = false;
        while let Some(Ok(event)) = events.next().await {
            saw = true;
            from = event.seq + 1;
            if let Some(line) = line(&event.kind) {
                println!("  plan › {:<14} {line}", event.type_name());
            }
        }
        let running =
            matches!(engine.get(&run_id).await, Ok(Some(r)) if r.status == RunStatus::Running);
        if !running {
            // Followed again, from here, when it goes on (after a decision on a command).
            if let Ok(mut f) = FOLLOWED.lock() {
                f.insert(run_id.clone(), (false, from));
            }
            return;
        }
        if !saw {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// How an event is shown, if at all.
fn line(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::StepStarted { path, attempt } if *attempt > 1 => {
            format!("{path} (attempt {attempt})")
        }
        EventKind::StepStarted { path, .. } => path.to_string(),
        EventKind::StepOutput { path, output } => format!("{path:<30}{}", short(output)),
        EventKind::StepFailed { path, error } => format!("{path:<30}{error}"),
        EventKind::Custom { path, name, data } if name == "agent-turn" => {
            let calls: Vec<String> = data["turn"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect();
            if calls.is_empty() {
                return None;
            }
            format!(
                "{path:<30}{} calls {}",
                data["agent"].as_str().unwrap_or("agent"),
                calls.join(", ")
            )
        }
        EventKind::Custom { path, name, data } if name == "plan-run" => {
            format!(
                "{path:<30}the plan runs as run {}",
                data["run"].as_str().unwrap_or("?")
            )
        }
        EventKind::Custom { path, name, data } => format!("{path:<30}{name} {}", short(data)),
        EventKind::RunSuspended { paths } => paths.join(", "),
        EventKind::RunFinished { status, .. } => status.to_string(),
        _ => return None,
    })
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

async fn ask(question: &str) -> Result<Option<bool>, Error> {
    loop {
        print!("{question}");
        std::io::stdout().flush()?;
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map(|n| (n > 0).then_some(line))
        })
        .await??;
        if !std::io::stdin().is_terminal() {
            println!("{}", line.as_deref().unwrap_or("").trim());
        }
        match line.as_deref().map(str::trim) {
            None => return Ok(None),
            Some("y" | "Y" | "yes") => return Ok(Some(true)),
            Some("n" | "N" | "no") => return Ok(Some(false)),
            Some(_) => println!("please answer y or n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn arguments_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_quote("--repo"), "--repo");
        assert_eq!(shell_quote("repo/ISSUE.md"), "repo/ISSUE.md");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
