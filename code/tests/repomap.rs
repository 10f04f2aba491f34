#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The repository map through the public API: symbols of Rust, TypeScript, TSX, JavaScript and
//! Python files, ranking by references, the token budget, find_symbol, and re-indexing.

use std::fs;
use std::path::Path;

use miyabi::ToolContext;
use miyabi_code::{RepoMap, Workspace};
use serde_json::json;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn sample() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    write(
        p,
        "src/lib.rs",
        "\
pub struct Engine {
    store: Store,
}

pub struct Store;

impl Engine {
    pub fn start(&self) -> Run {
        helper();
        Run::new()
    }
}

pub fn helper() {}

pub trait Step {}

macro_rules! shout { () => {} }
",
    );
    write(
        p,
        "src/run.rs",
        "\
use crate::Engine;

pub struct Run;

impl Run {
    pub fn new() -> Run { Run }
}

fn go(e: &Engine) -> Run {
    helper();
    helper();
    e.start()
}
",
    );
    write(
        p,
        "web/app.ts",
        "\
export interface Options { verbose: boolean }
export type Mode = 'a' | 'b';
export class Client {
  connect(opts: Options): void { log('connect'); }
}
export function log(msg: string) { console.log(msg); }
const c = new Client();
c.connect({ verbose: true });
log('x');
",
    );
    write(
        p,
        "web/view.tsx",
        "\
export function Button(props: { label: string }) { return <button>{props.label}</button>; }
export const App = () => <Button label=\"hi\" />;
",
    );
    write(
        p,
        "web/util.js",
        "\
function formatDate(d) { return d.toISOString(); }
class Cache { get(k) { return formatDate(k); } }
module.exports = { formatDate, Cache };
",
    );
    write(
        p,
        "tools/task.py",
        "\
LIMIT = 10

class Base:
    pass

class Task(Base):
    def run(self):
        return compute(LIMIT)

def compute(n):
    return n * 2

print(compute(3))
",
    );
    write(p, ".gitignore", "generated/\n");
    write(p, "generated/big.rs", "pub fn ignored_function() {}\n");
    dir
}

#[test]
fn extracts_definitions_of_every_language() {
    let dir = sample();
    let map = RepoMap::new(&Workspace::new(dir.path()).unwrap());
    let index = map.index().unwrap();
    assert_eq!(index.file_count(), 6, "the .gitignored file is skipped");
    let mut defs: Vec<(String, String, String, usize)> = index
        .symbols()
        .iter()
        .map(|r| {
            (
                r.symbol.file.clone(),
                r.symbol.name.clone(),
                r.symbol.kind.clone(),
                r.symbol.line,
            )
        })
        .collect();
    defs.sort();
    let has = |file: &str, name: &str, kind: &str| {
        assert!(
            defs.iter()
                .any(|(f, n, k, _)| f == file && n == name && k == kind),
            "missing {kind} {name} in {file}: {defs:?}"
        );
    };
    has("src/lib.rs", "Engine", "class");
    has("src/lib.rs", "start", "method");
    has("src/lib.rs", "helper", "function");
    has("src/lib.rs", "Step", "interface");
    has("src/lib.rs", "shout", "macro");
    has("src/run.rs", "go", "function");
    has("web/app.ts", "Options", "interface");
    has("web/app.ts", "Mode", "type");
    has("web/app.ts", "Client", "class");
    has("web/app.ts", "connect", "method");
    has("web/app.ts", "log", "function");
    has("web/view.tsx", "Button", "function");
    has("web/view.tsx", "App", "function");
    has("web/util.js", "formatDate", "function");
    has("web/util.js", "Cache", "class");
    has("tools/task.py", "Task", "class");
    has("tools/task.py", "compute", "function");
    has("tools/task.py", "LIMIT", "constant");
    assert!(!defs.iter().any(|(_, n, _, _)| n == "ignored_function"));
    // `start` is a method, not also a function.
    assert_eq!(defs.iter().filter(|(_, n, _, _)| n == "start").count(), 1);
    let engine = index
        .symbols()
        .iter()
        .find(|r| r.symbol.name == "Engine")
        .unwrap();
    assert_eq!(engine.symbol.line, 1);
    assert_eq!(engine.symbol.signature, "pub struct Engine {");
}

#[test]
fn ranks_by_references_and_fits_the_budget() {
    let dir = sample();
    let map = RepoMap::new(&Workspace::new(dir.path()).unwrap());
    let index = map.index().unwrap();
    let refs = |name: &str| {
        index
            .symbols()
            .iter()
            .find(|r| r.symbol.name == name)
            .unwrap()
            .references
    };
    assert_eq!(refs("helper"), 3);
    assert_eq!(refs("compute"), 2);
    // `log(..)` twice and `console.log(..)`: references are by name.
    assert_eq!(refs("log"), 3);
    assert!(refs("Run") >= 4, "{}", refs("Run"));
    assert!(refs("Engine") >= 2, "{}", refs("Engine"));
    assert_eq!(refs("shout"), 0);
    let scores: Vec<f64> = index.symbols().iter().map(|r| r.score).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "not sorted: {scores:?}"
    );

    let full = index.render(100_000);
    assert!(!full.contains("[map:"), "{full}");
    assert!(
        full.contains("src/lib.rs:\n    1│ pub struct Engine {\n"),
        "{full}"
    );
    assert!(full.contains("tools/task.py:\n"), "{full}");

    let small = index.render(60);
    assert!(
        small.len() <= 60 * 4 + 200,
        "{} bytes:\n{small}",
        small.len()
    );
    assert!(small.contains("[map: "), "{small}");
    let first = &index.symbols()[0].symbol;
    assert!(
        small.contains(&first.signature),
        "the best symbol is missing:\n{small}"
    );
    assert!(!small.contains("shout"), "{small}");
}

#[test]
fn reindexing_sees_changed_files() {
    let dir = sample();
    let map = RepoMap::new(&Workspace::new(dir.path()).unwrap());
    assert!(map.index().unwrap().find("added_later").0.is_empty());
    write(
        dir.path(),
        "src/more.rs",
        "pub fn added_later() {}\nfn x() { added_later(); }\n",
    );
    // Same size, other content: the modification time tells.
    write(
        dir.path(),
        "tools/task.py",
        "\
LIMIT = 10

class Base:
    pass

class Task(Base):
    def run(self):
        return other(LIMIT)

def other(n):
    return n * 2

print(other(3))
",
    );
    let index = map.index().unwrap();
    let (defs, refs) = index.find("added_later");
    assert_eq!(defs.len(), 1);
    assert_eq!(refs.len(), 1);
    assert!(index.find("compute").0.is_empty());
    assert_eq!(index.find("other").0.len(), 1);
}

#[tokio::test]
async fn find_symbol_and_repo_map_tools() {
    let dir = sample();
    let map = RepoMap::new(&Workspace::new(dir.path()).unwrap());
    let tools = map.tools();
    let call = |name: &'static str, args: serde_json::Value| {
        let t = tools.iter().find(|t| t.name() == name).unwrap().clone();
        async move {
            t.call(&ToolContext::detached("t", "1"), args)
                .await
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let out = call("find_symbol", json!({"name": "helper"})).await;
    assert_eq!(
        out,
        "definitions of `helper` (1):\nsrc/lib.rs:14: [function] pub fn helper() {}\nreferences (3):\nsrc/lib.rs:9: helper();\nsrc/run.rs:10: helper();\nsrc/run.rs:11: helper();\n"
    );
    let out = call("find_symbol", json!({"name": "helper", "limit": 1})).await;
    assert!(
        out.contains("references (3, first 1 shown):\nsrc/lib.rs:9: helper();\n"),
        "{out}"
    );
    let out = call("find_symbol", json!({"name": "engine"})).await;
    assert_eq!(out, "[no symbol named `engine`]\nsimilar names: Engine\n");
    let out = call("repo_map", json!({"token_budget": 4000})).await;
    assert!(out.contains("web/app.ts:\n"), "{out}");
    for t in &tools {
        assert_eq!(t.parameters()["type"], "object");
    }
}

#[test]
fn maps_this_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let map = RepoMap::new(&Workspace::new(root).unwrap());
    let index = map.index().unwrap();
    assert!(index.file_count() > 100, "{}", index.file_count());
    let (defs, refs) = index.find("Engine");
    assert!(
        defs.iter()
            .any(|d| d.file == "crates/engine/src/workflow/engine/mod.rs"
                && d.signature == "pub struct Engine {"),
        "{defs:?}"
    );
    assert!(refs.len() > 50, "{}", refs.len());
    let top: Vec<&str> = index
        .symbols()
        .iter()
        .take(200)
        .map(|r| r.symbol.name.as_str())
        .collect();
    assert!(top.contains(&"Engine"), "{top:?}");
    let rendered = index.render(2048);
    assert!(rendered.len() < 2048 * 4 + 200);
    assert!(
        !index
            .symbols()
            .iter()
            .any(|r| r.symbol.file.starts_with("target/"))
    );
}
