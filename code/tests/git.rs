#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Git tools through the public API, on real repositories made in temporary directories.

use std::fs;
use std::path::Path;
use std::process::Command;

use miyabi::{Tool, ToolContext};
use miyabi_code::git::{GitError, validate_commit_message};
use miyabi_code::{Git, Workspace};
use serde_json::json;

fn sh(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    sh(p, &["init", "-q", "-b", "main"]);
    sh(p, &["config", "user.name", "Test"]);
    sh(p, &["config", "user.email", "test@example.com"]);
    fs::write(p.join("a.txt"), "one\n").unwrap();
    sh(p, &["add", "-A"]);
    sh(p, &["commit", "-q", "-m", "chore: start"]);
    dir
}

async fn call(
    tools: &[std::sync::Arc<dyn Tool>],
    name: &str,
    args: serde_json::Value,
) -> Result<String, String> {
    let t = tools.iter().find(|t| t.name() == name).unwrap();
    t.call(&ToolContext::detached("test", "c1"), args)
        .await
        .map(|v| v.as_str().unwrap().to_owned())
        .map_err(|e| e.to_string())
}

#[test]
fn conventional_commit_messages_are_validated() {
    for ok in [
        "fix: handle empty input",
        "feat(parser): accept tabs",
        "feat(api)!: drop v1",
        "refactor!: rename things",
        "docs(readme): explain\n\nA longer body.\n\nRefs: #12",
    ] {
        validate_commit_message(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    for (bad, why) in [
        ("", "empty"),
        ("fixed the bug", "no `: `"),
        ("Fix: capitalised type", "`Fix` is not a known type"),
        ("wip: stuff", "`wip` is not a known type"),
        ("fix(): empty scope", "scope `` is empty"),
        ("fix(parser: unclosed", "not closed"),
        ("fix: ", "description after `: ` is empty"),
        ("fix:  two spaces", "extra spaces"),
        ("fix: header\nbody without blank line", "blank line"),
    ] {
        let err = validate_commit_message(bad).unwrap_err();
        assert!(matches!(err, GitError::BadMessage { .. }));
        assert!(err.to_string().contains(why), "{bad:?}: {err}");
    }
    let long = format!("fix: {}", "x".repeat(100));
    assert!(
        validate_commit_message(&long)
            .unwrap_err()
            .to_string()
            .contains("at most 100")
    );
}

#[tokio::test]
async fn status_diff_add_commit_and_branch() {
    let dir = repo();
    let p = dir.path();
    let git = Git::new(p).unwrap();
    fs::write(p.join("a.txt"), "one\ntwo\n").unwrap();
    fs::write(p.join("b.txt"), "new\n").unwrap();

    let status = git.status().await.unwrap();
    assert_eq!(status, "## main\n M a.txt\n?? b.txt\n");
    let diff = git.diff(false, &[]).await.unwrap();
    assert!(
        diff.contains("--- a/a.txt\n+++ b/a.txt\n@@ -1 +1,2 @@\n one\n+two\n"),
        "{diff}"
    );

    git.add(&["a.txt".into()]).await.unwrap();
    assert_eq!(git.status().await.unwrap(), "## main\nM  a.txt\n?? b.txt\n");
    assert!(git.diff(true, &[]).await.unwrap().contains("+two"));

    let err = git.commit("updated a").await.unwrap_err();
    assert!(matches!(err, GitError::BadMessage { .. }), "{err}");
    assert_eq!(sh(p, &["rev-list", "--count", "HEAD"]).trim(), "1");
    let id = git.commit("feat(a): add a second line").await.unwrap();
    assert_eq!(id, sh(p, &["rev-parse", "HEAD"]).trim());
    assert_eq!(
        sh(p, &["log", "-1", "--format=%s"]).trim(),
        "feat(a): add a second line"
    );

    assert_eq!(
        git.branch(Some("topic"), true).await.unwrap(),
        "created branch `topic` and switched to it"
    );
    assert_eq!(sh(p, &["branch", "--show-current"]).trim(), "topic");
    let list = git.branch(None, false).await.unwrap();
    assert!(
        list.contains("  main\n") && list.contains("* topic\n"),
        "{list}"
    );
    assert!(git.branch(Some("--delete"), false).await.is_err());
    assert!(git.branch(Some("bad..name"), false).await.is_err());
}

#[tokio::test]
async fn pathspecs_are_confined_to_the_working_tree() {
    let dir = repo();
    let git = Git::new(dir.path()).unwrap();
    let err = git.add(&["../outside".into()]).await.unwrap_err();
    assert!(err.to_string().contains("contains `..`"), "{err}");
    let err = git.add(&[":(top)a.txt".into()]).await.unwrap_err();
    assert!(err.to_string().contains("pathspec magic"), "{err}");
    let err = git.diff(false, &["/etc/passwd".into()]).await.unwrap_err();
    assert!(err.to_string().contains("outside the workspace"), "{err}");
}

#[tokio::test]
async fn git_tools_through_json() {
    let dir = repo();
    let p = dir.path();
    let ws = Workspace::new(p).unwrap();
    let tools = Git::for_workspace(&ws).tools();
    let names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    assert_eq!(
        names,
        [
            "git_status",
            "git_diff",
            "git_add",
            "git_commit",
            "git_branch"
        ]
    );
    for t in &tools {
        assert_eq!(t.parameters()["type"], "object", "{}", t.name());
    }
    assert_eq!(
        call(&tools, "git_diff", json!({})).await.unwrap(),
        "[diff: nothing]\n"
    );
    ws.write_file("c.txt", "c\n").unwrap();
    assert_eq!(
        call(&tools, "git_add", json!({"paths": ["c.txt"]}))
            .await
            .unwrap(),
        "## main\nA  c.txt\n"
    );
    let err = call(&tools, "git_commit", json!({"message": "add c"}))
        .await
        .unwrap_err();
    assert!(err.contains("not a Conventional Commits message"), "{err}");
    let out = call(&tools, "git_commit", json!({"message": "feat: add c"}))
        .await
        .unwrap();
    assert!(out.starts_with("committed "), "{out}");
    assert_eq!(
        call(&tools, "git_status", json!({})).await.unwrap(),
        "## main\n"
    );
}
