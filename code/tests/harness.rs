#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The benchmark harnesses on data the test builds: five SWE-bench-style instances from tiny git
//! repositories with a bug and tests (Python, JavaScript, Rust) — gold patches resolve all, empty
//! patches none, a run killed mid-way resumes without solving finished instances again, the
//! predictions file is in the official format — and the shell environment's task set, where a
//! scripted oracle scores 100%, a wrong agent 0%, and a model-driven agent follows the protocol.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use miyabi::LanguageModel;
use miyabi::model::{ContentPart, EventStream, FinishReason, ModelRequest, ModelResponse, Usage};
use miyabi_code::harness::osbench::{
    ModelOsAgent, OsAction, OsBench, ScriptedOsAgent, parse_action, sample_oracle, sample_tasks,
};
use miyabi_code::harness::swebench::{
    EmptySolver, GoldSolver, Solver, SweBench, SweInstance, read_instances,
};
use serde_json::{Value, json};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
}

/// A repository with `base` committed; returns (repo, base commit, gold patch, test patch).
fn repo(
    root: &Path,
    name: &str,
    base: &[(&str, &str)],
    fix: &[(&str, &str)],
    tests: &[(&str, &str)],
) -> (PathBuf, String, String, String) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q", "-b", "main"]);
    write(&dir, base);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "base"]);
    let commit = git(&dir, &["rev-parse", "HEAD"]).trim().to_string();
    let diff_of = |files: &[(&str, &str)]| {
        write(&dir, files);
        git(&dir, &["add", "-A"]);
        let d = git(&dir, &["diff", "--cached"]);
        git(&dir, &["reset", "-q", "--hard", &commit]);
        d
    };
    let gold = diff_of(fix);
    let test_patch = if tests.is_empty() {
        String::new()
    } else {
        diff_of(tests)
    };
    (dir, commit, gold, test_patch)
}

/// Five instances: two Python, two JavaScript, one Rust.
fn instances(root: &Path) -> Vec<SweInstance> {
    let mut out = Vec::new();
    let mut push = |id: &str,
                    r: (PathBuf, String, String, String),
                    f2p: &[&str],
                    p2p: &[&str],
                    cmd: String,
                    statement: &str| {
        out.push(SweInstance {
            instance_id: id.into(),
            repo: r.0.to_string_lossy().into_owned(),
            base_commit: r.1,
            problem_statement: statement.into(),
            fail_to_pass: f2p.iter().map(|s| s.to_string()).collect(),
            pass_to_pass: p2p.iter().map(|s| s.to_string()).collect(),
            patch: Some(r.2),
            test_patch: (!r.3.is_empty()).then_some(r.3),
            test_cmd: cmd,
        });
    };
    let py = "python3 -m unittest -q {test}".to_string();
    push(
        "py__calc-1",
        repo(
            root,
            "calc",
            &[
                (
                    "calc.py",
                    "def add(a, b):\n    return a - b\n\n\ndef neg(a):\n    return -a\n",
                ),
                (
                    "test_calc.py",
                    "import unittest\nimport calc\n\n\nclass TestCalc(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(calc.add(2, 3), 5)\n\n    def test_neg(self):\n        self.assertEqual(calc.neg(2), -2)\n",
                ),
            ],
            &[(
                "calc.py",
                "def add(a, b):\n    return a + b\n\n\ndef neg(a):\n    return -a\n",
            )],
            &[],
        ),
        &["test_calc.TestCalc.test_add"],
        &["test_calc.TestCalc.test_neg"],
        py.clone(),
        "add(2, 3) returns -1 instead of 5",
    );
    push(
        "py__text-2",
        repo(
            root,
            "text",
            &[
                (
                    "text.py",
                    "def title(s):\n    return s.lower()\n\n\ndef shout(s):\n    return s.upper() + '!'\n",
                ),
                (
                    "test_shout.py",
                    "import unittest\nimport text\n\n\nclass TestShout(unittest.TestCase):\n    def test_shout(self):\n        self.assertEqual(text.shout('hi'), 'HI!')\n",
                ),
            ],
            &[(
                "text.py",
                "def title(s):\n    return s.title()\n\n\ndef shout(s):\n    return s.upper() + '!'\n",
            )],
            // The failing test comes with the fix, as in SWE-bench: the test patch adds it.
            &[(
                "test_title.py",
                "import unittest\nimport text\n\n\nclass TestTitle(unittest.TestCase):\n    def test_title(self):\n        self.assertEqual(text.title('hello world'), 'Hello World')\n",
            )],
        ),
        &["test_title.TestTitle.test_title"],
        &["test_shout.TestShout.test_shout"],
        py,
        "title('hello world') should be 'Hello World'",
    );
    let node = "node --test {test}".to_string();
    push(
        "js__max-3",
        repo(
            root,
            "max",
            &[
                (
                    "max.mjs",
                    "export const max = (xs) => Math.min(...xs);\nexport const len = (xs) => xs.length;\n",
                ),
                (
                    "tests/max.test.mjs",
                    "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\nimport { max } from '../max.mjs';\ntest('max', () => assert.equal(max([1, 5, 3]), 5));\n",
                ),
                (
                    "tests/len.test.mjs",
                    "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\nimport { len } from '../max.mjs';\ntest('len', () => assert.equal(len([1, 5, 3]), 3));\n",
                ),
            ],
            &[(
                "max.mjs",
                "export const max = (xs) => Math.max(...xs);\nexport const len = (xs) => xs.length;\n",
            )],
            &[],
        ),
        &["tests/max.test.mjs"],
        &["tests/len.test.mjs"],
        node.clone(),
        "max([1, 5, 3]) returns 1",
    );
    push(
        "js__clamp-4",
        repo(
            root,
            "clamp",
            &[
                (
                    "clamp.mjs",
                    "export const clamp = (x, lo, hi) => Math.max(lo, x);\n",
                ),
                (
                    "tests/low.test.mjs",
                    "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\nimport { clamp } from '../clamp.mjs';\ntest('low', () => assert.equal(clamp(-5, 0, 10), 0));\n",
                ),
                (
                    "tests/high.test.mjs",
                    "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\nimport { clamp } from '../clamp.mjs';\ntest('high', () => assert.equal(clamp(50, 0, 10), 10));\n",
                ),
            ],
            &[(
                "clamp.mjs",
                "export const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));\n",
            )],
            &[],
        ),
        &["tests/high.test.mjs"],
        &["tests/low.test.mjs"],
        node,
        "clamp ignores the upper bound",
    );
    let target = root.join("cargo-target");
    push(
        "rs__fib-5",
        repo(
            root,
            "fib",
            &[
                (
                    "Cargo.toml",
                    "[package]\nname = \"fib\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
                ),
                (
                    "src/lib.rs",
                    "pub fn fib(n: u32) -> u64 {\n    let (mut a, mut b) = (0u64, 1u64);\n    for _ in 1..n {\n        (a, b) = (b, a + b);\n    }\n    a\n}\n\n#[cfg(test)]\nmod tests {\n    use super::fib;\n    #[test]\n    fn fib_zero() {\n        assert_eq!(fib(0), 0);\n    }\n    #[test]\n    fn fib_ten() {\n        assert_eq!(fib(10), 55);\n    }\n}\n",
                ),
            ],
            &[(
                "src/lib.rs",
                "pub fn fib(n: u32) -> u64 {\n    let (mut a, mut b) = (0u64, 1u64);\n    for _ in 0..n {\n        (a, b) = (b, a + b);\n    }\n    a\n}\n\n#[cfg(test)]\nmod tests {\n    use super::fib;\n    #[test]\n    fn fib_zero() {\n        assert_eq!(fib(0), 0);\n    }\n    #[test]\n    fn fib_ten() {\n        assert_eq!(fib(10), 55);\n    }\n}\n",
            )],
            &[],
        ),
        &["tests::fib_ten"],
        &["tests::fib_zero"],
        format!(
            "CARGO_TARGET_DIR={} cargo test --quiet --offline -- --exact {{test}}",
            target.display()
        ),
        "fib(10) is 34, not 55",
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gold_patches_resolve_every_instance_and_empty_patches_none() {
    let tmp = tempfile::tempdir().unwrap();
    let insts = instances(tmp.path());
    // The dataset round-trips through JSONL with SWE-bench's JSON-string test lists.
    let lines: String = insts
        .iter()
        .map(|i| {
            let mut v = serde_json::to_value(i).unwrap();
            v["FAIL_TO_PASS"] = Value::String(serde_json::to_string(&i.fail_to_pass).unwrap());
            format!("{v}\n")
        })
        .collect();
    std::fs::write(tmp.path().join("instances.jsonl"), lines).unwrap();
    let insts = read_instances(tmp.path().join("instances.jsonl")).unwrap();
    assert_eq!(insts.len(), 5);

    let gold = SweBench::new(tmp.path().join("gold"))
        .model_name("gold")
        .run(&insts, &GoldSolver)
        .await
        .unwrap();
    for r in &gold.results {
        assert!(r.resolved, "{} not resolved: {r:?}", r.instance_id);
    }
    assert_eq!(gold.resolved_rate(), 1.0);
    let preds: Vec<Value> = std::fs::read_to_string(tmp.path().join("gold/predictions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(preds.len(), 5);
    for (p, i) in preds.iter().zip(&insts) {
        assert_eq!(p["instance_id"], i.instance_id.as_str());
        assert_eq!(p["model_name_or_path"], "gold");
        assert_eq!(p.as_object().unwrap().len(), 3, "the official three fields");
        assert!(p["model_patch"].as_str().unwrap().contains("diff --git"));
    }

    let empty = SweBench::new(tmp.path().join("empty"))
        .model_name("empty")
        .run(&insts, &EmptySolver)
        .await
        .unwrap();
    assert_eq!(empty.resolved(), 0);
    for r in &empty.results {
        assert!(
            r.fail_to_pass.values().all(|ok| !ok),
            "{r:?}: the FAIL_TO_PASS tests fail without a fix"
        );
        assert!(
            r.pass_to_pass.values().all(|ok| *ok),
            "{r:?}: the PASS_TO_PASS tests pass"
        );
        assert_eq!(r.model_patch, "");
    }
}

/// Gold, counting the instances it solves; blocks forever on `block_on`.
struct Counting {
    solved: Arc<Mutex<Vec<String>>>,
    block_on: Option<String>,
    reached: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl Solver for Counting {
    async fn solve(&self, inst: &SweInstance, checkout: &Path) -> Result<(), String> {
        if self.block_on.as_deref() == Some(inst.instance_id.as_str()) {
            // Leave a half-made change behind, as a crash would.
            std::fs::write(checkout.join("half-done.txt"), "x").unwrap();
            self.reached.notify_one();
            std::future::pending::<()>().await;
        }
        self.solved.lock().unwrap().push(inst.instance_id.clone());
        GoldSolver.solve(inst, checkout).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_way_resumes_without_solving_finished_instances_again() {
    let tmp = tempfile::tempdir().unwrap();
    let insts = instances(tmp.path());
    let work = tmp.path().join("run");
    let reached = Arc::new(tokio::sync::Notify::new());
    let first = Counting {
        solved: Arc::default(),
        block_on: Some(insts[2].instance_id.clone()),
        reached: reached.clone(),
    };
    let solved_first = first.solved.clone();
    let (w, i) = (work.clone(), insts.clone());
    let task = tokio::spawn(async move { SweBench::new(w).run(&i, &first).await });
    reached.notified().await;
    task.abort();
    let _ = task.await;
    assert_eq!(
        *solved_first.lock().unwrap(),
        [insts[0].instance_id.clone(), insts[1].instance_id.clone()]
    );

    let again = Counting {
        solved: Arc::default(),
        block_on: None,
        reached,
    };
    let report = SweBench::new(&work).run(&insts, &again).await.unwrap();
    assert_eq!(
        *again.solved.lock().unwrap(),
        insts[2..]
            .iter()
            .map(|i| i.instance_id.clone())
            .collect::<Vec<_>>(),
        "only the unfinished instances are solved again"
    );
    assert_eq!(report.results.len(), 5);
    assert_eq!(report.resolved(), 5, "{report:?}");
    let third = &report.results[2];
    assert!(
        !third.model_patch.contains("half-done"),
        "the crashed instance starts from a clean checkout"
    );
}

#[tokio::test]
async fn the_shell_environment_scores_an_oracle_100_and_a_wrong_agent_0() {
    let tasks = sample_tasks();
    let bench = OsBench::new();
    let oracle = bench
        .run(&tasks, |t| {
            Box::new(ScriptedOsAgent::new(sample_oracle(&t.id)))
        })
        .await
        .unwrap();
    for o in &oracle.outcomes {
        assert!(o.success, "{o:?}");
        assert_eq!(o.ended, "answered");
    }
    assert_eq!(oracle.success_rate(), 1.0);
    assert_eq!(oracle.outcomes[0].turns[0].observation, "2\n[exit 0]");

    let wrong = bench
        .run(&tasks, |_| {
            Box::new(ScriptedOsAgent::new(vec![
                OsAction::Bash("ls".into()),
                OsAction::Answer("I don't know".into()),
            ]))
        })
        .await
        .unwrap();
    assert_eq!(wrong.succeeded(), 0, "{wrong:?}");

    // An agent that never answers stops at the turn limit.
    let busy = bench
        .run(&tasks[..1], |_| {
            Box::new(ScriptedOsAgent::new(vec![
                OsAction::Bash("true".into());
                20
            ]))
        })
        .await
        .unwrap();
    assert_eq!(busy.outcomes[0].ended, "turn-limit");
    assert_eq!(busy.outcomes[0].turns.len(), tasks[0].max_turns as usize);
}

/// A model answering from a script, recording what it was sent.
struct Scripted {
    replies: Mutex<Vec<&'static str>>,
    seen: Mutex<Vec<ModelRequest>>,
    calls: AtomicUsize,
}

#[async_trait]
impl LanguageModel for Scripted {
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, miyabi::ModelError> {
        self.seen.lock().unwrap().push(req.clone());
        let text = self.replies.lock().unwrap().remove(0);
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(ModelResponse {
            content: vec![ContentPart::text(text)],
            finish_reason: FinishReason::Stop,
            raw_finish_reason: None,
            usage: Usage::default(),
            cost_usd: None,
            response_id: None,
            request_id: None,
            model: None,
        })
    }

    async fn stream(&self, _: &ModelRequest) -> Result<EventStream, miyabi::ModelError> {
        unreachable!("the environment does not stream")
    }
}

#[tokio::test]
async fn a_model_driven_agent_follows_the_protocol() {
    assert_eq!(
        parse_action("Let me look.\n```bash\nls -la\n```"),
        Some(OsAction::Bash("ls -la".into()))
    );
    assert_eq!(
        parse_action("Answer: 42"),
        Some(OsAction::Answer("42".into()))
    );
    assert_eq!(parse_action("hmm"), None);

    let model = Arc::new(Scripted {
        replies: Mutex::new(vec![
            "```bash\ntail -n +2 data.csv | cut -d, -f2 | awk '{ s += $1 } END { print s }'\n```",
            "Answer: 42",
        ]),
        seen: Mutex::default(),
        calls: AtomicUsize::new(0),
    });
    let task = sample_tasks()
        .into_iter()
        .find(|t| t.id == "sum-column")
        .unwrap();
    let m: Arc<dyn LanguageModel> = model.clone();
    let report = OsBench::new()
        .run(std::slice::from_ref(&task), move |_| {
            Box::new(ModelOsAgent::new(m.clone()))
        })
        .await
        .unwrap();
    assert!(report.outcomes[0].success, "{:?}", report.outcomes[0]);
    let second = &model.seen.lock().unwrap()[1];
    let last = second.messages.last().unwrap().text();
    assert!(
        last.contains("42") && last.contains("[exit 0]"),
        "the model saw the command's output: {last}"
    );
    let _ = json!(null);
}
