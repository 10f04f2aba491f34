#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Store faults and bad input: typed errors that say what and where, and nothing committed lost.
//!
//! - `FaultInjectingStore` fails every commit position of a run in turn (a commit that commits
//!   but reports an error, `SQLITE_BUSY`, disk full); the run's call returns the typed store
//!   error and `recover()` (on a new engine over the same inner store, or on the same engine)
//!   finishes the run with one record and one `step-output` event per path.
//! - Real SQLite trouble: a database locked by another connection (`StoreError::Busy` naming
//!   the file, after SQLite's 5 s busy timeout), a read-only database (opened with `mode=ro`,
//!   and a read-only file), a corrupt file.
//! - Resume with bad input, and a step that panics.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use miyabi::store::*;
use miyabi::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Counts executions per (run, path).
#[derive(Clone, Default)]
struct Execs(Arc<Mutex<HashMap<(String, String), usize>>>);

impl Execs {
    fn hit(&self, ctx: &StepContext) {
        *self
            .0
            .lock()
            .unwrap()
            .entry((ctx.run_id().to_string(), ctx.path().to_string()))
            .or_default() += 1;
    }

    fn of(&self, run: &str) -> BTreeMap<String, usize> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|((r, _), _)| r == run)
            .map(|((_, p), n)| (p.clone(), *n))
            .collect()
    }

    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
}

/// A step that counts its executions and computes `f(ctx, input)`.
fn counted<F>(execs: &Execs, f: F) -> Node
where
    F: Fn(&StepContext, &Value) -> Value + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let execs = execs.clone();
    step_fn(move |ctx: StepContext, input: Value| {
        let f = Arc::clone(&f);
        let execs = execs.clone();
        async move {
            execs.hit(&ctx);
            Ok::<Value, StepError>(f(&ctx, &input))
        }
    })
}

fn int(v: &Value, k: &str) -> i64 {
    v[k].as_i64()
        .unwrap_or_else(|| panic!("`{k}` is missing in {v}"))
}

/// A step that suspends until resumed, then returns `{who, decision}`.
fn asker(execs: &Execs) -> Node {
    let execs = execs.clone();
    step_fn(move |ctx: StepContext, _input: Value| {
        let execs = execs.clone();
        async move {
            execs.hit(&ctx);
            match ctx.resume_data() {
                Some(d) => Ok(json!({ "who": ctx.path(), "decision": d })),
                None => ctx.suspend(json!({ "question": format!("approve {}?", ctx.path()) })),
            }
        }
    })
}

/// Step-output events per path.
fn step_outputs(store: &dyn Store, run: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in store.events(run, 1, usize::MAX).unwrap() {
        if e.type_name() == "step-output" {
            *m.entry(e.path().unwrap().to_string()).or_default() += 1;
        }
    }
    m
}

/// Paths of the run's records with `RecordKind::Step` and status succeeded.
fn committed_steps(store: &dyn Store, run: &str) -> BTreeMap<String, usize> {
    store
        .steps(run)
        .unwrap()
        .into_iter()
        .filter(|s| s.kind == RecordKind::Step && s.status == StepStatus::Succeeded)
        .map(|s| (s.path.to_string(), 1))
        .collect()
}

/// Records as compared between runs: kind, status, output (not a sleep's wake time).
fn records(store: &dyn Store, run: &str) -> BTreeMap<String, (RecordKind, StepStatus, Value)> {
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

/// Event seqs run 1..=n without gaps, with one run-started and one run-finished (last).
fn check_event_log(store: &dyn Store, run: &str, what: &str) {
    let events = store.events(run, 1, usize::MAX).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "{what}: event seqs"
    );
    let count = |t: &str| events.iter().filter(|e| e.type_name() == t).count();
    assert_eq!(count("run-started"), 1, "{what}");
    assert_eq!(count("run-finished"), 1, "{what}");
    assert_eq!(events.last().unwrap().type_name(), "run-finished", "{what}");
}

fn the_run(store: &dyn Store, workflow: &str, input: &Value) -> Option<RunRecord> {
    let runs: Vec<RunRecord> = store
        .list_runs(&RunFilter {
            workflow: Some(workflow.to_string()),
            ..RunFilter::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| *r.input == *input)
        .collect();
    assert!(runs.len() <= 1, "more than one run for {input}: {runs:?}");
    runs.into_iter().next()
}

// ---------------------------------------------------------------------------------------------
// FaultInjectingStore

/// Step, branch, parallel, map, foreach, sleep, loop, shared state and a custom event.
fn faulty_workflow(execs: &Execs) -> CommittedWorkflow {
    Workflow::new("faulty")
        .step(
            "a",
            counted(execs, |ctx, v| {
                let case = int(v, "case");
                ctx.set_state("case", case);
                ctx.emit("note", json!({ "case": case }));
                json!({ "case": case, "x": case * 3 })
            }),
        )
        .branch(
            "pick",
            |v: &Value| {
                if v["x"].as_i64().unwrap_or(0) % 2 == 0 {
                    "even"
                } else {
                    "odd"
                }
            },
            [
                ("even", counted(execs, |_, v| json!(int(v, "x") + 10))),
                ("odd", counted(execs, |_, v| json!(int(v, "x") + 11))),
            ],
        )
        .parallel([
            ("p1", counted(execs, |_, v| json!(v.as_i64().unwrap() + 1))),
            ("p2", counted(execs, |_, v| json!(v.as_i64().unwrap() * 2))),
        ])
        .map("items", |v: &Value| {
            let (a, b) = (v["p1"].as_i64().unwrap_or(0), v["p2"].as_i64().unwrap_or(0));
            json!([a, b, a + b])
        })
        .foreach(
            "each",
            counted(execs, |_, v| json!(v.as_i64().unwrap() % 97)),
            2,
        )
        .sleep("nap", Duration::from_millis(1))
        .map("init", |v: &Value| {
            let sum: i64 = v.as_array().unwrap().iter().filter_map(Value::as_i64).sum();
            json!({ "sum": sum, "i": 0 })
        })
        .dountil(
            "loop",
            counted(execs, |_, v| {
                let i = int(v, "i");
                json!({ "sum": int(v, "sum") + i, "i": i + 1 })
            }),
            |v: &Value| v["i"].as_i64() >= Some(2),
            5,
        )
        .then(
            "z",
            counted(execs, |ctx, v| json!({ "case": ctx.state("case"), "v": v })),
        )
        .commit()
        .unwrap()
}

struct Reference {
    output: Value,
    records: BTreeMap<String, (RecordKind, StepStatus, Value)>,
    commits: usize,
}

/// An uninterrupted run of `faulty_workflow` for `input`, with its commit count.
async fn reference(input: &Value) -> Reference {
    let execs = Execs::default();
    let store = Arc::new(FaultInjectingStore::new(Arc::new(MemoryStore::new())));
    let engine = Engine::builder()
        .durability(Durability::EveryStep)
        .store_arc(Arc::clone(&store) as Arc<dyn Store>)
        .build();
    let run = engine
        .start(&faulty_workflow(&execs), input.clone())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    Reference {
        output: run.output.clone().unwrap(),
        records: records(store.as_ref(), &run.id),
        commits: store.commit_count(),
    }
}

fn expect_fault(fault: Fault, err: &EngineError, n: usize) {
    let ok = matches!(
        (fault, err),
        (
            Fault::CommitThenError,
            EngineError::Store(StoreError::Indeterminate { .. })
        ) | (Fault::Busy, EngineError::Store(StoreError::Busy { .. }))
            | (Fault::DiskFull, EngineError::Store(StoreError::Full { .. }))
    );
    assert!(ok, "{fault:?} at commit #{n}: unexpected error {err:?}");
    assert!(err.to_string().contains("injected"), "{err}");
}

/// For every commit position `n` of a run: fail commit `n` with `fault`, check the typed
/// error, recover (with a new engine over the same inner store when `new_engine`, else with
/// the same engine), and check the finished run against an uninterrupted one.
async fn sweep(fault: Fault, new_engine: bool) {
    let dir = tempfile::tempdir().unwrap();
    let clock = miyabi::clock::ManualClock::starting_now();
    let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("faults.db")).unwrap());
    let commits = reference(&json!({ "case": 1 })).await.commits;
    assert!(commits > 10, "a run makes {commits} commits");
    let mut hit = 0;
    for n in 1..=commits {
        let input = json!({ "case": n });
        let want = reference(&input).await;
        let execs = Execs::default();
        let wf = faulty_workflow(&execs);
        let faulty = Arc::new(FaultInjectingStore::new(Arc::clone(&inner)));
        faulty.fail_commit(n, fault);
        let engine = Engine::builder()
            .durability(Durability::EveryStep)
            .store_arc(Arc::clone(&faulty) as Arc<dyn Store>)
            .lease(Duration::from_millis(1))
            .clock(clock.clone())
            .build();
        let result = engine.start(&wf, input.clone()).await;
        let err = match result {
            // Commit counts may differ by a few between runs (results that arrive together
            // are committed together); a fault planned past the end never fired.
            Ok(run) => {
                assert!(
                    faulty.commit_count() < n,
                    "{fault:?} at #{n} fired but start returned {run:?}"
                );
                continue;
            }
            Err(e) => e,
        };
        hit += 1;
        expect_fault(fault, &err, n);
        let recovered = if new_engine {
            drop(engine);
            // The failed engine's 1 ms lease must run out before another engine may claim.
            clock.advance(Duration::from_millis(10));
            let engine = Engine::builder()
                .durability(Durability::EveryStep)
                .store_arc(Arc::clone(&inner))
                .clock(clock.clone())
                .build();
            engine.register(&wf);
            let ids = engine.recover().await.unwrap();
            let mut runs = Vec::new();
            for id in ids {
                runs.push(engine.wait(&id).await.unwrap());
            }
            runs
        } else {
            let ids = engine.recover().await.unwrap();
            let mut runs = Vec::new();
            for id in ids {
                runs.push(engine.wait(&id).await.unwrap());
            }
            runs
        };
        let what = format!("{fault:?} at commit #{n}");
        let Some(stored) = the_run(inner.as_ref(), "faulty", &input) else {
            // Nothing was committed: only possible when the run's creation itself failed.
            assert!(
                n == 1 && fault != Fault::CommitThenError,
                "{what}: the run is lost"
            );
            assert!(recovered.is_empty(), "{what}: {recovered:?}");
            assert_eq!(execs.total(), 0, "{what}");
            continue;
        };
        // The run was recovered, unless its final commit went through (commit-then-error).
        if stored.id != recovered.first().map_or("", |r| r.id.as_str()) {
            assert_eq!(fault, Fault::CommitThenError, "{what}: not recovered");
        }
        assert!(recovered.len() <= 1, "{what}: {recovered:?}");
        assert_eq!(stored.status, RunStatus::Succeeded, "{what}: {stored:?}");
        assert_eq!(
            stored.output.as_deref(),
            Some(&want.output),
            "{what}: output"
        );
        assert_eq!(stored.owner, None, "{what}");
        let got = records(inner.as_ref(), &stored.id);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.records.keys().collect::<Vec<_>>(),
            "{what}: one record per path, none lost, none extra"
        );
        assert_eq!(got, want.records, "{what}: records");
        let steps = committed_steps(inner.as_ref(), &stored.id);
        assert_eq!(
            step_outputs(inner.as_ref(), &stored.id),
            steps,
            "{what}: one step-output event per step path"
        );
        check_event_log(inner.as_ref(), &stored.id, &what);
        // At least once, and at most once more than an uninterrupted run.
        let ran = execs.of(&stored.id);
        assert_eq!(
            ran.keys().collect::<Vec<_>>(),
            steps.keys().collect::<Vec<_>>(),
            "{what}: executed paths"
        );
        assert!(ran.values().all(|n| (1..=2).contains(n)), "{what}: {ran:?}");
    }
    eprintln!(
        "{fault:?} (new engine: {new_engine}): {hit} of {commits} commit positions failed and recovered"
    );
    assert!(
        hit * 10 >= commits * 8,
        "{fault:?}: only {hit} of {commits} planned faults fired"
    );
    assert_eq!(
        SqliteStore::open(dir.path().join("faults.db"))
            .unwrap()
            .integrity_check()
            .unwrap(),
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_error_at_every_commit_recovers_on_a_new_engine() {
    sweep(Fault::CommitThenError, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_at_every_commit_recovers_on_a_new_engine() {
    sweep(Fault::Busy, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_at_every_commit_recovers_on_a_new_engine() {
    sweep(Fault::DiskFull, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_every_commit_recovers_on_the_same_engine() {
    for fault in [Fault::CommitThenError, Fault::Busy, Fault::DiskFull] {
        sweep(fault, false).await;
    }
}

/// For every commit position `n` of a `resume` call: fail commit `n` with `fault`; the call
/// returns the typed error; a new engine recovers the run (back to suspended when the resume
/// data was not committed, on to the end when it was), a second resume finishes it if needed,
/// and nothing is duplicated or lost.
async fn resume_sweep(fault: Fault) {
    let dir = tempfile::tempdir().unwrap();
    let clock = miyabi::clock::ManualClock::starting_now();
    let inner: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("resume-faults.db")).unwrap());
    let wf_for = |execs: &Execs| {
        Workflow::new("resume-faults")
            .step("prep", counted(execs, |_, v| json!({ "n": v })))
            .then("ask", asker(execs))
            .then("after", counted(execs, |_, v| json!({ "after": v })))
            .commit()
            .unwrap()
    };
    let want = |n: usize| json!({ "after": { "who": "ask", "decision": { "ok": n } } });
    // Commits made by one clean resume.
    let commits = {
        let faulty = Arc::new(FaultInjectingStore::new(Arc::new(MemoryStore::new())));
        let engine = Engine::builder()
            .durability(Durability::EveryStep)
            .store_arc(Arc::clone(&faulty) as Arc<dyn Store>)
            .build();
        let wf = wf_for(&Execs::default());
        let run = engine.start(&wf, json!(0)).await.unwrap();
        let before = faulty.commit_count();
        let run = engine
            .resume(&run.id, "ask", json!({ "ok": 0 }))
            .await
            .unwrap();
        assert_eq!(run.output, Some(want(0)));
        faulty.commit_count() - before
    };
    assert!(commits >= 3, "a resume makes {commits} commits");
    let mut resumed_again = 0;
    for n in 1..=commits {
        let what = format!("{fault:?} at resume commit #{n}");
        let execs = Execs::default();
        let wf = wf_for(&execs);
        let faulty = Arc::new(FaultInjectingStore::new(Arc::clone(&inner)));
        let engine = Engine::builder()
            .durability(Durability::EveryStep)
            .store_arc(Arc::clone(&faulty) as Arc<dyn Store>)
            .lease(Duration::from_millis(1))
            .clock(clock.clone())
            .build();
        let run = engine.start(&wf, json!(n)).await.unwrap();
        assert_eq!(run.status, RunStatus::Suspended);
        let id = run.id.clone();
        faulty.fail_commit(n, fault);
        let err = engine
            .resume(&id, "ask", json!({ "ok": n }))
            .await
            .unwrap_err();
        expect_fault(fault, &err, n);
        drop(engine);
        // The failed engine's 1 ms lease must run out before another engine may claim.
        clock.advance(Duration::from_millis(10));
        let engine = Engine::builder()
            .durability(Durability::EveryStep)
            .store_arc(Arc::clone(&inner))
            .clock(clock.clone())
            .build();
        engine.register(&wf);
        for r in engine.recover().await.unwrap() {
            assert_eq!(r, id, "{what}");
            engine.wait(&r).await.unwrap();
        }
        let mut run = engine.get(&id).await.unwrap().unwrap();
        if run.status == RunStatus::Suspended {
            resumed_again += 1;
            assert_eq!(run.suspended.len(), 1, "{what}: {run:?}");
            run = engine.resume(&id, "ask", json!({ "ok": n })).await.unwrap();
        }
        assert_eq!(run.status, RunStatus::Succeeded, "{what}: {run:?}");
        assert_eq!(run.output, Some(want(n)), "{what}");
        let steps = committed_steps(inner.as_ref(), &id);
        assert_eq!(steps.len(), 3, "{what}: {steps:?}");
        assert_eq!(step_outputs(inner.as_ref(), &id), steps, "{what}");
        check_event_log(inner.as_ref(), &id, &what);
        let ran = execs.of(&id);
        assert_eq!(ran["prep"], 1, "{what}: {ran:?}");
        assert!((2..=3).contains(&ran["ask"]), "{what}: {ran:?}");
        assert!((1..=2).contains(&ran["after"]), "{what}: {ran:?}");
        assert_eq!(inner.run(&id).unwrap().unwrap().owner, None, "{what}");
    }
    eprintln!(
        "{fault:?}: {commits} resume commit positions failed and recovered; {resumed_again} runs went back to suspended"
    );
    // Without the resume data committed, recovery must put the run back to waiting.
    if fault != Fault::CommitThenError {
        assert!(resumed_again > 0, "{fault:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_every_commit_of_a_resume() {
    for fault in [Fault::CommitThenError, Fault::Busy, Fault::DiskFull] {
        resume_sweep(fault).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Real SQLite trouble

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_database_is_busy_names_the_path_and_the_run_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locked.db");
    let shown = db.display().to_string();
    let execs = Execs::default();
    // `grab` takes an exclusive lock through another connection the first time it runs, so
    // the commit of its own result finds the database locked.
    let holder: Arc<Mutex<Option<rusqlite::Connection>>> = Arc::default();
    let grabbed = Arc::new(AtomicBool::new(false));
    let grab = {
        let (execs, holder, grabbed, db) = (
            execs.clone(),
            Arc::clone(&holder),
            Arc::clone(&grabbed),
            db.clone(),
        );
        step_fn(move |ctx: StepContext, v: Value| {
            let (execs, holder, grabbed, db) = (
                execs.clone(),
                Arc::clone(&holder),
                Arc::clone(&grabbed),
                db.clone(),
            );
            async move {
                execs.hit(&ctx);
                if !grabbed.swap(true, Ordering::SeqCst) {
                    let conn = rusqlite::Connection::open(&db).unwrap();
                    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
                    *holder.lock().unwrap() = Some(conn);
                }
                Ok::<Value, StepError>(json!({ "grabbed": v }))
            }
        })
    };
    let wf = Workflow::new("locked")
        .step("first", counted(&execs, |_, v| v.clone()))
        .then("grab", grab)
        .then("after", counted(&execs, |_, v| json!({ "after": v })))
        .commit()
        .unwrap();
    // One commit per step, so `first` is committed before `grab` runs.
    let engine = Engine::builder()
        .store(SqliteStore::open(&db).unwrap())
        .durability(Durability::EveryStep)
        .build();
    // Blocks for SQLite's busy timeout, then fails.
    let err = engine.start(&wf, json!(7)).await.unwrap_err();
    match &err {
        EngineError::Store(StoreError::Busy { path, message }) => {
            assert_eq!(path, &shown);
            assert!(message.contains("locked"), "{message}");
        }
        other => panic!("expected StoreError::Busy, got {other:?}"),
    }
    assert!(err.to_string().contains(&shown), "{err}");
    // Readers are not blocked (WAL): the run is there, `first` committed, `grab` not.
    let reader = SqliteStore::open(&db).unwrap();
    let runs = reader.list_runs(&RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 1);
    let run_id = runs[0].id.clone();
    assert_eq!(runs[0].status, RunStatus::Running);
    assert_eq!(
        committed_steps(&reader, &run_id),
        BTreeMap::from([("first".to_string(), 1)])
    );
    // The other connection lets go; the engine recovers the run it left (a new engine would
    // too, once this one's lease ran out: the fault sweeps above check that).
    drop(holder.lock().unwrap().take());
    assert_eq!(
        engine.recover().await.unwrap(),
        std::slice::from_ref(&run_id)
    );
    let run = engine.wait(&run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.output, Some(json!({ "after": { "grabbed": 7 } })));
    assert_eq!(
        execs.of(&run_id),
        BTreeMap::from([
            ("after".to_string(), 1),
            ("first".to_string(), 1),
            ("grab".to_string(), 2)
        ])
    );
    let store = engine.store().as_ref();
    assert_eq!(
        step_outputs(store, &run_id),
        committed_steps(store, &run_id)
    );
    assert_eq!(committed_steps(store, &run_id).len(), 3);
    check_event_log(store, &run_id, "locked");
}

fn approval_workflow(execs: &Execs) -> CommittedWorkflow {
    Workflow::new("approval")
        .step("prep", counted(execs, |_, v| json!({ "amount": v })))
        .then("ask", asker(execs))
        .commit()
        .unwrap()
}

/// Makes a file read-only for this process: mode 0444, plus the immutable attribute
/// (`chattr +i`) when running as root, which ignores file modes. Errs with the reason when
/// neither stops this process from writing. Dropping it makes the file writable again.
struct ReadOnlyFile {
    path: PathBuf,
    immutable: bool,
}

impl ReadOnlyFile {
    fn new(path: &Path) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt as _;
        let writable = |p: &Path| std::fs::OpenOptions::new().write(true).open(p).is_ok();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
        let mut me = Self {
            path: path.to_path_buf(),
            immutable: false,
        };
        if !writable(path) {
            return Ok(me);
        }
        // Root ignores file modes; the immutable attribute binds root too (ext4 and others).
        let chattr = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .output();
        me.immutable = matches!(&chattr, Ok(o) if o.status.success());
        if me.immutable && !writable(path) {
            return Ok(me);
        }
        Err(format!(
            "this process can write to a mode-0444 file (running as root) and `chattr +i` is not available here ({chattr:?})"
        ))
    }
}

impl Drop for ReadOnlyFile {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        if self.immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.path)
                .status();
        }
        let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o644));
    }
}

/// Every write through `engine` fails with `StoreError::ReadOnly` naming `shown`; reads work.
async fn check_read_only(engine: &Engine, wf: &CommittedWorkflow, suspended: &str, shown: &str) {
    let run = engine.get(suspended).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    assert_eq!(run.suspended[0].path, "ask");
    for err in [
        engine.start(wf, json!(5)).await.unwrap_err(),
        engine
            .resume(suspended, "ask", json!({ "ok": true }))
            .await
            .unwrap_err(),
    ] {
        match &err {
            EngineError::Store(StoreError::ReadOnly { path, .. }) => assert_eq!(path, shown),
            other => panic!("expected StoreError::ReadOnly, got {other:?}"),
        }
        assert!(err.to_string().contains("read-only"), "{err}");
    }
    assert!(engine.recover().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_database_gives_read_only_errors_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ro.db");
    let execs = Execs::default();
    let wf = approval_workflow(&execs);
    let suspended = {
        let engine = Engine::sqlite(&db).unwrap();
        let run = engine.start(&wf, json!(10)).await.unwrap();
        assert_eq!(run.status, RunStatus::Suspended);
        run.id
    };

    // 1. Opened read-only (SQLite URI `mode=ro`): works as root too.
    let uri = format!("file:{}?mode=ro", db.display());
    let engine = Engine::builder()
        .store(SqliteStore::open(&uri).unwrap())
        .build();
    engine.register(&wf);
    check_read_only(&engine, &wf, &suspended, &uri).await;
    drop(engine);

    // 2. A read-only file.
    match ReadOnlyFile::new(&db) {
        Ok(guard) => {
            let shown = db.display().to_string();
            match SqliteStore::open(&db) {
                Ok(store) => {
                    let engine = Engine::builder().store(store).build();
                    engine.register(&wf);
                    check_read_only(&engine, &wf, &suspended, &shown).await;
                }
                Err(StoreError::ReadOnly { path, .. }) => assert_eq!(path, shown),
                Err(other) => panic!("expected StoreError::ReadOnly, got {other:?}"),
            }
            drop(guard);
        }
        Err(why) => eprintln!("read-only file case skipped: {why}"),
    }

    // Writable again: nothing was lost, the run resumes where it stopped.
    let engine = Engine::sqlite(&db).unwrap();
    engine.register(&wf);
    let run = engine
        .resume(&suspended, "ask", json!({ "ok": true }))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        run.output,
        Some(json!({ "who": "ask", "decision": { "ok": true } }))
    );
    assert_eq!(execs.of(&suspended)["prep"], 1);
    assert_eq!(
        engine.list(&RunFilter::default()).await.unwrap().len(),
        1,
        "a failed start committed nothing"
    );
    let store = engine.store().as_ref();
    assert_eq!(
        step_outputs(store, &suspended),
        committed_steps(store, &suspended)
    );
    check_event_log(store, &suspended, "read-only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_database_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();

    // Random bytes: not a database at all; opening it must not write to it either.
    let junk = dir.path().join("junk.db");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..16 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&junk, &bytes).unwrap();
    let shown = junk.display().to_string();
    match SqliteStore::open(&junk) {
        Err(StoreError::Corrupt { path, message }) => {
            assert_eq!(path, shown);
            assert!(message.contains("not a database"), "{message}");
        }
        other => panic!("expected StoreError::Corrupt, got {other:?}"),
    }
    match Engine::sqlite(&junk) {
        Err(e @ EngineError::Store(StoreError::Corrupt { .. })) => {
            assert!(e.to_string().contains(&shown), "{e}");
        }
        other => panic!("expected EngineError::Store(Corrupt), got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&junk).unwrap(),
        bytes,
        "the file was modified"
    );

    // A real database whose pages after the header page were overwritten.
    let db = dir.path().join("damaged.db");
    let execs = Execs::default();
    let wf = approval_workflow(&execs);
    let run_id = {
        let engine = Engine::sqlite(&db).unwrap();
        for i in 0..20 {
            engine.start(&wf, json!(i)).await.unwrap();
        }
        engine.start(&wf, json!(99)).await.unwrap().id
    };
    let mut data = std::fs::read(&db).unwrap();
    assert!(data.len() > 8192, "database of {} bytes", data.len());
    for (i, b) in data.iter_mut().enumerate().skip(4096) {
        *b = (i.wrapping_mul(7919) % 251) as u8;
    }
    std::fs::write(&db, &data).unwrap();
    let shown = db.display().to_string();
    let is_corrupt = |e: &EngineError| matches!(e, EngineError::Store(StoreError::Corrupt { path, .. }) if *path == shown);
    match Engine::sqlite(&db) {
        Err(e) => assert!(is_corrupt(&e), "{e:?}"),
        Ok(engine) => {
            engine.register(&wf);
            let errs = [
                engine.list(&RunFilter::default()).await.unwrap_err(),
                engine.get(&run_id).await.unwrap_err(),
                engine.start(&wf, json!(1)).await.unwrap_err(),
                engine.resume(&run_id, "ask", json!(1)).await.unwrap_err(),
                engine.recover().await.unwrap_err(),
            ];
            for e in errs {
                assert!(is_corrupt(&e), "expected StoreError::Corrupt, got {e:?}");
            }
            let store = SqliteStore::open(&db).unwrap();
            assert_ne!(store.integrity_check().unwrap(), "ok");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resume with bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_bad_input_is_a_typed_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("resume.db");
    let execs = Execs::default();
    let schema = json!({
        "type": "object",
        "required": ["approved"],
        "properties": { "approved": { "type": "boolean" } }
    });
    let wf = Workflow::new("review")
        .step("prep", counted(&execs, |_, v| json!({ "n": v })))
        .parallel([
            ("ask-a", asker(&execs).resume_schema(schema.clone())),
            ("ask-b", asker(&execs)),
            ("calc", counted(&execs, |_, v| json!(int(v, "n") * 2))),
        ])
        .then("done", counted(&execs, |_, v| json!({ "done": v })))
        .commit()
        .unwrap();
    let engine = Engine::sqlite(&db).unwrap();
    let run = engine.start(&wf, json!(21)).await.unwrap();
    let id = run.id.clone();
    assert_eq!(run.status, RunStatus::Suspended);
    let paths: Vec<&str> = run.suspended.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["ask-a", "ask-b"]);
    let store = Arc::clone(engine.store());
    let events_before = store.events(&id, 1, usize::MAX).unwrap();
    let steps_before = records(store.as_ref(), &id);

    // Unknown run.
    match engine.resume("no-such-run", "ask-a", json!({})).await {
        Err(EngineError::UnknownRun(r)) => assert_eq!(r, "no-such-run"),
        other => panic!("expected UnknownRun, got {other:?}"),
    }
    // Unknown path, and a path that exists but is not suspended.
    for path in ["nope", "calc", "prep"] {
        match engine.resume(&id, path, json!({ "approved": true })).await {
            Err(e @ EngineError::NotSuspended { .. }) => {
                let EngineError::NotSuspended {
                    run,
                    path: p,
                    suspended,
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!((run.as_str(), p.as_str()), (id.as_str(), path));
                assert_eq!(suspended, "ask-a, ask-b");
                assert!(e.to_string().contains(path), "{e}");
            }
            other => panic!("resume `{path}`: expected NotSuspended, got {other:?}"),
        }
    }
    // Resume data violating the path's resume schema.
    for (data, pointer) in [
        (json!({ "approved": "yes" }), "/approved"),
        (json!(5), ""),
        (json!({}), ""),
    ] {
        match engine.resume(&id, "ask-a", data.clone()).await {
            Err(EngineError::Schema(v)) => {
                assert!(v.place.contains("ask-a"), "{v}");
                assert_eq!(v.direction, "resume data", "{v}");
                assert_eq!(v.pointer, pointer, "{data}: {v}");
            }
            other => panic!("{data}: expected a schema violation, got {other:?}"),
        }
    }
    // A run of a workflow this engine does not know (another process's engine).
    let stranger = Engine::sqlite(&db).unwrap();
    match stranger
        .resume(&id, "ask-a", json!({ "approved": true }))
        .await
    {
        Err(EngineError::UnknownWorkflow(w)) => assert_eq!(w, "review"),
        other => panic!("expected UnknownWorkflow, got {other:?}"),
    }
    drop(stranger);
    // An engine that knows only a changed definition of the workflow.
    let changed = Workflow::new("review")
        .step("prep", counted(&execs, |_, v| json!({ "n": v })))
        .then("ask-a", asker(&execs))
        .commit()
        .unwrap();
    let other = Engine::sqlite(&db).unwrap();
    other.register(&changed);
    match other
        .resume(&id, "ask-a", json!({ "approved": true }))
        .await
    {
        Err(EngineError::DefinitionChanged {
            run,
            workflow,
            stored,
            current,
        }) => {
            assert_eq!((run.as_str(), workflow.as_str()), (id.as_str(), "review"));
            assert_eq!(stored, wf.fingerprint());
            assert_eq!(current, changed.fingerprint());
        }
        other => panic!("expected DefinitionChanged, got {other:?}"),
    }
    drop(other);

    // Nothing changed: same records, same events, still suspended at both paths, unowned.
    assert_eq!(records(store.as_ref(), &id), steps_before);
    assert_eq!(store.events(&id, 1, usize::MAX).unwrap(), events_before);
    let got = engine.get(&id).await.unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Suspended);
    assert_eq!(got.suspended, run.suspended);
    assert_eq!(store.run(&id).unwrap().unwrap().owner, None);

    // Correct resumes, from another engine on the same file: each path on its own.
    let engine2 = Engine::sqlite(&db).unwrap();
    engine2.register(&wf);
    let mid = engine2
        .resume(&id, "ask-a", json!({ "approved": true }))
        .await
        .unwrap();
    assert_eq!(mid.status, RunStatus::Suspended, "{mid:?}");
    let paths: Vec<&str> = mid.suspended.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["ask-b"]);
    match engine2
        .resume(&id, "ask-a", json!({ "approved": true }))
        .await
    {
        Err(EngineError::NotSuspended { suspended, .. }) => assert_eq!(suspended, "ask-b"),
        other => panic!("second resume of ask-a: expected NotSuspended, got {other:?}"),
    }
    let done = engine2.resume(&id, "ask-b", json!("sure")).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    assert_eq!(
        done.output,
        Some(json!({ "done": {
            "ask-a": { "who": "ask-a", "decision": { "approved": true } },
            "ask-b": { "who": "ask-b", "decision": "sure" },
            "calc": 42
        } }))
    );
    assert_eq!(
        execs.of(&id),
        BTreeMap::from([
            ("ask-a".to_string(), 2),
            ("ask-b".to_string(), 2),
            ("calc".to_string(), 1),
            ("done".to_string(), 1),
            ("prep".to_string(), 1)
        ])
    );
    assert_eq!(
        step_outputs(store.as_ref(), &id),
        committed_steps(store.as_ref(), &id)
    );
    assert_eq!(committed_steps(store.as_ref(), &id).len(), 5);
    check_event_log(store.as_ref(), &id, "resume");

    // A finished run is not suspended.
    match engine.resume(&id, "ask-b", json!(1)).await {
        Err(e @ EngineError::NotResumable { .. }) => {
            assert!(e.to_string().contains("succeeded"), "{e}");
        }
        other => panic!("expected NotResumable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_of_a_cancelled_run_is_invalid_state() {
    let dir = tempfile::tempdir().unwrap();
    let execs = Execs::default();
    let wf = approval_workflow(&execs);
    let engine = Engine::sqlite(dir.path().join("cancelled.db")).unwrap();
    let run = engine.start(&wf, json!(3)).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    let cancelled = engine.cancel(&run.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    match engine.resume(&run.id, "ask", json!(1)).await {
        Err(e @ EngineError::NotResumable { .. }) => {
            assert!(e.to_string().contains("cancelled"), "{e}");
        }
        other => panic!("expected NotResumable, got {other:?}"),
    }
    let got = engine.get(&run.id).await.unwrap().unwrap();
    assert_eq!(got.status, RunStatus::Cancelled);
    assert_eq!(
        committed_steps(engine.store().as_ref(), &run.id),
        BTreeMap::from([("prep".to_string(), 1)]),
        "the committed step is kept"
    );
    assert_eq!(execs.of(&run.id)["ask"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_of_a_running_run_is_invalid_state() {
    let engine = Engine::in_memory();
    let gate = Arc::new(tokio::sync::Notify::new());
    let step_gate = Arc::clone(&gate);
    let wf = Workflow::new("gated")
        .step(
            "wait",
            step_fn(move |_ctx: StepContext, v: Value| {
                let gate = Arc::clone(&step_gate);
                async move {
                    gate.notified().await;
                    Ok::<Value, StepError>(v)
                }
            }),
        )
        .commit()
        .unwrap();
    let handle = engine.spawn(&wf, json!("x")).unwrap();
    let id = handle.id().to_string();
    match engine.resume(&id, "wait", json!(1)).await {
        Err(EngineError::NotResumable { run, status, path }) => {
            assert_eq!(run, id);
            assert_eq!(status, RunStatus::Running);
            assert_eq!(path, "wait");
        }
        other => panic!("expected NotResumable, got {other:?}"),
    }
    gate.notify_one();
    let run = handle.wait().await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output, Some(json!("x")));
}

// ---------------------------------------------------------------------------------------------
// Panics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_step_fails_its_run_and_the_engine_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("panic.db")).unwrap();
    let execs = Execs::default();
    let slow = Workflow::new("slow")
        .step(
            "tick",
            step_fn(|_ctx: StepContext, v: i64| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(v + 1)
            }),
        )
        .then(
            "tock",
            counted(&execs, |_, v| json!(v.as_i64().unwrap() * 10)),
        )
        .commit()
        .unwrap();
    let boom = Workflow::new("boom")
        .step("fine", counted(&execs, |_, v| v.clone()))
        .parallel([
            (
                "explode",
                step_fn(|_ctx: StepContext, v: Value| async move {
                    if v["panic"] == json!(true) {
                        panic!("kaboom: {}", v["why"]);
                    }
                    Ok(v)
                }),
            ),
            (
                "sibling",
                step_fn(|_ctx: StepContext, v: Value| async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Ok(v)
                }),
            ),
        ])
        .commit()
        .unwrap();
    let selector = Workflow::new("bad-selector")
        .step("fine", counted(&execs, |_, v| v.clone()))
        .branch(
            "pick",
            |v: &Value| -> &'static str {
                if v.is_string() {
                    panic!("selector cannot handle {v}")
                }
                "a"
            },
            [("a", counted(&execs, |_, v| v.clone()))],
        )
        .commit()
        .unwrap();

    let background: Vec<RunHandle> = (0..4)
        .map(|i| engine.spawn(&slow, json!(i)).unwrap())
        .collect();
    let run = engine
        .start(&boom, json!({ "panic": true, "why": "disk on fire" }))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.clone().unwrap();
    assert!(
        error.contains("explode") && error.contains("panicked") && error.contains("disk on fire"),
        "{error}"
    );
    let stored = engine.get(&run.id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Failed);
    assert_eq!(stored.error, Some(error.clone()));
    let failed: Vec<RunEvent> = engine
        .store()
        .events(&run.id, 1, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.type_name() == "step-failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].path(), Some("explode"));

    let run = engine.start(&selector, json!("text")).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let error = run.error.unwrap();
    assert!(
        error.contains("pick") && error.contains("selector cannot handle"),
        "{error}"
    );

    // The engine goes on: the runs in flight finish, new runs work, the same workflows too.
    for (i, h) in background.into_iter().enumerate() {
        let run = h.wait().await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        assert_eq!(run.output, Some(json!((i as i64 + 1) * 10)));
    }
    let run = engine.start(&slow, json!(41)).await.unwrap();
    assert_eq!(run.output, Some(json!(420)));
    let run = engine
        .start(&boom, json!({ "panic": false }))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let run = engine.start(&selector, json!(3)).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
}
