//! The engine's behaviour through its public API, on real SQLite files. Every scenario runs
//! twice: normally, and in always-replay mode (the in-memory machine is rebuilt from the store
//! after every step), which proves every decision is in the records.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use miyabi::store::*;
use miyabi::*;
use serde_json::{Value, json};

const MODES: [bool; 2] = [false, true];

fn engine(dir: &tempfile::TempDir, replay: bool) -> Engine {
    Engine::builder()
        .store(SqliteStore::open(dir.path().join("runs.db")).unwrap())
        .always_replay(replay)
        .build()
}

/// A second engine on the same file, as another process would open it.
fn other_engine(dir: &tempfile::TempDir, replay: bool) -> Engine {
    engine(dir, replay)
}

/// A step returning `out`, counting its executions.
fn counted(out: Value, count: Arc<AtomicUsize>) -> Node {
    step_fn(move |_c: StepContext, _v: Value| {
        let out = out.clone();
        let count = Arc::clone(&count);
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            Ok(out)
        }
    })
}

fn constant(out: Value) -> Node {
    counted(out, Arc::new(AtomicUsize::new(0)))
}

fn add(n: i64) -> Node {
    step_fn(move |_c: StepContext, v: Value| async move { Ok(json!(v.as_i64().unwrap_or(0) + n)) })
}

/// A step that suspends until resumed, then outputs `{"input": .., "resume": ..}`.
fn gate(count: Arc<AtomicUsize>) -> Node {
    step_fn(move |ctx: StepContext, v: Value| {
        let count = Arc::clone(&count);
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            match ctx.resume_data() {
                Some(r) => Ok(json!({"input": v, "resume": r})),
                None => ctx.suspend(json!({"at": ctx.path(), "input": v})),
            }
        }
    })
}

fn paths(run: &Run) -> Vec<String> {
    run.suspended.iter().map(|s| s.path.clone()).collect()
}

async fn step_outputs(e: &Engine, run: &str) -> Vec<(String, Value)> {
    let evs: Vec<RunEvent> = e.events(run, 1).map(|e| e.unwrap()).collect().await;
    evs.into_iter()
        .filter_map(|e| match e.kind {
            EventKind::StepOutput { path, output } => {
                Some((path.to_string(), Arc::unwrap_or_clone(output)))
            }
            _ => None,
        })
        .collect()
}

fn brief_workflow(quality: f64, fixes: Arc<AtomicUsize>) -> CommittedWorkflow {
    Workflow::new("issue-resolution")
        .step("analyze", constant(json!({"quality": quality})))
        .then(
            "implement",
            step_fn(|_c: StepContext, v: Value| async move {
                Ok(json!({"quality": v["quality"], "code": "fn x() {}"}))
            }),
        )
        .branch(
            "review",
            |out: &Value| {
                if out["quality"].as_f64() > Some(0.8) {
                    "deploy"
                } else {
                    "fix"
                }
            },
            [
                ("deploy", constant(json!({"ready": true}))),
                ("fix", counted(json!({"ready": true, "fixed": true}), fixes)),
            ],
        )
        .parallel([
            ("test", constant(json!("passed"))),
            ("lint", constant(json!("clean"))),
            ("security", constant(json!("ok"))),
        ])
        .then(
            "deploy",
            step_fn(|_c: StepContext, v: Value| async move { Ok(json!({"deployed": v})) }),
        )
        .commit()
        .unwrap()
}

#[tokio::test]
async fn the_briefs_workflow_takes_the_selected_arm() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let fixes = Arc::new(AtomicUsize::new(0));
        let run = e
            .start(
                &brief_workflow(0.9, Arc::clone(&fixes)),
                json!({"issue": "#715"}),
            )
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        assert_eq!(
            run.output,
            Some(json!({"deployed": {"test": "passed", "lint": "clean", "security": "ok"}}))
        );
        let outs = step_outputs(&e, &run.id).await;
        let ps: Vec<&str> = outs.iter().map(|(p, _)| p.as_str()).collect();
        assert!(ps.contains(&"review/deploy"), "{ps:?}");
        assert!(!ps.contains(&"review/fix"));
        assert_eq!(fixes.load(Ordering::SeqCst), 0);

        let run = e
            .start(&brief_workflow(0.5, Arc::clone(&fixes)), json!({}))
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Succeeded);
        assert_eq!(fixes.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn a_branch_naming_no_arm_fails_with_both_names() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let wf = Workflow::new("b")
            .step("a", constant(json!(1)))
            .branch(
                "route",
                |_v: &Value| "nowhere",
                [("x", constant(json!(1))), ("y", constant(json!(2)))],
            )
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        let err = run.error.unwrap();
        assert!(
            err.contains("`route`") && err.contains("`nowhere`") && err.contains("x, y"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn parallel_children_run_concurrently_and_fail_fast_or_collect() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        // Each child waits for the other two: this only finishes if they run concurrently.
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let child = |name: &'static str| {
            let b = Arc::clone(&barrier);
            step_fn(move |_c: StepContext, v: Value| {
                let b = Arc::clone(&b);
                async move {
                    b.wait().await;
                    Ok(json!({"child": name, "input": v}))
                }
            })
        };
        let wf = Workflow::new("p")
            .parallel([("a", child("a")), ("b", child("b")), ("c", child("c"))])
            .commit()
            .unwrap();
        let run = tokio::time::timeout(Duration::from_secs(20), e.start(&wf, json!(7)))
            .await
            .expect("parallel children did not run concurrently")
            .unwrap();
        assert_eq!(
            run.output,
            Some(json!({
                "a": {"child": "a", "input": 7},
                "b": {"child": "b", "input": 7},
                "c": {"child": "c", "input": 7}
            }))
        );

        let failing = || {
            step_fn(|_c: StepContext, _v: Value| async move {
                Err::<Value, _>(StepError::fatal("boom"))
            })
        };
        let wf = Workflow::new("pf")
            .parallel([("ok", constant(json!(1))), ("bad", failing())])
            .then("after", constant(json!("unreached")))
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert!(
            run.error
                .as_deref()
                .unwrap()
                .contains("step `bad` failed: boom")
        );

        let wf = Workflow::new("pa")
            .parallel_all([("ok", constant(json!(1))), ("bad", failing())])
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded);
        let out = run.output.unwrap();
        assert_eq!(out["ok"], json!(1));
        assert!(out["bad"]["error"].as_str().unwrap().contains("boom"));
    }
}

#[tokio::test]
async fn foreach_respects_its_concurrency_limit_and_keeps_order() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (r2, p2) = (Arc::clone(&running), Arc::clone(&peak));
        let body = step_fn(move |_c: StepContext, v: i64| {
            let (running, peak) = (Arc::clone(&r2), Arc::clone(&p2));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(v * 10)
            }
        });
        let wf = Workflow::new("fe")
            .foreach("each", body, 2)
            .commit()
            .unwrap();
        let run = e.start(&wf, json!([1, 2, 3, 4, 5, 6, 7])).await.unwrap();
        assert_eq!(run.output, Some(json!([10, 20, 30, 40, 50, 60, 70])));
        assert!(
            peak.load(Ordering::SeqCst) <= 2,
            "peak {}",
            peak.load(Ordering::SeqCst)
        );
        let outs = step_outputs(&e, &run.id).await;
        assert!(
            outs.iter().any(|(p, v)| p == "each[6]" && *v == json!(70)),
            "{outs:?}"
        );

        let run = e.start(&wf, json!({"not": "an array"})).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert!(
            run.error
                .unwrap()
                .contains("foreach `each` expects an array as input, got an object")
        );

        let run = e.start(&wf, json!([])).await.unwrap();
        assert_eq!(run.output, Some(json!([])));
    }
}

#[tokio::test]
async fn loops_run_until_their_condition_and_stop_at_their_limit() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let wf = Workflow::new("l")
            .dountil("inc", add(1), |v: &Value| v.as_i64() >= Some(5), 10)
            .dowhile(
                "dbl",
                add(0).into_iter_fragment(),
                |v: &Value| v.as_i64() < Some(0),
                3,
            )
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(0)).await.unwrap();
        assert_eq!(run.output, Some(json!(5)), "{run:?}");
        let outs = step_outputs(&e, &run.id).await;
        let ps: Vec<&str> = outs.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            ps,
            ["inc[0]", "inc[1]", "inc[2]", "inc[3]", "inc[4]", "dbl[0]/x"]
        );

        let wf = Workflow::new("l2")
            .dowhile("forever", add(1), |_v: &Value| true, 4)
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(0)).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert!(
            run.error
                .unwrap()
                .contains("loop `forever` reached its limit of 4 iterations")
        );
    }
}

/// A one-step fragment (so loop bodies with inner paths are tested too).
trait Fragment {
    fn into_iter_fragment(self) -> Workflow;
}

impl Fragment for Node {
    fn into_iter_fragment(self) -> Workflow {
        Workflow::new("fragment").step("x", self)
    }
}

// The clock is paused: the sleeps take no real time, and the virtual time that passes shows
// the driver waited for them.
#[tokio::test(start_paused = true)]
async fn sleep_map_and_nested_workflows() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let inner = Workflow::new("inner")
            .step(
                "double",
                step_fn(|_c: StepContext, v: i64| async move { Ok(v * 2) }),
            )
            .input_schema(json!({"type": "integer"}))
            .commit()
            .unwrap();
        let wf = Workflow::new("outer")
            .step("start", add(1))
            .sleep("pause", Duration::from_millis(20))
            .sleep_until("until", |_v: &Value| {
                SystemTime::now() + Duration::from_millis(10)
            })
            .map("wrap", |v: &Value| json!({"value": v}))
            .then(
                "pick",
                step_fn(|_c: StepContext, v: Value| async move { Ok(v["value"].clone()) }),
            )
            .then("sub", &inner)
            .commit()
            .unwrap();
        let t0 = tokio::time::Instant::now();
        let run = e.start(&wf, json!(4)).await.unwrap();
        assert_eq!(run.output, Some(json!(10)), "{run:?}");
        // The driver waited on timers (virtual time passed)...
        assert!(t0.elapsed() > Duration::ZERO, "{:?}", t0.elapsed());
        // ...until the stored wake time, 20 ms after `start` ended. Wake times are wall-clock
        // times, so how much virtual time the wait took depends on the real time the run
        // spent before it: the record, not the elapsed time, shows the 20 ms.
        let steps = e.store().steps(&run.id).unwrap();
        let ended = |p: &str| steps.iter().find(|s| &*s.path == p).unwrap();
        let wake = ended("pause").output.as_ref().unwrap()["wake_at"]
            .as_i64()
            .unwrap();
        assert!(wake - ended("start").updated_at >= 20, "{steps:?}");
        let outs = step_outputs(&e, &run.id).await;
        assert!(outs.iter().any(|(p, _)| p == "sub/double"), "{outs:?}");

        let bad = Workflow::new("outer2")
            .step("s", constant(json!("text")))
            .then("sub", &inner)
            .commit()
            .unwrap();
        let run = e.start(&bad, json!(null)).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert!(
            run.error
                .unwrap()
                .contains("nested workflow `inner` at `sub`: input violates its schema")
        );
    }
}

#[tokio::test]
async fn schemas_are_checked_and_name_step_direction_and_pointer() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let wf = Workflow::new("s")
            .step("make", constant(json!({"user": {"age": "old"}})))
            .then(
                "check",
                constant(json!(1)).input_schema(json!({
                    "type": "object",
                    "properties": {"user": {"type": "object", "properties": {"age": {"type": "integer"}}}}
                })),
            )
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        let err = run.error.unwrap();
        assert!(
            err.contains("step `check`: input violates its schema at `/user/age`"),
            "{err}"
        );

        let wf = Workflow::new("s2")
            .step(
                "make",
                constant(json!(3)).output_schema(json!({"type": "string"})),
            )
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert!(
            run.error
                .unwrap()
                .contains("step `make`: output violates its schema at ``")
        );

        let wf = Workflow::new("s3")
            .input_schema(json!({"type": "object", "required": ["issue"]}))
            .step("a", constant(json!(1)))
            .commit()
            .unwrap();
        match e.start(&wf, json!({})).await {
            Err(EngineError::Schema(v)) => {
                assert_eq!(v.place, "workflow `s3`");
                assert_eq!(v.direction, "input");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            e.list(&RunFilter {
                workflow: Some("s3".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
        );
    }
}

#[test]
fn commit_rejects_bad_definitions() {
    let err = Workflow::new("e").commit().unwrap_err();
    assert!(matches!(err, WorkflowError::Empty { .. }));
    let err = Workflow::new("d")
        .step("a", constant(json!(1)))
        .then("a", constant(json!(2)))
        .commit()
        .unwrap_err();
    assert_eq!(
        err,
        WorkflowError::DuplicateId {
            workflow: "d".into(),
            id: "a".into()
        }
    );
    let err = Workflow::new("d2")
        .step("a", constant(json!(1)))
        .parallel([("b", constant(json!(1))), ("a", constant(json!(1)))])
        .commit()
        .unwrap_err();
    assert!(matches!(err, WorkflowError::DuplicateId { ref id, .. } if id == "a"));
    let err = Workflow::new("i")
        .step("a/b", constant(json!(1)))
        .commit()
        .unwrap_err();
    assert!(err.to_string().contains("`/` is reserved"), "{err}");
    let err = Workflow::new("br")
        .branch("r", |_v: &Value| "x", Vec::<(&'static str, Node)>::new())
        .commit()
        .unwrap_err();
    assert!(err.to_string().contains("branch() needs at least one arm"));
    let err = Workflow::new("sc")
        .step(
            "a",
            constant(json!(1)).input_schema(json!({"type": "no-such-type"})),
        )
        .commit()
        .unwrap_err();
    assert!(
        matches!(err, WorkflowError::BadSchema { ref place, .. } if place == "step `a` input"),
        "{err}"
    );
    let err = Workflow::new("fe")
        .foreach("x", constant(json!(1)), 0)
        .commit()
        .unwrap_err();
    assert!(err.to_string().contains("concurrency must be at least 1"));
    let err = Workflow::new("lp")
        .dowhile("x", constant(json!(1)), |_v: &Value| true, 0)
        .commit()
        .unwrap_err();
    assert!(err.to_string().contains("max_iterations"));
}

#[test]
fn fingerprints_follow_structure() {
    let a = Workflow::new("w")
        .step("a", constant(json!(1)))
        .commit()
        .unwrap();
    let b = Workflow::new("w")
        .step("a", constant(json!(2)))
        .commit()
        .unwrap();
    let c = Workflow::new("w")
        .step("a", constant(json!(1)))
        .then("b", constant(json!(1)))
        .commit()
        .unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_ne!(a.fingerprint(), c.fingerprint());
}

#[tokio::test]
async fn retries_back_off_and_stop_on_fatal_errors() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = Arc::clone(&calls);
        let flaky = step_fn(move |ctx: StepContext, _v: Value| {
            let calls = Arc::clone(&c2);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if ctx.attempt() < 3 {
                    Err(StepError::retryable(format!("try {}", ctx.attempt())))
                } else {
                    Ok(json!({"attempt": ctx.attempt()}))
                }
            }
        })
        .retry(RetryPolicy::attempts(3).initial_delay(Duration::from_millis(1)));
        let wf = Workflow::new("r").step("flaky", flaky).commit().unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(run.output, Some(json!({"attempt": 3})));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let evs: Vec<RunEvent> = e.events(&run.id, 1).map(|e| e.unwrap()).collect().await;
        let retries = evs
            .iter()
            .filter(|e| e.type_name() == "step-retrying")
            .count();
        assert_eq!(retries, 2);

        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = Arc::clone(&calls);
        let fatal = step_fn(move |_ctx: StepContext, _v: Value| {
            let calls = Arc::clone(&c2);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<Value, _>(StepError::fatal("bad credentials"))
            }
        })
        .retry(RetryPolicy::attempts(5).initial_delay(Duration::from_millis(1)));
        let wf = Workflow::new("f").step("login", fatal).commit().unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let always = step_fn(|_ctx: StepContext, _v: Value| async move {
            Err::<Value, _>(std::io::Error::other("connection reset").into())
        })
        .retry(RetryPolicy::attempts(2).initial_delay(Duration::from_millis(1)));
        let wf = Workflow::new("g").step("net", always).commit().unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(
            run.error.as_deref(),
            Some("step `net` failed after 2 attempts: connection reset")
        );
    }
}

// The clock is paused: the timeouts fire in virtual time, before the steps' long sleeps end,
// without the test waiting for either.
#[tokio::test(start_paused = true)]
async fn step_and_run_timeouts() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let slow = step_fn(move |_ctx: StepContext, _v: Value| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(json!("late"))
        })
        .timeout(Duration::from_millis(30));
        let wf = Workflow::new("t").step("slow", slow).commit().unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert!(
            run.error
                .unwrap()
                .contains("step `slow` timed out after 30 ms")
        );

        let wf = Workflow::new("rt")
            .step(
                "wait",
                step_fn(|_c: StepContext, _v: Value| async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(json!(1))
                }),
            )
            .timeout(Duration::from_millis(50))
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert!(run.error.unwrap().contains("run timed out"));
    }
}

#[tokio::test]
async fn cancel_stops_in_flight_steps_through_their_token() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let started = Arc::new(tokio::sync::Notify::new());
        let saw_cancel = Arc::new(AtomicBool::new(false));
        let (st, sc) = (Arc::clone(&started), Arc::clone(&saw_cancel));
        let long = step_fn(move |ctx: StepContext, _v: Value| {
            let (st, sc) = (Arc::clone(&st), Arc::clone(&sc));
            async move {
                st.notify_one();
                ctx.cancellation().cancelled().await;
                sc.store(true, Ordering::SeqCst);
                Ok(json!("stopped"))
            }
        });
        let after = Arc::new(AtomicUsize::new(0));
        let wf = Workflow::new("c")
            .step("long", long)
            .then("after", counted(json!(1), Arc::clone(&after)))
            .commit()
            .unwrap();
        let h = e.spawn(&wf, json!(null)).unwrap();
        started.notified().await;
        let run = e.cancel(h.id()).await.unwrap();
        assert_eq!(run.status, RunStatus::Cancelled);
        let waited = h.wait().await.unwrap();
        assert_eq!(waited.status, RunStatus::Cancelled);
        assert!(saw_cancel.load(Ordering::SeqCst));
        assert_eq!(after.load(Ordering::SeqCst), 0);
        assert_eq!(
            e.get(&run.id).await.unwrap().unwrap().status,
            RunStatus::Cancelled
        );

        // A suspended run is cancelled at once; a finished one cannot be.
        let wf = Workflow::new("c2")
            .step("g", gate(Arc::new(AtomicUsize::new(0))))
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(run.status, RunStatus::Suspended);
        assert_eq!(
            e.cancel(&run.id).await.unwrap().status,
            RunStatus::Cancelled
        );
        assert!(matches!(
            e.cancel(&run.id).await,
            Err(EngineError::Finished {
                status: RunStatus::Cancelled,
                ..
            })
        ));
    }
}

#[tokio::test]
async fn shared_state_is_visible_to_later_steps_and_persisted() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let wf = Workflow::new("st")
            .step(
                "write",
                step_fn(|ctx: StepContext, _v: Value| async move {
                    ctx.set_state("tokens", 120);
                    Ok(json!(null))
                }),
            )
            .then("gate", gate(Arc::new(AtomicUsize::new(0))))
            .then(
                "read",
                step_fn(|ctx: StepContext, _v: Value| async move {
                    Ok(json!({"tokens": ctx.state("tokens"), "all": ctx.state_snapshot()}))
                }),
            )
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(run.status, RunStatus::Suspended);
        // Another engine (process) on the same file resumes it: the state comes from the store.
        let e2 = other_engine(&dir, replay);
        e2.register(&wf);
        let run = e2.resume(&run.id, "gate", json!("ok")).await.unwrap();
        assert_eq!(
            run.output,
            Some(json!({"tokens": 120, "all": {"tokens": 120}})),
            "{run:?}"
        );
    }
}

#[tokio::test]
async fn events_replay_from_any_sequence_number_and_stream_live() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let go = Arc::new(tokio::sync::Notify::new());
        let g2 = Arc::clone(&go);
        let wf = Workflow::new("ev")
            .step(
                "first",
                step_fn(move |ctx: StepContext, _v: Value| {
                    let go = Arc::clone(&g2);
                    async move {
                        ctx.emit("progress", json!({"pct": 50}));
                        go.notified().await;
                        Ok(json!(1))
                    }
                }),
            )
            .then("second", add(1))
            .commit()
            .unwrap();
        let h = e.spawn(&wf, json!(null)).unwrap();
        let live = e.events(h.id(), 1);
        go.notify_one();
        let evs: Vec<RunEvent> = live.map(|e| e.unwrap()).collect().await;
        let seqs: Vec<u64> = evs.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=evs.len() as u64).collect::<Vec<_>>(),
            "gapless: {evs:?}"
        );
        assert_eq!(evs.last().unwrap().type_name(), "run-finished");
        assert!(evs.iter().any(|e| matches!(&e.kind, EventKind::Custom { name, data, path } if name == "progress" && data["pct"] == 50 && &**path == "first")));
        let run = h.wait().await.unwrap();
        let later: Vec<RunEvent> = e.events(&run.id, 4).map(|e| e.unwrap()).collect().await;
        assert_eq!(later.first().unwrap().seq, 4);
        assert_eq!(later.len(), evs.len() - 3);
    }
}

#[tokio::test]
async fn suspension_inside_parallel_resumes_each_path_and_keeps_siblings() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let (gates, sibling) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let wf = Workflow::new("ps")
            .parallel([
                ("legal", gate(Arc::clone(&gates))),
                ("tests", counted(json!("green"), Arc::clone(&sibling))),
                ("ops", gate(Arc::clone(&gates))),
            ])
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(1)).await.unwrap();
        assert_eq!(run.status, RunStatus::Suspended);
        assert_eq!(paths(&run), ["legal", "ops"]);
        assert_eq!(run.suspended[0].payload, json!({"at": "legal", "input": 1}));

        let e2 = other_engine(&dir, replay);
        e2.register(&wf);
        let run = e2.resume(&run.id, "ops", json!("ops-ok")).await.unwrap();
        assert_eq!(run.status, RunStatus::Suspended);
        assert_eq!(paths(&run), ["legal"]);
        assert_eq!(e2.get(&run.id).await.unwrap().unwrap().suspended.len(), 1);
        let run = e.resume(&run.id, "legal", json!("legal-ok")).await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded);
        assert_eq!(
            run.output,
            Some(json!({
                "legal": {"input": 1, "resume": "legal-ok"},
                "tests": "green",
                "ops": {"input": 1, "resume": "ops-ok"}
            }))
        );
        assert_eq!(
            sibling.load(Ordering::SeqCst),
            1,
            "the finished sibling never re-ran"
        );
        assert_eq!(
            gates.load(Ordering::SeqCst),
            4,
            "each gate ran once to suspend, once resumed"
        );
    }
}

#[tokio::test]
async fn suspension_inside_foreach_loops_and_nested_workflows() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let count = Arc::new(AtomicUsize::new(0));
        // foreach: every item suspends on its own.
        let wf = Workflow::new("fs")
            .foreach("each", gate(Arc::clone(&count)), 2)
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(["a", "b", "c"])).await.unwrap();
        assert_eq!(paths(&run), ["each[0]", "each[1]", "each[2]"]);
        let run = e.resume(&run.id, "each[1]", json!(1)).await.unwrap();
        assert_eq!(paths(&run), ["each[0]", "each[2]"]);
        let run = e.resume(&run.id, "each[2]", json!(2)).await.unwrap();
        let run = e.resume(&run.id, "each[0]", json!(0)).await.unwrap();
        assert_eq!(
            run.output,
            Some(json!([
                {"input": "a", "resume": 0},
                {"input": "b", "resume": 1},
                {"input": "c", "resume": 2}
            ]))
        );

        // loop: a body that suspends in every iteration.
        let body = Workflow::new("body")
            .step("ask", gate(Arc::clone(&count)))
            .then(
                "count",
                step_fn(|_c: StepContext, v: Value| async move { Ok(v["resume"].clone()) }),
            );
        let wf = Workflow::new("ls")
            .dountil("review", body, |v: &Value| v == "done", 5)
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(paths(&run), ["review[0]/ask"]);
        let run = e
            .resume(&run.id, "review[0]/ask", json!("again"))
            .await
            .unwrap();
        assert_eq!(paths(&run), ["review[1]/ask"]);
        let run = e
            .resume(&run.id, "review[1]/ask", json!("done"))
            .await
            .unwrap();
        assert_eq!(run.output, Some(json!("done")));

        // nested workflow: the inner path suspends and resumes by its full path.
        let inner = Workflow::new("approval")
            .step("sign", gate(Arc::clone(&count)))
            .commit()
            .unwrap();
        let wf = Workflow::new("ns")
            .step("prep", constant(json!("doc")))
            .then("approve", &inner)
            .then(
                "after",
                step_fn(|_c: StepContext, v: Value| async move { Ok(json!({"signed": v})) }),
            )
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(paths(&run), ["approve/sign"]);
        let e2 = other_engine(&dir, replay);
        e2.register(&wf);
        let run = e2
            .resume(&run.id, "approve/sign", json!("alice"))
            .await
            .unwrap();
        assert_eq!(
            run.output,
            Some(json!({"signed": {"input": "doc", "resume": "alice"}}))
        );
    }
}

#[tokio::test]
async fn resume_checks_state_path_and_schema_without_losing_anything() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let wf = Workflow::new("rs")
            .step("a", constant(json!(1)))
            .then(
                "approve",
                gate(Arc::new(AtomicUsize::new(0))).resume_schema(json!({
                    "type": "object", "required": ["approved"],
                    "properties": {"approved": {"type": "boolean"}}
                })),
            )
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        match e
            .resume(&run.id, "approve", json!({"approved": "yes"}))
            .await
        {
            Err(EngineError::Schema(v)) => {
                assert_eq!(v.place, "step `approve`");
                assert_eq!(v.direction, "resume data");
                assert_eq!(v.pointer, "/approved");
            }
            other => panic!("{other:?}"),
        }
        match e.resume(&run.id, "nope", json!({})).await {
            Err(EngineError::NotSuspended { suspended, .. }) => assert_eq!(suspended, "approve"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            e.resume("no-such-run", "approve", json!({})).await,
            Err(EngineError::UnknownRun(_))
        ));
        let run = e
            .resume(&run.id, "approve", json!({"approved": true}))
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Succeeded);
        assert!(matches!(
            e.resume(&run.id, "approve", json!({"approved": true}))
                .await,
            Err(EngineError::NotResumable {
                status: RunStatus::Succeeded,
                ..
            })
        ));
    }
}

#[tokio::test]
async fn replay_takes_the_recorded_branch_even_if_the_selector_changed() {
    static FLIP: AtomicBool = AtomicBool::new(false);
    for replay in MODES {
        FLIP.store(false, Ordering::SeqCst);
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let wf = Workflow::new("det")
            .branch(
                "pick",
                |_v: &Value| {
                    if FLIP.load(Ordering::SeqCst) {
                        "b"
                    } else {
                        "a"
                    }
                },
                [
                    (
                        "a",
                        Node::from(
                            Workflow::new("fa").step("wait", gate(Arc::new(AtomicUsize::new(0)))),
                        ),
                    ),
                    (
                        "b",
                        Node::from(
                            Workflow::new("fb").step("wait", gate(Arc::new(AtomicUsize::new(0)))),
                        ),
                    ),
                ],
            )
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(0)).await.unwrap();
        assert_eq!(paths(&run), ["pick/a/wait"]);
        FLIP.store(true, Ordering::SeqCst);
        let e2 = other_engine(&dir, replay);
        e2.register(&wf);
        let run = e2
            .resume(&run.id, "pick/a/wait", json!("ok"))
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Succeeded);
        assert_eq!(run.output, Some(json!({"input": 0, "resume": "ok"})));
    }
}

#[tokio::test]
async fn a_changed_definition_is_a_clear_error_until_the_old_one_is_registered() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir, false);
    let v1 = Workflow::new("deploy")
        .step("approve", gate(Arc::new(AtomicUsize::new(0))))
        .commit()
        .unwrap();
    let run = e.start(&v1, json!(null)).await.unwrap();
    let v2 = Workflow::new("deploy")
        .step("approve", gate(Arc::new(AtomicUsize::new(0))))
        .then("notify", constant(json!(1)))
        .commit()
        .unwrap();
    let e2 = other_engine(&dir, false);
    e2.register(&v2);
    match e2.resume(&run.id, "approve", json!(1)).await {
        Err(EngineError::DefinitionChanged {
            stored, current, ..
        }) => {
            assert_eq!(stored, v1.fingerprint());
            assert_eq!(current, v2.fingerprint());
        }
        other => panic!("{other:?}"),
    }
    e2.register(&v1);
    e2.register(&v2);
    let run = e2.resume(&run.id, "approve", json!(1)).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    // New runs use the newest definition.
    let fresh = e2.start(&v2, json!(null)).await.unwrap();
    assert_eq!(fresh.status, RunStatus::Suspended);
}

#[tokio::test]
async fn list_and_get_filter_by_workflow_status_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir, false);
    let done = Workflow::new("done")
        .step("a", constant(json!(1)))
        .commit()
        .unwrap();
    let wait = Workflow::new("wait")
        .step("g", gate(Arc::new(AtomicUsize::new(0))))
        .commit()
        .unwrap();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for _ in 0..3 {
        e.start(&done, json!(null)).await.unwrap();
    }
    let w = e.start(&wait, json!({"x": 1})).await.unwrap();
    let all = e.list(&RunFilter::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].id, w.id, "newest first");
    let f = |workflow: Option<&str>, status: Option<RunStatus>| RunFilter {
        workflow: workflow.map(str::to_string),
        status,
        ..Default::default()
    };
    assert_eq!(e.list(&f(Some("done"), None)).await.unwrap().len(), 3);
    assert_eq!(
        e.list(&f(None, Some(RunStatus::Suspended)))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        e.list(&f(Some("done"), Some(RunStatus::Suspended)))
            .await
            .unwrap()
            .len(),
        0
    );
    let after = RunFilter {
        created_after: Some(t0),
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(e.list(&after).await.unwrap().len(), 2);
    let before = RunFilter {
        created_before: Some(t0),
        ..Default::default()
    };
    assert_eq!(e.list(&before).await.unwrap().len(), 0);
    let got = e.get(&w.id).await.unwrap().unwrap();
    assert_eq!(got.input, json!({"x": 1}));
    assert_eq!(got.suspended[0].path, "g");
    assert!(e.get("missing").await.unwrap().is_none());
}

#[tokio::test]
async fn a_tampered_record_stops_replay_naming_the_first_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir, false);
    let wf = Workflow::new("tamper")
        .step("a", constant(json!(1)))
        .then("g", gate(Arc::new(AtomicUsize::new(0))))
        .commit()
        .unwrap();
    let run = e.start(&wf, json!(null)).await.unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("runs.db")).unwrap();
    conn.execute("UPDATE steps SET kind = 'map' WHERE path = 'a'", [])
        .unwrap();
    drop(conn);
    match e.resume(&run.id, "g", json!(1)).await {
        Err(EngineError::ReplayDiverged { path, detail, .. }) => {
            assert_eq!(path, "a");
            assert!(
                detail.contains("the definition has a step here, the records a map"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A suspended run of `a` → branch `b` → gate `g`, and the engine over its file.
async fn suspended_after_a_branch(
    dir: &tempfile::TempDir,
    ran_a: Arc<AtomicUsize>,
) -> (Engine, CommittedWorkflow, String) {
    let e = engine(dir, false);
    let wf = Workflow::new("tamper-branch")
        .step("a", counted(json!(1), ran_a))
        .branch("b", |_: &Value| "yes", [("yes", constant(json!(2)))])
        .then("g", gate(Arc::new(AtomicUsize::new(0))))
        .commit()
        .unwrap();
    let run = e.start(&wf, json!(null)).await.unwrap();
    assert_eq!(run.status, RunStatus::Suspended);
    (e, wf, run.id)
}

fn tamper(dir: &tempfile::TempDir, sql: &str) {
    let conn = rusqlite::Connection::open(dir.path().join("runs.db")).unwrap();
    assert_eq!(conn.execute(sql, []).unwrap(), 1, "{sql}");
}

#[tokio::test]
async fn a_corrupt_decision_record_stops_replay_instead_of_being_read_as_a_default() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _wf, id) = suspended_after_a_branch(&dir, Arc::new(AtomicUsize::new(0))).await;
    tamper(
        &dir,
        r#"UPDATE steps SET output = '{"choice":"yes"}' WHERE path = 'b'"#,
    );
    match e.resume(&id, "g", json!(1)).await {
        Err(EngineError::ReplayDiverged { path, detail, .. }) => {
            assert_eq!(path, "b");
            assert!(
                detail.contains(
                    "the stored record is corrupt: a branch record without an `arm` name"
                ),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_missing_record_before_a_stored_one_stops_replay_without_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    let ran_a = Arc::new(AtomicUsize::new(0));
    let (e, _wf, id) = suspended_after_a_branch(&dir, Arc::clone(&ran_a)).await;
    // The history now says the branch chose before `a` ran.
    tamper(&dir, "DELETE FROM steps WHERE path = 'a'");
    match e.resume(&id, "g", json!(1)).await {
        Err(EngineError::ReplayDiverged { path, detail, .. }) => {
            assert_eq!(path, "a");
            assert!(
                detail.contains("while the records go on with `b`"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ran_a.load(Ordering::SeqCst),
        1,
        "`a` ran again on a diverged replay"
    );
}

#[tokio::test]
async fn in_memory_store_runs_the_same_workflows() {
    let e = Engine::in_memory();
    let run = e
        .start(
            &brief_workflow(0.9, Arc::new(AtomicUsize::new(0))),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    let wf = Workflow::new("m")
        .step("g", gate(Arc::new(AtomicUsize::new(0))))
        .commit()
        .unwrap();
    let run = e.start(&wf, json!(1)).await.unwrap();
    let run = e.resume(&run.id, "g", json!(2)).await.unwrap();
    assert_eq!(run.output, Some(json!({"input": 1, "resume": 2})));
}

#[tokio::test]
async fn records_are_committed_before_the_run_waits_for_anything() {
    for durability in [Durability::Coalesced, Durability::EveryStep] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("runs.db");
        let e = Engine::builder()
            .store(SqliteStore::open(&db).unwrap())
            .durability(durability)
            .build();
        // `look` waits (it yields once, as any step waiting for I/O would); by then `a` and `b`
        // (pure computation) must be committed, as another process reading the file would see
        // them.
        let db2 = db.clone();
        let look = step_fn(move |ctx: StepContext, _v: Value| {
            let db = db2.clone();
            async move {
                tokio::task::yield_now().await;
                let other = SqliteStore::open(&db).unwrap();
                let steps = other.steps(ctx.run_id()).unwrap();
                let mut seen: Vec<String> = steps
                    .into_iter()
                    .filter(|s| s.status == StepStatus::Succeeded)
                    .map(|s| s.path.to_string())
                    .collect();
                seen.sort();
                let run = other.run(ctx.run_id()).unwrap().map(|r| r.status);
                Ok(json!({"seen": seen, "run": run}))
            }
        });
        let wf = Workflow::new("durable")
            .step("a", add(1))
            .then("b", add(1))
            .then("look", look)
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(0)).await.unwrap();
        assert_eq!(
            run.output,
            Some(json!({"seen": ["a", "b"], "run": "running"})),
            "{durability:?}"
        );
    }
}

#[tokio::test]
async fn a_resumed_run_keeps_its_owner_and_logs_one_suspension() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir, false);
    let db = dir.path().join("runs.db");
    let db2 = db.clone();
    let owner_seen = step_fn(move |ctx: StepContext, v: Value| {
        let db = db2.clone();
        async move {
            tokio::task::yield_now().await;
            let r = SqliteStore::open(&db)
                .unwrap()
                .run(ctx.run_id())
                .unwrap()
                .unwrap();
            Ok(json!({"owner": r.owner.is_some(), "status": r.status, "v": v}))
        }
    });
    let wf = Workflow::new("own")
        .step("g", gate(Arc::new(AtomicUsize::new(0))))
        .then("check", owner_seen)
        .commit()
        .unwrap();
    let run = e.start(&wf, json!(1)).await.unwrap();
    let run = e.resume(&run.id, "g", json!(2)).await.unwrap();
    let out = run.output.unwrap();
    assert_eq!(out["owner"], json!(true));
    assert_eq!(out["status"], json!("running"));
    let evs: Vec<RunEvent> = e.events(&run.id, 1).map(|e| e.unwrap()).collect().await;
    assert_eq!(
        evs.iter()
            .filter(|e| e.type_name() == "run-suspended")
            .count(),
        1
    );
}

// The clock is paused: the 20 s guard below is virtual, so it fails at once (instead of
// hanging) if `start` waits for the sibling, and costs nothing otherwise.
#[tokio::test(start_paused = true)]
async fn a_fail_fast_failure_returns_at_once_and_nothing_follows_run_finished() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir, false);
    // Dropped when the sibling's future ends or is dropped: then it can write nothing more.
    let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<()>();
    let gone_tx = Arc::new(std::sync::Mutex::new(Some(gone_tx)));
    let slow = step_fn(move |ctx: StepContext, _v: Value| {
        let guard = gone_tx.lock().unwrap().take();
        async move {
            let _guard = guard;
            ctx.cancellation().cancelled().await;
            Ok(json!("late"))
        }
    });
    let bad =
        step_fn(
            |_c: StepContext, _v: Value| async move { Err::<Value, _>(StepError::fatal("broken")) },
        );
    let wf = Workflow::new("ff")
        .parallel([("bad", bad), ("slow", slow)])
        .commit()
        .unwrap();
    let run = tokio::time::timeout(Duration::from_secs(20), e.start(&wf, json!(null)))
        .await
        .expect("fail-fast did not return")
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.unwrap().contains("step `bad` failed: broken"));
    // Wait until the cancelled sibling is gone, then read the log.
    let _ = gone_rx.await;
    let evs: Vec<RunEvent> = e.events(&run.id, 1).map(|e| e.unwrap()).collect().await;
    assert_eq!(evs.last().unwrap().type_name(), "run-finished");
}

#[tokio::test]
async fn keyset_paging_lists_every_run_once_newest_first_on_both_stores() {
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<Arc<dyn Store>> = vec![
        Arc::new(MemoryStore::new()),
        Arc::new(SqliteStore::open(dir.path().join("page.db")).unwrap()),
    ];
    for store in stores {
        let e = Engine::builder().store_arc(store).build();
        let a = Workflow::new("a")
            .step("s", constant(json!(1)))
            .commit()
            .unwrap();
        let b = Workflow::new("b")
            .step("s", constant(json!(2)))
            .commit()
            .unwrap();
        for i in 0..7 {
            e.start(if i % 2 == 0 { &a } else { &b }, json!(i))
                .await
                .unwrap();
        }
        let all = e.list(&RunFilter::default()).await.unwrap();
        for (workflow, expected) in [(None, 7), (Some("a"), 4)] {
            let mut seen = Vec::new();
            let mut before = None;
            loop {
                let page = e
                    .list(&RunFilter {
                        workflow: workflow.map(str::to_string),
                        before: before.clone(),
                        limit: Some(3),
                        ..RunFilter::default()
                    })
                    .await
                    .unwrap();
                let Some(last) = page.last() else { break };
                before = Some((last.created_at, last.id.clone()));
                seen.extend(page.into_iter().map(|r| r.id));
            }
            let want: Vec<String> = all
                .iter()
                .filter(|r| workflow.is_none_or(|w| r.workflow == w))
                .map(|r| r.id.clone())
                .collect();
            assert_eq!(seen.len(), expected);
            assert_eq!(seen, want);
        }
    }
}

/// A step's timeout cancels that step's own token only: a sibling without a timeout shares
/// the run's token, which must not fire. The clock is paused: the sibling's 200 ms watch and
/// the 30 ms timeout run in virtual time, in that order, without real waiting.
#[tokio::test(start_paused = true)]
async fn a_step_timeout_cancels_that_step_only() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let attempts = Arc::new(AtomicUsize::new(0));
        let at = Arc::clone(&attempts);
        let flaky = step_fn(move |ctx: StepContext, _v: Value| {
            let at = Arc::clone(&at);
            async move {
                if at.fetch_add(1, Ordering::SeqCst) == 0 {
                    // The first attempt waits until its timeout cancels it.
                    ctx.cancellation().cancelled().await;
                    return Ok(json!("too late"));
                }
                Ok(json!("second attempt"))
            }
        })
        .timeout(Duration::from_millis(30))
        .retry(RetryPolicy::attempts(2).initial_delay(Duration::from_millis(1)));
        let sibling_cancelled = Arc::new(AtomicBool::new(false));
        let sc = Arc::clone(&sibling_cancelled);
        let watcher = step_fn(move |ctx: StepContext, _v: Value| {
            let sc = Arc::clone(&sc);
            async move {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = ctx.cancellation().cancelled() => sc.store(true, Ordering::SeqCst),
                }
                Ok(json!("watched"))
            }
        });
        let wf = Workflow::new("timeout-own-token")
            .parallel([("flaky", flaky), ("watch", watcher)])
            .commit()
            .unwrap();
        let run = e.start(&wf, json!(null)).await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        assert_eq!(
            run.output,
            Some(json!({"flaky": "second attempt", "watch": "watched"}))
        );
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert!(
            !sibling_cancelled.load(Ordering::SeqCst),
            "the timeout of `flaky` cancelled its sibling"
        );
    }
}

/// A step that fails (fatally) while `broken` is set, counting its executions.
fn flaky(broken: Arc<AtomicBool>, count: Arc<AtomicUsize>) -> Node {
    step_fn(move |_c: StepContext, v: Value| {
        let (broken, count) = (Arc::clone(&broken), Arc::clone(&count));
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            if broken.load(Ordering::SeqCst) {
                Err(StepError::fatal(format!("service down for {v}")))
            } else {
                Ok(json!({ "done": v }))
            }
        }
    })
}

#[tokio::test]
async fn a_failed_run_is_retried_from_its_failed_step_in_another_engine() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let (first, broken, calls) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(true)),
            Arc::new(AtomicUsize::new(0)),
        );
        let wf = Workflow::new("ship")
            .step("prepare", counted(json!("ready"), Arc::clone(&first)))
            .step("call", flaky(Arc::clone(&broken), Arc::clone(&calls)))
            .commit()
            .unwrap();
        e.register(&wf);
        let run = e.start(&wf, json!(1)).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        let failed_at = run.error.clone().unwrap();
        assert!(failed_at.contains("service down"), "{failed_at}");

        // Another process on the same file retries it once the service is back.
        broken.store(false, Ordering::SeqCst);
        let other = other_engine(&dir, replay);
        other.register(&wf);
        let retried = other.retry(&run.id).await.unwrap();
        assert_eq!(retried.status, RunStatus::Succeeded, "{retried:?}");
        assert_eq!(retried.output, Some(json!({ "done": "ready" })));
        assert_eq!(retried.error, None);
        assert_eq!(
            first.load(Ordering::SeqCst),
            1,
            "the step that succeeded is not re-run"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // The step's record is the new attempt's; the log keeps the failure, then the retry.
        let steps = other.store().steps(&run.id).unwrap();
        let call = steps.iter().find(|s| &*s.path == "call").unwrap();
        assert_eq!((call.status, call.attempt), (StepStatus::Succeeded, 1));
        let events: Vec<RunEvent> = other.events(&run.id, 1).map(|e| e.unwrap()).collect().await;
        let kinds: Vec<&str> = events.iter().map(|e| e.type_name()).collect();
        let retried_at = kinds.iter().position(|k| *k == "run-retried").unwrap();
        assert!(kinds[..retried_at].contains(&"step-failed"), "{kinds:?}");
        assert_eq!(kinds[retried_at - 1], "run-finished", "{kinds:?}");
        assert_eq!(kinds.last(), Some(&"run-finished"), "{kinds:?}");
        assert!(
            matches!(&events[retried_at].kind, EventKind::RunRetried { paths } if paths == &["call".to_string()]),
            "{:?}",
            events[retried_at]
        );
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());

        // Only failed runs: a succeeded one is refused, naming its status.
        match other.retry(&run.id).await {
            Err(EngineError::NotRetryable { run: r, status }) => {
                assert_eq!(
                    (r.as_str(), status),
                    (run.id.as_str(), RunStatus::Succeeded)
                );
            }
            other => panic!("expected NotRetryable, got {other:?}"),
        }
        assert!(matches!(
            other.retry("no-such-run").await,
            Err(EngineError::UnknownRun(_))
        ));
    }
}

#[tokio::test]
async fn a_retry_reruns_only_the_failed_items_and_a_failing_retry_fails_again() {
    for replay in MODES {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(&dir, replay);
        let seen = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
        let broken = Arc::new(AtomicBool::new(true));
        let (s2, b2) = (Arc::clone(&seen), Arc::clone(&broken));
        let body = step_fn(move |_c: StepContext, v: i64| {
            let (seen, broken) = (Arc::clone(&s2), Arc::clone(&b2));
            async move {
                seen.lock().unwrap().push(v);
                if v == 3 && broken.load(Ordering::SeqCst) {
                    return Err(StepError::fatal("item 3 is bad"));
                }
                Ok(v * 10)
            }
        });
        let wf = Workflow::new("items")
            .foreach("each", body, 1)
            .commit()
            .unwrap();
        e.register(&wf);
        let run = e.start(&wf, json!([1, 2, 3, 4])).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        let before: Vec<i64> = seen.lock().unwrap().clone();

        // Still broken: the retry runs item 3 again and the run fails again, retryable again.
        let again = e.retry(&run.id).await.unwrap();
        assert_eq!(again.status, RunStatus::Failed);
        assert!(again.error.unwrap().contains("item 3 is bad"));
        broken.store(false, Ordering::SeqCst);
        let done = e.retry(&run.id).await.unwrap();
        assert_eq!(done.output, Some(json!([10, 20, 30, 40])));
        let all = seen.lock().unwrap().clone();
        let after = &all[before.len()..];
        assert!(
            !after.contains(&1) && !after.contains(&2),
            "items that succeeded ran again: {all:?}"
        );
        assert_eq!(after.iter().filter(|v| **v == 3).count(), 2, "{all:?}");
    }
}

#[tokio::test]
async fn a_run_that_failed_outside_any_step_is_not_retried_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(&dir, false);
    let wf = Workflow::new("rt")
        .step(
            "wait",
            step_fn(|_c: StepContext, _v: Value| async move {
                std::future::pending::<()>().await;
                Ok(json!(1))
            }),
        )
        .timeout(Duration::from_millis(20))
        .commit()
        .unwrap();
    e.register(&wf);
    let run = e.start(&wf, json!(null)).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let last = e.store().last_seq(&run.id).unwrap();
    match e.retry(&run.id).await {
        Err(err @ EngineError::NothingToRetry { .. }) => {
            assert_eq!(err.code(), ErrorCode::Conflict);
            let msg = err.to_string();
            assert!(
                msg.contains("run timed out") && msg.contains("rerun"),
                "{msg}"
            );
        }
        other => panic!("expected NothingToRetry, got {other:?}"),
    }
    let stored = e.store().run(&run.id).unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Failed);
    assert_eq!(stored.error, run.error);
    assert_eq!(stored.owner, None);
    assert_eq!(e.store().last_seq(&run.id).unwrap(), last);
}
