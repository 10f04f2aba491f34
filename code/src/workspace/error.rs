//! Errors of the workspace tools. Their text goes back to the model as the tool's result, so
//! each names the path and says what to do instead.

/// A workspace tool refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkspaceError {
    /// The workspace root is unusable.
    #[error("workspace root `{root}` cannot be used: {reason}")]
    Root {
        /// The root as given.
        root: String,
        /// Why.
        reason: String,
    },
    /// An absolute path outside the workspace root.
    #[error("`{path}` is outside the workspace (root `{root}`); use a path relative to the root")]
    Outside {
        /// The path as given.
        path: String,
        /// The workspace root.
        root: String,
    },
    /// A path with a `..` component.
    #[error(
        "`{path}` contains `..`; paths must stay inside the workspace, give them relative to its root without `..`"
    )]
    ParentDir {
        /// The path as given.
        path: String,
    },
    /// A path that goes through a symbolic link pointing outside the workspace.
    #[error("`{path}` leads through a symbolic link to `{target}`, outside the workspace")]
    SymlinkOutside {
        /// The path as given.
        path: String,
        /// Where the link leads.
        target: String,
    },
    /// A write into `.git`.
    #[error(
        "`{path}` is inside `.git`; writing to git's own files is not allowed (use the git tools)"
    )]
    GitDir {
        /// The path as given.
        path: String,
    },
    /// A path that cannot be used for another reason.
    #[error("`{path}` is not a usable path: {reason}")]
    BadPath {
        /// The path as given.
        path: String,
        /// Why.
        reason: String,
    },
    /// The path does not exist.
    #[error("`{path}` does not exist")]
    NotFound {
        /// The path as given.
        path: String,
    },
    /// A file was expected.
    #[error("`{path}` is a directory, not a file{hint}")]
    IsDirectory {
        /// The path as given.
        path: String,
        /// What to use instead.
        hint: &'static str,
    },
    /// A directory was expected.
    #[error("`{path}` is not a directory")]
    NotDirectory {
        /// The path as given.
        path: String,
    },
    /// A file that is not UTF-8 text where text is needed.
    #[error("`{path}` is not UTF-8 text; it cannot be edited with this tool")]
    NotText {
        /// The path.
        path: String,
    },
    /// A file too large for the tool.
    #[error("`{path}` has {size} bytes, more than the {limit} this tool changes")]
    TooLarge {
        /// The path.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// `edit`: the text to replace was not found.
    #[error(
        "`{path}`: the text to replace was not found (it must match exactly, including whitespace and indentation; read the file first)"
    )]
    NoMatch {
        /// The path.
        path: String,
    },
    /// `edit`: the text to replace occurs more than once.
    #[error(
        "`{path}`: the text to replace occurs {count} times; include more surrounding lines so it is unique, or set replace_all"
    )]
    ManyMatches {
        /// The path.
        path: String,
        /// How many times.
        count: usize,
    },
    /// `edit`: nothing to do.
    #[error("`{path}`: {reason}")]
    BadEdit {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A regular expression or glob that does not compile.
    #[error("bad pattern `{pattern}`: {reason}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// The compiler's message.
        reason: String,
    },
    /// `apply_patch`: the patch cannot be read.
    #[error("the patch cannot be read: {reason}")]
    BadPatch {
        /// Why.
        reason: String,
    },
    /// `apply_patch`: a hunk does not match the file. Nothing was written.
    #[error(
        "the patch does not apply to `{path}`: {reason}; nothing was changed (read the file and make the context lines match it)"
    )]
    PatchRejected {
        /// The file.
        path: String,
        /// Which hunk, or what else is wrong.
        reason: String,
    },
    /// `todo`: an invalid list.
    #[error("invalid todo list: {reason}")]
    BadTodos {
        /// Why.
        reason: String,
    },
    /// An I/O error.
    #[error("`{path}`: {reason}")]
    Io {
        /// The path.
        path: String,
        /// The system's message.
        reason: String,
    },
}

impl WorkspaceError {
    pub(crate) fn io(path: &str, e: &std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            Self::NotFound {
                path: path.to_owned(),
            }
        } else {
            Self::Io {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        }
    }
}
