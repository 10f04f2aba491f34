//! `recover` running while the same engine resumes or spawns runs must not take those runs for
//! ones the engine left behind and drive them a second time (both drivers would commit under
//! the same owner, so fencing cannot tell them apart).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use miyabi::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_during_resume_and_spawn_drives_each_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    let after = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&after);
    let ask = step_fn(|ctx: StepContext, _v: Value| async move {
        match ctx.resume_data() {
            Some(d) => Ok(d.clone()),
            None => ctx.suspend(json!({"question": "go?"})),
        }
    });
    let count = step_fn(move |_ctx: StepContext, v: Value| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(v)
        }
    });
    let wf = Workflow::new("race")
        .step("ask", ask)
        .then("after", count)
        .commit()
        .unwrap();
    engine.register(&wf);
    let rounds = 150;
    for i in 0..rounds {
        let run = engine.start(&wf, json!(i)).await.unwrap();
        assert_eq!(run.status, RunStatus::Suspended);
        let resumer = engine.clone();
        let id = run.id.clone();
        let resume = tokio::spawn(async move { resumer.resume(&id, "ask", json!(i)).await });
        let recovered = engine.recover().await.unwrap();
        let done = resume.await.unwrap().unwrap();
        let done = if done.status == RunStatus::Succeeded {
            done
        } else {
            engine.wait(&run.id).await.unwrap()
        };
        assert_eq!(done.status, RunStatus::Succeeded, "round {i}");
        // Whatever recover took, it finishes before the next round looks.
        for r in recovered {
            engine.wait(&r).await.unwrap();
        }
        // And a spawned run is never recovered by its own engine meanwhile.
        let spawned = engine.spawn(&wf, json!(i)).unwrap();
        let taken = engine.recover().await.unwrap();
        assert!(!taken.contains(&spawned.id().to_string()), "round {i}");
        let s = spawned.wait().await.unwrap();
        assert_eq!(s.status, RunStatus::Suspended);
        engine.cancel(&s.id).await.unwrap();
    }
    assert_eq!(
        after.load(Ordering::SeqCst),
        rounds as usize,
        "a resumed run's next step ran more than once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_does_not_take_a_run_this_engine_drives_when_its_lease_lapsed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = miyabi::clock::ManualClock::starting_now();
    let engine = Engine::builder()
        .store(SqliteStore::open(dir.path().join("runs.db")).unwrap())
        .clock(clock.clone())
        .lease(std::time::Duration::from_secs(30))
        .build();
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::clone(&release);
    let slow = step_fn(move |_ctx: StepContext, v: Value| {
        let (counter, gate) = (Arc::clone(&counter), Arc::clone(&gate));
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            gate.notified().await;
            Ok(v)
        }
    });
    let wf = Workflow::new("slow").step("slow", slow).commit().unwrap();
    engine.register(&wf);
    let handle = engine.spawn(&wf, json!(1)).unwrap();
    let id = handle.id().to_string();
    while runs.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // The lease lapses (a host too loaded for the heartbeat): the run is still driven here.
    clock.advance(std::time::Duration::from_secs(60));
    let taken = engine.recover().await.unwrap();
    assert!(
        taken.is_empty(),
        "recover took {taken:?}, which this engine drives"
    );
    release.notify_one();
    let run = handle.wait().await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.id, id);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the step ran twice");
}
