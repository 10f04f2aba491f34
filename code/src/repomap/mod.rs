//! The repository map: symbols (definitions and references) extracted with tree-sitter's tags
//! queries from Rust, TypeScript/TSX, JavaScript and Python files, ranked by how often they are
//! referenced, and rendered to fit a token budget; and a `find_symbol` tool.
//!
//! ```
//! use miyabi_code::{RepoMap, Workspace};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("lib.rs"), "pub fn helper() {}\nfn main() { helper(); helper(); }\n").unwrap();
//! let map = RepoMap::new(&Workspace::new(dir.path()).unwrap());
//! let index = map.index().unwrap();
//! assert_eq!(index.symbols()[0].symbol.name, "helper");
//! assert_eq!(index.symbols()[0].references, 2);
//! assert!(index.render(1000).contains("lib.rs:\n    1│ pub fn helper() {}"));
//! ```

mod lang;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ignore::WalkState;
use miyabi::tool::tool_fn;
use miyabi::{Tool, ToolContext};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use streaming_iterator::StreamingIterator;
use tree_sitter::{Parser, QueryCursor};

pub use lang::Lang;

use crate::workspace::{Workspace, cut_line};

/// Files larger than this are skipped (generated or minified code).
const MAX_FILE: u64 = 1024 * 1024;

/// The repository map could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RepoMapError {
    /// A tags query does not compile against its grammar (a bug of this crate).
    #[error("{0}")]
    Query(String),
    /// A path was refused or could not be read.
    #[error(transparent)]
    Workspace(#[from] crate::workspace::WorkspaceError),
}

/// A definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symbol {
    /// Its name.
    pub name: String,
    /// What it is: `function`, `method`, `class`, `interface`, `module`, `macro`, `constant`,
    /// `type`, `enum` (the tags query's `definition.*` capture).
    pub kind: String,
    /// The file, relative to the root.
    pub file: String,
    /// Its first line, from 1.
    pub line: usize,
    /// That line, trimmed (the signature, usually).
    pub signature: String,
}

/// A definition with its rank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedSymbol {
    /// The definition.
    pub symbol: Symbol,
    /// References to its name anywhere in the repository.
    pub references: usize,
    /// The rank: references divided by the number of definitions sharing the name.
    pub score: f64,
}

/// One file's symbols.
#[derive(Debug, Default)]
struct FileSymbols {
    defs: Vec<Symbol>,
    /// (name, line from 1).
    refs: Vec<(String, usize)>,
}

/// A cached file: its modification time and size when parsed.
type Cached = (Option<SystemTime>, u64, Arc<FileSymbols>);

/// The repository map of a workspace. It keeps what it parsed: [`RepoMap::index`] re-parses
/// only files whose modification time or size changed.
#[derive(Clone)]
pub struct RepoMap {
    ws: Workspace,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl std::fmt::Debug for RepoMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoMap")
            .field("root", &self.ws.root())
            .finish_non_exhaustive()
    }
}

/// The symbols of the repository at one moment, ranked.
#[derive(Debug, Clone)]
pub struct RepoIndex {
    files: Vec<(String, Arc<FileSymbols>)>,
    ranked: Vec<RankedSymbol>,
}

/// A reference found by [`RepoIndex::find`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The file, relative to the root.
    pub file: String,
    /// The line, from 1.
    pub line: usize,
}

fn parse_file(
    parsers: &mut HashMap<Lang, Parser>,
    cursor: &mut QueryCursor,
    lang: Lang,
    rel: &str,
    source: &[u8],
) -> Result<FileSymbols, String> {
    let query = lang.query()?;
    let parser = match parsers.entry(lang) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let mut p = Parser::new();
            p.set_language(&lang.language())
                .map_err(|e| format!("{lang:?} grammar: {e}"))?;
            v.insert(p)
        }
    };
    let Some(tree) = parser.parse(source, None) else {
        return Ok(FileSymbols::default());
    };
    let names = query.capture_names();
    let mut out = FileSymbols::default();
    // name node start byte -> index in defs (a method is also matched as a function).
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut matches = cursor.matches(query, tree.root_node(), source);
    while let Some(m) = matches.next() {
        let mut name_node = None;
        let mut role: Option<(&str, tree_sitter::Node)> = None;
        for c in m.captures() {
            let cname = names[c.index as usize];
            if cname == "name" {
                name_node = Some(c.node);
            } else if cname.starts_with("definition.") || cname.starts_with("reference.") {
                role = Some((cname, c.node));
            }
        }
        let (Some(name_node), Some((role, node))) = (name_node, role) else {
            continue;
        };
        let Ok(name) = name_node.utf8_text(source) else {
            continue;
        };
        if name.is_empty() || name.len() > 200 {
            continue;
        }
        if let Some(kind) = role.strip_prefix("definition.") {
            let row = node.start_position().row;
            let sym = Symbol {
                name: name.to_owned(),
                kind: kind.to_owned(),
                file: rel.to_owned(),
                line: row + 1,
                signature: line_at(source, node.start_byte()),
            };
            match seen.get(&name_node.start_byte()) {
                Some(&i) => {
                    if out.defs[i].kind == "function" && kind == "method" {
                        out.defs[i] = sym;
                    }
                }
                None => {
                    seen.insert(name_node.start_byte(), out.defs.len());
                    out.defs.push(sym);
                }
            }
        } else {
            out.refs
                .push((name.to_owned(), name_node.start_position().row + 1));
        }
    }
    Ok(out)
}

/// The line holding byte `at`, trimmed and cut to 160 characters.
fn line_at(source: &[u8], at: usize) -> String {
    let start = source[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let end = source[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(source.len(), |i| at + i);
    let text = String::from_utf8_lossy(&source[start..end]);
    cut_line(text.trim(), 160).into_owned()
}

impl RepoMap {
    /// The map of a workspace (nothing is parsed until [`RepoMap::index`]).
    pub fn new(ws: &Workspace) -> Self {
        Self {
            ws: ws.clone(),
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Walks the workspace (as ripgrep would: `.gitignore`d and hidden files skipped), parses
    /// the files of known languages that changed since the last call, in parallel, and ranks
    /// every definition.
    pub fn index(&self) -> Result<RepoIndex, RepoMapError> {
        for lang in [
            Lang::Rust,
            Lang::TypeScript,
            Lang::Tsx,
            Lang::JavaScript,
            Lang::Python,
        ] {
            lang.query().map_err(RepoMapError::Query)?;
        }
        let root = self.ws.root().to_path_buf();
        let mut walk = ignore::WalkBuilder::new(&root);
        walk.require_git(false)
            .follow_links(false)
            .filter_entry(|e| e.file_name() != ".git" && e.file_name() != "node_modules")
            .threads(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
                    .min(8),
            );
        let found: Mutex<Vec<(String, Cached)>> = Mutex::new(Vec::new());
        let cache = &self.cache;
        walk.build_parallel().run(|| {
            let mut parsers: HashMap<Lang, Parser> = HashMap::new();
            let mut cursor = QueryCursor::new();
            let root = &root;
            let found = &found;
            Box::new(move |entry| {
                let Ok(entry) = entry else {
                    return WalkState::Continue;
                };
                if !entry.file_type().is_some_and(|t| t.is_file()) {
                    return WalkState::Continue;
                }
                let Some(lang) = Lang::of(entry.path()) else {
                    return WalkState::Continue;
                };
                let Ok(meta) = entry.metadata() else {
                    return WalkState::Continue;
                };
                if meta.len() > MAX_FILE {
                    return WalkState::Continue;
                }
                let rel = crate::workspace::display_rel(
                    entry.path().strip_prefix(root).unwrap_or(entry.path()),
                );
                let mtime = meta.modified().ok();
                let hit = cache.lock().ok().and_then(|c| {
                    c.get(&rel)
                        .filter(|(t, len, _)| *t == mtime && *len == meta.len() && mtime.is_some())
                        .map(|(_, _, s)| Arc::clone(s))
                });
                let symbols = match hit {
                    Some(s) => s,
                    None => {
                        let Ok(source) = std::fs::read(entry.path()) else {
                            return WalkState::Continue;
                        };
                        match parse_file(&mut parsers, &mut cursor, lang, &rel, &source) {
                            Ok(s) => Arc::new(s),
                            Err(e) => {
                                tracing::warn!(file = %rel, error = %e, "repository map: file skipped");
                                return WalkState::Continue;
                            }
                        }
                    }
                };
                if let Ok(mut f) = found.lock() {
                    f.push((rel, (mtime, meta.len(), symbols)));
                }
                WalkState::Continue
            })
        });
        let mut found = found.into_inner().unwrap_or_else(|p| p.into_inner());
        found.sort_by(|a, b| a.0.cmp(&b.0));
        if let Ok(mut c) = self.cache.lock() {
            *c = found
                .iter()
                .map(|(rel, cached)| (rel.clone(), cached.clone()))
                .collect();
        }
        let files: Vec<(String, Arc<FileSymbols>)> =
            found.into_iter().map(|(rel, (_, _, s))| (rel, s)).collect();
        Ok(RepoIndex::rank(files))
    }

    /// The tools: `repo_map` (the ranked map within a token budget) and `find_symbol`.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        let map = self.clone();
        let repo_map = tool_fn(
            "repo_map",
            "A map of the repository: its most referenced definitions (functions, types, classes...) grouped by \
             file, with line numbers, fitted to a token budget.",
            move |_ctx: ToolContext, a: MapArgs| {
                let map = map.clone();
                async move {
                    let index = tokio::task::spawn_blocking(move || map.index())
                        .await
                        .map_err(|e| {
                            RepoMapError::Query(format!("the indexing thread failed: {e}"))
                        })??;
                    Ok::<_, RepoMapError>(
                        index.render(a.token_budget.unwrap_or(2048).clamp(64, 32_768)),
                    )
                }
            },
        );
        let map = self.clone();
        let find_symbol = tool_fn(
            "find_symbol",
            "Find where a symbol (function, type, class, method, constant...) is defined and where its name is \
             referenced, by exact name.",
            move |_ctx: ToolContext, a: FindArgs| {
                let map = map.clone();
                async move {
                    let ws = map.ws.clone();
                    let index = tokio::task::spawn_blocking(move || map.index())
                        .await
                        .map_err(|e| {
                            RepoMapError::Query(format!("the indexing thread failed: {e}"))
                        })??;
                    Ok::<_, RepoMapError>(index.render_find(
                        &ws,
                        &a.name,
                        a.limit.unwrap_or(30).clamp(1, 200),
                    ))
                }
            },
        );
        vec![Arc::new(repo_map), Arc::new(find_symbol)]
    }
}

/// Arguments of `repo_map`.
#[derive(Deserialize, JsonSchema)]
struct MapArgs {
    /// About how many tokens the map may take (default 2048).
    #[serde(default)]
    token_budget: Option<usize>,
}

/// Arguments of `find_symbol`.
#[derive(Deserialize, JsonSchema)]
struct FindArgs {
    /// The symbol's exact name (`Engine`, `parse_file`, `useState`).
    name: String,
    /// How many references to list at most (default 30).
    #[serde(default)]
    limit: Option<usize>,
}

/// Tokens a text takes, roughly (four bytes a token).
fn tokens(s: &str) -> usize {
    s.len().div_ceil(4)
}

impl RepoIndex {
    fn rank(files: Vec<(String, Arc<FileSymbols>)>) -> Self {
        let mut refs: HashMap<&str, usize> = HashMap::new();
        let mut defs: HashMap<&str, usize> = HashMap::new();
        for (_, f) in &files {
            for (name, _) in &f.refs {
                *refs.entry(name.as_str()).or_default() += 1;
            }
            for d in &f.defs {
                *defs.entry(d.name.as_str()).or_default() += 1;
            }
        }
        let mut ranked: Vec<RankedSymbol> = files
            .iter()
            .flat_map(|(_, f)| f.defs.iter())
            .map(|d| {
                let r = refs.get(d.name.as_str()).copied().unwrap_or(0);
                let n = defs.get(d.name.as_str()).copied().unwrap_or(1).max(1);
                RankedSymbol {
                    symbol: d.clone(),
                    references: r,
                    score: r as f64 / n as f64,
                }
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.symbol.file.cmp(&b.symbol.file))
                .then_with(|| a.symbol.line.cmp(&b.symbol.line))
        });
        Self { files, ranked }
    }

    /// Every definition, most referenced first.
    pub fn symbols(&self) -> &[RankedSymbol] {
        &self.ranked
    }

    /// How many files were read.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The map for a model: the highest-ranked definitions that fit in about `token_budget`
    /// tokens (four bytes a token), grouped by file (files in order of their best symbol),
    /// each as `line│ signature`; a last line says how much was left out.
    pub fn render(&self, token_budget: usize) -> String {
        let budget = token_budget.saturating_sub(24); // the closing note
        let mut used = 0usize;
        let mut chosen: Vec<&RankedSymbol> = Vec::new();
        let mut files_in: HashMap<&str, usize> = HashMap::new();
        for s in &self.ranked {
            let line_cost = tokens(&format!("{:>5}│ {}\n", s.symbol.line, s.symbol.signature));
            let header = if files_in.contains_key(s.symbol.file.as_str()) {
                0
            } else {
                tokens(&s.symbol.file) + 1
            };
            if used + line_cost + header > budget {
                continue;
            }
            used += line_cost + header;
            let order = files_in.len();
            files_in.entry(s.symbol.file.as_str()).or_insert(order);
            chosen.push(s);
        }
        let mut by_file: Vec<(&str, Vec<&RankedSymbol>)> = Vec::new();
        let mut order: Vec<(&str, usize)> = files_in.iter().map(|(f, o)| (*f, *o)).collect();
        order.sort_by_key(|(_, o)| *o);
        for (f, _) in &order {
            let mut syms: Vec<&RankedSymbol> = chosen
                .iter()
                .copied()
                .filter(|s| s.symbol.file == *f)
                .collect();
            syms.sort_by_key(|s| s.symbol.line);
            by_file.push((f, syms));
        }
        let mut out = String::new();
        for (f, syms) in &by_file {
            let _ = writeln!(out, "{f}:");
            for s in syms {
                let _ = writeln!(out, "{:>5}│ {}", s.symbol.line, s.symbol.signature);
            }
        }
        if chosen.len() < self.ranked.len() {
            let total_files = self
                .files
                .iter()
                .filter(|(_, f)| !f.defs.is_empty())
                .count();
            let _ = writeln!(
                out,
                "[map: {} of {} definitions in {} of {total_files} files; use find_symbol or a larger budget for more]",
                chosen.len(),
                self.ranked.len(),
                by_file.len()
            );
        }
        out
    }

    /// The definitions named `name` and the places its name is referenced.
    pub fn find(&self, name: &str) -> (Vec<&Symbol>, Vec<Reference>) {
        let defs = self
            .ranked
            .iter()
            .map(|r| &r.symbol)
            .filter(|s| s.name == name)
            .collect();
        let refs = self
            .files
            .iter()
            .flat_map(|(file, f)| {
                f.refs
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, line)| Reference {
                        file: file.clone(),
                        line: *line,
                    })
            })
            .collect();
        (defs, refs)
    }

    fn render_find(&self, ws: &Workspace, name: &str, limit: usize) -> String {
        let (defs, mut refs) = self.find(name);
        let mut out = String::new();
        if defs.is_empty() && refs.is_empty() {
            let lower = name.to_lowercase();
            let mut similar: Vec<&str> = self
                .ranked
                .iter()
                .map(|r| r.symbol.name.as_str())
                .filter(|n| n.to_lowercase().contains(&lower))
                .collect();
            similar.sort_unstable();
            similar.dedup();
            similar.truncate(20);
            let _ = writeln!(out, "[no symbol named `{name}`]");
            if !similar.is_empty() {
                let _ = writeln!(out, "similar names: {}", similar.join(", "));
            }
            return out;
        }
        let _ = writeln!(out, "definitions of `{name}` ({}):", defs.len());
        for d in &defs {
            let _ = writeln!(out, "{}:{}: [{}] {}", d.file, d.line, d.kind, d.signature);
        }
        refs.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        refs.dedup();
        let _ = writeln!(
            out,
            "references ({}{}):",
            refs.len(),
            if refs.len() > limit {
                format!(", first {limit} shown")
            } else {
                String::new()
            }
        );
        let mut current: Option<(String, Vec<String>)> = None;
        for r in refs.iter().take(limit) {
            if current.as_ref().is_none_or(|(f, _)| *f != r.file) {
                let text = ws
                    .resolve(&r.file, false)
                    .ok()
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .unwrap_or_default();
                current = Some((r.file.clone(), text.lines().map(str::to_owned).collect()));
            }
            let line = current
                .as_ref()
                .and_then(|(_, lines)| lines.get(r.line - 1))
                .map(|l| cut_line(l.trim(), 160).into_owned())
                .unwrap_or_default();
            let _ = writeln!(out, "{}:{}: {line}", r.file, r.line);
        }
        out
    }
}
