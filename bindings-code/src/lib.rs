//! Node.js binding of `miyabi-code`'s tools (napi-rs v3), the native half of the npm package
//! `@miyabi/code` (`packages/code`). A separate addon from `@miyabi/core`'s: the tree-sitter
//! grammars of the shell policy and the repository map would not fit that package's size
//! budget.
//!
//! The bridge is generic over `Arc<dyn miyabi::Tool>`: [`NativeCodeTools`] holds the
//! workspace tools, git tools, repository-map tools and the sandboxed shell under its
//! permission policy, and exposes each tool's name, description and JSON Schema, its
//! per-call approval verdict ([`miyabi::Tool::approval`]) and its `call`. The TypeScript
//! facade turns them into `@miyabi/core` tools.

mod pipeline;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use miyabi::{Tool, ToolContext, ToolError};
use miyabi_code::instructions::Instructions;
use miyabi_code::policy::{Policy, PolicyError};
use miyabi_code::shell::{SandboxMode, ShellConfig, ShellError, ShellTool};
use miyabi_code::{Git, RepoMap, Workspace, WorkspaceError};
use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;
use serde_json::{Value, json};

/// How long a cancelled call may take to stop by itself before it is dropped.
const CANCEL_GRACE: Duration = Duration::from_secs(3);

/// Why the tools could not be assembled, or a call could not be made.
#[derive(Debug, thiserror::Error)]
enum CodeToolsError {
    /// The workspace root is unusable.
    #[error("the workspace root `{root}` is not usable: {source}")]
    Workspace {
        root: String,
        source: WorkspaceError,
    },
    /// `sandbox` names no sandbox mode.
    #[error(
        "unknown sandbox mode `{0}`: use \"read-only\", \"workspace-write\" (the default) or \"full-access\""
    )]
    Sandbox(String),
    /// A policy rule or the policy file is invalid.
    #[error("permission policy: {0}")]
    Policy(#[from] PolicyError),
    /// `policyFile` names no file.
    #[error("the permission file `{0}` does not exist")]
    NoPolicyFile(String),
    /// The shell tool could not be built.
    #[error("shell: {0}")]
    Shell(#[from] ShellError),
    /// No tool by that name.
    #[error("there is no coding tool named `{name}` (available: {available})")]
    UnknownTool { name: String, available: String },
    /// A call with the same id is already running.
    #[error("a call with id `{0}` is already running: give each call its own id")]
    DuplicateCall(String),
}

impl CodeToolsError {
    fn code(&self) -> &'static str {
        match self {
            Self::UnknownTool { .. } => "NOT_FOUND",
            Self::DuplicateCall(_) => "CONFLICT",
            _ => "INVALID_ARGUMENT",
        }
    }
}

impl From<CodeToolsError> for napi::Error<String> {
    fn from(e: CodeToolsError) -> Self {
        napi::Error::new(e.code().to_owned(), e.to_string())
    }
}

/// What `NativeCodeTools.create` takes (the facade's `codingTools` options).
#[napi(object)]
pub struct NativeCodeToolsOptions {
    /// The workspace root: an existing directory (a git repository for the git tools).
    pub root: String,
    /// `read-only`, `workspace-write` (default) or `full-access`: the shell's sandbox.
    pub sandbox: Option<String>,
    /// Command patterns the shell runs without asking (`npm test:*`), added to the policy.
    pub allow: Option<Vec<String>>,
    /// Command patterns the shell asks a human about first.
    pub ask: Option<Vec<String>>,
    /// Command patterns the shell refuses.
    pub deny: Option<Vec<String>>,
    /// A permission file merged into the recommended policy instead of
    /// `<root>/.miyabi/permissions.toml`.
    pub policy_file: Option<String>,
    /// Include `repo_map` and `find_symbol` (default true).
    pub repo_map: Option<bool>,
    /// Let shell commands write the workspace's `.git` (default false).
    pub git_writes: Option<bool>,
    /// Run shell commands unsandboxed when bubblewrap is unavailable (default false: refuse).
    pub unsandboxed_fallback: Option<bool>,
    /// Environment variables passed to shell commands besides the default allowlist.
    pub pass_env: Option<Vec<String>>,
}

/// One tool as the model sees it.
#[napi(object)]
pub struct NativeCodeToolInfo {
    /// The name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments.
    #[napi(ts_type = "Record<string, unknown>")]
    pub parameters: Value,
}

/// The coding tools over one workspace: workspace, git, repository map and the sandboxed shell
/// under its permission policy.
#[napi]
pub struct NativeCodeTools {
    tools: Vec<Arc<dyn Tool>>,
    workspace: Workspace,
    map: RepoMap,
    sandbox: SandboxMode,
    /// The calls in flight by call id, for `cancel`.
    running: Arc<Mutex<HashMap<String, ToolContext>>>,
}

pub(crate) fn sandbox_mode(name: Option<&str>) -> Result<SandboxMode, CodeToolsError> {
    match name {
        None | Some("workspace-write") => Ok(SandboxMode::WorkspaceWrite),
        Some("read-only") => Ok(SandboxMode::ReadOnly),
        Some("full-access") => Ok(SandboxMode::FullAccess),
        Some(other) => Err(CodeToolsError::Sandbox(other.to_owned())),
    }
}

/// The recommended policy, merged with the policy file (the given one, or the workspace's
/// `.miyabi/permissions.toml` when it exists), then the rules given in code.
fn policy_of(root: &Path, o: &NativeCodeToolsOptions) -> Result<Policy, CodeToolsError> {
    let mut policy = Policy::recommended();
    match &o.policy_file {
        Some(file) => {
            let path = PathBuf::from(file);
            if !path.is_file() {
                return Err(CodeToolsError::NoPolicyFile(file.clone()));
            }
            policy.merge_file(&path)?;
        }
        None => {
            let file = root.join(".miyabi").join("permissions.toml");
            if file.exists() {
                policy.merge_file(&file)?;
            }
        }
    }
    for p in o.allow.iter().flatten() {
        policy = policy.allow(p)?;
    }
    for p in o.ask.iter().flatten() {
        policy = policy.ask(p)?;
    }
    for p in o.deny.iter().flatten() {
        policy = policy.deny(p)?;
    }
    Ok(policy)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// JS numbers beyond 32 bits arrive as floats (`3.0`): whole ones become integers again, so
/// that a tool's integer arguments (`offset`, `timeout_ms`) deserialize.
fn ints(mut v: Value) -> Value {
    const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
    fn walk(v: &mut Value) {
        match v {
            Value::Number(n) if n.is_f64() => {
                if let Some(f) = n.as_f64()
                    && f.fract() == 0.0
                    && f.abs() <= MAX_SAFE_INTEGER
                {
                    *v = Value::from(f as i64);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            Value::Object(m) => m.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// Removes a call from the running set when its future ends or is dropped.
struct Running {
    set: Arc<Mutex<HashMap<String, ToolContext>>>,
    id: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.set).remove(&self.id);
    }
}

/// A tool call's outcome as the facade reads it: the promise never rejects for a tool's own
/// failure, so that the facade can give the error its class.
fn outcome(r: Result<Value, ToolError>) -> Value {
    match r {
        Ok(value) => json!({ "ok": true, "value": value }),
        Err(e) => {
            let message = match &e {
                // The tool's own words; the agent loop names the tool when it reports them.
                ToolError::Failed { message, .. } => message.clone(),
                other => other.to_string(),
            };
            json!({ "ok": false, "code": e.code().as_str(), "message": message })
        }
    }
}

#[napi]
impl NativeCodeTools {
    /// Assembles the tools over `options.root`.
    #[napi(factory)]
    pub fn create(options: NativeCodeToolsOptions) -> napi::Result<Self, String> {
        Ok(Self::build(options)?)
    }

    fn build(o: NativeCodeToolsOptions) -> Result<Self, CodeToolsError> {
        let workspace = Workspace::new(&o.root).map_err(|source| CodeToolsError::Workspace {
            root: o.root.clone(),
            source,
        })?;
        let sandbox = sandbox_mode(o.sandbox.as_deref())?;
        let policy = policy_of(workspace.root(), &o)?;
        let mut cfg = ShellConfig::new(workspace.root())
            .sandbox(sandbox)
            .allow_git_writes(o.git_writes.unwrap_or(false))
            .unsandboxed_fallback(o.unsandboxed_fallback.unwrap_or(false));
        for name in o.pass_env.iter().flatten() {
            cfg = cfg.pass_env(name);
        }
        let shell = ShellTool::new(cfg, policy)?;
        let mut tools = workspace.tools();
        tools.extend(Git::for_workspace(&workspace).tools());
        let map = RepoMap::new(&workspace);
        if o.repo_map.unwrap_or(true) {
            tools.extend(map.tools());
        }
        tools.push(Arc::new(shell));
        Ok(Self {
            tools,
            workspace,
            map,
            sandbox,
            running: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn tool(&self, name: &str) -> Result<&Arc<dyn Tool>, CodeToolsError> {
        self.tools
            .iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| CodeToolsError::UnknownTool {
                name: name.to_owned(),
                available: self
                    .tools
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The workspace root (canonical).
    #[napi(getter)]
    pub fn root(&self) -> String {
        self.workspace.root().display().to_string()
    }

    /// The shell's sandbox mode.
    #[napi(getter)]
    pub fn sandbox(&self) -> String {
        self.sandbox.as_str().to_owned()
    }

    /// Every tool: name, description, JSON Schema of the arguments.
    #[napi]
    pub fn list(&self) -> Vec<NativeCodeToolInfo> {
        self.tools
            .iter()
            .map(|t| NativeCodeToolInfo {
                name: t.name().to_owned(),
                description: t.description().to_owned(),
                parameters: t.parameters(),
            })
            .collect()
    }

    /// Whether this call needs a human's approval first: the tool's own verdict for these
    /// arguments (for `shell`, the permission policy says `ask` for one of its commands).
    #[napi(ts_args_type = "name: string, args: Record<string, unknown>")]
    pub fn needs_approval(&self, name: String, args: Value) -> napi::Result<bool, String> {
        Ok(self.tool(&name)?.approval(&ints(args)))
    }

    /// Runs a tool. Resolves with `{ok: true, value}` or `{ok: false, code, message}` (the
    /// tool's error, an unknown tool, a call id already running); never rejects.
    /// `cancel(callId)` stops it (the shell kills its command).
    #[napi(
        ts_args_type = "name: string, args: Record<string, unknown>, callId: string",
        ts_return_type = "Promise<{ ok: true; value: unknown } | { ok: false; code: string; message: string }>"
    )]
    pub fn call<'env>(
        &self,
        env: &'env Env,
        name: String,
        args: Value,
        call_id: String,
    ) -> napi::Result<PromiseRaw<'env, Value>> {
        // Registered before the promise exists, so that a `cancel` right after this call
        // returns finds it.
        let started = self.start(&name, &call_id);
        env.spawn_future(async move {
            let (tool, ctx, running) = match started {
                Ok(s) => s,
                Err(refused) => return Ok(refused),
            };
            let _running = running;
            let call = tool.call(&ctx, ints(args));
            tokio::pin!(call);
            let result = tokio::select! {
                r = &mut call => r,
                () = ctx.cancellation().cancelled() => {
                    // A tool that watches the token (the shell kills its command's process
                    // group) gets a moment to stop by itself; one that does not is dropped.
                    match tokio::time::timeout(CANCEL_GRACE, &mut call).await {
                        Ok(Ok(value)) => Ok(value),
                        _ => Err(ToolError::Cancelled { tool: name }),
                    }
                }
            };
            Ok(outcome(result))
        })
    }

    /// The tool, a context registered under `call_id`, and the guard that unregisters it; or
    /// the refusal as an outcome.
    fn start(
        &self,
        name: &str,
        call_id: &str,
    ) -> Result<(Arc<dyn Tool>, ToolContext, Running), Value> {
        let tool = Arc::clone(self.tool(name).map_err(|e| refusal(&e))?);
        let ctx = ToolContext::detached("code-tools", call_id);
        let mut running = lock(&self.running);
        if running.contains_key(call_id) {
            return Err(refusal(&CodeToolsError::DuplicateCall(call_id.to_owned())));
        }
        running.insert(call_id.to_owned(), ctx.clone());
        let guard = Running {
            set: Arc::clone(&self.running),
            id: call_id.to_owned(),
        };
        Ok((tool, ctx, guard))
    }

    /// Cancels the running call with this id; whether there was one.
    #[napi]
    pub fn cancel(&self, call_id: String) -> bool {
        match lock(&self.running).get(&call_id) {
            Some(ctx) => {
                ctx.cancellation().cancel();
                true
            }
            None => false,
        }
    }

    /// The project's context for a system prompt: its `AGENTS.md` / `CLAUDE.md` files and a
    /// repository map of about `mapTokens` tokens (0: none), as the Rust CodeGenAgent adds to
    /// its instructions. Empty when there is neither.
    #[napi(ts_return_type = "Promise<string>")]
    pub async fn project_context(&self, map_tokens: u32) -> napi::Result<String> {
        let workspace = self.workspace.clone();
        let map = self.map.clone();
        let task = tokio::task::spawn_blocking(move || -> Result<String, WorkspaceError> {
            let mut parts = Vec::new();
            let project = Instructions::collect(&workspace)?;
            if !project.is_empty() {
                parts.push(project.system_prompt());
            }
            if map_tokens > 0
                && let Ok(index) = map.index()
                && index.file_count() > 0
            {
                parts.push(format!(
                    "# Repository map\n{}",
                    index.render(map_tokens as usize)
                ));
            }
            Ok(parts.join("\n\n"))
        });
        match task.await {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(e)) => Err(napi::Error::from_reason(format!(
                "reading the project's instructions failed: {e}"
            ))),
            Err(e) => Err(napi::Error::from_reason(format!(
                "the indexing thread failed: {e}"
            ))),
        }
    }
}

/// A call refused before the tool ran, as an outcome.
fn refusal(e: &CodeToolsError) -> Value {
    json!({ "ok": false, "code": e.code(), "message": e.to_string() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn options(root: &Path) -> NativeCodeToolsOptions {
        NativeCodeToolsOptions {
            root: root.display().to_string(),
            sandbox: None,
            allow: None,
            ask: None,
            deny: None,
            policy_file: None,
            repo_map: None,
            git_writes: None,
            unsandboxed_fallback: None,
            pass_env: None,
        }
    }

    #[test]
    fn whole_floats_become_integers() {
        assert_eq!(
            ints(json!({"a": 3.0, "b": [2.5, 4.0]})),
            json!({"a": 3, "b": [2.5, 4]})
        );
    }

    #[test]
    fn bad_options_are_errors_naming_them() {
        let dir = std::env::temp_dir();
        let mut o = options(&dir);
        o.sandbox = Some("chroot".into());
        let e = NativeCodeTools::build(o).err().unwrap();
        assert!(
            e.to_string().contains("unknown sandbox mode `chroot`"),
            "{e}"
        );
        let mut o = options(&dir);
        o.policy_file = Some("/nonexistent/permissions.toml".into());
        let e = NativeCodeTools::build(o).err().unwrap();
        assert!(
            e.to_string().contains("/nonexistent/permissions.toml"),
            "{e}"
        );
        let o = options(Path::new("/nonexistent-root-of-miyabi"));
        let e = NativeCodeTools::build(o).err().unwrap();
        assert!(e.to_string().contains("/nonexistent-root-of-miyabi"), "{e}");
    }

    #[test]
    fn code_rules_come_after_the_recommended_ones() {
        let dir = std::env::temp_dir();
        let mut o = options(&dir);
        o.deny = Some(vec!["git status:*".into()]);
        o.allow = Some(vec!["make test".into()]);
        let t = NativeCodeTools::build(o).unwrap();
        let shell = t.tool("shell").unwrap();
        assert!(shell.approval(&json!({"command": "curl http://127.0.0.1/"})));
        assert!(!shell.approval(&json!({"command": "make test"})));
        assert!(t.tool("nope").is_err());
    }
}
