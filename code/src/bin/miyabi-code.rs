//! `miyabi-code` (also `miyabi code`): the coding agent in the terminal.
//!
//! ```text
//! miyabi code "fix the failing test"            # runs to the end, streaming; exit 0 on success
//! miyabi code --json "fix the failing test"     # one JSON event per line
//! miyabi code                                   # interactive: type requests; /diff, /exit
//! miyabi code --resume                          # continue the last session (or --resume ID)
//! ```
//!
//! The model comes from `--model provider/model` (or `MIYABI_CODE_MODEL`); sessions are threads
//! in `<workspace>/.miyabi/sessions.db`. See docs/coding.md.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use futures::StreamExt;
use miyabi::agent::{AgentCheckpoint, AgentEvent, AgentResponse, StopReason};
use miyabi::model::LanguageModel;
use miyabi::{AgentInput, Memory};
use miyabi_code::agent::{CodingAgent, CodingOptions};
use miyabi_code::shell::SandboxMode;
use serde_json::{Value, json};

/// Command line of `miyabi-code`.
#[derive(Parser)]
#[command(name = "miyabi-code", version, about = "Miyabi's coding agent")]
struct Cli {
    /// The task; without one, an interactive session.
    task: Option<String>,
    /// The model, `provider/model` from the catalogue (any provider with tool calls).
    #[arg(long, env = "MIYABI_CODE_MODEL", default_value = "openai/gpt-4.1")]
    model: String,
    /// The workspace (a git repository).
    #[arg(long, default_value = ".")]
    workspace: PathBuf,
    /// The shell's sandbox: read-only, workspace-write or full-access.
    #[arg(long, default_value = "workspace-write")]
    sandbox: String,
    /// One JSON event per line on stdout.
    #[arg(long)]
    json: bool,
    /// Approve every command the policy would ask about (the policy's denials still hold).
    #[arg(long)]
    yes: bool,
    /// Continue a session: its id, or the last one without.
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    resume: Option<String>,
    /// Model calls per request.
    #[arg(long, default_value_t = 40)]
    max_steps: usize,
}

/// Why the command failed.
#[derive(Debug, thiserror::Error)]
enum CodeError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Agent(#[from] miyabi::AgentError),
    #[error(transparent)]
    Setup(#[from] miyabi_code::agent::CodingAgentError),
    #[error("sessions: {0}")]
    Memory(#[from] miyabi::MemoryError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MIYABI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("miyabi code: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("miyabi code: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where a terminal session writes: human text or JSON lines.
struct Out {
    json: bool,
}

impl Out {
    fn event(&self, e: &AgentEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(e) {
                println!("{line}");
            }
            return;
        }
        match e {
            AgentEvent::TextDelta { text, .. } => {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
            AgentEvent::ToolCall { call, .. } => {
                println!("\n→ {} {}", call.name, short(&call.arguments));
            }
            AgentEvent::ToolResult { result, .. } => {
                let text = result.content.to_string();
                let mark = if result.is_error { "✗" } else { "✓" };
                println!("  {mark} {}", first_lines(&text, 12));
            }
            _ => {}
        }
    }

    fn note(&self, kind: &str, data: Value) {
        if self.json {
            let mut v = json!({ "type": kind });
            if let (Some(m), Value::Object(d)) = (v.as_object_mut(), data) {
                m.extend(d);
            }
            println!("{v}");
        } else if let Some(text) = data.get("text").and_then(Value::as_str) {
            println!("{text}");
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}

fn first_lines(s: &str, n: usize) -> String {
    let s = s.trim_matches('"').replace("\\n", "\n");
    let lines: Vec<&str> = s.lines().collect();
    if lines.len() > n {
        format!(
            "{}\n  … ({} more lines)",
            lines[..n].join("\n  "),
            lines.len() - n
        )
    } else {
        lines.join("\n  ")
    }
}

async fn run(cli: Cli) -> Result<ExitCode, CodeError> {
    let sandbox = match cli.sandbox.as_str() {
        "read-only" => SandboxMode::ReadOnly,
        "workspace-write" => SandboxMode::WorkspaceWrite,
        "full-access" => SandboxMode::FullAccess,
        other => {
            return Err(CodeError::Usage(format!(
                "--sandbox `{other}`: use read-only, workspace-write or full-access"
            )));
        }
    };
    let root = std::fs::canonicalize(&cli.workspace)?;
    let state = root.join(".miyabi");
    std::fs::create_dir_all(&state)?;
    let memory = Memory::sqlite(state.join("sessions.db"))?;
    let options = CodingOptions {
        sandbox,
        max_steps: cli.max_steps,
        ..CodingOptions::default()
    };
    // One model for the agent and for compaction summaries.
    let model: Arc<dyn LanguageModel> =
        Arc::new(miyabi::model(&cli.model).map_err(miyabi_code::agent::CodingAgentError::from)?);
    let coder = CodingAgent::new(&root, Arc::clone(&model), options)?.with_memory(memory.clone());
    let session = match cli.resume.as_deref() {
        Some("") => std::fs::read_to_string(state.join("last-session"))
            .map(|s| s.trim().to_string())
            .map_err(|_| CodeError::Usage("no session to resume in this workspace".into()))?,
        Some(id) => id.to_string(),
        None => format!(
            "s-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        ),
    };
    std::fs::write(state.join("last-session"), &session)?;
    let out = Out { json: cli.json };
    // Long sessions: past 80% of the model's context window (from the catalogue), the older
    // requests are summarised before the next one (`/compact` does it at once).
    let window = miyabi::model::Catalog::embedded()
        .lookup(&cli.model)
        .and_then(|(_, m)| m.and_then(|m| m.context_window));
    let session_ctx = Session {
        memory,
        model,
        window,
        state: state.clone(),
    };
    out.note(
        "session",
        json!({ "session": session, "workspace": root, "model": cli.model,
                "text": format!("session {session} in {}", root.display()) }),
    );
    // A request of this session that waited for approval when the terminal went away: ask
    // again and go on from where it stopped.
    if let Some(waiting) = session_ctx.load_pending(&session)? {
        out.note(
            "resumed",
            json!({ "text": format!("session {session} waits for {} approval(s)", waiting.pending.len()) }),
        );
        finish(&coder, &session_ctx, &session, waiting, &out, cli.yes).await?;
    }
    match cli.task {
        Some(task) => {
            session_ctx.compact(&session, &out, 0.8).await?;
            let ok = request(&coder, &session_ctx, &session, &task, &out, cli.yes).await?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        None => interactive(&coder, &session, &session_ctx, &out, cli.yes, &root).await,
    }
}

/// One request to the end: streamed, approvals asked (or given with `--yes`). True when the
/// agent finished with an answer.
async fn request(
    coder: &CodingAgent,
    ctx: &Session,
    session: &str,
    task: &str,
    out: &Out,
    yes: bool,
) -> Result<bool, CodeError> {
    let mut stream = coder
        .agent()
        .stream(AgentInput::prompt(task).thread(session));
    let mut response: Option<AgentResponse> = None;
    while let Some(e) = stream.next().await {
        match e? {
            AgentEvent::Finish { response: r } => response = Some(*r),
            other => out.event(&other),
        }
    }
    let response =
        response.ok_or_else(|| CodeError::Usage("the agent stopped without an answer".into()))?;
    finish(coder, ctx, session, response, out, yes).await
}

/// Takes a response through its approvals to the end. While it waits for a decision its
/// checkpoint is on disk (`.miyabi/pending/<session>.json`), so a terminal that goes away loses
/// nothing: `--resume` asks again.
async fn finish(
    coder: &CodingAgent,
    ctx: &Session,
    session: &str,
    mut response: AgentResponse,
    out: &Out,
    yes: bool,
) -> Result<bool, CodeError> {
    while response.stop == StopReason::ApprovalRequired {
        let Some(checkpoint) = response.checkpoint.clone() else {
            break;
        };
        ctx.save_pending(session, &response)?;
        let decisions = decide(&response, out, yes)?;
        if let Some(d) = &decisions.1 {
            let _ = coder.shell().policy().remember(d);
        }
        let seen = response.turns.len();
        response = resume(coder, checkpoint, &decisions.0, out, seen).await?;
    }
    ctx.clear_pending(session)?;
    let ok = !matches!(response.stop, StopReason::ApprovalRequired);
    out.note(
        "done",
        json!({ "stop": response.stop, "text": if out.json { response.text.clone() } else { String::new() },
                "usage": response.usage, "cost_usd": response.cost_usd }),
    );
    Ok(ok)
}

async fn resume(
    coder: &CodingAgent,
    checkpoint: AgentCheckpoint,
    decisions: &Value,
    out: &Out,
    seen: usize,
) -> Result<AgentResponse, CodeError> {
    let r = coder.agent().resume(checkpoint, decisions).await?;
    // The turns before `seen` were shown already, the last of them up to its approval.
    for t in r.turns.iter().skip(seen.saturating_sub(1)) {
        let calls = if t.index + 1 == seen {
            &[][..]
        } else {
            &t.tool_calls[..]
        };
        for c in calls {
            out.event(&AgentEvent::ToolCall {
                turn: t.index,
                call: c.clone(),
            });
        }
        for res in &t.tool_results {
            out.event(&AgentEvent::ToolResult {
                turn: t.index,
                result: res.clone(),
            });
        }
    }
    if !out.json {
        println!("{}", r.text);
    }
    Ok(r)
}

/// The decisions for the pending calls: `--yes`, else a prompt on the terminal (y / n / a =
/// always for this pattern); with neither, declined. Returns the decisions and, for "always",
/// the decision that carries the rule.
fn decide(r: &AgentResponse, out: &Out, yes: bool) -> Result<(Value, Option<Value>), CodeError> {
    let mut decisions = serde_json::Map::new();
    let mut always = None;
    for p in &r.pending {
        out.note(
            "approval",
            json!({ "call_id": p.call_id, "tool": p.tool, "arguments": p.arguments,
                    "text": format!("? {} {} — allow? [y]es / [n]o / [a]lways", p.tool, short(&p.arguments)) }),
        );
        let answer = if yes {
            "y".to_string()
        } else if out.json {
            "n".to_string()
        } else {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_lowercase()
        };
        let approved = answer.starts_with('y') || answer.starts_with('a');
        let mut d = json!({ "approved": approved });
        if answer.starts_with('a')
            && let Some(cmd) = p.arguments.get("command").and_then(Value::as_str)
        {
            let pattern = format!("{}*", cmd.split_whitespace().next().unwrap_or(cmd));
            d["always"] = json!(pattern);
            always = Some(d.clone());
        }
        decisions.insert(p.call_id.clone(), d);
    }
    Ok((json!({ "decisions": decisions }), always))
}

/// What compaction needs: the session's memory, the model and its context window; and where
/// a request waiting for approval keeps its checkpoint.
struct Session {
    memory: Memory,
    model: Arc<dyn LanguageModel>,
    window: Option<u64>,
    state: PathBuf,
}

impl Session {
    fn pending_path(&self, session: &str) -> PathBuf {
        let safe: String = session
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.state.join("pending").join(format!("{safe}.json"))
    }

    /// Keeps a response waiting for approval (written to a temporary file, then renamed).
    fn save_pending(&self, session: &str, response: &AgentResponse) -> Result<(), CodeError> {
        let path = self.pending_path(session);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec(response)
            .map_err(|e| CodeError::Usage(format!("cannot save the pending approval: {e}")))?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// The response of this session that waits for approval, if any.
    fn load_pending(&self, session: &str) -> Result<Option<AgentResponse>, CodeError> {
        let path = self.pending_path(session);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                CodeError::Usage(format!("{}: not a pending approval: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn clear_pending(&self, session: &str) -> Result<(), CodeError> {
        match std::fs::remove_file(self.pending_path(session)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Compacts the session's thread when it passes `threshold` of the context window (0: now).
    async fn compact(&self, session: &str, out: &Out, threshold: f64) -> Result<(), CodeError> {
        let window = self.window.unwrap_or(128_000);
        if self.window.is_none() && threshold > 0.0 {
            return Ok(());
        }
        if let Some(c) = miyabi_code::agent::compact(
            &self.memory,
            session,
            self.model.as_ref(),
            window,
            threshold,
            2,
        )
        .await?
        {
            out.note(
                "compaction",
                json!({ "replaced": c.replaced, "kept": c.kept, "tokens_before": c.tokens_before,
                        "tokens_after": c.tokens_after,
                        "text": format!("(compacted {} earlier messages: ~{} → ~{} tokens)", c.replaced, c.tokens_before, c.tokens_after) }),
            );
        }
        Ok(())
    }
}

async fn interactive(
    coder: &CodingAgent,
    session: &str,
    ctx: &Session,
    out: &Out,
    yes: bool,
    root: &Path,
) -> Result<ExitCode, CodeError> {
    let stdin = std::io::stdin();
    loop {
        if !out.json {
            print!("\n› ");
            let _ = std::io::stdout().flush();
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => return Ok(ExitCode::SUCCESS),
            "/diff" => {
                let git =
                    miyabi_code::Git::new(root).map_err(|e| CodeError::Usage(e.to_string()))?;
                let d = git
                    .diff(false, &[])
                    .await
                    .map_err(|e| CodeError::Usage(e.to_string()))?;
                println!("{d}");
            }
            "/compact" => ctx.compact(session, out, 0.0).await?,
            "/undo" => match coder
                .workspace()
                .undo()
                .map_err(|e| CodeError::Usage(e.to_string()))?
            {
                Some(u) => out.note(
                    "undo",
                    json!({ "what": u.what, "files": u.files,
                            "text": format!("undid {} ({})", u.what, u.files.join(", ")) }),
                ),
                None => out.note("undo", json!({ "files": [], "text": "nothing to undo" })),
            },
            "/help" => println!("requests in plain words; /diff, /undo, /compact, /exit"),
            task => {
                ctx.compact(session, out, 0.8).await?;
                request(coder, ctx, session, task, out, yes).await?;
            }
        }
    }
}
