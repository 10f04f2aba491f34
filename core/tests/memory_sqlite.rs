#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Memory on SQLite files: the shared checks, plus sharing the engine's database file and
//! persistence across reopening.

mod memory_support;

use std::sync::atomic::{AtomicUsize, Ordering};

use miyabi::model::Message;
use miyabi::{Engine, Memory, MemoryOptions, RunStatus, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

static N: AtomicUsize = AtomicUsize::new(0);

/// Opens a fresh database file per call, in `dir` (removed when the test's `TempDir` drops).
fn opener(dir: &tempfile::TempDir) -> impl Fn(MemoryOptions) -> std::future::Ready<Memory> + '_ {
    move |options| {
        let path = dir
            .path()
            .join(format!("memory-{}.db", N.fetch_add(1, Ordering::SeqCst)));
        std::future::ready(Memory::sqlite_with(path, options).unwrap())
    }
}

#[tokio::test]
async fn working_memory_basics() {
    let dir = tempfile::tempdir().unwrap();
    memory_support::working_memory_basics(opener(&dir)(MemoryOptions::new()).await).await;
    memory_support::working_memory_basics(Memory::in_memory().unwrap()).await;
}

#[tokio::test]
async fn ttl() {
    let dir = tempfile::tempdir().unwrap();
    memory_support::ttl(opener(&dir)).await;
}

#[tokio::test]
async fn lru_by_count() {
    let dir = tempfile::tempdir().unwrap();
    memory_support::lru_by_count(opener(&dir)).await;
}

#[tokio::test]
async fn lru_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    memory_support::lru_by_bytes(opener(&dir)).await;
}

#[tokio::test]
async fn expired_before_live() {
    let dir = tempfile::tempdir().unwrap();
    memory_support::expired_before_live(opener(&dir)).await;
}

#[tokio::test]
async fn threads() {
    let dir = tempfile::tempdir().unwrap();
    memory_support::threads(opener(&dir)).await;
}

#[tokio::test]
async fn shares_the_engine_database_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let engine = Engine::sqlite(&db).unwrap();
    let memory = Memory::sqlite_with(&db, MemoryOptions::new().max_entries(2)).unwrap();
    let m = memory.clone();
    let wf = Workflow::new("remember")
        .step(
            "save",
            step_fn(move |ctx: StepContext, v: Value| {
                let m = m.clone();
                async move {
                    let wm = m.resource("user-1");
                    wm.set("last_run", ctx.run_id()).await?;
                    wm.merge("seen", json!({ v.as_str().unwrap_or("?"): true }))
                        .await?;
                    Ok(wm.all().await?)
                }
            }),
        )
        .commit()
        .unwrap();
    let run = engine.start(&wf, json!("a")).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.output.as_ref().unwrap()["seen"], json!({"a": true}));
    memory
        .append("t", None, &[Message::user("hello")])
        .await
        .unwrap();
    drop(memory);
    drop(engine);

    // Reopen both: runs and memory are there; the entry count survived (cap still exact).
    let engine = Engine::sqlite(&db).unwrap();
    assert_eq!(
        engine.get(&run.id).await.unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    let memory = Memory::sqlite_with(&db, MemoryOptions::new().max_entries(2)).unwrap();
    let wm = memory.resource("user-1");
    assert_eq!(wm.get("last_run").await.unwrap(), Some(json!(run.id)));
    assert_eq!(
        memory.last_messages("t", 5).await.unwrap()[0]
            .message
            .text(),
        "hello"
    );
    wm.set("third", 3).await.unwrap();
    assert_eq!(
        wm.all().await.unwrap().len(),
        2,
        "the cap counts stored keys"
    );
    // `last_run` was read after the reopen, so `seen` was the least recently used.
    assert_eq!(wm.get("seen").await.unwrap(), None);
    assert_eq!(wm.get("last_run").await.unwrap(), Some(json!(run.id)));
}
