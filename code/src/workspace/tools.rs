//! The workspace's methods as [`miyabi::Tool`]s.

use std::sync::Arc;

use miyabi::tool::tool_fn;
use miyabi::{Tool, ToolContext};
use schemars::JsonSchema;
use serde::Deserialize;

use super::edit::render_edit;
use super::{GrepOptions, PATCH_FORMAT, Todo, Workspace, WorkspaceError};

/// Arguments of `read_file`.
#[derive(Deserialize, JsonSchema)]
struct ReadArgs {
    /// File path, relative to the workspace root.
    path: String,
    /// First line to read, from 1 (default 1).
    #[serde(default)]
    offset: Option<usize>,
    /// Number of lines to read (default 2000).
    #[serde(default)]
    limit: Option<usize>,
}

/// Arguments of `list_dir`.
#[derive(Deserialize, JsonSchema)]
struct ListArgs {
    /// Directory, relative to the workspace root (default: the root).
    #[serde(default)]
    path: Option<String>,
    /// How many levels to list (1 to 5, default 1).
    #[serde(default)]
    depth: Option<usize>,
}

/// Arguments of `glob`.
#[derive(Deserialize, JsonSchema)]
struct GlobArgs {
    /// Glob pattern: `*.rs` (any depth), `src/**/*.ts`, `tests/*.{py,pyi}`.
    pattern: String,
    /// Directory to search in, relative to the root (default: the root).
    #[serde(default)]
    path: Option<String>,
}

/// Arguments of `grep`.
#[derive(Deserialize, JsonSchema)]
struct GrepArgs {
    /// Regular expression (Rust regex syntax, as ripgrep).
    pattern: String,
    /// File or directory to search, relative to the root (default: the root).
    #[serde(default)]
    path: Option<String>,
    /// Only files matching this glob, e.g. `*.rs` or `!*.min.js`.
    #[serde(default)]
    glob: Option<String>,
    /// Case-insensitive search.
    #[serde(default)]
    ignore_case: bool,
    /// Lines of context before and after each match (at most 20).
    #[serde(default)]
    context: Option<usize>,
    /// Only list the matching files.
    #[serde(default)]
    files_only: bool,
}

/// Arguments of `write_file`.
#[derive(Deserialize, JsonSchema)]
struct WriteArgs {
    /// File path, relative to the workspace root.
    path: String,
    /// The whole new content.
    content: String,
}

/// Arguments of `edit`.
#[derive(Deserialize, JsonSchema)]
struct EditArgs {
    /// File path, relative to the workspace root.
    path: String,
    /// Exact text to replace (including whitespace); must occur exactly once unless replace_all.
    old_string: String,
    /// The text to put instead.
    new_string: String,
    /// Replace every occurrence.
    #[serde(default)]
    replace_all: bool,
}

/// Arguments of `apply_patch`.
#[derive(Deserialize, JsonSchema)]
struct PatchArgs {
    /// The unified diff.
    patch: String,
}

/// Arguments of `todo`.
#[derive(Deserialize, JsonSchema)]
struct TodoArgs {
    /// The whole list, replacing the previous one; leave it out to read the list.
    #[serde(default)]
    todos: Option<Vec<Todo>>,
}

fn read_file(ws: &Workspace) -> Arc<dyn Tool> {
    let ws = ws.clone();
    Arc::new(tool_fn(
        "read_file",
        "Read a text file of the workspace, with line numbers (`     N\\tline`). Reads up to 2000 lines from `offset`; \
         a note at the end says how to read on. Binary files are described, not shown.",
        move |_ctx: ToolContext, a: ReadArgs| {
            let r = ws.read_file(&a.path, a.offset, a.limit);
            async move { r }
        },
    ))
}

fn list_dir(ws: &Workspace) -> Arc<dyn Tool> {
    let ws = ws.clone();
    Arc::new(tool_fn(
        "list_dir",
        "List a directory of the workspace (directories end with `/`); .gitignored entries are left out.",
        move |_ctx: ToolContext, a: ListArgs| {
            let r = ws.list_dir(a.path.as_deref().unwrap_or("."), a.depth);
            async move { r }
        },
    ))
}

fn glob(ws: &Workspace) -> Arc<dyn Tool> {
    let ws = ws.clone();
    Arc::new(tool_fn(
        "glob",
        "Find files by glob pattern, sorted by path; .gitignored and hidden files are skipped.",
        move |_ctx: ToolContext, a: GlobArgs| {
            let ws = ws.clone();
            async move { ws.glob(&a.pattern, a.path.as_deref()).await }
        },
    ))
}

fn grep(ws: &Workspace) -> Arc<dyn Tool> {
    let ws = ws.clone();
    Arc::new(tool_fn(
        "grep",
        "Search file contents with a regular expression (ripgrep's engine and rules: .gitignored, hidden and binary \
         files skipped). Prints `path:line:text` per match and `path-line-text` per context line.",
        move |_ctx: ToolContext, a: GrepArgs| {
            let ws = ws.clone();
            async move {
                let mut opts = GrepOptions::new()
                    .ignore_case(a.ignore_case)
                    .context(a.context.unwrap_or(0))
                    .files_only(a.files_only);
                opts.path = a.path;
                opts.glob = a.glob;
                ws.grep(&a.pattern, &opts).await
            }
        },
    ))
}

fn write_file(ws: &Workspace) -> Arc<dyn Tool> {
    let ws = ws.clone();
    Arc::new(tool_fn(
        "write_file",
        "Write a whole file (created with its directories, or replaced). Prefer `edit` to change part of a file.",
        move |_ctx: ToolContext, a: WriteArgs| {
            let r = ws.write_file(&a.path, &a.content);
            async move { r }
        },
    ))
}

fn edit(ws: &Workspace) -> Arc<dyn Tool> {
    let ws = ws.clone();
    Arc::new(tool_fn(
        "edit",
        "Replace an exact piece of text in a file. `old_string` must occur exactly once (include enough surrounding \
         lines), or set `replace_all`. Returns the change as a unified diff.",
        move |_ctx: ToolContext, a: EditArgs| {
            let max = ws.limits().output_bytes;
            let r = ws
                .edit(&a.path, &a.old_string, &a.new_string, a.replace_all)
                .map(|o| render_edit(&o, max));
            async move { r }
        },
    ))
}

fn apply_patch(ws: &Workspace) -> Arc<dyn Tool> {
    let ws = ws.clone();
    Arc::new(tool_fn(
        "apply_patch",
        PATCH_FORMAT,
        move |_ctx: ToolContext, a: PatchArgs| {
            let r = ws
                .apply_patch(&a.patch)
                .map(|o| format!("applied the patch:\n{}\n", o.changes.join("\n")));
            async move { r }
        },
    ))
}

fn todo(ws: &Workspace) -> Arc<dyn Tool> {
    let ws = ws.clone();
    Arc::new(tool_fn(
        "todo",
        "Your own todo list for this task. Give the whole list (each item with content and status pending, \
         in_progress or completed; one in_progress at a time) to replace it, or nothing to read it.",
        move |_ctx: ToolContext, a: TodoArgs| {
            let r: Result<String, WorkspaceError> = match a.todos {
                Some(list) => ws.set_todos(list),
                None => Ok(super::todo::render(&ws.todos())),
            };
            async move { r }
        },
    ))
}

pub(crate) fn read_only(ws: &Workspace) -> Vec<Arc<dyn Tool>> {
    vec![read_file(ws), list_dir(ws), glob(ws), grep(ws), todo(ws)]
}

pub(crate) fn all(ws: &Workspace) -> Vec<Arc<dyn Tool>> {
    vec![
        read_file(ws),
        list_dir(ws),
        glob(ws),
        grep(ws),
        write_file(ws),
        edit(ws),
        apply_patch(ws),
        todo(ws),
    ]
}
