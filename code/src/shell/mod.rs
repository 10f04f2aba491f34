//! The shell tool: runs a bash command in the workspace, in a bubblewrap sandbox, under a
//! [`Policy`].
//!
//! - **Policy.** Before anything runs, the command line is judged by the policy (every command
//!   in it, see [`crate::policy`]). `deny` refuses the call with an error that names the rule;
//!   `ask` makes the agent loop wait for a human through [`Tool::approval`] (durably, when the
//!   agent runs as a workflow step); `allow` runs it.
//! - **Sandbox.** [`SandboxMode::ReadOnly`] and [`SandboxMode::WorkspaceWrite`] run the command
//!   under `bwrap` (Debian package `bubblewrap`); when bwrap is missing or cannot start, the call
//!   fails with [`ShellError::SandboxUnavailable`] unless the configuration opted into running
//!   unsandboxed ([`ShellConfig::unsandboxed_fallback`]). [`SandboxMode::FullAccess`] runs the
//!   command directly.
//! - **Environment.** Only an allowlist of the agent process's variables reaches the command
//!   (`PATH`, `HOME`, `LANG`, `LC_ALL`, `LC_CTYPE`, `TERM`, `USER`, `LOGNAME`, `TZ`, plus those
//!   named with [`ShellConfig::pass_env`]); API keys and tokens are not passed unless named.
//! - **Limits.** A timeout (the model may ask for less or more, up to a maximum) after which the
//!   whole process tree is killed, and output caps: past the cap the middle of the output is cut
//!   and a note says how many bytes were.

mod sandbox;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use miyabi::tool::{Tool, ToolContext, ToolError};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::OnceCell;

pub use sandbox::SandboxMode;

use crate::policy::{CommandDecision, Policy, SharedPolicy, Verdict};

/// Variables passed from the agent's environment by default.
pub const DEFAULT_ENV_ALLOWLIST: &[&str] = &[
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "USER", "LOGNAME", "TZ",
];

/// `PATH` when the environment has none.
const FALLBACK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long to wait for the output pipes to close once the command is gone (a daemonised
/// grandchild may hold them open).
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// What went wrong running a command.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The policy denies the command.
    #[error("the permission policy denies this command: {decision}")]
    Denied {
        /// The decision, naming the part and the rule.
        decision: Box<CommandDecision>,
    },
    /// The sandbox cannot be set up and no unsandboxed fallback was allowed.
    #[error(
        "the {mode} sandbox is unavailable: {reason}; install bubblewrap (Debian package \
         `bubblewrap`), or allow running without a sandbox with `unsandboxed_fallback`"
    )]
    SandboxUnavailable {
        /// The sandbox mode asked for.
        mode: &'static str,
        /// Why bwrap could not be used.
        reason: String,
    },
    /// The workspace root is not a usable directory.
    #[error("the workspace root {path} is not usable: {reason}")]
    BadWorkspace {
        /// The path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The command could not be started.
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// The program started (bwrap or bash).
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Waiting for the command failed.
    #[error("waiting for the command failed: {0}")]
    Wait(std::io::Error),
    /// The call was cancelled; the command was killed.
    #[error("the command was cancelled and killed")]
    Cancelled,
    /// The command is empty.
    #[error("the command is empty")]
    Empty,
    /// The policy file cannot be used.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
}

/// The shell tool's configuration. Its `Debug` output shows variable names, never values.
#[derive(Clone)]
pub struct ShellConfig {
    workspace: PathBuf,
    sandbox: SandboxMode,
    allow_git_writes: bool,
    writable: Vec<PathBuf>,
    unsandboxed_fallback: bool,
    bwrap: PathBuf,
    default_timeout: Duration,
    max_timeout: Duration,
    max_output: usize,
    env_allow: Vec<String>,
    env_set: BTreeMap<String, String>,
    env_source: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for ShellConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellConfig")
            .field("workspace", &self.workspace)
            .field("sandbox", &self.sandbox)
            .field("allow_git_writes", &self.allow_git_writes)
            .field("writable", &self.writable)
            .field("unsandboxed_fallback", &self.unsandboxed_fallback)
            .field("bwrap", &self.bwrap)
            .field("default_timeout", &self.default_timeout)
            .field("max_timeout", &self.max_timeout)
            .field("max_output", &self.max_output)
            .field("env_allow", &self.env_allow)
            .field("env_set", &self.env_set.keys().collect::<Vec<_>>())
            .field("env_source", &self.env_source.as_ref().map(BTreeMap::len))
            .finish()
    }
}

impl ShellConfig {
    /// Commands run in `workspace` (its root becomes the working directory), in
    /// [`SandboxMode::WorkspaceWrite`], with a 2 minute timeout (at most 10 minutes), 30,000
    /// bytes of output per stream, and the default environment allowlist.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        Self {
            workspace: workspace.into(),
            sandbox: SandboxMode::WorkspaceWrite,
            allow_git_writes: false,
            writable: Vec::new(),
            unsandboxed_fallback: false,
            bwrap: PathBuf::from("bwrap"),
            default_timeout: Duration::from_secs(120),
            max_timeout: Duration::from_secs(600),
            max_output: 30_000,
            env_allow: DEFAULT_ENV_ALLOWLIST
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            env_set: BTreeMap::new(),
            env_source: None,
        }
    }

    /// The sandbox mode.
    pub fn sandbox(mut self, mode: SandboxMode) -> Self {
        self.sandbox = mode;
        self
    }

    /// Lets workspace-write commands write the workspace's `.git` (commits, branches). Off by
    /// default: `.git` is bound read-only, so hooks and config cannot be planted.
    pub fn allow_git_writes(mut self, on: bool) -> Self {
        self.allow_git_writes = on;
        self
    }

    /// Another directory workspace-write commands may write (a build cache, say).
    pub fn writable(mut self, dir: impl Into<PathBuf>) -> Self {
        self.writable.push(dir.into());
        self
    }

    /// Runs commands without a sandbox when bwrap is missing or cannot start, instead of
    /// refusing. The result then says `"sandbox": "none"`.
    pub fn unsandboxed_fallback(mut self, on: bool) -> Self {
        self.unsandboxed_fallback = on;
        self
    }

    /// The bwrap program (default: `bwrap` looked up on `PATH`).
    pub fn bwrap_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.bwrap = path.into();
        self
    }

    /// The timeout when the model gives none.
    pub fn default_timeout(mut self, d: Duration) -> Self {
        self.default_timeout = d;
        self
    }

    /// The longest timeout the model may ask for.
    pub fn max_timeout(mut self, d: Duration) -> Self {
        self.max_timeout = d;
        self
    }

    /// Bytes of stdout (and of stderr) kept; past that the middle is cut with a note.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes.max(64);
        self
    }

    /// Passes this variable of the agent's environment to commands (for a token a command
    /// needs, say).
    pub fn pass_env(mut self, name: &str) -> Self {
        if !self.env_allow.iter().any(|n| n == name) {
            self.env_allow.push(name.to_owned());
        }
        self
    }

    /// Sets a variable for every command.
    pub fn set_env(mut self, name: &str, value: &str) -> Self {
        self.env_set.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The environment allowlisted variables are taken from (default: this process's).
    pub fn inherit_from<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env_source = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// The environment a command gets.
    fn environment(&self) -> BTreeMap<String, String> {
        let source: BTreeMap<String, String> = match &self.env_source {
            Some(s) => s.clone(),
            None => std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        };
        let mut env: BTreeMap<String, String> = self
            .env_allow
            .iter()
            .filter_map(|k| source.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        env.entry("PATH".into())
            .or_insert_with(|| FALLBACK_PATH.to_owned());
        for (k, v) in &self.env_set {
            env.insert(k.clone(), v.clone());
        }
        env
    }
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShellOutput {
    /// The exit code; `None` when it was killed by a signal or timed out.
    pub exit_code: Option<i32>,
    /// Standard output (lossy UTF-8, cut past the cap).
    pub stdout: String,
    /// Standard error (lossy UTF-8, cut past the cap).
    pub stderr: String,
    /// The timeout killed it.
    pub timed_out: bool,
    /// Some output was cut.
    pub truncated: bool,
    /// The sandbox it ran in: `read-only`, `workspace-write`, `full-access`, or `none` (the
    /// unsandboxed fallback).
    pub sandbox: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
}

/// The `shell` tool. See the [module docs](self).
#[derive(Clone)]
pub struct ShellTool {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ShellConfig,
    policy: SharedPolicy,
    /// Whether bwrap works here (`Err` with why not), found out on first use.
    probe: OnceCell<Result<(), String>>,
    description: String,
}

impl std::fmt::Debug for ShellTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellTool")
            .field("workspace", &self.inner.cfg.workspace)
            .field("sandbox", &self.inner.cfg.sandbox)
            .finish_non_exhaustive()
    }
}

impl ShellTool {
    /// A shell tool over a workspace (which must be an existing directory) with a policy.
    pub fn new(cfg: ShellConfig, policy: impl Into<SharedPolicy>) -> Result<Self, ShellError> {
        let mut cfg = cfg;
        let root = std::fs::canonicalize(&cfg.workspace).map_err(|e| ShellError::BadWorkspace {
            path: cfg.workspace.clone(),
            reason: e.to_string(),
        })?;
        if !root.is_dir() {
            return Err(ShellError::BadWorkspace {
                path: cfg.workspace.clone(),
                reason: "not a directory".into(),
            });
        }
        cfg.workspace = root;
        let mut writable = Vec::new();
        for w in &cfg.writable {
            writable.push(
                std::fs::canonicalize(w).map_err(|e| ShellError::BadWorkspace {
                    path: w.clone(),
                    reason: format!("a writable directory: {e}"),
                })?,
            );
        }
        cfg.writable = writable;
        let description = format!(
            "Runs a bash command in the workspace root and returns its exit code, stdout and \
             stderr. Sandbox: {}{}. Commands are checked against a permission policy: some run \
             at once, some wait for a human's approval, some are refused. The timeout is {} s \
             unless `timeout_ms` asks otherwise (at most {} s); long output is cut in the middle.",
            cfg.sandbox.as_str(),
            match cfg.sandbox {
                SandboxMode::ReadOnly => " (nothing can be written except /tmp; no network)",
                SandboxMode::WorkspaceWrite =>
                    " (writes only under the workspace and /tmp; no network)",
                SandboxMode::FullAccess => "",
            },
            cfg.default_timeout.as_secs(),
            cfg.max_timeout.as_secs(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                policy: policy.into(),
                probe: OnceCell::new(),
                description,
            }),
        })
    }

    /// The policy, shared: rules added to it (an "always" answer) apply to the next calls.
    pub fn policy(&self) -> &SharedPolicy {
        &self.inner.policy
    }

    /// The workspace root (canonical).
    pub fn workspace(&self) -> &Path {
        &self.inner.cfg.workspace
    }

    /// The policy's decision for a command line.
    pub fn decide(&self, command: &str) -> CommandDecision {
        self.inner.policy.check_command(command)
    }

    /// Runs a command: refused when the policy denies it (an `ask` verdict is not checked here:
    /// the agent loop asked the human before calling), else run in the sandbox.
    pub async fn run(
        &self,
        command: &str,
        timeout: Option<Duration>,
    ) -> Result<ShellOutput, ShellError> {
        self.run_cancellable(command, timeout, None).await
    }

    async fn run_cancellable(
        &self,
        command: &str,
        timeout: Option<Duration>,
        ctx: Option<&ToolContext>,
    ) -> Result<ShellOutput, ShellError> {
        if command.trim().is_empty() {
            return Err(ShellError::Empty);
        }
        let decision = self.decide(command);
        if decision.verdict == Verdict::Deny {
            return Err(ShellError::Denied {
                decision: Box::new(decision),
            });
        }
        let cfg = &self.inner.cfg;
        let timeout = timeout.unwrap_or(cfg.default_timeout).min(cfg.max_timeout);
        let (mut cmd, sandbox_name) = self.command(command).await?;
        cmd.env_clear()
            .envs(cfg.environment())
            .current_dir(&cfg.workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|source| ShellError::Spawn { program, source })?;
        let pid = child.id();
        let cap = cfg.max_output;
        let out = child.stdout.take().map(|s| tokio::spawn(capture(s, cap)));
        let err = child.stderr.take().map(|s| tokio::spawn(capture(s, cap)));

        let waited = async {
            match ctx {
                Some(ctx) => tokio::select! {
                    r = tokio::time::timeout(timeout, child.wait()) => Some(r),
                    () = ctx.cancellation().cancelled() => None,
                },
                None => Some(tokio::time::timeout(timeout, child.wait()).await),
            }
        }
        .await;
        let (status, timed_out) = match waited {
            Some(Ok(status)) => (Some(status.map_err(ShellError::Wait)?), false),
            Some(Err(_elapsed)) => {
                kill_group(pid);
                let _ = child.wait().await;
                (None, true)
            }
            None => {
                kill_group(pid);
                let _ = child.wait().await;
                return Err(ShellError::Cancelled);
            }
        };
        // The command is gone; make sure nothing it left in its group keeps the pipes open.
        kill_group(pid);
        let stdout = finish_capture(out).await;
        let stderr = finish_capture(err).await;
        let truncated = stdout.1 || stderr.1;
        Ok(ShellOutput {
            exit_code: status.and_then(|s| s.code()),
            stdout: stdout.0,
            stderr: stderr.0,
            timed_out,
            truncated,
            sandbox: sandbox_name,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// The process to start: bwrap around bash, or bash alone.
    async fn command(&self, line: &str) -> Result<(tokio::process::Command, String), ShellError> {
        let cfg = &self.inner.cfg;
        let direct = |name: &str| {
            let mut c = tokio::process::Command::new("bash");
            c.arg("-c").arg(line);
            (c, name.to_owned())
        };
        if cfg.sandbox == SandboxMode::FullAccess {
            return Ok(direct(SandboxMode::FullAccess.as_str()));
        }
        let layout = sandbox::Layout {
            mode: cfg.sandbox,
            workspace: &cfg.workspace,
            writable: &cfg.writable,
            allow_git_writes: cfg.allow_git_writes,
        };
        let probe = self
            .inner
            .probe
            .get_or_init(|| {
                probe_bwrap(&cfg.bwrap, sandbox::bwrap_args(&layout), cfg.environment())
            })
            .await;
        if let Err(reason) = probe {
            if cfg.unsandboxed_fallback {
                tracing::warn!(%reason, "bwrap is unavailable; running the command without a sandbox as configured");
                return Ok(direct("none"));
            }
            return Err(ShellError::SandboxUnavailable {
                mode: cfg.sandbox.as_str(),
                reason: reason.clone(),
            });
        }
        let mut c = tokio::process::Command::new(&cfg.bwrap);
        c.args(sandbox::bwrap_args(&layout))
            .arg("--")
            .arg("bash")
            .arg("-c")
            .arg(line);
        Ok((c, cfg.sandbox.as_str().to_owned()))
    }
}

/// Starts bwrap once with the real layout around `true`.
async fn probe_bwrap(
    bwrap: &Path,
    args: Vec<std::ffi::OsString>,
    env: BTreeMap<String, String>,
) -> Result<(), String> {
    let out = tokio::process::Command::new(bwrap)
        .args(args)
        .arg("--")
        .arg("true")
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run `{}`: {e}", bwrap.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "`{}` failed to start ({}): {}",
            bwrap.display(),
            out.status,
            stderr.trim()
        ))
    }
}

fn kill_group(pid: Option<u32>) {
    let pid = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        // The group may be gone already.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Output kept from one stream: the head, the tail and how many bytes went by.
struct Captured {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    total: usize,
}

async fn capture<R: AsyncRead + Unpin>(mut r: R, cap: usize) -> Captured {
    let head_cap = cap * 2 / 3;
    let tail_cap = cap - head_cap;
    let mut c = Captured {
        head: Vec::new(),
        tail: std::collections::VecDeque::new(),
        total: 0,
    };
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        c.total += n;
        let mut chunk = &buf[..n];
        if c.head.len() < head_cap {
            let take = chunk.len().min(head_cap - c.head.len());
            c.head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
        }
        for &b in chunk {
            if c.tail.len() == tail_cap {
                c.tail.pop_front();
            }
            c.tail.push_back(b);
        }
    }
    c
}

async fn finish_capture(h: Option<tokio::task::JoinHandle<Captured>>) -> (String, bool) {
    let Some(mut h) = h else {
        return (String::new(), false);
    };
    let c = match tokio::time::timeout(PIPE_GRACE, &mut h).await {
        Ok(Ok(c)) => c,
        Ok(Err(_)) => return (String::new(), false),
        Err(_) => {
            h.abort();
            return (
                "[output unavailable: a background process kept the pipe open]".into(),
                true,
            );
        }
    };
    let kept = c.head.len() + c.tail.len();
    if kept == c.total {
        let mut all = c.head;
        all.extend(c.tail);
        return (String::from_utf8_lossy(&all).into_owned(), false);
    }
    let cut = c.total - kept;
    let tail: Vec<u8> = c.tail.into_iter().collect();
    (
        format!(
            "{}\n[... {cut} bytes cut: the output had {} bytes, the first {} and the last {} are shown ...]\n{}",
            String::from_utf8_lossy(&c.head),
            c.total,
            c.head.len(),
            tail.len(),
            String::from_utf8_lossy(&tail)
        ),
        true,
    )
}

#[async_trait]
impl Tool for ShellTool {
    fn name(&self) -> &str {
        "shell"
    }

    fn description(&self) -> &str {
        &self.inner.description
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The bash command line to run in the workspace root."},
                "timeout_ms": {"type": "integer", "minimum": 1, "description": "Timeout in milliseconds (optional)."}
            },
            "required": ["command"],
            "additionalProperties": false
        })
    }

    /// A call needs approval when the policy's verdict for its command is `ask`. A denied
    /// command needs none: the call fails with the rule's name.
    fn approval(&self, args: &Value) -> bool {
        match args.get("command").and_then(Value::as_str) {
            Some(c) => self.decide(c).verdict == Verdict::Ask,
            None => true,
        }
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let failed = |message: String| ToolError::Failed {
            tool: "shell".into(),
            message,
        };
        let command = args
            .get("command")
            .and_then(Value::as_str)
            .ok_or_else(|| failed("the argument `command` must be a string".into()))?;
        let timeout = args
            .get("timeout_ms")
            .and_then(Value::as_u64)
            .map(Duration::from_millis);
        let out = self
            .run_cancellable(command, timeout, Some(ctx))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut v = serde_json::to_value(&out).map_err(|e| failed(e.to_string()))?;
        if out.timed_out
            && let Some(obj) = v.as_object_mut()
        {
            obj.insert("note".into(), json!("the command timed out and was killed"));
        }
        Ok(v)
    }
}

/// Builds a shell tool with [`Policy::recommended`] rules merged with a policy file when it
/// exists (`<workspace>/.miyabi/permissions.toml`).
pub fn from_workspace(cfg: ShellConfig) -> Result<ShellTool, ShellError> {
    let mut policy = Policy::recommended();
    let file = cfg.workspace.join(".miyabi").join("permissions.toml");
    if file.exists() {
        policy.merge_file(&file)?;
    }
    ShellTool::new(cfg, policy)
}
