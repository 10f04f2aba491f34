//! Project instructions: `AGENTS.md` (Codex's convention) and `CLAUDE.md` files at the
//! workspace root and in its subdirectories, collected into a section of the system prompt.
//!
//! ```
//! use miyabi_code::{Workspace, instructions::Instructions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("AGENTS.md"), "Run `cargo test` before committing.\n").unwrap();
//! let found = Instructions::collect(&Workspace::new(dir.path()).unwrap()).unwrap();
//! assert!(found.system_prompt().contains("## AGENTS.md (the whole repository)\n\nRun `cargo test`"));
//! ```

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::workspace::{Workspace, WorkspaceError, cut, display_rel};

/// The file names read, in this order within a directory.
pub const INSTRUCTION_FILES: &[&str] = &["AGENTS.md", "CLAUDE.md"];

/// One file's text is cut beyond this many bytes.
const FILE_MAX: usize = 32 * 1024;
/// All files together are cut beyond this many bytes.
const TOTAL_MAX: usize = 96 * 1024;

/// One instruction file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstructionFile {
    /// The file, relative to the root (`AGENTS.md`, `core/CLAUDE.md`).
    pub path: String,
    /// The directory it applies to, relative to the root (`.` for the root).
    pub dir: String,
    /// Its text (cut with a note past 32 KiB).
    pub text: String,
}

/// The instruction files of a workspace: the root's first, then subdirectories' in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instructions {
    /// The files found.
    pub files: Vec<InstructionFile>,
}

impl Instructions {
    /// Finds `AGENTS.md` and `CLAUDE.md` files in the workspace (`.gitignore`d directories and
    /// hidden ones skipped, `node_modules` too), reading at most 32 KiB of each and 96 KiB in
    /// all.
    pub fn collect(ws: &Workspace) -> Result<Self, WorkspaceError> {
        let root = ws.root();
        let mut walk = ignore::WalkBuilder::new(root);
        walk.require_git(false)
            .follow_links(false)
            .filter_entry(|e| e.file_name() != ".git" && e.file_name() != "node_modules");
        let mut found: Vec<(String, String, usize)> = Vec::new();
        for entry in walk.build() {
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy();
            let Some(rank) = INSTRUCTION_FILES.iter().position(|f| *f == name) else {
                continue;
            };
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            let dir = rel.parent().map(display_rel).unwrap_or_else(|| ".".into());
            found.push((dir, display_rel(rel), rank));
        }
        // Root first, then by directory path; AGENTS.md before CLAUDE.md in one directory.
        found.sort_by(|a, b| (a.0 != ".", &a.0, a.2).cmp(&(b.0 != ".", &b.0, b.2)));
        let mut total = 0usize;
        let mut files = Vec::new();
        for (dir, path, _) in found {
            if total >= TOTAL_MAX {
                break;
            }
            let full = ws.resolve(&path, false)?;
            let Ok(text) = std::fs::read_to_string(&full) else {
                continue;
            };
            let max = FILE_MAX.min(TOTAL_MAX - total);
            let kept = cut(&text, max);
            let text = if kept.len() < text.len() {
                format!(
                    "{kept}\n[… cut: {} more bytes in {path}; read it with read_file]",
                    text.len() - kept.len()
                )
            } else {
                text.clone()
            };
            total += kept.len();
            files.push(InstructionFile { path, dir, text });
        }
        Ok(Self { files })
    }

    /// The files that apply to `path` (a file or directory relative to the root): the root's
    /// and those of the directories above it, outermost first.
    pub fn for_path(&self, path: &str) -> Vec<&InstructionFile> {
        let path = path.trim_start_matches("./");
        self.files
            .iter()
            .filter(|f| f.dir == "." || path == f.dir || path.starts_with(&format!("{}/", f.dir)))
            .collect()
    }

    /// Whether no file was found.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The section for the system prompt (empty when there are no files): a heading, a line
    /// on precedence, then each file under a heading naming the directory it applies to.
    pub fn system_prompt(&self) -> String {
        if self.files.is_empty() {
            return String::new();
        }
        let mut out = String::from(
            "# Project instructions\n\nThe repository's instruction files follow. Instructions in a subdirectory's file \
             apply to work under that directory and take precedence over the root's where they differ.\n",
        );
        for f in &self.files {
            let scope = if f.dir == "." {
                "the whole repository".to_owned()
            } else {
                format!("files under {}/", f.dir)
            };
            let _ = write!(out, "\n## {} ({scope})\n\n{}", f.path, f.text.trim_end());
            out.push('\n');
        }
        out
    }
}
