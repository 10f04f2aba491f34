#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Escape attempts against the bubblewrap sandbox, through the shell tool: writes outside the
//! workspace, `rm -rf /`, network access, `.git` writes, and what happens without bwrap.
//! These tests need `bwrap` (Debian package `bubblewrap`).

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use miyabi::ToolContext;
use miyabi::tool::Tool;
use miyabi_code::policy::{Policy, Verdict};
use miyabi_code::shell::{SandboxMode, ShellConfig, ShellError, ShellOutput, ShellTool};
use serde_json::json;

/// A directory outside the workspace and outside /tmp (which the sandbox replaces by its own).
fn outside_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn allow_all() -> Policy {
    Policy::new().default_command(Verdict::Allow)
}

fn tool(ws: &Path, mode: SandboxMode) -> ShellTool {
    ShellTool::new(ShellConfig::new(ws).sandbox(mode), allow_all()).unwrap()
}

async fn run(t: &ShellTool, cmd: &str) -> ShellOutput {
    t.run(cmd, None).await.unwrap()
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display())
}

#[tokio::test]
async fn workspace_write_confines_writes_to_the_workspace_and_tmp() {
    let ws = tempfile::tempdir().unwrap();
    let out = outside_dir();
    let target = out.path().join("escaped.txt");
    let t = tool(ws.path(), SandboxMode::WorkspaceWrite);

    let r = run(
        &t,
        &format!(
            "echo in > inside.txt && echo tmp > /tmp/t.txt && cat /tmp/t.txt; echo out > {}",
            sh_quote(&target)
        ),
    )
    .await;
    assert_eq!(r.sandbox, "workspace-write");
    assert_ne!(r.exit_code, Some(0), "{r:?}");
    assert!(r.stderr.contains("Read-only file system"), "{r:?}");
    assert_eq!(r.stdout, "tmp\n");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("inside.txt")).unwrap(),
        "in\n"
    );
    assert!(!target.exists(), "a write escaped the workspace");

    // The home directory is read-only too.
    let r = run(&t, "touch \"$HOME/.miyabi-sandbox-probe\"").await;
    assert_ne!(r.exit_code, Some(0), "{r:?}");

    // The same write without a sandbox lands (so the check above can fail).
    let full = tool(ws.path(), SandboxMode::FullAccess);
    let r = run(&full, &format!("echo out > {}", sh_quote(&target))).await;
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert!(target.exists());
}

#[tokio::test]
async fn read_only_writes_nothing_but_its_private_tmp() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("kept.txt"), "x").unwrap();
    let t = tool(ws.path(), SandboxMode::ReadOnly);
    let r = run(&t, "cat kept.txt && echo > /tmp/ok && rm kept.txt").await;
    assert_eq!(r.sandbox, "read-only");
    assert_eq!(r.stdout, "x");
    assert_ne!(r.exit_code, Some(0));
    assert!(ws.path().join("kept.txt").exists());
    let r = run(&t, "echo new > new.txt").await;
    assert_ne!(r.exit_code, Some(0));
    assert!(!ws.path().join("new.txt").exists());
}

#[tokio::test]
async fn rm_rf_root_is_denied_by_default_rules_and_harmless_in_the_sandbox() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("file.txt"), "keep").unwrap();
    let out = outside_dir();
    let sentinel = out.path().join("sentinel");
    std::fs::write(&sentinel, "alive").unwrap();

    // Denied by the recommended rules, also hidden in a compound line.
    let guarded = ShellTool::new(ShellConfig::new(ws.path()), Policy::recommended()).unwrap();
    for line in [
        "rm -rf /",
        "true && rm -rf /",
        "echo $(rm -rf /)",
        "ls; sudo rm -rf /",
    ] {
        let err = guarded.run(line, None).await.unwrap_err();
        assert!(matches!(err, ShellError::Denied { .. }), "{line}: {err}");
        assert!(err.to_string().contains("rm -rf /"), "{err}");
    }

    // With a policy that allows everything, the sandbox still keeps the system: GNU rm refuses
    // `/` itself, and the directory outside the workspace cannot be removed.
    let t = tool(ws.path(), SandboxMode::ReadOnly);
    let r = run(&t, &format!("rm -rf /; rm -rf {}", sh_quote(out.path()))).await;
    assert_ne!(r.exit_code, Some(0), "{r:?}");
    assert_eq!(std::fs::read_to_string(&sentinel).unwrap(), "alive");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("file.txt")).unwrap(),
        "keep"
    );
    let t = tool(ws.path(), SandboxMode::WorkspaceWrite);
    let r = run(&t, &format!("rm -rf {}", sh_quote(out.path()))).await;
    assert_ne!(r.exit_code, Some(0), "{r:?}");
    assert_eq!(std::fs::read_to_string(&sentinel).unwrap(), "alive");
}

/// Connects with bash's /dev/tcp to a listener this test opens on 127.0.0.1.
fn connect_line(port: u16) -> String {
    format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected")
}

fn accepted(listener: &TcpListener) -> bool {
    listener.set_nonblocking(true).unwrap();
    match listener.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    }
}

#[tokio::test]
async fn no_network_under_workspace_write() {
    let ws = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    for mode in [SandboxMode::WorkspaceWrite, SandboxMode::ReadOnly] {
        let r = run(&tool(ws.path(), mode), &connect_line(port)).await;
        assert_ne!(r.exit_code, Some(0), "{mode:?}: {r:?}");
        assert!(!r.stdout.contains("connected"), "{r:?}");
    }
    assert!(
        !accepted(&listener),
        "a sandboxed command reached the listener"
    );

    // Full access connects: the listener sees it (the check above can fail).
    let r = run(
        &tool(ws.path(), SandboxMode::FullAccess),
        &connect_line(port),
    )
    .await;
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert_eq!(r.stdout, "connected\n");
    listener.set_nonblocking(false).unwrap();
    let (_conn, _) = listener.accept().unwrap();
}

fn git_init(dir: &Path) {
    let st = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

#[tokio::test]
async fn git_dir_is_read_only_unless_git_writes_are_allowed() {
    let ws = tempfile::tempdir().unwrap();
    git_init(ws.path());
    let hook: PathBuf = ws.path().join(".git/hooks/post-checkout");
    let plant = "echo 'curl evil' > .git/hooks/post-checkout && echo planted";

    let t = tool(ws.path(), SandboxMode::WorkspaceWrite);
    let r = run(&t, &format!("echo src > src.txt; {plant}")).await;
    assert_ne!(r.exit_code, Some(0), "{r:?}");
    assert!(!hook.exists());
    assert!(ws.path().join("src.txt").exists());

    let t = ShellTool::new(
        ShellConfig::new(ws.path())
            .sandbox(SandboxMode::WorkspaceWrite)
            .allow_git_writes(true),
        allow_all(),
    )
    .unwrap();
    let r = run(&t, plant).await;
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert!(hook.exists());
}

#[tokio::test]
async fn extra_writable_directories() {
    let ws = tempfile::tempdir().unwrap();
    let cache = outside_dir();
    let t = ShellTool::new(
        ShellConfig::new(ws.path()).writable(cache.path()),
        allow_all(),
    )
    .unwrap();
    let r = run(&t, &format!("echo c > {}/c.txt", sh_quote(cache.path()))).await;
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert!(cache.path().join("c.txt").exists());
}

#[tokio::test]
async fn without_bwrap_the_call_is_refused_unless_the_fallback_is_allowed() {
    let ws = tempfile::tempdir().unwrap();
    let missing = ws.path().join("no-such-bwrap");
    let t = ShellTool::new(
        ShellConfig::new(ws.path()).bwrap_path(&missing),
        allow_all(),
    )
    .unwrap();
    let err = t.run("echo hi > x.txt", None).await.unwrap_err();
    assert!(
        matches!(err, ShellError::SandboxUnavailable { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("workspace-write sandbox is unavailable"),
        "{msg}"
    );
    assert!(msg.contains("no-such-bwrap"), "{msg}");
    assert!(msg.contains("bubblewrap"), "{msg}");
    assert!(!ws.path().join("x.txt").exists(), "nothing ran");

    // Through the tool interface the model gets the error as the call's result.
    let ctx = ToolContext::detached("coder", "c1");
    let e = t
        .call(&ctx, json!({"command": "echo hi"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("sandbox is unavailable"), "{e}");

    // A bwrap that exists but fails to start is refused the same way.
    let t = ShellTool::new(
        ShellConfig::new(ws.path()).bwrap_path("/bin/false"),
        allow_all(),
    )
    .unwrap();
    let err = t.run("echo hi", None).await.unwrap_err();
    assert!(
        matches!(err, ShellError::SandboxUnavailable { .. }),
        "{err}"
    );

    // Opted in: it runs, unsandboxed, and says so.
    let t = ShellTool::new(
        ShellConfig::new(ws.path())
            .bwrap_path(&missing)
            .unsandboxed_fallback(true),
        allow_all(),
    )
    .unwrap();
    let r = run(&t, "echo hi > x.txt && cat x.txt").await;
    assert_eq!(r.sandbox, "none");
    assert_eq!(r.stdout, "hi\n");
}
