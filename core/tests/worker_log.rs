//! The engine's background worker (approval deadlines, decided gates, notifications,
//! retention) reports a failed pass in the log instead of swallowing it, and keeps going.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use miyabi::store::*;
use miyabi::*;
use serde_json::Value;

/// A store whose retention passes fail (the disk is full) the first `failures` times.
struct FailingPrune {
    inner: MemoryStore,
    failures: AtomicUsize,
    prunes: AtomicUsize,
}

impl Store for FailingPrune {
    fn commit(&self, run: &str, batch: Batch) -> Result<(), StoreError> {
        self.inner.commit(run, batch)
    }
    fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.inner.run(id)
    }
    fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        self.inner.list_runs(f)
    }
    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, StoreError> {
        self.inner.steps(run)
    }
    fn state(&self, run: &str) -> Result<Vec<(String, Value)>, StoreError> {
        self.inner.state(run)
    }
    fn events(&self, run: &str, from: u64, limit: usize) -> Result<Vec<RunEvent>, StoreError> {
        self.inner.events(run, from, limit)
    }
    fn last_seq(&self, run: &str) -> Result<u64, StoreError> {
        self.inner.last_seq(run)
    }
    fn claim(&self, c: &Claim<'_>) -> Result<bool, StoreError> {
        self.inner.claim(c)
    }
    fn renew(&self, owner: &str, lease_until: i64) -> Result<(), StoreError> {
        self.inner.renew(owner, lease_until)
    }
    fn prune(&self, rule: &Retention, now: i64) -> Result<u64, StoreError> {
        self.prunes.fetch_add(1, Ordering::SeqCst);
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(StoreError::Full {
                path: "retention".into(),
                message: "injected: database or disk is full".into(),
            });
        }
        self.inner.prune(rule, now)
    }
    fn gates(&self) -> Option<&dyn GateStore> {
        self.inner.gates()
    }
}

/// Collects what the log subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failed_worker_pass_is_logged_and_the_next_pass_runs() {
    let log = Captured::default();
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = Arc::new(FailingPrune {
        inner: MemoryStore::new(),
        failures: AtomicUsize::new(1),
        prunes: AtomicUsize::new(0),
    });
    let engine = Engine::builder()
        .store_arc(Arc::clone(&store) as Arc<dyn Store>)
        .retention(Retention::older_than(Duration::from_secs(86_400)).keep_last(10))
        .retention_interval(Duration::from_secs(60))
        .build();
    engine.start_worker();
    // Paused time: the worker's passes run as the clock is advanced, no real waiting.
    while store.prunes.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("retention pass failed") && text.contains("database or disk is full"),
        "the failure is in the log: {text}"
    );
    assert_eq!(
        text.matches("retention pass failed").count(),
        1,
        "the second pass succeeded: {text}"
    );
}
