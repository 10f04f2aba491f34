//! `write_file`, `edit` (exact-string replacement, with a unified diff of the change) and
//! `apply_patch` (a multi-file unified diff, parsed with `diffy`).

use std::fmt::Write as _;
use std::path::Path;

use diffy::patch_set::{FileOperation, ParseOptions, PatchKind, PatchSet};

use super::{Workspace, WorkspaceError, cut};

/// What the model is told about the patch format of `apply_patch` (this is the tool's
/// description).
pub const PATCH_FORMAT: &str = "Apply a patch to one or more files, atomically: every file is checked first and nothing \
is written if any hunk does not apply. The patch is a unified diff, as `git diff` or `diff -u` print it: for each \
file a `--- a/<path>` line and a `+++ b/<path>` line (paths relative to the workspace root; the `a/` and `b/` \
prefixes are optional), then hunks, each starting `@@ -<old start>,<old count> +<new start>,<new count> @@` \
followed by lines starting with ` ` (context, unchanged), `-` (removed) or `+` (added). The counts must match the \
hunk's lines; line numbers may be off (the hunk is placed where its context matches, nearest first), but context \
and removed lines must match the file exactly. Create a file with `--- /dev/null`, delete one with \
`+++ /dev/null`; `diff --git` headers with `rename from`/`rename to` rename. Binary patches are not accepted.";

/// The result of [`Workspace::edit`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EditOutcome {
    /// The file, relative to the root.
    pub path: String,
    /// How many occurrences were replaced.
    pub replacements: usize,
    /// The change as a unified diff (`--- a/path`, `+++ b/path`, three lines of context).
    pub diff: String,
}

/// The result of [`Workspace::apply_patch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PatchOutcome {
    /// One line per file: `modified src/a.rs`, `created b.txt`, `deleted c.txt`,
    /// `renamed d.txt -> e.txt`.
    pub changes: Vec<String>,
}

/// How many edits [`Workspace::undo`] can take back.
const JOURNAL: usize = 100;

/// One edit as the journal keeps it: what it was and every file's content before it.
pub(crate) struct Change {
    what: String,
    /// (absolute path, path as shown, content before; `None`: the file did not exist).
    files: Vec<(std::path::PathBuf, String, Option<Vec<u8>>)>,
}

/// What [`Workspace::undo`] took back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoOutcome {
    /// The edit, as it was described (`edit src/lib.rs`, `write_file notes.md`, `apply_patch …`).
    pub what: String,
    /// The files restored (or removed, when the edit had created them).
    pub files: Vec<String>,
}

fn before(full: &Path) -> Option<Vec<u8>> {
    std::fs::read(full).ok()
}

/// The unified diff of `old` → `new` for `rel`.
pub(crate) fn unified(rel: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{rel}"), &format!("b/{rel}"))
        .to_string()
}

impl Workspace {
    /// Writes `content` to a file (replacing it, or creating it and its parent directories).
    /// Returns a one-line summary.
    pub fn write_file(&self, path: &str, content: &str) -> Result<String, WorkspaceError> {
        let r = self.resolve_inner(path, true)?;
        let existed = match std::fs::metadata(&r.full) {
            Ok(m) if m.is_dir() => {
                return Err(WorkspaceError::IsDirectory {
                    path: r.rel,
                    hint: "",
                });
            }
            Ok(_) => true,
            Err(_) => false,
        };
        if let Some(parent) = r.full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| WorkspaceError::io(&r.rel, &e))?;
        }
        let old = before(&r.full);
        std::fs::write(&r.full, content).map_err(|e| WorkspaceError::io(&r.rel, &e))?;
        self.record(
            format!("write_file {}", r.rel),
            vec![(r.full.clone(), r.rel.clone(), old)],
        );
        let lines = content.lines().count();
        Ok(format!(
            "{} `{}` ({} bytes, {lines} lines)",
            if existed { "replaced" } else { "created" },
            r.rel,
            content.len()
        ))
    }

    /// Replaces `old` by `new` in a file. `old` must occur exactly once, or, with
    /// `replace_all`, at least once; otherwise nothing is written and the error says how many
    /// times it occurs. Returns the change as a unified diff.
    pub fn edit(
        &self,
        path: &str,
        old: &str,
        new: &str,
        replace_all: bool,
    ) -> Result<EditOutcome, WorkspaceError> {
        let r = self.resolve_inner(path, true)?;
        if old.is_empty() {
            return Err(WorkspaceError::BadEdit {
                path: r.rel,
                reason: "the text to replace is empty; use write_file to create a file".into(),
            });
        }
        if old == new {
            return Err(WorkspaceError::BadEdit {
                path: r.rel,
                reason: "the replacement is the same as the text it replaces".into(),
            });
        }
        let text = self.read_text(&r.full, &r.rel)?;
        let count = text.matches(old).count();
        match count {
            0 => return Err(WorkspaceError::NoMatch { path: r.rel }),
            1 => {}
            n if !replace_all => {
                return Err(WorkspaceError::ManyMatches {
                    path: r.rel,
                    count: n,
                });
            }
            _ => {}
        }
        let updated = text.replace(old, new);
        std::fs::write(&r.full, &updated).map_err(|e| WorkspaceError::io(&r.rel, &e))?;
        self.record(
            format!("edit {}", r.rel),
            vec![(
                r.full.clone(),
                r.rel.clone(),
                Some(text.clone().into_bytes()),
            )],
        );
        let diff = unified(&r.rel, &text, &updated);
        Ok(EditOutcome {
            path: r.rel,
            replacements: count,
            diff,
        })
    }

    /// Applies a unified diff to one or more files ([`PATCH_FORMAT`] is what the model is told).
    /// Every file is checked and patched in memory first; nothing is written unless all apply.
    pub fn apply_patch(&self, patch: &str) -> Result<PatchOutcome, WorkspaceError> {
        enum Planned {
            Write {
                full: std::path::PathBuf,
                text: String,
            },
            Remove {
                full: std::path::PathBuf,
            },
        }
        let mut plan: Vec<Planned> = Vec::new();
        let mut changes = Vec::new();
        let mut touched = std::collections::HashSet::new();
        let git = patch.lines().any(|l| l.starts_with("diff --git "));
        let opts = if git {
            ParseOptions::gitdiff()
        } else {
            ParseOptions::unidiff()
        };
        let files: Vec<_> = PatchSet::parse(patch, opts)
            .collect::<Result<_, _>>()
            .map_err(|e| WorkspaceError::BadPatch {
                reason: e.to_string(),
            })?;
        // Every `--- ` line followed by a `+++ ` line starts a file; a parser that found fewer
        // files would otherwise drop some silently (for instance git headers on some files only).
        let lines: Vec<&str> = patch.lines().collect();
        let headers = lines
            .windows(2)
            .filter(|w| w[0].starts_with("--- ") && w[1].starts_with("+++ "))
            .count();
        if !files.is_empty() && files.len() < headers {
            return Err(WorkspaceError::BadPatch {
                reason: format!(
                    "it has {headers} `---`/`+++` file headers but only {} file patches could be read{}",
                    files.len(),
                    if git {
                        " (give every file a `diff --git` line, or none)"
                    } else {
                        ""
                    }
                ),
            });
        }
        if files.is_empty() {
            return Err(WorkspaceError::BadPatch {
                reason: "it holds no file (expected `--- a/<path>` and `+++ b/<path>` lines, then `@@` hunks)".into(),
            });
        }
        for fp in &files {
            let hunks = match fp.patch() {
                PatchKind::Text(p) => p,
                PatchKind::Binary(_) => {
                    return Err(WorkspaceError::BadPatch {
                        reason: "binary patches are not accepted".into(),
                    });
                }
            };
            let op = fp.operation();
            let (from, to) = match op {
                FileOperation::Create(p) => (None, Some(strip_prefix(p, "b/"))),
                FileOperation::Delete(p) => (Some(strip_prefix(p, "a/")), None),
                FileOperation::Modify { original, modified } => {
                    if original.starts_with("a/") && modified.starts_with("b/") {
                        (Some(&original[2..]), Some(&modified[2..]))
                    } else {
                        (Some(&**original), Some(&**modified))
                    }
                }
                FileOperation::Rename { from, to } => {
                    (Some(strip_prefix(from, "a/")), Some(strip_prefix(to, "b/")))
                }
                FileOperation::Copy { to, .. } => {
                    return Err(WorkspaceError::BadPatch {
                        reason: format!("copies are not supported (copy to `{to}`)"),
                    });
                }
            };
            for p in [from, to].into_iter().flatten() {
                if !touched.insert(p.to_owned()) && from != to {
                    return Err(WorkspaceError::BadPatch {
                        reason: format!("`{p}` appears more than once"),
                    });
                }
            }
            match (from, to) {
                (None, Some(to)) => {
                    let r = self.resolve_inner(to, true)?;
                    if r.full.exists() {
                        return Err(WorkspaceError::PatchRejected {
                            path: r.rel,
                            reason: "the patch creates it (`--- /dev/null`) but it exists".into(),
                        });
                    }
                    let text =
                        diffy::apply("", hunks).map_err(|e| WorkspaceError::PatchRejected {
                            path: r.rel.clone(),
                            reason: e.to_string(),
                        })?;
                    changes.push(format!("created {}", r.rel));
                    plan.push(Planned::Write { full: r.full, text });
                }
                (Some(from), None) => {
                    let r = self.resolve_inner(from, true)?;
                    let old = self.read_text(&r.full, &r.rel)?;
                    let rest =
                        diffy::apply(&old, hunks).map_err(|e| WorkspaceError::PatchRejected {
                            path: r.rel.clone(),
                            reason: e.to_string(),
                        })?;
                    if !rest.is_empty() {
                        return Err(WorkspaceError::PatchRejected {
                            path: r.rel,
                            reason: "the patch deletes it but does not remove all of its lines"
                                .into(),
                        });
                    }
                    changes.push(format!("deleted {}", r.rel));
                    plan.push(Planned::Remove { full: r.full });
                }
                (Some(from), Some(to)) => {
                    let src = self.resolve_inner(from, true)?;
                    let old = self.read_text(&src.full, &src.rel)?;
                    let text =
                        diffy::apply(&old, hunks).map_err(|e| WorkspaceError::PatchRejected {
                            path: src.rel.clone(),
                            reason: e.to_string(),
                        })?;
                    if from == to {
                        changes.push(format!("modified {}", src.rel));
                        plan.push(Planned::Write {
                            full: src.full,
                            text,
                        });
                    } else {
                        let dst = self.resolve_inner(to, true)?;
                        if dst.full.exists() {
                            return Err(WorkspaceError::PatchRejected {
                                path: dst.rel,
                                reason: format!(
                                    "the patch renames `{}` to it but it exists",
                                    src.rel
                                ),
                            });
                        }
                        changes.push(format!("renamed {} -> {}", src.rel, dst.rel));
                        plan.push(Planned::Write {
                            full: dst.full,
                            text,
                        });
                        plan.push(Planned::Remove { full: src.full });
                    }
                }
                (None, None) => {
                    return Err(WorkspaceError::BadPatch {
                        reason: "a file patch names no file".into(),
                    });
                }
            }
        }
        let saved: Vec<(std::path::PathBuf, String, Option<Vec<u8>>)> = plan
            .iter()
            .map(|p| {
                let full = match p {
                    Planned::Write { full, .. } | Planned::Remove { full } => full.clone(),
                };
                let shown = full
                    .strip_prefix(self.root())
                    .map(|r| r.display().to_string())
                    .unwrap_or_else(|_| full.display().to_string());
                let old = before(&full);
                (full, shown, old)
            })
            .collect();
        self.record(format!("apply_patch ({})", changes.join(", ")), saved);
        for step in plan {
            match step {
                Planned::Write { full, text } => {
                    let shown = full.display().to_string();
                    if let Some(parent) = full.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| WorkspaceError::io(&shown, &e))?;
                    }
                    std::fs::write(&full, text).map_err(|e| WorkspaceError::io(&shown, &e))?;
                }
                Planned::Remove { full } => {
                    let shown = full.display().to_string();
                    std::fs::remove_file(&full).map_err(|e| WorkspaceError::io(&shown, &e))?;
                }
            }
        }
        Ok(PatchOutcome { changes })
    }

    fn record(&self, what: String, files: Vec<(std::path::PathBuf, String, Option<Vec<u8>>)>) {
        let mut j = self
            .inner
            .journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        j.push(Change { what, files });
        if j.len() > JOURNAL {
            j.remove(0);
        }
    }

    /// Takes back the last edit made through this workspace's tools (`write_file`, `edit`,
    /// `apply_patch`; not shell commands): every file it touched gets its content from before,
    /// and a file it created is removed. `None` when there is nothing to undo. The journal keeps
    /// the last 100 edits of this process.
    pub fn undo(&self) -> Result<Option<UndoOutcome>, WorkspaceError> {
        let change = self
            .inner
            .journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let Some(change) = change else {
            return Ok(None);
        };
        let mut files = Vec::new();
        // Newest first, so a file written twice in one patch ends as it was before it.
        for (full, shown, old) in change.files.into_iter().rev() {
            match old {
                Some(bytes) => {
                    if let Some(parent) = full.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| WorkspaceError::io(&shown, &e))?;
                    }
                    std::fs::write(&full, bytes).map_err(|e| WorkspaceError::io(&shown, &e))?;
                }
                None => match std::fs::remove_file(&full) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(WorkspaceError::io(&shown, &e)),
                },
            }
            files.push(shown);
        }
        files.reverse();
        Ok(Some(UndoOutcome {
            what: change.what,
            files,
        }))
    }

    /// A whole file as UTF-8 text, within [`super::Limits::edit_bytes`].
    pub(crate) fn read_text(&self, full: &Path, rel: &str) -> Result<String, WorkspaceError> {
        let meta = std::fs::metadata(full).map_err(|e| WorkspaceError::io(rel, &e))?;
        if meta.is_dir() {
            return Err(WorkspaceError::IsDirectory {
                path: rel.to_owned(),
                hint: "",
            });
        }
        let limit = self.limits().edit_bytes;
        if meta.len() > limit {
            return Err(WorkspaceError::TooLarge {
                path: rel.to_owned(),
                size: meta.len(),
                limit,
            });
        }
        let bytes = std::fs::read(full).map_err(|e| WorkspaceError::io(rel, &e))?;
        String::from_utf8(bytes).map_err(|_| WorkspaceError::NotText {
            path: rel.to_owned(),
        })
    }
}

/// `a/src/x.rs` → `src/x.rs` (git's prefixes), other paths unchanged.
fn strip_prefix<'p>(p: &'p str, prefix: &str) -> &'p str {
    p.strip_prefix(prefix).unwrap_or(p)
}

/// Renders an edit's result for the model, the diff capped at `max` bytes.
pub(crate) fn render_edit(o: &EditOutcome, max: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "edited `{}` ({} replacement{})",
        o.path,
        o.replacements,
        if o.replacements == 1 { "" } else { "s" }
    );
    let diff = cut(&o.diff, max);
    out.push_str(diff);
    if diff.len() < o.diff.len() {
        let _ = writeln!(
            out,
            "\n[diff cut at {max} bytes of {}; read the file to see the rest]",
            o.diff.len()
        );
    }
    out
}
