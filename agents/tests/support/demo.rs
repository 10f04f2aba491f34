//! The demo repository (a failing test and an issue; `agents/demo/make-repo.sh`) with a bare
//! repository as `origin`, and the demo's replay script, for pipeline tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

pub struct Demo {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub origin: PathBuf,
    pub deploy: PathBuf,
    pub db: PathBuf,
}

impl Demo {
    /// A file of the branch pushed to `origin`.
    pub fn pushed(&self, branch: &str, file: &str) -> String {
        git(&self.origin, &["show", &format!("{branch}:{file}")])
    }
}

pub fn setup() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let (repo, deploy) = (dir.path().join("repo"), dir.path().join("deploy"));
    let ok = Command::new("sh")
        .arg(root().join("demo/make-repo.sh"))
        .arg(&repo)
        .arg(&deploy)
        .status()
        .unwrap();
    assert!(ok.success());
    let origin = dir.path().join("origin.git");
    git(
        dir.path(),
        &["init", "-q", "--bare", origin.to_str().unwrap()],
    );
    git(
        &repo,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(&repo, &["push", "-q", "origin", "main"]);
    Demo {
        db: dir.path().join("runs.db"),
        dir,
        repo,
        origin,
        deploy,
    }
}

/// The demo's replay script as JSON (edit it, then deserialize it into a `Script`).
pub fn script() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("demo/replay.json")).unwrap())
        .unwrap()
}
