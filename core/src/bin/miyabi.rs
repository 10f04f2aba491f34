//! `miyabi`: serve the HTTP API over a run database, and inspect or cancel runs from a shell.
//!
//! ```text
//! miyabi serve [--addr 127.0.0.1:7420] [--access access.toml]
//! miyabi runs list [--workflow W] [--status S] [--limit N]
//! miyabi runs show <id>
//! miyabi runs cancel <id>
//! miyabi runs prune [--older-than 30d] [--keep-last N] [--workflow W]
//! miyabi approvals list [--all] [--as WHO]
//! miyabi approve <run> <gate> --as WHO [--comment ..] [--edit file.json]
//! miyabi reject <run> <gate> --as WHO [--comment ..]
//! miyabi eval run <suite.yaml> [--output r.json] [--junit r.xml] [--markdown r.md] [--html r.html]
//! miyabi eval compare <a.json> <b.json>
//! ```
//!
//! Every command takes `--db PATH` or `--db postgres://…` (default `$MIYABI_DB`, else
//! `./miyabi.db`) and `--json`. With `--server URL --token T` (or `MIYABI_SERVER`,
//! `MIYABI_TOKEN`), `runs list|show|cancel`, `approvals list`, `approve` and `reject` go to a
//! running `miyabi serve` instead, under its access control.
//! See `docs/server.md`.

#[path = "miyabi_cli/remote.rs"]
mod remote;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use miyabi::approval::{Approval, ApprovalFilter, ApprovalStatus, Approver, Decision};
use miyabi::server::{ServerConfig, serve};
use miyabi::store::{RunSummary, StepRecord};
use miyabi::{Engine, Run, RunFilter, RunStatus};
use serde_json::json;

/// Command line of `miyabi`.
#[derive(Parser)]
#[command(
    name = "miyabi",
    version,
    about = "Miyabi: serve and inspect durable workflow runs"
)]
struct Cli {
    /// The run database: a SQLite file, or a Postgres URL (`postgres://user@host:port/db`).
    #[arg(long, global = true, env = "MIYABI_DB", default_value = "./miyabi.db")]
    db: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// A running `miyabi serve` to send the command to (`http://host:7420`), so its roles,
    /// scopes and audit apply; `--db` is then not used.
    #[arg(long, global = true, env = "MIYABI_SERVER", value_name = "URL")]
    server: Option<String>,
    /// The bearer token for `--server`.
    #[arg(long, global = true, env = "MIYABI_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (identities from --access, MIYABI_TOKENS/MIYABI_ROLES/MIYABI_SCOPES
    /// and MIYABI_JWT_*; one admin token is generated and printed if none is configured).
    Serve {
        /// Address to listen on: `host:port` (a name such as `localhost:7420` is resolved;
        /// a host alone gets port 7420).
        #[arg(long, default_value = miyabi::server::DEFAULT_ADDR)]
        addr: String,
        /// An access file (TOML: identities, roles, scopes, JWT; docs/server.md).
        #[arg(long, env = "MIYABI_ACCESS_FILE")]
        access: Option<std::path::PathBuf>,
    },
    /// List, show or cancel runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// List approval gates.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Approve an approval gate (optionally with edited data).
    Approve {
        #[command(flatten)]
        gate: GateArgs,
        /// A JSON file with the edited data to approve instead of the data under review.
        #[arg(long, value_name = "FILE")]
        edit: Option<std::path::PathBuf>,
    },
    /// Reject an approval gate.
    Reject {
        #[command(flatten)]
        gate: GateArgs,
    },
    /// Run an evaluation suite or compare two results (exit 0 pass, 100 gate failed, 1 error;
    /// see docs/evals.md).
    #[command(subcommand)]
    Eval(miyabi::eval::cli::EvalCommand),
    /// Any other command `x` runs the program `miyabi-x` (next to this one, or on PATH) with
    /// the remaining arguments, as git and cargo do: `miyabi mcp` is `miyabi-mcp`, `miyabi
    /// code` is `miyabi-code` (each in its own crate, so this one stays small).
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// Pending gates (all of them, or those awaiting `--as`); `--all` lists every status.
    List {
        /// Gates of every status, not only pending ones.
        #[arg(long)]
        all: bool,
        /// Only the inbox of this user (pending gates they may decide).
        #[arg(long = "as", value_name = "WHO")]
        who: Option<String>,
        /// The user's teams (repeatable), for `--as`.
        #[arg(long = "team", value_name = "TEAM")]
        teams: Vec<String>,
    },
}

#[derive(Args)]
struct GateArgs {
    /// Run id.
    run: String,
    /// The gate's path in the run (`code-review`, `checks/security`).
    gate: String,
    /// Who decides (a user id listed in the gate's approvers).
    #[arg(long = "as", value_name = "WHO")]
    who: String,
    /// The decider's teams (repeatable), for gates listing `team:<name>`.
    #[arg(long = "team", value_name = "TEAM")]
    teams: Vec<String>,
    /// A comment for the audit trail.
    #[arg(long)]
    comment: Option<String>,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Runs, newest first.
    List(ListArgs),
    /// One run with its step records.
    Show {
        /// Run id.
        id: String,
    },
    /// Cancel a run (a suspended one at once; one executing in another live process is
    /// refused).
    Cancel {
        /// Run id.
        id: String,
    },
    /// Retry a failed run from its failed steps (with `--server`: the server's process has
    /// the workflow's steps; the steps that succeeded are kept).
    Retry {
        /// Run id.
        id: String,
    },
    /// Delete finished runs (succeeded, failed, cancelled) ended longer ago than
    /// `--older-than` and, per workflow, beyond the newest `--keep-last`; running and
    /// suspended runs are never deleted.
    Prune(PruneArgs),
}

#[derive(Args)]
struct PruneArgs {
    /// Delete finished runs that ended longer ago than this (`30d`, `12h`, `90m`).
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    older_than: Option<std::time::Duration>,
    /// Per workflow, keep this many finished runs (the newest) and delete the rest.
    #[arg(long, value_name = "N")]
    keep_last: Option<usize>,
    /// Only runs of this workflow.
    #[arg(long)]
    workflow: Option<String>,
}

#[derive(Args)]
struct ListArgs {
    /// Only runs of this workflow.
    #[arg(long)]
    workflow: Option<String>,
    /// Only runs with this status (running, suspended, succeeded, failed, cancelled).
    #[arg(long)]
    status: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

/// A failure shown to the user.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Engine(#[from] miyabi::EngineError),
    #[error(transparent)]
    Server(#[from] miyabi::server::ServerError),
    #[error(transparent)]
    Approval(#[from] miyabi::approval::ApprovalError),
    #[error("{0}")]
    Usage(String),
    /// The server answered with an error.
    #[error("the server answered {status}: {message}")]
    Remote {
        status: u16,
        code: String,
        message: String,
    },
    /// The server could not be reached, or its answer read.
    #[error("cannot talk to the server at {server}: {message}")]
    Http { server: String, message: String },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::External(args) = &cli.command {
        return external(&cli, args);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&CliError::Runtime(e)),
    };
    if let Command::Eval(cmd) = cli.command {
        return ExitCode::from(rt.block_on(miyabi::eval::cli::run(cmd, &cli.db, cli.json)));
    }
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

impl CliError {
    /// The same code the HTTP API and the Node package report for this failure (a server's
    /// own code as it sent it).
    fn code(&self) -> String {
        match self {
            Self::Engine(e) => e.code().to_string(),
            Self::Approval(e) => e.code().to_string(),
            Self::Usage(_) => miyabi::ErrorCode::InvalidArgument.to_string(),
            Self::Remote { code, .. } => code.clone(),
            Self::Server(_) | Self::Runtime(_) | Self::Http { .. } => {
                miyabi::ErrorCode::Engine.to_string()
            }
        }
    }
}

/// Runs `miyabi-<name>` for `miyabi <name> args...`, with `--db` passed on as `MIYABI_DB`;
/// exits with its status.
fn external(cli: &Cli, args: &[OsString]) -> ExitCode {
    let Some((name, rest)) = args.split_first() else {
        return ExitCode::FAILURE;
    };
    let program = format!("miyabi-{}", name.to_string_lossy());
    // Next to this executable first (an install puts them together), then PATH.
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(&program)))
        .filter(|p| p.is_file());
    let mut cmd = std::process::Command::new(beside.as_deref().unwrap_or(program.as_ref()));
    cmd.args(rest).env("MIYABI_DB", &cli.db);
    if cli.json {
        cmd.arg("--json");
    }
    match cmd.status() {
        Ok(status) => match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            // Killed by a signal.
            None => ExitCode::FAILURE,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "miyabi: error [INVALID_ARGUMENT]: unknown command `{}`: no program `{program}` next to this one or on PATH (e.g. `cargo install {program}`)",
                name.to_string_lossy()
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("miyabi: error [ENGINE]: cannot run `{program}`: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fail(e: &CliError) -> ExitCode {
    eprintln!("miyabi: error [{}]: {e}", e.code());
    ExitCode::FAILURE
}

/// `host:port` (or a host alone, on port 7420) to the first address it resolves to.
async fn resolve(addr: &str) -> Result<SocketAddr, CliError> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    let with_port = if addr
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        addr.to_string()
    } else {
        format!("{addr}:7420")
    };
    tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| CliError::Usage(format!("cannot resolve --addr `{addr}`: {e}")))?
        .next()
        .ok_or_else(|| CliError::Usage(format!("--addr `{addr}` resolves to no address")))
}

async fn run(cli: Cli) -> Result<(), CliError> {
    if let Some(server) = cli.server.clone()
        && !matches!(cli.command, Command::Serve { .. })
    {
        let remote = remote::Remote::new(&server, cli.token.clone())?;
        return run_remote(cli, &remote).await;
    }
    // Only `serve` may create the database; every other command reads or changes runs that
    // must exist already, so a mistyped --db is an error naming the path, not a new file. A
    // Postgres URL is a server's database: it is checked by connecting.
    if !matches!(cli.command, Command::Serve { .. })
        && !miyabi::store::is_postgres_url(&cli.db)
        && !std::path::Path::new(&cli.db).exists()
    {
        return Err(CliError::Usage(format!(
            "no database at `{}` (give --db PATH or set MIYABI_DB)",
            cli.db
        )));
    }
    let engine = Engine::open(&cli.db)?;
    match cli.command {
        Command::Serve { addr, access } => {
            let addr = resolve(&addr).await?;
            // The dashboard's Evals view compares eval runs as `miyabi eval compare` does.
            let mut config = ServerConfig::from_env()?
                .eval_comparer(std::sync::Arc::new(miyabi::eval::Comparer));
            // from_env read MIYABI_ACCESS_FILE already; --access adds a file given on the line.
            if let Some(path) = access
                && std::env::var_os("MIYABI_ACCESS_FILE").is_none_or(|v| v != path.as_os_str())
            {
                config = config.access_file(&path)?;
            }
            let server = serve(engine, config, Some(addr)).await?;
            eprintln!(
                "miyabi: serving {} on http://{}",
                miyabi::store::shown_location(&cli.db),
                server.local_addr()
            );
            let stop = server.shutdown_token();
            tokio::spawn(async move {
                shutdown_signal().await;
                stop.cancel();
            });
            server.wait().await?;
            Ok(())
        }
        Command::Runs(RunsCommand::List(a)) => {
            let status = a
                .status
                .as_deref()
                .map(|s| {
                    RunStatus::parse(s).ok_or_else(|| {
                        CliError::Usage(format!(
                            "unknown status `{s}` (running, suspended, succeeded, failed, cancelled)"
                        ))
                    })
                })
                .transpose()?;
            let runs = engine
                .store()
                .list_run_summaries(&RunFilter {
                    workflow: a.workflow,
                    status,
                    limit: Some(a.limit),
                    ..RunFilter::default()
                })
                .map_err(miyabi::EngineError::from)?;
            if cli.json {
                println!("{}", rfc3339_times(json!({ "runs": runs })));
            } else {
                print_runs(&runs);
            }
            Ok(())
        }
        Command::Runs(RunsCommand::Show { id }) => {
            let run = engine
                .get(&id)
                .await?
                .ok_or_else(|| miyabi::EngineError::UnknownRun(id.clone()))?;
            let mut steps = engine
                .store()
                .steps(&id)
                .map_err(miyabi::EngineError::from)?;
            steps.sort_by(|a, b| (a.updated_at, &a.path).cmp(&(b.updated_at, &b.path)));
            if cli.json {
                println!("{}", rfc3339_times(json!({ "run": run, "steps": steps })));
            } else {
                print_run(&run, &steps);
            }
            Ok(())
        }
        Command::Approvals(ApprovalsCommand::List { all, who, teams }) => {
            let approvals = engine.approvals();
            let list = match who {
                Some(who) => approvals.inbox(&Approver::new(who).teams(teams))?,
                None => approvals.list(&ApprovalFilter {
                    status: (!all).then_some(ApprovalStatus::Pending),
                    ..ApprovalFilter::default()
                })?,
            };
            if cli.json {
                println!("{}", rfc3339_times(json!({ "approvals": list })));
            } else {
                print_approvals(&list);
            }
            Ok(())
        }
        Command::Approve { gate, edit } => {
            let decision = approve_decision(&gate, edit)?;
            decide(&engine, &gate, decision, cli.json).await
        }
        Command::Reject { gate } => decide(&engine, &gate, reject_decision(&gate), cli.json).await,
        Command::Runs(RunsCommand::Prune(a)) => {
            if a.older_than.is_none() && a.keep_last.is_none() {
                return Err(CliError::Usage(
                    "runs prune needs --older-than AGE and/or --keep-last N".into(),
                ));
            }
            let mut rule = miyabi::Retention::default();
            rule.max_age = a.older_than;
            rule.keep_last = a.keep_last;
            rule.workflow = a.workflow;
            let deleted = engine.prune(&rule)?;
            record(
                &engine,
                "runs.prune",
                "",
                json!({
                    "outcome": "ok",
                    "deleted": deleted,
                    "older_than_ms": a.older_than.map(|d| d.as_millis() as u64),
                    "keep_last": a.keep_last,
                    "workflow": rule.workflow,
                }),
            );
            if cli.json {
                println!("{}", json!({ "deleted": deleted }));
            } else {
                println!("deleted {deleted} finished run(s)");
            }
            Ok(())
        }
        Command::Eval(_) => Err(CliError::Usage("`eval` runs without a run database".into())),
        // Handled in `main` before the engine opens.
        Command::External(_) => Err(CliError::Usage("an external command".into())),
        Command::Runs(RunsCommand::Retry { id }) => Err(CliError::Usage(format!(
            "`runs retry {id}` needs the process that has the workflow's steps: run it with \
             `--server <url> --token <token>` against the server that serves that workflow"
        ))),
        Command::Runs(RunsCommand::Cancel { id }) => {
            let run = match engine.cancel(&id).await {
                Ok(run) => run,
                Err(e) => {
                    record(
                        &engine,
                        "run.cancel",
                        &id,
                        json!({ "outcome": "failed", "error": e.to_string() }),
                    );
                    return Err(e.into());
                }
            };
            record(&engine, "run.cancel", &id, json!({ "outcome": "ok" }));
            // Its open gates close now: they leave inboxes and their notifiers say so.
            engine.approvals().close_run(&id).await?;
            if cli.json {
                println!("{}", rfc3339_times(json!({ "run": run })));
            } else {
                println!("{} {}", run.id, run.status);
            }
            Ok(())
        }
    }
}

/// The commands that go to a server with `--server`: the same output as against the database.
async fn run_remote(cli: Cli, remote: &remote::Remote) -> Result<(), CliError> {
    match cli.command {
        Command::Runs(RunsCommand::List(a)) => {
            let mut query = vec![("limit", a.limit.to_string())];
            if let Some(w) = a.workflow {
                query.push(("workflow", w));
            }
            if let Some(st) = a.status {
                query.push(("status", st));
            }
            #[derive(serde::Deserialize)]
            struct Page {
                runs: Vec<RunSummary>,
            }
            let page: Page = remote.get(&["api", "runs"], &query).await?;
            if cli.json {
                println!("{}", rfc3339_times(json!({ "runs": page.runs })));
            } else {
                print_runs(&page.runs);
            }
        }
        Command::Runs(RunsCommand::Show { id }) => {
            #[derive(serde::Deserialize)]
            struct Shown {
                run: Run,
                steps: Vec<StepRecord>,
            }
            let mut shown: Shown = remote.get(&["api", "runs", &id], &[]).await?;
            shown
                .steps
                .sort_by(|a, b| (a.updated_at, &a.path).cmp(&(b.updated_at, &b.path)));
            if cli.json {
                println!(
                    "{}",
                    rfc3339_times(json!({ "run": shown.run, "steps": shown.steps }))
                );
            } else {
                print_run(&shown.run, &shown.steps);
            }
        }
        Command::Runs(RunsCommand::Cancel { id }) => {
            // The server audits it as the token's identity and closes the run's gates.
            #[derive(serde::Deserialize)]
            struct Cancelled {
                run: Run,
            }
            let c: Cancelled = remote
                .post(&["api", "runs", &id, "cancel"], json!({}))
                .await?;
            if cli.json {
                println!("{}", rfc3339_times(json!({ "run": c.run })));
            } else {
                println!("{} {}", c.run.id, c.run.status);
            }
        }
        Command::Runs(RunsCommand::Retry { id }) => {
            // The server audits it as the token's identity and runs the failed steps again.
            #[derive(serde::Deserialize)]
            struct Retried {
                id: String,
            }
            let r: Retried = remote
                .post(&["api", "runs", &id, "retry"], json!({}))
                .await?;
            if cli.json {
                println!("{}", json!({ "id": r.id, "retried": true }));
            } else {
                println!("{} retried from its failed steps", r.id);
            }
        }
        Command::Approvals(ApprovalsCommand::List { all, who, .. }) => {
            if let Some(who) = &who {
                remote.check_identity(who).await?;
            }
            // Without --all: the token's inbox; with it: every gate (viewer role or more).
            let query = if all {
                vec![("all", "1".to_string())]
            } else {
                Vec::new()
            };
            #[derive(serde::Deserialize)]
            struct Page {
                approvals: Vec<Approval>,
            }
            let page: Page = remote.get(&["api", "approvals"], &query).await?;
            if cli.json {
                println!("{}", rfc3339_times(json!({ "approvals": page.approvals })));
            } else {
                print_approvals(&page.approvals);
            }
        }
        Command::Approve { gate, edit } => {
            let decision = approve_decision(&gate, edit)?;
            decide_remote(remote, &gate, decision, cli.json).await?;
        }
        Command::Reject { gate } => {
            decide_remote(remote, &gate, reject_decision(&gate), cli.json).await?;
        }
        Command::Runs(RunsCommand::Prune(_)) => {
            return Err(CliError::Usage(
                "runs prune works on the database (--db); the server has no prune endpoint \
                 (it prunes by its own retention rule)"
                    .into(),
            ));
        }
        Command::Serve { .. } | Command::Eval(_) | Command::External(_) => {
            return Err(CliError::Usage(
                "this command does not take --server".into(),
            ));
        }
    }
    Ok(())
}

/// `approve` as a decision: the data as it is, or the edited data of `--edit`.
fn approve_decision(
    gate: &GateArgs,
    edit: Option<std::path::PathBuf>,
) -> Result<Decision, CliError> {
    let mut decision = match edit {
        Some(file) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
            let data: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| CliError::Usage(format!("{} is not JSON: {e}", file.display())))?;
            Decision::edit_and_approve(data)
        }
        None => Decision::approve(),
    };
    if let Some(c) = &gate.comment {
        decision = decision.comment(c.clone());
    }
    Ok(decision)
}

/// `reject` as a decision.
fn reject_decision(gate: &GateArgs) -> Decision {
    let mut decision = Decision::reject();
    if let Some(c) = &gate.comment {
        decision = decision.comment(c.clone());
    }
    decision
}

/// A decision sent to the server as the token's identity (`--as` must name it; the teams are
/// the server's).
async fn decide_remote(
    remote: &remote::Remote,
    gate: &GateArgs,
    decision: Decision,
    json: bool,
) -> Result<(), CliError> {
    remote.check_identity(&gate.who).await?;
    #[derive(serde::Deserialize)]
    struct Decided {
        approval: Approval,
    }
    let d: Decided = remote
        .post(
            &["api", "approvals", &gate.run, &gate.gate, "decision"],
            serde_json::to_value(&decision).map_err(|e| CliError::Usage(e.to_string()))?,
        )
        .await?;
    print_decided(&d.approval, json);
    Ok(())
}

/// Records a state change made from the command line in the audit trail, as
/// `cli:<OS user>` (the database has no other notion of who runs the command).
fn record(engine: &Engine, action: &str, run: &str, data: serde_json::Value) {
    let Some(gates) = engine.store().gates() else {
        return;
    };
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let rec = miyabi::approval::AuditRecord {
        id: 0,
        run_id: run.to_string(),
        gate: String::new(),
        at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
        actor: format!("cli:{user}"),
        action: action.to_string(),
        comment: None,
        diff: None,
        data: Some(data),
    };
    if let Err(e) = gates.append_audit(&rec) {
        eprintln!("miyabi: warning: cannot record `{action}` in the audit trail: {e}");
    }
}

async fn decide(
    engine: &Engine,
    gate: &GateArgs,
    decision: Decision,
    json: bool,
) -> Result<(), CliError> {
    let who = Approver::new(gate.who.clone()).teams(gate.teams.clone());
    let a = engine
        .approvals()
        .decide(&gate.run, &gate.gate, &who, decision)
        .await?;
    print_decided(&a, json);
    Ok(())
}

/// A decided (or still pending) gate, with the votes its policy still needs.
fn print_decided(a: &Approval, json: bool) {
    let needed = votes_needed(a);
    if json {
        println!(
            "{}",
            rfc3339_times(json!({ "approval": a, "votes_needed": needed }))
        );
    } else if a.status == ApprovalStatus::Pending {
        println!(
            "{} {} pending: {}",
            a.run_id,
            a.gate,
            match needed {
                1 => "1 more approval needed".to_string(),
                n => format!("{n} more approvals needed"),
            }
        );
    } else {
        println!("{} {} {}", a.run_id, a.gate, a.status.as_str());
    }
}

/// How many more approvals the gate's policy needs (0 once decided).
fn votes_needed(a: &Approval) -> usize {
    use miyabi::approval::{DecisionAction, Policy};
    if a.status != ApprovalStatus::Pending {
        return 0;
    }
    let approvals: Vec<_> = a
        .votes
        .iter()
        .filter(|v| v.action == DecisionAction::Approve)
        .collect();
    match a.policy {
        Policy::Any => usize::from(approvals.is_empty()),
        Policy::Quorum(n) => (n.max(1) as usize).saturating_sub(approvals.len()),
        Policy::All => a
            .approvers
            .iter()
            .filter(|entry| !approvals.iter().any(|v| v.entries.contains(entry)))
            .count(),
    }
}

/// The JSON output with every time (`at` and `*_at` fields, ms since the epoch) as RFC 3339.
fn rfc3339_times(mut v: serde_json::Value) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    if (k == "at" || k.ends_with("_at"))
                        && let Some(ms) = x.as_i64()
                    {
                        *x = serde_json::Value::String(rfc3339(ms));
                    } else {
                        walk(x);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// RFC 3339 (UTC, milliseconds) for milliseconds since the Unix epoch.
fn rfc3339(ms: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&::time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// RFC 3339 to the second (UTC) for milliseconds since the Unix epoch, for tables.
fn time(ms: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&::time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// A JSON value for a terminal: pretty-printed, continuation lines indented by `indent`.
fn pretty(v: &serde_json::Value, indent: usize) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    text.replace('\n', &format!("\n{}", " ".repeat(indent)))
}

/// Prints rows as columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn print_runs(runs: &[RunSummary]) {
    if runs.is_empty() {
        println!("no runs");
        return;
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.workflow.clone(),
                r.status.to_string(),
                time(r.created_at),
                time(r.updated_at),
            ]
        })
        .collect();
    table(&["ID", "WORKFLOW", "STATUS", "CREATED", "UPDATED"], &rows);
}

fn print_approvals(list: &[Approval]) {
    if list.is_empty() {
        println!("no approvals");
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                a.run_id.clone(),
                a.gate.clone(),
                a.status.as_str().to_string(),
                a.title.clone(),
                a.approvers.join(","),
                time(a.created_at),
            ]
        })
        .collect();
    table(
        &["RUN", "GATE", "STATUS", "TITLE", "APPROVERS", "CREATED"],
        &rows,
    );
}

fn print_run(run: &Run, steps: &[StepRecord]) {
    println!("run       {}", run.id);
    println!("workflow  {}", run.workflow);
    println!("status    {}", run.status);
    println!("created   {}", time(run.created_at));
    println!("updated   {}", time(run.updated_at));
    println!("input     {}", pretty(&run.input, 10));
    if let Some(o) = &run.output {
        println!("output    {}", pretty(o, 10));
    }
    if let Some(e) = &run.error {
        println!("error     {e}");
    }
    for s in &run.suspended {
        println!("waiting   {} {}", s.path, pretty(&s.payload, 10));
    }
    if !steps.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = steps
            .iter()
            .map(|s| {
                let kind = serde_json::to_value(s.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let status = serde_json::to_value(s.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                vec![s.path.to_string(), kind, status, s.attempt.to_string()]
            })
            .collect();
        table(&["PATH", "KIND", "STATUS", "ATTEMPT"], &rows);
    }
}
