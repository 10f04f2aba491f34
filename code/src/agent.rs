//! The coding agent: an [`Agent`] over a workspace with every tool of this crate, the project's
//! instructions and a map of its symbols in the system prompt, and sessions kept in memory.

use std::path::Path;
use std::sync::Arc;

use miyabi::model::{LanguageModel, Message, ModelRequest, Role};
use miyabi::{Agent, Memory, Tool};

use crate::instructions::Instructions;
use crate::policy::Policy;
use crate::shell::{SandboxMode, ShellConfig, ShellTool};
use crate::{Git, RepoMap, Workspace};

/// Why a coding agent could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodingAgentError {
    /// The workspace root is unusable.
    #[error("workspace: {0}")]
    Workspace(#[from] crate::WorkspaceError),
    /// The shell tool could not be built (the policy file, the sandbox).
    #[error("shell: {0}")]
    Shell(#[from] crate::shell::ShellError),
    /// The permission policy file is invalid.
    #[error("permissions: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    /// The session's memory failed.
    #[error("session memory: {0}")]
    Memory(#[from] miyabi::MemoryError),
    /// The model that writes a compaction's summary failed.
    #[error("compaction summary: {0}")]
    Summary(#[from] miyabi::ModelError),
}

/// What [`compact`] did to a session's thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    /// Messages replaced by the summary.
    pub replaced: usize,
    /// Messages kept as they were (the most recent requests).
    pub kept: usize,
    /// The estimated tokens of the thread before and after.
    pub tokens_before: u64,
    /// See `tokens_before`.
    pub tokens_after: u64,
}

/// A rough token count of messages (4 characters a token, as the repository map counts).
pub fn estimate_tokens(messages: &[Message]) -> u64 {
    let chars: usize = messages
        .iter()
        .map(|m| serde_json::to_string(m).map(|s| s.len()).unwrap_or(0))
        .sum();
    (chars / 4) as u64
}

/// The text a compaction's summary message starts with (so that it reads as what it is, and a
/// later compaction can fold it in).
pub const SUMMARY_HEADING: &str =
    "Summary of the earlier conversation in this session (compacted):";

/// Compacts the session `thread` of `memory` when its history passes `threshold` (a share of
/// `context_window` tokens, e.g. 0.8): the messages before the last `keep_requests` user
/// requests are summarised by `model`, and the thread is rewritten as the summary followed by
/// those requests and everything after them, so that a resumed session sees the same history
/// the compaction left. Returns `None` when the thread is below the threshold or too short to
/// compact.
pub async fn compact(
    memory: &Memory,
    thread: &str,
    model: &dyn LanguageModel,
    context_window: u64,
    threshold: f64,
    keep_requests: usize,
) -> Result<Option<Compaction>, CodingAgentError> {
    let stored = memory.last_messages(thread, usize::MAX >> 1).await?;
    let messages: Vec<Message> = stored.iter().map(|m| m.message.clone()).collect();
    let before = estimate_tokens(&messages);
    if (before as f64) < context_window as f64 * threshold {
        return Ok(None);
    }
    // Cut at a user request, so no tool result is kept without the call it answers.
    let requests: Vec<usize> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::User)
        .map(|(i, _)| i)
        .collect();
    let Some(&cut) = requests.iter().rev().nth(keep_requests.max(1) - 1) else {
        return Ok(None);
    };
    if cut == 0 {
        return Ok(None);
    }
    let (old, recent) = messages.split_at(cut);
    let transcript = old
        .iter()
        .map(|m| {
            format!(
                "{:?}: {}",
                m.role,
                serde_json::to_string(&m.content).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let request = ModelRequest {
        messages: vec![
            Message::system(
                "Summarise this coding session for the agent that continues it: the user's goals, \
             what was found, every file changed and how, commands run and their outcome, \
             decisions and open problems. Be specific (paths, names); no preamble.",
            ),
            Message::user(transcript),
        ],
        ..ModelRequest::default()
    };
    let summary = model.generate(&request).await?.text();
    let mut rewritten = vec![Message::user(format!("{SUMMARY_HEADING}\n\n{summary}"))];
    rewritten.extend_from_slice(recent);
    let resource = stored.first().and_then(|m| m.resource.clone());
    memory.delete_thread(thread).await?;
    memory
        .append(thread, resource.as_deref(), &rewritten)
        .await?;
    Ok(Some(Compaction {
        replaced: old.len(),
        kept: recent.len(),
        tokens_before: before,
        tokens_after: estimate_tokens(&rewritten),
    }))
}

/// What the coding agent is told before any request (the project's own instructions and the
/// repository map follow it).
pub const SYSTEM_PROMPT: &str = "You are a coding agent working in a git repository (the \
workspace). Find what you need with the tools (grep, glob, read_file, repo_map, find_symbol) \
before changing anything; change files with edit or apply_patch; run commands (tests, builds) \
with the shell tool, which runs in a sandbox and may ask a human first; when the task is done \
and the tests pass, commit with a Conventional Commits message. Keep answers short: say what \
you changed and why.";

/// Options of [`CodingAgent::new`].
#[derive(Debug, Clone)]
pub struct CodingOptions {
    /// The shell's sandbox (default workspace-write).
    pub sandbox: SandboxMode,
    /// Let the shell write into `.git` (needed for `git commit` from the shell; the git tools
    /// write with the agent's own permissions). Default true.
    pub git_writes: bool,
    /// The permission policy; default [`Policy::recommended`] merged with
    /// `<workspace>/.miyabi/permissions.toml` when it exists.
    pub policy: Option<Policy>,
    /// Model calls per request (default 40).
    pub max_steps: usize,
    /// Tokens of repository map in the system prompt (default 1024; 0 for none).
    pub map_tokens: usize,
}

impl Default for CodingOptions {
    fn default() -> Self {
        Self {
            sandbox: SandboxMode::WorkspaceWrite,
            git_writes: true,
            policy: None,
            max_steps: 40,
            map_tokens: 1024,
        }
    }
}

/// A coding agent over one workspace.
///
/// ```no_run
/// use miyabi_code::agent::{CodingAgent, CodingOptions};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let coder = CodingAgent::new("/path/to/repo", "openai/gpt-4o", CodingOptions::default())?;
/// let answer = coder.agent().generate("fix the failing test").await?;
/// println!("{}", answer.text);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CodingAgent {
    agent: Agent,
    workspace: Workspace,
    shell: Arc<ShellTool>,
}

impl std::fmt::Debug for CodingAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodingAgent")
            .field("workspace", &self.workspace.root())
            .finish_non_exhaustive()
    }
}

impl CodingAgent {
    /// Assembles the agent: workspace, git, repository-map and shell tools; the system prompt
    /// with the project's `AGENTS.md` / `CLAUDE.md` files and the repository map.
    pub fn new(
        root: impl AsRef<Path>,
        model: impl miyabi::agent::IntoModel,
        options: CodingOptions,
    ) -> Result<Self, CodingAgentError> {
        let workspace = Workspace::new(root)?;
        let cfg = ShellConfig::new(workspace.root())
            .sandbox(options.sandbox)
            .allow_git_writes(options.git_writes);
        let shell = Arc::new(match options.policy {
            Some(p) => ShellTool::new(cfg, p)?,
            None => crate::shell::from_workspace(cfg)?,
        });
        let mut tools: Vec<Arc<dyn Tool>> = workspace.tools();
        tools.extend(Git::for_workspace(&workspace).tools());
        let map = RepoMap::new(&workspace);
        tools.extend(map.tools());
        tools.push(Arc::clone(&shell) as Arc<dyn Tool>);
        let mut system = String::from(SYSTEM_PROMPT);
        let instructions = Instructions::collect(&workspace)?;
        if !instructions.is_empty() {
            system.push_str("\n\n");
            system.push_str(&instructions.system_prompt());
        }
        if options.map_tokens > 0
            && let Ok(index) = map.index()
            && index.file_count() > 0
        {
            system.push_str("\n\n# Repository map (the most referenced symbols first)\n");
            system.push_str(&index.render(options.map_tokens));
        }
        let agent = Agent::new("coder")
            .model(model)
            .instructions(system)
            .tools(tools)
            .max_steps(options.max_steps);
        Ok(Self {
            agent,
            workspace,
            shell,
        })
    }

    /// The same agent keeping its conversation in `memory` (one thread per session).
    pub fn with_memory(mut self, memory: Memory) -> Self {
        self.agent = self.agent.memory(memory);
        self
    }

    /// The agent.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The workspace.
    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// The shell tool (its policy takes "always" answers: `shell().policy().remember(..)`).
    pub fn shell(&self) -> &Arc<ShellTool> {
        &self.shell
    }
}
