//! Git worktrees for parallel work: each child step of a `.parallel` or `.foreach` gets its own
//! worktree on its own branch, keyed by run id and step path; a registry on disk (written before
//! a worktree is made) lets a sweep find and remove worktrees whose run finished or whose
//! process died; a merge step combines the children's branches and reports conflicts.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use miyabi::{Engine, Node, RunStatus, StepContext, StepError, step_fn};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Git, GitError, common_dir, git_sync};
use crate::workspace::{Workspace, WorkspaceError};

/// One worktree as the registry records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreeEntry {
    /// The run the worktree belongs to.
    pub run_id: String,
    /// The step path in that run.
    pub path: String,
    /// The worktree's directory.
    pub dir: PathBuf,
    /// Its branch.
    pub branch: String,
    /// The commit it started from.
    pub base: String,
    /// When it was made, ms since the Unix epoch.
    pub created_at: i64,
}

/// A worktree made for a step: its directory, branch and base commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    entry: WorktreeEntry,
}

impl Worktree {
    /// The worktree's directory (the child's working tree).
    pub fn dir(&self) -> &Path {
        &self.entry.dir
    }

    /// The branch checked out in it.
    pub fn branch(&self) -> &str {
        &self.entry.branch
    }

    /// The commit it started from.
    pub fn base(&self) -> &str {
        &self.entry.base
    }

    /// The registry entry.
    pub fn entry(&self) -> &WorktreeEntry {
        &self.entry
    }

    /// A [`Workspace`] rooted at the worktree, for the child's file tools.
    pub fn workspace(&self) -> Result<Workspace, WorkspaceError> {
        Workspace::new(&self.entry.dir)
    }

    /// [`Git`] in the worktree.
    pub fn git(&self) -> Result<Git, GitError> {
        Git::new(&self.entry.dir)
    }
}

/// What a worktree step outputs: the child's branch and what it changed, and the child's own
/// output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildResult {
    /// The child's step path.
    pub path: String,
    /// The child's branch (kept after its worktree is removed).
    pub branch: String,
    /// The commit it started from.
    pub base: String,
    /// The commit holding the child's changes, `None` when it changed nothing.
    pub commit: Option<String>,
    /// The files it changed, relative to the repository root.
    pub files: Vec<String>,
    /// The child's own output.
    pub output: Value,
}

/// A child branch that could not be merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeConflict {
    /// The child's step path.
    pub path: String,
    /// Its branch.
    pub branch: String,
    /// The files in conflict.
    pub files: Vec<String>,
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeReport {
    /// The branch holding the merged result.
    pub branch: String,
    /// The commit the merge started from.
    pub base: String,
    /// The merged result's commit.
    pub commit: String,
    /// Step paths of the children merged cleanly, in merge order.
    pub merged: Vec<String>,
    /// Children whose branch conflicted with what was merged before it (not merged).
    pub conflicts: Vec<MergeConflict>,
    /// Children that changed nothing.
    pub unchanged: Vec<String>,
}

/// A worktree removed by [`Worktrees::cleanup_orphans`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedWorktree {
    /// The run.
    pub run_id: String,
    /// The step path (empty for a worktree found without a registry entry).
    pub path: String,
    /// The directory.
    pub dir: PathBuf,
    /// Why it was removed.
    pub reason: String,
}

/// Worktrees of one repository, made per (run id, step path).
///
/// ```no_run
/// use miyabi::{Engine, StepContext, Workflow};
/// use miyabi_code::git::Worktrees;
/// use serde_json::{json, Value};
///
/// # async fn demo(engine: Engine) -> Result<(), Box<dyn std::error::Error>> {
/// let trees = Worktrees::new("/path/to/repo")?;
/// trees.cleanup_orphans(&engine).await?; // at start-up, before `engine.recover()`
/// let child = || {
///     trees.step(|_ctx: StepContext, wt, _input: Value| async move {
///         let ws = wt.workspace().map_err(|e| miyabi::StepError::fatal(e.to_string()))?;
///         ws.write_file("notes.txt", "done\n").map_err(|e| miyabi::StepError::fatal(e.to_string()))?;
///         Ok(json!("ok"))
///     })
/// };
/// let wf = Workflow::new("fan-out")
///     .parallel([("a", child()), ("b", child())])
///     .step("merge", trees.merge_step())
///     .commit()?;
/// # let _ = wf; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Worktrees {
    inner: Arc<Inner>,
}

struct Inner {
    repo: PathBuf,
    common: PathBuf,
    dir: PathBuf,
    base: String,
    author: (String, String),
    /// Serialises this process's `git worktree` commands on the repository.
    lock: Mutex<()>,
}

impl std::fmt::Debug for Worktrees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worktrees")
            .field("repo", &self.inner.repo)
            .field("dir", &self.inner.dir)
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

/// A name for a step path usable in a file name and a branch: its characters outside
/// `[A-Za-z0-9._-]` become `-`, and an FNV-1a hash of the path keeps different paths apart.
fn key_of(path: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in path.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let mut s: String = path
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    s = s.trim_matches('-').to_owned();
    if s.is_empty() {
        s.push('x');
    }
    format!("{s}-{h:08x}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether the run owner `uuid@host:pid` is a process on this host that no longer exists.
fn owner_is_dead(owner: &str) -> bool {
    let Some((_, hp)) = owner.split_once('@') else {
        return false;
    };
    let Some((host, pid)) = hp.rsplit_once(':') else {
        return false;
    };
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    if host != here || !cfg!(target_os = "linux") {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) if pid == std::process::id() => false,
        Ok(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

/// Whether a step error is a suspension (the only public sign is its message).
fn is_suspension(e: &StepError) -> bool {
    !e.is_retryable() && e.message().starts_with("suspended: ")
}

fn step_err(e: impl std::fmt::Display) -> StepError {
    StepError::retryable(e.to_string())
}

/// Removes a step's worktree when dropped while armed: the step's future was dropped (the run
/// was cancelled, timed out, or a sibling failed) before it finished.
struct Guard {
    trees: Worktrees,
    entry: Option<WorktreeEntry>,
}

impl Guard {
    fn disarm(&mut self) {
        self.entry = None;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take()
            && let Err(e) = self.trees.remove_blocking(&entry, true)
        {
            tracing::warn!(error = %e, dir = %entry.dir.display(), "removing an abandoned worktree");
        }
    }
}

impl Worktrees {
    /// Worktrees of the repository whose working tree is (or contains) `repo`. They go in
    /// `<git dir>/miyabi/trees/<run id>/` by default, start from `HEAD`, and their commits are
    /// authored by `Miyabi <miyabi@localhost>`.
    pub fn new(repo: impl AsRef<Path>) -> Result<Self, GitError> {
        let repo = repo.as_ref();
        let top = git_sync(repo, &["rev-parse", "--show-toplevel"])?;
        let repo = PathBuf::from(top.trim());
        let common = common_dir(&repo)?;
        let dir = common.join("miyabi").join("trees");
        Ok(Self {
            inner: Arc::new(Inner {
                repo,
                dir,
                common,
                base: "HEAD".into(),
                author: ("Miyabi".into(), "miyabi@localhost".into()),
                lock: Mutex::new(()),
            }),
        })
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            repo: self.inner.repo.clone(),
            common: self.inner.common.clone(),
            dir: self.inner.dir.clone(),
            base: self.inner.base.clone(),
            author: self.inner.author.clone(),
            lock: Mutex::new(()),
        };
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Puts worktrees under `dir` instead (`<dir>/<run id>/<step>`).
    pub fn dir(self, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref().to_path_buf();
        self.with(|i| i.dir = dir)
    }

    /// Starts worktrees (and merges) from `base` (a branch, tag or commit) instead of `HEAD`.
    pub fn base(self, base: impl Into<String>) -> Self {
        let base = base.into();
        self.with(|i| i.base = base)
    }

    /// Authors the children's and merges' commits as `name <email>`.
    pub fn author(self, name: impl Into<String>, email: impl Into<String>) -> Self {
        let author = (name.into(), email.into());
        self.with(|i| i.author = author)
    }

    /// The repository's main working tree.
    pub fn repo(&self) -> &Path {
        &self.inner.repo
    }

    fn registry_dir(&self) -> PathBuf {
        self.inner.common.join("miyabi").join("worktrees")
    }

    fn registry_file(&self, run_id: &str, path: &str) -> PathBuf {
        self.registry_dir()
            .join(key_of(run_id))
            .join(format!("{}.json", key_of(path)))
    }

    fn author_env(&self) -> [(&str, &str); 4] {
        let (n, e) = &self.inner.author;
        [
            ("GIT_AUTHOR_NAME", n.as_str()),
            ("GIT_AUTHOR_EMAIL", e.as_str()),
            ("GIT_COMMITTER_NAME", n.as_str()),
            ("GIT_COMMITTER_EMAIL", e.as_str()),
        ]
    }

    fn git_author(&self, dir: &Path, args: &[&str]) -> Result<String, GitError> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .envs(self.author_env())
            .env("GIT_TERMINAL_PROMPT", "0")
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
        super::finish(dir, args, out)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Worktrees) -> Result<T, GitError> + Send + 'static,
    ) -> Result<T, GitError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(me))
            .await
            .map_err(|e| GitError::Refused(format!("a git worktree task failed: {e}")))?
    }

    /// Makes the worktree of `(run_id, path)` on branch `miyabi/<run id>/<step>`, from the base.
    /// With `reuse`, an existing registered worktree for the same key is returned as it is (a
    /// step resumed after a suspension continues where it was); otherwise an existing one is
    /// removed first and the branch reset to the base (a step re-run after a crash starts
    /// clean). The registry entry is written before git makes the worktree.
    pub async fn create(
        &self,
        run_id: &str,
        path: &str,
        reuse: bool,
    ) -> Result<Worktree, GitError> {
        let (run_id, path) = (run_id.to_owned(), path.to_owned());
        self.blocking(move |me| me.create_blocking(&run_id, &path, reuse))
            .await
    }

    fn create_blocking(&self, run_id: &str, path: &str, reuse: bool) -> Result<Worktree, GitError> {
        let _lock = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        let reg = self.registry_file(run_id, path);
        let dir = self.inner.dir.join(key_of(run_id)).join(key_of(path));
        if reuse
            && dir.join(".git").exists()
            && let Some(entry) = read_entry(&reg)?
        {
            return Ok(Worktree { entry });
        }
        let branch = format!("miyabi/{}/{}", key_of(run_id), key_of(path));
        if dir.exists() || reg.exists() {
            let old = WorktreeEntry {
                run_id: run_id.to_owned(),
                path: path.to_owned(),
                dir: dir.clone(),
                branch: branch.clone(),
                base: String::new(),
                created_at: 0,
            };
            self.remove_locked(&old, false)?;
        }
        let base = git_sync(
            &self.inner.repo,
            &[
                "rev-parse",
                "--verify",
                &format!("{}^{{commit}}", self.inner.base),
            ],
        )?
        .trim()
        .to_owned();
        let entry = WorktreeEntry {
            run_id: run_id.to_owned(),
            path: path.to_owned(),
            dir: dir.clone(),
            branch: branch.clone(),
            base: base.clone(),
            created_at: now_ms(),
        };
        write_entry(&reg, &entry)?;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| GitError::Registry {
                path: parent.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        let dir_s = dir.display().to_string();
        if let Err(e) = git_sync(
            &self.inner.repo,
            &["worktree", "add", "--quiet", "-B", &branch, &dir_s, &base],
        ) {
            let _ = std::fs::remove_file(&reg);
            return Err(e);
        }
        Ok(Worktree { entry })
    }

    /// Commits everything the child changed in its worktree to its branch (a commit only when
    /// something changed), removes the worktree (keeping the branch, or deleting it when
    /// nothing changed), and describes the result.
    pub async fn finish(&self, wt: &Worktree, output: Value) -> Result<ChildResult, GitError> {
        let entry = wt.entry.clone();
        self.blocking(move |me| me.finish_blocking(&entry, output))
            .await
    }

    fn finish_blocking(
        &self,
        entry: &WorktreeEntry,
        output: Value,
    ) -> Result<ChildResult, GitError> {
        let dir = &entry.dir;
        git_sync(dir, &["add", "-A"])?;
        let staged = git_sync(dir, &["diff", "--cached", "--name-only"])?;
        let mut commit = None;
        if !staged.trim().is_empty() {
            let msg = format!("chore: changes of step `{}`", entry.path);
            self.git_author(dir, &["commit", "--quiet", "--no-verify", "-m", &msg])?;
            commit = Some(git_sync(dir, &["rev-parse", "HEAD"])?.trim().to_owned());
        }
        let files = match &commit {
            Some(c) => git_sync(dir, &["diff", "--name-only", &entry.base, c])?
                .lines()
                .map(str::to_owned)
                .collect(),
            None => Vec::new(),
        };
        {
            let _lock = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.remove_locked(entry, commit.is_none())?;
        }
        Ok(ChildResult {
            path: entry.path.clone(),
            branch: entry.branch.clone(),
            base: entry.base.clone(),
            commit,
            files,
            output,
        })
    }

    /// Removes a worktree (and its registry entry), deleting its branch with `delete_branch`.
    pub async fn remove(&self, entry: &WorktreeEntry, delete_branch: bool) -> Result<(), GitError> {
        let entry = entry.clone();
        self.blocking(move |me| me.remove_blocking(&entry, delete_branch))
            .await
    }

    fn remove_blocking(&self, entry: &WorktreeEntry, delete_branch: bool) -> Result<(), GitError> {
        let _lock = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.remove_locked(entry, delete_branch)
    }

    fn remove_locked(&self, entry: &WorktreeEntry, delete_branch: bool) -> Result<(), GitError> {
        let repo = &self.inner.repo;
        let dir_s = entry.dir.display().to_string();
        if entry.dir.exists() {
            let removed = git_sync(repo, &["worktree", "remove", "--force", "--force", &dir_s]);
            if removed.is_err() && entry.dir.exists() {
                std::fs::remove_dir_all(&entry.dir).map_err(|e| GitError::Registry {
                    path: dir_s.clone(),
                    reason: format!("removing the worktree's directory: {e}"),
                })?;
            }
        }
        git_sync(repo, &["worktree", "prune"])?;
        if delete_branch {
            // Absent when the worktree was never made; that is fine.
            let _ = git_sync(repo, &["branch", "-D", "--quiet", &entry.branch]);
        }
        let reg = self.registry_file(&entry.run_id, &entry.path);
        match std::fs::remove_file(&reg) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(GitError::Registry {
                    path: reg.display().to_string(),
                    reason: e.to_string(),
                });
            }
        }
        if let Some(parent) = reg.parent() {
            let _ = std::fs::remove_dir(parent); // only when empty
        }
        if let Some(parent) = entry.dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        Ok(())
    }

    /// Every registered worktree (of every run), sorted by run and path.
    pub fn list(&self) -> Result<Vec<WorktreeEntry>, GitError> {
        let mut out = Vec::new();
        let root = self.registry_dir();
        let Ok(runs) = std::fs::read_dir(&root) else {
            return Ok(out);
        };
        for run in runs.flatten() {
            let Ok(files) = std::fs::read_dir(run.path()) else {
                continue;
            };
            for f in files.flatten() {
                if f.path().extension().is_some_and(|e| e == "json")
                    && let Some(entry) = read_entry(&f.path())?
                {
                    out.push(entry);
                }
            }
        }
        out.sort_by(|a, b| (&a.run_id, &a.path).cmp(&(&b.run_id, &b.path)));
        Ok(out)
    }

    /// Removes every worktree of a run (after it finished or was cancelled); deletes their
    /// branches too with `delete_branches`. Returns how many were removed.
    pub async fn cleanup_run(
        &self,
        run_id: &str,
        delete_branches: bool,
    ) -> Result<usize, GitError> {
        let run_id = run_id.to_owned();
        self.blocking(move |me| {
            let mut n = 0;
            for e in me.list()?.into_iter().filter(|e| e.run_id == run_id) {
                me.remove_blocking(&e, delete_branches)?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    /// The start-up and recovery sweep: removes registered worktrees whose run is unknown to
    /// the engine's store, finished (succeeded, failed, cancelled), or running without a live
    /// owner (its process died on this host, or its lease expired; recovery re-runs the step,
    /// which makes a fresh worktree), and worktrees in the worktree directory that have no
    /// registry entry; then prunes git's worktree list. Worktrees of suspended runs and of
    /// runs a live engine drives are kept. Branches are kept (they hold children's results),
    /// except those that never got a commit of their own. Call it before `engine.recover()`.
    pub async fn cleanup_orphans(&self, engine: &Engine) -> Result<Vec<RemovedWorktree>, GitError> {
        let store = Arc::clone(engine.store());
        let own = engine.owner().to_owned();
        self.blocking(move |me| {
            let mut removed = Vec::new();
            for e in me.list()? {
                let rec = store.run(&e.run_id).map_err(|err| GitError::Store {
                    run: e.run_id.clone(),
                    reason: err.to_string(),
                })?;
                let reason = match rec {
                    None => Some("its run does not exist".to_owned()),
                    Some(r) if r.status.is_terminal() => Some(format!("its run is {}", r.status)),
                    Some(r) if r.status == RunStatus::Running => match r.owner.as_deref() {
                        None => Some("its run has no owner".to_owned()),
                        Some(o) if o == own => None,
                        Some(o) if owner_is_dead(o) => {
                            Some(format!("the process that ran it ({o}) is gone"))
                        }
                        Some(_) if r.lease_until.is_some_and(|l| l < now_ms()) => {
                            Some("its run's lease expired".to_owned())
                        }
                        Some(_) => None,
                    },
                    Some(_) => None,
                };
                if let Some(reason) = reason {
                    let unchanged = git_sync(
                        &me.inner.repo,
                        &["rev-parse", "--verify", "--quiet", &e.branch],
                    )
                    .map(|sha| sha.trim() == e.base)
                    .unwrap_or(true);
                    me.remove_blocking(&e, unchanged)?;
                    removed.push(RemovedWorktree {
                        run_id: e.run_id,
                        path: e.path,
                        dir: e.dir,
                        reason,
                    });
                }
            }
            // Worktrees in our directory that the registry does not know.
            let known: std::collections::HashSet<PathBuf> =
                me.list()?.into_iter().map(|e| e.dir).collect();
            let listed = git_sync(&me.inner.repo, &["worktree", "list", "--porcelain"])?;
            let base_dir = std::fs::canonicalize(&me.inner.dir).unwrap_or(me.inner.dir.clone());
            for line in listed.lines() {
                let Some(p) = line.strip_prefix("worktree ") else {
                    continue;
                };
                let p = PathBuf::from(p);
                let canon = std::fs::canonicalize(&p).unwrap_or(p.clone());
                if (canon.starts_with(&base_dir) || p.starts_with(&me.inner.dir))
                    && !known.contains(&p)
                    && !known.contains(&canon)
                {
                    let _lock = me.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
                    let s = p.display().to_string();
                    if git_sync(
                        &me.inner.repo,
                        &["worktree", "remove", "--force", "--force", &s],
                    )
                    .is_err()
                        && p.exists()
                    {
                        let _ = std::fs::remove_dir_all(&p);
                    }
                    removed.push(RemovedWorktree {
                        run_id: String::new(),
                        path: String::new(),
                        dir: p,
                        reason: "it has no registry entry".into(),
                    });
                }
            }
            git_sync(&me.inner.repo, &["worktree", "prune"])?;
            Ok(removed)
        })
        .await
    }

    /// A workflow step that gives `f` its own worktree: made for the step's run id and path
    /// when the step starts (recorded in the run state under `miyabi.worktree/<path>` and in
    /// the registry), then, when `f` succeeds, its changes are committed to the worktree's
    /// branch, the worktree is removed and the step outputs a [`ChildResult`]. When `f` fails,
    /// or the step is dropped (run cancelled, step timed out, sibling failed), the worktree and
    /// its branch are removed; when `f` suspends, the worktree is kept for the resumed step.
    /// Use it as a `.parallel` child or a `.foreach` body; each child gets its own worktree.
    pub fn step<F, Fut>(&self, f: F) -> Node
    where
        F: Fn(StepContext, Worktree, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, StepError>> + Send + 'static,
    {
        let trees = self.clone();
        let f = Arc::new(f);
        step_fn(move |ctx: StepContext, input: Value| {
            let trees = trees.clone();
            let f = Arc::clone(&f);
            async move {
                let reuse = ctx.resume_data().is_some();
                let wt = trees
                    .create(ctx.run_id(), ctx.path(), reuse)
                    .await
                    .map_err(step_err)?;
                let key = format!("miyabi.worktree/{}", ctx.path());
                ctx.set_state(&key, json!({"dir": wt.dir(), "branch": wt.branch(), "base": wt.base(), "live": true}));
                let mut guard = Guard {
                    trees: trees.clone(),
                    entry: Some(wt.entry.clone()),
                };
                match f(ctx.clone(), wt.clone(), input).await {
                    Ok(output) => {
                        let result = trees.finish(&wt, output).await.map_err(step_err)?;
                        guard.disarm();
                        ctx.set_state(&key, json!({"branch": result.branch, "commit": result.commit, "live": false}));
                        serde_json::to_value(&result).map_err(step_err)
                    }
                    Err(e) if is_suspension(&e) => {
                        guard.disarm();
                        Err(e)
                    }
                    Err(e) => {
                        guard.disarm();
                        if let Err(err) = trees.remove(&wt.entry, true).await {
                            tracing::warn!(error = %err, "removing the worktree of a failed step");
                        }
                        ctx.set_state(&key, json!({"live": false}));
                        Err(e)
                    }
                }
            }
        })
    }

    /// Merges children's branches, in order, into a new branch `miyabi/<run id>/<merge step>`
    /// made from the base in a worktree of its own (removed afterwards). A child whose branch
    /// conflicts with what was merged before it is left out and reported with its conflicting
    /// files; the merge goes on with the next.
    pub async fn merge(
        &self,
        run_id: &str,
        path: &str,
        children: &[ChildResult],
    ) -> Result<MergeReport, GitError> {
        let wt = self.create(run_id, path, false).await?;
        let mut guard = Guard {
            trees: self.clone(),
            entry: Some(wt.entry.clone()),
        };
        let children = children.to_vec();
        let entry = wt.entry.clone();
        let report = self
            .blocking(move |me| me.merge_blocking(&entry, &children))
            .await?;
        guard.disarm();
        Ok(report)
    }

    fn merge_blocking(
        &self,
        entry: &WorktreeEntry,
        children: &[ChildResult],
    ) -> Result<MergeReport, GitError> {
        let dir = &entry.dir;
        let mut merged = Vec::new();
        let mut conflicts = Vec::new();
        let mut unchanged = Vec::new();
        for c in children {
            if c.commit.is_none() {
                unchanged.push(c.path.clone());
                continue;
            }
            let msg = format!("chore: merge step `{}`", c.path);
            match self.git_author(
                dir,
                &[
                    "merge",
                    "--no-ff",
                    "--no-edit",
                    "--no-verify",
                    "-m",
                    &msg,
                    &c.branch,
                ],
            ) {
                Ok(_) => merged.push(c.path.clone()),
                Err(GitError::Failed { .. }) => {
                    let files: Vec<String> =
                        git_sync(dir, &["diff", "--name-only", "--diff-filter=U"])?
                            .lines()
                            .map(str::to_owned)
                            .collect();
                    let _ = git_sync(dir, &["merge", "--abort"]);
                    conflicts.push(MergeConflict {
                        path: c.path.clone(),
                        branch: c.branch.clone(),
                        files,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        let commit = git_sync(dir, &["rev-parse", "HEAD"])?.trim().to_owned();
        {
            let _lock = self.inner.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.remove_locked(entry, false)?;
        }
        Ok(MergeReport {
            branch: entry.branch.clone(),
            base: entry.base.clone(),
            commit,
            merged,
            conflicts,
            unchanged,
        })
    }

    /// A workflow step that merges the [`ChildResult`]s in its input (the output of a
    /// `.parallel` of [`Worktrees::step`]s, an object, merged in key order; or of a `.foreach`,
    /// an array, merged in order) and outputs the [`MergeReport`].
    pub fn merge_step(&self) -> Node {
        let trees = self.clone();
        step_fn(move |ctx: StepContext, input: Value| {
            let trees = trees.clone();
            async move {
                let items: Vec<Value> = match input {
                    Value::Array(a) => a,
                    Value::Object(o) => o.into_iter().map(|(_, v)| v).collect(),
                    other => {
                        return Err(StepError::fatal(format!(
                            "the merge step expects the children's results (an object or an array), got {other}"
                        )));
                    }
                };
                let children = items
                    .into_iter()
                    .map(serde_json::from_value::<ChildResult>)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| {
                        StepError::fatal(format!(
                            "the merge step's input is not a list of worktree step results: {e}"
                        ))
                    })?;
                let report = trees
                    .merge(ctx.run_id(), ctx.path(), &children)
                    .await
                    .map_err(step_err)?;
                serde_json::to_value(report).map_err(step_err)
            }
        })
    }
}

fn read_entry(path: &Path) -> Result<Option<WorktreeEntry>, GitError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| GitError::Registry {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(GitError::Registry {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Writes the entry durably: a temporary file, fsync, rename.
fn write_entry(path: &Path, entry: &WorktreeEntry) -> Result<(), GitError> {
    use std::io::Write as _;
    let err = |e: std::io::Error| GitError::Registry {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(entry).map_err(|e| GitError::Registry {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(&bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(parent) = path.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
