//! Durable eval runs on the engine: one step per case × epoch, results stored with the run, and
//! a process SIGKILLed half-way whose successor finishes the run without re-running the
//! samples already committed.
//!
//! The crash test re-executes this test binary as a child process (`--ignored --exact
//! helper_process::eval_child` with `MIYABI_EVAL_CHILD` set), as `crash.rs` does.
#![cfg(feature = "eval")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use miyabi::eval::metrics::{Contains, Exact};
use miyabi::eval::{Case, Dataset, DurableEval, Evaluator, Target};
use miyabi::store::{StepStatus, Store};
use miyabi::{Durability, Engine, SqliteStore};
use serde_json::{Value, json};

const CHILD: &str = "MIYABI_EVAL_CHILD";
const DB: &str = "MIYABI_EVAL_DB";
const LOG: &str = "MIYABI_EVAL_LOG";
const CASES: usize = 10;
/// Cases from this index on block forever in the first child.
const BLOCK_FROM: usize = 6;

fn dataset() -> Dataset {
    Dataset::from_cases(
        "numbers",
        (0..CASES).map(|i| {
            Case::new(format!("c{i}"), json!(i)).expected(if i.is_multiple_of(3) {
                "fizz"
            } else {
                "none"
            })
        }),
    )
    .unwrap()
}

fn evaluator() -> Evaluator {
    Evaluator::new()
        .name("fizz")
        .add_metric("exact", Exact::new())
        .add_metric("mentions", Contains::any(["fizz"]))
        .concurrency(2)
}

/// The target: logs `case pid` for every call; in blocking mode, cases from BLOCK_FROM on say
/// so on stdout and never answer.
fn target(log: Option<PathBuf>, block: bool) -> Arc<dyn Target> {
    Arc::new(move |input: Value| {
        let log = log.clone();
        async move {
            let i = input.as_u64().unwrap() as usize;
            if let Some(p) = &log {
                let mut f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap();
                f.write_all(format!("c{i} {}\n", std::process::id()).as_bytes())
                    .unwrap();
            }
            if block && i >= BLOCK_FROM {
                println!("EVAL blocked c{i}");
                std::io::stdout().flush().unwrap();
                std::future::pending::<()>().await;
            }
            Ok::<_, String>(json!(if i.is_multiple_of(3) { "fizz" } else { "none" }))
        }
    })
}

#[tokio::test]
async fn a_durable_eval_gives_the_same_results_and_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let durable = DurableEval::new(&engine, evaluator(), target(None, false)).unwrap();
    assert_eq!(durable.workflow().id(), "eval.fizz");
    let results = durable.evaluate(&dataset()).await.unwrap();
    let direct = evaluator()
        .evaluate(target(None, false).as_ref(), &dataset())
        .await
        .unwrap();
    assert_eq!(results.samples.len(), CASES);
    assert_eq!(results.metrics, direct.metrics);
    assert_eq!(results.dataset, "numbers");
    let ids: Vec<&str> = results.samples.iter().map(|s| s.case_id.as_str()).collect();
    assert_eq!(ids, (0..CASES).map(|i| format!("c{i}")).collect::<Vec<_>>());

    // Stored: listed as a run of eval.fizz, its results read back, one record per sample.
    let runs = durable.runs().await.unwrap();
    assert_eq!(runs.len(), 1);
    let back = durable.results(&runs[0].id).await.unwrap().unwrap();
    assert_eq!(back, results);
    let steps = engine.store().steps(&runs[0].id).unwrap();
    let sample_records = steps
        .iter()
        .filter(|s| s.path.starts_with("samples["))
        .count();
    assert_eq!(sample_records, CASES);
    let rec = steps.iter().find(|s| &*s.path == "samples[3]").unwrap();
    let out = rec.output.as_ref().unwrap();
    assert_eq!(out["case_id"], "c3");
    assert_eq!(out["scores"]["exact"]["value"], 1.0);

    // A configuration error is refused before anything runs.
    let bad = Evaluator::new()
        .add_metric("x", Exact::new())
        .weight("x", -1.0);
    assert!(DurableEval::new(&engine, bad, target(None, false)).is_err());
}

/// The child's entry point (not a test of its own).
mod helper_process {
    use super::*;

    #[test]
    #[ignore = "helper process entry point"]
    fn eval_child() {
        let Ok(mode) = std::env::var(CHILD) else {
            panic!(
                "a helper process entry point, run by the crash test with {CHILD} set: not a test"
            );
        };
        let db = PathBuf::from(std::env::var(DB).unwrap());
        let log = PathBuf::from(std::env::var(LOG).unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            // One commit per step: when cases 6 and 7 have started, 0..=5 are committed.
            let engine = Engine::builder()
                .store(SqliteStore::open(&db).unwrap())
                .durability(Durability::EveryStep)
                .build();
            match mode.as_str() {
                "first" => {
                    let durable =
                        DurableEval::new(&engine, evaluator(), target(Some(log), true)).unwrap();
                    let id = durable.spawn(&dataset()).unwrap();
                    println!("EVAL run {id}");
                    std::io::stdout().flush().unwrap();
                    durable.wait(&id).await.unwrap();
                    panic!("the first child was meant to block until killed");
                }
                "second" => {
                    let durable =
                        DurableEval::new(&engine, evaluator(), target(Some(log), false)).unwrap();
                    let ids = durable.recover().await.unwrap();
                    assert_eq!(ids.len(), 1, "{ids:?}");
                    let results = durable.wait(&ids[0]).await.unwrap();
                    println!("EVAL results {}", serde_json::to_string(&results).unwrap());
                }
                other => panic!("unknown mode {other}"),
            }
        });
    }
}

fn child(mode: &str, db: &Path, log: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "helper_process::eval_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, mode)
        .env(DB, db)
        .env(LOG, log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn calls_by(log: &Path, pid: u32) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (case, p) = l.split_once(' ')?;
            (p.parse::<u32>().ok()? == pid).then(|| case.to_string())
        })
        .collect()
}

#[test]
fn a_killed_eval_resumes_without_rerunning_finished_cases() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let log = dir.path().join("calls.log");

    // First process: runs until both in-flight cases (6 and 7, concurrency 2) block, then is
    // SIGKILLed.
    let mut first = child("first", &db, &log);
    let first_pid = first.id();
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    let mut run_id = None;
    let mut blocked = 0;
    while blocked < 2 || run_id.is_none() {
        let line = lines.next().expect("the first child ended early").unwrap();
        // The harness prints "test ... " before the child's first line, on the same line.
        if let Some((_, id)) = line.split_once("EVAL run ") {
            run_id = Some(id.trim().to_string());
        } else if line.contains("EVAL blocked ") {
            blocked += 1;
        }
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let run_id = run_id.unwrap();

    // What the dead process committed.
    let store = SqliteStore::open(&db).unwrap();
    let committed: BTreeSet<String> = store
        .steps(&run_id)
        .unwrap()
        .into_iter()
        .filter(|s| s.path.starts_with("samples[") && s.status == StepStatus::Succeeded)
        .map(|s| s.output.unwrap()["case_id"].as_str().unwrap().to_string())
        .collect();
    drop(store);
    let before: BTreeSet<String> = (0..BLOCK_FROM).map(|i| format!("c{i}")).collect();
    assert_eq!(committed, before, "committed before the kill");
    assert_eq!(calls_by(&log, first_pid).len(), BLOCK_FROM + 2);

    // Second process: recovers the run and finishes it.
    let second = child("second", &db, &log);
    let second_pid = second.id();
    let out = second.wait_with_output().unwrap();
    assert!(out.status.success(), "the second child failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Value = serde_json::from_str(
        stdout
            .lines()
            .find_map(|l| l.split_once("EVAL results ").map(|(_, r)| r))
            .expect("no results from the second child"),
    )
    .unwrap();

    let rerun: BTreeSet<String> = calls_by(&log, second_pid).into_iter().collect();
    let all: BTreeSet<String> = (0..CASES).map(|i| format!("c{i}")).collect();
    let expected: BTreeSet<String> = all.difference(&committed).cloned().collect();
    assert_eq!(rerun, expected, "only the samples not committed run again");
    assert_eq!(
        calls_by(&log, second_pid).len(),
        expected.len(),
        "each once"
    );

    assert_eq!(results["samples"].as_array().unwrap().len(), CASES);
    assert_eq!(results["errors"], 0);
    assert_eq!(results["metrics"][0]["name"], "exact");
    assert_eq!(results["metrics"][0]["mean"], 1.0);
    assert_eq!(results["metrics"][0]["scored"], CASES);
}
