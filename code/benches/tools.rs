//! Coding-tools benchmark: prints one JSON line per figure, `{"bench": name, "value": n,
//! "unit": u}`, on stdout; details go to stderr.
//!
//! ```text
//! cargo bench -p miyabi-code --bench tools
//! ```
//!
//! - `code.grep.50k.{literal,regex}.ms` and `.rg.ms`: `Workspace::grep` over a generated tree of
//!   50,000 files (500 directories × 100 files of ~1 KiB, a rare match in 1 file in 100) against
//!   `rg` (spawned, output read through a pipe) on the same tree, warm page cache, median of
//!   `MIYABI_BENCH_REPEATS` (default 5); `.ratio` is ours / rg's.
//! - `code.repomap.self.ms`: the repository map of this repository (walk, parse every Rust,
//!   TypeScript, JavaScript and Python file, rank, render 2,048 tokens) from a fresh `RepoMap`;
//!   `code.repomap.self.warm.ms` the same again on the same `RepoMap` (nothing changed, nothing
//!   re-parsed); `code.repomap.self.cpu.ms` the CPU time (all threads) of the cold map.
//! - `code.read_file.overhead.us`: a `read_file` tool call (JSON arguments in, the numbered text
//!   out, through `Tool::call`) minus `std::fs::read_to_string` of the same 4 KiB file, µs per
//!   call, median of batches of 2,000.
//!
//! `MIYABI_BENCH_ONLY=grep,repomap,read` picks shapes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use miyabi::ToolContext;
use miyabi_code::workspace::GrepOptions;
use miyabi_code::{RepoMap, Workspace};
use serde_json::json;

fn emit(bench: &str, value: f64, unit: &str) {
    println!(
        "{}",
        json!({ "bench": bench, "value": value, "unit": unit })
    );
}

fn note(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

fn repeats() -> usize {
    std::env::var("MIYABI_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(5)
}

fn wanted(shape: &str) -> bool {
    std::env::var("MIYABI_BENCH_ONLY").map_or(true, |v| v.split(',').any(|s| s.trim() == shape))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU time (user + system) of this process and of its waited-for children, ms, from
/// `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_ms() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = after.split(' ').map(|x| x.parse().unwrap_or(0.0)).collect();
    // Fields 14-17 of the whole line are 12-15 after the command name and state.
    ((f[11] + f[12]) * 10.0, (f[13] + f[14]) * 10.0)
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// 500 directories × 100 files of ~1 KiB of code-like text; file i % 100 == 7 holds the
/// needle `frobnicate_widget`.
fn generate(root: &Path) {
    let filler = "fn compute_value(input: &str) -> Result<u64, ParseError> { input.trim().parse::<u64>() }\n";
    for d in 0..500 {
        let dir = root.join(format!("pkg{d:03}/src"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let mut body = String::with_capacity(1100);
            for line in 0..11 {
                if f % 100 == 7 && line == 5 {
                    body.push_str("    let w = frobnicate_widget(config, 42);\n");
                } else {
                    body.push_str(filler);
                }
            }
            std::fs::write(dir.join(format!("file{f:03}.rs")), body).unwrap();
        }
    }
}

fn rg(root: &Path, pattern: &str) -> (f64, usize) {
    let start = Instant::now();
    let out = Command::new("rg")
        .args(["--no-heading", "--line-number", "--color", "never", pattern])
        .arg(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .expect("rg is needed for this benchmark (Debian package ripgrep)");
    let ms = start.elapsed().as_secs_f64() * 1e3;
    (ms, out.stdout.iter().filter(|&&b| b == b'\n').count())
}

fn bench_grep() {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    generate(dir.path());
    note(format!("generated 50,000 files in {:.1?}", t.elapsed()));
    let ws = Workspace::new(dir.path()).unwrap();
    for (name, pattern) in [
        ("literal", "frobnicate_widget"),
        ("regex", r"frob\w+_widget\(config, \d+\)"),
    ] {
        // Warm the page cache and check both find the same lines.
        let (_, rg_lines) = rg(dir.path(), pattern);
        let ours = ws.grep_blocking(pattern, &GrepOptions::new()).unwrap();
        assert!(
            ours.contains("[showed 200 of 500 matching lines in 500 files"),
            "{}",
            &ours[ours.len() - 200..]
        );
        assert_eq!(rg_lines, 500);
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        let (mut my_cpu, mut rg_cpu) = (0.0, 0.0);
        for _ in 0..repeats() {
            let (c0, _) = cpu_ms();
            let start = Instant::now();
            let out = ws.grep_blocking(pattern, &GrepOptions::new()).unwrap();
            mine.push(start.elapsed().as_secs_f64() * 1e3);
            let (c1, k1) = cpu_ms();
            assert!(!out.is_empty());
            theirs.push(rg(dir.path(), pattern).0);
            let (_, k2) = cpu_ms();
            my_cpu += c1 - c0;
            rg_cpu += k2 - k1;
        }
        note(format!(
            "grep {name}: ours {mine:.1?} ms, rg {theirs:.1?} ms; CPU ours {my_cpu} ms, rg {rg_cpu} ms"
        ));
        let (m, r) = (median(mine), median(theirs));
        emit(&format!("code.grep.50k.{name}.ms"), round(m, 1), "ms");
        emit(&format!("code.grep.50k.{name}.rg.ms"), round(r, 1), "ms");
        emit(&format!("code.grep.50k.{name}.ratio"), round(m / r, 2), "x");
        emit(
            &format!("code.grep.50k.{name}.cpu_ratio"),
            round(my_cpu / f64::max(rg_cpu, 1.0), 2),
            "x",
        );
    }
}

fn bench_repomap() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let ws = Workspace::new(root).unwrap();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut cpu = Vec::new();
    let mut files = 0;
    let mut symbols = 0;
    for _ in 0..repeats().min(3) {
        let map = RepoMap::new(&ws);
        let (c0, _) = cpu_ms();
        let start = Instant::now();
        let index = map.index().unwrap();
        let text = index.render(2048);
        cold.push(start.elapsed().as_secs_f64() * 1e3);
        cpu.push(cpu_ms().0 - c0);
        assert!(!text.is_empty());
        files = index.file_count();
        symbols = index.symbols().len();
        let start = Instant::now();
        let index = map.index().unwrap();
        let _ = index.render(2048);
        warm.push(start.elapsed().as_secs_f64() * 1e3);
    }
    note(format!(
        "repomap: {files} files, {symbols} definitions; cold {cold:.1?} ms, warm {warm:.1?} ms"
    ));
    emit("code.repomap.self.ms", round(median(cold), 1), "ms");
    emit("code.repomap.self.warm.ms", round(median(warm), 1), "ms");
    emit("code.repomap.self.cpu.ms", round(median(cpu), 1), "ms");
}

fn bench_read() {
    let dir = tempfile::tempdir().unwrap();
    let body: String = (0..64)
        .map(|i| format!("line {i:03} {}\n", "x".repeat(54)))
        .collect();
    assert_eq!(body.len(), 4096);
    std::fs::write(dir.path().join("file.txt"), &body).unwrap();
    let ws = Workspace::new(dir.path()).unwrap();
    let tool = ws
        .tools()
        .into_iter()
        .find(|t| t.name() == "read_file")
        .unwrap();
    let ctx = ToolContext::detached("bench", "call");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = dir.path().join("file.txt");
    const N: usize = 2_000;
    let mut overheads = Vec::new();
    for _ in 0..repeats() {
        let start = Instant::now();
        for _ in 0..N {
            let s = std::fs::read_to_string(&path).unwrap();
            assert_eq!(s.len(), 4096);
        }
        let plain = start.elapsed().as_secs_f64() * 1e6 / N as f64;
        let tool_us = rt.block_on(async {
            let start = Instant::now();
            for _ in 0..N {
                let out = tool.call(&ctx, json!({"path": "file.txt"})).await.unwrap();
                assert!(out.as_str().unwrap().len() > 4096);
            }
            start.elapsed().as_secs_f64() * 1e6 / N as f64
        });
        note(format!("read: plain {plain:.2} µs, tool {tool_us:.2} µs"));
        overheads.push(tool_us - plain);
    }
    emit(
        "code.read_file.overhead.us",
        round(median(overheads), 2),
        "us",
    );
}

fn main() {
    if wanted("read") {
        bench_read();
    }
    if wanted("repomap") {
        bench_repomap();
    }
    if wanted("grep") {
        bench_grep();
    }
}
