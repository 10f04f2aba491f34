#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Worktrees for parallel children, through the public workflow API: isolation, the merge
//! report, cleanup on completion, failure, cancellation and suspension, and the start-up sweep
//! after a SIGKILL (the child process is this test binary re-run with `--ignored --exact
//! helper_process::child_worker`).

use std::fs;
use std::io::BufRead as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use miyabi::{CommittedWorkflow, Engine, RunStatus, StepContext, StepError, Workflow};
use miyabi_code::Worktrees;
use miyabi_code::git::{MergeReport, Worktree};
use serde_json::{Value, json};

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

fn repo(at: &Path) -> PathBuf {
    let p = at.join("repo");
    fs::create_dir_all(&p).unwrap();
    sh(&p, &["init", "-q", "-b", "main"]);
    sh(&p, &["config", "user.name", "Test"]);
    sh(&p, &["config", "user.email", "test@example.com"]);
    fs::write(p.join("shared.txt"), "base\n").unwrap();
    sh(&p, &["add", "-A"]);
    sh(&p, &["commit", "-q", "-m", "chore: start"]);
    p
}

/// The worktrees git knows besides the main checkout.
fn extra_worktrees(repo: &Path) -> Vec<String> {
    sh(repo, &["worktree", "list", "--porcelain"])
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .filter(|p| Path::new(p) != fs::canonicalize(repo).unwrap())
        .map(str::to_owned)
        .collect()
}

fn fatal(e: impl std::fmt::Display) -> StepError {
    StepError::fatal(e.to_string())
}

/// Three children each write their own `shared.txt`, wait until all three have written, then
/// check they still see their own (and the main checkout the original); then a merge.
fn three_writers(trees: &Worktrees, barrier: Arc<tokio::sync::Barrier>) -> CommittedWorkflow {
    let child = |trees: &Worktrees| {
        let barrier = Arc::clone(&barrier);
        let main = trees.repo().to_path_buf();
        trees.step(move |ctx: StepContext, wt: Worktree, _input: Value| {
            let barrier = Arc::clone(&barrier);
            let main = main.clone();
            async move {
                let ws = wt.workspace().map_err(fatal)?;
                let mine = format!("written by {}\n", ctx.path());
                ws.write_file("shared.txt", &mine).map_err(fatal)?;
                barrier.wait().await;
                let seen = fs::read_to_string(wt.dir().join("shared.txt")).map_err(fatal)?;
                let main_seen = fs::read_to_string(main.join("shared.txt")).map_err(fatal)?;
                Ok(json!({"mine": seen == mine, "main": main_seen, "dir": wt.dir()}))
            }
        })
    };
    Workflow::new("three-writers")
        .parallel([
            ("a", child(trees)),
            ("b", child(trees)),
            ("c", child(trees)),
        ])
        .step("merge", trees.merge_step())
        .commit()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_children_are_isolated_and_the_merge_reports_the_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let trees = Worktrees::new(&repo).unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(3));

    // Outputs of the children are checked through the run's step records.
    let wf = three_writers(&trees, barrier);
    let run = engine.start(&wf, json!({})).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let steps = engine.store().steps(&run.id).unwrap();
    let mut dirs = Vec::new();
    for id in ["a", "b", "c"] {
        let rec = steps.iter().find(|s| &*s.path == id).unwrap();
        let out = rec.output.as_deref().unwrap();
        assert_eq!(
            out["output"]["mine"], true,
            "{id} saw another child's change: {out}"
        );
        assert_eq!(
            out["output"]["main"], "base\n",
            "{id}: the main checkout changed"
        );
        assert_eq!(out["files"], json!(["shared.txt"]));
        assert!(out["commit"].is_string());
        dirs.push(out["output"]["dir"].as_str().unwrap().to_owned());
    }
    dirs.sort();
    dirs.dedup();
    assert_eq!(dirs.len(), 3, "children shared a worktree: {dirs:?}");

    let report: MergeReport = serde_json::from_value(run.output.unwrap()).unwrap();
    assert_eq!(report.merged, ["a"]);
    let conflicted: Vec<(&str, &[String])> = report
        .conflicts
        .iter()
        .map(|c| (c.path.as_str(), c.files.as_slice()))
        .collect();
    assert_eq!(
        conflicted,
        [
            ("b", &["shared.txt".to_owned()][..]),
            ("c", &["shared.txt".to_owned()][..])
        ]
    );
    assert_eq!(
        sh(&repo, &["show", &format!("{}:shared.txt", report.branch)]),
        "written by a\n"
    );
    // Cleaned up on completion; the main checkout is untouched.
    assert_eq!(extra_worktrees(&repo), Vec::<String>::new());
    assert!(trees.list().unwrap().is_empty());
    assert_eq!(
        fs::read_to_string(repo.join("shared.txt")).unwrap(),
        "base\n"
    );
    assert_eq!(sh(&repo, &["status", "--porcelain"]), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreach_children_merge_without_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let trees = Worktrees::new(&repo).unwrap();
    let engine = Engine::in_memory();
    let body = trees.step(|_ctx: StepContext, wt: Worktree, item: Value| async move {
        let name = item.as_str().unwrap_or("none").to_owned();
        let ws = wt.workspace().map_err(fatal)?;
        if name != "skip" {
            ws.write_file(&format!("{name}.txt"), &format!("{name}\n"))
                .map_err(fatal)?;
        }
        Ok(json!(name))
    });
    let wf = Workflow::new("fan-out")
        .foreach("each", body, 2)
        .step("merge", trees.merge_step())
        .commit()
        .unwrap();
    let run = engine
        .start(&wf, json!(["x", "y", "skip", "z"]))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let report: MergeReport = serde_json::from_value(run.output.unwrap()).unwrap();
    assert_eq!(report.merged, ["each[0]", "each[1]", "each[3]"]);
    assert_eq!(report.unchanged, ["each[2]"]);
    assert!(report.conflicts.is_empty());
    let files = sh(&repo, &["ls-tree", "--name-only", &report.branch]);
    assert_eq!(files, "shared.txt\nx.txt\ny.txt\nz.txt\n");
    assert_eq!(extra_worktrees(&repo), Vec::<String>::new());
    // The child that changed nothing has no branch left.
    let branches = sh(&repo, &["branch", "--list", "miyabi/*"]);
    assert_eq!(branches.lines().count(), 4, "{branches}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_cancelled_children_leave_no_worktree() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let trees = Worktrees::new(&repo).unwrap();
    let engine = Engine::in_memory();

    let failing = trees.step(|_ctx: StepContext, wt: Worktree, _: Value| async move {
        fs::write(wt.dir().join("junk.txt"), "junk").map_err(fatal)?;
        Err::<Value, _>(StepError::fatal("the child gave up"))
    });
    let wf = Workflow::new("failing")
        .step("child", failing)
        .commit()
        .unwrap();
    let run = engine.start(&wf, json!({})).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.unwrap().contains("the child gave up"));
    assert_eq!(extra_worktrees(&repo), Vec::<String>::new());
    assert_eq!(sh(&repo, &["branch", "--list", "miyabi/*"]), "");

    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let blocking = trees.step(move |_ctx: StepContext, wt: Worktree, _: Value| {
        let ready = ready_tx.clone();
        async move {
            let _ = ready.send(wt.dir().to_path_buf());
            std::future::pending::<()>().await;
            Ok(json!(null))
        }
    });
    let wf = Workflow::new("blocking")
        .step("child", blocking)
        .commit()
        .unwrap();
    let handle = engine.spawn(&wf, json!({})).unwrap();
    let run_id = handle.id().to_owned();
    let wt_dir = ready_rx.recv().await.unwrap();
    assert!(wt_dir.join(".git").exists());
    assert_eq!(trees.list().unwrap().len(), 1);
    assert_eq!(trees.list().unwrap()[0].run_id, run_id);
    let run = engine.cancel(&run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    handle.wait().await.unwrap();
    assert!(
        !wt_dir.exists(),
        "the cancelled child's worktree is still there"
    );
    assert_eq!(extra_worktrees(&repo), Vec::<String>::new());
    assert!(trees.list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_child_keeps_its_worktree_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let trees = Worktrees::new(&repo).unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let child = trees.step(|ctx: StepContext, wt: Worktree, _: Value| async move {
        let ws = wt.workspace().map_err(fatal)?;
        match ctx.resume_data() {
            None => {
                ws.write_file("draft.txt", "draft\n").map_err(fatal)?;
                ctx.suspend(json!({"ask": "keep the draft?"}))
            }
            Some(answer) => {
                let draft = ws.read_file("draft.txt", None, None).map_err(fatal)?;
                ws.write_file("final.txt", answer.as_str().unwrap_or(""))
                    .map_err(fatal)?;
                Ok(json!(draft))
            }
        }
    });
    let wf = Workflow::new("suspending")
        .step("child", child)
        .commit()
        .unwrap();
    let run = engine.start(&wf, json!({})).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    assert_eq!(extra_worktrees(&repo).len(), 1);
    // The sweep keeps a suspended run's worktree.
    assert!(trees.cleanup_orphans(&engine).await.unwrap().is_empty());
    let run = engine
        .resume(&run.id, "child", json!("yes\n"))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let out = run.output.unwrap();
    assert_eq!(out["output"], "     1\tdraft\n");
    assert_eq!(out["files"], json!(["draft.txt", "final.txt"]));
    assert_eq!(extra_worktrees(&repo), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// SIGKILL

const WORKER: &str = "MIYABI_WORKTREE_WORKER";
const DB: &str = "MIYABI_WORKTREE_DB";
const REPO: &str = "MIYABI_WORKTREE_REPO";

/// The crash workflow: three children that write `shared.txt`; with `block`, each then says
/// `CHILD-READY` on stdout and waits to be killed.
fn crash_workflow(trees: &Worktrees, block: bool) -> CommittedWorkflow {
    let child = || {
        trees.step(move |ctx: StepContext, wt: Worktree, _: Value| async move {
            let ws = wt.workspace().map_err(fatal)?;
            ws.write_file("shared.txt", &format!("written by {}\n", ctx.path()))
                .map_err(fatal)?;
            if block {
                {
                    use std::io::Write as _;
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "CHILD-READY {}", ctx.path());
                    let _ = out.flush();
                }
                std::future::pending::<()>().await;
            }
            Ok(json!(ctx.path()))
        })
    };
    Workflow::new("crash-writers")
        .parallel([("a", child()), ("b", child()), ("c", child())])
        .step("merge", trees.merge_step())
        .commit()
        .unwrap()
}

mod helper_process {
    use super::*;

    /// Run by `sigkill_leaves_no_stray_worktree_after_recovery` in a child process: starts the
    /// crash workflow and blocks inside its three children until killed. Not a test of its own.
    #[test]
    #[ignore = "helper process entry point"]
    fn child_worker() {
        let Ok(_) = std::env::var(WORKER) else {
            panic!("a helper process entry point, run with {WORKER} set: not a test");
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let engine = Engine::sqlite(std::env::var(DB).unwrap()).unwrap();
            let trees = Worktrees::new(std::env::var(REPO).unwrap()).unwrap();
            let wf = crash_workflow(&trees, true);
            let run = engine.start(&wf, json!({})).await;
            panic!("the children were meant to block until killed, but the run returned {run:?}");
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_leaves_no_stray_worktree_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let db = dir.path().join("runs.db");
    let stderr_path = dir.path().join("worker.stderr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "helper_process::child_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER, "1")
        .env(DB, &db)
        .env(REPO, &repo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(fs::File::create(&stderr_path).unwrap()))
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut ready = 0;
    for line in stdout.lines().map_while(Result::ok) {
        if line.contains("CHILD-READY") {
            ready += 1;
            if ready == 3 {
                break;
            }
        }
    }
    assert_eq!(
        ready,
        3,
        "the worker stopped early; stderr:\n{}",
        fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));

    // The killed process left three worktrees, each registered.
    let trees = Worktrees::new(&repo).unwrap();
    assert_eq!(extra_worktrees(&repo).len(), 3);
    let entries = trees.list().unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["a", "b", "c"]);

    // Start-up: sweep, then recover.
    let engine = Engine::sqlite(&db).unwrap();
    engine.register(&crash_workflow(&trees, false));
    let removed = trees.cleanup_orphans(&engine).await.unwrap();
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(
        removed.iter().all(|r| r.reason.contains("is gone")),
        "{removed:?}"
    );
    assert_eq!(extra_worktrees(&repo), Vec::<String>::new());

    let recovered = engine.recover().await.unwrap();
    assert_eq!(recovered.len(), 1);
    let run = engine.wait(&recovered[0]).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let report: MergeReport = serde_json::from_value(run.output.unwrap()).unwrap();
    assert_eq!(report.merged, ["a"]);
    assert_eq!(report.conflicts.len(), 2);

    assert_eq!(extra_worktrees(&repo), Vec::<String>::new());
    assert!(trees.list().unwrap().is_empty());
    assert!(trees.cleanup_orphans(&engine).await.unwrap().is_empty());
    assert_eq!(sh(&repo, &["status", "--porcelain"]), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_worktrees_of_unknown_and_finished_runs_and_unregistered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path());
    let trees = Worktrees::new(&repo).unwrap();
    let engine = Engine::in_memory();

    // A finished run, and a worktree made for it by hand (as if its cleanup never ran).
    let wf = Workflow::new("noop")
        .step(
            "s",
            miyabi::step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) }),
        )
        .commit()
        .unwrap();
    let done = engine.start(&wf, json!(1)).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let finished = trees.create(&done.id, "s", false).await.unwrap();
    // A run the store does not know.
    let unknown = trees.create("no-such-run", "child", false).await.unwrap();
    fs::write(unknown.dir().join("work.txt"), "unsaved").unwrap();
    // A worktree under the worktree directory with no registry entry.
    let stray = trees.create("another-run", "x", false).await.unwrap();
    let registry = fs::read_dir(repo.join(".git/miyabi/worktrees"))
        .unwrap()
        .count();
    assert_eq!(registry, 3);
    for run in fs::read_dir(repo.join(".git/miyabi/worktrees")).unwrap() {
        let run = run.unwrap().path();
        for f in fs::read_dir(&run).unwrap() {
            let f = f.unwrap().path();
            let text = fs::read_to_string(&f).unwrap();
            if text.contains("another-run") {
                fs::remove_file(&f).unwrap();
            }
        }
    }
    assert_eq!(trees.list().unwrap().len(), 2);
    assert_eq!(extra_worktrees(&repo).len(), 3);

    let mut removed = trees.cleanup_orphans(&engine).await.unwrap();
    removed.sort_by(|a, b| a.dir.cmp(&b.dir));
    let mut reasons: Vec<String> = removed.iter().map(|r| r.reason.clone()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "it has no registry entry",
            "its run does not exist",
            "its run is succeeded"
        ]
    );
    assert!(!finished.dir().exists() && !unknown.dir().exists() && !stray.dir().exists());
    assert_eq!(extra_worktrees(&repo), Vec::<String>::new());
    assert!(trees.list().unwrap().is_empty());
    // Registered worktrees' branches without a commit of their own are deleted with them; the
    // unregistered one's branch is kept (nothing says where it started).
    assert_eq!(
        sh(&repo, &["branch", "--list", "miyabi/*"]).lines().count(),
        1,
        "only the unregistered one's branch is left"
    );
}
