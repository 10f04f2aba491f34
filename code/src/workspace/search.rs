//! `glob` and `grep`, on ripgrep's own crates: `ignore` walks the tree in parallel (respecting
//! `.gitignore`, `.ignore` and hidden files as ripgrep does), `globset` matches globs,
//! `grep-regex` + `grep-searcher` search files.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;

use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};
use ignore::WalkState;
use ignore::overrides::OverrideBuilder;

use super::{Workspace, WorkspaceError, cut_line};

/// Matches kept in memory at most while searching; past this the search stops and the note
/// says so.
const HARD_CAP: usize = 20_000;

/// Options of [`Workspace::grep`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GrepOptions {
    /// Directory or file to search (relative to the root; default the root).
    pub path: Option<String>,
    /// Only files whose path matches this glob (`*.rs`, `src/**/*.ts`; `!` to exclude).
    pub glob: Option<String>,
    /// Case-insensitive matching.
    pub ignore_case: bool,
    /// Lines of context before and after each match.
    pub context: usize,
    /// Only list the files that match.
    pub files_only: bool,
    /// Search hidden files and `.gitignore`d ones too.
    pub no_ignore: bool,
}

impl GrepOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`GrepOptions::path`].
    pub fn path(mut self, p: impl Into<String>) -> Self {
        self.path = Some(p.into());
        self
    }

    /// Sets [`GrepOptions::glob`].
    pub fn glob(mut self, g: impl Into<String>) -> Self {
        self.glob = Some(g.into());
        self
    }

    /// Sets [`GrepOptions::ignore_case`].
    pub fn ignore_case(mut self, on: bool) -> Self {
        self.ignore_case = on;
        self
    }

    /// Sets [`GrepOptions::context`] (at most 20).
    pub fn context(mut self, n: usize) -> Self {
        self.context = n.min(20);
        self
    }

    /// Sets [`GrepOptions::files_only`].
    pub fn files_only(mut self, on: bool) -> Self {
        self.files_only = on;
        self
    }

    /// Sets [`GrepOptions::no_ignore`].
    pub fn no_ignore(mut self, on: bool) -> Self {
        self.no_ignore = on;
        self
    }
}

/// One file's hits.
struct FileHits {
    rel: String,
    /// (line number, is a match, text); `None` as a line number is a break between groups.
    lines: Vec<(Option<u64>, bool, String)>,
    matches: usize,
}

struct Collect<'a> {
    hits: &'a mut FileHits,
    line_chars: usize,
    files_only: bool,
}

impl Sink for Collect<'_> {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, m: &SinkMatch<'_>) -> Result<bool, std::io::Error> {
        self.hits.matches += 1;
        if self.files_only {
            return Ok(false);
        }
        let text = String::from_utf8_lossy(m.bytes());
        let text = text.trim_end_matches(['\n', '\r']);
        self.hits.lines.push((
            m.line_number(),
            true,
            cut_line(text, self.line_chars).into_owned(),
        ));
        Ok(true)
    }

    fn context(&mut self, _: &Searcher, c: &SinkContext<'_>) -> Result<bool, std::io::Error> {
        let text = String::from_utf8_lossy(c.bytes());
        let text = text.trim_end_matches(['\n', '\r']);
        self.hits.lines.push((
            c.line_number(),
            false,
            cut_line(text, self.line_chars).into_owned(),
        ));
        Ok(true)
    }

    fn context_break(&mut self, _: &Searcher) -> Result<bool, std::io::Error> {
        self.hits.lines.push((None, false, String::new()));
        Ok(true)
    }
}

/// A walker over `dir` as ripgrep would walk it.
fn walker(
    dir: &Path,
    no_ignore: bool,
    glob: Option<&str>,
) -> Result<ignore::WalkBuilder, WorkspaceError> {
    let mut walk = ignore::WalkBuilder::new(dir);
    walk.require_git(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git");
    if no_ignore {
        walk.standard_filters(false);
    }
    if let Some(g) = glob {
        let mut ob = OverrideBuilder::new(dir);
        ob.add(g).map_err(|e| WorkspaceError::BadPattern {
            pattern: g.to_owned(),
            reason: e.to_string(),
        })?;
        let ov = ob.build().map_err(|e| WorkspaceError::BadPattern {
            pattern: g.to_owned(),
            reason: e.to_string(),
        })?;
        walk.overrides(ov);
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(12);
    walk.threads(threads);
    Ok(walk)
}

impl Workspace {
    /// Searches file contents for a regular expression (Rust `regex` syntax, as ripgrep), as
    /// ripgrep does: `.gitignore`d and hidden files skipped unless `no_ignore`, binary files
    /// skipped. Output is ripgrep's: `path:line:text` for a match, `path-line-text` for a context
    /// line, `--` between groups, files in path order; at most [`super::Limits::matches`] lines
    /// of matches, then a note with how many more there were.
    pub async fn grep(&self, pattern: &str, opts: &GrepOptions) -> Result<String, WorkspaceError> {
        let ws = self.clone();
        let pattern = pattern.to_owned();
        let opts = opts.clone();
        tokio::task::spawn_blocking(move || ws.grep_blocking(&pattern, &opts))
            .await
            .map_err(|e| WorkspaceError::Io {
                path: ".".into(),
                reason: format!("the search thread failed: {e}"),
            })?
    }

    /// [`Workspace::grep`] on the calling thread (it walks and reads the tree: call it where
    /// blocking is fine).
    pub fn grep_blocking(
        &self,
        pattern: &str,
        opts: &GrepOptions,
    ) -> Result<String, WorkspaceError> {
        let base = self.resolve_inner(opts.path.as_deref().unwrap_or("."), false)?;
        if !base.full.exists() {
            return Err(WorkspaceError::NotFound { path: base.rel });
        }
        let matcher = RegexMatcherBuilder::new()
            .case_insensitive(opts.ignore_case)
            .line_terminator(Some(b'\n'))
            .build(pattern)
            .map_err(|e| WorkspaceError::BadPattern {
                pattern: pattern.to_owned(),
                reason: e.to_string(),
            })?;
        let limits = self.limits().clone();
        let line_chars = (limits.line_chars / 4).max(80);
        let root = self.root().to_path_buf();
        let found: Mutex<Vec<FileHits>> = Mutex::new(Vec::new());
        let total = std::sync::atomic::AtomicUsize::new(0);
        let stopped = std::sync::atomic::AtomicBool::new(false);
        let walk = walker(&base.full, opts.no_ignore, opts.glob.as_deref())?;
        walk.build_parallel().run(|| {
            let matcher = matcher.clone();
            let mut searcher = SearcherBuilder::new()
                .line_number(true)
                .before_context(opts.context.min(20))
                .after_context(opts.context.min(20))
                .binary_detection(BinaryDetection::quit(0))
                .build();
            let root = &root;
            let found = &found;
            let total = &total;
            let stopped = &stopped;
            let files_only = opts.files_only;
            Box::new(move |entry| {
                let Ok(entry) = entry else {
                    return WalkState::Continue;
                };
                if !entry.file_type().is_some_and(|t| t.is_file()) {
                    return WalkState::Continue;
                }
                let mut hits = FileHits {
                    rel: rel_of(root, entry.path()),
                    lines: Vec::new(),
                    matches: 0,
                };
                let sink = Collect {
                    hits: &mut hits,
                    line_chars,
                    files_only,
                };
                if searcher.search_path(&matcher, entry.path(), sink).is_err() {
                    return WalkState::Continue;
                }
                if hits.matches == 0 {
                    return WalkState::Continue;
                }
                let seen = total.fetch_add(hits.matches, std::sync::atomic::Ordering::Relaxed)
                    + hits.matches;
                if let Ok(mut f) = found.lock() {
                    f.push(hits);
                }
                if seen >= HARD_CAP {
                    stopped.store(true, std::sync::atomic::Ordering::Relaxed);
                    return WalkState::Quit;
                }
                WalkState::Continue
            })
        });
        let mut files = found.into_inner().unwrap_or_else(|p| p.into_inner());
        files.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(render_grep(
            files,
            &limits,
            opts.files_only,
            stopped.into_inner(),
        ))
    }

    /// Paths matching a glob (`**/*.rs`, `src/*.{ts,tsx}`), relative to the root, sorted,
    /// `.gitignore`d and hidden files skipped; at most [`super::Limits::entries`].
    pub async fn glob(&self, pattern: &str, path: Option<&str>) -> Result<String, WorkspaceError> {
        let ws = self.clone();
        let pattern = pattern.to_owned();
        let path = path.map(str::to_owned);
        tokio::task::spawn_blocking(move || ws.glob_blocking(&pattern, path.as_deref()))
            .await
            .map_err(|e| WorkspaceError::Io {
                path: ".".into(),
                reason: format!("the glob thread failed: {e}"),
            })?
    }

    /// [`Workspace::glob`] on the calling thread.
    pub fn glob_blocking(
        &self,
        pattern: &str,
        path: Option<&str>,
    ) -> Result<String, WorkspaceError> {
        let base = self.resolve_inner(path.unwrap_or("."), false)?;
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| WorkspaceError::BadPattern {
                pattern: pattern.to_owned(),
                reason: e.to_string(),
            })?
            .compile_matcher();
        // A pattern without a `/` matches file names at any depth, as in `.gitignore`.
        let by_name = !pattern.contains('/');
        let walk = walker(&base.full, false, None)?;
        let found: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let base_full = base.full.clone();
        let root = self.root().to_path_buf();
        walk.build_parallel().run(|| {
            let glob = glob.clone();
            let found = &found;
            let base_full = &base_full;
            let root = &root;
            Box::new(move |entry| {
                let Ok(entry) = entry else {
                    return WalkState::Continue;
                };
                if entry.depth() == 0 {
                    return WalkState::Continue;
                }
                let rel_to_base = entry.path().strip_prefix(base_full).unwrap_or(entry.path());
                let hit = if by_name {
                    glob.is_match(Path::new(entry.file_name()))
                } else {
                    glob.is_match(rel_to_base)
                };
                if hit && let Ok(mut f) = found.lock() {
                    let mut s = rel_of(root, entry.path());
                    if entry.file_type().is_some_and(|t| t.is_dir()) {
                        s.push('/');
                    }
                    f.push(s);
                }
                WalkState::Continue
            })
        });
        let mut files = found.into_inner().unwrap_or_else(|p| p.into_inner());
        files.sort();
        let max = self.limits().entries;
        let mut out = String::new();
        if files.is_empty() {
            let _ = writeln!(out, "[no paths match `{pattern}`]");
        }
        let max_bytes = self.limits().output_bytes;
        let mut shown = 0usize;
        for f in files.iter().take(max) {
            if out.len() + f.len() + 1 > max_bytes {
                break;
            }
            out.push_str(f);
            out.push('\n');
            shown += 1;
        }
        if files.len() > shown {
            let _ = writeln!(
                out,
                "[{} more paths not shown; narrow the pattern or the directory]",
                files.len() - shown
            );
        }
        Ok(out)
    }
}

fn rel_of(root: &Path, p: &Path) -> String {
    super::display_rel(p.strip_prefix(root).unwrap_or(p))
}

fn render_grep(
    files: Vec<FileHits>,
    limits: &super::Limits,
    files_only: bool,
    stopped: bool,
) -> String {
    let mut out = String::new();
    let total_matches: usize = files.iter().map(|f| f.matches).sum();
    let total_files = files.len();
    if files.is_empty() {
        return "[no matches]\n".to_owned();
    }
    let mut shown_matches = 0usize;
    let mut shown_files = 0usize;
    let mut cut = false;
    'files: for f in &files {
        if files_only {
            if shown_files >= limits.entries || out.len() + f.rel.len() + 1 > limits.output_bytes {
                cut = true;
                break;
            }
            out.push_str(&f.rel);
            out.push('\n');
            shown_files += 1;
            continue;
        }
        if shown_files > 0 {
            out.push_str("--\n");
        }
        shown_files += 1;
        for (no, is_match, text) in &f.lines {
            if *is_match && shown_matches >= limits.matches {
                cut = true;
                break 'files;
            }
            let line = match no {
                None => "--\n".to_owned(),
                Some(n) => {
                    let sep = if *is_match { ':' } else { '-' };
                    format!("{}{sep}{n}{sep}{text}\n", f.rel)
                }
            };
            if out.len() + line.len() > limits.output_bytes {
                cut = true;
                break 'files;
            }
            out.push_str(&line);
            if *is_match {
                shown_matches += 1;
            }
        }
    }
    if files_only {
        if cut {
            let _ = writeln!(
                out,
                "[{} more files not shown; narrow the search]",
                total_files - shown_files
            );
        }
    } else if cut {
        let _ = writeln!(
            out,
            "[showed {shown_matches} of {total_matches}{} matching lines in {total_files} files; narrow the pattern, the path or the glob to see the rest]",
            if stopped { "+" } else { "" }
        );
    }
    if stopped && !cut {
        let _ = writeln!(out, "[the search stopped after {HARD_CAP} matching lines]");
    }
    out
}
