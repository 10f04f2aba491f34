//! Git through the `git` command line ([`Git`]: status, diff, add, commit with a validated
//! Conventional Commits message, branch, and the same as [`miyabi::Tool`]s), and git worktrees
//! for parallel work inside workflows ([`Worktrees`]).

mod worktrees;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miyabi::tool::tool_fn;
use miyabi::{Tool, ToolContext};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::workspace::{Workspace, cut};

pub use worktrees::{
    ChildResult, MergeConflict, MergeReport, RemovedWorktree, Worktree, WorktreeEntry, Worktrees,
};

/// A git operation failed or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// `git` could not be started.
    #[error("git could not be started in `{dir}`: {reason}")]
    Spawn {
        /// The working directory.
        dir: String,
        /// The system's message.
        reason: String,
    },
    /// `git` exited with an error.
    #[error("`git {command}` failed in `{dir}` (exit {code}): {stderr}")]
    Failed {
        /// The subcommand and its arguments.
        command: String,
        /// The working directory.
        dir: String,
        /// The exit code (-1 when killed by a signal).
        code: i32,
        /// What git printed on stderr (cut to 4 KiB).
        stderr: String,
    },
    /// A commit message that is not a Conventional Commits message.
    #[error("not a Conventional Commits message: {reason} (expected `type(scope)!: description`, type one of {TYPES}, e.g. `fix(parser): handle empty input`)", TYPES = CONVENTIONAL_TYPES.join(", "))]
    BadMessage {
        /// What is wrong.
        reason: String,
    },
    /// An argument that is refused (a path outside the workspace, an option where a name
    /// belongs).
    #[error("{0}")]
    Refused(String),
    /// A worktree registry file could not be read or written.
    #[error("worktree registry `{path}`: {reason}")]
    Registry {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The engine's store could not be read while looking for orphaned worktrees.
    #[error("reading run `{run}` from the engine's store: {reason}")]
    Store {
        /// The run.
        run: String,
        /// The store's error.
        reason: String,
    },
}

/// The commit types [`validate_commit_message`] accepts (those of the Conventional Commits
/// convention's common set).
pub const CONVENTIONAL_TYPES: &[&str] = &[
    "feat", "fix", "docs", "style", "refactor", "perf", "test", "build", "ci", "chore", "revert",
];

/// Checks a commit message against Conventional Commits 1.0: a header
/// `type(optional scope)!: description` (type from [`CONVENTIONAL_TYPES`], lower case; the
/// scope without parentheses or spaces at its ends; `!` for a breaking change; a description
/// that is not empty; the header at most 100 characters), then, if there is more, a blank line
/// before the body.
pub fn validate_commit_message(message: &str) -> Result<(), GitError> {
    let bad = |reason: String| Err(GitError::BadMessage { reason });
    let mut lines = message.lines();
    let header = lines.next().unwrap_or("");
    if header.trim().is_empty() {
        return bad("the message is empty".into());
    }
    if header.chars().count() > 100 {
        return bad(format!(
            "the header has {} characters, at most 100",
            header.chars().count()
        ));
    }
    let Some((prefix, description)) = header.split_once(": ") else {
        return bad(format!("the header `{header}` has no `: ` after its type"));
    };
    if description.trim().is_empty() {
        return bad("the description after `: ` is empty".into());
    }
    if description.starts_with(' ') {
        return bad("the description starts with extra spaces".into());
    }
    let prefix = prefix.strip_suffix('!').unwrap_or(prefix);
    let kind = match prefix.split_once('(') {
        Some((kind, rest)) => {
            let Some(scope) = rest.strip_suffix(')') else {
                return bad(format!("the scope in `{prefix}` is not closed by `)`"));
            };
            if scope.trim().is_empty() || scope.trim() != scope || scope.contains(['(', ')']) {
                return bad(format!("the scope `{scope}` is empty or malformed"));
            }
            kind
        }
        None => prefix,
    };
    if !CONVENTIONAL_TYPES.contains(&kind) {
        return bad(format!("`{kind}` is not a known type"));
    }
    if let Some(second) = lines.next()
        && !second.trim().is_empty()
    {
        return bad("the body must be separated from the header by a blank line".into());
    }
    Ok(())
}

/// Runs `git -C dir args…` with a plain environment for scripts (no pager, no prompts,
/// C locale); returns stdout, or [`GitError::Failed`] with stderr.
pub(crate) async fn git_in(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<String, GitError> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PAGER", "cat")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.map_err(|e| GitError::Spawn {
        dir: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    finish(dir, args, out)
}

/// The same, blocking (for `Drop` and start-up paths).
pub(crate) fn git_sync(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PAGER", "cat")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| GitError::Spawn {
            dir: dir.display().to_string(),
            reason: e.to_string(),
        })?;
    finish(dir, args, out)
}

fn finish(dir: &Path, args: &[&str], out: std::process::Output) -> Result<String, GitError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let text = if stderr.trim().is_empty() {
            stdout.trim().to_owned()
        } else {
            stderr.trim().to_owned()
        };
        Err(GitError::Failed {
            command: args.join(" "),
            dir: dir.display().to_string(),
            code: out.status.code().unwrap_or(-1),
            stderr: cut(&text, 4096).to_owned(),
        })
    }
}

/// A git working tree (a repository's main checkout or one of its worktrees), driven through
/// the `git` command. Paths given to [`Git::add`] and [`Git::diff`] are checked like the
/// workspace tools' (no `..`, nothing outside the tree).
#[derive(Debug, Clone)]
pub struct Git {
    ws: Workspace,
    output_bytes: usize,
}

impl Git {
    /// Git in the working tree at `dir`.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self, GitError> {
        let ws = Workspace::new(dir).map_err(|e| GitError::Refused(e.to_string()))?;
        Ok(Self::for_workspace(&ws))
    }

    /// Git in a workspace's root.
    pub fn for_workspace(ws: &Workspace) -> Self {
        Self {
            output_bytes: ws.limits().output_bytes,
            ws: ws.clone(),
        }
    }

    /// The working tree's root.
    pub fn dir(&self) -> &Path {
        self.ws.root()
    }

    /// Runs `git` with these arguments in the working tree; returns its stdout.
    pub async fn run(&self, args: &[&str]) -> Result<String, GitError> {
        git_in(self.dir(), args, &[]).await
    }

    /// `git status --short --branch`.
    pub async fn status(&self) -> Result<String, GitError> {
        self.run(&["status", "--short", "--branch"]).await
    }

    /// `git diff` of the working tree (or of the index with `staged`), limited to `paths`
    /// when some are given.
    pub async fn diff(&self, staged: bool, paths: &[String]) -> Result<String, GitError> {
        let paths = self.pathspecs(paths)?;
        let mut args = vec!["diff", "--no-color", "--no-ext-diff"];
        if staged {
            args.push("--cached");
        }
        args.push("--");
        args.extend(paths.iter().map(String::as_str));
        self.run(&args).await
    }

    /// `git add -- paths` (`git add -A` when `paths` is empty).
    pub async fn add(&self, paths: &[String]) -> Result<String, GitError> {
        if paths.is_empty() {
            return self.run(&["add", "-A"]).await;
        }
        let paths = self.pathspecs(paths)?;
        let mut args = vec!["add", "--"];
        args.extend(paths.iter().map(String::as_str));
        self.run(&args).await
    }

    /// Commits what is staged, after [`validate_commit_message`]; returns the new commit's id.
    pub async fn commit(&self, message: &str) -> Result<String, GitError> {
        validate_commit_message(message)?;
        self.run(&["commit", "--quiet", "--no-edit", "-m", message])
            .await?;
        Ok(self.run(&["rev-parse", "HEAD"]).await?.trim().to_owned())
    }

    /// Lists branches (`name` `None`), or creates branch `name` at HEAD (switching to it
    /// with `checkout`).
    pub async fn branch(&self, name: Option<&str>, checkout: bool) -> Result<String, GitError> {
        let Some(name) = name else {
            return self.run(&["branch", "--list", "--no-color"]).await;
        };
        if name.starts_with('-') || name.trim().is_empty() {
            return Err(GitError::Refused(format!("`{name}` is not a branch name")));
        }
        self.run(&["check-ref-format", "--branch", name]).await?;
        if checkout {
            self.run(&["switch", "--quiet", "-c", name]).await?;
            Ok(format!("created branch `{name}` and switched to it"))
        } else {
            self.run(&["branch", name]).await?;
            Ok(format!("created branch `{name}`"))
        }
    }

    /// The commit HEAD points at.
    pub async fn head(&self) -> Result<String, GitError> {
        Ok(self.run(&["rev-parse", "HEAD"]).await?.trim().to_owned())
    }

    /// Paths checked against the working tree, as pathspecs relative to its root.
    fn pathspecs(&self, paths: &[String]) -> Result<Vec<String>, GitError> {
        paths
            .iter()
            .map(|p| {
                if p.starts_with(':') {
                    return Err(GitError::Refused(format!(
                        "`{p}`: pathspec magic is not accepted, give plain paths"
                    )));
                }
                let full = self
                    .ws
                    .resolve(p, false)
                    .map_err(|e| GitError::Refused(e.to_string()))?;
                let rel = full.strip_prefix(self.ws.root()).unwrap_or(&full);
                Ok(format!(":(literal){}", crate::workspace::display_rel(rel)))
            })
            .collect()
    }

    /// The git tools: `git_status`, `git_diff`, `git_add`, `git_commit`, `git_branch`.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        tools(self)
    }

    fn sized(&self, text: String, what: &str) -> String {
        if text.trim().is_empty() {
            return format!("[{what}: nothing]\n");
        }
        let max = self.output_bytes;
        let kept = cut(&text, max);
        if kept.len() < text.len() {
            format!(
                "{kept}\n[{what} cut at {max} bytes of {}; narrow it to some paths]\n",
                text.len()
            )
        } else {
            text
        }
    }
}

/// Arguments of `git_diff`.
#[derive(Deserialize, JsonSchema)]
struct DiffArgs {
    /// Show what is staged instead of the working tree's changes.
    #[serde(default)]
    staged: bool,
    /// Only these paths.
    #[serde(default)]
    paths: Vec<String>,
}

/// Arguments of `git_add`.
#[derive(Deserialize, JsonSchema)]
struct AddArgs {
    /// Paths to stage; empty stages every change (`git add -A`).
    #[serde(default)]
    paths: Vec<String>,
}

/// Arguments of `git_commit`.
#[derive(Deserialize, JsonSchema)]
struct CommitArgs {
    /// Conventional Commits message: `type(scope): description`, then optionally a blank line and a body.
    message: String,
}

/// Arguments of `git_branch`.
#[derive(Deserialize, JsonSchema)]
struct BranchArgs {
    /// Branch to create; leave out to list branches.
    #[serde(default)]
    name: Option<String>,
    /// Switch to the new branch.
    #[serde(default)]
    checkout: bool,
}

/// Arguments of tools without any.
#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

fn tools(git: &Git) -> Vec<Arc<dyn Tool>> {
    let g = git.clone();
    let status = tool_fn(
        "git_status",
        "Show the working tree's status (`git status --short --branch`).",
        move |_ctx: ToolContext, _a: NoArgs| {
            let g = g.clone();
            async move { g.status().await.map(|s| g.sized(s, "status")) }
        },
    );
    let g = git.clone();
    let diff = tool_fn(
        "git_diff",
        "Show uncommitted changes as a unified diff (or the staged ones).",
        move |_ctx: ToolContext, a: DiffArgs| {
            let g = g.clone();
            async move { g.diff(a.staged, &a.paths).await.map(|s| g.sized(s, "diff")) }
        },
    );
    let g = git.clone();
    let add = tool_fn(
        "git_add",
        "Stage changes for the next commit.",
        move |_ctx: ToolContext, a: AddArgs| {
            let g = g.clone();
            async move {
                g.add(&a.paths).await?;
                g.status().await.map(|s| g.sized(s, "status"))
            }
        },
    );
    let g = git.clone();
    let commit = tool_fn(
        "git_commit",
        "Commit the staged changes. The message must follow Conventional Commits: `type(scope): description` \
         with type one of feat, fix, docs, style, refactor, perf, test, build, ci, chore, revert.",
        move |_ctx: ToolContext, a: CommitArgs| {
            let g = g.clone();
            async move {
                g.commit(&a.message)
                    .await
                    .map(|id| format!("committed {id}"))
            }
        },
    );
    let g = git.clone();
    let branch = tool_fn(
        "git_branch",
        "List branches, or create one (and switch to it with checkout).",
        move |_ctx: ToolContext, a: BranchArgs| {
            let g = g.clone();
            async move { g.branch(a.name.as_deref(), a.checkout).await }
        },
    );
    vec![
        Arc::new(status),
        Arc::new(diff),
        Arc::new(add),
        Arc::new(commit),
        Arc::new(branch),
    ]
}

/// The directory git keeps the repository's shared data in (`.git` of the main checkout,
/// also for a worktree), absolute.
pub(crate) fn common_dir(repo: &Path) -> Result<PathBuf, GitError> {
    let out = git_sync(
        repo,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )?;
    Ok(PathBuf::from(out.trim()))
}
