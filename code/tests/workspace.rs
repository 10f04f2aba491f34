#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Workspace tools through the public API: reading, listing, searching, editing and patching
//! files, confinement to the root, result sizes, and the tools as `miyabi::Tool`s.

use std::fs;

use miyabi::{Tool, ToolContext};
use miyabi_code::workspace::{GrepOptions, Todo, TodoStatus};
use miyabi_code::{Limits, Workspace, WorkspaceError};
use serde_json::json;

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    fs::create_dir_all(p.join("src/nested")).unwrap();
    fs::create_dir_all(p.join("target")).unwrap();
    fs::create_dir_all(p.join(".git")).unwrap();
    fs::write(p.join(".gitignore"), "target/\n*.log\n").unwrap();
    fs::write(
        p.join("src/main.rs"),
        "fn main() {\n    let answer = 42;\n    println!(\"{answer}\");\n}\n",
    )
    .unwrap();
    fs::write(
        p.join("src/nested/lib.rs"),
        "pub fn helper() -> u32 {\n    42\n}\n",
    )
    .unwrap();
    fs::write(p.join("src/app.ts"), "export const answer = 42;\n").unwrap();
    fs::write(p.join("target/out.rs"), "fn generated() { 42 }\n").unwrap();
    fs::write(p.join("debug.log"), "answer 42\n").unwrap();
    fs::write(p.join(".git/config"), "[core]\n").unwrap();
    fs::write(p.join("README.md"), "# demo\n").unwrap();
    dir
}

fn tool(ws: &Workspace, name: &str) -> std::sync::Arc<dyn Tool> {
    ws.tools()
        .into_iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("no tool {name}"))
}

async fn call(ws: &Workspace, name: &str, args: serde_json::Value) -> Result<String, String> {
    let t = tool(ws, name);
    t.call(&ToolContext::detached("test", "call-1"), args)
        .await
        .map(|v| v.as_str().unwrap().to_owned())
        .map_err(|e| e.to_string())
}

#[test]
fn read_file_numbers_lines_and_takes_ranges() {
    let dir = tree();
    let ws = Workspace::new(dir.path()).unwrap();
    let all = ws.read_file("src/main.rs", None, None).unwrap();
    assert_eq!(
        all,
        "     1\tfn main() {\n     2\t    let answer = 42;\n     3\t    println!(\"{answer}\");\n     4\t}\n"
    );
    let part = ws.read_file("src/main.rs", Some(2), Some(2)).unwrap();
    assert!(
        part.starts_with("     2\t    let answer = 42;\n     3\t"),
        "{part}"
    );
    assert!(
        part.contains("[showed lines 2-3 of 4; read on with offset=4]"),
        "{part}"
    );
    // Hostile ranges do not overflow.
    let tail = ws
        .read_file("src/main.rs", Some(4), Some(usize::MAX))
        .unwrap();
    assert_eq!(tail, "     4\t}\n[showed lines 4-4 of 4]\n");
    let far = ws
        .read_file("src/main.rs", Some(usize::MAX), Some(usize::MAX))
        .unwrap();
    assert!(far.contains("is past its end"), "{far}");
    let past = ws.read_file("src/main.rs", Some(10), None).unwrap();
    assert!(
        past.contains("has 4 lines; offset 10 is past its end"),
        "{past}"
    );
}

#[test]
fn read_file_describes_binary_files_and_cuts_huge_ones() {
    let dir = tree();
    let p = dir.path();
    fs::write(p.join("blob.bin"), [0x89, b'P', b'N', b'G', 0, 1, 2, 3]).unwrap();
    let many: String = (1..=5000).map(|i| format!("line {i}\n")).collect();
    fs::write(p.join("big.txt"), &many).unwrap();
    fs::write(p.join("wide.txt"), "x".repeat(10_000)).unwrap();
    let ws = Workspace::new(p).unwrap();

    let bin = ws.read_file("blob.bin", None, None).unwrap();
    assert_eq!(bin, "[`blob.bin` is a binary file (8 bytes); not shown]");

    let big = ws.read_file("big.txt", None, None).unwrap();
    assert_eq!(big.lines().filter(|l| l.contains("\tline ")).count(), 2000);
    assert!(
        big.ends_with("[showed lines 1-2000 of 5000; read on with offset=2001]\n"),
        "{}",
        &big[big.len() - 100..]
    );

    let wide = ws.read_file("wide.txt", None, None).unwrap();
    assert!(
        wide.contains("… [8000 more characters]"),
        "{}",
        &wide[wide.len() - 80..]
    );

    let small = Workspace::with_limits(p, Limits::new().output_bytes(1000)).unwrap();
    let capped = small.read_file("big.txt", None, None).unwrap();
    assert!(capped.len() < 1200, "{}", capped.len());
    assert!(
        capped.contains("(output capped at 1000 bytes); read on with offset="),
        "{capped}"
    );
}

#[test]
fn read_file_streams_files_too_large_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let line = format!("{}\n", "y".repeat(99));
    let huge = line.repeat(100_000); // 10 MB, above the whole-file threshold
    fs::write(dir.path().join("huge.txt"), huge).unwrap();
    let ws = Workspace::new(dir.path()).unwrap();
    let out = ws.read_file("huge.txt", Some(99_999), Some(5)).unwrap();
    assert!(out.starts_with(" 99999\tyyyy"), "{}", &out[..40]);
    assert!(out.contains("100000\t"), "{out}");
    assert!(out.contains("too large to count its lines"), "{out}");
}

#[test]
fn paths_are_confined_to_the_root() {
    let dir = tree();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret.txt"), "secret\n").unwrap();
    let p = dir.path();
    std::os::unix::fs::symlink(outside.path(), p.join("out_dir")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), p.join("out_file")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("nope.txt"), p.join("dangling")).unwrap();
    std::os::unix::fs::symlink(p.join(".git"), p.join("gitlink")).unwrap();
    std::os::unix::fs::symlink(p.join("src"), p.join("src_link")).unwrap();
    let ws = Workspace::new(p).unwrap();

    let err = ws.read_file("../x", None, None).unwrap_err();
    assert!(matches!(err, WorkspaceError::ParentDir { .. }), "{err}");
    let err = ws.read_file("src/../../x", None, None).unwrap_err();
    assert!(err.to_string().contains("contains `..`"), "{err}");
    let err = ws.read_file("/etc/passwd", None, None).unwrap_err();
    assert!(matches!(err, WorkspaceError::Outside { .. }), "{err}");
    let err = ws.read_file("out_file", None, None).unwrap_err();
    assert!(
        matches!(err, WorkspaceError::SymlinkOutside { .. }),
        "{err}"
    );
    let err = ws.read_file("out_dir/secret.txt", None, None).unwrap_err();
    assert!(
        matches!(err, WorkspaceError::SymlinkOutside { .. }),
        "{err}"
    );
    let err = ws.write_file("out_dir/new.txt", "x").unwrap_err();
    assert!(
        matches!(err, WorkspaceError::SymlinkOutside { .. }),
        "{err}"
    );
    assert!(!outside.path().join("new.txt").exists());
    let err = ws.write_file("dangling", "x").unwrap_err();
    assert!(
        matches!(err, WorkspaceError::SymlinkOutside { .. }),
        "{err}"
    );
    assert!(!outside.path().join("nope.txt").exists());
    let err = ws.list_dir("out_dir", None).unwrap_err();
    assert!(
        matches!(err, WorkspaceError::SymlinkOutside { .. }),
        "{err}"
    );

    let err = ws.write_file(".git/config", "x").unwrap_err();
    assert!(matches!(err, WorkspaceError::GitDir { .. }), "{err}");
    let err = ws.write_file("gitlink/hooks/pre-commit", "x").unwrap_err();
    assert!(matches!(err, WorkspaceError::GitDir { .. }), "{err}");
    let err = ws.edit(".git/config", "[core]", "[x]", false).unwrap_err();
    assert!(matches!(err, WorkspaceError::GitDir { .. }), "{err}");
    assert_eq!(
        fs::read_to_string(p.join(".git/config")).unwrap(),
        "[core]\n"
    );
    assert!(!p.join(".git/hooks").exists());

    // Inside the root: absolute paths under it, and links that stay inside, are fine.
    let abs = p.join("src/main.rs");
    assert!(
        ws.read_file(abs.to_str().unwrap(), Some(1), Some(1))
            .unwrap()
            .starts_with("     1\tfn main")
    );
    assert!(
        ws.read_file("src_link/app.ts", None, None)
            .unwrap()
            .contains("answer")
    );
    // Reading git's files is allowed; only writes are refused.
    assert!(
        ws.read_file(".git/config", None, None)
            .unwrap()
            .contains("[core]")
    );
}

#[tokio::test]
async fn confinement_errors_reach_the_model_through_the_tools() {
    let dir = tree();
    let ws = Workspace::new(dir.path()).unwrap();
    let err = call(
        &ws,
        "write_file",
        json!({"path": "../escape.txt", "content": "x"}),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("tool `write_file` failed: `../escape.txt` contains `..`"),
        "{err}"
    );
    assert!(!dir.path().parent().unwrap().join("escape.txt").exists());
    let err = call(
        &ws,
        "apply_patch",
        json!({"patch": "--- /dev/null\n+++ b/.git/hooks/post-checkout\n@@ -0,0 +1 @@\n+evil\n"}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("inside `.git`"), "{err}");
    assert!(!dir.path().join(".git/hooks").exists());
}

#[test]
fn list_dir_respects_gitignore_and_hides_git() {
    let dir = tree();
    let ws = Workspace::new(dir.path()).unwrap();
    let out = ws.list_dir(".", None).unwrap();
    assert_eq!(out, ".gitignore\nREADME.md\nsrc/\n");
    let deep = ws.list_dir("", Some(3)).unwrap();
    assert!(deep.contains("src/nested/lib.rs\n"), "{deep}");
    assert!(!deep.contains("target"), "{deep}");
    let err = ws.list_dir("README.md", None).unwrap_err();
    assert!(matches!(err, WorkspaceError::NotDirectory { .. }));
}

#[tokio::test]
async fn glob_matches_names_at_any_depth_and_paths() {
    let dir = tree();
    let ws = Workspace::new(dir.path()).unwrap();
    assert_eq!(
        ws.glob("*.rs", None).await.unwrap(),
        "src/main.rs\nsrc/nested/lib.rs\n"
    );
    assert_eq!(
        ws.glob("src/*/*.rs", None).await.unwrap(),
        "src/nested/lib.rs\n"
    );
    assert_eq!(
        ws.glob("*.{ts,md}", None).await.unwrap(),
        "README.md\nsrc/app.ts\n"
    );
    assert_eq!(
        ws.glob("*.py", None).await.unwrap(),
        "[no paths match `*.py`]\n"
    );
    assert!(ws.glob("[", None).await.is_err());
}

#[tokio::test]
async fn grep_finds_matches_with_context_and_respects_gitignore() {
    let dir = tree();
    let ws = Workspace::new(dir.path()).unwrap();
    let out = ws.grep("42", &GrepOptions::new()).await.unwrap();
    assert_eq!(
        out,
        "src/app.ts:1:export const answer = 42;\n--\nsrc/main.rs:2:    let answer = 42;\n--\nsrc/nested/lib.rs:2:    42\n"
    );
    let ctx = ws
        .grep(r"let \w+ =", &GrepOptions::new().context(1))
        .await
        .unwrap();
    assert_eq!(
        ctx,
        "src/main.rs-1-fn main() {\nsrc/main.rs:2:    let answer = 42;\nsrc/main.rs-3-    println!(\"{answer}\");\n"
    );
    let only = ws
        .grep(
            "ANSWER",
            &GrepOptions::new().ignore_case(true).files_only(true),
        )
        .await
        .unwrap();
    assert_eq!(only, "src/app.ts\nsrc/main.rs\n");
    let globbed = ws
        .grep("42", &GrepOptions::new().glob("*.ts"))
        .await
        .unwrap();
    assert_eq!(globbed, "src/app.ts:1:export const answer = 42;\n");
    let all = ws
        .grep("42", &GrepOptions::new().no_ignore(true).files_only(true))
        .await
        .unwrap();
    assert!(
        all.contains("target/out.rs") && all.contains("debug.log"),
        "{all}"
    );
    assert_eq!(
        ws.grep("nothing-like-this", &GrepOptions::new())
            .await
            .unwrap(),
        "[no matches]\n"
    );
    let err = ws.grep("(unclosed", &GrepOptions::new()).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::BadPattern { .. }), "{err}");
}

#[tokio::test]
async fn grep_results_are_capped_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..30 {
        let body: String = (0..20).map(|j| format!("needle {i} {j}\n")).collect();
        fs::write(dir.path().join(format!("f{i:02}.txt")), body).unwrap();
    }
    let ws = Workspace::with_limits(dir.path(), Limits::new().matches(50)).unwrap();
    let out = ws.grep("needle", &GrepOptions::new()).await.unwrap();
    assert_eq!(out.lines().filter(|l| l.contains(":needle")).count(), 50);
    assert!(out.ends_with("[showed 50 of 600 matching lines in 30 files; narrow the pattern, the path or the glob to see the rest]\n"), "{out}");
    assert!(out.starts_with("f00.txt:1:needle 0 0\n"), "{out}");
}

#[tokio::test]
async fn listings_are_capped_by_count_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..50 {
        fs::write(
            dir.path().join(format!("{}{i:02}.txt", "n".repeat(40))),
            "x",
        )
        .unwrap();
    }
    let by_count = Workspace::with_limits(dir.path(), Limits::new().entries(10)).unwrap();
    let out = by_count.list_dir(".", None).unwrap();
    assert_eq!(out.lines().count(), 11);
    assert!(
        out.ends_with("[40 more entries not shown; list a subdirectory or use glob]\n"),
        "{out}"
    );
    let out = by_count.glob("*.txt", None).await.unwrap();
    assert!(
        out.ends_with("[40 more paths not shown; narrow the pattern or the directory]\n"),
        "{out}"
    );
    let by_bytes = Workspace::with_limits(dir.path(), Limits::new().output_bytes(470)).unwrap();
    let out = by_bytes.list_dir(".", None).unwrap();
    assert_eq!(out.lines().count(), 11, "{out}");
    assert!(
        out.ends_with("[40 more entries not shown; list a subdirectory or use glob]\n"),
        "{out}"
    );
    let out = by_bytes.glob("*.txt", None).await.unwrap();
    assert!(
        out.ends_with("[40 more paths not shown; narrow the pattern or the directory]\n"),
        "{out}"
    );
}

#[test]
fn write_file_creates_directories() {
    let dir = tree();
    let ws = Workspace::new(dir.path()).unwrap();
    let msg = ws.write_file("new/deep/file.txt", "a\nb\n").unwrap();
    assert_eq!(msg, "created `new/deep/file.txt` (4 bytes, 2 lines)");
    assert_eq!(
        fs::read_to_string(dir.path().join("new/deep/file.txt")).unwrap(),
        "a\nb\n"
    );
    let msg = ws.write_file("new/deep/file.txt", "c\n").unwrap();
    assert!(msg.starts_with("replaced"), "{msg}");
    assert!(matches!(
        ws.write_file("src", "x").unwrap_err(),
        WorkspaceError::IsDirectory { .. }
    ));
}

#[test]
fn edit_replaces_exactly_one_match_and_returns_a_diff() {
    let dir = tree();
    let p = dir.path();
    fs::write(p.join("dup.txt"), "a\nsame\nb\nsame\n").unwrap();
    let ws = Workspace::new(p).unwrap();

    let o = ws
        .edit("src/main.rs", "let answer = 42;", "let answer = 43;", false)
        .unwrap();
    assert_eq!(o.replacements, 1);
    assert_eq!(
        o.diff,
        "--- a/src/main.rs\n+++ b/src/main.rs\n@@ -1,4 +1,4 @@\n fn main() {\n-    let answer = 42;\n+    let answer = 43;\n     println!(\"{answer}\");\n }\n"
    );
    assert!(
        fs::read_to_string(p.join("src/main.rs"))
            .unwrap()
            .contains("43")
    );

    let err = ws.edit("src/main.rs", "not there", "x", false).unwrap_err();
    assert!(matches!(err, WorkspaceError::NoMatch { .. }), "{err}");
    let err = ws.edit("dup.txt", "same", "other", false).unwrap_err();
    assert_eq!(
        err,
        WorkspaceError::ManyMatches {
            path: "dup.txt".into(),
            count: 2
        }
    );
    assert_eq!(
        fs::read_to_string(p.join("dup.txt")).unwrap(),
        "a\nsame\nb\nsame\n"
    );
    let o = ws.edit("dup.txt", "same", "other", true).unwrap();
    assert_eq!(o.replacements, 2);
    assert_eq!(
        fs::read_to_string(p.join("dup.txt")).unwrap(),
        "a\nother\nb\nother\n"
    );
    assert!(matches!(
        ws.edit("missing.txt", "a", "b", false).unwrap_err(),
        WorkspaceError::NotFound { .. }
    ));
    assert!(matches!(
        ws.edit("dup.txt", "", "b", false).unwrap_err(),
        WorkspaceError::BadEdit { .. }
    ));
}

#[tokio::test]
async fn edit_tool_returns_the_diff_to_the_model() {
    let dir = tree();
    let ws = Workspace::new(dir.path()).unwrap();
    let out = call(
        &ws,
        "edit",
        json!({"path": "src/app.ts", "old_string": "42", "new_string": "7"}),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "edited `src/app.ts` (1 replacement)\n--- a/src/app.ts\n+++ b/src/app.ts\n@@ -1 +1 @@\n-export const answer = 42;\n+export const answer = 7;\n"
    );
}

#[test]
fn apply_patch_changes_several_files_or_none() {
    let dir = tree();
    let p = dir.path();
    let ws = Workspace::new(p).unwrap();
    let patch = "\
--- a/src/main.rs
+++ b/src/main.rs
@@ -1,3 +1,3 @@
 fn main() {
-    let answer = 42;
+    let answer = 41 + 1;
     println!(\"{answer}\");
--- a/src/app.ts
+++ b/src/app.ts
@@ -1 +1,2 @@
 export const answer = 42;
+export const question = \"?\";
--- /dev/null
+++ b/docs/new.md
@@ -0,0 +1,2 @@
+# New
+text
--- a/README.md
+++ /dev/null
@@ -1 +0,0 @@
-# demo
";
    let o = ws.apply_patch(patch).unwrap();
    assert_eq!(
        o.changes,
        vec![
            "modified src/main.rs",
            "modified src/app.ts",
            "created docs/new.md",
            "deleted README.md"
        ]
    );
    assert!(
        fs::read_to_string(p.join("src/main.rs"))
            .unwrap()
            .contains("41 + 1")
    );
    assert_eq!(
        fs::read_to_string(p.join("src/app.ts")).unwrap(),
        "export const answer = 42;\nexport const question = \"?\";\n"
    );
    assert_eq!(
        fs::read_to_string(p.join("docs/new.md")).unwrap(),
        "# New\ntext\n"
    );
    assert!(!p.join("README.md").exists());

    // The second file's hunk does not match: the first file is not written either.
    let bad = "\
--- a/src/main.rs
+++ b/src/main.rs
@@ -1 +1 @@
-fn main() {
+fn start() {
--- a/src/app.ts
+++ b/src/app.ts
@@ -1 +1 @@
-export const nothing = 0;
+export const something = 1;
";
    let before = fs::read_to_string(p.join("src/main.rs")).unwrap();
    let err = ws.apply_patch(bad).unwrap_err();
    assert!(
        matches!(err, WorkspaceError::PatchRejected { ref path, .. } if path == "src/app.ts"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(p.join("src/main.rs")).unwrap(), before);

    let err = ws.apply_patch("just some text\n").unwrap_err();
    assert!(matches!(err, WorkspaceError::BadPatch { .. }), "{err}");
    let err = ws
        .apply_patch("--- a/../x\n+++ b/../x\n@@ -1 +1 @@\n-a\n+b\n")
        .unwrap_err();
    assert!(matches!(err, WorkspaceError::ParentDir { .. }), "{err}");
}

#[test]
fn apply_patch_reads_git_diffs_with_renames_and_refuses_mixed_headers() {
    let dir = tree();
    let p = dir.path();
    let ws = Workspace::new(p).unwrap();
    let patch = "\
diff --git a/src/app.ts b/src/renamed.ts
similarity index 50%
rename from src/app.ts
rename to src/renamed.ts
--- a/src/app.ts
+++ b/src/renamed.ts
@@ -1 +1 @@
-export const answer = 42;
+export const answer = 43;
diff --git a/README.md b/README.md
--- a/README.md
+++ b/README.md
@@ -1 +1,2 @@
 # demo
+more
";
    let o = ws.apply_patch(patch).unwrap();
    assert_eq!(
        o.changes,
        vec!["renamed src/app.ts -> src/renamed.ts", "modified README.md"]
    );
    assert!(!p.join("src/app.ts").exists());
    assert_eq!(
        fs::read_to_string(p.join("src/renamed.ts")).unwrap(),
        "export const answer = 43;\n"
    );
    assert_eq!(
        fs::read_to_string(p.join("README.md")).unwrap(),
        "# demo\nmore\n"
    );

    let mixed = "\
diff --git a/README.md b/README.md
--- a/README.md
+++ b/README.md
@@ -1 +1 @@
-# demo
+# Demo
--- a/src/main.rs
+++ b/src/main.rs
@@ -1 +1 @@
-fn main() {
+fn start() {
";
    let err = ws.apply_patch(mixed).unwrap_err();
    assert!(
        err.to_string()
            .contains("2 `---`/`+++` file headers but only 1"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(p.join("README.md")).unwrap(),
        "# demo\nmore\n"
    );
}

#[test]
fn apply_patch_tolerates_wrong_line_numbers_but_not_wrong_context() {
    let dir = tempfile::tempdir().unwrap();
    let body: String = (1..=30).map(|i| format!("l{i}\n")).collect();
    fs::write(dir.path().join("f.txt"), &body).unwrap();
    let ws = Workspace::new(dir.path()).unwrap();
    // The hunk says line 2 but its context is at line 20.
    ws.apply_patch("--- a/f.txt\n+++ b/f.txt\n@@ -2,3 +2,3 @@\n l19\n-l20\n+twenty\n l21\n")
        .unwrap();
    let text = fs::read_to_string(dir.path().join("f.txt")).unwrap();
    assert!(text.contains("l19\ntwenty\nl21\n"), "{text}");
    assert!(
        ws.apply_patch("--- a/f.txt\n+++ b/f.txt\n@@ -2,3 +2,3 @@\n l19\n-l20\n+twenty\n l21\n")
            .is_err()
    );
}

#[tokio::test]
async fn todo_list_is_kept_and_validated() {
    let dir = tree();
    let ws = Workspace::new(dir.path()).unwrap();
    let out = call(
        &ws,
        "todo",
        json!({"todos": [
            {"content": "Find the failing test", "status": "completed"},
            {"content": "Fix it", "status": "in_progress"},
            {"content": "Commit", "status": "pending"}
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "todo list (1/3 done):\n1. [x] Find the failing test\n2. [~] Fix it\n3. [ ] Commit\n"
    );
    assert_eq!(call(&ws, "todo", json!({})).await.unwrap(), out);
    assert_eq!(
        ws.todos()[1],
        Todo {
            content: "Fix it".into(),
            status: TodoStatus::InProgress
        }
    );
    let err = call(
        &ws,
        "todo",
        json!({"todos": [
            {"content": "a", "status": "in_progress"}, {"content": "b", "status": "in_progress"}
        ]}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("2 items are in_progress"), "{err}");
    assert_eq!(ws.todos().len(), 3);
}

#[tokio::test]
async fn every_tool_has_an_object_schema_and_reads_through_json() {
    let dir = tree();
    let ws = Workspace::new(dir.path()).unwrap();
    let names: Vec<String> = ws.tools().iter().map(|t| t.name().to_owned()).collect();
    assert_eq!(
        names,
        [
            "read_file",
            "list_dir",
            "glob",
            "grep",
            "write_file",
            "edit",
            "apply_patch",
            "todo"
        ]
    );
    for t in ws.tools() {
        assert_eq!(t.parameters()["type"], "object", "{}", t.name());
        assert!(!t.description().is_empty());
    }
    let ro: Vec<String> = ws
        .read_only_tools()
        .iter()
        .map(|t| t.name().to_owned())
        .collect();
    assert_eq!(ro, ["read_file", "list_dir", "glob", "grep", "todo"]);
    let out = call(
        &ws,
        "read_file",
        json!({"path": "src/nested/lib.rs", "offset": 2, "limit": 1}),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "     2\t    42\n[showed lines 2-2 of 3; read on with offset=3]\n"
    );
    let out = call(&ws, "grep", json!({"pattern": "helper", "context": 1}))
        .await
        .unwrap();
    assert_eq!(
        out,
        "src/nested/lib.rs:1:pub fn helper() -> u32 {\nsrc/nested/lib.rs-2-    42\n"
    );
    let out = call(&ws, "glob", json!({"pattern": "**/*.ts"}))
        .await
        .unwrap();
    assert_eq!(out, "src/app.ts\n");
    let out = call(&ws, "list_dir", json!({"path": "src"})).await.unwrap();
    assert_eq!(out, "app.ts\nmain.rs\nnested/\n");
}

#[test]
fn undo_takes_back_each_edit_newest_first() {
    let dir = tree();
    let ws = Workspace::new(dir.path()).unwrap();
    let main_before = fs::read_to_string(dir.path().join("src/main.rs")).unwrap();
    let readme_before = fs::read_to_string(dir.path().join("README.md")).unwrap();
    assert_eq!(ws.undo().unwrap(), None, "nothing yet");

    ws.edit(
        "src/main.rs",
        "let answer = 42;",
        "let answer = 41 + 1;",
        false,
    )
    .unwrap();
    ws.write_file("notes/new.txt", "hello\n").unwrap();
    // One patch: a modification, a new file and a deletion, undone together.
    ws.apply_patch(
        "--- a/src/main.rs\n+++ b/src/main.rs\n@@ -1,3 +1,3 @@\n fn main() {\n-    let answer = 41 + 1;\n+    let answer = 40 + 2;\n     println!(\"{answer}\");\n--- /dev/null\n+++ b/docs/new.md\n@@ -0,0 +1 @@\n+# New\n--- a/README.md\n+++ /dev/null\n@@ -1 +0,0 @@\n-# demo\n",
    )
    .unwrap();
    assert!(!dir.path().join("README.md").exists());

    let u = ws.undo().unwrap().unwrap();
    assert!(u.what.starts_with("apply_patch"), "{u:?}");
    assert_eq!(u.files, ["src/main.rs", "docs/new.md", "README.md"]);
    assert_eq!(
        fs::read_to_string(dir.path().join("README.md")).unwrap(),
        readme_before
    );
    assert!(!dir.path().join("docs/new.md").exists());
    assert!(
        fs::read_to_string(dir.path().join("src/main.rs"))
            .unwrap()
            .contains("41 + 1")
    );

    let u = ws.undo().unwrap().unwrap();
    assert_eq!(u.files, ["notes/new.txt"]);
    assert!(!dir.path().join("notes/new.txt").exists());

    let u = ws.undo().unwrap().unwrap();
    assert_eq!(u.what, "edit src/main.rs");
    assert_eq!(
        fs::read_to_string(dir.path().join("src/main.rs")).unwrap(),
        main_before
    );
    assert_eq!(ws.undo().unwrap(), None);
}
