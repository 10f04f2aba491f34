//! The permission policy and the shell tool, one JSON line per figure
//! (`{"bench": name, "value": n, "unit": u}`); spreads go to stderr.
//!
//! - `policy.decision.compound`: `Policy::check_command` on a compound line (lists, a pipe, a
//!   subshell, `$(...)`, `bash -c`, `sudo`, env prefixes) against the recommended rules plus a
//!   few more: parse with tree-sitter-bash, walk, match. Median of batches, per decision.
//! - `policy.decision.simple`: the same for `cargo test --all`.
//! - `shell.direct`: `bash -c true` spawned and waited with piped output (the floor).
//! - `shell.tool.full_access`: `ShellTool::run("true")` without a sandbox: the tool's own
//!   overhead is this minus `shell.direct` (policy, clean environment, output capture).
//! - `shell.bwrap.direct`: the same bwrap command line the tool uses, spawned directly.
//! - `shell.tool.workspace_write`: `ShellTool::run("true")` in the bwrap sandbox.
//!
//! Knobs: `MIYABI_BENCH_REPEATS` (batches, default 5), `MIYABI_BENCH_SPAWNS` (spawns per batch,
//! default 40).

use std::process::Stdio;
use std::time::Instant;

use miyabi_code::policy::{Policy, Verdict};
use miyabi_code::shell::{SandboxMode, ShellConfig, ShellTool};
use serde_json::json;

const COMPOUND: &str = "X=1 cargo test --all -- --nocapture && git status --short | grep -v target; \
     (echo $(ls -la src) && bash -c 'git diff --stat && cargo fmt --check') || sudo git push origin main; \
     for f in $(git ls-files '*.rs'); do wc -l \"$f\"; done";

fn emit(bench: &str, value: f64, unit: &str) {
    println!(
        "{}",
        json!({ "bench": bench, "value": value, "unit": unit })
    );
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn policy() -> Policy {
    let mut p = Policy::recommended();
    for (verdict, pat) in [
        (Verdict::Allow, "cargo test:*"),
        (Verdict::Allow, "cargo fmt:*"),
        (Verdict::Allow, "git ls-files:*"),
        (Verdict::Deny, "git push --force*"),
    ] {
        p.add_command_rule(verdict, pat, miyabi_code::policy::RuleSource::Code)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    p
}

fn bench_decision(name: &str, line: &str, repeats: usize) {
    let p = policy();
    let d = p.check_command(line);
    eprintln!(
        "bench: {name}: {} parts, verdict {}",
        d.parts.len(),
        d.verdict
    );
    let n = 2000;
    for _ in 0..200 {
        std::hint::black_box(p.check_command(line));
    }
    let mut per = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(p.check_command(std::hint::black_box(line)));
        }
        per.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    eprintln!("bench: {name}: batches {per:.2?} µs");
    emit(name, median(per), "us");
}

async fn time_spawns<F, Fut>(name: &str, repeats: usize, spawns: usize, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..3 {
        f().await;
    }
    let mut per = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        for _ in 0..spawns {
            f().await;
        }
        per.push(t.elapsed().as_secs_f64() * 1e3 / spawns as f64);
    }
    eprintln!("bench: {name}: batches {per:.3?} ms");
    let m = median(per);
    emit(name, m, "ms");
    m
}

async fn direct(program: &str, args: &[std::ffi::OsString], cwd: &std::path::Path) {
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program}: {out:?}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let repeats = env_usize("MIYABI_BENCH_REPEATS", 5);
    let spawns = env_usize("MIYABI_BENCH_SPAWNS", 40);
    bench_decision("policy.decision.compound", COMPOUND, repeats);
    bench_decision("policy.decision.simple", "cargo test --all", repeats);

    let ws = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = std::fs::canonicalize(ws.path()).unwrap_or_else(|e| panic!("{e}"));
    let allow = || Policy::new().default_command(Verdict::Allow);
    let bash_true: Vec<std::ffi::OsString> = vec!["-c".into(), "true".into()];
    let floor = time_spawns("shell.direct", repeats, spawns, || {
        direct("bash", &bash_true, &root)
    })
    .await;

    let full = ShellTool::new(
        ShellConfig::new(&root).sandbox(SandboxMode::FullAccess),
        allow(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tool_full = time_spawns("shell.tool.full_access", repeats, spawns, || async {
        let r = full
            .run("true", None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.exit_code, Some(0));
    })
    .await;
    emit("shell.tool.overhead", (tool_full - floor) * 1e3, "us");

    let bwrap_args: Vec<std::ffi::OsString> = [
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-net",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--bind",
    ]
    .iter()
    .map(Into::into)
    .chain([root.clone().into_os_string(), root.clone().into_os_string()])
    .chain(["--chdir".into(), root.clone().into_os_string(), "--".into()])
    .chain(["bash".into(), "-c".into(), "true".into()])
    .collect();
    let bwrap_floor = time_spawns("shell.bwrap.direct", repeats, spawns, || {
        direct("bwrap", &bwrap_args, &root)
    })
    .await;

    let sandboxed = ShellTool::new(
        ShellConfig::new(&root).sandbox(SandboxMode::WorkspaceWrite),
        allow(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tool_ws = time_spawns("shell.tool.workspace_write", repeats, spawns, || async {
        let r = sandboxed
            .run("true", None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.exit_code, Some(0), "{r:?}");
    })
    .await;
    emit(
        "shell.tool.sandboxed_overhead",
        (tool_ws - bwrap_floor) * 1e3,
        "us",
    );
}
