//! A [`Workspace`]: a root directory and the tools an agent uses in it (read, list, glob, grep,
//! write, edit, apply a patch, a todo list), every path confined to the root.
//!
//! ```
//! use miyabi_code::Workspace;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("hello.txt"), "hello\nworld\n")?;
//! let ws = Workspace::new(dir.path())?;
//! let text = ws.read_file("hello.txt", None, None)?;
//! assert_eq!(text, "     1\thello\n     2\tworld\n");
//! assert!(ws.read_file("../etc/passwd", None, None).is_err());
//! let names: Vec<String> = ws.tools().iter().map(|t| t.name().to_owned()).collect();
//! assert!(names.contains(&"grep".to_owned()));
//! # Ok(()) }
//! ```

mod edit;
mod error;
mod read;
mod search;
mod todo;
mod tools;

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use edit::{EditOutcome, PATCH_FORMAT, PatchOutcome, UndoOutcome};
pub use error::WorkspaceError;
pub use search::GrepOptions;
pub use todo::{Todo, TodoStatus};

/// Size limits of the tools' results, so that what goes back to a model fits in its context.
/// Whatever is cut is replaced by a note saying what was cut and how to see the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Lines `read_file` returns when no `limit` is given (default 2,000).
    pub read_lines: usize,
    /// Characters kept of one line in `read_file` (default 2,000) and `grep` (default 500 / 4).
    pub line_chars: usize,
    /// Bytes of text a tool returns at most (default 64 KiB).
    pub output_bytes: usize,
    /// Entries `list_dir` and `glob` return at most (default 1,000).
    pub entries: usize,
    /// Matching lines `grep` shows at most (default 200).
    pub matches: usize,
    /// Largest file `edit` and `apply_patch` change (default 16 MiB).
    pub edit_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            read_lines: 2_000,
            line_chars: 2_000,
            output_bytes: 64 * 1024,
            entries: 1_000,
            matches: 200,
            edit_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`Limits::read_lines`].
    pub fn read_lines(mut self, n: usize) -> Self {
        self.read_lines = n.max(1);
        self
    }

    /// Sets [`Limits::line_chars`].
    pub fn line_chars(mut self, n: usize) -> Self {
        self.line_chars = n.max(16);
        self
    }

    /// Sets [`Limits::output_bytes`].
    pub fn output_bytes(mut self, n: usize) -> Self {
        self.output_bytes = n.max(256);
        self
    }

    /// Sets [`Limits::entries`].
    pub fn entries(mut self, n: usize) -> Self {
        self.entries = n.max(1);
        self
    }

    /// Sets [`Limits::matches`].
    pub fn matches(mut self, n: usize) -> Self {
        self.matches = n.max(1);
        self
    }

    /// Sets [`Limits::edit_bytes`].
    pub fn edit_bytes(mut self, n: u64) -> Self {
        self.edit_bytes = n;
        self
    }
}

/// A root directory an agent works in. Cloning is cheap (shared); every clone sees the same
/// todo list.
///
/// Every path a tool is given is resolved against the root and must stay in it: a path with a
/// `..` component, an absolute path outside the root, and a path that goes through a symbolic
/// link pointing outside the root are refused with [`WorkspaceError`]; writes into a `.git`
/// directory (or onto a worktree's `.git` file) are refused too. The check runs before every
/// access; a link swapped in between the check and the access by another process is not caught
/// (the sandboxed shell, not this check, is the boundary against hostile processes).
#[derive(Clone)]
pub struct Workspace {
    inner: Arc<Inner>,
}

struct Inner {
    /// The canonical root.
    root: PathBuf,
    /// The root as given (absolute paths under it are accepted too).
    given: PathBuf,
    limits: Limits,
    todos: Mutex<Vec<Todo>>,
    /// The edits made through this workspace, newest last, for [`Workspace::undo`].
    journal: Mutex<Vec<edit::Change>>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

/// A path inside the workspace, resolved and checked.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// Absolute path (symbolic links in its existing part resolved).
    pub(crate) full: PathBuf,
    /// The path relative to the root, with `/` separators (`.` for the root), for messages.
    pub(crate) rel: String,
}

impl Workspace {
    /// A workspace rooted at `root`, which must be an existing directory.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, WorkspaceError> {
        Self::with_limits(root, Limits::default())
    }

    /// A workspace with other result limits.
    pub fn with_limits(root: impl AsRef<Path>, limits: Limits) -> Result<Self, WorkspaceError> {
        let given = root.as_ref().to_path_buf();
        let root = std::fs::canonicalize(&given).map_err(|e| WorkspaceError::Root {
            root: given.display().to_string(),
            reason: e.to_string(),
        })?;
        if !root.is_dir() {
            return Err(WorkspaceError::Root {
                root: given.display().to_string(),
                reason: "not a directory".into(),
            });
        }
        let given = if given.is_absolute() {
            given
        } else {
            root.clone()
        };
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                given,
                limits,
                todos: Mutex::new(Vec::new()),
                journal: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The result limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Resolves `path` (relative to the root, or absolute under it) to an absolute path inside
    /// the workspace, or says why it is refused. `for_write` also refuses paths in `.git`.
    pub fn resolve(&self, path: &str, for_write: bool) -> Result<PathBuf, WorkspaceError> {
        self.resolve_inner(path, for_write).map(|r| r.full)
    }

    pub(crate) fn resolve_inner(
        &self,
        path: &str,
        for_write: bool,
    ) -> Result<Resolved, WorkspaceError> {
        let root = &self.inner.root;
        let trimmed = path.trim();
        if trimmed.contains('\0') {
            return Err(WorkspaceError::BadPath {
                path: path.to_owned(),
                reason: "it contains a NUL byte".into(),
            });
        }
        let p = Path::new(trimmed);
        let rel: &Path = if p.is_absolute() {
            if let Ok(rest) = p.strip_prefix(root) {
                rest
            } else if let Ok(rest) = p.strip_prefix(&self.inner.given) {
                rest
            } else {
                return Err(WorkspaceError::Outside {
                    path: path.to_owned(),
                    root: root.display().to_string(),
                });
            }
        } else {
            p
        };
        let mut clean = PathBuf::new();
        for c in rel.components() {
            match c {
                Component::Normal(part) => clean.push(part),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(WorkspaceError::ParentDir {
                        path: path.to_owned(),
                    });
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(WorkspaceError::Outside {
                        path: path.to_owned(),
                        root: root.display().to_string(),
                    });
                }
            }
        }
        if for_write && has_git_component(&clean) {
            return Err(WorkspaceError::GitDir {
                path: path.to_owned(),
            });
        }
        // Resolve symbolic links in the part of the path that exists; what does not exist yet
        // is made only of normal components, so it cannot leave the directory it is created in.
        let mut existing = root.join(&clean);
        let mut tail: Vec<std::ffi::OsString> = Vec::new();
        let canonical = loop {
            match std::fs::canonicalize(&existing) {
                Ok(c) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // A dangling link: say where it points rather than "not found" later.
                    if let Ok(target) = std::fs::read_link(&existing) {
                        let target = existing.parent().map(|d| d.join(&target)).unwrap_or(target);
                        if !lexically_inside(&target, root) {
                            return Err(WorkspaceError::SymlinkOutside {
                                path: path.to_owned(),
                                target: target.display().to_string(),
                            });
                        }
                    }
                    match (existing.file_name(), existing.parent()) {
                        (Some(name), Some(parent)) => {
                            tail.push(name.to_owned());
                            existing = parent.to_path_buf();
                        }
                        _ => {
                            return Err(WorkspaceError::BadPath {
                                path: path.to_owned(),
                                reason: "no part of it exists".into(),
                            });
                        }
                    }
                }
                Err(e) => {
                    return Err(WorkspaceError::Io {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    });
                }
            }
        };
        if !canonical.starts_with(root) {
            return Err(WorkspaceError::SymlinkOutside {
                path: path.to_owned(),
                target: canonical.display().to_string(),
            });
        }
        let mut full = canonical;
        for part in tail.into_iter().rev() {
            full.push(part);
        }
        let rel_path = full.strip_prefix(root).unwrap_or(Path::new(""));
        if for_write && has_git_component(rel_path) {
            return Err(WorkspaceError::GitDir {
                path: path.to_owned(),
            });
        }
        Ok(Resolved {
            rel: display_rel(rel_path),
            full,
        })
    }

    /// The todo list as it stands.
    pub fn todos(&self) -> Vec<Todo> {
        self.inner
            .todos
            .lock()
            .map(|t| t.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Replaces the todo list; returns it rendered for the model.
    pub fn set_todos(&self, todos: Vec<Todo>) -> Result<String, WorkspaceError> {
        todo::validate(&todos)?;
        let rendered = todo::render(&todos);
        match self.inner.todos.lock() {
            Ok(mut t) => *t = todos,
            Err(poisoned) => *poisoned.into_inner() = todos,
        }
        Ok(rendered)
    }

    /// Every tool of this workspace, for [`miyabi::Agent`]'s `tools`: `read_file`, `list_dir`,
    /// `glob`, `grep`, `write_file`, `edit`, `apply_patch` and `todo`.
    pub fn tools(&self) -> Vec<Arc<dyn miyabi::Tool>> {
        tools::all(self)
    }

    /// The read-only tools: `read_file`, `list_dir`, `glob`, `grep` (and `todo`, which changes
    /// nothing on disk).
    pub fn read_only_tools(&self) -> Vec<Arc<dyn miyabi::Tool>> {
        tools::read_only(self)
    }
}

/// Whether any component of `p` is `.git`.
fn has_git_component(p: &Path) -> bool {
    p.components()
        .any(|c| matches!(c, Component::Normal(n) if n == ".git"))
}

/// Whether `p`, normalised without touching the disk, is under `root`.
fn lexically_inside(p: &Path, root: &Path) -> bool {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out.starts_with(root)
}

/// `a/b/c` for a relative path, `.` for the empty one.
pub(crate) fn display_rel(p: &Path) -> String {
    let s = p
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    if s.is_empty() { ".".to_owned() } else { s }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Keeps at most `max` characters of a line, noting how many were cut.
pub(crate) fn cut_line(line: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match line.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(line),
        Some((at, _)) => {
            let cut_chars = line[at..].chars().count();
            std::borrow::Cow::Owned(format!("{}… [{cut_chars} more characters]", &line[..at]))
        }
    }
}
