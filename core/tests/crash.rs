#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Durability under SIGKILL.
//!
//! A child process (this test binary re-executed with `--ignored --exact
//! helper_process::child_worker` and the `MIYABI_CRASH_WORKER` variable set) runs workflows against a SQLite file and is SIGKILLed
//! at random moments. Each new child registers the workflow, calls `recover()`, starts the
//! runs not started yet, waits for all of them and resumes the suspended ones (so kills also
//! land inside `resume`); every other child runs in always-replay mode. Every step appends one line
//! `run_id:path:attempt:pid` to a side-effect log (O_APPEND) each time it executes, so the test
//! sees re-executions (at-least-once) while checking that every output is committed once.
//!
//! The non-idempotent tests kill the child while a `.non_idempotent(..)` step sleeps inside its
//! body (which it signals on its stdout) and check that recovery does not run it again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use miyabi::store::*;
use miyabi::*;
use serde_json::{Value, json};

const WORKER: &str = "MIYABI_CRASH_WORKER";
const DB: &str = "MIYABI_CRASH_DB";
const LOG: &str = "MIYABI_CRASH_LOG";
const JOBS: &str = "MIYABI_CRASH_JOBS";
const BLOCK: &str = "MIYABI_CRASH_BLOCK";
const REPLAY: &str = "MIYABI_CRASH_ALWAYS_REPLAY";

/// Kills needed across the whole SIGKILL test (of workers that were executing steps).
const MIN_KILLS: usize = 50;
/// Runs per round (each round uses a fresh database).
const JOBS_PER_ROUND: i64 = 8;

// ---------------------------------------------------------------------------------------------
// Side-effect log

/// Appends one line per step execution; `None` logs nothing (the reference run).
#[derive(Clone, Default)]
struct Log(Option<Arc<PathBuf>>);

impl Log {
    fn file(p: &Path) -> Self {
        Self(Some(Arc::new(p.to_path_buf())))
    }

    fn record(&self, ctx: &StepContext) {
        let Some(p) = &self.0 else { return };
        let line = format!(
            "{}:{}:{}:{}\n",
            ctx.run_id(),
            ctx.path(),
            ctx.attempt(),
            std::process::id()
        );
        // One write(2) on an O_APPEND file: lines never interleave.
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&**p)
            .unwrap();
        f.write_all(line.as_bytes()).unwrap();
    }
}

#[derive(Debug)]
struct Exec {
    run: String,
    path: String,
    pid: u32,
}

fn read_log(p: &Path) -> Vec<Exec> {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    text.lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(':').collect();
            assert_eq!(parts.len(), 4, "bad side-effect log line {l:?}");
            parts[2].parse::<u32>().unwrap();
            Exec {
                run: parts[0].to_string(),
                path: parts[1].to_string(),
                pid: parts[3].parse().unwrap(),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Workflows

fn int(v: &Value, k: &str) -> i64 {
    v[k].as_i64()
        .unwrap_or_else(|| panic!("`{k}` is missing in {v}"))
}

/// A logged step computing `f(ctx, input)` after a short random pause (so kills land inside
/// step bodies, between a step's start and its commit).
fn work<F>(log: &Log, f: F) -> Node
where
    F: Fn(&StepContext, &Value) -> Value + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let log = log.clone();
    step_fn(move |ctx: StepContext, input: Value| {
        let f = Arc::clone(&f);
        let log = log.clone();
        async move {
            log.record(&ctx);
            tokio::time::sleep(Duration::from_millis(fastrand::u64(1..6))).await;
            Ok::<Value, StepError>(f(&ctx, &input))
        }
    })
}

/// A logged step that suspends until resumed, then returns `{who, decision}`. With
/// `suspend` false it decides at once as a resume would (same definition, same fingerprint):
/// the reference run then never goes through a reload from the store.
fn asker(log: &Log, suspend: bool) -> Node {
    let log = log.clone();
    step_fn(move |ctx: StepContext, _input: Value| {
        let log = log.clone();
        async move {
            log.record(&ctx);
            tokio::time::sleep(Duration::from_millis(fastrand::u64(1..6))).await;
            match ctx.resume_data() {
                Some(d) => Ok(json!({ "who": ctx.path(), "decision": d })),
                None if !suspend => {
                    Ok(json!({ "who": ctx.path(), "decision": decision(ctx.path()) }))
                }
                None => ctx.suspend(json!({ "question": ctx.path() })),
            }
        }
    })
}

/// The resume data the workers and the reference give a suspended path.
fn decision(path: &str) -> Value {
    json!({ "ok": path })
}

/// Resumes every suspended path of every suspended run until no run is suspended.
async fn resume_all(engine: &Engine, filter: &RunFilter) {
    loop {
        let suspended: Vec<Run> = engine
            .list(filter)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.status == RunStatus::Suspended)
            .collect();
        if suspended.is_empty() {
            return;
        }
        let resumes = suspended.iter().map(|r| async move {
            let run = engine.get(&r.id).await.unwrap().unwrap();
            for s in &run.suspended {
                let run = engine
                    .resume(&run.id, &s.path, decision(&s.path))
                    .await
                    .unwrap();
                assert_ne!(run.status, RunStatus::Failed, "{run:?}");
            }
        });
        futures::future::join_all(resumes).await;
    }
}

/// Sets `key` of an object to `v`.
fn with(mut o: Value, key: &str, v: impl Into<Value>) -> Value {
    o[key] = v.into();
    o
}

/// Step, branch, parallel with a suspending child, map, foreach, sleep, do-until loop over a
/// fragment holding a nested workflow, shared run state.
fn mixed(log: &Log, suspend: bool) -> CommittedWorkflow {
    let nested = Workflow::new("crash-nested")
        .step(
            "double",
            work(log, |_, v| with(v.clone(), "total", int(v, "total") * 2)),
        )
        .then(
            "label",
            work(log, |ctx, v| {
                let label = format!("{}@{}", int(v, "i"), ctx.path());
                with(v.clone(), "label", label)
            }),
        )
        .commit()
        .unwrap();
    let body = Workflow::new("count-body")
        .step(
            "inc",
            work(log, |_, v| {
                let i = int(v, "i");
                let v = with(v.clone(), "total", int(v, "total") + i + 1);
                with(v, "i", i + 1)
            }),
        )
        .then("nest", &nested);
    Workflow::new("crash-mixed")
        .step(
            "start",
            work(log, |ctx, v| {
                let job = int(v, "job");
                ctx.set_state("job", job);
                json!({ "job": job, "seed": job * 7 + 3 })
            }),
        )
        .branch(
            "route",
            |v: &Value| {
                if v["job"].as_i64().unwrap_or(0) % 2 == 0 {
                    "even"
                } else {
                    "odd"
                }
            },
            [
                (
                    "even",
                    work(log, |_, v| {
                        json!({ "job": int(v, "job"), "x": int(v, "seed") * 2, "arm": "even" })
                    }),
                ),
                (
                    "odd",
                    work(log, |_, v| {
                        json!({ "job": int(v, "job"), "x": int(v, "seed") * 3 + 1, "arm": "odd" })
                    }),
                ),
            ],
        )
        .parallel([
            ("p-plus", work(log, |_, v| json!(int(v, "x") + 1))),
            ("p-times", work(log, |_, v| json!(int(v, "x") * 2))),
            ("p-job", work(log, |_, v| json!(int(v, "job")))),
            ("p-approve", asker(log, suspend)),
        ])
        .map("fan", |v: &Value| {
            let n = 3 + v["p-job"].as_i64().unwrap_or(0) % 3;
            let base = v["p-plus"].as_i64().unwrap_or(0);
            let step = v["p-times"].as_i64().unwrap_or(0);
            json!((0..n).map(|i| base + i * step).collect::<Vec<_>>())
        })
        .foreach(
            "each",
            work(log, |ctx, item| {
                let x = item.as_i64().unwrap();
                json!({ "sq": x * x % 1000, "at": ctx.path() })
            }),
            2,
        )
        .sleep("nap", Duration::from_millis(30))
        .map("seed-loop", |v: &Value| {
            let items = v.as_array().cloned().unwrap_or_default();
            let total: i64 = items.iter().filter_map(|o| o["sq"].as_i64()).sum();
            json!({ "total": total, "i": 0, "stop": 2 + items.len() as i64 % 2 })
        })
        .dountil(
            "count",
            body,
            |v: &Value| v["i"].as_i64() >= v["stop"].as_i64(),
            10,
        )
        .then(
            "final",
            work(log, |ctx, v| json!({ "job": ctx.state("job"), "result": v })),
        )
        .commit()
        .unwrap()
}

/// `before` → `charge` (non-idempotent) → `after`. With `block`, `charge` prints
/// `CHARGE-STARTED` and then waits until it is killed (unless it runs with resume data).
fn nonidem(log: &Log, on: OnInterrupt, block: bool) -> CommittedWorkflow {
    let charge_log = log.clone();
    let charge = step_fn(move |ctx: StepContext, v: Value| {
        let log = charge_log.clone();
        async move {
            log.record(&ctx);
            if block && ctx.resume_data().is_none() {
                println!("CHARGE-STARTED");
                std::future::pending::<()>().await;
            }
            Ok::<Value, StepError>(
                json!({ "charged": v["amount"], "resumed_with": ctx.resume_data() }),
            )
        }
    })
    .non_idempotent(on);
    Workflow::new("crash-nonidem")
        .step(
            "before",
            work(log, |_, v| json!({ "amount": int(v, "amount") })),
        )
        .then("charge", charge)
        .then("after", work(log, |_, v| json!({ "done": v })))
        .commit()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The worker (child process)

/// The helper process's entry point: an ignored test that the tests below run in a child
/// process (`--ignored --exact helper_process::child_worker`); not a test of its own.
mod helper_process {
    use super::*;

    #[test]
    #[ignore = "helper process entry point"]
    fn child_worker() {
        let Ok(mode) = std::env::var(WORKER) else {
            panic!(
                "a helper process entry point, run by the SIGKILL tests in a child process with {WORKER} set: not a test"
            );
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            match mode.as_str() {
                "mixed" => worker_mixed().await,
                "nonidem-fail" => worker_nonidem(OnInterrupt::Fail).await,
                "nonidem-suspend" => worker_nonidem(OnInterrupt::Suspend).await,
                other => panic!("unknown worker mode {other}"),
            }
        });
    }
}

fn env_path(k: &str) -> PathBuf {
    PathBuf::from(std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set")))
}

async fn worker_mixed() {
    let jobs: i64 = std::env::var(JOBS).unwrap().parse().unwrap();
    let engine = Engine::builder()
        .store(SqliteStore::open(env_path(DB)).unwrap())
        .always_replay(std::env::var(REPLAY).is_ok_and(|v| v == "1"))
        .build();
    let wf = mixed(&Log::file(&env_path(LOG)), true);
    engine.register(&wf);
    let recovered = engine.recover().await.unwrap();
    let filter = RunFilter {
        workflow: Some(wf.id().to_string()),
        ..RunFilter::default()
    };
    let existing = engine.list(&filter).await.unwrap();
    let started: BTreeSet<i64> = existing.iter().map(|r| int(&r.input, "job")).collect();
    let mut handles = Vec::new();
    for job in (0..jobs).filter(|j| !started.contains(j)) {
        handles.push(engine.spawn(&wf, json!({ "job": job })).unwrap());
    }
    let stopped = |r: &Run| r.status.is_terminal() || r.status == RunStatus::Suspended;
    for id in &recovered {
        let run = engine.wait(id).await.unwrap();
        assert!(stopped(&run), "recovered run {id}: {run:?}");
    }
    for h in handles {
        let run = h.wait().await.unwrap();
        assert!(stopped(&run), "{run:?}");
    }
    resume_all(&engine, &filter).await;
    for run in engine.list(&filter).await.unwrap() {
        assert!(
            run.status.is_terminal(),
            "run {} is left {} (recovered this time: {recovered:?})",
            run.id,
            run.status
        );
    }
}

async fn worker_nonidem(on: OnInterrupt) {
    let engine = Engine::sqlite(env_path(DB)).unwrap();
    let wf = nonidem(&Log::file(&env_path(LOG)), on, std::env::var(BLOCK).is_ok());
    let run = engine.start(&wf, json!({ "amount": 42 })).await;
    panic!("the non-idempotent step was meant to block until killed, but the run returned {run:?}");
}

// ---------------------------------------------------------------------------------------------
// The parent side

fn spawn_worker(mode: &str, envs: &[(&str, &Path)], stderr: &Path, stdout: Stdio) -> Child {
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr)
        .unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "helper_process::child_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WORKER, mode)
        .envs(envs.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap()
}

fn tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let start = s.len().saturating_sub(6000);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

/// Kills a child (SIGKILL) and reaps it. Returns whether the kill ended it (it may have
/// exited on its own just before).
fn kill(child: &mut Child, stderr: &Path) -> bool {
    child.kill().unwrap();
    let status = child.wait().unwrap();
    match status.signal() {
        Some(9) => true,
        _ if status.success() => false,
        _ => panic!("worker failed with {status}; stderr:\n{}", tail(stderr)),
    }
}

/// One record as compared with the reference: kind, status and output (a sleep's wake time
/// differs between runs, so it is left out).
type Rec = (RecordKind, StepStatus, Value);

fn records(store: &dyn Store, run: &str) -> BTreeMap<String, Rec> {
    store
        .steps(run)
        .unwrap()
        .into_iter()
        .map(|s| {
            let out = match s.kind {
                RecordKind::Sleep => Value::Null,
                _ => s.output.map_or(Value::Null, |v| (*v).clone()),
            };
            (s.path.to_string(), (s.kind, s.status, out))
        })
        .collect()
}

/// Output and records per job, from an uninterrupted in-process run.
fn reference(jobs: i64) -> BTreeMap<i64, (Value, BTreeMap<String, Rec>)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let engine = Engine::in_memory();
        let wf = mixed(&Log::default(), false);
        assert_eq!(wf.fingerprint(), mixed(&Log::default(), true).fingerprint());
        let handles: Vec<_> = (0..jobs)
            .map(|job| (job, engine.spawn(&wf, json!({ "job": job })).unwrap()))
            .collect();
        let mut out = BTreeMap::new();
        for (job, h) in handles {
            let run = h.wait().await.unwrap();
            assert_eq!(run.status, RunStatus::Succeeded, "reference run: {run:?}");
            assert_eq!(run.output.as_ref().unwrap()["job"], json!(job));
            let recs = records(engine.store().as_ref(), &run.id);
            out.insert(job, (run.output.unwrap(), recs));
        }
        out
    })
}

#[derive(Default, Debug)]
struct Totals {
    kills: usize,
    /// Kills of a worker that had executed steps in that life.
    busy_kills: usize,
    lives: usize,
    rounds: usize,
    executions: usize,
    committed_steps: usize,
    /// Runs whose steps were executed by more than one process (recovered runs).
    spread_runs: usize,
}

/// Runs one round to completion under random kills, then checks the database.
fn crash_round(
    dir: &Path,
    round: usize,
    reference: &BTreeMap<i64, (Value, BTreeMap<String, Rec>)>,
    totals: &mut Totals,
) {
    let db = dir.join(format!("round{round}.db"));
    let log = dir.join(format!("round{round}.log"));
    let stderr = dir.join(format!("round{round}.stderr"));
    let jobs = JOBS_PER_ROUND.to_string();
    let mut life = 0u64;
    loop {
        life += 1;
        assert!(
            life <= 300,
            "round {round}: the worker did not finish after {life} lives; stderr:\n{}",
            tail(&stderr)
        );
        // Random moments; the window widens with every life so each round ends.
        let delay = Duration::from_millis(fastrand::u64(2..40 + 10 * life));
        // Every other worker rebuilds its runs from the store after every step.
        let replay = if fastrand::bool() { "1" } else { "0" };
        let mut child = spawn_worker(
            "mixed",
            &[
                (DB, Path::new(&db)),
                (LOG, &log),
                (JOBS, Path::new(&jobs)),
                (REPLAY, Path::new(replay)),
            ],
            &stderr,
            Stdio::null(),
        );
        totals.lives += 1;
        let log_before = std::fs::metadata(&log).map_or(0, |m| m.len());
        let deadline = Instant::now() + delay;
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "round {round}: worker failed with {status}; stderr:\n{}",
                    tail(&stderr)
                );
                break true;
            }
            if Instant::now() >= deadline {
                break !kill(&mut child, &stderr);
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if finished {
            break;
        }
        totals.kills += 1;
        // Killed while it was executing steps (not while starting up)?
        if std::fs::metadata(&log).map_or(0, |m| m.len()) > log_before {
            totals.busy_kills += 1;
        }
    }
    verify_round(&db, &log, reference, totals);
}

fn verify_round(
    db: &Path,
    log: &Path,
    reference: &BTreeMap<i64, (Value, BTreeMap<String, Rec>)>,
    totals: &mut Totals,
) {
    let store = SqliteStore::open(db).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let runs = store.list_runs(&RunFilter::default()).unwrap();
    let jobs: Vec<i64> = runs.iter().map(|r| int(&r.input, "job")).collect();
    let mut sorted = jobs.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..JOBS_PER_ROUND).collect::<Vec<_>>(),
        "exactly one run per job"
    );
    let execs = read_log(log);
    totals.executions += execs.len();
    for r in &runs {
        let job = int(&r.input, "job");
        let (want_out, want_recs) = &reference[&job];
        assert_eq!(r.status, RunStatus::Succeeded, "job {job}: {r:?}");
        assert_eq!(r.output.as_deref(), Some(want_out), "job {job}: output");
        assert_eq!(r.owner, None, "a finished run keeps no owner");
        let recs = records(&store, &r.id);
        assert_eq!(
            recs.keys().collect::<Vec<_>>(),
            want_recs.keys().collect::<Vec<_>>(),
            "job {job}: one record per expected path, no more, no less"
        );
        assert_eq!(&recs, want_recs, "job {job}: committed records");

        // The event log: seq 1..=n without gaps, one run-started, one run-finished (last),
        // exactly one step-output per step path.
        let events = store.events(&r.id, 1, usize::MAX).unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "job {job}: event seqs"
        );
        let count = |t: &str| events.iter().filter(|e| e.type_name() == t).count();
        assert_eq!(count("run-started"), 1, "job {job}");
        assert_eq!(count("run-finished"), 1, "job {job}");
        assert_eq!(events.last().unwrap().type_name(), "run-finished");
        let mut outputs: BTreeMap<&str, usize> = BTreeMap::new();
        for e in events.iter().filter(|e| e.type_name() == "step-output") {
            *outputs.entry(e.path().unwrap()).or_default() += 1;
        }
        let step_paths: BTreeMap<&str, usize> = want_recs
            .iter()
            .filter(|(_, (k, _, _))| *k == RecordKind::Step)
            .map(|(p, _)| (p.as_str(), 1))
            .collect();
        assert_eq!(
            outputs, step_paths,
            "job {job}: step-output events per path"
        );
        totals.committed_steps += step_paths.len();

        // Every committed step output was produced by a logged execution.
        let mine: Vec<&Exec> = execs.iter().filter(|e| e.run == r.id).collect();
        for p in step_paths.keys() {
            assert!(
                mine.iter().any(|e| e.path == *p),
                "job {job}: `{p}` committed but never executed"
            );
        }
        for e in &mine {
            assert!(
                step_paths.contains_key(e.path.as_str()),
                "job {job}: executed a path that is not in the run: {e:?}"
            );
        }
        let pids: BTreeSet<u32> = mine.iter().map(|e| e.pid).collect();
        if pids.len() > 1 {
            totals.spread_runs += 1;
        }
    }

    // The same checks straight on the tables.
    let conn = rusqlite::Connection::open(db).unwrap();
    let check: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(check, ["ok"]);
    let dup_outputs: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM (SELECT run_id, json_extract(body, '$.path') AS p, COUNT(*) AS n
             FROM events WHERE json_extract(body, '$.type') = 'step-output'
             GROUP BY run_id, p HAVING n <> 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dup_outputs, 0, "a step-output event was committed twice");
    let want_rows: usize = reference.values().map(|(_, r)| r.len()).sum();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM steps", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows as usize, want_rows, "rows in `steps`");
    let outputs: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE json_extract(body, '$.type') = 'step-output'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let want_outputs: usize = reference
        .values()
        .map(|(_, r)| {
            r.values()
                .filter(|(k, _, _)| *k == RecordKind::Step)
                .count()
        })
        .sum();
    assert_eq!(outputs as usize, want_outputs, "step-output events");
}

#[test]
fn sigkill_at_random_moments() {
    let dir = tempfile::tempdir().unwrap();
    let reference = reference(JOBS_PER_ROUND);
    let started = Instant::now();
    let mut totals = Totals::default();
    // `MIYABI_CRASH_KILLS=1000` for a soak run.
    let min_kills = std::env::var("MIYABI_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MIN_KILLS)
        .max(MIN_KILLS);
    while totals.busy_kills < min_kills {
        assert!(
            totals.rounds < 50 + min_kills,
            "too many rounds: {totals:?}"
        );
        crash_round(dir.path(), totals.rounds, &reference, &mut totals);
        totals.rounds += 1;
    }
    eprintln!(
        "sigkill_at_random_moments: {totals:?} in {:.1?}",
        started.elapsed()
    );
    // The kills did land between steps' starts and commits (steps re-executed after
    // recovery), and recovered runs were finished by later processes.
    assert!(
        totals.executions > totals.committed_steps,
        "no step was ever re-executed: the kills never interrupted a step ({totals:?})"
    );
    assert!(
        totals.spread_runs > 0,
        "no run was continued by another process ({totals:?})"
    );
}

// ---------------------------------------------------------------------------------------------
// Non-idempotent steps

/// Starts the non-idempotent workflow in a child, waits until `charge` is inside its body
/// (it says so on its stdout), SIGKILLs the child. Returns (db, log) paths.
fn kill_inside_charge(dir: &Path, mode: &str) -> (PathBuf, PathBuf) {
    use std::io::BufRead as _;
    let db = dir.join("nonidem.db");
    let log = dir.join("nonidem.log");
    let stderr = dir.join("nonidem.stderr");
    let block = Path::new("1");
    let mut child = spawn_worker(
        mode,
        &[(DB, &db), (LOG, &log), (BLOCK, block)],
        &stderr,
        Stdio::piped(),
    );
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let started = stdout
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("CHARGE-STARTED"));
    assert!(
        started,
        "worker exited before the step started; stderr:\n{}",
        tail(&stderr)
    );
    assert!(kill(&mut child, &stderr), "the worker was not killed");
    (db, log)
}

fn count_execs(log: &Path, path: &str) -> usize {
    read_log(log).iter().filter(|e| e.path == path).count()
}

fn step_outputs(store: &dyn Store, run: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in store.events(run, 1, usize::MAX).unwrap() {
        if e.type_name() == "step-output" {
            *m.entry(e.path().unwrap().to_string()).or_default() += 1;
        }
    }
    m
}

/// Before recovery: `before` committed, `charge` recorded as started and never committed.
fn interrupted_run(store: &dyn Store) -> String {
    let runs = store.list_runs(&RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.status, RunStatus::Running);
    let steps: HashMap<String, StepRecord> = store
        .steps(&run.id)
        .unwrap()
        .into_iter()
        .map(|s| (s.path.to_string(), s))
        .collect();
    assert_eq!(steps["before"].status, StepStatus::Succeeded);
    assert_eq!(steps["charge"].status, StepStatus::Running);
    assert!(!steps.contains_key("after"));
    run.id.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_fail_is_not_rerun_after_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = kill_inside_charge(dir.path(), "nonidem-fail");
    let engine = Engine::sqlite(&db).unwrap();
    let run_id = interrupted_run(engine.store().as_ref());
    engine.register(&nonidem(&Log::file(&log), OnInterrupt::Fail, false));
    let recovered = engine.recover().await.unwrap();
    assert_eq!(recovered, std::slice::from_ref(&run_id));
    let run = engine.wait(&run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.unwrap();
    assert!(
        error.contains("non-idempotent step `charge` was interrupted"),
        "{error}"
    );
    assert_eq!(count_execs(&log, "before"), 1);
    assert_eq!(count_execs(&log, "charge"), 1, "charge was re-run");
    assert_eq!(count_execs(&log, "after"), 0);
    let store = engine.store().as_ref();
    let charge = store
        .steps(&run_id)
        .unwrap()
        .into_iter()
        .find(|s| &*s.path == "charge")
        .unwrap();
    assert_eq!(charge.status, StepStatus::Failed);
    assert_eq!(
        step_outputs(store, &run_id),
        BTreeMap::from([("before".to_string(), 1)])
    );
    let stored = engine.get(&run_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Failed);
    // A later recovery leaves the failed run alone.
    assert!(engine.recover().await.unwrap().is_empty());
    assert_eq!(count_execs(&log, "charge"), 1);
    let check = SqliteStore::open(&db).unwrap().integrity_check().unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_suspend_waits_for_a_human_after_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = kill_inside_charge(dir.path(), "nonidem-suspend");
    let engine = Engine::sqlite(&db).unwrap();
    let run_id = interrupted_run(engine.store().as_ref());
    engine.register(&nonidem(&Log::file(&log), OnInterrupt::Suspend, false));
    assert_eq!(
        engine.recover().await.unwrap(),
        std::slice::from_ref(&run_id)
    );
    let run = engine.wait(&run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended, "{run:?}");
    assert_eq!(run.suspended.len(), 1, "{run:?}");
    assert_eq!(run.suspended[0].path, "charge");
    assert_eq!(run.suspended[0].payload["interrupted"], json!(true));
    assert_eq!(
        count_execs(&log, "charge"),
        1,
        "charge was re-run on its own"
    );
    assert_eq!(count_execs(&log, "after"), 0);
    // Still suspended for a new engine over the same file.
    let engine = Engine::sqlite(&db).unwrap();
    engine.register(&nonidem(&Log::file(&log), OnInterrupt::Suspend, false));
    assert!(engine.recover().await.unwrap().is_empty());
    let got = engine.get(&run_id).await.unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Suspended);
    assert_eq!(got.suspended[0].path, "charge");
    // A human decides to run it again.
    let run = engine
        .resume(&run_id, "charge", json!({ "checked": true }))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        run.output,
        Some(json!({ "done": { "charged": 42, "resumed_with": { "checked": true } } }))
    );
    assert_eq!(count_execs(&log, "before"), 1);
    assert_eq!(count_execs(&log, "charge"), 2);
    assert_eq!(count_execs(&log, "after"), 1);
    assert_eq!(
        step_outputs(engine.store().as_ref(), &run_id),
        BTreeMap::from([
            ("after".to_string(), 1),
            ("before".to_string(), 1),
            ("charge".to_string(), 1)
        ])
    );
    let check = SqliteStore::open(&db).unwrap().integrity_check().unwrap();
    assert_eq!(check, "ok");
}

// ---------------------------------------------------------------------------------------------
// Ownership: recovery takes only the runs of dead engines

/// An engine that only resumes runs (never starts or recovers one) keeps its claim on the run
/// it drives: another engine's `recover()` must not take the run over while its step is still
/// executing (which would execute the step twice).
/// The engines' clock in this test: tokio's (paused) time, so that leases, their renewals and
/// the step's own wait all move together, without real waiting.
struct TokioClock {
    start: tokio::time::Instant,
    base_ms: i64,
}

impl miyabi::clock::Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.base_ms + self.start.elapsed().as_millis() as i64
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn recover_does_not_take_a_resumed_run_from_a_live_engine() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("own.db")).unwrap());
    let log = dir.path().join("own.log");
    let start = tokio::time::Instant::now();
    let clock = move || TokioClock {
        start,
        base_ms: 1_800_000_000_000,
    };
    // The step outlasts the lease more than twice: only renewals keep the claim.
    let lease = Duration::from_millis(1500);
    let slow = {
        let log = Log::file(&log);
        step_fn(move |ctx: StepContext, v: Value| {
            let log = log.clone();
            async move {
                log.record(&ctx);
                tokio::time::sleep(Duration::from_millis(3500)).await;
                Ok::<Value, StepError>(v)
            }
        })
    };
    let wf = Workflow::new("own")
        .step("ask", asker(&Log::file(&log), true))
        .then("slow", slow)
        .commit()
        .unwrap();
    let id = {
        let engine = Engine::builder()
            .store_arc(Arc::clone(&store))
            .clock(clock())
            .build();
        let run = engine.start(&wf, json!(1)).await.unwrap();
        assert_eq!(run.status, RunStatus::Suspended);
        run.id
    };
    let resumer = Engine::builder()
        .store_arc(Arc::clone(&store))
        .lease(lease)
        .clock(clock())
        .build();
    resumer.register(&wf);
    let resuming = {
        let (resumer, id) = (resumer.clone(), id.clone());
        tokio::spawn(async move { resumer.resume(&id, "ask", decision("ask")).await })
    };
    let other = Engine::builder()
        .store_arc(Arc::clone(&store))
        .lease(lease)
        .clock(clock())
        .build();
    other.register(&wf);
    let mut taken = Vec::new();
    while !resuming.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        taken.extend(other.recover().await.unwrap());
    }
    let result = resuming.await.unwrap();
    assert!(
        taken.is_empty(),
        "recover() took a live run: {taken:?}; the resuming engine got {result:?}"
    );
    let run = result.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(count_execs(&log, "slow"), 1, "the step ran twice");
    assert_eq!(
        step_outputs(store.as_ref(), &id),
        BTreeMap::from([("ask".to_string(), 1), ("slow".to_string(), 1)])
    );
}
